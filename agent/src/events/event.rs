//! The event schema: what every output (stdout, gRPC, alerts) carries.
//!
//! One versioned JSON shape for every kind, described by
//! `agent/schema/event.v1.schema.json`. Field names are stable: a change that
//! renames or removes one bumps [`SCHEMA_VERSION`]; adding an optional field
//! does not.

use std::{borrow::Cow, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::process::{Args, ProcessImage};

/// The `schema_version` of every event this agent emits.
pub const SCHEMA_VERSION: u32 = 1;

/// One event. The sections that only some kinds have are boxed, so that an
/// event stays small as it moves through the pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// [`SCHEMA_VERSION`]: the only one this agent writes and reads.
    pub schema_version: SchemaVersion,
    /// What happened; says which of the optional sections below is present.
    pub kind: EventKind,
    /// Wall-clock time, RFC 3339 in UTC with nanoseconds.
    pub time: WallTime,
    /// When the kernel saw it: `CLOCK_BOOTTIME` in nanoseconds (the clock of
    /// process start times).
    pub monotonic_ns: u64,
    /// The node the agent runs on (shared by every event).
    pub node: NodeName,
    /// The CPU the event happened on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// The process the event is about (for `process_fork`, the parent).
    /// Shared by the successive events of a thread while what the kernel
    /// and the agent know of it does not change (see [`crate::enrich`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "super::json::process"
    )]
    pub process: Option<Arc<Process>>,
    /// The container the process runs in, or that it runs on the host;
    /// shared by the events of one cgroup.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "super::json::container"
    )]
    pub container: Option<Arc<ContainerInfo>>,
    /// The pod, workload and container from the kube API, for a process in
    /// a pod's container when the agent runs with a cluster; shared by the
    /// events of one container.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "super::json::kubernetes"
    )]
    pub kubernetes: Option<Arc<super::kubernetes::Kubernetes>>,
    /// For `process_fork`: the new process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<Box<Fork>>,
    /// For `process_exit`: how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Box<Exit>>,
    /// For `events_lost`: what was lost since the previous report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<Box<Lost>>,
    /// For `syscall`: the call, its arguments and what they referred to;
    /// shared by the events of a thread that repeats a call (the decoder
    /// keeps each thread's last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscall: Option<Arc<Syscall>>,
    /// For `tcp_state`: the socket and its change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_state: Option<Box<TcpState>>,
    /// For `process_exec`: the kernel killed the new program before it ran,
    /// for the rule in this kill slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_kill: Option<KernelKill>,
    /// For `process_exec`: BPF LSM refused this exec, for the rule in this
    /// kill slot. The process keeps running its old program; the event
    /// describes the one it asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_deny: Option<KernelDeny>,
    /// For `violation`: the rule that matched. The other sections are those
    /// of the event that matched it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<Box<Violation>>,
    /// For `action`: a containment action and its result. The other
    /// sections are those of the violation that planned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Box<super::action::ActionReport>>,
}

impl Event {
    /// An event of `kind` with only its common fields; the sections of the
    /// kind are added by the caller.
    pub fn new(kind: EventKind, time: WallTime, monotonic_ns: u64, node: NodeName) -> Self {
        Self {
            schema_version: SchemaVersion,
            kind,
            time,
            monotonic_ns,
            node,
            cpu: None,
            process: None,
            container: None,
            kubernetes: None,
            fork: None,
            exit: None,
            lost: None,
            syscall: None,
            tcp_state: None,
            kernel_kill: None,
            kernel_deny: None,
            violation: None,
            action: None,
        }
    }
}

/// An event's `schema_version`: always [`SCHEMA_VERSION`], so it takes no
/// room in the event (a queued event's size is the memory a burst costs);
/// an event of another version is refused when read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchemaVersion;

impl Serialize for SchemaVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(SCHEMA_VERSION)
    }
}

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let version = u32::deserialize(deserializer)?;
        if version == SCHEMA_VERSION {
            Ok(Self)
        } else {
            Err(serde::de::Error::custom(format_args!(
                "schema_version {version} is not supported (this agent reads {SCHEMA_VERSION})"
            )))
        }
    }
}

