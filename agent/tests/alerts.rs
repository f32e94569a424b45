//! On-call alerts end to end: the agent as a child process, real processes
//! breaking rules in a test cgroup, and the destinations a user runs: a real
//! Alertmanager (read back through its v2 API), a local webhook receiver that
//! checks the signature, and the alert file on disk.

mod support;

use std::{
    collections::BTreeMap,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::{
    Agent, Layout, TempDir, TestCgroup,
    alertmanager::Alertmanager,
    cluster::{Cluster, NODE, create, create_namespace, create_pod, owner},
    config_for, kernel_test,
    webhook::WebhookServer,
};

/// Rules that fire when a file named for them is opened: one incident each.
fn rules(dir: &Path, names: &[&str]) -> String {
    let mut text = String::new();
    for name in names {
        std::fs::write(dir.join(name), "flag\n").expect("write a flag file");
        text.push_str(&format!(
            "- rule: Opened {name}\n  desc: the test's flag {name} is opened\n  condition: evt.type in (open, openat, openat2) and fd.name endswith /{name}\n  output: \"{name} opened (pid=%proc.pid command=%proc.cmdline)\"\n  priority: CRITICAL\n  tags: [test]\n"
        ));
    }
    let path = dir.join("rules.yaml");
    std::fs::write(&path, text).expect("write the rules");
    format!(
        "rules:\n  defaults: false\n  files: [{:?}]\n",
        path.display().to_string()
    )
}

/// Opens `flag` `times` times from one shell in `cgroup`.
fn open_flag(cgroup: &TestCgroup, flag: &Path, times: usize) {
    let status = cgroup
        .command("sh")
        .arg("-c")
        .arg(format!(
            "i=0; while [ $i -lt {times} ]; do : < '{}'; i=$((i+1)); done",
            flag.display()
        ))
        .stdout(Stdio::null())
        .status()
        .expect("run sh");
    assert!(status.success(), "the shell ran");
}

fn annotation<'a>(alert: &'a Value, name: &str) -> &'a str {
    alert["annotations"][name].as_str().unwrap_or_default()
}

fn metric(agent: &Agent, series: &str) -> f64 {
    agent
        .scrape()
        .into_iter()
        .find(|(s, _)| s == series)
        .map_or(0.0, |(_, v)| v)
}

fn wait_for_metric(agent: &Agent, series: &str, done: impl Fn(f64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = metric(agent, series);
        if done(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {value}; logs:\n{}",
            agent.logs().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `promtool check metrics` on the agent's `/metrics`.
fn promtool_accepts(agent: &Agent) {
    use std::io::Write;
    let Some(promtool) = support::in_path("promtool") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool (Debian package prometheus) is missing in CI"
        );
        support::skipped("no promtool on PATH");
        return;
    };
    let exposition = support::http::get(&format!("http://{}/metrics", agent.metrics_address()))
        .expect("GET /metrics");
    assert_eq!(exposition.status, 200);
    let mut check = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    check
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(&exposition.body)
        .expect("feed promtool");
    let verdict = check.wait_with_output().expect("promtool ends");
    assert!(
        verdict.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&verdict.stdout),
        String::from_utf8_lossy(&verdict.stderr)
    );
}

