// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * The end of a process. sched_process_exit fires for every exiting thread,
 * after do_exit() has dropped the thread from signal->live, so the thread that
 * finds live at zero is the last one and reports the process. Its exit_code is
 * already the wait(2) status of the whole group.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "lib/events.h"
#include "lib/task.h"

SEC("tp_btf/sched_process_exit")
int BPF_PROG(gr_exit, struct task_struct *task)
{
	struct gr_config *cfg = gr_get_config();
	struct gr_exit_event *ev;

	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	/* The exiting task is the current one. */
	if (!cfg || !gr_current_in_scope(cfg, task))
		return 0;
	ev = gr_reserve(sizeof(*ev));
	if (!ev)
		return 0;
	gr_fill_header(&ev->hdr, GR_EVENT_EXIT);
	gr_fill_current(&ev->proc, task);
	ev->status = BPF_CORE_READ(task, exit_code);
	ev->_pad = 0;
	bpf_ringbuf_submit(ev, gr_wakeup_flags(cfg, sizeof(*ev), true));
	return 0;
}
