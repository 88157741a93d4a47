//! `run`, `attach`, `doctor`: the sensor side (issue 2).

use anyhow::{bail, Result};
use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct RunArgs {
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

#[derive(Args)]
pub struct AttachArgs {
    #[arg(long)]
    pub pid: u32,
}

#[derive(Args)]
pub struct DoctorArgs {}

pub fn run(_a: RunArgs) -> Result<ExitCode> {
    bail!("run is not built yet")
}
pub fn attach(_a: AttachArgs) -> Result<ExitCode> {
    bail!("attach is not built yet")
}
pub fn doctor(_a: DoctorArgs) -> Result<ExitCode> {
    bail!("doctor is not built yet")
}
