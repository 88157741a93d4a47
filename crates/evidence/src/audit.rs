//! The hash-chained audit log, `DIR/audit.jsonl`.
//!
//! Every line is one JSON object in canonical form ([`crate::canonical_json`]) with three chain
//! members added to the caller's record: `seq` (1, 2, 3, ... over the whole file), `hash_prev`
//! (the previous line's `hash_self`; 64 zeros for seq 1) and `hash_self` (hex SHA-256 of the
//! canonical JSON of the record without `hash_self`).
//!
//! Records of its own (their `type` is reserved):
//! - `segment_start`: first record of every [`AuditLog::open`]. `prev` is `null` for a new file,
//!   else `{"seq", "hash"}` of the last intact record before it (the chain continues through it);
//!   `prev_closed` says whether that record was a final checkpoint (false after a crash);
//!   `torn` is `null`, or `{"offset", "length", "sha256", "terminated"}` describing bytes an
//!   interrupted writer left after the last intact record. They are kept in the file (followed by
//!   a `\n` when `terminated`), never overwritten. After a crash, `unsigned_tail`
//!   (`{"from_seq", "to_seq"}`) names the records the killed writer never signed: this segment's
//!   signatures chain over them but do not vouch for them, and `verify` reports them.
//! - `checkpoint`: signed by the sensor key: `signature` is standard base64 of the Ed25519
//!   signature over the canonical JSON of the record without `signature` and `hash_self` (so it
//!   covers `seq` and `hash_prev`, the chain head). `final` is true for the one written at
//!   [`AuditLog::close`]. One follows every `segment_start` immediately, then every
//!   [`AuditOptions::checkpoint_every`] records or [`AuditOptions::checkpoint_interval`]. The
//!   file is fsynced (on a background thread, [`crate::syncer`]) at a checkpoint when the last
//!   fsync is a second old or more, and before returning at the final one: under a storm (a checkpoint every 10 ms at 100k records/s) an fsync per
//!   checkpoint blocked the monitor long enough for the kernel's ring buffer to overflow. A
//!   process crash loses nothing either way (the lines are in the page cache); a power loss may
//!   lose up to a second.
//! - `key_rotation`: between a `segment_start` and its checkpoint, one per rotation in the
//!   signing key's history: `announcement` is the signed announcement ([`crate::lifecycle`]).
//! - `certificate`: written by [`AuditLog::record_certificate`]: `cert_run_id`, `cert_seq`,
//!   `cert_sha256`, `cert_file` of a `.cal` file (and `cert_format` for an incident's, in
//!   `incidents/`), so a deleted certificate is detectable.
//!
//! Each record is serialised once and written once in canonical order, the chain members merged
//! in at their sorted places ([`crate::canon`]); `hash_self` is hashed over the bytes around its
//! place. Lines are buffered and handed to the kernel whole at [`AuditLog::flush`], so after a
//! SIGKILL the file holds every flushed record and at most one torn line, which the next `open`
//! records.

use crate::canon::Canon;
use crate::{canonical_json, now_ns, sha256_hex, Error, Signer, Written, ZERO_HASH};
use base64::Engine as _;
use proctor_model::RecordKind;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::Digest as _;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// File name of the audit log in an output directory.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// Members the chain adds; a caller's record must not have them.
pub const CHAIN_FIELDS: &[&str] = &["seq", "hash_prev", "hash_self"];
/// Record types only the log itself writes.
pub const RESERVED_TYPES: &[&str] = &[
    RecordKind::SegmentStart.as_str(),
    RecordKind::Checkpoint.as_str(),
    RecordKind::Certificate.as_str(),
    RecordKind::KeyRotation.as_str(),
];

/// At most this many bytes after the last intact record are taken as a torn tail on open; more
/// means the file is not ours (or badly damaged) and `open` refuses to append to it.
pub const MAX_TORN_BYTES: u64 = 16 * 1024 * 1024;
/// At most this many unreadable lines are taken as a torn tail (crashes during recovery can
/// leave more than one).
const MAX_TORN_LINES: usize = 16;
/// `hash_self` as first written, before its digest is known (it is not hashed).
const HASH_PLACEHOLDER: &[u8] =
    b"\"0000000000000000000000000000000000000000000000000000000000000000\"";
