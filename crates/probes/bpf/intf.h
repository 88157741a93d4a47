/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kernel/user contract: the one source of truth for every record the BPF programs put on
 * the ring buffer and every map value userspace reads. Rust types are generated from this file
 * by bindgen (crates/probes/build.rs), so both sides are checked by their compilers.
 *
 * Rules: explicit widths only, explicit padding, no bool, no enums on the wire (enum constants
 * are fine as named numbers), sizes pinned with _Static_assert below.
 */
#ifndef PROCTOR_INTF_H
#define PROCTOR_INTF_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define PR_COMM_LEN 16
#define PR_PATH_MAX 4096         /* longest path we report, bytes */
#define PR_ARGV_MAX 4096         /* argv bytes copied per exec; longer argv is flagged truncated */
#define PR_ENV_MAX 8192          /* an exec's environment up to this size is copied whole (process.h) */
#define PR_ENV_KEPT_MAX 2048     /* bytes of variables kept from a larger one, walked */
#define PR_ENV_VAR_MAX 512       /* bytes kept of one such variable, NAME=VALUE and its NUL */
#define PR_ENV_UNREAD 1          /* pr_exec.env_flags: the walk ended before the environment */
#define PR_ENV_CUT 2             /* a kept variable was cut, or left out for room */
#define PR_ENV_RAW 4             /* the environment is there whole, not walked */
#define PR_SOCKADDR_MAX 112      /* sizeof(struct sockaddr_un) rounded up to 8; <= 127 (net.h) */
#define PR_DNS_MAX 512           /* DNS payload bytes copied per query (classic UDP limit) */
#define PR_SCHED_BUCKETS 32      /* log2-ns histogram buckets */
#define PR_MMSG_MAX 4            /* messages inspected per sendmmsg */
#define PR_TLS_CHUNK 16384       /* plaintext bytes per tls record (one TLS record's worth) */
#define PR_TLS_MAX_CHUNKS 64     /* records per TLS call: --tls-max-bytes <= 1 MiB */
#define PR_TLS_DEFAULT_MAX 65536 /* default plaintext bytes kept per TLS call */
#define PR_SNI_MAX 256           /* SNI host name bytes kept (DNS names are <= 253) */
#define PR_WAKE_GAP_MS 20        /* a record waits in the ring at most about this long (common.h) */
#define PR_SEEN_ENTRIES 16384   /* reads recorded once per session, all sessions (lib/openseen.h) */
#define PR_URGENT_WAIT_MS 2      /* while urgent records flow, the consumer reads this often (common.h) */

/* Record kinds: pr_hdr.kind, and the index into the lost-counter array. */
enum pr_kind {
	PR_EV_EXEC = 1,
	PR_EV_FORK = 2,
	PR_EV_EXIT = 3,
	PR_EV_OPEN = 4,
	PR_EV_CONNECT = 5,
	PR_EV_SEND = 6,
	PR_EV_PTRACE = 7,
	PR_EV_DECISION = 8,       /* an enforcement decision (would_block / blocked) */
	/* not records: lost-counter slots */
	PR_LOST_TRACK_FULL = 9,   /* a child could not join the tracked set (map full) */
	PR_EV_TLS = 10,           /* one chunk of a TLS call's plaintext (--capture-tls) */
	PR_EV_TLS_SNI = 11,       /* the server name of a ClientHello the agent's cgroup sent */
	PR_EV_URING_SETUP = 12,   /* the agent created an io_uring instance */
	PR_EV_DNS_ANSWER = 13,    /* a receive from port 53 (struct pr_send: addr is the source) */
	PR_LOST_SESSION_FULL = 14,/* an agent exec matched but every session slot was in use */
	PR_EV_OPEN_SEEN = 15,     /* an ordinary read of a file the session recorded already */
	PR_EV_PATH = 16,          /* a name removed, moved or made: unlink, rmdir, rename, link, symlink */
	PR_EV_PRIV = 17,          /* a call that changes the kernel, the clock or what paths name */
	PR_EV_INBOUND = 18,       /* a TCP listen on a network address, or an accept of a peer that
				   * is not loopback (net.h) */
	PR_KIND_MAX = 19,
};

/* Session slots: which session a tracked task belongs to (pr_task.session, pr_hdr.session).
 * Slot 0 is no session; `run`/`attach` put their one session in PR_SESSION_RUN; `proctor daemon`
 * sessions get a slot from PR_SESSION_FIRST up, taken in the kernel when an exec matches an agent
 * rule, and given back by userspace when the session ends. */
#define PR_SESSIONS 256
#define PR_SESSION_RUN 1
#define PR_SESSION_FIRST 2

/* pr_session.mode: a session's own enforcement mode, or the sensor's (pr_config.mode). */
enum pr_smode {
	PR_SMODE_GLOBAL = 0,
	PR_SMODE_AUDIT = 1,       /* PR_MODE_AUDIT + 1, and so on */
	PR_SMODE_SHADOW = 2,
	PR_SMODE_ENFORCE = 3,
};

