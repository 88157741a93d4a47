//! `proctor report`: the report of a run for people. The logic lives in `proctor-report`.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use proctor_evidence::{Verifier, VerifyOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Html,
    Md,
}

#[derive(Args)]
pub struct ReportArgs {
    /// A proctor output directory (audit.jsonl, alerts/, baseline.json)
    pub dir: PathBuf,
    /// Only this incident (its id in the incident records)
    #[arg(long, value_name = "ID")]
    pub incident: Option<String>,
    #[arg(long, value_enum, default_value = "html")]
    pub format: ReportFormat,
    /// Write here (mode 0600) [default: DIR/report.html or DIR/report.md]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Public key to verify against (as for `proctor verify`); without it the report says the
    /// key next to the data was used
    #[arg(long, value_name = "PUB.pem")]
    pub key: Option<PathBuf>,
    /// Revocation list to honour (as for `proctor verify`)
    #[arg(long, value_name = "FILE")]
    pub revoked: Option<PathBuf>,
    /// Certificate of the timestamp authority (as for `proctor verify`)
    #[arg(long, value_name = "FILE")]
    pub tsa_cert: Option<PathBuf>,
}

pub fn report(a: ReportArgs) -> Result<ExitCode> {
    let key = a
        .key
        .as_deref()
        .map(Verifier::load)
        .transpose()
        .context("--key")?;
    let opts = VerifyOptions {
        key,
        revoked: a.revoked,
        tsa_cert: a.tsa_cert,
    };
    let data = proctor_report::build(&a.dir, &opts, a.incident.as_deref())?;
    let (format, ext) = match a.format {
        ReportFormat::Html => (proctor_report::Format::Html, "html"),
        ReportFormat::Md => (proctor_report::Format::Markdown, "md"),
    };
    let text = proctor_report::render(&data, format);
    let out = a.out.unwrap_or_else(|| a.dir.join(format!("report.{ext}")));
    // Replaced whole, never appended to; 0600 like every output (it names paths and argv).
    proctor_evidence::replace_private_file(&out, text.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "proctor: report of {} records, {} alerts written to {} (verify: {})",
        data.run.records,
        data.run.alerts_total,
        out.display(),
        proctor_report::render::status_word(data.verdict.status)
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct TimestampArgs {
    /// A proctor output directory
    pub dir: PathBuf,
    /// The timestamp authority (RFC 3161 over HTTP: http://host[:port]/path)
    #[arg(long, value_name = "URL")]
    pub tsa: String,
}

/// Stamp every certificate and checkpoint of a run that has no token yet. (During a run the
/// writers stamp as they go when PROCTOR_TSA_URL names a TSA.)
pub fn timestamp(a: TimestampArgs) -> Result<ExitCode> {
    let done = proctor_evidence::tsa::stamp_dir(&a.dir, &a.tsa).map_err(anyhow::Error::msg)?;
    println!(
        "{}: {} certificate(s) and {} checkpoint(s) stamped, {} already had a token",
        a.dir.display(),
        done.certificates,
        done.checkpoints,
        done.already
    );
    Ok(ExitCode::SUCCESS)
}
