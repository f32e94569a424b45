// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Programs that are only loaded to learn whether the kernel accepts their type,
 * and one that the sensor benchmark attaches to measure a hook's own cost. The
 * agent never attaches them. They live in an object of their own so that a
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

/* Benchmarks only: nothing, on the hook of the syscall sensors, so that
 * what the kernel spends entering any program there is measured apart from
 * what the sensors' program does. */
SEC("tp_btf/sys_exit")
int BPF_PROG(gr_probe_empty_sys_exit, struct pt_regs *regs, long ret)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
