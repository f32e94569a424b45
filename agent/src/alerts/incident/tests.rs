use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use super::*;
use crate::{
    alerts::config::AlertRateLimit,
    events::{
        action::{ActionReport, ActionTarget, Outcome},
        event::{Violation, WallTime},
        kubernetes::{Kubernetes, ObjectRef, PodStatus},
    },
    rules::Priority,
};

/// An alert of incident `incident`, as tests of the outputs need one.
pub(crate) fn alert(incident: &str) -> Alert {
    Alert {
        incident: incident.to_owned(),
        status: Status::Firing,
        rule: "Test rule".to_owned(),
        priority: Priority::Warning,
        severity: "warning",
        tags: vec!["test".to_owned()],
        namespace: None,
        workload: "host".to_owned(),
        team: None,
        node: "node-1".to_owned(),
        count: 1,
        first_seen: WallTime(SystemTime::UNIX_EPOCH),
        last_seen: WallTime(SystemTime::UNIX_EPOCH),
        pods: Vec::new(),
        more_pods: 0,
        containers: Vec::new(),
        summary: "something happened".to_owned(),
        blast_radius: None,
        actions: Vec::new(),
        runbook: None,
        samples: Vec::new(),
        suppressed: 0,
        dropped: 0,
    }
}

fn config() -> AlertsConfig {
    AlertsConfig {
        group_wait_ms: 1_000,
        group_interval_ms: 10_000,
        resolve_after_ms: 60_000,
        max_incidents: 10,
        max_pods: 2,
        ..AlertsConfig::default()
    }
}

pub(crate) fn violation(rule: &str, namespace: &str, workload: &str, pod: &str) -> Event {
    let mut event = Event::new(
        EventKind::Violation,
        WallTime(SystemTime::now()),
        0,
        "node-1".into(),
    );
    event.violation = Some(Box::new(Violation {
        rule: rule.to_owned(),
        priority: Priority::Critical,
        tags: vec!["container".to_owned()].into(),
        output: format!("{rule} in {pod}"),
        fields: BTreeMap::new(),
        event_type: "execve".to_owned(),
        blast_radius: None,
    }));
    let mut kube = Kubernetes::unresolved();
    kube.status = PodStatus::Resolved;
    kube.pod = Some(pod.to_owned());
    kube.namespace = Some(namespace.to_owned());
    kube.workload = Some(ObjectRef {
        api_version: "apps/v1".to_owned(),
        kind: "Deployment".to_owned(),
        name: workload.to_owned(),
    });
    kube.namespace_labels = BTreeMap::from([("team".to_owned(), "payments".to_owned())]);
    event.kubernetes = Some(Arc::new(kube));
    event
}

fn action(of: &Event, mode: Mode) -> Event {
    let mut event = of.clone();
    event.kind = EventKind::Action;
    let rule = of.violation.as_ref().map(|v| v.rule.clone());
    event.violation = None;
    event.action = Some(Box::new(ActionReport {
        action: "kill".to_owned(),
        mode,
        mode_source: "binding".to_owned(),
        outcome: if mode == Mode::Enforce {
            Outcome::Done
        } else {
            Outcome::WouldAct
        },
        rule,
        method: None,
        message: "killed pid 1".to_owned(),
        target: ActionTarget::default(),
        error: None,
    }));
    event
}

#[test]
fn replicas_of_one_workload_make_one_incident_with_a_count() {
    let mut aggregator = Aggregator::new(Arc::new(config()), "node-1".to_owned());
    let start = Instant::now();
    for i in 0..50 {
        aggregator.observe(
            &violation("Shell", "shop", "web", &format!("web-{i}")),
            start,
        );
    }
    aggregator.observe(&violation("Shell", "shop", "api", "api-1"), start);
    assert!(
        aggregator.due(start).is_empty(),
        "the first alert waits group_wait"
    );
    let alerts = aggregator.due(start + Duration::from_secs(1));
    assert_eq!(alerts.len(), 2);
    let web = alerts
        .iter()
        .find(|a| a.workload == "Deployment/web")
        .expect("the web incident");
    assert_eq!(web.count, 50);
    assert_eq!(web.namespace.as_deref(), Some("shop"));
    assert_eq!(
        web.team.as_deref(),
        Some("payments"),
        "from the namespace label"
    );
    assert_eq!(web.pods.len(), 2, "max_pods listed");
    assert_eq!(web.more_pods, 48);
    assert_eq!(web.samples.len(), 3);
    assert_eq!(web.severity, "critical");
}

#[test]
fn updates_come_at_most_every_group_interval_and_resolve_after_quiet() {
    let mut aggregator = Aggregator::new(Arc::new(config()), "node-1".to_owned());
    let t0 = Instant::now();
    aggregator.observe(&violation("Shell", "shop", "web", "web-1"), t0);
    assert_eq!(aggregator.due(t0 + Duration::from_secs(1)).len(), 1);
    aggregator.observe(
        &violation("Shell", "shop", "web", "web-1"),
        t0 + Duration::from_secs(2),
    );
    assert!(aggregator.due(t0 + Duration::from_secs(5)).is_empty());
    let update = aggregator.due(t0 + Duration::from_secs(11));
    assert_eq!(update.len(), 1);
    assert_eq!(update[0].count, 2);
    // Nothing new: no update, until it is quiet for resolve_after.
    assert!(aggregator.due(t0 + Duration::from_secs(25)).is_empty());
    let resolved = aggregator.due(t0 + Duration::from_secs(62));
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].status, Status::Resolved);
    assert!(aggregator.is_empty());
}

