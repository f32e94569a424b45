//! The pipeline's matching step: batches of enriched events come in, in the
//! order the kernel reported them; each batch is evaluated on one of several
//! worker threads; batches go out in the same order, each violation right
//! after the event that raised it.
//!
//! The process tree is updated before this step, by the reader alone, so
//! evaluating batches in parallel reads consistent process state: every
//! event already carries the ancestry it had when it happened.

use std::{collections::VecDeque, sync::Arc};

use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use super::RuleSet;
use crate::{events::reader::Batch, metrics::Metrics};

/// What the step did, for the log line at shutdown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageTally {
    /// Events evaluated.
    pub events: u64,
    /// Violations raised.
    pub violations: u64,
}

/// Evaluates batches from `rx` against the current rules (a reload swaps
/// them between batches) and passes them on to `tx`, with at most `workers`
/// batches in flight. Ends when `rx` closes and everything is passed on.
pub async fn run(
    mut rx: mpsc::Receiver<Batch>,
    tx: mpsc::Sender<Batch>,
    rules: watch::Receiver<Arc<RuleSet>>,
    workers: usize,
    metrics: Arc<Metrics>,
) -> StageTally {
    let workers = workers.max(1);
    let mut in_flight: VecDeque<JoinHandle<(Batch, u64)>> = VecDeque::with_capacity(workers);
    let mut next_number = 1u64;
    let mut tally = StageTally::default();
    let mut input_open = true;
    loop {
        let finished = if in_flight.len() >= workers || (!input_open && !in_flight.is_empty()) {
            in_flight.pop_front().map(Some)
        } else if !input_open {
            break;
        } else {
            None
        };
        let done = match finished {
            Some(Some(handle)) => Some(handle.await),
            _ => tokio::select! {
                batch = rx.recv() => {
                    match batch {
                        Some(batch) => {
                            let first = next_number;
                            next_number += batch.len() as u64;
                            let set = rules.borrow().clone();
                            in_flight.push_back(tokio::task::spawn_blocking(move || {
                                evaluate(&set, batch, first)
                            }));
                        }
                        None => input_open = false,
                    }
                    None
                }
                result = async {
                    match in_flight.front_mut() {
                        Some(handle) => handle.await,
                        None => std::future::pending().await,
                    }
                }, if !in_flight.is_empty() => {
                    in_flight.pop_front();
                    Some(result)
                }
            },
        };
        let Some(result) = done else {
            continue;
        };
        match result {
            Ok((batch, violations)) => {
                tally.events += batch.len() as u64 - violations;
                tally.violations += violations;
                metrics.count_violations(&batch);
                if tx.send(batch).await.is_err() {
                    tracing::error!("the outputs are gone; stopping rule evaluation");
                    break;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a rule evaluation worker failed; its batch is lost")
            }
        }
    }
    tally
}

/// Evaluates one batch; returns it with the violations inserted, and how
/// many there are.
fn evaluate(rules: &RuleSet, batch: Batch, first_number: u64) -> (Batch, u64) {
    let mut out = Vec::with_capacity(batch.len());
    let mut raised = Vec::new();
    let mut violations = 0;
    for (number, event) in (first_number..).zip(batch) {
        rules.evaluate(&event, number, &mut raised);
        out.push(event);
        violations += raised.len() as u64;
        out.append(&mut raised);
    }
    (out, violations)
}
