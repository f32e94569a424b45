//! Alerts as Prometheus Alertmanager's v2 API takes them
//! (`POST /api/v2/alerts`, a JSON array). Labels identify the incident, the
//! same on every node, so that Alertmanager merges reports of one incident
//! from several agents into one alert; everything else is an annotation.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use serde::Serialize;

use super::alert::{Alert, Status};

/// Alerts sent in one request, at most.
pub const BATCH: usize = 64;

/// One alert of the v2 API.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<&'static str, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    generator_url: Option<String>,
}

/// The URL alerts are posted to.
pub fn endpoint(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

/// The request body for `alerts`. A firing alert ends at `now + ends_in`
/// unless restated, so that an agent that vanishes does not leave it firing
/// for ever; a resolved one ends now.
pub fn body(
    alerts: &[Alert],
    extra_labels: &BTreeMap<String, String>,
    dropped: u64,
    now: SystemTime,
    ends_in: Duration,
) -> Vec<u8> {
    let postable: Vec<PostableAlert> = alerts
        .iter()
        .map(|alert| {
            let mut labels: BTreeMap<String, String> = extra_labels.clone();
            for (name, value) in alert.identity_labels() {
                labels.insert(name.to_owned(), value);
            }
            let ends_at = match alert.status {
                Status::Firing => now + ends_in,
                Status::Resolved => now,
            };
            PostableAlert {
                labels,
                annotations: annotations(alert, dropped),
                starts_at: humantime::format_rfc3339_millis(alert.first_seen.0).to_string(),
                ends_at: humantime::format_rfc3339_millis(ends_at).to_string(),
                generator_url: alert.runbook.clone(),
            }
        })
        .collect();
    // Serializing plain strings and maps cannot fail.
    serde_json::to_vec(&postable).unwrap_or_default()
}

fn annotations(alert: &Alert, dropped: u64) -> BTreeMap<&'static str, String> {
    let mut notes = BTreeMap::from([
        ("summary", alert.headline()),
        ("description", alert.summary.clone()),
        ("priority", alert.priority.as_str().to_owned()),
        ("count", alert.count.to_string()),
        (
            "first_seen",
            humantime::format_rfc3339_millis(alert.first_seen.0).to_string(),
        ),
        (
            "last_seen",
            humantime::format_rfc3339_millis(alert.last_seen.0).to_string(),
        ),
        ("node", alert.node.clone()),
    ]);
    if !alert.tags.is_empty() {
        notes.insert("tags", alert.tags.join(","));
    }
    if !alert.pods.is_empty() {
        let mut pods = alert.pods.join(",");
        if alert.more_pods > 0 {
            pods.push_str(&format!(" and {} more", alert.more_pods));
        }
        notes.insert("pods", pods);
    }
    if !alert.containers.is_empty() {
        notes.insert("containers", alert.containers.join(","));
    }
    if let Some(blast) = &alert.blast_radius {
        notes.insert("blast_radius", blast.to_string());
    }
    if !alert.actions.is_empty() {
        notes.insert("actions", alert.action_lines().join("\n"));
    }
    if let Some(runbook) = &alert.runbook {
        notes.insert("runbook_url", runbook.clone());
    }
    if alert.suppressed > 0 {
        notes.insert("suppressed_updates", alert.suppressed.to_string());
    }
    if dropped > 0 {
        notes.insert("dropped_alerts", dropped.to_string());
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{alert::ActionTaken, incident::tests::alert};

    #[test]
    fn labels_identify_the_incident_and_annotations_carry_the_rest() {
        let mut a = alert("x");
        a.namespace = Some("shop".to_owned());
        a.workload = "Deployment/web".to_owned();
        a.team = Some("payments".to_owned());
        a.pods = vec!["web-1".to_owned(), "web-2".to_owned()];
        a.more_pods = 3;
        a.count = 1000;
        a.blast_radius = Some(serde_json::json!({"service_account": "web"}));
        a.actions = vec![ActionTaken {
            action: "kill".to_owned(),
            mode: "warn".to_owned(),
            outcome: "would_act".to_owned(),
            message: "would kill pid 7 (nc) (warn mode)".to_owned(),
        }];
        a.runbook = Some("https://runbooks.example/x".to_owned());
        let extra = BTreeMap::from([("cluster".to_owned(), "prod".to_owned())]);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let body = body(&[a], &extra, 2, now, Duration::from_secs(300));
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let posted = &value[0];
        assert_eq!(posted["labels"]["alertname"], "Test rule");
        assert_eq!(posted["labels"]["severity"], "warning");
        assert_eq!(posted["labels"]["namespace"], "shop");
        assert_eq!(posted["labels"]["workload"], "Deployment/web");
        assert_eq!(posted["labels"]["team"], "payments");
        assert_eq!(posted["labels"]["cluster"], "prod");
        assert_eq!(posted["annotations"]["count"], "1000");
        assert_eq!(posted["annotations"]["pods"], "web-1,web-2 and 3 more");
        assert_eq!(posted["annotations"]["dropped_alerts"], "2");
        assert!(
            posted["annotations"]["actions"]
                .as_str()
                .is_some_and(|a| a.contains("would kill pid 7"))
        );
        assert_eq!(posted["generatorURL"], "https://runbooks.example/x");
        assert_eq!(posted["endsAt"], "1970-01-12T13:51:40.000Z");
    }

    #[test]
    fn a_resolved_alert_ends_now() {
        let mut a = alert("x");
        a.status = Status::Resolved;
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(60);
        let body = body(&[a], &BTreeMap::new(), 0, now, Duration::from_secs(300));
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(value[0]["endsAt"], "1970-01-01T00:01:00.000Z");
        assert!(value[0]["annotations"].get("dropped_alerts").is_none());
    }
}
