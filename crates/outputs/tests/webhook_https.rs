//! The webhook over https against a real TLS server (Python's http.server wrapped in its ssl
//! module) with a certificate from a CA made for the test: delivered when the operator names
//! that CA, refused (and counted) when the certificate is not trusted or names another host.

mod common;

use common::{alert, source};
use proctor_outputs::{AlertFormat, Outputs, OutputsConfig};
use proctor_testkit::receivers::{https_receiver, test_pki, wait_lines};
use std::path::PathBuf;
use std::time::Duration;

fn config(port: u16, ca_file: Option<PathBuf>) -> OutputsConfig {
    OutputsConfig {
        webhook: Some(format!("https://127.0.0.1:{port}/hook")),
        webhook_attempts: Some(1),
        ca_file,
        format: AlertFormat::Native,
        ..OutputsConfig::default()
    }
}

#[test]
fn an_https_receiver_signed_by_the_named_ca_gets_the_alert() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki(dir.path(), &["127.0.0.1"]);
    let out = dir.path().join("bodies.jsonl");
    let (_rx, port) = https_receiver(&pki, &out);
    let mut o = Outputs::start(&config(port, Some(pki.ca.clone())), source()).unwrap();
    o.alert(&alert(1));
    let lines = wait_lines(&out, 1, Duration::from_secs(30));
    let stats = o.close(Duration::from_secs(10));
    assert_eq!((stats[0].sent, stats[0].lost()), (1, 0), "{stats:?}");
    let a: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(a["id"], "a-1");
}

#[test]
fn an_untrusted_or_misnamed_certificate_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    // Signed by a CA nobody named: the system store does not know it.
    let pki = test_pki(dir.path(), &["127.0.0.1"]);
    let out = dir.path().join("bodies.jsonl");
    let (_rx, port) = https_receiver(&pki, &out);
    // Trusted CA, but the certificate names another host than the one connected to.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let misnamed = test_pki(&other, &["collector.example"]);
    let out2 = dir.path().join("bodies2.jsonl");
    let (_rx2, port2) = https_receiver(&misnamed, &out2);
    for cfg in [config(port, None), config(port2, Some(misnamed.ca.clone()))] {
        let mut o = Outputs::start(&cfg, source()).unwrap();
        o.alert(&alert(1));
        let stats = o.close(Duration::from_secs(20));
        assert_eq!((stats[0].sent, stats[0].failed), (0, 1), "{stats:?}");
    }
    assert!(!out.exists() && !out2.exists());
}
