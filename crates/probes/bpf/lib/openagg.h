/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Repeated opens, counted instead of recorded one by one (docs/kernel.md "Repeated opens").
 *
 * Each thread keeps its last recorded ordinary open (not sensitive, not refused) in open_agg.
 * An open identical to it (same file by device and inode, same name by dentry, mount, name and
 * parent, same flags and syscall, a success) adds to the entry's count instead of making a
 * record. The count is reported as a copy of the recorded open with `repeats` and `last_ts_ns`
 * set, when the thread opens another file, execs or exits, once a second while the repeats go
 * on, and by userspace for whatever is left when it stops. Keyed by thread, not process: a
 * thread runs one program at a time, so an entry needs no lock and no count can land on the
 * wrong file. The map is a plain hash (no eviction): a thread that finds it full has no entry,
 * and each of its opens is recorded. */
#pragma once

#include "common.h"

#define PR_REPEAT_REPORT_NS (1000ULL * 1000 * 1000)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* ~4.3 KiB a value: memory only for threads that open */
	__type(key, __u32);
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
	if (size > sizeof(struct pr_open))
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

/* The thread `tid` ends its entry (exit, exec): report what it counted and drop it. */
static __always_inline void open_agg_end(__u32 tid, __u32 slot)
{
	struct pr_open_agg *a = bpf_map_lookup_elem(&open_agg, &tid);

	if (!a)
		return;
	open_agg_report(a, slot, bpf_ktime_get_boot_ns());
	bpf_map_delete_elem(&open_agg, &tid);
}
