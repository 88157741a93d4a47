//! The files the tree wrote in this run, by inode, by path and by file name, the oldest pushed
//! out past [`MAX_WRITTEN`]: write-then-exec follows them through renames and links.
//!
//! Paths are kept in byte order, so a directory's files are one range: a rename of a directory
//! (or of one file, what git does for every lock file it puts in place) costs a lookup and its
//! own files, not a scan of every file remembered. The age order is a queue with lazy removal:
//! a file taken out by a rename leaves its slot behind, marked stale by a sequence number, and
//! the queue is compacted once stale slots outnumber the live ones.

use super::graph::file_name;
use super::{Written, MAX_WRITTEN};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

#[derive(Default)]
pub(super) struct WrittenFiles {
    by_ino: HashMap<(u64, u64), Arc<Written>>,
    /// Path -> (its slot's sequence number in `order`, the file).
    by_path: BTreeMap<Vec<u8>, (u64, Arc<Written>)>,
    /// Oldest first; a slot whose number is not its path's current one is stale.
    order: VecDeque<(u64, Vec<u8>)>,
    next: u64,
    /// The paths of `by_path` by their file name, oldest first: an interpreter's relative
    /// script argument is matched against these, not against every written file (graph.rs).
    by_name: HashMap<Vec<u8>, Vec<Vec<u8>>>,
}

impl WrittenFiles {
    pub(super) fn by_ino(&self, id: (u64, u64)) -> Option<&Arc<Written>> {
        self.by_ino.get(&id)
    }

    pub(super) fn by_path(&self, path: &[u8]) -> Option<&Arc<Written>> {
        self.by_path.get(path).map(|(_, w)| w)
    }

    /// The paths written with this file name, oldest first.
    pub(super) fn named(&self, name: &[u8]) -> impl DoubleEndedIterator<Item = &Vec<u8>> {
        self.by_name.get(name).into_iter().flatten()
    }

    /// Remember a file the tree wrote (again: a path already known keeps its age).
    pub(super) fn remember(&mut self, w: Arc<Written>) {
        if w.id.1 != 0 {
            self.by_ino.insert(w.id, w.clone());
        }
        if let Some(slot) = self.by_path.get_mut(&w.path) {
            slot.1 = w;
            return;
        }
        let path = w.path.clone();
        let seq = self.next;
        self.next += 1;
        self.order.push_back((seq, path.clone()));
        self.by_name
            .entry(file_name(&path).to_vec())
            .or_default()
            .push(path.clone());
        self.by_path.insert(path, (seq, w));
        while self.by_path.len() > MAX_WRITTEN {
            let Some((seq, old)) = self.order.pop_front() else {
                break;
            };
            if self.by_path.get(&old).is_some_and(|(s, _)| *s == seq) {
                let (_, w) = self
                    .take_path(&old)
                    .expect("a live slot's path is remembered");
                // Only if that inode still names this path (a later write may own it).
                if self.by_ino.get(&w.id).is_some_and(|x| x.path == w.path) {
                    self.by_ino.remove(&w.id);
                }
            }
        }
        // Stale slots, left by renames, are dropped once they outnumber the live ones: each
        // compaction walks at most twice the live files plus 1,024, after at least as many
        // pushes, so a rename costs O(1) here however many files are remembered.
        if self.order.len() > 2 * self.by_path.len() + 1024 {
            let by_path = &self.by_path;
            self.order
                .retain(|(s, p)| by_path.get(p).is_some_and(|(live, _)| live == s));
        }
    }

    fn take_path(&mut self, path: &[u8]) -> Option<(u64, Arc<Written>)> {
        let taken = self.by_path.remove(path)?;
        let name = file_name(path);
        if let Some(paths) = self.by_name.get_mut(name) {
            paths.retain(|p| p != path);
            if paths.is_empty() {
                self.by_name.remove(name);
            }
        }
        Some(taken)
    }

