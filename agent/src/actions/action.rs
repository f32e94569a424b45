//! What containment can do, and how far it may go.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A containment action, as named in a rule's `actions` key and the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Kill the offending process: in the kernel at exec where the rule can
    /// be expressed there, otherwise from userspace through a pidfd.
    Kill,
    /// Freeze the container's cgroup, keeping its processes for forensics.
    Freeze,
    /// Cut the container's network, except what the allow-list lets through.
    Isolate,
    /// Refuse the exec in the kernel (BPF LSM); where the kernel refuses BPF
    /// LSM, the in-kernel kill stands in.
    DenyExec,
    /// Label and annotate the pod through the kube API.
    Label,
}

impl Action {
    /// Every action, in the order they are carried out for one violation:
    /// the process first, then its container, then the pod's metadata.
    pub const ALL: [Action; 5] = [
        Action::DenyExec,
        Action::Kill,
        Action::Freeze,
        Action::Isolate,
        Action::Label,
    ];

    /// The name used in rules, the config and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Freeze => "freeze",
            Action::Isolate => "isolate",
            Action::DenyExec => "deny-exec",
            Action::Label => "label",
        }
    }

    /// The verb for "would ..." and "did not ..." messages.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Freeze => "freeze",
            Action::Isolate => "isolate",
            Action::DenyExec => "deny the exec of",
            Action::Label => "label",
        }
    }

    /// The verb for what was done: "killed pid 42 (nc)".
    pub fn past(self) -> &'static str {
        match self {
            Action::Kill => "killed",
            Action::Freeze => "froze",
            Action::Isolate => "isolated",
            Action::DenyExec => "denied the exec of",
            Action::Label => "labelled",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action name that is not one of [`Action::ALL`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown action \"{0}\"; the actions are kill, freeze, isolate, deny-exec and label")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .ok_or_else(|| UnknownAction(name.to_owned()))
    }
}

/// How far the actions bound to a rule go. Ordered: a namespace may raise
/// the mode for itself, never lower it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Emit the violation and what would have been done; act on nothing.
    #[default]
    Monitor,
    /// As monitor, and alert.
    Warn,
    /// Act.
    Enforce,
}

impl Mode {
    /// The name used in the config, labels and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Monitor => "monitor",
            Mode::Warn => "warn",
            Mode::Enforce => "enforce",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "monitor" => Ok(Mode::Monitor),
            "warn" => Ok(Mode::Warn),
            "enforce" => Ok(Mode::Enforce),
            other => Err(format!(
                "unknown mode \"{other}\"; the modes are monitor, warn and enforce"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_listed() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
        }
        let error = "quarantine".parse::<Action>().expect_err("not an action");
        assert!(error.to_string().contains("deny-exec"), "{error}");
        assert!(Mode::Monitor < Mode::Warn && Mode::Warn < Mode::Enforce);
        assert_eq!("warn".parse::<Mode>(), Ok(Mode::Warn));
        assert!("block".parse::<Mode>().is_err());
    }
}
