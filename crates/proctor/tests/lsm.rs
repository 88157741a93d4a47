//! The BPF LSM enforcement layer, on a real kernel that allows it. Our build machines refuse BPF
//! LSM programs (kernel lockdown), so these tests are `#[ignore]`d in `make test` and run
//! by `make test-lsm`, which boots Debian's kernel under qemu with `lsm=...,bpf`
//! (tests/vm/run.sh). Run anywhere else they fail at once, saying so: a skipped LSM test would
//! hide a broken LSM layer.
//!
//! What they check: with `--mode enforce` a forbidden exec, a ptrace attach, a connect outside
//! the allowlist and a sensitive open fail with EPERM from the hook while the process lives on;
//! for `attach` too; shadow mode records one `would_block` per action and blocks nothing; a
//! process outside the agent is unaffected; each block is a decision record with
//! `layer: "lsm"` and a signed BLOCKED alert, and `proctor verify` accepts the output.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Fail loudly unless this kernel runs proctor's LSM programs (doctor loads them for real).
fn require_lsm() {
    require_root();
    let lsm = doctor_feature("BPF LSM");
    assert_eq!(
        lsm["available"], true,
        "BPF LSM is not usable on this kernel ({}): these tests belong to the VM tier, run them with `make test-lsm`",
        lsm["detail"]
    );
}

/// The built-in policy with `[enforce]` files blocked (the LSM layer's file hook is what these
/// tests exercise) and the given verdicts.
fn policy(
    dir: &Path,
    network: Verdict,
    exec: &[&Path],
    ptrace: Verdict,
    allow: &[String],
) -> String {
    PolicyBuilder::new()
        .network(network)
        .block_exec(exec)
        .ptrace(ptrace)
        .files(Verdict::Block)
        .allow(allow.iter().cloned())
        .write(dir)
}

/// A private copy of a system binary: the policy forbids the copy, never the original.
fn copy_of(bin: &str, dir: &Path) -> PathBuf {
    let p = dir.join(format!(
        "forbidden-{}",
        Path::new(bin).file_name().unwrap().to_string_lossy()
    ));
    copy_executable(bin, &p);
    p
}

/// A HOME with one sensitive file and one ordinary file.
fn home_with_secret(dir: &Path) -> PathBuf {
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::create_dir_all(home.join("work")).unwrap();
    std::fs::write(home.join(".aws/credentials"), "secret").unwrap();
    std::fs::write(home.join("work/notes.txt"), "fine").unwrap();
    home
}

fn decisions_of(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r["type"] == "decision")
        .cloned()
        .collect()
}

fn alerts_in(dir: &Path) -> Vec<Value> {
    let p = dir.join("alerts.jsonl");
    if p.exists() {
        read_records(&p)
    } else {
        Vec::new()
    }
}

