//! Pod identity and blast radius against a real kube-apiserver (built by
//! `cargo xtask kube-apiserver`, started by the tests on loopback), with
//! processes started in cgroups named for the pods' containers.
//!
//! There is no kubelet: the tests create the pods with this node's name and
//! write the container ids into the pod status themselves, as the kubelet
//! would. The agent runs with a service-account token bound to
//! `deploy/rbac/agent-clusterrole.yaml` and nothing more.

mod support;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Pod, Service},
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use support::{
    Agent, TestCgroup,
    cluster::{
        Cluster, NODE, cgroup_for_pod, create, create_namespace, create_pod, create_pod_only,
        owner, report_container,
    },
};

/// Runs `/bin/true` in `cgroup` and returns its exec event.
fn exec_in(agent: &Agent, cgroup: &TestCgroup) -> Value {
    let child = cgroup.command("/bin/true").spawn().expect("run /bin/true");
    let pid = child.id();
    let mut child = child;
    child.wait().expect("wait for /bin/true");
    let events = agent.wait_for_exec(pid);
    events
        .into_iter()
        .find(|e| e["kind"] == "process_exec" && e["process"]["pid"] == pid)
        .expect("the exec event")
}

fn metric(agent: &Agent, series: &str) -> f64 {
    agent
        .scrape()
        .into_iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no series {series}"))
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn standalone_without_a_cluster_fills_the_node_view_and_says_pod_metadata_is_off() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let cgroup = TestCgroup::new();
    let home = support::TempDir::new("home");
    let home_path = home.path.display().to_string();
    let agent = Agent::start_with_env(
        &support::config_for(&cgroup),
        &[
            ("KUBECONFIG", None),
            ("KUBERNETES_SERVICE_HOST", None),
            ("KUBERNETES_SERVICE_PORT", None),
            ("HOME", Some(&home_path)),
        ],
    );
    let exec = exec_in(&agent, &cgroup);
    assert_eq!(
        exec["container"]["id"],
        cgroup.container_id.as_deref().expect("an id")
    );
    assert_eq!(
        exec["container"]["pod_uid"],
        cgroup.pod_uid.as_deref().expect("a uid")
    );
    assert!(
        exec.get("kubernetes").is_none(),
        "no pod section without a cluster: {exec}"
    );
    let said = agent
        .logs()
        .iter()
        .filter(|l| l.contains("pod metadata is off"))
        .count();
    assert_eq!(said, 1, "said once: {:?}", agent.logs());
    assert_eq!(metric(&agent, "guardrails_kube_enabled"), 0.0);
    let (_, status) = agent.stop();
    assert!(status.success());
}

const RULES: &str = r#"
- rule: Program run in the shop
  desc: test rule reading pod fields
  condition: >
    evt.type in (execve, execveat) and proc.name = true and k8s.ns.name = shop
    and k8s.ns.label.team = payments and container.image.repository = nginx
  output: >
    ran %proc.name in pod=%k8s.pod.name deployment=%k8s.deployment.name rs=%k8s.rs.name
    container=%container.name image=%container.image.repository:%container.image.tag
    app=%k8s.pod.label.app
  priority: WARNING
"#;

fn resolved<'a>(event: &'a Value, pod: &str) -> &'a Value {
    let section = &event["kubernetes"];
    assert_eq!(section["status"], "resolved", "{event}");
    assert_eq!(section["pod"], pod, "{event}");
    section
}

