// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * deny-exec: refusing an exec with BPF LSM, so that the program is never
 * mapped and the process goes on running its old one (execve fails with
 * EPERM). Loaded and attached only where the kernel accepts BPF LSM and a rule
 * asks for it; elsewhere the deny-exec rules are kill slots of the exec hook.
 *
 * bprm_check_security runs once per binary handler level: for a script first
 * with the script, then with its interpreter, which is the file the exec hook
 * reports. The decision is the exec hook's (kill slots, armed per cgroup,
 * never the agent), restricted to the deny slots, and sees at least what the
 * exec hook would: the command name the kernel is about to set, and the
 * executable's path resolved by the same walk. argv has already been copied
 * into the new program's memory, out of reach here, so a slot with an argument
 * prefix is never a deny slot.
 *
 * Non-sleepable: every helper used here is allowed there, which BPF LSM has
 * accepted since it exists; bpf_d_path would add nothing over the walk that
 * the exec hook does.
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

#define GR_EPERM 1
#define GR_MAX_ERRNO 4095

/* The kernel's filename can be longer than a path: "/dev/fd/N/<name>" for
 * an execveat relative to a descriptor. Two paths' room holds it whole. */
#define GR_DENY_FILENAME_MAX (2 * GR_PATH_MAX)

struct gr_basename {
	const char *name; /* the whole filename, NUL-terminated */
	__u32 len;
	__u32 start; /* just after its last '/' */
};

static long gr_basename_step(__u64 index, struct gr_basename *b)
{
	const char *name = b->name;
	char c;

	if (index >= b->len)
		return 1;
	if (bpf_probe_read_kernel(&c, 1, &name[index & (GR_DENY_FILENAME_MAX - 1)]))
		return 1;
	if (c == '/')
		b->start = index + 1;
	return 0;
}

/*
 * The command name the exec will give the task, zero-padded as a key of
 * gr_kill_names: the filename's last component cut to 15 bytes, or, for an
 * execveat of a descriptor itself, the file's name (comm_from_dentry, 6.14).
 * `name` holds the filename, `len` bytes before its NUL.
 */
static __always_inline void gr_next_comm(struct linux_binprm *bprm, const char *name, __u32 len,
					 char comm[GR_COMM_LEN])
{
	struct gr_basename b = { .name = name, .len = len };

	__builtin_memset(comm, 0, GR_COMM_LEN);
	if (bpf_core_field_exists(bprm->comm_from_dentry) &&
	    BPF_CORE_READ_BITFIELD_PROBED(bprm, comm_from_dentry)) {
		bpf_probe_read_kernel_str(comm, GR_COMM_LEN,
					  BPF_CORE_READ(bprm, file, f_path.dentry, d_name.name));
		return;
	}
	bpf_loop(GR_DENY_FILENAME_MAX, gr_basename_step, &b, 0);
	bpf_probe_read_kernel_str(comm, GR_COMM_LEN, &name[b.start & (GR_DENY_FILENAME_MAX - 1)]);
}

/* The lowest slot in `bits`, which is not 0: the one the exec hook would
 * report, as it tries the slots in order. */
