//! The sensor: loads proctor's eBPF programs, keeps the tracked set, and turns ring-buffer
//! records into domain [`Record`]s.
//!
//! - [`Sensor::load`] checks the environment (root, BTF, tracefs), loads and attaches the programs.
//! - [`Sensor::track`] adds a thread to the tracked set; descendants join in the kernel at fork.
//!   [`Sensor::track_handle`] lets a forked child add itself before it execs (see `run`).
//! - [`Sensor::poll`] decodes records into [`Record`]s; [`Sensor::sched_summary`] and
//!   [`Sensor::take_lost`] read the in-kernel aggregates and loss counters.
//! - [`features`] probes what the kernel offers (`proctor doctor`).
//! - [`lsm`]: the BPF LSM object, attached on the same maps where the kernel allows it.
//! - [`listeners`]: who holds the loopback TCP listener a connect reached.
//! - [`procfs`]: the one /proc reader (stat, comm, status, threads, HOME and cwd).
//! - [`stamp`]: answers about executables' content, kept by what identifies the content.
//! - [`tls`]: TLS libraries to hook (`--capture-tls`) and executables whose TLS cannot be.

pub mod cgroup;
pub mod decode;
pub mod enforce;
pub mod features;
pub mod listeners;
pub mod lsm;
pub mod offloop;
pub mod procfs;
mod seen;
pub mod session;
pub mod stamp;
pub mod tls;
mod track;

pub use track::TrackHandle;

use decode::{decode, Decoded, TlsChunk};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject, RingBuffer, RingBufferBuilder};
use proctor_model::{Bytes, Event, Lost, Record, Sched, SCHED_BUCKETS};
use proctor_probes::skel::{ProctorSkel, ProctorSkelBuilder};
use proctor_probes::wire::{
    pr_conn_agg, pr_kind_PR_KIND_MAX, pr_open_agg, pr_open_kept, pr_sched, pr_task,
};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::rc::Rc;
use std::time::Duration;

/// Records consumed from the ring buffer per call before they are handed on.
pub const BATCH: usize = 4096;

/// How long a record that did not wake the consumer can wait in the ring: the consumer reads at
/// least this often while records flow, and the kernel wakes it for the first record after this
/// long without a wake-up (PR_WAKE_GAP_MS, emit_ring in bpf/lib/common.h).
pub const WAKE_GAP: Duration = Duration::from_millis(proctor_probes::wire::PR_WAKE_GAP_MS as u64);

/// While urgent records (exec, connect, DNS ...) flow, the consumer reads this often on its own
/// timer and tells the kernel so, which then wakes nobody for them: a forced wake-up is paid on
/// the agent's time, in its exec or connect (PR_URGENT_WAIT_MS, emit_ring in bpf/lib/common.h).
pub const URGENT_WAIT: Duration =
    Duration::from_millis(proctor_probes::wire::PR_URGENT_WAIT_MS as u64);

/// How long after the last urgent record the consumer keeps polling every [`URGENT_WAIT`]: two
/// of those polls, so a burst (an exec storm's records come every 2 ms or less) pays for its
/// first wake-up only, and a lone exec costs one or two empty polls. Measured on the agent
/// workload (bench/FINDINGS.md, round 23), where urgent records come ~10 ms apart: 16 ms of
/// polling cost proctor 0.44 points of a core more than this, and saved the programs 0.08.
pub const URGENT_LINGER: Duration =
    Duration::from_millis(2 * proctor_probes::wire::PR_URGENT_WAIT_MS as u64);

/// Longest name [`Sensor::watch_names`] takes (PR_WATCH_NAME in bpf/file.h, less its NUL).
pub const WATCH_NAME_MAX: usize = 31;

/// Default ring buffer size: room for ~45k opens of 40-byte paths before anything is lost (the
/// priority ring beside it, a quarter of this, holds the execs). The kernel maps a ring's data
/// pages twice in a row into the consumer (so a record that wraps reads as one piece) and maps
/// them all at once: each ring counts twice its size in the monitor's RSS from the start (with
/// the priority ring, 20 MiB here), though its memory exists once. 16 MiB made an idle
/// monitor's RSS 68 MB.
pub const DEFAULT_RINGBUF_BYTES: u32 = 8 << 20;

/// The priority ring (exec, fork, exit, connect, ptrace, decisions, sensitive opens) is a
/// quarter of the main one, and never smaller than this: a flood of ordinary records in the
/// main ring cannot push these out.
pub const MIN_PRIORITY_RINGBUF_BYTES: u32 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    #[error(
        "proctor needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN) to load its eBPF programs"
    )]
    NotRoot,
    #[error("this kernel exposes no BTF ({0} is missing): proctor's CO-RE programs cannot be relocated; use a kernel built with CONFIG_DEBUG_INFO_BTF=y")]
    NoBtf(&'static str),
    #[error("tracefs is not mounted and mounting it at {path} failed")]
    Tracefs {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("session slot {0} is out of range (1..256)")]
    SessionSlot(u32),
    #[error("ring buffer size {0} is not a power of two of at least 4096 bytes")]
    RingbufSize(u32),
    #[error("TLS capture bound {0} is not between 1 and {TLS_MAX_BYTES_LIMIT} bytes")]
    TlsMaxBytes(u32),
    #[error("PROCTOR_FILE_READS={0:?} is neither `auto` nor `probe`")]
    FileReads(String),
    #[error("opening the eBPF object failed")]
    Open(#[source] libbpf_rs::Error),
    #[error("the kernel refused proctor's eBPF programs (verifier or permissions; RUST_LOG=debug shows the verifier log)")]
    Load(#[source] libbpf_rs::Error),
    #[error("BPF LSM is not active on this kernel (bpf is not in /sys/kernel/security/lsm; boot with lsm=...,bpf)")]
    LsmInactive,
    #[error(
        "the kernel refused proctor's BPF LSM programs (RUST_LOG=debug shows the verifier log)"
    )]
    LoadLsm(#[source] libbpf_rs::Error),
    #[error("attaching eBPF program {prog} failed")]
    Attach {
        prog: String,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error(
        "eBPF program {prog} is loaded but nothing attaches it (name it where it is attached)"
    )]
    NotAttached { prog: String },
    #[error("the kernel refused BPF_ENABLE_STATS (per-program run time and run count): {0}")]
    EnableStats(std::io::Error),
    #[error("eBPF map {map}")]
    Map {
        map: &'static str,
        #[source]
        source: libbpf_rs::Error,
    },
}

/// Largest `--tls-max-bytes`: what the kernel side can emit for one call.
pub const TLS_MAX_BYTES_LIMIT: u32 =
    proctor_probes::wire::PR_TLS_CHUNK * proctor_probes::wire::PR_TLS_MAX_CHUNKS;
/// Default plaintext bytes kept per TLS call.
pub const TLS_DEFAULT_MAX_BYTES: u32 = proctor_probes::wire::PR_TLS_DEFAULT_MAX;

pub struct SensorConfig {
    pub agent_id: String,
    pub ringbuf_bytes: u32,
    /// TLS plaintext capture: None off; Some(n) keeps up to n bytes per call (1..=
    /// [`TLS_MAX_BYTES_LIMIT`]). Libraries are hooked with [`Sensor::hook_library`].
    pub tls_max_bytes: Option<u32>,
    /// How the openat program reads the file the kernel opened.
    pub file_reads: FileReads,
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            agent_id: "agent".into(),
            ringbuf_bytes: DEFAULT_RINGBUF_BYTES,
            tls_max_bytes: None,
            file_reads: FileReads::Auto,
        }
    }
}

/// How the openat program reads the opened file's fields (file, dentry, inode, device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileReads {
    /// Plain loads through BTF-typed pointers where the kernel has the `bpf_rdonly_cast` kfunc
    /// (6.2 and later; one load per field, no helper call), probe reads elsewhere or if the
    /// kernel refuses the first.
    #[default]
    Auto,
    /// Probe reads (`bpf_probe_read_kernel`, one per object) whatever the kernel offers: the
    /// path of older kernels, kept loadable here so that tests compare the two.
    ProbeReads,
}

impl FileReads {
    /// From `PROCTOR_FILE_READS`: `probe` forces the probe reads (for a kernel whose plain-load
    /// program misbehaves, and for tests that compare the two paths); unset or `auto`: Auto.
    pub fn from_env() -> Result<FileReads, SensorError> {
        match std::env::var_os("PROCTOR_FILE_READS") {
            None => Ok(FileReads::Auto),
            Some(v) if v == "auto" => Ok(FileReads::Auto),
            Some(v) if v == "probe" => Ok(FileReads::ProbeReads),
            Some(v) => Err(SensorError::FileReads(v.to_string_lossy().into_owned())),
        }
    }
}

/// Whether this kernel has the `bpf_rdonly_cast` kfunc (by its vmlinux BTF): what the plain-load
/// variant of the openat program needs.
pub fn has_rdonly_cast() -> bool {
    libbpf_rs::btf::Btf::from_vmlinux().is_ok_and(|btf| {
        btf.type_by_name::<libbpf_rs::btf::types::Func>("bpf_rdonly_cast")
            .is_some()
    })
}

