//! Offline verification of certificates, directories of certificates and audit logs.
//!
//! [`verify_paths`] never panics on hostile input and reads bounded amounts: a certificate file
//! of at most [`MAX_CERT_BYTES`], audit log lines of at most [`MAX_LINE_BYTES`].
//!
//! Keys: with a pinned key (`--key`), every signature must be by that key, and anything signed by
//! another key is invalid. Without one, the public keys proctor wrote next to the data (`*.pem`
//! in the directory of the file or certificates and in its parent) are used, and the report says
//! so: such a key proves integrity relative to itself only, since whoever can replace the data
//! can replace the key too.

use crate::audit::{AUDIT_FILE, MAX_TORN_BYTES};
use crate::cert::{cert_file_name, CERT_FIELDS, CERT_FORMAT, INCIDENT_CERT_FORMAT};
use crate::lifecycle::{
    load_revocations, read_keychain, Announcement, Forged, KeyChain, RevocationList, KEYCHAIN_FILE,
};
use crate::{canonical_json, sha256_hex, Verifier, ZERO_HASH};
use base64::Engine as _;
use proctor_model::Alert;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

/// Largest certificate read.
pub const MAX_CERT_BYTES: u64 = 64 * 1024 * 1024;
/// Longest audit log line read.
pub const MAX_LINE_BYTES: u64 = 64 * 1024 * 1024;

/// How an item came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Valid,
    /// Everything present verifies, but the end is not proven: no final checkpoint.
    Incomplete,
    /// Could not be checked (unreadable, no key).
    Unchecked,
    Invalid,
}

/// Weight of one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing, not a problem (a recorded crash, the key used).
    Note,
    Incomplete,
    Unchecked,
    Invalid,
}

/// One thing found, with where.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// `file`, `file:line` or a directory.
    pub location: String,
    /// Stable identifier for machines: `signature`, `non_canonical`, `chain`, `seq`, `missing`,
    /// `duplicate`, `truncated`, `key`, ...
    pub problem: &'static str,
    pub message: String,
}

/// One verified thing: an audit log, a set of certificates, or one certificate.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub path: String,
    /// `audit_log`, `certificates`, or `file`/`directory` for a path that could not be read.
    pub kind: &'static str,
    pub status: Status,
    /// One line saying what was checked.
    pub summary: String,
    pub findings: Vec<Finding>,
}

/// A key that was trusted, and why.
#[derive(Debug, Clone, Serialize)]
pub struct TrustedKey {
    pub fingerprint: String,
    pub source: String,
    /// True for a key given on the command line; false for one found next to the data.
    pub pinned: bool,
    /// Signatures checked with it.
    pub signatures: u64,
    /// For a key reached by rotation: the key that announced it.
    pub rotated_from: Option<String>,
}

/// The outcome of [`verify_paths`].
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: Status,
    pub items: Vec<Item>,
    pub keys: Vec<TrustedKey>,
    /// RFC 3161 timestamp tokens found and checked.
    pub trusted_time: TrustedTime,
}

impl Report {
    /// 0 all valid, 1 something invalid or incomplete, 2 something could not be checked (and
    /// nothing invalid was found).
    pub fn exit_code(&self) -> u8 {
        match self.status {
            Status::Valid => 0,
            Status::Invalid | Status::Incomplete => 1,
            Status::Unchecked => 2,
        }
    }

    /// Human-readable text, one line per item and one per finding.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for item in &self.items {
            let _ = writeln!(
                s,
                "{:<10} {}: {}",
                status_word(item.status),
                item.path,
                item.summary
            );
            const SHOWN: usize = 50;
            if item.findings.len() > SHOWN {
                let _ = writeln!(
                    s,
                    "  ({} findings; the first {SHOWN} follow, --json lists all)",
                    item.findings.len()
                );
            }
            for f in item.findings.iter().take(SHOWN) {
                let tag = match f.severity {
                    Severity::Note => "note",
                    Severity::Incomplete => "incomplete",
                    Severity::Unchecked => "unchecked",
                    Severity::Invalid => "INVALID",
                };
                let _ = writeln!(s, "  {tag}: {}: {}", f.location, f.message);
            }
        }
        for k in &self.keys {
            let how = if k.pinned {
                "given with --key".to_string()
            } else if let Some(from) = &k.rotated_from {
                format!("announced by key {from} in a signed rotation")
            } else {
                format!(
                    "found next to the data at {}, not pinned: pass --key with a public key you obtained independently",
                    k.source
                )
            };
            let _ = writeln!(
                s,
                "key {}: {} signature(s) checked; {how}",
                k.fingerprint, k.signatures
            );
        }
        let t = &self.trusted_time;
        let time = match (t.verified, t.unchecked) {
            (0, 0) => "none: every time in this evidence is the host's clock, which whoever controls the host can set".to_string(),
            (0, n) => format!("{n} RFC 3161 timestamp token(s) present but not checked (pass --tsa-cert); until then times are the host's clock"),
            (n, u) => format!(
                "{n} RFC 3161 timestamp token(s) verified against the TSA certificate, genTime {} to {}{}",
                t.first_ns.map(crate::utc_compact).unwrap_or_default(),
                t.last_ns.map(crate::utc_compact).unwrap_or_default(),
                if u > 0 { format!("; {u} not checked") } else { String::new() }
            ),
        };
        let _ = writeln!(s, "trusted time: {time}");
        let _ = writeln!(s, "result: {}", status_word(self.status));
        s
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Valid => "VALID",
        Status::Incomplete => "INCOMPLETE",
        Status::Unchecked => "UNCHECKED",
        Status::Invalid => "INVALID",
    }
}

/// The keys signatures are checked with.
struct KeyRing {
    pinned: Option<Verifier>,
    found: BTreeMap<String, (Verifier, PathBuf)>,
    used: BTreeMap<String, u64>,
    /// Keys reached from the trusted ones by rotation announcements.
    chain: KeyChain,
    revoked: Option<RevocationList>,
    /// Problems with key chain files found next to the data.
    findings: Vec<Finding>,
    /// The timestamp authority's certificate (`--tsa-cert`).
    tsa: Option<x509_cert::Certificate>,
    time: TrustedTime,
}

/// What the timestamp tokens beside the data showed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrustedTime {
    /// Tokens that verified against the TSA certificate.
    pub verified: u64,
    /// Tokens present but not checked (no `--tsa-cert`).
    pub unchecked: u64,
    /// Earliest and latest genTime of the verified tokens (ns since the epoch).
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
}

impl KeyRing {
    /// Check the token at `token_path` (if there is one) over `data`; returns its genTime when
    /// it verified, an invalid finding when it does not.
    fn check_token(
        &mut self,
        token_path: &Path,
        data: &[u8],
        location: &str,
        what: &str,
    ) -> Result<Option<u64>, Finding> {
        let Ok(token) = std::fs::read(token_path) else {
            return Ok(None);
        };
        let Some(tsa) = &self.tsa else {
            self.time.unchecked += 1;
            return Ok(None);
        };
        let digest = <sha2::Sha256 as sha2::Digest>::digest(data);
        match crate::tsa::verify_token(&token, &digest, tsa) {
            Ok(t) => {
                self.time.verified += 1;
                self.time.first_ns = Some(self.time.first_ns.map_or(t, |f| f.min(t)));
                self.time.last_ns = Some(self.time.last_ns.map_or(t, |l| l.max(t)));
                Ok(Some(t))
            }
            Err(e) => Err(Finding {
                severity: Severity::Invalid,
                location: location.to_string(),
                problem: "timestamp",
                message: format!("{what}: timestamp token {}: {e}", token_path.display()),
            }),
        }
    }
}

/// What `proctor verify` is given besides the paths.
#[derive(Debug, Default, Clone)]
pub struct VerifyOptions {
    /// The pinned key (`--key`).
    pub key: Option<Verifier>,
    /// A signed revocation list (`--revoked`).
    pub revoked: Option<PathBuf>,
    /// The certificate of the timestamp authority (`--tsa-cert`), for timestamp tokens.
    pub tsa_cert: Option<PathBuf>,
}

enum KeyLookup<'a> {
    Key(&'a Verifier),
    /// Pinned key, but signed by another.
    Mismatch(String),
    Missing,
}

impl KeyRing {
    fn discover(&mut self, dir: &Path) {
        // Announcements are signed by the key before, so they are safe to take from next to
        // the data even with a pinned key.
        let chain_file = dir.join(KEYCHAIN_FILE);
        if chain_file.is_file() {
            match read_keychain(&chain_file) {
                Ok(list) => {
                    for a in list {
                        self.chain.add(a, chain_file.display().to_string());
                    }
                }
                Err(e) => self.findings.push(Finding {
                    severity: Severity::Invalid,
                    location: chain_file.display().to_string(),
                    problem: "key_chain",
                    message: format!("unreadable key chain: {e}"),
                }),
            }
        }
        if self.pinned.is_none() {
            self.discover_pem(dir);
        }
        self.resolve_chain();
    }

    /// Accept the announcements that now chain from a trusted key; report forged ones.
    fn resolve_chain(&mut self) {
        let pinned = self.pinned.clone();
        let found: BTreeMap<String, Verifier> = if pinned.is_none() {
            self.found
                .iter()
                .map(|(fp, (k, _))| (fp.clone(), k.clone()))
                .collect()
        } else {
            BTreeMap::new()
        };
        let revoked = self.revoked.clone();
        let (forged, _) = self.chain.resolve_with(
            |fp| match &pinned {
                Some(k) => (k.fingerprint() == fp).then(|| k.clone()),
                None => found.get(fp).cloned(),
            },
            |fp, ts| {
                revoked
                    .as_ref()
                    .and_then(|l| l.applies(fp, ts))
                    .map(|r| r.reason.clone())
            },
        );
        for f in forged {
            self.findings.push(forged_finding(&f.source, &f));
        }
    }

    fn discover_pem(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pem") && p.is_file())
            .collect();
        paths.sort();
        for p in paths {
            if let Ok(v) = Verifier::load(&p) {
                self.found
                    .entry(v.fingerprint().to_string())
                    .or_insert((v, p));
            }
        }
    }

