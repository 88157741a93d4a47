/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* ptrace attach/seize/traceme whenever the tracer or the target is tracked. This hook runs for
 * every process on the host (an untracked tracer may target the agent), but ptrace is rare. */
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

SEC("tp/syscalls/sys_enter_ptrace")
int pr_enter_ptrace(struct trace_event_raw_sys_enter *ctx)
{
	long request = ctx->args[0];
	__u32 target = ctx->args[1];
	struct pr_ptrace ev = {};

	if (request != PTRACE_ATTACH && request != PTRACE_SEIZE && request != PTRACE_TRACEME)
		return 0;
	if (request == PTRACE_TRACEME) {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();

		target = BPF_CORE_READ(task, real_parent, tgid);
	}
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
	if (request != PTRACE_TRACEME) /* then target is the parent's host tgid */
		ev.tracer_pid_ns = current_pid_ns();
	fill_hdr(&ev.hdr, PR_EV_PTRACE, sizeof(ev));
	emit_urgent(&ev, sizeof(ev), PR_EV_PTRACE);

	/* Blocked: the tracer is killed before this syscall returns, so it never uses the attach;
	 * the kernel detaches the tracee when the tracer dies (userspace then resumes a tracee that
	 * PTRACE_ATTACH's SIGSTOP left stopped). */
	struct pr_config *cfg = get_config();

	/* Where BPF LSM is attached, ptrace_access_check decides (EPERM) after this entry hook. */
	if (cfg && cfg->block_ptrace && !lsm_decides(cfg) && request != PTRACE_TRACEME) {
		struct pr_decision d = { .target_pid = target, .layer = PR_LAYER_TRACEPOINT };

		enforce_kill(decide(cfg, &d, PR_WHAT_PTRACE));
	}
	return 0;
}
