//! File-system calls on the agent's paths, made off proctor's loop with a deadline.
//!
//! What proctor reads of the agent's files (an executable's build-id and TLS library, a file's
//! times after a `utimensat`) lives where the agent chose. On a FUSE file system the agent
//! serves, a lookup, a stat, an open or a read waits for the agent's answer, which may never
//! come: made on the loop, that call would stop proctor reading the kernel's records for good.
//! Such calls run on a small pool of worker threads here; the loop waits for an answer at most
//! [`DEADLINE`] and goes on without it. A worker held past the deadline stays held (the call is
//! the kernel's to end); once [`MAX_WORKERS`] are held, calls are refused at once. Both are
//! counted ([`stalls`]), and the monitor alerts on them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Mutex;
use std::time::Duration;

/// How long the loop waits for a call whose worker sleeps (a file system that does not answer
/// holds it asleep, interruptibly): this much once per worker it holds.
pub const DEADLINE: Duration = Duration::from_secs(1);

/// How long the loop waits at most for a call whose worker still works or waits for a disk. A
/// read of a 400 MB agent executable's symbols takes ~90 ms of CPU, and several seconds of wall
/// time on a 2-core machine at load 30 (a fresh-machine check's): cut at one second, such reads
/// made false alerts there.
pub const BUSY_DEADLINE: Duration = Duration::from_secs(30);

/// Workers at most: held ones included.
pub const MAX_WORKERS: usize = 4;

/// A call, given what frees its worker: it frees it before it answers, so a caller that has the
/// answer finds the worker free again (freed after, a quick next call found none and counted a
/// refusal that was not one).
type Job = Box<dyn FnOnce(&dyn Fn()) + Send>;

/// Workers and their counts.
pub struct Pool {
    idle: Mutex<Vec<Sender<Job>>>,
    workers: AtomicUsize,
    late: AtomicU64,
    refused: AtomicU64,
    max: usize,
    deadline: Duration,
    busy_deadline: Duration,
}

/// The process's pool.
static POOL: Pool = Pool::new(MAX_WORKERS, DEADLINE, BUSY_DEADLINE);

/// Calls that missed the deadline, and calls refused because every worker was held, so far.
pub fn stalls() -> (u64, u64) {
    POOL.stalls()
}

/// `f`'s answer, if it comes within [`DEADLINE`]; None if it does not, or if no worker is free.
pub fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    POOL.within(f)
}

impl Pool {
    pub const fn new(max: usize, deadline: Duration, busy_deadline: Duration) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            workers: AtomicUsize::new(0),
            late: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            max,
            deadline,
            busy_deadline,
        }
    }

    pub fn stalls(&self) -> (u64, u64) {
        (
            self.late.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }

    pub fn within<T: Send + 'static>(
        &'static self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let tid = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
        let worker_tid = tid.clone();
        let mut job: Job = Box::new(move |free: &dyn Fn()| {
            // SAFETY: gettid has no preconditions.
            worker_tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
            let v = f();
            free();
            let _ = tx.send(v);
        });
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let worker = match idle {
                Some(w) => w,
                None => match self.spawn() {
                    Some(w) => w,
                    None => {
                        self.refused.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                },
            };
            match worker.send(job) {
                Ok(()) => break,
                // A worker that is gone: try another.
                Err(mpsc::SendError(j)) => job = j,
            }
        }
        let started = std::time::Instant::now();
        loop {
            match rx.recv_timeout(self.deadline) {
                Ok(v) => return Some(v),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Not started yet (a loaded machine), still computing or reading a disk:
                    // slow, not held. Asleep: held.
                    let tid = tid.load(Ordering::Relaxed);
                    let busy =
                        tid == 0 || matches!(crate::procfs::state(tid as u32), Some('R' | 'D'));
                    if !busy || started.elapsed() >= self.busy_deadline {
                        self.late.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                }
            }
        }
    }

    /// A new worker, unless `max` exist.
    fn spawn(&'static self) -> Option<Sender<Job>> {
        if self.workers.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.workers.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let mine = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("proctor-fs".into())
            .spawn(move || {
                for job in rx {
                    let freed = std::cell::Cell::new(false);
                    let free = || {
                        if !freed.replace(true) {
                            self.idle
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(mine.clone());
                        }
                    };
                    // A job that panics answers nothing (its caller goes on) and keeps the
                    // worker. A held call never returns here.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&free)));
                    free();
                }
            });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                self.workers.fetch_sub(1, Ordering::Relaxed);
                tracing::warn!("no thread for file-system calls: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers come back; a call that never ends holds its worker and costs the caller the
    /// deadline, not forever; with every worker held, calls are refused at once; released
    /// workers answer again.
    #[test]
    fn a_call_that_never_returns_costs_the_deadline_and_then_nothing() {
        let deadline = Duration::from_millis(200);
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(2, deadline, deadline * 20)));
        // Busy past the deadline: waited for, up to the busy deadline.
        let spin = std::time::Instant::now();
        assert_eq!(
            pool.within(move || {
                while spin.elapsed() < deadline * 2 {
                    std::hint::spin_loop();
                }
                7
            }),
            Some(7)
        );
        assert_eq!(pool.within(|| 6 * 7), Some(42));
        let mut held = Vec::new();
        for _ in 0..2 {
            let (tx, rx) = mpsc::channel::<()>();
            held.push(tx);
            let t = std::time::Instant::now();
            assert_eq!(pool.within(move || rx.recv().is_ok()), None);
            assert!(t.elapsed() >= deadline);
        }
        let t = std::time::Instant::now();
        assert_eq!(pool.within(|| 1), None);
        assert!(t.elapsed() < deadline / 2);
        assert_eq!(pool.stalls(), (2, 1));
        for tx in &held {
            tx.send(()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(pool.within(|| 2), Some(2));
        assert_eq!(pool.within(|| 3), Some(3));
    }

    /// A caller that has its answer finds the worker free: quick calls in a row on one worker
    /// are never refused (no false "got no answer").
    #[test]
    fn a_worker_is_free_again_when_its_answer_arrives() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(
            1,
            Duration::from_secs(5),
            Duration::from_secs(5),
        )));
        for i in 0..20_000u32 {
            assert_eq!(pool.within(move || i), Some(i));
        }
        assert_eq!(pool.stalls(), (0, 0));
    }
}
