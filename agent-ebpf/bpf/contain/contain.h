/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The containment contract: the values of the containment maps, which are
 * pinned and so outlive both the agent and the programs that use them.
 *
 * KEEP IN SYNC with `agent-common/src/contain.rs`: it mirrors every type here
 * as a `#[repr(C)]` type, and `agent-ebpf/tests/wire_layout.rs` compares the
 * sizes and offsets of both against the BTF of the compiled object. A pinned
 * map of another shape is refused by the agent, never reused.
 */
#ifndef GUARDRAILS_CONTAIN_H
#define GUARDRAILS_CONTAIN_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* Remote endpoints an isolated cgroup may still talk to. */
#define GR_ALLOW_MAX 32
/* How many cgroups can be contained at once. */
#define GR_CONTAINED_MAX 1024
/* How deep below the root an isolated cgroup's sockets are looked for. */
#define GR_CONTAIN_MAX_DEPTH 32

/* Bounds of the ledger's strings, NUL-padded (a full one has no NUL). */
#define GR_RULE_MAX 64
#define GR_CONTAINER_ID_MAX 64
#define GR_CGROUP_PATH_MAX 512

enum gr_allow_family {
	GR_ALLOW_ANY_ADDR = 0,
	GR_ALLOW_IPV4 = 4,
	GR_ALLOW_IPV6 = 6,
};

/*
 * One allow-list entry. Slots are filled from the first; the first slot with
 * `used == 0` ends the list.
 */
struct gr_allow_rule {
	__u8 used;
	__u8 proto;	 /* IPPROTO_TCP, IPPROTO_UDP, or 0 for both */
	__u8 family;	 /* enum gr_allow_family */
	__u8 prefix_len; /* bits of addr that must match */
	__u16 port;	 /* host byte order */
	__u16 _pad;
	__u32 addr[4]; /* network byte order; IPv4 in addr[0] */
};

/* Packets dropped for one isolated cgroup (and the cgroups below it). */
struct gr_drops {
	__u64 ingress;
	__u64 egress;
};

enum gr_contained_flags {
	GR_CONTAINED_FROZEN = 1 << 0,
	GR_CONTAINED_ISOLATED = 1 << 1,
};

/* When and why one action was taken. */
struct gr_contain_action {
	__u64 since_unix_ns;
	char rule[GR_RULE_MAX];
};

/* What is contained in one cgroup: the ledger's value, keyed by cgroup v2 id. */
struct gr_contained {
	__u32 flags; /* enum gr_contained_flags */
	__u32 _pad;
	struct gr_contain_action frozen;
	struct gr_contain_action isolated;
	char container_id[GR_CONTAINER_ID_MAX];
	char cgroup_path[GR_CGROUP_PATH_MAX]; /* absolute cgroup v2 directory */
};

#endif /* GUARDRAILS_CONTAIN_H */
