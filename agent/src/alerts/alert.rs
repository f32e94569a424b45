//! What an output is told about an incident: one [`Alert`], the same for
//! every destination, each of which renders it its own way. Its JSON is the
//! webhook and file outputs' payload (docs/alerts.md).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{events::event::WallTime, rules::Priority};

/// Whether the incident is going on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It recurred within `resolve_after_ms`.
    Firing,
    /// It stopped recurring.
    Resolved,
}

/// An incident as it stands: the rule broken by one workload.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    /// Stable for the incident on every node: rule, namespace and workload.
    pub incident: String,
    /// Firing or resolved.
    pub status: Status,
    /// The rule.
    pub rule: String,
    /// The rule's priority.
    pub priority: Priority,
    /// `critical`, `error`, `warning` or `info`, from the priority.
    pub severity: &'static str,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// The namespace; absent on the node itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `Kind/name` of the owning workload, the pod for a bare pod, the
    /// container outside a cluster, or `host`.
    pub workload: String,
    /// The owning team, from the configured pod or namespace label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The node whose agent sends this.
    pub node: String,
    /// Violations on this node in this incident.
    pub count: u64,
    /// The first violation.
    pub first_seen: WallTime,
    /// The last one.
    pub last_seen: WallTime,
    /// Pods involved (at most `max_pods`).
    pub pods: Vec<String>,
    /// Pods involved beyond those listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub more_pods: u64,
    /// Containers involved, for processes outside pods.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
    /// The first violation's rendered output.
    pub summary: String,
    /// What the pod can reach, from the newest violation that had it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<serde_json::Value>,
    /// The actions taken or that would have been, newest per action.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionTaken>,
    /// The rule's runbook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    /// The first violations, as events.
    pub samples: Vec<serde_json::Value>,
    /// Updates of this incident held back by the rate limits since the
    /// last one sent.
    #[serde(skip_serializing_if = "is_zero")]
    pub suppressed: u64,
    /// Alerts this destination dropped (queue full, or refused) since the
    /// last one it accepted; set when delivered.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

/// One action of an incident, as its last report said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionTaken {
    /// `kill`, `freeze`, ...
    pub action: String,
    /// `monitor`, `warn` or `enforce`.
    pub mode: String,
    /// `done`, `would_act`, `skipped`, `rate_limited` or `failed`.
    pub outcome: String,
    /// The report's line for people.
    pub message: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The Alertmanager severity of a Falco priority.
pub fn severity(priority: Priority) -> &'static str {
    match priority {
        Priority::Emergency | Priority::Alert | Priority::Critical => "critical",
        Priority::Error => "error",
        Priority::Warning => "warning",
        Priority::Notice | Priority::Informational | Priority::Debug => "info",
    }
}

impl Alert {
    /// Labels that identify the incident wherever it is reported from.
    pub fn identity_labels(&self) -> BTreeMap<&'static str, String> {
        let mut labels = BTreeMap::from([
            ("alertname", self.rule.clone()),
            ("severity", self.severity.to_owned()),
            ("workload", self.workload.clone()),
            ("source", "guardrails".to_owned()),
        ]);
        if let Some(namespace) = &self.namespace {
            labels.insert("namespace", namespace.clone());
        }
        if let Some(team) = &self.team {
            labels.insert("team", team.clone());
        }
        labels
    }

    /// One line for people: what, where, how often.
    pub fn headline(&self) -> String {
        let place = match &self.namespace {
            Some(namespace) => format!("{namespace}/{}", self.workload),
            None => self.workload.clone(),
        };
        let status = match self.status {
            Status::Firing => "",
            Status::Resolved => "resolved: ",
        };
        format!(
            "{status}{} in {place} ({} {} on {})",
            self.rule,
            self.count,
            if self.count == 1 { "time" } else { "times" },
            self.node
        )
    }

    /// The actions in one line each.
    pub fn action_lines(&self) -> Vec<String> {
        self.actions
            .iter()
            .map(|a| format!("{} ({}, {}): {}", a.action, a.mode, a.outcome, a.message))
            .collect()
    }
}
