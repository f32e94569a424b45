//! Aggregation: violations grouped into incidents keyed by rule × namespace ×
//! workload (not pod: fifty replicas of one Deployment breaking one rule are
//! one incident), and when each incident is worth telling on-call about.
//!
//! A new incident waits `group_wait_ms` (so that the burst it starts and the
//! action taken are in its first alert), is then updated at most every
//! `group_interval_ms` while it recurs, refreshed while it lasts, and
//! resolved once it has not recurred for `resolve_after_ms`. The rate limits
//! hold updates back, never violations: counts are cumulative, and how many
//! updates were held back is said in the next one sent.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    alert::{ActionTaken, Alert, Status, severity},
    config::AlertsConfig,
};
use crate::{
    actions::Mode,
    events::{EventKind, event::Event},
};

/// Distinct pods remembered per incident (those beyond `max_pods` only
/// counted), so that a crash-looping workload cannot grow an incident.
const PODS_REMEMBERED: usize = 1_000;

/// What the aggregator has done, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AggregateStats {
    /// Violations folded into incidents.
    pub violations: u64,
    /// Violations of new incidents beyond `max_incidents`.
    pub overflow: u64,
    /// Updates held back by the per-incident limit.
    pub suppressed_incident: u64,
    /// Alerts held back by the global limit.
    pub suppressed_global: u64,
    /// Incidents not alerted because all their actions are in monitor mode.
    pub monitor_only: u64,
}

