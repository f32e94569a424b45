/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* What a file descriptor refers to, read from the task's file table at event
 * time, so that it cannot drift from what the kernel used. */
#ifndef GUARDRAILS_FD_H
#define GUARDRAILS_FD_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "wire.h"

#define GR_S_IFMT 0170000
#define GR_S_IFSOCK 0140000
#define GR_AF_INET 2
#define GR_AF_INET6 10

/* The file behind `fd` in `task`'s table, or NULL. `task` is a BTF pointer
 * (bpf_get_current_task_btf()), so the way to the table is plain loads; the
 * table's slots are not typed for the verifier and take one probe read. */
static __always_inline struct file *gr_fd_file(struct task_struct *task, long fd)
{
	struct fdtable *fdt = task->files->fdt;
	unsigned int max_fds = fdt->max_fds;
	struct file **fds = fdt->fd;
	struct file *file = NULL;

	if (fd < 0 || fd >= max_fds)
		return NULL;
	bpf_core_read(&file, sizeof(file), &fds[fd & 0xfffff]);
	return file;
}

/* Fills `info` from `sk`. */
static __always_inline void gr_sock_info(const struct sock *sk, struct gr_socket_info *info)
{
	info->type = BPF_CORE_READ(sk, sk_type);
	info->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	info->protocol = BPF_CORE_READ(sk, sk_protocol);
	info->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	info->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	info->remote_port = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (info->family == GR_AF_INET) {
		bpf_core_read(info->local_addr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(info->remote_addr, 4, &sk->__sk_common.skc_daddr);
	} else if (info->family == GR_AF_INET6) {
		BPF_CORE_READ_INTO(&info->local_addr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&info->remote_addr, sk, __sk_common.skc_v6_daddr);
	}
}

/* Fills `info` from the socket behind `file`; returns its struct sock. */
static __always_inline struct sock *gr_socket_info(struct file *file, struct gr_socket_info *info)
{
	struct socket *sock = BPF_CORE_READ(file, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);

	if (sk)
		gr_sock_info(sk, info);
	else
		info->type = BPF_CORE_READ(sock, type);
	return sk;
}

#endif /* GUARDRAILS_FD_H */
