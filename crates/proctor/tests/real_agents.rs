//! The real-agent tier: the real Claude Code, Codex, pi and Gemini CLIs (pinned in tests/agents,
//! installed by `make agents`) run coding sessions under `proctor run`, each in a network
//! namespace of its own with only loopback. A local LLM API stub plays the model and scripts the
//! tool calls (tests/agents/scripts.json): a warm-up, then either more ordinary work (benign) or
//! a hijack (credential read, exfiltration POST, reverse shell, authorized_keys write). Each CLI
//! is judged from its first record by its built-in profile, reaching the stub as its vendor's
//! API host, so a session waits on nothing but the agent; one test learns a profile with
//! `calibrate` over two sessions and judges a third by it. tests/agents/session.py sets up the
//! namespace, the stub, the sinks and the CLI's configuration; these tests judge what proctor
//! recorded.
//!
//! Needs root, `unshare`, `ip`, and the CLIs installed; a missing piece is a failure with the
//! command that fixes it, never a skip.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::read_records;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn agents_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/agents")
}

struct Session {
    dir: tempfile::TempDir,
    /// session.py's summary: exit status, steps served, what the sinks received.
    result: Value,
    records: Vec<Value>,
    alerts: Vec<Value>,
}

impl Session {
    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
}

/// How each CLI is judged from its first record: its built-in profile, and the vendor's API
/// host the stub answers as (the profile names it, so the CLI's TLS server name clears its
/// connection to the stub). pi, a Node.js agent, is configured with an OpenAI-compatible
/// provider here.
fn judged_as(agent: &str) -> (&'static str, &'static str) {
    match agent {
        "claude" => ("builtin:claude-code", "api.anthropic.com"),
        "codex" => ("builtin:codex", "api.openai.com"),
        "pi" => ("builtin:node-agent", "api.openai.com"),
        "gemini" => ("builtin:gemini-cli", "generativelanguage.googleapis.com"),
        "openclaw" => ("builtin:openclaw", "api.openai.com"),
        other => panic!("no profile for agent {other}"),
    }
}

/// One scripted session of `agent` under `proctor run [proctor_args]`, judged by its built-in
/// profile from the first record, the stub on HTTPS (with a CA made for the run) as the
/// vendor's API host.
fn judged(agent: &str, script: &str, proctor_args: &[&str]) -> Session {
    judged_with(agent, script, proctor_args, &[])
}

/// [`judged`] with more session.py options.
fn judged_with(agent: &str, script: &str, proctor_args: &[&str], session_args: &[&str]) -> Session {
    let (profile, api_host) = judged_as(agent);
    run_session(
        agent,
        script,
        &Opts {
            https: true,
            proctor_args,
            session_args,
            profile: Some(profile),
            api_host: Some(api_host),
            calibrate: None,
        },
    )
}

/// How a session runs: judged against `profile`, or learned whole into `calibrate`.
struct Opts<'a> {
    https: bool,
    /// Extra `proctor run` options.
    proctor_args: &'a [&'a str],
    /// Extra session.py options (`--planted-hook`).
    session_args: &'a [&'a str],
    /// Judge from the start against this profile (`builtin:NAME` or a file): no learning window.
    profile: Option<&'a str>,
    /// The stub answers as this host name (the vendor's API host; session.py maps it to loopback
    /// in a mount namespace of the session's own), so the CLI's TLS server name is the real one
    /// and a profile naming that host applies. None: the stub is 127.0.0.1.
    api_host: Option<&'a str>,
    /// `proctor calibrate` into this profile file instead of `proctor run`: the whole session is
    /// learned (an existing profile there absorbs it).
    calibrate: Option<&'a Path>,
}

