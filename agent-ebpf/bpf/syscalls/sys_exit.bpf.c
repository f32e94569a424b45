// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Every syscall the agent asked for (file, network, descriptor, privilege and
 * kernel-surface calls), reported once it returns, with its result.
 *
 * One program serves them all: the agent describes each syscall's arguments
 * in `gr_syscall_specs` and this program resolves what they refer to at that
 * moment (the file or socket behind a descriptor, the directory a relative
 * path starts from, a destination address) and sends them as parts after the
 * record. It comes in two entries: on each reported syscall's own exit
 * tracepoint, so that no program runs for the others (with a twin for
 * kernels without the kfunc it reads the registers with), or on `sys_exit`,
 * where a syscall without a spec costs one array lookup.
 *
 * The arguments are read from the saved user registers, which the syscall
 * leaves in place on x86_64.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "lib/events.h"
#include "lib/fd.h"
#include "lib/kfunc.h"
#include "lib/path.h"
#include "lib/task.h"

#define GR_AT_FDCWD -100
/* The most one part can take: its header and the largest payload. */
#define GR_PART_ROOM (sizeof(struct gr_part) + GR_STRING_MAX)

struct gr_sys_state {
	struct gr_syscall_scratch *s;
	struct task_struct *task;
	__u32 off; /* bytes of parts so far */
	__u32 flags;
	bool has_address; /* a sockaddr part was appended */
};

/* Room for one more part, or the record is marked truncated. */
static __always_inline bool gr_room(struct gr_sys_state *st)
{
	if (st->off > GR_SYSCALL_DATA_MAX - GR_PART_ROOM) {
		st->flags |= GR_SYSCALL_PARTS_TRUNCATED;
		return false;
	}
	return true;
}

static __always_inline void gr_commit_part(struct gr_sys_state *st, __u8 kind, __u8 arg, __u32 len)
{
	__u32 off = st->off;
	struct gr_part *part;

	if (off > GR_SYSCALL_DATA_MAX - GR_PART_ROOM)
		return;
	part = (struct gr_part *)&st->s->data[off];
	part->kind = kind;
	part->arg = arg;
	part->len = len;
	st->off = off + sizeof(struct gr_part) + (len & (GR_STRING_MAX - 1));
}

/* Appends the absolute path of `path` as a part of `kind`. */
static __noinline void gr_append_path(struct gr_sys_state *st, const struct path *path, __u8 kind,
				      __u8 arg)
{
	struct fs_struct *fs = st->task->fs;
	bool truncated = false;
	__u32 start, len, off = st->off;

	if (!gr_room(st))
		return;
	start = gr_resolve_path(path, &fs->root, st->s->path, &truncated);
	len = (GR_PATH_MAX - start) & (GR_PATH_MAX - 1);
	if (truncated)
		st->flags |= GR_SYSCALL_PATH_TRUNCATED;
	if (off > GR_SYSCALL_DATA_MAX - GR_PART_ROOM)
		return;
	if (bpf_probe_read_kernel(&st->s->data[off + sizeof(struct gr_part)], len,
				  &st->s->path[start & (GR_PATH_MAX - 1)]))
		return;
	gr_commit_part(st, kind, arg, len);
}

/* Appends what descriptor `fd` refers to: a socket's endpoints, a path, or
 * only its file type. */
