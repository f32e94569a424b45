/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Killing a new program before it runs an instruction of its own, for the
 * rules the kernel can decide alone (see the kill maps in lib/wire.h). The
 * exec hook runs in the new program's context, so the SIGKILL it sends is
 * delivered on the way back to user space, before the program's entry point.
 */
#ifndef GUARDRAILS_KILL_H
#define GUARDRAILS_KILL_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"

#define GR_SIGKILL 9

/* The deny slots (lib/wire.h); none while the BPF LSM hook is not attached. */
static __always_inline __u64 gr_deny_slots(void)
{
	__u32 zero = 0;
	__u64 *deny = bpf_map_lookup_elem(&gr_kill_deny, &zero);

	return deny ? *deny : 0;
}

struct gr_kill_match {
	const char *rest; /* the first bytes of the arguments after argv[0] */
	__u64 candidates; /* slots whose program matched, armed here */
	__u32 rest_len;   /* bytes of those arguments, cut or not */
	__s32 slot;       /* the first slot that matched, or -1 */
};

/* Whether the arguments start with the slot's prefix, compared as proc.args
 * shows them: joined by spaces, so that each NUL separator is a space. */
static __always_inline bool gr_kill_args_match(const char *rest, __u32 rest_len,
					       const struct gr_kill_args *want)
{
	__u32 len = want->len;

	if (len > GR_KILL_ARGS_MAX || len > rest_len)
		return false;
	for (__u32 i = 0; i < GR_KILL_ARGS_MAX; i++) {
		char c;

		if (i >= len)
			break;
		c = rest[i];
		if (c == '\0')
			c = ' ';
		if (c != want->prefix[i])
			return false;
	}
	return true;
}

static long gr_kill_try_slot(__u64 index, struct gr_kill_match *m)
{
	__u32 slot = index;
	struct gr_kill_args *want;

	if (!(m->candidates & (1ULL << (index & (GR_KILL_SLOTS - 1)))))
		return 0;
	want = bpf_map_lookup_elem(&gr_kill_args, &slot);
	if (!want || !gr_kill_args_match(m->rest, m->rest_len, want))
		return 0;
	m->slot = slot;
	return 1;
}

/*
 * The first of the `armed` slots that the new program matches, or -1. The
 * record in `s` is built: comm, and the exe and args at their offsets in
 * s->data. s->path is free again and serves as room to measure argv[0].
 */
static __always_inline __s32 gr_kill_slot(struct gr_exec_scratch *s, __u64 armed, __u32 exe_off,
					  __u32 args_off, __u32 args_len)
{
	struct gr_kill_match m = { .rest = s->kill_args, .slot = -1 };
	__u32 exe_len = s->ev.exe_len, total = args_len, argv0;
	__u64 *bits;
	char last = 1;
	long n;

	if (exe_off > GR_FILENAME_MAX || args_off > GR_FILENAME_MAX + 2 * GR_PATH_MAX ||
	    args_len > GR_ARGS_MAX)
		return -1;
	bits = bpf_map_lookup_elem(&gr_kill_names, s->ev.proc.comm);
	if (bits)
		m.candidates |= *bits;
	/* A cut path is not the executable's, whatever it starts with. */
	if (exe_len < GR_KILL_PATH_MAX && !(s->ev.flags & GR_EXEC_EXE_TRUNCATED)) {
		__builtin_memset(s->kill_key, 0, sizeof(s->kill_key));
		if (!bpf_probe_read_kernel(s->kill_key, exe_len & (GR_KILL_PATH_MAX - 1),
					   &s->data[exe_off])) {
			bits = bpf_map_lookup_elem(&gr_kill_exes, s->kill_key);
			if (bits)
				m.candidates |= *bits;
		}
	}
	m.candidates &= armed;
	if (!m.candidates)
		return -1;

	/* argv ends in a NUL unless it was cut; proc.args drops that NUL and
	 * argv[0], and keeps a cut last argument. */
	if (args_len)
		bpf_probe_read_kernel(&last, 1, &s->data[args_off + args_len - 1]);
	if (last == '\0')
		total--;
	n = bpf_probe_read_kernel_str(s->path, GR_ARGS_MAX, &s->data[args_off]);
	argv0 = n > 0 ? n - 1 : 0;
	if (argv0 > GR_ARGS_MAX)
		return -1;
	if (total > argv0) {
		m.rest_len = total - argv0 - 1;
		if (bpf_probe_read_kernel(s->kill_args, sizeof(s->kill_args),
					  &s->data[args_off + argv0 + 1]))
			m.rest_len = 0;
	}
	bpf_loop(GR_KILL_SLOTS, gr_kill_try_slot, &m, 0);
	return m.slot;
}

#endif /* GUARDRAILS_KILL_H */
