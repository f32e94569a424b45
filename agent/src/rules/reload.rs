//! The task that owns the rules in force: it checks the rules files on a
//! timer (hot reload) and switches rules on or off when asked through the
//! API. A change that loads and compiles replaces the rules between two
//! batches; one that does not is rejected with the same errors `rules check`
//! gives, and the previous rules stay in force.
//!
//! Rules switched through the API stay so across reloads, until the agent
//! restarts.
//!
//! With a cluster, the rules of `ClusterRuleSet` and `RuleSet` resources
//! join the files' ([`super::resources`]): each change of either is
//! compiled, and what became of each resource goes to the status writer.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::{
    RuleSet, Selection, Sources,
    diag::{RulesError, Severity},
    loader::{RulesFile, read_files},
    resources::{self, Assembled, PlatformModes, ResourceKey, ResourceRules, Verdict},
};
use crate::metrics::Metrics;

/// What the files held when last looked at: their texts, and an error for
/// each that could not be read. Rules files are small; comparing contents
/// also catches a change that keeps the size and the modification time (a
/// ConfigMap swap). What is compared is what gets compiled: each change is
/// read once.
type Snapshot = (Vec<RulesFile>, Vec<super::diag::Diagnostic>);

/// A request to the rules task.
#[derive(Debug)]
pub enum RulesCommand {
    /// Switch rule `name` on or off. The reply comes once the change is in
    /// force (or was refused).
    SetEnabled {
        /// The rule's name.
        name: String,
        /// On or off.
        enabled: bool,
        /// The outcome.
        reply: oneshot::Sender<Result<(), SetEnabledError>>,
    },
}

/// Why a rule could not be switched.
#[derive(Debug, thiserror::Error)]
pub enum SetEnabledError {
    /// No loaded rule has that name.
    #[error("no rule named {0:?} is loaded")]
    NotFound(String),
    /// The rules in force no longer compile as they are (cannot happen
    /// unless the built-in rules are broken), so nothing changed.
    #[error("recompiling the rules failed:\n{0}")]
    Compile(RulesError),
}

/// How the rules task runs.
#[derive(Debug)]
pub struct RulesTask {
    /// Where the rules come from.
    pub sources: Sources,
    /// How often the files are checked; `None`: never (no hot reload).
    pub interval: Option<Duration>,
    /// The rules in force, published to the matching step.
    pub tx: watch::Sender<Arc<RuleSet>>,
    /// Requests from the API.
    pub commands: mpsc::Receiver<RulesCommand>,
    /// Reload counters.
    pub metrics: Arc<Metrics>,
    /// The rules resources, when the agent runs with a cluster.
    pub resources: Option<ResourceLink>,
    /// Syscalls no attached program sees, for the warning about rules that
    /// cannot fire.
    pub unobserved_syscalls: Vec<&'static str>,
}

/// The rules task's link to the rules resources' watch.
#[derive(Debug)]
pub struct ResourceLink {
    /// Every resource as last seen.
    pub seen: watch::Receiver<Vec<ResourceRules>>,
    /// What became of each, for their status.
    pub verdicts: watch::Sender<Vec<Verdict>>,
    /// The modes below which a team's RuleSet cannot go.
    pub platform: PlatformModes,
}

/// The inputs of the rules in force besides the files.
#[derive(Debug, Default)]
struct Extra {
    overrides: BTreeMap<String, bool>,
    resources: Vec<ResourceRules>,
    in_force: HashMap<ResourceKey, ResourceRules>,
}

