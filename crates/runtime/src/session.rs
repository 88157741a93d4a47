//! A monitoring session from start to stop, shared by `run`, `calibrate` and `attach`: open the
//! output and load the sensor (`sensor_start`), set up enforcement and detection, start or adopt
//! the agent, pump the loop until it ends, drain, and close the evidence (`sensor_stop`).

use crate::detection::{DetectOpts, Detection, Loaded};
use crate::enforcement::{Enforcement, Target};
use crate::monitor::{Monitor, MonitorOpts};
use anyhow::{Context, Result};
use proctor_model::{Common, Mode, RunCounts, SensorStart, SensorStop, StopReason};
use proctor_sensor::procfs;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;
use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a session refuses before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("user name with a NUL byte")]
    NulInUser,
    #[error("no such user: {0}")]
    NoSuchUser(String),
    #[error("--user {0} is root: use a non-root user (or leave --user out)")]
    RootUser(String),
    #[error("no process with pid {0}")]
    NoProcess(u32),
    #[error(
        "the policy has ask rules ([enforce] network = \"ask\" or ask_exec), which hold syscalls with a seccomp filter that only `proctor run` can install (attach cannot add one to a running process): use `proctor run`, or make them \"block\" or \"alert\" for attach"
    )]
    AskOnAttach,
    #[error("--tls-intercept is for `proctor run` only (a running process cannot be told to trust the interception CA)")]
    InterceptOnAttach,
}

