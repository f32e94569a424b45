//! Containment end to end: the agent as a child process, rules with
//! `actions`, real processes in container-like cgroups, and what a user would
//! check: the process is dead (or ran), the container stops or loses its
//! network, the action events say what happened, state survives a restart,
//! and `guardrails cleanup` leaves nothing behind.

mod support;

use std::{
    net::{SocketAddr, TcpListener},
    os::unix::{fs::PermissionsExt, process::ExitStatusExt},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{Agent, Layout, TempDir, TestCgroup, kernel_test, unique_hex};

const RULES: &str = r#"
- rule: Marker started
  desc: the test's marker program; the kernel can express this one
  condition: evt.type in (execve, execveat) and proc.name = gr-marker
  output: "marker started (pid=%proc.pid)"
  priority: CRITICAL
  actions: [kill]
- rule: Trigger opened
  desc: a file named for the test is opened; the kernel cannot express this one
  condition: evt.type in (open, openat, openat2) and fd.name endswith /gr-trigger
  output: "trigger opened (pid=%proc.pid)"
  priority: WARNING
  actions: [kill]
- rule: Freeze flag opened
  desc: freezes the container
  condition: evt.type in (open, openat, openat2) and fd.name endswith /gr-freeze
  output: "freeze flag opened (pid=%proc.pid)"
  priority: WARNING
  actions: [freeze]
- rule: Isolate flag opened
  desc: isolates the container
  condition: evt.type in (open, openat, openat2) and fd.name endswith /gr-isolate
  output: "isolate flag opened (pid=%proc.pid)"
  priority: WARNING
  actions: [isolate]
"#;

/// A test's rules, flag files, marker program and pin directory.
struct Setup {
    dir: TempDir,
    pin_dir: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = TempDir::new("contain");
        std::fs::write(dir.path.join("rules.yaml"), RULES).expect("write the rules");
        for flag in ["gr-trigger", "gr-freeze", "gr-isolate"] {
            std::fs::write(dir.path.join(flag), "flag\n").expect("write a flag file");
        }
        // A program whose first action is to write the file it is given.
        let marker = dir.path.join("gr-marker");
        std::fs::write(&marker, "#!/bin/sh\necho ran > \"$1\"\n").expect("write the marker");
        std::fs::set_permissions(&marker, std::fs::Permissions::from_mode(0o755))
            .expect("make the marker executable");
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/guardrails-test-{}", unique_hex(12)));
        Self { dir, pin_dir }
    }

    /// The agent's config: `cgroups` in scope, these rules, and `containment`
    /// (YAML lines, indented by four).
    fn config(&self, cgroups: &[&TestCgroup], containment: &str) -> String {
        let scope: Vec<String> = cgroups
            .iter()
            .map(|c| format!("{:?}", c.path.display().to_string()))
            .collect();
        format!(
            "apiVersion: guardrails.dev/v1alpha1\nscope:\n  cgroups: [{}]\ntransport:\n  wakeup_bytes: 0\n  drain_interval_ms: 20\nmetrics:\n  address: 127.0.0.1:0\nrules:\n  defaults: false\n  reload_interval_ms: 0\n  files: [{:?}]\ncontainment:\n  pin_dir: {:?}\n{containment}",
            scope.join(", "),
            self.dir.path.join("rules.yaml").display().to_string(),
            self.pin_dir.display().to_string(),
        )
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path.join(name)
    }

    /// Runs the marker in `cgroup`, telling it to write `out`.
    fn run_marker(&self, cgroup: &TestCgroup, out: &Path) -> (u32, std::process::ExitStatus) {
        let mut child = cgroup
            .command(self.file("gr-marker"))
            .arg(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("run the marker");
        let pid = child.id();
        (pid, child.wait().expect("wait for the marker"))
    }

    /// `guardrails cleanup` of this test's pin directory.
    fn cleanup(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_guardrails"))
            .args(["cleanup", "--pin-dir"])
            .arg(&self.pin_dir)
            .output()
            .expect("run guardrails cleanup")
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if self.pin_dir.exists() {
            let _ = self.cleanup();
        }
    }
}

/// The action events about process `pid` so far.
fn actions_for(events: &[Value], pid: u32) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "action" && e["process"]["pid"] == pid)
        .collect()
}

