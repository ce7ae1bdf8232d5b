//! Connections: every source and their precedence, TLS modes against a real
//! TLS server, and the message of every kind of connection failure.

use std::collections::HashMap;
use std::sync::OnceLock;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use shiftlog::config::ProjectConfig;
use shiftlog::conn::{self, ConnSource, ConnectErrorKind, ConnectRequest};
use shiftlog::scratch::{ScratchOptions, TlsFiles};

use crate::support::{self, TestDb};

const PASSWORD: &str = "hunter2-secret";

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

fn config(toml: &str) -> ProjectConfig {
    ProjectConfig::parse(toml, std::path::Path::new("shiftlog.toml")).expect("config parses")
}

async fn current_db(info: &conn::ConnInfo) -> String {
    let client = conn::connect(info).await.unwrap_or_else(|e| panic!("{e}"));
    client
        .query_one("SELECT current_database()", &[])
        .await
        .expect("query")
        .get(0)
}

#[tokio::test]
async fn every_source_reaches_the_database() {
    let db = TestDb::new("every_source").await;
    let i = db.info();
    let port = i.port.to_string();
    let pg = [
        ("PGHOST", i.host.as_str()),
        ("PGPORT", &port),
        ("PGUSER", &i.user),
        ("PGDATABASE", &db.name),
        ("PGSSLMODE", "disable"),
    ];
    let toml = "default_env = \"dev\"\n[environments.dev]\nurl = \"${DEV_URL}\"\n";
    type Case<'a> = (ConnectRequest, Vec<(&'a str, &'a str)>, ConnSource);
    let cases: Vec<Case> = vec![
        (
            ConnectRequest {
                database_url: Some(db.url.clone()),
                env: None,
            },
            vec![],
            ConnSource::Flag,
        ),
        (
            ConnectRequest {
                database_url: None,
                env: Some("dev".into()),
            },
            vec![("DEV_URL", &db.url)],
            ConnSource::ConfigEnv("dev".into()),
        ),
        (
            ConnectRequest::default(),
            vec![("DATABASE_URL", &db.url)],
            ConnSource::DatabaseUrlVar,
        ),
        (
            ConnectRequest::default(),
            pg.to_vec(),
            ConnSource::LibpqVars,
        ),
        (
            ConnectRequest::default(),
            vec![("DEV_URL", &db.url)],
            ConnSource::ConfigEnv("dev".into()),
        ),
    ];
    let cfg = config(toml);
    for (request, env, source) in cases {
        let info = conn::resolve(&request, &cfg, &vars(&env)).expect("resolves");
        assert_eq!(info.source, source);
        assert_eq!(current_db(&info).await, db.name, "via {source}");
    }
}

#[test]
fn sources_take_precedence_in_documented_order() {
    let cfg = config(
        "default_env = \"d\"\n[environments.d]\nurl = \"postgres://h/from_default\"\n[environments.e]\nurl = \"postgres://h/from_env\"\n",
    );
    let all = [
        ("DATABASE_URL", "postgres://h/from_var"),
        ("PGDATABASE", "from_pg"),
    ];
    let flag = ConnectRequest {
        database_url: Some("postgres://h/from_flag".into()),
        env: Some("e".into()),
    };
    let env = ConnectRequest {
        database_url: None,
        env: Some("e".into()),
    };
    let none = ConnectRequest::default();
    let db = |r: &ConnectRequest, v: &[(&str, &str)]| {
        conn::resolve(r, &cfg, &vars(v)).expect("resolves").dbname
    };
    assert_eq!(db(&flag, &all), "from_flag");
    assert_eq!(db(&env, &all), "from_env");
    assert_eq!(db(&none, &all), "from_var");
    assert_eq!(db(&none, &all[1..]), "from_pg");
    assert_eq!(db(&none, &[]), "from_default");
    let err =
        conn::resolve(&none, &ProjectConfig::default(), &vars(&[])).expect_err("nothing given");
    assert!(err.to_string().contains("no database given"), "{err}");
    assert_eq!(err.exit_status().code(), 2);
}

/// A TLS server with a password, and the CA that signed its certificate
/// (valid for `localhost` only, not for 127.0.0.1).
struct TlsServer {
    port: u16,
    ca_file: tempfile::NamedTempFile,
    other_ca_file: tempfile::NamedTempFile,
}

fn tls_server() -> &'static TlsServer {
    static SERVER: OnceLock<TlsServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let ca = make_ca();
        let other = make_ca();
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("sign");
        let url = support::start_server_thread(ScratchOptions {
            password: Some(PASSWORD.into()),
            tls: Some(TlsFiles {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            }),
            ..ScratchOptions::default()
        });
        let port = support::info(&url).port;
        TlsServer {
            port,
            ca_file: pem_file(&ca.pem()),
            other_ca_file: pem_file(&other.pem()),
        }
    })
}

fn make_ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca")
}

fn pem_file(pem: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(f.path(), pem).expect("write pem");
    f
}

fn tls_url(host: &str, sslmode: &str, rootcert: Option<&std::path::Path>) -> String {
    let s = tls_server();
    let mut url = format!(
        "postgres://postgres:{PASSWORD}@{host}:{}/postgres?sslmode={sslmode}",
        s.port
    );
    if let Some(root) = rootcert {
        url.push_str(&format!("&sslrootcert={}", root.display()));
    }
    url
}