static __noinline void gr_append_fd(struct gr_sys_state *st, long fd, __u8 arg)
{
	struct file *file = gr_fd_file(st->task, fd);
	__u32 off = st->off;
	umode_t mode;

	if (!file || !gr_room(st))
		return;
	if (off > GR_SYSCALL_DATA_MAX - GR_PART_ROOM)
		return;
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & GR_S_IFMT) == GR_S_IFSOCK) {
		struct gr_socket_info *info =
			(struct gr_socket_info *)&st->s->data[off + sizeof(struct gr_part)];
		struct sock *sk;

		__builtin_memset(info, 0, sizeof(*info));
		sk = gr_socket_info(file, info);
		gr_commit_part(st, GR_PART_SOCKET, arg, sizeof(*info));
		if (sk) {
			/* Remember who uses this socket, for its state changes. */
			struct gr_sock_owner owner = {
				.pid = st->s->ev.proc.pid,
				.start_ns = st->s->ev.proc.start_ns,
			};
			__builtin_memcpy(owner.comm, st->s->ev.proc.comm, sizeof(owner.comm));
			__u64 key = (__u64)sk;
			bpf_map_update_elem(&gr_sock_owners, &key, &owner, BPF_ANY);
		}
		return;
	}
	switch (mode & GR_S_IFMT) {
	case 0100000: /* regular */
	case 0040000: /* directory */
	case 0020000: /* character device */
	case 0060000: /* block device */
	case 0120000: /* symlink */
		gr_append_path(st, &file->f_path, GR_PART_FD_PATH, arg);
		return;
	default: { /* pipes, anonymous inodes */
		__u32 *value = (__u32 *)&st->s->data[off + sizeof(struct gr_part)];
		*value = mode;
		gr_commit_part(st, GR_PART_FD_OTHER, arg, sizeof(*value));
	}
	}
}

/* Appends a user string; returns its first byte (0 when unreadable). */
static __noinline char gr_append_user_string(struct gr_sys_state *st, const char *ptr, __u8 kind,
					      __u8 arg)
{
	__u32 off = st->off;
	long n;

	if (!ptr || !gr_room(st))
		return 0;
	if (off > GR_SYSCALL_DATA_MAX - GR_PART_ROOM)
		return 0;
	n = bpf_probe_read_user_str(&st->s->data[off + sizeof(struct gr_part)], GR_STRING_MAX, ptr);
	if (n <= 0)
		return 0;
	if (n == GR_STRING_MAX)
		st->flags |= GR_SYSCALL_PATH_TRUNCATED;
	gr_commit_part(st, kind, arg, (__u32)(n - 1));
	return st->s->data[(off + sizeof(struct gr_part)) & (GR_SYSCALL_DATA_MAX - 1)];
}

static __noinline void gr_append_sockaddr(struct gr_sys_state *st, const void *ptr, __u64 len,
					  __u8 arg)
{
	__u32 off = st->off;

	if (!ptr || !len || !gr_room(st))
		return;
	if (len > GR_SOCKADDR_MAX)
		len = GR_SOCKADDR_MAX;
	if (off > GR_SYSCALL_DATA_MAX - GR_PART_ROOM)
		return;
	if (bpf_probe_read_user(&st->s->data[off + sizeof(struct gr_part)], len & (GR_SOCKADDR_MAX * 2 - 1),
				ptr))
		return;
	gr_commit_part(st, GR_PART_SOCKADDR, arg, len);
	st->has_address = true;
}

static __always_inline void gr_append_msghdr(struct gr_sys_state *st, const struct user_msghdr *msg,
					     __u8 arg)
{
	struct user_msghdr hdr = {};

	if (!msg || bpf_probe_read_user(&hdr, sizeof(hdr), msg))
		return;
	gr_append_sockaddr(st, hdr.msg_name, hdr.msg_namelen, arg);
}

/* Appends 24 bytes of a user struct (open_how, capset's data). */
static __always_inline void gr_append_user_struct(struct gr_sys_state *st, const void *ptr, __u8 kind,
						  __u8 arg)
{
	__u32 off = st->off;

	if (!ptr || !gr_room(st))
		return;
	if (off > GR_SYSCALL_DATA_MAX - GR_PART_ROOM)
		return;
	if (bpf_probe_read_user(&st->s->data[off + sizeof(struct gr_part)], 24, ptr))
		return;
	gr_commit_part(st, kind, arg, 24);
}

