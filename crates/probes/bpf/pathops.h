/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Names the tree removes, moves or makes: unlink, rmdir, mkdir, rename, link and symlink,
 * recorded at each successful exit by a tracked thread (PR_EV_PATH). Without them a file written in /tmp and
 * moved or linked into ~/.bashrc or /etc/cron.d, a deleted shell history or a removed log were
 * not in the record at all. The paths are what the caller passed, read from user memory at exit
 * (the kernel keeps no copy of what it resolved: a second thread could rewrite the buffer in
 * between, as for a refused open); a relative one comes with the absolute path of the directory
 * it was relative to, resolved by the kernel from the dfd's file or the working directory, and
 * userspace joins them. No entry half, like the open programs: an untracked call costs one
 * program run. */
#pragma once

#include "lib/path.h"

#define PR_AT_FDCWD -100
#define PR_NO_ARG -1
/* The first part of a symlink is its target: text, relative to nothing the kernel resolves. */
#define PR_TEXT -2
#define PR_PART_LAST ((PR_PATH_PARTS - 1) * PR_PATH_MAX)

/* Argument i (a constant in each program), or 0. */
static __always_inline __u64 pr_arg(struct pr_args *a, int i)
{
	return i >= 0 && i < 6 ? a->a[i] : 0;
}

/* A path as passed, at data[off]; its length. */
static __always_inline __u32 put_user_path(struct pr_path *ev, __u32 off, __u64 uptr)
{
	long n;

	if (off > PR_PART_LAST)
		return 0;
	n = bpf_probe_read_user_str(&ev->data[off], PR_PATH_MAX, (void *)uptr);
	return n > 0 ? (n - 1) & (PR_PATH_MAX - 1) : 0;
}

/* The absolute path of the directory dfd names (or the working directory), at data[off]. */
static __always_inline __u32 put_base(struct pr_path *ev, __u32 off, int dfd, __u32 *trunc)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct file *f;

	*trunc = 0;
	if (off > PR_PART_LAST)
		return 0;
	/* A probe read of task->fs: a plain load through the trusted task pointer would be answered
	 * with name searches over the kernel's BTF at each inlined copy (current_task_ptr); the
	 * walk after it costs more than the read. */
	if (dfd == PR_AT_FDCWD)
		return copy_path(&BPF_CORE_READ(task, fs)->pwd, &ev->data[off], trunc);
	f = fd_file(dfd);
	if (!f)
		return 0;
	return copy_path(&f->f_path, &ev->data[off], trunc);
}

/* Parts `part` and part + 1: the path in argument p_arg, and when it is relative the directory
 * in argument dfd_arg (PR_NO_ARG: the working directory; PR_TEXT: none, it is a symlink's
 * target). Returns the offset after them. */
static __always_inline __u32 put_name(struct pr_path *ev, struct pr_args *a, __u32 off, int part,
				      int dfd_arg, int p_arg)
{
	__u32 len, trunc = 0;
	__u8 first;

	len = put_user_path(ev, off, pr_arg(a, p_arg));
	ev->len[part & 3] = len;
	if (off > PR_PART_LAST)
		return off;
	first = ev->data[off];
	off += len;
	ev->len[(part + 1) & 3] = 0;
	if (dfd_arg == PR_TEXT || !len || first == '/')
		return off;
	len = put_base(ev, off, dfd_arg == PR_NO_ARG ? PR_AT_FDCWD : (int)pr_arg(a, dfd_arg), &trunc);
	ev->len[(part + 1) & 3] = len;
	if (trunc)
		ev->truncated |= 1 << ((part + 1) & 3);
	return off + len;
}

/* A part that is the path of the file an fd argument names (finit_module's module,
 * kexec_file_load's kernel, setns's namespace file, ftruncate's file). */
#define PR_PART_FD -3

static __always_inline __u32 put_fd_part(struct pr_path *ev, __u32 off, int part, long fd)
{
	__u32 len, trunc = 0;

	len = put_base(ev, off, (int)fd == PR_AT_FDCWD ? -1 : (int)fd, &trunc);
	ev->len[part & 3] = len;
	ev->len[(part + 1) & 3] = 0;
	if (trunc)
		ev->truncated |= 1 << (part & 3);
	return off + len;
}

/* The scratch record, its call and flags set and the rest of its fixed part zero; NULL if none. */
static __always_inline struct pr_path *path_start(struct pr_args *a, __u32 syscall, __u32 op,
						  int flags_arg)
{
	struct pr_path *ev = scratch_buf();

	if (!ev)
		return NULL;
	syscall_args(a);
	ev->syscall = syscall;
	ev->op = op;
	ev->flags = (__u32)pr_arg(a, flags_arg);
	ev->truncated = 0;
	ev->ret = 0;
	ev->mnt_ns = 0;
	ev->user_ns = 0;
	ev->_pad = 0;
	return ev;
}

