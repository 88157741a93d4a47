//! fsync off the hot path.
//!
//! Durability costs one fsync per file, milliseconds on a busy disk (50 ms and more at p99 on
//! our VM disks under load). Done inline, it stalled the monitor: alerts queued behind it and
//! the kernel's ring buffer filled. A [`Syncer`] owns a thread that fsyncs the files handed to
//! it, in order; dropping it waits until everything handed over is on disk, so an orderly exit
//! is as durable as before.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;

pub struct Syncer {
    tx: Option<Sender<(File, PathBuf)>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    pub fn new(name: &str) -> Syncer {
        let (tx, rx) = channel::<(File, PathBuf)>();
        let thread = std::thread::Builder::new()
            .name(format!("fsync-{name}"))
            .spawn(move || {
                for (f, path) in rx {
                    if let Err(e) = f.sync_all() {
                        // Nothing else can be done from here; the record is written, only its
                        // durability is in doubt, and the operator must hear of it.
                        tracing::error!("fsync {}: {e}", path.display());
                    }
                }
            })
            .ok();
        Syncer {
            tx: thread.as_ref().map(|_| tx),
            thread,
        }
    }

    /// fsync `f` soon; if no thread could be started, now.
    pub fn sync(&self, f: File, path: PathBuf) {
        match &self.tx {
            Some(tx) => {
                if let Err(std::sync::mpsc::SendError((f, path))) = tx.send((f, path)) {
                    sync_now(&f, &path);
                }
            }
            None => sync_now(&f, &path),
        }
    }
}

fn sync_now(f: &File, path: &std::path::Path) {
    if let Err(e) = f.sync_all() {
        tracing::error!("fsync {}: {e}", path.display());
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
