//! One bounded queue and one worker thread per output. The caller's side never blocks: a full
//! queue drops the item and counts it. The worker owns the transport and its retries; what it
//! finally cannot deliver is counted as failed. The counters are what the run writes into its
//! records and what a metrics endpoint exports.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Counters of one output, shared by its queue and its worker.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    /// Taken into the queue.
    pub accepted: AtomicU64,
    pub sent: AtomicU64,
    /// The queue was full (or the output already closed).
    pub dropped: AtomicU64,
    /// Taken by the worker, given up after its retries.
    pub failed: AtomicU64,
    /// Set when the run closes: workers stop retrying.
    pub closing: AtomicBool,
}

impl Counters {
    /// (sent, dropped, failed, pending): pending were accepted and are neither delivered nor
    /// given up yet (after [`Queue::close`]: never will be).
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        // `accepted` last: a concurrent delivery can only make pending look smaller.
        let sent = self.sent.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let accepted = self.accepted.load(Ordering::Relaxed);
        (
            sent,
            self.dropped.load(Ordering::Relaxed),
            failed,
            accepted.saturating_sub(sent + failed),
        )
    }

    /// Sleep `d`, cut short when the output closes; false when closing.
    pub fn pause(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.closing.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10).min(end - Instant::now()));
        }
        !self.closing.load(Ordering::Relaxed)
    }
}

/// A transport: delivers one item, retrying as it sees fit (checking [`Counters::pause`]).
pub(crate) trait Deliver<T>: Send + 'static {
    fn deliver(&mut self, item: &T, counters: &Counters) -> Result<(), String>;
}

pub(crate) struct Queue<T> {
    name: String,
    tx: Option<SyncSender<T>>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Queue<T> {
    pub fn spawn<D: Deliver<T>>(name: &str, capacity: usize, mut d: D) -> std::io::Result<Self> {
        let (tx, rx): (SyncSender<T>, Receiver<T>) = mpsc::sync_channel(capacity.max(1));
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("proctor-out-{name}"))
            .spawn(move || {
                let mut warned = false;
                for item in rx {
                    match d.deliver(&item, &c) {
                        Ok(()) => {
                            c.sent.fetch_add(1, Ordering::Relaxed);
                            warned = false;
                        }
                        Err(e) => {
                            c.failed.fetch_add(1, Ordering::Relaxed);
                            // One line per outage, not one per item.
                            if !warned {
                                tracing::warn!("output {label}: {e}");
                                warned = true;
                            }
                        }
                    }
                }
            })?;
        Ok(Queue {
            name: name.to_string(),
            tx: Some(tx),
            counters,
            thread: Some(thread),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queue `item`; never blocks. False (and one more drop) when the queue is full.
    pub fn push(&self, item: T) -> bool {
        let ok = match &self.tx {
            Some(tx) => match tx.try_send(item) {
                Ok(()) => {
                    self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        if !ok {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// The counters, to be read from another thread (a metrics endpoint) while the queue runs.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stop taking items, let the worker deliver the queue for up to `timeout`, then tell it to
    /// stop retrying (the rest fails fast). A worker stuck in a transport call past that is
    /// left to finish on its own (its transport has its own timeouts); what it holds shows as
    /// pending in [`Queue::counts`].
    pub fn close(&mut self, timeout: Duration) {
        let Some(tx) = self.tx.take() else { return };
        drop(tx);
        let deadline = Instant::now() + timeout;
        if let Some(t) = &self.thread {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.counters.closing.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // A worker in a retry pause sees `closing` within 10 ms and fails the rest fast.
            let grace = Instant::now() + Duration::from_millis(500);
            while !t.is_finished() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        self.tx.take();
        self.counters.closing.store(true, Ordering::Relaxed);
    }
}
