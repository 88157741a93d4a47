//! Real-kernel: repeated connects of one thread to one destination are counted in the kernel (a
//! `connect` record with `repeats`), never dropped: the first connect to every destination and
//! every failed connect are recorded as they happen, the counts add up to the connects made, a
//! thread that goes to sleep reports its count before it sleeps, a storm of counted connects is
//! still an egress burst, and the log still verifies.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use serde_json::Value;

/// The `connect` records to loopback port `port`, split into single connects and counted
/// repeats.
fn connects_to(r: &Run, port: u64) -> (Vec<&Value>, Vec<&Value>) {
    r.of_type("connect")
        .into_iter()
        .filter(|v| v["addr"] == "127.0.0.1" && v["port"].as_u64() == Some(port))
        .partition(|v| v.get("repeats").is_none())
}

/// How many connects the records stand for.
fn stood_for(single: &[&Value], counted: &[&Value]) -> u64 {
    single.len() as u64
        + counted
            .iter()
            .map(|v| v["repeats"].as_u64().expect("repeats is a count"))
            .sum::<u64>()
}

fn kseq(v: &Value) -> u64 {
    v["kseq"].as_u64().unwrap_or_else(|| panic!("no kseq: {v}"))
}

/// The ports a script printed on its first line ("A B C").
fn ports(r: &Run) -> Vec<u64> {
    let out = String::from_utf8_lossy(&r.out.stdout).to_string();
    let first = out.lines().next().unwrap_or_default();
    first
        .split_whitespace()
        .map(|p| p.parse().unwrap_or_else(|_| panic!("ports line: {out}")))
        .collect()
}

/// A, B: listeners (nothing accepts: the kernel completes the handshake into the backlog);
/// C: a port nothing listens on (refused).
const PRELUDE: &str = "import socket, sys, time\n\
    def listener():\n\
    \x20   s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(4096); return s\n\
    a, b = listener(), listener()\n\
    c = socket.socket(); c.bind(('127.0.0.1', 0)); pc = c.getsockname()[1]; c.close()\n\
    pa, pb = a.getsockname()[1], b.getsockname()[1]\n\
    print(pa, pb, pc, flush=True)\n\
    def conn(p):\n\
    \x20   s = socket.socket()\n\
    \x20   try: s.connect(('127.0.0.1', p))\n\
    \x20   except OSError: pass\n\
    \x20   s.close()\n";

