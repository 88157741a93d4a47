//! Certificates: what is written, and that every kind of tampering is detected with the right
//! message.

use proctor_evidence::{verify_paths, CertWriter, Signer, Status, Verifier};
use proctor_testkit::evidence::{alert, cals, describe, problems, signer};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A directory with `n` certificates of one run; returns (tempdir, alerts dir, public key).
fn run_with_certs(n: u64) -> (tempfile::TempDir, PathBuf, Verifier) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("alerts");
    let s = signer();
    let key = s.verifier().clone();
    let mut w = CertWriter::new(&dir, s, "host-1", Some("ab".repeat(32))).expect("cert writer");
    for i in 0..n {
        let written = w.write(&alert(i)).expect("writing a certificate");
        assert_eq!(written.seq, i + 1, "seq counts from 1");
        assert!(written.path.exists(), "{} written", written.path.display());
    }
    (tmp, dir, key)
}

fn verify_dir(dir: &Path, key: &Verifier) -> proctor_evidence::Report {
    verify_paths(&[dir.to_path_buf()], Some(key))
}

#[test]
fn fresh_certificates_verify_with_pinned_and_adjacent_keys() {
    let (_t, dir, key) = run_with_certs(3);
    let r = verify_dir(&dir, &key);
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert_eq!(r.exit_code(), 0);
    assert!(r.keys[0].pinned, "the key given was used: {}", describe(&r));
    assert_eq!(r.keys[0].signatures, 3);

    // Without --key, the public key proctor wrote next to the certificates is used, and the
    // report says it was not pinned.
    let r = verify_paths(std::slice::from_ref(&dir), None);
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert!(!r.keys[0].pinned);
    assert!(
        r.render().contains("not pinned"),
        "report must say the key was found next to the data: {}",
        r.render()
    );
}

#[test]
fn certificate_content_and_format() {
    let (_t, dir, key) = run_with_certs(2);
    let files = cals(&dir);
    assert_eq!(files.len(), 2);
    let bytes = std::fs::read(&files[1]).expect("read");
    assert_eq!(bytes.last(), Some(&b'\n'), "one line with a newline");
    assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
    let v: Value = serde_json::from_slice(&bytes).expect("JSON");
    for k in [
        "agent_id",
        "ts_ns",
        "host",
        "channel",
        "kind",
        "divergence",
        "syscall_trace",
        "action",
        "format",
        "key_fingerprint",
        "baseline_sha256",
        "seq",
        "prev_sha256",
        "signature",
        "run_id",
        "summary",
        "trigger",
        "pid",
        "exec_id",
        "count",
    ] {
        assert!(v.get(k).is_some(), "certificate has `{k}`: {v}");
    }
    assert_eq!(v["format"], "proctor-cal/1");
    assert_eq!(v["seq"], 2);
    assert_eq!(v["action"], "ALERT_EMITTED");
    assert_eq!(v["key_fingerprint"], key.fingerprint());
    // The exact nanosecond timestamp survives (no rounding through a double).
    assert_eq!(v["ts_ns"].as_u64(), Some(1_795_422_529_123_456_790));
    let first = std::fs::read(&files[0]).expect("read");
    assert_eq!(v["prev_sha256"], proctor_evidence::sha256_hex(&first));
    let name = files[1].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.ends_with("-00000002.cal"),
        "file name sorts by seq: {name}"
    );
    // The signature is base64 of 64 bytes.
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(v["signature"].as_str().unwrap())
        .expect("base64");
    assert_eq!(sig.len(), 64);
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Flipping any single bit pattern of any byte of a certificate makes it invalid.
#[test]
fn flipping_any_byte_is_detected() {
    let (_t, dir, key) = run_with_certs(1);
    let path = cals(&dir)[0].clone();
    let orig = std::fs::read(&path).expect("read");
    for i in 0..orig.len() {
        for mask in [0x01u8, 0x20, 0x80] {
            let mut bytes = orig.clone();
            bytes[i] ^= mask;
            std::fs::write(&path, &bytes).expect("write");
            let r = verify_paths(std::slice::from_ref(&path), Some(&key));
            assert_eq!(
                r.status,
                Status::Invalid,
                "byte {i} ^ {mask:#04x} ({:?} -> {:?}) not detected: {}",
                orig[i] as char,
                bytes[i] as char,
                describe(&r)
            );
        }
    }
    std::fs::write(&path, &orig).expect("restore");
    assert_eq!(verify_paths(&[path], Some(&key)).status, Status::Valid);
}

/// Re-encode a certificate after changing one member (what an editor with `jq` would do).
fn edit(path: &Path, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let bytes = std::fs::read(path).expect("read");
    let mut v: Value = serde_json::from_slice(&bytes).expect("JSON");
    f(v.as_object_mut().expect("object"));
    let mut out = proctor_evidence::canonical_json(&v);
    out.push(b'\n');
    std::fs::write(path, out).expect("write");
}

