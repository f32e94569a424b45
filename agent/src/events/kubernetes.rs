//! The Kubernetes sections of the event schema: who a container is in the
//! cluster (`kubernetes`, on every event of a pod's container) and what the
//! pod can reach (`blast_radius`, on violations).
//!
//! How each field is derived is documented in `docs/kubernetes.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Whether the pod of an event's container was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodStatus {
    /// The pod is known; the fields below describe it.
    Resolved,
    /// The container's cgroup names a pod that the agent did not learn of
    /// within the wait (or that was deleted longer ago than the grace
    /// period); only the node's view (container id, pod UID) is known.
    Unresolved,
}

/// The pod, workload and container of an event, from the kube API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kubernetes {
    /// Whether the fields below are filled.
    pub status: PodStatus,
    /// The pod's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The pod's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The pod's UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The node the pod is scheduled on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The pod's IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The pod's labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The pod's annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The namespace's labels (where team ownership usually lives).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_labels: BTreeMap<String, String>,
    /// The pod's service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// The pod's controller (its first controlling ownerReference), such as
    /// a ReplicaSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ObjectRef>,
    /// The top of the owner chain: the Deployment of a ReplicaSet, the
    /// CronJob of a Job, or the owner itself; absent for a bare pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<ObjectRef>,
    /// The container the process runs in, when the pod's status names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<KubeContainer>,
    /// The pod's blast radius as its spec gives it, kept for violations
    /// (which carry it in their own section), not serialized here.
    #[serde(skip)]
    pub exposure: Option<std::sync::Arc<BlastRadius>>,
}

impl Kubernetes {
    /// The section of an event whose pod was not found.
    pub fn unresolved() -> Self {
        Self {
            status: PodStatus::Unresolved,
            pod: None,
            namespace: None,
            uid: None,
            node: None,
            ip: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            namespace_labels: BTreeMap::new(),
            service_account: None,
            owner: None,
            workload: None,
            container: None,
            exposure: None,
        }
    }
}

/// A Kubernetes object named by an ownerReference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    /// `apps/v1`, `batch/v1beta1`, ...
    pub api_version: String,
    /// `Deployment`, `ReplicaSet`, `CronJob`, ...
    pub kind: String,
    /// The object's name (in the pod's namespace).
    pub name: String,
}

/// A container of a pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeContainer {
    /// The container's name in the pod spec.
    pub name: String,
    /// The image as the spec gives it (`nginx:1.27`, `repo/app@sha256:…`).
    pub image: String,
    /// The image the runtime resolved, with its digest, from the pod status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The container runs privileged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
}

/// What a pod can reach and how far a compromise of it spreads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlastRadius {
    /// Some container is privileged.
    pub privileged: bool,
    /// The pod shares the node's PID namespace.
    pub host_pid: bool,
    /// The pod shares the node's network namespace.
    pub host_network: bool,
    /// The pod shares the node's IPC namespace.
    pub host_ipc: bool,
    /// Node paths mounted into the pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_paths: Vec<HostPathMount>,
    /// Capabilities some container adds to the runtime's default set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_capabilities: Vec<String>,
    /// Some container runs as root: `runAsUser: 0`, or no user set and no
    /// `runAsNonRoot` (the image's user decides, root in most images).
    pub runs_as_root: bool,
    /// The pod's service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// The service account's token is mounted into some container.
    pub service_account_token_mounted: bool,
    /// Secrets the pod mounts or reads into its environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// ConfigMaps the pod mounts or reads into its environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_maps: Vec<String>,
    /// What the cluster says around the pod; absent when the API could not
    /// be asked in time (the fields above come from the pod alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterReach>,
}

/// A hostPath volume as mounted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPathMount {
    /// The path on the node.
    pub path: String,
    /// Every mount of the volume is read-only.
    pub read_only: bool,
}

/// The part of the blast radius that needs other objects than the pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterReach {
    /// Services whose selector matches the pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceRef>,
    /// Some selecting Service is NodePort or LoadBalancer: reachable from
    /// outside the cluster.
    pub exposed_outside_cluster: bool,
    /// NetworkPolicies whose podSelector matches the pod. None means its
    /// traffic is unrestricted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_policies: Vec<String>,
    /// No NetworkPolicy selects the pod.
    pub network_unrestricted: bool,
    /// The workload's replicas, from its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_replicas: Option<i64>,
    /// The workload's pods that exist now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_pods: Option<u64>,
    /// The nodes those pods run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_nodes: Option<u64>,
}

/// A Service that selects the pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRef {
    /// The Service's name.
    pub name: String,
    /// `ClusterIP`, `NodePort`, `LoadBalancer`, `ExternalName`.
    #[serde(rename = "type")]
    pub kind: String,
}
