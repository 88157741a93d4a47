//! `make install` / `make uninstall` into a staging root (DESTDIR), and the systemd unit checked
//! by systemd-analyze, as any user. The .deb is tested by `make package-test` (a release build).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `make TARGET` at the repository root, staged into `dest`, installing the binary under test.
fn make(target: &str, dest: &Path) {
    let out = Command::new("make")
        .current_dir(repo())
        .args([
            "--no-print-directory",
            target,
            &format!("DESTDIR={}", dest.display()),
            &format!("PROCTOR_BIN={}", env!("CARGO_BIN_EXE_proctor")),
        ])
        // Under `make test` the outer make's flags (jobserver fds) must not leak in.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .expect("make is needed (make deps)");
    assert!(
        out.status.success(),
        "make {target}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// systemd-analyze verify on `unit` (its ExecStart pointed at the staged binary, the staged man
/// page on MANPATH for `Documentation=man:`): its exit status and everything it printed, since
/// it reports an unknown key or a bad value as a warning with exit 0.
fn verify(unit_text: &str, dest: &Path) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("proctor.service");
    let staged_bin = dest.join("usr/local/bin/proctor");
    std::fs::write(
        &unit,
        unit_text.replace(
            "ExecStart=/usr/local/bin/proctor",
            &format!("ExecStart={}", staged_bin.display()),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("MANPATH", dest.join("usr/local/share/man"))
        .output()
        .expect("systemd-analyze is needed (make deps installs systemd)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.trim().is_empty(), text)
}

#[test]
fn make_install_stages_everything_and_the_unit_verifies() {
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path();
    make("install", d);
    for (path, mode) in [
        ("usr/local/bin/proctor", 0o755),
        ("usr/local/lib/systemd/system/proctor.service", 0o644),
        ("usr/local/share/man/man1/proctor.1", 0o644),
        ("usr/local/share/bash-completion/completions/proctor", 0o644),
        ("usr/local/share/zsh/site-functions/_proctor", 0o644),
        (
            "usr/local/share/fish/vendor_completions.d/proctor.fish",
            0o644,
        ),
        ("etc/proctor/proctor.toml", 0o644),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(d.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(meta.len() > 0, "{path} is empty");
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{path}");
    }
    let version = Command::new(d.join("usr/local/bin/proctor"))
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with("proctor ") && version.contains(" ("),
        "--version names the commit: {version}"
    );

    let unit =
        std::fs::read_to_string(d.join("usr/local/lib/systemd/system/proctor.service")).unwrap();
    assert!(
        unit.contains(
            "\nExecStart=/usr/local/bin/proctor daemon --config /etc/proctor/proctor.toml\n"
        ),
        "{unit}"
    );
    let (ok, text) = verify(&unit, d);
    assert!(ok, "systemd-analyze verify: {text}");
    // The check can fail: a misspelt value is reported (systemd only warns, exit 0).
    let (ok, text) = verify(&unit.replace("Restart=on-failure", "Restart=on-falure"), d);
    assert!(!ok && text.contains("on-falure"), "{text}");
}

#[test]
fn the_unit_keeps_what_an_ebpf_monitor_needs() {
    let unit = std::fs::read_to_string(repo().join("packaging/proctor.service")).unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    let caps = lines
        .iter()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("a capability bounding set");
    for cap in [
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_SYS_ADMIN",
        "CAP_SYS_PTRACE",
        "CAP_NET_ADMIN",
        "CAP_DAC_READ_SEARCH",
        "CAP_KILL",
    ] {
        assert!(caps.split_whitespace().any(|c| c == cap), "{cap} missing");
    }
    for want in [
        "Restart=on-failure",
        "StateDirectory=proctor",
        "UMask=0077",
        "NoNewPrivileges=yes",
        "ProtectKernelModules=yes",
    ] {
        assert!(lines.contains(&want), "{want} missing");
    }
    // These would make /sys, /sys/fs/cgroup or /sys/fs/bpf read-only, or hide the agents' /tmp
    // files from uprobe attachment by path: each breaks a part of monitoring.
    for bad in [
        "ProtectKernelTunables=",
        "ProtectControlGroups=",
        "ProtectSystem=strict",
        "PrivateTmp=",
        "PrivateDevices=",
    ] {
        assert!(
            !lines.iter().any(|l| l.starts_with(bad)),
            "{bad} breaks eBPF monitoring"
        );
    }
}

#[test]
fn install_keeps_an_edited_config_and_uninstall_leaves_it() {
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path();
    make("install", d);
    let conf = d.join("etc/proctor/proctor.toml");
    std::fs::write(&conf, "[daemon]\n# the operator's\n").unwrap();
    make("install", d);
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "[daemon]\n# the operator's\n",
        "install overwrote the operator's configuration"
    );
    make("uninstall", d);
    assert!(!d.join("usr/local/bin/proctor").exists());
    assert!(!d
        .join("usr/local/lib/systemd/system/proctor.service")
        .exists());
    assert!(!d.join("usr/local/share/man/man1/proctor.1").exists());
    assert!(conf.exists(), "uninstall removed an edited configuration");

    // An unedited example goes with the rest.
    let fresh = tempfile::tempdir().unwrap();
    make("install", fresh.path());
    make("uninstall", fresh.path());
    assert!(!fresh.path().join("etc/proctor").exists());
}
