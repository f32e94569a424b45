//! A loaded, compiled set of rules, indexed by event type, and its
//! evaluation: an event is tested only against the enabled rules that can
//! match its type.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use super::{
    compile::{self, CompiledRule},
    diag::{Diagnostic, RulesError},
    eval::Check,
    fields::EventView,
    index::{EventTypes, event_type_names},
    loader,
    program::Guard,
    verdicts::{Seen, Verdicts},
};
use crate::{
    actions::Mode,
    events::event::{Event, EventKind, Violation},
};

/// Our default rules, shipped in the binary and loaded before the files the
/// operator names.
pub const DEFAULT_RULES: &str = include_str!("../../rules/default_rules.yaml");

/// The name the default rules go by in diagnostics.
pub const DEFAULT_RULES_NAME: &str = "<builtin>/default_rules.yaml";

/// Whether every matching rule produces a violation, or only the first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// Every matching rule (the default).
    #[default]
    All,
    /// Only the first matching rule in load order (Falco's `first`).
    First,
}

/// Rules switched on or off by name or tag, applied after loading, in this
/// order: disable by tag, disable by name, enable by tag, enable by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Selection {
    /// Rule names to disable.
    pub disable_rules: Vec<String>,
    /// Tags whose rules to disable.
    pub disable_tags: Vec<String>,
    /// Rule names to enable (also rules disabled in their file).
    pub enable_rules: Vec<String>,
    /// Tags whose rules to enable.
    pub enable_tags: Vec<String>,
}

/// Where rules come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    /// Load [`DEFAULT_RULES`] first.
    pub defaults: bool,
    /// Rules files, loaded in order after the defaults.
    pub files: Vec<PathBuf>,
    /// What to switch on or off.
    pub selection: Selection,
    /// Every match, or the first.
    pub mode: MatchMode,
}

impl Sources {
    /// `files` (read beforehand) in load order: the default rules first,
    /// when these sources ask for them.
    pub fn in_load_order(&self, mut files: Vec<loader::RulesFile>) -> Vec<loader::RulesFile> {
        if self.defaults {
            files.insert(0, (DEFAULT_RULES_NAME.into(), DEFAULT_RULES.into()));
        }
        files
    }
}

/// Compiled rules ready to evaluate.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    /// For each event type id, the enabled rules that can match it.
    by_type: Vec<Candidates>,
    /// Enabled rules for events whose type no rule can name.
    untyped: Candidates,
    mode: MatchMode,
    warnings: Vec<Diagnostic>,
    macros: usize,
    lists: usize,
    /// Modes that teams' RuleSets raise their namespaces to.
    namespace_modes: BTreeMap<String, Mode>,
    /// Names this set's index: changed whenever the rules an event is tested
    /// against change, so that verdicts reached before are not reused.
    generation: u64,
}

