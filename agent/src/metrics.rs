//! `/metrics` in the Prometheus text format.
//!
//! The tasks that own the counted state publish into [`Metrics`] (atomics, so
//! that publishing never waits); the HTTP task only reads. The server is
//! deliberately small: one `GET` per connection, bounded in request size,
//! time and concurrent connections.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_util::sync::CancellationToken;

use crate::events::EventKind;

/// Event kinds in the order of [`Metrics::events`].
const KINDS: [EventKind; 8] = [
    EventKind::ProcessExec,
    EventKind::ProcessFork,
    EventKind::ProcessExit,
    EventKind::Syscall,
    EventKind::TcpState,
    EventKind::EventsLost,
    EventKind::Violation,
    EventKind::Action,
];

/// A label value with `\\`, `"` and newlines escaped, as the text format
/// requires.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Connections served at once; more wait for a slot.
const MAX_CONNECTIONS: usize = 16;
/// The most of a request that is read.
const MAX_REQUEST_BYTES: usize = 8192;
/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything `/metrics` shows.
#[derive(Debug, Default)]
pub struct Metrics {
    events: [AtomicU64; KINDS.len()],
    lost_ring_buffer_per_cpu: Mutex<Vec<u64>>,
    lost_decode: AtomicU64,
    lost_queue: AtomicU64,
    tree_entries: AtomicU64,
    tree_evicted_after_grace: AtomicU64,
    tree_evicted_for_capacity: AtomicU64,
    name_cache_entries: AtomicU64,
    name_cache_evictions: AtomicU64,
    rules_verdicts_reused: AtomicU64,
    api_streams: AtomicU64,
    api_stream_lost: AtomicU64,
    api_last_sequence: AtomicU64,
    /// Each open stream: client id, peer, events lost to it.
    api_clients: Mutex<Vec<(u64, String, u64)>>,
    rules: Mutex<RulesMetrics>,
    kube: Arc<crate::kube::metrics::KubeMetrics>,
    actions: Arc<crate::actions::metrics::ActionMetrics>,
    alerts: Arc<crate::alerts::metrics::AlertMetrics>,
    attached: std::sync::atomic::AtomicBool,
    /// Syscalls an enabled sensor reports that no attached program sees.
    unobserved_syscalls: Mutex<Vec<&'static str>>,
    ring_bytes: AtomicU64,
    ring_backlog: AtomicU64,
}

/// Totals since the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Events handed to the outputs, violations excluded.
    pub events: u64,
    /// Violations raised.
    pub violations: u64,
    /// Events the kernel could not put in the ring buffer.
    pub lost_in_kernel: u64,
    /// Records that did not decode.
    pub lost_decode: u64,
    /// Events dropped because the agent's queue was full.
    pub lost_queue: u64,
}

/// What `/metrics` shows about rules: bounded by the number of rules.
#[derive(Debug, Default)]
struct RulesMetrics {
    enabled: usize,
    reloads_applied: u64,
    reloads_rejected: u64,
    /// Violations by (rule, priority).
    violations: std::collections::BTreeMap<(String, &'static str), u64>,
}

impl Metrics {
    /// The kube API figures, for the tasks that publish them.
    pub fn kube(&self) -> Arc<crate::kube::metrics::KubeMetrics> {
        self.kube.clone()
    }

    /// The containment figures, for the actions step.
    pub fn actions(&self) -> Arc<crate::actions::metrics::ActionMetrics> {
        self.actions.clone()
    }

    /// The alerting figures, for the aggregator and the alert outputs.
    pub fn alerts(&self) -> Arc<crate::alerts::metrics::AlertMetrics> {
        self.alerts.clone()
    }