/// Waits for the first action event of `action` about `pid`.
fn wait_for_action(agent: &Agent, pid: u32, action: &str) -> Value {
    let events = agent.wait_for_events(&format!("a {action} action for pid {pid}"), |events| {
        actions_for(events, pid)
            .iter()
            .any(|e| e["action"]["action"] == action)
    });
    actions_for(&events, pid)
        .into_iter()
        .find(|e| e["action"]["action"] == action)
        .cloned()
        .expect("the action event")
}

/// Starts `sleep` in `cgroup` so that the agent sees the container and
/// arms the in-kernel kill there; returns once it says so.
fn arm(agent: &Agent, cgroup: &TestCgroup) -> Child {
    let sleeper = cgroup
        .command("sleep")
        .arg("60")
        .spawn()
        .expect("start sleep");
    let id = cgroup.container_id.clone().expect("a container cgroup");
    agent.wait_for_log("the container to be armed", |line| {
        line.contains("in-kernel kill armed") && line.contains(&id)
    });
    sleeper
}

fn guardrails(agent: &Agent, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .args(args)
        .arg("--socket")
        .arg(&agent.socket)
        .output()
        .expect("run guardrails")
}

#[test]
fn kill_in_enforce_mode_happens_in_the_kernel_before_the_marker_writes_but_never_on_the_host() {
    let Some(_kernel) = kernel_test() else { return };
    let setup = Setup::new();
    let container = TestCgroup::with_layout(Layout::Containerd);
    let host = TestCgroup::with_layout(Layout::Host);
    let agent = Agent::start(&setup.config(
        &[&container, &host],
        "  bindings:\n    - rules: [\"Marker started\"]\n      mode: enforce\n",
    ));
    agent.wait_for_log("the rule to kill in the kernel", |line| {
        line.contains("rules kill in the kernel at exec") && line.contains("Marker started")
    });
    let mut sleeper = arm(&agent, &container);

    let written = setup.file("in-container");
    let (pid, status) = setup.run_marker(&container, &written);
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the marker was killed: {status}"
    );
    assert!(
        !written.exists(),
        "the marker ran an instruction of its own"
    );
    let kill = wait_for_action(&agent, pid, "kill");
    let action = &kill["action"];
    assert_eq!(action["outcome"], "done", "{kill}");
    assert_eq!(action["method"], "kernel", "{kill}");
    assert_eq!(action["mode"], "enforce");
    assert_eq!(action["mode_source"], "binding");
    assert_eq!(action["rule"], "Marker started");
    assert_eq!(
        action["target"]["container_id"],
        container.container_id.as_deref().expect("id")
    );
    let events = agent.wait_for_exec(pid);
    let exec = events
        .iter()
        .find(|e| e["kind"] == "process_exec" && e["process"]["pid"] == pid)
        .expect("the marker's exec");
    assert!(
        exec.get("kernel_kill").is_some(),
        "the exec says the kernel killed it: {exec}"
    );

    // The same program on the host runs: the host is never acted on.
    let written = setup.file("on-host");
    let (pid, status) = setup.run_marker(&host, &written);
    assert!(status.success(), "the marker on the host ran: {status}");
    assert_eq!(std::fs::read_to_string(&written).expect("written"), "ran\n");
    let skipped = wait_for_action(&agent, pid, "kill");
    assert_eq!(skipped["action"]["outcome"], "skipped", "{skipped}");
    assert!(message(&skipped).contains("host"), "{skipped}");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let (events, status) = agent.stop();
    assert!(status.success());
    support::assert_schema_valid(&events);
}

