//! The event schema: what every output (stdout, gRPC, alerts) carries.
//!
//! One versioned JSON shape for every kind, described by
//! `agent/schema/event.v1.schema.json`. Field names are stable: a change that
//! renames or removes one bumps [`SCHEMA_VERSION`]; adding an optional field
//! does not.

use serde::{Deserialize, Serialize};

/// The `schema_version` of every event this agent emits.
pub const SCHEMA_VERSION: u32 = 1;

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// What happened; says which of the optional sections below is present.
    pub kind: EventKind,
    /// Wall-clock time, RFC 3339 in UTC with nanoseconds.
    pub time: String,
    /// The kernel's `CLOCK_BOOTTIME` in nanoseconds, as recorded in the kernel.
    pub monotonic_ns: u64,
    /// The node the agent runs on.
    pub node: String,
    /// The CPU the event happened on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// The process the event is about (for `process_fork`, the parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    /// For `process_fork`: the new process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<Fork>,
    /// For `process_exit`: how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
    /// For `events_lost`: what was lost since the previous report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<Lost>,
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
}

impl EventKind {
    /// The name used in JSON, such as `process_exec`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProcessExec => "process_exec",
            Self::ProcessFork => "process_fork",
            Self::ProcessExit => "process_exit",
            Self::EventsLost => "events_lost",
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
    /// cgroup v2 id: the inode number of the process's cgroup directory.
    pub cgroup_id: u64,
    /// Command name (at most 15 bytes, as the kernel keeps it).
    pub comm: String,
    /// Executable, resolved to an absolute path (exec events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// The path handed to execve, as given (exec events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Arguments, argv\[0\] first (exec events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Number of arguments, which exceeds `args.len()` when argv was truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argc: Option<u32>,
    /// Working directory (exec events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Which of `filename`, `exe`, `cwd`, `args` were cut at their bound, or
    /// `args_unreadable` when argv could not be read at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
}

/// The new process of a `process_fork`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fork {
    /// The child's process id in the host's PID namespace.
    pub child_pid: u32,
    /// The child's process id in its own PID namespace.
    pub child_ns_pid: u32,
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
    use super::*;

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
            schema_version: SCHEMA_VERSION,
            kind: EventKind::ProcessExec,
            time: "2026-11-26T05:18:39.123456789Z".into(),
            monotonic_ns: 42,
            node: "n1".into(),
            cpu: Some(1),
            process: Some(Process {
                pid: 10,
                args: Some(vec!["/bin/echo".into(), "hi".into()]),
                truncated: vec!["args".into()],
                ..Process::default()
            }),
            fork: None,
            exit: None,
            lost: None,
        };
        let json = serde_json::to_string(&event).expect("serializes");
        assert!(json.contains(r#""kind":"process_exec""#), "{json}");
        let back: Event = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, event);
    }
}