fn verify(dir: &Path) {
    let v = proctor().arg("verify").arg(dir).output().unwrap();
    assert!(
        v.status.success(),
        "proctor verify {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}

/// `proctor run --mode MODE --policy POL --out DIR -- python3 -c SCRIPT` with HOME set.
fn run_py_in(mode: &str, pol: &str, home: &Path, script: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = run_command(
        dir.path(),
        &["--mode", mode, "--policy", pol],
        &["/usr/bin/python3", "-c", script],
    )
    .env("HOME", home)
    .current_dir(home)
    .output()
    .unwrap();
    Run::finished(out, dir)
}

fn stdout_lines(r: &Run) -> Vec<String> {
    String::from_utf8_lossy(&r.out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// Python: run `f`, print `ok` or the errno name it failed with.
const PY_TRY: &str = r#"
import errno, os, socket, subprocess, sys, ctypes
def attempt(f):
    try:
        f(); return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def run(p):
    subprocess.run([p], stdout=subprocess.DEVNULL, check=True)
def connect(port):
    s = socket.socket(); s.settimeout(5)
    try:
        s.connect(('127.0.0.1', port))
    finally:
        s.close()
def read(p):
    open(p).read()
libc = ctypes.CDLL(None, use_errno=True)
def ptrace_attach(pid):
    if libc.ptrace(16, pid, None, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    libc.ptrace(17, pid, None, None)
"#;

#[test]
#[ignore = "needs a kernel with BPF LSM: run by `make test-lsm` in a VM"]
fn enforce_refuses_exec_ptrace_connect_and_open_with_eperm_and_the_agent_lives_on() {
    require_lsm();
    let tmp = tempfile::tempdir().unwrap();
    let home = home_with_secret(tmp.path());
    let forbidden = copy_of("/usr/bin/id", tmp.path());
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let blocked = TcpListener::bind("127.0.0.1:0").unwrap();
    let (ap, bp) = (
        allowed.local_addr().unwrap().port(),
        blocked.local_addr().unwrap().port(),
    );
    let pol = policy(
        tmp.path(),
        Verdict::Block,
        &[&forbidden],
        Verdict::Block,
        &[format!("127.0.0.1:{ap}")],
    );
    let cg_root = common_cgroup2_root();
    // The agent: exec of the forbidden copy, a ptrace attach onto a sibling, connects, opens;
    // then it tries to leave its cgroup (as a root agent could, were the cgroup2 mount not
    // read-only to it under Landlock) and connects again: still refused.
    let script = format!(
        r#"{PY_TRY}
target = subprocess.Popen(['/bin/sleep', '3'])
print('exec', attempt(lambda: run('{forbidden}')), attempt(lambda: run('/usr/bin/true')))
print('ptrace', attempt(lambda: ptrace_attach(target.pid)))
print('connect', attempt(lambda: connect({ap})), attempt(lambda: connect({bp})))
print('open', attempt(lambda: read('{home}/.aws/credentials')), attempt(lambda: read('{home}/work/notes.txt')))
print('escape', attempt(lambda: open('{cg_root}/cgroup.procs', 'w').write(str(os.getpid()))))
print('after-escape', attempt(lambda: connect({bp})))
target.kill(); target.wait()
print('alive')
"#,
        forbidden = forbidden.display(),
        home = home.display(),
        cg_root = cg_root.display(),
    );
    let r = run_py_in("enforce", &pol, &home, &script);
    let stderr = r.stderr();
    assert_eq!(r.code(), Some(0), "{stderr}");
    let lines = stdout_lines(&r);
    // Landlock precedes bpf in the LSM order and refuses the open for `run` first (EACCES).
    assert_eq!(
        lines,
        vec![
            "exec EPERM ok",
            "ptrace EPERM",
            "connect ok EPERM",
            "open EACCES ok",
            "escape EACCES",
            "after-escape EPERM",
            "alive"
        ],
        "{stderr}"
    );
    for layer in [
        "bprm_check_security -> EPERM",
        "ptrace_access_check -> EPERM",
        "BPF LSM socket_connect",
        "BPF LSM file_open -> EPERM",
        "BPF LSM active",
    ] {
        assert!(stderr.contains(layer), "banner names {layer}: {stderr}");
    }
    let d = decisions_of(&r.records);
    let by = |what: &str, layer: &str| {
        d.iter()
            .filter(|x| x["what"] == what && x["layer"] == layer && x["verdict"] == "blocked")
            .count()
    };
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(&forbidden).unwrap().ino();
    assert!(
        d.iter().any(|x| x["what"] == "exec" && x["ino"] == ino),
        "{d:?}"
    );
    assert_eq!(by("exec", "lsm"), 1, "{d:?}");
    assert_eq!(by("ptrace", "lsm"), 1, "{d:?}");
    assert_eq!(
        by("connect", "lsm"),
        2,
        "one per refused connect, none from cgroup-bpf: {d:?}"
    );
    assert_eq!(by("open", "landlock"), 1, "{d:?}");
    assert_eq!(d.len(), 5, "{d:?}");
    assert!(d.iter().all(|x| x["layer"] != "tracepoint"), "{d:?}");
    let alerts = alerts_in(r.dir.path());
    for kind in [
        "EXEC_BLOCKED",
        "PTRACE_BLOCKED",
        "EGRESS_BLOCKED",
        "FILE_BLOCKED",
    ] {
        assert!(
            alerts
                .iter()
                .any(|a| a["kind"] == kind && a["action"] == "BLOCKED"),
            "{kind}: {alerts:?}"
        );
    }
    verify(r.dir.path());
}

/// How long the VM tier waits for proctor to start. Under an emulated CPU (no KVM) loading
/// proctor's programs alone takes seconds, and minutes when the host is busy too (the VM runs
/// beside the host's tests in `make test`; 90 s was seen to be too short on a loaded machine).
/// A bound only: the wait ends as soon as the condition holds.
const VM_PATIENCE: Duration = Duration::from_secs(400);

/// Wait for a line an agent writes once proctor has started it, and return it without its
/// newline. The file exists before its content is written, so only a whole line counts.
fn wait_line(path: &Path) -> String {
    let deadline = Instant::now() + VM_PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Some(line) = text.strip_suffix('\n') {
                return line.to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} held no whole line within {} s",
            path.display(),
            VM_PATIENCE.as_secs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A shell agent that writes its pid to `pidfile`, then stays alive until the test creates
/// `done`: the test acts on a live agent however slow the machine is.
fn pid_then_wait(pidfile: &Path, done: &Path) -> String {
    format!(
        "echo $$ > {}; while [ ! -e {} ]; do sleep 0.1; done",
        pidfile.display(),
        done.display()
    )
}

/// The cgroup2 mount of this machine (from mountinfo, never hard-coded).
fn common_cgroup2_root() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| PathBuf::from(left.split_whitespace().nth(4).unwrap()))
        })
        .expect("a cgroup2 mount")
}

#[test]
#[ignore = "needs a kernel with BPF LSM: run by `make test-lsm` in a VM"]
fn a_ptrace_attach_onto_the_agent_from_outside_is_refused() {
    require_lsm();
    let tmp = tempfile::tempdir().unwrap();
    let pol = policy(tmp.path(), Verdict::Alert, &[], Verdict::Block, &[]);
    // Not in tmp: Landlock (files = "block" under `run`) keeps the agent from creating files
    // in directories on the path to a denied file.
    let scratch = tempfile::tempdir().unwrap();
    let pidfile = scratch.path().join("agent.pid");
    let done = scratch.path().join("done");
    let out = tempfile::tempdir().unwrap();
    let child = proctor()
        .args(["run", "--mode", "enforce", "--policy", &pol, "--out"])
        .arg(out.path())
        .args(["--", "/bin/sh", "-c", &pid_then_wait(&pidfile, &done)])
        // The sensitive-file patterns are expanded under the working directory: keep it small
        // (the VM reads this machine's files over 9p, slowly).
        .current_dir(scratch.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child = KillOnDrop::new(child);
    let pid: i32 = wait_line(&pidfile).parse().unwrap();
    // This test process is root and untracked: only proctor's hook stands in its way.
    // SAFETY: ptrace with null addr/data; a successful attach is undone right below.
    let rc = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
    let err = std::io::Error::last_os_error();
    if rc == 0 {
        // SAFETY: as above.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
    }
    assert_eq!(rc, -1, "the attach onto the agent must fail");
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(
        !status.contains(") T") && !status.contains(") t"),
        "the agent is not left stopped: {status}"
    );
    std::fs::write(&done, "").unwrap();
    let output = child.into_inner().wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let d = decisions_of(&read_records(&out.path().join("audit.jsonl")));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["what"], "ptrace");
    assert_eq!(d[0]["layer"], "lsm");
    assert_eq!(d[0]["target_pid"], pid);
    assert!(alerts_in(out.path())
        .iter()
        .any(|a| a["kind"] == "PTRACE_BLOCKED" && a["action"] == "BLOCKED"));
    verify(out.path());
}

#[test]
#[ignore = "needs a kernel with BPF LSM: run by `make test-lsm` in a VM"]
fn attach_gets_exec_connect_and_file_blocking_from_the_lsm() {
    require_lsm();
    let tmp = tempfile::tempdir().unwrap();
    let home = home_with_secret(tmp.path());
    let forbidden = copy_of("/usr/bin/id", tmp.path());
    let blocked = TcpListener::bind("127.0.0.1:0").unwrap();
    let bp = blocked.local_addr().unwrap().port();
    let pol = policy(
        tmp.path(),
        Verdict::Block,
        &[&forbidden],
        Verdict::Block,
        &[],
    );
    let scratch = tempfile::tempdir().unwrap();
    let go = scratch.path().join("go");
    let result = scratch.path().join("result");
    // An agent already running before proctor: it waits for `go`, then acts.
    let script = format!(
        r#"{PY_TRY}
import time
while not os.path.exists('{go}'):
    time.sleep(0.05)
cred = '{home}/.aws/credentials'
res = [attempt(lambda: run('{forbidden}')), attempt(lambda: connect({bp})),
       attempt(lambda: read(cred)), attempt(lambda: read('{home}/work/notes.txt'))]
# The same file by other spellings: a link, /proc/self/root, an O_PATH fd reopened.
os.symlink(cred, 'link')
fd = os.open(cred, os.O_PATH)
res += [attempt(lambda: read(p)) for p in ['link', '/proc/self/root' + cred, '/proc/self/fd/%d' % fd]]
open('{result}', 'w').write(' '.join(res) + '\n')
"#,
        go = go.display(),
        forbidden = forbidden.display(),
        home = home.display(),
        result = result.display(),
    );
    let agent = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .env("HOME", &home)
        .current_dir(&home)
        .spawn()
        .unwrap();
    let agent = KillOnDrop::new(agent);
    let out = tempfile::tempdir().unwrap();
    let mut mon = proctor()
        .args(["attach", "--pid", &agent.id().to_string()])
        .args(["--mode", "enforce", "--policy", &pol, "--out"])
        .arg(out.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the banner, then let the agent act.
    let stderr = mon.stderr.take().unwrap();
    let mut banner = String::new();
    let mut reader = BufReader::new(stderr);
    let deadline = Instant::now() + VM_PATIENCE;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("proctor attach ended before attaching: {banner}");
        }
        banner.push_str(&line);
        if line.contains("attached to") {
            break;
        }
        assert!(Instant::now() < deadline, "no banner: {banner}");
    }
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
        rest
    });
    let mon = KillOnDrop::new(mon);
    std::fs::write(&go, "").unwrap();
    let verdicts = wait_line(&result);
    let status = mon.into_inner().wait().unwrap();
    let rest = drain.join().unwrap();
    assert!(status.success(), "{banner}{rest}");
    assert!(
        banner.contains("BPF LSM file_open -> EPERM for"),
        "{banner}"
    );
    assert_eq!(
        verdicts, "EPERM EPERM EPERM ok EPERM EPERM EPERM",
        "{banner}{rest}"
    );
    let d = decisions_of(&read_records(&out.path().join("audit.jsonl")));
    assert_eq!(d.len(), 6, "{d:?}");
    assert!(d
        .iter()
        .all(|x| x["layer"] == "lsm" && x["verdict"] == "blocked"));
    // Every spelling names the file the hook refused.
    let opens: Vec<_> = d.iter().filter(|x| x["what"] == "open").collect();
    assert_eq!(opens.len(), 4, "{d:?}");
    let secret = home.join(".aws/credentials").canonicalize().unwrap();
    for open in opens {
        assert_eq!(open["path"], secret.to_str().unwrap(), "{open:?}");
    }
    // Repeats of one blocked kind within the cooldown are counted (flood control): the first
    // goes out with count 1, the window's follow-up with the window's total. So each kind's
    // blocks are its highest count: 1 exec, 1 connect, 4 opens of the one real file.
    let alerts = alerts_in(out.path());
    let mut per_kind = std::collections::BTreeMap::<String, u64>::new();
    for a in alerts.iter().filter(|a| a["action"] == "BLOCKED") {
        let n = per_kind
            .entry(a["kind"].as_str().unwrap().to_string())
            .or_default();
        *n = (*n).max(a["count"].as_u64().unwrap());
    }
    assert_eq!(
        per_kind.into_iter().collect::<Vec<_>>(),
        vec![
            ("EGRESS_BLOCKED".to_string(), 1),
            ("EXEC_BLOCKED".to_string(), 1),
            ("FILE_BLOCKED".to_string(), 4)
        ],
        "{alerts:?}"
    );
    verify(out.path());
}

