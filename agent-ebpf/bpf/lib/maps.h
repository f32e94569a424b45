/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Maps shared by every hook. They are defined once, in `maps.bpf.c`; each hook's
 * object declares them `extern` and the static linker joins them, so that all
 * hooks write to one ring buffer and events keep their order.
 * Map names appear in the agent as constants in `agent/src/bpf/hooks.rs`.
 */
#ifndef GUARDRAILS_MAPS_H
#define GUARDRAILS_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "wire.h"

struct gr_events_map {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	/* The agent sets the real size from its config before loading. */
	__uint(max_entries, 1 << 22);
};

struct gr_counters_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GR_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
};

struct gr_config_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gr_config);
};

struct gr_scope_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64); /* cgroup v2 id */
	__type(value, __u8);
};

/* Scope decisions by cgroup v2 id: 1 in scope, 0 not. */
struct gr_scope_cache_map {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
};

/* Each CPU's last cgroup found in scope and last found out of it: a task
 * making many syscalls meets its cgroup again on the next one, which then
 * costs an array load, not a hash lookup. One 8-byte store each, so a
 * program that interrupts another on this CPU cannot pair an id with the
 * other's verdict. 0: none yet. */
struct gr_scope_last {
	__u64 in_scope;
	__u64 out_of_scope;
};

struct gr_scope_last_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gr_scope_last);
};

/* Each CPU's look at the ring buffer for the wake-up decision (see
 * gr_wakeup_flags): the bytes it submitted since it last looked, and the
 * bytes it found waiting then. */
struct gr_wakeup_last {
	__u64 unchecked;
	__u64 waiting;
};

struct gr_wakeup_last_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gr_wakeup_last);
};

/* Per-CPU room to build a record bigger than the BPF stack allows. */
struct gr_exec_scratch {
	/* ev and data are sent as one record: char data needs no padding after
	 * ev, so it starts right at ev.data. */
	struct gr_exec_event ev;
	char data[GR_EXEC_DATA_MAX];
	/* A path is written backwards from the middle of this buffer; the second
	 * half keeps every masked write in bounds for the verifier. */
	char path[2 * GR_PATH_MAX];
	/* The executable path as a key of gr_kill_exes. */
	char kill_key[GR_KILL_PATH_MAX];
	/* The first bytes of the arguments after argv[0]. */
	char kill_args[GR_KILL_ARGS_MAX];
};

struct gr_scratch_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gr_exec_scratch);
};

/* Which syscalls are reported and how, indexed by syscall number; an entry
 * whose `ret` is GR_ARG_NONE is not reported. */
struct gr_syscall_specs_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GR_SYSCALL_MAX);
	__type(key, __u32);
	__type(value, struct gr_syscall_spec);
};

struct gr_syscall_scratch {
	/* ev and data are sent as one record, as in gr_exec_scratch. */
	struct gr_syscall_event ev;
	char data[GR_SYSCALL_DATA_MAX];
	char path[2 * GR_PATH_MAX];
};

struct gr_syscall_scratch_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gr_syscall_scratch);
};

/* Where a task's saved user registers lie from the base of its kernel stack,
 * the same for every task of a kernel (task_pt_regs() is that base plus a
 * constant): learned by the per-syscall program from its first
 * bpf_task_pt_regs() call, so that later calls read the registers without a
 * helper. 0: not learned yet. */
struct gr_regs_offset_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
};

/* Which process owns a socket, for state changes seen outside its context.
 * LRU: a socket closed without a final state change ages out. */
struct gr_sock_owners_map {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* struct sock address */
	__type(value, struct gr_sock_owner);
};

/* In-kernel kill (see wire.h): bit masks of kill slots. */
struct gr_kill_cgroups_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* cgroup v2 id; absent: nothing is killed there */
	__type(value, __u64);
};

struct gr_kill_exes_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, char[GR_KILL_PATH_MAX]);
	__type(value, __u64);
};

struct gr_kill_names_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, char[GR_COMM_LEN]);
	__type(value, __u64);
};

struct gr_kill_args_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GR_KILL_SLOTS);
	__type(key, __u32);
	__type(value, struct gr_kill_args);
};

/* The deny slots (see wire.h), as one bit mask. */
struct gr_kill_deny_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
};

/* maps.bpf.c defines GR_DEFINE_MAPS to turn these declarations into the
 * definitions. */
#ifdef GR_DEFINE_MAPS
#define GR_MAP
#else
#define GR_MAP extern
#endif

/* Every record type, so that they all stand in the object's BTF, where
 * agent-ebpf/tests/wire_layout.rs checks them. Never read or written. */
struct gr_wire_types {
	struct gr_exec_event exec;
	struct gr_fork_event fork;
	struct gr_exit_event exit;
	struct gr_syscall_event syscall;
	struct gr_syscall_spec spec;
	struct gr_part part;
	struct gr_socket_info socket;
	struct gr_tcp_state_event tcp_state;
	struct gr_kill_args kill_args;
};

struct gr_wire_types_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gr_wire_types);
};

GR_MAP struct gr_wire_types_map gr_wire_types SEC(".maps");
GR_MAP struct gr_events_map gr_events SEC(".maps");
GR_MAP struct gr_counters_map gr_counters SEC(".maps");
GR_MAP struct gr_config_map gr_config SEC(".maps");
GR_MAP struct gr_scope_map gr_scope SEC(".maps");
GR_MAP struct gr_scope_cache_map gr_scope_cache SEC(".maps");
GR_MAP struct gr_scope_last_map gr_scope_last SEC(".maps");
GR_MAP struct gr_wakeup_last_map gr_wakeup_last SEC(".maps");
GR_MAP struct gr_scratch_map gr_scratch SEC(".maps");
GR_MAP struct gr_syscall_specs_map gr_syscall_specs SEC(".maps");
GR_MAP struct gr_syscall_scratch_map gr_syscall_scratch SEC(".maps");
GR_MAP struct gr_regs_offset_map gr_regs_offset SEC(".maps");
GR_MAP struct gr_sock_owners_map gr_sock_owners SEC(".maps");
GR_MAP struct gr_kill_cgroups_map gr_kill_cgroups SEC(".maps");
GR_MAP struct gr_kill_exes_map gr_kill_exes SEC(".maps");
GR_MAP struct gr_kill_names_map gr_kill_names SEC(".maps");
GR_MAP struct gr_kill_args_map gr_kill_args SEC(".maps");
GR_MAP struct gr_kill_deny_map gr_kill_deny SEC(".maps");

#endif /* GUARDRAILS_MAPS_H */
