//! A root agent under `proctor run` attacks proctor itself, as a red team did: signals without
//! kill(2), control requests from inside, bpf() on proctor's maps, cgroup escapes, and reading
//! the signing key. Each attack must fail (EPERM/EACCES), leave a `tamper` record and raise a
//! SELF_PROTECTION alert, and proctor must survive to write `sensor_stop`. These run on kernels
//! without BPF LSM: the layers exercised are the seccomp guard and the agent's Landlock domain.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use std::os::unix::process::CommandExt;

/// `proctor run` in its own process group (so an attack on "proctor's process group" cannot
/// reach the test harness), as root, with `extra` options.
fn run_isolated(dir: &std::path::Path, extra: &[&str], script: &str) -> std::process::Output {
    require_root();
    proctor()
        .arg("run")
        .arg("--out")
        .arg(dir)
        .args(extra)
        .args(["--", "/usr/bin/python3", "-c", script])
        .process_group(0)
        .output()
        .expect("start proctor")
}

fn records(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let p = dir.join("audit.jsonl");
    if p.exists() {
        read_records(&p)
    } else {
        Vec::new()
    }
}

fn tampers(recs: &[serde_json::Value]) -> Vec<String> {
    recs.iter()
        .filter(|r| r["type"] == "tamper")
        .map(|r| r["syscall"].as_str().unwrap_or("").to_string())
        .collect()
}

fn self_protection_alerts(recs: &[serde_json::Value]) -> usize {
    recs.iter()
        .filter(|r| r["type"] == "alert" && r["channel"] == "SELF_PROTECTION")
        .count()
}

fn stdout_lines(o: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The agent aims SIGKILL at proctor through a file's owner (F_SETOWN, F_SETOWN_EX, the
/// socket ioctls FIOSETOWN and SIOCSPGRP; by pid and by process group) with F_SETSIG and
/// O_ASYNC: the kernel would send it on the next I/O without any kill(2). Each attempt must be
/// refused with EPERM and recorded; owning its own fds still works.
#[test]
fn signals_aimed_at_proctor_through_file_owners_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import fcntl, os, signal, socket, struct, time
proctor = os.getppid()
def wait_for(cond):
    # The signals arrive on the write; wait for their handlers, however loaded the machine.
    deadline = time.monotonic() + 60
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
pg = os.getpgid(proctor)
F_SETSIG, F_SETOWN_EX, FIOSETOWN, SIOCSPGRP = 10, 15, 0x8901, 0x8902
def arm(r, w, sig):
    fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_ASYNC)
    fcntl.fcntl(r, F_SETSIG, sig)
    os.write(w, b'x')
def pipe_attempt(name, set_owner):
    r, w = os.pipe()
    try:
        set_owner(r)
    except OSError as e:
        print(name, 'errno', e.errno, flush=True)
        return
    arm(r, w, signal.SIGKILL)
    print(name, 'armed', flush=True)
def sock_attempt(name, req, pid):
    a, b = socket.socketpair()
    try:
        fcntl.ioctl(a.fileno(), req, struct.pack('i', pid))
    except OSError as e:
        print(name, 'errno', e.errno, flush=True)
        return
    arm(a.fileno(), b.fileno(), signal.SIGKILL)
    print(name, 'armed', flush=True)
