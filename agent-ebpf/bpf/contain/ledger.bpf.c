// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * The containment ledger: what is frozen or isolated, by cgroup v2 id. No
 * program reads it; it is declared here so that loading the containment object
 * creates and pins it beside the maps the programs use, and so that it lives in
 * the kernel rather than in a file the agent could lose.
 */
#include "contain/contain.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GR_CONTAINED_MAX);
	__type(key, __u64);
	__type(value, struct gr_contained);
} gr_ledger SEC(".maps");
