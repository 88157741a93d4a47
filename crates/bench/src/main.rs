//! proctor-bench: what proctor costs, measured side by side with running bare, under an
//! equivalent bpftrace script and under auditd with equivalent rules.
//!
//! One run: start the loopback peers (bench/servers.py) and auditd, then for each repetition,
//! each workload, each mode in turn (bare, proctor, bpftrace, auditd: interleaved so machine
//! drift cancels), run bench/workloads.py and measure. Then one attribution pass with
//! kernel.bpf_stats_enabled=1, the replay throughput, and the report: bench/results.md and
//! bench/results.json. Every kernel-side change (audit rules, audit enabled, auditd, bpf_stats)
//! is undone on exit, also on error or Ctrl-C.

mod modes;
mod report;
mod sys;

use anyhow::{bail, Context, Result};
use clap::Parser;
use modes::{Auditd, Ctx, Mode, Sample, Workload};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "proctor-bench", about)]
struct Args {
    /// A ~2.5 minute run: 2 repetitions, smaller workloads, no BPF attribution pass
    #[arg(long)]
    quick: bool,
    /// Repetitions of every (workload, mode) pair (default 3, or 2 with --quick)
    #[arg(long)]
    reps: Option<u32>,
    /// Scale every workload's amount of work by this factor
    #[arg(long)]
    scale: Option<f64>,
    /// Only these workloads (comma-separated names from the report; `agents` for the real
    /// agent CLIs, `daemon` for the daemon with idle agents)
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Only these modes (bare is always run: it is the reference)
    #[arg(long, value_delimiter = ',')]
    modes: Vec<String>,
    /// The proctor binary (default: target/release/proctor of this workspace)
    #[arg(long)]
    proctor: Option<PathBuf>,
    /// Where to write results.md and results.json (default: bench/ of this workspace)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not apt-get install missing bpftrace/auditd
    #[arg(long)]
    no_install: bool,
    /// Skip the per-program BPF run-time pass
    #[arg(long)]
    no_bpf_stats: bool,
    /// Skip the real agent CLIs (tests/agents/bench.py: each CLI's benign session bare, under
    /// proctor and with --capture-tls; needs `make agents`)
    #[arg(long)]
    no_agents: bool,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// The workloads and their amount of work at scale 1 (each about 1-2 s bare on 2 cores).
fn workloads(scale: f64) -> Vec<Workload> {
    let n = |x: f64| ((x * scale).round() as u64).max(1);
    let mut v = vec![
        // An agent that only waits: proctor's own cost while nothing happens (60 s at the
        // full run's scale 0.5).
        Workload {
            name: "idle".into(),
            kind: "idle",
            count: n(120.0),
            rate: None,
            untracked: false,
            capture_tls: false,
        },
        Workload {
            name: "agent".into(),
            kind: "agent",
            count: n(80.0),
            rate: None,
            untracked: false,
            capture_tls: false,
        },
        Workload {
            name: "https".into(),
            kind: "https",
            count: n(4000.0),
            rate: None,
            untracked: false,
            capture_tls: false,
        },
        Workload {
            name: "https --capture-tls".into(),
            kind: "https",
            count: n(4000.0),
            rate: None,
            untracked: false,
            capture_tls: true,
        },
        Workload {
            name: "exec".into(),
            kind: "exec",
            count: n(1000.0),
            rate: None,
            untracked: false,
            capture_tls: false,
        },
        Workload {
            name: "open".into(),
            kind: "open",
            count: n(1_000_000.0),
            rate: None,
            untracked: false,
            capture_tls: false,
        },
        Workload {
            name: "open@100k/s".into(),
            kind: "open",
            count: n(200_000.0),
            rate: Some(100_000),
            untracked: false,
            capture_tls: false,
        },
        Workload {
            name: "connect".into(),
            kind: "connect",
            count: n(20_000.0),
            rate: None,
            untracked: false,
            capture_tls: false,
        },
        Workload {
            name: "sched".into(),
            kind: "sched",
            count: n(1_000_000.0),
            rate: None,
            untracked: false,
            capture_tls: false,
        },
        Workload {
            name: "dns".into(),
            kind: "dns",
            count: n(40_000.0),
            rate: None,
            untracked: false,
            capture_tls: false,
        },
    ];
    let storms: Vec<Workload> = v
        .iter()
        .filter(|w| !matches!(w.kind, "agent" | "https" | "idle") && w.rate.is_none())
        .map(|w| Workload {
            name: format!("{} (untracked)", w.name),
            untracked: true,
            ..w.clone()
        })
        .collect();
    v.extend(storms);
    v
}

fn main() -> ExitCode {
    let args = Args::parse();
    match real_main(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proctor-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Install a Debian package when its command is missing.
fn ensure_pkg(cmd: &str, pkg: &str, install: bool) -> Result<()> {
    let have = |c: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {c} >/dev/null 2>&1")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if have(cmd) {
        return Ok(());
    }
    if !install {
        bail!("{cmd} is missing (apt-get install -y {pkg})");
    }
    eprintln!("proctor-bench: installing {pkg}");
    let apt = |a: &[&str]| {
        Command::new("apt-get")
            .args(a)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !apt(&["install", "-y", "--no-install-recommends", pkg]) {
        apt(&["update"]);
        if !apt(&["install", "-y", "--no-install-recommends", pkg]) {
            bail!("apt-get install -y {pkg} failed");
        }
    }
    if !have(cmd) {
        bail!("{pkg} is installed but {cmd} is still missing");
    }
    Ok(())
}

/// Restores kernel.bpf_stats_enabled on drop.
struct BpfStats(String);
impl BpfStats {
    fn enable() -> Option<BpfStats> {
        let path = "/proc/sys/kernel/bpf_stats_enabled";
        let old = std::fs::read_to_string(path).ok()?.trim().to_string();
        std::fs::write(path, "1").ok()?;
        Some(BpfStats(old))
    }
}
impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", &self.0);
    }
}

/// The loopback peers; killed on drop.
struct Servers {
    child: std::process::Child,
    http: u16,
    https: u16,
    dns: u16,
}
impl Servers {
    fn start(root: &Path) -> Result<Servers> {
        let mut child = Command::new("/usr/bin/python3")
            .arg(root.join("bench/servers.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting bench/servers.py")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .context("reading the servers' ports")?;
        let v: serde_json::Value =
            serde_json::from_str(&line).context("bench/servers.py printed no ports")?;
        Ok(Servers {
            http: v["http"].as_u64().unwrap_or(0) as u16,
            https: v["https"].as_u64().unwrap_or(0) as u16,
            dns: v["dns"].as_u64().unwrap_or(0) as u16,
            child,
        })
    }
}
impl Drop for Servers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes the scratch directory on drop.
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn real_main(args: Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("run as root: proctor, bpftrace and auditd need it");
    }
    let root = workspace_root();
    let proctor = args
        .proctor
        .clone()
        .unwrap_or_else(|| root.join("target/release/proctor"));
    if !proctor.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --locked -p proctor, or make bench)",
            proctor.display()
        );
    }
    let reps = args.reps.unwrap_or(if args.quick { 2 } else { 3 });
    let scale = args.scale.unwrap_or(if args.quick { 0.15 } else { 0.5 });
    let out = args.out.clone().unwrap_or_else(|| root.join("bench"));
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())?;
    }

    let mut notes: Vec<String> = Vec::new();
    let mut modes: Vec<Mode> = Mode::ALL
        .into_iter()
        .filter(|m| {
            *m == Mode::Bare || args.modes.is_empty() || args.modes.iter().any(|n| n == m.name())
        })
        .collect();
    let tmp = std::env::temp_dir().join(format!("proctor-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let _tmp_guard = TempDir(tmp.clone());

    if modes.contains(&Mode::Bpftrace) {
        let ok = ensure_pkg("bpftrace", "bpftrace", !args.no_install).and_then(|()| {
            // Tracepoint probes must load and fire here.
            sys::output(&[
                "bpftrace",
                "-e",
                "tracepoint:sched:sched_process_exec { @n = count(); }",
                "-c",
                "/bin/true",
            ])
            .map(|_| ())
        });
        if let Err(e) = ok {
            notes.push(format!("bpftrace mode skipped: {e:#}"));
            modes.retain(|m| *m != Mode::Bpftrace);
        }
    }
    let mut auditd = None;
    if modes.contains(&Mode::Auditd) {
        let started = ensure_pkg("auditd", "auditd", !args.no_install)
            .and_then(|()| Auditd::start(&tmp, &root.join("bench/proctor-equiv.rules")));
        match started {
            Ok(a) => auditd = Some(a),
            Err(e) => {
                notes.push(format!("auditd mode skipped: {e:#}"));
                modes.retain(|m| *m != Mode::Auditd);
            }
        }
    }
    if modes.contains(&Mode::Auditd) {
        notes.push(
            "auditd mode enables kernel audit; from then on (until reboot) the kernel gives every new task an \
             audit context, so every mode's later runs also pass through the syscall-audit entry/exit path \
             (on this machine `perf bench syscall basic` went from about 95 to 114 ns per syscall). All \
             modes carry it alike; bare is not pristine."
                .into(),
        );
    }
    notes.push(format!(
        "load average before the runs: {} (other work on the host adds noise; the interleaving spreads it over the modes)",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    ));
    let servers = Servers::start(&root)?;
    let machine = report::machine(&proctor);
    let mut ctx = Ctx {
        root: root.clone(),
        proctor: proctor.clone(),
        tmp: tmp.clone(),
        http_port: servers.http,
        https_port: servers.https,
        dns_port: servers.dns,
        auditd,
        interrupted: interrupted.clone(),
        keep: Default::default(),
        seq: 0,
    };
    let wls: Vec<Workload> = workloads(scale)
        .into_iter()
        .filter(|w| args.only.is_empty() || args.only.contains(&w.name))
        .collect();
    let only = |name: &str| args.only.is_empty() || args.only.iter().any(|w| w == name);
    if wls.is_empty() && !args.only.iter().any(|w| w == "agents" || w == "daemon") {
        bail!("no workload matches --only (`agents` names the real agent CLIs, `daemon` the daemon with idle agents)");
    }
    eprintln!(
        "proctor-bench: {} workloads x {} modes x {} reps (scale {scale}); modes: {}",
        wls.len(),
        modes.len(),
        reps,
        modes
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Warm-up: one bare run of each workload (page cache, Python bytecode), not recorded; an
    // idle agent has nothing to warm.
    for w in wls.iter().filter(|w| w.kind != "idle") {
        modes::run(&mut ctx, w, Mode::Bare, 0, false)
            .with_context(|| format!("warm-up run of {}", w.name))?;
    }
    let started = std::time::Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for rep in 1..=reps {
        for w in &wls {
            for &m in &modes {
                if interrupted.load(Ordering::Relaxed) {
                    bail!("interrupted");
                }
                // What --capture-tls adds is measured against bare and plain proctor (the
                // https workload); bpftrace and auditd have no plaintext capture to compare.
                // The idle agent measures proctor's own cost only.
                if (w.capture_tls || w.kind == "idle") && !matches!(m, Mode::Bare | Mode::Proctor) {
                    continue;
                }
                match modes::run(&mut ctx, w, m, rep, false) {
                    Ok(s) => {
                        eprintln!(
                            "  rep {rep} {:<22} {:<8} {:7.3} s  events {:>9}  lost {:>7}",
                            w.name,
                            m.name(),
                            s.seconds,
                            s.events.map_or("-".into(), |e| e.to_string()),
                            s.lost.map_or("-".into(), |e| e.to_string()),
                        );
                        samples.push(s);
                    }
                    Err(e) => {
                        eprintln!("  rep {rep} {} {}: FAILED: {e:#}", w.name, m.name());
                        failures.push(format!("{} / {} rep {rep}: {e:#}", w.name, m.name()));
                    }
                }
            }
        }
    }
    let timed = started.elapsed().as_secs_f64();

    // Attribution: per-program BPF run time, one run per workload under proctor and bpftrace.
    let mut bpf_samples: Vec<Sample> = Vec::new();
    if !args.no_bpf_stats && !args.quick && !interrupted.load(Ordering::Relaxed) {
        // Program names come from bpftool; without it the table shows bare ids.
        if let Err(e) = ensure_pkg("bpftool", "bpftool", !args.no_install) {
            notes.push(format!("BPF program names unavailable: {e:#}"));
        }
        match BpfStats::enable() {
            Some(_guard) => {
                for w in &wls {
                    // bpftrace has no plaintext capture or idle row to attribute (as above).
                    for &m in modes.iter().filter(|m| {
                        matches!(m, Mode::Proctor)
                            || (matches!(m, Mode::Bpftrace) && !w.capture_tls && w.kind != "idle")
                    }) {
                        match modes::run(&mut ctx, w, m, 0, true) {
                            Ok(s) => bpf_samples.push(s),
                            Err(e) => {
                                failures.push(format!("bpf stats {} / {}: {e:#}", w.name, m.name()))
                            }
                        }
                    }
                }
            }
            None => notes.push(
                "per-program BPF run time skipped: cannot set kernel.bpf_stats_enabled".into(),
            ),
        }
    }
    drop(ctx.auditd.take());
    drop(servers);

    // The daemon with 0, 1, 10 and 50 idle agents: its CPU and memory as sessions add up.
    let mut daemon = Vec::new();
    if only("daemon") && !interrupted.load(Ordering::Relaxed) {
        let window = if args.quick { 10 } else { 30 };
        for agents in [0, 1, 10, 50] {
            match modes::daemon_idle(&mut ctx, agents, Duration::from_secs(window)) {
                Ok(d) => {
                    eprintln!(
                        "  daemon, {agents:>2} idle agents: {:.3}% of a core, RSS {} kB (peak {} kB)",
                        d.cpu_frac * 100.0,
                        d.rss_kb,
                        d.hwm_kb
                    );
                    daemon.push(d);
                }
                Err(e) => failures.push(format!("daemon with {agents} idle agents: {e:#}")),
            }
        }
    }

    let alert_n = if args.quick { 50 } else { 200 };
    let mut latency = |after_exec: bool| match modes::alert_latency(&mut ctx, alert_n, after_exec) {
        Ok(v) => report::latency_summary(&v),
        Err(e) => {
            failures.push(format!("alert latency (after_exec {after_exec}): {e:#}"));
            serde_json::json!({"failed": format!("{e:#}")})
        }
    };
    let alert_latency = latency(false);
    let alert_latency_polled = latency(true);

    let replay = report::replay(&proctor, &ctx.keep);
    let startup = report::startup(&proctor);
    if let Some(e) = startup.get("failed") {
        failures.push(format!("start-up: {e}"));
    }
    let r = report::Report {
        machine,
        reps,
        scale,
        modes: modes.iter().map(|m| m.name().to_string()).collect(),
        workloads: wls,
        samples,
        bpf: bpf_samples,
        replay,
        startup,
        alert_latency,
        alert_latency_polled,
        daemon,
        notes,
        failures,
        timed_seconds: timed,
    };
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&r.to_json())?,
    )?;
    let mut md = r.markdown();
    if !args.no_agents && (args.only.is_empty() || args.only.iter().any(|w| w == "agents")) {
        md.push_str(&agents_section(&root, &proctor, reps, &out));
    }
    std::fs::write(out.join("results.md"), &md)?;
    println!("{md}");
    eprintln!(
        "proctor-bench: wrote {} and {}",
        out.join("results.md").display(),
        out.join("results.json").display()
    );
    Ok(())
}

