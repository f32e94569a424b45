//! A condition as a branching program: its checks in a flat list, each
//! saying which check comes next when it holds and when it fails.
//!
//! The tree of [`Node`]s is what the compiler builds and reasons about; this
//! is what the rules run. Walking the tree costs a recursive call and an
//! indirect branch for every `and`, `or` and `not` on the way to each check,
//! and those nodes are most of what a Falco condition is made of. Here they
//! are gone: `and`, `or` and `not` became the jumps between checks, so
//! evaluating a condition is one loop over the checks it reaches.

use super::{
    eval::{Check, DirectCheck, Node},
    fields::{EventView, FlagField, IntField, TextField},
    index::EventTypes,
    ops::{IntTest, StrTest},
};

/// Where a step goes next: another step, or an outcome.
type Target = u32;

/// The condition holds.
const HOLDS: Target = Target::MAX;
/// The condition fails.
const FAILS: Target = Target::MAX - 1;

/// A compiled condition, ready to run.
#[derive(Clone, Debug)]
pub struct Program {
    /// The first step, or an outcome for a condition known at compile time.
    entry: Target,
    steps: Box<[Step]>,
}

#[derive(Clone, Debug)]
struct Step {
    test: StepTest,
    if_true: Target,
    if_false: Target,
}

#[derive(Clone, Debug)]
enum StepTest {
    /// Most checks of Falco's rules: text, a number or a flag read where it
    /// lies and tested as it is, held here so that running one is a single
    /// dispatch.
    Text(TextField, Box<StrTest>, bool),
    Int(IntField, IntTest, bool),
    Flag(FlagField, bool),
    Check(Box<Check>),
    Types(EventTypes),
    /// A macro's condition, run at most once per event.
    Memo(u16, Box<Program>),
}

impl Program {
    /// The program of `node` for events whose type is in `types`: a check of
    /// the event's type that every such event passes (or none does) becomes
    /// a jump.
    pub fn new(node: &Node, types: EventTypes) -> Self {
        let mut builder = Builder {
            steps: Vec::new(),
            types,
        };
        let entry = builder.branch(node, HOLDS, FAILS);
        // Steps were made from the last to the first, and some (behind a
        // check that is known) can never be reached. Keep those reachable,
        // numbered in the order a walk from the entry meets them, so that
        // most jumps go forward to a step close by.
        let mut order = Vec::new();
        let mut number = vec![None; builder.steps.len()];
        let mut pending = vec![entry];
        while let Some(at) = pending.pop() {
            let Some(step) = builder.steps.get(at as usize) else {
                continue;
            };
            let Some(slot) = number.get_mut(at as usize) else {
                continue;
            };
            if slot.is_some() {
                continue;
            }
            *slot = Target::try_from(order.len()).ok();
            order.push(at as usize);
            pending.extend([step.if_false, step.if_true]);
        }
        let renumber = |target: Target| match target {
            HOLDS | FAILS => target,
            i => number.get(i as usize).copied().flatten().unwrap_or(FAILS),
        };
        let mut steps: Vec<Option<Step>> = builder.steps.into_iter().map(Some).collect();
        let steps = order
            .iter()
            .filter_map(|&i| steps.get_mut(i).and_then(Option::take))
            .map(|step| Step {
                if_true: renumber(step.if_true),
                if_false: renumber(step.if_false),
                ..step
            })
            .collect();
        Self {
            entry: renumber(entry),
            steps,
        }
    }

    /// Whether the condition holds for the event.
    pub fn eval(&self, view: &EventView<'_>) -> bool {
        let mut at = self.entry;
        loop {
            let Some(step) = self.steps.get(at as usize) else {
                return at == HOLDS;
            };
            let holds = match &step.test {
                StepTest::Text(field, test, negated) => {
                    DirectCheck::Text(*field, test, *negated).eval(view)
                }
                StepTest::Int(field, test, negated) => {
                    DirectCheck::Int(*field, test, *negated).eval(view)
                }
                StepTest::Flag(field, want) => DirectCheck::Flag(*field, *want).eval(view),
                StepTest::Check(check) => check.eval(view),
                StepTest::Types(types) => view.type_id().is_some_and(|id| types.contains(id)),
                StepTest::Memo(slot, program) => view.memo(*slot, || program.eval(view)),
            };
            at = if holds { step.if_true } else { step.if_false };
        }
    }

    /// The macro this program tests first, when the condition fails as soon
    /// as that macro has the wrong result: rules that share it can all be
    /// passed over on one look at the macro's remembered result.
    pub fn guard(&self) -> Option<Guard> {
        let step = self.steps.get(self.entry as usize)?;
        let StepTest::Memo(slot, program) = &step.test else {
            return None;
        };
        let holds = match (step.if_true, step.if_false) {
            (_, FAILS) => true,
            (FAILS, _) => false,
            _ => return None,
        };
        Some(Guard {
            slot: *slot,
            holds,
            program: (**program).clone(),
        })
    }

    /// The number of checks.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the condition is known without a check.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// A macro's result that a condition needs: `open_write` for the rules about
/// writes, `open_read` for those about reads.
#[derive(Clone, Debug)]
pub struct Guard {
    slot: u16,
    holds: bool,
    program: Program,
}

impl Guard {
    /// Whether two rules need the same macro to come out the same way.
    pub fn same_as(&self, other: &Self) -> bool {
        self.slot == other.slot && self.holds == other.holds
    }