#[test]
fn in_monitor_mode_the_marker_runs_and_the_event_says_it_would_be_killed() {
    let Some(_kernel) = kernel_test() else { return };
    let setup = Setup::new();
    let container = TestCgroup::with_layout(Layout::Containerd);
    // No mode anywhere: monitor, the default.
    let agent = Agent::start(&setup.config(&[&container], ""));
    let written = setup.file("monitored");
    let (pid, status) = setup.run_marker(&container, &written);
    assert!(status.success(), "{status}");
    assert_eq!(std::fs::read_to_string(&written).expect("written"), "ran\n");
    let kill = wait_for_action(&agent, pid, "kill");
    let action = &kill["action"];
    assert_eq!(action["outcome"], "would_act", "{kill}");
    assert_eq!(action["mode"], "monitor");
    assert_eq!(action["mode_source"], "default");
    assert!(
        action["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!("would kill pid {pid}"))),
        "{kill}"
    );
    // Every output has it: the gRPC stream too.
    let streamed = guardrails(&agent, &["events", "--kind", "action", "--output", "json"]);
    assert!(
        streamed.status.success(),
        "{}",
        String::from_utf8_lossy(&streamed.stderr)
    );
    let streamed: Vec<Value> = String::from_utf8_lossy(&streamed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        streamed
            .iter()
            .any(|e| e["process"]["pid"] == pid && e["action"]["outcome"] == "would_act"),
        "{streamed:?}"
    );
    let (events, status) = agent.stop();
    assert!(status.success());
    // One violation, one action event, right after it.
    let at = events
        .iter()
        .position(|e| e["kind"] == "violation" && e["process"]["pid"] == pid)
        .expect("the violation");
    assert_eq!(events[at + 1]["kind"], "action");
}

#[test]
fn a_rule_the_kernel_cannot_express_kills_through_a_pidfd() {
    let Some(_kernel) = kernel_test() else { return };
    let setup = Setup::new();
    let container = TestCgroup::with_layout(Layout::Containerd);
    let agent = Agent::start(&setup.config(&[&container], "  mode: enforce\n"));
    let trigger = setup.file("gr-trigger").display().to_string();
    // The shell opens the trigger, then becomes a long sleep: the same
    // process, which only a kill ends early.
    let started = Instant::now();
    let mut child = container
        .command("/bin/sh")
        .args(["-c", "exec 3<\"$1\"; exec sleep 30", "sh", &trigger])
        .spawn()
        .expect("start the shell");
    let pid = child.id();
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let kill = wait_for_action(&agent, pid, "kill");
    assert_eq!(kill["action"]["outcome"], "done", "{kill}");
    assert_eq!(kill["action"]["method"], "pidfd", "{kill}");
    assert_eq!(kill["action"]["mode_source"], "default");
    let (_, status) = agent.stop();
    assert!(status.success());
}

/// A loop in `cgroup` that writes a growing count to `file` every 20 ms.
fn counter(cgroup: &TestCgroup, file: &Path) -> Child {
    cgroup
        .command("/bin/sh")
        .args([
            "-c",
            "i=0; while :; do i=$((i+1)); echo $i > \"$1\"; sleep 0.02; done",
            "sh",
        ])
        .arg(file)
        .stdin(Stdio::null())
        .spawn()
        .expect("start the counter")
}

/// The count in `file`; a read between the loop's truncate and write finds
/// it empty, so that is read again.
fn count(file: &Path) -> u64 {
    for _ in 0..50 {
        if let Some(n) = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    0
}

/// Whether the count in `file` grows over half a second.
fn progressing(file: &Path) -> bool {
    let before = count(file);
    std::thread::sleep(Duration::from_millis(500));
    count(file) > before
}

/// Opens `flag` from a process in `cgroup`. Not waited for: a freeze may
/// stop it before it exits.
fn open_flag(cgroup: &TestCgroup, flag: &Path) -> Child {
    cgroup
        .command("/bin/cat")
        .arg(flag)
        .stdout(Stdio::null())
        .spawn()
        .expect("run cat")
}

fn contained(agent: &Agent) -> Vec<Value> {
    let out = guardrails(agent, &["status", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).expect("status as JSON");
    status["contained"].as_array().cloned().unwrap_or_default()
}

#[test]
fn freeze_stops_the_container_survives_a_restart_and_thaw_resumes_it() {
    let Some(_kernel) = kernel_test() else { return };
    let setup = Setup::new();
    let container = TestCgroup::with_layout(Layout::Containerd);
    let config = setup.config(&[&container], "  mode: enforce\n");
    let agent = Agent::start(&config);
    let count_file = setup.file("count");
    let mut looping = counter(&container, &count_file);
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&count_file) == 0 {
        assert!(Instant::now() < deadline, "the counter never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut cat = open_flag(&container, &setup.file("gr-freeze"));
    let freeze = wait_for_action(&agent, cat.id(), "freeze");
    assert_eq!(freeze["action"]["outcome"], "done", "{freeze}");
    assert!(!progressing(&count_file), "the frozen counter stopped");

    // The agent goes; the freeze stays, and the next agent lists it.
    let (_, status) = agent.stop();
    assert!(status.success());
    assert!(!progressing(&count_file), "still frozen without the agent");
    let agent = Agent::start(&config);
    let listed = contained(&agent);
    let id = container.container_id.clone().expect("a container id");
    let entry = listed
        .iter()
        .find(|c| c["container_id"] == id.as_str())
        .unwrap_or_else(|| panic!("the frozen container is listed: {listed:?}"));
    assert_eq!(entry["frozen"]["rule"], "Freeze flag opened");
    assert_eq!(entry["cgroup_id"], container.id);

    let thaw = guardrails(&agent, &["thaw", &id]);
    assert!(
        thaw.status.success(),
        "{}",
        String::from_utf8_lossy(&thaw.stderr)
    );
    assert!(progressing(&count_file), "the thawed counter resumed");
    assert!(contained(&agent).is_empty());
    let events = agent.wait_for_events("the thaw's action event", |events| {
        events
            .iter()
            .any(|e| e["kind"] == "action" && e["action"]["action"] == "thaw")
    });
    let thawed = events
        .iter()
        .find(|e| e["kind"] == "action" && e["action"]["action"] == "thaw")
        .expect("the thaw");
    assert_eq!(thawed["action"]["outcome"], "done");
    assert_eq!(thawed["action"]["mode_source"], "operator");
    let again = guardrails(&agent, &["thaw", &id]);
    assert!(!again.status.success(), "thawing twice is an error");
    let _ = cat.wait();
    let _ = looping.kill();
    let _ = looping.wait();
    let (_, status) = agent.stop();
    assert!(status.success());
}

/// A loopback listener that accepts in the background.
fn listener() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || for _ in listener.incoming() {});
    addr
}

#[test]
fn isolate_cuts_the_container_off_survives_a_restart_and_lift_restores_it() {
    let Some(_kernel) = kernel_test() else { return };
    let setup = Setup::new();
    let container = TestCgroup::with_layout(Layout::Containerd);
    let config = setup.config(&[&container], "  mode: enforce\n");
    let agent = Agent::start(&config);
    let addr = listener();
    assert!(container.connects_to(addr), "connects before the isolation");

    let mut cat = open_flag(&container, &setup.file("gr-isolate"));
    let isolate = wait_for_action(&agent, cat.id(), "isolate");
    let _ = cat.wait();
    assert_eq!(isolate["action"]["outcome"], "done", "{isolate}");
    assert!(
        !container.connects_to(addr),
        "the isolated container cannot connect"
    );
    assert!(
        support::connects_from_here(addr),
        "outside the container it still can"
    );

    let (_, status) = agent.stop();
    assert!(status.success());
    assert!(
        !container.connects_to(addr),
        "still isolated without the agent"
    );
    let agent = Agent::start(&config);
    let id = container.container_id.clone().expect("a container id");
    let listed = contained(&agent);
    let entry = listed
        .iter()
        .find(|c| c["container_id"] == id.as_str())
        .unwrap_or_else(|| panic!("the isolated container is listed: {listed:?}"));
    assert_eq!(entry["isolated"]["rule"], "Isolate flag opened");

    let lift = guardrails(&agent, &["lift", &container.id.to_string()]);
    assert!(
        lift.status.success(),
        "{}",
        String::from_utf8_lossy(&lift.stderr)
    );
    assert!(container.connects_to(addr), "connects again once lifted");
    let (_, status) = agent.stop();
    assert!(status.success());
}

#[test]
fn cleanup_leaves_no_pinned_object_attached_program_or_frozen_cgroup() {
    let Some(_kernel) = kernel_test() else { return };
    let setup = Setup::new();
    let container = TestCgroup::with_layout(Layout::Containerd);
    let agent = Agent::start(&setup.config(&[&container], "  mode: enforce\n"));
    let mut isolating = open_flag(&container, &setup.file("gr-isolate"));
    wait_for_action(&agent, isolating.id(), "isolate");
    let _ = isolating.wait();
    // The freeze may stop this cat before it exits: reaped after the thaw.
    let mut freezing = open_flag(&container, &setup.file("gr-freeze"));
    wait_for_action(&agent, freezing.id(), "freeze");
    let (_, status) = agent.stop();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(container.path.join("cgroup.freeze"))
            .expect("read")
            .trim(),
        "1"
    );
    assert!(setup.pin_dir.exists());

    let out = setup.cleanup();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!setup.pin_dir.exists(), "the pin directory is gone");
    assert_eq!(
        std::fs::read_to_string(container.path.join("cgroup.freeze"))
            .expect("read")
            .trim(),
        "0",
        "thawed"
    );
    let attached = Command::new("bpftool")
        .args(["cgroup", "show"])
        .arg(&container.path)
        .output()
        .expect("run bpftool");
    assert!(attached.status.success());
    assert!(
        String::from_utf8_lossy(&attached.stdout).trim().is_empty(),
        "no program attached: {}",
        String::from_utf8_lossy(&attached.stdout)
    );
    let _ = freezing.wait();
}

