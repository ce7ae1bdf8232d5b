//! The throwaway server: starts (dropping root privileges when needed), serves,
//! and leaves nothing behind — also when the code using it panics.

use shiftlog::scratch::{ScratchOptions, ScratchServer};

use crate::support;

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn starts_serves_and_cleans_up() {
    let server = ScratchServer::start(&ScratchOptions::default()).expect("starts");
    let (dir, port) = (server.dir().to_owned(), server.port());
    assert!(dir.join("data/PG_VERSION").exists());
    let url = server.url();
    let user: String = support::run_blocking(async move {
        let client = support::connect_url(&url).await;
        client
            .query_one("SELECT current_user::text", &[])
            .await
            .expect("query")
            .get(0)
    });
    assert_eq!(user, "postgres");
    // Running as root, the server processes must not be root.
    let owner =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(dir.join("data")).expect("stat"));
    if unsafe_free_is_root() {
        assert_ne!(owner, 0, "data directory must belong to the postgres user");
    }
    server.stop();
    assert!(!dir.exists(), "directory removed");
    assert!(!port_open(port), "server stopped");
}

#[test]
fn cleans_up_after_a_panic() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let server = ScratchServer::start(&ScratchOptions::default()).expect("starts");
        *seen.lock().expect("lock") = Some((server.dir().to_owned(), server.port()));
        panic!("test body failed while the server was running");
    });
    assert!(result.is_err());
    let (dir, port) = seen.lock().expect("lock").clone().expect("server started");
    assert!(
        !dir.exists(),
        "directory removed after panic: {}",
        dir.display()
    );
    assert!(!port_open(port), "server stopped after panic");
}

fn unsafe_free_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
