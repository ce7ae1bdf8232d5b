//! Throwaway PostgreSQL servers, started from the system's binaries in a
//! temporary directory on a free port — for the test suite, `shiftlog demo`
//! and `shiftlog check --scratch`.
//!
//! PostgreSQL refuses to run as root, so when we are root the directory is
//! handed to the `postgres` user and the server processes drop to it.
//! The server stops and its directory is removed when the [`ScratchServer`] is
//! dropped — also while unwinding from a panic. With
//! [`ScratchOptions::stop_with_parent`] (the default) the kernel also stops
//! it (SIGINT, PostgreSQL's fast shutdown) when this process dies, covering
//! a process killed outright; leftover directories are swept on the next
//! start, and so are servers whose process is gone but that still run (left
//! by a version without that safeguard).

#![allow(unsafe_code)] // getpwnam, geteuid, prctl: no safe std equivalent.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;

/// Directory-name prefix of scratch servers, used to sweep leftovers.
const DIR_PREFIX: &str = "shiftlog-scratch-";

/// How to start a throwaway server.
#[derive(Debug, Clone)]
pub struct ScratchOptions {
    /// `fsync` setting; off by default (data is thrown away anyway).
    pub fsync: bool,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
    /// Have the kernel stop the server when this process dies, even killed
    /// outright (`kill -9`, a cancelled CI job): Linux `PR_SET_PDEATHSIG`,
    /// set on a server started from a thread of its own that lives as long
    /// as the [`ScratchServer`] (the signal follows the thread that started
    /// the child, not the process). On by default.
    pub stop_with_parent: bool,
    /// How long to wait for the server to accept connections.
    pub start_timeout: Duration,
    /// Require this password for TCP connections (scram-sha-256) instead of
    /// trusting every local client. The Unix socket stays trusted.
    pub password: Option<String>,
    /// Serve TLS with this certificate chain and private key (PEM).
    pub tls: Option<TlsFiles>,
}

/// PEM certificate chain and key for a TLS-enabled scratch server.
#[derive(Clone)]
pub struct TlsFiles {
    /// Server certificate chain, PEM.
    pub cert_pem: String,
    /// Server private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsFiles { .. }")
    }
}

impl Default for ScratchOptions {
    fn default() -> Self {
        Self {
            fsync: false,
            settings: Vec::new(),
            stop_with_parent: true,
            start_timeout: Duration::from_secs(60),
            password: None,
            tls: None,
        }
    }
}

/// A running throwaway server. Dropping it stops the server and deletes its files.
#[derive(Debug)]
pub struct ScratchServer {
    child: Option<Child>,
    /// Ends the thread the server was started from (see
    /// [`ScratchOptions::stop_with_parent`]) when dropped, after the server
    /// stopped.
    keeper: Option<std::sync::mpsc::Sender<()>>,
    dir: PathBuf,
    port: u16,
    version: String,
    password: Option<String>,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    options: ScratchOptions,
}

