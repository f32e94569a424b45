/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * What an exec record says about the program: its paths, where its file comes
 * from and which build of it this is. Shared by the exec hook and by the BPF
 * LSM deny hook (deny.bpf.c), so that a refused exec is described, and
 * matched, exactly as one that ran.
 */
#ifndef GUARDRAILS_EXE_H
#define GUARDRAILS_EXE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "lib/maps.h"
#include "lib/path.h"

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

#endif /* GUARDRAILS_EXE_H */
