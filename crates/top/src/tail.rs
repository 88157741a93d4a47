//! Following a file as it grows, as `tail -F` does: complete lines only (a writer's partial last
//! line waits for its newline), and robust to rotation (the old file is read to its end before
//! the new one is opened) and to truncation in place (read again from the start).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A line longer than this is not a record proctor writes: it is skipped and counted.
const MAX_LINE: usize = 16 << 20;
/// Read at most this much per poll, so a large existing file does not freeze the view.
const MAX_READ_PER_POLL: usize = 8 << 20;

pub struct Tail {
    path: PathBuf,
    file: Option<File>,
    dev: u64,
    ino: u64,
    offset: u64,
    partial: Vec<u8>,
    skipping: bool,
    /// Lines skipped because they exceeded `MAX_LINE`.
    pub oversized: u64,
}

impl Tail {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Tail {
            path: path.into(),
            file: None,
            dev: 0,
            ino: 0,
            offset: 0,
            partial: Vec::new(),
            skipping: false,
            oversized: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append to `out` every complete line written since the last call (without its newline).
    /// Returns whether there may be more to read right away (the per-poll budget ran out).
    pub fn poll(&mut self, out: &mut Vec<Vec<u8>>) -> io::Result<bool> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if self.file.is_some() {
            let replaced = meta
                .as_ref()
                .is_none_or(|m| m.dev() != self.dev || m.ino() != self.ino);
            if replaced {
                // Rotated (or removed): what the writer appended to the old file before it moved
                // on is still to be read, and its unterminated last line is final.
                let more = self.read_available(out)?;
                if more {
                    return Ok(true);
                }
                self.finish_partial(out);
                self.file = None;
            } else if meta.as_ref().is_some_and(|m| m.len() < self.offset) {
                // Truncated in place: start over from its beginning.
                self.reopen_at_start()?;
            }
        }
        if self.file.is_none() {
            let Some(m) = meta else { return Ok(false) };
            self.file = Some(File::open(&self.path)?);
            self.dev = m.dev();
            self.ino = m.ino();
            self.offset = 0;
            self.partial.clear();
            self.skipping = false;
        }
        self.read_available(out)
    }

    fn reopen_at_start(&mut self) -> io::Result<()> {
        self.file = Some(File::open(&self.path)?);
        self.offset = 0;
        self.partial.clear();
        self.skipping = false;
        Ok(())
    }

    fn finish_partial(&mut self, out: &mut Vec<Vec<u8>>) {
        if !self.partial.is_empty() && !self.skipping {
            out.push(std::mem::take(&mut self.partial));
        }
        self.partial.clear();
        self.skipping = false;
    }

    fn read_available(&mut self, out: &mut Vec<Vec<u8>>) -> io::Result<bool> {
        let Some(file) = self.file.as_mut() else {
            return Ok(false);
        };
        let mut buf = vec![0u8; 64 << 10];
        let mut read = 0usize;
        loop {
            if read >= MAX_READ_PER_POLL {
                return Ok(true);
            }
            let n = match file.read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            read += n;
            self.offset += n as u64;
            let mut chunk = &buf[..n];
            while let Some(nl) = chunk.iter().position(|&b| b == b'\n') {
                if self.skipping {
                    self.skipping = false;
                } else if self.partial.len() + nl > MAX_LINE {
                    self.partial = Vec::new();
                    self.oversized += 1;
                } else {
                    self.partial.extend_from_slice(&chunk[..nl]);
                    out.push(std::mem::take(&mut self.partial));
                }
                chunk = &chunk[nl + 1..];
            }
            if !self.skipping {
                self.partial.extend_from_slice(chunk);
                if self.partial.len() > MAX_LINE {
                    self.partial = Vec::new();
                    self.skipping = true;
                    self.oversized += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(t: &mut Tail) -> Vec<String> {
        let mut out = Vec::new();
        while t.poll(&mut out).unwrap() {}
        out.into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    fn append(path: &Path, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn waits_for_missing_file_and_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let mut t = Tail::new(&p);
        assert!(lines(&mut t).is_empty(), "no file yet is not an error");
        append(&p, b"one\ntw");
        assert_eq!(lines(&mut t), ["one"]);
        assert!(
            lines(&mut t).is_empty(),
            "a partial line waits for its newline"
        );
        append(&p, b"o\nthree\n");
        assert_eq!(lines(&mut t), ["two", "three"]);
    }

    #[test]
    fn follows_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let mut t = Tail::new(&p);
        append(&p, b"a\n");
        assert_eq!(lines(&mut t), ["a"]);
        // The writer appends to the old file after the rename, then starts the new one.
        append(&p, b"b\nlast-unterminated");
        std::fs::rename(&p, dir.path().join("audit.1.jsonl")).unwrap();
        append(&p, b"c\ncc\n");
        assert_eq!(lines(&mut t), ["b", "last-unterminated", "c", "cc"]);
        // Truncation in place restarts from the beginning.
        std::fs::write(&p, b"d\n").unwrap();
        assert_eq!(lines(&mut t), ["d"]);
    }

    #[test]
    fn oversized_line_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let mut big = vec![b'x'; MAX_LINE + 10];
        big.extend_from_slice(b"\nok\n");
        append(&p, &big);
        let mut t = Tail::new(&p);
        let got = lines(&mut t);
        assert_eq!(got.len(), 1, "only the short line is kept");
        assert_eq!(got[0], "ok");
        assert_eq!(t.oversized, 1);
    }
}
