//! The `action` section: one containment action and what came of it.

use serde::{Deserialize, Serialize};

use crate::actions::Mode;

/// What the agent did, or would have done, about a violation; or an
/// operator's thaw or lift.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionReport {
    /// `kill`, `freeze`, `isolate`, `deny-exec`, `label`; `thaw` and `lift`
    /// when an operator undoes a freeze or an isolation.
    pub action: String,
    /// The mode the action was planned in.
    pub mode: Mode,
    /// Which setting decided the mode: `default`, `binding`, `namespace`,
    /// `namespace_label` or `operator`.
    pub mode_source: String,
    /// What came of it.
    pub outcome: Outcome,
    /// The rule whose violation planned it; absent for an operator's action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// How it was carried out: `kernel` (at exec, before the program ran),
    /// `bpf_lsm` (the exec was refused), `pidfd`, `cgroup.freeze`,
    /// `cgroup_skb`, `kube_api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// One line for people: "killed pid 42 (nc) in the kernel at exec",
    /// "would kill pid 42 (nc)", "not acted on: namespace kube-system is
    /// protected".
    pub message: String,
    /// What it was aimed at.
    pub target: ActionTarget,
    /// Why it failed, for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What came of an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Carried out.
    Done,
    /// Monitor or warn mode: reported, not carried out.
    WouldAct,
    /// Not carried out because of a safety limit (host process, the agent,
    /// a protected namespace) or because there was nothing to act on.
    Skipped,
    /// Over the container's rate limit.
    RateLimited,
    /// Tried and failed; `error` says why.
    Failed,
}

impl Outcome {
    /// The name in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::WouldAct => "would_act",
            Outcome::Skipped => "skipped",
            Outcome::RateLimited => "rate_limited",
            Outcome::Failed => "failed",
        }
    }
}

/// What an action was aimed at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionTarget {
    /// The process, host PID namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The cgroup v2 id of its container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_id: Option<u64>,
    /// The container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The pod's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}
