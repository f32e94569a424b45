/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Kernel functions (kfuncs) called by the programs. The loader (aya) links no
 * kfunc call: it rejects the `.ksyms` section that an `extern ... __ksym`
 * declaration makes. So each call is written here as the raw instruction, a
 * call to a kernel function (source register BPF_PSEUDO_KFUNC_CALL) whose
 * immediate, the function's BTF id in the kernel, is a marker; the agent
 * (`agent/src/bpf/kfuncs.rs`) replaces each marker with the id it finds in
 * the kernel's BTF before loading. A program that calls a kfunc has a twin
 * without it for kernels that lack the kfunc: the agent loads that one when
 * it finds no id to patch in.
 */
#ifndef GUARDRAILS_KFUNC_H
#define GUARDRAILS_KFUNC_H

#include "vmlinux.h"

/* The marker of bpf_rdonly_cast() (kernel 6.2 and later). */
#define GR_KFUNC_MARKER_RDONLY_CAST 0x6b667501
/* The instruction: code BPF_JMP | BPF_CALL (0x85), source register 2, no
 * offset (the kfunc is in vmlinux), the marker as immediate; as the 8 bytes
 * of a little-endian instruction. */
#define GR_KFUNC_CALL(marker) ".8byte (" #marker " << 32) | 0x2085"
#define GR_KFUNC_CALL_OF(marker) GR_KFUNC_CALL(marker)

/*
 * bpf_rdonly_cast(obj, btf_id): `obj` as a read-only pointer to the kernel
 * type `btf_id`, whose fields are then read with plain loads that the kernel
 * guards against faults. The verifier turns the call into a register move.
 * `btf_id` must be a constant the verifier sees (bpf_core_type_id_kernel()).
 */
static __always_inline void *gr_rdonly_cast(const void *obj, __u32 btf_id)
{
	void *cast;

	asm volatile("r1 = %[obj]\n\t"
		     "r2 = %[btf_id]\n\t"
		     GR_KFUNC_CALL_OF(GR_KFUNC_MARKER_RDONLY_CAST) "\n\t"
		     "%[cast] = r0"
		     : [cast] "=r"(cast)
		     : [obj] "r"(obj), [btf_id] "r"(btf_id)
		     : "r0", "r1", "r2", "r3", "r4", "r5");
	return cast;
}

#endif /* GUARDRAILS_KFUNC_H */
