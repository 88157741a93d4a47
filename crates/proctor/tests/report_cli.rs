//! `proctor key rotate|revoke`, `proctor verify --revoked`, `proctor report` and `proctor
//! timestamp` as a user runs them: files and modes, exit codes, one-line errors. The logic is
//! tested in crates/evidence/tests (key_lifecycle, timestamps) and crates/report/tests.

use proctor_evidence::{AuditLog, CertWriter, Signer};
use proctor_testkit::evidence::{alert, record};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_proctor"))
        .args(args)
        .output()
        .expect("running the proctor binary")
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A run signed with the key in `keys`.
fn write_run(out: &Path, keys: &Path) {
    let s = Arc::new(Signer::load(&keys.join("proctor.key")).unwrap());
    let mut log = AuditLog::open(out, s.clone(), "agent-7").unwrap();
    log.append(&record(10, 1_795_422_529_000_000_000)).unwrap();
    let mut w = CertWriter::new(&out.join("alerts"), s, "host-1", None).unwrap();
    let written = w.write(&alert(0)).unwrap();
    log.record_certificate(&written).unwrap();
    drop(w);
    log.close().unwrap();
}

#[test]
fn rotate_revoke_verify_and_report_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let k = keys.to_str().unwrap();
    let out = run(&["keygen", "--dir", k]);
    assert!(out.status.success(), "{}", show(&out));
    let first = tmp.path().join("first.pub.pem");
    std::fs::copy(keys.join("proctor.pub.pem"), &first).unwrap();
    let data = tmp.path().join("out");
    write_run(&data, &keys);

    let out = run(&["key", "rotate", "--dir", k]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("new key:"));
    write_run(&data, &keys);
    let d = data.to_str().unwrap();
    let f = first.to_str().unwrap();
    let out = run(&["verify", d, "--key", f]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("announced by key"), "{stdout}");
    assert!(stdout.contains("trusted time: none"), "{stdout}");

    // Revoke the first key from the start of time: what it signed is now invalid.
    let fp = proctor_evidence::Verifier::load(&first).unwrap();
    let list = tmp.path().join("revoked.json");
    let out = run(&[
        "key",
        "revoke",
        fp.fingerprint(),
        "--reason",
        "laptop stolen",
        "--at",
        "0",
        "--dir",
        k,
        "--out",
        list.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(mode(&list), 0o600);
    let out = run(&["verify", d, "--key", f, "--revoked", list.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("laptop stolen"),
        "{}",
        show(&out)
    );

    // The report: written 0600 beside the data by default, HTML and Markdown.
    let out = run(&["report", d, "--key", f]);
    assert!(out.status.success(), "{}", show(&out));
    let html = data.join("report.html");
    assert_eq!(mode(&html), 0o600);
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    let md = tmp.path().join("r.md");
    let out = run(&["report", d, "--format", "md", "--out", md.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(std::fs::read_to_string(&md).unwrap().contains("## Summary"));
}

#[test]
fn bad_use_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().to_str().unwrap();
    for (args, want) in [
        (vec!["report", t], "no audit.jsonl"),
        (vec!["key", "rotate", "--dir", t], "proctor.key"),
        (
            vec!["key", "revoke", "xyz", "--reason", "r", "--dir", t],
            "not a key fingerprint",
        ),
        (
            vec![
                "key",
                "revoke",
                &"a".repeat(64),
                "--reason",
                "r",
                "--at",
                "yesterday",
                "--dir",
                t,
            ],
            "--at",
        ),
        (
            vec!["timestamp", t, "--tsa", "https://tsa.example/"],
            "only http://",
        ),
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line: {err}"
        );
    }
    // An incident that is not in the run.
    let keys = tmp.path().join("k");
    assert!(run(&["keygen", "--dir", keys.to_str().unwrap()])
        .status
        .success());
    let data = tmp.path().join("out");
    write_run(&data, &keys);
    let out = run(&["report", data.to_str().unwrap(), "--incident", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("incident nope: not found"));
}