/// `Marker started` with `label` beside `kill`, for the tests with a
/// cluster.
const POD_RULES: &str = r#"
- rule: Marker started
  desc: the test's marker program
  condition: evt.type in (execve, execveat) and proc.name = gr-marker
  output: "marker started (pid=%proc.pid pod=%k8s.pod.name)"
  priority: CRITICAL
  actions: [kill, label]
"#;

#[test]
fn a_namespace_raises_itself_to_enforce_its_pod_is_labelled_and_kube_system_is_never_touched() {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::api::{Api, PostParams};
    use std::collections::BTreeMap;
    use support::cluster::{Cluster, NODE, create_namespace, create_pod};

    let Some(_kernel) = kernel_test() else { return };
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let setup = Setup::new();
    std::fs::write(setup.file("rules.yaml"), POD_RULES).expect("write the rules");
    let spec = serde_json::json!({"containers": [{"name": "app", "image": "nginx:1.25"}]});
    let (shop, system) = cluster.block_on(async {
        let admin = &cluster.admin;
        // The team raises its own namespace to enforce; the platform's
        // default stays monitor.
        create_namespace(
            admin,
            "shop",
            BTreeMap::from([("guardrails.dev/mode".to_owned(), "enforce".to_owned())]),
        )
        .await;
        // The API server makes kube-system itself; make sure, and raise it too,
        // which must not matter: it is protected.
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {
            "name": "kube-system", "labels": {"guardrails.dev/mode": "enforce"}}}))
        .expect("a namespace");
        let _ = Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &ns)
            .await;
        let _ = Api::<Namespace>::all(admin.clone())
            .patch(
                "kube-system",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(
                    serde_json::json!({"metadata": {"labels": {"guardrails.dev/mode": "enforce"}}}),
                ),
            )
            .await;
        let (_, shop) = create_pod(
            admin,
            "shop",
            "web-1",
            NODE,
            serde_json::json!({}),
            spec.clone(),
        )
        .await;
        let (_, system) = create_pod(
            admin,
            "kube-system",
            "dns-1",
            NODE,
            serde_json::json!({}),
            spec,
        )
        .await;
        (shop, system)
    });
    let agent = cluster.agent_with(
        &shop,
        Some(&setup.file("rules.yaml")),
        &format!(
            "containment:\n  pin_dir: {:?}\n",
            setup.pin_dir.display().to_string()
        ),
    );
    let mut sleeper = arm(&agent, &shop);

    let written = setup.file("in-shop");
    let (pid, status) = setup.run_marker(&shop, &written);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    assert!(!written.exists(), "the marker in shop never ran");
    let kill = wait_for_action(&agent, pid, "kill");
    assert_eq!(kill["action"]["outcome"], "done", "{kill}");
    assert_eq!(kill["action"]["method"], "kernel");
    assert_eq!(kill["action"]["mode_source"], "namespace_label");
    let label = wait_for_action(&agent, pid, "label");
    assert_eq!(label["action"]["method"], "kube_api", "{label}");
    let events = agent.wait_for_events("the label's result", |events| {
        actions_for(events, pid).iter().any(|e| {
            e["action"]["action"] == "label" && message(e).starts_with("labelled pod shop/web-1")
        })
    });
    assert!(
        !actions_for(&events, pid)
            .iter()
            .any(|e| e["action"]["outcome"] == "failed"),
        "{:?}",
        actions_for(&events, pid)
    );
    let pods = |ns: &str| Api::<Pod>::namespaced(cluster.admin.clone(), ns);
    let web = cluster
        .block_on(pods("shop").get("web-1"))
        .expect("read the pod");
    let labels = web.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("guardrails.dev/quarantine").map(String::as_str),
        Some("true")
    );
    let annotations = web.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get("guardrails.dev/violation")
            .map(String::as_str),
        Some("Marker started")
    );

    // kube-system: raised to enforce by its label, and protected anyway.
    let written = setup.file("in-kube-system");
    let (pid, status) = setup.run_marker(&system, &written);
    assert!(status.success(), "the marker in kube-system ran: {status}");
    assert_eq!(std::fs::read_to_string(&written).expect("written"), "ran\n");
    for action in ["kill", "label"] {
        let event = wait_for_action(&agent, pid, action);
        assert_eq!(event["action"]["outcome"], "skipped", "{event}");
        assert!(
            message(&event).contains("kube-system is protected"),
            "{event}"
        );
    }
    let dns = cluster
        .block_on(pods("kube-system").get("dns-1"))
        .expect("read the pod");
    assert!(
        !dns.metadata
            .labels
            .unwrap_or_default()
            .contains_key("guardrails.dev/quarantine"),
        "the protected pod is not labelled"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let (events, status) = agent.stop();
    assert!(status.success());
    support::assert_schema_valid(&events);
}