/// The name of the node an event happened on.
///
/// Every event the agent makes carries its node's name: held as a shared
/// string, that is a count raised on one thread and dropped on another for
/// each event. The agent's own name is made once per run and kept until
/// the process exits, so that handing it out costs nothing; a name read
/// back from a recording is shared as any string.
/// Both forms are thin pointers, so that the name takes 16 bytes of each
/// event rather than 24.
#[derive(Clone, Debug)]
pub enum NodeName {
    /// The name of the node this agent runs on, for the whole run.
    #[expect(clippy::borrowed_box, reason = "a thin pointer, unlike `&str`")]
    Run(&'static Box<str>),
    /// A name read from elsewhere (a recording, a test).
    Read(Arc<Box<str>>),
}

impl NodeName {
    /// The name of this agent's node, kept for the rest of the process:
    /// made once per run, where the decoder starts.
    pub fn for_run(name: &str) -> Self {
        Self::Run(Box::leak(Box::new(name.into())))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Run(name) => name,
            Self::Read(name) => name,
        }
    }
}

impl std::ops::Deref for NodeName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for NodeName {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for NodeName {}

impl std::fmt::Display for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for NodeName {
    fn from(name: &str) -> Self {
        Self::Read(Arc::new(name.into()))
    }
}

impl Serialize for NodeName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<str>::deserialize(deserializer).map(|name| Self::Read(Arc::new(name)))
    }
}

/// A wall-clock time, written as RFC 3339 in UTC with nanoseconds only when
/// the event is serialized, not when it is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallTime(pub std::time::SystemTime);

impl WallTime {
    /// Parses RFC 3339.
    pub fn parse(text: &str) -> Result<Self, humantime::TimestampError> {
        humantime::parse_rfc3339(text).map(Self)
    }
}

/// RFC 3339 in UTC with nanoseconds, as events are written.
impl std::fmt::Display for WallTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(&rfc3339_nanos(self.0)).unwrap_or_default())
    }
}

impl Serialize for WallTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(std::str::from_utf8(&rfc3339_nanos(self.0)).unwrap_or_default())
    }
}

/// `time` as humantime's `format_rfc3339_nanos` writes it, with the date
/// and time of day worked out once per second on each thread: the events of
/// a burst share their second, and formatting the whole time each time was
/// a few percent of writing a small event. A time before 1970 or after 9999
/// (a broken clock: humantime panics on the one and fails on the other) is
/// written as the nearest of the two.
fn rfc3339_nanos(time: std::time::SystemTime) -> [u8; 30] {
    use std::{
        cell::Cell,
        time::{Duration, UNIX_EPOCH},
    };
    thread_local! {
        /// The last second formatted, and its text up to the dot.
        static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
    }
    /// 9999-12-31T23:59:59.999999999Z
    const LAST: Duration = Duration::new(253_402_300_799, 999_999_999);
    let since = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .min(LAST);
    let seconds = since.as_secs();
    let (cached, mut prefix) = SECOND.get();
    if cached != seconds {
        let whole = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(seconds));
        // "YYYY-MM-DDTHH:MM:SSZ"
        prefix.copy_from_slice(whole.to_string().as_bytes());
        prefix[19] = b'.';
        SECOND.set((seconds, prefix));
    }
    let mut text = [0; 30];
    text[..20].copy_from_slice(&prefix);
    let mut nanos = since.subsec_nanos();
    for digit in text[20..29].iter_mut().rev() {
        *digit = b'0' + u8::try_from(nanos % 10).unwrap_or_default();
        nanos /= 10;
    }
    text[29] = b'Z';
    text
}

impl<'de> Deserialize<'de> for WallTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The kinds of event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A program was executed.
    ProcessExec,
    /// A process created a new process.
    ProcessFork,
    /// A process ended.
    ProcessExit,
    /// Events were lost; counts say where.
    EventsLost,
    /// A reported syscall returned (file, network, descriptor, privilege).
    Syscall,
    /// A TCP socket changed state.
    TcpState,
    /// An event matched a rule.
    Violation,
    /// A containment action was carried out, or would have been.
    Action,
}

impl EventKind {
    /// The name used in JSON, such as `process_exec`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProcessExec => "process_exec",
            Self::ProcessFork => "process_fork",
            Self::ProcessExit => "process_exit",
            Self::EventsLost => "events_lost",
            Self::Syscall => "syscall",
            Self::TcpState => "tcp_state",
            Self::Violation => "violation",
            Self::Action => "action",
        }
    }
}

