//! Builders for synthetic record streams: an agent (python3.11, pid 100) with a steady benign
//! behaviour, learned for 10 s, and helpers to append attacks after the window.

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]

use proctor_detect::{Baseline, Engine, EngineConfig, HostFacts, Output, Policy};
use proctor_model::*;
use std::collections::HashMap;

pub const S: u64 = 1_000_000_000;
pub const AGENT: u32 = 100;
pub const BASELINE: u64 = 10 * S;
/// Device and inode of bash on the synthetic host.
pub const BASH_ID: (u64, u64) = (2049, 999);
/// The ELF build-id of that bash: its content's identity, which a copy keeps.
pub const BASH_BUILD_ID: &str = "8b1a9953c4611296a827abf8c47804d7e6a9b2c1";
/// curl's identity on the test host (see `host`).
pub const CURL_ID: (u64, u64) = (2049, 777);
/// cat's and the AWS CLI's identities on the test host (see `host`).
pub const CAT_ID: (u64, u64) = (2049, 501);
pub const AWS_ID: (u64, u64) = (2049, 502);
/// The system bus's socket on the test host (see `host`).
pub const BUS_ID: (u64, u64) = (24, 1234);
pub const CURL_BUILD_ID: &str = "c0a1c0a1c0a1c0a1c0a1c0a1c0a1c0a1c0a1c0a1";

pub fn rec(ts: u64, pid: u32, ppid: u32, event: Event) -> Record {
    Record {
        event,
        ts_ns: ts,
        agent_id: "demo-agent".into(),
        pid,
        ppid,
        comm: Bytes::from("python3"),
        exec_id: format!("{pid}-1-1"),
        identity: None,
        kseq: None,
    }
}

pub fn exec(ts: u64, pid: u32, ppid: u32, file: &str, argv: &[&str], id: (u64, u64)) -> Record {
    rec(
        ts,
        pid,
        ppid,
        Event::Exec(Exec {
            filename: Bytes::from(file),
            argv: argv.iter().map(|a| Bytes::from(*a)).collect(),
            argv_truncated: false,
            dev: id.0,
            ino: id.1,
            fileless: false,
            build_id: None,
            euid: None,
            egid: None,
            env: Vec::new(),
            env_truncated: false,
            env_unread: false,
            at_exec: None,
        }),
    )
}

pub fn fork(ts: u64, pid: u32, child: u32) -> Record {
    rec(ts, pid, 1, Event::Fork(Fork { child_pid: child }))
}

pub fn exit(ts: u64, pid: u32, ppid: u32) -> Record {
    rec(
        ts,
        pid,
        ppid,
        Event::Exit(Exit {
            exit_code: Some(0),
            signal: None,
        }),
    )
}

pub fn open(ts: u64, pid: u32, path: &str, access: Access, create: bool, id: (u64, u64)) -> Record {
    rec(
        ts,
        pid,
        1,
        Event::FileOpen(FileOpen {
            path: Bytes::from(path),
            flags: 0,
            access,
            create,
            created: create,
            truncate: false,
            dev: id.0,
            ino: id.1,
            error: None,
            path_truncated: false,
            repeats: 0,
            last_ts_ns: 0,
            device: None,
            setid: false,
            mapped_exec: false,
        }),
    )
}

/// `path` mapped executable by `pid` (a library loaded: LD_PRELOAD, dlopen).
pub fn mapped(ts: u64, pid: u32, path: &str, id: (u64, u64)) -> Record {
    let mut r = open(ts, pid, path, Access::Read, false, id);
    if let Event::FileOpen(f) = &mut r.event {
        f.mapped_exec = true;
    }
    r
}

pub fn refused(ts: u64, pid: u32, path: &str) -> Record {
    rec(
        ts,
        pid,
        1,
        Event::FileOpen(FileOpen {
            path: Bytes::from(path),
            flags: 0,
            access: Access::Read,
            create: false,
            created: false,
            truncate: false,
            dev: 0,
            ino: 0,
            error: Some(13),
            path_truncated: false,
            repeats: 0,
            last_ts_ns: 0,
            device: None,
            setid: false,
            mapped_exec: false,
        }),
    )
}

pub fn inet(addr: &str, port: u16) -> SockAddr {
    SockAddr {
        family: if addr.contains(':') {
            Family::Inet6
        } else {
            Family::Inet
        },
        addr: Some(addr.into()),
        port: Some(port),
        path: None,
    }
}

pub fn connect(ts: u64, pid: u32, addr: &str, port: u16) -> Record {
    rec(
        ts,
        pid,
        1,
        Event::Connect(Connect {
            dest: inet(addr, port),
            protocol: "tcp".into(),
            repeats: 0,
            last_ts_ns: 0,
            peer_dev: 0,
            peer_ino: 0,
            peer_pid: 0,
            peer_outside: false,
            peer_exe: None,
            netns: 0,
        }),
    )
}

