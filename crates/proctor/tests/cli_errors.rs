//! Bad input and environment: one clear line naming the problem, exit 2, no panic, and no
//! half-written output or agent started.

mod common;

use common::*;
use std::process::Command;

fn one_line_error(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "panic: {err}");
    err
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["run"],
        vec!["run", "--"],
        vec!["run", "--no-such-flag", "--", "true"],
        vec!["attach"],
        vec!["attach", "--pid", "notanumber"],
        vec!["frobnicate"],
    ] {
        let out = proctor().args(&args).output().unwrap();
        let err = one_line_error(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("error"), "{args:?}: {err}");
    }
}

#[test]
fn attach_to_a_missing_pid() {
    let out = proctor()
        .args(["attach", "--pid", "4000000"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(err.trim(), "proctor: no process with pid 4000000");
}

#[test]
fn unwritable_out_fails_before_the_agent_starts() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let marker = dir.path().join("agent-ran");
    let out = proctor()
        .args(["run", "--out"])
        .arg(blocker.join("sub"))
        .arg("--")
        .arg("/usr/bin/touch")
        .arg(&marker)
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("proctor: cannot create output directory"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        !marker.exists(),
        "the agent must not run when output is unwritable"
    );
}

#[test]
fn not_root_is_a_clear_error() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new("/usr/bin/setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_proctor"))
        .args(["run", "--out"])
        .arg(dir.path().join("o"))
        .args(["--", "/bin/true"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs root"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_duration_out_of_range_is_one_line_and_exit_2() {
    let out = proctor()
        .args([
            "replay",
            "--baseline",
            "99999999999999999999999h",
            "x/audit.jsonl",
        ])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--baseline"), "{err}");
    // Days are a unit: the command then gets as far as the missing log.
    let out = proctor()
        .args(["replay", "--baseline", "1d", "x/audit.jsonl"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot read audit log"), "{err}");
}
