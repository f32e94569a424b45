//! The client commands as a user runs them: `guardrails events`, `status` and
//! `rules list|enable|disable`, against a stand-in agent that serves the API
//! on a Unix socket with scripted answers and records what it was asked, and
//! against no agent at all.

mod support;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    pin::Pin,
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{Stream, StreamExt};
use proto::v1::{
    ClientStatus, Cursor, GetStatusRequest, GetStatusResponse, ListRulesRequest, ListRulesResponse,
    Lost, Rule, SetRuleEnabledRequest, SetRuleEnabledResponse, StreamEventsRequest,
    StreamEventsResponse,
    agent_service_server::{AgentService, AgentServiceServer},
    lost,
    stream_events_response::Message,
};
use support::TempDir;
use tonic::{Request, Response, Status};

const EXEC: &str = r#"{"schema_version":1,"kind":"process_exec","time":"2026-03-01T09:08:07.654321987Z","monotonic_ns":1,"node":"node-1","process":{"pid":4242,"tid":4242,"ns_pid":1,"ppid":1,"uid":0,"gid":0,"euid":0,"egid":0,"cgroup_id":9,"comm":"curl","args":["curl","-s","http://example.test/"]},"kubernetes":{"status":"resolved","pod":"web-7d9","namespace":"shop"}}"#;
const VIOLATION: &str = r#"{"schema_version":1,"kind":"violation","time":"2026-03-01T09:08:08.000000001Z","monotonic_ns":2,"node":"node-1","process":{"pid":4243,"tid":4243,"ns_pid":2,"ppid":4242,"uid":0,"gid":0,"euid":0,"egid":0,"cgroup_id":9,"comm":"cat"},"violation":{"rule":"Read sensitive file","priority":"error","output":"Sensitive file opened (file=/etc/shadow)","fields":{},"event_type":"openat"}}"#;

const TLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

fn event(json: &str, kind: &str, sequence: u64) -> Result<StreamEventsResponse, Status> {
    Ok(StreamEventsResponse {
        message: Some(Message::Event(proto::v1::Event {
            cursor: Some(Cursor {
                run_id: "run-1".into(),
                sequence,
            }),
            kind: kind.to_owned().into(),
            json: json.into(),
        })),
    })
}

fn lost(reason: lost::Reason, count: u64) -> Result<StreamEventsResponse, Status> {
    Ok(StreamEventsResponse {
        message: Some(Message::Lost(Lost {
            reason: reason.into(),
            count,
        })),
    })
}

