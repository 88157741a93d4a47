//! One streaming pass over `audit.jsonl` into bounded aggregates.

use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Alerts, decisions, approvals and tool calls kept in full; beyond that they are counted.
pub const MAX_KEPT: usize = 2000;
/// Longest string kept from a record (argv, paths, summaries).
const MAX_TEXT: usize = 300;

/// The members every audit record has, read without building a JSON tree.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    ty: std::borrow::Cow<'a, str>,
    #[serde(default)]
    ts_ns: u64,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    ppid: u32,
    #[serde(default)]
    seq: u64,
}

/// One process seen in the run (the last exec of a pid wins; pids are rarely reused in a run).
#[derive(Debug, Clone, Default)]
pub struct Proc {
    pub ppid: u32,
    pub comm: String,
    /// argv of its last exec, joined and bounded.
    pub cmdline: String,
    pub first_ns: u64,
}

/// An alert as the report shows it.
#[derive(Debug, Clone)]
pub struct AlertInfo {
    pub seq: u64,
    pub ts_ns: u64,
    pub pid: u32,
    pub id: String,
    pub channel: String,
    pub kind: String,
    pub action: String,
    pub summary: String,
    /// pids of its triggering records.
    pub trigger_pids: Vec<u32>,
}

/// A decision (block) or approval.
#[derive(Debug, Clone)]
pub struct Decision {
    pub ts_ns: u64,
    pub pid: u32,
    pub comm: String,
    /// `decision`, `approval` or `tamper`.
    pub ty: String,
    pub what: String,
    pub verdict: String,
    /// Who decided: the layer for a kernel decision, the approver for an approval.
    pub by: String,
    pub reason: String,
}

/// The tool calls of one LLM response and what ran after it.
#[derive(Debug, Clone)]
pub struct ToolTurn {
    pub ts_ns: u64,
    pub model: String,
    pub calls: Vec<String>,
    /// Command lines executed after this response and before the next (bounded).
    pub ran: Vec<String>,
}

/// The aggregates of one audit log.
#[derive(Debug, Default)]
pub struct Run {
    pub records: u64,
    pub unreadable_lines: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    pub agent_id: String,
    pub mode: String,
    pub mode_changes: Vec<(u64, String)>,
    pub command: String,
    pub version: String,
    pub by_type: BTreeMap<String, u64>,
    /// Per second since the epoch: (records, alerts, blocks/approvals).
    pub per_second: BTreeMap<u64, (u64, u64, u64)>,
    pub procs: HashMap<u32, Proc>,
    /// The agent's root pid (first exec).
    pub root_pid: Option<u32>,
    pub alerts: Vec<AlertInfo>,
    pub alerts_total: u64,
    pub alerts_by_kind: BTreeMap<String, u64>,
    pub decisions: Vec<Decision>,
    pub decisions_total: u64,
    pub lost: BTreeMap<String, u64>,
    pub tool_turns: Vec<ToolTurn>,
    pub llm_requests: u64,
    /// Incidents by id (last state wins).
    pub incidents: BTreeMap<String, Value>,
    /// What the run observed per channel, for the baseline comparison.
    pub observed: BTreeMap<&'static str, BTreeSet<String>>,
    /// Largest number of inet connects in one second.
    pub egress_max_per_s: u64,
    pub segments: u64,
    pub key_rotations: u64,
    pub checkpoints: u64,
}