static __always_inline void gr_append_arg(struct gr_sys_state *st, const struct gr_syscall_spec *spec,
					  const __u64 *args, int i)
{
	switch (spec->args[i]) {
	case GR_ARG_FD:
		gr_append_fd(st, (long)args[i], i);
		break;
	case GR_ARG_STRING:
		gr_append_user_string(st, (const char *)args[i], GR_PART_STRING, i);
		break;
	case GR_ARG_SOCKADDR:
		if (i < 5)
			gr_append_sockaddr(st, (const void *)args[i], args[i + 1], i);
		break;
	case GR_ARG_MSGHDR:
		gr_append_msghdr(st, (const struct user_msghdr *)args[i], i);
		break;
	case GR_ARG_SOCKADDR_OUT:
		if (i < 5 && args[i] && args[i + 1]) {
			__u32 len = 0;
			if (!bpf_probe_read_user(&len, sizeof(len), (const void *)args[i + 1]))
				gr_append_sockaddr(st, (const void *)args[i], len, i);
		}
		break;
	case GR_ARG_OPEN_HOW:
		gr_append_user_struct(st, (const void *)args[i], GR_PART_OPEN_HOW, i);
		break;
	case GR_ARG_CAP_DATA:
		gr_append_user_struct(st, (const void *)args[i], GR_PART_CAP_DATA, i);
		break;
	case GR_ARG_PATH: {
		char first = gr_append_user_string(st, (const char *)args[i], GR_PART_PATH, i);
		__u8 dirfd_arg = spec->dirfd_of[i];
		long dirfd = GR_AT_FDCWD;

		if (!first || first == '/')
			break;
		if (dirfd_arg < 6)
			dirfd = (long)(int)args[dirfd_arg & 7];
		if (dirfd == GR_AT_FDCWD) {
			gr_append_path(st, &st->task->fs->pwd, GR_PART_BASE, i);
		} else {
			struct file *dir = gr_fd_file(st->task, dirfd);
			if (dir)
				gr_append_path(st, &dir->f_path, GR_PART_BASE, i);
		}
		break;
	}
	default:
		break;
	}
}

/* Whether the syscall's record can carry parts: an argument sent as more
 * than its value, a returned descriptor, or a required address. */
static __always_inline bool gr_may_have_parts(const struct gr_syscall_spec *spec)
{
	bool parts = spec->ret == GR_ARG_FD || spec->require_address;

	for (int i = 0; i < 6; i++)
		parts |= spec->args[i] > GR_ARG_SCALAR;
	return parts;
}

/* The record of syscall `nr` with no parts yet. */
static __always_inline void gr_fill_syscall(struct gr_syscall_event *ev, struct task_struct *task,
					    __u32 nr, long ret, const __u64 *args)
{
	gr_fill_header(&ev->hdr, GR_EVENT_SYSCALL);
	gr_fill_current(&ev->proc, task);
	ev->nr = nr;
	ev->ret = ret;
	for (int i = 0; i < 6; i++)
		ev->args[i] = args[i];
	ev->flags = 0;
	ev->parts_len = 0;
	__builtin_memset(ev->_pad2, 0, sizeof(ev->_pad2));
}

/* Reports syscall `nr`, which returned `ret`, if the agent asked for it;
 * `regs` are the caller's saved registers. `task` is the current task when
 * the hook already has it, or NULL. */
static __always_inline int gr_syscall_exit(struct pt_regs *regs, __u32 nr, long ret,
					   struct task_struct *task)
{
	struct gr_syscall_spec *spec;
	struct gr_config *cfg;
	struct gr_sys_state st = {};
	struct gr_syscall_event *ev;
	__u32 zero = 0;
	__u64 args[6];

	if (nr >= GR_SYSCALL_MAX)
		return 0;
	spec = bpf_map_lookup_elem(&gr_syscall_specs, &nr);
	if (!spec || spec->ret == GR_ARG_NONE)
		return 0;
	args[0] = regs->di;
	args[1] = regs->si;
	args[2] = regs->dx;
	args[3] = regs->r10;
	args[4] = regs->r8;
	args[5] = regs->r9;
	if (spec->filter_arg < 6) {
		__u32 value = args[spec->filter_arg & 7];
		if (value != spec->filter_values[0] && value != spec->filter_values[1])
			return 0;
	}
	cfg = gr_get_config();
	/* Only now: on sys_exit, a syscall that is not reported pays no
	 * helper call. */
	if (!task)
		task = bpf_get_current_task_btf();
	if (!cfg || !gr_current_in_scope(cfg, task))
		return 0;

