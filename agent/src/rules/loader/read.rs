//! Reading one item of a rules file (`- rule:`, `- macro:`, `- list:`,
//! `- required_engine_version:`, `- required_plugin_versions:`) into what it
//! asks the merge to do, checking its shape the way Falco's reader does.
//!
//! Problems are collected rather than stopping at the first; an item with an
//! error is not merged.

use std::{collections::BTreeSet, sync::Arc};

use super::{
    ENGINE_VERSION, Priority, SourceText,
    exceptions::{self, RawException},
    yaml::{Mark, Node, Value},
};
use crate::{
    actions::Action,
    rules::diag::{Diagnostic, Position, Severity},
};

/// What an item asks of the merge.
#[derive(Debug)]
pub(super) enum Item {
    /// A list definition, or items to append.
    List(ListItem),
    /// A macro definition, or a condition to append.
    Macro(MacroItem),
    /// A rule definition, toggle or update (boxed: far larger than the
    /// others).
    Rule(Box<RuleItem>),
}

/// The kinds of named item, which have separate namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    /// `- list:`.
    List,
    /// `- macro:`.
    Macro,
    /// `- rule:`.
    Rule,
}

impl Kind {
    /// How a diagnostic names an item of this kind.
    pub fn label(self, name: &str) -> String {
        match self {
            Self::List => format!("list \"{name}\""),
            Self::Macro => format!("macro \"{name}\""),
            Self::Rule => format!("rule \"{name}\""),
        }
    }
}

/// What reading one item produced.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Something to merge.
    Item(Item),
    /// A named item with errors: later appends to it are not reported again.
    Failed(Kind, String),
    /// Nothing to merge (a version requirement, an unknown item).
    Nothing,
}

/// `- list:`.
#[derive(Debug)]
pub(super) struct ListItem {
    pub name: String,
    pub items: Vec<String>,
    /// `append: true` or `override: {items: append}`.
    pub append: bool,
    pub position: Position,
}

/// `- macro:`.
#[derive(Debug)]
pub(super) struct MacroItem {
    pub name: String,
    pub condition: SourceText,
    /// `append: true` or `override: {condition: append}`.
    pub append: bool,
    pub position: Position,
}

/// `- rule:`.
#[derive(Debug)]
pub(super) enum RuleItem {
    /// A full definition (replacing any earlier one).
    Define(NewRule),
    /// Only `enabled`: toggles an earlier rule.
    Enable {
        name: String,
        enabled: bool,
        position: Position,
    },
    /// `append: true` or `override`.
    Update(RuleUpdate),
}

/// A full rule definition, its exceptions not yet checked against each other.
#[derive(Debug)]
pub(super) struct NewRule {
    pub name: String,
    pub condition: SourceText,
    pub output: SourceText,
    pub desc: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub exceptions: Vec<RawException>,
    pub actions: Vec<Action>,
    pub source: String,
    pub position: Position,
}

/// Changes to an earlier rule.
#[derive(Debug)]
pub(super) struct RuleUpdate {
    pub name: String,
    /// The `source` key when given (it must match the earlier rule's).
    pub source: Option<String>,
    /// Values to append (`override: {key: append}` or `append: true`).
    pub append: Changes,
    /// Values to replace (`override: {key: replace}`).
    pub replace: Changes,
    pub position: Position,
}

/// The values of one kind of rule update.
#[derive(Debug, Default)]
pub(super) struct Changes {
    pub condition: Option<SourceText>,
    pub output: Option<SourceText>,
    pub desc: Option<String>,
    pub tags: Option<Vec<String>>,
    pub exceptions: Option<Vec<RawException>>,
    pub priority: Option<Priority>,
    pub enabled: Option<bool>,
    pub actions: Option<Vec<Action>>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.condition.is_none()
            && self.output.is_none()
            && self.desc.is_none()
            && self.tags.is_none()
            && self.exceptions.is_none()
            && self.priority.is_none()
            && self.enabled.is_none()
            && self.actions.is_none()
    }
}

