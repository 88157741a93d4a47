/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Network enforcement by cgroup-bpf: connect4/6 and sendmsg4/6 programs attached to the agent's
 * cgroup make connect()/sendmsg() to destinations outside the allow maps fail with EPERM, for
 * every process of that cgroup and none outside it. */
#pragma once

#include "enforce.h"
#include "intercept.h"

/* The verdict net_refuse would give, without a second record: the socket_connect LSM hook recorded
 * this connect already. (In enforce mode that hook refused it, so this is defence in depth.) */
static __always_inline int net_verdict_unrecorded(struct pr_config *cfg)
{
	return cfg->isolate || task_mode(cfg) == PR_MODE_ENFORCE ? 0 : 1;
}

/* v4 and v6 in separate functions: the verifier refuses any access to user_ip6 from a
 * connect4/sendmsg4 program, even in a branch that cannot run. */
static __always_inline int net_verdict4(struct bpf_sock_addr *ctx, __u32 what)
{
	struct pr_config *cfg = get_config();
	struct pr_decision d = { .family = AF_INET, .layer = PR_LAYER_CGROUP };
	__u16 port_be = (__u16)ctx->user_port;
	__u32 ip = ctx->user_ip4;

	if (!cfg || (!cfg->isolate && (!cfg->block_net || net_allowed4(ip, port_be))))
		return 1;
	if (what == PR_WHAT_CONNECT && lsm_net_decided())
		return net_verdict_unrecorded(cfg);
	__builtin_memcpy(d.addr, &ip, 4);
	d.port = bpf_ntohs(port_be);
	return net_refuse(cfg, &d, what);
}

static __always_inline int net_verdict6(struct bpf_sock_addr *ctx, __u32 what)
{
	struct pr_config *cfg = get_config();
	struct pr_decision d = { .family = AF_INET6, .layer = PR_LAYER_CGROUP };
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
	if (what == PR_WHAT_CONNECT && lsm_net_decided())
		return net_verdict_unrecorded(cfg);
	__builtin_memcpy(d.addr, ip6, 16);
	d.port = bpf_ntohs(port_be);
	return net_refuse(cfg, &d, what);
}

SEC("cgroup/connect4")
int pr_cg_connect4(struct bpf_sock_addr *ctx)
{
	int allowed = net_verdict4(ctx, PR_WHAT_CONNECT);

	if (allowed)
		icpt_connect4(ctx); /* after the verdict on the real destination */
	return allowed;
}

SEC("cgroup/connect6")
int pr_cg_connect6(struct bpf_sock_addr *ctx)
{
	int allowed = net_verdict6(ctx, PR_WHAT_CONNECT);

	if (allowed)
		icpt_connect6(ctx);
	return allowed;
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
