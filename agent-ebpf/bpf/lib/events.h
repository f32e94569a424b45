/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* What every hook does around its record: decide whether the current task is
 * reported at all, count what is lost, and submit with batched wake-ups. */
#ifndef GUARDRAILS_EVENTS_H
#define GUARDRAILS_EVENTS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "maps.h"
#include "task.h"

static __always_inline struct gr_config *gr_get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&gr_config, &zero);
}

static __always_inline void gr_count(enum gr_counter counter)
{
	__u32 key = counter;
	__u64 *value = bpf_map_lookup_elem(&gr_counters, &key);
	if (value)
		*value += 1; /* per-CPU: no other writer */
}

/* Whether the current task's events are reported: not the agent's own, and
 * inside the configured cgroup scope when there is one. The scope decision is
 * cached per cgroup (cgroup ids are never reused, the scope is fixed at load),
 * so the walk up the ancestors happens once per cgroup, not per event; and
 * each CPU remembers its last decision in front of that cache. `task` is the
 * current task, from bpf_get_current_task_btf(). */
static __always_inline bool gr_current_in_scope(const struct gr_config *cfg, struct task_struct *task)
{
	__u32 tgid = task->tgid;
	struct gr_scope_last *last;
	__u64 cgroup_id;
	__u8 *cached, verdict = 0;
	__u32 zero = 0;

	if (tgid == cfg->agent_pid)
		return false;
	if (!cfg->scope_enabled)
		return true;
	cgroup_id = gr_cgroup_id(task);
	last = bpf_map_lookup_elem(&gr_scope_last, &zero);
	if (last && cgroup_id && last->in_scope == cgroup_id)
		return true;
	if (last && cgroup_id && last->out_of_scope == cgroup_id)
		return false;
	cached = bpf_map_lookup_elem(&gr_scope_cache, &cgroup_id);
	if (cached) {
		verdict = *cached;
		goto remember;
	}
	for (int level = 0; level < GR_SCOPE_MAX_DEPTH; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		if (id == 0)
			break;
		if (bpf_map_lookup_elem(&gr_scope, &id)) {
			verdict = 1;
			break;
		}
	}
	bpf_map_update_elem(&gr_scope_cache, &cgroup_id, &verdict, BPF_ANY);
remember:
	if (last && verdict)
		last->in_scope = cgroup_id;
	else if (last)
		last->out_of_scope = cgroup_id;
	return verdict;
}

/*
 * Wake the agent once, when the data waiting crosses the threshold; its timer
 * drains whatever stays below it. While the agent is awake it reads until the
 * ring is empty, so records past the threshold need no wake-up of their own:
 * waking it for each (an irq_work per record) would cost microseconds.
 * Looking at the waiting bytes is a helper call whose loads meet the reader's
 * cache line, so each CPU looks only after it submitted a sixteenth of the
 * threshold since its last look: the agent wakes at most that much per CPU
 * later than the threshold says. `size` is the record's; `reserved` says
 * whether it already counts as waiting (bpf_ringbuf_reserve) or not yet
 * (bpf_ringbuf_output).
 */
static __always_inline __u64 gr_wakeup_flags(const struct gr_config *cfg, __u64 size, bool reserved)
{
	struct gr_wakeup_last *last;
	__u64 before, waiting;
	__u32 zero = 0;

	if (cfg->wakeup_bytes == 0)
		return BPF_RB_FORCE_WAKEUP;
	last = bpf_map_lookup_elem(&gr_wakeup_last, &zero);
	if (!last)
		return BPF_RB_NO_WAKEUP;
	last->unchecked += size;
	if (last->unchecked < cfg->wakeup_bytes / 16)
		return BPF_RB_NO_WAKEUP;
	last->unchecked = 0;
	waiting = bpf_ringbuf_query(&gr_events, BPF_RB_AVAIL_DATA);
	if (!reserved)
		waiting += size;
	before = last->waiting;
	last->waiting = waiting;
	if (before < cfg->wakeup_bytes && waiting >= cfg->wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void gr_fill_header(struct gr_event_header *hdr, enum gr_event_kind kind)
{
	hdr->kind = kind;
	hdr->version = GR_WIRE_VERSION;
	hdr->cpu = bpf_get_smp_processor_id();
	/* CLOCK_MONOTONIC rather than the boot time the agent reports: the
	 * boot-time helper reads the same clock one call deeper (8 to 10 ns more
	 * per event here). The agent adds the time spent suspended. */
	hdr->ktime_ns = bpf_ktime_get_ns();
}

/* Reserve a fixed-size record; a failure is counted, never silent. */
static __always_inline void *gr_reserve(__u64 size)
{
	void *record = bpf_ringbuf_reserve(&gr_events, size, 0);
	if (!record)
		gr_count(GR_COUNTER_RINGBUF_FULL);
	return record;
}

#endif /* GUARDRAILS_EVENTS_H */