/// The main object opened, sized and loaded; `btf`: the openat program with plain loads
/// (`pr_exit_openat_btf`) instead of probe reads (`pr_exit_openat`), never both, and the current
/// task cast with the same kfunc.
fn load_object(cfg: &SensorConfig, btf: bool) -> Result<ProctorSkel<'static>, SensorError> {
    // The skeleton borrows its object storage for its whole life; the sensor lives until
    // the process ends, so leaking this small allocation is the simple, sound choice.
    let storage: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
    let mut open = ProctorSkelBuilder::default()
        .open(storage)
        .map_err(SensorError::Open)?;
    open.maps
        .events
        .set_max_entries(cfg.ringbuf_bytes)
        .map_err(|source| SensorError::Map {
            map: "events",
            source,
        })?;
    open.maps
        .events_hi
        .set_max_entries((cfg.ringbuf_bytes / 4).max(MIN_PRIORITY_RINGBUF_BYTES))
        .map_err(|source| SensorError::Map {
            map: "events_hi",
            source,
        })?;
    if let Some(ro) = open.maps.rodata_data.as_deref_mut() {
        if let Some(n) = cfg.tls_max_bytes {
            ro.tls_max_bytes = n;
        }
        ro.sni_task_ctx = u32::from(cgroup_skb_has_task_helpers());
        ro.pr_self_tgid = std::process::id();
        // The current task through bpf_rdonly_cast too (bpf/lib/common.h current_task_ptr):
        // it halves verification where the kernel has the kfunc.
        ro.pr_btf_casts = u32::from(btf);
    }
    open.progs.pr_exit_openat.set_autoload(!btf);
    open.progs.pr_exit_openat_btf.set_autoload(btf);
    open.load().map_err(SensorError::Load)
}

/// The sensor's attachments. The kernel waits for a grace period for each tracepoint or uprobe
/// it detaches, one detach after another (50-80 ms each on our machines, whether closed from
/// one thread or sixteen): `proctor run -- true` took 2.0 s to exit, 5.2 s with the ~60 TLS
/// probes of `--capture-tls`. Dropped, each link is detached from this process at once (a
/// perf-event link is disabled: no program runs from it after this) and its last references
/// are handed to a detached process that releases them and exits, so proctor exits without
/// waiting for the kernel's grace periods (0.8-1.5 s with or without capture). Should that
/// process not start, the links are closed here from several threads, whose waits overlap a
/// little.
struct Links(Vec<libbpf_rs::Link>);

impl Links {
    fn push(&mut self, link: libbpf_rs::Link) {
        self.0.push(link);
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        const THREADS: usize = 16;
        let links = std::mem::take(&mut self.0);
        if links.len() <= 1 {
            return;
        }
        if let Some(go) = release_detached(&links) {
            drop(links);
            // Our references are gone: the detached process holds the last, and may go.
            drop(go);
            return;
        }
        let per = links.len().div_ceil(THREADS);
        let mut links = links.into_iter().peekable();
        std::thread::scope(|s| {
            while links.peek().is_some() {
                let chunk: Vec<_> = links.by_ref().take(per).collect();
                // A thread that cannot start closes its share here.
                if let Err(e) = std::thread::Builder::new().spawn_scoped(s, move || drop(chunk)) {
                    tracing::debug!("closing links on this thread: {e}");
                }
            }
        });
    }
}

/// Fork a grandchild that holds `links`' descriptors and releases them once the returned pipe
/// end is closed (after the caller has closed its own, which then drop references only: a BPF
/// perf link keeps its perf event). The grandchild closes every other descriptor first, so no
/// pipe of the caller's stays open in it. Only async-signal-safe calls after fork. None when
/// it could not start: the caller's closes then release the links, as before.
fn release_detached(links: &[libbpf_rs::Link]) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: both are ours and open.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut keep: Vec<libc::c_uint> = links
        .iter()
        .map(|l| l.as_fd().as_raw_fd() as libc::c_uint)
        .chain([fds[0] as libc::c_uint])
        .collect();
    keep.sort_unstable();
    keep.dedup();
    // SAFETY: the child and grandchild only make raw syscalls (close_range, read, close, fork,
    // _exit) on memory prepared before the fork.
    unsafe {
        let child = libc::fork();
        if child < 0 {
            return None;
        }
        if child == 0 {
            if libc::fork() != 0 {
                libc::_exit(0);
            }
            libc::prctl(libc::PR_SET_NAME, c"proctor-release".as_ptr(), 0, 0, 0);
            let mut from: libc::c_uint = 0;
            for &fd in &keep {
                if fd > from {
                    libc::syscall(libc::SYS_close_range, from, fd - 1, 0);
                }
                from = fd + 1;
            }
            libc::syscall(libc::SYS_close_range, from, libc::c_uint::MAX, 0);
            let mut b = 0u8;
            while libc::read(fds[0], (&mut b as *mut u8).cast(), 1) < 0 {}
            for &fd in &keep {
                libc::close(fd as i32);
            }
            libc::_exit(0);
        }
        let mut status = 0;
        libc::waitpid(child, &mut status, 0);
    }
    drop(rd);
    Some(wr)
}

/// The loaded, attached sensor. Dropping it detaches every program and frees every map.
pub struct Sensor {
    // Field order is drop order: the ring buffer and links go before the skeleton they use.
    ring: RingBuffer<'static>,
    _links: Links,
    prog_fds: Vec<RawFd>,
    /// The BPF LSM object, on `skel`'s maps; None where the kernel does not allow it.
    lsm: Option<lsm::Lsm>,
    /// The tracked set's slot counts (track.rs), mapped: an insertion counts first.
    track_counts: track::TrackCounts,
    skel: ProctorSkel<'static>,
    inbox: Rc<RefCell<Inbox>>,
    agent_id: String,
    /// Wall clock minus boot clock, ns: converts kernel boot timestamps to UTC.
    wall_offset_ns: i128,
    last_sched: pr_sched,
    last_sched_boot_ns: u64,
    lost_seen: [u64; pr_kind_PR_KIND_MAX as usize],
    malformed_reported: u64,
    /// `offloop` calls without an answer already reported.
    fs_unanswered_reported: u64,
    exited: HashSet<String>,
    decisions: Vec<enforce::DecisionRecord>,
    /// TLS library files hooked (userspace st_dev, inode).
    tls_hooked: HashSet<(u64, u64)>,
    /// TLS calls whose chunks are still arriving, by thread.
    tls_partial: HashMap<u32, (Decoded, TlsChunk)>,
    /// Whom records the kernel could not attribute to a tracked task are filed under.
    root: Option<Subject>,
    /// `tls_sni` records (pid, ts_ns) whose ClientHello a tracked thread sent from outside any
    /// hooked TLS library call.
    hellos_unhooked: HashSet<(u32, u64)>,
    /// Container of each cgroup id seen, for the records' identity.
    containers: cgroup::Containers,
    /// CLOCK_MONOTONIC when [`Sensor::next_wait`] last saw urgent records consumed (0: never).
    last_urgent_ns: u64,
    /// Kernel record numbers received, per session slot (see [`session`]).
    kseq: proctor_model::kseq::Tracker,
    /// Numbers of records that arrived but were folded into another or dropped as duplicates.
    kseq_merged: Vec<proctor_model::Kseq>,
    /// Reads of files the session recorded whole, folded per process (seen.rs).
    folds: seen::Folds,
    /// Who holds the listening sockets the tree's loopback TCP connects reached.
    listeners: listeners::TcpListeners,
    /// The openat program loaded is `pr_exit_openat_btf` (plain loads).
    btf_reads: bool,
    /// The inbox's previous buffer, emptied, handed back to it at the next collect: the ring's
    /// callbacks push into a buffer already grown to the load (a fresh one per poll was grown
    /// again by doubling, a copy of every record each time).
    spare: Vec<Decoded>,
}

/// Records' room the inbox keeps between polls (a few hundred bytes each).
const SPARE_MAX: usize = 4096;

#[derive(Default)]
struct Inbox {
    decoded: Vec<Decoded>,
    malformed: u64,
    /// Records of a kind the kernel wakes the consumer for (urgent_kind in bpf/lib/common.h),
    /// consumed since [`Sensor::next_wait`] last looked.
    urgent: u64,
}

/// Kinds the kernel treats as urgent (urgent_kind in bpf/lib/common.h): keep the two in step.
fn urgent_kind(kind: u32) -> bool {
    use proctor_probes::wire::*;
    [
        pr_kind_PR_EV_EXEC,
        pr_kind_PR_EV_CONNECT,
        pr_kind_PR_EV_SEND,
        pr_kind_PR_EV_DNS_ANSWER,
        pr_kind_PR_EV_PTRACE,
        pr_kind_PR_EV_DECISION,
        pr_kind_PR_EV_TLS_SNI,
        pr_kind_PR_EV_URING_SETUP,
    ]
    .contains(&kind)
}

/// Where a process's identity comes from for aggregate records (`sched`, `lost`).
#[derive(Debug, Clone)]
pub struct Subject {
    pub pid: u32,
    pub ppid: u32,
    pub comm: Bytes,
    pub exec_id: String,
}

