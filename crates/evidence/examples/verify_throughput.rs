//! Single-threaded `proctor verify` throughput on one audit log, in records per CPU-second
//! (the process's user+system time, so load from other processes barely moves it):
//! `cargo run --release -p proctor-evidence --example verify_throughput -- DIR_OR_LOG [REPEAT]`

use proctor_evidence::verify_paths;
use std::path::PathBuf;
use std::time::Instant;

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: verify_throughput DIR_OR_LOG [REPEAT]");
        std::process::exit(2);
    };
    let repeat: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    for _ in 0..repeat {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let report = verify_paths(std::slice::from_ref(&path), None);
        let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
        let records: u64 = report
            .items
            .iter()
            .filter(|i| i.kind == "audit_log")
            .filter_map(|i| i.summary.split_whitespace().nth(2)?.parse::<u64>().ok())
            .sum();
        println!(
            "{records} records, exit {}: {:.0} records/s wall, {:.0} records per CPU-second",
            report.exit_code(),
            records as f64 / wall,
            records as f64 / cpu
        );
    }
}
