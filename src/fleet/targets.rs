//! A fleet's targets: read from `[fleets.NAME]` (URLs, environments, a
//! file, a registry query), then identified on their servers so that the
//! same database reached through two URLs is refused before anything runs.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{FleetConfig, ProjectConfig, expand_vars};
use crate::conn::{ConnInfo, ConnSource, PartialConnInfo, connect};
use crate::error::Error;

/// One database of a fleet.
#[derive(Debug, Clone)]
pub struct Target {
    /// How reports name it: the label given, else `user@host:port/dbname`
    /// (never a password).
    pub label: String,
    /// Where it is.
    pub info: ConnInfo,
}

impl Target {
    /// The server it is on (`host:port`): the unit of `--parallel`.
    pub fn server(&self) -> String {
        format!("{}:{}", self.info.host, self.info.port)
    }
}

fn config_error(config: &ProjectConfig, message: String) -> Error {
    Error::Config {
        path: config.path.clone(),
        line: None,
        message,
    }
}

/// The fleet `name`'s configuration, or an error listing the known ones.
pub fn fleet_config<'c>(config: &'c ProjectConfig, name: &str) -> Result<&'c FleetConfig, Error> {
    config.fleets.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.fleets.keys().map(String::as_str).collect();
        config_error(
            config,
            if known.is_empty() {
                format!(
                    "fleet `{name}` is not defined: add [fleets.{name}] with targets, envs, file \
                     or registry + query to shiftlog.toml"
                )
            } else {
                format!(
                    "fleet `{name}` is not defined (known: {})",
                    known.join(", ")
                )
            },
        )
    })
}

