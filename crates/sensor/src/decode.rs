//! Ring-buffer records into domain events, in two checked steps:
//! 1. bytes -> a plain `#[repr(C)]` wire struct generated from `intf.h`, after a length check;
//! 2. wire struct -> owned [`proctor_model::Event`]s, validating every length field against the
//!    bytes actually received.
//!
//! A record that fails either step is a [`DecodeError`]: counted and reported by the caller as a
//! `lost` record of kind "malformed", never a panic.

use proctor_model::{
    Access, Bytes, Connect, DeviceKind, DeviceNode, Dns, DnsAnswer, Event, Exec, Exit, Family,
    FileOpen, Fork, Identity, Inbound, IoUringSetup, PathChange, Privileged, Ptrace, Send,
    SockAddr, TlsDirection, TlsSni,
};
use proctor_probes::wire;
use proctor_probes::wire::{
    pr_connect, pr_decision, pr_exec, pr_exit, pr_fork, pr_hdr, pr_kind_PR_EV_CONNECT,
    pr_kind_PR_EV_DECISION, pr_kind_PR_EV_EXEC, pr_kind_PR_EV_EXIT, pr_kind_PR_EV_FORK,
    pr_kind_PR_EV_OPEN, pr_kind_PR_EV_PTRACE, pr_kind_PR_EV_SEND, pr_layer_PR_LAYER_CGROUP,
    pr_layer_PR_LAYER_LSM, pr_layer_PR_LAYER_TRACEPOINT, pr_open, pr_ptrace, pr_send, pr_sock,
    pr_verdict_PR_VERDICT_BLOCKED, pr_what_PR_WHAT_CONNECT, pr_what_PR_WHAT_EXEC,
    pr_what_PR_WHAT_OPEN, pr_what_PR_WHAT_PTRACE, pr_what_PR_WHAT_SENDMSG,
};
use proctor_probes::wire::{
    pr_inbound, pr_kind_PR_EV_INBOUND, pr_syscall_PR_SYS_ACCEPT, pr_syscall_PR_SYS_ACCEPT4,
    pr_syscall_PR_SYS_LISTEN,
};
use proctor_probes::wire::{pr_kind_PR_EV_DNS_ANSWER, pr_kind_PR_EV_OPEN_SEEN, pr_open_seen};
use proctor_probes::wire::{
    pr_kind_PR_EV_PATH, pr_kind_PR_EV_PRIV, pr_node_PR_NODE_BLK, pr_node_PR_NODE_CHR, pr_path,
};
use proctor_probes::wire::{
    pr_kind_PR_EV_TLS, pr_kind_PR_EV_TLS_SNI, pr_kind_PR_EV_URING_SETUP, pr_sni, pr_tls,
    pr_tls_dir_PR_TLS_SEND, pr_tls_lib_PR_TLS_GNUTLS, pr_tls_lib_PR_TLS_OPENSSL, pr_uring_setup,
};
use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {got} bytes is shorter than its {need}-byte {what}")]
    Short {
        what: &'static str,
        need: usize,
        got: usize,
    },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    #[error("{what} length {len} exceeds the {avail} bytes present")]
    BadLength {
        what: &'static str,
        len: usize,
        avail: usize,
    },
}

/// Marker for wire structs: plain old data generated from intf.h (integers and byte arrays only,
/// so every bit pattern is a valid value).
///
/// # Safety
/// Implement only for `#[repr(C)]` types whose fields are all integers or arrays of integers.
pub unsafe trait Wire: Copy {}

// SAFETY: generated from intf.h, which allows only fixed-width integers and arrays of them.
unsafe impl Wire for pr_hdr {}
// SAFETY: as above.
unsafe impl Wire for pr_exec {}
// SAFETY: as above.
unsafe impl Wire for pr_fork {}
// SAFETY: as above.
unsafe impl Wire for pr_exit {}
// SAFETY: as above.
unsafe impl Wire for pr_open {}
// SAFETY: as above.
unsafe impl Wire for pr_connect {}
// SAFETY: as above.
unsafe impl Wire for pr_send {}
// SAFETY: as above.
unsafe impl Wire for pr_ptrace {}
// SAFETY: as above.
unsafe impl Wire for pr_decision {}
// SAFETY: as above.
unsafe impl Wire for pr_tls {}
// SAFETY: as above.
unsafe impl Wire for pr_sni {}
// SAFETY: as above.
unsafe impl Wire for pr_uring_setup {}
// SAFETY: as above.
unsafe impl Wire for pr_open_seen {}
// SAFETY: as above.
unsafe impl Wire for pr_path {}
// SAFETY: as above.
unsafe impl Wire for pr_inbound {}

/// Step 1: copy the fixed part of a wire struct out of `b`. Records with a variable tail are
/// emitted short (only the bytes used), so `fixed` is the size of the part that must be present;
/// missing tail bytes stay zero and are never read (lengths are checked in step 2).
fn read_wire<T: Wire + Default>(
    b: &[u8],
    fixed: usize,
    what: &'static str,
) -> Result<T, DecodeError> {
    if b.len() < fixed {
        return Err(DecodeError::Short {
            what,
            need: fixed,
            got: b.len(),
        });
    }
    let mut out = T::default();
    let n = b.len().min(size_of::<T>());
    // SAFETY: `out` is a plain integer struct (Wire) of size_of::<T>() bytes and n <= that size;
    // every byte pattern is a valid T.
    unsafe {
        std::ptr::copy_nonoverlapping(b.as_ptr(), (&mut out as *mut T).cast::<u8>(), n);
    }
    Ok(out)
}

/// A decoded record: the kernel's header facts plus zero or more domain events (a send to port
/// 53 yields a `dns` event and, when it named a destination, a `send` event too).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub ts_boot_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub comm: Bytes,
    pub exec_id: String,
    pub identity: Identity,
    /// The record's session slot and number (0, 0 without a session).
    pub kseq: proctor_model::Kseq,
    pub events: Vec<Event>,
    /// An enforcement decision, when the record was one.
    pub decision: Option<Decision>,
    /// One chunk of a TLS call's plaintext; the sensor joins the chunks of a call into one
    /// `tls` event.
    pub tls_chunk: Option<TlsChunk>,
    /// False when the kernel saw the record's action outside the tracked tree (a `tls_sni`
    /// packet sent from another context): the header then does not name the agent's process.
    pub attributed: bool,
    /// `tls_sni`: the ClientHello left from inside a hooked TLS library call.
    pub in_tls_call: bool,
    /// `ptrace`: inode of the tracer's PID namespace when it is not the initial one; the
    /// target pid is then namespace-local until the sensor translates it.
    pub pid_ns: u32,
    /// `file_open`: later identical reads of the session name this record (its kseq) instead
    /// of carrying the path (bpf/lib/openseen.h).
    pub seen_key: bool,
    /// A read of a file the session recorded whole: the sensor folds these per process.
    pub open_seen: Option<OpenSeen>,
}

/// A read the kernel did not record whole (`pr_open_seen`): the recorded open it repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenSeen {
    pub first_kseq: u64,
    /// `st_dev` encoding.
    pub dev: u64,
    pub ino: u64,
    pub flags: u32,
    /// The reading process image's start time and exec number, and its command name as the
    /// header had it. The `Decoded` of a read leaves `comm` and `exec_id` empty: most reads
    /// only add to their image's fold, and the fold's first read builds them from these.
    pub image: (u64, u64),
    pub comm: [u8; 16],
}

impl OpenSeen {
    /// Fill the header fields a read's `Decoded` was left without (see [`OpenSeen::image`]).
    pub(crate) fn complete(&self, d: &mut Decoded) {
        if d.exec_id.is_empty() {
            d.comm = Bytes(trim_nul(&self.comm).to_vec());
            d.exec_id = exec_id(d.pid, self.image.0, self.image.1);
        }
    }
}

/// Part of the plaintext of one TLS library call (`pr_tls`).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsChunk {
    pub lib: &'static str,
    pub direction: TlsDirection,
    pub conn: u64,
    pub peer: Option<SockAddr>,
    /// What the call returned.
    pub len: u64,
    pub offset: u32,
    pub data: Vec<u8>,
    pub truncated: bool,
    pub last: bool,
}

/// What enforcement decided in the kernel (`decision` records): typed in the model.
pub use proctor_model::Decision;

