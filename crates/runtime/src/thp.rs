//! No transparent huge pages for proctor itself; the agent keeps what proctor was given.
//!
//! The allocator gives freed pages back to the kernel at once (main.rs, `purge_delay` 0, for
//! the peak RSS), so a burst of records faults memory in again and again; where THP is on
//! (`always`, or `madvise`, which the allocator asks for) each such fault zeroed a whole 2 MiB
//! page: ~16% of proctor's CPU on the agent workload (`clear_page_erms` under
//! `do_huge_pmd_anonymous_page`), and ~15 MB more peak RSS (bench/FINDINGS.md, round 9).
//! The setting is inherited across fork and exec, so `run` puts the agent back as it was.

use std::sync::atomic::{AtomicBool, Ordering};

/// THP was already off for proctor when it started (its parent's choice, for the agent too).
static INHERITED_OFF: AtomicBool = AtomicBool::new(false);

/// Turn THP off for this process (first thing in main; later faults use small pages).
pub fn disable() {
    // SAFETY: prctl with integer arguments only.
    let was = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
    INHERITED_OFF.store(was == 1, Ordering::Relaxed);
    if was == 0 {
        // SAFETY: as above. A kernel without the prctl (or a seccomp filter) refuses it: proctor
        // then runs with the kernel's THP setting, which costs memory and time, not correctness.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

/// In a child before exec: THP as proctor's parent left it. Async-signal-safe (one prctl).
pub fn restore_raw() -> std::io::Result<()> {
    if INHERITED_OFF.load(Ordering::Relaxed) {
        return Ok(());
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) } != 0 {
        let e = std::io::Error::last_os_error();
        // EINVAL: a kernel without the prctl never turned it off.
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    Ok(())
}
