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
    Alert, Bytes, Common, ContainResult, Containment, DecisionRecord, Event, Mode, ModeChange,
    PolicyReload, Record, Requester, SensorStart, Survivor, TypedRecord,
};
use proctor_sensor::{procfs, Sensor, SensorConfig, Subject};
use std::collections::{BTreeMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
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
    /// `--metrics ADDR`: serve `/metrics` and `/healthz` for this run.
    pub metrics: Option<crate::metrics::MetricsOpts>,
}

/// Bounds of the monitoring loop's wait for records (see [`Monitor::pump`]). The kernel wakes
/// the loop at once for records that can matter now (exec, connects and sends to a new
/// destination, DNS, ptrace, decisions, sensitive and refused opens), for the first record after
/// FLUSH_WAIT without a wake-up, and when a ring fills (emit_ring in bpf/lib/common.h); every
/// other record waits for this timer. So FLUSH_WAIT, which equals the kernel's PR_WAKE_GAP_NS, is
/// how long an ordinary record (a fork, an ordinary open, TLS plaintext) can sit in the ring
/// before it is read: while records flow the loop reads at least that often, and after a quiet
/// spell the next record wakes it. While urgent records flow the loop reads every
/// URGENT_WAIT instead and tells the kernel, which then wakes it for none of them
/// (`Sensor::next_wait`). Idle, the wait backs off to MAX_WAIT (periodic work, control requests).
pub const FLUSH_WAIT: Duration = proctor_sensor::WAKE_GAP;
const MAX_WAIT: Duration = Duration::from_millis(50);
/// Extra batches read to catch up with the ring before attributing the proxy's reports: bounded,
/// so a storm cannot hold the loop here; past it a report falls back to what was followed.
const INTERCEPT_CATCH_UP: usize = 16;

/// `wait`, or less so that the loop reads again just after `end` (wall-clock ns; `now` is the
/// time it was compared with), when a learning window ends then.
pub(crate) fn until(end: Option<u64>, now: u64, wait: Duration) -> Duration {
    end.map_or(wait, |end| {
        wait.min(Duration::from_nanos(end.saturating_sub(now) + 1_000_000))
    })
}

/// Evidence options shared by every monitoring command.
#[derive(Clone, Debug)]
pub struct EvidenceOpts {
    /// Ed25519 private key (PKCS#8 PEM, mode 0600) that signs certificates and checkpoints
    /// (default: the state directory's key, created on first use)
    pub key: Option<PathBuf>,
    /// Push every alert as a JSON line to this Unix socket (e.g. `proctor sinkhole --listen`);
    /// never blocks detection: a bounded queue, reconnects, counted drops
    pub alert_socket: Option<PathBuf>,
    /// syslog, webhook and the alert format (see proctor_outputs).
    pub outputs: proctor_outputs::OutputsConfig,
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
    /// `proctor mode` and `proctor contain` requests (see [`crate::control`]).
    control: Option<crate::control::Server>,
    /// Tracked processes already reported outside the agent cgroup (one alert each).
    escaped: HashSet<u32>,
    /// Tracked processes seen inside the agent cgroup (for `attach`, whose moves into it may
    /// fail legitimately: only a process that was inside can escape).
    inside: HashSet<u32>,
    /// Every process of the tree started inside the agent cgroup (`run`).
    pub born_in_cgroup: bool,
    build_ids: BuildIds,
    recursion_seen: u64,
    sched_every: Duration,
    last_periodic: Instant,
    wait: Duration,
    tls_banner: String,
    /// `--metrics`: the endpoint, served until the monitor is dropped.
    pub metrics: Option<crate::metrics::Endpoint>,
}

