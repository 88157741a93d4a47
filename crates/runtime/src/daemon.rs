//! `proctor daemon`: one sensor for the host, agents found by the kernel. The config's agent
//! rules become two kernel maps (executables by file identity, cgroup ids); an exec that matches
//! joins the tracked set in the exec tracepoint, before the new image runs, and its descendants
//! join at fork as under `run`. Here each matched tree is an agent session: its own pipeline
//! (audit log, detection with the agent's policy and profile, certificates) in
//! `STATE_DIR/runs/AGENT/SESSION/`. The kernel gives each matched tree a session slot (its tasks
//! carry it, children inherit it at fork) and every record its slot and that session's next
//! number: records are routed to sessions by slot (by pid where the kernel had no free slot: a
//! session owns its root and every pid a fork record of one of its processes names), gaps in a
//! session's numbers are declared in its log, and a session's mode is set on its slot, so the
//! kernel decides for each session in its own mode. The session ends when the last of its
//! processes exits, and its slot is given back.
//!
//! Rules by name (basename, build-id) and by cgroup path are resolved to files and cgroup ids at
//! start, on SIGHUP (config reload) and every few seconds (a unit started later, a binary
//! installed later).

use crate::config::{AgentRule, Config};
use crate::control::{Control, Request, Server};
use crate::detection::{DetectOpts, Detection, Loaded};
use crate::monitor::{load_signer, BuildIds, EvidenceOpts};
use crate::pipeline::{Pipeline, Sinks};
use anyhow::{Context, Result};
use proctor_model::{Event, Mode, Record, RunCounts, SensorStop, StopReason};
use proctor_sensor::{procfs, Sensor, SensorConfig, Subject};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Agent rules that can have an exec deny list in the kernel (bits of a deny_exec entry).
const MAX_DENY_RULES: usize = 32;

/// How often rules are resolved again and sessions checked for a lost exit record.
const RESOLVE_EVERY: Duration = Duration::from_secs(2);
/// The kernel wakes the loop for urgent records; the rest are read at least this often.
const MIN_WAIT: Duration = crate::monitor::FLUSH_WAIT;
const MAX_WAIT: Duration = Duration::from_millis(50);

/// An agent rule with its policy and profile read and validated.
struct Agent {
    rule: AgentRule,
    policy: proctor_detect::Policy,
    profile: Option<proctor_detect::Baseline>,
    /// Discovered once per rule (and reload), shared by its sessions.
    host: proctor_detect::HostFacts,
}

impl Agent {
    fn load(rule: &AgentRule) -> Result<Agent> {
        let loaded = Loaded::from_opts(&detect_opts(rule))
            .with_context(|| format!("agent {}", rule.name))?;
        Ok(Agent {
            rule: rule.clone(),
            host: proctor_detect::HostFacts::discover(&loaded.policy),
            policy: loaded.policy,
            profile: loaded.profile,
        })
    }
}

fn detect_opts(rule: &AgentRule) -> DetectOpts {
    DetectOpts {
        baseline: rule.baseline,
        profile: rule.profile.clone(),
        policy: rule.policy.clone(),
    }
}

/// Read every agent's policy and profile (`proctor config check` and daemon start).
pub fn check_agents(cfg: &Config) -> Result<()> {
    for r in &cfg.agents {
        Agent::load(r)?;
    }
    Ok(())
}

/// Where the kernel maps point: rule numbers are 1-based indexes into the agent list.
#[derive(Default, PartialEq)]
struct Resolved {
    exes: HashMap<(u64, u64), u32>,
    cgroups: HashMap<u64, u32>,
    /// cgroup directories per rule number (to attribute a record's own cgroup id to the rule
    /// that matched one of its ancestors).
    cgroup_dirs: Vec<(PathBuf, u32)>,
}

/// Resolve the rules to files and cgroup ids, as they are on disk now.
fn resolve(agents: &[Agent]) -> Resolved {
    let mut r = Resolved::default();
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let cg_root = proctor_sensor::features::mount_of("cgroup2");
    for (i, a) in agents.iter().enumerate() {
        let n = i as u32 + 1;
        for p in &a.rule.exe {
            if let Ok(m) = std::fs::metadata(p) {
                r.exes.entry((m.dev(), m.ino())).or_insert(n);
            }
        }
        if !a.rule.basename.is_empty() || !a.rule.build_id.is_empty() {
            for dir in a.rule.search.iter().chain(&path_dirs) {
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                for e in rd.flatten() {
                    let Ok(m) = std::fs::metadata(e.path()) else {
                        continue;
                    };
                    if !m.is_file() || m.mode() & 0o111 == 0 {
                        continue;
                    }
                    let key = (m.dev(), m.ino());
                    let by_name = a
                        .rule
                        .basename
                        .iter()
                        .any(|b| e.file_name().as_encoded_bytes() == b.as_bytes());
                    let by_id = !by_name
                        && !a.rule.build_id.is_empty()
                        && std::fs::File::open(e.path())
                            .ok()
                            .and_then(|f| proctor_detect::identity::build_id(&f))
                            .is_some_and(|id| a.rule.build_id.contains(&id));
                    if by_name || by_id {
                        r.exes.entry(key).or_insert(n);
                    }
                }
            }
        }
        if let Some(root) = &cg_root {
            for c in &a.rule.cgroup {
                let dir = Path::new(root).join(c.trim_start_matches('/'));
                if let Ok(m) = std::fs::metadata(&dir) {
                    r.cgroups.entry(m.ino()).or_insert(n);
                    r.cgroup_dirs.push((dir, n));
                }
            }
        }
    }
    r
}

