//! Who started what: a bounded tree of the node's processes, so that every
//! event can name the process's ancestors (`bash` → `sshd` → `systemd`).
//!
//! The [`ProcessTree`] is owned by one task and fed, in order, with what the
//! process sensors report: [`ProcessTree::on_fork`], [`ProcessTree::on_exec`]
//! and [`ProcessTree::on_exit`]. At start, before the first event,
//! [`seed_from_proc`] adds the processes that were already running.
//!
//! # Identity
//!
//! A process is its host pid (the thread group id) *and* its start time, the
//! kernel's `task->group_leader->start_boottime` in `CLOCK_BOOTTIME`
//! nanoseconds. Pids are reused; the start time tells the generations apart,
//! so a new process never inherits the ancestry of an old one with the same
//! pid. `/proc` gives the start time only in clock ticks (10 ms at the usual
//! `USER_HZ` of 100); a process seeded from `/proc` is matched by kernel events
//! whose start falls within its tick, and takes their exact start from then on.
//!
//! # Bounds
//!
//! [`TreeLimits`] caps the number of entries. An exited process stays for a
//! grace period (5 s by default) so that late events and its children still
//! resolve it; [`ProcessTree::gc`] then removes it. When the tree is full,
//! exited entries go first, oldest exit first, then the oldest live ones.
//! [`TreeStats`] counts both, for metrics. Processes share what they inherit:
//! a fork stores a pointer to its parent's image, not a copy of its arguments.

mod procfs;
mod tree;
pub mod users;

pub use procfs::{
    ARGS_MAX_BYTES, ProcfsError, SeedStats, clock_tick_ns, exe_file, root_id, seed_from_proc,
    seed_one, start_ticks,
};
pub use tree::{
    Ancestor, Args, ExeFile, ExecInfo, JobIds, ProcessImage, ProcessInfo, ProcessTree, RootId,
    TreeLimits, TreeStats, UNKNOWN_UID,
};