/// The next [`RuleSet::generation`].
static NEXT_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl RuleSet {
    /// Loads and compiles rules from their sources.
    pub fn load(sources: &Sources) -> Result<Self, RulesError> {
        let (files, unreadable) = loader::read_files(&sources.files);
        if !unreadable.is_empty() {
            return Err(RulesError(unreadable));
        }
        Self::compile(sources, files)
    }

    /// Compiles the texts of `sources`' files, read beforehand, after the
    /// default rules when the sources ask for them.
    pub fn compile(sources: &Sources, files: Vec<loader::RulesFile>) -> Result<Self, RulesError> {
        let files = sources.in_load_order(files);
        Self::from_texts(&files, &sources.selection, sources.mode)
    }

    /// Compiles rules from (file name, text) pairs, in load order.
    pub fn from_texts(
        files: &[(Arc<str>, Arc<str>)],
        selection: &Selection,
        mode: MatchMode,
    ) -> Result<Self, RulesError> {
        let definitions = loader::load(files)?;
        Self::from_definitions(&definitions, selection, mode)
    }

    /// Compiles loaded definitions.
    pub fn from_definitions(
        definitions: &loader::Definitions,
        selection: &Selection,
        mode: MatchMode,
    ) -> Result<Self, RulesError> {
        let compiled = compile::compile(definitions)?;
        let mut set = Self {
            rules: compiled.rules,
            by_type: Vec::new(),
            untyped: Candidates::default(),
            mode,
            warnings: compiled.warnings,
            macros: definitions.macros.len(),
            lists: definitions.lists.len(),
            namespace_modes: BTreeMap::new(),
            generation: 0,
        };
        set.select(selection);
        Ok(set)
    }

    /// The modes teams' RuleSets raise their namespaces to.
    pub fn namespace_modes(&self) -> &BTreeMap<String, Mode> {
        &self.namespace_modes
    }

    /// Sets the modes teams' RuleSets raise their namespaces to.
    pub fn set_namespace_modes(&mut self, modes: BTreeMap<String, Mode>) {
        self.namespace_modes = modes;
    }

    /// Applies a selection and rebuilds the index.
    pub fn select(&mut self, selection: &Selection) {
        let has_tag =
            |rule: &CompiledRule, tags: &[String]| rule.tags.iter().any(|t| tags.contains(t));
        for rule in &mut self.rules {
            if has_tag(rule, &selection.disable_tags)
                || selection.disable_rules.contains(&rule.name)
            {
                rule.enabled = false;
            }
            if has_tag(rule, &selection.enable_tags) || selection.enable_rules.contains(&rule.name)
            {
                rule.enabled = true;
            }
        }
        self.index();
    }

    fn index(&mut self) {
        let types = event_type_names().len();
        let mut by_type = vec![Vec::new(); types];
        let mut untyped = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.enabled {
                continue;
            }
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            for (id, list) in by_type.iter_mut().enumerate() {
                if rule
                    .event_types
                    .contains(u8::try_from(id).unwrap_or(u8::MAX))
                {
                    list.push(i);
                }
            }
            if rule.event_types.is_all() {
                untyped.push(i);
            }
        }
        self.by_type = by_type
            .into_iter()
            .map(|list| Candidates::new(list, &self.rules))
            .collect();
        self.untyped = Candidates::new(untyped, &self.rules);
        self.generation = NEXT_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every compiled rule, enabled or not, in load order.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// The number of enabled rules.
    pub fn enabled(&self) -> usize {
        self.rules.iter().filter(|r| r.enabled).count()
    }

    /// How many macros and lists the files defined.
    pub fn macros_and_lists(&self) -> (usize, usize) {
        (self.macros, self.lists)
    }

    /// Warnings from loading and compiling.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The enabled rules that only event types named in `unseen` can
    /// match, each with those types: rules that cannot fire while nothing
    /// reports them (syscalls no attached program sees).
    pub fn blind_to(&self, unseen: &[&str]) -> Vec<(&CompiledRule, Vec<&'static str>)> {
        let unseen = EventTypes::matching(|name| unseen.contains(&name));
        self.rules
            .iter()
            .filter(|r| {
                r.enabled && !r.event_types.is_empty() && r.event_types.without(unseen).is_empty()
            })
            .map(|r| (r, r.event_types.names()))
            .collect()
    }

    /// The names of the rules `event` breaks, in order.
    #[cfg(test)]
    pub(crate) fn fired(&self, event: &Event) -> Vec<String> {
        let mut out = Vec::new();
        self.evaluate(event, 1, &mut out);
        out.iter()
            .filter_map(|v| v.violation.as_ref().map(|v| v.rule.clone()))
            .collect()
    }

    /// The enabled rules that can match an event of this type.
    #[cfg(test)]
    fn candidates(&self, event_type: &str) -> &[u32] {
        &self
            .candidates_of(super::index::event_type_id(event_type))
            .rules
    }

    /// The enabled rules that can match an event of type number `id`.
    fn candidates_of(&self, id: Option<u8>) -> &Candidates {
        const NONE: &Candidates = &Candidates {
            rules: Vec::new(),
            runs: Vec::new(),
            per_event_checks: None,
        };
        match id {
            Some(id) => self.by_type.get(usize::from(id)).unwrap_or(NONE),
            None => &self.untyped,
        }
    }

    /// Whether any enabled rule can match `event`, from its kind and type
    /// alone (no condition is tested).
    pub fn can_match(&self, event: &Event) -> bool {
        is_rules_input(event.kind)
            && !self
                .candidates_of(EventView::new(event, 0).type_id())
                .rules
                .is_empty()
    }

    /// Tests `events` in order, the first being the `first_number`th the
    /// rules have seen; `raised` gets each violation with the index of the
    /// event that broke the rule. A call seen before gets the verdict kept in
    /// `verdicts` where it can. While it tests one event, the fields of the
    /// next few are brought into the cache.
    pub fn evaluate_batch(
        &self,
        events: &[Event],
        first_number: u64,
        mut verdicts: Option<&mut Verdicts>,
        mut raised: impl FnMut(usize, Event),
    ) {
        let mut scratch = Vec::new();
        // With no rule to read them, the fields are not worth a request.
        let read_ahead = !self.rules.is_empty();
        for (i, (number, event)) in (first_number..).zip(events).enumerate() {
            if read_ahead {
                if let Some(ahead) = events.get(i + super::prefetch::SECTIONS_AHEAD) {
                    super::prefetch::sections(ahead);
                }
                if let Some(ahead) = events.get(i + super::prefetch::STRINGS_AHEAD) {
                    super::prefetch::strings(ahead);
                }
            }
            self.evaluate_with(event, number, verdicts.as_deref_mut(), &mut scratch);
            for violation in scratch.drain(..) {
                raised(i, violation);
            }
        }
    }

    /// Tests `event` (the `number`th the rules have seen) and appends a
    /// violation for each rule it matches.
    pub fn evaluate(&self, event: &Event, number: u64, out: &mut Vec<Event>) {
        self.evaluate_with(event, number, None, out);
    }

    fn evaluate_with(
        &self,
        event: &Event,
        number: u64,
        verdicts: Option<&mut Verdicts>,
        out: &mut Vec<Event>,
    ) {
        if !is_rules_input(event.kind) {
            return;
        }
        let view = EventView::new(event, number);
        let candidates = self.candidates_of(view.type_id());
        if candidates.rules.is_empty() {
            return;
        }
        let keep = match (verdicts, &candidates.per_event_checks) {
            (Some(verdicts), Some(checks)) => {
                let outcomes = || {
                    checks.iter().enumerate().fold(0u64, |bits, (i, check)| {
                        bits | u64::from(check.eval(&view)) << i
                    })
                };
                match verdicts.find(self.generation, event, outcomes) {
                    Seen::Before(broken) => {
                        for rule in broken.iter().filter_map(|&i| self.rules.get(i as usize)) {
                            raise(rule, event, &view, out);
                        }
                        return;
                    }
                    Seen::New(slot, outcomes) => Some((verdicts, slot, outcomes)),
                    Seen::Once | Seen::NotKept => None,
                }
            }
            _ => None,
        };
        let mut broken = smallvec::SmallVec::<[u32; 2]>::new();
        'runs: for run in &candidates.runs {
            if run.guard.as_ref().is_some_and(|guard| !guard.passes(&view)) {
                continue;
            }
            for &i in candidates.rules.get(run.rules.clone()).unwrap_or_default() {
                let Some(rule) = self.rules.get(i as usize) else {
                    continue;
                };
                if breaks(rule, event, &view) {
                    raise(rule, event, &view, out);
                    broken.push(i);
                    if self.mode == MatchMode::First {
                        break 'runs;
                    }
                }
            }
        }
        if let Some((verdicts, slot, outcomes)) = keep {
            verdicts.keep(slot, event, outcomes, &broken);
        }
    }
}

