//! Fuzz-style robustness of the verifier's parsers on stable Rust (cargo-fuzz needs a nightly
//! toolchain with rust-src, which this build image lacks): thousands of random and mutated
//! certificates and audit logs, each of which must be judged without a panic, and none of which
//! may verify as valid unless it is byte-identical to the original (or, for a log, lacks only its
//! final newline, which loses nothing and is reported as a note).

use proctor_evidence::{verify_paths, AuditLog, CertWriter, Status};
use proctor_testkit::evidence::{alert, cals, record, signer, Rng};
use std::path::{Path, PathBuf};

/// Interesting bytes for JSON parsers and our framing.
const DICT: &[&[u8]] = &[
    b"\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b",",
    b":",
    b"0",
    b"-",
    b"1e999",
    b"null",
    b"\"seq\":",
    b"\"hash_self\":\"",
    b"\"type\":\"segment_start\"",
    b"\"torn\":",
    b"\xff\xfe",
    b"\\u0000",
    b"\\ud800",
    b"99999999999999999999999",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

fn mutate(rng: &mut Rng, orig: &[u8]) -> Vec<u8> {
    let mut b = orig.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(7) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            2 => {
                let end = (at + rng.below(64)).min(b.len());
                b.drain(at..end);
            }
            3 => {
                let piece = DICT[rng.below(DICT.len())];
                b.splice(at..at, piece.iter().copied());
            }
            4 => {
                let end = (at + rng.below(200)).min(b.len());
                let dup = b[at..end].to_vec();
                b.splice(at..at, dup);
            }
            5 => b.truncate(at),
            _ => {
                let n = rng.below(16);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(at..at, junk);
            }
        }
    }
    b
}

fn judge(path: &Path, key: &proctor_evidence::Verifier, case: &str) -> Status {
    let p = path.to_path_buf();
    let k = key.clone();
    match std::panic::catch_unwind(move || verify_paths(&[p], Some(&k))) {
        Ok(r) => r.status,
        Err(_) => panic!("verifier panicked on {case}"),
    }
}

#[test]
fn mutated_certificates_never_verify_and_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let s = signer();
    let dir = tmp.path().join("alerts");
    let mut w = CertWriter::new(&dir, s.clone(), "h", None).unwrap();
    w.write(&alert(0)).unwrap();
    let path: PathBuf = cals(&dir)[0].clone();
    let orig = std::fs::read(&path).unwrap();
    let mut rng = Rng(0x5eed_0001);
    for case in 0..1500 {
        let m = mutate(&mut rng, &orig);
        std::fs::write(&path, &m).unwrap();
        let st = judge(&path, s.verifier(), &format!("certificate case {case}"));
        if m != orig {
            assert_ne!(
                st,
                Status::Valid,
                "mutated certificate case {case} verified: {:?}",
                String::from_utf8_lossy(&m)
            );
        }
    }
}

#[test]
fn mutated_audit_logs_never_verify_and_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let s = signer();
    let mut log = AuditLog::open(tmp.path(), s.clone(), "a").unwrap();
    for i in 0..6 {
        log.append(&record(i, u64::from(i))).unwrap();
        if i == 2 {
            log.checkpoint().unwrap();
        }
    }
    log.close().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let orig = std::fs::read(&path).unwrap();
    let mut rng = Rng(0x5eed_0002);
    for case in 0..1500 {
        let m = mutate(&mut rng, &orig);
        std::fs::write(&path, &m).unwrap();
        let st = judge(&path, s.verifier(), &format!("audit log case {case}"));
        // Only the final newline cut: every record is intact, reported as a note.
        let only_newline_cut = m[..] == orig[..orig.len() - 1];
        if m != orig && !only_newline_cut {
            assert_ne!(
                st,
                Status::Valid,
                "mutated log case {case} verified: {:?}",
                String::from_utf8_lossy(&m)
            );
        }
    }
}

#[test]
fn random_bytes_are_judged_without_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let s = signer();
    let cal = tmp.path().join("x-00000001.cal");
    let log = tmp.path().join("audit.jsonl");
    let mut rng = Rng(0x5eed_0003);
    for case in 0..1000 {
        let n = rng.below(400);
        let mut bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        if case % 2 == 0 {
            // Mostly-JSON noise reaches deeper into the parsers.
            bytes = (0..n)
                .map(|_| DICT[rng.below(DICT.len())])
                .collect::<Vec<_>>()
                .concat();
        }
        std::fs::write(&cal, &bytes).unwrap();
        std::fs::write(&log, &bytes).unwrap();
        for p in [&cal, &log] {
            let st = judge(p, s.verifier(), &format!("random case {case}"));
            assert_ne!(st, Status::Valid, "random bytes verified (case {case})");
        }
    }
    // Deep nesting does not overflow the stack.
    let deep = format!("{}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    std::fs::write(&cal, &deep).unwrap();
    std::fs::write(&log, &deep).unwrap();
    assert_eq!(
        judge(&cal, s.verifier(), "deep certificate"),
        Status::Invalid
    );
    assert_eq!(judge(&log, s.verifier(), "deep log"), Status::Invalid);
}

