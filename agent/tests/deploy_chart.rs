//! The Helm chart (`deploy/helm/guardrails`) and the plain manifests rendered
//! from it (`deploy/manifests/guardrails.yaml`): `helm lint` passes, every
//! object validates strictly against the schemas of Kubernetes 1.20 (the
//! oldest version supported), the ClusterRole grants exactly
//! `deploy/rbac/agent-clusterrole.yaml`, the committed manifests are a fresh
//! render, and a real kube-apiserver 1.20 accepts every object (server-side
//! apply, dry run).
//!
//! Tools: helm from `GUARDRAILS_HELM` (else `helm` on PATH) and
//! kubernetes-validate from `GUARDRAILS_KUBERNETES_VALIDATE` (else on PATH);
//! `cargo xtask test` installs both and sets them. Outside CI a missing one
//! skips the test with a printed reason; under `CI=true` it fails it.
//!
//! `GUARDRAILS_BLESS=1` rewrites the committed manifests from the chart.

mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams},
    core::GroupVersionKind,
    discovery::{Discovery, Scope},
};
use serde::Deserialize;
use serde_yaml::Value;
use support::{TempDir, apiserver::ApiServer, cluster::create_namespace};

/// The release name and namespace the plain manifests are rendered with.
const RELEASE: &str = "guardrails";
const NAMESPACE: &str = "guardrails";
/// The oldest Kubernetes the agent supports (docs/kubernetes.md).
const OLDEST_KUBERNETES: &str = "1.20.0";

/// What precedes the render in the committed manifests.
const MANIFESTS_HEADER: &str = "\
# The Runtime Guardrails agent as plain manifests: the Helm chart in
# deploy/helm/guardrails rendered with its default values, without its
# uninstall hook (`helm template guardrails deploy/helm/guardrails
# --namespace guardrails --no-hooks`), after the namespace it needs.
# Generated; the tests check that it matches the chart
# (GUARDRAILS_BLESS=1 cargo test -p agent --test deploy_chart rewrites it).
# To remove the agent, delete these objects, then run `guardrails cleanup`
# on each node that froze or isolated a container (deploy/helm/guardrails/README.md).
apiVersion: v1
kind: Namespace
metadata:
  name: guardrails
";

/// Values that take every optional branch of the templates.
const EVERY_OPTION: &str = r#"
securityContext:
  privileged: true
  seLinuxOptions: {type: spc_t}
mountTracefs: false
podAnnotations: {example.com/owner: security}
podLabels: {team: security}
nodeSelector: {kubernetes.io/os: linux}
imagePullSecrets: [{name: registry}]
rulesFiles:
  local.yaml: |
    - rule: Example
      desc: an example
      condition: evt.type = execve and proc.name = nc
      output: nc ran
      priority: WARNING
rulesConfigMap:
  name: falco-rules
  keys: [falco_rules.yaml]
extraEnv: [{name: WEBHOOK_KEY, valueFrom: {secretKeyRef: {name: hooks, key: key}}}]
extraVolumes: [{name: alerts, hostPath: {path: /var/log/guardrails, type: DirectoryOrCreate}}]
extraVolumeMounts: [{name: alerts, mountPath: /var/log/guardrails}]
config:
  containment:
    mode: warn
    bindings: [{tags: [T1611], actions: [isolate, label], mode: enforce}]
    namespaces: {payments: enforce}
  alerts:
    runbooks: {url: "https://runbooks.example.com/{rule}"}
    outputs:
      oncall: {type: alertmanager, url: "http://alertmanager.monitoring:9093"}
      archive: {type: file, path: /var/log/guardrails/alerts.jsonl}
"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn chart() -> PathBuf {
    workspace().join("deploy/helm/guardrails")
}

/// A tool from `env`, else `name` on PATH; `None` (after saying why, outside
/// CI) when there is neither.
fn tool(env: &str, name: &str) -> Option<PathBuf> {
    let found = std::env::var_os(env)
        .map(PathBuf::from)
        .or_else(|| support::in_path(name));
    match found {
        Some(path) if path.is_file() => Some(path),
        other => {
            let why = match other {
                Some(path) => format!("{env} is {}, which is not a file", path.display()),
                None => format!(
                    "no {name}: set {env} or put it on PATH (`cargo xtask test` installs it)"
                ),
            };
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "chart test prerequisite missing in CI: {why}"
            );
            support::skipped(&why);
            None
        }
    }
}

