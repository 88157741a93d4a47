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

/// Most symlinks followed in one resolution, as the kernel allows (MAXSYMLINKS).
const MAX_LINKS: u32 = 40;

/// Where a process resolves paths from: its root and its working directory, as proctor sees
/// them (`/proc/PID/root` and `/proc/PID/cwd`). Remembered for a process while it lives, so a
/// path it used just before exiting can still be resolved after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFs {
    pub root: PathBuf,
    pub cwd: PathBuf,
}

/// The root and working directory of `pid` now; None once it has exited (an exiting process
/// drops both before it is reaped, so a zombie has none either).
pub fn task_fs(pid: u32) -> Option<TaskFs> {
    Some(TaskFs {
        root: std::fs::read_link(format!("/proc/{pid}/root")).ok()?,
        cwd: std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?,
    })
}

/// The file a path names as process `pid` would resolve it now: relative to its working
/// directory, absolute paths and absolute link targets from its root, `/proc/self` and
/// `/proc/thread-self` meaning `pid` (not the reader), every symlink followed, and the /proc
/// magic links (`/proc/PID/fd/N`, `/proc/PID/root`, `cwd`, `exe`) replaced by the file they
/// stand for. The last component need not exist (an open that would have created it). None when
/// the process is gone, a link loops, an intermediate component is missing, or a magic link names
/// no file (a pipe, a socket). The process controls every link on the way and may change one at
/// any moment: this says what the path names at the time of the call, no more.
pub fn resolve_as(pid: u32, path: &[u8]) -> Option<PathBuf> {
    resolve_in(pid, &task_fs(pid)?, true, path)
}

/// [`resolve_as`] from the root and working directory `fs` of process `pid`. With `live` false
/// the process has exited since `fs` was read: its own `/proc/PID/root` and `/proc/PID/cwd` are
/// `fs`'s, and what only the live process held (`/proc/PID/fd/N`, `exe`) resolves to nothing,
/// never to whatever process has that pid now.
pub fn resolve_in(pid: u32, fs: &TaskFs, live: bool, path: &[u8]) -> Option<PathBuf> {
    use std::collections::VecDeque;
    use std::os::unix::fs::MetadataExt;
    let root = fs.root.clone();
    let proc_dev = std::fs::metadata("/proc").ok()?.dev();
    let components = |p: &[u8]| -> Vec<Vec<u8>> {
        p.split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let mut todo: VecDeque<Vec<u8>> = components(path).into();
    let mut cur = if path.starts_with(b"/") {
        root.clone()
    } else {
        fs.cwd.clone()
    };
    let (proc_self, thread_self) = (root.join("proc/self"), root.join("proc/thread-self"));
    let own = root.join(format!("proc/{pid}"));
    let (own_root, own_cwd) = (own.join("root"), own.join("cwd"));
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_slice() {
            b"." => continue,
            b".." => {
                if cur != root {
                    cur.pop();
                }
                continue;
            }
            _ => cur.push(std::ffi::OsStr::from_bytes(&c)),
        }
        // These two name whoever reads them: resolved by proctor they would name proctor.
        if cur == proc_self {
            cur = root.join(format!("proc/{pid}"));
            continue;
        }
        if cur == thread_self {
            cur = root.join(format!("proc/{pid}/task/{pid}"));
            continue;
        }
        // The process's own root and working directory are known even after it exited.
        if cur == own_root {
            cur = fs.root.clone();
            continue;
        }
        if cur == own_cwd {
            cur = fs.cwd.clone();
            continue;
        }
        if !live && cur.starts_with(&own) {
            if cur == own {
                continue; // gone, or another process's now: only root and cwd are known
            }
            return None;
        }
        let meta = match std::fs::symlink_metadata(&cur) {
            Ok(m) => m,
            Err(_) if todo.is_empty() => return Some(cur),
            Err(_) => return None,
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return None;
        }
        let target = std::fs::read_link(&cur).ok()?;
        let target = target.as_os_str().as_bytes();
        if meta.dev() == proc_dev && target.starts_with(b"/") {
            // A magic link: its text is the file's path as the reader (proctor) sees it.
            cur = PathBuf::from(std::ffi::OsStr::from_bytes(target));
            continue;
        }
        if meta.dev() == proc_dev && target.contains(&b':') {
            return None; // pipe:[N], socket:[N], anon_inode:...: no file
        }
        if target.starts_with(b"/") {
            cur = root.clone();
        } else {
            cur.pop();
        }
        for c in components(target).into_iter().rev() {
            todo.push_front(c);
        }
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_links_proc_self_and_fds_as_the_process_would() {
        use std::os::unix::io::AsRawFd;
        let me = std::process::id();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        std::fs::create_dir(dir.join("secret")).unwrap();
        let target = dir.join("secret/creds");
        std::fs::write(&target, "x").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("abs")).unwrap();
        std::os::unix::fs::symlink("secret/../secret/creds", dir.join("rel")).unwrap();
        std::os::unix::fs::symlink("abs", dir.join("chain")).unwrap();
        std::os::unix::fs::symlink("loop", dir.join("loop")).unwrap();
        let f = std::fs::File::open(&target).unwrap();
        std::os::unix::fs::symlink(
            format!("/proc/self/fd/{}", f.as_raw_fd()),
            dir.join("via-fd"),
        )
        .unwrap();
        let at = |p: &Path| resolve_as(me, p.as_os_str().as_bytes());
        for p in [
            dir.join("abs"),
            dir.join("rel"),
            dir.join("chain"),
            dir.join("via-fd"),
            dir.join("secret/./../abs"),
            Path::new("/proc/self/root").join(target.strip_prefix("/").unwrap()),
            PathBuf::from(format!("/proc/thread-self/fd/{}", f.as_raw_fd())),
            PathBuf::from(format!("/proc/{me}/fd/{}", f.as_raw_fd())),
        ] {
            assert_eq!(at(&p).as_deref(), Some(target.as_path()), "{}", p.display());
        }
        // Relative to the process's working directory.
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(resolve_as(me, b"src/../y").unwrap(), cwd.join("y"));
        // A missing leaf is a file the open would have created; a missing directory is not.
        assert_eq!(at(&dir.join("new")), Some(dir.join("new")));
        assert_eq!(at(&dir.join("none/new")), None);
        assert_eq!(at(&dir.join("loop")), None);
        assert_eq!(resolve_as(u32::MAX, b"/etc"), None);
        // A process that has exited, resolved from its remembered root and working directory:
        // links and its own root still resolve, its descriptors no longer do.
        let gone = u32::MAX - 1;
        let fs = TaskFs {
            root: PathBuf::from("/"),
            cwd: dir.clone(),
        };
        let remembered = |p: &str| resolve_in(gone, &fs, false, p.as_bytes());
        assert_eq!(remembered("chain").as_deref(), Some(target.as_path()));
        assert_eq!(
            remembered(&format!("/proc/{gone}/root{}", target.display())).as_deref(),
            Some(target.as_path())
        );
        assert_eq!(
            remembered(&format!("/proc/{gone}/cwd/rel")).as_deref(),
            Some(target.as_path())
        );
        assert_eq!(remembered(&format!("/proc/{gone}/fd/3")), None);
        // Its pid reused by another process (here: this one) names nothing of the exited one.
        let fs_me = task_fs(me).unwrap();
        assert_eq!(
            resolve_in(
                me,
                &fs_me,
                false,
                format!("/proc/{me}/fd/{}", f.as_raw_fd()).as_bytes()
            ),
            None
        );
    }

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
