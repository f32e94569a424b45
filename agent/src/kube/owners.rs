//! From a pod's controller to its workload: the owner chain followed with
//! metadata-only reads, one per object the agent has not met before.
//!
//! Each hop reads the owner named by an ownerReference with the apiVersion
//! and kind it gives, so any API version the cluster serves works (CronJob
//! as `batch/v1beta1` on old clusters, `batch/v1` on new ones) and no
//! cluster-wide watch of ReplicaSets or Jobs is needed. Results are cached
//! by the owner's UID, which never changes: a ReplicaSet read once serves
//! every pod it makes.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use kube::{
    Api, Client,
    api::DynamicObject,
    core::{GroupVersion, params::GetParams},
    discovery::{ApiCapabilities, ApiResource, Scope},
};

use super::{KubeError, metrics::KubeMetrics};
use crate::events::kubernetes::ObjectRef;

/// Owner chains longer than this are cut (no built-in chain has more than
/// two hops).
const MAX_HOPS: usize = 4;

/// Resolved workloads kept, by the UID of the pod's controller.
const MAX_CACHED: usize = 4096;

/// How long a failed resolution is not retried.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Kinds whose owner is never read: the node of a static pod's mirror.
const TERMINAL_KINDS: &[&str] = &["Node"];

/// API resources by apiVersion and kind, found by discovery of one group
/// version each.
#[derive(Debug, Default)]
pub struct Kinds {
    known: HashMap<(String, String), (ApiResource, ApiCapabilities)>,
}

impl Kinds {
    /// The resource of `kind` in `api_version`, discovered once.
    pub async fn resource(
        &mut self,
        client: &Client,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, ApiCapabilities), KubeError> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(found) = self.known.get(&key) {
            return Ok(found.clone());
        }
        let gv: GroupVersion = api_version.parse().map_err(|_| KubeError::BadApiVersion {
            api_version: api_version.to_owned(),
        })?;
        let found = kube::discovery::pinned_kind(client, &gv.with_kind(kind))
            .await
            .map_err(|source| KubeError::Api {
                what: format!("discovering {kind} in {api_version}"),
                source,
            })?;
        self.known.insert(key, found.clone());
        Ok(found)
    }

    /// An API for `resource` in `namespace` (or cluster-wide).
    pub fn api(
        client: &Client,
        namespace: &str,
        (resource, caps): &(ApiResource, ApiCapabilities),
    ) -> Api<DynamicObject> {
        match caps.scope {
            Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, resource),
            Scope::Cluster => Api::all_with(client.clone(), resource),
        }
    }
}

#[derive(Debug)]
enum Cached {
    Resolved(ObjectRef),
    Failed(Instant),
}

/// Follows owner chains for the pod watcher.
pub struct OwnerResolver {
    client: Client,
    kinds: Kinds,
    cache: HashMap<String, Cached>,
    metrics: Arc<KubeMetrics>,
}

impl std::fmt::Debug for OwnerResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerResolver")
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl OwnerResolver {
    /// A resolver with an empty cache.
    pub fn new(client: Client, metrics: Arc<KubeMetrics>) -> Self {
        Self {
            client,
            kinds: Kinds::default(),
            cache: HashMap::new(),
            metrics,
        }
    }

    /// The workload of a pod in `namespace` whose controller is `owner` (with
    /// UID `owner_uid`): the last object of the chain. `None` when the chain
    /// cannot be read now (retried after a while).
    pub async fn workload(
        &mut self,
        namespace: &str,
        owner: &ObjectRef,
        owner_uid: &str,
    ) -> Option<ObjectRef> {
        match self.cache.get(owner_uid) {
            Some(Cached::Resolved(workload)) => return Some(workload.clone()),
            Some(Cached::Failed(at)) if at.elapsed() < RETRY_AFTER => return None,
            _ => {}
        }
        let result = self.follow(namespace, owner).await;
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        match result {
            Ok(workload) => {
                self.cache
                    .insert(owner_uid.to_owned(), Cached::Resolved(workload.clone()));
                Some(workload)
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    namespace,
                    kind = %owner.kind,
                    name = %owner.name,
                    "cannot follow a pod's owner chain now; retrying later"
                );
                self.cache
                    .insert(owner_uid.to_owned(), Cached::Failed(Instant::now()));
                None
            }
        }
    }

    /// Reads each owner's metadata until one has no controller. An owner the
    /// agent may not read (a kind its RBAC does not cover, such as a custom
    /// controller's) ends the chain there.
    async fn follow(&mut self, namespace: &str, owner: &ObjectRef) -> Result<ObjectRef, KubeError> {
        let mut current = owner.clone();
        for _ in 0..MAX_HOPS {
            if TERMINAL_KINDS.contains(&current.kind.as_str()) {
                break;
            }
            let resource = self
                .kinds
                .resource(&self.client, &current.api_version, &current.kind)
                .await?;
            let api = Kinds::api(&self.client, namespace, &resource);
            self.metrics.count_request("owner_get");
            let meta = match api
                .get_metadata_with(&current.name, &GetParams::any())
                .await
            {
                Ok(meta) => meta,
                Err(kube::Error::Api(status)) if status.code == 403 || status.code == 404 => {
                    tracing::debug!(kind = %current.kind, name = %current.name, code = status.code,
                        "owner not readable; the chain ends here");
                    break;
                }
                Err(source) => {
                    return Err(KubeError::Api {
                        what: format!("reading {} {namespace}/{}", current.kind, current.name),
                        source,
                    });
                }
            };
            let next = meta
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true));
            match next {
                Some(next) => {
                    current = ObjectRef {
                        api_version: next.api_version.clone(),
                        kind: next.kind.clone(),
                        name: next.name.clone(),
                    }
                }
                None => break,
            }
        }
        Ok(current)
    }
}
