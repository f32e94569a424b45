//! What the agent adds to the kernel's events: ancestry from its process tree
//! and container identity from the cgroup, checked on real processes.

mod support;

use support::{Agent, Layout, TestCgroup, config_for, find, in_cgroup, kernel_test};

#[test]
fn a_child_that_exits_at_once_carries_the_shell_and_the_test_process_as_ancestors() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let agent = Agent::start(&config_for(&cgroup));

    let token = support::unique_hex(12);
    let mut shell = cgroup
        .command("/bin/sh")
        .args(["-c", &format!("/bin/true {token}; exit 0")])
        .spawn()
        .expect("run sh");
    let shell_pid = shell.id();
    assert!(shell.wait().expect("wait").success());

    let events = agent.wait_for_events("the child's exit", |events| {
        events.iter().any(|e| {
            e["kind"] == "process_exit"
                && e["process"]["ppid"] == shell_pid
                && e["process"]["comm"] == "true"
        })
    });
    let exec = in_cgroup(&events, &cgroup)
        .find(|e| e["kind"] == "process_exec" && e["process"]["args"][1] == token.as_str())
        .expect("the child's exec");
    let exit = find(
        &events,
        &cgroup,
        "process_exit",
        exec["process"]["pid"].as_u64().expect("pid") as u32,
    )
    .expect("the child's exit");
    for event in [exec, exit] {
        let ancestors = event["process"]["ancestors"].as_array().expect("ancestors");
        assert!(ancestors.len() >= 2, "{event}");
        assert_eq!(ancestors[0]["pid"], shell_pid);
        assert_eq!(ancestors[0]["comm"], "sh");
        assert_eq!(
            ancestors[0]["args"],
            serde_json::json!(["/bin/sh", "-c", format!("/bin/true {token}; exit 0")])
        );
        assert_eq!(
            ancestors[1]["pid"],
            std::process::id(),
            "the test process is the grandparent"
        );
        let test_exe = std::env::current_exe().expect("current exe");
        assert_eq!(ancestors[1]["exe"], test_exe.to_str().expect("utf-8"));
    }
    assert_eq!(
        exit["process"]["exe"], "/usr/bin/true",
        "an exit carries the image from the tree"
    );
    agent.stop();
}

/// Runs a process in a cgroup of `layout` and returns the `container` section
/// of its exec event.
fn container_of(layout: Layout) -> Option<(serde_json::Value, TestCgroup)> {
    let kernel = kernel_test()?;
    let cgroup = TestCgroup::with_layout(layout);
    let agent = Agent::start(&config_for(&cgroup));
    let mut child = cgroup.command("/bin/true").spawn().expect("run true");
    let pid = child.id();
    assert!(child.wait().expect("wait").success());
    let events = agent.wait_for_exec(pid);
    let container = find(&events, &cgroup, "process_exec", pid).expect("exec")["container"].clone();
    agent.stop();
    drop(kernel);
    Some((container, cgroup))
}

fn assert_container(layout: Layout, runtime: &str, driver: &str, qos: &str) {
    let Some((container, cgroup)) = container_of(layout) else {
        return;
    };
    assert_eq!(container["kind"], "container", "{container}");
    assert_eq!(container["id"].as_str(), cgroup.container_id.as_deref());
    assert_eq!(container["pod_uid"].as_str(), cgroup.pod_uid.as_deref());
    assert_eq!(container["runtime"], runtime);
    assert_eq!(container["cgroup_driver"], driver);
    assert_eq!(container["qos"], qos);
}

#[test]
fn a_process_in_a_containerd_scope_under_a_kubepods_slice_carries_its_container_and_pod() {
    assert_container(Layout::Containerd, "containerd", "systemd", "besteffort");
}

#[test]
fn a_process_in_a_crio_scope_carries_its_container_and_pod() {
    assert_container(Layout::CriO, "cri-o", "systemd", "burstable");
}

#[test]
fn a_process_in_a_cgroupfs_driver_container_carries_its_container_and_pod() {
    // The cgroupfs driver's names do not say which runtime made the container.
    assert_container(Layout::Cgroupfs, "unknown", "cgroupfs", "besteffort");
}

#[test]
fn a_host_process_is_marked_as_host() {
    let Some((container, _cgroup)) = container_of(Layout::Host) else {
        return;
    };
    assert_eq!(container, serde_json::json!({"kind": "host"}));
}

/// A cgroup v1 directory, removed (deepest first) when dropped.
struct V1Cgroup {
    created: Vec<std::path::PathBuf>,
    procs: std::ffi::CString,
}

impl Drop for V1Cgroup {
    fn drop(&mut self) {
        for dir in &self.created {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[test]
fn on_a_hybrid_node_a_container_only_in_the_v1_memory_hierarchy_is_still_identified() {
    let Some(_kernel) = kernel_test() else { return };
    // The runtime of such a node names containers in the v1 hierarchies only;
    // the v2 cgroup of the process says nothing (here: a host service).
    let Ok(memory) = guardrails::cgroup::cgroup1_mount("memory") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "this kind of machine mounts the v1 memory hierarchy"
        );
        support::skipped("no cgroup v1 memory hierarchy on this node");
        return;
    };
    let pod_uid = support::unique_pod_uid();
    let container_id = support::unique_hex(64);
    let path = memory
        .join("guardrails-tests")
        .join("kubepods/besteffort")
        .join(format!("pod{pod_uid}"))
        .join(&container_id);
    let v1 = V1Cgroup {
        created: support::create_dirs(&path, &memory),
        procs: std::ffi::CString::new(path.join("cgroup.procs").to_str().expect("utf-8"))
            .expect("no NUL"),
    };

    let cgroup = TestCgroup::with_layout(Layout::Host);
    let agent = Agent::start(&config_for(&cgroup));
    let mut command = cgroup.command("/bin/true");
    let procs = v1.procs.clone();
    // SAFETY: between fork and exec the closure only makes system calls on a
    // path prepared before the fork.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            support::join_cgroup(&procs)
        });
    }
    let mut child = command.spawn().expect("run true");
    let pid = child.id();
    assert!(child.wait().expect("wait").success());
    let events = agent.wait_for_exec(pid);
    let exec = find(&events, &cgroup, "process_exec", pid).expect("exec");
    assert!(
        exec["process"]["memory_cgroup_id"].as_u64().is_some(),
        "{exec}"
    );
    let container = &exec["container"];
    assert_eq!(container["kind"], "container", "{exec}");
    assert_eq!(container["id"], container_id.as_str());
    assert_eq!(container["pod_uid"], pod_uid.as_str());
    assert_eq!(container["cgroup_driver"], "cgroupfs");
    agent.stop();
    drop(v1);
}
