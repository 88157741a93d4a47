//! `--metrics`: a real Prometheus server (Debian's `prometheus`) scrapes a live `proctor run`,
//! and its query API returns proctor's series: records while the agent works, the kernel's
//! per-program run counts, and the L2 alert counter after the agent is hijacked into a shell.
//! `/healthz` says ok while the loop drains. A non-loopback address is refused up front.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::receivers::{http_get as get, prometheus};
use proctor_testkit::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Benign file reads through the baseline window, then (when the test says `go`) a shell: an
/// interpreter the baseline never saw (L2, LLM_AGENT_HIJACK); then it waits for `done`.
const AGENT: &str = r#"
import os, subprocess, sys, time
d = sys.argv[1]
end = time.time() + 4
while time.time() < end:
    open('/etc/hostname').read()
    time.sleep(0.05)
def wait(name):
    # The baseline's own rhythm: a slower loop is a scheduling drift (L1) of its own.
    while not os.path.exists(os.path.join(d, name)):
        open('/etc/hostname').read()
        time.sleep(0.05)
wait('go')
subprocess.run(['/bin/sh', '-c', 'id >/dev/null'])
wait('done')
"#;

#[test]
fn prometheus_scrapes_a_live_run_and_sees_the_hijack_alert() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let ctl = dir.path().join("ctl");
    std::fs::create_dir(&ctl).unwrap();
    let mut run = KillOnDrop::new(
        run_command(
            &out,
            &["--baseline", "3s", "--metrics", "127.0.0.1:0"],
            &["/usr/bin/python3", "-c", AGENT, ctl.to_str().unwrap()],
        )
        .stderr(Stdio::piped())
        .spawn()
        .expect("start proctor"),
    );
    // proctor says where it serves (port 0: its choice); the rest of stderr is kept for asserts.
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = run.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut said = Vec::new();
    let wait_line = |pat: &str, said: &mut Vec<String>| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(l) = said.iter().find(|l| l.contains(pat)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => said.push(l),
                Err(_) => panic!("proctor never said `{pat}`: {}", said.join("\n")),
            }
        }
    };
    let line = wait_line("metrics on http://", &mut said);
    let target = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    assert!(target.starts_with("127.0.0.1:"), "{line}");
    assert_eq!(
        get(&format!("http://{target}/healthz"), None),
        (200, "ok\n".into())
    );

    let prom = prometheus(dir.path(), &target);
    // Prometheus scraped proctor: the target is up and records are counted.
    prom.wait_query("up{job=\"proctor\"}", 60, |v| v == 1.0);
    prom.wait_query("sum(proctor_records_total)", 60, |v| v > 0.0);
    prom.wait_query("proctor_records_total{kind=\"file_open\"}", 60, |v| v > 0.0);
    assert_eq!(prom.query("proctor_agents"), Some(1.0));
    assert_eq!(prom.query("proctor_sessions"), Some(1.0));
    assert_eq!(
        prom.query("count(proctor_build_info{version=~\"[0-9]+\\\\.[0-9]+\\\\.[0-9]+ .*\"})"),
        Some(1.0)
    );
    // The kernel's own counters, from bpf_prog_info with BPF_ENABLE_STATS held.
    prom.wait_query(
        "proctor_bpf_program_runs_total{program=\"pr_exit_openat\"}",
        60,
        |v| v > 0.0,
    );
    prom.wait_query(
        "proctor_bpf_program_run_time_seconds_total{program=\"pr_exit_openat\"}",
        60,
        |v| v > 0.0,
    );
    prom.wait_query("proctor_ringbuf_size_bytes{ring=\"events\"}", 60, |v| {
        v >= 4096.0
    });
    prom.wait_query("proctor_process_resident_memory_bytes", 60, |v| v > 1e6);
    prom.wait_query("proctor_process_cpu_seconds_total", 60, |v| v > 0.0);
    // Nothing alerted before the hijack.
    assert_eq!(
        prom.query("sum(proctor_alerts_total)"),
        None,
        "alerted before the hijack: {:?}",
        std::fs::read_to_string(out.join("alerts.jsonl"))
    );

    // The hijack: after the baseline, the agent runs a shell.
    wait_line("baseline established", &mut said);
    std::fs::write(ctl.join("go"), "").unwrap();
    let n = prom.wait_query(
        "proctor_alerts_total{kind=\"LLM_AGENT_HIJACK\",channel=\"L2\"}",
        60,
        |v| v >= 1.0,
    );
    prom.wait_query("proctor_records_total{kind=\"alert\"}", 60, |v| v >= n);
    assert_eq!(
        get(&format!("http://{target}/healthz"), None),
        (200, "ok\n".into())
    );

    std::fs::write(ctl.join("done"), "").unwrap();
    let status = run.into_inner().wait().unwrap();
    assert!(status.success(), "proctor: {status}: {}", said.join("\n"));
    // What Prometheus counted is what the audit log holds.
    let alerts = read_records(&out.join("audit.jsonl"))
        .into_iter()
        .filter(|r| r["type"] == "alert" && r["kind"] == "LLM_AGENT_HIJACK")
        .count();
    assert_eq!(alerts as f64, n, "alert counter vs audit log");
    // The endpoint goes with the run.
    assert_eq!(get(&format!("http://{target}/healthz"), None).0, 0);
}

#[test]
fn a_non_loopback_metrics_address_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = run_command(&out, &["--metrics", "0.0.0.0:9464"], &["/bin/true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = one_line_error(&o);
    assert!(
        err.contains("metrics address 0.0.0.0:9464 is not loopback"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!out.exists(), "nothing written for a refused address");
    let o = run_command(&out, &["--metrics", "localhost"], &["/bin/true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", one_line_error(&o));
}

#[test]
fn attach_serves_metrics_and_health_for_a_running_process() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let agent = KillOnDrop::new(
        Command::new("/usr/bin/python3")
            .args([
                "-c",
                "import time\nwhile True:\n    open('/etc/hostname').read(); time.sleep(0.05)",
            ])
            .spawn()
            .unwrap(),
    );
    let mut mon = KillOnDrop::new(
        proctor()
            .args(["attach", "--pid", &agent.id().to_string(), "--out"])
            .arg(&out)
            .args(["--baseline", "1s", "--metrics", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Read stderr to its end on a thread: a closed pipe would kill proctor's next line.
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = mon.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let line = rx
        .iter()
        .find(|l| l.contains("metrics on http://"))
        .expect("attach says where it serves metrics");
    let target = line
        .split("http://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(&format!("http://{target}/metrics"), None);
        assert_eq!(status, 200);
        if body.contains("proctor_records_total{kind=\"file_open\"}") {
            assert!(
                body.contains("proctor_records_total{kind=\"sensor_start\"} 1\n"),
                "{body}"
            );
            assert!(body.contains("proctor_agents 1\n"), "{body}");
            assert!(body.ends_with("# EOF\n"), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no file_open counted by attach: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        get(&format!("http://{target}/healthz"), None),
        (200, "ok\n".into())
    );
    drop(agent); // killed: attach follows the tree to its end and stops
    let status = mon.into_inner().wait().unwrap();
    assert!(status.success(), "attach: {status}");
    assert_eq!(get(&format!("http://{target}/healthz"), None).0, 0);
}
