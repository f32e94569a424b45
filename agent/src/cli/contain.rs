//! `guardrails thaw`, `guardrails lift` and `guardrails cleanup`.

use std::io::Write;

use proto::v1::{Contained, ContainedTarget};

use super::{
    CleanupArgs, ContainedArgs,
    client::{CommandError, Connection},
};

/// Thaws (`thaw`) or lifts (`lift`) a container through the agent and
/// prints what stays contained there.
pub async fn undo(
    args: &ContainedArgs,
    lift: bool,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let mut connection = Connection::open(&args.connect).await?;
    let target = match args.container.parse::<u64>() {
        Ok(cgroup_id) if args.container.len() < 12 => ContainedTarget {
            cgroup_id,
            container_id: String::new(),
        },
        _ => ContainedTarget {
            cgroup_id: 0,
            container_id: args.container.clone(),
        },
    };
    let response = if lift {
        connection.client().lift(target).await
    } else {
        connection.client().thaw(target).await
    }
    .map_err(|status| connection.call_error(&status))?
    .into_inner();
    let done = if lift { "lifted" } else { "thawed" };
    let line = match response.contained {
        Some(still) => format!("{done}; still {}\n", line(&still)),
        None => format!("{done}; nothing is contained there any more\n"),
    };
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CommandError::Output)
}

/// One contained container: `3f2a9c1e7b4d (cgroup 1234): frozen by RULE,
/// isolated by RULE (12 packets dropped)`.
pub fn line(c: &Contained) -> String {
    let id = c.container_id.get(..12).unwrap_or(&c.container_id);
    let mut states = Vec::new();
    if let Some(by) = &c.frozen {
        states.push(format!("frozen by \"{}\"", by.rule));
    }
    if let Some(by) = &c.isolated {
        states.push(format!(
            "isolated by \"{}\" ({} packets dropped)",
            by.rule,
            c.dropped_ingress + c.dropped_egress
        ));
    }
    format!("{id} (cgroup {}): {}", c.cgroup_id, states.join(", "))
}

/// Why `cleanup` did not leave the node clean.
#[derive(Debug, thiserror::Error)]
#[error("{0} item(s) could not be cleaned up; see above")]
pub struct CleanupFailed(pub usize);

/// Runs `guardrails cleanup`, printing what it undid.
pub fn cleanup(args: &CleanupArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let report = crate::actions::cleanup::cleanup(&args.pin_dir);
    let mut text = String::new();
    for dir in &report.thawed {
        text.push_str(&format!("thawed {}\n", dir.display()));
    }
    for id in &report.gone {
        text.push_str(&format!("cgroup {id} is gone; nothing to thaw\n"));
    }
    for link in &report.detached {
        text.push_str(&format!("detached {}\n", link.display()));
    }
    for pin in &report.unpinned {
        text.push_str(&format!("unpinned {}\n", pin.display()));
    }
    if report.removed_dir {
        text.push_str(&format!("removed {}\n", args.pin_dir.display()));
    }
    for error in &report.errors {
        text.push_str(&format!("error: {}\n", crate::logging::error_chain(error)));
    }
    out.write_all(text.as_bytes())?;
    out.flush()?;
    if report.is_clean() {
        Ok(())
    } else {
        Err(CleanupFailed(report.errors.len()).into())
    }
}
