//! A whole output directory as `proctor run` leaves it: audit.jsonl, alerts/ and the public
//! keys. The audit log records each certificate, so deleting the last one (which the
//! certificates alone cannot show) is detected too.

use proctor_evidence::{verify_paths, AuditLog, CertWriter, Status};
use proctor_testkit::evidence::{alert, cals, describe, problems, record, signer};
use std::path::{Path, PathBuf};

fn make_run(out: &Path, alerts: u64) -> std::sync::Arc<proctor_evidence::Signer> {
    let s = signer();
    let mut log = AuditLog::open(out, s.clone(), "agent-7").unwrap();
    let mut certs = CertWriter::new(&out.join("alerts"), s.clone(), "host-1", None).unwrap();
    for i in 0..alerts {
        log.append(&record(i as u32, i)).unwrap();
        let w = certs.write(&alert(i)).unwrap();
        log.record_certificate(&w).unwrap();
    }
    log.close().unwrap();
    s
}

#[test]
fn a_run_directory_verifies_with_the_keys_found_next_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("proctor-out");
    let s = make_run(&out, 3);
    let r = verify_paths(std::slice::from_ref(&out), None);
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert_eq!(
        r.items.len(),
        2,
        "the log and the certificates: {}",
        describe(&r)
    );
    assert!(
        r.items[1].summary.contains("3 recorded in the audit log"),
        "{}",
        describe(&r)
    );
    assert_eq!(r.keys.len(), 1);
    assert_eq!(r.keys[0].fingerprint, s.fingerprint());
    assert!(out.join("proctor.pub.pem").exists());
    assert!(
        !r.render().contains("note:"),
        "nothing to note: {}",
        r.render()
    );
    assert!(out.join("alerts/proctor.pub.pem").exists());
}

#[test]
fn deleting_the_last_certificate_is_caught_by_the_audit_log() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("proctor-out");
    let s = make_run(&out, 3);
    let files: Vec<PathBuf> = cals(&out.join("alerts"));
    std::fs::remove_file(&files[2]).unwrap();
    let r = verify_paths(std::slice::from_ref(&out), Some(s.verifier()));
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    assert_eq!(problems(&r), vec!["missing"], "{}", describe(&r));
    let name = files[2].file_name().unwrap().to_string_lossy().into_owned();
    assert!(r.render().contains(&name), "names the file: {}", r.render());

    // The whole alerts/ directory gone.
    std::fs::remove_dir_all(out.join("alerts")).unwrap();
    let r = verify_paths(std::slice::from_ref(&out), Some(s.verifier()));
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    assert_eq!(problems(&r).len(), 3, "{}", describe(&r));
}

#[test]
fn a_swapped_public_key_next_to_the_data_cannot_vouch_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("proctor-out");
    let s = make_run(&out, 1);
    let attacker = proctor_evidence::Signer::generate().unwrap();
    for p in [
        out.join("proctor.pub.pem"),
        out.join("alerts/proctor.pub.pem"),
    ] {
        std::fs::write(&p, attacker.verifier().to_pem()).unwrap();
    }
    // The data names the real key's fingerprint, which no adjacent key has any more.
    let r = verify_paths(std::slice::from_ref(&out), None);
    assert_eq!(r.status, Status::Unchecked, "{}", describe(&r));
    assert_eq!(r.exit_code(), 2);
    assert!(
        r.render().contains(s.fingerprint()),
        "names the missing key: {}",
        r.render()
    );
    // With the right key pinned, everything verifies.
    let r = verify_paths(std::slice::from_ref(&out), Some(s.verifier()));
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert!(r.keys.iter().all(|k| k.pinned));
}

#[test]
fn a_certificate_copied_in_from_another_run_is_noted() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("proctor-out");
    let s = make_run(&out, 1);
    let mut other = CertWriter::new(&tmp.path().join("elsewhere"), s.clone(), "h", None).unwrap();
    let w = other.write(&alert(9)).unwrap();
    let copied = out.join("alerts").join(w.path.file_name().unwrap());
    std::fs::copy(&w.path, &copied).unwrap();
    let r = verify_paths(std::slice::from_ref(&out), Some(s.verifier()));
    assert_eq!(
        r.status,
        Status::Valid,
        "genuine, only out of place: {}",
        describe(&r)
    );
    let f = r.items[1]
        .findings
        .iter()
        .find(|f| f.problem == "unrecorded")
        .unwrap_or_else(|| panic!("{}", describe(&r)));
    assert_eq!(f.location, copied.display().to_string());
}

#[test]
fn the_private_key_appears_in_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let (private, _) = proctor_evidence::generate_keypair(&tmp.path().join("keys")).unwrap();
    let s = std::sync::Arc::new(proctor_evidence::Signer::load(&private).unwrap());
    let out = tmp.path().join("out");
    let mut log = AuditLog::open(&out, s.clone(), "a").unwrap();
    let mut certs = CertWriter::new(&out.join("alerts"), s, "h", None).unwrap();
    let w = certs.write(&alert(0)).unwrap();
    log.record_certificate(&w).unwrap();
    log.close().unwrap();
    // The PKCS#8 body, and the raw 32-byte seed in base64 and hex.
    let pem = std::fs::read_to_string(&private).unwrap();
    let body = pem.lines().nth(1).expect("PEM body").to_string();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .unwrap();
    let seed = &der[der.len() - 32..];
    let needles = [
        body.clone(),
        base64::engine::general_purpose::STANDARD.encode(seed),
        hex_lower(seed),
    ];
    let mut stack = vec![out];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            for n in &needles {
                assert!(
                    !text.contains(n.as_str()),
                    "{} contains private key material",
                    p.display()
                );
            }
            assert!(!text.contains("PRIVATE"), "{}", p.display());
        }
    }
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Certificates alone cannot show a deleted last certificate; the report says so, and points to
/// the run directory when its audit log is right there.
#[test]
fn certificates_checked_without_their_audit_log_say_what_that_cannot_show() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("proctor-out");
    let s = make_run(&out, 3);
    let alerts = out.join("alerts");
    std::fs::remove_file(&cals(&alerts)[2]).expect("deleting the last certificate");

    let r = verify_paths(std::slice::from_ref(&alerts), Some(s.verifier()));
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    let text = r.render();
    let want = format!(
        "not checked against {}: verify the run directory {}",
        out.join("audit.jsonl").display(),
        out.display()
    );
    assert!(text.contains(&want), "want {want:?} in:\n{text}");
    // The run directory then catches the deletion.
    let r = verify_paths(std::slice::from_ref(&out), Some(s.verifier()));
    assert_eq!(problems(&r), vec!["missing"], "{}", describe(&r));

    // A copy of the certificates away from any log.
    let lone = tmp.path().join("handed-over");
    std::fs::create_dir(&lone).expect("mkdir");
    for f in cals(&alerts) {
        std::fs::copy(&f, lone.join(f.file_name().expect("name"))).expect("copy");
    }
    let r = verify_paths(std::slice::from_ref(&lone), Some(s.verifier()));
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert!(
        r.render()
            .contains("a run's deleted last certificate(s) cannot"),
        "{}",
        r.render()
    );
}
