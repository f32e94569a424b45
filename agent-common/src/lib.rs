//! The wire contract between the kernel programs and the agent.
//!
//! KEEP IN SYNC with `agent-ebpf/bpf/lib/wire.h`: every type here mirrors one
//! there, field for field. `agent-ebpf/tests/wire_layout.rs` compares the sizes
//! and offsets of both against the BTF of the compiled object, so a change to
//! one side alone fails the tests.
//!
//! Records arrive as bytes from a ring buffer; [`Record::parse`] checks the
//! length and kind before anything reads a field.
#![no_std]
#![deny(missing_docs)]

use core::mem::size_of;

pub mod contain;

/// Bumped whenever a struct here changes shape or a field its meaning
/// (`GR_WIRE_VERSION`).
pub const WIRE_VERSION: u16 = 5;

/// Bound of the filename handed to execve, in bytes (`GR_FILENAME_MAX`).
pub const FILENAME_MAX: usize = 1024;
/// Bound of a resolved path (exe, cwd), in bytes, terminator excluded (`GR_PATH_MAX - 1`).
pub const PATH_MAX: usize = 4095;
/// Bound of argv, NUL-separated, in bytes (`GR_ARGS_MAX`).
pub const ARGS_MAX: usize = 4096;
/// Length of a task's comm (`GR_COMM_LEN`).
pub const COMM_LEN: usize = 16;
/// How deep below a scoped cgroup a task is still in scope (`GR_SCOPE_MAX_DEPTH`).
pub const SCOPE_MAX_DEPTH: usize = 16;

/// The kind of a record (`enum gr_event_kind`).
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A successful execve.
    Exec = 1,
    /// A new process.
    Fork = 2,
    /// The end of a process.
    Exit = 3,
    /// A reported syscall returned.
    Syscall = 4,
    /// A TCP socket changed state.
    TcpState = 5,
}

impl EventKind {
    /// The kind for a raw value, if it is one.
    pub fn from_raw(raw: u16) -> Option<Self> {
        match raw {
            1 => Some(Self::Exec),
            2 => Some(Self::Fork),
            3 => Some(Self::Exit),
            4 => Some(Self::Syscall),
            5 => Some(Self::TcpState),
            _ => None,
        }
    }
}

/// Flags of an exec record (`enum gr_exec_flags`).
pub mod exec_flags {
    /// The filename was cut at [`super::FILENAME_MAX`].
    pub const FILENAME_TRUNCATED: u32 = 1 << 0;
    /// The exe path was cut at [`super::PATH_MAX`] or at the walk's depth.
    pub const EXE_TRUNCATED: u32 = 1 << 1;
    /// The cwd path was cut at [`super::PATH_MAX`] or at the walk's depth.
    pub const CWD_TRUNCATED: u32 = 1 << 2;
    /// argv was cut at [`super::ARGS_MAX`].
    pub const ARGS_TRUNCATED: u32 = 1 << 3;
    /// argv could not be read from the new program's memory.
    pub const ARGS_UNREADABLE: u32 = 1 << 4;
    /// The executable is a memfd.
    pub const EXE_MEMFD: u32 = 1 << 5;
    /// The executable lives on an overlay filesystem's upper layer.
    pub const EXE_UPPER_LAYER: u32 = 1 << 6;
    /// The kernel sent the new program SIGKILL before it ran; the record's
    /// `kill_slot` says which kill slot matched.
    pub const KILLED: u32 = 1 << 7;
    /// BPF LSM refused the exec: the record describes the program refused,
    /// the process keeps running its old one, and the record's `kill_slot`
    /// says which deny slot matched.
    pub const DENIED: u32 = 1 << 8;
}

/// How the syscall sensor treats an argument (`enum gr_arg_kind`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// Not reported.
    None = 0,
    /// The raw value.
    Scalar = 1,
    /// A descriptor, resolved to a path or socket.
    Fd = 2,
    /// A user path; relative ones get their base directory.
    Path = 3,
    /// A user string.
    String = 4,
    /// A user sockaddr whose length is the next argument.
    Sockaddr = 5,
    /// A user msghdr, for its destination address.
    Msghdr = 6,
    /// The directory descriptor a path argument is relative to.
    Dirfd = 7,
    /// A user `struct open_how` (flags, mode, resolve).
    OpenHow = 8,
    /// A sockaddr the kernel filled; the next argument points at its length.
    SockaddrOut = 9,
    /// capset's user data: two `{effective, permitted, inheritable}` of `u32`.
    CapData = 10,
}