impl Sensor {
    pub fn load(cfg: SensorConfig) -> Result<Sensor, SensorError> {
        preflight()?;
        if cfg.ringbuf_bytes < 4096 || !cfg.ringbuf_bytes.is_power_of_two() {
            return Err(SensorError::RingbufSize(cfg.ringbuf_bytes));
        }
        if let Some(n) = cfg.tls_max_bytes {
            if n == 0 || n > TLS_MAX_BYTES_LIMIT {
                return Err(SensorError::TlsMaxBytes(n));
            }
        }
        route_libbpf_logs();
        let btf = cfg.file_reads == FileReads::Auto && has_rdonly_cast();
        let (mut skel, btf_reads) = match load_object(&cfg, btf) {
            Ok(skel) => (skel, btf),
            // A kernel that lists the kfunc but refuses it to this program: the probe reads.
            Err(e) if btf => {
                tracing::warn!(
                    "the openat program with plain loads did not load ({e}); using probe reads"
                );
                (load_object(&cfg, false)?, false)
            }
            Err(e) => return Err(e),
        };
        let track_counts = track::TrackCounts::map(skel.maps.track_count.as_fd())?;
        let (links, prog_fds) = attach_all(&mut skel, cfg.tls_max_bytes.is_some())?;

        let inbox = Rc::new(RefCell::new(Inbox::default()));
        let mut rb = RingBufferBuilder::new();
        // SAFETY of lifetimes: the skeleton is 'static (leaked storage above) and owned by the
        // Sensor together with the ring buffer.
        let events: &'static dyn MapCore = unsafe { &*(&skel.maps.events as *const _) };
        // SAFETY: as above.
        let events_hi: &'static dyn MapCore = unsafe { &*(&skel.maps.events_hi as *const _) };
        // The priority ring first: an exec is consumed before the opens of its process.
        for (name, map) in [("events_hi", events_hi), ("events", events)] {
            let sink = inbox.clone();
            rb.add(map, move |data: &[u8]| {
                let mut inbox = sink.borrow_mut();
                if data.len() >= 4
                    && urgent_kind(u32::from_ne_bytes([data[0], data[1], data[2], data[3]]))
                {
                    inbox.urgent += 1;
                }
                match decode(data) {
                    Ok(d) => inbox.decoded.push(d),
                    Err(e) => {
                        inbox.malformed += 1;
                        tracing::debug!("malformed record: {e}");
                    }
                }
                0
            })
            .map_err(|source| SensorError::Map { map: name, source })?;
        }
        let ring = rb.build().map_err(|source| SensorError::Map {
            map: "events",
            source,
        })?;
        let now_boot = clock_ns(libc::CLOCK_BOOTTIME);
        Ok(Sensor {
            ring,
            _links: Links(links),
            prog_fds,
            lsm: None,
            track_counts,
            skel,
            inbox,
            agent_id: cfg.agent_id,
            wall_offset_ns: clock_ns(libc::CLOCK_REALTIME) as i128 - now_boot as i128,
            last_sched: pr_sched::default(),
            last_sched_boot_ns: now_boot,
            lost_seen: [0; pr_kind_PR_KIND_MAX as usize],
            malformed_reported: 0,
            fs_unanswered_reported: 0,
            exited: HashSet::new(),
            decisions: Vec::new(),
            tls_hooked: HashSet::new(),
            tls_partial: HashMap::new(),
            root: None,
            hellos_unhooked: HashSet::new(),
            containers: cgroup::Containers::default(),
            kseq: proctor_model::kseq::Tracker::new(session::horizon(cfg.ringbuf_bytes)),
            kseq_merged: Vec::new(),
            last_urgent_ns: 0,
            folds: seen::Folds::default(),
            listeners: listeners::TcpListeners::new(),
            btf_reads,
            spare: Vec::new(),
        })
    }

    /// Whether the openat program reads the opened file with plain loads (see [`FileReads`]).
    pub fn btf_file_reads(&self) -> bool {
        self.btf_reads
    }

    /// The agent's root process: records the kernel saw outside the tracked tree (an SNI sent
    /// from another context) are filed under it.
    pub fn set_root(&mut self, root: Subject) {
        self.root = Some(root);
    }

    /// Add one thread id to the tracked set.
    pub fn track(&self, tid: u32) -> Result<(), SensorError> {
        let v = session::run_task();
        self.track_handle().count(tid);
        self.skel
            .maps
            .tracked
            .update(&tid.to_ne_bytes(), as_bytes(&v), MapFlags::ANY)
            .map_err(|source| SensorError::Map {
                map: "tracked",
                source,
            })
    }

    /// Send opens of this file (`stat().st_dev` and inode) to the priority ring: a flood of
    /// ordinary records cannot push them out.
    pub fn watch_open(&self, dev: u64, ino: u64) -> Result<(), SensorError> {
        let key = proctor_probes::wire::pr_file_key {
            dev: enforce::kernel_dev(dev),
            ino,
        };
        self.skel
            .maps
            .watch_open
            .update(as_bytes(&key), &1u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| SensorError::Map {
                map: "watch_open",
                source,
            })
    }

    /// Make opens of files named `name`, or in a directory named `name`, urgent: the kernel wakes
    /// the consumer for them at once instead of letting them wait up to [`WAKE_GAP`] (the
    /// policy's sensitive and persistence patterns name such files before they exist). Names
    /// longer than [`WATCH_NAME_MAX`] bytes, empty ones and ones with a `/` are skipped.
    pub fn watch_names(&mut self, names: &[Vec<u8>]) -> Result<(), SensorError> {
        let mut lens = 0u32;
        let mut first = [0u64; 4];
        for name in names {
            if name.is_empty() || name.len() > WATCH_NAME_MAX || name.contains(&b'/') {
                continue;
            }
            let mut key = [0u8; WATCH_NAME_MAX + 1];
            key[..name.len()].copy_from_slice(name);
            self.skel
                .maps
                .watch_name
                .update(&key, &1u32.to_ne_bytes(), MapFlags::ANY)
                .map_err(|source| SensorError::Map {
                    map: "watch_name",
                    source,
                })?;
            lens |= 1 << name.len();
            first[usize::from(name[0] >> 6)] |= 1 << (name[0] & 63);
        }
        if let Some(bss) = self.skel.maps.bss_data.as_deref_mut() {
            // Filters after the names: a program that sees a bit finds its name in the map.
            bss.watch_name_lens |= lens;
            for (have, add) in bss.watch_name_first.iter_mut().zip(first) {
                *have |= add;
            }
        }
        Ok(())
    }

    /// A TCP connect to a loopback address: the process holding the listening socket it
    /// reached (`peer_pid`), and whether that process is outside the tracked set
    /// (`peer_outside`), as the kernel's peer credentials say for unix sockets.
    fn tcp_listener(&mut self, pid: u32, c: &mut proctor_model::Connect) {
        let Some(ip) = c.dest.addr.as_deref().and_then(|a| a.parse().ok()) else {
            return;
        };
        let (Some(port), Some(_)) = (c.dest.port, listeners::loopback(ip)) else {
            return;
        };
        let pids = [Some(pid), self.root.as_ref().map(|r| r.pid)];
        let pids: Vec<u32> = pids.into_iter().flatten().collect();
        let Some(holder) = self.listeners.holder(c.netns, &pids, ip, port) else {
            return;
        };
        c.peer_pid = holder;
        c.peer_outside = !self.is_tracked(holder);
    }

    /// Whether a thread is in the tracked set (of any session).
    fn is_tracked(&self, tid: u32) -> bool {
        self.skel
            .maps
            .tracked
            .lookup(&tid.to_ne_bytes(), MapFlags::ANY)
            .is_ok_and(|v| v.is_some())
    }

    /// Raw fd of the tracked-set map.
    fn tracked_map_fd(&self) -> RawFd {
        self.skel.maps.tracked.as_fd().as_raw_fd()
    }

    /// Wait up to `timeout` for records and return them in arrival order, at most [`BATCH`]
    /// at a time: libbpf's own poll consumes until the ring is empty, so a producer as fast as
    /// the consumer would make one batch (and our memory) grow without bound.
    pub fn poll(&mut self, timeout: Duration) -> Vec<Record> {
        if self.ring.consume_raw_n(BATCH) == 0 {
            let mut ev = libc::epoll_event { events: 0, u64: 0 };
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: epoll_fd is the ring buffer's live epoll instance; ev is valid for one event.
            let ready = unsafe { libc::epoll_wait(self.ring.epoll_fd(), &mut ev, 1, ms) };
            if ready > 0 {
                self.ring.consume_raw_n(BATCH);
            }
        }
        self.collect()
    }