#[test]
#[ignore = "needs a kernel with BPF LSM: run by `make test-lsm` in a VM"]
fn shadow_mode_records_one_would_block_per_action_and_blocks_nothing() {
    require_lsm();
    let tmp = tempfile::tempdir().unwrap();
    let home = home_with_secret(tmp.path());
    let forbidden = copy_of("/usr/bin/id", tmp.path());
    let blocked = TcpListener::bind("127.0.0.1:0").unwrap();
    let bp = blocked.local_addr().unwrap().port();
    let pol = policy(
        tmp.path(),
        Verdict::Block,
        &[&forbidden],
        Verdict::Block,
        &[],
    );
    let script = format!(
        r#"{PY_TRY}
target = subprocess.Popen(['/bin/sleep', '3'])
print(attempt(lambda: run('{forbidden}')), attempt(lambda: ptrace_attach(target.pid)),
      attempt(lambda: connect({bp})), attempt(lambda: read('{home}/.aws/credentials')))
target.kill(); target.wait()
"#,
        forbidden = forbidden.display(),
        home = home.display(),
    );
    let r = run_py_in("shadow", &pol, &home, &script);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(stdout_lines(&r), vec!["ok ok ok ok"], "{}", r.stderr());
    let d = decisions_of(&r.records);
    // One record per action: the cgroup connect hook does not repeat the LSM's decision.
    let mut whats: Vec<&str> = d.iter().map(|x| x["what"].as_str().unwrap()).collect();
    whats.sort();
    assert_eq!(whats, vec!["connect", "exec", "open", "ptrace"], "{d:?}");
    assert!(d
        .iter()
        .all(|x| x["verdict"] == "would_block" && x["layer"] == "lsm"));
    assert_eq!(
        alerts_in(r.dir.path())
            .iter()
            .filter(|a| a["action"] == "WOULD_BLOCK")
            .count(),
        4
    );
    verify(r.dir.path());
}