/// A process, as the kernel saw it at the event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Process id (thread group id) in the host's PID namespace.
    pub pid: u32,
    /// Thread id in the host's PID namespace.
    pub tid: u32,
    /// The same process's id inside its own PID namespace (a container's view).
    pub ns_pid: u32,
    /// Parent's process id in the host's PID namespace.
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Effective user id.
    pub euid: u32,
    /// Effective group id.
    pub egid: u32,
    /// Audit login uid; absent when the process has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_uid: Option<u32>,
    /// The name of `uid` in the passwd file under the process's root
    /// directory (a container's image, a chroot); absent when it has none
    /// there. uid 0 is always `root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<Arc<str>>,
    /// The name of `gid` in the group file under the process's root; gid 0
    /// is always `root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<Arc<str>>,
    /// The name of `login_uid`, as `user_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_name: Option<Arc<str>>,
    /// The controlling terminal's device number, encoded as
    /// `/proc/PID/stat`'s `tty_nr` (major in bits 8..19, minor in 0..7 and
    /// 20..31); 0 when the process has no terminal.
    #[serde(default)]
    pub tty: u32,
    /// Process group id, host PID namespace.
    #[serde(default)]
    pub pgid: u32,
    /// Process group id in the process's own PID namespace; 0 when the group
    /// is not visible there.
    #[serde(default)]
    pub vpgid: u32,
    /// Session id, host PID namespace.
    #[serde(default)]
    pub sid: u32,
    /// cgroup v2 id: the inode number of the process's cgroup directory.
    pub cgroup_id: u64,
    /// The cgroup id in the memory controller's v1 hierarchy, on hybrid nodes
    /// where that controller is not on cgroup v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_cgroup_id: Option<u64>,
    /// When the process started, `CLOCK_BOOTTIME` ns; with `pid` it names
    /// the process uniquely on this node for as long as it runs.
    #[serde(default)]
    pub start_ns: u64,
    /// Command name (at most 15 bytes, as the kernel keeps it).
    pub comm: compact_str::CompactString,
    /// Executable, resolved to an absolute path (exec events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<Arc<str>>,
    /// The path handed to execve, as given (exec events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Arguments, argv\[0\] first (exec events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Args>,
    /// Number of arguments, which exceeds `args.len()` when argv was truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argc: Option<u32>,
    /// Working directory (exec events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<Arc<str>>,
    /// Exec events: the executable is a memfd (fileless execution).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exe_memfd: bool,
    /// Exec events: the executable lives on an overlay filesystem's upper
    /// layer, i.e. it was written or changed inside the container.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exe_upper_layer: bool,
    /// Effective capabilities at the event (after the exec, for exec
    /// events), as a bit mask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_effective: Option<u64>,
    /// The executable's inode number (from the exec, kept by the tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_ino: Option<u64>,
    /// The executable's last modification, ns since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_mtime_ns: Option<i64>,
    /// The executable's last status change, ns since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_ctime_ns: Option<i64>,
    /// The leader of its session (the process whose pid is `sid`), as the
    /// process tree knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_leader: Option<Leader>,
    /// The leader of its process group (the process whose pid is `pgid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_leader: Option<Leader>,
    /// Its ancestors, parent first, as the process tree knew them; shared
    /// by the events of the process while its lineage does not change.
    #[serde(
        default,
        skip_serializing_if = "<[Ancestor]>::is_empty",
        serialize_with = "super::json::ancestors"
    )]
    pub ancestors: Arc<[Ancestor]>,
    /// Which of `filename`, `exe`, `cwd`, `args` were cut at their bound, or
    /// `args_unreadable` when argv could not be read at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
}

impl Process {
    /// The command name, then the arguments after argv\[0\] (Falco's
    /// `proc.cmdline`); the name alone when the arguments are unknown.
    pub fn command_line(&self) -> Cow<'_, str> {
        match &self.args {
            Some(args) => args.command_line(&self.comm),
            None => Cow::Borrowed(&self.comm),
        }
    }
}

/// One ancestor of a process: its host pid, start and what it runs, shared
/// with the process tree so that listing ancestors on every event copies no
/// strings. In JSON: `{"pid", "start_ns", "comm", "exe", "args"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ancestor {
    /// Its host pid.
    pub pid: u32,
    /// When it started, `CLOCK_BOOTTIME` ns (to a clock tick for processes
    /// that were running when the agent started).
    pub start_ns: u64,
    /// Its command name, executable and arguments.
    pub image: Arc<ProcessImage>,
}

impl Ancestor {
    /// An ancestor from its parts.
    pub fn new(pid: u32, comm: &str, exe: &str, args: &[&str]) -> Self {
        Self {
            pid,
            start_ns: 0,
            image: Arc::new(ProcessImage::new(comm, exe, Args::new(args), "")),
        }
    }
}

