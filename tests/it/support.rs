//! Test helpers: one shared PostgreSQL server per test run, a fresh database per
//! test, and small builders so each test reads like the scenario it checks.
//!
//! The server is `$SHIFTLOG_TEST_DATABASE_URL` when set; otherwise a throwaway
//! server (the library's `scratch` module) started on first use by a thread
//! that lives as long as the test process, so the kernel stops it when the
//! process exits, however it exits.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use shiftlog::conn::{ConnInfo, ConnSource, PartialConnInfo};
use shiftlog::ident::quote_ident;
use shiftlog::scratch::{ScratchOptions, ScratchServer};
use tokio_postgres::Client;

/// Prefix of every test database; the process id follows, so a later run can
/// tell which ones belong to dead runs.
const DB_PREFIX: &str = "shiftlog_t_";

struct Shared {
    /// Admin URL (a superuser, database `postgres`).
    url: String,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let url = match std::env::var("SHIFTLOG_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => start_shared_server(),
        };
        sweep_stale_databases(&url);
        Shared { url }
    })
}

fn start_shared_server() -> String {
    start_server_thread(ScratchOptions::default())
}

/// Starts a throwaway server owned by a thread that lives as long as the test
/// process (the kernel stops the server when the process exits) and returns
/// its URL. For tests that need a differently configured server (TLS, passwords).
pub fn start_server_thread(options: ScratchOptions) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("scratch-postgres".into())
        .spawn(move || {
            let options = ScratchOptions {
                stop_with_parent: true,
                ..options
            };
            match ScratchServer::start(&options) {
                Ok(server) => {
                    let _ = tx.send(Ok(server.url()));
                    // Keep the server (and this thread, its "parent") alive for the
                    // whole process; the kernel stops postgres when we exit.
                    let _keep = server;
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        })
        .expect("spawn the scratch server thread");
    match rx.recv().expect("scratch server thread answers") {
        Ok(url) => url,
        Err(e) => panic!(
            "cannot start the test PostgreSQL server: {e}\n\
             (install PostgreSQL, e.g. run scripts/test, or set SHIFTLOG_TEST_DATABASE_URL)"
        ),
    }
}

/// Drops test databases left by runs whose process is gone.
fn sweep_stale_databases(url: &str) {
    run_blocking(async {
        let admin = connect_url(url).await;
        let rows = admin
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE $1",
                &[&format!("{DB_PREFIX}%")],
            )
            .await
            .expect("list test databases");
        for row in rows {
            let name: String = row.get(0);
            let pid = name
                .strip_prefix(DB_PREFIX)
                .and_then(|r| r.split('_').next())
                .and_then(|p| p.parse::<u32>().ok());
            let dead = pid.is_some_and(|p| {
                p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists()
            });
            if dead {
                let _ = admin
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        quote_ident(&name)
                    ))
                    .await;
            }
        }
    });
}

/// Runs a future to completion on a private runtime in a helper thread (usable
/// from `Drop` and from inside another runtime).
pub fn run_blocking<F: std::future::Future + Send>(fut: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build runtime")
                .block_on(fut)
        })
        .join()
        .expect("helper thread")
    })
}

/// Parses a URL into connection parameters (no environment involved).
pub fn info(url: &str) -> ConnInfo {
    PartialConnInfo::parse(url)
        .expect("valid url")
        .resolve(ConnSource::Explicit, &|_| None)
        .expect("resolves")
}

/// Connects to `url`, panicking with the library's message on failure.
pub async fn connect_url(url: &str) -> Client {
    shiftlog::conn::connect(&info(url))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// A database of its own for one test; dropped when the value is dropped.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// Its name.
    pub name: String,
    admin_url: String,
}

impl TestDb {
    /// Creates a fresh, empty database named after `test` (pass the test's name).
    pub async fn new(test: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let shared = shared();
        let slug: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let name = format!(
            "{DB_PREFIX}{}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            slug
        );
        let admin = connect_url(&shared.url).await;
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE template0",
                quote_ident(&name)
            ))
            .await
            .unwrap_or_else(|e| panic!("create test database {name}: {e}"));
        let base = info(&shared.url);
        let url = base.with_dbname(&name);
        Self {
            url: url_of(&url, &shared.url),
            name,
            admin_url: shared.url.clone(),
        }
    }

    /// A new connection to this database.
    pub async fn client(&self) -> Client {
        connect_url(&self.url).await
    }

    /// Connection parameters of this database.
    pub fn info(&self) -> ConnInfo {
        info(&self.url)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        run_blocking(async move {
            if let Ok(admin) = shiftlog::conn::connect(&info(&admin_url)).await {
                let _ = admin
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        quote_ident(&name)
                    ))
                    .await;
            }
        });
    }
}

/// The admin URL with the database replaced, keeping the password if any.
fn url_of(info: &ConnInfo, admin_url: &str) -> String {
    let (head, query) = admin_url.split_once('?').unwrap_or((admin_url, ""));
    let base = head.rsplit_once('/').map(|(b, _)| b).unwrap_or(head);
    let url = format!("{base}/{}", shiftlog::conn::percent_encode(&info.dbname));
    if query.is_empty() {
        url
    } else {
        format!("{url}?{query}")
    }
}

