//! The domain model every part of proctor shares: what the sensor observed ([`Record`] holding an
//! [`Event`]) and what detection concluded ([`Alert`]).
//!
//! This crate is the seam between the kernel and the logic: the sensor produces
//! `Record`s, and detection, evidence and replay consume them, so everything above the sensor is
//! tested on recorded streams without root. The serde form of a `Record` is exactly one line of
//! `audit.jsonl` (minus the chain fields `seq`, `hash_prev`, `hash_self` that the evidence layer
//! adds), so a recorded log deserialises back into the same records.

mod bytes;
mod container;
mod incident;
pub mod kseq;
mod quotes;
mod records;

pub use bytes::Bytes;
pub use container::{Container, ContainerRuntime};
pub use incident::{
    severity_rank, Incident, IncidentEvent, INCIDENT_CLOSED, INCIDENT_OPEN, SEVERITIES,
};
pub use quotes::{with_quote_map, QuoteMap};
pub use records::*;
use serde::{Deserialize, Serialize};

/// One observation, with the fields common to every audit record.
///
/// JSON: `{"type": "exec", ...event fields..., "ts_ns": .., "agent_id": .., "pid": .., "ppid": ..,
/// "comm": .., "exec_id": ..}`. Aggregate records (`sched`, `lost`) carry the agent's root
/// process in the common fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub event: Event,
    /// Wall-clock UTC nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub agent_id: String,
    /// Process id (the kernel's tgid) in the initial PID namespace.
    pub pid: u32,
    pub ppid: u32,
    pub comm: Bytes,
    /// Identity of the process image: `"<pid>-<start_boottime_ns>-<self_exec_id>"`. It changes at
    /// every exec and never repeats when a PID is reused (the start time differs).
    pub exec_id: String,
    /// Who the process ran as, when the kernel said so (absent on aggregate records and on
    /// records proctor derives in userspace).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The kernel's number of the record in its session (absent on records of no session and on
    /// records proctor makes itself): a gap in them is a record that never arrived.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub kseq: Option<Kseq>,
}

/// A kernel record's session slot and its number in that session (docs/records.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Kseq {
    /// The session slot the kernel filed the acting task under.
    pub kslot: u32,
    /// 1, 2, 3, ... per slot, in the order the kernel took them.
    pub kseq: u64,
}

/// The credentials and cgroup of the task that acted, read in the kernel with the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// Real uid and gid as the initial user namespace sees them.
    pub uid: u32,
    pub gid: u32,
    /// Audit login uid (who logged in, kept across su/sudo); 4294967295 when unset.
    pub loginuid: u32,
    /// cgroup v2 id of the task: the inode number of its cgroup directory.
    pub cgroup_id: u64,
    /// The container that cgroup belongs to, when its path says so (docs/daemon.md, Containers).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
}

/// The length of the run at the start of `b` before the first `"`, `\\`, control byte or
/// non-ASCII byte: the part of a JSON string that needs no decoding and no UTF-8 check. Eight
/// bytes at a time (a byte-at-a-time loop was a third of `verify`'s time; sixteen at a time with
/// SSE2 measured no different on replay and verify, whose strings are mostly shorter than 16
/// bytes); the JSON scanners of replay and verify and the audit log's string writer share it.
/// Stopping at non-ASCII bytes lets them check UTF-8 only in the rare strings that have such
/// bytes, instead of the whole line up front (7% of replay).
pub fn json_ascii_run(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `v` below `n` (n <= 0x80) sets the high bit of that byte of the result. Borrows
    // can set bits above a true hit, never below one, so the lowest set bit is exact.
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w);
        let hits = below(x ^ (ONES * u64::from(b'"')), 1)
            | below(x ^ (ONES * u64::from(b'\\')), 1)
            | below(x, 0x20)
            | (x & HIGH);
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c))
        .unwrap_or(b.len() - i)
}

/// `ts_ns` as RFC 3339 UTC with nanoseconds (the `time` member beside `ts_ns`).
pub fn rfc3339(ts_ns: u64) -> String {
    rfc3339_in(ts_ns, &mut [0; RFC3339_LEN]).to_string()
}

/// Length of [`rfc3339`]'s text: the year has four digits for every `u64` time (1970 to 2262).
pub const RFC3339_LEN: usize = 30;

/// [`rfc3339`] written into `buf`, without an allocation (the audit log writes one per record):
/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, as chrono's `to_rfc3339_opts(Nanos, true)` writes it
/// (a test compares them), whose formatting machinery cost more than the rest of a record.
pub fn rfc3339_in(ts_ns: u64, buf: &mut [u8; RFC3339_LEN]) -> &str {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp_nanos(i64::try_from(ts_ns).unwrap_or(i64::MAX));
    let mut at = 0;
    let mut put = |v: u32, digits: u32, sep: u8| {
        for i in (0..digits).rev() {
            buf[at] = b'0' + (v / 10u32.pow(i) % 10) as u8;
            at += 1;
        }
        buf[at] = sep;
        at += 1;
    };
    // From_timestamp_nanos covers 1677..2262: four-digit, non-negative years.
    put(t.year().unsigned_abs(), 4, b'-');
    put(t.month(), 2, b'-');
    put(t.day(), 2, b'T');
    put(t.hour(), 2, b':');
    put(t.minute(), 2, b':');
    put(t.second(), 2, b'.');
    put(t.nanosecond(), 9, b'Z');
    // Only ASCII digits and separators were written.
    std::str::from_utf8(buf).unwrap_or_default()
}

