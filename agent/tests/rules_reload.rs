//! Rules change while the agent runs: a valid change takes effect without a
//! restart; a broken one is rejected, logged with its position, and the
//! previous rules stay in force.

mod support;

use std::{path::Path, time::Duration};

use serde_json::Value;
use support::{Agent, TempDir, TestCgroup, config_for, kernel_test};

fn rule_for(marker: &str) -> String {
    format!(
        "- rule: Marker ran\n  desc: the test's marker program ran\n  condition: evt.type = execve and proc.name = {marker}\n  output: \"marker %proc.name ran (pid=%proc.pid)\"\n  priority: NOTICE\n  tags: [test]\n"
    )
}

/// Replaces the file in one step, as a ConfigMap update does.
fn replace(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).expect("write the rules");
    std::fs::rename(&next, path).expect("move the rules in place");
}

fn violations_for(events: &[Value], pid: u32) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "violation" && e["process"]["pid"] == pid)
        .collect()
}

/// Runs a copy of /bin/true named `name` in the cgroup and returns its pid
/// once the agent has printed its exec.
fn run_marker(agent: &Agent, cgroup: &TestCgroup, dir: &Path, name: &str) -> u32 {
    let program = dir.join(name);
    if !program.exists() {
        std::fs::copy("/bin/true", &program).expect("copy /bin/true");
    }
    let mut child = cgroup.command(&program).spawn().expect("run the marker");
    let pid = child.id();
    assert!(child.wait().expect("wait").success());
    agent.wait_for_exec(pid);
    pid
}

#[test]
fn a_valid_change_takes_effect_and_a_broken_one_leaves_the_old_rules_in_force() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let dir = TempDir::new("reload");
    let rules = dir.path.join("rules.yaml");
    std::fs::write(&rules, rule_for("marker-one")).expect("write the rules");
    let config = format!(
        "{}rules:\n  defaults: false\n  files: [{:?}]\n  reload_interval_ms: 100\n",
        config_for(&cgroup),
        rules.display().to_string()
    );
    let agent = Agent::start(&config);

    let first = run_marker(&agent, &cgroup, &dir.path, "marker-one");
    let events = agent.wait_for_events("the first violation", |e| {
        !violations_for(e, first).is_empty()
    });
    let fired = violations_for(&events, first);
    assert_eq!(fired.len(), 1);
    assert_eq!(
        fired[0]["violation"]["output"],
        format!("marker marker-one ran (pid={first})")
    );

    // A valid change: the rule now watches another program.
    replace(&rules, &rule_for("marker-two"));
    agent.wait_for_log("the reload", |l| l.contains("the new rules are in force"));
    let second = run_marker(&agent, &cgroup, &dir.path, "marker-two");
    let old = run_marker(&agent, &cgroup, &dir.path, "marker-one");
    let events = agent.wait_for_events("the second violation", |e| {
        !violations_for(e, second).is_empty()
    });
    assert_eq!(violations_for(&events, second).len(), 1);

    // A broken change: an unknown field. It is rejected with its position.
    replace(
        &rules,
        &rule_for("marker-three").replace("proc.name =", "proc.nmae ="),
    );
    agent.wait_for_log("the rejection", |l| {
        l.contains("previous rules stay in force")
    });
    let logs = agent.logs();
    let file = rules.display().to_string();
    assert!(
        logs.iter()
            .any(|l| l.contains(&format!("{file}:3:"))
                && l.contains("unknown field \\\"proc.nmae\\\"")),
        "the log names the file, line and problem:\n{}",
        logs.join("\n")
    );
    let still = run_marker(&agent, &cgroup, &dir.path, "marker-two");
    let events = agent.wait_for_events("the old rule still firing", |e| {
        !violations_for(e, still).is_empty()
    });
    assert_eq!(violations_for(&events, still).len(), 1);

    let metrics = agent.scrape();
    let value = |series: &str| metrics.iter().find(|(s, _)| s == series).map(|(_, v)| *v);
    assert_eq!(
        value("guardrails_rules_reloads_total{result=\"applied\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("guardrails_rules_reloads_total{result=\"rejected\"}"),
        Some(1.0)
    );
    assert_eq!(value("guardrails_rules_enabled"), Some(1.0));

    // Give a late violation of the replaced rule time to show before judging.
    std::thread::sleep(Duration::from_millis(200));
    let (events, _) = agent.stop();
    assert!(
        violations_for(&events, old).is_empty(),
        "the replaced rule fired"
    );
}