impl Serialize for Ancestor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("pid", &self.pid)?;
        map.serialize_entry("start_ns", &self.start_ns)?;
        map.serialize_entry("comm", self.image.comm())?;
        map.serialize_entry("exe", self.image.exe())?;
        map.serialize_entry("args", self.image.args())?;
        map.end()
    }
}

/// The leader of a process's session or group: its host pid and what it
/// runs, shared with the process tree. In JSON: `{"pid", "comm", "exe"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    /// Its host pid.
    pub pid: u32,
    /// Its command name and executable.
    pub image: Arc<ProcessImage>,
}

impl Serialize for Leader {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("pid", &self.pid)?;
        map.serialize_entry("comm", self.image.comm())?;
        map.serialize_entry("exe", self.image.exe())?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Leader {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            pid: u32,
            comm: String,
            exe: String,
        }
        let f = Fields::deserialize(deserializer)?;
        Ok(Self {
            pid: f.pid,
            image: Arc::new(ProcessImage::new(&f.comm, &f.exe, Args::default(), "")),
        })
    }
}

impl<'de> Deserialize<'de> for Ancestor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            pid: u32,
            #[serde(default)]
            start_ns: u64,
            comm: String,
            exe: String,
            args: Vec<String>,
        }
        let f = Fields::deserialize(deserializer)?;
        Ok(Self {
            pid: f.pid,
            start_ns: f.start_ns,
            image: Arc::new(ProcessImage::new(&f.comm, &f.exe, Args::new(&f.args), "")),
        })
    }
}

/// Where a process runs: in a container, on the host, or not known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerInfo {
    /// `container`, `host`, or `unknown` (the cgroup was gone before the agent
    /// looked it up).
    pub kind: String,
    /// The container id (64 hex characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `containerd`, `cri-o`, `docker`, `podman`, or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The pod's UID, when the container is in a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The pod's QoS class: `guaranteed`, `burstable`, `besteffort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// How the cgroups were named: `systemd` or `cgroupfs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_driver: Option<String>,
    /// The process is the runtime's monitor of the container (conmon).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub monitor: bool,
}

/// The new process of a `process_fork`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fork {
    /// The child's process id in the host's PID namespace.
    pub child_pid: u32,
    /// The child's process id in its own PID namespace.
    pub child_ns_pid: u32,
    /// When the child started, `CLOCK_BOOTTIME` ns.
    #[serde(default)]
    pub child_start_ns: u64,
}

/// How a process ended: with an exit code, or killed by a signal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exit {
    /// The exit code, when the process exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The number of the signal that killed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// The signal's name, such as `SIGKILL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_name: Option<String>,
    /// Whether it dumped core.
    #[serde(default)]
    pub core_dumped: bool,
}

impl Exit {
    /// Reads a wait(2) status.
    pub fn from_wait_status(status: u32) -> Self {
        let signal = (status & 0x7f) as i32;
        if signal == 0 {
            Self {
                code: Some(((status >> 8) & 0xff) as i32),
                ..Self::default()
            }
        } else {
            Self {
                code: None,
                signal: Some(signal),
                signal_name: signal_name(signal).map(str::to_owned),
                core_dumped: status & 0x80 != 0,
            }
        }
    }
}

/// Counts of lost events since the previous `events_lost`, and in total.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lost {
    /// Events the kernel could not put in the ring buffer, since the last report.
    pub ring_buffer_full: u64,
    /// The same since the agent started, per CPU (index = CPU number).
    pub ring_buffer_full_per_cpu: Vec<u64>,
    /// Records the agent could not decode, since the last report.
    pub decode_failed: u64,
    /// Decoded events dropped because the outputs were behind, since the last report.
    pub queue_full: u64,
    /// All of the above since the agent started.
    pub total: u64,
}