/* Enforcement mode: pr_config.mode. */
enum pr_mode {
	PR_MODE_AUDIT = 0,        /* observe and alert only */
	PR_MODE_SHADOW = 1,       /* decide as enforce would, record would_block, block nothing */
	PR_MODE_ENFORCE = 2,      /* block what the policy forbids */
};

/* What a decision is about: pr_decision.what. */
enum pr_what {
	PR_WHAT_EXEC = 1,
	PR_WHAT_PTRACE = 2,
	PR_WHAT_CONNECT = 3,
	PR_WHAT_SENDMSG = 4,
	PR_WHAT_OPEN = 5,         /* BPF LSM file_open (Landlock refusals are decided in userspace) */
};

/* Which kernel layer took a decision: pr_decision.layer. */
enum pr_layer {
	PR_LAYER_TRACEPOINT = 1,  /* sched_process_exec / sys_enter_ptrace: SIGKILL */
	PR_LAYER_CGROUP = 2,      /* cgroup-bpf connect/sendmsg: EPERM */
	PR_LAYER_LSM = 3,         /* BPF LSM hook: EPERM */
};

/* pr_decision.verdict */
enum pr_verdict {
	PR_VERDICT_WOULD_BLOCK = 1,
	PR_VERDICT_BLOCKED = 2,
};

/* Syscall that produced a send/open record: pr_send.syscall, pr_open.syscall. */
enum pr_syscall {
	PR_SYS_SENDTO = 1,
	PR_SYS_SENDMSG = 2,
	PR_SYS_SENDMMSG = 3,
	PR_SYS_OPEN = 4,
	PR_SYS_OPENAT = 5,
	PR_SYS_OPENAT2 = 6,
	PR_SYS_CREAT = 7,
	PR_SYS_CONNECT = 8,       /* no record carries it: connects are PR_EV_CONNECT */
	PR_SYS_WRITE = 9,         /* a write(2) on a socket whose peer port is 53 */
	PR_SYS_URING_SEND = 10,   /* io_uring IORING_OP_SEND / SEND_ZC */
	PR_SYS_URING_SENDMSG = 11,/* io_uring IORING_OP_SENDMSG / SENDMSG_ZC */
	PR_SYS_URING_OPENAT = 12, /* io_uring IORING_OP_OPENAT / OPENAT2 */
	PR_SYS_OPEN_BY_HANDLE = 13,
	PR_SYS_RECVFROM = 14,     /* PR_EV_DNS_ANSWER: recvfrom(2) */
	PR_SYS_RECVMSG = 15,      /* PR_EV_DNS_ANSWER: recvmsg(2) */
	PR_SYS_READ = 16,         /* PR_EV_DNS_ANSWER: read(2) on a socket whose peer port is 53 */
	PR_SYS_SOCKET = 17,       /* PR_EV_SEND of no bytes: a packet socket (AF_PACKET) created */
	/* PR_EV_PATH */
	PR_SYS_UNLINK = 18,
	PR_SYS_UNLINKAT = 19,
	PR_SYS_RMDIR = 20,
	PR_SYS_RENAME = 21,
	PR_SYS_RENAMEAT = 22,
	PR_SYS_RENAMEAT2 = 23,
	PR_SYS_LINK = 24,
	PR_SYS_LINKAT = 25,
	PR_SYS_SYMLINK = 26,
	PR_SYS_SYMLINKAT = 27,
	/* PR_EV_PRIV */
	PR_SYS_INIT_MODULE = 28,
	PR_SYS_FINIT_MODULE = 29,
	PR_SYS_DELETE_MODULE = 30,
	PR_SYS_KEXEC_LOAD = 31,
	PR_SYS_KEXEC_FILE_LOAD = 32,
	PR_SYS_REBOOT = 33,
	PR_SYS_SETTIMEOFDAY = 34,
	PR_SYS_CLOCK_SETTIME = 35,
	PR_SYS_SWAPON = 36,
	PR_SYS_SWAPOFF = 37,
	PR_SYS_MOUNT = 38,
	PR_SYS_UMOUNT = 39,
	PR_SYS_MOVE_MOUNT = 40,
	PR_SYS_MOUNT_SETATTR = 41,
	PR_SYS_PIVOT_ROOT = 42,
	PR_SYS_CHROOT = 43,
	PR_SYS_SETNS = 44,
	PR_SYS_UNSHARE = 45,
	PR_SYS_BPF = 46,
	PR_SYS_ADJTIMEX = 47,
	PR_SYS_CLOCK_ADJTIME = 48,
	PR_SYS_CHMOD = 49,        /* the chmod family and setxattr: only what grants privilege */
	PR_SYS_FCHMOD = 50,
	PR_SYS_FCHMODAT = 51,
	PR_SYS_FCHMODAT2 = 52,
	PR_SYS_SETXATTR = 53,
	PR_SYS_LSETXATTR = 54,
	PR_SYS_FSETXATTR = 55,
	PR_SYS_SETXATTRAT = 56,
	/* PR_EV_PATH, op PR_PATH_TRUNCATE */
	PR_SYS_TRUNCATE = 57,
	PR_SYS_FTRUNCATE = 58,
	/* PR_EV_OPEN: not an open but an executable mapping (mmap with PROT_EXEC) of a file the
	 * tree wrote, or of one with no name (a memfd): a library loaded (file.h pr_exit_mmap) */
	PR_SYS_MMAP = 59,
	/* PR_EV_INBOUND */
	PR_SYS_LISTEN = 60,
	PR_SYS_ACCEPT = 61,
	PR_SYS_ACCEPT4 = 62,
	/* PR_EV_PRIV: the utime family with times the caller chose */
	PR_SYS_UTIMENSAT = 63,
	PR_SYS_FUTIMESAT = 64,
	PR_SYS_UTIMES = 65,
	PR_SYS_UTIME = 66,
	PR_SYS_MKDIR = 67,
	PR_SYS_MKDIRAT = 68,
};

