//! Fixtures for the evidence tests (the evidence crate's and the evidence commands of the
//! binary): records and alerts with 19-digit ts_ns, keys, and report helpers.

use proctor_evidence::Signer;
use proctor_model::{Alert, Bytes, Event, Exec, Record};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn signer() -> Arc<Signer> {
    Arc::new(Signer::generate().expect("generating a key"))
}

pub fn record(pid: u32, ts_ns: u64) -> Record {
    Record {
        event: Event::Exec(Exec {
            filename: Bytes::from("/usr/bin/bash"),
            argv: vec![Bytes::from("bash"), Bytes(vec![b'-', b'c', 0xff, b'\n'])],
            argv_truncated: false,
            dev: 2049,
            ino: 1234,
            fileless: false,
            build_id: None,
            euid: None,
            egid: None,
            env: Vec::new(),
            env_truncated: false,
            env_unread: false,
            at_exec: None,
        }),
        ts_ns,
        agent_id: "agent-7".into(),
        pid,
        ppid: 1,
        comm: Bytes::from("bash"),
        exec_id: format!("{pid}-99-1"),
        identity: None,
        kseq: None,
    }
}

pub fn alert(n: u64) -> Alert {
    Alert::new(
        "agent-7",
        // Above 2^53 on purpose: the low digits must be covered by the signature.
        1_795_422_529_123_456_789 + n,
        "L2",
        "LLM_AGENT_HIJACK",
        4242,
        "4242-99-1",
        format!("python3 spawned bash -c \"curl … | sh\" #{n}"),
    )
    .with_divergence(2.5 + n as f64 / 8.0)
    .with_records(
        vec![record(4242, 1_795_422_529_000_000_000)],
        vec![record(4241, 1_795_422_528_000_000_000)],
    )
}

/// Every `.cal` file in `dir`, sorted.
pub fn cals(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("listing certificates")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cal"))
        .collect();
    v.sort();
    v
}

/// A report's findings as "problem: message" lines, for assertion messages.
pub fn describe(report: &proctor_evidence::Report) -> String {
    report.render()
}

/// The `problem` codes of all non-note findings.
pub fn problems(report: &proctor_evidence::Report) -> Vec<&'static str> {
    report
        .items
        .iter()
        .flat_map(|i| i.findings.iter())
        .filter(|f| f.severity != proctor_evidence::Severity::Note)
        .map(|f| f.problem)
        .collect()
}

/// xorshift64*: deterministic, so a failing case is reproducible from its seed and index.
pub struct Rng(pub u64);

impl Rng {
    #[expect(
        clippy::should_implement_trait,
        reason = "an endless generator, not an iterator: the tests call next() and below()"
    )]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
