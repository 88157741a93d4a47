//! Completions and the man page are generated from the clap definitions: check that real
//! consumers (bash, man) accept them and that they name the subcommands the parser has.

use proctor_testkit::*;
use std::process::{Command, Stdio};

fn stdout_of(args: &[&str]) -> String {
    let out = proctor().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completion_loads_and_completes_subcommands() {
    let script = stdout_of(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proctor.bash");
    std::fs::write(&file, script).unwrap();
    // Load it in a real bash and ask it to complete `proctor at`.
    let probe = format!(
        "source {}; COMP_WORDS=(proctor at); COMP_CWORD=1; COMP_LINE='proctor at'; COMP_POINT=10; _proctor proctor at proctor; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(got.trim(), "attach", "completions of `proctor at`: {got}");
}

#[test]
fn man_page_renders_with_the_subcommands() {
    let roff = stdout_of(&["man"]);
    assert!(roff.contains(".TH proctor 1"), "{roff}");
    let Ok(mut man) = Command::new("man")
        .args(["-l", "-"])
        .env("MANWIDTH", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    else {
        // No man(1) here: the roff above is all that can be checked.
        return;
    };
    use std::io::Write;
    man.stdin
        .take()
        .unwrap()
        .write_all(roff.as_bytes())
        .unwrap();
    let out = man.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["run", "attach", "verify", "completions"] {
        assert!(
            text.contains(&format!("proctor-{sub}")),
            "{sub} missing:\n{text}"
        );
    }
}
