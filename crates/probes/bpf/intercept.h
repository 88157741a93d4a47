/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * TLS interception (--tls-intercept): the agent's TCP connects to the intercepted ports are
 * rewritten by its cgroup's connect4/6 program to proctor's TLS-terminating proxy on loopback.
 * The program runs in the kernel for every connect of every process of the cgroup, after the
 * enforcement verdict on the original destination: the agent cannot connect around it, and a
 * destination the policy refuses stays refused. The original destination is kept by socket
 * cookie at connect, then moved to the client's local port by a sockops program when the SYN
 * is built (the port is bound by then, and the proxy has not accepted yet): the proxy finds it
 * from the peer port of the connection it accepts.
 */
#pragma once

#include "lib/common.h"

#define PR_SOCK_STREAM 1

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pr_icpt_cfg);
} icpt_cfg SEC(".maps");

/* Destination ports to intercept (host order) -> 1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u32);
} icpt_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct pr_icpt_orig);
} icpt_by_cookie SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct pr_icpt_key);
	__type(value, struct pr_icpt_orig);
} icpt_by_port SEC(".maps");

/* The configured proxy, if this connect is to be redirected. */
static __always_inline struct pr_icpt_cfg *icpt_wanted(struct bpf_sock_addr *ctx)
{
	__u32 zero = 0;
	struct pr_icpt_cfg *cfg = bpf_map_lookup_elem(&icpt_cfg, &zero);
	__u16 port = bpf_ntohs((__u16)ctx->user_port);

	if (!cfg || !cfg->port4 || ctx->type != PR_SOCK_STREAM)
		return 0;
	if (!bpf_map_lookup_elem(&icpt_ports, &port))
		return 0;
	return cfg;
}

static __always_inline void icpt_keep(struct bpf_sock_addr *ctx, struct pr_icpt_orig *o)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);

	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->port = bpf_ntohs((__u16)ctx->user_port);
	/* A full map loses the oldest entry (LRU): that connection then finds no destination and
	 * the proxy closes it (fails closed, recorded by the proxy). */
	bpf_map_update_elem(&icpt_by_cookie, &cookie, o, BPF_ANY);
}

static __always_inline void icpt_connect4(struct bpf_sock_addr *ctx)
{
	struct pr_icpt_cfg *cfg = icpt_wanted(ctx);
	struct pr_icpt_orig o = { .family = AF_INET };
	__u32 ip = ctx->user_ip4;

	if (!cfg)
		return;
	__builtin_memcpy(o.addr, &ip, 4);
	icpt_keep(ctx, &o);
	ctx->user_ip4 = bpf_htonl(0x7f000001);
	ctx->user_port = bpf_htons(cfg->port4);
}

static __always_inline void icpt_connect6(struct bpf_sock_addr *ctx)
{
	struct pr_icpt_cfg *cfg = icpt_wanted(ctx);
	struct pr_icpt_orig o = { .family = AF_INET6 };
	__u32 ip6[4];

	if (!cfg || !cfg->port6)
		return;
	ip6[0] = ctx->user_ip6[0];
	ip6[1] = ctx->user_ip6[1];
	ip6[2] = ctx->user_ip6[2];
	ip6[3] = ctx->user_ip6[3];
	__builtin_memcpy(o.addr, ip6, 16);
	icpt_keep(ctx, &o);
	ctx->user_ip6[0] = 0;
	ctx->user_ip6[1] = 0;
	ctx->user_ip6[2] = 0;
	ctx->user_ip6[3] = bpf_htonl(1);
	ctx->user_port = bpf_htons(cfg->port6);
}

SEC("sockops")
int pr_icpt_sockops(struct bpf_sock_ops *skops)
{
	struct pr_icpt_key k = {};
	struct pr_icpt_orig *o;
	__u64 cookie;

	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	o = bpf_map_lookup_elem(&icpt_by_cookie, &cookie);
	if (!o)
		return 1;
	k.port = skops->local_port;
	k.family = skops->family;
	bpf_map_update_elem(&icpt_by_port, &k, o, BPF_ANY);
	bpf_map_delete_elem(&icpt_by_cookie, &cookie);
	return 1;
}
