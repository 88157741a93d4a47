//! Real-kernel tests of enforcement: blocked actions fail in the kernel for the agent only, each
//! block is a decision record and a BLOCKED alert, shadow mode blocks nothing, and the mode can be
//! switched on a running agent.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

#[test]
fn network_block_refuses_unlisted_destinations_for_the_agent_only() {
    require_root();
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let blocked = TcpListener::bind("127.0.0.1:0").unwrap();
    let named = TcpListener::bind("127.0.0.1:0").unwrap();
    let (ap, bp, np) = (
        allowed.local_addr().unwrap().port(),
        blocked.local_addr().unwrap().port(),
        named.local_addr().unwrap().port(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let pol = PolicyBuilder::new()
        .network(Verdict::Block)
        .allow([format!("127.0.0.1:{ap}"), format!("localhost:{np}")])
        .write(tmp.path());
    let script = format!(
        r#"
import socket, errno
def try_connect(port):
    s = socket.socket()
    try:
        s.connect(('127.0.0.1', port)); return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]
print(try_connect({ap}), try_connect({np}), try_connect({bp}))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b'x', ('127.0.0.1', {bp})); print('sent')
except OSError as e:
    print(errno.errorcode[e.errno])
"#
    );
    let r = run_enforced(&pol, &["/usr/bin/python3", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let stdout = String::from_utf8_lossy(&r.out.stdout).to_string();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        vec!["ok ok EPERM", "EPERM"],
        "allowed IP and host name connect, the rest is refused with EPERM; {}",
        r.stderr()
    );
    let decisions = r.decisions();
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    assert!(decisions.iter().all(|d| d["verdict"] == "blocked"));
    assert!(decisions
        .iter()
        .any(|d| d["what"] == "connect" && d["dest"]["port"] == bp));
    assert!(decisions
        .iter()
        .any(|d| d["what"] == "sendmsg" && d["dest"]["port"] == bp));
    let blocked_alerts: Vec<_> = r
        .alerts()
        .into_iter()
        .filter(|a| a["action"] == "BLOCKED")
        .collect();
    assert_eq!(blocked_alerts.len(), 2);
    assert!(blocked_alerts
        .iter()
        .all(|a| a["channel"] == "L4" && a["kind"] == "EGRESS_BLOCKED"));
    assert!(
        r.stderr().contains("network: egress outside"),
        "banner names the layer: {}",
        r.stderr()
    );

    // While an enforcing proctor runs (its agent has started), a process outside the agent
    // reaches the blocked port.
    let dir2 = tempfile::tempdir().unwrap();
    let go = dir2.path().join("go");
    let out2 = dir2.path().join("out");
    let child = proctor()
        .args(["run", "--mode", "enforce", "--policy", &pol, "--out"])
        .arg(&out2)
        .args(["--", "/bin/sh", "-c"])
        .arg(format!(
            "while [ ! -e {} ]; do sleep 0.05; done",
            go.display()
        ))
        .spawn()
        .unwrap();
    let mut child = KillOnDrop::new(child);
    wait_for_record(&out2.join("audit.jsonl"), "the agent's exec", |r| {
        r["type"] == "exec"
    });
    let outside = std::net::TcpStream::connect(("127.0.0.1", bp));
    assert!(
        outside.is_ok(),
        "a process outside the agent must never be affected"
    );
    std::fs::write(&go, "").unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn forbidden_exec_is_killed_by_identity_even_through_a_hard_link() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let pol = PolicyBuilder::new()
        .block_exec(["/usr/bin/id"])
        .write(tmp.path());
    // A hard link under another name shares device+inode: still refused.
    let link = tmp.path().join("innocent-name");
    std::fs::hard_link("/usr/bin/id", &link)
        .or_else(|_| std::os::unix::fs::symlink("/usr/bin/id", &link))
        .unwrap();
    let script = format!(
        "import subprocess\nfor p in ['/usr/bin/id', '{}', '/usr/bin/true']:\n    print(subprocess.run([p], stdout=subprocess.DEVNULL).returncode)",
        link.display()
    );
    let r = run_enforced(&pol, &["/usr/bin/python3", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let codes: Vec<String> = String::from_utf8_lossy(&r.out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        codes,
        vec!["-9", "-9", "0"],
        "id and its link are killed, true runs"
    );
    let d = r.decisions();
    assert_eq!(d.len(), 2);
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata("/usr/bin/id").unwrap().ino();
    assert!(d
        .iter()
        .all(|x| x["what"] == "exec" && x["ino"] == ino && x["verdict"] == "blocked"));
    assert_eq!(
        r.alerts()
            .iter()
            .filter(|a| a["kind"] == "EXEC_BLOCKED" && a["action"] == "BLOCKED")
            .count(),
        2
    );
    // Outside the agent, the same binary runs.
    assert!(Command::new("/usr/bin/id")
        .output()
        .unwrap()
        .status
        .success());
}

#[test]
fn ptrace_attach_by_the_agent_is_stopped_and_the_target_resumes() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let pol = PolicyBuilder::new()
        .ptrace(Verdict::Block)
        .write(tmp.path());
    let marker = tmp.path().join("target-finished");
    let go = tmp.path().join("go");
    // The agent starts a target, then a tracer child attaches to it; the tracer dies, the
    // target must not be left stopped by PTRACE_ATTACH's SIGSTOP: once told to (it is alive
    // all along the attach, however slow the machine), it finishes its work.
    let script = format!(
        r#"
import ctypes, os, subprocess, sys, time
target = subprocess.Popen(['/bin/sh', '-c', 'while [ ! -e {go} ]; do sleep 0.05; done; touch {m}'])
time.sleep(0.2)
tracer = os.fork()
if tracer == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace(16, target.pid, None, None)
    os._exit(0)
_, status = os.waitpid(tracer, 0)
print('tracer', os.WTERMSIG(status) if os.WIFSIGNALED(status) else 'exited')
open('{go}', 'w').close()
target.wait(timeout=60)
"#,
        m = marker.display(),
        go = go.display()
    );
    let r = run_enforced(&pol, &["/usr/bin/python3", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(String::from_utf8_lossy(&r.out.stdout).trim(), "tracer 9");
    assert!(
        marker.exists(),
        "the ptrace target was resumed and finished"
    );
    let d = r.decisions();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["what"], "ptrace");
    assert!(r
        .alerts()
        .iter()
        .any(|a| a["kind"] == "PTRACE_BLOCKED" && a["channel"] == "L5"));
}

#[test]
fn shadow_mode_records_would_block_and_blocks_nothing() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pol = PolicyBuilder::new()
        .network(Verdict::Block)
        .block_exec(["/usr/bin/id"])
        .ptrace(Verdict::Block)
        .write(tmp.path());
    let script = format!(
        "import socket, subprocess\nsocket.create_connection(('127.0.0.1', {port})).close()\nprint(subprocess.run(['/usr/bin/id'], stdout=subprocess.DEVNULL).returncode)"
    );
    let r = run_under(
        &["--mode", "shadow", "--policy", &pol],
        &["/usr/bin/python3", "-c", &script],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(String::from_utf8_lossy(&r.out.stdout).trim(), "0", "id ran");
    let d = r.decisions();
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d.iter().all(|x| x["verdict"] == "would_block"));
    assert_eq!(
        r.alerts()
            .iter()
            .filter(|a| a["action"] == "WOULD_BLOCK")
            .count(),
        2
    );
    assert_eq!(r.of_type("sensor_start")[0]["mode"], "shadow");
}

#[test]
fn mode_switches_on_a_running_agent_and_is_recorded() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let pol = PolicyBuilder::new()
        .block_exec(["/usr/bin/id"])
        .write(tmp.path());
    let out = tmp.path().join("out");
    let go = tmp.path().join("go");
    let script = format!(
        "import os, subprocess, time\nprint(subprocess.run(['/usr/bin/id'], stdout=subprocess.DEVNULL).returncode, flush=True)\nwhile not os.path.exists('{go}'):\n    time.sleep(0.05)\nprint(subprocess.run(['/usr/bin/id'], stdout=subprocess.DEVNULL).returncode)",
        go = go.display()
    );
    let child = proctor()
        .args(["run", "--mode", "audit", "--policy", &pol, "--out"])
        .arg(&out)
        .args(["--", "/usr/bin/python3", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop::new(child);
    let lines = Lines::of(&mut child);
    // The first `id` has run in audit mode (the agent printed its status) before the switch.
    assert_eq!(lines.next("the first id's status"), "0");
    let st = proctor()
        .arg("mode")
        .arg(&out)
        .arg("enforce")
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    // Wait for the switch to be recorded before letting the agent continue.
    let audit = out.join("audit.jsonl");
    wait_for_record(&audit, "the mode change", |r| r["type"] == "mode_change");
    std::fs::write(&go, "").unwrap();
    assert_eq!(lines.next("the second id's status"), "-9");
    assert!(child.into_inner().wait().unwrap().success());
    assert_eq!(lines.rest(), Vec::<String>::new());
    let recs = read_records(&audit);
    let change = recs.iter().find(|r| r["type"] == "mode_change").unwrap();
    assert_eq!(
        (change["from"].as_str(), change["to"].as_str()),
        (Some("audit"), Some("enforce"))
    );
    assert!(
        !out.join("proctor.pid").exists(),
        "pid file removed at exit"
    );
}

#[test]
fn landlock_keeps_a_run_agent_out_of_sensitive_files_only() {
    require_root();
    let agent = AgentHome::new();
    let home = agent.home();
    agent.file(".aws/credentials", "secret");
    agent.file("work/notes.txt", "fine");
    let pol = PolicyBuilder::new()
        .files(Verdict::Block)
        .write(agent.tmp());
    let script = format!(
        r#"
import subprocess
for p in ['{h}/.aws/credentials', '{h}/work/notes.txt', '/etc/hostname']:
    try:
        open(p).read(); print('read')
    except PermissionError:
        print('EACCES')
open('{h}/work/new.txt', 'w').write('x'); print('wrote')
print(subprocess.run(['/bin/cat', '{h}/.aws/credentials'], capture_output=True).returncode)
"#,
        h = home.display()
    );
    let r = agent.enforce_py(Some(&pol), &script);
    let stderr = r.stderr();
    assert!(r.out.status.success(), "{stderr}");
    assert_eq!(
        r.stdout_lines(),
        vec!["EACCES", "read", "read", "wrote", "1"],
        "{stderr}"
    );
    assert!(
        stderr.contains("files: Landlock ABI"),
        "banner names the layer: {stderr}"
    );
    let d = r.decisions();
    assert_eq!(d.len(), 2, "python's open and cat's open: {d:?}");
    assert!(d
        .iter()
        .all(|x| x["what"] == "open" && x["verdict"] == "blocked"));
    // Outside the agent, the file is readable as ever.
    assert_eq!(
        std::fs::read_to_string(home.join(".aws/credentials")).unwrap(),
        "secret"
    );
}

#[test]
fn enforce_keeps_a_run_agent_off_the_disks_and_away_from_mknod_and_dev_still_works() {
    require_root();
    // The first block device of this host, as the attack would pick it.
    let disk = std::fs::read_dir("/dev")
        .expect("read /dev")
        .flatten()
        .filter(|e| {
            use std::os::unix::fs::FileTypeExt;
            e.file_type().is_ok_and(|t| t.is_block_device())
        })
        .map(|e| e.path())
        .min()
        .expect("this host has a block device in /dev");
    let agent = AgentHome::new();
    let pol = PolicyBuilder::new()
        .files(Verdict::Block)
        .write(agent.tmp());
    let script = format!(
        r#"
import os, stat, subprocess, sys
def attempt(what, f):
    try:
        f(); print(what, 'ok')
    except PermissionError:
        print(what, 'EACCES')
attempt('disk', lambda: os.close(os.open('{disk}', os.O_RDONLY)))
attempt('mknod-block', lambda: os.mknod('{t}/d', 0o600 | stat.S_IFBLK, os.makedev(7, 0)))
attempt('mknod-char', lambda: os.mknod('{t}/m', 0o600 | stat.S_IFCHR, os.makedev(1, 1)))
attempt('fifo', lambda: os.mkfifo('{t}/fifo'))
for dev in ['/dev/null', '/dev/zero', '/dev/urandom']:
    attempt(dev, lambda: os.close(os.open(dev, os.O_RDWR)))
attempt('shm', lambda: open('/dev/shm/proctor-test-' + str(os.getpid()), 'w').close())
print('echo', subprocess.run(['/bin/sh', '-c', 'echo hi > /dev/stdout 2>/dev/null; cat /dev/fd/0 </dev/null'], capture_output=True).returncode)
"#,
        disk = disk.display(),
        t = agent.tmp().display(),
    );
    let r = agent.enforce_py(Some(&pol), &script);
    let stderr = r.stderr();
    assert!(r.out.status.success(), "{stderr}");
    assert_eq!(
        r.stdout_lines(),
        vec![
            "disk EACCES",
            "mknod-block EACCES",
            "mknod-char EACCES",
            "fifo ok",
            "/dev/null ok",
            "/dev/zero ok",
            "/dev/urandom ok",
            "shm ok",
            "echo 0",
        ],
        "{stderr}"
    );
    assert!(stderr.contains("devices: Landlock denies"), "{stderr}");
    for e in std::fs::read_dir("/dev/shm").unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("proctor-test-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[test]
fn contain_isolates_freezes_and_kills_the_agent_on_request_only() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = tmp.path().join("out");
    let tick = tmp.path().join("ticks");
    let go = tmp.path().join("go");
    // An agent that connects once, waits for `go`, connects again, then counts ticks forever.
    let script = format!(
        r#"
import os, socket, errno, time
def c():
    try:
        socket.create_connection(('127.0.0.1', {port}), timeout=2).close(); return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
print(os.getpid(), flush=True)
print(c(), flush=True)
while not os.path.exists('{go}'):
    time.sleep(0.05)
print(c(), flush=True)
n = 0
while True:
    n += 1
    open('{tick}', 'w').write(str(n))
    time.sleep(0.05)
"#,
        go = go.display(),
        tick = tick.display()
    );
    let child = proctor()
        .args(["run", "--out"])
        .arg(&out)
        .args(["--", "/usr/bin/python3", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop::new(child);
    let lines = Lines::of(&mut child);
    let pid = lines.next("the agent's pid");
    // The agent's cgroup, where the freezer reports when every task is frozen.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let events = std::path::Path::new(
        &proctor_sensor::features::mount_of("cgroup2").expect("a cgroup2 mount"),
    )
    .join(
        cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::/"))
            .expect("a cgroup2 line"),
    )
    .join("cgroup.events");
    let frozen = || {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .any(|l| l == "frozen 1")
    };
    // The first connect is made before the isolation.
    assert_eq!(
        lines.next("the first connect"),
        "ok",
        "connect works before isolation"
    );
    let contain = |flag: &str| {
        let o = proctor()
            .arg("contain")
            .arg(&out)
            .arg(flag)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "contain {flag}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    contain("--isolate-net");
    std::fs::write(&go, "").unwrap();
    assert_eq!(
        lines.next("the second connect"),
        "EPERM",
        "connect is refused after isolation, even in audit mode"
    );
    // Ticks advance while running, stop while frozen, resume when thawed.
    let ticks = || {
        std::fs::read_to_string(&tick)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
    };
    wait_until("the agent ticking", || ticks().is_some());
    assert!(!frozen());
    contain("--freeze");
    // The freezer is asynchronous: cgroup.events says when every task has stopped.
    wait_until("the agent's cgroup frozen", frozen);
    let frozen_at = ticks();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ticks(), frozen_at, "a frozen agent does not run");
    contain("--thaw");
    wait_until("a thawed agent ticking again", || ticks() > frozen_at);
    contain("--kill");
    let status = child.into_inner().wait().unwrap();
    assert_eq!(status.code(), Some(128 + 9), "the agent was killed");
    assert_eq!(lines.rest(), Vec::<String>::new());
    let recs = read_records(&out.join("audit.jsonl"));
    let actions: Vec<&str> = recs
        .iter()
        .filter(|r| r["type"] == "containment")
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["isolate-net", "freeze", "thaw", "kill"]);
    assert!(recs
        .iter()
        .any(|r| r["type"] == "decision" && r["what"] == "connect"));
}

#[test]
fn an_agent_run_as_another_user_cannot_kill_or_trace_proctor() {
    require_root();
    // The agent learns proctor's pid from its parent pid and tries to kill and trace it.
    let script = r#"
import ctypes, os, signal
proctor = os.getppid()
try:
    os.kill(proctor, signal.SIGKILL); print('killed')
except PermissionError:
    print('kill EPERM')
libc = ctypes.CDLL(None, use_errno=True)
print('ptrace', libc.ptrace(16, proctor, None, None), ctypes.get_errno())
print(os.getuid(), os.environ['HOME'])
"#;
    let r = run_under(&["--user", "nobody"], &["/usr/bin/python3", "-c", script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let out = String::from_utf8_lossy(&r.out.stdout).to_string();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "kill EPERM",
            &format!("ptrace -1 {}", libc::EPERM),
            "65534 /nonexistent"
        ],
        "{}",
        r.stderr()
    );
    // proctor survived and recorded the whole run, including the agent's attempts: the
    // seccomp guard refuses them before the syscall runs (so before its tracepoint) and
    // records each as `tamper`.
    assert_eq!(last_observation(&r.records)["type"], "sensor_stop");
    let tampers: Vec<&str> = r
        .of_type("tamper")
        .iter()
        .filter_map(|t| t["syscall"].as_str())
        .collect();
    assert_eq!(tampers, vec!["kill", "ptrace"], "{}", r.stderr());
    let bad = run_under(&["--user", "no-such-user-proctor"], &["/bin/true"]);
    assert_eq!(bad.code(), Some(2));
    assert!(bad.stderr().contains("no such user"), "{}", bad.stderr());
}