    /// How long the consumer's next [`Sensor::poll`] may wait, told to the kernel: call it after
    /// handling a poll's records (`got`: it had some), just before the next poll; `prev` is the
    /// last wait, `idle_max` the longest.
    ///
    /// - Within [`URGENT_LINGER`] of consuming an urgent record: [`URGENT_WAIT`], and the kernel
    ///   is told the consumer reads by then, so urgent records until then wake nobody.
    /// - Records came: [`WAKE_GAP`], and the kernel's gap rule counts from now, as from a
    ///   wake-up (it spares the wake-up a trickle of ordinary records would otherwise cost every
    ///   gap on top of this timer).
    /// - None came: the last wait doubled, up to `idle_max`; the kernel wakes the consumer for
    ///   what comes.
    pub fn next_wait(&mut self, got: bool, prev: Duration, idle_max: Duration) -> Duration {
        let now = clock_ns(libc::CLOCK_MONOTONIC);
        if std::mem::take(&mut self.inbox.borrow_mut().urgent) > 0 {
            self.last_urgent_ns = now;
        }
        let lingering =
            self.last_urgent_ns != 0 && now - self.last_urgent_ns < URGENT_LINGER.as_nanos() as u64;
        let (wait, read_by) = if lingering {
            (URGENT_WAIT, now + URGENT_WAIT.as_nanos() as u64)
        } else if got {
            (WAKE_GAP, 0)
        } else {
            return (prev * 2).clamp(WAKE_GAP, idle_max.max(WAKE_GAP));
        };
        if let Some(bss) = self.skel.maps.bss_data.as_deref_mut() {
            // bpf_ktime_get_ns is CLOCK_MONOTONIC. Aligned 8-byte stores: the programs see the
            // old value or the new one of each. The promise can only be early (the wait starts
            // after it is written), so an urgent record is read within URGENT_WAIT of it.
            // SAFETY: the fields live in the mmapped .bss of the loaded object, valid while the
            // skeleton is; volatile so the stores are not treated as dead.
            unsafe {
                std::ptr::write_volatile(&mut bss.pr_last_wake_ns, now);
                std::ptr::write_volatile(&mut bss.pr_read_by_ns, read_by);
            }
        }
        wait
    }

    /// Consume up to [`BATCH`] records that are in the ring buffer now, without waiting; an
    /// empty result means the ring is drained.
    pub fn drain(&mut self) -> Vec<Record> {
        self.ring.consume_raw_n(BATCH);
        self.collect()
    }

    /// The repeat counts the kernel still holds (`open_agg` and `conn_agg`, docs/kernel.md
    /// "Repeated opens" and "Repeated connects"), as `file_open` and `connect` records with
    /// `repeats`, each entry taken out of the map. For the end of a
    /// run, after the rings are drained: these records take no kernel number (`kseq` 0), and a
    /// thread still running may count a repeat into an entry being taken (lost with it).
    pub fn take_repeats(&mut self) -> Vec<Record> {
        let maps = &self.skel.maps;
        // An entry's recorded copy made the report of its count, as the kernel's reports are,
        // but unnumbered.
        macro_rules! report {
            ($a:expr) => {{
                let mut rec = $a.rec;
                rec.hdr.ts_boot_ns = $a.first_ts;
                rec.hdr.kseq = 0;
                rec.repeats = $a.repeats;
                rec.last_ts_ns = $a.last_ts;
                rec
            }};
        }
        let opens = self.take_counts(&maps.open_agg, |a: &pr_open_agg| {
            let rec = report!(a);
            let size = (a.rec_size as usize).min(size_of::<pr_open_kept>());
            (a.repeats > 0).then(|| as_bytes(&rec)[..size].to_vec())
        });
        let connects = self.take_counts(&maps.conn_agg, |a: &pr_conn_agg| {
            (a.repeats > 0).then(|| as_bytes(&report!(a)).to_vec())
        });
        let found = opens + connects;
        let mut out = if found == 0 {
            Vec::new()
        } else {
            self.collect()
        };
        // And the reads folded so far (seen.rs), whatever their age.
        for f in self.folds.take_slot(None) {
            out.push(self.fold_record(f));
        }
        out
    }

    /// Take every entry out of a map of repeat counts (`open_agg`, `conn_agg`), decoding into
    /// the inbox the record `rec` makes of each (None: the entry counted nothing); how many
    /// were decoded.
    fn take_counts<V: Copy + Default>(
        &self,
        map: &impl MapCore,
        rec: impl Fn(&V) -> Option<Vec<u8>>,
    ) -> usize {
        let keys: Vec<Vec<u8>> = map.keys().collect();
        let mut found = 0;
        for k in keys {
            let Ok(Some(v)) = map.lookup_and_delete(&k) else {
                continue;
            };
            let Some(bytes) = from_bytes::<V>(&v).as_ref().and_then(&rec) else {
                continue;
            };
            let mut inbox = self.inbox.borrow_mut();
            match decode::decode(&bytes) {
                Ok(d) => {
                    inbox.decoded.push(d);
                    found += 1;
                }
                Err(_) => inbox.malformed += 1,
            }
        }
        found
    }

    /// The reads folded so far for the session in `slot` (seen.rs), as `file_open_seen`
    /// records: for the end of a daemon session, before its slot is given back.
    pub fn take_open_seen(&mut self, slot: u32) -> Vec<Record> {
        let folds = self.folds.take_slot(Some(slot));
        folds.into_iter().map(|f| self.fold_record(f)).collect()
    }

    fn fold_record(&self, f: seen::Fold) -> Record {
        let event = Event::FileOpenSeen(proctor_model::FileOpenSeen {
            slot: f.head.kseq.kslot,
            count: f.count,
            last_ts_ns: self.wall_ns(f.last_boot_ns),
            files: f.files,
        });
        let identity = f.head.attributed.then_some(f.head.identity);
        // Written by proctor from many kernel records, none of which had a number.
        self.record_of(f.head, event, identity, None)
    }

    /// The record of `event` that the kernel record `d` (its header) reported.
    fn record_of(
        &self,
        d: Decoded,
        event: Event,
        identity: Option<proctor_model::Identity>,
        kseq: Option<proctor_model::Kseq>,
    ) -> Record {
        Record {
            event,
            ts_ns: self.wall_ns(d.ts_boot_ns),
            agent_id: self.agent_id.clone(),
            pid: d.pid,
            ppid: d.ppid,
            comm: d.comm,
            exec_id: d.exec_id,
            identity,
            kseq,
        }
    }

    fn collect(&mut self) -> Vec<Record> {
        let mut decoded = std::mem::replace(
            &mut self.inbox.borrow_mut().decoded,
            std::mem::take(&mut self.spare),
        );
        // Two rings: put what was consumed from both back in the order it happened (stable, so
        // the chunks of one TLS call keep theirs). Most polls read one ring: already in order.
        if !decoded.is_sorted_by_key(|d| d.ts_boot_ns) {
            decoded.sort_by_key(|d| d.ts_boot_ns);
        }
        let mut out = Vec::with_capacity(decoded.len());
        for mut d in decoded.drain(..) {
            self.kseq.saw(d.kseq.kslot, d.kseq.kseq);
            // A read of a file the session recorded (always from a tracked task: attributed).
            if let Some(seen) = d.open_seen.take() {
                let containers = &mut self.containers;
                let head = |h: &mut Decoded| {
                    h.identity.container = containers.of(h.identity.cgroup_id, h.pid);
                };
                if let Some(f) = self.folds.add(d, seen, head) {
                    out.push(self.fold_record(f));
                }
                continue;
            }
            if d.attributed {
                d.identity.container = self.containers.of(d.identity.cgroup_id, d.pid);
            }
            if let Some(chunk) = d.tls_chunk.take() {
                // A later chunk of a call joins its first one's record (see join_tls).
                if chunk.offset != 0
                    && self
                        .tls_partial
                        .get(&d.tid)
                        .is_some_and(|(_, p)| p.conn == chunk.conn)
                {
                    self.kseq_merged.push(d.kseq);
                }
                for (d, call) in self.join_tls(d, chunk) {
                    out.push(self.tls_record(d, call));
                }
                continue;
            }
            let hello = d.events.iter().any(|e| matches!(e, Event::TlsSni(_)));
            if hello && d.attributed && !d.in_tls_call && self.hellos_unhooked.len() < 4096 {
                self.hellos_unhooked
                    .insert((d.pid, self.wall_ns(d.ts_boot_ns)));
            }
            if !d.attributed {
                if let Some(root) = &self.root {
                    d.pid = root.pid;
                    d.ppid = root.ppid;
                    d.comm = root.comm.clone();
                    d.exec_id = root.exec_id.clone();
                }
            }
            if d.seen_key {
                self.folds.remember(&d);
            }
            if d.pid_ns != 0 {
                self.ptrace_target_to_host(&mut d);
            }
            let ts_ns = self.wall_ns(d.ts_boot_ns);
            if let Some(decision) = d.decision.clone() {
                self.decisions.push(enforce::DecisionRecord {
                    decision,
                    common: proctor_model::Common {
                        ts_ns,
                        agent_id: self.agent_id.clone(),
                        pid: d.pid,
                        ppid: d.ppid,
                        comm: d.comm.clone(),
                        exec_id: d.exec_id.clone(),
                    },
                    kseq: session::numbered(d.kseq),
                });
            }
            for mut event in d.events {
                match &mut event {
                    Event::FileOpen(f) if f.repeats > 0 => {
                        f.last_ts_ns = self.wall_ns(f.last_ts_ns);
                    }
                    Event::Connect(c) => {
                        if c.repeats > 0 {
                            c.last_ts_ns = self.wall_ns(c.last_ts_ns);
                        }
                        // A counted repeat is of a connect recorded, and named, before.
                        if c.protocol == "tcp" && c.peer_pid == 0 && c.repeats == 0 {
                            self.tcp_listener(d.pid, c);
                        }
                        if c.peer_outside {
                            c.peer_exe = std::fs::read_link(format!("/proc/{}/exe", c.peer_pid))
                                .ok()
                                .map(|p| Bytes(p.into_os_string().into_vec()));
                        }
                    }
                    Event::Privileged(p)
                        if p.error.is_none() && proctor_model::sets_times(&p.syscall) =>
                    {
                        p.mtime_after_ns = mtime_after(d.pid, p);
                    }
                    Event::Ptrace(p) if p.signal.is_some() => {
                        p.target_comm = std::fs::read(format!("/proc/{}/comm", p.target_pid))
                            .ok()
                            .map(|mut c| {
                                c.pop_if(|b| *b == b'\n');
                                Bytes(c)
                            });
                    }
                    _ => {}
                }
                if let Event::Exit(_) = &event {
                    // Two threads racing to the end of a process can both report its exit.
                    if !self.exited.insert(d.exec_id.clone()) {
                        self.kseq_merged.push(d.kseq);
                        continue;
                    }
                    if self.exited.len() > 200_000 {
                        self.exited.clear();
                    }
                }
                out.push(Record {
                    event,
                    ts_ns,
                    agent_id: self.agent_id.clone(),
                    pid: d.pid,
                    ppid: d.ppid,
                    comm: d.comm.clone(),
                    exec_id: d.exec_id.clone(),
                    // An unattributed header names whoever the kernel ran, not the agent.
                    identity: d.attributed.then_some(d.identity),
                    kseq: session::numbered(d.kseq),
                });
            }
        }
        // A buffer a storm grew past a few thousand records is let go, not kept for good.
        if decoded.capacity() <= SPARE_MAX {
            self.spare = decoded;
        }
        // Folded reads are written about a second after the first (seen::FOLD_AGE_NS).
        for f in self.folds.take_aged(clock_ns(libc::CLOCK_BOOTTIME)) {
            out.push(self.fold_record(f));
        }
        out
    }