/// What happened. Serialised with a `"type"` tag in snake_case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Exec(Exec),
    Fork(Fork),
    Exit(Exit),
    FileOpen(FileOpen),
    FileOpenSeen(FileOpenSeen),
    PathChange(PathChange),
    Privileged(Privileged),
    Connect(Connect),
    Inbound(Inbound),
    Send(Send),
    Dns(Dns),
    DnsAnswer(DnsAnswer),
    Ptrace(Ptrace),
    Sched(Sched),
    Lost(Lost),
    Tls(Tls),
    TlsSni(TlsSni),
    TlsBlind(TlsBlind),
    IoUringSetup(IoUringSetup),
    LlmRequest(LlmRequest),
    LlmResponse(LlmResponse),
    /// Any other record type found in an audit log (sensor_start, alert, checkpoint, ...):
    /// consumers of observations skip it.
    #[serde(other)]
    Other,
}

impl Event {
    /// The `type` tag as written in the audit log.
    pub fn type_name(&self) -> &'static str {
        self.kind().map_or("other", RecordKind::as_str)
    }

    /// The record kind of this observation; None for [`Event::Other`].
    pub fn kind(&self) -> Option<RecordKind> {
        Some(match self {
            Event::Exec(_) => RecordKind::Exec,
            Event::Fork(_) => RecordKind::Fork,
            Event::Exit(_) => RecordKind::Exit,
            Event::FileOpen(_) => RecordKind::FileOpen,
            Event::FileOpenSeen(_) => RecordKind::FileOpenSeen,
            Event::PathChange(_) => RecordKind::PathChange,
            Event::Privileged(_) => RecordKind::Privileged,
            Event::Connect(_) => RecordKind::Connect,
            Event::Inbound(_) => RecordKind::Inbound,
            Event::Send(_) => RecordKind::Send,
            Event::Dns(_) => RecordKind::Dns,
            Event::DnsAnswer(_) => RecordKind::DnsAnswer,
            Event::Ptrace(_) => RecordKind::Ptrace,
            Event::Sched(_) => RecordKind::Sched,
            Event::Lost(_) => RecordKind::Lost,
            Event::Tls(_) => RecordKind::Tls,
            Event::TlsSni(_) => RecordKind::TlsSni,
            Event::TlsBlind(_) => RecordKind::TlsBlind,
            Event::IoUringSetup(_) => RecordKind::IoUringSetup,
            Event::LlmRequest(_) => RecordKind::LlmRequest,
            Event::LlmResponse(_) => RecordKind::LlmResponse,
            Event::Other => return None,
        })
    }
}

/// A successful execve/execveat (the new image is in place).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exec {
    /// The executable as the kernel resolved it: absolute, symlinks and `..` resolved (the path of
    /// the file actually mapped, not what the caller typed).
    pub filename: Bytes,
    pub argv: Vec<Bytes>,
    /// True when argv was longer than the sensor's bound and was cut.
    pub argv_truncated: bool,
    /// Device of the executable, in the userspace `st_dev` encoding (equal to `stat().st_dev`).
    pub dev: u64,
    pub ino: u64,
    /// The executable has no path on any filesystem: a memfd or other pseudo file (`filename`
    /// is then its name, e.g. `memfd:x`) or a file deleted before the exec.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fileless: bool,
    /// The ELF build-id of what ran (hex), read from the process's executable after the exec:
    /// the content's identity, which a renamed copy keeps. Absent when it could not be read (the
    /// process was gone, or the file is a script or has no build-id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// The effective uid the new image runs with, when it is not the real uid (`uid`): the
    /// owner of a set-user-ID file (0: the process acts as root whoever started it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub euid: Option<u32>,
    /// The effective gid the new image runs with, when it is not the real gid: the group of a
    /// set-group-ID file (a copy of a shell made set-group-ID `docker` or `disk` is root's
    /// power without root's uid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egid: Option<u32>,
    /// The variables of the new image's environment that make an interpreter or the dynamic
    /// loader run a file besides the one argv names ([`RUN_ENV`]), each `NAME=VALUE`, in the
    /// environment's order. No other variable is read (an environment holds secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<Bytes>,
    /// A kept variable was cut, or left out for room.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub env_truncated: bool,
    /// The executable's size and times as the kernel saw them at the exec: what the monitor
    /// keeps answers about the content (its build-id) by. Not recorded; None in a replay.
    #[serde(skip)]
    pub at_exec: Option<InodeTimes>,
    /// The environment was not read to its end (more variables than the sensor reads, or
    /// memory it could not read): a variable of [`RUN_ENV`] may have gone unseen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub env_unread: bool,
}

/// A file's size and the times its data (mtime) and its inode (ctime) last changed, each as
/// (seconds, nanoseconds), as `stat(2)` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InodeTimes {
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

/// The environment variables an exec record keeps ([`Exec::env`]): what makes a shell source
/// a file (`BASH_ENV`, `ENV`), node load one (`NODE_OPTIONS`' `--require`, `NODE_PATH`),
/// python import from a directory (`PYTHONPATH`, `PYTHONHOME`), perl and ruby load a module
/// (`PERL5OPT`, `PERL5LIB`, `PERLLIB`, `RUBYOPT`, `RUBYLIB`), zsh source `.zshenv` from a
/// directory (`ZDOTDIR`), php read settings that can prepend a file to every script (`PHPRC`,
/// `PHP_INI_SCAN_DIR`), a JVM load an agent or classes (`JAVA_TOOL_OPTIONS` and
/// `_JAVA_OPTIONS`, read by every JVM; `JDK_JAVA_OPTIONS`, by the `java` launcher; `CLASSPATH`),
/// and the dynamic loader map a library (`LD_PRELOAD`, `LD_AUDIT`, `LD_LIBRARY_PATH`).
pub const RUN_ENV: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "LD_PRELOAD",
    "LD_AUDIT",
    "LD_LIBRARY_PATH",
    "ZDOTDIR",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
];

impl Exec {
    /// The values the record kept of environment variable `name`, in order: an environment can
    /// hold a name twice (glibc's `getenv` takes the first, bash the last), so a reader that
    /// judges what runs reads every one.
    pub fn env_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.env
            .iter()
            .filter_map(move |v| env_value(v.as_bytes(), name))
    }
}

