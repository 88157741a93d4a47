//! Shared helpers for the real-kernel tests: start real processes under the real sensor and read
//! back what the kernel reported. These tests need root (CI runs as root) and fail loudly
//! without it: a sensor test that skips would hide a broken sensor.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn proctor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_proctor"))
}

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "real-kernel tests load eBPF programs and must run as root (CI does); run `make test` as root"
    );
}

pub struct Run {
    pub out: Output,
    pub dir: tempfile::TempDir,
    pub records: Vec<Value>,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    pub fn of_type(&self, ty: &str) -> Vec<&Value> {
        self.records.iter().filter(|r| r["type"] == ty).collect()
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// The alerts of the run (DIR/alerts.jsonl), none if it has none.
    pub fn alerts(&self) -> Vec<Value> {
        let p = self.dir.path().join("alerts.jsonl");
        if p.exists() {
            read_records(&p)
        } else {
            Vec::new()
        }
    }
}

/// Wait until `path` exists (a running proctor's pid file, a marker), failing after 10 s.
pub fn wait_for(path: &Path, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn read_records(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("{} line {}: invalid JSON ({e}): {l}", path.display(), i + 1)
            })
        })
        .collect()
}

/// The shipped default policy (`proctor policy show`) with each `(from, to)` applied once (each
/// `from` must be there: a test must not silently run on the default), written to
/// DIR/policy.toml and checked with `proctor policy check`. Returns the path.
pub fn policy_with(dir: &Path, edits: &[(&str, &str)]) -> String {
    let out = proctor()
        .args(["policy", "show"])
        .output()
        .expect("policy show");
    assert!(out.status.success());
    let mut text = String::from_utf8(out.stdout).expect("the policy is UTF-8");
    for (from, to) in edits {
        assert!(text.contains(from), "default policy has `{from}`");
        text = text.replacen(from, to, 1);
    }
    let path = dir.join("policy.toml");
    std::fs::write(&path, &text).expect("write policy");
    let check = proctor()
        .args(["policy", "check"])
        .arg(&path)
        .output()
        .expect("policy check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    path.to_str().expect("UTF-8 temp path").to_string()
}

/// `[network].allow` entries and `[enforce]` values as `policy_with` edits. `exec` is matched
/// as a line start (`\nexec = []`), never the `ask_exec = []` line.
pub fn enforce_edits(
    network: &str,
    exec: &[String],
    ptrace: &str,
    allow: &[String],
    files: &str,
) -> Vec<(String, String)> {
    let entries: String = allow.iter().map(|a| format!("  \"{a}\",\n")).collect();
    let exec: Vec<String> = exec.iter().map(|e| format!("\"{e}\"")).collect();
    vec![
        ("allow = [\n".into(), format!("allow = [\n{entries}")),
        (
            "network = \"alert\"".into(),
            format!("network = \"{network}\""),
        ),
        (
            "\nexec = []".into(),
            format!("\nexec = [{}]", exec.join(", ")),
        ),
        (
            "ptrace = \"alert\"".into(),
            format!("ptrace = \"{ptrace}\""),
        ),
        ("files = \"alert\"".into(), format!("files = \"{files}\"")),
    ]
}

/// `proctor run --out <tmp> [extra] -- cmd...`
pub fn run_under(extra: &[&str], cmd: &[&str]) -> Run {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = proctor()
        .arg("run")
        .arg("--out")
        .arg(dir.path())
        .args(extra)
        .arg("--")
        .args(cmd)
        .output()
        .expect("start proctor");
    let audit = dir.path().join("audit.jsonl");
    let records = if audit.exists() {
        read_records(&audit)
    } else {
        Vec::new()
    };
    Run { out, dir, records }
}

/// Run a Python 3 script as the agent.
pub fn run_py(script: &str) -> Run {
    run_under(&[], &["/usr/bin/python3", "-c", script])
}

/// A child process killed when a failing test unwinds, so no orphan keeps the harness waiting.
/// Derefs to the `Child`; `into_inner` hands it back (e.g. for `wait_with_output`).
pub struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    pub fn new(child: std::process::Child) -> KillOnDrop {
        KillOnDrop(Some(child))
    }

    pub fn into_inner(mut self) -> std::process::Child {
        self.0.take().expect("child present until dropped")
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.0.as_ref().expect("child present until dropped")
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("child present until dropped")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Records the evidence layer adds to keep the chain (not observations).
pub const CHAIN_TYPES: [&str; 3] = ["segment_start", "checkpoint", "certificate"];

/// The last record that is not chain bookkeeping (e.g. `sensor_stop` at the end of a run).
pub fn last_observation(recs: &[Value]) -> &Value {
    recs.iter()
        .rev()
        .find(|r| !CHAIN_TYPES.contains(&r["type"].as_str().unwrap_or("")))
        .expect("a record that is not chain bookkeeping")
}

/// Bytes of a lossless JSON byte string: a string, or {"b64": ...}.
pub fn bytes_of(v: &Value) -> Vec<u8> {
    use base64::Engine as _;
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Object(m) => base64::engine::general_purpose::STANDARD
            .decode(m["b64"].as_str().expect("b64 string"))
            .expect("valid base64"),
        other => panic!("not a byte string: {other}"),
    }
}
