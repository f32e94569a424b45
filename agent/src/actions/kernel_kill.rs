//! In-kernel kill: a rule bound to the `kill` action whose condition the
//! kernel can decide alone is pushed into the kill maps, and the exec hook
//! sends the new program SIGKILL before it runs an instruction of its own.
//! Its exec event says so (`kernel_kill`).
//!
//! The kernel decides a conjunction of:
//! - the event type, limited to exec (`evt.type in (execve, execveat)`, as
//!   Falco's `spawned_process` macro; `evt.dir = <` always holds);
//! - exactly one test of the program: `proc.name = X` or `proc.name in
//!   (...)` (the command name), or `proc.exepath = P` or `in (...)`
//!   (absolute executable paths);
//! - optionally `proc.args startswith "..."`;
//! - optionally `container.id != host` (Falco's `container` macro): the
//!   kernel only kills in the container cgroups the agent arms.
//!
//! [`kernel_match`] says whether a compiled rule is in that subset, and why
//! not; [`KillMaps`] writes the slots (one per rule, at most
//! [`KILL_SLOTS`]) and arms or disarms cgroups.
//!
//! Where the BPF LSM hook is attached, a slot can be a deny slot instead
//! (`deny-exec`): the hook refuses the exec in `bprm_check_security`, before
//! the program is mapped, and the exec hook leaves the slot alone. A deny
//! slot never has an argument prefix: argv is not readable from that hook.

use std::collections::{BTreeMap, HashMap};

use agent_common::{COMM_LEN, KILL_ARGS_MAX, KILL_PATH_MAX, KILL_SLOTS, KillArgs};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, MapError};

use crate::{
    bpf::hooks,
    rules::{
        compile::CompiledRule,
        eval::{Check, CheckTest, Node},
        fields::{FieldArg, FieldId, Val},
        index::{EventTypes, event_type_id},
        ops::{StrTest, Test},
    },
};

/// Entries the executable-path and command-name maps hold (`max_entries`
/// in the kernel's `maps.h`).
pub const KILL_KEYS_MAX: usize = 4096;

/// What the kernel matches for one rule: the program by command name or by
/// executable path (one or the other), and optionally a prefix of its
/// arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelMatch {
    /// Command names (`proc.name`), as the kernel sets them at exec: the
    /// file name's last component, cut to 15 bytes.
    pub names: Vec<String>,
    /// Absolute executable paths (`proc.exepath`).
    pub exes: Vec<String>,
    /// A prefix of the arguments after argv\[0\], joined by spaces as
    /// `proc.args` shows them.
    pub args_prefix: Option<String>,
}

