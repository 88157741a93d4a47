//! Where records come from. [`Source`] is the seam: a run directory tree ([`RunDirSource`]) or
//! the sessions a running daemon lists on its socket ([`ListedSource`]); the view only sees
//! (session, record line) pairs.

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

/// New lines of every followed log to `sink`; the last problem reading one, if any.
fn poll_tails(tails: &mut [(String, Tail)], sink: &mut dyn FnMut(&str, &[u8])) -> Option<String> {
    let mut problem = None;
    let mut lines = Vec::new();
    for (name, tail) in tails {
        lines.clear();
        if let Err(e) = tail.poll(&mut lines) {
            problem = Some(format!("{}: {e}", tail.path().display()));
        }
        for l in &lines {
            sink(name, l);
        }
        if tail.oversized > 0 {
            problem = Some(format!(
                "{}: {} lines over 16 MiB skipped",
                tail.path().display(),
                tail.oversized
            ));
        }
    }
    problem
}

/// Lists the sessions (name, directory) of a running daemon: `proctor ctl list` over its socket.
pub type Lister = Box<dyn FnMut() -> anyhow::Result<Vec<(String, PathBuf)>>>;

/// The sessions a daemon reports on its socket, asked again every 2 s, each followed through
/// its `audit.jsonl` from the start; a session that ended stays on screen with its last state
/// (its `sensor_stop` arrived through the log).
pub struct ListedSource {
    what: String,
    list: Lister,
    tails: Vec<(String, Tail)>,
    last_list: Option<Instant>,
    /// Why the last listing failed, if it did.
    list_problem: Option<String>,
    problem: Option<String>,
}

impl ListedSource {
    /// `what` names the daemon in the title (its socket).
    pub fn new(what: impl Into<String>, list: Lister) -> Self {
        ListedSource {
            what: what.into(),
            list,
            tails: Vec::new(),
            last_list: None,
            list_problem: None,
            problem: None,
        }
    }
}

impl Source for ListedSource {
    fn poll(&mut self, sink: &mut dyn FnMut(&str, &[u8])) -> anyhow::Result<()> {
        if self.last_list.is_none_or(|t| t.elapsed() >= RESCAN) {
            self.last_list = Some(Instant::now());
            match (self.list)() {
                Ok(sessions) => {
                    self.list_problem = None;
                    for (name, dir) in sessions {
                        if !self.tails.iter().any(|(n, _)| *n == name) {
                            self.tails.push((name, Tail::new(dir.join("audit.jsonl"))));
                        }
                    }
                    self.tails.sort_by(|a, b| a.0.cmp(&b.0));
                }
                // The daemon stopped or refused: say so, keep what is shown.
                Err(e) => self.list_problem = Some(format!("{e:#}")),
            }
        }
        let read = poll_tails(&mut self.tails, sink);
        self.problem = self.list_problem.clone().or(read);
        Ok(())
    }

    fn describe(&self) -> String {
        let mut s = format!("daemon {}", self.what);
        if self.tails.is_empty() {
            s.push_str(" (no session yet)");
        }
        if let Some(p) = &self.problem {
            s.push_str(&format!(" [{p}]"));
        }
        s
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
        self.problem = poll_tails(&mut self.tails, sink);
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

    #[test]
    fn follows_the_sessions_a_daemon_lists_and_says_when_it_cannot_ask() {
        let dir = tempfile::tempdir().unwrap();
        let s1 = dir.path().join("claude/s1");
        std::fs::create_dir_all(&s1).unwrap();
        std::fs::write(s1.join("audit.jsonl"), "{\"type\":\"exec\"}\n").unwrap();
        let answers = std::rc::Rc::new(std::cell::RefCell::new(vec![
            Err(anyhow::anyhow!(
                "connecting to /run/proctor/proctor.sock: refused"
            )),
            Ok(vec![("claude/s1".to_string(), s1.clone())]),
        ]));
        let a = answers.clone();
        let mut src = ListedSource::new(
            "/run/proctor/proctor.sock",
            Box::new(move || a.borrow_mut().pop().unwrap()),
        );
        let mut got = Vec::new();
        src.poll(&mut |s, l| got.push((s.to_string(), l.to_vec())))
            .unwrap();
        assert_eq!(
            got,
            [("claude/s1".to_string(), b"{\"type\":\"exec\"}".to_vec())]
        );
        assert_eq!(src.describe(), "daemon /run/proctor/proctor.sock");
        // Next listing fails (the daemon stopped): the session stays, the title says why.
        src.last_list = None;
        got.clear();
        std::fs::write(
            s1.join("audit.jsonl"),
            "{\"type\":\"exec\"}\n{\"type\":\"exit\"}\n",
        )
        .unwrap();
        src.poll(&mut |s, l| got.push((s.to_string(), l.to_vec())))
            .unwrap();
        assert_eq!(got.len(), 1, "the new line still read");
        assert!(src.describe().contains("refused"), "{}", src.describe());
    }
}
