//! `guardrails events`: a running agent's events and violations, filtered by
//! the agent, replayed from its buffer and followed live.

use std::io::{self, BufWriter, Write};

use futures::FutureExt;
use proto::v1::{Cursor, EventFilter, Lost, StreamEventsRequest, lost, stream_events_response};
use tokio::signal::unix::{SignalKind, signal};

use super::{
    EventsArgs,
    client::{CommandError, Connection},
    format::Printer,
};
use crate::rules::Priority;

/// Parses `--min-priority`: a Falco priority name in any case.
pub fn parse_priority(text: &str) -> Result<Priority, String> {
    Priority::from_name(text).ok_or_else(|| {
        format!(
            "unknown priority {text:?}; expected emergency, alert, critical, error, warning, \
             notice, informational (or info) or debug"
        )
    })
}

/// Parses `--label`: `KEY=VALUE` (the value may be empty).
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Parses `--resume-after`: `RUN_ID:SEQUENCE`. An empty run id with
/// sequence 0 (`:0`) means the oldest event the agent still buffers.
pub fn parse_cursor(text: &str) -> Result<Cursor, String> {
    let bad = || {
        format!("expected RUN_ID:SEQUENCE, as printed when `guardrails events` ends, got {text:?}")
    };
    let (run_id, sequence) = text.rsplit_once(':').ok_or_else(bad)?;
    let sequence: u64 = sequence.parse().map_err(|_| bad())?;
    if run_id.is_empty() && sequence != 0 {
        return Err(bad());
    }
    Ok(Cursor {
        run_id: run_id.to_owned(),
        sequence,
    })
}

/// The API's priority for a rules priority.
pub fn api_priority(priority: Priority) -> proto::v1::Priority {
    match priority {
        Priority::Emergency => proto::v1::Priority::Emergency,
        Priority::Alert => proto::v1::Priority::Alert,
        Priority::Critical => proto::v1::Priority::Critical,
        Priority::Error => proto::v1::Priority::Error,
        Priority::Warning => proto::v1::Priority::Warning,
        Priority::Notice => proto::v1::Priority::Notice,
        Priority::Informational => proto::v1::Priority::Informational,
        Priority::Debug => proto::v1::Priority::Debug,
    }
}

/// The filter the arguments ask for, one field per flag.
pub fn filter(args: &EventsArgs) -> EventFilter {
    EventFilter {
        kinds: args.kinds.clone(),
        violations_only: args.violations,
        min_priority: args
            .min_priority
            .map_or(proto::v1::Priority::Unspecified, api_priority)
            .into(),
        rules: args.rules.clone(),
        tags: args.tags.clone(),
        namespaces: args.namespaces.clone(),
        pods: args.pods.clone(),
        pod_labels: args.labels.iter().cloned().collect(),
        workloads: args.workloads.clone(),
        container_ids: args.container_ids.clone(),
        process_names: args.process_names.clone(),
        process_paths: args.process_paths.clone(),
    }
}

/// The request the arguments ask for. Without `--follow`: every buffered
/// event (or those after `--resume-after`), then the end. With it: live
/// events, after a replay from `--resume-after` when given.
pub fn request(args: &EventsArgs) -> StreamEventsRequest {
    let (resume_after, replay_only) = if args.follow {
        (args.resume_after.clone(), false)
    } else {
        (Some(args.resume_after.clone().unwrap_or_default()), true)
    };
    StreamEventsRequest {
        filter: Some(filter(args)),
        fields: args.fields.clone(),
        resume_after,
        replay_only,
    }
}

/// What a stream delivered, for the summary at its end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Events received.
    pub events: u64,
    /// Events lost, as the agent counted them.
    pub lost: u64,
    /// Some were lost uncounted: the agent restarted since the cursor.
    pub lost_uncounted: bool,
    /// The last event's cursor (or the one resumed after, until an event comes).
    pub last: Option<Cursor>,
}

impl Tally {
    /// Counts a `Lost` message.
    pub fn lost(&mut self, lost: &Lost) {
        self.lost += lost.count;
        if lost.reason() == lost::Reason::RunChanged {
            self.lost_uncounted = true;
        }
    }