/// Why a rule's condition is not one the kernel can decide; the message is
/// for the rule's author.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotExpressible {
    /// A field the kernel does not see at exec.
    #[error("{0} is not available in the kernel")]
    Field(String),
    /// `proc.exe` is argv\[0\], which need not be the executable's path.
    #[error(
        "proc.exe is argv[0] as the program was called, which the kernel does not compare; \
         use proc.exepath"
    )]
    ArgvZero,
    /// A test of a known field that the kernel does not run.
    #[error("{field}: only {allowed} is available in the kernel")]
    Test {
        /// The field.
        field: &'static str,
        /// What the kernel runs on it.
        allowed: &'static str,
    },
    /// Alternatives that the compiler could not merge into one test.
    #[error("`or` across different fields is not available in the kernel")]
    Or,
    /// A negation, which exceptions also add.
    #[error("`not` and exceptions are not available in the kernel")]
    Not,
    /// The rule is not limited to exec events.
    #[error(
        "the condition must be limited to exec events (evt.type in (execve, execveat), as the \
         spawned_process macro does)"
    )]
    EventTypes,
    /// The condition can never hold for an exec.
    #[error("the condition never matches an exec event")]
    NeverMatches,
    /// No test of the program.
    #[error("the condition must name the program with proc.name or proc.exepath")]
    NoProgram,
    /// A field tested twice in the conjunction.
    #[error("{0} is tested more than once; the kernel takes a single test of it")]
    Repeated(&'static str),
    /// Both a command name and an executable path.
    #[error(
        "the condition tests both proc.name and proc.exepath; the kernel matches one or the other"
    )]
    NameAndExe,
    /// A value longer than the kernel compares.
    #[error("{field} value \"{value}\" is longer than the {max} bytes the kernel compares")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
        /// The longest value the kernel compares.
        max: usize,
    },
    /// An argument prefix, which BPF LSM cannot compare.
    #[error(
        "proc.args is not readable when BPF LSM decides an exec: the arguments are already in \
         the new program's memory"
    )]
    ArgsAtDeny,
    /// A value the kernel would compare differently.
    #[error("{field} value \"{value}\" {why}")]
    Value {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Decides whether `rule`'s condition is one the kernel can decide alone,
/// and what it matches.
pub fn kernel_match(rule: &CompiledRule) -> Result<KernelMatch, NotExpressible> {
    let mut leaves = Vec::new();
    conjuncts(&rule.condition, &mut leaves);
    let mut found = Found::default();
    for leaf in leaves {
        found.leaf(leaf)?;
    }
    if !only_exec(rule.event_types) {
        return Err(NotExpressible::EventTypes);
    }
    let m = KernelMatch {
        names: found.names.unwrap_or_default(),
        exes: found.exes.unwrap_or_default(),
        args_prefix: found.args_prefix,
    };
    check_values(&m)?;
    Ok(m)
}

/// The operands of the top-level conjunction, macros opened.
fn conjuncts<'n>(node: &'n Node, out: &mut Vec<&'n Node>) {
    match node {
        Node::And(nodes) => nodes.iter().for_each(|n| conjuncts(n, out)),
        Node::Memo(_, inner) => conjuncts(inner, out),
        Node::Const(true) => {}
        other => out.push(other),
    }
}

/// Every exec is reported as `execve`; the rule must match nothing else.
fn only_exec(types: EventTypes) -> bool {
    let exec = EventTypes::matching(|name| name == "execve" || name == "execveat");
    let execve = event_type_id("execve");
    !types.is_empty()
        && types.without(exec).is_empty()
        && execve.is_some_and(|id| types.contains(id))
}

#[derive(Default)]
struct Found {
    names: Option<Vec<String>>,
    exes: Option<Vec<String>>,
    args_prefix: Option<String>,
}

impl Found {
    fn leaf(&mut self, node: &Node) -> Result<(), NotExpressible> {
        match node {
            // Every exec is reported as `execve`.
            Node::Types(types) => match event_type_id("execve") {
                Some(id) if types.contains(id) => Ok(()),
                _ => Err(NotExpressible::EventTypes),
            },
            Node::Const(true) | Node::And(_) | Node::Memo(..) => Ok(()),
            Node::Const(false) => Err(NotExpressible::NeverMatches),
            Node::Or(_) => Err(NotExpressible::Or),
            Node::Not(_) => Err(NotExpressible::Not),
            Node::Check(check) => self.check(check),
        }
    }

