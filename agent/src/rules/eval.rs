//! Compiled conditions and their evaluation: a tree of checks whose right
//! sides were prepared at compile time.

use std::borrow::Cow;

use base64::Engine as _;

use super::{
    ast::{CmpOp, Transformer},
    fields::{EventView, Field, Val},
    ops::Test,
};

/// A compiled condition.
#[derive(Clone, Debug)]
pub enum Node {
    /// All hold; evaluated left to right, stopping at the first that fails.
    And(Box<[Node]>),
    /// Any holds; stops at the first that holds.
    Or(Box<[Node]>),
    /// Negation.
    Not(Box<Node>),
    /// One check of one value.
    Check(Box<Check>),
    /// Known at compile time.
    Const(bool),
    /// The event's type is in the set: an `evt.type` check, compiled.
    Types(super::index::EventTypes),
    /// A macro's condition, evaluated at most once per event (several rules
    /// share macros such as `open_read`), its result kept in this slot.
    Memo(u16, Box<Node>),
}

/// A field (possibly transformed) and what it must satisfy.
#[derive(Clone, Debug)]
pub struct Check {
    /// The value checked.
    pub value: Accessor,
    /// The test.
    pub test: CheckTest,
}

/// What a check asks of its value.
#[derive(Clone, Debug)]
pub enum CheckTest {
    /// The value exists.
    Exists,
    /// The value exists and passes.
    Is(Test),
    /// The value exists and fails (`!=`): a missing value fails this too.
    IsNot(Test),
    /// Compared with another field of the same event (`val(...)`).
    Field(CmpOp, Accessor),
}

/// A field and the transformers applied to it, innermost first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Accessor {
    /// The field.
    pub field: Field,
    /// Applied in order.
    pub transformers: Box<[Transformer]>,
}

impl Accessor {
    /// The field as a rule author writes it: `proc.aname[2]`,
    /// `evt.arg.flags`, `tolower(proc.name)`.
    pub fn display_name(&self) -> String {
        let base = super::fields::FIELDS
            .iter()
            .find(|d| d.id == self.field.id)
            .map_or("?", |d| d.name);
        let mut name = match &self.field.arg {
            super::fields::FieldArg::None => base.to_owned(),
            super::fields::FieldArg::Index(i) => format!("{base}[{i}]"),
            super::fields::FieldArg::Key(k)
                if matches!(
                    self.field.id,
                    super::fields::FieldId::EvtArg | super::fields::FieldId::EvtRawArg
                ) =>
            {
                format!("{base}.{k}")
            }
            super::fields::FieldArg::Key(k) => format!("{base}[{k}]"),
        };
        for t in &self.transformers {
            name = format!("{}({name})", t.name());
        }
        name
    }

    /// The value for this event, transformed.
    pub fn get<'a>(&self, view: &'a EventView<'_>) -> Option<Val<'a>> {
        let mut value = self.field.extract(view)?;
        for t in &self.transformers {
            value = transform(*t, value)?;
        }
        Some(value)
    }
}

fn transform(t: Transformer, value: Val<'_>) -> Option<Val<'_>> {
    if let Val::List(items) = value {
        return Some(Val::List(
            items.into_iter().filter_map(|v| transform(t, v)).collect(),
        ));
    }
    let text = match value {
        Val::Str(s) => s,
        Val::Ip(ip) => Cow::Owned(ip.to_string()),
        Val::Int(n) if t == Transformer::Len => {
            return Some(Val::Int(n.to_string().len().try_into().unwrap_or(0)));
        }
        other => return Some(other),
    };
    Some(match t {
        Transformer::ToLower => Val::Str(Cow::Owned(text.to_lowercase())),
        Transformer::ToUpper => Val::Str(Cow::Owned(text.to_uppercase())),
        Transformer::B64 => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim().as_bytes())
                .ok()?;
            Val::Str(Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()))
        }
        Transformer::Basename => match text {
            Cow::Borrowed(s) => Val::Str(Cow::Borrowed(s.rsplit('/').next().unwrap_or(s))),
            Cow::Owned(s) => Val::Str(Cow::Owned(s.rsplit('/').next().unwrap_or(&s).to_owned())),
        },
        Transformer::Len => Val::Int(text.chars().count().try_into().unwrap_or(i64::MAX)),
    })
}