/// The value of an environment entry `NAME=VALUE` when its name is `name`.
pub fn env_value<'a>(entry: &'a [u8], name: &str) -> Option<&'a [u8]> {
    entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fork {
    pub child_pid: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exit {
    /// Exit status when the process exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that killed the process, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

/// Read/write intent of an open, from the open flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

/// Linux open(2) flag bits the model reads (the records' `flags` are the kernel's).
pub const O_ACCMODE: u32 = 0o3;
pub const O_WRONLY: u32 = 0o1;
pub const O_RDWR: u32 = 0o2;
pub const O_CREAT: u32 = 0o100;
pub const O_TRUNC: u32 = 0o1000;

impl Access {
    /// The access mode of open(2) flags.
    pub fn of_flags(flags: u32) -> Access {
        match flags & O_ACCMODE {
            O_WRONLY => Access::Write,
            O_RDWR => Access::ReadWrite,
            _ => Access::Read,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileOpen {
    /// For a successful open, the path of the opened file as the kernel resolved it (absolute,
    /// symlinks and `..` resolved). For a refused open (`error` set) the kernel resolved nothing
    /// and this is the path as the caller passed it.
    pub path: Bytes,
    /// Raw open(2) flags as the caller passed them.
    pub flags: u32,
    pub access: Access,
    /// O_CREAT: the caller asked for the file to be made if missing (or the open made it).
    pub create: bool,
    /// This open made the file (the kernel's FMODE_CREATED): it did not exist before. `create`
    /// without `created` is an open of a file that was there (GNU touch opens every file so).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created: bool,
    pub truncate: bool,
    /// `st_dev` encoding; 0 when the open failed.
    pub dev: u64,
    pub ino: u64,
    /// errno of a refused open (EACCES, EPERM); absent for a successful one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<i32>,
    /// The resolved path was longer than the sensor's bound (4095 bytes or 64 components):
    /// `path` holds its last components only and does not start at the root.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
    /// Not an open of its own: this record counts `repeats` further opens, by this thread,
    /// identical to its earlier recorded open of the file (same file and name, flags and
    /// outcome; a new descriptor each time), from `ts_ns` to `last_ts_ns`. The kernel counts
    /// such repeats instead of recording each (docs/kernel.md "Repeated opens"). 0 for an
    /// ordinary open record.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeats: u64,
    /// Time of the last counted repeat (wall-clock ns, like `ts_ns`); 0 unless `repeats` is.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last_ts_ns: u64,
    /// The opened file is a device node: which device it opens, read from its inode, whatever
    /// the node is called or where it lies. Absent for anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceNode>,
    /// The opened file is a regular file with a set-user-ID or set-group-ID mode (from its
    /// inode once opened: an `open(O_CREAT)` with mode 04755 makes one with no chmod call).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub setid: bool,
    /// Not an open: the file was mapped executable (mmap with PROT_EXEC), which is how a shared
    /// library is loaded (the dynamic loader's for LD_PRELOAD and dlopen, ctypes). Recorded only
    /// for a file the tree opened to write in this run, and for one with no name (a memfd: then
    /// `path` is its name, as for a fileless exec); the system's libraries are not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mapped_exec: bool,
}

/// A device node: its type and the device number it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceNode {
    pub kind: DeviceKind,
    pub major: u32,
    pub minor: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Char,
    Block,
}

impl DeviceNode {
    /// From the kernel's own encoding of a device number (major << 20 | minor).
    pub fn from_kernel(kind: DeviceKind, rdev: u32) -> DeviceNode {
        DeviceNode {
            kind,
            major: rdev >> 20,
            minor: rdev & 0xf_ffff,
        }
    }
}

impl std::fmt::Display for DeviceNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            DeviceKind::Char => "char",
            DeviceKind::Block => "block",
        };
        write!(f, "{kind} {}:{}", self.major, self.minor)
    }
}

/// `path_change`: a name the tree removed, moved or made, at the successful syscall's exit:
/// `unlink` and `rmdir` (the name removed), `mkdir` (the directory made), `rename` and `link`
/// (`path` the old name, `new_path` the new one), `symlink` (`path` the link's target as
/// written, `new_path` the link), and `truncate` (`path` a file emptied in place by truncate or
/// ftruncate to 0). Paths are what the caller passed, made absolute against the directory the
/// kernel resolved for them (the dfd's, or the working directory) and normalised lexically (`.`
/// and `..`); a symlink's target is kept as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathChange {
    /// `unlink`, `rmdir`, `mkdir`, `rename`, `link` or `symlink`; `truncate` for a file emptied
    /// in place (`truncate` or `ftruncate` to length 0).
    pub op: String,
    pub path: Bytes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_path: Option<Bytes>,
    /// renameat2's `RENAME_*` flags (`exchange` swaps the two names), linkat's `AT_*` flags,
    /// mkdir's mode.
    #[serde(default, skip_serializing_if = "is_zero32")]
    pub flags: u32,
    /// The system call (`unlinkat`, `renameat2`, ...).
    pub syscall: String,
    /// A path (or its directory) was longer than the sensor's bound and was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
}

