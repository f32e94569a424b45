//! The pods of this node and the labels of their namespaces, as the watches
//! report them, looked up by container id and pod UID.
//!
//! A pod that is deleted (or missing from a relist after the watch was
//! interrupted) stays resolvable for a grace period: its containers' last
//! processes still make events while they are being stopped.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use super::pod::PodMeta;
use crate::events::kubernetes::{Kubernetes, ObjectRef, PodStatus};

/// Limits of the index.
#[derive(Clone, Copy, Debug)]
pub struct IndexLimits {
    /// Pods kept, deleted ones in their grace period included. A node runs
    /// at most a few hundred.
    pub max_pods: usize,
    /// Namespaces whose labels are kept.
    pub max_namespaces: usize,
    /// How long a deleted pod still resolves.
    pub deleted_grace: Duration,
}

/// A pod and the workload its owner chain leads to.
#[derive(Clone, Debug)]
pub struct PodEntry {
    /// The pod.
    pub meta: Arc<PodMeta>,
    /// The top of its owner chain, when resolved.
    pub workload: Option<ObjectRef>,
}

#[derive(Debug)]
struct Slot {
    entry: PodEntry,
    /// When a deleted pod stops resolving.
    deleted_at: Option<Instant>,
    /// The event section per container id (`""`: the pod without a known
    /// container), built on first use.
    sections: HashMap<String, Arc<Kubernetes>>,
}

/// What the index says about an event's container.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// The pod and the container are known.
    Found(Arc<Kubernetes>),
    /// The pod is known, but not yet its container (whose status lags its
    /// start) or its namespace's labels (whose watch has not listed yet):
    /// worth waiting for, since the mode and the team come from them.
    PodOnly(Arc<Kubernetes>),
    /// The pod is not known.
    Missing,
}

/// Sizes and overflows, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Pods kept, deleted ones in their grace period included.
    pub pods: usize,
    /// Of those, deleted.
    pub deleted: usize,
    /// Namespaces whose labels are kept.
    pub namespaces: usize,
    /// Pods or namespaces not kept because the index was full.
    pub overflows: u64,
}

/// Pods by UID and container id, and namespace labels.
#[derive(Debug)]
pub struct PodIndex {
    limits: IndexLimits,
    pods: HashMap<String, Slot>,
    containers: HashMap<String, String>,
    namespaces: HashMap<String, Arc<BTreeMap<String, String>>>,
    /// UIDs listed since the pod watch (re)started, until its list is done.
    relisting: Option<HashSet<String>>,
    /// Namespaces listed since the namespace watch (re)started.
    relisting_namespaces: Option<HashSet<String>>,
    /// Whether the namespace watch has listed once: before, a namespace
    /// missing from the table may merely not have arrived yet.
    namespaces_listed: bool,
    overflows: u64,
}

impl PodIndex {
    /// An empty index.
    pub fn new(limits: IndexLimits) -> Self {
        Self {
            limits,
            pods: HashMap::new(),
            containers: HashMap::new(),
            namespaces: HashMap::new(),
            relisting: None,
            relisting_namespaces: None,
            namespaces_listed: false,
            overflows: 0,
        }
    }

    /// A pod was added or changed.
    pub fn apply(&mut self, entry: PodEntry) {
        let uid = entry.meta.uid.clone();
        if let Some(listed) = self.relisting.as_mut() {
            listed.insert(uid.clone());
        }
        if !self.pods.contains_key(&uid) && self.pods.len() >= self.limits.max_pods {
            self.overflows += 1;
            tracing::warn!(
                pod = %entry.meta.name,
                namespace = %entry.meta.namespace,
                max = self.limits.max_pods,
                "the pod index is full; this pod's events carry no pod metadata"
            );
            return;
        }
        self.unlink_containers(&uid);
        for id in entry.meta.containers.iter().filter_map(|c| c.id.clone()) {
            self.containers.insert(id, uid.clone());
        }
        self.pods.insert(
            uid,
            Slot {
                entry,
                deleted_at: None,
                sections: HashMap::new(),
            },
        );
    }

    /// A pod was deleted: it resolves for the grace period still.
    pub fn delete(&mut self, uid: &str, now: Instant) {
        if let Some(slot) = self.pods.get_mut(uid)
            && slot.deleted_at.is_none()
        {
            slot.deleted_at = Some(now);
        }
    }

    /// The pod watch (re)started: a full list follows.
    pub fn begin_relist(&mut self) {
        self.relisting = Some(HashSet::new());
    }

    /// The list is complete: pods it did not name were deleted meanwhile.
    pub fn finish_relist(&mut self, now: Instant) {
        let Some(listed) = self.relisting.take() else {
            return;
        };
        for (uid, slot) in &mut self.pods {
            if !listed.contains(uid) && slot.deleted_at.is_none() {
                slot.deleted_at = Some(now);
            }
        }
    }

