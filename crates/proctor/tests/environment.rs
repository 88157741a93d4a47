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

/// proctor runs without transparent huge pages (runtime/src/thp.rs: its allocator's page
/// faults zeroed 2 MiB each), and the setting is inherited across exec: the agent must run with
/// what proctor was given, on, or off when proctor's parent turned it off.
#[test]
fn the_agent_keeps_the_huge_page_setting_proctor_was_given() {
    require_root();
    let status = |text: &str, who: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(who))
            .and_then(|l| l.rsplit(':').next())
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {who} line in {text:?}"))
    };
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        status(&ours, "THP_enabled"),
        "1",
        "the test runs with THP allowed"
    );
    // The agent prints its own setting, then its parent's (proctor's).
    let agent = [
        "/bin/sh",
        "-c",
        "grep -h THP_enabled /proc/self/status /proc/$PPID/status",
    ];
    for (parent_off, want) in [(false, "1"), (true, "0")] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = run_command(dir.path(), &[], &agent);
        if parent_off {
            // SAFETY: prctl with integer arguments, in the child before exec.
            unsafe {
                use std::os::unix::process::CommandExt;
                c.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let out = c.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        assert_eq!(status(lines[0], "THP_enabled"), want, "the agent: {text:?}");
        assert_eq!(
            status(lines[1], "THP_enabled"),
            "0",
            "proctor itself: {text:?}"
        );
    }
}
