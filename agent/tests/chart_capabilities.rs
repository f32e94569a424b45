//! The capabilities the chart gives the agent are enough, and each one is
//! needed: the agent runs as root with exactly the capabilities of the
//! DaemonSet in `deploy/manifests/guardrails.yaml` (the chart's render,
//! checked by `deploy_chart.rs`) as its bounding, permitted and effective
//! sets (`setpriv`), its sensors attach, and it seeds the process tree, kills,
//! freezes and isolates other users' processes in a container cgroup. Then it
//! runs once without each of them, and the feature the chart's comment names
//! fails.

mod support;

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::Value;
use support::{Agent, Layout, TempDir, TestCgroup, kernel_test, unique_hex};

/// What the uninstall hook's cleanup container adds (templates/cleanup-hook.yaml;
/// `deploy_chart.rs` checks the render says so).
const CLEANUP_CAPABILITIES: [&str; 1] = ["BPF"];

/// The unprivileged user the watched processes run as (nobody).
const OTHER_USER: u32 = 65534;

const RULES: &str = r#"
- rule: Kill flag opened
  desc: kills the opener, through a pidfd (the kernel cannot express it)
  condition: evt.type in (open, openat, openat2) and fd.name endswith /gr-kill
  output: "kill flag opened (pid=%proc.pid)"
  priority: WARNING
  actions: [kill]
- rule: Freeze flag opened
  desc: freezes the opener's container
  condition: evt.type in (open, openat, openat2) and fd.name endswith /gr-freeze
  output: "freeze flag opened (pid=%proc.pid)"
  priority: WARNING
  actions: [freeze]
- rule: Isolate flag opened
  desc: isolates the opener's container
  condition: evt.type in (open, openat, openat2) and fd.name endswith /gr-isolate
  output: "isolate flag opened (pid=%proc.pid)"
  priority: WARNING
  actions: [isolate]
"#;

/// Capability numbers (linux/capability.h) of the names a chart may add.
const CAPABILITIES: &[(&str, u32)] = &[
    ("CHOWN", 0),
    ("DAC_OVERRIDE", 1),
    ("DAC_READ_SEARCH", 2),
    ("FOWNER", 3),
    ("KILL", 5),
    ("NET_ADMIN", 12),
    ("IPC_LOCK", 14),
    ("SYS_PTRACE", 19),
    ("SYS_ADMIN", 21),
    ("SYS_RESOURCE", 24),
    ("PERFMON", 38),
    ("BPF", 39),
];

fn number(name: &str) -> u32 {
    CAPABILITIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bit)| *bit)
        .unwrap_or_else(|| panic!("capability {name} is not in the test's table"))
}

/// The capabilities the agent's container adds in the committed manifests.
fn chart_capabilities() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/manifests/guardrails.yaml");
    let text = std::fs::read_to_string(&path).expect("read the manifests");
    let daemonset = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).expect("YAML"))
        .find(|doc| doc["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    let containers = daemonset["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    let agent = containers
        .iter()
        .find(|c| c["name"] == "agent")
        .expect("the agent's container");
    let security = &agent["securityContext"];
    assert_eq!(
        security["privileged"].as_bool(),
        Some(false),
        "not privileged"
    );
    assert_eq!(
        security["capabilities"]["drop"],
        serde_yaml::from_str::<serde_yaml::Value>("[ALL]").expect("YAML")
    );
    security["capabilities"]["add"]
        .as_sequence()
        .expect("added capabilities")
        .iter()
        .map(|c| c.as_str().expect("a name").to_owned())
        .collect()
}

/// What the agent managed with a set of capabilities.
#[derive(Debug, Default)]
struct Findings {
    /// Why it did not start, if it did not.
    start_error: Option<String>,
    /// Its effective capabilities, from /proc/PID/status.
    effective: u64,
    /// The executable of another user's process that predates the agent, as
    /// the process tree has it.
    seeded_exe: Option<String>,
    /// Whether cgroup ids are resolved with file handles.
    handles: bool,
    /// Whether the syscall sensors attached to each syscall's tracepoint
    /// (the config asks for it), rather than falling back to sys_exit.
    per_syscall: bool,
    /// The outcome (and error) of each action: kill, freeze, isolate.
    actions: Vec<(String, String)>,
}

impl Findings {
    fn outcome(&self, action: &str) -> &str {
        self.actions
            .iter()
            .find(|(a, _)| a == action)
            .map_or("none", |(_, outcome)| outcome.as_str())
    }
}

/// The setpriv arguments that make `caps` the bounding set of what it runs
/// as root, hence its permitted and effective sets, with nothing inheritable.
fn setpriv(caps: &[String]) -> Vec<String> {
    let mut bounding = String::from("-all");
    for cap in caps {
        bounding.push_str(&format!(",+{}", cap.to_lowercase()));
    }
    vec![
        "setpriv".into(),
        "--bounding-set".into(),
        bounding,
        "--inh-caps".into(),
        "-all".into(),
    ]
}

fn mask(caps: &[String]) -> u64 {
    caps.iter().fold(0, |m, c| m | 1 << number(c))
}

fn effective(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .expect("CapEff")
        .trim();
    u64::from_str_radix(hex, 16).expect("hex")
}

/// A loopback listener, accepting in the background.
fn listener() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || for _ in listener.incoming() {});
    addr
}