    /// The written files directly in directory `dir`, in path order.
    pub(super) fn in_dir<'a>(&'a self, dir: &[u8]) -> impl Iterator<Item = &'a Arc<Written>> + 'a {
        let mut below = dir.to_vec();
        below.push(b'/');
        let n = below.len();
        self.by_path
            .range::<[u8], _>((Bound::Included(&below[..]), Bound::Unbounded))
            .take_while(move |(p, _)| p.starts_with(&below))
            .filter(move |(p, _)| !p[n..].contains(&b'/'))
            .map(|(_, (_, w))| w)
    }

    /// The written files directly in a directory whose path ends in `/tail` (a relative
    /// directory whose base is unknown), in path order: a scan of every written file, for
    /// the rare exec whose arguments name such a directory's pattern (`java -cp 'lib/*'`).
    pub(super) fn in_dirs_ending<'a>(
        &'a self,
        tail: &'a [u8],
    ) -> impl Iterator<Item = &'a Arc<Written>> + 'a {
        self.by_path.iter().map(|(_, (_, w))| w).filter(move |w| {
            let dir = super::parent_dir(&w.path);
            tail == b"." || (dir.ends_with(tail) && dir[..dir.len() - tail.len()].ends_with(b"/"))
        })
    }

    /// The written files at `from` or below it, taken out of the path indexes (a rename moves
    /// them; their inodes stay) or left in place (a link adds names).
    pub(super) fn under(&mut self, from: &[u8], take: bool) -> Vec<Arc<Written>> {
        let mut below = from.to_vec();
        below.push(b'/');
        // `from` itself, then the range of paths that start with `from/` (byte order keeps
        // them together; `from-x` sorts between the two, so it is not a range with `from`).
        let paths: Vec<Vec<u8>> = self
            .by_path
            .get_key_value(from)
            .map(|(p, _)| p.clone())
            .into_iter()
            .chain(
                self.by_path
                    .range::<[u8], _>((Bound::Included(&below[..]), Bound::Unbounded))
                    .map(|(p, _)| p)
                    .take_while(|p| p.starts_with(&below))
                    .cloned(),
            )
            .collect();
        paths
            .into_iter()
            .filter_map(|p| {
                if take {
                    self.take_path(&p).map(|(_, w)| w)
                } else {
                    self.by_path(&p).cloned()
                }
            })
            .collect()
    }

    #[cfg(test)]
    pub(super) fn check_indexes(&self) -> usize {
        let mut indexed: Vec<&Vec<u8>> = self.by_name.values().flatten().collect();
        indexed.sort();
        let written: Vec<&Vec<u8>> = self.by_path.keys().collect();
        assert_eq!(indexed, written);
        assert!(self
            .by_name
            .iter()
            .all(|(n, ps)| !ps.is_empty() && ps.iter().all(|p| file_name(p) == n.as_slice())));
        let live = self
            .order
            .iter()
            .filter(|(s, p)| self.by_path.get(p).is_some_and(|(l, _)| l == s))
            .count();
        assert_eq!(
            live,
            self.by_path.len(),
            "every remembered path has one live slot"
        );
        assert!(self.order.len() <= 2 * self.by_path.len() + 1024);
        self.by_path.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::files::tests::write;

    fn file(path: &str, ino: u64) -> Arc<Written> {
        Arc::new(Written {
            path: path.as_bytes().to_vec(),
            id: (5, ino),
            writer: Arc::from("sh"),
            rec: Arc::new(write(1, path, ino)),
            maker: 1,
        })
    }

    fn paths(v: &[Arc<Written>]) -> Vec<String> {
        let mut v: Vec<String> = v
            .iter()
            .map(|w| String::from_utf8_lossy(&w.path).into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_directory_is_its_own_path_and_the_paths_below_it_not_its_siblings() {
        let mut f = WrittenFiles::default();
        for (i, p) in [
            "/w/d",
            "/w/d/a",
            "/w/d/sub/b",
            "/w/d-x",
            "/w/d.txt",
            "/w/dd/c",
            "/w/c",
        ]
        .iter()
        .enumerate()
        {
            f.remember(file(p, i as u64 + 1));
        }
        assert_eq!(
            paths(&f.under(b"/w/d", false)),
            ["/w/d", "/w/d/a", "/w/d/sub/b"]
        );
        assert_eq!(paths(&f.under(b"/w/e", false)), Vec::<String>::new());
        // A link leaves them; a rename takes them out of the path and name indexes, not the
        // inode index.
        assert_eq!(f.check_indexes(), 7);
        assert_eq!(
            paths(&f.under(b"/w/d", true)),
            ["/w/d", "/w/d/a", "/w/d/sub/b"]
        );
        assert_eq!(f.check_indexes(), 4);
        assert!(f.by_path(b"/w/d/a").is_none() && f.named(b"a").next().is_none());
        assert_eq!(
            f.by_ino((5, 2)).map(|w| w.path.as_slice()),
            Some(&b"/w/d/a"[..])
        );
        assert!(f.by_path(b"/w/d-x").is_some() && f.by_path(b"/w/dd/c").is_some());
    }

    #[test]
    fn renames_in_place_keep_the_queue_bounded_and_the_oldest_still_go_first() {
        let mut f = WrittenFiles::default();
        f.remember(file("/w/first", 1));
        // git's cycle: write a lock file, rename it into place, many times over.
        for i in 0..3 * MAX_WRITTEN as u64 {
            f.remember(file("/w/.git/index.lock", 10 + i));
            for w in f.under(b"/w/.git/index.lock", true) {
                let mut moved = (*w).clone();
                moved.path = b"/w/.git/index".to_vec();
                f.remember(Arc::new(moved));
            }
        }
        assert_eq!(f.check_indexes(), 2);
        // Then more distinct files than are kept: the oldest (`/w/first`) goes first.
        for i in 0..MAX_WRITTEN as u64 - 2 {
            f.remember(file(&format!("/w/f{i}"), 1_000_000 + i));
        }
        assert_eq!(f.check_indexes(), MAX_WRITTEN);
        assert!(f.by_path(b"/w/first").is_some());
        f.remember(file("/w/one-more", 7));
        assert_eq!(f.check_indexes(), MAX_WRITTEN);
        assert!(f.by_path(b"/w/first").is_none() && f.by_ino((5, 1)).is_none());
        assert!(f.by_path(b"/w/.git/index").is_some());
    }
}