const LIST_KEYS: &[&str] = &["list", "items", "append", "override"];
const MACRO_KEYS: &[&str] = &["macro", "condition", "append", "override"];
const RULE_KEYS: &[&str] = &[
    "rule",
    "condition",
    "output",
    "desc",
    "priority",
    "source",
    "enabled",
    "capture",
    "capture_duration",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "tags",
    "exceptions",
    "actions",
    "override",
    "append",
];
/// The rule keys `override` may append to, and those it may replace.
const RULE_APPENDABLE: &[&str] = &[
    "condition",
    "output",
    "desc",
    "tags",
    "exceptions",
    "actions",
];
const RULE_REPLACEABLE: &[&str] = &[
    "actions",
    "condition",
    "output",
    "desc",
    "priority",
    "capture",
    "capture_duration",
    "tags",
    "exceptions",
    "enabled",
    "warn_evttypes",
    "skip-if-unknown-filter",
];

/// Reads one item of a file's top-level sequence; its diagnostics go to
/// `diagnostics`.
pub(super) fn read_item(
    file: &Arc<str>,
    source: &Arc<str>,
    node: &Node,
    diagnostics: &mut Vec<Diagnostic>,
) -> Outcome {
    let mut scope = Scope {
        file,
        source,
        label: None,
        diagnostics: Vec::new(),
    };
    let outcome = scope.item(node);
    let failed = scope.failed();
    let label = scope.label.take();
    diagnostics.extend(scope.diagnostics.into_iter().map(|d| match &label {
        Some(label) if d.item.is_none() => d.in_item(label.clone()),
        _ => d,
    }));
    match outcome {
        // `named` reports its own failures, so that the name is known.
        Some(Outcome::Item(_)) if failed => Outcome::Nothing,
        Some(outcome) => outcome,
        None => Outcome::Nothing,
    }
}

/// One item being read, and what is wrong with it so far.
pub(super) struct Scope<'a> {
    pub file: &'a Arc<str>,
    pub source: &'a Arc<str>,
    label: Option<String>,
    diagnostics: Vec<Diagnostic>,
}

