//! Rules as custom resources, end to end: the CRDs from `guardrails crds`
//! installed on a real API server, the agent (with the chart's ClusterRole)
//! watching them, a team's `RuleSet` that adds a rule and raises its
//! namespace to enforce without a restart, an invalid generation that gets
//! a status condition and changes nothing, and a mode that would lower the
//! platform's refused.

mod support;

use std::{
    os::unix::{fs::PermissionsExt, process::ExitStatusExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::{Value, json};
use support::{
    TempDir, TestCgroup,
    cluster::{Cluster, NODE, create_namespace, create_pod},
    kernel_test, unique_hex,
};

const PLATFORM_RULES: &str = r#"
- list: marker_names
  items: [gr-marker]
- rule: Flag opened
  desc: the platform's own rule, which the test never triggers
  condition: evt.type in (open, openat) and fd.name endswith /gr-never
  output: "flag opened (pid=%proc.pid)"
  priority: WARNING
"#;

/// With a key the agent does not know, on line 7.
const TEAM_RULES: &str = r#"- rule: Marker started
  desc: the team's own rule, using the platform's list
  condition: evt.type in (execve, execveat) and proc.name in (marker_names)
  output: "marker started (pid=%proc.pid pod=%k8s.pod.name)"
  priority: CRITICAL
  actions: [kill]
  owner: shop-team
"#;

/// A condition naming a field that does not exist, on line 3.
const BROKEN_RULES: &str = r#"- rule: Marker started
  desc: a typo
  condition: evt.type in (execve, execveat) and proc.nmae = gr-marker
  output: "marker started"
  priority: CRITICAL
"#;

fn ruleset_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("guardrails.dev", "v1alpha1", "RuleSet"),
        "rulesets",
    );
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// Installs the CRDs that `guardrails crds` prints and waits until the API
/// server serves them.
async fn install_crds(admin: &Client) {
    let output = Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .arg("crds")
        .output()
        .expect("run guardrails crds");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let api = Api::<CustomResourceDefinition>::all(admin.clone());
    for document in serde_yaml::Deserializer::from_str(&text) {
        let crd: CustomResourceDefinition =
            serde::Deserialize::deserialize(document).expect("a CustomResourceDefinition");
        api.create(&PostParams::default(), &crd)
            .await
            .expect("the API server takes the CRD");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while ruleset_api(admin, "default")
        .list(&Default::default())
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the RuleSet CRD is never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn apply_ruleset(admin: &Client, namespace: &str, name: &str, spec: Value) {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "guardrails.dev/v1alpha1",
        "kind": "RuleSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))
    .expect("a RuleSet");
    ruleset_api(admin, namespace)
        .patch(
            name,
            &PatchParams::apply("rulesets-test").force(),
            &Patch::Apply(&object),
        )
        .await
        .expect("the API server takes the RuleSet");
}

/// Waits until the RuleSet's `Accepted` condition is about its current
/// generation, and returns its status.
fn wait_for_verdict(cluster: &Cluster, namespace: &str, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let object = cluster
            .block_on(ruleset_api(&cluster.admin, namespace).get(name))
            .expect("read the RuleSet");
        let generation = object.metadata.generation;
        let status = object.data.get("status").cloned().unwrap_or(Value::Null);
        let current = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Accepted"))
            .filter(|c| c["observedGeneration"].as_i64() == generation);
        if current.is_some() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "no verdict on RuleSet {namespace}/{name} generation {generation:?}: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn accepted(status: &Value) -> &Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Accepted"))
        .expect("an Accepted condition")
}

/// Writes a program whose first act is to write the file it is given.
fn marker(dir: &Path) -> PathBuf {
    let marker = dir.join("gr-marker");
    std::fs::write(&marker, "#!/bin/sh\necho ran > \"$1\"\n").expect("write the marker");
    std::fs::set_permissions(&marker, std::fs::Permissions::from_mode(0o755))
        .expect("make the marker executable");
    marker
}

fn run_marker(marker: &Path, cgroup: &TestCgroup, out: &Path) -> (u32, std::process::ExitStatus) {
    let mut child = cgroup
        .command(marker)
        .arg(out)
        .stdin(Stdio::null())
        .spawn()
        .expect("run the marker");
    let pid = child.id();
    (pid, child.wait().expect("wait for the marker"))
}

fn violations_of(events: &[Value], pid: u32) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "violation" && e["process"]["pid"] == pid)
        .filter_map(|e| e["violation"]["rule"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_teams_ruleset_takes_effect_without_a_restart_and_cannot_weaken_enforcement() {
    let Some(_kernel) = kernel_test() else { return };
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let dir = TempDir::new("rulesets");
    let rules = dir.path.join("rules.yaml");
    std::fs::write(&rules, PLATFORM_RULES).expect("write the rules");
    let marker = marker(&dir.path);
    let pin_dir = format!("/sys/fs/bpf/guardrails-test-{}", unique_hex(12));
    let spec = json!({"containers": [{"name": "app", "image": "nginx:1.25"}]});
    let (shop, other) = cluster.block_on(async {
        let admin = &cluster.admin;
        install_crds(admin).await;
        for namespace in ["shop", "other", "payments"] {
            create_namespace(admin, namespace, Default::default()).await;
        }
        let (_, shop) = create_pod(admin, "shop", "web-1", NODE, json!({}), spec.clone()).await;
        let (_, other) = create_pod(admin, "other", "api-1", NODE, json!({}), spec).await;
        (shop, other)
    });
    // The platform: monitor everywhere, enforce in payments.
    let agent = cluster.agent_with(
        &shop,
        Some(&rules),
        &format!("containment:\n  pin_dir: {pin_dir:?}\n  namespaces:\n    payments: enforce\n"),
    );

    // Before any RuleSet the marker runs and nothing fires.
    let before = dir.path.join("before");
    let (pid, status) = run_marker(&marker, &shop, &before);
    assert!(status.success(), "{status}");
    assert!(before.exists());
    // Its exec has passed the rules before the RuleSet exists: an event still
    // in the pipeline when the new rules take effect would be judged by them.
    agent.wait_for_events("the marker's exec before the RuleSet", |events| {
        events
            .iter()
            .any(|e| e["kind"] == "process_exec" && e["process"]["pid"] == pid)
    });

    // The team adds its rule and raises its namespace to enforce.
    cluster.block_on(apply_ruleset(
        &cluster.admin,
        "shop",
        "team",
        json!({"mode": "enforce", "rules": TEAM_RULES}),
    ));
    let status = wait_for_verdict(&cluster, "shop", "team");
    let condition = accepted(&status);
    assert_eq!(condition["status"], "True", "{status}");
    assert_eq!(condition["reason"], "Accepted", "{status}");
    assert_eq!(status["rules"], 1, "{status}");
    // A key the agent does not know is ignored, and the author told where.
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("generation 1 is in force (1 rules), with 1 warning(s):\n")
            && message.contains("RuleSet shop/team (spec.rules):7:")
            && message.contains("unknown key \"owner\""),
        "{status}"
    );
    agent.wait_for_log("the team's rules in force", |line| {
        line.contains("rules resources changed; the new rules are in force")
    });
    // A process in the team's container lets the agent arm the kernel there.
    let mut sleeper = shop
        .command("sleep")
        .arg("60")
        .spawn()
        .expect("start sleep");
    let container = shop.container_id.clone().expect("a container cgroup");
    agent.wait_for_log("the shop container to be armed", |line| {
        line.contains("in-kernel kill armed") && line.contains(&container)
    });
    let killed = dir.path.join("killed");
    let (killed_pid, status) = run_marker(&marker, &shop, &killed);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    assert!(!killed.exists(), "the marker in shop never ran");
    let events = agent.wait_for_events("the team rule's kill", |events| {
        events.iter().any(|e| {
            e["kind"] == "action"
                && e["process"]["pid"] == killed_pid
                && e["action"]["action"] == "kill"
        })
    });
    assert_eq!(violations_of(&events, killed_pid), ["shop/Marker started"]);
    let kill = events
        .iter()
        .find(|e| e["kind"] == "action" && e["process"]["pid"] == killed_pid)
        .expect("the kill");
    assert_eq!(kill["action"]["outcome"], "done", "{kill}");
    assert_eq!(kill["action"]["mode_source"], "ruleset", "{kill}");
    assert!(
        violations_of(&events, pid).is_empty(),
        "nothing fired before the RuleSet"
    );

    // The team's rule is about its namespace only.
    let elsewhere = dir.path.join("elsewhere");
    let (other_pid, status) = run_marker(&marker, &other, &elsewhere);
    assert!(
        status.success(),
        "the marker in another namespace runs: {status}"
    );

    // An invalid generation: a condition with the line, and nothing changes.
    cluster.block_on(apply_ruleset(
        &cluster.admin,
        "shop",
        "team",
        json!({"mode": "enforce", "rules": BROKEN_RULES}),
    ));
    let status = wait_for_verdict(&cluster, "shop", "team");
    let condition = accepted(&status);
    assert_eq!(condition["status"], "False", "{status}");
    assert_eq!(condition["reason"], "Invalid", "{status}");
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("RuleSet shop/team (spec.rules):3:"),
        "{message}"
    );
    assert!(message.contains("proc.nmae"), "{message}");
    assert!(
        message.ends_with("generation 1 stays in force"),
        "{message}"
    );
    let still = dir.path.join("still");
    let (still_pid, status) = run_marker(&marker, &shop, &still);
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the previous rules stay: {status}"
    );
    assert!(!still.exists());

    // A RuleSet that would lower the platform's enforce in payments.
    cluster.block_on(apply_ruleset(
        &cluster.admin,
        "payments",
        "relax",
        json!({"mode": "monitor"}),
    ));
    let status = wait_for_verdict(&cluster, "payments", "relax");
    let condition = accepted(&status);
    assert_eq!(condition["status"], "False", "{status}");
    assert_eq!(condition["reason"], "Refused", "{status}");
    assert!(
        condition["message"].as_str().unwrap_or_default().contains(
            "spec.mode: monitor would lower namespace payments below the platform's enforce"
        ),
        "{status}"
    );

    let events = agent.wait_for_events("the last kill", |events| {
        violations_of(events, still_pid) == ["shop/Marker started"]
    });
    assert!(
        violations_of(&events, other_pid).is_empty(),
        "the team's rule never fires in another namespace"
    );
    let metrics = agent.scrape();
    for resource in ["clusterrulesets", "rulesets"] {
        let series = format!("guardrails_kube_watch_synced{{resource=\"{resource}\"}}");
        assert!(
            metrics.iter().any(|(s, v)| *s == series && *v == 1.0),
            "{series} is not 1: {metrics:?}"
        );
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let (events, status) = agent.stop();
    assert!(status.success());
    support::assert_schema_valid(&events);
    let _ = Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .args(["cleanup", "--pin-dir", &pin_dir])
        .output();
}
