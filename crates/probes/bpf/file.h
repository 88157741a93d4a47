/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* File opens: one program per open, at the syscall's exit. The opened file is resolved from the
 * fd, so the path reported is the file the kernel actually opened; the arguments (the path of a
 * refused open, the flags as passed) are read from the task's saved user registers, which still
 * hold them at exit. No entry half: an untracked open costs one program run, not two, and a
 * tracked one no map update and delete. */
#pragma once

#include "lib/path.h"
#include "lib/openagg.h"
#include "lib/openseen.h"

#define O_CREAT_WRONLY_TRUNC (00000100 | 00000001 | 00001000)

/* Bits the kernel drops from f_flags once the file is open (do_dentry_open, build_open_flags):
 * for these the caller's flags are all there is. */
#define PR_O_DROPPED (00000100 | 00000200 | 00000400 | 00001000 | 02000000) /* CREAT EXCL NOCTTY TRUNC CLOEXEC */
#define PR_O_CREAT 00000100
#define PR_O_LARGEFILE 00100000
#define PR_FMODE_CREATED 0x100000

/* The flags as passed. openat2's live in user memory, read now that the kernel has copied them
 * (at entry an untouched page reads as zero: an append open would look like a read). */
static __always_inline __u32 passed_flags(struct pr_pending *p)
{
	struct open_how how = {};

	if (p->syscall != PR_SYS_OPENAT2)
		return p->args[1];
	bpf_probe_read_user(&how, sizeof(how), (void *)p->args[1]);
	return how.flags;
}

/* Names (a file's or its directory's, NUL-padded) that the policy's sensitive and persistence
 * patterns name literally: an open of a file so named is urgent (it wakes the consumer at once),
 * whether or not the file existed when monitoring started (those are in watch_open). Userspace
 * fills the map and the two filters, which spare the read and the lookup for most names. */
#define PR_WATCH_NAME 32

struct pr_name_key {
	__u8 name[PR_WATCH_NAME];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct pr_name_key);
	__type(value, __u32);
} watch_name SEC(".maps");

/* Bit n: some watched name is n bytes long. Bit c of watch_name_first: one starts with byte c. */
__u32 watch_name_lens = 0;
__u64 watch_name_first[4] = {};

static __always_inline int name_watched(__u32 len, const unsigned char *name)
{
	struct pr_name_key k = {};
	__u8 c;

	if (len >= PR_WATCH_NAME || !((watch_name_lens >> len) & 1))
		return 0;
	if (bpf_probe_read_kernel(k.name, len & (PR_WATCH_NAME - 1), name))
		return 0;
	c = k.name[0];
	if (!((watch_name_first[(c >> 6) & 3] >> (c & 63)) & 1))
		return 0;
	return bpf_map_lookup_elem(&watch_name, &k) != NULL;
}

/* What a successful open needs of the file the kernel opened, read with one probe read per
 * kernel object (a probe read is a helper call; read field by field these were ~17 per open)
 * and of each object only the span of bytes that holds the fields used (a whole-object copy
 * measured slower: the copy loop runs per 8 bytes). CO-RE relocates each field's offset as it
 * does for the kernel's objects. */
#define PR_SPAN 128

struct pr_opened {
	__u8 span[PR_SPAN + 8];
	__u64 dentry, mnt, inode, parent, name, name_hash_len, parent_name, ino;
	__u32 f_flags, f_mode, name_len, parent_len, dev, mode, rdev, _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pr_opened);
} opened_copy SEC(".maps");

#define PR_OFF(T, f) ((__u32)bpf_core_field_offset(T, f))
#define PR_END(T, f) (PR_OFF(T, f) + (__u32)bpf_core_field_size(T, f))
#define PR_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PR_MAX(a, b) ((a) > (b) ? (a) : (b))
/* Field f of type T from the span read at lo. */
#define PR_AT(o, lo, T, f) \
	(*(typeof(((T *)0)->f) *)((o)->span + ((PR_OFF(T, f) - (lo)) & (PR_SPAN - 1))))

