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

/* The thread group id of `task` in its own PID namespace. */
static __always_inline __u32 gr_task_ns_tgid(struct task_struct *task)
{
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	return gr_pid_ns_nr(BPF_CORE_READ(leader, thread_pid));
}

/* The id of `task`'s cgroup in the memory controller's hierarchy, v1 or v2. */
static __always_inline __u64 gr_memory_cgroup_id(struct task_struct *task)
{
	int index = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	struct css_set *cset = BPF_CORE_READ(task, cgroups);
	struct cgroup_subsys_state *css = NULL;

	if (index < 0 || index >= CGROUP_SUBSYS_COUNT)
		return 0;
	bpf_core_read(&css, sizeof(css), &cset->subsys[index & 15]);
	if (!css)
		return 0;
	return BPF_CORE_READ(css, cgroup, kn, id);
}

/* Every hook reports about the current task: fork about the parent, exec about
 * the new program, exit about the exiting task. */
static __always_inline void gr_fill_current(struct gr_process *p)
{
	struct task_struct *task = bpf_get_current_task_btf();
	const struct cred *cred = BPF_CORE_READ(task, real_cred);

	p->pid = BPF_CORE_READ(task, tgid);
	p->tid = BPF_CORE_READ(task, pid);
	p->ppid = BPF_CORE_READ(task, real_parent, tgid);
	p->ns_pid = gr_task_ns_tgid(task);
	p->uid = BPF_CORE_READ(cred, uid.val);
	p->gid = BPF_CORE_READ(cred, gid.val);
	p->euid = BPF_CORE_READ(cred, euid.val);
	p->egid = BPF_CORE_READ(cred, egid.val);
	if (bpf_core_field_exists(task->loginuid))
		p->login_uid = BPF_CORE_READ(task, loginuid.val);
	else
		p->login_uid = (__u32)-1;
	p->_pad = 0;
	p->cgroup_id = bpf_get_current_cgroup_id();
	p->memory_cgroup_id = gr_memory_cgroup_id(task);
	p->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	BPF_CORE_READ_STR_INTO(&p->comm, task, comm);
}

#endif /* GUARDRAILS_TASK_H */
