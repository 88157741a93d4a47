//! Real-kernel end-to-end detection: the demo agent runs under `proctor run`, learns a short
//! baseline, then a prompt-injected tool call runs one attack; the live alerts must name the
//! attack's channel and kind, and `proctor replay` of the recorded log must give the same alerts.
//! Finally the benign loop runs for a minute and must raise nothing.
//!
//! One test function runs every scenario: the attacks judged on what the agent does run at once;
//! scheduling drift (L1), judged on the agent's scheduler behaviour, and the benign loop run
//! after them, one at a time.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use serde_json::Value;
use std::path::PathBuf;

const BASELINE: &str = "6s";

fn demo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../demo")
}

/// Run the demo agent: `seconds` of benign loop (the first BASELINE of it is learned), then
/// `attack` if any, then 3 s more.
fn agent(seconds: u32, attack: Option<&str>) -> Run {
    let agent = demo().join("agent.py");
    let mut cmd = vec![
        "/usr/bin/python3".to_string(),
        agent.to_str().unwrap().to_string(),
        "--duration".into(),
        seconds.to_string(),
    ];
    if let Some(a) = attack {
        cmd.extend(["--then".into(), a.into(), "--after".into(), "3".into()]);
    }
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    run_under(&["--baseline", BASELINE], &cmd)
}

fn replayed(r: &Run) -> Vec<Value> {
    let out = proctor()
        .arg("replay")
        .arg(r.audit_path())
        .args(["--baseline", BASELINE])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn certificates(r: &Run) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(r.dir.path().join("alerts"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "cal"));
    v.sort();
    v
}