#[test]
fn editing_any_field_breaks_the_signature() {
    let (_t, dir, key) = run_with_certs(1);
    let path = cals(&dir)[0].clone();
    let orig = std::fs::read(&path).expect("read");
    let v: Value = serde_json::from_slice(&orig).unwrap();
    for field in v.as_object().unwrap().keys() {
        if field == "signature" {
            continue;
        }
        edit(&path, |m| {
            let new = match &m[field] {
                Value::String(s) if s.chars().all(|c| c.is_ascii_hexdigit()) && !s.is_empty() => {
                    Value::from(format!(
                        "{}{}",
                        if s.starts_with('0') { "1" } else { "0" },
                        &s[1..]
                    ))
                }
                Value::String(s) => Value::from(format!("{s}x")),
                Value::Number(n) if n.is_u64() => Value::from(n.as_u64().unwrap() + 1),
                Value::Number(n) => Value::from(n.as_f64().unwrap() * 2.0 + 1.0),
                Value::Array(_) => Value::Array(vec![]),
                Value::Null => Value::from("00".repeat(32)),
                other => panic!("unexpected member {field}: {other}"),
            };
            m.insert(field.clone(), new);
        });
        let r = verify_paths(std::slice::from_ref(&path), Some(&key));
        assert_eq!(
            r.status,
            Status::Invalid,
            "edit of `{field}` not detected: {}",
            describe(&r)
        );
        let p = problems(&r);
        let want = if field == "key_fingerprint" {
            "key"
        } else if field == "format" {
            "format"
        } else {
            "signature"
        };
        assert!(
            p.contains(&want),
            "edit of `{field}`: expected `{want}`, got {p:?}: {}",
            describe(&r)
        );
        std::fs::write(&path, &orig).expect("restore");
    }
}

#[test]
fn reencoding_is_reported_as_non_canonical() {
    let (_t, dir, key) = run_with_certs(1);
    let path = cals(&dir)[0].clone();
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
    let r = verify_paths(std::slice::from_ref(&path), Some(&key));
    assert_eq!(problems(&r), vec!["non_canonical"], "{}", describe(&r));
}

#[test]
fn deleting_a_certificate_is_a_gap() {
    let (_t, dir, key) = run_with_certs(4);
    let files = cals(&dir);
    std::fs::remove_file(&files[1]).unwrap();
    let r = verify_dir(&dir, &key);
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    let text = r.render();
    assert!(problems(&r).contains(&"missing"), "{text}");
    assert!(
        text.contains("seq 2 is missing"),
        "names the missing seq: {text}"
    );
    // Deleting the first is a gap too.
    std::fs::remove_file(&files[0]).unwrap();
    let r = verify_dir(&dir, &key);
    assert!(
        r.render().contains("seqs 1..2 are missing"),
        "{}",
        r.render()
    );
}

#[test]
fn reordering_by_renaming_is_detected() {
    let (_t, dir, key) = run_with_certs(3);
    let files = cals(&dir);
    // Swap seq 2 and 3 by name.
    let tmp = dir.join("swap");
    std::fs::rename(&files[1], &tmp).unwrap();
    std::fs::rename(&files[2], &files[1]).unwrap();
    std::fs::rename(&tmp, &files[2]).unwrap();
    let r = verify_dir(&dir, &key);
    assert_eq!(r.status, Status::Invalid);
    assert!(problems(&r).contains(&"renamed"), "{}", describe(&r));
}

#[test]
fn duplicating_a_certificate_is_detected() {
    let (_t, dir, key) = run_with_certs(2);
    let files = cals(&dir);
    let copy = dir.join(format!(
        "{}.cal",
        files[0]
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .replace("-00000001", "-00000001-copy")
    ));
    std::fs::copy(&files[0], &copy).unwrap();
    let r = verify_dir(&dir, &key);
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    // The copy's name does not match its content; the content is a duplicate of seq 1.
    assert!(problems(&r).contains(&"renamed"), "{}", describe(&r));

    // A copy into another directory given together with the original is a duplicate.
    let other = dir.parent().unwrap().join("elsewhere");
    std::fs::create_dir(&other).unwrap();
    let twin = other.join(files[0].file_name().unwrap());
    std::fs::copy(&files[0], &twin).unwrap();
    std::fs::remove_file(&copy).unwrap();
    let r = verify_paths(&[files[0].clone(), twin, files[1].clone()], Some(&key));
    assert!(problems(&r).contains(&"duplicate"), "{}", describe(&r));
    assert!(r.render().contains("duplicated copies"), "{}", r.render());
}

