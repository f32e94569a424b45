//! The pipeline's matching step: batches of enriched events come in, in the
//! order the kernel reported them; this task evaluates each itself while it
//! keeps up, and once a backlog builds each batch goes to one of several
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

use super::{RuleSet, verdicts::Verdicts};
use crate::{
    events::{event::Event, reader::Batch},
    metrics::Metrics,
};

/// What the step did, for the log line at shutdown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageTally {
    /// Events evaluated.
    pub events: u64,
    /// Violations raised.
    pub violations: u64,
    /// Batches handed to worker threads.
    pub on_workers: u64,
    /// Events given the verdict reached for the same call before.
    pub verdicts_reused: u64,
}

/// Who evaluates the batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workers {
    /// Worker threads, each evaluating a batch at a time.
    pub threads: usize,
    /// Batches waiting behind the current one before the workers take
    /// part. Handing a batch to a thread and back wakes both (a thread
    /// wake-up costs several microseconds here), and a stage that keeps up
    /// does better without: the workers are for catching up.
    pub from_backlog: usize,
}

/// Evaluates batches from `rx` against the current rules (a reload swaps
/// them between batches) and passes them on to `tx`, with at most
/// `workers.threads` batches in flight. Ends when `rx` closes and
/// everything is passed on.
pub async fn run(
    mut rx: mpsc::Receiver<Batch>,
    tx: mpsc::Sender<Batch>,
    rules: watch::Receiver<Arc<RuleSet>>,
    workers: Workers,
    metrics: Arc<Metrics>,
) -> StageTally {
    let from_backlog = workers.from_backlog.max(1);
    let workers = workers.threads.max(1);
    let mut in_flight: VecDeque<JoinHandle<Evaluated>> = VecDeque::with_capacity(workers);
    // A table of verdicts for this task and one for each batch on a worker
    // thread; a table comes back with its batch and is lent again.
    let mut verdicts = Verdicts::new();
    let mut spare_verdicts: Vec<Verdicts> = Vec::with_capacity(workers);
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
                            // A batch no rule applies to, with none ahead of
                            // it, goes on at once: handing it to a worker
                            // thread and back costs more than the lookups.
                            if in_flight.is_empty() && !batch.iter().any(|e| set.can_match(e)) {
                                Some(Ok(Evaluated { batch, violations: 0, reused: 0, lent: None }))
                            } else if in_flight.is_empty() && rx.len() < from_backlog {
                                // Keeping up: evaluated here (a batch takes
                                // well under a millisecond).
                                Some(Ok(evaluate(&set, batch, first, &mut verdicts)))
                            } else {
                                tally.on_workers += 1;
                                let mut lent = spare_verdicts.pop().unwrap_or_default();
                                in_flight.push_back(tokio::task::spawn_blocking(move || {
                                    let evaluated = evaluate(&set, batch, first, &mut lent);
                                    Evaluated { lent: Some(lent), ..evaluated }
                                }));
                                None
                            }
                        }
                        None => {
                            input_open = false;
                            None
                        }
                    }
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
            Ok(Evaluated {
                batch,
                violations,
                reused,
                lent,
            }) => {
                spare_verdicts.extend(lent);
                if reused > 0 {
                    tally.verdicts_reused += reused;
                    metrics.count_verdicts_reused(reused);
                }
                tally.events += batch.len() as u64 - violations;
                tally.violations += violations;
                // Most batches raise none: do not walk them again.
                if violations > 0 {
                    metrics.count_violations(&batch);
                }
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

/// A batch back from evaluation.
struct Evaluated {
    /// The batch, each violation right after the event that raised it.
    batch: Batch,
    violations: u64,
    /// Its events given a kept verdict.
    reused: u64,
    /// The table of verdicts lent to the worker thread that evaluated it.
    lent: Option<Verdicts>,
}

/// Evaluates one batch; returns it with the violations inserted, and how
/// many there are. A batch without violations (the usual case) is returned
/// as it came, without moving its events.
fn evaluate(
    rules: &RuleSet,
    batch: Batch,
    first_number: u64,
    verdicts: &mut Verdicts,
) -> Evaluated {
    let (reused_before, _) = verdicts.counts();
    let mut raised: Vec<(usize, Event)> = Vec::new();
    rules.evaluate_batch(
        &batch,
        first_number,
        Some(&mut *verdicts),
        |i, violation| {
            raised.push((i, violation));
        },
    );
    let reused = verdicts.counts().0 - reused_before;
    if raised.is_empty() {
        return Evaluated {
            batch,
            violations: 0,
            reused,
            lent: None,
        };
    }
    let violations = raised.len() as u64;
    let mut out = Vec::with_capacity(batch.len() + raised.len());
    let mut raised = raised.into_iter().peekable();
    for (i, event) in batch.into_iter().enumerate() {
        out.push(event);
        while let Some((_, violation)) = raised.next_if(|(at, _)| *at == i) {
            out.push(violation);
        }
    }
    Evaluated {
        batch: out,
        violations,
        reused,
        lent: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::event::{Event, EventKind, Process, WallTime};
    use crate::rules::{MatchMode, Selection};

    fn exec(pid: u32, comm: &str) -> Event {
        Event {
            process: Some(Arc::new(Process {
                pid,
                comm: comm.into(),
                ..Process::default()
            })),
            ..Event::new(
                EventKind::ProcessExec,
                WallTime(std::time::SystemTime::now()),
                u64::from(pid),
                "n".into(),
            )
        }
    }

    fn getppid(pid: u32) -> Event {
        let mut event = exec(pid, "odd");
        event.kind = EventKind::Syscall;
        event.syscall = Some(Arc::new(crate::events::event::Syscall {
            name: "getppid".into(),
            nr: 110,
            ..Default::default()
        }));
        event
    }

    /// One rule: an exec of a program called `odd`.
    fn odd_rule() -> RuleSet {
        let text = "- rule: odd\n  desc: d\n  condition: evt.type = execve and proc.name = odd\n  output: \"%proc.pid\"\n  priority: INFO\n";
        let files = [(Arc::from("t.yaml"), Arc::from(text))];
        RuleSet::from_texts(&files, &Selection::default(), MatchMode::All).expect("rules")
    }

    /// `threads` workers that take part as soon as one batch waits.
    fn eager(threads: usize) -> Workers {
        Workers {
            threads,
            from_backlog: 1,
        }
    }

    /// A running stage with `workers`: its input, its output, its task.
    fn start_stage(
        rules: RuleSet,
        workers: Workers,
    ) -> (
        mpsc::Sender<Batch>,
        mpsc::Receiver<Batch>,
        JoinHandle<StageTally>,
    ) {
        let (in_tx, in_rx) = mpsc::channel(4);
        let (out_rx, stage) = spawn_stage(rules, workers, in_rx, Arc::default());
        (in_tx, out_rx, stage)
    }

    fn spawn_stage(
        rules: RuleSet,
        workers: Workers,
        input: mpsc::Receiver<Batch>,
        metrics: Arc<Metrics>,
    ) -> (mpsc::Receiver<Batch>, JoinHandle<StageTally>) {
        // Rules are never swapped here: the stage keeps the last ones.
        let (_rules_tx, rules_rx) = watch::channel(Arc::new(rules));
        let (out_tx, out_rx) = mpsc::channel(4);
        let stage = tokio::spawn(run(input, out_tx, rules_rx, workers, metrics));
        (out_rx, stage)
    }

    /// Sends `batches` through the stage with `workers`; returns what came out.
    async fn through_stage(
        rules: RuleSet,
        workers: Workers,
        batches: Vec<Batch>,
    ) -> (Vec<Event>, StageTally) {
        let (in_tx, mut out_rx, stage) = start_stage(rules, workers);
        let producer = tokio::spawn(async move {
            for batch in batches {
                in_tx.send(batch).await.expect("the stage runs");
            }
        });
        let seen = everything_out(&mut out_rx).await;
        producer.await.expect("producer");
        (seen, stage.await.expect("stage"))
    }

    /// The events of every batch the stage passes on, until it ends.
    async fn everything_out(out_rx: &mut mpsc::Receiver<Batch>) -> Vec<Event> {
        let mut seen = Vec::new();
        while let Some(batch) = out_rx.recv().await {
            seen.extend(batch);
        }
        seen
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_arrives_alone_is_evaluated_and_passed_on_before_the_next() {
        let (in_tx, mut out_rx, stage) = start_stage(odd_rule(), eager(2));
        // Each batch waits for the one before it to come out: the stage
        // always finds the queue empty and nothing in flight.
        for b in 0..20u32 {
            let batch: Batch = (0..10u32).map(|i| exec(b * 10 + i, "odd")).collect();
            in_tx.send(batch).await.expect("the stage runs");
            let out = out_rx.recv().await.expect("the batch comes out");
            let kinds: Vec<EventKind> = out.iter().map(|e| e.kind).collect();
            let expected: Vec<EventKind> = (0..10)
                .flat_map(|_| [EventKind::ProcessExec, EventKind::Violation])
                .collect();
            assert_eq!(kinds, expected, "each exec then its violation");
            let pids: Vec<u32> = out
                .iter()
                .filter(|e| e.kind != EventKind::Violation)
                .filter_map(|e| e.process.as_ref().map(|p| p.pid))
                .collect();
            assert_eq!(pids, (b * 10..b * 10 + 10).collect::<Vec<u32>>());
        }
        drop(in_tx);
        let tally = stage.await.expect("stage");
        assert_eq!((tally.events, tally.violations), (200, 200));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_repeated_call_gets_its_kept_verdict_and_the_reuse_is_counted() {
        let text = "- rule: odd getppid\n  desc: d\n  condition: evt.type = getppid and proc.name = odd\n  output: \"%proc.pid %evt.num\"\n  priority: INFO\n";
        let files = [(Arc::from("t.yaml"), Arc::from(text))];
        let rules =
            RuleSet::from_texts(&files, &Selection::default(), MatchMode::All).expect("rules");
        let first = getppid(7);
        // One process section and one call, as the decoder and the enricher
        // hand out for a thread that repeats a call.
        let batch: Batch = (0..50).map(|_| first.clone()).collect();
        let (in_tx, in_rx) = mpsc::channel(4);
        let metrics = Arc::new(Metrics::default());
        let (mut out_rx, stage) = spawn_stage(rules, eager(2), in_rx, metrics.clone());
        in_tx.send(batch).await.expect("the stage runs");
        drop(in_tx);
        let seen = everything_out(&mut out_rx).await;
        let tally = stage.await.expect("stage");
        let outputs: Vec<String> = seen
            .iter()
            .filter_map(|e| e.violation.as_ref().map(|v| v.output.clone()))
            .collect();
        let expected: Vec<String> = (1..=50).map(|n| format!("7 {n}")).collect();
        assert_eq!(outputs, expected, "each raises its own violation");
        // Seen once, kept at the second, given to the other 48.
        assert_eq!((tally.violations, tally.verdicts_reused), (50, 48));
        assert!(
            metrics
                .render()
                .contains("\nguardrails_rules_verdicts_reused_total 48\n")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_no_rule_applies_to_pass_between_evaluated_ones_in_order() {
        let rules = odd_rule();
        assert!(!rules.can_match(&getppid(1)), "no rule is about getppid");
        assert!(rules.can_match(&exec(1, "odd")));
        let batches = (0..40u32)
            .map(|b| {
                (0..10u32)
                    .map(|i| match b % 3 {
                        0 => exec(b * 10 + i, "odd"),
                        _ => getppid(b * 10 + i),
                    })
                    .collect()
            })
            .collect();
        let (seen, tally) = through_stage(rules, eager(2), batches).await;
        let execs = (0..40u32).filter(|b| b % 3 == 0).count() as u64 * 10;
        assert_eq!((tally.events, tally.violations), (400, execs));
        let pids: Vec<u32> = seen
            .iter()
            .filter(|e| e.kind != EventKind::Violation)
            .filter_map(|e| e.process.as_ref().map(|p| p.pid))
            .collect();
        assert_eq!(pids, (0..400).collect::<Vec<u32>>(), "events stay in order");
        for (i, event) in seen.iter().enumerate() {
            if event.kind == EventKind::Violation {
                let trigger = &seen[i - 1];
                assert_eq!(trigger.kind, EventKind::ProcessExec);
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_come_out_in_order_with_each_violation_after_its_event() {
        let (seen, tally) = through_stage(odd_rule(), eager(3), alternating(50)).await;
        assert_eq!((tally.events, tally.violations), (5000, 2500));
        let mut expected_pid = 0;
        let mut previous: Option<&Event> = None;
        for event in &seen {
            let pid = event.process.as_ref().map_or(u32::MAX, |p| p.pid);
            if event.kind == EventKind::Violation {
                let trigger = previous.expect("a violation follows its event");
                assert_eq!(trigger.process.as_ref().map(|p| p.pid), Some(pid));
                assert_eq!(pid % 2, 1);
            } else {
                assert_eq!(pid, expected_pid, "events stay in order");
                expected_pid += 1;
            }
            previous = Some(event);
        }
        assert_eq!(expected_pid, 5000);
    }

    /// Execs of `odd` and `even` programs, alternating, in `batches`
    /// batches of 100.
    fn alternating(batches: u32) -> Vec<Batch> {
        (0..batches)
            .map(|b| {
                (0..100u32)
                    .map(|i| {
                        let pid = b * 100 + i;
                        exec(pid, if pid % 2 == 1 { "odd" } else { "even" })
                    })
                    .collect()
            })
            .collect()
    }

    /// Queues all of `batches` before the stage starts, then lets it drain
    /// them.
    async fn drain_backlog(workers: Workers, batches: Vec<Batch>) -> (Vec<Event>, StageTally) {
        let (in_tx, in_rx) = mpsc::channel(batches.len());
        for batch in batches {
            in_tx.try_send(batch).expect("room for every batch");
        }
        drop(in_tx);
        let (mut out_rx, stage) = spawn_stage(odd_rule(), workers, in_rx, Arc::default());
        let seen = everything_out(&mut out_rx).await;
        (seen, stage.await.expect("stage"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_take_part_only_once_the_backlog_reaches_their_threshold() {
        // 20 batches queued: 19 wait behind the first.
        let below = Workers {
            threads: 2,
            from_backlog: 20,
        };
        let (seen, tally) = drain_backlog(below, alternating(20)).await;
        assert_eq!(tally.on_workers, 0, "the stage evaluates each batch itself");
        assert_eq!((tally.events, tally.violations), (2000, 1000));
        assert_eq!(seen.len(), 3000);

        let at = Workers {
            threads: 2,
            from_backlog: 19,
        };
        let (seen, tally) = drain_backlog(at, alternating(20)).await;
        assert!(tally.on_workers > 0, "workers help with the backlog");
        assert_eq!((tally.events, tally.violations), (2000, 1000));
        let pids: Vec<u32> = seen
            .iter()
            .filter(|e| e.kind != EventKind::Violation)
            .filter_map(|e| e.process.as_ref().map(|p| p.pid))
            .collect();
        assert_eq!(
            pids,
            (0..2000).collect::<Vec<u32>>(),
            "events stay in order"
        );
    }
}
