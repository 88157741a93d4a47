//! Signed alert certificates: one `.cal` file per alert.
//!
//! A certificate is one JSON object, written in canonical form ([`crate::canonical_json`])
//! followed by one `\n`. Its members are the [`Alert`]'s fields (`agent_id`, `ts_ns`, `channel`,
//! `kind`, `divergence`, `pid`, `exec_id`, `summary`, `trigger`, `syscall_trace`, `action`,
//! `count`) and:
//!
//! | member            | meaning |
//! |-------------------|---------|
//! | `format`          | `"proctor-cal/1"` |
//! | `run_id`          | the sensor run that wrote it (`YYYYMMDDTHHMMSSZ-<8 hex>`, UTC start time) |
//! | `seq`             | 1, 2, 3, ... within the run |
//! | `prev_sha256`     | hex SHA-256 of the whole file of certificate `seq - 1` of this run (64 zeros for seq 1) |
//! | `host`            | host name of the sensor |
//! | `baseline_sha256` | hex SHA-256 of the baseline the alert was judged against, or `null` |
//! | `key_fingerprint` | hex SHA-256 of the signing key's SubjectPublicKeyInfo DER |
//! | `signature`       | standard base64 (with padding) of the 64-byte Ed25519 signature over the canonical JSON of every other member |
//!
//! A divergence that is not a finite number (NaN, infinity) has no JSON form and is written as
//! `null`.
//!
//! File name: `<run_id>-<seq, 8 digits>.cal`, so names sort by run start, then sequence. Files
//! are written atomically (a temporary file in the same directory, then rename), so a reader
//! never sees half a certificate, and made durable by [`CertWriter::sync`] (fsync of each new
//! file, then of the directory, on a background thread: [`crate::syncer`]), which the monitor
//! calls at most once a second; dropping the writer waits for every fsync. Two fsyncs per
//! certificate on the alert path were most of the alert latency (about 4 ms at p50 on our VM
//! disks, 50 ms at p99 under load), and made alerts queue behind each other in a burst.

use crate::{canonical_json, now_ns, sha256_hex, utc_compact, Error, Signer, ZERO_HASH};
use base64::Engine as _;
use proctor_model::Alert;
use serde::Serialize;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `format` member of every alert certificate this version writes.
pub const CERT_FORMAT: &str = "proctor-cal/1";
/// The `format` member of an incident certificate (`DIR/incidents/`): the members are the
/// [`proctor_model::Incident`]'s (`host` and `run_id` are the certificate's own) and the same
/// certificate members as an alert's, chained per run in their own directory.
pub const INCIDENT_CERT_FORMAT: &str = "proctor-incident-cal/1";

/// Members a certificate adds to the alert's own.
pub const CERT_FIELDS: &[&str] = &[
    "format",
    "run_id",
    "seq",
    "prev_sha256",
    "host",
    "baseline_sha256",
    "key_fingerprint",
    "signature",
];

/// Writes the certificates of one sensor run.
pub struct CertWriter {
    /// [`CERT_FORMAT`] or [`INCIDENT_CERT_FORMAT`].
    format: &'static str,
    dir: PathBuf,
    signer: Arc<Signer>,
    host: String,
    baseline_sha256: Option<String>,
    run_id: String,
    seq: u64,
    prev_sha256: String,
    /// Written since the last [`CertWriter::sync`].
    pending: Vec<PathBuf>,
    last_sync: Option<std::time::Instant>,
    syncer: crate::syncer::Syncer,
    /// RFC 3161 stamping of each certificate, when a TSA is configured.
    stamper: Option<crate::tsa::Stamper>,
}

/// How often [`CertWriter::sync_due`] makes new certificates durable.
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Drop for CertWriter {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!("making certificates durable: {e}");
        }
    }
}

/// A certificate that was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    pub path: PathBuf,
    pub run_id: String,
    pub seq: u64,
    /// Hex SHA-256 of the whole file (what the next certificate's `prev_sha256` holds).
    pub sha256: String,
    /// The certificate's `format` (which directory of the run it is in).
    pub format: &'static str,
}

impl CertWriter {
    /// Create `alerts_dir` if needed and put the public key in it (so the directory can be
    /// handed to an auditor as is). Starts a new run: seq 1, a fresh `run_id`.
    pub fn new(
        alerts_dir: &Path,
        signer: Arc<Signer>,
        host: &str,
        baseline_sha256: Option<String>,
    ) -> Result<CertWriter, Error> {
        crate::create_private_dir(alerts_dir).map_err(|error| Error::Io {
            path: alerts_dir.to_path_buf(),
            error,
        })?;
        crate::keys::publish_public_key(alerts_dir, signer.verifier())?;
        crate::lifecycle::publish_keychain(alerts_dir, &signer)?;
        let mut rnd = [0u8; 4];
        getrandom::fill(&mut rnd).map_err(|e| Error::Io {
            path: PathBuf::from("<getrandom>"),
            error: std::io::Error::other(e.to_string()),
        })?;
        let run_id = format!("{}-{}", utc_compact(now_ns()), hex::encode(rnd));
        CertWriter::in_dir(
            alerts_dir,
            signer,
            host,
            baseline_sha256,
            run_id,
            CERT_FORMAT,
        )
    }

    /// The incident certificates of the run whose alert certificates `alerts` writes: their
    /// own directory (with the public key) and chain, the same `run_id`.
    pub fn for_incidents(alerts: &CertWriter, incidents_dir: &Path) -> Result<CertWriter, Error> {
        crate::create_private_dir(incidents_dir).map_err(|error| Error::Io {
            path: incidents_dir.to_path_buf(),
            error,
        })?;
        crate::keys::publish_public_key(incidents_dir, alerts.signer.verifier())?;
        crate::lifecycle::publish_keychain(incidents_dir, &alerts.signer)?;
        CertWriter::in_dir(
            incidents_dir,
            alerts.signer.clone(),
            &alerts.host,
            alerts.baseline_sha256.clone(),
            alerts.run_id.clone(),
            INCIDENT_CERT_FORMAT,
        )
    }

