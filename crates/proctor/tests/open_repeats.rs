//! Real-kernel: repeated opens of one file by one thread are counted in the kernel (a
//! `file_open` record with `repeats`), never dropped: the first open and every other file are
//! recorded as they happen, sensitive files are recorded at every open, the counts add up to
//! the opens made, and the log still verifies.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use serde_json::Value;

/// The `file_open` records of path `p` (by suffix: inside a chroot, as in the VM tier, the
/// kernel's path starts at the real root), split into single opens and counted repeats.
fn opens_of<'a>(r: &'a Run, p: &str) -> (Vec<&'a Value>, Vec<&'a Value>) {
    r.of_type("file_open")
        .into_iter()
        .filter(|v| bytes_of(&v["path"]).ends_with(p.as_bytes()))
        .partition(|v| v.get("repeats").is_none())
}

fn repeats(counted: &[&Value]) -> u64 {
    counted
        .iter()
        .map(|v| v["repeats"].as_u64().expect("repeats is a count"))
        .sum()
}

fn verify_valid(r: &Run) {
    let v = proctor().arg("verify").arg(r.dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert_eq!(v.status.code(), Some(0), "verify: {text}");
    assert!(text.contains("result: VALID"), "{text}");
}

#[test]
fn a_storm_of_one_file_is_counted_and_everything_else_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().expect("UTF-8 temp path");
    std::fs::create_dir(tmp.path().join(".aws")).unwrap();
    for f in ["a.txt", "b.txt", ".aws/credentials"] {
        std::fs::write(tmp.path().join(f), "x").unwrap();
    }
    // A 3,000 times, B once, the credentials 5 times, A 10 times more, then exit: A's count is
    // reported by the thread's exit (or once a second, on a slow machine).
    // Past a one-second baseline first, so detection judges the opens.
    let script = format!(
        "import time\n\
         time.sleep(1.5)\n\
         d = '{d}'\n\
         for _ in range(3000): open(d + '/a.txt').close()\n\
         open(d + '/b.txt').close()\n\
         for _ in range(5): open(d + '/.aws/credentials').close()\n\
         for _ in range(10): open(d + '/a.txt').close()\n\
         for _ in range(3): open(d + '/link.txt').close()\n"
    );
    // Another name of A's inode: recorded under its own name, never counted as A.
    std::fs::hard_link(tmp.path().join("a.txt"), tmp.path().join("link.txt")).unwrap();
    let out = run_command(
        run.path(),
        &["--baseline", "1s"],
        &["/usr/bin/python3", "-c", &script],
    )
    .output()
    .expect("start proctor");
    let r = Run::finished(out, run);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());

    let (single, counted) = opens_of(&r, "/a.txt");
    // The first open of A is recorded as it happens; the rest, before and after the other
    // files, are counted.
    assert_eq!(single.len(), 1, "{single:?}");
    assert!(!counted.is_empty(), "no counted repeats of a.txt");
    assert_eq!(
        single.len() as u64 + repeats(&counted),
        3010,
        "every open of a.txt is accounted for: {counted:?}"
    );
    for c in &counted {
        let (ts, last) = (
            c["ts_ns"].as_u64().unwrap(),
            c["last_ts_ns"].as_u64().unwrap(),
        );
        assert!(ts <= last, "first repeat after the last: {c}");
        assert_eq!(c["pid"], single[0]["pid"], "{c}");
        assert!(
            c.get("kseq").is_some(),
            "a kernel-reported count is numbered: {c}"
        );
    }

    let (link, link_counted) = opens_of(&r, "/link.txt");
    assert_eq!(link.len(), 1, "{link:?}");
    assert_eq!(repeats(&link_counted), 2, "{link_counted:?}");

    let (b, b_counted) = opens_of(&r, "/b.txt");
    assert_eq!((b.len(), b_counted.len()), (1, 0), "{b:?} {b_counted:?}");

    // Sensitive: never counted, each open is a record of its own, and it alerts.
    let (cred, cred_counted) = opens_of(&r, "/.aws/credentials");
    assert_eq!((cred.len(), cred_counted.len()), (5, 0), "{cred_counted:?}");
    let alerts = r.alerts();
    let summaries: Vec<&str> = alerts
        .iter()
        .filter_map(|a| a["summary"].as_str())
        .collect();
    assert!(
        alerts.iter().any(|a| a["kind"] == "SENSITIVE_FILE"
            && a["summary"].as_str().unwrap_or("").contains("credentials")),
        "no SENSITIVE_FILE alert for the credentials: {summaries:?}"
    );
    // A counted repeat is not judged again: a.txt raised nothing.
    assert!(
        !summaries.iter().any(|s| s.contains("a.txt")),
        "{summaries:?}"
    );
    verify_valid(&r);
}