pub fn decode(b: &[u8]) -> Result<Decoded, DecodeError> {
    let hdr: pr_hdr = read_wire(b, size_of::<pr_hdr>(), "header")?;
    let events = match hdr.kind {
        k if k == pr_kind_PR_EV_EXEC => vec![decode_exec(b)?],
        k if k == pr_kind_PR_EV_FORK => {
            let r: pr_fork = read_wire(b, size_of::<pr_fork>(), "fork record")?;
            vec![Event::Fork(Fork {
                child_pid: r.child_pid,
            })]
        }
        k if k == pr_kind_PR_EV_EXIT => {
            let r: pr_exit = read_wire(b, size_of::<pr_exit>(), "exit record")?;
            vec![Event::Exit(exit_status(r.exit_code))]
        }
        k if k == pr_kind_PR_EV_OPEN => {
            let (open, seen_key) = decode_open(b)?;
            return Ok(Decoded {
                seen_key,
                ..header(&hdr, vec![open])
            });
        }
        k if k == pr_kind_PR_EV_OPEN_SEEN => {
            let r: pr_open_seen = read_wire(b, size_of::<pr_open_seen>(), "open_seen record")?;
            // The most frequent kernel record of an agent's session, and most of them only
            // count: no allocation for the header's names here (OpenSeen::complete).
            return Ok(Decoded {
                open_seen: Some(OpenSeen {
                    first_kseq: r.first_kseq,
                    dev: user_dev(r.dev),
                    ino: r.ino,
                    flags: r.flags,
                    image: (hdr.start_boottime, hdr.exec_seq),
                    comm: hdr.comm,
                }),
                ..header_named(&hdr, Vec::new(), Bytes(Vec::new()), String::new())
            });
        }
        k if k == pr_kind_PR_EV_CONNECT => {
            let r: pr_connect = read_wire(b, size_of::<pr_connect>(), "connect record")?;
            let passed = sockaddr(&r.addr[..checked_len(r.addr_len, r.addr.len(), "addr")?]);
            // The peer the kernel connected the socket to is the truth; the caller's sockaddr
            // (which another thread may rewrite during the call) only where there is none.
            let dest = match passed {
                _ if connected_inet(&r.sock) => peer_of(&r.sock),
                Some(a) => a,
                None => peer_of(&r.sock),
            };
            let (peer_dev, peer_ino) = unix_peer(&r.sock);
            vec![Event::Connect(Connect {
                dest,
                protocol: protocol(&r.sock),
                repeats: r.repeats,
                // Boot time here; the sensor makes it wall-clock time as it does the header's.
                last_ts_ns: if r.repeats > 0 { r.last_ts_ns } else { 0 },
                peer_dev,
                peer_ino,
                peer_pid: r.peer_pid,
                peer_outside: r.peer_pid != 0 && r.peer_tracked == 0,
                // Read from /proc by the sensor, which has it at hand.
                peer_exe: None,
                netns: r.netns,
            })]
        }
        k if k == pr_kind_PR_EV_SEND => decode_send(b)?,
        k if k == pr_kind_PR_EV_INBOUND => vec![decode_inbound(b)?],
        k if k == pr_kind_PR_EV_PATH => vec![decode_path(b)?],
        k if k == pr_kind_PR_EV_PRIV => vec![decode_privileged(b)?],
        k if k == pr_kind_PR_EV_DNS_ANSWER => decode_answer(b)?,
        k if k == pr_kind_PR_EV_PTRACE => {
            let r: pr_ptrace = read_wire(b, size_of::<pr_ptrace>(), "ptrace record")?;
            return Ok(Decoded {
                pid_ns: r.tracer_pid_ns,
                ..header(&hdr, vec![ptrace_event(&hdr, &r)])
            });
        }
        k if k == pr_kind_PR_EV_TLS => {
            return Ok(Decoded {
                tls_chunk: Some(decode_tls(b)?),
                ..header(&hdr, Vec::new())
            });
        }
        k if k == pr_kind_PR_EV_TLS_SNI => {
            let (sni, tracked, in_call) = decode_sni(b)?;
            return Ok(Decoded {
                attributed: tracked,
                in_tls_call: in_call,
                ..header(&hdr, vec![sni])
            });
        }
        k if k == pr_kind_PR_EV_URING_SETUP => {
            let r: pr_uring_setup =
                read_wire(b, size_of::<pr_uring_setup>(), "io_uring_setup record")?;
            vec![Event::IoUringSetup(IoUringSetup {
                fd: r.fd,
                sq_entries: r.sq_entries,
                cq_entries: r.cq_entries,
                flags: r.flags,
                flag_names: IoUringSetup::names(r.flags),
            })]
        }
        k if k == pr_kind_PR_EV_DECISION => {
            let r: pr_decision = read_wire(b, size_of::<pr_decision>(), "decision record")?;
            return Ok(Decoded {
                decision: Some(decode_decision(&r)?),
                ..header(&hdr, Vec::new())
            });
        }
        k => return Err(DecodeError::UnknownKind(k)),
    };
    Ok(header(&hdr, events))
}

fn ptrace_event(hdr: &pr_hdr, r: &pr_ptrace) -> Event {
    let request = match r.request {
        0 => "traceme",
        16 => "attach",
        0x4206 => "seize",
        r if r == i64::from(wire::PR_PTRACE_VM_READV) => "vm_readv",
        r if r == i64::from(wire::PR_PTRACE_VM_WRITEV) => "vm_writev",
        r if r == i64::from(wire::PR_PTRACE_PIDFD_GETFD) => "pidfd_getfd",
        r if r == i64::from(wire::PR_PTRACE_KILL) => "kill",
        r if r == i64::from(wire::PR_PTRACE_TKILL) => "tkill",
        r if r == i64::from(wire::PR_PTRACE_TGKILL) => "tgkill",
        r if r == i64::from(wire::PR_PTRACE_SIGQUEUE) => "rt_sigqueueinfo",
        r if r == i64::from(wire::PR_PTRACE_TGSIGQUEUE) => "rt_tgsigqueueinfo",
        r if r == i64::from(wire::PR_PTRACE_PIDFD_SIGNAL) => "pidfd_send_signal",
        _ => "other",
    };
    Event::Ptrace(Ptrace {
        request: request.to_string(),
        request_code: r.request,
        tracer_pid: hdr.pid,
        target_pid: r.target_pid,
        tracer_tracked: r.tracer_tracked != 0,
        target_tracked: r.target_tracked != 0,
        signal: (r.signal != 0).then_some(r.signal),
        // Read from /proc by the sensor for a signal (the target may be gone by then).
        target_comm: None,
    })
}

/// `PID-START-SEQ`: one per record, so written with `itoa` into one allocation (`format!` was
/// 6% of the reader's CPU on the agent workload).
fn exec_id(pid: u32, start_boottime: u64, exec_seq: u64) -> String {
    let mut b = itoa::Buffer::new();
    let mut s = String::with_capacity(40);
    s.push_str(b.format(pid));
    s.push('-');
    s.push_str(b.format(start_boottime));
    s.push('-');
    s.push_str(b.format(exec_seq));
    s
}

/// A header for the sensor's own tests: `comm`, pid 7 (parent 1) of exec `7-1-SEQ`, uid and
/// gid 1000, cgroup 42, session 1 without a number, at boot time `ts`.
#[cfg(test)]
pub(crate) fn test_header(comm: &str, tid: u32, exec_seq: u64, ts: u64) -> Decoded {
    let mut h = pr_hdr {
        ts_boot_ns: ts,
        pid: 7,
        tid,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        loginuid: u32::MAX,
        cgroup_id: 42,
        start_boottime: 1,
        exec_seq,
        session: 1,
        ..pr_hdr::default()
    };
    h.comm[..comm.len()].copy_from_slice(comm.as_bytes());
    header(&h, Vec::new())
}

fn header(hdr: &pr_hdr, events: Vec<Event>) -> Decoded {
    let comm = Bytes(trim_nul(&hdr.comm).to_vec());
    header_named(
        hdr,
        events,
        comm,
        exec_id(hdr.pid, hdr.start_boottime, hdr.exec_seq),
    )
}

fn header_named(hdr: &pr_hdr, events: Vec<Event>, comm: Bytes, exec_id: String) -> Decoded {
    Decoded {
        ts_boot_ns: hdr.ts_boot_ns,
        pid: hdr.pid,
        tid: hdr.tid,
        ppid: hdr.ppid,
        comm,
        exec_id,
        identity: Identity {
            uid: hdr.uid,
            gid: hdr.gid,
            loginuid: hdr.loginuid,
            cgroup_id: hdr.cgroup_id,
            // The sensor fills it from the cgroup id (a path lookup, cached per cgroup).
            container: None,
        },
        kseq: proctor_model::Kseq {
            kslot: hdr.session,
            kseq: hdr.kseq,
        },
        events,
        decision: None,
        tls_chunk: None,
        attributed: true,
        in_tls_call: false,
        pid_ns: 0,
        seen_key: false,
        open_seen: None,
    }
}

fn decode_tls(b: &[u8]) -> Result<TlsChunk, DecodeError> {
    let data = offset_of!(pr_tls, data);
    let r: pr_tls = read_wire(b, data, "tls record")?;
    let bytes = tail(b, data, r.data_len as usize, "tls data")?;
    let lib = match r.lib {
        l if l == pr_tls_lib_PR_TLS_OPENSSL => "openssl",
        l if l == pr_tls_lib_PR_TLS_GNUTLS => "gnutls",
        l => return Err(DecodeError::UnknownKind(l)),
    };
    Ok(TlsChunk {
        lib,
        direction: if r.direction == pr_tls_dir_PR_TLS_SEND {
            TlsDirection::Send
        } else {
            TlsDirection::Recv
        },
        conn: r.conn,
        peer: (r.peer.family == AF_INET || r.peer.family == AF_INET6).then(|| peer_of(&r.peer)),
        len: r.len,
        offset: r.offset,
        data: bytes.to_vec(),
        truncated: r.truncated != 0,
        last: r.last != 0,
    })
}