/// Runs `command`; its stdout, or a panic with everything it said.
fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// `helm template` of the chart as release `guardrails` in namespace
/// `guardrails`, with `args` added.
fn render(helm: &Path, args: &[&str]) -> String {
    run(Command::new(helm)
        .args(["template", RELEASE])
        .arg(chart())
        .args(["--namespace", NAMESPACE])
        .args(args))
}

/// The YAML documents of a stream, empty ones left out.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the render"))
}

/// The cleanup DaemonSet the uninstall hook applies, from its ConfigMap.
fn cleanup_daemonset(docs: &[Value]) -> String {
    let config_map = find(docs, "ConfigMap", "guardrails-cleanup");
    config_map["data"]["daemonset.yaml"]
        .as_str()
        .expect("the hook's DaemonSet")
        .to_owned()
}

/// kubernetes-validate, strict, against the oldest supported version.
fn validate(validator: &Path, dir: &TempDir, name: &str, text: &str) {
    let file = dir.path.join(name);
    std::fs::write(&file, text).expect("write a render");
    run(Command::new(validator)
        .args([
            "--strict",
            "--kubernetes-version",
            OLDEST_KUBERNETES,
            "--quiet",
        ])
        .arg(&file));
}

#[test]
fn the_chart_lints_renders_valid_objects_grants_the_agents_role_and_matches_the_manifests() {
    let Some(helm) = tool("GUARDRAILS_HELM", "helm") else {
        return;
    };
    let Some(validator) = tool("GUARDRAILS_KUBERNETES_VALIDATE", "kubernetes-validate") else {
        return;
    };
    let dir = TempDir::new("chart");
    let every_option = dir.path.join("every-option.yaml");
    std::fs::write(&every_option, EVERY_OPTION).expect("write values");

    run(Command::new(&helm).args(["lint", "--strict"]).arg(chart()));
    run(Command::new(&helm)
        .args(["lint", "--strict"])
        .arg(chart())
        .arg("--values")
        .arg(&every_option));

    let full = render(&helm, &[]);
    let options = render(&helm, &["--values", every_option.to_str().expect("UTF-8")]);
    let docs = documents(&full);
    validate(&validator, &dir, "default.yaml", &full);
    validate(&validator, &dir, "every-option.yaml", &options);
    validate(
        &validator,
        &dir,
        "cleanup-daemonset.yaml",
        &cleanup_daemonset(&docs),
    );
    validate(
        &validator,
        &dir,
        "every-option-cleanup-daemonset.yaml",
        &cleanup_daemonset(&documents(&options)),
    );

    // The ClusterRole grants what deploy/rbac/agent-clusterrole.yaml grants.
    let role_file = workspace().join("deploy/rbac/agent-clusterrole.yaml");
    let role: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&role_file).expect("read the ClusterRole"))
            .expect("a ClusterRole");
    let rendered = find(&docs, "ClusterRole", RELEASE);
    assert_eq!(
        rendered["rules"],
        role["rules"],
        "the chart's ClusterRole differs from {}",
        role_file.display()
    );

    // A namespace's editors manage its RuleSets, its viewers read them, and
    // nobody gets ClusterRuleSets through the built-in roles.
    let edit = find(&docs, "ClusterRole", &format!("{RELEASE}-rulesets-edit"));
    assert_eq!(
        edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );
    let yaml = |text: &str| serde_yaml::from_str::<Value>(text).expect("YAML");
    assert_eq!(edit["rules"][0]["resources"], yaml("[rulesets]"));
    let view = find(&docs, "ClusterRole", &format!("{RELEASE}-rulesets-view"));
    assert_eq!(
        view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    assert_eq!(view["rules"][0]["verbs"], yaml("[get, list, watch]"));

    // The uninstall hook's cleanup runs with the capabilities that
    // chart_capabilities.rs runs `guardrails cleanup` with.
    let hook: Value = serde_yaml::from_str(&cleanup_daemonset(&docs)).expect("a DaemonSet");
    let cleanup = &hook["spec"]["template"]["spec"]["initContainers"][0]["securityContext"];
    assert_eq!(
        cleanup["capabilities"]["add"],
        serde_yaml::from_str::<Value>("[BPF]").expect("YAML"),
        "{cleanup:?}"
    );

    // The agent's config files in the ConfigMaps are ones it accepts.
    for render in [&full, &options] {
        let docs = documents(render);
        let config = find(&docs, "ConfigMap", RELEASE)["data"]["config.yaml"]
            .as_str()
            .expect("config.yaml");
        guardrails::config::Config::parse(config, Path::new("config.yaml"))
            .unwrap_or_else(|e| panic!("the chart's config is refused: {e}\n{config}"));
    }

    // The plain manifests are this render, without the hooks, with the CRDs.
    let manifests = format!(
        "{MANIFESTS_HEADER}{}",
        render(&helm, &["--no-hooks", "--include-crds"])
    );
    let committed = workspace().join("deploy/manifests/guardrails.yaml");
    if std::env::var("GUARDRAILS_BLESS").as_deref() == Ok("1") {
        std::fs::write(&committed, &manifests).expect("write the manifests");
    }
    let on_disk = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        on_disk == manifests,
        "{} is not the chart's render; run GUARDRAILS_BLESS=1 cargo test -p agent --test deploy_chart",
        committed.display()
    );
    validate(&validator, &dir, "manifests.yaml", &manifests);
}

