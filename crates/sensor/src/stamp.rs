//! Answers about a file's content, kept by what identifies the content without reading it.
//!
//! proctor reads executables at exec for what they are (their ELF build-id, the TLS library
//! linked in): an agent's shell runs `bash` dozens of times a session and Claude Code's
//! executable is 400 MB, so each answer is kept. Kept by device and inode alone, an answer
//! outlives the content: run a harmless file, overwrite it in place with a copy of `bash`
//! (`cat /bin/bash > x`, the same inode) and run it again. A [`FileStamp`] adds the size and
//! the file's times, and is trusted only once the file has settled.

use crate::offloop;
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
    pub(crate) dev: u64,
    pub(crate) ino: u64,
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

    /// The stamp of the file `(dev, ino)` whose size and times the kernel gave (an exec
    /// record's [`InodeTimes`](proctor_model::InodeTimes)).
    pub fn from_kernel(dev: u64, ino: u64, t: proctor_model::InodeTimes) -> FileStamp {
        FileStamp {
            dev,
            ino,
            size: t.size,
            mtime: t.mtime,
            ctime: t.ctime,
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
///
/// What is at an agent's path is the agent's choice: a named pipe whose open would wait for a
/// writer forever, or a device whose open does something. So the path is first only looked up
/// (`O_PATH`: no file's open runs), and the file opened for reading through that descriptor
/// once it is known to be a regular file: the same inode, whatever the path holds by then.
pub fn open_expected(
    path: &Path,
    expect: Option<(u64, u64)>,
) -> Option<(std::fs::File, FileStamp)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let found = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)
        .ok()?;
    let meta = found.metadata().ok()?;
    if expect.is_some_and(|id| id != (meta.dev(), meta.ino())) || !meta.is_file() {
        return None;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(format!("/proc/self/fd/{}", found.as_raw_fd()))
        .ok()?;
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

impl<V: Clone + Send + 'static> ContentCache<V> {
    pub fn new(max: usize) -> ContentCache<V> {
        ContentCache {
            known: HashMap::new(),
            max,
        }
    }

    /// What `read` says of the file at `path` (see [`open_expected`]), answered from the cache
    /// when the file's stamp is known and settled. None when the file is not there, not the
    /// expected one, or `read` says nothing, or when the file system did not answer within
    /// [`offloop::DEADLINE`] (the calls on the file run off the loop: see [`offloop`]).
    pub fn get<R>(&mut self, path: &Path, expect: Option<(u64, u64)>, read: R) -> Option<V>
    where
        R: FnOnce(std::fs::File) -> Option<V> + Send + 'static,
    {
        // A stat first: a known, settled stamp is answered without opening the file (an open,
        // an fstat and a close per exec were most of the system calls proctor made on an
        // agent's workload). What is answered is what an open would have seen at this moment.
        let p = path.to_path_buf();
        let meta = offloop::within(move || std::fs::metadata(p).ok())??;
        if expect.is_some_and(|id| id != (meta.dev(), meta.ino())) || !meta.is_file() {
            return None;
        }
        if let Some(v) = self.known.get(&FileStamp::of(&meta)) {
            return Some(v.clone());
        }
        let p = path.to_path_buf();
        let (stamp, v) = offloop::within(move || {
            let (file, stamp) = open_expected(&p, expect)?;
            Some((stamp, read(file)))
        })??;
        if let Some(v) = self.known.get(&stamp) {
            return Some(v.clone());
        }
        let v = v?;
        self.keep(stamp, &v);
        Some(v)
    }

    /// [`get`](Self::get) of the first of `paths` that answers (see [`executed`]). With the
    /// stamp the kernel took at the exec (`at_exec`), a known answer costs no system call, and
    /// an answer is read only from a file that still has that stamp: an executable rewritten
    /// in place once its process ended is not taken for what ran.
    pub fn first<R>(
        &mut self,
        paths: &[PathBuf],
        expect: Option<(u64, u64)>,
        at_exec: Option<proctor_model::InodeTimes>,
        read: R,
    ) -> Option<V>
    where
        R: Fn(std::fs::File) -> Option<V> + Send + Clone + 'static,
    {
        let (Some((dev, ino)), Some(t)) = (expect, at_exec) else {
            return paths.iter().find_map(|p| self.get(p, expect, read.clone()));
        };
        // Only settled stamps are kept, so an equal one names the same content.
        let stamp = FileStamp::from_kernel(dev, ino, t);
        if let Some(v) = self.known.get(&stamp) {
            return Some(v.clone());
        }
        let paths = paths.to_vec();
        let v = offloop::within(move || {
            paths.iter().find_map(|p| {
                let (file, now) = open_expected(p, expect)?;
                (now == stamp).then(|| read(file))?
            })
        })??;
        self.keep(stamp, &v);
        Some(v)
    }

    /// Keep `v` as the answer for `stamp` once the stamp has settled.
    fn keep(&mut self, stamp: FileStamp, v: &V) {
        if !stamp.settled() {
            return;
        }
        if self.known.len() >= self.max {
            self.known.clear();
        }
        self.known.insert(stamp, v.clone());
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

    /// A named pipe or a device where a file was expected is refused at once, not opened (a
    /// pipe's open would wait for a writer).
    #[test]
    fn what_is_not_a_regular_file_is_refused_without_opening_it() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("p");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pipe = open_expected(&fifo, None).is_none();
            let dev = open_expected(Path::new("/dev/null"), None).is_none();
            let file = open_expected(Path::new("/bin/true"), None).is_some();
            tx.send((pipe, dev, file)).unwrap();
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("open_expected is still waiting on the named pipe");
        assert_eq!(got, (true, true, true));
    }

    #[test]
    fn settled_files_are_answered_once_and_fresh_ones_every_time() {
        use std::sync::atomic::{AtomicU32, Ordering};
        static READS: AtomicU32 = AtomicU32::new(0);
        let mut cache = ContentCache::new(4);
        let mut reads = 0;
        let size = |c: &mut ContentCache<u64>, p: &Path, reads: &mut u32| {
            let v = c.get(p, None, |f| {
                READS.fetch_add(1, Ordering::Relaxed);
                Some(f.metadata().ok()?.len())
            });
            *reads = READS.load(Ordering::Relaxed);
            v
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

    /// What the kernel would report of `m` at an exec.
    fn times(m: &std::fs::Metadata) -> proctor_model::InodeTimes {
        proctor_model::InodeTimes {
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    #[test]
    fn the_kernels_stamp_answers_without_the_file_and_a_rewritten_file_is_not_what_ran() {
        let mut cache = ContentCache::new(4);
        let t = Path::new("/bin/true");
        let m = std::fs::metadata(t).unwrap();
        let id = Some((m.dev(), m.ino()));
        let reads = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let len = |c: &mut ContentCache<u64>, paths: &[PathBuf], at| {
            let reads = reads.clone();
            c.first(paths, id, at, move |f| {
                reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Some(f.metadata().ok()?.len())
            })
        };
        let paths = [PathBuf::from("/nonexistent"), t.to_path_buf()];
        assert_eq!(len(&mut cache, &paths, Some(times(&m))), Some(m.len()));
        // Known now: no file is looked at, not even one that is gone.
        let gone = [PathBuf::from("/nonexistent")];
        assert_eq!(len(&mut cache, &gone, Some(times(&m))), Some(m.len()));
        // What ran had other times or another size: the file there now is not it.
        let mut other = times(&m);
        other.ctime.1 = (other.ctime.1 + 1) % 1_000_000_000;
        assert_eq!(len(&mut cache, &paths, Some(other)), None);
        other = times(&m);
        other.size += 1;
        assert_eq!(len(&mut cache, &paths, Some(other)), None);
        // No stamp from the kernel: the file's own, as before.
        assert_eq!(len(&mut cache, &paths, None), Some(m.len()));
        let reads = reads.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!((reads, cache.len()), (1, 1));
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