impl Node {
    /// Whether the condition holds for the event.
    pub fn eval(&self, view: &EventView<'_>) -> bool {
        match self {
            Self::And(nodes) => nodes.iter().all(|n| n.eval(view)),
            Self::Or(nodes) => nodes.iter().any(|n| n.eval(view)),
            Self::Not(node) => !node.eval(view),
            Self::Check(check) => check.eval(view),
            Self::Const(b) => *b,
            Self::Types(types) => view.type_id().is_some_and(|id| types.contains(id)),
            Self::Memo(slot, node) => view.memo(*slot, || node.eval(view)),
        }
    }

    /// Whether the condition tests the event's type.
    pub fn tests_event_type(&self) -> bool {
        match self {
            Self::And(nodes) | Self::Or(nodes) => nodes.iter().any(Node::tests_event_type),
            Self::Not(node) | Self::Memo(_, node) => node.tests_event_type(),
            Self::Types(_) => true,
            Self::Check(_) | Self::Const(_) => false,
        }
    }

    /// Calls `f` on every check's accessors.
    pub fn visit_accessors<'s>(&'s self, f: &mut impl FnMut(&'s Accessor)) {
        match self {
            Self::And(nodes) | Self::Or(nodes) => nodes.iter().for_each(|n| n.visit_accessors(f)),
            Self::Not(node) | Self::Memo(_, node) => node.visit_accessors(f),
            Self::Check(check) => {
                f(&check.value);
                if let CheckTest::Field(_, other) = &check.test {
                    f(other);
                }
            }
            Self::Const(_) | Self::Types(_) => {}
        }
    }
}

impl Check {
    fn eval(&self, view: &EventView<'_>) -> bool {
        let Some(value) = self.value.get(view) else {
            return false;
        };
        match &self.test {
            CheckTest::Exists => true,
            CheckTest::Is(test) => test.matches(&value),
            CheckTest::IsNot(test) => match &value {
                // Falco compares both ends of a connection (`fd.ip`,
                // `fd.net`, `fd.port`): `!=` holds when neither end matches.
                // For ancestors, it holds when any ancestor differs.
                Val::List(items) if self.value.field.both_ends() => {
                    !items.iter().any(|item| test.matches(item))
                }
                Val::List(items) => items.iter().any(|item| !test.matches(item)),
                v => !test.matches(v),
            },
            CheckTest::Field(op, other) => {
                let Some(other) = other.get(view) else {
                    return false;
                };
                compare_values(*op, &value, &other)
            }
        }
    }
}

/// Two fields compared: text with text, numbers with numbers.
fn compare_values(op: CmpOp, a: &Val<'_>, b: &Val<'_>) -> bool {
    use std::cmp::Ordering as O;
    let order = match (a, b) {
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        _ => {
            let (x, y) = (a.render(), b.render());
            match op {
                CmpOp::Contains => return x.contains(&y),
                CmpOp::IContains => return x.to_lowercase().contains(&y.to_lowercase()),
                CmpOp::StartsWith => return x.starts_with(&y),
                CmpOp::EndsWith => return x.ends_with(&y),
                _ => x.cmp(&y),
            }
        }
    };
    match op {
        CmpOp::Eq | CmpOp::In => order == O::Equal,
        CmpOp::Ne => order != O::Equal,
        CmpOp::Lt => order == O::Less,
        CmpOp::Le => order != O::Greater,
        CmpOp::Gt => order == O::Greater,
        CmpOp::Ge => order != O::Less,
        _ => false,
    }
}
