//! Real-kernel: every hot program rejects untracked threads by a per-slot count before any hash
//! lookup (bpf/lib/common.h `track_count`). These attack it: a tracked process that daemonises,
//! is moved out of the agent's cgroup and starts threads must still be seen in full, and so must
//! many threads whose ids fall in many slots.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use serde_json::Value;
use std::path::Path;

/// A cgroup of our own under the cgroup2 mount, removed at drop.
fn test_cgroup() -> TestCgroup {
    let mnt = proctor_sensor::features::mount_of("cgroup2").expect("a cgroup2 mount");
    TestCgroup::under(&mnt, &format!("proctor-track-test-{}", std::process::id()))
}

fn opens_of<'a>(r: &'a Run, p: &Path) -> Vec<&'a Value> {
    r.of_type("file_open")
        .into_iter()
        .filter(|v| bytes_of(&v["path"]).ends_with(p.as_os_str().as_encoded_bytes()))
        .collect()
}

#[test]
fn a_daemon_moved_out_of_the_agents_cgroup_is_still_tracked_with_its_threads() {
    require_root();
    let cg = test_cgroup();
    let tmp = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("daemon-open");
    let thread_marker = tmp.path().join("daemon-thread-open");
    let pidfile = tmp.path().join("daemon-pid");
    let moved = tmp.path().join("moved");
    let done = tmp.path().join("done");
    // Fork, setsid, fork again (a daemon the agent does not wait for), which waits until it has
    // been moved into another cgroup (from outside: proctor refuses the agent's own writes under
    // the cgroup2 mount), then opens a file from a new thread and from the main one, and execs.
    let script = format!(
        "import os, threading, time\n\
         if os.fork() == 0:\n\
         \x20   os.setsid()\n\
         \x20   if os.fork() > 0: os._exit(0)\n\
         \x20   open('{pf}.tmp', 'w').write(str(os.getpid())); os.rename('{pf}.tmp', '{pf}')\n\
         \x20   for _ in range(6000):\n\
         \x20       if os.path.exists('{moved}'): break\n\
         \x20       time.sleep(0.01)\n\
         \x20   t = threading.Thread(target=lambda: open('{tm}', 'w').close())\n\
         \x20   t.start(); t.join()\n\
         \x20   open('{m}', 'w').close()\n\
         \x20   open('{done}', 'w').close()\n\
         \x20   os.execv('/bin/true', ['true', 'daemon-exec'])\n\
         else:\n\
         \x20   os.wait()\n\
         \x20   for _ in range(6000):\n\
         \x20       if os.path.exists('{done}'): break\n\
         \x20       time.sleep(0.01)\n\
         \x20   time.sleep(0.2)\n",
        pf = pidfile.display(),
        moved = moved.display(),
        tm = thread_marker.display(),
        m = marker.display(),
        done = done.display(),
    );
    let child = run_command(run.path(), &[], &["/usr/bin/python3", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start proctor");
    let child = KillOnDrop::new(child);
    wait_until("the daemon's pid", || pidfile.exists());
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    std::fs::write(cg.path.join("cgroup.procs"), &pid).expect("move the daemon");
    let now = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        now.contains("proctor-track-test-"),
        "the daemon is in the test cgroup: {now}"
    );
    std::fs::write(&moved, "").unwrap();
    let out = child.into_inner().wait_with_output().expect("proctor ends");
    let r = Run::finished(out, run);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let main = opens_of(&r, &marker);
    assert_eq!(main.len(), 1, "the daemon's open after the move: {main:?}");
    let daemon = main[0]["pid"].as_u64().unwrap();
    assert_eq!(daemon.to_string(), pid.trim());
    let threaded = opens_of(&r, &thread_marker);
    assert_eq!(threaded.len(), 1, "the daemon thread's open: {threaded:?}");
    assert_eq!(threaded[0]["pid"].as_u64(), Some(daemon));
    assert!(
        r.of_type("exec")
            .iter()
            .any(|e| e["pid"].as_u64() == Some(daemon) && e["filename"] == "/usr/bin/true"),
        "the daemon's exec: {:?}",
        r.of_type("exec")
    );
}

#[test]
fn every_thread_of_a_wide_tree_is_seen() {
    // 64 threads in each of 4 processes: thread ids spread over many slots of the count, each
    // opening a file of its own once. None may be rejected as untracked.
    let tmp = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().expect("UTF-8 temp path");
    let script = format!(
        "import os, threading\n\
         def work(p):\n\
         \x20   ts = [threading.Thread(target=lambda i=i: open(f'{d}/p{{p}}-t{{i}}', 'w').close()) for i in range(64)]\n\
         \x20   [t.start() for t in ts]; [t.join() for t in ts]\n\
         kids = []\n\
         for p in range(4):\n\
         \x20   k = os.fork()\n\
         \x20   if k == 0:\n\
         \x20       work(p); os._exit(0)\n\
         \x20   kids.append(k)\n\
         for k in kids: os.waitpid(k, 0)\n"
    );
    let out = run_command(run.path(), &[], &["/usr/bin/python3", "-c", &script])
        .output()
        .expect("start proctor");
    let r = Run::finished(out, run);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let mut missing = Vec::new();
    for p in 0..4 {
        for i in 0..64 {
            let f = tmp.path().join(format!("p{p}-t{i}"));
            if opens_of(&r, &f).is_empty() {
                missing.push(f);
            }
        }
    }
    assert!(missing.is_empty(), "opens not recorded: {missing:?}");
}
