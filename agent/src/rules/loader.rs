//! Rules files: YAML documents of `- rule:`, `- macro:`, `- list:` items, read
//! with the position of every item and value, then merged in load order the
//! way Falco merges them (`append`, `override`, `enabled`).

use std::{path::PathBuf, sync::Arc};

use super::diag::{Diagnostic, Position, RulesError, Severity};

mod exceptions;
mod merge;
mod read;
mod source;
#[cfg(test)]
mod tests;
mod yaml;

/// The Falco engine version whose rules this engine reads: files that
/// require a later one are refused.
pub const ENGINE_VERSION: &str = "0.57.0";

/// Text taken from one or more places in rules files: a condition, or a
/// condition with appended parts. Knows where each byte came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceText {
    /// The text as the condition parser reads it (appended pieces are joined
    /// with one space).
    pub text: String,
    /// Where each piece starts in `text` and where it came from, in order.
    pub pieces: Vec<Piece>,
}

/// One contiguous piece of a [`SourceText`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Byte offset in [`SourceText::text`] where the piece starts.
    pub start: usize,
    /// The file it came from.
    pub file: Arc<str>,
    /// The file's whole text, shared by every piece from that file, so that
    /// offsets inside folded or quoted scalars can be mapped back.
    pub source: Arc<str>,
    /// Byte offset in `source` where the scalar's first character is (after
    /// any `>`/`|` header line, or the opening quote).
    pub source_offset: usize,
}

/// The priority of a rule: Falco's eight levels, most severe first.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// `EMERGENCY`.
    Emergency,
    /// `ALERT`.
    Alert,
    /// `CRITICAL`.
    Critical,
    /// `ERROR`.
    Error,
    /// `WARNING`.
    Warning,
    /// `NOTICE`.
    Notice,
    /// `INFORMATIONAL` (also `INFO`).
    Informational,
    /// `DEBUG`.
    Debug,
}

impl Priority {
    /// The priority named `name`, in any case; `info` is `informational`.
    pub fn from_name(name: &str) -> Option<Self> {
        const NAMES: &[(&str, Priority)] = &[
            ("emergency", Priority::Emergency),
            ("alert", Priority::Alert),
            ("critical", Priority::Critical),
            ("error", Priority::Error),
            ("warning", Priority::Warning),
            ("notice", Priority::Notice),
            ("informational", Priority::Informational),
            ("info", Priority::Informational),
            ("debug", Priority::Debug),
        ];
        NAMES
            .iter()
            .find(|(spelling, _)| spelling.eq_ignore_ascii_case(name))
            .map(|&(_, priority)| priority)
    }
}

impl Priority {
    /// The lowercase name, as in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Emergency => "emergency",
            Self::Alert => "alert",
            Self::Critical => "critical",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Notice => "notice",
            Self::Informational => "informational",
            Self::Debug => "debug",
        }
    }
}

/// A list after merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListDef {
    /// Its name.
    pub name: String,
    /// Its items as written (an item may name another list).
    pub items: Vec<String>,
    /// Where its definition is: a redefinition moves it (the list keeps its
    /// place in the order), an append does not.
    pub position: Position,
}

/// A macro after merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacroDef {
    /// Its name.
    pub name: String,
    /// Its condition.
    pub condition: SourceText,
    /// Where its definition is: a redefinition moves it (the macro keeps its
    /// place in the order), an append does not.
    pub position: Position,
}

/// A rule after merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleDef {
    /// Its name.
    pub name: String,
    /// Its condition.
    pub condition: SourceText,
    /// Its output template (`%field` references).
    pub output: SourceText,
    /// Its description.
    pub desc: String,
    /// Its priority.
    pub priority: Priority,
    /// Its tags.
    pub tags: Vec<String>,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Its exceptions.
    pub exceptions: Vec<ExceptionDef>,
    /// The containment actions bound to it by its `actions` key.
    pub actions: Vec<crate::actions::Action>,
    /// The event source (`syscall` unless said otherwise); rules of other
    /// sources are kept but not compiled.
    pub source: String,
    /// Where its definition is: a redefinition moves it (the rule keeps its
    /// place in the order), an append, override or `enabled` toggle does not.
    pub position: Position,
    /// The only namespace whose events it is tested against: set for a
    /// team's rules (a namespaced `RuleSet`), never by a file.
    pub namespace: Option<String>,
}

/// One exception of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionDef {
    /// Its name, unique within the rule.
    pub name: String,
    /// Its fields: one field (`fields: proc.name`) or a tuple.
    pub fields: ExceptionFields,
    /// One operator per field; when not given, `in` for a single field and
    /// `=` for each field of a tuple.
    pub comps: Vec<String>,
    /// Its values: for a single field, each item is one value or list name;
    /// for a tuple, each item is a tuple of as many values as fields (a value
    /// may itself be a list: `[a, b]`, for `in`).
    pub values: Vec<ExceptionValue>,
    /// Where it was defined.
    pub position: Position,
}

