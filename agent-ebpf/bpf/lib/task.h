/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* Reading a task's identity with CO-RE. */
#ifndef GUARDRAILS_TASK_H
#define GUARDRAILS_TASK_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "wire.h"

/* The number of a struct pid as seen from its innermost PID namespace. */
static __always_inline __u32 gr_pid_ns_nr(struct pid *pid)
{
	struct upid upid = {};
	unsigned int level;

	if (!pid)
		return 0;
	level = BPF_CORE_READ(pid, level);
	bpf_core_read(&upid, sizeof(upid), &pid->numbers[level & 31]);
	return upid.nr;
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
 * The task comes from bpf_get_current_task_btf(), so its fields are read with
 * plain loads through BTF pointers (CO-RE relocated) instead of one helper
 * call per field: this runs for every reported event.
 */
static __always_inline void gr_fill_current(struct gr_process *p)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct task_struct *leader = task->group_leader;
	const struct cred *cred = task->real_cred;

	p->pid = task->tgid;
	p->tid = task->pid;
	p->ppid = task->real_parent->tgid;
	p->ns_pid = gr_pid_ns_nr(leader->thread_pid);
	p->uid = cred->uid.val;
	p->gid = cred->gid.val;
	p->euid = cred->euid.val;
	p->egid = cred->egid.val;
	if (bpf_core_field_exists(task->loginuid))
		p->login_uid = task->loginuid.val;
	else
		p->login_uid = (__u32)-1;
	p->_pad = 0;
	p->cgroup_id = bpf_get_current_cgroup_id();
	p->memory_cgroup_id = gr_memory_cgroup_id(task);
	p->start_ns = leader->start_boottime;
	bpf_get_current_comm(p->comm, sizeof(p->comm));
}

#endif /* GUARDRAILS_TASK_H */
