//! The one /proc reader: a process's stat fields (state, parent, start time), comm, status
//! fields, HOME and cwd, children, threads, and the list of every process. Everything here reads
//! files a hostile process controls the content of (its comm may hold spaces, parentheses and
//! newlines), so the parsers take the comm's last `)` as the end of that field and never panic.

use proctor_model::Bytes;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The fields of /proc/PID/stat after the parenthesised comm: `state` is index 0, `ppid` 1,
/// `utime` 11, `stime` 12, `starttime` 19 (fields 3, 4, 14, 15 and 22 of proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ppid: u32,
    /// CPU time of the process's own threads in user and kernel mode (clock ticks).
    pub utime: u64,
    pub stime: u64,
    /// Clock ticks since boot: with the pid, it names one process even when pids are reused.
    pub start_time: u64,
}

impl Stat {
    /// Parse the text of a stat file; None when it is malformed.
    pub fn parse(text: &str) -> Option<Stat> {
        let f = stat_fields(text)?;
        Some(Stat {
            state: f.first()?.chars().next()?,
            ppid: f.get(1)?.parse().ok()?,
            utime: f.get(11)?.parse().ok()?,
            stime: f.get(12)?.parse().ok()?,
            start_time: f.get(19)?.parse().ok()?,
        })
    }
}

/// Fields after the parenthesised comm (which may itself contain spaces and parentheses).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let close = stat.rfind(')')?;
    Some(stat[close + 1..].split_whitespace().collect())
}

/// /proc/PID/stat of a process (or thread), None when it is gone or unreadable.
pub fn stat(pid: u32) -> Option<Stat> {
    Stat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

pub fn ppid(pid: u32) -> Option<u32> {
    stat(pid).map(|s| s.ppid)
}

pub fn state(pid: u32) -> Option<char> {
    stat(pid).map(|s| s.state)
}

/// Start time (clock ticks since boot), 0 when unreadable.
pub fn start_time(pid: u32) -> u64 {
    stat(pid).map_or(0, |s| s.start_time)
}

/// The process exists and is not a zombie.
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && state(pid) != Some('Z')
}

/// /proc/PID/comm without its newline, as bytes (the agent chooses it).
pub fn comm(pid: u32) -> Option<Bytes> {
    let mut c = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
    if c.last() == Some(&b'\n') {
        c.pop();
    }
    Some(Bytes(c))
}

/// One field of /proc/PID/status (e.g. `Uid:`, `CapEff:`), its value trimmed.
pub fn status_field(pid: u32, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    find_field(&text, key)
}

/// The value after `key` on the first line that starts with it, trimmed (status and fdinfo
/// files share this `Key:\tvalue` form).
pub fn find_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
}

/// Direct children of a process (from its main thread's children list).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Every pid currently in /proc.
pub fn pids() -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// Every pid currently in /proc with its parent.
pub fn all_processes() -> Vec<(u32, u32)> {
    pids()
        .into_iter()
        .filter_map(|pid| Some((pid, ppid(pid)?)))
        .collect()
}

/// Thread ids of a process.
pub fn threads(pid: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// HOME and working directory of a running process, for `~` and `$CWD` in policy patterns.
pub fn home_and_cwd(pid: u32) -> (Option<PathBuf>, Option<PathBuf>) {
    let home = std::fs::read(format!("/proc/{pid}/environ"))
        .ok()
        .and_then(|env| {
            env.split(|&b| b == 0)
                .find_map(|kv| kv.strip_prefix(b"HOME="))
                .map(|h| PathBuf::from(std::ffi::OsStr::from_bytes(h)))
        });
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    (home, cwd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_hostile_comm() {
        let stat = "123 (a) b) (c) S 77 123 123 0 -1 4194560 1 0 0 0 13 8 0 0 20 0 1 0 4242 0";
        let s = Stat::parse(stat).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 77);
        assert_eq!((s.utime, s.stime), (13, 8));
        assert_eq!(s.start_time, 4242);
        assert_eq!(Stat::parse("123 (x"), None);
        assert_eq!(Stat::parse(""), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(exists(me));
        assert_eq!(ppid(me), Some(std::os::unix::process::parent_id()));
        assert!(start_time(me) > 0);
        assert!(threads(me).contains(&me));
        assert!(status_field(me, "Uid:").is_some());
        assert!(all_processes().iter().any(|&(p, _)| p == me));
    }
}
