//! `keygen`, `verify`, `sinkhole`: owned by the evidence work (issue 4).

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct KeygenArgs {
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct VerifyArgs {
    pub paths: Vec<PathBuf>,
}

#[derive(Args)]
pub struct SinkholeArgs {
    #[arg(long)]
    pub listen: PathBuf,
}

pub fn keygen(_a: KeygenArgs) -> Result<ExitCode> {
    bail!("keygen is not built yet")
}
pub fn verify(_a: VerifyArgs) -> Result<ExitCode> {
    bail!("verify is not built yet")
}
pub fn sinkhole(_a: SinkholeArgs) -> Result<ExitCode> {
    bail!("sinkhole is not built yet")
}