#[test]
fn a_burst_in_a_deployment_is_one_alert_with_its_count_team_pods_and_blast_radius() {
    let Some(_kernel) = kernel_test() else {
        return;
    };
    let Some(alertmanager) = Alertmanager::start() else {
        return;
    };
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let dir = TempDir::new("alerts-am");
    let admin = cluster.admin.clone();
    let (pod, cgroup) = cluster.block_on(async {
        create_namespace(
            &admin,
            "shop",
            BTreeMap::from([("team".to_owned(), "payments".to_owned())]),
        )
        .await;
        let deployment = create(&admin, "shop", "apps/v1", "Deployment", "deployments", json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}
        }))
        .await;
        let rs = create(&admin, "shop", "apps/v1", "ReplicaSet", "replicasets", json!({
            "metadata": {"name": "web-5d8", "ownerReferences": owner("apps/v1", "Deployment", "web", &deployment)},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8"}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "5d8"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}
        }))
        .await;
        let (_, cgroup) = create_pod(
            &admin,
            "shop",
            "web-5d8-x1",
            NODE,
            json!({"labels": {"app": "web", "pod-template-hash": "5d8"},
                "ownerReferences": owner("apps/v1", "ReplicaSet", "web-5d8", &rs)}),
            json!({"serviceAccountName": "web",
                "containers": [{"name": "app", "image": "nginx:1.27"}]}),
        )
        .await;
        ("web-5d8-x1", cgroup)
    });
    rules(&dir.path, &["gr-alert-shadow"]);
    // The rule's kill is in warn mode: alerted with what would have been done.
    let rules_path = dir.path.join("rules.yaml");
    let rules_text = std::fs::read_to_string(&rules_path).expect("read the rules");
    std::fs::write(&rules_path, format!("{rules_text}  actions: [kill]\n")).expect("add actions");
    let tail = format!(
        "containment:\n  mode: warn\n  pin_dir: {:?}\nalerts:\n  group_wait_ms: 500\n  group_interval_ms: 1000\n  resolve_after_ms: 8000\n  runbooks: {{url: \"https://runbooks.example/{{rule}}\"}}\n  outputs:\n    oncall:\n      type: alertmanager\n      url: {}\n      labels: {{cluster: test}}\n",
        dir.path.join("pins").display().to_string(),
        alertmanager.url()
    );
    let agent = cluster.agent_with(&cgroup, Some(&rules_path), &tail);

    // Probes: alive, and ready once the programs are attached and the pod
    // cache has synced.
    let probe = |path: &str| {
        support::http::get(&format!("http://{}{path}", agent.metrics_address()))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    };
    assert_eq!(probe("/healthz").status, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while probe("/readyz").status != 200 {
        assert!(Instant::now() < deadline, "{}", probe("/readyz").text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(probe("/readyz").text(), "ready\n");

    // One violation, then a burst of 999 more from the same workload.
    let flag = dir.path.join("gr-alert-shadow");
    open_flag(&cgroup, &flag, 1);
    let filter = [("alertname", "Opened gr-alert-shadow")];
    let first = alertmanager.wait_for_alerts(&filter, Duration::from_secs(20), |a| !a.is_empty());
    assert_eq!(first.len(), 1, "{first:#?}");
    open_flag(&cgroup, &flag, 999);
    let alerts = alertmanager.wait_for_alerts(&filter, Duration::from_secs(30), |a| {
        a.len() == 1 && annotation(&a[0], "count") == "1000"
    });
    let alert = &alerts[0];
    let labels = &alert["labels"];
    assert_eq!(labels["alertname"], "Opened gr-alert-shadow");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["namespace"], "shop");
    assert_eq!(labels["workload"], "Deployment/web");
    assert_eq!(labels["team"], "payments");
    assert_eq!(labels["cluster"], "test");
    assert_eq!(annotation(alert, "pods"), pod);
    assert_eq!(annotation(alert, "node"), NODE);
    let blast: Value = serde_json::from_str(annotation(alert, "blast_radius"))
        .unwrap_or_else(|e| panic!("blast_radius is JSON ({e}): {alert:#}"));
    assert_eq!(blast["service_account"], "web", "{blast:#}");
    let actions = annotation(alert, "actions");
    assert!(
        actions.starts_with("kill (warn, would_act): would kill pid"),
        "{actions}"
    );
    assert!(
        annotation(alert, "description").starts_with("gr-alert-shadow opened"),
        "{alert:#}"
    );
    assert_eq!(
        annotation(alert, "runbook_url"),
        "https://runbooks.example/opened-gr-alert-shadow"
    );
    assert_eq!(alert["status"]["state"], "active");
    // Everything reached the aggregator; nothing was held back or dropped.
    assert_eq!(metric(&agent, "guardrails_alert_violations_total"), 1000.0);
    assert_eq!(
        metric(
            &agent,
            "guardrails_alert_output_dropped_total{output=\"oncall\",type=\"alertmanager\"}"
        ),
        0.0
    );
    // The exposition, with kube, containment and alert series in it, is
    // what Prometheus's own linter accepts.
    promtool_accepts(&agent);

    // Quiet for resolve_after_ms: the incident is resolved, and Alertmanager
    // lists only alerts that have not ended.
    alertmanager.wait_for_alerts(&filter, Duration::from_secs(30), <[Value]>::is_empty);
    wait_for_metric(&agent, "guardrails_alert_incidents", |n| n == 0.0);
}

#[test]
fn alerts_wait_while_alertmanager_is_down_and_drops_beyond_the_queue_are_reported() {
    let Some(_kernel) = kernel_test() else {
        return;
    };
    let Some(mut alertmanager) = Alertmanager::start() else {
        return;
    };
    let dir = TempDir::new("alerts-down");
    let cgroup = TestCgroup::with_layout(Layout::Containerd);
    let flags = [
        "gr-down-1",
        "gr-down-2",
        "gr-down-3",
        "gr-down-4",
        "gr-down-5",
    ];
    let rules = rules(&dir.path, &flags);
    // Two outputs to the same Alertmanager, told apart by a label: one
    // queue holds the whole burst, the other two alerts of it.
    let config = format!(
        "{}{rules}alerts:\n  group_wait_ms: 200\n  group_interval_ms: 500\n  outputs:\n    big:\n      type: alertmanager\n      url: {url}\n      labels: {{via: big}}\n      queue: 16\n      backoff_ms: 100\n      max_backoff_ms: 400\n    small:\n      type: alertmanager\n      url: {url}\n      labels: {{via: small}}\n      queue: 2\n      backoff_ms: 100\n      max_backoff_ms: 400\n",
        config_for(&cgroup),
        url = alertmanager.url()
    );
    let agent = Agent::start(&config);

    alertmanager.stop();
    for flag in flags {
        open_flag(&cgroup, &dir.path.join(flag), 1);
    }
    let queued = "guardrails_alert_output_queued{output=\"big\",type=\"alertmanager\"}";
    wait_for_metric(&agent, queued, |n| n == 5.0);
    wait_for_metric(
        &agent,
        "guardrails_alert_output_dropped_total{output=\"small\",type=\"alertmanager\"}",
        |n| n == 3.0,
    );
    wait_for_metric(
        &agent,
        "guardrails_alert_output_up{output=\"big\",type=\"alertmanager\"}",
        |n| n == 0.0,
    );
    assert!(
        agent
            .logs()
            .iter()
            .any(|l| l.contains("alert output is down") && l.contains("big")),
        "a clear log line: {:#?}",
        agent.logs()
    );

    alertmanager.start_again();
    let big =
        alertmanager.wait_for_alerts(&[("via", "big")], Duration::from_secs(20), |a| a.len() == 5);
    let mut rules: Vec<&str> = big
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or_default())
        .collect();
    rules.sort_unstable();
    assert_eq!(
        rules,
        flags
            .map(|f| format!("Opened {f}"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "none lost within the queue bound"
    );
    assert!(
        big.iter()
            .all(|a| annotation(a, "dropped_alerts").is_empty())
    );
    let small = alertmanager.wait_for_alerts(&[("via", "small")], Duration::from_secs(20), |a| {
        a.len() == 2
    });
    for alert in &small {
        assert_eq!(annotation(alert, "dropped_alerts"), "3", "{alert:#}");
    }
    // The newest two were kept: the oldest are the least useful.
    let mut kept: Vec<&str> = small
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or_default())
        .collect();
    kept.sort_unstable();
    assert_eq!(kept, ["Opened gr-down-4", "Opened gr-down-5"]);
    wait_for_metric(&agent, queued, |n| n == 0.0);
    assert!(
        agent
            .logs()
            .iter()
            .any(|l| l.contains("alert output is reachable again")),
        "{:#?}",
        agent.logs()
    );
}

#[test]
fn webhooks_are_signed_slack_messages_formatted_and_the_file_rotated() {
    let Some(_kernel) = kernel_test() else {
        return;
    };
    let hook = WebhookServer::start(200);
    let chat = WebhookServer::start(200);
    let dir = TempDir::new("alerts-hook");
    let cgroup = TestCgroup::with_layout(Layout::Containerd);
    let flags = ["gr-hook-1", "gr-hook-2", "gr-hook-3"];
    let rules = rules(&dir.path, &flags);
    let key = dir.path.join("webhook-key");
    std::fs::write(&key, "s3cret-key\n").expect("write the key");
    let archive = dir.path.join("log/alerts.jsonl");
    let config = format!(
        "{}{rules}alerts:\n  group_wait_ms: 200\n  outputs:\n    hook:\n      type: webhook\n      url: {}/hooks/guardrails\n      secret_file: {:?}\n      headers: {{X-Source: test}}\n    chat:\n      type: slack\n      url: {}/services/T0/B0\n      route: {{min_priority: critical}}\n    archive:\n      type: file\n      path: {:?}\n      max_bytes: 4096\n      keep: 5\n",
        config_for(&cgroup),
        hook.url(),
        key.display().to_string(),
        chat.url(),
        archive.display().to_string(),
    );
    let agent = Agent::start(&config);
    // The webhook is down at first: alerts are retried until it answers.
    hook.set_status(503);
    for flag in flags {
        open_flag(&cgroup, &dir.path.join(flag), 2);
    }
    wait_for_metric(
        &agent,
        "guardrails_alert_output_failures_total{output=\"hook\",type=\"webhook\"}",
        |n| n >= 1.0,
    );
    hook.set_status(200);

    wait_for_metric(
        &agent,
        "guardrails_alert_output_delivered_total{output=\"hook\",type=\"webhook\"}",
        |n| n == 3.0,
    );
    // Those refused with 503 and those accepted: all signed.
    let requests = hook.received();
    assert!(requests.len() > 3, "retried: {}", requests.len());
    let mut seen = Vec::new();
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/hooks/guardrails");
        assert_eq!(request.header("x-source"), Some("test"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        let signature = request
            .header("x-guardrails-signature")
            .unwrap_or_else(|| panic!("signed: {:?}", request.headers));
        let (t, v1) = signature
            .strip_prefix("t=")
            .and_then(|s| s.split_once(",v1="))
            .unwrap_or_else(|| panic!("t=..,v1=..: {signature}"));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret-key");
        let mut signed = format!("{t}.").into_bytes();
        signed.extend_from_slice(&request.body);
        let tag: Vec<u8> = (0..v1.len() / 2)
            .map(|i| u8::from_str_radix(&v1[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        ring::hmac::verify(&key, &signed, &tag)
            .unwrap_or_else(|_| panic!("the signature verifies: {signature}"));
        let body = request.json();
        assert_eq!(body["status"], "firing");
        assert_eq!(body["count"], 2, "{body:#}");
        assert_eq!(body["severity"], "critical");
        seen.push(body["rule"].as_str().unwrap_or_default().to_owned());
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 3, "one alert per incident: {seen:?}");

    let messages = chat.wait_for(3, Duration::from_secs(20));
    for message in &messages {
        let body = message.json();
        let text = body["text"].as_str().unwrap_or_default();
        assert!(
            text.starts_with(":rotating_light: *Opened gr-hook-"),
            "{text}"
        );
        assert!(text.contains("opened (pid="), "{text}");
        assert_eq!(body["blocks"].as_array().map(Vec::len), Some(2), "{body:#}");
        assert!(message.header("x-guardrails-signature").is_none());
    }

    // Every alert is in the file or a rotated one, one JSON object a line.
    let mut lines = Vec::new();
    for path in [
        archive.clone(),
        archive.with_extension("jsonl.1"),
        archive.with_extension("jsonl.2"),
    ] {
        if let Ok(text) = std::fs::read_to_string(&path) {
            assert!(
                text.len() <= 4096 || text.lines().count() == 1,
                "{}",
                path.display()
            );
            lines.extend(text.lines().map(|l| {
                serde_json::from_str::<Value>(l).expect("a JSON line")["rule"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            }));
        }
    }
    lines.sort_unstable();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        archive.with_extension("jsonl.1").exists(),
        "rotated: alerts with samples are larger than 4096 / 3 bytes"
    );
}
