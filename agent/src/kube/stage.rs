//! The pipeline step that gives events of a pod's container their
//! `kubernetes` section, between the reader and the rules.
//!
//! The stage owns the pod index and applies the watches' updates between
//! batches. An event whose pod (or container, whose id the pod's status
//! names a moment after it starts) is not known yet is parked, with the
//! later events of its container behind it, until the watch brings it or
//! the wait runs out; it then goes out marked `unresolved` and is counted.
//! Other containers' events pass meanwhile, so one slow pod never holds up
//! the node. Each container waits at most once.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;

use super::{
    index::{Lookup, PodIndex},
    metrics::KubeMetrics,
    watch::Update,
};
use crate::events::{Event, event::ContainerInfo, kubernetes::Kubernetes};

/// Events parked at once; beyond it the oldest container's events go out
/// without waiting longer.
const MAX_PARKED: usize = 16_384;

/// Containers remembered as having waited.
const MAX_WAITED: usize = 16_384;

/// How often deleted pods are expired and sizes published.
const HOUSEKEEPING: Duration = Duration::from_millis(500);

/// How the stage waits.
#[derive(Clone, Copy, Debug)]
pub struct StageOptions {
    /// How long an event waits for its pod.
    pub pod_wait: Duration,
}

#[derive(Debug)]
struct Parked {
    until: Instant,
    events: Vec<Event>,
}

/// The stage's state.
#[derive(Debug)]
struct Stage {
    index: PodIndex,
    options: StageOptions,
    /// Events waiting, by container id.
    parked: HashMap<String, Parked>,
    parked_events: usize,
    /// When each container began to wait; a container waits only once.
    waited: HashMap<String, Instant>,
    unresolved: Arc<Kubernetes>,
    metrics: Arc<KubeMetrics>,
}

