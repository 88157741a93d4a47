//! Alert delivery: JSON lines pushed to a local Unix stream socket without ever blocking the
//! caller.
//!
//! [`AlertSink::send`] serialises the item and puts the line on a bounded queue; a background
//! thread connects to the socket (reconnecting with a backoff of up to 2 s when the receiver is
//! gone), writes each line and keeps the line it could not deliver for the next connection.
//! When the queue is full the line is dropped and counted ([`AlertSink::dropped`]); the caller
//! records that count in the audit log, so no drop is silent.

use serde::Serialize;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Writes to a receiver that stops reading give up after this long (then reconnect).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
    failed_connects: AtomicU64,
    closing: AtomicBool,
}

/// A non-blocking sender of JSON lines to a Unix socket.
pub struct AlertSink {
    tx: Option<SyncSender<Vec<u8>>>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl AlertSink {
    /// Start the delivery thread for `socket_path` with a queue of `capacity` lines (at least 1).
    /// Nothing is connected yet; a missing receiver is not an error.
    pub fn spawn(socket_path: &Path, capacity: usize) -> std::io::Result<AlertSink> {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let counters = Arc::new(Counters::default());
        let path = socket_path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("proctor-alert-sink".into())
            .spawn({
                let counters = counters.clone();
                let path = path.clone();
                move || deliver(&path, &rx, &counters)
            })?;
        Ok(AlertSink {
            tx: Some(tx),
            counters,
            thread: Some(thread),
            path,
        })
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Queue `item` as one JSON line. Never blocks: returns false (and counts a drop) when the
    /// queue is full or the item does not serialise.
    pub fn send<T: Serialize + ?Sized>(&self, item: &T) -> bool {
        let Ok(mut line) = serde_json::to_vec(item) else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        line.push(b'\n');
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(line) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Lines dropped so far (queue full, or not serialisable, or undelivered at close).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Lines delivered to a receiver so far.
    pub fn sent(&self) -> u64 {
        self.counters.sent.load(Ordering::Relaxed)
    }

    /// Stop accepting lines, try to deliver what is queued for up to `timeout`, and return the
    /// final (sent, dropped) counts. Lines still undelivered then count as dropped.
    pub fn close(mut self, timeout: Duration) -> (u64, u64) {
        self.shutdown(timeout);
        (self.sent(), self.dropped())
    }

    fn shutdown(&mut self, timeout: Duration) {
        drop(self.tx.take());
        if let Some(t) = &self.thread {
            if !t.is_finished() {
                // Give a connected receiver the whole timeout; stop retrying a missing one.
                let deadline = Instant::now() + timeout;
                while !t.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        self.counters.closing.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // A thread sleeping in its backoff notices `closing` within MAX_BACKOFF.
            let deadline = Instant::now() + MAX_BACKOFF + Duration::from_millis(100);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
            // else: stuck writing to a stalled receiver; it ends after WRITE_TIMEOUT on its own.
        }
    }
}

impl Drop for AlertSink {
    fn drop(&mut self) {
        self.shutdown(Duration::from_millis(500));
    }
}

fn deliver(path: &Path, rx: &Receiver<Vec<u8>>, counters: &Counters) {
    let mut conn: Option<UnixStream> = None;
    let mut backoff = Duration::from_millis(50);
    let mut pending: Option<Vec<u8>> = None;
    loop {
        let line = match pending.take() {
            Some(l) => l,
            None => match rx.recv() {
                Ok(l) => l,
                Err(_) => return, // closed and drained
            },
        };
        if conn.is_none() {
            match UnixStream::connect(path) {
                Ok(s) => {
                    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
                    conn = Some(s);
                    backoff = Duration::from_millis(50);
                }
                Err(_) => {
                    counters.failed_connects.fetch_add(1, Ordering::Relaxed);
                    if counters.closing.load(Ordering::Relaxed) {
                        // Closing with nobody listening: what is left is dropped, and counted.
                        let mut n = 1;
                        while rx.try_recv().is_ok() {
                            n += 1;
                        }
                        counters.dropped.fetch_add(n, Ordering::Relaxed);
                        return;
                    }
                    // Keep the line; newer ones wait in the bounded queue (or overflow into
                    // counted drops in `send`).
                    pending = Some(line);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        let stream = conn.as_mut().expect("connected above");
        match stream.write_all(&line) {
            Ok(()) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                // The receiver went away (or stalled past the write timeout): reconnect and
                // send this line again. A receiver may see a partial line before EOF; it
                // discards it (the sinkhole does).
                conn = None;
                if counters.closing.load(Ordering::Relaxed) {
                    let mut n = 1;
                    while rx.try_recv().is_ok() {
                        n += 1;
                    }
                    counters.dropped.fetch_add(n, Ordering::Relaxed);
                    return;
                }
                pending = Some(line);
            }
        }
    }
}
