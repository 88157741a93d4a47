//! The monitoring loop shared by `run` and `attach`: poll the sensor, write every record to the
//! audit log as it arrives, emit periodic scheduler summaries and loss records, and keep the set
//! of live processes of the agent's tree.

use crate::detection::{AlertSink, Detection};
use crate::enforcement::Enforcement;
use crate::tls::{TlsOpts, TlsWatch};
use anyhow::{Context, Result};
use proctor_detect::Baseline;
use proctor_evidence::{AlertSink as SocketSink, AuditLog, CertWriter, Signer};
use proctor_model::{
    Alert, AlertRecord, ApprovalRecord, BaselineEstablished, Bytes, Common, ContainResult,
    Containment, DecisionRecord, Event, ModeChange, Record, RecordKind, SensorStart, TamperRecord,
    TypedRecord,
};
use proctor_sensor::{procfs, Sensor, SensorConfig, Subject};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options common to every monitoring command.
#[derive(Clone, Debug)]
pub struct MonitorOpts {
    /// Output directory: audit.jsonl, alerts/, baseline.json
    pub out: PathBuf,
    /// Name of the agent in every record (default: the command's or process's name)
    pub agent_id: Option<String>,
    /// Period of the in-kernel scheduler summaries (`sched` records)
    pub sched_interval: Duration,
    /// Ring buffer size in bytes (power of two, at least 4096); smaller loses events sooner
    pub ringbuf_size: u32,
    pub evidence: EvidenceOpts,
    pub tls: TlsOpts,
}

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
        std::fs::create_dir_all(dir)
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

/// Bounds of the monitoring loop's wait for records (see [`Monitor::pump`]). With the kernel's
/// wake-up of the first record after a quiet spell (PR_WAKE_GAP_NS in bpf/lib/common.h),
/// MIN_WAIT bounds how long a record waits in the ring while records flow: most of the alert
/// latency.
const MIN_WAIT: Duration = Duration::from_millis(2);
const MAX_WAIT: Duration = Duration::from_millis(50);

/// Evidence options shared by every monitoring command.
#[derive(Clone, Debug)]
pub struct EvidenceOpts {
    /// Ed25519 private key (PKCS#8 PEM, mode 0600) that signs certificates and checkpoints
    /// (default: the state directory's key, created on first use)
    pub key: Option<PathBuf>,
    /// Push every alert as a JSON line to this Unix socket (e.g. `proctor sinkhole --listen`);
    /// never blocks detection: a bounded queue, reconnects, counted drops
    pub alert_socket: Option<PathBuf>,
}

/// The signing key named by `--key`, or the state directory's (created on first use).
pub fn load_signer(opts: &EvidenceOpts) -> Result<Arc<Signer>> {
    let signer = match &opts.key {
        Some(path) => Signer::load(path)?,
        None => {
            let dir = proctor_evidence::default_state_dir();
            let (s, created) = Signer::load_or_create(&dir)?;
            if created {
                eprintln!(
                    "proctor: created a signing key in {} (public key {}; give it to whoever verifies)",
                    dir.display(),
                    dir.join(proctor_evidence::PUBLIC_KEY_FILE).display()
                );
            }
            s
        }
    };
    Ok(Arc::new(signer))
}

/// Where records and alerts go.
pub struct Sinks {
    pub audit: AuditOut,
    certs: CertWriter,
    socket: Option<SocketSink>,
    socket_dropped: u64,
}

impl AlertSink for Sinks {
    /// An alert is an audit record, a signed certificate (itself recorded in the chain, so a
    /// deleted certificate shows) and, if asked, a line on the alert socket.
    fn alert(&mut self, alert: &Alert) -> Result<()> {
        let first = alert.trigger.first();
        let empty = Bytes::default();
        self.audit.append(
            &AlertRecord {
                alert,
                ppid: first.map_or(0, |r| r.ppid),
                comm: first.map_or(&empty, |r| &r.comm),
            }
            .tagged(),
        )?;
        let written = self.certs.write(alert)?;
        self.audit.log()?.record_certificate(&written)?;
        if let Some(s) = &self.socket {
            s.send(alert);
        }
        Ok(())
    }

