//! The pipeline's containment step: after the rules, before the outputs.
//!
//! For each violation it plans the actions bound to the rule, in the mode
//! the policy gives for the target, carries them out in enforce mode and
//! puts one `action` event per action right after the violation. It owns
//! everything that acts: the in-kernel kill's maps, the pinned containment
//! state, the rate limiter; the API reaches them through [`Command`]s.
//!
//! It also arms the in-kernel kill: the first event of a container cgroup
//! (and again every [`REARM_INTERVAL`]) decides which kernel-expressible
//! kill rules are in enforce mode there, and writes that into the kernel.
//! A container is never armed before the agent has seen it, so its first
//! exec is killed from userspace (pidfd), not in the kernel.
//!
//! Where the BPF LSM hook is attached ([`DenyExec::Lsm`]), the slots of
//! `deny-exec` rules are deny slots: the same arming decides where the
//! kernel refuses their execs instead of killing them.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot, watch};

use super::{
    Action, Mode,
    containment::{ContainError, Containment, Target},
    kernel_kill::{KernelMatch, KillMaps, deny_match, kernel_match},
    label::{self, Marks, VIOLATION_ANNOTATION},
    ledger::Contained,
    metrics::ActionMetrics,
    pidfd,
    policy::Policy,
    ratelimit::RateLimiter,
};
use crate::{
    container::{CgroupPaths, ResolveOptions},
    events::{
        Event, EventKind,
        action::{ActionReport, ActionTarget, Outcome},
        kubernetes::PodStatus,
        reader::Batch,
    },
    logging::error_chain,
    rules::RuleSet,
};

/// How often a container's armed kill rules are decided again (a namespace
/// label may have changed its mode).
pub const REARM_INTERVAL: Duration = Duration::from_secs(30);
/// How soon a container whose pod the kube API has not named yet is decided
/// again: its namespace may raise its mode once the pod is known.
const REARM_UNRESOLVED: Duration = Duration::from_secs(2);
/// Containers remembered as armed; the kernel map holds as many.
const MAX_ARMED: usize = 16_384;
/// How long a `label` waits for the API server.
const LABEL_TIMEOUT: Duration = Duration::from_secs(5);
/// The in-kernel kill has 64 slots, one per rule.
const KERNEL_SLOTS: usize = 64;

/// Where the step answers a thaw or a lift: what stays contained there.
pub type UndoReply = oneshot::Sender<Result<Option<Contained>, CommandError>>;

/// What the API asks of the step.
#[derive(Debug)]
pub enum Command {
    /// Everything frozen or isolated now.
    List(oneshot::Sender<Result<Vec<Contained>, CommandError>>),
    /// Thaw a frozen container, by cgroup id; the reply is what stays
    /// contained there.
    Thaw(
        u64,
        oneshot::Sender<Result<Option<Contained>, CommandError>>,
    ),
    /// Lift a container's isolation, by cgroup id.
    Lift(
        u64,
        oneshot::Sender<Result<Option<Contained>, CommandError>>,
    ),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The container is not frozen (thaw) or not isolated (lift).
    #[error("cgroup {0} is not {1}")]
    NotContained(u64, &'static str),
    /// Containment could not be set up on this node.
    #[error("containment is unavailable on this node (see the agent's start-up log)")]
    Unavailable,
    /// The kernel or the cgroup refused.
    #[error("{0}")]
    Failed(String),
}

/// Everything the step acts with; each part is optional, and an action whose
/// part is missing fails with a reason.
pub struct Actors {
    /// The in-kernel kill's maps, from the sensors object.
    pub kill_maps: Option<KillMaps>,
    /// Freeze and isolation, pinned.
    pub containment: Option<Containment>,
    /// The kube API, for `label`.
    pub kube: Option<kube::Client>,
    /// How `deny-exec` is carried out in the kernel.
    pub deny_exec: DenyExec,
}

/// Whether `deny-exec` refuses execs with BPF LSM on this node; decided at
/// start (the hook is attached then or never).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DenyExec {
    /// The BPF LSM hook is attached: deny-exec rules the kernel can decide
    /// without the arguments refuse the exec.
    Lsm,
    /// It is not, and deny-exec rules kill at exec instead; why, as the end
    /// of "deny-exec needs BPF LSM, which …".
    Unavailable(String),
}

