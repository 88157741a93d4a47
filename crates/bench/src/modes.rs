//! The four ways a workload runs (bare, proctor, bpftrace, auditd) and one measured run of a
//! workload in one of them.

use crate::sys;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Bare,
    Proctor,
    Bpftrace,
    Auditd,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Bare, Mode::Proctor, Mode::Bpftrace, Mode::Auditd];
    pub fn name(self) -> &'static str {
        match self {
            Mode::Bare => "bare",
            Mode::Proctor => "proctor",
            Mode::Bpftrace => "bpftrace",
            Mode::Auditd => "auditd",
        }
    }
}

/// One workload: what runs, how much, and whether it runs inside the monitored tree.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    /// Name in the report.
    pub name: String,
    /// Subcommand of bench/workloads.py.
    pub kind: &'static str,
    pub count: u64,
    /// Opens per second for the paced open workload.
    pub rate: Option<u64>,
    /// Runs outside the monitored tree while an agent (`sleep`) is monitored.
    pub untracked: bool,
    /// proctor runs with `--capture-tls` (only bare and proctor are run for such a workload).
    pub capture_tls: bool,
}

/// Everything a run needs that outlives it.
pub struct Ctx {
    pub root: PathBuf,
    pub proctor: PathBuf,
    pub tmp: PathBuf,
    pub http_port: u16,
    pub https_port: u16,
    pub dns_port: u16,
    pub auditd: Option<Auditd>,
    pub interrupted: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Keep the last proctor output directory of each workload (for replay).
    pub keep: std::collections::BTreeMap<String, PathBuf>,
    pub seq: u64,
}

/// The figures of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    pub workload: String,
    pub mode: String,
    pub rep: u32,
    /// The workload's own timing of its work (excludes monitor start and stop).
    pub seconds: f64,
    pub ops: u64,
    /// Outer wall time of the whole run, monitor start and stop included.
    pub wall_seconds: f64,
    /// CPU the monitor used during the timed work (ns precision), as a fraction of one core.
    pub monitor_cpu_frac: Option<f64>,
    /// CPU the monitor process used in total (load, work, drain), seconds (10 ms resolution).
    pub monitor_cpu_total_s: Option<f64>,
    /// Peak RSS of the monitor process (VmHWM; for auditd, the daemon's peak since it started).
    pub monitor_rss_kb: Option<u64>,
    pub events: Option<u64>,
    pub lost: Option<u64>,
    pub alerts: Option<u64>,
    pub records: Option<serde_json::Value>,
    /// BPF program run time during the run: (program name, run count, total ns).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bpf: Vec<(String, u64, u64)>,
}

/// A running auditd (foreground child, own config and log file) and what undoes its rules.
pub struct Auditd {
    pub child: std::process::Child,
    pub log: PathBuf,
    pub rules: PathBuf,
    pub kauditd: Option<u32>,
}

