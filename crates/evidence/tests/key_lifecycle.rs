//! Key lifecycle: rotation announced in the chain and followed by verify from the pinned key,
//! forged rotations, and signed revocation lists.

use proctor_evidence::lifecycle::{
    revoke_key, rotate_key, Announcement, Revocation, KEYCHAIN_FILE,
};
use proctor_evidence::{
    canonical_json, generate_keypair, verify_paths, verify_paths_with, AuditLog, CertWriter,
    Signer, Status, Verifier, VerifyOptions, PRIVATE_KEY_FILE,
};
use proctor_testkit::evidence::{alert, describe, problems, record};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One sensor run into `out` with the key in `keydir`: a few records and `certs` certificates
/// (alerts numbered from `first`).
fn run(out: &Path, keydir: &Path, first: u64, certs: u64) {
    let signer = Arc::new(Signer::load(&keydir.join(PRIVATE_KEY_FILE)).expect("loading the key"));
    let mut log = AuditLog::open(out, signer.clone(), "agent-7").expect("opening the log");
    for i in 0..3 {
        log.append(&record(100 + i, 1_795_422_529_000_000_000 + u64::from(i)))
            .expect("append");
    }
    let mut w = CertWriter::new(&out.join("alerts"), signer, "host-1", None).expect("writer");
    for n in first..first + certs {
        let written = w.write(&alert(n)).expect("certificate");
        log.record_certificate(&written).expect("recording it");
    }
    drop(w);
    log.close().expect("close");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

fn pinned(keydir: &Path) -> Verifier {
    Verifier::load(&keydir.join("proctor.pub.pem")).expect("public key")
}

#[test]
fn verify_follows_a_rotation_from_the_pinned_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (keydir, out) = (tmp.path().join("keys"), tmp.path().join("out"));
    generate_keypair(&keydir).unwrap();
    let first = pinned(&keydir);
    run(&out, &keydir, 0, 2);

    let rotated = rotate_key(&keydir).expect("rotating");
    assert_eq!(rotated.old_fingerprint, first.fingerprint());
    assert_ne!(rotated.new_fingerprint, rotated.old_fingerprint);
    for p in [
        keydir.join(PRIVATE_KEY_FILE),
        keydir.join(KEYCHAIN_FILE),
        keydir.join("proctor.pub.pem"),
        rotated.retired.clone(),
    ] {
        assert_eq!(mode(&p), 0o600, "{} must be 0600", p.display());
    }
    // The retired key still loads (it may be needed to sign a revocation), the new one signs.
    assert_eq!(
        Signer::load(&rotated.retired).unwrap().fingerprint(),
        first.fingerprint()
    );
    run(&out, &keydir, 2, 2);

    // The chain carries the announcement before the new key's first checkpoint.
    let log = std::fs::read_to_string(out.join("audit.jsonl")).unwrap();
    assert!(
        log.lines().any(|l| l.contains("\"type\":\"key_rotation\"")),
        "no key_rotation record in the chain"
    );

    let r = verify_paths(std::slice::from_ref(&out), Some(&first));
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    let new = r
        .keys
        .iter()
        .find(|k| k.fingerprint == rotated.new_fingerprint)
        .unwrap_or_else(|| panic!("the new key was used: {}", describe(&r)));
    assert_eq!(new.rotated_from.as_deref(), Some(first.fingerprint()));
    assert!(
        describe(&r).contains("announced by key"),
        "{}",
        describe(&r)
    );

    // The certificates alone verify too: the announcements are published next to them.
    let r = verify_paths(&[out.join("alerts")], Some(&first));
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));

    // Two rotations chain.
    rotate_key(&keydir).expect("second rotation");
    run(&out, &keydir, 4, 1);
    let r = verify_paths(std::slice::from_ref(&out), Some(&first));
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert_eq!(r.keys.len(), 3, "{}", describe(&r));
}

/// An announcement naming the pinned key as the old one, signed by someone else.
fn forged_announcement(pinned_fp: &str, attacker: &Signer, new: &Verifier) -> Value {
    let mut v = Announcement::create(attacker, new, 1_795_422_529_000_000_000);
    v["old_fingerprint"] = Value::from(pinned_fp);
    v
}

