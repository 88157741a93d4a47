/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Maps and helpers shared by every hook family. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "../intf.h"

#define EACCES 13
#define EPERM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define AF_PACKET 17

/* Ring buffer to userspace. Userspace sets the size before load (--ringbuf-size). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* The priority ring: records of the kinds that matter most (exec, fork, exit, connect, ptrace,
 * decisions, opens of the sensitive files userspace put in watch_open). An agent that floods the
 * main ring with ordinary opens or sends cannot push these out; they are lost only if it floods
 * with them, and every loss is counted and alerted on. Userspace sizes it before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events_hi SEC(".maps");

/* Files whose opens go to the priority ring (key: kernel dev_t and inode). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct pr_file_key);
	__type(value, __u32);
} watch_open SEC(".maps");

/* The tracked set: thread ids of the agent's tree. A thread joins at fork (in the kernel, before
 * it first runs) and leaves at exit. Keyed by thread id so a ptrace target named by any thread id
 * is recognised. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct pr_task);
} tracked SEC(".maps");

/* Session slots (intf.h, PR_SESSIONS): what a session's tasks share. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PR_SESSIONS);
	__type(key, __u32);
	__type(value, struct pr_session);
} sessions SEC(".maps");

/* Per slot: how many record numbers the session has taken (its last kseq). Userspace reads it at
 * the end of a session: numbers above the last record that arrived were lost too. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PR_SESSIONS);
	__type(key, __u32);
	__type(value, __u64);
} session_seq SEC(".maps");

/* Records the kernel could not deliver, by enum pr_kind. Userspace sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PR_KIND_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* Per-CPU scratch space: records are built here and copied out with their real length, so the
 * ring buffer holds only the bytes that matter. */
union pr_scratch {
	struct pr_exec exec;
	struct pr_open open;
	struct pr_send send;
	struct pr_connect connect;
	struct pr_path path;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union pr_scratch);
} scratch SEC(".maps");

/* Path scratch space and the state of the dentry walk (see lib/path.h). */
struct pr_pathbuf {
	__u8 b[2 * PR_PATH_MAX];
	__u64 dentry;
	__u64 vfsmnt;
	__u64 mnt;
	__u32 pos;
	__u32 trunc;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pr_pathbuf);
} pathbuf SEC(".maps");

static __always_inline void count_lost(__u32 kind)
{
	__u64 *c = bpf_map_lookup_elem(&lost, &kind);
	if (c)
		__sync_fetch_and_add(c, 1);
}

static __always_inline __u32 current_tid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}

/* The cheapest test of "is this thread tracked?", first in every hot program (an inlined array
 * access, no helper call, no hash): per slot (thread id modulo PR_TRACK_SLOTS), how many entries
 * of the tracked set may have that slot. Every insertion adds one before the entry exists (the
 * kernel's at fork and exec, userspace's through the mmapped map: Sensor::track,
 * track_self_raw), and only a delete that removed an entry takes one off, after it; so a tracked
 * thread's slot is never 0, and a 0 means untracked without the lookup. A count may stay too
 * high (an entry written twice, or one left behind by an exec that changed thread ids): that
 * only costs the lookup. Exact while pid_max <= PR_TRACK_SLOTS (this host's default 32768);
 * above it, ids share slots and only the lookup decides. A map, not a global: the BPF LSM
 * object shares maps with this one by name, and a .bss of its own would read all zeros. */
struct pr_track_counts {
	__u32 n[PR_TRACK_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct pr_track_counts);
} track_count SEC(".maps");

static __always_inline __u32 *track_slot(__u32 tid)
{
	__u32 zero = 0;
	struct pr_track_counts *c = bpf_map_lookup_elem(&track_count, &zero);

	return c ? &c->n[tid & (PR_TRACK_SLOTS - 1)] : NULL;
}

static __always_inline int track_maybe(__u32 tid)
{
	__u32 *n = track_slot(tid);

	return n && *n;
}

/* Insert into `tracked` (counting first, see track_count). */
static __always_inline long track_insert(__u32 tid, struct pr_task *init)
{
	__u32 *n = track_slot(tid);

	if (!n)
		return -1;
	__sync_fetch_and_add(n, 1);
	return bpf_map_update_elem(&tracked, &tid, init, BPF_ANY);
}

/* Remove from `tracked`; the slot's count drops only if an entry went. */
static __always_inline void track_remove(__u32 tid)
{
	__u32 *n = track_slot(tid);

	if (!bpf_map_delete_elem(&tracked, &tid) && n)
		__sync_fetch_and_add(n, -1);
}

