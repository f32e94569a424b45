//! Pod identity from the kube API: which pod, namespace, workload and
//! container an event came from, and what the pod can reach.
//!
//! - [`watch`]: this node's pods (field selector on `spec.nodeName`) and the
//!   namespaces' labels, each in a task that retries with backoff;
//! - [`owners`]: pod controller → workload, with metadata-only reads;
//! - [`index`]: pods by container id and UID, kept by the enrichment stage;
//! - [`stage`]: the pipeline step that adds the `kubernetes` section;
//! - [`blast`]: the blast radius of violations;
//! - [`pod`]: what is kept of a Pod.
//!
//! Without a cluster (no kubeconfig, no in-cluster config) the agent runs
//! standalone: events carry what the node knows (container id, runtime, pod
//! UID from the cgroup) and the agent says once that pod metadata is off.
//! `docs/kubernetes.md` lists every field, how it is derived, the requests
//! made per node and the RBAC they need.

pub mod blast;
pub mod crd;
pub mod index;
pub mod metrics;
pub mod owners;
pub mod pod;
pub mod rulesets;
pub mod stage;
pub mod watch;

use std::{sync::Arc, time::Duration};

use kube::Client;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{KubeMode, KubernetesConfig},
    logging::error_chain,
};

/// Watch updates queued for the enrichment stage.
const UPDATE_QUEUE: usize = 1024;

/// What can go wrong talking to the API server.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No usable configuration was found, or it is invalid.
    #[error("no usable Kubernetes client configuration")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The client could not be built from the configuration.
    #[error("cannot build the Kubernetes client")]
    Client(#[source] kube::Error),
    /// A request failed.
    #[error("{what}")]
    Api {
        /// What was asked.
        what: String,
        /// What the client or server said.
        #[source]
        source: kube::Error,
    },
    /// An ownerReference named an apiVersion that does not parse.
    #[error("bad apiVersion `{api_version}` in an ownerReference")]
    BadApiVersion {
        /// The value.
        api_version: String,
    },
}

/// The client, when the agent runs with a cluster; `None` when standalone.
pub async fn connect(config: &KubernetesConfig) -> Result<Option<Client>, KubeError> {
    if config.mode == KubeMode::Off {
        tracing::info!(
            "pod metadata is off (kubernetes.mode: off): events carry the node's container data only"
        );
        return Ok(None);
    }
    let client_config = match &config.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| KubeError::Config(Box::new(e)))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| KubeError::Config(Box::new(e)))
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeError::Config(Box::new(e))),
    };
    let client_config = match client_config {
        Ok(c) => c,
        Err(e) if config.mode == KubeMode::Auto && config.kubeconfig.is_none() => {
            tracing::info!(
                reason = %error_chain(&e),
                "pod metadata is off: no kubeconfig and not in a cluster; events carry the node's \
                 container data (container id, runtime, pod UID) only"
            );
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    tracing::info!(server = %client_config.cluster_url, "pod metadata from the kube API");
    Client::try_from(client_config)
        .map(Some)
        .map_err(KubeError::Client)
}

/// Starts the watches, the enrichment stage between `decoded` and
/// `enriched`, and the blast-radius stage between `matched` and `completed`.
/// Each stage ends when its input closes, after passing on what it holds.
#[expect(clippy::too_many_arguments, reason = "one call wires the pipeline")]
pub fn spawn(
    client: Client,
    config: &KubernetesConfig,
    node: &str,
    decoded: mpsc::Receiver<Vec<crate::events::Event>>,
    enriched: mpsc::Sender<Vec<crate::events::Event>>,
    matched: mpsc::Receiver<Vec<crate::events::Event>>,
    completed: mpsc::Sender<Vec<crate::events::Event>>,
    metrics: Arc<metrics::KubeMetrics>,
    shutdown: CancellationToken,
) {
    metrics.set_enabled();
    let (updates_tx, updates_rx) = mpsc::channel(UPDATE_QUEUE);
    tokio::spawn(watch::pods(
        client.clone(),
        node.to_owned(),
        updates_tx.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(watch::namespaces(
        client.clone(),
        updates_tx,
        metrics.clone(),
        shutdown,
    ));
    let index = index::PodIndex::new(index::IndexLimits {
        max_pods: usize::try_from(config.max_pods.0).unwrap_or(usize::MAX),
        max_namespaces: usize::try_from(config.max_namespaces.0).unwrap_or(usize::MAX),
        deleted_grace: Duration::from_millis(config.deleted_grace_ms),
    });
    tokio::spawn(stage::run(
        decoded,
        enriched,
        updates_rx,
        index,
        stage::StageOptions {
            pod_wait: Duration::from_millis(config.pod_wait_ms),
        },
        metrics.clone(),
    ));
    let view = blast::ClusterView::new(
        client,
        blast::BlastOptions {
            ttl: Duration::from_millis(config.blast_cache_ttl_ms),
            timeout: Duration::from_millis(config.request_timeout_ms.0),
        },
        metrics,
    );
    tokio::spawn(blast::run(matched, completed, view));
}