pipe_attempt('F_SETOWN', lambda fd: fcntl.fcntl(fd, fcntl.F_SETOWN, proctor))
pipe_attempt('F_SETOWN-pgrp', lambda fd: fcntl.fcntl(fd, fcntl.F_SETOWN, -pg))
pipe_attempt('F_SETOWN_EX', lambda fd: fcntl.fcntl(fd, F_SETOWN_EX, struct.pack('ii', 1, proctor)))
pipe_attempt('F_SETOWN_EX-pgrp', lambda fd: fcntl.fcntl(fd, F_SETOWN_EX, struct.pack('ii', 2, pg)))
sock_attempt('FIOSETOWN', FIOSETOWN, proctor)
sock_attempt('SIOCSPGRP', SIOCSPGRP, -pg)
# Its own fds, owned by itself: still allowed, and the signal arrives.
got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
r, w = os.pipe()
fcntl.fcntl(r, fcntl.F_SETOWN, os.getpid())
arm(r, w, signal.SIGUSR1)
wait_for(lambda: got)
print('own', got == [signal.SIGUSR1], flush=True)
# The in-memory variants on its own fds: proctor sets them on the agent's behalf, with the
# value it checked; the owner and the signal are as asked.
got2 = []
signal.signal(signal.SIGUSR2, lambda s, f: got2.append(s))
r, w = os.pipe()
fcntl.fcntl(r, F_SETOWN_EX, struct.pack('ii', 1, os.getpid()))
owner = fcntl.fcntl(r, fcntl.F_GETOWN)
arm(r, w, signal.SIGUSR2)
wait_for(lambda: got2)
a, b = socket.socketpair()
fcntl.ioctl(a.fileno(), FIOSETOWN, struct.pack('i', os.getpid()))
arm(a.fileno(), b.fileno(), signal.SIGUSR2)
wait_for(lambda: len(got2) >= 2)
print('own-ex', owner == os.getpid(), got2 == [signal.SIGUSR2] * 2, flush=True)
"#;
    let out = run_isolated(tmp.path(), &[], script);
    let recs = records(tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stdout_lines(&out),
        [
            "F_SETOWN errno 1",
            "F_SETOWN-pgrp errno 1",
            "F_SETOWN_EX errno 1",
            "F_SETOWN_EX-pgrp errno 1",
            "FIOSETOWN errno 1",
            "SIOCSPGRP errno 1",
            "own True",
            "own-ex True True"
        ],
        "status {:?}; {stderr}",
        out.status
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(last_observation(&recs)["type"], "sensor_stop", "{stderr}");
    assert_eq!(
        tampers(&recs),
        ["fcntl", "fcntl", "fcntl", "fcntl", "ioctl", "ioctl"],
        "{stderr}"
    );
    assert!(self_protection_alerts(&recs) >= 6, "{stderr}");
}

/// The agent tries to switch enforce to audit: it writes the request file the old control
/// path read and wakes proctor with SIGUSR1 through F_SETOWN; then it speaks to the control
/// socket itself, and runs `proctor mode` itself. All are refused; the forbidden binary stays
/// forbidden. An operator outside the agent still switches the mode, and the record names them.
#[test]
fn control_requests_from_inside_the_agent_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let go = tmp.path().join("go");
    let pol = PolicyBuilder::new()
        .block_exec(["/usr/bin/id"])
        .write(tmp.path());
    let script = format!(
        r#"
import fcntl, json, os, signal, socket, subprocess, time
out, go, me = {out:?}, {go:?}, {exe:?}
proctor = os.getppid()
# 1. The old file-based path: a request file and a SIGUSR1 without kill(2).
with open(os.path.join(out, 'control.request'), 'w') as f:
    json.dump({{'op': 'mode', 'mode': 'audit'}}, f)
r, w = os.pipe()
try:
    fcntl.fcntl(r, fcntl.F_SETOWN, proctor)
    fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_ASYNC)
    fcntl.fcntl(r, 10, signal.SIGUSR1)
    os.write(w, b'x')
    print('sigusr1 sent', flush=True)
except OSError as e:
    print('sigusr1 errno', e.errno, flush=True)
time.sleep(0.5)
# 2. The control socket, spoken to directly.
sock = os.path.join(out, 'control.sock')
if os.path.exists(sock):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sock)
        s.sendall(json.dumps({{'op': 'mode', 'mode': 'audit'}}).encode() + b'\n')
        reply = s.makefile().readline()
        print('socket', 'refused' if 'refused' in reply else 'accepted: ' + reply.strip(), flush=True)
    except OSError as e:
        print('socket errno', e.errno, flush=True)
else:
    print('socket absent', flush=True)