    /// Certificates from now on are bound to this baseline; the chain records it too.
    fn baseline(&mut self, baseline: &Baseline, sha256: &str) -> Result<()> {
        self.certs.set_baseline_sha256(Some(sha256.to_string()));
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

pub struct Monitor {
    pub sensor: Sensor,
    pub sinks: Sinks,
    pub detection: Option<Detection>,
    pub enforcement: Option<Enforcement>,
    /// The seccomp supervisor of an agent started by `run` (guard and approval flow).
    pub supervisor: Option<crate::seccomp::Supervisor>,
    /// The latest exec_id seen per pid, for records the supervisor reports.
    exec_ids: std::collections::HashMap<u32, String>,
    out: PathBuf,
    mode_request: Arc<AtomicBool>,
    agent_id: String,
    root: Subject,
    live: HashSet<u32>,
    counts: BTreeMap<&'static str, u64>,
    lost: u64,
    recursion_seen: u64,
    sched_every: Duration,
    last_periodic: Instant,
    wait: Duration,
    /// `--capture-tls`: hooked libraries, blind binaries, the plaintext pipeline.
    tls: Option<TlsWatch>,
    tls_banner: String,
}

impl Monitor {
    /// Open the output and load the sensor. Nothing is tracked yet.
    /// `start` is the run's `sensor_start` record; the monitor fills in its TLS fields and
    /// common fields.
    pub fn start(opts: &MonitorOpts, agent_id: String, mut start: SensorStart) -> Result<Monitor> {
        // Sensor first: an environment error (not root, no BTF) leaves no output behind. Both
        // happen before the agent starts.
        let mut sensor = Sensor::load(SensorConfig {
            agent_id: agent_id.clone(),
            ringbuf_bytes: opts.ringbuf_size,
            tls_max_bytes: opts.tls.max_bytes(),
        })?;
        let (tls, hooked) = if opts.tls.capture_tls {
            let (w, hooked) = TlsWatch::start(&mut sensor, &opts.tls)?;
            (Some(w), hooked)
        } else {
            (None, Vec::new())
        };
        start.capture_tls = opts.tls.capture_tls;
        start.tls_redaction = opts.tls.redaction().into();
        if let Some(n) = opts.tls.max_bytes() {
            start.tls_max_bytes = Some(n);
            start.tls_hooked = Some(hooked.clone());
        }
        // The output directory before the key: a usage error must leave no key created behind.
        std::fs::create_dir_all(&opts.out)
            .with_context(|| format!("cannot create output directory {}", opts.out.display()))?;
        let signer = load_signer(&opts.evidence)?;
        let audit = AuditOut::open(&opts.out, signer.clone(), &agent_id)?;
        let certs = CertWriter::new(
            &opts.out.join("alerts"),
            signer,
            &proctor_evidence::hostname(),
            None,
        )?;
        let socket = match &opts.evidence.alert_socket {
            Some(p) => Some(
                SocketSink::spawn(p, 4096)
                    .with_context(|| format!("alert socket {}", p.display()))?,
            ),
            None => None,
        };
        let mut m = Monitor {
            sensor,
            sinks: Sinks {
                audit,
                certs,
                socket,
                socket_dropped: 0,
            },
            detection: None,
            enforcement: None,
            supervisor: None,
            exec_ids: std::collections::HashMap::new(),
            out: opts.out.clone(),
            mode_request: Arc::new(AtomicBool::new(false)),
            agent_id,
            root: Subject {
                pid: 0,
                ppid: 0,
                comm: Bytes::default(),
                exec_id: String::new(),
            },
            live: HashSet::new(),
            counts: BTreeMap::new(),
            lost: 0,
            recursion_seen: 0,
            sched_every: opts.sched_interval,
            last_periodic: Instant::now(),
            wait: MIN_WAIT,
            tls,
            tls_banner: opts.tls.banner(&hooked),
        };
        // `proctor mode DIR MODE` finds us through the pid file and signals SIGUSR1.
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, m.mode_request.clone())
            .context("installing the SIGUSR1 handler")?;
        let pidfile = opts.out.join("proctor.pid");
        std::fs::write(&pidfile, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", pidfile.display()))?;
        start.common = m.proctor_common();
        m.write(&start)?;
        m.sinks.audit.flush()?;
        Ok(m)
    }

    /// Judge the run with `d`; certificates are bound to its profile's baseline, if it has one.
    pub fn set_detection(&mut self, d: Detection) {
        self.sinks
            .certs
            .set_baseline_sha256(d.baseline_sha256.clone());
        self.detection = Some(d);
    }

    /// Close the evidence: alert socket (counting what it could not deliver) and the audit
    /// log's final signed checkpoint. Call after the last record.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(s) = self.sinks.socket.take() {
            let (_sent, dropped) = s.close(Duration::from_secs(1));
            self.socket_lost(dropped)?;
        }
        self.sinks.certs.sync()?;
        self.sinks.audit.close()
    }

