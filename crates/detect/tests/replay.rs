//! Replays of the audit logs in tests/data: the benign loop stays silent, every attack is found
//! on its channel, malformed lines are counted by number, and a replay is deterministic.

mod common;

use proctor_detect::replay::{AuditReader, Line};
use proctor_detect::{Baseline, Engine, EngineConfig, Output, Policy};
use std::collections::BTreeSet;
use std::io::BufReader;
use std::path::PathBuf;

struct Replayed {
    outputs: Vec<Output>,
    records: u64,
    malformed: Vec<usize>,
    baseline: Option<Baseline>,
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn replay(name: &str, profile: Option<Baseline>) -> Replayed {
    let path = data(name);
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut e = Engine::with_host(
        Policy::builtin(),
        EngineConfig {
            baseline_ns: 10 * common::S,
            home: Some("/home/agent".into()),
            cwd: Some("/work/proj".into()),
            profile,
        },
        common::host(),
    );
    let mut out = Replayed {
        outputs: Vec::new(),
        records: 0,
        malformed: Vec::new(),
        baseline: None,
    };
    for item in AuditReader::new(BufReader::new(f)) {
        let (n, line) = item.expect("readable");
        match line {
            Line::Record(r) => {
                out.records += 1;
                out.outputs.extend(e.observe(&r));
            }
            Line::Malformed { .. } => out.malformed.push(n),
            Line::Other { .. } | Line::Blank => {}
        }
    }
    out.outputs.extend(e.finish());
    out.baseline = e.baseline().cloned();
    out
}

fn established(outs: &[Output]) -> usize {
    outs.iter()
        .filter(|o| matches!(o, Output::BaselineEstablished(_)))
        .count()
}

#[test]
fn benign_loop_replays_without_a_single_alert() {
    let r = replay("benign.jsonl", None);
    assert!(r.records > 250, "{} records", r.records);
    assert!(r.malformed.is_empty(), "{:?}", r.malformed);
    assert_eq!(established(&r.outputs), 1);
    let alerts = common::alerts(&r.outputs);
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn every_attack_is_detected_on_its_channel() {
    let r = replay("attacks.jsonl", None);
    assert!(r.malformed.is_empty(), "{:?}", r.malformed);
    let found: BTreeSet<(String, String)> = common::alerts(&r.outputs)
        .iter()
        .map(|a| (a.channel.clone(), a.kind.clone()))
        .collect();
    for (channel, kind) in [
        ("L1", "DRIFT_DETECTED"),
        ("L2", "LLM_AGENT_HIJACK"),
        ("L3", "CAUSAL_CYCLE_DETECTED"),
        ("L4", "UNKNOWN_DESTINATION"),
        ("L4", "NET_EGRESS_BURST"),
        ("L5", "PTRACE_ATTACH_DETECTED"),
        ("SENSITIVE_FILE", "SENSITIVE_FILE"),
        ("DNS_ANOMALY", "DNS_ANOMALY"),
        ("PERSISTENCE", "PERSISTENCE"),
    ] {
        assert!(
            found.contains(&(channel.to_string(), kind.to_string())),
            "{channel} {kind} missing; found {found:?}"
        );
    }
    // New edges on their own (a helper program, a scratch file) are evidence, not alerts.
    assert!(
        r.outputs
            .iter()
            .any(|o| matches!(o, Output::Evidence(a) if a.kind == "STRUCTURAL_DRIFT")),
        "no L3 evidence"
    );
    for a in common::alerts(&r.outputs) {
        assert_eq!(a.agent_id, "demo-agent");
        assert_eq!(a.action, "ALERT_EMITTED");
        assert!(
            a.count >= 1 && !a.trigger.is_empty() && !a.exec_id.is_empty(),
            "{a:?}"
        );
        assert!(a.divergence.is_finite() && a.divergence > 0.0, "{a:?}");
        assert!(a.syscall_trace.len() <= 32);
        assert!(a.ts_ns >= a.trigger[0].ts_ns, "{a:?}");
    }
}

#[test]
fn replay_is_deterministic() {
    let a = replay("attacks.jsonl", None);
    let b = replay("attacks.jsonl", None);
    assert_eq!(a.outputs, b.outputs);
}

#[test]
fn a_saved_profile_judges_from_the_first_record() {
    let learned = replay("benign.jsonl", None).baseline.expect("learned");
    // Through the file format, as `--profile` does.
    let text = String::from_utf8(learned.to_json_bytes()).unwrap();
    let profile = Baseline::from_json_str(&text, "baseline.json").unwrap();
    let benign = replay("benign.jsonl", Some(profile.clone()));
    assert_eq!(established(&benign.outputs), 0);
    let alerts = common::alerts(&benign.outputs);
    assert!(alerts.is_empty(), "{alerts:#?}");
    let attacks = replay("attacks.jsonl", Some(profile));
    let kinds: BTreeSet<String> = common::kinds(&attacks.outputs).into_iter().collect();
    for k in [
        "LLM_AGENT_HIJACK",
        "SENSITIVE_FILE",
        "PTRACE_ATTACH_DETECTED",
        "DRIFT_DETECTED",
    ] {
        assert!(kinds.contains(k), "{k} missing: {kinds:?}");
    }
}

#[test]
fn malformed_lines_are_counted_by_line_number_and_the_rest_replays() {
    let r = replay("malformed.jsonl", None);
    assert_eq!(r.malformed, vec![3, 6, 9, 12]);
    assert!(r.records > 100, "{}", r.records);
    assert_eq!(established(&r.outputs), 1);
}

#[test]
fn every_fixture_line_is_in_the_record_serde_form() {
    for name in ["benign.jsonl", "attacks.jsonl"] {
        let text = std::fs::read_to_string(data(name)).unwrap();
        for (i, line) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["type"] == "sensor_start" {
                continue;
            }
            let r: proctor_model::Record =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1));
            // Re-serialising gives back the same object: the fixtures use the exact form.
            assert_eq!(serde_json::to_value(&r).unwrap(), v, "{name}:{}", i + 1);
        }
    }
}

