//! The routing half of the monitoring loop, as a pipeline fed with records: each observation is
//! counted, written to the audit log and judged by detection; a kernel decision or a supervisor
//! report becomes its record and its alert; losses are counted and recorded; alerts go to the
//! audit log, a signed certificate and the alert socket. Nothing here touches the kernel, so it
//! is tested on plain records without root; the monitor module feeds it from the sensor.

use crate::detection::{AlertSink, Detection};
use crate::seccomp::Supervised;
use crate::tls::TlsWatch;
use anyhow::{Context, Result};
use proctor_detect::Baseline;
use proctor_evidence::{AlertSink as SocketSink, AuditLog, CertWriter, Signer};
use proctor_model::{
    Alert, AlertRecord, BaselineEstablished, Bytes, Common, DecisionRecord, Event, Lost, Record,
    RecordKind, TypedRecord,
};
use proctor_outputs::{render_alert, AlertFormat, OutputStats, Outputs, OutputsConfig, Source};
use proctor_sensor::Subject;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The audit log: the evidence layer's hash-chained `DIR/audit.jsonl` (one JSON object per
/// line, each with `seq`, `hash_prev`, `hash_self`; signed checkpoints), written as records
/// arrive so a reader can `tail -f` it.
pub struct AuditOut {
    log: Option<AuditLog>,
    path: PathBuf,
}

