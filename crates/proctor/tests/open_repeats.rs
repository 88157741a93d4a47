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

/// The `file_open_seen` records that fold reads of path `p` (by suffix), each with its entry.
fn folds_of<'a>(r: &'a Run, p: &str) -> Vec<(&'a Value, &'a Value)> {
    r.of_type("file_open_seen")
        .into_iter()
        .flat_map(|v| {
            v["files"]
                .as_array()
                .expect("files is a list")
                .iter()
                .filter(|f| bytes_of(&f["path"]).ends_with(p.as_bytes()))
                .map(move |f| (v, f))
        })
        .collect()
}

fn repeats(counted: &[&Value]) -> u64 {
    counted
        .iter()
        .map(|v| v["repeats"].as_u64().expect("repeats is a count"))
        .sum()
}

/// Python `script` under `proctor run --baseline 1s` (scripts sleep past it, so detection
/// judges what they do); the run must succeed.
fn py_past_baseline(script: &str) -> Run {
    let r = run_under(&["--baseline", "1s"], &["/usr/bin/python3", "-c", script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    r
}

/// A temporary directory holding `files` (paths under it, directories made), each "x".
fn with_files(files: &[&str]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in files {
        let p = tmp.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "x").unwrap();
    }
    tmp
}

fn verify_valid(r: &Run) {
    let v = proctor().arg("verify").arg(r.dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert_eq!(v.status.code(), Some(0), "verify: {text}");
    assert!(text.contains("result: VALID"), "{text}");
}

#[test]
fn a_storm_of_one_file_is_counted_and_everything_else_recorded() {
    let tmp = with_files(&["a.txt", "b.txt", ".aws/credentials"]);
    let d = tmp.path().to_str().expect("UTF-8 temp path");
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
    let r = py_past_baseline(&script);

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
    let d = tmp.path().to_str().expect("UTF-8 temp path");
    std::fs::write(tmp.path().join("old.txt"), "x").unwrap();
    let script = format!(
        "import os\n\
         d = '{d}'\n\
         for _ in range(100): open(d + '/old.txt').close()\n\
         os.rename(d + '/old.txt', d + '/new.txt')\n\
         for _ in range(50): open(d + '/new.txt').close()\n"
    );
    let r = run_py(&script);
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
/// bytes: a file reached by a longer path is never counted nor cut (its later reads are folded
/// under its whole first record instead); one just under the limit is counted.
#[test]
fn a_path_too_long_to_keep_is_never_counted_nor_cut() {
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
    // Not counted: the first open is whole, and the others, reads of a file the session
    // recorded, are folded under it (named by its kseq and its whole path), never cut.
    let (single, counted) = opens_of(&r, &long);
    assert_eq!((single.len(), counted.len()), (1, 0), "{counted:?}");
    assert_eq!(bytes_of(&single[0]["path"]), long.as_bytes());
    let folded = folds_of(&r, &long);
    let n: u64 = folded
        .iter()
        .map(|(_, f)| f["count"].as_u64().unwrap())
        .sum();
    assert_eq!(n, 39, "{folded:?}");
    for (_, f) in &folded {
        assert_eq!(bytes_of(&f["path"]), long.as_bytes(), "{f}");
        assert_eq!(f["kseq"], single[0]["kseq"], "{f}");
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
    // m.txt: four opens by the old image, counted under it; the new image's two are reads of
    // a file the session recorded, folded under the new image, never counted as the old's.
    let (single, counted) = opens_of(&r, "/m.txt");
    assert_eq!(single.len(), 1, "{single:?}");
    assert!(numbered(&counted), "{counted:?}");
    assert_eq!(repeats(&counted), 3, "{counted:?}");
    assert!(counted.iter().all(|c| c["exec_id"] == single[0]["exec_id"]));
    let folded = folds_of(&r, "/m.txt");
    assert_eq!(folded.len(), 1, "{folded:?}");
    let (fold, file) = folded[0];
    assert_ne!(fold["exec_id"], single[0]["exec_id"], "{fold}");
    assert_eq!(
        (file["count"].as_u64(), &file["kseq"]),
        (Some(2), &single[0]["kseq"])
    );
    verify_valid(&r);
}

/// Reads of a file the session recorded already, by other processes, are folded: one
/// `file_open_seen` record per process names the recorded open (its kseq and path) and counts
/// them. An open that writes, a sensitive file the kernel watches, and one only the rules call
/// sensitive (`**/.env.*`: no literal name for the kernel) stay what they were: a whole record
/// each, or a fold that detection still judges.
#[test]
fn reads_by_other_processes_are_folded_and_named_by_the_recorded_open() {
    let tmp = with_files(&["a.txt", ".aws/credentials", "w.txt"]);
    let d = tmp.path().to_str().expect("UTF-8 temp path");
    // Three cats and a head read a.txt, three cats the credentials, three shells append to
    // w.txt; .env.local is made after the start (no walk found it) and read by three cats.
    let script = format!(
        "import subprocess, time\n\
         time.sleep(1.5)\n\
         d = '{d}'\n\
         def run(*a): subprocess.run(list(a), check=True, stdout=subprocess.DEVNULL)\n\
         for _ in range(3): run('/bin/cat', d + '/a.txt')\n\
         run('/usr/bin/head', '-c1', d + '/a.txt')\n\
         for _ in range(3): run('/bin/cat', d + '/.aws/credentials')\n\
         for _ in range(3): run('/bin/sh', '-c', 'echo x >> ' + d + '/w.txt')\n\
         open(d + '/.env.local', 'w').write('K=1')\n\
         for _ in range(3): run('/bin/cat', d + '/.env.local')\n"
    );
    let r = py_past_baseline(&script);

    let (whole, counted) = opens_of(&r, "/a.txt");
    assert_eq!((whole.len(), counted.len()), (1, 0), "{whole:?}");
    let folded = folds_of(&r, "/a.txt");
    assert_eq!(folded.len(), 3, "two more cats and the head: {folded:?}");
    let mut pids = vec![whole[0]["pid"].clone()];
    for (fold, file) in &folded {
        assert_eq!(
            file["kseq"], whole[0]["kseq"],
            "names the recorded open: {fold}"
        );
        assert_eq!(file["count"], 1, "{fold}");
        assert_eq!(
            (&file["dev"], &file["ino"]),
            (&whole[0]["dev"], &whole[0]["ino"])
        );
        assert!(
            fold.get("kseq").is_none(),
            "written by proctor, unnumbered: {fold}"
        );
        assert!(fold["count"].as_u64() >= Some(1), "{fold}");
        pids.push(fold["pid"].clone());
    }
    pids.sort_by_key(|p| p.as_u64());
    pids.dedup();
    assert_eq!(pids.len(), 4, "one process each: {pids:?}");
    assert!(
        folded.iter().any(|(f, _)| f["comm"] == "head"),
        "another image's read is folded too: {folded:?}"
    );

    let (cred, _) = opens_of(&r, "/.aws/credentials");
    assert_eq!(
        cred.len(),
        3,
        "a watched file is recorded whole at every open"
    );
    assert!(folds_of(&r, "/.aws/credentials").is_empty());
    let appends: Vec<_> = opens_of(&r, "/w.txt").0;
    assert_eq!(appends.len(), 3, "writes are recorded whole: {appends:?}");
    assert!(folds_of(&r, "/w.txt").is_empty());

    // Sensitive by the rules only: the first read is whole, the later ones are folded and
    // still judged (an alert names the file).
    let (env, _) = opens_of(&r, "/.env.local");
    assert!(!env.is_empty(), "the first read of .env.local is recorded");
    assert_eq!(
        env.len() - 1 + folds_of(&r, "/.env.local").len(),
        3,
        "every cat of .env.local: {env:?}"
    );
    let alerts = r.alerts();
    assert!(
        alerts.iter().any(|a| a["kind"] == "SENSITIVE_FILE"
            && a["summary"].as_str().unwrap_or("").contains(".env.local")),
        "{alerts:?}"
    );
    verify_valid(&r);
    // Replay reads the folds as the run did.
    let rp = proctor()
        .arg("replay")
        .arg(r.audit_path())
        .output()
        .unwrap();
    assert_eq!(
        rp.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&rp.stderr)
    );
}

/// Shells open /dev/null for writing at every redirection. Opens of the kernel's harmless
/// memory devices, known by their device number whatever the node is called, fold like plain
/// reads whatever their flags; a node with another number is recorded whole at every open,
/// even when it is called `null` (here /dev/kmsg's 1:11, which root may open for writing).
#[test]
fn opens_of_dev_null_fold_whatever_their_flags_and_an_impostor_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().expect("UTF-8 temp path");
    std::fs::create_dir(tmp.path().join("imp")).unwrap();
    for (name, minor) in [("quiet", 3), ("imp/null", 11)] {
        let st = std::process::Command::new("mknod")
            .args([&format!("{d}/{name}"), "c", "1", &minor.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "mknod {name}");
    }
    let script = format!(
        "import subprocess, time\n\
         time.sleep(1.5)\n\
         d = '{d}'\n\
         for f in ('/dev/null', d + '/quiet', d + '/imp/null'):\n\
         \x20   for _ in range(3): subprocess.run(['/bin/sh', '-c', ': > ' + f], check=True)\n"
    );
    let r = py_past_baseline(&script);
    // O_WRONLY|O_CREAT|O_TRUNC, as the shell opens a redirection's target.
    let redirect = |v: &Value| v["flags"].as_u64().unwrap_or(0) & 0o1103 == 0o1101;
    for dev in ["/dev/null", "/quiet"] {
        let (whole, counted) = opens_of(&r, dev);
        let whole: Vec<_> = whole.into_iter().filter(|v| redirect(v)).collect();
        assert_eq!((whole.len(), counted.len()), (1, 0), "{dev}: {whole:?}");
        let folded: Vec<_> = folds_of(&r, dev)
            .into_iter()
            .filter(|(_, f)| redirect(f))
            .collect();
        assert_eq!(folded.len(), 2, "{dev}: the other two shells: {folded:?}");
        for (fold, file) in &folded {
            assert_eq!(file["kseq"], whole[0]["kseq"], "{fold}");
            assert_eq!(file["flags"], whole[0]["flags"], "{fold}");
            assert_eq!(file["count"], 1, "{fold}");
        }
    }
    let (imp, _) = opens_of(&r, "/imp/null");
    let imp: Vec<_> = imp.into_iter().filter(|v| redirect(v)).collect();
    assert_eq!(
        imp.len(),
        3,
        "another device is recorded at every open: {imp:?}"
    );
    assert!(imp.iter().all(|v| v.get("error").is_none()), "{imp:?}");
    assert!(folds_of(&r, "/imp/null").is_empty());
    verify_valid(&r);
}

/// The openat program has two builds: plain loads through BTF-typed pointers (kernels with the
/// `bpf_rdonly_cast` kfunc) and probe reads (older kernels, or `PROCTOR_FILE_READS=probe`).
/// Both must record the same opens the same way: names, flags, device and inode, counted
/// repeats and folds. Where the kernel's BTF has the kfunc, `doctor` must say the plain loads
/// are in use, so the two runs below compare two different programs.
#[test]
fn opens_read_with_plain_loads_and_with_probe_reads_are_recorded_alike() {
    let tmp = with_files(&["a.txt", "sub/b.txt"]);
    let d = tmp.path().to_str().expect("UTF-8 temp path");
    std::os::unix::fs::symlink(tmp.path().join("a.txt"), tmp.path().join("link")).unwrap();
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").expect("kernel BTF");
    if btf.windows(16).any(|w| w == b"bpf_rdonly_cast\0") {
        let kfunc = doctor_feature("bpf_rdonly_cast kfunc");
        assert_eq!(kfunc["available"], true, "{kfunc}");
    }
    let script = format!(
        "import os, subprocess\n\
         d = '{d}'\n\
         for _ in range(3): open(d + '/a.txt').read()\n\
         open(d + '/sub/b.txt', 'rb').read()\n\
         open(d + '/link').read()\n\
         with open(d + '/new.txt', 'w') as f: f.write('y')\n\
         with open(d + '/new.txt', 'a') as f: f.write('z')\n\
         os.close(os.open('/dev/null', os.O_RDWR))\n\
         for _ in range(2): subprocess.run(['/bin/cat', d + '/a.txt', d + '/sub/b.txt'], stdout=subprocess.DEVNULL, check=True)\n\
         os.remove(d + '/new.txt')\n"
    );
    let run = |probe: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = run_command(dir.path(), &[], &["/usr/bin/python3", "-c", &script]);
        if probe {
            cmd.env("PROCTOR_FILE_READS", "probe");
        }
        let r = Run::finished(cmd.output().expect("start proctor"), dir);
        assert_eq!(r.code(), Some(0), "{}", r.stderr());
        verify_valid(&r);
        // The header, which the kernel reads through a cast task pointer where the plain loads
        // are used (bpf/lib/common.h current_task_ptr): each open names its process's exec, its
        // parent, and the test's own user and login uid.
        let execs: std::collections::HashMap<u64, &Value> = r
            .of_type("exec")
            .into_iter()
            .map(|v| (v["pid"].as_u64().expect("pid"), v))
            .collect();
        let loginuid: u64 = std::fs::read_to_string("/proc/self/loginuid")
            .map_or(u64::from(u32::MAX), |s| s.trim().parse().expect("loginuid"));
        for v in r.of_type("file_open") {
            let exec = execs[&v["pid"].as_u64().expect("pid")];
            assert_eq!(v["exec_id"], exec["exec_id"], "{v}");
            assert_eq!(v["ppid"], exec["ppid"], "{v}");
            assert_eq!(v["comm"], exec["comm"], "{v}");
            assert_eq!(v["uid"], unsafe { libc::getuid() }, "{v}");
            assert_eq!(v["gid"], unsafe { libc::getgid() }, "{v}");
            assert_eq!(v["loginuid"], loginuid, "{v}");
        }
        let python = r
            .of_type("exec")
            .into_iter()
            .find(|v| v["comm"] == "python3");
        let python = python.expect("python's exec")["pid"].clone();
        let cats: Vec<_> = r
            .of_type("exec")
            .into_iter()
            .filter(|v| v["comm"] == "cat")
            .collect();
        assert_eq!(cats.len(), 2, "{cats:?}");
        assert!(cats.iter().all(|v| v["ppid"] == python), "{cats:?}");
        // What the kernel reported of each open of the test's files, in a stable order.
        // (new.txt is a new inode in each run.)
        let fields = |v: &Value| {
            let mut f = [
                "path", "flags", "access", "create", "truncate", "dev", "ino", "repeats", "error",
            ]
            .map(|k| v.get(k).cloned().unwrap_or(Value::Null));
            if bytes_of(&f[0]).ends_with(b"/new.txt") {
                assert!(f[6].as_u64() > Some(0), "{v}");
                f[6] = Value::Null;
            }
            f
        };
        let mut opens: Vec<_> = r
            .of_type("file_open")
            .into_iter()
            .filter(|v| bytes_of(&v["path"]).starts_with(d.as_bytes()) || v["path"] == "/dev/null")
            .map(|v| (v["comm"].clone(), fields(v)))
            .collect();
        opens.sort_by_key(|o| format!("{o:?}"));
        let mut folds: Vec<_> = r
            .of_type("file_open_seen")
            .into_iter()
            .flat_map(|v| v["files"].as_array().expect("files").iter())
            .filter(|f| bytes_of(&f["path"]).starts_with(d.as_bytes()))
            .map(|f| (f["path"].clone(), f["flags"].clone(), f["count"].clone()))
            .collect();
        folds.sort_by_key(|f| format!("{f:?}"));
        (opens, folds)
    };
    let (plain, probe) = (run(false), run(true));
    assert_eq!(plain, probe, "plain loads vs probe reads");
    // And what they recorded is the files' own identity.
    let a = std::fs::metadata(tmp.path().join("a.txt")).unwrap();
    use std::os::unix::fs::MetadataExt;
    let a_opens: Vec<_> = plain
        .0
        .iter()
        .filter(|(_, f)| f[0] == format!("{d}/a.txt").as_str())
        .collect();
    assert!(!a_opens.is_empty(), "{plain:?}");
    for (_, f) in &a_opens {
        assert_eq!(f[6], a.ino(), "{f:?}");
        assert_eq!(f[5], a.dev(), "{f:?}");
    }
    // The first read whole, the next two counted; the symlink resolves to a.txt; cat's reads
    // are folded.
    assert!(
        a_opens.iter().any(|(_, f)| f[7].as_u64() >= Some(2)),
        "{a_opens:?}"
    );
    assert!(!plain.1.is_empty(), "cat's reads are folded: {plain:?}");
}

/// A misspelt `PROCTOR_FILE_READS` is an environment error: one line naming it, exit 2, and
/// the agent never starts.
#[test]
fn an_unknown_file_reads_setting_is_refused_before_the_agent_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("started");
    let out = proctor()
        .env("PROCTOR_FILE_READS", "fast")
        .arg("run")
        .arg("--out")
        .arg(tmp.path().join("out"))
        .args(["--", "/usr/bin/touch"])
        .arg(&marker)
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("PROCTOR_FILE_READS=\"fast\""), "{err}");
    assert!(!marker.exists(), "the agent ran");
}