# 3. The real CLI, from inside.
rc = subprocess.run([me, 'mode', out, 'audit'], stderr=subprocess.DEVNULL).returncode
print('cli', 'failed' if rc != 0 else 'succeeded', flush=True)
time.sleep(0.3)
print('id', subprocess.run(['/usr/bin/id'], stdout=subprocess.DEVNULL).returncode, flush=True)
while not os.path.exists(go):
    time.sleep(0.05)
print('id', subprocess.run(['/usr/bin/id'], stdout=subprocess.DEVNULL).returncode, flush=True)
"#,
        out = out_dir.display().to_string(),
        go = go.display().to_string(),
        exe = env!("CARGO_BIN_EXE_proctor"),
    );
    require_root();
    let child = proctor()
        .args(["run", "--mode", "enforce", "--policy", &pol, "--out"])
        .arg(&out_dir)
        .args(["--", "/usr/bin/python3", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let child = KillOnDrop::new(child);
    // Once the agent has tried everything (its first `id`), the operator switches to audit
    // from outside; the second `id` then runs.
    let audit = out_dir.join("audit.jsonl");
    wait_for_record(&audit, "the agent's first id", |r| {
        r["type"] == "exec" && bytes_of(&r["filename"]).ends_with(b"/id")
    });
    let st = proctor()
        .arg("mode")
        .arg(&out_dir)
        .arg("audit")
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::write(&go, "").unwrap();
    let output = child.into_inner().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stdout_lines(&output),
        [
            "sigusr1 errno 1",
            "socket refused",
            "cli failed",
            "id -9",
            "id 0"
        ],
        "{stderr}"
    );
    let recs = records(&out_dir);
    let changes: Vec<_> = recs.iter().filter(|r| r["type"] == "mode_change").collect();
    assert_eq!(changes.len(), 1, "only the operator's request: {stderr}");
    let c = changes[0];
    assert_eq!(
        (c["from"].as_str(), c["to"].as_str()),
        (Some("enforce"), Some("audit"))
    );
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(c["requested_by"]["uid"], uid, "{c}");
    assert!(c["requested_by"]["pid"].as_u64().unwrap() > 0, "{c}");
    assert!(
        c["requested_by"]["exe"]
            .as_str()
            .is_some_and(|e| e.ends_with("/proctor")),
        "{c}"
    );
    let refused: Vec<_> = recs
        .iter()
        .filter(|r| r["type"] == "tamper" && r["syscall"] == "control")
        .collect();
    assert!(
        refused.len() >= 2,
        "socket and CLI attempts recorded: {stderr}"
    );
    assert!(self_protection_alerts(&recs) >= 3, "{stderr}");
}

/// The agent looks up proctor's tracked-set map with bpf() and deletes its own thread id from
/// it (what `bpftool map delete` does), then runs a binary: bpf() must be refused outright, so
/// the exec is still recorded.
#[test]
fn bpf_is_refused_to_the_agent_so_it_stays_tracked() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import ctypes, os, struct, subprocess
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(bytes(attr).ljust(128, b'\0'), 128)
    r = libc.syscall(321, ctypes.c_int(cmd), buf, ctypes.c_uint(128))
    return r, ctypes.get_errno(), buf
deleted, first_errno, mid = 0, None, 0
while True:
    r, e, buf = bpf(12, struct.pack('I', mid))  # BPF_MAP_GET_NEXT_ID
    if r < 0:
        if first_errno is None: first_errno = e
        break
    first_errno = 0
    mid = struct.unpack_from('I', buf.raw, 4)[0]
    fd, e, _ = bpf(14, struct.pack('I', mid))  # BPF_MAP_GET_FD_BY_ID
    if fd < 0: continue
    info = ctypes.create_string_buffer(96)
    bpf(15, struct.pack('IIQ', fd, 96, ctypes.addressof(info)))  # BPF_OBJ_GET_INFO_BY_FD
    name = info.raw[24:40].split(b'\0')[0]
    if name == b'tracked':
        key = ctypes.c_uint32(os.getpid())
        r, e, _ = bpf(3, struct.pack('IIQQQ', fd, 0, ctypes.addressof(key), 0, 0))  # DELETE_ELEM
        deleted += r == 0
    os.close(fd)