impl Auditd {
    /// Start auditd in the foreground with its log in `dir`, rotation off (the harness counts
    /// and truncates the log after each run).
    pub fn start(dir: &Path, rules: &Path) -> Result<Auditd> {
        sys::output(&["auditctl", "-s"])
            .context("the kernel audit subsystem is not available here (auditctl -s failed)")?;
        let conf_dir = dir.join("auditd-conf");
        std::fs::create_dir_all(&conf_dir)?;
        let log = dir.join("audit.log");
        let base = std::fs::read_to_string("/etc/audit/auditd.conf")
            .context("reading /etc/audit/auditd.conf (is auditd installed?)")?;
        let mut conf = String::new();
        for line in base.lines() {
            let key = line.split('=').next().unwrap_or("").trim();
            match key {
                "log_file" => conf.push_str(&format!("log_file = {}\n", log.display())),
                "max_log_file_action" => conf.push_str("max_log_file_action = IGNORE\n"),
                // Tiny thresholds: a busy disk must not make auditd suspend mid-run.
                "space_left" => conf.push_str("space_left = 2\n"),
                "admin_space_left" => conf.push_str("admin_space_left = 1\n"),
                _ => {
                    conf.push_str(line);
                    conf.push('\n');
                }
            }
        }
        let conf_file = conf_dir.join("auditd.conf");
        std::fs::write(&conf_file, conf)?;
        // auditd refuses a config file others can write.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&conf_file, std::fs::Permissions::from_mode(0o640))?;
        let child = Command::new("auditd")
            .args(["-n", "-c"])
            .arg(&conf_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting auditd")?;
        let start = Instant::now();
        loop {
            let s = sys::output(&["auditctl", "-s"])?;
            if s.lines().any(|l| l == format!("pid {}", child.id())) {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) || sys::exited(child.id()) {
                bail!("auditd did not register with the kernel within 10 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Rules only while an auditd run is on; audit off between them.
        let _ = sys::output(&["auditctl", "-D"]);
        let _ = sys::output(&["auditctl", "-e", "0"]);
        Ok(Auditd {
            child,
            log,
            rules: rules.to_path_buf(),
            kauditd: sys::pid_of("kauditd"),
        })
    }

    fn enable(&self) -> Result<()> {
        std::fs::write(&self.log, b"").ok();
        sys::output(&["auditctl", "-R", &self.rules.to_string_lossy()])?;
        sys::output(&["auditctl", "-e", "1"])?;
        Ok(())
    }

    fn status(&self, key: &str) -> Option<u64> {
        let s = sys::output(&["auditctl", "-s"]).ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
    }

    /// Remove the rules, wait for the backlog to reach the daemon, and count what it logged.
    fn disable_and_count(&self) -> (u64, u64) {
        let _ = sys::output(&["auditctl", "-D"]);
        let _ = sys::output(&["auditctl", "-e", "0"]);
        let start = Instant::now();
        while self.status("backlog").unwrap_or(0) > 0 && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // auditd flushes asynchronously: wait until the log stops growing.
        let mut last = u64::MAX;
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let n = std::fs::metadata(&self.log).map_or(0, |m| m.len());
            if n == last || start.elapsed() > Duration::from_secs(60) {
                break;
            }
            last = n;
        }
        let text = std::fs::read(&self.log).unwrap_or_default();
        let events = text
            .split(|&b| b == b'\n')
            .filter(|l| {
                l.starts_with(b"type=SYSCALL")
                    && l.windows(19).any(|w| w == b"key=\"proctor_bench\"")
            })
            .count() as u64;
        let _ = std::fs::write(&self.log, b"");
        (events, self.status("lost").unwrap_or(0))
    }

    fn monitor_pids(&self) -> Vec<u32> {
        let mut v = vec![self.child.id()];
        v.extend(self.kauditd);
        v
    }
}

impl Drop for Auditd {
    /// Never leave rules, audit on, or the daemon behind, whatever happened.
    fn drop(&mut self) {
        let _ = sys::output(&["auditctl", "-D"]);
        let _ = sys::output(&["auditctl", "-e", "0"]);
        sys::kill(self.child.id(), libc::SIGTERM);
        let start = Instant::now();
        while !sys::exited(self.child.id()) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const POLL: Duration = Duration::from_millis(50);
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Untimed seconds every workload waits before its work (see workloads.py --settle).
const SETTLE_S: u32 = 2;

struct Stats {
    /// Programs whose stats we sample, by id, with their last (run_time_ns, run_cnt).
    bpf: std::collections::BTreeMap<u32, (u64, u64)>,
    /// Their names, looked up while they are still loaded.
    names: std::collections::BTreeMap<u32, String>,
    rss: Option<u64>,
}

impl Stats {
    fn sample(&mut self, monitor: Option<u32>, mode: Mode, bpf: bool) {
        let Some(pid) = monitor else { return };
        if let Some(kb) = sys::status_kb(pid, "VmHWM") {
            self.rss = Some(self.rss.unwrap_or(0).max(kb));
        }
        if bpf && matches!(mode, Mode::Proctor | Mode::Bpftrace) {
            for (id, t, c) in sys::bpf_prog_stats(pid) {
                if self.bpf.insert(id, (t, c)).is_none() {
                    self.names.extend(prog_names(std::iter::once(id)));
                }
            }
        }
    }
}

/// Run `w` once in `mode` and measure it. With `bpf`, also sample per-program BPF run time
/// (kernel.bpf_stats_enabled must be on).
pub fn run(ctx: &mut Ctx, w: &Workload, mode: Mode, rep: u32, bpf: bool) -> Result<Sample> {
    ctx.seq += 1;
    let run_dir = ctx
        .tmp
        .join(format!("run-{:05}-{}-{}", ctx.seq, w.name, mode.name()));
    std::fs::create_dir_all(&run_dir)?;
    let result = run_dir.join("result.json");
    let stderr_path = run_dir.join("stderr.txt");
    let out_dir = run_dir.join("proctor-out");
    let bt_out = run_dir.join("bpftrace.out");
    let script = ctx.root.join("bench/workloads.py");

    // The workload's command line; its --monitor-pid is filled in below.
    let wl = |monitor: &str| -> Vec<String> {
        let mut v = vec![
            "/usr/bin/python3".to_string(),
            script.display().to_string(),
            w.kind.to_string(),
            "--count".into(),
            w.count.to_string(),
            "--result".into(),
            result.display().to_string(),
            "--http-port".into(),
            ctx.http_port.to_string(),
            "--dns-port".into(),
            ctx.dns_port.to_string(),
            "--https-port".into(),
            ctx.https_port.to_string(),
            "--monitor-pid".into(),
            monitor.to_string(),
            // Every mode waits the same untimed moment first: the monitor's start-up work
            // (proctor's niced walk for sensitive files) is not the steady state measured here.
            "--settle".into(),
            SETTLE_S.to_string(),
        ];
        if let Some(r) = w.rate {
            v.extend(["--rate".into(), r.to_string()]);
        }
        v
    };
    let audit_pids = ctx.auditd.as_ref().map(|a| a.monitor_pids());
    // What the monitor watches: the workload itself, or a stand-in agent while the storm runs
    // outside the tree. (The BPF attribution pass samples every 50 ms, so it misses at most the
    // last 50 ms of a tracked workload's program runs.)
    let agent: Vec<String> = if w.untracked {
        vec!["/bin/sleep".into(), "3600".into()]
    } else {
        let pids = match mode {
            Mode::Bare => String::new(),
            Mode::Auditd => pid_list(&audit_pids),
            Mode::Proctor | Mode::Bpftrace => "parent".into(),
        };
        wl(&pids)
    };
    let auditd_cpu0: u64 = audit_pids.iter().flatten().map(|&p| sys::cpu_ns(p)).sum();
    if mode == Mode::Auditd {
        match &ctx.auditd {
            Some(a) => a.enable()?,
            None => bail!("auditd is not available"),
        }
    }

    let stderr = std::fs::File::create(&stderr_path)?;
    let mut cmd = match mode {
        Mode::Bare | Mode::Auditd => {
            let mut c = Command::new(&agent[0]);
            c.args(&agent[1..]);
            c
        }
        Mode::Proctor => {
            let mut c = Command::new(&ctx.proctor);
            c.arg("run").arg("--out").arg(&out_dir);
            if w.capture_tls {
                c.arg("--capture-tls");
            }
            c.arg("--").args(&agent);
            c
        }
        Mode::Bpftrace => {
            let mut c = Command::new("bpftrace");
            c.env("BPFTRACE_MAP_KEYS_MAX", "65536")
                .env("BPFTRACE_STRLEN", "128")
                .arg("-o")
                .arg(&bt_out)
                .arg("-c")
                .arg(agent.join(" "))
                .arg(ctx.root.join("bench/proctor-equiv.bt"));
            c
        }
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr.try_clone()?);
    sys::set_loginuid(&mut cmd);
    let interrupted = ctx.interrupted.clone();
    let stop = move || interrupted.load(std::sync::atomic::Ordering::Relaxed);
    let monitor_of = |child: u32| -> Option<u32> {
        match mode {
            Mode::Bare => None,
            Mode::Proctor | Mode::Bpftrace => Some(child),
            Mode::Auditd => ctx.auditd.as_ref().map(|a| a.child.id()),
        }
    };
    let mut stats = Stats {
        bpf: Default::default(),
        names: Default::default(),
        rss: None,
    };
    let t0 = Instant::now();
    // Untracked bare: nothing is monitored, the storm runs alone.
    let mut child = if w.untracked && mode == Mode::Bare {
        None
    } else {
        Some(
            cmd.spawn()
                .with_context(|| format!("starting {:?}", mode))?,
        )
    };
    let monitor = child.as_ref().and_then(|c| monitor_of(c.id()));
    if w.untracked {
        if let Some(c) = &child {
            // Ready when the stand-in agent runs as `sleep` (the monitor is attached by then).
            let start = Instant::now();
            let sleeper = loop {
                let cand = if matches!(mode, Mode::Proctor | Mode::Bpftrace) {
                    sys::children(c.id())
                        .into_iter()
                        .find(|&p| sys::comm(p).as_deref() == Some("sleep"))
                } else {
                    Some(c.id()).filter(|&p| sys::comm(p).as_deref() == Some("sleep"))
                };
                if let Some(p) = cand {
                    break p;
                }
                if sys::exited(c.id()) || start.elapsed() > Duration::from_secs(60) || stop() {
                    let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    bail!("{} did not start its agent: {}", mode.name(), err.trim());
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let storm_monitor_pids = match mode {
                Mode::Auditd => pid_list(&audit_pids),
                _ => c.id().to_string(),
            };
            let mut storm = Command::new(&wl("")[0]);
            let argv = wl(&storm_monitor_pids);
            storm
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr.try_clone()?);
            let mut s = storm.spawn().context("starting the untracked storm")?;
            sys::wait_exit(&mut s, RUN_TIMEOUT, POLL, &stop, &mut || {
                stats.sample(monitor, mode, bpf)
            })?;
            let st = sys::reap(&mut s)?;
            stats.sample(monitor, mode, bpf);
            // End the stand-in agent; proctor and bpftrace then exit on their own.
            sys::kill(sleeper, libc::SIGTERM);
            if !st.success() {
                bail!("untracked storm failed: {st}");
            }
        } else {
            let mut storm = Command::new(&wl("")[0]);
            storm
                .args(&wl("")[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr.try_clone()?);
            let mut s = storm.spawn().context("starting the storm")?;
            sys::wait_exit(&mut s, RUN_TIMEOUT, POLL, &stop, &mut || {})?;
            let st = sys::reap(&mut s)?;
            if !st.success() {
                bail!("storm failed: {st}");
            }
        }
    }
    let mut total_cpu = None;
    if let Some(c) = child.as_mut() {
        sys::wait_exit(c, RUN_TIMEOUT, POLL, &stop, &mut || {
            stats.sample(monitor, mode, bpf)
        })?;
        if matches!(mode, Mode::Proctor | Mode::Bpftrace) {
            total_cpu = sys::own_cpu_seconds(c.id());
        }
        let st = sys::reap(c)?;
        // The untracked stand-in dies of our SIGTERM; anything else must succeed.
        let ok = st.success() || (w.untracked && st.code().is_some_and(|c| c == 143));
        if !(ok || w.untracked && mode == Mode::Auditd) {
            let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            let tail: String = err.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            bail!("{} run of {} failed ({st}): {tail}", mode.name(), w.name);
        }
    }
    let wall = t0.elapsed().as_secs_f64();

    let res: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&result).with_context(|| format!("no result from {}", w.name))?,
    )
    .context("parsing the workload result")?;
    let seconds = res["seconds"].as_f64().unwrap_or(0.0);
    let mut s = Sample {
        workload: w.name.clone(),
        mode: mode.name().into(),
        rep,
        seconds,
        ops: res["ops"].as_u64().unwrap_or(0),
        wall_seconds: wall,
        monitor_cpu_total_s: total_cpu,
        monitor_rss_kb: stats.rss,
        ..Default::default()
    };
    let mon_ns = res["monitor_cpu_ns"].as_u64().unwrap_or(0);
    match mode {
        Mode::Bare => {}
        Mode::Proctor => {
            s.monitor_cpu_frac = Some(mon_ns as f64 / 1e9 / seconds);
            let (records, lost) = sensor_stop(&out_dir.join("audit.jsonl"))?;
            s.events = Some(
                records
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter(|(k, _)| *k != "lost")
                            .filter_map(|(_, v)| v.as_u64())
                            .sum()
                    })
                    .unwrap_or(0),
            );
            s.lost = Some(lost);
            s.records = Some(records);
            s.alerts = Some(
                std::fs::read_dir(out_dir.join("alerts"))
                    .map(|d| d.count() as u64)
                    .unwrap_or(0),
            );
        }
        Mode::Bpftrace => {
            s.monitor_cpu_frac = Some(mon_ns as f64 / 1e9 / seconds);
            let text = std::fs::read_to_string(&bt_out).unwrap_or_default();
            let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            const KINDS: [&str; 10] = [
                "fork ",
                "exec ",
                "argv ",
                "exit ",
                "open ",
                "connect ",
                "send ",
                "sendmsg ",
                "sendmmsg ",
                "ptrace ",
            ];
            s.events = Some(
                text.lines()
                    .filter(|l| KINDS.iter().any(|k| l.starts_with(k)))
                    .count() as u64,
            );
            // bpftrace reports perf-buffer losses as "Lost N events".
            s.lost = Some(
                text.lines()
                    .chain(err.lines())
                    .filter_map(|l| {
                        let rest = l.trim().strip_prefix("Lost ")?;
                        rest.split_whitespace().next()?.parse::<u64>().ok()
                    })
                    .sum(),
            );
        }
        Mode::Auditd => {
            let a = ctx.auditd.as_ref().expect("checked above");
            let lost0 = a.status("lost").unwrap_or(0);
            let (events, lost1) = a.disable_and_count();
            s.events = Some(events);
            s.lost = Some(lost1.saturating_sub(lost0));
            let cpu1: u64 = audit_pids.iter().flatten().map(|&p| sys::cpu_ns(p)).sum();
            // auditd + kauditd over the whole run including the backlog drain; the window
            // figure from the workload covers only the timed work.
            s.monitor_cpu_total_s = Some(cpu1.saturating_sub(auditd_cpu0) as f64 / 1e9);
            s.monitor_cpu_frac = Some(mon_ns as f64 / 1e9 / seconds);
        }
    }
    if mode == Mode::Auditd && w.untracked {
        // The stand-in `sleep` ran as our direct child; nothing more to collect.
    }
    if bpf {
        let names = &stats.names;
        s.bpf = stats
            .bpf
            .iter()
            .map(|(id, &(t, c))| (names.get(id).cloned().unwrap_or(id.to_string()), c, t))
            .filter(|&(_, c, _)| c > 0)
            .collect();
    }
    if mode == Mode::Proctor {
        // Keep the last proctor log of each workload for the replay figure.
        if let Some(old) = ctx.keep.insert(w.name.clone(), run_dir.clone()) {
            let _ = std::fs::remove_dir_all(old);
        }
    } else {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    Ok(s)
}

/// The workload's --monitor-pid form of a pid list.
fn pid_list(pids: &Option<Vec<u32>>) -> String {
    let v: Vec<String> = pids.iter().flatten().map(|p| p.to_string()).collect();
    v.join(",")
}

/// Program names by id (bpftool; ids without a name keep their number).
fn prog_names(ids: impl Iterator<Item = u32>) -> std::collections::BTreeMap<u32, String> {
    let mut out = std::collections::BTreeMap::new();
    for id in ids {
        if let Ok(j) = sys::output(&["bpftool", "prog", "show", "id", &id.to_string(), "--json"]) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&j) {
                if let Some(n) = v["name"].as_str() {
                    out.insert(id, n.to_string());
                }
            }
        }
    }
    out
}

/// The `records` and `lost` of the last sensor_stop record (read from the end of the log).
fn sensor_stop(log: &Path) -> Result<(serde_json::Value, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).with_context(|| format!("opening {}", log.display()))?;
    let len = f.metadata()?.len();
    let from = len.saturating_sub(1 << 20);
    f.seek(SeekFrom::Start(from))?;
    let mut tail = String::new();
    f.read_to_string(&mut tail).ok();
    for line in tail.lines().rev() {
        if !line.contains("\"sensor_stop\"") {
            continue;
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if v["type"] == "sensor_stop" {
                return Ok((v["records"].clone(), v["lost"].as_u64().unwrap_or(0)));
            }
        }
    }
    bail!("no sensor_stop record in {}", log.display())
}

/// Alert latency: from the kernel's timestamp of the triggering event to the signed certificate
/// in place (written and renamed into alerts/; the `certificate` record that follows the alert
/// in the audit chain carries the time that finished; fsyncs follow on a background thread). `n` distinct
/// sensitive files are read one by one after a 1 s baseline, under `proctor run` defaults
/// otherwise. `after_exec`: each read follows an exec, so it comes while proctor polls on its
/// short timer (the kernel wakes nobody for it) rather than waking proctor. Returns the
/// latencies in ms, in the order the alerts came.
pub fn alert_latency(ctx: &mut Ctx, n: u64, after_exec: bool) -> Result<Vec<f64>> {
    ctx.seq += 1;
    let run_dir = ctx.tmp.join(format!("run-{:05}-alert-latency", ctx.seq));
    let files = run_dir.join("files");
    for i in 0..n {
        let d = files.join(i.to_string()).join(".aws");
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join("credentials"), "[default]\n")?;
    }
    let out_dir = run_dir.join("proctor-out");
    let status = Command::new(&ctx.proctor)
        .args(["run", "--baseline", "1s", "--out"])
        .arg(&out_dir)
        .arg("--")
        .arg("/usr/bin/python3")
        .arg(ctx.root.join("bench/workloads.py"))
        .args(["alerts", "--count", &n.to_string(), "--result"])
        .arg(run_dir.join("result.json"))
        .arg("--dir")
        .arg(&files)
        .args(["--wait", "1.5", "--gap", "0.02"])
        .args(after_exec.then_some("--exec-before"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(run_dir.join("stderr.txt"))?)
        .status()
        .context("starting proctor for the alert latency run")?;
    if !status.success() {
        bail!(
            "the alert latency run failed ({status}); see {}",
            run_dir.display()
        );
    }
    let text = std::fs::read_to_string(out_dir.join("audit.jsonl"))?;
    let mut trigger_ns: Option<u64> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        match v["type"].as_str() {
            Some("alert") if v["channel"] == "SENSITIVE_FILE" => {
                trigger_ns = v["trigger"][0]["ts_ns"].as_u64();
            }
            Some("certificate") => {
                if let (Some(t), Some(c)) = (trigger_ns.take(), v["ts_ns"].as_u64()) {
                    out.push(c.saturating_sub(t) as f64 / 1e6);
                }
            }
            _ => {}
        }
    }
    if (out.len() as u64) < n {
        bail!(
            "only {} of {n} sensitive reads became certificates; see {}",
            out.len(),
            run_dir.display()
        );
    }
    Ok(out)
}