/// The fields of an exception.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExceptionFields {
    /// `fields: proc.name`.
    Single(String),
    /// `fields: [proc.name, fd.name]`.
    Tuple(Vec<String>),
}

/// One value in an exception.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExceptionValue {
    /// A scalar (a list name when it names one).
    Scalar(String),
    /// A sequence: a tuple for a tuple exception, or a list value for `in`.
    Seq(Vec<ExceptionValue>),
}

/// Everything the loaded files define, merged in load order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Definitions {
    /// Lists, in the order they were first defined.
    pub lists: Vec<ListDef>,
    /// Macros, in the order they were first defined.
    pub macros: Vec<MacroDef>,
    /// Rules, in the order they were first defined.
    pub rules: Vec<RuleDef>,
    /// Warnings (unknown keys, a plugin requirement met by built-in fields).
    pub warnings: Vec<super::diag::Diagnostic>,
}

/// Loads rules files, each a name (for positions) and its text, merging them
/// in order. Returns every problem found if any is an error; otherwise the
/// definitions, with warnings in [`Definitions::warnings`].
pub fn load(files: &[(Arc<str>, Arc<str>)]) -> Result<Definitions, RulesError> {
    let mut diagnostics = Vec::new();
    let mut merge = merge::Merge::default();
    for (name, text) in files {
        load_file(name, text, &mut merge, &mut diagnostics);
    }
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        return Err(RulesError(diagnostics));
    }
    let mut definitions = merge.finish();
    definitions.warnings = diagnostics;
    Ok(definitions)
}

/// Reads and [`load`]s rules files; a file that cannot be read is an error
/// at its line 1, column 1 (and the others are still checked).
pub fn load_paths(paths: &[PathBuf]) -> Result<Definitions, RulesError> {
    let (files, mut unreadable) = read_files(paths);
    match (load(&files), unreadable.is_empty()) {
        (result, true) => result,
        (Ok(definitions), false) => {
            unreadable.extend(definitions.warnings);
            Err(RulesError(unreadable))
        }
        (Err(RulesError(diagnostics)), false) => {
            unreadable.extend(diagnostics);
            Err(RulesError(unreadable))
        }
    }
}

/// A rules file: the name it is shown by, and its text.
pub type RulesFile = (Arc<str>, Arc<str>);

/// The largest rules file read: Falco's whole stable ruleset is 64 KiB; a
/// file far beyond this is a mistake, and it is read again on every change.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads rules files, each named as given: the (name, text) of those that
/// could be read, and an error at the start of each that could not (or
/// that is larger than [`MAX_FILE_BYTES`]).
pub fn read_files(paths: &[PathBuf]) -> (Vec<RulesFile>, Vec<Diagnostic>) {
    let mut files = Vec::with_capacity(paths.len());
    let mut unreadable = Vec::new();
    for path in paths {
        let name: Arc<str> = Arc::from(path.display().to_string());
        match read_file(path) {
            Ok(text) => files.push((name, Arc::from(text))),
            Err(message) => {
                let position = Position {
                    file: name,
                    line: 1,
                    column: 1,
                };
                unreadable.push(Diagnostic::error(position, message));
            }
        }
    }
    (files, unreadable)
}

fn read_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| format!("cannot read the rules file: {e}");
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "the file is larger than {} MiB; rules files are small",
            MAX_FILE_BYTES >> 20
        ));
    }
    Ok(text)
}

/// Reads one file's documents and merges their items.
fn load_file(
    name: &Arc<str>,
    text: &Arc<str>,
    merge: &mut merge::Merge,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let position = |line, column| Position {
        file: Arc::clone(name),
        line,
        column,
    };
    let documents = match yaml::parse(text) {
        Ok(documents) => documents,
        Err(error) => {
            diagnostics.push(Diagnostic::error(
                position(error.at.line, error.at.column),
                format!("yaml syntax error: {}", error.message),
            ));
            return;
        }
    };
    for root in documents.iter().flatten() {
        let yaml::Value::Seq(items) = &root.value else {
            diagnostics.push(Diagnostic::error(
                position(root.at.line, root.at.column),
                format!(
                    "the rules file must be a sequence of items (`- rule: ...`), not {}",
                    root.kind()
                ),
            ));
            continue;
        };
        for item in items {
            if item.value == yaml::Value::Null {
                continue;
            }
            match read::read_item(name, text, item, diagnostics) {
                read::Outcome::Item(item) => merge.apply(item, diagnostics),
                read::Outcome::Failed(kind, name) => merge.failed(kind, name),
                read::Outcome::Nothing => {}
            }
        }
    }
}