/// Hand-made hostile values that random mutation rarely reaches: lengths and seqs at the limits.
#[test]
fn extreme_numbers_in_chain_members_are_judged_without_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let s = signer();
    let log = tmp.path().join("audit.jsonl");
    let z = "0".repeat(64);
    for (torn_len, seq) in [(u64::MAX, 1u64), (u64::MAX - 1, u64::MAX), (0, 0)] {
        let start = format!(
            "{{\"hash_prev\":\"{z}\",\"hash_self\":\"{z}\",\"seq\":{seq},\"torn\":{{\"length\":{torn_len},\"sha256\":\"{z}\",\"terminated\":true}},\"type\":\"segment_start\"}}\n"
        );
        std::fs::write(&log, format!("garbage\n{start}")).unwrap();
        let st = judge(&log, s.verifier(), &format!("torn length {torn_len}"));
        assert_eq!(st, Status::Invalid, "torn length {torn_len}, seq {seq}");
        std::fs::write(&log, &start).unwrap();
        let st = judge(&log, s.verifier(), &format!("seq {seq}"));
        assert_eq!(st, Status::Invalid, "seq {seq}");
    }
}

/// The key parsers: mutated public and private key files are refused or read as some key,
/// never a panic, and no error message carries a line of the private key.
#[test]
fn mutated_key_files_never_panic_and_errors_carry_no_key_material() {
    use proctor_evidence::{generate_keypair, Signer, Verifier};
    use std::os::unix::fs::PermissionsExt;

    let tmp = tempfile::tempdir().expect("tempdir");
    let (private, public) = generate_keypair(&tmp.path().join("k")).expect("generating keys");
    let secret = std::fs::read(&private).expect("reading the private key");
    let public_pem = std::fs::read(&public).expect("reading the public key");
    let secret_lines: Vec<String> = String::from_utf8_lossy(&secret)
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 8)
        .map(str::to_owned)
        .collect();
    assert!(!secret_lines.is_empty(), "the PEM has a body");
    let mut rng = Rng(0x5eed_0004);
    let (mut refused_pub, mut refused_priv) = (0, 0);
    let cases = 2000;
    let path = tmp.path().join("case.pem");
    for case in 0..cases {
        let m = mutate(&mut rng, &public_pem);
        let text = String::from_utf8_lossy(&m).into_owned();
        match std::panic::catch_unwind(|| Verifier::from_pem(&text)) {
            Err(_) => panic!("Verifier::from_pem panicked on public key case {case}: {text:?}"),
            Ok(Err(_)) => refused_pub += 1,
            Ok(Ok(_)) => {}
        }

        let m = mutate(&mut rng, &secret);
        std::fs::write(&path, &m).expect("writing a case");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let p = path.clone();
        match std::panic::catch_unwind(move || Signer::load(&p)) {
            Err(_) => panic!("Signer::load panicked on private key case {case}"),
            Ok(Err(e)) => {
                refused_priv += 1;
                let msg = e.to_string();
                for l in &secret_lines {
                    assert!(
                        !msg.contains(l.as_str()),
                        "private key case {case}: key material in the error: {msg}"
                    );
                }
            }
            Ok(Ok(_)) => {}
        }
    }
    // The mutations reach the parsers' refusals (a run where nearly everything parsed would
    // mean the mutator is not exercising them).
    assert!(
        refused_pub > cases / 2 && refused_priv > cases / 2,
        "only {refused_pub} public and {refused_priv} private of {cases} mutations were refused"
    );
}

/// A FIFO planted under an evidence or key name would block an ordinary open forever (it waits
/// for a writer): each is refused without hanging.
#[test]
fn fifos_under_evidence_and_key_names_do_not_hang_verify() {
    use proctor_evidence::{Signer, Verifier};
    use std::sync::mpsc;
    use std::time::Duration;

    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let alerts = out.join("alerts");
    std::fs::create_dir_all(&alerts).expect("mkdir");
    let fifos = [
        out.join("audit.jsonl"),
        alerts.join("x-00000001.cal"),
        tmp.path().join("k.pub.pem"),
        tmp.path().join("proctor.key"),
    ];
    for f in &fifos {
        let st = std::process::Command::new("mkfifo")
            .arg(f)
            .status()
            .expect("running mkfifo");
        assert!(st.success(), "mkfifo {}", f.display());
    }
    let (tx, rx) = mpsc::channel();
    let (o, k, p) = (out.clone(), fifos[2].clone(), fifos[3].clone());
    std::thread::spawn(move || {
        let r = verify_paths(std::slice::from_ref(&o), None);
        let key = Verifier::load(&k).map(|_| ()).map_err(|e| e.to_string());
        let signer = Signer::load(&p).map(|_| ()).map_err(|e| e.to_string());
        let _ = tx.send((r, key, signer));
    });
    let (r, key, signer) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("verify or a key load hung on a FIFO");
    assert_ne!(r.status, Status::Valid, "{}", r.render());
    let text = r.render();
    for f in &fifos[..2] {
        assert!(
            text.contains(&format!("{}", f.display())) && text.contains("not a regular file"),
            "{} must be named as not a regular file:\n{text}",
            f.display()
        );
    }
    for (what, res) in [("public", key), ("private", signer)] {
        let err = res.expect_err(what);
        assert!(err.contains("not a regular file"), "{what} key: {err}");
    }
}
