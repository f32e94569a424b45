//! What `/metrics` shows about alerting: incidents, what the rate limits
//! held back, and per output what was delivered, retried and dropped.

use std::{
    fmt::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use super::incident::AggregateStats;

/// One output's figures.
#[derive(Debug, Default)]
pub struct OutputMetrics {
    delivered: AtomicU64,
    failures: AtomicU64,
    refused: AtomicU64,
    lost_at_shutdown: AtomicU64,
    up: AtomicU64,
}

impl OutputMetrics {
    /// A delivery of `n` alerts succeeded, or a try failed.
    pub fn delivered(&self, n: u64, ok: bool) {
        if ok {
            self.delivered.fetch_add(n, Ordering::Relaxed);
            self.up.store(1, Ordering::Relaxed);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
            self.up.store(0, Ordering::Relaxed);
        }
    }

    /// The destination refused `n` alerts.
    pub fn refused(&self, n: u64) {
        self.refused.fetch_add(n, Ordering::Relaxed);
        self.up.store(1, Ordering::Relaxed);
    }

    /// `n` alerts were still waiting when the agent stopped.
    pub fn lost_at_shutdown(&self, n: u64) {
        self.lost_at_shutdown.fetch_add(n, Ordering::Relaxed);
    }
}

/// An output as `/metrics` lists it.
#[derive(Debug)]
pub struct OutputEntry {
    /// Its name in the config.
    pub name: String,
    /// `alertmanager`, `webhook`, `slack` or `file`.
    pub kind: &'static str,
    /// Its figures.
    pub metrics: Arc<OutputMetrics>,
    /// Its queue.
    pub queue: Arc<super::queue::Queue>,
}

/// A per-output series: name, type, help and how to read it.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&OutputEntry) -> u64,
);

/// Alerting's figures.
#[derive(Debug, Default)]
pub struct AlertMetrics {
    input_dropped: AtomicU64,
    incidents: AtomicU64,
    stats: Mutex<AggregateStats>,
    outputs: Mutex<Vec<OutputEntry>>,
}

impl AlertMetrics {
    /// Violations or action reports that found the aggregator's input full.
    pub fn input_dropped(&self, n: u64) {
        self.input_dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Publishes the aggregator's state.
    pub fn set_aggregate(&self, incidents: usize, stats: AggregateStats) {
        self.incidents.store(incidents as u64, Ordering::Relaxed);
        if let Ok(mut s) = self.stats.lock() {
            *s = stats;
        }
    }

    /// Lists an output.
    pub fn add_output(&self, entry: OutputEntry) {
        if let Ok(mut outputs) = self.outputs.lock() {
            outputs.push(entry);
        }
    }

    /// Appends the text exposition.
    pub fn render(&self, out: &mut String) {
        let stats = self.stats.lock().map(|s| *s).unwrap_or_default();
        let simple = [
            (
                "guardrails_alert_incidents",
                "gauge",
                "Incidents tracked on this node.",
                self.incidents.load(Ordering::Relaxed),
            ),
            (
                "guardrails_alert_violations_total",
                "counter",
                "Violations folded into incidents.",
                stats.violations,
            ),
            (
                "guardrails_alert_incidents_overflow_total",
                "counter",
                "Violations of new incidents beyond alerts.max_incidents, not alerted.",
                stats.overflow,
            ),
            (
                "guardrails_alert_input_dropped_total",
                "counter",
                "Violations and action reports dropped because the alert aggregator's input was full.",
                self.input_dropped.load(Ordering::Relaxed),
            ),
            (
                "guardrails_alert_monitor_only_total",
                "counter",
                "Incidents not alerted because their actions are in monitor mode.",
                stats.monitor_only,
            ),
        ];
        for (name, kind, help, value) in simple {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP guardrails_alert_suppressed_total Alert updates held back by a rate limit."
        );
        let _ = writeln!(out, "# TYPE guardrails_alert_suppressed_total counter");
        let _ = writeln!(
            out,
            "guardrails_alert_suppressed_total{{limit=\"incident\"}} {}",
            stats.suppressed_incident
        );
        let _ = writeln!(
            out,
            "guardrails_alert_suppressed_total{{limit=\"global\"}} {}",
            stats.suppressed_global
        );
        let Ok(outputs) = self.outputs.lock() else {
            return;
        };
        let families: [Family; 6] = [
            (
                "guardrails_alert_output_up",
                "gauge",
                "1 when the output's last delivery succeeded.",
                |o| {
                    let m = &o.metrics;
                    let tried = m.delivered.load(Ordering::Relaxed)
                        + m.failures.load(Ordering::Relaxed)
                        + m.refused.load(Ordering::Relaxed);
                    if tried == 0 {
                        1
                    } else {
                        m.up.load(Ordering::Relaxed)
                    }
                },
            ),
            (
                "guardrails_alert_output_delivered_total",
                "counter",
                "Alerts the output's destination accepted.",
                |o| o.metrics.delivered.load(Ordering::Relaxed),
            ),
            (
                "guardrails_alert_output_failures_total",
                "counter",
                "Deliveries that failed and were retried.",
                |o| o.metrics.failures.load(Ordering::Relaxed),
            ),
            (
                "guardrails_alert_output_dropped_total",
                "counter",
                "Alerts dropped: the queue was full, or the destination refused them.",
                |o| o.queue.dropped(),
            ),
            (
                "guardrails_alert_output_lost_at_shutdown_total",
                "counter",
                "Alerts still waiting when the agent stopped.",
                |o| o.metrics.lost_at_shutdown.load(Ordering::Relaxed),
            ),
            (
                "guardrails_alert_output_queued",
                "gauge",
                "Alerts waiting for the output.",
                |o| o.queue.len() as u64,
            ),
        ];
        for (name, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for output in outputs.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{output=\"{}\",type=\"{}\"}} {}",
                    output.name,
                    output.kind,
                    value(output)
                );
            }
        }
    }
}
