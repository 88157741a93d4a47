//! Single-threaded `proctor replay` throughput on one audit log, in records per CPU-second (the
//! process's own user+system time, which other load on a shared machine moves much less than
//! wall time), with the built-in policy and mimalloc as in the `proctor` binary:
//! `cargo run --release -p proctor-detect --example replay_throughput -- LOG [REPEAT]`
//!
//! It runs the loop `proctor replay` runs (decode, detection, each alert written as a JSON
//! line) and prints a digest of the alert lines, so two builds can be compared for identical
//! output on the same log.

use mimalloc::MiMalloc;
use proctor_detect::replay::{AuditReader, Line};
use proctor_detect::{Engine, EngineConfig, Output, Policy};
use std::hash::Hasher;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One replay of `log`: (records, alerts, a digest of the alert lines).
fn replay(log: &PathBuf) -> (u64, u64, u64) {
    let file = std::fs::File::open(log).unwrap_or_else(|e| {
        eprintln!("cannot read {}: {e}", log.display());
        std::process::exit(2)
    });
    let (mut home, mut cwd) = (None, None);
    let mut engine: Option<Engine> = None;
    let (mut records, mut alerts) = (0u64, 0u64);
    let mut digest = std::collections::hash_map::DefaultHasher::new();
    let mut emit = |outs: Vec<Output>| {
        for o in outs {
            if let Output::Alert(a) = o {
                alerts += 1;
                digest.write(&serde_json::to_vec(&a).expect("alerts serialize"));
            }
        }
    };
    for item in AuditReader::new(BufReader::with_capacity(1 << 20, file)) {
        let (_, line) = item.expect("readable log");
        match line {
            Line::Other { ty, value } if ty == "sensor_start" => {
                let field = |k: &str| value.get(k).and_then(|v| v.as_str()).map(PathBuf::from);
                home = home.or_else(|| field("home"));
                cwd = cwd.or_else(|| field("cwd"));
            }
            Line::Record(r) => {
                records += 1;
                let e = engine.get_or_insert_with(|| {
                    Engine::new(
                        Policy::builtin(),
                        EngineConfig {
                            baseline_ns: Duration::from_secs(10).as_nanos() as u64,
                            home: home.clone(),
                            cwd: cwd.clone(),
                            profile: None,
                        },
                    )
                });
                emit(e.observe_shared(r));
            }
            _ => {}
        }
    }
    if let Some(e) = engine.as_mut() {
        emit(e.finish());
    }
    (records, alerts, digest.finish())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(log) = args.next().map(PathBuf::from) else {
        eprintln!("usage: replay_throughput LOG [REPEAT]");
        std::process::exit(2);
    };
    let repeat: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    for _ in 0..repeat {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let (records, alerts, digest) = replay(&log);
        let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
        println!(
            "{records} records, {alerts} alerts (digest {digest:016x}): {:.0} records/s wall, {:.0} records per CPU-second",
            records as f64 / wall,
            records as f64 / cpu
        );
    }
}
