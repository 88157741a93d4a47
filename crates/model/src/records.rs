//! Every record proctor writes that is not an observation: enforcement decisions, approvals,
//! tamper attempts, alerts, the baseline, start/stop, mode changes and containment. Each is a
//! typed, serialize-only struct written through [`TypedRecord::tagged`], which adds its `type`.
//!
//! [`RecordKind`] is the one list of every `type` tag proctor writes (observations, these, and
//! the evidence chain's own `segment_start`, `checkpoint` and `certificate`): [`record_types`],
//! [`crate::Event::type_name`] and replay all go through it, and its matches are exhaustive, so
//! a new kind does not compile until every site handles it.

use crate::{Alert, Bytes, SockAddr};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of this record vocabulary. Version 1 is the format of proctor 0.1; a change that
/// is not a pure addition of an optional field bumps it.
pub const RECORDS_VERSION: u32 = 1;

/// One list, three uses: the enum, its tag strings, and which kinds are observations.
macro_rules! record_kinds {
    ($($(#[$doc:meta])* $variant:ident = $tag:literal, $observation:literal;)*) => {
        /// The `type` of an audit record.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RecordKind {
            $($(#[$doc])* $variant,)*
        }

        impl RecordKind {
            /// Every kind, in the order of [`record_types`].
            pub const ALL: &'static [RecordKind] = &[$(RecordKind::$variant),*];
            const TAGS: &'static [&'static str] = &[$($tag),*];

            /// The `type` tag as written.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(RecordKind::$variant => $tag,)*
                }
            }

            /// The kind of a `type` tag; None for a tag proctor never writes.
            pub fn from_tag(tag: &str) -> Option<RecordKind> {
                match tag {
                    $($tag => Some(RecordKind::$variant),)*
                    _ => None,
                }
            }

            /// Observations ([`crate::Event`]) are what detectors consume; the rest is what
            /// proctor concluded or did.
            pub fn is_observation(self) -> bool {
                match self {
                    $(RecordKind::$variant => $observation,)*
                }
            }
        }
    };
}

record_kinds! {
    Exec = "exec", true;
    Fork = "fork", true;
    Exit = "exit", true;
    FileOpen = "file_open", true;
    FileOpenSeen = "file_open_seen", true;
    PathChange = "path_change", true;
    Privileged = "privileged", true;
    Connect = "connect", true;
    Inbound = "inbound", true;
    Send = "send", true;
    Dns = "dns", true;
    DnsAnswer = "dns_answer", true;
    Ptrace = "ptrace", true;
    Sched = "sched", true;
    Lost = "lost", true;
    Tls = "tls", true;
    TlsSni = "tls_sni", true;
    TlsBlind = "tls_blind", true;
    IoUringSetup = "io_uring_setup", true;
    LlmRequest = "llm_request", true;
    LlmResponse = "llm_response", true;
    /// [`DecisionRecord`]
    Decision = "decision", false;
    /// [`ApprovalRecord`]
    Approval = "approval", false;
    /// [`TamperRecord`]
    Tamper = "tamper", false;
    /// [`AlertRecord`]
    Alert = "alert", false;
    /// [`IncidentRecord`]
    Incident = "incident", false;
    /// [`BaselineEstablished`]
    BaselineEstablished = "baseline_established", false;
    /// [`SensorStart`]
    SensorStart = "sensor_start", false;
    /// [`SensorStop`]
    SensorStop = "sensor_stop", false;
    /// [`ModeChange`]
    ModeChange = "mode_change", false;
    /// [`KseqGap`]
    KseqGap = "kseq_gap", false;
    /// [`Containment`]
    Containment = "containment", false;
    /// [`PolicyReload`]
    PolicyReload = "policy", false;
    /// The audit log's own records (written by the evidence layer).
    SegmentStart = "segment_start", false;
    Checkpoint = "checkpoint", false;
    Certificate = "certificate", false;
    /// A signed announcement of the signing key's rotation (written by the evidence layer).
    KeyRotation = "key_rotation", false;
}

/// The `type` tag of every record proctor writes.
pub fn record_types() -> &'static [&'static str] {
    RecordKind::TAGS
}

/// A record struct and its kind: [`TypedRecord::tagged`] is what goes to the audit log.
pub trait TypedRecord: Serialize {
    const KIND: RecordKind;

    fn tagged(&self) -> Tagged<'_, Self> {
        Tagged {
            ty: Self::KIND.as_str(),
            record: self,
        }
    }
}

/// A record with its `type` tag, as written.
#[derive(Serialize)]
pub struct Tagged<'a, T: ?Sized> {
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(flatten)]
    record: &'a T,
}