#[test]
fn a_rotation_not_signed_by_the_old_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (keydir, out) = (tmp.path().join("keys"), tmp.path().join("out"));
    generate_keypair(&keydir).unwrap();
    let first = pinned(&keydir);
    run(&out, &keydir, 0, 1);

    // The attacker has no access to the old private key: it puts its own key in place and
    // writes an announcement that claims the pinned key handed over to it.
    let attacker_dir = tmp.path().join("attacker");
    generate_keypair(&attacker_dir).unwrap();
    let attacker = Signer::load(&attacker_dir.join(PRIVATE_KEY_FILE)).unwrap();
    let forged = forged_announcement(first.fingerprint(), &attacker, attacker.verifier());
    let mut line = canonical_json(&forged);
    line.push(b'\n');
    std::fs::write(attacker_dir.join(KEYCHAIN_FILE), &line).unwrap();
    run(&out, &attacker_dir, 1, 1);

    let r = verify_paths(std::slice::from_ref(&out), Some(&first));
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    let p = problems(&r);
    assert!(p.contains(&"forged_rotation"), "{p:?}\n{}", describe(&r));
    assert!(
        describe(&r).contains("is not signed by"),
        "the reason is named: {}",
        describe(&r)
    );
    // Nothing the attacker's key signed is accepted.
    assert!(
        !r.keys
            .iter()
            .any(|k| k.fingerprint == attacker.fingerprint()),
        "{}",
        describe(&r)
    );

    // The same announcement dropped next to the certificates alone is refused as well.
    let alerts = out.join("alerts");
    let r = verify_paths(&[alerts], Some(&first));
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    assert!(
        problems(&r).contains(&"forged_rotation"),
        "{}",
        describe(&r)
    );
}

#[test]
fn without_its_announcement_a_rotated_key_is_foreign() {
    let tmp = tempfile::tempdir().unwrap();
    let (keydir, out) = (tmp.path().join("keys"), tmp.path().join("out"));
    generate_keypair(&keydir).unwrap();
    let first = pinned(&keydir);
    rotate_key(&keydir).unwrap();
    run(&out, &keydir, 0, 1);
    // Announcement present and valid: verifies.
    let r = verify_paths(std::slice::from_ref(&out), Some(&first));
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    // Without the announcements anywhere, the new key is just a foreign key.
    std::fs::remove_file(out.join(KEYCHAIN_FILE)).unwrap();
    std::fs::remove_file(out.join("alerts").join(KEYCHAIN_FILE)).unwrap();
    let log = std::fs::read_to_string(out.join("audit.jsonl")).unwrap();
    let stripped: String = log
        .lines()
        .filter(|l| !l.contains("\"key_rotation\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(out.join("audit.jsonl"), stripped).unwrap();
    let r = verify_paths(&[out.join("alerts")], Some(&first));
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    assert!(problems(&r).contains(&"key"), "{}", describe(&r));
}

fn revoke(keydir: &Path, list: &Path, fp: &str, at: u64, reason: &str) {
    revoke_key(
        keydir,
        list,
        Revocation {
            fingerprint: fp.into(),
            revoked_at_ns: at,
            reason: reason.into(),
        },
    )
    .expect("revoking");
}

#[test]
fn certificates_signed_after_revocation_fail_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (keydir, out) = (tmp.path().join("keys"), tmp.path().join("out"));
    generate_keypair(&keydir).unwrap();
    let key = pinned(&keydir);
    run(&out, &keydir, 0, 6);
    let list: PathBuf = tmp.path().join("revoked.json");
    // alert(n) is dated 1_795_422_529_123_456_789 + n: revoke from n = 3 on.
    revoke(
        &keydir,
        &list,
        key.fingerprint(),
        1_795_422_529_123_456_792,
        "laptop stolen",
    );
    assert_eq!(mode(&list), 0o600);

    let opts = VerifyOptions {
        key: Some(key.clone()),
        revoked: Some(list.clone()),
        ..VerifyOptions::default()
    };
    let r = verify_paths_with(&[out.join("alerts")], &opts);
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    let revoked: Vec<_> = r
        .items
        .iter()
        .flat_map(|i| &i.findings)
        .filter(|f| f.problem == "revoked")
        .collect();
    assert_eq!(
        revoked.len(),
        3,
        "certificates 4..6 are revoked: {}",
        describe(&r)
    );
    assert!(revoked.iter().all(|f| f.message.contains("laptop stolen")));
    for n in ["00000001", "00000002", "00000003"] {
        assert!(
            !revoked
                .iter()
                .any(|f| f.location.contains(&format!("{n}.cal"))),
            "certificate {n} predates the revocation: {}",
            describe(&r)
        );
    }

    // Without the list, the same evidence verifies.
    let r = verify_paths(&[out.join("alerts")], Some(&key));
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
}

#[test]
fn a_revocation_list_by_an_untrusted_key_is_not_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let (keydir, out) = (tmp.path().join("keys"), tmp.path().join("out"));
    generate_keypair(&keydir).unwrap();
    let key = pinned(&keydir);
    run(&out, &keydir, 0, 1);
    let other = tmp.path().join("other");
    generate_keypair(&other).unwrap();
    let list = tmp.path().join("revoked.json");
    revoke(&other, &list, key.fingerprint(), 0, "prank");
    let opts = VerifyOptions {
        key: Some(key.clone()),
        revoked: Some(list.clone()),
        ..VerifyOptions::default()
    };
    let r = verify_paths_with(std::slice::from_ref(&out), &opts);
    assert_eq!(r.status, Status::Unchecked, "{}", describe(&r));
    assert!(
        describe(&r).contains("not a trusted key"),
        "{}",
        describe(&r)
    );

    // An edited list (an entry's time moved) fails its signature.
    revoke(
        &keydir,
        &list.with_extension("mine"),
        key.fingerprint(),
        5,
        "x",
    );
    let text = std::fs::read_to_string(list.with_extension("mine")).unwrap();
    std::fs::write(
        &list,
        text.replace("\"revoked_at_ns\":5", "\"revoked_at_ns\":6"),
    )
    .unwrap();
    let r = verify_paths_with(std::slice::from_ref(&out), &opts);
    assert_eq!(r.status, Status::Unchecked, "{}", describe(&r));
    assert!(describe(&r).contains("does not verify"), "{}", describe(&r));
}