/* Which TLS library a call was hooked in: pr_tls.lib. */
enum pr_tls_lib {
	PR_TLS_OPENSSL = 1,
	PR_TLS_GNUTLS = 2,
};

/* pr_tls.direction */
enum pr_tls_dir {
	PR_TLS_SEND = 1,          /* the process wrote plaintext (SSL_write, gnutls_record_send) */
	PR_TLS_RECV = 2,          /* the process read plaintext (SSL_read, gnutls_record_recv) */
};

/* Common header of every ring-buffer record. */
struct pr_hdr {
	__u32 kind;           /* enum pr_kind */
	__u32 size;           /* total record size in bytes, header included */
	__u64 ts_boot_ns;     /* bpf_ktime_get_boot_ns() */
	__u32 pid;            /* tgid */
	__u32 tid;
	__u32 ppid;           /* real_parent's tgid */
	__u32 uid;            /* real uid, as the initial user namespace sees it */
	__u64 start_boottime; /* group leader's start_boottime: with pid and exec_seq, the exec id */
	__u64 exec_seq;       /* group leader's self_exec_id */
	__u8 comm[PR_COMM_LEN];
	__u32 gid;            /* real gid, as the initial user namespace sees it */
	__u32 loginuid;       /* audit login uid; 0xffffffff when unset (or no CONFIG_AUDIT) */
	__u64 cgroup_id;      /* the task's cgroup v2 id (the cgroup directory's inode) */
	__u64 kseq;           /* the session's number for this record (1, 2, ...), taken before the
			       * ring reserve: a record the ring could not take leaves a gap; 0
			       * without a session */
	__u32 session;        /* the acting task's session slot, 0 for none */
	__u32 _pad_hdr;
};

/* The socket a call was made on (from the kernel's struct sock, not from user memory). */
struct pr_sock {
	__u16 family;         /* sk_family */
	__u16 type;           /* sk_type: SOCK_STREAM, SOCK_DGRAM, ... */
	__u16 protocol;       /* sk_protocol: IPPROTO_TCP, IPPROTO_UDP, ... */
	__u16 dport;          /* connected peer port, host order (0 if none) */
	__u8 daddr[16];       /* connected peer address: v4 in the first 4 bytes, or v6; for
			       * AF_UNIX the peer's socket file: kernel dev_t (u64) then inode */
};

/* PR_EV_EXEC: followed by filename_len bytes of path, then argv_len bytes of NUL-separated argv */
struct pr_exec {
	struct pr_hdr hdr;
	__u64 dev;            /* kernel dev_t of the executable's superblock (MKDEV encoding) */
	__u64 ino;
	__u32 filename_len;
	__u32 argv_len;
	__u32 argv_truncated; /* 1 when argv was longer than PR_ARGV_MAX or a path was cut */
	__u32 filename_truncated;
	__u32 fileless;       /* 1: no path on any filesystem: a memfd or other pseudo file (then the
			       * filename is its name, e.g. "memfd:x", not a path) or a deleted file */
	__u32 euid;           /* the effective uid the new image runs with (a set-user-ID file's
			       * owner); the header's uid is the real one */
	__u32 egid;           /* the effective gid (a set-group-ID file's group); the header's
			       * gid is the real one */
	__u32 env_len;        /* bytes of environment after argv, NUL-separated: all of it
			       * (PR_ENV_RAW), or of a larger one only the variables that change
			       * what an interpreter or the dynamic loader runs (process.h) */
	__u32 env_flags;      /* PR_ENV_RAW, PR_ENV_UNREAD, PR_ENV_CUT */
	/* The executable's inode at the exec: what userspace keeps answers about its content by
	 * (sensor `stamp`), with no stat of its own and no window for a rewrite in place after
	 * the process ends. All zero when it could not be read. */
	__u64 size;
	__s64 mtime_sec;
	__s64 ctime_sec;
	__u32 mtime_nsec;
	__u32 ctime_nsec;
	__u8 data[PR_PATH_MAX + PR_ARGV_MAX + PR_ENV_MAX];
};

/* PR_EV_FORK */
struct pr_fork {
	struct pr_hdr hdr;
	__u32 child_pid;
	__u32 _pad;
};

