//! The two watches: this node's pods (field selector on `spec.nodeName`) and
//! namespaces (metadata only, for their labels). Each runs in its own task,
//! retries with backoff when the API server goes away, and sends what it
//! learns to the enrichment stage, which owns the index.
//!
//! Both list from the API server's watch cache (`resourceVersion=0`), not
//! from etcd, so that thousands of agents starting at once cost the server
//! little.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{
    Api, Client,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    index::PodEntry,
    metrics::{KubeMetrics, Watched},
    owners::OwnerResolver,
    pod::PodMeta,
};

/// Annotations not kept: large and of no use to a rule or an alert.
const DROPPED_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// How often pods whose workload could not be resolved are tried again.
const OWNER_RETRY: Duration = Duration::from_secs(10);

/// What the watches tell the enrichment stage.
#[derive(Debug)]
pub enum Update {
    /// The pod watch (re)started; a full list follows.
    PodsRelisting,
    /// A pod was added or changed.
    PodApplied(PodEntry),
    /// A pod was deleted.
    PodDeleted {
        /// Its UID.
        uid: String,
    },
    /// The pod list is complete.
    PodsListed,
    /// The namespace watch (re)started.
    NamespacesRelisting,
    /// A namespace was added or its labels changed.
    NamespaceApplied {
        /// Its name.
        name: String,
        /// Its labels.
        labels: BTreeMap<String, String>,
    },
    /// A namespace was deleted.
    NamespaceDeleted {
        /// Its name.
        name: String,
    },
    /// The namespace list is complete.
    NamespacesListed,
}

/// Watches the pods of `node` until `shutdown`.
pub async fn pods(
    client: Client,
    node: String,
    updates: mpsc::Sender<Update>,
    metrics: Arc<KubeMetrics>,
    shutdown: CancellationToken,
) {
    let api: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default()
        .fields(&format!("spec.nodeName={node}"))
        .any_semantic();
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut owners = OwnerResolver::new(client, metrics.clone());
    // Pods whose workload is not resolved yet, by UID.
    let mut unresolved: BTreeMap<String, Arc<PodMeta>> = BTreeMap::new();
    let mut retry = tokio::time::interval(OWNER_RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = retry.tick() => {
                let pending = std::mem::take(&mut unresolved);
                for meta in pending.into_values() {
                    let entry = entry(&mut owners, meta, &mut unresolved).await;
                    if updates.send(Update::PodApplied(entry)).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            event = stream.try_next() => event,
        };
        let update = match event {
            Ok(Some(event)) => {
                if !metrics.set_watch_up(Watched::Pods, true) {
                    tracing::info!("pod watch resumed");
                }
                match event {
                    watcher::Event::Init => {
                        metrics.count_relist(Watched::Pods);
                        Update::PodsRelisting
                    }
                    watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                        let Some(meta) = PodMeta::from_pod(&pod) else {
                            continue;
                        };
                        let meta = Arc::new(trim(meta));
                        unresolved.remove(&meta.uid);
                        Update::PodApplied(entry(&mut owners, meta, &mut unresolved).await)
                    }
                    watcher::Event::Delete(pod) => {
                        let Some(uid) = pod.metadata.uid else {
                            continue;
                        };
                        unresolved.remove(&uid);
                        Update::PodDeleted { uid }
                    }
                    watcher::Event::InitDone => {
                        metrics.set_synced(Watched::Pods);
                        tracing::info!(node, "pod watch synced");
                        Update::PodsListed
                    }
                }
            }
            Ok(None) => return,
            Err(e) => {
                metrics.set_watch_up(Watched::Pods, false);
                tracing::warn!(error = %e, "pod watch failed; the cache is kept and the watch retried");
                continue;
            }
        };
        if updates.send(update).await.is_err() {
            return;
        }
    }
}

/// The pod with its workload, or without it (remembered for a retry) when
/// the owner chain cannot be read now.
async fn entry(
    owners: &mut OwnerResolver,
    meta: Arc<PodMeta>,
    unresolved: &mut BTreeMap<String, Arc<PodMeta>>,
) -> PodEntry {
    let workload = match &meta.owner {
        None => None,
        Some((owner, owner_uid)) => {
            let workload = owners.workload(&meta.namespace, owner, owner_uid).await;
            if workload.is_none() {
                unresolved.insert(meta.uid.clone(), meta.clone());
            }
            workload
        }
    };
    PodEntry { meta, workload }
}

fn trim(mut meta: PodMeta) -> PodMeta {
    for key in DROPPED_ANNOTATIONS {
        meta.annotations.remove(*key);
    }
    meta
}

/// Watches namespaces' metadata until `shutdown`.
pub async fn namespaces(
    client: Client,
    updates: mpsc::Sender<Update>,
    metrics: Arc<KubeMetrics>,
    shutdown: CancellationToken,
) {
    // Metadata only: labels are all the agent needs of a namespace.
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
    let config = watcher::Config::default().any_semantic();
    let mut stream = watcher(api, config).default_backoff().boxed();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = stream.try_next() => event,
        };
        let update = match event {
            Ok(Some(event)) => {
                if !metrics.set_watch_up(Watched::Namespaces, true) {
                    tracing::info!("namespace watch resumed");
                }
                match event {
                    watcher::Event::Init => {
                        metrics.count_relist(Watched::Namespaces);
                        Update::NamespacesRelisting
                    }
                    watcher::Event::InitApply(ns) | watcher::Event::Apply(ns) => {
                        let Some(name) = ns.metadata.name else {
                            continue;
                        };
                        Update::NamespaceApplied {
                            name,
                            labels: ns.metadata.labels.unwrap_or_default(),
                        }
                    }
                    watcher::Event::Delete(ns) => {
                        let Some(name) = ns.metadata.name else {
                            continue;
                        };
                        Update::NamespaceDeleted { name }
                    }
                    watcher::Event::InitDone => {
                        metrics.set_synced(Watched::Namespaces);
                        Update::NamespacesListed
                    }
                }
            }
            Ok(None) => return,
            Err(e) => {
                metrics.set_watch_up(Watched::Namespaces, false);
                tracing::warn!(error = %e, "namespace watch failed; the cache is kept and the watch retried");
                continue;
            }
        };
        if updates.send(update).await.is_err() {
            return;
        }
    }
}
