//! `PRIVILEGED_CALL`: the tree loads or removes kernel code, restarts the machine, sets the
//! clock, calls bpf(), or changes what paths name for the whole host (a mount outside a
//! namespace of its own). Judged by the system call the kernel saw, so `ctypes` calling
//! finit_module is caught where no `insmod` ran; attempts the kernel refused alert too (the
//! intent is the finding). From the first record, never learned: none of these is an agent's
//! work. A sandbox's mounts (bubblewrap, a browser's) happen in namespaces of its own and are
//! not judged; `chroot` changes only the caller's view (image builds chroot into a rootfs), and
//! it, `setns`, `unshare` and swap are recorded only. A file given a set-user-ID or
//! set-group-ID mode or file capabilities (the kernel records only those chmod and setxattr
//! calls) runs with privilege its runner lacks: a copy of a shell made setuid root is a way
//! back to root after the agent is gone (T1548.001). Judged in any namespace: a root agent can
//! enter one of its own first, and the file is the host's. So is an open for writing of a
//! set-user-ID or set-group-ID file (the open record's `setid`): one `open(O_CREAT)` made so, or
//! an existing one being rewritten.

use super::*;
use proctor_model::{sets_times, TIMES_ATIME, TIMES_MTIME, TIMES_MTIME_NOW};

/// The set-user-ID and set-group-ID bits of a mode.
const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;

/// What the call does, for the alert, or None when it is not judged.
fn effect(p: &Privileged) -> Option<&'static str> {
    Some(match p.syscall.as_str() {
        "chmod" | "fchmod" | "fchmodat" | "fchmodat2" => match p.flags & (S_ISUID | S_ISGID) {
            S_ISUID => "makes the file set-user-ID: it runs as its owner, whoever runs it",
            S_ISGID => "makes the file set-group-ID: it runs with its group, whoever runs it",
            0 => return None,
            _ => {
                "makes the file set-user-ID and set-group-ID: it runs as its owner and group, \
                  whoever runs it"
            }
        },
        "setxattr" | "lsetxattr" | "fsetxattr" | "setxattrat" => {
            "gives the file capabilities (security.capability): a process running it gains \
             them, whoever runs it"
        }
        "init_module" | "finit_module" => "loads code into the running kernel",
        "delete_module" => "removes code from the running kernel (a security or audit module)",
        "kexec_load" | "kexec_file_load" => "loads another kernel to boot into",
        "reboot" => "restarts, halts or reconfigures the machine's power",
        "settimeofday" | "clock_settime" | "adjtimex" | "clock_adjtime" => {
            "sets the system clock (the time of every later record and log line)"
        }
        "bpf" => "loads, reads or changes eBPF programs and maps in the kernel (proctor's own too)",
        "mount" | "umount2" | "move_mount" | "mount_setattr" | "pivot_root" if !p.namespaced => {
            "changes what paths name for every process of the host"
        }
        _ => return None,
    })
}

/// What a timestomp alert says the times were set to: how incidents know it (T1070.006).
pub(crate) const TIMESTOMP: &str = "to a time of its choosing";

/// How far a file's modification time may lag a moment it was set at or after (file times
/// come from a coarse clock), in ns.
const MTIME_SLACK_NS: i128 = 2_000_000_000;

/// Which of the times a utime-family call `p` set to a time of its choosing (`TIMES_ATIME`,
/// `TIMES_MTIME`), and whether the file said so rather than the call. The times the kernel
/// recorded were read from the caller's memory after the call, where another thread can have
/// rewritten them; so the modification time counts as chosen too when the file's, read just
/// after the call, is older than the call could leave it: older than the call itself when its
/// mtime read as "now", or than the tree's latest write of the file by another process
/// (`written_ns`; GNU `touch -a` opens the file for writing itself, writes nothing, and leaves
/// the old mtime).
fn chosen_times(r: &Record, p: &Privileged, written_ns: Option<u64>) -> (u32, bool) {
    let given = p.flags & (TIMES_ATIME | TIMES_MTIME);
    if given & TIMES_MTIME != 0 {
        return (given, false);
    }
    let Some(mtime) = p.mtime_after_ns else {
        return (given, false);
    };
    let now = if p.flags & TIMES_MTIME_NOW != 0 {
        r.ts_ns
    } else {
        0
    };
    let floor = now.max(written_ns.unwrap_or(0));
    if floor > 0 && i128::from(mtime) + MTIME_SLACK_NS < i128::from(floor) {
        return (given | TIMES_MTIME, true);
    }
    (given, false)
}

/// Places where a file's times are the history an investigator reads: the system's programs,
/// libraries, configuration and boot files. Not /usr/local or /opt, where unpacking a tool's
/// tarball over them (`tar -C /usr/local --strip-components=1`) sets the times of the `bin`,
/// `lib` and `share` that were there before.
const STOMP_PLACES: &[&str] = &[
    "/etc/",
    "/usr/bin/",
    "/usr/sbin/",
    "/usr/lib/",
    "/usr/libexec/",
    "/bin/",
    "/sbin/",
    "/lib/",
    "/lib64/",
    "/boot/",
];

