//! The evidence commands as a user runs them: `proctor keygen`, `proctor verify` (exit codes 0, 1
//! and 2, the human and `--json` reports, which key was trusted) and `proctor sinkhole` (print,
//! `--append`, `--exec`, stale and live sockets). The formats themselves are tested in
//! `crates/evidence/tests`; these tests check what the binary adds: arguments, output, exit codes.

use proctor_evidence::{AlertSink, AuditLog, CertWriter, Signer};
use proctor_model::Alert;
use proctor_testkit::evidence::{alert, cals, record};
use proctor_testkit::{proctor, PATIENCE};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> Output {
    proctor()
        .args(args)
        .output()
        .expect("running the proctor binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit status, stdout and stderr, for assertion messages.
fn show(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// A run directory as `proctor run` leaves it: audit.jsonl with 3 records and 3 certificates,
/// signed by a key kept in `keys/` (outside the run dir). Returns the run dir and the key dir.
fn sample_run(root: &Path) -> (PathBuf, PathBuf) {
    let keys = root.join("keys");
    let (signer, created) = Signer::load_or_create(&keys).expect("creating a key");
    assert!(created, "a fresh key dir must create a key");
    let signer = Arc::new(signer);
    let out = root.join("run");
    let mut log = AuditLog::open(&out, signer.clone(), "agent-7").expect("opening the log");
    let mut certs =
        CertWriter::new(&out.join("alerts"), signer, "cli-host", None).expect("cert writer");
    for i in 0..3u32 {
        log.append(&record(100 + i, 1_795_422_529_000_000_000 + u64::from(i)))
            .expect("append");
        let w = certs
            .write(&alert(u64::from(i)))
            .expect("writing a certificate");
        log.record_certificate(&w)
            .expect("recording the certificate");
    }
    log.close().expect("closing the log");
    (out, keys)
}

fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("running cp");
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn keygen_writes_a_0600_private_key_and_a_113_byte_public_key_and_never_overwrites() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("state");
    let out = run(&["keygen", "--dir", path_str(&dir)]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let private = dir.join(proctor_evidence::PRIVATE_KEY_FILE);
    let public = dir.join(proctor_evidence::PUBLIC_KEY_FILE);
    let mode = std::fs::metadata(&private)
        .expect("private key exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "private key mode {mode:o}");
    let pem = std::fs::read(&public).expect("public key exists");
    assert_eq!(pem.len(), 113, "Ed25519 SPKI PEM is 113 bytes");

    // The printed fingerprint is the key's, and the private key never reaches the output.
    let stdout = text(&out.stdout);
    let verifier = proctor_evidence::Verifier::load(&public).expect("loading the public key");
    assert!(
        stdout.contains(verifier.fingerprint()),
        "keygen must print the fingerprint {}:\n{}",
        verifier.fingerprint(),
        show(&out)
    );
    let secret = std::fs::read_to_string(&private).expect("reading the private key");
    for line in secret.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !stdout.contains(line) && !text(&out.stderr).contains(line),
            "private key material in keygen output:\n{}",
            show(&out)
        );
    }

    // A second keygen must not replace a key that may already sign evidence.
    let again = run(&["keygen", "--dir", path_str(&dir)]);
    assert_eq!(again.status.code(), Some(2), "{}", show(&again));
    let err = text(&again.stderr);
    assert!(
        err.contains(path_str(&private)) && err.contains("refusing to overwrite"),
        "the refusal must name the key file:\n{}",
        show(&again)
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line:\n{err}");
    assert_eq!(
        std::fs::read_to_string(&private).expect("private key still there"),
        secret,
        "the existing private key was changed"
    );
}

#[test]
fn verify_a_run_directory_says_which_key_it_trusted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (out_dir, keys) = sample_run(tmp.path());

    // Without --key: the key next to the data, and the report says so.
    let out = run(&["verify", path_str(&out_dir)]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("result: VALID"), "{}", show(&out));
    assert!(
        stdout.contains("not pinned"),
        "an unpinned key must be called so:\n{}",
        show(&out)
    );
    assert!(
        stdout.contains("3 verified"),
        "all three certificates:\n{}",
        show(&out)
    );

    // With --key: pinned, and the JSON names the key file given.
    let key = keys.join(proctor_evidence::PUBLIC_KEY_FILE);
    let out = run(&[
        "verify",
        path_str(&out_dir),
        "--key",
        path_str(&key),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json prints one JSON document");
    assert_eq!(v["status"], "valid", "{v:#}");
    assert_eq!(v["exit_code"], 0, "{v:#}");
    let kinds: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["kind"].as_str().expect("item kind"))
        .collect();
    assert!(
        kinds.contains(&"audit_log") && kinds.contains(&"certificates"),
        "a run dir holds a log and certificates: {v:#}"
    );
    let k = &v["keys"][0];
    assert_eq!(k["pinned"], true, "{v:#}");
    assert_eq!(k["source"], path_str(&key), "{v:#}");
    assert!(
        k["signatures"].as_u64().is_some_and(|n| n >= 3),
        "at least the three certificates were checked: {v:#}"
    );
}

#[test]
fn verify_names_the_tampered_file_and_line_and_exits_1() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (out_dir, _keys) = sample_run(tmp.path());

    // An edited certificate.
    let edited = tmp.path().join("edited");
    copy_dir(&out_dir, &edited);
    let cal = cals(&edited.join("alerts"))[1].clone();
    let body = std::fs::read_to_string(&cal).expect("reading a certificate");
    assert_eq!(body.matches("#1").count(), 1, "fixture changed: {body}");
    std::fs::write(&cal, body.replace("#1", "#9")).expect("editing");
    let out = run(&["verify", path_str(&edited)]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(path_str(&cal)) && stdout.contains("signature does not verify"),
        "must name the edited certificate and the failed signature:\n{}",
        show(&out)
    );
    assert!(stdout.contains("result: INVALID"), "{}", show(&out));

    // A deleted certificate: the gap and the audit log's record of it.
    let deleted = tmp.path().join("deleted");
    copy_dir(&out_dir, &deleted);
    let gone = cals(&deleted.join("alerts"))[1].clone();
    std::fs::remove_file(&gone).expect("deleting");
    let out = run(&["verify", path_str(&deleted), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(v["status"], "invalid", "{v:#}");
    let messages: Vec<String> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .flat_map(|i| i["findings"].as_array().expect("findings").iter())
        .map(|f| f.to_string())
        .collect();
    let name = gone.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(
        messages.iter().any(|m| m.contains("seq 2 is missing")),
        "the gap must be reported: {v:#}"
    );
    assert!(
        messages.iter().any(|m| m.contains(name)),
        "the audit log's record of {name} must be reported: {v:#}"
    );

    // A deleted audit log line: the line number where the chain breaks.
    let cut = tmp.path().join("cut");
    copy_dir(&out_dir, &cut);
    let log = cut.join("audit.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .expect("reading the log")
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(lines.len() > 5, "fixture has {} lines", lines.len());
    // Delete line 4 (index 3): the chain must break there.
    let body: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    std::fs::write(&log, body).expect("rewriting the log");
    let out = run(&["verify", path_str(&log)]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = text(&out.stdout);
    let at = format!("{}:4", log.display());
    assert!(
        stdout.contains(&at) && stdout.contains("missing"),
        "must name {at} and the missing record:\n{}",
        show(&out)
    );
}

#[test]
fn verify_with_a_different_key_is_invalid_and_names_both_fingerprints() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (out_dir, keys) = sample_run(tmp.path());
    let other = tmp.path().join("other");
    let g = run(&["keygen", "--dir", path_str(&other)]);
    assert_eq!(g.status.code(), Some(0), "{}", show(&g));
    let other_pub = other.join(proctor_evidence::PUBLIC_KEY_FILE);
    let other_fp = proctor_evidence::Verifier::load(&other_pub)
        .expect("other key")
        .fingerprint()
        .to_owned();
    let real_fp = proctor_evidence::Verifier::load(&keys.join(proctor_evidence::PUBLIC_KEY_FILE))
        .expect("real key")
        .fingerprint()
        .to_owned();

    let out = run(&["verify", path_str(&out_dir), "--key", path_str(&other_pub)]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&other_fp) && stdout.contains(&real_fp),
        "must name the key given and the key that signed:\n{}",
        show(&out)
    );
    assert!(
        stdout.contains(path_str(&other_pub)),
        "must name the --key file:\n{}",
        show(&out)
    );
}

#[test]
fn verify_exits_2_when_it_cannot_check() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (out_dir, _keys) = sample_run(tmp.path());

    let missing = tmp.path().join("no-such-file.cal");
    let out = run(&["verify", path_str(&missing)]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out.stdout).contains(path_str(&missing)),
        "must name the unreadable path:\n{}",
        show(&out)
    );

    // A --key that is not an Ed25519 public key: a usage error, one line naming the file.
    for (name, content, why) in [
        ("garbage.pem", "garbage\n".to_owned(), "no PEM block"),
        (
            "private.pem",
            std::fs::read_to_string(
                tmp.path()
                    .join("keys")
                    .join(proctor_evidence::PRIVATE_KEY_FILE),
            )
            .expect("reading the private key"),
            "this is a private key",
        ),
    ] {
        let bad = tmp.path().join(name);
        std::fs::write(&bad, &content).expect("writing a bad key");
        let out = run(&["verify", path_str(&out_dir), "--key", path_str(&bad)]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", show(&out));
        let err = text(&out.stderr);
        assert!(
            err.contains(path_str(&bad)) && err.contains(why),
            "{name}: want the path and {why:?}: {}",
            show(&out)
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{name}: one line:\n{err}"
        );
        assert!(out.stdout.is_empty(), "{name}: no report:\n{}", show(&out));
        // A private key handed over by mistake must not be echoed back.
        let secret = content.lines().filter(|l| !l.starts_with("-----"));
        for line in secret.filter(|_| name == "private.pem") {
            assert!(
                !err.contains(line),
                "{name}: key material in the error:\n{err}"
            );
        }
    }

    // Unchecked wins over valid in the exit code: one good path and one missing one.
    let out = run(&["verify", path_str(&out_dir), path_str(&missing), "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(v["exit_code"], 2, "{v:#}");
}

/// A running `proctor sinkhole`, killed when dropped.
struct Sinkhole {
    child: Option<Child>,
}

impl Sinkhole {
    fn start(socket: &Path, extra: &[&str], stdout: Stdio) -> Sinkhole {
        let child = proctor()
            .arg("sinkhole")
            .arg("--listen")
            .arg(socket)
            .args(extra)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting proctor sinkhole");
        let mut s = Sinkhole { child: Some(child) };
        let deadline = Instant::now() + PATIENCE;
        while UnixStream::connect(socket).is_err() {
            let child = s.child.as_mut().expect("running");
            if let Some(st) = child.try_wait().expect("polling sinkhole") {
                panic!("sinkhole exited early with {st}");
            }
            assert!(
                Instant::now() < deadline,
                "sinkhole did not listen on {} within {} s",
                socket.display(),
                PATIENCE.as_secs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// Kill this child (by its handle, nothing else) and collect what it printed.
    fn stop(mut self) -> Output {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        child
            .wait_with_output()
            .expect("collecting sinkhole output")
    }
}

impl Drop for Sinkhole {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Wait until `path` holds `n` lines and return them.
fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    proctor_testkit::receivers::wait_lines(path, n, PATIENCE)
}

fn send_alerts(socket: &Path, n: u32) {
    let sink = AlertSink::spawn(socket, 16).expect("spawning the alert sink");
    for i in 0..n {
        assert!(sink.send(&alert(u64::from(i))), "alert {i} was not queued");
    }
    let (sent, dropped) = sink.close(Duration::from_secs(10));
    assert_eq!((sent, dropped), (u64::from(n), 0), "sent, dropped");
}

fn assert_alerts(lines: &[String], n: u32) {
    assert_eq!(lines.len(), n as usize, "{lines:?}");
    for (i, line) in (0..n).zip(lines) {
        let got: Alert = serde_json::from_str(line).expect("each line is an alert");
        assert_eq!(
            got,
            alert(u64::from(i)),
            "alert {i} arrived changed or out of order"
        );
    }
}

#[test]
fn sinkhole_appends_each_alert_as_one_json_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = tmp.path().join("alerts.sock");
    let file = tmp.path().join("alerts.jsonl");
    let s = Sinkhole::start(&socket, &["--append", path_str(&file)], Stdio::null());
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        mode, 0o600,
        "whoever can connect can inject alerts: mode {mode:o}"
    );
    send_alerts(&socket, 3);
    let lines = wait_for_lines(&file, 3);
    let out = s.stop();
    assert_alerts(&lines, 3);
    assert!(
        out.stdout.is_empty(),
        "--append must not also print:\n{}",
        show(&out)
    );
}

#[test]
fn sinkhole_prints_by_default_and_skips_a_line_that_is_not_an_alert() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = tmp.path().join("alerts.sock");
    let printed = tmp.path().join("stdout.txt");
    let stdout = std::fs::File::create(&printed).expect("creating stdout file");
    let s = Sinkhole::start(&socket, &[], Stdio::from(stdout));

    let mut conn = UnixStream::connect(&socket).expect("connecting");
    let first = serde_json::to_string(&alert(0)).expect("json");
    conn.write_all(format!("not json\n{first}\n[1,2]\n").as_bytes())
        .expect("writing");
    drop(conn);
    let lines = wait_for_lines(&printed, 1);
    send_alerts(&socket, 1);
    let lines2 = wait_for_lines(&printed, 2);
    let out = s.stop();
    assert_eq!(lines, vec![first.clone()], "{}", show(&out));
    assert_eq!(lines2, vec![first.clone(), first], "{}", show(&out));
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("not a JSON object").count(),
        2,
        "both junk lines must be reported on stderr:\n{err}"
    );
}

#[test]
fn sinkhole_exec_pipes_each_alert_into_the_command() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = tmp.path().join("alerts.sock");
    let file = tmp.path().join("hook.jsonl");
    // One run of the hook per alert: each appends its stdin and a marker line.
    let cmd = format!("cat >> '{0}'; echo HOOK >> '{0}'", file.display());
    let s = Sinkhole::start(&socket, &["--exec", &cmd], Stdio::null());
    send_alerts(&socket, 2);
    let lines = wait_for_lines(&file, 4);
    let out = s.stop();
    assert_eq!(lines.len(), 4, "{lines:?}\n{}", show(&out));
    assert_eq!((lines[1].as_str(), lines[3].as_str()), ("HOOK", "HOOK"));
    assert_alerts(&[lines[0].clone(), lines[2].clone()], 2);
}

#[test]
fn sinkhole_replaces_a_stale_socket_but_not_a_live_one_or_a_file() {
    let tmp = tempfile::tempdir().expect("tempdir");

    // Stale: a socket file whose listener is gone.
    let stale = tmp.path().join("stale.sock");
    drop(UnixListener::bind(&stale).expect("binding"));
    assert!(stale.exists(), "the socket file outlives its listener");
    let file = tmp.path().join("out.jsonl");
    let s = Sinkhole::start(&stale, &["--append", path_str(&file)], Stdio::null());
    send_alerts(&stale, 1);
    let lines = wait_for_lines(&file, 1);
    drop(s);
    assert_alerts(&lines, 1);

    // Live: another receiver holds it.
    let live = tmp.path().join("live.sock");
    let _listener = UnixListener::bind(&live).expect("binding");
    let out = run(&["sinkhole", "--listen", path_str(&live)]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("another receiver is listening"),
        "{}",
        show(&out)
    );

    // A regular file is never removed.
    let regular = tmp.path().join("regular");
    std::fs::write(&regular, "precious").expect("writing");
    let out = run(&["sinkhole", "--listen", path_str(&regular)]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("is not a socket"),
        "{}",
        show(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&regular).expect("still there"),
        "precious"
    );
}