/* Read bytes [lo, hi) of the object at src into o->span. */
static __always_inline int read_span(struct pr_opened *o, const void *src, __u32 lo, __u32 hi)
{
	__u32 n = hi - lo;

	if (hi <= lo || n > PR_SPAN)
		return -1;
	return bpf_probe_read_kernel(o->span, n, src + lo);
}

/* Files the tree opened to write, create or truncate (kernel dev_t and inode): an executable
 * mapping of one is code the tree wrote, loaded without an exec (pr_exit_mmap). The oldest give
 * way when it is full; an inode number reused by another file makes at most one extra record,
 * which detection, keeping its own account of written files, does not judge. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pr_file_key);
	__type(value, __u8);
} written_files SEC(".maps");

#define PR_O_WRITES (00000003 | 00000100 | 00001000) /* O_ACCMODE's write bits, CREAT, TRUNC */

static __always_inline struct pr_opened *read_opened(struct file *f)
{
	__u32 zero = 0, lo, hi;
	struct pr_opened *o = bpf_map_lookup_elem(&opened_copy, &zero);
	struct qstr pq = {};
	__u32 dev = 0;

	if (!o)
		return NULL;
	/* A read that fails leaves zeros: the open is still recorded, with what could be read. */
	__builtin_memset(&o->dentry, 0, sizeof(*o) - offsetof(struct pr_opened, dentry));
	lo = PR_MIN(PR_MIN(PR_OFF(struct file, f_mode), PR_OFF(struct file, f_flags)),
		    PR_MIN(PR_OFF(struct file, f_inode), PR_OFF(struct file, f_path)));
	hi = PR_MAX(PR_MAX(PR_END(struct file, f_mode), PR_END(struct file, f_flags)),
		    PR_MAX(PR_END(struct file, f_inode), PR_END(struct file, f_path)));
	if (read_span(o, f, lo, hi))
		return o;
	o->f_mode = PR_AT(o, lo, struct file, f_mode);
	o->f_flags = PR_AT(o, lo, struct file, f_flags);
	o->inode = (__u64)PR_AT(o, lo, struct file, f_inode);
	o->dentry = (__u64)PR_AT(o, lo, struct file, f_path.dentry);
	o->mnt = (__u64)PR_AT(o, lo, struct file, f_path.mnt);

	lo = PR_MIN(PR_OFF(struct dentry, d_parent), PR_OFF(struct dentry, d_name));
	hi = PR_MAX(PR_END(struct dentry, d_parent), PR_END(struct dentry, d_name));
	if (read_span(o, (void *)o->dentry, lo, hi))
		return o;
	o->parent = (__u64)PR_AT(o, lo, struct dentry, d_parent);
	o->name_hash_len = PR_AT(o, lo, struct dentry, d_name.hash_len);
	o->name_len = PR_AT(o, lo, struct dentry, d_name.len);
	o->name = (__u64)PR_AT(o, lo, struct dentry, d_name.name);

	/* One span from the type bits to the device number (~90 bytes of the inode). */
	lo = PR_MIN(PR_MIN(PR_OFF(struct inode, i_mode), PR_OFF(struct inode, i_rdev)),
		    PR_MIN(PR_OFF(struct inode, i_sb), PR_OFF(struct inode, i_ino)));
	hi = PR_MAX(PR_MAX(PR_END(struct inode, i_mode), PR_END(struct inode, i_rdev)),
		    PR_MAX(PR_END(struct inode, i_sb), PR_END(struct inode, i_ino)));
	if (read_span(o, (void *)o->inode, lo, hi))
		return o;
	o->ino = PR_AT(o, lo, struct inode, i_ino);
	o->mode = PR_AT(o, lo, struct inode, i_mode);
	o->rdev = PR_AT(o, lo, struct inode, i_rdev);
	bpf_probe_read_kernel(&dev, sizeof(dev),
			      &((struct super_block *)PR_AT(o, lo, struct inode, i_sb))->s_dev);
	o->dev = dev;

	bpf_probe_read_kernel(&pq, sizeof(pq), &((struct dentry *)o->parent)->d_name);
	o->parent_len = pq.len;
	o->parent_name = (__u64)pq.name;
	return o;
}