    /// The summary: counts, then how to resume.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} event{}",
            self.events,
            if self.events == 1 { "" } else { "s" }
        );
        if self.lost > 0 || self.lost_uncounted {
            text.push_str(&format!(", {} lost", self.lost));
            if self.lost_uncounted {
                text.push_str(" (and those of the agent's earlier run)");
            }
        }
        if let Some(cursor) = &self.last {
            text.push_str(&format!("\n{}", resume_hint(cursor)));
        }
        text
    }
}

/// `resume with --resume-after RUN_ID:SEQUENCE`.
pub fn resume_hint(cursor: &Cursor) -> String {
    format!(
        "resume with --resume-after {}:{}",
        cursor.run_id, cursor.sequence
    )
}

/// The line for a `Lost` message: `lost N events: why`.
pub fn lost_line(lost: &Lost) -> String {
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let why = match lost.reason() {
        lost::Reason::ReplayExpired => "the agent's replay buffer no longer holds them",
        lost::Reason::RunChanged if lost.count == 0 => {
            return "lost the rest of the agent's earlier run: the agent restarted after the \
                    cursor (a new run)"
                .into();
        }
        lost::Reason::RunChanged => {
            return format!(
                "lost {} event{} of this run and the rest of the earlier one: the agent \
                 restarted after the cursor, and its replay buffer no longer holds this run's \
                 oldest events",
                lost.count,
                plural(lost.count)
            );
        }
        lost::Reason::ClientTooSlow => "this client read too slowly",
        lost::Reason::Unspecified => "no reason given",
    };
    format!("lost {} event{}: {why}", lost.count, plural(lost.count))
}

/// Whether a `Lost` message concerns the user. Without `--resume-after`
/// the whole buffer is asked for, and that the agent no longer holds its
/// run's first events (reported before any event) is no loss to them.
fn concerns_user(lost: &Lost, resumed: bool, events_so_far: u64) -> bool {
    resumed || events_so_far > 0 || lost.reason() != lost::Reason::ReplayExpired
}

/// How a stream ended.
enum End {
    /// The agent ended it (the replay is over, or the agent stops).
    Finished,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The reader of the output went away (`| head`).
    OutputClosed,
    /// Writing failed otherwise.
    Output(io::Error),
    /// The call failed.
    Failed(tonic::Status),
}