    /// Alerts the socket could not deliver since the last report, as a `lost` record.
    fn socket_lost(&mut self, dropped_total: u64) -> Result<()> {
        if dropped_total <= self.sinks.socket_dropped {
            return Ok(());
        }
        let count = dropped_total - self.sinks.socket_dropped;
        self.sinks.socket_dropped = dropped_total;
        self.lost += count;
        tracing::warn!("{count} alert(s) could not be delivered to the alert socket");
        let rec = Record {
            event: Event::Lost(proctor_model::Lost {
                what: "alert_delivery".into(),
                count,
            }),
            ts_ns: self.sensor.now_wall_ns(),
            agent_id: self.agent_id.clone(),
            pid: self.root.pid,
            ppid: self.root.ppid,
            comm: self.root.comm.clone(),
            exec_id: self.root.exec_id.clone(),
        };
        self.sinks.audit.append(&rec)
    }

    /// Name the root of the agent's tree (for aggregate records) and count it live.
    pub fn set_root(&mut self, pid: u32) {
        self.root = Subject {
            pid,
            ppid: procfs::ppid(pid).unwrap_or(0),
            comm: procfs::comm(pid).unwrap_or_default(),
            exec_id: String::new(),
        };
        self.sensor.set_root(self.root.clone());
        self.live.insert(pid);
    }

    /// With `--capture-tls`: hook the TLS libraries of processes that were running before
    /// `attach` (the others are found after their exec).
    pub fn tls_adopt(&mut self, pids: &[u32]) {
        if let Some(w) = &mut self.tls {
            for &pid in pids {
                w.adopt(&mut self.sensor, pid);
            }
        }
    }

    /// The start-up banner's TLS line.
    pub fn tls_banner(&self) -> &str {
        &self.tls_banner
    }

    pub fn add_live(&mut self, pid: u32) {
        self.live.insert(pid);
    }

    /// Processes of the tree believed alive (from fork/exit records and the initial walk).
    pub fn live_count(&mut self) -> usize {
        // An exit record lost to a full ring buffer must not keep `attach` waiting forever.
        self.live.retain(|&p| procfs::exists(p));
        self.live.len()
    }

    /// Wait for records and handle them; also runs the periodic work. The wait is 2 ms while
    /// records flow and backs off to 50 ms when the agent is idle: the kernel wakes us at once
    /// for the first record after a quiet spell of 5 ms, when its ring is filling, and for
    /// urgent records (ptrace, enforcement decisions).
    pub fn pump(&mut self) -> Result<usize> {
        let recs = self.sensor.poll(self.wait);
        let n = recs.len();
        self.wait = if n > 0 {
            MIN_WAIT
        } else {
            (self.wait * 2).min(MAX_WAIT)
        };
        self.handle(recs)?;
        if let Some(w) = &mut self.tls {
            w.tick(&mut self.sensor);
        }
        self.decisions()?;
        self.supervised()?;
        self.control()?;
        if self.last_periodic.elapsed() >= self.sched_every {
            self.periodic()?;
        }
        self.sinks.audit.flush()?;
        // New certificates become durable within a second (see proctor_evidence::cert).
        self.sinks.certs.sync_due()?;
        Ok(n)
    }

    /// Drain everything still in the ring buffer and write the final summaries.
    pub fn drain(&mut self) -> Result<()> {
        loop {
            let recs = self.sensor.drain();
            if recs.is_empty() {
                break;
            }
            self.handle(recs)?;
        }
        let partial = self.sensor.flush_tls();
        self.handle(partial)?;
        self.decisions()?;
        self.supervised()?;
        self.periodic()?;
        if let Some(d) = &mut self.detection {
            d.finish(&mut self.sinks)?;
        }
        self.sinks.audit.flush()
    }