    fn check(&mut self, check: &Check) -> Result<(), NotExpressible> {
        let accessor = &check.value;
        if !accessor.transformers.is_empty() || !matches!(accessor.field.arg, FieldArg::None) {
            return Err(NotExpressible::Field(accessor.display_name()));
        }
        match accessor.field.id {
            FieldId::EvtDir => {
                let exec_dir = Val::Str("<".into());
                let holds = match &check.test {
                    CheckTest::Exists => true,
                    CheckTest::Is(test) => test.matches(&exec_dir),
                    CheckTest::IsNot(test) => !test.matches(&exec_dir),
                    CheckTest::Field(..) => {
                        return Err(NotExpressible::Field(accessor.display_name()));
                    }
                };
                if holds {
                    Ok(())
                } else {
                    Err(NotExpressible::NeverMatches)
                }
            }
            FieldId::ContainerId => match &check.test {
                CheckTest::IsNot(Test::Str(StrTest::Eq(v))) if &**v == "host" => Ok(()),
                _ => Err(NotExpressible::Test {
                    field: "container.id",
                    allowed: "`!= host`",
                }),
            },
            FieldId::ProcName => {
                set_once(&mut self.names, "proc.name", values(check, "proc.name")?)
            }
            FieldId::ProcExePath => set_once(
                &mut self.exes,
                "proc.exepath",
                values(check, "proc.exepath")?,
            ),
            FieldId::ProcExe => Err(NotExpressible::ArgvZero),
            FieldId::ProcArgs => match &check.test {
                CheckTest::Is(Test::Str(StrTest::StartsWith(prefix))) => {
                    set_once(&mut self.args_prefix, "proc.args", prefix.to_string())
                }
                _ => Err(NotExpressible::Test {
                    field: "proc.args",
                    allowed: "`startswith` with one prefix",
                }),
            },
            _ => Err(NotExpressible::Field(accessor.display_name())),
        }
    }
}

/// The values of an `=` or `in` test, sorted.
fn values(check: &Check, field: &'static str) -> Result<Vec<String>, NotExpressible> {
    let mut values: Vec<String> = match &check.test {
        CheckTest::Is(Test::Str(StrTest::Eq(v))) => vec![v.to_string()],
        CheckTest::Is(Test::Str(StrTest::In(set))) => set.iter().map(|v| v.to_string()).collect(),
        _ => {
            return Err(NotExpressible::Test {
                field,
                allowed: "`=` or `in`",
            });
        }
    };
    values.sort_unstable();
    values.dedup();
    Ok(values)
}

fn set_once<T>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), NotExpressible> {
    if slot.is_some() {
        return Err(NotExpressible::Repeated(field));
    }
    *slot = Some(value);
    Ok(())
}

/// Whether the kernel compares every value of `m` as the rule engine does.
fn check_values(m: &KernelMatch) -> Result<(), NotExpressible> {
    match (m.names.is_empty(), m.exes.is_empty()) {
        (true, true) => return Err(NotExpressible::NoProgram),
        (false, false) => return Err(NotExpressible::NameAndExe),
        _ => {}
    }
    let value = |field, value: &str, why| NotExpressible::Value {
        field,
        value: value.to_owned(),
        why,
    };
    let too_long = |field, value: &str, max| NotExpressible::TooLong {
        field,
        value: value.to_owned(),
        max,
    };
    for name in &m.names {
        if name.is_empty() || name.contains('\0') {
            return Err(value("proc.name", name, "is not a command name"));
        }
        if name.len() >= COMM_LEN {
            return Err(too_long("proc.name", name, COMM_LEN - 1));
        }
    }
    for exe in &m.exes {
        if !exe.starts_with('/') || exe.contains('\0') {
            return Err(value("proc.exepath", exe, "is not an absolute path"));
        }
        // proc.exepath shows a memfd as `memfd:<name>`, without the slash
        // that the kernel's path has.
        if exe.starts_with("/memfd:") {
            return Err(value("proc.exepath", exe, "names a memfd"));
        }
        if exe.len() >= KILL_PATH_MAX {
            return Err(too_long("proc.exepath", exe, KILL_PATH_MAX - 1));
        }
    }
    if let Some(prefix) = &m.args_prefix {
        if prefix.contains('\0') {
            return Err(value("proc.args", prefix, "holds a NUL byte"));
        }
        if prefix.len() > KILL_ARGS_MAX {
            return Err(too_long("proc.args", prefix, KILL_ARGS_MAX));
        }
    }
    Ok(())
}

/// Whether the BPF LSM hook can decide `m` on its own: it sees the program,
/// not its arguments.
pub fn deny_match(m: &KernelMatch) -> Result<(), NotExpressible> {
    match m.args_prefix {
        Some(_) => Err(NotExpressible::ArgsAtDeny),
        None => Ok(()),
    }
}

