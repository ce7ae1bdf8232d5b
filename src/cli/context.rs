//! Resolves global flags into the library's inputs: project configuration and
//! connection parameters.

use shiftlog::config::ProjectConfig;
use shiftlog::conn::{self, ConnInfo, ConnectRequest};

use super::args::GlobalArgs;

/// The project configuration under `--dir`.
pub fn project_config(global: &GlobalArgs) -> shiftlog::Result<ProjectConfig> {
    ProjectConfig::load(&global.dir)
}

/// Connection parameters from the flags, the configuration and the process environment.
#[allow(dead_code)] // used by the database commands
pub fn conn_info(global: &GlobalArgs, config: &ProjectConfig) -> shiftlog::Result<ConnInfo> {
    let request = ConnectRequest { database_url: global.database_url.clone(), env: global.env.clone() };
    let info = conn::resolve(&request, config, &|k| std::env::var(k).ok())?;
    tracing::debug!(target = %info, source = %info.source, "connection resolved");
    Ok(info)
}