/* PR_EV_EXIT */
struct pr_exit {
	struct pr_hdr hdr;
	__u32 exit_code;      /* task->exit_code: (status << 8) | terminating signal */
	__u32 _pad;
};

/* PR_EV_OPEN: followed by path_len bytes of path. The fields before the path, shared with
 * pr_open_kept. */
#define PR_OPEN_HEAD                                                                              \
	struct pr_hdr hdr;                                                                        \
	__u64 dev;                                                                                \
	__u64 ino;                                                                                \
	__s64 ret;            /* fd, or -errno for a refused open (then the path is as passed) */ \
	__u32 flags;          /* opened: the file's f_flags (what the kernel granted) plus the    \
			       * creation bits it drops (O_CREAT from FMODE_CREATED, O_TRUNC,     \
			       * O_EXCL as passed); refused: the flags as passed, read at exit */ \
	__u32 syscall;        /* enum pr_syscall */                                               \
	__u32 path_len;                                                                           \
	__u32 path_truncated;                                                                     \
	__u64 repeats;        /* 0: one open. Else a count of repeats (lib/openagg.h): opens by   \
			       * this thread identical to its open recorded earlier (which this   \
			       * copies, header included), from hdr.ts_boot_ns to last_ts_ns */  \
	__u64 last_ts_ns;     /* boot ns of the last counted repeat */                           \
	__u8 seen_key;        /* 1: later identical reads by other threads of the session refer   \
			       * to this record by its kseq (PR_EV_OPEN_SEEN, file.h) */          \
	__u8 setid;           /* 1: the opened file is a regular file with a set-user-ID or       \
			       * set-group-ID mode (file.h dev_node) */                           \
	__u8 node;            /* the opened file is a device node: PR_NODE_CHR or PR_NODE_BLK     \
			       * (else 0), whatever its name or place */                          \
	__u8 created;         /* 1: this open made the file (the kernel's FMODE_CREATED; O_CREAT  \
			       * in flags is what the caller asked for) */                        \
	__u32 rdev;           /* then the device it opens (kernel dev_t: major << 20 | minor) */

enum pr_node {
	PR_NODE_CHR = 1,
	PR_NODE_BLK = 2,
};

struct pr_open {
	PR_OPEN_HEAD
	__u8 data[PR_PATH_MAX];
};

/* The recorded open an open_agg entry keeps: pr_open with room for a path of at most
 * PR_AGG_PATH_MAX bytes. An entry is made for every ordinary open a thread makes of a file it
 * had not opened, so its size is what that costs (allocated and copied); the whole 4 KiB path
 * buffer made it the largest cost of an exec-heavy workload's opens. An open with a longer path
 * is recorded each time instead of counted. */
#define PR_AGG_PATH_MAX 256
struct pr_open_kept {
	PR_OPEN_HEAD
	__u8 data[PR_AGG_PATH_MAX];
};

/* Key of the open_agg map: a thread and a file it opened. */
struct pr_open_agg_key {
	__u32 tid;
	__u32 _pad;
	__u64 dev;            /* kernel dev_t */
	__u64 ino;
};

/* PR_EV_PATH: what a successful unlink, rmdir, mkdir, rename, link or symlink did to names, at the
 * syscall's exit. Followed by four parts, one after the other, each len[i] bytes: the path as
 * passed (for symlink: the link's target, text the kernel does not resolve), the absolute path of
 * the directory it is relative to (the dfd's file, or the working directory; empty when the path
 * is absolute or the part is a symlink's target), then the same two for the new name (rename,
 * link, symlink; empty for unlink and rmdir). The paths as passed are read from user memory at
 * exit: the kernel keeps no copy of what it resolved. */
#define PR_PATH_PARTS 4
enum pr_path_op {
	PR_PATH_UNLINK = 1,
	PR_PATH_RMDIR = 2,
	PR_PATH_RENAME = 3,
	PR_PATH_LINK = 4,
	PR_PATH_SYMLINK = 5,
	PR_PATH_TRUNCATE = 6,     /* emptied in place: truncate or ftruncate to length 0 */
	PR_PATH_MKDIR = 7,        /* a directory made: mkdir, mkdirat */
};

/* PR_EV_PRIV uses the same layout (bpf/privops.h): a call that loads or removes kernel code,
 * restarts the machine, sets the clock, changes what paths name (mount, chroot, pivot_root) or
 * enters namespaces, attempted by a tracked thread, refused or not. `op` is 0; the parts are
 * the object it acted on (as passed, with no directory; or an fd's file) and a second one
 * (mount's source, pivot_root's put_old, move_mount's from). */
struct pr_path {
	struct pr_hdr hdr;
	__u32 syscall;        /* enum pr_syscall */
	__u32 op;             /* enum pr_path_op */
	__u32 flags;          /* renameat2's RENAME_*, linkat's AT_*, unlinkat's AT_REMOVEDIR,
			       * mkdir's mode;
			       * PR_EV_PRIV: the call's flags, command or clock id */
	__u32 truncated;      /* bit i: part i was longer than PR_PATH_MAX - 1 bytes and was cut */
	__s32 ret;            /* PR_EV_PRIV: the call's result (0 or -errno); 0 for PR_EV_PATH */
	__u32 mnt_ns;         /* PR_EV_PRIV: the caller's mount and user namespaces at exit */
	__u32 user_ns;        /* (their inode numbers, as /proc/PID/ns/ shows them) */
	__u32 _pad;
	__u16 len[PR_PATH_PARTS];
	__u8 data[PR_PATH_PARTS * PR_PATH_MAX];
};