#[test]
fn a_successor_key_may_revoke_its_predecessor() {
    let tmp = tempfile::tempdir().unwrap();
    let (keydir, out) = (tmp.path().join("keys"), tmp.path().join("out"));
    generate_keypair(&keydir).unwrap();
    let first = pinned(&keydir);
    run(&out, &keydir, 0, 1);
    rotate_key(&keydir).unwrap();
    run(&out, &keydir, 1, 1);
    // The list is signed by the new key and carries the announcement that links it to the
    // pinned one.
    let list = tmp.path().join("revoked.json");
    revoke(&keydir, &list, first.fingerprint(), 0, "compromised");
    let opts = VerifyOptions {
        key: Some(first.clone()),
        revoked: Some(list),
        ..VerifyOptions::default()
    };
    let r = verify_paths_with(std::slice::from_ref(&out), &opts);
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    let text = describe(&r);
    assert!(text.contains("compromised"), "{text}");
    // What the new key signed is fine.
    let bad: Vec<_> = r
        .items
        .iter()
        .flat_map(|i| &i.findings)
        .filter(|f| f.problem == "revoked")
        .collect();
    assert!(
        bad.iter().all(|f| f.message.contains(first.fingerprint())),
        "{text}"
    );
}

#[test]
fn a_thief_cannot_escape_revocation_by_rotating_the_stolen_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (keydir, out) = (tmp.path().join("keys"), tmp.path().join("out"));
    generate_keypair(&keydir).unwrap();
    let first = pinned(&keydir);
    run(&out, &keydir, 0, 1);
    // The owner revokes the key as of now; the thief, holding a copy, rotates it afterwards to
    // a key of its own and signs a new segment with that.
    let list = tmp.path().join("revoked.json");
    let stolen = tmp.path().join("stolen");
    std::fs::create_dir_all(&stolen).unwrap();
    for f in [PRIVATE_KEY_FILE, "proctor.pub.pem"] {
        std::fs::copy(keydir.join(f), stolen.join(f)).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(5));
    revoke(
        &keydir,
        &list,
        first.fingerprint(),
        proctor_evidence_now(),
        "key copied by an intruder",
    );
    std::thread::sleep(std::time::Duration::from_millis(5));
    rotate_key(&stolen).unwrap();
    let later = tmp.path().join("later");
    run(&later, &stolen, 1, 1);

    // Without the list the rotation is followed (the thief holds a real key)...
    let r = verify_paths(std::slice::from_ref(&later), Some(&first));
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    // ...with it, the rotation made after the revocation is refused.
    let opts = VerifyOptions {
        key: Some(first.clone()),
        revoked: Some(list),
        ..VerifyOptions::default()
    };
    let r = verify_paths_with(std::slice::from_ref(&later), &opts);
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    assert!(
        describe(&r).contains("was made after key"),
        "{}",
        describe(&r)
    );
    // The owner's evidence from before the revocation still verifies with the list.
    let r = verify_paths_with(&[out.join("alerts")], &opts);
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
}

fn proctor_evidence_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}