/// Every target of fleet `name`, in the order the configuration gives them
/// (URLs, environments, the file, the registry's rows). Reads the registry
/// when there is one; does not connect to the targets.
pub async fn resolve(
    config: &ProjectConfig,
    root: &Path,
    name: &str,
    var: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Vec<Target>, Error> {
    let fleet = fleet_config(config, name)?;
    let mut targets = Vec::new();
    for (i, url) in fleet.targets.iter().enumerate() {
        let where_ = format!("fleet `{name}`, targets[{i}]");
        let url =
            expand_vars(url, var).map_err(|m| config_error(config, format!("{where_}: {m}")))?;
        targets.push(target(None, &url, &where_, var)?);
    }
    for env in &fleet.envs {
        let url = config.environment_url(env, var)?;
        let where_ = format!("fleet `{name}`, environment `{env}`");
        targets.push(target(Some(env.clone()), &url, &where_, var)?);
    }
    if let Some(file) = &fleet.file {
        targets.extend(from_file(&root.join(file), var)?);
    }
    match (&fleet.registry, &fleet.query) {
        (Some(registry), Some(query)) => {
            targets.extend(from_registry(config, name, registry, query, var).await?);
        }
        (None, None) => {}
        _ => {
            return Err(config_error(
                config,
                format!("fleet `{name}`: `registry` and `query` go together; give both"),
            ));
        }
    }
    if targets.is_empty() {
        return Err(config_error(
            config,
            format!("fleet `{name}` has no targets: nothing would be done"),
        ));
    }
    Ok(targets)
}

fn target(
    label: Option<String>,
    url: &str,
    where_: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, Error> {
    let info = PartialConnInfo::parse(url)
        .and_then(|p| p.resolve(ConnSource::Explicit, var))
        .map_err(|e| Error::Usage {
            message: format!("{where_}: {e}"),
        })?;
    Ok(Target {
        label: label.unwrap_or_else(|| info.target()),
        info,
    })
}

/// `label<TAB>url` or `url` lines; blank lines and `#` comments skipped.
fn from_file(path: &Path, var: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Target>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let where_ = format!("{}:{}", path.display(), n + 1);
        let (label, url) = match line.split_once('\t') {
            Some((label, url)) => (Some(label.trim().to_owned()), url.trim()),
            None => (None, line),
        };
        let url = expand_vars(url, var).map_err(|message| Error::Config {
            path: Some(path.to_owned()),
            line: Some(n as u32 + 1),
            message,
        })?;
        out.push(target(label, &url, &where_, var)?);
    }
    Ok(out)
}

/// The connection parameters of fleet `name`'s registry database (a URL,
/// or the name of an environment).
pub(crate) fn registry_info(
    config: &ProjectConfig,
    name: &str,
    registry: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<ConnInfo, Error> {
    let url = if config.environments.contains_key(registry) {
        config.environment_url(registry, var)?
    } else {
        expand_vars(registry, var)
            .map_err(|m| config_error(config, format!("fleet `{name}` registry: {m}")))?
    };
    Ok(target(None, &url, &format!("fleet `{name}` registry"), var)?.info)
}

async fn from_registry(
    config: &ProjectConfig,
    name: &str,
    registry: &str,
    query: &str,
    var: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Vec<Target>, Error> {
    let info = registry_info(config, name, registry, var)?;
    let client = connect(&info).await?;
    let rows = client.query(query, &[]).await.map_err(|e| {
        let why = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned());
        config_error(
            config,
            format!(
                "fleet `{name}`: the registry query failed on {}: {why}; fix `query` in \
                 [fleets.{name}]",
                info.target()
            ),
        )
    })?;
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let column = |wanted: &str| first.columns().iter().position(|c| c.name() == wanted);
    let Some(url_col) = column("url") else {
        let found: Vec<&str> = first.columns().iter().map(|c| c.name()).collect();
        return Err(config_error(
            config,
            format!(
                "fleet `{name}`: the registry query must return a `url` column (and may return \
                 `label`); it returned {}",
                found.join(", ")
            ),
        ));
    };
    let label_col = column("label");
    let mut out = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let text = |i: usize| -> Result<Option<String>, Error> {
            row.try_get::<_, Option<String>>(i).map_err(|e| {
                config_error(
                    config,
                    format!(
                        "fleet `{name}`: registry row {}: column {i} is not text: {e}",
                        n + 1
                    ),
                )
            })
        };
        let label = label_col.map(text).transpose()?.flatten();
        let where_ = format!(
            "fleet `{name}`: registry row {}{}",
            n + 1,
            label
                .as_deref()
                .map(|l| format!(" ({l})"))
                .unwrap_or_default()
        );
        let Some(url) = text(url_col)?.filter(|u| !u.trim().is_empty()) else {
            return Err(config_error(config, format!("{where_} has no url")));
        };
        out.push(target(label, &url, &where_, var)?);
    }
    Ok(out)
}

/// What makes a database itself whatever URL reaches it: its cluster's
/// system identifier (or, where the role may not read it, the server's
/// address and data directory are not visible either, so `host:port`) and
/// the database's OID.
pub(crate) async fn identity(
    client: &tokio_postgres::Client,
    target: &Target,
) -> Result<String, Error> {
    let row = client
        .query_one(
            "SELECT (SELECT oid::text FROM pg_database WHERE datname = current_database()), \
                    (SELECT system_identifier::text FROM pg_control_system())",
            &[],
        )
        .await;
    match row {
        Ok(row) => Ok(format!(
            "{}/{}",
            row.get::<_, Option<String>>(1)
                .unwrap_or_else(|| target.server()),
            row.get::<_, Option<String>>(0).unwrap_or_default()
        )),
        Err(_) => {
            let row = client
                .query_one(
                    "SELECT oid::text FROM pg_database WHERE datname = current_database()",
                    &[],
                )
                .await
                .map_err(|e| Error::db(format!("identifying {}", target.label), e))?;
            Ok(format!("{}/{}", target.server(), row.get::<_, String>(0)))
        }
    }
}

/// Refuses two targets that are the same database (by [`identity`]).
pub(crate) fn refuse_duplicates(
    identities: &[(usize, String)],
    targets: &[Target],
) -> Result<(), Error> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, id) in identities {
        if let Some(first) = seen.insert(id, *i) {
            return Err(Error::Usage {
                message: format!(
                    "targets {} and {} are the same database (reached through two URLs): \
                     remove one from the fleet; nothing was applied",
                    targets[first].label, targets[*i].label
                ),
            });
        }
    }
    Ok(())
}