/// A syscall as it returned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Syscall {
    /// Its name, as Falco's `evt.type` spells it (`openat`, `connect`, ...).
    pub name: Cow<'static, str>,
    /// Its number on the node's architecture.
    pub nr: u32,
    /// The sensor that reported it: `file`, `network`, `descriptors` or `privilege`.
    pub sensor: Cow<'static, str>,
    /// The return value: a new descriptor, 0, or a negative errno.
    pub ret: i64,
    /// Every argument by name: numbers as passed, user strings as read.
    pub args: SyscallArgs,
    /// What each descriptor argument, and a returned descriptor (`arg: "ret"`),
    /// referred to when the call returned.
    #[serde(default, skip_serializing_if = "smallvec::SmallVec::is_empty")]
    pub fds: Descriptors,
    /// Each path argument, as given and made absolute.
    #[serde(default, skip_serializing_if = "smallvec::SmallVec::is_empty")]
    pub paths: PathArgs,
    /// Each socket address argument, decoded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    /// openat2's `struct open_how`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_how: Option<Box<OpenHow>>,
    /// capset's capability sets, as 64-bit masks (bit n = capability n).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Box<CapSets>>,
    /// Whether a path or string was cut at its bound, or a part did not fit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// A syscall's descriptors. Most calls that have one have one (an open's
/// new descriptor, a connect's socket): it lies in the section, which is
/// boxed already, instead of in an allocation of its own.
pub type Descriptors = smallvec::SmallVec<[FdInfo; 1]>;

/// A syscall's path arguments; inline for the one most calls have.
pub type PathArgs = smallvec::SmallVec<[PathArg; 1]>;

/// A kill in the kernel: SIGKILL sent at the exec, before the new program
/// ran an instruction of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelKill {
    /// The kill slot whose rule matched.
    pub slot: u8,
}

/// An exec refused in the kernel by BPF LSM (`deny-exec`): the program was
/// never mapped and the exec failed with `EPERM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelDeny {
    /// The kill slot whose rule matched.
    pub slot: u8,
}

/// A rule's match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Violation {
    /// The rule's name.
    pub rule: String,
    /// The rule's priority.
    pub priority: crate::rules::Priority,
    /// The rule's tags.
    #[serde(default, skip_serializing_if = "<[String]>::is_empty")]
    pub tags: std::sync::Arc<[String]>,
    /// The rule's output, rendered for the event.
    pub output: String,
    /// The value of each field the output names; `null` where the event has
    /// none (the output shows `<NA>`).
    pub fields: std::collections::BTreeMap<std::sync::Arc<str>, serde_json::Value>,
    /// The kind of the event that matched, as Falco names it (`openat`,
    /// `execve`, ...).
    pub event_type: String,
    /// What the pod can reach, for a violation in a pod's container when the
    /// agent runs with a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<Box<super::kubernetes::BlastRadius>>,
}

/// A TCP state change. It often happens in no process's context, so the
/// process is the socket's owner: the one that last used it through a
/// reported syscall, or made this change (connect, listen).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpState {
    /// The state before: `close`, `listen`, `syn_sent`, `established`, ...
    pub old_state: String,
    /// The state after.
    pub new_state: String,
    /// The socket, after the change.
    pub socket: Socket,
    /// The socket's cgroup v2 id.
    pub cgroup_id: u64,
    /// The socket's owner, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<SocketOwner>,
}

/// The process a socket belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketOwner {
    /// Its host pid.
    pub pid: u32,
    /// Its start, `CLOCK_BOOTTIME` ns.
    pub start_ns: u64,
    /// Its command name, from the process tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// Its executable, from the process tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
}

/// A syscall's arguments by name, in name order (as JSON shows them). Up to
/// five are kept inline (a sixth, as in sendto, moves them to the heap):
/// decoding an event allocates, searches and frees no map node for them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallArgs(smallvec::SmallVec<[(Cow<'static, str>, ArgValue); 5]>);

impl SyscallArgs {
    /// The value of the argument called `name`.
    pub fn get(&self, name: &str) -> Option<&ArgValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Sets the argument called `name`; returns the value it replaced.
    pub fn insert(&mut self, name: Cow<'static, str>, value: ArgValue) -> Option<ArgValue> {
        match self.0.binary_search_by(|(n, _)| n.as_ref().cmp(&name)) {
            Ok(at) => self
                .0
                .get_mut(at)
                .map(|(_, old)| std::mem::replace(old, value)),
            Err(at) => {
                self.0.insert(at, (name, value));
                None
            }
        }
    }

