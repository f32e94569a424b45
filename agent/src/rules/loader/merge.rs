//! Merging items in load order, as Falco's rule collector does: a definition
//! replaces an earlier one of the same name in place (keeping its order), an
//! append extends it, an override appends to or replaces chosen keys.

use std::collections::{HashMap, HashSet};

use super::{
    Definitions, ExceptionDef, ListDef, MacroDef, RuleDef,
    exceptions::{self, RawException},
    read::{Changes, Item, Kind, ListItem, MacroItem, NewRule, RuleItem, RuleUpdate},
};
use crate::rules::diag::{Diagnostic, Position};

/// The definitions so far, and the names whose definition failed.
#[derive(Debug, Default)]
pub(super) struct Merge {
    definitions: Definitions,
    lists: HashMap<String, usize>,
    macros: HashMap<String, usize>,
    rules: HashMap<String, usize>,
    /// Names whose definition had errors: appending to them is not reported
    /// again.
    failed: HashSet<(Kind, String)>,
}

impl Merge {
    /// The merged definitions (without warnings; the caller adds them).
    pub fn finish(self) -> Definitions {
        self.definitions
    }

    /// Remembers that the definition of `name` failed.
    pub fn failed(&mut self, kind: Kind, name: String) {
        self.failed.insert((kind, name));
    }

    /// Applies one item; problems go to `diagnostics`.
    pub fn apply(&mut self, item: Item, diagnostics: &mut Vec<Diagnostic>) {
        let (kind, name, errors) = match item {
            Item::List(list) => {
                let name = list.name.clone();
                (Kind::List, name, self.list(list))
            }
            Item::Macro(item) => {
                let name = item.name.clone();
                (Kind::Macro, name, self.macro_item(item))
            }
            Item::Rule(rule) => {
                let rule = *rule;
                let name = match &rule {
                    RuleItem::Define(rule) => rule.name.clone(),
                    RuleItem::Enable { name, .. } => name.clone(),
                    RuleItem::Update(update) => update.name.clone(),
                };
                (Kind::Rule, name, self.rule(rule))
            }
        };
        let label = kind.label(&name);
        if !errors.is_empty() {
            self.failed.insert((kind, name));
        }
        diagnostics.extend(errors.into_iter().map(|d| d.in_item(label.clone())));
    }

    /// The error for changing an item that is not defined, unless its
    /// definition failed (which was already reported).
    fn undefined(
        &self,
        kind: Kind,
        name: &str,
        position: &Position,
        message: &str,
    ) -> Vec<Diagnostic> {
        if self.failed.contains(&(kind, name.to_owned())) {
            return Vec::new();
        }
        vec![Diagnostic::error(position.clone(), message)]
    }

    fn list(&mut self, item: ListItem) -> Vec<Diagnostic> {
        match (self.lists.get(&item.name).copied(), item.append) {
            (Some(index), true) => {
                self.definitions.lists[index].items.extend(item.items);
            }
            (None, true) => {
                return self.undefined(
                    Kind::List,
                    &item.name,
                    &item.position,
                    "appends to a list that is not defined (yet): define it first, in this or \
                     an earlier file",
                );
            }
            (found, false) => {
                let list = ListDef {
                    name: item.name,
                    items: item.items,
                    position: item.position,
                };
                define(
                    &mut self.definitions.lists,
                    &mut self.lists,
                    found,
                    list,
                    |l| &l.name,
                );
            }
        }
        Vec::new()
    }

    fn macro_item(&mut self, item: MacroItem) -> Vec<Diagnostic> {
        match (self.macros.get(&item.name).copied(), item.append) {
            (Some(index), true) => {
                self.definitions.macros[index]
                    .condition
                    .append(&item.condition);
            }
            (None, true) => {
                return self.undefined(
                    Kind::Macro,
                    &item.name,
                    &item.position,
                    "appends to a macro that is not defined (yet): define it first, in this or \
                     an earlier file",
                );
            }
            (found, false) => {
                let definition = MacroDef {
                    name: item.name,
                    condition: item.condition,
                    position: item.position,
                };
                define(
                    &mut self.definitions.macros,
                    &mut self.macros,
                    found,
                    definition,
                    |m| &m.name,
                );
            }
        }
        Vec::new()
    }

    fn rule(&mut self, item: RuleItem) -> Vec<Diagnostic> {
        match item {
            RuleItem::Define(rule) => self.define_rule(rule),
            RuleItem::Enable {
                name,
                enabled,
                position,
            } => match self.rules.get(&name) {
                Some(&index) => {
                    self.definitions.rules[index].enabled = enabled;
                    Vec::new()
                }
                None => self.undefined(
                    Kind::Rule,
                    &name,
                    &position,
                    "sets `enabled` on a rule that is not defined (yet)",
                ),
            },
            RuleItem::Update(update) => self.update_rule(update),
        }
    }

    fn define_rule(&mut self, rule: NewRule) -> Vec<Diagnostic> {
        let found = self.rules.get(&rule.name).copied();
        let mut errors = Vec::new();
        if let Some(index) = found {
            errors.extend(source_mismatch(
                &self.definitions.rules[index],
                &rule.source,
                &rule.position,
            ));
        }
        let exceptions = complete_all(&rule.exceptions, &mut errors);
        if !errors.is_empty() {
            return errors;
        }
        let definition = RuleDef {
            name: rule.name,
            condition: rule.condition,
            output: rule.output,
            desc: rule.desc,
            priority: rule.priority,
            tags: rule.tags,
            enabled: rule.enabled,
            exceptions,
            actions: rule.actions,
            source: rule.source,
            position: rule.position,
            namespace: None,
        };
        define(
            &mut self.definitions.rules,
            &mut self.rules,
            found,
            definition,
            |r| &r.name,
        );
        errors
    }

