//! A loaded, compiled set of rules, indexed by event type, and its
//! evaluation: an event is tested only against the enabled rules that can
//! match its type.

use std::{path::PathBuf, sync::Arc};

use super::{
    compile::{self, CompiledRule},
    diag::{Diagnostic, RulesError},
    fields::EventView,
    index::{event_type_id, event_type_names},
    loader,
};
use crate::events::event::{Event, EventKind, Violation};

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

/// Compiled rules ready to evaluate.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    /// For each event type id, the enabled rules that can match it.
    by_type: Vec<Box<[u32]>>,
    /// Enabled rules for events whose type no rule can name.
    untyped: Box<[u32]>,
    mode: MatchMode,
    warnings: Vec<Diagnostic>,
    macros: usize,
    lists: usize,
}

impl RuleSet {
    /// Loads and compiles rules from their sources.
    pub fn load(sources: &Sources) -> Result<Self, RulesError> {
        let mut files: Vec<(Arc<str>, Arc<str>)> = Vec::new();
        if sources.defaults {
            files.push((DEFAULT_RULES_NAME.into(), DEFAULT_RULES.into()));
        }
        let mut unreadable = Vec::new();
        for path in &sources.files {
            let name: Arc<str> = path.display().to_string().into();
            match std::fs::read_to_string(path) {
                Ok(text) => files.push((name, text.into())),
                Err(e) => unreadable.push(Diagnostic::error(
                    super::diag::Position {
                        file: name,
                        line: 1,
                        column: 1,
                    },
                    format!("cannot read the file: {e}"),
                )),
            }
        }
        if !unreadable.is_empty() {
            return Err(RulesError(unreadable));
        }
        Self::from_texts(&files, &sources.selection, sources.mode)
    }

    /// Compiles rules from (file name, text) pairs, in load order.
    pub fn from_texts(
        files: &[(Arc<str>, Arc<str>)],
        selection: &Selection,
        mode: MatchMode,
    ) -> Result<Self, RulesError> {
        let definitions = loader::load(files)?;
        let compiled = compile::compile(&definitions)?;
        let mut set = Self {
            rules: compiled.rules,
            by_type: Vec::new(),
            untyped: Box::new([]),
            mode,
            warnings: compiled.warnings,
            macros: definitions.macros.len(),
            lists: definitions.lists.len(),
        };
        set.select(selection);
        Ok(set)
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
        self.by_type = by_type.into_iter().map(Vec::into_boxed_slice).collect();
        self.untyped = untyped.into();
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

    /// The enabled rules that can match an event of this type.
    fn candidates(&self, event_type: &str) -> &[u32] {
        match event_type_id(event_type) {
            Some(id) => self.by_type.get(usize::from(id)).map_or(&[], |b| b),
            None => &self.untyped,
        }
    }

    /// Tests `event` (the `number`th the rules have seen) and appends a
    /// violation for each rule it matches.
    pub fn evaluate(&self, event: &Event, number: u64, out: &mut Vec<Event>) {
        if matches!(event.kind, EventKind::Violation | EventKind::EventsLost) {
            return;
        }
        let view = EventView::new(event, number);
        let event_type = view.event_type();
        for &i in self.candidates(event_type) {
            let Some(rule) = self.rules.get(i as usize) else {
                continue;
            };
            if !rule.condition.eval(&view) {
                continue;
            }
            let (output, fields) = rule.output.render(&view);
            let mut violation = event.clone();
            violation.kind = EventKind::Violation;
            violation.violation = Some(Box::new(Violation {
                rule: rule.name.clone(),
                priority: rule.priority,
                tags: rule.tags.clone(),
                output,
                fields,
                event_type: event_type.to_owned(),
            }));
            out.push(violation);
            if self.mode == MatchMode::First {
                break;
            }
        }
    }

    /// Whether `event` matches any enabled rule, without building violations
    /// (for benchmarks and tests).
    pub fn matches(&self, event: &Event, number: u64) -> usize {
        let view = EventView::new(event, number);
        self.candidates(view.event_type())
            .iter()
            .filter_map(|&i| self.rules.get(i as usize))
            .filter(|rule| rule.condition.eval(&view))
            .count()
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

    #[test]
    fn the_default_rules_compile() {
        let files = [(Arc::from(DEFAULT_RULES_NAME), Arc::from(DEFAULT_RULES))];
        let set = RuleSet::from_texts(&files, &Selection::default(), MatchMode::All)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(set.enabled() > 0);
    }
}