pub fn dns(ts: u64, pid: u32, qname: &str, server: &str) -> Record {
    rec(
        ts,
        pid,
        1,
        Event::Dns(Dns {
            qname: Bytes::from(qname),
            qtype: 1,
            qtype_name: "A".into(),
            server: inet(server, 53),
            protocol: "udp".into(),
            txid: 7,
        }),
    )
}

/// The answer to [`dns`]'s query (txid 7) from `server`, with `addrs`.
pub fn dns_answer(ts: u64, pid: u32, qname: &str, server: &str, addrs: &[&str]) -> Record {
    rec(
        ts,
        pid,
        1,
        Event::DnsAnswer(proctor_model::DnsAnswer {
            qname: Bytes::from(qname),
            qtype: 1,
            qtype_name: "A".into(),
            server: inet(server, 53),
            protocol: "udp".into(),
            txid: 7,
            rcode: 0,
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
            truncated: false,
        }),
    )
}

pub fn ptrace(ts: u64, pid: u32, request: &str, target: u32) -> Record {
    rec(
        ts,
        pid,
        1,
        Event::Ptrace(Ptrace {
            request: request.into(),
            request_code: 16,
            tracer_pid: pid,
            target_pid: target,
            tracer_tracked: true,
            target_tracked: true,
            signal: None,
            target_comm: None,
        }),
    )
}

/// A sched summary whose histograms put `weight` in each (bucket, count) pair.
pub fn sched(ts: u64, run: &[(usize, u64)], off: &[(usize, u64)]) -> Record {
    let mut rh = vec![0; SCHED_BUCKETS];
    let mut oh = vec![0; SCHED_BUCKETS];
    for &(b, c) in run {
        rh[b] += c;
    }
    for &(b, c) in off {
        oh[b] += c;
    }
    let switches = rh.iter().sum();
    rec(
        ts,
        AGENT,
        1,
        Event::Sched(Sched {
            interval_ns: S,
            switches,
            voluntary: switches,
            involuntary: 0,
            run_ns: 0,
            off_ns: 0,
            run_hist: rh,
            off_hist: oh,
        }),
    )
}

/// Sleepy agent: short on-CPU slices (~16-64 us), long off-CPU waits (~16-64 ms). `wobble`
/// varies the counts a little so the baseline has some spread.
pub fn sleepy(ts: u64, wobble: u64) -> Record {
    sched(
        ts,
        &[(14, 40 + wobble), (15, 60), (16, 20 + wobble)],
        &[(24, 50), (25, 50 + wobble), (26, 20)],
    )
}

/// Busy/yield threads: long slices and short waits.
pub fn busy(ts: u64) -> Record {
    sched(
        ts,
        &[(22, 200), (23, 300), (24, 100)],
        &[(10, 300), (11, 200), (12, 100)],
    )
}

pub fn host() -> HostFacts {
    HostFacts {
        interpreters: HashMap::from([(BASH_ID, "bash".to_string())]),
        interpreter_ids: HashMap::from([(BASH_BUILD_ID.to_string(), "bash".to_string())]),
        resolvers: vec!["127.0.0.53".parse().unwrap()],
        risky: HashMap::from([(CURL_ID, "curl".to_string())]),
        risky_ids: HashMap::from([(CURL_BUILD_ID.to_string(), "curl".to_string())]),
        system_commands: ["sudo", "git", "ssh", "pip", "ls"]
            .map(|n| n.as_bytes().to_vec())
            .into(),
        programs: HashMap::from([
            (CAT_ID, vec![b"cat".to_vec()]),
            (AWS_ID, vec![b"aws".to_vec()]),
        ]),
        service_sockets: HashMap::from([(BUS_ID, b"/run/dbus/system_bus_socket".to_vec())]),
    }
}

pub fn engine_with(policy: Policy) -> Engine {
    engine_config(policy, None)
}

/// An engine judging against `profile` from its first record (no learning window).
pub fn engine_judging(profile: Baseline) -> Engine {
    engine_config(Policy::builtin(), Some(profile))
}

fn engine_config(policy: Policy, profile: Option<Baseline>) -> Engine {
    Engine::with_host(
        policy,
        EngineConfig {
            baseline_ns: BASELINE,
            home: Some("/home/ann".into()),
            cwd: Some("/work/proj".into()),
            profile,
        },
        host(),
    )
}

pub fn engine() -> Engine {
    engine_with(Policy::builtin())
}

/// The agent's normal life from `from` to `to` (ns): every 500 ms a request to its model API
/// on 127.0.0.1:18080 and a read in its cwd; every second a sched summary and a DNS query;
/// every 2 s it runs `git status`.
pub fn benign(from: u64, to: u64, next_pid: &mut u32) -> Vec<Record> {
    let mut v = Vec::new();
    let mut t = from;
    let mut i = 0u64;
    while t < to {
        v.push(connect(t, AGENT, "127.0.0.1", 18080));
        v.push(open(
            t + 1000,
            AGENT,
            "/work/proj/src/main.py",
            Access::Read,
            false,
            (5, 10),
        ));
        if i.is_multiple_of(2) {
            v.push(sleepy(t + 2000, i % 5));
            v.push(dns(t + 3000, AGENT, "api.example.com", "127.0.0.53"));
        }
        if i.is_multiple_of(4) {
            let pid = *next_pid;
            *next_pid += 1;
            v.push(fork(t + 4000, AGENT, pid));
            v.push(exec(
                t + 5000,
                pid,
                AGENT,
                "/usr/bin/git",
                &["git", "status"],
                (5, 20),
            ));
            v.push(exit(t + 6000, pid, AGENT));
        }
        t += S / 2;
        i += 1;
    }
    v
}