    fn update_rule(&mut self, update: RuleUpdate) -> Vec<Diagnostic> {
        let Some(&index) = self.rules.get(&update.name) else {
            let message = if update.append.is_empty() {
                "overrides (replace) a rule that is not defined (yet): define it first, in this \
                 or an earlier file"
            } else {
                "appends to a rule that is not defined (yet): define it first, in this or an \
                 earlier file"
            };
            return self.undefined(Kind::Rule, &update.name, &update.position, message);
        };
        // Changes apply all or nothing: work on a copy.
        let mut rule = self.definitions.rules[index].clone();
        let mut errors = Vec::new();
        if let Some(source) = &update.source {
            errors.extend(source_mismatch(&rule, source, &update.position));
        }
        append(&mut rule, update.append, &mut errors);
        replace(&mut rule, update.replace, &mut errors);
        if errors.is_empty() {
            self.definitions.rules[index] = rule;
        }
        errors
    }
}

/// Adds a definition, or replaces the earlier one at its place.
fn define<T>(
    items: &mut Vec<T>,
    index: &mut HashMap<String, usize>,
    found: Option<usize>,
    item: T,
    name: impl Fn(&T) -> &String,
) {
    match found.and_then(|i| items.get_mut(i)) {
        Some(slot) => *slot = item,
        None => {
            index.insert(name(&item).clone(), items.len());
            items.push(item);
        }
    }
}

/// Falco refuses to change a rule's source when both name one.
fn source_mismatch(rule: &RuleDef, source: &str, position: &Position) -> Option<Diagnostic> {
    (!source.is_empty() && !rule.source.is_empty() && source != rule.source).then(|| {
        Diagnostic::error(
            position.clone(),
            format!(
                "the rule is defined for source \"{}\" and cannot be changed to source \
                 \"{source}\"",
                rule.source
            ),
        )
    })
}

fn complete_all(raw: &[RawException], errors: &mut Vec<Diagnostic>) -> Vec<ExceptionDef> {
    raw.iter()
        .filter_map(|raw| exceptions::complete(raw).map_err(|e| errors.extend(e)).ok())
        .collect()
}

fn append(rule: &mut RuleDef, changes: Changes, errors: &mut Vec<Diagnostic>) {
    if let Some(condition) = changes.condition
        && !condition.text.is_empty()
    {
        rule.condition.append(&condition);
    }
    if let Some(output) = changes.output
        && !output.text.is_empty()
    {
        rule.output.append(&output);
    }
    if let Some(desc) = changes.desc
        && !desc.is_empty()
    {
        rule.desc.push(' ');
        rule.desc.push_str(&desc);
    }
    for tag in changes.tags.unwrap_or_default() {
        if !rule.tags.contains(&tag) {
            rule.tags.push(tag);
        }
    }
    for action in changes.actions.unwrap_or_default() {
        if !rule.actions.contains(&action) {
            rule.actions.push(action);
        }
    }
    for raw in changes.exceptions.unwrap_or_default() {
        match rule.exceptions.iter_mut().find(|e| e.name == raw.name) {
            // Values are added to an exception of that name; its fields and
            // comps stay as they are.
            Some(existing) => {
                let name = &raw.name;
                if raw.fields.is_some() {
                    errors.push(Diagnostic::error(
                        raw.position.clone(),
                        format!(
                            "exception \"{name}\" already exists: only values can be appended \
                             to it, not fields"
                        ),
                    ));
                }
                if raw.comps.is_some() {
                    errors.push(Diagnostic::error(
                        raw.position.clone(),
                        format!(
                            "exception \"{name}\" already exists: only values can be appended \
                             to it, not comps"
                        ),
                    ));
                }
                let problems = exceptions::check_values(name, &existing.fields, &raw.values);
                if problems.is_empty() {
                    existing
                        .values
                        .extend(raw.values.into_iter().map(|(value, _)| value));
                }
                errors.extend(problems);
            }
            None => {
                if raw.fields.is_some() && raw.values.is_empty() {
                    errors.push(Diagnostic::error(
                        raw.position.clone(),
                        format!("appended exception \"{}\" has no values", raw.name),
                    ));
                    continue;
                }
                match exceptions::complete(&raw) {
                    Ok(exception) => rule.exceptions.push(exception),
                    Err(problems) => errors.extend(problems),
                }
            }
        }
    }
}

fn replace(rule: &mut RuleDef, changes: Changes, errors: &mut Vec<Diagnostic>) {
    if let Some(condition) = changes.condition {
        rule.condition = condition;
    }
    if let Some(output) = changes.output {
        rule.output = output;
    }
    if let Some(desc) = changes.desc {
        rule.desc = desc;
    }
    if let Some(tags) = changes.tags {
        rule.tags = tags;
    }
    if let Some(actions) = changes.actions {
        rule.actions = actions;
    }
    if let Some(raw) = changes.exceptions {
        rule.exceptions = complete_all(&raw, errors);
    }
    if let Some(priority) = changes.priority {
        rule.priority = priority;
    }
    if let Some(enabled) = changes.enabled {
        rule.enabled = enabled;
    }
}
