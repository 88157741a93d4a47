//! One module per family of subcommands. Each command returns `Ok(exit code)` for outcomes it
//! reports itself, or `Err` for usage and environment errors (printed as one line, exit 2).

pub mod approve;
pub mod args;
pub mod daemon;
pub mod detect;
pub mod evidence;
pub mod key;
pub mod policy_gen;
pub mod report;
pub mod sensor;
pub mod top;

/// Diagnostics go to stderr through `tracing` (RUST_LOG=debug for more); they are never evidence.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// `--baseline`, `--sched-interval`, `--wait`: the one duration parser (humantime's syntax, a
/// bare number is seconds); a value out of range is a usage error, never a panic.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    proctor_detect::parse_duration(s)
}
