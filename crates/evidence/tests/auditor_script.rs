//! The openssl-only procedure of AUDITORS.md (tests/data/verify_with_openssl.sh) accepts
//! proctor's evidence and rejects tampered copies, so the document stays true.

use proctor_evidence::{generate_keypair, AuditLog, CertWriter, Signer};
use proctor_testkit::evidence::{alert, cals, record};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn script(args: &[&Path], extra: &[&str]) -> (bool, String) {
    let sh = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/verify_with_openssl.sh");
    let mut cmd = Command::new("sh");
    cmd.arg(sh).arg(args[0]);
    for e in extra {
        cmd.arg(e);
    }
    for a in &args[1..] {
        cmd.arg(a);
    }
    let out = cmd.output().expect("running sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn openssl_procedure_accepts_real_evidence_and_rejects_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let (private, public) = generate_keypair(&tmp.path().join("keys")).unwrap();
    let s = Arc::new(Signer::load(&private).unwrap());
    let out = tmp.path().join("out");
    let mut log = AuditLog::open(&out, s.clone(), "agent").unwrap();
    let mut w = CertWriter::new(&out.join("alerts"), s, "host", None).unwrap();
    for i in 0..2 {
        log.append(&record(i, u64::from(i))).unwrap();
        w.write(&alert(u64::from(i))).unwrap();
    }
    log.close().unwrap();
    let files = cals(&out.join("alerts"));

    let (ok, text) = script(&[&public, &files[1], &files[0]], &[]);
    assert!(
        ok && text.contains("Signature Verified Successfully"),
        "{text}"
    );
    let (ok, text) = script(&[&public, &files[0], &files[1]], &[]);
    assert!(!ok, "a wrong predecessor must fail: {text}");

    // Checkpoint (line 2) and an ordinary record (line 3).
    let log_path = out.join("audit.jsonl");
    let (ok, text) = script(&[&public, &log_path], &["--log-line", "2"]);
    assert!(
        ok && text.contains("Signature Verified Successfully"),
        "{text}"
    );
    let (ok, text) = script(&[&public, &log_path], &["--log-line", "3"]);
    assert!(ok && text.contains("hash_self OK"), "{text}");

    // Tampered certificate and log line.
    let bytes = std::fs::read(&files[1]).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    std::fs::write(&files[1], text.replacen("\"pid\":4242", "\"pid\":4243", 1)).unwrap();
    let (ok, t) = script(&[&public, &files[1]], &[]);
    assert!(!ok, "an edited certificate must fail: {t}");
    std::fs::write(&files[1], bytes).unwrap();

    let logtext = std::fs::read_to_string(&log_path).unwrap();
    std::fs::write(&log_path, logtext.replacen("\"pid\":0", "\"pid\":9", 1)).unwrap();
    let (ok, t) = script(&[&public, &log_path], &["--log-line", "3"]);
    assert!(!ok, "an edited log line must fail: {t}");

    // Another key.
    let (_, other) = generate_keypair(&tmp.path().join("other")).unwrap();
    let (ok, t) = script(&[&other, &files[0]], &[]);
    assert!(!ok && t.contains("another key"), "{t}");
}
