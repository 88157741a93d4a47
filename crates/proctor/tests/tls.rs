//! Real-kernel tests of TLS visibility: a real `openssl s_server` on loopback, real
//! clients (curl on OpenSSL's SSL_write/SSL_read, Python on the _ex pair, gnutls-cli on GnuTLS,
//! a statically linked OpenSSL client, a hand-made ClientHello), and assertions on what the
//! kernel reported for their pids. Every tool these tests need is a Debian package the Makefile
//! installs; a missing one fails the test, it never skips.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use serde_json::Value;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A TLS server on loopback (`openssl s_server -www`: answers a GET with a status page), with a
/// throwaway certificate for localhost and llm.test.
struct Server {
    _proc: KillOnDrop,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(v6: bool) -> Server {
        require_root();
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,DNS:llm.test"])
            .arg("-keyout")
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl (Debian package openssl) must be installed");
        assert!(ok.success(), "openssl req failed");
        let host = if v6 { "::1" } else { "127.0.0.1" };
        let port = free_port(host);
        let accept = if v6 {
            format!("[::1]:{port}")
        } else {
            format!("127.0.0.1:{port}")
        };
        let child = Command::new("openssl")
            .args(["s_server", "-www", "-quiet", "-accept", &accept])
            .arg("-cert")
            .arg(dir.path().join("cert.pem"))
            .arg("-key")
            .arg(dir.path().join("key.pem"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        let proc = KillOnDrop::new(child);
        wait_until(&format!("s_server listening on {accept}"), || {
            TcpStream::connect((host, port)).is_ok()
        });
        Server {
            _proc: proc,
            port,
            dir,
        }
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn curl(&self, path: &str) -> Vec<String> {
        vec![
            "/usr/bin/curl".into(),
            "-sS".into(),
            "-o".into(),
            "/dev/null".into(),
            "--cacert".into(),
            self.cert().display().to_string(),
            "--resolve".into(),
            format!("llm.test:{}:127.0.0.1", self.port),
            "-H".into(),
            "X-Probe: tracked-curl".into(),
            format!("https://llm.test:{}{path}", self.port),
        ]
    }
}

/// Wait until a running proctor wrote its pid file; a proctor that exited instead fails the
/// test with its stderr. Generous: the tests of this file start several proctors at once on a
/// small machine, and each loads the eBPF object and hooks libraries first.
fn wait_started(p: &mut KillOnDrop, out: &Path) {
    let deadline = Instant::now() + PATIENCE;
    while !out.join("proctor.pid").exists() {
        if let Some(st) = p.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = p.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("proctor exited before it started ({st}): {err}");
        }
        assert!(Instant::now() < deadline, "proctor never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port(host: &str) -> u16 {
    let l = std::net::TcpListener::bind((host, 0)).expect("bind an ephemeral port");
    l.local_addr().unwrap().port()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A Python TLS client (CPython's ssl: SSL_write_ex/SSL_read_ex) that sends `body_len` bytes
/// of body in one write.
const PY_CLIENT: &str = r#"
import socket, ssl, sys
port, cert, path, body_len = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=cert)
with socket.create_connection(("127.0.0.1", port)) as s:
    with ctx.wrap_socket(s, server_hostname="llm.test") as t:
        body = b"B" * body_len
        t.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: llm.test\r\nContent-Length: "
                  + str(body_len).encode() + b"\r\n\r\n" + body)
        got = b""
        while True:
            d = t.recv(65536)
            if not d:
                break
            got += d
assert got.startswith(b"HTTP/1.0 200"), got[:100]
"#;

/// A ClientHello built by hand and sent on a plain socket: TLS no library call made, as a Go or
/// rustls client looks from outside.
const RAW_HELLO: &str = r#"
import os, socket, struct, sys
host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
sni = struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name if name else b""
exts = b"\x00\x0b\x00\x02\x01\x00" + sni + b"\x00\x17\x00\x00"
body = b"\x03\x03" + os.urandom(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
body += struct.pack("!H", len(exts)) + exts
hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.connect((host, port))
s.sendall(b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs)
s.settimeout(2)
try:
    s.recv(100)
except OSError:
    pass
"#;

/// A TLS client with OpenSSL linked in statically (no shared libssl for uprobes to see).
const STATIC_CLIENT_C: &str = r#"
#include <openssl/ssl.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char buf[4096];
	SSL *s;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
		return 2;
	s = SSL_new(ctx);
	SSL_set_fd(s, fd);
	SSL_set_tlsext_host_name(s, argv[2]);
	if (SSL_connect(s) != 1)
		return 3;
	SSL_write(s, "GET /static-secret HTTP/1.0\r\n\r\n", 31);
	while (SSL_read(s, buf, sizeof(buf)) > 0)
		;
	return 0;
}
"#;

fn build_static_client(dir: &Path) -> PathBuf {
    let src = dir.join("static_client.c");
    let bin = dir.join("static_client");
    std::fs::write(&src, STATIC_CLIENT_C).unwrap();
    let out = Command::new("clang-19")
        .args(["-O1", "-static", "-o"])
        .arg(&bin)
        .arg(&src)
        .args(["-lssl", "-lcrypto", "-lpthread"])
        .output()
        .expect("clang-19 must be installed (Debian package clang-19)");
    assert!(
        out.status.success(),
        "building the static OpenSSL client failed (needs libssl-dev): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

fn write_script(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn data_of(r: &Value) -> Vec<u8> {
    bytes_of(&r["data"])
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn tls_of(r: &Run, pid: u64) -> Vec<&Value> {
    r.of_type("tls")
        .into_iter()
        .filter(|t| t["pid"].as_u64() == Some(pid))
        .collect()
}

fn exec_pid(r: &Run, filename_suffix: &str) -> u64 {
    r.of_type("exec")
        .iter()
        .find(|e| bytes_of(&e["filename"]).ends_with(filename_suffix.as_bytes()))
        .unwrap_or_else(|| panic!("no exec of *{filename_suffix}: {:?}", r.of_type("exec")))["pid"]
        .as_u64()
        .unwrap()
}

fn assert_sni(r: &Run, pid: u64, sni: &str, port: u16) {
    let snis = r.of_type("tls_sni");
    let hit = snis
        .iter()
        .find(|s| s["pid"].as_u64() == Some(pid) && s["sni"] == sni)
        .unwrap_or_else(|| panic!("no tls_sni {sni} for pid {pid}: {snis:?}"));
    assert_eq!(hit["port"].as_u64(), Some(port as u64), "{hit}");
}

#[test]
fn curl_plaintext_both_directions_with_peer_and_sni() {
    let srv = Server::start(false);
    let cmd = srv.curl("/v1/models?curl-probe");
    let r = run_under(&["--capture-tls"], &strs(&cmd));
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    assert!(
        r.stderr().contains("TLS plaintext capture ON"),
        "banner: {}",
        r.stderr()
    );
    let start = &r.of_type("sensor_start")[0];
    assert_eq!(start["capture_tls"], true);
    let pid = exec_pid(&r, "/curl");
    let tls = tls_of(&r, pid);
    let sent = tls
        .iter()
        .find(|t| t["direction"] == "send" && contains(&data_of(t), b"GET /v1/models?curl-probe"))
        .unwrap_or_else(|| panic!("curl's request not captured: {tls:?}"));
    assert_eq!(sent["lib"], "openssl");
    assert_eq!(sent["truncated"], false);
    assert_eq!(sent["len"].as_u64(), Some(data_of(sent).len() as u64));
    assert_eq!(sent["peer"]["addr"], "127.0.0.1");
    assert_eq!(sent["peer"]["port"].as_u64(), Some(srv.port as u64));
    let recv = tls
        .iter()
        .find(|t| t["direction"] == "recv" && data_of(t).starts_with(b"HTTP/1.0 200"))
        .unwrap_or_else(|| panic!("the response was not captured: {tls:?}"));
    assert_eq!(recv["conn"], sent["conn"], "one connection object");
    assert_sni(&r, pid, "llm.test", srv.port);
    assert!(
        r.of_type("tls_blind").is_empty(),
        "curl's TLS is hooked: {:?}",
        r.of_type("tls_blind")
    );
}

#[test]
fn python_ex_calls_captured_and_large_writes_chunked_then_bounded() {
    let srv = Server::start(false);
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "client.py", PY_CLIENT);
    let port = srv.port.to_string();
    let cert = srv.cert().display().to_string();
    // 50 000 body bytes in one SSL_write_ex: several 16 KiB ring records, joined again.
    let r = run_under(
        &["--capture-tls"],
        &[
            "/usr/bin/python3",
            &script,
            &port,
            &cert,
            "/py-probe",
            "50000",
        ],
    );
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    let pid = exec_pid(&r, "/python3.11");
    let tls = tls_of(&r, pid);
    let sent = tls
        .iter()
        .find(|t| t["direction"] == "send" && data_of(t).starts_with(b"GET /py-probe"))
        .unwrap_or_else(|| panic!("python's SSL_write_ex not captured: {tls:?}"));
    let d = data_of(sent);
    assert_eq!(sent["truncated"], false, "50 kB fits the default bound");
    assert_eq!(sent["len"].as_u64(), Some(d.len() as u64));
    assert!(d.len() > 50_000, "{}", d.len());
    assert!(
        d.ends_with(&[b'B'; 1000]),
        "the chunks were joined in order"
    );
    assert!(
        tls.iter()
            .any(|t| t["direction"] == "recv" && data_of(t).starts_with(b"HTTP/1.0 200")),
        "python's SSL_read_ex not captured: {tls:?}"
    );
    assert_sni(&r, pid, "llm.test", srv.port);

    // The same with a 20 000-byte bound: cut, flagged, len still what the call moved.
    let r = run_under(
        &["--capture-tls", "--tls-max-bytes", "20000"],
        &[
            "/usr/bin/python3",
            &script,
            &port,
            &cert,
            "/py-bounded",
            "50000",
        ],
    );
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    let pid = exec_pid(&r, "/python3.11");
    let sent = tls_of(&r, pid)
        .into_iter()
        .find(|t| t["direction"] == "send" && data_of(t).starts_with(b"GET /py-bounded"))
        .expect("bounded write captured");
    assert_eq!(sent["truncated"], true);
    assert_eq!(data_of(sent).len(), 20_000);
    assert!(sent["len"].as_u64().unwrap() > 50_000, "{}", sent["len"]);

    // The largest bound: a 600 000-byte write comes through whole (37 ring records).
    let r = run_under(
        &["--capture-tls", "--tls-max-bytes", "1048576"],
        &[
            "/usr/bin/python3",
            &script,
            &port,
            &cert,
            "/py-large",
            "600000",
        ],
    );
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    let pid = exec_pid(&r, "/python3.11");
    let sent = tls_of(&r, pid)
        .into_iter()
        .find(|t| t["direction"] == "send" && data_of(t).starts_with(b"GET /py-large"))
        .expect("large write captured");
    assert_eq!(sent["truncated"], false);
    assert_eq!(sent["len"].as_u64(), Some(data_of(sent).len() as u64));
    assert!(data_of(sent).len() > 600_000);
}

#[test]
fn gnutls_client_captured() {
    let srv = Server::start(false);
    let dir = tempfile::tempdir().unwrap();
    // gnutls-cli reads the request from stdin; the shell keeps stdin open until the reply came.
    // Then git over https (git-remote-https links libcurl3-gnutls): s_server is no git server,
    // so git fails, after its request went through GnuTLS.
    let script = format!(
        "(printf 'GET /gnutls-probe HTTP/1.0\\r\\nHost: llm.test\\r\\n\\r\\n'; sleep 1) | \
         gnutls-cli --x509cafile {cert} -p {port} --sni-hostname llm.test --verify-hostname llm.test 127.0.0.1 && \
         (GIT_SSL_CAINFO={cert} git ls-remote https://localhost:{port}/probe-repo.git; true)",
        cert = srv.cert().display(),
        port = srv.port
    );
    let sh = write_script(dir.path(), "g.sh", &script);
    let r = run_under(&["--capture-tls"], &["/bin/sh", &sh]);
    assert_eq!(
        r.code(),
        Some(0),
        "gnutls-cli (Debian package gnutls-bin) failed: {}",
        r.stderr()
    );
    let pid = exec_pid(&r, "/gnutls-cli");
    let tls = tls_of(&r, pid);
    let sent = tls
        .iter()
        .find(|t| t["direction"] == "send" && data_of(t).starts_with(b"GET /gnutls-probe"))
        .unwrap_or_else(|| panic!("gnutls_record_send not captured: {tls:?}"));
    assert_eq!(sent["lib"], "gnutls");
    assert_eq!(sent["peer"]["port"].as_u64(), Some(srv.port as u64));
    assert!(
        tls.iter()
            .any(|t| t["direction"] == "recv" && data_of(t).starts_with(b"HTTP/1.0 200")),
        "gnutls_record_recv not captured: {tls:?}"
    );
    assert_sni(&r, pid, "llm.test", srv.port);
    let git = r
        .of_type("tls")
        .into_iter()
        .find(|t| contains(&data_of(t), b"GET /probe-repo.git/info/refs"))
        .unwrap_or_else(|| panic!("git's request over GnuTLS not captured: {}", r.stderr()));
    assert_eq!(git["lib"], "gnutls");
    assert!(r
        .of_type("tls_sni")
        .iter()
        .any(|s| s["sni"] == "localhost" && s["pid"] == git["pid"]));
}

#[test]
fn unhooked_tls_gets_sni_and_one_tls_blind_per_binary() {
    let srv = Server::start(false);
    let srv6 = Server::start(true);
    let dir = tempfile::tempdir().unwrap();
    let bin = build_static_client(dir.path());
    let raw = write_script(dir.path(), "raw_hello.py", RAW_HELLO);
    let script = format!(
        "{bin} {p} static.test; /usr/bin/python3 {raw} 127.0.0.1 {p} raw4.test; \
         /usr/bin/python3 {raw} ::1 {p6} raw6.test",
        bin = bin.display(),
        p = srv.port,
        p6 = srv6.port
    );
    let sh = write_script(dir.path(), "unhooked.sh", &script);
    let r = run_under(&["--capture-tls"], &["/bin/sh", &sh]);
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());

    // The static client: SNI from the packet, blind by ELF inspection, no plaintext.
    let spid = exec_pid(&r, "/static_client");
    assert_sni(&r, spid, "static.test", srv.port);
    let blind = r.of_type("tls_blind");
    let sb = blind
        .iter()
        .find(|b| b["pid"].as_u64() == Some(spid))
        .unwrap_or_else(|| panic!("no tls_blind for the static client: {blind:?}"));
    assert_eq!(sb["reason"], "static-openssl");
    assert_eq!(bytes_of(&sb["binary"]), bin.as_os_str().as_encoded_bytes());
    assert!(tls_of(&r, spid).is_empty(), "static TLS cannot be captured");

    // The hand-made hellos (IPv4, then IPv6): SNI for both, blind once for the binary.
    let pys: Vec<u64> = r
        .of_type("exec")
        .iter()
        .filter(|e| bytes_of(&e["filename"]).ends_with(b"/python3.11"))
        .map(|e| e["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pys.len(), 2, "{:?}", r.of_type("exec"));
    assert_sni(&r, pys[0], "raw4.test", srv.port);
    let s6 = r
        .of_type("tls_sni")
        .into_iter()
        .find(|s| s["sni"] == "raw6.test")
        .expect("IPv6 ClientHello");
    assert_eq!(s6["family"], "inet6");
    assert_eq!(s6["addr"], "::1");
    let py_blind: Vec<_> = blind
        .iter()
        .filter(|b| bytes_of(&b["binary"]).ends_with(b"/python3.11"))
        .collect();
    assert_eq!(py_blind.len(), 1, "once per binary: {blind:?}");
    assert_eq!(py_blind[0]["reason"], "no-hookable-library");
}

/// A client that names its server by address sends no server name (RFC 6066): the hello is
/// still reported (empty `sni`), and a client proctor cannot hook is still named blind.
#[test]
fn hello_without_server_name_is_reported_and_blind() {
    let srv = Server::start(false);
    let dir = tempfile::tempdir().unwrap();
    let raw = write_script(dir.path(), "raw_hello.py", RAW_HELLO);
    let port = srv.port.to_string();
    let r = run_under(
        &["--capture-tls"],
        &["/usr/bin/python3", &raw, "127.0.0.1", &port, ""],
    );
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    let snis = r.of_type("tls_sni");
    assert!(
        snis.iter()
            .any(|s| s["sni"] == "" && s["port"].as_u64() == Some(srv.port as u64)),
        "{snis:?}"
    );
    let blind = r.of_type("tls_blind");
    assert!(
        blind.iter().any(|b| b["reason"] == "no-hookable-library"),
        "{blind:?}"
    );
}

#[test]
fn without_capture_sni_only_and_no_plaintext() {
    let srv = Server::start(false);
    let dir = tempfile::tempdir().unwrap();
    let raw = write_script(dir.path(), "raw_hello.py", RAW_HELLO);
    let curl = srv.curl("/not-captured").join(" ");
    let script = format!(
        "{curl}; /usr/bin/python3 {raw} 127.0.0.1 {} plain.test",
        srv.port
    );
    let sh = write_script(dir.path(), "nocap.sh", &script);
    let r = run_under(&[], &["/bin/sh", &sh]);
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    assert_eq!(r.of_type("sensor_start")[0]["capture_tls"], false);
    assert!(r.of_type("tls").is_empty(), "{:?}", r.of_type("tls"));
    assert!(r.of_type("tls_blind").is_empty());
    // The path is in curl's argv (its exec record) and nowhere else: no plaintext.
    for rec in r.records.iter().filter(|x| x["type"] != "exec") {
        assert!(
            !rec.to_string().contains("/not-captured"),
            "plaintext without --capture-tls: {rec}"
        );
    }
    let pid = exec_pid(&r, "/curl");
    assert_sni(&r, pid, "llm.test", srv.port);
    let snis = r.of_type("tls_sni");
    assert!(snis.iter().any(|s| s["sni"] == "plain.test"), "{snis:?}");
}

#[test]
fn untracked_processes_tls_is_never_captured() {
    let srv = Server::start(false);
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // The agent waits for the untracked client to finish, then makes its own call.
    let tracked = srv.curl("/tracked-probe").join(" ");
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.05; done; {tracked}",
        go = go.display()
    );
    let sh = write_script(dir.path(), "agent.sh", &script);
    let out = dir.path().join("out");
    let child = proctor()
        .args(["run", "--capture-tls", "--out"])
        .arg(&out)
        .args(["--", "/bin/sh", &sh])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start proctor");
    let mut child = KillOnDrop::new(child);
    wait_started(&mut child, &out);
    std::thread::sleep(Duration::from_millis(300)); // uprobes attached before the agent runs
    let mut untracked = srv.curl("/untracked-probe");
    untracked[9] = "X-Probe: untracked-curl".into();
    let st = Command::new(&untracked[0])
        .args(&untracked[1..])
        .status()
        .expect("untracked curl");
    assert!(st.success());
    std::fs::write(&go, b"").unwrap();
    let o = child.into_inner().wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(out.join("audit.jsonl")).unwrap();
    assert!(
        text.contains("/tracked-probe"),
        "the agent's own call is captured"
    );
    assert!(
        !text.contains("untracked"),
        "an untracked process's TLS reached the log"
    );
}

#[test]
fn tls_flags_are_checked() {
    for args in [
        vec!["run", "--tls-raw", "--", "/bin/true"],
        vec![
            "run",
            "--capture-tls",
            "--tls-max-bytes",
            "0",
            "--",
            "/bin/true",
        ],
        vec![
            "run",
            "--capture-tls",
            "--tls-max-bytes",
            "2000000",
            "--",
            "/bin/true",
        ],
        vec![
            "run",
            "--capture-tls",
            "--tls-max-bytes",
            "lots",
            "--",
            "/bin/true",
        ],
        vec!["run", "--tls-intercept", "--", "/bin/true"],
        vec![
            "run",
            "--capture-tls",
            "--tls-intercept-port",
            "8443",
            "--",
            "/bin/true",
        ],
        vec![
            "run",
            "--capture-tls",
            "--tls-intercept",
            "--tls-intercept-port",
            "x",
            "--",
            "/bin/true",
        ],
        vec!["attach", "--pid", "1", "--capture-tls", "--tls-intercept"],
    ] {
        let o = proctor().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// The HTTPS stub of OpenAI/Anthropic-style APIs (demo/llm_stub.py) on loopback.
struct Stub {
    _proc: KillOnDrop,
    port: u16,
    cert: String,
}

fn demo(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../demo")
        .join(file)
        .display()
        .to_string()
}

impl Stub {
    fn start() -> Stub {
        Stub::start_with(&[])
    }

    /// The stub with more of its options (--cert, --key, --record).
    fn start_with(args: &[&std::ffi::OsStr]) -> Stub {
        use std::io::BufRead;
        require_root();
        let mut child = Command::new("/usr/bin/python3")
            .arg(demo("llm_stub.py"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start demo/llm_stub.py");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let proc = KillOnDrop::new(child);
        let port = lines
            .next()
            .and_then(Result::ok)
            .and_then(|l| l.trim().parse().ok())
            .expect("the stub prints its port first");
        let cert = lines
            .next()
            .and_then(Result::ok)
            .expect("then its certificate");
        Stub {
            _proc: proc,
            port,
            cert: cert.trim().to_string(),
        }
    }

    fn client(&self, extra: &str) -> String {
        format!(
            "/usr/bin/python3 {} --port {} --cafile {} {extra}",
            demo("llm_client.py"),
            self.port,
            self.cert
        )
    }
}

/// The client's built-in fake keys (not in its argv, which exec records keep).
const OPENAI_KEY: &str = "sk-proj-stubSECRETstubSECRETstubSECRET0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-api03-stubSECRETstubSECRETstubSECRET-0123456789";

/// Every file proctor wrote for the run (audit log, alerts, certificates), as text.
fn everything_written(dir: &Path) -> String {
    let mut all = String::new();
    for e in walk(dir) {
        all.push_str(&String::from_utf8_lossy(&std::fs::read(&e).unwrap()));
    }
    all
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn secrets_redacted_by_default_and_kept_with_tls_raw() {
    let stub = Stub::start();
    let dir = tempfile::tempdir().unwrap();
    let client = std::fs::read_to_string(demo("llm_client.py")).unwrap();
    assert!(client.contains(OPENAI_KEY) && client.contains(ANTHROPIC_KEY));
    let script = format!("{} && {}", stub.client(""), stub.client("--api anthropic"));
    let sh = write_script(dir.path(), "llm.sh", &script);

    let r = run_under(&["--capture-tls"], &["/bin/sh", &sh]);
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    assert!(r.stderr().contains("secrets redacted"), "{}", r.stderr());
    assert_eq!(r.of_type("sensor_start")[0]["tls_redaction"], "redacted");
    let written = everything_written(r.dir.path());
    for key in [OPENAI_KEY, ANTHROPIC_KEY] {
        assert!(!written.contains(key), "a secret reached proctor's output");
        assert!(!r.stderr().contains(key), "a secret reached stderr");
    }
    let tls = r.of_type("tls");
    let auth = tls
        .iter()
        .find(|t| contains(&data_of(t), b"POST /v1/chat/completions"))
        .unwrap_or_else(|| panic!("the request head was not captured: {tls:?}"));
    assert!(auth["redacted"].as_u64().unwrap() >= 1, "{auth}");
    assert!(
        contains(&data_of(auth), b"Authorization: Bearer "),
        "the header stays, its value goes: {auth}"
    );
    assert!(tls
        .iter()
        .any(|t| contains(&data_of(t), b"POST /v1/messages") && t["redacted"].as_u64() >= Some(1)));

    let r = run_under(&["--capture-tls", "--tls-raw"], &["/bin/sh", &sh]);
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    assert!(r.stderr().contains("NOT redacted"), "{}", r.stderr());
    assert_eq!(r.of_type("sensor_start")[0]["tls_redaction"], "raw");
    let raw = r
        .of_type("tls")
        .into_iter()
        .find(|t| contains(&data_of(t), OPENAI_KEY.as_bytes()))
        .expect("--tls-raw keeps the secret");
    assert_eq!(raw["redacted"], 0);
}

#[test]
fn llm_calls_name_the_tool_plain_and_streamed() {
    let stub = Stub::start();
    let dir = tempfile::tempdir().unwrap();
    let script = [
        stub.client("--api openai"),
        stub.client("--api openai --stream --count 2"),
        stub.client("--api anthropic --stream"),
    ]
    .join(" && ");
    let sh = write_script(dir.path(), "llm.sh", &script);
    let r = run_under(&["--capture-tls"], &["/bin/sh", &sh]);
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    let reqs = r.of_type("llm_request");
    let resps = r.of_type("llm_response");
    assert_eq!(reqs.len(), 4, "{reqs:?}");
    assert_eq!(resps.len(), 4, "{resps:?}");
    let openai_plain = reqs
        .iter()
        .find(|q| q["api"] == "openai-chat" && q["stream"] == false)
        .expect("plain OpenAI request");
    assert_eq!(openai_plain["model"], "gpt-4o");
    assert_eq!(openai_plain["endpoint"], "/v1/chat/completions");
    assert!(openai_plain["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "run_shell"));
    for (api, streamed, n) in [
        ("openai-chat", false, 1),
        ("openai-chat", true, 2),
        ("anthropic-messages", true, 1),
    ] {
        let hits: Vec<_> = resps
            .iter()
            .filter(|p| p["api"] == api && p["streamed"] == streamed)
            .collect();
        assert_eq!(hits.len(), n, "{api} streamed={streamed}: {resps:?}");
        for p in hits {
            assert_eq!(p["status"], 200);
            let calls = p["tool_calls"].as_array().unwrap();
            assert_eq!(calls.len(), 1, "{p}");
            assert_eq!(calls[0]["name"], "run_shell", "{p}");
            assert!(
                calls[0]["arguments"]
                    .as_str()
                    .unwrap()
                    .contains("cat ~/.aws/credentials"),
                "{p}"
            );
        }
    }
    // The llm records carry the common fields of the tls record they came from.
    let first = resps[0];
    let pid = first["pid"].as_u64().unwrap();
    assert!(r
        .of_type("tls")
        .iter()
        .any(|t| t["pid"].as_u64() == Some(pid) && t["conn"] == first["conn"]));
}

#[test]
fn attach_captures_a_running_process() {
    let srv = Server::start(false);
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let ready = dir.path().join("ready");
    // Already running (and with libssl mapped) before proctor attaches.
    let script = format!(
        "import os, socket, ssl, time\n\
         ctx = ssl.create_default_context(cafile={cert:?})\n\
         open({ready:?}, 'w').close()\n\
         while not os.path.exists({go:?}): time.sleep(0.05)\n\
         with socket.create_connection(('127.0.0.1', {port})) as s:\n\
         \x20   with ctx.wrap_socket(s, server_hostname='llm.test') as t:\n\
         \x20       t.sendall(b'GET /attached-probe HTTP/1.0\\r\\n\\r\\n')\n\
         \x20       while t.recv(65536): pass\n",
        cert = srv.cert().display().to_string(),
        go = go.display().to_string(),
        ready = ready.display().to_string(),
        port = srv.port
    );
    let py = write_script(dir.path(), "late.py", &script);
    let agent = KillOnDrop::new(
        Command::new("/usr/bin/python3")
            .arg(&py)
            .spawn()
            .expect("start the agent"),
    );
    let pid = agent.id().to_string();
    wait_for(&ready, "the agent loading ssl");
    let out = dir.path().join("out");
    let mon = proctor()
        .args(["attach", "--capture-tls", "--pid", &pid, "--out"])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start proctor attach");
    let mut mon = KillOnDrop::new(mon);
    wait_started(&mut mon, &out);
    // The pid file comes before the tree is tracked and its libraries hooked: attach says
    // when it has done both.
    let stderr = Lines::new(mon.stderr.take().unwrap());
    let mut err = stderr.until("attached to");
    std::fs::write(&go, b"").unwrap();
    let st = agent.into_inner().wait().unwrap();
    assert!(st.success());
    let status = mon.into_inner().wait().unwrap();
    err.extend(stderr.rest());
    let err = err.join("\n");
    assert!(status.success(), "{err}");
    assert!(err.contains("TLS plaintext capture ON"), "{err}");
    let recs = read_records(&out.join("audit.jsonl"));
    let sent = recs
        .iter()
        .find(|r| {
            r["type"] == "tls"
                && r["direction"] == "send"
                && contains(&data_of(r), b"GET /attached-probe")
        })
        .unwrap_or_else(|| panic!("attach did not capture: {err}"));
    assert_eq!(sent["pid"].as_u64().map(|p| p.to_string()), Some(pid));
    assert!(recs
        .iter()
        .any(|r| r["type"] == "tls_sni" && r["sni"] == "llm.test"));
}

/// asyncio drives OpenSSL through memory BIOs and sends the ClientHello itself, from outside
/// any hooked call: still captured (its SSL_write_ex/SSL_read_ex are), and not `tls_blind`.
#[test]
fn asyncio_memory_bio_client_is_captured_not_blind() {
    let srv = Server::start(false);
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "import asyncio, ssl\n\
         async def main():\n\
         \x20   ctx = ssl.create_default_context(cafile={cert:?})\n\
         \x20   r, w = await asyncio.open_connection('127.0.0.1', {port}, ssl=ctx, server_hostname='llm.test')\n\
         \x20   w.write(b'GET /asyncio-probe HTTP/1.0\\r\\n\\r\\n')\n\
         \x20   await r.read()\n\
         \x20   w.close()\n\
         asyncio.run(main())\n",
        cert = srv.cert().display().to_string(),
        port = srv.port
    );
    let py = write_script(dir.path(), "aio.py", &script);
    let r = run_under(&["--capture-tls"], &["/usr/bin/python3", &py]);
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    let pid = exec_pid(&r, "/python3.11");
    assert!(
        tls_of(&r, pid)
            .iter()
            .any(|t| t["direction"] == "send" && data_of(t).starts_with(b"GET /asyncio-probe")),
        "{:?}",
        r.of_type("tls")
    );
    assert_sni(&r, pid, "llm.test", srv.port);
    assert!(
        r.of_type("tls_blind").is_empty(),
        "hooked TLS reported blind: {:?}",
        r.of_type("tls_blind")
    );
}

/// Malformed ClientHellos (lengths pointing past the packet, an empty name, a name that is not
/// a host_name): no record, no harm to the connection; valid ones around them are recorded.
const BAD_HELLOS: &str = r#"
import os, socket, struct, sys
port = int(sys.argv[1])
def hello(exts, ext_len=None, hs_len=None):
    body = b"\x03\x03" + os.urandom(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += struct.pack("!H", len(exts) if ext_len is None else ext_len) + exts
    hs = b"\x01" + struct.pack("!I", len(body) if hs_len is None else hs_len)[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs
def sni(name, name_type=0, name_len=None):
    n = len(name) if name_len is None else name_len
    return struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, name_type, n) + name
cases = [
    # Extensions claimed past the packet: as a hello split over TCP segments looks; its
    # server_name is in this packet, so it is reported.
    hello(sni(b"split.test"), ext_len=65535),
    hello(sni(b"past.test", name_len=60000)),          # name runs past the packet
    hello(sni(b"")),                                   # empty name
    hello(sni(b"type.test", name_type=7)),             # not a host_name
    hello(b"\x00\x17\xff\xff" + sni(b"skip.test")),    # an extension longer than the hello
    b"\x16\x03\x01\x00\x05\x01\x00",                   # cut inside the handshake header
    hello(b"\x00\x17\x00\x00"),                         # well formed, no name: reported, empty
    hello(sni(b"ok.test")),
]
for c in cases:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(c)
    s.settimeout(2)
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
"#;

#[test]
fn malformed_client_hellos_are_not_reported() {
    let srv = Server::start(false);
    let dir = tempfile::tempdir().unwrap();
    let py = write_script(dir.path(), "bad.py", BAD_HELLOS);
    let r = run_under(&[], &["/usr/bin/python3", &py, &srv.port.to_string()]);
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    let snis: Vec<Vec<u8>> = r
        .of_type("tls_sni")
        .iter()
        .map(|s| bytes_of(&s["sni"]))
        .collect();
    assert_eq!(
        snis,
        vec![b"split.test".to_vec(), Vec::new(), b"ok.test".to_vec()],
        "{:?}",
        r.of_type("tls_sni")
    );
}

/// Node.js links OpenSSL statically and exports its calls: hooked in the executable itself, by
/// offset of the exported symbols. A real `fetch` (undici, as the Node SDKs send) to the stub,
/// Anthropic-style plain and OpenAI-style streamed: plaintext both ways, the key redacted, and
/// the LLM records. Node writes the request from inside SSL_read (the handshake-done callback
/// runs JavaScript), so this also covers nested calls.
#[test]
fn node_exported_openssl_is_captured_with_llm_records() {
    let stub = Stub::start();
    let node = "/usr/bin/node";
    assert!(
        Path::new(node).exists(),
        "node (NodeSource nodejs) must be installed"
    );
    let base = format!("https://127.0.0.1:{}", stub.port);
    let ca = format!("NODE_EXTRA_CA_CERTS={}", stub.cert);
    let client = demo("llm_client.mjs");
    let script = format!(
        "env {ca} {node} {client} {base} anthropic && env {ca} {node} {client} {base} openai stream"
    );
    let dir = tempfile::tempdir().unwrap();
    let sh = write_script(dir.path(), "node.sh", &script);
    let r = run_under(&["--capture-tls"], &["/bin/sh", &sh]);
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    assert!(
        r.stderr().contains("/usr/bin/node (openssl, exported)"),
        "banner: {}",
        r.stderr()
    );
    assert!(
        r.of_type("tls_blind").is_empty(),
        "{:?}",
        r.of_type("tls_blind")
    );
    let tls = r.of_type("tls");
    assert!(tls
        .iter()
        .all(|t| t["comm"] == "node" && t["lib"] == "openssl"));
    let head = tls
        .iter()
        .find(|t| contains(&data_of(t), b"POST /v1/messages"))
        .unwrap_or_else(|| panic!("no request head captured: {tls:?}"));
    assert!(contains(&data_of(head), b"x-api-key: [REDACTED]"), "{head}");
    assert!(!everything_written(r.dir.path()).contains("nodeSECRET"));
    assert!(tls
        .iter()
        .any(|t| t["direction"] == "recv" && contains(&data_of(t), b"data: [DONE]")));
    let reqs = r.of_type("llm_request");
    let resps = r.of_type("llm_response");
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(resps.len(), 2, "{resps:?}");
    for (api, model, streamed) in [
        ("anthropic-messages", "claude-sonnet-4-5", false),
        ("openai-chat", "gpt-4o", true),
    ] {
        let q = reqs.iter().find(|q| q["api"] == api).expect(api);
        assert_eq!(q["model"], model, "{q}");
        assert_eq!(q["tools"][0], "run_shell", "{q}");
        let p = resps.iter().find(|p| p["api"] == api).expect(api);
        assert_eq!(p["streamed"], streamed, "{p}");
        assert_eq!(p["tool_calls"][0]["name"], "run_shell", "{p}");
    }
}

/// A binary proctor reported blind is overwritten in place (the same inode and name) with node,
/// whose TLS calls can be hooked: proctor looks at what the file is now and captures it,
/// rather than keep the inode's old answer and stay silent.
#[test]
fn a_blind_binary_rewritten_in_place_with_node_is_hooked() {
    let srv = Server::start(false);
    let stub = Stub::start();
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("helper");
    let go = dir.path().join("go");
    std::fs::copy(build_static_client(dir.path()), &helper).unwrap();
    // proctor hooks an executable it had not seen when it reads its exec record, which on a
    // machine loaded with other tests can lag the agent by seconds (the fresh-machine check
    // saw every client of a fixed schedule finish first): the client runs again each second
    // until the test has seen one captured, at most 60 times.
    let script = format!(
        "set -e; {h} {p} static.test; cat /usr/bin/node > {h}; i=0; \
         until [ -e {go} ]; do i=$((i+1)); [ $i -le 60 ] || exit 3; \
         env NODE_EXTRA_CA_CERTS={ca} {h} {client} https://127.0.0.1:{sp} anthropic; sleep 1; done",
        h = helper.display(),
        go = go.display(),
        p = srv.port,
        ca = stub.cert,
        client = demo("llm_client.mjs"),
        sp = stub.port
    );
    let sh = write_script(dir.path(), "rewrite.sh", &script);
    let out = tempfile::tempdir().unwrap();
    let child = run_command(out.path(), &["--capture-tls"], &["/bin/sh", &sh])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start proctor");
    wait_for_record(
        &out.path().join("audit.jsonl"),
        "a request of node under the blind binary's name, captured",
        |t| t["type"] == "tls" && t["comm"] == "helper" && contains(&data_of(t), b"POST /v1/"),
    );
    std::fs::write(&go, b"").unwrap();
    let r = Run::finished(child.wait_with_output().expect("proctor"), out);
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    let first = r
        .of_type("exec")
        .iter()
        .find(|e| bytes_of(&e["filename"]) == helper.as_os_str().as_encoded_bytes())
        .and_then(|e| e["pid"].as_u64());
    // Blind by inspection, or (when the rewrite is under way by the time proctor reads the
    // file) by its ClientHello sent from outside every hooked call.
    let blind = r.of_type("tls_blind");
    assert!(
        first.is_some() && blind.iter().any(|b| b["pid"].as_u64() == first),
        "{blind:?}"
    );
    assert!(!r.of_type("llm_request").is_empty());
}

/// A CA and a leaf for localhost/127.0.0.1 signed by it (what a real API server presents; the
/// stub's own self-signed certificate is a CA, which a verifying proxy rightly refuses as a
/// server certificate). Returns (ca.pem, leaf.pem, leaf.key).
fn upstream_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key) = (dir.join("up-ca.pem"), dir.join("up-ca.key"));
    let (leaf, key, csr, ext) = (
        dir.join("up-leaf.pem"),
        dir.join("up-leaf.key"),
        dir.join("up-leaf.csr"),
        dir.join("ext"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: Vec<Vec<std::ffi::OsString>> = vec![
        [
            "req",
            "-x509",
            "-days",
            "1",
            "-subj",
            "/CN=upstream test CA",
        ]
        .iter()
        .chain(&ec)
        .chain(&["-addext", "basicConstraints=critical,CA:TRUE", "-keyout"])
        .map(Into::into)
        .chain([ca_key.clone().into(), "-out".into(), ca.clone().into()])
        .collect(),
        ["req", "-subj", "/CN=localhost"]
            .iter()
            .chain(&ec)
            .chain(&["-keyout"])
            .map(Into::into)
            .chain([key.clone().into(), "-out".into(), csr.clone().into()])
            .collect(),
        ["x509", "-req", "-days", "1", "-CAcreateserial", "-in"]
            .iter()
            .map(Into::into)
            .chain([csr.into(), "-CA".into(), ca.clone().into(), "-CAkey".into()])
            .chain([ca_key.into(), "-out".into(), leaf.clone().into()])
            .chain(["-extfile".into(), ext.into()])
            .collect(),
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(&args)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    }
    (ca, leaf, key)
}

/// Interception mode with real clients: the agent's connects to the stub's port are redirected
/// in the kernel to proctor's proxy; curl (told through CURL_CA_BUNDLE / SSL_CERT_FILE) and
/// node (NODE_EXTRA_CA_CERTS) trust the run's CA without being asked to; the proxy verifies the
/// stub against SSL_CERT_FILE and relays. A client that trusts only the real server's CA fails
/// closed: nothing of its request reaches the upstream, and a record says so.
#[test]
fn interception_relays_real_clients_and_fails_closed() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (ca, leaf, key) = upstream_pki(dir.path());
    let rec = dir.path().join("upstream-saw");
    std::fs::create_dir(&rec).unwrap();
    let stub = Stub::start_with(&[
        "--cert".as_ref(),
        leaf.as_ref(),
        "--key".as_ref(),
        key.as_ref(),
        "--record".as_ref(),
        rec.as_ref(),
    ]);
    let port = stub.port;
    let url = format!("https://127.0.0.1:{port}/v1/chat/completions");
    // The key from a file, not argv (exec records keep argv).
    let hdr = dir.path().join("auth-header");
    std::fs::write(
        &hdr,
        "Authorization: Bearer sk-proj-curlSECRETcurlSECRET0123456789\n",
    )
    .unwrap();
    let body = r#"{"model":"gpt-4o","messages":[],"tools":[{"type":"function","function":{"name":"run_shell"}}]}"#;
    let script = format!(
        "set -e\n\
         curl -sS -o /dev/null -H @{hdr} -H 'content-type: application/json' -d '{body}' {url}\n\
         /usr/bin/node {client} https://127.0.0.1:{port} anthropic stream\n\
         if curl -sS -o /dev/null --cacert {ca} -d never-forwarded-marker {url}; then exit 7; fi\n",
        client = demo("llm_client.mjs"),
        ca = ca.display(),
        hdr = hdr.display(),
    );
    let sh = write_script(dir.path(), "agent.sh", &script);
    let out = tempfile::tempdir().unwrap();
    let port_s = port.to_string();
    let o = proctor()
        .args(["run", "--out"])
        .arg(out.path())
        .args([
            "--capture-tls",
            "--tls-intercept",
            "--tls-intercept-port",
            &port_s,
        ])
        .args(["--", "/bin/sh", &sh])
        .env("SSL_CERT_FILE", &ca)
        .output()
        .expect("start proctor");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.contains("TLS INTERCEPTION ON"), "banner: {stderr}");
    assert!(out.path().join("tls-intercept-ca.pem").exists());
    let r = Run {
        records: read_records(&out.path().join("audit.jsonl")),
        out: o,
        dir: out,
    };
    let tls: Vec<_> = r
        .of_type("tls")
        .into_iter()
        .filter(|t| t["lib"] == "intercept")
        .collect();
    for comm in ["curl", "node"] {
        let mine: Vec<_> = tls.iter().filter(|t| t["comm"] == comm).collect();
        assert!(
            mine.iter().any(|t| t["direction"] == "send")
                && mine.iter().any(|t| t["direction"] == "recv"),
            "{comm}: {tls:?}"
        );
        for t in &mine {
            assert_eq!(t["peer"]["addr"], "127.0.0.1", "{t}");
            assert_eq!(t["peer"]["port"].as_u64(), Some(port as u64), "{t}");
        }
        let conns: Vec<_> = mine.iter().map(|t| &t["conn"]).collect();
        let resp = r
            .of_type("llm_response")
            .into_iter()
            .find(|p| p["comm"] == comm && conns.contains(&&p["conn"]))
            .unwrap_or_else(|| {
                panic!(
                    "{comm}: no llm_response from the proxy: {mine:?} {:?}",
                    r.of_type("llm_response")
                )
            });
        assert_eq!(resp["tool_calls"][0]["name"], "run_shell", "{resp}");
    }
    let sent = tls
        .iter()
        .find(|t| t["comm"] == "curl" && t["direction"] == "send")
        .unwrap();
    assert!(
        contains(&data_of(sent), b"Authorization: Bearer [REDACTED]"),
        "{sent}"
    );
    assert!(!everything_written(r.dir.path()).contains("curlSECRET"));
    // The upstream got the relayed requests, and nothing of the refused one.
    let mut saw = Vec::new();
    for e in walk(&rec) {
        saw.extend(std::fs::read(e).unwrap());
    }
    assert!(
        contains(&saw, b"POST /v1/chat/completions"),
        "upstream saw nothing"
    );
    assert!(contains(&saw, b"POST /v1/messages"));
    assert!(!contains(&saw, b"never-forwarded-marker"));
    let refused = r
        .of_type("tls_blind")
        .into_iter()
        .find(|b| {
            b["comm"] == "curl"
                && b["reason"]
                    .as_str()
                    .unwrap()
                    .starts_with("intercept-refused")
        })
        .unwrap_or_else(|| panic!("no refusal record: {:?}", r.of_type("tls_blind")));
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("refused the interception certificate"),
        "{refused}"
    );
}
