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

/// The scratch directory created by process `pid`, once it exists.
fn scratch_dir_of(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("shiftlog-scratch-"))
        })
        .find(|p| {
            std::fs::read_to_string(p.join("shiftlog-owner.pid"))
                .is_ok_and(|s| s.trim() == pid.to_string())
        })
}

/// Waits up to `secs` for `cond`.
fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// `kill -9` of a process running a scratch server (here `shiftlog demo`)
/// stops the server too: it is not left running with nobody to stop it.
#[test]
fn the_server_stops_when_its_process_is_killed_outright() {
    let mut child = support::shiftlog_cmd()
        .arg("demo")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start shiftlog demo");
    let mut dir = None;
    let mut port = None;
    let up = eventually(60, || {
        dir = dir.take().or_else(|| scratch_dir_of(child.id()));
        port = dir.as_ref().and_then(|d| {
            let pid = std::fs::read_to_string(d.join("data/postmaster.pid")).ok()?;
            pid.lines().nth(3)?.trim().parse::<u16>().ok()
        });
        port.is_some_and(port_open)
    });
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    assert!(up, "the demo's scratch server never came up");
    let (dir, port) = (dir.expect("dir"), port.expect("port"));
    let stopped = eventually(15, || !port_open(port));
    if !stopped {
        // Do not leave it running once the test has failed.
        if let Some(pid) = std::fs::read_to_string(dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
        {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid])
                .status();
            eventually(15, || !port_open(port));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        stopped,
        "the scratch server in {} outlived its killed process",
        dir.display()
    );
}

/// A server left running by a process that is gone (started without the
/// safeguard above) is stopped by the next server's start.
#[test]
fn a_leftover_server_whose_process_is_gone_is_stopped_by_the_next_start() {
    let orphan = ScratchServer::start(&ScratchOptions {
        stop_with_parent: false,
        ..ScratchOptions::default()
    })
    .expect("starts");
    let (dir, port) = (orphan.dir().to_owned(), orphan.port());
    // Its owner: a process that has exited.
    let mut gone = std::process::Command::new("true").spawn().expect("true");
    let gone_pid = gone.id();
    gone.wait().expect("wait");
    std::fs::write(dir.join("shiftlog-owner.pid"), gone_pid.to_string()).expect("owner");
    // Nobody stops it now (as if its process had been killed).
    std::mem::forget(orphan);
    assert!(port_open(port));

    let next = ScratchServer::start(&ScratchOptions::default()).expect("starts");
    let stopped = eventually(15, || !port_open(port));
    drop(next);
    if stopped {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(stopped, "the leftover server on port {port} still runs");
}