/* The same fields through BTF-typed pointers, on kernels with the bpf_rdonly_cast kfunc (6.2
 * and later): each field is one plain load, which the kernel makes fault-safe (a fault reads
 * as zero, as a failed probe read leaves it), instead of a helper call per object. The
 * tracked open storm: pr_exit_openat ~215 -> ~175 ns per open. A kfunc the kernel lacks fails
 * the whole program's load, so this path has programs of its own (pr_exit_openat_btf), which
 * userspace loads instead of the others where the kfunc exists (sensor `FileReads`). */
static __always_inline struct pr_opened *read_opened_btf(struct file *fp)
{
	__u32 zero = 0;
	struct pr_opened *o = bpf_map_lookup_elem(&opened_copy, &zero);
	struct dentry *d, *p;
	struct inode *i;
	struct file *f;

	if (!o)
		return NULL;
	f = bpf_core_cast(fp, struct file);
	o->f_mode = f->f_mode;
	o->f_flags = f->f_flags;
	i = f->f_inode;
	d = f->f_path.dentry;
	o->inode = (__u64)i;
	o->dentry = (__u64)d;
	o->mnt = (__u64)f->f_path.mnt;
	p = d->d_parent;
	o->parent = (__u64)p;
	o->name_hash_len = d->d_name.hash_len;
	o->name_len = d->d_name.len;
	o->name = (__u64)d->d_name.name;
	o->ino = i->i_ino;
	o->dev = i->i_sb->s_dev;
	o->parent_len = p->d_name.len;
	o->parent_name = (__u64)p->d_name.name;
	return o;
}

/* Which device node the opened file is (ev->node: PR_NODE_CHR, PR_NODE_BLK, or 0) and which
 * device (ev->rdev), whatever it is called or where it lies: a node made with mknod(2) in /tmp
 * opens the same disk or memory as /dev's. Detection judges disks and kernel memory by this
 * (`[files].sensitive_devices`), and whether it is a set-user-ID or set-group-ID file (ev->setid).
 * Read only for an open that is not a counted repeat: a repeat
 * of a device node never happens (a node that matters is never kept to count, see emit_opened),
 * and the open storm's repeats are the hot path. The probe-read path has the fields already (in
 * the inode's span); the BTF path loads them here. */
static __always_inline void dev_node(struct pr_open *ev, struct pr_opened *o, int btf)
{
	__u32 mode = o->mode, rdev = o->rdev;

	if (btf) {
		struct inode *i = bpf_core_cast((void *)o->inode, struct inode);

		mode = i->i_mode;
		rdev = i->i_rdev;
	}
	switch (mode & 0170000) {
	case 0020000:
		ev->node = PR_NODE_CHR;
		break;
	case 0060000:
		ev->node = PR_NODE_BLK;
		break;
	default:
		ev->node = 0;
	}
	ev->rdev = ev->node ? rdev : 0;
	/* A set-user-ID or set-group-ID regular file: made so by open(O_CREAT) with such a mode,
	 * which no chmod call is needed for, or an existing one opened (privops.h has chmod). */
	ev->setid = (mode & 0170000) == 0100000 && (mode & 06000);
}

/* An open of one of the kernel's harmless memory devices, by the inode's device number whatever
 * the node is called: null (1:3), zero (1:5), full (1:7), random (1:8), urandom (1:9). Shells
 * open /dev/null for writing or read-write at every redirection, so these fold like plain reads
 * (openseen.h) whatever their flags. mem (1:1), kmem (1:2) and port (1:4) are not among them. */
