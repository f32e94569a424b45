//! The rules' verdicts on calls seen before.
//!
//! A process that repeats a call (the same open of the same file, the same
//! connect to the same address) gets the same verdict from every rule whose
//! condition reads what the call and the process are and nothing of the
//! moment (see [`super::fields::Field::is_per_event`]). The verdict, which
//! rules the call broke, is kept and reused; outputs are still rendered for
//! each event.
//!
//! The process, container and pod sections of an event are shared between
//! events and made anew whenever what is known of them changes (see
//! [`crate::enrich`]): holding the section it was reached for, an entry is
//! the same process's only when it is the same section. The call is compared
//! whole. A verdict is kept in one of a fixed number of slots, chosen by a
//! hash of the call, and replaces whatever the slot held.
//!
//! Most calls of a node that starts programs are made once (a new process
//! opens its libraries and exits): keeping each would cost a copy of the
//! call and a write to memory the next lookup does not read. A verdict is
//! kept only for a call whose hash was last seen in its slot, so a call made
//! once costs its hash and a word.

use std::{
    hash::{Hash, Hasher},
    sync::Arc,
};

use rustc_hash::FxHasher;

use crate::events::{
    event::{ArgValue, ContainerInfo, Event, EventKind, NodeName, Process, Syscall},
    kubernetes::Kubernetes,
};

/// Verdicts kept per evaluating thread: the calls a burst repeats fit many
/// times over, and a full table is about 600 KiB (an entry holds a copy of
/// its call, about 500 bytes).
pub const SLOTS: usize = 1024;

/// The verdicts one evaluating thread has reached, for one rule set.
#[derive(Debug)]
pub struct Verdicts {
    /// The rule set they were reached with ([`super::RuleSet::generation`]).
    generation: u64,
    slots: Box<[Option<Box<Entry>>]>,
    /// For each slot, the hash of the call whose verdict it keeps and of the
    /// last call looked up in it: a lookup reads an entry only when its hash
    /// is the one kept (entries are scattered; these are one small table).
    hashes: Box<[SlotHashes]>,
    reused: u64,
    kept: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct SlotHashes {
    kept: u64,
    last_seen: u64,
}

#[derive(Debug)]
struct Entry {
    process: Option<Arc<Process>>,
    container: Option<Arc<ContainerInfo>>,
    kubernetes: Option<Arc<Kubernetes>>,
    node: NodeName,
    syscall: Arc<Syscall>,
    /// How the checks that tell repeats apart came out on it, a bit each.
    outcomes: u64,
    /// The rules broken, by index in the rule set, in the order they fired.
    broken: smallvec::SmallVec<[u32; 2]>,
}

/// What the table holds for an event.
pub(super) enum Seen<'v> {
    /// The same call by the same process: the rules it broke.
    Before(&'v [u32]),
    /// Not kept: the verdict reached goes in this slot, with the outcomes
    /// of the checks that tell repeats apart.
    New(usize, u64),
    /// Not kept, and not the last call looked up in its slot: its verdict is
    /// not kept either.
    Once,
    /// An event whose verdict is not kept (not a syscall).
    NotKept,
}

impl Default for Verdicts {
    fn default() -> Self {
        Self::new()
    }
}

impl Verdicts {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            generation: 0,
            slots: std::iter::repeat_with(|| None).take(SLOTS).collect(),
            hashes: vec![SlotHashes::default(); SLOTS].into_boxed_slice(),
            reused: 0,
            kept: 0,
        }
    }

    /// Verdicts reused, and verdicts kept, since the table was made.
    pub fn counts(&self) -> (u64, u64) {
        (self.reused, self.kept)
    }

    /// Forgets every verdict (counts are kept).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|slot| *slot = None);
        self.hashes.fill(SlotHashes::default());
    }

    /// What the table holds for `event` under the rule set of `generation`;
    /// verdicts of another rule set are forgotten first. `outcomes` gives
    /// how the checks that tell repeats apart come out on the event, asked
    /// only of an event whose verdict can be kept.
    pub(super) fn find(
        &mut self,
        generation: u64,
        event: &Event,
        outcomes: impl FnOnce() -> u64,
    ) -> Seen<'_> {
        if self.generation != generation {
            self.clear();
            self.generation = generation;
        }
        let Some(syscall) = kept_call(event) else {
            return Seen::NotKept;
        };
        let outcomes = outcomes();
        let hash = hash_of(event, syscall, outcomes);
        let slot = (hash >> 32) as usize % SLOTS;
        let (Some(kept), Some(hashes)) = (self.slots.get(slot), self.hashes.get_mut(slot)) else {
            return Seen::NotKept;
        };
        if hashes.kept == hash
            && let Some(entry) = kept.as_deref()
            && entry.outcomes == outcomes
            && entry.holds(event, syscall)
        {
            self.reused += 1;
            return Seen::Before(&entry.broken);
        }
        if std::mem::replace(&mut hashes.last_seen, hash) == hash {
            Seen::New(slot, outcomes)
        } else {
            Seen::Once
        }
    }

    /// Keeps the verdict on `event`, the rules it broke, in `slot`.
    pub(super) fn keep(&mut self, slot: usize, event: &Event, outcomes: u64, broken: &[u32]) {
        let Some(syscall) = kept_call(event) else {
            return;
        };
        let (Some(place), Some(hashes)) = (self.slots.get_mut(slot), self.hashes.get_mut(slot))
        else {
            return;
        };
        // `find` left the call's hash as the last seen.
        hashes.kept = hashes.last_seen;
        self.kept += 1;
        let entry = Entry {
            process: event.process.clone(),
            container: event.container.clone(),
            kubernetes: event.kubernetes.clone(),
            node: event.node.clone(),
            syscall: syscall.clone(),
            outcomes,
            broken: broken.into(),
        };
        match place {
            Some(held) => **held = entry,
            None => *place = Some(Box::new(entry)),
        }
    }
}