impl Resolved {
    /// The rule an exec record of a new tree matched in the kernel.
    fn rule_of(&self, r: &Record, cgroup_cache: &mut HashMap<u64, u32>) -> Option<u32> {
        if let Event::Exec(e) = &r.event {
            if let Some(&n) = self.exes.get(&(e.dev, e.ino)) {
                return Some(n);
            }
        }
        let id = r.identity?.cgroup_id;
        if let Some(&n) = self.cgroups.get(&id).or_else(|| cgroup_cache.get(&id)) {
            return Some(n);
        }
        // Below a rule's cgroup: find the directory with that inode (cgroup trees are small).
        for (dir, n) in &self.cgroup_dirs {
            if find_inode(dir, id, 16) {
                if cgroup_cache.len() > 4096 {
                    cgroup_cache.clear();
                }
                cgroup_cache.insert(id, *n);
                return Some(*n);
            }
        }
        None
    }
}

fn find_inode(dir: &Path, ino: u64, depth: u32) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() && (m.ino() == ino || (depth > 0 && find_inode(&e.path(), ino, depth - 1))) {
            return true;
        }
    }
    false
}

/// One agent session: a matched tree and its pipeline.
struct Session {
    id: String,
    agent: String,
    dir: PathBuf,
    root: u32,
    mode: Mode,
    started_ns: u64,
    pipe: Pipeline,
    /// The kernel's session slot (0: none was free when the tree started).
    slot: u32,
    /// The agent rule that opened it (1-based).
    rule: u32,
    /// The kernel's count of the session's numbers when the daemon began its last read of the
    /// rings (set at shutdown, when the tree may still be running).
    taken_at_stop: Option<u64>,
    /// `ctl contain SESSION --kill` was carried out: every process the tree forks from now on
    /// is killed as its fork record arrives (the kernel tracked it at fork, so none is missed).
    killing: bool,
}

/// What `proctor ctl list` shows of a session.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct SessionInfo {
    pub agent: String,
    pub session: String,
    pub dir: PathBuf,
    pub root_pid: u32,
    pub pids: Vec<u32>,
    pub mode: String,
    pub alerts: u64,
    pub records: u64,
    pub started_ns: u64,
}

/// The answer to `list`.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct Listing {
    pub agents: Vec<String>,
    pub sessions: Vec<SessionInfo>,
    /// Records of tracked processes no session owned (their tree's exec record was lost).
    pub unattributed: u64,
}

struct Daemon {
    sensor: Sensor,
    config_file: Option<PathBuf>,
    cfg: Config,
    agents: Vec<Agent>,
    resolved: Resolved,
    cgroup_cache: HashMap<u64, u32>,
    signer: Arc<proctor_evidence::Signer>,
    sessions: BTreeMap<u64, Session>,
    next_session: u64,
    pids: HashMap<u32, u64>,
    /// Kernel session slot -> session.
    slots: HashMap<u32, u64>,
    /// Executables on the agents' `[enforce].exec` lists (userspace dev, inode) -> the rules
    /// whose lists name them (bit n-1 for rule n), as the kernel's deny_exec map holds them.
    denied: HashMap<(u64, u64), u32>,
    build_ids: BuildIds,
    /// The state directory, resolved: every session's evidence and the signing key. An agent's
    /// write, removal or rename in it is a tamper record of its session, as `run`'s guard
    /// makes of its `--out`.
    evidence: Option<PathBuf>,
    unattributed: u64,
    /// Kernel slots of trees whose session could not be opened -> their live pids: the slot is
    /// given back when the last one exits (its tasks still carry it until then).
    orphan_slots: HashMap<u32, HashSet<u32>>,
    /// Sessions whose tree's last exit was dispatched: ended once the rings are read (the
    /// tree's reads of the other ring may still be in it, see `end_exited`).
    ending: Vec<u64>,
    control: Server,
    socket_gid: Option<libc::gid_t>,
    recursion_seen: u64,
    /// `[outputs]`: each session ships its alerts and incidents there.
    outputs: proctor_outputs::OutputsConfig,
    /// `[metrics]`: one endpoint for the daemon, every session counted in it.
    metrics: Option<crate::metrics::Endpoint>,
}