impl AuditOut {
    /// Create DIR and open DIR/audit.jsonl (a new linked segment if it exists). Done before the
    /// agent starts, so an unwritable output is an error up front, not a lost run.
    pub fn open(dir: &Path, signer: Arc<Signer>, agent_id: &str) -> Result<AuditOut> {
        proctor_evidence::create_private_dir(dir)
            .with_context(|| format!("cannot create output directory {}", dir.display()))?;
        let log = AuditLog::open(dir, signer, agent_id)?;
        Ok(AuditOut {
            path: log.path().to_path_buf(),
            log: Some(log),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn log(&mut self) -> Result<&mut AuditLog> {
        self.log.as_mut().context("the audit log is already closed")
    }

    pub fn append<T: Serialize>(&mut self, rec: &T) -> Result<()> {
        self.log()?.append(rec)?;
        Ok(())
    }

    /// Periodic work: a signed checkpoint when one is due.
    pub fn flush(&mut self) -> Result<()> {
        self.log()?.tick()?;
        Ok(())
    }

    /// The final signed checkpoint; without it the log verifies as incomplete.
    pub fn close(&mut self) -> Result<()> {
        if let Some(log) = self.log.take() {
            log.close()?;
        }
        Ok(())
    }
}

/// What the sinks remember of one incident.
#[derive(Default)]
struct IncidentSeen {
    certified_rank: Option<usize>,
    certificate: String,
    who: Option<proctor_model::Actor>,
}

/// Where records and alerts go.
pub struct Sinks {
    pub audit: AuditOut,
    certs: CertWriter,
    /// DIR/incidents/: a certificate when an incident opens, escalates or closes.
    incident_certs: CertWriter,
    /// Per incident id: the severity of its latest certificate, its latest certificate's file
    /// and who triggered its first alert that had a kernel record.
    incidents: HashMap<String, IncidentSeen>,
    socket: Option<SocketSink>,
    socket_dropped: u64,
    /// `--metrics`: counts of what is written, for the Prometheus endpoint.
    pub metrics: Option<proctor_metrics::Recorder>,
    /// syslog, webhook (see proctor_outputs); their losses already recorded, per output.
    outputs: Option<Outputs>,
    outputs_lost: HashMap<String, u64>,
    /// How alerts look on the socket and the outputs, and who ships them.
    format: AlertFormat,
    source: Source,
    /// User names by uid, looked up once per run.
    users: HashMap<u32, String>,
}

impl Sinks {
    /// DIR/audit.jsonl, DIR/alerts/ and, if named, the alert socket.
    pub fn open(
        out: &Path,
        signer: Arc<Signer>,
        agent_id: &str,
        alert_socket: Option<&Path>,
    ) -> Result<Sinks> {
        let audit = AuditOut::open(out, signer.clone(), agent_id)?;
        let certs = CertWriter::new(
            &out.join("alerts"),
            signer,
            &proctor_evidence::hostname(),
            None,
        )?;
        let incident_certs = CertWriter::for_incidents(&certs, &out.join("incidents"))?;
        let socket = match alert_socket {
            Some(p) => Some(
                SocketSink::spawn(p, 4096)
                    .with_context(|| format!("alert socket {}", p.display()))?,
            ),
            None => None,
        };
        let source = Source {
            host: proctor_evidence::hostname(),
            run_id: certs.run_id().to_string(),
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
        };
        Ok(Sinks {
            audit,
            certs,
            incident_certs,
            incidents: HashMap::new(),
            socket,
            socket_dropped: 0,
            metrics: None,
            outputs: None,
            outputs_lost: HashMap::new(),
            format: AlertFormat::Native,
            source,
            users: HashMap::new(),
        })
    }

    /// One record of type `kind` written to the audit log (for `--metrics`).
    fn count(&mut self, kind: &'static str) {
        if let Some(m) = &mut self.metrics {
            m.record(kind);
        }
    }

    /// `count` events lost, as the `lost` record's `what` names them (for `--metrics`).
    fn count_lost(&mut self, what: &str, count: u64) {
        if let Some(m) = &self.metrics {
            m.lost(what, count);
        }
    }

    /// Start the configured outputs (syslog, webhook) and take the alert format; before the
    /// agent starts, so a wrong target is an error up front.
    pub fn start_outputs(&mut self, cfg: &OutputsConfig) -> Result<()> {
        self.format = cfg.format;
        if !cfg.is_empty() {
            self.outputs = Some(Outputs::start(cfg, self.source.clone())?);
        }
        Ok(())
    }

    /// The outputs' live counters, for a metrics endpoint (None without outputs).
    pub fn output_watcher(&self) -> Option<proctor_outputs::StatsWatcher> {
        self.outputs.as_ref().map(Outputs::watcher)
    }

    /// Counters per output (name, sent, dropped, failed, pending).
    pub fn output_stats(&self) -> Vec<OutputStats> {
        self.outputs
            .as_ref()
            .map(Outputs::stats)
            .unwrap_or_default()
    }
}

impl AlertSink for Sinks {
    /// An alert is an audit record, a signed certificate (itself recorded in the chain, so a
    /// deleted certificate shows) and, if asked, a line on the alert socket.
    fn alert(&mut self, alert: &Alert) -> Result<()> {
        let first = alert.trigger.first();
        let empty = Bytes::default();
        // The record, the socket and the outputs carry who and where; the certificate is
        // signed over the alert as detection made it (it has its own host and run id).
        let mut full = alert.clone();
        full.actor.host.clone_from(&self.source.host);
        full.run_id.clone_from(&self.source.run_id);
        full.certificate = self.certs.next_file_name();
        if let Some(id) = first.and_then(|r| r.identity.as_ref()) {
            full.actor.uid = Some(id.uid);
            full.actor.gid = Some(id.gid);
            full.actor.user = self
                .users
                .entry(id.uid)
                .or_insert_with(|| crate::session::user_name(id.uid).unwrap_or_default())
                .clone();
            full.actor.container = id.container;
            if let Some(inc) = &alert.incident {
                let seen = self.incidents.entry(inc.clone()).or_default();
                seen.who.get_or_insert_with(|| full.actor.clone());
            }
        }
        self.audit.append(
            &AlertRecord {
                alert: &full,
                ppid: first.map_or(0, |r| r.ppid),
                comm: first.map_or(&empty, |r| &r.comm),
            }
            .tagged(),
        )?;
        self.count(RecordKind::Alert.as_str());
        if let Some(m) = &self.metrics {
            m.alert(&alert.kind, &alert.channel, &alert.severity);
        }
        let written = self.certs.write(alert)?;
        self.audit.log()?.record_certificate(&written)?;
        if let Some(s) = &self.socket {
            s.send(&render_alert(&full, self.format, &self.source));
        }
        if let Some(o) = &self.outputs {
            o.alert(&full);
        }
        Ok(())
    }

    /// An incident opened, grew or closed: its record (with who and where) in the audit log,
    /// the outputs, and a signed certificate in DIR/incidents/ when it opened, its severity
    /// rose or it closed (growth alone is in the chain already, and an agent must not get a
    /// signed file per alert).
    fn incident(&mut self, incident: &proctor_model::Incident) -> Result<()> {
        self.count(RecordKind::Incident.as_str());
        if let Some(m) = &mut self.metrics {
            m.incident(&incident.id, &incident.severity);
        }
        let seen = self.incidents.entry(incident.id.clone()).or_default();
        let mut full = incident.clone();
        if let Some(who) = &seen.who {
            full.actor.clone_from(who);
        }
        full.actor.host.clone_from(&self.source.host);
        full.run_id.clone_from(&self.source.run_id);
        let rank = proctor_model::severity_rank(&incident.severity);
        let closed = incident.status == proctor_model::INCIDENT_CLOSED;
        if closed || seen.certified_rank.is_none_or(|r| rank > r) {
            let written = self.incident_certs.write_incident(&full)?;
            self.audit.log()?.record_certificate(&written)?;
            seen.certified_rank = Some(rank);
            seen.certificate = proctor_evidence::cert_file_name(&written.run_id, written.seq);
        }
        full.certificate.clone_from(&seen.certificate);
        if closed {
            // Its last line: nothing more will come for this id.
            self.incidents.remove(&incident.id);
        }
        self.audit
            .append(&proctor_model::IncidentRecord { incident: &full }.tagged())?;
        if let Some(o) = &self.outputs {
            o.incident(&full);
        }
        Ok(())
    }

    /// Certificates from now on are bound to this baseline; the chain records it too.
    fn baseline(&mut self, baseline: &Baseline, sha256: &str) -> Result<()> {
        self.certs.set_baseline_sha256(Some(sha256.to_string()));
        self.incident_certs
            .set_baseline_sha256(Some(sha256.to_string()));
        self.count(BaselineEstablished::KIND.as_str());
        self.audit.append(
            &BaselineEstablished {
                baseline_sha256: sha256.to_string(),
                summary: baseline.summary().to_string(),
                common: Common::proctor(proctor_model::now_ns(), &baseline.agent_id),
            }
            .tagged(),
        )
    }
}

/// What [`Pipeline::observe`] learned about the agent's tree from one record.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The root of the tree got a new identity (exec): the sensor's aggregates should name it.
    pub root_changed: bool,
}

/// Records in; audit log, detection, alerts and sinks out.
pub struct Pipeline {
    pub sinks: Sinks,
    pub detection: Option<Detection>,
    /// `--capture-tls`: hooked libraries, blind binaries, the plaintext pipeline.
    pub tls: Option<TlsWatch>,
    agent_id: String,
    /// The root of the agent's tree (named in aggregate records).
    root: Subject,
    /// Processes of the tree believed alive (fork/exit records and the initial walk).
    live: HashSet<u32>,
    /// The latest exec_id seen per pid, for records the supervisor reports (kept only while
    /// one runs).
    exec_ids: Option<HashMap<u32, String>>,
    counts: BTreeMap<&'static str, u64>,
    lost: u64,
    /// Alerts of blocked calls, aggregated by what was blocked: one certificate per key and
    /// window, then one with the count (an agent must not get a signed file per refusal).
    blocked: proctor_detect::Cooldown,
    /// Kernel record numbers declared missing, against the kernel's loss counters.
    kseq: crate::kseq::Book,
}

/// How long the end of a run waits for the outputs to deliver what is queued.
const OUTPUTS_CLOSE: Duration = Duration::from_secs(3);

/// Aggregation window of blocked-call alerts (the default policy's alert cooldown).
const BLOCKED_WINDOW_NS: u64 = 60_000_000_000;

impl Pipeline {
    pub fn new(sinks: Sinks, agent_id: String) -> Pipeline {
        Pipeline {
            sinks,
            detection: None,
            tls: None,
            agent_id,
            root: Subject {
                pid: 0,
                ppid: 0,
                comm: Bytes::default(),
                exec_id: String::new(),
            },
            live: HashSet::new(),
            exec_ids: None,
            counts: BTreeMap::new(),
            lost: 0,
            blocked: proctor_detect::Cooldown::new(BLOCKED_WINDOW_NS),
            kseq: crate::kseq::Book::default(),
        }
    }

    /// Judge the run with `d`; certificates are bound to its profile's baseline, if it has one.
    pub fn set_detection(&mut self, d: Detection) {
        self.sinks
            .certs
            .set_baseline_sha256(d.baseline_sha256.clone());
        self.sinks
            .incident_certs
            .set_baseline_sha256(d.baseline_sha256.clone());
        self.detection = Some(d);
    }

    /// Keep the exec_id of every pid, for [`Pipeline::exec_id_of`] (the supervisor's records).
    pub fn keep_exec_ids(&mut self) {
        self.exec_ids.get_or_insert_with(HashMap::new);
    }

    pub fn exec_id_of(&self, pid: u32) -> String {
        self.exec_ids
            .as_ref()
            .and_then(|m| m.get(&pid).cloned())
            .unwrap_or_default()
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    pub fn root(&self) -> &Subject {
        &self.root
    }

    /// Name the root of the agent's tree and count it live.
    pub fn set_root(&mut self, root: Subject) {
        self.live.insert(root.pid);
        self.root = root;
    }

    pub fn add_live(&mut self, pid: u32) {
        self.live.insert(pid);
    }

    /// Processes of the tree believed alive.
    pub fn live(&self) -> &HashSet<u32> {
        &self.live
    }

    /// Forget processes that are gone (`exists` says which are not).
    pub fn live_count(&mut self, exists: impl Fn(u32) -> bool) -> usize {
        self.live.retain(|&p| exists(p));
        self.live.len()
    }

    /// A ptrace record whose target is a live process of the tree says so. The kernel judges
    /// `target_tracked` by the pid the tracer passed, which inside a PID namespace is not the
    /// host pid; the sensor translates it when it reads the record, but by then the target may
    /// have exited and left the tracked set. The tree as this pipeline saw it, in record order,
    /// is the truth at the time of the call.
    pub fn mark_tree_target(&self, r: &mut Record) {
        if let Event::Ptrace(p) = &mut r.event {
            if !p.target_tracked && self.live.contains(&p.target_pid) {
                p.target_tracked = true;
            }
        }
    }

    /// Follow the tree and the root's identity through one record (before it is written).
    pub fn track(&mut self, r: &Record) -> Seen {
        let mut seen = Seen::default();
        match &r.event {
            Event::Fork(f) => {
                self.live.insert(f.child_pid);
            }
            Event::Exit(_) => {
                self.live.remove(&r.pid);
                if let Some(m) = &mut self.exec_ids {
                    m.remove(&r.pid);
                }
            }
            Event::Exec(_) if r.pid == self.root.pid => {
                self.root.exec_id = r.exec_id.clone();
                self.root.comm = r.comm.clone();
                self.root.ppid = r.ppid;
                seen.root_changed = true;
            }
            _ => {}
        }
        if r.pid == self.root.pid && self.root.exec_id.is_empty() {
            self.root.exec_id = r.exec_id.clone();
            seen.root_changed = true;
        }
        if let Some(m) = &mut self.exec_ids {
            if !matches!(r.event, Event::Exit(_)) && m.get(&r.pid) != Some(&r.exec_id) {
                m.insert(r.pid, r.exec_id.clone());
            }
        }
        seen
    }

    /// TLS plaintext goes through its pipeline (LLM parsing on the raw bytes, then redaction)
    /// before it is written anywhere: the record to write and the records that follow it.
    pub fn plaintext(&mut self, r: Record) -> (Record, Vec<Record>) {
        match (&mut self.tls, &r.event) {
            (Some(w), Event::Tls(_)) => w.process(r),
            _ => (r, Vec::new()),
        }
    }

    /// Write one observation, then let detection judge it (the alert follows its trigger).
    pub fn observe(&mut self, r: &Record) -> Result<()> {
        self.log(r)?;
        if let Some(d) = &mut self.detection {
            d.observe(r, &mut self.sinks)?;
        }
        Ok(())
    }

    /// [`Pipeline::observe`] for a caller done with the record: detection keeps it for alert
    /// context without a copy (a whole record's clone was ~2-3% of the consumer's CPU).
    pub fn observe_owned(&mut self, r: Record) -> Result<()> {
        self.log(&r)?;
        if let Some(d) = &mut self.detection {
            d.observe_owned(r, &mut self.sinks)?;
        }
        Ok(())
    }

    /// An observation counted and in the audit log, before detection sees it.
    fn log(&mut self, r: &Record) -> Result<()> {
        *self.counts.entry(r.event.type_name()).or_default() += 1;
        self.sinks.count(r.event.type_name());
        self.sinks.audit.append(r)
    }

    /// Closes a learning window that has ended by `now` (wall-clock ns), even if no record came
    /// to close it; returns when a window still open ends, for the caller's wait.
    pub fn close_learning(&mut self, now: u64) -> Result<Option<u64>> {
        match self.detection.as_ref().and_then(|d| d.learning_ends_ns()) {
            Some(end) if now >= end => {
                self.tick(now)?;
                Ok(None)
            }
            later => Ok(later),
        }
    }

    /// An alert raised outside the engine, through the one alert path.
    pub fn alert(&mut self, alert: &Alert) -> Result<()> {
        match &mut self.detection {
            Some(det) => det.emit(alert, &mut self.sinks),
            None => self.sinks.alert(alert),
        }
    }

    /// A kernel enforcement decision: its record, then its alert (see
    /// [`crate::enforcement::decision_alert`]).
    pub fn decision(&mut self, d: &DecisionRecord, alert: Option<&Alert>) -> Result<()> {
        *self
            .counts
            .entry(DecisionRecord::KIND.as_str())
            .or_default() += 1;
        self.sinks.count(DecisionRecord::KIND.as_str());
        self.sinks.audit.append(&d.tagged())?;
        if d.decision.verdict == proctor_model::DecisionVerdict::Blocked {
            self.denial(d, alert)?;
        }
        let Some(a) = alert else {
            return Ok(());
        };
        // What was blocked, without who: "pid N (comm): WHAT ..." keyed by WHAT.
        let what = a.summary.split_once(": ").map_or("", |x| x.1);
        let key = format!("{} {what}", a.kind);
        match self.blocked.offer(key, a.clone()) {
            Some(a) => self.alert(&a),
            None => Ok(()),
        }
    }

    /// One line in DIR/denials.jsonl per refusal, so that the agent can learn why it was refused
    /// and adapt instead of retrying. World-readable (0644) so the agent's user can read it: it
    /// holds only what the agent itself tried and was refused. Not evidence: the `decision`
    /// record in the chain is.
    fn denial(&mut self, d: &DecisionRecord, alert: Option<&Alert>) -> Result<()> {
        use std::io::Write;
        let dir = self.sinks.audit.path().parent().unwrap_or(Path::new("."));
        let path = dir.join("denials.jsonl");
        let line = serde_json::json!({
            "ts_ns": d.common.ts_ns,
            "pid": d.common.pid,
            "what": d.decision.what,
            "layer": d.decision.layer,
            "dest": d.decision.dest,
            "path": d.decision.path,
            "reason": alert.map_or("refused by proctor's policy", |a| a.summary.as_str()),
        });
        let mut f = open_denials(&path)?;
        writeln!(f, "{line}").with_context(|| format!("cannot write {}", path.display()))
    }

    /// What the seccomp supervisor reported (`approval`, `tamper`), and its alert.
    pub fn supervised(&mut self, rec: &Supervised, alert: Option<&Alert>) -> Result<()> {
        let kind = match rec {
            Supervised::Approval(r) => {
                self.sinks.audit.append(&r.tagged())?;
                RecordKind::Approval
            }
            Supervised::Tamper(r) => {
                self.sinks.audit.append(&r.tagged())?;
                RecordKind::Tamper
            }
        };
        *self.counts.entry(kind.as_str()).or_default() += 1;
        self.sinks.count(kind.as_str());
        match alert {
            Some(a) => self.alert(a),
            None => Ok(()),
        }
    }

    /// `lost` records: counted, said on stderr, written and shown to detection.
    pub fn lost(&mut self, records: Vec<Record>) -> Result<()> {
        for l in records {
            if let Event::Lost(x) = &l.event {
                self.lost += x.count;
                self.kseq.counted(&x.what, x.count);
                self.sinks.count_lost(&x.what, x.count);
                tracing::warn!("lost {} {} event(s)", x.count, x.what);
            }
            self.observe(&l)?;
        }
        Ok(())
    }

    /// Kernel record numbers no record carries: a signed `kseq_gap` record per gap, and numbers
    /// lost beyond what the kernel's loss counters explain as a `lost` record (an alert).
    pub fn kseq_gaps(&mut self, gaps: &[proctor_model::kseq::Gap], now_ns: u64) -> Result<()> {
        for g in gaps {
            if g.reason == proctor_model::kseq::GapReason::Lost {
                tracing::warn!(
                    "kernel records {}..={} of session slot {} never arrived",
                    g.first,
                    g.last,
                    g.kslot
                );
            }
            self.write(&proctor_model::KseqGap {
                kslot: g.kslot,
                first: g.first,
                last: g.last,
                count: g.count(),
                reason: g.reason,
                common: self.proctor_common(now_ns),
            })?;
        }
        let unaccounted = self.kseq.declared(gaps);
        if unaccounted > 0 {
            let rec = self.lost_record(crate::kseq::UNACCOUNTED, unaccounted, now_ns);
            self.lost(vec![rec])?;
        }
        Ok(())
    }

    /// A `lost` record of `count` events of kind `what`, naming the root of the tree.
    pub fn lost_record(&self, what: &str, count: u64, ts_ns: u64) -> Record {
        Record {
            event: Event::Lost(Lost {
                what: what.into(),
                count,
            }),
            ts_ns,
            agent_id: self.agent_id.clone(),
            pid: self.root.pid,
            ppid: self.root.ppid,
            comm: self.root.comm.clone(),
            exec_id: self.root.exec_id.clone(),
            identity: None,
            kseq: None,
        }
    }

    /// Periodic work: detection's clock, and alerts the socket could not deliver.
    pub fn tick(&mut self, now_ns: u64) -> Result<()> {
        if let Some(d) = &mut self.detection {
            d.tick(now_ns, &mut self.sinks)?;
        }
        for a in self.blocked.due(now_ns) {
            self.alert(&a)?;
        }
        if let Some(dropped) = self.sinks.socket.as_ref().map(SocketSink::dropped) {
            self.socket_lost(dropped, now_ns)?;
        }
        let stats = self.sinks.output_stats();
        self.outputs_lost(&stats, now_ns, false)
    }

    /// Items an output dropped (queue full) or gave up (after its retries) since the last
    /// report, as `lost` records named `output_NAME`; at the end (`last`), what is still
    /// queued counts too.
    fn outputs_lost(&mut self, stats: &[OutputStats], ts_ns: u64, last: bool) -> Result<()> {
        for st in stats {
            let total = st.dropped + st.failed + if last { st.pending } else { 0 };
            let seen = self.sinks.outputs_lost.entry(st.name.clone()).or_default();
            if total <= *seen {
                continue;
            }
            let count = total - *seen;
            *seen = total;
            self.lost += count;
            tracing::warn!(
                "{count} alert(s)/incident(s) not delivered to the {} output",
                st.name
            );
            let rec = self.lost_record(&format!("output_{}", st.name), count, ts_ns);
            self.sinks.audit.append(&rec)?;
        }
        Ok(())
    }

    /// The end of the records: detection's last word, then a checkpoint when due.
    pub fn drained(&mut self) -> Result<()> {
        for a in self.blocked.drain() {
            self.alert(&a)?;
        }
        if let Some(d) = &mut self.detection {
            d.finish(&mut self.sinks)?;
        }
        self.sinks.audit.flush()
    }

    /// Per-pump work: a signed checkpoint when due; new certificates become durable within a
    /// second (see proctor_evidence::cert).
    pub fn flush(&mut self) -> Result<()> {
        self.sinks.audit.flush()?;
        self.sinks.certs.sync_due()?;
        self.sinks.incident_certs.sync_due()?;
        Ok(())
    }

    /// Alerts the socket could not deliver since the last report, as a `lost` record (written,
    /// not shown to detection: it is about proctor's own output).
    fn socket_lost(&mut self, dropped_total: u64, ts_ns: u64) -> Result<()> {
        if dropped_total <= self.sinks.socket_dropped {
            return Ok(());
        }
        let count = dropped_total - self.sinks.socket_dropped;
        self.sinks.socket_dropped = dropped_total;
        self.lost += count;
        tracing::warn!("{count} alert(s) could not be delivered to the alert socket");
        let rec = self.lost_record("alert_delivery", count, ts_ns);
        self.sinks.count_lost("alert_delivery", count);
        self.sinks.count(RecordKind::Lost.as_str());
        self.sinks.audit.append(&rec)
    }

    /// Write a record proctor makes about itself (start, stop, mode, containment).
    pub fn write<T: TypedRecord>(&mut self, rec: &T) -> Result<()> {
        self.sinks.count(T::KIND.as_str());
        self.sinks.audit.append(&rec.tagged())
    }

    /// The common fields of a record about proctor itself.
    pub fn proctor_common(&self, ts_ns: u64) -> Common {
        Common::proctor(ts_ns, &self.agent_id)
    }

    /// Close the evidence: alert socket (counting what it could not deliver) and the audit
    /// log's final signed checkpoint. Call after the last record.
    pub fn finish(&mut self, ts_ns: u64) -> Result<()> {
        if let Some(s) = self.sinks.socket.take() {
            let (_sent, dropped) = s.close(Duration::from_secs(1));
            self.socket_lost(dropped, ts_ns)?;
        }
        if let Some(mut o) = self.sinks.outputs.take() {
            let stats = o.close(OUTPUTS_CLOSE);
            for st in &stats {
                tracing::info!(
                    "output {}: sent {}, dropped {}, failed {}, undelivered {}",
                    st.name,
                    st.sent,
                    st.dropped,
                    st.failed,
                    st.pending
                );
            }
            self.outputs_lost(&stats, ts_ns, true)?;
        }
        self.sinks.certs.sync()?;
        self.sinks.incident_certs.sync()?;
        self.sinks.audit.close()
    }

    /// Records written per type (observations, decisions, supervisor reports).
    pub fn counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.counts
    }

    pub fn lost_total(&self) -> u64 {
        self.lost
    }

    /// One line for humans on stderr: what was recorded and where.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .counts
            .iter()
            .filter(|(k, _)| **k != RecordKind::Lost.as_str())
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        format!(
            "proctor: recorded {} to {}; lost {}",
            if parts.is_empty() {
                "nothing".to_string()
            } else {
                parts.join(", ")
            },
            self.sinks.audit.path().display(),
            self.lost
        )
    }
}

/// DIR/denials.jsonl for appending: created 0644 unless it exists (then its mode and owner stay,
/// see [`prepare_denials`]), never through a link planted there (proctor writes as root).
fn open_denials(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Create DIR/denials.jsonl before the agent starts, so its path can go into the agent's
/// environment (`PROCTOR_DENIALS`). Like every output it is 0600 (an agent running as
/// proctor's user reads it anyway); for an agent run as another user (`gid`), the file is
/// root-owned with that user's group and mode 0640: the agent reads why it was refused, cannot
/// write or forge lines, and nobody else reads them. Returns the absolute path.
pub fn prepare_denials(dir: &Path, gid: Option<libc::gid_t>) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("cannot find {}", dir.display()))?;
    let path = dir.join("denials.jsonl");
    let f = open_denials(&path)?;
    if let Some(gid) = gid {
        std::os::unix::fs::fchown(&f, None, Some(gid))
            .with_context(|| format!("cannot give {} to group {gid}", path.display()))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o640))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::{DetectOpts, Loaded};
    use crate::enforcement::decision_alert;
    use proctor_model::{Decision, DecisionLayer, DecisionVerdict, DecisionWhat, Family, SockAddr};
    use serde_json::{json, Value};

    const ROOT: u32 = 100;

    #[test]
    fn denials_file_is_prepared_for_the_agents_group_only() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = prepare_denials(dir.path(), None).unwrap();
        assert!(p.is_absolute() && p.ends_with("denials.jsonl"));
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        // Our own gid stands in for the agent's (a non-root test may only give a file to it).
        let gid = unsafe { libc::getegid() };
        let q = prepare_denials(dir.path(), Some(gid)).unwrap();
        let m = std::fs::metadata(&q).unwrap();
        assert_eq!((m.mode() & 0o777, m.gid()), (0o640, gid));
        // A link planted in its place is never followed.
        std::fs::remove_file(&q).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &q).unwrap();
        assert!(prepare_denials(dir.path(), None).is_err());
    }

    fn pipeline(dir: &Path) -> Pipeline {
        let (signer, _) = Signer::load_or_create(&dir.join("state")).expect("a signing key");
        let out = dir.join("out");
        let sinks = Sinks::open(&out, Arc::new(signer), "agent", None).expect("sinks");
        let mut p = Pipeline::new(sinks, "agent".into());
        p.set_root(Subject {
            pid: ROOT,
            ppid: 1,
            comm: Bytes::from("agent"),
            exec_id: String::new(),
        });
        p
    }

    /// A record from its JSON form (the audit log's), so the tests say only what matters.
    fn rec(pid: u32, event: Value) -> Record {
        let mut v = event;
        v["ts_ns"] = json!(1_000 + u64::from(pid));
        v["agent_id"] = json!("agent");
        v["pid"] = json!(pid);
        v["ppid"] = json!(if pid == ROOT { 1 } else { ROOT });
        v["comm"] = json!("sh");
        v["exec_id"] = json!(format!("{pid}-1-1"));
        serde_json::from_value(v).expect("a valid record")
    }

    /// Close the evidence and read the audit log back.
    fn written(mut p: Pipeline, dir: &Path) -> Vec<Value> {
        p.finish(9_999).expect("finish");
        std::fs::read_to_string(dir.join("out/audit.jsonl"))
            .expect("audit.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON lines"))
            .collect()
    }

    fn types(lines: &[Value]) -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l["type"].as_str())
            .filter(|t| !matches!(*t, "segment_start" | "checkpoint"))
            .collect()
    }

    #[test]
    fn observations_are_tracked_written_and_counted_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = pipeline(dir.path());
        let fork = rec(ROOT, json!({"type": "fork", "child_pid": 101}));
        let exec = rec(
            ROOT,
            json!({"type": "exec", "filename": "/bin/sh", "argv": ["sh"],
            "argv_truncated": false, "dev": 1, "ino": 2}),
        );
        let exit = rec(101, json!({"type": "exit", "exit_code": 0}));
        assert_eq!(
            p.track(&fork),
            Seen { root_changed: true },
            "first record names the root"
        );
        p.observe(&fork).unwrap();
        assert_eq!(p.live_count(|_| true), 2);
        assert_eq!(
            p.track(&exec),
            Seen { root_changed: true },
            "the root exec'd"
        );
        assert_eq!(p.root().exec_id, format!("{ROOT}-1-1"));
        p.observe(&exec).unwrap();
        assert_eq!(p.track(&exit), Seen::default());
        p.observe(&exit).unwrap();
        assert_eq!(p.live_count(|_| true), 1, "the child exited");
        assert_eq!(p.live_count(|_| false), 0, "gone from /proc: not live");
        assert_eq!(
            p.counts().iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
            [("exec", 1), ("exit", 1), ("fork", 1)]
        );
        assert!(
            p.summary().contains("exec 1, exit 1, fork 1"),
            "{}",
            p.summary()
        );
        let lines = written(p, dir.path());
        assert_eq!(types(&lines), ["fork", "exec", "exit"]);
        assert_eq!(
            lines.last().unwrap()["final"],
            true,
            "closed with a final checkpoint"
        );
    }

    fn blocked_connect(verdict: DecisionVerdict) -> DecisionRecord {
        DecisionRecord {
            decision: Decision {
                what: DecisionWhat::Connect,
                verdict,
                layer: DecisionLayer::CgroupBpf,
                dev: None,
                ino: None,
                target_pid: None,
                dest: Some(SockAddr {
                    family: Family::Inet,
                    addr: Some("203.0.113.9".into()),
                    port: Some(443),
                    path: None,
                }),
                path: None,
                requested: None,
                resolution: None,
            },
            common: Common {
                ts_ns: 5,
                agent_id: "agent".into(),
                pid: 101,
                ppid: ROOT,
                comm: Bytes::from("curl"),
                exec_id: "101-1-1".into(),
            },
            kseq: None,
        }
    }

    #[test]
    fn a_ptrace_target_in_the_tree_is_tracked_even_after_the_kernel_forgot_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = pipeline(dir.path());
        p.track(&rec(ROOT, json!({"type": "fork", "child_pid": 102})));
        let ptrace = |target: u32| {
            rec(
                ROOT,
                json!({"type": "ptrace", "request": "attach", "request_code": 16,
                "tracer_pid": ROOT, "target_pid": target, "tracer_tracked": true,
                "target_tracked": false}),
            )
        };
        let tracked = |mut r: Record| {
            p.mark_tree_target(&mut r);
            match r.event {
                Event::Ptrace(x) => x.target_tracked,
                _ => unreachable!(),
            }
        };
        assert!(tracked(ptrace(102)), "a child of the tree is the tree's");
        assert!(!tracked(ptrace(999)), "a process outside stays outside");
    }

    #[test]
    fn decisions_map_to_alerts_by_verdict() {
        let a = decision_alert(&blocked_connect(DecisionVerdict::Blocked));
        assert_eq!(
            (a.channel.as_str(), a.kind.as_str()),
            ("L4", "EGRESS_BLOCKED")
        );
        assert_eq!(a.action, "BLOCKED");
        assert_eq!(a.pid, 101);
        assert!(
            a.summary.contains("connect to 203.0.113.9:443 blocked"),
            "{}",
            a.summary
        );
        let w = decision_alert(&blocked_connect(DecisionVerdict::WouldBlock));
        assert_eq!(w.action, "WOULD_BLOCK");
        assert!(
            w.summary.ends_with("would be blocked (shadow mode)"),
            "{}",
            w.summary
        );
        let mut open = blocked_connect(DecisionVerdict::Blocked);
        open.decision.what = DecisionWhat::Open;
        open.decision.dest = None;
        open.decision.path = Some(Bytes::from("/etc/shadow"));
        let o = decision_alert(&open);
        assert_eq!(
            (o.channel.as_str(), o.kind.as_str()),
            ("SENSITIVE_FILE", "FILE_BLOCKED")
        );
        assert!(o.summary.contains("open of /etc/shadow"), "{}", o.summary);
    }

    #[test]
    fn a_decision_is_a_record_an_alert_and_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = pipeline(dir.path());
        let d = blocked_connect(DecisionVerdict::Blocked);
        p.decision(&d, Some(&decision_alert(&d))).unwrap();
        assert_eq!(p.counts().get("decision"), Some(&1));
        let lines = written(p, dir.path());
        assert_eq!(types(&lines), ["decision", "alert", "certificate"]);
        // The agent can read why: one line in DIR/denials.jsonl.
        let denials = std::fs::read_to_string(dir.path().join("out/denials.jsonl")).unwrap();
        assert_eq!(denials.lines().count(), 1, "{denials}");
        let v: serde_json::Value = serde_json::from_str(denials.trim()).unwrap();
        assert_eq!(
            (v["what"].as_str(), v["pid"].as_u64()),
            (Some("connect"), Some(101))
        );
        assert!(
            v["reason"]
                .as_str()
                .unwrap()
                .contains("203.0.113.9:443 blocked"),
            "{v}"
        );
        let decision = lines.iter().find(|l| l["type"] == "decision").unwrap();
        assert_eq!(decision["what"], "connect");
        assert_eq!(decision["verdict"], "blocked");
        assert_eq!(decision["layer"], "cgroup_bpf");
        assert_eq!(decision["dest"]["addr"], "203.0.113.9");
        let alert = lines.iter().find(|l| l["type"] == "alert").unwrap();
        assert_eq!(alert["kind"], "EGRESS_BLOCKED");
        assert_eq!(alert["comm"], "", "no trigger record: no comm");
        let certs: Vec<_> = std::fs::read_dir(dir.path().join("out/alerts"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "cal"))
            .collect();
        assert_eq!(certs.len(), 1, "one signed certificate");
    }

    #[test]
    fn losses_are_counted_said_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = pipeline(dir.path());
        let l1 = p.lost_record("exec", 3, 10);
        let l2 = p.lost_record("recursion", 2, 11);
        p.lost(vec![l1, l2]).unwrap();
        assert_eq!(p.lost_total(), 5);
        assert_eq!(p.counts().get("lost"), Some(&2));
        assert!(p.summary().ends_with("lost 5"), "{}", p.summary());
        assert!(
            !p.summary().contains("lost 2,"),
            "lost records are not listed as recorded"
        );
        let lines = written(p, dir.path());
        let lost: Vec<_> = lines.iter().filter(|l| l["type"] == "lost").collect();
        assert_eq!(lost.len(), 2);
        assert_eq!(
            (lost[0]["what"].as_str(), lost[0]["count"].as_u64()),
            (Some("exec"), Some(3))
        );
        assert_eq!(lost[0]["pid"], ROOT, "aggregate records name the root");
    }

    #[test]
    fn kernel_number_gaps_are_declared_and_the_unexplained_ones_are_losses() {
        use proctor_model::kseq::{Gap, GapReason};
        let dir = tempfile::tempdir().unwrap();
        let mut p = pipeline(dir.path());
        let l = p.lost_record("file_open", 4, 10);
        p.lost(vec![l]).unwrap();
        let gap = |first, last, reason| Gap {
            kslot: 1,
            first,
            last,
            reason,
        };
        // Four numbers lost, four counted by the kernel; two merged TLS chunks.
        p.kseq_gaps(
            &[gap(5, 8, GapReason::Lost), gap(11, 12, GapReason::Merged)],
            20,
        )
        .unwrap();
        // Three more lost that no counter saw.
        p.kseq_gaps(&[gap(30, 32, GapReason::Lost)], 30).unwrap();
        let lines = written(p, dir.path());
        let gaps: Vec<_> = lines.iter().filter(|l| l["type"] == "kseq_gap").collect();
        assert_eq!(gaps.len(), 3);
        assert_eq!(
            (&gaps[0]["first"], &gaps[0]["last"], &gaps[0]["count"]),
            (&json!(5), &json!(8), &json!(4))
        );
        assert_eq!(gaps[1]["reason"], "merged");
        assert_eq!(gaps[2]["kslot"], 1);
        let unexplained: Vec<_> = lines
            .iter()
            .filter(|l| l["type"] == "lost" && l["what"] == crate::kseq::UNACCOUNTED)
            .collect();
        assert_eq!(unexplained.len(), 1, "{lines:?}");
        assert_eq!(unexplained[0]["count"], 3);
    }

    #[test]
    fn metrics_count_every_record_the_audit_log_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = pipeline(dir.path());
        let m = Arc::new(proctor_metrics::Metrics::new("test"));
        p.sinks.metrics = Some(proctor_metrics::Recorder::new(m.clone()));
        p.write(&proctor_model::Containment {
            action: "freeze".into(),
            result: proctor_model::ContainResult::Done,
            error: None,
            requested_by: proctor_model::Requester {
                pid: 1,
                uid: 0,
                gid: 0,
                exe: None,
            },
            common: p.proctor_common(1),
        })
        .unwrap();
        for r in [
            rec(ROOT, json!({"type": "fork", "child_pid": 101})),
            rec(101, json!({"type": "exit", "exit_code": 0})),
        ] {
            p.observe(&r).unwrap();
        }
        let l1 = p.lost_record("exec", 3, 10);
        let l2 = p.lost_record("track_full", 2, 11);
        p.lost(vec![l1, l2]).unwrap();
        let alert: Alert = serde_json::from_value(json!({
            "agent_id": "agent", "ts_ns": 5, "channel": "L2", "kind": "LLM_AGENT_HIJACK",
            "divergence": 1.0, "pid": ROOT, "exec_id": "", "summary": "sh", "trigger": [],
            "syscall_trace": [], "action": "ALERT_EMITTED", "count": 1, "severity": "high"
        }))
        .expect("an alert");
        p.alert(&alert).unwrap();
        let text = m.encode();
        let lines = written(p, dir.path());
        let mut logged: BTreeMap<&str, u64> = BTreeMap::new();
        for t in types(&lines).into_iter().filter(|t| *t != "certificate") {
            *logged.entry(t).or_default() += 1;
        }
        for (kind, n) in &logged {
            let series = format!("proctor_records_total{{kind=\"{kind}\"}} {n}\n");
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
        assert_eq!(
            text.matches("proctor_records_total{").count(),
            logged.len(),
            "no kind counted that the log does not hold:\n{text}"
        );
        for series in [
            "proctor_lost_events_total{kind=\"exec\",reason=\"ringbuf_full\"} 3\n",
            "proctor_lost_events_total{kind=\"fork\",reason=\"tracked_set_full\"} 2\n",
            "proctor_alerts_total{kind=\"LLM_AGENT_HIJACK\",channel=\"L2\",severity=\"high\"} 1\n",
        ] {
            assert!(text.contains(series), "{series} missing:\n{text}");
        }
    }

    #[test]
    fn tls_plaintext_is_redacted_before_it_is_written() {
        let secret = "sk-abcdefghijklmnopqrstuvwxyz123456";
        let tls = |pid| {
            rec(
                pid,
                json!({"type": "tls", "direction": "send", "lib": "openssl", "conn": 7,
                "len": 80, "truncated": false, "redacted": 0,
                "data": format!("GET / HTTP/1.1\r\nAuthorization: Bearer {secret}\r\n\r\n")}),
            )
        };
        for raw in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut p = pipeline(dir.path());
            p.tls = Some(TlsWatch::new(raw, 65536));
            let (r, follow) = p.plaintext(tls(101));
            p.observe(&r).unwrap();
            for f in follow {
                p.observe(&f).unwrap();
            }
            let lines = written(p, dir.path());
            let t = lines.iter().find(|l| l["type"] == "tls").unwrap();
            let data = t["data"].as_str().unwrap();
            assert_eq!(data.contains(secret), raw, "raw={raw}: {data}");
            assert_eq!(t["redacted"].as_u64().unwrap() > 0, !raw);
        }
        // Without --capture-tls there is no plaintext pipeline: records pass as they are.
        let dir = tempfile::tempdir().unwrap();
        let mut p = pipeline(dir.path());
        let (r, follow) = p.plaintext(tls(101));
        assert!(follow.is_empty());
        assert_eq!(r, tls(101));
    }

    /// A pipeline that judges from the first record (no learning), writing under DIR/out.
    fn detecting(dir: &Path) -> (Pipeline, PathBuf) {
        let mut p = pipeline(dir);
        let opts = DetectOpts {
            baseline: Duration::ZERO,
            profile: None,
            policy: None,
        };
        let loaded = Loaded::from_opts(&opts).unwrap();
        let out = dir.join("out");
        p.set_detection(Detection::new(&out, &opts, loaded, None, None, None).unwrap());
        (p, out)
    }

    /// A read of a credential file by pid 101: an alert for any policy.
    fn shadow_read() -> Record {
        rec(
            101,
            json!({"type": "file_open", "path": "/etc/shadow", "flags": 0,
            "access": "read", "create": false, "truncate": false, "dev": 1, "ino": 2}),
        )
    }

    #[test]
    fn detection_alerts_follow_their_trigger_through_the_one_alert_path() {
        let dir = tempfile::tempdir().unwrap();
        let (mut p, out) = detecting(dir.path());
        let open = shadow_read();
        p.track(&open);
        p.observe(&open).unwrap();
        p.tick(10_000_000_000).unwrap();
        p.drained().unwrap();
        let lines = written(p, dir.path());
        let t = types(&lines);
        let at = t.iter().position(|x| *x == "file_open").unwrap();
        let alert = lines
            .iter()
            .find(|l| l["type"] == "alert" && l["channel"] == "SENSITIVE_FILE")
            .unwrap_or_else(|| panic!("no sensitive-file alert in {t:?}"));
        assert_eq!(alert["pid"], 101);
        assert!(
            t[at..].contains(&"alert"),
            "the alert follows its trigger: {t:?}"
        );
        let jsonl = std::fs::read_to_string(out.join("alerts.jsonl")).unwrap();
        assert_eq!(
            jsonl.lines().count(),
            t.iter().filter(|x| **x == "alert").count()
        );
    }
    #[test]
    fn incidents_carry_who_and_where_and_are_signed_when_opened_and_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut p, out) = detecting(dir.path());
        let mut open = shadow_read();
        let cid = "3f1c8e2a9b7d4c6e5f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a";
        open.identity = Some(proctor_model::Identity {
            uid: 0,
            gid: 0,
            loginuid: u32::MAX,
            cgroup_id: 1,
            container: proctor_model::Container::from_fields("podman", cid, None),
        });
        assert!(open.identity.unwrap().container.is_some());
        p.track(&open);
        p.observe(&open).unwrap();
        p.tick(10_000_000_000).unwrap();
        p.drained().unwrap();
        let lines = written(p, dir.path());
        let incidents: Vec<&Value> = lines.iter().filter(|l| l["type"] == "incident").collect();
        assert!(
            incidents.len() >= 2,
            "opened, then closed at the end: {incidents:?}"
        );
        let (first, last) = (incidents[0], incidents[incidents.len() - 1]);
        assert_eq!(first["status"], "open");
        assert_eq!(last["status"], "closed");
        assert_eq!(first["id"], last["id"]);
        for i in &incidents {
            assert_eq!(i["host"], proctor_evidence::hostname().as_str(), "{i}");
            assert_eq!(i["uid"], 0, "{i}");
            assert_eq!(i["user"], "root", "{i}");
            // The container of the process, as on its alerts.
            assert_eq!(i["container_id"], cid, "{i}");
            assert_eq!(i["container_runtime"], "podman", "{i}");
            assert!(i.get("pod_uid").is_none(), "{i}");
            assert!(i["run_id"].as_str().is_some_and(|r| !r.is_empty()), "{i}");
        }
        let alert = lines
            .iter()
            .find(|l| l["type"] == "alert")
            .expect("an alert");
        assert_eq!(alert["container_id"], cid, "{alert}");
        // One certificate when it opened, one when it closed, each recorded in the chain.
        let certs: Vec<&Value> = lines
            .iter()
            .filter(|l| l["type"] == "certificate" && l["cert_format"] == "proctor-incident-cal/1")
            .collect();
        assert_eq!(certs.len(), 2, "{certs:?}");
        assert_eq!(last["certificate"], certs[1]["cert_file"]);
        let signed: Value = serde_json::from_slice(
            &std::fs::read(
                out.join("incidents")
                    .join(last["certificate"].as_str().unwrap()),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(signed["format"], "proctor-incident-cal/1");
        assert_eq!(signed["status"], "closed");
        assert_eq!(signed["uid"], 0);
        assert_eq!(signed["container_id"], cid);
        assert_eq!(signed["run_id"], last["run_id"]);
        let report = proctor_evidence::verify_paths(std::slice::from_ref(&out), None);
        assert_eq!(report.exit_code(), 0, "{}", report.render());
        // An edited incident certificate and a deleted one are both found.
        let first_cert = out
            .join("incidents")
            .join(certs[0]["cert_file"].as_str().unwrap());
        let text = std::fs::read_to_string(&first_cert).unwrap();
        std::fs::write(&first_cert, text.replace("\"open\"", "\"closed\"")).unwrap();
        let report = proctor_evidence::verify_paths(std::slice::from_ref(&out), None);
        assert_eq!(report.exit_code(), 1, "{}", report.render());
        std::fs::remove_file(&first_cert).unwrap();
        let report = proctor_evidence::verify_paths(std::slice::from_ref(&out), None);
        assert_eq!(report.exit_code(), 1, "{}", report.render());
        assert!(report.render().contains("deleted"), "{}", report.render());
    }
}
