//! Bad input and environment: one clear line naming the problem, exit 2, no panic, and no
//! half-written output or agent started.

use proctor_testkit::*;
use std::process::Command;

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
fn enforce_section_errors_name_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    // ptrace takes alert or block only: the builder writes what the parser must refuse.
    let text = PolicyBuilder::new().ptrace(Verdict::Ask).text();
    let line = text
        .lines()
        .position(|l| l.starts_with("ptrace = \"ask\""))
        .unwrap()
        + 1;
    let p = tmp.path().join("p.toml");
    std::fs::write(&p, text).unwrap();
    let out = proctor()
        .args(["policy", "check"])
        .arg(&p)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains(&format!("p.toml:{line}:")), "{all}");
    assert!(all.contains("approval flow"), "{all}");
}

/// A policy file holds only what it changes: three lines check, `show --effective` prints the
/// complete result, and an error in the overlay names the overlay's line and column.
#[test]
fn a_three_line_overlay_checks_and_shows_its_effective_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p.toml");
    std::fs::write(
        &p,
        "# the allowlist only\n[network]\nallow = [\"api.anthropic.com\"]\n",
    )
    .unwrap();
    let policy = |args: &[&str]| proctor().arg("policy").args(args).arg(&p).output().unwrap();
    let out = policy(&["check"]);
    let err = one_line_error(&out);
    assert!(out.status.success(), "{err}");
    let out = policy(&["show", "--effective"]);
    assert!(out.status.success(), "{}", one_line_error(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("allow = [\"api.anthropic.com\"]"), "{text}");
    assert!(text.contains("standard_ports = [53, 80, 443]"), "{text}");
    std::fs::write(&p, "[network]\nallow = { extend = [\"bad host!\"] }\n").unwrap();
    let out = policy(&["check"]);
    let err = one_line_error(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("p.toml:2:21: allow entry `bad host!`"),
        "{err}"
    );
}

/// As a normal user (or as root dropped to nobody) `run` says root is missing, in one line.
#[test]
fn not_root_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (mut cmd, _keep) = unprivileged();
    let out = cmd
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

/// Without the privilege to load eBPF, `doctor` names that privilege and nothing else: no
/// feature line, no verdict on the kernel (every probe would fail for that one reason).
#[test]
fn doctor_as_a_normal_user_names_the_missing_privilege_only() {
    for json in [false, true] {
        let (mut cmd, _keep) = unprivileged();
        cmd.arg("doctor");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        let err = one_line_error(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            out.stdout.is_empty(),
            "nothing but the error: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)"),
            "{err}"
        );
        for blame in ["kernel <", "not supported", "tracefs", "FAIL"] {
            assert!(!err.contains(blame), "blames the machine: {err}");
        }
    }
}

/// proctor as an unprivileged user: this user when the tests run as one, nobody (no
/// capabilities) when they run as root.
fn unprivileged() -> (Command, Option<tempfile::TempDir>) {
    if is_root() {
        let (cmd, dir) = as_nobody();
        (cmd, Some(dir))
    } else {
        (proctor(), None)
    }
}

#[test]
fn an_agent_command_without_dashes_says_where_it_goes() {
    let out = proctor().args(["run", "ls", "-l"]).output().unwrap();
    let err = one_line_error(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`ls`") && err.contains("proctor run [OPTIONS] -- ls"),
        "{err}"
    );
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = proctor().arg("--version").output().unwrap();
    assert!(out.status.success());
    let v = String::from_utf8_lossy(&out.stdout).into_owned();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(
        v.starts_with(&format!("proctor {} ({head}", env!("CARGO_PKG_VERSION"))),
        "{v} does not name HEAD {head}"
    );
}