/// Run the daemon until SIGTERM or SIGINT; SIGHUP reloads the configuration.
pub fn run(cfg: Config, config_file: Option<PathBuf>, version: &str) -> Result<()> {
    let outputs = cfg.outputs_config()?;
    let metrics_cfg = cfg.metrics_config()?;
    let agents = cfg
        .agents
        .iter()
        .map(Agent::load)
        .collect::<Result<Vec<_>>>()?;
    let sensor = Sensor::load(SensorConfig {
        agent_id: "proctor-daemon".into(),
        file_reads: proctor_sensor::FileReads::from_env()?,
        ..SensorConfig::default()
    })?;
    let metrics = match metrics_cfg {
        Some(config) => {
            let opts = crate::metrics::MetricsOpts {
                config,
                version: version.to_string(),
            };
            let (e, _) = crate::metrics::Endpoint::start(&opts, &sensor)?;
            e.metrics.set_agents(0, 0);
            e.metrics.health.attached();
            Some(e)
        }
        None => None,
    };
    let runs = cfg.daemon.state_dir.join("runs");
    proctor_evidence::create_private_dir(&runs)
        .with_context(|| format!("cannot create {}", runs.display()))?;
    // The key: the configured one, else the daemon's state directory's (created on first use).
    let signer = match &cfg.daemon.key {
        Some(_) => load_signer(&EvidenceOpts {
            key: cfg.daemon.key.clone(),
            alert_socket: None,
            outputs: Default::default(),
        })?,
        None => {
            let (s, created) = proctor_evidence::Signer::load_or_create(&cfg.daemon.state_dir)?;
            if created {
                eprintln!(
                    "proctor daemon: created a signing key in {} (public key {})",
                    cfg.daemon.state_dir.display(),
                    cfg.daemon
                        .state_dir
                        .join(proctor_evidence::PUBLIC_KEY_FILE)
                        .display()
                );
            }
            Arc::new(s)
        }
    };
    let (control, socket_gid) = control_socket(&cfg)?;
    let mut d = Daemon {
        sensor,
        config_file,
        agents,
        resolved: Resolved::default(),
        cgroup_cache: HashMap::new(),
        signer,
        sessions: BTreeMap::new(),
        next_session: 0,
        pids: HashMap::new(),
        slots: HashMap::new(),
        denied: HashMap::new(),
        build_ids: BuildIds::default(),
        evidence: cfg.daemon.state_dir.canonicalize().ok(),
        unattributed: 0,
        orphan_slots: HashMap::new(),
        ending: Vec::new(),
        control,
        socket_gid,
        recursion_seen: 0,
        outputs,
        metrics,
        cfg,
    };
    d.apply_rules()?;
    d.apply_deny()?;
    eprintln!(
        "proctor daemon: {} agent rule(s), {} executable(s) and {} cgroup(s) matched in the kernel; runs in {}, control socket {}",
        d.agents.len(),
        d.resolved.exes.len(),
        d.resolved.cgroups.len(),
        runs.display(),
        d.cfg.daemon.socket.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
        .context("installing signal handlers")?;
    let mut wait = MIN_WAIT;
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let recs = d.sensor.poll(wait);
        let got = !recs.is_empty();
        for r in recs {
            d.dispatch(r)?;
            // A burst of sessions starting must not keep `proctor ctl` waiting for the batch.
            d.control()?;
        }
        d.end_exited()?;
        d.decisions()?;
        d.control()?;
        if reload.swap(false, Ordering::Relaxed) {
            d.reload();
        }
        if last.elapsed() >= RESOLVE_EVERY {
            last = Instant::now();
            d.periodic()?;
        }
        // Learning windows close on time even when no record comes (as in `Monitor::pump`).
        let now = d.sensor.now_wall_ns();
        let mut next_end: Option<u64> = None;
        for s in d.sessions.values_mut() {
            if let Some(end) = s.pipe.close_learning(now)? {
                next_end = Some(next_end.map_or(end, |e| e.min(end)));
            }
            s.pipe.flush()?;
        }
        if let Some(e) = &d.metrics {
            e.metrics.health.beat();
            e.sample(&d.sensor);
            let agents: std::collections::BTreeSet<&str> =
                d.sessions.values().map(|s| s.agent.as_str()).collect();
            e.metrics
                .set_agents(agents.len() as i64, d.sessions.len() as i64);
        }
        wait = crate::monitor::until(next_end, now, d.sensor.next_wait(got, wait, MAX_WAIT));
    }
    if let Some(e) = &d.metrics {
        e.metrics.health.ended();
    }
    for s in d.sessions.values_mut() {
        s.taken_at_stop = Some(d.sensor.session_taken(s.slot));
    }
    loop {
        let recs = d.sensor.drain();
        if recs.is_empty() {
            break;
        }
        for r in recs {
            d.dispatch(r)?;
        }
    }
    // Repeat counts the kernel still holds: after the rings, before the sessions end.
    for r in d.sensor.take_repeats() {
        d.dispatch(r)?;
    }
    d.end_exited()?;
    d.decisions()?;
    let keys: Vec<u64> = d.sessions.keys().copied().collect();
    for k in keys {
        d.end(k, StopReason::Interrupted)?;
    }
    eprintln!("proctor daemon: stopped");
    Ok(())
}

