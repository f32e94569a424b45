/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The wire contract between the kernel programs and the agent.
 *
 * Every record in the `events` ring buffer starts with `struct gr_event_header`,
 * whose first field is the kind (an `enum gr_event_kind`). The agent decodes the
 * record by that kind.
 *
 * KEEP IN SYNC with `agent-common/src/lib.rs`: it mirrors every type here as a
 * `#[repr(C)]` type, and `agent-ebpf/tests/wire_layout.rs` compares the sizes and
 * offsets of both against the BTF of the compiled object.
 *
 * Only fixed-width types are used so that the layout is the same for the BPF
 * target and for x86_64/aarch64 userspace.
 */
#ifndef GUARDRAILS_WIRE_H
#define GUARDRAILS_WIRE_H

/* Bumped whenever a struct below changes shape or a field its meaning. */
#define GR_WIRE_VERSION 5

/* Bounds of the variable parts of an exec record (bytes, including NULs). */
#define GR_FILENAME_MAX 1024 /* the path handed to execve(2) */
#define GR_PATH_MAX 4096     /* a resolved path (exe, cwd) */
#define GR_ARGS_MAX 4096     /* argv, NUL-separated */
#define GR_COMM_LEN 16

enum gr_event_kind {
	GR_EVENT_EXEC = 1,
	GR_EVENT_FORK = 2,
	GR_EVENT_EXIT = 3,
	GR_EVENT_SYSCALL = 4,
	GR_EVENT_TCP_STATE = 5,
};

/* Flags of an exec record: which variable parts were cut at their bound. */
enum gr_exec_flags {
	GR_EXEC_FILENAME_TRUNCATED = 1 << 0,
	GR_EXEC_EXE_TRUNCATED = 1 << 1,
	GR_EXEC_CWD_TRUNCATED = 1 << 2,
	GR_EXEC_ARGS_TRUNCATED = 1 << 3,
	/* argv could not be read from the new process's memory. */
	GR_EXEC_ARGS_UNREADABLE = 1 << 4,
	/* The executable is a memfd (fileless execution). */
	GR_EXEC_EXE_MEMFD = 1 << 5,
	/* The executable lives on an overlay filesystem's upper layer: it was
	 * written or changed inside the container, not shipped in its image. */
	GR_EXEC_EXE_UPPER_LAYER = 1 << 6,
	/* The kernel sent the new program SIGKILL before it ran (a kill slot
	 * matched); `kill_slot` says which. */
	GR_EXEC_KILLED = 1 << 7,
	/* BPF LSM refused the exec (a deny slot matched in bprm_check_security):
	 * the record describes the program that was refused, the process keeps
	 * running its old one, and `kill_slot` says which slot matched. */
	GR_EXEC_DENIED = 1 << 8,
};

/* Indexes into the per-CPU `gr_counters` array map. */
enum gr_counter {
	/* A record could not be reserved in the ring buffer: the event is lost. */
	GR_COUNTER_RINGBUF_FULL = 0,
	GR_COUNTER_MAX = 1,
};

struct gr_event_header {
	__u16 kind;    /* enum gr_event_kind */
	__u16 version; /* GR_WIRE_VERSION */
	__u32 cpu;
	__u64 ktime_ns; /* CLOCK_MONOTONIC, as bpf_ktime_get_ns() */
};

/* Who did it: the task that the event is about. */
struct gr_process {
	__u32 pid;  /* host thread group id (the "process id") */
	__u32 tid;  /* host thread id */
	__u32 ppid; /* host thread group id of the real parent */
	__u32 ns_pid; /* thread group id in the task's own PID namespace */
	__u32 uid;
	__u32 gid;
	__u32 euid;
	__u32 egid;
	__u32 login_uid; /* audit login uid; 4294967295 when unset */
	/* The controlling terminal's device number, encoded as the kernel's
	 * new_encode_dev() (as /proc/PID/stat's tty_nr); 0 when there is none. */
	__u32 tty;
	__u32 pgid;  /* process group id, host PID namespace */
	__u32 sid;   /* session id, host PID namespace */
	/* The process group id in the task's own PID namespace; 0 when the group
	 * is not visible there (its leader is outside the namespace). */
	__u32 vpgid;
	__u32 _pad;
	__u64 cgroup_id; /* cgroup v2 id, equal to the cgroup directory's inode */
	__u64 start_ns;  /* thread group leader's start, CLOCK_BOOTTIME */
	/* The id of the task's cgroup in the memory controller's hierarchy: on a
	 * hybrid node whose runtime uses only v1 hierarchies, this is where the
	 * container is; where memory is a v2 controller it equals cgroup_id. */
	__u64 memory_cgroup_id;
	/* Effective capabilities at the event (rules ask what a process could do
	 * when it opened a file or loaded a module, not only at its exec). */
	__u64 cap_effective;
	char comm[GR_COMM_LEN];
};

