//! The blast radius of violations: what the pod's spec says (computed when
//! the pod is watched) completed with what the cluster says around it, the
//! Services and NetworkPolicies that select it and how far its workload
//! spreads.
//!
//! The cluster part is read only when a violation is raised, with one list
//! of Services and one of NetworkPolicies per namespace, and one read of the
//! workload and one label-selected list of its pods per workload, each cached
//! for `ttl` and never asked again sooner, failed or not. A request that
//! takes longer than `timeout` leaves `cluster` out of that violation.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{
        core::v1::{Pod, Service},
        networking::v1::NetworkPolicy,
    },
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};
use kube::{Api, Client, api::ListParams};
use tokio::sync::mpsc;

use super::{metrics::KubeMetrics, owners::Kinds};
use crate::events::{
    Event,
    kubernetes::{ClusterReach, Kubernetes, ObjectRef, PodStatus, ServiceRef},
};

/// Namespaces and workloads cached at most.
const MAX_CACHED: usize = 1024;

/// Labels that differ between pods of one workload and so cannot find the
/// others.
const INSTANCE_LABELS: &[&str] = &[
    "pod-template-hash",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
    "batch.kubernetes.io/job-completion-index",
];

/// How fresh the cluster part is and how long it may take.
#[derive(Clone, Copy, Debug)]
pub struct BlastOptions {
    /// How long what was read is used, and how long a namespace or workload
    /// is not asked again.
    pub ttl: Duration,
    /// How long one violation waits for the API server.
    pub timeout: Duration,
}

#[derive(Debug)]
struct Cached<T> {
    at: Instant,
    value: Option<T>,
}

#[derive(Clone, Debug)]
struct NamespaceObjects {
    services: Vec<(ServiceRef, BTreeMap<String, String>)>,
    policies: Vec<(String, LabelSelector)>,
}

#[derive(Clone, Copy, Debug)]
struct WorkloadSpread {
    replicas: Option<i64>,
    pods: Option<u64>,
    nodes: Option<u64>,
}

/// The cluster-side cache, owned by the blast-radius stage.
pub struct ClusterView {
    client: Client,
    options: BlastOptions,
    kinds: Kinds,
    namespaces: HashMap<String, Cached<NamespaceObjects>>,
    workloads: HashMap<(String, ObjectRef), Cached<WorkloadSpread>>,
    metrics: Arc<KubeMetrics>,
}

impl std::fmt::Debug for ClusterView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterView")
            .field("options", &self.options)
            .field("namespaces", &self.namespaces.len())
            .field("workloads", &self.workloads.len())
            .finish_non_exhaustive()
    }
}

/// Completes the blast radius of each violation until `input` closes.
pub async fn run(
    mut input: mpsc::Receiver<Vec<Event>>,
    output: mpsc::Sender<Vec<Event>>,
    mut view: ClusterView,
) {
    while let Some(mut batch) = input.recv().await {
        for event in &mut batch {
            view.complete(event).await;
        }
        if output.send(batch).await.is_err() {
            return;
        }
    }
}

impl ClusterView {
    /// A view with empty caches.
    pub fn new(client: Client, options: BlastOptions, metrics: Arc<KubeMetrics>) -> Self {
        Self {
            client,
            options,
            kinds: Kinds::default(),
            namespaces: HashMap::new(),
            workloads: HashMap::new(),
            metrics,
        }
    }

    /// Adds the blast radius to a violation in a known pod.
    pub async fn complete(&mut self, event: &mut Event) {
        let Some(section) = event.kubernetes.clone() else {
            return;
        };
        let Some(violation) = event.violation.as_mut() else {
            return;
        };
        if section.status != PodStatus::Resolved {
            return;
        }
        let Some(exposure) = section.exposure.as_deref() else {
            return;
        };
        let mut radius = exposure.clone();
        radius.cluster = match tokio::time::timeout(self.options.timeout, self.reach(&section))
            .await
        {
            Ok(reach) => reach,
            Err(_) => {
                tracing::warn!(
                    pod = section.pod.as_deref().unwrap_or_default(),
                    "the API server did not answer in time; the violation's blast radius has no cluster part"
                );
                None
            }
        };
        violation.blast_radius = Some(Box::new(radius));
        self.metrics
            .set_blast_cache(self.namespaces.len() + self.workloads.len());
    }

