//! Processes that outlive the agent: a double-forked setsid daemon keeps running after the
//! agent's first process exits. proctor must keep monitoring (and enforcing) until the whole
//! tracked tree is gone, or, when asked to stop with the agent, name the survivors in
//! `sensor_stop` and raise an alert.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;

/// The agent double-forks a daemon that waits, then runs a binary, and exits with status 3.
const DAEMON: &str = r#"
import os, subprocess, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1.5)
        subprocess.run(['/usr/bin/id'], stdout=subprocess.DEVNULL)
        os._exit(0)
    os._exit(0)
os.wait()
sys.exit(3)
"#;

fn id_execs(recs: &[serde_json::Value]) -> usize {
    recs.iter()
        .filter(|r| r["type"] == "exec" && bytes_of(&r["filename"]).ends_with(b"/usr/bin/id"))
        .count()
}

#[test]
fn monitoring_lasts_until_the_whole_tree_is_gone() {
    let r = run_under(&[], &["/usr/bin/python3", "-c", DAEMON]);
    assert_eq!(r.code(), Some(3), "the agent's status: {}", r.stderr());
    assert_eq!(
        id_execs(&r.records),
        1,
        "the daemon's exec after the agent exited is recorded: {}",
        r.stderr()
    );
    let stop = last_observation(&r.records);
    assert_eq!(stop["type"], "sensor_stop");
    assert_eq!(stop["reason"], "tree_exited", "{stop}");
    assert_eq!(stop["exit_code"], 3, "{stop}");
}

#[test]
fn exit_with_agent_names_the_survivors_and_alerts() {
    let r = run_under(&["--exit-with-agent"], &["/usr/bin/python3", "-c", DAEMON]);
    assert_eq!(r.code(), Some(3), "{}", r.stderr());
    let stop = last_observation(&r.records);
    assert_eq!(stop["type"], "sensor_stop");
    let survivors = stop["survivors"]
        .as_array()
        .unwrap_or_else(|| panic!("{stop}"));
    assert_eq!(survivors.len(), 1, "{stop}");
    assert!(survivors[0]["pid"].as_u64().unwrap() > 0);
    assert_eq!(survivors[0]["comm"], "python3", "{stop}");
    assert!(
        bytes_of(&survivors[0]["exe"]).ends_with(b"python3.11")
            || bytes_of(&survivors[0]["exe"]).ends_with(b"python3"),
        "{stop}"
    );
    assert!(
        r.records
            .iter()
            .any(|a| a["type"] == "alert" && a["kind"] == "UNMONITORED_SURVIVORS"),
        "{}",
        r.stderr()
    );
    // Let the survivor finish before the temporary directory goes.
    let pid = survivors[0]["pid"].as_u64().unwrap();
    wait_until("the survivor's end", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
}

/// While proctor waits for survivors, a SIGINT (the user's second Ctrl-C) stops the wait: the
/// survivors are named, and proctor still exits with the agent's status.
#[test]
fn a_signal_during_the_wait_stops_it_and_names_the_survivors() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(8)
        os._exit(0)
    os._exit(0)
os.wait()
sys.exit(5)
"#;
    let child = proctor()
        .arg("run")
        .arg("--out")
        .arg(tmp.path())
        .args(["--", "/usr/bin/python3", "-c", script])
        // stdout not piped: the daemon inherits the agent's stdio and would hold a pipe open.
        // stderr is, read line by line as it comes (never to its end, which the daemon holds).
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop::new(child);
    let stderr = Lines::new(child.stderr.take().unwrap());
    let audit = tmp.path().join("audit.jsonl");
    // The agent's first process has exited and proctor waits for the daemon it left.
    stderr.until("monitoring the processes it left running");
    let started = std::time::Instant::now();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.into_inner().wait().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "stopped at once, not when the daemon exited: {:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(5));
    let recs = read_records(&audit);
    let stop = last_observation(&recs);
    assert_eq!(stop["type"], "sensor_stop");
    assert_eq!(
        stop["survivors"].as_array().map(Vec::len),
        Some(1),
        "{stop}"
    );
    // The daemon would sleep on: end it (it is this test's, and named by pid in the record).
    let pid = stop["survivors"][0]["pid"].as_u64().unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}