/// A copy of the run with one certificate edited, and one with an audit line deleted, must each
/// fail verification (exit 1) naming the file.
fn tampered_copies_fail(r: &Run, cert: &std::path::Path) {
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", r.dir.path().display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let name = cert.file_name().unwrap();
    let edited = copy.path().join("alerts").join(name);
    let mut cal: Value = serde_json::from_str(&std::fs::read_to_string(&edited).unwrap()).unwrap();
    cal["divergence"] = serde_json::json!(0.25);
    std::fs::write(&edited, serde_json::to_vec(&cal).unwrap()).unwrap();
    let v = proctor().arg("verify").arg(copy.path()).output().unwrap();
    let out = String::from_utf8_lossy(&v.stdout);
    assert_eq!(
        v.status.code(),
        Some(1),
        "an edited certificate must fail: {out}"
    );
    assert!(
        out.contains(&name.to_string_lossy().to_string()),
        "names the certificate: {out}"
    );

    let copy2 = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", r.dir.path().display()))
        .arg(copy2.path())
        .status()
        .unwrap();
    assert!(status.success());
    let log = copy2.path().join("audit.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let kept: Vec<&String> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(
        &log,
        kept.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let v = proctor().arg("verify").arg(&log).output().unwrap();
    assert_eq!(
        v.status.code(),
        Some(1),
        "a deleted audit line must fail: {}",
        String::from_utf8_lossy(&v.stdout)
    );
}

/// One attack on the demo agent: its live alerts must include `channel`/`kind` (a miss is
/// returned, to be listed with the others), every alert must be well formed, replay must give
/// the live alerts, and the run must verify.
fn attack_is_detected(attack: &str, channel: &str, kind: &str) -> Option<String> {
    let r = agent(9, Some(attack));
    assert_eq!(r.code(), Some(0), "{attack}: {}", r.stderr());
    assert!(
        r.stderr().contains("baseline established"),
        "{attack}: no baseline line: {}",
        r.stderr()
    );
    let live = r.alerts();
    let missed = (!live
        .iter()
        .any(|a| a["channel"] == channel && a["kind"] == kind))
    .then(|| {
        let got: Vec<String> = live
            .iter()
            .map(|a| format!("{}/{}", a["channel"], a["kind"]))
            .collect();
        format!("{attack}: expected {channel}/{kind}, got {got:?}")
    });
    // Every alert names what triggered it and comes after the baseline window.
    for a in &live {
        assert!(
            !a["trigger"].as_array().unwrap().is_empty(),
            "{attack}: {a}"
        );
        assert_eq!(a["action"], "ALERT_EMITTED");
    }
    // Alerts are in the audit log too, right after their trigger.
    assert_eq!(r.of_type("alert").len(), live.len(), "{attack}");
    assert_eq!(
        replayed(&r),
        live,
        "{attack}: replay must give the live alerts"
    );
    // Every alert is a signed certificate, and the whole run verifies offline.
    let certs = certificates(&r);
    assert_eq!(
        certs.len(),
        live.len(),
        "{attack}: one certificate per alert"
    );
    let v = proctor().arg("verify").arg(r.dir.path()).output().unwrap();
    assert_eq!(
        v.status.code(),
        Some(0),
        "{attack}: verify: {}",
        String::from_utf8_lossy(&v.stdout)
    );
    if attack == "shell_spawn" {
        tampered_copies_fail(&r, &certs[0]);
    }
    missed
}

#[test]
fn every_demo_attack_is_detected_on_its_channel_and_the_benign_loop_is_quiet() {
    require_root();
    // Judged on what the agent does, not on how it is scheduled: these run at once (each
    // agent has its own proctor, output directory and ports), which saves two minutes.
    let concurrent = [
        ("shell_spawn", "L2", "LLM_AGENT_HIJACK"),
        ("credential_read", "SENSITIVE_FILE", "SENSITIVE_FILE"),
        ("unknown_destination", "L4", "UNKNOWN_DESTINATION"),
        ("egress_burst", "L4", "NET_EGRESS_BURST"),
        ("dns_tunnel", "DNS_ANOMALY", "DNS_ANOMALY"),
        ("ptrace_attach", "L5", "PTRACE_ATTACH_DETECTED"),
        ("write_then_exec", "L3", "CAUSAL_CYCLE_DETECTED"),
        ("persistence", "PERSISTENCE", "PERSISTENCE"),
    ];
    let mut missed: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = concurrent
            .iter()
            .map(|&(attack, channel, kind)| {
                s.spawn(move || attack_is_detected(attack, channel, kind))
            })
            .collect();
        runs.into_iter()
            .filter_map(|h| h.join().expect("an attack's checks failed"))
            .collect()
    });
    // Scheduling drift (L1) is judged on the agent's scheduler behaviour, which the agents
    // above would disturb: it runs alone, and so does the benign loop after it.
    missed.extend(attack_is_detected(
        "scheduling_noise",
        "L1",
        "DRIFT_DETECTED",
    ));
    assert!(
        missed.is_empty(),
        "attacks not detected on their channel:\n{}",
        missed.join("\n")
    );

    let r = agent(60, None);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let live = r.alerts();
    assert!(live.is_empty(), "the benign loop raised alerts: {live:#?}");
    assert!(
        r.of_type("sched").len() >= 50,
        "a minute of scheduler summaries"
    );
}

