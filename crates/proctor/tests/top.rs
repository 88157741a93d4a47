//! `proctor top` on a live run, driven as a user drives it: in a real terminal (a detached tmux
//! session), reading the screen until the alert and the live record rates appear, then `q`;
//! and `proctor top --daemon` following a daemon's sessions through its socket.

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
    /// A detached 160x45 session `top` of a new server named `name`, running `shell` (a
    /// command line ending in `echo TOP_EXIT=$?` so the exit shows on the screen).
    fn start(name: String, shell: &str) -> Tmux {
        let tmux = Tmux(name);
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
                shell,
            ])
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux is needed (make deps installs it)");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    /// Press `q`: top must exit with status 0.
    fn quit(&self) {
        let sent = self
            .cmd()
            .args(["send-keys", "-t", "top", "q"])
            .status()
            .unwrap();
        assert!(sent.success());
        let s = self.wait_for("top's exit", |s| s.contains("TOP_EXIT="));
        assert!(s.contains("TOP_EXIT=0"), "top exits 0 on q:\n{s}");
    }

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
    let tmux = Tmux::start(
        format!("proctor-top-test-{}", std::process::id()),
        &format!(
            "{} top {}; echo TOP_EXIT=$?; sleep 120",
            bin().display(),
            dir.path().display()
        ),
    );

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

    tmux.quit();
    drop(run);
}

/// `proctor top --daemon` as an operator runs it beside the service: a daemon matches an agent
/// by its executable, and the view (asking the daemon's socket) shows that agent's session by
/// its name, live, then its L2 alert once the agent is hijacked into a shell; `q` quits with
/// status 0 and the daemon goes on.
#[test]
fn top_daemon_shows_a_matched_agents_session_and_alert_and_quits_on_q() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sock = dir.path().join("proctor.sock");
    let agent = dir.path().join("watched-agent");
    copy_executable("/bin/dash", &agent);
    let config = format!(
        "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n\n[[agent]]\nname = \"watched\"\nexe = [\"{}\"]\nbaseline = \"1s\"\n",
        state.display(),
        sock.display(),
        agent.display()
    );
    let d = proctor_testkit::daemon::Daemon::start(dir.path(), &config, "/usr/bin:/bin");
    let tmux = Tmux::start(
        format!("proctor-top-daemon-test-{}", std::process::id()),
        &format!(
            "{} top --daemon --socket {}; echo TOP_EXIT=$?; sleep 120",
            bin().display(),
            sock.display()
        ),
    );
    tmux.wait_for("the daemon in the title", |s| {
        s.contains("no session yet") && s.contains("daemon")
    });

    // Started by the test, not by proctor: the daemon finds it at exec.
    let run = KillOnDrop::new(
        Command::new(&agent)
            .args(["-c", AGENT])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let session = proctor_testkit::daemon::wait_for_session(&state, "watched", 1);
    let name = format!(
        "watched/{}",
        session[0].file_name().unwrap().to_string_lossy()
    );
    let s = tmux.wait_for("LLM_AGENT_HIJACK alert", |s| s.contains("LLM_AGENT_HIJACK"));
    assert!(
        s.contains(&name) && s.contains("live"),
        "the session {name}, live:\n{s}"
    );
    tmux.wait_for("live exec rate", |s| live_rate(s, "exec"));

    tmux.quit();
    drop(run);
    proctor_testkit::daemon::wait_ended(&session[0]);
    let log = d.stop();
    assert!(!log.contains("panicked"), "{log}");
    proctor_testkit::daemon::verify_valid(&session[0]);
}
