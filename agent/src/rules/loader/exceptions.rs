//! A rule's `exceptions`: reading them, and checking that fields, comps and
//! values fit together (Falco checks the values only when it compiles the
//! rule; here every problem is found at load time, with its position).

use std::collections::BTreeSet;

use super::{
    ExceptionDef, ExceptionFields, ExceptionValue,
    read::{Need, Scope},
    yaml::{Node, Value},
};
use crate::rules::{
    ast::CmpOp,
    diag::{Diagnostic, Position},
};

/// An exception as written, before defaults and checks.
#[derive(Clone, Debug)]
pub(super) struct RawException {
    pub name: String,
    /// Optional only when appending values to an existing exception.
    pub fields: Option<ExceptionFields>,
    pub comps: Option<Comps>,
    /// Each value with where it is written.
    pub values: Vec<(ExceptionValue, Position)>,
    pub position: Position,
}

/// `comps` as written.
#[derive(Clone, Debug)]
pub(super) enum Comps {
    /// `comps: in`.
    Single(String),
    /// `comps: [=, startswith]`.
    List(Vec<String>),
}

/// The operators a single-field exception may use: each takes the list of
/// values.
const LIST_OPERATORS: &[&str] = &["in", "pmatch", "intersects"];

const KEYS: &[&str] = &["name", "fields", "comps", "values"];

/// Reads a rule's `exceptions` value. When `appending`, `fields` may be left
/// out (values are added to an existing exception).
pub(super) fn read(
    scope: &mut Scope<'_>,
    list: &Node,
    appending: bool,
) -> Option<Vec<RawException>> {
    let entries = match &list.value {
        Value::Null => return Some(Vec::new()),
        Value::Seq(entries) => entries,
        _ => {
            scope.error(
                list.at,
                format!("\"exceptions\" must be a sequence, not {}", list.kind()),
            );
            return None;
        }
    };
    let mut out = Vec::with_capacity(entries.len());
    let mut names = BTreeSet::new();
    let mut ok = true;
    for entry in entries {
        let Value::Map(keys) = &entry.value else {
            scope.error(
                entry.at,
                format!("an exception must be a mapping, not {}", entry.kind()),
            );
            ok = false;
            continue;
        };
        let at = keys.first().map_or(entry.at, |(key, _)| key.at);
        let Some(name) = scope.string(entry, at, "name", Need::Required) else {
            ok = false;
            continue;
        };
        for (key, _) in keys {
            if let Some(key) = key.as_str()
                && !KEYS.contains(&key)
            {
                scope.warning(
                    at,
                    format!("unknown key \"{key}\" in exception \"{name}\" is ignored"),
                );
            }
        }
        if !names.insert(name.clone()) {
            scope.error(
                at,
                format!("duplicate exception name \"{name}\" in the same rule item"),
            );
            ok = false;
        }
        let fields = match entry.get("fields") {
            None if appending => None,
            None => {
                scope.error(at, format!("exception \"{name}\" has no \"fields\""));
                ok = false;
                None
            }
            Some(node) => {
                let fields = names_or_list(scope, node, &name, "fields");
                ok &= fields.is_some();
                fields.map(|f| match f {
                    Comps::Single(field) => ExceptionFields::Single(field),
                    Comps::List(fields) => ExceptionFields::Tuple(fields),
                })
            }
        };
        let comps = match entry.get("comps") {
            None => None,
            Some(node) => {
                let comps = names_or_list(scope, node, &name, "comps");
                ok &= comps.is_some();
                comps
            }
        };
        let values = match entry.get("values") {
            None => {
                if appending {
                    scope.warning(at, format!("exception \"{name}\" has no values to add"));
                }
                Vec::new()
            }
            Some(node) => match &node.value {
                Value::Seq(values) => {
                    let mut read = Vec::with_capacity(values.len());
                    for value in values {
                        match self::value(scope, value, &name) {
                            Some(v) => read.push((v, scope.position(value.at))),
                            None => ok = false,
                        }
                    }
                    read
                }
                _ => {
                    scope.error(
                        node.at,
                        format!(
                            "\"values\" of exception \"{name}\" must be a sequence, not {}",
                            node.kind()
                        ),
                    );
                    ok = false;
                    Vec::new()
                }
            },
        };
        out.push(RawException {
            name,
            fields,
            comps,
            values,
            position: scope.position(at),
        });
    }
    ok.then_some(out)
}

/// `fields` or `comps`: one non-empty string, or a sequence of them.
fn names_or_list(scope: &mut Scope<'_>, node: &Node, name: &str, key: &str) -> Option<Comps> {
    match &node.value {
        Value::Scalar(scalar) if !scalar.text.trim().is_empty() => {
            Some(Comps::Single(scalar.text.clone()))
        }
        Value::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some(text) if !text.trim().is_empty() => out.push(text.to_owned()),
                    _ => {
                        scope.error(
                            item.at,
                            format!(
                                "an entry of \"{key}\" of exception \"{name}\" must be a \
                                 non-empty string"
                            ),
                        );
                        return None;
                    }
                }
            }
            Some(Comps::List(out))
        }
        _ => {
            scope.error(
                node.at,
                format!(
                    "\"{key}\" of exception \"{name}\" must be a string or a sequence of \
                     strings, not {}",
                    node.kind()
                ),
            );
            None
        }
    }
}