impl RulesTask {
    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        // The texts of the rules in force, and what the files held when last
        // read (which differs after a rejected change).
        let mut in_force: Vec<RulesFile> = read_files(&self.sources.files).0;
        let mut last: Snapshot = read_files(&self.sources.files);
        let mut extra = Extra::default();
        let poll = self.interval.filter(|_| !self.sources.files.is_empty());
        let mut ticker = tokio::time::interval(poll.unwrap_or(Duration::from_secs(3600)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut seen = self.resources.as_ref().map(|link| link.seen.clone());
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick(), if poll.is_some() => {
                    let now = read_files(&self.sources.files);
                    if now == last {
                        continue;
                    }
                    last = now.clone();
                    let (files, unreadable) = now;
                    let result = if unreadable.is_empty() {
                        self.compile(files.clone(), &extra.overrides, &extra).await
                    } else {
                        Err(RulesError(unreadable))
                    };
                    match result {
                        Ok(assembled) => {
                            tracing::info!(
                                rules = assembled.set.rules().len(),
                                enabled = assembled.set.enabled(),
                                "rules changed on disk; the new rules are in force"
                            );
                            in_force = files;
                            self.metrics.rules_reloaded(true, assembled.set.enabled());
                            self.publish(assembled, &mut extra);
                        }
                        Err(e) => {
                            for diagnostic in e.0.iter().filter(|d| d.severity == Severity::Error) {
                                tracing::error!("{diagnostic}");
                            }
                            tracing::error!("rules change rejected; the previous rules stay in force");
                            self.metrics.rules_reloaded(false, self.tx.borrow().enabled());
                        }
                    }
                }
                Ok(()) = changed(&mut seen) => {
                    extra.resources = seen
                        .as_mut()
                        .map(|s| s.borrow_and_update().clone())
                        .unwrap_or_default();
                    match self.compile(in_force.clone(), &extra.overrides, &extra).await {
                        Ok(assembled) => {
                            for verdict in &assembled.verdicts {
                                log_verdict(verdict);
                            }
                            tracing::info!(
                                rules = assembled.set.rules().len(),
                                enabled = assembled.set.enabled(),
                                resources = extra.resources.len(),
                                "rules resources changed; the new rules are in force"
                            );
                            self.metrics.rules_reloaded(true, assembled.set.enabled());
                            self.publish(assembled, &mut extra);
                        }
                        Err(e) => tracing::error!(
                            error = %e,
                            "the rules files in force no longer compile; the resources' change waits"
                        ),
                    }
                }
                Some(command) = self.commands.recv() => match command {
                    RulesCommand::SetEnabled { name, enabled, reply } => {
                        let known = self.tx.borrow().rules().iter().any(|r| r.name == name);
                        if !known {
                            let _ = reply.send(Err(SetEnabledError::NotFound(name)));
                            continue;
                        }
                        let mut wanted = extra.overrides.clone();
                        wanted.insert(name.clone(), enabled);
                        match self.compile(in_force.clone(), &wanted, &extra).await {
                            Ok(assembled) => {
                                extra.overrides = wanted;
                                tracing::info!(rule = name, enabled, "rule switched through the API");
                                self.metrics.set_rules_enabled(assembled.set.enabled());
                                self.publish(assembled, &mut extra);
                                let _ = reply.send(Ok(()));
                            }
                            Err(e) => {
                                let _ = reply.send(Err(SetEnabledError::Compile(e)));
                            }
                        }
                    }
                },
            }
        }
    }

    /// Puts the rules in force and says what became of each resource.
    fn publish(&self, assembled: Assembled, extra: &mut Extra) {
        log_blind_rules(&assembled.set, &self.unobserved_syscalls);
        extra.in_force = assembled.in_force;
        if let Some(link) = &self.resources {
            link.verdicts.send_replace(assembled.verdicts);
        }
        self.tx.send_replace(Arc::new(assembled.set));
    }

    /// Compiles `files` (after the defaults, when configured) with the
    /// resources, the configured selection and then `overrides`, off the
    /// async threads.
    async fn compile(
        &self,
        files: Vec<RulesFile>,
        overrides: &BTreeMap<String, bool>,
        extra: &Extra,
    ) -> Result<Assembled, RulesError> {
        let files = self.sources.in_load_order(files);
        let selection = with_overrides(&self.sources.selection, overrides);
        let mode = self.sources.mode;
        let resources = extra.resources.clone();
        let previous = extra.in_force.clone();
        let platform = self
            .resources
            .as_ref()
            .map(|link| link.platform.clone())
            .unwrap_or_default();
        let work =
            move || resources::assemble(&files, &resources, &previous, &platform, &selection, mode);
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(error = %e, "compiling rules failed");
                Err(RulesError(Vec::new()))
            }
        }
    }
}

/// Waits for the resources to change; never, without a cluster.
async fn changed(
    seen: &mut Option<watch::Receiver<Vec<ResourceRules>>>,
) -> Result<(), watch::error::RecvError> {
    match seen {
        Some(seen) => seen.changed().await,
        None => std::future::pending().await,
    }
}

fn log_verdict(verdict: &Verdict) {
    match &verdict.outcome {
        resources::Outcome::Accepted { rules, warnings } => tracing::info!(
            resource = %verdict.key,
            generation = verdict.generation,
            rules,
            ?warnings,
            "rules resource accepted"
        ),
        refused => tracing::warn!(
            resource = %verdict.key,
            generation = verdict.generation,
            reason = refused.reason(),
            "rules resource not accepted: {}",
            refused.message()
        ),
    }
}

/// `base` with each overridden rule in exactly one of the by-name lists,
/// which the selection applies last.
fn with_overrides(base: &Selection, overrides: &BTreeMap<String, bool>) -> Selection {
    let mut selection = base.clone();
    for (name, enabled) in overrides {
        selection.enable_rules.retain(|r| r != name);
        selection.disable_rules.retain(|r| r != name);
        if *enabled {
            selection.enable_rules.push(name.clone());
        } else {
            selection.disable_rules.push(name.clone());
        }
    }
    selection
}

/// Says of each enabled rule in `set` that only `unobserved` syscalls can
/// match that it cannot fire on this node, and why: a user who brought it
/// should not wait for it. Info, not a warning: on a kernel without module
/// support it is true of the default module rules at every start.
pub fn log_blind_rules(set: &RuleSet, unobserved: &[&'static str]) {
    for (rule, types) in set.blind_to(unobserved) {
        tracing::info!(
            rule = %rule.name,
            at = %rule.position,
            syscalls = ?types,
            "this rule cannot fire on this node: the kernel is built without the \
             syscalls it watches (`sensors.syscall_hook: sys_exit` reports their \
             calls, which all fail)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_puts_the_rule_in_one_list_only() {
        let base = Selection {
            disable_rules: vec!["a".into()],
            enable_rules: vec!["b".into()],
            ..Selection::default()
        };
        let overrides = BTreeMap::from([("a".to_owned(), true), ("b".to_owned(), false)]);
        let selection = with_overrides(&base, &overrides);
        assert_eq!(selection.enable_rules, ["a"]);
        assert_eq!(selection.disable_rules, ["b"]);
    }
}
