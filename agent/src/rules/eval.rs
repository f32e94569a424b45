//! Compiled conditions: a tree of checks whose right sides were prepared at
//! compile time, and each check's evaluation. The tree is what the compiler
//! reasons about (event types, what the kernel can match); the rules run it
//! as a branching program ([`super::program`]).

use std::borrow::Cow;

use base64::Engine as _;

use super::{
    ast::{CmpOp, Transformer},
    fields::{Direct, EventView, Field, FlagField, IntField, TextField, Val},
    ops::{IntTest, StrTest, Test},
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

/// A check of a value read straight from the event by a test of the value's
/// own type: what [`super::program`] runs without going through [`Check`].
#[derive(Clone, Copy, Debug)]
pub enum DirectCheck<'c> {
    /// Text and its test, negated or not.
    Text(TextField, &'c StrTest, bool),
    /// A number and its test, negated or not.
    Int(IntField, &'c IntTest, bool),
    /// A flag and the value it must have.
    Flag(FlagField, bool),
}

impl DirectCheck<'_> {
    /// Whether the value passes; a missing value fails `=` and `!=` alike,
    /// as in Falco.
    #[inline]
    pub fn eval(self, view: &EventView<'_>) -> bool {
        match self {
            Self::Text(field, test, negated) => {
                field.read(view).is_some_and(|s| test.matches(s) != negated)
            }
            Self::Int(field, test, negated) => {
                field.read(view).is_some_and(|n| test.matches(n) != negated)
            }
            Self::Flag(field, want) => field.read(view) == Some(want),
        }
    }
}

/// A field (possibly transformed) and what it must satisfy.
#[derive(Clone, Debug)]
pub struct Check {
    /// The value checked.
    pub value: Accessor,
    /// The test.
    pub test: CheckTest,
    /// Set when the value is read straight from the event (text, a number
    /// or a flag, untransformed): a test of that type then tests the value as
    /// it is, with no [`Val`] made, moved and dropped on the way. Most checks
    /// of Falco's rules are of this kind.
    direct: Option<Direct>,
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
    /// Whether the condition holds for the event, by walking the tree: the
    /// meaning the branching programs the rules run are tested against.
    #[cfg(test)]
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
        self.visit_checks(&mut |check| check.visit_accessors(&mut *f));
    }

    /// Calls `f` on every check.
    pub fn visit_checks<'s>(&'s self, f: &mut impl FnMut(&'s Check)) {
        match self {
            Self::And(nodes) | Self::Or(nodes) => nodes.iter().for_each(|n| n.visit_checks(f)),
            Self::Not(node) | Self::Memo(_, node) => node.visit_checks(f),
            Self::Check(check) => f(check),
            Self::Const(_) | Self::Types(_) => {}
        }
    }
}

impl Check {
    /// A check of `value` by `test`.
    pub fn new(value: Accessor, test: CheckTest) -> Self {
        let direct = if value.transformers.is_empty() {
            Direct::of(&value.field)
        } else {
            None
        };
        Self {
            value,
            test,
            direct,
        }
    }