    /// Appends an argument whose name sorts after those present, as the
    /// decoder's table gives them: no search.
    #[inline(always)]
    pub(crate) fn push_in_order(&mut self, name: Cow<'static, str>, value: ArgValue) {
        debug_assert!(self.0.last().is_none_or(|(last, _)| *last < name));
        // Written in place (see `in_place`), and the value by variant, so
        // that a number made in a branch of the caller is stored from there
        // rather than copied whole through the stack.
        self.0.reserve(1);
        let len = self.0.len();
        // SAFETY: `reserve` left room for one more pair after the `len`
        // initialised ones; both halves are written before the length
        // counts the pair.
        unsafe {
            let slot = self.0.as_mut_ptr().add(len);
            std::ptr::addr_of_mut!((*slot).0).write(name);
            let place = std::ptr::addr_of_mut!((*slot).1);
            match value {
                ArgValue::Unsigned(n) => place.write(ArgValue::Unsigned(n)),
                ArgValue::Signed(n) => place.write(ArgValue::Signed(n)),
                text @ ArgValue::Text(_) => place.write(text),
            }
            self.0.set_len(len + 1);
        }
    }

    /// Replaces the value of the argument at `position` in name order.
    #[inline(always)]
    pub(crate) fn set_at(&mut self, position: usize, value: ArgValue) {
        if let Some((_, old)) = self.0.get_mut(position) {
            // By variant, as in `push_in_order`.
            *old = match value {
                ArgValue::Text(text) => ArgValue::Text(text),
                number => number,
            };
        }
    }

    /// The arguments in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Cow<'static, str>, &ArgValue)> {
        self.0.iter().map(|(n, v)| (n, v))
    }

    /// The names, in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Cow<'static, str>> {
        self.0.iter().map(|(n, _)| n)
    }

    /// The names, in order, to replace with equal ones (shared names).
    pub fn keys_mut(&mut self) -> impl ExactSizeIterator<Item = &mut Cow<'static, str>> {
        self.0.iter_mut().map(|(n, _)| n)
    }

    /// The values, in order, to replace with equal ones (shared strings).
    pub fn values_mut(&mut self) -> impl ExactSizeIterator<Item = &mut ArgValue> {
        self.0.iter_mut().map(|(_, v)| v)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(Cow<'static, str>, ArgValue)> for SyscallArgs {
    fn from_iter<I: IntoIterator<Item = (Cow<'static, str>, ArgValue)>>(iter: I) -> Self {
        let mut args = Self::default();
        for (name, value) in iter {
            args.insert(name, value);
        }
        args
    }
}

impl Serialize for SyscallArgs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for SyscallArgs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        std::collections::BTreeMap::<Cow<'static, str>, ArgValue>::deserialize(deserializer)
            .map(|map| map.into_iter().collect())
    }
}

/// An argument's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ArgValue {
    /// A number that is not negative.
    Unsigned(u64),
    /// A negative number (descriptors such as AT_FDCWD).
    Signed(i64),
    /// A string read from the process's memory.
    Text(Arc<str>),
}

impl ArgValue {
    /// A signed number, kept unsigned when it is not negative so that the
    /// value reads back the same from JSON.
    pub fn int(value: i64) -> Self {
        u64::try_from(value).map_or(Self::Signed(value), Self::Unsigned)
    }
}

/// What a descriptor referred to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdInfo {
    /// The argument's name, or `ret` for a returned descriptor.
    pub arg: Cow<'static, str>,
    /// The descriptor number.
    pub fd: i64,
    /// `file` (a path), `socket`, `pipe` or `anon` (an anonymous inode).
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
    /// For `file`: its absolute path (shared with the path argument it
    /// was opened by, when they are the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Arc<str>>,
    /// For `socket`: what the kernel holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<Box<Socket>>,
}

/// A socket as the kernel holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Socket {
    /// `inet`, `inet6`, `unix`, `netlink`, `packet`, or the number.
    pub family: Cow<'static, str>,
    /// `stream`, `dgram`, `raw`, `seqpacket`, or the number.
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `raw`, or the number.
    pub protocol: Cow<'static, str>,
    /// The TCP state (`established`, `listen`, ...), for inet stream sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Cow<'static, str>>,
    /// The local endpoint, for inet sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<Endpoint>,
    /// The remote endpoint, for connected inet sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Endpoint>,
}

/// An IP address and port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// The address, e.g. `127.0.0.1` or `::1`.
    pub address: String,
    /// The port.
    pub port: u16,
}

/// A path argument.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "PathArgFields")]
pub struct PathArg {
    /// The argument's name.
    pub arg: Cow<'static, str>,
    /// The path as the process passed it.
    pub raw: Arc<str>,
    /// The path made absolute against the working directory or the directory
    /// descriptor (resolved in the kernel at the call), with `.` and `..`
    /// removed lexically, when that differs from the raw path. Most paths
    /// are absolute and clean already: then this is `None` and [`PathArg::path`]
    /// is the raw path, one string held once.
    pub resolved: Option<Arc<str>>,
}