/// `privileged`: a call by the tree that changes the kernel or the whole host's view, refused or
/// not: loading or removing kernel code (`init_module`, `finit_module`, `delete_module`,
/// `kexec_load`, `kexec_file_load`), `reboot` (recorded at entry: a restart that succeeds does
/// not return), setting the clock (`settimeofday`, `clock_settime`; `adjtimex` and
/// `clock_adjtime` when their `modes` set something), `swapon`/`swapoff`, what
/// paths name (`mount`, `umount`, `move_mount`, `mount_setattr`, `pivot_root`, `chroot`),
/// namespaces (`setns`, `unshare`) and `bpf`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Privileged {
    /// The system call.
    pub syscall: String,
    /// What it acted on: the module file (an fd's file, as the kernel names it), the mount
    /// point, the new root, the swap file, the namespace file; `delete_module`'s module name.
    /// Other paths are as passed (a relative one is not resolved), `.` and `..` of an absolute
    /// one taken lexically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Bytes>,
    /// `mount`'s source (as passed), `pivot_root`'s put_old, `move_mount`'s from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Bytes>,
    /// The call's flags, command or clock id (mount's `MS_*`, unshare's `CLONE_*`, bpf's
    /// command, reboot's command, clock_settime's clock, adjtimex's and clock_adjtime's
    /// `modes`).
    #[serde(default, skip_serializing_if = "is_zero32")]
    pub flags: u32,
    /// The errno when the kernel refused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<i32>,
    /// The caller ran in a mount or user namespace other than the host's (init's, as proctor
    /// sees it): a sandbox (bubblewrap, a browser's, a container), whose mounts and chroot
    /// change only its own view.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub namespaced: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
    /// The utime family: the file's modification time (ns since the epoch) when proctor looked,
    /// just after the call. The times the call was given are read from the caller's memory,
    /// which another thread can rewrite under the call; this is what was set (or a later
    /// change). Absent when the file could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_after_ns: Option<i64>,
}

/// The utime family's `flags` (`Privileged::flags`): the access time given, the modification
/// time given (both: times the caller chose), and the modification time read as "now".
pub const TIMES_ATIME: u32 = 1;
pub const TIMES_MTIME: u32 = 2;
pub const TIMES_MTIME_NOW: u32 = 4;

/// The calls that set a file's times.
pub fn sets_times(syscall: &str) -> bool {
    matches!(syscall, "utimensat" | "futimesat" | "utimes" | "utime")
}

/// renameat2's RENAME_EXCHANGE: the two names swap files.
pub const RENAME_EXCHANGE: u32 = 2;

impl PathChange {
    /// A rename that swapped the two names' files (RENAME_EXCHANGE).
    pub fn exchange(&self) -> bool {
        self.op == "rename" && self.flags & RENAME_EXCHANGE != 0
    }
}

/// `file_open_seen`: reads by one process of files its session had already recorded whole, one
/// record for many opens. Each file is named by that recorded open (`kseq`, a `file_open` of
/// the same session with the same file, name and flags, by any process) and counted here: the
/// kernel sends no path for such a read (docs/kernel.md "Reads recorded once per session").
/// Only plain reads are folded: an open that writes, creates, truncates, is refused or touches
/// a sensitive file is a `file_open` every time. `ts_ns` is the first fold's time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileOpenSeen {
    /// The session slot whose record numbers `files[].kseq` are (the record itself has none).
    #[serde(default)]
    pub slot: u32,
    /// Opens this record stands for (the sum of the files' counts).
    pub count: u64,
    /// Time of the last of them (wall-clock ns, like `ts_ns`).
    pub last_ts_ns: u64,
    pub files: Vec<SeenFile>,
}

impl FileOpenSeen {
    /// Each folded file whose path is known, as the plain read it was (for consumers that judge
    /// opens one by one: detection, policy generation).
    pub fn opens(&self) -> impl Iterator<Item = FileOpen> + '_ {
        self.files.iter().filter_map(SeenFile::open)
    }
}

impl SeenFile {
    /// This file as the open it was (a plain read, or an open of /dev/null and the like with
    /// its flags); None when the path is not known.
    pub fn open(&self) -> Option<FileOpen> {
        Some(FileOpen {
            path: self.path.clone()?,
            flags: self.flags,
            access: Access::of_flags(self.flags),
            create: self.flags & O_CREAT != 0,
            created: false,
            truncate: self.flags & O_TRUNC != 0,
            dev: self.dev,
            ino: self.ino,
            error: None,
            path_truncated: false,
            repeats: 0,
            last_ts_ns: 0,
            device: None,
            setid: false,
            mapped_exec: false,
        })
    }
}

/// One file of a [`FileOpenSeen`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenFile {
    /// The session's `file_open` record these reads repeat (its `kseq`).
    pub kseq: u64,
    /// That record's path; absent when proctor no longer held it in memory (`kseq` names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Bytes>,
    /// The flags, as that record has them.
    pub flags: u32,
    /// `st_dev` encoding.
    pub dev: u64,
    pub ino: u64,
    /// Opens of it by this process folded here.
    pub count: u64,
}

fn is_zero32(n: &u32) -> bool {
    *n == 0
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Address family of a socket address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Inet,
    Inet6,
    Unix,
    Other,
}

/// A socket destination. `addr`/`port` for inet and inet6, `path` for unix (abstract socket
/// names start with a NUL byte, kept as is).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SockAddr {
    pub family: Family,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connect {
    #[serde(flatten)]
    pub dest: SockAddr,
    /// "tcp", "udp", "unix-stream", "unix-dgram", ... from the socket the call was made on.
    pub protocol: String,
    /// Not a connect of its own: this record counts `repeats` further connects, by this thread,
    /// identical to its earlier recorded connect (same socket type, destination and result; a
    /// new socket each time), from `ts_ns` to `last_ts_ns`. The kernel counts such repeats
    /// instead of recording each (docs/kernel.md "Repeated connects"). 0 for an ordinary
    /// connect record.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeats: u64,
    /// Time of the last counted repeat (wall-clock ns, like `ts_ns`); 0 unless `repeats` is.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last_ts_ns: u64,
    /// A unix socket connected to a listener bound to a file: that socket file's device
    /// (`st_dev` encoding) and inode, from the kernel's peer, so the listener is known by
    /// identity whatever name, hard link or bind mount the caller reached it by. 0 otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub peer_dev: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub peer_ino: u64,
    /// A unix stream socket: the host pid that listens on the socket reached (the kernel's
    /// peer credentials, which name the listener whatever path, link or abstract name the
    /// caller used). TCP to a loopback address: the pid holding the listening socket reached,
    /// found by proctor in /proc as it reads the record. 0 otherwise.
    #[serde(default, skip_serializing_if = "is_zero32")]
    pub peer_pid: u32,
    /// That listener is not a process of the agent's tree: what it is asked to do, it does
    /// outside proctor's view.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub peer_outside: bool,
    /// The outside listener's executable, read from `/proc/PID/exe` when the record was made
    /// (absent when it could not be read, e.g. the listener has exited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_exe: Option<Bytes>,
    /// The inode number of the socket's network namespace, from the kernel (0: unknown), where
    /// the sensor looks for a loopback listener. Not recorded.
    #[serde(skip)]
    pub netns: u32,
}