    fn in_dir(
        dir: &Path,
        signer: Arc<Signer>,
        host: &str,
        baseline_sha256: Option<String>,
        run_id: String,
        format: &'static str,
    ) -> Result<CertWriter, Error> {
        Ok(CertWriter {
            format,
            dir: dir.to_path_buf(),
            signer,
            host: host.to_string(),
            baseline_sha256,
            run_id,
            seq: 0,
            prev_sha256: ZERO_HASH.to_string(),
            pending: Vec::new(),
            last_sync: None,
            syncer: crate::syncer::Syncer::new("certs"),
            stamper: crate::tsa::Stamper::from_env(),
        })
    }

    /// Have every certificate written since the last call fsynced, then the directory (on the
    /// background thread, in that order).
    pub fn sync(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |error| Error::Io { path: p, error }
        };
        for p in std::mem::take(&mut self.pending) {
            let f = File::open(&p).map_err(io(&p))?;
            self.syncer.sync(f, p);
        }
        let d = File::open(&self.dir).map_err(io(&self.dir))?;
        self.syncer.sync(d, self.dir.clone());
        self.last_sync = Some(std::time::Instant::now());
        Ok(())
    }

    /// [`CertWriter::sync`] when certificates are waiting and the last sync is a second old.
    pub fn sync_due(&mut self) -> Result<(), Error> {
        if self.last_sync.is_none_or(|t| t.elapsed() >= SYNC_EVERY) {
            self.sync()?;
        }
        Ok(())
    }

    /// Bind the certificates written from now on to this baseline (the baseline is learned
    /// during the run: alerts before it, such as enforcement blocks, carry none).
    pub fn set_baseline_sha256(&mut self, baseline_sha256: Option<String>) {
        self.baseline_sha256 = baseline_sha256;
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The file name the next [`CertWriter::write`] will use (an alert's record names its
    /// certificate before it is written).
    pub fn next_file_name(&self) -> String {
        cert_file_name(&self.run_id, self.seq + 1)
    }

    /// How many certificates this run has written.
    pub fn count(&self) -> u64 {
        self.seq
    }

    /// Sign `alert` and write it as the next certificate of this run.
    pub fn write(&mut self, alert: &Alert) -> Result<Written, Error> {
        debug_assert_eq!(self.format, CERT_FORMAT);
        self.write_value(alert)
    }

    /// Sign `incident` (without `host`, `run_id` and `certificate`: the certificate's own
    /// members say where) and write it as the next incident certificate of this run.
    pub fn write_incident(&mut self, incident: &proctor_model::Incident) -> Result<Written, Error> {
        debug_assert_eq!(self.format, INCIDENT_CERT_FORMAT);
        let mut signed = incident.clone();
        signed.actor.host.clear();
        signed.run_id.clear();
        signed.certificate.clear();
        self.write_value(&signed)
    }

    fn write_value<T: Serialize>(&mut self, item: &T) -> Result<Written, Error> {
        let seq = self.seq + 1;
        let bytes = self.certificate_bytes(item, seq)?;
        let name = cert_file_name(&self.run_id, seq);
        let path = self.dir.join(&name);
        write_atomic(&self.dir, &name, &bytes)?;
        if let Some(st) = &self.stamper {
            st.stamp(&bytes, crate::tsa::cert_token_path(&path));
        }
        self.pending.push(path.clone());
        let sha256 = sha256_hex(&bytes);
        self.seq = seq;
        self.prev_sha256 = sha256.clone();
        Ok(Written {
            path,
            run_id: self.run_id.clone(),
            seq,
            sha256,
            format: self.format,
        })
    }

    /// The exact bytes of certificate `seq` for `item` (canonical JSON and a newline).
    fn certificate_bytes<T: Serialize>(&self, item: &T, seq: u64) -> Result<Vec<u8>, Error> {
        let Value::Object(mut obj) = serde_json::to_value(item)? else {
            return Err(Error::NotAnObject);
        };
        let ours = [
            ("format", Value::from(self.format)),
            ("run_id", Value::from(self.run_id.as_str())),
            ("seq", Value::from(seq)),
            ("prev_sha256", Value::from(self.prev_sha256.as_str())),
            ("host", Value::from(self.host.as_str())),
            (
                "baseline_sha256",
                self.baseline_sha256
                    .as_deref()
                    .map_or(Value::Null, Value::from),
            ),
            ("key_fingerprint", Value::from(self.signer.fingerprint())),
        ];
        for (k, v) in ours {
            if obj.insert(k.to_string(), v).is_some() {
                return Err(Error::ReservedField(k.to_string()));
            }
        }
        let signature = self
            .signer
            .sign(&canonical_json(&Value::Object(obj.clone())));
        obj.insert(
            "signature".into(),
            Value::from(base64::engine::general_purpose::STANDARD.encode(signature)),
        );
        let mut bytes = canonical_json(&Value::Object(obj));
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// `<run_id>-<seq, 8 digits>.cal`
pub fn cert_file_name(run_id: &str, seq: u64) -> String {
    format!("{run_id}-{seq:08}.cal")
}

/// Write `dir/name` so that a reader sees either no file or the whole file, even across a crash.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    write_atomic_mode(dir, name, bytes, crate::PRIVATE_FILE_MODE)
}

/// [`write_atomic`] with the file's mode.
pub(crate) fn write_atomic_mode(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), Error> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |error| Error::Io { path: p, error }
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(())
}