    /// A tracer inside a PID namespace named its target by the namespace's number: find the
    /// host pid (and so whether the target is tracked). Left as recorded when the target is gone.
    fn ptrace_target_to_host(&self, d: &mut Decoded) {
        for e in &mut d.events {
            let Event::Ptrace(p) = e else { continue };
            if let Some(host) = host_pid_in_ns(d.pid_ns, p.target_pid) {
                p.target_pid = host;
                p.target_tracked = self
                    .skel
                    .maps
                    .tracked
                    .lookup(&host.to_ne_bytes(), MapFlags::ANY)
                    .ok()
                    .flatten()
                    .is_some();
            }
        }
    }

    /// Whether the ClientHello of this `tls_sni` record (its pid and ts_ns) was sent by a tracked
    /// thread from outside every hooked TLS library call: TLS that proctor cannot read. Each
    /// record answers once.
    pub fn hello_outside_hooks(&mut self, pid: u32, ts_ns: u64) -> bool {
        self.hellos_unhooked.remove(&(pid, ts_ns))
    }

    fn join_tls(&mut self, d: Decoded, chunk: TlsChunk) -> Vec<(Decoded, TlsChunk)> {
        join_tls(&mut self.tls_partial, d, chunk)
    }

    /// Calls still waiting for chunks that will not come (the ring lost them), as truncated
    /// records. For the end of a run.
    pub fn flush_tls(&mut self) -> Vec<Record> {
        let partial: Vec<_> = self.tls_partial.drain().map(|(_, v)| v).collect();
        partial
            .into_iter()
            .map(|(d, mut c)| {
                c.truncated = true;
                self.tls_record(d, c)
            })
            .collect()
    }

    fn tls_record(&self, d: Decoded, c: TlsChunk) -> Record {
        let (identity, kseq) = (Some(d.identity), session::numbered(d.kseq));
        let event = Event::Tls(proctor_model::Tls {
            direction: c.direction,
            lib: c.lib.to_string(),
            conn: c.conn,
            peer: c.peer,
            len: c.len,
            truncated: c.truncated || (c.data.len() as u64) < c.len,
            data: Bytes(c.data),
            redacted: 0,
        });
        self.record_of(d, event, identity, kseq)
    }

    pub fn wall_ns(&self, boot_ns: u64) -> u64 {
        (boot_ns as i128 + self.wall_offset_ns).max(0) as u64
    }

    pub fn now_wall_ns(&self) -> u64 {
        self.wall_ns(clock_ns(libc::CLOCK_BOOTTIME))
    }

    /// The scheduler summary since the previous call, or None when tracked threads did not
    /// switch in that period.
    pub fn sched_summary(&mut self, subject: &Subject) -> Option<Record> {
        let now = clock_ns(libc::CLOCK_BOOTTIME);
        let per_cpu = self
            .skel
            .maps
            .sched_stats
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .ok()??;
        let mut total = pr_sched::default();
        for cpu in per_cpu {
            let s: pr_sched = from_bytes(&cpu)?;
            total.switches += s.switches;
            total.voluntary += s.voluntary;
            total.involuntary += s.involuntary;
            total.run_ns += s.run_ns;
            total.off_ns += s.off_ns;
            for i in 0..SCHED_BUCKETS {
                total.run_hist[i] += s.run_hist[i];
                total.off_hist[i] += s.off_hist[i];
            }
        }
        let prev = std::mem::replace(&mut self.last_sched, total);
        let interval_ns = now.saturating_sub(self.last_sched_boot_ns);
        self.last_sched_boot_ns = now;
        let switches = total.switches.saturating_sub(prev.switches);
        if switches == 0 {
            return None;
        }
        let diff = |a: &[u64; SCHED_BUCKETS], b: &[u64; SCHED_BUCKETS]| {
            a.iter().zip(b).map(|(x, y)| x.saturating_sub(*y)).collect()
        };
        Some(self.aggregate_record(
            subject,
            now,
            Event::Sched(Sched {
                interval_ns,
                switches,
                voluntary: total.voluntary.saturating_sub(prev.voluntary),
                involuntary: total.involuntary.saturating_sub(prev.involuntary),
                run_ns: total.run_ns.saturating_sub(prev.run_ns),
                off_ns: total.off_ns.saturating_sub(prev.off_ns),
                run_hist: diff(&total.run_hist, &prev.run_hist),
                off_hist: diff(&total.off_hist, &prev.off_hist),
            }),
        ))
    }

    /// `lost` records for everything lost since the previous call: records the kernel could not
    /// put on a full ring buffer (by kind), children that could not join a full tracked set,
    /// and records userspace could not decode.
    pub fn take_lost(&mut self, subject: &Subject) -> Vec<Record> {
        let mut out = Vec::new();
        let now = clock_ns(libc::CLOCK_BOOTTIME);
        for &(kind, name) in &LOST_KINDS {
            let Ok(Some(per_cpu)) = self
                .skel
                .maps
                .lost
                .lookup_percpu(&kind.to_ne_bytes(), MapFlags::ANY)
            else {
                continue;
            };
            let total: u64 = per_cpu
                .iter()
                .filter_map(|b| {
                    b.get(..8)
                        .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
                })
                .sum();
            let seen = &mut self.lost_seen[kind as usize];
            if total > *seen {
                let count = total - *seen;
                *seen = total;
                out.push(self.aggregate_record(
                    subject,
                    now,
                    Event::Lost(Lost {
                        what: name.to_string(),
                        count,
                    }),
                ));
            }
        }
        // Reads of the agent's files that got no answer in time (see `offloop`): what they
        // would have told (a build-id, a TLS library, a file's times) is missing.
        let (late, refused) = offloop::stalls();
        if late + refused > self.fs_unanswered_reported {
            let count = late + refused - self.fs_unanswered_reported;
            self.fs_unanswered_reported = late + refused;
            out.push(self.aggregate_record(
                subject,
                now,
                Event::Lost(Lost {
                    what: "fs_unanswered".into(),
                    count,
                }),
            ));
        }
        let malformed = self.inbox.borrow().malformed;
        if malformed > self.malformed_reported {
            let count = malformed - self.malformed_reported;
            self.malformed_reported = malformed;
            out.push(self.aggregate_record(
                subject,
                now,
                Event::Lost(Lost {
                    what: "malformed".into(),
                    count,
                }),
            ));
        }
        out
    }

    fn aggregate_record(&self, s: &Subject, boot_ns: u64, event: Event) -> Record {
        Record {
            event,
            ts_ns: self.wall_ns(boot_ns),
            agent_id: self.agent_id.clone(),
            pid: s.pid,
            ppid: s.ppid,
            comm: s.comm.clone(),
            exec_id: s.exec_id.clone(),
            identity: None,
            kseq: None,
        }
    }