/// The incidents of this node.
pub struct Aggregator {
    config: Arc<AlertsConfig>,
    node: String,
    incidents: HashMap<String, Incident>,
    global: VecDeque<Instant>,
    stats: AggregateStats,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("node", &self.node)
            .field("incidents", &self.incidents.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

struct Incident {
    alert: Alert,
    last_seen: Instant,
    next_due: Instant,
    last_sent: Option<Instant>,
    sent: VecDeque<Instant>,
    dirty: bool,
    pods: BTreeSet<String>,
    containers: BTreeSet<String>,
    /// The highest mode of the actions reported; `None` without actions.
    mode: Option<Mode>,
    counted_monitor_only: bool,
}

impl Aggregator {
    /// An aggregator for the agent on `node`.
    pub fn new(config: Arc<AlertsConfig>, node: String) -> Self {
        Self {
            config,
            node,
            incidents: HashMap::new(),
            global: VecDeque::new(),
            stats: AggregateStats::default(),
        }
    }

    /// What has been done so far.
    pub fn stats(&self) -> AggregateStats {
        self.stats
    }

    /// Incidents tracked now.
    pub fn len(&self) -> usize {
        self.incidents.len()
    }

    /// Whether no incident is tracked.
    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
    }

    /// Folds a violation, or an action report, into its incident; other
    /// events are ignored.
    pub fn observe(&mut self, event: &Event, now: Instant) {
        match event.kind {
            EventKind::Violation => self.violation(event, now),
            EventKind::Action => self.action(event),
            _ => {}
        }
    }

    fn violation(&mut self, event: &Event, now: Instant) {
        let Some(v) = event.violation.as_deref() else {
            return;
        };
        self.stats.violations += 1;
        let place = Place::of(event, &self.config);
        let id = incident_id(&v.rule, place.namespace.as_deref(), &place.workload);
        if !self.incidents.contains_key(&id) {
            if self.incidents.len() >= self.config.max_incidents {
                self.stats.overflow += 1;
                if self.stats.overflow.is_power_of_two() {
                    tracing::warn!(
                        max_incidents = self.config.max_incidents,
                        overflow = self.stats.overflow,
                        "too many incidents at once; violations of new ones are counted, not alerted"
                    );
                }
                return;
            }
            let alert = Alert {
                incident: id.clone(),
                status: Status::Firing,
                rule: v.rule.clone(),
                priority: v.priority,
                severity: severity(v.priority),
                tags: v.tags.to_vec(),
                namespace: place.namespace.clone(),
                workload: place.workload.clone(),
                team: place.team.clone(),
                node: self.node.clone(),
                count: 0,
                first_seen: event.time,
                last_seen: event.time,
                pods: Vec::new(),
                more_pods: 0,
                containers: Vec::new(),
                summary: v.output.clone(),
                blast_radius: None,
                actions: Vec::new(),
                runbook: self.config.runbooks.link(&v.rule),
                samples: Vec::new(),
                suppressed: 0,
                dropped: 0,
            };
            let wait = Duration::from_millis(self.config.group_wait_ms);
            self.incidents.insert(
                id.clone(),
                Incident {
                    alert,
                    last_seen: now,
                    next_due: now + wait,
                    last_sent: None,
                    sent: VecDeque::new(),
                    dirty: true,
                    pods: BTreeSet::new(),
                    containers: BTreeSet::new(),
                    mode: None,
                    counted_monitor_only: false,
                },
            );
        }
        let Some(incident) = self.incidents.get_mut(&id) else {
            return;
        };
        incident.alert.count += 1;
        incident.alert.last_seen = event.time;
        incident.last_seen = now;
        incident.dirty = true;
        if let Some(pod) = place.pod
            && incident.pods.len() < PODS_REMEMBERED
        {
            incident.pods.insert(pod);
        }
        if let Some(container) = place.container
            && incident.containers.len() < self.config.max_pods
        {
            incident.containers.insert(container);
        }
        if let Some(blast) = &v.blast_radius
            && let Ok(value) = serde_json::to_value(blast)
        {
            incident.alert.blast_radius = Some(value);
        }
        if incident.alert.samples.len() < self.config.samples
            && let Ok(value) = serde_json::to_value(event)
        {
            incident.alert.samples.push(value);
        }
    }

    fn action(&mut self, event: &Event) {
        let Some(report) = event.action.as_deref() else {
            return;
        };
        let Some(rule) = &report.rule else {
            return;
        };
        let place = Place::of(event, &self.config);
        let id = incident_id(rule, place.namespace.as_deref(), &place.workload);
        let Some(incident) = self.incidents.get_mut(&id) else {
            return;
        };
        incident.mode = incident.mode.max(Some(report.mode));
        let taken = ActionTaken {
            action: report.action.clone(),
            mode: report.mode.as_str().to_owned(),
            outcome: report.outcome.as_str().to_owned(),
            message: report.message.clone(),
        };
        match incident
            .alert
            .actions
            .iter_mut()
            .find(|a| a.action == taken.action)
        {
            Some(slot) => *slot = taken,
            None => incident.alert.actions.push(taken),
        }
        incident.dirty = true;
    }

    /// The alerts due at `now`: new incidents past their wait, updates of
    /// recurring ones, refreshes of long ones, and resolutions.
    pub fn due(&mut self, now: Instant) -> Vec<Alert> {
        self.collect(now, false)
    }

    /// Every pending alert now, waits ignored (at shutdown).
    pub fn flush(&mut self, now: Instant) -> Vec<Alert> {
        self.collect(now, true)
    }

    fn collect(&mut self, now: Instant, flushing: bool) -> Vec<Alert> {
        let config = &self.config;
        let resolve_after = Duration::from_millis(config.resolve_after_ms);
        let interval = Duration::from_millis(config.group_interval_ms);
        let per_incident_window =
            Duration::from_secs(u64::from(config.rate_limit.per_incident_seconds));
        let global_window = Duration::from_secs(u64::from(config.rate_limit.global_seconds));
        while self
            .global
            .front()
            .is_some_and(|t| now.duration_since(*t) >= global_window)
        {
            self.global.pop_front();
        }
        let mut out = Vec::new();
        let mut resolved = Vec::new();
        for (id, incident) in &mut self.incidents {
            if now.duration_since(incident.last_seen) >= resolve_after {
                resolved.push(id.clone());
                if incident.last_sent.is_some() {
                    let mut alert = incident.snapshot(config.max_pods);
                    alert.status = Status::Resolved;
                    out.push(alert);
                }
                continue;
            }
            if !config.alert_in_monitor_mode && incident.mode == Some(Mode::Monitor) {
                if !incident.counted_monitor_only {
                    incident.counted_monitor_only = true;
                    self.stats.monitor_only += 1;
                }
                incident.dirty = false;
                continue;
            }
            // Alertmanager resolves an alert at its endsAt; a long incident
            // is restated before that, whatever the limits.
            let refresh = incident
                .last_sent
                .is_some_and(|sent| now.duration_since(sent) >= resolve_after / 2);
            let update = incident.dirty && (flushing || now >= incident.next_due);
            if !update && !refresh {
                continue;
            }
            if update && !refresh && !flushing {
                while incident
                    .sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= per_incident_window)
                {
                    incident.sent.pop_front();
                }
                let first = incident.last_sent.is_none();
                let held =
                    if !first && incident.sent.len() >= config.rate_limit.per_incident as usize {
                        self.stats.suppressed_incident += 1;
                        true
                    } else if self.global.len() >= config.rate_limit.global as usize {
                        self.stats.suppressed_global += 1;
                        true
                    } else {
                        false
                    };
                if held {
                    incident.alert.suppressed += 1;
                    incident.next_due = now + interval;
                    continue;
                }
                self.global.push_back(now);
                incident.sent.push_back(now);
            }
            out.push(incident.snapshot(config.max_pods));
            incident.alert.suppressed = 0;
            incident.dirty = false;
            incident.last_sent = Some(now);
            incident.next_due = now + interval;
        }
        for id in resolved {
            self.incidents.remove(&id);
        }
        // Oldest first, so that a full queue keeps the newest.
        out.sort_by(|a, b| (a.first_seen.0, &a.incident).cmp(&(b.first_seen.0, &b.incident)));
        out
    }
}

