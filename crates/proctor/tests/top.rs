//! `proctor top` on a live run, driven as a user drives it: in a real terminal (a detached tmux
//! session), reading the screen until the alert and the live record rates appear, then `q`.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The agent learns a baseline of `sleep` and `cat`, is hijacked into a shell it never spawned
/// (L2 LLM_AGENT_HIJACK), then keeps running `cat` twice a second for the view to measure.
const AGENT: &str = r#"
sleep 1.5
bash -c true
i=0
while [ $i -lt 120 ]; do cat /etc/hostname >/dev/null; sleep 0.5; i=$((i+1)); done
"#;

/// A tmux server of this test only (its own socket), killed at the end.
struct Tmux(String);

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.0]);
        c
    }
    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "top"])
            .output()
            .expect("tmux is needed (make deps installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "no {what} on the screen:\n{s}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// A line of the rates table for `kind` with a non-zero rate, e.g. `exec  2.0/s  12`.
fn live_rate(screen: &str, kind: &str) -> bool {
    screen.lines().any(|l| {
        let w: Vec<&str> = l
            .split(|c: char| c.is_whitespace() || c == '│')
            .filter(|w| !w.is_empty())
            .collect();
        w.windows(2).any(|p| {
            p[0] == kind
                && p[1]
                    .strip_suffix("/s")
                    .and_then(|r| r.parse::<f64>().ok())
                    .is_some_and(|r| r > 0.0)
        })
    })
}

#[test]
fn top_shows_a_live_runs_alert_and_rates_and_quits_on_q() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = KillOnDrop::new(
        proctor()
            .args(["run", "--out"])
            .arg(&out)
            .args(["--baseline", "1s", "--", "/bin/sh", "-c", AGENT])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let tmux = Tmux(format!("proctor-top-test-{}", std::process::id()));
    let top = format!(
        "{} top {}; echo TOP_EXIT=$?; sleep 120",
        bin().display(),
        dir.path().display()
    );
    let status = tmux
        .cmd()
        .args([
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "160",
            "-y",
            "45",
            &top,
        ])
        .env("TERM", "xterm-256color")
        .status()
        .expect("tmux is needed (make deps installs it)");
    assert!(status.success(), "tmux new-session failed");

    let s = tmux.wait_for("LLM_AGENT_HIJACK alert", |s| s.contains("LLM_AGENT_HIJACK"));
    assert!(
        s.contains("run"),
        "the session is named by its directory:\n{s}"
    );
    tmux.wait_for("live exec rate", |s| live_rate(s, "exec"));
    let s = tmux.wait_for("live file_open rate", |s| live_rate(s, "file_open"));
    assert!(
        s.contains("live"),
        "the session is live while the agent runs:\n{s}"
    );

    let sent = tmux
        .cmd()
        .args(["send-keys", "-t", "top", "q"])
        .status()
        .unwrap();
    assert!(sent.success());
    let s = tmux.wait_for("top's exit", |s| s.contains("TOP_EXIT="));
    assert!(s.contains("TOP_EXIT=0"), "top exits 0 on q:\n{s}");
    drop(run);
}