#[test]
fn a_storm_that_goes_on_is_reported_every_second() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().expect("UTF-8 temp path");
    std::fs::write(tmp.path().join("c.txt"), "x").unwrap();
    // About 2.5 s of opens, counted to the end: the monitor sees the storm while it lasts.
    let script = format!(
        "import time\n\
         d, n, end = '{d}', 0, time.monotonic() + 2.5\n\
         while time.monotonic() < end:\n\
         \x20   open(d + '/c.txt').close(); n += 1; time.sleep(0.001)\n\
         print(n)\n"
    );
    let r = run_py(&script);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let n: u64 = r.stdout_lines()[0].parse().expect("the script's count");
    let (single, counted) = opens_of(&r, "/c.txt");
    assert_eq!(single.len(), 1, "{single:?}");
    assert!(
        counted.len() >= 2,
        "a storm of 2.5 s is reported at least once before it ends: {counted:?}"
    );
    assert_eq!(1 + repeats(&counted), n, "{counted:?}");
    verify_valid(&r);
}

#[test]
fn counts_still_in_the_kernel_when_proctor_stops_are_collected() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().expect("UTF-8 temp path");
    std::fs::write(tmp.path().join("s.txt"), "x").unwrap();
    // The agent leaves a daemon that opens s.txt 200 times at once, then waits; proctor stops
    // with the agent (--exit-with-agent) while the daemon's count is still in the kernel.
    let script = format!(
        "import os, sys, time\n\
         if os.fork() == 0:\n\
         \x20   os.setsid()\n\
         \x20   for _ in range(200): open('{d}/s.txt').close()\n\
         \x20   open('{d}/s.done', 'w').close()\n\
         \x20   time.sleep(3)\n\
         \x20   os._exit(0)\n\
         while not os.path.exists('{d}/s.done'): time.sleep(0.01)\n"
    );
    let r = run_under(&["--exit-with-agent"], &["/usr/bin/python3", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let (single, counted) = opens_of(&r, "/s.txt");
    assert_eq!(single.len(), 1, "{single:?}");
    assert_eq!(repeats(&counted), 199, "{counted:?}");
    assert!(
        counted.iter().any(|c| c.get("kseq").is_none()),
        "the count came from the map at stop, unnumbered: {counted:?}"
    );
    verify_valid(&r);
    wait_until("the daemon's end", || {
        !std::fs::read_dir("/proc").unwrap().any(|e| {
            std::fs::read(e.unwrap().path().join("cmdline"))
                .is_ok_and(|c| c.windows(5).any(|w| w == b"s.txt"))
        })
    });
}

#[test]
fn a_renamed_file_is_recorded_under_its_new_name_not_counted_as_the_old() {
    // A short name lives inside the dentry and a rename in the same directory keeps the
    // dentry (and that address): the count must still notice the new name.
    let tmp = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().expect("UTF-8 temp path");
    std::fs::write(tmp.path().join("old.txt"), "x").unwrap();
    let script = format!(
        "import os\n\
         d = '{d}'\n\
         for _ in range(100): open(d + '/old.txt').close()\n\
         os.rename(d + '/old.txt', d + '/new.txt')\n\
         for _ in range(50): open(d + '/new.txt').close()\n"
    );
    let out = run_command(run.path(), &[], &["/usr/bin/python3", "-c", &script])
        .output()
        .expect("start proctor");
    let r = Run::finished(out, run);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let (old, old_counted) = opens_of(&r, "/old.txt");
    let (new, new_counted) = opens_of(&r, "/new.txt");
    assert_eq!(
        old.len() as u64 + repeats(&old_counted),
        100,
        "{old_counted:?}"
    );
    assert_eq!(
        new.len(),
        1,
        "the first open under the new name is recorded: {new:?}"
    );
    assert_eq!(
        new.len() as u64 + repeats(&new_counted),
        50,
        "{new_counted:?}"
    );
    verify_valid(&r);
}

/// A count keeps a copy of the recorded open with room for a path of PR_AGG_PATH_MAX (256)
/// bytes: a file reached by a longer path is recorded at every open, whole, never counted and
/// never cut; one just under the limit is counted.
#[test]
fn a_path_too_long_to_keep_is_recorded_at_every_open() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_str().expect("UTF-8 temp path").len();
    // Directories that bring each file's whole path to a chosen length.
    let file_at = |len: usize, name: &str| {
        let mut dir = tmp.path().join(name);
        let mut path_len = base + 1 + name.len();
        while path_len + 1 + 40 + 4 < len {
            dir = dir.join("d".repeat(40));
            path_len += 41;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let stem = len - path_len - 1;
        let f = dir.join("f".repeat(stem));
        std::fs::write(&f, "x").unwrap();
        assert_eq!(f.as_os_str().len(), len);
        f.to_str().unwrap().to_string()
    };
    let long = file_at(300, "long");
    let short = file_at(250, "short");
    let script = format!(
        "for _ in range(40): open('{long}').close()\n\
         for _ in range(40): open('{short}').close()\n"
    );
    let r = run_py(&script);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let (single, counted) = opens_of(&r, &long);
    assert_eq!((single.len(), counted.len()), (40, 0), "{counted:?}");
    for s in &single {
        assert_eq!(bytes_of(&s["path"]), long.as_bytes(), "{s}");
    }
    let (single, counted) = opens_of(&r, &short);
    assert_eq!(single.len(), 1, "{single:?}");
    assert_eq!(repeats(&counted), 39, "{counted:?}");
    verify_valid(&r);
}

/// A thread's counts are reported when it ends, however many files it counted, and an exec
/// reports the old image's counts under the old image: by a thread of 200 files that exits
/// while its process goes on, and by a non-leader thread that execs.
#[test]
fn every_count_is_reported_when_its_thread_exits_or_execs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().expect("UTF-8 temp path");
    for i in 0..200 {
        std::fs::write(tmp.path().join(format!("t{i}.txt")), "x").unwrap();
    }
    for f in ["m.txt", "e.txt"] {
        std::fs::write(tmp.path().join(f), "x").unwrap();
    }
    let script = format!(
        "import os, threading, time\n\
         d = '{d}'\n\
         def worker():\n\
         \x20   for i in range(200):\n\
         \x20       for _ in range(3): open(f'{{d}}/t{{i}}.txt').close()\n\
         t = threading.Thread(target=worker); t.start(); t.join()\n\
         for _ in range(4): open(d + '/m.txt').close()\n\
         def execer():\n\
         \x20   for _ in range(6): open(d + '/e.txt').close()\n\
         \x20   os.execv('/usr/bin/python3', ['python3', '-c',\n\
         \x20            f\"for _ in range(2): open('{{d}}/m.txt').close()\"])\n\
         threading.Thread(target=execer).start()\n\
         time.sleep(10)\n"
    );
    let r = run_py(&script);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let numbered = |c: &[&Value]| c.iter().all(|v| v.get("kseq").is_some());
    for i in 0..200 {
        let (single, counted) = opens_of(&r, &format!("/t{i}.txt"));
        assert_eq!(single.len(), 1, "t{i}: {single:?}");
        assert_eq!(repeats(&counted), 2, "t{i}: {counted:?}");
        assert!(
            numbered(&counted),
            "reported at the thread's exit: {counted:?}"
        );
    }
    let (single, counted) = opens_of(&r, "/e.txt");
    assert_eq!((single.len(), repeats(&counted)), (1, 5), "{counted:?}");
    assert!(numbered(&counted), "reported at the exec: {counted:?}");
    assert_eq!(counted[0]["exec_id"], single[0]["exec_id"], "{counted:?}");
    // m.txt: four opens by the old image, two by the new one, each image's counted apart.
    let (single, counted) = opens_of(&r, "/m.txt");
    assert_eq!(single.len(), 2, "{single:?}");
    assert_ne!(single[0]["exec_id"], single[1]["exec_id"], "{single:?}");
    assert!(numbered(&counted), "{counted:?}");
    for (s, n) in [(single[0], 3), (single[1], 1)] {
        let mine: Vec<&Value> = counted
            .iter()
            .copied()
            .filter(|c| c["exec_id"] == s["exec_id"])
            .collect();
        assert_eq!(repeats(&mine), n, "{s} {counted:?}");
    }
    verify_valid(&r);
}