/// Why the kill maps could not be written.
#[derive(Debug, thiserror::Error)]
pub enum KillMapsError {
    /// More rules than kill slots.
    #[error("{count} rules for the kernel to kill on; at most {KILL_SLOTS} fit")]
    TooManySlots {
        /// Rules given.
        count: usize,
    },
    /// A slot number past the last slot.
    #[error("kill slot {0} does not exist; slots are 0 to 63")]
    SlotOutOfRange(u8),
    /// One slot given two rules.
    #[error("kill slot {0} is given twice")]
    DuplicateSlot(u8),
    /// A deny slot that is not among the slots given.
    #[error("deny slot {0} is not a kill slot")]
    DenyNotASlot(u8),
    /// A deny slot whose match BPF LSM cannot decide.
    #[error("kill slot {slot} cannot be a deny slot")]
    Deny {
        /// The slot.
        slot: u8,
        /// Why.
        #[source]
        source: NotExpressible,
    },
    /// A slot's match that the kernel cannot compare.
    #[error("kill slot {slot}")]
    Slot {
        /// The slot.
        slot: u8,
        /// Why.
        #[source]
        source: NotExpressible,
    },
    /// More names or paths than the map holds.
    #[error("{count} {what} for the kernel to kill on; at most {KILL_KEYS_MAX} fit")]
    TooManyKeys {
        /// `command names` or `executable paths`.
        what: &'static str,
        /// How many were given.
        count: usize,
    },
    /// The kernel refused an update.
    #[error("map {map}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// What aya said.
        #[source]
        source: MapError,
    },
}

type PathKey = [u8; KILL_PATH_MAX];
type NameKey = [u8; COMM_LEN];

/// The kill maps of the loaded sensors, and what this agent wrote to them.
///
/// The kernel kills only in armed cgroups: arm only vetted container
/// cgroups, never the host's.
pub struct KillMaps {
    cgroups: BpfHashMap<MapData, u64, u64>,
    exes: BpfHashMap<MapData, PathKey, u64>,
    names: BpfHashMap<MapData, NameKey, u64>,
    args: Array<MapData, KillArgs>,
    deny: Array<MapData, u64>,
    /// The slots that the maps hold in full.
    slots: BTreeMap<u8, KernelMatch>,
    /// The deny slots the map holds.
    deny_bits: u64,
    exe_bits: HashMap<PathKey, u64>,
    name_bits: HashMap<NameKey, u64>,
    armed: HashMap<u64, u64>,
}

impl std::fmt::Debug for KillMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KillMaps")
            .field("slots", &self.slots)
            .field("deny", &format_args!("{:#x}", self.deny_bits))
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

impl KillMaps {
    /// Wraps the maps of a freshly loaded sensors object, which are empty.
    pub(crate) fn new(
        cgroups: BpfHashMap<MapData, u64, u64>,
        exes: BpfHashMap<MapData, PathKey, u64>,
        names: BpfHashMap<MapData, NameKey, u64>,
        args: Array<MapData, KillArgs>,
        deny: Array<MapData, u64>,
    ) -> Self {
        Self {
            cgroups,
            exes,
            names,
            args,
            deny,
            slots: BTreeMap::new(),
            deny_bits: 0,
            exe_bits: HashMap::new(),
            name_bits: HashMap::new(),
            armed: HashMap::new(),
        }
    }

