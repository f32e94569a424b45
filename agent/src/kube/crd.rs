//! The custom resources that carry rules: `ClusterRuleSet` for the
//! platform's rules (any Falco item, loaded after the rules files) and
//! `RuleSet` for a team's rules and mode in its own namespace, which can
//! only make enforcement there stricter. `guardrails crds` prints their
//! definitions; `docs/rulesets.md` describes them.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actions::Mode;

/// The API group of the resources.
pub const GROUP: &str = "guardrails.dev";

/// Platform rules for every node: Falco rules-file items (lists, macros,
/// rules, `append` and `override`), loaded after the agent's rules files
/// and the other ClusterRuleSets before it in name order.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema,
)]
#[kube(
    group = "guardrails.dev",
    version = "v1alpha1",
    kind = "ClusterRuleSet",
    doc = "Platform rules (Falco rules-file items) for every node.",
    status = "RuleSetStatus",
    shortname = "crs",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Rules","type":"integer","jsonPath":".status.rules"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRuleSetSpec {
    /// A Falco rules file's text.
    pub rules: String,
}

/// A team's rules and mode for its own namespace. Its rules (only `rule`
/// items, which may use the platform's lists and macros) are tested against
/// that namespace's events only and go by `<namespace>/<name>`; its mode
/// raises the mode of every rule there, never lowers it.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema,
)]
#[kube(
    group = "guardrails.dev",
    version = "v1alpha1",
    kind = "RuleSet",
    doc = "A team's rules and mode in its own namespace: stricter only.",
    namespaced,
    status = "RuleSetStatus",
    shortname = "grs",
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Rules","type":"integer","jsonPath":".status.rules"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RuleSetSpec {
    /// The namespace's mode: raises the platform's, never lowers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ResourceMode>,
    /// `rule` items of a Falco rules file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<String>,
}

/// A mode as a resource spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResourceMode {
    /// Emit violations and what would be done.
    Monitor,
    /// As monitor, and alert.
    Warn,
    /// Act.
    Enforce,
}

impl From<ResourceMode> for Mode {
    fn from(mode: ResourceMode) -> Self {
        match mode {
            ResourceMode::Monitor => Mode::Monitor,
            ResourceMode::Warn => Mode::Warn,
            ResourceMode::Enforce => Mode::Enforce,
        }
    }
}

/// What the agents made of a resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleSetStatus {
    /// `Accepted`: whether the generation in `observedGeneration` is in
    /// force, and if not, precisely why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The rules it adds while in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<u32>,
}

/// A status condition, as Kubernetes spells them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Accepted`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// `Accepted`, `Invalid` (it does not load or compile) or `Refused` (it
    /// would weaken enforcement).
    pub reason: String,
    /// The precise error, with the line in `spec.rules`.
    pub message: String,
    /// The generation this condition is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
}

/// The definitions of both resources, as YAML documents.
pub fn definitions() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let cluster = serde_yaml::to_string(&ClusterRuleSet::crd())?;
    let team = serde_yaml::to_string(&RuleSet::crd())?;
    Ok(format!("---\n{cluster}---\n{team}"))
}
