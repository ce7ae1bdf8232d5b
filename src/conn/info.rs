//! Connection parameters: parsing `postgres://` URLs and libpq keyword/value
//! strings, filling gaps from the libpq `PG*` variables, and rendering them
//! without the password.
//!
//! The password lives in a [`Secret`], whose `Debug` and `Display` print
//! `***`, so no log line, error or `{:?}` can leak it by accident.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;

/// A password. Its `Debug`/`Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself.
    ///
    /// # Warning
    /// Only for handing to the driver; never format it into a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Try TLS, fall back to plain text if the server does not offer it (libpq's default).
    #[default]
    Prefer,
    /// Require TLS; the certificate is not checked (unless `sslrootcert` is given,
    /// as in libpq, in which case it behaves like `verify-ca`).
    Require,
    /// Require TLS and a certificate chain to a trusted root.
    VerifyCa,
    /// `verify-ca` plus the server's name must match the certificate.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's names (`allow` is accepted as `prefer`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// libpq's name for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Where the connection parameters came from (shown by `-v` and in errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnSource {
    /// `--database-url`.
    Flag,
    /// An environment of `shiftlog.toml`, named.
    ConfigEnv(String),
    /// `$DATABASE_URL`.
    DatabaseUrlVar,
    /// The libpq `PG*` variables alone.
    LibpqVars,
    /// Built in code (the scratch server, tests).
    Explicit,
}

impl fmt::Display for ConnSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag => f.write_str("--database-url"),
            Self::ConfigEnv(name) => write!(f, "environment `{name}` of shiftlog.toml"),
            Self::DatabaseUrlVar => f.write_str("$DATABASE_URL"),
            Self::LibpqVars => f.write_str("the PG* environment variables"),
            Self::Explicit => f.write_str("the caller"),
        }
    }
}

/// Fully resolved connection parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Host name, IP address, or a directory holding the Unix socket (starts with `/`).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role to log in as.
    pub user: String,
    /// Password, if any.
    pub password: Option<Secret>,
    /// Database name.
    pub dbname: String,
    /// TLS policy.
    pub sslmode: SslMode,
    /// File of trusted root certificates (PEM) for `verify-ca`/`verify-full`,
    /// or `system` for the operating system's store.
    pub sslrootcert: Option<PathBuf>,
    /// Give up connecting after this long.
    pub connect_timeout: Option<Duration>,
    /// `application_name` reported in `pg_stat_activity`.
    pub application_name: Option<String>,
    /// Where these parameters came from.
    pub source: ConnSource,
}

impl ConnInfo {
    /// True when `host` names a Unix-socket directory.
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// `user@host:port/dbname` — what every connection error names. Never the password.
    pub fn target(&self) -> String {
        let host = if self.host.contains(':') && !self.is_unix_socket() {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{}@{}:{}/{}", self.user, host, self.port, self.dbname)
    }

    /// The parameters as a URL with the password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        let password = if self.password.is_some() { ":***" } else { "" };
        let mut url = if self.is_unix_socket() {
            format!(
                "postgres://{}{}@/{}?host={}&port={}",
                pct(&self.user),
                password,
                pct(&self.dbname),
                pct(&self.host),
                self.port
            )
        } else {
            let host = if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.clone()
            };
            format!(
                "postgres://{}{}@{}:{}/{}?",
                pct(&self.user),
                password,
                host,
                self.port,
                pct(&self.dbname)
            )
        };
        if !url.ends_with('?') {
            url.push('&');
        }
        url.push_str("sslmode=");
        url.push_str(self.sslmode.as_str());
        url
    }

    /// The same server with another database (used to create and drop databases).
    pub fn with_dbname(&self, dbname: &str) -> Self {
        Self {
            dbname: dbname.to_owned(),
            ..self.clone()
        }
    }
}

impl fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())
    }
}

/// Parameters as given, before defaults: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialConnInfo {
    pub host: Option<String>,
    pub port: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub dbname: Option<String>,
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
    pub connect_timeout: Option<String>,
    pub application_name: Option<String>,
}