#[test]
#[ignore = "needs a kernel with BPF LSM: run by `make test-lsm` in a VM"]
fn processes_outside_the_agent_are_unaffected_while_enforcing() {
    require_lsm();
    let tmp = tempfile::tempdir().unwrap();
    let home = home_with_secret(tmp.path());
    let forbidden = copy_of("/usr/bin/true", tmp.path());
    let blocked = TcpListener::bind("127.0.0.1:0").unwrap();
    let bp = blocked.local_addr().unwrap().port();
    let pol = policy(
        tmp.path(),
        Verdict::Block,
        &[&forbidden],
        Verdict::Block,
        &[],
    );
    // Not in tmp: Landlock (files = "block" under `run`) keeps the agent from creating files
    // in directories on the path to a denied file.
    let scratch = tempfile::tempdir().unwrap();
    let pidfile = scratch.path().join("agent.pid");
    let done = scratch.path().join("done");
    let out = tempfile::tempdir().unwrap();
    let child = proctor()
        .args(["run", "--mode", "enforce", "--policy", &pol, "--out"])
        .arg(out.path())
        .args(["--", "/bin/sh", "-c", &pid_then_wait(&pidfile, &done)])
        .env("HOME", &home)
        .current_dir(scratch.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child = KillOnDrop::new(child);
    wait_line(&pidfile);
    // This test process is outside the agent: everything the agent may not do works here.
    assert!(Command::new(&forbidden).status().unwrap().success());
    assert!(std::net::TcpStream::connect(("127.0.0.1", bp)).is_ok());
    assert_eq!(
        std::fs::read_to_string(home.join(".aws/credentials")).unwrap(),
        "secret"
    );
    std::fs::write(&done, "").unwrap();
    let output = child.into_inner().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("BPF LSM active"), "{stderr}");
    let d = decisions_of(&read_records(&out.path().join("audit.jsonl")));
    assert!(d.is_empty(), "nothing outside the agent is decided: {d:?}");
}