/// The user name of `uid` in the passwd database (None when it has no entry).
pub fn user_name(uid: u32) -> Option<String> {
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 4096];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; getpwuid_r writes only into pwd and buf
    // (the reentrant form: other threads may use the passwd database at the same time).
    let rc =
        unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside buf.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
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
    pub fn lookup(user: &str) -> Result<RunAs, SessionError> {
        use std::ffi::{CStr, CString};
        let cname = CString::new(user).map_err(|_| SessionError::NulInUser)?;
        // SAFETY: getpwnam/getpwuid return NULL or a pointer to static storage that stays valid
        // until the next call; we copy what we need at once (single-threaded here).
        let pw = unsafe {
            match user.parse::<libc::uid_t>() {
                Ok(uid) => libc::getpwuid(uid),
                Err(_) => libc::getpwnam(cname.as_ptr()),
            }
        };
        if pw.is_null() {
            return Err(SessionError::NoSuchUser(user.into()));
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
            return Err(SessionError::RootUser(user.into()));
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

/// Everything `launch` needs (`run` and `calibrate`).
pub struct Launch<'a> {
    pub opts: &'a MonitorOpts,
    pub detect: &'a DetectOpts,
    pub loaded: Loaded,
    pub profile_out: Option<std::path::PathBuf>,
    pub argv_os: &'a [std::ffi::OsString],
    pub command: &'a str,
    pub mode: Mode,
    pub user: Option<RunAs>,
    /// Stop when the agent's first process exits, even if processes it started still run.
    pub exit_with_agent: bool,
}

/// Start CMD as the monitored agent and follow it to the end.
pub fn launch(l: Launch) -> Result<ExitCode> {
    let Launch {
        opts,
        detect,
        loaded,
        profile_out,
        argv_os,
        command,
        mode,
        user,
        exit_with_agent,
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
        start_record(mode, command, Some(argv), None, &home, &cwd),
    )?;
    let mut en = Enforcement::setup(
        &mut mon.sensor,
        &loaded.policy,
        mode,
        &format!("{}-{}", sanitize(&mon_name(&program)), std::process::id()),
        Target::Run,
    )?;
    let mut landlock = en.confine_files(
        &loaded.policy,
        home.as_deref(),
        cwd.as_deref(),
        &signing_keys(opts),
    )?;
    en.guard_evidence(&opts.out);
    en.lsm_files(&mon.sensor, &loaded.policy, home.as_deref(), cwd.as_deref())?;
    let mut watch = crate::enforcement::SensitiveWatch::start(
        &mut mon.sensor,
        &loaded.policy,
        home.clone(),
        cwd.clone(),
    )?;
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
    // The agent joins its cgroup before it execs: any process of its tree outside it escaped.
    mon.born_in_cgroup = true;
    mon.set_detection(Detection::new(
        &opts.out,
        detect,
        loaded,
        home,
        cwd,
        profile_out,
    )?);

    let map_fd = mon.sensor.track_handle();
    let mut cmd = Command::new(&program);
    cmd.args(&argv_os[1..]);
    cmd.envs(intercept_env);
    // Where the agent reads why it was refused (one JSON line per refusal).
    let denials = crate::pipeline::prepare_denials(&opts.out, user.as_ref().map(|u| u.gid))?;
    cmd.env("PROCTOR_DENIALS", &denials);
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
            crate::thp::restore_raw()?;
            if let Some(fd) = cgroup_fd {
                proctor_sensor::enforce::join_cgroup_raw(fd)?;
            }
            proctor_sensor::track_self_raw(map_fd)?;
            // The guard and ask filter (see seccomp.rs), its listener sent to proctor: while
            // still privileged, so no_new_privs is not forced on the agent.
            if let Some(s) = &seccomp_child {
                s.install()?;
            }
            // Landlock while still root: CAP_SYS_ADMIN lets it go without no_new_privs, so
            // setuid binaries keep working for the agent; the domain survives the drop to --user.
            if let Some(rs) = landlock.take() {
                use landlock::RulesetCreatedAttr;
                rs.no_new_privs(false)
                    .restrict_self()
                    .map_err(std::io::Error::other)?;
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
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    // Our copy of the child's end of the listener socketpair goes with the closure.
    drop(cmd);
    mon.supervisor = supervisor;
    if mon.supervisor.is_some() {
        mon.pipe.keep_exec_ids();
    }
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let (code, what) = match e.kind() {
                std::io::ErrorKind::NotFound => (127, "command not found".to_string()),
                std::io::ErrorKind::PermissionDenied => (126, "permission denied".to_string()),
                _ => (126, e.to_string()),
            };
            let common = mon.proctor_common();
            mon.write(&SensorStop {
                reason: StopReason::SpawnFailed,
                exit_code: None,
                signal: None,
                error: Some(what.clone()),
                counts: None,
                survivors: Vec::new(),
                common,
            })?;
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
    let (stop, signals, hups) = forward_signals(pid as i32)?;
    let reload = |mon: &mut Monitor| -> Result<()> {
        let pending = std::mem::take(&mut *hups.lock().unwrap_or_else(|e| e.into_inner()));
        for sender in pending {
            mon.sighup_reload(sender, detect.policy.as_deref())?;
        }
        Ok(())
    };

    let status = loop {
        // Before the records: detection knows the sensitive files when it judges them.
        let found = watch.apply(&mon.sensor)?;
        mon.add_sensitive_files(found);
        reload(&mut mon)?;
        mon.pump()?;
        if let Some(status) = child.try_wait().context("waiting for the agent")? {
            break status;
        }
    };
    // The agent is reaped: its pid may be reused, so nothing is forwarded to it any more (a
    // signal still counts, below).
    stop.store(true, Ordering::Relaxed);
    // Processes the agent started may outlive it (a double-forked daemon): monitoring and
    // enforcement (the seccomp guard included) go on until the whole tree is gone, unless the
    // user asked to stop with the agent or interrupts the wait.
    let waited = wait_for_tree(&mut mon, exit_with_agent, &signals, &reload)?;
    mon.stop_supervisor()?;
    // The exit tracepoint fires before the parent is notified, so everything is in the ring.
    mon.drain()?;
    let survivors = mon.survivors();
    let reason = if waited && survivors.is_empty() {
        StopReason::TreeExited
    } else {
        StopReason::AgentExited
    };
    if !survivors.is_empty() {
        eprintln!(
            "proctor: {} process(es) of the agent still run and are no longer monitored",
            survivors.len()
        );
        mon.survivors_alert(&survivors)?;
    }
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    };
    finish_session(&mut mon, reason, status.code(), status.signal(), survivors)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Everything `attach` needs.
pub struct Attach<'a> {
    /// The process to monitor, with its descendants
    pub pid: u32,
    pub opts: &'a MonitorOpts,
    pub detect: &'a DetectOpts,
    pub mode: Mode,
}

/// Monitor a running process tree until it ends or proctor is interrupted.
pub fn attach(a: Attach) -> Result<ExitCode> {
    if a.pid == 0 || !procfs::exists(a.pid) {
        return Err(SessionError::NoProcess(a.pid).into());
    }
    if a.opts.tls.tls_intercept {
        // A running process cannot be told to trust the run's CA: its connects would fail.
        return Err(SessionError::InterceptOnAttach.into());
    }
    let loaded = Loaded::from_opts(a.detect)?;
    let (home, cwd) = procfs::home_and_cwd(a.pid);
    let agent_id = a.opts.agent_id.clone().unwrap_or_else(|| {
        procfs::comm(a.pid).map_or_else(|| format!("pid-{}", a.pid), |c| c.escaped())
    });
    let mut mon = Monitor::start(
        a.opts,
        agent_id,
        start_record(a.mode, "attach", None, Some(a.pid), &home, &cwd),
    )?;
    mon.set_root(a.pid);
    let loaded_policy = loaded.policy.clone();
    if loaded_policy.enforce.asks() && a.mode != Mode::Audit {
        return Err(SessionError::AskOnAttach.into());
    }
    mon.set_detection(Detection::new(
        &a.opts.out,
        a.detect,
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
        a.mode,
        &format!("attach-{}-{}", a.pid, std::process::id()),
        Target::Attach(&pids),
    )?;
    en.guard_evidence(&a.opts.out);
    en.lsm_files(&mon.sensor, &loaded_policy, home.as_deref(), cwd.as_deref())?;
    let mut watch = crate::enforcement::SensitiveWatch::start(
        &mut mon.sensor,
        &loaded_policy,
        home.clone(),
        cwd.clone(),
    )?;
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
        // Before the records: detection knows the sensitive files when it judges them.
        let found = watch.apply(&mon.sensor)?;
        mon.add_sensitive_files(found);
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
        StopReason::Interrupted
    } else {
        StopReason::TreeExited
    };
    finish_session(&mut mon, reason, None, None, Vec::new())?;
    Ok(ExitCode::SUCCESS)
}

/// Put `root`, its threads and all its existing descendants in the tracked set. Parents are
/// tracked before their children are listed, so a child forked during the walk either joins in
/// the kernel or is found here; the walk repeats until it finds nothing new.
fn track_tree(mon: &mut Monitor, root: u32) -> Result<Vec<u32>> {
    let mut done: HashSet<u32> = HashSet::new();
    loop {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (pid, ppid) in procfs::all_processes() {
            children.entry(ppid).or_default().push(pid);
        }
        let before = done.len();
        let mut queue = VecDeque::from([root]);
        while let Some(pid) = queue.pop_front() {
            if done.insert(pid) {
                for tid in procfs::threads(pid) {
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

/// SIGHUPs received and not yet acted on: each one's sender (pid, uid), if the kernel said.
type Hups = Arc<std::sync::Mutex<Vec<Option<(i32, u32)>>>>;

/// Forward SIGINT/SIGTERM to the agent. A SIGINT the terminal generated (sent by the kernel)
/// already reached the agent, which shares our process group, so it is not sent twice. SIGHUP
/// is not forwarded: it asks proctor to reload its policy file (queued with its sender for the
/// run loop). The counter counts every SIGINT/SIGTERM received (the wait for survivors stops on
/// one).
fn forward_signals(child: i32) -> Result<(Arc<AtomicBool>, Arc<AtomicU32>, Hups)> {
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU32::new(0));
    let received2 = received.clone();
    let hups: Hups = Arc::default();
    let hups2 = hups.clone();
    let mut signals = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP])
        .context("installing signal handlers")?;
    let target = Arc::new(AtomicI32::new(child));
    let stop2 = stop.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for info in signals.forever() {
                if info.signal == SIGHUP {
                    let sender = info.process.map(|p| (p.pid, p.uid));
                    hups2.lock().unwrap_or_else(|e| e.into_inner()).push(sender);
                    continue;
                }
                received2.fetch_add(1, Ordering::Relaxed);
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
    Ok((stop, received, hups))
}

/// After the agent's first process exited: keep monitoring while any process of its tree
/// lives (the tracked set, and the agent cgroup). Returns whether there was anything to wait
/// for. Stops early with `--exit-with-agent` or on a SIGINT/SIGTERM received meanwhile; a
/// SIGHUP still reloads the policy (`reload`).
fn wait_for_tree(
    mon: &mut Monitor,
    exit_with_agent: bool,
    signals: &AtomicU32,
    reload: &dyn Fn(&mut Monitor) -> Result<()>,
) -> Result<bool> {
    if exit_with_agent {
        return Ok(false);
    }
    let seen = signals.load(Ordering::Relaxed);
    let mut waited = false;
    let mut last_check = std::time::Instant::now() - Duration::from_secs(1);
    loop {
        reload(mon)?;
        mon.pump()?;
        // Checking /proc is cheap but not free: ten times a second is enough to see the end.
        if last_check.elapsed() >= Duration::from_millis(100) {
            last_check = std::time::Instant::now();
            if mon.live_count() == 0 && mon.agent_cgroup_empty() {
                return Ok(waited);
            }
            if !waited {
                eprintln!("proctor: the agent exited; monitoring the processes it left running until they exit (Ctrl-C stops now)");
            }
            waited = true;
        }
        if signals.load(Ordering::Relaxed) != seen {
            return Ok(waited);
        }
    }
}

/// proctor's private signing keys: the one `--key` names and the state directory's.
fn signing_keys(opts: &MonitorOpts) -> Vec<std::path::PathBuf> {
    let mut keys: Vec<std::path::PathBuf> = opts.evidence.key.iter().cloned().collect();
    keys.push(proctor_evidence::default_state_dir().join(proctor_evidence::PRIVATE_KEY_FILE));
    keys
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

/// The `sensor_start` record of a session (the monitor adds the TLS and common fields).
pub(crate) fn start_record(
    mode: Mode,
    command: &str,
    argv: Option<Vec<proctor_model::Bytes>>,
    target_pid: Option<u32>,
    home: &Option<std::path::PathBuf>,
    cwd: &Option<std::path::PathBuf>,
) -> SensorStart {
    SensorStart {
        mode,
        command: command.into(),
        argv,
        target_pid,
        home: home.as_deref().map(path_bytes),
        cwd: cwd.as_deref().map(path_bytes),
        version: env!("CARGO_PKG_VERSION").into(),
        host: proctor_evidence::hostname(),
        capture_tls: false,
        tls_redaction: String::new(),
        tls_max_bytes: None,
        tls_hooked: None,
        common: Common::proctor(0, ""),
    }
}

/// The end of every session: `sensor_stop` with what was recorded, the evidence closed, and
/// the one-line summary.
fn finish_session(
    mon: &mut Monitor,
    reason: StopReason,
    exit_code: Option<i32>,
    signal: Option<i32>,
    survivors: Vec<proctor_model::Survivor>,
) -> Result<()> {
    let rec = SensorStop {
        reason,
        exit_code,
        signal: if exit_code.is_some() { None } else { signal },
        error: None,
        counts: Some(RunCounts {
            records: mon.counts().clone(),
            lost: mon.lost_total(),
            tls_parser: mon.tls_stats(),
        }),
        survivors,
        common: mon.proctor_common(),
    };
    mon.write(&rec)?;
    mon.finish()?;
    eprintln!("{}", mon.summary());
    Ok(())
}