/// `sh` as the other user in `cgroup`: opens `flag`, then sleeps, in one
/// process that only a kill ends early.
fn opener(cgroup: &TestCgroup, flag: &Path) -> Child {
    cgroup
        .command_as("/bin/sh", OTHER_USER, OTHER_USER)
        .args(["-c", "exec 3<\"$1\"; exec sleep 30", "sh"])
        .arg(flag)
        .spawn()
        .expect("start the opener")
}

fn action_event(agent: &Agent, pid: u32, action: &str) -> Option<Value> {
    let found = |events: &[Value]| {
        events
            .iter()
            .find(|e| {
                e["kind"] == "action"
                    && e["process"]["pid"] == pid
                    && e["action"]["action"] == action
            })
            .cloned()
    };
    let events = agent.wait_for_events(&format!("a {action} action for {pid}"), |events| {
        found(events).is_some()
    });
    found(&events)
}

/// Runs the agent with `caps` and tries every feature.
fn probe(caps: &[String]) -> Findings {
    let dir = TempDir::new("caps");
    std::fs::write(dir.path.join("rules.yaml"), RULES).expect("write the rules");
    // Readable by the other user, in a directory it may enter.
    std::fs::set_permissions(
        &dir.path,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    for flag in ["gr-kill", "gr-freeze", "gr-isolate", "gr-go"] {
        std::fs::write(dir.path.join(flag), "flag\n").expect("write a flag");
    }
    let go = dir.path.join("gr-go-now");
    let pin_dir = PathBuf::from(format!("/sys/fs/bpf/guardrails-test-{}", unique_hex(12)));
    let [seeded, killed, frozen, isolated] =
        [(); 4].map(|()| TestCgroup::with_layout(Layout::Containerd));
    let scope: Vec<String> = [&seeded, &killed, &frozen, &isolated]
        .iter()
        .map(|c| format!("{:?}", c.path.display().to_string()))
        .collect();
    let config = format!(
        "apiVersion: guardrails.dev/v1alpha1\nscope:\n  cgroups: [{}]\ntransport:\n  wakeup_bytes: 0\n  drain_interval_ms: 20\nmetrics:\n  address: 127.0.0.1:0\nkubernetes:\n  mode: off\nrules:\n  defaults: false\n  reload_interval_ms: 0\n  files: [{:?}]\ncontainment:\n  mode: enforce\n  pin_dir: {:?}\nsensors:\n  syscall_hook: per_syscall\n",
        scope.join(", "),
        dir.path.join("rules.yaml").display().to_string(),
        pin_dir.display().to_string(),
    );

    // Another user's shell that predates the agent: the tree knows it from
    // /proc only. Once told, it runs a program, whose event lists it.
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.05; done; /bin/true; sleep 30",
        go = go.display()
    );
    let mut waiting = seeded
        .command_as("/bin/sh", OTHER_USER, OTHER_USER)
        .args(["-c", &script])
        .spawn()
        .expect("start the waiting shell");
    std::thread::sleep(Duration::from_millis(200));

    let wrapper = setpriv(caps);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let agent = match Agent::try_start_wrapped(&config, &wrapper) {
        Ok(agent) => agent,
        Err(why) => {
            let _ = waiting.kill();
            let _ = waiting.wait();
            return Findings {
                start_error: Some(why),
                ..Findings::default()
            };
        }
    };
    let mut findings = Findings {
        effective: effective(agent.pid()),
        handles: !agent
            .logs()
            .iter()
            .any(|l| l.contains("cgroup file handles do not work here")),
        per_syscall: agent
            .logs()
            .iter()
            .any(|l| l.contains("sensors attached") && l.contains("syscalls/sys_exit_*")),
        ..Findings::default()
    };

    std::fs::write(&go, "").expect("tell the shell");
    let shell = waiting.id();
    let events = agent.wait_for_events("the seeded shell's program", |events| {
        events.iter().any(|e| {
            e["kind"] == "process_exec"
                && e["process"]["ppid"] == shell
                && e["process"]["comm"] == "true"
        })
    });
    let exec = events
        .iter()
        .find(|e| e["kind"] == "process_exec" && e["process"]["ppid"] == shell)
        .expect("the exec");
    findings.seeded_exe = exec["process"]["ancestors"][0]["exe"]
        .as_str()
        .filter(|exe| !exe.is_empty())
        .map(str::to_owned);

    let addr = listener();
    let mut children = Vec::new();
    for (action, cgroup, flag) in [
        ("kill", &killed, "gr-kill"),
        ("freeze", &frozen, "gr-freeze"),
        ("isolate", &isolated, "gr-isolate"),
    ] {
        let mut child = opener(cgroup, &dir.path.join(flag));
        let event = action_event(&agent, child.id(), action);
        let outcome = event.map_or_else(
            || "none".to_owned(),
            |e| {
                let outcome = e["action"]["outcome"].as_str().unwrap_or("?").to_owned();
                match e["action"]["error"].as_str() {
                    Some(error) => format!("{outcome}: {error}"),
                    None => outcome,
                }
            },
        );
        // What the outcome says is checked against what happened.
        let done = outcome == "done";
        match action {
            "kill" => {
                let deadline = Instant::now() + Duration::from_secs(5);
                let mut dead = false;
                while Instant::now() < deadline {
                    if child.try_wait().expect("wait").is_some() {
                        dead = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                assert_eq!(dead, done, "kill said {outcome}");
            }
            "freeze" => {
                let events = std::fs::read_to_string(cgroup.path.join("cgroup.events"))
                    .expect("read cgroup.events");
                assert_eq!(events.contains("frozen 1"), done, "freeze said {outcome}");
            }
            _ => assert_eq!(!cgroup.connects_to(addr), done, "isolate said {outcome}"),
        }
        findings.actions.push((action.to_owned(), outcome));
        let _ = child.kill();
        // A frozen child dies once cleanup thaws it; it is reaped then.
        children.push(child);
    }
    let (_, status) = agent.stop();
    assert!(status.success(), "the agent stopped with {status}");
    // Thaw and detach what this run did, with the capabilities of the
    // chart's uninstall hook.
    let wrapper = setpriv(&CLEANUP_CAPABILITIES.map(str::to_owned));
    let cleanup = Command::new(&wrapper[0])
        .args(&wrapper[1..])
        .arg(env!("CARGO_BIN_EXE_guardrails"))
        .args(["cleanup", "--pin-dir"])
        .arg(&pin_dir)
        .output()
        .expect("run cleanup");
    assert!(
        cleanup.status.success(),
        "{}",
        String::from_utf8_lossy(&cleanup.stderr)
    );
    assert!(!pin_dir.exists(), "cleanup removed {}", pin_dir.display());
    let events = std::fs::read_to_string(frozen.path.join("cgroup.events")).expect("read");
    assert!(events.contains("frozen 0"), "cleanup thawed: {events}");
    assert!(isolated.connects_to(addr), "cleanup lifted the isolation");
    let _ = waiting.kill();
    let _ = waiting.wait();
    for mut child in children {
        let _ = child.wait();
    }
    findings
}

#[test]
#[expect(
    clippy::print_stderr,
    reason = "what each run found is reported to the test runner"
)]
fn the_charts_capabilities_are_enough_and_each_is_needed() {
    let Some(_kernel) = kernel_test() else { return };
    if support::in_path("setpriv").is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no setpriv (util-linux) in CI"
        );
        support::skipped("no setpriv (util-linux)");
        return;
    }
    let caps = chart_capabilities();

    let all = probe(&caps);
    assert_eq!(all.start_error, None);
    assert_eq!(
        all.effective,
        mask(&caps),
        "the effective set is the chart's"
    );
    assert!(all.seeded_exe.is_some(), "{all:?}");
    assert!(all.handles, "{all:?}");
    assert!(all.per_syscall, "{all:?}");
    for action in ["kill", "freeze", "isolate"] {
        assert_eq!(all.outcome(action), "done", "{all:?}");
    }

    // Without each capability, what the chart's comment says breaks.
    for removed in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != removed).cloned().collect();
        let found = probe(&fewer);
        eprintln!("without {removed}: {found:?}");
        match removed.as_str() {
            "BPF" | "PERFMON" => assert!(found.start_error.is_some(), "{found:?}"),
            "KILL" => {
                assert!(found.outcome("kill").starts_with("failed"), "{found:?}");
            }
            "SYS_PTRACE" => assert_eq!(found.seeded_exe, None, "{found:?}"),
            "DAC_READ_SEARCH" => assert!(!found.handles, "{found:?}"),
            "NET_ADMIN" => {
                assert!(found.outcome("isolate").starts_with("failed"), "{found:?}");
            }
            other => panic!("the chart adds {other}, which this test does not know to need"),
        }
    }
}