/// Checkpoints fsync at most this often (the final one always does; see the module docs).
const FSYNC_EVERY: Duration = Duration::from_secs(1);

/// When checkpoints are written besides at open and close.
#[derive(Debug, Clone, Copy)]
pub struct AuditOptions {
    /// After this many records since the last checkpoint.
    pub checkpoint_every: u64,
    /// After this long since the last checkpoint, checked at each append and [`AuditLog::tick`].
    pub checkpoint_interval: Duration,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(5),
        }
    }
}

/// The writer of `DIR/audit.jsonl`. Holds an exclusive `flock` on the file while open.
pub struct AuditLog {
    path: PathBuf,
    /// Lines are buffered and handed to the kernel by [`AuditLog::flush`]: one write(2) per
    /// batch instead of per record (a third of the monitor's cost under an open storm).
    file: BufWriter<File>,
    signer: Arc<Signer>,
    agent_id: String,
    opts: AuditOptions,
    next_seq: u64,
    head: String,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    last_fsync: Option<Instant>,
    /// fsyncs of checkpoints other than the final one, off the writer's thread.
    syncer: crate::syncer::Syncer,
    closed: bool,
    /// RFC 3161 stamping of each checkpoint, when a TSA is configured.
    stamper: Option<crate::tsa::Stamper>,
    /// Scratch of the canonical writer and the line being written, kept between records so a
    /// record costs no allocation.
    canon: Canon,
    line: Vec<u8>,
    /// `hash_prev` and `time` of the line being written, as canonical JSON strings.
    prev: Vec<u8>,
    time: Vec<u8>,
}

/// What `open` found at the end of an existing file.
struct Tail {
    /// seq and hash_self of the last intact record, whether it was a final checkpoint.
    head: Option<(u64, String, bool)>,
    /// Offset, bytes after the last intact record.
    torn: Option<(u64, Vec<u8>)>,
    /// The last intact record is the file's last line and lacks only its newline (a write cut
    /// exactly before it): the newline is added, and the record stays in the chain.
    needs_newline: bool,
}

impl AuditLog {
    /// [`AuditLog::open_with`] with the default checkpoint intervals.
    pub fn open(dir: &Path, signer: Arc<Signer>, agent_id: &str) -> Result<AuditLog, Error> {
        AuditLog::open_with(dir, signer, agent_id, AuditOptions::default())
    }

