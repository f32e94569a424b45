//! One task per output: takes alerts from the output's queue and delivers
//! them, retrying with exponential backoff and jitter while the destination
//! is down. Each output has its own task and queue, so a slow or dead
//! destination delays no other and never the pipeline.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio_util::sync::CancellationToken;

use super::{
    alert::Alert,
    alertmanager,
    config::{OutputConfig, OutputKind, Secret, WebhookFormat},
    file::AlertFile,
    http::{DeliveryError, HttpClient},
    metrics::OutputMetrics,
    queue::Queue,
    webhook,
};

/// Lines written to a file in one go, at most.
const FILE_BATCH: usize = 64;

/// Where an output's alerts go.
#[derive(Debug)]
pub enum Sink {
    /// Alertmanager's v2 API.
    Alertmanager {
        /// The shared client.
        client: HttpClient,
        /// `<url>/api/v2/alerts`.
        endpoint: String,
        /// Labels added to every alert.
        labels: BTreeMap<String, String>,
        /// How long a firing alert lasts unless restated.
        ends_in: Duration,
    },
    /// A JSON or Slack webhook.
    Webhook {
        /// The shared client.
        client: HttpClient,
        /// The URL posted to.
        url: String,
        /// The body's shape.
        format: WebhookFormat,
        /// The signing key.
        secret: Option<Secret>,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// A JSON-lines file.
    File(AlertFile),
}

impl Sink {
    /// The sink of a configured output.
    pub fn new(config: &OutputConfig, client: &HttpClient, ends_in: Duration) -> Self {
        match &config.kind {
            OutputKind::Alertmanager { url, labels } => Sink::Alertmanager {
                client: client.clone(),
                endpoint: alertmanager::endpoint(url),
                labels: labels.clone(),
                ends_in,
            },
            OutputKind::Webhook {
                url,
                format,
                secret,
                headers,
            } => Sink::Webhook {
                client: client.clone(),
                url: url.clone(),
                format: *format,
                secret: secret.clone(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
            OutputKind::File {
                path,
                max_bytes,
                keep,
            } => Sink::File(AlertFile::new(path.clone(), *max_bytes, *keep)),
        }
    }

    fn batch(&self) -> usize {
        match self {
            Sink::Alertmanager { .. } => alertmanager::BATCH,
            Sink::Webhook { .. } => 1,
            Sink::File(_) => FILE_BATCH,
        }
    }

    async fn deliver(
        &mut self,
        alerts: &[Alert],
        dropped: u64,
        timeout: Duration,
    ) -> Result<(), DeliveryError> {
        match self {
            Sink::Alertmanager {
                client,
                endpoint,
                labels,
                ends_in,
            } => {
                let body = alertmanager::body(alerts, labels, dropped, SystemTime::now(), *ends_in);
                client.post(endpoint, &[], body, timeout).await
            }
            Sink::Webhook {
                client,
                url,
                format,
                secret,
                headers,
            } => {
                for alert in alerts {
                    let body = match format {
                        WebhookFormat::Json => webhook::json_body(alert, dropped),
                        WebhookFormat::Slack => webhook::slack_body(alert, dropped),
                    };
                    let mut headers = headers.clone();
                    if let Some(secret) = secret {
                        headers.push((
                            webhook::SIGNATURE_HEADER.to_owned(),
                            webhook::signature(secret, &body, SystemTime::now()),
                        ));
                    }
                    client.post(url, &headers, body, timeout).await?;
                }
                Ok(())
            }
            Sink::File(file) => Ok(file.write(alerts, dropped)?),
        }
    }
}

/// An output and its queue, run by [`Output::run`].
#[derive(Debug)]
pub struct Output {
    /// The output's name in the config.
    pub name: String,
    /// Where alerts go.
    pub sink: Sink,
    /// What waits for it.
    pub queue: Arc<Queue>,
    /// Its figures.
    pub metrics: Arc<OutputMetrics>,
    /// One delivery's time limit.
    pub timeout: Duration,
    /// The first retry's delay.
    pub backoff: Duration,
    /// The longest delay.
    pub max_backoff: Duration,
}

impl Output {
    /// Delivers until `stop`, then tries once more to deliver what waits.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            if self.queue.is_empty() {
                tokio::select! {
                    () = self.queue.pushed() => continue,
                    () = stop.cancelled() => break,
                }
            }
            match self.attempt().await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(output = %self.name, failures, "alert output is reachable again; queued alerts delivered");
                    }
                    failures = 0;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 {
                        tracing::warn!(
                            output = %self.name,
                            error = %e,
                            queued = self.queue.len(),
                            "alert output is down; alerts wait in its queue and are retried"
                        );
                    } else {
                        tracing::debug!(output = %self.name, error = %e, failures, "alert output still down");
                    }
                    let delay = backoff(self.backoff, self.max_backoff, failures);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stop.cancelled() => break,
                    }
                }
            }
        }
        // Stopping: one more try for what waits, no retries.
        while !self.queue.is_empty() {
            if let Err(e) = self.attempt().await {
                let left = self.queue.len();
                tracing::error!(output = %self.name, error = %e, lost = left, "alert output unreachable at shutdown; waiting alerts are lost");
                self.metrics.lost_at_shutdown(left as u64);
                break;
            }
        }
    }

    /// Delivers one batch; Err when it should be retried.
    async fn attempt(&mut self) -> Result<(), DeliveryError> {
        let (batch, dropped) = self.queue.take(self.sink.batch());
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u64;
        let result = self.sink.deliver(&batch, dropped, self.timeout).await;
        match result {
            Ok(()) => {
                self.queue.delivered(dropped);
                self.metrics.delivered(n, true);
                Ok(())
            }
            Err(e) if !e.retryable() => {
                tracing::error!(output = %self.name, error = %e, alerts = n, "alert output refused alerts; they are dropped");
                self.queue.refused(n);
                self.metrics.refused(n);
                Ok(())
            }
            Err(e) => {
                self.queue.give_back(batch);
                self.metrics.delivered(0, false);
                Err(e)
            }
        }
    }
}

