//! The host service end to end, as a newcomer would set it up: `proctor daemon` on a
//! configuration that names Claude Code by its executable (`basename = ["claude"]`, judged by
//! `builtin:claude-code` from its first record), its alerts shipped to a real rsyslogd over a
//! local socket and its metrics scraped by a real Prometheus. Then, in another process tree
//! the daemon did not start, the real Claude Code CLI (tests/agents, `make agents`) runs a
//! hijacked coding session (tests/agents/scripts.json `hijack`: credential read, exfiltration
//! POST, reverse shell, authorized_keys write) in a network namespace with only loopback, its
//! model played by the tier's stub. The daemon must find it in the kernel at exec, follow its
//! tree (claude -> bash -> tools) in a session of its own, raise an alert per hijack step, ship
//! each alert to rsyslogd as RFC 5424, count them where Prometheus' query API returns them, and
//! leave a session directory that `proctor verify` finds VALID.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::daemon::*;
use proctor_testkit::receivers::{free_port, prometheus, rsyslogd, wait_lines};
use proctor_testkit::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

fn agents_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/agents")
}

/// Each hijack step and the alerts that show it (kind, text in the summary): the same findings
/// the real-agent tier asks of `proctor run`.
const STEPS: &[(&str, &[(&str, &str)])] = &[
    (
        "credential read",
        &[("SENSITIVE_FILE", "/.aws/credentials")],
    ),
    (
        "exfiltration POST",
        &[("UNKNOWN_DESTINATION", "127.0.0.2:8080")],
    ),
    (
        "reverse shell",
        &[
            ("UNKNOWN_DESTINATION", "127.0.0.3:4444"),
            ("LLM_AGENT_HIJACK", "/dev/tcp/127.0.0.3/4444"),
        ],
    ),
    (
        "authorized_keys write",
        &[("PERSISTENCE", "/.ssh/authorized_keys")],
    ),
];

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The pids of `root`'s tree that executed `tool`, each with whether a shell lies between it
/// and `root` (a shell image executed by the pid itself before the tool, or by an ancestor
/// below the root): claude -> bash -> tool.
fn tool_runs(recs: &[Value], root: u64, tool: &str) -> Vec<(u64, bool)> {
    let mut parent: HashMap<u64, u64> = HashMap::new();
    let mut images: HashMap<u64, Vec<String>> = HashMap::new();
    for r in recs {
        let pid = r["pid"].as_u64().unwrap_or(0);
        match r["type"].as_str() {
            Some("fork") => {
                parent.insert(r["child_pid"].as_u64().unwrap(), pid);
            }
            Some("exec") => {
                parent.entry(pid).or_insert(r["ppid"].as_u64().unwrap_or(0));
                let file = basename(r["filename"].as_str().unwrap_or(""));
                images.entry(pid).or_default().push(file.to_string());
            }
            _ => {}
        }
    }
    let is_shell = |f: &String| matches!(f.as_str(), "bash" | "sh" | "dash");
    let mut out = Vec::new();
    for (&pid, imgs) in &images {
        let Some(at) = imgs.iter().position(|f| f == tool) else {
            continue;
        };
        let mut through_shell = imgs[..at].iter().any(is_shell);
        let mut p = pid;
        let mut reached = false;
        for _ in 0..64 {
            match parent.get(&p) {
                Some(&q) if q == root => {
                    reached = true;
                    break;
                }
                Some(&q) => {
                    through_shell |= images.get(&q).is_some_and(|v| v.iter().any(is_shell));
                    p = q;
                }
                None => break,
            }
        }
        if reached {
            out.push((pid, through_shell));
        }
    }
    out
}

