//! On-call alerts: violations grouped into incidents on this node
//! ([`incident`]), each incident's alert routed to the outputs that take
//! it ([`config::Route`]), and delivered by one task per output from its own
//! bounded queue ([`deliver`], [`queue`]): Alertmanager, webhooks (JSON or
//! Slack, optionally signed) and a rotated JSON-lines file.
//!
//! ```text
//! outputs stage ──try_send──▶ aggregator ──push──▶ queue ──▶ output task ──▶ destination
//!   (violations,                (incidents,          (one per output,
//!    action reports)             rate limits)          bounded)
//! ```

pub mod alert;
pub mod alertmanager;
pub mod config;
pub mod deliver;
pub mod file;
pub mod http;
pub mod incident;
pub mod metrics;
pub mod queue;
pub mod webhook;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use self::{
    config::{AlertsConfig, Route},
    deliver::{Output, Sink},
    http::HttpClient,
    incident::Aggregator,
    metrics::{AlertMetrics, OutputEntry, OutputMetrics},
    queue::Queue,
};
use crate::events::{EventKind, event::Event};

/// Batches of violations and action reports waiting for the aggregator.
const INPUT_BATCHES: usize = 256;

/// How often incidents are checked for alerts due.
const TICK: Duration = Duration::from_millis(100);

/// How long outputs get to deliver what waits when the agent stops.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Why alerting could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// The HTTP client's TLS could not be set up.
    #[error("setting up TLS for the alert outputs")]
    Tls(#[from] rustls::Error),
}

/// Where the outputs stage hands events to alerting.
#[derive(Clone, Debug)]
pub struct AlertsInput {
    tx: mpsc::Sender<Vec<Event>>,
    metrics: Arc<AlertMetrics>,
}

impl AlertsInput {
    /// Passes on the violations and action reports of `batch`; never waits.
    /// What does not fit is counted.
    pub fn offer(&self, batch: &[Event]) {
        let relevant: Vec<Event> = batch
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Violation | EventKind::Action))
            .cloned()
            .collect();
        if relevant.is_empty() {
            return;
        }
        let n = relevant.len() as u64;
        if let Err(e) = self.tx.try_send(relevant) {
            self.metrics.input_dropped(n);
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                tracing::warn!(
                    events = n,
                    "the alert aggregator is behind; violations dropped from alerting (they still reach the other outputs)"
                );
            }
        }
    }
}

/// Starts alerting when outputs are configured: the aggregator and one
/// task per output. The task ends once the input is closed and the outputs
/// have had their last try.
pub fn spawn(
    config: &AlertsConfig,
    node: &str,
    metrics: Arc<AlertMetrics>,
) -> Result<Option<(AlertsInput, JoinHandle<()>)>, AlertsError> {
    if config.outputs.is_empty() {
        return Ok(None);
    }
    let client = HttpClient::new()?;
    // A firing alert outlives the incident's resolution time, so that it
    // is restated (every half of it) before Alertmanager ends it.
    let ends_in = Duration::from_millis(
        config
            .resolve_after_ms
            .saturating_add(config.group_interval_ms),
    );
    let stop = CancellationToken::new();
    let mut routes = Vec::new();
    let mut tasks = Vec::new();
    for (name, output) in &config.outputs {
        let queue = Arc::new(Queue::new(output.queue));
        let output_metrics = Arc::new(OutputMetrics::default());
        metrics.add_output(OutputEntry {
            name: name.clone(),
            kind: output.kind.type_name(),
            metrics: output_metrics.clone(),
            queue: queue.clone(),
        });
        routes.push((name.clone(), output.route.clone(), queue.clone()));
        let task = Output {
            name: name.clone(),
            sink: Sink::new(output, &client, ends_in),
            queue,
            metrics: output_metrics,
            timeout: Duration::from_millis(output.timeout_ms),
            backoff: Duration::from_millis(output.backoff_ms),
            max_backoff: Duration::from_millis(output.max_backoff_ms),
        };
        tasks.push(tokio::spawn(task.run(stop.child_token())));
        tracing::info!(output = %name, r#type = output.kind.type_name(), "alert output ready");
    }
    let (tx, rx) = mpsc::channel(INPUT_BATCHES);
    let aggregator = Aggregator::new(Arc::new(config.clone()), node.to_owned());
    let task = tokio::spawn(aggregate(
        rx,
        aggregator,
        routes,
        metrics.clone(),
        tasks,
        stop,
    ));
    Ok(Some((AlertsInput { tx, metrics }, task)))
}

type Routes = Vec<(String, Route, Arc<Queue>)>;

async fn aggregate(
    mut rx: mpsc::Receiver<Vec<Event>>,
    mut aggregator: Aggregator,
    routes: Routes,
    metrics: Arc<AlertMetrics>,
    tasks: Vec<JoinHandle<()>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(batch) => {
                    let now = Instant::now();
                    for event in &batch {
                        aggregator.observe(event, now);
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                dispatch(aggregator.due(Instant::now()), &routes);
                metrics.set_aggregate(aggregator.len(), aggregator.stats());
            }
        }
    }
    dispatch(aggregator.flush(Instant::now()), &routes);
    metrics.set_aggregate(aggregator.len(), aggregator.stats());
    stop.cancel();
    let all = futures::future::join_all(tasks);
    if tokio::time::timeout(STOP_GRACE, all).await.is_err() {
        tracing::error!("alert outputs did not finish within {STOP_GRACE:?}");
    }
}

fn dispatch(alerts: Vec<alert::Alert>, routes: &Routes) {
    for alert in alerts {
        for (name, route, queue) in routes {
            if !route.admits(alert.priority, alert.namespace.as_deref(), &alert.tags) {
                continue;
            }
            if !queue.push(alert.clone()) {
                tracing::warn!(
                    output = %name,
                    queued = queue.len(),
                    "alert queue full; the oldest waiting alert was dropped (reported in the next one delivered)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{config::OutputConfig, *};

    fn output(yaml: &str) -> OutputConfig {
        serde_yaml::from_str(yaml).expect("a valid output")
    }

    #[tokio::test]
    async fn a_stalled_destination_delays_no_other_output() {
        // Accepts connections (the kernel's backlog) and never answers.
        let stalled = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = stalled.local_addr().expect("an address");
        let dir = std::env::temp_dir().join(format!("guardrails-stalled-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("alerts.jsonl");
        let config = AlertsConfig {
            group_wait_ms: 0,
            outputs: BTreeMap::from([
                (
                    "stalled".to_owned(),
                    output(&format!(
                        "type: webhook\nurl: http://{address}/\ntimeout_ms: 30000\n"
                    )),
                ),
                (
                    "file".to_owned(),
                    output(&format!("type: file\npath: {}\n", path.display())),
                ),
            ]),
            ..AlertsConfig::default()
        };
        let metrics = Arc::new(AlertMetrics::default());
        let (input, task) = spawn(&config, "node-1", metrics.clone())
            .expect("alerting starts")
            .expect("outputs are configured");
        let started = Instant::now();
        for n in 0..3 {
            let mut event = incident::tests::violation("Shell", "shop", &format!("w{n}"), "p");
            event.node = "node-1".into();
            input.offer(&[event]);
        }
        while !(path.exists()
            && std::fs::read_to_string(&path).is_ok_and(|t| t.lines().count() == 3))
        {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the file output was held up by the stalled one"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(input);
        // The stalled output is still on its first try; stopping cuts it.
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
