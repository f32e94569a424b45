//! What the agent keeps of a Pod: plain data derived once per watch event,
//! so that the event path never looks into the API types.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, SecurityContext};

use crate::events::kubernetes::{BlastRadius, HostPathMount, KubeContainer, ObjectRef};

/// Where the kubelet mounts a service account's token.
const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A pod on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodMeta {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.nodeName`.
    pub node: Option<String>,
    /// `status.podIP`.
    pub ip: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.serviceAccountName`.
    pub service_account: Option<String>,
    /// The first controlling ownerReference, with its UID.
    pub owner: Option<(ObjectRef, String)>,
    /// Containers (init and ephemeral ones too), with the runtime's id once
    /// the status names it.
    pub containers: Vec<PodContainer>,
    /// The blast radius as far as the pod itself tells.
    pub exposure: BlastRadius,
}

/// A container of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodContainer {
    /// The runtime's container id, 64 hex, without the `containerd://`
    /// prefix; `None` until the kubelet reports it.
    pub id: Option<String>,
    /// What events carry.
    pub meta: KubeContainer,
}

impl PodMeta {
    /// Derives what the agent keeps from a Pod. `None` when the object has no
    /// UID, name or namespace (the API server always sets them).
    pub fn from_pod(pod: &Pod) -> Option<Self> {
        let metadata = &pod.metadata;
        let uid = metadata.uid.clone()?;
        let name = metadata.name.clone()?;
        let namespace = metadata.namespace.clone()?;
        let owner = metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| {
                (
                    ObjectRef {
                        api_version: o.api_version.clone(),
                        kind: o.kind.clone(),
                        name: o.name.clone(),
                    },
                    o.uid.clone(),
                )
            });
        let default_spec = PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&default_spec);
        let status = pod.status.as_ref();
        let containers = containers(pod, spec);
        Some(Self {
            uid,
            name,
            namespace,
            node: spec.node_name.clone(),
            ip: status.and_then(|s| s.pod_ip.clone()),
            labels: metadata.labels.clone().unwrap_or_default(),
            annotations: metadata.annotations.clone().unwrap_or_default(),
            service_account: spec.service_account_name.clone(),
            owner,
            exposure: exposure(spec, &containers),
            containers,
        })
    }

    /// The container with the runtime's id `id`.
    pub fn container(&self, id: &str) -> Option<&PodContainer> {
        self.containers.iter().find(|c| c.id.as_deref() == Some(id))
    }
}

/// Every container of the spec, joined with its status by name.
fn containers(pod: &Pod, spec: &PodSpec) -> Vec<PodContainer> {
    let status = pod.status.as_ref();
    let statuses = status
        .into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
                .chain(s.ephemeral_container_statuses.iter().flatten())
        })
        .map(|s| (s.name.as_str(), s))
        .collect::<BTreeMap<_, _>>();
    let specs = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| {
            (
                c.name.as_str(),
                c.image.as_deref(),
                privileged(c.security_context.as_ref()),
            )
        })
        .chain(spec.ephemeral_containers.iter().flatten().map(|c| {
            (
                c.name.as_str(),
                c.image.as_deref(),
                privileged(c.security_context.as_ref()),
            )
        }));
    specs
        .map(|(name, image, privileged)| {
            let status = statuses.get(name);
            PodContainer {
                id: status
                    .and_then(|s| s.container_id.as_deref())
                    .and_then(runtime_container_id),
                meta: KubeContainer {
                    name: name.to_owned(),
                    image: image
                        .map(str::to_owned)
                        .or_else(|| status.map(|s| s.image.clone()))
                        .unwrap_or_default(),
                    image_id: status
                        .map(|s| s.image_id.clone())
                        .filter(|id| !id.is_empty()),
                    privileged,
                },
            }
        })
        .collect()
}

/// `containerd://<id>`, `cri-o://<id>`, `docker://<id>` → `<id>`.
fn runtime_container_id(text: &str) -> Option<String> {
    let id = text.rsplit_once("://").map_or(text, |(_, id)| id);
    (!id.is_empty()).then(|| id.to_ascii_lowercase())
}

fn privileged(context: Option<&SecurityContext>) -> bool {
    context.and_then(|c| c.privileged).unwrap_or(false)
}

