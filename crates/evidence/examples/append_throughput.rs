//! Rough cost of the evidence writers: records/s into the audit log and certificates/s.
//! `cargo run --release -p proctor-evidence --example append_throughput`

use proctor_evidence::{AuditLog, CertWriter, Signer};
use proctor_model::{Alert, Bytes, Event, Exec, Record};
use std::sync::Arc;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("proctor-throughput-{}", std::process::id()));
    let signer = Arc::new(Signer::generate()?);
    let rec = Record {
        event: Event::Exec(Exec {
            filename: Bytes::from("/usr/bin/python3"),
            argv: vec![
                Bytes::from("python3"),
                Bytes::from("-c"),
                Bytes::from("print(1)"),
            ],
            argv_truncated: false,
            dev: 2049,
            ino: 123_456,
            fileless: false,
            build_id: None,
        }),
        ts_ns: 1_795_422_529_000_000_000,
        agent_id: "agent".into(),
        pid: 1000,
        ppid: 999,
        comm: Bytes::from("python3"),
        exec_id: "1000-123-1".into(),
        identity: None,
        kseq: None,
    };
    let mut log = AuditLog::open(&dir, signer.clone(), "agent")?;
    let n = 100_000;
    let t = Instant::now();
    for _ in 0..n {
        log.append(&rec)?;
    }
    log.close()?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "audit log: {n} records in {secs:.2}s = {:.0} records/s",
        n as f64 / secs
    );

    let alert = Alert::new(
        "agent",
        rec.ts_ns,
        "L2",
        "LLM_AGENT_HIJACK",
        1000,
        rec.exec_id.clone(),
        "python3 spawned sh",
    )
    .with_records(vec![rec.clone()], vec![rec; 32]);
    let mut certs = CertWriter::new(&dir.join("alerts"), signer, "host", None)?;
    let m = 200;
    let t = Instant::now();
    for _ in 0..m {
        certs.write(&alert)?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "certificates: {m} in {secs:.2}s = {:.0}/s (each fsynced)",
        m as f64 / secs
    );
    let t = Instant::now();
    let report = proctor_evidence::verify_paths(std::slice::from_ref(&dir), None);
    println!(
        "verify: {:?} in {:.2}s",
        report.status,
        t.elapsed().as_secs_f64()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
