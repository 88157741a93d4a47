/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Enforcement: shared state and the network layer. Exec and ptrace decisions are taken in their
 * own hooks (process.h, ptrace.h) with the helpers here. BPF LSM does not load on our machines,
 * so a forbidden exec or ptrace is stopped by SIGKILL from the tracepoint (the process dies before
 * it returns to user space and can use the result), and network egress by cgroup-bpf programs
 * that make connect()/sendmsg() fail with EPERM for the agent's cgroup only. */
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

static __always_inline __u32 record_decision(struct pr_decision *d, __u32 what, __u32 verdict)
{
	d->what = what;
	d->verdict = verdict;
	fill_hdr(&d->hdr, PR_EV_DECISION, sizeof(*d));
	emit_urgent(d, sizeof(*d), PR_EV_DECISION);
	return verdict;
}

/* Record a decision; returns the verdict (0 when the mode enforces nothing). */
static __always_inline __u32 decide(struct pr_config *cfg, struct pr_decision *d, __u32 what)
{
	if (!cfg || cfg->mode == PR_MODE_AUDIT)
		return 0;
	return record_decision(d, what, cfg->mode == PR_MODE_ENFORCE ? PR_VERDICT_BLOCKED
								  : PR_VERDICT_WOULD_BLOCK);
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

/* v4 and v6 in separate functions: the verifier refuses any access to user_ip6 from a
 * connect4/sendmsg4 program, even in a branch that cannot run. */
static __always_inline int net_verdict4(struct bpf_sock_addr *ctx, __u32 what)
{
	struct pr_config *cfg = get_config();
	struct pr_decision d = { .family = AF_INET };
	__u16 port_be = (__u16)ctx->user_port;
	__u32 ip = ctx->user_ip4;

	if (!cfg || (!cfg->isolate && (!cfg->block_net || net_allowed4(ip, port_be))))
		return 1;
	__builtin_memcpy(d.addr, &ip, 4);
	d.port = bpf_ntohs(port_be);
	return net_refuse(cfg, &d, what);
}

static __always_inline int net_verdict6(struct bpf_sock_addr *ctx, __u32 what)
{
	struct pr_config *cfg = get_config();
	struct pr_decision d = { .family = AF_INET6 };
	__u16 port_be = (__u16)ctx->user_port;
	__u32 ip6[4];

	if (!cfg || (!cfg->isolate && !cfg->block_net))
		return 1;
	ip6[0] = ctx->user_ip6[0];
	ip6[1] = ctx->user_ip6[1];
	ip6[2] = ctx->user_ip6[2];
	ip6[3] = ctx->user_ip6[3];
	if (!cfg->isolate && net_allowed6(ip6, port_be))
		return 1;
	__builtin_memcpy(d.addr, ip6, 16);
	d.port = bpf_ntohs(port_be);
	return net_refuse(cfg, &d, what);
}

SEC("cgroup/connect4")
int pr_cg_connect4(struct bpf_sock_addr *ctx)
{
	return net_verdict4(ctx, PR_WHAT_CONNECT);
}

SEC("cgroup/connect6")
int pr_cg_connect6(struct bpf_sock_addr *ctx)
{
	return net_verdict6(ctx, PR_WHAT_CONNECT);
}

SEC("cgroup/sendmsg4")
int pr_cg_sendmsg4(struct bpf_sock_addr *ctx)
{
	return net_verdict4(ctx, PR_WHAT_SENDMSG);
}

SEC("cgroup/sendmsg6")
int pr_cg_sendmsg6(struct bpf_sock_addr *ctx)
{
	return net_verdict6(ctx, PR_WHAT_SENDMSG);
}