/// The blast radius the pod's spec alone gives.
fn exposure(spec: &PodSpec, containers: &[PodContainer]) -> BlastRadius {
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let volumes = spec.volumes.iter().flatten();

    let mut host_paths: BTreeMap<String, bool> = BTreeMap::new();
    let mut secrets = BTreeSet::new();
    let mut config_maps = BTreeSet::new();
    let mut token_volumes = BTreeSet::new();
    for volume in volumes {
        if let Some(host) = &volume.host_path {
            let read_only = all
                .iter()
                .flat_map(|c| c.volume_mounts.iter().flatten())
                .filter(|m| m.name == volume.name)
                .all(|m| m.read_only == Some(true));
            host_paths.insert(host.path.clone(), read_only);
        }
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.insert(name);
        }
        if let Some(map) = &volume.config_map {
            config_maps.insert(map.name.clone());
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(secret) = &source.secret {
                secrets.insert(secret.name.clone());
            }
            if let Some(map) = &source.config_map {
                config_maps.insert(map.name.clone());
            }
            if source.service_account_token.is_some() {
                token_volumes.insert(volume.name.clone());
            }
        }
    }
    for container in &all {
        for from in container.env_from.iter().flatten() {
            if let Some(secret) = &from.secret_ref {
                secrets.insert(secret.name.clone());
            }
            if let Some(map) = &from.config_map_ref {
                config_maps.insert(map.name.clone());
            }
        }
        for source in container
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value_from.as_ref())
        {
            if let Some(key) = &source.secret_key_ref {
                secrets.insert(key.name.clone());
            }
            if let Some(key) = &source.config_map_key_ref {
                config_maps.insert(key.name.clone());
            }
        }
    }
    let token_mounted = all
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .any(|m| m.mount_path == TOKEN_MOUNT_PATH || token_volumes.contains(&m.name));

    let added_capabilities: BTreeSet<String> = all
        .iter()
        .filter_map(|c| c.security_context.as_ref())
        .filter_map(|s| s.capabilities.as_ref())
        .flat_map(|c| c.add.iter().flatten().cloned())
        .collect();

    let pod_context = spec.security_context.as_ref();
    let runs_as_root = all.iter().any(|c| {
        let context = c.security_context.as_ref();
        let user = context
            .and_then(|s| s.run_as_user)
            .or_else(|| pod_context.and_then(|p| p.run_as_user));
        let non_root = context
            .and_then(|s| s.run_as_non_root)
            .or_else(|| pod_context.and_then(|p| p.run_as_non_root))
            .unwrap_or(false);
        match user {
            Some(uid) => uid == 0,
            None => !non_root,
        }
    });

    BlastRadius {
        privileged: containers.iter().any(|c| c.meta.privileged),
        host_pid: spec.host_pid.unwrap_or(false),
        host_network: spec.host_network.unwrap_or(false),
        host_ipc: spec.host_ipc.unwrap_or(false),
        host_paths: host_paths
            .into_iter()
            .map(|(path, read_only)| HostPathMount { path, read_only })
            .collect(),
        added_capabilities: added_capabilities.into_iter().collect(),
        runs_as_root,
        service_account: spec.service_account_name.clone(),
        service_account_token_mounted: token_mounted,
        secrets: secrets.into_iter().collect(),
        config_maps: config_maps.into_iter().collect(),
        cluster: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("a valid Pod")
    }

    #[test]
    fn a_pods_containers_are_keyed_by_the_runtime_id_without_its_scheme() {
        let id = "ab".repeat(32);
        let meta = PodMeta::from_pod(&pod(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-5d8", "uid": "rs-1", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "nginx:1.27"}]},
            "status": {"containerStatuses": [{"name": "app", "containerID": format!("containerd://{id}"),
                "image": "docker.io/library/nginx:1.27", "imageID": "docker.io/library/nginx@sha256:00",
                "ready": true, "restartCount": 0}]}
        })))
        .expect("complete metadata");
        let container = meta.container(&id).expect("found by id");
        assert_eq!(container.meta.name, "app");
        assert_eq!(container.meta.image, "nginx:1.27");
        assert_eq!(
            container.meta.image_id.as_deref(),
            Some("docker.io/library/nginx@sha256:00")
        );
        let (owner, owner_uid) = meta.owner.expect("controller");
        assert_eq!(
            (owner.kind.as_str(), owner_uid.as_str()),
            ("ReplicaSet", "rs-1")
        );
    }

    #[test]
    fn the_exposure_lists_host_paths_capabilities_secrets_and_the_token() {
        let meta = PodMeta::from_pod(&pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {
                "hostNetwork": true,
                "serviceAccountName": "builder",
                "securityContext": {"runAsNonRoot": true},
                "containers": [{"name": "a", "image": "i",
                    "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "SYS_PTRACE"]}},
                    "envFrom": [{"configMapRef": {"name": "settings"}}],
                    "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "api-key", "key": "k"}}}],
                    "volumeMounts": [
                        {"name": "docker", "mountPath": "/var/run/docker.sock"},
                        {"name": "logs", "mountPath": "/logs", "readOnly": true},
                        {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]}],
                "volumes": [
                    {"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}},
                    {"name": "logs", "hostPath": {"path": "/var/log"}},
                    {"name": "tls", "secret": {"secretName": "web-tls"}},
                    {"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]
            }
        })))
        .expect("complete metadata");
        let e = &meta.exposure;
        assert!(e.privileged && e.host_network && !e.host_pid && !e.host_ipc);
        assert_eq!(
            e.host_paths,
            vec![
                HostPathMount {
                    path: "/var/log".into(),
                    read_only: true
                },
                HostPathMount {
                    path: "/var/run/docker.sock".into(),
                    read_only: false
                },
            ]
        );
        assert_eq!(e.added_capabilities, ["NET_ADMIN", "SYS_PTRACE"]);
        assert_eq!(e.secrets, ["api-key", "web-tls"]);
        assert_eq!(e.config_maps, ["settings"]);
        assert!(e.service_account_token_mounted);
        assert!(
            !e.runs_as_root,
            "runAsNonRoot on the pod covers the container"
        );
        assert_eq!(e.service_account.as_deref(), Some("builder"));
    }

    #[test]
    fn a_container_without_a_user_may_run_as_root_and_one_with_uid_zero_does() {
        let unset = PodMeta::from_pod(&pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [{"name": "a", "image": "i"}]}
        })))
        .expect("complete metadata");
        assert!(unset.exposure.runs_as_root);
        assert!(!unset.exposure.service_account_token_mounted);
        let nonroot = PodMeta::from_pod(&pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"securityContext": {"runAsUser": 1000},
                "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i",
                    "securityContext": {"runAsUser": 0}}]}
        })))
        .expect("complete metadata");
        assert!(
            nonroot.exposure.runs_as_root,
            "container b overrides the pod's user"
        );
    }
}