    async fn reach(&mut self, section: &Kubernetes) -> Option<ClusterReach> {
        let namespace = section.namespace.as_deref()?;
        let objects = self.namespace_objects(namespace).await?;
        let labels = &section.labels;
        let services: Vec<ServiceRef> = objects
            .services
            .iter()
            .filter(|(_, selector)| {
                !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .map(|(service, _)| service.clone())
            .collect();
        let network_policies: Vec<String> = objects
            .policies
            .iter()
            .filter(|(_, selector)| selects(selector, labels))
            .map(|(name, _)| name.clone())
            .collect();
        let spread = match &section.workload {
            Some(workload) => self.workload_spread(namespace, workload, labels).await,
            None => None,
        };
        Some(ClusterReach {
            exposed_outside_cluster: services
                .iter()
                .any(|s| s.kind == "NodePort" || s.kind == "LoadBalancer"),
            services,
            network_unrestricted: network_policies.is_empty(),
            network_policies,
            workload_replicas: spread.and_then(|s| s.replicas),
            workload_pods: spread.and_then(|s| s.pods),
            workload_nodes: spread.and_then(|s| s.nodes),
        })
    }

    async fn namespace_objects(&mut self, namespace: &str) -> Option<NamespaceObjects> {
        if let Some(cached) = self.namespaces.get(namespace)
            && cached.at.elapsed() < self.options.ttl
        {
            return cached.value.clone();
        }
        let value = self.list_namespace(namespace).await;
        if self.namespaces.len() >= MAX_CACHED {
            self.namespaces.clear();
        }
        self.namespaces.insert(
            namespace.to_owned(),
            Cached {
                at: Instant::now(),
                value: value.clone(),
            },
        );
        value
    }

    async fn list_namespace(&self, namespace: &str) -> Option<NamespaceObjects> {
        let params = ListParams::default().match_any();
        self.metrics.count_request("services_list");
        let services = Api::<Service>::namespaced(self.client.clone(), namespace)
            .list(&params)
            .await
            .map_err(|e| tracing::warn!(error = %e, namespace, "cannot list Services"))
            .ok()?;
        self.metrics.count_request("network_policies_list");
        let policies = Api::<NetworkPolicy>::namespaced(self.client.clone(), namespace)
            .list(&params)
            .await
            .map_err(|e| tracing::warn!(error = %e, namespace, "cannot list NetworkPolicies"))
            .ok()?;
        Some(NamespaceObjects {
            services: services
                .items
                .into_iter()
                .filter_map(|s| {
                    let spec = s.spec?;
                    Some((
                        ServiceRef {
                            name: s.metadata.name?,
                            kind: spec.type_.unwrap_or_else(|| "ClusterIP".into()),
                        },
                        spec.selector.unwrap_or_default(),
                    ))
                })
                .collect(),
            policies: policies
                .items
                .into_iter()
                .filter_map(|p| Some((p.metadata.name?, p.spec?.pod_selector.unwrap_or_default())))
                .collect(),
        })
    }

    async fn workload_spread(
        &mut self,
        namespace: &str,
        workload: &ObjectRef,
        labels: &BTreeMap<String, String>,
    ) -> Option<WorkloadSpread> {
        let key = (namespace.to_owned(), workload.clone());
        if let Some(cached) = self.workloads.get(&key)
            && cached.at.elapsed() < self.options.ttl
        {
            return cached.value;
        }
        let value = self.read_workload(namespace, workload, labels).await;
        if self.workloads.len() >= MAX_CACHED {
            self.workloads.clear();
        }
        self.workloads.insert(
            key,
            Cached {
                at: Instant::now(),
                value,
            },
        );
        value
    }

    /// The workload's replicas from its status, and its pods and their
    /// nodes from one list selected by the workload's selector (or, for
    /// kinds without one, the pod's labels that all its siblings share).
    async fn read_workload(
        &mut self,
        namespace: &str,
        workload: &ObjectRef,
        labels: &BTreeMap<String, String>,
    ) -> Option<WorkloadSpread> {
        let resource = self
            .kinds
            .resource(&self.client, &workload.api_version, &workload.kind)
            .await
            .map_err(|e| tracing::warn!(error = %e, "cannot find the workload's API"))
            .ok();
        let object = match &resource {
            Some(resource) => {
                self.metrics.count_request("workload_get");
                Kinds::api(&self.client, namespace, resource)
                    .get(&workload.name)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, kind = %workload.kind, name = %workload.name,
                            "cannot read the workload")
                    })
                    .ok()
            }
            None => None,
        };
        let data = object.as_ref().map(|o| &o.data);
        let replicas = data.and_then(|d| {
            let status = d.get("status")?;
            status
                .get("replicas")
                .or_else(|| status.get("desiredNumberScheduled"))
                .and_then(serde_json::Value::as_i64)
                .or_else(|| {
                    status
                        .get("active")
                        .and_then(serde_json::Value::as_array)
                        .map(|a| a.len() as i64)
                })
        });
        let selector = data
            .and_then(|d| d.get("spec")?.get("selector").cloned())
            .and_then(|s| serde_json::from_value::<LabelSelector>(s).ok())
            .map(|s| selector_text(&s))
            .unwrap_or_else(|| {
                labels
                    .iter()
                    .filter(|(k, _)| !INSTANCE_LABELS.contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            });
        let (pods, nodes) = if selector.is_empty() {
            (None, None)
        } else {
            self.metrics.count_request("workload_pods_list");
            match Api::<Pod>::namespaced(self.client.clone(), namespace)
                .list(&ListParams::default().labels(&selector).match_any())
                .await
            {
                Ok(list) => {
                    let nodes = list
                        .items
                        .iter()
                        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
                        .collect::<BTreeSet<_>>();
                    (Some(list.items.len() as u64), Some(nodes.len() as u64))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the workload's pods");
                    (None, None)
                }
            }
        };
        Some(WorkloadSpread {
            replicas,
            pods,
            nodes,
        })
    }
}