print('bpf errno', first_errno, 'deleted', deleted, flush=True)
subprocess.run(['/usr/bin/id'], stdout=subprocess.DEVNULL)
"#;
    let out = run_isolated(tmp.path(), &[], script);
    let recs = records(tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout_lines(&out), ["bpf errno 1 deleted 0"], "{stderr}");
    assert!(
        recs.iter()
            .any(|r| r["type"] == "exec" && bytes_of(&r["filename"]).ends_with(b"/usr/bin/id")),
        "the exec after the attempt is recorded: {stderr}"
    );
    assert!(tampers(&recs).contains(&"bpf".to_string()), "{stderr}");
    assert!(self_protection_alerts(&recs) >= 1, "{stderr}");
}

/// The cgroup2 mount point.
fn cgroup2_mount() -> String {
    proctor_sensor::features::mount_of("cgroup2").expect("a cgroup2 mount")
}

/// A root agent moves itself to the root cgroup (out of the agent cgroup the network layer and
/// containment act on): the write must be refused, recorded and alerted, and the agent stays.
#[test]
fn the_agent_cannot_move_itself_out_of_its_cgroup() {
    let tmp = tempfile::tempdir().unwrap();
    let root = cgroup2_mount();
    let script = format!(
        r#"
import os
def cg():
    return [l for l in open('/proc/self/cgroup') if l.startswith('0::')][0].strip()
before = cg()
try:
    with open({procs:?}, 'w') as f:
        f.write(str(os.getpid()))
    print('moved', flush=True)
except OSError as e:
    print('errno', e.errno, flush=True)
print('same', cg() == before, before != '0::/', flush=True)
"#,
        procs = format!("{root}/cgroup.procs")
    );
    let out = run_isolated(tmp.path(), &[], &script);
    let recs = records(tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stdout_lines(&out),
        [format!("errno {}", libc::EACCES), "same True True".into()],
        "{stderr}"
    );
    assert!(tampers(&recs).iter().any(|t| t == "cgroup"), "{stderr}");
    assert!(self_protection_alerts(&recs) >= 1, "{stderr}");
}