    /// Replaces every slot with `slots` (slot number, match), as on a rules
    /// reload, and makes `deny` (bit n for slot n) the deny slots. A slot
    /// whose match changes is withdrawn from every map before its new match
    /// is written, so that no exec is killed under a mix of the old and new
    /// rule; unchanged slots keep killing throughout. Set deny slots only
    /// while the BPF LSM hook is attached: the exec hook leaves them to it.
    pub fn set_slots(
        &mut self,
        slots: &[(u8, KernelMatch)],
        deny: u64,
    ) -> Result<(), KillMapsError> {
        if slots.len() > KILL_SLOTS {
            return Err(KillMapsError::TooManySlots { count: slots.len() });
        }
        let mut wanted = BTreeMap::new();
        for (slot, m) in slots {
            if usize::from(*slot) >= KILL_SLOTS {
                return Err(KillMapsError::SlotOutOfRange(*slot));
            }
            check_values(m).map_err(|source| KillMapsError::Slot {
                slot: *slot,
                source,
            })?;
            if wanted.insert(*slot, m.clone()).is_some() {
                return Err(KillMapsError::DuplicateSlot(*slot));
            }
        }
        check_deny(&wanted, deny)?;
        let exe_bits = bits_by_key(&wanted, |m| &m.exes, path_key);
        let name_bits = bits_by_key(&wanted, |m| &m.names, name_key);
        for (what, count) in [
            ("executable paths", exe_bits.len()),
            ("command names", name_bits.len()),
        ] {
            if count > KILL_KEYS_MAX {
                return Err(KillMapsError::TooManyKeys { what, count });
            }
        }
        let changed = (0..KILL_SLOTS as u8)
            .filter(|s| self.slots.get(s) != wanted.get(s))
            .fold(0u64, |bits, s| bits | 1 << s);
        if changed == 0 && deny == self.deny_bits {
            return Ok(());
        }
        self.write_deny(deny_before(self.deny_bits, deny, changed))?;

        withdraw(
            &mut self.exes,
            &mut self.exe_bits,
            changed,
            hooks::KILL_EXES_MAP,
        )?;
        withdraw(
            &mut self.names,
            &mut self.name_bits,
            changed,
            hooks::KILL_NAMES_MAP,
        )?;
        self.slots.retain(|s, _| changed & 1 << s == 0);
        for slot in (0..KILL_SLOTS as u8).filter(|s| changed & 1 << s != 0) {
            let args = wanted
                .get(&slot)
                .and_then(|m| m.args_prefix.as_deref())
                .map_or_else(KillArgs::default, args_value);
            self.args
                .set(u32::from(slot), args, 0)
                .map_err(map_error(hooks::KILL_ARGS_MAP))?;
        }
        write(
            &mut self.exes,
            &mut self.exe_bits,
            &exe_bits,
            hooks::KILL_EXES_MAP,
        )?;
        write(
            &mut self.names,
            &mut self.name_bits,
            &name_bits,
            hooks::KILL_NAMES_MAP,
        )?;
        self.slots = wanted;
        self.write_deny(deny)
    }

    fn write_deny(&mut self, deny: u64) -> Result<(), KillMapsError> {
        if deny != self.deny_bits {
            self.deny
                .set(0, deny, 0)
                .map_err(map_error(hooks::KILL_DENY_MAP))?;
            self.deny_bits = deny;
        }
        Ok(())
    }

    /// Arms `slots` (bit n for slot n) in the cgroup `cgroup_id`, replacing
    /// what was armed there; no slot disarms it.
    pub fn arm(&mut self, cgroup_id: u64, slots: u64) -> Result<(), KillMapsError> {
        if slots == 0 {
            return self.disarm(cgroup_id);
        }
        if self.armed.get(&cgroup_id) == Some(&slots) {
            return Ok(());
        }
        self.cgroups
            .insert(cgroup_id, slots, 0)
            .map_err(map_error(hooks::KILL_CGROUPS_MAP))?;
        self.armed.insert(cgroup_id, slots);
        Ok(())
    }

    /// Disarms the cgroup `cgroup_id`: nothing is killed there any more.
    pub fn disarm(&mut self, cgroup_id: u64) -> Result<(), KillMapsError> {
        if !self.armed.contains_key(&cgroup_id) {
            return Ok(());
        }
        self.cgroups
            .remove(&cgroup_id)
            .map_err(map_error(hooks::KILL_CGROUPS_MAP))?;
        self.armed.remove(&cgroup_id);
        Ok(())
    }
}

