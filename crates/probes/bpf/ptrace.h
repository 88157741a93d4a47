/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* ptrace attach/seize/traceme whenever the tracer or the target is tracked, and the other ways
 * into another process that the kernel grants on the same attach permission
 * (PTRACE_MODE_ATTACH_REALCREDS): process_vm_readv/writev and pidfd_getfd. These hooks run for
 * every process on the host (an untracked tracer may target the agent), but the calls are rare.
 * Opens of /proc/PID/mem are file_open records; detection reads their paths. */
#pragma once

#include "lib/common.h"
#include "enforce.h"

#define PTRACE_TRACEME 0
#define PTRACE_ATTACH 16
#define PTRACE_SEIZE 0x4206

/* The inode of the current task's PID namespace, or 0 for the initial one (level 0). */
static __always_inline __u32 current_pid_ns(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid up = {};

	if (level == 0 || level > 32)
		return 0;
	bpf_probe_read_kernel(&up, sizeof(up),
			      (void *)pid + bpf_core_field_offset(struct pid, numbers) +
				      level * sizeof(struct upid));
	return BPF_CORE_READ(up.ns, ns.inum);
}

/* proctor's own process (set before load): its seccomp supervisor reads the agent's memory
 * (process_vm_readv) and takes copies of its descriptors (pidfd_getfd) to judge a held call;
 * those are not the agent's requests, and proctor must never be the tracer it kills. */
const volatile __u32 pr_self_tgid = 0;

/* Record a request onto `target` (a pid as the caller passed it) when the caller or the target
 * is tracked, and in enforce mode without BPF LSM kill the caller for an attach-mode one. */
static __always_inline int ptrace_request(long request, __u32 target)
{
	struct pr_ptrace ev = {};

	if (pr_self_tgid && (__u32)(bpf_get_current_pid_tgid() >> 32) == pr_self_tgid)
		return 0;
	if (tracked_tid(current_tid()))
		ev.tracer_tracked = 1;
	if (tracked_tid(target))
		ev.target_tracked = 1;
	/* Keep the compiler from merging the two tests into a pointer OR, which the verifier
	 * refuses. */
	barrier_var(ev.tracer_tracked);
	if (!ev.tracer_tracked && !ev.target_tracked)
		return 0;
	ev.request = request;
	ev.target_pid = target;
	/* traceme names the parent's host tgid and a pidfd its process's host pid; the others a
	 * pid as the caller sees it */
	if (request != PTRACE_TRACEME && request != PR_PTRACE_PIDFD_GETFD)
		ev.tracer_pid_ns = current_pid_ns();
	fill_hdr(&ev.hdr, PR_EV_PTRACE, sizeof(ev));
	emit_urgent(&ev, sizeof(ev), PR_EV_PTRACE);

	/* Blocked: the tracer is killed before this syscall returns, so it never uses the attach,
	 * the memory it read or the descriptor it took; the kernel detaches the tracee when the
	 * tracer dies (userspace then resumes a tracee that PTRACE_ATTACH's SIGSTOP left stopped).
	 * A process_vm_writev has written by then: only BPF LSM (or, for `run`, Landlock's scope
	 * onto processes outside the tree) refuses it before it acts. */
	struct pr_config *cfg = get_config();

	/* Where BPF LSM is attached, ptrace_access_check decides (EPERM) after this entry hook. */
	if (cfg && cfg->block_ptrace && !lsm_decides(cfg) && request != PTRACE_TRACEME) {
		struct pr_decision d = { .target_pid = target, .layer = PR_LAYER_TRACEPOINT };

		enforce_kill(decide(cfg, &d, PR_WHAT_PTRACE));
	}
	return 0;
}

SEC("tp/syscalls/sys_enter_ptrace")
int pr_enter_ptrace(struct trace_event_raw_sys_enter *ctx)
{
	long request = ctx->args[0];
	__u32 target = ctx->args[1];

	if (request != PTRACE_ATTACH && request != PTRACE_SEIZE && request != PTRACE_TRACEME)
		return 0;
	if (request == PTRACE_TRACEME) {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();

		target = BPF_CORE_READ(task, real_parent, tgid);
	}
	return ptrace_request(request, target);
}

/* A process's own memory (a crash handler probing its pages) is not another process's: the
 * host pid is compared here, a pid inside a namespace by userspace after translation. */
static __always_inline int is_self(__u32 target)
{
	__u64 id = bpf_get_current_pid_tgid();

	return target == (__u32)(id >> 32) || target == (__u32)id;
}

SEC("tp/syscalls/sys_enter_process_vm_readv")
int pr_enter_vm_readv(struct trace_event_raw_sys_enter *ctx)
{
	__u32 target = ctx->args[0];

	return is_self(target) ? 0 : ptrace_request(PR_PTRACE_VM_READV, target);
}

SEC("tp/syscalls/sys_enter_process_vm_writev")
int pr_enter_vm_writev(struct trace_event_raw_sys_enter *ctx)
{
	__u32 target = ctx->args[0];

	return is_self(target) ? 0 : ptrace_request(PR_PTRACE_VM_WRITEV, target);
}

