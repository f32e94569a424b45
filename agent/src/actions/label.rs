//! `label`: mark the pod through the kube API, so that a NetworkPolicy that
//! selects the label, or the team that owns the workload, can act.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

/// The annotation that names the rule whose violation labelled the pod.
pub const VIOLATION_ANNOTATION: &str = "guardrails.dev/violation";

/// Why a pod could not be labelled.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The API server refused or failed.
    #[error("patching pod {namespace}/{pod}")]
    Patch {
        /// The pod's namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// What the client said.
        #[source]
        source: kube::Error,
    },
    /// The API server did not answer in time.
    #[error("patching pod {namespace}/{pod}: no answer within {timeout:?}")]
    Timeout {
        /// The pod's namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// How long it waited.
        timeout: Duration,
    },
}

/// What to put on a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marks {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Merges `marks` into the pod's labels and annotations; other labels stay.
pub async fn label_pod(
    client: Client,
    namespace: &str,
    pod: &str,
    marks: &Marks,
    timeout: Duration,
) -> Result<(), LabelError> {
    let patch = serde_json::json!({
        "metadata": {
            "labels": marks.labels,
            "annotations": marks.annotations,
        }
    });
    let api = Api::<Pod>::namespaced(client, namespace);
    let params = PatchParams::default();
    match tokio::time::timeout(
        timeout,
        api.patch_metadata(pod, &params, &Patch::Merge(&patch)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(LabelError::Patch {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            source,
        }),
        Err(_) => Err(LabelError::Timeout {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            timeout,
        }),
    }
}
