// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Programs that are only loaded to learn whether the kernel accepts their type.
 * The agent never attaches them. They live in an object of their own so that a
 * refusal cannot disturb the sensors.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("fentry/do_exit")
int BPF_PROG(gr_probe_fentry, long code)
{
	return 0;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(gr_probe_lsm, struct linux_binprm *bprm, int ret)
{
	return ret;
}

char LICENSE[] SEC("license") = "GPL";