    /// Open (or create) `dir/audit.jsonl` and start a new segment: a `segment_start` record
    /// linking the previous head, then a signed checkpoint. Also puts the public key in `dir`.
    pub fn open_with(
        dir: &Path,
        signer: Arc<Signer>,
        agent_id: &str,
        opts: AuditOptions,
    ) -> Result<AuditLog, Error> {
        crate::create_private_dir(dir).map_err(|error| Error::Io {
            path: dir.to_path_buf(),
            error,
        })?;
        crate::keys::publish_public_key(dir, signer.verifier())?;
        crate::lifecycle::publish_keychain(dir, &signer)?;
        let path = dir.join(AUDIT_FILE);
        let io = |error| Error::Io {
            path: path.clone(),
            error,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(crate::PRIVATE_FILE_MODE)
            .open(&path)
            .map_err(io)?;
        // A lock held by another writer is an error at once, but not one held for a moment by a
        // child this process forked between its fork and its exec (the descriptor is close-on-
        // exec, the lock goes with the open file): a log closed and reopened while another
        // thread starts a process met that (seen once in the test suite under load).
        let mut tries = 0;
        // SAFETY: flock on a valid, owned descriptor; no memory is involved.
        while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            tries += 1;
            if tries >= 20 {
                return Err(Error::Locked { path });
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let tail = read_tail(&mut file, &path)?;
        let mut log = AuditLog {
            path: path.clone(),
            file: BufWriter::with_capacity(256 * 1024, file),
            signer,
            agent_id: agent_id.to_string(),
            opts,
            next_seq: 1,
            head: ZERO_HASH.to_string(),
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            last_fsync: None,
            syncer: crate::syncer::Syncer::new("audit"),
            closed: false,
            stamper: crate::tsa::Stamper::from_env(),
            canon: Canon::new(),
            line: Vec::with_capacity(1024),
            prev: Vec::with_capacity(66),
            time: Vec::with_capacity(40),
        };
        let mut prefix = Vec::new();
        if tail.needs_newline {
            prefix.push(b'\n');
        }
        let (prev, prev_closed) = match &tail.head {
            Some((seq, hash, closed)) => {
                log.next_seq = seq.checked_add(1).ok_or_else(|| Error::NotAChain {
                    path: path.clone(),
                    reason: "its last seq is the largest possible".into(),
                })?;
                log.head = hash.clone();
                (json!({"seq": seq, "hash": hash}), *closed)
            }
            None => (Value::Null, false),
        };
        let torn = match &tail.torn {
            Some((offset, bytes)) => {
                let terminated = bytes.last() != Some(&b'\n');
                if terminated {
                    prefix.push(b'\n');
                }
                json!({
                    "offset": offset,
                    "length": bytes.len(),
                    "sha256": sha256_hex(bytes),
                    "terminated": terminated,
                })
            }
            None => Value::Null,
        };
        let mut start = log.base("segment_start");
        // After a crash, the records the killed writer never signed are named, so that this
        // segment's signatures are not read as vouching for them.
        let unsigned = match &tail.head {
            Some((seq, _, false)) => {
                let signed = last_checkpoint_seq(log.file.get_mut(), &path)?.unwrap_or(0);
                (signed < *seq).then(|| json!({"from_seq": signed + 1, "to_seq": seq}))
            }
            _ => None,
        };
        start.insert("prev".into(), prev);
        start.insert("prev_closed".into(), Value::Bool(prev_closed));
        if let Some(u) = unsigned {
            start.insert("unsigned_tail".into(), u);
        }
        start.insert("torn".into(), torn);
        start.insert(
            "writer".into(),
            json!({"pid": std::process::id(), "version": env!("CARGO_PKG_VERSION")}),
        );
        log.write_chained(&start, &prefix, false)?;
        // The key's history before its first signature in this segment, so a verifier that
        // pins an earlier key reaches this one.
        for a in log.signer.clone().announcements() {
            let mut rec = log.base("key_rotation");
            rec.insert("announcement".into(), a.value.clone());
            log.write_chained(&rec, &[], false)?;
        }
        log.write_checkpoint(false)?;
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The seq the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// `hash_self` of the last record written.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// Append one record (it must serialise to a JSON object with a string `type` that is not
    /// one of [`RESERVED_TYPES`], and without `seq`, `hash_prev`, `hash_self`). Returns its seq.
    /// Writes a checkpoint after it when one is due.
    pub fn append(&mut self, record: &impl Serialize) -> Result<u64, Error> {
        let seq = self.write_chained(record, &[], true)?;
        self.since_checkpoint += 1;
        if self.since_checkpoint >= self.opts.checkpoint_every
            || self.last_checkpoint.elapsed() >= self.opts.checkpoint_interval
        {
            self.write_checkpoint(false)?;
        }
        Ok(seq)
    }

    /// Record a written certificate (see the module docs), so `verify` can tell that one was
    /// deleted.
    pub fn record_certificate(&mut self, cert: &Written) -> Result<u64, Error> {
        let mut obj = self.base("certificate");
        obj.insert("cert_run_id".into(), Value::from(cert.run_id.as_str()));
        obj.insert("cert_seq".into(), Value::from(cert.seq));
        obj.insert("cert_sha256".into(), Value::from(cert.sha256.as_str()));
        let file = cert
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        obj.insert("cert_file".into(), Value::from(file));
        // Incident certificates live in their own directory; alert certificates' records keep
        // the members they always had.
        if cert.format != crate::cert::CERT_FORMAT {
            obj.insert("cert_format".into(), Value::from(cert.format));
        }
        let seq = self.write_chained(&obj, &[], false)?;
        self.since_checkpoint += 1;
        Ok(seq)
    }

    /// Write a checkpoint now if records were appended since the last one and the interval has
    /// passed. Call it from an idle loop so a quiet period does not leave records unsigned.
    /// Buffered lines are handed to the kernel first, so readers (`tail -f`) see them.
    pub fn tick(&mut self) -> Result<(), Error> {
        if self.since_checkpoint > 0
            && self.last_checkpoint.elapsed() >= self.opts.checkpoint_interval
        {
            self.write_checkpoint(false)?;
        }
        self.flush()
    }

    /// Hand the buffered lines to the kernel (no fsync; checkpoints fsync).
    pub fn flush(&mut self) -> Result<(), Error> {
        self.file.flush().map_err(|error| Error::Io {
            path: self.path.clone(),
            error,
        })
    }

    /// Write a signed checkpoint over the current head (fsynced, see the module docs). Returns
    /// its seq.
    pub fn checkpoint(&mut self) -> Result<u64, Error> {
        self.write_checkpoint(false)
    }

    /// Write the final checkpoint and fsync; the log then verifies as complete.
    pub fn close(mut self) -> Result<(), Error> {
        self.closed = true;
        self.write_checkpoint(true).map(|_| ())
    }

    /// `type`, `ts_ns` and `agent_id`, the members every record of the log's own has.
    /// A chain record with the common fields every audit record carries; the writer (this
    /// proctor process) is its subject.
    fn base(&self, ty: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("type".into(), Value::from(ty));
        let ts = now_ns();
        m.insert("ts_ns".into(), Value::from(ts));
        // Here, not in `write_chained`: a checkpoint's signature covers it.
        m.insert("time".into(), Value::from(proctor_model::rfc3339(ts)));
        m.insert("agent_id".into(), Value::from(self.agent_id.as_str()));
        m.insert("pid".into(), Value::from(std::process::id()));
        // SAFETY: getppid has no preconditions and cannot fail.
        m.insert("ppid".into(), Value::from(unsafe { libc::getppid() }));
        m.insert("comm".into(), Value::from("proctor"));
        m.insert("exec_id".into(), Value::from(""));
        m
    }

    fn write_checkpoint(&mut self, last: bool) -> Result<u64, Error> {
        let mut obj = self.base("checkpoint");
        obj.insert("final".into(), Value::Bool(last));
        obj.insert(
            "key_fingerprint".into(),
            Value::from(self.signer.fingerprint()),
        );
        obj.insert("seq".into(), Value::from(self.next_seq));
        obj.insert("hash_prev".into(), Value::from(self.head.as_str()));
        let sig = self
            .signer
            .sign(&canonical_json(&Value::Object(obj.clone())));
        obj.insert(
            "signature".into(),
            Value::from(base64::engine::general_purpose::STANDARD.encode(sig)),
        );
        obj.remove("seq");
        obj.remove("hash_prev");
        let seq = self.write_chained(&obj, &[], false)?;
        self.flush()?;
        let io = |error| Error::Io {
            path: self.path.clone(),
            error,
        };
        if last {
            self.file.get_ref().sync_data().map_err(io)?;
        } else if self.last_fsync.is_none_or(|t| t.elapsed() >= FSYNC_EVERY) {
            let f = self.file.get_ref().try_clone().map_err(io)?;
            self.syncer.sync(f, self.path.clone());
            self.last_fsync = Some(Instant::now());
        }
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(seq)
    }

    /// Write `prefix` and `record` as one canonical line with the chain members, and advance
    /// the head. `user`: a caller's record, whose `type` must be a string and not reserved.
    ///
    /// The record is serialised once, and the chain members (and `time`) are written at their
    /// sorted places as the line is written: `hash_self` is SHA-256 of the line without that
    /// member, so the bytes before and after it are hashed, and its value filled in after.
    fn write_chained<T: Serialize + ?Sized>(
        &mut self,
        record: &T,
        prefix: &[u8],
        user: bool,
    ) -> Result<u64, Error> {
        // Straight to canonical JSON (no serde_json::Value on the way: it was the monitor's
        // largest cost under a storm).
        let members = self.canon.object(record)?;
        // Readers (replay, verify) tell records apart by `type`. Canonical JSON spells a string
        // one way, so the raw value is compared.
        let ty = members.get("type").filter(|t| t.first() == Some(&b'"'));
        if user {
            let t = ty.ok_or(Error::MissingType)?;
            let t = &t[1..t.len() - 1];
            if let Some(r) = RESERVED_TYPES.iter().find(|r| r.as_bytes() == t) {
                return Err(Error::ReservedField(format!("type={r}")));
            }
        }
        for f in CHAIN_FIELDS {
            if members.get(f).is_some() {
                return Err(Error::ReservedField((*f).to_string()));
            }
        }
        let checkpoint = self.stamper.is_some() && ty == Some(&b"\"checkpoint\""[..]);
        let seq = self.next_seq;
        let mut seq_text = itoa::Buffer::new();
        let seq_text = seq_text.format(seq).as_bytes();
        self.time.clear();
        // jq 1.6 reads numbers as doubles and rounds `ts_ns`; a string time survives any reader.
        if members.get("time").is_none() {
            let ts = members
                .get("ts_ns")
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
            if let Some(ts) = ts {
                let mut buf = [0; proctor_model::RFC3339_LEN];
                let time = proctor_model::rfc3339_in(ts, &mut buf);
                crate::jcs::write_string(time, &mut self.time);
            }
        }
        self.prev.clear();
        crate::jcs::write_string(&self.head, &mut self.prev);
        // Sorted by name; the placeholder of `hash_self` is overwritten below.
        let chain: [(&str, &[u8]); 4] = [
            ("hash_prev", &self.prev),
            ("hash_self", HASH_PLACEHOLDER),
            ("seq", seq_text),
            ("time", &self.time),
        ];
        let chain = &chain[..if self.time.is_empty() { 3 } else { 4 }];
        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(prefix);
        let start = line.len();
        let cut = members.write(line, chain, 1);
        drop(members);
        let mut sha = sha2::Sha256::new();
        sha.update(&line[start..cut.start]);
        sha.update(&line[cut.end..]);
        // Past the comma before it (none when it is the first member) and `"hash_self":"`.
        let at = cut.start + usize::from(line[cut.start] == b',') + br#""hash_self":""#.len();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in sha.finalize().iter().enumerate() {
            line[at + 2 * i] = HEX[usize::from(b >> 4)];
            line[at + 2 * i + 1] = HEX[usize::from(b & 15)];
        }
        if let (true, Some(st), Some(dir)) = (checkpoint, &self.stamper, self.path.parent()) {
            st.stamp(&line[start..], crate::tsa::checkpoint_token_path(dir, seq));
        }
        self.head.clear();
        // Hex digits are ASCII.
        self.head
            .push_str(std::str::from_utf8(&line[at..at + 64]).unwrap_or_default());
        line.push(b'\n');
        let io = |error| Error::Io {
            path: self.path.clone(),
            error,
        };
        // One buffered write per record; `flush` (every monitoring batch, every checkpoint)
        // hands the batch to the kernel.
        self.file.write_all(line).map_err(io)?;
        self.next_seq = seq + 1;
        Ok(seq)
    }
}

impl Drop for AuditLog {
    /// Dropped without [`AuditLog::close`]: the writer stopped on an error (a full disk, a
    /// failed write) or unwound. What was written is signed, but not as a final checkpoint: the
    /// log must not claim a clean end when records may have been lost on the way.
    fn drop(&mut self) {
        if !self.closed {
            self.closed = true;
            if let Err(e) = self.write_checkpoint(false) {
                tracing::warn!("signing the end of {}: {e}", self.path.display());
            }
        }
    }
}

/// An intact chain record: a canonical JSON object whose `hash_self` matches its content.
/// Returns (seq, hash_self, is a final checkpoint).
pub(crate) fn intact_record(line: &[u8]) -> Option<(u64, String, bool)> {
    let value: Value = serde_json::from_slice(line).ok()?;
    if canonical_json(&value) != line {
        return None;
    }
    let mut obj = value.as_object()?.clone();
    let seq = obj.get("seq")?.as_u64()?;
    let hash = obj.remove("hash_self")?.as_str()?.to_string();
    if sha256_hex(&canonical_json(&Value::Object(obj.clone()))) != hash {
        return None;
    }
    let closed = obj.get("type").and_then(Value::as_str) == Some("checkpoint")
        && obj.get("final") == Some(&Value::Bool(true));
    Some((seq, hash, closed))
}

/// Find the last intact record and whatever follows it.
fn read_tail(file: &mut File, path: &Path) -> Result<Tail, Error> {
    let io = |error| Error::Io {
        path: path.to_path_buf(),
        error,
    };
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Ok(Tail {
            head: None,
            torn: None,
            needs_newline: false,
        });
    }
    // The last intact record plus the torn bytes fit in this window unless the file is not ours.
    let window = len.min(MAX_TORN_BYTES + 64 * 1024 * 1024);
    let start = len - window;
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut buf = Vec::with_capacity(window as usize);
    Read::by_ref(file)
        .take(window)
        .read_to_end(&mut buf)
        .map_err(io)?;
    // Line ends: each complete line is buf[b..e] with buf[e] == '\n'.
    let mut end = buf.len();
    if buf.last() != Some(&b'\n') {
        let b = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if b > 0 || start == 0 {
            if let Some(head) = intact_record(&buf[b..]) {
                return Ok(Tail {
                    head: Some(head),
                    torn: None,
                    needs_newline: true,
                });
            }
        }
        // Otherwise a final piece without a newline is torn.
        end = b;
    }
    let mut lines_seen = 0;
    loop {
        // Complete line buf[b..end-1] ends at `end` (exclusive of nothing: buf[end-1] == '\n').
        if end == 0 {
            if start == 0 {
                // No intact record at all: the whole file is a torn tail (a first write cut short).
                return torn_tail(None, 0, &buf, path);
            }
            break;
        }
        let b = buf[..end - 1]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |i| i + 1);
        if b == 0 && start != 0 {
            break; // the line may begin before the window
        }
        if let Some(head) = intact_record(&buf[b..end - 1]) {
            return torn_tail(Some(head), start + end as u64, &buf[end..], path);
        }
        lines_seen += 1;
        if lines_seen > MAX_TORN_LINES {
            break;
        }
        end = b;
    }
    Err(Error::NotAChain {
        path: path.to_path_buf(),
        reason: "no intact chain record near its end".into(),
    })
}

