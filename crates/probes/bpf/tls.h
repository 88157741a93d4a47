/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * TLS:
 * - plaintext of the TLS library calls of tracked threads (uprobes on OpenSSL's SSL_write/SSL_read
 *   and their _ex variants, GnuTLS's gnutls_record_send/recv; attached by userspace per library
 *   file, only with --capture-tls). Entry saves the arguments per thread; the return probe reads
 *   the buffer, for both directions: only then is the result known (how many bytes really moved)
 *   and, on a fresh connection, the socket the handshake inside the call used (the peer). The
 *   buffer is the caller's and the caller has not resumed yet, so it still holds what was sent.
 * - the connection's peer: while a thread is inside a TLS call, the socket syscalls it makes
 *   (read/write/send/recv families) are the library's I/O for that connection; the first one
 *   resolves fd -> struct sock in the kernel and remembers (tgid, conn) -> peer.
 * - the SNI of every ClientHello leaving the agent's cgroup (cgroup_skb/egress, always on,
 *   whatever TLS library sent it, hooked or not). It only reads the packet and always passes it.
 */
#pragma once

#include "net.h"

#define IPPROTO_TCP 6
#define EEXIST 17
#define PR_TLS_FN_SSL_WRITE 1
#define PR_TLS_FN_SSL_READ 2
#define PR_TLS_FN_SSL_WRITE_EX 3
#define PR_TLS_FN_SSL_READ_EX 4
#define PR_TLS_FN_GNUTLS_SEND 5
#define PR_TLS_FN_GNUTLS_RECV 6
#define PR_TLS_FN_SSL_HANDSHAKE 7
#define PR_TLS_FN_SSL_CONNECT 8
#define PR_TLS_FN_GNUTLS_HANDSHAKE 9
#define PR_SNI_EXT_MAX 32       /* ClientHello extensions walked looking for server_name */

/* Plaintext bytes kept per call; userspace sets it before load (--tls-max-bytes). */
const volatile __u32 tls_max_bytes = PR_TLS_DEFAULT_MAX;
/* 0 where cgroup_skb programs may not call the task helpers (bpf_get_current_pid_tgid and
 * friends: Debian 12's 6.1 refuses them, and one refused call fails the whole object). Set by
 * userspace from a helper probe before load; the verifier skips the dead branch. */
const volatile __u32 sni_task_ctx = 1;

/* A TLS call in progress on a thread: its arguments, from entry to return. */
struct pr_tls_call {
	__u64 conn;
	__u64 buf;
	__u64 outlen;         /* _ex variants: user pointer to the size_t result */
	__u32 fn;             /* PR_TLS_FN_* */
	__u32 _pad;
};

struct pr_tls_conn_key {
	__u32 tgid;
	__u32 _pad;
	__u64 conn;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct pr_tls_call);
} tls_calls SEC(".maps");

/* A data call made while another hooked call of the thread is in progress: Node.js runs
 * JavaScript from OpenSSL's callbacks (the handshake-done info callback inside SSL_read), and
 * that JavaScript writes the request: an SSL_write inside SSL_read. One level is kept here; the
 * outer call stays in tls_calls (it names the connection for the peer and SNI logic). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct pr_tls_call);
} tls_nested SEC(".maps");

/* (process, connection object) -> the socket's peer. LRU: objects of closed connections age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pr_tls_conn_key);
	__type(value, struct pr_sock);
} tls_peers SEC(".maps");

/* Record scratch space of their own: pr_tls is larger than the shared union, and the packet
 * program must not share a buffer with the tracepoints. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pr_tls);
} tls_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pr_sni);
} sni_scratch SEC(".maps");

static __always_inline int tls_enter(__u32 fn, void *conn, const void *buf, void *outlen)
{
	__u32 tid = current_tid();
	long err;
	struct pr_tls_call c = {
		.conn = (__u64)conn,
		.buf = (__u64)buf,
		.outlen = (__u64)outlen,
		.fn = fn,
	};

	if (!tracked_tid(tid))
		return 0;
	/* NOEXIST: if a library call nests another hooked one, the outer call stays there; a
	 * nested data call of another function goes to tls_nested (a nested handshake, or the
	 * library calling its own function, carries nothing of its own). Any other failure (a map
	 * is full) loses this call's plaintext: counted. */
	err = bpf_map_update_elem(&tls_calls, &tid, &c, BPF_NOEXIST);
	if (err == -EEXIST && buf) {
		struct pr_tls_call *outer = bpf_map_lookup_elem(&tls_calls, &tid);

		if (outer && outer->fn != fn)
			err = bpf_map_update_elem(&tls_nested, &tid, &c, BPF_NOEXIST);
	}
	if (err && err != -EEXIST)
		count_lost(PR_EV_TLS);
	return 0;
}