/* PR_EV_OPEN_SEEN: an ordinary read-only open whose file, name and flags match an open this
 * session recorded whole (in any thread): only what tells the two apart is sent, no path.
 * Userspace folds these into one `file_open_seen` record per process. Unnumbered (kseq 0):
 * it is folded, never written as it is; a ring that refuses it is counted like any record. */
struct pr_open_seen {
	struct pr_hdr hdr;
	__u64 first_kseq;     /* the recorded open's kseq (its seen_key set) */
	__u64 dev;            /* kernel dev_t */
	__u64 ino;
	__s64 ret;            /* the new descriptor */
	__u32 flags;
	__u32 syscall;        /* enum pr_syscall */
};

/* Key of the open_seen map: a session and an ordinary read it recorded (file, name, flags). */
struct pr_open_seen_key {
	__u32 slot;
	__u32 flags;
	__u64 dev;            /* kernel dev_t */
	__u64 ino;
	__u64 dentry;         /* the name, as pr_open_agg keeps it */
	__u64 mnt;
	__u64 name;
	__u64 parent;
};

/* Value of the open_agg map: the thread's recorded ordinary open of the file, and how many
 * identical opens followed it since its count was last reported. */
struct pr_open_agg {
	struct pr_open_kept rec;   /* first, so an entry is created straight from the scratch record */
	__u64 dentry;         /* which name of the file rec names: the opened path's dentry, */
	__u64 mnt;            /* vfsmount, */
	__u64 name;           /* name's hash and length (a rename changes them) */
	__u64 parent;         /* and parent dentry (a move changes it), as kernel addresses */
	__u64 repeats;        /* counted since the last report */
	__u64 first_ts;       /* boot ns of the first of those */
	__u64 last_ts;        /* and of the last */
	__u64 flush_ts;       /* boot ns of the last report (or of rec) */
	__u64 next_dev;       /* the (dev, ino) of the thread's entry made before this one; */
	__u64 next_ino;       /* next_ino 0: this is the thread's first */
	__u32 rec_size;       /* bytes of rec that are the record */
	__u32 _pad;
};

/* PR_EV_CONNECT, emitted at the syscall's exit: sock then holds the peer the kernel connected
 * the socket to, which userspace prefers; addr is the caller's sockaddr read at exit (the kernel
 * has faulted it in by then), used where the socket has no peer (a refused connect, AF_UNIX). */
struct pr_connect {
	struct pr_hdr hdr;
	struct pr_sock sock;
	__u32 addr_len;       /* bytes of addr copied */
	__s32 ret;            /* connect's result: 0, or -errno (-EINPROGRESS for a started one) */
	__u8 addr[PR_SOCKADDR_MAX]; /* the sockaddr as passed to connect(2) */
	__u64 repeats;        /* 0: one connect. Else a count of repeats (lib/connagg.h): connects
			       * by this thread identical to its connect recorded earlier (which
			       * this copies, header included), from hdr.ts_boot_ns to last_ts_ns */
	__u64 last_ts_ns;     /* boot ns of the last counted repeat */
	__u32 peer_pid;       /* AF_UNIX stream: the host pid that called listen() on the socket
			       * this one reached (the kernel's peer credentials, SO_PEERCRED's);
			       * 0 if none */
	__u32 peer_tracked;   /* 1 when that pid is tracked in the same session (the tree) */
	__u32 netns;          /* inode number of the socket's network namespace (the one its
			       * loopback address is in) */
	__u32 _pad;
};

/* Value of the conn_agg map (key: a thread id): the thread's last recorded connect, and how
 * many identical connects followed it since its count was last reported. */
struct pr_conn_agg {
	struct pr_connect rec;     /* first, so an entry is created straight from the scratch record */
	__u64 repeats;        /* counted since the last report */
	__u64 first_ts;       /* boot ns of the first of those */
	__u64 last_ts;        /* and of the last */
	__u64 flush_ts;       /* boot ns of the last report (or of rec) */
};

/* PR_EV_SEND: followed by payload_len bytes of payload (only for port 53).
 * PR_EV_DNS_ANSWER has the same layout: a receive whose source (addr, else the connected peer
 * in sock) has port 53; bytes is what the call returned, data its first PR_DNS_MAX bytes. */
struct pr_send {
	struct pr_hdr hdr;
	struct pr_sock sock;
	__u64 bytes;          /* bytes the caller asked to send in this message */
	__u32 syscall;        /* enum pr_syscall */
	__u32 addr_len;       /* 0: no explicit destination, the connected peer in sock applies */
	__u8 addr[PR_SOCKADDR_MAX];
	__u32 payload_len;
	__u32 _pad;
	__u8 data[PR_DNS_MAX];
};