/// Whether a label selector selects a pod with `labels`; the empty selector
/// selects every pod.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let equal = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    equal && expressions
}

/// A label selector in the query syntax of `labelSelector=`.
fn selector_text(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(json: serde_json::Value) -> LabelSelector {
        serde_json::from_value(json).expect("a valid selector")
    }

    #[test]
    fn an_empty_selector_selects_every_pod_and_expressions_narrow_it() {
        let labels = BTreeMap::from([
            ("app".into(), "web".into()),
            ("tier".into(), "front".into()),
        ]);
        assert!(selects(&LabelSelector::default(), &labels));
        assert!(selects(
            &selector(serde_json::json!({"matchLabels": {"app": "web"}})),
            &labels
        ));
        assert!(!selects(
            &selector(serde_json::json!({"matchLabels": {"app": "db"}})),
            &labels
        ));
        let expr = selector(serde_json::json!({"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            {"key": "canary", "operator": "DoesNotExist"}]}));
        assert!(selects(&expr, &labels));
        let not_in = selector(serde_json::json!({"matchExpressions": [
            {"key": "tier", "operator": "NotIn", "values": ["front"]}]}));
        assert!(!selects(&not_in, &labels));
    }

    #[test]
    fn a_selector_renders_in_query_syntax() {
        let s = selector(
            serde_json::json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"}]}),
        );
        assert_eq!(selector_text(&s), "app=web,tier in (a,b),!canary");
    }
}
