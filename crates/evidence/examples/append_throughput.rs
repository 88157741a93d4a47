//! Rough cost of the evidence writers: records/s into the audit log and certificates/s.
//! `cargo run --release -p proctor-evidence --example append_throughput [-- audit [N]]`
//! (`audit`: only the audit log, N records; for a profile of that path alone).

use proctor_evidence::{AuditLog, CertWriter, Signer};
use proctor_model::{
    Access, Alert, Bytes, Connect, Event, Exec, Family, FileOpen, Identity, Kseq, Record, SockAddr,
};
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
            euid: None,
            egid: None,
            env: Vec::new(),
            env_truncated: false,
            env_unread: false,
            at_exec: None,
        }),
        ts_ns: 1_795_422_529_000_000_000,
        agent_id: "agent".into(),
        pid: 1000,
        ppid: 999,
        comm: Bytes::from("python3"),
        exec_id: "1000-123-1".into(),
        identity: Some(Identity {
            uid: 1000,
            gid: 1000,
            loginuid: 1000,
            cgroup_id: 12_345,
            container: None,
        }),
        kseq: Some(Kseq { kslot: 3, kseq: 1 }),
    };
    // What the agent workload writes most: opens, then execs and connects.
    let open = Record {
        event: Event::FileOpen(FileOpen {
            path: Bytes::from("/home/agent/project/src/module/__init__.py"),
            flags: 0x80000,
            access: Access::Read,
            create: false,
            created: false,
            truncate: false,
            dev: 2049,
            ino: 654_321,
            error: None,
            path_truncated: false,
            repeats: 0,
            last_ts_ns: 0,
            device: None,
            setid: false,
            mapped_exec: false,
        }),
        ..rec.clone()
    };
    let connect = Record {
        event: Event::Connect(Connect {
            dest: SockAddr {
                family: Family::Inet,
                addr: Some("93.184.215.14".into()),
                port: Some(443),
                path: None,
            },
            protocol: "tcp".into(),
            repeats: 0,
            last_ts_ns: 0,
            peer_dev: 0,
            peer_ino: 0,
            peer_pid: 0,
            peer_outside: false,
            peer_exe: None,
            netns: 0,
        }),
        ..rec.clone()
    };
    let mix = [&open, &open, &open, &rec, &connect];
    let mut args = std::env::args().skip(1);
    let only_audit = args.next().as_deref() == Some("audit");
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let mut log = AuditLog::open(&dir, signer.clone(), "agent")?;
    let cpu = cpu_secs();
    let t = Instant::now();
    for r in mix.iter().cycle().take(n) {
        log.append(*r)?;
    }
    log.close()?;
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu;
    println!(
        "audit log: {n} records in {secs:.2}s = {:.0} records/s, {:.2} us of CPU per record",
        n as f64 / secs,
        cpu * 1e6 / n as f64
    );
    if only_audit {
        std::fs::remove_dir_all(&dir)?;
        return Ok(());
    }

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

/// User and system CPU time of this process so far.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let ru = unsafe {
        let mut ru = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}
