//! The [`ProcessTree`]: processes keyed by pid and start time, with their
//! parent links, bounded in size.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
    fmt,
    sync::{Arc, OnceLock},
};

/// The uid of a process whose fork was seen but whose parent was not known.
pub const UNKNOWN_UID: u32 = u32::MAX;

/// How big the tree may grow and how long exited processes stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeLimits {
    /// The most entries, live and exited, the tree holds (at least 1).
    pub max_entries: usize,
    /// How long an exited process stays resolvable, in nanoseconds.
    pub exit_grace_ns: u64,
}

impl TreeLimits {
    /// The default [`TreeLimits::max_entries`].
    pub const DEFAULT_MAX_ENTRIES: usize = 65_536;
    /// The default [`TreeLimits::exit_grace_ns`]: 5 s.
    pub const DEFAULT_EXIT_GRACE_NS: u64 = 5_000_000_000;
}

impl Default for TreeLimits {
    fn default() -> Self {
        Self {
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            exit_grace_ns: Self::DEFAULT_EXIT_GRACE_NS,
        }
    }
}

/// A process's arguments, argv\[0\] first, in one allocation for the text and
/// the offsets (rather than one per argument), shared: every event of the
/// process carries them without copying. In JSON, an array of strings,
/// written once and reused by every event that carries them (a long command
/// line with quotes to escape would otherwise be escaped again for each).
#[derive(Clone, Default)]
pub struct Args(Arc<ArgsInner>);

#[derive(Default)]
struct ArgsInner {
    text: Box<str>,
    /// Where each argument ends in `text`.
    ends: Box<[u32]>,
    json: OnceLock<Box<serde_json::value::RawValue>>,
    /// The arguments after argv\[0\], space separated, written on first use.
    tail: OnceLock<Box<str>>,
    /// The command line for the command name it was first asked with.
    line: OnceLock<CommandLine>,
}

/// A command name and the command line built with it.
struct CommandLine {
    comm: Box<str>,
    line: Box<str>,
}

impl PartialEq for Args {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.text == other.0.text && self.0.ends == other.0.ends)
    }
}

impl Eq for Args {}

impl<S: AsRef<str>> FromIterator<S> for Args {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self::new(iter)
    }
}

impl serde::Serialize for Args {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.json() {
            Some(json) => json.serialize(serializer),
            None => serializer.collect_seq(self.iter()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Args {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(deserializer).map(Self::new)
    }
}

impl Args {
    /// Packs arguments. Should they add up to more than 4 GiB, the ones that
    /// do not fit are left out.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut text = String::new();
        let mut ends = Vec::new();
        for arg in args {
            let arg = arg.as_ref();
            let Ok(end) = u32::try_from(text.len() + arg.len()) else {
                break;
            };
            text.push_str(arg);
            ends.push(end);
        }
        Self(Arc::new(ArgsInner {
            text: text.into(),
            ends: ends.into(),
            ..ArgsInner::default()
        }))
    }

    /// The number of arguments.
    pub fn len(&self) -> usize {
        self.0.ends.len()
    }

    /// Whether there are none (kernel threads have none).
    pub fn is_empty(&self) -> bool {
        self.0.ends.is_empty()
    }

    /// The `index`th argument.
    pub fn get(&self, index: usize) -> Option<&str> {
        let end = usize::try_from(*self.0.ends.get(index)?).ok()?;
        let start = match index.checked_sub(1) {
            Some(before) => usize::try_from(*self.0.ends.get(before)?).ok()?,
            None => 0,
        };
        self.0.text.get(start..end)
    }

    /// The arguments in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }

    /// The arguments as owned strings, as events carry them.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }

    /// The arguments as a JSON array, written on first use.
    fn json(&self) -> Option<&serde_json::value::RawValue> {
        if let Some(json) = self.0.json.get() {
            return Some(json);
        }
        let json = serde_json::value::to_raw_value(&self.iter().collect::<Vec<_>>()).ok()?;
        Some(self.0.json.get_or_init(|| json))
    }

    /// The arguments after argv\[0\], space separated (Falco's
    /// `proc.args`): written once per exec, not once per event that asks.
    pub fn tail(&self) -> &str {
        self.0.tail.get_or_init(|| {
            let mut tail = String::new();
            for (i, arg) in self.iter().skip(1).enumerate() {
                if i > 0 {
                    tail.push(' ');
                }
                tail.push_str(arg);
            }
            tail.into()
        })
    }

    /// `comm`, then the arguments after argv\[0\] (Falco's
    /// `proc.cmdline`). Written once, for the command name it is first
    /// asked with; a process that renamed itself since gets a fresh copy.
    pub fn command_line(&self, comm: &str) -> Cow<'_, str> {
        let build = || {
            let tail = self.tail();
            let mut line = String::with_capacity(comm.len() + 1 + tail.len());
            line.push_str(comm);
            if self.len() > 1 {
                line.push(' ');
                line.push_str(tail);
            }
            line
        };
        let cached = self.0.line.get_or_init(|| CommandLine {
            comm: comm.into(),
            line: build().into(),
        });
        if *cached.comm == *comm {
            Cow::Borrowed(&cached.line)
        } else {
            Cow::Owned(build())
        }
    }

    /// Bytes held on the heap, the JSON and command lines written for them
    /// included.
    pub fn heap_bytes(&self) -> usize {
        self.0.text.len()
            + self.0.ends.len() * size_of::<u32>()
            + self.0.json.get().map_or(0, |j| j.get().len())
            + self.0.tail.get().map_or(0, |t| t.len())
            + self.0.line.get().map_or(0, |l| l.comm.len() + l.line.len())
    }
}