/// `dirfd_of` value for a path relative to the working directory.
pub const DIRFD_CWD: u8 = 0xff;

/// Kinds of the parts after a syscall record (`enum gr_part_kind`).
pub mod part_kind {
    /// A user path as given.
    pub const PATH: u8 = 1;
    /// The absolute directory a relative path starts from.
    pub const BASE: u8 = 2;
    /// The absolute path a descriptor refers to.
    pub const FD_PATH: u8 = 3;
    /// A [`super::SocketInfo`].
    pub const SOCKET: u8 = 4;
    /// A user string.
    pub const STRING: u8 = 5;
    /// Raw sockaddr bytes.
    pub const SOCKADDR: u8 = 6;
    /// Another kind of descriptor: its `u32` inode mode.
    pub const FD_OTHER: u8 = 7;
    /// A `struct open_how`: `u64` flags, mode and resolve.
    pub const OPEN_HOW: u8 = 8;
    /// capset's data: two `{effective, permitted, inheritable}` of `u32`.
    pub const CAP_DATA: u8 = 9;
}

/// `arg` of a part that describes the return value (`GR_PART_RET`).
pub const PART_RET: u8 = 0xff;

/// Flags of a syscall record (`enum gr_syscall_flags`).
pub mod syscall_flags {
    /// Not every part fit in the record.
    pub const PARTS_TRUNCATED: u32 = 1 << 0;
    /// A path or string was cut at its bound.
    pub const PATH_TRUNCATED: u32 = 1 << 1;
}

/// Number of syscall specs (`GR_SYSCALL_MAX`).
pub const SYSCALL_MAX: u32 = 512;

/// Indexes of the per-CPU counters map (`enum gr_counter`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// No room in the ring buffer: the event is lost.
    RingbufFull = 0,
}

/// Number of counters (`GR_COUNTER_MAX`).
pub const COUNTER_MAX: u32 = 1;

/// `struct gr_event_header`: the start of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EventHeader {
    /// An [`EventKind`] value.
    pub kind: u16,
    /// [`WIRE_VERSION`] of the program that wrote the record.
    pub version: u16,
    /// The CPU the event happened on.
    pub cpu: u32,
    /// `CLOCK_MONOTONIC` in nanoseconds (the decoder turns it into
    /// `CLOCK_BOOTTIME`, the clock of process start times).
    pub ktime_ns: u64,
}

/// `struct gr_process`: the task an event is about.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Process {
    /// Host thread group id.
    pub pid: u32,
    /// Host thread id.
    pub tid: u32,
    /// Host thread group id of the real parent.
    pub ppid: u32,
    /// Thread group id in the task's own PID namespace.
    pub ns_pid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Effective user id.
    pub euid: u32,
    /// Effective group id.
    pub egid: u32,
    /// Audit login uid, `u32::MAX` when unset.
    pub login_uid: u32,
    /// The controlling terminal's device number in `new_encode_dev` form (as
    /// `/proc/PID/stat`'s `tty_nr`); 0 when there is none.
    pub tty: u32,
    /// Process group id, host PID namespace.
    pub pgid: u32,
    /// Session id, host PID namespace.
    pub sid: u32,
    /// Process group id in the task's own PID namespace; 0 when not visible there.
    pub vpgid: u32,
    /// Padding, zero.
    pub _pad: u32,
    /// cgroup v2 id (the inode of the cgroup directory).
    pub cgroup_id: u64,
    /// Start of the thread group leader, `CLOCK_BOOTTIME` ns.
    pub start_ns: u64,
    /// The task's cgroup id in the memory controller's hierarchy (v1 or v2).
    pub memory_cgroup_id: u64,
    /// Effective capabilities at the event, as a bit mask.
    pub cap_effective: u64,
    /// Command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