fn decode_sni(b: &[u8]) -> Result<(Event, bool, bool), DecodeError> {
    let data = offset_of!(pr_sni, sni);
    let r: pr_sni = read_wire(b, data, "tls_sni record")?;
    let sni = tail(b, data, checked_len(r.sni_len, r.sni.len(), "sni")?, "sni")?;
    let dest = match r.family {
        AF_INET6 => SockAddr {
            family: Family::Inet6,
            addr: Some(Ipv6Addr::from(r.daddr).to_string()),
            port: Some(r.dport),
            path: None,
        },
        _ => SockAddr {
            family: Family::Inet,
            addr: Some(Ipv4Addr::new(r.daddr[0], r.daddr[1], r.daddr[2], r.daddr[3]).to_string()),
            port: Some(r.dport),
            path: None,
        },
    };
    Ok((
        Event::TlsSni(TlsSni {
            dest,
            sni: Bytes(sni.to_vec()),
        }),
        r.tracked != 0,
        r.in_tls_call != 0,
    ))
}

fn decode_decision(r: &pr_decision) -> Result<Decision, DecodeError> {
    use proctor_model::{DecisionLayer as L, DecisionVerdict as V, DecisionWhat as W};
    let what = match r.what {
        w if w == pr_what_PR_WHAT_EXEC => W::Exec,
        w if w == pr_what_PR_WHAT_PTRACE => W::Ptrace,
        w if w == pr_what_PR_WHAT_CONNECT => W::Connect,
        w if w == pr_what_PR_WHAT_SENDMSG => W::Sendmsg,
        w if w == pr_what_PR_WHAT_OPEN => W::Open,
        w => return Err(DecodeError::UnknownKind(w)),
    };
    let layer = match r.layer {
        l if l == pr_layer_PR_LAYER_TRACEPOINT => L::Tracepoint,
        l if l == pr_layer_PR_LAYER_CGROUP => L::CgroupBpf,
        l if l == pr_layer_PR_LAYER_LSM => L::Lsm,
        l => return Err(DecodeError::UnknownKind(l)),
    };
    let verdict = if r.verdict == pr_verdict_PR_VERDICT_BLOCKED {
        V::Blocked
    } else {
        V::WouldBlock
    };
    let dest = match r.family {
        f if f == AF_INET => Some(SockAddr {
            family: Family::Inet,
            addr: Some(Ipv4Addr::new(r.addr[0], r.addr[1], r.addr[2], r.addr[3]).to_string()),
            port: Some(r.port),
            path: None,
        }),
        f if f == AF_INET6 => Some(SockAddr {
            family: Family::Inet6,
            addr: Some(Ipv6Addr::from(r.addr).to_string()),
            port: Some(r.port),
            path: None,
        }),
        _ => None,
    };
    Ok(Decision {
        what,
        verdict,
        layer,
        dev: matches!(what, W::Exec | W::Open).then(|| user_dev(r.dev)),
        ino: matches!(what, W::Exec | W::Open).then_some(r.ino),
        target_pid: (what == W::Ptrace).then_some(r.target_pid),
        dest,
        path: None,
        requested: None,
        resolution: None,
    })
}

fn checked_len(len: u32, avail: usize, what: &'static str) -> Result<usize, DecodeError> {
    let len = len as usize;
    if len > avail {
        return Err(DecodeError::BadLength { what, len, avail });
    }
    Ok(len)
}

/// The variable tail of a record: `len` bytes at `start` within the bytes received.
fn tail<'a>(
    b: &'a [u8],
    start: usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], DecodeError> {
    b.get(start..start + len).ok_or(DecodeError::BadLength {
        what,
        len,
        avail: b.len().saturating_sub(start),
    })
}

fn decode_exec(b: &[u8]) -> Result<Event, DecodeError> {
    let data = offset_of!(pr_exec, data);
    let r: pr_exec = read_wire(b, data, "exec record")?;
    let flen = r.filename_len as usize;
    let alen = r.argv_len as usize;
    let filename = tail(b, data, flen, "exec filename")?;
    let args = tail(b, data + flen, alen, "exec argv")?;
    let env = tail(
        b,
        data + flen + alen,
        r.env_len as usize,
        "exec environment",
    )?;
    // argv is NUL-separated with a final NUL; a cut argv may end mid-argument.
    let mut argv: Vec<Bytes> = args.split(|&c| c == 0).map(|a| Bytes(a.to_vec())).collect();
    if args.last() == Some(&0) {
        argv.pop();
    }
    Ok(Event::Exec(Exec {
        filename: Bytes(filename.to_vec()),
        argv,
        argv_truncated: r.argv_truncated != 0 || r.filename_truncated != 0,
        dev: user_dev(r.dev),
        ino: r.ino,
        fileless: r.fileless != 0,
        build_id: None,
        euid: (r.euid != r.hdr.uid).then_some(r.euid),
        egid: (r.egid != r.hdr.gid).then_some(r.egid),
        // The whole environment, or what the kernel matched on eight bytes: only the exact
        // names are kept, and nothing else of it outlives the ring buffer's bytes.
        env: env
            .split(|&c| c == 0)
            .filter(|v| {
                proctor_model::RUN_ENV
                    .iter()
                    .any(|n| proctor_model::env_value(v, n).is_some())
            })
            .map(|v| Bytes(v.to_vec()))
            .collect(),
        env_truncated: r.env_flags & proctor_probes::wire::PR_ENV_CUT != 0,
        env_unread: r.env_flags & proctor_probes::wire::PR_ENV_UNREAD != 0,
        // A file's ctime is never the epoch: zero is a read that failed.
        at_exec: (r.ctime_sec != 0).then_some(proctor_model::InodeTimes {
            size: r.size,
            mtime: (r.mtime_sec, i64::from(r.mtime_nsec)),
            ctime: (r.ctime_sec, i64::from(r.ctime_nsec)),
        }),
    }))
}

/// The open, and whether later reads of the session name it (`seen_key`).
fn decode_open(b: &[u8]) -> Result<(Event, bool), DecodeError> {
    let data = offset_of!(pr_open, data);
    let r: pr_open = read_wire(b, data, "open record")?;
    let path = tail(b, data, r.path_len as usize, "open path")?;
    let open = Event::FileOpen(FileOpen {
        path: Bytes(path.to_vec()),
        flags: r.flags,
        access: Access::of_flags(r.flags),
        create: r.flags & proctor_model::O_CREAT != 0,
        created: r.created != 0,
        truncate: r.flags & proctor_model::O_TRUNC != 0,
        dev: user_dev(r.dev),
        ino: r.ino,
        error: (r.ret < 0).then(|| -(r.ret as i32)),
        path_truncated: r.path_truncated != 0,
        repeats: r.repeats,
        // Boot time here; the sensor makes it wall-clock time as it does the header's.
        last_ts_ns: if r.repeats > 0 { r.last_ts_ns } else { 0 },
        device: match u32::from(r.node) {
            n if n == pr_node_PR_NODE_CHR => {
                Some(DeviceNode::from_kernel(DeviceKind::Char, r.rdev))
            }
            n if n == pr_node_PR_NODE_BLK => {
                Some(DeviceNode::from_kernel(DeviceKind::Block, r.rdev))
            }
            _ => None,
        },
        setid: r.setid != 0,
        mapped_exec: r.syscall == wire::pr_syscall_PR_SYS_MMAP,
    });
    // A counted repeat's copy keeps the flag of the record it copies: only the first counts.
    Ok((open, r.seen_key != 0 && r.repeats == 0))
}

/// A `path_change`: each name joined to the directory the kernel resolved for it.
/// A `pr_path`-layout record (PR_EV_PATH, PR_EV_PRIV) and its four parts.
fn path_parts<'a>(
    b: &'a [u8],
    what: &'static str,
) -> Result<(pr_path, [&'a [u8]; 4]), DecodeError> {
    let data = offset_of!(pr_path, data);
    let r: pr_path = read_wire(b, data, what)?;
    let mut parts = [&[][..]; 4];
    let mut at = data;
    for (i, part) in parts.iter_mut().enumerate() {
        let len = usize::from(r.len[i]);
        *part = tail(b, at, len, what)?;
        at += len;
    }
    Ok((r, parts))
}

fn decode_path(b: &[u8]) -> Result<Event, DecodeError> {
    use proctor_probes::wire::*;
    let (r, parts) = path_parts(b, "path record")?;
    let op = match r.op {
        o if o == pr_path_op_PR_PATH_UNLINK => "unlink",
        o if o == pr_path_op_PR_PATH_RMDIR => "rmdir",
        o if o == pr_path_op_PR_PATH_RENAME => "rename",
        o if o == pr_path_op_PR_PATH_LINK => "link",
        o if o == pr_path_op_PR_PATH_SYMLINK => "symlink",
        o if o == pr_path_op_PR_PATH_TRUNCATE => "truncate",
        o if o == pr_path_op_PR_PATH_MKDIR => "mkdir",
        _ => "other",
    };
    let syscall = syscall_name(r.syscall).unwrap_or("other");
    // A symlink's target is text the kernel stores as it is.
    let path = if op == "symlink" {
        parts[0].to_vec()
    } else {
        join_lexically(parts[1], parts[0])
    };
    let new_path = (!parts[2].is_empty()).then(|| Bytes(join_lexically(parts[3], parts[2])));
    Ok(Event::PathChange(PathChange {
        op: op.to_string(),
        path: Bytes(path),
        new_path,
        flags: r.flags,
        syscall: syscall.to_string(),
        path_truncated: r.truncated != 0,
    }))
}

/// The host's mount and user namespaces (their inode numbers), read once: init's, as proctor's
/// /proc shows it (the service runs in a mount namespace of its own under ProtectSystem=, and
/// a DaemonSet's container has its own too; with the host's pid namespace, pid 1 is the
/// host's init), else proctor's own.
fn own_namespaces() -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    static NS: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    *NS.get_or_init(|| {
        let ino = |n: &str| {
            ["/proc/1/ns/", "/proc/self/ns/"]
                .iter()
                .find_map(|d| std::fs::metadata(format!("{d}{n}")).ok())
                .map_or(0, |m| m.ino())
        };
        (ino("mnt"), ino("user"))
    })
}

