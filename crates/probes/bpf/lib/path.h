/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Resolve a struct path to its absolute path by walking dentries and mounts, as d_path does.
 * bpf_d_path is not allowed from tracepoints, so we walk ourselves. The result is the real
 * target: a symlink or ".." in what the caller typed cannot disguise it. */
#pragma once

#include "common.h"

#define PR_PATH_DEPTH 64  /* components; a deeper path is reported truncated (leaf kept) */
#define PR_NAME_MAX 255

/* One step of the walk, run by bpf_loop so the verifier checks it once rather than 64 times.
 * The walk state lives in the per-CPU pathbuf map, not on the stack: values loaded from a map
 * are imprecise to the verifier, so the callback's states converge at once. Returns 1 to stop. */
static long walk_step(__u32 i, void *unused)
{
	__u32 zero = 0;
	struct pr_pathbuf *w = bpf_map_lookup_elem(&pathbuf, &zero);
	struct dentry *dentry, *mnt_root, *parent;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct qstr name;
	__u32 len, pos;

	if (!w)
		return 1;
	dentry = (struct dentry *)w->dentry;
	vfsmnt = (struct vfsmount *)w->vfsmnt;
	mnt = (struct mount *)w->mnt;
	pos = w->pos;
	mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == mnt_root || dentry == parent) {
		struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);

		if (dentry == mnt_root && mnt != mnt_parent) {
			/* Cross to the mount this one is mounted on. */
			w->dentry = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
			w->mnt = (__u64)mnt_parent;
			w->vfsmnt = (__u64)mnt_parent + bpf_core_field_offset(struct mount, mnt);
			return 0;
		}
		w->trunc = 0; /* reached the root */
		return 1;
	}
	name = BPF_CORE_READ(dentry, d_name);
	len = name.len;
	if (len > PR_NAME_MAX)
		len = PR_NAME_MAX;
	/* Keep at least one byte free so the length stays below PR_PATH_MAX. */
	if (pos < len + 2 || pos > PR_PATH_MAX)
		return 1;
	pos -= len;
	bpf_probe_read_kernel(&w->b[pos & (PR_PATH_MAX - 1)], len, name.name);
	pos -= 1;
	w->b[pos & (PR_PATH_MAX - 1)] = '/';
	w->pos = pos;
	w->dentry = (__u64)parent;
	return 0;
}

/* Writes the path into buf->b[start .. PR_PATH_MAX) and returns start; sets *trunc when the
 * path was longer than PR_PATH_MAX - 1 bytes or deeper than PR_PATH_DEPTH. */
static __always_inline __u32 build_path(struct dentry *dentry, struct vfsmount *vfsmnt,
					struct pr_pathbuf *buf, __u32 *trunc)
{
	__u32 pos;

	buf->dentry = (__u64)dentry;
	buf->vfsmnt = (__u64)vfsmnt;
	buf->mnt = (__u64)vfsmnt - bpf_core_field_offset(struct mount, mnt);
	buf->pos = PR_PATH_MAX;
	buf->trunc = 1;
	bpf_loop(PR_PATH_DEPTH, walk_step, NULL, 0);
	*trunc = buf->trunc;
	pos = buf->pos;
	if (pos >= PR_PATH_MAX) {
		pos = PR_PATH_MAX - 1;
		buf->b[pos] = '/';
	}
	return pos;
}

/* Resolve `path` and copy it to dst (PR_PATH_MAX bytes). Returns the length. */
static __always_inline __u32 copy_path(const struct path *path, __u8 *dst, __u32 *trunc)
{
	__u32 zero = 0;
	struct pr_pathbuf *buf = bpf_map_lookup_elem(&pathbuf, &zero);
	struct dentry *dentry = BPF_CORE_READ(path, dentry);
	struct vfsmount *mnt = BPF_CORE_READ(path, mnt);
	__u32 start, len;

	*trunc = 0;
	if (!buf || !dentry || !mnt)
		return 0;
	start = build_path(dentry, mnt, buf, trunc);
	len = PR_PATH_MAX - start;
	if (len > PR_PATH_MAX - 1)
		len = PR_PATH_MAX - 1;
	bpf_probe_read_kernel(dst, len & (PR_PATH_MAX - 1), &buf->b[start & (PR_PATH_MAX - 1)]);
	return len & (PR_PATH_MAX - 1);
}

/* A file with no path: a pseudo file (a memfd's dentry is its own parent, apart from its
 * mount's root; copy_path would give "/"). */
static __always_inline int pseudo_file(struct file *f)
{
	struct dentry *de = BPF_CORE_READ(f, f_path.dentry);

	return de == BPF_CORE_READ(de, d_parent) && de != BPF_CORE_READ(f, f_path.mnt, mnt_root);
}

/* The file's resolved path into dst (PR_PATH_MAX bytes), or for a pseudo file (`pseudo`, from
 * pseudo_file) its dentry's name, such as "memfd:payload". Returns the length. */
static __always_inline __u32 copy_file_name(struct file *f, int pseudo, __u8 *dst, __u32 *trunc)
{
	long n;

	if (!pseudo)
		return copy_path(&f->f_path, dst, trunc);
	*trunc = 0;
	n = bpf_probe_read_kernel_str(dst, PR_NAME_MAX + 1, BPF_CORE_READ(f, f_path.dentry, d_name.name));
	return n > 0 ? (n - 1) & (PR_PATH_MAX - 1) : 0;
}