/// An engine that has seen the agent's root exec at 0 and is still learning, with what that
/// exec gave.
pub fn learning() -> (Engine, Vec<Output>) {
    let mut e = engine();
    let outs = e.observe(&exec(
        0,
        AGENT,
        1,
        "/usr/bin/python3.11",
        &["python3"],
        (5, 1),
    ));
    (e, outs)
}

/// Root exec at 0, then the benign life through the baseline (10 s). Returns the engine after
/// the window closed (the record at 10 s closes it) and the outputs seen.
pub fn learned() -> (Engine, Vec<Output>, u32) {
    learned_with(Policy::builtin())
}

pub fn learned_with(policy: Policy) -> (Engine, Vec<Output>, u32) {
    let mut e = engine_with(policy);
    let mut pid = 200;
    let mut outs = e.observe(&exec(
        0,
        AGENT,
        1,
        "/usr/bin/python3.11",
        &["python3", "agent.py"],
        (5, 1),
    ));
    for r in benign(1000, BASELINE + S, &mut pid) {
        outs.extend(e.observe(&r));
    }
    assert!(!e.is_learning(), "the window closed");
    (e, outs, pid)
}

pub fn alerts(outs: &[Output]) -> Vec<&Alert> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Alert(a) => Some(a),
            _ => None,
        })
        .collect()
}

pub fn kinds(outs: &[Output]) -> Vec<String> {
    alerts(outs).iter().map(|a| a.kind.clone()).collect()
}

pub fn feed(e: &mut Engine, recs: &[Record]) -> Vec<Output> {
    recs.iter().flat_map(|r| e.observe(r)).collect()
}

/// A captured request to the model, on connection `conn`.
pub fn llm_request(ts: u64, conn: u64) -> proctor_model::Record {
    rec(
        ts,
        AGENT,
        1,
        proctor_model::Event::LlmRequest(proctor_model::LlmRequest {
            conn,
            api: "anthropic-messages".into(),
            host: Some("api.anthropic.com".into()),
            endpoint: "/v1/messages".into(),
            model: None,
            stream: true,
            messages: 3,
            tools: vec!["Bash".into()],
            bytes: 1000,
        }),
    )
}

/// A captured model response asking for one Bash tool call running `command`.
pub fn llm_tool_call(ts: u64, command: &str) -> proctor_model::Record {
    rec(
        ts,
        AGENT,
        1,
        proctor_model::Event::LlmResponse(proctor_model::LlmResponse {
            conn: 1,
            api: "anthropic-messages".into(),
            endpoint: "/v1/messages".into(),
            status: 200,
            model: None,
            streamed: true,
            tool_calls: vec![proctor_model::ToolCall {
                name: "Bash".into(),
                arguments: serde_json::json!({ "command": command }).to_string(),
            }],
            finish_reason: None,
            text_bytes: 0,
            bytes: 100,
        }),
    )
}

/// A `path_change` by `pid`: `op` on `path` (and `new_path`), `flags` as renameat2's.
pub fn path_change(
    ts: u64,
    pid: u32,
    op: &str,
    path: &str,
    new: Option<&str>,
    flags: u32,
) -> Record {
    rec(
        ts,
        pid,
        1,
        Event::PathChange(PathChange {
            op: op.into(),
            path: Bytes::from(path),
            new_path: new.map(Bytes::from),
            flags,
            syscall: "renameat2".into(),
            path_truncated: false,
        }),
    )
}

/// Claude Code (pid AGENT) and its Bash tool's shell (pid 300) running `cmd`.
pub fn claude_tool_shell(cmd: &str) -> Vec<Record> {
    vec![
        exec(
            S,
            AGENT,
            1,
            "/usr/bin/claude",
            &["claude", "-p", "x"],
            (5, 3),
        ),
        fork(S + 1, AGENT, 300),
        exec(
            S + 2,
            300,
            AGENT,
            "/usr/bin/bash",
            &["bash", "-c", cmd],
            BASH_ID,
        ),
    ]
}

/// [`claude_tool_shell`], then that shell's child `pid` running `file` with `argv`.
pub fn claude_tool_child(
    cmd: &str,
    pid: u32,
    file: &str,
    argv: &[&str],
    id: (u64, u64),
) -> Vec<Record> {
    let mut recs = claude_tool_shell(cmd);
    recs.extend([fork(S + 3, 300, pid), exec(S + 4, pid, 300, file, argv, id)]);
    recs
}