/// Whether rules look at events of `kind`: not at what the agent itself
/// reports (violations, losses, containment actions).
fn is_rules_input(kind: EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Violation | EventKind::EventsLost | EventKind::Action
    )
}

/// Whether the event breaks the rule.
fn breaks(rule: &CompiledRule, event: &Event, view: &EventView<'_>) -> bool {
    if let Some(namespace) = &rule.namespace
        && event
            .kubernetes
            .as_deref()
            .and_then(|k| k.namespace.as_deref())
            != Some(namespace.as_str())
    {
        return false;
    }
    rule.program.eval(view)
}

/// Appends the violation of a rule the event broke.
fn raise(rule: &CompiledRule, event: &Event, view: &EventView<'_>, out: &mut Vec<Event>) {
    let (output, mut fields) = rule.output.render(view);
    for (name, accessor) in &rule.condition_fields {
        let value = accessor
            .get(view)
            .map_or(serde_json::Value::Null, |v| v.to_json());
        fields.insert(name.clone(), value);
    }
    let mut violation = event.clone();
    violation.kind = EventKind::Violation;
    violation.violation = Some(Box::new(Violation {
        rule: rule.name.clone(),
        priority: rule.priority,
        tags: rule.tags.clone(),
        output,
        fields,
        event_type: view.event_type().to_owned(),
        blast_radius: None,
    }));
    out.push(violation);
}

/// The enabled rules an event of one type can match, in load order, cut
/// into runs of neighbours that need the same macro result first (Falco's
/// rules about writes all start with `open_write`, those about reads with
/// `open_read`): a read is passed over by the rules about writes on one
/// look at that result, not tested by each.
#[derive(Debug, Default)]
struct Candidates {
    rules: Vec<u32>,
    runs: Vec<Run>,
    /// The checks of these rules that read a field telling apart two events
    /// of the same call by the same process (Falco's `never_true` is
    /// `evt.num = 0`, `proc_is_new` a test of `proc.duration`), at most 64:
    /// a verdict reached for a call holds for its repeats on which these
    /// checks come out the same. None when there are more.
    per_event_checks: Option<Box<[Check]>>,
}

/// Most checks [`Candidates::per_event_checks`] holds: one bit of a word each.
const PER_EVENT_CHECKS: usize = 64;

#[derive(Debug)]
struct Run {
    /// What every rule of the run needs; none for a run of one rule, whose
    /// own first check is the same look.
    guard: Option<Guard>,
    /// Its rules: a range of [`Candidates::rules`].
    rules: std::ops::Range<usize>,
}