    /// Whether the event gives the macro the result the rules need; the
    /// result is remembered for the rules themselves.
    pub fn passes(&self, view: &EventView<'_>) -> bool {
        view.memo(self.slot, || self.program.eval(view)) == self.holds
    }
}

struct Builder {
    steps: Vec<Step>,
    types: EventTypes,
}

impl Builder {
    /// Emits `node` so that it continues at `if_true` when it holds and at
    /// `if_false` when it fails; returns where it starts.
    fn branch(&mut self, node: &Node, if_true: Target, if_false: Target) -> Target {
        match node {
            Node::Const(holds) => {
                if *holds {
                    if_true
                } else {
                    if_false
                }
            }
            Node::Not(inner) => self.branch(inner, if_false, if_true),
            // Built from the last operand back, so that each operand knows
            // where the next one starts.
            Node::And(nodes) => nodes
                .iter()
                .rev()
                .fold(if_true, |next, n| self.branch(n, next, if_false)),
            Node::Or(nodes) => nodes
                .iter()
                .rev()
                .fold(if_false, |next, n| self.branch(n, if_true, next)),
            // Events of no known type can reach a rule of every type; for
            // them a type check fails, so it stays a step.
            Node::Types(types) if !self.types.is_all() && types.and(self.types) == self.types => {
                if_true
            }
            Node::Types(types) if types.and(self.types).is_empty() => if_false,
            Node::Types(types) => self.step(StepTest::Types(*types), if_true, if_false),
            Node::Check(check) => {
                let test = match check.as_direct() {
                    Some(DirectCheck::Text(field, test, negated)) => {
                        StepTest::Text(field, Box::new(test.clone()), negated)
                    }
                    Some(DirectCheck::Int(field, test, negated)) => {
                        StepTest::Int(field, test.clone(), negated)
                    }
                    Some(DirectCheck::Flag(field, want)) => StepTest::Flag(field, want),
                    None => StepTest::Check(check.clone()),
                };
                self.step(test, if_true, if_false)
            }
            Node::Memo(slot, inner) => {
                let program = Program::new(inner, self.types);
                match program.entry {
                    // Known for every event it can see: nothing to remember.
                    HOLDS => if_true,
                    FAILS => if_false,
                    _ => self.step(StepTest::Memo(*slot, Box::new(program)), if_true, if_false),
                }
            }
        }
    }

    fn step(&mut self, test: StepTest, if_true: Target, if_false: Target) -> Target {
        self.steps.push(Step {
            test,
            if_true,
            if_false,
        });
        Target::try_from(self.steps.len() - 1).unwrap_or(FAILS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        events::event::Event,
        rules::{
            eval::{Accessor, CheckTest},
            fields,
            ops::{IntTest, Test},
        },
    };

    fn exec(uid: u32, pid: u32, comm: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "kind": "process_exec", "time": "2026-11-27T08:00:00Z",
            "monotonic_ns": 5, "node": "n",
            "process": {"pid": pid, "tid": pid, "ns_pid": pid, "ppid": 1, "uid": uid,
                "gid": 0, "euid": uid, "egid": 0, "cgroup_id": 1, "comm": comm}
        }))
        .expect("an exec")
    }

    fn int_check(field: &str, n: i64) -> Node {
        let field = fields::resolve(field, None).expect("a field");
        Node::Check(Box::new(Check::new(
            Accessor {
                field,
                transformers: Box::new([]),
            },
            CheckTest::Is(Test::Int(IntTest::Eq(n))),
        )))
    }

    #[test]
    fn every_shape_of_and_or_not_runs_as_the_tree_says() {
        let leaves = || {
            vec![
                int_check("user.uid", 0),
                int_check("proc.pid", 7),
                Node::Not(Box::new(int_check("user.uid", 1000))),
                Node::Memo(3, Box::new(int_check("proc.pid", 8))),
                Node::Const(true),
                Node::Const(false),
            ]
        };
        let mut shapes = leaves();
        for a in leaves() {
            for b in leaves() {
                shapes.push(Node::And(vec![a.clone(), b.clone()].into()));
                shapes.push(Node::Or(vec![a.clone(), b.clone()].into()));
                for c in leaves() {
                    shapes.push(Node::Not(Box::new(Node::Or(
                        vec![
                            Node::And(vec![a.clone(), c.clone()].into()),
                            Node::Not(Box::new(b.clone())),
                        ]
                        .into(),
                    ))));
                }
            }
        }
        let events = [
            exec(0, 7, "sh"),
            exec(0, 8, "sh"),
            exec(1000, 7, "sh"),
            exec(1000, 9, "sh"),
        ];
        let (mut held, mut failed) = (0, 0);
        for node in &shapes {
            let program = Program::new(node, EventTypes::all());
            for event in &events {
                let (tree, run) = (
                    node.eval(&EventView::new(event, 1)),
                    program.eval(&EventView::new(event, 1)),
                );
                assert_eq!(tree, run, "{node:?} on uid {:?}", event.process);
                if run {
                    held += 1;
                } else {
                    failed += 1;
                }
            }
        }
        assert!(held > 100 && failed > 100, "{held} held, {failed} failed");
    }

    #[test]
    fn a_type_check_every_candidate_event_passes_is_no_step() {
        let execs = EventTypes::matching(|name| name == "execve");
        let opens = EventTypes::matching(|name| name == "openat");
        let node = Node::And(vec![Node::Types(execs), int_check("user.uid", 0)].into());
        assert_eq!(Program::new(&node, execs).len(), 1);
        assert_eq!(Program::new(&node, EventTypes::all()).len(), 2);
        let never = Program::new(&node, opens);
        assert!(never.is_empty());
        assert!(!never.eval(&EventView::new(&exec(0, 7, "sh"), 1)));
    }
}