/*
 * execve(2) that succeeded. The record goes on after the struct with, one after
 * the other, the filename, exe, cwd and args; their lengths are given here and
 * none is NUL-terminated except the separators inside args.
 */
struct gr_exec_event {
	struct gr_event_header hdr;
	struct gr_process proc;
	__u16 filename_len;
	__u16 exe_len;
	__u16 cwd_len;
	__u16 args_len;
	__u32 argc;  /* number of arguments, even when args is truncated */
	__u32 flags; /* enum gr_exec_flags */
	__u64 cap_effective; /* effective capabilities after the exec */
	__u64 exe_ino;       /* the executable's inode number */
	__s64 exe_mtime_ns;  /* its last modification, ns since the epoch */
	__s64 exe_ctime_ns;  /* its last status change, ns since the epoch */
	__u32 kill_slot;     /* with GR_EXEC_KILLED or _DENIED: the slot that matched */
	__u32 _pad;
};

/* A new process (not a thread) was created by fork, vfork or clone. */
struct gr_fork_event {
	struct gr_event_header hdr;
	struct gr_process parent;
	__u32 child_pid;    /* host thread group id of the child */
	__u32 child_ns_pid; /* the same, in the child's own PID namespace */
	__u64 child_start_ns;
};

/* The last thread of a process exited. */
struct gr_exit_event {
	struct gr_event_header hdr;
	struct gr_process proc;
	/* The wait(2) status: exit code in bits 8..15, terminating signal in 0..6,
	 * core dump in bit 7. */
	__u32 status;
	__u32 _pad;
};

/* The single entry of the `gr_config` array map, written by the agent before it
 * attaches the programs. */
struct gr_config {
	__u32 agent_pid;     /* this thread group's events are never reported */
	__u32 scope_enabled; /* 1: report only cgroups in `gr_scope`, and below */
	/* Wake the agent only once this many bytes wait in the ring buffer; the
	 * agent drains the rest on its own timer. 0 wakes it for every record. */
	__u64 wakeup_bytes;
};

/* How deep below a scoped cgroup a task may sit and still be in scope. */
#define GR_SCOPE_MAX_DEPTH 16

/*
 * How the syscall sensor treats each argument of a syscall, set per syscall by
 * the agent in the `gr_syscall_specs` map. What the kernel resolves is sent as
 * parts after the record.
 */
enum gr_arg_kind {
	GR_ARG_NONE = 0,     /* not reported */
	GR_ARG_SCALAR = 1,   /* the raw value only */
	GR_ARG_FD = 2,       /* a descriptor: what it refers to now (path or socket) */
	GR_ARG_PATH = 3,     /* a user path; relative ones also get their base dir */
	GR_ARG_STRING = 4,   /* a user string */
	GR_ARG_SOCKADDR = 5, /* a user sockaddr; its length is the next argument */
	GR_ARG_MSGHDR = 6,   /* a user msghdr: its destination address */
	GR_ARG_DIRFD = 7,    /* a directory descriptor that a following path is relative to */
	GR_ARG_OPEN_HOW = 8, /* a user struct open_how: flags, mode, resolve */
	GR_ARG_SOCKADDR_OUT = 9, /* a sockaddr the kernel filled; the next argument
				  * points at its length */
	GR_ARG_CAP_DATA = 10, /* capset's user data: 2 x {effective, permitted, inheritable} */
};

struct gr_syscall_spec {
	__u8 args[6]; /* enum gr_arg_kind per argument */
	__u8 ret;     /* GR_ARG_SCALAR, or GR_ARG_FD when it returns a new descriptor */
	/* For each GR_ARG_PATH argument, the index of its GR_ARG_DIRFD argument,
	 * or 0xff for the working directory. */
	__u8 dirfd_of[6];
	/* Report only calls whose argument `filter_arg` is one of
	 * `filter_values` (fcntl's F_DUPFD commands); 0xff reports every call. */
	__u8 filter_arg;
	/* 1: report only calls that carried a socket address (sendto and
	 * friends on unconnected sockets, not every send() of a stream). */
	__u8 require_address;
	__u32 filter_values[2];
};