impl PathArg {
    /// The argument `arg`, passed as `raw`, that named `path`.
    pub fn new(arg: Cow<'static, str>, raw: Arc<str>, path: Arc<str>) -> Self {
        let resolved = (path != raw).then_some(path);
        Self { arg, raw, resolved }
    }

    /// The absolute path (written as `path`).
    pub fn path(&self) -> &Arc<str> {
        self.resolved.as_ref().unwrap_or(&self.raw)
    }
}

impl Serialize for PathArg {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut fields = serializer.serialize_struct("PathArg", 3)?;
        fields.serialize_field("arg", &self.arg)?;
        fields.serialize_field("raw", &self.raw)?;
        fields.serialize_field("path", self.path())?;
        fields.end()
    }
}

/// A path argument as it is written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathArgFields {
    arg: Cow<'static, str>,
    raw: Arc<str>,
    path: Arc<str>,
}

impl From<PathArgFields> for PathArg {
    fn from(fields: PathArgFields) -> Self {
        Self::new(fields.arg, fields.raw, fields.path)
    }
}

/// A socket address argument.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// The argument's name.
    pub arg: Cow<'static, str>,
    /// `inet`, `inet6`, `unix`, or the number.
    pub family: Cow<'static, str>,
    /// The IP address, for inet families.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The port, for inet families.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The socket path, for unix (`@name` for the abstract namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Capability sets, as 64-bit masks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapSets {
    /// Effective.
    pub effective: u64,
    /// Permitted.
    pub permitted: u64,
    /// Inheritable.
    pub inheritable: u64,
}

/// openat2's `struct open_how`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenHow {
    /// O_* flags.
    pub flags: u64,
    /// Mode for a created file.
    pub mode: u64,
    /// RESOLVE_* flags.
    pub resolve: u64,
}