impl Connect {
    /// How many connects this record stands for: itself, or the repeats it counts.
    pub fn count(&self) -> u64 {
        self.repeats.max(1)
    }
}

/// A door the agent's tree opened to the network, or someone coming through one: a TCP
/// `listen` on an address that is not loopback (the wildcard `0.0.0.0` or `::` included), or an
/// `accept`/`accept4` of a connection whose peer is not loopback. Both read from the kernel's
/// socket at the call's exit. Connections from this host's loopback are not recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    /// "listen", "accept" or "accept4".
    pub call: String,
    /// The address and port the socket listens on (listen), or the local end the peer reached
    /// (accept).
    pub local: SockAddr,
    /// accept: who connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<SockAddr>,
    /// "tcp", ... from the socket.
    pub protocol: String,
}

/// A send that names a destination (sendto/sendmsg/sendmmsg with an address), or any send on a
/// connected socket whose peer port is 53 (see [`Dns`] for the parsed query).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Send {
    #[serde(flatten)]
    pub dest: SockAddr,
    pub protocol: String,
    /// Bytes the caller asked to send.
    pub bytes: u64,
    /// "sendto", "sendmsg" or "sendmmsg".
    pub syscall: String,
}

/// A DNS query seen in a send to port 53, parsed from the payload the kernel was handed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    /// The queried name in presentation form without the final dot; label bytes that are not
    /// printable ASCII are kept as they were (see [`Bytes`]).
    pub qname: Bytes,
    pub qtype: u16,
    /// "A", "AAAA", "TXT", ... or "TYPE<n>".
    pub qtype_name: String,
    /// The resolver the query went to.
    pub server: SockAddr,
    pub protocol: String,
    pub txid: u16,
}

/// A DNS response a tracked process received from port 53 (recvfrom, recvmsg or read),
/// parsed from the bytes the kernel copied into its buffer: the first question and the
/// addresses of the answer section's A and AAAA records (at most the first 512 bytes of the
/// message are seen; `truncated` says an answer was cut off there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsAnswer {
    /// The name asked, as in [`Dns::qname`]: the addresses are attributed to it (through any
    /// CNAME chain in the answer).
    pub qname: Bytes,
    pub qtype: u16,
    pub qtype_name: String,
    /// The resolver the answer came from (its source address).
    pub server: SockAddr,
    pub protocol: String,
    pub txid: u16,
    /// RCODE: 0 NOERROR, 3 NXDOMAIN, ...
    pub rcode: u8,
    /// A and AAAA addresses of the answer section, in order.
    pub addrs: Vec<String>,
    /// The copied bytes ended inside the answer section.
    #[serde(default)]
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ptrace {
    /// "attach", "seize" or "traceme".
    pub request: String,
    pub request_code: i64,
    pub tracer_pid: u32,
    /// The pid the request named (for traceme, the tracer-to-be: the caller's parent).
    pub target_pid: u32,
    pub tracer_tracked: bool,
    pub target_tracked: bool,
    /// A signal sent to a process outside the tree (`request` `kill`, `tkill`, `tgkill`,
    /// `rt_sigqueueinfo`, `rt_tgsigqueueinfo`, `pidfd_send_signal`): its number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// The signalled process's command name, read from /proc as the record was made (a
    /// process a SIGKILL ended keeps it until its parent reaps it); absent when it was gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_comm: Option<Bytes>,
}

impl Ptrace {
    /// Whether the request takes the attach permission onto its target (an attach, or its
    /// memory or descriptors: `process_vm_readv`/`writev`, `pidfd_getfd`), as opposed to
    /// `traceme` or a signal.
    pub fn attach_mode(&self) -> bool {
        matches!(
            self.request.as_str(),
            "attach" | "seize" | "vm_readv" | "vm_writev" | "pidfd_getfd"
        )
    }
}

/// Number of log2 buckets in the scheduler histograms: bucket i counts intervals in
/// [2^i, 2^(i+1)) ns; the last bucket takes everything longer.
pub const SCHED_BUCKETS: usize = 32;

/// A periodic, in-kernel aggregated summary of the scheduler behaviour of all tracked threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sched {
    /// Length of the period this summary covers.
    pub interval_ns: u64,
    pub switches: u64,
    /// Switches where the thread gave up the CPU (blocked, slept).
    pub voluntary: u64,
    /// Switches where the thread was preempted while runnable.
    pub involuntary: u64,
    pub run_ns: u64,
    pub off_ns: u64,
    /// log2-ns histogram of on-CPU slices ([`SCHED_BUCKETS`] buckets).
    pub run_hist: Vec<u64>,
    /// log2-ns histogram of off-CPU intervals (switch-out to next switch-in).
    pub off_hist: Vec<u64>,
}

