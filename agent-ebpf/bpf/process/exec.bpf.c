// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * execve(2) and execveat(2) that succeeded. sched_process_exec fires after the
 * new program is mapped and before it runs, in the context of the new program,
 * so its argv is readable from current's memory, and a SIGKILL sent here
 * lands before the new program's first instruction (process/kill.h).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "lib/events.h"
#include "lib/path.h"
#include "lib/task.h"
#include "kill.h"

/* Appends the path that `path` resolves to, returning its length. */
static __always_inline __u32 append_path(struct gr_exec_scratch *s, __u32 off, const struct path *path,
					 const struct path *root, __u32 *flags, __u32 truncated_flag)
{
	bool truncated = false;
	__u32 start = gr_resolve_path(path, root, s->path, &truncated);
	__u32 len = GR_PATH_MAX - start;
	char *data = s->data;

	if (truncated)
		*flags |= truncated_flag;
	if (off > GR_FILENAME_MAX + GR_PATH_MAX)
		return 0;
	if (bpf_probe_read_kernel(&data[off], len & (GR_PATH_MAX - 1),
				  &s->path[start & (GR_PATH_MAX - 1)]))
		return 0;
	return len & (GR_PATH_MAX - 1);
}

#define GR_OVERLAYFS_SUPER_MAGIC 0x794c7630
#define GR_TMPFS_MAGIC 0x01021994
#define GR_HUGETLBFS_MAGIC 0x958458f6

/* Where the executable comes from: a memfd, or an overlay's upper layer. */
static __always_inline __u32 exe_origin(struct file *file)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	unsigned long magic = BPF_CORE_READ(inode, i_sb, s_magic);
	char name[6] = {};

	if (magic == GR_OVERLAYFS_SUPER_MAGIC) {
		struct ovl_inode *oi = (struct ovl_inode *)((char *)inode -
							    bpf_core_field_offset(struct ovl_inode, vfs_inode));
		return BPF_CORE_READ(oi, __upperdentry) ? GR_EXEC_EXE_UPPER_LAYER : 0;
	}
	if (magic != GR_TMPFS_MAGIC && magic != GR_HUGETLBFS_MAGIC)
		return 0;
	/* memfd_create names its file "memfd:<name>" on the internal shm mount. */
	bpf_probe_read_kernel(name, sizeof(name), BPF_CORE_READ(file, f_path.dentry, d_name.name));
	if (name[0] == 'm' && name[1] == 'e' && name[2] == 'm' && name[3] == 'f' && name[4] == 'd' &&
	    name[5] == ':')
		return GR_EXEC_EXE_MEMFD;
	return 0;
}

/* The names inode times had before 6.11 split them into seconds and
 * nanoseconds: i_mtime and i_ctime until 6.5, __i_ctime from 6.6, __i_mtime
 * from 6.7. CO-RE keeps whichever the running kernel has. */
struct inode___timespec {
	struct timespec64 i_mtime;
	struct timespec64 i_ctime;
	struct timespec64 __i_mtime;
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

#define GR_NSEC_PER_SEC 1000000000LL

/* Since 6.13 the kernel keeps a flag in bit 31 of i_ctime_nsec (the time was
 * queried: multigrain timestamps); a real nanosecond count never sets it. */
#define GR_NSEC_MASK 0x7fffffffLL

static __always_inline __s64 gr_timespec_ns(__s64 sec, __s64 nsec)
{
	return sec * GR_NSEC_PER_SEC + (nsec & GR_NSEC_MASK);
}

/* The executable's inode number and its modification and change times, for
 * telling one build of a program from another at the same path. */
static __always_inline void exe_identity(struct gr_exec_event *ev, struct file *file)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct inode___timespec *old = (void *)inode;

