//! The webhook output against a real HTTP server: Python's http.server in a child process,
//! answering 503 to the first N POSTs, then 200, and writing each body it accepted as a line.
//! Also: a full queue drops and counts, and pushing never waits for a slow receiver.

mod common;

use common::{alert, incident, source};
use proctor_outputs::{AlertFormat, Outputs, OutputsConfig};
use proctor_testkit::receivers::{http_receiver as receiver, wait_lines};
use std::time::{Duration, Instant};

fn config(port: u16, format: AlertFormat) -> OutputsConfig {
    OutputsConfig {
        webhook: Some(format!("http://127.0.0.1:{port}/hook")),
        webhook_attempts: Some(5),
        format,
        ..OutputsConfig::default()
    }
}

#[test]
fn retries_a_failing_receiver_until_it_takes_the_alert() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bodies.jsonl");
    // Three 503s: the fourth attempt (after 250 + 500 + 1000 ms of backoff) is accepted.
    let (_rx, port) = receiver(3, &out, 0.0);
    let mut o = Outputs::start(&config(port, AlertFormat::Native), source()).unwrap();
    let t = Instant::now();
    o.alert(&alert(1));
    o.incident(&incident());
    let lines = wait_lines(&out, 2, Duration::from_secs(30));
    assert!(
        t.elapsed() >= Duration::from_millis(1700),
        "no backoff: {:?}",
        t.elapsed()
    );
    let stats = o.close(Duration::from_secs(10));
    assert_eq!((stats[0].sent, stats[0].lost()), (2, 0), "{stats:?}");
    let a: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(a["id"], "a-1");
    assert_eq!(a["kind"], "LLM_AGENT_HIJACK");
    let i: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(i["id"], "inc-1");
    assert_eq!(i["severity"], "critical");
}

#[test]
fn gives_up_after_the_attempts_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bodies.jsonl");
    let (_rx, port) = receiver(1000, &out, 0.0);
    let mut cfg = config(port, AlertFormat::Native);
    cfg.webhook_attempts = Some(2);
    let mut o = Outputs::start(&cfg, source()).unwrap();
    o.alert(&alert(1));
    let stats = o.close(Duration::from_secs(10));
    assert_eq!((stats[0].sent, stats[0].failed), (0, 1), "{stats:?}");
    assert!(!out.exists());
}

#[test]
fn posts_ocsf_findings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bodies.jsonl");
    let (_rx, port) = receiver(0, &out, 0.0);
    let mut o = Outputs::start(&config(port, AlertFormat::Ocsf), source()).unwrap();
    o.alert(&alert(1));
    let lines = wait_lines(&out, 1, Duration::from_secs(20));
    o.close(Duration::from_secs(5));
    let f: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(f["class_uid"], 2004);
    assert_eq!(f["finding_info"]["uid"], "a-1");
    assert_eq!(f["metadata"]["product"]["name"], "proctor");
}

#[test]
fn a_slow_receiver_never_blocks_the_caller_and_drops_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bodies.jsonl");
    // Each POST takes a second: the queue (4) fills at once.
    let (_rx, port) = receiver(0, &out, 1.0);
    let mut cfg = config(port, AlertFormat::Native);
    cfg.queue = Some(4);
    let mut o = Outputs::start(&cfg, source()).unwrap();
    let a = alert(1);
    let t = Instant::now();
    for _ in 0..1000 {
        o.alert(&a);
    }
    let pushed = t.elapsed();
    assert!(
        pushed < Duration::from_millis(500),
        "pushing blocked: {pushed:?}"
    );
    let live = o.stats();
    assert!(live[0].dropped >= 990, "{live:?}");
    let stats = o.close(Duration::from_millis(100));
    let st = &stats[0];
    assert_eq!(
        st.sent + st.dropped + st.failed + st.pending,
        1000,
        "{st:?}"
    );
    assert!(st.lost() >= 995, "{st:?}");
}
