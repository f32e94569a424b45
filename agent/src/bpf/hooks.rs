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

/// Which syscall is reported, and how (indexed by syscall number).
pub const SYSCALL_SPECS_MAP: &str = "gr_syscall_specs";

/// Kill slots armed in each cgroup, by cgroup v2 id.
pub const KILL_CGROUPS_MAP: &str = "gr_kill_cgroups";
/// Kill slots of each executable path (zero-padded key).
pub const KILL_EXES_MAP: &str = "gr_kill_exes";
/// Kill slots of each command name (zero-padded key).
pub const KILL_NAMES_MAP: &str = "gr_kill_names";
/// Each kill slot's argument prefix (indexed by slot).
pub const KILL_ARGS_MAP: &str = "gr_kill_args";
/// The deny slots, as one bit mask (a single entry).
pub const KILL_DENY_MAP: &str = "gr_kill_deny";

/// The BPF LSM program that refuses the execs of deny slots (`deny-exec`).
/// Not among [`HOOKS`]: it is attached only where the kernel accepts BPF LSM
/// and a rule asks for it.
pub const DENY_EXEC_PROGRAM: &str = "gr_deny_exec";
/// The LSM hook it attaches to.
pub const DENY_EXEC_HOOK: &str = "bprm_check_security";

/// A sensor: what the config turns on or off as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sensor {
    /// fork, exec, exit.
    Process,
    /// Opening, creating, linking, renaming, removing files.
    File,
    /// Sockets: creation, connect, accept, bind, listen, datagram destinations.
    Network,
    /// Descriptor duplication (dup family, fcntl F_DUPFD).
    Descriptors,
    /// Privilege and kernel surface: set*id, capset, ptrace, modules, mounts,
    /// namespaces, memfd, bpf, userfaultfd.
    Privilege,
    /// Benchmarks only: reports getppid(2), a syscall cheap enough to measure
    /// the cost of the path from the kernel to a decoded event. Off by default.
    Benchmark,
}

impl Sensor {
    /// Every sensor.
    pub const ALL: [Self; 6] = [
        Self::Process,
        Self::File,
        Self::Network,
        Self::Descriptors,
        Self::Privilege,
        Self::Benchmark,
    ];

    /// The sensor's name in the config and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::File => "file",
            Self::Network => "network",
            Self::Descriptors => "descriptors",
            Self::Privilege => "privilege",
            Self::Benchmark => "benchmark",
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
    /// The sensors it serves; it attaches when any of them is on.
    pub sensors: &'static [Sensor],
}

/// The tracepoint of the syscall sensors' program, every syscall's exit.
pub const SYS_EXIT_TRACEPOINT: &str = "sys_exit";
/// The syscall sensors' program where it attaches instead to the exit
/// tracepoint of each syscall it reports (`syscalls/sys_exit_<name>`).
/// It reads the saved registers through the `bpf_rdonly_cast` kfunc.
pub const SYS_EXIT_EACH_PROGRAM: &str = "gr_sys_exit_each";
/// The same for kernels without that kfunc: the registers from a helper.
pub const SYS_EXIT_EACH_COMPAT_PROGRAM: &str = "gr_sys_exit_each_compat";
/// The tracefs category of the per-syscall tracepoints.
pub const SYSCALL_TRACEPOINTS: &str = "syscalls";

/// Where the syscall sensors' program attaches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyscallHook {
    /// The agent's choice, which is [`Self::PerSyscall`]: a program's entry
    /// on every syscall costs the node's syscalls more (about 40 ns each in
    /// the README's figures) than the per-syscall tracepoints cost the
    /// reported ones, on any load where fewer than about two calls in five
    /// are reported.
    #[default]
    Auto,
    /// To the exit tracepoint of each syscall a sensor reports, so that the
    /// kernel runs no program for any other syscall. A syscall the kernel
    /// is built without has no tracepoint and is not reported (its calls
    /// all fail: a module load on a kernel without modules); the agent
    /// names such syscalls when it starts and in its status. Without
    /// tracefs, as [`Self::SysExit`].
    PerSyscall,
    /// To `sys_exit`: one program for the exit of every syscall, which looks
    /// up whether the syscall is reported (costs every syscall a program's
    /// entry; needs no tracefs). It also sees the calls of syscalls the
    /// kernel is built without, attempts that all fail.
    SysExit,
}

/// Every hook, in the order they attach. Exit attaches before exec and fork so
/// that no process is seen starting without being seen ending.
pub const HOOKS: &[Hook] = &[
    Hook {
        program: "gr_exit",
        tracepoint: "sched_process_exit",
        sensors: &[Sensor::Process],
    },
    Hook {
        program: "gr_exec",
        tracepoint: "sched_process_exec",
        sensors: &[Sensor::Process],
    },
    Hook {
        program: "gr_fork",
        tracepoint: "sched_process_fork",
        sensors: &[Sensor::Process],
    },
    Hook {
        program: "gr_sys_exit",
        tracepoint: SYS_EXIT_TRACEPOINT,
        sensors: &[
            Sensor::File,
            Sensor::Network,
            Sensor::Descriptors,
            Sensor::Privilege,
            Sensor::Benchmark,
        ],
    },
    Hook {
        program: "gr_tcp_state",
        tracepoint: "inet_sock_set_state",
        sensors: &[Sensor::Network],
    },
];

/// Programs of the feature-probe object, never attached by the agent (the
/// sensor benchmark attaches the empty one).
pub mod probe {
    /// An fentry program on `do_exit`.
    pub const FENTRY_PROGRAM: &str = "gr_probe_fentry";
    /// The kernel function it is loaded against.
    pub const FENTRY_FUNCTION: &str = "do_exit";
    /// A BPF LSM program on `bprm_check_security`.
    pub const LSM_PROGRAM: &str = "gr_probe_lsm";
    /// The LSM hook it is loaded against.
    pub const LSM_HOOK: &str = "bprm_check_security";
    /// A program that does nothing, on the syscall sensors' tracepoint,
    /// [`super::SYS_EXIT_TRACEPOINT`] (benchmarks only).
    pub const EMPTY_SYS_EXIT_PROGRAM: &str = "gr_probe_empty_sys_exit";
}
