//! proctor: the command line. Argument parsing and glue only; the logic lives in the library
//! crates (runtime, sensor, detect, evidence).

mod cmd;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use std::process::ExitCode;

// proctor allocates per record (strings of paths, argv, JSON buffers) on its hot paths; mimalloc
// took 12% off replay's instruction count against glibc malloc (bench/FINDINGS.md).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// `0.1.0 (COMMIT)`: the commit from build.rs, "-dirty" when built from uncommitted changes.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("PROCTOR_COMMIT"), ")");

/// Runtime security monitor for AI agents on Linux: follows an agent's process tree from the
/// kernel with eBPF, records what it does, and raises signed alerts.
#[derive(Parser)]
#[command(name = "proctor", version = VERSION, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start CMD as the monitored agent and record everything its process tree does
    Run(cmd::sensor::RunArgs),
    /// Monitor a running process, its descendants and all future ones
    Attach(cmd::sensor::AttachArgs),
    /// Say what this kernel offers proctor, feature by feature
    Doctor(cmd::sensor::DoctorArgs),
    /// Switch the enforcement mode of a running proctor (audit, shadow, enforce)
    Mode(cmd::sensor::ModeArgs),
    /// Answer the approval requests of a running proctor (its `ask` rules): interactive, or
    /// --allow/--deny with --id N or --all
    Approve(cmd::approve::ApproveArgs),
    /// Contain a running agent: freeze, thaw, kill, isolate or restore its network (recorded)
    Contain(cmd::sensor::ContainArgs),
    /// Run the detectors offline over a recorded audit log
    Replay(cmd::detect::ReplayArgs),
    /// Learn an agent's baseline once and save it as a profile
    Calibrate(cmd::sensor::CalibrateArgs),
    /// Show the built-in policy or check a policy file
    #[command(subcommand)]
    Policy(cmd::detect::PolicyCommand),
    /// Create an Ed25519 key pair for signing certificates
    Keygen(cmd::evidence::KeygenArgs),
    /// Rotate the signing key or revoke a key
    #[command(subcommand)]
    Key(cmd::key::KeyCommand),
    /// Verify certificates and audit logs offline
    Verify(cmd::evidence::VerifyArgs),
    /// Write the report of a run for people: one self-contained HTML (or Markdown) file
    Report(cmd::report::ReportArgs),
    /// Add RFC 3161 timestamp tokens from a TSA to a run's certificates and checkpoints
    Timestamp(cmd::report::TimestampArgs),
    /// Reference receiver for alert delivery on a Unix socket
    Sinkhole(cmd::evidence::SinkholeArgs),
    /// The host service: monitor every agent the configuration's rules match, a session each
    Daemon(cmd::daemon::DaemonArgs),
    /// Check or show the host configuration (/etc/proctor/proctor.toml and proctor.d/)
    #[command(subcommand)]
    Config(cmd::daemon::ConfigCommand),
    /// Talk to the running daemon over its control socket
    Ctl(cmd::daemon::CtlArgs),
    /// Live view of running sessions: alerts, incidents, record rates and losses (q quits)
    Top(cmd::top::TopArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout: `proctor man > proctor.1`
    Man,
}

/// Write what `gen` derives from the clap definitions (so completions and the man page cannot
/// drift from the parser) to stdout. Rendered to memory first: clap_complete panics on a
/// failed write (`proctor completions bash | head`).
fn generated(
    gen: impl FnOnce(&mut clap::Command, &mut Vec<u8>) -> std::io::Result<()>,
) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    use std::io::Write;
    let mut buf = Vec::new();
    gen(&mut Cli::command(), &mut buf)?;
    std::io::stdout().lock().write_all(&buf)?;
    Ok(ExitCode::SUCCESS)
}