    /// The check as a direct read and a test of the value's own type, with
    /// whether the test is negated (`!=`); `None` for any other check.
    pub fn as_direct(&self) -> Option<DirectCheck<'_>> {
        let (test, negated) = match &self.test {
            CheckTest::Is(test) => (test, false),
            CheckTest::IsNot(test) => (test, true),
            CheckTest::Exists | CheckTest::Field(..) => return None,
        };
        Some(match (self.direct?, test) {
            (Direct::Text(field), Test::Str(test)) => DirectCheck::Text(field, test, negated),
            (Direct::Int(field), Test::Int(test)) => DirectCheck::Int(field, test, negated),
            (Direct::Flag(field), Test::Bool(want)) => DirectCheck::Flag(field, *want != negated),
            _ => return None,
        })
    }

    /// The result of a check whose value is read directly; `None` when
    /// the test does not take the value's type as it is.
    fn eval_direct(&self, direct: Direct, view: &EventView<'_>) -> Option<bool> {
        if let CheckTest::Exists = self.test {
            return Some(match direct {
                Direct::Text(f) => f.read(view).is_some(),
                Direct::Int(f) => f.read(view).is_some(),
                Direct::Flag(f) => f.read(view).is_some(),
            });
        }
        self.as_direct().map(|check| check.eval(view))
    }

    /// Calls `f` on the accessors the check reads.
    pub fn visit_accessors<'s>(&'s self, f: &mut impl FnMut(&'s Accessor)) {
        f(&self.value);
        if let CheckTest::Field(_, other) = &self.test {
            f(other);
        }
    }

    /// Whether the check reads a field that can tell apart two events of
    /// the same call by the same process (see
    /// [`super::fields::Field::is_per_event`]).
    pub fn is_per_event(&self) -> bool {
        let mut per_event = false;
        self.visit_accessors(&mut |a| per_event |= a.field.is_per_event());
        per_event
    }

    /// Whether the value passes.
    pub fn eval(&self, view: &EventView<'_>) -> bool {
        if let Some(direct) = self.direct
            && let Some(result) = self.eval_direct(direct, view)
        {
            return result;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        events::event::Event,
        rules::{
            fields::{self, FIELDS, FieldArg},
            ops::{IntTest, Ordering, StrTest},
        },
    };

    /// An open of a file, a failed open, a connect and an exec, in the
    /// agent's JSON: between them every directly read field has a value in
    /// some and none in others.
    fn events() -> Vec<Event> {
        let process = serde_json::json!({
            "pid": 7, "tid": 7, "ns_pid": 7, "ppid": 6, "uid": 1000, "gid": 1000,
            "euid": 1000, "egid": 1000, "cgroup_id": 1, "comm": "cat",
            "exe": "/usr/bin/cat", "args": ["cat", "", "/etc/shadow"],
            "ancestors": [{"pid": 6, "start_ns": 1, "comm": "bash", "exe": "/usr/bin/bash",
                           "args": ["bash", "-c", "cat /etc/shadow"]}]
        });
        let syscalls = [
            serde_json::json!({"name": "openat", "nr": 257, "sensor": "file", "ret": 3,
                "args": {"dirfd": -100, "flags": 0, "mode": 0},
                "fds": [{"arg": "ret", "fd": 3, "type": "file", "path": "/etc/shadow"}],
                "paths": [{"arg": "pathname", "raw": "../etc/shadow", "path": "/etc/shadow"}]}),
            serde_json::json!({"name": "openat", "nr": 257, "sensor": "file", "ret": -2,
                "args": {"dirfd": -100, "flags": 0o1101, "mode": 0},
                "paths": [{"arg": "pathname", "raw": "/nope", "path": "/nope"}]}),
            serde_json::json!({"name": "connect", "nr": 42, "sensor": "network", "ret": 0,
                "args": {"sockfd": 3, "addrlen": 16},
                "fds": [{"arg": "sockfd", "fd": 3, "type": "socket", "socket": {
                    "family": "inet", "type": "stream", "protocol": "tcp",
                    "local": {"address": "10.0.0.1", "port": 40000},
                    "remote": {"address": "10.0.0.2", "port": 443}}}]}),
        ];
        let mut events: Vec<Event> = syscalls
            .into_iter()
            .map(|syscall| {
                serde_json::from_value(serde_json::json!({
                    "schema_version": 1, "kind": "syscall", "time": "2026-11-27T08:00:00Z",
                    "monotonic_ns": 5, "node": "n", "process": process, "syscall": syscall,
                    "container": {"kind": "container", "id": "0123456789abcdef0123"}
                }))
                .expect("a syscall event")
            })
            .collect();
        events.push(
            serde_json::from_value(serde_json::json!({
                "schema_version": 1, "kind": "process_exec", "time": "2026-11-27T08:00:00Z",
                "monotonic_ns": 5, "node": "n", "process": process
            }))
            .expect("an exec"),
        );
        events
    }

    #[test]
    fn checks_read_directly_agree_with_checks_through_values() {
        let events = events();
        let direct_fields: Vec<Field> = FIELDS
            .iter()
            .filter(|def| matches!(def.arg, fields::ArgSpec::None))
            .filter_map(|def| fields::resolve(def.name, None).ok())
            .filter(|field| Direct::of(field).is_some())
            .collect();
        assert!(
            direct_fields.len() >= 20,
            "the direct fields: {direct_fields:?}"
        );
        let mut compared = 0;
        for event in &events {
            let view = EventView::new(event, 1);
            for field in &direct_fields {
                assert_eq!(field.arg, FieldArg::None);
                let value = Accessor {
                    field: field.clone(),
                    transformers: Box::new([]),
                };
                let tests = match value.get(&view) {
                    Some(Val::Str(s)) => vec![
                        Test::Str(StrTest::Eq(s.as_ref().into())),
                        Test::Str(StrTest::StartsWith("/etc".into())),
                    ],
                    Some(Val::Int(n)) => vec![
                        Test::Int(IntTest::Eq(n)),
                        Test::Int(IntTest::Order(Ordering::Ge, 0)),
                    ],
                    Some(Val::Bool(b)) => vec![Test::Bool(b), Test::Bool(!b)],
                    _ => vec![
                        Test::Str(StrTest::Eq("x".into())),
                        Test::Int(IntTest::Eq(0)),
                        Test::Bool(true),
                    ],
                };
                let mut checks = vec![CheckTest::Exists];
                for test in tests {
                    checks.push(CheckTest::Is(test.clone()));
                    checks.push(CheckTest::IsNot(test));
                }
                for test in checks {
                    let direct = Check::new(value.clone(), test.clone());
                    assert!(direct.direct.is_some());
                    let through_values = Check {
                        direct: None,
                        ..direct.clone()
                    };
                    assert_eq!(
                        direct.eval(&view),
                        through_values.eval(&view),
                        "{} {test:?} on {:?}",
                        value.display_name(),
                        event.kind,
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 300, "{compared} checks compared");
    }
}