static __always_inline int harmless_dev(struct pr_open *ev)
{
	__u32 minor = ev->rdev & 0xfffff;

	if (ev->node != PR_NODE_CHR || ev->rdev >> 20 != 1)
		return 0;
	return minor == 3 || minor == 5 || minor == 7 || minor == 8 || minor == 9;
}

/* The fields of an open record before its path, the file's identity given and nothing counted
 * or found yet (dev_node and the fold fill those where they matter). */
static __always_inline void open_head(struct pr_open *ev, long ret, __u32 flags, __u32 syscall,
				      __u64 dev, __u64 ino)
{
	ev->ret = ret;
	ev->flags = flags;
	ev->syscall = syscall;
	ev->dev = dev;
	ev->ino = ino;
	ev->repeats = 0;
	ev->last_ts_ns = 0;
	ev->seen_key = 0;
	ev->setid = 0;
	ev->node = 0;
	ev->created = 0;
	ev->rdev = 0;
}

/* Fill the identity fields of ev from the file the kernel opened (what it granted, not what
 * user memory says now: a thread may rewrite an openat2 how after the kernel copied it). */
static __always_inline void opened_id(struct pr_open *ev, struct pr_opened *o, long ret,
				      __u32 passed, __u32 syscall)
{
	/* The kernel adds O_LARGEFILE by itself; the bits it drops come from the caller. */
	__u32 flags = (o->f_flags & ~(PR_O_DROPPED | PR_O_LARGEFILE)) |
		      (passed & (PR_O_DROPPED | PR_O_LARGEFILE));

	if (o->f_mode & PR_FMODE_CREATED)
		flags |= PR_O_CREAT;
	open_head(ev, ret, flags, syscall, o->dev, o->ino);
	ev->created = !!(o->f_mode & PR_FMODE_CREATED);
}

/* Which name of the file this open used (lib/openagg.h): a repeat must name the same. */
struct pr_open_name {
	__u64 dentry, mnt, name, parent;
};

static __always_inline void open_name(struct pr_open_name *n, struct pr_opened *o)
{
	n->dentry = o->dentry;
	n->mnt = o->mnt;
	/* The name's hash and length, not its address: a short name lives inside the dentry, and
	 * a rename copies the new one over it in place (same dentry, same address). */
	n->name = o->name_hash_len;
	n->parent = o->parent;
}

/* Is ev (identity filled) a repeat of the entry's recorded open? Then count it, and report the
 * count once a second while repeats go on. */
static __always_inline int open_repeat(struct pr_open_agg *a, struct pr_open *ev,
				       struct pr_open_name *n, __u32 slot)
{
	__u64 now;

	if (!a || !a->rec_size || a->rec.dev != ev->dev || a->rec.ino != ev->ino ||
	    a->rec.flags != ev->flags || a->rec.syscall != ev->syscall || a->dentry != n->dentry ||
	    a->mnt != n->mnt || a->name != n->name || a->parent != n->parent)
		return 0;
	now = bpf_ktime_get_boot_ns();
	count_repeat(&a->repeats, &a->first_ts, &a->last_ts, now);
	if (now - a->flush_ts >= PR_REPEAT_REPORT_NS)
		open_agg_report(a, slot, now);
	return 1;
}

/* Keep the record just emitted as the thread's entry for its file (creating it if the map has
 * room). */
