//! `proctor daemon` for the real-kernel tests: a daemon on a configuration of the test's own,
//! its log, its session directories under the state directory, and waiting on them.

use crate::{proctor, KillOnDrop, PATIENCE};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A daemon on a configuration file in the test's directory, its stderr in `daemon.log` there;
/// stopped (SIGTERM) and reaped at drop.
pub struct Daemon {
    pub child: KillOnDrop,
    log: PathBuf,
}

impl Daemon {
    /// Write `config` to `DIR/proctor.toml`, start `proctor daemon --config` on it with `PATH`
    /// set to `path_env` (the directories `basename` and `build_id` rules search), and wait
    /// until it has put its rules in the kernel.
    pub fn start(dir: &Path, config: &str, path_env: &str) -> Daemon {
        let cfg = dir.join("proctor.toml");
        std::fs::write(&cfg, config).unwrap();
        let log = dir.join("daemon.log");
        let child = proctor()
            .args(["daemon", "--config"])
            .arg(&cfg)
            .env("PATH", path_env)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start proctor daemon");
        let d = Daemon {
            child: KillOnDrop::new(child),
            log,
        };
        d.wait_log("matched in the kernel");
        d
    }

    /// What the daemon said on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_log(&self, what: &str) {
        let t = Instant::now();
        while !self.log().contains(what) {
            assert!(
                t.elapsed() < PATIENCE,
                "daemon never said {what:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and the daemon must exit 0; returns its log.
    pub fn stop(mut self) -> String {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "daemon exit {status:?}: {}", self.log());
        self.log()
    }
}

/// The session directories of `agent` under the state directory, sorted.
pub fn sessions(state: &Path, agent: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(state.join("runs").join(agent))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Until `agent` has at least `n` session directories.
pub fn wait_for_session(state: &Path, agent: &str, n: usize) -> Vec<PathBuf> {
    let t = Instant::now();
    loop {
        let s = sessions(state, agent);
        if s.len() >= n {
            return s;
        }
        assert!(t.elapsed() < PATIENCE, "no session of {agent}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Until the session's `sensor_stop` is written.
pub fn wait_ended(session: &Path) {
    let t = Instant::now();
    while !std::fs::read_to_string(session.join("audit.jsonl"))
        .unwrap_or_default()
        .contains("\"type\":\"sensor_stop\"")
    {
        assert!(
            t.elapsed() < PATIENCE,
            "session {} never ended",
            session.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The session's `alerts.jsonl` (empty when it raised none).
pub fn alerts(session: &Path) -> String {
    std::fs::read_to_string(session.join("alerts.jsonl")).unwrap_or_default()
}

/// `proctor verify` says the session directory is VALID (exit 0).
pub fn verify_valid(session: &Path) {
    let out = proctor().arg("verify").arg(session).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify {}: {text}",
        session.display()
    );
    assert!(text.contains("result: VALID"), "{text}");
}

/// `proctor ctl --socket SOCK list --json`, which must succeed: the daemon's agents and open
/// sessions.
pub fn ctl_list(sock: &Path) -> serde_json::Value {
    let out = proctor()
        .args(["ctl", "--socket"])
        .arg(sock)
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "proctor ctl list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ctl list --json prints JSON")
}
