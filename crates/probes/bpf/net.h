/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Network: connects, sends that name a destination, DNS queries (any send to port 53) and DNS
 * answers (any receive from port 53). */
#pragma once

#include "lib/common.h"
#include "lib/connagg.h"

#define PR_IOV_MAX 8

/* Describe the socket behind fd from the kernel's own struct sock (the connected peer, the real
 * type and protocol), never from what the caller claims. Returns 0 if fd is not a socket. */
static __always_inline int fill_sock_file(struct file *f, struct pr_sock *out)
{
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
	if (out->family == AF_UNIX) {
		/* The connected peer's socket file (a stream connect's peer shares its listener's
		 * path): its inode names it whatever name, link or mount the caller used. */
		struct sock *peer = BPF_CORE_READ((struct unix_sock *)sk, peer);
		struct dentry *d = peer ? BPF_CORE_READ((struct unix_sock *)peer, path.dentry) : NULL;

		if (d) {
			__u64 dev = BPF_CORE_READ(d, d_sb, s_dev);
			__u64 ino = BPF_CORE_READ(d, d_inode, i_ino);

			__builtin_memcpy(out->daddr, &dev, sizeof(dev));
			__builtin_memcpy(out->daddr + 8, &ino, sizeof(ino));
		}
	} else if (out->family == AF_INET6)
		BPF_CORE_READ_INTO(&out->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	else {
		/* BPF_CORE_READ_INTO sizes the read by *dst: read the u32, then copy its bytes. */
		__u32 v4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(out->daddr, &v4, sizeof(v4));
	}
	return 1;
}

static __always_inline int fill_sock(long fd, struct pr_sock *out)
{
	return fill_sock_file(fd_file(fd), out);
}

/* A unix stream socket's listener: the kernel copies the peer credentials of the socket it
 * connected to (the pid that called listen(), whatever path, link or abstract name reached it),
 * so a server outside the tree that runs what it is told (a tmux server, an ssh master, an
 * ssh-agent) is known by its process, not by what its socket is called. An inet socket's
 * network namespace, for userspace to find a loopback listener in (sensor `listeners`). */
static __always_inline void fill_listener(struct file *f, struct pr_connect *ev, __u32 session)
{
	struct pr_task *peer;
	struct socket *sock;
	struct pid *pid;

	ev->peer_pid = 0;
	ev->peer_tracked = 0;
	ev->netns = 0;
	ev->_pad = 0;
	if (!f)
		return;
	sock = BPF_CORE_READ(f, private_data);
	if (ev->sock.family == AF_INET || ev->sock.family == AF_INET6)
		ev->netns = BPF_CORE_READ(sock, sk, __sk_common.skc_net.net, ns.inum);
	if (ev->sock.family != AF_UNIX)
		return;
	pid = BPF_CORE_READ(sock, sk, sk_peer_pid);
	if (!pid)
		return;
	ev->peer_pid = BPF_CORE_READ(pid, numbers[0].nr);
	/* Inside this session's tree: the daemon tracks several agents, each its own tree. */
	peer = ev->peer_pid ? tracked_tid(ev->peer_pid) : NULL;
	ev->peer_tracked = peer && peer->session == session;
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

/* A destination as a process names it (the socket's peer and the first bytes of the address it
 * passed): the key of dest_woken. */
struct pr_dest_key {
	__u32 tgid;
	__u32 kind;
	struct pr_sock sock;
	__u8 addr[32];
};

/* When each (process, kind, destination) last made an urgent record (see emit_ring). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct pr_dest_key);
	__type(value, __u64);
} dest_woken SEC(".maps");

/* Is this destination news: not named by this process in a record of this kind that woke the
 * consumer within PR_DEST_WAKE_NS? A repeat is written as an ordinary record (read within
 * PR_WAKE_GAP_NS): a storm to one server wakes the consumer once a second, a new server at once. */
static __always_inline int dest_is_news(__u32 kind, struct pr_sock *s, __u8 *addr, __u32 addr_len)
{
	struct pr_dest_key k = { .tgid = bpf_get_current_pid_tgid() >> 32, .kind = kind };
	__u64 now = bpf_ktime_get_ns();
	/* Below the mask: a sockaddr_in6 (28 bytes) fits whole; a longer AF_UNIX path is cut. */
	__u32 n = addr_len < sizeof(k.addr) - 1 ? addr_len : sizeof(k.addr) - 1;
	__u64 *last;

	k.sock = *s;
	if (n)
		bpf_probe_read_kernel(k.addr, n & (sizeof(k.addr) - 1), addr);
	last = bpf_map_lookup_elem(&dest_woken, &k);
	if (last && now - *last < PR_DEST_WAKE_NS)
		return 0;
	bpf_map_update_elem(&dest_woken, &k, &now, BPF_ANY);
	return 1;
}

/* Emit a record that names a destination: urgent when the destination is news. 0: emitted. */
static __always_inline int emit_dest(void *rec, __u32 size, __u32 kind, struct pr_sock *s,
				     __u8 *addr, __u32 addr_len)
{
	int urgent = dest_is_news(kind, s, addr, addr_len);

	if (high_value(kind))
		return emit_ring(&events_hi, 1, rec, size, kind, urgent);
	return emit_ring(&events, 0, rec, size, kind, urgent);
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
	emit_dest(ev, size, PR_EV_SEND, &ev->sock, ev->addr, ev->addr_len);
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

/* Called at syscall exit for a tracked thread: the socket behind fd, in the scratch record. */
static __always_inline struct pr_send *send_begin(long fd)
{
	struct pr_send *ev;

	ev = scratch_buf();
	if (!ev)
		return NULL;
	__builtin_memset(&ev->sock, 0, sizeof(ev->sock));
	if (!fill_sock(fd, &ev->sock))
		return NULL;
	return ev;
}

/* Only the exits of the network syscalls are hooked: a tracked thread's arguments are read
 * from the registers the kernel saved at entry (syscall_args), and user memory (an address as
 * passed, a payload) after the kernel has copied it. Every send, receive and connect of every
 * process on the host runs one program, not an entry and an exit, and a tracked one keeps no
 * entry in a map between the two. Returns 0 for an untracked thread. */
static __always_inline int net_args(struct pr_args *a)
{
	if (!tracked_tid(current_tid()))
		return 0;
	syscall_args(a);
	return 1;
}

SEC("tp/syscalls/sys_exit_sendto")
int pr_exit_sendto(struct trace_event_raw_sys_exit *ctx)
{
	struct pr_send *ev;
	struct pr_args a;

	if (!net_args(&a))
		return 0;
	/* sendto(fd, buf, len, flags, dest_addr, addrlen) */
	ev = send_begin(a.a[0]);
	if (ev) {
		ev->syscall = PR_SYS_SENDTO;
		ev->bytes = a.a[2];
		ev->addr_len = read_addr(ev->addr, a.a[4], a.a[5]);
		send_finish(ev, a.a[1], a.a[2]);
	}
	return 0;
}

SEC("tp/syscalls/sys_exit_sendmsg")
int pr_exit_sendmsg(struct trace_event_raw_sys_exit *ctx)
{
	struct pr_send *ev;
	struct pr_args a;

	if (!net_args(&a))
		return 0;
	ev = send_begin(a.a[0]);
	if (ev)
		send_msg(ev, (struct user_msghdr *)a.a[1], PR_SYS_SENDMSG);
	return 0;
}

SEC("tp/syscalls/sys_exit_sendmmsg")
int pr_exit_sendmmsg(struct trace_event_raw_sys_exit *ctx)
{
	struct mmsghdr *m;
	struct pr_args a;
	__u64 fd, vlen;
	int i;

	if (!net_args(&a))
		return 0;
	fd = a.a[0];
	m = (struct mmsghdr *)a.a[1];
	vlen = a.a[2];
	for (i = 0; i < PR_MMSG_MAX; i++) {
		struct pr_send *ev;

		if (i >= vlen)
			break;
		ev = send_begin(fd);
		if (!ev)
			break;
		send_msg(ev, &m[i].msg_hdr, PR_SYS_SENDMMSG);
	}
	return 0;
}

/* read(2) and write(2) on a socket whose peer port is 53 are DNS too: a query on a connected UDP
 * socket can go out with write and its answer come back with read (Go does both). A tracked
 * thread's read or write costs one socket lookup; any other's, the slot test. */
static __always_inline struct pr_send *dns_sock_exit(struct pr_args *a)
{
	struct pr_send *ev;

	if (!net_args(a))
		return NULL;
	ev = send_begin(a->a[0]);
	if (!ev || ev->sock.dport != 53)
		return NULL;
	ev->addr_len = 0;
	return ev;
}

/* A packet socket (AF_PACKET) sends link-layer frames below every hook of this family: no
 * cgroup connect or egress program sees them, and they name no address the send exits could
 * judge (write and writev on a bound socket name none at all). So the socket itself is recorded
 * when a tracked thread creates it, as a send record of no bytes (PR_SYS_SOCKET), urgent. One
 * program on every socket(2) of the host; an untracked caller costs the slot test. */
SEC("tp/syscalls/sys_exit_socket")
int pr_exit_socket(struct trace_event_raw_sys_exit *ctx)
{
	__u32 size = offsetof(struct pr_send, data);
	struct pr_send *ev;
	struct pr_args a;

	if (ctx->ret < 0 || !net_args(&a) || a.a[0] != AF_PACKET)
		return 0;
	ev = send_begin(ctx->ret);
	if (!ev)
		return 0;
	ev->syscall = PR_SYS_SOCKET;
	ev->bytes = 0;
	ev->addr_len = 0;
	ev->payload_len = 0;
	fill_hdr(&ev->hdr, PR_EV_SEND, size);
	emit_urgent(ev, size, PR_EV_SEND);
	return 0;
}

SEC("tp/syscalls/sys_exit_write")
int pr_exit_write(struct trace_event_raw_sys_exit *ctx)
{
	struct pr_args a;
	struct pr_send *ev = dns_sock_exit(&a);

	if (ev) {
		ev->syscall = PR_SYS_WRITE;
		ev->bytes = a.a[2];
		send_finish(ev, a.a[1], a.a[2]);
	}
	return 0;
}

/* At exit the socket holds the peer the kernel actually connected it to: a thread rewriting the
 * sockaddr while connect runs cannot make the record name another destination. */
SEC("tp/syscalls/sys_exit_connect")
int pr_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = current_tid();
	struct pr_task *t = tracked_tid(tid);
	struct pr_connect *ev;
	struct file *f;
	struct pr_args a;

	if (!t)
		return 0;
	syscall_args(&a);
	ev = scratch_buf();
	if (!ev)
		return 0;
	__builtin_memset(&ev->sock, 0, sizeof(ev->sock));
	f = fd_file(a.a[0]);
	fill_sock_file(f, &ev->sock);
	fill_listener(f, ev, t->session);
	ev->ret = ctx->ret;
	/* Zeroed where conn_same compares, so bytes past a short address are equal. */
	__builtin_memset(ev->addr, 0, PR_CONN_ADDR_CMP);
	ev->addr_len = read_addr(ev->addr, a.a[1], a.a[2]);
	ev->repeats = 0;
	ev->last_ts_ns = 0;
	/* A repeat of the thread's recorded connect is counted (lib/connagg.h); anything else is
	 * recorded, after what the entry counted. */
	if (conn_repeat(t, tid, ev))
		return 0;
	conn_agg_flush(t, tid);
	fill_hdr(&ev->hdr, PR_EV_CONNECT, sizeof(*ev));
	if (!emit_dest(ev, sizeof(*ev), PR_EV_CONNECT, &ev->sock, ev->addr, ev->addr_len))
		conn_agg_keep(t, tid, ev);
	return 0;
}

/* DNS answers: a receive whose source port is 53, read at the syscall's exit (the payload is
 * in the caller's buffer by then). The source is the address the kernel wrote back (recvfrom's
 * src_addr, recvmsg's msg_name), else the connected peer (glibc connects its UDP socket to the
 * resolver and reads with recvfrom without an address; Go reads with read). The record only
 * says what arrived: userspace pairs it with the query the tree sent before trusting it. */
static __always_inline void answer_finish(struct pr_send *ev, __u32 syscall, long ret,
					  __u64 payload, __u64 plen)
{
	__u32 n, size;

	if (ret <= 0)
		return;
	ev->syscall = syscall;
	ev->bytes = ret;
	if (send_dport(ev) != 53)
		return;
	n = (__u64)ret < plen ? (__u32)ret : (__u32)plen;
	if (n > PR_DNS_MAX)
		n = PR_DNS_MAX;
	if (bpf_probe_read_user(ev->data, n & (2 * PR_DNS_MAX - 1), (void *)payload))
		n = 0;
	ev->payload_len = n;
	size = offsetof(struct pr_send, data) + (n & (2 * PR_DNS_MAX - 1));
	if (size > sizeof(*ev))
		size = sizeof(*ev);
	fill_hdr(&ev->hdr, PR_EV_DNS_ANSWER, size);
	emit_dest(ev, size, PR_EV_DNS_ANSWER, &ev->sock, ev->addr, ev->addr_len);
}

/* The source address a receive wrote back through (uaddr, *ulenp), or 0. */
static __always_inline __u32 read_src_addr(__u8 *dst, __u64 uaddr, __u64 ulenp)
{
	__u32 len = 0;

	if (!uaddr || !ulenp || bpf_probe_read_user(&len, sizeof(len), (void *)ulenp))
		return 0;
	return read_addr(dst, uaddr, len);
}

SEC("tp/syscalls/sys_exit_recvfrom")
int pr_exit_recvfrom(struct trace_event_raw_sys_exit *ctx)
{
	struct pr_send *ev;
	struct pr_args a;

	/* Nothing received, nothing to read: before the tracked lookup. */
	if (ctx->ret <= 0 || !net_args(&a))
		return 0;
	/* recvfrom(fd, buf, len, flags, src_addr, addrlen) */
	ev = send_begin(a.a[0]);
	if (ev) {
		ev->addr_len = read_src_addr(ev->addr, a.a[4], a.a[5]);
		answer_finish(ev, PR_SYS_RECVFROM, ctx->ret, a.a[1], a.a[2]);
	}
	return 0;
}

SEC("tp/syscalls/sys_exit_recvmsg")
int pr_exit_recvmsg(struct trace_event_raw_sys_exit *ctx)
{
	struct user_msghdr h = {};
	struct iovec iov = {};
	struct pr_send *ev;
	struct pr_args a;

	if (ctx->ret <= 0 || !net_args(&a))
		return 0;
	ev = send_begin(a.a[0]);
	if (ev && !bpf_probe_read_user(&h, sizeof(h), (void *)a.a[1])) {
		/* msg_namelen was set by the kernel to the source's length. */
		ev->addr_len = read_addr(ev->addr, (__u64)h.msg_name, h.msg_namelen);
		if (h.msg_iovlen > 0 && !bpf_probe_read_user(&iov, sizeof(iov), h.msg_iov))
			answer_finish(ev, PR_SYS_RECVMSG, ctx->ret, (__u64)iov.iov_base,
				      iov.iov_len);
	}
	return 0;
}

SEC("tp/syscalls/sys_exit_read")
int pr_exit_read(struct trace_event_raw_sys_exit *ctx)
{
	struct pr_send *ev;
	struct pr_args a;

	if (ctx->ret <= 0)
		return 0;
	ev = dns_sock_exit(&a);
	if (ev)
		answer_finish(ev, PR_SYS_READ, ctx->ret, a.a[1], a.a[2]);
	return 0;
}

/* Inbound: the tree opening a door to the network, and someone coming through it. An agent told
 * to run `python3 -m http.server` (which binds every address) or a bind shell hands the host's
 * files or a shell to whoever connects, and nothing it does afterwards is an egress: the peer
 * comes in. Recorded from the kernel's socket at the call's exit: a listen(2) of a TCP socket
 * bound to an address that is not loopback (the wildcard included), and an accept(2) or
 * accept4(2) whose peer is not loopback. A connection from this host's loopback is left out in
 * the kernel: test suites and dev servers accept those by the thousand, and the process that
 * connected is this host's (when it is in the tree, its connect is recorded). */

/* A loopback address: 127/8, ::1, or ::ffff:127.x.y.z (a dual-stack socket's v4 peer). */
static __always_inline int loopback_addr(__u16 family, __u8 *a)
{
	__u32 w[4];

	if (family == AF_INET)
		return a[0] == 127;
	__builtin_memcpy(w, a, sizeof(w));
	if (w[0] || w[1])
		return 0;
	if (!w[2])
		return w[3] == bpf_htonl(1);
	return w[2] == bpf_htonl(0xffff) && a[12] == 127;
}

/* Fill ev from the inet socket behind f: the socket as connects describe it (fill_sock_file:
 * family, type, protocol, and a connected peer), then its local address and port. 0: not an
 * inet socket. */
static __always_inline int inbound_sock(struct file *f, struct pr_inbound *ev)
{
	struct socket *sock;
	struct sock *sk;

	__builtin_memset(&ev->sock, 0, sizeof(ev->sock));
	if (!fill_sock_file(f, &ev->sock) ||
	    (ev->sock.family != AF_INET && ev->sock.family != AF_INET6))
		return 0;
	sock = BPF_CORE_READ(f, private_data);
	sk = BPF_CORE_READ(sock, sk);
	ev->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	__builtin_memset(ev->laddr, 0, sizeof(ev->laddr));
	if (ev->sock.family == AF_INET6) {
		BPF_CORE_READ_INTO(&ev->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	} else {
		__u32 v4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);

		__builtin_memcpy(ev->laddr, &v4, sizeof(v4));
	}
	return 1;
}

SEC("tp/syscalls/sys_exit_listen")
int pr_exit_listen(struct trace_event_raw_sys_exit *ctx)
{
	struct pr_inbound *ev;
	struct pr_args a;

	if (ctx->ret != 0 || !net_args(&a))
		return 0;
	ev = scratch_buf();
	if (!ev || !inbound_sock(fd_file(a.a[0]), ev))
		return 0;
	if (ev->sock.protocol != IPPROTO_TCP || loopback_addr(ev->sock.family, ev->laddr))
		return 0;
	ev->syscall = PR_SYS_LISTEN;
	ev->ret = 0;
	fill_hdr(&ev->hdr, PR_EV_INBOUND, sizeof(*ev));
	emit_urgent(ev, sizeof(*ev), PR_EV_INBOUND);
	return 0;
}

/* accept(2) and accept4(2): one program attached to both (the sensor attaches it to
 * sys_exit_accept4 besides its own). The tracepoint's `id` is the system call. A peer already
 * recorded by this process within a second is written without waking the consumer (dest_woken),
 * so a server the world reaches costs one wake-up a second per peer, not one per connection. */
SEC("tp/syscalls/sys_exit_accept")
int pr_exit_accept_any(struct trace_event_raw_sys_exit *ctx)
{
	struct pr_inbound *ev;
	struct pr_args a;
	__u32 urgent;

	if (ctx->ret < 0 || !net_args(&a))
		return 0;
	ev = scratch_buf();
	if (!ev || !inbound_sock(fd_file(ctx->ret), ev))
		return 0;
	if (loopback_addr(ev->sock.family, ev->sock.daddr))
		return 0;
	ev->syscall = ctx->id == 288 ? PR_SYS_ACCEPT4 : PR_SYS_ACCEPT;
	ev->ret = ctx->ret;
	fill_hdr(&ev->hdr, PR_EV_INBOUND, sizeof(*ev));
	urgent = dest_is_news(PR_EV_INBOUND, &ev->sock, NULL, 0);
	emit_ring(&events_hi, 1, ev, sizeof(*ev), PR_EV_INBOUND, urgent);
	return 0;
}