static __always_inline struct pr_task *tracked_tid(__u32 tid)
{
	if (!track_maybe(tid))
		return NULL;
	return bpf_map_lookup_elem(&tracked, &tid);
}

/* Give a record its session's next number. Called while the header is filled, before the ring
 * reserve, so a record the ring refuses leaves a gap in the numbers userspace can prove. */
static __always_inline void stamp_session(struct pr_hdr *h, __u32 slot)
{
	__u64 *seq;

	h->session = slot;
	h->kseq = 0;
	if (!slot)
		return;
	seq = bpf_map_lookup_elem(&session_seq, &slot);
	if (seq)
		h->kseq = __sync_fetch_and_add(seq, 1) + 1;
}

/* The session slot of a tracked thread, 0 for an untracked one. */
static __always_inline __u32 session_of(__u32 tid)
{
	struct pr_task *t = tracked_tid(tid);

	return t ? t->session : 0;
}

/* The arguments of the current syscall (x86-64: di, si, dx, r10, r8, r9), from the user
 * registers the kernel saved at entry; a program on a syscall's exit reads them here instead of
 * a program on its entry saving them. A ptrace or seccomp rewrite at entry is in them too: they
 * are what the kernel used. Nothing rewrites them between the syscall and its exit tracepoint
 * (a ptrace exit stop comes after it). */
struct pr_args {
	__u64 a[6];
};

static __always_inline void syscall_args(struct pr_args *p)
{
	/* A BTF pointer: plain loads, no helper call per register. */
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	p->a[0] = regs->di;
	p->a[1] = regs->si;
	p->a[2] = regs->dx;
	p->a[3] = regs->r10;
	p->a[4] = regs->r8;
	p->a[5] = regs->r9;
}