static __always_inline void open_agg_keep(struct pr_open_agg_key *k, struct pr_task *t,
					  struct pr_open_agg *a, struct pr_open *ev, __u64 size,
					  struct pr_open_name *n)
{
	if (size < offsetof(struct pr_open, data))
		return;
	barrier_var(size); /* as in open_agg_report */
	if (size > sizeof(struct pr_open_kept))
		return; /* too long a path to keep: each of its opens is recorded */
	if (a && a->repeats)
		return; /* its count could not be reported (ring full): keep it for the next try */
	if (!k->ino)
		return; /* no inode number: nothing to key it by (ino 0 ends a thread's list) */
	if (!a) {
		/* The record sits at the start of the scratch space, as rec does in the value. */
		if (bpf_map_update_elem(&open_agg, k, ev, BPF_NOEXIST))
			return; /* full: these opens are each recorded */
		a = bpf_map_lookup_elem(&open_agg, k);
		if (!a)
			return;
		/* At the head of the thread's list, which its exit or exec follows. */
		a->next_dev = t->flags & PR_TASK_OPEN_AGG ? t->agg_dev : 0;
		a->next_ino = t->flags & PR_TASK_OPEN_AGG ? t->agg_ino : 0;
		t->agg_dev = k->dev;
		t->agg_ino = k->ino;
		t->flags |= PR_TASK_OPEN_AGG;
	} else if (bpf_probe_read_kernel(&a->rec, size, ev)) {
		a->rec_size = 0;
		return;
	}
	a->dentry = n->dentry;
	a->mnt = n->mnt;
	a->name = n->name;
	a->parent = n->parent;
	a->repeats = 0;
	a->flush_ts = ev->hdr.ts_boot_ns;
	a->rec_size = size;
}

/* A successful open: sensitive ones are recorded (urgent); a repeat of the thread's recorded
 * ordinary open of the file is counted; any other is recorded and becomes the file's entry.
 * t NULL: never counted (io_uring completions, which may run in a worker thread whose exit is
 * not seen). btf (a constant in each program): read the file with plain loads
 * (read_opened_btf). */
static __always_inline void emit_opened(struct pr_open *ev, struct file *f, long ret, __u32 passed,
					__u32 syscall, struct pr_task *t, int btf)
{
	__u32 trunc = 0, len, size, slot = t ? t->session : 0;
	struct pr_open_agg_key k = { .tid = current_tid() };
	struct pr_opened *o = btf ? read_opened_btf(f) : read_opened(f);
	struct pr_open_agg *a;
	struct pr_open_name n;

	if (!o)
		return;
	opened_id(ev, o, ret, passed, syscall);
	struct pr_file_key key = { .dev = ev->dev, .ino = ev->ino };
	int hi = bpf_map_lookup_elem(&watch_open, &key) != NULL;
	int watched = hi || name_watched(o->name_len, (void *)o->name) ||
		      name_watched(o->parent_len, (void *)o->parent_name);

	open_name(&n, o);
	k.dev = ev->dev;
	k.ino = ev->ino;
	a = watched || !t ? NULL : bpf_map_lookup_elem(&open_agg, &k);
	if (open_repeat(a, ev, &n, slot))
		return;
	/* The file under another name or flags: what the entry counted is reported first (it uses
	 * the scratch space, so the record is built again after it). */
	if (a && a->repeats) {
		open_agg_report(a, slot, bpf_ktime_get_boot_ns());
		opened_id(ev, o, ret, passed, syscall);
	}
	if (ev->flags & PR_O_WRITES) {
		__u8 one = 1;
		struct pr_file_key wk = { .dev = ev->dev, .ino = ev->ino };

		bpf_map_update_elem(&written_files, &wk, &one, BPF_ANY);
	}
	/* A disk or the kernel's memory (mem, kmem, port: char 1:x other than the harmless ones),
	 * by what the node is: recorded at every open (never kept to count), and urgently. */
	dev_node(ev, o, btf);
	if (ev->node == PR_NODE_BLK ||
	    (ev->node == PR_NODE_CHR && ev->rdev >> 20 == 1 && !harmless_dev(ev)))
		watched = 1;
	/* A read of a file another thread of the session recorded: no path, folded (openseen.h). */
	struct pr_open_seen_key sk = {
		.slot = slot,
		.flags = ev->flags,
		.dev = ev->dev,
		.ino = ev->ino,
		.dentry = n.dentry,
		.mnt = n.mnt,
		.name = n.name,
		.parent = n.parent,
	};
	/* Other device nodes (disks, kernel memory, terminals) are recorded at every first open:
	 * a fold names its file by path only, and detection judges a device by what it is. */
	int seen = !watched && t && slot && ev->ino &&
		   (ev->node ? harmless_dev(ev) : plain_read(ev->flags));

	if (seen && open_seen_send(&sk, ev))
		return;
	ev->seen_key = seen;
	len = copy_path(&f->f_path, ev->data, &trunc);
	ev->path_len = len & (PR_PATH_MAX - 1);
	ev->path_truncated = trunc;
	size = offsetof(struct pr_open, data) + (len & (PR_PATH_MAX - 1));
	fill_hdr(&ev->hdr, PR_EV_OPEN, size);
	if (hi)
		emit_open_urgent(&events_hi, 1, ev, size);
	else if (watched)
		emit_open_urgent(&events, 0, ev, size);
	else if (!emit_ring(&events, 0, ev, size, PR_EV_OPEN, 0) && t) {
		if (seen && ev->hdr.kseq)
			bpf_map_update_elem(&open_seen, &sk, &ev->hdr.kseq, BPF_ANY);
		open_agg_keep(&k, t, a, ev, size, &n);
	}
}