impl Candidates {
    fn new(rules: Vec<u32>, compiled: &[CompiledRule]) -> Self {
        let mut runs: Vec<Run> = Vec::new();
        for (at, &i) in rules.iter().enumerate() {
            let guard = compiled.get(i as usize).and_then(|r| r.program.guard());
            match runs.last_mut() {
                Some(last)
                    if match (&last.guard, &guard) {
                        (Some(a), Some(b)) => a.same_as(b),
                        (None, None) => true,
                        _ => false,
                    } =>
                {
                    last.rules.end = at + 1;
                }
                _ => runs.push(Run {
                    guard,
                    rules: at..at + 1,
                }),
            }
        }
        // A guard over one rule only repeats that rule's first step; runs
        // left without one join their unguarded neighbours.
        let mut merged: Vec<Run> = Vec::with_capacity(runs.len());
        for mut run in runs {
            if run.rules.len() == 1 {
                run.guard = None;
            }
            match merged.last_mut() {
                Some(last) if last.guard.is_none() && run.guard.is_none() => {
                    last.rules.end = run.rules.end;
                }
                _ => merged.push(run),
            }
        }
        // Macros are expanded into each rule that uses them: the same check
        // comes once per rule, told apart from others by its compiled form.
        let mut per_event: Vec<(String, Check)> = Vec::new();
        for rule in rules.iter().filter_map(|&i| compiled.get(i as usize)) {
            rule.condition.visit_checks(&mut |check| {
                if check.is_per_event() {
                    let key = format!("{check:?}");
                    if !per_event.iter().any(|(seen, _)| *seen == key) {
                        per_event.push((key, check.clone()));
                    }
                }
            });
        }
        let per_event_checks = (per_event.len() <= PER_EVENT_CHECKS)
            .then(|| per_event.into_iter().map(|(_, check)| check).collect());
        Self {
            rules,
            runs: merged,
            per_event_checks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FALCO_RULES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/compat/falco-rules/falco_rules.yaml"
    );

    fn falco_rules() -> (Arc<str>, Arc<str>) {
        let text =
            std::fs::read_to_string(FALCO_RULES).expect("Falco's stable rules beside the project");
        ("falco_rules.yaml".into(), text.into())
    }

    #[test]
    fn falcos_stable_rules_compile_with_every_rule() {
        let set = RuleSet::from_texts(&[falco_rules()], &Selection::default(), MatchMode::All)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.rules().len(), 25);
        assert_eq!(set.enabled(), 25);
        let warnings: Vec<String> = set.warnings().iter().map(ToString::to_string).collect();
        assert!(
            warnings.iter().any(|w| w.contains("plugin \"container\"")),
            "{warnings:?}"
        );
    }

    /// Every rule of Falco's file and of ours, run as a program, agrees with
    /// its condition's tree on every fixture event it is a candidate for:
    /// compiling to jumps, and dropping the type checks that the index
    /// already answers, change no result.
    #[test]
    fn programs_agree_with_their_conditions_on_every_fixture_event() {
        let set = falcos_and_ours();
        let events = fixture_events();
        let (mut compared, mut held) = (0, 0);
        for (number, event) in (1..).zip(&events) {
            let id = EventView::new(event, number).type_id();
            for rule in set.rules() {
                if !is_candidate(rule, id) {
                    continue;
                }
                let tree = rule.condition.eval(&EventView::new(event, number));
                let program = rule.program.eval(&EventView::new(event, number));
                assert_eq!(tree, program, "{} on {event:?}", rule.name);
                compared += 1;
                held += usize::from(program);
            }
        }
        assert!(
            compared > 500 && held > 20,
            "{compared} compared, {held} held"
        );
    }

    /// Passing over a run of rules on one look at the macro they all need
    /// raises exactly the violations of testing each rule, in load order.
    #[test]
    fn rules_passed_over_together_are_exactly_those_that_fail() {
        let set = falcos_and_ours();
        let opens = set.candidates_of(super::super::index::event_type_id("openat"));
        let guarded = opens
            .runs
            .iter()
            .filter(|run| run.guard.is_some())
            .map(|run| run.rules.len())
            .collect::<Vec<_>>();
        assert!(
            guarded.len() >= 2 && guarded.iter().all(|&n| n >= 2),
            "runs of open rules under one macro: {guarded:?}"
        );
        let events = fixture_events();
        let mut fired = 0;
        for (number, event) in (1..).zip(&events) {
            let id = EventView::new(event, number).type_id();
            let expected: Vec<&str> = set
                .rules()
                .iter()
                .filter(|rule| rule.enabled)
                .filter(|rule| is_candidate(rule, id))
                .filter(|rule| rule.condition.eval(&EventView::new(event, number)))
                .map(|rule| rule.name.as_str())
                .collect();
            let mut out = Vec::new();
            set.evaluate(event, number, &mut out);
            let raised: Vec<&str> = out
                .iter()
                .filter_map(|v| v.violation.as_ref().map(|v| v.rule.as_str()))
                .collect();
            assert_eq!(raised, expected, "{event:?}");
            fired += raised.len();
        }
        assert!(fired > 20, "{fired} violations");
    }