impl Monitor {
    /// Open the output and load the sensor. Nothing is tracked yet.
    /// `start` is the run's `sensor_start` record; the monitor fills in its TLS fields and
    /// common fields.
    pub fn start(opts: &MonitorOpts, agent_id: String, mut start: SensorStart) -> Result<Monitor> {
        // A refused metrics address is a usage error: said before anything is loaded or written.
        if let Some(m) = &opts.metrics {
            m.config.check()?;
        }
        // Sensor first: an environment error (not root, no BTF) leaves no output behind. Both
        // happen before the agent starts.
        let mut sensor = Sensor::load(SensorConfig {
            agent_id: agent_id.clone(),
            ringbuf_bytes: opts.ringbuf_size,
            tls_max_bytes: opts.tls.max_bytes(),
            file_reads: proctor_sensor::FileReads::from_env()?,
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
        proctor_evidence::create_private_dir(&opts.out)
            .with_context(|| format!("cannot create output directory {}", opts.out.display()))?;
        let signer = load_signer(&opts.evidence)?;
        let mut sinks = Sinks::open(
            &opts.out,
            signer,
            &agent_id,
            opts.evidence.alert_socket.as_deref(),
        )?;
        // After the output directory and key: a taken port fails the run before the agent
        // starts, like any other usage error.
        let (metrics, recorder) = match &opts.metrics {
            Some(m) => {
                let (e, r) = crate::metrics::Endpoint::start(m, &sensor)?;
                (Some(e), Some(r))
            }
            None => (None, None),
        };
        sinks.metrics = recorder;
        sinks.start_outputs(&opts.evidence.outputs)?;
        if let (Some(e), Some(w)) = (&metrics, sinks.output_watcher()) {
            crate::metrics::watch_outputs(e, w);
        }
        let mut pipe = Pipeline::new(sinks, agent_id);
        pipe.tls = tls;
        let mut m = Monitor {
            sensor,
            pipe,
            enforcement: None,
            supervisor: None,
            out: opts.out.clone(),
            control: None,
            escaped: HashSet::new(),
            inside: HashSet::new(),
            born_in_cgroup: false,
            build_ids: BuildIds::default(),
            recursion_seen: 0,
            sched_every: opts.sched_interval,
            last_periodic: Instant::now(),
            wait: FLUSH_WAIT,
            tls_banner: opts.tls.banner(&hooked),
            metrics,
        };
        // `proctor mode DIR MODE` and `proctor contain` speak to the control socket.
        // A socket path is at most 107 bytes: a deep output directory must not stop the run.
        m.control = match crate::control::Server::start(&opts.out) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("proctor: no control socket ({e:#}): `proctor mode` and `proctor contain` cannot reach this run");
                None
            }
        };
        let pidfile = opts.out.join("proctor.pid");
        std::fs::write(&pidfile, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", pidfile.display()))?;
        start.common = m.proctor_common();
        m.write(&start)?;
        m.pipe.sinks.audit.flush()?;
        if let Some(e) = &m.metrics {
            e.sample(&m.sensor);
            e.metrics.health.attached();
        }
        Ok(m)
    }

    /// Judge the run with `d`; certificates are bound to its profile's baseline, if it has one.
    pub fn set_detection(&mut self, d: Detection) {
        self.pipe.set_detection(d);
    }

    /// Close the evidence. Call after the last record.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(e) = &self.metrics {
            e.metrics.health.ended();
            e.metrics.set_agents(0, 0);
        }
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

