//! What `/metrics` shows about containment.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use super::Mode;
use crate::events::action::Outcome;

/// Containment figures; bounded: keys are (action, mode, outcome) names.
#[derive(Debug, Default)]
pub struct ActionMetrics {
    actions: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    armed_cgroups: AtomicU64,
    kernel_rules: AtomicU64,
    contained: AtomicU64,
}

impl ActionMetrics {
    /// Counts one reported action.
    pub fn count(&self, action: &str, mode: Mode, outcome: Outcome) {
        if let Ok(mut actions) = self.actions.lock() {
            *actions
                .entry((action.to_owned(), mode.as_str(), outcome.as_str()))
                .or_default() += 1;
        }
    }

    /// Publishes the containers armed for the in-kernel kill and the rules
    /// it carries.
    pub fn set_kernel(&self, armed_cgroups: usize, kernel_rules: usize) {
        self.armed_cgroups
            .store(armed_cgroups as u64, Ordering::Relaxed);
        self.kernel_rules
            .store(kernel_rules as u64, Ordering::Relaxed);
    }

    /// Publishes the cgroups frozen or isolated now.
    pub fn set_contained(&self, contained: usize) {
        self.contained.store(contained as u64, Ordering::Relaxed);
    }

    /// Appends the text exposition.
    pub fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP guardrails_actions_total Containment actions by action, mode and outcome."
        );
        let _ = writeln!(out, "# TYPE guardrails_actions_total counter");
        if let Ok(actions) = self.actions.lock() {
            for ((action, mode, outcome), n) in actions.iter() {
                let _ = writeln!(
                    out,
                    "guardrails_actions_total{{action=\"{action}\",mode=\"{mode}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        for (name, help, value) in [
            (
                "guardrails_actions_kernel_rules",
                "Rules killed for in the kernel at exec.",
                get(&self.kernel_rules),
            ),
            (
                "guardrails_actions_armed_cgroups",
                "Containers in which the in-kernel kill is armed.",
                get(&self.armed_cgroups),
            ),
            (
                "guardrails_actions_contained_cgroups",
                "Containers frozen or isolated now.",
                get(&self.contained),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
    }
}