#[test]
fn the_agent_never_acts_on_its_own_container() {
    let Some(_kernel) = kernel_test() else { return };
    never_acts_on_its_own_container(&[]);
    // As in a pod: the container is the root of the agent's cgroup namespace,
    // so /proc/self/cgroup says "/".
    never_acts_on_its_own_container(&["unshare", "--cgroup"]);
}

fn never_acts_on_its_own_container(wrapper: &[&str]) {
    let setup = Setup::new();
    let container = TestCgroup::with_layout(Layout::Containerd);
    // The agent runs in the container it watches, in enforce mode.
    let agent = Agent::start_in_wrapped(
        &setup.config(&[&container], "  mode: enforce\n"),
        &container,
        wrapper,
    );
    if !wrapper.is_empty() {
        assert!(
            agent.logs().iter().any(|l| l.contains("found its cgroup")
                && l.contains(container.container_id.as_deref().unwrap_or("?"))),
            "{:#?}",
            agent.logs()
        );
    }
    let written = setup.file("beside-the-agent");
    let (pid, status) = setup.run_marker(&container, &written);
    assert!(
        status.success(),
        "the marker beside the agent ran: {status}"
    );
    assert_eq!(std::fs::read_to_string(&written).expect("written"), "ran\n");
    let kill = wait_for_action(&agent, pid, "kill");
    assert_eq!(kill["action"]["outcome"], "skipped", "{kill}");
    assert!(message(&kill).contains("agent's own cgroup"), "{kill}");
    assert!(
        !agent
            .logs()
            .iter()
            .any(|l| l.contains("in-kernel kill armed")),
        "the agent's own container is never armed"
    );
    let (_, status) = agent.stop();
    assert!(status.success());
}