fn clip(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_string();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A byte string as proctor writes it: a string, or `{"b64": ..}` when not UTF-8.
fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) if o.contains_key("b64") => "(non-UTF-8 bytes)".into(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn argv(v: &Value) -> String {
    let joined = v
        .get("argv")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| text(Some(x)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    clip(&joined)
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Types whose content the report uses; everything else is only counted.
const DETAILED: &[&str] = &[
    "exec",
    "fork",
    "connect",
    "dns",
    "alert",
    "decision",
    "approval",
    "tamper",
    "lost",
    "llm_request",
    "llm_response",
    "incident",
    "sensor_start",
    "sensor_stop",
    "mode",
    "mode_change",
    "segment_start",
    "checkpoint",
    "key_rotation",
];

/// Read `path` (an audit log) into a [`Run`]. Lines that are not JSON objects are counted,
/// not fatal: the verdict says whether the log is intact.
pub fn scan(path: &Path) -> std::io::Result<Run> {
    let f = std::fs::File::open(path)?;
    let mut reader = BufReader::with_capacity(1 << 20, f);
    let mut run = Run::default();
    let mut buf = Vec::new();
    let mut egress_sec = (0u64, 0u64);
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        let Ok(head) = serde_json::from_slice::<Head>(&buf) else {
            run.unreadable_lines += 1;
            continue;
        };
        run.records += 1;
        let ts = head.ts_ns;
        if ts > 0 {
            if run.first_ns == 0 || ts < run.first_ns {
                run.first_ns = ts;
            }
            run.last_ns = run.last_ns.max(ts);
        }
        let ty: &str = &head.ty;
        *run.by_type.entry(ty.to_string()).or_default() += 1;
        let sec = ts / 1_000_000_000;
        let slot = run.per_second.entry(sec).or_default();
        slot.0 += 1;
        if !DETAILED.contains(&ty) {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<Value>(&buf) else {
            continue;
        };
        let s = |k: &str| text(v.get(k));
        if run.agent_id.is_empty() {
            run.agent_id = s("agent_id");
        }
        match ty {
            "exec" => {
                let p = run.procs.entry(head.pid).or_default();
                p.ppid = head.ppid;
                p.comm = basename(&s("filename")).to_string();
                p.cmdline = argv(&v);
                if p.first_ns == 0 {
                    p.first_ns = ts;
                }
                if run.root_pid.is_none() {
                    run.root_pid = Some(head.pid);
                }
                run.observed
                    .entry("binaries")
                    .or_default()
                    .insert(basename(&s("filename")).to_string());
                if let Some(t) = run.tool_turns.last_mut() {
                    if t.ran.len() < 8 {
                        t.ran.push(p.cmdline.clone());
                    }
                }
            }
            "fork" => {
                if let Some(child) = v.get("child_pid").and_then(Value::as_u64) {
                    let parent = run.procs.get(&head.pid).cloned().unwrap_or_default();
                    let c = run.procs.entry(child as u32).or_insert_with(|| Proc {
                        ppid: head.pid,
                        comm: parent.comm.clone(),
                        cmdline: parent.cmdline.clone(),
                        first_ns: ts,
                    });
                    c.ppid = head.pid;
                }
                run.procs.entry(head.pid).or_insert_with(|| Proc {
                    ppid: head.ppid,
                    comm: s("comm"),
                    cmdline: s("comm"),
                    first_ns: ts,
                });
            }
            "connect" => {
                let family = s("family");
                if family == "inet" || family == "inet6" {
                    let dest = match (v.get("addr"), v.get("port")) {
                        (Some(a), Some(p)) => format!("{}:{}", text(Some(a)), p),
                        _ => s("dest"),
                    };
                    run.observed.entry("destinations").or_default().insert(dest);
                    // A counted record stands for its repeats (docs/kernel.md "Repeated connects").
                    let n = v.get("repeats").and_then(Value::as_u64).unwrap_or(0).max(1);
                    if egress_sec.0 == sec {
                        egress_sec.1 += n;
                    } else {
                        egress_sec = (sec, n);
                    }
                    run.egress_max_per_s = run.egress_max_per_s.max(egress_sec.1);
                }
            }
            "dns" => {
                let name = s("qname");
                if !name.is_empty() {
                    run.observed.entry("dns_domains").or_default().insert(name);
                }
            }
            "alert" => {
                slot.1 += 1;
                run.alerts_total += 1;
                let kind = s("kind");
                *run.alerts_by_kind.entry(kind.clone()).or_default() += 1;
                if run.alerts.len() < MAX_KEPT {
                    let trigger_pids = v
                        .get("trigger")
                        .and_then(Value::as_array)
                        .map(|t| {
                            t.iter()
                                .filter_map(|r| r.get("pid").and_then(Value::as_u64))
                                .map(|p| p as u32)
                                .collect()
                        })
                        .unwrap_or_default();
                    run.alerts.push(AlertInfo {
                        seq: head.seq,
                        ts_ns: ts,
                        pid: head.pid,
                        id: s("id"),
                        channel: s("channel"),
                        kind,
                        action: s("action"),
                        summary: clip(&s("summary")),
                        trigger_pids,
                    });
                }
            }
            "decision" | "approval" | "tamper" => {
                slot.2 += 1;
                run.decisions_total += 1;
                if run.decisions.len() < MAX_KEPT {
                    let d = match ty {
                        "decision" => {
                            let what = s("what");
                            let target = [
                                s("path"),
                                dest_text(v.get("dest")),
                                s("target_pid"),
                                s("comm"),
                            ]
                            .into_iter()
                            .find(|x| !x.is_empty())
                            .unwrap_or_default();
                            Decision {
                                ts_ns: ts,
                                pid: head.pid,
                                comm: s("comm"),
                                ty: ty.into(),
                                what: clip(&format!("{what} {target}")),
                                verdict: s("verdict"),
                                by: format!("kernel ({})", s("layer")),
                                reason: "policy".into(),
                            }
                        }
                        "approval" => {
                            let action = v.get("action").cloned().unwrap_or(Value::Null);
                            let what = match action.get("kind").and_then(Value::as_str) {
                                Some("exec") => format!("exec {}", argv(&action)),
                                Some(k) => format!(
                                    "{k} {}",
                                    dest_text(action.get("dest").or(action.get("addr")))
                                ),
                                None => action.to_string(),
                            };
                            let approver = match v.get("approver") {
                                Some(Value::Object(o)) => o
                                    .iter()
                                    .map(|(k, x)| format!("{k}={}", text(Some(x))))
                                    .collect::<Vec<_>>()
                                    .join(" "),
                                other => text(other),
                            };
                            Decision {
                                ts_ns: ts,
                                pid: head.pid,
                                comm: s("comm"),
                                ty: ty.into(),
                                what: clip(&what),
                                verdict: s("verdict"),
                                by: clip(&format!("{} {approver}", s("decided_by"))),
                                reason: clip(&s("reason")),
                            }
                        }
                        _ => Decision {
                            ts_ns: ts,
                            pid: head.pid,
                            comm: s("comm"),
                            ty: ty.into(),
                            what: clip(&format!("{} {}", s("syscall"), s("target"))),
                            verdict: s("verdict"),
                            by: "proctor guard".into(),
                            reason: clip(&s("detail")),
                        },
                    };
                    run.decisions.push(d);
                }
            }
            "lost" => {
                let n = v.get("count").and_then(Value::as_u64).unwrap_or(0);
                *run.lost.entry(s("what")).or_default() += n;
            }
            "llm_request" => run.llm_requests += 1,
            "llm_response" => {
                let calls: Vec<String> = v
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|c| {
                                clip(&format!("{}({})", s_of(c, "name"), s_of(c, "arguments")))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if !calls.is_empty() && run.tool_turns.len() < MAX_KEPT {
                    run.tool_turns.push(ToolTurn {
                        ts_ns: ts,
                        model: s("model"),
                        calls,
                        ran: Vec::new(),
                    });
                }
            }
            "incident" => run.add_incident(v),
            "sensor_start" => {
                run.mode = s("mode");
                run.command = clip(&argv(&v));
                run.version = s("version");
            }
            "mode" | "mode_change" => {
                let m = [s("mode"), s("to"), s("new")]
                    .into_iter()
                    .find(|x| !x.is_empty())
                    .unwrap_or_default();
                run.mode_changes.push((ts, m));
            }
            "sensor_stop" => {
                if let Some(n) = v.get("lost").and_then(Value::as_u64).filter(|&n| n > 0) {
                    run.lost.entry("reported at stop".into()).or_insert(n);
                }
            }
            "segment_start" => run.segments += 1,
            "checkpoint" => run.checkpoints += 1,
            "key_rotation" => run.key_rotations += 1,
            _ => {}
        }
    }
    Ok(run)
}

/// `addr:port` of a destination object, or its text.
fn dest_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::Object(o)) if o.contains_key("addr") => format!(
            "{}:{}",
            text(o.get("addr")),
            o.get("port").map(|p| p.to_string()).unwrap_or_default()
        ),
        other => text(other),
    }
}

fn s_of(v: &Value, k: &str) -> String {
    text(v.get(k))
}

impl Run {
    /// Record an incident (a `type: incident` record or a line of `incidents.jsonl`); read
    /// generically: `id`, `severity`, `title`, `alert_ids`/`alerts`, `root_pid`.
    pub fn add_incident(&mut self, v: Value) {
        let id = match v.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return,
        };
        if self.incidents.len() < MAX_KEPT || self.incidents.contains_key(&id) {
            self.incidents.insert(id, v);
        }
    }

    /// The alerts an incident names (by alert id), or those of its root's subtree.
    pub fn incident_alerts(&self, incident: &Value) -> Vec<&AlertInfo> {
        let ids: BTreeSet<String> = ["alert_ids", "alerts"]
            .iter()
            .filter_map(|k| incident.get(*k).and_then(Value::as_array))
            .flatten()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                Value::Object(o) => text(o.get("id").or(o.get("alert_id"))),
                other => other.to_string(),
            })
            .collect();
        let by_id: Vec<&AlertInfo> = self
            .alerts
            .iter()
            .filter(|a| !a.id.is_empty() && ids.contains(&a.id))
            .collect();
        if !by_id.is_empty() {
            return by_id;
        }
        let seqs: BTreeSet<u64> = ids.iter().filter_map(|i| i.parse().ok()).collect();
        let root = incident
            .get("root_pid")
            .and_then(Value::as_u64)
            .map(|p| p as u32);
        self.alerts
            .iter()
            .filter(|a| seqs.contains(&a.seq) || root.is_some_and(|r| self.descends(a.pid, r)))
            .collect()
    }

    /// Whether `pid` is `ancestor` or below it.
    pub fn descends(&self, mut pid: u32, ancestor: u32) -> bool {
        for _ in 0..256 {
            if pid == ancestor {
                return true;
            }
            match self.procs.get(&pid) {
                Some(p) if p.ppid != pid && p.ppid != 0 => pid = p.ppid,
                _ => return false,
            }
        }
        false
    }

    /// The chain of ancestors of `pid`, root first (bounded).
    pub fn ancestors(&self, pid: u32) -> Vec<u32> {
        let mut chain = vec![pid];
        let mut cur = pid;
        while let Some(p) = self.procs.get(&cur) {
            if p.ppid == 0 || chain.contains(&p.ppid) || chain.len() > 32 {
                break;
            }
            if !self.procs.contains_key(&p.ppid) {
                break;
            }
            chain.push(p.ppid);
            cur = p.ppid;
        }
        chain.reverse();
        chain
    }

    /// Children of every process, built once per report.
    pub fn children(&self) -> HashMap<u32, Vec<u32>> {
        let mut m: HashMap<u32, Vec<u32>> = HashMap::new();
        for (pid, p) in &self.procs {
            if p.ppid != *pid {
                m.entry(p.ppid).or_default().push(*pid);
            }
        }
        for v in m.values_mut() {
            v.sort_unstable();
        }
        m
    }
}
