//! Alerts and incidents as JSON lines in a file (mode 0600), rotated by size: when the next line
//! would take the file past its limit, `FILE.(keep-1)` becomes `FILE.keep` (the oldest, `FILE.keep`,
//! is removed), ..., `FILE` becomes `FILE.1`, and a new `FILE` is started. A line is never split
//! across files. The evidence is elsewhere (the hash-chained audit log and the certificates),
//! so rotating or deleting these files never touches what `proctor verify` checks.
//!
//! One process may ship to the same file from several runs at once (every session of the
//! daemon): writers are shared per path, so lines never interleave and one rotation happens.

use crate::queue::{Counters, Deliver};
use crate::{render, AlertFormat, Item, Source};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Default size limit of the live file.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
/// Default number of rotated files kept beside the live one.
pub const DEFAULT_KEEP: u32 = 5;

/// Where and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTarget {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub keep: u32,
}

impl FileTarget {
    /// Checked: an absolute path (relative ones are the caller's to resolve) whose directory
    /// exists, a limit of at least 4 KiB, at most 1000 kept files.
    pub fn new(path: &Path, max_bytes: Option<u64>, keep: Option<u32>) -> Result<Self, String> {
        if !path.is_absolute() {
            return Err("the path must be absolute".into());
        }
        match path.parent() {
            Some(d) if d.is_dir() => {}
            _ => return Err("its directory does not exist".into()),
        }
        if path.is_dir() {
            return Err("it is a directory".into());
        }
        let max_bytes = max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        if max_bytes < 4096 {
            return Err(format!("file_max_bytes {max_bytes} is below 4096"));
        }
        let keep = keep.unwrap_or(DEFAULT_KEEP);
        if keep > 1000 {
            return Err(format!("file_keep {keep} is above 1000"));
        }
        Ok(FileTarget {
            path: path.to_path_buf(),
            max_bytes,
            keep,
        })
    }

    /// `FILE.n`.
    pub fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }
}

/// The open file and its size.
struct Rotating {
    target: FileTarget,
    file: Option<File>,
    size: u64,
}

