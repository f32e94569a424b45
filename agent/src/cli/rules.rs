//! `guardrails rules check` and `guardrails rules test`: the rule author's
//! tools. Both load rules exactly as the agent does.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
};

use crate::{
    events::event::Event,
    rules::{MatchMode, RuleSet, Selection, Sources, diag::Severity, loader::ENGINE_VERSION},
};

use super::{RulesCheckArgs, RulesTestArgs};

/// Why a rules command failed.
#[derive(Debug, thiserror::Error)]
pub enum RulesCommandError {
    /// The rules did not load; each problem is on its own line.
    #[error("{0}")]
    Rules(#[from] crate::rules::diag::RulesError),
    /// The events file could not be read.
    #[error("cannot read {path}: {source}")]
    Events {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Some lines of the events file are not events.
    #[error("{count} line(s) of {path} are not events; the first: {first}")]
    BadEvents {
        /// The file.
        path: String,
        /// How many.
        count: usize,
        /// The first, with its line number.
        first: String,
    },
    /// The events file holds no event the rules can evaluate.
    #[error("{path} holds no events to evaluate")]
    NoEvents {
        /// The file.
        path: String,
    },
    /// Writing the results failed.
    #[error("cannot write the results: {0}")]
    Output(#[source] std::io::Error),
}

/// `rules check`: writes a summary to `out` and warnings to `diagnostics`;
/// errors come back as the error.
pub fn check(
    args: &RulesCheckArgs,
    out: &mut impl Write,
    diagnostics: &mut impl Write,
) -> Result<(), RulesCommandError> {
    let set = RuleSet::load(&Sources {
        defaults: args.with_defaults,
        files: args.files.clone(),
        selection: Selection::default(),
        mode: MatchMode::All,
    })?;
    for warning in set
        .warnings()
        .iter()
        .filter(|d| d.severity == Severity::Warning)
    {
        writeln!(diagnostics, "{warning}").map_err(RulesCommandError::Output)?;
    }
    let (macros, lists) = set.macros_and_lists();
    let files: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    writeln!(
        out,
        "{}: {} rules compiled ({} enabled), {macros} macros, {lists} lists; Falco engine {ENGINE_VERSION} compatible",
        files.join(", "),
        set.rules().len(),
        set.enabled(),
    )
    .map_err(RulesCommandError::Output)
}

/// `rules test`: writes each violation as one JSON line to `out` and a
/// summary to `summary`.
pub fn test(
    args: &RulesTestArgs,
    out: &mut impl Write,
    summary: &mut impl Write,
) -> Result<(), RulesCommandError> {
    let set = RuleSet::load(&Sources {
        defaults: args.with_defaults,
        files: args.rules.clone(),
        selection: Selection::default(),
        mode: if args.first {
            MatchMode::First
        } else {
            MatchMode::All
        },
    })?;
    let path = args.events.display().to_string();
    let mut events = 0u64;
    let mut by_rule: BTreeMap<String, u64> = BTreeMap::new();
    let mut violations = Vec::new();
    let bad = each_event(&args.events, |event| {
        events += 1;
        violations.clear();
        set.evaluate(&event, events, &mut violations);
        for violation in &violations {
            if let Some(v) = &violation.violation {
                *by_rule.entry(v.rule.clone()).or_default() += 1;
            }
            serde_json::to_writer(&mut *out, violation)
                .map_err(|e| RulesCommandError::Output(e.into()))?;
            out.write_all(b"\n").map_err(RulesCommandError::Output)?;
        }
        Ok(())
    })?;
    let total: u64 = by_rule.values().sum();
    writeln!(summary, "{events} events, {total} violations").map_err(RulesCommandError::Output)?;
    for (rule, count) in &by_rule {
        writeln!(summary, "  {count:>6}  {rule}").map_err(RulesCommandError::Output)?;
    }
    if let Some(first) = bad.first() {
        return Err(RulesCommandError::BadEvents {
            path,
            count: bad.len(),
            first: first.clone(),
        });
    }
    Ok(())
}

/// Reads recorded events (one JSON object per line, blank lines skipped)
/// and hands each to `f`, in order. Lines that are not events are returned,
/// each as `file:line: why`, for the caller to report after the rest.
pub(super) fn each_event(
    path: &std::path::Path,
    mut f: impl FnMut(Event) -> Result<(), RulesCommandError>,
) -> Result<Vec<String>, RulesCommandError> {
    let name = path.display().to_string();
    let io = |source| RulesCommandError::Events {
        path: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bad = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(&line) {
            Ok(event) => f(event)?,
            Err(e) => bad.push(format!("{name}:{}: {e}", i + 1)),
        }
    }
    Ok(bad)
}
