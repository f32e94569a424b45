//! A stream's filter, checked in the hub for every event: every constraint
//! that is set must hold; within one, any value may match.

use std::collections::BTreeMap;

use proto::v1;
use rustc_hash::FxHashSet;

use crate::{
    events::{Event, EventKind},
    rules::Priority,
};

/// A compiled [`v1::EventFilter`]. The default passes everything.
///
/// The hub checks every stream's filter on every event, on the pipeline's
/// thread: kinds are a bit set, and names are hashed with FxHash rather than
/// SipHash (the sets hold a client's few values, so crafted event fields
/// cannot make long probe chains).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    kinds: Option<KindSet>,
    violations_only: bool,
    min_priority: Option<Priority>,
    rules: Option<FxHashSet<String>>,
    tags: Option<FxHashSet<String>>,
    namespaces: Option<FxHashSet<String>>,
    pods: Option<FxHashSet<String>>,
    pod_labels: BTreeMap<String, String>,
    workloads: Vec<String>,
    container_ids: Vec<String>,
    process_names: Option<FxHashSet<String>>,
    process_paths: Vec<String>,
    /// Some constraint is on the event's violation; computed once, as the
    /// hub asks for every event.
    wants_violation: bool,
    /// Some constraint is on the event's process, container or pod.
    checks_subject: bool,
}

/// Event kinds, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct KindSet(u32);

impl KindSet {
    fn bit(kind: EventKind) -> u32 {
        1 << kind as u32
    }

    fn contains(self, kind: EventKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }
}

impl FromIterator<EventKind> for KindSet {
    fn from_iter<I: IntoIterator<Item = EventKind>>(kinds: I) -> Self {
        Self(kinds.into_iter().fold(0, |set, kind| set | Self::bit(kind)))
    }
}

/// A filter value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// An event kind the agent does not have.
    #[error("unknown event kind {0:?}")]
    UnknownKind(String),
    /// A priority outside Falco's eight.
    #[error("unknown priority {0}")]
    UnknownPriority(i32),
    /// A container id prefix too short to be meaningful.
    #[error("container id {0:?} is shorter than 12 characters")]
    ShortContainerId(String),
}

fn set(values: Vec<String>) -> Option<FxHashSet<String>> {
    (!values.is_empty()).then(|| values.into_iter().collect())
}