    /// The ring buffer's size, for its fill ratio.
    pub fn set_ring_size(&self, bytes: u64) {
        self.ring_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The bytes the reader found waiting in the ring buffer at its last
    /// drain.
    pub fn set_ring_backlog(&self, bytes: u64) {
        self.ring_backlog.store(bytes, Ordering::Relaxed);
    }

    /// The sensors are attached (true) or detached for shutdown (false).
    pub fn set_attached(&self, attached: bool) {
        self.attached.store(attached, Ordering::Relaxed);
    }

    /// Publishes the syscalls that enabled sensors report but that no
    /// attached program sees, so that a gap in what is watched can be
    /// alerted on like a loss.
    pub fn set_unobserved_syscalls(&self, syscalls: &[&'static str]) {
        if let Ok(mut current) = self.unobserved_syscalls.lock() {
            current.clear();
            current.extend_from_slice(syscalls);
        }
    }

    /// Why the agent is not ready to be counted on: sensors not attached
    /// yet (or detached), or, with a cluster, the pod cache not synced.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.attached.load(Ordering::Relaxed) {
            return Some("the sensors are not attached");
        }
        if self.kube.enabled() && !self.kube.pods_synced() {
            return Some("the pod cache has not synced with the API server");
        }
        None
    }

    /// Totals for the API's status.
    pub fn totals(&self) -> Totals {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let violation = KINDS
            .iter()
            .position(|k| *k == EventKind::Violation)
            .map_or(0, |i| get(&self.events[i]));
        Totals {
            events: self.events.iter().map(get).sum::<u64>() - violation,
            violations: violation,
            lost_in_kernel: self
                .lost_ring_buffer_per_cpu
                .lock()
                .map_or(0, |per_cpu| per_cpu.iter().sum()),
            lost_decode: get(&self.lost_decode),
            lost_queue: get(&self.lost_queue),
        }
    }

    /// Publishes the API's open streams, the events dropped for slow
    /// streams since the start, and the last sequence number.
    pub fn set_api(&self, streams: usize, lost: u64, last_sequence: u64) {
        self.api_streams.store(streams as u64, Ordering::Relaxed);
        self.api_stream_lost.store(lost, Ordering::Relaxed);
        self.api_last_sequence
            .store(last_sequence, Ordering::Relaxed);
    }

    /// Publishes each open stream's client id, peer and events lost to it.
    pub fn set_api_clients(&self, clients: Vec<(u64, String, u64)>) {
        if let Ok(mut current) = self.api_clients.lock() {
            *current = clients;
        }
    }

    /// Counts `events` events of `kind` handed to the outputs.
    pub fn count_events(&self, kind: EventKind, events: u64) {
        if let Some(i) = KINDS.iter().position(|k| *k == kind) {
            self.events[i].fetch_add(events, Ordering::Relaxed);
        }
    }

    /// Publishes the loss totals since the start.
    pub fn set_lost(&self, ring_buffer_per_cpu: &[u64], decode_failed: u64, queue_full: u64) {
        if let Ok(mut per_cpu) = self.lost_ring_buffer_per_cpu.lock() {
            per_cpu.clear();
            per_cpu.extend_from_slice(ring_buffer_per_cpu);
        }
        self.lost_decode.store(decode_failed, Ordering::Relaxed);
        self.lost_queue.store(queue_full, Ordering::Relaxed);
    }

    /// Publishes the process tree's size and evictions.
    pub fn set_process_tree(
        &self,
        entries: usize,
        evicted_after_grace: u64,
        evicted_for_capacity: u64,
    ) {
        self.tree_entries.store(entries as u64, Ordering::Relaxed);
        self.tree_evicted_after_grace
            .store(evicted_after_grace, Ordering::Relaxed);
        self.tree_evicted_for_capacity
            .store(evicted_for_capacity, Ordering::Relaxed);
    }

    /// Publishes the user and group name cache's size and evictions.
    pub fn set_name_cache(&self, entries: usize, evictions: u64) {
        self.name_cache_entries
            .store(entries as u64, Ordering::Relaxed);
        self.name_cache_evictions
            .store(evictions, Ordering::Relaxed);
    }