    fn handle(&mut self, recs: Vec<Record>) -> Result<()> {
        for r in recs {
            match &r.event {
                Event::Fork(f) => {
                    self.live.insert(f.child_pid);
                }
                Event::Exit(_) => {
                    self.live.remove(&r.pid);
                    self.exec_ids.remove(&r.pid);
                }
                Event::Exec(_) if r.pid == self.root.pid => {
                    self.root.exec_id = r.exec_id.clone();
                    self.root.comm = r.comm.clone();
                    self.root.ppid = r.ppid;
                    self.sensor.set_root(self.root.clone());
                }
                _ => {}
            }
            if r.pid == self.root.pid && self.root.exec_id.is_empty() {
                self.root.exec_id = r.exec_id.clone();
                self.sensor.set_root(self.root.clone());
            }
            // TLS plaintext goes through its pipeline (LLM parsing on the raw bytes, then
            // redaction) before it is written anywhere.
            let (r, mut follow) = match (&mut self.tls, &r.event) {
                (Some(w), Event::Tls(_)) => w.process(r),
                _ => (r, Vec::new()),
            };
            if let Some(w) = &mut self.tls {
                follow.extend(w.observe(&mut self.sensor, &r));
            }
            if self.supervisor.is_some()
                && !matches!(r.event, Event::Exit(_))
                && self.exec_ids.get(&r.pid) != Some(&r.exec_id)
            {
                self.exec_ids.insert(r.pid, r.exec_id.clone());
            }
            *self.counts.entry(r.event.type_name()).or_default() += 1;
            self.record(&r)?;
            let refusal = self
                .enforcement
                .as_ref()
                .and_then(|en| en.landlock_refusal(&r));
            if let Some(d) = refusal {
                self.decision(d)?;
            }
            for f in follow {
                *self.counts.entry(f.event.type_name()).or_default() += 1;
                self.record(&f)?;
            }
        }
        Ok(())
    }

    /// Kernel enforcement decisions: each is an audit record and an alert.
    fn decisions(&mut self) -> Result<()> {
        for d in self.sensor.take_decisions() {
            self.decision(d)?;
        }
        Ok(())
    }

    fn decision(&mut self, mut d: DecisionRecord) -> Result<()> {
        if let Some(en) = &self.enforcement {
            en.annotate(&mut d);
        }
        *self
            .counts
            .entry(DecisionRecord::KIND.as_str())
            .or_default() += 1;
        self.sinks.audit.append(&d.tagged())?;
        if let Some(en) = &mut self.enforcement {
            let alert = en.alert_for(&d);
            if let Some(det) = &mut self.detection {
                det.emit(&alert, &mut self.sinks)?;
            } else {
                self.sinks.alert(&alert)?;
            }
        }
        Ok(())
    }

    /// What the seccomp supervisor reported: `approval` and `tamper` records, and their alerts
    /// (a denied ask, a refused attempt on proctor) through the one alert path.
    fn supervised(&mut self) -> Result<()> {
        let Some(sup) = &self.supervisor else {
            return Ok(());
        };
        let events: Vec<crate::seccomp::Event> = sup.events.try_iter().collect();
        use crate::seccomp::Supervised;
        for ev in events {
            let pid = ev.pid();
            let exec_id = self.exec_ids.get(&pid).cloned().unwrap_or_default();
            let c = crate::seccomp::Common {
                ts_ns: self.sensor.now_wall_ns(),
                agent_id: &self.agent_id,
                ppid: procfs::ppid(pid).unwrap_or(0),
                exec_id: &exec_id,
            };
            let alert = ev.alert(&c);
            let ty = match ev.record(&c) {
                Supervised::Approval(rec) => {
                    self.sinks.audit.append(&rec.tagged())?;
                    ApprovalRecord::KIND
                }
                Supervised::Tamper(rec) => {
                    self.sinks.audit.append(&rec.tagged())?;
                    TamperRecord::KIND
                }
            };
            *self.counts.entry(ty.as_str()).or_default() += 1;
            if let Some(alert) = alert {
                if let Some(det) = &mut self.detection {
                    det.emit(&alert, &mut self.sinks)?;
                } else {
                    self.sinks.alert(&alert)?;
                }
            }
        }
        Ok(())
    }

    /// Stop the seccomp supervisor (what it still holds is denied) and record what it said.
    pub fn stop_supervisor(&mut self) -> Result<()> {
        if let Some(s) = &mut self.supervisor {
            s.stop();
        }
        self.supervised()
    }