#[test]
fn pods_are_identified_with_their_workload_labels_image_and_blast_radius() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let admin = cluster.admin.clone();

    // Before the agent starts: a Deployment's pod on this node behind a
    // NodePort Service, its sibling on another node, and a CronJob's pod.
    let (web_uid, web, other, job) = cluster.block_on(async {
        create_namespace(&admin, "shop", [("team".to_owned(), "payments".to_owned())].into()).await;
        let deployment = create(&admin, "shop", "apps/v1", "Deployment", "deployments", json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}
        }))
        .await;
        // No controller manager runs: write the status the Deployment would have.
        Api::<Deployment>::namespaced(admin.clone(), "shop")
            .patch_status("web", &PatchParams::default(), &Patch::Merge(&json!({"status": {"replicas": 2}})))
            .await
            .expect("patch the Deployment's status");
        let rs = create(&admin, "shop", "apps/v1", "ReplicaSet", "replicasets", json!({
            "metadata": {"name": "web-5d8", "ownerReferences": owner("apps/v1", "Deployment", "web", &deployment)},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8"}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "5d8"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}
        }))
        .await;
        let services: Api<Service> = Api::namespaced(admin.clone(), "shop");
        for service in [
            json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}}),
            json!({"metadata": {"name": "db"}, "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432}]}}),
        ] {
            services
                .create(&PostParams::default(), &serde_json::from_value(service).expect("a Service"))
                .await
                .expect("create a Service");
        }
        let web_metadata = json!({"labels": {"app": "web", "pod-template-hash": "5d8"},
            "ownerReferences": owner("apps/v1", "ReplicaSet", "web-5d8", &rs)});
        let web_spec = json!({
            "serviceAccountName": "web",
            "containers": [{"name": "app", "image": "nginx:1.27",
                "volumeMounts": [{"name": "sock", "mountPath": "/var/run/docker.sock"},
                                 {"name": "tls", "mountPath": "/tls", "readOnly": true}]}],
            "volumes": [{"name": "sock", "hostPath": {"path": "/var/run/docker.sock"}},
                        {"name": "tls", "secret": {"secretName": "web-tls"}}]
        });
        let (web_uid, web) =
            create_pod(&admin, "shop", "web-5d8-a", NODE, web_metadata.clone(), web_spec.clone()).await;
        let (_, other) =
            create_pod(&admin, "shop", "web-5d8-b", "other-node", web_metadata, web_spec).await;

        create_namespace(&admin, "batch", BTreeMap::new()).await;
        // CronJob is served as batch/v1beta1 by the oldest API server we support.
        let cronjob = create(&admin, "batch", "batch/v1beta1", "CronJob", "cronjobs", json!({
            "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "report", "image": "busybox:1.36"}]}}}}}
        }))
        .await;
        let job = create(&admin, "batch", "batch/v1", "Job", "jobs", json!({
            "metadata": {"name": "nightly-29000", "ownerReferences": owner("batch/v1beta1", "CronJob", "nightly", &cronjob)},
            "spec": {"template": {"metadata": {"labels": {"job": "nightly"}}, "spec": {
                "restartPolicy": "Never", "containers": [{"name": "report", "image": "busybox:1.36"}]}}}
        }))
        .await;
        let (_, job) = create_pod(&admin, "batch", "nightly-29000-x", NODE,
            json!({"labels": {"job": "nightly"}, "ownerReferences": owner("batch/v1", "Job", "nightly-29000", &job)}),
            json!({"restartPolicy": "Never", "containers": [{"name": "report", "image": "busybox:1.36"}]})).await;
        (web_uid, web, other, job)
    });

    let rules_dir = support::TempDir::new("rules");
    let rules = rules_dir.path.join("shop.yaml");
    std::fs::write(&rules, RULES).expect("write the rules");
    let agent = cluster.agent(&web, Some(&rules));

    // The Deployment's pod on this node.
    let exec = exec_in(&agent, &web);
    let section = resolved(&exec, "web-5d8-a");
    assert_eq!(section["namespace"], "shop");
    assert_eq!(section["uid"], web_uid.as_str());
    assert_eq!(section["node"], NODE);
    assert_eq!(section["labels"]["app"], "web");
    assert_eq!(section["namespace_labels"]["team"], "payments");
    assert_eq!(section["service_account"], "web");
    assert_eq!(section["owner"]["kind"], "ReplicaSet");
    assert_eq!(
        section["workload"],
        json!({"api_version": "apps/v1", "kind": "Deployment", "name": "web"})
    );
    assert_eq!(section["container"]["name"], "app");
    assert_eq!(section["container"]["image"], "nginx:1.27");
    assert_eq!(
        section["container"]["image_id"],
        format!("docker.io/library/nginx@sha256:{}", "ab".repeat(32))
    );

    // Its violation, with the rule's pod fields and the blast radius.
    let pid = exec["process"]["pid"].clone();
    let events = agent.wait_for_events("the violation", |events| {
        events
            .iter()
            .any(|e| e["kind"] == "violation" && e["process"]["pid"] == pid)
    });
    let violation = events
        .iter()
        .find(|e| e["kind"] == "violation" && e["process"]["pid"] == pid)
        .expect("a violation");
    assert_eq!(
        violation["violation"]["output"],
        "ran true in pod=web-5d8-a deployment=web rs=web-5d8 container=app image=nginx:1.27 app=web"
    );
    let radius = &violation["violation"]["blast_radius"];
    assert_eq!(
        radius["host_paths"],
        json!([{"path": "/var/run/docker.sock", "read_only": false}])
    );
    assert_eq!(radius["secrets"], json!(["web-tls"]));
    assert_eq!(radius["service_account"], "web");
    assert_eq!(radius["runs_as_root"], true);
    assert_eq!(radius["privileged"], false);
    let cluster_part = &radius["cluster"];
    assert_eq!(
        cluster_part["services"],
        json!([{"name": "web", "type": "NodePort"}]),
        "{radius}"
    );
    assert_eq!(cluster_part["exposed_outside_cluster"], true);
    assert_eq!(cluster_part["network_unrestricted"], true);
    assert_eq!(cluster_part["workload_replicas"], 2);
    assert_eq!(cluster_part["workload_pods"], 2);
    assert_eq!(cluster_part["workload_nodes"], 2);
    support::assert_schema_valid(std::slice::from_ref(violation));

    // The CronJob's pod resolves to the CronJob through its Job.
    let exec = exec_in(&agent, &job);
    let section = resolved(&exec, "nightly-29000-x");
    assert_eq!(section["owner"]["kind"], "Job");
    assert_eq!(
        section["workload"],
        json!({"api_version": "batch/v1beta1", "kind": "CronJob", "name": "nightly"})
    );

    // The sibling on another node is never watched: after the wait, its
    // events go out unresolved, and only this node's pods are cached.
    let exec = exec_in(&agent, &other);
    assert_eq!(
        exec["kubernetes"],
        json!({"status": "unresolved"}),
        "{exec}"
    );
    assert_eq!(metric(&agent, "guardrails_kube_pods"), 2.0);

    // A pod created after the agent started is enriched from its first exec.
    let (_, late) = cluster.block_on(create_pod(
        &admin,
        "shop",
        "web-5d8-c",
        NODE,
        json!({"labels": {"app": "web"}}),
        json!({"containers": [{"name": "app", "image": "nginx:1.27"}]}),
    ));
    let exec = exec_in(&agent, &late);
    assert_eq!(resolved(&exec, "web-5d8-c")["container"]["name"], "app");

    // A container that runs before the kubelet reports its id waits for it.
    let uid = cluster.block_on(create_pod_only(
        &admin,
        "shop",
        "web-5d8-d",
        NODE,
        json!({"labels": {"app": "web"}}),
        json!({"containers": [{"name": "app", "image": "nginx:1.27"}]}),
    ));
    let early = cgroup_for_pod(&uid);
    let child = early.command("/bin/true").spawn().expect("run /bin/true");
    std::thread::sleep(Duration::from_millis(300));
    cluster.block_on(report_container(&admin, "shop", "web-5d8-d", &early));
    let exec = {
        let pid = child.id();
        let mut child = child;
        child.wait().expect("wait for /bin/true");
        agent
            .wait_for_exec(pid)
            .into_iter()
            .find(|e| e["kind"] == "process_exec" && e["process"]["pid"] == pid)
            .expect("the exec event")
    };
    assert_eq!(
        resolved(&exec, "web-5d8-d")["container"]["name"],
        "app",
        "{exec}"
    );

    // Pods a, c and d ran the program in the shop: three violations.
    agent.wait_for_events("three violations", |events| {
        events.iter().filter(|e| e["kind"] == "violation").count() == 3
    });

    // Requests: one metadata read per owner (ReplicaSet, Deployment, Job,
    // CronJob); for the three violations in one namespace, one list of
    // Services and one of NetworkPolicies (cached), and for the one with a
    // workload, one read of it and one list of its pods.
    let requests: BTreeMap<String, f64> = agent
        .scrape()
        .into_iter()
        .filter_map(|(s, v)| {
            let what = s.strip_prefix("guardrails_kube_requests_total{request=\"")?;
            Some((what.trim_end_matches("\"}").to_owned(), v))
        })
        .collect();
    let expected: BTreeMap<String, f64> = [
        ("owner_get", 4.0),
        ("services_list", 1.0),
        ("network_policies_list", 1.0),
        ("workload_get", 1.0),
        ("workload_pods_list", 1.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(requests, expected);
    let unresolved = metric(&agent, "guardrails_kube_events_unresolved_total");
    assert!(unresolved >= 1.0, "the other node's pod is counted");
    // A refusal would be logged with the API server's status: reason
    // Forbidden, code 403. Bare digits are not looked for: timestamps, ports
    // and temporary names can spell 403 too.
    let logs = agent.logs();
    let refused = logs
        .iter()
        .any(|line| line.contains("orbidden") || line.contains("code: 403"));
    assert!(!refused, "the ClusterRole covers every request: {logs:#?}");
    let (_, status) = agent.stop();
    assert!(status.success());
}

#[test]
fn a_deleted_pod_stops_resolving_and_an_api_server_outage_keeps_the_cache() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let admin = cluster.admin.clone();
    let (keep, gone) = cluster.block_on(async {
        create_namespace(&admin, "ops", BTreeMap::new()).await;
        let spec = json!({"containers": [{"name": "tool", "image": "busybox:1.36"}]});
        let (_, keep) = create_pod(
            &admin,
            "ops",
            "keep",
            NODE,
            json!({"labels": {"v": "1"}}),
            spec.clone(),
        )
        .await;
        let (_, gone) = create_pod(&admin, "ops", "gone", NODE, json!({}), spec).await;
        (keep, gone)
    });
    let agent = cluster.agent(&keep, None);
    assert_eq!(
        resolved(&exec_in(&agent, &keep), "keep")["labels"]["v"],
        "1"
    );
    assert_eq!(
        resolved(&exec_in(&agent, &gone), "gone")["workload"],
        Value::Null
    );

    // The API server goes away: events keep their pod from the cache.
    cluster.server.stop_apiserver();
    let watch_up = "guardrails_kube_watch_up{resource=\"pods\"}";
    wait_for(
        "the agent to notice the outage",
        Duration::from_secs(60),
        || metric(&agent, watch_up) == 0.0,
    );
    assert_eq!(
        resolved(&exec_in(&agent, &keep), "keep")["labels"]["v"],
        "1"
    );

    // It returns; what changes before the agent's watch resumes is picked up.
    cluster.rt.block_on(cluster.server.start_apiserver_again());
    cluster.admin = cluster.block_on(cluster.server.admin_client());
    let admin = cluster.admin.clone();
    cluster.block_on(async {
        let pods: Api<Pod> = Api::namespaced(admin.clone(), "ops");
        pods.patch(
            "keep",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"v": "2"}}})),
        )
        .await
        .expect("relabel");
        pods.delete(
            "gone",
            &kube::api::DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .expect("delete");
    });
    wait_for("the new label in events", Duration::from_secs(60), || {
        exec_in(&agent, &keep)["kubernetes"]["labels"]["v"] == "2"
    });
    // The deleted pod resolves no more once its grace period (1.5 s) is over.
    wait_for(
        "the deleted pod to stop resolving",
        Duration::from_secs(20),
        || exec_in(&agent, &gone)["kubernetes"]["status"] == "unresolved",
    );
    assert_eq!(metric(&agent, watch_up), 1.0);
    let (_, status) = agent.stop();
    assert!(status.success());
}
