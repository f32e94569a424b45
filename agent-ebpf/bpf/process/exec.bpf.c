// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * execve(2) and execveat(2) that succeeded. sched_process_exec fires after the
 * new program is mapped and before it runs, in the context of the new program,
 * so its argv is readable from current's memory, and a SIGKILL sent here
 * lands before the new program's first instruction (process/kill.h).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "lib/events.h"
#include "lib/path.h"
#include "lib/task.h"
#include "exe.h"
#include "kill.h"

SEC("tp_btf/sched_process_exec")
int BPF_PROG(gr_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	struct gr_config *cfg = gr_get_config();
	struct gr_exec_scratch *s;
	struct gr_exec_event *ev;
	struct fs_struct *fs;
	struct file *file;
	struct mm_struct *mm;
	unsigned long arg_start, arg_end, args_len;
	__u32 zero = 0, off, len, exe_off, args_off;
	__u32 flags = 0;
	__u64 cgroup_id, *armed, kill_mask = 0;
	bool report;
	char *data;
	long n;

	if (!cfg)
		return 0;
	/* The armed cgroups come first: an exec in none of them, the common
	 * case, pays a single hash lookup for the kill. A kill is reported even
	 * outside the scope: it must never go unseen. */
	cgroup_id = gr_cgroup_id(task);
	armed = bpf_map_lookup_elem(&gr_kill_cgroups, &cgroup_id);
	/* Deny slots are the BPF LSM hook's: it refused their execs before
	 * this point, on a superset of what would match here. */
	if (armed)
		kill_mask = *armed & ~gr_deny_slots();
	report = gr_current_in_scope(cfg, task);
	if (!report && !kill_mask)
		return 0;
	s = bpf_map_lookup_elem(&gr_scratch, &zero);
	if (!s)
		return 0;
	ev = &s->ev;
	data = s->data;

	gr_fill_header(&ev->hdr, GR_EVENT_EXEC);
	gr_fill_current(&ev->proc, task);
	ev->argc = bprm->argc;

	/* The filename as handed to execve. One byte more than the bound is read
	 * to tell a cut name from one that fits exactly; the next part overwrites
	 * that byte. */
	n = bpf_probe_read_kernel_str(data, GR_FILENAME_MAX + 1, bprm->filename);
	len = n > 0 ? n - 1 : 0;
	if (len > GR_FILENAME_MAX) {
		len = GR_FILENAME_MAX;
		flags |= GR_EXEC_FILENAME_TRUNCATED;
	}
	ev->filename_len = len;
	off = len;
	exe_off = off;

	fs = task->fs;
	file = bprm->file;
	flags |= exe_origin(file);
	exe_identity(ev, file);
	ev->cap_effective = task->real_cred->cap_effective.val;
	len = append_path(s, off, &file->f_path, &fs->root, &flags, GR_EXEC_EXE_TRUNCATED);
	ev->exe_len = len;
	off += len;

	len = append_path(s, off, &fs->pwd, &fs->root, &flags, GR_EXEC_CWD_TRUNCATED);
	ev->cwd_len = len;
	off += len;

	/* The task and its binprm are BTF pointers: plain loads, no helper. */
	mm = task->mm;
	arg_start = mm->arg_start;
	arg_end = mm->arg_end;
	args_len = arg_end > arg_start ? arg_end - arg_start : 0;
	if (args_len > GR_ARGS_MAX) {
		args_len = GR_ARGS_MAX;
		flags |= GR_EXEC_ARGS_TRUNCATED;
	}
	if (off > GR_FILENAME_MAX + 2 * GR_PATH_MAX)
		off = GR_FILENAME_MAX + 2 * GR_PATH_MAX;
	args_off = off;
	if (args_len && bpf_probe_read_user(&data[off], args_len & (GR_ARGS_MAX * 2 - 1),
					    (void *)arg_start)) {
		args_len = 0;
		flags |= GR_EXEC_ARGS_UNREADABLE;
	}
	ev->args_len = args_len;
	off += args_len;
	ev->flags = flags;
	ev->kill_slot = 0;
	ev->_pad = 0;

	/* Never the agent itself, whatever a rule says. */
	if (kill_mask && ev->proc.pid != cfg->agent_pid) {
		__s32 slot = gr_kill_slot(s, kill_mask, exe_off, args_off, args_len);

		if (slot >= 0 && !bpf_send_signal(GR_SIGKILL)) {
			ev->flags |= GR_EXEC_KILLED;
			ev->kill_slot = slot;
		}
	}
	if (!report && !(ev->flags & GR_EXEC_KILLED))
		return 0;

	if (off > GR_EXEC_DATA_MAX)
		off = GR_EXEC_DATA_MAX;
	if (bpf_ringbuf_output(&gr_events, ev, sizeof(*ev) + off,
			       gr_wakeup_flags(cfg, sizeof(*ev) + off, false)))
		gr_count(GR_COUNTER_RINGBUF_FULL);
	return 0;
}
