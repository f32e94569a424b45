//! Detective rules: a Falco-compatible rule engine.
//!
//! Rules files are read with positions ([`loader`]), conditions are parsed
//! into a syntax tree ([`ast`]), macros and lists are resolved, and the result
//! is compiled into checks ([`eval`]) and run as branching programs
//! ([`program`]) indexed by event type ([`index`]). Every problem is a
//! [`diag::Diagnostic`] naming the file, line, column and item.

pub mod ast;
pub mod compile;
pub mod diag;
pub mod eval;
pub mod fields;
pub mod index;
pub mod lexer;
pub mod loader;
pub mod ops;
pub mod output;
pub mod parser;
mod prefetch;
pub mod program;
pub mod reload;
pub mod resources;
pub mod ruleset;
pub mod stage;
pub mod verdicts;

pub use loader::Priority;
pub use ruleset::{MatchMode, RuleSet, Selection, Sources};

#[cfg(test)]
mod tests {
    mod defaults;
}
