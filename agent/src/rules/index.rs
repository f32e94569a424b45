//! Which event types a rule can match, so that each event is tested only
//! against the rules that could match it.
//!
//! For every node two sets are worked out: the types for which it can be
//! true and those for which it can be false. A check of `evt.type` narrows
//! them; any other check leaves both whole. `not` swaps them, `and` and `or`
//! combine them; the rule's set is where its condition can be true.

use std::sync::LazyLock;

use super::{
    eval::{CheckTest, Node},
    fields::FieldId,
};

/// Every event type the agent reports, by Falco's name.
pub fn event_type_names() -> &'static [&'static str] {
    &UNIVERSE
}

static UNIVERSE: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut names = vec![
        "execve",
        "execveat",
        "clone",
        "clone3",
        "fork",
        "vfork",
        "procexit",
        "tcp_state",
    ];
    names.extend(crate::bpf::syscalls::SYSCALLS.iter().map(|s| s.name));
    names.sort_unstable();
    names.dedup();
    names
});

static IDS: LazyLock<rustc_hash::FxHashMap<&'static str, u8>> = LazyLock::new(|| {
    UNIVERSE
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, u8::try_from(i).unwrap_or(u8::MAX)))
        .collect()
});

/// The number of an event type, or `None` for a type no rule can name.
pub fn event_type_id(name: &str) -> Option<u8> {
    IDS.get(name).copied()
}

/// Type numbers by syscall number, so that most events find theirs without
/// hashing a name.
static BY_NR: LazyLock<Vec<Option<u8>>> = LazyLock::new(|| {
    let mut by_nr = Vec::new();
    for syscall in crate::bpf::syscalls::SYSCALLS {
        let nr = syscall.nr as usize;
        if by_nr.len() <= nr {
            by_nr.resize(nr + 1, None);
        }
        by_nr[nr] = event_type_id(syscall.name);
    }
    by_nr
});

/// The type number of a syscall event, by its number when that agrees with
/// its name (recorded events may come from elsewhere), else by its name.
pub fn syscall_type_id(nr: u32, name: &str) -> Option<u8> {
    let by_nr = BY_NR.get(nr as usize).copied().flatten();
    if let Some(id) = by_nr
        && let Some(known) = UNIVERSE.get(usize::from(id))
        // The decoder's names are the table's own strings: most events are
        // recognised by where their name lies, without reading it.
        && (std::ptr::eq(*known, name) || *known == name)
    {
        return Some(id);
    }
    event_type_id(name)
}

/// A set of event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventTypes(u128);

impl EventTypes {
    /// Every type.
    pub fn all() -> Self {
        let n = UNIVERSE.len().min(128);
        Self(if n == 128 {
            u128::MAX
        } else {
            (1u128 << n) - 1
        })
    }

    /// No type.
    pub fn none() -> Self {
        Self(0)
    }

    /// Whether the set holds type `id`.
    pub fn contains(self, id: u8) -> bool {
        self.0 & (1u128 << (id & 127)) != 0
    }

    /// Whether the set holds every type.
    pub fn is_all(self) -> bool {
        self == Self::all()
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names in the set.
    pub fn names(self) -> Vec<&'static str> {
        UNIVERSE
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1u128 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    /// The types whose names pass `matches`.
    pub fn matching(matches: impl Fn(&str) -> bool) -> Self {
        Self::of(UNIVERSE.iter().filter(|name| matches(name)))
    }

    fn of(names: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        Self(
            names
                .into_iter()
                .filter_map(|n| event_type_id(n.as_ref()))
                .fold(0, |set, id| set | 1u128 << id),
        )
    }

    /// Both.
    pub fn and(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Either.
    pub fn or(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The types of the universe not in `other`.
    pub fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

/// The event types for which `node` can be true.
pub fn event_types(node: &Node) -> EventTypes {
    sets(node).0
}

/// (can be true, can be false).
fn sets(node: &Node) -> (EventTypes, EventTypes) {
    let all = EventTypes::all();
    match node {
        Node::Const(true) => (all, EventTypes::none()),
        Node::Const(false) => (EventTypes::none(), all),
        Node::Not(inner) => {
            let (t, f) = sets(inner);
            (f, t)
        }
        Node::And(nodes) => nodes
            .iter()
            .map(sets)
            .fold((all, EventTypes::none()), |(t, f), (nt, nf)| {
                (t.and(nt), f.or(nf))
            }),
        Node::Or(nodes) => nodes
            .iter()
            .map(sets)
            .fold((EventTypes::none(), all), |(t, f), (nt, nf)| {
                (t.or(nt), f.and(nf))
            }),
        Node::Types(types) => (*types, all.without(*types)),
        Node::Memo(_, inner) => sets(inner),
        // `evt.type` comparisons were compiled into `Types`; of the checks
        // left, only `evt.type exists` says something: it always holds.
        Node::Check(check)
            if check.value.field.id == FieldId::EvtType
                && check.value.transformers.is_empty()
                && matches!(check.test, CheckTest::Exists) =>
        {
            (all, EventTypes::none())
        }
        Node::Check(_) => (all, all),
    }
}
