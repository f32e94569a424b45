//! What `/metrics` shows about the kube API: watch state, requests made,
//! cache sizes, and events that went out without their pod.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

/// The watches the agent keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Watched {
    /// Pods on this node.
    Pods,
    /// Namespaces (labels only).
    Namespaces,
    /// The platform's `ClusterRuleSet`s.
    ClusterRuleSets,
    /// Teams' `RuleSet`s.
    RuleSets,
}

impl Watched {
    /// Every watch, in the order `/metrics` shows them.
    const ALL: [Watched; 4] = [
        Watched::Pods,
        Watched::Namespaces,
        Watched::ClusterRuleSets,
        Watched::RuleSets,
    ];
}

impl Watched {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pods => "pods",
            Self::Namespaces => "namespaces",
            Self::ClusterRuleSets => "clusterrulesets",
            Self::RuleSets => "rulesets",
        }
    }
}

#[derive(Debug, Default)]
struct WatchState {
    up: AtomicBool,
    synced: AtomicBool,
    errors: AtomicU64,
    relists: AtomicU64,
}

/// Kube API figures, published by the tasks that own them.
#[derive(Debug, Default)]
pub struct KubeMetrics {
    enabled: AtomicBool,
    pods: WatchState,
    namespaces: WatchState,
    cluster_rule_sets: WatchState,
    rule_sets: WatchState,
    requests: Mutex<BTreeMap<&'static str, u64>>,
    index_pods: AtomicU64,
    index_deleted: AtomicU64,
    index_namespaces: AtomicU64,
    index_overflows: AtomicU64,
    parked: AtomicU64,
    waited: AtomicU64,
    unresolved: AtomicU64,
    blast_cache_entries: AtomicU64,
}

impl KubeMetrics {
    fn watch(&self, which: Watched) -> &WatchState {
        match which {
            Watched::Pods => &self.pods,
            Watched::Namespaces => &self.namespaces,
            Watched::ClusterRuleSets => &self.cluster_rule_sets,
            Watched::RuleSets => &self.rule_sets,
        }
    }

    /// The agent runs with a cluster.
    pub fn set_enabled(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Whether the agent runs with a cluster.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// A watch delivered events (up) or failed (down). Returns whether it
    /// was up before, or had never failed.
    pub fn set_watch_up(&self, which: Watched, up: bool) -> bool {
        let state = self.watch(which);
        let was_up = state.up.swap(up, Ordering::Relaxed);
        if !up {
            state.errors.fetch_add(1, Ordering::Relaxed);
        }
        was_up || state.errors.load(Ordering::Relaxed) == 0
    }

    /// A watch (re)started its list.
    pub fn count_relist(&self, which: Watched) {
        self.watch(which).relists.fetch_add(1, Ordering::Relaxed);
    }

    /// A watch completed a list.
    pub fn set_synced(&self, which: Watched) {
        self.watch(which).synced.store(true, Ordering::Relaxed);
    }

    /// Whether the pod watch has completed its first list.
    pub fn pods_synced(&self) -> bool {
        self.pods.synced.load(Ordering::Relaxed)
    }

    /// Counts one request to the API server other than the watches.
    pub fn count_request(&self, what: &'static str) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry(what).or_default() += 1;
        }
    }

    /// Publishes the pod index's sizes.
    pub fn set_index(&self, stats: super::index::IndexStats) {
        self.index_pods
            .store((stats.pods - stats.deleted) as u64, Ordering::Relaxed);
        self.index_deleted
            .store(stats.deleted as u64, Ordering::Relaxed);
        self.index_namespaces
            .store(stats.namespaces as u64, Ordering::Relaxed);
        self.index_overflows
            .store(stats.overflows, Ordering::Relaxed);
    }

    /// Publishes how many events wait for their pod now.
    pub fn set_parked(&self, parked: usize) {
        self.parked.store(parked as u64, Ordering::Relaxed);
    }

    /// Counts events that had to wait for their pod.
    pub fn count_waited(&self, events: usize) {
        self.waited.fetch_add(events as u64, Ordering::Relaxed);
    }

    /// Counts events that went out without their pod.
    pub fn count_unresolved(&self, events: usize) {
        self.unresolved.fetch_add(events as u64, Ordering::Relaxed);
    }

    /// Publishes the blast-radius cache's size.
    pub fn set_blast_cache(&self, entries: usize) {
        self.blast_cache_entries
            .store(entries as u64, Ordering::Relaxed);
    }

    /// Appends the text exposition.
    pub fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let flag = |a: &AtomicBool| u8::from(a.load(Ordering::Relaxed));
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        };
        gauge(
            "guardrails_kube_enabled",
            "1 when the agent reads pod metadata from a cluster.",
            flag(&self.enabled).into(),
        );
        gauge(
            "guardrails_kube_pods",
            "Pods of this node in the cache.",
            get(&self.index_pods),
        );
        gauge(
            "guardrails_kube_pods_deleted",
            "Deleted pods still resolving (grace period).",
            get(&self.index_deleted),
        );
        gauge(
            "guardrails_kube_namespaces",
            "Namespaces whose labels are cached.",
            get(&self.index_namespaces),
        );
        gauge(
            "guardrails_kube_blast_cache_entries",
            "Namespaces and workloads whose blast-radius data is cached.",
            get(&self.blast_cache_entries),
        );
        gauge(
            "guardrails_kube_events_parked",
            "Events waiting now for their pod to be known.",
            get(&self.parked),
        );
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {value}");
        };
        counter(
            "guardrails_kube_cache_overflows_total",
            "Pods or namespaces not cached because the cache was full.",
            get(&self.index_overflows),
        );
        counter(
            "guardrails_kube_events_waited_total",
            "Events that waited for their pod to be known.",
            get(&self.waited),
        );
        counter(
            "guardrails_kube_events_unresolved_total",
            "Events of a pod's container sent without pod metadata (pod not known in time).",
            get(&self.unresolved),
        );
        for (name, help, field) in [
            (
                "guardrails_kube_watch_up",
                "1 while the watch is healthy.",
                0,
            ),
            (
                "guardrails_kube_watch_synced",
                "1 once the watch's first list completed.",
                1,
            ),
            (
                "guardrails_kube_watch_errors_total",
                "Watch failures (each is retried with backoff).",
                2,
            ),
            (
                "guardrails_kube_watch_relists_total",
                "Times the watch listed from scratch.",
                3,
            ),
        ] {
            let kind = if field >= 2 { "counter" } else { "gauge" };
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for which in Watched::ALL {
                let state = self.watch(which);
                let value = match field {
                    0 => flag(&state.up).into(),
                    1 => flag(&state.synced).into(),
                    2 => get(&state.errors),
                    _ => get(&state.relists),
                };
                let _ = writeln!(out, "{name}{{resource=\"{}\"}} {value}", which.as_str());
            }
        }
        let _ = writeln!(
            out,
            "# HELP guardrails_kube_requests_total Requests to the API server besides the watches, by purpose."
        );
        let _ = writeln!(out, "# TYPE guardrails_kube_requests_total counter");
        if let Ok(requests) = self.requests.lock() {
            for (what, count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "guardrails_kube_requests_total{{request=\"{what}\"}} {count}"
                );
            }
        }
    }
}
