//! `proctor daemon`, `proctor config` and `proctor ctl`: the host service, its configuration and
//! its control socket.

use anyhow::{Context, Result};
use proctor_runtime::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct DaemonArgs {
    /// Configuration file (default /etc/proctor/proctor.toml); the drop-ins proctor.d/*.toml
    /// beside it are layered on it in name order
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (and every agent's policy and profile): prints OK, or the
    /// error as FILE:LINE:COL: message and exits 2
    Check {
        /// The main file (default /etc/proctor/proctor.toml), checked with the drop-ins
        /// proctor.d/*.toml beside it
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print the effective configuration (files layered, defaults filled in) as TOML
    Show {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
pub struct CtlArgs {
    /// The daemon's control socket (default: the one the configuration names)
    #[arg(long, value_name = "PATH", global = true)]
    pub socket: Option<PathBuf>,
    /// Configuration file naming the socket
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(clap::Subcommand)]
pub enum CtlCommand {
    /// Kill every process of one session's tree, and any it forks meanwhile (recorded in the
    /// session with who asked)
    Contain {
        /// The session, as `proctor ctl list` names it
        session: String,
        /// Kill the tree (the one containment daemon sessions offer)
        #[arg(long, required = true)]
        kill: bool,
    },
    /// Switch one session's mode (audit, shadow, enforce), recorded in the session as a
    /// `mode_change` with who asked; refused where the daemon has no layer for that mode
    Mode {
        /// The session, as `proctor ctl list` names it
        session: String,
        #[arg(value_enum)]
        mode: crate::cmd::args::ModeArg,
    },
    /// The agents the daemon matches and their sessions (pids, mode, alerts)
    List {
        /// The daemon's answer as JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn daemon(a: DaemonArgs) -> Result<ExitCode> {
    let cfg = Config::load(a.config.as_deref())?;
    proctor_runtime::daemon::run(cfg, a.config, crate::VERSION)?;
    Ok(ExitCode::SUCCESS)
}

pub fn config(c: ConfigCommand) -> Result<ExitCode> {
    match c {
        ConfigCommand::Check { file } => {
            let cfg = Config::load(file.as_deref())?;
            proctor_runtime::daemon::check_agents(&cfg)?;
            cfg.outputs_config()?;
            cfg.metrics_config()?;
            println!("OK");
        }
        ConfigCommand::Show { config } => {
            print!("{}", Config::load(config.as_deref())?.to_toml());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn ctl(a: CtlArgs) -> Result<ExitCode> {
    let socket = match a.socket {
        Some(s) => s,
        None => Config::load(a.config.as_deref())?.daemon.socket,
    };
    match a.command {
        CtlCommand::Contain { session, kill: _ } => {
            let done = proctor_runtime::control::send_to(
                &socket,
                socket.parent().unwrap_or(std::path::Path::new("/")),
                &proctor_runtime::control::Control::SessionContain {
                    session,
                    action: proctor_runtime::enforcement::ContainAction::Kill,
                },
            )
            .with_context(|| format!("asking the daemon at {}", socket.display()))?;
            eprintln!("proctor: {done}");
        }
        CtlCommand::Mode { session, mode } => {
            let done = proctor_runtime::control::send_to(
                &socket,
                socket.parent().unwrap_or(std::path::Path::new("/")),
                &proctor_runtime::control::Control::SessionMode {
                    session,
                    mode: mode.into(),
                },
            )
            .with_context(|| format!("asking the daemon at {}", socket.display()))?;
            eprintln!("proctor: {done}");
        }
        CtlCommand::List { json } => {
            let l = proctor_runtime::daemon::list(&socket)
                .with_context(|| format!("asking the daemon at {}", socket.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&l)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("agents: {}", l.agents.join(", "));
            println!(
                "{:<16} {:<28} {:>8} {:<6} {:>6} {:>8}  PIDS",
                "AGENT", "SESSION", "ROOT", "MODE", "ALERTS", "RECORDS"
            );
            for s in &l.sessions {
                let pids: Vec<String> = s.pids.iter().map(u32::to_string).collect();
                println!(
                    "{:<16} {:<28} {:>8} {:<6} {:>6} {:>8}  {}",
                    s.agent,
                    s.session,
                    s.root_pid,
                    s.mode,
                    s.alerts,
                    s.records,
                    pids.join(",")
                );
            }
            if l.unattributed > 0 {
                println!("records of no session: {}", l.unattributed);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
