//! The process sensors against this machine's kernel: real execs, forks and
//! exits in a fresh cgroup per test, seen through the agent's stdout.

mod support;

use std::{
    os::unix::fs::PermissionsExt,
    time::{Duration, SystemTime},
};

use support::{Agent, TempDir, TestCgroup, config_for, find, in_cgroup, kernel_test};

#[test]
fn an_exec_in_a_container_cgroup_appears_with_its_identity_arguments_and_time() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let agent = Agent::start(&config_for(&cgroup));

    // A marker program with a unique name and unique arguments, run as nobody
    // from its own directory.
    let dir = TempDir::new("exec");
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let marker = dir.path.join(format!("marker-{}", support::unique_hex(8)));
    std::fs::copy("/bin/true", &marker).expect("copy /bin/true");
    let token = support::unique_hex(16);
    let started = SystemTime::now();
    let mut child = cgroup
        .command_as(&marker, 65534, 65534)
        .args([format!("--token={token}"), "two words".to_owned()])
        .current_dir(&dir.path)
        .spawn()
        .expect("run the marker");
    let pid = child.id();
    assert!(child.wait().expect("wait").success());

    let events = agent.wait_for_exec(pid);
    let exec =
        find(&events, &cgroup, "process_exec", pid).expect("the exec is in the test's cgroup");
    let p = &exec["process"];
    assert_eq!(
        p["ppid"],
        std::process::id(),
        "the test process is the parent"
    );
    assert_eq!(p["tid"], pid);
    assert_eq!(p["ns_pid"], pid, "the test runs in the host PID namespace");
    assert_eq!(
        (p["uid"].as_u64(), p["euid"].as_u64()),
        (Some(65534), Some(65534))
    );
    assert_eq!(
        (p["gid"].as_u64(), p["egid"].as_u64()),
        (Some(65534), Some(65534))
    );
    assert_eq!(
        p["cgroup_id"], cgroup.id,
        "cgroup id is the directory's inode"
    );
    let marker_path = marker.to_str().expect("utf-8 path");
    assert_eq!(p["exe"], marker_path);
    assert_eq!(p["filename"], marker_path);
    assert_eq!(p["cwd"], dir.path.to_str().expect("utf-8 path"));
    assert_eq!(
        p["args"],
        serde_json::json!([marker_path, format!("--token={token}"), "two words"])
    );
    assert_eq!(p["argc"], 3);
    assert!(p.get("truncated").is_none(), "nothing was cut: {exec}");
    assert_eq!(exec["node"], "test-node");
    assert_eq!(exec["schema_version"], 1);

    let time = humantime::parse_rfc3339(exec["time"].as_str().expect("time")).expect("RFC 3339");
    let skew = time
        .duration_since(started)
        .unwrap_or_else(|e| e.duration());
    assert!(
        skew < Duration::from_secs(1),
        "event time {time:?} is {skew:?} from the test's clock"
    );

    let (events, status) = agent.stop();
    assert!(
        status.success(),
        "the agent stops cleanly on SIGTERM: {status}"
    );
    support::assert_schema_valid(&events);
}

#[test]
fn an_argv_longer_than_its_bound_is_cut_and_marked_truncated() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let agent = Agent::start(&config_for(&cgroup));

    let long = "x".repeat(agent_common::ARGS_MAX);
    let mut child = cgroup
        .command("/bin/true")
        .arg(&long)
        .arg("after")
        .spawn()
        .expect("run true");
    let pid = child.id();
    assert!(child.wait().expect("wait").success());

    let events = agent.wait_for_exec(pid);
    let p = &find(&events, &cgroup, "process_exec", pid).expect("the exec")["process"];
    assert_eq!(p["truncated"], serde_json::json!(["args"]));
    assert_eq!(p["argc"], 3, "argc counts every argument, even those cut");
    let args = p["args"].as_array().expect("args");
    let kept: usize = args
        .iter()
        .map(|a| a.as_str().expect("string").len() + 1)
        .sum();
    assert!(
        kept <= agent_common::ARGS_MAX + 1,
        "{kept} bytes of argv kept"
    );
    assert_eq!(args[0], "/bin/true");
    assert!(args[1].as_str().expect("string").chars().all(|c| c == 'x'));
    agent.stop();
}

