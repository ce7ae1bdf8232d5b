//! Work on every target of a fleet with at most `parallel` targets in flight
//! per server (`--parallel`): what each roll-up shares.

use std::collections::BTreeMap;
use std::future::Future;

use futures::StreamExt;
use tokio::sync::Semaphore;

use super::targets::Target;
use crate::error::Error;

/// Per-server limits on targets in flight.
pub(crate) struct Limits(BTreeMap<String, Semaphore>);

impl Limits {
    /// `parallel` on each server of `targets`.
    pub(crate) fn new(targets: &[Target], parallel: usize) -> Self {
        Self(
            targets
                .iter()
                .map(|t| (t.server(), Semaphore::new(parallel)))
                .collect(),
        )
    }

    /// How many servers.
    pub(crate) fn servers(&self) -> usize {
        self.0.len().max(1)
    }

    /// Waits for a place on `target`'s server.
    pub(crate) async fn enter(&self, target: &Target) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.0.get(&target.server())?.acquire().await.ok()
    }
}

/// Refuses `--parallel 0` (every fleet operation does; a caller may check
/// first, before it resolves the targets).
pub fn check_parallel(parallel: usize) -> Result<(), Error> {
    if parallel == 0 {
        return Err(Error::Usage {
            message:
                "--parallel 0 would work on nothing; give 1 or more targets at once per server"
                    .into(),
        });
    }
    Ok(())
}

/// Runs `work` on every target, at most `parallel` at once per server, and
/// returns the results in the fleet's order.
pub(crate) async fn each<'t, T, F, Fut>(targets: &'t [Target], parallel: usize, work: F) -> Vec<T>
where
    F: Fn(&'t Target) -> Fut,
    Fut: Future<Output = T>,
{
    let limits = Limits::new(targets, parallel);
    let limits = &limits;
    let work = &work;
    let mut rows: Vec<(usize, T)> = futures::stream::iter(targets.iter().enumerate())
        .map(|(i, t)| async move {
            let _permit = limits.enter(t).await;
            (i, work(t).await)
        })
        .buffer_unordered(parallel * limits.servers())
        .collect()
        .await;
    rows.sort_by_key(|(i, _)| *i);
    rows.into_iter().map(|(_, r)| r).collect()
}
