//! The audit log writes each record once, in canonical order, with its chain members merged in
//! at their places. Every line must be byte for byte what the reference path makes of the same
//! record: `serde_json::Value`, the chain members added to it, `canonical_json`, and `hash_self`
//! over the canonical form without it (what `verify` and older tools recompute). Checked for
//! every record kind, with hostile values.

use proctor_evidence::{canonical_json, verify_paths, AuditLog, AuditOptions, Status, Written};
use proctor_model::*;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Strings an agent could put in argv, paths, names: empty, non-ASCII (above U+FFFF too, and
/// U+E000..U+FFFF, which sort differently in UTF-16 and UTF-8), control bytes, JSON specials.
const TEXTS: &[&str] = &[
    "",
    "é\u{2028}\u{e000}\u{ffff}\u{1f600}",
    "\0\u{1b}[31m\n\t\r\u{8}\u{c}\"\\/\u{7f}",
    "/usr/bin/python3",
];

/// Not UTF-8: written as `{"b64": ...}`.
fn bad_bytes() -> Bytes {
    Bytes(vec![0xff, b'/', 0xc3, 0, b'\n', 0xed, 0xa0, 0x80])
}

fn texts() -> impl Iterator<Item = String> {
    TEXTS.iter().map(|s| (*s).to_string())
}

fn byteses() -> Vec<Bytes> {
    let mut v: Vec<Bytes> = TEXTS.iter().map(|s| Bytes::from(*s)).collect();
    v.push(bad_bytes());
    v
}

/// Kernel record numbers in the order written: `verify` checks that none is missing.
fn next_kseq() -> Kseq {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    Kseq {
        kslot: u32::MAX,
        kseq: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    }
}

const CID: &str = "3f1c8e2a9b7d4c6e5f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a";

fn common(i: usize) -> Common {
    let b = byteses();
    Common {
        ts_ns: [0, 1, u64::MAX, 1_795_422_529_123_456_789][i % 4],
        agent_id: TEXTS[i % TEXTS.len()].into(),
        pid: [0, u32::MAX, 7][i % 3],
        ppid: 1,
        comm: b[i % b.len()].clone(),
        exec_id: TEXTS[(i + 1) % TEXTS.len()].into(),
    }
}

/// One observation of each `Event` with every combination of the optional common parts.
fn observations(event: Event) -> Vec<Record> {
    let mut out = Vec::new();
    for (i, (identity, kseq)) in [
        (None, None),
        (
            Some(Identity {
                uid: 0,
                gid: u32::MAX,
                loginuid: 4_294_967_295,
                cgroup_id: u64::MAX,
                container: None,
            }),
            Some(next_kseq()),
        ),
        (
            Some(Identity {
                uid: 1000,
                gid: 100,
                loginuid: 1000,
                cgroup_id: 1,
                container: Container::from_fields(
                    "cri",
                    CID,
                    Some("5d8e2f1a-3b4c-4d5e-8f90-a1b2c3d4e5f6"),
                ),
            }),
            None,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let c = common(i);
        out.push(Record {
            event: event.clone(),
            ts_ns: c.ts_ns,
            agent_id: c.agent_id,
            pid: c.pid,
            ppid: c.ppid,
            comm: c.comm,
            exec_id: c.exec_id,
            identity,
            kseq,
        });
    }
    out
}

fn sockaddrs() -> Vec<SockAddr> {
    vec![
        SockAddr {
            family: Family::Inet6,
            addr: Some("::ffff:10.0.0.1".into()),
            port: Some(u16::MAX),
            path: None,
        },
        SockAddr {
            family: Family::Unix,
            addr: None,
            port: None,
            path: Some(bad_bytes()),
        },
        SockAddr {
            family: Family::Other,
            addr: None,
            port: Some(0),
            path: Some(Bytes::from("\0abstract\u{1f600}")),
        },
    ]
}

fn alert(i: usize) -> Alert {
    let trigger = observations(Event::Fork(Fork { child_pid: 9 }));
    let mut a = Alert::new(
        TEXTS[i % TEXTS.len()],
        [0, u64::MAX][i % 2],
        "L2",
        TEXTS[(i + 1) % TEXTS.len()],
        4,
        "e",
        TEXTS[(i + 2) % TEXTS.len()],
    )
    .with_divergence(
        [
            f64::NAN,
            -0.0,
            1e21,
            5e-324,
            -2.5e-7,
            f64::INFINITY,
            0.1,
            1.0,
        ][i % 8],
    )
    .with_records(trigger.clone(), trigger);
    if i % 2 == 1 {
        a.time = "2026-11-23T08:28:49.000000000Z".into();
        a.id = "a-1".into();
        a.severity = "high".into();
        a.incident = Some(TEXTS[1].into());
        a.actor = Actor {
            host: TEXTS[2].into(),
            uid: Some(0),
            gid: None,
            user: TEXTS[1].into(),
            container: Container::from_fields("docker", CID, None),
        };
    }
    a
}

fn requester(i: usize) -> Requester {
    Requester {
        pid: [i32::MIN, -1, 0][i % 3],
        uid: 0,
        gid: u32::MAX,
        exe: [None, Some(TEXTS[1].to_string())][i % 2].clone(),
    }
}

/// Called with a closure that appends one record to the log and returns its reference value.
type Put<'a> = &'a mut dyn FnMut(&dyn Fn(&mut AuditLog) -> Value);

/// Appends records of `kind`; each closure call returns the reference `Value` of one record.
fn samples(kind: RecordKind, put: Put<'_>) {
    fn add<T: Serialize>(put: Put<'_>, rec: T) {
        put(&|log: &mut AuditLog| {
            log.append(&rec).unwrap();
            serde_json::to_value(&rec).unwrap()
        });
    }
    fn typed<T: TypedRecord>(put: Put<'_>, rec: T) {
        put(&|log: &mut AuditLog| {
            log.append(&rec.tagged()).unwrap();
            serde_json::to_value(rec.tagged()).unwrap()
        });
    }
    let events: Vec<Event> = match kind {
        RecordKind::Exec => byteses()
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                Event::Exec(Exec {
                    filename: b.clone(),
                    argv: if i == 0 { vec![] } else { byteses() },
                    argv_truncated: i % 2 == 0,
                    dev: u64::MAX,
                    ino: 0,
                    fileless: i % 2 == 1,
                    build_id: [None, Some(TEXTS[i % TEXTS.len()].to_string())][i % 2].clone(),
                    euid: [None, Some(0)][i % 2],
                    egid: None,
                    env: Vec::new(),
                    env_truncated: false,
                    env_unread: false,
                    at_exec: None,
                })
            })
            .collect(),
        RecordKind::Fork => vec![Event::Fork(Fork {
            child_pid: u32::MAX,
        })],
        RecordKind::Exit => vec![
            Event::Exit(Exit {
                exit_code: Some(i32::MIN),
                signal: None,
            }),
            Event::Exit(Exit {
                exit_code: None,
                signal: Some(-9),
            }),
            Event::Exit(Exit {
                exit_code: None,
                signal: None,
            }),
        ],
        RecordKind::FileOpen => byteses()
            .into_iter()
            .enumerate()
            .map(|(i, path)| {
                Event::FileOpen(FileOpen {
                    path,
                    flags: u32::MAX,
                    access: [Access::Read, Access::Write, Access::ReadWrite][i % 3],
                    create: i % 2 == 0,
                    created: i % 3 == 0,
                    truncate: i % 2 == 1,
                    dev: 0,
                    ino: u64::MAX,
                    error: [None, Some(-13)][i % 2],
                    path_truncated: i % 2 == 0,
                    repeats: [0, u64::MAX][i % 2],
                    last_ts_ns: [0, 17][i % 2],
                    device: [
                        None,
                        Some(proctor_model::DeviceNode::from_kernel(
                            proctor_model::DeviceKind::Block,
                            u32::MAX,
                        )),
                    ][i % 2],
                    setid: i % 2 == 0,
                    mapped_exec: i % 3 == 0,
                })
            })
            .collect(),
        RecordKind::PathChange => byteses()
            .into_iter()
            .enumerate()
            .map(|(i, path)| {
                Event::PathChange(proctor_model::PathChange {
                    op: ["unlink", "rename", "symlink"][i % 3].to_string(),
                    new_path: [None, Some(path.clone())][i % 2].clone(),
                    path,
                    flags: [0, u32::MAX][i % 2],
                    syscall: TEXTS[i % TEXTS.len()].to_string(),
                    path_truncated: i % 2 == 0,
                })
            })
            .collect(),
        RecordKind::Privileged => byteses()
            .into_iter()
            .enumerate()
            .map(|(i, path)| {
                Event::Privileged(proctor_model::Privileged {
                    syscall: TEXTS[i % TEXTS.len()].to_string(),
                    source: [None, Some(path.clone())][i % 2].clone(),
                    path: [Some(path), None][i % 2].clone(),
                    flags: [0, u32::MAX][i % 2],
                    error: [None, Some(-1), Some(i32::MAX)][i % 3],
                    namespaced: i % 2 == 1,
                    path_truncated: i % 2 == 0,
                    mtime_after_ns: None,
                })
            })
            .collect(),
        RecordKind::FileOpenSeen => vec![
            Event::FileOpenSeen(FileOpenSeen {
                slot: u32::MAX,
                count: u64::MAX,
                last_ts_ns: 0,
                files: byteses()
                    .into_iter()
                    .enumerate()
                    .map(|(i, path)| SeenFile {
                        kseq: [1, u64::MAX][i % 2],
                        path: [None, Some(path)][i % 2].clone(),
                        flags: u32::MAX,
                        dev: 0,
                        ino: u64::MAX,
                        count: i as u64,
                    })
                    .collect(),
            }),
            Event::FileOpenSeen(FileOpenSeen {
                slot: 0,
                count: 0,
                last_ts_ns: u64::MAX,
                files: Vec::new(),
            }),
        ],
        RecordKind::Connect => sockaddrs()
            .into_iter()
            .zip(texts())
            .map(|(dest, protocol)| {
                Event::Connect(Connect {
                    dest,
                    protocol,
                    repeats: 0,
                    last_ts_ns: 0,
                    peer_dev: 0,
                    peer_ino: 0,
                    peer_pid: 0,
                    peer_outside: false,
                    peer_exe: None,
                    netns: 0,
                })
            })
            .collect(),
        RecordKind::Inbound => sockaddrs()
            .into_iter()
            .zip(texts())
            .enumerate()
            .map(|(i, (local, call))| {
                Event::Inbound(Inbound {
                    call,
                    peer: [None, Some(local.clone())][i % 2].clone(),
                    local,
                    protocol: "tcp".into(),
                })
            })
            .collect(),
        RecordKind::Send => sockaddrs()
            .into_iter()
            .zip(texts())
            .map(|(dest, syscall)| {
                Event::Send(Send {
                    dest,
                    protocol: "udp".into(),
                    bytes: u64::MAX,
                    syscall,
                })
            })
            .collect(),
        RecordKind::Dns => sockaddrs()
            .into_iter()
            .zip(byteses())
            .map(|(server, qname)| {
                Event::Dns(Dns {
                    qname,
                    qtype: 65535,
                    qtype_name: TEXTS[1].into(),
                    server,
                    protocol: String::new(),
                    txid: 0,
                })
            })
            .collect(),
        RecordKind::DnsAnswer => sockaddrs()
            .into_iter()
            .zip(byteses())
            .map(|(server, qname)| {
                Event::DnsAnswer(DnsAnswer {
                    qname,
                    qtype: 1,
                    qtype_name: "A".into(),
                    server,
                    protocol: "udp".into(),
                    txid: 7,
                    rcode: u8::MAX,
                    addrs: texts().collect(),
                    truncated: true,
                })
            })
            .collect(),
        RecordKind::Ptrace => vec![Event::Ptrace(Ptrace {
            request: TEXTS[2].into(),
            request_code: i64::MIN,
            tracer_pid: 1,
            target_pid: u32::MAX,
            tracer_tracked: true,
            target_tracked: false,
            signal: None,
            target_comm: None,
        })],
        RecordKind::Sched => vec![Event::Sched(Sched {
            interval_ns: u64::MAX,
            switches: 0,
            voluntary: 1,
            involuntary: 2,
            run_ns: 3,
            off_ns: 4,
            run_hist: vec![u64::MAX; SCHED_BUCKETS],
            off_hist: vec![],
        })],
        RecordKind::Lost => texts()
            .map(|what| Event::Lost(Lost { what, count: 0 }))
            .collect(),
        RecordKind::Tls => byteses()
            .into_iter()
            .enumerate()
            .map(|(i, data)| {
                Event::Tls(Tls {
                    direction: [TlsDirection::Send, TlsDirection::Recv][i % 2],
                    lib: TEXTS[i % TEXTS.len()].into(),
                    conn: u64::MAX,
                    peer: sockaddrs().get(i).cloned(),
                    len: 0,
                    data,
                    truncated: true,
                    redacted: u32::MAX,
                })
            })
            .collect(),
        RecordKind::TlsSni => sockaddrs()
            .into_iter()
            .zip(byteses())
            .map(|(dest, sni)| Event::TlsSni(TlsSni { dest, sni }))
            .collect(),
        RecordKind::TlsBlind => byteses()
            .into_iter()
            .zip(texts())
            .map(|(binary, reason)| Event::TlsBlind(TlsBlind { binary, reason }))
            .collect(),
        RecordKind::IoUringSetup => vec![Event::IoUringSetup(IoUringSetup {
            fd: -1,
            sq_entries: 0,
            cq_entries: u32::MAX,
            flags: u32::MAX,
            flag_names: IoUringSetup::names(u32::MAX),
        })],
        RecordKind::LlmRequest => texts()
            .enumerate()
            .map(|(i, t)| {
                Event::LlmRequest(LlmRequest {
                    conn: 1,
                    api: t.clone(),
                    host: [None, Some(t.clone())][i % 2].clone(),
                    endpoint: t.clone(),
                    model: [Some(t.clone()), None][i % 2].clone(),
                    stream: i % 2 == 0,
                    messages: u32::MAX,
                    tools: texts().collect(),
                    bytes: 0,
                })
            })
            .collect(),
        RecordKind::LlmResponse => texts()
            .enumerate()
            .map(|(i, t)| {
                Event::LlmResponse(LlmResponse {
                    conn: u64::MAX,
                    api: t.clone(),
                    endpoint: String::new(),
                    status: 599,
                    model: [None, Some(t.clone())][i % 2].clone(),
                    streamed: true,
                    tool_calls: texts()
                        .map(|name| ToolCall {
                            arguments: name.clone(),
                            name,
                        })
                        .collect(),
                    finish_reason: [Some(t.clone()), None][i % 2].clone(),
                    text_bytes: 0,
                    bytes: 1,
                })
            })
            .collect(),
        RecordKind::Decision => {
            for i in 0..4 {
                let s = sockaddrs();
                typed(
                    put,
                    DecisionRecord {
                        decision: Decision {
                            what: DecisionWhat::Open,
                            verdict: [DecisionVerdict::Blocked, DecisionVerdict::WouldBlock][i % 2],
                            layer: [DecisionLayer::Landlock, DecisionLayer::CgroupBpf][i % 2],
                            dev: [None, Some(u64::MAX)][i % 2],
                            ino: [Some(0), None][i % 2],
                            target_pid: [None, Some(1)][i % 2],
                            dest: s.get(i).cloned(),
                            path: byteses().get(i + 1).cloned(),
                            requested: byteses().get(i).cloned(),
                            resolution: [
                                None,
                                Some(Resolution::Remembered),
                                Some(Resolution::Unresolved),
                            ][i % 3],
                        },
                        common: common(i),
                        kseq: (i % 2 == 1).then(next_kseq),
                    },
                );
            }
            vec![]
        }
        RecordKind::Approval => {
            for i in 0..3 {
                typed(
                    put,
                    ApprovalRecord {
                        request_id: [None, Some(u64::MAX), Some(0)][i],
                        action: json!({
                            "\u{e000}": [1.5, -9_223_372_036_854_775_808i64, {"z": null, "\u{1f600}": TEXTS[2]}],
                            "argv": TEXTS, "": {}, "a": [[], -0.0, 1e-7, u64::MAX],
                        }),
                        digest: TEXTS[i].into(),
                        verdict: "allow".into(),
                        reason: TEXTS[i + 1].into(),
                        decided_by: String::new(),
                        approver: [
                            None,
                            Some(Peer {
                                pid: -1,
                                uid: 0,
                                gid: 0,
                            }),
                        ][i % 2],
                        latency_ns: u64::MAX,
                        common: common(i),
                    },
                );
            }
            vec![]
        }
        RecordKind::Tamper => {
            for i in 0..3 {
                typed(
                    put,
                    TamperRecord {
                        syscall: TEXTS[i].into(),
                        target: i64::MIN,
                        signal: [None, Some(-1), Some(i64::MAX)][i],
                        verdict: [TamperVerdict::Refused, TamperVerdict::Detected][i % 2],
                        detail: TEXTS[i + 1].into(),
                        common: common(i),
                    },
                );
            }
            vec![]
        }
        RecordKind::Alert => {
            let b = byteses();
            for i in 0..8 {
                let a = alert(i);
                typed(
                    put,
                    AlertRecord {
                        alert: &a,
                        ppid: u32::MAX,
                        comm: &b[i % b.len()],
                    },
                );
            }
            vec![]
        }
        RecordKind::Incident => {
            for i in 0..2 {
                let inc = Incident {
                    id: TEXTS[i].into(),
                    agent_id: TEXTS[i + 1].into(),
                    opened_ns: u64::MAX,
                    updated_ns: 0,
                    severity: "critical".into(),
                    title: TEXTS[2].into(),
                    techniques: texts().collect(),
                    root_pid: 1,
                    root_argv: TEXTS[1].into(),
                    alert_ids: vec![],
                    timeline: vec![IncidentEvent {
                        ts_ns: 1,
                        pid: 2,
                        kind: TEXTS[1].into(),
                        severity: String::new(),
                        summary: TEXTS[2].into(),
                        alert_id: [None, Some("a".to_string())][i].clone(),
                    }],
                    timeline_dropped: u64::MAX,
                    status: [String::new(), INCIDENT_CLOSED.to_string()][i].clone(),
                    actor: alert(1).actor,
                    run_id: TEXTS[i].into(),
                    certificate: TEXTS[i + 2].into(),
                };
                typed(put, IncidentRecord { incident: &inc });
            }
            vec![]
        }
        RecordKind::BaselineEstablished => {
            for i in 0..2 {
                typed(
                    put,
                    BaselineEstablished {
                        baseline_sha256: TEXTS[i].into(),
                        summary: TEXTS[i + 1].into(),
                        common: common(i),
                    },
                );
            }
            vec![]
        }
        RecordKind::SensorStart => {
            for i in 0..2 {
                typed(
                    put,
                    SensorStart {
                        mode: [Mode::Shadow, Mode::Enforce][i],
                        command: TEXTS[i].into(),
                        argv: [Some(byteses()), None][i].clone(),
                        target_pid: [None, Some(u32::MAX)][i],
                        home: [Some(bad_bytes()), None][i].clone(),
                        cwd: [None, Some(Bytes::from(TEXTS[1]))][i].clone(),
                        version: TEXTS[2].into(),
                        host: TEXTS[i].into(),
                        capture_tls: i == 0,
                        tls_redaction: "raw".into(),
                        tls_max_bytes: [None, Some(u32::MAX)][i],
                        tls_hooked: [Some(texts().collect()), None][i].clone(),
                        common: common(i),
                    },
                );
            }
            vec![]
        }
        RecordKind::SensorStop => {
            for i in 0..3 {
                typed(
                    put,
                    SensorStop {
                        reason: [StopReason::SpawnFailed, StopReason::TreeExited][i % 2],
                        exit_code: [None, Some(-1)][i % 2],
                        signal: [Some(9), None][i % 2],
                        error: [Some(TEXTS[2].to_string()), None][i % 2].clone(),
                        counts: [
                            None,
                            Some(RunCounts {
                                records: BTreeMap::from([("exec", 2), ("", 0), ("\u{1f600}", 1)]),
                                lost: u64::MAX,
                                tls_parser: Some(TlsParserStats::default()),
                            }),
                            Some(RunCounts {
                                records: BTreeMap::new(),
                                lost: 0,
                                tls_parser: None,
                            }),
                        ][i]
                            .clone(),
                        survivors: vec![
                            Survivor {
                                pid: 1,
                                comm: bad_bytes(),
                                exe: None,
                            };
                            i
                        ],
                        common: common(i),
                    },
                );
            }
            vec![]
        }
        RecordKind::ModeChange => {
            for i in 0..3 {
                typed(
                    put,
                    ModeChange {
                        from: Mode::ALL[i],
                        to: Mode::ALL[(i + 1) % 3],
                        requested_by: requester(i),
                        common: common(i),
                    },
                );
            }
            vec![]
        }
        RecordKind::KseqGap => {
            for i in 0..2 {
                typed(
                    put,
                    KseqGap {
                        kslot: u32::MAX,
                        first: 0,
                        last: u64::MAX,
                        count: u64::MAX,
                        reason: [kseq::GapReason::Lost, kseq::GapReason::Merged][i],
                        common: common(i),
                    },
                );
            }
            vec![]
        }
        RecordKind::Containment => {
            for i in 0..2 {
                typed(
                    put,
                    Containment {
                        action: TEXTS[i].into(),
                        result: [ContainResult::Done, ContainResult::Failed][i],
                        error: [None, Some(TEXTS[2].to_string())][i].clone(),
                        requested_by: requester(i),
                        common: common(i),
                    },
                );
            }
            vec![]
        }
        RecordKind::PolicyReload => {
            for i in 0..2 {
                typed(
                    put,
                    PolicyReload {
                        origin: TEXTS[i].into(),
                        sha256: TEXTS[i + 1].into(),
                        requested_by: requester(i),
                        applied: texts().collect(),
                        not_applied: vec![],
                        common: common(i),
                    },
                );
            }
            vec![]
        }
        // The log's own records: written by `open`, `record_certificate`, checkpoints and
        // `close` below; every line of the file is checked.
        RecordKind::SegmentStart
        | RecordKind::Checkpoint
        | RecordKind::Certificate
        | RecordKind::KeyRotation => vec![],
    };
    for e in events {
        for r in observations(e) {
            add(put, r);
        }
    }
    // A record of a caller's own type, as a map with names of every kind.
    if kind == RecordKind::Exec {
        let mut m = Map::new();
        m.insert("type".into(), json!("custom\u{e000}"));
        for (i, t) in TEXTS.iter().enumerate() {
            m.insert(format!("{t}{i}"), json!({"x": t, "n": -(i as i64)}));
        }
        m.insert("ts_ns".into(), json!(-5));
        add(put, m);
        add(put, json!({"type": "x", "ts_ns": 1.5, "time": TEXTS[2]}));
    }
}

