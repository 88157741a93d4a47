//! Real-kernel tests of reloading the policy of a running agent: SIGHUP to proctor reloads the
//! file it was started with (never forwarded to the agent), a reload that drops an allowed
//! destination or a refused binary deletes its kernel map entry at once, and a reload that
//! would loosen Landlock is refused for that layer and says so in the chained `policy` record.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use std::net::TcpListener;
use std::path::Path;

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

#[test]
fn sighup_reloads_the_policy_file_and_dropped_entries_leave_the_kernel_maps() {
    require_root();
    let agent = AgentHome::new();
    let tmp = agent.tmp();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let binary = tmp.join("forbidden-true");
    copy_executable("/bin/true", &binary);
    let home = agent.home();
    let key = agent.file(".ssh/id_ed25519", "PRIVATE KEY");
    let policy = tmp.join("agent.toml");
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
    let out = tmp.join("out");
    // Not directly in `tmp`: HOME's key puts `tmp` on the path Landlock carves out, where the
    // agent cannot create files (its subdirectories are unaffected).
    std::fs::create_dir(tmp.join("flags")).unwrap();
    let flag = tmp.join("flags/flag").display().to_string();
    let mut cmd = run_command(
        &out,
        &[
            "--mode",
            "enforce",
            "--policy",
            &policy.display().to_string(),
        ],
        &["/usr/bin/python3", "-c", AGENT, &port.to_string()],
    );
    cmd.arg(&binary).arg(&key).arg(&flag).env("HOME", &home);
    let child = spawn_piped(cmd);
    let audit = out.join("audit.jsonl");
    let reloads = || policy_records(&audit).len();
    let round = |n: usize| {
        std::fs::write(format!("{flag}.go{n}"), "").unwrap();
        wait_for(Path::new(&format!("{flag}.done{n}")), "the agent's round");
    };
    let hup = |expect: usize| {
        let pid = proctor_pid(&out);
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
    let stdout = text(&done.stdout);
    let stderr = text(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["0 ok -9 EACCES", "1 EPERM 0 EACCES", "2 ok 0 EACCES"],
        "allowed, then refused once the entry left the allowlist, then allowed again; the binary refused, then not; the key refused throughout\n{stderr}"
    );
    let p = policy_records(&audit);
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
    let applied = lines(&p[0], "applied");
    assert!(applied.contains("1 entry removed"), "{applied}");
    assert!(
        applied.contains(&format!("exec: {} no longer refused", binary.display())),
        "{applied}"
    );
    let not = lines(&p[1], "not_applied");
    assert!(not.contains("files: refused to widen Landlock"), "{not}");
    assert_eq!(
        p[0]["sha256"].as_str().map(str::len),
        Some(64),
        "{:?}",
        p[0]
    );
}