impl Incident {
    fn snapshot(&self, max_pods: usize) -> Alert {
        let mut alert = self.alert.clone();
        alert.pods = self.pods.iter().take(max_pods).cloned().collect();
        alert.more_pods = self.pods.len().saturating_sub(max_pods) as u64;
        alert.containers = self.containers.iter().cloned().collect();
        alert
    }
}

/// Where a violation happened, as far as incidents are concerned.
struct Place {
    namespace: Option<String>,
    workload: String,
    team: Option<String>,
    pod: Option<String>,
    container: Option<String>,
}

impl Place {
    fn of(event: &Event, config: &AlertsConfig) -> Self {
        let kube = event.kubernetes.as_deref().filter(|k| k.pod.is_some());
        let container = event
            .container
            .as_deref()
            .filter(|c| c.kind != "host")
            .and_then(|c| c.id.clone());
        match kube {
            Some(k) => {
                let pod = k.pod.clone();
                let workload = match (&k.workload, &pod) {
                    (Some(w), _) => format!("{}/{}", w.kind, w.name),
                    (None, Some(pod)) => format!("Pod/{pod}"),
                    (None, None) => "Pod/unknown".to_owned(),
                };
                let team = config
                    .team
                    .pod_label
                    .as_ref()
                    .and_then(|label| k.labels.get(label))
                    .or_else(|| {
                        config
                            .team
                            .namespace_label
                            .as_ref()
                            .and_then(|label| k.namespace_labels.get(label))
                    })
                    .cloned();
                Self {
                    namespace: k.namespace.clone(),
                    workload,
                    team,
                    pod,
                    container: None,
                }
            }
            None => Self {
                namespace: None,
                workload: match &container {
                    Some(id) => format!("container/{}", id.get(..12).unwrap_or(id)),
                    None => "host".to_owned(),
                },
                team: None,
                pod: None,
                container,
            },
        }
    }
}

/// The incident's identity; the same on every node.
fn incident_id(rule: &str, namespace: Option<&str>, workload: &str) -> String {
    format!("{rule}|{}|{workload}", namespace.unwrap_or_default())
}

#[cfg(test)]
pub(crate) mod tests;
