//! Summaries and the two outputs: results.json (every sample) and results.md (the tables).

use crate::modes::{DaemonSample, Sample, Workload};
use crate::sys;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Report {
    pub machine: Value,
    pub reps: u32,
    pub scale: f64,
    pub modes: Vec<String>,
    pub workloads: Vec<Workload>,
    pub samples: Vec<Sample>,
    pub bpf: Vec<Sample>,
    pub replay: Value,
    /// `proctor run -- true`: what every session pays before its agent starts and after it
    /// ends (mostly the kernel verifying the BPF programs).
    pub startup: Value,
    pub alert_latency: Value,
    /// The same with each read just after an exec: proctor polls on its short timer then.
    pub alert_latency_polled: Value,
    pub daemon: Vec<DaemonSample>,
    pub notes: Vec<String>,
    pub failures: Vec<String>,
    pub timed_seconds: f64,
}

/// CPU model, cores, kernel, distribution, tool versions.
pub fn machine(proctor: &Path) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let distro = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .unwrap_or("")
        .trim_matches('"')
        .to_string();
    let mem_kb = sys::status_kb(1, "VmRSS").map(|_| ()).and(
        std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().trim_end_matches("kB").trim().to_string())
        }),
    );
    let ver = |argv: &[&str]| {
        sys::output(argv)
            .map(|s| s.lines().next().unwrap_or("").trim().to_string())
            .unwrap_or_else(|_| "unavailable".into())
    };
    let p = proctor.to_string_lossy();
    json!({
        "cpu": model,
        "cores": cores,
        "kernel": kernel,
        "os": distro,
        "mem_total_kb": mem_kb,
        "proctor": ver(&[&p, "--version"]),
        "bpftrace": ver(&["bpftrace", "--version"]),
        "auditd": ver(&["dpkg-query", "-W", "-f", "${Version}", "auditd"]),
        "python": ver(&["/usr/bin/python3", "--version"]),
        "git_commit": ver(&["git", "-C", &crate::workspace_root().to_string_lossy(), "rev-parse", "--short", "HEAD"]),
    })
}

/// The machine line of the report. The proctor and bpftrace versions are the first line of
/// their `--version`, which already names the tool ("proctor 0.1.0"), so they go in as they are.
fn machine_line(m: &Value) -> String {
    let txt = |k: &str| m[k].as_str().unwrap_or("?");
    format!(
        "Machine: {} ({} cores), kernel {}, {}; {} kB RAM. {} (commit {}), {}, auditd {}, {}.",
        txt("cpu"),
        m["cores"],
        txt("kernel"),
        txt("os"),
        txt("mem_total_kb"),
        txt("proctor"),
        txt("git_commit"),
        txt("bpftrace"),
        txt("auditd"),
        txt("python"),
    )
}

/// Run a command to completion and return (wall s, user+sys s of it and its children).
fn timed(cmd: &mut Command) -> Option<(f64, f64, bool)> {
    let t0 = std::time::Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut status = 0;
    // SAFETY: wait4 writes only into the status and the zeroed rusage we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    if rc < 0 {
        return None;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some((
        t0.elapsed().as_secs_f64(),
        tv(ru.ru_utime) + tv(ru.ru_stime),
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    ))
}

/// Replay (decode + detection) and verify (hash chain + signatures) throughput over the largest
/// audit log a proctor run left (the targets are judged on it), and replay over the agent
/// workload's log too when that is another one: the largest is a storm of one kind of record,
/// the agent's a mix of execs, opens and renames that replay reads more slowly.
pub fn replay(proctor: &Path, keep: &BTreeMap<String, PathBuf>) -> Value {
    let logs: Vec<(String, PathBuf, u64)> = keep
        .iter()
        .map(|(w, d)| {
            let p = d.join("proctor-out/audit.jsonl");
            let n = std::fs::read(&p)
                .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
                .unwrap_or(0);
            (w.clone(), p, n)
        })
        .collect();
    let agent = logs.iter().find(|l| l.0 == "agent").cloned();
    let Some((w, log, lines)) = logs.into_iter().max_by_key(|l| l.2) else {
        return json!({"skipped": "no proctor audit log was kept"});
    };
    let mut out = json!({ "log_of": w, "lines": lines });
    for cmd in ["replay", "verify"] {
        if let Some(v) = throughput(proctor, cmd, &log, lines) {
            out[cmd] = v;
        }
    }
    if let Some((_, alog, alines)) = agent.filter(|a| a.1 != log) {
        if let Some(v) = throughput(proctor, "replay", &alog, alines) {
            out["agent_log"] = json!({ "lines": alines, "replay": v });
        }
    }
    out
}