static __always_inline __u32 gr_lowest_slot(__u64 bits)
{
	__u32 slot = 0;

	if (!(bits & 0xffffffffULL)) {
		slot += 32;
		bits >>= 32;
	}
	if (!(bits & 0xffffULL)) {
		slot += 16;
		bits >>= 16;
	}
	if (!(bits & 0xffULL)) {
		slot += 8;
		bits >>= 8;
	}
	if (!(bits & 0xfULL)) {
		slot += 4;
		bits >>= 4;
	}
	if (!(bits & 0x3ULL)) {
		slot += 2;
		bits >>= 2;
	}
	if (!(bits & 0x1ULL))
		slot += 1;
	return slot;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(gr_deny_exec, struct linux_binprm *bprm, int ret)
{
	struct gr_config *cfg = gr_get_config();
	struct task_struct *current = bpf_get_current_task_btf();
	struct gr_exec_scratch *s;
	struct gr_exec_event *ev;
	struct fs_struct *fs;
	struct file *file;
	char comm[GR_COMM_LEN], magic[2] = {};
	__u32 zero = 0, off, len, flags = 0;
	__u64 cgroup_id, *armed, *bits, deny, candidates = 0;
	long n;

	/* A program before this one refused already: its answer stands. The
	 * verifier wants an errno, which it is. */
	if (ret)
		return ret < 0 && ret >= -GR_MAX_ERRNO ? ret : -GR_EPERM;
	if (!cfg)
		return 0;
	deny = gr_deny_slots();
	if (!deny)
		return 0;
	cgroup_id = bpf_get_current_cgroup_id();
	armed = bpf_map_lookup_elem(&gr_kill_cgroups, &cgroup_id);
	if (!armed || !(*armed & deny))
		return 0;
	if (bpf_get_current_pid_tgid() >> 32 == cfg->agent_pid)
		return 0;
	s = bpf_map_lookup_elem(&gr_scratch, &zero);
	if (!s)
		return 0;
	ev = &s->ev;

	/* The whole filename goes to s->path first, for the command name; the
	 * walk of the executable's path reuses that room afterwards. */
	n = bpf_probe_read_kernel_str(s->path, GR_DENY_FILENAME_MAX, BPF_CORE_READ(bprm, filename));
	len = n > 0 ? n - 1 : 0;
	gr_next_comm(bprm, s->path, len, comm);
	if (comm[0]) {
		bits = bpf_map_lookup_elem(&gr_kill_names, comm);
		if (bits)
			candidates |= *bits;
	}
	if (len > GR_FILENAME_MAX) {
		len = GR_FILENAME_MAX;
		flags |= GR_EXEC_FILENAME_TRUNCATED;
	}
	if (bpf_probe_read_kernel(s->data, len & (2 * GR_FILENAME_MAX - 1), s->path))
		len = 0;
	ev->filename_len = len;
	off = len;

	fs = current->fs;
	file = BPF_CORE_READ(bprm, file);
	len = append_path(s, off, &file->f_path, &fs->root, &flags, GR_EXEC_EXE_TRUNCATED);
	ev->exe_len = len;

	/* A script is not the executable that the exec hook reports: its
	 * interpreter is, and comes through here next. A cut path is not the
	 * executable's, whatever it starts with. */
	bpf_probe_read_kernel(magic, sizeof(magic), &bprm->buf);
	if (!(magic[0] == '#' && magic[1] == '!') && len < GR_KILL_PATH_MAX &&
	    !(flags & GR_EXEC_EXE_TRUNCATED) && off <= GR_FILENAME_MAX) {
		__builtin_memset(s->kill_key, 0, sizeof(s->kill_key));
		if (!bpf_probe_read_kernel(s->kill_key, len & (GR_KILL_PATH_MAX - 1), &s->data[off])) {
			bits = bpf_map_lookup_elem(&gr_kill_exes, s->kill_key);
			if (bits)
				candidates |= *bits;
		}
	}
	candidates &= *armed & deny;
	if (!candidates)
		return 0;
	off += len;

	/* The record describes the program refused, in the process that asked
	 * for it: the command name is the one it would have had. */
	gr_fill_header(&ev->hdr, GR_EVENT_EXEC);
	gr_fill_current(&ev->proc, current);
	__builtin_memcpy(ev->proc.comm, comm, GR_COMM_LEN);
	ev->argc = BPF_CORE_READ(bprm, argc);
	flags |= exe_origin(file);
	exe_identity(ev, file);
	ev->cap_effective = ev->proc.cap_effective;
	len = append_path(s, off, &fs->pwd, &fs->root, &flags, GR_EXEC_CWD_TRUNCATED);
	ev->cwd_len = len;
	off += len;
	ev->args_len = 0;
	ev->flags = flags | GR_EXEC_ARGS_UNREADABLE | GR_EXEC_DENIED;
	ev->kill_slot = gr_lowest_slot(candidates);
	ev->_pad = 0;

	if (off > GR_EXEC_DATA_MAX)
		off = GR_EXEC_DATA_MAX;
	if (bpf_ringbuf_output(&gr_events, ev, sizeof(*ev) + off,
			       gr_wakeup_flags(cfg, sizeof(*ev) + off, false)))
		gr_count(GR_COUNTER_RINGBUF_FULL);
	return -GR_EPERM;
}
