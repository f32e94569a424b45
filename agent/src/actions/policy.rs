//! Which actions a violation plans, in which mode, and whether anything may
//! be done to its target at all.
//!
//! | # | Setting                                   | Set by     | Effect                            |
//! |---|-------------------------------------------|------------|-----------------------------------|
//! | 1 | `containment.mode`                        | platform   | every rule's mode (monitor)       |
//! | 2 | a binding's `mode`, selecting by tag      | platform   | replaces 1                        |
//! | 3 | a binding's `mode`, selecting by name     | platform   | replaces 1 and 2                  |
//! | 4 | `containment.namespaces.<namespace>`      | platform   | replaces 1 to 3 in that namespace |
//! | 5 | the namespace label `guardrails.dev/mode` | namespace  | raises the result, never lowers   |
//! | 6 | a `RuleSet`'s `spec.mode` in the namespace | team       | raises the result, never lowers   |
//! | 7 | protected namespaces, host, the agent     | platform   | nothing is done, whatever the mode|

use std::collections::BTreeMap;

use super::{Action, Mode, config::ContainmentConfig};
use crate::events::Event;

/// Which setting decided a mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeSource {
    /// `containment.mode`.
    Default,
    /// A binding selecting the rule by tag or name.
    Binding,
    /// The platform's namespace entry.
    Namespace,
    /// The namespace's own label.
    NamespaceLabel,
    /// A team's `RuleSet` in the namespace.
    RuleSet,
}

impl ModeSource {
    /// The name in events.
    pub fn as_str(self) -> &'static str {
        match self {
            ModeSource::Default => "default",
            ModeSource::Binding => "binding",
            ModeSource::Namespace => "namespace",
            ModeSource::NamespaceLabel => "namespace_label",
            ModeSource::RuleSet => "ruleset",
        }
    }
}

/// Who the agent is, so that it never acts on itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Myself {
    /// The agent's pid.
    pub pid: u32,
    /// The agent's cgroup v2 id; its container, when it runs in one.
    pub cgroup_id: u64,
}

/// The containment settings, read for every violation.
#[derive(Clone, Debug)]
pub struct Policy {
    config: ContainmentConfig,
    myself: Myself,
    /// The modes teams' RuleSets raise their namespaces to.
    raised: BTreeMap<String, Mode>,
}

impl Policy {
    /// The policy of `config`; `myself` is never acted on.
    pub fn new(config: ContainmentConfig, myself: Myself) -> Self {
        Self {
            config,
            myself,
            raised: BTreeMap::new(),
        }
    }

    /// Takes the modes teams' RuleSets raise their namespaces to.
    pub fn set_raised(&mut self, raised: BTreeMap<String, Mode>) {
        self.raised = raised;
    }

    /// The settings.
    pub fn config(&self) -> &ContainmentConfig {
        &self.config
    }

    /// The rule's own actions and those bindings add, in the order they are
    /// carried out.
    pub fn actions(&self, rule: &str, tags: &[String], own: &[Action]) -> Vec<Action> {
        let mut bound: Vec<Action> = own.to_vec();
        for binding in self.selecting(rule, tags) {
            bound.extend(&binding.actions);
        }
        Action::ALL
            .into_iter()
            .filter(|a| bound.contains(a))
            .collect()
    }

    /// The mode of the rule's actions for a target in `namespace` (none on
    /// the host or without a cluster) whose namespace carries `labels`.
    pub fn mode(
        &self,
        rule: &str,
        tags: &[String],
        namespace: Option<&str>,
        labels: Option<&BTreeMap<String, String>>,
    ) -> (Mode, ModeSource) {
        let mut mode = (self.config.mode, ModeSource::Default);
        let by_tag = self
            .config
            .bindings
            .iter()
            .filter(|b| b.tags.iter().any(|t| tags.contains(t)))
            .filter_map(|b| b.mode)
            .max();
        if let Some(m) = by_tag {
            mode = (m, ModeSource::Binding);
        }
        let by_name = self
            .config
            .bindings
            .iter()
            .filter(|b| b.rules.iter().any(|r| r == rule))
            .filter_map(|b| b.mode)
            .max();
        if let Some(m) = by_name {
            mode = (m, ModeSource::Binding);
        }
        if let Some(m) = namespace.and_then(|ns| self.config.namespaces.get(ns)) {
            mode = (*m, ModeSource::Namespace);
        }
        let raised = labels
            .and_then(|l| l.get(&self.config.namespace_label))
            .and_then(|value| value.parse::<Mode>().ok());
        if let Some(m) = raised
            && m > mode.0
        {
            mode = (m, ModeSource::NamespaceLabel);
        }
        if let Some(&m) = namespace.and_then(|ns| self.raised.get(ns))
            && m > mode.0
        {
            mode = (m, ModeSource::RuleSet);
        }
        mode
    }

    /// Why nothing may be done to the target of `event`, if so.
    pub fn protection(&self, event: &Event) -> Option<String> {
        let process = event.process.as_ref();
        if let Some(p) = process {
            if p.pid == self.myself.pid {
                return Some("the process is the agent itself".to_owned());
            }
            if self.myself.cgroup_id != 0 && p.cgroup_id == self.myself.cgroup_id {
                return Some("the process runs in the agent's own cgroup".to_owned());
            }
        }
        let in_container = event
            .container
            .as_deref()
            .is_some_and(|c| c.kind == "container" && c.id.is_some());
        if !in_container && !self.config.act_on_host {
            return Some("the process runs on the host, not in a container".to_owned());
        }
        let namespace = event
            .kubernetes
            .as_deref()
            .and_then(|k| k.namespace.as_deref());
        if let Some(ns) = namespace
            && self.config.protected_namespaces.iter().any(|p| p == ns)
        {
            return Some(format!("namespace {ns} is protected"));
        }
        None
    }