/// `proctor CMD LOG`'s throughput, the median of RUNS runs. The command's fixed start-up
/// (policy, keys, maps) is measured apart, on the log's first lines, and left out of the
/// per-record figure: the bench's logs are small enough that it would otherwise weigh like a
/// fifth of the records. With 3 runs of ~25 ms the subtraction of two small medians moved by
/// ~5%.
fn throughput(proctor: &Path, cmd: &str, log: &Path, lines: u64) -> Option<Value> {
    const RUNS: usize = 9;
    let prefix = log.with_file_name("audit-prefix.jsonl");
    let head: Vec<u8> = std::fs::read(log)
        .map(|b| {
            let end = b
                .iter()
                .enumerate()
                .filter(|(_, &c)| c == b'\n')
                .nth(19)
                .map_or(b.len(), |(i, _)| i + 1);
            b[..end].to_vec()
        })
        .unwrap_or_default();
    let have_prefix = std::fs::write(&prefix, head).is_ok();
    let median = |path: &Path| -> Option<(f64, f64, bool)> {
        let mut runs: Vec<(f64, f64, bool)> = (0..RUNS)
            .filter_map(|_| timed(Command::new(proctor).arg(cmd).arg(path)))
            .collect();
        runs.sort_by(|a, b| a.1.total_cmp(&b.1));
        runs.get(runs.len() / 2).copied()
    };
    let (wall, cpu, ok) = median(log)?;
    let start_cpu = if have_prefix {
        median(&prefix).map_or(0.0, |r| r.1)
    } else {
        0.0
    };
    let _ = std::fs::remove_file(&prefix);
    Some(json!({
        "ok": ok, "runs": RUNS, "wall_s": wall, "cpu_s": cpu, "startup_cpu_s": start_cpu,
        "records_per_s": lines as f64 / wall,
        "records_per_cpu_s": lines as f64 / cpu.max(1e-9),
        "records_per_cpu_s_steady": lines as f64 / (cpu - start_cpu).max(1e-9),
    }))
}

/// `proctor run -- true`, RUNS times: the median wall time and CPU (proctor's and its agent's,
/// from wait4) of a whole session that does nothing, start to exit.
pub fn startup(proctor: &Path) -> Value {
    const RUNS: usize = 9;
    let tmp = std::env::temp_dir().join(format!("proctor-bench-startup-{}", std::process::id()));
    let mut runs: Vec<(f64, f64, bool)> = (0..RUNS)
        .filter_map(|i| {
            let out = tmp.join(format!("run-{i}"));
            timed(
                Command::new(proctor)
                    .arg("run")
                    .arg("--out")
                    .arg(&out)
                    .args(["--", "true"]),
            )
        })
        .collect();
    let _ = std::fs::remove_dir_all(&tmp);
    if runs.is_empty() {
        return json!({"failed": format!("{} run -- true did not start", proctor.display())});
    }
    let ok = runs.iter().all(|r| r.2);
    let mut wall: Vec<f64> = runs.iter().map(|r| r.0).collect();
    runs.sort_by(|a, b| a.1.total_cmp(&b.1));
    json!({
        "runs": runs.len(),
        "ok": ok,
        "wall_s_median": median(&mut wall),
        "wall_s_min": wall.first(),
        "wall_s_max": wall.last(),
        "cpu_s_median": runs[runs.len() / 2].1,
    })
}

/// p50/p90/p99/max of latencies in ms (nearest-rank percentiles).
pub fn latency_summary(v: &[f64]) -> Value {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    };
    json!({
        "n": v.len(),
        "p50_ms": pct(50.0),
        "p90_ms": pct(90.0),
        "p99_ms": pct(99.0),
        "max_ms": v.last().copied().unwrap_or(0.0),
    })
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// One (workload, mode) summary.
#[derive(Default, Clone)]
pub struct Row {
    pub n: usize,
    pub seconds: Option<f64>,
    pub ratio: Option<(f64, f64, f64)>,
    pub cpu_frac: Option<f64>,
    pub cpu_total: Option<f64>,
    pub rss_kb: Option<u64>,
    pub events: Option<f64>,
    pub events_per_s: Option<f64>,
    pub lost_max: Option<u64>,
    pub lost_sum: Option<u64>,
    pub wall: Option<f64>,
}