/// An action event's line for people ("" when it has none).
fn message(event: &Value) -> &str {
    event["action"]["message"].as_str().unwrap_or_default()
}

/// The first action event of `action` for `rule`, whatever its pid.
fn wait_for_rule_action(agent: &Agent, rule: &str, action: &str) -> Value {
    let matches = |e: &Value| {
        e["kind"] == "action" && e["action"]["action"] == action && e["action"]["rule"] == rule
    };
    agent
        .wait_for_events(&format!("a {action} action for {rule}"), |events| {
            events.iter().any(matches)
        })
        .into_iter()
        .find(matches)
        .expect("the action event")
}

#[test]
fn deny_exec_refuses_the_exec_with_bpf_lsm_or_says_why_not_and_kills_at_exec() {
    let Some(_kernel) = kernel_test() else { return };
    let setup = Setup::new();
    let rules = RULES.replacen("actions: [kill]", "actions: [deny-exec]", 1);
    std::fs::write(setup.file("rules.yaml"), rules).expect("write the rules");
    let container = TestCgroup::with_layout(Layout::Containerd);
    let agent = Agent::start(&setup.config(&[&container], "  mode: enforce\n"));
    let lsm_refused = agent.logs().iter().any(|l| l.contains("BPF LSM refused"));
    agent.wait_for_log("the agent to say how deny-exec works here", |line| {
        if lsm_refused {
            line.contains("deny-exec needs BPF LSM, which this kernel refuses")
                && line.contains("Marker started")
        } else {
            line.contains("rules deny the exec in the kernel with BPF LSM")
                && line.contains("Marker started")
        }
    });
    if !lsm_refused {
        let logs = agent.logs();
        assert!(
            !logs
                .iter()
                .any(|l| l.contains("rules kill in the kernel at exec")
                    && l.contains("Marker started")),
            "with BPF LSM the rule does not kill at exec as well: {logs:?}"
        );
    }
    let mut sleeper = arm(&agent, &container);
    let written = setup.file("denied");
    let mut command = container.command(setup.file("gr-marker"));
    command.arg(&written).stdin(Stdio::null());
    let deny = if lsm_refused {
        let mut child = command.spawn().expect("run the marker");
        let pid = child.id();
        let status = child.wait().expect("wait for the marker");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
        let deny = wait_for_action(&agent, pid, "deny-exec");
        assert_eq!(deny["action"]["method"], "kernel", "{deny}");
        assert!(message(&deny).contains("BPF LSM is unavailable"), "{deny}");
        let events = agent.wait_for_exec(pid);
        let exec = events
            .iter()
            .find(|e| e["kind"] == "process_exec" && e["process"]["pid"] == pid)
            .expect("the marker's exec");
        assert!(exec.get("kernel_kill").is_some(), "{exec}");
        assert!(exec.get("kernel_deny").is_none(), "{exec}");
        deny
    } else {
        // The exec fails in the child that spawn forked: it never becomes
        // the marker.
        let error = command.spawn().expect_err("the exec is refused");
        assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}");
        let deny = wait_for_rule_action(&agent, "Marker started", "deny-exec");
        assert_eq!(deny["action"]["method"], "bpf_lsm", "{deny}");
        assert!(
            message(&deny).starts_with("denied the exec of pid"),
            "{deny}"
        );
        let events = agent.wait_for_events("the refused exec", |events| {
            events
                .iter()
                .any(|e| e["kind"] == "process_exec" && e.get("kernel_deny").is_some())
        });
        let exec = events
            .iter()
            .find(|e| e["kind"] == "process_exec" && e.get("kernel_deny").is_some())
            .expect("the refused exec");
        assert_eq!(exec["process"]["comm"], "gr-marker", "{exec}");
        deny
    };
    assert!(!written.exists(), "the denied program never ran");
    assert_eq!(deny["action"]["outcome"], "done", "{deny}");
    assert_eq!(deny["action"]["rule"], "Marker started", "{deny}");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let (events, status) = agent.stop();
    assert!(status.success());
    support::assert_schema_valid(&events);
}