/* path_arg, flags_arg: which argument holds the path and the flags (-1: none; creat's are
 * fixed); btf: see emit_opened. */
static __always_inline int open_exit(long ret, __u32 syscall, int path_arg, int flags_arg,
				     int btf)
{
	struct pr_pending p = { .syscall = syscall };
	struct pr_args args;
	struct pr_open *ev;
	__u32 len, size, passed;
	long n;

	/* Cheapest test first: most failed opens (ENOENT and friends) are too common to be worth a
	 * record, and are dropped before any map lookup. */
	if (ret < 0 && ret != -EACCES && ret != -EPERM)
		return 0;
	struct pr_task *t = tracked_tid(current_tid());

	if (!t)
		return 0;
	syscall_args(&args);
	if (path_arg >= 0)
		p.args[0] = args.a[path_arg & 3];
	p.args[1] = flags_arg >= 0 ? args.a[flags_arg & 3] : O_CREAT_WRONLY_TRUNC;
	ev = scratch_buf();
	if (!ev)
		return 0;
	passed = passed_flags(&p);
	if (ret >= 0) {
		struct file *f = fd_file(ret);

		if (f)
			emit_opened(ev, f, ret, passed, syscall, t, btf);
		return 0;
	}
	/* Refused: nothing was resolved; report what the caller asked for. */
	open_head(ev, ret, passed, syscall, 0, 0);
	n = bpf_probe_read_user_str(ev->data, PR_PATH_MAX, (void *)p.args[0]);
	len = n > 0 ? n - 1 : 0;
	ev->path_len = len & (PR_PATH_MAX - 1);
	ev->path_truncated = 0;
	size = offsetof(struct pr_open, data) + (len & (PR_PATH_MAX - 1));
	fill_hdr(&ev->hdr, PR_EV_OPEN, size);
	/* A refusal is what an alert (a Landlock denial, a probe of a protected file) hangs on. */
	emit_open_urgent(&events, 0, ev, size);
	return 0;
}

SEC("tp/syscalls/sys_exit_openat")
int pr_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret, PR_SYS_OPENAT, 1, 2, 0); /* openat(dfd, path, flags, mode) */
}

/* pr_exit_openat with plain loads (read_opened_btf), loaded instead of it where the kernel has
 * bpf_rdonly_cast. Only openat has both: it is nearly every open (glibc's open and fopen
 * call it); the rarer open calls keep the probe reads everywhere. */
SEC("tp/syscalls/sys_exit_openat")
int pr_exit_openat_btf(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret, PR_SYS_OPENAT, 1, 2, 1);
}

/* The rarer open calls, one program attached to the four tracepoints (the sensor attaches it to
 * sys_exit_creat, sys_exit_openat2 and sys_exit_open_by_handle_at besides its own): each program
 * that inlines open_exit costs ~45 ms of verification at start, and the calls differ only in
 * where their arguments are. The tracepoint's `id` is the system call's number (x86-64). */
