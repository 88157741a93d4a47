/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* io_uring: opens, connects and sends the kernel runs for the agent without the syscalls the
 * file and net families hook. Recorded when the request completes (the io_uring_complete
 * tracepoint: its fields are the same on 6.1 and 6.18, unlike its BTF arguments), from what the
 * request holds: the socket a connect or send used, the descriptor an open returned. The
 * completion may run in an io_uring worker thread of the agent's process, so the process (tgid)
 * is what is checked against the tracked set. A request submitted with IOSQE_CQE_SKIP_SUCCESS
 * posts no completion and is not seen here: enforce mode can deny io_uring altogether. */
#pragma once

#include "file.h"
#include "net.h"

#define PR_IORING_OP_SENDMSG 9
#define PR_IORING_OP_CONNECT 16
#define PR_IORING_OP_OPENAT 18
#define PR_IORING_OP_SEND 26
#define PR_IORING_OP_OPENAT2 28
#define PR_IORING_OP_SEND_ZC 47
#define PR_IORING_OP_SENDMSG_ZC 48

static __always_inline void uring_open(struct io_kiocb *req, int res)
{
	struct io_open *o = (struct io_open *)req;
	struct pr_open *ev;
	struct file *f;

	/* A refused open leaves no path here (the kernel freed its copy before completing); a
	 * direct descriptor (file_slot) is not in the fd table. */
	if (res < 0 || BPF_CORE_READ(o, file_slot))
		return;
	f = fd_file(res);
	ev = scratch_buf();
	if (f && ev)
		emit_opened(ev, f, res, BPF_CORE_READ(o, how.flags), PR_SYS_URING_OPENAT, NULL, 0);
}

static __always_inline void uring_connect(struct io_kiocb *req, int res)
{
	struct pr_connect *ev = scratch_buf();
	struct pr_task *t = tracked_tid(current_tid());

	if (!ev)
		return;
	__builtin_memset(&ev->sock, 0, sizeof(ev->sock));
	if (!fill_sock_file(BPF_CORE_READ(req, file), &ev->sock))
		return;
	if (!t)
		t = tracked_tid(bpf_get_current_pid_tgid() >> 32);
	fill_listener(BPF_CORE_READ(req, file), ev, t ? t->session : 0);
	ev->ret = res;
	ev->addr_len = 0; /* the peer comes from the socket */
	ev->repeats = 0;  /* never counted: the completion may run in a worker thread */
	ev->last_ts_ns = 0;
	fill_hdr(&ev->hdr, PR_EV_CONNECT, sizeof(*ev));
	emit_dest(ev, sizeof(*ev), PR_EV_CONNECT, &ev->sock, ev->addr, 0);
}

static __always_inline void uring_send(struct io_kiocb *req, __u8 op)
{
	struct io_sr_msg *sr = (struct io_sr_msg *)req;
	struct pr_send *ev = scratch_buf();

	if (!ev)
		return;
	__builtin_memset(&ev->sock, 0, sizeof(ev->sock));
	if (!fill_sock_file(BPF_CORE_READ(req, file), &ev->sock))
		return;
	if (op == PR_IORING_OP_SENDMSG || op == PR_IORING_OP_SENDMSG_ZC) {
		send_msg(ev, BPF_CORE_READ(sr, umsg), PR_SYS_URING_SENDMSG);
		return;
	}
	ev->syscall = PR_SYS_URING_SEND;
	ev->bytes = BPF_CORE_READ(sr, len);
	ev->addr_len = 0;
	send_finish(ev, (__u64)BPF_CORE_READ(sr, buf), ev->bytes);
}

SEC("tp/io_uring/io_uring_complete")
int pr_uring_complete(struct trace_event_raw_io_uring_complete *ctx)
{
	struct io_kiocb *req = ctx->req;
	__u8 op;

	if (!tracked_tid(bpf_get_current_pid_tgid() >> 32) && !tracked_tid(current_tid()))
		return 0;
	op = BPF_CORE_READ(req, opcode);
	if (op == PR_IORING_OP_OPENAT || op == PR_IORING_OP_OPENAT2)
		uring_open(req, ctx->res);
	else if (op == PR_IORING_OP_CONNECT)
		uring_connect(req, ctx->res);
	else if (op == PR_IORING_OP_SEND || op == PR_IORING_OP_SEND_ZC ||
		 op == PR_IORING_OP_SENDMSG || op == PR_IORING_OP_SENDMSG_ZC)
		uring_send(req, op);
	return 0;
}

/* The creation of a ring: operations on it bypass the syscall hooks, so the ring itself is
 * worth a record (and an alert). Rare: a priority-ring record. */
SEC("tp/io_uring/io_uring_create")
int pr_uring_create(struct trace_event_raw_io_uring_create *ctx)
{
	struct pr_uring_setup ev = {};

	if (!tracked_tid(current_tid()))
		return 0;
	ev.fd = ctx->fd;
	ev.sq_entries = ctx->sq_entries;
	ev.cq_entries = ctx->cq_entries;
	ev.flags = ctx->flags;
	fill_hdr(&ev.hdr, PR_EV_URING_SETUP, sizeof(ev));
	emit_urgent(&ev, sizeof(ev), PR_EV_URING_SETUP);
	return 0;
}