#[test]
fn a_fork_and_the_exits_of_parent_and_child_appear_with_their_codes() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let agent = Agent::start(&config_for(&cgroup));

    let helper = cgroup.fork_burst(1, 7, 3);

    let events = agent.wait_for_events("the helper's exit", |events| {
        events
            .iter()
            .any(|e| e["kind"] == "process_exit" && e["process"]["pid"] == helper)
    });
    let fork = find(&events, &cgroup, "process_fork", helper).expect("the helper's fork");
    let child = fork["fork"]["child_pid"].as_u64().expect("child pid") as u32;
    assert_ne!(child, helper);
    assert_eq!(fork["fork"]["child_ns_pid"], child);
    assert_eq!(fork["process"]["ppid"], std::process::id());

    let child_exit = find(&events, &cgroup, "process_exit", child).expect("the child's exit");
    assert_eq!(child_exit["exit"]["code"], 7);
    assert_eq!(child_exit["process"]["ppid"], helper);
    let helper_exit = find(&events, &cgroup, "process_exit", helper).expect("the helper's exit");
    assert_eq!(helper_exit["exit"]["code"], 3);
    assert!(helper_exit["exit"].get("signal").is_none());
    assert_eq!(
        in_cgroup(&events, &cgroup).count(),
        3,
        "one fork and two exits: {events:#?}"
    );
    agent.stop();
}

#[test]
fn an_exit_with_code_3_and_a_sigkill_are_told_apart() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let agent = Agent::start(&config_for(&cgroup));

    let mut exits = cgroup
        .command("/bin/sh")
        .args(["-c", "exit 3"])
        .spawn()
        .expect("run sh");
    let exits_pid = exits.id();
    assert_eq!(exits.wait().expect("wait").code(), Some(3));

    let mut sleeper = cgroup
        .command("/bin/sleep")
        .arg("600")
        .spawn()
        .expect("run sleep");
    let sleeper_pid = sleeper.id();
    agent.wait_for_exec(sleeper_pid);
    sleeper.kill().expect("SIGKILL");
    sleeper.wait().expect("wait");

    let events = agent.wait_for_events("both exits", |events| {
        [exits_pid, sleeper_pid].iter().all(|pid| {
            events
                .iter()
                .any(|e| e["kind"] == "process_exit" && e["process"]["pid"] == *pid)
        })
    });
    let exit = &find(&events, &cgroup, "process_exit", exits_pid).expect("sh's exit")["exit"];
    assert_eq!((exit["code"].as_i64(), exit.get("signal")), (Some(3), None));
    let killed =
        &find(&events, &cgroup, "process_exit", sleeper_pid).expect("sleep's exit")["exit"];
    assert_eq!(killed.get("code"), None);
    assert_eq!(killed["signal"], 9);
    assert_eq!(killed["signal_name"], "SIGKILL");
    assert_eq!(killed["core_dumped"], false);
    agent.stop();
}

/// One page of ring buffer, no wake-ups and a drain every 10 s: a burst cannot
/// fit, so most of it must be counted as lost.
fn tiny_ring_config(cgroup: &TestCgroup) -> String {
    format!(
        "apiVersion: guardrails.dev/v1alpha1\nscope:\n  cgroups: [{:?}]\ntransport:\n  ring_buffer_bytes: 4096\n  wakeup_bytes: 1073741824\n  drain_interval_ms: 10000\nmetrics:\n  address: 127.0.0.1:0\n",
        cgroup.path.display().to_string()
    )
}

#[test]
fn with_a_tiny_ring_buffer_every_event_is_either_delivered_or_counted_lost() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let config = tiny_ring_config(&cgroup);
    let agent = Agent::start(&config);

    let children = 200;
    cgroup.fork_burst(children, 0, 0);
    let expected = 2 * children as u64 + 1;

    let (events, status) = agent.stop();
    assert!(status.success(), "{status}");
    let delivered = in_cgroup(&events, &cgroup).count() as u64;
    let lost_reports: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "events_lost")
        .collect();
    let lost: u64 = lost_reports
        .iter()
        .map(|e| e["lost"]["ring_buffer_full"].as_u64().expect("count"))
        .sum();
    assert!(delivered > 0, "some events fit in the ring buffer");
    assert!(lost > 0, "the burst overflowed the ring buffer");
    assert_eq!(
        delivered + lost,
        expected,
        "delivered {delivered} + lost {lost}"
    );
    let last = lost_reports.last().expect("a loss report");
    let per_cpu: u64 = last["lost"]["ring_buffer_full_per_cpu"]
        .as_array()
        .expect("per-CPU counts")
        .iter()
        .map(|n| n.as_u64().expect("count"))
        .sum();
    assert_eq!(per_cpu, lost, "the per-CPU counts add up to the total");
    assert_eq!(last["lost"]["total"], lost);
    support::assert_schema_valid(&events);
}