/// A root agent reads proctor's private signing key (the file, and proctor's memory through
/// /proc): both refused in audit mode, with a critical alert, so it cannot forge a run.
#[test]
fn the_signing_key_is_unreadable_to_a_root_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let kg = proctor()
        .args(["keygen", "--dir"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(
        kg.status.success(),
        "{}",
        String::from_utf8_lossy(&kg.stderr)
    );
    let key = keys.join("proctor.key");
    let script = format!(
        r#"
import os
for p in [{key:?}, '/proc/%d/mem' % os.getppid()]:
    try:
        with open(p, 'rb') as f:
            print('read', len(f.read(64)), flush=True)
    except OSError as e:
        print('errno', e.errno, flush=True)
"#,
        key = key.display().to_string()
    );
    let out_dir = tmp.path().join("out");
    let out = run_isolated(
        &out_dir,
        &["--mode", "audit", "--key", key.to_str().unwrap()],
        &script,
    );
    let recs = records(&out_dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?} {stderr}");
    assert_eq!(lines[0], format!("errno {}", libc::EACCES), "{stderr}");
    assert!(lines[1].starts_with("errno"), "proctor's memory: {lines:?}");
    let crit: Vec<_> = recs
        .iter()
        .filter(|r| r["type"] == "alert" && r["kind"] == "SIGNING_KEY_ACCESS")
        .collect();
    assert!(!crit.is_empty(), "{stderr}");
    assert_eq!(crit[0]["channel"], "SELF_PROTECTION");
    assert!(
        crit[0]["divergence"].as_f64().unwrap() >= 1.0,
        "{}",
        crit[0]
    );
}

/// A tracked process that ends up outside the agent cgroup by a route the barriers above do not
/// see (simulated here from outside, as root): the move itself is detected and alerted, once.
#[test]
fn a_process_that_leaves_the_agent_cgroup_is_alerted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = cgroup2_mount();
    let marker = tmp.path().join("pid");
    let done = tmp.path().join("done");
    // The agent stays alive until the test has seen the escape recorded (proctor notices it on
    // a periodic check of the tree, which a loaded machine may delay).
    let script = format!(
        r#"
import os, time
open({marker:?} + '.tmp', 'w').write(str(os.getpid()))
os.rename({marker:?} + '.tmp', {marker:?})
deadline = time.monotonic() + 90
while not os.path.exists({done:?}) and time.monotonic() < deadline:
    time.sleep(0.05)
print([l for l in open('/proc/self/cgroup') if l.startswith('0::')][0].strip(), flush=True)
"#,
        marker = marker.display().to_string(),
        done = done.display().to_string()
    );
    require_root();
    let out_dir = tmp.path().join("out");
    let child = proctor()
        .arg("run")
        .arg("--out")
        .arg(&out_dir)
        .args(["--", "/usr/bin/python3", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let child = KillOnDrop::new(child);
    wait_for(&marker, "the agent never started");
    let pid = std::fs::read_to_string(&marker).unwrap();
    std::fs::write(format!("{root}/cgroup.procs"), pid.trim()).unwrap();
    wait_for_record(&out_dir.join("audit.jsonl"), "the escape", |r| {
        r["type"] == "tamper" && r["syscall"] == "cgroup_escape"
    });
    std::fs::write(&done, "").unwrap();
    let output = child.into_inner().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stdout_lines(&output), ["0::/"], "{stderr}");
    let recs = records(&out_dir);
    let escapes: Vec<_> = recs
        .iter()
        .filter(|r| r["type"] == "tamper" && r["syscall"] == "cgroup_escape")
        .collect();
    assert_eq!(escapes.len(), 1, "{stderr}");
    assert_eq!(
        escapes[0]["pid"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| escapes[0]["pid"].to_string()),
        pid.trim()
    );
    assert!(
        recs.iter()
            .any(|r| r["type"] == "alert" && r["kind"] == "CGROUP_ESCAPE"),
        "{stderr}"
    );
}

/// A root agent replaces the control socket with its own and answers "done": the operator's
/// `proctor mode` must not believe it.
#[test]
fn a_control_socket_served_by_the_agent_is_not_believed() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let ready = tmp.path().join("ready");
    let script = format!(
        r#"
import os, socket, time
out, ready = {out:?}, {ready:?}
sock = os.path.join(out, 'control.sock')
while not os.path.exists(sock):
    time.sleep(0.01)
os.unlink(sock)
s = socket.socket(socket.AF_UNIX)
s.bind(sock)
s.listen(1)
open(ready, 'w').close()
s.settimeout(120)
c, _ = s.accept()
c.recv(4096)
c.sendall(b'{{"ok": true, "message": "mode enforce -> audit"}}\n')
c.close()
"#,
        out = out_dir.display().to_string(),
        ready = ready.display().to_string(),
    );
    let child = proctor()
        .args(["run", "--mode", "enforce", "--out"])
        .arg(&out_dir)
        .args(["--", "/usr/bin/python3", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let child = KillOnDrop::new(child);
    wait_for(&ready, "the agent never replaced the socket");
    let st = proctor()
        .arg("mode")
        .arg(&out_dir)
        .arg("audit")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&st.stderr);
    assert!(
        !st.status.success(),
        "believed the agent's socket: {stderr}"
    );
    assert!(stderr.contains("inside a monitored agent"), "{stderr}");
    drop(child);
}

/// The race on F_SETOWN_EX's in-memory argument: a second thread flips the owner between the
/// agent's own pid (allowed) and proctor's while the first sets it, thousands of times. The
/// file's owner must never end up being proctor (no O_ASYNC here, so a won race signals
/// nothing; it is read back with F_GETOWN).
#[test]
fn a_thread_flipping_the_owner_argument_never_makes_proctor_the_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import ctypes, fcntl, os, struct, threading
libc = ctypes.CDLL(None, use_errno=True)
proctor, me = os.getppid(), os.getpid()
buf = ctypes.create_string_buffer(struct.pack('ii', 1, me), 8)
stop = False
def flip():
    while not stop:
        struct.pack_into('i', buf, 4, proctor)
        struct.pack_into('i', buf, 4, me)
t = threading.Thread(target=flip)
t.start()
r, w = os.pipe()
won = refused = ok = 0
for _ in range(3000):
    rc = libc.fcntl(r, 15, buf)
    if rc != 0:
        refused += 1
    else:
        ok += 1
    if fcntl.fcntl(r, fcntl.F_GETOWN) == proctor:
        won += 1
        fcntl.fcntl(r, fcntl.F_SETOWN, 0)
stop = True
t.join()
print('won', won, 'some allowed', ok > 0, flush=True)
"#;
    let out = run_isolated(tmp.path(), &[], script);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout_lines(&out), ["won 0 some allowed True"], "{stderr}");
}

