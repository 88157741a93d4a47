//! The monitoring loop shared by `run` and `attach`: poll the sensor, write every record to the
//! audit log as it arrives, emit periodic scheduler summaries and loss records, and keep the set
//! of live processes of the agent's tree.

use crate::detection::Detection;
use crate::enforcement::Enforcement;
use crate::pipeline::{Pipeline, Sinks};
use crate::tls::{TlsOpts, TlsWatch};
use anyhow::{Context, Result};
use proctor_evidence::Signer;
use proctor_model::{
    Common, ContainResult, Containment, DecisionRecord, ModeChange, Record, SensorStart,
    TypedRecord,
};
use proctor_sensor::{procfs, Sensor, SensorConfig, Subject};
use std::collections::BTreeMap;
use std::path::PathBuf;
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

/// The kernel-facing shell around the [`Pipeline`]: polls the sensor, feeds the pipeline, and
/// carries out what the kernel side needs (root naming, TLS hooks, enforcement, supervisor,
/// control requests).
pub struct Monitor {
    pub sensor: Sensor,
    pub pipe: Pipeline,
    pub enforcement: Option<Enforcement>,
    /// The seccomp supervisor of an agent started by `run` (guard and approval flow).
    pub supervisor: Option<crate::seccomp::Supervisor>,
    out: PathBuf,
    mode_request: Arc<AtomicBool>,
    recursion_seen: u64,
    sched_every: Duration,
    last_periodic: Instant,
    wait: Duration,
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
        let sinks = Sinks::open(
            &opts.out,
            signer,
            &agent_id,
            opts.evidence.alert_socket.as_deref(),
        )?;
        let mut pipe = Pipeline::new(sinks, agent_id);
        pipe.tls = tls;
        let mut m = Monitor {
            sensor,
            pipe,
            enforcement: None,
            supervisor: None,
            out: opts.out.clone(),
            mode_request: Arc::new(AtomicBool::new(false)),
            recursion_seen: 0,
            sched_every: opts.sched_interval,
            last_periodic: Instant::now(),
            wait: MIN_WAIT,
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
        m.pipe.sinks.audit.flush()?;
        Ok(m)
    }

    /// Judge the run with `d`; certificates are bound to its profile's baseline, if it has one.
    pub fn set_detection(&mut self, d: Detection) {
        self.pipe.set_detection(d);
    }

    /// Close the evidence. Call after the last record.
    pub fn finish(&mut self) -> Result<()> {
        let now = self.sensor.now_wall_ns();
        self.pipe.finish(now)
    }

    /// Name the root of the agent's tree (for aggregate records) and count it live.
    pub fn set_root(&mut self, pid: u32) {
        self.pipe.set_root(Subject {
            pid,
            ppid: procfs::ppid(pid).unwrap_or(0),
            comm: procfs::comm(pid).unwrap_or_default(),
            exec_id: String::new(),
        });
        self.sensor.set_root(self.pipe.root().clone());
    }

    /// With `--capture-tls`: hook the TLS libraries of processes that were running before
    /// `attach` (the others are found after their exec).
    pub fn tls_adopt(&mut self, pids: &[u32]) {
        if let Some(w) = &mut self.pipe.tls {
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
        self.pipe.add_live(pid);
    }

    /// Processes of the tree believed alive (from fork/exit records and the initial walk).
    pub fn live_count(&mut self) -> usize {
        // An exit record lost to a full ring buffer must not keep `attach` waiting forever.
        self.pipe.live_count(procfs::exists)
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
        if let Some(w) = &mut self.pipe.tls {
            w.tick(&mut self.sensor);
        }
        self.decisions()?;
        self.supervised()?;
        self.control()?;
        if self.last_periodic.elapsed() >= self.sched_every {
            self.periodic()?;
        }
        self.pipe.flush()?;
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
        self.pipe.drained()
    }

    fn handle(&mut self, recs: Vec<Record>) -> Result<()> {
        for r in recs {
            if self.pipe.track(&r).root_changed {
                self.sensor.set_root(self.pipe.root().clone());
            }
            let (r, mut follow) = self.pipe.plaintext(r);
            if let Some(w) = &mut self.pipe.tls {
                follow.extend(w.observe(&mut self.sensor, &r));
            }
            self.pipe.observe(&r)?;
            let refusal = self
                .enforcement
                .as_ref()
                .and_then(|en| en.landlock_refusal(&r));
            if let Some(d) = refusal {
                self.decision(d)?;
            }
            for f in follow {
                self.pipe.observe(&f)?;
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
        let alert = match &mut self.enforcement {
            Some(en) => {
                en.annotate(&mut d);
                Some(en.alert_for(&d))
            }
            None => None,
        };
        self.pipe.decision(&d, alert.as_ref())
    }

    /// What the seccomp supervisor reported: `approval` and `tamper` records, and their alerts
    /// (a denied ask, a refused attempt on proctor) through the one alert path.
    fn supervised(&mut self) -> Result<()> {
        let Some(sup) = &self.supervisor else {
            return Ok(());
        };
        let events: Vec<crate::seccomp::Event> = sup.events.try_iter().collect();
        for ev in events {
            let pid = ev.pid();
            let exec_id = self.pipe.exec_id_of(pid);
            let c = crate::seccomp::Common {
                ts_ns: self.sensor.now_wall_ns(),
                agent_id: self.pipe.agent_id(),
                ppid: procfs::ppid(pid).unwrap_or(0),
                exec_id: &exec_id,
            };
            let rec = ev.record(&c);
            let alert = ev.alert(&c);
            self.pipe.supervised(&rec, alert.as_ref())?;
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

    fn periodic(&mut self) -> Result<()> {
        self.last_periodic = Instant::now();
        if let Some(s) = self.sensor.sched_summary(self.pipe.root()) {
            self.pipe.observe(&s)?;
        }
        let mut lost = self.sensor.take_lost(self.pipe.root());
        let misses = self.sensor.recursion_misses();
        if misses > self.recursion_seen {
            let now = self.sensor.now_wall_ns();
            lost.push(
                self.pipe
                    .lost_record("recursion", misses - self.recursion_seen, now),
            );
            self.recursion_seen = misses;
        }
        self.pipe.lost(lost)?;
        let now = self.sensor.now_wall_ns();
        self.pipe.tick(now)?;
        if let Some(en) = &mut self.enforcement {
            en.tick(&self.sensor);
        }
        Ok(())
    }

    /// The common fields of a record about proctor itself, now.
    pub fn proctor_common(&self) -> Common {
        self.pipe.proctor_common(self.sensor.now_wall_ns())
    }

    /// Write a record proctor makes about itself (start, stop, mode, containment).
    pub fn write<T: TypedRecord>(&mut self, rec: &T) -> Result<()> {
        self.pipe.write(rec)
    }

    /// One line for humans on stderr: what was recorded and where.
    pub fn summary(&self) -> String {
        self.pipe.summary()
    }

    pub fn counts(&self) -> &BTreeMap<&'static str, u64> {
        self.pipe.counts()
    }

    pub fn lost_total(&self) -> u64 {
        self.pipe.lost_total()
    }

    /// The LLM parser's counters, with `--capture-tls`.
    pub fn tls_stats(&self) -> Option<proctor_model::TlsParserStats> {
        self.pipe.tls.as_ref().map(TlsWatch::stats)
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
