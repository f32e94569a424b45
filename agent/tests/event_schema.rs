//! The published JSON schema and the Rust event types describe the same thing.

mod support;

use guardrails::events::event::{Event, EventKind, Exit, Fork, Lost, Process, WallTime};

fn event(kind: EventKind) -> Event {
    Event {
        cpu: Some(0),
        ..Event::new(
            kind,
            WallTime::parse("2026-11-26T05:18:39.123456789Z").expect("a time"),
            1,
            "n1".into(),
        )
    }
}

#[test]
fn every_kind_of_event_the_agent_can_emit_matches_the_published_schema() {
    let process = Process {
        pid: 2,
        tid: 2,
        ns_pid: 1,
        ppid: 1,
        login_uid: Some(1000),
        cgroup_id: 4242,
        comm: "sh".into(),
        ..Process::default()
    };
    let exec_process = Process {
        exe: Some("/usr/bin/dash".into()),
        filename: Some("/bin/sh".into()),
        args: Some(["sh"].into_iter().collect()),
        argc: Some(1),
        cwd: Some("/".into()),
        truncated: vec!["args".into(), "args_unreadable".into()],
        ..process.clone()
    };
    let events = [
        Event {
            process: Some(exec_process),
            ..event(EventKind::ProcessExec)
        },
        Event {
            process: Some(process.clone()),
            fork: Some(Box::new(Fork {
                child_pid: 3,
                child_ns_pid: 2,
                child_start_ns: 9,
            })),
            ..event(EventKind::ProcessFork)
        },
        Event {
            process: Some(process.clone()),
            exit: Some(Box::new(Exit::from_wait_status(3 << 8))),
            ..event(EventKind::ProcessExit)
        },
        Event {
            process: Some(process),
            exit: Some(Box::new(Exit::from_wait_status(9))),
            ..event(EventKind::ProcessExit)
        },
        Event {
            cpu: None,
            lost: Some(Box::new(Lost {
                ring_buffer_full: 2,
                ring_buffer_full_per_cpu: vec![1, 1],
                decode_failed: 0,
                queue_full: 1,
                total: 3,
            })),
            ..event(EventKind::EventsLost)
        },
    ];
    let json: Vec<_> = events
        .iter()
        .map(|e| serde_json::to_value(e).expect("serializes"))
        .collect();
    support::assert_schema_valid(&json);
}

#[test]
fn the_schema_refuses_an_exec_without_its_arguments() {
    let mut exec = serde_json::to_value(Event {
        process: Some(Process {
            comm: "x".into(),
            ..Process::default()
        }),
        ..event(EventKind::ProcessExec)
    })
    .expect("serializes");
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema/event.v1.schema.json")).expect("JSON");
    let validator = jsonschema::validator_for(&schema).expect("compiles");
    assert!(!validator.is_valid(&exec));
    exec["process"]["unknown_field"] = 1.into();
    assert!(!validator.is_valid(&exec));
}
