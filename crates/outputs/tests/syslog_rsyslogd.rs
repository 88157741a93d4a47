//! The syslog output against a real rsyslogd (Debian package `rsyslog`, from `make deps`):
//! rsyslogd runs with a private configuration (its own work directory, pid file and inputs on
//! loopback and a temporary Unix socket) and writes what its RFC 5424 parser understood, field
//! by field, to a file. Skipped, saying why, when rsyslogd is not installed.

mod common;

use common::{alert, incident, source};
use proctor_outputs::{AlertFormat, Outputs, OutputsConfig};
use proctor_testkit::receivers::{free_port, rsyslogd, wait_lines};
use std::time::Duration;

fn ship(target: String, format: AlertFormat) -> Vec<proctor_outputs::OutputStats> {
    let cfg = OutputsConfig {
        syslog: Some(target),
        syslog_facility: Some("local3".into()),
        format,
        ..OutputsConfig::default()
    };
    let mut o = Outputs::start(&cfg, source()).expect("outputs");
    o.alert(&alert(1));
    o.incident(&incident());
    o.close(Duration::from_secs(10))
}

#[test]
fn rsyslogd_parses_alerts_and_incidents_over_tcp_udp_and_unix() {
    let dir = tempfile::tempdir().unwrap();
    let Some(r) = rsyslogd(dir.path()) else {
        return;
    };
    let targets = [
        ("imtcp", format!("tcp://127.0.0.1:{}", r.tcp)),
        ("imudp", format!("udp://127.0.0.1:{}", r.udp)),
        ("imuxsock", format!("unix:{}", r.unix.display())),
    ];
    for (i, (_, t)) in targets.iter().enumerate() {
        let stats = ship(t.clone(), AlertFormat::Native);
        assert_eq!(stats.len(), 1);
        assert_eq!((stats[0].sent, stats[0].lost()), (2, 0), "{t}: {stats:?}");
        // Each transport's two messages arrive before the next starts (UDP has no order
        // across senders otherwise).
        wait_lines(&r.out, 2 * (i + 1), Duration::from_secs(20));
    }
    let lines = wait_lines(&r.out, 6, Duration::from_secs(20));
    for (input, _) in targets {
        let of: Vec<&String> = lines.iter().filter(|l| l.starts_with(input)).collect();
        assert_eq!(of.len(), 2, "{input}: {lines:#?}");
        let a = of
            .iter()
            .find(|l| l.contains("|LLM_AGENT_HIJACK|"))
            .expect("alert line");
        let f: Vec<&str> = a.splitn(9, '|').collect();
        assert_eq!(
            &f[1..7],
            [
                "local3",
                "err",
                "testhost",
                "proctor",
                &std::process::id().to_string(),
                "LLM_AGENT_HIJACK"
            ],
            "{a}"
        );
        // Structured data as rsyslogd kept it, escapes included.
        let sd = f[7];
        assert!(sd.starts_with("[proctor@32473 "), "{sd}");
        for p in [
            r#"id="a-1""#,
            r#"kind="LLM_AGENT_HIJACK""#,
            r#"channel="L2""#,
            r#"severity="high""#,
            r#"pid="4243""#,
            r#"exec_id="4242-99-1""#,
            r#"incident="inc-1""#,
            r#"run="20260101T000000Z-0badcafe""#,
        ] {
            assert!(sd.contains(p), "{p} missing from {sd}");
        }
        // MSG is the alert's JSON.
        let msg: serde_json::Value = serde_json::from_str(f[8].trim_start()).expect("JSON MSG");
        assert_eq!(msg["id"], "a-1");
        assert_eq!(msg["summary"], "python3 spawned bash -c \"x]y\\z\" #1");
        let i = of
            .iter()
            .find(|l| l.contains("|INCIDENT|"))
            .expect("incident line");
        let f: Vec<&str> = i.splitn(9, '|').collect();
        assert_eq!(f[2], "crit", "{i}");
        assert!(f[7].contains(r#"techniques="T1041,T1552.001""#), "{i}");
    }
}

#[test]
fn rsyslogd_receives_ocsf_findings() {
    let dir = tempfile::tempdir().unwrap();
    let Some(r) = rsyslogd(dir.path()) else {
        return;
    };
    let stats = ship(format!("tcp://127.0.0.1:{}", r.tcp), AlertFormat::Ocsf);
    assert_eq!((stats[0].sent, stats[0].lost()), (2, 0), "{stats:?}");
    let lines = wait_lines(&r.out, 2, Duration::from_secs(20));
    for l in &lines {
        let msg: serde_json::Value =
            serde_json::from_str(l.splitn(9, '|').nth(8).unwrap().trim_start()).expect("JSON");
        assert_eq!(msg["class_uid"], 2004, "{l}");
        assert_eq!(msg["device"]["hostname"], "testhost");
    }
}

#[test]
fn a_receiver_that_is_gone_counts_as_lost_not_silence() {
    // Nothing listens on this port: each item fails after its retries and is counted.
    let port = free_port(false);
    let cfg = OutputsConfig {
        syslog: Some(format!("tcp://127.0.0.1:{port}")),
        ..OutputsConfig::default()
    };
    let mut o = Outputs::start(&cfg, source()).expect("outputs");
    o.alert(&alert(1));
    let stats = o.close(Duration::from_secs(10));
    assert_eq!((stats[0].sent, stats[0].failed), (0, 1), "{stats:?}");
}