impl ScratchServer {
    /// Starts a server. Blocks until it accepts connections (a second or two).
    pub fn start(options: &ScratchOptions) -> Result<Self, Error> {
        let bin = find_binaries()?;
        sweep_leftovers();
        let owner = server_owner()?;
        let dir = make_dir(owner)?;
        // From here on, a failure must remove `dir`: build the value first so Drop does it.
        let mut server = Self {
            child: None,
            keeper: None,
            dir,
            port: 0,
            version: bin.version.clone(),
            password: options.password.clone(),
            bin: bin.dir.clone(),
            owner,
            options: options.clone(),
        };
        let data = server.dir.join("data");
        let mut initdb = Command::new(bin.dir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdin(Stdio::null());
        if let Some(password) = &options.password {
            let pwfile = server.write_owned("pwfile", password, owner)?;
            initdb
                .arg("--auth-host=scram-sha-256")
                .arg(format!("--pwfile={}", pwfile.display()));
        } else {
            initdb.arg("--auth-host=trust");
        }
        as_owner(&mut initdb, owner, false);
        let out = initdb
            .output()
            .map_err(|e| scratch(format!("cannot run initdb: {e}")))?;
        if !out.status.success() {
            return Err(scratch(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // A port that was free a moment ago can be taken before the server binds
        // it; try a few.
        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port()?;
            match server.launch(&bin.dir, &data, port, owner, options) {
                Ok(()) => return Ok(server),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| scratch("could not start the server".into())))
    }

    fn launch(
        &mut self,
        bin: &Path,
        data: &Path,
        port: u16,
        owner: Option<(u32, u32)>,
        options: &ScratchOptions,
    ) -> Result<(), Error> {
        let log_path = self.dir.join("server.log");
        let log = fs::File::create(&log_path)
            .map_err(|e| scratch(format!("cannot create {}: {e}", log_path.display())))?;
        if let Some((uid, gid)) = owner {
            chown(&log_path, uid, gid)?;
        }
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D").arg(data).arg("-p").arg(port.to_string());
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addresses".into(), "127.0.0.1".into()),
            (
                "unix_socket_directories".into(),
                self.dir.display().to_string(),
            ),
            (
                "fsync".into(),
                if options.fsync { "on" } else { "off" }.into(),
            ),
            ("max_connections".into(), "200".into()),
            ("log_min_messages".into(), "warning".into()),
        ];
        if !options.fsync {
            settings.push(("synchronous_commit".into(), "off".into()));
            settings.push(("full_page_writes".into(), "off".into()));
        }
        if let Some(tls) = &options.tls {
            let cert = self.write_owned("server.crt", &tls.cert_pem, owner)?;
            let key = self.write_owned("server.key", &tls.key_pem, owner)?;
            settings.push(("ssl".into(), "on".into()));
            settings.push(("ssl_cert_file".into(), cert.display().to_string()));
            settings.push(("ssl_key_file".into(), key.display().to_string()));
        }
        settings.extend(options.settings.iter().cloned());
        for (k, v) in settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        as_owner(&mut cmd, owner, options.stop_with_parent);
        let child = if options.stop_with_parent {
            let (child, keeper) = spawn_kept(cmd)?;
            self.keeper = Some(keeper);
            child
        } else {
            cmd.spawn()
                .map_err(|e| scratch(format!("cannot start postgres: {e}")))?
        };
        self.child = Some(child);
        self.port = port;
        let deadline = Instant::now() + options.start_timeout;
        loop {
            if log_says_ready(&log_path) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                self.keeper = None;
                return Err(scratch(format!(
                    "postgres exited ({status}) while starting:\n{}",
                    tail(&log_path)
                )));
            }
            if Instant::now() > deadline {
                self.stop_child();
                return Err(scratch(format!(
                    "postgres did not accept connections within {:?}:\n{}",
                    options.start_timeout,
                    tail(&log_path)
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// TCP URL of the `postgres` database as superuser `postgres`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// TCP URL of database `dbname` as superuser `postgres` (with the
    /// password, when one was set: this is a throwaway server).
    pub fn url_for(&self, dbname: &str) -> String {
        let auth = match &self.password {
            Some(p) => format!("postgres:{}", crate::conn::percent_encode(p)),
            None => "postgres".to_owned(),
        };
        format!(
            "postgres://{auth}@127.0.0.1:{}/{dbname}?sslmode=disable",
            self.port
        )
    }

    fn write_owned(
        &self,
        name: &str,
        contents: &str,
        owner: Option<(u32, u32)>,
    ) -> Result<PathBuf, Error> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        fs::write(&path, contents)
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o600)))
            .map_err(|e| scratch(format!("cannot write {}: {e}", path.display())))?;
        if let Some((uid, gid)) = owner {
            chown(&path, uid, gid)?;
        }
        Ok(path)
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's data and socket directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Major version of the binaries used, e.g. `"15"`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Stops the server (fast shutdown) and starts it again on the same port
    /// with the same data — for testing how clients survive a restart.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop_child();
        let (bin, data, port, owner, options) = (
            self.bin.clone(),
            self.dir.join("data"),
            self.port,
            self.owner,
            self.options.clone(),
        );
        let mut last = None;
        // The old postmaster may need a moment to release the port.
        for _ in 0..20 {
            match self.launch(&bin, &data, port, owner, &options) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(last.unwrap_or_else(|| scratch("could not restart the server".into())))
    }

    /// Stops the server (fast shutdown) and removes its directory.
    pub fn stop(mut self) {
        self.stop_child();
        let _ = fs::remove_dir_all(&self.dir);
    }

    fn stop_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT = fast shutdown: roll back open transactions, exit promptly.
            signal(child.id(), libc::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut stopped = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    stopped = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !stopped {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // The server is gone: its keeper thread can end.
        self.keeper = None;
    }
}

impl Drop for ScratchServer {
    fn drop(&mut self) {
        self.stop_child();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The binaries found, and their major version.
#[derive(Debug)]
struct Binaries {
    dir: PathBuf,
    version: String,
}

/// Finds `initdb` and `postgres`: on `PATH` first, then the newest
/// `/usr/lib/postgresql/*/bin` (Debian keeps them off `PATH`).
fn find_binaries() -> Result<Binaries, Error> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    candidates.extend(versioned.into_iter().map(|(_, p)| p));
    for dir in candidates {
        // Debian's /usr/bin has wrappers for some tools but never `postgres`.
        if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
            let version = Command::new(dir.join("postgres"))
                .arg("--version")
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|s| {
                    s.split_whitespace()
                        .nth(2)
                        .and_then(|v| v.split('.').next().map(str::to_owned))
                })
                .unwrap_or_default();
            return Ok(Binaries { dir, version });
        }
    }
    Err(scratch(
        "no PostgreSQL server binaries found (initdb and postgres, on PATH or in \
         /usr/lib/postgresql/*/bin): install them, e.g. `apt-get install -y postgresql`"
            .into(),
    ))
}

/// `(uid, gid)` of the `postgres` user when we are root; `None` otherwise.
fn server_owner() -> Result<Option<(u32, u32)>, Error> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new("postgres").map_err(|e| scratch(e.to_string()))?;
    // SAFETY: name is a valid C string; the returned pointer is only read
    // immediately, before any other getpw* call.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(scratch(
            "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` \
             user to run it as: install the postgresql package (it creates the user) or run as \
             another user"
                .into(),
        ));
    }
    // SAFETY: pw is non-null and points to a valid passwd record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

fn make_dir(owner: Option<(u32, u32)>) -> Result<PathBuf, Error> {
    let dir = tempfile::Builder::new()
        .prefix(DIR_PREFIX)
        .tempdir()
        .map_err(|e| scratch(format!("cannot create a temporary directory: {e}")))?
        .keep();
    fs::write(dir.join(OWNER_FILE), std::process::id().to_string())
        .map_err(|e| scratch(format!("cannot write in {}: {e}", dir.display())))?;
    if let Some((uid, gid)) = owner {
        chown(&dir, uid, gid)?;
    }
    Ok(dir)
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), Error> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| {
        scratch(format!(
            "cannot hand {} to the postgres user: {e}",
            path.display()
        ))
    })
}

