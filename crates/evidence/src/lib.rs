//! Evidence: canonical JSON (RFC 8785), Ed25519-signed `.cal` certificates, the hash-chained
//! audit log, offline verification, and alert delivery to a local socket.
//!
//! Nothing here needs a kernel; everything is tested in plain `cargo test`.
//!
//! # Writing (what `proctor run` calls)
//! ```no_run
//! # use std::{path::Path, sync::Arc};
//! # fn demo(alert: &proctor_model::Alert, record: &proctor_model::Record) -> Result<(), proctor_evidence::Error> {
//! use proctor_evidence::{AuditLog, CertWriter, Signer, default_state_dir};
//! let (signer, created) = Signer::load_or_create(&default_state_dir())?; // or Signer::load(path)
//! let signer = Arc::new(signer);
//! let out = Path::new("proctor-out");
//! let mut log = AuditLog::open(out, signer.clone(), "agent")?;      // segment_start + checkpoint
//! log.append(record)?;                                               // any JSON-object record
//! let host = proctor_evidence::hostname();
//! let mut certs = CertWriter::new(&out.join("alerts"), signer, &host, None)?;
//! let written = certs.write(alert)?;                                 // one signed .cal file
//! log.record_certificate(&written)?;                                 // so a deletion shows
//! log.tick()?;                                                       // from an idle loop
//! log.close()?;                                                      // final signed checkpoint
//! # Ok(()) }
//! ```
//!
//! Sensor start/stop, mode changes and lost-event counts (including [`AlertSink::dropped`]) are
//! ordinary `append`s. Call `close` on every exit path you control: a log without its final
//! checkpoint verifies as *incomplete* (exit 1), exactly like one cut short by an attacker.
//! (Dropping an `AuditLog` also writes the final checkpoint; `std::process::exit` skips that.)
//!
//! # Checking (what `proctor verify` calls)
//! [`verify_paths`] takes certificates, directories and audit logs and returns a [`Report`]
//! (human text with [`Report::render`], JSON through serde, exit code with
//! [`Report::exit_code`]).
//!
//! # Formats
//! - Canonical JSON: [`jcs`] (RFC 8785; exact digits for integers above 2^53).
//! - Keys: [`keys`] (PKCS#8 PEM private key 0600, 113-byte SPKI PEM public key, fingerprint =
//!   hex SHA-256 of the public key's DER).
//! - Certificates: [`cert`] (members, signature encoding: standard base64).
//! - Audit log: [`audit`] (chain members, segment starts, signed checkpoints, torn tails).
//! - Alert delivery: [`sink`].
//!
//! # Choices a caller should know
//! - [`AuditLog`] buffers whole lines and hands them to the kernel at [`AuditLog::flush`] (the
//!   monitor calls it after every batch), [`AuditLog::tick`] and every checkpoint, so `tail -f`
//!   sees a record a batch later at most; a SIGKILL leaves the flushed lines and at most one torn
//!   line, which the next [`AuditLog::open`] records in a linked segment.
//! - Certificates are numbered per sensor run (`run_id`, `seq` from 1, `prev_sha256` within the
//!   run); a new run never renumbers or links to an earlier run's files. What shows a deleted
//!   last certificate of a run is the audit log's `certificate` record of it
//!   ([`AuditLog::record_certificate`]), so verify a run directory, not `alerts/` alone.
//! - Integers above 2^53 (`ts_ns`) keep their exact digits in canonical form, and the verifier
//!   reads them as `u64`: a JCS implementation that rounds through doubles computes a different
//!   canonical text for such a certificate (see [`jcs`]).

pub mod audit;
pub mod canon;
pub mod cert;
pub mod jcs;
pub mod keys;
pub mod lifecycle;
pub mod sink;
pub mod syncer;
pub mod tsa;
pub mod verify;