/// The daemon's control socket: 0600 for root, 0660 with the configured group.
fn control_socket(cfg: &Config) -> Result<(Server, Option<libc::gid_t>)> {
    let path = &cfg.daemon.socket;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().context("socket path has no file name")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let server = Server::start_at(dir, &name.to_string_lossy())?;
    let gid = match &cfg.daemon.socket_group {
        Some(g) => {
            let gid = crate::config::group_id(g).with_context(|| format!("no such group {g}"))?;
            std::os::unix::fs::chown(path, Some(0), Some(gid))
                .with_context(|| format!("chown {}", path.display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                .with_context(|| format!("chmod {}", path.display()))?;
            Some(gid)
        }
        None => None,
    };
    Ok((server, gid))
}

impl Daemon {
    fn apply_rules(&mut self) -> Result<()> {
        // Opens of the files every agent's policy names are urgent in the kernel, as in `run`
        // (names are only ever added: a session started under an older rule keeps its own).
        for a in &self.agents {
            self.sensor
                .watch_names(&crate::enforcement::watched_names(&a.policy))?;
        }
        let r = resolve(&self.agents);
        if r != self.resolved {
            self.sensor.set_agent_rules(&r.exes, &r.cgroups)?;
            self.resolved = r;
            self.cgroup_cache.clear();
        }
        Ok(())
    }

    /// The agents' `[enforce].exec` lists as the kernel's deny_exec map: each entry names the
    /// rules whose list holds it, so a session in enforce or shadow mode is bound by its own
    /// agent's list only. Rules past the 32nd have no bit, and so no list in the kernel.
    fn apply_deny(&mut self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let mut want: HashMap<(u64, u64), u32> = HashMap::new();
        for (i, a) in self.agents.iter().enumerate().take(MAX_DENY_RULES) {
            for path in &a.policy.enforce.exec {
                match std::fs::metadata(path) {
                    Ok(m) => *want.entry((m.dev(), m.ino())).or_default() |= 1 << i,
                    Err(e) => eprintln!(
                        "proctor daemon: agent {}: [enforce].exec names {path}: {e}; not enforced",
                        a.rule.name
                    ),
                }
            }
        }
        for (&(dev, ino), &rules) in &want {
            if self.denied.get(&(dev, ino)) != Some(&rules) {
                self.sensor.deny_exec_rules(dev, ino, rules)?;
            }
        }
        for id in self.denied.keys() {
            if !want.contains_key(id) {
                self.sensor.undeny_exec(id.0, id.1)?;
            }
        }
        self.denied = want;
        Ok(())
    }

    /// Kernel enforcement decisions, each in its session's log with its alert.
    fn decisions(&mut self) -> Result<()> {
        for d in self.sensor.take_decisions() {
            let key = d
                .kseq
                .and_then(|k| self.slots.get(&k.kslot).copied())
                .or_else(|| self.pids.get(&d.common.pid).copied());
            let Some(s) = key.and_then(|k| self.sessions.get_mut(&k)) else {
                eprintln!(
                    "proctor daemon: a {} decision about pid {} belongs to no session",
                    d.decision.what.as_str(),
                    d.common.pid
                );
                continue;
            };
            let mut d = d;
            d.common.agent_id = s.agent.clone();
            let alert = crate::enforcement::decision_alert(&d);
            s.pipe.decision(&d, Some(&alert))?;
        }
        Ok(())
    }

    /// SIGHUP: read the configuration again; a bad one is reported and the old one kept.
    /// Sessions running keep the agent settings they started with.
    fn reload(&mut self) {
        let loaded = crate::config::Config::load(self.config_file.as_deref())
            .map_err(anyhow::Error::from)
            .and_then(|c| {
                let agents = c
                    .agents
                    .iter()
                    .map(Agent::load)
                    .collect::<Result<Vec<_>>>()?;
                Ok((c, agents))
            });
        match loaded {
            Ok((c, agents)) => {
                self.agents = agents;
                self.cfg.agents = c.agents;
                if let Err(e) = self.apply_rules().and_then(|()| self.apply_deny()) {
                    eprintln!("proctor daemon: reload: {e:#}");
                }
                eprintln!(
                    "proctor daemon: configuration reloaded: {} agent rule(s)",
                    self.agents.len()
                );
            }
            Err(e) => eprintln!(
                "proctor daemon: reload refused, keeping the running configuration: {e:#}"
            ),
        }
    }

    fn dispatch(&mut self, mut r: Record) -> Result<()> {
        // A kernel record names its session slot; so does a fold of reads, written about a
        // second later (its processes may be gone from `pids` by then).
        let slot = r.kseq.map(|k| k.kslot).or(match &r.event {
            Event::FileOpenSeen(s) => Some(s.slot),
            _ => None,
        });
        if let Some(slot) = slot.filter(|s| self.orphan_slots.contains_key(s)) {
            self.orphan(slot, &r);
            return Ok(());
        }
        let by_slot = slot.and_then(|s| self.slots.get(&s).copied());
        let key = match by_slot.or_else(|| self.pids.get(&r.pid).copied()) {
            Some(k) => k,
            None if matches!(r.event, Event::Exec(_)) => {
                match self.resolved.rule_of(&r, &mut self.cgroup_cache) {
                    // A session that cannot be opened (disk full, a bad profile) must not stop
                    // the daemon watching the others: said, and its records counted.
                    Some(n) => match self.start(n, &r) {
                        Ok(k) => k,
                        Err(e) => {
                            eprintln!(
                                "proctor daemon: cannot open a session for pid {}: {e:#}",
                                r.pid
                            );
                            if let Some(k) = r.kseq.filter(|k| k.kslot != 0) {
                                self.orphan_slots.entry(k.kslot).or_default().insert(r.pid);
                            }
                            self.unattributed(&r);
                            return Ok(());
                        }
                    },
                    None => {
                        self.unattributed(&r);
                        return Ok(());
                    }
                }
            }
            None => {
                self.unattributed(&r);
                return Ok(());
            }
        };
        let Some(s) = self.sessions.get_mut(&key) else {
            return Ok(());
        };
        r.agent_id = s.agent.clone();
        s.pipe.mark_tree_target(&mut r);
        if let Event::Exec(e) = &mut r.event {
            e.build_id = self.build_ids.of(r.pid, e);
        }
        s.pipe.track(&r);
        let attempt = self
            .evidence
            .as_deref()
            .and_then(|o| crate::enforcement::evidence_violation(o, &r));
        s.pipe.observe(&r)?;
        if let Some(detail) = attempt {
            let ev = crate::seccomp::Event::Tamper {
                pid: r.pid,
                comm: r.comm.clone(),
                syscall: "evidence",
                target: 0,
                signal: None,
                detail,
            };
            let c = crate::seccomp::Common {
                ts_ns: r.ts_ns,
                agent_id: &s.agent,
                ppid: r.ppid,
                exec_id: &r.exec_id,
            };
            s.pipe.supervised(&ev.record(&c), ev.alert(&c).as_ref())?;
        }
        match &r.event {
            Event::Fork(f) => {
                self.pids.insert(f.child_pid, key);
                if s.killing {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(f.child_pid as i32, libc::SIGKILL) };
                }
            }
            Event::Exit(_) => {
                self.pids.remove(&r.pid);
                if s.pipe.live().is_empty() && !self.ending.contains(&key) {
                    self.ending.push(key);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A record of a tree whose session could not be opened: counted as unattributed, and its
    /// processes followed so that its kernel slot is freed with the last of them (else every
    /// failed session would keep a slot until none is left for the next agents).
    fn orphan(&mut self, slot: u32, r: &Record) {
        self.unattributed(r);
        let Some(live) = self.orphan_slots.get_mut(&slot) else {
            return;
        };
        match &r.event {
            Event::Fork(f) => {
                live.insert(f.child_pid);
            }
            Event::Exit(_) => {
                live.remove(&r.pid);
            }
            _ => return,
        }
        if live.is_empty() {
            self.orphan_slots.remove(&slot);
            // Its numbers were never a session's: nothing to declare.
            let _ = self.release_slot(slot, None, "no session");
        }
    }

    /// Every number the kernel took for `slot` is in, or lost (the gaps returned); then the slot
    /// is free for the next agent. `taken`: the count read when the session stopped, if it was.
    fn release_slot(
        &mut self,
        slot: u32,
        taken: Option<u64>,
        owner: &str,
    ) -> Vec<proctor_model::kseq::Gap> {
        let taken = taken.unwrap_or_else(|| self.sensor.session_taken(slot));
        let gaps = self.sensor.finish_kseq(slot, taken);
        if let Err(e) = self.sensor.free_session(slot) {
            eprintln!("proctor daemon: {owner}: cannot free its kernel slot {slot}: {e:#}");
        }
        gaps
    }

    /// A record of a tracked process no session owns: counted, never silently.
    fn unattributed(&mut self, r: &Record) {
        self.unattributed += 1;
        if self.unattributed.is_power_of_two() {
            eprintln!(
                "proctor daemon: {} record(s) of tracked processes belonged to no session (latest: {} of pid {})",
                self.unattributed,
                r.event.type_name(),
                r.pid
            );
        }
    }

    /// A new session for the tree rooted at the exec `r` that matched rule `n`.
    fn start(&mut self, n: u32, r: &Record) -> Result<u64> {
        let agent = &self.agents[(n - 1) as usize];
        let name = agent.rule.name.clone();
        let ts = proctor_model::rfc3339(r.ts_ns);
        // 2026-12-03T04:31:20.123456789Z -> 20261203T043120Z
        let compact: String = ts
            .chars()
            .take(19)
            .filter(|c| c.is_ascii_digit() || *c == 'T')
            .collect();
        let id = format!("{compact}Z-{}", r.pid);
        let dir = self.cfg.daemon.state_dir.join("runs").join(&name).join(&id);
        proctor_evidence::create_private_dir(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut sinks = Sinks::open(&dir, self.signer.clone(), &name, None)?;
        sinks.start_outputs(&self.outputs)?;
        if let Some(e) = &self.metrics {
            sinks.metrics = Some(proctor_metrics::Recorder::new(e.metrics.clone()));
        }
        let mut pipe = Pipeline::new(sinks, name.clone());
        let (home, cwd) = procfs::home_and_cwd(r.pid);
        let argv = match &r.event {
            Event::Exec(e) => Some(e.argv.clone()),
            _ => None,
        };
        let mut start =
            crate::session::start_record(Mode::Audit, "daemon", argv, Some(r.pid), &home, &cwd);
        start.common = pipe.proctor_common(self.sensor.now_wall_ns());
        pipe.write(&start)?;
        pipe.set_detection(Detection::with_host(
            &dir,
            &detect_opts(&agent.rule),
            Loaded {
                policy: agent.policy.clone(),
                profile: agent.profile.clone(),
            },
            home,
            cwd,
            None,
            Some(agent.host.clone()),
        )?);
        pipe.set_root(Subject {
            pid: r.pid,
            ppid: r.ppid,
            comm: r.comm.clone(),
            exec_id: r.exec_id.clone(),
        });
        let key = self.next_session;
        self.next_session += 1;
        self.pids.insert(r.pid, key);
        let slot = r.kseq.map_or(0, |k| k.kslot);
        if slot != 0 {
            self.slots.insert(slot, key);
        }
        eprintln!(
            "proctor daemon: agent {name}: session {id} for pid {} ({})",
            r.pid,
            dir.display()
        );
        self.sessions.insert(
            key,
            Session {
                id,
                agent: name,
                dir,
                root: r.pid,
                mode: Mode::Audit,
                started_ns: r.ts_ns,
                pipe,
                slot,
                rule: n,
                taken_at_stop: None,
                killing: false,
            },
        );
        Ok(key)
    }

    /// End the sessions whose tree exited, after reading what the rings still hold: a tree's
    /// exit comes on the priority ring and its last reads on the main one, which a batch may
    /// not have reached yet (their fold would find the session gone). Bounded: a flood from
    /// another session does not hold the ends back for long.
    fn end_exited(&mut self) -> Result<()> {
        if self.ending.is_empty() {
            return Ok(());
        }
        for _ in 0..8 {
            let recs = self.sensor.drain();
            if recs.is_empty() {
                break;
            }
            for r in recs {
                self.dispatch(r)?;
            }
        }
        for key in std::mem::take(&mut self.ending) {
            // A tree that went on (a fork read late) is not over.
            if self
                .sessions
                .get(&key)
                .is_some_and(|s| s.pipe.live().is_empty())
            {
                self.end(key, StopReason::TreeExited)?;
            }
        }
        Ok(())
    }

    /// Close a session's evidence: detection's last word, `sensor_stop`, the final checkpoint.
    fn end(&mut self, key: u64, reason: StopReason) -> Result<()> {
        // Decisions of the batch that ended the tree go to its log first, and the reads the
        // sensor still folds for it (routed by their slot, still the session's).
        self.decisions()?;
        if let Some(slot) = self.sessions.get(&key).map(|s| s.slot).filter(|&s| s != 0) {
            for r in self.sensor.take_open_seen(slot) {
                self.dispatch(r)?;
            }
        }
        let Some(mut s) = self.sessions.remove(&key) else {
            return Ok(());
        };
        self.pids.retain(|_, k| *k != key);
        let now = self.sensor.now_wall_ns();
        if s.slot != 0 {
            self.slots.remove(&s.slot);
            let gaps = self.release_slot(s.slot, s.taken_at_stop, &format!("session {}", s.id));
            s.pipe.kseq_gaps(&gaps, now)?;
        }
        s.pipe.drained()?;
        let stop = SensorStop {
            reason,
            exit_code: None,
            signal: None,
            error: None,
            counts: Some(RunCounts {
                records: s.pipe.counts().clone(),
                lost: s.pipe.lost_total(),
                tls_parser: None,
            }),
            survivors: Vec::new(),
            common: s.pipe.proctor_common(now),
        };
        s.pipe.write(&stop)?;
        s.pipe.finish(now)?;
        eprintln!(
            "proctor daemon: agent {}: session {} ended ({}): {}",
            s.agent,
            s.id,
            reason_str(&reason),
            s.pipe.summary()
        );
        Ok(())
    }

    /// Losses go to every open session (any of them may have lost records); trees whose exit
    /// record was lost end; rules are resolved again; detection's clock ticks.
    fn periodic(&mut self) -> Result<()> {
        let now = self.sensor.now_wall_ns();
        let none = Subject {
            pid: 0,
            ppid: 0,
            comm: Default::default(),
            exec_id: String::new(),
        };
        let lost = self.sensor.take_lost(&none);
        let misses = self.sensor.recursion_misses();
        let new_misses = misses.saturating_sub(self.recursion_seen);
        self.recursion_seen = misses;
        if self.sessions.is_empty() && (!lost.is_empty() || new_misses > 0) {
            eprintln!("proctor daemon: records lost while no session was open: {lost:?}, {new_misses} recursion miss(es)");
        }
        let mut gaps: HashMap<u32, Vec<proctor_model::kseq::Gap>> = HashMap::new();
        for g in self.sensor.take_kseq_gaps() {
            gaps.entry(g.kslot).or_default().push(g);
        }
        let mut ended = Vec::new();
        for (&k, s) in self.sessions.iter_mut() {
            if let Some(g) = gaps.remove(&s.slot) {
                s.pipe.kseq_gaps(&g, now)?;
            }
            let root = s.pipe.root().clone();
            let mut mine: Vec<Record> = lost
                .iter()
                .cloned()
                .map(|mut l| {
                    l.agent_id = s.agent.clone();
                    l.pid = root.pid;
                    l.ppid = root.ppid;
                    l.comm = root.comm.clone();
                    l.exec_id = root.exec_id.clone();
                    l
                })
                .collect();
            if new_misses > 0 {
                mine.push(s.pipe.lost_record("recursion", new_misses, now));
            }
            s.pipe.lost(mine)?;
            s.pipe.tick(now)?;
            if s.pipe.live_count(procfs::exists) == 0 {
                ended.push(k);
            }
        }
        for (slot, g) in gaps {
            let n: u64 = g.iter().map(proctor_model::kseq::Gap::count).sum();
            eprintln!("proctor daemon: {n} kernel record number(s) of slot {slot}, which no open session holds, never arrived");
        }
        for k in ended {
            self.end(k, StopReason::TreeExited)?;
        }
        self.apply_rules()
    }

    fn listing(&self) -> Listing {
        Listing {
            agents: self.agents.iter().map(|a| a.rule.name.clone()).collect(),
            sessions: self
                .sessions
                .values()
                .map(|s| {
                    let mut pids: Vec<u32> = s.pipe.live().iter().copied().collect();
                    pids.sort_unstable();
                    SessionInfo {
                        agent: s.agent.clone(),
                        session: s.id.clone(),
                        dir: s.dir.clone(),
                        root_pid: s.root,
                        pids,
                        mode: s.mode.as_str().into(),
                        alerts: s.pipe.detection.as_ref().map_or(0, |d| d.alert_count),
                        records: s.pipe.counts().values().sum(),
                        started_ns: s.started_ns,
                    }
                })
                .collect(),
            unattributed: self.unattributed,
        }
    }

    /// Requests on the daemon's socket: root or the configured group only, never from inside a
    /// monitored tree (that attempt is recorded in the requester's session and alerted on).
    fn control(&mut self) -> Result<()> {
        let reqs: Vec<Request> = self.control.requests.try_iter().collect();
        for req in reqs {
            if let Some(key) = self.session_of(req.peer.pid) {
                let refusal = format!(
                    "control request {} from inside the agent (uid {}, exe {})",
                    serde_json::to_string(&req.control).unwrap_or_default(),
                    req.peer.uid,
                    req.exe.as_deref().unwrap_or("?")
                );
                let pid = req.peer.pid;
                req.reply(Err(
                    "refused: the requester is part of a monitored agent".into()
                ));
                self.tamper(key, pid, refusal)?;
                continue;
            }
            if !self.allowed(&req) {
                let uid = req.peer.uid;
                req.reply(Err(format!(
                    "refused: uid {uid} is neither root nor in the daemon's socket group"
                )));
                continue;
            }
            let answer = match &req.control {
                Control::List => serde_json::to_string(&self.listing()).map_err(|e| e.to_string()),
                Control::SessionContain { session, action } => {
                    self.contain(session, *action, req.requester())
                }
                Control::SessionMode { session, mode } => {
                    self.session_mode(session, *mode, req.requester())
                }
                _ => Err("this is a request for a run's control socket (`proctor mode`, `proctor contain`, `proctor policy reload`); the daemon takes `ctl mode SESSION`, `ctl contain SESSION`".into()),
            };
            req.reply(answer);
        }
        Ok(())
    }

    /// Containment of one session, recorded there with who asked. The daemon's sessions have no
    /// agent cgroup of proctor's making, so only `kill` is offered: every live process of the
    /// tree now, and every child it still manages to fork as its fork record arrives.
    fn contain(
        &mut self,
        session: &str,
        action: crate::enforcement::ContainAction,
        by: proctor_model::Requester,
    ) -> std::result::Result<String, String> {
        use crate::enforcement::ContainAction;
        let now = self.sensor.now_wall_ns();
        let Some(s) = self.sessions.values_mut().find(|s| s.id == session) else {
            return Err(format!(
                "no open session {session} (see `proctor ctl list`)"
            ));
        };
        let (result, error, answer) = if action == ContainAction::Kill {
            s.killing = true;
            let mut n = 0;
            for &pid in s.pipe.live() {
                // SAFETY: kill has no memory-safety preconditions.
                if unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0 {
                    n += 1;
                }
            }
            eprintln!("proctor daemon: session {session}: containment kill ({n} process(es))");
            (
                proctor_model::ContainResult::Done,
                None,
                Ok(format!(
                    "containment: kill, {n} process(es) of session {session}"
                )),
            )
        } else {
            let e = format!(
                "{} is not available for daemon sessions (only kill)",
                action.as_str()
            );
            (
                proctor_model::ContainResult::Failed,
                Some(e.clone()),
                Err(e),
            )
        };
        let rec = proctor_model::Containment {
            action: action.as_str().into(),
            result,
            error,
            requested_by: by,
            common: s.pipe.proctor_common(now),
        };
        s.pipe
            .write(&rec)
            .map_err(|e| format!("could not record the request: {e:#}"))?;
        answer
    }

    /// `proctor ctl mode SESSION MODE`: the session's kernel slot gets the mode, so the kernel's
    /// decisions for its tasks (exec by its agent's `[enforce].exec` list) follow it while other
    /// sessions keep theirs. Layers that exist per process or per cgroup from launch on cannot
    /// be switched on for a tree that is already running: the answer names those of the agent's
    /// policy that stay off. A change is a `mode_change` record.
    fn session_mode(
        &mut self,
        session: &str,
        to: Mode,
        by: proctor_model::Requester,
    ) -> std::result::Result<String, String> {
        let now = self.sensor.now_wall_ns();
        let Some(s) = self.sessions.values_mut().find(|s| s.id == session) else {
            return Err(format!(
                "no open session {session} (see `proctor ctl list`)"
            ));
        };
        let from = s.mode;
        if to == from {
            return Ok(format!(
                "session {session} is in {} mode already",
                to.as_str()
            ));
        }
        if s.slot == 0 {
            return Err(format!(
                "session {session} stays in {} mode: it has no kernel session slot (all were in use when it started), so the kernel cannot decide for it alone",
                from.as_str()
            ));
        }
        if to != Mode::Audit && s.rule as usize > MAX_DENY_RULES {
            return Err(format!(
                "session {session} stays in {} mode: its agent is rule {} of the configuration, and only the first {MAX_DENY_RULES} rules have an exec deny list in the kernel",
                from.as_str(),
                s.rule
            ));
        }
        self.sensor
            .set_session_mode(s.slot, Some(to))
            .map_err(|e| format!("could not set the session's mode in the kernel: {e:#}"))?;
        s.pipe
            .write(&proctor_model::ModeChange {
                from,
                to,
                requested_by: by,
                common: s.pipe.proctor_common(now),
            })
            .map_err(|e| format!("could not record the change: {e:#}"))?;
        s.mode = to;
        let off = match self.agents.get(s.rule as usize - 1) {
            Some(a) if to != Mode::Audit => not_per_session(&a.policy.enforce),
            _ => String::new(),
        };
        eprintln!(
            "proctor daemon: session {session}: mode {} -> {}{off}",
            from.as_str(),
            to.as_str()
        );
        Ok(format!(
            "session {session}: mode {} -> {}{off}",
            from.as_str(),
            to.as_str()
        ))
    }

    fn allowed(&self, req: &Request) -> bool {
        if req.peer.uid == 0 {
            return true;
        }
        let Some(gid) = self.socket_gid else {
            return false;
        };
        if req.peer.gid == gid {
            return true;
        }
        // Supplementary groups, from the kernel's view of the requester.
        std::fs::read_to_string(format!("/proc/{}/status", req.peer.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Groups:"))
                    .map(|g| g.split_whitespace().any(|x| x.parse() == Ok(gid)))
            })
            .unwrap_or(false)
    }

    /// The session whose tree `pid` (or an ancestor of it) belongs to.
    fn session_of(&self, pid: i32) -> Option<u64> {
        let mut p = u32::try_from(pid).ok()?;
        for _ in 0..128 {
            if let Some(&k) = self.pids.get(&p) {
                return Some(k);
            }
            match procfs::ppid(p) {
                Some(pp) if pp > 1 => p = pp,
                _ => break,
            }
        }
        None
    }

    /// A refused control request from inside session `key`'s tree: a `tamper` record and its
    /// PROCTOR_TAMPER alert, as a run's control socket records one.
    fn tamper(&mut self, key: u64, peer_pid: i32, detail: String) -> Result<()> {
        let now = self.sensor.now_wall_ns();
        let Some(s) = self.sessions.get_mut(&key) else {
            return Ok(());
        };
        let pid = u32::try_from(peer_pid).unwrap_or(0);
        let ev = crate::seccomp::Event::Tamper {
            pid,
            comm: procfs::comm(pid).unwrap_or_default(),
            syscall: "control",
            target: i64::from(std::process::id()),
            signal: None,
            detail,
        };
        let exec_id = s.pipe.exec_id_of(pid);
        let c = crate::seccomp::Common {
            ts_ns: now,
            agent_id: &s.agent,
            ppid: procfs::ppid(pid).unwrap_or(0),
            exec_id: &exec_id,
        };
        let rec = ev.record(&c);
        let alert = ev.alert(&c);
        s.pipe.supervised(&rec, alert.as_ref())
    }
}

/// What of an agent's `[enforce]` section a daemon session cannot have, as the tail of the
/// answer to `ctl mode`: network egress and sensitive files are refused by layers set up before
/// the agent starts (cgroup-bpf on an agent cgroup of proctor's making, Landlock on the process,
/// the seccomp guard and ask rules on the launched process), and the ptrace and default-deny exec
/// switches are the sensor's, shared by every session. Empty when the policy asks for none.
fn not_per_session(e: &proctor_detect::EnforcePolicy) -> String {
    let mut off = Vec::new();
    if e.network {
        off.push("network egress (cgroup-bpf needs an agent cgroup made before launch)");
    }
    if e.files {
        off.push("sensitive files (Landlock is set on a process at launch)");
    }
    if !e.ask_exec.is_empty() || e.ask_network || e.io_uring {
        off.push("ask rules and io_uring (the seccomp supervisor is installed at launch)");
    }
    if e.ptrace {
        off.push("ptrace blocking (one switch for the whole sensor)");
    }
    if !e.allow_exec.is_empty() {
        off.push("allow_exec default-deny (one list for the whole sensor)");
    }
    if off.is_empty() {
        return String::new();
    }
    format!(
        "; in force: the kernel's exec decisions by the agent's [enforce].exec list; not per daemon session, so not enforced: {}",
        off.join(", ")
    )
}

fn reason_str(r: &StopReason) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Ask the daemon serving `socket` for its agents and sessions.
pub fn list(socket: &Path) -> Result<Listing> {
    let dir = socket.parent().unwrap_or(Path::new("/"));
    let answer = crate::control::send_to(socket, dir, &Control::List)?;
    serde_json::from_str(&answer).context("the daemon answered something unreadable")
}
