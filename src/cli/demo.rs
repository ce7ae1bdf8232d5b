//! `shiftlog demo`: a throwaway server and the sample project.

use shiftlog::ExitStatus;
use shiftlog::conn::{ConnSource, PartialConnInfo};
use shiftlog::scratch::{ScratchOptions, ScratchServer};

use super::args::{DemoArgs, GlobalArgs};

pub async fn exec(_global: &GlobalArgs, args: DemoArgs) -> anyhow::Result<ExitStatus> {
    eprintln!("starting a throwaway PostgreSQL server…");
    let server =
        tokio::task::spawn_blocking(|| ScratchServer::start(&ScratchOptions::default())).await??;
    eprintln!("server {} running at {}", server.version(), server.url());
    let info = PartialConnInfo::parse(&server.url())?.resolve(ConnSource::Explicit, &|_| None)?;
    let client = shiftlog::conn::connect(&info).await?;
    let row = client.query_one("SELECT version()", &[]).await?;
    let version: String = row.get(0);
    println!("connected: {version}");
    if args.keep {
        eprintln!("press Ctrl-C to stop the server");
        tokio::signal::ctrl_c().await?;
    }
    drop(client);
    tokio::task::spawn_blocking(move || server.stop()).await?;
    eprintln!("server stopped and removed");
    Ok(ExitStatus::Success)
}