impl fmt::Debug for Args {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for Args {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

/// Which file a program was executed from: its inode and times, which tell
/// one build of a program from another at the same path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExeFile {
    /// The inode number.
    pub ino: u64,
    /// Last modification, ns since the Unix epoch.
    pub mtime_ns: i64,
    /// Last status change, ns since the Unix epoch.
    pub ctime_ns: i64,
}

/// The root directory a process sees, by device and inode: processes of one
/// container image, or of one chroot, share it. User and group names are
/// resolved against the files under it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RootId {
    /// The device of the root directory.
    pub dev: u64,
    /// Its inode number.
    pub ino: u64,
}

/// What a process runs: set by exec, inherited on fork. Shared between a
/// parent and the children that have not exec'd.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessImage {
    comm: Box<str>,
    exe: Arc<str>,
    args: Args,
    cwd: Arc<str>,
    exe_file: Option<ExeFile>,
    root: Option<RootId>,
}

impl ProcessImage {
    /// An image from its parts.
    pub fn new(comm: &str, exe: &str, args: Args, cwd: &str) -> Self {
        Self {
            comm: comm.into(),
            exe: exe.into(),
            args,
            cwd: cwd.into(),
            exe_file: None,
            root: None,
        }
    }

    /// An image from shared parts.
    pub fn from_shared(comm: &str, exe: Arc<str>, args: Args, cwd: Arc<str>) -> Self {
        Self {
            comm: comm.into(),
            exe,
            args,
            cwd,
            exe_file: None,
            root: None,
        }
    }

    /// The executable's path, shared.
    pub fn exe_shared(&self) -> Arc<str> {
        self.exe.clone()
    }

    /// The working directory, shared.
    pub fn cwd_shared(&self) -> Arc<str> {
        self.cwd.clone()
    }

    /// The same image with the executable's file identity and the root
    /// directory the process saw at exec.
    pub fn with_origin(mut self, exe_file: Option<ExeFile>, root: Option<RootId>) -> Self {
        self.exe_file = exe_file;
        self.root = root;
        self
    }

    /// The executable's inode and times, when known.
    pub fn exe_file(&self) -> Option<ExeFile> {
        self.exe_file
    }

    /// The root directory the process saw at exec (or when seeded), when known.
    pub fn root(&self) -> Option<RootId> {
        self.root
    }

    /// The command name (at most 15 bytes, as the kernel keeps it).
    pub fn comm(&self) -> &str {
        &self.comm
    }

    /// The executable's absolute path; empty for kernel threads, and when
    /// unknown.
    pub fn exe(&self) -> &str {
        &self.exe
    }

    /// The arguments, argv\[0\] first.
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// The working directory at exec (or when seeded from `/proc`).
    pub fn cwd(&self) -> &str {
        &self.cwd
    }

    /// Bytes held on the heap by this image (once, however many processes
    /// share it).
    pub fn heap_bytes(&self) -> usize {
        self.comm.len() + self.exe.len() + self.args.heap_bytes() + self.cwd.len()
    }
}

/// One process in the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Host pid (thread group id).
    pub pid: u32,
    /// Host pid of the process that forked it. Kept when the process is later
    /// reparented (its parent exited), so the ancestry stays the real one.
    pub ppid: u32,
    /// Start, `CLOCK_BOOTTIME` ns. Exact when it came from the kernel; when it
    /// came from `/proc`, the start of the clock tick the process started in.
    pub start_ns: u64,
    /// 0 when `start_ns` is exact; else the process started somewhere in
    /// `start_ns .. start_ns + start_uncertainty_ns` (one clock tick).
    pub start_uncertainty_ns: u32,
    /// Real user id at the last exec, inherited on fork; [`UNKNOWN_UID`] when
    /// the process was forked from a parent the tree did not know.
    pub uid: u32,
    /// Process group, session and controlling terminal at the last exec (or
    /// when seeded), inherited on fork. Events carry the current ones.
    pub job: JobIds,
    /// When it exited (`CLOCK_BOOTTIME` ns); `None` while it runs. A process
    /// whose pid was taken by a newer one is taken to have exited when that
    /// one started.
    pub exited_at: Option<u64>,
    /// What it runs, shared with the processes it forked that have not exec'd.
    pub image: Arc<ProcessImage>,
}

impl ProcessInfo {
    /// The command name.
    pub fn comm(&self) -> &str {
        self.image.comm()
    }

    /// The executable's path.
    pub fn exe(&self) -> &str {
        self.image.exe()
    }

    /// The arguments.
    pub fn args(&self) -> &Args {
        self.image.args()
    }

    /// The working directory.
    pub fn cwd(&self) -> &str {
        self.image.cwd()
    }

    /// Whether it still runs, as far as the tree knows.
    pub fn is_live(&self) -> bool {
        self.exited_at.is_none()
    }

    /// Whether this entry may be the process that started at `start_ns`,
    /// give or take `uncertainty_ns` (see [`ProcessInfo::start_uncertainty_ns`]).
    fn started_at(&self, start_ns: u64, uncertainty_ns: u32) -> bool {
        // The two windows [start, start + max(uncertainty, 1)) overlap.
        let end =
            |start: u64, uncertainty: u32| start.saturating_add(u64::from(uncertainty.max(1)));
        self.start_ns < end(start_ns, uncertainty_ns)
            && start_ns < end(self.start_ns, self.start_uncertainty_ns)
    }
}

/// A process's group, session and terminal, host PID namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobIds {
    /// Process group id.
    pub pgid: u32,
    /// Session id.
    pub sid: u32,
    /// Controlling terminal in `new_encode_dev` form; 0 for none.
    pub tty: u32,
}

