//! `proctor config check` and `config show` from the command line (no root): OK or one line
//! `FILE:LINE:COL: message` with exit 2, and the effective configuration.

use proctor_testkit::*;

fn check(
    text: &str,
) -> (
    Option<i32>,
    String,
    String,
    std::path::PathBuf,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("proctor.toml");
    std::fs::write(&f, text).unwrap();
    let out = proctor()
        .args(["config", "check"])
        .arg(&f)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        f,
        dir,
    )
}

#[test]
fn a_valid_config_checks_ok() {
    let (code, stdout, stderr, _, _dir) = check(
        "[daemon]\nstate_dir = \"/srv/p\"\n[[agent]]\nname = \"claude\"\nexe = [\"/usr/local/bin/claude\"]\nprofile = \"builtin:claude-code\"\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "OK");
}

#[test]
fn errors_are_one_line_with_file_line_column_and_exit_2() {
    let (code, _, stderr, f, _dir) = check("[[agent]]\nname = \"a\"\nexe = [\"/x\"]\ncolour = 1\n");
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr.trim(),
        format!(
            "proctor: {}:4:1: unknown field `colour`, expected one of `name`, `exe`, `basename`, `build_id`, `search`, `cgroup`, `policy`, `profile`, `mode`, `baseline`",
            f.display()
        )
    );
    // An agent's policy file is read too: its own error, its own place.
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("p.toml");
    std::fs::write(&pol, "[enforce]\nnetwork = \"maybe\"\n").unwrap();
    let (code, _, stderr, _, _d) = check(&format!(
        "[[agent]]\nname = \"a\"\nexe = [\"/x\"]\npolicy = \"{}\"\n",
        pol.display()
    ));
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(&format!("{}:2:", pol.display())),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn show_prints_the_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("proctor.toml");
    std::fs::write(
        &f,
        "[[agent]]\nname = \"svc\"\ncgroup = [\"/system.slice/a.service\"]\n",
    )
    .unwrap();
    let out = proctor()
        .args(["config", "show", "--config"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("state_dir = \"/var/lib/proctor\""), "{text}");
    assert!(
        text.contains("cgroup = [\"/system.slice/a.service\"]"),
        "{text}"
    );
    assert!(text.contains("mode = \"audit\""), "{text}");
}
