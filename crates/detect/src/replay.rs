//! Reading a recorded `audit.jsonl` for replay: one JSON object per line, observation records
//! decoded into [`Record`]s, everything else (sensor_start, alert, checkpoint, ...) passed on as
//! "other", and malformed lines reported with their line number instead of stopping the replay.

use proctor_model::{Bytes, Event, Identity, Record, RecordKind};
use serde::de::value::MapDeserializer;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::io::BufRead;
use std::sync::Arc;

mod fast;

/// One line of an audit log.
#[derive(Debug)]
pub enum Line {
    /// Shared from the start: detection keeps most records in its ring of recent context
    /// ([`crate::Engine::observe_shared`]), so the decoded record is allocated once, where the
    /// ring will hold it (a box moved into an `Arc` later cost an allocation, a free and two
    /// copies of the record per line).
    Record(Arc<Record>),
    /// A valid JSON object of another type (its `type`, and the object).
    Other {
        ty: String,
        value: serde_json::Value,
    },
    /// Not JSON, not an object, or an observation record that does not decode.
    Malformed {
        error: String,
    },
    Blank,
}

/// Iterates over `(line_number, Line)`; I/O errors end the iteration with `Err`.
pub struct AuditReader<R> {
    inner: R,
    line: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> AuditReader<R> {
    pub fn new(inner: R) -> Self {
        AuditReader {
            inner,
            line: 0,
            buf: Vec::new(),
        }
    }
}

/// Decode one line.
///
/// One pass over the line splits it: the type tag and the common fields are decoded on the way,
/// the chain fields skipped, and the event's own fields kept as borrowed raw JSON; then the event
/// is decoded from those alone. Going through `serde_json::Value` and serde's buffering of
/// internally tagged, flattened enums cost two thirds of replay's time; the result is the same
/// `Record` (a test checks it against the derived decoder on every recorded fixture).
///
/// Before that, the typed fast decode reads the common flat observation kinds in one scan
/// (`fast`); it takes only lines it decodes exactly as this general path would.
pub fn parse_line(bytes: &[u8]) -> Line {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Line::Blank;
    }
    if let Some(r) = fast::decode(trimmed) {
        return Line::Record(Arc::new(r));
    }
    parse_general(trimmed)
}

/// The general decoder: any line, any record type.
fn parse_general(trimmed: &[u8]) -> Line {
    let split = match serde_json::from_slice::<Split<'_>>(trimmed) {
        Ok(s) => s,
        Err(e) => return classify_slow(trimmed, e),
    };
    let Some(ty) = split.ty.clone() else {
        return Line::Malformed {
            error: "not an object with a string `type`".into(),
        };
    };
    // Every other type (decisions, alerts, start/stop, the chain's own records, and types a
    // newer proctor writes) is passed on whole.
    let kind = match RecordKind::from_tag(&ty) {
        Some(k) if k.is_observation() => k,
        _ => {
            return match serde_json::from_slice::<serde_json::Value>(trimmed) {
                Ok(value) => Line::Other {
                    ty: ty.into_owned(),
                    value,
                },
                Err(e) => Line::Malformed {
                    error: e.to_string(),
                },
            }
        }
    };
    match split.into_record(kind) {
        Ok(r) => Line::Record(Arc::new(r)),
        Err(e) => Line::Malformed {
            error: format!("{ty} record: {e}"),
        },
    }
}

