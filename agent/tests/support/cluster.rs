//! A real API server with the agent's service account bound to the
//! project's ClusterRole, and pods made the way a kubelet would report them,
//! for the tests that need a cluster.
//!
//! There is no kubelet: the tests create the pods with this node's name and
//! write the container ids into the pod status themselves.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use k8s_openapi::api::{
    core::v1::{Namespace, Pod, ServiceAccount},
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    discovery::ApiResource,
};
use serde_json::{Value, json};

use super::{Agent, Layout, TestCgroup, apiserver::ApiServer};

pub const NODE: &str = "test-node";
pub const AGENT_NAMESPACE: &str = "guardrails";
pub const AGENT_ACCOUNT: &str = "guardrails-agent";

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The API server and a kubeconfig for the agent's service account, bound
/// to the project's ClusterRole.
pub struct Cluster {
    pub server: ApiServer,
    pub admin: Client,
    pub kubeconfig: PathBuf,
    pub rt: tokio::runtime::Runtime,
}

impl Cluster {
    pub fn start() -> Option<Self> {
        let rt = runtime();
        let server = rt.block_on(ApiServer::start())?;
        let admin = rt.block_on(server.admin_client());
        let token = rt.block_on(grant_agent_role(&admin, &server));
        let kubeconfig = server.kubeconfig(&token);
        Some(Self {
            server,
            admin,
            kubeconfig,
            rt,
        })
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The agent, scoped to the pods' cgroups (the `kubepods.slice` above
    /// `cgroup`), reading pods with its service account.
    pub fn agent(&self, cgroup: &TestCgroup, rules: Option<&Path>) -> Agent {
        self.agent_with(cgroup, rules, "")
    }

    /// As [`Cluster::agent`], with `tail` appended to the config.
    pub fn agent_with(&self, cgroup: &TestCgroup, rules: Option<&Path>, tail: &str) -> Agent {
        let pods_slice = cgroup
            .path
            .ancestors()
            .find(|p| p.ends_with("kubepods.slice"))
            .expect("a containerd cgroup under kubepods.slice");
        let scope = [format!("{:?}", pods_slice.display().to_string())];
        let rules = rules.map_or(String::new(), |path| {
            format!(
                "rules:\n  defaults: false\n  files: [{:?}]\n",
                path.display().to_string()
            )
        });
        let config = format!(
            "apiVersion: guardrails.dev/v1alpha1\nscope:\n  cgroups: [{}]\ntransport:\n  wakeup_bytes: 0\n  drain_interval_ms: 20\nmetrics:\n  address: 127.0.0.1:0\nkubernetes:\n  mode: required\n  kubeconfig: {:?}\n  pod_wait_ms: 2000\n  deleted_grace_ms: 1500\n{rules}{tail}",
            scope.join(", "),
            self.kubeconfig.display().to_string(),
        );
        Agent::start_with_env(&config, &[("KUBECONFIG", None)])
    }
}

/// Creates the agent's namespace, service account and the ClusterRole from
/// `deploy/rbac/`, binds them, and returns a token for the account.
pub async fn grant_agent_role(admin: &Client, server: &ApiServer) -> String {
    create_namespace(admin, AGENT_NAMESPACE, BTreeMap::new()).await;
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": AGENT_ACCOUNT}})).expect("an account");
    Api::<ServiceAccount>::namespaced(admin.clone(), AGENT_NAMESPACE)
        .create(&PostParams::default(), &account)
        .await
        .expect("create the agent's service account");
    let role_file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rbac/agent-clusterrole.yaml");
    let text = std::fs::read_to_string(&role_file).expect("read the ClusterRole");
    let role: ClusterRole = serde_yaml::from_str(&text).expect("a ClusterRole");
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("create the ClusterRole");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "guardrails-agent"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "guardrails-agent"},
        "subjects": [{"kind": "ServiceAccount", "name": AGENT_ACCOUNT, "namespace": AGENT_NAMESPACE}]
    }))
    .expect("a binding");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("create the binding");
    server
        .service_account_token(AGENT_NAMESPACE, AGENT_ACCOUNT)
        .await
}

pub async fn create_namespace(admin: &Client, name: &str, labels: BTreeMap<String, String>) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("ns");
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create a namespace");
}

/// Creates an object of any kind from JSON, returning its UID.
pub async fn create(
    admin: &Client,
    namespace: &str,
    api_version: &str,
    kind: &str,
    plural: &str,
    object: Value,
) -> String {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let mut object = object;
    object["apiVersion"] = api_version.into();
    object["kind"] = kind.into();
    let object: DynamicObject = serde_json::from_value(object).expect("an object");
    let created = Api::<DynamicObject>::namespaced_with(admin.clone(), namespace, &resource)
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create {kind}: {e}"));
    created.metadata.uid.expect("a UID")
}

pub fn owner(api_version: &str, kind: &str, name: &str, uid: &str) -> Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": true}])
}

/// Creates a pod on `node`, makes a cgroup named for its first container
/// (containerd, systemd driver) and writes that container's id into the pod
/// status, as the kubelet would once the container runs.
pub async fn create_pod(
    admin: &Client,
    namespace: &str,
    name: &str,
    node: &str,
    metadata: Value,
    spec: Value,
) -> (String, TestCgroup) {
    let uid = create_pod_only(admin, namespace, name, node, metadata, spec).await;
    let cgroup = cgroup_for_pod(&uid);
    report_container(admin, namespace, name, &cgroup).await;
    (uid, cgroup)
}

/// Creates a pod on `node` with no container status yet.
pub async fn create_pod_only(
    admin: &Client,
    namespace: &str,
    name: &str,
    node: &str,
    metadata: Value,
    spec: Value,
) -> String {
    let mut pod = json!({"metadata": metadata, "spec": spec});
    pod["metadata"]["name"] = name.into();
    pod["spec"]["nodeName"] = node.into();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), namespace);
    let created = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(pod).expect("a Pod"),
        )
        .await
        .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
    created.metadata.uid.expect("a UID")
}

/// Writes the container id of `cgroup` into the status of pod `name`'s
/// first container.
pub async fn report_container(admin: &Client, namespace: &str, name: &str, cgroup: &TestCgroup) {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), namespace);
    let pod = pods.get(name).await.expect("read the pod");
    let spec = pod.spec.expect("a spec");
    let first = &spec.containers[0];
    let image = first.image.clone().unwrap_or_default();
    let repository = image.split(':').next().unwrap_or_default().to_owned();
    let status = json!({"status": {"phase": "Running", "podIP": "10.1.2.3", "containerStatuses": [{
        "name": first.name, "image": image,
        "imageID": format!("docker.io/library/{repository}@sha256:{}", "ab".repeat(32)),
        "containerID": format!("containerd://{}", cgroup.container_id.as_deref().expect("a container cgroup")),
        "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("patch the status of {name}: {e}"));
}

/// A cgroup named for a container of pod `uid`.
pub fn cgroup_for_pod(uid: &str) -> TestCgroup {
    TestCgroup::with_pod_uid(Layout::Containerd, uid)
}
