//! The `containment:` section of the config: which actions are bound to
//! which rules, in which mode, and the limits that hold whatever the mode.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

pub use super::ledger::DEFAULT_PIN_DIR;
use super::{Action, Mode, isolate::AllowRule};

/// The namespace label a team sets to raise the mode for its namespace.
pub const DEFAULT_NAMESPACE_LABEL: &str = "guardrails.dev/mode";

/// `containment:` in the config file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ContainmentConfig {
    /// The mode of every action that nothing more specific sets.
    pub mode: Mode,
    /// Actions and modes bound to rules by name or tag, beside the rules'
    /// own `actions` keys.
    pub bindings: Vec<Binding>,
    /// The platform's mode per namespace; it replaces the rule's mode there.
    pub namespaces: BTreeMap<String, Mode>,
    /// The namespace label through which a namespace raises its own mode.
    pub namespace_label: String,
    /// Namespaces nothing is ever done in.
    pub protected_namespaces: Vec<String>,
    /// Act on processes outside containers (the node itself).
    pub act_on_host: bool,
    /// Actions carried out per container, at most.
    pub rate_limit: RateLimit,
    /// What `isolate` still lets through.
    pub isolate: IsolateConfig,
    /// What `label` puts on the pod.
    pub label: LabelConfig,
    /// The bpffs directory that keeps freezes and isolations across restarts.
    pub pin_dir: PathBuf,
}

impl Default for ContainmentConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Monitor,
            bindings: Vec::new(),
            namespaces: BTreeMap::new(),
            namespace_label: DEFAULT_NAMESPACE_LABEL.to_owned(),
            protected_namespaces: vec!["kube-system".to_owned()],
            act_on_host: false,
            rate_limit: RateLimit::default(),
            isolate: IsolateConfig::default(),
            label: LabelConfig::default(),
            pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
        }
    }
}

/// Actions and a mode for the rules a binding selects.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "BindingSpec")]
pub struct Binding {
    /// Rule names.
    pub rules: Vec<String>,
    /// Tags; a rule with any of them is selected.
    pub tags: Vec<String>,
    /// Actions added to the selected rules' own.
    pub actions: Vec<Action>,
    /// The mode of the selected rules' actions.
    pub mode: Option<Mode>,
}

/// A binding as written, checked into a [`Binding`] where serde still knows
/// its line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
struct BindingSpec {
    rules: Vec<String>,
    tags: Vec<String>,
    actions: Vec<Action>,
    mode: Option<Mode>,
}

impl TryFrom<BindingSpec> for Binding {
    type Error = &'static str;

    fn try_from(spec: BindingSpec) -> Result<Self, Self::Error> {
        if spec.rules.is_empty() && spec.tags.is_empty() {
            return Err("a binding must name rules or tags");
        }
        if spec.actions.is_empty() && spec.mode.is_none() {
            return Err("a binding must bind actions or set a mode");
        }
        Ok(Self {
            rules: spec.rules,
            tags: spec.tags,
            actions: spec.actions,
            mode: spec.mode,
        })
    }
}

/// At most `actions` actions per container in any `per_seconds` window.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// Actions allowed in the window.
    pub actions: u32,
    /// The window.
    pub per_seconds: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            actions: 10,
            per_seconds: 60,
        }
    }
}

/// `isolate`'s allow-list.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IsolateConfig {
    /// Remote endpoints an isolated container may still exchange packets
    /// with (egress to them, ingress from them).
    pub allow: Vec<AllowRule>,
}

impl Default for IsolateConfig {
    fn default() -> Self {
        Self {
            allow: AllowRule::DNS.to_vec(),
        }
    }
}

/// What `label` sets on the pod.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LabelConfig {
    /// Labels set on the pod.
    pub labels: BTreeMap<String, String>,
    /// Annotations set on the pod, beside `guardrails.dev/violation` (the
    /// rule) which is always set.
    pub annotations: BTreeMap<String, String>,
}

impl Default for LabelConfig {
    fn default() -> Self {
        Self {
            labels: BTreeMap::from([("guardrails.dev/quarantine".to_owned(), "true".to_owned())]),
            annotations: BTreeMap::new(),
        }
    }
}