impl Engine {
    /// The utime family given times the caller chose (the kernel records no "now"):
    /// `INDICATOR_REMOVAL` (T1070.006) when the file is one the tree wrote in this run and a
    /// process other than the one that created it set the times (`touch -r /bin/sh F` after
    /// `echo > F`: GNU touch opens F for writing first, which creates nothing), or one of the
    /// places whose times an investigator reads (the system's files, persistence and
    /// credential paths, histories and logs). The process that created or truncated the file
    /// setting its times is how extraction and copies work (tar, cp -p, rsync, cargo's and
    /// npm's unpacking), as is a package transaction: neither is judged, nor a process setting
    /// the times of a directory it made, or made an entry in or below (`mkdir` records and
    /// creating opens: tar, `cp -a` and `rsync -a` stamp the directories they filled once they
    /// are done, tar also those of its archive it only passed through). Learning or not.
    fn on_times(&mut self, r: &Record, p: &Privileged, out: &mut Vec<(String, Alert)>) {
        if p.error.is_some() || self.trusted_tx(r.pid).is_some() {
            return;
        }
        let Some(path) = p.path.as_ref().map(Bytes::as_bytes) else {
            return;
        };
        let written = self.written.by_path(path);
        if written.is_some_and(|w| w.maker == r.pid) || self.filled_dirs.get(path) == Some(&r.pid) {
            return;
        }
        let maker = written.map(|w| w.maker);
        let verdict = self.paths.verdict(path);
        let place = STOMP_PLACES.iter().any(|d| path.starts_with(d.as_bytes()))
            || self.paths.persistence(&verdict).is_some()
            || self.paths.sensitive(&verdict).is_some()
            || self.histories.first(path).is_some()
            || self.logs.matches(path);
        let why = match maker {
            Some(0) => "a file the tree wrote in this run".to_string(),
            Some(m) => format!("a file pid {m} of the tree made in this run"),
            None if place => "a file whose times are the system's history".to_string(),
            None => return,
        };
        let by_other = written.filter(|w| w.rec.pid != r.pid);
        let (chosen, seen) = chosen_times(r, p, by_other.map(|w| w.rec.ts_ns));
        let which = match chosen {
            0 => return,
            TIMES_ATIME => "access time",
            TIMES_MTIME => "modification time",
            _ => "access and modification times",
        };
        let seen = if seen {
            ": the call's times read as now or unchanged in its memory, but the file's \
             modification time is older than that (rewritten under the call)"
        } else {
            ""
        };
        let who = self.who(r);
        let s = format!(
            "{who} set the {which} of {} ({why}) {TIMESTOMP} ({}{seen}): a changed file made \
             to look untouched",
            lossy(path),
            p.syscall
        );
        let key = format!("TIMES {}", self.tilde(path));
        self.indicator_removal(r, key, s, out);
    }

    pub(super) fn on_privileged(
        &mut self,
        r: &Record,
        p: &Privileged,
        out: &mut Vec<(String, Alert)>,
    ) {
        if sets_times(&p.syscall) {
            return self.on_times(r, p, out);
        }
        let Some(effect) = effect(p) else { return };
        let label = self.label_of(r);
        let on = match (&p.path, &p.source) {
            (Some(t), Some(s)) => {
                format!(" on {} (from {})", lossy(t.as_bytes()), lossy(s.as_bytes()))
            }
            (Some(t), None) => format!(" on {}", lossy(t.as_bytes())),
            _ => String::new(),
        };
        let how = match p.error {
            Some(e) => format!("tried {} (refused, errno {e})", p.syscall),
            None => format!("called {}", p.syscall),
        };
        let flags = if p.syscall.contains("chmod") {
            format!(" [mode {:o}]", p.flags)
        } else if p.flags != 0 {
            format!(" [flags {:#x}]", p.flags)
        } else {
            String::new()
        };
        let s = format!("pid {} ({label}) {how}{on}{flags}: it {effect}", r.pid);
        let div = if p.error.is_some() { 0.5 } else { 1.0 };
        let a = self.alert(
            r,
            "PRIVILEGED_CALL",
            "PRIVILEGED_CALL",
            div,
            s,
            vec![r.clone()],
        );
        out.push((format!("PRIVILEGED {} {}", p.syscall, r.pid), a));
    }

    /// An open for writing of a set-user-ID or set-group-ID file (the kernel marks the record
    /// `setid`): one created so (`open(path, O_CREAT, 0o4755)` needs no chmod call), or an
    /// existing one the tree can now write into (a root agent keeping the bit while it puts a
    /// shell's bytes in `/usr/bin/passwd`).
    pub(super) fn on_setid_open(
        &mut self,
        r: &Record,
        f: &FileOpen,
        path: &[u8],
        out: &mut Vec<(String, Alert)>,
    ) {
        let label = self.label_of(r);
        let how = if f.create {
            "creating or writing"
        } else {
            "writing"
        };
        let s = format!(
            "pid {} ({label}) called open on {} for {how}, a set-user-ID or set-group-ID file: \
             what is written runs as its owner or group, whoever runs it",
            r.pid,
            lossy(path)
        );
        let a = self.alert(
            r,
            "PRIVILEGED_CALL",
            "PRIVILEGED_CALL",
            1.0,
            s,
            vec![r.clone()],
        );
        out.push((format!("PRIVILEGED open {}", r.pid), a));
    }
}
