//! `guardrails status`: a running agent's version, sensors, rules, counters
//! and connected clients.

use std::io::Write;

use proto::v1::{Contained, GetStatusRequest, GetStatusResponse, ListContainedRequest};
use serde_json::{Value, json};

use super::{
    StatusArgs, StatusFormat,
    client::{CommandError, Connection},
};

/// Runs `guardrails status`, writing the status to `out`.
pub async fn run(args: &StatusArgs, out: &mut impl Write) -> Result<(), CommandError> {
    let mut connection = Connection::open(&args.connect).await?;
    let status = connection
        .client()
        .get_status(GetStatusRequest {})
        .await
        .map_err(|status| connection.call_error(&status))?
        .into_inner();
    let contained = connection
        .client()
        .list_contained(ListContainedRequest {})
        .await
        .map_err(|status| connection.call_error(&status))?
        .into_inner()
        .contained;
    let text = match args.output {
        StatusFormat::Text => {
            let mut text = text(&status);
            text.push_str(&format!("contained: {}\n", contained.len()));
            for c in &contained {
                text.push_str(&format!("  {}\n", super::contain::line(c)));
            }
            text
        }
        StatusFormat::Json => {
            let mut value = json(&status);
            value["contained"] = contained.iter().map(contained_json).collect();
            format!("{value}\n")
        }
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CommandError::Output)
}

/// The status as aligned `key: value` lines, one more per connected client.
pub fn text(status: &GetStatusResponse) -> String {
    let uptime = humantime::format_duration(std::time::Duration::from_secs(status.uptime_seconds));
    let sensors = if status.sensors.is_empty() {
        "none".to_owned()
    } else {
        status.sensors.join(", ")
    };
    let mut lines: Vec<(String, String)> = vec![
        ("version".into(), status.version.clone()),
        ("node".into(), status.node.clone()),
        ("run".into(), status.run_id.clone()),
        ("uptime".into(), uptime.to_string()),
        ("sensors".into(), sensors),
        ("tracepoints".into(), status.tracepoints.join(", ")),
    ];
    if !status.unobserved_syscalls.is_empty() {
        lines.push((
            "unobserved".into(),
            format!(
                "{} (no tracepoint in this kernel)",
                status.unobserved_syscalls.join(", ")
            ),
        ));
    }
    lines.extend([
        (
            "rules".into(),
            format!(
                "{} loaded, {} enabled",
                status.rules_loaded, status.rules_enabled
            ),
        ),
        ("events seen".into(), status.events_seen.to_string()),
        ("violations".into(), status.violations.to_string()),
        (
            "lost".into(),
            format!(
                "{} in the kernel, {} in decoding, {} in the queue",
                status.lost_in_kernel, status.lost_decode, status.lost_queue
            ),
        ),
        ("last sequence".into(), status.last_sequence.to_string()),
        ("clients".into(), status.clients.len().to_string()),
    ]);
    for client in &status.clients {
        lines.push((
            format!("  client {}", client.id),
            format!(
                "{}, {} sent, {} lost",
                client.peer, client.sent, client.lost
            ),
        ));
    }
    let width = lines.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    lines
        .iter()
        .map(|(key, value)| format!("{:<width$} {value}\n", format!("{key}:")))
        .collect()
}

/// One contained container as JSON, the fields named as in the API.
fn contained_json(c: &Contained) -> Value {
    let by = |b: &proto::v1::ContainedBy| json!({"rule": b.rule, "since_unix_ns": b.since_unix_ns});
    json!({
        "cgroup_id": c.cgroup_id,
        "cgroup_dir": c.cgroup_dir,
        "container_id": c.container_id,
        "frozen": c.frozen.as_ref().map(by),
        "isolated": c.isolated.as_ref().map(by),
        "dropped_ingress": c.dropped_ingress,
        "dropped_egress": c.dropped_egress,
    })
}

/// The status as one JSON object, the fields named as in the API.
pub fn json(status: &GetStatusResponse) -> Value {
    json!({
        "version": status.version,
        "node": status.node,
        "run_id": status.run_id,
        "uptime_seconds": status.uptime_seconds,
        "sensors": status.sensors,
        "tracepoints": status.tracepoints,
        "unobserved_syscalls": status.unobserved_syscalls,
        "rules_loaded": status.rules_loaded,
        "rules_enabled": status.rules_enabled,
        "events_seen": status.events_seen,
        "violations": status.violations,
        "lost_in_kernel": status.lost_in_kernel,
        "lost_decode": status.lost_decode,
        "lost_queue": status.lost_queue,
        "last_sequence": status.last_sequence,
        "clients": status.clients.iter().map(|c| json!({
            "id": c.id,
            "peer": c.peer,
            "sent": c.sent,
            "lost": c.lost,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use proto::v1::ClientStatus;

    use super::*;

    fn status() -> GetStatusResponse {
        GetStatusResponse {
            version: "0.1.0".into(),
            node: "node-1".into(),
            run_id: "r1".into(),
            uptime_seconds: 3723,
            sensors: vec!["process".into(), "file".into()],
            tracepoints: vec![
                "sched_process_exec".into(),
                "syscalls/sys_exit_* (48 syscalls)".into(),
            ],
            unobserved_syscalls: vec!["init_module".into(), "finit_module".into()],
            rules_loaded: 80,
            rules_enabled: 71,
            events_seen: 123_456,
            violations: 7,
            lost_in_kernel: 1,
            lost_decode: 2,
            lost_queue: 3,
            last_sequence: 123_460,
            clients: vec![ClientStatus {
                id: 4,
                peer: "unix".into(),
                sent: 99,
                lost: 0,
            }],
        }
    }

    #[test]
    fn text_is_aligned_key_value_lines_with_one_per_client() {
        assert_eq!(
            text(&status()),
            "\
version:       0.1.0
node:          node-1
run:           r1
uptime:        1h 2m 3s
sensors:       process, file
tracepoints:   sched_process_exec, syscalls/sys_exit_* (48 syscalls)
unobserved:    init_module, finit_module (no tracepoint in this kernel)
rules:         80 loaded, 71 enabled
events seen:   123456
violations:    7
lost:          1 in the kernel, 2 in decoding, 3 in the queue
last sequence: 123460
clients:       1
  client 4:    unix, 99 sent, 0 lost
"
        );
    }

    #[test]
    fn json_has_every_field_of_the_message() {
        let value = json(&status());
        assert_eq!(value["run_id"], "r1");
        assert_eq!(value["lost_queue"], 3);
        assert_eq!(value["clients"][0]["sent"], 99);
        assert_eq!(value["tracepoints"][1], "syscalls/sys_exit_* (48 syscalls)");
        assert_eq!(value["unobserved_syscalls"][1], "finit_module");
        assert_eq!(value.as_object().map(serde_json::Map::len), Some(16));
    }
}