    /// A namespace's labels were listed or changed.
    pub fn set_namespace(&mut self, name: String, labels: BTreeMap<String, String>) {
        if let Some(listed) = self.relisting_namespaces.as_mut() {
            listed.insert(name.clone());
        }
        if !self.namespaces.contains_key(&name)
            && self.namespaces.len() >= self.limits.max_namespaces
        {
            self.overflows += 1;
            return;
        }
        if self.namespaces.get(&name).is_some_and(|l| **l == labels) {
            return;
        }
        self.namespaces.insert(name.clone(), Arc::new(labels));
        self.forget_sections(|meta| meta.namespace == name);
    }

    /// A namespace was deleted.
    pub fn remove_namespace(&mut self, name: &str) {
        if self.namespaces.remove(name).is_some() {
            self.forget_sections(|meta| meta.namespace == name);
        }
    }

    /// The namespace watch (re)started.
    pub fn begin_namespace_relist(&mut self) {
        self.relisting_namespaces = Some(HashSet::new());
    }

    /// The namespace list is complete.
    pub fn finish_namespace_relist(&mut self) {
        if let Some(listed) = self.relisting_namespaces.take() {
            self.namespaces_listed = true;
            let gone: Vec<String> = self
                .namespaces
                .keys()
                .filter(|n| !listed.contains(*n))
                .cloned()
                .collect();
            for name in gone {
                self.remove_namespace(&name);
            }
        }
    }

    /// Drops deleted pods whose grace period is over.
    pub fn expire(&mut self, now: Instant) {
        let grace = self.limits.deleted_grace;
        let expired: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, slot)| {
                slot.deleted_at
                    .is_some_and(|at| now.saturating_duration_since(at) >= grace)
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in expired {
            self.unlink_containers(&uid);
            self.pods.remove(&uid);
        }
    }

    /// The section for an event of container `container_id` in pod
    /// `pod_uid` (both from the container's cgroup).
    pub fn lookup(&mut self, container_id: &str, pod_uid: &str) -> Lookup {
        let uid = match self.containers.get(container_id) {
            Some(uid) => uid.clone(),
            None => pod_uid.to_owned(),
        };
        let Some(slot) = self.pods.get_mut(&uid) else {
            return Lookup::Missing;
        };
        let known = slot.entry.meta.container(container_id).is_some();
        let key = if known { container_id } else { "" };
        let namespace_known =
            self.namespaces_listed || self.namespaces.contains_key(&slot.entry.meta.namespace);
        let section = match slot.sections.get(key) {
            Some(section) => section.clone(),
            None => {
                let labels = self
                    .namespaces
                    .get(&slot.entry.meta.namespace)
                    .map(|l| (**l).clone())
                    .unwrap_or_default();
                let section = Arc::new(section(&slot.entry, container_id, labels));
                slot.sections.insert(key.to_owned(), section.clone());
                section
            }
        };
        if known && namespace_known {
            Lookup::Found(section)
        } else {
            Lookup::PodOnly(section)
        }
    }

    /// The pod with UID `uid`, deleted ones in their grace period included.
    pub fn pod(&self, uid: &str) -> Option<&PodEntry> {
        self.pods.get(uid).map(|slot| &slot.entry)
    }

    /// The labels of namespace `name`, when listed.
    pub fn namespace_labels(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(name).map(|l| &**l)
    }

    /// Sizes and overflows.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            pods: self.pods.len(),
            deleted: self
                .pods
                .values()
                .filter(|s| s.deleted_at.is_some())
                .count(),
            namespaces: self.namespaces.len(),
            overflows: self.overflows,
        }
    }

    fn unlink_containers(&mut self, uid: &str) {
        if let Some(old) = self.pods.get(uid) {
            for id in old
                .entry
                .meta
                .containers
                .iter()
                .filter_map(|c| c.id.as_ref())
            {
                if self.containers.get(id).is_some_and(|owner| owner == uid) {
                    self.containers.remove(id);
                }
            }
        }
    }

    fn forget_sections(&mut self, which: impl Fn(&PodMeta) -> bool) {
        for slot in self.pods.values_mut() {
            if which(&slot.entry.meta) {
                slot.sections.clear();
            }
        }
    }
}

fn section(
    entry: &PodEntry,
    container_id: &str,
    namespace_labels: BTreeMap<String, String>,
) -> Kubernetes {
    let meta = &entry.meta;
    Kubernetes {
        status: PodStatus::Resolved,
        pod: Some(meta.name.clone()),
        namespace: Some(meta.namespace.clone()),
        uid: Some(meta.uid.clone()),
        node: meta.node.clone(),
        ip: meta.ip.clone(),
        labels: meta.labels.clone(),
        annotations: meta.annotations.clone(),
        namespace_labels,
        service_account: meta.service_account.clone(),
        owner: meta.owner.as_ref().map(|(owner, _)| owner.clone()),
        workload: entry.workload.clone(),
        container: meta.container(container_id).map(|c| c.meta.clone()),
        exposure: Some(Arc::new(meta.exposure.clone())),
    }
}

