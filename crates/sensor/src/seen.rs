//! Reads the kernel did not record whole (bpf/lib/openseen.h, docs/kernel.md "Reads recorded
//! once per session"): each is folded into one `file_open_seen` record per process image, which
//! names every file by the session's recorded open of it (its kseq) and, while proctor still
//! holds it, that open's path.

use crate::decode::{Decoded, OpenSeen};
use proctor_model::{Bytes, SeenFile};
use rustc_hash::FxHashMap;
use std::collections::{HashMap, VecDeque};

/// Paths of recorded opens kept to name folded reads: twice what the kernel's map holds
/// (PR_SEEN_ENTRIES), so a read the kernel still folds nearly always finds its path. One that
/// does not is written with its kseq alone, which names the record that has the path.
const PATHS: usize = 2 * proctor_probes::wire::PR_SEEN_ENTRIES as usize;
/// A fold is written once its first read is this old (boot ns)...
pub(crate) const FOLD_AGE_NS: u64 = 1_000_000_000;
/// ...or once it names this many files.
const FOLD_FILES: usize = 1024;

/// The reads of one process image folded so far.
#[derive(Debug)]
pub(crate) struct Fold {
    /// The first read's header (no events): who, when, which session.
    pub head: Decoded,
    /// The process image's start time and exec number (OpenSeen::image).
    image: (u64, u64),
    pub last_boot_ns: u64,
    pub count: u64,
    pub files: Vec<SeenFile>,
    /// Index into `files` by (recorded open's kseq, flags). Fx: the keys are the kernel's
    /// numbers and open flags, a fold holds at most FOLD_FILES of them, and this is looked up
    /// for every folded read.
    index: FxHashMap<(u64, u32), usize>,
}

#[derive(Debug)]
pub(crate) struct Folds {
    paths: HashMap<(u32, u64), Bytes>,
    order: VecDeque<(u32, u64)>,
    /// By (session slot, pid): one fold per process image (an exec starts another).
    pending: FxHashMap<(u32, u32), Fold>,
    /// The first read time of the oldest fold pending (u64::MAX: none), so that most reads
    /// look at no fold to find the aged ones.
    oldest: u64,
}

impl Default for Folds {
    fn default() -> Folds {
        Folds {
            paths: HashMap::new(),
            order: VecDeque::new(),
            pending: FxHashMap::default(),
            oldest: u64::MAX,
        }
    }
}

impl Folds {
    /// A record later reads may name: keep its path.
    pub fn remember(&mut self, d: &Decoded) {
        let Some(proctor_model::Event::FileOpen(f)) = d.events.first() else {
            return;
        };
        let key = (d.kseq.kslot, d.kseq.kseq);
        if self.paths.insert(key, f.path.clone()).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > PATHS {
            if let Some(old) = self.order.pop_front() {
                self.paths.remove(&old);
            }
        }
    }

    /// Fold one read; a fold to write now is returned: the process's previous image's (it
    /// exec'd since), or this one grown to its bound. `head` finishes the header of a read
    /// that starts a fold (the header's names are built then, OpenSeen::complete); a read that
    /// joins one is only counted.
    pub fn add(
        &mut self,
        d: Decoded,
        s: OpenSeen,
        head: impl FnOnce(&mut Decoded),
    ) -> Option<Fold> {
        let slot = d.kseq.kslot;
        let key = (slot, d.pid);
        let ts = d.ts_boot_ns;
        let mut done = None;
        if self.pending.get(&key).is_some_and(|f| f.image != s.image) {
            done = self.pending.remove(&key);
        }
        let oldest = &mut self.oldest;
        let fold = self.pending.entry(key).or_insert_with(|| {
            *oldest = (*oldest).min(ts);
            let mut d = d;
            s.complete(&mut d);
            head(&mut d);
            Fold {
                head: d,
                image: s.image,
                last_boot_ns: ts,
                count: 0,
                files: Vec::new(),
                index: FxHashMap::default(),
            }
        });
        fold.count += 1;
        fold.last_boot_ns = fold.last_boot_ns.max(ts);
        match fold.index.get(&(s.first_kseq, s.flags)) {
            Some(&i) => fold.files[i].count += 1,
            None => {
                fold.index.insert((s.first_kseq, s.flags), fold.files.len());
                fold.files.push(SeenFile {
                    kseq: s.first_kseq,
                    path: self.paths.get(&(slot, s.first_kseq)).cloned(),
                    flags: s.flags,
                    dev: s.dev,
                    ino: s.ino,
                    count: 1,
                });
            }
        }
        if fold.files.len() >= FOLD_FILES {
            done = self.pending.remove(&key);
        }
        done
    }