    /// Replace the agent rules matched in the exec tracepoint (`proctor daemon`): executables by
    /// (`stat().st_dev`, inode) and cgroup v2 ids (the cgroup and all below it), each to its rule
    /// number (nonzero). Entries not in the new lists are removed.
    pub fn set_agent_rules(
        &mut self,
        exes: &HashMap<(u64, u64), u32>,
        cgroups: &HashMap<u64, u32>,
    ) -> Result<(), SensorError> {
        let map_err = |map: &'static str| move |source| SensorError::Map { map, source };
        let keys = |m: &libbpf_rs::MapMut| m.keys().collect::<Vec<Vec<u8>>>();
        let want_exe: HashMap<Vec<u8>, u32> = exes
            .iter()
            .map(|(&(dev, ino), &rule)| {
                let k = proctor_probes::wire::pr_file_key {
                    dev: enforce::kernel_dev(dev),
                    ino,
                };
                (as_bytes(&k).to_vec(), rule)
            })
            .collect();
        let want_cg: HashMap<Vec<u8>, u32> = cgroups
            .iter()
            .map(|(id, &rule)| (id.to_ne_bytes().to_vec(), rule))
            .collect();
        for (map, want, name) in [
            (&self.skel.maps.agent_exec, &want_exe, "agent_exec"),
            (&self.skel.maps.agent_cgroup, &want_cg, "agent_cgroup"),
        ] {
            for k in keys(map) {
                if !want.contains_key(&k) {
                    map.delete(&k).map_err(map_err(name))?;
                }
            }
            for (k, rule) in want {
                map.update(k, &rule.to_ne_bytes(), MapFlags::ANY)
                    .map_err(map_err(name))?;
            }
        }
        if let Some(bss) = self.skel.maps.bss_data.as_deref_mut() {
            bss.agent_cgroup_rules = u32::from(!cgroups.is_empty());
        }
        Ok(())
    }

    /// Number of attached programs.
    pub fn program_count(&self) -> usize {
        self.prog_fds.len()
    }

    /// Runs the kernel skipped because another BPF program was already running on that CPU
    /// (`recursion_misses` of every proctor program): records that never happened, so they are
    /// reported as loss too.
    pub fn recursion_misses(&self) -> u64 {
        self.prog_fds
            .iter()
            .filter_map(|&fd| prog_info(fd))
            .map(|i| i.recursion_misses)
            .sum()
    }

    /// Bytes waiting in each ring buffer, and its size: (name, used, size). Two atomic loads
    /// per ring.
    pub fn ring_fill(&self) -> Vec<(&'static str, u64, u64)> {
        use libbpf_rs::AsRawLibbpf;
        let rb = self.ring.as_libbpf_object().as_ptr();
        // Indexed in the order the rings were added in `load`.
        ["events_hi", "events"]
            .into_iter()
            .enumerate()
            .filter_map(|(i, name)| {
                // SAFETY: rb is this sensor's live ring_buffer; ring_buffer__ring returns NULL
                // for an index it does not have, else a ring that lives as long as rb.
                let r = unsafe { libbpf_rs::libbpf_sys::ring_buffer__ring(rb, i as u32) };
                if r.is_null() {
                    return None;
                }
                // SAFETY: r is a live ring of rb (checked non-null above).
                let (used, size) = unsafe {
                    (
                        libbpf_rs::libbpf_sys::ring__avail_data_size(r),
                        libbpf_rs::libbpf_sys::ring__size(r),
                    )
                };
                Some((name, used, size))
            })
            .collect()
    }

    /// Run time and run count of every loaded program of the sensor, readable from any thread
    /// for as long as the returned value lives. The kernel counts run time only while someone
    /// holds a BPF_ENABLE_STATS descriptor; the returned value holds one, so the counting (a
    /// few ns per program run) stops when it is dropped, and the kernel.bpf_stats_enabled
    /// sysctl is never touched. An error names what the kernel refused.
    pub fn program_stats(&self) -> Result<ProgramStats, SensorError> {
        use libbpf_rs::skel::Skel;
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: a plain bpf(2) command; it returns a new descriptor we own, or -errno.
        let fd = unsafe {
            libbpf_rs::libbpf_sys::bpf_enable_stats(libbpf_rs::libbpf_sys::BPF_STATS_RUN_TIME)
        };
        if fd < 0 {
            return Err(SensorError::EnableStats(std::io::Error::from_raw_os_error(
                -fd,
            )));
        }
        // SAFETY: fd is a new descriptor owned by nobody else.
        let enabled = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut progs = Vec::new();
        for p in self.skel.object().progs() {
            let fd = p.as_fd();
            if fd.as_raw_fd() < 0 {
                continue; // not loaded (autoload off)
            }
            let owned = fd.try_clone_to_owned().map_err(SensorError::EnableStats)?;
            // Named by its hook: the openat program's plain-load variant is the same program
            // to whoever reads the metrics (one of the two is loaded).
            let name = p.name().to_string_lossy();
            let name = name.strip_suffix("_btf").unwrap_or(&name).to_string();
            progs.push((name, owned));
        }
        Ok(ProgramStats {
            progs,
            _enabled: enabled,
        })
    }
}

/// What [`Sensor::program_stats`] returns: the sensor's programs (their own descriptors, so
/// `Send`) and the descriptor that keeps the kernel's run-time counting on.
pub struct ProgramStats {
    progs: Vec<(String, std::os::fd::OwnedFd)>,
    _enabled: std::os::fd::OwnedFd,
}

impl ProgramStats {
    /// (program name, run time in ns, run count) of each program, as the kernel has them now.
    pub fn read(&self) -> Vec<(String, u64, u64)> {
        self.progs
            .iter()
            .filter_map(|(name, fd)| {
                let i = prog_info(fd.as_raw_fd())?;
                Some((name.clone(), i.run_time_ns, i.run_cnt))
            })
            .collect()
    }
}

/// Put the chunks of one TLS call back together (they come from one thread, in order).
/// Returns the calls completed by this chunk: normally the chunk's own call when it is the last;
/// also a previous call of the thread whose last chunk was lost (marked truncated).
fn join_tls(
    partial: &mut HashMap<u32, (Decoded, TlsChunk)>,
    d: Decoded,
    chunk: TlsChunk,
) -> Vec<(Decoded, TlsChunk)> {
    let mut done = Vec::new();
    let cur = match partial.remove(&d.tid) {
        Some((pd, mut prev)) if chunk.offset != 0 && prev.conn == chunk.conn => {
            if chunk.offset as usize == prev.data.len() {
                prev.data.extend_from_slice(&chunk.data);
            } else {
                prev.truncated = true; // a chunk in between was lost
            }
            prev.last = chunk.last;
            prev.truncated |= chunk.truncated;
            (pd, prev)
        }
        other => {
            if let Some((pd, mut prev)) = other {
                prev.truncated = true;
                done.push((pd, prev));
            }
            let mut c = chunk;
            c.truncated |= c.offset != 0; // its first part was lost
            (d, c)
        }
    };
    if cur.1.last {
        done.push(cur);
    } else {
        partial.insert(cur.0.tid, cur);
    }
    done
}

/// The modification time of the file a utime-family call (`p`, by `pid`) acted on, as it is
/// now: through the caller's root while it lives (a namespaced caller's path means nothing in
/// ours), else, for a caller in the host's namespaces, the path itself. None for a relative
/// path (not resolved in the record) or a file that cannot be read.
fn mtime_after(pid: u32, p: &proctor_model::Privileged) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let path = p.path.as_ref()?.as_bytes();
    if !path.starts_with(b"/") {
        return None;
    }
    let mut rooted = format!("/proc/{pid}/root").into_bytes();
    rooted.extend_from_slice(path);
    let path = path.to_vec();
    let namespaced = p.namespaced;
    // The agent's path, on a file system it may serve: off the loop (see `offloop`).
    let meta = offloop::within(move || {
        std::fs::metadata(std::ffi::OsStr::from_bytes(&rooted))
            .ok()
            .or_else(|| {
                (!namespaced)
                    .then(|| std::fs::metadata(std::ffi::OsStr::from_bytes(&path)).ok())
                    .flatten()
            })
    })??;
    Some(meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec())
}

/// The host pid of the process numbered `local` in the PID namespace whose inode is `ns` (a
/// process directly in that namespace), from /proc.
fn host_pid_in_ns(ns: u32, local: u32) -> Option<u32> {
    let want = format!("pid:[{ns}]");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()?;
            if link.as_os_str() != want.as_str() {
                return None;
            }
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let nspid = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
            let inner: u32 = nspid.split_whitespace().last()?.parse().ok()?;
            (inner == local).then_some(pid)
        })
}

fn prog_info(fd: RawFd) -> Option<libbpf_rs::libbpf_sys::bpf_prog_info> {
    // SAFETY: bpf_prog_info is plain data; the kernel fills at most `len` bytes.
    let mut info: libbpf_rs::libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libbpf_rs::libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: fd is a live program fd owned by the skeleton; info and len are valid.
    let rc = unsafe { libbpf_rs::libbpf_sys::bpf_prog_get_info_by_fd(fd, &mut info, &mut len) };
    (rc == 0).then_some(info)
}

