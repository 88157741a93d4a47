#![cfg(feature = "kernel-tests")]
//! The outputs end to end: a real run whose alerts reach a real rsyslogd (OCSF in RFC 5424),
//! an HTTP receiver and an OTLP receiver (opentelemetry-proto, `make otlp-venv`), carry who
//! and where, and, when a receiver is gone, show up as `lost` records rather than vanish.

use proctor_testkit::receivers::{
    free_port, http_receiver, otlp_python, otlp_receiver, rsyslogd, wait_lines,
};
use proctor_testkit::{run_under, PATIENCE};

/// After a one-second baseline, the shell starts bash: a shell spawn alert.
const AGENT: [&str; 3] = [
    "/bin/sh",
    "-c",
    "sleep 2; /bin/bash -c 'id; true' >/dev/null",
];

#[test]
fn alerts_reach_rsyslogd_a_webhook_and_otlp_with_their_identity() {
    let dir = tempfile::tempdir().unwrap();
    let Some(r) = rsyslogd(dir.path()) else {
        panic!("rsyslogd is needed (make deps installs rsyslog)");
    };
    let bodies = dir.path().join("bodies.jsonl");
    let (_web, port) = http_receiver(1, &bodies, 0.0);
    let syslog = format!("tcp://127.0.0.1:{}", r.tcp);
    let webhook = format!("http://127.0.0.1:{port}/hook");
    let python = otlp_python().expect("make otlp-venv");
    let otlp_out = dir.path().join("otlp.jsonl");
    let (_otlp, otlp_port) = otlp_receiver(&python, &otlp_out);
    let otlp = format!("http://127.0.0.1:{otlp_port}/v1/logs");
    let ocsf_file = dir.path().join("findings.ocsf.jsonl");
    let run = run_under(
        &[
            "--baseline",
            "1s",
            "--syslog",
            &syslog,
            "--webhook",
            &webhook,
            "--otlp",
            &otlp,
            "--alert-format",
            "ocsf",
            "--ocsf-file",
            ocsf_file.to_str().unwrap(),
        ],
        &AGENT,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let alerts = run.of_type("alert");
    assert!(!alerts.is_empty(), "no alert: {}", run.stderr());
    let host = proctor_evidence::hostname();
    for a in &alerts {
        assert_eq!(a["host"], host.as_str(), "{a}");
        assert_eq!(a["uid"], 0, "{a}");
        assert_eq!(a["user"], "root", "{a}");
        let cert = run
            .dir
            .path()
            .join("alerts")
            .join(a["certificate"].as_str().unwrap());
        assert!(cert.exists(), "{a}");
        let signed: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&cert).unwrap()).unwrap();
        assert_eq!(signed["run_id"], a["run_id"]);
    }
    assert!(
        run.of_type("lost")
            .iter()
            .all(|l| !l["what"].as_str().unwrap_or("").starts_with("output_")),
        "{:?}",
        run.of_type("lost")
    );
    // rsyslogd: one OCSF finding per alert (plus incidents), the alert's id in both places.
    let lines = wait_lines(&r.out, alerts.len(), PATIENCE);
    for a in &alerts {
        let id = a["id"].as_str().unwrap();
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("id=\"{id}\"")))
            .unwrap_or_else(|| panic!("alert {id} not in rsyslogd's log: {lines:#?}"));
        let f: Vec<&str> = line.splitn(9, '|').collect();
        assert_eq!(f[1], "local0", "{line}");
        assert_eq!(f[6], a["kind"].as_str().unwrap(), "{line}");
        let finding: serde_json::Value = serde_json::from_str(f[8].trim_start()).unwrap();
        assert_eq!(finding["class_uid"], 2004);
        assert_eq!(finding["finding_info"]["uid"], id);
        assert_eq!(finding["actor"]["user"]["name"], "root");
    }
    // The webhook refused the first POST (503) and got every item after the retry.
    let posted = wait_lines(&bodies, alerts.len(), PATIENCE);
    let ids: Vec<serde_json::Value> = posted
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["finding_info"]["uid"].clone()
        })
        .collect();
    for a in &alerts {
        assert!(ids.contains(&a["id"]), "{} not posted: {ids:?}", a["id"]);
    }
    // The OTLP receiver decoded one log record per alert, its body the same finding.
    let logs = wait_lines(&otlp_out, alerts.len(), PATIENCE);
    let bodies: Vec<serde_json::Value> = logs
        .iter()
        .map(|l| {
            let req: serde_json::Value = serde_json::from_str(l).unwrap();
            let body = &req["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"];
            serde_json::from_str(body["stringValue"].as_str().unwrap()).unwrap()
        })
        .collect();
    for a in &alerts {
        assert!(
            bodies.iter().any(|b| b["finding_info"]["uid"] == a["id"]),
            "{} not in OTLP: {bodies:?}",
            a["id"]
        );
    }
    // The OCSF file: written by the end of the run, private, one finding per alert.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&ocsf_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let found: Vec<serde_json::Value> = std::fs::read_to_string(&ocsf_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for a in &alerts {
        assert!(
            found
                .iter()
                .any(|f| f["class_uid"] == 2004 && f["finding_info"]["uid"] == a["id"]),
            "{} not in the OCSF file: {found:?}",
            a["id"]
        );
    }
    let v = proctor_testkit::proctor()
        .arg("verify")
        .arg(run.dir.path())
        .output()
        .unwrap();
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );
}

