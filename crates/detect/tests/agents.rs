//! Real-agent-shaped sessions (tests/data/agents, made by make_agent_fixtures.py): a profile
//! learned on one benign session of Claude Code, Codex or a Node.js agent, with or without the
//! built-in profile, raises nothing on another benign session of the same agent, and every
//! injected attack still raises each alert it must.

mod common;

use proctor_detect::replay::{AuditReader, Line};
use proctor_detect::{Baseline, Engine, EngineConfig, Output, Policy};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::PathBuf;

const AGENTS: &[&str] = &["claude-code", "codex", "node-agent"];

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/agents")
        .join(name)
}

fn records(name: &str) -> Vec<proctor_model::Record> {
    let f = std::fs::File::open(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    AuditReader::new(BufReader::new(f))
        .filter_map(|l| match l.expect("readable").1 {
            Line::Record(r) => Some(std::sync::Arc::unwrap_or_clone(r)),
            _ => None,
        })
        .collect()
}

fn engine(profile: Option<Baseline>, baseline_ns: u64) -> Engine {
    Engine::with_host(
        Policy::builtin(),
        EngineConfig {
            baseline_ns,
            home: Some("/root".into()),
            cwd: Some("/work/proj".into()),
            profile,
        },
        common::host(),
    )
}

/// The profile `calibrate` would save from the whole session.
fn learn(name: &str) -> Baseline {
    let mut e = engine(None, u64::MAX / 4);
    for r in records(name) {
        e.observe(&r);
    }
    e.finish();
    e.baseline().expect("closed at finish").clone()
}

fn judge(name: &str, profile: Baseline) -> Vec<Output> {
    let mut e = engine(Some(profile), 0);
    let mut out = Vec::new();
    for r in records(name) {
        out.extend(e.observe(&r));
    }
    out.extend(e.finish());
    out
}

fn alerts(outs: &[Output]) -> Vec<&proctor_model::Alert> {
    common::alerts(outs)
}

/// Incidents by id, in their last state.
fn incidents(outs: &[Output]) -> BTreeMap<String, proctor_model::Incident> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Incident(i) => Some((i.id.clone(), i.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn another_benign_session_of_the_same_agent_raises_nothing() {
    for agent in AGENTS {
        let learned = learn(&format!("{agent}.learn.jsonl"));
        let outs = judge(&format!("{agent}.benign.jsonl"), learned.clone());
        let a = alerts(&outs);
        assert!(a.is_empty(), "{agent} (learned profile): {a:#?}");
        assert!(incidents(&outs).is_empty(), "{agent}: no incident either");
        // The same with the built-in profile merged in (what `calibrate --profile` builds
        // from `builtin:AGENT`), and the built-in one alone judges the helper processes.
        let mut merged = Baseline::builtin(agent).unwrap();
        merged.merge(&learned);
        let outs = judge(&format!("{agent}.benign.jsonl"), merged);
        let a = alerts(&outs);
        assert!(a.is_empty(), "{agent} (built-in + learned): {a:#?}");
    }
}

#[test]
fn ephemeral_ports_generalise_only_after_two_of_them() {
    // learn.jsonl reaches the API stub on 127.0.0.1:41001, other-port.jsonl on :45321 (a stub
    // restarted on another random port). One session's profile knows only its port...
    let one = learn("claude-code.learn.jsonl");
    let outs = judge("claude-code.other-port.jsonl", one.clone());
    let u: Vec<_> = alerts(&outs)
        .into_iter()
        .filter(|a| a.kind == "UNKNOWN_DESTINATION")
        .collect();
    assert!(!u.is_empty(), "one port learned: another is unknown");
    // ... a profile merged from two sessions on two ports knows the agent's stub on any.
    let mut two = one;
    two.ephemeral.insert("claude.exe@127.0.0.1:39999".into());
    let outs = judge("claude-code.other-port.jsonl", two);
    assert!(alerts(&outs).is_empty(), "{:#?}", alerts(&outs));
}

#[test]
fn the_generalisation_is_what_keeps_benign_sessions_quiet() {
    // Without tool families, the second session's new tools are new edges: evidence, still
    // no alert, but the evidence shows what the families absorb.
    let learned = learn("claude-code.learn.jsonl");
    let outs = judge("claude-code.benign.jsonl", learned);
    let evidence: Vec<&str> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Evidence(a) => Some(a.summary.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        !evidence.iter().any(|s| s.contains("-> @text`")),
        "bash -> wc/sort/tail are text tools like head/grep: {evidence:#?}"
    );
    assert!(
        !evidence.iter().any(|s| s.contains("spawn git -> git")),
        "git re-running git is not new: {evidence:#?}"
    );
}

#[test]
fn every_attack_raises_each_expected_alert() {
    let expected: BTreeMap<String, Vec<String>> =
        serde_json::from_str(&std::fs::read_to_string(path("expected.json")).unwrap()).unwrap();
    assert_eq!(expected.len(), 24);
    let mut report = Vec::new();
    for (file, kinds) in &expected {
        let agent = file.split('.').next().unwrap();
        let outs = judge(file, learn(&format!("{agent}.learn.jsonl")));
        let a = alerts(&outs);
        for k in kinds {
            assert!(
                a.iter().any(|x| k.split('|').any(|k| x.kind == k)),
                "{file}: no {k} in {:?}",
                a.iter().map(|x| &x.kind).collect::<Vec<_>>()
            );
        }
        let inc = incidents(&outs);
        assert!(
            (1..=3).contains(&inc.len()),
            "{file}: {} incidents: {inc:#?}",
            inc.len()
        );
        for x in &a {
            let id = x
                .incident
                .as_deref()
                .expect("every alert names its incident");
            assert!(inc.contains_key(id), "{file}: {id}");
            assert!(!x.id.is_empty() && !x.severity.is_empty(), "{x:#?}");
            assert!(
                x.rule_id.starts_with(&format!("{}.{}", x.channel, x.kind)),
                "{x:#?}"
            );
            assert!(x.time.ends_with('Z') && x.time.len() == 30, "{}", x.time);
        }
        let worst = inc
            .values()
            .map(|i| i.severity.as_str())
            .max_by_key(|s| proctor_model::severity_rank(s));
        if file.contains("exfiltration") {
            let i = inc
                .values()
                .find(|i| i.severity == "critical")
                .expect("critical");
            assert!(i.title.starts_with("exfiltration chain"), "{i:#?}");
            assert!(i.techniques.iter().any(|t| t == "T1552.001"), "{i:#?}");
            assert!(i.root_argv.contains("curl"), "{i:#?}");
        }
        report.push(format!(
            "{file}: {} alerts, {} incidents (worst {})",
            a.len(),
            inc.len(),
            worst.unwrap_or("-")
        ));
        if file.contains("port-scan") {
            assert!(a.len() <= 30, "{file}: {} alerts for a scan", a.len());
            let scans: Vec<_> = a.iter().filter(|x| x.kind == "NET_SCAN").collect();
            assert!(
                scans.iter().any(|s| s.summary.contains("ports")),
                "{scans:#?}"
            );
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn alert_times_are_rfc3339_utc_with_nanoseconds() {
    assert_eq!(
        proctor_detect::rfc3339(1_700_000_000_123_456_789),
        "2023-11-14T22:13:20.123456789Z"
    );
}

#[test]
fn builtin_profiles_load_and_unknown_names_are_refused() {
    for agent in AGENTS.iter().chain(&["gemini-cli"]) {
        let b = Baseline::load_spec(&format!("builtin:{agent}")).unwrap();
        assert!(!b.edges.is_empty() && !b.hosts.is_empty(), "{agent}");
    }
    let e = Baseline::load_spec("builtin:nope").unwrap_err().to_string();
    assert!(e.contains("claude-code"), "{e}");
}

#[test]
fn profiles_accumulate() {
    let a = learn("claude-code.learn.jsonl");
    let b = learn("claude-code.benign.jsonl");
    let mut m = a.clone();
    m.merge(&b);
    assert!(m.edges.is_superset(&a.edges) && m.edges.is_superset(&b.edges));
    assert!(m.destinations.is_superset(&b.destinations));
    assert_eq!(m.records, a.records + b.records);
    // Merging is idempotent on the sets.
    let mut again = m.clone();
    again.merge(&b);
    assert_eq!(again.edges, m.edges);
}

/// A trimmed real recording (tests/data/agents/recorded) replayed as `proctor replay` does:
/// HOME and cwd from its sensor_start record, a 20 s learning window (as recorded) or a profile.
fn replay_recorded(name: &str, profile: Option<Baseline>) -> Vec<Output> {
    replay_recorded_with(name, profile, 20 * common::S).1
}

/// A recording replayed with its own HOME and working directory (its `sensor_start`), learning
/// for `baseline_ns` unless `profile` is given: the engine after `finish`, and its outputs.
fn replay_recorded_with(
    name: &str,
    profile: Option<Baseline>,
    baseline_ns: u64,
) -> (Engine, Vec<Output>) {
    let f = std::fs::File::open(path(&format!("recorded/{name}.jsonl")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut engine: Option<Engine> = None;
    let (mut home, mut cwd) = (None, None);
    let mut profile = profile;
    let mut out = Vec::new();
    for item in AuditReader::new(BufReader::new(f)) {
        match item.expect("readable").1 {
            Line::Other { ty, value } if ty == "sensor_start" => {
                let field = |k: &str| value.get(k).and_then(|v| v.as_str()).map(PathBuf::from);
                home = field("home");
                cwd = field("cwd");
            }
            Line::Record(r) => {
                let e = engine.get_or_insert_with(|| {
                    Engine::with_host(
                        Policy::builtin(),
                        EngineConfig {
                            baseline_ns,
                            home: home.clone(),
                            cwd: cwd.clone(),
                            profile: profile.take(),
                        },
                        recording_host(),
                    )
                });
                out.extend(e.observe(&r));
            }
            _ => {}
        }
    }
    let mut engine = engine.expect("records");
    out.extend(engine.finish());
    (engine, out)
}

/// The host the recordings were made on: its resolver (from its /etc/resolv.conf) is the system's,
/// as `proctor run` would have read it there.
fn recording_host() -> proctor_detect::HostFacts {
    let mut h = common::host();
    h.resolvers.push("10.255.255.53".parse().unwrap());
    h
}

fn learned_profile(name: &str) -> Baseline {
    let (e, _) = replay_recorded_with(name, None, u64::MAX / 4);
    e.baseline().unwrap().clone()
}

/// The profile learned in a recording's first 20 s (its benign warm-up).
fn warm_up_profile(name: &str) -> Baseline {
    let f = std::fs::File::open(path(&format!("recorded/{name}.jsonl"))).unwrap();
    let mut e = engine(None, 20 * common::S);
    for item in AuditReader::new(BufReader::new(f)) {
        if let Line::Record(r) = item.unwrap().1 {
            e.observe(&r);
        }
    }
    e.baseline().expect("the window closed").clone()
}

#[test]
fn recorded_real_benign_sessions_raise_nothing() {
    for agent in ["claude", "codex", "pi"] {
        for n in [1, 2] {
            let name = format!("{agent}-benign-{n}");
            let outs = replay_recorded(&name, None);
            let a = alerts(&outs);
            assert!(a.is_empty(), "{name}: {a:#?}");
            assert!(incidents(&outs).is_empty(), "{name}");
        }
        // A profile of session 1 judges session 2 from its first record: the only unknown is
        // the LLM stub, restarted on another random port.
        let one = learned_profile(&format!("{agent}-benign-1"));
        let outs = replay_recorded(&format!("{agent}-benign-2"), Some(one.clone()));
        let a = alerts(&outs);
        assert!(
            a.iter()
                .all(|x| x.kind == "UNKNOWN_DESTINATION" && x.summary.contains("127.0.0.1:")),
            "{agent} benign-2 against benign-1's profile: {a:#?}"
        );
        // Accumulated with the warm-up of another session (its stub on a third port), the
        // profile knows the agent's stub on any ephemeral port, and session 2 is silent.
        let mut two = one;
        two.merge(&warm_up_profile(&format!("{agent}-hijack-1")));
        let outs = replay_recorded(&format!("{agent}-benign-2"), Some(two));
        let a = alerts(&outs);
        assert!(
            a.is_empty(),
            "{agent} benign-2 against an accumulated profile: {a:#?}"
        );
    }
}

#[test]
fn recorded_real_hijacks_raise_every_step_in_few_incidents() {
    for agent in ["claude", "codex", "pi"] {
        let name = format!("{agent}-hijack-1");
        let outs = replay_recorded(&name, None);
        let a = alerts(&outs);
        let kinds: Vec<&str> = a.iter().map(|x| x.kind.as_str()).collect();
        for k in [
            "SENSITIVE_FILE",
            "RISKY_BINARY",
            "UNKNOWN_DESTINATION",
            "PERSISTENCE",
        ] {
            assert!(kinds.contains(&k), "{name}: no {k} in {kinds:?}");
        }
        // The reverse shell (`timeout 10 bash -c 'bash -i >& /dev/tcp/...'`): what `timeout`
        // runs is the agent's shell running bash, so it is the network redirection (the tool
        // call's shell and the one timeout runs) and the interactive shell that say so: the
        // first of them alerts, the rest of bash's within the cooldown are counted with it.
        assert!(
            a.iter().any(|x| x.kind == "RISKY_BINARY"
                && ["`[bdkmz]*sh -i* !-*c*`", "`*sh */dev/[tu][cd]p/*`"]
                    .iter()
                    .any(|rule| x.summary.contains(rule))),
            "{name}: no shell alert in {:#?}",
            a.iter().map(|x| &x.summary).collect::<Vec<_>>()
        );
        let inc = incidents(&outs);
        assert!((1..=3).contains(&inc.len()), "{name}: {inc:#?}");
        assert!(
            inc.values().any(|i| i.severity == "critical"),
            "{name}: {inc:#?}"
        );
    }
}

#[test]
fn recorded_real_sessions_judged_by_their_builtin_profile_from_the_first_record() {
    // What the real-agent tier does live: no learning window, the built-in profile alone. The
    // recordings reached the stub by address (no TLS server name), so the stub is the one thing
    // the profile cannot name; nothing else of a benign session may alert, warm-up included.
    for (agent, profile) in [
        ("claude", "claude-code"),
        ("codex", "codex"),
        ("pi", "node-agent"),
    ] {
        let builtin = || Some(Baseline::builtin(profile).unwrap());
        for n in [1, 2] {
            let name = format!("{agent}-benign-{n}");
            let outs = replay_recorded(&name, builtin());
            let a: Vec<_> = alerts(&outs)
                .into_iter()
                .filter(|x| !(x.kind == "UNKNOWN_DESTINATION" && x.summary.contains("127.0.0.1:")))
                .collect();
            assert!(a.is_empty(), "{name} under builtin:{profile}: {a:#?}");
        }
        // The profile allows none of the hijack's steps.
        let name = format!("{agent}-hijack-1");
        let outs = replay_recorded(&name, builtin());
        let a = alerts(&outs);
        let has = |kind: &str, needle: &str| {
            a.iter()
                .any(|x| x.kind == kind && x.summary.contains(needle))
        };
        for (step, hit) in [
            (
                "credential read",
                has("SENSITIVE_FILE", "/.aws/credentials"),
            ),
            ("exfiltration", has("UNKNOWN_DESTINATION", "127.0.0.2:8080")),
            (
                "reverse shell",
                has("UNKNOWN_DESTINATION", "127.0.0.3:4444"),
            ),
            ("persistence", has("PERSISTENCE", "/.ssh/authorized_keys")),
        ] {
            assert!(
                hit,
                "{name} under builtin:{profile}: no alert for the {step}: {:#?}",
                a.iter().map(|x| &x.summary).collect::<Vec<_>>()
            );
        }
    }
}
