//! Names of the kernel programs and maps, and where each program attaches.
//! The C sources in `agent-ebpf/bpf/` define them; nothing else in the agent
//! spells a BPF name.

/// Ring buffer of event records.
pub const EVENTS_MAP: &str = "gr_events";
/// Per-CPU counters, indexed by `agent_common::Counter`.
pub const COUNTERS_MAP: &str = "gr_counters";
/// The single `agent_common::Config` entry.
pub const CONFIG_MAP: &str = "gr_config";
/// cgroup v2 ids in scope.
pub const SCOPE_MAP: &str = "gr_scope";

/// A sensor: a set of hooks that the config turns on or off as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sensor {
    /// fork, exec, exit.
    Process,
}

impl Sensor {
    /// The sensor's name in the config and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Process => "process",
        }
    }
}

/// A program and the BTF-enabled tracepoint it attaches to.
#[derive(Clone, Copy, Debug)]
pub struct Hook {
    /// The program's name in the object.
    pub program: &'static str,
    /// The tracepoint (`tp_btf`) it attaches to.
    pub tracepoint: &'static str,
    /// The sensor it belongs to.
    pub sensor: Sensor,
}

/// Every hook, in the order they attach. Exit attaches before exec and fork so
/// that no process is seen starting without being seen ending.
pub const HOOKS: &[Hook] = &[
    Hook {
        program: "gr_exit",
        tracepoint: "sched_process_exit",
        sensor: Sensor::Process,
    },
    Hook {
        program: "gr_exec",
        tracepoint: "sched_process_exec",
        sensor: Sensor::Process,
    },
    Hook {
        program: "gr_fork",
        tracepoint: "sched_process_fork",
        sensor: Sensor::Process,
    },
];

/// Programs of the feature-probe object, never attached.
pub mod probe {
    /// An fentry program on `do_exit`.
    pub const FENTRY_PROGRAM: &str = "gr_probe_fentry";
    /// The kernel function it is loaded against.
    pub const FENTRY_FUNCTION: &str = "do_exit";
    /// A BPF LSM program on `bprm_check_security`.
    pub const LSM_PROGRAM: &str = "gr_probe_lsm";
    /// The LSM hook it is loaded against.
    pub const LSM_HOOK: &str = "bprm_check_security";
}