/// A pod `pod-<uid>` in `shop` with one container `app`, for tests.
#[cfg(test)]
pub(crate) fn test_entry(uid: &str, container: Option<&str>) -> PodEntry {
    use super::pod::PodContainer;
    use crate::events::kubernetes::{BlastRadius, KubeContainer};
    PodEntry {
        meta: Arc::new(PodMeta {
            uid: uid.into(),
            name: format!("pod-{uid}"),
            namespace: "shop".into(),
            node: Some("n1".into()),
            ip: None,
            labels: BTreeMap::from([("app".into(), "web".into())]),
            annotations: BTreeMap::new(),
            service_account: None,
            owner: None,
            containers: vec![PodContainer {
                id: container.map(str::to_owned),
                meta: KubeContainer {
                    name: "app".into(),
                    image: "nginx".into(),
                    image_id: None,
                    privileged: false,
                },
            }],
            exposure: BlastRadius::default(),
        }),
        workload: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: IndexLimits = IndexLimits {
        max_pods: 3,
        max_namespaces: 2,
        deleted_grace: Duration::from_secs(10),
    };

    /// An index whose namespace watch has listed (no namespace).
    fn listed_index() -> PodIndex {
        let mut index = PodIndex::new(LIMITS);
        index.begin_namespace_relist();
        index.finish_namespace_relist();
        index
    }

    fn found(lookup: Lookup) -> Arc<Kubernetes> {
        match lookup {
            Lookup::Found(section) => section,
            other => panic!("expected Found, got {other:?}"),
        }
    }

    #[test]
    fn should_resolve_a_container_once_the_status_names_it() {
        let mut index = listed_index();
        index.apply(test_entry("u1", None));
        assert!(matches!(index.lookup("c1", "u1"), Lookup::PodOnly(_)));
        index.apply(test_entry("u1", Some("c1")));
        let section = found(index.lookup("c1", "u1"));
        assert_eq!(
            section.container.as_ref().map(|c| c.name.as_str()),
            Some("app")
        );
        assert!(
            matches!(index.lookup("c1", "other"), Lookup::Found(_)),
            "the id wins"
        );
        assert!(matches!(index.lookup("c2", "u2"), Lookup::Missing));
    }

    #[test]
    fn should_keep_a_deleted_pod_for_the_grace_period_only() {
        let mut index = listed_index();
        let t0 = Instant::now();
        index.apply(test_entry("u1", Some("c1")));
        index.delete("u1", t0);
        index.expire(t0 + Duration::from_secs(9));
        assert!(matches!(index.lookup("c1", "u1"), Lookup::Found(_)));
        index.expire(t0 + Duration::from_secs(10));
        assert!(matches!(index.lookup("c1", "u1"), Lookup::Missing));
        assert_eq!(index.stats().pods, 0);
    }

    #[test]
    fn should_treat_pods_missing_from_a_relist_as_deleted() {
        let mut index = listed_index();
        let t0 = Instant::now();
        index.apply(test_entry("u1", Some("c1")));
        index.apply(test_entry("u2", Some("c2")));
        index.begin_relist();
        index.apply(test_entry("u2", Some("c2")));
        index.finish_relist(t0);
        assert_eq!(index.stats().deleted, 1);
        index.expire(t0 + LIMITS.deleted_grace);
        assert!(matches!(index.lookup("c1", "u1"), Lookup::Missing));
        assert!(matches!(index.lookup("c2", "u2"), Lookup::Found(_)));
    }

    #[test]
    fn should_refresh_sections_when_namespace_labels_change() {
        let mut index = listed_index();
        index.apply(test_entry("u1", Some("c1")));
        index.set_namespace("shop".into(), BTreeMap::from([("team".into(), "a".into())]));
        assert_eq!(
            found(index.lookup("c1", "u1")).namespace_labels["team"],
            "a"
        );
        index.set_namespace("shop".into(), BTreeMap::from([("team".into(), "b".into())]));
        assert_eq!(
            found(index.lookup("c1", "u1")).namespace_labels["team"],
            "b"
        );
    }

    #[test]
    fn should_wait_for_the_namespace_labels_until_the_namespace_watch_has_listed() {
        let mut index = PodIndex::new(LIMITS);
        index.apply(test_entry("u1", Some("c1")));
        index.apply(test_entry("u2", Some("c2")));
        index.begin_namespace_relist();
        assert!(
            matches!(index.lookup("c1", "u1"), Lookup::PodOnly(_)),
            "the pod is known, its namespace's labels not yet"
        );
        index.set_namespace("shop".into(), BTreeMap::from([("team".into(), "a".into())]));
        assert_eq!(
            found(index.lookup("c1", "u1")).namespace_labels["team"],
            "a"
        );
        let mut other = test_entry("u3", Some("c3"));
        Arc::make_mut(&mut other.meta).namespace = "empty".into();
        index.apply(other);
        assert!(matches!(index.lookup("c3", "u3"), Lookup::PodOnly(_)));
        index.finish_namespace_relist();
        assert!(
            found(index.lookup("c3", "u3")).namespace_labels.is_empty(),
            "a namespace the list did not name has no labels"
        );
    }

    #[test]
    fn should_count_pods_beyond_its_capacity() {
        let mut index = listed_index();
        for uid in ["u1", "u2", "u3", "u4"] {
            index.apply(test_entry(uid, None));
        }
        assert_eq!(index.stats().pods, 3);
        assert_eq!(index.stats().overflows, 1);
    }
}
