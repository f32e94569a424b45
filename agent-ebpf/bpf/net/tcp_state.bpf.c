// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * TCP state changes: connects that complete, listens, closes. Many of them
 * happen in softirq context on behalf of no particular process, so the scope
 * is decided by the socket's own cgroup, and the owner is the process that
 * last used the socket through a reported syscall (or that made this change,
 * when it runs in its context: connect, listen).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "lib/events.h"
#include "lib/fd.h"

#define GR_IPPROTO_TCP 6
#define GR_TCP_SYN_SENT 2
#define GR_TCP_CLOSE 7
#define GR_TCP_LISTEN 10

/* Whether `cgrp` or one of its ancestors is in the scope map. */
static __always_inline bool gr_cgroup_in_scope(const struct gr_config *cfg, struct cgroup *cgrp)
{
	int level = BPF_CORE_READ(cgrp, level);

	if (!cfg->scope_enabled)
		return true;
	for (int i = 0; i < GR_SCOPE_MAX_DEPTH; i++) {
		struct cgroup *ancestor = NULL;
		__u64 id;

		if (i > level)
			break;
		bpf_core_read(&ancestor, sizeof(ancestor), &cgrp->ancestors[i]);
		id = BPF_CORE_READ(ancestor, kn, id);
		if (bpf_map_lookup_elem(&gr_scope, &id))
			return true;
	}
	return false;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(gr_tcp_state, const struct sock *sk, int oldstate, int newstate)
{
	struct gr_config *cfg = gr_get_config();
	struct gr_sock_owner *owner, self = {};
	struct gr_tcp_state_event *ev;
	struct cgroup *cgrp;
	__u64 key = (__u64)sk;

	if (!cfg || BPF_CORE_READ(sk, sk_protocol) != GR_IPPROTO_TCP)
		return 0;
	/* connect() and listen() make these changes in the owner's context. */
	if (newstate == GR_TCP_SYN_SENT || newstate == GR_TCP_LISTEN) {
		struct task_struct *task = bpf_get_current_task_btf();
		self.pid = bpf_get_current_pid_tgid() >> 32;
		self.start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
		bpf_get_current_comm(self.comm, sizeof(self.comm));
		bpf_map_update_elem(&gr_sock_owners, &key, &self, BPF_ANY);
	}
	owner = bpf_map_lookup_elem(&gr_sock_owners, &key);
	if (owner && owner->pid == cfg->agent_pid)
		return 0;
	cgrp = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	if (!cgrp || !gr_cgroup_in_scope(cfg, cgrp))
		return 0;

	ev = gr_reserve(sizeof(*ev));
	if (ev) {
		gr_fill_header(&ev->hdr, GR_EVENT_TCP_STATE);
		ev->cgroup_id = BPF_CORE_READ(cgrp, kn, id);
		ev->owner_pid = owner ? owner->pid : 0;
		ev->owner_start_ns = owner ? owner->start_ns : 0;
		if (owner)
			__builtin_memcpy(ev->owner_comm, owner->comm, sizeof(ev->owner_comm));
		else
			__builtin_memset(ev->owner_comm, 0, sizeof(ev->owner_comm));
		ev->old_state = oldstate;
		ev->new_state = newstate;
		__builtin_memset(&ev->socket, 0, sizeof(ev->socket));
		gr_sock_info(sk, &ev->socket);
		bpf_ringbuf_submit(ev, gr_wakeup_flags(cfg, sizeof(*ev), true));
	}
	if (newstate == GR_TCP_CLOSE)
		bpf_map_delete_elem(&gr_sock_owners, &key);
	return 0;
}