/// The fields every record carries besides its own: when, which agent, which process.
/// Records about proctor itself (start, stop, mode, baseline) name proctor ([`Common::proctor`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Common {
    /// Wall-clock UTC nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub agent_id: String,
    pub pid: u32,
    pub ppid: u32,
    pub comm: Bytes,
    pub exec_id: String,
}

impl Common {
    /// The common fields of a record written by proctor about itself.
    pub fn proctor(ts_ns: u64, agent_id: &str) -> Common {
        Common {
            ts_ns,
            agent_id: agent_id.to_string(),
            pid: std::process::id(),
            ppid: std::os::unix::process::parent_id(),
            comm: Bytes::from("proctor"),
            exec_id: String::new(),
        }
    }
}

/// The enforcement mode of a run (`--mode`, `proctor mode`), as written in records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Observe and alert only.
    Audit,
    /// Decide as enforce would and record `would_block`; block nothing.
    Shadow,
    /// Block what the policy forbids.
    Enforce,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Audit, Mode::Shadow, Mode::Enforce];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Audit => "audit",
            Mode::Shadow => "shadow",
            Mode::Enforce => "enforce",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{}` is not a mode (audit, shadow or enforce)",
                    s.escape_debug()
                )
            })
    }
}

/// Wall-clock UTC nanoseconds since the Unix epoch (the `ts_ns` of every record); 0 before 1970.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// SHA-256 of `bytes` as lowercase hex: the form of every digest in proctor's records (chain
/// hashes, baseline, certificates, approval digests, key fingerprints).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// What a kernel enforcement decision was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionWhat {
    Exec,
    Ptrace,
    Connect,
    Sendmsg,
    Open,
}

impl DecisionWhat {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionWhat::Exec => "exec",
            DecisionWhat::Ptrace => "ptrace",
            DecisionWhat::Connect => "connect",
            DecisionWhat::Sendmsg => "sendmsg",
            DecisionWhat::Open => "open",
        }
    }
}

/// `blocked` (enforce mode) or `would_block` (shadow mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionVerdict {
    Blocked,
    WouldBlock,
}

/// The kernel layer that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionLayer {
    /// A BPF LSM hook (EPERM before the action).
    Lsm,
    /// A syscall or scheduler tracepoint (SIGKILL).
    Tracepoint,
    /// cgroup-bpf connect/sendmsg programs (EPERM).
    CgroupBpf,
    /// Landlock (EACCES, recognised in userspace).
    Landlock,
}

/// What enforcement decided in the kernel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub what: DecisionWhat,
    pub verdict: DecisionVerdict,
    pub layer: DecisionLayer,
    /// exec: the binary's identity; open (BPF LSM): the file's (st_dev encoding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
    /// ptrace: the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_pid: Option<u32>,
    /// connect/sendmsg: the refused destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest: Option<SockAddr>,
    /// open: the file refused (Landlock: the path the agent's spelling resolved to, links and
    /// /proc magic links followed; BPF LSM: the sensitive file proctor resolved at start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Bytes>,
    /// open (Landlock): the path as the agent passed it, when that is not `path` (a symlink,
    /// `/proc/self/root/...`, `/proc/self/fd/N`, a relative path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<Bytes>,
    /// open (Landlock), when the process had exited before proctor read the refusal: how
    /// `path` was found. Absent: resolved as the live process would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

/// How the target of a refused open was found after its process had exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// From the root and working directory the process had when proctor last saw it alive
    /// (its exec, or its fork from a parent): links are followed as they are now.
    Remembered,
    /// Not at all (the spelling needs what only the live process held, e.g. `/proc/self/fd/N`,
    /// or nothing about the process was remembered): `path` is absent and `requested` is all
    /// that is known. The kernel refused the open with EACCES, which Landlock returns for the
    /// files it denies.
    Unresolved,
}

/// `decision`: a kernel enforcement decision about one process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRecord {
    #[serde(flatten)]
    pub decision: Decision,
    #[serde(flatten)]
    pub common: Common,
    /// The kernel's record number, for decisions the kernel took (see [`crate::Kseq`]).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub kseq: Option<crate::Kseq>,
}

impl TypedRecord for DecisionRecord {
    const KIND: RecordKind = RecordKind::Decision;
}

/// Who answered an approval request, from the kernel (SO_PEERCRED), not from its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// `approval`: a held action settled, or (shadow mode) one that would have been held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalRecord {
    pub request_id: Option<u64>,
    /// The canonical action the verdict is bound to.
    pub action: serde_json::Value,
    /// `sha256:<hex>` of the action's canonical form.
    pub digest: String,
    /// "allow", "deny" or "would_ask".
    pub verdict: String,
    pub reason: String,
    /// "approver", "timeout", "shutdown", "recheck" (arguments changed) or "shadow".
    pub decided_by: String,
    pub approver: Option<Peer>,
    pub latency_ns: u64,
    #[serde(flatten)]
    pub common: Common,
}

impl TypedRecord for ApprovalRecord {
    const KIND: RecordKind = RecordKind::Approval;
}

/// The verdict on an attempt on proctor: always refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TamperVerdict {
    Refused,
    /// Seen but not stopped (a signing-key open that succeeded, a cgroup escape): alerted.
    Detected,
}

/// `tamper`: an attempt on proctor itself (refused, or detected when it could not be stopped) (signal, ptrace, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TamperRecord {
    pub syscall: String,
    pub target: i64,
    pub signal: Option<i64>,
    pub verdict: TamperVerdict,
    pub detail: String,
    #[serde(flatten)]
    pub common: Common,
}

impl TypedRecord for TamperRecord {
    const KIND: RecordKind = RecordKind::Tamper;
}

/// `alert`: the alert's fields plus the common ones it lacks.
#[derive(Debug, Serialize)]
pub struct AlertRecord<'a> {
    #[serde(flatten)]
    pub alert: &'a Alert,
    pub ppid: u32,
    pub comm: &'a Bytes,
}

impl TypedRecord for AlertRecord<'_> {
    const KIND: RecordKind = RecordKind::Alert;
}

/// `incident`: alerts grouped by the incident correlator (opened, grown, closed).
#[derive(Debug, Serialize)]
pub struct IncidentRecord<'a> {
    #[serde(flatten)]
    pub incident: &'a crate::Incident,
}

impl TypedRecord for IncidentRecord<'_> {
    const KIND: RecordKind = RecordKind::Incident;
}

/// `baseline_established`: certificates from here on are bound to this baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineEstablished {
    pub baseline_sha256: String,
    pub summary: String,
    #[serde(flatten)]
    pub common: Common,
}

impl TypedRecord for BaselineEstablished {
    const KIND: RecordKind = RecordKind::BaselineEstablished;
}

/// `sensor_start`: how this run was started; replay binds `~` and `$CWD` from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorStart {
    pub mode: Mode,
    /// "run", "calibrate" or "attach".
    pub command: String,
    /// `run`, `calibrate`: the agent's command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<Bytes>>,
    /// `attach`: the process attached to (not `pid`: that names the writer, proctor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_pid: Option<u32>,
    pub home: Option<Bytes>,
    pub cwd: Option<Bytes>,
    /// proctor's version.
    pub version: String,
    /// The machine's host name (a SIEM's records come from many hosts).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    pub capture_tls: bool,
    /// "redacted" or "raw".
    pub tls_redaction: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_max_bytes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_hooked: Option<Vec<String>>,
    #[serde(flatten)]
    pub common: Common,
}

impl TypedRecord for SensorStart {
    const KIND: RecordKind = RecordKind::SensorStart;
}

/// Why monitoring stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    AgentExited,
    SpawnFailed,
    Interrupted,
    TreeExited,
}

/// What a run recorded, for `sensor_stop`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunCounts {
    /// Records written, per `type`.
    pub records: BTreeMap<&'static str, u64>,
    /// Events lost (all kinds).
    pub lost: u64,
    /// With `--capture-tls`: the LLM parser's counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_parser: Option<TlsParserStats>,
}

/// What the LLM parser of `--capture-tls` saw and dropped (`sensor_stop`'s `tls_parser`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsParserStats {
    /// HTTP messages framed (requests and responses, LLM or not).
    #[serde(rename = "http_messages")]
    pub messages: u64,
    pub llm_requests: u64,
    pub llm_responses: u64,
    /// LLM messages that could not be reported: bytes missing (truncated calls) or not HTTP.
    pub llm_broken: u64,
    /// Stretches of data skipped because they were not HTTP (resynchronisation).
    pub skipped: u64,
    /// LLM bodies larger than the parser keeps (summarised from their first part).
    pub overflowed: u64,
    /// Connections dropped to stay within the parser's bounds.
    pub evicted: u64,
}

/// `sensor_stop`: the end of monitoring, and what was recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorStop {
    pub reason: StopReason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// `spawn_failed`: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub counts: Option<RunCounts>,
    /// Processes of the agent still running when proctor stopped (`run --exit-with-agent`,
    /// or a wait cut short): no longer monitored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub survivors: Vec<Survivor>,
    #[serde(flatten)]
    pub common: Common,
}

/// A process of the agent left running, unmonitored, when proctor stopped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Survivor {
    pub pid: u32,
    pub comm: Bytes,
    /// Its executable as the kernel names it (None when /proc would not say).
    pub exe: Option<Bytes>,
}

/// Who asked for a change of a running proctor, as the kernel names them (SO_PEERCRED on the
/// control socket), never as they say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Requester {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub exe: Option<String>,
}

impl TypedRecord for SensorStop {
    const KIND: RecordKind = RecordKind::SensorStop;
}

/// `mode_change`: `proctor mode` switched the enforcement mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeChange {
    pub from: Mode,
    pub to: Mode,
    pub requested_by: Requester,
    #[serde(flatten)]
    pub common: Common,
}

impl TypedRecord for ModeChange {
    const KIND: RecordKind = RecordKind::ModeChange;
}

/// `kseq_gap`: kernel record numbers of a session that no record of the log carries, and why
/// (see [`crate::kseq`]). `proctor verify` accepts a gap in the numbers only where one of these
/// declares it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KseqGap {
    pub kslot: u32,
    pub first: u64,
    pub last: u64,
    pub count: u64,
    pub reason: crate::kseq::GapReason,
    #[serde(flatten)]
    pub common: Common,
}

impl TypedRecord for KseqGap {
    const KIND: RecordKind = RecordKind::KseqGap;
}

/// `policy`: `proctor policy reload` or a SIGHUP replaced the policy of a running proctor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReload {
    /// The file as the requester named it.
    pub origin: String,
    /// SHA-256 (hex) of the policy text as received.
    pub sha256: String,
    pub requested_by: Requester,
    /// What took effect, one line per layer.
    pub applied: Vec<String>,
    /// What the new policy asks that this run cannot change (a layer fixed at start).
    pub not_applied: Vec<String>,
    #[serde(flatten)]
    pub common: Common,
}

impl TypedRecord for PolicyReload {
    const KIND: RecordKind = RecordKind::PolicyReload;
}

/// Whether a containment action was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainResult {
    Done,
    Failed,
}

/// `containment`: an operator's `proctor contain` request and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Containment {
    /// "freeze", "thaw", "kill", "isolate-net" or "restore-net".
    pub action: String,
    pub result: ContainResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub requested_by: Requester,
    #[serde(flatten)]
    pub common: Common,
}

impl TypedRecord for Containment {
    const KIND: RecordKind = RecordKind::Containment;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_tag_that_maps_back() {
        assert_eq!(RecordKind::ALL.len(), record_types().len());
        for (k, t) in RecordKind::ALL.iter().zip(record_types()) {
            assert_eq!(k.as_str(), *t);
            assert_eq!(RecordKind::from_tag(t), Some(*k));
        }
        let mut tags = record_types().to_vec();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), record_types().len(), "duplicate tags");
        assert_eq!(RecordKind::from_tag("other"), None);
    }

    #[test]
    fn typed_records_serialize_as_the_log_always_had_them() {
        let common = Common {
            ts_ns: 5,
            agent_id: "a".into(),
            pid: 7,
            ppid: 1,
            comm: Bytes::from("proctor"),
            exec_id: String::new(),
        };
        let stop = SensorStop {
            reason: StopReason::AgentExited,
            exit_code: Some(3),
            signal: None,
            error: None,
            counts: Some(RunCounts {
                records: BTreeMap::from([("exec", 2)]),
                lost: 0,
                tls_parser: None,
            }),
            survivors: Vec::new(),
            common: common.clone(),
        };
        assert_eq!(
            serde_json::to_value(stop.tagged()).unwrap(),
            serde_json::json!({"type": "sensor_stop", "reason": "agent_exited", "exit_code": 3,
                "records": {"exec": 2}, "lost": 0, "ts_ns": 5, "agent_id": "a", "pid": 7,
                "ppid": 1, "comm": "proctor", "exec_id": ""})
        );
        let d = DecisionRecord {
            decision: Decision {
                what: DecisionWhat::Sendmsg,
                verdict: DecisionVerdict::WouldBlock,
                layer: DecisionLayer::CgroupBpf,
                dev: None,
                ino: None,
                target_pid: None,
                dest: None,
                path: None,
                requested: None,
                resolution: None,
            },
            common,
            kseq: None,
        };
        let v = serde_json::to_value(d.tagged()).unwrap();
        assert_eq!(v["type"], "decision");
        assert_eq!(v["what"], "sendmsg");
        assert_eq!(v["verdict"], "would_block");
        assert_eq!(v["layer"], "cgroup_bpf");
        assert!(v.get("dev").is_none());
        assert_eq!("shadow".parse::<Mode>(), Ok(Mode::Shadow));
        assert!("loud".parse::<Mode>().is_err());
    }
}
