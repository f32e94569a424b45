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

/* Bumped whenever a struct below changes shape. */
#define GR_WIRE_VERSION 1

/* Bounds of the variable parts of an exec record (bytes, including NULs). */
#define GR_FILENAME_MAX 1024 /* the path handed to execve(2) */
#define GR_PATH_MAX 4096     /* a resolved path (exe, cwd) */
#define GR_ARGS_MAX 4096     /* argv, NUL-separated */
#define GR_COMM_LEN 16

enum gr_event_kind {
	GR_EVENT_EXEC = 1,
	GR_EVENT_FORK = 2,
	GR_EVENT_EXIT = 3,
};

/* Flags of an exec record: which variable parts were cut at their bound. */
enum gr_exec_flags {
	GR_EXEC_FILENAME_TRUNCATED = 1 << 0,
	GR_EXEC_EXE_TRUNCATED = 1 << 1,
	GR_EXEC_CWD_TRUNCATED = 1 << 2,
	GR_EXEC_ARGS_TRUNCATED = 1 << 3,
	/* argv could not be read from the new process's memory. */
	GR_EXEC_ARGS_UNREADABLE = 1 << 4,
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
	__u64 ktime_ns; /* CLOCK_BOOTTIME, as bpf_ktime_get_boot_ns() */
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
	__u32 _pad;
	__u64 cgroup_id; /* cgroup v2 id, equal to the cgroup directory's inode */
	__u64 start_ns;  /* thread group leader's start, CLOCK_BOOTTIME */
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

#define GR_EXEC_DATA_MAX (GR_FILENAME_MAX + 2 * GR_PATH_MAX + GR_ARGS_MAX)

#endif /* GUARDRAILS_WIRE_H */
