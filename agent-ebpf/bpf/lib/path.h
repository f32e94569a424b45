/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Resolving a `struct path` to the absolute path a process sees, in the kernel
 * at event time. bpf_d_path() is not allowed from tracepoints, so this walks the
 * dentries up to the task's root, crossing mount points on the way.
 */
#ifndef GUARDRAILS_PATH_H
#define GUARDRAILS_PATH_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "wire.h"

/* Components followed at most; a deeper path is marked truncated. */
#define GR_PATH_MAX_DEPTH 64
#define GR_NAME_MAX 255

struct gr_path_walk {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct dentry *mnt_root; /* vfsmnt's, read once per mount crossed */
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	char *buf;   /* 2 * GR_PATH_MAX bytes; the path ends at GR_PATH_MAX */
	__u32 start; /* where the path begins in buf */
	bool truncated;
	bool done;
};

/* A dentry's parent and name, which lie side by side in struct dentry: one
 * read for both where they do (in every kernel so far), two where not. */
struct gr_dentry_link {
	struct dentry *parent;
	struct qstr name;
};

static __always_inline void gr_dentry_link(struct dentry *dentry, struct gr_dentry_link *link)
{
	if (bpf_core_field_offset(struct dentry, d_name) ==
	    bpf_core_field_offset(struct dentry, d_parent) + sizeof(struct dentry *)) {
		if (bpf_core_read(link, sizeof(*link), &dentry->d_parent))
			__builtin_memset(link, 0, sizeof(*link));
		return;
	}
	link->parent = BPF_CORE_READ(dentry, d_parent);
	link->name = BPF_CORE_READ(dentry, d_name);
}

static long gr_path_step(__u64 index, struct gr_path_walk *w)
{
	/* Copied out of w first: inside BPF_CORE_READ, an access through w would
	 * be relocated against the kernel's BTF, which has no gr_path_walk. */
	struct dentry *dentry = w->dentry;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct mount *mnt = w->mnt;
	struct dentry *mnt_root = w->mnt_root;
	struct gr_dentry_link link;
	struct dentry *parent;
	struct qstr name;
	__u32 len, start;

	if (dentry == w->root_dentry && vfsmnt == w->root_mnt)
		goto done;
	gr_dentry_link(dentry, &link);
	parent = link.parent;
	bool last = false;

	if (dentry == mnt_root || dentry == parent) {
		struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
		/* A dentry that is its own parent but no mount's root hangs
		 * nowhere, like a memfd's "memfd:<name>": its name is the path. */
		if (dentry != mnt_root) {
			if (w->start != GR_PATH_MAX)
				goto done;
			last = true;
			goto component;
		}
		/* The top of a mount that hangs nowhere: the global root or a
		 * detached tree. */
		if (mnt == mnt_parent)
			goto done;
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = mnt_parent;
		vfsmnt = (struct vfsmount *)((char *)mnt_parent +
					     bpf_core_field_offset(struct mount, mnt));
		w->vfsmnt = vfsmnt;
		w->mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
		return 0;
	}

component:
	name = link.name;
	len = name.len;
	if (len > GR_NAME_MAX)
		len = GR_NAME_MAX;
	/* Keep start >= 1 so that a whole path is at most GR_PATH_MAX - 1. */
	if (w->start < len + 2) {
		w->truncated = true;
		goto done;
	}
	start = w->start - len - 1;
	/* The masks keep both writes inside buf for the verifier. */
	if (bpf_probe_read_kernel(&w->buf[(start + 1) & (GR_PATH_MAX - 1)], len & GR_NAME_MAX,
				  name.name))
		goto done;
	w->buf[start & (GR_PATH_MAX - 1)] = '/';
	w->start = start;
	w->dentry = parent;
	if (last)
		goto done;
	return 0;
done:
	w->done = true;
	return 1;
}

/*
 * Writes the absolute path of `path`, as seen from `root`, into `buf` ending at
 * GR_PATH_MAX. Returns where it starts; `*truncated` is set when the path was
 * deeper or longer than the bounds. `root` is a BTF pointer (the current
 * task's fs->root), read with plain loads; `path` may come from anywhere.
 */
static __always_inline __u32 gr_resolve_path(const struct path *path, const struct path *root,
					      char *buf, bool *truncated)
{
	struct vfsmount *vfsmnt = BPF_CORE_READ(path, mnt);
	struct gr_path_walk w = {
		.dentry = BPF_CORE_READ(path, dentry),
		.vfsmnt = vfsmnt,
		.mnt = (struct mount *)((char *)vfsmnt - bpf_core_field_offset(struct mount, mnt)),
		.mnt_root = BPF_CORE_READ(vfsmnt, mnt_root),
		.root_dentry = root->dentry,
		.root_mnt = root->mnt,
		.buf = buf,
		.start = GR_PATH_MAX,
	};

	bpf_loop(GR_PATH_MAX_DEPTH, gr_path_step, &w, 0);
	if (!w.done)
		w.truncated = true;
	if (w.start == GR_PATH_MAX) {
		w.start = GR_PATH_MAX - 1;
		buf[GR_PATH_MAX - 1] = '/';
	}
	*truncated = w.truncated;
	return w.start;
}

#endif /* GUARDRAILS_PATH_H */
