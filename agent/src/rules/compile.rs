//! From merged definitions to compiled rules: conditions are parsed, macros
//! inlined (each compiled once), list references expanded, fields resolved
//! and typed, right sides prepared, and exceptions turned into a negated
//! disjunction, as Falco does. Every problem is reported with its position;
//! compilation goes on after an error so that one run reports them all.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use rustc_hash::FxHashSet;

use super::{
    ast::{CmpOp, Expr, Literal, Operand, Value},
    diag::{Diagnostic, Position, RulesError, Severity},
    eval::{Accessor, Check, CheckTest, Node},
    fields::MEMO_SLOTS,
    fields::{self, FieldType},
    index::{EventTypes, event_types},
    loader::{
        Definitions, ExceptionDef, ExceptionFields, ExceptionValue, ListDef, MacroDef, Priority,
        SourceText,
    },
    ops::{IntTest, IpNet, IpTest, Ordering, StrTest, Test, hex_bytes},
    output::{Output, split_field},
    parser,
    program::Program,
};

/// A rule ready to evaluate.
#[derive(Clone, Debug)]
pub struct CompiledRule {
    /// Its name.
    pub name: String,
    /// Its description.
    pub desc: String,
    /// Its priority.
    pub priority: Priority,
    /// Its tags.
    pub tags: Arc<[String]>,
    /// Whether it is enabled.
    pub enabled: bool,
    /// The containment actions its `actions` key binds to it.
    pub actions: Vec<crate::actions::Action>,
    /// Its condition, exceptions included.
    pub condition: Node,
    /// The same, as it runs.
    pub program: Program,
    /// Its output template.
    pub output: Output,
    /// The event types it can match.
    pub event_types: EventTypes,
    /// The fields its condition reads that its output does not show, with
    /// their names, reported with each violation.
    pub condition_fields: Vec<(Arc<str>, Accessor)>,
    /// Where it was defined.
    pub position: Position,
    /// The only namespace whose events it is tested against (a team's rule).
    pub namespace: Option<String>,
}

/// The result of a successful compilation.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The rules of the `syscall` source, in definition order.
    pub rules: Vec<CompiledRule>,
    /// Warnings from loading and compiling.
    pub warnings: Vec<Diagnostic>,
}

/// Compiles every rule of `defs`.
pub fn compile(defs: &Definitions) -> Result<Compiled, RulesError> {
    let mut compiler = Compiler::new(defs);
    let mut rules = Vec::with_capacity(defs.rules.len());
    for rule in &defs.rules {
        let item = format!("rule \"{}\"", rule.name);
        if rule.source != "syscall" {
            compiler.warn(
                rule.position.clone(),
                &item,
                format!(
                    "source \"{}\" is not supported; the rule is not loaded",
                    rule.source
                ),
            );
            continue;
        }
        let condition = compiler.condition(&rule.condition, &item);
        let exceptions = compiler.exceptions(&rule.exceptions, &item);
        let output = match Output::parse(&rule.output.text) {
            Ok(output) => Some(output),
            Err(e) => {
                compiler.error(rule.output.position_of(e.offset), &item, e.message);
                None
            }
        };
        let (Some(condition), Some(exceptions), Some(output)) = (condition, exceptions, output)
        else {
            continue;
        };
        let condition = match exceptions {
            Some(excepted) => and(vec![condition, Node::Not(Box::new(excepted))]),
            None => condition,
        };
        let types = event_types(&condition);
        if types.is_empty() {
            compiler.warn(
                rule.position.clone(),
                &item,
                "the condition can match no event type this agent reports".into(),
            );
        } else if types.is_all() {
            compiler.warn(
                rule.position.clone(),
                &item,
                "the condition names no event type, so every event is tested against it".into(),
            );
        }
        let condition_fields = condition_fields(&condition, &output);
        rules.push(CompiledRule {
            condition_fields,
            name: rule.name.clone(),
            desc: rule.desc.clone(),
            priority: rule.priority,
            tags: rule.tags.as_slice().into(),
            enabled: rule.enabled,
            actions: rule.actions.clone(),
            program: Program::new(&condition, types),
            condition,
            output,
            event_types: types,
            position: rule.position.clone(),
            namespace: rule.namespace.clone(),
        });
    }
    for m in &defs.macros {
        if !compiler.used_macros.contains(m.name.as_str()) {
            compiler.warn(
                m.position.clone(),
                &format!("macro \"{}\"", m.name),
                "not used by any rule".into(),
            );
        }
    }
    let mut diagnostics = defs.warnings.clone();
    diagnostics.append(&mut compiler.diagnostics);
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        return Err(RulesError(diagnostics));
    }
    Ok(Compiled {
        rules,
        warnings: diagnostics,
    })
}

