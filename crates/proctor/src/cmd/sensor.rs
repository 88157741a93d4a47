//! `run`, `attach`, `calibrate`, `doctor`, `mode`, `contain`: the sensor side. Each maps its
//! arguments to a `proctor_runtime::session` configuration.

use crate::cmd::args::{DetectArgs, ModeArg, MonitorArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use proctor_runtime::control::{self, Control};
use proctor_runtime::detection::{DetectOpts, Loaded};
use proctor_runtime::enforcement::ContainAction;
use proctor_runtime::session::{self, Attach, Launch, RunAs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub opts: MonitorArgs,
    #[command(flatten)]
    pub detect: DetectArgs,
    /// audit: observe and alert; shadow: record what enforce would block; enforce: block what
    /// the policy's [enforce] section names and hold its ask rules for a verdict (`proctor
    /// approve DIR`). In every mode a seccomp guard refuses the agent's signals and ptrace
    /// aimed at proctor.
    #[arg(long, value_enum, default_value = "audit")]
    pub mode: ModeArg,
    /// Run the agent as this user (name or uid) instead of root: it then cannot signal, ptrace
    /// or unload proctor. HOME, USER and LOGNAME are set for that user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Stop when the agent's first process exits, even if processes it started still run
    /// (they are named in `sensor_stop` and alerted on). By default proctor keeps monitoring
    /// and enforcing until the whole tree is gone (a SIGINT or SIGTERM then stops it early,
    /// the same way)
    #[arg(long)]
    pub exit_with_agent: bool,
    /// The agent command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<std::ffi::OsString>,
}

#[derive(Args)]
pub struct AttachArgs {
    /// The process to monitor, with its descendants
    #[arg(long)]
    pub pid: u32,
    #[command(flatten)]
    pub opts: MonitorArgs,
    #[command(flatten)]
    pub detect: DetectArgs,
    /// audit, shadow or enforce (attach cannot add Landlock or seccomp to a running process:
    /// exec, ptrace and network layers apply; ask rules are an error in shadow and enforce)
    #[arg(long, value_enum, default_value = "audit")]
    pub mode: ModeArg,
}

/// Exactly one action; proctor never takes these on its own.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["freeze", "thaw", "kill", "isolate_net", "restore_net"])))]
pub struct ContainArgs {
    /// The output directory of the running proctor (its --out)
    pub dir: std::path::PathBuf,
    /// Freeze every process of the agent (cgroup.freeze)
    #[arg(long)]
    pub freeze: bool,
    /// Thaw a frozen agent
    #[arg(long)]
    pub thaw: bool,
    /// Kill every process of the agent at once (cgroup.kill)
    #[arg(long)]
    pub kill: bool,
    /// Refuse every connect and send of the agent, whatever the mode
    #[arg(long)]
    pub isolate_net: bool,
    /// Lift --isolate-net
    #[arg(long)]
    pub restore_net: bool,
}

#[derive(Args)]
pub struct ModeArgs {
    /// The output directory of the running proctor (its --out)
    pub dir: std::path::PathBuf,
    /// The new mode
    #[arg(value_enum)]
    pub mode: ModeArg,
}

#[derive(Args)]
pub struct CalibrateArgs {
    /// Where to write the learned profile (reuse it with `run --profile FILE`); an existing
    /// profile there absorbs this session (profiles accumulate over runs)
    #[arg(long, value_name = "FILE")]
    pub profile: std::path::PathBuf,
    /// Length of the learning window (shorter if the agent exits first)
    #[arg(long, default_value = "30s", value_parser = crate::cmd::parse_duration)]
    pub baseline: Duration,
    /// Policy file (default: the built-in policy)
    #[arg(long, value_name = "FILE")]
    pub policy: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub opts: MonitorArgs,
    /// The agent command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<std::ffi::OsString>,
}

#[derive(Args)]
pub struct DoctorArgs {
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: RunArgs) -> Result<ExitCode> {
    let detect = with_builtin_profile(&a.detect, Path::new(&a.cmd[0]).display(), || {
        builtin_profile_of(&a.cmd)
    });
    let loaded = Loaded::from_opts(&detect)?;
    let user = a.user.as_deref().map(RunAs::lookup).transpose()?;
    session::launch(Launch {
        opts: &a.opts.opts(),
        detect: &detect,
        loaded,
        profile_out: None,
        argv_os: &a.cmd,
        command: "run",
        mode: a.mode.into(),
        user,
        exit_with_agent: a.exit_with_agent,
    })
}

/// The detection options of `args`; with neither `--profile` nor `--baseline`, an agent CLI
/// proctor has a profile for (`known`, asked only then) is judged by it from its first record:
/// a learning window would take in whatever a hijacked first task does as the agent's normal.
fn with_builtin_profile(
    args: &DetectArgs,
    who: impl std::fmt::Display,
    known: impl FnOnce() -> Option<&'static str>,
) -> DetectOpts {
    let mut detect = args.opts();
    if args.profile.is_none() && args.baseline.is_none() {
        if let Some(name) = known() {
            eprintln!(
                "proctor: judging {who} by builtin:{name} from its first record (--baseline \
                 DURATION learns a baseline instead, --profile FILE names another profile)"
            );
            detect.profile = Some(PathBuf::from(format!("builtin:{name}")));
        }
    }
    detect
}

/// The built-in profile of the agent CLI `cmd` runs: by the command's name, by the file it
/// resolves to (an npm install's `.bin/codex` is a link into `@openai/codex`), and for `node`,
/// `bun`, `deno`, a shell or python by the script it is given.
fn builtin_profile_of(cmd: &[std::ffi::OsString]) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    let first = cmd.first()?;
    let p = Path::new(first);
    let exe = if p.as_os_str().as_bytes().contains(&b'/') {
        std::fs::canonicalize(p).ok()
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path).find_map(|d| std::fs::canonicalize(d.join(p)).ok())
        })
    };
    profile_by(cmd, exe, Path::new("."))
}