/// An ancestor of a process, as [`ProcessTree::ancestors`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ancestor {
    /// Host pid.
    pub pid: u32,
    /// Start, as in [`ProcessInfo::start_ns`].
    pub start_ns: u64,
    /// What it runs (or ran, if it has exited); shared with the tree.
    pub image: Arc<ProcessImage>,
}

impl Ancestor {
    /// The command name.
    pub fn comm(&self) -> &str {
        self.image.comm()
    }

    /// The executable's path.
    pub fn exe(&self) -> &str {
        self.image.exe()
    }

    /// The arguments.
    pub fn args(&self) -> &Args {
        self.image.args()
    }
}

/// What an exec event says about the process, for [`ProcessTree::on_exec`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecInfo {
    /// Host pid (thread group id).
    pub pid: u32,
    /// Host pid of the current parent.
    pub ppid: u32,
    /// Start of the thread group leader, `CLOCK_BOOTTIME` ns.
    pub start_ns: u64,
    /// Command name.
    pub comm: String,
    /// Executable's absolute path.
    pub exe: Arc<str>,
    /// Arguments, argv\[0\] first.
    pub args: Args,
    /// Working directory.
    pub cwd: Arc<str>,
    /// Real user id.
    pub uid: u32,
    /// Process group, session and terminal.
    pub job: JobIds,
    /// The executable's inode and times.
    pub exe_file: Option<ExeFile>,
    /// The root directory the process sees.
    pub root: Option<RootId>,
}

impl ExecInfo {
    fn image(&self) -> ProcessImage {
        ProcessImage::from_shared(
            &self.comm,
            self.exe.clone(),
            self.args.clone(),
            self.cwd.clone(),
        )
        .with_origin(self.exe_file, self.root)
    }
}

/// The size of the tree and what it has removed, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Entries now, live and exited.
    pub entries: usize,
    /// Entries now of processes still running.
    pub live: usize,
    /// Entries now of processes that exited and are within their grace.
    pub exited: usize,
    /// Exited entries removed by [`ProcessTree::gc`] after their grace, since
    /// the tree was made.
    pub evicted_after_grace: u64,
    /// Entries removed to make room because the tree was full, since the tree
    /// was made: exited entries before their grace ended, and live ones.
    pub evicted_for_capacity: u64,
    /// How many of [`TreeStats::evicted_for_capacity`] were live: processes
    /// whose ancestry was lost while they ran.
    pub evicted_live_for_capacity: u64,
}

/// `(pid, start_ns)`: an entry's key.
type Key = (u32, u64);

/// The node's processes and their parents, bounded by [`TreeLimits`].
///
/// Owned by one task; every method takes `&self` or `&mut self`, none locks.
/// Times are `CLOCK_BOOTTIME` ns, as the kernel reports them.
///
/// ```
/// use guardrails::process::{ExecInfo, ProcessTree, TreeLimits};
///
/// let mut tree = ProcessTree::new(TreeLimits::default());
/// tree.on_exec(ExecInfo { pid: 100, ppid: 1, start_ns: 5_000, comm: "bash".into(), ..ExecInfo::default() });
/// tree.on_fork(100, 101, 6_000, 6_000);
/// tree.on_exec(ExecInfo { pid: 101, ppid: 100, start_ns: 6_000, comm: "curl".into(), ..ExecInfo::default() });
/// tree.on_exit(101, 6_000, 7_000);
/// // Still resolvable within the grace:
/// assert_eq!(tree.ancestors(101, 6_000, 8)[0].comm(), "bash");
/// tree.gc(7_000 + TreeLimits::DEFAULT_EXIT_GRACE_NS);
/// assert!(tree.get(101, 6_000).is_none());
/// ```
#[derive(Debug)]
pub struct ProcessTree {
    limits: TreeLimits,
    entries: BTreeMap<Key, ProcessInfo>,
    /// Live entries by `(start_ns, pid)`, oldest first.
    live: BTreeSet<(u64, u32)>,
    /// Exited entries by `(exited_at, pid, start_ns)`, oldest exit first.
    exited: BTreeSet<(u64, u32, u64)>,
    /// The image of processes forked from an unknown parent, shared by all.
    unknown: Arc<ProcessImage>,
    evicted_after_grace: u64,
    evicted_for_capacity: u64,
    evicted_live_for_capacity: u64,
    /// Bumped whenever an entry is added, removed or changes its image, so
    /// that what was derived from the tree (ancestries) can be reused until
    /// then.
    generation: u64,
}

impl ProcessTree {
    /// An empty tree. A `max_entries` of 0 is taken as 1.
    pub fn new(limits: TreeLimits) -> Self {
        Self {
            limits: TreeLimits {
                max_entries: limits.max_entries.max(1),
                ..limits
            },
            entries: BTreeMap::new(),
            live: BTreeSet::new(),
            exited: BTreeSet::new(),
            unknown: Arc::default(),
            evicted_after_grace: 0,
            evicted_for_capacity: 0,
            evicted_live_for_capacity: 0,
            generation: 0,
        }
    }

    /// Changes whenever the tree's entries or their images change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The limits in force.
    pub fn limits(&self) -> TreeLimits {
        self.limits
    }