/// Runs the stage until `input` closes; everything parked then goes out.
pub async fn run(
    mut input: mpsc::Receiver<Vec<Event>>,
    output: mpsc::Sender<Vec<Event>>,
    mut updates: mpsc::Receiver<Update>,
    index: PodIndex,
    options: StageOptions,
    metrics: Arc<KubeMetrics>,
) {
    let mut stage = Stage {
        index,
        options,
        parked: HashMap::new(),
        parked_events: 0,
        waited: HashMap::new(),
        unresolved: Arc::new(Kubernetes::unresolved()),
        metrics,
    };
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut updates_open = true;
    loop {
        let next_deadline = stage.parked.values().map(|p| p.until).min();
        let released = tokio::select! {
            biased;
            update = updates.recv(), if updates_open => {
                match update {
                    Some(update) => {
                        stage.apply(update);
                        // Drain what else is queued before looking again.
                        while let Ok(update) = updates.try_recv() {
                            stage.apply(update);
                        }
                        stage.release_known()
                    }
                    None => {
                        updates_open = false;
                        Vec::new()
                    }
                }
            }
            () = sleep_until(next_deadline) => stage.release_expired(Instant::now()),
            _ = housekeeping.tick() => {
                stage.index.expire(Instant::now());
                stage.metrics.set_index(stage.index.stats());
                stage.metrics.set_parked(stage.parked_events);
                Vec::new()
            }
            batch = input.recv() => match batch {
                Some(batch) => stage.annotate(batch, Instant::now()),
                None => break,
            },
        };
        if !released.is_empty() && output.send(released).await.is_err() {
            return;
        }
    }
    let rest = stage.release_expired(Instant::now() + options.pod_wait * 2);
    if !rest.is_empty() {
        let _ = output.send(rest).await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl Stage {
    fn apply(&mut self, update: Update) {
        let now = Instant::now();
        match update {
            Update::PodsRelisting => self.index.begin_relist(),
            Update::PodApplied(entry) => self.index.apply(entry),
            Update::PodDeleted { uid } => self.index.delete(&uid, now),
            Update::PodsListed => self.index.finish_relist(now),
            Update::NamespacesRelisting => self.index.begin_namespace_relist(),
            Update::NamespaceApplied { name, labels } => self.index.set_namespace(name, labels),
            Update::NamespaceDeleted { name } => self.index.remove_namespace(&name),
            Update::NamespacesListed => self.index.finish_namespace_relist(),
        }
    }

    /// Gives the batch's events their section; returns what can go now.
    fn annotate(&mut self, batch: Vec<Event>, now: Instant) -> Vec<Event> {
        let mut ready = Vec::with_capacity(batch.len());
        for mut event in batch {
            let Some(info) = pod_container(&event) else {
                ready.push(event);
                continue;
            };
            let (Some(container_id), Some(pod_uid)) = (info.id.as_deref(), info.pod_uid.as_deref())
            else {
                ready.push(event);
                continue;
            };
            if let Some(parked) = self.parked.get_mut(container_id) {
                parked.events.push(event);
                self.parked_events += 1;
                self.metrics.count_waited(1);
                continue;
            }
            match self.index.lookup(container_id, pod_uid) {
                Lookup::Found(section) => {
                    event.kubernetes = Some(section);
                    ready.push(event);
                }
                lookup => {
                    let began = *self.waited.entry(container_id.to_owned()).or_insert(now);
                    let until = began + self.options.pod_wait;
                    if now < until && self.parked_events < MAX_PARKED {
                        self.parked_events += 1;
                        self.metrics.count_waited(1);
                        self.parked.insert(
                            container_id.to_owned(),
                            Parked {
                                until,
                                events: vec![event],
                            },
                        );
                    } else {
                        self.settle(&mut event, lookup);
                        ready.push(event);
                    }
                }
            }
        }
        if self.waited.len() > MAX_WAITED {
            self.waited.retain(|id, _| self.parked.contains_key(id));
        }
        ready
    }

    /// Events whose pod and container became known.
    fn release_known(&mut self) -> Vec<Event> {
        let known: Vec<String> = self
            .parked
            .iter()
            .filter(|(id, parked)| {
                parked
                    .events
                    .first()
                    .and_then(pod_container)
                    .and_then(|info| info.pod_uid.clone())
                    .is_some_and(|uid| matches!(self.index.lookup(id, &uid), Lookup::Found(_)))
            })
            .map(|(id, _)| id.clone())
            .collect();
        self.release(known)
    }

    /// Events whose wait ran out by `now`.
    fn release_expired(&mut self, now: Instant) -> Vec<Event> {
        let expired: Vec<String> = self
            .parked
            .iter()
            .filter(|(_, parked)| parked.until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        self.release(expired)
    }

    fn release(&mut self, containers: Vec<String>) -> Vec<Event> {
        let mut out = Vec::new();
        for id in containers {
            let Some(parked) = self.parked.remove(&id) else {
                continue;
            };
            self.parked_events -= parked.events.len();
            for mut event in parked.events {
                let lookup = match pod_container(&event) {
                    Some(info) => match (info.id.as_deref(), info.pod_uid.as_deref()) {
                        (Some(container), Some(uid)) => self.index.lookup(container, uid),
                        _ => Lookup::Missing,
                    },
                    None => Lookup::Missing,
                };
                self.settle(&mut event, lookup);
                out.push(event);
            }
        }
        self.metrics.set_parked(self.parked_events);
        out
    }

    /// The section of an event that waits no longer.
    fn settle(&self, event: &mut Event, lookup: Lookup) {
        event.kubernetes = Some(match lookup {
            Lookup::Found(section) | Lookup::PodOnly(section) => section,
            Lookup::Missing => {
                self.metrics.count_unresolved(1);
                self.unresolved.clone()
            }
        });
    }
}

/// The container of an event when it is in a pod: the cgroup names the
/// container id and pod UID. Runtime monitors (conmon) are not the workload
/// and get no pod section.
fn pod_container(event: &Event) -> Option<Arc<ContainerInfo>> {
    event
        .container
        .clone()
        .filter(|c| !c.monitor && c.id.is_some() && c.pod_uid.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        events::{EventKind, event::WallTime, kubernetes::PodStatus},
        kube::{
            index::{IndexLimits, test_entry},
            metrics::KubeMetrics,
        },
    };

    fn event(container: &str, pod: &str) -> Event {
        let mut event = Event::new(
            EventKind::ProcessExec,
            WallTime(std::time::SystemTime::UNIX_EPOCH),
            1,
            "n1".into(),
        );
        event.container = Some(Arc::new(ContainerInfo {
            kind: "container".into(),
            id: Some(container.into()),
            pod_uid: Some(pod.into()),
            ..ContainerInfo::default()
        }));
        event
    }

    #[tokio::test]
    async fn an_event_waits_for_its_pod_and_others_pass_meanwhile() {
        let (input_tx, input) = mpsc::channel(8);
        let (output, mut output_rx) = mpsc::channel(8);
        let (updates_tx, updates) = mpsc::channel(8);
        let metrics = Arc::new(KubeMetrics::default());
        let index = PodIndex::new(IndexLimits {
            max_pods: 8,
            max_namespaces: 8,
            deleted_grace: Duration::from_secs(1),
        });
        let stage = tokio::spawn(run(
            input,
            output,
            updates,
            index,
            StageOptions {
                pod_wait: Duration::from_millis(300),
            },
            metrics.clone(),
        ));
        for update in [Update::NamespacesRelisting, Update::NamespacesListed] {
            updates_tx.send(update).await.expect("stage runs");
        }
        let host = Event::new(
            EventKind::ProcessExec,
            WallTime(std::time::SystemTime::UNIX_EPOCH),
            2,
            "n1".into(),
        );
        input_tx
            .send(vec![event("c1", "u1"), host, event("c2", "u2")])
            .await
            .expect("stage runs");
        let passed = output_rx.recv().await.expect("a batch");
        assert_eq!(passed.len(), 1, "the host event passes at once");
        assert!(passed[0].kubernetes.is_none());

        updates_tx
            .send(Update::PodApplied(test_entry("u1", Some("c1"))))
            .await
            .expect("stage runs");
        let released = output_rx.recv().await.expect("a batch");
        let section = released[0].kubernetes.as_ref().expect("a section");
        assert_eq!(section.status, PodStatus::Resolved);
        assert_eq!(section.pod.as_deref(), Some("pod-u1"));

        let timed_out = output_rx.recv().await.expect("a batch");
        let section = timed_out[0].kubernetes.as_ref().expect("a section");
        assert_eq!(section.status, PodStatus::Unresolved);

        input_tx
            .send(vec![event("c2", "u2")])
            .await
            .expect("stage runs");
        let again = output_rx.recv().await.expect("a batch");
        assert_eq!(
            again[0].kubernetes.as_ref().map(|k| k.status),
            Some(PodStatus::Unresolved),
            "a container waits only once"
        );
        drop(input_tx);
        stage.await.expect("the stage ends when its input closes");
        let mut text = String::new();
        metrics.render(&mut text);
        assert!(
            text.contains("guardrails_kube_events_unresolved_total 2"),
            "{text}"
        );
    }
}
