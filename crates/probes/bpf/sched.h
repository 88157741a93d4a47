/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Scheduler behaviour, aggregated in the kernel: sched_switch fires far too often to ship one
 * record per switch, so each CPU keeps counters and log2 histograms that userspace reads and
 * differences periodically. */
#pragma once

#include "lib/common.h"
#include "lib/connagg.h"

#define TASK_RUNNING 0

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pr_sched);
} sched_stats SEC(".maps");

static __always_inline __u32 log2_bucket(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r >= PR_SCHED_BUCKETS ? PR_SCHED_BUCKETS - 1 : r;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(pr_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	/* Cheapest first: this runs on every context switch of the host. The arguments are trusted
	 * pointers (tp_btf), read with plain loads rather than probe-read helper calls, and the
	 * idle task (pid 0, half of every switch on a quiet CPU) is never tracked: no lookup. */
	__u32 ptid = prev->pid;
	__u32 ntid = next->pid;
	struct pr_task *pt = ptid ? tracked_tid(ptid) : NULL;
	struct pr_task *nt = ntid ? tracked_tid(ntid) : NULL;
	struct pr_sched *s;
	__u32 zero = 0;
	__u64 now;

	/* Separate tests: a merged `pt | nt` is a pointer OR, which the verifier refuses. */
	barrier_var(pt);
	if (!pt) {
		barrier_var(nt);
		if (!nt)
			return 0;
	}
	s = bpf_map_lookup_elem(&sched_stats, &zero);
	if (!s)
		return 0;
	now = bpf_ktime_get_boot_ns();
	if (pt) {
		if (pt->switch_ts && now > pt->switch_ts) {
			__u64 d = now - pt->switch_ts;

			s->run_ns += d;
			s->run_hist[log2_bucket(d) & (PR_SCHED_BUCKETS - 1)]++;
		}
		s->switches++;
		if (preempt || prev_state == TASK_RUNNING)
			s->involuntary++;
		else
			s->voluntary++;
		pt->switch_ts = now;
		/* A thread switched out holding a count of repeated connects reports it when it
		 * goes to sleep or has held it a second (lib/connagg.h). */
		if (pt->flags & PR_TASK_CONN_COUNT)
			conn_agg_switch(pt, ptid, now,
					!preempt && prev_state != TASK_RUNNING);
	}
	if (nt) {
		if (nt->switch_ts && now > nt->switch_ts) {
			__u64 d = now - nt->switch_ts;

			s->off_ns += d;
			s->off_hist[log2_bucket(d) & (PR_SCHED_BUCKETS - 1)]++;
		}
		nt->switch_ts = now;
	}
	return 0;
}
