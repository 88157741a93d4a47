//! `proctor top DIR`: the live terminal view (crates/top) over a run directory or a tree of them.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct TopArgs {
    /// A run's output directory (`--out`), or a directory holding many (the daemon's
    /// /var/lib/proctor/runs): every audit.jsonl up to three levels below is a session
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn top(a: TopArgs) -> anyhow::Result<ExitCode> {
    let source = proctor_top::RunDirSource::new(&a.dir)?;
    proctor_top::run(Box::new(source))?;
    Ok(ExitCode::SUCCESS)
}
