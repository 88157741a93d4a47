//! Independent implementations agree with proctor: OpenSSL (`openssl pkeyutl -rawin`) and
//! Python's `cryptography` verify proctor's signatures over the canonical bytes, and proctor
//! verifies signatures and keys made by them. Also the key file formats and permissions.
//!
//! These tests need the `openssl` command and `python3` with `cryptography`; where one is missing
//! the test panics and says so (they are part of the build image, not optional).

use base64::Engine as _;
use proctor_evidence::{
    canonical_json, generate_keypair, verify_paths, CertWriter, Signer, Status, Verifier,
};
use proctor_testkit::evidence::{alert, cals, describe};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (is it installed?): {e}"));
    out
}

/// Python with `cryptography`, or a panic that says what to install.
fn python() -> Command {
    let probe = run(Command::new("python3").args(["-c", "import cryptography"]));
    assert!(
        probe.status.success(),
        "python3 cannot import `cryptography` (Debian: apt-get install python3-cryptography): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    Command::new("python3")
}

/// The signed message and the signature of a certificate file, computed from the file alone.
fn split_certificate(path: &Path) -> (Vec<u8>, Vec<u8>, Value) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let sig = v.as_object_mut().unwrap().remove("signature").unwrap();
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig.as_str().unwrap())
        .unwrap();
    (canonical_json(&v), sig, v)
}

#[test]
fn public_key_is_a_113_byte_spki_pem_and_private_key_is_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let (private, public) = generate_keypair(&tmp.path().join("k")).unwrap();
    let pem = std::fs::read(&public).unwrap();
    assert_eq!(pem.len(), 113, "{}", String::from_utf8_lossy(&pem));
    assert!(pem.starts_with(b"-----BEGIN PUBLIC KEY-----\n"));
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "private key mode {mode:o}");
    let dmode = std::fs::metadata(tmp.path().join("k"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dmode, 0o700, "key directory mode {dmode:o}");
    // Never overwritten.
    let err = generate_keypair(&tmp.path().join("k")).unwrap_err();
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");

    // The fingerprint is SHA-256 of the DER, as openssl computes it.
    let der = run(Command::new("openssl")
        .args(["pkey", "-pubin", "-outform", "DER", "-in"])
        .arg(&public));
    assert!(
        der.status.success(),
        "openssl reads the public key: {}",
        String::from_utf8_lossy(&der.stderr)
    );
    let v = Verifier::load(&public).unwrap();
    assert_eq!(v.fingerprint(), proctor_evidence::sha256_hex(&der.stdout));
    // openssl reads the private key too, and derives the same public key.
    let derived = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private));
    assert!(
        derived.status.success(),
        "{}",
        String::from_utf8_lossy(&derived.stderr)
    );
    assert_eq!(derived.stdout, pem);
}

#[test]
fn a_key_readable_by_group_or_others_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (private, _) = generate_keypair(tmp.path()).unwrap();
    assert!(Signer::load(&private).is_ok());
    for mode in [0o640, 0o604, 0o620, 0o602, 0o644, 0o666] {
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = Signer::load(&private).expect_err("a loose key must be refused");
        let msg = err.to_string();
        assert!(
            msg.contains(&private.display().to_string()),
            "names the path: {msg}"
        );
        assert!(
            msg.contains(&format!("{mode:04o}")),
            "names the mode: {msg}"
        );
        let key_text = std::fs::read_to_string(&private).unwrap();
        let body = key_text.lines().nth(1).unwrap();
        assert!(
            !msg.contains(body),
            "the error must not contain key material"
        );
    }
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(Signer::load(&private).is_ok(), "0400 is fine");
}

#[test]
fn load_or_create_creates_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let (a, created) = Signer::load_or_create(&dir).unwrap();
    assert!(created);
    let (b, created) = Signer::load_or_create(&dir).unwrap();
    assert!(!created);
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert!(
        !format!("{a:?}").contains("PRIVATE"),
        "Debug shows only the fingerprint"
    );
}

#[test]
fn openssl_verifies_proctor_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let (private, public) = generate_keypair(&tmp.path().join("keys")).unwrap();
    let s = Arc::new(Signer::load(&private).unwrap());
    let dir = tmp.path().join("alerts");
    let mut w = CertWriter::new(&dir, s, "host", None).unwrap();
    w.write(&alert(3)).unwrap();
    let cert = &cals(&dir)[0];
    let (msg, sig, _) = split_certificate(cert);
    std::fs::write(tmp.path().join("msg"), &msg).unwrap();
    std::fs::write(tmp.path().join("sig"), &sig).unwrap();
    let verify = |msg: &str| {
        run(Command::new("openssl")
            .args(["pkeyutl", "-verify", "-rawin", "-pubin", "-inkey"])
            .arg(&public)
            .arg("-in")
            .arg(tmp.path().join(msg))
            .arg("-sigfile")
            .arg(tmp.path().join("sig")))
    };
    let out = verify("msg");
    assert!(
        out.status.success(),
        "openssl rejects proctor's signature: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And openssl rejects a changed message (the check can fail).
    let mut bad = msg.clone();
    bad[10] ^= 1;
    std::fs::write(tmp.path().join("bad"), &bad).unwrap();
    assert!(
        !verify("bad").status.success(),
        "openssl must reject a changed message"
    );
}