struct Compiler<'d> {
    lists: HashMap<&'d str, &'d ListDef>,
    macros: HashMap<&'d str, &'d MacroDef>,
    /// Each macro compiled once; `None` when it failed (already reported).
    compiled_macros: HashMap<&'d str, Option<Node>>,
    /// Macros being compiled, to catch a macro that uses itself.
    stack: Vec<&'d str>,
    used_macros: HashSet<&'d str>,
    diagnostics: Vec<Diagnostic>,
    next_slot: u16,
}

/// Where the text being compiled came from, for diagnostics.
struct Ctx<'t> {
    text: &'t SourceText,
    item: &'t str,
}

impl<'d> Compiler<'d> {
    fn new(defs: &'d Definitions) -> Self {
        Self {
            lists: defs.lists.iter().map(|l| (l.name.as_str(), l)).collect(),
            macros: defs.macros.iter().map(|m| (m.name.as_str(), m)).collect(),
            compiled_macros: HashMap::new(),
            stack: Vec::new(),
            used_macros: HashSet::new(),
            diagnostics: Vec::new(),
            next_slot: 0,
        }
    }

    fn error(&mut self, position: Position, item: &str, message: String) {
        self.diagnostics
            .push(Diagnostic::error(position, message).in_item(item));
    }

    fn warn(&mut self, position: Position, item: &str, message: String) {
        self.diagnostics
            .push(Diagnostic::warning(position, message).in_item(item));
    }

    fn condition(&mut self, text: &SourceText, item: &str) -> Option<Node> {
        let expr = match parser::parse(&text.text) {
            Ok(expr) => expr,
            Err(e) => {
                self.error(text.position_of(e.offset), item, e.message);
                return None;
            }
        };
        self.expr(&expr, &Ctx { text, item })
    }

    fn expr(&mut self, expr: &Expr, ctx: &Ctx<'_>) -> Option<Node> {
        match expr {
            Expr::And(items) => self.all(items, ctx).map(and),
            Expr::Or(items) => self.all(items, ctx).map(or),
            Expr::Not(inner, _) => self.expr(inner, ctx).map(|n| match n {
                Node::Const(b) => Node::Const(!b),
                n => Node::Not(Box::new(n)),
            }),
            Expr::Macro(name, span) => self.macro_node(name, ctx.text.position_of(span.start), ctx),
            Expr::Exists(operand, _) => {
                let value = self.operand(operand, ctx)?;
                Some(Node::Check(Box::new(Check::new(value, CheckTest::Exists))))
            }
            Expr::Compare(compare) => {
                let value = self.operand(&compare.left, ctx)?;
                let test = self.test(&value, compare.op, &compare.right, ctx)?;
                Some(event_type_set(Check::new(value, test)))
            }
        }
    }

    /// Compiles every operand, reporting all errors, and fails if any did.
    fn all(&mut self, items: &[Expr], ctx: &Ctx<'_>) -> Option<Vec<Node>> {
        let nodes: Vec<Option<Node>> = items.iter().map(|e| self.expr(e, ctx)).collect();
        nodes.into_iter().collect()
    }

    fn macro_node(&mut self, name: &str, at: Position, ctx: &Ctx<'_>) -> Option<Node> {
        let Some(&def) = self.macros.get(name) else {
            self.error(at, ctx.item, format!("unknown macro \"{name}\""));
            return None;
        };
        let name = def.name.as_str();
        self.used_macros.insert(name);
        if let Some(done) = self.compiled_macros.get(name) {
            return done.clone();
        }
        if self.stack.contains(&name) {
            self.error(at, ctx.item, format!("macro \"{name}\" refers to itself"));
            return None;
        }
        self.stack.push(name);
        let item = format!("macro \"{name}\"");
        let node = self
            .condition(&def.condition, &item)
            .map(|node| self.memoized(node));
        self.stack.pop();
        self.compiled_macros.insert(name, node.clone());
        node
    }