    /// Publishes how many rules are enabled.
    pub fn set_rules_enabled(&self, enabled: usize) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.enabled = enabled;
        }
    }

    /// Counts a reload of the rules files, applied or rejected.
    pub fn rules_reloaded(&self, applied: bool, enabled: usize) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.enabled = enabled;
            if applied {
                rules.reloads_applied += 1;
            } else {
                rules.reloads_rejected += 1;
            }
        }
    }

    /// Counts events given the verdict kept for the same call before.
    pub fn count_verdicts_reused(&self, n: u64) {
        self.rules_verdicts_reused.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts the violations of a batch, once per batch.
    pub fn count_violations(&self, batch: &[crate::events::event::Event]) {
        let mut raised = batch
            .iter()
            .filter_map(|e| e.violation.as_deref())
            .peekable();
        if raised.peek().is_none() {
            return;
        }
        if let Ok(mut rules) = self.rules.lock() {
            for v in raised {
                let key = (v.rule.clone(), v.priority.as_str());
                *rules.violations.entry(key).or_default() += 1;
            }
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP guardrails_build_info The agent's version.");
        let _ = writeln!(out, "# TYPE guardrails_build_info gauge");
        let _ = writeln!(
            out,
            "guardrails_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );

        let _ = writeln!(
            out,
            "# HELP guardrails_events_total Events handed to the outputs, by kind."
        );
        let _ = writeln!(out, "# TYPE guardrails_events_total counter");
        for (kind, count) in KINDS.iter().zip(&self.events) {
            let _ = writeln!(
                out,
                "guardrails_events_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                get(count)
            );
        }

        let per_cpu = self
            .lost_ring_buffer_per_cpu
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP guardrails_events_lost_total Events lost, by cause: ring_buffer_full (the kernel found no room), decode_failed, queue_full (the outputs were behind)."
        );
        let _ = writeln!(out, "# TYPE guardrails_events_lost_total counter");
        let ring: u64 = per_cpu.iter().sum();
        for (cause, count) in [
            ("ring_buffer_full", ring),
            ("decode_failed", get(&self.lost_decode)),
            ("queue_full", get(&self.lost_queue)),
        ] {
            let _ = writeln!(
                out,
                "guardrails_events_lost_total{{cause=\"{cause}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP guardrails_ring_buffer_lost_total Events the kernel could not put in the ring buffer, per CPU."
        );
        let _ = writeln!(out, "# TYPE guardrails_ring_buffer_lost_total counter");
        for (cpu, count) in per_cpu.iter().enumerate() {
            let _ = writeln!(
                out,
                "guardrails_ring_buffer_lost_total{{cpu=\"{cpu}\"}} {count}"
            );
        }

        let _ = writeln!(
            out,
            "# HELP guardrails_process_tree_entries Processes in the process tree, live and recently exited."
        );
        let _ = writeln!(out, "# TYPE guardrails_process_tree_entries gauge");
        let _ = writeln!(
            out,
            "guardrails_process_tree_entries {}",
            get(&self.tree_entries)
        );
        let _ = writeln!(
            out,
            "# HELP guardrails_process_tree_evictions_total Processes removed from the tree: after_grace (exited, grace over) or capacity (the tree was full)."
        );
        let _ = writeln!(
            out,
            "# TYPE guardrails_process_tree_evictions_total counter"
        );
        let _ = writeln!(
            out,
            "guardrails_process_tree_evictions_total{{reason=\"after_grace\"}} {}",
            get(&self.tree_evicted_after_grace)
        );
        let _ = writeln!(
            out,
            "guardrails_process_tree_evictions_total{{reason=\"capacity\"}} {}",
            get(&self.tree_evicted_for_capacity)
        );
        let _ = writeln!(
            out,
            "# HELP guardrails_user_names_cache_entries User and group names (and known absences) cached, by root directory and id."
        );
        let _ = writeln!(out, "# TYPE guardrails_user_names_cache_entries gauge");
        let _ = writeln!(
            out,
            "guardrails_user_names_cache_entries {}",
            get(&self.name_cache_entries)
        );
        let _ = writeln!(
            out,
            "# HELP guardrails_user_names_cache_evictions_total Cached names removed because the cache was full."
        );
        let _ = writeln!(
            out,
            "# TYPE guardrails_user_names_cache_evictions_total counter"
        );
        let _ = writeln!(
            out,
            "guardrails_user_names_cache_evictions_total {}",
            get(&self.name_cache_evictions)
        );
        let ring_bytes = get(&self.ring_bytes);
        let _ = writeln!(
            out,
            "# HELP guardrails_ring_buffer_fill_ratio How full the kernel's ring buffer was when the reader last drained it (0 to 1); near 1, events are about to be lost."
        );
        let _ = writeln!(out, "# TYPE guardrails_ring_buffer_fill_ratio gauge");
        let _ = writeln!(
            out,
            "guardrails_ring_buffer_fill_ratio {}",
            if ring_bytes == 0 {
                0.0
            } else {
                (get(&self.ring_backlog) as f64 / ring_bytes as f64).min(1.0)
            }
        );
        for (name, kind, help, value) in [
            (
                "guardrails_ring_buffer_bytes",
                "gauge",
                "The kernel ring buffer's size.",
                &self.ring_bytes,
            ),
            (
                "guardrails_api_streams",
                "gauge",
                "Event streams open on the gRPC API.",
                &self.api_streams,
            ),
            (
                "guardrails_api_stream_events_lost_total",
                "counter",
                "Events dropped for API streams that read too slowly (each stream is told its own).",
                &self.api_stream_lost,
            ),
            (
                "guardrails_api_last_sequence",
                "gauge",
                "The sequence number of the last event numbered for the API.",
                &self.api_last_sequence,
            ),
            (
                "guardrails_rules_verdicts_reused_total",
                "counter",
                "Events given the verdict the rules reached for the same call by the same process before, instead of being tested.",
                &self.rules_verdicts_reused,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", get(value));
        }
        let _ = writeln!(
            out,
            "# HELP guardrails_api_client_events_lost_total Events dropped for each open API stream that read too slowly, since it connected."
        );
        let _ = writeln!(
            out,
            "# TYPE guardrails_api_client_events_lost_total counter"
        );
        if let Ok(clients) = self.api_clients.lock() {
            for (id, peer, lost) in clients.iter() {
                let _ = writeln!(
                    out,
                    "guardrails_api_client_events_lost_total{{client=\"{id}\",peer=\"{}\"}} {lost}",
                    escape_label(peer)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP guardrails_syscall_unobserved Syscalls an enabled sensor reports that no attached program sees (1 each): on each syscall's tracepoint, those the kernel is built without; sensors.syscall_hook: sys_exit sees them."
        );
        let _ = writeln!(out, "# TYPE guardrails_syscall_unobserved gauge");
        if let Ok(syscalls) = self.unobserved_syscalls.lock() {
            for syscall in syscalls.iter() {
                let _ = writeln!(
                    out,
                    "guardrails_syscall_unobserved{{syscall=\"{syscall}\"}} 1"
                );
            }
        }
        self.render_rules(&mut out);
        self.kube.render(&mut out);
        self.actions.render(&mut out);
        self.alerts.render(&mut out);
        out
    }

    fn render_rules(&self, out: &mut String) {
        let Ok(rules) = self.rules.lock() else {
            return;
        };
        let _ = writeln!(out, "# HELP guardrails_rules_enabled Rules in force.");
        let _ = writeln!(out, "# TYPE guardrails_rules_enabled gauge");
        let _ = writeln!(out, "guardrails_rules_enabled {}", rules.enabled);
        let _ = writeln!(
            out,
            "# HELP guardrails_rules_reloads_total Changes to the rules files, applied or rejected (the previous rules stayed in force)."
        );
        let _ = writeln!(out, "# TYPE guardrails_rules_reloads_total counter");
        let _ = writeln!(
            out,
            "guardrails_rules_reloads_total{{result=\"applied\"}} {}",
            rules.reloads_applied
        );
        let _ = writeln!(
            out,
            "guardrails_rules_reloads_total{{result=\"rejected\"}} {}",
            rules.reloads_rejected
        );
        let _ = writeln!(
            out,
            "# HELP guardrails_violations_total Violations raised, by rule and priority."
        );
        let _ = writeln!(out, "# TYPE guardrails_violations_total counter");
        for ((rule, priority), count) in &rules.violations {
            let _ = writeln!(
                out,
                "guardrails_violations_total{{rule=\"{}\",priority=\"{priority}\"}} {count}",
                escape_label(rule)
            );
        }
    }
}

/// Serves `/metrics` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = respond(stream, &metrics).await {
                tracing::debug!(%peer, error = %e, "metrics: request failed");
            }
            drop(slot);
        });
    }
}