#[test]
#[ignore = "needs a kernel with BPF LSM: run by `make test-lsm` in a VM"]
fn names_moved_and_disks_opened_are_recorded_on_a_distribution_kernel_too() {
    // The path_change programs (a dfd's path, the working directory through the task's fs) and
    // the device node's type bits (read with probe reads here: Debian 12's 6.1 has no
    // bpf_rdonly_cast) on another kernel than the build machines'.
    let dir = tempfile::tempdir().unwrap();
    let home = home_with_secret(dir.path());
    let script = r#"
import os, stat, time
time.sleep(1.5)
home = os.environ['HOME']
os.chdir(home)
with open('staged', 'w') as f:
    f.write('x\n')
d = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
os.rename('staged', '.profile', src_dir_fd=d)
os.mknod('node', 0o600 | stat.S_IFBLK, os.makedev(7, 0))
try:
    os.close(os.open('node', os.O_RDONLY))
except OSError:
    pass
"#;
    let pol = dir.path().join("empty.toml");
    std::fs::write(&pol, "").unwrap();
    let r = run_py_in("audit", pol.to_str().unwrap(), &home, script);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let moved = r.of_type("path_change").into_iter().any(|c| {
        c["op"] == "rename"
            && bytes_of(&c["path"]).ends_with(b"/staged")
            && c.get("new_path")
                .is_some_and(|p| bytes_of(p).ends_with(b"/.profile"))
            && bytes_of(&c["path"]).starts_with(b"/")
    });
    assert!(moved, "{:?}", r.of_type("path_change"));
    assert!(
        r.alerts()
            .iter()
            .any(|a| a["kind"] == "PERSISTENCE"
                && a["summary"].as_str().unwrap_or("").contains("moved")),
        "{:?}",
        r.alerts()
    );
    let node = r
        .of_type("file_open")
        .into_iter()
        .find(|o| bytes_of(&o["path"]).ends_with(b"/node"))
        .cloned();
    // An unbound loop device opens where the loop driver is loaded; where it is not, the open
    // fails (ENXIO) and there is nothing to record.
    if let Some(n) = node {
        assert_eq!(n["device"]["kind"], "block", "{n}");
        assert_eq!(n["device"]["major"], 7, "{n}");
    }
}

