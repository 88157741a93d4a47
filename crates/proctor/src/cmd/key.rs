//! `proctor key rotate|revoke`: the key lifecycle. The logic lives in
//! `proctor_evidence::lifecycle`; this is argument parsing and output.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use proctor_evidence::default_state_dir;
use proctor_evidence::lifecycle::{
    parse_utc, revoke_key, rotate_key, Revocation, REVOCATIONS_FILE,
};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Replace the signing key by a new one, announced by a record signed by the old key
    /// (verify follows it from the pinned old key)
    Rotate(RotateArgs),
    /// Add a key to a signed revocation list (`proctor verify --revoked FILE` honours it)
    Revoke(RevokeArgs),
}

#[derive(Args)]
pub struct RotateArgs {
    /// Key directory [default: $PROCTOR_STATE_DIR, /var/lib/proctor for root, else
    /// ~/.local/state/proctor]
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct RevokeArgs {
    /// Fingerprint (64 hex digits) of the key to revoke
    pub fingerprint: String,
    /// Why (shown by verify next to every signature it rejects)
    #[arg(long)]
    pub reason: String,
    /// Revoked from this UTC time on (2026-12-02T20:00:00Z or seconds since the epoch)
    /// [default: now]
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Key directory whose key signs the list [default: as for rotate]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Revocation list to create or extend (mode 0600) [default: DIR/proctor.revoked.json]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn key(c: KeyCommand) -> Result<ExitCode> {
    match c {
        KeyCommand::Rotate(a) => {
            let dir = a.dir.unwrap_or_else(default_state_dir);
            let r = rotate_key(&dir)?;
            println!(
                "old key:     {} (kept as {})",
                r.old_fingerprint,
                r.retired.display()
            );
            println!("new key:     {}", r.new_fingerprint);
            println!(
                "announced in {} and in every audit log the new key signs",
                r.keychain.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Revoke(a) => {
            let fp = a.fingerprint.to_ascii_lowercase();
            if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                anyhow::bail!("{}: not a key fingerprint (64 hex digits)", a.fingerprint);
            }
            let at = match &a.at {
                Some(t) => parse_utc(t).map_err(anyhow::Error::msg).context("--at")?,
                None => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            };
            let dir = a.dir.unwrap_or_else(default_state_dir);
            let out = a.out.unwrap_or_else(|| dir.join(REVOCATIONS_FILE));
            let list = revoke_key(
                &dir,
                &out,
                Revocation {
                    fingerprint: fp,
                    revoked_at_ns: at,
                    reason: a.reason,
                },
            )?;
            println!(
                "{}: {} key(s) revoked, signed by key {}",
                out.display(),
                list.entries.len(),
                list.issuer
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