impl PartialConnInfo {
    /// Parses a `postgres://`/`postgresql://` URL or a libpq keyword/value
    /// string (`host=db port=5432 dbname=app`).
    ///
    /// Errors never contain the input, which may hold a password.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let input = input.trim();
        if input.is_empty() {
            return Err(invalid("the connection string is empty"));
        }
        if let Some(rest) = input
            .strip_prefix("postgres://")
            .or_else(|| input.strip_prefix("postgresql://"))
        {
            parse_url(rest)
        } else if input.contains("://") {
            Err(invalid(
                "the URL scheme must be postgres:// or postgresql://",
            ))
        } else if input.contains('=') {
            parse_keywords(input)
        } else {
            Err(invalid(
                "expected a postgres:// URL or libpq keyword/value pairs such as `host=db dbname=app`",
            ))
        }
    }

    /// Reads the libpq variables through `var` (injected so tests need not
    /// touch the process environment).
    pub fn from_libpq_vars(var: &dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            host: var("PGHOST"),
            port: var("PGPORT"),
            user: var("PGUSER"),
            password: var("PGPASSWORD").map(Secret::new),
            dbname: var("PGDATABASE"),
            sslmode: var("PGSSLMODE"),
            sslrootcert: var("PGSSLROOTCERT"),
            connect_timeout: var("PGCONNECT_TIMEOUT"),
            application_name: var("PGAPPNAME"),
        }
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Fills every unset field from `other` (libpq: variables are defaults
    /// for whatever the connection string leaves out).
    pub fn or(mut self, other: &Self) -> Self {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = other.$f.clone(); } )* };
        }
        fill!(
            host,
            port,
            user,
            password,
            dbname,
            sslmode,
            sslrootcert,
            connect_timeout,
            application_name
        );
        self
    }

    /// Applies libpq's defaults and validates every field.
    pub fn resolve(
        self,
        source: ConnSource,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConnInfo, Error> {
        let host = match self.host {
            Some(h) if h.contains(',') => {
                return Err(invalid(
                    "several hosts in one connection string are not supported",
                ));
            }
            Some(h) if !h.is_empty() => h,
            _ => default_host(),
        };
        let port = match self.port.as_deref() {
            None | Some("") => 5432,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                invalid(&format!("port `{p}` is not a number between 1 and 65535"))
            })?,
        };
        let user = match self.user {
            Some(u) if !u.is_empty() => u,
            _ => var("USER")
                .or_else(|| var("LOGNAME"))
                .unwrap_or_else(|| "postgres".into()),
        };
        let dbname = match self.dbname {
            Some(d) if !d.is_empty() => d,
            _ => user.clone(),
        };
        let sslmode = match self.sslmode.as_deref() {
            None | Some("") => SslMode::default(),
            Some(m) => SslMode::parse(m).ok_or_else(|| {
                invalid(&format!(
                    "sslmode `{m}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            })?,
        };
        let connect_timeout = match self.connect_timeout.as_deref() {
            None | Some("") | Some("0") => None,
            Some(t) => Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
                invalid(&format!(
                    "connect_timeout `{t}` is not a whole number of seconds"
                ))
            })?)),
        };
        Ok(ConnInfo {
            host,
            port,
            user,
            password: self.password.filter(|p| !p.expose().is_empty()),
            dbname,
            sslmode,
            sslrootcert: self
                .sslrootcert
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            connect_timeout,
            application_name: self.application_name,
            source,
        })
    }

    fn set(&mut self, key: &str, value: String) -> Result<(), Error> {
        match key {
            "host" | "hostaddr" => self.host = Some(value),
            "port" => self.port = Some(value),
            "user" => self.user = Some(value),
            "password" => self.password = Some(Secret::new(value)),
            "dbname" => self.dbname = Some(value),
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            "connect_timeout" => self.connect_timeout = Some(value),
            "application_name" => self.application_name = Some(value),
            other => {
                return Err(invalid(&format!(
                    "connection parameter `{other}` is not supported (supported: host, port, user, password, dbname, sslmode, sslrootcert, connect_timeout, application_name)"
                )));
            }
        }
        Ok(())
    }
}

fn default_host() -> String {
    // libpq's compiled-in default on Debian is the socket directory; fall back to TCP.
    for dir in ["/var/run/postgresql", "/tmp"] {
        if std::path::Path::new(dir).join(".s.PGSQL.5432").exists() {
            return dir.to_owned();
        }
    }
    "localhost".to_owned()
}

fn invalid(message: &str) -> Error {
    Error::InvalidConnectionString {
        message: message.to_owned(),
    }
}

fn parse_url(rest: &str) -> Result<PartialConnInfo, Error> {
    let mut info = PartialConnInfo::default();
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match main.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (main, None),
    };
    // The password may contain '@' when percent-encoded only; split at the last '@'.
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            info.user = Some(pct_decode(user, "user name")?);
        }
        if let Some(p) = password {
            info.password = Some(Secret::new(pct_decode(p, "password")?));
        }
    }
    if !hostport.is_empty() {
        let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
            let (h, tail) = after
                .split_once(']')
                .ok_or_else(|| invalid("the IPv6 address in the URL lacks its closing `]`"))?;
            (h.to_owned(), tail.strip_prefix(':').map(str::to_owned))
        } else if hostport.contains(',') {
            return Err(invalid(
                "several hosts in one connection string are not supported",
            ));
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p.to_owned())),
                None => (hostport.to_owned(), None),
            }
        };
        if !host.is_empty() {
            info.host = Some(pct_decode(&host, "host")?);
        }
        info.port = port.filter(|p| !p.is_empty());
    }
    if let Some(path) = path.filter(|p| !p.is_empty()) {
        info.dbname = Some(pct_decode(path, "database name")?);
    }
    if let Some(query) = query {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| invalid(&format!("URL parameter `{}` has no value", pair)))?;
            let value = pct_decode(v, k)?;
            info.set(k, value)?;
        }
    }
    Ok(info)
}