/// `struct gr_exec_event`, followed by `filename_len + exe_len + cwd_len +
/// args_len` bytes of data.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecEvent {
    /// Common header.
    pub hdr: EventHeader,
    /// The process after the exec.
    pub proc: Process,
    /// Length of the filename as handed to execve.
    pub filename_len: u16,
    /// Length of the resolved executable path.
    pub exe_len: u16,
    /// Length of the resolved working directory.
    pub cwd_len: u16,
    /// Length of argv, NUL-separated.
    pub args_len: u16,
    /// Number of arguments, even when argv is truncated.
    pub argc: u32,
    /// [`exec_flags`].
    pub flags: u32,
    /// Effective capabilities after the exec.
    pub cap_effective: u64,
    /// The executable's inode number.
    pub exe_ino: u64,
    /// The executable's last modification, ns since the epoch.
    pub exe_mtime_ns: i64,
    /// The executable's last status change, ns since the epoch.
    pub exe_ctime_ns: i64,
    /// With [`exec_flags::KILLED`] or [`exec_flags::DENIED`]: the kill slot
    /// that matched.
    pub kill_slot: u32,
    /// Padding, zero.
    pub _pad: u32,
}

/// `struct gr_fork_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkEvent {
    /// Common header.
    pub hdr: EventHeader,
    /// The process that forked.
    pub parent: Process,
    /// Host thread group id of the child.
    pub child_pid: u32,
    /// The child's id in its own PID namespace.
    pub child_ns_pid: u32,
    /// The child's start, `CLOCK_BOOTTIME` ns.
    pub child_start_ns: u64,
}

/// `struct gr_exit_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitEvent {
    /// Common header.
    pub hdr: EventHeader,
    /// The process that ended.
    pub proc: Process,
    /// The wait(2) status.
    pub status: u32,
    /// Padding, zero.
    pub _pad: u32,
}

/// `struct gr_syscall_spec`: how one syscall is reported.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallSpec {
    /// [`ArgKind`] per argument.
    pub args: [u8; 6],
    /// [`ArgKind::Scalar`], or [`ArgKind::Fd`] for a new descriptor; `None` disables.
    pub ret: u8,
    /// For each path argument, the index of its dirfd argument or [`DIRFD_CWD`].
    pub dirfd_of: [u8; 6],
    /// Report only calls whose argument at this index is one of
    /// `filter_values`; [`NO_FILTER`] reports every call.
    pub filter_arg: u8,
    /// 1: report only calls that carried a socket address.
    pub require_address: u8,
    /// The values `filter_arg` may take.
    pub filter_values: [u32; 2],
}

/// `filter_arg` of a spec that reports every call.
pub const NO_FILTER: u8 = 0xff;

/// `struct gr_part`: the header of one part after a syscall record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Part {
    /// A [`part_kind`] value.
    pub kind: u8,
    /// The argument it describes, or [`PART_RET`].
    pub arg: u8,
    /// Bytes that follow.
    pub len: u16,
}

/// `struct gr_socket_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketInfo {
    /// Address family (AF_*).
    pub family: u16,
    /// Socket type (SOCK_*).
    pub r#type: u16,
    /// Protocol (IPPROTO_*).
    pub protocol: u16,
    /// TCP state.
    pub state: u16,
    /// Local port, host order.
    pub local_port: u16,
    /// Remote port, host order.
    pub remote_port: u16,
    /// Padding.
    pub _pad: u32,
    /// Local address, network order; IPv4 in the first four bytes.
    pub local_addr: [u8; 16],
    /// Remote address, network order; IPv4 in the first four bytes.
    pub remote_addr: [u8; 16],
}

/// `struct gr_syscall_event`, followed by `parts_len` bytes of parts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SyscallEvent {
    /// Common header.
    pub hdr: EventHeader,
    /// The calling process.
    pub proc: Process,
    /// Syscall number.
    pub nr: u32,
    /// [`syscall_flags`].
    pub flags: u32,
    /// Return value.
    pub ret: i64,
    /// Raw arguments.
    pub args: [u64; 6],
    /// Bytes of parts after the record.
    pub parts_len: u16,
    /// Padding.
    pub _pad2: [u16; 3],
}