async fn uses_tls(url: &str) -> Result<bool, shiftlog::Error> {
    let client = conn::connect(&support::info(url)).await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("query");
    Ok(row.get(0))
}

fn assert_tls_error(result: Result<bool, shiftlog::Error>, url_host: &str) {
    match result {
        Err(shiftlog::Error::Connect {
            kind: ConnectErrorKind::Tls,
            target,
            message,
        }) => {
            assert!(target.contains(url_host), "{target}");
            assert!(!message.contains(PASSWORD) && !target.contains(PASSWORD));
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn sslmode_require_encrypts() {
    assert!(
        uses_tls(&tls_url("127.0.0.1", "require", None))
            .await
            .expect("connects")
    );
    assert!(
        uses_tls(&tls_url("127.0.0.1", "prefer", None))
            .await
            .expect("connects")
    );
    assert!(
        !uses_tls(&tls_url("127.0.0.1", "disable", None))
            .await
            .expect("connects")
    );
}

#[tokio::test]
async fn sslmode_verify_full_checks_chain_and_name() {
    let s = tls_server();
    let ca = s.ca_file.path();
    assert!(
        uses_tls(&tls_url("localhost", "verify-full", Some(ca)))
            .await
            .expect("trusted and named")
    );
    // Right CA, wrong name: verify-full refuses, verify-ca accepts.
    assert_tls_error(
        uses_tls(&tls_url("127.0.0.1", "verify-full", Some(ca))).await,
        "127.0.0.1",
    );
    assert!(
        uses_tls(&tls_url("127.0.0.1", "verify-ca", Some(ca)))
            .await
            .expect("chain is enough")
    );
    // Untrusted CA: refused by both, and by require once a root cert is given (libpq rule).
    let other = s.other_ca_file.path();
    assert_tls_error(
        uses_tls(&tls_url("localhost", "verify-full", Some(other))).await,
        "localhost",
    );
    assert_tls_error(
        uses_tls(&tls_url("localhost", "verify-ca", Some(other))).await,
        "localhost",
    );
    assert_tls_error(
        uses_tls(&tls_url("localhost", "require", Some(other))).await,
        "localhost",
    );
}

#[tokio::test]
async fn require_against_a_server_without_tls_is_a_tls_error() {
    let info = support::info(&support::server_url());
    let url = format!(
        "postgres://{}@127.0.0.1:{}/postgres?sslmode=require",
        info.user, info.port
    );
    let err = conn::connect(&support::info(&url))
        .await
        .expect_err("server has no TLS");
    assert!(
        matches!(
            err,
            shiftlog::Error::Connect {
                kind: ConnectErrorKind::Tls,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("does not accept TLS"), "{err}");
}

async fn connect_err(url: &str) -> shiftlog::Error {
    conn::connect(&support::info(url))
        .await
        .expect_err("must fail")
}

fn assert_names_target(err: &shiftlog::Error, user: &str, host: &str, port: u16, db: &str) {
    let msg = err.to_string();
    assert!(msg.contains(&format!("{user}@{host}:{port}/{db}")), "{msg}");
    assert!(!msg.contains(PASSWORD), "password leaked: {msg}");
    assert!(
        !format!("{err:?}").contains(PASSWORD),
        "password leaked in Debug: {err:?}"
    );
    assert_eq!(msg.lines().count(), 1, "one line: {msg}");
    assert_eq!(err.exit_status().code(), 1);
}

#[tokio::test]
async fn connection_errors_name_the_target_and_never_the_password() {
    let port = tls_server().port;

    let url = support::unreachable_url();
    let unreachable_port = support::info(&url).port;
    let err = connect_err(&url).await;
    assert!(
        matches!(
            err,
            shiftlog::Error::Connect {
                kind: ConnectErrorKind::Unreachable,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert_names_target(&err, "nobody", "127.0.0.1", unreachable_port, "nothing");

    let err = connect_err(&format!(
        "postgres://postgres:wrong-{PASSWORD}@127.0.0.1:{port}/postgres"
    ))
    .await;
    assert!(
        matches!(
            err,
            shiftlog::Error::Connect {
                kind: ConnectErrorKind::Authentication,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("authentication failed for user \"postgres\""),
        "{err}"
    );
    assert_names_target(&err, "postgres", "127.0.0.1", port, "postgres");

    let err = connect_err(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).await;
    assert!(
        matches!(
            err,
            shiftlog::Error::Connect {
                kind: ConnectErrorKind::Authentication,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("none was given"), "{err}");

    let err = connect_err(&format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{port}/no_such_db"
    ))
    .await;
    assert!(
        matches!(
            err,
            shiftlog::Error::Connect {
                kind: ConnectErrorKind::DatabaseMissing,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("database \"no_such_db\" does not exist"),
        "{err}"
    );
    assert_names_target(&err, "postgres", "127.0.0.1", port, "no_such_db");
}

#[tokio::test]
async fn libpq_password_variable_completes_a_url() {
    let port = tls_server().port;
    let request = ConnectRequest {
        database_url: Some(format!("postgres://postgres@127.0.0.1:{port}/postgres")),
        env: None,
    };
    let info = conn::resolve(
        &request,
        &ProjectConfig::default(),
        &vars(&[("PGPASSWORD", PASSWORD)]),
    )
    .expect("resolves");
    assert_eq!(current_db(&info).await, "postgres");
    assert!(!format!("{info:?} {info}").contains(PASSWORD));
}