/// Whether every slot in `deny` is one of `slots` and can be decided
/// without the arguments.
fn check_deny(slots: &BTreeMap<u8, KernelMatch>, deny: u64) -> Result<(), KillMapsError> {
    for slot in (0..KILL_SLOTS as u8).filter(|s| deny & 1 << s != 0) {
        let m = slots.get(&slot).ok_or(KillMapsError::DenyNotASlot(slot))?;
        deny_match(m).map_err(|source| KillMapsError::Deny { slot, source })?;
    }
    Ok(())
}

/// The deny slots to keep while the maps change from `old` to `new`: those
/// that stay deny slots under an unchanged match. A slot that stops being
/// one, or whose match changes, goes back to the exec hook before its keys
/// move, and a new deny slot is handed to the BPF LSM hook only once its
/// keys are in place.
fn deny_before(old: u64, new: u64, changed: u64) -> u64 {
    old & new & !changed
}

fn map_error(map: &'static str) -> impl Fn(MapError) -> KillMapsError {
    move |source| KillMapsError::Map { map, source }
}

fn bits_by_key<K: std::hash::Hash + Eq>(
    slots: &BTreeMap<u8, KernelMatch>,
    values: impl Fn(&KernelMatch) -> &Vec<String>,
    key: impl Fn(&str) -> K,
) -> HashMap<K, u64> {
    let mut bits = HashMap::new();
    for (slot, m) in slots {
        for value in values(m) {
            *bits.entry(key(value)).or_default() |= 1u64 << slot;
        }
    }
    bits
}

/// Clears the `changed` bits from every key.
fn withdraw<K: aya::Pod + std::hash::Hash + Eq>(
    map: &mut BpfHashMap<MapData, K, u64>,
    mirror: &mut HashMap<K, u64>,
    changed: u64,
    name: &'static str,
) -> Result<(), KillMapsError> {
    let keys: Vec<K> = mirror
        .iter()
        .filter(|(_, bits)| **bits & changed != 0)
        .map(|(key, _)| *key)
        .collect();
    for key in keys {
        let kept = mirror.get(&key).copied().unwrap_or_default() & !changed;
        if kept == 0 {
            map.remove(&key).map_err(map_error(name))?;
            mirror.remove(&key);
        } else {
            map.insert(key, kept, 0).map_err(map_error(name))?;
            mirror.insert(key, kept);
        }
    }
    Ok(())
}

/// Makes the map hold exactly `wanted`.
fn write<K: aya::Pod + std::hash::Hash + Eq>(
    map: &mut BpfHashMap<MapData, K, u64>,
    mirror: &mut HashMap<K, u64>,
    wanted: &HashMap<K, u64>,
    name: &'static str,
) -> Result<(), KillMapsError> {
    for (key, bits) in wanted {
        if mirror.get(key) != Some(bits) {
            map.insert(key, bits, 0).map_err(map_error(name))?;
            mirror.insert(*key, *bits);
        }
    }
    let stale: Vec<K> = mirror
        .keys()
        .filter(|key| !wanted.contains_key(key))
        .copied()
        .collect();
    for key in stale {
        map.remove(&key).map_err(map_error(name))?;
        mirror.remove(&key);
    }
    Ok(())
}

/// The values are checked by `check_values`: they fit with room for the
/// zero padding.
fn path_key(path: &str) -> PathKey {
    let mut key = [0; KILL_PATH_MAX];
    let len = path.len().min(KILL_PATH_MAX - 1);
    key[..len].copy_from_slice(&path.as_bytes()[..len]);
    key
}

fn name_key(name: &str) -> NameKey {
    let mut key = [0; COMM_LEN];
    let len = name.len().min(COMM_LEN - 1);
    key[..len].copy_from_slice(&name.as_bytes()[..len]);
    key
}

fn args_value(prefix: &str) -> KillArgs {
    let mut args = KillArgs::default();
    let len = prefix.len().min(KILL_ARGS_MAX);
    args.prefix[..len].copy_from_slice(&prefix.as_bytes()[..len]);
    args.len = u32::try_from(len).unwrap_or_default();
    args
}

#[cfg(test)]
mod tests;