#[test]
fn actions_beyond_the_rate_limit_are_not_carried_out_and_say_so() {
    let Some(_kernel) = kernel_test() else { return };
    let setup = Setup::new();
    let container = TestCgroup::with_layout(Layout::Containerd);
    let agent = Agent::start(&setup.config(
        &[&container],
        "  mode: enforce\n  rate_limit: {actions: 1, per_seconds: 600}\n",
    ));
    let trigger = setup.file("gr-trigger").display().to_string();
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let mut child = container
            .command("/bin/sh")
            .args(["-c", "exec 3<\"$1\"; exec sleep 5", "sh", &trigger])
            .spawn()
            .expect("start the shell");
        let pid = child.id();
        let kill = wait_for_action(&agent, pid, "kill");
        outcomes.push(kill["action"]["outcome"].as_str().map(str::to_owned));
        let _ = child.kill();
        let _ = child.wait();
        if outcomes.len() == 2 {
            assert!(
                message(&kill).contains("more than 1 actions in 600 s"),
                "{kill}"
            );
        }
    }
    assert_eq!(
        outcomes,
        vec![Some("done".to_owned()), Some("rate_limited".to_owned())]
    );
    let metrics = agent.scrape();
    let limited = metrics
        .iter()
        .find(|(s, _)| {
            s == "guardrails_actions_total{action=\"kill\",mode=\"enforce\",outcome=\"rate_limited\"}"
        })
        .map(|(_, v)| *v);
    assert_eq!(limited, Some(1.0), "the metric counts it");
    let (_, status) = agent.stop();
    assert!(status.success());
}
