//! `proctor top DIR` / `proctor top --daemon`: the live terminal view (crates/top) over a run
//! directory, a tree of them, or the sessions a running daemon lists on its socket.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct TopArgs {
    /// A run's output directory (`--out`), or a directory holding many (the daemon's
    /// /var/lib/proctor/runs): every audit.jsonl up to three levels below is a session
    #[arg(value_name = "DIR", required_unless_present = "daemon")]
    pub dir: Option<PathBuf>,
    /// Follow a running daemon: the sessions it lists on its control socket, as they open
    #[arg(long, conflicts_with = "dir")]
    pub daemon: bool,
    /// The daemon's control socket (default: the one the configuration names)
    #[arg(long, value_name = "PATH", requires = "daemon")]
    pub socket: Option<PathBuf>,
    /// Configuration file naming the socket (default /etc/proctor/proctor.toml)
    #[arg(long, value_name = "FILE", requires = "daemon")]
    pub config: Option<PathBuf>,
}

pub fn top(a: TopArgs) -> anyhow::Result<ExitCode> {
    let source: Box<dyn proctor_top::Source> = match a.dir {
        Some(dir) => Box::new(proctor_top::RunDirSource::new(&dir)?),
        None => {
            let socket = match a.socket {
                Some(s) => s,
                None => {
                    proctor_runtime::config::Config::load(a.config.as_deref())?
                        .daemon
                        .socket
                }
            };
            // Asked once before the screen is taken: a wrong socket is one clear line.
            proctor_runtime::daemon::list(&socket)
                .with_context(|| format!("asking the daemon at {}", socket.display()))?;
            let what = socket.display().to_string();
            Box::new(proctor_top::ListedSource::new(
                what,
                Box::new(move || {
                    Ok(proctor_runtime::daemon::list(&socket)?
                        .sessions
                        .into_iter()
                        .map(|s| (format!("{}/{}", s.agent, s.session), s.dir))
                        .collect())
                }),
            ))
        }
    };
    proctor_top::run(source)?;
    Ok(ExitCode::SUCCESS)
}