#[test]
fn a_receiver_that_is_gone_leaves_a_lost_record() {
    let port = free_port(false);
    let webhook = format!("http://127.0.0.1:{port}/hook");
    let run = run_under(
        &[
            "--baseline",
            "1s",
            "--webhook",
            &webhook,
            "--webhook-attempts",
            "1",
        ],
        &AGENT,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let alerts = run.of_type("alert").len() as u64;
    assert!(alerts > 0, "no alert: {}", run.stderr());
    let lost: u64 = run
        .of_type("lost")
        .iter()
        .filter(|l| l["what"] == "output_webhook")
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    let incidents = run.of_type("incident").len() as u64;
    assert_eq!(lost, alerts + incidents, "{:?}", run.of_type("lost"));
}

#[test]
fn a_bad_target_is_a_usage_error_before_the_agent_starts() {
    for bad in [
        ["--syslog", "udp://nohost"],
        ["--webhook", "ftp://example.com/x"],
        ["--outputs-ca", "/nonexistent-dir/ca.pem"],
        ["--ocsf-file", "/nonexistent-dir/findings.jsonl"],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = proctor_testkit::run_command(dir.path(), &bad, &["/bin/true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = proctor_testkit::one_line_error(&out);
        assert!(err.contains(bad[1]), "{err}");
    }
}

/// An alerts file small enough to rotate several times in one run: every alert and incident
/// is in exactly one of the files, each 0600 and under the limit, no more files than asked
/// kept, and the audit log beside it still verifies (rotation never touches the evidence).
#[test]
fn the_alerts_file_rotates_by_size_and_the_run_still_verifies() {
    use std::os::unix::fs::MetadataExt;
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("alerts.jsonl");
    let agent = [
        "/bin/sh",
        "-c",
        "sleep 2; /bin/bash -c 'id' >/dev/null; /bin/dash -c 'id' >/dev/null; \
         /usr/bin/perl -e 1; /bin/bash -c 'cat /etc/hostname' >/dev/null",
    ];
    let run = run_under(
        &[
            "--baseline",
            "1s",
            "--alerts-file",
            file.to_str().unwrap(),
            "--alerts-file-max-bytes",
            "4096",
            "--alerts-file-keep",
            "50",
        ],
        &agent,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let alerts = run.of_type("alert");
    let incidents = run.of_type("incident");
    assert!(
        alerts.len() >= 2,
        "too few alerts to rotate: {}",
        run.stderr()
    );
    let mut files = vec![file.clone()];
    files.extend((1..=50).map(|n| out.path().join(format!("alerts.jsonl.{n}"))));
    let mut lines = Vec::new();
    for f in files.iter().filter(|f| f.exists()) {
        let m = std::fs::metadata(f).unwrap();
        assert_eq!(m.mode() & 0o777, 0o600, "{}", f.display());
        assert!(m.len() <= 4096 || std::fs::read_to_string(f).unwrap().lines().count() == 1);
        for l in std::fs::read_to_string(f).unwrap().lines() {
            lines.push(serde_json::from_str::<serde_json::Value>(l).expect("JSON lines"));
        }
    }
    assert!(files[1].exists(), "the file never rotated");
    assert_eq!(lines.len(), alerts.len() + incidents.len());
    for a in &alerts {
        let n = lines.iter().filter(|l| l["id"] == a["id"]).count();
        assert_eq!(n, 1, "alert {} in the files {n} times", a["id"]);
    }
    let v = proctor_testkit::proctor()
        .arg("verify")
        .arg(run.dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert_eq!(v.status.code(), Some(0), "{text}");
    assert!(text.contains("result: VALID"), "{text}");
}