/// A program's name as the kernel keeps it: its first 15 bytes.
fn kernel_name(name: &str) -> &str {
    &name[..name.len().min(15)]
}

/// Names of the agent's sensor programs that are loaded in the kernel now,
/// as the kernel keeps them.
fn loaded_sensor_programs() -> Vec<String> {
    use guardrails::bpf::hooks::{HOOKS, SYS_EXIT_EACH_PROGRAM};
    let ours: Vec<&str> = HOOKS
        .iter()
        .map(|h| h.program)
        .chain([SYS_EXIT_EACH_PROGRAM])
        .map(kernel_name)
        .collect();
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter_map(|info| info.name_as_str().map(str::to_owned))
        .filter(|name| ours.contains(&name.as_str()))
        .collect()
}

#[test]
fn sigint_detaches_every_sensor_and_the_agent_exits_cleanly() {
    use guardrails::bpf::hooks::{HOOKS, SYS_EXIT_EACH_PROGRAM, SYS_EXIT_TRACEPOINT};
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let agent = Agent::start(&config_for(&cgroup));
    // The syscall sensors' program is the per-syscall one where the agent
    // attached to each syscall's tracepoint (the default, with tracefs).
    let per_syscall = agent
        .logs()
        .iter()
        .any(|line| line.contains("sensors attached") && line.contains("syscalls/sys_exit_*"));
    let mut loaded = loaded_sensor_programs();
    loaded.sort();
    let mut expected: Vec<&str> = HOOKS
        .iter()
        .map(|h| {
            if per_syscall && h.tracepoint == SYS_EXIT_TRACEPOINT {
                kernel_name(SYS_EXIT_EACH_PROGRAM)
            } else {
                h.program
            }
        })
        .collect();
    expected.sort();
    assert_eq!(loaded, expected, "the running agent's programs are visible");

    let status = agent.stop_with(libc::SIGINT);
    assert!(status.success(), "SIGINT is a clean stop: {status}");
    // The kernel frees a program shortly after its last reference goes.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !loaded_sensor_programs().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "still loaded: {:?}",
            loaded_sensor_programs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_show_the_lost_event_counter_rising_when_a_tiny_ring_buffer_overflows() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let config = tiny_ring_config(&cgroup);
    let agent = Agent::start(&config);
    let lost = |agent: &Agent| {
        agent
            .scrape()
            .into_iter()
            .find(|(series, _)| {
                series == "guardrails_events_lost_total{cause=\"ring_buffer_full\"}"
            })
            .map(|(_, value)| value)
            .expect("the lost-event series")
    };
    assert_eq!(lost(&agent), 0.0, "nothing lost before the burst");

    cgroup.fork_burst(200, 0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = 0.0;
    while seen == 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the counter never rose"
        );
        std::thread::sleep(Duration::from_millis(200));
        seen = lost(&agent);
    }
    let per_cpu: f64 = agent
        .scrape()
        .into_iter()
        .filter(|(series, _)| series.starts_with("guardrails_ring_buffer_lost_total{cpu="))
        .map(|(_, value)| value)
        .sum();
    assert!(
        per_cpu >= seen,
        "the per-CPU series add up: {per_cpu} < {seen}"
    );
    agent.stop();
}

#[test]
fn with_batched_wake_ups_a_lone_event_arrives_on_the_drain_timer_and_a_burst_arrives_whole() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    // The default transport: the kernel wakes the agent once 64 KiB wait, the
    // agent drains every 50 ms whatever waits.
    let config = format!(
        "apiVersion: guardrails.dev/v1alpha1\nscope:\n  cgroups: [{:?}]\nmetrics:\n  enabled: false\n",
        cgroup.path.display().to_string()
    );
    let agent = Agent::start(&config);

    let mut lone = cgroup.command("/bin/true").spawn().expect("run true");
    let lone_pid = lone.id();
    assert!(lone.wait().expect("wait").success());
    agent.wait_for_exec(lone_pid);

    let children = 2000;
    let helper = cgroup.fork_burst(children, 0, 0);
    let events = agent.wait_for_events("the whole burst", |events| {
        events
            .iter()
            .any(|e| e["kind"] == "process_exit" && e["process"]["pid"] == helper)
    });
    let burst = in_cgroup(&events, &cgroup)
        .filter(|e| e["process"]["pid"] == helper || e["process"]["ppid"] == helper)
        .count();
    assert_eq!(burst, 2 * children + 1, "every fork and exit of the burst");
    let (events, _) = agent.stop();
    assert!(
        !events.iter().any(|e| e["kind"] == "events_lost"),
        "nothing was lost"
    );
}