SEC("tp/syscalls/sys_exit_open")
int pr_exit_open_other(struct trace_event_raw_sys_exit *ctx)
{
	__u32 sys;
	int path_arg, flags_arg;

	switch (ctx->id) {
	case 2: /* open(path, flags, mode) */
		sys = PR_SYS_OPEN, path_arg = 0, flags_arg = 1;
		break;
	case 85: /* creat(path, mode) */
		sys = PR_SYS_CREAT, path_arg = 0, flags_arg = -1;
		break;
	case 437: /* openat2(dfd, path, how, size) */
		sys = PR_SYS_OPENAT2, path_arg = 1, flags_arg = 2;
		break;
	case 304: /* open_by_handle_at(mount_fd, handle, flags): names no path, resolved at exit */
		sys = PR_SYS_OPEN_BY_HANDLE, path_arg = -1, flags_arg = 2;
		break;
	default:
		return 0;
	}
	/* One copy of open_exit for the four: the compiler must not specialise it per case. */
	barrier_var(sys);
	barrier_var(path_arg);
	barrier_var(flags_arg);
	return open_exit(ctx->ret, sys, path_arg, flags_arg, 0);
}

/* Code loaded without an exec: an executable mapping (mmap with PROT_EXEC of a file) is how the
 * dynamic loader brings in a shared library, for LD_PRELOAD, dlopen or ctypes alike; the
 * executable the kernel starts and its loader are mapped by exec itself, not here. Recorded only
 * when the file is one the tree wrote (written_files) or has no name at all (a memfd): every
 * exec maps a handful of the system's libraries, which are not news. The record is a pr_open
 * (PR_EV_OPEN, syscall PR_SYS_MMAP, ret the descriptor mapped) and urgent: a library the tree
 * wrote and then loaded into a baseline program runs its code under that program's name. A
 * mapping made readable first and made executable later with mprotect is not seen. */
#define PR_PROT_EXEC 0x4
#define PR_MAP_ANONYMOUS 0x20

SEC("tp/syscalls/sys_exit_mmap")
int pr_exit_mmap(struct trace_event_raw_sys_exit *ctx)
{
	__u32 trunc = 0, len, size;
	struct pr_args args;
	struct pr_open *ev;
	struct file *f;
	int pseudo;

	/* An address, or -errno (the last page of the address space is never mapped). */
	if ((unsigned long)ctx->ret >= (unsigned long)-4095L)
		return 0;
	if (!tracked_tid(current_tid()))
		return 0;
	syscall_args(&args);
	if (!(args.a[2] & PR_PROT_EXEC) || (args.a[3] & PR_MAP_ANONYMOUS))
		return 0;
	f = fd_file((long)(int)args.a[4]);
	if (!f)
		return 0;
	struct pr_file_key key = {
		.dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev),
		.ino = BPF_CORE_READ(f, f_inode, i_ino),
	};
	pseudo = pseudo_file(f); /* a memfd, as exec's fileless */
	if (!pseudo && !bpf_map_lookup_elem(&written_files, &key))
		return 0;
	ev = scratch_buf();
	if (!ev)
		return 0;
	open_head(ev, (int)args.a[4], BPF_CORE_READ(f, f_flags) & ~(PR_O_DROPPED | PR_O_LARGEFILE),
		  PR_SYS_MMAP, key.dev, key.ino);
	len = copy_file_name(f, pseudo, ev->data, &trunc);
	ev->path_len = len & (PR_PATH_MAX - 1);
	ev->path_truncated = trunc;
	size = offsetof(struct pr_open, data) + (len & (PR_PATH_MAX - 1));
	fill_hdr(&ev->hdr, PR_EV_OPEN, size);
	emit_open_urgent(&events, 0, ev, size);
	return 0;
}