fn decode_privileged(b: &[u8]) -> Result<Event, DecodeError> {
    let (r, parts) = path_parts(b, "privileged record")?;
    let syscall = syscall_name(r.syscall).unwrap_or("other");
    // The kernel sends no directory for most of these (privops.h keeps their paths as
    // passed): a relative path stays as it is (delete_module's module name among them), an
    // absolute one is normalised as path_change's are. The chmod and setxattr calls come with
    // the directory a relative path was resolved in, and are joined to it.
    let joined =
        |rel: &[u8], base: &[u8]| (!rel.is_empty()).then(|| Bytes(join_lexically(base, rel)));
    let (mnt, user) = own_namespaces();
    Ok(Event::Privileged(Privileged {
        syscall: syscall.to_string(),
        path: joined(parts[0], parts[1]),
        source: joined(parts[2], parts[3]),
        flags: r.flags,
        error: (r.ret < 0).then(|| -r.ret),
        namespaced: (mnt != 0 && u64::from(r.mnt_ns) != mnt)
            || (user != 0 && u64::from(r.user_ns) != user),
        path_truncated: r.truncated != 0,
        mtime_after_ns: None,
    }))
}

/// The name a record's `syscall` gives an `enum pr_syscall` value (send and path records).
fn syscall_name(s: u32) -> Option<&'static str> {
    use proctor_probes::wire::*;
    Some(match s {
        s if s == pr_syscall_PR_SYS_SENDTO => "sendto",
        s if s == pr_syscall_PR_SYS_SENDMSG => "sendmsg",
        s if s == pr_syscall_PR_SYS_SENDMMSG => "sendmmsg",
        s if s == pr_syscall_PR_SYS_WRITE => "write",
        s if s == pr_syscall_PR_SYS_URING_SEND => "io_uring_send",
        s if s == pr_syscall_PR_SYS_URING_SENDMSG => "io_uring_sendmsg",
        s if s == pr_syscall_PR_SYS_SOCKET => "socket",
        s if s == pr_syscall_PR_SYS_UNLINK => "unlink",
        s if s == pr_syscall_PR_SYS_UNLINKAT => "unlinkat",
        s if s == pr_syscall_PR_SYS_RMDIR => "rmdir",
        s if s == pr_syscall_PR_SYS_RENAME => "rename",
        s if s == pr_syscall_PR_SYS_RENAMEAT => "renameat",
        s if s == pr_syscall_PR_SYS_RENAMEAT2 => "renameat2",
        s if s == pr_syscall_PR_SYS_LINK => "link",
        s if s == pr_syscall_PR_SYS_LINKAT => "linkat",
        s if s == pr_syscall_PR_SYS_SYMLINK => "symlink",
        s if s == pr_syscall_PR_SYS_SYMLINKAT => "symlinkat",
        s if s == pr_syscall_PR_SYS_INIT_MODULE => "init_module",
        s if s == pr_syscall_PR_SYS_FINIT_MODULE => "finit_module",
        s if s == pr_syscall_PR_SYS_DELETE_MODULE => "delete_module",
        s if s == pr_syscall_PR_SYS_KEXEC_LOAD => "kexec_load",
        s if s == pr_syscall_PR_SYS_KEXEC_FILE_LOAD => "kexec_file_load",
        s if s == pr_syscall_PR_SYS_REBOOT => "reboot",
        s if s == pr_syscall_PR_SYS_SETTIMEOFDAY => "settimeofday",
        s if s == pr_syscall_PR_SYS_CLOCK_SETTIME => "clock_settime",
        s if s == pr_syscall_PR_SYS_SWAPON => "swapon",
        s if s == pr_syscall_PR_SYS_SWAPOFF => "swapoff",
        s if s == pr_syscall_PR_SYS_MOUNT => "mount",
        s if s == pr_syscall_PR_SYS_UMOUNT => "umount2",
        s if s == pr_syscall_PR_SYS_MOVE_MOUNT => "move_mount",
        s if s == pr_syscall_PR_SYS_MOUNT_SETATTR => "mount_setattr",
        s if s == pr_syscall_PR_SYS_PIVOT_ROOT => "pivot_root",
        s if s == pr_syscall_PR_SYS_CHROOT => "chroot",
        s if s == pr_syscall_PR_SYS_SETNS => "setns",
        s if s == pr_syscall_PR_SYS_UNSHARE => "unshare",
        s if s == pr_syscall_PR_SYS_BPF => "bpf",
        s if s == pr_syscall_PR_SYS_ADJTIMEX => "adjtimex",
        s if s == pr_syscall_PR_SYS_CLOCK_ADJTIME => "clock_adjtime",
        s if s == pr_syscall_PR_SYS_CHMOD => "chmod",
        s if s == pr_syscall_PR_SYS_FCHMOD => "fchmod",
        s if s == pr_syscall_PR_SYS_FCHMODAT => "fchmodat",
        s if s == pr_syscall_PR_SYS_FCHMODAT2 => "fchmodat2",
        s if s == pr_syscall_PR_SYS_SETXATTR => "setxattr",
        s if s == pr_syscall_PR_SYS_LSETXATTR => "lsetxattr",
        s if s == pr_syscall_PR_SYS_FSETXATTR => "fsetxattr",
        s if s == pr_syscall_PR_SYS_SETXATTRAT => "setxattrat",
        s if s == pr_syscall_PR_SYS_TRUNCATE => "truncate",
        s if s == pr_syscall_PR_SYS_FTRUNCATE => "ftruncate",
        s if s == pr_syscall_PR_SYS_UTIMENSAT => "utimensat",
        s if s == pr_syscall_PR_SYS_FUTIMESAT => "futimesat",
        s if s == pr_syscall_PR_SYS_UTIMES => "utimes",
        s if s == pr_syscall_PR_SYS_UTIME => "utime",
        s if s == pr_syscall_PR_SYS_MKDIR => "mkdir",
        s if s == pr_syscall_PR_SYS_MKDIRAT => "mkdirat",
        _ => return None,
    })
}

