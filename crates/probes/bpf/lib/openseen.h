/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Reads the session recorded already (docs/kernel.md "Reads recorded once per session").
 *
 * Every process an agent starts opens the same files: the loader's cache and the libraries, the
 * locale, the repository's config and HEAD. open_agg (openagg.h) counts the repeats of one
 * thread; across threads each first open was a whole record, path and all (88% of an agent
 * workload's records). open_seen keeps, per session, the ordinary reads it recorded whole (file
 * by device and inode, name by dentry, mount, name and parent, flags), each with that record's
 * number. A later identical read by any thread of the session sends only PR_EV_OPEN_SEEN (no path,
 * no number), which userspace folds into one `file_open_seen` record per process that names each
 * file by its recorded open. Only reads, and opens of the harmless memory devices (/dev/null and
 * the like, file.h harmless_dev) whatever their flags: any other open that writes, creates or
 * truncates, a refused or sensitive open is recorded whole every time, as before. LRU: an
 * evicted entry costs a whole record again, never a missing one. Userspace drops a slot's entries
 * when its session ends. */
#pragma once

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PR_SEEN_ENTRIES);
	__type(key, struct pr_open_seen_key);
	__type(value, __u64); /* the recorded open's kseq */
} open_seen SEC(".maps");

/* An ordinary read: neither the access mode nor the creation bits write. */
static __always_inline int plain_read(__u32 flags)
{
	return !(flags & (00000003 | 00000100 | 00001000)); /* O_ACCMODE, O_CREAT, O_TRUNC */
}

/* A read of a file the session recorded: send what tells this open apart (no path), and say so.
 * 0: not seen, the caller records it whole. */
static __always_inline int open_seen_send(struct pr_open_seen_key *k, struct pr_open *ev)
{
	struct pr_open_seen s = {};
	__u64 *first = bpf_map_lookup_elem(&open_seen, k);

	if (!first || !*first)
		return 0;
	fill_hdr_unnumbered(&s.hdr, PR_EV_OPEN_SEEN, sizeof(s));
	s.hdr.session = k->slot;
	s.hdr.kseq = 0;
	s.first_kseq = *first;
	s.dev = ev->dev;
	s.ino = ev->ino;
	s.ret = ev->ret;
	s.flags = ev->flags;
	s.syscall = ev->syscall;
	emit_ring(&events, 0, &s, sizeof(s), PR_EV_OPEN_SEEN, 0);
	return 1;
}