/* PR_EV_INBOUND: a door the tree opened to the network, or someone coming through one. A
 * successful listen(2) on a TCP socket bound to an address that is not loopback (listen: the
 * bound address and port in local), or an accept(2)/accept4(2) that returned a connection whose
 * peer is not loopback (local: where the peer reached the tree; peer: who). Read from the
 * kernel's socket at the call's exit, never from what the caller passed. */
struct pr_inbound {
	struct pr_hdr hdr;
	struct pr_sock sock;  /* the socket (fill_sock_file): family, type, protocol; for accept
			       * the peer in dport and daddr (zero for listen) */
	__u32 syscall;        /* PR_SYS_LISTEN, PR_SYS_ACCEPT, PR_SYS_ACCEPT4 */
	__s32 ret;            /* listen: 0; accept: the new descriptor */
	__u16 lport;          /* local port, host order */
	__u16 _pad[3];
	__u8 laddr[16];       /* local address: v4 in the first 4 bytes, or v6 */
};

/* PR_EV_PTRACE. `request` is ptrace's, or one of these for the other calls the kernel allows on
 * ptrace's attach permission (negative: no ptrace request is). */
#define PR_PTRACE_VM_READV (-310)    /* process_vm_readv */
#define PR_PTRACE_VM_WRITEV (-311)   /* process_vm_writev */
#define PR_PTRACE_PIDFD_GETFD (-438) /* pidfd_getfd (target_pid: the pidfd's host pid) */
/* Signals a tracked process sends to a process outside the tree (`signal` is set): */
#define PR_PTRACE_KILL (-62)
#define PR_PTRACE_TKILL (-200)
#define PR_PTRACE_TGKILL (-234)
#define PR_PTRACE_SIGQUEUE (-129)    /* rt_sigqueueinfo */
#define PR_PTRACE_TGSIGQUEUE (-297)  /* rt_tgsigqueueinfo */
#define PR_PTRACE_PIDFD_SIGNAL (-424) /* pidfd_send_signal (target_pid: the host pid) */
struct pr_ptrace {
	struct pr_hdr hdr;
	__s64 request;
	__u32 target_pid;     /* as passed (a thread id), or the parent for PTRACE_TRACEME */
	__u32 tracer_tracked;
	__u32 target_tracked; /* judged by target_pid: meaningful only when tracer_pid_ns is 0 */
	__u32 tracer_pid_ns;  /* inode of the tracer's PID namespace, 0 for the initial one: then
			       * target_pid is a host pid; else userspace translates it */
	__s32 signal;         /* the signal of a PR_PTRACE_*KILL / *SIGQUEUE / PIDFD_SIGNAL; else 0 */
	__u32 _pad;
};

/* Slots of the tracked set's counts (bpf/lib/common.h `track_count`; userspace adds to one
 * before it inserts a thread id). */
#define PR_TRACK_SLOTS 32768

/* Value of the tracked-set map (key: thread id). */
struct pr_task {
	__u64 switch_ts;      /* last sched_switch in or out of this thread, boot ns */
	__u32 flags;
	__u32 session;        /* session slot (PR_SESSION_*), inherited at fork */
	__u64 agg_dev;        /* with PR_TASK_OPEN_AGG in flags: the (dev, ino) of the thread's */
	__u64 agg_ino;        /* newest open_agg entry, the head of its list (lib/openagg.h) */
};

/* Array map `sessions`, indexed by slot: the state userspace and the kernel share. The record
 * counter is a map of its own (`session_seq`), so userspace can write this entry without
 * racing the kernel's increments. */
struct pr_session {
	__u64 used;           /* 1 while a session holds the slot (taken by compare-and-swap; 64
			       * bits: BPF has no 32-bit compare-and-swap without alu32) */
	__u32 mode;           /* enum pr_smode */
	__u32 rule;           /* daemon: the agent rule that opened it (1-based); 0 for run/attach */
};

/* Scheduler summary, one per CPU, summed and differenced by userspace. */
struct pr_sched {
	__u64 switches;
	__u64 voluntary;
	__u64 involuntary;
	__u64 run_ns;
	__u64 off_ns;
	__u64 run_hist[PR_SCHED_BUCKETS];
	__u64 off_hist[PR_SCHED_BUCKETS];
};

/* Enforcement settings (array map `pr_config_map`, one entry), switchable while running. */
struct pr_config {
	__u32 mode;           /* enum pr_mode */
	__u32 block_ptrace;   /* 1: attach/seize by or onto the tree is a violation */
	__u32 block_net;      /* 1: connects/sends outside the allow maps are violations */
	__u32 isolate;        /* 1: operator containment, every connect/send refused in any mode */
	__u32 lsm;            /* 1: lsm.bpf.c is attached and decides exec and ptrace */
	__u32 _pad;
};

/* Key of the deny_exec map (the executable's identity) and of lsm.bpf.c's deny_open map (a
 * sensitive file's), kernel dev_t encoding. */
struct pr_file_key {
	__u64 dev;
	__u64 ino;
};

