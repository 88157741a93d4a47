//! From a record's cgroup id (read in the kernel with it) to the container it names. The path
//! comes from the kernel: the cgroup id is the kernfs file handle of the cgroup's directory, so
//! `open_by_handle_at` on the cgroup2 mount opens that directory whatever became of the process
//! (it may have exited before its record is read), and its `/proc/self/fd` link is the path. No
//! byte of it is trusted: [`proctor_model::Container::from_cgroup_path`] keeps only a runtime
//! name, a hex id and a UUID. Results are cached per cgroup id (ids are never reused while the
//! system runs).

use proctor_model::Container;
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// kernfs's file handle type (`FILEID_KERNFS`): the handle is the 64-bit cgroup id.
const FILEID_KERNFS: i32 = 0xfe;
/// Entries kept before the cache starts over (a host rarely has this many cgroups alive).
const CACHE_MAX: usize = 1 << 16;

/// `struct file_handle` with room for a kernfs handle (libc's has a zero-length array).
#[repr(C)]
struct KernfsHandle {
    handle_bytes: u32,
    handle_type: i32,
    id: u64,
}

/// The cgroup2 mount, opened once.
struct Mount {
    fd: OwnedFd,
    path: PathBuf,
}

/// Container lookups by cgroup id, cached.
#[derive(Default)]
pub struct Containers {
    mount: Option<Option<Mount>>,
    cache: HashMap<u64, Option<Container>>,
}

impl Containers {
    /// The container of cgroup `id` (a process `pid` of it, for the fallback through /proc).
    pub fn of(&mut self, id: u64, pid: u32) -> Option<Container> {
        if let Some(c) = self.cache.get(&id) {
            return *c;
        }
        let mount = self.mount.get_or_insert_with(open_mount).as_ref()?;
        let path = path_of_id(mount, id).or_else(|| path_from_proc(mount, id, pid));
        let c = path.and_then(|p| Container::from_cgroup_path(p.as_os_str().as_bytes()));
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(id, c);
        c
    }
}

fn open_mount() -> Option<Mount> {
    let path = PathBuf::from(crate::features::mount_of("cgroup2")?);
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a valid C string; the result is checked.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd was just opened and is owned here alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Some(Mount { fd, path })
}

/// The cgroup's path relative to the mount, from the kernel (needs CAP_DAC_READ_SEARCH).
fn path_of_id(m: &Mount, id: u64) -> Option<PathBuf> {
    let mut h = KernfsHandle {
        handle_bytes: 8,
        handle_type: FILEID_KERNFS,
        id,
    };
    // SAFETY: `h` has the layout of `struct file_handle` with 8 handle bytes; the result is
    // checked.
    let fd = unsafe {
        libc::open_by_handle_at(
            m.fd.as_raw_fd(),
            std::ptr::from_mut(&mut h).cast::<libc::file_handle>(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd was just opened and is owned here alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let full = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    Some(relative(&m.path, full))
}

/// Where `open_by_handle_at` is refused: the process's own `0::` line, taken only if that
/// directory really is cgroup `id` (a cgroup name may hold a newline and forge a line).
fn path_from_proc(m: &Mount, id: u64, pid: u32) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let text = std::fs::read(format!("/proc/{pid}/cgroup")).ok()?;
    text.split(|&b| b == b'\n').find_map(|line| {
        let p = line.strip_prefix(b"0::")?;
        let p = Path::new(std::ffi::OsStr::from_bytes(p));
        let dir = m.path.join(p.strip_prefix("/").unwrap_or(p));
        (std::fs::metadata(&dir).ok()?.ino() == id).then(|| p.to_path_buf())
    })
}

fn relative(mount: &Path, full: PathBuf) -> PathBuf {
    match full.strip_prefix(mount) {
        Ok(r) => Path::new("/").join(r),
        Err(_) => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our own cgroup, looked up by its id, is the path /proc says (needs root for the handle;
    /// the /proc fallback works for anyone).
    #[test]
    fn own_cgroup_by_id() {
        use std::os::unix::fs::MetadataExt;
        let Some(m) = open_mount() else {
            eprintln!("skipped: no cgroup2 mount");
            return;
        };
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let rel = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("a 0:: line")
            .to_string();
        let id = std::fs::metadata(m.path.join(rel.trim_start_matches('/')))
            .unwrap()
            .ino();
        let me = std::process::id();
        assert_eq!(
            path_from_proc(&m, id, me),
            Some(PathBuf::from(&rel)),
            "the /proc fallback"
        );
        assert_eq!(path_from_proc(&m, id + 1_000_000, me), None, "another id");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(path_of_id(&m, id), Some(PathBuf::from(&rel)), "by handle");
        } else {
            eprintln!("skipped the by-handle lookup: not root");
        }
        assert_eq!(path_of_id(&m, u64::MAX), None);
        assert_eq!(
            Containers::default().of(id, me),
            Container::from_cgroup_path(rel.as_bytes())
        );
    }
}