impl Rotating {
    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&self.target.path)?;
            // An existing file keeps its content, never its looser mode.
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            self.size = f.metadata()?.len();
            self.file = Some(f);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let t = &self.target;
        if t.keep == 0 {
            return std::fs::remove_file(&t.path);
        }
        match std::fs::remove_file(t.rotated(t.keep)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (1..t.keep).rev() {
            match std::fs::rename(t.rotated(n), t.rotated(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&t.path, t.rotated(1))
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.open()?;
        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size + len > self.target.max_bytes {
            self.rotate()?;
            self.open()?;
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        // One write of the whole line: O_APPEND keeps it in one piece.
        let f = self.open()?;
        f.write_all(&buf)?;
        self.size += len;
        Ok(())
    }
}

/// The writer of `target.path` in this process, shared by every run shipping there. The first
/// run's limits hold for the path.
fn shared(target: &FileTarget) -> Arc<Mutex<Rotating>> {
    static WRITERS: OnceLock<Mutex<HashMap<PathBuf, Weak<Mutex<Rotating>>>>> = OnceLock::new();
    let mut map = WRITERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(w) = map.get(&target.path).and_then(Weak::upgrade) {
        return w;
    }
    let w = Arc::new(Mutex::new(Rotating {
        target: target.clone(),
        file: None,
        size: 0,
    }));
    map.insert(target.path.clone(), Arc::downgrade(&w));
    w
}

pub(crate) struct FileOut {
    writer: Arc<Mutex<Rotating>>,
    format: AlertFormat,
    source: Arc<Source>,
}

impl FileOut {
    pub fn new(target: &FileTarget, format: AlertFormat, source: Arc<Source>) -> Self {
        FileOut {
            writer: shared(target),
            format,
            source,
        }
    }
}

impl Deliver<Item> for FileOut {
    fn deliver(&mut self, item: &Item, _: &Counters) -> Result<(), String> {
        let line = serde_json::to_vec(&render(item, self.format, &self.source, false))
            .map_err(|e| e.to_string())?;
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let path = w.target.path.clone();
        w.write_line(&line).map_err(|e| {
            // Reopen on the next item (the file may have been moved away under us).
            w.file = None;
            format!("{}: {e}", path.display())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Outputs, OutputsConfig};
    use proctor_model::Alert;
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;

    fn alert(i: usize) -> Alert {
        Alert::new(
            "agent",
            1_700_000_000_000_000_000 + i as u64,
            "L2",
            "LLM_AGENT_HIJACK",
            100 + i as u32,
            "x",
            format!("alert number {i} {}", "p".repeat(200)),
        )
    }

    fn lines(p: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .map(|s| {
                s.lines()
                    .map(|l| serde_json::from_str(l).expect("every line is JSON"))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn start(dir: &Path, max: u64, keep: u32) -> Outputs {
        let cfg = OutputsConfig {
            file: Some(dir.join("alerts.jsonl")),
            file_max_bytes: Some(max),
            file_keep: Some(keep),
            ..OutputsConfig::default()
        };
        Outputs::start(&cfg, Source::default()).expect("starts")
    }

    #[test]
    fn rotates_by_size_keeps_a_bounded_number_and_loses_no_line_it_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = start(dir.path(), 4096, 3);
        for i in 0..100 {
            o.alert(&alert(i));
        }
        let stats = o.close(Duration::from_secs(10));
        assert_eq!(
            (stats[0].name.as_str(), stats[0].sent, stats[0].lost()),
            ("file", 100, 0)
        );
        let base = dir.path().join("alerts.jsonl");
        let t = FileTarget::new(&base, Some(4096), Some(3)).unwrap();
        // The live file and exactly 3 rotated ones; nothing beyond.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "alerts.jsonl",
                "alerts.jsonl.1",
                "alerts.jsonl.2",
                "alerts.jsonl.3"
            ]
        );
        // Newest last: .3, .2, .1, live hold consecutive alerts ending with the 100th, each
        // file under the limit and 0600.
        let mut all = Vec::new();
        for p in [t.rotated(3), t.rotated(2), t.rotated(1), base.clone()] {
            let m = std::fs::metadata(&p).unwrap();
            assert!(m.len() <= 4096, "{} is {} bytes", p.display(), m.len());
            assert_eq!(m.mode() & 0o777, 0o600, "{}", p.display());
            all.extend(lines(&p));
        }
        let pids: Vec<u64> = all.iter().map(|v| v["pid"].as_u64().unwrap()).collect();
        assert!(pids.len() > 10, "{}", pids.len());
        let first = *pids.first().unwrap();
        assert_eq!(
            pids,
            (first..200).collect::<Vec<_>>(),
            "consecutive, newest last"
        );
    }

    #[test]
    fn an_existing_file_is_appended_to_and_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("alerts.jsonl");
        std::fs::write(&base, "{\"old\":1}\n").unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut o = start(dir.path(), 1 << 20, 2);
        o.alert(&alert(1));
        o.close(Duration::from_secs(10));
        let l = lines(&base);
        assert_eq!((l.len(), l[0]["old"].as_u64()), (2, Some(1)));
        assert_eq!(std::fs::metadata(&base).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn runs_sharing_a_path_share_one_writer() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = start(dir.path(), 8192, 50);
        let mut b = start(dir.path(), 8192, 50);
        for i in 0..100 {
            a.alert(&alert(i));
            b.alert(&alert(1000 + i));
        }
        a.close(Duration::from_secs(10));
        b.close(Duration::from_secs(10));
        let base = dir.path().join("alerts.jsonl");
        let t = FileTarget::new(&base, None, None).unwrap();
        let mut n = lines(&base).len();
        for k in 1..=50 {
            n += lines(&t.rotated(k)).len();
        }
        assert_eq!(n, 200, "every line whole, none lost to a double rotation");
    }

    #[test]
    fn bad_targets_are_refused_with_the_reason() {
        for (p, max, keep, why) in [
            ("rel/alerts.jsonl", None, None, "absolute"),
            ("/nonexistent-dir/a.jsonl", None, None, "directory"),
            ("/tmp", None, None, "directory"),
            ("/tmp/a.jsonl", Some(10), None, "4096"),
            ("/tmp/a.jsonl", None, Some(5000), "1000"),
        ] {
            let e = FileTarget::new(Path::new(p), max, keep).unwrap_err();
            assert!(e.contains(why), "{p}: {e}");
        }
    }
}