/// Events the kernel could not deliver (ring buffer full) or userspace could not decode, or
/// processes that could not be tracked. Never silent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lost {
    /// Which kind was lost: an event type name, "malformed", "track_full", "session_full",
    /// "kseq_unaccounted" or "fs_unanswered" (see docs/records.md).
    pub what: String,
    pub count: u64,
}

/// A tracked process created an io_uring instance. What it submits there runs without the
/// syscalls the sensor hooks (opens, connects and sends are recorded at completion instead, where
/// they can be), so the ring itself is recorded, with what the kernel set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoUringSetup {
    /// The ring's file descriptor.
    pub fd: i32,
    /// Submission and completion queue sizes, as the kernel rounded them.
    pub sq_entries: u32,
    pub cq_entries: u32,
    /// The `IORING_SETUP_*` flags, as a number.
    pub flags: u32,
    /// Those flags by name (`sqpoll`, `iopoll`, ...; `0x...` for bits without a name here).
    pub flag_names: Vec<String>,
}

impl IoUringSetup {
    /// Names of the `IORING_SETUP_*` bits (include/uapi/linux/io_uring.h), lowest bit first.
    const FLAG_NAMES: &'static [&'static str] = &[
        "iopoll",
        "sqpoll",
        "sq_aff",
        "cqsize",
        "clamp",
        "attach_wq",
        "r_disabled",
        "submit_all",
        "coop_taskrun",
        "taskrun_flag",
        "sqe128",
        "cqe32",
        "single_issuer",
        "defer_taskrun",
        "no_mmap",
        "registered_fd_only",
        "no_sqarray",
        "hybrid_iopoll",
    ];

    /// Names of the set bits of `flags`.
    pub fn names(flags: u32) -> Vec<String> {
        (0..32)
            .filter(|b| flags & (1 << b) != 0)
            .map(|b| match Self::FLAG_NAMES.get(b) {
                Some(n) => (*n).to_string(),
                None => format!("{:#x}", 1u32 << b),
            })
            .collect()
    }
}

/// Which way TLS plaintext went, seen from the tracked process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsDirection {
    /// The process wrote it (SSL_write, gnutls_record_send): it goes to the peer.
    Send,
    /// The process read it (SSL_read, gnutls_record_recv): it came from the peer.
    Recv,
}

/// Plaintext of one TLS library call of a tracked process (only with `--capture-tls`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tls {
    pub direction: TlsDirection,
    /// "openssl" or "gnutls": the library whose call was hooked.
    pub lib: String,
    /// The library's connection object (the `SSL *` or `gnutls_session_t` address): stable for
    /// one connection within one process, so records of a connection can be put back together.
    pub conn: u64,
    /// The connection's peer when the sensor could tell it (from the socket under the call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<SockAddr>,
    /// Bytes the call actually transferred (its return value).
    pub len: u64,
    /// The captured plaintext: the first bytes of the call, after redaction unless raw capture
    /// was asked for.
    pub data: Bytes,
    /// True when `data` holds fewer bytes than `len` (the per-call bound cut it).
    pub truncated: bool,
    /// How many secrets were replaced in `data` (0 in raw mode).
    pub redacted: u32,
}

/// The server name (SNI) of a TLS ClientHello a tracked process sent, read in the kernel from
/// the outgoing packet, whatever TLS library made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsSni {
    /// The destination of the connection that carried the ClientHello.
    #[serde(flatten)]
    pub dest: SockAddr,
    /// The host name as sent (hostile bytes, kept as they were).
    pub sni: Bytes,
}

/// A tracked process uses TLS that proctor cannot hook for plaintext (static or stripped
/// OpenSSL/BoringSSL, rustls, Go's crypto/tls, ...). Recorded once per binary; SNI and connect
/// records still cover it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsBlind {
    /// The executable, as the kernel resolved it.
    pub binary: Bytes,
    /// Why: "static-openssl", "boringssl", "rustls", "go-crypto-tls", "no-hookable-library", ...
    pub reason: String,
}

/// A tool call the model asked for in an LLM response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub name: String,
    /// The arguments as the model sent them (a JSON text for OpenAI, the `input` object
    /// serialised for Anthropic), bounded.
    pub arguments: String,
}

/// An HTTP request to an LLM API seen in captured TLS plaintext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmRequest {
    /// Same as [`Tls::conn`] of the records it was parsed from.
    pub conn: u64,
    /// "openai-chat", "openai-responses", "anthropic-messages".
    pub api: String,
    /// The Host header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The request path, e.g. "/v1/chat/completions".
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub stream: bool,
    /// Number of messages in the conversation sent.
    pub messages: u32,
    /// Names of the tools offered to the model.
    pub tools: Vec<String>,
    /// Body size in bytes.
    pub bytes: u64,
}

/// The response of an LLM API call, parsed from captured plaintext (plain JSON or a stream of
/// server-sent events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmResponse {
    pub conn: u64,
    pub api: String,
    pub endpoint: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub streamed: bool,
    /// The tool calls the model asked for, in order.
    pub tool_calls: Vec<ToolCall>,
    /// finish_reason (OpenAI) or stop_reason (Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Bytes of text content the model produced.
    pub text_bytes: u64,
    /// Body size in bytes (as received, SSE framing included; a stream is reported at its last
    /// event, so what follows that, such as a compressed body's trailer, is not counted).
    pub bytes: u64,
}

/// Who and where, as alerts and incidents carry them: the sensor's host and the identity of
/// the process that acted (for an incident, the one that triggered its first alert with a
/// kernel record). One type for both, flattened, so their JSON members are the same:
/// `host`, `uid`, `gid`, `user`, `container_runtime`, `container_id`, `pod_uid`, each absent
/// when unknown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    /// Host name of the sensor.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Real uid and gid of the process, when its records say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// The uid's user name on the sensor's host (empty when unknown).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// The container of the process (`container_runtime`, `container_id`, `pod_uid`), when
    /// its records say.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
}

