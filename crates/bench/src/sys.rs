//! Process plumbing: spawning with a login uid, waiting without reaping (so a finished monitor's
//! own CPU time can still be read from /proc), and the /proc figures the report uses.

use anyhow::{bail, Context, Result};
use proctor_sensor::procfs;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The login uid every monitored workload runs under; the audit rules match on it.
pub const BENCH_AUID: u32 = 4242;

/// Let the child (and its descendants) carry `BENCH_AUID` as login uid: audit's only way to
/// scope rules to one process tree. Done in every mode so the modes differ only by the monitor.
pub fn set_loginuid(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and makes raw syscalls only
    // (open/write/close on a fixed path), which are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let path = c"/proc/self/loginuid";
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
            if fd >= 0 {
                let s = BENCH_AUID.to_string();
                libc::write(fd, s.as_ptr().cast(), s.len());
                libc::close(fd);
            }
            Ok(())
        });
    }
}

/// Has the child exited? Does not reap it: its /proc entry stays readable until [`reap`].
pub fn exited(pid: u32) -> bool {
    // SAFETY: waitid writes only into the zeroed siginfo we pass.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
        )
    };
    // SAFETY: si_pid is valid for a WEXITED report; it stays 0 when nothing has exited yet.
    rc == 0 && unsafe { info.si_pid() } != 0
}

/// Wait until `child` exits (without reaping), calling `tick` every `every`; kill it after
/// `timeout` or when `stop` says so.
pub fn wait_exit(
    child: &mut Child,
    timeout: Duration,
    every: Duration,
    stop: &dyn Fn() -> bool,
    tick: &mut dyn FnMut(),
) -> Result<()> {
    let start = Instant::now();
    loop {
        tick();
        if exited(child.id()) {
            return Ok(());
        }
        if stop() || start.elapsed() > timeout {
            // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(2));
            let _ = child.kill();
            let _ = child.wait();
            if stop() {
                bail!("interrupted");
            }
            bail!("timed out after {:?}", timeout);
        }
        std::thread::sleep(every);
    }
}

pub fn reap(child: &mut Child) -> Result<ExitStatus> {
    child.wait().context("waiting for a child")
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// user+sys seconds of the process itself (all its threads, not its children), from
/// /proc/PID/stat. Works on an unreaped zombie.
pub fn own_cpu_seconds(pid: u32) -> Option<f64> {
    let st = procfs::stat(pid)?;
    Some((st.utime + st.stime) as f64 / clock_ticks())
}

/// On-CPU nanoseconds of every live thread of the process (ns precision, from schedstat).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    rd.flatten()
        .filter_map(|t| {
            std::fs::read_to_string(t.path().join("schedstat"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// A `Kb` field of /proc/PID/status (VmHWM, VmRSS).
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    procfs::status_field(pid, &format!("{field}:"))?
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

pub fn comm(pid: u32) -> Option<String> {
    procfs::comm(pid).map(|c| String::from_utf8_lossy(&c.0).trim().to_string())
}

pub use procfs::children;

/// The pid of the first process whose comm is `name` (kernel threads included).
pub fn pid_of(name: &str) -> Option<u32> {
    procfs::pids()
        .into_iter()
        .find(|&p| comm(p).as_deref() == Some(name))
}

pub fn kill(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Run a command to completion, returning stdout; an error names the command and its stderr.
pub fn output(argv: &[&str]) -> Result<String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .with_context(|| format!("running {}", argv.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// (prog id, run_time_ns, run_cnt) of every BPF program the process holds an fd to, from
/// /proc/PID/fdinfo (the kernel fills run_time_ns/run_cnt while kernel.bpf_stats_enabled=1).
pub fn bpf_prog_stats(pid: u32) -> Vec<(u32, u64, u64)> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
        };
        if let (Some(id), Some(t), Some(c)) =
            (field("prog_id:"), field("run_time_ns:"), field("run_cnt:"))
        {
            if !out.iter().any(|&(i, _, _)| i == id as u32) {
                out.push((id as u32, t, c));
            }
        }
    }
    out
}