#[test]
#[ignore = "needs a kernel with BPF LSM: run by `make test-lsm` in a VM"]
fn a_unix_listener_is_named_by_the_kernel_on_a_distribution_kernel_too() {
    // The listener's pid from the socket's peer credentials (a `struct pid` read through
    // CO-RE on Debian's 6.1): one outside the tree (this test process), one the agent forks.
    let dir = tempfile::tempdir().unwrap();
    let home = home_with_secret(dir.path());
    let sock = dir.path().join("outside.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let accept = std::thread::spawn(move || {
        let _ = listener.accept();
    });
    let script = format!(
        r#"
import os, socket, time
time.sleep(1.5)
s = socket.socket(socket.AF_UNIX)
s.connect({outside:?})
inner = os.path.join(os.environ['HOME'], 'inner.sock')
l = socket.socket(socket.AF_UNIX)
l.bind(inner)
l.listen(1)
if os.fork() == 0:
    c = socket.socket(socket.AF_UNIX)
    c.connect(inner)
    os._exit(0)
l.accept()
os.wait()
"#,
        outside = sock.to_str().unwrap()
    );
    let pol = dir.path().join("empty.toml");
    std::fs::write(&pol, "").unwrap();
    let r = run_py_in("audit", pol.to_str().unwrap(), &home, &script);
    accept.join().unwrap();
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let conns = r.of_type("connect");
    let outside = conns
        .iter()
        .find(|c| bytes_of(&c["path"]).ends_with(b"/outside.sock"))
        .unwrap_or_else(|| panic!("{conns:?}"));
    assert_eq!(outside["peer_pid"], std::process::id(), "{outside}");
    assert_eq!(outside["peer_outside"], true, "{outside}");
    let me = std::fs::read_link("/proc/self/exe").unwrap();
    assert!(
        bytes_of(&outside["peer_exe"]).ends_with(me.file_name().unwrap().as_encoded_bytes()),
        "{outside}"
    );
    let inner = conns
        .iter()
        .find(|c| bytes_of(&c["path"]).ends_with(b"/inner.sock"))
        .unwrap_or_else(|| panic!("{conns:?}"));
    assert!(
        inner["peer_pid"].as_u64().unwrap_or(0) != 0 && inner.get("peer_outside").is_none(),
        "{inner}"
    );
    assert!(
        !r.alerts().iter().any(|a| a["kind"] == "SESSION_HIJACK"),
        "{:?}",
        r.alerts()
    );
}