/// The delay before retry number `failures`: doubling from `first`, at
/// most `max`, with jitter over its upper half so that agents on many
/// nodes do not retry in step.
pub fn backoff(first: Duration, max: Duration, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let base = first.saturating_mul(1 << exponent).min(max);
    let half = base / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_limit() {
        let first = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for _ in 0..100 {
            let one = backoff(first, max, 1);
            assert!(one >= Duration::from_millis(50) && one <= first, "{one:?}");
            let three = backoff(first, max, 3);
            assert!(
                three >= Duration::from_millis(200) && three <= Duration::from_millis(400),
                "{three:?}"
            );
            let many = backoff(first, max, 40);
            assert!(many >= Duration::from_secs(1) && many <= max, "{many:?}");
        }
    }

    #[tokio::test]
    async fn a_dead_destination_keeps_alerts_queued_and_a_file_gets_them() {
        let dir = std::env::temp_dir().join(format!("guardrails-deliver-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let queue = Arc::new(Queue::new(8));
        let client = HttpClient::new().expect("a client");
        // Nothing listens on port 9 of loopback here: refused at once.
        let dead = Output {
            name: "dead".to_owned(),
            sink: Sink::Webhook {
                client,
                url: "http://127.0.0.1:9/".to_owned(),
                format: WebhookFormat::Json,
                secret: None,
                headers: Vec::new(),
            },
            queue: queue.clone(),
            metrics: Arc::new(OutputMetrics::default()),
            timeout: Duration::from_secs(1),
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
        };
        queue.push(crate::alerts::incident::tests::alert("a"));
        let stop = CancellationToken::new();
        let task = tokio::spawn(dead.run(stop.clone()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.cancel();
        task.await.expect("the output stops");
        // Read once the output has stopped: while it runs, a try in flight
        // holds the alert outside the queue.
        assert_eq!(
            queue.len(),
            1,
            "the alert waits while the destination is down"
        );

        let path = dir.join("alerts.jsonl");
        let file_queue = Arc::new(Queue::new(8));
        let file = Output {
            name: "file".to_owned(),
            sink: Sink::File(AlertFile::new(path.clone(), 1 << 20, 1)),
            queue: file_queue.clone(),
            metrics: Arc::new(OutputMetrics::default()),
            timeout: Duration::from_secs(1),
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(file.run(stop.clone()));
        file_queue.push(crate::alerts::incident::tests::alert("b"));
        for _ in 0..100 {
            if path.exists() && file_queue.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        task.await.expect("the output stops");
        let text = std::fs::read_to_string(&path).expect("the file was written");
        assert!(text.contains("\"incident\":\"b\""), "{text}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