#[test]
fn long_incidents_are_restated_before_alertmanager_ends_them() {
    let mut aggregator = Aggregator::new(Arc::new(config()), "node-1".to_owned());
    let t0 = Instant::now();
    aggregator.observe(&violation("Shell", "shop", "web", "web-1"), t0);
    assert_eq!(aggregator.due(t0 + Duration::from_secs(1)).len(), 1);
    aggregator.observe(
        &violation("Shell", "shop", "web", "web-1"),
        t0 + Duration::from_secs(20),
    );
    assert_eq!(
        aggregator.due(t0 + Duration::from_secs(20)).len(),
        1,
        "an update"
    );
    // Recurring, nothing new at 51 s, but half of resolve_after passed.
    aggregator.observe(
        &violation("Shell", "shop", "web", "web-1"),
        t0 + Duration::from_secs(45),
    );
    let _ = aggregator.due(t0 + Duration::from_secs(45));
    let refresh = aggregator.due(t0 + Duration::from_secs(76));
    assert_eq!(refresh.len(), 1);
    assert_eq!(refresh[0].status, Status::Firing);
}

#[test]
fn monitor_mode_incidents_are_not_alerted_warn_ones_are() {
    let mut aggregator = Aggregator::new(Arc::new(config()), "node-1".to_owned());
    let t0 = Instant::now();
    let quiet = violation("Watched", "shop", "web", "web-1");
    aggregator.observe(&quiet, t0);
    aggregator.observe(&action(&quiet, Mode::Monitor), t0);
    let loud = violation("Warned", "shop", "web", "web-1");
    aggregator.observe(&loud, t0);
    aggregator.observe(&action(&loud, Mode::Warn), t0);
    let alerts = aggregator.due(t0 + Duration::from_secs(1));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule, "Warned");
    assert_eq!(alerts[0].actions.len(), 1);
    assert_eq!(alerts[0].actions[0].mode, "warn");
    assert_eq!(aggregator.stats().monitor_only, 1);
}

#[test]
fn rate_limits_hold_updates_back_and_say_how_many() {
    let config = AlertsConfig {
        rate_limit: AlertRateLimit {
            per_incident: 2,
            per_incident_seconds: 3600,
            global: 3,
            global_seconds: 60,
        },
        // No restatement of long incidents within the test's two minutes.
        resolve_after_ms: 600_000,
        ..config()
    };
    let mut aggregator = Aggregator::new(Arc::new(config), "node-1".to_owned());
    let t0 = Instant::now();
    // Global: four new incidents, three alerts a minute.
    for workload in ["a", "b", "c", "d"] {
        aggregator.observe(&violation("Shell", "shop", workload, "p"), t0);
    }
    assert_eq!(aggregator.due(t0 + Duration::from_secs(1)).len(), 3);
    assert_eq!(aggregator.stats().suppressed_global, 1);
    let late = aggregator.due(t0 + Duration::from_secs(61));
    assert_eq!(
        late.len(),
        1,
        "the held-back incident goes out when the window allows"
    );
    assert_eq!(late[0].suppressed, 1);
    // Per incident: two alerts an hour for "a" (one sent already).
    let mut now = t0 + Duration::from_secs(61);
    let mut sent = 0;
    for _ in 0..5 {
        now += Duration::from_secs(11);
        aggregator.observe(&violation("Shell", "shop", "a", "p"), now);
        sent += aggregator
            .due(now)
            .iter()
            .filter(|a| a.workload == "Deployment/a")
            .count();
    }
    assert_eq!(sent, 1, "one more update of \"a\" within the hour");
    assert_eq!(aggregator.stats().suppressed_incident, 4);
}

#[test]
fn incidents_beyond_the_bound_are_counted_not_tracked() {
    let mut aggregator = Aggregator::new(
        Arc::new(AlertsConfig {
            max_incidents: 2,
            ..config()
        }),
        "node-1".to_owned(),
    );
    let t0 = Instant::now();
    for workload in ["a", "b", "c"] {
        aggregator.observe(&violation("Shell", "shop", workload, "p"), t0);
    }
    assert_eq!(aggregator.len(), 2);
    assert_eq!(aggregator.stats().overflow, 1);
}

#[test]
fn flushing_sends_what_waits_at_once() {
    let mut aggregator = Aggregator::new(Arc::new(config()), "node-1".to_owned());
    let t0 = Instant::now();
    aggregator.observe(&violation("Shell", "shop", "web", "web-1"), t0);
    assert_eq!(aggregator.flush(t0).len(), 1);
}