/// A line split in one pass: tag, common fields, and the rest as raw JSON.
#[derive(Default)]
struct Split<'a> {
    ty: Option<Cow<'a, str>>,
    ts_ns: Option<u64>,
    agent_id: Option<String>,
    pid: Option<u32>,
    ppid: Option<u32>,
    comm: Option<Bytes>,
    exec_id: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    loginuid: Option<u32>,
    cgroup_id: Option<u64>,
    kslot: Option<u32>,
    kseq: Option<u64>,
    container_runtime: Option<String>,
    container_id: Option<String>,
    pod_uid: Option<String>,
    rest: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'de> Deserialize<'de> for Split<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Split<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Split<'de>, A::Error> {
                let mut s = Split::default();
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    match k.as_ref() {
                        // A non-string `type` makes the line malformed, as in the derived decoder.
                        "type" => s.ty = Some(m.next_value::<Cow<'de, str>>()?),
                        "ts_ns" => s.ts_ns = Some(m.next_value()?),
                        "agent_id" => s.agent_id = Some(m.next_value()?),
                        "pid" => s.pid = Some(m.next_value()?),
                        "ppid" => s.ppid = Some(m.next_value()?),
                        "comm" => s.comm = Some(m.next_value()?),
                        "exec_id" => s.exec_id = Some(m.next_value()?),
                        "uid" => s.uid = Some(m.next_value()?),
                        "gid" => s.gid = Some(m.next_value()?),
                        "loginuid" => s.loginuid = Some(m.next_value()?),
                        "cgroup_id" => s.cgroup_id = Some(m.next_value()?),
                        "container_runtime" => s.container_runtime = Some(m.next_value()?),
                        "container_id" => s.container_id = Some(m.next_value()?),
                        "pod_uid" => s.pod_uid = Some(m.next_value()?),
                        "kslot" => s.kslot = Some(m.next_value()?),
                        "kseq" => s.kseq = Some(m.next_value()?),
                        "seq" | "hash_prev" | "hash_self" | "time" => {
                            m.next_value::<IgnoredAny>()?;
                        }
                        _ => {
                            let v = m.next_value::<&'de RawValue>()?;
                            s.rest.push((k, v));
                        }
                    }
                }
                Ok(s)
            }
        }
        d.deserialize_map(V)
    }
}

impl Split<'_> {
    fn into_record(self, kind: RecordKind) -> Result<Record, serde_json::Error> {
        use serde::de::Error as _;
        let missing = |f: &'static str| serde_json::Error::missing_field(f);
        let rest = self.rest;
        fn de<'a, T: Deserialize<'a>>(
            rest: Vec<(Cow<'a, str>, &'a RawValue)>,
        ) -> Result<T, serde_json::Error> {
            T::deserialize(MapDeserializer::new(rest.into_iter()))
        }
        // Exhaustive: a new record kind does not compile until replay says how to read it.
        let event = match kind {
            RecordKind::Exec => Event::Exec(de(rest)?),
            RecordKind::Fork => Event::Fork(de(rest)?),
            RecordKind::Exit => Event::Exit(de(rest)?),
            RecordKind::FileOpen => Event::FileOpen(de(rest)?),
            RecordKind::FileOpenSeen => Event::FileOpenSeen(de(rest)?),
            RecordKind::PathChange => Event::PathChange(de(rest)?),
            RecordKind::Privileged => Event::Privileged(de(rest)?),
            RecordKind::Connect => Event::Connect(de(rest)?),
            RecordKind::Inbound => Event::Inbound(de(rest)?),
            RecordKind::Send => Event::Send(de(rest)?),
            RecordKind::Dns => Event::Dns(de(rest)?),
            RecordKind::DnsAnswer => Event::DnsAnswer(de(rest)?),
            RecordKind::Ptrace => Event::Ptrace(de(rest)?),
            RecordKind::Sched => Event::Sched(de(rest)?),
            RecordKind::Lost => Event::Lost(de(rest)?),
            RecordKind::Tls => Event::Tls(de(rest)?),
            RecordKind::TlsSni => Event::TlsSni(de(rest)?),
            RecordKind::TlsBlind => Event::TlsBlind(de(rest)?),
            RecordKind::IoUringSetup => Event::IoUringSetup(de(rest)?),
            RecordKind::LlmRequest => Event::LlmRequest(de(rest)?),
            RecordKind::LlmResponse => Event::LlmResponse(de(rest)?),
            RecordKind::Decision
            | RecordKind::Approval
            | RecordKind::Tamper
            | RecordKind::Alert
            | RecordKind::Incident
            | RecordKind::BaselineEstablished
            | RecordKind::SensorStart
            | RecordKind::SensorStop
            | RecordKind::ModeChange
            | RecordKind::KseqGap
            | RecordKind::Containment
            | RecordKind::PolicyReload
            | RecordKind::SegmentStart
            | RecordKind::Checkpoint
            | RecordKind::Certificate
            | RecordKind::KeyRotation => {
                return Err(serde_json::Error::custom(format!(
                    "{} is not an observation",
                    kind.as_str()
                )))
            }
        };
        Ok(Record {
            event,
            ts_ns: self.ts_ns.ok_or_else(|| missing("ts_ns"))?,
            agent_id: self.agent_id.ok_or_else(|| missing("agent_id"))?,
            pid: self.pid.ok_or_else(|| missing("pid"))?,
            ppid: self.ppid.ok_or_else(|| missing("ppid"))?,
            comm: self.comm.ok_or_else(|| missing("comm"))?,
            exec_id: self.exec_id.ok_or_else(|| missing("exec_id"))?,
            // As the derived decoder: all four members, or no identity.
            identity: match (self.uid, self.gid, self.loginuid, self.cgroup_id) {
                (Some(uid), Some(gid), Some(loginuid), Some(cgroup_id)) => Some(Identity {
                    uid,
                    gid,
                    loginuid,
                    cgroup_id,
                    // As the derived decoder: a malformed container is no container.
                    container: match (&self.container_runtime, &self.container_id) {
                        (Some(r), Some(id)) => {
                            proctor_model::Container::from_fields(r, id, self.pod_uid.as_deref())
                        }
                        _ => None,
                    },
                }),
                _ => None,
            },
            // Kept so a replayed alert's records are the live ones (`proctor verify` checks the
            // numbers; detection does not look at them).
            kseq: match (self.kslot, self.kseq) {
                (Some(kslot), Some(kseq)) => Some(proctor_model::Kseq { kslot, kseq }),
                _ => None,
            },
        })
    }
}