/// Binds the metrics address; the error names it.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

async fn respond(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST_BYTES {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if read.is_err() {
        return Ok(());
    }
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = std::str::from_utf8(line)
        .unwrap_or_default()
        .split_whitespace();
    let (status, body, content_type) = match (words.next(), words.next()) {
        (Some("GET"), Some("/metrics")) => {
            ("200 OK", metrics.render(), "text/plain; version=0.0.4")
        }
        // Alive while it answers: the runtime that serves this also runs
        // the pipeline.
        (Some("GET"), Some("/healthz")) => ("200 OK", "ok\n".to_owned(), "text/plain"),
        (Some("GET"), Some("/readyz")) => match metrics.not_ready() {
            None => ("200 OK", "ready\n".to_owned(), "text/plain"),
            Some(why) => (
                "503 Service Unavailable",
                format!("not ready: {why}\n"),
                "text/plain",
            ),
        },
        (Some("GET"), Some(_)) => ("404 Not Found", "not found\n".to_owned(), "text/plain"),
        _ => (
            "405 Method Not Allowed",
            "only GET\n".to_owned(),
            "text/plain",
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_attached_and_with_a_cluster_once_pods_synced() {
        let metrics = Metrics::default();
        assert_eq!(metrics.not_ready(), Some("the sensors are not attached"));
        metrics.set_attached(true);
        assert_eq!(metrics.not_ready(), None);
        metrics.kube().set_enabled();
        assert!(
            metrics
                .not_ready()
                .is_some_and(|why| why.contains("pod cache"))
        );
        metrics
            .kube()
            .set_synced(crate::kube::metrics::Watched::Pods);
        assert_eq!(metrics.not_ready(), None);
        metrics.set_attached(false);
        assert!(metrics.not_ready().is_some());
    }

    #[test]
    fn the_exposition_names_every_series_with_its_type() {
        let metrics = Metrics::default();
        metrics.count_events(EventKind::ProcessExec, 2);
        metrics.set_lost(&[3, 4], 1, 2);
        metrics.set_process_tree(10, 5, 0);
        metrics.set_name_cache(12, 3);
        metrics.set_ring_size(4096);
        metrics.set_ring_backlog(1024);
        metrics.set_unobserved_syscalls(&["init_module", "finit_module"]);
        let text = metrics.render();
        for line in [
            "guardrails_events_total{kind=\"process_exec\"} 2",
            "guardrails_events_lost_total{cause=\"ring_buffer_full\"} 7",
            "guardrails_events_lost_total{cause=\"decode_failed\"} 1",
            "guardrails_events_lost_total{cause=\"queue_full\"} 2",
            "guardrails_ring_buffer_lost_total{cpu=\"1\"} 4",
            "guardrails_process_tree_entries 10",
            "guardrails_process_tree_evictions_total{reason=\"after_grace\"} 5",
            "guardrails_user_names_cache_entries 12",
            "guardrails_user_names_cache_evictions_total 3",
            "guardrails_ring_buffer_fill_ratio 0.25",
            "guardrails_ring_buffer_bytes 4096",
            "guardrails_syscall_unobserved{syscall=\"finit_module\"} 1",
            "# TYPE guardrails_syscall_unobserved gauge",
            "# TYPE guardrails_events_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[tokio::test]
    async fn a_get_of_metrics_is_answered_and_anything_else_is_not_found() {
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let address = listener.local_addr().expect("addr");
        let metrics = Arc::new(Metrics::default());
        metrics.count_events(EventKind::Syscall, 1);
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, metrics, shutdown.clone()));
        let get = |path: &'static str| async move {
            let mut stream = TcpStream::connect(address).await.expect("connect");
            stream
                .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let mut response = String::new();
            stream.read_to_string(&mut response).await.expect("read");
            response
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(
            ok.contains("guardrails_events_total{kind=\"syscall\"} 1"),
            "{ok}"
        );
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
        shutdown.cancel();
        server.await.expect("the server stops on shutdown");
    }
}