/* The second name (parts 2 and 3; p2 PR_NO_ARG: none) after the first's `off` bytes, then the
 * record of `kind`, sent to the priority ring when `urgent`. */
static __always_inline void put_second_and_send(struct pr_path *ev, struct pr_args *a, __u32 off,
						int dfd2, int p2, __u32 kind, int urgent)
{
	__u32 size;

	if (p2 != PR_NO_ARG) {
		off = put_name(ev, a, off, 2, dfd2, p2);
	} else {
		ev->len[2] = 0;
		ev->len[3] = 0;
	}
	if (off > PR_PATH_PARTS * PR_PATH_MAX)
		return;
	size = offsetof(struct pr_path, data) + off;
	fill_hdr(&ev->hdr, kind, size);
	if (urgent)
		emit_urgent(ev, size, kind);
	else
		emit(ev, size, kind);
}

/* dfd1/p1: the first name's directory and path arguments; dfd2/p2 the new name's (p2
 * PR_NO_ARG: none); flags_arg: the flags argument, or PR_NO_ARG. */
static __always_inline int path_exit(long ret, __u32 syscall, __u32 op, int dfd1, int p1, int dfd2,
				     int p2, int flags_arg)
{
	struct pr_args a;
	struct pr_path *ev;
	__u32 off;

	if (ret != 0)
		return 0;
	if (!tracked_tid(current_tid()))
		return 0;
	ev = path_start(&a, syscall, op, flags_arg);
	if (!ev)
		return 0;
	/* unlinkat(AT_REMOVEDIR) removes a directory, as rmdir does. */
	if (syscall == PR_SYS_UNLINKAT && (ev->flags & 0x200))
		ev->op = PR_PATH_RMDIR;
	off = put_name(ev, &a, 0, 0, dfd1, p1);
	put_second_and_send(ev, &a, off, dfd2, p2, PR_EV_PATH, 0);
	return 0;
}

SEC("tp/syscalls/sys_exit_unlink")
int pr_exit_unlink(struct trace_event_raw_sys_exit *ctx)
{
	return path_exit(ctx->ret, PR_SYS_UNLINK, PR_PATH_UNLINK, PR_NO_ARG, 0, 0, PR_NO_ARG,
			 PR_NO_ARG);
}

SEC("tp/syscalls/sys_exit_unlinkat")
int pr_exit_unlinkat(struct trace_event_raw_sys_exit *ctx)
{
	return path_exit(ctx->ret, PR_SYS_UNLINKAT, PR_PATH_UNLINK, 0, 1, 0, PR_NO_ARG, 2);
}

SEC("tp/syscalls/sys_exit_rmdir")
int pr_exit_rmdir(struct trace_event_raw_sys_exit *ctx)
{
	return path_exit(ctx->ret, PR_SYS_RMDIR, PR_PATH_RMDIR, PR_NO_ARG, 0, 0, PR_NO_ARG,
			 PR_NO_ARG);
}

/* mkdir and mkdirat: one program (the sensor attaches it to sys_exit_mkdirat too). A directory
 * the tree made is one it may stamp with times of its choosing, as tar and `cp -a` do after
 * filling it; without the record that looked like timestomping of a directory it never made. */
SEC("tp/syscalls/sys_exit_mkdir")
int pr_exit_mkdir_any(struct trace_event_raw_sys_exit *ctx)
{
	__u32 sys;
	int dfd, p, mode;

	switch (ctx->id) {
	case 83: /* mkdir(path, mode) */
		sys = PR_SYS_MKDIR, dfd = PR_NO_ARG, p = 0, mode = 1;
		break;
	case 258: /* mkdirat(dfd, path, mode) */
		sys = PR_SYS_MKDIRAT, dfd = 0, p = 1, mode = 2;
		break;
	default:
		return 0;
	}
	barrier_var(sys);
	barrier_var(dfd);
	barrier_var(p);
	barrier_var(mode);
	return path_exit(ctx->ret, sys, PR_PATH_MKDIR, dfd, p, 0, PR_NO_ARG, mode);
}

/* A call naming an old and a new path (rename, link and their *at forms), for programs shared by
 * several calls: the arguments' places, chosen per call by the caller's switch, are hidden from
 * the compiler so that one copy of path_exit is built and verified. The old path is argument 0
 * without a directory argument (dfd1 PR_NO_ARG), else argument 1. */
static __always_inline int two_names_exit(long ret, __u32 sys, __u32 op, int dfd1, int dfd2,
					  int p2, int fl)
{
	barrier_var(sys);
	barrier_var(dfd1);
	barrier_var(dfd2);
	barrier_var(p2);
	barrier_var(fl);
	return path_exit(ret, sys, op, dfd1, dfd1 == PR_NO_ARG ? 0 : 1, dfd2, p2, fl);
}