#[test]
#[ignore = "needs a kernel with BPF LSM: run by `make test-lsm` in a VM"]
fn kernel_module_calls_without_insmod_are_recorded_on_a_kernel_with_modules() {
    // Debian's 6.1 has loadable modules (the build machines' kernel has none, and no such
    // system calls): finit_module, init_module and delete_module straight from ctypes, each
    // refused (a file that is no module, no module by that name).
    let dir = tempfile::tempdir().unwrap();
    let home = home_with_secret(dir.path());
    let script = r#"
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
time.sleep(1.5)
path = os.path.join(os.environ['HOME'], 'rootkit.ko')
with open(path, 'wb') as f:
    f.write(b'not an ELF module')
fd = os.open(path, os.O_RDONLY)
assert libc.syscall(313, fd, b"", 0) != 0        # finit_module
buf = ctypes.create_string_buffer(b'\0' * 64)
assert libc.syscall(175, buf, 64, b"") != 0      # init_module
assert libc.syscall(176, b"proctor_no_such", 0) != 0  # delete_module
"#;
    let pol = dir.path().join("empty.toml");
    std::fs::write(&pol, "").unwrap();
    let r = run_py_in("audit", pol.to_str().unwrap(), &home, script);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let privs = r.of_type("privileged");
    let finit = privs
        .iter()
        .find(|p| p["syscall"] == "finit_module")
        .unwrap_or_else(|| panic!("{privs:?}"));
    assert!(
        bytes_of(&finit["path"]).ends_with(b"/rootkit.ko"),
        "{finit}"
    );
    assert!(finit["error"].as_i64().unwrap_or(0) > 0, "{finit}");
    assert!(
        privs.iter().any(|p| p["syscall"] == "init_module"),
        "{privs:?}"
    );
    assert!(
        privs
            .iter()
            .any(|p| p["syscall"] == "delete_module" && p["path"] == "proctor_no_such"),
        "{privs:?}"
    );
    let alerts = r.alerts();
    for call in ["finit_module", "init_module", "delete_module"] {
        assert!(
            alerts.iter().any(|a| a["kind"] == "PRIVILEGED_CALL"
                && a["summary"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("tried {call} "))),
            "{call}: {alerts:?}"
        );
    }
}

#[test]
#[ignore = "needs a kernel with BPF LSM: run by `make test-lsm` in a VM"]
fn an_execs_build_id_is_known_by_the_stamp_the_kernel_took_on_a_distribution_kernel_too() {
    // pr_exec reads the executable's size and times through CO-RE (Debian's 6.1 keeps them as
    // timespec64 i_mtime and i_ctime, 6.18 as seconds and nanoseconds apart), and the monitor
    // reads a build-id only from a file that still has that stamp: a wrong read leaves every
    // exec without one. A copy whose mtime is set back has times that differ from each other
    // (the host's /bin/true, which the VM sees, may have its mtime equal to its ctime). It runs
    // long enough to be read through /proc/PID/exe: the path the kernel gives for a file in the
    // VM's chroot (/newroot/...) is not one proctor there can open once the process is gone.
    let dir = tempfile::tempdir().unwrap();
    let home = home_with_secret(dir.path());
    let script = "import os, shutil, subprocess\n\
                  shutil.copy('/bin/sleep', 'nap')\n\
                  os.utime('nap', (1_000_000_000, 1_000_000_000))\n\
                  for _ in range(3):\n    subprocess.run(['./nap', '0.3'])\n";
    let pol = dir.path().join("empty.toml");
    std::fs::write(&pol, "").unwrap();
    let r = run_py_in("audit", pol.to_str().unwrap(), &home, script);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let execs = r.of_type("exec");
    let ids: Vec<&Value> = execs
        .iter()
        .filter(|e| bytes_of(&e["filename"]).ends_with(b"/nap"))
        .map(|e| &e["build_id"])
        .collect();
    assert_eq!(ids.len(), 3, "{execs:?}");
    assert!(
        ids.iter()
            .all(|id| id.as_str().is_some_and(|s| s.len() >= 16) && *id == ids[0]),
        "{execs:?}"
    );
}