/// Whether an enabled rule of `rules` binds `deny-exec`, by its own actions
/// or through `policy`; the BPF LSM hook is attached only then.
pub fn binds_deny_exec(policy: &Policy, rules: &RuleSet) -> bool {
    rules.rules().iter().filter(|r| r.enabled).any(|r| {
        policy
            .actions(&r.name, &r.tags, &r.actions)
            .contains(&Action::DenyExec)
    })
}

impl std::fmt::Debug for Actors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actors")
            .field("kill_maps", &self.kill_maps.is_some())
            .field("containment", &self.containment)
            .field("kube", &self.kube.is_some())
            .field("deny_exec", &self.deny_exec)
            .finish()
    }
}

/// The containment step.
#[derive(Debug)]
pub struct ActionStage {
    policy: Policy,
    actors: Actors,
    metrics: Arc<ActionMetrics>,
    /// Each rule's own `actions`, by rule name.
    rule_actions: HashMap<String, (Vec<Action>, Arc<[String]>)>,
    /// The rule of each in-kernel kill slot.
    slots: Vec<String>,
    /// For each slot, the only namespace its rule applies in (a team's).
    slot_namespaces: Vec<Option<String>>,
    /// The deny slots among them (bit n for slot n).
    deny: u64,
    /// Per container cgroup: the slots armed there and when to decide again.
    armed: HashMap<u64, (u64, Instant)>,
    limiter: RateLimiter,
    cgroups: Option<CgroupPaths>,
    tick_ns: u64,
    node: Arc<str>,
    /// Reports of operators' thaws and lifts, sent after the command.
    operator_events: Vec<Event>,
}

impl ActionStage {
    /// A step with `policy`, acting through `actors`.
    pub fn new(
        policy: Policy,
        actors: Actors,
        node: Arc<str>,
        metrics: Arc<ActionMetrics>,
    ) -> Self {
        let limit = policy.config().rate_limit;
        let cgroups = match CgroupPaths::v2(ResolveOptions::default()) {
            Ok(paths) => Some(paths),
            Err(e) => {
                tracing::warn!(error = %e, "freeze and isolate are off: cannot open the cgroup v2 mount");
                None
            }
        };
        Self {
            policy,
            actors,
            metrics,
            rule_actions: HashMap::new(),
            slots: Vec::new(),
            slot_namespaces: Vec::new(),
            deny: 0,
            armed: HashMap::new(),
            limiter: RateLimiter::new(
                limit.actions,
                Duration::from_secs(u64::from(limit.per_seconds)),
            ),
            cgroups,
            tick_ns: crate::process::clock_tick_ns().unwrap_or(10_000_000),
            node,
            operator_events: Vec::new(),
        }
    }

