//! Where records come from. [`Source`] is the seam: a run directory tree today, the daemon's
//! socket later; the view only sees (session, record line) pairs.

use crate::tail::Tail;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub trait Source {
    /// Hand every record line that arrived since the last call to `sink` with the name of its
    /// session. Bounded work per call: the caller polls again on its next tick.
    fn poll(&mut self, sink: &mut dyn FnMut(&str, &[u8])) -> anyhow::Result<()>;
    /// What is watched, for the title (and the last problem reading it, if any).
    fn describe(&self) -> String;
}

/// How deep below the given directory audit logs are looked for: the daemon's layout is
/// `runs/AGENT/SESSION/audit.jsonl` under its state directory.
const MAX_DEPTH: usize = 3;
const RESCAN: Duration = Duration::from_secs(2);

/// Every `audit.jsonl` in a directory and below it (a `proctor run --out DIR`, or a tree of
/// them), each a session named by its directory relative to the root, followed as it grows.
pub struct RunDirSource {
    root: PathBuf,
    tails: Vec<(String, Tail)>,
    last_scan: Option<Instant>,
    problem: Option<String>,
}

impl RunDirSource {
    pub fn new(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root = root.into();
        std::fs::read_dir(&root).with_context(|| format!("cannot read {}", root.display()))?;
        Ok(RunDirSource {
            root,
            tails: Vec::new(),
            last_scan: None,
            problem: None,
        })
    }

    fn scan(&mut self) {
        let mut found = Vec::new();
        find_logs(&self.root, 0, &mut found);
        for path in found {
            if self.tails.iter().any(|(_, t)| t.path() == path) {
                continue;
            }
            let dir = path.parent().unwrap_or(&self.root);
            let name = match dir.strip_prefix(&self.root) {
                Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
                _ => self.root.file_name().map_or_else(
                    || self.root.display().to_string(),
                    |n| n.to_string_lossy().into(),
                ),
            };
            self.tails.push((name, Tail::new(path)));
        }
        self.tails.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

fn find_logs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let log = dir.join("audit.jsonl");
    if log.is_file() {
        out.push(log);
    }
    if depth == MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        // Not following symlinks: a link loop must not hang the scan.
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            find_logs(&e.path(), depth + 1, out);
        }
    }
}

impl Source for RunDirSource {
    fn poll(&mut self, sink: &mut dyn FnMut(&str, &[u8])) -> anyhow::Result<()> {
        if self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN) {
            self.scan();
            self.last_scan = Some(Instant::now());
        }
        self.problem = None;
        let mut lines = Vec::new();
        for (name, tail) in &mut self.tails {
            lines.clear();
            if let Err(e) = tail.poll(&mut lines) {
                self.problem = Some(format!("{}: {e}", tail.path().display()));
            }
            for l in &lines {
                sink(name, l);
            }
            if tail.oversized > 0 {
                self.problem = Some(format!(
                    "{}: {} lines over 16 MiB skipped",
                    tail.path().display(),
                    tail.oversized
                ));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mut s = self.root.display().to_string();
        if self.tails.is_empty() {
            s.push_str(" (no audit.jsonl yet)");
        }
        if let Some(p) = &self.problem {
            s.push_str(&format!(" [{p}]"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sessions_in_a_daemon_tree_and_a_single_run() {
        let dir = tempfile::tempdir().unwrap();
        let s1 = dir.path().join("runs/claude/s1");
        std::fs::create_dir_all(&s1).unwrap();
        std::fs::write(s1.join("audit.jsonl"), "{\"type\":\"exec\"}\n").unwrap();
        let mut src = RunDirSource::new(dir.path()).unwrap();
        let mut got = Vec::new();
        src.poll(&mut |s, l| got.push((s.to_string(), l.to_vec())))
            .unwrap();
        assert_eq!(
            got,
            [(
                "runs/claude/s1".to_string(),
                b"{\"type\":\"exec\"}".to_vec()
            )]
        );

        let mut single = RunDirSource::new(&s1).unwrap();
        got.clear();
        single
            .poll(&mut |s, _| got.push((s.to_string(), vec![])))
            .unwrap();
        assert_eq!(got[0].0, "s1");
        assert!(RunDirSource::new(dir.path().join("missing")).is_err());
    }
}
