/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* File opens: arguments saved at syscall entry, the opened file resolved at exit from the fd,
 * so the path reported is the file the kernel actually opened. */
#pragma once

#include "lib/path.h"

#define O_CREAT_WRONLY_TRUNC (00000100 | 00000001 | 00001000)

/* Bits the kernel drops from f_flags once the file is open (do_dentry_open, build_open_flags):
 * for these the caller's flags are all there is. */
#define PR_O_DROPPED (00000100 | 00000200 | 00000400 | 00001000 | 02000000) /* CREAT EXCL NOCTTY TRUNC CLOEXEC */
#define PR_O_CREAT 00000100
#define PR_O_LARGEFILE 00100000
#define PR_FMODE_CREATED 0x100000

static __always_inline int open_enter(__u64 path, __u64 flags, __u32 syscall)
{
	__u32 tid = current_tid();
	struct pr_pending p = { .args = { path, flags }, .syscall = syscall };

	if (!tracked_tid(tid))
		return 0;
	bpf_map_update_elem(&pending, &tid, &p, BPF_ANY);
	return 0;
}

/* The flags as passed. openat2's live in user memory, read now that the kernel has copied them
 * (at entry an untouched page reads as zero: an append open would look like a read). */
static __always_inline __u32 passed_flags(struct pr_pending *p)
{
	struct open_how how = {};

	if (p->syscall != PR_SYS_OPENAT2)
		return p->args[1];
	bpf_probe_read_user(&how, sizeof(how), (void *)p->args[1]);
	return how.flags;
}

/* Fill ev from the file the kernel opened (what it granted, not what user memory says now: a
 * thread may rewrite an openat2 how after the kernel copied it) and emit it. */
static __always_inline void emit_opened(struct pr_open *ev, struct file *f, long ret, __u32 passed,
					__u32 syscall)
{
	__u32 trunc = 0, len, size;

	ev->ret = ret;
	ev->syscall = syscall;
	/* The kernel adds O_LARGEFILE by itself; the bits it drops come from the caller. */
	ev->flags = (BPF_CORE_READ(f, f_flags) & ~(PR_O_DROPPED | PR_O_LARGEFILE)) |
		    (passed & (PR_O_DROPPED | PR_O_LARGEFILE));
	if (BPF_CORE_READ(f, f_mode) & PR_FMODE_CREATED)
		ev->flags |= PR_O_CREAT;
	ev->dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
	ev->ino = BPF_CORE_READ(f, f_inode, i_ino);
	len = copy_path(&f->f_path, ev->data, &trunc);
	ev->path_len = len & (PR_PATH_MAX - 1);
	ev->path_truncated = trunc;
	size = offsetof(struct pr_open, data) + (len & (PR_PATH_MAX - 1));
	fill_hdr(&ev->hdr, PR_EV_OPEN, size);
	struct pr_file_key key = { .dev = ev->dev, .ino = ev->ino };

	if (bpf_map_lookup_elem(&watch_open, &key))
		emit_to(&events_hi, ev, size, PR_EV_OPEN);
	else
		emit(ev, size, PR_EV_OPEN);
}

static __always_inline int open_exit(long ret)
{
	__u32 tid = current_tid();
	struct pr_pending *p = bpf_map_lookup_elem(&pending, &tid);
	struct pr_open *ev;
	__u32 len, size, passed;
	long n;

	if (!p)
		return 0;
	if (p->syscall != PR_SYS_OPEN_BY_HANDLE && (p->syscall > PR_SYS_CREAT || p->syscall < PR_SYS_OPEN))
		goto out; /* another syscall's entry (it cannot be: one syscall at a time per thread) */
	if (ret < 0 && ret != -EACCES && ret != -EPERM)
		goto out; /* ENOENT and friends: too common to be worth a record */
	ev = scratch_buf();
	if (!ev)
		goto out;
	passed = passed_flags(p);
	if (ret >= 0) {
		struct file *f = fd_file(ret);

		if (f)
			emit_opened(ev, f, ret, passed, p->syscall);
		goto out;
	}
	/* Refused: nothing was resolved; report what the caller asked for. */
	ev->ret = ret;
	ev->flags = passed;
	ev->syscall = p->syscall;
	ev->dev = 0;
	ev->ino = 0;
	n = bpf_probe_read_user_str(ev->data, PR_PATH_MAX, (void *)p->args[0]);
	len = n > 0 ? n - 1 : 0;
	ev->path_len = len & (PR_PATH_MAX - 1);
	ev->path_truncated = 0;
	size = offsetof(struct pr_open, data) + (len & (PR_PATH_MAX - 1));
	fill_hdr(&ev->hdr, PR_EV_OPEN, size);
	emit(ev, size, PR_EV_OPEN);
out:
	bpf_map_delete_elem(&pending, &tid);
	return 0;
}

SEC("tp/syscalls/sys_enter_openat")
int pr_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	return open_enter(ctx->args[1], ctx->args[2], PR_SYS_OPENAT);
}

SEC("tp/syscalls/sys_enter_open")
int pr_enter_open(struct trace_event_raw_sys_enter *ctx)
{
	return open_enter(ctx->args[0], ctx->args[1], PR_SYS_OPEN);
}

SEC("tp/syscalls/sys_enter_creat")
int pr_enter_creat(struct trace_event_raw_sys_enter *ctx)
{
	return open_enter(ctx->args[0], O_CREAT_WRONLY_TRUNC, PR_SYS_CREAT);
}

SEC("tp/syscalls/sys_enter_openat2")
int pr_enter_openat2(struct trace_event_raw_sys_enter *ctx)
{
	return open_enter(ctx->args[1], ctx->args[2], PR_SYS_OPENAT2);
}

SEC("tp/syscalls/sys_exit_openat")
int pr_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret);
}

SEC("tp/syscalls/sys_exit_open")
int pr_exit_open(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret);
}

SEC("tp/syscalls/sys_exit_creat")
int pr_exit_creat(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret);
}

SEC("tp/syscalls/sys_exit_openat2")
int pr_exit_openat2(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret);
}

/* open_by_handle_at names no path: the file is resolved at exit like any other open. */
SEC("tp/syscalls/sys_enter_open_by_handle_at")
int pr_enter_open_by_handle_at(struct trace_event_raw_sys_enter *ctx)
{
	return open_enter(0, ctx->args[2], PR_SYS_OPEN_BY_HANDLE);
}

SEC("tp/syscalls/sys_exit_open_by_handle_at")
int pr_exit_open_by_handle_at(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret);
}
