//! Cost of the audit log's append path on recorded records: `cargo run --release -p
//! proctor-evidence --example append -- RECORDS.jsonl [OUTDIR]`. Every line that decodes as a
//! `Record` is appended (with its chain, checkpoints and signatures) to OUTDIR/audit.jsonl. Run
//! it under `valgrind --tool=callgrind` for an instruction count that machine load does not
//! change (bench/FINDINGS.md uses it).

use proctor_evidence::{AuditLog, Signer};
use proctor_model::Record;
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(input) = args.first() else {
        eprintln!("usage: append RECORDS.jsonl [OUTDIR]");
        std::process::exit(2);
    };
    let out = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| format!("/tmp/proctor-append-{}", std::process::id()));
    let text = std::fs::read_to_string(input).unwrap_or_else(|e| {
        eprintln!("append: {input}: {e}");
        std::process::exit(2);
    });
    let records: Vec<Record> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let signer = Arc::new(Signer::generate().expect("a fresh key"));
    let _ = std::fs::remove_dir_all(&out);
    let mut log = AuditLog::open(std::path::Path::new(&out), signer, "bench").expect("open");
    let t = std::time::Instant::now();
    for r in &records {
        log.append(r).expect("append");
    }
    log.close().expect("close");
    let s = t.elapsed().as_secs_f64();
    eprintln!(
        "{} records in {:.3} s: {:.2} us/record",
        records.len(),
        s,
        s * 1e6 / records.len().max(1) as f64
    );
}