#define PR_PIDFS_MAGIC 0x50494446      /* pidfs (Linux 6.9 and later) */
#define PR_ANON_INODE_MAGIC 0x09041934 /* anon_inodefs, where a pidfd is "[pidfd]" before 6.9 */

/* The host pid a pidfd of the current task refers to, or 0 when the descriptor is not a pidfd. */
static __always_inline __u32 pidfd_pid(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	unsigned long magic;
	char name[8] = {};

	if (fd < 0 || fd >= (int)BPF_CORE_READ(fdt, max_fds))
		return 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	magic = BPF_CORE_READ(f, f_path.dentry, d_sb, s_magic);
	if (magic == PR_ANON_INODE_MAGIC) {
		bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(f, f_path.dentry, d_name.name));
		if (name[0] != '[' || name[1] != 'p' || name[2] != 'i' || name[3] != 'd' ||
		    name[4] != 'f' || name[5] != 'd' || name[6] != ']')
			return 0;
	} else if (magic != PR_PIDFS_MAGIC) {
		return 0;
	}
	/* pidfs keeps the struct pid in its inode (i_private) in later kernels, in the file before
	 * them and on anon_inodefs. */
	struct pid *pid = magic == PR_PIDFS_MAGIC ? BPF_CORE_READ(f, f_inode, i_private) : NULL;

	if (!pid)
		pid = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(pid, numbers[0].nr);
}

/* A signal a tracked process sends to one process outside the tree: killing, stopping or poking
 * a process the agent did not start (a security daemon, the user's editor, proctor's daemon)
 * crosses the tree's edge as an attach does. Read at entry, before a SIGKILL can end the target
 * or the reader. Signal 0 (an existence probe), process groups (pid <= 0) and the tree's own
 * processes are not recorded; inside a PID namespace the pid is the caller's view and userspace
 * translates it (and drops the tree's own). `host`: target is a host pid (from a pidfd). */
static __always_inline int signal_request(long request, long target, long sig, int host)
{
	struct pr_ptrace ev = {};

	if (sig <= 0 || target <= 0 || target > 0x3fffffff)
		return 0;
	if (!tracked_tid(current_tid()))
		return 0;
	ev.tracer_pid_ns = host ? 0 : current_pid_ns();
	if (!ev.tracer_pid_ns && (is_self(target) || tracked_tid(target)))
		return 0;
	ev.tracer_tracked = 1;
	ev.request = request;
	ev.target_pid = target;
	ev.signal = sig;
	fill_hdr(&ev.hdr, PR_EV_PTRACE, sizeof(ev));
	emit_urgent(&ev, sizeof(ev), PR_EV_PTRACE);
	return 0;
}

SEC("tp/syscalls/sys_enter_kill")
int pr_enter_kill(struct trace_event_raw_sys_enter *ctx)
{
	return signal_request(PR_PTRACE_KILL, ctx->args[0], ctx->args[1], 0);
}

SEC("tp/syscalls/sys_enter_tkill")
int pr_enter_tkill(struct trace_event_raw_sys_enter *ctx)
{
	return signal_request(PR_PTRACE_TKILL, ctx->args[0], ctx->args[1], 0);
}

SEC("tp/syscalls/sys_enter_tgkill")
int pr_enter_tgkill(struct trace_event_raw_sys_enter *ctx)
{
	return signal_request(PR_PTRACE_TGKILL, ctx->args[1], ctx->args[2], 0);
}

SEC("tp/syscalls/sys_enter_rt_sigqueueinfo")
int pr_enter_sigqueue(struct trace_event_raw_sys_enter *ctx)
{
	return signal_request(PR_PTRACE_SIGQUEUE, ctx->args[0], ctx->args[1], 0);
}

SEC("tp/syscalls/sys_enter_rt_tgsigqueueinfo")
int pr_enter_tgsigqueue(struct trace_event_raw_sys_enter *ctx)
{
	return signal_request(PR_PTRACE_TGSIGQUEUE, ctx->args[1], ctx->args[2], 0);
}

SEC("tp/syscalls/sys_enter_pidfd_send_signal")
int pr_enter_pidfd_signal(struct trace_event_raw_sys_enter *ctx)
{
	__u32 target = pidfd_pid(ctx->args[0]);

	return target ? signal_request(PR_PTRACE_PIDFD_SIGNAL, target, ctx->args[1], 1) : 0;
}

SEC("tp/syscalls/sys_enter_pidfd_getfd")
int pr_enter_pidfd_getfd(struct trace_event_raw_sys_enter *ctx)
{
	__u32 target = pidfd_pid(ctx->args[0]);

	/* A descriptor that is no pidfd fails with EBADF; one of the caller itself takes nothing. */
	if (!target || is_self(target))
		return 0;
	return ptrace_request(PR_PTRACE_PIDFD_GETFD, target);
}
