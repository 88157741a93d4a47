//! Trusted time: RFC 3161 tokens from a local TSA (`openssl ts -reply` behind a Python HTTP
//! server on 127.0.0.1, tests/data/tsa.py) on certificates and checkpoints, checked offline.
//! One test function: the writers read the TSA URL from the environment, which is
//! process-wide.

use proctor_evidence::tsa::{stamp_dir, TSA_URL_ENV};
use proctor_evidence::{verify_paths_with, AuditLog, CertWriter, Status, VerifyOptions};
use proctor_testkit::evidence::{alert, describe, problems, record, signer};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

struct Tsa {
    child: Child,
    url: String,
    ca: PathBuf,
}

impl Drop for Tsa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tsa(work: &Path) -> Tsa {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tsa.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(work)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the test TSA");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the TSA prints its port");
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the test TSA did not start (openssl missing?): {line:?}"));
    Tsa {
        child,
        url: format!("http://127.0.0.1:{port}/"),
        ca: work.join("ca.crt"),
    }
}

fn write_run(out: &Path, s: &std::sync::Arc<proctor_evidence::Signer>, certs: u64) {
    let mut log = AuditLog::open(out, s.clone(), "agent-7").unwrap();
    log.append(&record(10, 1_795_422_529_000_000_000)).unwrap();
    let mut w = CertWriter::new(&out.join("alerts"), s.clone(), "host-1", None).unwrap();
    for n in 0..certs {
        let written = w.write(&alert(n)).unwrap();
        log.record_certificate(&written).unwrap();
    }
    drop(w);
    log.close().unwrap();
}

fn tokens(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|e| {
            e.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "tsr"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn tokens_from_a_local_tsa_are_written_and_checked_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let tsa = start_tsa(&tmp.path().join("tsa"));
    let s = signer();
    let key = s.verifier().clone();

    // During the run: the writers stamp each certificate and checkpoint in the background.
    let out = tmp.path().join("out");
    std::env::set_var(TSA_URL_ENV, &tsa.url);
    write_run(&out, &s, 2);
    std::env::remove_var(TSA_URL_ENV);
    let cert_tokens = tokens(&out.join("alerts"));
    let cp_tokens = tokens(&out.join("timestamps"));
    assert_eq!(cert_tokens.len(), 2, "one token per certificate");
    assert!(
        cp_tokens.len() >= 2,
        "tokens for the checkpoints: {cp_tokens:?}"
    );
    for t in cert_tokens.iter().chain(&cp_tokens) {
        let mode = std::fs::metadata(t).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", t.display());
    }

    let with_tsa = VerifyOptions {
        key: Some(key.clone()),
        tsa_cert: Some(tsa.ca.clone()),
        ..VerifyOptions::default()
    };
    let r = verify_paths_with(std::slice::from_ref(&out), &with_tsa);
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert_eq!(
        r.trusted_time.verified as usize,
        cert_tokens.len() + cp_tokens.len(),
        "{}",
        describe(&r)
    );
    assert!(describe(&r).contains("verified against the TSA certificate"));

    // An auditor with openssl alone checks the same token.
    let cal = cert_tokens[0].with_extension("");
    let ok = Command::new("openssl")
        .args(["ts", "-verify", "-token_in", "-in"])
        .arg(&cert_tokens[0])
        .arg("-data")
        .arg(&cal)
        .arg("-CAfile")
        .arg(&tsa.ca)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // Without --tsa-cert the tokens are said to be unchecked.
    let r = verify_paths_with(
        std::slice::from_ref(&out),
        &VerifyOptions {
            key: Some(key.clone()),
            ..VerifyOptions::default()
        },
    );
    assert_eq!(r.status, Status::Valid);
    assert!(describe(&r).contains("not checked"), "{}", describe(&r));

    // A token moved onto another certificate stamps other data.
    let moved = tmp.path().join("moved");
    copy_dir(&out, &moved);
    let t = tokens(&moved.join("alerts"));
    std::fs::copy(&t[0], &t[1]).unwrap();
    let r = verify_paths_with(std::slice::from_ref(&moved), &with_tsa);
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    assert!(problems(&r).contains(&"timestamp"), "{}", describe(&r));
    assert!(
        describe(&r).contains("belongs to other data"),
        "{}",
        describe(&r)
    );

    // A token whose signature was altered.
    let forged = tmp.path().join("forged");
    copy_dir(&out, &forged);
    let t = tokens(&forged.join("alerts"));
    let mut bytes = std::fs::read(&t[0]).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x01;
    std::fs::write(&t[0], bytes).unwrap();
    let r = verify_paths_with(std::slice::from_ref(&forged), &with_tsa);
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    assert!(problems(&r).contains(&"timestamp"), "{}", describe(&r));

    // Checked against another authority's certificate, the tokens do not chain.
    let other = tmp.path().join("other-ca");
    std::fs::create_dir_all(&other).unwrap();
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=other",
        ])
        .arg("-keyout")
        .arg(other.join("k"))
        .arg("-out")
        .arg(other.join("ca.crt"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let r = verify_paths_with(
        std::slice::from_ref(&out),
        &VerifyOptions {
            key: Some(key.clone()),
            tsa_cert: Some(other.join("ca.crt")),
            ..VerifyOptions::default()
        },
    );
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    assert!(
        describe(&r).contains("does not verify with the TSA certificate")
            || describe(&r).contains("does not chain"),
        "{}",
        describe(&r)
    );

    // A run without a TSA says plainly that its times are the host's clock; stamping it
    // afterwards gives every certificate and checkpoint a token.
    let plain = tmp.path().join("plain");
    write_run(&plain, &s, 3);
    let r = verify_paths_with(std::slice::from_ref(&plain), &with_tsa);
    assert!(describe(&r).contains("host's clock"), "{}", describe(&r));
    let done = stamp_dir(&plain, &tsa.url).expect("stamping afterwards");
    assert_eq!(done.certificates, 3);
    assert!(done.checkpoints >= 2);
    let again = stamp_dir(&plain, &tsa.url).unwrap();
    assert_eq!(
        again.certificates + again.checkpoints,
        0,
        "nothing is stamped twice"
    );
    let r = verify_paths_with(std::slice::from_ref(&plain), &with_tsa);
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert_eq!(
        r.trusted_time.verified as usize,
        done.certificates + done.checkpoints
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