/// The real agent CLIs' rows: tests/agents/bench.py runs each CLI's benign session in its own
/// loopback-only namespace (bare, proctor, proctor --capture-tls, interleaved) and prints its
/// table; its samples go to OUT/agents-bench.json. A failure is a line in the report, not the end
/// of the run: the other workloads' results stand.
fn agents_section(root: &Path, proctor: &Path, reps: u32, out: &Path) -> String {
    let mut s =
        String::from("\n## Real agent CLIs (Claude Code, Codex, pi, Gemini CLI, OpenClaw)\n\n");
    if !root.join("tests/agents/node_modules/.bin").is_dir() {
        s.push_str("Not run: the CLIs are not installed (`make agents`).\n");
        return s;
    }
    eprintln!("proctor-bench: real agent CLIs, {reps} reps (tests/agents/bench.py)");
    let run = Command::new("/usr/bin/python3")
        .arg(root.join("tests/agents/bench.py"))
        .arg("--proctor")
        .arg(proctor)
        .args(["--reps", &reps.to_string()])
        .arg("--out")
        .arg(out)
        .stderr(Stdio::inherit())
        .output();
    match run {
        Ok(o) if o.status.success() => s.push_str(&String::from_utf8_lossy(&o.stdout)),
        Ok(o) => s.push_str(&format!(
            "Failed: tests/agents/bench.py exited with {}.\n",
            o.status
        )),
        Err(e) => s.push_str(&format!(
            "Failed: could not start tests/agents/bench.py: {e}.\n"
        )),
    }
    s
}