fn parse_keywords(input: &str) -> Result<PartialConnInfo, Error> {
    let mut info = PartialConnInfo::default();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(info);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(invalid(&format!(
                "`{key}` must be followed by `=` and a value"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(invalid(&format!("the value of `{key}` ends in `\\`"))),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(invalid(&format!(
                            "the quoted value of `{key}` is not closed"
                        )));
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        info.set(&key, value)?;
    }
}

fn pct_decode(s: &str, what: &str) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid(&format!("the {what} in the URL has a bad %-escape")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(&format!("the {what} in the URL is not UTF-8")))
}

/// Percent-encodes a URL component (user, password, database name).
pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub use crate::redact::redact;

#[cfg(test)]
mod tests {
    use super::*;

    fn no_vars(_: &str) -> Option<String> {
        None
    }

    fn resolve(s: &str) -> ConnInfo {
        PartialConnInfo::parse(s)
            .unwrap()
            .resolve(ConnSource::Explicit, &no_vars)
            .unwrap()
    }

    #[test]
    fn parses_full_url() {
        let c = resolve(
            "postgres://alice:s%40cret@db.example:6543/app?sslmode=verify-full&application_name=x",
        );
        assert_eq!(c.host, "db.example");
        assert_eq!(c.port, 6543);
        assert_eq!(c.user, "alice");
        assert_eq!(c.password.as_ref().unwrap().expose(), "s@cret");
        assert_eq!(c.dbname, "app");
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        assert_eq!(c.application_name.as_deref(), Some("x"));
    }

    #[test]
    fn parses_ipv6_and_socket_urls() {
        let c = resolve("postgresql://u@[::1]:5433/d");
        assert_eq!(c.host, "::1");
        assert_eq!(c.port, 5433);
        assert_eq!(c.target(), "u@[::1]:5433/d");
        let c = resolve("postgres://u@/d?host=%2Fvar%2Frun%2Fpostgresql");
        assert_eq!(c.host, "/var/run/postgresql");
        assert!(c.is_unix_socket());
    }

    #[test]
    fn parses_keyword_value_strings() {
        let c = resolve(r"host=h port=1 user=u password='a b\'c' dbname=d sslmode=require");
        assert_eq!(c.password.as_ref().unwrap().expose(), "a b'c");
        assert_eq!((c.host.as_str(), c.port, c.dbname.as_str()), ("h", 1, "d"));
        assert_eq!(c.sslmode, SslMode::Require);
    }

    #[test]
    fn fills_gaps_from_libpq_vars_and_defaults() {
        let vars = |k: &str| match k {
            "PGPASSWORD" => Some("pw".to_owned()),
            "PGPORT" => Some("7777".to_owned()),
            "USER" => Some("osuser".to_owned()),
            _ => None,
        };
        let url = PartialConnInfo::parse("postgres://h/d").unwrap();
        let c = url
            .or(&PartialConnInfo::from_libpq_vars(&vars))
            .resolve(ConnSource::Flag, &vars)
            .unwrap();
        assert_eq!(c.port, 7777);
        assert_eq!(c.password.unwrap().expose(), "pw");
        assert_eq!(c.user, "osuser");
        assert_eq!(c.dbname, "d");
    }

    #[test]
    fn rejects_bad_input_without_echoing_it() {
        for bad in [
            "mysql://u:hunter2@h/d",
            "postgres://u:hunter2@h:99999/d",
            "postgres://u:hunter2@h/d?sslmode=maybe",
            "postgres://u:hunter2@h/d?bogus=1",
            "postgres://u:hunter2@h1,h2/d",
            "postgres://u:hunter2%zz@h/d",
            "hunter2",
            "host=h password='hunter2",
        ] {
            let err = PartialConnInfo::parse(bad)
                .and_then(|p| p.resolve(ConnSource::Flag, &no_vars))
                .expect_err(bad);
            let msg = err.to_string();
            assert!(!msg.contains("hunter2"), "{msg}");
            assert!(
                matches!(err, Error::InvalidConnectionString { .. }),
                "{msg}"
            );
        }
    }

    #[test]
    fn never_shows_the_password() {
        let c = resolve("postgres://alice:hunter2@h/d");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.to_string().contains("hunter2"));
        assert_eq!(
            c.redacted_url(),
            "postgres://alice:***@h:5432/d?sslmode=prefer"
        );
    }

    #[test]
    fn redacts_free_text() {
        assert_eq!(
            redact("failed: postgres://bob:pw@h:5/d and host=h password=pw2 user=u"),
            "failed: postgres://bob:***@h:5/d and host=h password=*** user=u"
        );
        assert_eq!(redact("password='a b' x"), "password=*** x");
        assert_eq!(redact("postgres://bob@h/d"), "postgres://bob@h/d");
    }
}