    /// A process forked: `child_pid`, started at `child_start_ns`, has the
    /// image, working directory and uid of `parent_pid` (as the kernel gives
    /// it until the child execs), shared rather than copied. The parent is
    /// the newest process with that pid that started before the child and had
    /// not exited when the child started; if there is none, the child gets an
    /// empty image and [`UNKNOWN_UID`], and still names `parent_pid` as parent.
    ///
    /// A child already in the tree (from `/proc`, or a repeated event) is left
    /// as it is, but takes the exact start. `now_ns` is when the fork
    /// happened: if the tree is full, entries past their grace at `now_ns` go
    /// first.
    pub fn on_fork(&mut self, parent_pid: u32, child_pid: u32, child_start_ns: u64, now_ns: u64) {
        if let Some(key) = self.find(child_pid, child_start_ns, 0) {
            self.refine(key, child_start_ns);
            return;
        }
        let (image, uid, job) = match self.parent_of(parent_pid, child_start_ns, 0) {
            Some(parent) => (Arc::clone(&parent.image), parent.uid, parent.job),
            None => (Arc::clone(&self.unknown), UNKNOWN_UID, JobIds::default()),
        };
        self.insert(
            ProcessInfo {
                pid: child_pid,
                ppid: parent_pid,
                start_ns: child_start_ns,
                start_uncertainty_ns: 0,
                uid,
                job,
                exited_at: None,
                image,
            },
            Some(now_ns),
        );
    }

    /// A process executed a new program: its image and uid are replaced. It
    /// keeps the parent recorded at its fork (if its parent exited, the
    /// exec's `ppid` names the reaper that adopted it, not who started it).
    /// A process the tree did not know (its fork was lost, or it predates the
    /// tree) is added with the exec's `ppid`.
    pub fn on_exec(&mut self, exec: ExecInfo) {
        self.generation += 1;
        let image = Arc::new(exec.image());
        match self.find(exec.pid, exec.start_ns, 0) {
            Some(key) => {
                let key = self.refine(key, exec.start_ns);
                if let Some(entry) = self.entries.get_mut(&key) {
                    entry.image = image;
                    entry.uid = exec.uid;
                    entry.job = exec.job;
                }
            }
            None => self.insert(
                ProcessInfo {
                    pid: exec.pid,
                    ppid: exec.ppid,
                    start_ns: exec.start_ns,
                    start_uncertainty_ns: 0,
                    uid: exec.uid,
                    job: exec.job,
                    exited_at: None,
                    image,
                },
                None,
            ),
        }
    }

    /// Adds a process read from `/proc`, whose start is known only to a clock
    /// tick: it started within `start_ns .. start_ns + start_tick_ns`. Kernel
    /// events whose start falls in that window match it. A process already in
    /// the tree is left as it is: what the kernel reported wins.
    pub fn on_seed(&mut self, process: ExecInfo, start_tick_ns: u64, now_ns: u64) {
        let uncertainty = u32::try_from(start_tick_ns).unwrap_or(u32::MAX);
        if self
            .find(process.pid, process.start_ns, uncertainty)
            .is_some()
        {
            return;
        }
        let image = Arc::new(process.image());
        self.insert(
            ProcessInfo {
                pid: process.pid,
                ppid: process.ppid,
                start_ns: process.start_ns,
                start_uncertainty_ns: uncertainty,
                uid: process.uid,
                job: process.job,
                exited_at: None,
                image,
            },
            Some(now_ns),
        );
    }

    /// A process ended at `now_ns`. It stays in the tree for
    /// [`TreeLimits::exit_grace_ns`], so that events about it that arrive
    /// late, and its children, still resolve it. An unknown or already exited
    /// process is ignored.
    pub fn on_exit(&mut self, pid: u32, start_ns: u64, now_ns: u64) {
        if let Some(key) = self.find(pid, start_ns, 0) {
            let key = self.refine(key, start_ns);
            self.mark_exited(key, now_ns);
        }
    }

    /// The process with this pid that started at `start_ns` (within a clock
    /// tick, for processes seeded from `/proc`), live or within its grace.
    pub fn get(&self, pid: u32, start_ns: u64) -> Option<&ProcessInfo> {
        if let Some(exact) = self.entries.get(&(pid, start_ns)) {
            return Some(exact);
        }
        self.find(pid, start_ns, 0)
            .and_then(|key| self.entries.get(&key))
    }

    /// Gives the entry of a process that was seeded from `/proc` (its start
    /// known to a clock tick) the exact start an event reported, so that
    /// the process's later events find it directly.
    pub fn settle(&mut self, pid: u32, start_ns: u64) {
        if self.entries.contains_key(&(pid, start_ns)) {
            return;
        }
        if let Some(key) = self.find(pid, start_ns, 0) {
            self.refine(key, start_ns);
        }
    }