/// The name of a Linux signal number.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(signal)
        .ok()
        .and_then(|i| NAMES.get(i))
        .filter(|name| !name.is_empty())
        .copied()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn a_path_argument_writes_its_absolute_path_whether_it_holds_one_string_or_two() {
        let absolute = PathArg::new(
            "pathname".into(),
            "/etc/shadow".into(),
            "/etc/shadow".into(),
        );
        assert!(absolute.resolved.is_none(), "one string");
        let relative = PathArg::new("pathname".into(), "shadow".into(), "/etc/shadow".into());
        for (arg, raw) in [(&absolute, "/etc/shadow"), (&relative, "shadow")] {
            let json = serde_json::to_value(arg).expect("writes");
            assert_eq!(
                json,
                serde_json::json!({"arg": "pathname", "raw": raw, "path": "/etc/shadow"})
            );
            let read: PathArg = serde_json::from_value(json).expect("reads");
            assert_eq!(&read, arg);
        }
        let unknown = serde_json::json!({"arg": "a", "raw": "/x", "path": "/x", "other": 1});
        assert!(serde_json::from_value::<PathArg>(unknown).is_err());
    }

    #[test]
    fn the_runs_node_name_reads_back_equal_to_the_name_it_was_made_from() {
        let run = NodeName::for_run("node-7");
        let json = serde_json::to_string(&run).expect("writes");
        assert_eq!(json, "\"node-7\"");
        let read: NodeName = serde_json::from_str(&json).expect("reads");
        assert!(matches!(read, NodeName::Read(_)));
        assert_eq!(read, run);
        assert_eq!(&*run, "node-7");
        assert_ne!(NodeName::from("node-8"), run);
    }

    #[test]
    fn an_event_is_written_with_the_schema_version_and_one_of_another_is_refused() {
        let event = Event::new(
            EventKind::ProcessExec,
            WallTime(UNIX_EPOCH),
            1,
            NodeName::from("node-1"),
        );
        let mut json = serde_json::to_value(&event).expect("writes");
        assert_eq!(json["schema_version"], SCHEMA_VERSION);
        let read: Event = serde_json::from_value(json.clone()).expect("reads");
        assert_eq!(read.schema_version, SchemaVersion);
        json["schema_version"] = (SCHEMA_VERSION + 1).into();
        let error = serde_json::from_value::<Event>(json)
            .expect_err("another version")
            .to_string();
        assert!(
            error.contains(&format!(
                "schema_version {} is not supported",
                SCHEMA_VERSION + 1
            )),
            "{error}"
        );
    }

    #[test]
    fn times_are_written_as_humantime_writes_them_within_a_second_and_across() {
        let json = |time| serde_json::to_string(&WallTime(time)).expect("writes");
        let humantime = |time| format!("\"{}\"", humantime::format_rfc3339_nanos(time));
        let start = UNIX_EPOCH + Duration::new(1_795_000_000, 999_999_990);
        // Steps that stay in a second, cross one, cross a day and a year.
        for step in [
            1,
            7,
            123_456_789,
            999_999_999,
            86_400_000_000_000,
            31_536_000_000_000_000,
        ] {
            for i in 0..4 {
                let time = start + Duration::from_nanos(step * i);
                assert_eq!(json(time), humantime(time));
            }
        }
        for time in [UNIX_EPOCH, UNIX_EPOCH + Duration::from_nanos(1)] {
            assert_eq!(json(time), humantime(time));
        }
        // A broken clock: the nearest time that can be written.
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(json(before), "\"1970-01-01T00:00:00.000000000Z\"");
        let after = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(json(after), "\"9999-12-31T23:59:59.999999999Z\"");
        let parsed = WallTime::parse("2026-11-28T10:18:39.000000042Z").expect("parses");
        assert_eq!(json(parsed.0), "\"2026-11-28T10:18:39.000000042Z\"");
        assert_eq!(parsed.to_string(), "2026-11-28T10:18:39.000000042Z");
    }

    #[test]
    fn a_wait_status_gives_the_exit_code_or_the_signal() {
        assert_eq!(Exit::from_wait_status(3 << 8).code, Some(3));
        let killed = Exit::from_wait_status(9);
        assert_eq!((killed.code, killed.signal), (None, Some(9)));
        assert_eq!(killed.signal_name.as_deref(), Some("SIGKILL"));
        let dumped = Exit::from_wait_status(0x80 | 11);
        assert!(dumped.core_dumped);
        assert_eq!(dumped.signal_name.as_deref(), Some("SIGSEGV"));
    }

    #[test]
    fn an_event_survives_a_json_round_trip_unchanged() {
        let event = Event {
            cpu: Some(1),
            process: Some(Arc::new(Process {
                pid: 10,
                args: Some(["/bin/echo", "hi"].into_iter().collect()),
                truncated: vec!["args".into()],
                ..Process::default()
            })),
            kernel_kill: Some(KernelKill { slot: 3 }),
            ..Event::new(
                EventKind::ProcessExec,
                WallTime::parse("2026-11-26T05:18:39.123456789Z").expect("a time"),
                42,
                "n1".into(),
            )
        };
        let json = serde_json::to_string(&event).expect("serializes");
        assert!(json.contains(r#""kind":"process_exec""#), "{json}");
        assert!(json.contains(r#""kernel_kill":{"slot":3}"#), "{json}");
        let back: Event = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, event);
    }

    #[test]
    fn syscall_args_keep_name_order_replace_by_name_and_read_back_from_json() {
        let mut args: SyscallArgs = [
            ("pathname".into(), ArgValue::Text("/etc/shadow".into())),
            ("dirfd".into(), ArgValue::Signed(-100)),
            ("flags".into(), ArgValue::Unsigned(0)),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            args.keys().map(AsRef::as_ref).collect::<Vec<&str>>(),
            ["dirfd", "flags", "pathname"]
        );
        assert_eq!(
            args.insert("flags".into(), ArgValue::Unsigned(0o100)),
            Some(ArgValue::Unsigned(0))
        );
        assert_eq!(args.get("flags"), Some(&ArgValue::Unsigned(0o100)));
        assert_eq!(args.get("mode"), None);
        assert_eq!(args.len(), 3);
        let json = serde_json::to_string(&args).expect("serializes");
        assert_eq!(
            json,
            r#"{"dirfd":-100,"flags":64,"pathname":"/etc/shadow"}"#
        );
        let back: SyscallArgs =
            serde_json::from_str(r#"{"pathname":"/etc/shadow","flags":64,"dirfd":-100}"#)
                .expect("deserializes");
        assert_eq!(back, args);
        // More than a syscall has still fit.
        let many: SyscallArgs = (0..9)
            .map(|i| (format!("a{i}").into(), ArgValue::Unsigned(i)))
            .collect();
        assert_eq!(many.get("a8"), Some(&ArgValue::Unsigned(8)));
    }
}