static __always_inline void *scratch_buf(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

/* Userspace sets this where the kernel has the bpf_rdonly_cast kfunc (6.2 and later) and it
 * loads the plain-load programs (sensor `FileReads::Auto`); a kernel that refuses them gets the
 * object again with this 0. */
const volatile __u32 pr_btf_casts = 0;

/* The current task as a BTF pointer. Loads through it are plain loads the kernel makes
 * fault-safe either way; the difference is at load time. From 6.2 on, the verifier answers each
 * load of a pointer field from a *trusted* pointer (what bpf_get_current_task_btf() returns:
 * task->group_leader, task->files) with up to five name searches over the kernel's whole BTF
 * (btf_nested_type_is_trusted, "task_struct__safe_rcu" and its kin; linear on 6.18): 70% of
 * loading the object on our machines. A pointer cast with bpf_rdonly_cast is untrusted, and
 * loads from it search nothing. 6.1 has neither the kfunc nor the searches: the constant keeps
 * the (weak, unresolved there) kfunc call on a path its verifier never walks. */
static __always_inline struct task_struct *current_task_ptr(void)
{
	if (pr_btf_casts)
		return bpf_core_cast((void *)bpf_get_current_task(), struct task_struct);
	return bpf_get_current_task_btf();
}

/* The header's fields but its number (fill_hdr_unnumbered says where to call this inline). */
static __always_inline void put_hdr(struct pr_hdr *h, __u32 kind, __u32 size)
{
	/* The BTF task pointer: its fields are plain (fault-safe) loads, where BPF_CORE_READ on
	 * the untyped one is a helper call per field. */
	struct task_struct *task = current_task_ptr();
	struct task_struct *leader = task->group_leader;
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();

	h->kind = kind;
	h->size = size;
	h->ts_boot_ns = bpf_ktime_get_boot_ns();
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->ppid = task->real_parent->tgid;
	h->uid = (__u32)ugid;
	h->gid = ugid >> 32;
	h->loginuid = bpf_core_field_exists(task->loginuid) ? task->loginuid.val : 0xffffffff;
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->start_boottime = leader->start_boottime;
	h->exec_seq = leader->self_exec_id;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* The header without its number: for the unnumbered kinds (PR_EV_OPEN_SEEN), set
 * h->session and h->kseq yourself.
 *
 * A global function, verified once per program instead of at every call site on every path the
 * verifier walks (each walk of the header cost current_task_ptr's name searches where the
 * kernel lacks bpf_rdonly_cast or refuses it, and verification time everywhere). Two rules
 * follow. The caller must not read *h back from its stack afterwards: the verifier does not
 * see the call write it. And a global function is verified even where its call is dead code:
 * a program that calls it only on a path a load-time constant turns off (the SNI program where
 * cgroup_skb has no task helpers) calls put_hdr instead. */
__noinline int fill_hdr_unnumbered(struct pr_hdr *h, __u32 kind, __u32 size)
{
	if (!h)
		return 0;
	put_hdr(h, kind, size);
	return 0;
}

static __always_inline void fill_hdr(struct pr_hdr *h, __u32 kind, __u32 size)
{
	fill_hdr_unnumbered(h, kind, size);
	stamp_session(h, session_of(current_tid()));
}

/* One more repeat at `now` into a repeat count (lib/openagg.h, lib/connagg.h): how many since
 * the last report, the first's time and the last's. */
static __always_inline void count_repeat(__u64 *repeats, __u64 *first_ts, __u64 *last_ts,
					 __u64 now)
{
	if (!*repeats)
		*first_ts = now;
	*repeats += 1;
	*last_ts = now;
}

/* Copy a record out of scratch space; a full ring buffer is counted, never silent.
 *
 * Waking the consumer costs an irq_work (a self-IPI, in a guest a VM exit) per record: measured
 * at 10-60x the rest of a program's cost when events are sparse (bench/FINDINGS.md). So a record
 * wakes the consumer only when it can matter now:
 * - urgent kinds (urgent_kind: exec, network destinations, DNS, ptrace, decisions, SNI, io_uring
 *   set-up, sensitive and refused opens) wake it at once, unless a wake-up it has not yet read
 *   past is on its way (wake_pending); a destination the same process was already woken for
 *   within PR_DEST_WAKE_NS is not urgent again (dest_is_news): a connect storm to one server costs
 *   one wake-up per second, not one per connect; and while urgent records flow the consumer
 *   polls every PR_URGENT_WAIT_MS and says so (pr_read_by_ns): then they wake nobody, so a burst
 *   of execs or connects pays for the first wake-up only;
 * - any record wakes it when none did for PR_WAKE_GAP_NS (the consumer then reads a trickle at
 *   once), and when it crosses the fill mark (a burst is drained before it overflows).
 * Everything else waits for the consumer's own timer, which bounds how long a record sits in the
 * ring: after a wake-up, or after it wrote pr_last_wake_ns, the consumer reads again within
 * PR_WAKE_GAP_NS (FLUSH_WAIT in crates/runtime/src/monitor.rs; docs/kernel.md says it). */
#define PR_WAKE_FRACTION 8  /* wake when more than 1/8 of the ring is unread */
#define PR_WAKE_GAP_NS (PR_WAKE_GAP_MS * 1000ULL * 1000)
#define PR_DEST_WAKE_NS (1000ULL * 1000 * 1000)

/* When a record last woke the consumer (any CPU; a race wakes it twice, which is harmless), or
 * when the consumer last said it reads again within PR_WAKE_GAP_NS (it writes this too). */
__u64 pr_last_wake_ns = 0;

/* While urgent records flow, the consumer reads on a short timer (PR_URGENT_WAIT_MS) and writes
 * here the time by which it reads again; an urgent record written before then needs no wake-up.
 * A forced wake-up is paid in the producer's context, on the agent's time: measured on our VMs,
 * it made pr_exec 33 us instead of 2.9 us and an exec storm 1.109x instead of 1.007x
 * (bench/FINDINGS.md, round 8). 0: no promise (the consumer waits longer or is not polling). */
__u64 pr_read_by_ns = 0;

/* Each ring's producer position just after its last forced wake-up (0: events, 1: events_hi).
 * While the consumer has not read up to it, a wake-up is on its way or the consumer is awake
 * and reading: another one would cost the producer and tell the consumer nothing. */
__u64 pr_wake_pos[2] = {};

/* Nonzero when the ring refused the record (counted). */
static __always_inline int emit_flags(void *ring, void *rec, __u32 size, __u32 kind, __u64 flags)
{
	int err = bpf_ringbuf_output(ring, rec, size, flags);

	if (err)
		count_lost(kind);
	return err;
}

/* Kinds that go to the priority ring whatever their content. */
static __always_inline int high_value(__u32 kind)
{
	return kind == PR_EV_EXEC || kind == PR_EV_FORK || kind == PR_EV_EXIT ||
	       kind == PR_EV_CONNECT || kind == PR_EV_PTRACE || kind == PR_EV_DECISION;
}

/* Kinds detection or an operator acts on as they come: they wake the consumer. Forks, exits,
 * ordinary opens and TLS plaintext wait for the next wake-up or the consumer's timer. */
static __always_inline int urgent_kind(__u32 kind)
{
	return kind == PR_EV_EXEC || kind == PR_EV_CONNECT || kind == PR_EV_SEND ||
	       kind == PR_EV_DNS_ANSWER || kind == PR_EV_PTRACE || kind == PR_EV_DECISION ||
	       kind == PR_EV_TLS_SNI || kind == PR_EV_URING_SETUP;
}

/* Has the consumer not yet read past the last forced wake-up of ring `hi`? */
static __always_inline int wake_pending(void *ring, __u32 hi)
{
	__u64 *pos = &pr_wake_pos[hi & 1];

	return bpf_ringbuf_query(ring, BPF_RB_CONS_POS) < *pos;
}

static __always_inline void woke(void *ring, __u32 hi, __u64 now)
{
	pr_last_wake_ns = now;
	pr_wake_pos[hi & 1] = bpf_ringbuf_query(ring, BPF_RB_PROD_POS);
}

/* Emit to `ring` (hi: 1 for events_hi), waking the consumer as the rules above say. An urgent
 * record that finds a wake-up pending still asks for the ring's own wake-up when the consumer has
 * read everything before it (flags 0): that closes the race where the consumer went to sleep
 * between the test and the write. */
static __always_inline int emit_ring(void *ring, __u32 hi, void *rec, __u32 size, __u32 kind,
				     int urgent)
{
	__u64 unread = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	__u64 mark = bpf_ringbuf_query(ring, BPF_RB_RING_SIZE) / PR_WAKE_FRACTION;
	__u64 now = bpf_ktime_get_ns();
	/* Only the record that crosses the mark: once woken, the consumer drains until the ring is
	 * empty, and waking it on every record while it is behind would make the producer pay the
	 * wake-up cost on each one (measured: an open storm ran 8.8x slower). */
	int wake = (unread <= mark && unread + size > mark) || now - pr_last_wake_ns > PR_WAKE_GAP_NS;
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (urgent && !wake) {
		if (now < pr_read_by_ns)
			; /* the consumer reads by then on its own timer */
		else if (wake_pending(ring, hi))
			flags = 0;
		else
			wake = 1;
	}
	if (wake)
		flags = BPF_RB_FORCE_WAKEUP;
	int err = emit_flags(ring, rec, size, kind, flags);

	if (wake)
		woke(ring, hi, now);
	return err;
}

static __always_inline void emit(void *rec, __u32 size, __u32 kind)
{
	if (high_value(kind))
		emit_ring(&events_hi, 1, rec, size, kind, urgent_kind(kind));
	else
		emit_ring(&events, 0, rec, size, kind, urgent_kind(kind));
}

/* An open the consumer should see at once (a sensitive file's, a refused one). */
static __always_inline void emit_open_urgent(void *ring, __u32 hi, void *rec, __u32 size)
{
	emit_ring(ring, hi, rec, size, PR_EV_OPEN, 1);
}

/* Rare records an operator or an alert is waiting on (ptrace, enforcement decisions). */
static __always_inline void emit_urgent(void *rec, __u32 size, __u32 kind)
{
	emit_flags(&events_hi, rec, size, kind, BPF_RB_FORCE_WAKEUP);
}

/* The struct file behind a descriptor of the current task, as an address (0: none).
 *
 * A global function, as fill_hdr_unnumbered is. Probe reads instead of the plain loads would
 * also keep the verifier from searching names (current_task_ptr), at three helper calls more
 * per open: the tracked open storm's program went from 13.4% to 15.2% of the loop. */
__noinline __u64 fd_file_addr(long fd)
{
	/* Plain loads through the BTF task pointer (a helper call each with BPF_CORE_READ); the
	 * slot itself is a pointer to pointer, which BTF does not follow: one probe read. */
	struct task_struct *task = current_task_ptr();
	struct fdtable *fdt = task->files->fdt;
	struct file **fds;
	struct file *f = NULL;

	if (fd < 0 || !fdt || fd >= fdt->max_fds)
		return 0;
	fds = fdt->fd;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return 0;
	return (__u64)f;
}

/* The struct file behind a descriptor of the current task, or NULL. */
static __always_inline struct file *fd_file(long fd)
{
	return (struct file *)fd_file_addr(fd);
}