/// A project directory (shiftlog.toml, migrations/, backfills/) in a temp dir.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// An empty project with a `migrations/` directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("migrations")).expect("mkdir migrations");
        Self { dir }
    }

    /// The project root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `rel` (relative to the root), creating directories.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// The `shiftlog` binary with this project as `--dir`, a clean environment
    /// (no DATABASE_URL or PG* from the developer's shell) and `db` as database.
    pub fn cmd(&self, db: Option<&TestDb>) -> Command {
        let mut cmd = shiftlog_cmd();
        cmd.arg("--dir").arg(self.path());
        if let Some(db) = db {
            cmd.env("DATABASE_URL", &db.url);
        }
        cmd
    }
}

/// The `shiftlog` binary with an environment free of database variables.
pub fn shiftlog_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shiftlog"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PG") || k == "DATABASE_URL" || k.starts_with("SHIFTLOG") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// Output of a finished command, for assertions.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` with stdout — and, with `stderr_too`, stderr — a pipe whose
/// reader has gone (`shiftlog … | head` once `head` exited, a CI log
/// collector that died): every write to it fails with EPIPE. Returns the
/// exit code and whatever reached an open stderr.
pub fn run_with_output_gone(cmd: &mut Command, stderr_too: bool) -> Output {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run shiftlog");
    // Close the reading ends before the process has written anything (it
    // still has to start and connect).
    drop(child.stdout.take());
    if stderr_too {
        drop(child.stderr.take());
    }
    let out = child.wait_with_output().expect("wait for shiftlog");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cmd` and captures its output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run shiftlog");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Unused-port URL: nothing listens there.
pub fn unreachable_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    format!(
        "postgres://nobody:hunter2-secret@127.0.0.1:{port}/nothing?sslmode=disable&connect_timeout=3"
    )
}

/// The shared server's admin URL.
pub fn server_url() -> String {
    shared().url.clone()
}

impl Project {
    /// Writes a simple migration `<version>_<name>.sql` (and `.down.sql` when given).
    pub fn migration(&self, version: &str, name: &str, up: &str, down: Option<&str>) {
        self.write(&format!("migrations/{version}_{name}.sql"), up);
        if let Some(down) = down {
            self.write(&format!("migrations/{version}_{name}.down.sql"), down);
        }
    }

    /// Writes a phased migration directory.
    pub fn phased(&self, version: &str, name: &str, files: &[(&str, &str)]) {
        for (file, text) in files {
            self.write(&format!("migrations/{version}_{name}/{file}"), text);
        }
    }

    /// Refreshes `migrations/shiftlog.sum` (what a developer does with `shiftlog sum`).
    pub fn sum(&self) {
        let project = shiftlog::project::Project::load(self.path())
            .unwrap_or_else(|e| panic!("load project: {e}"));
        project
            .write_sum()
            .unwrap_or_else(|e| panic!("write sum: {e}"));
    }

    /// Runs `shiftlog ARGS` against `db` and returns its output.
    pub fn run(&self, db: &TestDb, args: &[&str]) -> Output {
        run(self.cmd(Some(db)).args(args))
    }

    /// Like [`Project::run`], asserting exit 0.
    pub fn ok(&self, db: &TestDb, args: &[&str]) -> Output {
        let out = self.run(db, args);
        assert_eq!(out.code, 0, "shiftlog {args:?} failed: {out:?}");
        out
    }
}

/// The ledger of `db` (schema `shiftlog`).
pub fn ledger() -> shiftlog::ledger::Ledger {
    shiftlog::ledger::Ledger::new("shiftlog")
}

/// Every ledger event of `db`.
pub async fn events(client: &Client) -> Vec<shiftlog::ledger::Event> {
    ledger()
        .read_events(client, 1, None)
        .await
        .expect("read events")
}

/// Events of one kind.
pub async fn events_of(client: &Client, kind: &str) -> Vec<shiftlog::ledger::Event> {
    events(client)
        .await
        .into_iter()
        .filter(|e| e.kind.as_str() == kind)
        .collect()
}

/// Whether a relation exists.
pub async fn relation_exists(client: &Client, name: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .expect("to_regclass")
        .get(0)
}

/// Whether the ledger schema exists.
pub async fn ledger_exists(client: &Client) -> bool {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'shiftlog')",
            &[],
        )
        .await
        .expect("query")
        .get(0)
}

/// Verifies the ledger with the library and asserts it is clean.
pub async fn assert_ledger_verifies(db: &TestDb) {
    let session = session(db).await;
    let report = shiftlog::ops::audit::verify(&session, None)
        .await
        .expect("verify runs");
    assert!(
        report.is_ok(),
        "ledger does not verify: {:?}",
        report.problems
    );
}

/// A library session on `db`.
pub async fn session(db: &TestDb) -> shiftlog::ops::Session {
    shiftlog::ops::Session::open(&db.info(), "shiftlog", Some("tester"))
        .await
        .expect("session")
}

/// A child process that is killed when the test ends, also when it panics,
/// so a failed test never leaves a runner behind.
pub struct ChildGuard(pub std::process::Child);

impl std::ops::Deref for ChildGuard {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs a SQL file statement by statement, as `psql -f` does (so `CREATE
/// INDEX CONCURRENTLY` runs outside a transaction).
pub async fn run_sql_file(client: &Client, path: &Path) {
    let sql = std::fs::read_to_string(path).expect("fixture sql");
    for (_, statement) in shiftlog::sql::statement_slices(&sql) {
        client
            .batch_execute(statement)
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    }
}

/// A fresh project holding a copy of `tests/fixtures/<dir>/`.
pub fn fixture_project(dir: &str) -> Project {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read fixture") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
    let p = Project::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    copy(&root.join(dir), p.path());
    p
}