#[test]
fn recorded_runs_raise_their_channel_and_the_benign_run_nothing() {
    let expect = [
        ("shell_spawn", "LLM_AGENT_HIJACK"),
        ("credential_read", "SENSITIVE_FILE"),
        ("unknown_destination", "UNKNOWN_DESTINATION"),
        ("egress_burst", "NET_EGRESS_BURST"),
        ("dns_tunnel", "DNS_ANOMALY"),
        ("ptrace_attach", "PTRACE_ATTACH_DETECTED"),
        ("scheduling_noise", "DRIFT_DETECTED"),
        ("write_then_exec", "CAUSAL_CYCLE_DETECTED"),
        ("persistence", "PERSISTENCE"),
    ];
    for (name, kind) in expect {
        let r = replay(&format!("recorded/{name}.jsonl"), None);
        assert!(r.malformed.is_empty(), "{name}: {:?}", r.malformed);
        let kinds = common::kinds(&r.outputs);
        assert!(
            kinds.iter().any(|k| k == kind),
            "{name}: no {kind} in {kinds:?}"
        );
    }
    let r = replay("recorded/benign.jsonl", None);
    let alerts = common::alerts(&r.outputs);
    assert!(alerts.is_empty(), "benign: {alerts:#?}");
}

#[test]
fn replaying_a_live_run_gives_the_live_alerts() {
    let log = data("recorded/live/write_then_exec.audit.jsonl");
    let mut e = Engine::with_host(
        Policy::builtin(),
        EngineConfig {
            baseline_ns: 10 * common::S,
            home: Some("/root".into()),
            cwd: Some("/work/main".into()),
            profile: None,
        },
        proctor_detect::HostFacts::default(),
    );
    let mut replayed = Vec::new();
    for item in AuditReader::new(BufReader::new(std::fs::File::open(&log).unwrap())) {
        if let (_, Line::Record(r)) = item.unwrap() {
            replayed.extend(e.observe(&r));
        }
    }
    replayed.extend(e.finish());
    let evidence: Vec<String> = replayed
        .iter()
        .filter_map(|o| match o {
            Output::Evidence(a) => Some(a.summary.clone()),
            _ => None,
        })
        .collect();
    // Ids, severities and incidents are newer than the recording too.
    let replayed: Vec<proctor_model::Alert> = common::alerts(&replayed)
        .into_iter()
        .cloned()
        .map(|mut a| {
            assert!(a.incident.is_some() && !a.id.is_empty(), "{a:#?}");
            a.id.clear();
            a.severity.clear();
            a.incident = None;
            assert_eq!(a.time, proctor_detect::rfc3339(a.ts_ns));
            a.time.clear();
            a.rule_id.clear();
            a
        })
        .collect();
    // This run was recorded before new structural edges on their own became evidence: its
    // three STRUCTURAL_DRIFT alerts (a scratch file written, dash spawned where L2 already
    // alerted) are evidence now, and every other alert is exactly the live one.
    let live: Vec<proctor_model::Alert> =
        std::fs::read_to_string(data("recorded/live/write_then_exec.alerts.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<proctor_model::Alert>(l).expect("an alert per line"))
            .filter(|a| a.kind != "STRUCTURAL_DRIFT")
            .collect();
    assert!(
        evidence
            .iter()
            .any(|s| s.contains("write python3.11 -> /tmp"))
            && evidence
                .iter()
                .any(|s| s.contains("spawn python3.11 -> dash")),
        "{evidence:#?}"
    );
    assert!(
        live.iter().any(|a| a.kind == "CAUSAL_CYCLE_DETECTED"),
        "{live:#?}"
    );
    assert_eq!(replayed, live);
}