/// The daemon's cost with idle agents: one measured window of `proctor daemon`.
#[derive(Clone, Debug, Serialize)]
pub struct DaemonSample {
    /// Idle agent processes the daemon monitored (each its own session).
    pub agents: u32,
    /// Sessions the daemon had opened when the window started.
    pub sessions: u32,
    /// Length of the measured window.
    pub seconds: f64,
    /// The daemon's CPU (all threads) over the window, as a fraction of one core.
    pub cpu_frac: f64,
    /// Resident memory at the end of the window, and its peak since start (VmRSS, VmHWM).
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

/// Kills the processes it holds on drop (the idle agents, then the daemon), whatever happened.
struct Reaper(Vec<std::process::Child>);
impl Drop for Reaper {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            sys::kill(c.id(), libc::SIGTERM);
        }
        for c in self.0.iter_mut().rev() {
            let start = Instant::now();
            while !sys::exited(c.id()) && start.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `proctor daemon` with a configuration whose one agent rule matches a copy of `sleep`; then
/// `agents` of those copies started (each sleeping, so each is an open session that does
/// nothing), and the daemon's CPU and memory measured over `window` once every session is open.
pub fn daemon_idle(ctx: &mut Ctx, agents: u32, window: Duration) -> Result<DaemonSample> {
    ctx.seq += 1;
    let dir = ctx.tmp.join(format!("run-{:05}-daemon-{agents}", ctx.seq));
    std::fs::create_dir_all(&dir)?;
    // A file of its own: the rule matches its (device, inode), not every `sleep` on the host.
    let exe = dir.join("idle-agent");
    std::fs::copy("/bin/sleep", &exe).context("copying /bin/sleep")?;
    let state = dir.join("state");
    let socket = dir.join("d.sock");
    let config = dir.join("proctor.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = {:?}\nsocket = {:?}\n\n[[agent]]\nname = \"idle\"\nexe = [{:?}]\n",
            state.display().to_string(),
            socket.display().to_string(),
            exe.display().to_string()
        ),
    )?;
    let stderr_path = dir.join("stderr.txt");
    let daemon = Command::new(&ctx.proctor)
        .arg("daemon")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path)?)
        .spawn()
        .context("starting proctor daemon")?;
    let pid = daemon.id();
    let mut procs = Reaper(vec![daemon]);
    let interrupted = ctx.interrupted.clone();
    let stop = || interrupted.load(std::sync::atomic::Ordering::Relaxed);
    let wait_for = |what: &str, ok: &dyn Fn() -> bool| -> Result<()> {
        let start = Instant::now();
        while !ok() {
            if sys::exited(pid) || start.elapsed() > Duration::from_secs(120) || stop() {
                let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                bail!("the daemon did not get {what}: {}", err.trim());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    };
    // It says so on stderr once the sensor is loaded and the rules are in the kernel.
    wait_for("ready", &|| {
        std::fs::read_to_string(&stderr_path).is_ok_and(|e| e.contains("matched in the kernel"))
    })?;
    for _ in 0..agents {
        let c = Command::new(&exe)
            .arg("3600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting an idle agent")?;
        procs.0.push(c);
    }
    let runs = state.join("runs/idle");
    let sessions = || std::fs::read_dir(&runs).map_or(0, |d| d.flatten().count() as u32);
    wait_for(&format!("{agents} sessions"), &|| sessions() >= agents)?;
    // Let session start-up (keys, detection set-up, first checkpoint) finish.
    std::thread::sleep(Duration::from_secs(2));
    let open = sessions();
    let (c0, t0) = (sys::cpu_ns(pid), Instant::now());
    while t0.elapsed() < window && !stop() {
        std::thread::sleep(POLL);
    }
    let (cpu, seconds) = (
        sys::cpu_ns(pid).saturating_sub(c0),
        t0.elapsed().as_secs_f64(),
    );
    let rss_kb = sys::status_kb(pid, "VmRSS").unwrap_or(0);
    let hwm_kb = sys::status_kb(pid, "VmHWM").unwrap_or(0);
    if sys::exited(pid) {
        bail!("the daemon exited during the window");
    }
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(DaemonSample {
        agents,
        sessions: open,
        seconds,
        cpu_frac: cpu as f64 / 1e9 / seconds,
        rss_kb,
        hwm_kb,
    })
}