    /// Carry out a request from `proctor mode` or `proctor contain`; recorded in the audit log.
    fn control(&mut self) -> Result<()> {
        use crate::enforcement::{Control, CONTROL_FILE};
        if !self.mode_request.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let path = self.out.join(CONTROL_FILE);
        let Ok(bytes) = std::fs::read(&path) else {
            return Ok(());
        };
        let _ = std::fs::remove_file(&path);
        let req: Control = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("ignoring a malformed control request: {e}");
                return Ok(());
            }
        };
        let Some(en) = &mut self.enforcement else {
            return Ok(());
        };
        match req {
            Control::Mode { mode: to } => {
                let from = en.mode;
                en.set_mode(&self.sensor, to)?;
                if let Some(s) = &self.supervisor {
                    s.set_mode(to);
                }
                eprintln!("proctor: mode {} -> {}", from.as_str(), to.as_str());
                let common = self.proctor_common();
                self.write(&ModeChange { from, to, common })
            }
            Control::Contain { action } => {
                let (action, result, error) = match en.contain(&self.sensor, action) {
                    Ok(done) => {
                        eprintln!("proctor: containment: {done}");
                        (done, ContainResult::Done, None)
                    }
                    Err(e) => {
                        eprintln!("proctor: containment {} failed: {e:#}", action.as_str());
                        (
                            action.as_str(),
                            ContainResult::Failed,
                            Some(format!("{e:#}")),
                        )
                    }
                };
                let common = self.proctor_common();
                self.write(&Containment {
                    action: action.into(),
                    result,
                    error,
                    common,
                })
            }
        }
    }

    /// Write one observation, then let detection judge it (the alert follows its trigger).
    fn record(&mut self, r: &Record) -> Result<()> {
        self.sinks.audit.append(r)?;
        if let Some(d) = &mut self.detection {
            d.observe(r, &mut self.sinks)?;
        }
        Ok(())
    }

    fn periodic(&mut self) -> Result<()> {
        self.last_periodic = Instant::now();
        if let Some(s) = self.sensor.sched_summary(&self.root) {
            *self.counts.entry(RecordKind::Sched.as_str()).or_default() += 1;
            self.record(&s)?;
        }
        let mut lost = self.sensor.take_lost(&self.root);
        let misses = self.sensor.recursion_misses();
        if misses > self.recursion_seen {
            let now = self.sensor.now_wall_ns();
            lost.push(Record {
                event: Event::Lost(proctor_model::Lost {
                    what: "recursion".into(),
                    count: misses - self.recursion_seen,
                }),
                ts_ns: now,
                agent_id: self.agent_id.clone(),
                pid: self.root.pid,
                ppid: self.root.ppid,
                comm: self.root.comm.clone(),
                exec_id: self.root.exec_id.clone(),
            });
            self.recursion_seen = misses;
        }
        for l in lost {
            if let Event::Lost(x) = &l.event {
                self.lost += x.count;
                tracing::warn!("lost {} {} event(s)", x.count, x.what);
            }
            *self.counts.entry(RecordKind::Lost.as_str()).or_default() += 1;
            self.record(&l)?;
        }
        let now = self.sensor.now_wall_ns();
        if let Some(d) = &mut self.detection {
            d.tick(now, &mut self.sinks)?;
        }
        if let Some(en) = &mut self.enforcement {
            en.tick(&self.sensor);
        }
        if let Some(dropped) = self.sinks.socket.as_ref().map(SocketSink::dropped) {
            self.socket_lost(dropped)?;
        }
        Ok(())
    }

    /// The common fields of a record about proctor itself, now.
    pub fn proctor_common(&self) -> Common {
        Common::proctor(self.sensor.now_wall_ns(), &self.agent_id)
    }

    /// Write a record proctor makes about itself (start, stop, mode, containment).
    pub fn write<T: TypedRecord>(&mut self, rec: &T) -> Result<()> {
        self.sinks.audit.append(&rec.tagged())
    }

    /// One line for humans on stderr: what was recorded and where.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .counts
            .iter()
            .filter(|(k, _)| **k != "lost")
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

    pub fn counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.counts
    }

    pub fn lost_total(&self) -> u64 {
        self.lost
    }

    /// The LLM parser's counters, with `--capture-tls`.
    pub fn tls_stats(&self) -> Option<serde_json::Value> {
        self.tls.as_ref().map(TlsWatch::stats)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // Only this proctor's own pid file: another run may have taken the directory since.
        let pidfile = self.out.join("proctor.pid");
        if std::fs::read_to_string(&pidfile)
            .ok()
            .map(|t| t.trim().to_string())
            == Some(std::process::id().to_string())
        {
            let _ = std::fs::remove_file(pidfile);
        }
    }
}