/// The name of each lost-counter slot (`lost` records' `what`), indexed by `enum pr_kind` - 1.
/// Its length is the kernel's PR_KIND_MAX - 1 and each entry states its kind, both checked at
/// compile time: a kind added to intf.h does not build until it is named here.
const LOST_KINDS: [(u32, &str); pr_kind_PR_KIND_MAX as usize - 1] = {
    use proctor_probes::wire::*;
    [
        (pr_kind_PR_EV_EXEC, "exec"),
        (pr_kind_PR_EV_FORK, "fork"),
        (pr_kind_PR_EV_EXIT, "exit"),
        (pr_kind_PR_EV_OPEN, "file_open"),
        (pr_kind_PR_EV_CONNECT, "connect"),
        (pr_kind_PR_EV_SEND, "send"),
        (pr_kind_PR_EV_PTRACE, "ptrace"),
        (pr_kind_PR_EV_DECISION, "decision"),
        (pr_kind_PR_LOST_TRACK_FULL, "track_full"),
        (pr_kind_PR_EV_TLS, "tls"),
        (pr_kind_PR_EV_TLS_SNI, "tls_sni"),
        (pr_kind_PR_EV_URING_SETUP, "io_uring_setup"),
        (pr_kind_PR_EV_DNS_ANSWER, "dns_answer"),
        (pr_kind_PR_LOST_SESSION_FULL, "session_full"),
        (pr_kind_PR_EV_OPEN_SEEN, "file_open_seen"),
        (pr_kind_PR_EV_PATH, "path_change"),
        (pr_kind_PR_EV_PRIV, "privileged"),
        (pr_kind_PR_EV_INBOUND, "inbound"),
    ]
};

const _: () = {
    let mut i = 0;
    while i < LOST_KINDS.len() {
        assert!(
            LOST_KINDS[i].0 as usize == i + 1,
            "LOST_KINDS is indexed by pr_kind - 1"
        );
        i += 1;
    }
};

/// Programs on system calls a kernel may be built without (CONFIG_MODULES, CONFIG_KEXEC,
/// CONFIG_KEXEC_FILE): their tracepoints are absent there, and so is the call.
const OPTIONAL_SYSCALLS: &[&str] = &[
    "pr_exit_init_module",
    "pr_exit_finit_module",
    "pr_exit_delete_module",
    "pr_exit_kexec_load",
    "pr_exit_kexec_file_load",
];

/// Programs attached to syscall tracepoints besides the one their section names: one program
/// for calls that differ only in where their arguments are, verified once at start (each
/// program inlining the open path cost ~45 ms of verification, bench/FINDINGS.md round 19).
const ALSO_ATTACHED: &[(&str, &str)] = &[
    ("pr_exit_open_other", "sys_exit_creat"),
    ("pr_exit_open_other", "sys_exit_openat2"),
    ("pr_exit_open_other", "sys_exit_open_by_handle_at"),
    ("pr_exit_rename_any", "sys_exit_renameat"),
    ("pr_exit_rename_any", "sys_exit_renameat2"),
    ("pr_exit_link_any", "sys_exit_linkat"),
    ("pr_exit_mkdir_any", "sys_exit_mkdirat"),
    ("pr_exit_symlink_any", "sys_exit_symlinkat"),
    ("pr_exit_truncate_any", "sys_exit_ftruncate"),
    ("pr_exit_chmod_any", "sys_exit_fchmod"),
    ("pr_exit_chmod_any", "sys_exit_fchmodat"),
    ("pr_exit_chmod_any", "sys_exit_fchmodat2"),
    ("pr_exit_setxattr_any", "sys_exit_lsetxattr"),
    ("pr_exit_setxattr_any", "sys_exit_fsetxattr"),
    ("pr_exit_setxattr_any", "sys_exit_setxattrat"),
    ("pr_exit_accept_any", "sys_exit_accept4"),
    ("pr_exit_utimes_any", "sys_exit_futimesat"),
    ("pr_exit_utimes_any", "sys_exit_utimes"),
    ("pr_exit_utimes_any", "sys_exit_utime"),
];

/// Calls of [`ALSO_ATTACHED`] that older kernels lack (fchmodat2: 6.6, setxattrat: 6.13): no
/// tracepoint, and no such call for the agent to make.
const ALSO_ATTACHED_OPTIONAL: &[&str] = &["sys_exit_fchmodat2", "sys_exit_setxattrat"];

/// Programs of the main object attached elsewhere: to the agent's cgroup (`enforce`), and as
/// uprobes on each TLS library file (`tls`).
const ATTACHED_ELSEWHERE: &[&str] = &[
    "pr_cg_connect4",
    "pr_cg_connect6",
    "pr_cg_sendmsg4",
    "pr_cg_sendmsg6",
    "pr_cg_sni",
    // tls.rs, on the agent cgroup with --tls-intercept.
    "pr_icpt_sockops",
    "pr_ssl_write",
    "pr_ssl_read",
    "pr_ssl_write_ex",
    "pr_ssl_read_ex",
    "pr_gnutls_send",
    "pr_gnutls_recv",
    "pr_ssl_handshake",
    "pr_ssl_connect",
    "pr_gnutls_handshake",
    "pr_ssl_write_ret",
    "pr_ssl_read_ret",
    "pr_ssl_write_ex_ret",
    "pr_ssl_read_ex_ret",
    "pr_gnutls_send_ret",
    "pr_gnutls_recv_ret",
    "pr_ssl_handshake_ret",
    "pr_ssl_connect_ret",
    "pr_gnutls_handshake_ret",
];

/// Attach every program; returns the links (detached on drop) and the program fds.
fn attach_all(
    skel: &mut ProctorSkel<'static>,
    capture_tls: bool,
) -> Result<(Vec<libbpf_rs::Link>, Vec<RawFd>), SensorError> {
    use libbpf_rs::skel::Skel;
    let loaded: Vec<String> = skel
        .object()
        .progs()
        .map(|p| p.name().to_string_lossy().into_owned())
        .collect();
    let progs = &mut skel.progs;
    let mut links = Vec::new();
    let mut fds = Vec::new();
    // With --capture-tls: the socket syscalls made inside a TLS call, for the connection's peer.
    let tls = vec![
        &mut progs.pr_tls_write,
        &mut progs.pr_tls_read,
        &mut progs.pr_tls_writev,
        &mut progs.pr_tls_readv,
        &mut progs.pr_tls_sendto,
        &mut progs.pr_tls_recvfrom,
        &mut progs.pr_tls_sendmsg,
        &mut progs.pr_tls_recvmsg,
    ];
    let core = vec![
        &mut progs.pr_fork,
        &mut progs.pr_exec,
        &mut progs.pr_exit,
        &mut progs.pr_sched_switch,
        &mut progs.pr_exit_openat,
        &mut progs.pr_exit_openat_btf,
        &mut progs.pr_exit_open_other,
        &mut progs.pr_exit_connect,
        &mut progs.pr_exit_sendto,
        &mut progs.pr_exit_sendmsg,
        &mut progs.pr_exit_sendmmsg,
        &mut progs.pr_exit_socket,
        &mut progs.pr_exit_listen,
        &mut progs.pr_exit_accept_any,
        &mut progs.pr_exit_write,
        &mut progs.pr_exit_recvfrom,
        &mut progs.pr_exit_recvmsg,
        &mut progs.pr_exit_read,
        &mut progs.pr_uring_complete,
        &mut progs.pr_uring_create,
        &mut progs.pr_enter_ptrace,
        &mut progs.pr_enter_vm_readv,
        &mut progs.pr_enter_vm_writev,
        &mut progs.pr_enter_pidfd_getfd,
        &mut progs.pr_enter_kill,
        &mut progs.pr_enter_tkill,
        &mut progs.pr_enter_tgkill,
        &mut progs.pr_enter_sigqueue,
        &mut progs.pr_enter_tgsigqueue,
        &mut progs.pr_enter_pidfd_signal,
        &mut progs.pr_exit_unlink,
        &mut progs.pr_exit_unlinkat,
        &mut progs.pr_exit_rmdir,
        &mut progs.pr_exit_mkdir_any,
        &mut progs.pr_exit_rename_any,
        &mut progs.pr_exit_link_any,
        &mut progs.pr_exit_symlink_any,
        &mut progs.pr_exit_init_module,
        &mut progs.pr_exit_finit_module,
        &mut progs.pr_exit_delete_module,
        &mut progs.pr_exit_kexec_load,
        &mut progs.pr_exit_kexec_file_load,
        &mut progs.pr_enter_reboot,
        &mut progs.pr_exit_settimeofday,
        &mut progs.pr_exit_clock_settime,
        &mut progs.pr_exit_swapon,
        &mut progs.pr_exit_swapoff,
        &mut progs.pr_exit_mount,
        &mut progs.pr_exit_umount,
        &mut progs.pr_exit_move_mount,
        &mut progs.pr_exit_mount_setattr,
        &mut progs.pr_exit_pivot_root,
        &mut progs.pr_exit_chroot,
        &mut progs.pr_exit_setns,
        &mut progs.pr_exit_unshare,
        &mut progs.pr_exit_bpf,
        &mut progs.pr_exit_adjtimex,
        &mut progs.pr_exit_clock_adjtime,
        &mut progs.pr_exit_chmod_any,
        &mut progs.pr_exit_setxattr_any,
        &mut progs.pr_exit_utimes_any,
        &mut progs.pr_exit_truncate_any,
        &mut progs.pr_exit_mmap,
    ];
    // A program the object loads but nobody attaches would watch nothing, silently: every
    // program is attached here or named in ATTACHED_ELSEWHERE.
    let named: HashSet<String> = tls
        .iter()
        .chain(&core)
        .map(|p| p.name().to_string_lossy().into_owned())
        .chain(ATTACHED_ELSEWHERE.iter().map(|n| n.to_string()))
        .collect();
    if let Some(prog) = loaded.into_iter().find(|p| !named.contains(p)) {
        return Err(SensorError::NotAttached { prog });
    }
    let tls = if capture_tls { tls } else { Vec::new() };
    for prog in tls.into_iter().chain(core) {
        // The openat program's variant not loaded (autoload off, see `load_object`).
        if prog.as_fd().as_raw_fd() < 0 {
            continue;
        }
        let name = prog.name().to_string_lossy().into_owned();
        let link = match prog.attach() {
            Ok(link) => link,
            // A kernel built without modules or kexec has no such system call and no
            // tracepoint for it (ENOSYS for the caller): there is nothing to watch.
            Err(e)
                if OPTIONAL_SYSCALLS.contains(&name.as_str())
                    && e.kind() == libbpf_rs::ErrorKind::NotFound =>
            {
                tracing::info!("{name}: the kernel has no such system call; nothing to watch");
                continue;
            }
            Err(source) => return Err(SensorError::Attach { prog: name, source }),
        };
        links.push(link);
        fds.push(prog.as_fd().as_raw_fd());
        for (_, tp) in ALSO_ATTACHED.iter().filter(|(p, _)| *p == name) {
            let link = match prog.attach_tracepoint(libbpf_rs::TracepointCategory::Syscalls, tp) {
                Ok(link) => link,
                Err(e)
                    if ALSO_ATTACHED_OPTIONAL.contains(tp)
                        && e.kind() == libbpf_rs::ErrorKind::NotFound =>
                {
                    tracing::info!("{tp}: the kernel has no such system call; nothing to watch");
                    continue;
                }
                Err(source) => {
                    return Err(SensorError::Attach {
                        prog: format!("{name} ({tp})"),
                        source,
                    })
                }
            };
            links.push(link);
        }
    }
    Ok((links, fds))
}