    /// Every process in the tree with this pid, oldest first: usually one,
    /// more while an exited one is within its grace and the pid is reused.
    pub fn generations(&self, pid: u32) -> impl DoubleEndedIterator<Item = &ProcessInfo> + '_ {
        self.entries
            .range((pid, 0)..=(pid, u64::MAX))
            .map(|(_, p)| p)
    }

    /// The leader of a process group or session: the newest process with pid
    /// `leader_pid` that had started by `at_ns`. The kernel does not hand out
    /// a pid while a group or session is named after it, so that is the
    /// leader for as long as the group lives (or its grace, once it exited).
    pub fn leader(&self, leader_pid: u32, at_ns: u64) -> Option<&ProcessInfo> {
        self.entries
            .range((leader_pid, 0)..=(leader_pid, at_ns))
            .next_back()
            .map(|(_, p)| p)
    }

    /// The ancestors of a process, its parent first, at most `max_depth` of
    /// them. Each parent is found by the child's `ppid`: the newest process
    /// with that pid that started no later than the child and had not exited
    /// before the child started. The walk stops after pid 1 or at a process
    /// whose parent is 0 (the roots), at a parent the tree does not hold, at
    /// `max_depth`, or if it would visit a process twice. Empty when the
    /// process itself is unknown.
    pub fn ancestors(&self, pid: u32, start_ns: u64, max_depth: usize) -> Vec<Ancestor> {
        let mut out = Vec::new();
        let Some(mut current) = self.get(pid, start_ns) else {
            return out;
        };
        let first = (current.pid, current.start_ns);
        while out.len() < max_depth && current.pid > 1 && current.ppid != 0 {
            let Some(parent) =
                self.parent_of(current.ppid, current.start_ns, current.start_uncertainty_ns)
            else {
                break;
            };
            // A cycle: a linear look over at most `max_depth` entries, which
            // allocates nothing, unlike a set (this runs for every event).
            let key = (parent.pid, parent.start_ns);
            if key == first || out.iter().any(|a: &Ancestor| (a.pid, a.start_ns) == key) {
                break;
            }
            out.push(Ancestor {
                pid: parent.pid,
                start_ns: parent.start_ns,
                image: Arc::clone(&parent.image),
            });
            current = parent;
        }
        out
    }

    /// Removes the exited processes whose grace has ended at `now_ns`.
    pub fn gc(&mut self, now_ns: u64) {
        while let Some(&(exited_at, pid, start_ns)) = self.exited.first() {
            if exited_at.saturating_add(self.limits.exit_grace_ns) > now_ns {
                break;
            }
            self.remove((pid, start_ns));
            self.evicted_after_grace += 1;
        }
    }

    /// Sizes now and removals so far.
    pub fn stats(&self) -> TreeStats {
        TreeStats {
            entries: self.entries.len(),
            live: self.live.len(),
            exited: self.exited.len(),
            evicted_after_grace: self.evicted_after_grace,
            evicted_for_capacity: self.evicted_for_capacity,
            evicted_live_for_capacity: self.evicted_live_for_capacity,
        }
    }

    /// The number of entries, live and exited.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key of the entry for the process `pid` that started at `start_ns`
    /// give or take `uncertainty_ns`: an exact match first, else the newest
    /// whose window overlaps.
    fn find(&self, pid: u32, start_ns: u64, uncertainty_ns: u32) -> Option<Key> {
        if self.entries.contains_key(&(pid, start_ns)) {
            return Some((pid, start_ns));
        }
        self.generations(pid)
            .rev()
            .find(|p| p.started_at(start_ns, uncertainty_ns))
            .map(|p| (p.pid, p.start_ns))
    }

    /// The parent of a child that started at `child_start_ns` (give or take
    /// `child_uncertainty_ns`): the newest `ppid` that started no later and
    /// had not exited before.
    fn parent_of(
        &self,
        ppid: u32,
        child_start_ns: u64,
        child_uncertainty_ns: u32,
    ) -> Option<&ProcessInfo> {
        let latest_start = child_start_ns.saturating_add(u64::from(child_uncertainty_ns));
        self.entries
            .range((ppid, 0)..=(ppid, latest_start))
            .next_back()
            .map(|(_, p)| p)
            .filter(|p| p.exited_at.is_none_or(|exited| exited >= child_start_ns))
    }

    /// Gives an entry seeded from `/proc` the exact start a kernel event
    /// reported; returns its key from then on.
    fn refine(&mut self, key: Key, exact_start_ns: u64) -> Key {
        self.generation += 1;
        let new_key = (key.0, exact_start_ns);
        if key == new_key || self.entries.contains_key(&new_key) {
            return key;
        }
        let Some(mut entry) = self.remove(key) else {
            return key;
        };
        entry.start_ns = exact_start_ns;
        entry.start_uncertainty_ns = 0;
        self.index(&entry);
        self.entries.insert(new_key, entry);
        new_key
    }

    /// Adds an entry that [`Self::find`] did not find, making room first.
    fn insert(&mut self, mut entry: ProcessInfo, now_ns: Option<u64>) {
        self.generation += 1;
        // One pid, one process at a time: an older process still marked live
        // ended before this one started (its exit was lost), and this one, if
        // a newer one holds the pid, ended before that one started.
        let pid = entry.pid;
        let older_live: Vec<Key> = self
            .entries
            .range((pid, 0)..(pid, entry.start_ns))
            .filter(|(_, p)| p.is_live())
            .map(|(key, _)| *key)
            .collect();
        for key in older_live {
            self.mark_exited(key, entry.start_ns);
        }
        if entry.exited_at.is_none() {
            entry.exited_at = self
                .entries
                .range((pid, entry.start_ns.saturating_add(1))..=(pid, u64::MAX))
                .next()
                .map(|(_, newer)| newer.start_ns);
        }

        if self.entries.len() >= self.limits.max_entries
            && let Some(now_ns) = now_ns
        {
            self.gc(now_ns);
        }
        while self.entries.len() >= self.limits.max_entries {
            if let Some(&(_, pid, start_ns)) = self.exited.first() {
                self.remove((pid, start_ns));
            } else if let Some(&(start_ns, pid)) = self.live.first() {
                self.remove((pid, start_ns));
                self.evicted_live_for_capacity += 1;
            } else {
                break;
            }
            self.evicted_for_capacity += 1;
        }

        self.index(&entry);
        self.entries.insert((entry.pid, entry.start_ns), entry);
    }

    fn mark_exited(&mut self, key: Key, exited_at: u64) {
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        if entry.exited_at.is_some() {
            return;
        }
        entry.exited_at = Some(exited_at);
        self.live.remove(&(key.1, key.0));
        self.exited.insert((exited_at, key.0, key.1));
    }

    fn index(&mut self, entry: &ProcessInfo) {
        match entry.exited_at {
            None => self.live.insert((entry.start_ns, entry.pid)),
            Some(at) => self.exited.insert((at, entry.pid, entry.start_ns)),
        };
    }

    fn remove(&mut self, key: Key) -> Option<ProcessInfo> {
        self.generation += 1;
        let entry = self.entries.remove(&key)?;
        match entry.exited_at {
            None => self.live.remove(&(key.1, key.0)),
            Some(at) => self.exited.remove(&(at, key.0, key.1)),
        };
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn exec(pid: u32, ppid: u32, start_ns: u64, exe: &str, args: &[&str]) -> ExecInfo {
        let comm = exe.rsplit('/').next().unwrap_or(exe);
        ExecInfo {
            pid,
            ppid,
            start_ns,
            comm: comm.into(),
            exe: exe.into(),
            args: args.iter().map(|&a| a.to_owned()).collect(),
            cwd: "/".into(),
            uid: 1000,
            ..ExecInfo::default()
        }
    }

    fn summary(ancestors: &[Ancestor]) -> Vec<(u32, &str, &str, Vec<String>)> {
        ancestors
            .iter()
            .map(|a| (a.pid, a.comm(), a.exe(), a.args().to_vec()))
            .collect()
    }

    /// systemd (1) → sshd (500) → bash (600).
    fn login_shell() -> ProcessTree {
        let mut tree = ProcessTree::new(TreeLimits::default());
        tree.on_exec(exec(1, 0, 0, "/usr/lib/systemd/systemd", &["/sbin/init"]));
        tree.on_fork(1, 500, 10 * MS, 10 * MS);
        tree.on_exec(exec(500, 1, 10 * MS, "/usr/sbin/sshd", &["sshd", "-D"]));
        tree.on_fork(500, 600, 20 * MS, 20 * MS);
        tree.on_exec(exec(600, 500, 20 * MS, "/usr/bin/bash", &["-bash"]));
        tree
    }

    #[test]
    fn a_child_that_execd_and_exited_within_the_grace_still_resolves_its_ancestry() {
        let mut tree = login_shell();
        let start = 30 * MS;
        tree.on_fork(600, 700, start, start);
        tree.on_exec(exec(
            700,
            600,
            start,
            "/usr/bin/curl",
            &["curl", "-s", "http://x"],
        ));
        tree.on_exit(700, start, start + 1);
        // The bash that started it exits too.
        tree.on_exit(600, 20 * MS, start + 2);
        tree.gc(start + 4_000 * MS);

        let child = tree
            .get(700, start)
            .expect("the exited child is still there");
        assert_eq!((child.comm(), child.exe()), ("curl", "/usr/bin/curl"));
        assert_eq!(child.exited_at, Some(start + 1));
        assert_eq!(
            summary(&tree.ancestors(700, start, 10)),
            vec![
                (600, "bash", "/usr/bin/bash", vec!["-bash".to_owned()]),
                (
                    500,
                    "sshd",
                    "/usr/sbin/sshd",
                    vec!["sshd".into(), "-D".into()]
                ),
                (
                    1,
                    "systemd",
                    "/usr/lib/systemd/systemd",
                    vec!["/sbin/init".into()]
                ),
            ]
        );
        assert_eq!(tree.ancestors(700, start, 2).len(), 2, "max_depth holds");
    }

    #[test]
    fn a_forked_child_that_has_not_execd_runs_its_parents_image() {
        let mut tree = login_shell();
        tree.on_fork(600, 601, 25 * MS, 25 * MS);
        let child = tree.get(601, 25 * MS).expect("the child");
        assert_eq!((child.comm(), child.ppid, child.uid), ("bash", 600, 1000));
        assert_eq!(child.args(), &["-bash"][..]);
        let ancestors = tree.ancestors(601, 25 * MS, 10);
        assert_eq!(ancestors.first().map(|a| a.pid), Some(600));
    }

    #[test]
    fn a_reused_pid_with_a_newer_start_does_not_inherit_the_old_ancestry() {
        let mut tree = login_shell();
        tree.on_fork(600, 700, 30 * MS, 30 * MS);
        tree.on_exec(exec(700, 600, 30 * MS, "/usr/bin/curl", &["curl"]));
        tree.on_exit(700, 30 * MS, 31 * MS);

        // Pid 700 comes back as a child of systemd; its fork was lost.
        tree.on_exec(exec(700, 1, 40 * MS, "/usr/bin/cron", &["cron"]));
        let new = tree.get(700, 40 * MS).expect("the new process");
        assert_eq!((new.comm(), new.ppid), ("cron", 1));
        assert_eq!(summary(&tree.ancestors(700, 40 * MS, 10))[0].1, "systemd");
        assert_eq!(tree.ancestors(700, 40 * MS, 10).len(), 1);
        // The old one is still itself.
        assert_eq!(tree.get(700, 30 * MS).map(ProcessInfo::comm), Some("curl"));
        assert_eq!(tree.ancestors(700, 30 * MS, 10).len(), 3);
    }

    #[test]
    fn a_reused_pid_whose_exit_was_lost_marks_the_old_process_exited() {
        let mut tree = login_shell();
        tree.on_fork(600, 700, 30 * MS, 30 * MS);
        // No exit for 700; then 700 is a new process.
        tree.on_fork(1, 700, 50 * MS, 50 * MS);
        assert_eq!(
            tree.get(700, 30 * MS).and_then(|p| p.exited_at),
            Some(50 * MS)
        );
        assert_eq!(
            tree.get(700, 50 * MS).map(ProcessInfo::comm),
            Some("systemd")
        );
        assert_eq!(tree.stats().live, 4);
    }

    #[test]
    fn a_child_of_a_reused_parent_pid_finds_the_parent_that_was_running_when_it_started() {
        let mut tree = login_shell();
        tree.on_fork(600, 700, 30 * MS, 30 * MS);
        tree.on_exec(exec(700, 600, 30 * MS, "/usr/bin/make", &["make"]));
        tree.on_fork(700, 800, 35 * MS, 35 * MS);
        tree.on_exit(700, 30 * MS, 36 * MS);
        tree.on_exec(exec(700, 1, 40 * MS, "/usr/bin/cron", &["cron"]));
        tree.on_fork(700, 801, 45 * MS, 45 * MS);

        assert_eq!(tree.ancestors(800, 35 * MS, 1)[0].comm(), "make");
        assert_eq!(tree.ancestors(801, 45 * MS, 1)[0].comm(), "cron");
    }

    #[test]
    fn a_fork_from_an_unknown_parent_keeps_the_parent_pid_and_an_empty_image() {
        let mut tree = ProcessTree::new(TreeLimits::default());
        tree.on_fork(42, 43, 5, 5);
        let child = tree.get(43, 5).expect("the child");
        assert_eq!((child.ppid, child.uid, child.comm()), (42, UNKNOWN_UID, ""));
        assert!(tree.ancestors(43, 5, 10).is_empty());
    }

    #[test]
    fn an_exec_after_reparenting_keeps_the_parent_that_forked_it() {
        let mut tree = login_shell();
        tree.on_fork(600, 700, 30 * MS, 30 * MS);
        tree.on_exit(600, 20 * MS, 31 * MS);
        // Reparented to init, then exec'd.
        tree.on_exec(exec(700, 1, 30 * MS, "/usr/bin/nc", &["nc", "-l"]));
        let ancestors = tree.ancestors(700, 30 * MS, 10);
        assert_eq!(
            ancestors.iter().map(|a| a.pid).collect::<Vec<_>>(),
            [600, 500, 1]
        );
    }

    #[test]
    fn ancestry_stops_on_a_cycle_and_at_a_missing_parent() {
        let mut tree = ProcessTree::new(TreeLimits::default());
        // Two processes that name each other as parent, started together.
        tree.on_exec(exec(10, 11, 100, "/a", &[]));
        tree.on_exec(exec(11, 10, 100, "/b", &[]));
        assert_eq!(summary(&tree.ancestors(10, 100, 10)).len(), 1);
        tree.on_exec(exec(20, 99, 100, "/c", &[]));
        assert!(tree.ancestors(20, 100, 10).is_empty());
        assert!(tree.ancestors(12345, 1, 10).is_empty());
    }

    #[test]
    fn gc_after_the_grace_removes_exited_entries_and_counts_them() {
        let mut tree = login_shell();
        let grace = TreeLimits::DEFAULT_EXIT_GRACE_NS;
        tree.on_fork(600, 700, 30 * MS, 30 * MS);
        tree.on_fork(600, 701, 31 * MS, 31 * MS);
        tree.on_exit(700, 30 * MS, 40 * MS);
        tree.on_exit(701, 31 * MS, 41 * MS);

        tree.gc(40 * MS + grace - 1);
        assert_eq!(tree.stats().evicted_after_grace, 0);
        assert!(tree.get(700, 30 * MS).is_some());

        tree.gc(40 * MS + grace);
        assert!(tree.get(700, 30 * MS).is_none());
        assert!(tree.get(701, 31 * MS).is_some());

        tree.gc(u64::MAX);
        assert!(tree.get(701, 31 * MS).is_none());
        let stats = tree.stats();
        assert_eq!(
            stats,
            TreeStats {
                entries: 3,
                live: 3,
                exited: 0,
                evicted_after_grace: 2,
                evicted_for_capacity: 0,
                evicted_live_for_capacity: 0,
            }
        );
    }

    #[test]
    fn capacity_eviction_prefers_exited_entries_oldest_exit_first_and_counts_them() {
        let mut tree = ProcessTree::new(TreeLimits {
            max_entries: 4,
            exit_grace_ns: 1_000 * MS,
        });
        tree.on_exec(exec(1, 0, 0, "/sbin/init", &[]));
        for (pid, start) in [(10, 10), (11, 11), (12, 12)] {
            tree.on_fork(1, pid, start, start);
        }
        tree.on_exit(11, 11, 20);
        tree.on_exit(10, 10, 21);

        // Full: 11 (the oldest exit) goes, though its grace has not ended.
        tree.on_fork(1, 13, 30, 30);
        assert!(tree.get(11, 11).is_none());
        assert!(tree.get(10, 10).is_some());
        tree.on_fork(1, 14, 31, 31);
        assert!(tree.get(10, 10).is_none());
        let stats = tree.stats();
        assert_eq!(
            (
                stats.entries,
                stats.evicted_for_capacity,
                stats.evicted_live_for_capacity
            ),
            (4, 2, 0)
        );

        // Only live ones left: the oldest goes, and is counted as live.
        tree.on_fork(1, 15, 32, 32);
        assert!(tree.get(1, 0).is_none());
        assert!(tree.get(12, 12).is_some());
        let stats = tree.stats();
        assert_eq!(
            (
                stats.entries,
                stats.live,
                stats.evicted_for_capacity,
                stats.evicted_live_for_capacity
            ),
            (4, 4, 3, 1)
        );
    }

    #[test]
    fn a_full_tree_first_collects_entries_past_their_grace() {
        let mut tree = ProcessTree::new(TreeLimits {
            max_entries: 2,
            exit_grace_ns: 10,
        });
        tree.on_fork(1, 10, 1, 1);
        tree.on_exit(10, 1, 2);
        tree.on_fork(1, 11, 3, 3);
        tree.on_fork(1, 12, 100, 100);
        let stats = tree.stats();
        assert_eq!(
            (stats.evicted_after_grace, stats.evicted_for_capacity),
            (1, 0)
        );
        assert_eq!(stats.entries, 2);
    }

    #[test]
    fn a_proc_seeded_entry_matches_kernel_events_within_its_clock_tick() {
        let tick = 10 * MS;
        let mut tree = ProcessTree::new(TreeLimits::default());
        tree.on_seed(exec(1, 0, 0, "/sbin/init", &["init"]), tick, 0);
        tree.on_seed(exec(300, 1, 120 * MS, "/usr/bin/bash", &["bash"]), tick, 0);
        let exact = 120 * MS + 3_456_789;

        assert!(tree.get(300, exact).is_some(), "matched within the tick");
        assert!(
            tree.get(300, 120 * MS + tick).is_none(),
            "not at the next tick"
        );
        assert!(tree.get(300, 120 * MS - 1).is_none(), "not before the tick");

        // A child forked from it, with an exact start in the same tick.
        tree.on_fork(300, 301, exact + 10, exact + 10);
        assert_eq!(tree.ancestors(301, exact + 10, 5)[0].comm(), "bash");

        // The kernel's exact start replaces the tick once an event names it.
        tree.on_exit(300, exact, 200 * MS);
        let bash = tree.get(300, exact).expect("bash");
        assert_eq!((bash.start_ns, bash.start_uncertainty_ns), (exact, 0));
        assert_eq!(bash.exited_at, Some(200 * MS));
        assert!(tree.get(300, 120 * MS).is_none());
        assert_eq!(tree.stats().exited, 1);

        // Seeding the same process again does not duplicate it.
        tree.on_seed(exec(1, 0, 0, "/sbin/init", &["init"]), tick, 0);
        assert_eq!(tree.len(), 3);
    }

    #[test]
    fn ten_thousand_forked_children_share_their_parents_args_instead_of_copying_them() {
        let mut tree = ProcessTree::new(TreeLimits::default());
        let big: Vec<String> = (0..500).map(|i| format!("--option-{i}=value")).collect();
        tree.on_exec(ExecInfo {
            args: Args::new(&big),
            ..exec(100, 1, 1, "/usr/bin/server", &[])
        });
        for pid in 1_000..11_000 {
            tree.on_fork(100, pid, u64::from(pid), u64::from(pid));
        }
        assert_eq!(tree.stats().live, 10_001);

        let parent = Arc::clone(&tree.get(100, 1).expect("the parent").image);
        assert!(parent.heap_bytes() > 8_000, "{}", parent.heap_bytes());
        assert_eq!(parent.args(), &big[..]);
        // One image for all: the tree's 10,001 references plus this one.
        assert_eq!(Arc::strong_count(&parent), 10_002);
        assert!(
            tree.entries
                .values()
                .all(|entry| Arc::ptr_eq(&entry.image, &parent))
        );
        // What each entry costs apart from shared images.
        assert!(
            size_of::<ProcessInfo>() <= 64,
            "{}",
            size_of::<ProcessInfo>()
        );
    }

    #[test]
    fn a_leader_is_the_newest_process_with_its_pid_that_had_started() {
        let mut tree = login_shell();
        // An earlier bash with the same pid exited long ago.
        tree.on_exec(exec(600, 1, 5 * MS, "/usr/bin/old", &["old"]));
        tree.on_exit(600, 5 * MS, 6 * MS);
        assert_eq!(
            tree.leader(600, 30 * MS).map(ProcessInfo::comm),
            Some("bash")
        );
        assert_eq!(tree.leader(600, 7 * MS).map(ProcessInfo::comm), Some("old"));
        assert!(tree.leader(600, MS).is_none(), "nothing had started yet");
        assert!(tree.leader(4242, 30 * MS).is_none());
    }

    #[test]
    fn a_fork_inherits_the_group_session_terminal_and_exe_file() {
        let mut tree = ProcessTree::new(TreeLimits::default());
        let file = ExeFile {
            ino: 7,
            mtime_ns: 1,
            ctime_ns: 2,
        };
        let job = JobIds {
            pgid: 100,
            sid: 90,
            tty: 34816,
        };
        tree.on_exec(ExecInfo {
            job,
            exe_file: Some(file),
            root: Some(RootId { dev: 1, ino: 2 }),
            ..exec(100, 1, MS, "/usr/bin/bash", &["bash"])
        });
        tree.on_fork(100, 101, 2 * MS, 2 * MS);
        let child = tree.get(101, 2 * MS).expect("the child");
        assert_eq!(child.job, job);
        assert_eq!(child.image.exe_file(), Some(file));
        assert_eq!(child.image.root(), Some(RootId { dev: 1, ino: 2 }));
    }

    #[test]
    fn args_round_trip_with_empty_and_unicode_arguments() {
        let args = Args::new(["", "é", "a b", ""]);
        assert_eq!(args.len(), 4);
        assert_eq!(args.to_vec(), ["", "é", "a b", ""]);
        assert_eq!(args.get(2), Some("a b"));
        assert_eq!(args.get(4), None);
        assert!(Args::new(Vec::<String>::new()).is_empty());
    }

    #[test]
    fn command_lines_are_written_once_per_exec_and_follow_a_renamed_process() {
        let args = Args::new(["/bin/sh", "-c", "", "x"]);
        // An empty argument keeps its place between spaces, as in Falco.
        assert_eq!(args.tail(), "-c  x");
        let first = args.command_line("sh");
        assert_eq!(first, "sh -c  x");
        let again = args.command_line("sh");
        assert!(
            matches!((&first, &again), (Cow::Borrowed(a), Cow::Borrowed(b)) if std::ptr::eq(*a, *b)),
            "the second event of the process reads the same line"
        );
        let renamed = args.command_line("worker");
        assert_eq!(renamed, "worker -c  x");
        assert!(matches!(renamed, Cow::Owned(_)));
        assert_eq!(args.command_line("sh"), "sh -c  x");

        let alone = Args::new(["/bin/true"]);
        assert_eq!(alone.tail(), "");
        assert_eq!(alone.command_line("true"), "true");
        assert!(alone.heap_bytes() > Args::new(["/bin/true"]).heap_bytes());
    }
}