    /// Runs until `rx` closes; batches go on to `tx` with action events
    /// after their violations.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Batch>,
        tx: mpsc::Sender<Batch>,
        mut rules: watch::Receiver<Arc<RuleSet>>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        let (done_tx, mut done_rx) = mpsc::channel::<Event>(256);
        let set = rules.borrow_and_update().clone();
        self.apply_rules(&set);
        loop {
            tokio::select! {
                batch = rx.recv() => {
                    let Some(batch) = batch else { break };
                    let batch = self.process(batch, &done_tx);
                    if tx.send(batch).await.is_err() {
                        tracing::error!("the outputs are gone; stopping containment");
                        break;
                    }
                }
                Some(report) = done_rx.recv() => {
                    if tx.send(vec![report]).await.is_err() {
                        break;
                    }
                }
                Ok(()) = rules.changed() => {
                    let set = rules.borrow_and_update().clone();
                    self.apply_rules(&set);
                }
                Some(command) = commands.recv() => {
                    self.command(command);
                    if !self.operator_events.is_empty()
                        && tx.send(std::mem::take(&mut self.operator_events)).await.is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Labels still in flight report before the outputs close.
        drop(done_tx);
        while let Ok(Some(report)) = tokio::time::timeout(LABEL_TIMEOUT, done_rx.recv()).await {
            if tx.send(vec![report]).await.is_err() {
                break;
            }
        }
    }

    /// Takes in a new rule set: each rule's own actions, and the slots of
    /// the in-kernel kill.
    fn apply_rules(&mut self, set: &RuleSet) {
        self.policy.set_raised(set.namespace_modes().clone());
        self.rule_actions = set
            .rules()
            .iter()
            .map(|r| (r.name.clone(), (r.actions.clone(), r.tags.clone())))
            .collect();
        let mut slots: Vec<(u8, KernelMatch)> = Vec::new();
        let mut names = Vec::new();
        let mut namespaces = Vec::new();
        let mut deny = 0u64;
        for rule in set.rules().iter().filter(|r| r.enabled) {
            let actions = self.policy.actions(&rule.name, &rule.tags, &rule.actions);
            let denies = actions.contains(&Action::DenyExec);
            if !actions.contains(&Action::Kill) && !denies {
                continue;
            }
            if denies && let DenyExec::Unavailable(why) = &self.actors.deny_exec {
                tracing::warn!(
                    rule = %rule.name,
                    "deny-exec needs BPF LSM, which {why}; the rule kills at exec instead"
                );
            }
            match kernel_match(rule) {
                Ok(matched) if slots.len() < KERNEL_SLOTS => {
                    let slot = u8::try_from(slots.len()).unwrap_or(u8::MAX);
                    if denies && self.actors.deny_exec == DenyExec::Lsm {
                        match deny_match(&matched) {
                            Ok(()) => deny |= 1 << slot,
                            Err(why) => tracing::warn!(
                                rule = %rule.name,
                                "deny-exec: {why}; the rule kills at exec instead"
                            ),
                        }
                    }
                    slots.push((slot, matched));
                    names.push(rule.name.clone());
                    namespaces.push(rule.namespace.clone());
                }
                Ok(_) => tracing::warn!(
                    rule = %rule.name,
                    "more than {KERNEL_SLOTS} rules kill in the kernel; this one kills from userspace"
                ),
                Err(why) => tracing::info!(
                    rule = %rule.name,
                    reason = %why,
                    "the rule kills from userspace, after the event"
                ),
            }
        }
        if let Some(maps) = self.actors.kill_maps.as_mut() {
            match maps.set_slots(&slots, deny) {
                Ok(()) => {
                    let (denying, killing) = split_by_mask(&names, deny);
                    if !killing.is_empty() {
                        tracing::info!(rules = ?killing, "rules kill in the kernel at exec");
                    }
                    if !denying.is_empty() {
                        tracing::info!(rules = ?denying, "rules deny the exec in the kernel with BPF LSM");
                    }
                    let same_slots = self.slots == names
                        && self.slot_namespaces == namespaces
                        && self.deny == deny;
                    self.slots = names;
                    self.slot_namespaces = namespaces;
                    self.deny = deny;
                    if same_slots {
                        // Each slot holds the same rule: what is armed stays
                        // so (no exec slips through meanwhile), and every
                        // container is decided again when next seen, for
                        // modes that may have changed.
                        let now = Instant::now();
                        for (_, next) in self.armed.values_mut() {
                            *next = now;
                        }
                        self.metrics.set_kernel(self.armed.len(), self.slots.len());
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot write the in-kernel kill rules; kills are from userspace");
                    self.slots.clear();
                    self.slot_namespaces.clear();
                    self.deny = 0;
                }
            }
            // Every container is decided again for the new slots.
            for (cgroup_id, _) in self.armed.drain() {
                let _ = maps.disarm(cgroup_id);
            }
        }
        self.metrics.set_kernel(self.armed.len(), self.slots.len());
    }

    fn process(&mut self, batch: Batch, done: &mpsc::Sender<Event>) -> Batch {
        if !self.slots.is_empty() {
            for event in &batch {
                self.arm(event);
            }
        }
        if !batch.iter().any(|e| e.kind == EventKind::Violation) {
            return batch;
        }
        let mut out = Vec::with_capacity(batch.len() + 4);
        for event in batch {
            let reports = if event.kind == EventKind::Violation {
                self.plan_and_act(&event, done)
            } else {
                Vec::new()
            };
            out.push(event);
            out.extend(reports);
        }
        out
    }

    /// Decides, once per container and again after [`REARM_INTERVAL`],
    /// which in-kernel kill slots are armed in its cgroup.
    fn arm(&mut self, event: &Event) {
        let Some(process) = event.process.as_ref() else {
            return;
        };
        let cgroup_id = process.cgroup_id;
        let now = Instant::now();
        if let Some((_, next)) = self.armed.get(&cgroup_id)
            && now < *next
        {
            return;
        }
        let Some(maps) = self.actors.kill_maps.as_mut() else {
            return;
        };
        let mut mask = 0u64;
        if self.policy.protection(event).is_none() {
            let (namespace, labels) = namespace_of(event);
            for (slot, (rule, only_in)) in self.slots.iter().zip(&self.slot_namespaces).enumerate()
            {
                if only_in.is_some() && only_in.as_deref() != namespace {
                    continue;
                }
                let tags = self
                    .rule_actions
                    .get(rule)
                    .map(|(_, tags)| &**tags)
                    .unwrap_or_default();
                if self.policy.mode(rule, tags, namespace, labels).0 == Mode::Enforce {
                    mask |= 1 << slot;
                }
            }
        }
        if self.armed.len() >= MAX_ARMED && !self.armed.contains_key(&cgroup_id) {
            // The stalest decision goes; that container is decided again
            // when it is next seen.
            if let Some(stalest) = self
                .armed
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(id, _)| *id)
            {
                self.armed.remove(&stalest);
                let _ = maps.disarm(stalest);
            }
        }
        let unresolved = event
            .kubernetes
            .as_deref()
            .is_some_and(|k| k.status == PodStatus::Unresolved);
        let next = now
            + if unresolved {
                REARM_UNRESOLVED
            } else {
                REARM_INTERVAL
            };
        let previous = self.armed.insert(cgroup_id, (mask, next)).map(|(m, _)| m);
        if previous != Some(mask) {
            let result = if mask == 0 {
                maps.disarm(cgroup_id)
            } else {
                maps.arm(cgroup_id, mask)
            };
            match result {
                Ok(()) if mask != 0 => tracing::info!(
                    cgroup_id,
                    container = event.container.as_ref().and_then(|c| c.id.as_deref()),
                    rules = mask.count_ones(),
                    deny = (mask & self.deny).count_ones(),
                    "in-kernel kill armed for the container"
                ),
                Ok(()) => {}
                Err(e) => tracing::warn!(cgroup_id, error = %e, "cannot arm the in-kernel kill"),
            }
        }
        self.metrics.set_kernel(self.armed.len(), self.slots.len());
    }

    fn plan_and_act(&mut self, violation: &Event, done: &mpsc::Sender<Event>) -> Vec<Event> {
        let Some(v) = violation.violation.as_deref() else {
            return Vec::new();
        };
        let (own, tags) = self
            .rule_actions
            .get(&v.rule)
            .map(|(a, t)| (a.as_slice(), &**t))
            .unwrap_or_default();
        let actions = self.policy.actions(&v.rule, tags, own);
        if actions.is_empty() {
            return Vec::new();
        }
        let (namespace, labels) = namespace_of(violation);
        let (mode, source) = self.policy.mode(&v.rule, tags, namespace, labels);
        let protection = self.policy.protection(violation);
        let target = target_of(violation);
        let mut reports = Vec::with_capacity(actions.len());
        let mut killed = false;
        for action in actions {
            let mut report = ActionReport {
                action: action.as_str().to_owned(),
                mode,
                mode_source: source.as_str().to_owned(),
                outcome: Outcome::WouldAct,
                rule: Some(v.rule.clone()),
                method: None,
                message: String::new(),
                target: target.clone(),
                error: None,
            };
            let aimed_at = object(action, violation, &target);
            let what = format!("{} {aimed_at}", action.verb());
            if let Some(reason) = &protection {
                report.outcome = Outcome::Skipped;
                report.message = format!("did not {what}: {reason}");
            } else if mode < Mode::Enforce {
                report.message = format!("would {what} ({mode} mode)");
            } else if let Some(deny) = violation
                .kernel_deny
                .filter(|_| matches!(action, Action::Kill | Action::DenyExec))
            {
                // The kernel refused the exec before the rules saw the
                // event: the program never ran, and the process that asked
                // for it is not the one the rule is about.
                killed = true;
                if action == Action::DenyExec && self.slot_rule(deny.slot) == Some(v.rule.as_str())
                {
                    report.outcome = Outcome::Done;
                    report.method = Some("bpf_lsm".to_owned());
                    report.message = format!(
                        "{} {aimed_at} in the kernel with BPF LSM, before it ran",
                        action.past()
                    );
                } else {
                    report.outcome = Outcome::Skipped;
                    report.message =
                        format!("did not {what}: the kernel denied the exec, so it never ran");
                }
            } else if killed && matches!(action, Action::Kill | Action::DenyExec) {
                report.outcome = Outcome::Skipped;
                report.message = format!("did not {what}: the process is killed already");
            } else if self.killed_in_kernel(violation, &v.rule) {
                // The kernel acted before the rules saw the event.
                if matches!(action, Action::Kill | Action::DenyExec) {
                    killed = true;
                    report.outcome = Outcome::Done;
                    report.method = Some("kernel".to_owned());
                    report.message = match action {
                        Action::DenyExec => format!(
                            "killed pid {} in the kernel at exec, before it ran (deny-exec: {})",
                            target.pid.unwrap_or_default(),
                            self.no_deny_reason()
                        ),
                        _ => format!(
                            "killed pid {} in the kernel at exec, before it ran",
                            target.pid.unwrap_or_default()
                        ),
                    };
                } else {
                    self.act(action, violation, &aimed_at, &mut report, done);
                }
            } else if !self
                .limiter
                .allow(target.cgroup_id.unwrap_or_default(), Instant::now())
            {
                report.outcome = Outcome::RateLimited;
                report.message = format!(
                    "did not {what}: more than {} actions in {} s for this container",
                    self.policy.config().rate_limit.actions,
                    self.policy.config().rate_limit.per_seconds
                );
            } else {
                if matches!(action, Action::Kill | Action::DenyExec) {
                    killed = true;
                }
                self.act(action, violation, &aimed_at, &mut report, done);
            }
            self.metrics
                .count(&report.action, report.mode, report.outcome);
            reports.push(action_event(violation, report));
        }
        reports
    }

    /// Whether the kernel killed this violation's process at exec for this
    /// rule.
    fn killed_in_kernel(&self, violation: &Event, rule: &str) -> bool {
        violation
            .kernel_kill
            .as_ref()
            .is_some_and(|kill| self.slot_rule(kill.slot) == Some(rule))
    }

    /// The rule of an in-kernel kill slot.
    fn slot_rule(&self, slot: u8) -> Option<&str> {
        self.slots.get(usize::from(slot)).map(String::as_str)
    }

    /// Why a deny-exec rule kills instead of refusing the exec.
    fn no_deny_reason(&self) -> &'static str {
        match self.actors.deny_exec {
            DenyExec::Lsm => "BPF LSM cannot decide this rule",
            DenyExec::Unavailable(_) => "BPF LSM is unavailable",
        }
    }

    /// Carries out one action in enforce mode and fills in the report, which
    /// already names the rule and the target; `aimed_at` says the target for
    /// people.
    fn act(
        &mut self,
        action: Action,
        violation: &Event,
        aimed_at: &str,
        report: &mut ActionReport,
        done: &mpsc::Sender<Event>,
    ) {
        let what = format!("{} {aimed_at}", action.verb());
        let result: Result<&'static str, String> = match action {
            Action::Kill | Action::DenyExec => self.kill(violation),
            Action::Freeze => self.contain(report, |c, t| c.freeze(t)),
            Action::Isolate => self.contain(report, |c, t| c.isolate(t)),
            Action::Label => {
                match self.label(violation, report.clone(), done.clone()) {
                    // The result comes as an event of its own.
                    Ok(()) => {
                        report.outcome = Outcome::Done;
                        report.method = Some("kube_api".to_owned());
                        report.message = format!("{what}: requested");
                        return;
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(method) => {
                report.outcome = Outcome::Done;
                report.method = Some(method.to_owned());
                report.message = match action {
                    Action::DenyExec => format!(
                        "{} {aimed_at} (deny-exec: {}, so the process was killed after its exec)",
                        Action::Kill.past(),
                        self.no_deny_reason()
                    ),
                    _ => format!("{} {aimed_at}", action.past()),
                };
            }
            Err(error) => {
                report.outcome = Outcome::Failed;
                report.message = format!("could not {what}: {error}");
                report.error = Some(error);
            }
        }
    }

    fn kill(&self, violation: &Event) -> Result<&'static str, String> {
        let process = violation
            .process
            .as_ref()
            .ok_or_else(|| "the event names no process".to_owned())?;
        pidfd::kill(process.pid, process.start_ns, self.tick_ns)
            .map(|()| "pidfd")
            .map_err(|e| e.to_string())
    }

    /// Freezes or isolates the container `report` is aimed at.
    fn contain(
        &mut self,
        report: &ActionReport,
        act: impl FnOnce(&mut Containment, &Target) -> Result<(), ContainError>,
    ) -> Result<&'static str, String> {
        let cgroup_id = report
            .target
            .cgroup_id
            .ok_or_else(|| "the event names no process".to_owned())?;
        let dir = self.cgroup_dir(cgroup_id)?;
        let containment = self.actors.containment.as_mut().ok_or_else(|| {
            "containment is unavailable on this node (see the start-up log)".to_owned()
        })?;
        let t = Target {
            cgroup_id,
            cgroup_dir: dir,
            container_id: report.target.container_id.clone().unwrap_or_default(),
            rule: report.rule.clone().unwrap_or_default(),
        };
        // A freeze waits for the kernel to stop every task (bounded); other
        // tasks keep running meanwhile.
        tokio::task::block_in_place(|| act(containment, &t)).map_err(|e| error_chain(&e))?;
        if let Ok(list) = containment.list() {
            self.metrics.set_contained(list.len());
        }
        Ok("cgroup")
    }

    fn cgroup_dir(&mut self, cgroup_id: u64) -> Result<PathBuf, String> {
        let paths = self
            .cgroups
            .as_mut()
            .ok_or_else(|| "the cgroup v2 mount is unavailable".to_owned())?;
        let relative = paths
            .path(cgroup_id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("cgroup {cgroup_id} is gone"))?;
        Ok(paths.mount().join(relative.trim_start_matches('/')))
    }

    /// Labels the pod `report` is aimed at; the result comes back through
    /// `done` as an event of its own.
    fn label(
        &self,
        violation: &Event,
        report: ActionReport,
        done: mpsc::Sender<Event>,
    ) -> Result<(), String> {
        let client = self
            .actors
            .kube
            .clone()
            .ok_or_else(|| "no cluster: the agent runs without the kube API".to_owned())?;
        let target = &report.target;
        let (Some(namespace), Some(pod)) = (target.namespace.clone(), target.pod.clone()) else {
            return Err("the process is in no known pod".to_owned());
        };
        let config = &self.policy.config().label;
        let mut annotations = config.annotations.clone();
        annotations.insert(
            VIOLATION_ANNOTATION.to_owned(),
            report.rule.clone().unwrap_or_default(),
        );
        let marks = Marks {
            labels: config.labels.clone(),
            annotations,
        };
        let template = violation.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let mut report = report;
            match label::label_pod(client, &namespace, &pod, &marks, LABEL_TIMEOUT).await {
                Ok(()) => {
                    report.outcome = Outcome::Done;
                    report.message = format!(
                        "labelled pod {namespace}/{pod} with {}",
                        marks
                            .labels
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                }
                Err(e) => {
                    report.outcome = Outcome::Failed;
                    report.message = format!("could not label pod {namespace}/{pod}");
                    report.error = Some(error_chain(&e));
                }
            }
            report.method = Some("kube_api".to_owned());
            metrics.count(&report.action, report.mode, report.outcome);
            let _ = done.send(action_event(&template, report)).await;
        });
        Ok(())
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::List(reply) => {
                let list = match self.actors.containment.as_ref() {
                    Some(c) => c.list().map_err(|e| CommandError::Failed(error_chain(&e))),
                    None => Ok(Vec::new()),
                };
                let _ = reply.send(list);
            }
            Command::Thaw(cgroup_id, reply) => {
                let _ = reply.send(self.undo(cgroup_id, "frozen"));
            }
            Command::Lift(cgroup_id, reply) => {
                let _ = reply.send(self.undo(cgroup_id, "isolated"));
            }
        }
        if let Some(Ok(list)) = self.actors.containment.as_ref().map(Containment::list) {
            self.metrics.set_contained(list.len());
        }
    }

    /// Thaws (`frozen`) or lifts (`isolated`) a container for an operator,
    /// and reports it as an action of its own.
    fn undo(
        &mut self,
        cgroup_id: u64,
        state: &'static str,
    ) -> Result<Option<Contained>, CommandError> {
        let containment = self
            .actors
            .containment
            .as_mut()
            .ok_or(CommandError::Unavailable)?;
        let before = containment
            .get(cgroup_id)
            .map_err(|e| CommandError::Failed(error_chain(&e)))?
            .filter(|c| match state {
                "frozen" => c.frozen.is_some(),
                _ => c.isolated.is_some(),
            })
            .ok_or(CommandError::NotContained(cgroup_id, state))?;
        let (action, result) = if state == "frozen" {
            ("thaw", containment.thaw(cgroup_id))
        } else {
            ("lift", containment.lift(cgroup_id))
        };
        let after = containment.get(cgroup_id);
        let mut report = ActionReport {
            action: action.to_owned(),
            mode: Mode::Enforce,
            mode_source: "operator".to_owned(),
            outcome: Outcome::Done,
            rule: None,
            method: Some("cgroup".to_owned()),
            message: String::new(),
            target: ActionTarget {
                cgroup_id: Some(cgroup_id),
                container_id: Some(before.container_id.clone()).filter(|id| !id.is_empty()),
                ..ActionTarget::default()
            },
            error: None,
        };
        let short = before
            .container_id
            .get(..12)
            .unwrap_or(&before.container_id)
            .to_owned();
        let outcome = match result {
            Ok(()) => {
                report.message = match action {
                    "thaw" => format!("thawed container {short} for an operator"),
                    _ => format!("lifted the isolation of container {short} for an operator"),
                };
                after.map_err(|e| CommandError::Failed(error_chain(&e)))
            }
            Err(e) => {
                let error = error_chain(&e);
                report.outcome = Outcome::Failed;
                report.message = format!("could not {action} container {short}");
                report.error = Some(error.clone());
                Err(CommandError::Failed(error))
            }
        };
        self.metrics
            .count(&report.action, report.mode, report.outcome);
        let mut event = Event::new(
            EventKind::Action,
            crate::events::event::WallTime(std::time::SystemTime::now()),
            crate::events::clock::boot_ns(),
            crate::events::event::NodeName::from(&*self.node),
        );
        event.action = Some(Box::new(report));
        self.operator_events.push(event);
        outcome
    }
}