    /// Folds whose first read is at least [`FOLD_AGE_NS`] older than `now_boot_ns`.
    pub fn take_aged(&mut self, now_boot_ns: u64) -> Vec<Fold> {
        if now_boot_ns.saturating_sub(self.oldest) < FOLD_AGE_NS {
            return Vec::new();
        }
        self.take(|f| now_boot_ns.saturating_sub(f.head.ts_boot_ns) >= FOLD_AGE_NS)
    }

    /// Every fold of `slot` (all of them for None), oldest first.
    pub fn take_slot(&mut self, slot: Option<u32>) -> Vec<Fold> {
        self.take(|f| slot.is_none_or(|s| s == f.head.kseq.kslot))
    }

    fn take(&mut self, pick: impl Fn(&Fold) -> bool) -> Vec<Fold> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let keys: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, f)| pick(f))
            .map(|(k, _)| *k)
            .collect();
        let mut out: Vec<Fold> = keys
            .into_iter()
            .filter_map(|k| self.pending.remove(&k))
            .collect();
        out.sort_by_key(|f| f.head.ts_boot_ns);
        self.oldest = self
            .pending
            .values()
            .map(|f| f.head.ts_boot_ns)
            .min()
            .unwrap_or(u64::MAX);
        out
    }

    /// The session in `slot` ended: its recorded opens name nothing any more.
    pub fn forget_slot(&mut self, slot: u32) {
        self.paths.retain(|k, _| k.0 != slot);
        self.order.retain(|k| k.0 != slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proctor_model::{Access, Event, FileOpen};

    /// A header of pid 7's image `7-1-SEQ` (`exec_id` names SEQ), numbered `kseq` in slot 1.
    fn hdr(exec_id: &str, ts: u64, kseq: u64) -> Decoded {
        let seq = exec_id.rsplit('-').next().unwrap().parse().unwrap();
        let mut d = crate::decode::test_header("git", 7, seq, ts);
        d.kseq.kseq = kseq;
        d
    }

    fn recorded(kseq: u64, path: &str) -> Decoded {
        let mut d = hdr("7-1-1", 1, kseq);
        d.seen_key = true;
        d.events.push(Event::FileOpen(FileOpen {
            path: Bytes::from(path),
            flags: 0,
            access: Access::Read,
            create: false,
            created: false,
            truncate: false,
            dev: 1,
            ino: kseq,
            error: None,
            path_truncated: false,
            repeats: 0,
            last_ts_ns: 0,
            device: None,
            setid: false,
            mapped_exec: false,
        }));
        d
    }

    /// A read by pid 7's image `7-1-SEQ` at `ts`, as `decode` hands it over: the header's
    /// names empty, the image and command name in the OpenSeen.
    fn read(exec_id: &str, ts: u64, first_kseq: u64, flags: u32) -> (Decoded, OpenSeen) {
        let mut d = hdr(exec_id, ts, 0);
        let seq = d.exec_id.rsplit('-').next().unwrap().parse().unwrap();
        let mut comm = [0u8; 16];
        comm[..3].copy_from_slice(&d.comm.0);
        d.comm = Bytes(Vec::new());
        d.exec_id = String::new();
        let s = OpenSeen {
            first_kseq,
            dev: 1,
            ino: first_kseq,
            flags,
            image: (1, seq),
            comm,
        };
        (d, s)
    }

    /// Fold `r`; the head callback must run once per fold started, and only then.
    fn add(f: &mut Folds, r: (Decoded, OpenSeen)) -> Option<Fold> {
        let starts = f
            .pending
            .get(&(r.0.kseq.kslot, r.0.pid))
            .is_none_or(|x| x.image != r.1.image);
        let mut called = 0;
        let done = f.add(r.0, r.1, |h| {
            called += 1;
            h.identity.container = None;
        });
        assert_eq!(called, usize::from(starts));
        done
    }

    #[test]
    fn reads_fold_per_image_and_name_their_recorded_open() {
        let mut f = Folds::default();
        f.remember(&recorded(3, "/etc/ld.so.cache"));
        f.remember(&recorded(4, "/usr/lib/libc.so.6"));
        assert!(add(&mut f, read("7-1-1", 10, 3, 0)).is_none());
        assert!(add(&mut f, read("7-1-1", 11, 4, 0)).is_none());
        assert!(add(&mut f, read("7-1-1", 12, 3, 0)).is_none());
        assert!(add(&mut f, read("7-1-1", 13, 3, 0o2000000)).is_none());
        // The same pid after an exec is another image: the old image's fold is done.
        let a = add(&mut f, read("7-1-2", 14, 4, 0)).expect("the old image's fold");
        // A read whose recorded open proctor no longer holds keeps its kseq.
        assert!(add(&mut f, read("7-1-2", 15, 99, 0)).is_none());
        assert!(f.take_aged(14 + FOLD_AGE_NS - 1).is_empty());
        let folds = f.take_aged(14 + FOLD_AGE_NS);
        assert_eq!(folds.len(), 1);
        let (a, b) = (&a, &folds[0]);
        assert_eq!(
            (a.head.exec_id.as_str(), a.count, a.last_boot_ns),
            ("7-1-1", 4, 13)
        );
        // The names the reads' headers were decoded without, built once for the fold.
        assert_eq!(
            (a.head.comm.0.as_slice(), b.head.exec_id.as_str()),
            (&b"git"[..], "7-1-2")
        );
        let got: Vec<_> = a
            .files
            .iter()
            .map(|s| (s.kseq, s.path.clone(), s.flags, s.count))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, Some(Bytes::from("/etc/ld.so.cache")), 0, 2),
                (4, Some(Bytes::from("/usr/lib/libc.so.6")), 0, 1),
                (3, Some(Bytes::from("/etc/ld.so.cache")), 0o2000000, 1),
            ]
        );
        assert_eq!(b.count, 2);
        assert_eq!(b.files[1].path, None);
        assert_eq!(b.files[1].kseq, 99);
        assert!(f.take_slot(None).is_empty());
    }

    #[test]
    fn folds_are_written_by_age_each_in_its_turn() {
        let mut f = Folds::default();
        assert!(add(&mut f, read("7-1-1", 100, 1, 0)).is_none());
        let mut r = read("7-1-1", 500, 1, 0);
        r.0.pid = 8;
        assert!(add(&mut f, r).is_none());
        assert!(f.take_aged(99 + FOLD_AGE_NS).is_empty());
        let first = f.take_aged(100 + FOLD_AGE_NS);
        assert_eq!(first.iter().map(|f| f.head.pid).collect::<Vec<_>>(), [7]);
        assert!(f.take_aged(499 + FOLD_AGE_NS).is_empty());
        assert_eq!(f.take_aged(500 + FOLD_AGE_NS).len(), 1);
        assert!(f.take_aged(u64::MAX).is_empty());
    }

    #[test]
    fn a_fold_is_written_at_its_bound_and_a_slot_is_forgotten() {
        let mut f = Folds::default();
        for i in 0..FOLD_FILES as u64 - 1 {
            assert!(add(&mut f, read("7-1-1", i, i + 1, 0)).is_none());
        }
        let full = add(&mut f, read("7-1-1", 5000, 5000, 0)).expect("full");
        assert_eq!(full.files.len(), FOLD_FILES);
        assert!(f.take_slot(Some(1)).is_empty());
        f.remember(&recorded(3, "/a"));
        f.forget_slot(1);
        assert!(add(&mut f, read("7-1-1", 1, 3, 0)).is_none());
        let folds = f.take_slot(Some(1));
        assert_eq!(folds[0].files[0].path, None);
    }
}
