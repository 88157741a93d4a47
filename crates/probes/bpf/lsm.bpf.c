/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* BPF LSM enforcement: a separate object, because kernels without BPF LSM (ours: every program
 * that needs a trampoline is refused) must still load the main one. Userspace loads it only when
 * the kernel allows it, after pointing its maps at the main object's (bpf_map__reuse_fd): the
 * tracked set, the config, the deny/allow maps and the ring buffer are one set of state, so the
 * mode switches and decision records work exactly as for the tracepoint and cgroup layers.
 *
 * Each hook acts for tracked tasks only and returns -EPERM where the tracepoint layer would kill
 * (exec, ptrace) or the cgroup layer would refuse (connect), before the action happens:
 * - bprm_check_security: the binary about to run (and each interpreter of a script) by dev+ino;
 * - ptrace_access_check: any attach-mode access (PTRACE_ATTACH/SEIZE, /proc/PID/mem,
 *   process_vm_readv/writev, pidfd_getfd) by or onto a tracked task;
 * - socket_connect: a destination outside the allow maps, per task, so it also holds for an
 *   attached agent or a process that left the agent's cgroup;
 * - file_open: a sensitive file, by dev+ino (deny_open, filled by userspace at start). */
#include "lib/common.h"
#include "enforce.h"

#define PTRACE_MODE_ATTACH 0x02

/* Sensitive files for file_open, by identity. Only this object uses it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pr_file_key);
	__type(value, __u32);
} deny_open SEC(".maps");

static __always_inline int lsm_verdict(struct pr_decision *d, __u32 what)
{
	d->layer = PR_LAYER_LSM;
	return decide(get_config(), d, what) == PR_VERDICT_BLOCKED ? -EPERM : 0;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(pr_lsm_exec, struct linux_binprm *bprm, int ret)
{
	struct pr_file_key key;
	struct file *file;

	if (ret)
		return ret; /* an earlier program refused already */
	if (!tracked_tid(current_tid()))
		return 0;
	file = BPF_CORE_READ(bprm, file);
	key.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	key.ino = BPF_CORE_READ(file, f_inode, i_ino);
	if (!exec_denied(&key))
		return 0;

	struct pr_decision d = { .dev = key.dev, .ino = key.ino };

	return lsm_verdict(&d, PR_WHAT_EXEC);
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(pr_lsm_ptrace, struct task_struct *child, unsigned int mode, int ret)
{
	struct pr_config *cfg;
	struct pr_task *tracer, *tracee;
	__u32 target;

	if (ret)
		return ret;
	/* Read-mode checks (/proc/PID/stat, environ, kcmp) are not attaches. */
	if (!(mode & PTRACE_MODE_ATTACH))
		return 0;
	cfg = get_config();
	if (!cfg || !cfg->block_ptrace)
		return 0;
	target = BPF_CORE_READ(child, pid);
	tracer = tracked_tid(current_tid());
	tracee = tracked_tid(target);
	/* Separate tests: a merged `tracer | tracee` is a pointer OR, which the verifier refuses. */
	barrier_var(tracer);
	if (!tracer) {
		barrier_var(tracee);
		if (!tracee)
			return 0;
	}

	struct pr_decision d = { .target_pid = target };

	return lsm_verdict(&d, PR_WHAT_PTRACE);
}

SEC("lsm/socket_connect")
int BPF_PROG(pr_lsm_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	struct pr_decision d = { .layer = PR_LAYER_LSM };
	struct pr_config *cfg;
	struct pr_task *t;
	__u16 family;
	__u32 verdict;

	if (ret)
		return ret;
	t = tracked_tid(current_tid());
	if (!t)
		return 0;
	t->flags &= ~PR_TASK_NET_DECIDED;
	cfg = get_config();
	if (!cfg || (!cfg->isolate && !cfg->block_net))
		return 0;
	family = BPF_CORE_READ(address, sa_family);
	if (family == AF_INET) {
		struct sockaddr_in sin = {};

		if (addrlen < (int)sizeof(sin))
			return 0; /* the kernel refuses it with EINVAL */
		bpf_probe_read_kernel(&sin, sizeof(sin), address);
		if (!cfg->isolate && net_allowed4(sin.sin_addr.s_addr, sin.sin_port))
			return 0;
		d.family = AF_INET;
		__builtin_memcpy(d.addr, &sin.sin_addr.s_addr, 4);
		d.port = bpf_ntohs(sin.sin_port);
	} else if (family == AF_INET6) {
		struct sockaddr_in6 sin6 = {};
		__u32 ip6[4];

		if (addrlen < (int)sizeof(sin6))
			return 0;
		bpf_probe_read_kernel(&sin6, sizeof(sin6), address);
		__builtin_memcpy(ip6, &sin6.sin6_addr, 16);
		if (!cfg->isolate && net_allowed6(ip6, sin6.sin6_port))
			return 0;
		d.family = AF_INET6;
		__builtin_memcpy(d.addr, ip6, 16);
		d.port = bpf_ntohs(sin6.sin6_port);
	} else {
		return 0; /* unix sockets, AF_UNSPEC disconnects: not egress */
	}
	if (cfg->isolate)
		verdict = record_decision(&d, PR_WHAT_CONNECT, PR_VERDICT_BLOCKED);
	else
		verdict = decide(cfg, &d, PR_WHAT_CONNECT);
	if (verdict)
		t->flags |= PR_TASK_NET_DECIDED;
	return verdict == PR_VERDICT_BLOCKED ? -EPERM : 0;
}

SEC("lsm/file_open")
int BPF_PROG(pr_lsm_open, struct file *file, int ret)
{
	struct pr_file_key key;

	if (ret)
		return ret;
	if (!tracked_tid(current_tid()))
		return 0;
	key.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	key.ino = BPF_CORE_READ(file, f_inode, i_ino);
	if (!bpf_map_lookup_elem(&deny_open, &key))
		return 0;

	/* EPERM, not Landlock's EACCES: userspace infers Landlock refusals from EACCES, so a
	 * refusal by this hook is recorded once, by the hook. */
	struct pr_decision d = { .dev = key.dev, .ino = key.ino };

	return lsm_verdict(&d, PR_WHAT_OPEN);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