    /// Whether the index offers `rule` to an event of type number `id`.
    fn is_candidate(rule: &CompiledRule, id: Option<u8>) -> bool {
        match id {
            Some(id) => rule.event_types.contains(id),
            None => rule.event_types.is_all(),
        }
    }

    fn falcos_and_ours() -> RuleSet {
        let files = [
            (Arc::from(DEFAULT_RULES_NAME), Arc::from(DEFAULT_RULES)),
            falco_rules(),
        ];
        RuleSet::from_texts(&files, &Selection::default(), MatchMode::All)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every event of the Falco rule fixtures.
    fn fixture_events() -> Vec<Event> {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/falco_rules");
        let mut events = Vec::new();
        for entry in std::fs::read_dir(fixtures).expect("the fixtures") {
            let text = std::fs::read_to_string(entry.expect("an entry").path()).expect("a file");
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                events.push(serde_json::from_str::<Event>(line).expect("an event"));
            }
        }
        assert!(events.len() > 40, "{} fixture events", events.len());
        events
    }

    /// Each fixture event twice in a row and then again after all of them,
    /// the copies sharing the original's sections as the agent's repeated
    /// calls do: with a table of verdicts, every event raises what it raises
    /// alone, its violation rendered for it (its own number), and the
    /// repeats of calls are given the kept verdict.
    #[test]
    fn a_kept_verdict_raises_what_testing_every_rule_raises() {
        let set = falcos_and_ours();
        let events = fixture_events();
        let stream: Vec<Event> = events
            .iter()
            .flat_map(|e| [e.clone(), e.clone()])
            .chain(events.iter().cloned())
            .collect();
        let raised_by = |verdicts: Option<&mut Verdicts>| {
            let mut raised = Vec::new();
            set.evaluate_batch(&stream, 1, verdicts, |i, v| raised.push((i, v)));
            raised
        };
        let mut verdicts = Verdicts::new();
        let with = raised_by(Some(&mut verdicts));
        let without = raised_by(None);
        assert_eq!(with, without);
        let kept = events
            .iter()
            .filter(|e| e.kind == EventKind::Syscall)
            .filter(|e| {
                let candidates = set.candidates_of(EventView::new(e, 1).type_id());
                !candidates.rules.is_empty() && candidates.per_event_checks.is_some()
            })
            .count();
        let (reused, stored) = verdicts.counts();
        assert!(
            kept >= 10 && with.len() > 20,
            "{kept} calls, {} violations",
            with.len()
        );
        // Each call is kept at its second sighting and given its verdict at
        // the third, unless calls that share its slot came between.
        let kept = kept as u64;
        assert!(
            stored >= kept && reused + stored <= 2 * kept && reused * 2 >= kept,
            "{kept} calls: {reused} verdicts reused, {stored} kept"
        );
    }