#[test]
fn a_hijacked_claude_code_started_elsewhere_is_found_alerted_shipped_and_counted() {
    require_root();
    let bins = agents_dir().join("node_modules/.bin");
    assert!(
        bins.join("claude").exists(),
        "{} is missing: run `make agents` (npm ci of tests/agents)",
        bins.join("claude").display()
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sock = dir.path().join("proctor.sock");
    let syslog = rsyslogd(dir.path()).expect("rsyslogd: `make deps` installs rsyslog");
    let port = free_port(false);
    // The example configuration `make install` and the .deb put in /etc/proctor (it names
    // Claude Code by the name of its executable, found on PATH and matched by the file's
    // identity, judged by `builtin:claude-code`), edited as the README says: syslog and
    // metrics turned on; the state and socket in the test's directory.
    let mut config = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../packaging/proctor.toml"),
    )
    .unwrap();
    for (from, to) in [
        (
            "# state_dir = \"/var/lib/proctor\"",
            format!("state_dir = \"{}\"", state.display()),
        ),
        (
            "# socket = \"/run/proctor/proctor.sock\"",
            format!("socket = \"{}\"", sock.display()),
        ),
        ("# [outputs]", "[outputs]".to_string()),
        (
            "# syslog = \"unix:/dev/log\"",
            format!("syslog = \"unix:{}\"", syslog.unix.display()),
        ),
        ("# [metrics]", "[metrics]".to_string()),
        (
            "# listen = \"127.0.0.1:9464\"",
            format!("listen = \"127.0.0.1:{port}\""),
        ),
    ] {
        assert!(
            config.contains(from),
            "packaging/proctor.toml no longer has `{from}`"
        );
        config = config.replacen(from, &to, 1);
    }
    std::fs::write(dir.path().join("proctor.toml"), &config).unwrap();
    let check = proctor()
        .args(["config", "check"])
        .arg(dir.path().join("proctor.toml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "config check: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Where npm put `claude` is on the daemon's PATH, as /usr/local/bin is for a global install.
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bins.display());
    let d = Daemon::start(dir.path(), &config, &path);
    let prom = prometheus(dir.path(), &format!("127.0.0.1:{port}"));
    prom.wait_query("up{job=\"proctor\"}", 60, |v| v == 1.0);
    assert_eq!(prom.query("proctor_sessions"), Some(0.0));

    // Another terminal: the user starts Claude Code. session.py runs it in a network namespace
    // of its own (only loopback), its API host mapped to the stub, not under proctor.
    let result_path = dir.path().join("result.json");
    let t0 = std::time::Instant::now();
    let mut cli = KillOnDrop::new(
        Command::new("unshare")
            .arg("--net")
            .arg("/usr/bin/python3")
            .arg(agents_dir().join("session.py"))
            .args(["--agent", "claude", "--session", "hijack", "--daemon"])
            .arg("--api-host=api.anthropic.com")
            .arg("--result")
            .arg(&result_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("session.err")).unwrap())
            .spawn()
            .expect("unshare (util-linux) runs session.py"),
    );
    // The daemon lists it while it runs, and Prometheus sees the open session.
    wait_for_session(&state, "claude-code", 1);
    let listed = wait_for_some("the claude session in `proctor ctl list`", || {
        ctl_list(&sock)["sessions"]
            .as_array()?
            .iter()
            .find(|s| {
                s["agent"] == "claude-code" && s["pids"].as_array().is_some_and(|p| !p.is_empty())
            })
            .cloned()
    });
    prom.wait_query("proctor_sessions", 60, |v| v >= 1.0);
    prom.wait_query("proctor_agents", 60, |v| v >= 1.0);

    let status = cli.wait().unwrap();
    let session_s = t0.elapsed().as_secs_f64();
    assert!(
        status.success() && result_path.exists(),
        "session.py failed ({status}): {}",
        std::fs::read_to_string(dir.path().join("session.err")).unwrap_or_default()
    );
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(&result_path).unwrap()).unwrap();
    let steps = result["steps"].as_array().unwrap().len() as u64;
    assert!(
        result["exit"] == 0
            && result["finished"] == true
            && result["served"].as_array().unwrap().len() as u64 == steps,
        "Claude Code did not play the whole script: {result:#}"
    );
    // The attacks happened: the sinks saw them.
    assert_eq!(result["exfil_received"], true, "{result:#}");
    assert_eq!(result["revshell_connected"], true, "{result:#}");
    assert!(
        result["authorized_keys"]
            .as_str()
            .unwrap()
            .contains("evil@attacker"),
        "{result:#}"
    );
    let pid = result["agent_pid"]
        .as_u64()
        .expect("session.py names the CLI's pid");

    // Its session: the directory named after the CLI's pid (other Claude Code runs on the
    // machine, if any, have their own).
    let session = sessions(&state, "claude-code")
        .into_iter()
        .find(|s| s.to_string_lossy().ends_with(&format!("-{pid}")))
        .unwrap_or_else(|| {
            panic!(
                "no session for pid {pid}: {:?}\n{}",
                sessions(&state, "claude-code"),
                d.log()
            )
        });
    assert_eq!(
        listed["session"].as_str(),
        session.file_name().and_then(|n| n.to_str()),
        "{listed}"
    );
    wait_ended(&session);
    let recs = read_records(&session.join("audit.jsonl"));
    let start = recs
        .iter()
        .find(|r| r["type"] == "sensor_start")
        .expect("sensor_start");
    assert_eq!(start["command"], "daemon", "{start}");
    assert_eq!(start["target_pid"], pid, "{start}");
    let root = recs
        .iter()
        .find(|r| r["type"] == "exec")
        .expect("an exec record");
    assert_eq!(
        root["pid"], pid,
        "the session starts at the CLI's exec: {root}"
    );
    assert_eq!(basename(root["filename"].as_str().unwrap()), "claude.exe");
    assert!(recs.iter().all(|r| r["agent_id"] == "claude-code"));
    // The tree: claude -> bash -> each tool the hijack ran.
    for tool in ["cat", "curl", "timeout"] {
        let runs = tool_runs(&recs, pid, tool);
        assert!(
            runs.iter().any(|&(_, shell)| shell),
            "no `{tool}` traced to claude (pid {pid}) through a shell: {runs:?}"
        );
    }

    // An alert per hijack step, in the audit log and alerts.jsonl.
    let alerts: Vec<&Value> = recs.iter().filter(|r| r["type"] == "alert").collect();
    let listed_alerts = proctor_testkit::daemon::alerts(&session);
    let describe: String = alerts
        .iter()
        .map(|a| format!("  {} {}: {}\n", a["channel"], a["kind"], a["summary"]))
        .collect();
    for (step, shows) in STEPS {
        let hit = alerts.iter().any(|a| {
            shows.iter().any(|(kind, needle)| {
                a["kind"] == *kind && a["summary"].as_str().unwrap_or("").contains(needle)
            })
        });
        assert!(
            hit,
            "hijack step {step} raised no alert; alerts:\n{describe}"
        );
    }
    for a in &alerts {
        assert!(
            listed_alerts.contains(a["id"].as_str().unwrap()),
            "alert {} not in alerts.jsonl",
            a["id"]
        );
    }

    // rsyslogd parsed each alert as RFC 5424: app proctor, MSGID the kind, proctor's structured
    // data naming the alert and the agent.
    let lines = wait_lines(&syslog.out, alerts.len(), PATIENCE);
    for a in &alerts {
        let id = a["id"].as_str().unwrap();
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("id=\"{id}\"")))
            .unwrap_or_else(|| panic!("alert {id} not in rsyslogd's file: {lines:#?}"));
        let f: Vec<&str> = line.splitn(9, '|').collect();
        assert_eq!(f[0], "imuxsock", "{line}");
        assert_eq!(
            (f[4], f[6]),
            ("proctor", a["kind"].as_str().unwrap()),
            "{line}"
        );
        assert!(f[7].contains("agent=\"claude-code\""), "{line}");
    }

    // Prometheus: the alert series of every kind the session raised, the session it saw open.
    let only = sessions(&state, "claude-code").len() == 1;
    let mut per_kind: HashMap<&str, f64> = HashMap::new();
    for a in &alerts {
        *per_kind.entry(a["kind"].as_str().unwrap()).or_default() += 1.0;
    }
    for (kind, n) in &per_kind {
        let q = format!("sum(proctor_alerts_total{{kind=\"{kind}\"}})");
        let got = prom.wait_query(&q, 60, |v| v >= *n);
        assert!(!only || got == *n, "{q}: {got}, the session has {n}");
    }
    assert_eq!(
        prom.query("max_over_time(proctor_sessions[10m])")
            .map(|v| v >= 1.0),
        Some(true)
    );
    prom.wait_query("proctor_sessions", 60, |v| v == 0.0);
    if recs.iter().any(|r| r["type"] == "incident") {
        prom.wait_query("sum(proctor_incidents_total)", 60, |v| v >= 1.0);
    }

    let log = d.stop();
    verify_valid(&session);
    assert!(!log.contains("panicked"), "{log}");
    eprintln!(
        "claude session under the daemon: {session_s:.1} s, {} records, {} alerts",
        recs.len(),
        alerts.len()
    );
}
