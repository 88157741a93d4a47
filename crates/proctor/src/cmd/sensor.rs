//! `run`, `attach`, `doctor`: the sensor side (issue 2).

use crate::detection::{home_and_cwd_of, DetectOpts, Detection, Loaded};
use crate::enforcement::{Enforcement, ModeArg, Target};
use crate::monitor::{all_processes, proc_comm, process_exists, threads_of, Monitor, MonitorOpts};
use anyhow::{bail, Context, Result};
use clap::Args;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;
use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub opts: MonitorOpts,
    #[command(flatten)]
    pub detect: DetectOpts,
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
    pub opts: MonitorOpts,
    #[command(flatten)]
    pub detect: DetectOpts,
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
    /// Where to write the learned profile (reuse it with `run --profile FILE`)
    #[arg(long, value_name = "FILE")]
    pub profile: std::path::PathBuf,
    /// Length of the learning window (shorter if the agent exits first)
    #[arg(long, default_value = "30s", value_parser = crate::monitor::parse_duration)]
    pub baseline: Duration,
    /// Policy file (default: the built-in policy)
    #[arg(long, value_name = "FILE")]
    pub policy: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub opts: MonitorOpts,
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
    let loaded = Loaded::from_opts(&a.detect)?;
    let user = a.user.as_deref().map(RunAs::lookup).transpose()?;
    launch(Launch {
        opts: &a.opts,
        detect: &a.detect,
        loaded,
        profile_out: None,
        argv_os: &a.cmd,
        command: "run",
        mode: a.mode,
        user,
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
    launch(Launch {
        opts: &a.opts,
        detect: &detect,
        loaded,
        profile_out: Some(a.profile.clone()),
        argv_os: &a.cmd,
        command: "calibrate",
        mode: ModeArg::Audit,
        user: None,
    })
}

/// The user an agent runs as (`run --user`).
#[derive(Clone)]
pub struct RunAs {
    name: String,
    uid: libc::uid_t,
    gid: libc::gid_t,
    home: std::path::PathBuf,
}

impl RunAs {
    /// Look up a user name or numeric uid in the passwd database.
    pub fn lookup(user: &str) -> Result<RunAs> {
        use std::ffi::{CStr, CString};
        let cname = CString::new(user).context("user name with a NUL byte")?;
        // SAFETY: getpwnam/getpwuid return NULL or a pointer to static storage that stays valid
        // until the next call; we copy what we need at once (single-threaded here).
        let pw = unsafe {
            match user.parse::<libc::uid_t>() {
                Ok(uid) => libc::getpwuid(uid),
                Err(_) => libc::getpwnam(cname.as_ptr()),
            }
        };
        if pw.is_null() {
            bail!("no such user: {user}");
        }
        // SAFETY: pw is non-null and points to a valid passwd entry (see above).
        let (name, uid, gid, home) = unsafe {
            let p = &*pw;
            (
                CStr::from_ptr(p.pw_name).to_string_lossy().into_owned(),
                p.pw_uid,
                p.pw_gid,
                std::path::PathBuf::from(std::ffi::OsStr::from_bytes(
                    CStr::from_ptr(p.pw_dir).to_bytes(),
                )),
            )
        };
        if uid == 0 {
            bail!("--user {user} is root: use a non-root user (or leave --user out)");
        }
        Ok(RunAs {
            name,
            uid,
            gid,
            home,
        })
    }

    /// Drop to this user in the forked child: supplementary groups, then gid, then uid.
    /// Async-signal-safe (three syscalls).
    fn drop_privileges(&self) -> std::io::Result<()> {
        // SAFETY: plain syscalls on values we own; the group list has one element.
        unsafe {
            if libc::setgroups(1, &self.gid) != 0
                || libc::setresgid(self.gid, self.gid, self.gid) != 0
                || libc::setresuid(self.uid, self.uid, self.uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Everything `launch` needs.
struct Launch<'a> {
    opts: &'a MonitorOpts,
    detect: &'a DetectOpts,
    loaded: Loaded,
    profile_out: Option<std::path::PathBuf>,
    argv_os: &'a [std::ffi::OsString],
    command: &'a str,
    mode: ModeArg,
    user: Option<RunAs>,
}

/// Start CMD as the monitored agent and follow it to the end.
fn launch(l: Launch) -> Result<ExitCode> {
    let Launch {
        opts,
        detect,
        loaded,
        profile_out,
        argv_os,
        command,
        mode,
        user,
    } = l;
    let program = argv_os[0].clone();
    let agent_id = opts.agent_id.clone().unwrap_or_else(|| {
        std::path::Path::new(&program)
            .file_name()
            .map_or_else(|| "agent".into(), |n| n.to_string_lossy().into_owned())
    });
    let argv: Vec<proctor_model::Bytes> = argv_os
        .iter()
        .map(|s| {
            proctor_model::Bytes(std::os::unix::ffi::OsStrExt::as_bytes(s.as_os_str()).to_vec())
        })
        .collect();
    // The agent inherits our environment (HOME set for --user) and working directory. Both go
    // into sensor_start, so a replay binds `~` and `$CWD` in the policy as the live run did.
    let home = match &user {
        Some(u) => Some(u.home.clone()),
        None => std::env::var_os("HOME").map(std::path::PathBuf::from),
    };
    let cwd = std::env::current_dir().ok();
    let mut mon = Monitor::start(
        opts,
        agent_id,
        serde_json::json!({
            "mode": proctor_sensor::enforce::Mode::from(mode).as_str(),
            "command": command,
            "argv": argv,
            "home": home.as_deref().map(path_bytes),
            "cwd": cwd.as_deref().map(path_bytes),
            "version": env!("CARGO_PKG_VERSION"),
        }),
    )?;
    let mut en = Enforcement::setup(
        &mut mon.sensor,
        &loaded.policy,
        mode.into(),
        &format!("{}-{}", sanitize(&mon_name(&program)), std::process::id()),
        Target::Run,
    )?;
    let mut landlock = en.confine_files(&loaded.policy, home.as_deref(), cwd.as_deref())?;
    en.lsm_files(&mon.sensor, &loaded.policy, home.as_deref(), cwd.as_deref())?;
    let (seccomp_child, supervisor) = crate::seccomp::setup_run(
        &loaded.policy,
        &mut en,
        &mon.sensor,
        &mon_name(&program),
        &opts.out,
    )?
    .unzip();
    eprintln!("{}", en.banner());
    eprintln!("{}", mon.tls_banner());
    let intercept_env = match (&en.cgroup, opts.tls.tls_intercept) {
        (Some(cg), true) => {
            let (env, banner) = mon.tls_intercept(cg.dir_fd(), &opts.tls)?;
            eprintln!("{banner}");
            env
        }
        (None, true) => anyhow::bail!("--tls-intercept needs the agent's cgroup (cgroup v2)"),
        (_, false) => Vec::new(),
    };
    let cgroup_fd = en.cgroup.as_ref().map(|c| c.procs_fd());
    mon.enforcement = Some(en);
    mon.set_detection(Detection::new(
        &opts.out,
        detect,
        loaded,
        home,
        cwd,
        profile_out,
    )?);

    let map_fd = mon.sensor.tracked_map_fd();
    let mut cmd = Command::new(&program);
    cmd.args(&argv_os[1..]);
    cmd.envs(intercept_env);
    if let Some(u) = &user {
        cmd.env("HOME", &u.home)
            .env("USER", &u.name)
            .env("LOGNAME", &u.name);
    }
    // SAFETY: the closure runs in the forked child before exec and makes raw syscalls only
    // (async-signal-safe; Landlock's restrict_self is a prctl and a syscall). Order matters: the
    // agent joins its cgroup and the tracked set and loads the seccomp filter while it still has
    // the privilege to, then drops to --user, then confines itself with Landlock; its
    // descendants join in the kernel at fork and inherit both confinements.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = cgroup_fd {
                proctor_sensor::enforce::join_cgroup_raw(fd)?;
            }
            proctor_sensor::track_self_raw(map_fd)?;
            // The guard and ask filter (see seccomp.rs), its listener sent to proctor: while
            // still privileged, so no_new_privs is not forced on the agent.
            if let Some(s) = &seccomp_child {
                s.install()?;
            }
            if let Some(u) = &user {
                u.drop_privileges()?;
            }
            // If proctor dies (even by SIGKILL), the agent dies with it rather than running on
            // unwatched. Set after the credential change, which clears it.
            // (prctl with integer arguments only: covered by the SAFETY note above.)
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(rs) = landlock.take() {
                rs.restrict_self().map_err(std::io::Error::other)?;
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    // Our copy of the child's end of the listener socketpair goes with the closure.
    drop(cmd);
    mon.supervisor = supervisor;
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let (code, what) = match e.kind() {
                std::io::ErrorKind::NotFound => (127, "command not found".to_string()),
                std::io::ErrorKind::PermissionDenied => (126, "permission denied".to_string()),
                _ => (126, e.to_string()),
            };
            mon.sensor_record(
                "sensor_stop",
                serde_json::json!({ "reason": "spawn_failed", "error": what }),
            )?;
            mon.finish()?;
            eprintln!("proctor: {}: {what}", program.to_string_lossy());
            return Ok(ExitCode::from(code));
        }
    };
    let pid = child.id();
    mon.set_root(pid);
    if let Some(s) = &mon.supervisor {
        s.set_agent(pid);
    }
    let stop = forward_signals(pid as i32)?;

    let status = loop {
        mon.pump()?;
        if let Some(status) = child.try_wait().context("waiting for the agent")? {
            break status;
        }
    };
    stop.store(true, Ordering::Relaxed);
    mon.stop_supervisor()?;
    // The exit tracepoint fires before the parent is notified, so everything is in the ring.
    mon.drain()?;
    let still = mon.live_count();
    if still > 0 {
        eprintln!("proctor: {still} descendant process(es) of the agent still run and are no longer monitored");
    }
    let (code, body) = match (status.code(), status.signal()) {
        (Some(c), _) => (
            c,
            serde_json::json!({ "reason": "agent_exited", "exit_code": c }),
        ),
        (None, Some(s)) => (
            128 + s,
            serde_json::json!({ "reason": "agent_exited", "signal": s }),
        ),
        _ => (1, serde_json::json!({ "reason": "agent_exited" })),
    };
    let body = with_counts(body, &mon);
    mon.sensor_record("sensor_stop", body)?;
    mon.finish()?;
    eprintln!("{}", mon.summary());
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

pub fn attach(a: AttachArgs) -> Result<ExitCode> {
    if a.pid == 0 || !process_exists(a.pid) {
        bail!("no process with pid {}", a.pid);
    }
    if a.opts.tls.tls_intercept {
        // A running process cannot be told to trust the run's CA: its connects would fail.
        bail!("--tls-intercept is for `proctor run` only (a running process cannot be told to trust the interception CA)");
    }
    let loaded = Loaded::from_opts(&a.detect)?;
    let (home, cwd) = home_and_cwd_of(a.pid);
    let agent_id = a.opts.agent_id.clone().unwrap_or_else(|| {
        proc_comm(a.pid).map_or_else(|| format!("pid-{}", a.pid), |c| c.escaped())
    });
    let mut mon = Monitor::start(
        &a.opts,
        agent_id,
        serde_json::json!({
            "mode": proctor_sensor::enforce::Mode::from(a.mode).as_str(),
            "command": "attach",
            // Not `pid`: that common field names the writer, proctor itself (a body `pid` used
            // to overwrite it silently).
            "target_pid": a.pid,
            "home": home.as_deref().map(path_bytes),
            "cwd": cwd.as_deref().map(path_bytes),
            "version": env!("CARGO_PKG_VERSION"),
        }),
    )?;
    mon.set_root(a.pid);
    let loaded_policy = loaded.policy.clone();
    if loaded_policy.enforce.asks() && a.mode != ModeArg::Audit {
        bail!(
            "the policy has ask rules ([enforce] network = \"ask\" or ask_exec), which hold syscalls with a seccomp filter that only `proctor run` can install (attach cannot add one to a running process): use `proctor run`, or make them \"block\" or \"alert\" for attach"
        );
    }
    mon.set_detection(Detection::new(
        &a.opts.out,
        &a.detect,
        loaded,
        home.clone(),
        cwd.clone(),
        None,
    )?);
    let pids = track_tree(&mut mon, a.pid)?;
    mon.tls_adopt(&pids);
    let mut en = Enforcement::setup(
        &mut mon.sensor,
        &loaded_policy,
        a.mode.into(),
        &format!("attach-{}-{}", a.pid, std::process::id()),
        Target::Attach(&pids),
    )?;
    en.lsm_files(&mon.sensor, &loaded_policy, home.as_deref(), cwd.as_deref())?;
    eprintln!("{}", en.banner());
    eprintln!("{}", mon.tls_banner());
    if loaded_policy.enforce.asks() {
        eprintln!(
            "proctor: the policy's ask rules do not apply to attach (no seccomp filter on a running process); in audit mode nothing is held anyway"
        );
    }
    if loaded_policy.enforce.files && !en.lsm {
        eprintln!(
            "proctor: attach cannot add Landlock (or any seccomp filter) to a running process: the files layer does not apply; detection still alerts on sensitive opens"
        );
    }
    mon.enforcement = Some(en);
    eprintln!(
        "proctor: attached to {} process(es) under pid {}",
        pids.len(),
        a.pid
    );
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register(sig, interrupted.clone())
            .with_context(|| format!("installing a handler for signal {sig}"))?;
    }
    let mut last_check = std::time::Instant::now();
    while !interrupted.load(Ordering::Relaxed) {
        mon.pump()?;
        // Checking /proc is cheap but not free: once a second is enough to notice the end.
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = std::time::Instant::now();
            if mon.live_count() == 0 {
                break;
            }
        }
    }
    mon.drain()?;
    let reason = if interrupted.load(Ordering::Relaxed) {
        "interrupted"
    } else {
        "tree_exited"
    };
    let body = with_counts(serde_json::json!({ "reason": reason }), &mon);
    mon.sensor_record("sensor_stop", body)?;
    mon.finish()?;
    eprintln!("{}", mon.summary());
    Ok(ExitCode::SUCCESS)
}

/// Put `root`, its threads and all its existing descendants in the tracked set. Parents are
/// tracked before their children are listed, so a child forked during the walk either joins in
/// the kernel or is found here; the walk repeats until it finds nothing new.
fn track_tree(mon: &mut Monitor, root: u32) -> Result<Vec<u32>> {
    let mut done: HashSet<u32> = HashSet::new();
    loop {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (pid, ppid) in all_processes() {
            children.entry(ppid).or_default().push(pid);
        }
        let before = done.len();
        let mut queue = VecDeque::from([root]);
        while let Some(pid) = queue.pop_front() {
            if done.insert(pid) {
                for tid in threads_of(pid) {
                    mon.sensor.track(tid)?;
                }
                mon.add_live(pid);
            }
            queue.extend(children.get(&pid).into_iter().flatten().copied());
        }
        if done.len() == before {
            return Ok(done.into_iter().collect());
        }
    }
}

/// Forward SIGINT/SIGTERM/SIGHUP to the agent. A SIGINT the terminal generated (sent by the
/// kernel) already reached the agent, which shares our process group, so it is not sent twice.
fn forward_signals(child: i32) -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP])
        .context("installing signal handlers")?;
    let target = Arc::new(AtomicI32::new(child));
    let stop2 = stop.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for info in signals.forever() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                if info.cause == Cause::Kernel && info.signal == SIGINT {
                    continue;
                }
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(target.load(Ordering::Relaxed), info.signal) };
            }
        })
        .context("starting the signal thread")?;
    Ok(stop)
}