    /// `--tls-intercept`: start the proxy and the kernel redirect for the agent's cgroup;
    /// returns the environment the agent needs and the banner line.
    pub fn tls_intercept(
        &mut self,
        cgroup_fd: std::os::fd::RawFd,
        opts: &crate::tls::TlsOpts,
    ) -> Result<(Vec<(&'static str, PathBuf)>, String)> {
        let w = self
            .pipe
            .tls
            .as_mut()
            .context("--tls-intercept needs --capture-tls")?;
        w.intercept(&mut self.sensor, cgroup_fd, opts, &self.out)
    }

    /// What the interception proxy reported so far (if it runs).
    fn take_captured(&mut self) -> Vec<proctor_intercept::Captured> {
        self.pipe
            .tls
            .as_mut()
            .map(|w| w.take_captured())
            .unwrap_or_default()
    }

    /// Kernel records just read, with the proxy's reports merged in by time, each attributed to
    /// its process as the kernel's records show it then. A client's exec and connect went into
    /// the ring before the proxy saw its bytes, but perhaps after the poll's read: with
    /// reports, the ring is read on up to where it is now, past one batch if need be.
    fn with_intercepted(
        &mut self,
        mut recs: Vec<Record>,
        captured: Vec<proctor_intercept::Captured>,
    ) -> Vec<Record> {
        if captured.is_empty() {
            return recs;
        }
        // Bounded: see INTERCEPT_CATCH_UP.
        for _ in 0..INTERCEPT_CATCH_UP {
            let more = self.sensor.drain();
            if more.is_empty() {
                break;
            }
            recs.extend(more);
        }
        let now = self.sensor.now_wall_ns();
        let root = self.pipe.lost_record("", 0, now);
        let agent_id = self.pipe.agent_id().to_string();
        let proxy = match &mut self.pipe.tls {
            Some(w) => w.intercepted(&agent_id, &root, captured, &recs),
            None => Vec::new(),
        };
        crate::tls::merge_by_time(recs, proxy)
    }

    /// The start-up banner's TLS line.
    pub fn tls_banner(&self) -> &str {
        &self.tls_banner
    }

    /// Sensitive files found on disk: detection matches opens of them by identity (a hard link
    /// or bind mount of `~/.aws/credentials` is still that file).
    pub fn add_sensitive_files(&mut self, files: Vec<crate::enforcement::SensitiveFile>) {
        if let (false, Some(d)) = (files.is_empty(), &mut self.pipe.detection) {
            d.add_sensitive_files(files);
        }
    }

    pub fn add_live(&mut self, pid: u32) {
        self.pipe.add_live(pid);
    }

    /// Processes of the tree still alive, for `sensor_stop`.
    pub fn survivors(&mut self) -> Vec<Survivor> {
        self.live_count();
        let mut pids: Vec<u32> = self.pipe.live().iter().copied().collect();
        pids.sort_unstable();
        pids.into_iter()
            .map(|pid| Survivor {
                pid,
                comm: procfs::comm(pid).unwrap_or_default(),
                exe: std::fs::read_link(format!("/proc/{pid}/exe"))
                    .ok()
                    .map(|p| Bytes(p.as_os_str().as_bytes().to_vec())),
            })
            .collect()
    }

    /// Is the agent's cgroup (if it has one) empty?
    pub fn agent_cgroup_empty(&self) -> bool {
        let Some(cg) = self.enforcement.as_ref().and_then(|e| e.cgroup.as_ref()) else {
            return true;
        };
        std::fs::read_to_string(cg.path.join("cgroup.procs")).map_or(true, |t| t.trim().is_empty())
    }

    /// Processes of the agent proctor stops watching: a signed alert naming them.
    pub fn survivors_alert(&mut self, survivors: &[Survivor]) -> Result<()> {
        let names: Vec<String> = survivors
            .iter()
            .map(|s| format!("{} ({})", s.pid, s.comm.escaped()))
            .collect();
        let root = self.pipe.root().clone();
        let alert = Alert::new(
            self.pipe.agent_id().to_string(),
            self.sensor.now_wall_ns(),
            "SELF_PROTECTION",
            "UNMONITORED_SURVIVORS",
            root.pid,
            root.exec_id,
            format!(
                "proctor stopped while {} process(es) of the agent still run, unmonitored: {}",
                survivors.len(),
                names.join(", ")
            ),
        );
        self.pipe.alert(&alert)
    }

    /// Processes of the tree believed alive (from fork/exit records and the initial walk).
    pub fn live_count(&mut self) -> usize {
        // An exit record lost to a full ring buffer must not keep `attach` waiting forever.
        self.pipe.live_count(procfs::exists)
    }

    /// Wait for records and handle them; also runs the periodic work. The wait is URGENT_WAIT
    /// just after urgent records, FLUSH_WAIT while other records flow, and backs off to MAX_WAIT
    /// when the agent is idle: the kernel wakes us for urgent records when we are not polling
    /// on the short timer, for the first record after a quiet spell, and when its ring is
    /// filling.
    pub fn pump(&mut self) -> Result<usize> {
        let recs = self.sensor.poll(self.wait);
        if let Some(e) = &self.metrics {
            e.metrics.health.beat();
        }
        // After the poll: a report the proxy made while it waited is handled before the exit
        // of its client that the poll brought (the proxy reports what it relays before the
        // client has it).
        let captured = self.take_captured();
        let recs = self.with_intercepted(recs, captured);
        let n = recs.len();
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
        // The learning window closes on time even when no record comes (an agent waiting on
        // its model): `baseline_established`, which an operator or a harness waits for, is not
        // up to a periodic pass late.
        let now = self.sensor.now_wall_ns();
        let learning_ends = self.pipe.close_learning(now)?;
        self.pipe.flush()?;
        // Decided last, just before the next poll: the kernel is told how soon we read again.
        self.wait = until(
            learning_ends,
            now,
            self.sensor.next_wait(n > 0, self.wait, MAX_WAIT),
        );
        Ok(n)
    }

    /// Drain everything still in the ring buffer and write the final summaries.
    pub fn drain(&mut self) -> Result<()> {
        // Numbers handed out from now on may belong to records no read will reach.
        let taken = self.sensor.session_taken(proctor_sensor::session::RUN_SLOT);
        loop {
            let recs = self.sensor.drain();
            if recs.is_empty() {
                break;
            }
            self.handle(recs)?;
        }
        // Repeat counts the kernel still holds (open_agg, conn_agg), after every ring record.
        let repeats = self.sensor.take_repeats();
        self.handle(repeats)?;
        let captured = self.take_captured();
        let partial = self.sensor.flush_tls();
        let partial = self.with_intercepted(partial, captured);
        self.handle(partial)?;
        self.decisions()?;
        self.supervised()?;
        self.periodic()?;
        // Every number the kernel handed out is in now, or lost.
        let gaps = self
            .sensor
            .finish_kseq(proctor_sensor::session::RUN_SLOT, taken);
        let now = self.sensor.now_wall_ns();
        self.pipe.kseq_gaps(&gaps, now)?;
        self.pipe.drained()
    }

    fn handle(&mut self, recs: Vec<Record>) -> Result<()> {
        // Before the records: a connect right after start must meet the names resolved at start.
        if let Some(en) = &mut self.enforcement {
            for (ip, port) in en.take_resolved() {
                if let Some(d) = &mut self.pipe.detection {
                    d.allow_resolved(ip, port);
                }
            }
        }
        for mut r in recs {
            self.pipe.mark_tree_target(&mut r);
            if let Event::Exec(e) = &mut r.event {
                e.build_id = self.build_ids.of(r.pid, e);
            }
            if self.pipe.track(&r).root_changed {
                self.sensor.set_root(self.pipe.root().clone());
            }
            let (r, mut follow) = self.pipe.plaintext(r);
            if let Some(w) = &mut self.pipe.tls {
                follow.extend(w.observe(&mut self.sensor, &r));
            }
            if let Event::Exit(_) = &r.event {
                self.inside.remove(&r.pid);
                self.escaped.remove(&r.pid);
            }
            // What enforcement makes of the record is read before the record goes on to the
            // pipeline, which keeps it; the decisions and tamper events still follow it in the
            // log.
            let refusal = self
                .enforcement
                .as_ref()
                .and_then(|en| en.landlock_refusal(&r));
            if let Some(en) = &mut self.enforcement {
                en.observe_task(&r);
            }
            let attempt = self
                .enforcement
                .as_ref()
                .and_then(|en| en.guard_violation(&r))
                .map(|a| (a, r.pid, r.comm.clone()));
            self.pipe.observe_owned(r)?;
            if let Some(d) = refusal {
                self.decision(d)?;
            }
            if let Some(((what, detail), pid, comm)) = attempt {
                // An open the kernel saw: a tamper record and a SELF_PROTECTION alert, as for
                // the syscalls the seccomp guard refuses.
                let ev = crate::seccomp::Event::Tamper {
                    pid,
                    comm,
                    syscall: what,
                    target: 0,
                    signal: None,
                    detail,
                };
                let kind = (what == "signing_key").then_some("SIGNING_KEY_ACCESS");
                self.supervised_event(ev, kind)?;
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
            self.supervised_event(ev, None)?;
        }
        Ok(())
    }

    /// One `approval` or `tamper` record and its alert (its kind replaced by `kind`, if given).
    fn supervised_event(&mut self, ev: crate::seccomp::Event, kind: Option<&str>) -> Result<()> {
        let pid = ev.pid();
        let exec_id = self.pipe.exec_id_of(pid);
        let c = crate::seccomp::Common {
            ts_ns: self.sensor.now_wall_ns(),
            agent_id: self.pipe.agent_id(),
            ppid: procfs::ppid(pid).unwrap_or(0),
            exec_id: &exec_id,
        };
        let rec = ev.record(&c);
        let mut alert = ev.alert(&c);
        if let (Some(a), Some(k)) = (&mut alert, kind) {
            a.kind = k.into();
        }
        self.pipe.supervised(&rec, alert.as_ref())
    }

    /// Stop the seccomp supervisor (what it still holds is denied) and record what it said.
    pub fn stop_supervisor(&mut self) -> Result<()> {
        if let Some(s) = &mut self.supervisor {
            s.stop();
        }
        self.supervised()
    }

    /// Carry out the requests of `proctor mode` and `proctor contain`; each is recorded with
    /// who asked. A requester inside the agent is refused, recorded as `tamper` and alerted.
    fn control(&mut self) -> Result<()> {
        let reqs: Vec<crate::control::Request> = match &self.control {
            Some(c) => c.requests.try_iter().collect(),
            None => return Ok(()),
        };
        for req in reqs {
            if self.is_agent_process(req.peer.pid) {
                // The request as sent, bounded: a policy reload carries a whole file.
                let mut asked = serde_json::to_string(&req.control).unwrap_or_default();
                if asked.len() > 512 {
                    let mut cut = 512;
                    while !asked.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    asked.truncate(cut);
                    asked.push_str("...");
                }
                let ev = crate::seccomp::Event::Tamper {
                    pid: u32::try_from(req.peer.pid).unwrap_or(0),
                    comm: procfs::comm(req.peer.pid as u32).unwrap_or_default(),
                    syscall: "control",
                    target: i64::from(std::process::id()),
                    signal: None,
                    detail: format!(
                        "control request {asked} from inside the agent (uid {}, exe {})",
                        req.peer.uid,
                        req.exe.as_deref().unwrap_or("?")
                    ),
                };
                req.reply(Err(
                    "refused: the requester is part of the monitored agent".into()
                ));
                self.supervised_event(ev, None)?;
                continue;
            }
            let by = req.requester();
            let result = self.carry_out(&req.control, by);
            req.reply(result);
        }
        Ok(())
    }

    /// Is `pid` part of the monitored tree: a live tracked process or a descendant of one, or
    /// in the agent's cgroup?
    fn is_agent_process(&self, pid: i32) -> bool {
        let Ok(mut p) = u32::try_from(pid) else {
            return false;
        };
        let root = self.pipe.root().pid;
        for _ in 0..128 {
            if self.pipe.live().contains(&p) || p == root {
                return true;
            }
            match procfs::ppid(p) {
                Some(pp) if pp > 1 => p = pp,
                _ => break,
            }
        }
        let cg = self.agent_cgroup_name();
        crate::seccomp::in_agent(pid, root, cg.as_deref())
    }

    /// The name of the agent's cgroup directory, if it has one.
    fn agent_cgroup_name(&self) -> Option<String> {
        self.enforcement
            .as_ref()
            .and_then(|e| e.cgroup.as_ref())
            .and_then(|c| c.path.file_name())
            .map(|n| n.to_string_lossy().into_owned())
    }

    /// One request from outside the agent: done and recorded (`mode_change`, `containment`
    /// with `requested_by`), or the reason it could not be.
    fn carry_out(
        &mut self,
        req: &crate::control::Control,
        by: Requester,
    ) -> std::result::Result<String, String> {
        use crate::control::Control;
        let Some(en) = &mut self.enforcement else {
            return Err("this proctor has no enforcement to control".into());
        };
        let (written, answer) = match req {
            Control::List | Control::SessionContain { .. } | Control::SessionMode { .. } => {
                return Err("this is a request for `proctor daemon`'s socket".into())
            }
            Control::Mode { mode: to } => {
                let to: Mode = *to;
                let from = en.mode;
                en.set_mode(&self.sensor, to)
                    .map_err(|e| format!("{e:#}"))?;
                if let Some(s) = &self.supervisor {
                    s.set_mode(to);
                }
                eprintln!("proctor: mode {} -> {}", from.as_str(), to.as_str());
                let common = self.proctor_common();
                (
                    self.write(&ModeChange {
                        from,
                        to,
                        requested_by: by,
                        common,
                    }),
                    Ok(format!("mode {} -> {}", from.as_str(), to.as_str())),
                )
            }
            Control::Policy { origin, text } => return self.reload_policy(origin, text, by),
            Control::Contain { action } => {
                let (done, result, error, answer) = match en.contain(&self.sensor, *action) {
                    Ok(done) => {
                        eprintln!("proctor: containment: {done}");
                        (
                            done,
                            ContainResult::Done,
                            None,
                            Ok(format!("containment: {done}")),
                        )
                    }
                    Err(e) => {
                        eprintln!("proctor: containment {} failed: {e:#}", action.as_str());
                        (
                            action.as_str(),
                            ContainResult::Failed,
                            Some(format!("{e:#}")),
                            Err(format!("containment {} failed: {e:#}", action.as_str())),
                        )
                    }
                };
                let common = self.proctor_common();
                (
                    self.write(&Containment {
                        action: done.into(),
                        result,
                        error,
                        requested_by: by,
                        common,
                    }),
                    answer,
                )
            }
        };
        if let Err(e) = written {
            return Err(format!("could not record the request: {e:#}"));
        }
        answer
    }

    /// Replace the policy in force by the overlay `text` (from `proctor policy reload` or a
    /// SIGHUP), applied where the layer allows, and write the chained `policy` record with who
    /// asked. A policy that does not check is refused whole and the one in force stays.
    pub fn reload_policy(
        &mut self,
        origin: &str,
        text: &str,
        by: Requester,
    ) -> std::result::Result<String, String> {
        let Some(en) = &mut self.enforcement else {
            return Err("this proctor has no enforcement to control".into());
        };
        let new = proctor_detect::Policy::from_toml_str(text, origin)
            .map_err(|e| format!("refused, the policy in force stays: {e}"))?;
        let (applied, not_applied) = en
            .reload(&self.sensor, &new)
            .map_err(|e| format!("reload failed: {e:#}"))?;
        if let Some(d) = &mut self.pipe.detection {
            d.set_network_allow(new.network.allow.clone());
        }
        let sha256 = proctor_model::sha256_hex(text.as_bytes());
        let mut answer = format!(
            "policy {origin} reloaded (sha256 {sha256}): {}",
            applied.join("; ")
        );
        if !not_applied.is_empty() {
            answer += &format!("; not applied: {}", not_applied.join("; "));
        }
        eprintln!("proctor: {answer}");
        let common = self.proctor_common();
        self.write(&PolicyReload {
            origin: origin.into(),
            sha256,
            requested_by: by,
            applied,
            not_applied,
            common,
        })
        .map_err(|e| format!("could not record the request: {e:#}"))?;
        Ok(answer)
    }

    /// SIGHUP from `sender` (pid, uid): reload the policy file proctor was started with
    /// (`policy`; None: the built-in policy, which cannot have changed). A sender inside the
    /// agent is refused like a control request from there: a `tamper` record and an alert.
    pub fn sighup_reload(
        &mut self,
        sender: Option<(i32, u32)>,
        policy: Option<&std::path::Path>,
    ) -> Result<()> {
        let (pid, uid) = sender.unwrap_or((0, 0));
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|p| p.display().to_string());
        if pid > 0 && self.is_agent_process(pid) {
            let ev = crate::seccomp::Event::Tamper {
                pid: u32::try_from(pid).unwrap_or(0),
                comm: procfs::comm(pid as u32).unwrap_or_default(),
                syscall: "control",
                target: i64::from(std::process::id()),
                signal: Some(i64::from(libc::SIGHUP)),
                detail: format!(
                    "SIGHUP (policy reload) from inside the agent (uid {uid}, exe {})",
                    exe.as_deref().unwrap_or("?")
                ),
            };
            eprintln!("proctor: SIGHUP from inside the agent (pid {pid}) refused");
            return self.supervised_event(ev, None);
        }
        let gid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|st| {
                st.lines()
                    .find_map(|l| l.strip_prefix("Gid:"))
                    .and_then(|g| g.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0);
        let by = Requester { pid, uid, gid, exe };
        let (origin, text) = match policy {
            Some(p) => match std::fs::read_to_string(p) {
                Ok(t) => (p.display().to_string(), t),
                Err(e) => {
                    eprintln!(
                        "proctor: SIGHUP: cannot read policy {}: {e}; the policy in force stays",
                        p.display()
                    );
                    return Ok(());
                }
            },
            None => ("built-in".to_string(), String::new()),
        };
        if let Err(e) = self.reload_policy(&origin, &text, by) {
            eprintln!("proctor: SIGHUP: {e}");
        }
        Ok(())
    }

    /// Tracked processes that left the agent cgroup (the network layer and containment act on
    /// that cgroup): a `tamper` record and a CGROUP_ESCAPE alert each. The barriers (Landlock on
    /// the cgroup2 mount, clone3 refused) stop the known routes; this notices any other, within
    /// one periodic tick. Bounded per tick: a huge tree is checked in part.
    fn cgroup_escapes(&mut self) -> Result<()> {
        const MAX_CHECKED: usize = 4096;
        let Some(name) = self.agent_cgroup_name() else {
            return Ok(());
        };
        let mut gone = Vec::new();
        for &pid in self.pipe.live().iter().take(MAX_CHECKED) {
            if self.escaped.contains(&pid) {
                continue;
            }
            let Ok(cg) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
                continue;
            };
            let Some(v2) = cg.lines().find_map(|l| l.strip_prefix("0::")) else {
                continue;
            };
            let inside =
                v2.trim_end().ends_with(&format!("/{name}")) || v2.contains(&format!("/{name}/"));
            if inside {
                self.inside.insert(pid);
            } else if self.born_in_cgroup || self.inside.contains(&pid) {
                gone.push((pid, v2.trim_end().to_string()));
            }
        }
        for (pid, now) in gone {
            self.escaped.insert(pid);
            let ev = crate::seccomp::Event::Tamper {
                pid,
                comm: procfs::comm(pid).unwrap_or_default(),
                syscall: "cgroup_escape",
                target: 0,
                signal: None,
                detail: format!(
                    "tracked process {pid} left the agent cgroup {name} for {}: network blocking and containment no longer reach it",
                    now.escape_debug()
                ),
            };
            self.supervised_event(ev, Some("CGROUP_ESCAPE"))?;
        }
        Ok(())
    }

    fn periodic(&mut self) -> Result<()> {
        self.last_periodic = Instant::now();
        if let Some(e) = &self.metrics {
            e.sample(&self.sensor);
        }
        self.cgroup_escapes()?;
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
        let gaps = self.sensor.take_kseq_gaps();
        self.pipe.kseq_gaps(&gaps, now)?;
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

/// ELF build-ids of executed files: the content identity exec records carry. Kept by the file's
/// stamp, not its device+inode alone: a file rewritten in place (`cat /bin/bash > x`) keeps its
/// inode and must not keep the build-id of what it held before.
pub(crate) struct BuildIds(proctor_sensor::stamp::ContentCache<Option<String>>);

impl Default for BuildIds {
    fn default() -> BuildIds {
        BuildIds(proctor_sensor::stamp::ContentCache::new(Self::MAX))
    }
}

impl BuildIds {
    /// Distinct executables remembered; more is an exec of ever-new files (then forgotten).
    const MAX: usize = 4096;

    /// The build-id of what `pid` executed: known by the size and times the kernel saw at the
    /// exec, or read from the process's executable, or else from the path the kernel resolved,
    /// whichever is still that file with that stamp (the process may have exec'd again or
    /// exited, the path may be gone or rewritten in place, by the time we read).
    pub(crate) fn of(&mut self, pid: u32, e: &proctor_model::Exec) -> Option<String> {
        let paths = proctor_sensor::stamp::executed(pid, e.filename.as_bytes());
        let read = |f: std::fs::File| Some(proctor_detect::identity::build_id(&f));
        self.0
            .first(&paths, Some((e.dev, e.ino)), e.at_exec, read)?
    }
}