	ev->exe_ino = BPF_CORE_READ(inode, i_ino);
	if (bpf_core_field_exists(inode->i_mtime_sec))
		ev->exe_mtime_ns = gr_timespec_ns(BPF_CORE_READ(inode, i_mtime_sec),
						  BPF_CORE_READ(inode, i_mtime_nsec));
	else if (bpf_core_field_exists(old->__i_mtime))
		ev->exe_mtime_ns = gr_timespec_ns(BPF_CORE_READ(old, __i_mtime.tv_sec),
						  BPF_CORE_READ(old, __i_mtime.tv_nsec));
	else
		ev->exe_mtime_ns = gr_timespec_ns(BPF_CORE_READ(old, i_mtime.tv_sec),
						  BPF_CORE_READ(old, i_mtime.tv_nsec));
	if (bpf_core_field_exists(inode->i_ctime_sec))
		ev->exe_ctime_ns = gr_timespec_ns(BPF_CORE_READ(inode, i_ctime_sec),
						  BPF_CORE_READ(inode, i_ctime_nsec));
	else if (bpf_core_field_exists(old->__i_ctime))
		ev->exe_ctime_ns = gr_timespec_ns(BPF_CORE_READ(old, __i_ctime.tv_sec),
						  BPF_CORE_READ(old, __i_ctime.tv_nsec));
	else
		ev->exe_ctime_ns = gr_timespec_ns(BPF_CORE_READ(old, i_ctime.tv_sec),
						  BPF_CORE_READ(old, i_ctime.tv_nsec));
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(gr_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	struct gr_config *cfg = gr_get_config();
	struct gr_exec_scratch *s;
	struct gr_exec_event *ev;
	struct fs_struct *fs;
	struct file *file;
	struct mm_struct *mm;
	unsigned long arg_start, arg_end, args_len;
	__u32 zero = 0, off, len, exe_off, args_off;
	__u32 flags = 0;
	__u64 cgroup_id, *armed;
	bool report;
	char *data;
	long n;

	if (!cfg)
		return 0;
	/* The armed cgroups come first: an exec in none of them, the common
	 * case, pays a single hash lookup for the kill. A kill is reported even
	 * outside the scope: it must never go unseen. */
	cgroup_id = bpf_get_current_cgroup_id();
	armed = bpf_map_lookup_elem(&gr_kill_cgroups, &cgroup_id);
	report = gr_current_in_scope(cfg);
	if (!report && !armed)
		return 0;
	s = bpf_map_lookup_elem(&gr_scratch, &zero);
	if (!s)
		return 0;
	ev = &s->ev;
	data = s->data;

	gr_fill_header(&ev->hdr, GR_EVENT_EXEC);
	gr_fill_current(&ev->proc);
	ev->argc = BPF_CORE_READ(bprm, argc);

	/* The filename as handed to execve. One byte more than the bound is read
	 * to tell a cut name from one that fits exactly; the next part overwrites
	 * that byte. */
	n = bpf_probe_read_kernel_str(data, GR_FILENAME_MAX + 1, BPF_CORE_READ(bprm, filename));
	len = n > 0 ? n - 1 : 0;
	if (len > GR_FILENAME_MAX) {
		len = GR_FILENAME_MAX;
		flags |= GR_EXEC_FILENAME_TRUNCATED;
	}
	ev->filename_len = len;
	off = len;
	exe_off = off;

	fs = BPF_CORE_READ(task, fs);
	file = BPF_CORE_READ(bprm, file);
	flags |= exe_origin(file);
	exe_identity(ev, file);
	ev->cap_effective = BPF_CORE_READ(task, real_cred, cap_effective.val);
	len = append_path(s, off, &file->f_path, &fs->root, &flags, GR_EXEC_EXE_TRUNCATED);
	ev->exe_len = len;
	off += len;

	len = append_path(s, off, &fs->pwd, &fs->root, &flags, GR_EXEC_CWD_TRUNCATED);
	ev->cwd_len = len;
	off += len;

	mm = BPF_CORE_READ(task, mm);
	arg_start = BPF_CORE_READ(mm, arg_start);
	arg_end = BPF_CORE_READ(mm, arg_end);
	args_len = arg_end > arg_start ? arg_end - arg_start : 0;
	if (args_len > GR_ARGS_MAX) {
		args_len = GR_ARGS_MAX;
		flags |= GR_EXEC_ARGS_TRUNCATED;
	}
	if (off > GR_FILENAME_MAX + 2 * GR_PATH_MAX)
		off = GR_FILENAME_MAX + 2 * GR_PATH_MAX;
	args_off = off;
	if (args_len && bpf_probe_read_user(&data[off], args_len & (GR_ARGS_MAX * 2 - 1),
					    (void *)arg_start)) {
		args_len = 0;
		flags |= GR_EXEC_ARGS_UNREADABLE;
	}
	ev->args_len = args_len;
	off += args_len;
	ev->flags = flags;
	ev->kill_slot = 0;
	ev->_pad = 0;

	/* Never the agent itself, whatever a rule says. */
	if (armed && ev->proc.pid != cfg->agent_pid) {
		__s32 slot = gr_kill_slot(s, *armed, exe_off, args_off, args_len);

		if (slot >= 0 && !bpf_send_signal(GR_SIGKILL)) {
			ev->flags |= GR_EXEC_KILLED;
			ev->kill_slot = slot;
		}
	}
	if (!report && !(ev->flags & GR_EXEC_KILLED))
		return 0;

	if (off > GR_EXEC_DATA_MAX)
		off = GR_EXEC_DATA_MAX;
	if (bpf_ringbuf_output(&gr_events, ev, sizeof(*ev) + off,
			       gr_wakeup_flags(cfg, sizeof(*ev) + off, false)))
		gr_count(GR_COUNTER_RINGBUF_FULL);
	return 0;
}