/// A detection result, before it becomes a signed certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub agent_id: String,
    pub ts_ns: u64,
    /// "L1".."L5", or a category: "SENSITIVE_FILE", "RISKY_BINARY", "DNS_ANOMALY", "PERSISTENCE".
    pub channel: String,
    /// DRIFT_DETECTED, LLM_AGENT_HIJACK, STRUCTURAL_DRIFT, CAUSAL_CYCLE_DETECTED,
    /// UNKNOWN_DESTINATION, NET_EGRESS_BURST, PTRACE_ATTACH_DETECTED, SENSITIVE_FILE, ...
    pub kind: String,
    /// Score of the deviation (channel specific; documented per channel).
    pub divergence: f64,
    pub pid: u32,
    pub exec_id: String,
    /// One line saying what happened, for humans.
    pub summary: String,
    /// The records that triggered the alert.
    pub trigger: Vec<Record>,
    /// The records that preceded it in that process tree, oldest first (bounded).
    pub syscall_trace: Vec<Record>,
    /// "ALERT_EMITTED", or "BLOCKED" when enforcement stopped the action.
    pub action: String,
    /// How many times this alert key fired within the cooldown (1 for the first).
    pub count: u64,
    /// This alert's id within the run (empty in alerts written before ids existed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// info, low, medium, high or critical (empty: not rated).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub severity: String,
    /// The incident this alert belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// The detection rule, e.g. "L3.STRUCTURAL_DRIFT.new-shell-parent" (stable: SIEM rules key
    /// on it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule_id: String,
    /// `ts_ns` as RFC 3339 UTC with nanoseconds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time: String,
    /// Who and where (`host`, `uid`, `gid`, `user`, the container fields), filled when the
    /// alert is written (audit record, alert socket, outputs); a certificate carries none of
    /// them itself (it has its own `host` and `run_id`).
    #[serde(flatten)]
    pub actor: Actor,
    /// The sensor run (the certificates' `run_id`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    /// File name of this alert's certificate in DIR/alerts/.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub certificate: String,
}

impl Alert {
    /// An alert with what every detector sets; the rest is the default: divergence 1.0,
    /// action `ALERT_EMITTED`, count 1, no trigger or trace, the run-level fields empty (the
    /// writer fills them).
    pub fn new(
        agent_id: impl Into<String>,
        ts_ns: u64,
        channel: impl Into<String>,
        kind: impl Into<String>,
        pid: u32,
        exec_id: impl Into<String>,
        summary: impl Into<String>,
    ) -> Alert {
        Alert {
            agent_id: agent_id.into(),
            ts_ns,
            channel: channel.into(),
            kind: kind.into(),
            divergence: 1.0,
            pid,
            exec_id: exec_id.into(),
            summary: summary.into(),
            trigger: Vec::new(),
            syscall_trace: Vec::new(),
            action: "ALERT_EMITTED".into(),
            count: 1,
            id: String::new(),
            severity: String::new(),
            incident: None,
            rule_id: String::new(),
            time: String::new(),
            actor: Actor::default(),
            run_id: String::new(),
            certificate: String::new(),
        }
    }

    pub fn with_divergence(mut self, divergence: f64) -> Alert {
        self.divergence = divergence;
        self
    }

    pub fn with_action(mut self, action: impl Into<String>) -> Alert {
        self.action = action.into();
        self
    }