/// One value: a scalar, or a sequence of values.
fn value(scope: &mut Scope<'_>, node: &Node, name: &str) -> Option<ExceptionValue> {
    match &node.value {
        Value::Scalar(scalar) => Some(ExceptionValue::Scalar(scalar.text.clone())),
        Value::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(value(scope, item, name)?);
            }
            Some(ExceptionValue::Seq(out))
        }
        _ => {
            scope.error(
                node.at,
                format!(
                    "a value of exception \"{name}\" must be a string or a sequence, not {}",
                    node.kind()
                ),
            );
            None
        }
    }
}

/// Completes a new exception: fields are required, comps get their defaults
/// and must fit the fields, values must fit the fields.
pub(super) fn complete(raw: &RawException) -> Result<ExceptionDef, Vec<Diagnostic>> {
    let name = &raw.name;
    let error = |message: String| Diagnostic::error(raw.position.clone(), message);
    let Some(fields) = &raw.fields else {
        return Err(vec![error(format!(
            "exception \"{name}\" has no \"fields\""
        ))]);
    };
    let mut errors = Vec::new();
    let comps = match (fields, &raw.comps) {
        (ExceptionFields::Single(_), None) => vec!["in".to_owned()],
        (ExceptionFields::Single(_), Some(Comps::Single(comp))) => {
            let comp = comp.trim();
            if !LIST_OPERATORS.contains(&comp) {
                errors.push(error(format!(
                    "exception \"{name}\" has one field, so its comps must be in, pmatch or \
                     intersects, not \"{comp}\""
                )));
            }
            vec![comp.to_owned()]
        }
        (ExceptionFields::Single(_), Some(Comps::List(_))) => {
            errors.push(error(format!(
                "exception \"{name}\" has one field, so its comps must be one operator, not a \
                 list"
            )));
            Vec::new()
        }
        (ExceptionFields::Tuple(fields), None) => vec!["=".to_owned(); fields.len()],
        (ExceptionFields::Tuple(fields), Some(comps)) => {
            let comps = match comps {
                Comps::Single(comp) => vec![comp.clone()],
                Comps::List(comps) => comps.clone(),
            };
            if comps.len() != fields.len() || matches!(raw.comps, Some(Comps::Single(_))) {
                errors.push(error(format!(
                    "exception \"{name}\" has {} fields, so its comps must be a list of as many \
                     operators",
                    fields.len()
                )));
            }
            let comps: Vec<String> = comps.iter().map(|c| c.trim().to_owned()).collect();
            for comp in &comps {
                if CmpOp::from_name(comp).is_none() {
                    errors.push(error(format!(
                        "\"{comp}\" in comps of exception \"{name}\" is not a comparison \
                         operator"
                    )));
                }
            }
            comps
        }
    };
    errors.extend(check_values(name, fields, &raw.values));
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ExceptionDef {
        name: name.clone(),
        fields: fields.clone(),
        comps,
        values: raw.values.iter().map(|(value, _)| value.clone()).collect(),
        position: raw.position.clone(),
    })
}

/// Checks that values fit the fields: scalars for one field, tuples of as
/// many entries as fields (each a scalar or a list of scalars) for several.
pub(super) fn check_values(
    name: &str,
    fields: &ExceptionFields,
    values: &[(ExceptionValue, Position)],
) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    for (value, position) in values {
        let problem = match (fields, value) {
            (ExceptionFields::Single(_), ExceptionValue::Scalar(_)) => None,
            (ExceptionFields::Single(_), ExceptionValue::Seq(_)) => Some(format!(
                "exception \"{name}\" has one field, so each value must be a string, not a list"
            )),
            (ExceptionFields::Tuple(fields), ExceptionValue::Scalar(_)) => Some(format!(
                "exception \"{name}\" has {} fields, so each value must be a list of {} values",
                fields.len(),
                fields.len()
            )),
            (ExceptionFields::Tuple(fields), ExceptionValue::Seq(tuple)) => {
                if tuple.len() != fields.len() {
                    Some(format!(
                        "a value of exception \"{name}\" has {} entries but the exception has {} \
                         fields",
                        tuple.len(),
                        fields.len()
                    ))
                } else if tuple.iter().any(|entry| match entry {
                    ExceptionValue::Scalar(_) => false,
                    ExceptionValue::Seq(items) => {
                        items.iter().any(|i| matches!(i, ExceptionValue::Seq(_)))
                    }
                }) {
                    Some(format!(
                        "an entry of a value of exception \"{name}\" must be a string or a list \
                         of strings"
                    ))
                } else {
                    None
                }
            }
        };
        if let Some(message) = problem {
            errors.push(Diagnostic::error(position.clone(), message));
        }
    }
    errors
}