/// `hash_self` over the canonical form without it, then the canonical form with it.
fn reference_line(mut obj: Map<String, Value>, seq: u64, prev: &str) -> (Vec<u8>, String) {
    if !obj.contains_key("time") {
        if let Some(ts) = obj.get("ts_ns").and_then(Value::as_u64) {
            obj.insert("time".into(), Value::from(rfc3339(ts)));
        }
    }
    obj.insert("seq".into(), Value::from(seq));
    obj.insert("hash_prev".into(), Value::from(prev));
    let hash = sha256_hex(&canonical_json(&Value::Object(obj.clone())));
    obj.insert("hash_self".into(), Value::from(hash.as_str()));
    (canonical_json(&Value::Object(obj)), hash)
}

#[test]
fn every_record_kind_is_written_as_the_reference_path_writes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = proctor_testkit::evidence::signer();
    let opts = AuditOptions {
        checkpoint_every: 7,
        checkpoint_interval: Duration::from_secs(3600),
    };
    let mut log = AuditLog::open_with(tmp.path(), signer, "agent\u{1f600}", opts).unwrap();
    // seq -> the reference value of the caller's record written at it.
    let mut refs = BTreeMap::new();
    for &kind in RecordKind::ALL {
        samples(kind, &mut |f| {
            let seq = log.next_seq();
            refs.insert(seq, f(&mut log));
        });
    }
    let cert = Written {
        path: tmp.path().join("alerts/x\u{1f600}.cal"),
        run_id: TEXTS[2].into(),
        seq: u64::MAX,
        sha256: TEXTS[1].into(),
        format: proctor_evidence::INCIDENT_CERT_FORMAT,
    };
    log.record_certificate(&cert).unwrap();
    log.close().unwrap();

    let text = std::fs::read(tmp.path().join("audit.jsonl")).unwrap();
    let mut prev = proctor_evidence::ZERO_HASH.to_string();
    let mut types = std::collections::BTreeSet::new();
    for (i, line) in text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let seq = i as u64 + 1;
        let parsed: Map<String, Value> = serde_json::from_slice(line).unwrap();
        types.insert(parsed["type"].as_str().unwrap().to_string());
        // The caller's record as the reference path serialises it; the log's own records
        // as read back (their content is the log's; the form and the hash are checked).
        let content = match refs.remove(&seq) {
            Some(Value::Object(m)) => m,
            Some(v) => panic!("not an object: {v}"),
            None => {
                let mut m = parsed.clone();
                for f in ["seq", "hash_prev", "hash_self"] {
                    m.remove(f);
                }
                m
            }
        };
        let (want, hash) = reference_line(content, seq, &prev);
        assert_eq!(
            String::from_utf8_lossy(line),
            String::from_utf8_lossy(&want),
            "seq {seq}"
        );
        assert_eq!(line, &want[..], "seq {seq}");
        prev = hash;
    }
    assert!(refs.is_empty(), "records not found: {:?}", refs.keys());
    let written: Vec<&str> = RecordKind::ALL
        .iter()
        .map(|k| k.as_str())
        .filter(|t| !types.contains(*t))
        .collect();
    // A key rotation needs a rotated key; its lines go through the same writer.
    assert_eq!(written, ["key_rotation"], "kinds never written");
    // The chain, the canonical form and the signatures verify; the one finding is the
    // certificate file this test never wrote.
    let report = verify_paths(&[tmp.path().to_path_buf()], None);
    let text = report.render();
    let log = report
        .items
        .iter()
        .find(|i| i.path.ends_with("audit.jsonl"));
    assert_eq!(log.map(|i| i.status), Some(Status::Valid), "{text}");
    let findings: Vec<&str> = report
        .items
        .iter()
        .flat_map(|i| &i.findings)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(findings.len(), 1, "{text}");
    assert!(findings[0].contains("which is not in"), "{text}");
}