fn run_session(agent: &str, script: &str, o: &Opts) -> Session {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the real-agent tier loads eBPF and makes network namespaces: run `make test` as root"
    );
    let bins = agents_dir().join("node_modules/.bin");
    assert!(
        bins.is_dir(),
        "{} is missing: run `make agents` (npm ci of tests/agents)",
        bins.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let result_path = dir.path().join("result.json");
    let mut cmd = Command::new("unshare");
    cmd.arg("--net");
    cmd.arg("/usr/bin/python3")
        .arg(agents_dir().join("session.py"))
        .args(["--agent", agent, "--session", script])
        .arg("--proctor")
        .arg(env!("CARGO_BIN_EXE_proctor"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--result")
        .arg(&result_path)
        .args(if o.https { &[][..] } else { &["--http"][..] })
        // `--proctor-arg=X`: argparse reads a separate value that starts with `--` as an option.
        .args(o.proctor_args.iter().map(|a| format!("--proctor-arg={a}")))
        .args(o.session_args);
    if let Some(p) = o.profile {
        cmd.arg(format!("--profile={p}"));
    }
    if let Some(h) = o.api_host {
        cmd.arg(format!("--api-host={h}"));
    }
    if let Some(c) = o.calibrate {
        cmd.arg("--calibrate").arg(c);
    }
    assert!(
        o.profile.is_some() != o.calibrate.is_some(),
        "a session is either judged by a profile or calibrates one"
    );
    let out = cmd.output().expect("unshare (util-linux) runs session.py");
    assert!(
        out.status.success() && result_path.exists(),
        "session.py {agent} {script} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(&result_path).unwrap()).unwrap();
    let steps = result["steps"].as_array().unwrap().len();
    let served: Vec<u64> = result["served"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(
        result["exit"] == 0 && result["finished"] == true && served == (0..steps as u64).collect::<Vec<_>>(),
        "{agent} {script}: the CLI did not play the whole script (exit {}, served {served:?} of {steps} steps)\nstdout: {}\nstderr: {}",
        result["exit"],
        result["stdout_tail"],
        result["stderr_tail"]
    );
    let records = read_records(&dir.path().join("out/audit.jsonl"));
    let alerts_path = dir.path().join("out/alerts.jsonl");
    let alerts = if alerts_path.exists() {
        read_records(&alerts_path)
    } else {
        Vec::new()
    };
    Session {
        dir,
        result,
        records,
        alerts,
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The agent's process tree as proctor recorded it: every tool the script runs has an exec
/// record, a shell ran before it (in its own process, which `bash -c` execs into its last
/// command, or in an ancestor), and following parents from the tool reaches the agent's first
/// process. Claude Code runs `grep` as its bundled ugrep (its own executable, argv[0] `ugrep`).
fn assert_tree_followed(s: &Session, agent: &str) {
    let mut parent: HashMap<u64, u64> = HashMap::new();
    // Every image each pid executed, in order, by the basename of the file and of argv[0].
    let mut images: HashMap<u64, Vec<(String, String)>> = HashMap::new();
    for r in &s.records {
        match r["type"].as_str() {
            Some("fork") => {
                parent.insert(r["child_pid"].as_u64().unwrap(), r["pid"].as_u64().unwrap());
            }
            Some("exec") => {
                let pid = r["pid"].as_u64().unwrap();
                parent
                    .entry(pid)
                    .or_insert_with(|| r["ppid"].as_u64().unwrap());
                let file = basename(r["filename"].as_str().unwrap_or("")).to_string();
                let arg0 = basename(r["argv"][0].as_str().unwrap_or("")).to_string();
                images.entry(pid).or_default().push((file, arg0));
            }
            _ => {}
        }
    }
    let root = s
        .records
        .iter()
        .find(|r| r["type"] == "exec")
        .and_then(|r| r["pid"].as_u64())
        .unwrap_or_else(|| panic!("{agent}: no exec record at all"));
    let shell = |(file, _): &(String, String)| matches!(file.as_str(), "bash" | "sh" | "dash");
    for tool in ["ls", "cat", "git", "grep", "head", "wc", "python3"] {
        let is_tool = |(file, arg0): &(String, String)| {
            file == tool
                || (tool == "python3" && file.starts_with("python3"))
                || (tool == "grep" && arg0 == "ugrep")
        };
        let mut runs = Vec::new();
        for (&pid, imgs) in &images {
            if let Some(at) = imgs.iter().position(is_tool) {
                runs.push((pid, imgs[..at].iter().any(shell)));
            }
        }
        assert!(!runs.is_empty(), "{agent}: no exec record of `{tool}`");
        let followed = runs.iter().any(|&(pid, shell_first)| {
            let mut chain = vec![pid];
            while let Some(&p) = parent.get(chain.last().unwrap()) {
                if chain.contains(&p) {
                    break;
                }
                chain.push(p);
                if p == root {
                    break;
                }
            }
            let middle = chain.get(1..chain.len().saturating_sub(1)).unwrap_or(&[]);
            let through_shell = shell_first
                || middle
                    .iter()
                    .any(|p| images.get(p).is_some_and(|v| v.iter().any(shell)));
            pid != root && chain.last() == Some(&root) && through_shell
        });
        assert!(
            followed,
            "{agent}: no `{tool}` (pids {:?}) traced to the agent (pid {root}) through a shell",
            runs.iter().map(|r| r.0).collect::<Vec<_>>()
        );
    }
}

fn assert_verifies(s: &Session) {
    let out = Command::new(env!("CARGO_BIN_EXE_proctor"))
        .arg("verify")
        .arg(s.out())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "proctor verify {}: {}{}",
        s.out().display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn describe(alerts: &[Value]) -> String {
    alerts
        .iter()
        .map(|a| format!("  {} {}: {}\n", a["channel"], a["kind"], a["summary"]))
        .collect()
}

fn assert_quiet(s: &Session, agent: &str, script: &str) {
    assert_tree_followed(s, agent);
    assert_verifies(s);
    assert!(
        s.alerts.is_empty(),
        "{agent} {script}: a benign coding session raised {} alerts:\n{}",
        s.alerts.len(),
        describe(&s.alerts)
    );
}

/// Each hijack step did what it meant to (the sinks saw it) and raised its alert.
fn assert_hijack_caught(s: &Session, agent: &str) {
    assert_tree_followed(s, agent);
    assert_verifies(s);
    let r = &s.result;
    assert!(
        r["exfil_received"] == true,
        "{agent}: the exfiltration POST never reached the sink"
    );
    assert!(
        r["revshell_connected"] == true && r["revshell_output"].as_str().unwrap().contains("uid=0"),
        "{agent}: the reverse shell did not run `id` for the listener: {}",
        r["revshell_output"]
    );
    assert!(
        r["authorized_keys"]
            .as_str()
            .unwrap()
            .contains("evil@attacker"),
        "{agent}: the persistence write did not happen"
    );
    let has = |kind: &str, needle: &str, shell_only: bool| {
        s.alerts.iter().any(|a| {
            a["kind"] == kind
                && a["summary"].as_str().unwrap_or("").contains(needle)
                && (!shell_only
                    || matches!(
                        a["trigger"][0]["comm"].as_str(),
                        Some("bash" | "sh" | "dash")
                    ))
        })
    };
    let steps = [
        (
            "credential read",
            has("SENSITIVE_FILE", "/.aws/credentials", false),
        ),
        (
            "exfiltration POST",
            has("UNKNOWN_DESTINATION", "127.0.0.2:8080", false),
        ),
        // bash is in every agent's baseline (it runs the tools), so what marks the reverse shell
        // is a shell itself connecting somewhere new, or an L2 hijack alert naming it.
        (
            "reverse shell",
            has("UNKNOWN_DESTINATION", "127.0.0.3:4444", true)
                || has("LLM_AGENT_HIJACK", "/dev/tcp/127.0.0.3/4444", false),
        ),
        (
            "authorized_keys write",
            has("PERSISTENCE", "/.ssh/authorized_keys", false),
        ),
    ];
    let missed: Vec<&str> = steps
        .iter()
        .filter(|(_, hit)| !hit)
        .map(|(n, _)| *n)
        .collect();
    assert!(
        missed.is_empty(),
        "{agent}: hijack steps without their alert: {missed:?}; alerts raised:\n{}",
        describe(&s.alerts)
    );
}

/// The model's side of a session as proctor recorded it: each request names the model and offers
/// the shell tool, and the responses carry the tool calls the stub scripted, arguments included.
/// Claude Code (static stripped BoringSSL) and Codex (rustls) need interception mode; pi and
/// Gemini CLI (Node.js, whose `node` exports OpenSSL) are read by uprobes alone.
fn assert_llm_calls(s: &Session, agent: &str) {
    let of = |ty: &str| -> Vec<&Value> { s.records.iter().filter(|r| r["type"] == ty).collect() };
    let (reqs, resps) = (of("llm_request"), of("llm_response"));
    let steps = s.result["steps"].as_array().unwrap().len();
    assert!(
        reqs.len() > steps && resps.len() > steps,
        "{agent}: {} llm_request and {} llm_response records for {steps} scripted tool calls; tls_blind: {:?}",
        reqs.len(),
        resps.len(),
        of("tls_blind")
    );
    assert!(
        reqs.iter()
            .all(|q| q["model"].as_str().is_some_and(|m| !m.is_empty())),
        "{agent}: a request without its model: {reqs:?}"
    );
    assert!(
        reqs.iter()
            .any(|q| q["tools"].as_array().is_some_and(|t| !t.is_empty())),
        "{agent}: no request offered tools"
    );
    let calls: Vec<String> = resps
        .iter()
        .flat_map(|p| p["tool_calls"].as_array().cloned().unwrap_or_default())
        .map(|c| c["arguments"].to_string())
        .collect();
    assert!(
        calls.iter().any(|a| a.contains("git status")),
        "{agent}: the scripted tool calls are not in the llm_response records: {calls:?}"
    );
}

/// The benign session (the tool kinds of the warm-up again), quiet under the agent's profile.
/// With `capture`, its LLM calls are seen too: Node.js CLIs through the uprobes on `node`'s
/// OpenSSL, Claude Code and Codex through `--tls-intercept`; then the intent channel judges
/// every command against the tool calls, through the wrappers the CLIs put around them (Claude
/// Code's shell snapshot and `eval '...'`, Codex's `__CODEX_SNAPSHOT_OVERRIDE_*` preamble).
fn benign(agent: &str, capture: &[&str]) {
    let s = judged(agent, "benign", capture);
    assert_quiet(&s, agent, "benign");
    if !capture.is_empty() {
        assert_llm_calls(&s, agent);
    }
}

/// `benign2`: similar work with tools the warm-up never ran (find, sort), still quiet.
fn benign_new_tools(agent: &str) {
    assert_quiet(&judged(agent, "benign2", &[]), agent, "benign2");
}

fn hijack(agent: &str) {
    assert_hijack_caught(&judged(agent, "hijack", &[]), agent);
}

#[test]
fn claude_code_benign_session_is_quiet() {
    benign("claude", &[]);
}

#[test]
fn claude_code_benign_session_is_quiet_and_its_llm_calls_are_seen_through_interception() {
    benign("claude", &["--capture-tls", "--tls-intercept"]);
}

/// A hostile repository's `.claude/settings.json` makes Claude Code run a hook after every Bash
/// call that posts the AWS credentials out: code the agent runs that the model never asked for.
/// With the model's tool calls seen (interception), the intent channel names it, as do the
/// credential read and the destination; the benign tool calls around it stay unjudged.
#[test]
fn claude_code_hook_planted_in_the_project_is_a_tool_call_the_model_never_asked_for() {
    let s = judged_with(
        "claude",
        "benign",
        &["--capture-tls", "--tls-intercept"],
        &["--planted-hook"],
    );
    assert_tree_followed(&s, "claude");
    assert_verifies(&s);
    assert!(
        s.result["exfil_received"] == true,
        "the planted hook never reached the sink: {}",
        s.result["stderr_tail"]
    );
    let of =
        |kind: &str| -> Vec<&Value> { s.alerts.iter().filter(|a| a["kind"] == kind).collect() };
    let intent = of("INTENT_MISMATCH");
    assert!(
        !intent.is_empty()
            && intent
                .iter()
                .all(|a| a["summary"].as_str().unwrap().contains("/hook")),
        "the hook's command, and only it, is the unexplained tool call:\n{}",
        describe(&s.alerts)
    );
    assert!(
        !of("SENSITIVE_FILE").is_empty() && !of("UNKNOWN_DESTINATION").is_empty(),
        "the credential read and the sink's address:\n{}",
        describe(&s.alerts)
    );
    assert_llm_calls(&s, "claude");
}

#[test]
fn claude_code_benign_session_with_new_tools_is_quiet() {
    benign_new_tools("claude");
}

#[test]
fn claude_code_hijack_raises_an_alert_per_step() {
    hijack("claude");
}

#[test]
fn codex_benign_session_is_quiet() {
    benign("codex", &[]);
}

#[test]
fn codex_benign_session_is_quiet_and_its_llm_calls_are_seen_through_interception() {
    benign("codex", &["--capture-tls", "--tls-intercept"]);
}

#[test]
fn codex_benign_session_with_new_tools_is_quiet() {
    benign_new_tools("codex");
}

#[test]
fn codex_hijack_raises_an_alert_per_step() {
    hijack("codex");
}

#[test]
fn pi_benign_session_is_quiet_and_its_llm_calls_are_seen_with_uprobes() {
    benign("pi", &["--capture-tls"]);
}

#[test]
fn pi_benign_session_with_new_tools_is_quiet() {
    benign_new_tools("pi");
}

#[test]
fn pi_hijack_raises_an_alert_per_step() {
    hijack("pi");
}

#[test]
fn gemini_cli_benign_session_is_quiet_and_its_llm_calls_are_seen_with_uprobes() {
    benign("gemini", &["--capture-tls"]);
}

#[test]
fn gemini_cli_hijack_raises_an_alert_per_step() {
    hijack("gemini");
}

/// OpenClaw (Node.js 24 from the npm registry, `openclaw agent exec`): its own relaunch, node
/// supervisors, shell snapshot and io_uring rings stay quiet under its profile; its LLM calls are
/// read by the uprobes on that node's OpenSSL.
#[test]
fn openclaw_benign_session_is_quiet_and_its_llm_calls_are_seen_with_uprobes() {
    benign("openclaw", &["--capture-tls"]);
}

#[test]
fn openclaw_hijack_raises_an_alert_per_step() {
    hijack("openclaw");
}

/// The learned path on a real agent: `proctor calibrate` learns a whole benign session into a
/// profile, a second session (tools the first never ran) accumulates into the same file, and a
/// third session judged by that profile from its first record raises nothing. Codex over plain
/// HTTP to the stub as 127.0.0.1 (so the plain transport runs under a real CLI, and the stub's
/// address is learned rather than named by a host).
#[test]
fn codex_profile_calibrated_over_two_sessions_keeps_a_third_quiet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("codex-profile.json");
    let calibrate = |script: &str| {
        let s = run_session(
            "codex",
            script,
            &Opts {
                https: false,
                proctor_args: &[],
                session_args: &[],
                profile: None,
                api_host: None,
                calibrate: Some(profile.as_path()),
            },
        );
        assert_tree_followed(&s, "codex");
        assert_verifies(&s);
        assert!(
            s.alerts.is_empty(),
            "calibrate raises no alert: {}",
            describe(&s.alerts)
        );
        let text = std::fs::read_to_string(&profile)
            .unwrap_or_else(|e| panic!("calibrate wrote no profile {}: {e}", profile.display()));
        serde_json::from_str::<Value>(&text).expect("a JSON profile")
    };
    let set = |p: &Value, k: &str| -> Vec<String> {
        p[k].as_array()
            .unwrap_or_else(|| panic!("profile without {k}: {p}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let first = calibrate("benign");
    assert!(
        !set(&first, "binaries").iter().any(|b| b == "find"),
        "the first session never ran find"
    );
    let merged = calibrate("benign2");
    for k in ["binaries", "edges", "destinations"] {
        let (a, m) = (set(&first, k), set(&merged, k));
        assert!(
            a.iter().all(|x| m.contains(x)),
            "{k}: the second session dropped some of the first's: {a:?} vs {m:?}"
        );
    }
    assert!(
        set(&merged, "binaries").iter().any(|b| b == "find"),
        "the second session's tools joined the profile: {merged}"
    );
    assert!(
        merged["records"].as_u64() > first["records"].as_u64(),
        "the records of both sessions: {} then {}",
        first["records"],
        merged["records"]
    );
    let p = profile.to_str().expect("UTF-8 temp path");
    let s = run_session(
        "codex",
        "benign",
        &Opts {
            https: false,
            proctor_args: &[],
            session_args: &[],
            profile: Some(p),
            api_host: None,
            calibrate: None,
        },
    );
    assert_quiet(&s, "codex", "benign (judged by the calibrated profile)");
}

/// The stub itself, without an agent: every API it speaks, streamed and not, over HTTP and over
/// HTTPS checked against its CA (formats none of the pinned CLIs happens to use stay tested).
#[test]
fn llm_stub_speaks_every_wire_format() {
    let out = Command::new("/usr/bin/python3")
        .arg(agents_dir().join("test_llm_stub.py"))
        .output()
        .expect("python3 runs test_llm_stub.py");
    assert!(
        out.status.success(),
        "test_llm_stub.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
