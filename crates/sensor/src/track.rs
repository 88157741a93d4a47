//! The tracked set's per-slot counts (`track_count` in bpf/lib/common.h), mapped into proctor:
//! every hot program rejects a thread whose slot counts 0 before any hash lookup, so whoever
//! inserts a thread id into `tracked` must add to its slot first, userspace included.

use crate::SensorError;
use proctor_probes::wire::PR_TRACK_SLOTS;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

const BYTES: usize = PR_TRACK_SLOTS as usize * size_of::<u32>();

/// The map's value, mapped shared (BPF_F_MMAPABLE): writes are the kernel's counters.
pub(crate) struct TrackCounts {
    base: NonNull<AtomicU32>,
}

impl TrackCounts {
    pub(crate) fn map(fd: BorrowedFd<'_>) -> Result<TrackCounts, SensorError> {
        // SAFETY: a fresh shared mapping of a mmapable BPF array map of exactly BYTES bytes
        // (one entry); the kernel keeps the map alive while the mapping exists.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(SensorError::Map {
                map: "track_count",
                source: libbpf_rs::Error::from(std::io::Error::last_os_error()),
            });
        }
        Ok(TrackCounts {
            base: NonNull::new(p.cast()).expect("mmap returned a non-null address"),
        })
    }

    fn handle(&self, map_fd: RawFd) -> TrackHandle {
        TrackHandle {
            map_fd,
            counts: self.base.as_ptr() as usize,
        }
    }
}

impl Drop for TrackCounts {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.base.as_ptr().cast(), BYTES) };
    }
}

/// What inserting a thread id into the tracked set needs: the map's fd and the counts' address.
/// Plain data, so a forked child can use it before it execs (the mapping is inherited).
#[derive(Clone, Copy, Debug)]
pub struct TrackHandle {
    pub(crate) map_fd: RawFd,
    counts: usize,
}

impl TrackHandle {
    /// Count `tid` in its slot: before the insertion, as the kernel does. Async-signal-safe.
    pub(crate) fn count(&self, tid: u32) {
        let slot = (tid % PR_TRACK_SLOTS) as usize;
        // SAFETY: counts is the base of a live mapping of PR_TRACK_SLOTS u32s (the Sensor that
        // made this handle, or the parent's mapping a forked child inherited); slot is in range,
        // and the kernel only touches the words atomically too.
        let n = unsafe { &*(self.counts as *const AtomicU32).add(slot) };
        n.fetch_add(1, Ordering::SeqCst);
    }
}

impl crate::Sensor {
    /// What a forked child needs to add itself to the tracked set before it execs, with
    /// [`crate::track_self_raw`].
    pub fn track_handle(&self) -> TrackHandle {
        self.track_counts.handle(self.tracked_map_fd())
    }
}
