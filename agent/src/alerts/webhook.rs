//! Webhooks: each alert POSTed on its own, as the alert's JSON or as a
//! Slack incoming-webhook message, optionally signed.
//!
//! The signature lets the receiver check that the body came from an agent
//! holding the key and was not replayed long after: the header
//! `X-Guardrails-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
//! HMAC-SHA256 over `<unix seconds>.<body>` with the shared key.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::{
    alert::{Alert, Status},
    config::Secret,
};

/// The signature's header.
pub const SIGNATURE_HEADER: &str = "x-guardrails-signature";

/// The alert's JSON, with the drops this destination must report.
pub fn json_body(alert: &Alert, dropped: u64) -> Vec<u8> {
    let mut alert = alert.clone();
    alert.dropped = dropped;
    // An alert is plain data; serializing it cannot fail.
    serde_json::to_vec(&alert).unwrap_or_default()
}

/// A Slack message: a headline, then what on-call needs to act.
pub fn slack_body(alert: &Alert, dropped: u64) -> Vec<u8> {
    let icon = match (alert.status, alert.severity) {
        (Status::Resolved, _) => ":white_check_mark:",
        (_, "critical") => ":rotating_light:",
        (_, "error") => ":red_circle:",
        (_, "warning") => ":warning:",
        _ => ":information_source:",
    };
    let headline = format!("{icon} *{}*", escape(&alert.headline()));
    let mut lines = vec![format!("> {}", escape(&alert.summary))];
    if let Some(team) = &alert.team {
        lines.push(format!("*Team:* {}", escape(team)));
    }
    if !alert.pods.is_empty() {
        let mut pods = alert.pods.join(", ");
        if alert.more_pods > 0 {
            pods.push_str(&format!(" and {} more", alert.more_pods));
        }
        lines.push(format!("*Pods:* {}", escape(&pods)));
    }
    for action in alert.action_lines() {
        lines.push(format!("*Action:* {}", escape(&action)));
    }
    if let Some(blast) = &alert.blast_radius {
        lines.push(format!("*Blast radius:* `{}`", escape(&blast.to_string())));
    }
    if let Some(runbook) = &alert.runbook {
        lines.push(format!("<{runbook}|Runbook>"));
    }
    if alert.suppressed > 0 {
        lines.push(format!(
            "_{} updates held back by the rate limit_",
            alert.suppressed
        ));
    }
    if dropped > 0 {
        lines.push(format!(
            "_{dropped} alerts to this channel were dropped while it was unreachable_"
        ));
    }
    let detail = lines.join("\n");
    let message = json!({
        "text": format!("{headline}\n{detail}"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "text": {"type": "mrkdwn", "text": detail}},
        ],
    });
    serde_json::to_vec(&message).unwrap_or_default()
}

/// Slack's mrkdwn reserves `&`, `<` and `>`.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The signature header's value for `body` sent at `now`.
pub fn signature(secret: &Secret, body: &[u8], now: SystemTime) -> String {
    let seconds = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret.0);
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(seconds.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    let hex: String = tag
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("t={seconds},v1={hex}")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alerts::incident::tests::alert;

    #[test]
    fn the_signature_is_hmac_sha256_of_time_and_body() {
        // RFC 4231 test case 2 gives HMAC-SHA256("Jefe", "what do ya want
        // for nothing?"); split as "<t>.<body>" it checks the framing too.
        let secret = Secret(b"Jefe".to_vec());
        let now = UNIX_EPOCH + Duration::from_secs(0);
        let header = signature(&secret, b"what do ya want for nothing?", now);
        assert!(header.starts_with("t=0,v1="), "{header}");
        let expected = {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
            let tag = ring::hmac::sign(&key, b"0.what do ya want for nothing?");
            tag.as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        assert_eq!(header, format!("t=0,v1={expected}"));
        let other = signature(
            &Secret(b"other".to_vec()),
            b"what do ya want for nothing?",
            now,
        );
        assert_ne!(header, other);
    }

    #[test]
    fn json_carries_the_alert_and_the_drops() {
        let mut a = alert("x");
        a.count = 5;
        let value: serde_json::Value = serde_json::from_slice(&json_body(&a, 4)).expect("JSON");
        assert_eq!(value["rule"], "Test rule");
        assert_eq!(value["count"], 5);
        assert_eq!(value["dropped"], 4);
        assert_eq!(value["status"], "firing");
    }

    #[test]
    fn slack_messages_are_escaped_and_say_what_happened() {
        let mut a = alert("x");
        a.summary = "cat <script> & more".to_owned();
        a.team = Some("payments".to_owned());
        let value: serde_json::Value = serde_json::from_slice(&slack_body(&a, 2)).expect("JSON");
        let text = value["text"].as_str().expect("text");
        assert!(text.contains("cat &lt;script&gt; &amp; more"), "{text}");
        assert!(text.contains("*Team:* payments"), "{text}");
        assert!(
            text.contains("2 alerts to this channel were dropped"),
            "{text}"
        );
        assert_eq!(value["blocks"].as_array().map(Vec::len), Some(2));
    }
}
