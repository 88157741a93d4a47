//! Writes a small signed sample output directory (audit.jsonl, alerts/, public keys) with a
//! fresh key, for trying `proctor verify` and the openssl steps in AUDITORS.md:
//! `cargo run -p proctor-evidence --example sample_run -- DIR`

use proctor_evidence::{AuditLog, CertWriter, Signer};
use proctor_model::{Alert, Bytes, Event, Fork, Record};
use std::path::PathBuf;
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: sample_run DIR")?);
    let (signer, created) = Signer::load_or_create(&out.join("keys"))?;
    eprintln!(
        "key {} ({})",
        signer.fingerprint(),
        if created { "created" } else { "existing" }
    );
    let signer = Arc::new(signer);
    let mut log = AuditLog::open(&out, signer.clone(), "sample-agent")?;
    let mut certs = CertWriter::new(&out.join("alerts"), signer, "sample-host", None)?;
    for i in 0..3u32 {
        let rec = Record {
            event: Event::Fork(Fork { child_pid: 200 + i }),
            ts_ns: 1_795_422_529_000_000_000 + u64::from(i),
            agent_id: "sample-agent".into(),
            pid: 100,
            ppid: 1,
            comm: Bytes::from("python3"),
            exec_id: "100-5-1".into(),
            identity: None,
            kseq: None,
        };
        log.append(&rec)?;
        let alert = Alert::new(
            "sample-agent",
            rec.ts_ns,
            "L2",
            "LLM_AGENT_HIJACK",
            100,
            "100-5-1",
            format!("sample alert {i}"),
        )
        .with_records(vec![rec], vec![]);
        let w = certs.write(&alert)?;
        log.record_certificate(&w)?;
        println!("{}", w.path.display());
    }
    log.close()?;
    Ok(())
}