/* Keys of the allow4/allow6 LPM tries: the prefix covers the port (16 bits, network order;
 * 0 = any port, looked up second) and then the address. */
struct pr_allow4_key {
	__u32 prefixlen;      /* 16 + CIDR bits */
	__u8 port[2];
	__u8 addr[4];
	__u8 _pad[2];
};

struct pr_allow6_key {
	__u32 prefixlen;      /* 16 + CIDR bits */
	__u8 port[2];
	__u8 addr[16];
	__u8 _pad[2];
};

/* PR_EV_DECISION: what enforcement decided, and about what. */
struct pr_decision {
	struct pr_hdr hdr;
	__u32 what;           /* enum pr_what */
	__u32 verdict;        /* enum pr_verdict */
	__u64 dev;            /* exec: the binary; open: the file */
	__u64 ino;
	__u32 target_pid;     /* ptrace: the target */
	__u16 family;         /* connect/sendmsg: AF_INET or AF_INET6 */
	__u16 port;           /* host order */
	__u8 addr[16];
	__u32 layer;          /* enum pr_layer */
	__u32 _pad;
};

/* An open's arguments, as file.h takes them from the registers the kernel saved at entry, read at
 * the syscall's exit (no program runs at entry): the path and the flags (openat2: a struct
 * open_how *). User memory they point to is read only at exit: at entry a page the process never
 * touched cannot be read by a probe (it cannot fault), while by exit the kernel has copied, and
 * so faulted in, everything it used. The network exits read their arguments the same way
 * (struct pr_args, lib/common.h). */
struct pr_pending {
	__u64 args[5];
	__u32 syscall;        /* enum pr_syscall */
	__u32 _pad;
};

/* PR_EV_TLS: one chunk of the plaintext of one TLS call, emitted at the call's return. A call
 * whose kept bytes exceed PR_TLS_CHUNK becomes several records of the same thread in a row
 * (offset 0, PR_TLS_CHUNK, ...), the last with last = 1; userspace puts them back together.
 * Followed by data_len bytes of plaintext. */
struct pr_tls {
	struct pr_hdr hdr;
	struct pr_sock peer;  /* the socket the library used for this connection; family 0 if unknown */
	__u64 conn;           /* the library's connection object (SSL *, gnutls_session_t) */
	__u64 len;            /* bytes the call transferred (its result) */
	__u32 lib;            /* enum pr_tls_lib */
	__u32 direction;      /* enum pr_tls_dir */
	__u32 offset;         /* where this chunk starts in the call's plaintext */
	__u32 data_len;       /* plaintext bytes in this record */
	__u32 truncated;      /* 1 when the call transferred more than --tls-max-bytes */
	__u32 last;           /* 1 on the call's last record */
	__u8 data[PR_TLS_CHUNK];
};

/* PR_EV_TLS_SNI: the server_name of a TLS ClientHello seen leaving the agent's cgroup. Followed
 * by sni_len bytes of host name. */
struct pr_sni {
	struct pr_hdr hdr;
	__u16 family;         /* AF_INET or AF_INET6 (of the packet) */
	__u16 dport;          /* host order */
	__u32 sni_len;
	__u8 daddr[16];       /* v4 in the first 4 bytes, or v6 */
	__u32 tracked;        /* 1: the header names the sending task; 0: it ran outside the tree */
	__u32 in_tls_call;    /* 1: sent from inside a hooked TLS library call (--capture-tls) */
	__u8 sni[PR_SNI_MAX];
};

/* PR_EV_URING_SETUP: an io_uring instance the kernel created for a tracked process (its
 * io_uring_create tracepoint: the sizes and flags the kernel settled on, not what user memory
 * asked for). Operations on it bypass the syscall tracepoints; uring.h records what it can. */
struct pr_uring_setup {
	struct pr_hdr hdr;
	__s32 fd;             /* the ring's descriptor */
	__u32 sq_entries;
	__u32 cq_entries;
	__u32 flags;          /* IORING_SETUP_* */
};

