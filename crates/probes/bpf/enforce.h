/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Enforcement: shared state and the decision helpers, used by the main object's hooks and by the
 * BPF LSM object (lsm.bpf.c), which reuses these maps. Exec and ptrace decisions are taken in their
 * own hooks (process.h, ptrace.h; lsm.bpf.c where the kernel allows BPF LSM). Without BPF LSM a
 * forbidden exec or ptrace is stopped by SIGKILL from the tracepoint (the process dies before it
 * returns to user space and can use the result); network egress is refused by the cgroup-bpf
 * programs of cgroup.h, and by lsm.bpf.c's socket_connect as a second, per-task layer. */
#pragma once

#include "lib/common.h"

#define SIGKILL 9

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pr_config);
} pr_config_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct pr_file_key);
	__type(value, __u32);
} deny_exec SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pr_allow4_key);
	__type(value, __u32);
} allow4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pr_allow6_key);
	__type(value, __u32);
} allow6 SEC(".maps");

static __always_inline struct pr_config *get_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&pr_config_map, &zero);
}

/* Userspace sets pr_config.lsm when lsm.bpf.c is attached: it then decides exec and ptrace, and
 * the tracepoints only observe. */
static __always_inline int lsm_decides(struct pr_config *cfg)
{
	return cfg && cfg->lsm;
}

/* The socket_connect LSM hook runs before the cgroup connect hooks of the same connect(); when it
 * recorded a decision on it, it marks the thread, and the cgroup layer gives the same verdict
 * without recording it twice (enforce mode never gets there: the LSM refused the call). */
#define PR_TASK_NET_DECIDED 1

static __always_inline int lsm_net_decided(void)
{
	struct pr_task *t = tracked_tid(current_tid());

	if (!t || !(t->flags & PR_TASK_NET_DECIDED))
		return 0;
	t->flags &= ~PR_TASK_NET_DECIDED;
	return 1;
}

static __always_inline __u32 record_decision(struct pr_decision *d, __u32 what, __u32 verdict)
{
	d->what = what;
	d->verdict = verdict;
	fill_hdr(&d->hdr, PR_EV_DECISION, sizeof(*d));
	emit_urgent(d, sizeof(*d), PR_EV_DECISION);
	return verdict;
}

/* The mode that applies to the current task: its session's, where the session has one (`proctor
 * daemon` switches sessions one by one), else the sensor's. */
static __always_inline __u32 task_mode(struct pr_config *cfg)
{
	__u32 slot = session_of(current_tid());
	struct pr_session *s = slot ? bpf_map_lookup_elem(&sessions, &slot) : NULL;

	if (s && s->mode != PR_SMODE_GLOBAL)
		return s->mode - 1;
	return cfg->mode;
}

/* Record a decision; returns the verdict (0 when the mode enforces nothing). */
static __always_inline __u32 decide(struct pr_config *cfg, struct pr_decision *d, __u32 what)
{
	__u32 mode;

	if (!cfg)
		return 0;
	mode = task_mode(cfg);
	if (mode == PR_MODE_AUDIT)
		return 0;
	return record_decision(d, what, mode == PR_MODE_ENFORCE ? PR_VERDICT_BLOCKED
							: PR_VERDICT_WOULD_BLOCK);
}

/* Whether deny_exec names this executable for the current task. The entry's value is a bitmask
 * of agent rules (bit n-1 for rule n of `proctor daemon`, whose agents each have their own deny
 * list); a task of a run/attach session (rule 0) is bound by every entry. */
static __always_inline int exec_denied(struct pr_file_key *key)
{
	__u32 *rules = bpf_map_lookup_elem(&deny_exec, key);
	__u32 slot, rule = 0;
	struct pr_session *s;

	if (!rules)
		return 0;
	slot = session_of(current_tid());
	s = slot ? bpf_map_lookup_elem(&sessions, &slot) : NULL;
	if (s)
		rule = s->rule;
	return !rule || (*rules & (1U << ((rule - 1) & 31)));
}

/* Kill the current task if the verdict says blocked. */
static __always_inline void enforce_kill(__u32 verdict)
{
	if (verdict == PR_VERDICT_BLOCKED)
		bpf_send_signal(SIGKILL);
}

static __always_inline int net_allowed4(__u32 ip, __u16 port_be)
{
	struct pr_allow4_key k = { .prefixlen = 48 };

	__builtin_memcpy(k.addr, &ip, 4);
	__builtin_memcpy(k.port, &port_be, 2);
	if (bpf_map_lookup_elem(&allow4, &k))
		return 1;
	k.port[0] = 0;
	k.port[1] = 0;
	return bpf_map_lookup_elem(&allow4, &k) != NULL;
}

static __always_inline int net_allowed6(__u32 *ip, __u16 port_be)
{
	struct pr_allow6_key k = { .prefixlen = 16 + 128 };

	/* ::ffff:a.b.c.d is the IPv4 destination a.b.c.d (the kernel connects to it over IPv4): the
	 * IPv4 rules decide, as detection does. */
	if (ip[0] == 0 && ip[1] == 0 && ip[2] == bpf_htonl(0xffff))
		return net_allowed4(ip[3], port_be);

	__builtin_memcpy(k.addr, ip, 16);
	__builtin_memcpy(k.port, &port_be, 2);
	if (bpf_map_lookup_elem(&allow6, &k))
		return 1;
	k.port[0] = 0;
	k.port[1] = 0;
	return bpf_map_lookup_elem(&allow6, &k) != NULL;
}

/* The verdict on a destination not in the allow maps (or on any destination while the operator
 * isolates the agent): 1 lets the call proceed, 0 makes it fail with EPERM. */
static __always_inline int net_refuse(struct pr_config *cfg, struct pr_decision *d, __u32 what)
{
	if (cfg->isolate)
		return record_decision(d, what, PR_VERDICT_BLOCKED) ? 0 : 1;
	return decide(cfg, d, what) == PR_VERDICT_BLOCKED ? 0 : 1;
}

