//! The OCSF file output: every alert and incident is one OCSF Detection Finding line, appended
//! to a private file, even when the run's format is native; a path it cannot own is refused at
//! start.

mod common;

use common::{alert, incident, source};
use proctor_outputs::{AlertFormat, Outputs, OutputsConfig};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn cfg(path: &std::path::Path) -> OutputsConfig {
    OutputsConfig {
        ocsf_file: Some(path.to_path_buf()),
        // The other outputs keep proctor's own format; the file is OCSF all the same.
        format: AlertFormat::Native,
        ..OutputsConfig::default()
    }
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read the OCSF file")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn alerts_and_incidents_are_appended_as_ocsf_lines_to_a_private_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("findings.ocsf.jsonl");
    let mut o = Outputs::start(&cfg(&path), source()).expect("start");
    assert!(!o.is_empty());
    o.alert(&alert(1));
    o.incident(&incident());
    o.alert(&alert(2));
    let stats = o.close(Duration::from_secs(5));
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (stats[0].name.as_str(), stats[0].sent, stats[0].lost()),
        ("ocsf_file", 3, 0)
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the file holds argv: owner only");
    let v = lines(&path);
    assert_eq!(v.len(), 3);
    for l in &v {
        assert_eq!(l["class_uid"], 2004, "{l}");
        assert_eq!(l["device"]["hostname"], "testhost");
    }
    assert_eq!(v[0]["finding_info"]["uid"], "a-1");
    assert_eq!(v[1]["finding_info"]["uid"], "inc-1");
    assert_eq!(v[1]["finding_info"]["types"][0], "incident");
    assert_eq!(v[2]["finding_info"]["uid"], "a-2");

    // A second run appends; it does not truncate what the first wrote.
    let mut o = Outputs::start(&cfg(&path), source()).expect("start again");
    o.alert(&alert(3));
    o.close(Duration::from_secs(5));
    let v = lines(&path);
    assert_eq!(v.len(), 4);
    assert_eq!(v[3]["finding_info"]["uid"], "a-3");
}

#[test]
fn a_symlink_or_a_directory_at_the_path_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, b"keep\n").unwrap();
    let link = dir.path().join("findings.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = Outputs::start(&cfg(&link), source())
        .err()
        .expect("a planted link must be refused")
        .to_string();
    assert!(e.contains("findings.jsonl"), "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep\n");

    let e = Outputs::start(&cfg(dir.path()), source())
        .err()
        .expect("a directory is no file")
        .to_string();
    assert!(e.starts_with("OCSF file "), "{e}");
    let e = Outputs::start(&cfg(&dir.path().join("no/such/dir/f")), source())
        .err()
        .expect("a missing directory")
        .to_string();
    assert!(e.contains("no/such/dir/f"), "{e}");
}