    /// The records that triggered it and those that preceded it.
    pub fn with_records(mut self, trigger: Vec<Record>, syscall_trace: Vec<Record>) -> Alert {
        self.trigger = trigger;
        self.syscall_trace = syscall_trace;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time scan stops exactly where a byte-at-a-time loop does: every byte value
    /// at every position of runs up to 48 bytes (six words and the tails between), after plain
    /// bytes and at the end.
    #[test]
    fn the_ascii_run_stops_at_the_first_byte_a_json_string_must_look_at() {
        let reference = |b: &[u8]| {
            b.iter()
                .position(|&c| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c))
                .unwrap_or(b.len())
        };
        for len in 0..48 {
            let plain: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert_eq!(json_ascii_run(&plain), len);
            for at in 0..len {
                for c in 0..=255u8 {
                    let mut b = plain.clone();
                    b[at] = c;
                    assert_eq!(json_ascii_run(&b), reference(&b), "{c:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn a_folded_open_is_judged_with_its_own_flags() {
        let f = |flags| SeenFile {
            kseq: 1,
            path: Some(Bytes::from("/dev/null")),
            flags,
            dev: 5,
            ino: 6,
            count: 2,
        };
        let o = f(0o2000000).open().unwrap();
        assert_eq!(
            (o.access, o.create, o.truncate),
            (Access::Read, false, false)
        );
        let o = f(0o1101).open().unwrap();
        assert_eq!(
            (o.access, o.create, o.truncate),
            (Access::Write, true, true)
        );
        assert_eq!(f(0o2).open().unwrap().access, Access::ReadWrite);
        assert_eq!(SeenFile { path: None, ..f(0) }.open(), None);
    }

    fn rec(event: Event) -> Record {
        Record {
            event,
            ts_ns: 1,
            agent_id: "a".into(),
            pid: 10,
            ppid: 1,
            comm: Bytes::from("sh"),
            exec_id: "10-5-1".into(),
            identity: None,
            kseq: None,
        }
    }

    #[test]
    fn record_json_is_flat_with_type_tag() {
        let r = rec(Event::Fork(Fork { child_pid: 11 }));
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["type"], "fork");
        assert_eq!(v["child_pid"], 11);
        assert_eq!(v["pid"], 10);
        let back: Record = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    const CID: &str = "3f1c8e2a9b7d4c6e5f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a";

    /// Lines as alerts and incidents were written before [`Actor`] held their identity
    /// members: they read into it and are written again byte for byte.
    #[test]
    fn alert_and_incident_lines_keep_their_identity_members() {
        let alert = format!(
            r#"{{"agent_id":"a","ts_ns":1,"channel":"L2","kind":"LLM_AGENT_HIJACK","divergence":1.0,"pid":10,"exec_id":"10-5-1","summary":"s","trigger":[],"syscall_trace":[],"action":"ALERT_EMITTED","count":1,"id":"a-1","time":"1970-01-01T00:00:00.000000001Z","host":"h","uid":1000,"gid":100,"user":"dev","container_runtime":"podman","container_id":"{CID}","run_id":"r","certificate":"c.cal"}}"#
        );
        let a: Alert = serde_json::from_str(&alert).unwrap();
        assert_eq!(
            (
                a.actor.host.as_str(),
                a.actor.uid,
                a.actor.gid,
                a.actor.user.as_str()
            ),
            ("h", Some(1000), Some(100), "dev")
        );
        assert_eq!(a.actor.container.unwrap().id(), CID);
        assert_eq!(serde_json::to_string(&a).unwrap(), alert);
        // Without identity: no member at all.
        let bare = r#"{"agent_id":"a","ts_ns":1,"channel":"L2","kind":"K","divergence":1.0,"pid":10,"exec_id":"e","summary":"s","trigger":[],"syscall_trace":[],"action":"ALERT_EMITTED","count":1}"#;
        let a: Alert = serde_json::from_str(bare).unwrap();
        assert_eq!(a.actor, Actor::default());
        assert_eq!(serde_json::to_string(&a).unwrap(), bare);

        let old = r#"{"id":"inc-1","agent_id":"a","opened_ns":1,"updated_ns":2,"severity":"high","title":"t","techniques":["T1059.004"],"root_pid":10,"root_argv":"bash -c x","alert_ids":["a-1"],"timeline":[],"timeline_dropped":0,"status":"open","host":"h","uid":0,"gid":0,"user":"root","run_id":"r","certificate":"i.cal"}"#;
        let mut i: Incident = serde_json::from_str(old).unwrap();
        assert_eq!((i.actor.uid, i.actor.user.as_str()), (Some(0), "root"));
        assert_eq!(serde_json::to_string(&i).unwrap(), old);
        // An incident of a containerised agent names the container, as its alerts do.
        i.actor.container =
            Container::from_fields("cri", CID, Some("5d8e2f1a-3b4c-4d5e-8f90-a1b2c3d4e5f6"));
        let v: serde_json::Value = serde_json::to_value(&i).unwrap();
        assert_eq!(v["container_runtime"], "cri");
        assert_eq!(v["container_id"], CID);
        assert_eq!(v["pod_uid"], "5d8e2f1a-3b4c-4d5e-8f90-a1b2c3d4e5f6");
        assert_eq!(serde_json::from_value::<Incident>(v).unwrap(), i);
    }

    #[test]
    fn unknown_record_types_and_chain_fields_are_tolerated() {
        let line = r#"{"type":"checkpoint","seq":4,"hash_prev":"00","ts_ns":1,"agent_id":"a","pid":1,"ppid":0,"comm":"x","exec_id":"e"}"#;
        let r: Record = serde_json::from_str(line).unwrap();
        assert_eq!(r.event, Event::Other);
    }

    #[test]
    fn connect_flattens_destination() {
        let r = rec(Event::Connect(Connect {
            dest: SockAddr {
                family: Family::Inet6,
                addr: Some("::1".into()),
                port: Some(8080),
                path: None,
            },
            protocol: "tcp".into(),
            repeats: 0,
            last_ts_ns: 0,
            peer_dev: 0,
            peer_ino: 0,
            peer_pid: 0,
            peer_outside: false,
            peer_exe: None,
            netns: 0,
        }));
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["family"], "inet6");
        assert_eq!(v["port"], 8080);
        assert!(v.get("path").is_none());
        // An ordinary connect says nothing of repeats; a counted one says how many and until when.
        assert!(v.get("repeats").is_none() && v.get("last_ts_ns").is_none());
        assert_eq!(serde_json::from_value::<Record>(v).unwrap(), r);
        let mut counted = r.clone();
        if let Event::Connect(c) = &mut counted.event {
            c.repeats = 15;
            c.last_ts_ns = 9;
        }
        let v: serde_json::Value = serde_json::to_value(&counted).unwrap();
        assert_eq!(
            (v["repeats"].as_u64(), v["last_ts_ns"].as_u64()),
            (Some(15), Some(9))
        );
        assert_eq!(serde_json::from_value::<Record>(v).unwrap(), counted);
    }
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn rfc3339_is_what_chrono_writes() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut times = vec![0, 1, 999_999_999, 1_000_000_000, u64::MAX, i64::MAX as u64];
        times.extend([951_827_696_000_000_000, 1_795_422_529_123_456_789]);
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            times.push(x % (i64::MAX as u64));
        }
        for ts in times {
            let want =
                chrono::DateTime::from_timestamp_nanos(i64::try_from(ts).unwrap_or(i64::MAX))
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            assert_eq!(super::rfc3339(ts), want, "{ts}");
        }
    }
}

#[cfg(test)]
mod plain_run_tests {
    #[test]
    fn the_word_at_a_time_scan_finds_the_first_special_byte() {
        let special = |c: u8| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c);
        for len in 0..24 {
            for at in 0..len {
                for c in 0..=255u8 {
                    for fill in [b'a', 0x7f, 0x21, 0x5d, b' '] {
                        let mut b = vec![fill; len];
                        b[at] = c;
                        // A second special byte later must not hide the first.
                        if at + 3 < len {
                            b[at + 3] = b'"';
                        }
                        let want = b.iter().position(|&x| special(x)).unwrap_or(len);
                        assert_eq!(super::json_ascii_run(&b), want, "{b:?}");
                    }
                }
            }
        }
    }
}