    /// A macro worth remembering per event gets a slot, while slots last.
    fn memoized(&mut self, node: Node) -> Node {
        let composite = matches!(node, Node::And(_) | Node::Or(_) | Node::Not(_));
        if !composite || self.next_slot >= MEMO_SLOTS {
            return node;
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        Node::Memo(slot, Box::new(node))
    }

    fn operand(&mut self, operand: &Operand, ctx: &Ctx<'_>) -> Option<Accessor> {
        let mut transformers = Vec::new();
        let mut current = operand;
        while let Operand::Transform(t, inner, _) = current {
            transformers.push(*t);
            current = inner;
        }
        let Operand::Field(field) = current else {
            return None;
        };
        transformers.reverse();
        match fields::resolve(&field.name, field.arg.as_deref()) {
            Ok(resolved) => Some(Accessor {
                field: resolved,
                transformers: transformers.into(),
            }),
            Err(e) => {
                self.error(
                    ctx.text.position_of(field.span.start),
                    ctx.item,
                    e.to_string(),
                );
                None
            }
        }
    }

    /// The type an accessor yields after its transformers.
    fn value_type(accessor: &Accessor) -> FieldType {
        accessor
            .transformers
            .iter()
            .fold(accessor.field.ty, |ty, t| match t {
                super::ast::Transformer::Len => FieldType::Int,
                _ if ty == FieldType::Ip || ty == FieldType::Net => FieldType::Str,
                _ => ty,
            })
    }

    fn test(
        &mut self,
        accessor: &Accessor,
        op: CmpOp,
        right: &Value,
        ctx: &Ctx<'_>,
    ) -> Option<CheckTest> {
        let ty = Self::value_type(accessor);
        let (items, at) = match right {
            Value::Field(other) => {
                let other = self.operand(other, ctx)?;
                return Some(CheckTest::Field(op, other));
            }
            Value::Literal(l) => (vec![l.text.clone()], l.span.start),
            Value::List(items, span) => (self.expand(items), span.start),
        };
        if matches!(right, Value::List(..)) && !op.takes_list() {
            self.error(
                ctx.text.position_of(at),
                ctx.item,
                format!("operator {} takes one value, not a list", op.as_str()),
            );
            return None;
        }
        let position = ctx.text.position_of(at);
        match build_test(ty, op, &items) {
            Ok(test) => Some(test),
            Err(message) => {
                let name = field_name(accessor);
                self.error(position, ctx.item, format!("{name}: {message}"));
                None
            }
        }
    }

    /// The items of a list literal, with list references expanded.
    fn expand(&self, items: &[Literal]) -> Vec<String> {
        let mut out = Vec::new();
        for item in items {
            if item.quoted {
                out.push(item.text.clone());
            } else {
                self.expand_name(&item.text, &mut out, 0);
            }
        }
        out
    }

    fn expand_name(&self, name: &str, out: &mut Vec<String>, depth: usize) {
        // Falco pastes list items into the condition, so an item written
        // with quotes (`'"10.0.0.0/8"'`) is that text unquoted, never a name.
        if let Some(text) = unquote(name) {
            out.push(text.to_owned());
            return;
        }
        match self.lists.get(name) {
            Some(list) if depth < 64 => {
                for item in &list.items {
                    self.expand_name(item, out, depth + 1);
                }
            }
            _ => out.push(name.to_owned()),
        }
    }

    /// `None` when an exception is wrong; `Some(None)` when there is none.
    fn exceptions(&mut self, exceptions: &[ExceptionDef], item: &str) -> Option<Option<Node>> {
        let mut alternatives = Vec::new();
        let mut ok = true;
        for exception in exceptions {
            match self.exception(exception, item) {
                Some(mut nodes) => alternatives.append(&mut nodes),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        Some((!alternatives.is_empty()).then(|| or(alternatives)))
    }

    /// One node per value tuple of the exception.
    fn exception(&mut self, exception: &ExceptionDef, item: &str) -> Option<Vec<Node>> {
        let item = format!("{item} exception \"{}\"", exception.name);
        let at = exception.position.clone();
        let field_names: Vec<&str> = match &exception.fields {
            ExceptionFields::Single(f) => vec![f.as_str()],
            ExceptionFields::Tuple(fs) => fs.iter().map(String::as_str).collect(),
        };
        let mut accessors = Vec::new();
        for name in &field_names {
            let (name, arg) = split_field(name.trim());
            match fields::resolve(name, arg) {
                Ok(field) => accessors.push(Accessor {
                    field,
                    transformers: Box::new([]),
                }),
                Err(e) => {
                    self.error(at.clone(), &item, e.to_string());
                    return None;
                }
            }
        }
        let single = matches!(exception.fields, ExceptionFields::Single(_));
        let mut ops = Vec::new();
        for i in 0..accessors.len() {
            let comp = exception
                .comps
                .get(i)
                .map(String::as_str)
                .unwrap_or(if single { "in" } else { "=" });
            match CmpOp::from_name(comp) {
                Some(op) => ops.push(op),
                None => {
                    self.error(at.clone(), &item, format!("unknown operator \"{comp}\""));
                    return None;
                }
            }
        }
        let mut nodes = Vec::new();
        if single {
            // `fields: proc.name` with `in`: all values form one list.
            let (accessor, op) = (&accessors[0], ops[0]);
            if op.takes_list() {
                let mut values = Vec::new();
                for v in &exception.values {
                    self.exception_values(v, &mut values);
                }
                if values.is_empty() {
                    return Some(nodes);
                }
                nodes.push(self.exception_check(accessor, op, &values, &at, &item)?);
            } else {
                for v in &exception.values {
                    let mut values = Vec::new();
                    self.exception_values(v, &mut values);
                    nodes.push(self.exception_check(accessor, op, &values, &at, &item)?);
                }
            }
            return Some(nodes);
        }
        for tuple in &exception.values {
            let ExceptionValue::Seq(values) = tuple else {
                self.error(
                    at.clone(),
                    &item,
                    "each value must be a tuple of the exception's fields".into(),
                );
                return None;
            };
            if values.len() != accessors.len() {
                self.error(
                    at.clone(),
                    &item,
                    format!(
                        "a value has {} items for {} fields",
                        values.len(),
                        accessors.len()
                    ),
                );
                return None;
            }
            let mut checks = Vec::new();
            for ((accessor, op), value) in accessors.iter().zip(&ops).zip(values) {
                let mut items = Vec::new();
                if op.takes_list() {
                    self.exception_values(value, &mut items);
                } else if let ExceptionValue::Scalar(s) = value {
                    items.push(s.clone());
                } else {
                    self.error(
                        at.clone(),
                        &item,
                        format!("operator {} takes one value, not a list", op.as_str()),
                    );
                    return None;
                }
                checks.push(self.exception_check(accessor, *op, &items, &at, &item)?);
            }
            nodes.push(and(checks));
        }
        Some(nodes)
    }

    fn exception_values(&self, value: &ExceptionValue, out: &mut Vec<String>) {
        match value {
            ExceptionValue::Scalar(s) => self.expand_name(s, out, 0),
            ExceptionValue::Seq(items) => items.iter().for_each(|v| self.exception_values(v, out)),
        }
    }

    fn exception_check(
        &mut self,
        accessor: &Accessor,
        op: CmpOp,
        values: &[String],
        at: &Position,
        item: &str,
    ) -> Option<Node> {
        match build_test(Self::value_type(accessor), op, values) {
            Ok(test) => Some(Node::Check(Box::new(Check::new(accessor.clone(), test)))),
            Err(message) => {
                self.error(
                    at.clone(),
                    item,
                    format!("{}: {message}", field_name(accessor)),
                );
                None
            }
        }
    }
}

/// The distinct fields a condition reads, except those the output shows.
fn condition_fields(condition: &Node, output: &Output) -> Vec<(Arc<str>, Accessor)> {
    let shown: HashSet<&str> = output.field_names().collect();
    let mut seen = HashSet::new();
    let mut fields = Vec::new();
    if condition.tests_event_type()
        && !shown.contains("evt.type")
        && let Ok(field) = fields::resolve("evt.type", None)
    {
        seen.insert("evt.type".to_owned());
        fields.push((
            "evt.type".into(),
            Accessor {
                field,
                transformers: Box::new([]),
            },
        ));
    }
    condition.visit_accessors(&mut |accessor| {
        let name = accessor.display_name();
        if !shown.contains(name.as_str()) && seen.insert(name.clone()) {
            fields.push((name.into(), accessor.clone()));
        }
    });
    fields
}

fn unquote(item: &str) -> Option<&str> {
    ['"', '\'']
        .into_iter()
        .find_map(|q| item.strip_prefix(q)?.strip_suffix(q))
        .filter(|_| item.len() >= 2)
}

/// An `evt.type` check becomes a test of the event's type number against a
/// set; any other check stays as it is.
fn event_type_set(check: Check) -> Node {
    if check.value.field.id != fields::FieldId::EvtType || !check.value.transformers.is_empty() {
        return Node::Check(Box::new(check));
    }
    let passes = |test: &Test, name: &str| test.matches(&fields::Val::Str(name.into()));
    match &check.test {
        CheckTest::Is(test) => Node::Types(EventTypes::matching(|n| passes(test, n))),
        CheckTest::IsNot(test) => {
            Node::Types(EventTypes::all().without(EventTypes::matching(|n| passes(test, n))))
        }
        _ => Node::Check(Box::new(check)),
    }
}

fn field_name(accessor: &Accessor) -> &'static str {
    fields::FIELDS
        .iter()
        .find(|d| d.id == accessor.field.id)
        .map_or("field", |d| d.name)
}

/// Prepares the right side of `op` for a value of type `ty`.
fn build_test(ty: FieldType, op: CmpOp, items: &[String]) -> Result<CheckTest, String> {
    let one = || -> Result<&str, String> {
        match items {
            [one] => Ok(one.as_str()),
            _ => Err(format!("operator {} takes one value", op.as_str())),
        }
    };
    let wrap = |test: Test| match op {
        CmpOp::Ne => CheckTest::IsNot(test),
        _ => CheckTest::Is(test),
    };
    let unsupported = |what: &str| format!("operator {} does not apply to {what}", op.as_str());
    match ty {
        FieldType::Str => str_test(op, items).map(|t| wrap(Test::Str(t))),
        FieldType::Dynamic => {
            let text = str_test(op, items)?;
            let number = int_test(op, items).ok();
            Ok(wrap(Test::Dynamic { text, number }))
        }
        FieldType::Int => int_test(op, items).map(|t| wrap(Test::Int(t))),
        FieldType::Bool => {
            if !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                return Err(unsupported("a boolean"));
            }
            match one()? {
                "true" => Ok(wrap(Test::Bool(true))),
                "false" => Ok(wrap(Test::Bool(false))),
                other => Err(format!("\"{other}\" is not true or false")),
            }
        }
        FieldType::Ip | FieldType::Net => {
            if !matches!(op, CmpOp::Eq | CmpOp::Ne | CmpOp::In | CmpOp::Intersects) {
                return Err(unsupported("an address"));
            }
            let nets = items
                .iter()
                .map(|i| {
                    IpNet::parse(i).ok_or_else(|| format!("\"{i}\" is not an address or network"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(wrap(Test::Ip(IpTest::In(nets.into()))))
        }
    }
}

fn str_test(op: CmpOp, items: &[String]) -> Result<StrTest, String> {
    let single = || -> Result<&str, String> {
        match items {
            [one] => Ok(one.as_str()),
            _ => Err(format!("operator {} takes one value", op.as_str())),
        }
    };
    Ok(match op {
        CmpOp::Eq | CmpOp::Ne => StrTest::Eq(single()?.into()),
        CmpOp::In | CmpOp::Intersects => StrTest::In(
            items
                .iter()
                .map(|i| i.as_str().into())
                .collect::<FxHashSet<Box<str>>>(),
        ),
        CmpOp::Lt => StrTest::Order(Ordering::Lt, single()?.into()),
        CmpOp::Le => StrTest::Order(Ordering::Le, single()?.into()),
        CmpOp::Gt => StrTest::Order(Ordering::Gt, single()?.into()),
        CmpOp::Ge => StrTest::Order(Ordering::Ge, single()?.into()),
        CmpOp::Contains => StrTest::contains_any(&[single()?], false)?,
        CmpOp::IContains => StrTest::contains_any(&[single()?], true)?,
        CmpOp::StartsWith => StrTest::StartsWith(single()?.into()),
        CmpOp::EndsWith => StrTest::EndsWith(single()?.into()),
        CmpOp::Glob => StrTest::glob(single()?, false),
        CmpOp::IGlob => StrTest::glob(single()?, true),
        CmpOp::PMatch => StrTest::PMatch(items.iter().map(|i| i.as_str().into()).collect()),
        CmpOp::Regex => {
            let pattern = single()?;
            // Falco's regex must match the whole value.
            StrTest::Regex(regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                format!(
                    "invalid regex \"{pattern}\": {}",
                    first_line(&e.to_string())
                )
            })?)
        }
        CmpOp::BContains => {
            let bytes = hex_bytes(single()?).ok_or("bcontains needs hex bytes")?;
            StrTest::BContains(memchr::memmem::Finder::new(&bytes).into_owned())
        }
        CmpOp::BStartsWith => StrTest::BStartsWith(
            hex_bytes(single()?)
                .ok_or("bstartswith needs hex bytes")?
                .into(),
        ),
    })
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or(text)
        .trim_start_matches("error: ")
        .to_owned()
}

fn int_test(op: CmpOp, items: &[String]) -> Result<IntTest, String> {
    let parse = |s: &str| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("\"{s}\" is not a number"))
    };
    let single = || match items {
        [one] => parse(one),
        _ => Err(format!("operator {} takes one value", op.as_str())),
    };
    Ok(match op {
        CmpOp::Eq | CmpOp::Ne => IntTest::Eq(single()?),
        CmpOp::Lt => IntTest::Order(Ordering::Lt, single()?),
        CmpOp::Le => IntTest::Order(Ordering::Le, single()?),
        CmpOp::Gt => IntTest::Order(Ordering::Gt, single()?),
        CmpOp::Ge => IntTest::Order(Ordering::Ge, single()?),
        CmpOp::In | CmpOp::Intersects => IntTest::In(
            items
                .iter()
                .map(|i| parse(i))
                .collect::<Result<Vec<_>, _>>()?
                .into(),
        ),
        other => {
            return Err(format!(
                "operator {} does not apply to a number",
                other.as_str()
            ));
        }
    })
}

/// `and` of nodes, flattened, with constants folded.
fn and(nodes: Vec<Node>) -> Node {
    let mut flat = Vec::with_capacity(nodes.len());
    for node in nodes {
        match node {
            Node::And(inner) => flat.extend(inner.into_vec()),
            Node::Const(true) => {}
            Node::Const(false) => return Node::Const(false),
            n => flat.push(n),
        }
    }
    combine_types(&mut flat, |a, b| a.and(b));
    match flat.len() {
        0 => Node::Const(true),
        1 => flat.pop().unwrap_or(Node::Const(true)),
        _ => Node::And(flat.into()),
    }
}

/// `or` of nodes, flattened, constants folded, and checks of one field
/// merged: many `=` into one set, many `startswith` or `contains` into one
/// automaton, many `endswith` into one list.
fn or(nodes: Vec<Node>) -> Node {
    let mut flat = Vec::with_capacity(nodes.len());
    for node in nodes {
        match node {
            Node::Or(inner) => flat.extend(inner.into_vec()),
            Node::Const(false) => {}
            Node::Const(true) => return Node::Const(true),
            n => flat.push(n),
        }
    }
    let mut flat = merge_alternatives(flat);
    combine_types(&mut flat, |a, b| a.or(b));
    match flat.len() {
        0 => Node::Const(false),
        1 => flat.into_iter().next().unwrap_or(Node::Const(false)),
        _ => Node::Or(flat.into()),
    }
}

/// Folds the event-type sets among `nodes` into one, at the first one's place.
fn combine_types(nodes: &mut Vec<Node>, fold: impl Fn(EventTypes, EventTypes) -> EventTypes) {
    let mut combined: Option<(usize, EventTypes)> = None;
    let mut i = 0;
    while i < nodes.len() {
        if let Node::Types(types) = nodes[i] {
            match combined {
                Some((at, set)) => {
                    combined = Some((at, fold(set, types)));
                    nodes.remove(i);
                    continue;
                }
                None => combined = Some((i, types)),
            }
        }
        i += 1;
    }
    if let Some((at, set)) = combined {
        nodes[at] = Node::Types(set);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Family {
    Equal,
    Prefix,
    Suffix,
    Substring,
}

fn merge_alternatives(nodes: Vec<Node>) -> Vec<Node> {
    let mut groups: HashMap<(Accessor, Family), Vec<String>> = HashMap::new();
    let mut order: Vec<(Accessor, Family)> = Vec::new();
    let mut rest = Vec::new();
    for node in nodes {
        let key = match &node {
            Node::Check(check) => match &check.test {
                CheckTest::Is(Test::Str(StrTest::Eq(v))) => {
                    Some((Family::Equal, vec![v.to_string()]))
                }
                CheckTest::Is(Test::Str(StrTest::In(set))) => {
                    Some((Family::Equal, set.iter().map(|s| s.to_string()).collect()))
                }
                CheckTest::Is(Test::Str(StrTest::StartsWith(v))) => {
                    Some((Family::Prefix, vec![v.to_string()]))
                }
                CheckTest::Is(Test::Str(StrTest::EndsWith(v))) => {
                    Some((Family::Suffix, vec![v.to_string()]))
                }
                CheckTest::Is(Test::Str(StrTest::Contains(f))) => Some((
                    Family::Substring,
                    vec![String::from_utf8_lossy(f.needle()).into_owned()],
                )),
                _ => None,
            }
            .map(|(family, values)| ((check.value.clone(), family), values)),
            _ => None,
        };
        match key {
            Some((key, values)) => {
                if !groups.contains_key(&key) {
                    order.push(key.clone());
                }
                groups.entry(key).or_default().extend(values);
            }
            None => rest.push(node),
        }
    }
    let mut merged = Vec::with_capacity(order.len() + rest.len());
    for key in order {
        let values = groups.remove(&key).unwrap_or_default();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let test = match key.1 {
            Family::Equal if refs.len() == 1 => Ok(StrTest::Eq(refs[0].into())),
            Family::Equal => Ok(StrTest::In(refs.iter().map(|s| (*s).into()).collect())),
            Family::Prefix => StrTest::starts_with_any(&refs),
            Family::Suffix if refs.len() == 1 => Ok(StrTest::EndsWith(refs[0].into())),
            Family::Suffix => Ok(StrTest::EndsWithAny(
                refs.iter().map(|s| (*s).into()).collect(),
            )),
            Family::Substring => StrTest::contains_any(&refs, false),
        };
        match test {
            Ok(test) => merged.push(Node::Check(Box::new(Check::new(
                key.0,
                CheckTest::Is(Test::Str(test)),
            )))),
            // An automaton that cannot be built: keep the checks apart.
            Err(_) => merged.extend(refs.iter().map(|v| {
                let test = match key.1 {
                    Family::Prefix => StrTest::StartsWith((*v).into()),
                    Family::Suffix => StrTest::EndsWith((*v).into()),
                    Family::Substring => {
                        StrTest::Contains(memchr::memmem::Finder::new(v.as_bytes()).into_owned())
                    }
                    Family::Equal => StrTest::Eq((*v).into()),
                };
                Node::Check(Box::new(Check::new(
                    key.0.clone(),
                    CheckTest::Is(Test::Str(test)),
                )))
            })),
        }
    }
    merged.append(&mut rest);
    merged
}
