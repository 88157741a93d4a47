/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Process lifecycle: the tracked set grows at fork and shrinks at exit, in the kernel. */
#pragma once

#include "lib/path.h"
#include "enforce.h"
#include "agent.h"
#include "lib/openagg.h"
#include "lib/connagg.h"

/* Report what thread `tid` counted (its repeated opens and connects) and drop its entries, at
 * its exec or exit, numbered in session `slot`. A global function, verified once per program
 * instead of at each inlined copy (fill_hdr_unnumbered): pr_exec had four copies, a quarter of
 * the object's verification time. */
__noinline int agg_end(__u32 tid, __u32 slot)
{
	struct pr_task *t = tracked_tid(tid);

	open_agg_end(t, tid, slot);
	conn_agg_end(t, tid);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(pr_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptid = BPF_CORE_READ(parent, pid);
	__u32 ctid = BPF_CORE_READ(child, pid);
	struct pr_task init = {};
	struct pr_fork ev = {};
	struct pr_task *pt = tracked_tid(ptid);

	if (!pt)
		return 0;
	init.session = pt->session; /* the child is in its parent's session */
	/* The child has not run yet: joining here leaves no window where it runs unwatched. */
	if (track_insert(ctid, &init))
		count_lost(PR_LOST_TRACK_FULL);
	if (ctid != BPF_CORE_READ(child, tgid))
		return 0; /* a new thread, not a new process */
	fill_hdr(&ev.hdr, PR_EV_FORK, sizeof(ev));
	ev.child_pid = ctid;
	emit(&ev, sizeof(ev), PR_EV_FORK);
	return 0;
}

/* The environment variables an exec record keeps: those that make an interpreter or the dynamic
 * loader run a file besides the one argv names (a shell's BASH_ENV and ENV, NODE_OPTIONS and
 * NODE_PATH, PYTHONPATH and PYTHONHOME, PERL5OPT, PERL5LIB and PERLLIB, RUBYOPT and RUBYLIB,
 * zsh's ZDOTDIR, php's PHPRC and PHP_INI_SCAN_DIR, a JVM's JAVA_TOOL_OPTIONS, _JAVA_OPTIONS,
 * JDK_JAVA_OPTIONS and CLASSPATH, LD_PRELOAD, LD_AUDIT, LD_LIBRARY_PATH), in an environment too large to copy
 * whole (pr_exec). A variable is matched on its first eight bytes
 * (userspace keeps only the exact names and drops the rest). */
#define PR_W8(a, b, c, d, e, f, g, h)                                                             \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | (__u64)(e) << 32 |   \
	 (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)

static __always_inline int env_wanted(const __u8 *s)
{
	__u64 w;

	__builtin_memcpy(&w, s, sizeof(w));
	if ((__u32)w == (__u32)PR_W8('E', 'N', 'V', '=', 0, 0, 0, 0))
		return 1;
	/* PHPRC=: six bytes. */
	if ((w & 0xffffffffffffULL) == PR_W8('P', 'H', 'P', 'R', 'C', '=', 0, 0))
		return 1;
	switch (w) {
	case PR_W8('B', 'A', 'S', 'H', '_', 'E', 'N', 'V'):
	case PR_W8('N', 'O', 'D', 'E', '_', 'O', 'P', 'T'):
	case PR_W8('N', 'O', 'D', 'E', '_', 'P', 'A', 'T'):
	case PR_W8('P', 'Y', 'T', 'H', 'O', 'N', 'P', 'A'):
	case PR_W8('P', 'Y', 'T', 'H', 'O', 'N', 'H', 'O'):
	case PR_W8('P', 'E', 'R', 'L', '5', 'O', 'P', 'T'):
	case PR_W8('P', 'E', 'R', 'L', '5', 'L', 'I', 'B'):
	case PR_W8('P', 'E', 'R', 'L', 'L', 'I', 'B', '='):
	case PR_W8('R', 'U', 'B', 'Y', 'O', 'P', 'T', '='):
	case PR_W8('R', 'U', 'B', 'Y', 'L', 'I', 'B', '='):
	case PR_W8('L', 'D', '_', 'P', 'R', 'E', 'L', 'O'):
	case PR_W8('L', 'D', '_', 'A', 'U', 'D', 'I', 'T'):
	case PR_W8('L', 'D', '_', 'L', 'I', 'B', 'R', 'A'):
	case PR_W8('Z', 'D', 'O', 'T', 'D', 'I', 'R', '='):
	case PR_W8('P', 'H', 'P', '_', 'I', 'N', 'I', '_'):
	case PR_W8('J', 'A', 'V', 'A', '_', 'T', 'O', 'O'):
	case PR_W8('_', 'J', 'A', 'V', 'A', '_', 'O', 'P'):
	case PR_W8('J', 'D', 'K', '_', 'J', 'A', 'V', 'A'):
	case PR_W8('C', 'L', 'A', 'S', 'S', 'P', 'A', 'T'):
		return 1;
	}
	return 0;
}

/* Walk state of an exec's environment (env_step). */
struct env_walk {
	__u64 p;         /* the next byte to read */
	__u64 end;       /* mm->env_end */
	__u32 start;     /* where the kept variables start in data[] (after argv) */
	__u32 off;       /* where the next kept variable goes */
	__u32 inside;    /* p is inside a string the last read cut, not at a string's start */
	__u32 flags;     /* PR_ENV_UNREAD | PR_ENV_CUT, or PR_ENV_RAW */
};

/* Bound on the walk: strings read (a string longer than PR_ENV_VAR_MAX takes one read per
 * PR_ENV_VAR_MAX - 1 bytes). The environment and argv share the kernel's ARG_MAX (a quarter of
 * the stack limit, 2 MiB by default), so the walk reads an environment of long strings whole;
 * only one of more than this many variables is left unread (and flagged). */
#define PR_ENV_STEPS 4096

/* One string of the environment: read where a kept variable would go, kept if it is one. */
static long env_step(__u64 i, void *ctx)
{
	struct env_walk *w = ctx;
	struct pr_exec *ev = scratch_buf();
	__u32 off = w->off;
	long n;
	int cut;

	if (!ev || w->p >= w->end)
		return 1;
	barrier_var(off);
	if (off > sizeof(ev->data) - PR_ENV_VAR_MAX) {
		w->flags |= PR_ENV_UNREAD | PR_ENV_CUT;
		return 1;
	}
	n = bpf_probe_read_user_str(&ev->data[off], PR_ENV_VAR_MAX, (void *)w->p);
	if (n <= 0) {
		w->flags |= PR_ENV_UNREAD;
		return 1;
	}
	/* n counts the NUL: a string of PR_ENV_VAR_MAX - 1 bytes or more was cut there, and the
	 * next read goes on from where this one stopped. */
	cut = n == PR_ENV_VAR_MAX;
	if (!w->inside && env_wanted(&ev->data[off])) {
		if (off + n - w->start > PR_ENV_KEPT_MAX)
			w->flags |= PR_ENV_CUT;
		else
			w->off = off + n;
		if (cut)
			w->flags |= PR_ENV_CUT;
	}
	w->p += cut ? n - 1 : n;
	w->inside = cut;
	return 0;
}

/* struct inode's times as kernels before 6.11 lay them out: timespec64 i_mtime and i_ctime up
 * to 6.5, the ctime renamed __i_ctime in 6.6 and the mtime __i_mtime in 6.7; from 6.11 seconds
 * and nanoseconds are apart (vmlinux.h's i_mtime_sec and kin). */
struct inode___ts61 {
	struct timespec64 i_mtime;
	struct timespec64 i_ctime;
} __attribute__((preserve_access_index));
struct inode___ts66 {
	struct timespec64 i_mtime;
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));
struct inode___ts67 {
	struct timespec64 __i_mtime;
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

/* From 6.13 the top bit of the ctime's nanoseconds marks a ctime someone read (multigrain
 * timestamps), as stat(2) never shows it; a nanosecond count is below 2^30. */
#define PR_NSEC_MASK ((1U << 30) - 1)

/* The mtime and ctime of `t`, an inode of one of the layouts above, as timespec64 fields. */
#define PR_READ_TIMES(ev, t, mtime, ctime)                                                        \
	do {                                                                                      \
		(ev)->mtime_sec = BPF_CORE_READ(t, mtime.tv_sec);                                  \
		(ev)->mtime_nsec = BPF_CORE_READ(t, mtime.tv_nsec);                                \
		(ev)->ctime_sec = BPF_CORE_READ(t, ctime.tv_sec);                                  \
		(ev)->ctime_nsec = BPF_CORE_READ(t, ctime.tv_nsec);                                \
	} while (0)

/* The executable's size and times at the exec (pr_exec.size and the rest). */
static __always_inline void exec_stamp(struct pr_exec *ev, struct inode *i)
{
	struct inode___ts67 *t67 = (void *)i;
	struct inode___ts66 *t66 = (void *)i;
	struct inode___ts61 *t61 = (void *)i;

	ev->size = BPF_CORE_READ(i, i_size);
	if (bpf_core_field_exists(i->i_mtime_sec)) {
		ev->mtime_sec = BPF_CORE_READ(i, i_mtime_sec);
		ev->mtime_nsec = BPF_CORE_READ(i, i_mtime_nsec);
		ev->ctime_sec = BPF_CORE_READ(i, i_ctime_sec);
		ev->ctime_nsec = BPF_CORE_READ(i, i_ctime_nsec);
	} else if (bpf_core_field_exists(t67->__i_mtime)) {
		PR_READ_TIMES(ev, t67, __i_mtime, __i_ctime);
	} else if (bpf_core_field_exists(t66->__i_ctime)) {
		PR_READ_TIMES(ev, t66, i_mtime, __i_ctime);
	} else {
		PR_READ_TIMES(ev, t61, i_mtime, i_ctime);
	}
	ev->mtime_nsec &= PR_NSEC_MASK;
	ev->ctime_nsec &= PR_NSEC_MASK;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(pr_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tid = current_tid();
	__u32 old = old_pid;
	struct pr_exec *ev;
	struct file *file;
	struct mm_struct *mm;
	__u64 arg_start, arg_end, alen;
	__u32 flen, trunc = 0, size;

	if (!tracked_tid(tid)) {
		/* A non-leader thread that execs takes over the leader's pid; an exec matching an
		 * agent rule (`proctor daemon`) starts a new tracked tree, in a session of its own. */
		struct pr_task init = {};
		struct pr_task *ot = tracked_tid(old);

		if (ot) {
			init.session = ot->session;
		} else {
			struct file *f = BPF_CORE_READ(bprm, file);
			struct pr_file_key k = {
				.dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev),
				.ino = BPF_CORE_READ(f, f_inode, i_ino),
			};
			__u32 rule = agent_rule(&k);

			if (!rule)
				return 0;
			init.session = session_alloc(rule);
		}
		if (track_insert(tid, &init))
			count_lost(PR_LOST_TRACK_FULL);
	}
	/* The exec'ing thread's counted opens belong to the old image: report them (with the
	 * header of their recorded open) before its exec record, which reuses the scratch space.
	 * A non-leader thread took over the leader's pid: its entry is under its old one. */
	agg_end(tid, session_of(tid));
	if (old != tid)
		agg_end(old, session_of(tid));
	ev = scratch_buf();
	if (!ev)
		return 0;

	file = BPF_CORE_READ(bprm, file);
	ev->dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	ev->ino = BPF_CORE_READ(file, f_inode, i_ino);
	exec_stamp(ev, BPF_CORE_READ(file, f_inode));
	/* A pseudo file (a memfd) is named by its dentry name; a deleted file keeps the path it
	 * had. */
	int pseudo = pseudo_file(file);

	flen = copy_file_name(file, pseudo, ev->data, &trunc);
	ev->fileless = pseudo || BPF_CORE_READ(file, f_inode, i_nlink) == 0;
	ev->filename_len = flen;
	ev->filename_truncated = trunc;
	/* The credentials the exec committed: a set-user-ID file's owner as the effective uid. */
	ev->euid = BPF_CORE_READ(p, cred, euid.val);
	ev->egid = BPF_CORE_READ(p, cred, egid.val);

	/* argv is in place in the new image's memory: [arg_start, arg_end), NUL-separated. */
	mm = BPF_CORE_READ(p, mm);
	arg_start = BPF_CORE_READ(mm, arg_start);
	arg_end = BPF_CORE_READ(mm, arg_end);
	alen = arg_end > arg_start ? arg_end - arg_start : 0;
	ev->argv_truncated = 0;
	if (alen > PR_ARGV_MAX) {
		alen = PR_ARGV_MAX;
		ev->argv_truncated = 1;
	}
	if (bpf_probe_read_user(&ev->data[flen & (PR_PATH_MAX - 1)], alen & (2 * PR_ARGV_MAX - 1),
				(void *)arg_start)) {
		alen = 0;
		ev->argv_truncated = 1;
	}
	ev->argv_len = alen;

	/* The environment, [env_start, env_end), NUL-separated like argv, after argv. One that
	 * fits in PR_ENV_MAX (nearly all) is copied whole with one read, for userspace to keep
	 * only the variables it names (PR_ENV_RAW): reading it a string at a time cost ~150 ns a
	 * variable, ~5 us an exec. A larger one is walked a string at a time and only the
	 * variables env_wanted names are kept. */
	struct env_walk walk = {
		.p = BPF_CORE_READ(mm, env_start),
		.end = BPF_CORE_READ(mm, env_end),
		.start = (flen & (PR_PATH_MAX - 1)) + (alen & (2 * PR_ARGV_MAX - 1)),
	};
	__u64 elen = walk.end > walk.p ? walk.end - walk.p : 0;
	__u32 at = walk.start;

	walk.off = walk.start;
	/* clang knows at < PR_PATH_MAX + PR_ARGV_MAX and drops the mask; the 6.1 verifier does
	 * not follow that bound through the sum, so the mask is kept behind a barrier. */
	barrier_var(at);
	if (elen <= PR_ENV_MAX &&
	    !bpf_probe_read_user(&ev->data[at & (PR_PATH_MAX + PR_ARGV_MAX - 1)],
				 elen & (2 * PR_ENV_MAX - 1), (void *)walk.p)) {
		walk.off += elen;
		walk.flags = PR_ENV_RAW;
	} else if (bpf_loop(PR_ENV_STEPS, env_step, &walk, 0) == PR_ENV_STEPS && walk.p < walk.end) {
		walk.flags |= PR_ENV_UNREAD;
	}
	ev->env_len = walk.off - walk.start;
	ev->env_flags = walk.flags;

	size = offsetof(struct pr_exec, data) + walk.off;
	fill_hdr(&ev->hdr, PR_EV_EXEC, size);
	/* Clamp after the helper calls, behind a barrier: clang otherwise merges the clamp into
	 * arithmetic whose bound the 6.1 verifier does not follow, and it refuses the output
	 * ("R3 min value is negative"); newer verifiers accept either form. */
	barrier_var(size);
	if (size > sizeof(*ev))
		size = sizeof(*ev);
	ev->hdr.size = size;
	emit(ev, size, PR_EV_EXEC);

	/* A forbidden binary, by identity (device+inode), not by name. The new image has not run
	 * an instruction yet: SIGKILL lands before the return to user space. */
	struct pr_file_key key = { .dev = ev->dev, .ino = ev->ino };

	struct pr_config *cfg = get_config();

	/* Where BPF LSM is attached, bprm_check_security refused the exec already (EPERM). */
	if (!lsm_decides(cfg) && exec_denied(&key)) {
		struct pr_decision d = { .dev = key.dev, .ino = key.ino, .layer = PR_LAYER_TRACEPOINT };

		enforce_kill(decide(cfg, &d, PR_WHAT_EXEC));
	}
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(pr_exit, struct task_struct *p)
{
	__u32 tid = current_tid();
	struct pr_exit ev = {};
	struct pr_task *t = tracked_tid(tid);
	__u32 slot;

	if (!t)
		return 0;
	slot = t->session;
	agg_end(tid, slot); /* before t's entry goes */
	track_remove(tid);
	/* Only the last thread of the group reports the process exit. The tracepoint's group_dead
	 * argument exists only on recent kernels, so read the live count instead; two threads
	 * racing to zero can both see it, and userspace drops the duplicate by exec id. */
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	fill_hdr(&ev.hdr, PR_EV_EXIT, sizeof(ev));
	stamp_session(&ev.hdr, slot); /* the thread left the tracked set above */
	ev.exit_code = BPF_CORE_READ(p, exit_code);
	emit(&ev, sizeof(ev), PR_EV_EXIT);
	return 0;
}