impl Entry {
    fn holds(&self, event: &Event, syscall: &Arc<Syscall>) -> bool {
        same_section(&self.process, &event.process)
            && same_section(&self.container, &event.container)
            && same_section(&self.kubernetes, &event.kubernetes)
            && self.node == event.node
            // A thread's repeats of a call share its section (the decoder's
            // kept calls); equal calls of other threads compare by value.
            && (Arc::ptr_eq(&self.syscall, syscall) || *self.syscall == **syscall)
    }
}

fn same_section<T>(kept: &Option<Arc<T>>, now: &Option<Arc<T>>) -> bool {
    match (kept, now) {
        (Some(kept), Some(now)) => Arc::ptr_eq(kept, now),
        (None, None) => true,
        _ => false,
    }
}

/// The call of an event whose verdict can be kept: a syscall with no
/// section but its call and where it ran. Every field is named, so that one
/// added to the event is placed here: in the key ([`Entry`]), told apart by
/// the rules' per-event checks, or a reason not to keep the verdict.
fn kept_call(event: &Event) -> Option<&Arc<Syscall>> {
    let Event {
        schema_version: _,
        kind,
        // The moment: per-event checks.
        time: _,
        monotonic_ns: _,
        cpu: _,
        // The key.
        node: _,
        process: _,
        container: _,
        kubernetes: _,
        syscall,
        // None on a call.
        fork,
        exit,
        lost,
        tcp_state,
        kernel_kill,
        kernel_deny,
        violation,
        action,
    } = event;
    let only_the_call = *kind == EventKind::Syscall
        && fork.is_none()
        && exit.is_none()
        && lost.is_none()
        && tcp_state.is_none()
        && kernel_kill.is_none()
        && kernel_deny.is_none()
        && violation.is_none()
        && action.is_none();
    only_the_call.then_some(syscall.as_ref()?)
}

/// A hash of the call and the sections it was made with. Strings are
/// hashed by address: the decoder hands out one string for a path it read
/// lately, and two equal calls that hash apart are only a verdict not
/// reused (the table compares by value).
fn hash_of(event: &Event, syscall: &Syscall, outcomes: u64) -> u64 {
    let mut hasher = FxHasher::default();
    outcomes.hash(&mut hasher);
    event.process.as_ref().map(Arc::as_ptr).hash(&mut hasher);
    syscall.nr.hash(&mut hasher);
    syscall.ret.hash(&mut hasher);
    for (_, value) in syscall.args.iter() {
        match value {
            ArgValue::Unsigned(n) => n.hash(&mut hasher),
            ArgValue::Signed(n) => n.hash(&mut hasher),
            ArgValue::Text(text) => Arc::as_ptr(text).cast::<u8>().hash(&mut hasher),
        }
    }
    for path in &syscall.paths {
        Arc::as_ptr(&path.raw).cast::<u8>().hash(&mut hasher);
    }
    // Never 0, the hash of no call in an empty slot; the slot is taken from
    // the top bits, where Fx's multiplication leaves its best.
    hasher.finish() | 1
}