    fn lookup(&mut self, fingerprint: &str) -> KeyLookup<'_> {
        if let Some((k, _)) = self.chain.accepted.get(fingerprint) {
            *self.used.entry(fingerprint.to_string()).or_default() += 1;
            return KeyLookup::Key(k);
        }
        if let Some(k) = &self.pinned {
            if k.fingerprint() != fingerprint {
                return KeyLookup::Mismatch(k.fingerprint().to_string());
            }
            *self.used.entry(fingerprint.to_string()).or_default() += 1;
            return KeyLookup::Key(k);
        }
        match self.found.get(fingerprint) {
            Some((k, _)) => {
                *self.used.entry(fingerprint.to_string()).or_default() += 1;
                KeyLookup::Key(k)
            }
            None => KeyLookup::Missing,
        }
    }

    /// Check `signature` (base64 of 64 bytes) over `message` by the key `fingerprint`, and
    /// that the key was not revoked at `ts_ns` (the time the signed object claims).
    fn check(
        &mut self,
        fingerprint: &str,
        signature_b64: &str,
        message: &[u8],
        ts_ns: Option<u64>,
        location: &str,
        what: &str,
    ) -> Option<Finding> {
        let finding = |severity, problem, message: String| {
            Some(Finding {
                severity,
                location: location.to_string(),
                problem,
                message,
            })
        };
        let sig = match base64::engine::general_purpose::STANDARD.decode(signature_b64) {
            Ok(s) if s.len() == 64 => s,
            _ => {
                return finding(
                    Severity::Invalid,
                    "signature",
                    format!("{what}: `signature` is not base64 of a 64-byte Ed25519 signature"),
                )
            }
        };
        match self.lookup(fingerprint) {
            KeyLookup::Key(k) => {
                if k.verify(message, &sig) {
                    let revoked = self
                        .revoked
                        .as_ref()
                        .and_then(|l| l.applies(fingerprint, ts_ns.unwrap_or(u64::MAX)));
                    revoked.and_then(|r| {
                        finding(
                            Severity::Invalid,
                            "revoked",
                            format!(
                                "{what}: signed by key {fingerprint}, revoked since {} ({}); this is dated {}: {}",
                                crate::utc_compact(r.revoked_at_ns),
                                r.revoked_at_ns,
                                ts_ns.map_or("(no date)".to_string(), crate::utc_compact),
                                r.reason
                            ),
                        )
                    })
                } else {
                    finding(
                        Severity::Invalid,
                        "signature",
                        format!("{what}: signature does not verify with key {fingerprint}: the content was changed after signing, or the signature is forged"),
                    )
                }
            }
            KeyLookup::Mismatch(pinned) => finding(
                Severity::Invalid,
                "key",
                format!("{what}: signed by key {fingerprint}, not by the key given with --key ({pinned}) nor by a key it rotated to"),
            ),
            KeyLookup::Missing => finding(
                Severity::Unchecked,
                "no_key",
                format!("{what}: no public key with fingerprint {fingerprint} next to the data; pass --key"),
            ),
        }
    }
}

/// Verify each path: a `.cal` certificate, a directory (its `audit.jsonl`, its `*.cal` files and
/// those in its `alerts/`), or any other file as an audit log. `key` pins the trusted key.
pub fn verify_paths(paths: &[PathBuf], key: Option<&Verifier>) -> Report {
    verify_paths_with(
        paths,
        &VerifyOptions {
            key: key.cloned(),
            ..VerifyOptions::default()
        },
    )
}

/// [`verify_paths`] with a revocation list and a timestamp authority's certificate.
pub fn verify_paths_with(paths: &[PathBuf], opts: &VerifyOptions) -> Report {
    let mut keys = KeyRing {
        pinned: opts.key.clone(),
        found: BTreeMap::new(),
        used: BTreeMap::new(),
        chain: KeyChain::default(),
        revoked: None,
        findings: Vec::new(),
        tsa: None,
        time: TrustedTime::default(),
    };
    let mut items = Vec::new();
    if let Some(p) = &opts.tsa_cert {
        match crate::tsa::load_cert(p) {
            Ok(c) => keys.tsa = Some(c),
            Err(e) => items.push(unchecked_item(p, "tsa_certificate", e)),
        }
    }
    if let Some(list) = &opts.revoked {
        // The list's issuer is trusted like any signer: pinned, or found next to the data (the
        // list carries its own announcements). Rotations are followed only once the list is
        // known, so that one made by a revoked key is refused.
        if keys.pinned.is_none() {
            for p in paths {
                let dir = if p.is_dir() { p.clone() } else { parent_of(p) };
                keys.discover_pem(&dir);
                keys.discover_pem(&dir.join("alerts"));
            }
        }
        let (pinned, found) = (keys.pinned.clone(), keys.found.clone());
        let trusted = |fp: &str| match &pinned {
            Some(k) => (k.fingerprint() == fp).then(|| k.clone()),
            None => found.get(fp).map(|(k, _)| k.clone()),
        };
        match load_revocations(list, trusted) {
            Ok(l) => {
                items.push(Item {
                    path: list.display().to_string(),
                    kind: "revocation_list",
                    status: Status::Valid,
                    summary: format!(
                        "revocation list signed by key {}: {} key(s) revoked",
                        l.issuer,
                        l.entries.len()
                    ),
                    findings: Vec::new(),
                });
                keys.revoked = Some(l);
            }
            Err(e) => items.push(unchecked_item(list, "revocation_list", e.to_string())),
        }
    }
    let mut loose_certs: Vec<PathBuf> = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Err(e) => items.push(unchecked_item(path, "file", format!("cannot read: {e}"))),
            Ok(m) if m.is_dir() => verify_dir(path, &mut keys, &mut items),
            Ok(_) => {
                let parent = parent_of(path);
                keys.discover(&parent);
                if let Some(pp) = parent.parent() {
                    keys.discover(pp);
                }
                if path.extension().is_some_and(|e| e == "cal") {
                    loose_certs.push(path.clone());
                } else {
                    items.push(verify_audit_log(path, &mut keys).0);
                }
            }
        }
    }
    if !loose_certs.is_empty() {
        let label = if loose_certs.len() == 1 {
            loose_certs[0].display().to_string()
        } else {
            format!("{} certificate files", loose_certs.len())
        };
        items.push(verify_cert_set(&label, &loose_certs, false, &[], &mut keys));
    }
    if !keys.findings.is_empty() {
        items.push(Item {
            path: "key chain".into(),
            kind: "key_chain",
            status: Status::Invalid,
            summary: "key rotation announcements next to the data".into(),
            findings: std::mem::take(&mut keys.findings),
        });
    }
    let status = items
        .iter()
        .map(|i| i.status)
        .max()
        .unwrap_or(Status::Unchecked);
    let time = keys.time.clone();
    let keys = keys
        .used
        .iter()
        .map(|(fp, n)| {
            let rotated = keys.chain.accepted.get(fp).map(|(_, from)| from.clone());
            let (source, pinned) = match (&keys.pinned, keys.found.get(fp), &rotated) {
                (_, _, Some(from)) => (format!("rotation from key {from}"), false),
                (Some(k), _, _) if k.fingerprint() == fp => ("--key".to_string(), true),
                (None, Some((_, p)), _) => (p.display().to_string(), false),
                _ => (String::new(), false),
            };
            TrustedKey {
                fingerprint: fp.clone(),
                source,
                pinned,
                signatures: *n,
                rotated_from: rotated,
            }
        })
        .collect();
    Report {
        status,
        items,
        keys,
        trusted_time: time,
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn unchecked_item(path: &Path, kind: &'static str, message: String) -> Item {
    Item {
        path: path.display().to_string(),
        kind,
        status: Status::Unchecked,
        summary: message.clone(),
        findings: vec![Finding {
            severity: Severity::Unchecked,
            location: path.display().to_string(),
            problem: "unreadable",
            message,
        }],
    }
}

/// Certificates checked without an audit log: a gap inside a run shows, but not a run's
/// deleted last certificates (or a whole deleted run); only the log records those.
fn unlogged_note(dir: &Path, label: &str) -> Finding {
    let parent_log = dir
        .parent()
        .map(|p| p.join(AUDIT_FILE))
        .filter(|l| l.is_file());
    let message = match parent_log {
        Some(log) => format!(
            "not checked against {}: verify the run directory {} so that a deleted last certificate shows",
            log.display(),
            parent_of(&log).display()
        ),
        None => "no audit log checked with these certificates: a gap inside a run shows, but a run's deleted last certificate(s) cannot".into(),
    };
    Finding {
        severity: Severity::Note,
        location: label.to_string(),
        problem: "no_audit_log",
        message,
    }
}

fn cal_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cal"))
        .collect();
    v.sort();
    Ok(v)
}