/// What the stand-in agent answers, and what it was asked.
#[derive(Default)]
struct Fake {
    /// The messages of every event stream, in order.
    script: Vec<Result<StreamEventsResponse, Status>>,
    /// After the script, keep the stream open (a live stream) instead of ending it.
    hold_open: bool,
    requests: Arc<Mutex<Vec<StreamEventsRequest>>>,
    switched: Arc<Mutex<Vec<SetRuleEnabledRequest>>>,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for Fake {
    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        request: Request<StreamEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        self.requests
            .lock()
            .expect("not poisoned")
            .push(request.into_inner());
        let script = futures::stream::iter(self.script.clone());
        Ok(Response::new(if self.hold_open {
            Box::pin(script.chain(futures::stream::pending()))
        } else {
            Box::pin(script)
        }))
    }

    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(GetStatusResponse {
            version: "0.1.0".into(),
            node: "node-1".into(),
            run_id: "run-1".into(),
            uptime_seconds: 90,
            sensors: vec!["process".into(), "file".into()],
            tracepoints: vec!["sched_process_exec".into(), "sys_exit".into()],
            unobserved_syscalls: vec![],
            rules_loaded: 2,
            rules_enabled: 1,
            events_seen: 1000,
            violations: 3,
            lost_in_kernel: 0,
            lost_decode: 0,
            lost_queue: 4,
            last_sequence: 1000,
            clients: vec![ClientStatus {
                id: 1,
                peer: "unix".into(),
                sent: 10,
                lost: 0,
            }],
        }))
    }

    async fn list_rules(
        &self,
        _: Request<ListRulesRequest>,
    ) -> Result<Response<ListRulesResponse>, Status> {
        Ok(Response::new(ListRulesResponse { rules: rules() }))
    }

    async fn set_rule_enabled(
        &self,
        request: Request<SetRuleEnabledRequest>,
    ) -> Result<Response<SetRuleEnabledResponse>, Status> {
        let request = request.into_inner();
        self.switched
            .lock()
            .expect("not poisoned")
            .push(request.clone());
        let mut rule = rules()
            .into_iter()
            .find(|r| r.name == request.name)
            .ok_or_else(|| Status::not_found(format!("no rule named {:?}", request.name)))?;
        rule.enabled = request.enabled;
        Ok(Response::new(SetRuleEnabledResponse { rule: Some(rule) }))
    }

    // The stand-in has nothing contained; the real containment is tested
    // against the agent in containment.rs.
    async fn list_contained(
        &self,
        _request: Request<proto::v1::ListContainedRequest>,
    ) -> Result<Response<proto::v1::ListContainedResponse>, Status> {
        Ok(Response::new(proto::v1::ListContainedResponse::default()))
    }

    async fn thaw(
        &self,
        _request: Request<proto::v1::ContainedTarget>,
    ) -> Result<Response<proto::v1::ContainedResponse>, Status> {
        Err(Status::not_found("nothing is frozen"))
    }

    async fn lift(
        &self,
        _request: Request<proto::v1::ContainedTarget>,
    ) -> Result<Response<proto::v1::ContainedResponse>, Status> {
        Err(Status::not_found("nothing is isolated"))
    }
}

fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "Read sensitive file".into(),
            priority: proto::v1::Priority::Error.into(),
            tags: vec!["filesystem".into()],
            enabled: true,
            description: String::new(),
        },
        Rule {
            name: "Terminal shell in container".into(),
            priority: proto::v1::Priority::Notice.into(),
            tags: vec!["container".into(), "shell".into()],
            enabled: false,
            description: String::new(),
        },
    ]
}

/// The stand-in agent, serving until dropped.
struct Agent {
    socket: PathBuf,
    requests: Arc<Mutex<Vec<StreamEventsRequest>>>,
    switched: Arc<Mutex<Vec<SetRuleEnabledRequest>>>,
    runtime: Option<tokio::runtime::Runtime>,
    _dir: TempDir,
}

impl Agent {
    fn start(fake: Fake) -> Self {
        let dir = TempDir::new("events-cli");
        let socket = dir.path.join("agent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind the socket");
        listener.set_nonblocking(true).expect("non-blocking");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let (requests, switched) = (fake.requests.clone(), fake.switched.clone());
        runtime.spawn(async move {
            let listener = tokio::net::UnixListener::from_std(listener).expect("a tokio listener");
            tonic::transport::Server::builder()
                .add_service(AgentServiceServer::new(fake))
                .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
                .await
                .expect("serve");
        });
        Self {
            socket,
            requests,
            switched,
            runtime: Some(runtime),
            _dir: dir,
        }
    }