pub fn mode(a: ModeArgs) -> Result<ExitCode> {
    let mode = proctor_sensor::enforce::Mode::from(a.mode)
        .as_str()
        .to_string();
    crate::enforcement::send_control(&a.dir, &crate::enforcement::Control::Mode { mode })?;
    Ok(ExitCode::SUCCESS)
}

pub fn contain(a: ContainArgs) -> Result<ExitCode> {
    use crate::enforcement::ContainAction as A;
    let action = match (a.freeze, a.thaw, a.kill, a.isolate_net, a.restore_net) {
        (true, _, _, _, _) => A::Freeze,
        (_, true, _, _, _) => A::Thaw,
        (_, _, true, _, _) => A::Kill,
        (_, _, _, true, _) => A::IsolateNet,
        _ => A::RestoreNet,
    };
    crate::enforcement::send_control(&a.dir, &crate::enforcement::Control::Contain { action })?;
    Ok(ExitCode::SUCCESS)
}

/// A path in the lossless byte-string form of the audit log.
fn path_bytes(p: &std::path::Path) -> proctor_model::Bytes {
    proctor_model::Bytes(p.as_os_str().as_bytes().to_vec())
}

fn mon_name(program: &std::ffi::OsStr) -> String {
    std::path::Path::new(program)
        .file_name()
        .map_or_else(|| "agent".into(), |n| n.to_string_lossy().into_owned())
}

/// A cgroup directory name from untrusted text: only [A-Za-z0-9._-], at most 64 bytes.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

fn with_counts(mut body: serde_json::Value, mon: &Monitor) -> serde_json::Value {
    body["records"] = serde_json::json!(mon.counts());
    body["lost"] = serde_json::json!(mon.lost_total());
    if let Some(s) = mon.tls_stats() {
        body["tls_parser"] = s;
    }
    body
}

pub fn doctor(a: DoctorArgs) -> Result<ExitCode> {
    let feats = proctor_sensor::features::probe_all();
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