/// The rules of the slots in `mask` and those of the others, each in slot
/// order; `rules[n]` is slot n's.
fn split_by_mask(rules: &[String], mask: u64) -> (Vec<&str>, Vec<&str>) {
    let mut inside = Vec::new();
    let mut outside = Vec::new();
    for (slot, rule) in rules.iter().enumerate() {
        if slot < 64 && mask & 1 << slot != 0 {
            inside.push(rule.as_str());
        } else {
            outside.push(rule.as_str());
        }
    }
    (inside, outside)
}

/// The namespace of an event's pod and that namespace's labels.
fn namespace_of(
    event: &Event,
) -> (
    Option<&str>,
    Option<&std::collections::BTreeMap<String, String>>,
) {
    match event.kubernetes.as_deref() {
        Some(k) => (k.namespace.as_deref(), Some(&k.namespace_labels)),
        None => (None, None),
    }
}

fn target_of(event: &Event) -> ActionTarget {
    let kubernetes = event.kubernetes.as_deref();
    ActionTarget {
        pid: event.process.as_ref().map(|p| p.pid),
        cgroup_id: event.process.as_ref().map(|p| p.cgroup_id),
        container_id: event.container.as_ref().and_then(|c| c.id.clone()),
        pod: kubernetes.and_then(|k| k.pod.clone()),
        namespace: kubernetes.and_then(|k| k.namespace.clone()),
    }
}