fn verify_dir(dir: &Path, keys: &mut KeyRing, items: &mut Vec<Item>) {
    keys.discover(dir);
    let mut refs = Vec::new();
    let mut found = false;
    let log = dir.join(AUDIT_FILE);
    let logged = log.exists();
    if logged {
        found = true;
        let (item, r) = verify_audit_log(&log, keys);
        items.push(item);
        refs = r;
    }
    // Alert certificates are in alerts/, incident certificates in incidents/; the audit log
    // records both, each with its format.
    let (incident_refs, alert_refs): (Vec<CertRef>, Vec<CertRef>) = refs
        .into_iter()
        .partition(|r| r.format == INCIDENT_CERT_FORMAT);
    for (d, refs) in [
        (dir.to_path_buf(), Vec::new()),
        (dir.join("alerts"), alert_refs),
        (dir.join("incidents"), incident_refs),
    ] {
        // A missing alerts/ (incidents/) still gets checked when the audit log recorded
        // certificates there; a run without incidents has no incidents/.
        if d != dir && !d.is_dir() {
            if !refs.is_empty() {
                found = true;
                let label = d.display().to_string();
                items.push(verify_cert_set(&label, &[], true, &refs, keys));
            }
            continue;
        }
        keys.discover(&d);
        match cal_files(&d) {
            Ok(files) if files.is_empty() && d == dir => {}
            Ok(files) => {
                found = true;
                let label = d.display().to_string();
                let mut item = verify_cert_set(&label, &files, true, &refs, keys);
                if !logged {
                    item.findings.push(unlogged_note(&d, &label));
                }
                items.push(item);
            }
            Err(e) => {
                found = true;
                items.push(unchecked_item(
                    &d,
                    "certificates",
                    format!("cannot list: {e}"),
                ));
            }
        }
    }
    // proctor creates alerts/ beside the log of every run: a directory that has it but no log
    // is a run whose log was deleted (the agent can delete it live). (A directory of
    // certificates alone, with their public key, is not a run directory.)
    let run_dir = dir.join("alerts").is_dir() || dir.join("alerts.jsonl").is_file();
    if !logged && run_dir {
        found = true;
        items.push(Item {
            path: log.display().to_string(),
            kind: "audit_log",
            status: Status::Invalid,
            summary: "missing".into(),
            findings: vec![Finding {
                severity: Severity::Invalid,
                location: dir.display().to_string(),
                problem: "log_missing",
                message: format!(
                    "{} is a proctor run directory (it has alerts/) but its {AUDIT_FILE} is missing: deleted or never copied; nothing it recorded can be checked",
                    dir.display()
                ),
            }],
        });
    }
    if !found {
        items.push(unchecked_item(
            dir,
            "directory",
            "no audit.jsonl, alerts/ or .cal files here".into(),
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// A certificate that passed every check on its own.
struct GoodCert {
    path: PathBuf,
    run_id: String,
    seq: u64,
    prev_sha256: String,
    sha256: String,
}

/// A certificate recorded in an audit log (`type: certificate`).
#[derive(Debug, Clone)]
pub(crate) struct CertRef {
    location: String,
    run_id: String,
    seq: u64,
    sha256: String,
    file: String,
    /// The certificate's format: which directory it is in.
    format: String,
}

fn is_hex64(s: &[u8]) -> bool {
    // Every byte tested, without an early exit, so that the loop runs as vector compares: it
    // runs twice per line on verify's hot path.
    s.len() == 64
        && s.iter().fold(true, |ok, b| {
            ok & (b.is_ascii_digit() | (b'a'..=b'f').contains(b))
        })
}

/// Check one certificate file on its own: canonical form, members, signature.
fn check_cert(path: &Path, keys: &mut KeyRing) -> Result<GoodCert, Finding> {
    let loc = path.display().to_string();
    let fail = |severity, problem, message: String| Finding {
        severity,
        location: loc.clone(),
        problem,
        message,
    };
    let mut bytes = Vec::new();
    match crate::open_regular(path).and_then(|f| f.take(MAX_CERT_BYTES + 1).read_to_end(&mut bytes))
    {
        Ok(_) if bytes.len() as u64 > MAX_CERT_BYTES => {
            return Err(fail(
                Severity::Invalid,
                "too_large",
                "larger than any certificate proctor writes".into(),
            ))
        }
        Ok(_) => {}
        Err(e) => {
            return Err(fail(
                Severity::Unchecked,
                "unreadable",
                format!("cannot read: {e}"),
            ))
        }
    }
    let body = match bytes.strip_suffix(b"\n") {
        Some(b) => b,
        None => {
            return Err(fail(
                Severity::Invalid,
                "truncated",
                "does not end with a newline: truncated or edited".into(),
            ))
        }
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        fail(
            Severity::Invalid,
            "not_json",
            format!("not valid JSON ({e}): damaged or edited"),
        )
    })?;
    let Value::Object(mut obj) = value else {
        return Err(fail(
            Severity::Invalid,
            "not_json",
            "not a JSON object".into(),
        ));
    };
    if canonical_json(&Value::Object(obj.clone())) != body {
        return Err(fail(
            Severity::Invalid,
            "non_canonical",
            "not in canonical (RFC 8785) form: the file was re-encoded or edited after signing"
                .into(),
        ));
    }
    let incident = match obj.get("format").and_then(Value::as_str) {
        Some(CERT_FORMAT) => false,
        Some(INCIDENT_CERT_FORMAT) => true,
        _ => return Err(fail(
            Severity::Invalid,
            "format",
            format!("`format` is not \"{CERT_FORMAT}\" (nor \"{INCIDENT_CERT_FORMAT}\"): not a proctor certificate, or an unknown version"),
        )),
    };
    let str_field =
        |obj: &Map<String, Value>, k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(fp), Some(sig)) = (
        str_field(&obj, "key_fingerprint"),
        str_field(&obj, "signature"),
    ) else {
        return Err(fail(
            Severity::Invalid,
            "fields",
            "`key_fingerprint` or `signature` missing".into(),
        ));
    };
    obj.remove("signature");
    let signed = canonical_json(&Value::Object(obj.clone()));
    // A verified token dates the certificate by the TSA's clock rather than the host's.
    let stamped = keys.check_token(
        &crate::tsa::cert_token_path(path),
        &bytes,
        &loc,
        "certificate",
    )?;
    let own_time = if incident { "updated_ns" } else { "ts_ns" };
    let ts_ns = stamped.or(obj.get(own_time).and_then(Value::as_u64));
    if let Some(f) = keys.check(&fp, &sig, &signed, ts_ns, &loc, "certificate") {
        return Err(f);
    }
    // Signed by the trusted key from here on; a malformed member means a bug or a foreign
    // writer, still not a certificate we accept.
    let seq = obj.get("seq").and_then(Value::as_u64).filter(|&s| s >= 1);
    let run_id = str_field(&obj, "run_id").filter(|r| {
        !r.is_empty() && r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let prev = str_field(&obj, "prev_sha256").filter(|p| is_hex64(p.as_bytes()));
    let baseline_ok = match obj.get("baseline_sha256") {
        Some(Value::Null) => true,
        Some(Value::String(s)) => is_hex64(s.as_bytes()),
        _ => false,
    };
    let host_ok = obj.get("host").is_some_and(Value::is_string);
    let (Some(seq), Some(run_id), Some(prev_sha256), true, true) =
        (seq, run_id, prev, baseline_ok, host_ok)
    else {
        return Err(fail(
            Severity::Invalid,
            "fields",
            "a certificate member (seq, run_id, prev_sha256, host or baseline_sha256) is missing or malformed".into(),
        ));
    };
    let mut alert = obj.clone();
    for k in CERT_FIELDS {
        alert.remove(*k);
    }
    // JSON has no NaN or infinity: serde writes a non-finite divergence as null. Accept that
    // spelling (type check only; the signed content is unchanged).
    if alert.get("divergence") == Some(&Value::Null) {
        alert.insert("divergence".into(), Value::from(0));
    }
    let alert_value = Value::Object(alert);
    let decoded = if incident {
        serde_json::from_value::<proctor_model::Incident>(alert_value.clone())
            .and_then(|i| serde_json::to_value(&i))
    } else {
        serde_json::from_value::<Alert>(alert_value.clone()).and_then(|a| serde_json::to_value(&a))
    };
    match decoded {
        Ok(known) => {
            // Every member must be one the format knows (it round-trips to the same keys).
            let known = Some(known);
            let unknown: Vec<&String> = alert_value
                .as_object()
                .map(|m| {
                    m.keys()
                        .filter(|k| known.as_ref().and_then(|v| v.get(k.as_str())).is_none())
                        .collect()
                })
                .unwrap_or_default();
            if !unknown.is_empty() {
                return Err(fail(
                    Severity::Invalid,
                    "fields",
                    format!("unknown member(s): {unknown:?}"),
                ));
            }
        }
        Err(e) => {
            return Err(fail(
                Severity::Invalid,
                "fields",
                format!(
                    "the {} members do not decode: {e}",
                    if incident { "incident" } else { "alert" }
                ),
            ))
        }
    }
    let expected_name = cert_file_name(&run_id, seq);
    if path.file_name().and_then(|n| n.to_str()) != Some(expected_name.as_str()) {
        return Err(fail(
            Severity::Invalid,
            "renamed",
            format!("the certificate inside is run {run_id} seq {seq}, whose file name is {expected_name}: renamed (reordered or substituted)"),
        ));
    }
    Ok(GoodCert {
        path: path.to_path_buf(),
        run_id,
        seq,
        prev_sha256,
        sha256: sha256_hex(&bytes),
    })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Check certificates one by one, then as runs: `complete` (a whole directory) also requires
/// every run to start at seq 1 without gaps. `refs` are the certificates an audit log recorded.
fn verify_cert_set(
    label: &str,
    files: &[PathBuf],
    complete: bool,
    refs: &[CertRef],
    keys: &mut KeyRing,
) -> Item {
    let mut findings = Vec::new();
    let mut runs: BTreeMap<String, BTreeMap<u64, Vec<GoodCert>>> = BTreeMap::new();
    for f in files {
        match check_cert(f, keys) {
            Ok(c) => runs
                .entry(c.run_id.clone())
                .or_default()
                .entry(c.seq)
                .or_default()
                .push(c),
            Err(finding) => findings.push(finding),
        }
    }
    let invalid_files = findings.len();
    let present: std::collections::HashSet<String> = files.iter().map(|f| file_name(f)).collect();
    for (run, certs) in &runs {
        for (seq, copies) in certs {
            if copies.len() > 1 {
                let names: Vec<String> = copies.iter().map(|c| file_name(&c.path)).collect();
                let same = copies.iter().all(|c| c.sha256 == copies[0].sha256);
                findings.push(Finding {
                    severity: Severity::Invalid,
                    location: label.to_string(),
                    problem: "duplicate",
                    message: format!(
                        "run {run} seq {seq} is in {} files ({}): {}",
                        copies.len(),
                        names.join(", "),
                        if same {
                            "duplicated copies"
                        } else {
                            "different contents signed with the same seq"
                        }
                    ),
                });
            }
        }
        if complete {
            let mut expected = 1u64;
            for &seq in certs.keys() {
                // Seqs whose file is there but failed its own checks are reported already.
                while expected < seq && present.contains(&cert_file_name(run, expected)) {
                    expected += 1;
                }
                if seq > expected {
                    let gap = if seq - 1 == expected {
                        format!("seq {expected} is")
                    } else {
                        format!("seqs {expected}..{} are", seq - 1)
                    };
                    findings.push(Finding {
                        severity: Severity::Invalid,
                        location: label.to_string(),
                        problem: "missing",
                        message: format!("run {run}: certificate {gap} missing (deleted)"),
                    });
                }
                expected = seq.saturating_add(1);
            }
        }
        for (seq, copies) in certs {
            let c = &copies[0];
            let prev_digest = if *seq == 1 {
                Some(ZERO_HASH.to_string())
            } else {
                certs.get(&(seq - 1)).map(|p| p[0].sha256.clone())
            };
            if let Some(d) = prev_digest {
                if d != c.prev_sha256 && copies.len() == 1 {
                    findings.push(Finding {
                        severity: Severity::Invalid,
                        location: c.path.display().to_string(),
                        problem: "chain",
                        message: if *seq == 1 {
                            "seq 1 must have prev_sha256 of 64 zeros".to_string()
                        } else {
                            format!("prev_sha256 is not the digest of seq {} of the same run: that certificate was replaced", seq - 1)
                        },
                    });
                }
            }
        }
    }
    for r in refs {
        let found = runs.get(&r.run_id).and_then(|c| c.get(&r.seq));
        match found {
            // Present but failed its own checks: already reported above.
            None if present.contains(&r.file) => {}
            None => findings.push(Finding {
                severity: Severity::Invalid,
                location: r.location.clone(),
                problem: "missing",
                message: format!(
                    "the audit log records certificate {} (run {} seq {}), which is not in {label}: deleted",
                    r.file, r.run_id, r.seq
                ),
            }),
            Some(c) if !c.iter().any(|c| c.sha256 == r.sha256) => findings.push(Finding {
                severity: Severity::Invalid,
                location: r.location.clone(),
                problem: "replaced",
                message: format!(
                    "certificate {} differs from the one the audit log recorded (sha256 {}): replaced",
                    r.file, r.sha256
                ),
            }),
            Some(_) => {}
        }
    }
    if !refs.is_empty() {
        let recorded: std::collections::HashSet<(&str, u64)> =
            refs.iter().map(|r| (r.run_id.as_str(), r.seq)).collect();
        for (run, certs) in &runs {
            for (seq, copies) in certs {
                if !recorded.contains(&(run.as_str(), *seq)) {
                    findings.push(Finding {
                        severity: Severity::Note,
                        location: copies[0].path.display().to_string(),
                        problem: "unrecorded",
                        message: "a valid certificate the audit log does not record: written just before proctor was killed, or copied here from another run".into(),
                    });
                }
            }
        }
    }
    let good: usize = runs
        .values()
        .map(|c| c.values().map(Vec::len).sum::<usize>())
        .sum();
    let status = findings
        .iter()
        .map(|f| match f.severity {
            Severity::Invalid => Status::Invalid,
            Severity::Unchecked => Status::Unchecked,
            Severity::Incomplete => Status::Incomplete,
            Severity::Note => Status::Valid,
        })
        .max()
        .unwrap_or(Status::Valid);
    let mut summary = format!(
        "{} certificate(s) in {} run(s): {} verified",
        files.len(),
        runs.len(),
        good
    );
    if invalid_files > 0 {
        let _ = write!(summary, ", {invalid_files} failed");
    }
    if !refs.is_empty() {
        let _ = write!(summary, "; {} recorded in the audit log", refs.len());
    }
    Item {
        path: label.to_string(),
        kind: "certificates",
        status,
        summary,
        findings,
    }
}

// ---------------------------------------------------------------------------------------------
// Audit log

/// Unreadable lines waiting for a `segment_start` that accounts for them as a torn tail.
struct Pending {
    first_line: u64,
    first_error: String,
    bytes: Vec<u8>,
    len: u64,
    /// The last piece had no newline (end of file).
    ends_unterminated: bool,
}

/// Streaming state of one audit log check.
struct LogState {
    expected_seq: u64,
    /// The last record's `hash_self` (hex).
    prev_hash: Vec<u8>,
    /// Line number and seq of the last record, and whether it was a final checkpoint.
    closed: bool,
    last_line: u64,
    last_signed: Option<(u64, u64)>, // (line, seq) of the last verified checkpoint
    segments: u64,
    records: u64,
    /// The previous record was a segment_start: the next must be its checkpoint.
    want_checkpoint: Option<u64>,
    checkpoints: u64,
    /// Fingerprint of the key of the first verified checkpoint.
    first_key: Option<String>,
    /// The log's directory (where `timestamps/` is).
    dir: PathBuf,
    /// The kernel record numbers the current segment's records carry and declare missing.
    kseq: proctor_model::kseq::Audit,
}

fn verify_audit_log(path: &Path, keys: &mut KeyRing) -> (Item, Vec<CertRef>) {
    let label = path.display().to_string();
    let mut findings = Vec::new();
    let mut refs = Vec::new();
    let file = match crate::open_regular(path) {
        Ok(f) => f,
        Err(e) => {
            return (
                unchecked_item(path, "audit_log", format!("cannot read: {e}")),
                refs,
            )
        }
    };
    let mut reader = LineBatches::new(file);
    let mut st = LogState {
        expected_seq: 1,
        prev_hash: ZERO_HASH.as_bytes().to_vec(),
        closed: false,
        last_line: 0,
        last_signed: None,
        segments: 0,
        records: 0,
        want_checkpoint: None,
        checkpoints: 0,
        first_key: None,
        dir: parent_of(path),
        kseq: Default::default(),
    };
    let mut pending: Option<Pending> = None;
    let mut line_no = 0u64;
    let mut lines: Vec<Range<usize>> = Vec::new();
    let mut scanned: Vec<Option<Fast>> = Vec::new();
    let mut pool = None;
    let mut loc = format!("{label}:");
    let mut stopped = false;
    'batches: loop {
        // Lines are read a batch at a time, and each line's canonical-form scan and hash (the
        // bulk of the work, independent from line to line) run for the whole batch, on every
        // core for a large log (`scan_lines`); the chain is then checked line by line in order.
        let (read_error, eof) = reader.next_batch(&mut lines);
        scan_lines(&mut pool, &mut reader, &mut lines, &mut scanned);
        let batch = &reader.buf[..reader.len];
        for (range, fast) in lines.iter().zip(scanned.drain(..)) {
            let buf = &batch[range.clone()];
            let n = buf.len();
            line_no += 1;
            // One buffer for every line's location: a fresh String per line, then `write!` into
            // this one, were each a visible share of verify's time, and the location is read only
            // when something is reported.
            loc.truncate(label.len() + 1);
            loc.push_str(itoa::Buffer::new().format(line_no));
            let terminated = buf.last() == Some(&b'\n');
            if !terminated && n as u64 > MAX_LINE_BYTES {
                findings.push(Finding {
                    severity: Severity::Invalid,
                    location: loc.clone(),
                    problem: "too_long",
                    message: format!(
                        "line longer than {MAX_LINE_BYTES} bytes: not written by proctor"
                    ),
                });
                stopped = true;
                break 'batches;
            }
            let body = if terminated { &buf[..n - 1] } else { buf };
            let full;
            // A torn tail is accounted for by the segment start that follows: read that one whole.
            let line = match fast
                .filter(|_| pending.is_none())
                .and_then(|f| f.line(body))
            {
                Some(line) => line,
                None => match parse_chain_line(body) {
                    Ok(obj) => {
                        full = obj;
                        ChainLine::from_obj(&full, body)
                    }
                    Err(error) => {
                        let p = pending.get_or_insert_with(|| Pending {
                            first_line: line_no,
                            first_error: error,
                            bytes: Vec::new(),
                            len: 0,
                            ends_unterminated: false,
                        });
                        p.len += n as u64;
                        if p.len <= MAX_TORN_BYTES + 1 {
                            p.bytes.extend_from_slice(buf);
                        }
                        p.ends_unterminated = !terminated;
                        continue;
                    }
                },
            };
            if let Some(p) = pending.take() {
                if let Err(f) = torn_accounted(&p, &line, &label, line_no) {
                    findings.push(f);
                    stopped = true;
                    break 'batches;
                }
                findings.push(Finding {
                severity: Severity::Note,
                location: format!("{label}:{}", p.first_line),
                problem: "torn_recorded",
                message: format!(
                    "{} byte(s) of an interrupted write (lines {}..{}), recorded by the segment start at line {line_no}",
                    p.len,
                    p.first_line,
                    line_no - 1
                ),
            });
            }
            if !terminated {
                findings.push(Finding {
                severity: Severity::Note,
                location: loc.clone(),
                problem: "no_newline",
                message: "the last line lacks its newline (the file was cut by one byte, or edited); its content verifies".into(),
            });
            }
            if line.ty == "segment_start" {
                // The sensor that wrote the previous segment numbered its own records.
                kseq_segment_end(&mut st, &label, &mut findings);
            }
            // Seqs skipped here, if any: on a gap, the rest of the file tells deleted from moved.
            let gap = (line.seq > st.expected_seq).then(|| (st.expected_seq, line.seq - 1));
            if let Err(mut f) = check_record(
                &line,
                body,
                &loc,
                line_no,
                &mut st,
                keys,
                &mut findings,
                &mut refs,
            ) {
                if let (Some((from, to)), "seq") = (gap, f.problem) {
                    let mut later = (&batch[range.end..]).chain(BufReader::new(&mut reader.file));
                    if let Some((seq, at)) = find_seq_later(&mut later, from, to, line_no) {
                        f.message = format!(
                        "seq {}: expected seq {from}, which comes later (seq {seq} is at line {at}): the records were reordered",
                        to + 1
                    );
                    }
                } else if f.problem == "seq" {
                    if let Some(msg) =
                        describe_repeat(path, line.seq, body, line_no, st.expected_seq)
                    {
                        f.message = msg;
                    }
                }
                findings.push(f);
                stopped = true;
                break 'batches;
            }
            kseq_step(&line, &mut st);
        }
        if let Some(e) = read_error {
            findings.push(Finding {
                severity: Severity::Unchecked,
                location: format!("{label}:{}", line_no + 1),
                problem: "unreadable",
                message: format!("read error: {e}"),
            });
            stopped = true;
            break;
        }
        if eof || lines.is_empty() {
            break;
        }
    }
    if !stopped {
        kseq_segment_end(&mut st, &label, &mut findings);
    }
    if !stopped {
        if let Some(p) = pending {
            if p.ends_unterminated && p.first_line == line_no {
                findings.push(Finding {
                    severity: Severity::Incomplete,
                    location: format!("{label}:{line_no}"),
                    problem: "truncated",
                    message: format!(
                        "the last line is incomplete ({} bytes without a newline): the writer was interrupted mid-write or the file was cut; every line before it verifies",
                        p.len
                    ),
                });
            } else {
                findings.push(Finding {
                    severity: Severity::Invalid,
                    location: format!("{label}:{}", p.first_line),
                    problem: "malformed",
                    message: format!("not a valid chain record: {}", p.first_error),
                });
                stopped = true;
            }
        }
    }
    if !stopped {
        if st.records == 0 {
            findings.push(Finding {
                severity: Severity::Incomplete,
                location: label.clone(),
                problem: "empty",
                message: "no records".into(),
            });
        } else if let Some(l) = st.want_checkpoint {
            findings.push(Finding {
                severity: Severity::Incomplete,
                location: format!("{label}:{l}"),
                problem: "truncated",
                message: "the log ends right after a segment start, before its checkpoint: interrupted or truncated".into(),
            });
        } else if !st.closed {
            let unsigned = match st.last_signed {
                Some((l, s)) => format!(
                    "records up to seq {s} (line {l}) are covered by a signed checkpoint; the {} after it are chained but unsigned",
                    st.expected_seq - 1 - s
                ),
                None => "no record is covered by a signed checkpoint".into(),
            };
            findings.push(Finding {
                severity: Severity::Incomplete,
                location: format!("{label}:{}", st.last_line),
                problem: "not_closed",
                message: format!(
                    "the log ends at seq {} without a final checkpoint: proctor was killed or is still running, or the end was truncated; {unsigned}",
                    st.expected_seq - 1
                ),
            });
        }
    } else {
        findings.push(Finding {
            severity: Severity::Note,
            location: label.clone(),
            problem: "stopped",
            message: format!(
                "checking stopped at line {line_no}: nothing after a broken link can be trusted"
            ),
        });
    }
    let status = findings
        .iter()
        .map(|f| match f.severity {
            Severity::Invalid => Status::Invalid,
            Severity::Unchecked => Status::Unchecked,
            Severity::Incomplete => Status::Incomplete,
            Severity::Note => Status::Valid,
        })
        .max()
        .unwrap_or(Status::Valid);
    let summary = format!(
        "audit log: {} record(s) in {} segment(s), {} signed checkpoint(s){}",
        st.records,
        st.segments,
        st.checkpoints,
        if st.closed {
            ", closed by a final checkpoint"
        } else {
            ""
        }
    );
    (
        Item {
            path: label,
            kind: "audit_log",
            status,
            summary,
            findings,
        },
        refs,
    )
}

/// The kernel record numbers of one verified line: carried (`kslot`, `kseq`) or declared
/// missing (a `kseq_gap` record).
fn kseq_step(line: &ChainLine<'_>, st: &mut LogState) {
    if let Some((slot, n)) = line.kseq {
        st.kseq.carried(slot, n);
    }
    if line.ty == "kseq_gap" {
        if let Some(obj) = line.obj {
            let num = |k: &str| obj.get(k).and_then(Value::as_u64).unwrap_or(0);
            st.kseq.declared(
                u32::try_from(num("kslot")).unwrap_or(0),
                num("first"),
                num("last"),
            );
        }
    }
}

/// The end of a segment: kernel record numbers that neither a record carries nor a `kseq_gap`
/// record declares. Each record's number and each declaration are hashed into the chain, so in
/// a signed segment a hole is a record that was numbered by the kernel and is not there, with
/// nothing signed saying why (proctor failed to declare it, or the record was removed before the
/// signature). In a segment proctor did not close, it is what proctor could not declare when it
/// stopped (records lost while it was killed), or a record removed from the unsigned tail.
fn kseq_segment_end(st: &mut LogState, label: &str, findings: &mut Vec<Finding>) {
    let audit = std::mem::take(&mut st.kseq);
    for (slot, first, last) in audit.undeclared() {
        let range = if first == last {
            format!("record {first}")
        } else {
            format!("records {first}..{last}")
        };
        let (severity, why) = if st.closed {
            (
                Severity::Invalid,
                "the segment is signed and closed, so they were removed before it was signed or proctor failed to declare their loss",
            )
        } else {
            (
                Severity::Incomplete,
                "the segment was not closed: proctor stopped before it could account for them (lost when it was killed), or they were removed from its unsigned tail",
            )
        };
        findings.push(Finding {
            severity,
            location: format!("{label} (segment {})", st.segments),
            problem: "kseq_gap",
            message: format!(
                "kernel {range} of session slot {slot} are in no record and no kseq_gap record declares them: {why}"
            ),
        });
    }
}

/// Lines and bytes read ahead per batch (see `verify_audit_log`).
const BATCH_LINES: usize = 1024;
const BATCH_BYTES: usize = 512 << 10;

/// An audit log read a batch of whole lines at a time, straight into one buffer kept from
/// batch to batch: through a `BufReader`, each line was copied a second time (`read_until`).
struct LineBatches {
    file: std::fs::File,
    /// The file's size when opened (0 if unknown).
    size: u64,
    /// Allocated and zeroed once (grown only for a line longer than a batch); `buf[..len]` is
    /// what was read.
    buf: Vec<u8>,
    len: usize,
    /// `buf[..taken]` was handed out as the last batch's lines; the rest is the next line's start.
    taken: usize,
    eof: bool,
}

impl LineBatches {
    fn new(file: std::fs::File) -> Self {
        LineBatches {
            size: file.metadata().map_or(0, |m| m.len()),
            file,
            buf: Vec::new(),
            len: 0,
            taken: 0,
            eof: false,
        }
    }

    /// The next batch, `buf[..len]`: up to [`BATCH_LINES`] lines (`lines`: their ranges in it,
    /// each with its newline; the file's last line may lack one), the read error that ended the
    /// file early, if any, and whether the whole file has been handed out. A line longer than
    /// [`MAX_LINE_BYTES`] is handed out as its first `MAX_LINE_BYTES + 1` bytes, unterminated
    /// (the caller stops there); one without a newline in reach ends the batch, so the buffer
    /// never holds more than a batch and one bounded line.
    fn next_batch(&mut self, lines: &mut Vec<Range<usize>>) -> (Option<std::io::Error>, bool) {
        const MAX_LINE: usize = MAX_LINE_BYTES as usize;
        lines.clear();
        self.buf.copy_within(self.taken..self.len, 0);
        self.len -= self.taken;
        self.taken = 0;
        let mut error = None;
        let (mut start, mut from) = (0, 0);
        loop {
            // The whole lines among the bytes not yet looked at.
            for nl in memchr::memchr_iter(b'\n', &self.buf[from..self.len]) {
                let end = from + nl + 1;
                // Longer than the bound: its first bytes only, unterminated.
                lines.push(start..end.min(start + MAX_LINE + 1));
                start = end;
                if lines.len() == BATCH_LINES {
                    break;
                }
            }
            from = self.len;
            if lines.len() == BATCH_LINES || (!lines.is_empty() && self.len >= BATCH_BYTES) {
                break;
            }
            if self.len - start > MAX_LINE {
                lines.push(start..start + MAX_LINE + 1);
                break;
            }
            if self.eof || error.is_some() {
                if start < self.len && error.is_none() {
                    // The file's last line, without its newline.
                    lines.push(start..self.len);
                }
                break;
            }
            // Read on. The buffer is a batch long, and grows (doubling) only when a line does
            // not fit in it; it is full only then, since a batch ends at a batch's worth of bytes.
            if self.len == self.buf.len() {
                let grown = (self.buf.len() * 2).clamp(BATCH_BYTES, BATCH_BYTES + MAX_LINE + 1);
                self.buf.resize(grown, 0);
            }
            match std::io::Read::read(&mut self.file, &mut self.buf[self.len..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => error = Some(e),
            }
        }
        self.taken = lines.last().map_or(0, |l| l.end);
        let done = self.eof && self.taken == self.len;
        (error, done)
    }
}

/// [`fast_line`] of one line of a batch (a range of it, newline included).
fn scan_one(batch: &[u8], r: &Range<usize>) -> Option<Fast> {
    let l = &batch[r.clone()];
    fast_line(l.strip_suffix(b"\n").unwrap_or(l))
}

/// A share of a batch for a worker: the batch and its line ranges (shared, handed back when
/// every worker is done with them), which lines, and the worker's result vector (kept from
/// batch to batch).
struct ScanJob {
    batch: Arc<Vec<u8>>,
    lines: Arc<Vec<Range<usize>>>,
    part: Range<usize>,
    out: Vec<Option<Fast>>,
}

/// Threads that scan shares of each batch, started once for a log: a thread started per batch
/// cost ~10% of verify's CPU, which pushed batches to a size that misses the caches (a batch of
/// 512 KiB instead of 1 MiB, read again while still in cache, saved ~8%).
struct ScanPool {
    jobs: Vec<mpsc::Sender<ScanJob>>,
    done: mpsc::Receiver<(usize, Vec<Option<Fast>>)>,
    spare: Vec<Vec<Option<Fast>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl ScanPool {
    /// Up to `workers - 1` threads (this thread is the last worker); fewer if the system
    /// refuses some, none at all leaving every share to this thread.
    fn new(workers: usize) -> Self {
        let (done_tx, done) = mpsc::channel();
        let mut pool = ScanPool {
            jobs: Vec::new(),
            done,
            spare: Vec::new(),
            threads: Vec::new(),
        };
        for w in 0..workers.saturating_sub(1) {
            let (tx, rx) = mpsc::channel::<ScanJob>();
            let done_tx = done_tx.clone();
            let started = std::thread::Builder::new()
                .name("verify-scan".into())
                .spawn(move || {
                    for mut job in rx {
                        job.out.clear();
                        // A panic leaves the share `None`: each line is then read whole by
                        // the general path, which reaches the same verdict.
                        let scanned =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                for r in &job.lines[job.part.clone()] {
                                    job.out.push(scan_one(&job.batch, r));
                                }
                            }));
                        if scanned.is_err() {
                            job.out.clear();
                        }
                        // The batch and its lines are let go before the answer, so that the
                        // caller gets them back without a copy.
                        let ScanJob {
                            batch, lines, out, ..
                        } = job;
                        drop((batch, lines));
                        if done_tx.send((w, out)).is_err() {
                            return;
                        }
                    }
                });
            if let Ok(t) = started {
                pool.jobs.push(tx);
                pool.threads.push(t);
            }
        }
        pool
    }

    /// [`fast_line`] of every line of the batch in `reader` (`lines`: its line ranges) into
    /// `out`, the first share in this thread. The batch and `lines` are lent to the workers
    /// and taken back before this returns.
    fn scan(
        &mut self,
        reader: &mut LineBatches,
        lines: &mut Vec<Range<usize>>,
        out: &mut Vec<Option<Fast>>,
    ) {
        out.clear();
        let per = lines.len().div_ceil(self.jobs.len() + 1);
        // Share `k`'s lines: share 0 is this thread's, share `w + 1` worker `w`'s.
        let n = lines.len();
        let share = |k: usize| (k * per).min(n)..((k + 1) * per).min(n);
        let batch = Arc::new(std::mem::take(&mut reader.buf));
        let shared = Arc::new(std::mem::take(lines));
        let mut sent = 0;
        for (w, tx) in self.jobs.iter().enumerate() {
            let job = ScanJob {
                batch: batch.clone(),
                lines: shared.clone(),
                part: share(w + 1),
                out: self.spare.pop().unwrap_or_default(),
            };
            sent += usize::from(tx.send(job).is_ok());
        }
        out.extend(shared[share(0)].iter().map(|r| scan_one(&batch, r)));
        let mut parts: Vec<Option<Vec<Option<Fast>>>> = vec![None; self.jobs.len()];
        for _ in 0..sent {
            match self.done.recv() {
                Ok((w, v)) => parts[w] = Some(v),
                Err(_) => break,
            }
        }
        for (w, part) in parts.into_iter().enumerate() {
            let want = share(w + 1).len();
            match part {
                Some(mut v) => {
                    v.resize(want, None);
                    out.append(&mut v);
                    self.spare.push(v);
                }
                None => out.resize(out.len() + want, None),
            }
        }
        // Every worker dropped its references before answering.
        reader.buf = Arc::try_unwrap(batch).unwrap_or_else(|b| b.as_ref().clone());
        *lines = Arc::try_unwrap(shared).unwrap_or_else(|l| l.as_ref().clone());
    }
}

impl Drop for ScanPool {
    fn drop(&mut self) {
        self.jobs.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Logs from this size on are scanned on every core. Sharing a batch costs CPU (the workers
/// read it from the reading core's cache, the results come back): on a 16 MiB log the pool cut
/// the wall time by a quarter (34 -> 26 ms) for ~6% more CPU (bench/FINDINGS.md, round 15), a
/// trade worth making only where the wall time is long enough to matter.
const PARALLEL_FROM_BYTES: u64 = 64 << 20;

/// [`fast_line`] of every line of the batch in `reader` into `out`: in this thread on one
/// core, for a short batch or a small log, else shared with the pool (started at the first
/// such batch). `out` is the caller's, kept from batch to batch: a fresh result vector per
/// batch was ~9,000 page faults on a 100,000-line log, ~8% of verify's time.
fn scan_lines(
    pool: &mut Option<ScanPool>,
    reader: &mut LineBatches,
    lines: &mut Vec<Range<usize>>,
    out: &mut Vec<Option<Fast>>,
) {
    // Asked once: the answer reads the cgroup's CPU limit from /sys (1% of verify per batch).
    static WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let workers =
        *WORKERS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)));
    if workers < 2 || lines.len() < 512 || reader.size < PARALLEL_FROM_BYTES {
        out.clear();
        let batch = &reader.buf[..reader.len];
        out.extend(lines.iter().map(|r| scan_one(batch, r)));
        return;
    }
    pool.get_or_insert_with(|| ScanPool::new(workers))
        .scan(reader, lines, out);
}

/// Parse one line into an object with well-typed chain members, or say why not.
/// The first record after `line_no` whose seq is in `from..=to`: (seq, line). Reads the rest of
/// the file (only on an error path), each line bounded like the main loop.
fn find_seq_later(
    reader: &mut impl BufRead,
    from: u64,
    to: u64,
    line_no: u64,
) -> Option<(u64, u64)> {
    let mut buf = Vec::new();
    let mut at = line_no;
    loop {
        buf.clear();
        match reader.take(MAX_LINE_BYTES + 1).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        at += 1;
        let seq = serde_json::from_slice::<Value>(&buf)
            .ok()
            .and_then(|v| v.get("seq").and_then(Value::as_u64));
        if let Some(seq) = seq.filter(|s| (from..=to).contains(s)) {
            return Some((seq, at));
        }
    }
}

/// For a record whose seq was already seen: which earlier line has it, and whether this line
/// is a byte-identical copy of it. Reads the file again from the start (error path only).
fn describe_repeat(
    path: &Path,
    seq: u64,
    body: &[u8],
    line_no: u64,
    expected: u64,
) -> Option<String> {
    let mut reader = BufReader::new(crate::open_regular(path).ok()?);
    let mut buf = Vec::new();
    for at in 1..line_no {
        buf.clear();
        match (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let earlier = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let found = serde_json::from_slice::<Value>(earlier)
            .ok()
            .and_then(|v| v.get("seq").and_then(Value::as_u64));
        if found == Some(seq) {
            return Some(if earlier == body {
                format!("seq {seq}: a copy of line {at}: the record was duplicated (expected seq {expected})")
            } else {
                format!("seq {seq}: a different record with the seq of line {at}: inserted or moved (expected seq {expected})")
            });
        }
    }
    None
}

fn parse_chain_line(body: &[u8]) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let Value::Object(obj) = value else {
        return Err("not a JSON object".into());
    };
    if obj.get("seq").and_then(Value::as_u64).is_none() {
        return Err("no integer `seq`".into());
    }
    for k in ["hash_prev", "hash_self"] {
        if !obj
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|h| is_hex64(h.as_bytes()))
        {
            return Err(format!("no 64-hex-digit `{k}`"));
        }
    }
    if !obj.get("type").is_some_and(Value::is_string) {
        return Err("no string `type`".into());
    }
    Ok(obj)
}

/// Unreadable lines are acceptable only as the torn tail a segment start describes exactly.
fn torn_accounted(
    p: &Pending,
    line: &ChainLine<'_>,
    label: &str,
    line_no: u64,
) -> Result<(), Finding> {
    let invalid = |message: String| Finding {
        severity: Severity::Invalid,
        location: format!("{label}:{}", p.first_line),
        problem: "malformed",
        message,
    };
    let obj = line.obj.filter(|_| line.ty == "segment_start");
    let Some(obj) = obj else {
        return Err(invalid(format!(
            "not a valid chain record: {}",
            p.first_error
        )));
    };
    let torn = obj.get("torn").and_then(Value::as_object);
    let Some(torn) = torn else {
        return Err(invalid(format!(
            "not a valid chain record ({}), and the segment start at line {line_no} does not record a torn tail",
            p.first_error
        )));
    };
    let length = torn.get("length").and_then(Value::as_u64);
    let terminated = torn.get("terminated").and_then(Value::as_bool);
    let sha = torn.get("sha256").and_then(Value::as_str);
    let (Some(length), Some(terminated), Some(sha)) = (length, terminated, sha) else {
        return Err(invalid(
            "the segment start's `torn` member is malformed".into(),
        ));
    };
    let expect_len = length.saturating_add(u64::from(terminated));
    let ok = p.len == expect_len
        && p.bytes.len() as u64 == p.len
        && (!terminated || p.bytes.last() == Some(&b'\n'))
        && sha256_hex(&p.bytes[..length as usize]) == sha;
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "lines {}..{} are not valid records and do not match the torn tail the segment start at line {line_no} recorded: changed or inserted",
            p.first_line,
            line_no - 1
        )))
    }
}

