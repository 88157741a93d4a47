//! Real-kernel tests of reloading the policy of a running agent: SIGHUP to proctor reloads the
//! file it was started with (never forwarded to the agent), a reload that drops an allowed
//! destination or a refused binary deletes its kernel map entry at once, and a reload that
//! would loosen Landlock is refused for that layer and says so in the chained `policy` record.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The agent: three rounds of (connect to the listener, run the refused binary, read the key),
/// each after the test's go-ahead for it. Python dies on a SIGHUP it receives, so a forwarded
/// SIGHUP shows as a missing round and a failed run.
const AGENT: &str = r#"
import errno, os, socket, subprocess, sys, time
port, binary, key, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def connect():
    s = socket.socket()
    try:
        s.connect(('127.0.0.1', port)); return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]
    finally:
        s.close()
def read():
    try:
        open(key).read(); return 'read'
    except PermissionError:
        return 'EACCES'
for n in range(3):
    while not os.path.exists(f'{flag}.go{n}'):
        time.sleep(0.05)
    rc = subprocess.run([binary], stdout=subprocess.DEVNULL).returncode
    print(n, connect(), rc, read(), flush=True)
    open(f'{flag}.done{n}', 'w').close()
"#;

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_the_policy_file_and_dropped_entries_leave_the_kernel_maps() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let binary = tmp.path().join("forbidden-true");
    std::fs::copy("/bin/true", &binary).unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE KEY").unwrap();
    let policy = tmp.path().join("agent.toml");
    let write_policy = |allow: &str, exec: &str, files: &str| {
        std::fs::write(
            &policy,
            format!(
                "[network]\nallow = [{allow}]\n[enforce]\nnetwork = \"block\"\nexec = [{exec}]\nfiles = \"{files}\"\n"
            ),
        )
        .unwrap();
    };
    let allowed = format!("\"127.0.0.1:{port}\"");
    let refused = format!("\"{}\"", binary.display());
    write_policy(&allowed, &refused, "block");
    let out = tmp.path().join("out");
    // Not directly in `tmp`: HOME's key puts `tmp` on the path Landlock carves out, where the
    // agent cannot create files (its subdirectories are unaffected).
    std::fs::create_dir(tmp.path().join("flags")).unwrap();
    let flag = tmp.path().join("flags/flag").display().to_string();
    let child = Command::new(bin())
        .args(["run", "--mode", "enforce", "--policy"])
        .arg(&policy)
        .arg("--out")
        .arg(&out)
        .args(["--", "/usr/bin/python3", "-c", AGENT, &port.to_string()])
        .arg(&binary)
        .arg(home.join(".ssh/id_ed25519"))
        .arg(&flag)
        .env("HOME", &home)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let child = KillOnDrop::new(child);
    let audit = out.join("audit.jsonl");
    let reloads = || {
        read_records(&audit)
            .into_iter()
            .filter(|r| r["type"] == "policy")
            .count()
    };
    let round = |n: usize| {
        std::fs::write(format!("{flag}.go{n}"), "").unwrap();
        wait_for(Path::new(&format!("{flag}.done{n}")), "the agent's round");
    };
    let hup = |expect: usize| {
        wait_for(&out.join("proctor.pid"), "proctor never started");
        let pid: i32 = std::fs::read_to_string(out.join("proctor.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
        wait_until("the policy record of the SIGHUP", || reloads() == expect);
    };
    round(0);
    // Drop the allowed destination and the refused binary: both kernel entries go.
    write_policy("", "", "block");
    hup(1);
    round(1);
    // Put the destination back and ask Landlock to loosen: the first takes effect, the
    // second is refused and said so.
    write_policy(&allowed, "", "alert");
    hup(2);
    round(2);
    let done = child.into_inner().wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&done.stdout).to_string();
    let stderr = String::from_utf8_lossy(&done.stderr).to_string();
    assert!(done.status.success(), "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["0 ok -9 EACCES", "1 EPERM 0 EACCES", "2 ok 0 EACCES"],
        "allowed, then refused once the entry left the allowlist, then allowed again; the binary refused, then not; the key refused throughout\n{stderr}"
    );
    let recs = read_records(&audit);
    let p: Vec<_> = recs.iter().filter(|r| r["type"] == "policy").collect();
    assert_eq!(p.len(), 2, "{p:#?}");
    for r in &p {
        assert_eq!(r["origin"], policy.display().to_string());
        assert_eq!(r["requested_by"]["pid"], std::process::id());
        assert_eq!(r["requested_by"]["uid"], 0);
        assert!(r["hash_prev"].is_string(), "chained: {r}");
    }
    let lines = |r: &serde_json::Value, key: &str| -> String {
        r[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let applied = lines(p[0], "applied");
    assert!(applied.contains("1 entry removed"), "{applied}");
    assert!(
        applied.contains(&format!("exec: {} no longer refused", binary.display())),
        "{applied}"
    );
    let not = lines(p[1], "not_applied");
    assert!(not.contains("files: refused to widen Landlock"), "{not}");
    assert_eq!(
        p[0]["sha256"].as_str().map(str::len),
        Some(64),
        "{:?}",
        p[0]
    );
}