/// mimalloc's `mi_option_purge_delay` (its option number in mimalloc.h; the Rust binding
/// names only the stable options).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The process's memory settings, made before the Rust runtime's first allocation: an ELF
/// constructor (`.init_array`) runs before `main` and before the runtime's start-up, whose
/// first allocation (the main thread's info) faulted the allocator's first pages in as two
/// 2 MiB huge pages when THP was turned off in `main`: ~2-4 ms of zeroing at every start of
/// every command, most of `replay`'s and `verify`'s fixed start-up (bench/FINDINGS.md, round 10).
extern "C" fn early_memory_settings() {
    // Nothing here may allocate: the point is to come before the first allocation.
    // Small pages for proctor's own memory (runtime/src/thp.rs); `run` gives the agent back
    // the setting proctor inherited.
    proctor_runtime::thp::disable();
    // Pages freed are given back to the kernel at once, not 10 ms later: a storm's records
    // come and go in bursts, and the delayed purge kept 10-13 MB more resident at the peak
    // (connect storm: 63-66 MB -> 52 MB, no more CPU). MIMALLOC_PURGE_DELAY still decides when
    // it is set.
    // SAFETY: getenv of a NUL-terminated literal, before any other thread exists; then one
    // integer option set, also before any thread (the call is not thread safe).
    unsafe {
        if libc::getenv(c"MIMALLOC_PURGE_DELAY".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

#[used]
#[link_section = ".init_array"]
static EARLY_MEMORY_SETTINGS: extern "C" fn() = early_memory_settings;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation => {
            // A bad value: clap's first line names the option, the value and why; its usage
            // hint after it would make the one-line error three.
            let text = e.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or_default());
            return ExitCode::from(2);
        }
        Err(e) if e.kind() == clap::error::ErrorKind::UnknownArgument => {
            // `proctor run ls`: the agent's command must follow `--`, and clap's "unexpected
            // argument" does not say so.
            let arg = e
                .get(clap::error::ContextKind::InvalidArg)
                .map(ToString::to_string)
                .unwrap_or_default();
            let sub = std::env::args().nth(1).unwrap_or_default();
            if matches!(sub.as_str(), "run" | "calibrate") && !arg.starts_with('-') {
                eprintln!("proctor: `{arg}` is not an option of `proctor {sub}`; put the agent's command after `--`: proctor {sub} [OPTIONS] -- {arg} ...");
            } else {
                eprintln!(
                    "{}",
                    e.render().to_string().lines().next().unwrap_or_default()
                );
            }
            return ExitCode::from(2);
        }
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    cmd::init_logging();
    let result = match cli.command {
        Command::Run(a) => cmd::sensor::run(a),
        Command::Attach(a) => cmd::sensor::attach(a),
        Command::Doctor(a) => cmd::sensor::doctor(a),
        Command::Mode(a) => cmd::sensor::mode(a),
        Command::Contain(a) => cmd::sensor::contain(a),
        Command::Approve(a) => cmd::approve::approve(a),
        Command::Replay(a) => cmd::detect::replay(a),
        Command::Calibrate(a) => cmd::sensor::calibrate(a),
        Command::Policy(c) => cmd::detect::policy(c),
        Command::Keygen(a) => cmd::evidence::keygen(a),
        Command::Key(c) => cmd::key::key(c),
        Command::Verify(a) => cmd::evidence::verify(a),
        Command::Report(a) => cmd::report::report(a),
        Command::Timestamp(a) => cmd::report::timestamp(a),
        Command::Sinkhole(a) => cmd::evidence::sinkhole(a),
        Command::Daemon(a) => cmd::daemon::daemon(a),
        Command::Config(c) => cmd::daemon::config(c),
        Command::Ctl(a) => cmd::daemon::ctl(a),
        Command::Top(a) => cmd::top::top(a),
        Command::Completions { shell } => generated(|cmd, out| {
            clap_complete::generate(shell, cmd, "proctor", out);
            Ok(())
        }),
        Command::Man => generated(|cmd, out| clap_mangen::Man::new(cmd.clone()).render(out)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line naming what failed, with its causes; usage and environment errors exit 2.
            eprintln!("proctor: {e:#}");
            ExitCode::from(2)
        }
    }
}
