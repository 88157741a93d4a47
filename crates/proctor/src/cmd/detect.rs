//! `replay`, `calibrate`, `policy`: owned by the detection work (issue 3).

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ReplayArgs {
    /// Recorded audit log (DIR/audit.jsonl)
    pub log: PathBuf,
}

#[derive(Args)]
pub struct CalibrateArgs {
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the built-in policy
    Show,
    /// Check a policy file
    Check { file: PathBuf },
}

pub fn replay(_a: ReplayArgs) -> Result<ExitCode> {
    bail!("replay is not built yet")
}
pub fn calibrate(_a: CalibrateArgs) -> Result<ExitCode> {
    bail!("calibrate is not built yet")
}
pub fn policy(_c: PolicyCommand) -> Result<ExitCode> {
    bail!("policy is not built yet")
}