fn as_owner(cmd: &mut Command, owner: Option<(u32, u32)>, stop_with_parent: bool) {
    if let Some((uid, gid)) = owner {
        // std applies gid/uid (and drops supplementary groups) before pre_exec runs.
        cmd.gid(gid).uid(uid);
        cmd.env("HOME", "/tmp");
    }
    // Elsewhere than Linux there is no parent-death signal: a server whose
    // parent was killed is swept at the next start instead.
    #[cfg(not(target_os = "linux"))]
    let _ = stop_with_parent;
    #[cfg(target_os = "linux")]
    if stop_with_parent {
        // SAFETY: prctl is async-signal-safe; it runs in the forked child
        // after the uid change (which would otherwise reset the setting).
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| scratch(format!("cannot find a free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| scratch(format!("cannot find a free port: {e}")))
}

fn log_says_ready(log: &Path) -> bool {
    fs::read_to_string(log)
        .map(|s| s.contains("database system is ready to accept connections"))
        .unwrap_or(false)
}

fn tail(log: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(log) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(2000)));
        let _ = f.read_to_string(&mut text);
    }
    text.trim().to_owned()
}

/// Spawns `cmd` from a new thread that then waits until the returned sender
/// is dropped: with `PR_SET_PDEATHSIG` set in `cmd`, the child is signalled
/// when that thread ends — when the sender is dropped, or when the process
/// dies however it dies. (Spawned from the caller's thread, the child would
/// be signalled when that thread ends: for a tokio blocking-pool thread, ten
/// seconds after it goes idle.)
fn spawn_kept(mut cmd: Command) -> Result<(Child, std::sync::mpsc::Sender<()>), Error> {
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (keep_tx, keep_rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("scratch-postgres".into())
        .spawn(move || {
            let _ = started_tx.send(cmd.spawn());
            // Returns once the sender is dropped.
            let _ = keep_rx.recv();
        })
        .map_err(|e| scratch(format!("cannot start a thread for postgres: {e}")))?;
    let child = started_rx
        .recv()
        .map_err(|_| scratch("the thread starting postgres died".into()))?
        .map_err(|e| scratch(format!("cannot start postgres: {e}")))?;
    Ok((child, keep_tx))
}

fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// File in each scratch directory naming the process that created it.
const OWNER_FILE: &str = "shiftlog-owner.pid";

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether process `pid` is a `postgres` serving data directory `data`.
fn is_postmaster_of(pid: u32, data: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let data = data.as_os_str().as_encoded_bytes();
    args.first().is_some_and(|a| a.ends_with(b"postgres"))
        && args.windows(2).any(|w| w[0] == b"-D" && w[1] == data)
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Removes scratch directories left by processes that were killed outright:
/// those whose creating process is gone and whose server is not running; a
/// server still running there is stopped first (removed on a later sweep).
/// A directory whose files cannot be read yet (another process is creating
/// it right now) is left alone unless it is old.
fn sweep_leftovers() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        let owner_gone = match read_pid(&dir.join(OWNER_FILE)) {
            Some(pid) => !pid_alive(pid),
            None => old,
        };
        if !owner_gone {
            continue;
        }
        let data = dir.join("data");
        match read_pid(&data.join("postmaster.pid")).filter(|pid| pid_alive(*pid)) {
            None => {
                let _ = fs::remove_dir_all(&dir);
            }
            // A server whose process was killed before servers were tied to
            // it: stop it (fast shutdown); a later sweep removes its files.
            // Only a process that is the postmaster of this very directory
            // gets the signal (the pid may have been reused).
            Some(pid) if is_postmaster_of(pid, &data) => signal(pid, libc::SIGINT),
            Some(_) => {}
        }
    }
}

fn scratch(message: String) -> Error {
    Error::Scratch { message }
}
