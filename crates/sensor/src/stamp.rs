//! Answers about a file's content, kept by what identifies the content without reading it.
//!
//! proctor reads executables at exec for what they are (their ELF build-id, the TLS library
//! linked in): an agent's shell runs `bash` dozens of times a session and Claude Code's
//! executable is 400 MB, so each answer is kept. Kept by device and inode alone, an answer
//! outlives the content: run a harmless file, overwrite it in place with a copy of `bash`
//! (`cat /bin/bash > x`, the same inode) and run it again. A [`FileStamp`] adds the size and
//! the file's times, and is trusted only once the file has settled.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What identifies a file's content without reading it: its identity, size, and the times its
/// data (mtime) and its inode (ctime) last changed. A write moves the ctime to the clock's now
/// and no call sets it back; but the clock of file times can be as coarse as a scheduler tick,
/// so two writes in one tick can leave one ctime. A stamp is therefore trusted only once its
/// ctime is [`SETTLED`] in the past: a later write gives a later ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    pub fn of(m: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// Whether the inode last changed [`SETTLED`] or longer ago (by the wall clock, the file
    /// times' clock).
    pub fn settled(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.ctime.0.saturating_add(SETTLED) < now
    }
}

/// Seconds after its last change before a file's stamp is trusted to name its content (a
/// file's times are a tick apart at the coarsest).
pub const SETTLED: i64 = 2;

/// The file at `path` and its stamp, if it is a regular file with the identity `expect` asks
/// (the (st_dev, inode) an exec record names: the path may have been replaced since).
pub fn open_expected(
    path: &Path,
    expect: Option<(u64, u64)>,
) -> Option<(std::fs::File, FileStamp)> {
    let file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if expect.is_some_and(|id| id != (meta.dev(), meta.ino())) || !meta.is_file() {
        return None;
    }
    Some((file, FileStamp::of(&meta)))
}

/// Where to read the file a process executed: its `/proc/PID/exe` (the very file, in any mount
/// namespace, while the process lives), then the path the kernel resolved at the exec (once the
/// process is gone). Either may by now be another file: read them with the exec record's
/// (st_dev, inode) as the identity to expect ([`ContentCache::first`]).
pub fn executed(pid: u32, filename: &[u8]) -> [PathBuf; 2] {
    use std::os::unix::ffi::OsStrExt;
    [
        PathBuf::from(format!("/proc/{pid}/exe")),
        PathBuf::from(std::ffi::OsStr::from_bytes(filename)),
    ]
}

/// Answers about files' content by [`FileStamp`], bounded: an agent making ever new
/// executables makes the cache start over, not grow.
pub struct ContentCache<V> {
    known: HashMap<FileStamp, V>,
    max: usize,
}

impl<V: Clone> ContentCache<V> {
    pub fn new(max: usize) -> ContentCache<V> {
        ContentCache {
            known: HashMap::new(),
            max,
        }
    }

    /// What `read` says of the file at `path` (see [`open_expected`]), answered from the cache
    /// when the file's stamp is known and settled. None when the file is not there, not the
    /// expected one, or `read` says nothing.
    pub fn get(
        &mut self,
        path: &Path,
        expect: Option<(u64, u64)>,
        read: impl FnOnce(std::fs::File) -> Option<V>,
    ) -> Option<V> {
        // A stat first: a known, settled stamp is answered without opening the file (an open,
        // an fstat and a close per exec were most of the system calls proctor made on an
        // agent's workload). What is answered is what an open would have seen at this moment.
        let meta = std::fs::metadata(path).ok()?;
        if expect.is_some_and(|id| id != (meta.dev(), meta.ino())) || !meta.is_file() {
            return None;
        }
        if let Some(v) = self.known.get(&FileStamp::of(&meta)) {
            return Some(v.clone());
        }
        let (file, stamp) = open_expected(path, expect)?;
        if let Some(v) = self.known.get(&stamp) {
            return Some(v.clone());
        }
        let v = read(file)?;
        if !stamp.settled() {
            return Some(v);
        }
        if self.known.len() >= self.max {
            self.known.clear();
        }
        self.known.insert(stamp, v.clone());
        Some(v)
    }

    /// [`get`](Self::get) of the first of `paths` that answers (see [`executed`]).
    pub fn first(
        &mut self,
        paths: &[PathBuf],
        expect: Option<(u64, u64)>,
        read: impl Fn(std::fs::File) -> Option<V>,
    ) -> Option<V> {
        paths.iter().find_map(|p| self.get(p, expect, &read))
    }

    /// How many answers are kept.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_files_are_answered_once_and_fresh_ones_every_time() {
        let mut cache = ContentCache::new(4);
        let mut reads = 0;
        let size = |c: &mut ContentCache<u64>, p: &Path, reads: &mut u32| {
            c.get(p, None, |f| {
                *reads += 1;
                Some(f.metadata().ok()?.len())
            })
        };
        let t = Path::new("/bin/true");
        let want = std::fs::metadata(t).unwrap().len();
        assert_eq!(size(&mut cache, t, &mut reads), Some(want));
        assert_eq!(size(&mut cache, t, &mut reads), Some(want));
        assert_eq!((reads, cache.len()), (1, 1));
        // Written just now: read at every call, even with the same stamp.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"one").unwrap();
        assert_eq!(size(&mut cache, &f, &mut reads), Some(3));
        assert_eq!(size(&mut cache, &f, &mut reads), Some(3));
        assert_eq!((reads, cache.len()), (3, 1));
        // Not the expected file, or not a regular file: nothing is said, nothing read.
        assert_eq!(cache.get(&f, Some((0, 0)), |_| Some(0)), None);
        assert_eq!(cache.get(dir.path(), None, |_| Some(0)), None);
        assert_eq!(cache.get(&dir.path().join("gone"), None, |_| Some(0)), None);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let mut cache = ContentCache::new(2);
        for p in ["/bin/true", "/bin/false", "/bin/sh"] {
            assert!(cache.get(Path::new(p), None, |_| Some(())).is_some());
        }
        assert_eq!(cache.len(), 1);
    }
}