/// `python3 -c PRELUDE + body` under `proctor run [extra]`, MARKER in body the path of a file
/// it may create; the run must succeed.
fn run_script(extra: &[&str], body: &str) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("marker");
    let script = format!(
        "{PRELUDE}{}",
        body.replace("MARKER", &marker.display().to_string())
    );
    let r = run_under(extra, &["/usr/bin/python3", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    r
}

/// The open of the marker file.
fn marker(r: &Run) -> &Value {
    r.of_type("file_open")
        .into_iter()
        .find(|v| bytes_of(&v["path"]).ends_with(b"/marker"))
        .expect("the marker's open")
}

#[test]
fn a_connect_storm_is_counted_and_every_other_connect_recorded() {
    require_root();
    let r = run_script(
        &[],
        "for _ in range(300): conn(pa)\n\
         conn(pb)\n\
         for _ in range(20): conn(pa)\n\
         for _ in range(5): conn(pc)\n\
         for _ in range(4): conn(pb)\n\
         time.sleep(0.3)\n\
         open('MARKER', 'w').close()\n\
         time.sleep(0.3)\n",
    );
    let p = ports(&r);
    let (pa, pb, pc) = (p[0], p[1], p[2]);

    // A: 320 connects, each accounted for, in far fewer records: a record at the first connect
    // of each run (after B) and one per 16 repeats at most.
    let (single, counted) = connects_to(&r, pa);
    assert_eq!(stood_for(&single, &counted), 320, "{single:?} {counted:?}");
    assert_eq!(
        single.len(),
        2,
        "A's first connect, and its first after B: {single:?}"
    );
    assert!(
        counted.iter().all(|v| v["repeats"].as_u64() <= Some(16)),
        "{counted:?}"
    );
    assert!(
        counted.len() <= 320 / 8,
        "{} counted records",
        counted.len()
    );
    for v in &counted {
        let (first, last) = (
            v["ts_ns"].as_u64().unwrap(),
            v["last_ts_ns"].as_u64().unwrap(),
        );
        assert!(first <= last, "{v}");
        assert_eq!(
            (v["protocol"].as_str(), v["pid"].as_u64()),
            (Some("tcp"), single[0]["pid"].as_u64())
        );
    }
    // Refused connects are recorded one by one.
    let (refused, counted_c) = connects_to(&r, pc);
    assert_eq!((refused.len(), counted_c.len()), (5, 0), "{refused:?}");
    // B: once, then four more (the first recorded, three counted). The thread reports those
    // three when it goes to sleep: before the marker it opens after waking.
    let (single_b, counted_b) = connects_to(&r, pb);
    assert_eq!(
        stood_for(&single_b, &counted_b),
        5,
        "{single_b:?} {counted_b:?}"
    );
    assert_eq!(single_b.len(), 2, "{single_b:?}");
    let m = marker(&r);
    let last_b = counted_b.last().expect("B's counted connects");
    assert!(
        kseq(last_b) < kseq(m),
        "B's count is reported when the thread sleeps, before the marker: {last_b} {m}"
    );
    // Every record in order: the kernel's numbers have no gap, and the log verifies.
    let v = proctor().arg("verify").arg(r.dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert_eq!(v.status.code(), Some(0), "verify: {text}");
}

#[test]
fn a_storm_of_counted_connects_is_an_egress_burst() {
    require_root();
    // Past a one-second baseline, 200 connects to one listener in well under a second: a few
    // records that stand for them all.
    let r = run_script(
        &["--baseline", "1s"],
        "time.sleep(1.5)\nfor _ in range(200): conn(pa)\ntime.sleep(0.2)\n",
    );
    let pa = ports(&r)[0];
    let (single, counted) = connects_to(&r, pa);
    assert_eq!(stood_for(&single, &counted), 200);
    assert!(
        single.len() + counted.len() < 100,
        "counted: {}",
        counted.len()
    );
    let bursts: Vec<_> = r
        .of_type("alert")
        .into_iter()
        .filter(|a| a["kind"] == "NET_EGRESS_BURST")
        .collect();
    assert_eq!(bursts.len(), 1, "{:?}", r.of_type("alert"));
}

#[test]
fn a_thread_that_spins_after_its_connects_reports_them_within_a_second() {
    require_root();
    // On a CPU shared with a spinning child (pinned first: the migration is a sleep), six
    // connects to A (one recorded, five counted), then two seconds of spinning without a syscall
    // (the thread is preempted, never asleep), then the marker.
    let r = run_script(
        &[],
        "import os\n\
         os.sched_setaffinity(0, {0})\n\
         pid = os.fork()\n\
         if pid == 0:\n\
         \x20   end = time.monotonic() + 3\n\
         \x20   while time.monotonic() < end: pass\n\
         \x20   os._exit(0)\n\
         time.sleep(0.2)\n\
         for _ in range(6): conn(pa)\n\
         end = time.monotonic() + 2.0\n\
         while time.monotonic() < end: pass\n\
         open('MARKER', 'w').close()\n\
         os.waitpid(pid, 0)\n",
    );
    let pa = ports(&r)[0];
    let (single, counted) = connects_to(&r, pa);
    assert_eq!(stood_for(&single, &counted), 6, "{single:?} {counted:?}");
    let m = marker(&r);
    let c = counted.last().expect("A's counted connects");
    assert!(
        kseq(c) < kseq(m),
        "a count held by a preempted thread is reported within a second: {c} {m}"
    );
}

#[test]
fn threads_ipv6_and_unix_sockets_are_counted_each_by_its_own() {
    require_root();
    // Four threads storm A at once (each thread its own entry); then IPv6 loopback; then
    // AF_UNIX at a short path (its sockaddr is compared whole) and at a long one (it is not:
    // recorded at every connect).
    let r = run_script(
        &[],
        "import os, threading\n\
         def storm():\n\
         \x20   for _ in range(100): conn(pa)\n\
         ts = [threading.Thread(target=storm) for _ in range(4)]\n\
         for t in ts: t.start()\n\
         for t in ts: t.join()\n\
         l6 = socket.socket(socket.AF_INET6); l6.bind(('::1', 0)); l6.listen(4096)\n\
         p6 = l6.getsockname()[1]\n\
         print(p6, flush=True)\n\
         for _ in range(50):\n\
         \x20   s = socket.socket(socket.AF_INET6); s.connect(('::1', p6)); s.close()\n\
         base = os.path.dirname('MARKER')\n\
         for p in (base + '/u', base + '/' + 'l' * 60):\n\
         \x20   u = socket.socket(socket.AF_UNIX); u.bind(p); u.listen(4096)\n\
         \x20   for _ in range(30):\n\
         \x20       c = socket.socket(socket.AF_UNIX); c.connect(p); c.close()\n",
    );
    let pa = ports(&r)[0];
    let (single, counted) = connects_to(&r, pa);
    assert_eq!(stood_for(&single, &counted), 400, "{single:?} {counted:?}");
    assert_eq!(single.len(), 4, "each thread's first connect: {single:?}");
    // Python's threads hand the GIL over by sleeping, and a thread that sleeps reports what it
    // counted (docs/kernel.md): how many reports depends on how the four are scheduled (28 to
    // 167 counted records over ~55 runs here, alone or beside other tests; a bound of 50 failed
    // nearly every other run). Counting, not a record a connect, is what is asserted.
    assert!(
        counted.len() <= 400 / 2,
        "{} counted records",
        counted.len()
    );
    let p6: u64 = String::from_utf8_lossy(&r.out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("the IPv6 port");
    let v6: (Vec<&Value>, Vec<&Value>) = r
        .of_type("connect")
        .into_iter()
        .filter(|v| v["addr"] == "::1" && v["port"].as_u64() == Some(p6))
        .partition(|v| v.get("repeats").is_none());
    assert_eq!(stood_for(&v6.0, &v6.1), 50, "{v6:?}");
    assert_eq!(v6.0.len(), 1, "{v6:?}");
    let unix = |suffix: &[u8]| -> (Vec<&Value>, Vec<&Value>) {
        r.of_type("connect")
            .into_iter()
            .filter(|v| v["family"] == "unix" && bytes_of(&v["path"]).ends_with(suffix))
            .partition(|v| v.get("repeats").is_none())
    };
    let short = unix(b"/u");
    assert_eq!(stood_for(&short.0, &short.1), 30, "{short:?}");
    assert_eq!(short.0.len(), 1, "{short:?}");
    let long = unix(&[b'l'; 60]);
    assert_eq!((long.0.len(), long.1.len()), (30, 0), "{long:?}");
}