/// The seq of the last intact checkpoint within the last [`MAX_TORN_BYTES`] + 64 MiB of the
/// file, if any. Canonical JSON spells the type exactly one way, so a substring finds it.
fn last_checkpoint_seq(file: &mut File, path: &Path) -> Result<Option<u64>, Error> {
    let io = |error| Error::Io {
        path: path.to_path_buf(),
        error,
    };
    let len = file.metadata().map_err(io)?.len();
    let window = len.min(MAX_TORN_BYTES + 64 * 1024 * 1024);
    file.seek(SeekFrom::Start(len - window)).map_err(io)?;
    let mut buf = Vec::with_capacity(window as usize);
    Read::by_ref(file)
        .take(window)
        .read_to_end(&mut buf)
        .map_err(io)?;
    const NEEDLE: &[u8] = br#""type":"checkpoint""#;
    Ok(buf
        .split(|&b| b == b'\n')
        .rev()
        .filter(|l| l.windows(NEEDLE.len()).any(|w| w == NEEDLE))
        .find_map(intact_record)
        .map(|(seq, _, _)| seq))
}

fn torn_tail(
    head: Option<(u64, String, bool)>,
    offset: u64,
    rest: &[u8],
    path: &Path,
) -> Result<Tail, Error> {
    if rest.len() as u64 > MAX_TORN_BYTES {
        return Err(Error::NotAChain {
            path: path.to_path_buf(),
            reason: format!("{} bytes after the last intact record", rest.len()),
        });
    }
    Ok(Tail {
        head,
        torn: (!rest.is_empty()).then(|| (offset, rest.to_vec())),
        needs_newline: false,
    })
}
