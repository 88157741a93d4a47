//! The machine as a newcomer finds it: `proctor doctor` where nothing is mounted yet (it must
//! mount what `run` mounts and pass on its first run), and `run` with an unwritable `--out`.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use std::process::Command;

/// A fresh machine has no tracefs mounted. The test unmounts it in a private mount namespace
/// (the rest of the machine keeps its mounts), runs doctor there, and expects it to pass, the
/// syscall tracepoints judged on the tracefs it mounted itself, which is still mounted after.
#[test]
fn doctor_passes_first_time_without_tracefs() {
    require_root();
    let script = format!(
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; \
         if grep -q ' - tracefs ' /proc/self/mountinfo; then echo 'tracefs still mounted' >&2; exit 99; fi; \
         '{}' doctor; rc=$?; echo \"doctor-exit=$rc\"; grep ' - tracefs ' /proc/self/mountinfo",
        bin().display()
    );
    let out = Command::new("/usr/bin/unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            &script,
        ])
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("doctor-exit=0"), "{stdout}\n{stderr}");
    let tp = stdout
        .lines()
        .find(|l| l.contains("syscall tracepoints"))
        .unwrap_or_else(|| panic!("no tracepoint line: {stdout}"));
    assert!(
        tp.trim_start().starts_with("ok") && tp.contains("tracefs at /sys/kernel/tracing"),
        "{tp}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(
        stdout.contains("proctor can monitor agents on this kernel"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(" /sys/kernel/tracing ") && l.contains(" - tracefs ")),
        "doctor left tracefs mounted where run mounts it: {stdout}"
    );
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