/* Parts that follow a syscall record, each a struct gr_part and its bytes. */
enum gr_part_kind {
	GR_PART_PATH = 1,     /* the user path as given */
	GR_PART_BASE = 2,     /* the absolute directory a relative path starts from */
	GR_PART_FD_PATH = 3,  /* the absolute path a descriptor refers to */
	GR_PART_SOCKET = 4,   /* struct gr_socket_info of a descriptor */
	GR_PART_STRING = 5,   /* a user string */
	GR_PART_SOCKADDR = 6, /* raw sockaddr bytes */
	GR_PART_FD_OTHER = 7, /* a descriptor that is neither a path nor an inet socket: u32 mode */
	GR_PART_OPEN_HOW = 8, /* struct open_how: u64 flags, mode, resolve */
	GR_PART_CAP_DATA = 9, /* 2 x struct __user_cap_data_struct (u32 x 3) */
};

/* Which argument a part describes; GR_PART_RET for the return value. */
#define GR_PART_RET 0xff

struct gr_part {
	__u8 kind; /* enum gr_part_kind */
	__u8 arg;  /* argument index, or GR_PART_RET */
	__u16 len; /* bytes that follow */
};

/* Parts flags of a syscall record. */
enum gr_syscall_flags {
	GR_SYSCALL_PARTS_TRUNCATED = 1 << 0, /* not every part fit */
	GR_SYSCALL_PATH_TRUNCATED = 1 << 1,  /* a path was cut at its bound */
};

/* A socket as the kernel holds it, ports in host order, addresses in network
 * order (IPv4 in the first 4 bytes). */
struct gr_socket_info {
	__u16 family;
	__u16 type;
	__u16 protocol;
	__u16 state;
	__u16 local_port;
	__u16 remote_port;
	__u32 _pad;
	__u8 local_addr[16];
	__u8 remote_addr[16];
};

/* A syscall that the agent asked for, reported when it returns. */
struct gr_syscall_event {
	struct gr_event_header hdr;
	struct gr_process proc;
	__u32 nr;    /* syscall number on this architecture */
	__u32 flags; /* enum gr_syscall_flags */
	__s64 ret;
	__u64 args[6];
	__u16 parts_len; /* bytes of parts after the record */
	__u16 _pad2[3];
};

/* A TCP socket changed state. Many changes happen in softirq context, where
 * the current task is not the socket's, so the owner is the process that last
 * created, connected, accepted or used the socket through a reported syscall. */
struct gr_tcp_state_event {
	struct gr_event_header hdr;
	__u64 cgroup_id;      /* the socket's cgroup v2 id */
	__u64 owner_start_ns; /* the owner's start, CLOCK_BOOTTIME; 0 when unknown */
	__u32 owner_pid;      /* the owner's host pid; 0 when unknown */
	__u16 old_state;
	__u16 new_state;
	char owner_comm[GR_COMM_LEN];
	struct gr_socket_info socket;
};

/* The process a socket belongs to, by socket address. */
struct gr_sock_owner {
	__u32 pid;
	__u32 _pad;
	__u64 start_ns;
	char comm[GR_COMM_LEN];
};

/*
 * In-kernel kill. Up to GR_KILL_SLOTS rules simple enough for the kernel (a
 * program named by command name or executable path, optionally an argument
 * prefix) each own a slot. The maps give, as bit masks of slots, the slots
 * of each executable path (`gr_kill_exes`, keyed by the path zero-padded to
 * GR_KILL_PATH_MAX bytes), of each command name (`gr_kill_names`, keyed by
 * the comm zero-padded to GR_COMM_LEN) and those armed in each cgroup
 * (`gr_kill_cgroups`, by cgroup v2 id); `gr_kill_args` holds each slot's
 * argument prefix. `gr_kill_deny` (one entry) is the mask of deny slots: the
 * BPF LSM hook refuses their execs, and the exec hook leaves them alone. The
 * agent sets it only while that hook is attached, and never for a slot with an
 * argument prefix (argv is not readable when the hook runs).
 */
#define GR_KILL_SLOTS 64
#define GR_KILL_PATH_MAX 256 /* a longer executable path is never matched */
#define GR_KILL_ARGS_MAX 128

/* A slot's argument prefix: the arguments after argv[0] as they are shown
 * joined by spaces; each NUL between two arguments compares as a space. */
struct gr_kill_args {
	__u32 len; /* bytes of prefix to compare; 0 matches any arguments */
	char prefix[GR_KILL_ARGS_MAX];
};

/* Room for the parts of one syscall record. */
#define GR_SYSCALL_DATA_MAX 16384
/* The largest syscall number the sensor looks at, plus one. */
#define GR_SYSCALL_MAX 512
/* At most this many bytes of a sockaddr are copied. */
#define GR_SOCKADDR_MAX 128
/* At most this many bytes of a user string or path are copied. */
#define GR_STRING_MAX 4096

#define GR_EXEC_DATA_MAX (GR_FILENAME_MAX + 2 * GR_PATH_MAX + GR_ARGS_MAX)

#endif /* GUARDRAILS_WIRE_H */