/* State of one call's emission, shared with the bpf_loop callback. */
struct pr_tls_emit {
	__u64 buf;
	__u64 keep;
};

/* One chunk: bpf_loop verifies this once, however many chunks --tls-max-bytes allows (an
 * unrolled loop of 64 exceeds the verifier's budget). Returns 1 to stop. */
static long tls_chunk(__u64 i, void *arg)
{
	struct pr_tls_emit *st = arg;
	__u32 zero = 0;
	struct pr_tls *ev = bpf_map_lookup_elem(&tls_scratch, &zero);
	__u64 off = i * PR_TLS_CHUNK;
	__u32 len, size;

	if (!ev || off >= st->keep)
		return 1;
	len = st->keep - off > PR_TLS_CHUNK ? PR_TLS_CHUNK : st->keep - off;
	ev->offset = off;
	ev->last = off + len >= st->keep;
	if (len == 0 || len > PR_TLS_CHUNK)
		return 1;
	if (bpf_probe_read_user(ev->data, len, (void *)(st->buf + off))) {
		/* Unreadable (paged out): say so rather than send zeros. */
		ev->truncated = 1;
		ev->last = 1;
		len = 0;
	}
	ev->data_len = len;
	size = offsetof(struct pr_tls, data) + len;
	if (size > sizeof(*ev))
		size = sizeof(*ev);
	fill_hdr(&ev->hdr, PR_EV_TLS, size);
	emit(ev, size, PR_EV_TLS);
	return ev->last ? 1 : 0;
}

static __always_inline void tls_emit(struct pr_tls_call *c, __u64 n, __u32 lib, __u32 dir)
{
	__u32 zero = 0;
	struct pr_tls *ev = bpf_map_lookup_elem(&tls_scratch, &zero);
	struct pr_tls_conn_key k = { .tgid = bpf_get_current_pid_tgid() >> 32, .conn = c->conn };
	struct pr_tls_emit st = { .buf = c->buf, .keep = n };
	struct pr_sock *peer;
	__u32 max = tls_max_bytes;

	if (!ev)
		return;
	if (st.keep > max)
		st.keep = max;
	peer = bpf_map_lookup_elem(&tls_peers, &k);
	if (peer)
		ev->peer = *peer;
	else
		__builtin_memset(&ev->peer, 0, sizeof(ev->peer));
	ev->conn = c->conn;
	ev->len = n;
	ev->lib = lib;
	ev->direction = dir;
	ev->truncated = n > st.keep;
	bpf_loop(PR_TLS_MAX_CHUNKS, tls_chunk, &st, 0);
}