#[test]
fn proctor_verifies_what_openssl_signs_with_an_openssl_key() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("ossl.key");
    let out = run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pubkey = tmp.path().join("ossl.pub.pem");
    let out = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&pubkey));
    assert!(out.status.success());
    let v = Verifier::load(&pubkey).unwrap();
    // proctor can sign with an openssl-made key (PKCS#8 compatibility).
    let s = Signer::load(&key).unwrap();
    assert_eq!(s.fingerprint(), v.fingerprint());

    let msg = canonical_json(&serde_json::json!({"b": [1, 2.5, "é"], "a": 1795422529123456789u64}));
    std::fs::write(tmp.path().join("msg"), &msg).unwrap();
    let out = run(Command::new("openssl")
        .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
        .arg(&key)
        .arg("-in")
        .arg(tmp.path().join("msg")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), 64);
    assert!(
        v.verify(&msg, &out.stdout),
        "proctor rejects openssl's signature"
    );
    assert!(!v.verify(b"something else", &out.stdout));
    // Ed25519 is deterministic: both implementations produce the same signature.
    assert_eq!(s.sign(&msg).to_vec(), out.stdout);
}

const PY_VERIFY: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives.serialization import load_pem_public_key
cert = json.loads(open(sys.argv[1], 'rb').read())
key = load_pem_public_key(open(sys.argv[2], 'rb').read())
sig = base64.b64decode(cert.pop('signature'))
# JCS for this content: sorted keys, no whitespace, UTF-8; the floats here print the same in
# Python and ECMAScript.
msg = json.dumps(cert, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode()
key.verify(sig, msg)
print('ok')
"#;

#[test]
fn python_cryptography_verifies_a_certificate_from_the_file_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (private, public) = generate_keypair(&tmp.path().join("keys")).unwrap();
    let s = Arc::new(Signer::load(&private).unwrap());
    let dir = tmp.path().join("alerts");
    let mut w = CertWriter::new(&dir, s, "host", Some("cd".repeat(32))).unwrap();
    w.write(&alert(1)).unwrap();
    let cert = &cals(&dir)[0];
    let out = run(python().arg("-c").arg(PY_VERIFY).arg(cert).arg(&public));
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "python rejects proctor's certificate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const PY_SIGN: &str = r#"
import base64, json, sys, hashlib
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
out = sys.argv[1]
key = Ed25519PrivateKey.generate()
pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
open(out + '/python.pub.pem', 'wb').write(pem)
alert = json.loads(sys.argv[2])
run = '20261123T000000Z-0badc0de'
cert = dict(alert, format='proctor-cal/1', run_id=run, seq=1, prev_sha256='0' * 64,
            host='py', baseline_sha256=None, key_fingerprint=hashlib.sha256(der).hexdigest())
canon = lambda o: json.dumps(o, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode()
cert['signature'] = base64.b64encode(key.sign(canon(cert))).decode()
open(out + '/' + run + '-00000001.cal', 'wb').write(canon(cert) + b'\n')
"#;

#[test]
fn proctor_verifies_a_certificate_made_by_python() {
    let tmp = tempfile::tempdir().unwrap();
    let alert = serde_json::to_string(&alert(0)).unwrap();
    let out = run(python().arg("-c").arg(PY_SIGN).arg(tmp.path()).arg(&alert));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = Verifier::load(&tmp.path().join("python.pub.pem")).unwrap();
    let r = verify_paths(&[tmp.path().to_path_buf()], Some(&key));
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert_eq!(r.keys[0].signatures, 1);
}

#[test]
fn a_wrong_public_key_file_is_refused_with_a_reason_that_echoes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (private, _) = generate_keypair(&tmp.path().join("k")).expect("generating keys");
    let secret = std::fs::read_to_string(&private).expect("reading the private key");
    // Keys of other algorithms, as openssl writes them.
    let ec = tmp.path().join("ec.pub.pem");
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 | openssl pkey -pubout -out '{}'",
        ec.display()
    )));
    assert!(
        out.status.success(),
        "openssl EC key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases = [
        ("private.pem", secret.clone(), "this is a private key"),
        ("garbage.pem", "garbage\n".to_owned(), "no PEM block"),
        ("empty.pem", String::new(), "no PEM block"),
        (
            "ec.pub.pem",
            std::fs::read_to_string(&ec).expect("reading the EC key"),
            "not an Ed25519",
        ),
    ];
    for (name, content, want) in cases {
        let path = tmp.path().join(format!("case-{name}"));
        std::fs::write(&path, &content).expect("writing a case");
        let err = Verifier::load(&path).expect_err(name).to_string();
        assert!(
            err.contains(want) && err.contains(&*path.to_string_lossy()),
            "{name}: want {want:?} and the path, got: {err}"
        );
        for line in secret.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!err.contains(line), "{name}: key material in: {err}");
        }
    }
}
