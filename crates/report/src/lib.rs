//! The report of a proctor run for the people who receive it (incident responders, auditors):
//! one self-contained HTML file (inline CSS and SVG, no scripts, fonts or network fetches) or
//! Markdown, built from an output directory.
//!
//! - [`scan`] reads `audit.jsonl` once, streaming, into bounded aggregates ([`Run`]): counts
//!   per type and per second, the process table, alerts, decisions, approvals, losses, LLM
//!   tool calls, incidents. Nothing is kept per record, so a long run costs memory in the
//!   number of processes and alerts, not records.
//! - [`build`] adds what is beside the log (baseline, certificates, `incidents.jsonl`) and the
//!   verdict of [`proctor_evidence::verify_paths_with`].
//! - [`render`] writes HTML or Markdown; [`compliance`] holds the mapping of the evidence to
//!   DORA, NIS2 and the EU AI Act that both formats print.
//!
//! Everything in the log was produced by watching a hostile agent: every string is escaped
//! where it is written, and lists are capped with the number left out said.

pub mod compliance;
pub mod render;
mod scan;

pub use render::{render_html, render_markdown};
pub use scan::{scan, Run};

use proctor_evidence::{Report, VerifyOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What went wrong building a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: no audit.jsonl here (give a proctor output directory)", .0.display())]
    NoLog(PathBuf),
    #[error("incident {0}: not found in this run (known: {1})")]
    NoIncident(String, String),
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Markdown,
}

/// A certificate file with what a reader needs to find it again.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub file: String,
    pub sha256: String,
    pub kind: String,
    pub ts_ns: u64,
    pub key_fingerprint: String,
    /// A timestamp token sits beside it.
    pub timestamped: bool,
}

/// Everything a report shows.
pub struct Data {
    pub dir: PathBuf,
    pub run: Run,
    pub baseline: Option<Value>,
    pub certificates: Vec<CertInfo>,
    /// Certificates beyond the ones listed.
    pub certificates_omitted: usize,
    pub verdict: Report,
    /// Pinned key given (`--key`), so the verdict is against an independent key.
    pub pinned: bool,
    /// Timestamp tokens found beside records and certificates.
    pub tokens: usize,
    pub tsa_checked: bool,
    /// The incident the report is restricted to.
    pub incident: Option<String>,
    pub host: String,
    /// How long reading the log and verifying the evidence took.
    pub scan_time: std::time::Duration,
    pub verify_time: std::time::Duration,
}

/// Certificates listed in full; more are counted.
const MAX_CERTS_LISTED: usize = 500;

/// Read `dir` and verify it. `incident` restricts the detail sections to one incident.
pub fn build(dir: &Path, opts: &VerifyOptions, incident: Option<&str>) -> Result<Data, Error> {
    let log = dir.join(proctor_evidence::AUDIT_FILE);
    if !log.is_file() {
        return Err(Error::NoLog(dir.to_path_buf()));
    }
    // The verdict re-reads and re-hashes the whole log; it runs beside the scan, so a long run
    // costs the longer of the two rather than their sum.
    let (scanned, (verdict, verify_time), scan_time) = std::thread::scope(|s| {
        let v = s.spawn(|| {
            let t = std::time::Instant::now();
            let r = proctor_evidence::verify_paths_with(&[dir.to_path_buf()], opts);
            (r, t.elapsed())
        });
        let t = std::time::Instant::now();
        let r = scan(&log);
        let scan_time = t.elapsed();
        let verdict = v
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (r, verdict, scan_time)
    });
    let mut run = scanned.map_err(|error| Error::Io {
        path: log.clone(),
        error,
    })?;
    // incidents.jsonl (one line per change; the last line of an id wins) beside the log.
    if let Ok(text) = std::fs::read_to_string(dir.join("incidents.jsonl")) {
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                run.add_incident(v);
            }
        }
    }
    if let Some(id) = incident {
        if !run.incidents.contains_key(id) {
            let known: Vec<&str> = run.incidents.keys().map(String::as_str).collect();
            return Err(Error::NoIncident(
                id.to_string(),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            ));
        }
    }
    let baseline = std::fs::read(dir.join("baseline.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let (certificates, certificates_omitted, host) = read_certs(&dir.join("alerts"));
    let tokens = count_tokens(dir);
    Ok(Data {
        scan_time,
        verify_time,
        dir: dir.to_path_buf(),
        run,
        baseline,
        certificates,
        certificates_omitted,
        verdict,
        pinned: opts.key.is_some(),
        tokens,
        tsa_checked: opts.tsa_cert.is_some(),
        incident: incident.map(str::to_string),
        host,
    })
}

/// Render `data` in `format`.
pub fn render(data: &Data, format: Format) -> String {
    match format {
        Format::Html => render_html(data),
        Format::Markdown => render_markdown(data),
    }
}

fn read_certs(dir: &Path) -> (Vec<CertInfo>, usize, String) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|e| {
            e.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "cal"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let omitted = files.len().saturating_sub(MAX_CERTS_LISTED);
    let mut host = String::new();
    let mut out = Vec::new();
    for p in files.iter().take(MAX_CERTS_LISTED) {
        let Ok(bytes) = std::fs::read(p) else {
            continue;
        };
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if host.is_empty() {
            host = s("host");
        }
        out.push(CertInfo {
            file: p
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: proctor_evidence::sha256_hex(&bytes),
            kind: s("kind"),
            ts_ns: v.get("ts_ns").and_then(Value::as_u64).unwrap_or(0),
            key_fingerprint: s("key_fingerprint"),
            timestamped: p.with_extension("cal.tsr").is_file(),
        });
    }
    (out, omitted, host)
}

/// Timestamp tokens (`*.tsr`) beside the log and the certificates.
fn count_tokens(dir: &Path) -> usize {
    [
        dir.to_path_buf(),
        dir.join("alerts"),
        dir.join("timestamps"),
    ]
    .iter()
    .filter_map(|d| std::fs::read_dir(d).ok())
    .flat_map(|e| e.filter_map(Result::ok))
    .filter(|e| e.path().extension().is_some_and(|x| x == "tsr"))
    .count()
}

/// `2026-12-02 20:14:42 UTC` for nanoseconds since the epoch.
pub fn utc(ts_ns: u64) -> String {
    let c = proctor_evidence::utc_compact(ts_ns);
    // YYYYMMDDTHHMMSSZ
    if c.len() != 16 {
        return c;
    }
    format!(
        "{}-{}-{} {}:{}:{} UTC",
        &c[0..4],
        &c[4..6],
        &c[6..8],
        &c[9..11],
        &c[11..13],
        &c[13..15]
    )
}

/// Human duration.
pub fn duration(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        0 => format!("{} ms", ns / 1_000_000),
        1..=119 => format!("{s} s"),
        120..=7199 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// Sorted counts, largest first.
pub(crate) fn top<K: Clone + Ord>(m: &BTreeMap<K, u64>, n: usize) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = m.iter().map(|(k, c)| (k.clone(), *c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}