pub use audit::{AuditLog, AuditOptions, AUDIT_FILE};
pub use cert::{cert_file_name, CertWriter, Written, CERT_FORMAT, INCIDENT_CERT_FORMAT};
pub use jcs::canonical_json;
pub use keys::{
    default_state_dir, generate_keypair, publish_public_key, Signer, Verifier, PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
};
pub use sink::AlertSink;
pub use verify::{
    verify_paths, verify_paths_with, Finding, Item, Report, Severity, Status, TrustedKey,
    TrustedTime, VerifyOptions,
};

use std::path::{Path, PathBuf};

/// `hash_prev` of the first record and `prev_sha256` of the first certificate.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What went wrong while writing evidence or reading keys. Each names the file involved; none
/// contains key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Not a `source`: the message already names the cause, and a chain printer (anyhow's
    // `{:#}`) would repeat it.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{}: private key is accessible to group or others (mode {mode:04o}); refusing to use it (chmod 600 it)",
        path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("{}: not an Ed25519 private key in PKCS#8 PEM form", path.display())]
    BadPrivateKey { path: PathBuf },
    #[error("{}: {reason}", path.display())]
    BadPublicKey { path: PathBuf, reason: String },
    #[error("{}: already exists; refusing to overwrite a key", path.display())]
    KeyExists { path: PathBuf },
    #[error("{}: in use by another proctor (locked)", path.display())]
    Locked { path: PathBuf },
    #[error("{}: {reason}; refusing to append to it (move it aside)", path.display())]
    NotAChain { path: PathBuf, reason: String },
    #[error("a record must serialise to a JSON object")]
    NotAnObject,
    #[error("a record must have a string `type` member")]
    MissingType,
    #[error("record member `{0}` is reserved for the evidence layer")]
    ReservedField(String),
    #[error("{}: {reason}", path.display())]
    BadList { path: PathBuf, reason: String },
    #[error("serialising a record: {0}")]
    Json(#[from] serde_json::Error),
}

/// Open `path` for reading only if it is a regular file. The open itself is non-blocking, so a
/// FIFO or device planted under an evidence or key name cannot hang `verify` (opening a FIFO
/// waits for a writer); the type check is on the opened descriptor, not the name.
pub(crate) fn open_regular(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    // Regular files ignore O_NONBLOCK, so reads below behave as usual.
    Ok(file)
}

/// Lowercase hex SHA-256.
pub use proctor_model::sha256_hex;

/// Mode of every file proctor writes in an output directory: it holds argv, paths and, with
/// `--capture-tls`, plaintext, so only its owner reads it.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Create `dir` and any missing parents as 0700 (directories that already exist keep their
/// mode: they are the operator's).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Replace `path` whole with `bytes`, [`PRIVATE_FILE_MODE`]: written beside it as `NAME.tmp`,
/// then renamed over it, so a reader never sees half a file.
pub fn replace_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE_MODE)
        .open(&tmp)?;
    f.write_all(bytes)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// This machine's host name (for [`CertWriter::new`]), or `"unknown"`.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or fails.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Wall-clock UTC nanoseconds since the Unix epoch.
pub(crate) use proctor_model::now_ns;

/// `YYYYMMDDTHHMMSSZ` for a UTC time in nanoseconds since the epoch.
pub fn utc_compact(ts_ns: u64) -> String {
    let secs = ts_ns / 1_000_000_000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_matches_the_kernel() {
        let want = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("procfs");
        assert_eq!(hostname(), want.trim_end());
    }

    #[test]
    fn utc_compact_formats_known_instants() {
        assert_eq!(utc_compact(0), "19700101T000000Z");
        // 2000-02-29 12:34:56 UTC = 951827696
        assert_eq!(utc_compact(951_827_696_000_000_000), "20000229T123456Z");
        // 2026-11-23 08:28:49 UTC = 1795422529
        assert_eq!(utc_compact(1_795_422_529_123_456_789), "20261123T082849Z");
    }
}
