//! Rules files: YAML documents of `- rule:`, `- macro:`, `- list:` items, read
//! with the position of every item and value, then merged in load order the
//! way Falco merges them (`append`, `override`, `enabled`).

use std::sync::Arc;

use super::diag::Position;

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

/// A list after merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListDef {
    /// Its name.
    pub name: String,
    /// Its items as written (an item may name another list).
    pub items: Vec<String>,
    /// Where it was first defined.
    pub position: Position,
}

/// A macro after merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacroDef {
    /// Its name.
    pub name: String,
    /// Its condition.
    pub condition: SourceText,
    /// Where it was first defined.
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
    /// The event source (`syscall` unless said otherwise); rules of other
    /// sources are kept but not compiled.
    pub source: String,
    /// Where it was first defined.
    pub position: Position,
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