/// `struct gr_tcp_state_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpStateEvent {
    /// Common header.
    pub hdr: EventHeader,
    /// The socket's cgroup v2 id.
    pub cgroup_id: u64,
    /// The owner's start, `CLOCK_BOOTTIME` ns; 0 when unknown.
    pub owner_start_ns: u64,
    /// The owner's host pid; 0 when unknown.
    pub owner_pid: u32,
    /// The state before (`TCP_*`).
    pub old_state: u16,
    /// The state after.
    pub new_state: u16,
    /// The owner's command name, NUL-padded.
    pub owner_comm: [u8; COMM_LEN],
    /// The socket.
    pub socket: SocketInfo,
}

/// `struct gr_sock_owner`: the value of the socket-owner map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockOwner {
    /// Host pid.
    pub pid: u32,
    /// Padding.
    pub _pad: u32,
    /// Start, `CLOCK_BOOTTIME` ns.
    pub start_ns: u64,
    /// Command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

/// `struct gr_config`: the single entry of the config map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// This thread group's events are never reported.
    pub agent_pid: u32,
    /// 1: only cgroups in the scope map, and below, are reported.
    pub scope_enabled: u32,
    /// Wake the reader once this many bytes wait; 0 wakes it for every record.
    pub wakeup_bytes: u64,
}

/// Number of kill slots, one per rule the kernel enforces (`GR_KILL_SLOTS`).
pub const KILL_SLOTS: usize = 64;
/// Size of an executable-path key of the kill maps, zero-padded
/// (`GR_KILL_PATH_MAX`): a path must be shorter to be matched.
pub const KILL_PATH_MAX: usize = 256;
/// Bound of a kill slot's argument prefix, in bytes (`GR_KILL_ARGS_MAX`).
pub const KILL_ARGS_MAX: usize = 128;

/// `struct gr_kill_args`: a kill slot's argument prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KillArgs {
    /// Bytes of `prefix` that must match; 0 matches any arguments.
    pub len: u32,
    /// The arguments after argv\[0\] joined by spaces, as `proc.args` shows
    /// them; the kernel compares each NUL between arguments as a space.
    pub prefix: [u8; KILL_ARGS_MAX],
}

impl Default for KillArgs {
    fn default() -> Self {
        Self {
            len: 0,
            prefix: [0; KILL_ARGS_MAX],
        }
    }
}

/// A record from the ring buffer, checked for length and kind.
#[derive(Clone, Copy, Debug)]
pub enum Record<'a> {
    /// An exec and its variable data.
    Exec(ExecEvent, &'a [u8]),
    /// A fork.
    Fork(ForkEvent),
    /// An exit.
    Exit(ExitEvent),
    /// A syscall and its parts.
    Syscall(SyscallEvent, &'a [u8]),
    /// A TCP state change.
    TcpState(TcpStateEvent),
}

/// Why a record could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Shorter than its fixed part.
    Short {
        /// The record's kind.
        kind: u16,
        /// Its length.
        len: usize,
    },
    /// A kind this agent does not know.
    UnknownKind(u16),
    /// Written by programs of another wire version.
    Version(u16),
}

impl core::fmt::Display for RecordError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Short { kind, len } => {
                write!(f, "record of kind {kind} is too short ({len} bytes)")
            }
            Self::UnknownKind(kind) => write!(f, "unknown record kind {kind}"),
            Self::Version(v) => write!(f, "record of wire version {v}, expected {WIRE_VERSION}"),
        }
    }
}

impl core::error::Error for RecordError {}

/// Types that are plain old data: every bit pattern is a valid value.
///
/// # Safety
/// Implement only for `#[repr(C)]` structs of integers and integer arrays.
unsafe trait Pod: Copy {}
// SAFETY: all of these are #[repr(C)] structs of integers and integer arrays.
unsafe impl Pod for EventHeader {}
// SAFETY: as above.
unsafe impl Pod for ExecEvent {}
// SAFETY: as above.
unsafe impl Pod for ForkEvent {}
// SAFETY: as above.
unsafe impl Pod for ExitEvent {}
// SAFETY: as above.
unsafe impl Pod for SyscallEvent {}
// SAFETY: as above.
unsafe impl Pod for Part {}
// SAFETY: as above.
unsafe impl Pod for TcpStateEvent {}
// SAFETY: as above.
unsafe impl Pod for SocketInfo {}