/// `rel` against the absolute directory `base` (none when `rel` is absolute or `base` is
/// unknown), with `.` and `..` taken lexically and repeated slashes folded. What the kernel
/// resolved for the directory has no symlinks; components of `rel` may still be symlinks.
fn join_lexically(base: &[u8], rel: &[u8]) -> Vec<u8> {
    if !rel.starts_with(b"/") && !base.starts_with(b"/") {
        return rel.to_vec(); // relative to a directory the kernel could not name
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    let whole = if rel.starts_with(b"/") { &[][..] } else { base };
    for c in whole.split(|&b| b == b'/').chain(rel.split(|&b| b == b'/')) {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(base.len() + rel.len() + 1);
    for c in parts {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn decode_send(b: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let data = offset_of!(pr_send, data);
    let r: pr_send = read_wire(b, data, "send record")?;
    let payload = tail(b, data, r.payload_len as usize, "send payload")?;
    let explicit = sockaddr(&r.addr[..checked_len(r.addr_len, r.addr.len(), "addr")?]);
    let dest = explicit.clone().unwrap_or_else(|| peer_of(&r.sock));
    let proto = protocol(&r.sock);
    let syscall = syscall_name(r.syscall).unwrap_or("send");
    let mut out = Vec::new();
    let dns = (dest.port == Some(53))
        .then(|| dns_message(payload, proto == "tcp"))
        .flatten()
        .and_then(parse_dns_query);
    // A send that named its destination is always a send event; a send on a connected socket is
    // reported only as the DNS query it carried (or as a send if that did not parse).
    if explicit.is_some() || dns.is_none() {
        out.push(Event::Send(Send {
            dest: dest.clone(),
            protocol: proto.clone(),
            bytes: r.bytes,
            syscall: syscall.to_string(),
        }));
    }
    if let Some((txid, qname, qtype)) = dns {
        out.push(Event::Dns(Dns {
            qname,
            qtype,
            qtype_name: qtype_name(qtype),
            server: dest,
            protocol: proto,
            txid,
        }));
    }
    Ok(out)
}

/// A receive from port 53: a `dns_answer` event when it is a DNS response with a question;
/// anything else from port 53 (a fragment of a TCP stream, not DNS) is no event.
fn decode_answer(b: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let data = offset_of!(pr_send, data);
    let r: pr_send = read_wire(b, data, "dns answer record")?;
    let payload = tail(b, data, r.payload_len as usize, "dns answer payload")?;
    let from = sockaddr(&r.addr[..checked_len(r.addr_len, r.addr.len(), "addr")?]);
    let server = from.unwrap_or_else(|| peer_of(&r.sock));
    let proto = protocol(&r.sock);
    // The kernel copies at most PR_DNS_MAX bytes: a longer message is cut there, and the
    // answers past the cut are missing (`truncated`).
    let parsed = dns_message(payload, proto == "tcp").and_then(parse_dns_answer);
    Ok(parsed
        .map(|a| {
            Event::DnsAnswer(DnsAnswer {
                qtype_name: qtype_name(a.qtype),
                qname: a.qname,
                qtype: a.qtype,
                server,
                protocol: proto,
                txid: a.txid,
                rcode: a.rcode,
                addrs: a.addrs.iter().map(IpAddr::to_string).collect(),
                truncated: a.truncated,
            })
        })
        .into_iter()
        .collect())
}

/// The DNS message in one send's payload. Over TCP (RFC 1035 4.2.2) each message is preceded
/// by its 2-byte length; a client may send that prefix on its own (glibc writes it as its own
/// iovec), then the message in the next send. So a TCP payload is a prefixed message when its
/// prefix fits what follows, a prefix alone carries nothing, and anything else is a message body.
fn dns_message(p: &[u8], tcp: bool) -> Option<&[u8]> {
    if !tcp {
        return Some(p);
    }
    match p {
        [] | [_] | [_, _] => None,
        [hi, lo, rest @ ..] => {
            let n = usize::from(u16::from_be_bytes([*hi, *lo]));
            if n >= 12 && n <= rest.len() {
                Some(&rest[..n])
            } else {
                Some(p)
            }
        }
    }
}

/// Exit status from task->exit_code: `(status << 8) | signal`.
pub fn exit_status(code: u32) -> Exit {
    let sig = (code & 0x7f) as i32;
    if sig != 0 {
        Exit {
            exit_code: None,
            signal: Some(sig),
        }
    } else {
        Exit {
            exit_code: Some(((code >> 8) & 0xff) as i32),
            signal: None,
        }
    }
}

/// Kernel dev_t (major << 20 | minor) to the userspace st_dev encoding.
pub fn user_dev(kdev: u64) -> u64 {
    let major = (kdev >> 20) as u32;
    let minor = (kdev & 0xfffff) as u32;
    libc::makedev(major, minor)
}

fn trim_nul(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

const AF_UNIX: u16 = libc::AF_UNIX as u16;
const AF_PACKET: u16 = libc::AF_PACKET as u16;
const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;
const AF_VSOCK: u16 = libc::AF_VSOCK as u16;

/// (family, address, port) of an inet or inet6 sockaddr; None for other families and for one
/// shorter than the kernel accepts (16 bytes for inet, 24 for inet6: connect and sendto refuse
/// shorter ones with EINVAL). The one sockaddr parser: the decoder and the seccomp supervisor.
pub fn inet_sockaddr(a: &[u8]) -> Option<(Family, IpAddr, u16)> {
    let fam = u16::from_ne_bytes(a.get(0..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(a.get(2..4)?.try_into().ok()?);
    match fam {
        AF_INET if a.len() >= 16 => {
            let ip: [u8; 4] = a[4..8].try_into().ok()?;
            Some((Family::Inet, IpAddr::from(ip), port))
        }
        AF_INET6 if a.len() >= 24 => {
            let ip: [u8; 16] = a[8..24].try_into().ok()?;
            Some((Family::Inet6, IpAddr::from(ip), port))
        }
        _ => None,
    }
}

/// A sockaddr as the caller passed it (bounded copy), or None when there was none.
pub fn sockaddr(a: &[u8]) -> Option<SockAddr> {
    if a.len() < 2 {
        return None;
    }
    if let Some((family, ip, port)) = inet_sockaddr(a) {
        return Some(SockAddr {
            family,
            addr: Some(ip.to_string()),
            port: Some(port),
            path: None,
        });
    }
    let fam = u16::from_ne_bytes([a[0], a[1]]);
    Some(match fam {
        AF_UNIX => {
            let p = &a[2..];
            // Abstract names start with NUL and their length is significant; filesystem paths
            // end at the first NUL.
            let p = if p.first() == Some(&0) {
                p
            } else {
                trim_nul(p)
            };
            SockAddr {
                family: Family::Unix,
                addr: None,
                port: None,
                path: Some(Bytes(p.to_vec())),
            }
        }
        // struct sockaddr_vm: family, reserved, port (u32), context id (u32): a VM's channel
        // to its host (cid 2) or to another VM, which no IP hook or rule sees.
        AF_VSOCK if a.len() >= 12 => {
            let port = u32::from_ne_bytes([a[4], a[5], a[6], a[7]]);
            let cid = u32::from_ne_bytes([a[8], a[9], a[10], a[11]]);
            SockAddr {
                family: Family::Other,
                addr: Some(format!("{cid}:{port}")),
                port: None,
                path: None,
            }
        }
        _ => SockAddr {
            family: Family::Other,
            addr: None,
            port: None,
            path: None,
        },
    })
}

/// A listen on a network address, or an accept of a peer that is not loopback.
fn decode_inbound(b: &[u8]) -> Result<Event, DecodeError> {
    let r: pr_inbound = read_wire(b, size_of::<pr_inbound>(), "inbound record")?;
    let call = match r.syscall {
        s if s == pr_syscall_PR_SYS_LISTEN => "listen",
        s if s == pr_syscall_PR_SYS_ACCEPT => "accept",
        s if s == pr_syscall_PR_SYS_ACCEPT4 => "accept4",
        s => return Err(DecodeError::UnknownKind(s)),
    };
    // The local end reads as a peer would: the same address forms.
    let local = pr_sock {
        dport: r.lport,
        daddr: r.laddr,
        ..r.sock
    };
    Ok(Event::Inbound(Inbound {
        call: call.into(),
        local: peer_of(&local),
        peer: (r.syscall != pr_syscall_PR_SYS_LISTEN).then(|| peer_of(&r.sock)),
        protocol: protocol(&r.sock),
    }))
}

/// Whether the kernel's struct sock names an inet peer.
fn connected_inet(s: &pr_sock) -> bool {
    (s.family == AF_INET || s.family == AF_INET6) && s.dport != 0
}

/// The connected peer recorded in the kernel's struct sock.
fn peer_of(s: &pr_sock) -> SockAddr {
    match s.family {
        AF_INET => SockAddr {
            family: Family::Inet,
            addr: Some(Ipv4Addr::new(s.daddr[0], s.daddr[1], s.daddr[2], s.daddr[3]).to_string()),
            port: Some(s.dport),
            path: None,
        },
        AF_INET6 => SockAddr {
            family: Family::Inet6,
            addr: Some(Ipv6Addr::from(s.daddr).to_string()),
            port: Some(s.dport),
            path: None,
        },
        AF_UNIX => SockAddr {
            family: Family::Unix,
            addr: None,
            port: None,
            path: None,
        },
        _ => SockAddr {
            family: Family::Other,
            addr: None,
            port: None,
            path: None,
        },
    }
}

/// A unix socket's connected peer: its socket file's (`st_dev`, inode), or zeros.
fn unix_peer(s: &pr_sock) -> (u64, u64) {
    if s.family != AF_UNIX {
        return (0, 0);
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&s.daddr[i..i + 8]);
        u64::from_ne_bytes(b)
    };
    match word(8) {
        0 => (0, 0),
        ino => (user_dev(word(0)), ino),
    }
}

fn protocol(s: &pr_sock) -> String {
    let ty = s.type_ as i32;
    match s.family {
        AF_INET | AF_INET6 => match s.protocol as i32 {
            libc::IPPROTO_TCP => "tcp".into(),
            libc::IPPROTO_UDP => "udp".into(),
            libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6 => "icmp".into(),
            p if ty == libc::SOCK_RAW => format!("raw:{p}"),
            p => format!("ip:{p}"),
        },
        AF_PACKET => match ty {
            libc::SOCK_RAW => "packet-raw".into(),
            libc::SOCK_DGRAM => "packet-dgram".into(),
            t => format!("packet:{t}"),
        },
        AF_UNIX => match ty {
            libc::SOCK_STREAM => "unix-stream".into(),
            libc::SOCK_DGRAM => "unix-dgram".into(),
            libc::SOCK_SEQPACKET => "unix-seqpacket".into(),
            t => format!("unix:{t}"),
        },
        AF_VSOCK => match ty {
            libc::SOCK_STREAM => "vsock-stream".into(),
            libc::SOCK_DGRAM => "vsock-dgram".into(),
            libc::SOCK_SEQPACKET => "vsock-seqpacket".into(),
            t => format!("vsock:{t}"),
        },
        0 => "unknown".into(),
        f => format!("family:{f}"),
    }
}

/// Parse the first question of a DNS query: (transaction id, name, qtype). Name compression is
/// not used in questions; a pointer or a malformed label ends parsing (None).
pub fn parse_dns_query(p: &[u8]) -> Option<(u16, Bytes, u16)> {
    if p.len() < 12 {
        return None;
    }
    let txid = u16::from_be_bytes([p[0], p[1]]);
    let flags = u16::from_be_bytes([p[2], p[3]]);
    let qdcount = u16::from_be_bytes([p[4], p[5]]);
    if flags & 0x8000 != 0 || qdcount == 0 {
        return None; // a response, or no question
    }
    let mut i = 12;
    let mut name = Vec::new();
    loop {
        let len = *p.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = p.get(i..i + len)?;
        if !name.is_empty() {
            name.push(b'.');
        }
        // Presentation form: a '.' or '\' inside a label is escaped so the name stays unambiguous.
        for &c in label {
            if c == b'.' || c == b'\\' {
                name.push(b'\\');
            }
            name.push(c);
        }
        i += len;
        if name.len() > 1024 {
            return None;
        }
    }
    let qtype = u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]);
    Some((txid, Bytes(name), qtype))
}

/// A parsed DNS response: its first question and the A/AAAA addresses of its answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAnswer {
    pub txid: u16,
    pub rcode: u8,
    pub qname: Bytes,
    pub qtype: u16,
    pub addrs: Vec<IpAddr>,
    /// The bytes ended inside the answer section (the kernel copies at most 512), or a record
    /// there was malformed: the answers after it are missing.
    pub truncated: bool,
}

/// Skip a possibly compressed name (RFC 1035 4.1.4) at `i`; the index after it.
fn skip_name(p: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *p.get(i)?;
        match len {
            0 => return Some(i + 1),
            l if l & 0xc0 == 0xc0 => return Some(i + 2), // a pointer ends the name
            l if l > 63 => return None,
            l => i += 1 + usize::from(l),
        }
    }
}

/// Parse a DNS response: the question as [`parse_dns_query`] reads it, then the answer
/// section's A and AAAA records. Bytes that end before the answers do set `truncated`, with
/// the addresses before the cut. None for a query or no question.
pub fn parse_dns_answer(p: &[u8]) -> Option<ParsedAnswer> {
    if p.len() < 12 || p[2] & 0x80 == 0 {
        return None; // too short, or a query
    }
    let mut q = p.to_vec();
    q[2] &= 0x7f; // read the question with the query parser (one home for question parsing)
    let (txid, qname, qtype) = parse_dns_query(&q)?;
    let rcode = p[3] & 0x0f;
    let ancount = u16::from_be_bytes([p[6], p[7]]);
    let mut i = skip_name(p, 12)? + 4;
    let mut addrs = Vec::new();
    let mut truncated = false;
    for _ in 0..ancount {
        let Some(rr) = skip_name(p, i) else {
            truncated = true;
            break;
        };
        let (Some(h), true) = (p.get(rr..rr + 10), rr + 10 <= p.len()) else {
            truncated = true;
            break;
        };
        let rtype = u16::from_be_bytes([h[0], h[1]]);
        let class = u16::from_be_bytes([h[2], h[3]]);
        let rdlen = usize::from(u16::from_be_bytes([h[8], h[9]]));
        let Some(rdata) = p.get(rr + 10..rr + 10 + rdlen) else {
            truncated = true;
            break;
        };
        match (rtype, class, rdlen) {
            (1, 1, 4) => addrs.push(IpAddr::from(<[u8; 4]>::try_from(rdata).ok()?)),
            (28, 1, 16) => addrs.push(IpAddr::from(<[u8; 16]>::try_from(rdata).ok()?)),
            _ => {}
        }
        i = rr + 10 + rdlen;
    }
    Some(ParsedAnswer {
        txid,
        rcode,
        qname,
        qtype,
        addrs,
        truncated,
    })
}

pub fn qtype_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        64 => "SVCB".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        t => format!("TYPE{t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proctor_probes::wire::{pr_kind_PR_EV_DNS_ANSWER, pr_kind_PR_EV_OPEN};

    fn bytes_of<T: Wire>(v: &T) -> Vec<u8> {
        // SAFETY: Wire types are plain integers; reading their bytes is defined.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()).to_vec() }
    }

    fn hdr(kind: u32) -> pr_hdr {
        let mut h = pr_hdr {
            kind,
            pid: 42,
            tid: 43,
            ppid: 1,
            start_boottime: 777,
            exec_seq: 3,
            uid: 1000,
            gid: 1001,
            loginuid: 1002,
            cgroup_id: 0x1_0000_0007,
            ..Default::default()
        };
        h.comm[..4].copy_from_slice(b"bash");
        h
    }

    #[test]
    fn ptrace_family_requests_are_named() {
        let h = hdr(pr_kind_PR_EV_PTRACE);
        for (code, name) in [
            (16, "attach"),
            (0x4206, "seize"),
            (0, "traceme"),
            (i64::from(wire::PR_PTRACE_VM_READV), "vm_readv"),
            (i64::from(wire::PR_PTRACE_VM_WRITEV), "vm_writev"),
            (i64::from(wire::PR_PTRACE_PIDFD_GETFD), "pidfd_getfd"),
            (7, "other"),
        ] {
            let r = pr_ptrace {
                request: code,
                target_pid: 9,
                ..Default::default()
            };
            let Event::Ptrace(p) = ptrace_event(&h, &r) else {
                panic!("not a ptrace event")
            };
            assert_eq!((p.request.as_str(), p.request_code), (name, code));
        }
    }

    #[test]
    fn the_models_open_flags_are_the_kernels() {
        assert_eq!(proctor_model::O_ACCMODE, libc::O_ACCMODE as u32);
        assert_eq!(proctor_model::O_WRONLY, libc::O_WRONLY as u32);
        assert_eq!(proctor_model::O_RDWR, libc::O_RDWR as u32);
        assert_eq!(proctor_model::O_CREAT, libc::O_CREAT as u32);
        assert_eq!(proctor_model::O_TRUNC, libc::O_TRUNC as u32);
    }

    #[test]
    fn a_folded_read_is_decoded_without_names_and_completed_as_the_header_would_be() {
        let r = pr_open_seen {
            hdr: hdr(pr_kind_PR_EV_OPEN_SEEN),
            first_kseq: 17,
            dev: (8 << 20) | 1,
            ino: 99,
            flags: 0o2000000,
            ..Default::default()
        };
        let mut d = decode(&bytes_of(&r)).expect("decodes");
        let s = d.open_seen.take().expect("a folded read");
        assert_eq!((d.comm.0.len(), d.exec_id.len()), (0, 0));
        assert_eq!((s.first_kseq, s.ino, s.flags), (17, 99, 0o2000000));
        assert_eq!((s.dev, s.image), (user_dev((8 << 20) | 1), (777, 3)));
        s.complete(&mut d);
        let whole = header(&r.hdr, Vec::new());
        assert_eq!((&d.comm, &d.exec_id), (&whole.comm, &whole.exec_id));
        assert_eq!(d.exec_id, "42-777-3");
        // Names a header already has are kept.
        d.exec_id = "1-2-3".into();
        s.complete(&mut d);
        assert_eq!(d.exec_id, "1-2-3");
    }

    #[test]
    fn an_lsm_open_decision_names_its_layer_and_file_and_an_unknown_layer_is_refused() {
        let mut r = pr_decision {
            hdr: hdr(pr_kind_PR_EV_DECISION),
            what: pr_what_PR_WHAT_OPEN,
            verdict: pr_verdict_PR_VERDICT_BLOCKED,
            dev: (8 << 20) | 1,
            ino: 99,
            layer: pr_layer_PR_LAYER_LSM,
            ..Default::default()
        };
        let d = decode(&bytes_of(&r))
            .expect("decodes")
            .decision
            .expect("a decision");
        use proctor_model::{DecisionLayer as L, DecisionVerdict as V, DecisionWhat as W};
        assert_eq!((d.what, d.verdict, d.layer), (W::Open, V::Blocked, L::Lsm));
        assert_eq!((d.dev, d.ino), (Some(user_dev((8 << 20) | 1)), Some(99)));
        assert!(d.dest.is_none() && d.target_pid.is_none());
        r.layer = 0;
        assert!(
            decode(&bytes_of(&r)).is_err(),
            "a decision without a layer is malformed"
        );
    }

    #[test]
    fn tls_chunk_decodes_and_lengths_are_checked() {
        let mut r = pr_tls {
            hdr: hdr(pr_kind_PR_EV_TLS),
            conn: 0xabc,
            len: 5,
            lib: pr_tls_lib_PR_TLS_GNUTLS,
            direction: pr_tls_dir_PR_TLS_SEND,
            data_len: 5,
            last: 1,
            ..Default::default()
        };
        r.peer.family = AF_INET;
        r.peer.dport = 443;
        r.peer.daddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        r.data[..5].copy_from_slice(b"hello");
        let data = offset_of!(pr_tls, data);
        let b = bytes_of(&r);
        let d = decode(&b[..data + 5]).unwrap();
        let c = d.tls_chunk.expect("a tls chunk");
        assert_eq!(c.data, b"hello");
        assert_eq!(c.lib, "gnutls");
        assert_eq!(c.direction, TlsDirection::Send);
        assert_eq!(c.peer.unwrap().addr.as_deref(), Some("10.0.0.1"));
        assert!(c.last && !c.truncated);
        // A data_len beyond the bytes received is malformed, not read past.
        assert!(matches!(
            decode(&b[..data + 4]),
            Err(DecodeError::BadLength { .. })
        ));
        r.lib = 99;
        assert!(decode(&bytes_of(&r)[..data + 5]).is_err());
    }

    #[test]
    fn io_uring_setup_decodes_with_flag_names_and_rejects_short_records() {
        let r = pr_uring_setup {
            hdr: hdr(pr_kind_PR_EV_URING_SETUP),
            fd: 5,
            sq_entries: 8,
            cq_entries: 16,
            flags: 0x2 | 0x8 | (1 << 31),
        };
        let b = bytes_of(&r);
        match &decode(&b).unwrap().events[..] {
            [Event::IoUringSetup(u)] => {
                assert_eq!((u.fd, u.sq_entries, u.cq_entries), (5, 8, 16));
                assert_eq!(u.flag_names, ["sqpoll", "cqsize", "0x80000000"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(&b[..b.len() - 1]),
            Err(DecodeError::Short { .. })
        ));
    }

    #[test]
    fn a_privileged_call_decodes_its_parts_result_and_namespaces() {
        use proctor_probes::wire::*;
        let parts: [&[u8]; 4] = [b"m", b"/tmp/x", b"none", b""];
        let mut r = pr_path {
            hdr: hdr(pr_kind_PR_EV_PRIV),
            syscall: pr_syscall_PR_SYS_MOUNT,
            flags: 4096,
            ret: -1,
            ..Default::default()
        };
        let mut at = 0;
        for (i, p) in parts.iter().enumerate() {
            r.len[i] = p.len() as u16;
            r.data[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        let b = bytes_of(&r);
        let b = &b[..offset_of!(pr_path, data) + at];
        match &decode(b).unwrap().events[..] {
            [Event::Privileged(p)] => {
                assert_eq!(p.syscall, "mount");
                assert_eq!(p.path.as_ref().unwrap().as_bytes(), b"/tmp/x/m");
                assert_eq!(p.source.as_ref().unwrap().as_bytes(), b"none");
                assert_eq!((p.flags, p.error), (4096, Some(1)));
                // Namespaces 0 are not this process's.
                assert!(p.namespaced);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(&b[..b.len() - 1]),
            Err(DecodeError::BadLength { .. })
        ));
        assert!(matches!(
            decode(&b[..offset_of!(pr_path, data) - 1]),
            Err(DecodeError::Short { .. })
        ));
    }

    #[test]
    fn sni_decodes_v6_and_rejects_bad_lengths() {
        let mut r = pr_sni {
            hdr: hdr(pr_kind_PR_EV_TLS_SNI),
            family: AF_INET6,
            dport: 443,
            sni_len: 8,
            tracked: 1,
            ..Default::default()
        };
        r.daddr[15] = 1;
        r.sni[..8].copy_from_slice(b"llm.test");
        let n = offset_of!(pr_sni, sni);
        let b = bytes_of(&r);
        let d = decode(&b[..n + 8]).unwrap();
        assert!(d.attributed && !d.in_tls_call);
        match &d.events[..] {
            [Event::TlsSni(s)] => {
                assert_eq!(s.sni.0, b"llm.test");
                assert_eq!(s.dest.addr.as_deref(), Some("::1"));
                assert_eq!(s.dest.port, Some(443));
            }
            other => panic!("{other:?}"),
        }
        r.sni_len = 10_000;
        assert!(decode(&bytes_of(&r)).is_err());
    }

    #[test]
    fn exec_with_non_utf8_argv_round_trips() {
        let mut r = pr_exec {
            hdr: hdr(pr_kind_PR_EV_EXEC),
            dev: (8 << 20) | 1,
            ino: 99,
            ..Default::default()
        };
        let path = b"/usr/bin/ba\xffsh";
        let args = b"bash\0-c\0echo \x1b[31m\n\0";
        r.data[..path.len()].copy_from_slice(path);
        r.data[path.len()..path.len() + args.len()].copy_from_slice(args);
        r.filename_len = path.len() as u32;
        r.argv_len = args.len() as u32;
        let used = offset_of!(pr_exec, data) + path.len() + args.len();
        let d = decode(&bytes_of(&r)[..used]).expect("decodes");
        assert_eq!(d.exec_id, "42-777-3");
        assert_eq!(d.comm, Bytes::from("bash"));
        let who = Identity {
            uid: 1000,
            gid: 1001,
            loginuid: 1002,
            cgroup_id: 0x1_0000_0007,
            container: None,
        };
        assert_eq!(
            d.identity, who,
            "credentials and cgroup come from the header"
        );
        let Event::Exec(e) = &d.events[0] else {
            panic!("not an exec: {:?}", d.events)
        };
        assert_eq!(e.filename.0, path.to_vec());
        assert_eq!(
            e.argv,
            vec![
                Bytes::from("bash"),
                Bytes::from("-c"),
                Bytes::from("echo \x1b[31m\n")
            ]
        );
        assert_eq!(e.dev, libc::makedev(8, 1));
        assert!(!e.argv_truncated);
        // No times read: no stamp to key answers by.
        assert_eq!(e.at_exec, None);
        r.size = 1234;
        (r.mtime_sec, r.mtime_nsec, r.ctime_sec, r.ctime_nsec) =
            (1_700_000_000, 5, 1_700_000_001, 6);
        let d = decode(&bytes_of(&r)[..used]).expect("decodes");
        let Event::Exec(e) = &d.events[0] else {
            panic!("not an exec: {:?}", d.events)
        };
        let t = proctor_model::InodeTimes {
            size: 1234,
            mtime: (1_700_000_000, 5),
            ctime: (1_700_000_001, 6),
        };
        assert_eq!(e.at_exec, Some(t));
    }

    /// The kernel matches the environment's names on eight bytes; only the exact names of
    /// `RUN_ENV` reach the record, never another variable (secrets live there).
    #[test]
    fn exec_keeps_only_the_named_environment_variables() {
        let mut r = pr_exec {
            hdr: hdr(pr_kind_PR_EV_EXEC),
            ..Default::default()
        };
        let path = b"/usr/bin/bash";
        let args = b"bash\0-c\0true\0";
        let env: &[u8] = b"BASH_ENV=/tmp/i.sh\0BASH_ENVX=no\0ENVY=1\0ENV=/e\0PYTHONPATHS=k\0\
            LD_PRELOAD=/l.so\0NODE_OPTIONS=-r /x.js\0";
        let mut at = 0;
        for part in [&path[..], args, env] {
            r.data[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        r.filename_len = path.len() as u32;
        r.argv_len = args.len() as u32;
        r.env_len = env.len() as u32;
        r.env_flags = proctor_probes::wire::PR_ENV_CUT;
        let used = offset_of!(pr_exec, data) + at;
        let d = decode(&bytes_of(&r)[..used]).expect("decodes");
        let Event::Exec(e) = &d.events[0] else {
            panic!("not an exec: {:?}", d.events)
        };
        let kept: Vec<&[u8]> = e.env.iter().map(|v| v.as_bytes()).collect();
        assert_eq!(
            kept,
            [
                &b"BASH_ENV=/tmp/i.sh"[..],
                b"ENV=/e",
                b"LD_PRELOAD=/l.so",
                b"NODE_OPTIONS=-r /x.js"
            ]
        );
        assert_eq!(e.env_values("ENV").collect::<Vec<_>>(), [&b"/e"[..]]);
        assert!(e.env_truncated && !e.env_unread);
        assert_eq!(e.argv.len(), 3);
        // An environment length past the record is refused, not read.
        r.env_len = 10_000;
        assert!(decode(&bytes_of(&r)[..used]).is_err());
    }

    #[test]
    fn lengths_beyond_the_record_are_rejected_not_trusted() {
        let mut r = pr_open {
            hdr: hdr(pr_kind_PR_EV_OPEN),
            ..Default::default()
        };
        r.path_len = 100;
        let short = &bytes_of(&r)[..offset_of!(pr_open, data) + 10];
        assert!(matches!(decode(short), Err(DecodeError::BadLength { .. })));
        assert!(matches!(decode(&[0u8; 10]), Err(DecodeError::Short { .. })));
        let mut junk = bytes_of(&hdr(999));
        junk.resize(200, 0);
        assert_eq!(decode(&junk), Err(DecodeError::UnknownKind(999)));
    }

    #[test]
    fn refused_open_keeps_errno_and_flags() {
        let mut r = pr_open {
            hdr: hdr(pr_kind_PR_EV_OPEN),
            ret: -13,
            flags: (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u32,
            ..Default::default()
        };
        r.data[..11].copy_from_slice(b"/etc/shadow");
        r.path_len = 11;
        let d = decode(&bytes_of(&r)).unwrap();
        let Event::FileOpen(f) = &d.events[0] else {
            panic!()
        };
        assert_eq!(f.error, Some(13));
        assert_eq!(f.access, Access::Write);
        assert!(f.create && f.truncate);
        assert_eq!(f.path, Bytes::from("/etc/shadow"));
    }

    #[test]
    fn a_counted_repeat_carries_its_count_and_last_time() {
        let mut r = pr_open {
            hdr: hdr(pr_kind_PR_EV_OPEN),
            ret: 3,
            repeats: 41,
            last_ts_ns: 9_000,
            ..Default::default()
        };
        r.data[..4].copy_from_slice(b"/a/b");
        r.path_len = 4;
        let d = decode(&bytes_of(&r)).unwrap();
        let Event::FileOpen(f) = &d.events[0] else {
            panic!()
        };
        assert_eq!((f.repeats, f.last_ts_ns), (41, 9_000));
        // An ordinary open says nothing of repeats, whatever the padding held.
        r.repeats = 0;
        let d = decode(&bytes_of(&r)).unwrap();
        let Event::FileOpen(f) = &d.events[0] else {
            panic!()
        };
        assert_eq!((f.repeats, f.last_ts_ns), (0, 0));
    }

    fn dns_query(name: &[&[u8]], qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name {
            p.push(l.len() as u8);
            p.extend_from_slice(l);
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p
    }

    #[test]
    fn dns_query_parses_and_escapes_dots_in_labels() {
        let q = dns_query(&[b"a.b", b"example", b"com"], 16);
        let (id, name, t) = parse_dns_query(&q).unwrap();
        assert_eq!((id, t), (0x1234, 16));
        assert_eq!(name, Bytes::from("a\\.b.example.com"));
        assert_eq!(qtype_name(t), "TXT");
        assert!(parse_dns_query(&q[..15]).is_none());
        let mut resp = q.clone();
        resp[2] |= 0x80;
        assert!(parse_dns_query(&resp).is_none());
    }

    #[test]
    fn send_to_port_53_yields_send_and_dns() {
        let mut r = pr_send {
            hdr: hdr(pr_kind_PR_EV_SEND),
            syscall: wire::pr_syscall_PR_SYS_SENDTO,
            ..Default::default()
        };
        r.sock.family = AF_INET;
        r.sock.type_ = libc::SOCK_DGRAM as u16;
        r.sock.protocol = libc::IPPROTO_UDP as u16;
        let mut sa = vec![0u8; 16];
        sa[..2].copy_from_slice(&AF_INET.to_ne_bytes());
        sa[2..4].copy_from_slice(&53u16.to_be_bytes());
        sa[4..8].copy_from_slice(&[127, 0, 0, 2]);
        r.addr[..16].copy_from_slice(&sa);
        r.addr_len = 16;
        let q = dns_query(&[b"x", b"test"], 1);
        r.data[..q.len()].copy_from_slice(&q);
        r.payload_len = q.len() as u32;
        r.bytes = q.len() as u64;
        let d = decode(&bytes_of(&r)).unwrap();
        assert_eq!(d.events.len(), 2);
        let Event::Send(s) = &d.events[0] else {
            panic!()
        };
        assert_eq!(s.dest.addr.as_deref(), Some("127.0.0.2"));
        assert_eq!(s.protocol, "udp");
        let Event::Dns(q) = &d.events[1] else {
            panic!()
        };
        assert_eq!(q.qname, Bytes::from("x.test"));
        assert_eq!(q.qtype_name, "A");
    }

    /// A response to `dns_query(name, qtype)`: a CNAME (compressed, pointing at the question),
    /// then one A and one AAAA record whose names are pointers.
    fn dns_response(name: &[&[u8]], qtype: u16) -> Vec<u8> {
        let mut p = dns_query(name, qtype);
        p[2] |= 0x80; // QR
        p[3] = 0x80; // RA, NOERROR
        p[7] = 3; // ANCOUNT
        let q = [0xc0, 12];
        p.extend_from_slice(&q);
        p.extend_from_slice(&[0, 5, 0, 1, 0, 0, 0, 60, 0, 2]);
        p.extend_from_slice(&q); // CNAME rdata: a pointer to the name
        p.extend_from_slice(&q);
        p.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34]);
        p.extend_from_slice(&q);
        p.extend_from_slice(&[0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
        p.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p
    }

    #[test]
    fn dns_answer_gives_its_addresses_and_a_cut_one_those_before_the_cut() {
        let p = dns_response(&[b"api", b"example", b"com"], 1);
        let a = parse_dns_answer(&p).unwrap();
        assert_eq!((a.txid, a.qtype, a.rcode), (0x1234, 1, 0));
        assert_eq!(a.qname, Bytes::from("api.example.com"));
        let want: Vec<IpAddr> = vec![
            "93.184.216.34".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ];
        assert_eq!(a.addrs, want);
        assert!(!a.truncated);
        let cut = parse_dns_answer(&p[..p.len() - 5]).unwrap();
        assert_eq!(cut.addrs, want[..1]);
        assert!(cut.truncated);
        // A query is no answer; neither is a message with no question.
        assert!(parse_dns_answer(&dns_query(&[b"x"], 1)).is_none());
        assert!(parse_dns_answer(&p[..11]).is_none());
    }

    #[test]
    fn a_receive_from_port_53_is_a_dns_answer_from_the_connected_resolver() {
        let mut r = pr_send {
            hdr: hdr(pr_kind_PR_EV_DNS_ANSWER),
            ..Default::default()
        };
        r.sock.family = AF_INET;
        r.sock.type_ = libc::SOCK_DGRAM as u16;
        r.sock.protocol = libc::IPPROTO_UDP as u16;
        r.sock.dport = 53;
        r.sock.daddr[..4].copy_from_slice(&[127, 0, 0, 53]);
        let p = dns_response(&[b"api", b"example", b"com"], 1);
        r.data[..p.len()].copy_from_slice(&p);
        r.payload_len = p.len() as u32;
        r.bytes = p.len() as u64;
        let d = decode(&bytes_of(&r)).unwrap();
        let [Event::DnsAnswer(a)] = d.events.as_slice() else {
            panic!("{:?}", d.events)
        };
        assert_eq!(a.server.addr.as_deref(), Some("127.0.0.53"));
        assert_eq!(a.server.port, Some(53));
        assert_eq!(a.addrs, ["93.184.216.34", "2001:db8::1"]);
        assert_eq!(a.qtype_name, "A");
        // Not DNS: no event, no error.
        r.data[2] = 0;
        assert!(decode(&bytes_of(&r)).unwrap().events.is_empty());
    }

    #[test]
    fn dns_over_tcp_drops_its_length_prefix_and_a_lone_prefix_is_no_query() {
        let q = dns_query(&[b"x", b"test"], 28);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        let parsed = |p: &[u8], tcp| dns_message(p, tcp).and_then(parse_dns_query);
        assert_eq!(parsed(&framed, true).unwrap().1, Bytes::from("x.test"));
        assert_eq!(
            parsed(&q, true).unwrap().2,
            28,
            "a body sent after its prefix"
        );
        assert!(parsed(&framed[..2], true).is_none());
        assert_eq!(parsed(&q, false).unwrap().1, Bytes::from("x.test"));
    }

    #[test]
    fn exit_codes_and_signals() {
        assert_eq!(exit_status(3 << 8).exit_code, Some(3));
        assert_eq!(exit_status(9).signal, Some(9));
        assert_eq!(exit_status(0).exit_code, Some(0));
    }

    #[test]
    fn sockaddrs_parse_and_short_ones_do_not() {
        let mut v4 = vec![0u8; 16];
        v4[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&443u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[10, 1, 2, 3]);
        assert_eq!(
            inet_sockaddr(&v4),
            Some((Family::Inet, IpAddr::from([10, 1, 2, 3]), 443))
        );
        assert_eq!(inet_sockaddr(&v4[..8]), None);
        let mut v6 = vec![0u8; 28];
        v6[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        v6[2..4].copy_from_slice(&80u16.to_be_bytes());
        v6[23] = 1;
        assert_eq!(
            inet_sockaddr(&v6),
            Some((Family::Inet6, "::1".parse().unwrap(), 80))
        );
        let mut unix = vec![0u8; 20];
        unix[0..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        assert_eq!(inet_sockaddr(&unix), None);
        assert_eq!(inet_sockaddr(&[]), None);
        // The decoder's form of the same bytes.
        assert_eq!(sockaddr(&v4).unwrap().addr.as_deref(), Some("10.1.2.3"));
        assert_eq!(sockaddr(&v4[..8]).unwrap().family, Family::Other);
    }

    #[test]
    fn unix_abstract_and_path_sockaddrs() {
        let mut a = AF_UNIX.to_ne_bytes().to_vec();
        a.extend_from_slice(b"/run/x.sock\0\0\0");
        assert_eq!(sockaddr(&a).unwrap().path, Some(Bytes::from("/run/x.sock")));
        let mut a = AF_UNIX.to_ne_bytes().to_vec();
        a.extend_from_slice(b"\0abs");
        assert_eq!(sockaddr(&a).unwrap().path, Some(Bytes(b"\0abs".to_vec())));
    }

    #[test]
    fn a_vsock_sockaddr_names_its_context_and_port() {
        let mut a = AF_VSOCK.to_ne_bytes().to_vec();
        a.extend_from_slice(&[0, 0]);
        a.extend_from_slice(&5005u32.to_ne_bytes());
        a.extend_from_slice(&2u32.to_ne_bytes());
        a.extend_from_slice(&[0; 4]);
        let d = sockaddr(&a).unwrap();
        assert_eq!(
            (d.family, d.addr.as_deref()),
            (Family::Other, Some("2:5005"))
        );
        // Too short to hold both: no address.
        assert_eq!(sockaddr(&a[..10]).unwrap().addr, None);
    }
}
