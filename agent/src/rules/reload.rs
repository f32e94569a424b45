//! Hot reload: the rules files are checked on a timer; a change that loads
//! and compiles replaces the rules between two batches, one that does not is
//! rejected with the same errors `rules check` gives, and the previous rules
//! stay in force.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{RuleSet, Sources, diag::Severity};
use crate::metrics::Metrics;

/// What the files held when last looked at: their bytes, or why they could
/// not be read. Rules files are small; comparing contents also catches a
/// change that keeps the size and the modification time (a ConfigMap swap).
fn snapshot(sources: &Sources) -> Vec<Result<String, String>> {
    sources
        .files
        .iter()
        .map(|path| super::ruleset::read_rules_file(path))
        .collect()
}

/// Watches `sources` every `interval` until `shutdown`, publishing each
/// valid change on `tx`.
pub async fn watch_files(
    sources: Sources,
    interval: Duration,
    tx: watch::Sender<Arc<RuleSet>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut last = snapshot(&sources);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = snapshot(&sources);
        if now == last {
            continue;
        }
        last = now;
        let load = sources.clone();
        let loaded = match tokio::task::spawn_blocking(move || RuleSet::load(&load)).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(error = %e, "reloading rules failed");
                continue;
            }
        };
        match loaded {
            Ok(set) => {
                tracing::info!(
                    rules = set.rules().len(),
                    enabled = set.enabled(),
                    "rules changed on disk; the new rules are in force"
                );
                metrics.rules_reloaded(true, set.enabled());
                tx.send_replace(Arc::new(set));
            }
            Err(e) => {
                for diagnostic in e.0.iter().filter(|d| d.severity == Severity::Error) {
                    tracing::error!("{diagnostic}");
                }
                tracing::error!("rules change rejected; the previous rules stay in force");
                metrics.rules_reloaded(false, tx.borrow().enabled());
            }
        }
    }
}