/// Runs `guardrails events`: events to `out` through `printer`, losses and
/// the summary to `err`. The summary (with the cursor to resume after) is
/// written however the stream ends.
pub async fn run(
    args: &EventsArgs,
    printer: &mut Printer,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<(), CommandError> {
    let mut connection = Connection::open(&args.connect).await?;
    let request = request(args);
    tracing::debug!(?request, "streaming events");
    let mut stream = connection
        .client()
        .stream_events(request)
        .await
        .map_err(|status| connection.call_error(&status))?
        .into_inner();
    // Caught only from here on: until the stream is open, Ctrl-C just ends
    // the command.
    let mut interrupt = signal(SignalKind::interrupt()).map_err(CommandError::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(CommandError::Signals)?;
    let mut tally = Tally {
        last: args
            .resume_after
            .clone()
            .filter(|cursor| !cursor.run_id.is_empty()),
        ..Tally::default()
    };
    let mut out = BufWriter::new(out);
    let end = loop {
        let signalled =
            interrupt.recv().now_or_never().is_some() || terminate.recv().now_or_never().is_some();
        if signalled {
            break End::Interrupted;
        }
        // Flush only when the agent has nothing more at once.
        let next = match stream.message().now_or_never() {
            Some(next) => next,
            None => {
                if let Err(e) = out.flush() {
                    break output_end(e);
                }
                tokio::select! {
                    _ = interrupt.recv() => break End::Interrupted,
                    _ = terminate.recv() => break End::Interrupted,
                    next = stream.message() => next,
                }
            }
        };
        match next {
            Ok(Some(message)) => match message.message {
                Some(stream_events_response::Message::Event(event)) => {
                    tally.events += 1;
                    if let Some(cursor) = &event.cursor {
                        tally.last = Some(cursor.clone());
                    }
                    if let Err(e) = printer.event(&mut out, &event) {
                        break output_end(e);
                    }
                }
                Some(stream_events_response::Message::Lost(lost)) => {
                    if !concerns_user(&lost, args.resume_after.is_some(), tally.events) {
                        tracing::debug!(count = lost.count, "events before the agent's buffer");
                        continue;
                    }
                    tally.lost(&lost);
                    // Keep the order: what was printed before the loss first.
                    if let Err(e) = out.flush() {
                        break output_end(e);
                    }
                    let _ = writeln!(err, "{}", lost_line(&lost));
                }
                None => {}
            },
            Ok(None) => break End::Finished,
            Err(status) => break End::Failed(status),
        }
    };
    let flushed = out.flush();
    if matches!(end, End::OutputClosed | End::Output(_)) || flushed.is_err() {
        // Events after some not printed: resuming after the last would skip those.
        tally.last = None;
    }
    let _ = writeln!(err, "{}", tally.summary());
    match end {
        End::Finished | End::Interrupted | End::OutputClosed => match flushed {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(CommandError::Output(e)),
            _ => Ok(()),
        },
        End::Output(e) => Err(CommandError::Output(e)),
        End::Failed(status) => Err(connection.call_error(&status).into()),
    }
}

fn output_end(error: io::Error) -> End {
    if error.kind() == io::ErrorKind::BrokenPipe {
        End::OutputClosed
    } else {
        End::Output(error)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(args: &[&str]) -> EventsArgs {
        let cli = Cli::try_parse_from(["guardrails", "events"].iter().chain(args))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match cli.command {
            Command::Events(args) => *args,
            other => panic!("not events: {other:?}"),
        }
    }

    #[test]
    fn without_follow_the_whole_buffer_is_replayed_and_the_stream_ends() {
        let request = request(&args(&[]));
        assert_eq!(
            request.resume_after,
            Some(Cursor {
                run_id: String::new(),
                sequence: 0
            })
        );
        assert!(request.replay_only);
        assert_eq!(request.filter, Some(EventFilter::default()));
        assert!(request.fields.is_empty());
    }

    #[test]
    fn follow_is_live_only_unless_resuming() {
        let live = request(&args(&["--follow"]));
        assert_eq!((live.resume_after, live.replay_only), (None, false));
        let resumed = request(&args(&["-f", "--resume-after", "4f2a-91:1200"]));
        assert_eq!(
            resumed.resume_after,
            Some(Cursor {
                run_id: "4f2a-91".into(),
                sequence: 1200
            })
        );
        assert!(!resumed.replay_only);
        let replay = request(&args(&["--resume-after", "4f2a-91:1200"]));
        assert!(replay.replay_only);
        assert_eq!(replay.resume_after.map(|c| c.sequence), Some(1200));
    }

    #[test]
    fn each_filter_flag_sets_its_field() {
        let request = request(&args(&[
            "--kind",
            "process_exec",
            "--kind",
            "violation",
            "--violations",
            "--min-priority",
            "WARNING",
            "--rule",
            "Terminal shell in container",
            "--tag",
            "mitre_execution",
            "--namespace",
            "shop",
            "-n",
            "pay",
            "--pod",
            "web-7d9",
            "--label",
            "app=web",
            "-l",
            "tier=",
            "--workload",
            "Deployment/web",
            "--container",
            "0123456789ab",
            "--process-name",
            "bash",
            "--process-path",
            "/usr/bin/",
            "--field",
            "process.pid",
            "--field",
            "kubernetes.pod",
        ]));
        let expected = EventFilter {
            kinds: vec!["process_exec".into(), "violation".into()],
            violations_only: true,
            min_priority: proto::v1::Priority::Warning.into(),
            rules: vec!["Terminal shell in container".into()],
            tags: vec!["mitre_execution".into()],
            namespaces: vec!["shop".into(), "pay".into()],
            pods: vec!["web-7d9".into()],
            pod_labels: [("app".into(), "web".into()), ("tier".into(), String::new())]
                .into_iter()
                .collect(),
            workloads: vec!["Deployment/web".into()],
            container_ids: vec!["0123456789ab".into()],
            process_names: vec!["bash".into()],
            process_paths: vec!["/usr/bin/".into()],
        };
        assert_eq!(request.filter, Some(expected));
        assert_eq!(request.fields, ["process.pid", "kubernetes.pod"]);
    }

    #[test]
    fn every_priority_maps_in_order_and_names_are_case_insensitive() {
        let names = [
            "debug",
            "INFO",
            "Notice",
            "warning",
            "error",
            "critical",
            "alert",
            "EMERGENCY",
        ];
        let values: Vec<i32> = names
            .iter()
            .map(|n| api_priority(parse_priority(n).expect("a priority")).into())
            .collect();
        assert_eq!(values, (1..=8).collect::<Vec<i32>>());
        assert!(parse_priority("severe").is_err());
    }

    #[test]
    fn bad_kinds_labels_and_cursors_are_refused_by_the_parser() {
        for bad in [
            &["--kind", "exec"][..],
            &["--label", "app"][..],
            &["--label", "=web"][..],
            &["--resume-after", "4f2a"][..],
            &["--resume-after", "4f2a:x"][..],
            &["--resume-after", ":5"][..],
            &["--min-priority", "severe"][..],
            &["--output", "yaml"][..],
        ] {
            let parsed = Cli::try_parse_from(["guardrails", "events"].iter().chain(bad.iter()));
            assert!(parsed.is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            parse_cursor(":0"),
            Ok(Cursor {
                run_id: String::new(),
                sequence: 0
            })
        );
        assert_eq!(parse_label("a=b=c"), Ok(("a".to_owned(), "b=c".to_owned())));
    }

    #[test]
    fn losses_are_one_line_each_and_counted_in_the_summary() {
        let mut tally = Tally::default();
        let expired = Lost {
            reason: lost::Reason::ReplayExpired.into(),
            count: 12,
        };
        let slow = Lost {
            reason: lost::Reason::ClientTooSlow.into(),
            count: 1,
        };
        assert_eq!(
            lost_line(&expired),
            "lost 12 events: the agent's replay buffer no longer holds them"
        );
        assert_eq!(
            lost_line(&slow),
            "lost 1 event: this client read too slowly"
        );
        tally.lost(&expired);
        tally.lost(&slow);
        tally.events = 3;
        tally.last = Some(Cursor {
            run_id: "r1".into(),
            sequence: 42,
        });
        assert_eq!(
            tally.summary(),
            "3 events, 13 lost\nresume with --resume-after r1:42"
        );
        let changed = Lost {
            reason: lost::Reason::RunChanged.into(),
            count: 0,
        };
        assert_eq!(
            lost_line(&changed),
            "lost the rest of the agent's earlier run: the agent restarted after the cursor (a new run)"
        );
        assert!(
            lost_line(&Lost {
                count: 2,
                ..changed
            })
            .starts_with("lost 2 events of this run")
        );
        tally.lost(&changed);
        assert!(
            tally
                .summary()
                .starts_with("3 events, 13 lost (and those of the agent's earlier run)")
        );
        assert_eq!(Tally::default().summary(), "0 events");
    }

    #[test]
    fn an_expired_start_of_the_run_is_no_loss_when_the_whole_buffer_was_asked_for() {
        let expired = Lost {
            reason: lost::Reason::ReplayExpired.into(),
            count: 5000,
        };
        assert!(!concerns_user(&expired, false, 0));
        assert!(
            concerns_user(&expired, true, 0),
            "after --resume-after it is"
        );
        assert!(concerns_user(&expired, false, 1), "after an event it is");
        let slow = Lost {
            reason: lost::Reason::ClientTooSlow.into(),
            count: 1,
        };
        assert!(concerns_user(&slow, false, 0));
    }

    #[test]
    fn the_kinds_offered_are_the_event_kinds() {
        for kind in crate::cli::EVENT_KINDS {
            let parsed: crate::events::EventKind =
                serde_json::from_value(serde_json::Value::from(kind)).expect("an event kind");
            assert_eq!(parsed.as_str(), kind);
        }
    }

    #[test]
    fn the_hint_parses_back_to_the_same_cursor() {
        let cursor = Cursor {
            run_id: "0f3c9a6e-1b2d-4c5e-8f70-123456789abc".into(),
            sequence: 987_654,
        };
        let hint = resume_hint(&cursor);
        let text = hint.rsplit(' ').next().expect("a cursor");
        assert_eq!(parse_cursor(text), Ok(cursor));
    }
}
