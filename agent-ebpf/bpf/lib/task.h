/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* Reading a task's identity with CO-RE. */
#ifndef GUARDRAILS_TASK_H
#define GUARDRAILS_TASK_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "wire.h"

/*
 * `pid`'s number and namespace at `level`. Level 0, the host's namespace and
 * the one most tasks live in, is read with plain loads; a deeper level is an
 * index the verifier cannot bound, so it is read with the helper. The zero
 * index is hidden from the compiler: a constant index into this flexible
 * array becomes a relocation that the loader rejects, while the verifier
 * still sees a constant and checks the load. `pid` is a BTF pointer (read
 * through a task from the hook's arguments or bpf_get_current_task_btf()).
 */
static __always_inline struct upid gr_upid_at(struct pid *pid, unsigned int level)
{
	struct upid upid = {};
	unsigned int zero = 0;

	if (!pid)
		return upid;
	if (level == 0) {
		barrier_var(zero);
		upid.nr = pid->numbers[zero & 31].nr;
		upid.ns = pid->numbers[zero & 31].ns;
	} else {
		bpf_core_read(&upid, sizeof(upid), &pid->numbers[level & 31]);
	}
	return upid;
}

/* The number of a struct pid as seen from its innermost PID namespace. */
static __always_inline __u32 gr_pid_ns_nr(struct pid *pid)
{
	if (!pid)
		return 0;
	return gr_upid_at(pid, pid->level).nr;
}

/* The number of `pid` in the host's (the initial) PID namespace. */
static __always_inline __u32 gr_pid_host_nr(struct pid *pid)
{
	return gr_upid_at(pid, 0).nr;
}

/* The number of `pid` in the PID namespace `ns` at `level`, as the kernel's
 * pid_nr_ns(); 0 when the pid is not visible there. */
static __always_inline __u32 gr_pid_nr_in(struct pid *pid, unsigned int level, struct pid_namespace *ns)
{
	struct upid upid;

	if (!pid || pid->level < level)
		return 0;
	upid = gr_upid_at(pid, level);
	return upid.ns == ns ? upid.nr : 0;
}

/*
 * The controlling terminal as /proc/PID/stat's tty_nr: the device number
 * MKDEV(driver major, driver minor_start) + index, in new_encode_dev()'s
 * 32-bit encoding (minor's low byte, major, minor's high bits); 0 for none.
 */
static __always_inline __u32 gr_tty_nr(struct signal_struct *signal)
{
	struct tty_struct *tty = signal->tty;
	struct tty_driver *driver;
	__u32 dev, major, minor;

	if (!tty)
		return 0;
	driver = tty->driver;
	if (!driver)
		return 0;
	dev = (((__u32)driver->major << 20) | (__u32)driver->minor_start) + (__u32)tty->index;
	major = dev >> 20;
	minor = dev & ((1U << 20) - 1);
	return (minor & 0xff) | (major << 8) | ((minor & ~0xffU) << 12);
}

/* The id of `task`'s cgroup v2, as bpf_get_current_cgroup_id() gives it for
 * the current task, but with plain loads: a helper call costs more than the
 * four loads, most of all where every return goes through a
 * speculation-safe thunk. */
static __always_inline __u64 gr_cgroup_id(struct task_struct *task)
{
	return task->cgroups->dfl_cgrp->kn->id;
}

/* The id of `task`'s cgroup in the memory controller's hierarchy, v1 or v2. */
static __always_inline __u64 gr_memory_cgroup_id(struct task_struct *task)
{
	/* A constant once relocated, so the array access has a fixed offset. */
	int index = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	struct cgroup_subsys_state *css;

	if (index < 0 || index >= CGROUP_SUBSYS_COUNT)
		return 0;
	css = task->cgroups->subsys[index];
	if (!css)
		return 0;
	return css->cgroup->kn->id;
}

/*
 * Every hook reports about the current task: fork about the parent, exec about
 * the new program, exit about the exiting task.
 *
 * `task` is the current task, from bpf_get_current_task_btf(), so its fields
 * are read with plain loads through BTF pointers (CO-RE relocated) instead of
 * one helper call per field: this runs for every reported event.
 */
static __always_inline void gr_fill_current(struct gr_process *p, struct task_struct *task)
{
	struct task_struct *leader = task->group_leader;
	const struct cred *cred = task->real_cred;
	struct signal_struct *signal = task->signal;
	struct pid *thread_pid = leader->thread_pid;
	struct pid *pgrp = signal->pids[PIDTYPE_PGID];
	struct pid *session = signal->pids[PIDTYPE_SID];
	struct upid own;
	unsigned int level = 0;

	p->pid = task->tgid;
	p->tid = task->pid;
	p->ppid = task->real_parent->tgid;
	/* The task's own PID namespace is the innermost one of its pid. */
	if (thread_pid)
		level = thread_pid->level;
	own = gr_upid_at(thread_pid, level);
	p->ns_pid = own.nr;
	p->pgid = gr_pid_host_nr(pgrp);
	p->sid = gr_pid_host_nr(session);
	p->vpgid = gr_pid_nr_in(pgrp, level, own.ns);
	p->tty = gr_tty_nr(signal);
	p->uid = cred->uid.val;
	p->gid = cred->gid.val;
	p->euid = cred->euid.val;
	p->egid = cred->egid.val;
	p->cap_effective = cred->cap_effective.val;
	if (bpf_core_field_exists(task->loginuid))
		p->login_uid = task->loginuid.val;
	else
		p->login_uid = (__u32)-1;
	p->_pad = 0;
	p->cgroup_id = gr_cgroup_id(task);
	p->memory_cgroup_id = gr_memory_cgroup_id(task);
	p->start_ns = leader->start_boottime;
	/* Two loads rather than the helper, which copies byte by byte and then
	 * clears the rest; the kernel keeps comm NUL-terminated in its 16 bytes. */
	_Static_assert(sizeof(task->comm) == GR_COMM_LEN, "comm is 16 bytes");
	__builtin_memcpy(p->comm, task->comm, GR_COMM_LEN);
}

#endif /* GUARDRAILS_TASK_H */