/* rename, renameat and renameat2: one program attached to the three tracepoints (the sensor
 * attaches it to sys_exit_renameat and sys_exit_renameat2 besides its own), verified once. */
SEC("tp/syscalls/sys_exit_rename")
int pr_exit_rename_any(struct trace_event_raw_sys_exit *ctx)
{
	__u32 sys;
	int dfd1, dfd2, p2, fl;

	switch (ctx->id) {
	case 82: /* rename(old, new) */
		sys = PR_SYS_RENAME, dfd1 = PR_NO_ARG, dfd2 = PR_NO_ARG, p2 = 1, fl = PR_NO_ARG;
		break;
	case 264: /* renameat(olddfd, old, newdfd, new) */
		sys = PR_SYS_RENAMEAT, dfd1 = 0, dfd2 = 2, p2 = 3, fl = PR_NO_ARG;
		break;
	case 316: /* renameat2(olddfd, old, newdfd, new, flags) */
		sys = PR_SYS_RENAMEAT2, dfd1 = 0, dfd2 = 2, p2 = 3, fl = 4;
		break;
	default:
		return 0;
	}
	return two_names_exit(ctx->ret, sys, PR_PATH_RENAME, dfd1, dfd2, p2, fl);
}

/* link and linkat: one program (the sensor attaches it to sys_exit_linkat too). */
SEC("tp/syscalls/sys_exit_link")
int pr_exit_link_any(struct trace_event_raw_sys_exit *ctx)
{
	__u32 sys;
	int dfd1, dfd2, p2, fl;

	switch (ctx->id) {
	case 86: /* link(old, new) */
		sys = PR_SYS_LINK, dfd1 = PR_NO_ARG, dfd2 = PR_NO_ARG, p2 = 1, fl = PR_NO_ARG;
		break;
	case 265: /* linkat(olddfd, old, newdfd, new, flags) */
		sys = PR_SYS_LINKAT, dfd1 = 0, dfd2 = 2, p2 = 3, fl = 4;
		break;
	default:
		return 0;
	}
	return two_names_exit(ctx->ret, sys, PR_PATH_LINK, dfd1, dfd2, p2, fl);
}

/* symlink and symlinkat: one program (the sensor attaches it to sys_exit_symlinkat too). The
 * target is text, kept as written. */
SEC("tp/syscalls/sys_exit_symlink")
int pr_exit_symlink_any(struct trace_event_raw_sys_exit *ctx)
{
	__u32 sys;
	int dfd2, p2;

	switch (ctx->id) {
	case 88: /* symlink(target, new) */
		sys = PR_SYS_SYMLINK, dfd2 = PR_NO_ARG, p2 = 1;
		break;
	case 266: /* symlinkat(target, newdfd, new) */
		sys = PR_SYS_SYMLINKAT, dfd2 = 1, p2 = 2;
		break;
	default:
		return 0;
	}
	barrier_var(sys);
	barrier_var(dfd2);
	barrier_var(p2);
	return path_exit(ctx->ret, sys, PR_PATH_SYMLINK, PR_TEXT, 0, dfd2, p2, PR_NO_ARG);
}

/* truncate and ftruncate to length 0: a file emptied in place, with no open(O_TRUNC) (GNU
 * `truncate -s 0` opens without it, then calls ftruncate; Python's `f.truncate(0)` too), which
 * is how a history or a login record is cleared while its name stays (T1070). One program
 * attached to both (the sensor attaches it to sys_exit_ftruncate besides its own); any other
 * length returns at once (databases and builds shorten files to a size, often). The file: the
 * path as passed, joined to the working directory, or the fd's file. */
SEC("tp/syscalls/sys_exit_truncate")
int pr_exit_truncate_any(struct trace_event_raw_sys_exit *ctx)
{
	struct pr_args a;
	struct pr_path *ev;
	__u32 sys, off;
	int p;

	switch (ctx->id) {
	case 76: /* truncate(path, length) */
		sys = PR_SYS_TRUNCATE, p = 0;
		break;
	case 77: /* ftruncate(fd, length) */
		sys = PR_SYS_FTRUNCATE, p = PR_PART_FD;
		break;
	default:
		return 0;
	}
	if (ctx->ret != 0 || !tracked_tid(current_tid()))
		return 0;
	ev = path_start(&a, sys, PR_PATH_TRUNCATE, PR_NO_ARG);
	if (!ev || pr_arg(&a, 1) != 0)
		return 0;
	barrier_var(p);
	if (p == PR_PART_FD)
		off = put_fd_part(ev, 0, 0, pr_arg(&a, 0));
	else
		off = put_name(ev, &a, 0, 0, PR_NO_ARG, 0);
	put_second_and_send(ev, &a, off, PR_NO_ARG, PR_NO_ARG, PR_EV_PATH, 0);
	return 0;
}