/// A root agent tries to end the watch or falsify its clock: reboot and kexec (the machine and
/// proctor with it), removing a kernel module, setting the time (every later record and
/// certificate would carry a false one). Each call is made harmless should it get through (a
/// reboot command that does not exist, a time of -1, no module of that name, no kexec
/// segments), and each must be refused with EPERM, as a tamper record, in audit mode.
#[test]
fn reboot_kexec_module_removal_and_the_clock_are_refused_to_the_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
class Ts(ctypes.Structure):
    _fields_ = [("s", ctypes.c_long), ("ns", ctypes.c_long)]
calls = [
    ("reboot", 169, (0xfee1dead, 672274793, 0x0badc0de, None)),
    ("kexec_load", 246, (0, 0, None, 0)),
    ("delete_module", 176, (b"proctor_no_such", 0o4000)),
    ("settimeofday", 164, (None, None)),
    ("clock_settime", 227, (0, ctypes.byref(Ts(-1, 0)))),
]
for name, nr, args in calls:
    r = libc.syscall(nr, *args)
    print(name, r, ctypes.get_errno() if r < 0 else 0, flush=True)
"#;
    let out = run_isolated(tmp.path(), &[], script);
    let recs = records(tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stdout_lines(&out),
        [
            "reboot -1 1",
            "kexec_load -1 1",
            "delete_module -1 1",
            "settimeofday -1 1",
            "clock_settime -1 1"
        ],
        "{stderr}"
    );
    let t = tampers(&recs);
    for call in [
        "reboot",
        "kexec_load",
        "delete_module",
        "settimeofday",
        "clock_settime",
    ] {
        assert!(t.contains(&call.to_string()), "{call}: {t:?} {stderr}");
    }
}

/// `proctor attach` watches its output directory as `run` does: a process it attached to that
/// truncates the alerts file is a tamper alert (nothing refuses it; the alert reaches stderr).
#[test]
fn an_attached_process_rewriting_proctors_output_is_alerted() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let go = tmp.path().join("go");
    // It waits until proctor says it is attached (a loaded machine can take seconds to start).
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.1; done; : > {out}/alerts.jsonl; sleep 1; true",
        go = go.display(),
        out = out.display()
    );
    let mut agent = std::process::Command::new("/bin/sh")
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let mut p = proctor()
        .args(["attach", "--out"])
        .arg(&out)
        .args(["--pid", &agent.id().to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    for line in std::io::BufReader::new(p.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("attached to") {
            std::fs::write(&go, "").unwrap();
        }
        err.push_str(&line);
        err.push('\n');
    }
    let _ = p.wait();
    let _ = agent.wait();
    let want = format!(
        "write-open of {}/alerts.jsonl in proctor's output directory (truncating it)",
        out.canonicalize().unwrap().display()
    );
    assert!(
        err.lines()
            .any(|l| l.contains("PROCTOR_TAMPER") && l.contains(&want)),
        "no tamper alert {want:?} in:\n{err}"
    );
}