/// Even the key holder cannot swap in a different certificate for a seq: prev_sha256 of the
/// next one no longer matches.
#[test]
fn replacing_a_certificate_breaks_the_prev_sha256_link() {
    use base64::Engine as _;
    let s = signer();
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let mut w = CertWriter::new(&a, s.clone(), "h", None).unwrap();
    for i in 0..3 {
        w.write(&alert(i)).unwrap();
    }
    let files = cals(&a);
    assert_eq!(
        verify_paths(std::slice::from_ref(&a), Some(s.verifier())).status,
        Status::Valid
    );
    // Re-sign seq 2 with a different summary, as only the key holder could.
    let mut v: Value = serde_json::from_slice(&std::fs::read(&files[1]).unwrap()).unwrap();
    let m = v.as_object_mut().unwrap();
    m.insert("summary".into(), Value::from("nothing to see"));
    m.remove("signature");
    let sig = s.sign(&proctor_evidence::canonical_json(&v));
    v["signature"] = Value::from(base64::engine::general_purpose::STANDARD.encode(sig));
    let mut bytes = proctor_evidence::canonical_json(&v);
    bytes.push(b'\n');
    std::fs::write(&files[1], bytes).unwrap();
    let r = verify_paths(&[a], Some(s.verifier()));
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    assert_eq!(problems(&r), vec!["chain"], "{}", describe(&r));
    assert!(
        r.render().contains("00000003.cal"),
        "names seq 3's file: {}",
        r.render()
    );
}

#[test]
fn truncated_certificates_are_detected() {
    let (_t, dir, key) = run_with_certs(3);
    let files = cals(&dir);
    let bytes = std::fs::read(&files[2]).unwrap();
    std::fs::write(&files[2], &bytes[..bytes.len() / 2]).unwrap();
    let r = verify_dir(&dir, &key);
    assert!(problems(&r).contains(&"truncated"), "{}", describe(&r));
    std::fs::write(&files[2], &bytes[..bytes.len() - 1]).unwrap();
    let r = verify_dir(&dir, &key);
    assert!(problems(&r).contains(&"truncated"), "{}", describe(&r));
    std::fs::write(&files[2], b"").unwrap();
    let r = verify_dir(&dir, &key);
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
}

#[test]
fn a_different_key_is_invalid_when_pinned_and_unchecked_when_absent() {
    let (_t, dir, _key) = run_with_certs(1);
    let other = Signer::generate().unwrap();
    let r = verify_dir(&dir, other.verifier());
    assert_eq!(r.status, Status::Invalid);
    assert!(problems(&r).contains(&"key"), "{}", describe(&r));
    assert!(
        r.render().contains("not by the key given with --key"),
        "{}",
        r.render()
    );

    // No key anywhere: could not check (exit 2).
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "pem") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let r = verify_paths(&[dir], None);
    assert_eq!(r.status, Status::Unchecked, "{}", describe(&r));
    assert_eq!(r.exit_code(), 2);
}

#[test]
fn a_certificate_signed_by_a_swapped_key_is_reported_with_that_key() {
    // An attacker replaces the adjacent public key and re-signs: without --key the report
    // must say which key it trusted (and that it was not pinned); with --key it fails.
    let (_t, dir, key) = run_with_certs(1);
    let attacker = Signer::generate().unwrap();
    let mut w = CertWriter::new(
        &dir.parent().unwrap().join("forged"),
        std::sync::Arc::new(attacker),
        "h",
        None,
    )
    .unwrap();
    let forged = w.write(&alert(0)).unwrap();
    let r = verify_paths(std::slice::from_ref(&forged.path), None);
    assert_eq!(r.status, Status::Valid);
    assert!(
        !r.keys[0].pinned && r.keys[0].fingerprint != key.fingerprint(),
        "{}",
        describe(&r)
    );
    let r = verify_paths(&[forged.path], Some(&key));
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
}

#[test]
fn runs_sort_and_verify_independently() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("alerts");
    let s = signer();
    for run in 0..2 {
        let mut w = CertWriter::new(&dir, s.clone(), "h", None).unwrap();
        for i in 0..2 {
            w.write(&alert(run * 10 + i)).unwrap();
        }
    }
    let r = verify_paths(std::slice::from_ref(&dir), Some(s.verifier()));
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert!(
        r.items[0].summary.contains("in 2 run(s)"),
        "{}",
        describe(&r)
    );
}

#[test]
fn a_non_finite_divergence_is_written_as_null_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let s = signer();
    let mut w = CertWriter::new(tmp.path(), s.clone(), "h", None).unwrap();
    let mut a = alert(0);
    a.divergence = f64::NAN;
    let written = w.write(&a).unwrap();
    let v: Value = serde_json::from_slice(&std::fs::read(&written.path).unwrap()).unwrap();
    assert_eq!(v["divergence"], Value::Null);
    let r = verify_paths(std::slice::from_ref(&written.path), Some(s.verifier()));
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
}

/// One edited certificate in a directory is one finding, naming that file (not also a gap).
#[test]
fn one_edited_certificate_in_a_directory_is_one_finding() {
    let (_t, dir, key) = run_with_certs(3);
    let files = cals(&dir);
    edit(&files[1], |m| {
        m.insert("summary".into(), Value::from("benign"));
    });
    let r = verify_dir(&dir, &key);
    assert_eq!(problems(&r), vec!["signature"], "{}", describe(&r));
    let f = &r.items[0].findings[0];
    assert_eq!(f.location, files[1].display().to_string());
}
