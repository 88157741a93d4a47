/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Network: connects, sends that name a destination, and DNS queries (any send to port 53). */
#pragma once

#include "lib/common.h"

#define PR_IOV_MAX 8

/* Describe the socket behind fd from the kernel's own struct sock (the connected peer, the real
 * type and protocol), never from what the caller claims. Returns 0 if fd is not a socket. */
static __always_inline int fill_sock(long fd, struct pr_sock *out)
{
	struct file *f = fd_file(fd);
	struct socket *sock;
	struct sock *sk;

	if (!f)
		return 0;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return 0;
	sock = BPF_CORE_READ(f, private_data);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	out->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	out->type = BPF_CORE_READ(sk, sk_type);
	out->protocol = BPF_CORE_READ(sk, sk_protocol);
	out->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (out->family == AF_INET6)
		BPF_CORE_READ_INTO(&out->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	else {
		/* BPF_CORE_READ_INTO sizes the read by *dst: read the u32, then copy its bytes. */
		__u32 v4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(out->daddr, &v4, sizeof(v4));
	}
	return 1;
}

/* Copy a user sockaddr (bounded) and return its length. */
static __always_inline __u32 read_addr(__u8 *dst, __u64 uaddr, __u64 ulen)
{
	__u32 n = ulen;

	if (!uaddr || ulen == 0)
		return 0;
	if (ulen > PR_SOCKADDR_MAX)
		n = PR_SOCKADDR_MAX;
	/* The mask must be a power of two minus one (a bound the verifier can see) and at least
	 * PR_SOCKADDR_MAX, so it never changes n. */
	if (bpf_probe_read_user(dst, n & 127, (void *)uaddr))
		return 0;
	return n;
}

/* Destination port of a send: the explicit address's, else the connected peer's. */
static __always_inline __u16 send_dport(struct pr_send *ev)
{
	__u16 fam;

	if (ev->addr_len < 4)
		return ev->sock.dport;
	fam = *(__u16 *)&ev->addr[0];
	if (fam == AF_INET || fam == AF_INET6)
		return bpf_ntohs(*(__u16 *)&ev->addr[2]);
	return 0;
}

/* Emit one send if it names a destination or goes to port 53; for port 53 copy the payload. */
static __always_inline void send_finish(struct pr_send *ev, __u64 payload, __u64 plen)
{
	__u16 dport = send_dport(ev);
	__u32 n = 0, size;

	if (!ev->addr_len && dport != 53)
		return; /* a connected stream send: the connect was recorded already */
	if (dport == 53 && payload) {
		n = plen > PR_DNS_MAX ? PR_DNS_MAX : plen;
		if (bpf_probe_read_user(ev->data, n & (2 * PR_DNS_MAX - 1), (void *)payload))
			n = 0;
	}
	ev->payload_len = n;
	size = offsetof(struct pr_send, data) + (n & (2 * PR_DNS_MAX - 1));
	if (size > sizeof(*ev))
		size = sizeof(*ev);
	fill_hdr(&ev->hdr, PR_EV_SEND, size);
	emit(ev, size, PR_EV_SEND);
}

/* One msghdr: destination, total bytes over the iovecs, first iovec as the payload. */
static __always_inline void send_msg(struct pr_send *ev, struct user_msghdr *uh, __u32 syscall)
{
	struct user_msghdr h = {};
	struct iovec iov = {};
	__u64 total = 0, first = 0, first_len = 0;
	int i;

	if (bpf_probe_read_user(&h, sizeof(h), uh))
		return;
	ev->syscall = syscall;
	ev->addr_len = read_addr(ev->addr, (__u64)h.msg_name, h.msg_namelen);
	for (i = 0; i < PR_IOV_MAX; i++) {
		if (i >= h.msg_iovlen)
			break;
		if (bpf_probe_read_user(&iov, sizeof(iov), &h.msg_iov[i]))
			break;
		if (i == 0) {
			first = (__u64)iov.iov_base;
			first_len = iov.iov_len;
		}
		total += iov.iov_len;
	}
	ev->bytes = total;
	send_finish(ev, first, first_len);
}

static __always_inline struct pr_send *send_begin(long fd)
{
	struct pr_send *ev;

	if (!tracked_tid(current_tid()))
		return NULL;
	ev = scratch_buf();
	if (!ev)
		return NULL;
	__builtin_memset(&ev->sock, 0, sizeof(ev->sock));
	if (!fill_sock(fd, &ev->sock))
		return NULL;
	return ev;
}

SEC("tp/syscalls/sys_enter_sendto")
int pr_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	struct pr_send *ev = send_begin(ctx->args[0]);

	if (!ev)
		return 0;
	ev->syscall = PR_SYS_SENDTO;
	ev->bytes = ctx->args[2];
	ev->addr_len = read_addr(ev->addr, ctx->args[4], ctx->args[5]);
	send_finish(ev, ctx->args[1], ctx->args[2]);
	return 0;
}

SEC("tp/syscalls/sys_enter_sendmsg")
int pr_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	struct pr_send *ev = send_begin(ctx->args[0]);

	if (ev)
		send_msg(ev, (struct user_msghdr *)ctx->args[1], PR_SYS_SENDMSG);
	return 0;
}

SEC("tp/syscalls/sys_enter_sendmmsg")
int pr_enter_sendmmsg(struct trace_event_raw_sys_enter *ctx)
{
	struct mmsghdr *m = (struct mmsghdr *)ctx->args[1];
	__u64 vlen = ctx->args[2];
	int i;

	for (i = 0; i < PR_MMSG_MAX; i++) {
		struct pr_send *ev;

		if (i >= vlen)
			break;
		ev = send_begin(ctx->args[0]);
		if (!ev)
			break;
		send_msg(ev, &m[i].msg_hdr, PR_SYS_SENDMMSG);
	}
	return 0;
}

SEC("tp/syscalls/sys_enter_connect")
int pr_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	struct pr_connect *ev;

	if (!tracked_tid(current_tid()))
		return 0;
	ev = scratch_buf();
	if (!ev)
		return 0;
	__builtin_memset(&ev->sock, 0, sizeof(ev->sock));
	fill_sock(ctx->args[0], &ev->sock);
	ev->addr_len = read_addr(ev->addr, ctx->args[1], ctx->args[2]);
	fill_hdr(&ev->hdr, PR_EV_CONNECT, sizeof(*ev));
	emit(ev, sizeof(*ev), PR_EV_CONNECT);
	return 0;
}
