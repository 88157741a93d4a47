//! OCSF to a file: each alert and incident (each time one opens or grows) is appended as one
//! OCSF Detection Finding JSON line, whatever `--alert-format` says (the file exists for tools
//! that read OCSF: a SIEM's file collector, an S3 Security Lake uploader). The file is opened
//! once at start, so a path proctor cannot write is an error before the agent runs; it is
//! created 0600 (it holds argv and paths) and never opened through a symbolic link planted at
//! its path (proctor writes as root). Each line is one `write` on an `O_APPEND` descriptor, so
//! several writers (the daemon's sessions) never interleave within a line.

use crate::queue::{Counters, Deliver};
use crate::{render, AlertFormat, Item, Source};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Mode of a file the output creates (an existing file keeps its mode: it is the operator's).
const MODE: u32 = 0o600;

pub(crate) struct OcsfFile {
    path: PathBuf,
    file: File,
    source: Arc<Source>,
}

impl OcsfFile {
    pub fn open(path: &Path, source: Arc<Source>) -> std::io::Result<OcsfFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(MODE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        Ok(OcsfFile {
            path: path.to_path_buf(),
            file,
            source,
        })
    }
}

impl Deliver<Item> for OcsfFile {
    fn deliver(&mut self, item: &Item, _: &Counters) -> Result<(), String> {
        let mut line = serde_json::to_vec(&render(item, AlertFormat::Ocsf, &self.source, false))
            .map_err(|e| e.to_string())?;
        line.push(b'\n');
        // A failed write (disk full, file system gone) is not retried: the item counts as
        // failed and the run's `lost` record says so.
        self.file
            .write_all(&line)
            .map_err(|e| format!("cannot append to {}: {e}", self.path.display()))
    }
}