/// A line whose tag could not be read: say why as precisely as the full parse can.
fn classify_slow(trimmed: &[u8], tag_error: serde_json::Error) -> Line {
    match serde_json::from_slice::<serde_json::Value>(trimmed) {
        Err(e) => Line::Malformed {
            error: e.to_string(),
        },
        Ok(v) if !v.get("type").is_some_and(|t| t.is_string()) => Line::Malformed {
            error: "not an object with a string `type`".into(),
        },
        Ok(_) => Line::Malformed {
            error: tag_error.to_string(),
        },
    }
}

impl<R: BufRead> Iterator for AuditReader<R> {
    type Item = std::io::Result<(usize, Line)>;

    fn next(&mut self) -> Option<Self::Item> {
        // A line whole in the reader's buffer is decoded where it is; only a line that crosses
        // the buffer's end is copied out (`read_until` copied every line: ~3% of replay).
        let avail = loop {
            match self.inner.fill_buf() {
                Ok(b) => break b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(e)),
            }
        };
        if avail.is_empty() {
            return None;
        }
        if let Some(nl) = memchr::memchr(b'\n', avail) {
            let line = parse_line(&avail[..=nl]);
            self.inner.consume(nl + 1);
            self.line += 1;
            return Some(Ok((self.line, line)));
        }
        self.buf.clear();
        match self.inner.read_until(b'\n', &mut self.buf) {
            Ok(0) => None,
            Ok(_) => {
                self.line += 1;
                Some(Ok((self.line, parse_line(&self.buf))))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified_and_numbered() {
        let text = b"{\"type\":\"fork\",\"child_pid\":2,\"ts_ns\":1,\"agent_id\":\"a\",\"pid\":1,\"ppid\":0,\"comm\":\"x\",\"exec_id\":\"e\"}\n\
\n\
{\"type\":\"sensor_start\",\"mode\":\"audit\"}\n\
not json\n\
{\"type\":\"exec\",\"ts_ns\":1}\n\
\xff\xfe\n";
        let lines: Vec<(usize, Line)> = AuditReader::new(&text[..]).map(|l| l.unwrap()).collect();
        assert_eq!(lines.len(), 6);
        assert!(matches!(lines[0], (1, Line::Record(_))), "{:?}", lines[0]);
        assert!(matches!(lines[1], (2, Line::Blank)));
        assert!(matches!(&lines[2], (3, Line::Other { ty, .. }) if ty == "sensor_start"));
        assert!(matches!(lines[3], (4, Line::Malformed { .. })));
        match &lines[4] {
            (5, Line::Malformed { error }) => assert!(error.starts_with("exec record"), "{error}"),
            other => panic!("line 5 should be a malformed exec: {other:?}"),
        }
        assert!(matches!(lines[5], (6, Line::Malformed { .. })));
    }

    /// Lines decoded in the reader's buffer and lines that cross its end (copied out) come out
    /// the same, numbered the same, the last one without its newline too.
    #[test]
    fn lines_across_the_buffer_end_read_as_lines_within_it() {
        let mut text = Vec::new();
        for i in 0..40 {
            text.extend_from_slice(format!("{{\"type\":\"fork\",\"child_pid\":{i},\"ts_ns\":{i},\"agent_id\":\"a\",\"pid\":1,\"ppid\":0,\"comm\":\"x\",\"exec_id\":\"e\"}}\n").as_bytes());
            text.extend_from_slice([&b""[..], b"\n", b"not json\n"][i % 3]);
        }
        text.pop();
        let read = |cap: usize| -> Vec<String> {
            AuditReader::new(std::io::BufReader::with_capacity(cap, &text[..]))
                .map(|l| format!("{:?}", l.unwrap()))
                .collect()
        };
        let whole = read(1 << 20);
        assert_eq!(whole.len(), 40 + 13 + 13);
        assert!(
            whole.last().unwrap().contains("child_pid: 39"),
            "{:?}",
            whole.last()
        );
        for cap in [1, 7, 64, 100, 131] {
            assert_eq!(read(cap), whole, "buffer of {cap} bytes");
        }
    }

    #[test]
    fn a_counted_repeat_keeps_its_count_through_replay() {
        let line = br#"{"type":"file_open","path":"/a","flags":0,"access":"read","create":false,"truncate":false,"dev":1,"ino":2,"repeats":41,"last_ts_ns":9,"ts_ns":1,"agent_id":"a","pid":1,"ppid":0,"comm":"x","exec_id":"e"}"#;
        let Line::Record(r) = parse_line(line) else {
            panic!("not a record")
        };
        let Event::FileOpen(f) = &r.event else {
            panic!("not an open: {:?}", r.event)
        };
        assert_eq!((f.repeats, f.last_ts_ns), (41, 9));
        let line = br#"{"type":"connect","family":"inet","addr":"127.0.0.1","port":8080,"protocol":"tcp","repeats":16,"last_ts_ns":9,"ts_ns":1,"agent_id":"a","pid":1,"ppid":0,"comm":"x","exec_id":"e"}"#;
        let Line::Record(r) = parse_line(line) else {
            panic!("not a record")
        };
        let Event::Connect(c) = &r.event else {
            panic!("not a connect: {:?}", r.event)
        };
        assert_eq!((c.repeats, c.last_ts_ns, c.count()), (16, 9, 16));
    }

    /// Every `.jsonl` file under tests/data.
    fn fixture_logs() -> Vec<std::path::PathBuf> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let mut files = vec![];
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "jsonl") {
                    files.push(p);
                }
            }
        }
        files.sort();
        files
    }

    /// The direct decoder gives exactly what the derived `Record` decoder gives, on every line
    /// of every recorded fixture, and fails where it fails.
    #[test]
    fn direct_decoding_agrees_with_the_derived_decoder() {
        let files = fixture_logs();
        let mut compared = 0;
        for f in &files {
            for line in std::fs::read(f).unwrap().split(|&b| b == b'\n') {
                let derived = serde_json::from_slice::<Record>(line.trim_ascii());
                match (parse_line(line), derived) {
                    (Line::Record(r), Ok(d)) => {
                        assert_eq!(*r, d, "{}", String::from_utf8_lossy(line));
                        compared += 1;
                    }
                    (Line::Record(r), Err(e)) => panic!("direct accepted {r:?}, derived: {e}"),
                    (Line::Malformed { .. }, Ok(d)) if d.event != Event::Other => {
                        panic!("direct refused what derived accepts: {d:?}")
                    }
                    _ => {}
                }
            }
        }
        assert!(compared > 1000, "only {compared} records compared");
    }

    #[test]
    fn container_members_decode_as_the_derived_decoder_does() {
        let id = "ab".repeat(32);
        let ok = format!(
            r#"{{"type":"fork","child_pid":2,"ts_ns":1,"agent_id":"a","pid":1,"ppid":0,"comm":"x","exec_id":"e","uid":0,"gid":0,"loginuid":1,"cgroup_id":7,"container_runtime":"podman","container_id":"{id}"}}"#
        );
        // A malformed id is no container, in both decoders, and the rest still decodes.
        let bad = ok.replace(&id, "zz");
        for line in [ok.as_bytes(), bad.as_bytes()] {
            let derived: Record = serde_json::from_slice(line).unwrap();
            let Line::Record(r) = parse_line(line) else {
                panic!("not a record")
            };
            assert_eq!(*r, derived);
            assert!(fast_agrees(line));
        }
        let Line::Record(r) = parse_line(ok.as_bytes()) else {
            panic!()
        };
        let c = r.identity.unwrap().container.expect("a container");
        assert_eq!((c.runtime.as_str(), c.id()), ("podman", id));
    }

    /// `fast::decode` either declines a line or gives exactly the general decoder's record.
    fn fast_agrees(line: &[u8]) -> bool {
        match fast::decode(line.trim_ascii()) {
            None => true,
            Some(r) => matches!(parse_general(line.trim_ascii()), Line::Record(g) if *g == r),
        }
    }

    #[test]
    fn the_fast_decode_agrees_with_the_general_one_on_every_fixture_line() {
        let mut taken = 0;
        for f in fixture_logs() {
            for line in std::fs::read(&f).unwrap().split(|&b| b == b'\n') {
                assert!(
                    fast_agrees(line),
                    "{}: {}",
                    f.display(),
                    String::from_utf8_lossy(line)
                );
                taken += usize::from(fast::decode(line.trim_ascii()).is_some());
            }
        }
        assert!(taken > 1000, "the fast decode took only {taken} lines");
    }

    /// Every one-byte change, insertion and deletion of a line of each fast kind: the fast
    /// decode never gives a record the general decoder would not give.
    #[test]
    fn the_fast_decode_takes_no_edited_line_the_general_one_reads_otherwise() {
        let lines = [
            r#"{"access":"write","agent_id":"a","cgroup_id":7,"comm":"py","create":true,"dev":65024,"error":-13,"exec_id":"9-1-2","flags":577,"gid":0,"hash_prev":"00","hash_self":"11","ino":604,"loginuid":4294967295,"path":"/etc/h\u00e9","path_truncated":true,"pid":22063,"ppid":1,"seq":5,"truncate":false,"ts_ns":1796245771541539934,"type":"file_open","uid":1000}"#,
            r#"{"access":"read","agent_id":"a","comm":"p","create":false,"dev":1,"exec_id":"e","flags":0,"ino":2,"path":"/é","pid":3,"ppid":2,"truncate":false,"ts_ns":9,"type":"file_open"}"#,
            r#"{"addr":"127.0.0.1","agent_id":"a","comm":"c","exec_id":"e","family":"inet","pid":2,"port":58917,"ppid":1,"protocol":"tcp","ts_ns":5,"type":"connect"}"#,
            r#"{"agent_id":"a","comm":"c","exec_id":"e","family":"unix","path":"/run/s","pid":2,"ppid":1,"protocol":"unix-stream","ts_ns":5,"type":"connect"}"#,
            r#"{"addr":"127.0.0.1","agent_id":"a","bytes":34,"cgroup_id":8,"comm":"py","exec_id":"e","family":"inet","gid":0,"loginuid":4294967295,"pid":2,"port":42902,"ppid":1,"protocol":"udp","syscall":"sendto","ts_ns":5,"type":"send","uid":0}"#,
            r#"{"agent_id":"a","bytes":0,"comm":"c","exec_id":"e","family":"unix","path":"/run/s","pid":2,"ppid":1,"protocol":"unix-dgram","syscall":"sendmsg","ts_ns":5,"type":"send"}"#,
            r#"{"agent_id":"a","child_pid":9,"comm":"c","exec_id":"e","pid":2,"ppid":1,"ts_ns":5,"type":"fork"}"#,
            r#"{"agent_id":"a","comm":"c","exec_id":"e","exit_code":0,"pid":2,"ppid":1,"signal":9,"ts_ns":5,"type":"exit"}"#,
            r#"{"agent_id":"a","cgroup_id":6,"comm":"git","exec_id":"e","flags":2,"gid":0,"kseq":340,"kslot":1,"loginuid":1,"new_path":"/t/.git/config","op":"rename","path":"/t/.git/config.lock","path_truncated":true,"pid":2,"ppid":1,"syscall":"renameat2","ts_ns":5,"type":"path_change","uid":0}"#,
            r#"{"agent_id":"a","comm":"c","exec_id":"e","op":"unlink","path":"/tmp/é","pid":2,"ppid":1,"syscall":"unlink","ts_ns":5,"type":"path_change"}"#,
            r#"{"agent_id":"a","comm":"bash","count":3,"exec_id":"e","files":[{"count":2,"dev":65024,"flags":524288,"ino":409785,"kseq":2,"path":"/etc/ld.so.cache"},{"count":1,"dev":1,"flags":0,"ino":3,"kseq":4}],"last_ts_ns":9,"pid":2,"ppid":1,"slot":1,"ts_ns":5,"type":"file_open_seen"}"#,
            r#"{"agent_id":"python3","argv":["/usr/bin/env","bash","é","--count","400"],"argv_truncated":false,"build_id":"2a20aed1","cgroup_id":6,"comm":"pyenv","dev":65024,"exec_id":"16139-3-7","filename":"/usr/bin/env","gid":0,"ino":247153,"kseq":22,"kslot":1,"loginuid":4294967295,"pid":16139,"ppid":16131,"seq":25,"ts_ns":1796596965740665646,"type":"exec","uid":0}"#,
            r#"{"agent_id":"a","argv":[],"argv_truncated":true,"comm":"x","dev":1,"egid":6,"env":["LD_PRELOAD=/tmp/x.so","BASH_ENV=/e"],"env_truncated":true,"env_unread":true,"euid":0,"exec_id":"e","filename":"memfd:x","fileless":true,"ino":2,"pid":2,"ppid":1,"ts_ns":5,"type":"exec"}"#,
            r#"{"access":"read","agent_id":"a","comm":"p","create":false,"dev":1,"exec_id":"e","flags":0,"ino":2,"last_ts_ns":9,"path":"/a","pid":3,"ppid":2,"repeats":41,"truncate":false,"ts_ns":1,"type":"file_open"}"#,
            r#"{"addr":"127.0.0.1","agent_id":"a","comm":"c","exec_id":"e","family":"inet","last_ts_ns":9,"pid":2,"port":8080,"ppid":1,"protocol":"tcp","repeats":16,"ts_ns":5,"type":"connect"}"#,
            r#"{"agent_id":"a","comm":"c","count":0,"exec_id":"e","files":[],"last_ts_ns":9,"pid":2,"ppid":1,"ts_ns":5,"type":"file_open_seen"}"#,
        ];
        // Connects whose listener was named (a unix socket's peer, a loopback TCP listener's
        // holder): members the fast decode does not know, so the general one reads them (it
        // once dropped them, and replay judged a connect without its listener).
        let peers = [
            r#"{"addr":"127.0.0.1","agent_id":"a","comm":"c","exec_id":"e","family":"inet","peer_exe":"/usr/lib/chromium/chromium","peer_outside":true,"peer_pid":77,"pid":2,"port":9222,"ppid":1,"protocol":"tcp","ts_ns":5,"type":"connect"}"#,
            r#"{"agent_id":"a","comm":"c","exec_id":"e","family":"unix","path":"/run/s","peer_dev":3,"peer_ino":4,"peer_pid":2,"pid":2,"ppid":1,"protocol":"unix-stream","ts_ns":5,"type":"connect"}"#,
        ];
        for line in peers {
            assert!(fast::decode(line.as_bytes()).is_none(), "{line}");
            let Line::Record(r) = parse_line(line.as_bytes()) else {
                panic!("{line}")
            };
            let proctor_model::Event::Connect(c) = &r.event else {
                panic!("{line}")
            };
            assert_ne!(c.peer_pid, 0, "{line}");
        }
        for line in lines {
            let b = line.as_bytes();
            let plain = !line.contains('\\');
            assert_eq!(fast::decode(b).is_some(), plain, "{line}");
            assert!(fast_agrees(b), "{line}");
            for i in 0..b.len() {
                for c in [
                    b' ', b'"', b'\\', b'0', b'1', b'9', b'-', b'.', b'e', b'n', b'{', b'[', b',',
                    b':', b'}', 0x1f, 0x80,
                ] {
                    let mut m = b.to_vec();
                    m[i] = c;
                    assert!(fast_agrees(&m), "{}", String::from_utf8_lossy(&m));
                    let mut m = b.to_vec();
                    m.insert(i, c);
                    assert!(fast_agrees(&m), "{}", String::from_utf8_lossy(&m));
                }
                let mut m = b.to_vec();
                m.remove(i);
                assert!(fast_agrees(&m), "{}", String::from_utf8_lossy(&m));
            }
        }
    }

    /// Replay output (alerts, evidence, incidents, the baseline) is the same whichever decoder
    /// read the log: every fixture, and the log in `PROCTOR_REPLAY_LOG` when set (a large
    /// recorded run; the fixtures are small).
    #[test]
    fn replay_output_is_identical_with_and_without_the_fast_decode() {
        use crate::{Engine, EngineConfig, Policy};
        let mut logs = fixture_logs();
        if let Some(p) = std::env::var_os("PROCTOR_REPLAY_LOG") {
            logs.push(p.into());
        }
        // The fast way as `proctor replay` goes (the record moved into the engine), the
        // general way as the live pipeline goes (observed by reference).
        let run = |log: &std::path::Path, decode: fn(&[u8]) -> Line, owned: bool| -> String {
            let mut e = Engine::with_host(
                Policy::builtin(),
                EngineConfig {
                    baseline_ns: 10_000_000_000,
                    home: Some("/home/agent".into()),
                    cwd: Some("/work/proj".into()),
                    profile: None,
                },
                crate::HostFacts::default(),
            );
            let mut out = String::new();
            for line in std::fs::read(log).unwrap().split(|&b| b == b'\n') {
                if let Line::Record(r) = decode(line) {
                    let o = if owned {
                        e.observe_shared(r)
                    } else {
                        e.observe(&r)
                    };
                    out.push_str(&format!("{o:?}\n"));
                }
            }
            out.push_str(&format!("{:?}\n{:?}", e.finish(), e.baseline()));
            out
        };
        let general = |b: &[u8]| {
            let t = b.trim_ascii();
            if t.is_empty() {
                Line::Blank
            } else {
                parse_general(t)
            }
        };
        for log in logs {
            assert_eq!(
                run(&log, parse_line, true),
                run(&log, general, false),
                "{}",
                log.display()
            );
        }
    }
}