	/* Scalar arguments only (setuid, ptrace, unshare, ...): the record is
	 * written in place in the ring buffer, with no copy. */
	if (!gr_may_have_parts(spec)) {
		ev = gr_reserve(sizeof(*ev));
		if (!ev)
			return 0;
		gr_fill_syscall(ev, task, nr, ret, args);
		bpf_ringbuf_submit(ev, gr_wakeup_flags(cfg, sizeof(*ev), true));
		return 0;
	}

	st.s = bpf_map_lookup_elem(&gr_syscall_scratch, &zero);
	if (!st.s)
		return 0;
	st.task = task;
	ev = &st.s->ev;
	gr_fill_syscall(ev, task, nr, ret, args);
	for (int i = 0; i < 6; i++)
		gr_append_arg(&st, spec, args, i);
	if (spec->require_address && !st.has_address)
		return 0;
	if (spec->ret == GR_ARG_FD && ret >= 0)
		gr_append_fd(&st, ret, GR_PART_RET);

	ev->flags = st.flags;
	ev->parts_len = st.off;
	if (st.off > GR_SYSCALL_DATA_MAX)
		return 0;
	if (bpf_ringbuf_output(&gr_events, ev, sizeof(*ev) + st.off,
			       gr_wakeup_flags(cfg, sizeof(*ev) + st.off, false)))
		gr_count(GR_COUNTER_RINGBUF_FULL);
	return 0;
}

/* Every syscall's exit: the hook where per-syscall tracepoints are missing
 * (no tracefs). regs is a trusted pointer here: plain loads, no helper
 * calls, keep the cost of a syscall that is not reported to a few
 * instructions. */
SEC("tp_btf/sys_exit")
int BPF_PROG(gr_sys_exit, struct pt_regs *regs, long ret)
{
	return gr_syscall_exit(regs, regs->orig_ax, ret, NULL);
}

/* The record of a `syscalls/sys_exit_<name>` tracepoint, as its format file
 * in tracefs describes it. */
struct gr_syscall_exit_record {
	__u64 common;
	int nr;
	long ret;
};

/*
 * The saved user registers of `task`, the current task, without a helper
 * call: its kernel stack's base plus the offset learned from the first
 * bpf_task_pt_regs() call (a helper call costs 15 to 25 ns where every
 * return goes through a speculation-safe thunk; the cast is a register
 * move once verified).
 */
static __always_inline struct pt_regs *gr_saved_regs(struct task_struct *task)
{
	__u32 zero = 0;
	__u64 *offset = bpf_map_lookup_elem(&gr_regs_offset, &zero);
	struct pt_regs *regs;

	if (offset && *offset)
		return gr_rdonly_cast((char *)task->stack + *offset,
				      bpf_core_type_id_kernel(struct pt_regs));
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (offset)
		*offset = (__u64)regs - (__u64)task->stack;
	return regs;
}

/* One syscall's exit, attached to the tracepoint of each syscall the agent
 * asked for: the kernel runs no program at all for the others, which then
 * cost a bit test instead of a program's entry (about 40 ns here). */
SEC("tracepoint/syscalls/sys_exit")
int gr_sys_exit_each(struct gr_syscall_exit_record *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if (ctx->nr < 0)
		return 0;
	return gr_syscall_exit(gr_saved_regs(task), ctx->nr, ctx->ret, task);
}

/* The same for kernels without bpf_rdonly_cast(): the registers from the
 * helper on every call. */
SEC("tracepoint/syscalls/sys_exit")
int gr_sys_exit_each_compat(struct gr_syscall_exit_record *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);

	if (ctx->nr < 0)
		return 0;
	return gr_syscall_exit(regs, ctx->nr, ctx->ret, task);
}
