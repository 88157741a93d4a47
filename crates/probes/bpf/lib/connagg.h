/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Repeated connects, counted instead of recorded one by one (docs/kernel.md "Repeated
 * connects").
 *
 * conn_agg keeps each thread's last recorded connect that succeeded (or started: -EINPROGRESS).
 * A later connect identical to it (same socket type and protocol, same connected peer, same
 * address as passed, same result) adds to the entry's count instead of making a record; any
 * other connect is recorded as always (urgent when its destination is news) and, if it succeeded,
 * becomes the entry. So every destination a thread reaches is recorded at once, and a storm to
 * one destination costs a count. The count is reported as a copy of the recorded connect with
 * `repeats` and `last_ts_ns` set, non-urgent, to the priority ring:
 * - every PR_CONN_REPORT_N repeats, or once a second, at the next repeat (egress-burst
 *   detection sees a storm's rate within PR_CONN_REPORT_N connects);
 * - when the thread goes to sleep (sched.h), so a count is never held by a thread that stopped
 *   connecting, or is preempted a second or more after the first repeat it holds; when it
 *   execs or exits; and by userspace for whatever is left when it stops.
 * A connect that failed, an address longer than the entry compares (PR_CONN_ADDR_CMP: a long
 * AF_UNIX path), an io_uring connect and a thread that finds the map full are recorded each
 * time. Keyed by thread: only the thread itself writes its entry, so no count lands on the wrong
 * destination. */
#pragma once

#include "common.h"

#define PR_CONN_REPORT_N 16
#define PR_CONN_ADDR_CMP 32 /* sockaddr_in6 is 28 bytes */
#define PR_TASK_CONN_AGG 4  /* pr_task.flags: the thread has a conn_agg entry, */
#define PR_TASK_CONN_COUNT 8 /* whose count is not yet reported (sched.h tests this one) */
#define PR_EINPROGRESS 115

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2048);
	/* Preallocated (~0.7 MiB), as open_agg is: an entry is made at a thread's first connect
	 * and dropped at its exit. */
	__type(key, __u32);
	__type(value, struct pr_conn_agg);
} conn_agg SEC(".maps");

/* Can this connect (sock, ret and addr filled; addr's first PR_CONN_ADDR_CMP bytes zeroed
 * before it was read) be counted as a repeat, or kept to count repeats of? */
static __always_inline int conn_foldable(struct pr_connect *ev)
{
	return (ev->ret == 0 || ev->ret == -PR_EINPROGRESS) && ev->addr_len <= PR_CONN_ADDR_CMP;
}

static __always_inline int conn_same(struct pr_connect *a, struct pr_connect *b)
{
	__u64 *x = (__u64 *)&a->sock, *y = (__u64 *)&b->sock;
	__u64 *p = (__u64 *)a->addr, *q = (__u64 *)b->addr;

	_Static_assert(sizeof(struct pr_sock) == 24, "pr_sock is three words");
	return a->ret == b->ret && a->addr_len == b->addr_len && x[0] == y[0] && x[1] == y[1] &&
	       x[2] == y[2] && p[0] == q[0] && p[1] == q[1] && p[2] == q[2] && p[3] == q[3];
}

/* Report the entry's count (if any) as a record numbered now in t's session, built in the
 * entry itself (the scratch record is left alone). A ring that refuses it is counted like any
 * record, and the count stays in the entry for the next report. */
static __always_inline void conn_agg_report(struct pr_task *t, struct pr_conn_agg *a, __u64 now)
{
	if (!a->repeats)
		return;
	a->rec.hdr.ts_boot_ns = a->first_ts;
	a->rec.repeats = a->repeats;
	a->rec.last_ts_ns = a->last_ts;
	stamp_session(&a->rec.hdr, t->session);
	if (emit_ring(&events_hi, 1, &a->rec, sizeof(a->rec), PR_EV_CONNECT, 0))
		return;
	a->repeats = 0;
	a->flush_ts = now;
	t->flags &= ~PR_TASK_CONN_COUNT;
}

/* Is ev a repeat of the thread's recorded connect? Then count it (and report the count when
 * PR_CONN_REPORT_N have gathered or a second has passed) instead of recording it. */
static __always_inline int conn_repeat(struct pr_task *t, __u32 tid, struct pr_connect *ev)
{
	struct pr_conn_agg *a;
	__u64 now;

	if (!t || !(t->flags & PR_TASK_CONN_AGG) || !conn_foldable(ev))
		return 0;
	a = bpf_map_lookup_elem(&conn_agg, &tid);
	if (!a || !conn_same(&a->rec, ev))
		return 0;
	now = bpf_ktime_get_boot_ns();
	count_repeat(&a->repeats, &a->first_ts, &a->last_ts, now);
	t->flags |= PR_TASK_CONN_COUNT;
	if (a->repeats >= PR_CONN_REPORT_N || now - a->flush_ts >= 1000ULL * 1000 * 1000)
		conn_agg_report(t, a, now);
	return 1;
}

/* Another connect than the entry's: report what the entry counted, so the thread's records keep
 * their order (the count before the new destination). */
static __always_inline void conn_agg_flush(struct pr_task *t, __u32 tid)
{
	struct pr_conn_agg *a;

	if (!t || !(t->flags & PR_TASK_CONN_COUNT))
		return;
	a = bpf_map_lookup_elem(&conn_agg, &tid);
	if (a)
		conn_agg_report(t, a, bpf_ktime_get_boot_ns());
}

/* Keep the connect just recorded (ev, in the scratch space) as the thread's entry. */
static __always_inline void conn_agg_keep(struct pr_task *t, __u32 tid, struct pr_connect *ev)
{
	struct pr_conn_agg *a;

	if (!t || !conn_foldable(ev))
		return;
	a = bpf_map_lookup_elem(&conn_agg, &tid);
	if (a && a->repeats)
		return; /* its count could not be reported (ring full): keep it for the next try */
	/* The value's tail (the counters) is read from the scratch space past the record, then
	 * set below. */
	if (bpf_map_update_elem(&conn_agg, &tid, ev, BPF_ANY))
		return; /* full: this thread's connects are each recorded */
	a = bpf_map_lookup_elem(&conn_agg, &tid);
	if (!a)
		return;
	a->rec.repeats = 0;
	a->rec.last_ts_ns = 0;
	a->repeats = 0;
	a->first_ts = 0;
	a->last_ts = 0;
	a->flush_ts = ev->hdr.ts_boot_ns;
	t->flags |= PR_TASK_CONN_AGG;
}

/* Thread `tid` (t) is switched out at `now`, holding a count (sched.h): report it when the
 * thread goes to sleep, or when it is preempted a second or more after the first repeat it
 * holds, so a thread that spins after its connects holds them back no longer than that. */
static __always_inline void conn_agg_switch(struct pr_task *t, __u32 tid, __u64 now, int sleeps)
{
	struct pr_conn_agg *a = bpf_map_lookup_elem(&conn_agg, &tid);

	if (a && (sleeps || now - a->first_ts >= 1000ULL * 1000 * 1000))
		conn_agg_report(t, a, now);
}

/* Thread `tid` execs or exits: report its count and drop its entry. */
static __always_inline void conn_agg_end(struct pr_task *t, __u32 tid)
{
	if (!t || !(t->flags & PR_TASK_CONN_AGG))
		return;
	conn_agg_flush(t, tid);
	t->flags &= ~(PR_TASK_CONN_AGG | PR_TASK_CONN_COUNT);
	bpf_map_delete_elem(&conn_agg, &tid);
}
