//! Hot reload: the rules files are checked on a timer; a change that loads
//! and compiles replaces the rules between two batches, one that does not is
//! rejected with the same errors `rules check` gives, and the previous rules
//! stay in force.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    RuleSet, Sources,
    diag::Severity,
    loader::{RulesFile, read_files},
};
use crate::metrics::Metrics;

/// What the files held when last looked at: their texts, and an error for
/// each that could not be read. Rules files are small; comparing contents
/// also catches a change that keeps the size and the modification time (a
/// ConfigMap swap). What is compared is what gets compiled: each change is
/// read once.
type Snapshot = (Vec<RulesFile>, Vec<super::diag::Diagnostic>);

/// Watches `sources` every `interval` until `shutdown`, publishing each
/// valid change on `tx`.
pub async fn watch_files(
    sources: Sources,
    interval: Duration,
    tx: watch::Sender<Arc<RuleSet>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut last: Snapshot = read_files(&sources.files);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = read_files(&sources.files);
        if now == last {
            continue;
        }
        last = now.clone();
        let load = sources.clone();
        let compile = move || match now {
            (files, unreadable) if unreadable.is_empty() => RuleSet::compile(&load, files),
            (_, unreadable) => Err(super::diag::RulesError(unreadable)),
        };
        let loaded = match tokio::task::spawn_blocking(compile).await {
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