impl Filter {
    /// Compiles a request's filter.
    pub fn new(filter: v1::EventFilter) -> Result<Self, FilterError> {
        let kinds = if filter.kinds.is_empty() {
            None
        } else {
            Some(
                filter
                    .kinds
                    .iter()
                    .map(|k| {
                        serde_json::from_value::<EventKind>(serde_json::Value::String(k.clone()))
                            .map_err(|_| FilterError::UnknownKind(k.clone()))
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
        let min_priority = match filter.min_priority {
            0 => None,
            n => Some(priority(n).ok_or(FilterError::UnknownPriority(n))?),
        };
        if let Some(short) = filter.container_ids.iter().find(|id| id.len() < 12) {
            return Err(FilterError::ShortContainerId(short.clone()));
        }
        let mut compiled = Self {
            kinds,
            violations_only: filter.violations_only,
            min_priority,
            rules: set(filter.rules),
            tags: set(filter.tags),
            namespaces: set(filter.namespaces),
            pods: set(filter.pods),
            pod_labels: filter.pod_labels.into_iter().collect(),
            workloads: filter.workloads,
            container_ids: filter.container_ids,
            process_names: set(filter.process_names),
            process_paths: filter.process_paths,
            wants_violation: false,
            checks_subject: false,
        };
        compiled.wants_violation = compiled.violations_only
            || compiled.min_priority.is_some()
            || compiled.rules.is_some()
            || compiled.tags.is_some();
        compiled.checks_subject = compiled.checks_pod()
            || !compiled.container_ids.is_empty()
            || compiled.checks_process();
        Ok(compiled)
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        self.matches_what(event) && (!self.checks_subject || self.matches_subject(event))
    }

    /// Whether `event` passes, the verdict on its process, container and
    /// pod taken from `last` when they are those of the event checked
    /// before (consecutive events of one thread share them), so that a
    /// batch's names are hashed and compared once per thread, not per event.
    /// `last` must only have seen events that are still alive.
    pub fn matches_after(&self, event: &Event, last: &mut LastSubject) -> bool {
        if !self.matches_what(event) {
            return false;
        }
        if !self.checks_subject {
            return true;
        }
        let subject = Subject::of(event);
        if let Some((seen, passed)) = last.0
            && seen == subject
        {
            return passed;
        }
        let passed = self.matches_subject(event);
        last.0 = Some((subject, passed));
        passed
    }

    /// Whether the filter passes every event.
    pub fn passes_everything(&self) -> bool {
        self.kinds.is_none() && !self.wants_violation && !self.checks_subject
    }

    /// The event's kind and violation.
    fn matches_what(&self, event: &Event) -> bool {
        if let Some(kinds) = &self.kinds
            && !kinds.contains(event.kind)
        {
            return false;
        }
        let violation = event.violation.as_deref();
        if self.wants_violation {
            let Some(violation) = violation else {
                return false;
            };
            if self
                .min_priority
                .is_some_and(|min| violation.priority > min)
            {
                return false;
            }
            if self
                .rules
                .as_ref()
                .is_some_and(|r| !r.contains(&violation.rule))
            {
                return false;
            }
            if self
                .tags
                .as_ref()
                .is_some_and(|t| !violation.tags.iter().any(|tag| t.contains(tag)))
            {
                return false;
            }
        }
        true
    }

    /// Some constraint is on the event's pod.
    fn checks_pod(&self) -> bool {
        self.namespaces.is_some()
            || self.pods.is_some()
            || !self.pod_labels.is_empty()
            || !self.workloads.is_empty()
    }

    /// Some constraint is on the event's process.
    fn checks_process(&self) -> bool {
        self.process_names.is_some() || !self.process_paths.is_empty()
    }

    /// The event's process, container and pod.
    fn matches_subject(&self, event: &Event) -> bool {
        if self.checks_pod() {
            let Some(pod) = event.kubernetes.as_deref() else {
                return false;
            };
            if let Some(namespaces) = &self.namespaces
                && !pod
                    .namespace
                    .as_ref()
                    .is_some_and(|n| namespaces.contains(n))
            {
                return false;
            }
            if let Some(pods) = &self.pods
                && !pod.pod.as_ref().is_some_and(|p| pods.contains(p))
            {
                return false;
            }
            if !self
                .pod_labels
                .iter()
                .all(|(k, v)| pod.labels.get(k) == Some(v))
            {
                return false;
            }
            if !self.workloads.is_empty() {
                let Some(workload) = pod.workload.as_ref() else {
                    return false;
                };
                let matched = self.workloads.iter().any(|w| match w.split_once('/') {
                    Some((kind, name)) => workload.kind == kind && workload.name == name,
                    None => workload.name == *w,
                });
                if !matched {
                    return false;
                }
            }
        }
        if !self.container_ids.is_empty() {
            let Some(id) = event.container.as_deref().and_then(|c| c.id.as_deref()) else {
                return false;
            };
            if !self
                .container_ids
                .iter()
                .any(|want| id.starts_with(want.as_str()))
            {
                return false;
            }
        }
        if self.checks_process() {
            let Some(process) = event.process.as_ref() else {
                return false;
            };
            if let Some(names) = &self.process_names
                && !names.contains(process.comm.as_str())
            {
                return false;
            }
            if !self.process_paths.is_empty() {
                let Some(exe) = process.exe.as_deref() else {
                    return false;
                };
                let matched = self.process_paths.iter().any(|p| {
                    if p.ends_with('/') {
                        exe.starts_with(p.as_str())
                    } else {
                        exe == p
                    }
                });
                if !matched {
                    return false;
                }
            }
        }
        true
    }
}

/// The process, container and pod sections of an event, by address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Subject([usize; 3]);

impl Subject {
    fn of(event: &Event) -> Self {
        fn address<T>(section: Option<&std::sync::Arc<T>>) -> usize {
            section.map_or(0, |s| std::sync::Arc::as_ptr(s) as usize)
        }
        Self([
            address(event.process.as_ref()),
            address(event.container.as_ref()),
            address(event.kubernetes.as_ref()),
        ])
    }
}

/// A filter's verdict on the subject of the event it checked last (see
/// [`Filter::matches_after`]).
#[derive(Debug, Default)]
pub struct LastSubject(Option<(Subject, bool)>);

/// The API's priority number as the rule engine's priority.
pub fn priority(number: i32) -> Option<Priority> {
    Some(match v1::Priority::try_from(number).ok()? {
        v1::Priority::Unspecified => return None,
        v1::Priority::Debug => Priority::Debug,
        v1::Priority::Informational => Priority::Informational,
        v1::Priority::Notice => Priority::Notice,
        v1::Priority::Warning => Priority::Warning,
        v1::Priority::Error => Priority::Error,
        v1::Priority::Critical => Priority::Critical,
        v1::Priority::Alert => Priority::Alert,
        v1::Priority::Emergency => Priority::Emergency,
    })
}

/// The rule engine's priority as the API's.
pub fn priority_number(priority: Priority) -> v1::Priority {
    match priority {
        Priority::Debug => v1::Priority::Debug,
        Priority::Informational => v1::Priority::Informational,
        Priority::Notice => v1::Priority::Notice,
        Priority::Warning => v1::Priority::Warning,
        Priority::Error => v1::Priority::Error,
        Priority::Critical => v1::Priority::Critical,
        Priority::Alert => v1::Priority::Alert,
        Priority::Emergency => v1::Priority::Emergency,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::events::{
        event::{ContainerInfo, Process, Violation, WallTime},
        kubernetes::{Kubernetes, ObjectRef, PodStatus},
    };

    fn event(kind: EventKind, namespace: &str, priority: Option<Priority>) -> Event {
        let mut event = Event::new(
            kind,
            WallTime(std::time::SystemTime::UNIX_EPOCH),
            1,
            "n1".into(),
        );
        event.process = Some(Arc::new(Process {
            comm: "curl".into(),
            exe: Some("/usr/bin/curl".into()),
            ..Process::default()
        }));
        event.container = Some(Arc::new(ContainerInfo {
            kind: "container".into(),
            id: Some("0123456789ab".repeat(5) + "cdef"),
            ..ContainerInfo::default()
        }));
        event.kubernetes = Some(Arc::new(Kubernetes {
            status: PodStatus::Resolved,
            pod: Some("web-1".into()),
            namespace: Some(namespace.into()),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            workload: Some(ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "web".into(),
            }),
            ..Kubernetes::unresolved()
        }));
        event.violation = priority.map(|priority| {
            Box::new(Violation {
                rule: "Shell".into(),
                priority,
                tags: ["shell".to_owned()].into(),
                output: String::new(),
                fields: Default::default(),
                event_type: "execve".into(),
                blast_radius: None,
            })
        });
        event
    }

    fn filter(f: v1::EventFilter) -> Filter {
        Filter::new(f).expect("a valid filter")
    }

    #[test]
    fn a_kind_filter_passes_exactly_the_kinds_it_names() {
        let kinds = [
            "process_exec",
            "process_fork",
            "process_exit",
            "events_lost",
            "syscall",
            "tcp_state",
            "violation",
            "action",
        ];
        for (i, named) in kinds.iter().enumerate() {
            let other = kinds[(i + 3) % kinds.len()];
            let f = filter(v1::EventFilter {
                kinds: vec![(*named).into(), other.into()],
                ..Default::default()
            });
            for kind in kinds {
                let parsed: EventKind =
                    serde_json::from_value(serde_json::Value::String(kind.into())).expect("a kind");
                let passes = f.matches(&event(parsed, "shop", None));
                assert_eq!(
                    passes,
                    kind == *named || kind == other,
                    "{named}+{other}: {kind}"
                );
            }
        }
    }

    #[test]
    fn a_remembered_verdict_on_a_subject_holds_for_the_events_that_share_it_only() {
        let curl = event(EventKind::ProcessExec, "shop", None);
        // The same thread's next call: its sections are shared.
        let mut curl_again = event(EventKind::Syscall, "shop", None);
        curl_again.process = curl.process.clone();
        curl_again.container = curl.container.clone();
        curl_again.kubernetes = curl.kubernetes.clone();
        let mut other = event(EventKind::Syscall, "shop", None);
        other.process = Some(Arc::new(Process {
            comm: "nginx".into(),
            ..Process::default()
        }));
        let elsewhere = event(EventKind::Syscall, "other", None);
        let sequence = [&curl, &curl_again, &other, &curl_again, &elsewhere, &curl];
        for f in [
            v1::EventFilter {
                process_names: vec!["curl".into()],
                ..Default::default()
            },
            v1::EventFilter {
                namespaces: vec!["shop".into()],
                kinds: vec!["syscall".into()],
                ..Default::default()
            },
            v1::EventFilter {
                process_paths: vec!["/usr/bin/".into()],
                namespaces: vec!["shop".into()],
                ..Default::default()
            },
            v1::EventFilter::default(),
        ] {
            let f = filter(f);
            let mut last = LastSubject::default();
            let remembered: Vec<bool> = sequence
                .iter()
                .map(|e| f.matches_after(e, &mut last))
                .collect();
            let checked: Vec<bool> = sequence.iter().map(|e| f.matches(e)).collect();
            assert_eq!(remembered, checked, "{f:?}");
            assert!(
                f.passes_everything() || (checked.contains(&true) && checked.contains(&false)),
                "the sequence tells a passing subject from a failing one: {f:?}"
            );
        }
        assert!(filter(v1::EventFilter::default()).passes_everything());
        assert!(
            !filter(v1::EventFilter {
                violations_only: true,
                ..Default::default()
            })
            .passes_everything()
        );
    }

    #[test]
    fn fields_combine_with_and_and_values_with_or() {
        let exec = event(EventKind::ProcessExec, "shop", None);
        let f = filter(v1::EventFilter {
            namespaces: vec!["other".into(), "shop".into()],
            process_names: vec!["curl".into()],
            ..Default::default()
        });
        assert!(f.matches(&exec));
        let f = filter(v1::EventFilter {
            namespaces: vec!["shop".into()],
            process_names: vec!["wget".into()],
            ..Default::default()
        });
        assert!(!f.matches(&exec));
    }

    #[test]
    fn pod_workload_container_and_path_filters_match_as_documented() {
        let exec = event(EventKind::ProcessExec, "shop", None);
        for f in [
            v1::EventFilter {
                workloads: vec!["Deployment/web".into()],
                ..Default::default()
            },
            v1::EventFilter {
                workloads: vec!["web".into()],
                ..Default::default()
            },
            v1::EventFilter {
                pods: vec!["web-1".into()],
                ..Default::default()
            },
            v1::EventFilter {
                pod_labels: [("app".into(), "web".into())].into(),
                ..Default::default()
            },
            v1::EventFilter {
                container_ids: vec!["0123456789ab".into()],
                ..Default::default()
            },
            v1::EventFilter {
                process_paths: vec!["/usr/bin/".into()],
                ..Default::default()
            },
            v1::EventFilter {
                process_paths: vec!["/usr/bin/curl".into()],
                ..Default::default()
            },
        ] {
            assert!(filter(f.clone()).matches(&exec), "{f:?}");
        }
        for f in [
            v1::EventFilter {
                workloads: vec!["StatefulSet/web".into()],
                ..Default::default()
            },
            v1::EventFilter {
                pod_labels: [("app".into(), "db".into())].into(),
                ..Default::default()
            },
            v1::EventFilter {
                process_paths: vec!["/usr/bin/cur".into()],
                ..Default::default()
            },
        ] {
            assert!(!filter(f.clone()).matches(&exec), "{f:?}");
        }
        assert!(
            Filter::new(v1::EventFilter {
                container_ids: vec!["0123".into()],
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            Filter::new(v1::EventFilter {
                kinds: vec!["nope".into()],
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn violation_filters_pass_only_violations_at_or_above_the_priority() {
        let warning = event(EventKind::Violation, "shop", Some(Priority::Warning));
        let critical = event(EventKind::Violation, "shop", Some(Priority::Critical));
        let exec = event(EventKind::ProcessExec, "shop", None);
        let f = filter(v1::EventFilter {
            min_priority: v1::Priority::Error.into(),
            ..Default::default()
        });
        assert!(f.matches(&critical));
        assert!(!f.matches(&warning));
        assert!(!f.matches(&exec));
        let f = filter(v1::EventFilter {
            tags: vec!["shell".into()],
            ..Default::default()
        });
        assert!(f.matches(&warning) && !f.matches(&exec));
        let f = filter(v1::EventFilter {
            kinds: vec!["process_exec".into()],
            ..Default::default()
        });
        assert!(f.matches(&exec) && !f.matches(&warning));
    }
}