    fn selecting<'a>(
        &'a self,
        rule: &'a str,
        tags: &'a [String],
    ) -> impl Iterator<Item = &'a super::config::Binding> + 'a {
        self.config.bindings.iter().filter(move |b| {
            b.rules.iter().any(|r| r == rule) || b.tags.iter().any(|t| tags.contains(t))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        actions::config::Binding,
        events::{
            EventKind,
            event::{ContainerInfo, Process, WallTime},
            kubernetes::Kubernetes,
        },
    };

    fn binding(rules: &[&str], tags: &[&str], actions: &[Action], mode: Option<Mode>) -> Binding {
        Binding {
            rules: rules.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            actions: actions.to_vec(),
            mode,
        }
    }

    fn policy(config: ContainmentConfig) -> Policy {
        Policy::new(
            config,
            Myself {
                pid: 10,
                cgroup_id: 99,
            },
        )
    }

    fn labels(mode: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("guardrails.dev/mode".to_owned(), mode.to_owned())])
    }

    #[test]
    fn the_mode_follows_the_precedence_table() {
        let config = ContainmentConfig {
            bindings: vec![
                binding(&[], &["shell"], &[], Some(Mode::Warn)),
                binding(&["Shell in payments"], &[], &[], Some(Mode::Enforce)),
            ],
            namespaces: BTreeMap::from([("dev".to_owned(), Mode::Monitor)]),
            ..ContainmentConfig::default()
        };
        let p = policy(config);
        let tags = vec!["shell".to_owned()];
        assert_eq!(
            p.mode("Other", &[], None, None),
            (Mode::Monitor, ModeSource::Default)
        );
        assert_eq!(
            p.mode("Any shell", &tags, None, None),
            (Mode::Warn, ModeSource::Binding)
        );
        assert_eq!(
            p.mode("Shell in payments", &tags, Some("shop"), None),
            (Mode::Enforce, ModeSource::Binding)
        );
        // The platform's namespace entry replaces the rule's mode, lower or not.
        assert_eq!(
            p.mode("Shell in payments", &tags, Some("dev"), None),
            (Mode::Monitor, ModeSource::Namespace)
        );
        // A namespace label raises...
        assert_eq!(
            p.mode("Other", &[], Some("dev"), Some(&labels("enforce"))),
            (Mode::Enforce, ModeSource::NamespaceLabel)
        );
        // ...and never lowers, and an unknown value is ignored.
        assert_eq!(
            p.mode(
                "Shell in payments",
                &tags,
                Some("shop"),
                Some(&labels("monitor"))
            ),
            (Mode::Enforce, ModeSource::Binding)
        );
        assert_eq!(
            p.mode("Other", &[], Some("shop"), Some(&labels("lockdown"))),
            (Mode::Monitor, ModeSource::Default)
        );
    }

    #[test]
    fn actions_come_from_the_rule_and_its_bindings_in_a_fixed_order() {
        let config = ContainmentConfig {
            bindings: vec![
                binding(&[], &["network"], &[Action::Label, Action::Isolate], None),
                binding(&["Miner"], &[], &[Action::Kill], None),
            ],
            ..ContainmentConfig::default()
        };
        let p = policy(config);
        let tags = vec!["network".to_owned()];
        assert_eq!(
            p.actions("Miner", &tags, &[Action::Freeze]),
            vec![Action::Kill, Action::Freeze, Action::Isolate, Action::Label]
        );
        assert!(p.actions("Quiet", &[], &[]).is_empty());
    }

    fn event(pid: u32, cgroup_id: u64, container: bool, namespace: Option<&str>) -> Event {
        let mut e = Event::new(
            EventKind::Violation,
            WallTime(std::time::SystemTime::UNIX_EPOCH),
            0,
            "node".into(),
        );
        e.process = Some(Arc::new(Process {
            pid,
            cgroup_id,
            ..Process::default()
        }));
        e.container = Some(Arc::new(ContainerInfo {
            kind: if container { "container" } else { "host" }.to_owned(),
            id: container.then(|| "ab".repeat(32)),
            ..ContainerInfo::default()
        }));
        e.kubernetes = namespace.map(|ns| {
            Arc::new(Kubernetes {
                namespace: Some(ns.to_owned()),
                ..Kubernetes::unresolved()
            })
        });
        e
    }

    #[test]
    fn the_agent_the_host_and_protected_namespaces_are_never_targets() {
        let p = policy(ContainmentConfig::default());
        assert_eq!(p.protection(&event(7, 5, true, Some("shop"))), None);
        assert!(
            p.protection(&event(10, 5, true, None))
                .expect("protected")
                .contains("agent")
        );
        assert!(
            p.protection(&event(7, 99, true, None))
                .expect("protected")
                .contains("agent")
        );
        assert!(
            p.protection(&event(7, 5, false, None))
                .expect("protected")
                .contains("host")
        );
        assert!(
            p.protection(&event(7, 5, true, Some("kube-system")))
                .expect("protected")
                .contains("kube-system is protected")
        );
        let on_host = policy(ContainmentConfig {
            act_on_host: true,
            protected_namespaces: Vec::new(),
            ..ContainmentConfig::default()
        });
        assert_eq!(on_host.protection(&event(7, 5, false, None)), None);
        assert_eq!(
            on_host.protection(&event(7, 5, true, Some("kube-system"))),
            None
        );
        assert!(on_host.protection(&event(10, 5, false, None)).is_some());
    }
}
