//! The published JSON schema and the Rust event types describe the same thing.

mod support;

use std::sync::Arc;

use guardrails::{
    actions::Mode,
    events::{
        action::{ActionReport, ActionTarget, Outcome},
        event::{Event, EventKind, Exit, Fork, KernelDeny, KernelKill, Lost, Process, WallTime},
    },
};

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
            process: Some(Arc::new(exec_process.clone())),
            ..event(EventKind::ProcessExec)
        },
        Event {
            process: Some(Arc::new(exec_process.clone())),
            kernel_kill: Some(KernelKill { slot: 63 }),
            ..event(EventKind::ProcessExec)
        },
        Event {
            process: Some(Arc::new(exec_process)),
            kernel_deny: Some(KernelDeny { slot: 2 }),
            ..event(EventKind::ProcessExec)
        },
        Event {
            process: Some(Arc::new(process.clone())),
            fork: Some(Box::new(Fork {
                child_pid: 3,
                child_ns_pid: 2,
                child_start_ns: 9,
            })),
            ..event(EventKind::ProcessFork)
        },
        Event {
            process: Some(Arc::new(process.clone())),
            exit: Some(Box::new(Exit::from_wait_status(3 << 8))),
            ..event(EventKind::ProcessExit)
        },
        Event {
            process: Some(Arc::new(process)),
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
        Event {
            process: Some(Arc::new(Process {
                pid: 42,
                comm: "nc".into(),
                ..Process::default()
            })),
            action: Some(Box::new(ActionReport {
                action: "kill".into(),
                mode: Mode::Enforce,
                mode_source: "binding".into(),
                outcome: Outcome::Failed,
                rule: Some("Netcat in a container".into()),
                method: Some("pidfd".into()),
                message: "could not kill pid 42 (nc): pid 42 has exited".into(),
                target: ActionTarget {
                    pid: Some(42),
                    cgroup_id: Some(7),
                    container_id: Some("ab".repeat(32)),
                    pod: Some("web-1".into()),
                    namespace: Some("shop".into()),
                },
                error: Some("pid 42 has exited".into()),
            })),
            ..event(EventKind::Action)
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
        process: Some(Arc::new(Process {
            comm: "x".into(),
            ..Process::default()
        })),
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

#[test]
fn a_violation_in_a_pod_with_its_blast_radius_matches_the_published_schema() {
    use guardrails::events::{
        event::Violation,
        kubernetes::{
            BlastRadius, ClusterReach, HostPathMount, KubeContainer, Kubernetes, ObjectRef,
            PodStatus, ServiceRef,
        },
    };
    let section = Kubernetes {
        status: PodStatus::Resolved,
        pod: Some("web-5d8-x2".into()),
        namespace: Some("shop".into()),
        uid: Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into()),
        node: Some("n1".into()),
        ip: Some("10.0.0.7".into()),
        labels: [("app".to_owned(), "web".to_owned())].into(),
        namespace_labels: [("team".to_owned(), "payments".to_owned())].into(),
        service_account: Some("web".into()),
        owner: Some(ObjectRef {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web-5d8".into(),
        }),
        workload: Some(ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        }),
        container: Some(KubeContainer {
            name: "app".into(),
            image: "nginx:1.27".into(),
            image_id: Some("docker.io/library/nginx@sha256:00".into()),
            privileged: true,
        }),
        ..Kubernetes::unresolved()
    };
    let radius = BlastRadius {
        privileged: true,
        host_paths: vec![HostPathMount {
            path: "/var/run/docker.sock".into(),
            read_only: false,
        }],
        added_capabilities: vec!["NET_ADMIN".into()],
        runs_as_root: true,
        service_account: Some("web".into()),
        service_account_token_mounted: true,
        secrets: vec!["tls".into()],
        config_maps: vec!["settings".into()],
        cluster: Some(ClusterReach {
            services: vec![ServiceRef {
                name: "web".into(),
                kind: "NodePort".into(),
            }],
            exposed_outside_cluster: true,
            network_unrestricted: true,
            workload_replicas: Some(3),
            workload_pods: Some(3),
            workload_nodes: Some(2),
            ..ClusterReach::default()
        }),
        ..BlastRadius::default()
    };
    let violation = Event {
        process: Some(Arc::new(Process {
            comm: "sh".into(),
            ..Process::default()
        })),
        kubernetes: Some(section.into()),
        violation: Some(Box::new(Violation {
            rule: "Terminal shell in container".into(),
            priority: guardrails::rules::Priority::Notice,
            tags: [].into(),
            output: "shell".into(),
            fields: Default::default(),
            event_type: "execve".into(),
            blast_radius: Some(Box::new(radius)),
        })),
        ..event(EventKind::Violation)
    };
    let unresolved = Event {
        process: Some(Arc::new(Process {
            comm: "sh".into(),
            ..Process::default()
        })),
        kubernetes: Some(Kubernetes::unresolved().into()),
        exit: Some(Box::new(Exit::from_wait_status(0))),
        ..event(EventKind::ProcessExit)
    };
    let json: Vec<_> = [violation, unresolved]
        .iter()
        .map(|e| serde_json::to_value(e).expect("serializes"))
        .collect();
    support::assert_schema_valid(&json);
    let back: Event = serde_json::from_value(json[0].clone()).expect("reads back");
    assert_eq!(
        back.kubernetes
            .as_ref()
            .and_then(|k| k.workload.clone())
            .map(|w| w.name),
        Some("web".into())
    );
}