/// The chain members of one audit log line and the digest its `hash_self` must match.
struct ChainLine<'a> {
    seq: u64,
    ty: &'a str,
    /// As written (hex when the line is well formed; compared byte for byte).
    hash_prev: &'a [u8],
    hash_self: &'a [u8],
    /// The whole record; `None` when [`fast_line`] read the line, which it does only for
    /// records whose other members verification does not look at.
    obj: Option<&'a Map<String, Value>>,
    /// Hex SHA-256 of the canonical JSON of the record without `hash_self`; `None` when the
    /// line is not in canonical form.
    content_hash: Option<[u8; 64]>,
    /// The kernel's session slot and record number (`kslot`, `kseq`), where the record has them.
    kseq: Option<(u32, u64)>,
}

/// Record types whose own members verification checks (beyond the chain members).
const READ_WHOLE: &[&str] = &[
    "segment_start",
    "checkpoint",
    "key_rotation",
    "certificate",
    "kseq_gap",
];

impl<'a> ChainLine<'a> {
    /// The general path: the line parsed into a `Value` (see [`parse_chain_line`]), its
    /// canonical form written out again and compared with the bytes.
    fn from_obj(obj: &'a Map<String, Value>, body: &[u8]) -> ChainLine<'a> {
        let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
        let content_hash = (canonical_json(&Value::Object(obj.clone())) == body).then(|| {
            let mut without = obj.clone();
            without.remove("hash_self");
            let mut hex = [0u8; 64];
            let digest =
                <sha2::Sha256 as sha2::Digest>::digest(canonical_json(&Value::Object(without)));
            // 32 bytes always encode into 64 hex digits.
            let _ = hex::encode_to_slice(digest, &mut hex);
            hex
        });
        ChainLine {
            seq: obj.get("seq").and_then(Value::as_u64).unwrap_or(0),
            ty: text("type"),
            hash_prev: text("hash_prev").as_bytes(),
            hash_self: text("hash_self").as_bytes(),
            obj: Some(obj),
            content_hash,
            kseq: obj
                .get("kslot")
                .and_then(Value::as_u64)
                .and_then(|s| u32::try_from(s).ok())
                .zip(obj.get("kseq").and_then(Value::as_u64)),
        }
    }
}

/// The fast path for the bulk of a log: when one scan of the bytes proves the line is already
/// in canonical form ([`crate::jcs::scan_canonical_object`]), the canonical form of the record
/// without `hash_self` is those same bytes with that member cut out, so they are hashed as they
/// are, without parsing into a `Value` or writing JSON again. `None` (read the line whole) for
/// anything the scan does not prove, for malformed chain members and for [`READ_WHOLE`] types;
/// the general path then decides, and reports, exactly as before.
fn fast_line(body: &[u8]) -> Option<Fast> {
    let (mut seq, mut ty, mut prev, mut own) = (None, None, None, None);
    let (mut kslot, mut kseq) = (None, None);
    let canonical = crate::jcs::scan_canonical_object(body, |name, member, value| match name {
        b"seq" => seq = Some(value),
        b"kslot" => kslot = Some(value),
        b"kseq" => kseq = Some(value),
        b"type" => ty = Some(value),
        b"hash_prev" => prev = Some(value),
        b"hash_self" => own = Some((member, value)),
        _ => {}
    });
    if !canonical {
        return None;
    }
    // A string's text without its quotes.
    let inner = |v: Range<usize>| {
        let quoted = body.get(v.clone())?;
        (quoted.len() >= 2 && quoted[0] == b'"' && quoted[quoted.len() - 1] == b'"')
            .then_some(v.start + 1..v.end - 1)
    };
    let seq = digits(&body[seq?])?;
    // Strings with escapes go the general way (64 hex digits have none).
    let ty = inner(ty?).filter(|t| !body[t.clone()].contains(&b'\\'))?;
    let hash_prev = inner(prev?).filter(|h| is_hex64(&body[h.clone()]))?;
    let (member, value) = own?;
    let hash_self = inner(value).filter(|h| is_hex64(&body[h.clone()]))?;
    if READ_WHOLE.iter().any(|t| t.as_bytes() == &body[ty.clone()]) {
        return None;
    }
    // The member and the comma that separates it from its neighbour.
    let cut = if body[member.start - 1] == b',' {
        member.start - 1..member.end
    } else if body.get(member.end) == Some(&b',') {
        member.start..member.end + 1
    } else {
        member
    };
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(&body[..cut.start]);
    h.update(&body[cut.end..]);
    let mut content_hash = [0u8; 64];
    hex::encode_to_slice(h.finalize(), &mut content_hash).ok()?;
    Some(Fast {
        seq,
        ty,
        hash_prev,
        hash_self,
        content_hash,
        kseq: kslot
            .zip(kseq)
            .and_then(|(s, n)| Some((u32::try_from(digits(&body[s])?).ok()?, digits(&body[n])?))),
    })
}

/// What [`fast_line`] proved of a line, by position in it (no borrow, so that a batch's results
/// are kept in one buffer reused from batch to batch).
#[derive(Clone)]
struct Fast {
    seq: u64,
    /// `type`, `hash_prev` and `hash_self`: their text, without quotes, in the line.
    ty: Range<usize>,
    hash_prev: Range<usize>,
    hash_self: Range<usize>,
    content_hash: [u8; 64],
    kseq: Option<(u32, u64)>,
}

impl Fast {
    /// The line's chain members (`body`: the line [`fast_line`] scanned, without its newline;
    /// the scan proved it valid UTF-8, so `None` only for another line).
    fn line(self, body: &[u8]) -> Option<ChainLine<'_>> {
        Some(ChainLine {
            seq: self.seq,
            ty: std::str::from_utf8(body.get(self.ty)?).ok()?,
            hash_prev: body.get(self.hash_prev)?,
            hash_self: body.get(self.hash_self)?,
            obj: None,
            content_hash: Some(self.content_hash),
            kseq: self.kseq,
        })
    }
}