_Static_assert(sizeof(struct pr_uring_setup) == 96 + 16, "pr_uring_setup layout");
_Static_assert(PR_SOCKADDR_MAX <= 127, "net.h masks sockaddr lengths with 127");
_Static_assert((PR_PATH_MAX & (PR_PATH_MAX - 1)) == 0, "path masks need a power of two");
_Static_assert((PR_ARGV_MAX & (PR_ARGV_MAX - 1)) == 0, "argv masks need a power of two");
_Static_assert((PR_DNS_MAX & (PR_DNS_MAX - 1)) == 0, "dns masks need a power of two");
_Static_assert(sizeof(struct pr_hdr) == 96, "pr_hdr layout");
_Static_assert(sizeof(struct pr_session) == 16, "pr_session layout");
_Static_assert(sizeof(struct pr_task) == 32, "pr_task layout");
_Static_assert(sizeof(struct pr_sock) == 24, "pr_sock layout");
_Static_assert(sizeof(struct pr_inbound) == 96 + 24 + 32, "pr_inbound layout");
_Static_assert(sizeof(struct pr_exec) == 96 + 88 + PR_PATH_MAX + PR_ARGV_MAX + PR_ENV_MAX, "pr_exec layout");
_Static_assert(PR_ENV_MAX >= PR_ENV_KEPT_MAX + PR_ENV_VAR_MAX, "a kept variable and the read after it fit");
_Static_assert(__builtin_offsetof(struct pr_exec, fileless) == 96 + 32, "pr_exec.fileless offset");
_Static_assert(sizeof(struct pr_fork) == 104, "pr_fork layout");
_Static_assert(sizeof(struct pr_exit) == 104, "pr_exit layout");
_Static_assert(sizeof(struct pr_open) == 96 + 64 + PR_PATH_MAX, "pr_open layout");
_Static_assert(sizeof(struct pr_open_kept) == 96 + 64 + PR_AGG_PATH_MAX, "pr_open_kept layout");
_Static_assert(sizeof(struct pr_open_seen) == 96 + 40, "pr_open_seen layout");
_Static_assert(sizeof(struct pr_open_seen_key) == 56, "pr_open_seen_key layout");
_Static_assert(__builtin_offsetof(struct pr_open_kept, data) == __builtin_offsetof(struct pr_open, data),
	       "pr_open_kept is pr_open with a shorter path");
_Static_assert(sizeof(struct pr_open_agg) == sizeof(struct pr_open_kept) + 88, "pr_open_agg layout");
_Static_assert(sizeof(struct pr_open_agg_key) == 24, "pr_open_agg_key layout");
_Static_assert(sizeof(struct pr_connect) == 96 + 24 + 8 + PR_SOCKADDR_MAX + 32, "pr_connect layout");
_Static_assert(sizeof(struct pr_conn_agg) == sizeof(struct pr_connect) + 32, "pr_conn_agg layout");
_Static_assert(sizeof(struct pr_send) == 96 + 24 + 16 + PR_SOCKADDR_MAX + 8 + PR_DNS_MAX, "pr_send layout");
_Static_assert(sizeof(struct pr_ptrace) == 96 + 32, "pr_ptrace layout");
_Static_assert(__builtin_offsetof(struct pr_ptrace, tracer_pid_ns) == 96 + 20, "pr_ptrace.tracer_pid_ns offset");
_Static_assert(sizeof(struct pr_sched) == 40 + 16 * PR_SCHED_BUCKETS, "pr_sched layout");
_Static_assert(sizeof(struct pr_config) == 24, "pr_config layout");
_Static_assert(sizeof(struct pr_allow4_key) == 12, "pr_allow4_key layout");
_Static_assert(sizeof(struct pr_allow6_key) == 24, "pr_allow6_key layout");
_Static_assert(sizeof(struct pr_decision) == 96 + 56, "pr_decision layout");
_Static_assert(sizeof(struct pr_pending) == 48, "pr_pending layout");
_Static_assert(__builtin_offsetof(struct pr_connect, ret) == 96 + 24 + 4, "pr_connect.ret offset");
_Static_assert(__builtin_offsetof(struct pr_connect, addr) == 96 + 24 + 8, "pr_connect.addr offset");
_Static_assert((PR_TLS_CHUNK & (PR_TLS_CHUNK - 1)) == 0, "tls masks need a power of two");
_Static_assert(PR_TLS_DEFAULT_MAX <= PR_TLS_CHUNK * PR_TLS_MAX_CHUNKS, "default within bound");
_Static_assert(sizeof(struct pr_tls) == 96 + 24 + 40 + PR_TLS_CHUNK, "pr_tls layout");
_Static_assert(sizeof(struct pr_sni) == 96 + 32 + PR_SNI_MAX, "pr_sni layout");
_Static_assert((PR_SNI_MAX & (PR_SNI_MAX - 1)) == 0, "tls.h masks SNI lengths with PR_SNI_MAX - 1");

/* TLS interception (--tls-intercept): the agent's TCP connects to the intercepted ports are
 * redirected by its cgroup's connect4/6 program to proctor's proxy on loopback; the original
 * destination is kept by socket cookie, then (sockops, at the SYN) by the client's local port,
 * which is all the proxy sees of the connection. Ports in host order. */
struct pr_icpt_cfg {
	__u16 port4;          /* the proxy's port on 127.0.0.1; 0: interception off */
	__u16 port6;          /* the proxy's port on ::1; 0: IPv6 connects are not redirected */
	__u32 _pad;
};

struct pr_icpt_key {
	__u16 port;           /* the client socket's local port */
	__u16 family;         /* AF_INET or AF_INET6 */
};

struct pr_icpt_orig {
	__u32 pid;            /* the process that connected */
	__u16 family;
	__u16 port;
	__u8 addr[16];        /* 4 bytes for AF_INET, network order */
};

_Static_assert(sizeof(struct pr_icpt_cfg) == 8, "pr_icpt_cfg layout");
_Static_assert(sizeof(struct pr_icpt_key) == 4, "pr_icpt_key layout");
_Static_assert(sizeof(struct pr_icpt_orig) == 24, "pr_icpt_orig layout");

#endif /* PROCTOR_INTF_H */