    /// Serves over TCP on loopback with TLS, requiring client certificates
    /// signed by the test CA; returns the port.
    fn start_tls(fake: Fake) -> (Self, u16) {
        let tls = |name: &str| {
            std::fs::read(Path::new(TLS).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let config = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                tls("server.pem"),
                tls("server.key"),
            ))
            .client_ca_root(tonic::transport::Certificate::from_pem(tls("ca.pem")));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("an address").port();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let (requests, switched) = (fake.requests.clone(), fake.switched.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            tonic::transport::Server::builder()
                .tls_config(config)
                .expect("TLS")
                .add_service(AgentServiceServer::new(fake))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .expect("serve");
        });
        let agent = Self {
            socket: PathBuf::new(),
            requests,
            switched,
            runtime: Some(runtime),
            _dir: TempDir::new("events-cli-tls"),
        };
        (agent, port)
    }

    fn socket(&self) -> &str {
        self.socket.to_str().expect("utf-8")
    }

    fn requests(&self) -> Vec<StreamEventsRequest> {
        self.requests.lock().expect("not poisoned").clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn guardrails(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .args(args)
        .env_remove("GUARDRAILS_SOCKET")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .expect("run guardrails")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn events_without_an_agent_fail_naming_the_socket_and_what_to_check() {
    let out = guardrails(&["events", "--socket", "/nonexistent/agent.sock"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "error: cannot connect to the agent at /nonexistent/agent.sock: no such socket; \
             is the agent running on this node?"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("--socket PATH"), "{stderr}");
}

#[test]
fn a_socket_nobody_listens_on_is_called_so() {
    let dir = TempDir::new("events-cli-stale");
    let socket = dir.path.join("agent.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    for command in [&["events"][..], &["status"], &["rules", "list"]] {
        let mut args = command.to_vec();
        args.extend(["--socket", socket.to_str().expect("utf-8")]);
        let out = guardrails(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "cannot connect to the agent at {}: connection refused; nothing listens on it",
                socket.display()
            )),
            "{command:?}: {stderr}"
        );
    }
}

#[test]
fn a_file_that_is_not_a_socket_is_called_so() {
    let dir = TempDir::new("events-cli-file");
    let file = dir.path.join("agent.sock");
    std::fs::write(&file, "").expect("a file");
    let out = guardrails(&["status", "--socket", file.to_str().expect("utf-8")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(": it is not a socket;"), "{stderr}");
}

#[test]
fn a_plain_text_server_is_refused_without_insecure_and_tls_needs_its_files() {
    let out = guardrails(&["events", "--server", "http://127.0.0.1:9"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: refusing to connect to http://127.0.0.1:9 without TLS"),
        "{stderr}"
    );
    let out = guardrails(&[
        "status",
        "--server",
        "https://127.0.0.1:9",
        "--ca",
        "ca.pem",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("TLS needs --cert, --key"), "{stderr}");
}

#[test]
fn a_plain_text_server_that_is_not_there_is_named_with_the_port() {
    // Port 9 (discard) on loopback: nothing listens there.
    let out = guardrails(&["events", "--server", "http://127.0.0.1:9", "--insecure"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot connect to the agent at http://127.0.0.1:9:"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing listens there"), "{stderr}");
}

#[test]
fn the_replay_is_printed_as_received_with_losses_and_the_cursor_on_stderr() {
    let agent = Agent::start(Fake {
        script: vec![
            event(EXEC, "process_exec", 7),
            lost(lost::Reason::ReplayExpired, 5),
            event(VIOLATION, "violation", 9),
        ],
        ..Fake::default()
    });
    let out = guardrails(&["events", "--socket", agent.socket()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    // Not a terminal: JSON lines, exactly as the agent sent them.
    assert_eq!(stdout, format!("{EXEC}\n{VIOLATION}\n"));
    assert_eq!(
        stderr,
        "lost 5 events: the agent's replay buffer no longer holds them\n\
         2 events, 5 lost\n\
         resume with --resume-after run-1:9\n"
    );
    let requests = agent.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].replay_only);
    assert_eq!(requests[0].resume_after, Some(Cursor::default()));
}

#[test]
fn the_start_of_the_run_gone_from_the_buffer_is_a_loss_only_when_resuming() {
    let agent = Agent::start(Fake {
        script: vec![
            lost(lost::Reason::ReplayExpired, 5000),
            event(EXEC, "process_exec", 5001),
        ],
        ..Fake::default()
    });
    let out = guardrails(&["events", "--socket", agent.socket()]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stderr),
        "1 event\nresume with --resume-after run-1:5001\n"
    );
    let out = guardrails(&[
        "events",
        "--socket",
        agent.socket(),
        "--resume-after",
        "run-1:10",
    ]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stderr),
        "lost 5000 events: the agent's replay buffer no longer holds them\n\
         1 event, 5000 lost\n\
         resume with --resume-after run-1:5001\n"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly_without_a_cursor() {
    let agent = Agent::start(Fake {
        script: (1..=5000).map(|i| event(EXEC, "process_exec", i)).collect(),
        ..Fake::default()
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .args(["events", "--socket", agent.socket()])
        .env_remove("GUARDRAILS_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run guardrails");
    // As `| head -1` does: read a line, then close the pipe.
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read an event");
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Events were received that were never printed: no cursor to skip them.
    assert!(!stderr.contains("resume with"), "{stderr}");
    assert!(stderr.ends_with(" events\n"), "{stderr}");
}

#[test]
fn filters_and_fields_reach_the_agent_and_compact_lines_are_plain_off_a_terminal() {
    let agent = Agent::start(Fake {
        script: vec![
            event(EXEC, "process_exec", 7),
            event(VIOLATION, "violation", 9),
        ],
        ..Fake::default()
    });
    let out = guardrails(&[
        "events",
        "--socket",
        agent.socket(),
        "--kind",
        "violation",
        "--min-priority",
        "Error",
        "--label",
        "app=web",
        "--namespace",
        "shop",
        "--field",
        "process.pid",
        "--resume-after",
        "run-0:41",
        "-o",
        "compact",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "09:08:07.654 process_exec node-1 shop/web-7d9 curl[4242] curl -s http://example.test/\n\
         09:08:08.000 violation    node-1 - cat[4243] ERROR Read sensitive file: Sensitive file opened (file=/etc/shadow)\n"
    );
    let request = agent.requests().remove(0);
    let filter = request.filter.expect("a filter");
    assert_eq!(filter.kinds, ["violation"]);
    assert_eq!(filter.min_priority, i32::from(proto::v1::Priority::Error));
    assert_eq!(
        filter.pod_labels.get("app").map(String::as_str),
        Some("web")
    );
    assert_eq!(filter.namespaces, ["shop"]);
    assert_eq!(request.fields, ["process.pid"]);
    assert_eq!(
        request.resume_after,
        Some(Cursor {
            run_id: "run-0".into(),
            sequence: 41
        })
    );
    assert!(request.replay_only);
}

#[test]
fn follow_streams_until_ctrl_c_then_says_where_to_resume() {
    let agent = Agent::start(Fake {
        script: vec![
            lost(lost::Reason::RunChanged, 0),
            event(EXEC, "process_exec", 3),
        ],
        hold_open: true,
        ..Fake::default()
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .args([
            "events",
            "--follow",
            "--socket",
            agent.socket(),
            "--resume-after",
            "run-0:41",
        ])
        .env_remove("GUARDRAILS_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run guardrails");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read an event");
    assert_eq!(line, format!("{EXEC}\n"), "the event is flushed at once");
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) on the child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::io::read_to_string(child.stderr.take().expect("stderr")).expect("stderr");
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(
        stderr,
        "lost the rest of the agent's earlier run: the agent restarted after the cursor \
         (a new run)\n\
         1 event, 0 lost (and those of the agent's earlier run)\n\
         resume with --resume-after run-1:3\n"
    );
    let request = agent.requests().remove(0);
    assert!(!request.replay_only);
    assert_eq!(
        request.resume_after.map(|c| (c.run_id, c.sequence)),
        Some(("run-0".to_owned(), 41))
    );
}

#[test]
fn a_stream_that_fails_reports_the_error_after_the_cursor() {
    let agent = Agent::start(Fake {
        script: vec![
            event(EXEC, "process_exec", 5),
            Err(Status::internal("the event bus stopped")),
        ],
        ..Fake::default()
    });
    let out = guardrails(&["events", "-f", "--socket", agent.socket()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(text(&out.stdout), format!("{EXEC}\n"));
    assert_eq!(
        stderr,
        format!(
            "1 event\n\
             resume with --resume-after run-1:5\n\
             error: the agent at {}: Internal: the event bus stopped\n",
            agent.socket()
        )
    );
}

#[test]
fn status_prints_aligned_lines_or_json() {
    let agent = Agent::start(Fake::default());
    let out = guardrails(&["status", "--socket", agent.socket()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for line in [
        "node:          node-1\n",
        "uptime:        1m 30s\n",
        "lost:          0 in the kernel, 0 in decoding, 4 in the queue\n",
        "  client 1:    unix, 10 sent, 0 lost\n",
    ] {
        assert!(stdout.contains(line), "{line:?} in\n{stdout}");
    }
    let out = guardrails(&["status", "--socket", agent.socket(), "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["run_id"], "run-1");
    assert_eq!(json["clients"][0]["sent"], 10);
}

#[test]
fn rules_are_listed_and_switched_and_an_unknown_rule_is_named() {
    let agent = Agent::start(Fake::default());
    let out = guardrails(&["rules", "list", "--socket", agent.socket()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "\
NAME                         PRIORITY  ENABLED  TAGS
Read sensitive file          ERROR     yes      filesystem
Terminal shell in container  NOTICE    no       container,shell
"
    );
    let out = guardrails(&[
        "rules",
        "enable",
        "Terminal shell in container",
        "--socket",
        agent.socket(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "Terminal shell in container: enabled until the agent restarts\n"
    );
    let out = guardrails(&[
        "rules",
        "disable",
        "No such rule",
        "--socket",
        agent.socket(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: the agent at {}: it has no rule named \"No such rule\"; \
             `guardrails rules list` shows its rules\n",
            agent.socket()
        )
    );
    let switched = agent.switched.lock().expect("not poisoned").clone();
    assert_eq!(
        switched
            .iter()
            .map(|r| (r.name.as_str(), r.enabled))
            .collect::<Vec<_>>(),
        [
            ("Terminal shell in container", true),
            ("No such rule", false)
        ]
    );
}

#[test]
fn the_offline_rules_commands_still_work_beside_the_live_ones() {
    let out = guardrails(&[
        "rules",
        "check",
        "--with-defaults",
        "/nonexistent/rules.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/rules.yaml"));
}

fn tls_args(url: &str, ca: &str, cert: &str, key: &str) -> Vec<String> {
    let file = |name: &str| format!("{TLS}/{name}");
    vec![
        "status".into(),
        "--server".into(),
        url.into(),
        "--ca".into(),
        file(ca),
        "--cert".into(),
        file(cert),
        "--key".into(),
        file(key),
    ]
}

fn guardrails_owned(args: &[String]) -> Output {
    guardrails(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn mutual_tls_connects_by_name_or_address() {
    let (_agent, port) = Agent::start_tls(Fake::default());
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("https://{host}:{port}");
        let out = guardrails_owned(&tls_args(&url, "ca.pem", "client.pem", "client.key"));
        assert!(out.status.success(), "{url}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("node:          node-1\n"));
    }
}

#[test]
fn mutual_tls_fails_clearly_with_the_wrong_ca_or_an_untrusted_client() {
    let (_agent, port) = Agent::start_tls(Fake::default());
    let url = format!("https://127.0.0.1:{port}");
    for (ca, cert, key) in [
        ("other-ca.pem", "client.pem", "client.key"),
        ("ca.pem", "stranger.pem", "stranger.key"),
    ] {
        let out = guardrails_owned(&tls_args(&url, ca, cert, key));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(&url),
            "{stderr}"
        );
        assert!(stderr.contains("certificate"), "{ca} {cert}: {stderr}");
    }
    let out = guardrails(&[
        "status",
        "--server",
        &format!("http://127.0.0.1:{port}"),
        "--insecure",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}