/// The built-in profile of the agent CLI a running process is ([`builtin_profile_of`] with
/// its argv, its executable and its working directory from /proc).
fn builtin_profile_of_pid(pid: u32) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = std::fs::read(proc.join("cmdline")).ok()?;
    let argv: Vec<std::ffi::OsString> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| std::ffi::OsStr::from_bytes(a).to_os_string())
        .collect();
    let exe = std::fs::read_link(proc.join("exe")).ok();
    profile_by(&argv, exe, &proc.join("cwd"))
}

/// The profile named by `argv[0]`, the executable `exe`, or (for a JavaScript runtime, a shell
/// or python) its script, a relative one found from `cwd`.
fn profile_by(
    argv: &[std::ffi::OsString],
    exe: Option<PathBuf>,
    cwd: &Path,
) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    let mut paths: Vec<Vec<u8>> = vec![argv.first()?.as_bytes().to_vec()];
    paths.extend(exe.iter().map(|p| p.as_os_str().as_bytes().to_vec()));
    // A runtime or an interpreter runs the agent's script: the script names the agent.
    let runtime = exe
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.as_bytes())
        .is_some_and(|n| {
            matches!(
                n,
                b"node" | b"nodejs" | b"bun" | b"deno" | b"sh" | b"dash" | b"bash" | b"zsh"
            ) || n.starts_with(b"python")
        });
    if runtime {
        if let Some(script) = argv
            .iter()
            .skip(1)
            .find(|a| !a.as_bytes().starts_with(b"-"))
        {
            paths.push(script.as_bytes().to_vec());
            paths.extend(
                std::fs::canonicalize(cwd.join(script))
                    .ok()
                    .map(|p| p.as_os_str().as_bytes().to_vec()),
            );
        }
    }
    let refs: Vec<&[u8]> = paths.iter().map(Vec::as_slice).collect();
    proctor_detect::builtin_profile_for(&refs)
}

pub fn attach(a: AttachArgs) -> Result<ExitCode> {
    let detect = with_builtin_profile(&a.detect, format!("pid {}", a.pid), || {
        builtin_profile_of_pid(a.pid)
    });
    session::attach(Attach {
        pid: a.pid,
        opts: &a.opts.opts(),
        detect: &detect,
        mode: a.mode.into(),
    })
}

/// Learn a baseline over one run of the agent and save it as a reusable profile: the window
/// closes after `--baseline` or when the agent exits, whichever is first. No alerts.
pub fn calibrate(a: CalibrateArgs) -> Result<ExitCode> {
    let detect = DetectOpts {
        baseline: a.baseline,
        profile: None,
        policy: a.policy.clone(),
    };
    let loaded = Loaded::from_opts(&detect)?;
    if let Some(parent) = a.profile.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            bail!(
                "cannot write profile {}: {} is not a directory",
                a.profile.display(),
                parent.display()
            );
        }
    }
    session::launch(Launch {
        opts: &a.opts.opts(),
        detect: &detect,
        loaded,
        profile_out: Some(a.profile.clone()),
        argv_os: &a.cmd,
        command: "calibrate",
        mode: proctor_model::Mode::Audit,
        user: None,
        exit_with_agent: false,
    })
}

pub fn mode(a: ModeArgs) -> Result<ExitCode> {
    request(
        &a.dir,
        &Control::Mode {
            mode: a.mode.into(),
        },
    )
}

/// Hand `req` to the proctor monitoring into `dir` (over its control socket) and say what it did.
fn request(dir: &std::path::Path, req: &Control) -> Result<ExitCode> {
    let done = control::send(dir, req)?;
    if !done.is_empty() {
        eprintln!("proctor: {done}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn contain(a: ContainArgs) -> Result<ExitCode> {
    use ContainAction as A;
    let action = match (a.freeze, a.thaw, a.kill, a.isolate_net, a.restore_net) {
        (true, _, _, _, _) => A::Freeze,
        (_, true, _, _, _) => A::Thaw,
        (_, _, true, _, _) => A::Kill,
        (_, _, _, true, _) => A::IsolateNet,
        _ => A::RestoreNet,
    };
    request(&a.dir, &Control::Contain { action })
}

pub fn doctor(a: DoctorArgs) -> Result<ExitCode> {
    // Without the privilege to load eBPF this is the one line doctor prints (exit 2): every
    // other check would fail for that reason and wrongly blame the kernel.
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let feats = proctor_sensor::features::probe_all()
        .with_context(|| format!("doctor cannot judge this kernel as uid {uid}"))?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let ok = feats.iter().all(|f| f.available || !f.required);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "kernel": release.trim(),
                "monitoring_possible": ok,
                "features": feats,
            }))?
        );
    } else {
        println!("kernel {}", release.trim());
        for f in &feats {
            let mark = match (f.available, f.required) {
                (true, _) => "ok  ",
                (false, true) => "FAIL",
                (false, false) => "--  ",
            };
            println!("  {mark} {:<28} {}", f.name, f.detail);
            println!("       {:<28} -> {}", "", f.consequence);
        }
        println!(
            "{}",
            if ok {
                "proctor can monitor agents on this kernel"
            } else {
                "proctor cannot monitor on this kernel: see FAIL lines"
            }
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
