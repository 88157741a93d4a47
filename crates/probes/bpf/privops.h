/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Calls that change the kernel or the whole host's view, attempted by a tracked thread (PR_EV_PRIV,
 * the PR_EV_PATH layout): loading or removing kernel code (init_module, finit_module,
 * delete_module, kexec_load, kexec_file_load), restarting the machine (reboot), setting the
 * clock (settimeofday, clock_settime, and adjtimex or clock_adjtime when they set), swap, what
 * paths name (mount, umount, move_mount, mount_setattr, pivot_root, chroot), namespaces (setns,
 * unshare), bpf(), and what makes a file run with privilege it was not given by its runner (a
 * set-user-ID or set-group-ID mode, file capabilities). A root agent
 * calling finit_module through ctypes runs no insmod whose name a rule could match; a bind
 * mount over /proc/PID or a binary hides or replaces what every other process sees; os.chmod
 * of a copy of bash to 4755 leaves a root shell behind with no `chmod u+s` in any argv. Recorded
 * refused or not (an attempt is what matters), with the caller's mount and user namespaces, so
 * a sandbox's mounts and chroot in namespaces of its own are told from the host's. Each call is
 * rare: an untracked caller costs one program run, and no common syscall is hooked. */
#pragma once

#include "pathops.h"
#include "ptrace.h"

/* p1/dfd1: the object's path argument and its directory argument (p1 PR_PART_FD: dfd1 is an fd
 * argument whose file is the object; p1 PR_NO_ARG: none); p2/dfd2 the second part's; flags_arg
 * the argument kept in flags. Paths are kept as passed (dfd PR_TEXT): resolving a relative
 * one's directory walks a path in the kernel, and each such walk made a program's
 * verification ~20-40 ms longer at start (measured: `run -- true` +0.2 s with them); none of
 * the judgements on these calls depends on the path. */
static __always_inline int priv_call_flags(long ret, __u32 syscall, int dfd1, int p1, int dfd2,
					   int p2, int flags_arg, __u32 flags)
{
	struct task_struct *task;
	struct pr_args a;
	struct pr_path *ev;
	__u32 off = 0;

	if (!tracked_tid(current_tid()))
		return 0;
	task = bpf_get_current_task_btf();
	/* proctor's own child between fork and exec (`run`): it joins the tracked set with bpf()
	 * before it execs the agent. Its exec numbers say it has not exec'd since the fork. */
	if (pr_self_tgid && BPF_CORE_READ(task, real_parent, tgid) == pr_self_tgid &&
	    task->self_exec_id == task->parent_exec_id)
		return 0;
	ev = path_start(&a, syscall, 0, flags_arg);
	if (!ev)
		return 0;
	ev->ret = ret;
	ev->flags |= flags;
	ev->mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	ev->user_ns = BPF_CORE_READ(task, cred, user_ns, ns.inum);
	if (p1 == PR_PART_FD) {
		off = put_fd_part(ev, 0, 0, pr_arg(&a, dfd1));
	} else if (p1 != PR_NO_ARG) {
		off = put_name(ev, &a, 0, 0, dfd1, p1);
	} else {
		ev->len[0] = 0;
		ev->len[1] = 0;
	}
	put_second_and_send(ev, &a, off, dfd2, p2, PR_EV_PRIV, 1);
	return 0;
}

static __always_inline int priv_call(long ret, __u32 syscall, int dfd1, int p1, int dfd2, int p2,
				     int flags_arg)
{
	return priv_call_flags(ret, syscall, dfd1, p1, dfd2, p2, flags_arg, 0);
}

/* A call with no path whose flags are a value the caller read (adjtimex's modes). */
static __always_inline int priv_call_modes(long ret, __u32 syscall, __u32 modes)
{
	return priv_call_flags(ret, syscall, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG,
			       modes);
}