/// Reads a plain-old-data wire struct from the front of `bytes`.
pub fn read_part_header(bytes: &[u8]) -> Option<Part> {
    read(bytes)
}

/// Reads a [`SocketInfo`] from the front of `bytes`.
pub fn read_socket_info(bytes: &[u8]) -> Option<SocketInfo> {
    read(bytes)
}

// SAFETY: a #[repr(C)] struct of integers, with explicit padding.
#[cfg(feature = "user")]
unsafe impl aya::Pod for Config {}
// SAFETY: a #[repr(C)] struct of bytes.
#[cfg(feature = "user")]
unsafe impl aya::Pod for SyscallSpec {}
// SAFETY: a #[repr(C)] struct of a u32 and bytes, with no padding.
#[cfg(feature = "user")]
unsafe impl aya::Pod for KillArgs {}

fn read<T: Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: the length is checked above, T is Pod so any bytes are a valid
    // value, and read_unaligned has no alignment requirement.
    Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

impl<'a> Record<'a> {
    /// Parses one ring-buffer record.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RecordError> {
        let header: EventHeader = read(bytes).ok_or(RecordError::Short {
            kind: 0,
            len: bytes.len(),
        })?;
        if header.version != WIRE_VERSION {
            return Err(RecordError::Version(header.version));
        }
        let short = RecordError::Short {
            kind: header.kind,
            len: bytes.len(),
        };
        match EventKind::from_raw(header.kind) {
            Some(EventKind::Exec) => {
                let ev: ExecEvent = read(bytes).ok_or(short)?;
                Ok(Self::Exec(ev, &bytes[size_of::<ExecEvent>()..]))
            }
            Some(EventKind::Fork) => read(bytes).map(Self::Fork).ok_or(short),
            Some(EventKind::Exit) => read(bytes).map(Self::Exit).ok_or(short),
            Some(EventKind::TcpState) => read(bytes).map(Self::TcpState).ok_or(short),
            Some(EventKind::Syscall) => {
                let ev: SyscallEvent = read(bytes).ok_or(short)?;
                Ok(Self::Syscall(ev, &bytes[size_of::<SyscallEvent>()..]))
            }
            None => Err(RecordError::UnknownKind(header.kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T: Pod>(value: &T) -> &[u8] {
        // SAFETY: T is Pod; the slice covers exactly the value.
        unsafe { core::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
    }

    #[test]
    fn a_fork_record_parses_back_to_its_fields() {
        let mut ev = ForkEvent::default();
        ev.hdr.kind = EventKind::Fork as u16;
        ev.hdr.version = WIRE_VERSION;
        ev.child_pid = 42;
        match Record::parse(bytes_of(&ev)) {
            Ok(Record::Fork(parsed)) => assert_eq!(parsed.child_pid, 42),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_short_or_unknown_record_is_an_error_not_a_read_past_its_end() {
        let mut ev = ExitEvent::default();
        ev.hdr.kind = EventKind::Exit as u16;
        ev.hdr.version = WIRE_VERSION;
        let bytes = bytes_of(&ev);
        assert!(matches!(
            Record::parse(&bytes[..bytes.len() - 1]),
            Err(RecordError::Short { kind: 3, .. })
        ));
        assert!(matches!(
            Record::parse(&bytes[..3]),
            Err(RecordError::Short { .. })
        ));
        ev.hdr.kind = 77;
        assert_eq!(
            Record::parse(bytes_of(&ev)).err(),
            Some(RecordError::UnknownKind(77))
        );
        ev.hdr.kind = EventKind::Exit as u16;
        ev.hdr.version = 9;
        assert_eq!(
            Record::parse(bytes_of(&ev)).err(),
            Some(RecordError::Version(9))
        );
    }
}
