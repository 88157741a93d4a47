/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Repeated opens, counted instead of recorded one by one (docs/kernel.md "Repeated opens").
 *
 * For each file a thread opens (an ordinary open: not sensitive, not refused), open_agg keeps
 * the thread's recorded open of it. A later open identical to it (same file by device and
 * inode, same name by dentry, mount, name and parent, same flags and syscall, a success) adds to
 * the entry's count instead of making a record; the same file under another name or flags
 * reports the count and becomes the entry. The count is reported as a copy of the recorded open
 * with `repeats` and `last_ts_ns` set: once a second while the repeats go on, when the thread
 * execs or exits, and by userspace for whatever is left when it stops. Keyed by thread: a
 * thread runs one program at a time, so an entry needs no lock and no count can land on the
 * wrong file. The map is a plain hash (no eviction): a thread that finds it full gets no entry,
 * and each of those opens is recorded; so is every open whose path is longer than an entry
 * keeps (PR_AGG_PATH_MAX). */
#pragma once

#include "common.h"

#define PR_REPEAT_REPORT_NS (1000ULL * 1000 * 1000)
#define PR_TASK_OPEN_AGG 2 /* pr_task.flags: the thread has open_agg entries, agg_dev/ino head them */
#define PR_AGG_ENTRIES 4096

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PR_AGG_ENTRIES);
	/* Preallocated (~2.3 MiB): an entry is made at every first open of a file by a thread and
	 * dropped at its exit, and allocating them as they came (BPF_F_NO_PREALLOC, whose caches
	 * are refilled and drained through irq_work) measured 13.6 us per thread exit against
	 * 3.4 us preallocated (bench/FINDINGS.md, round 7). */
	__type(key, struct pr_open_agg_key);
	__type(value, struct pr_open_agg);
} open_agg SEC(".maps");

/* Report the entry's count (if any) as a record: a copy of the recorded open, numbered now in
 * `slot`. A ring that refuses it is counted like any record, and the count stays in the entry
 * for the next report. Uses the scratch record: call it before building a new one there. */
static __always_inline void open_agg_report(struct pr_open_agg *a, __u32 slot, __u64 now)
{
	struct pr_open *ev;
	__u64 size = a->rec_size; /* 64 bits: a 32-bit copy would be tested, not the value used */
	__u64 n = a->repeats;

	if (!n)
		return;
	ev = scratch_buf();
	if (!ev || size < offsetof(struct pr_open, data))
		return;
	/* Apart and behind a barrier: clang otherwise merges the two bounds into one range test
	 * whose result the verifier does not follow ("R2 unbounded memory access"). */
	barrier_var(size);
	if (size > sizeof(struct pr_open_kept))
		return;
	if (bpf_probe_read_kernel(ev, size, &a->rec))
		return;
	ev->hdr.ts_boot_ns = a->first_ts;
	ev->repeats = n;
	ev->last_ts_ns = a->last_ts;
	stamp_session(&ev->hdr, slot);
	if (emit_ring(&events, 0, ev, size, PR_EV_OPEN, 0))
		return;
	a->repeats = 0;
	a->flush_ts = now;
}

struct pr_agg_end {
	struct pr_open_agg_key k; /* the entry to end next */
	__u32 slot;
	__u32 _pad;
	__u64 now;
};

/* One entry of a thread's list: report its count, drop it, go on to the one made before it. */
static long agg_end_step(__u32 i, struct pr_agg_end *c)
{
	struct pr_open_agg *a = bpf_map_lookup_elem(&open_agg, &c->k);
	__u64 dev, ino;

	if (!a)
		return 1;
	open_agg_report(a, c->slot, c->now);
	dev = a->next_dev;
	ino = a->next_ino;
	bpf_map_delete_elem(&open_agg, &c->k);
	if (!ino)
		return 1;
	c->k.dev = dev;
	c->k.ino = ino;
	return 0;
}

/* Thread `tid` (t its tracked-set entry) ends its entries: report what they counted and drop
 * them. Each thread's entries form a list through the map, newest first (pr_task.agg_dev/ino,
 * pr_open_agg.next_dev/ino), so this costs what the thread made, not a walk of the whole map
 * (4,096 buckets: ~22 us at every exit and exec of a thread that opened a file). */
static __always_inline void open_agg_end(struct pr_task *t, __u32 tid, __u32 slot)
{
	struct pr_agg_end c = { .k = { .tid = tid }, .slot = slot };

	if (!t || !(t->flags & PR_TASK_OPEN_AGG))
		return;
	t->flags &= ~PR_TASK_OPEN_AGG; /* only the thread itself writes its flags here */
	c.k.dev = t->agg_dev;
	c.k.ino = t->agg_ino;
	c.now = bpf_ktime_get_boot_ns();
	bpf_loop(PR_AGG_ENTRIES, agg_end_step, &c, 0);
}