#define PRIV_EXIT(name, sys, dfd1, p1, dfd2, p2, fl)                                  \
	SEC("tp/syscalls/sys_exit_" #name)                                            \
	int pr_exit_##name(struct trace_event_raw_sys_exit *ctx)                      \
	{                                                                             \
		return priv_call(ctx->ret, sys, dfd1, p1, dfd2, p2, fl);              \
	}

PRIV_EXIT(init_module, PR_SYS_INIT_MODULE, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG)
PRIV_EXIT(finit_module, PR_SYS_FINIT_MODULE, 0, PR_PART_FD, PR_NO_ARG, PR_NO_ARG, 2)
PRIV_EXIT(delete_module, PR_SYS_DELETE_MODULE, PR_TEXT, 0, PR_NO_ARG, PR_NO_ARG, 1)
PRIV_EXIT(kexec_load, PR_SYS_KEXEC_LOAD, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, 3)
PRIV_EXIT(kexec_file_load, PR_SYS_KEXEC_FILE_LOAD, 0, PR_PART_FD, PR_NO_ARG, PR_NO_ARG, 4)
PRIV_EXIT(settimeofday, PR_SYS_SETTIMEOFDAY, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG)
PRIV_EXIT(clock_settime, PR_SYS_CLOCK_SETTIME, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, 0)
PRIV_EXIT(swapon, PR_SYS_SWAPON, PR_TEXT, 0, PR_NO_ARG, PR_NO_ARG, 1)
PRIV_EXIT(swapoff, PR_SYS_SWAPOFF, PR_TEXT, 0, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG)
PRIV_EXIT(mount, PR_SYS_MOUNT, PR_TEXT, 1, PR_TEXT, 0, 3)
PRIV_EXIT(umount, PR_SYS_UMOUNT, PR_TEXT, 0, PR_NO_ARG, PR_NO_ARG, 1)
PRIV_EXIT(move_mount, PR_SYS_MOVE_MOUNT, PR_TEXT, 3, PR_TEXT, 1, 4)
PRIV_EXIT(mount_setattr, PR_SYS_MOUNT_SETATTR, PR_TEXT, 1, PR_NO_ARG, PR_NO_ARG, 2)
PRIV_EXIT(pivot_root, PR_SYS_PIVOT_ROOT, PR_TEXT, 0, PR_TEXT, 1, PR_NO_ARG)
PRIV_EXIT(chroot, PR_SYS_CHROOT, PR_TEXT, 0, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG)
PRIV_EXIT(setns, PR_SYS_SETNS, 0, PR_PART_FD, PR_NO_ARG, PR_NO_ARG, 1)
PRIV_EXIT(unshare, PR_SYS_UNSHARE, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, 0)
PRIV_EXIT(bpf, PR_SYS_BPF, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, 0)

/* adjtimex(buf) and clock_adjtime(clock, buf) set the clock when struct timex's first member,
 * `modes`, asks for it (ADJ_SETOFFSET steps it; ADJ_OFFSET, ADJ_FREQUENCY and ADJ_TICK slew it):
 * recorded with the modes in flags. Reads of the clock's state (modes 0: ntp_gettime, chrony's
 * and timedatectl's queries; ADJ_OFFSET_SS_READ: adjtime()'s) are not. A buffer that cannot be
 * read is recorded (modes 0; the call returns EFAULT). */
#define PR_ADJ_OFFSET_SS_READ 0xa001

static __always_inline int adj_call(long ret, __u32 syscall, int timex_arg)
{
	struct pr_args a;
	__u32 modes = 0;

	if (!tracked_tid(current_tid()))
		return 0;
	syscall_args(&a);
	if (bpf_probe_read_user(&modes, sizeof(modes), (void *)pr_arg(&a, timex_arg)) == 0 &&
	    (modes == 0 || modes == PR_ADJ_OFFSET_SS_READ))
		return 0;
	return priv_call_modes(ret, syscall, modes);
}

SEC("tp/syscalls/sys_exit_adjtimex")
int pr_exit_adjtimex(struct trace_event_raw_sys_exit *ctx)
{
	return adj_call(ctx->ret, PR_SYS_ADJTIMEX, 0);
}

SEC("tp/syscalls/sys_exit_clock_adjtime")
int pr_exit_clock_adjtime(struct trace_event_raw_sys_exit *ctx)
{
	return adj_call(ctx->ret, PR_SYS_CLOCK_ADJTIME, 1);
}

/* reboot at entry: a restart that succeeds does not return. */
SEC("tp/syscalls/sys_enter_reboot")
int pr_enter_reboot(struct trace_event_raw_sys_enter *ctx)
{
	return priv_call(0, PR_SYS_REBOOT, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, 2);
}

/* The chmod family with a set-user-ID or set-group-ID bit in the mode (flags: the mode's low 12
 * bits): a copy of a shell made setuid root stays a way back to root after the agent is gone
 * (T1548.001). Any other mode returns at once: `chmod +x` is every build's work. One program
 * attached to the four calls (the sensor attaches it to fchmod, fchmodat and fchmodat2 besides
 * its own); a path names the file as the kernel resolves it from the dfd or the working
 * directory, fchmod's fd the file it holds. */
#define PR_S_ISID 06000

SEC("tp/syscalls/sys_exit_chmod")
int pr_exit_chmod_any(struct trace_event_raw_sys_exit *ctx)
{
	struct pr_args a;
	__u32 sys, mode;
	int dfd, p, m;

	switch (ctx->id) {
	case 90: /* chmod(path, mode) */
		sys = PR_SYS_CHMOD, dfd = PR_NO_ARG, p = 0, m = 1;
		break;
	case 91: /* fchmod(fd, mode) */
		sys = PR_SYS_FCHMOD, dfd = 0, p = PR_PART_FD, m = 1;
		break;
	case 268: /* fchmodat(dfd, path, mode) */
		sys = PR_SYS_FCHMODAT, dfd = 0, p = 1, m = 2;
		break;
	case 452: /* fchmodat2(dfd, path, mode, flags) */
		sys = PR_SYS_FCHMODAT2, dfd = 0, p = 1, m = 2;
		break;
	default:
		return 0;
	}
	if (!tracked_tid(current_tid()))
		return 0;
	syscall_args(&a);
	barrier_var(m);
	mode = (__u32)pr_arg(&a, m);
	if (!(mode & PR_S_ISID))
		return 0;
	barrier_var(sys);
	barrier_var(dfd);
	barrier_var(p);
	return priv_call_flags(ctx->ret, sys, dfd, p, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG,
			       mode & 07777);
}

/* The setxattr family setting `security.capability`: file capabilities (`setcap
 * cap_setuid+ep`), which a process running the file gains whatever its user (T1548). Other
 * attributes (user.*, a desktop's tags, SELinux labels) return at once. One program attached to
 * the four calls; flags: the call's XATTR_* flags. */
SEC("tp/syscalls/sys_exit_setxattr")
int pr_exit_setxattr_any(struct trace_event_raw_sys_exit *ctx)
{
	static const char cap[] = "security.capability";
	char name[sizeof(cap)];
	struct pr_args a;
	__u32 sys;
	int dfd, p, n, fl;

	switch (ctx->id) {
	case 188: /* setxattr(path, name, value, size, flags) */
		sys = PR_SYS_SETXATTR, dfd = PR_NO_ARG, p = 0, n = 1, fl = 4;
		break;
	case 189: /* lsetxattr(path, name, value, size, flags) */
		sys = PR_SYS_LSETXATTR, dfd = PR_NO_ARG, p = 0, n = 1, fl = 4;
		break;
	case 190: /* fsetxattr(fd, name, value, size, flags) */
		sys = PR_SYS_FSETXATTR, dfd = 0, p = PR_PART_FD, n = 1, fl = 4;
		break;
	case 463: /* setxattrat(dfd, path, at_flags, name, args, size) */
		sys = PR_SYS_SETXATTRAT, dfd = 0, p = 1, n = 3, fl = 2;
		break;
	default:
		return 0;
	}
	if (!tracked_tid(current_tid()))
		return 0;
	syscall_args(&a);
	barrier_var(n);
	if (bpf_probe_read_user_str(name, sizeof(name), (void *)pr_arg(&a, n)) != sizeof(cap))
		return 0;
	for (int i = 0; i < sizeof(cap); i++)
		if (name[i] != cap[i])
			return 0;
	barrier_var(sys);
	barrier_var(dfd);
	barrier_var(p);
	barrier_var(fl);
	return priv_call(ctx->ret, sys, dfd, p, PR_NO_ARG, PR_NO_ARG, fl);
}

/* The utime family given times the caller chose (flags: PR_TIMES_ATIME, PR_TIMES_MTIME, which
 * of the two): `touch -r /bin/sh F`, `touch -t 197001010000 F`, os.utime(F, (t, t)) make a file
 * the tree changed look as old as its neighbours (T1070.006). A NULL times argument is "now",
 * every plain `touch`'s and every build's: not recorded. utimensat's times that read as
 * UTIME_NOW or UTIME_OMIT are recorded with neither bit (and PR_TIMES_MTIME_NOW when the
 * mtime read as now): they are read from the caller's memory here, after the kernel copied
 * them, and another thread can rewrite them in between; userspace reads the file's times to
 * see what was set. A times argument that cannot be read is recorded as both given (the call
 * fails with EFAULT). One program attached to the four calls (the sensor attaches it
 * to futimesat, utimes and utime besides its own); utimensat with no path (futimens, which GNU
 * touch uses on the file it opened) names the file its descriptor holds. */
#define PR_TIMES_ATIME 1
#define PR_TIMES_MTIME 2
#define PR_TIMES_MTIME_NOW 4
#define PR_UTIME_NOW ((1L << 30) - 1L)
#define PR_UTIME_OMIT ((1L << 30) - 2L)

static __always_inline __u32 chosen_time(__s64 nsec, __u32 bit)
{
	return nsec == PR_UTIME_NOW || nsec == PR_UTIME_OMIT ? 0 : bit;
}

SEC("tp/syscalls/sys_exit_utimensat")
int pr_exit_utimes_any(struct trace_event_raw_sys_exit *ctx)
{
	struct pr_args a;
	__u32 sys, given = PR_TIMES_ATIME | PR_TIMES_MTIME;
	int dfd, p, t;
	__s64 ts[4];

	switch (ctx->id) {
	case 280: /* utimensat(dfd, path, times[2] timespec, flags) */
		sys = PR_SYS_UTIMENSAT, dfd = 0, p = 1, t = 2;
		break;
	case 261: /* futimesat(dfd, path, times[2] timeval) */
		sys = PR_SYS_FUTIMESAT, dfd = 0, p = 1, t = 2;
		break;
	case 235: /* utimes(path, times[2] timeval) */
		sys = PR_SYS_UTIMES, dfd = PR_NO_ARG, p = 0, t = 1;
		break;
	case 132: /* utime(path, utimbuf) */
		sys = PR_SYS_UTIME, dfd = PR_NO_ARG, p = 0, t = 1;
		break;
	default:
		return 0;
	}
	if (!tracked_tid(current_tid()))
		return 0;
	syscall_args(&a);
	barrier_var(t);
	if (!pr_arg(&a, t))
		return 0; /* now */
	/* Only utimensat can say "now" or "leave it" per time; the others' values are times. */
	if (sys == PR_SYS_UTIMENSAT &&
	    !bpf_probe_read_user(ts, sizeof(ts), (void *)pr_arg(&a, t))) {
		given = chosen_time(ts[1], PR_TIMES_ATIME) | chosen_time(ts[3], PR_TIMES_MTIME) |
			(ts[3] == PR_UTIME_NOW ? PR_TIMES_MTIME_NOW : 0);
	}
	/* utimensat(fd, NULL, ...): the file the descriptor holds. */
	if (sys == PR_SYS_UTIMENSAT && !pr_arg(&a, 1))
		p = PR_PART_FD;
	barrier_var(sys);
	barrier_var(dfd);
	barrier_var(p);
	return priv_call_flags(ctx->ret, sys, dfd, p, PR_NO_ARG, PR_NO_ARG, PR_NO_ARG, given);
}