impl Report {
    fn row(&self, workload: &str, mode: &str) -> Row {
        let of = |m: &str| -> Vec<&Sample> {
            self.samples
                .iter()
                .filter(|s| s.workload == workload && s.mode == m)
                .collect()
        };
        let mine = of(mode);
        let bare = of("bare");
        let mut ratios: Vec<f64> = mine
            .iter()
            .filter_map(|s| {
                let b = bare.iter().find(|b| b.rep == s.rep)?;
                Some(s.seconds / b.seconds)
            })
            .collect();
        let collect = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<f64> {
            mine.iter().filter_map(|s| f(s)).collect()
        };
        let ratio = median(&mut ratios).map(|m| {
            (
                ratios.iter().copied().fold(f64::INFINITY, f64::min),
                m,
                ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        });
        Row {
            n: mine.len(),
            seconds: median(&mut collect(&|s| Some(s.seconds))),
            ratio,
            cpu_frac: median(&mut collect(&|s| s.monitor_cpu_frac)),
            cpu_total: median(&mut collect(&|s| s.monitor_cpu_total_s)),
            rss_kb: mine.iter().filter_map(|s| s.monitor_rss_kb).max(),
            events: median(&mut collect(&|s| s.events.map(|e| e as f64))),
            events_per_s: median(&mut collect(&|s| s.events.map(|e| e as f64 / s.seconds))),
            lost_max: mine.iter().filter_map(|s| s.lost).max(),
            lost_sum: mine.iter().filter_map(|s| s.lost).reduce(|a, b| a + b),
            wall: median(&mut collect(&|s| Some(s.wall_seconds))),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut summary = Vec::new();
        for w in &self.workloads {
            for m in &self.modes {
                let r = self.row(&w.name, m);
                summary.push(json!({
                    "workload": w.name, "mode": m, "runs": r.n,
                    "seconds_median": r.seconds,
                    "ratio_vs_bare": r.ratio.map(|(a, b, c)| json!({"min": a, "median": b, "max": c})),
                    "monitor_cpu_frac_of_core_median": r.cpu_frac,
                    "monitor_cpu_total_s_median": r.cpu_total,
                    "monitor_peak_rss_kb": r.rss_kb,
                    "events_median": r.events,
                    "events_per_s_median": r.events_per_s,
                    "lost_max": r.lost_max,
                    "lost_total": r.lost_sum,
                    "wall_s_median": r.wall,
                }));
            }
        }
        json!({
            "machine": self.machine,
            "reps": self.reps,
            "scale": self.scale,
            "modes": self.modes,
            "workloads": self.workloads,
            "timed_seconds": self.timed_seconds,
            "summary": summary,
            "targets": self.targets(),
            "bpf_prog_runtime": self.bpf,
            "replay": self.replay,
            "startup": self.startup,
            "alert_latency": self.alert_latency,
            "alert_latency_polled": self.alert_latency_polled,
            "daemon_idle_agents": self.daemon,
            "notes": self.notes,
            "failures": self.failures,
            "samples": self.samples,
        })
    }

    /// The benchmark's targets against the measured figures (reported, never asserted).
    fn targets(&self) -> Vec<Value> {
        let mut t = Vec::new();
        let mut add = |name: &str, target: &str, measured: String, met: Option<bool>| {
            t.push(json!({"target": name, "goal": target, "measured": measured,
                          "met": met}));
        };
        let agent = self.row("agent", "proctor");
        if let Some((_, m, _)) = agent.ratio {
            add(
                "agent slowdown",
                "<= 0.5%",
                format!("{:+.2}%", (m - 1.0) * 100.0),
                Some(m <= 1.005),
            );
        }
        if let Some(c) = agent.cpu_frac {
            add(
                "agent: proctor CPU",
                "<= 0.4% of a core",
                format!("{:.2}%", c * 100.0),
                Some(c <= 0.004),
            );
        }
        if let Some(c) = self.row("idle", "proctor").cpu_frac {
            add(
                "idle agent: proctor CPU",
                "(no target: near zero)",
                format!("{:.3}% of a core", c * 100.0),
                None,
            );
        }
        for w in &self.workloads {
            if matches!(w.kind, "agent" | "idle") {
                continue;
            }
            let r = self.row(&w.name, "proctor");
            let Some((_, m, _)) = r.ratio else { continue };
            if w.capture_tls {
                // Opt-in plaintext capture has no target: reported, not judged.
                add(
                    &format!("{}: slowdown", w.name),
                    "(no target)",
                    format!("{m:.3}x"),
                    None,
                );
                continue;
            }
            let (goal, lim) = if w.untracked {
                ("<= 1.02x", 1.02)
            } else {
                ("<= 1.10x", 1.10)
            };
            add(
                &format!("{}: slowdown", w.name),
                goal,
                format!("{m:.3}x"),
                Some(m <= lim),
            );
            for other in ["bpftrace", "auditd"] {
                let o = self.row(&w.name, other);
                if let Some((_, om, _)) = o.ratio {
                    // "k times cheaper" compares overheads (ratio - 1), floored at 0.1% to stay finite.
                    let ours = (m - 1.0).max(0.001);
                    let theirs = (om - 1.0).max(0.001);
                    let k = theirs / ours;
                    let (goal, ok) = if other == "bpftrace" {
                        ("cheaper than bpftrace", m < om)
                    } else {
                        (">= 3x cheaper than auditd", k >= 3.0)
                    };
                    add(
                        &format!("{}: vs {other}", w.name),
                        goal,
                        format!(
                            "overhead {:+.1}% vs {:+.1}% ({k:.1}x)",
                            (m - 1.0) * 100.0,
                            (om - 1.0) * 100.0
                        ),
                        Some(ok),
                    );
                }
            }
        }
        let paced = self.row("open@100k/s", "proctor");
        if let (Some(l), Some(eps)) = (paced.lost_max, paced.events_per_s) {
            add(
                "zero lost at 100k events/s",
                "0 lost",
                format!("{l} lost at {:.0} events/s", eps),
                Some(l == 0),
            );
        }
        let rss = self
            .workloads
            .iter()
            .filter_map(|w| self.row(&w.name, "proctor").rss_kb)
            .max();
        if let Some(kb) = rss {
            add(
                "proctor peak RSS",
                "<= 64 MB",
                format!("{:.1} MB", kb as f64 / 1024.0),
                Some(kb <= 64 * 1024),
            );
        }
        for (what, l) in [
            (
                "alert latency (kernel event to signed certificate in place)",
                &self.alert_latency,
            ),
            (
                "alert latency, read just after an exec (proctor polling)",
                &self.alert_latency_polled,
            ),
        ] {
            if let (Some(p50), Some(p99)) = (l["p50_ms"].as_f64(), l["p99_ms"].as_f64()) {
                add(
                    what,
                    "p99 <= 5 ms",
                    format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
                    Some(p99 <= 5.0),
                );
            }
        }
        if let (Some(w), Some(c)) = (
            self.startup["wall_s_median"].as_f64(),
            self.startup["cpu_s_median"].as_f64(),
        ) {
            add(
                "start-up and exit: `proctor run -- true`",
                "-",
                format!(
                    "{w:.2} s wall, {c:.2} s CPU (medians of {}; {:.2}-{:.2} s){}",
                    self.startup["runs"],
                    self.startup["wall_s_min"].as_f64().unwrap_or(0.0),
                    self.startup["wall_s_max"].as_f64().unwrap_or(0.0),
                    if self.startup["ok"].as_bool() == Some(true) {
                        ""
                    } else {
                        " (a run exited non-zero)"
                    }
                ),
                None,
            );
        }
        for k in ["replay", "verify"] {
            let v = &self.replay[k];
            if let Some(r) = v["records_per_cpu_s"].as_f64() {
                let steady = v["records_per_cpu_s_steady"].as_f64().unwrap_or(r);
                add(
                    &format!("{k} throughput"),
                    ">= 1M records/s per core",
                    format!(
                        "{steady:.0} records/s per core, start-up apart ({r:.0} with its {:.1} ms)",
                        v["startup_cpu_s"].as_f64().unwrap_or(0.0) * 1e3
                    ),
                    Some(steady >= 1e6),
                );
            }
        }
        t
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(s, "# proctor benchmark results\n");
        let _ = writeln!(s, "{}\n", machine_line(m));
        let _ = writeln!(
            s,
            "{} repetitions, scale {}, modes interleaved per workload ({}); {:.0} s of timed runs. \
             proctor ran with its defaults (`proctor run --out DIR -- CMD`: audit mode, detection on \
             with a 30 s learning window, hash-chained audit log with signed checkpoints, a signed \
             certificate per alert). Produced by `make bench` (`cargo run --release --locked -p proctor-bench`).\n",
            self.reps, self.scale, self.modes.join(", "), self.timed_seconds
        );
        let _ = writeln!(s, "Ratio: the workload's own timing of its work under the mode over bare in the same repetition (min / median / max). \
            CPU: the monitor's CPU during the timed work as a share of one core (proctor or bpftrace process, all threads; for auditd the daemon plus kauditd); \
            BPF programs run in the context of the traced process, so their cost is in the ratio, not in this column (see the attribution table). \
            RSS: peak of the monitor process (VmHWM; auditd: the daemon's since it started). Events: records the monitor wrote (proctor: sensor_stop counts; bpftrace: output lines; auditd: SYSCALL records with the bench key). \
            Untracked: the storm runs outside the monitored tree while `sleep` is the monitored agent.\n");
        let _ = writeln!(s, "| workload | mode | time (s) | ratio vs bare min / med / max | monitor CPU (% core) | monitor CPU total (s) | peak RSS (MB) | events | events/s | lost (max) |");
        let _ = writeln!(s, "|---|---|---:|---|---:|---:|---:|---:|---:|---:|");
        let f = |v: Option<f64>, p: usize| v.map_or("-".into(), |x| format!("{x:.p$}"));
        for w in &self.workloads {
            for mode in &self.modes {
                let r = self.row(&w.name, mode);
                if r.n == 0 && w.capture_tls && !matches!(mode.as_str(), "bare" | "proctor") {
                    continue; // not run: see the main loop
                }
                if r.n == 0 {
                    let _ = writeln!(
                        s,
                        "| {} | {mode} | (no successful run) | | | | | | | |",
                        w.name
                    );
                    continue;
                }
                let ratio = r.ratio.map_or("-".into(), |(a, b, c)| {
                    if mode == "bare" {
                        "1 (reference)".into()
                    } else {
                        format!("{a:.3} / **{b:.3}** / {c:.3}")
                    }
                });
                let _ = writeln!(
                    s,
                    "| {} | {mode} | {} | {ratio} | {} | {} | {} | {} | {} | {} |",
                    w.name,
                    f(r.seconds, 3),
                    f(r.cpu_frac.map(|c| c * 100.0), 2),
                    f(r.cpu_total, 2),
                    f(r.rss_kb.map(|k| k as f64 / 1024.0), 1),
                    f(r.events, 0),
                    f(r.events_per_s, 0),
                    r.lost_max.map_or("-".into(), |l| l.to_string()),
                );
            }
        }
        let _ = writeln!(s, "\n## Targets (reported, not asserted)\n");
        let _ = writeln!(s, "| target | goal | measured | met |\n|---|---|---|---|");
        for t in self.targets() {
            let met = match t["met"].as_bool() {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {met} |",
                t["target"].as_str().unwrap_or(""),
                t["goal"].as_str().unwrap_or(""),
                t["measured"].as_str().unwrap_or("")
            );
        }
        if !self.bpf.is_empty() {
            let _ = writeln!(s, "\n## Kernel-side cost: BPF program run time (kernel.bpf_stats_enabled=1, one extra run each)\n");
            let _ = writeln!(s, "Run time is spent in the traced (or, for untracked storms, the untraced) process's context. \
                ns/run is the average per program invocation; share is total program time over the workload's time.\n");
            let _ = writeln!(s, "| workload | monitor | program | runs | ns/run | total ms | share of workload time |\n|---|---|---|---:|---:|---:|---:|");
            for b in &self.bpf {
                let mut progs = b.bpf.clone();
                progs.sort_by_key(|p| std::cmp::Reverse(p.2));
                let total: u64 = progs.iter().map(|p| p.2).sum();
                for (name, cnt, ns) in progs.iter().take(6) {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {name} | {cnt} | {:.0} | {:.1} | {:.2}% |",
                        b.workload,
                        b.mode,
                        *ns as f64 / *cnt as f64,
                        *ns as f64 / 1e6,
                        *ns as f64 / 1e9 / b.seconds * 100.0
                    );
                }
                let _ = writeln!(
                    s,
                    "| {} | {} | **all {} programs** | | | **{:.1}** | **{:.2}%** |",
                    b.workload,
                    b.mode,
                    progs.len(),
                    total as f64 / 1e6,
                    total as f64 / 1e9 / b.seconds * 100.0
                );
            }
        }
        let _ = writeln!(s, "\n## Replay and verify throughput\n");
        let r = &self.replay;
        if let Some(x) = r.get("skipped") {
            let _ = writeln!(s, "Skipped: {x}");
        } else {
            // One line per command and log: the largest log's replay and verify, and the agent
            // workload's replay when that is another log.
            let agent = r.get("agent_log");
            let runs = ["replay", "verify"]
                .into_iter()
                .filter_map(|k| {
                    Some((
                        k,
                        r["log_of"].as_str().unwrap_or("?"),
                        &r["lines"],
                        r.get(k)?,
                    ))
                })
                .chain(agent.map(|a| ("replay", "agent", &a["lines"], &a["replay"])));
            for (k, log, lines, v) in runs {
                let _ = writeln!(s, "- `proctor {k}` over the {log} log ({lines} lines, median of {} runs): {:.0} records/s wall, {:.0} records per CPU-second; {:.0} with the command's start-up ({:.1} ms of CPU, measured on the log's first 20 lines) left out{}",
                    v["runs"], v["records_per_s"].as_f64().unwrap_or(0.0),
                    v["records_per_cpu_s"].as_f64().unwrap_or(0.0),
                    v["records_per_cpu_s_steady"].as_f64().unwrap_or(0.0),
                    v["startup_cpu_s"].as_f64().unwrap_or(0.0) * 1e3,
                    if v["ok"].as_bool() == Some(true) { "" } else { " (exited non-zero)" });
            }
            let _ = writeln!(s, "- replay = decode + detection (no hash chain); verify = hash chain + checkpoint signatures. The agent log (execs, opens, renames) replays more slowly than a storm's log of one kind of record.");
        }
        if !self.daemon.is_empty() {
            let _ = writeln!(s, "\n## The daemon with idle agents\n");
            let _ = writeln!(s, "`proctor daemon` with one agent rule (`exe`, a copy of `sleep`) and that many copies \
                started, each sleeping: each is an open session that does nothing. CPU: the daemon's, all threads, over the \
                window once every session was open, as a share of one core. RSS at the end of the window and its peak.\n");
            let _ = writeln!(s, "| idle agents | sessions | window (s) | daemon CPU (% core) | RSS (MB) | peak RSS (MB) |\n|---:|---:|---:|---:|---:|---:|");
            for d in &self.daemon {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.0} | {:.3} | {:.1} | {:.1} |",
                    d.agents,
                    d.sessions,
                    d.seconds,
                    d.cpu_frac * 100.0,
                    d.rss_kb as f64 / 1024.0,
                    d.hwm_kb as f64 / 1024.0
                );
            }
        }
        let _ = writeln!(s, "\n## Alert latency\n");
        for (what, l) in [
            ("", &self.alert_latency),
            (
                "Each read just after an exec of /bin/true, so it comes while proctor polls on \
                 its 2 ms timer after an urgent record and the kernel wakes nobody for it: ",
                &self.alert_latency_polled,
            ),
        ] {
            match (l["n"].as_u64(), l["p50_ms"].as_f64()) {
                (Some(n), Some(p50)) => {
                    let _ = writeln!(
                        s,
                        "{what}{n} alerts (distinct sensitive-file reads 20 ms apart after a 1 s baseline): \
                         from the kernel's timestamp of the read to the signed certificate in place \
                         in alerts/ (written and renamed: any reader sees it, a proctor crash does \
                         not lose it; a background fsync makes it durable within about a second): p50 {p50:.2} ms, p90 {:.2} ms, \
                         p99 {:.2} ms, max {:.2} ms.\n",
                        l["p90_ms"].as_f64().unwrap_or(0.0),
                        l["p99_ms"].as_f64().unwrap_or(0.0),
                        l["max_ms"].as_f64().unwrap_or(0.0)
                    );
                }
                _ => {
                    let _ = writeln!(s, "{what}not measured: {l}\n");
                }
            }
        }
        if !self.notes.is_empty() || !self.failures.is_empty() {
            let _ = writeln!(s, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
            for n in &self.failures {
                let _ = writeln!(s, "- FAILED: {n}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_line_names_each_tool_once() {
        let m = json!({
            "cpu": "AMD EPYC", "cores": 2, "kernel": "6.18.44", "os": "Debian GNU/Linux 12",
            "mem_total_kb": "24684092", "proctor": "proctor 0.1.0", "git_commit": "f17eda4",
            "bpftrace": "bpftrace v0.17.0", "auditd": "1:3.0.9-1", "python": "Python 3.11.2",
        });
        let line = machine_line(&m);
        assert!(line.contains(" proctor 0.1.0 (commit f17eda4), bpftrace v0.17.0, auditd 1:3.0.9-1, Python 3.11.2."), "{line}");
        assert!(
            !line.contains("proctor proctor") && !line.contains("bpftrace bpftrace"),
            "{line}"
        );
    }
}