/// A non-negative integer the canonical scan proved well formed: up to 19 digits are summed
/// directly (they cannot overflow; `str::parse` per member was a visible share of verify),
/// longer ones parsed; a sign or anything else is `None`, as `parse::<u64>` says.
fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return std::str::from_utf8(b).ok()?.parse().ok();
    }
    Some(b.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[expect(
    clippy::too_many_arguments,
    reason = "one streaming step over the log's whole state"
)]
fn check_record(
    line: &ChainLine<'_>,
    body: &[u8],
    loc: &str,
    line_no: u64,
    st: &mut LogState,
    keys: &mut KeyRing,
    findings: &mut Vec<Finding>,
    refs: &mut Vec<CertRef>,
) -> Result<(), Finding> {
    let invalid = |problem, message: String| Finding {
        severity: Severity::Invalid,
        location: loc.to_string(),
        problem,
        message,
    };
    let (seq, ty) = (line.seq, line.ty);
    let Some(content_hash) = &line.content_hash else {
        return Err(invalid(
            "non_canonical",
            format!(
                "seq {seq}: not in canonical (RFC 8785) form: the line was re-encoded or edited"
            ),
        ));
    };
    if seq != st.expected_seq {
        let why = if seq < st.expected_seq {
            format!(
                "repeats an earlier seq: a record was duplicated or moved (expected {})",
                st.expected_seq
            )
        } else {
            format!(
                "records with seq {}..{} are missing: deleted",
                st.expected_seq,
                seq - 1
            )
        };
        return Err(invalid("seq", format!("seq {seq}: {why}")));
    }
    if line.hash_prev != st.prev_hash {
        return Err(invalid(
            "chain",
            format!("seq {seq}: hash_prev is not the hash of the record before it: a record before this line was changed, removed or inserted"),
        ));
    }
    if content_hash[..] != *line.hash_self {
        return Err(invalid(
            "hash",
            format!(
                "seq {seq}: hash_self does not match the record's content: the record was edited"
            ),
        ));
    }
    if let Some(start_line) = st.want_checkpoint.take() {
        // A segment start may also follow directly: the writer was killed between the two.
        // Rotation announcements come before the checkpoint they make checkable.
        if ty == "key_rotation" {
            st.want_checkpoint = Some(start_line);
        } else if ty != "checkpoint" && ty != "segment_start" {
            return Err(invalid(
                "checkpoint_missing",
                format!("seq {seq}: the segment start at line {start_line} must be followed by its signed checkpoint"),
            ));
        }
    }
    // Records whose own members are checked are always read whole (see `fast_line`).
    let whole = || {
        line.obj.ok_or_else(|| {
            invalid(
                "fields",
                format!("seq {seq}: a {ty} record was not read whole"),
            )
        })
    };
    match ty {
        "segment_start" => {
            let obj = whole()?;
            let prev = obj.get("prev");
            let prev_ok = if seq == 1 {
                prev == Some(&Value::Null)
            } else {
                prev.and_then(Value::as_object).is_some_and(|p| {
                    p.get("seq").and_then(Value::as_u64) == Some(seq - 1)
                        && p.get("hash").and_then(Value::as_str).map(str::as_bytes)
                            == Some(&st.prev_hash[..])
                })
            };
            if !prev_ok {
                return Err(invalid(
                    "segment",
                    format!(
                        "seq {seq}: the segment start's `prev` does not name the record before it"
                    ),
                ));
            }
            if obj.get("prev_closed").and_then(Value::as_bool) != Some(st.closed) && seq != 1 {
                return Err(invalid(
                    "segment",
                    format!(
                        "seq {seq}: `prev_closed` does not match how the previous segment ended"
                    ),
                ));
            }
            if seq != 1 && !st.closed {
                // The records after the last signature of the killed segment were never signed
                // by the run that wrote them; anyone could have edited and re-hashed them before
                // this segment chained over them. This segment's signatures do not vouch for them.
                let signed = st.last_signed.map_or(0, |(_, s)| s);
                let unsigned = (seq - 1).saturating_sub(signed);
                findings.push(Finding {
                    severity: Severity::Incomplete,
                    location: loc.to_string(),
                    problem: if unsigned > 0 { "unsigned_tail" } else { "crash_recorded" },
                    message: if unsigned > 0 {
                        format!(
                            "segment {} ended at seq {} without a final checkpoint (proctor was killed): its last {unsigned} record(s), seq {}..{}, were never signed and are not vouched for by the segment that follows; events after them may be lost",
                            st.segments,
                            seq - 1,
                            signed + 1,
                            seq - 1
                        )
                    } else {
                        format!(
                            "segment {} ended at seq {} without a final checkpoint (proctor was killed): every record it wrote is signed, but events after them may be lost",
                            st.segments,
                            seq - 1
                        )
                    },
                });
                let declared = obj
                    .get("unsigned_tail")
                    .and_then(|t| t.get("from_seq"))
                    .and_then(Value::as_u64);
                if declared.is_some_and(|d| d != signed + 1) {
                    return Err(invalid(
                        "segment",
                        format!("seq {seq}: `unsigned_tail` does not match the last signed checkpoint (seq {signed})"),
                    ));
                }
            }
            st.segments += 1;
            st.closed = false;
            st.want_checkpoint = Some(line_no);
        }
        "checkpoint" => {
            let obj = whole()?;
            if st.closed {
                return Err(invalid(
                    "after_close",
                    format!(
                        "seq {seq}: record after the final checkpoint without a new segment start"
                    ),
                ));
            }
            let fp = obj
                .get("key_fingerprint")
                .and_then(Value::as_str)
                .unwrap_or("");
            let Some(sig) = obj.get("signature").and_then(Value::as_str) else {
                return Err(invalid(
                    "signature",
                    format!("seq {seq}: checkpoint without a signature"),
                ));
            };
            let mut signed = obj.clone();
            signed.remove("hash_self");
            signed.remove("signature");
            let what = format!("checkpoint seq {seq}");
            let stamped = keys.check_token(
                &crate::tsa::checkpoint_token_path(&st.dir, seq),
                body,
                loc,
                &what,
            )?;
            if let Some(f) = keys.check(
                fp,
                sig,
                &canonical_json(&Value::Object(signed)),
                stamped.or(obj.get("ts_ns").and_then(Value::as_u64)),
                loc,
                &what,
            ) {
                if f.severity == Severity::Invalid {
                    return Err(f);
                }
                // One "no key" finding per log is enough.
                if !findings.iter().any(|g| g.problem == f.problem) {
                    findings.push(f);
                }
            } else {
                st.last_signed = Some((line_no, seq));
                st.checkpoints += 1;
                match &st.first_key {
                    None => st.first_key = Some(fp.to_string()),
                    // Only reachable without --key (a pinned key admits no other): each key
                    // found next to the data vouches for its own segments only.
                    Some(first)
                        if first != fp
                            && !findings
                                .iter()
                                .any(|g| g.problem == "key_change" && g.message.contains(fp)) =>
                    {
                        findings.push(Finding {
                            severity: Severity::Note,
                            location: loc.to_string(),
                            problem: "key_change",
                            message: format!(
                                "checkpoint seq {seq}: signed by key {fp}, while this log's first checkpoint was signed by key {first}: a key rotation, or a segment appended by whoever holds the other key; pin the key you expect with --key"
                            ),
                        });
                    }
                    Some(_) => {}
                }
            }
            st.closed = obj.get("final").and_then(Value::as_bool) == Some(true);
        }
        "key_rotation" => {
            if st.want_checkpoint.is_none() {
                return Err(invalid(
                    "key_rotation",
                    format!("seq {seq}: a key rotation record must come between a segment start and its checkpoint"),
                ));
            }
            let a = whole()?
                .get("announcement")
                .ok_or("no `announcement`".to_string())
                .and_then(Announcement::parse)
                .map_err(|e| {
                    invalid(
                        "key_rotation",
                        format!("seq {seq}: malformed key rotation: {e}"),
                    )
                })?;
            keys.chain.add(a, loc.to_string());
            keys.resolve_chain();
            if let Some(f) = keys.findings.iter().position(|f| f.location == loc) {
                return Err(keys.findings.remove(f));
            }
        }
        _ => {
            if st.closed {
                return Err(invalid("after_close", format!("seq {seq}: record after the final checkpoint without a new segment start: appended after close")));
            }
            if st.segments == 0 {
                return Err(invalid(
                    "segment",
                    format!("seq {seq}: the log must begin with a segment start"),
                ));
            }
            if ty == "certificate" {
                let obj = whole()?;
                let r = (|| {
                    Some(CertRef {
                        location: loc.to_string(),
                        run_id: obj.get("cert_run_id")?.as_str()?.to_string(),
                        seq: obj.get("cert_seq")?.as_u64()?,
                        sha256: obj.get("cert_sha256")?.as_str()?.to_string(),
                        file: obj.get("cert_file")?.as_str()?.to_string(),
                        format: match obj.get("cert_format") {
                            None => CERT_FORMAT.to_string(),
                            Some(f) => f.as_str()?.to_string(),
                        },
                    })
                })();
                match r {
                    Some(r) => refs.push(r),
                    None => {
                        return Err(invalid(
                            "fields",
                            format!("seq {seq}: malformed certificate record"),
                        ))
                    }
                }
            }
        }
    }
    st.expected_seq = seq + 1;
    st.prev_hash.clear();
    st.prev_hash.extend_from_slice(line.hash_self);
    st.records += 1;
    st.last_line = line_no;
    Ok(())
}

fn forged_finding(location: &str, f: &Forged) -> Finding {
    if let Some(reason) = &f.revoked {
        return Finding {
            severity: Severity::Invalid,
            location: location.to_string(),
            problem: "revoked",
            message: format!(
                "a key rotation from key {} to key {} was made after key {} was revoked ({reason}); signatures by {} are not trusted",
                f.old_fingerprint, f.new_fingerprint, f.old_fingerprint, f.new_fingerprint
            ),
        };
    }
    Finding {
        severity: Severity::Invalid,
        location: location.to_string(),
        problem: "forged_rotation",
        message: format!(
            "a key rotation announces key {} as the successor of trusted key {}, but is not signed by {}: forged; signatures by {} are not trusted",
            f.new_fingerprint, f.old_fingerprint, f.old_fingerprint, f.new_fingerprint
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every batch of `path`'s lines, as the main loop reads them.
    fn batches(path: &Path) -> Vec<Vec<Vec<u8>>> {
        let mut r = LineBatches::new(std::fs::File::open(path).unwrap());
        let mut lines = Vec::new();
        let mut out = Vec::new();
        loop {
            let (error, done) = r.next_batch(&mut lines);
            assert!(error.is_none());
            assert!(lines.len() <= BATCH_LINES);
            out.push(lines.iter().map(|l| r.buf[l.clone()].to_vec()).collect());
            if done || lines.is_empty() {
                return out;
            }
        }
    }

    /// The pool's results are the one-thread scan's, line for line, over batches of canonical
    /// and other lines, and the batch it lends its workers comes back intact for the next read.
    #[test]
    fn the_scan_pool_agrees_with_one_thread_batch_after_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines");
        let hex = |n: usize| format!("{n:064x}");
        let text: String = (0..3 * BATCH_LINES + 77)
            .map(|i| match i % 5 {
                // Not canonical: left to the general path (`None`).
                4 => format!("{{ \"seq\":{i}}}\n"),
                _ => format!(
                    r#"{{"hash_prev":"{}","hash_self":"{}","pad":"{}","seq":{i},"type":"exec"}}"#,
                    hex(i),
                    hex(i + 1),
                    "x".repeat(i % 300)
                ) + "\n",
            })
            .collect();
        std::fs::write(&path, &text).unwrap();
        let want = batches(&path);
        let key = |f: &Option<Fast>| {
            f.as_ref()
                .map(|f| (f.seq, f.content_hash, f.hash_self.clone()))
        };
        for workers in [2, 3, 8] {
            let mut pool = ScanPool::new(workers);
            let mut r = LineBatches::new(std::fs::File::open(&path).unwrap());
            let (mut lines, mut out) = (Vec::new(), Vec::new());
            let mut got = Vec::new();
            let mut some = 0;
            loop {
                let (error, done) = r.next_batch(&mut lines);
                assert!(error.is_none());
                pool.scan(&mut r, &mut lines, &mut out);
                assert_eq!(out.len(), lines.len());
                for (l, f) in lines.iter().zip(&out) {
                    assert_eq!(key(f), key(&scan_one(&r.buf, l)));
                    some += usize::from(f.is_some());
                }
                got.push(
                    lines
                        .iter()
                        .map(|l| r.buf[l.clone()].to_vec())
                        .collect::<Vec<_>>(),
                );
                if done || lines.is_empty() {
                    break;
                }
            }
            assert_eq!(got, want, "{workers} workers");
            assert_eq!(some, (3 * BATCH_LINES + 77) - (3 * BATCH_LINES + 77) / 5);
        }
    }

    #[test]
    fn line_batches_hand_out_every_line_whole_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines");
        // Lines around the batch size and the read size, many short ones (more than a batch of
        // lines), and a last line without its newline.
        let mut want: Vec<Vec<u8>> = Vec::new();
        for (i, len) in [
            1,
            0,
            700,
            BATCH_BYTES - 1,
            BATCH_BYTES,
            BATCH_BYTES + 1,
            3 * BATCH_BYTES,
        ]
        .into_iter()
        .chain(std::iter::repeat_n(37, 3 * BATCH_LINES + 5))
        .chain([BATCH_BYTES / 2 + 3, 90])
        .enumerate()
        {
            let mut l = vec![b'a' + (i % 26) as u8; len];
            l.push(b'\n');
            want.push(l);
        }
        want.last_mut().unwrap().pop();
        std::fs::write(&path, want.concat()).unwrap();
        let got = batches(&path);
        assert!(got.len() > 4, "{} batches", got.len());
        assert_eq!(got.concat(), want);
        // An empty file: no lines, and the end.
        std::fs::write(&path, b"").unwrap();
        assert_eq!(batches(&path), vec![Vec::<Vec<u8>>::new()]);
    }

    #[test]
    fn a_line_longer_than_the_bound_is_refused_not_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AUDIT_FILE);
        // A line at the bound (with its newline, one byte more) is read whole; one a byte
        // longer is handed out cut, without its newline.
        let mut log = b"{\"seq\":1}\n".to_vec();
        log.resize(log.len() + MAX_LINE_BYTES as usize, b'x');
        log.push(b'\n');
        log.resize(log.len() + MAX_LINE_BYTES as usize + 1, b'y');
        log.extend_from_slice(b"\n{\"seq\":3}\n");
        std::fs::write(&path, &log).unwrap();
        let got = batches(&path).concat();
        assert_eq!(got[1].len() as u64, MAX_LINE_BYTES + 1);
        assert!(got[1].ends_with(b"x\n"));
        assert_eq!(got[2].len() as u64, MAX_LINE_BYTES + 1);
        assert!(got[2].ends_with(b"y"));
        let report = verify_paths(std::slice::from_ref(&path), None);
        let problems: Vec<_> = report.items[0].findings.iter().map(|f| f.problem).collect();
        assert!(problems.contains(&"too_long"), "{problems:?}");
    }
}