/// What an action is aimed at, for messages: "pid 42 (nc)", "container
/// 3f2a…", "pod shop/web-1".
fn object(action: Action, event: &Event, target: &ActionTarget) -> String {
    match action {
        Action::Kill | Action::DenyExec => format!(
            "pid {} ({})",
            target.pid.unwrap_or_default(),
            event.process.as_ref().map_or("", |p| p.comm.as_str())
        ),
        Action::Freeze | Action::Isolate => {
            let id = target.container_id.as_deref().unwrap_or("(none)");
            format!("container {}", id.get(..12).unwrap_or(id))
        }
        Action::Label => match (&target.namespace, &target.pod) {
            (Some(ns), Some(pod)) => format!("pod {ns}/{pod}"),
            _ => "the pod".to_owned(),
        },
    }
}

/// An `action` event: the violation's sections, with the report.
fn action_event(violation: &Event, report: ActionReport) -> Event {
    let mut event = Event::new(
        EventKind::Action,
        crate::events::event::WallTime(std::time::SystemTime::now()),
        crate::events::clock::boot_ns(),
        violation.node.clone(),
    );
    event.process = violation.process.clone();
    event.container = violation.container.clone();
    event.kubernetes = violation.kubernetes.clone();
    event.action = Some(Box::new(report));
    event
}

#[cfg(test)]
mod tests {
    use super::split_by_mask;

    #[test]
    fn the_rules_of_deny_slots_are_told_apart_from_those_that_kill() {
        let rules: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(split_by_mask(&rules, 0b101), (vec!["a", "c"], vec!["b"]));
        assert_eq!(split_by_mask(&rules, 0), (vec![], vec!["a", "b", "c"]));
        // A bit past the rules names none.
        assert_eq!(
            split_by_mask(&rules, 1 << 40),
            (vec![], vec!["a", "b", "c"])
        );
    }
}
