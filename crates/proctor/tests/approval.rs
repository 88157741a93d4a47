//! Real-kernel tests of the seccomp layer of `run`: the ask approval flow (connects and execs
//! held for a verdict on DIR/approval.sock, fail closed) and the self-protection guard (an
//! agent running as root cannot signal or ptrace proctor). Needs root and seccomp user
//! notification, which every machine we run on has: these tests fail, never skip.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn require_user_notif() {
    let avail = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap();
    assert!(
        avail.split_whitespace().any(|a| a == "user_notif"),
        "this kernel lacks seccomp user notification ({avail}); every machine we test on has it"
    );
}

/// A started `proctor run` in its own process group (so a group kill that got through could
/// not reach the test harness), with its output directory.
struct Live {
    child: KillOnDrop,
    dir: tempfile::TempDir,
}

fn start(extra: &[&str], cmd: &[&str]) -> Live {
    require_root();
    require_user_notif();
    let dir = tempfile::tempdir().unwrap();
    let child = run_command(dir.path(), extra, cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    Live {
        child: KillOnDrop::new(child),
        dir,
    }
}

impl Live {
    fn finish(self) -> (std::process::Output, tempfile::TempDir) {
        let out = self.child.into_inner().wait_with_output().unwrap();
        (out, self.dir)
    }
}

/// A scripted approver on the verdict socket.
struct Approver {
    r: BufReader<UnixStream>,
    w: UnixStream,
    /// Messages received but not taken yet, oldest first.
    kept: VecDeque<Value>,
}

impl Approver {
    fn connect(dir: &Path) -> Approver {
        let sock = dir.join("approval.sock");
        wait_for(&sock, "the verdict socket");
        let s = UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Approver {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
            kept: VecDeque::new(),
        }
    }

    /// The next message; None when proctor closed the socket.
    fn next(&mut self) -> Option<Value> {
        let mut l = String::new();
        let n = self
            .r
            .read_line(&mut l)
            .expect("a line from proctor within 20 s");
        (n > 0).then(|| serde_json::from_str(&l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
    }

    /// The oldest message of type `ty` not taken yet (see `next_where`).
    fn next_of(&mut self, ty: &str) -> Value {
        self.next_where(ty, |_| true)
    }

    /// The oldest message of type `ty` that `want` accepts, not taken yet. Messages passed
    /// over are kept for later calls, not dropped: the protocol does not order an ack after
    /// the next request (the verdict releases the agent, whose next held action may be sent
    /// before the ack), and a client that dropped what it skipped lost that request (seen on a
    /// loaded machine).
    fn next_where(&mut self, ty: &str, want: impl Fn(&Value) -> bool) -> Value {
        let take = |m: &Value| m["type"] == ty && want(m);
        if let Some(i) = self.kept.iter().position(take) {
            return self.kept.remove(i).unwrap();
        }
        loop {
            match self.next() {
                Some(m) if take(&m) => return m,
                Some(m) => self.kept.push_back(m),
                None => panic!(
                    "proctor closed the verdict socket before a {ty:?}; not taken {:?}",
                    self.kept
                ),
            }
        }
    }

    fn verdict(&mut self, id: &Value, digest: &str, verdict: &str) {
        let line = serde_json::json!({
            "type": "verdict", "id": id, "digest": digest, "verdict": verdict, "reason": "test",
        });
        writeln!(self.w, "{line}").unwrap();
    }
}

fn stdout_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn ask_connect_is_approved_denied_and_times_out_to_deny() {
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    let (lp, ap, bp, cp) = (port(&allowed), port(&a), port(&b), port(&c));
    let tmp = tempfile::tempdir().unwrap();
    let pol = PolicyBuilder::new()
        .allow([format!("127.0.0.1:{lp}")])
        .network(Verdict::Ask)
        // Long enough that the test's answers to A and B land in time on a loaded machine.
        .ask_timeout("4s")
        .write(tmp.path());
    // The agent connects only once the test's approver is attached (the go file): a connect
    // held before that would be pending in the first sync.
    let go = tmp.path().join("go");
    // Connects in order: allowlisted (no ask), A (approved), A again (now on the kernel
    // allowlist: no ask), B (denied), C (no verdict: times out), and a unix socket (no ask).
    let script = format!(
        r#"
import socket, errno, time, os
while not os.path.exists({go:?}):
    time.sleep(0.01)
def go(port):
    s = socket.socket()
    t = time.monotonic()
    try:
        s.connect(('127.0.0.1', port)); r = 'ok'
    except OSError as e:
        r = errno.errorcode[e.errno]
    return r, time.monotonic() - t
for p in [{lp}, {ap}, {ap}, {bp}, {cp}]:
    r, dt = go(p)
    print(p, r, round(dt, 2), flush=True)
u = socket.socket(socket.AF_UNIX)
try:
    u.connect('/nonexistent/sock')
except OSError as e:
    print('unix', errno.errorcode[e.errno], flush=True)
"#
    );
    let live = start(
        &["--mode", "enforce", "--policy", &pol],
        &["/usr/bin/python3", "-c", &script],
    );
    let mut ap_ = Approver::connect(live.dir.path());
    assert_eq!(ap_.next_of("sync")["pending"], 0);
    std::fs::write(&go, b"").unwrap();

    // A: first a verdict with a digest that is not the action's: refused, still pending.
    let req = ap_.next_of("request");
    assert_eq!(req["action"]["kind"], "connect");
    assert_eq!(req["action"]["port"], ap);
    assert_eq!(req["action"]["addr"], "127.0.0.1");
    let digest = req["digest"].as_str().unwrap().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 7 + 64,
        "{digest}"
    );
    let wrong = format!("sha256:{}", "0".repeat(64));
    ap_.verdict(&req["id"], &wrong, "allow");
    let err = ap_.next_of("error");
    assert_eq!(err["id"], req["id"]);
    assert!(
        err["message"].as_str().unwrap().contains("does not match"),
        "{err}"
    );
    ap_.verdict(&req["id"], &digest, "allow");
    assert_eq!(ap_.next_of("ack")["verdict"], "allow");

    // B: denied.
    let req_b = ap_.next_of("request");
    assert_eq!(
        req_b["action"]["port"], bp,
        "A again was not asked: {req_b}"
    );
    ap_.verdict(&req_b["id"], req_b["digest"].as_str().unwrap(), "deny");
    assert_eq!(ap_.next_of("ack")["verdict"], "deny");

    // C: no answer.
    let req_c = ap_.next_of("request");
    assert_eq!(req_c["action"]["port"], cp);
    let resolved = ap_.next_where("resolved", |m| m["id"] == req_c["id"]);
    assert_eq!(
        (resolved["id"].clone(), resolved["decided_by"].as_str()),
        (req_c["id"].clone(), Some("timeout"))
    );

    let (out, dir) = live.finish();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = stdout_lines(&out);
    let results: Vec<&str> = lines
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        results,
        vec!["ok", "ok", "ok", "EPERM", "EPERM", "ENOENT"],
        "{lines:?} {stderr}"
    );
    let c_wait: f64 = lines[4].split(' ').nth(2).unwrap().parse().unwrap();
    assert!(
        (3.9..12.0).contains(&c_wait),
        "the unanswered connect waited for the 4 s timeout: {c_wait}"
    );
    assert!(
        stderr.contains("network ask: connects outside the allowlist held"),
        "{stderr}"
    );
    assert!(stderr.contains("self-protection guard"), "{stderr}");

    let recs = read_records(&dir.path().join("audit.jsonl"));
    let approvals: Vec<&Value> = recs.iter().filter(|r| r["type"] == "approval").collect();
    assert_eq!(approvals.len(), 3, "{approvals:#?}");
    let allow = approvals
        .iter()
        .find(|r| r["verdict"] == "allow")
        .expect("the approval");
    assert_eq!(allow["digest"], digest.as_str());
    assert_eq!(allow["decided_by"], "approver");
    assert_eq!(allow["approver"]["pid"], std::process::id());
    assert_eq!(allow["approver"]["uid"], 0);
    assert!(allow["latency_ns"].as_u64().unwrap() > 0);
    assert!(!allow["exec_id"].as_str().unwrap().is_empty());
    let deny = approvals
        .iter()
        .find(|r| r["decided_by"] == "approver" && r["verdict"] == "deny");
    assert!(deny.is_some(), "{approvals:#?}");
    let timeout = approvals
        .iter()
        .find(|r| r["decided_by"] == "timeout")
        .unwrap();
    assert_eq!(timeout["verdict"], "deny");
    assert!(timeout["approver"].is_null());

    let alerts: Vec<Value> = read_records(&dir.path().join("alerts.jsonl"))
        .into_iter()
        .filter(|a| a["channel"] == "APPROVAL")
        .collect();
    assert_eq!(alerts.len(), 2, "denied and timed out: {alerts:#?}");
    assert!(alerts
        .iter()
        .all(|a| a["action"] == "BLOCKED" && a["kind"] == "CONNECT_DENIED"));
    let v = proctor().arg("verify").arg(dir.path()).output().unwrap();
    assert!(
        v.status.success(),
        "the chain and the signed alerts verify: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    assert!(
        !dir.path().join("approval.sock").exists(),
        "socket removed at exit"
    );
}

#[test]
fn ask_exec_is_held_and_the_cli_allows_and_denies() {
    let tmp = tempfile::tempdir().unwrap();
    // A private copy, so the identity (device+inode) is ours alone.
    let bin = tmp.path().join("risky");
    copy_executable("/usr/bin/true", &bin);
    let bin = bin.to_str().unwrap().to_string();
    let pol = PolicyBuilder::new()
        .ask_exec([&bin])
        .ask_timeout("20s")
        .write(tmp.path());
    let script = format!(
        "{bin} one && echo first=ok; {bin} two; echo second=$?; /bin/true && echo plain=ok"
    );
    let live = start(
        &["--mode", "enforce", "--policy", &pol],
        &["/bin/sh", "-c", &script],
    );
    let dir = live.dir.path().to_path_buf();
    wait_for(&dir.join("approval.sock"), "the verdict socket");
    let cli = |args: &[&str]| {
        let out = proctor()
            .arg("approve")
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stdout, stderr) = cli(&["--allow", "--id", "1", "--reason", "ok"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "1: allow");
    let (code, stdout, stderr) = cli(&["--deny", "--id", "2", "--json"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("\"type\":\"request\"") && stdout.contains("\"type\":\"ack\""),
        "raw lines: {stdout}"
    );
    // Bad use is a one-line error, exit 2.
    let (code, _, stderr) = cli(&["--allow"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (out, dir) = live.finish();
    let lines = stdout_lines(&out);
    assert_eq!(
        lines,
        vec!["first=ok", "second=126", "plain=ok"],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = read_records(&dir.path().join("audit.jsonl"));
    let approvals: Vec<&Value> = recs.iter().filter(|r| r["type"] == "approval").collect();
    assert_eq!(approvals.len(), 2, "{approvals:#?}");
    assert_eq!(approvals[0]["verdict"], "allow");
    assert_eq!(approvals[0]["action"]["kind"], "exec");
    assert_eq!(approvals[0]["action"]["argv"][1], "one");
    assert_eq!(approvals[0]["reason"], "ok");
    assert_eq!(approvals[1]["verdict"], "deny");
    assert_eq!(approvals[1]["action"]["argv"][1], "two");
    let alerts = read_records(&dir.path().join("alerts.jsonl"));
    assert!(alerts
        .iter()
        .any(|a| a["kind"] == "EXEC_DENIED" && a["action"] == "BLOCKED"));
}

#[test]
fn shadow_mode_records_would_ask_and_holds_nothing() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let pol = PolicyBuilder::new().network(Verdict::Ask).write(tmp.path());
    let script =
        format!("import socket; s = socket.socket(); s.connect(('127.0.0.1', {p})); print('ok')");
    let r = run_under(
        &["--mode", "shadow", "--policy", &pol],
        &["/usr/bin/python3", "-c", &script],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(String::from_utf8_lossy(&r.out.stdout).trim(), "ok");
    let would: Vec<&Value> = r
        .of_type("approval")
        .into_iter()
        .filter(|a| a["verdict"] == "would_ask")
        .collect();
    assert_eq!(would.len(), 1, "{:?}", r.of_type("approval"));
    assert_eq!(would[0]["action"]["port"], p);
}

#[test]
fn attach_refuses_ask_rules_in_enforce_mode() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let pol = PolicyBuilder::new().network(Verdict::Ask).write(tmp.path());
    let mut sleeper = KillOnDrop::new(Command::new("/bin/sleep").arg("30").spawn().unwrap());
    let out = proctor()
        .args(["attach", "--mode", "enforce", "--policy", &pol, "--out"])
        .arg(tmp.path().join("out"))
        .args(["--pid", &sleeper.id().to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("only `proctor run` can install"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    let _ = sleeper.kill();
}

#[test]
fn a_root_agent_cannot_kill_or_ptrace_proctor() {
    // Outside the agent: a process the agent may still signal, and one that signals proctor.
    let mut outside = KillOnDrop::new(Command::new("/bin/sleep").arg("60").spawn().unwrap());
    let script = format!(
        r#"
import os, ctypes, errno, signal, subprocess, time
libc = ctypes.CDLL(None, use_errno=True)
proctor = os.getppid()
def attempt(name, f):
    try:
        f(); r = 'ok'
    except OSError as e:
        r = errno.errorcode[e.errno]
    print(name, r, flush=True)
attempt('kill', lambda: os.kill(proctor, signal.SIGKILL))
attempt('killpg0', lambda: os.kill(0, signal.SIGKILL))
attempt('killpg', lambda: os.killpg(os.getpgid(proctor), signal.SIGKILL))
def ptrace():
    if libc.ptrace(16, proctor, None, None) != 0:
        raise OSError(ctypes.get_errno(), 'ptrace')
attempt('ptrace', ptrace)
def pidfd():
    fd = os.pidfd_open(proctor)
attempt('pidfd_open', pidfd)
def procfd():
    fd = os.open('/proc/%d' % proctor, os.O_RDONLY | os.O_DIRECTORY)
    signal.pidfd_send_signal(fd, signal.SIGKILL)
attempt('pidfd_send_signal', procfd)
tid = [t for t in os.listdir('/proc/%d/task' % proctor) if int(t) != proctor][0]
def tgkill():
    if libc.syscall(234, proctor, int(tid), signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), 'tgkill')
attempt('tgkill', tgkill)
attempt('thread', lambda: os.kill(int(tid), signal.SIGKILL))
child = subprocess.Popen(['/bin/sleep', '30'])
attempt('own_child', lambda: os.kill(child.pid, signal.SIGTERM))
child.wait()
attempt('outside', lambda: os.kill({outside}, signal.SIGTERM))
attempt('self0', lambda: os.kill(os.getpid(), 0))
status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())
print('nnp', status['NoNewPrivs'].strip(), 'filters', status['Seccomp_filters'].strip())
"#,
        outside = outside.id()
    );
    let live = start(&[], &["/usr/bin/python3", "-c", &script]);
    let (out, dir) = live.finish();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "proctor survived: {stderr}");
    let lines = stdout_lines(&out);
    assert_eq!(
        lines,
        vec![
            "kill EPERM",
            "killpg0 EPERM",
            "killpg EPERM",
            "ptrace EPERM",
            "pidfd_open EPERM",
            "pidfd_send_signal EPERM",
            "tgkill EPERM",
            "thread EPERM",
            "own_child ok",
            "outside ok",
            "self0 ok",
            // The filter is loaded while privileged: no_new_privs is not forced on the agent.
            "nnp 0 filters 1",
        ],
        "{stderr}"
    );
    let status = outside.wait().unwrap();
    assert!(
        !status.success(),
        "the outside process got the agent's SIGTERM"
    );
    assert!(stderr.contains("self-protection guard"), "banner: {stderr}");
    let recs = read_records(&dir.path().join("audit.jsonl"));
    let tampers: Vec<&Value> = recs.iter().filter(|r| r["type"] == "tamper").collect();
    let syscalls: Vec<&str> = tampers
        .iter()
        .map(|t| t["syscall"].as_str().unwrap())
        .collect();
    assert_eq!(
        syscalls,
        vec![
            "kill",
            "kill",
            "kill",
            "ptrace",
            "pidfd_open",
            "pidfd_send_signal",
            "tgkill",
            "kill"
        ],
        "{tampers:#?}"
    );
    let alerts: Vec<Value> = read_records(&dir.path().join("alerts.jsonl"))
        .into_iter()
        .filter(|a| a["channel"] == "SELF_PROTECTION")
        .collect();
    assert_eq!(alerts.len(), 8);
    assert!(alerts
        .iter()
        .all(|a| a["kind"] == "PROCTOR_TAMPER" && a["action"] == "BLOCKED"));
    let v = proctor().arg("verify").arg(dir.path()).output().unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));

    // Processes outside the agent are not mediated: proctor still takes signals from them
    // (an interrupted proctor stops its agent and exits).
    let live = start(&[], &["/bin/sleep", "30"]);
    // Its agent's exec recorded: proctor is in its loop, its signal handlers set.
    wait_for_record(
        &live.dir.path().join("audit.jsonl"),
        "the agent's exec",
        |r| r["type"] == "exec",
    );
    let t = Instant::now();
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(
        unsafe { libc::kill(live.child.id() as i32, libc::SIGTERM) },
        0
    );
    let (out, _) = live.finish();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM));
}