/// `proctor run -- claude ...` with neither `--profile` nor `--baseline` judges Claude Code by
/// its built-in profile from the first record: a learning window would take in what a hijacked
/// first task does as the agent's normal. Its first act here, a risky binary the profile does
/// not name (base64), alerts at once; the same run with `--baseline` learns it.
#[test]
fn an_agent_cli_started_without_a_profile_is_judged_by_its_builtin_one() {
    let bin = tempfile::tempdir().unwrap();
    let claude = bin.path().join("claude");
    std::fs::write(&claude, "#!/bin/sh\n/usr/bin/base64 /dev/null\ntrue\n").unwrap();
    std::fs::set_permissions(&claude, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let claude = claude.to_str().unwrap();
    let r = run_under(&[], &[claude]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(
        r.stderr()
            .contains("by builtin:claude-code from its first record"),
        "{}",
        r.stderr()
    );
    assert!(
        r.alerts().iter().any(|a| a["kind"] == "RISKY_BINARY"),
        "{:?}",
        r.alerts()
    );
    let learned = run_under(&["--baseline", "30s"], &[claude]);
    assert_eq!(learned.code(), Some(0), "{}", learned.stderr());
    assert!(
        !learned.stderr().contains("builtin:"),
        "{}",
        learned.stderr()
    );
    assert!(learned.alerts().is_empty(), "{:?}", learned.alerts());
}

/// `proctor attach` to a running agent CLI with neither `--profile` nor `--baseline` judges it by
/// its built-in profile too (the process's argv, executable and working directory name it).
#[test]
fn an_agent_cli_attached_without_a_profile_is_judged_by_its_builtin_one() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let claude = dir.path().join("claude");
    std::fs::write(
        &claude,
        format!(
            "#!/bin/sh\nwhile [ ! -e {} ]; do sleep 0.05; done\n/usr/bin/base64 /dev/null\n",
            go.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&claude, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut agent = KillOnDrop::new(Command::new(&claude).spawn().unwrap());
    // Attach once the child runs the script: before its exec, /proc shows the test's own argv
    // (attach then judged it a process of no known agent: seen under load).
    let cmdline = format!("/proc/{}/cmdline", agent.id());
    let started = std::time::Instant::now();
    while !std::fs::read(&cmdline)
        .unwrap_or_default()
        .ends_with(format!("{}\0", claude.display()).as_bytes())
    {
        assert!(started.elapsed().as_secs() < 10, "the agent did not start");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = dir.path().join("out");
    let mut att = KillOnDrop::new(
        proctor()
            .args(["attach", "--pid", &agent.id().to_string(), "--out"])
            .arg(&out)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut err = att.stderr.take().unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("attached to ") {
        let mut b = [0u8; 256];
        let n = err.read(&mut b).unwrap();
        assert!(
            n > 0,
            "attach did not start: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&b[..n]);
    }
    std::fs::write(&go, "").unwrap();
    agent.wait().unwrap();
    err.read_to_end(&mut seen).unwrap();
    assert!(att.wait().unwrap().success());
    let stderr = String::from_utf8_lossy(&seen);
    assert!(
        stderr.contains("judging pid") && stderr.contains("by builtin:claude-code"),
        "{stderr}"
    );
    let alerts = read_records(&out.join("alerts.jsonl"));
    assert!(
        alerts.iter().any(|a| a["kind"] == "RISKY_BINARY"),
        "{alerts:?}"
    );
}

/// A real `apt-get install` by name (tmux, which `make deps` installs: its maintainer script
/// adds a line to /etc/shells, man-db's trigger rebuilds its cache) under a built-in profile:
/// the distribution's work raises nothing, and running what it installed is no cycle. The same
/// install with a configuration the agent wrote (`APT_CONFIG`, a `DPkg::Pre-Invoke` hook that
/// reads /etc/shadow) is judged: the hook's read alerts. Needs the Debian mirror, as `make deps`.
#[test]
fn a_package_install_by_name_is_the_distributions_work_and_one_fed_by_the_agent_is_not() {
    let _apt = apt_lock();
    let install = "apt-get install -y -q -o DPkg::Lock::Timeout=600 --reinstall tmux >/dev/null";
    let benign = format!("DEBIAN_FRONTEND=noninteractive {install} && tmux -V");
    let r = run_under(
        &["--profile", "builtin:claude-code"],
        &["/bin/bash", "-c", &benign],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(
        r.of_type("exec")
            .iter()
            .any(|e| e["filename"].as_str() == Some("/usr/bin/dpkg")),
        "dpkg ran"
    );
    assert!(r.alerts().is_empty(), "{:#?}", r.alerts());

    let conf = tempfile::tempdir().unwrap();
    let conf = conf.path().join("apt.conf");
    let fed = format!(
        "printf 'DPkg::Pre-Invoke {{\"cat /etc/shadow >/dev/null\";}};\\n' > {c} && \
         APT_CONFIG={c} DEBIAN_FRONTEND=noninteractive {install}",
        c = conf.display()
    );
    let r = run_under(
        &["--profile", "builtin:claude-code"],
        &["/bin/bash", "-c", &fed],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(
        r.alerts().iter().any(|a| a["kind"] == "SENSITIVE_FILE"
            && a["summary"].as_str().unwrap_or("").contains("/etc/shadow")),
        "{:#?}",
        r.alerts()
    );
}