/* Return of a hooked call: n is the plaintext byte count (<= 0: nothing moved). */
static __always_inline int tls_exit(__u32 fn, long ret, __u32 lib, __u32 dir)
{
	__u32 tid = current_tid();
	struct pr_tls_call *p = bpf_map_lookup_elem(&tls_calls, &tid);
	struct pr_tls_call c;
	__u64 n;

	if (!p)
		return 0;
	if (p->fn != fn) {
		/* The return of a nested call: its own entry, if it had one. */
		p = bpf_map_lookup_elem(&tls_nested, &tid);
		if (!p || p->fn != fn)
			return 0;
		c = *p;
		bpf_map_delete_elem(&tls_nested, &tid);
	} else {
		c = *p;
		bpf_map_delete_elem(&tls_calls, &tid);
	}
	if (fn == PR_TLS_FN_SSL_WRITE_EX || fn == PR_TLS_FN_SSL_READ_EX) {
		/* int SSL_read_ex(SSL *, void *, size_t, size_t *readbytes): 1 on success. */
		__u64 got = 0;

		if (ret != 1 || !c.outlen ||
		    bpf_probe_read_user(&got, sizeof(got), (void *)c.outlen))
			return 0;
		n = got;
	} else {
		if (ret <= 0)
			return 0;
		n = ret;
	}
	if (n)
		tls_emit(&c, n, lib, dir);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(pr_ssl_write, void *ssl, const void *buf, int num)
{
	return tls_enter(PR_TLS_FN_SSL_WRITE, ssl, buf, 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(pr_ssl_write_ret, int ret)
{
	return tls_exit(PR_TLS_FN_SSL_WRITE, ret, PR_TLS_OPENSSL, PR_TLS_SEND);
}

SEC("uprobe")
int BPF_KPROBE(pr_ssl_read, void *ssl, void *buf, int num)
{
	return tls_enter(PR_TLS_FN_SSL_READ, ssl, buf, 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(pr_ssl_read_ret, int ret)
{
	return tls_exit(PR_TLS_FN_SSL_READ, ret, PR_TLS_OPENSSL, PR_TLS_RECV);
}

SEC("uprobe")
int BPF_KPROBE(pr_ssl_write_ex, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	return tls_enter(PR_TLS_FN_SSL_WRITE_EX, ssl, buf, written);
}

SEC("uretprobe")
int BPF_KRETPROBE(pr_ssl_write_ex_ret, int ret)
{
	return tls_exit(PR_TLS_FN_SSL_WRITE_EX, ret, PR_TLS_OPENSSL, PR_TLS_SEND);
}

SEC("uprobe")
int BPF_KPROBE(pr_ssl_read_ex, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	return tls_enter(PR_TLS_FN_SSL_READ_EX, ssl, buf, readbytes);
}

SEC("uretprobe")
int BPF_KRETPROBE(pr_ssl_read_ex_ret, int ret)
{
	return tls_exit(PR_TLS_FN_SSL_READ_EX, ret, PR_TLS_OPENSSL, PR_TLS_RECV);
}

SEC("uprobe")
int BPF_KPROBE(pr_gnutls_send, void *session, const void *data, __u64 size)
{
	return tls_enter(PR_TLS_FN_GNUTLS_SEND, session, data, 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(pr_gnutls_send_ret, long ret)
{
	return tls_exit(PR_TLS_FN_GNUTLS_SEND, ret, PR_TLS_GNUTLS, PR_TLS_SEND);
}

SEC("uprobe")
int BPF_KPROBE(pr_gnutls_recv, void *session, void *data, __u64 size)
{
	return tls_enter(PR_TLS_FN_GNUTLS_RECV, session, data, 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(pr_gnutls_recv_ret, long ret)
{
	return tls_exit(PR_TLS_FN_GNUTLS_RECV, ret, PR_TLS_GNUTLS, PR_TLS_RECV);
}

/* Handshakes: no plaintext, but the ClientHello leaves from inside them (so the SNI program can
 * tell a hello from a hooked library from one it cannot see), and their socket I/O names the
 * connection's peer before the first write. */
static __always_inline int tls_end(__u32 fn)
{
	__u32 tid = current_tid();
	struct pr_tls_call *p = bpf_map_lookup_elem(&tls_calls, &tid);

	if (p && p->fn == fn)
		bpf_map_delete_elem(&tls_calls, &tid);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(pr_ssl_handshake, void *ssl)
{
	return tls_enter(PR_TLS_FN_SSL_HANDSHAKE, ssl, 0, 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(pr_ssl_handshake_ret, int ret)
{
	return tls_end(PR_TLS_FN_SSL_HANDSHAKE);
}

SEC("uprobe")
int BPF_KPROBE(pr_ssl_connect, void *ssl)
{
	return tls_enter(PR_TLS_FN_SSL_CONNECT, ssl, 0, 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(pr_ssl_connect_ret, int ret)
{
	return tls_end(PR_TLS_FN_SSL_CONNECT);
}

SEC("uprobe")
int BPF_KPROBE(pr_gnutls_handshake, void *session)
{
	return tls_enter(PR_TLS_FN_GNUTLS_HANDSHAKE, session, 0, 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(pr_gnutls_handshake_ret, int ret)
{
	return tls_end(PR_TLS_FN_GNUTLS_HANDSHAKE);
}

/* A socket syscall on fd: if this thread is inside a TLS call, fd is that connection's socket. */
static __always_inline int tls_note_fd(long fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct pr_tls_call *c = bpf_map_lookup_elem(&tls_calls, &tid);
	struct pr_tls_conn_key k = {};
	struct pr_sock s = {};

	if (!c)
		return 0;
	if (!fill_sock(fd, &s) || (s.family != AF_INET && s.family != AF_INET6))
		return 0;
	k.tgid = id >> 32;
	k.conn = c->conn;
	/* Updated on every call, not only the first: a freed and reused SSL object then names its
	 * new connection's peer from its first I/O on. */
	bpf_map_update_elem(&tls_peers, &k, &s, BPF_ANY);
	return 0;
}

SEC("tp/syscalls/sys_enter_write")
int pr_tls_write(struct trace_event_raw_sys_enter *ctx)
{
	return tls_note_fd(ctx->args[0]);
}

SEC("tp/syscalls/sys_enter_read")
int pr_tls_read(struct trace_event_raw_sys_enter *ctx)
{
	return tls_note_fd(ctx->args[0]);
}

SEC("tp/syscalls/sys_enter_writev")
int pr_tls_writev(struct trace_event_raw_sys_enter *ctx)
{
	return tls_note_fd(ctx->args[0]);
}

SEC("tp/syscalls/sys_enter_readv")
int pr_tls_readv(struct trace_event_raw_sys_enter *ctx)
{
	return tls_note_fd(ctx->args[0]);
}

SEC("tp/syscalls/sys_enter_sendto")
int pr_tls_sendto(struct trace_event_raw_sys_enter *ctx)
{
	return tls_note_fd(ctx->args[0]);
}

SEC("tp/syscalls/sys_enter_recvfrom")
int pr_tls_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
	return tls_note_fd(ctx->args[0]);
}

SEC("tp/syscalls/sys_enter_sendmsg")
int pr_tls_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	return tls_note_fd(ctx->args[0]);
}

SEC("tp/syscalls/sys_enter_recvmsg")
int pr_tls_recvmsg(struct trace_event_raw_sys_enter *ctx)
{
	return tls_note_fd(ctx->args[0]);
}

/* Read n bytes at off as a big-endian number (n <= 4); 0 on failure sets *bad. */
static __always_inline __u32 be_at(struct __sk_buff *skb, __u32 off, __u32 n, int *bad)
{
	__u8 b[4] = {};
	__u32 v = 0;

	if (n == 0 || n > 4 || bpf_skb_load_bytes(skb, off, b, n)) {
		*bad = 1;
		return 0;
	}
	if (n == 1)
		v = b[0];
	else if (n == 2)
		v = (b[0] << 8) | b[1];
	else if (n == 3)
		v = (b[0] << 16) | (b[1] << 8) | b[2];
	else
		v = ((__u32)b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
	return v;
}

/* Find a ClientHello's server_name in an outgoing packet and record it. Every offset comes from
 * the packet (hostile): bpf_skb_load_bytes checks each read against the packet, every loop is
 * bounded, and a malformed hello is simply not reported. */
static __always_inline void sni_parse(struct __sk_buff *skb)
{
	__u32 zero = 0, off, end, ext_end, ip_len, nlen, tid, family;
	__u64 size;
	struct pr_sni *ev;
	__u8 net[40]; /* the IP header: v4's fixed 20 bytes or v6's 40 */
	__u8 tcp[14]; /* the TCP header up to its data offset */
	__u8 thl;
	__u16 dport;
	__u8 hello[9];
	int bad = 0, i;

	/* Headers by offset, each span in one load (a helper call each): this runs for every
	 * packet the agent sends, and most carry no hello. */
	if (bpf_skb_load_bytes(skb, 0, net, 20))
		return;
	if ((net[0] >> 4) == 4) {
		/* protocol at 9; fragment offset in the low 13 bits of 6..7 */
		if (net[9] != IPPROTO_TCP || ((net[6] & 0x1f) | net[7]))
			return;
		ip_len = (net[0] & 0xf) * 4;
		if (ip_len < 20)
			return;
		family = AF_INET;
	} else if ((net[0] >> 4) == 6) {
		if (bpf_skb_load_bytes(skb, 0, net, sizeof(net)))
			return;
		/* next header at 6. TCP directly after the fixed header: TCP sockets send no
		 * extension headers. */
		if (net[6] != IPPROTO_TCP)
			return;
		ip_len = sizeof(net);
		family = AF_INET6;
	} else {
		return;
	}
	if (bpf_skb_load_bytes(skb, ip_len, tcp, sizeof(tcp)))
		return;
	thl = tcp[12] >> 4;
	if (thl < 5)
		return;
	off = ip_len + thl * 4;
	/* No payload (a SYN, an ACK, a FIN) holds no hello: most packets end here. */
	if (skb->len < off + sizeof(hello))
		return;
	/* TLS record header (handshake, 3.x) and handshake header (client_hello). */
	if (bpf_skb_load_bytes(skb, off, hello, sizeof(hello)))
		return;
	if (hello[0] != 0x16 || hello[1] != 0x03 || hello[5] != 0x01)
		return;
	ev = bpf_map_lookup_elem(&sni_scratch, &zero);
	if (!ev)
		return;
	ev->family = family;
	__builtin_memset(ev->daddr, 0, sizeof(ev->daddr));
	if (family == AF_INET)
		__builtin_memcpy(ev->daddr, net + 16, 4); /* destination at 16 */
	else
		__builtin_memcpy(ev->daddr, net + 24, 16); /* destination at 24 */
	dport = (tcp[2] << 8) | tcp[3];
	end = off + 5 + ((hello[3] << 8) | hello[4]);
	off += sizeof(hello) + 2 + 32;                   /* legacy_version, random */
	off += 1 + be_at(skb, off, 1, &bad);             /* session id */
	off += 2 + be_at(skb, off, 2, &bad);             /* cipher suites */
	off += 1 + be_at(skb, off, 1, &bad);             /* compression methods */
	ext_end = off + 2 + be_at(skb, off, 2, &bad);    /* extensions */
	off += 2;
	if (bad)
		return;
	if (ext_end > end)
		ext_end = end;
	for (i = 0; i < PR_SNI_EXT_MAX; i++) {
		__u32 type, len;

		if (off + 4 > ext_end) {
			/* Every extension walked and none named a server: a hello to an address
			 * (RFC 6066 sends no name for one), reported with an empty name, so a client
			 * proctor cannot hook is not silent for it. Ending anywhere but exactly at the
			 * end of the extensions is a malformed (or cut) hello: not reported. */
			if (off != ext_end)
				return;
			break;
		}
		type = be_at(skb, off, 2, &bad);
		len = be_at(skb, off + 2, 2, &bad);
		if (bad)
			return;
		if (type == 0)
			break;
		off += 4 + len;
	}
	if (i == PR_SNI_EXT_MAX)
		return;
	nlen = 0;
	/* The record's size, bounded on each path by its own expression: 6.1's verifier loses the
	 * bound of a 32-bit value merged from two paths and spilled, and refuses the ring output. */
	size = offsetof(struct pr_sni, sni);
	if (off + 4 <= ext_end) {
		/* server_name: list length (2), name type (1, 0 = host_name), name length (2), name */
		if (be_at(skb, off + 6, 1, &bad) != 0 || bad)
			return;
		nlen = be_at(skb, off + 7, 2, &bad);
		if (bad || nlen == 0)
			return;
		if (nlen > PR_SNI_MAX)
			nlen = PR_SNI_MAX;
		/* nlen is 1..PR_SNI_MAX here; the size is written so that the register passed is
		 * provably in that range by itself: 6.1's verifier does not carry the earlier
		 * nlen != 0 test over to it and refuses a possibly zero-sized read into the map
		 * value. */
		if (bpf_skb_load_bytes(skb, off + 9, ev->sni,
				       ((nlen - 1) & (PR_SNI_MAX - 1)) + 1))
			return;
		size = offsetof(struct pr_sni, sni) + ((nlen - 1) & (PR_SNI_MAX - 1)) + 1;
	}
	ev->sni_len = nlen;
	ev->dport = dport;
	if (sni_task_ctx) {
		tid = current_tid();
		ev->tracked = tracked_tid(tid) != NULL;
		ev->in_tls_call = ev->tracked && bpf_map_lookup_elem(&tls_calls, &tid) != NULL;
		put_hdr(&ev->hdr, PR_EV_TLS_SNI, size); /* not fill_hdr: fill_hdr_unnumbered says */
		stamp_session(&ev->hdr, session_of(tid));
	} else {
		/* No task helpers for cgroup_skb on this kernel: the record names no process and
		 * userspace files it under the agent's root (tracked = 0). */
		__builtin_memset(&ev->hdr, 0, sizeof(ev->hdr));
		ev->tracked = 0;
		ev->in_tls_call = 0;
		ev->hdr.kind = PR_EV_TLS_SNI;
		ev->hdr.size = size;
		ev->hdr.ts_boot_ns = bpf_ktime_get_boot_ns();
	}
	emit(ev, size, PR_EV_TLS_SNI);
}

SEC("cgroup_skb/egress")
int pr_cg_sni(struct __sk_buff *skb)
{
	sni_parse(skb);
	return 1; /* observe only: every packet passes */
}