    /// An open of `path` by `process`, with the decoder's one string for
    /// a path it read lately.
    fn open_by(process: &Arc<crate::events::event::Process>, path: &Arc<str>) -> Event {
        let path = path.clone();
        let mut event: Event = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "kind": "syscall", "time": "2026-11-27T08:00:00Z",
            "monotonic_ns": 5, "node": "n",
            "syscall": {"name": "openat", "nr": 257, "sensor": "file", "ret": 3,
                "args": {"dirfd": -100, "flags": 0, "mode": 0},
                "fds": [{"arg": "ret", "fd": 3, "type": "file", "path": &*path}],
                "paths": [{"arg": "pathname", "raw": &*path, "path": &*path}]}
        }))
        .expect("an open event");
        event.process = Some(process.clone());
        if let Some(call) = event.syscall.as_mut().map(Arc::make_mut) {
            call.paths.iter_mut().for_each(|p| p.raw = path.clone());
            call.fds
                .iter_mut()
                .for_each(|fd| fd.path = Some(path.clone()));
        }
        event
    }

    fn reads_of(set: &RuleSet, events: &[Event], verdicts: &mut Verdicts) -> Vec<(usize, String)> {
        let mut raised = Vec::new();
        set.evaluate_batch(events, 1, Some(verdicts), |i, v| {
            raised.push((i, v.violation.map(|v| v.output).unwrap_or_default()));
        });
        raised
    }

    #[test]
    fn a_verdict_is_kept_for_one_process_section_one_call_and_one_rule_set() {
        use crate::events::event::Process;
        let reads = |cond: &str| {
            rules(&format!(
                "- rule: r\n  desc: d\n  condition: {cond}\n  output: \"%proc.name read %fd.name as event %evt.num\"\n  priority: INFO\n"
            ))
        };
        let cat = Arc::new(Process {
            pid: 7,
            comm: "cat".into(),
            ..Process::default()
        });
        let same_again = Arc::new((*cat).clone());
        let (shadow, hosts): (Arc<str>, Arc<str>) = ("/etc/shadow".into(), "/etc/hosts".into());
        let events = [
            open_by(&cat, &shadow),
            open_by(&cat, &shadow),
            open_by(&cat, &shadow),
            open_by(&same_again, &shadow),
            open_by(&cat, &hosts),
            open_by(&cat, &shadow),
        ];
        let shadow_read = |i: usize| (i, format!("cat read /etc/shadow as event {}", i + 1));
        let mut verdicts = Verdicts::new();
        assert_eq!(
            reads_of(
                &reads("evt.type = openat and fd.name = /etc/shadow"),
                &events,
                &mut verdicts
            ),
            [0, 1, 2, 3, 5].map(shadow_read)
        );
        // Seen once, seen again and kept, given to the third and the last;
        // the fourth, the same call by a section of its own (equal, but made
        // apart), is tested.
        assert_eq!(verdicts.counts(), (2, 1));

        // A new rule set does not take the old one's verdicts.
        assert_eq!(
            reads_of(
                &reads("evt.type = openat and fd.name = /etc/hosts"),
                &events,
                &mut verdicts
            ),
            [(4, "cat read /etc/hosts as event 5".to_owned())]
        );
        assert_eq!(verdicts.counts(), (4, 2));

        // A rule that reads the event's number tells repeats apart: a
        // verdict is kept with how that check came out, and the third
        // event, the first's call, is tested again; the last is not.
        assert_eq!(
            reads_of(
                &reads("evt.type = openat and evt.num = 3"),
                &events,
                &mut verdicts
            ),
            [shadow_read(2)]
        );
        assert_eq!(verdicts.counts(), (5, 3));
    }

    #[test]
    fn the_default_rules_compile() {
        let files = [(Arc::from(DEFAULT_RULES_NAME), Arc::from(DEFAULT_RULES))];
        let set = RuleSet::from_texts(&files, &Selection::default(), MatchMode::All)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(set.enabled() > 0);
    }

    fn exec(comm: &str, parents: &[&str], container: Option<&str>) -> Event {
        use crate::events::event::{Ancestor, ContainerInfo, Process, WallTime};
        Event {
            process: Some(Arc::new(Process {
                pid: 10,
                comm: comm.into(),
                exe: Some(format!("/bin/{comm}").into()),
                args: Some([comm, "-c", "id"].into_iter().collect()),
                ancestors: parents
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Ancestor::new(9 - i as u32, p, &format!("/usr/bin/{p}"), &[p]))
                    .collect(),
                ..Process::default()
            })),
            container: Some(Arc::new(match container {
                Some(id) => ContainerInfo {
                    kind: "container".into(),
                    id: Some(id.into()),
                    ..ContainerInfo::default()
                },
                None => ContainerInfo {
                    kind: "host".into(),
                    ..ContainerInfo::default()
                },
            })),
            ..Event::new(
                EventKind::ProcessExec,
                WallTime(std::time::SystemTime::now()),
                1,
                "n".into(),
            )
        }
    }

    fn rules(text: &str) -> RuleSet {
        let files = [(Arc::from("test.yaml"), Arc::from(text))];
        RuleSet::from_texts(&files, &Selection::default(), MatchMode::All)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn fired(set: &RuleSet, event: &Event) -> Vec<String> {
        set.fired(event)
    }

    const RULE: &str = "- rule: {name}\n  desc: d\n  condition: {cond}\n  output: \"o %proc.name %k8s.pod.name\"\n  priority: INFO\n  tags: [{tag}]\n";

    fn rule(name: &str, cond: &str, tag: &str) -> String {
        RULE.replace("{name}", name)
            .replace("{cond}", cond)
            .replace("{tag}", tag)
    }

    #[test]
    fn a_rule_that_only_unseen_syscalls_can_match_is_named_with_them() {
        let set = rules(
            &[
                rule("modules", "evt.type in (init_module, finit_module)", "a"),
                rule("modules or exec", "evt.type in (finit_module, execve)", "a"),
                rule("any", "proc.name = x", "a"),
            ]
            .concat(),
        );
        let blind = set.blind_to(&["init_module", "finit_module"]);
        let named: Vec<_> = blind
            .iter()
            .map(|(rule, types)| (rule.name.as_str(), types.clone()))
            .collect();
        assert_eq!(named, [("modules", vec!["finit_module", "init_module"])]);
        assert!(set.blind_to(&[]).is_empty());
    }

    #[test]
    fn a_field_without_a_value_fails_every_comparison_and_its_negation_holds() {
        let set = rules(
            &[
                rule("eq", "evt.type = execve and k8s.pod.name = x", "a"),
                rule("ne", "evt.type = execve and k8s.pod.name != x", "a"),
                rule("not", "evt.type = execve and not k8s.pod.name = x", "a"),
                rule("exists", "evt.type = execve and k8s.pod.name exists", "a"),
            ]
            .concat(),
        );
        assert_eq!(fired(&set, &exec("bash", &[], None)), ["not"]);
        let mut out = Vec::new();
        set.evaluate(&exec("bash", &[], None), 1, &mut out);
        let v = out[0].violation.as_ref().expect("a violation");
        assert_eq!(v.output, "o bash <NA>");
        assert_eq!(v.fields["k8s.pod.name"], serde_json::Value::Null);
        // The condition's own fields come with the violation too.
        assert_eq!(v.fields["evt.type"], "execve");
    }

    #[test]
    fn a_batch_raises_what_each_event_raises_alone_at_its_index_and_number() {
        let set = rules(
            &[
                rule("sshd child", "evt.type = execve and proc.pname = sshd", "a"),
                rule("seventh", "evt.type = execve and evt.num = 107", "a"),
            ]
            .concat(),
        );
        // Longer than the read-ahead, with violations at its start and end.
        let batch: Vec<Event> = (0..12)
            .map(|i| {
                let parent = if [0, 9, 11].contains(&i) {
                    "sshd"
                } else {
                    "bash"
                };
                exec("ls", &[parent], None)
            })
            .collect();
        let mut raised = Vec::new();
        let mut verdicts = crate::rules::verdicts::Verdicts::new();
        set.evaluate_batch(&batch, 101, Some(&mut verdicts), |i, violation| {
            let rule = violation.violation.map(|v| v.rule).unwrap_or_default();
            raised.push((i, rule));
        });
        let alone: Vec<(usize, String)> = (101..)
            .zip(&batch)
            .enumerate()
            .flat_map(|(i, (number, event))| {
                let mut out = Vec::new();
                set.evaluate(event, number, &mut out);
                out.into_iter()
                    .filter_map(move |v| v.violation.map(|v| (i, v.rule)))
            })
            .collect();
        let expected = [
            (0, "sshd child"),
            (6, "seventh"),
            (9, "sshd child"),
            (11, "sshd child"),
        ];
        assert_eq!(raised, alone);
        assert_eq!(
            raised,
            expected.map(|(i, rule)| (i, rule.to_owned())).to_vec()
        );
    }

    #[test]
    fn ancestors_match_by_index_or_any() {
        let set = rules(
            &[
                rule("any", "evt.type = execve and proc.aname = sshd", "a"),
                rule("second", "evt.type = execve and proc.aname[2] = sshd", "a"),
                rule("parent", "evt.type = execve and proc.pname = sshd", "a"),
            ]
            .concat(),
        );
        assert_eq!(
            fired(&set, &exec("bash", &["sudo", "sshd"], None)),
            ["any", "second"]
        );
        assert_eq!(
            fired(&set, &exec("bash", &["sshd"], None)),
            ["any", "parent"]
        );
        assert!(fired(&set, &exec("bash", &["init"], None)).is_empty());
    }

    #[test]
    fn exceptions_exclude_their_tuples() {
        let text = "- list: allowed\n  items: [npm]\n- rule: shell\n  desc: d\n  condition: evt.type = execve and proc.name = bash\n  output: o\n  priority: INFO\n  exceptions:\n    - name: parents\n      fields: proc.pname\n      values: [allowed, make]\n    - name: pair\n      fields: [proc.pname, container.id]\n      values: [[cron, host]]\n";
        let set = rules(text);
        assert_eq!(fired(&set, &exec("bash", &["sshd"], None)), ["shell"]);
        assert!(fired(&set, &exec("bash", &["npm"], None)).is_empty());
        assert!(fired(&set, &exec("bash", &["make"], None)).is_empty());
        assert!(fired(&set, &exec("bash", &["cron"], None)).is_empty());
        assert_eq!(
            fired(&set, &exec("bash", &["cron"], Some("0123456789ab0123"))),
            ["shell"]
        );
    }

    #[test]
    fn rules_switch_by_name_or_tag_and_first_mode_stops_at_the_first_match() {
        let text = [
            rule("one", "evt.type = execve and proc.name = bash", "noisy"),
            rule("two", "evt.type = execve and container.id = host", "quiet"),
        ]
        .concat();
        let files = [(Arc::from("t.yaml"), Arc::from(text.as_str()))];
        let event = exec("bash", &[], None);
        let mut set =
            RuleSet::from_texts(&files, &Selection::default(), MatchMode::All).expect("loads");
        assert_eq!(fired(&set, &event), ["one", "two"]);
        set.select(&Selection {
            disable_tags: vec!["noisy".into()],
            ..Selection::default()
        });
        assert_eq!(fired(&set, &event), ["two"]);
        set.select(&Selection {
            disable_rules: vec!["two".into()],
            enable_rules: vec!["one".into()],
            ..Selection::default()
        });
        assert_eq!(fired(&set, &event), ["one"]);
        let first =
            RuleSet::from_texts(&files, &Selection::default(), MatchMode::First).expect("loads");
        assert_eq!(fired(&first, &event), ["one"]);
    }

    #[test]
    fn an_event_is_tested_only_against_rules_of_its_type() {
        let set = rules(
            &[
                rule(
                    "exec",
                    "evt.type in (execve, execveat) and proc.name = bash",
                    "a",
                ),
                rule("open", "evt.type = openat and proc.name = bash", "a"),
                rule(
                    "not-open",
                    "not evt.type = openat and proc.name = bash",
                    "a",
                ),
            ]
            .concat(),
        );
        let types = |name: &str| {
            set.rules()
                .iter()
                .find(|r| r.name == name)
                .map(|r| r.event_types.names())
                .unwrap_or_default()
        };
        assert_eq!(types("exec"), ["execve", "execveat"]);
        assert_eq!(types("open"), ["openat"]);
        assert!(types("not-open").contains(&"execve") && !types("not-open").contains(&"openat"));
        assert_eq!(set.candidates("openat").len(), 1);
        assert_eq!(fired(&set, &exec("bash", &[], None)), ["exec", "not-open"]);
    }

    fn from_json(json: serde_json::Value) -> Event {
        serde_json::from_value(json).expect("an event")
    }

    fn base(extra: serde_json::Value) -> serde_json::Value {
        let mut event = serde_json::json!({
            "schema_version": 1, "kind": "syscall", "time": "2026-11-26T08:00:00Z",
            "monotonic_ns": 5, "node": "n",
            "process": {"pid": 7, "tid": 7, "ns_pid": 7, "ppid": 1, "uid": 0, "gid": 0,
                        "euid": 0, "egid": 0, "cgroup_id": 1, "comm": "app"}
        });
        if let (Some(e), Some(x)) = (event.as_object_mut(), extra.as_object()) {
            e.extend(x.clone());
        }
        event
    }

    #[test]
    fn connection_ends_unix_paths_and_memfd_executables_read_as_falco_reads_them() {
        let set = rules(
            &[
                rule(
                    "outbound",
                    "evt.type = connect and fd.ip != \"0.0.0.0\" and fd.net != \"127.0.0.0/8\"",
                    "a",
                ),
                rule(
                    "docker-socket",
                    "evt.type = connect and fd.name = /run/docker.sock",
                    "a",
                ),
                rule(
                    "memfd",
                    "evt.type = execve and proc.exepath = \"memfd:payload\"",
                    "a",
                ),
            ]
            .concat(),
        );
        let connect = |local: &str, remote: &str| {
            from_json(base(serde_json::json!({"syscall": {
                "name": "connect", "nr": 42, "sensor": "network", "ret": 0,
                "args": {"sockfd": 3, "addrlen": 16},
                "fds": [{"arg": "sockfd", "fd": 3, "type": "socket", "socket": {
                    "family": "inet", "type": "stream", "protocol": "tcp",
                    "local": {"address": local, "port": 40000},
                    "remote": {"address": remote, "port": 443}}}]}})))
        };
        assert_eq!(
            fired(&set, &connect("10.1.1.1", "203.0.113.5")),
            ["outbound"]
        );
        // Falco's `!=` on both ends: one end on loopback is not outbound.
        assert!(fired(&set, &connect("127.0.0.1", "203.0.113.5")).is_empty());
        let unix = from_json(base(serde_json::json!({"syscall": {
            "name": "connect", "nr": 42, "sensor": "network", "ret": 0,
            "args": {"sockfd": 3, "addrlen": 110},
            "fds": [{"arg": "sockfd", "fd": 3, "type": "socket",
                     "socket": {"family": "unix", "type": "stream", "protocol": "0"}}],
            "addresses": [{"arg": "addr", "family": "unix", "path": "/run/docker.sock"}]}})));
        assert_eq!(fired(&set, &unix), ["docker-socket"]);
        let mut memfd = exec("payload", &[], None);
        if let Some(p) = memfd.process.as_mut().map(Arc::make_mut) {
            p.exe = Some("/memfd:payload (deleted)".into());
            p.exe_memfd = true;
        }
        assert_eq!(fired(&set, &memfd), ["memfd"]);
    }

    #[test]
    fn an_execs_flags_say_what_the_executable_is() {
        let set = rules(
            &[
                rule(
                    "dropped",
                    "evt.type = execve and evt.arg.flags contains EXE_UPPER_LAYER",
                    "a",
                ),
                rule("plain", "evt.type = execve and evt.arg.flags = 0", "a"),
            ]
            .concat(),
        );
        let mut dropped = exec("miner", &[], Some("0123456789ab0123"));
        if let Some(p) = dropped.process.as_mut().map(Arc::make_mut) {
            p.exe_upper_layer = true;
        }
        assert_eq!(fired(&set, &dropped), ["dropped"]);
        assert_eq!(fired(&set, &exec("ls", &[], None)), ["plain"]);
    }
}