impl Scope<'_> {
    pub fn position(&self, at: Mark) -> Position {
        Position {
            file: Arc::clone(self.file),
            line: at.line,
            column: at.column,
        }
    }

    pub fn error(&mut self, at: Mark, message: impl Into<String>) {
        let diagnostic = Diagnostic::error(self.position(at), message);
        self.diagnostics.push(diagnostic);
    }

    pub fn warning(&mut self, at: Mark, message: impl Into<String>) {
        let diagnostic = Diagnostic::warning(self.position(at), message);
        self.diagnostics.push(diagnostic);
    }

    fn failed(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    fn item(&mut self, node: &Node) -> Option<Outcome> {
        let Value::Map(entries) = &node.value else {
            self.error(
                node.at,
                format!(
                    "an item must be a mapping (such as `- rule: ...`), not {}",
                    node.kind()
                ),
            );
            return None;
        };
        // An item is where its first key is.
        let at = entries.first().map_or(node.at, |(key, _)| key.at);
        if node.get("required_engine_version").is_some() {
            self.engine_version(node, at);
            Some(Outcome::Nothing)
        } else if node.get("required_plugin_versions").is_some() {
            self.plugin_versions(node);
            Some(Outcome::Nothing)
        } else if node.get("list").is_some() {
            self.named(node, at, Kind::List, Self::list)
        } else if node.get("macro").is_some() {
            self.named(node, at, Kind::Macro, Self::macro_item)
        } else if node.get("rule").is_some() {
            self.named(node, at, Kind::Rule, Self::rule)
        } else {
            self.warning(
                at,
                "unknown top-level item (expected rule, macro, list, required_engine_version or \
                 required_plugin_versions); it is ignored",
            );
            Some(Outcome::Nothing)
        }
    }

    /// Reads the name under `kind`'s key, then the rest with `read`.
    fn named(
        &mut self,
        node: &Node,
        at: Mark,
        kind: Kind,
        read: fn(&mut Self, &Node, String, Position) -> Option<Item>,
    ) -> Option<Outcome> {
        let key = match kind {
            Kind::List => "list",
            Kind::Macro => "macro",
            Kind::Rule => "rule",
        };
        let name = self.string(node, at, key, Need::Required)?;
        self.label = Some(kind.label(&name));
        let position = self.position(at);
        let item = read(self, node, name.clone(), position);
        Some(match item {
            Some(item) if !self.failed() => Outcome::Item(item),
            _ => Outcome::Failed(kind, name),
        })
    }

    fn list(&mut self, node: &Node, name: String, position: Position) -> Option<Item> {
        let at = mark_of(node);
        let bare = !name.is_empty()
            && !name
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '(' | ')' | '"' | '\'' | '=' | ','));
        if !bare {
            self.warning(
                at,
                "a list name should not contain blanks, quotes, parentheses, `=` or `,`",
            );
        }
        let items = self.strings(node, at, "items", Need::Required);
        let append = self.append_flag(node, at);
        let (appends, replaces) = self.overrides(node, &["items"], &["items"]);
        if append && !(appends.is_empty() && replaces.is_empty()) {
            self.error(at, OVERRIDE_AND_APPEND);
        }
        self.unknown_keys(node, LIST_KEYS);
        Some(Item::List(ListItem {
            name,
            items: items?,
            append: append || appends.contains("items"),
            position,
        }))
    }

    fn macro_item(&mut self, node: &Node, name: String, position: Position) -> Option<Item> {
        let at = mark_of(node);
        let mut chars = name.chars();
        let identifier = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            self.warning(
                at,
                "a macro name should be a letter followed by letters, digits or `_`",
            );
        }
        let condition = self.text(node, at, "condition");
        let append = self.append_flag(node, at);
        let (appends, replaces) = self.overrides(node, &["condition"], &["condition"]);
        if append && !(appends.is_empty() && replaces.is_empty()) {
            self.error(at, OVERRIDE_AND_APPEND);
        }
        self.unknown_keys(node, MACRO_KEYS);
        Some(Item::Macro(MacroItem {
            name,
            condition: condition?,
            append: append || appends.contains("condition"),
            position,
        }))
    }

    fn rule(&mut self, node: &Node, name: String, position: Position) -> Option<Item> {
        let at = mark_of(node);
        let source = self.string(node, at, "source", Need::OptionalEmpty);
        let legacy = self.append_flag(node, at);
        let (appends, replaces) = self.overrides(node, RULE_APPENDABLE, RULE_REPLACEABLE);
        self.unknown_keys(node, RULE_KEYS);
        if node.get("override").is_some() {
            if legacy {
                self.error(at, OVERRIDE_AND_APPEND);
            }
            return self.rule_override(node, name, source, appends, replaces, position);
        }
        if legacy {
            return self.rule_append(node, name, source, position);
        }
        let defines = ["condition", "output", "desc", "priority"];
        if defines.iter().all(|key| node.get(key).is_none()) {
            // Falco's older way to switch an earlier rule on or off.
            let enabled = self.boolean(node, at, "enabled", Need::Required);
            self.warning(
                at,
                "a rule item with only `enabled` is deprecated; add `override: {enabled: \
                 replace}`",
            );
            self.ignored_keys(
                node,
                &["rule", "enabled", "source", "append"],
                "with only `enabled`",
            );
            return Some(Item::Rule(Box::new(RuleItem::Enable {
                name,
                enabled: enabled?,
                position,
            })));
        }
        let condition = self.text(node, at, "condition");
        let output = self.text(node, at, "output").map(trim);
        let desc = self.string(node, at, "desc", Need::Required);
        let priority = self.priority(node, at);
        let enabled = self.boolean(node, at, "enabled", Need::Optional);
        self.optional_flags(node, at);
        let tags = self.strings(node, at, "tags", Need::Optional);
        let exceptions = self.exceptions(node, false);
        let actions = self.actions(node, at, Need::Optional);
        Some(Item::Rule(Box::new(RuleItem::Define(NewRule {
            name,
            condition: condition?,
            output: output?,
            desc: desc?,
            priority: priority?,
            tags: dedup(tags.unwrap_or_default()),
            enabled: enabled.unwrap_or(true),
            exceptions: exceptions.unwrap_or_default(),
            actions: actions.unwrap_or_default(),
            source: source.unwrap_or_else(|| "syscall".to_owned()),
            position,
        }))))
    }

    fn rule_append(
        &mut self,
        node: &Node,
        name: String,
        source: Option<String>,
        position: Position,
    ) -> Option<Item> {
        let at = mark_of(node);
        self.ignored_keys(
            node,
            &["rule", "append", "source", "condition", "exceptions"],
            "with `append: true` (only condition and exceptions are appended)",
        );
        let mut append = Changes::default();
        if node.get("condition").is_some() {
            append.condition = Some(self.text(node, at, "condition")?);
        }
        if node.get("exceptions").is_some() {
            append.exceptions = Some(self.exceptions(node, true)?);
        }
        if append.is_empty() {
            self.error(
                at,
                "a rule with `append: true` must have a condition or exceptions to append",
            );
        }
        Some(Item::Rule(Box::new(RuleItem::Update(RuleUpdate {
            name,
            source,
            append,
            replace: Changes::default(),
            position,
        }))))
    }

    fn rule_override(
        &mut self,
        node: &Node,
        name: String,
        source: Option<String>,
        appends: BTreeSet<String>,
        replaces: BTreeSet<String>,
        position: Position,
    ) -> Option<Item> {
        let at = mark_of(node);
        // Every overridden key must be given, and every overridable key given
        // must say how it overrides.
        for (keys, how) in [(&appends, "append"), (&replaces, "replace")] {
            for key in keys {
                if node.get(key).is_none() {
                    self.error(
                        at,
                        format!("`override` says to {how} \"{key}\" but the item has no \"{key}\""),
                    );
                }
            }
        }
        if let Value::Map(entries) = &node.value {
            for (key, _) in entries {
                let Some(key_name) = key.as_str() else {
                    continue;
                };
                let overridable =
                    RULE_APPENDABLE.contains(&key_name) || RULE_REPLACEABLE.contains(&key_name);
                let mentioned = node.get("override").and_then(|o| o.get(key_name)).is_some();
                if overridable && !mentioned {
                    self.error(
                        key.at,
                        format!(
                            "\"{key_name}\" has no entry under `override` (say `{key_name}: \
                             append` or `{key_name}: replace`)"
                        ),
                    );
                }
            }
        }
        let append = self.changes(node, at, &appends, true);
        let replace = self.changes(node, at, &replaces, false);
        Some(Item::Rule(Box::new(RuleItem::Update(RuleUpdate {
            name,
            source,
            append: append?,
            replace: replace?,
            position,
        }))))
    }

    /// The values of `keys`, which are to be appended (`appending`) or
    /// replaced.
    fn changes(
        &mut self,
        node: &Node,
        at: Mark,
        keys: &BTreeSet<String>,
        appending: bool,
    ) -> Option<Changes> {
        let mut changes = Changes::default();
        let mut ok = true;
        let given = |key: &str| keys.contains(key) && node.get(key).is_some();
        if given("condition") {
            changes.condition = self.text(node, at, "condition");
            ok &= changes.condition.is_some();
        }
        if given("output") {
            changes.output = self.text(node, at, "output").map(trim);
            ok &= changes.output.is_some();
        }
        if given("desc") {
            changes.desc = self.string(node, at, "desc", Need::Required);
            ok &= changes.desc.is_some();
        }
        if given("tags") {
            changes.tags = self.strings(node, at, "tags", Need::Required).map(dedup);
            ok &= changes.tags.is_some();
        }
        if given("exceptions") {
            changes.exceptions = self.exceptions(node, appending);
            ok &= changes.exceptions.is_some();
        }
        if given("priority") {
            changes.priority = self.priority(node, at);
            ok &= changes.priority.is_some();
        }
        if given("enabled") {
            changes.enabled = self.boolean(node, at, "enabled", Need::Required);
            ok &= changes.enabled.is_some();
        }
        if given("actions") {
            changes.actions = self.actions(node, at, Need::Required);
            ok &= changes.actions.is_some();
        }
        if !appending {
            self.optional_flags(node, at);
        }
        ok.then_some(changes)
    }

    /// Checks keys Falco accepts but this engine ignores.
    fn optional_flags(&mut self, node: &Node, at: Mark) {
        for key in ["capture", "warn_evttypes", "skip-if-unknown-filter"] {
            self.boolean(node, at, key, Need::Optional);
        }
        if let Some(duration) = node.get("capture_duration") {
            let digits = duration
                .as_str()
                .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
            if !digits {
                self.error(
                    duration.at,
                    "\"capture_duration\" must be a whole number of milliseconds",
                );
            }
        }
    }

    fn exceptions(&mut self, node: &Node, appending: bool) -> Option<Vec<RawException>> {
        match node.get("exceptions") {
            None => Some(Vec::new()),
            Some(list) => exceptions::read(self, list, appending),
        }
    }

    fn priority(&mut self, node: &Node, at: Mark) -> Option<Priority> {
        let text = self.string(node, at, "priority", Need::Required)?;
        let parsed = Priority::from_name(&text);
        if parsed.is_none() {
            let at = node.get("priority").map_or(at, |n| n.at);
            self.error(
                at,
                format!(
                    "bad priority \"{text}\" (expected emergency, alert, critical, error, \
                     warning, notice, informational, info or debug)"
                ),
            );
        }
        parsed
    }

    fn append_flag(&mut self, node: &Node, at: Mark) -> bool {
        let append = self
            .boolean(node, at, "append", Need::Optional)
            .unwrap_or(false);
        if append {
            self.warning(
                at,
                "`append: true` is deprecated; use `override` (e.g. `override: {condition: \
                 append}`)",
            );
        }
        append
    }

    /// Reads `override`: the keys to append to and the keys to replace.
    fn overrides(
        &mut self,
        node: &Node,
        appendable: &[&str],
        replaceable: &[&str],
    ) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut appends = BTreeSet::new();
        let mut replaces = BTreeSet::new();
        let Some(overrides) = node.get("override") else {
            return (appends, replaces);
        };
        let Value::Map(entries) = &overrides.value else {
            self.error(
                overrides.at,
                format!(
                    "`override` must be a mapping of keys to append or replace, not {}",
                    overrides.kind()
                ),
            );
            return (appends, replaces);
        };
        for (key, how) in entries {
            let Some(key_name) = key.as_str() else {
                self.error(key.at, "an `override` key must be a string");
                continue;
            };
            match how.as_str() {
                Some("append") if appendable.contains(&key_name) => {
                    appends.insert(key_name.to_owned());
                }
                Some("append") if replaceable.contains(&key_name) => self.error(
                    key.at,
                    format!("\"{key_name}\" cannot be appended to, only replaced"),
                ),
                Some("replace") if replaceable.contains(&key_name) => {
                    replaces.insert(key_name.to_owned());
                }
                Some("append" | "replace") => {
                    self.error(key.at, format!("\"{key_name}\" cannot be overridden"));
                }
                _ => {
                    let allowed = match (
                        appendable.contains(&key_name),
                        replaceable.contains(&key_name),
                    ) {
                        (true, true) => "append or replace",
                        (true, false) => "append",
                        (false, true) => "replace",
                        (false, false) => "nothing (it cannot be overridden)",
                    };
                    self.error(
                        how.at,
                        format!(
                            "bad override \"{}\" for \"{key_name}\" (allowed: {allowed})",
                            how.as_str().unwrap_or("")
                        ),
                    );
                }
            }
        }
        (appends, replaces)
    }

    fn engine_version(&mut self, node: &Node, at: Mark) {
        self.unknown_keys(node, &["required_engine_version"]);
        let Some(text) = self.string(node, at, "required_engine_version", Need::Required) else {
            return;
        };
        let value_at = node.get("required_engine_version").map_or(at, |n| n.at);
        // Falco reads a bare integer N as version 0.N.0.
        let required = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            text.parse::<u32>()
                .ok()
                .map(|minor| (0, u64::from(minor), 0))
        } else {
            parse_semver(&text)
        };
        let Some(required) = required else {
            self.error(
                value_at,
                format!("cannot read engine version \"{text}\" (expected \"x.y.z\" or a number)"),
            );
            return;
        };
        let ours = parse_semver(ENGINE_VERSION).unwrap_or((0, 0, 0));
        if ours.0 != required.0 || ours < required {
            self.error(
                value_at,
                format!(
                    "rules require engine version {}.{}.{}, but this engine is version \
                     {ENGINE_VERSION}",
                    required.0, required.1, required.2
                ),
            );
        }
    }

    fn plugin_versions(&mut self, node: &Node) {
        self.unknown_keys(node, &["required_plugin_versions"]);
        let Some(list) = node.get("required_plugin_versions") else {
            return;
        };
        let Value::Seq(entries) = &list.value else {
            self.error(
                list.at,
                format!(
                    "\"required_plugin_versions\" must be a sequence, not {}",
                    list.kind()
                ),
            );
            return;
        };
        for entry in entries {
            let Some(first) = self.plugin_requirement(entry) else {
                continue;
            };
            let mut alternatives = vec![first];
            if let Some(more) = entry.get("alternatives") {
                let Value::Seq(more) = &more.value else {
                    self.error(
                        more.at,
                        format!(
                            "plugin \"alternatives\" must be a sequence, not {}",
                            more.kind()
                        ),
                    );
                    continue;
                };
                let read: Vec<_> = more.iter().map(|a| self.plugin_requirement(a)).collect();
                if read.iter().any(Option::is_none) {
                    continue;
                }
                alternatives.extend(read.into_iter().flatten());
            }
            let mut seen = BTreeSet::new();
            let mut ok = true;
            for (name, _) in &alternatives {
                if !seen.insert(name.clone()) {
                    self.error(
                        entry.at,
                        format!("plugin \"{name}\" has more than one version requirement"),
                    );
                    ok = false;
                }
            }
            if !ok {
                continue;
            }
            // The requirement is met when any alternative is; the only plugin
            // this engine stands in for is the container plugin.
            if let Some((name, version)) = alternatives.iter().find(|(n, _)| n == "container") {
                self.warning(
                    entry.at,
                    format!(
                        "plugin \"{name}\" requirement (>= {version}) is met by the built-in \
                         container fields"
                    ),
                );
            } else {
                let wanted: Vec<String> = alternatives
                    .iter()
                    .map(|(name, version)| format!("\"{name}\" (>= {version})"))
                    .collect();
                self.error(
                    entry.at,
                    format!(
                        "plugin {} is required, but this engine has no plugins",
                        wanted.join(" or ")
                    ),
                );
            }
        }
    }

    /// One `{name, version}` of `required_plugin_versions`.
    fn plugin_requirement(&mut self, entry: &Node) -> Option<(String, String)> {
        if !matches!(entry.value, Value::Map(_)) {
            self.error(
                entry.at,
                format!(
                    "a plugin requirement must be a mapping with name and version, not {}",
                    entry.kind()
                ),
            );
            return None;
        }
        let name = self.string(entry, entry.at, "name", Need::Required);
        let version = self.string(entry, entry.at, "version", Need::Required);
        let (name, version) = (name?, version?);
        if parse_semver(&version).is_none() {
            let at = entry.get("version").map_or(entry.at, |n| n.at);
            self.error(
                at,
                format!("bad version \"{version}\" for plugin \"{name}\" (expected \"x.y.z\")"),
            );
            return None;
        }
        Some((name, version))
    }

    fn unknown_keys(&mut self, node: &Node, known: &[&str]) {
        let Value::Map(entries) = &node.value else {
            return;
        };
        let mut seen = BTreeSet::new();
        for (key, _) in entries {
            match key.as_str() {
                Some(name) if !known.contains(&name) => {
                    self.warning(key.at, format!("unknown key \"{name}\" is ignored"));
                }
                Some(name) if !seen.insert(name) => {
                    self.warning(
                        key.at,
                        format!("key \"{name}\" is repeated; the first one is used"),
                    );
                }
                Some(_) => {}
                None => self.warning(key.at, "a key that is not a string is ignored"),
            }
        }
    }

    /// Warns about known keys that this form of item does not use.
    fn ignored_keys(&mut self, node: &Node, used: &[&str], form: &str) {
        let Value::Map(entries) = &node.value else {
            return;
        };
        for (key, _) in entries {
            if let Some(name) = key.as_str()
                && RULE_KEYS.contains(&name)
                && !used.contains(&name)
            {
                self.warning(key.at, format!("\"{name}\" is ignored in a rule {form}"));
            }
        }
    }

    /// A string value. `at` is where to report a missing key.
    pub fn string(&mut self, node: &Node, at: Mark, key: &str, need: Need) -> Option<String> {
        let Some(value) = node.get(key) else {
            if need == Need::Required {
                self.error(at, format!("missing \"{key}\""));
            }
            return None;
        };
        match &value.value {
            Value::Scalar(scalar) if !scalar.text.is_empty() => Some(scalar.text.clone()),
            Value::Null | Value::Scalar(_) => {
                if need != Need::OptionalEmpty {
                    self.error(value.at, format!("\"{key}\" is empty"));
                }
                None
            }
            _ => {
                self.error(
                    value.at,
                    format!("\"{key}\" must be a string, not {}", value.kind()),
                );
                None
            }
        }
    }

    /// A required string value with where it came from.
    fn text(&mut self, node: &Node, at: Mark, key: &str) -> Option<SourceText> {
        let text = self.string(node, at, key, Need::Required)?;
        let Some(Value::Scalar(scalar)) = node.get(key).map(|n| &n.value) else {
            return None;
        };
        Some(SourceText::single(
            text,
            Arc::clone(self.file),
            Arc::clone(self.source),
            scalar.content,
        ))
    }

    /// A bool, spelled as yaml-cpp (which Falco uses) accepts it.
    fn boolean(&mut self, node: &Node, at: Mark, key: &str, need: Need) -> Option<bool> {
        let Some(value) = node.get(key) else {
            if need == Need::Required {
                self.error(at, format!("missing \"{key}\""));
            }
            return None;
        };
        let parsed = value.as_str().and_then(parse_bool);
        if parsed.is_none() {
            let shown = value
                .as_str()
                .map_or_else(|| value.kind().to_owned(), |s| format!("\"{s}\""));
            self.error(
                value.at,
                format!("\"{key}\" must be a bool (true or false), not {shown}"),
            );
        }
        parsed
    }

    /// The containment actions bound to a rule (`actions: [kill, label]`),
    /// each name checked where it stands.
    fn actions(&mut self, node: &Node, at: Mark, need: Need) -> Option<Vec<Action>> {
        let names = self.strings(node, at, "actions", need)?;
        let Some(Value::Seq(items)) = node.get("actions").map(|v| &v.value) else {
            return None;
        };
        let mut actions = Vec::with_capacity(names.len());
        let mut ok = true;
        for (name, item) in names.iter().zip(items) {
            match name.parse::<Action>() {
                Ok(action) if !actions.contains(&action) => actions.push(action),
                Ok(_) => {}
                Err(e) => {
                    self.error(item.at, e.to_string());
                    ok = false;
                }
            }
        }
        ok.then_some(actions)
    }

    /// A sequence of strings (`items`, `tags`).
    fn strings(&mut self, node: &Node, at: Mark, key: &str, need: Need) -> Option<Vec<String>> {
        let Some(value) = node.get(key) else {
            if need == Need::Required {
                self.error(at, format!("missing \"{key}\""));
            }
            return None;
        };
        let Value::Seq(items) = &value.value else {
            self.error(
                value.at,
                format!("\"{key}\" must be a sequence, not {}", value.kind()),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            match item.as_str() {
                Some(text) => out.push(text.to_owned()),
                None => {
                    self.error(
                        item.at,
                        format!(
                            "an entry of \"{key}\" must be a string, not {}",
                            item.kind()
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}

/// Whether a key must be there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Need {
    /// Missing is an error; so is empty.
    Required,
    /// Missing is fine; empty is an error.
    Optional,
    /// Missing or empty is fine.
    OptionalEmpty,
}

const OVERRIDE_AND_APPEND: &str = "`override` and `append: true` cannot be used together; \
                                   put `append` entries under `override` instead";

fn mark_of(node: &Node) -> Mark {
    match &node.value {
        Value::Map(entries) => entries.first().map_or(node.at, |(key, _)| key.at),
        _ => node.at,
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    // yaml-cpp accepts these words in lower case, upper case, or capitalized.
    const WORDS: &[(&str, bool)] = &[
        ("y", true),
        ("yes", true),
        ("true", true),
        ("on", true),
        ("n", false),
        ("no", false),
        ("false", false),
        ("off", false),
    ];
    WORDS.iter().find_map(|&(word, value)| {
        let mut capitalized = word.to_owned();
        if let Some(first) = capitalized.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        (text == word || text == word.to_ascii_uppercase() || text == capitalized).then_some(value)
    })
}

/// `major.minor.patch`, ignoring any pre-release or build suffix.
fn parse_semver(text: &str) -> Option<(u64, u64, u64)> {
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let mut number = || -> Option<u64> {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let version = (number()?, number()?, number()?);
    parts.next().is_none().then_some(version)
}

/// Falco trims an output template.
fn trim(mut text: SourceText) -> SourceText {
    let end = text.text.trim_end().len();
    text.text.truncate(end);
    let lead = text.text.len() - text.text.trim_start().len();
    if lead > 0 {
        // Dropping leading blanks does not move the source: position mapping
        // counts non-blank characters.
        text.text.drain(..lead);
    }
    text
}

/// Tags form a set in Falco; keep the first of each, in file order.
fn dedup(tags: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    tags.into_iter()
        .filter(|tag| seen.insert(tag.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_are_spelled_as_yaml_cpp_spells_them() {
        assert_eq!(parse_bool("true"), Some(true));
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("OFF"), Some(false));
        assert_eq!(parse_bool("tRue"), None);
        assert_eq!(parse_bool("1"), None);
    }

    #[test]
    fn semantic_versions_parse_without_their_suffix() {
        assert_eq!(parse_semver("0.57.0"), Some((0, 57, 0)));
        assert_eq!(parse_semver("1.2.3-rc1"), Some((1, 2, 3)));
        assert_eq!(parse_semver("1.2"), None);
        assert_eq!(parse_semver("1.2.3.4"), None);
        assert_eq!(parse_semver("a.b.c"), None);
    }
}