#[test]
fn a_kube_apiserver_1_20_accepts_every_object_of_the_chart() {
    let Some(helm) = tool("GUARDRAILS_HELM", "helm") else {
        return;
    };
    let full = render(&helm, &["--include-crds"]);
    let mut docs = documents(&full);
    assert!(
        docs.iter()
            .any(|d| d["kind"] == "CustomResourceDefinition"
                && d["spec"]["names"]["kind"] == "RuleSet"),
        "the chart carries the CRDs"
    );
    docs.extend(documents(&cleanup_daemonset(&docs)));
    let every_option = TempDir::new("chart-values");
    let values = every_option.path.join("values.yaml");
    std::fs::write(&values, EVERY_OPTION).expect("write values");
    let options = render(&helm, &["--values", values.to_str().expect("UTF-8")]);
    let option_docs = documents(&options);
    docs.extend(documents(&cleanup_daemonset(&option_docs)));
    docs.extend(option_docs);

    let rt = support::cluster::runtime();
    rt.block_on(async {
        let Some(server) = ApiServer::start().await else {
            return;
        };
        let admin = server.admin_client().await;
        create_namespace(&admin, NAMESPACE, Default::default()).await;
        let discovery = Discovery::new(admin.clone())
            .run()
            .await
            .expect("discover the API");
        let params = PatchParams {
            dry_run: true,
            ..PatchParams::apply("guardrails-chart-test").force()
        };
        for doc in &docs {
            let api_version = doc["apiVersion"].as_str().expect("an apiVersion");
            let kind = doc["kind"].as_str().expect("a kind");
            let name = doc["metadata"]["name"].as_str().expect("a name");
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let (resource, caps) = discovery
                .resolve_gvk(&gvk)
                .unwrap_or_else(|| panic!("kube-apiserver 1.20 serves no {api_version} {kind}"));
            let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
                Api::namespaced_with(admin.clone(), NAMESPACE, &resource)
            } else {
                Api::all_with(admin.clone(), &resource)
            };
            let object: DynamicObject =
                serde_json::from_value(serde_json::to_value(doc).expect("JSON"))
                    .expect("an object");
            api.patch(name, &params, &Patch::Apply(&object))
                .await
                .unwrap_or_else(|e| panic!("kube-apiserver refused {kind} {name}: {e}"));
        }
    });
}

#[test]
fn the_charts_crds_are_the_ones_the_agent_defines() {
    let output = Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .arg("crds")
        .output()
        .expect("run guardrails crds");
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    let committed = chart().join("crds/rulesets.yaml");
    if std::env::var("GUARDRAILS_BLESS").as_deref() == Ok("1") {
        std::fs::write(&committed, &printed).expect("write the CRDs");
    }
    let on_disk = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        on_disk == printed,
        "{} is not what `guardrails crds` prints; run GUARDRAILS_BLESS=1 cargo test -p agent --test deploy_chart",
        committed.display()
    );
    let kinds: Vec<(String, String)> = documents(&printed)
        .iter()
        .map(|d| {
            (
                d["spec"]["names"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                d["spec"]["scope"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("ClusterRuleSet".to_owned(), "Cluster".to_owned()),
            ("RuleSet".to_owned(), "Namespaced".to_owned())
        ]
    );
}
