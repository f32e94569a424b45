// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * fork(2), vfork(2) and clone(2)/clone3(2) that create a new process. New
 * threads of an existing process are not reported: they share its identity.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "lib/events.h"
#include "lib/task.h"

SEC("tp_btf/sched_process_fork")
int BPF_PROG(gr_fork, struct task_struct *parent, struct task_struct *child)
{
	struct gr_config *cfg = gr_get_config();
	struct gr_fork_event *ev;

	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	/* The parent is the current task. */
	if (!cfg || !gr_current_in_scope(cfg, parent))
		return 0;
	ev = gr_reserve(sizeof(*ev));
	if (!ev)
		return 0;
	gr_fill_header(&ev->hdr, GR_EVENT_FORK);
	gr_fill_current(&ev->parent, parent);
	ev->child_pid = BPF_CORE_READ(child, tgid);
	ev->child_ns_pid = gr_pid_ns_nr(child->thread_pid);
	ev->child_start_ns = BPF_CORE_READ(child, start_boottime);
	bpf_ringbuf_submit(ev, gr_wakeup_flags(cfg, sizeof(*ev), true));
	return 0;
}