/// Add the calling process to the tracked set through a raw map fd. Async-signal-safe (one
/// syscall, no allocation): meant for a forked child before it execs, so the agent is watched
/// from its first instruction.
pub fn track_self_raw(handle: TrackHandle) -> std::io::Result<()> {
    #[repr(C)]
    struct MapElemAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    let value = session::run_task();
    handle.count(pid);
    let attr = MapElemAttr {
        map_fd: handle.map_fd as u32,
        _pad: 0,
        key: &pid as *const u32 as u64,
        value: &value as *const pr_task as u64,
        flags: 0,
    };
    const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
    // SAFETY: attr is a valid bpf_attr prefix for BPF_MAP_UPDATE_ELEM; key/value point to live
    // locals of the map's key and value sizes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_ELEM,
            &attr as *const MapElemAttr,
            size_of::<MapElemAttr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn preflight() -> Result<(), SensorError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(SensorError::NotRoot);
    }
    if !std::path::Path::new(features::BTF_PATH).exists() {
        return Err(SensorError::NoBtf(features::BTF_PATH));
    }
    features::ensure_tracefs().map_err(|source| SensorError::Tracefs {
        path: features::TRACEFS_PATH,
        source,
    })?;
    Ok(())
}

fn route_libbpf_logs() {
    use libbpf_rs::PrintLevel;
    libbpf_rs::set_print(Some((PrintLevel::Debug, |level, msg| {
        let msg = msg.trim_end();
        match level {
            PrintLevel::Warn => tracing::debug!(target: "libbpf", "{msg}"),
            _ => tracing::trace!(target: "libbpf", "{msg}"),
        }
    })));
}

/// Whether cgroup_skb programs may call the current-task helpers here (newer kernels allow
/// them; Debian 12's 6.1 does not). Without them the SNI program files its records under the
/// agent's root instead of the sending process.
fn cgroup_skb_has_task_helpers() -> bool {
    use libbpf_rs::libbpf_sys as sys;
    [
        sys::BPF_FUNC_get_current_pid_tgid,
        sys::BPF_FUNC_get_current_task,
        sys::BPF_FUNC_get_current_comm,
        sys::BPF_FUNC_get_current_uid_gid,
    ]
    .into_iter()
    .all(|f| {
        // SAFETY: a probe with no options; it loads and frees a tiny program of its own.
        unsafe {
            sys::libbpf_probe_bpf_helper(sys::BPF_PROG_TYPE_CGROUP_SKB, f, std::ptr::null()) == 1
        }
    })
}

pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to fill.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub(crate) fn as_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: T is a plain wire struct (integers only); viewing its bytes is defined.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

pub(crate) fn from_bytes<T: Copy + Default>(b: &[u8]) -> Option<T> {
    if b.len() < size_of::<T>() {
        return None;
    }
    let mut out = T::default();
    // SAFETY: T is a plain wire struct (integers only) and b holds at least size_of::<T>() bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            b.as_ptr(),
            (&mut out as *mut T).cast::<u8>(),
            size_of::<T>(),
        )
    };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proctor_model::TlsDirection;

    /// A kind the kernel counts when its ring is full is either numbered (the log's holes are
    /// then explained by its counter, and its loss is the tree's) or one of the unnumbered
    /// slots detection knows: a kind added to intf.h and to LOST_KINDS alone would leave its
    /// losses unexplained.
    #[test]
    fn every_counted_kind_is_numbered_or_a_known_unnumbered_slot() {
        const UNNUMBERED: [&str; 3] = ["track_full", "session_full", "file_open_seen"];
        for (_, name) in LOST_KINDS {
            assert!(
                proctor_model::kseq::NUMBERED_KINDS.contains(&name) || UNNUMBERED.contains(&name),
                "{name} is counted by the kernel but is in neither list"
            );
        }
    }

    /// The consumer's short-timer promise relies on knowing which kinds the kernel wakes it for:
    /// the two lists must name the same kinds.
    #[test]
    fn urgent_kinds_match_the_kernel() {
        let src = include_str!("../../probes/bpf/lib/common.h");
        let body = src
            .split("static __always_inline int urgent_kind(__u32 kind)")
            .nth(1)
            .and_then(|b| b.split('}').next())
            .expect("urgent_kind in common.h");
        let kernel: Vec<&str> = body
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("PR_EV_"))
            .collect();
        assert!(kernel.len() >= 5, "{kernel:?}");
        // Every kind the wire format names (`PR_EV_X = N,` in intf.h), urgent on both sides or
        // on neither.
        let intf = include_str!("../../probes/bpf/intf.h");
        let mut named = 0;
        for line in intf.lines() {
            let Some((name, rest)) = line.trim().split_once(" = ") else {
                continue;
            };
            if !name.starts_with("PR_EV_") {
                continue;
            }
            let k: u32 = rest.split(',').next().unwrap().trim().parse().unwrap();
            assert_eq!(urgent_kind(k), kernel.contains(&name), "{name}");
            named += 1;
        }
        assert!(named >= 12, "{named} kinds found in intf.h");
    }

    fn decoded(tid: u32) -> Decoded {
        decode::test_header("py", tid, 1, 1)
    }

    fn chunk(offset: u32, data: &[u8], last: bool) -> TlsChunk {
        TlsChunk {
            lib: "openssl",
            direction: TlsDirection::Send,
            conn: 0x10,
            peer: None,
            len: 40_000,
            offset,
            data: data.to_vec(),
            truncated: false,
            last,
        }
    }

    #[test]
    fn chunks_of_a_call_are_joined_in_order() {
        let mut p = HashMap::new();
        assert!(join_tls(&mut p, decoded(1), chunk(0, b"ab", false)).is_empty());
        // Another thread's call in between does not mix in.
        let other = join_tls(&mut p, decoded(2), chunk(0, b"zz", true));
        assert_eq!(other.len(), 1);
        assert!(join_tls(&mut p, decoded(1), chunk(2, b"cd", false)).is_empty());
        let done = join_tls(&mut p, decoded(1), chunk(4, b"ef", true));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].1.data, b"abcdef");
        assert!(!done[0].1.truncated);
        assert!(p.is_empty());
    }

    #[test]
    fn lost_chunks_are_flagged_never_glued() {
        let mut p = HashMap::new();
        // The middle chunk was lost: the rest is not appended at the wrong place.
        join_tls(&mut p, decoded(1), chunk(0, b"ab", false));
        let done = join_tls(&mut p, decoded(1), chunk(4, b"ef", true));
        assert_eq!(done[0].1.data, b"ab");
        assert!(done[0].1.truncated);
        // The last chunk was lost: the next call of the thread flushes it, truncated.
        join_tls(&mut p, decoded(1), chunk(0, b"ab", false));
        let done = join_tls(&mut p, decoded(1), chunk(0, b"new", true));
        assert_eq!(done.len(), 2);
        assert!(done[0].1.truncated);
        assert_eq!(done[1].1.data, b"new");
        // The first chunk was lost.
        let done = join_tls(&mut p, decoded(3), chunk(16384, b"tail", true));
        assert!(done[0].1.truncated);
    }
}
