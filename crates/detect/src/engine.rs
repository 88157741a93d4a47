//! The detection engine: learns a [`Baseline`] during the first `baseline_ns` of the stream, then
//! judges every record against it and the [`Policy`], and aggregates repeats within a cooldown.
//!
//! Time comes only from record timestamps and [`Engine::tick`] arguments, so a replayed log gives
//! the same alerts as the live run. The only host I/O is at construction ([`HostFacts::discover`]:
//! stat the interpreters, read /etc/resolv.conf); [`Engine::with_host`] takes them as data.

use crate::baseline::{Baseline, BaselineSummary, RateProfile, SchedProfile};
use crate::glob::{glob_match, BoundPattern, Components};
use crate::policy::{canonical_ip, Policy, Resolver};
use crate::stats::{entropy, jsd, mean_sd};
use proctor_model::{
    Access, Alert, Bytes, Dns, Event, Exec, Family, FileOpen, Lost, Ptrace, Record, Sched,
    SockAddr, SCHED_BUCKETS,
};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;

const NS: u64 = 1_000_000_000;
/// Recent records kept for syscall traces.
const RING: usize = 4096;
/// Processes and written files remembered (oldest forgotten first).
const MAX_PROCS: usize = 65_536;
const MAX_WRITTEN: usize = 16_384;
/// Records attached as the trigger of a burst or drift alert.
const MAX_TRIGGER: usize = 8;

/// How the engine runs. With a `profile` there is no learning window: every record is judged.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Length of the learning window, from the first record (or tick).
    pub baseline_ns: u64,
    /// The agent's HOME (`~` in path patterns); None: `~` patterns match nothing.
    pub home: Option<PathBuf>,
    /// The agent's working directory (`$CWD` in path patterns).
    pub cwd: Option<PathBuf>,
    pub profile: Option<Baseline>,
}

/// What the engine reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Alert(Alert),
    /// The learning window closed; the summary prints as one line.
    BaselineEstablished(BaselineSummary),
}

/// Facts about this host the engine needs, gathered once at start.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// (st_dev, st_ino) of interpreter binaries found in the policy's directories -> file name.
    pub interpreters: HashMap<(u64, u64), String>,
    /// The resolvers DNS queries are expected to go to ("system" expanded).
    pub resolvers: Vec<IpAddr>,
}

impl HostFacts {
    /// Stat every file in the policy's interpreter directories whose name matches an interpreter
    /// glob, and read the nameservers of /etc/resolv.conf if the policy says "system".
    ///
    /// Device+inode identifies the file, not its name: a hard link (or a rename) of bash keeps
    /// them and is still classified as bash. A byte copy gets a new inode and defeats this; it is
    /// then caught by its basename only if that still looks like an interpreter, and otherwise by
    /// L3 (the tree wrote the file it executes) and structural drift (a new binary).
    pub fn discover(policy: &Policy) -> HostFacts {
        use std::os::unix::fs::MetadataExt;
        let mut interpreters = HashMap::new();
        let mut links = Vec::new();
        for dir in &policy.interpreter_dirs {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut entries: Vec<_> = rd.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let name = e.file_name();
                let nb = name.as_encoded_bytes();
                if !policy.interpreter_names.iter().any(|g| glob_match(g, nb)) {
                    continue;
                }
                let name = name.to_string_lossy().into_owned();
                match std::fs::symlink_metadata(e.path()) {
                    Ok(m) if m.file_type().is_symlink() => links.push((e.path(), name)),
                    Ok(m) if m.is_file() => {
                        interpreters.entry((m.dev(), m.ino())).or_insert(name);
                    }
                    _ => {}
                }
            }
        }
        // Real files name themselves; a symlink only names a target not found under its own name.
        for (path, name) in links {
            if let Ok(m) = std::fs::metadata(&path) {
                interpreters.entry((m.dev(), m.ino())).or_insert(name);
            }
        }
        let mut resolvers = Vec::new();
        for r in &policy.dns.resolvers {
            match r {
                Resolver::Addr(a) => resolvers.push(*a),
                Resolver::System => {
                    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                    resolvers.extend(parse_resolv_conf(&text));
                }
            }
        }
        HostFacts {
            interpreters,
            resolvers,
        }
    }
}

/// Nameserver addresses of a resolv.conf text.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()?.parse().ok())?
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Proc {
    ppid: u32,
    /// Basename of the binary of the current image; None when not seen (attached processes).
    label: Option<String>,
    alive: bool,
    seq: u64,
}

#[derive(Debug, Clone)]
struct Written {
    path: Vec<u8>,
    /// (st_dev, st_ino) of the file written; (0, 0) when unknown.
    id: (u64, u64),
    writer: String,
    rec: Record,
}

#[derive(Debug, Clone)]
struct Cool {
    until: u64,
    repeats: u64,
    last: Option<Alert>,
}

enum Phase {
    Learning {
        start: Option<u64>,
        sched: Vec<(Vec<u64>, Vec<u64>, f64)>,
        egress_bins: BTreeMap<u64, u64>,
    },
    Judging,
}

/// The detection engine. See the crate docs for the channels and their scores.
pub struct Engine {
    policy: Policy,
    cfg: EngineConfig,
    host: HostFacts,
    sensitive: Vec<BoundPattern>,
    persistence: Vec<BoundPattern>,
    noise: Vec<BoundPattern>,
    home: Option<Vec<u8>>,
    cwd: Option<Vec<u8>>,
    phase: Phase,
    base: Baseline,
    procs: HashMap<u32, Proc>,
    proc_seq: u64,
    ring: VecDeque<Record>,
    written_ino: HashMap<(u64, u64), Written>,
    written_path: HashMap<Vec<u8>, Written>,
    written_order: VecDeque<Vec<u8>>,
    egress: VecDeque<u64>,
    egress_recs: VecDeque<Record>,
    in_burst: bool,
    last_dns: Option<u64>,
    cusum: f64,
    sched_recs: VecDeque<Record>,
    cool: BTreeMap<String, Cool>,
    /// Earliest cooldown end among `cool` (u64::MAX when none): most records skip the scan.
    cool_next: u64,
    last_ts: u64,
}

fn lossy(b: &[u8]) -> String {
    Bytes(b.to_vec()).escaped()
}

fn path_bytes(p: &std::path::Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}

/// Summaries stay one readable line: argv is cut (the trigger record has all of it).
fn clip(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Context switches per second of a summary.
fn switches_per_s(s: &Sched) -> f64 {
    s.switches as f64 * NS as f64 / s.interval_ns.max(1) as f64
}

/// L1 divergence of one window from the baseline: the larger of the histogram shape divergence
/// (mean JSD of the on-CPU and off-CPU histograms) and the switch-rate divergence
/// (|ln(rate ratio)| / ln 64, capped at 1: a 64-fold change counts as fully different). Shapes
/// alone miss an agent that does the same things much more often. Returns (d, shape, rate).
pub(crate) fn sched_divergence(
    run: &[u64],
    off: &[u64],
    rate: f64,
    b: &SchedProfile,
) -> (f64, f64, f64) {
    let shape = (jsd(run, &b.run_hist) + jsd(off, &b.off_hist)) / 2.0;
    let ratio = (rate + 1.0) / (b.switches_per_s + 1.0);
    let rate_div = (ratio.ln().abs() / 64f64.ln()).min(1.0);
    (shape.max(rate_div), shape, rate)
}

/// "python3.11" -> "python", "ksh93" -> "ksh": interpreters are compared by family.
pub fn canonical_interpreter(name: &str) -> String {
    let t = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-' || c == '_');
    if t.is_empty() {
        name.to_string()
    } else {
        t.to_string()
    }
}

/// The registered domain, approximated by the last two labels.
fn domain_of(qname: &str) -> String {
    let labels: Vec<&str> = qname.trim_end_matches('.').split('.').collect();
    let n = labels.len();
    labels[n.saturating_sub(2)..].join(".")
}

fn dest_key(ip: IpAddr, port: Option<u16>) -> String {
    let p = port.unwrap_or(0);
    match ip {
        IpAddr::V4(a) => format!("{a}:{p}"),
        IpAddr::V6(a) => format!("[{a}]:{p}"),
    }
}

fn scope(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(a) if a.is_loopback() => "loopback",
        IpAddr::V4(a) if a.is_private() || a.is_link_local() => "private",
        IpAddr::V6(a) if a.is_loopback() => "loopback",
        IpAddr::V6(a) if (a.segments()[0] & 0xfe00) == 0xfc00 => "private",
        IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80 => "private",
        _ => "public",
    }
}

impl Engine {
    /// An engine for `policy`, discovering this host's interpreters and resolvers.
    pub fn new(policy: Policy, cfg: EngineConfig) -> Engine {
        let host = HostFacts::discover(&policy);
        Engine::with_host(policy, cfg, host)
    }

    /// An engine with the host facts given (tests, or a replay on another host).
    pub fn with_host(policy: Policy, cfg: EngineConfig, host: HostFacts) -> Engine {
        let home = cfg.home.as_deref().map(path_bytes);
        let cwd = cfg.cwd.as_deref().map(path_bytes);
        let bind = |v: &Vec<crate::glob::PathPattern>| -> Vec<BoundPattern> {
            v.iter()
                .filter_map(|p| p.bind(home.as_deref(), cwd.as_deref()))
                .collect()
        };
        let sensitive = bind(&policy.files.sensitive);
        let persistence = bind(&policy.files.persistence);
        let noise = bind(&policy.files.noise);
        let (phase, base) = match &cfg.profile {
            Some(p) => (Phase::Judging, p.clone()),
            None => (
                Phase::Learning {
                    start: None,
                    sched: Vec::new(),
                    egress_bins: BTreeMap::new(),
                },
                Baseline::empty("", 0),
            ),
        };
        Engine {
            policy,
            cfg,
            host,
            sensitive,
            persistence,
            noise,
            home,
            cwd,
            phase,
            base,
            procs: HashMap::new(),
            proc_seq: 0,
            ring: VecDeque::new(),
            written_ino: HashMap::new(),
            written_path: HashMap::new(),
            written_order: VecDeque::new(),
            egress: VecDeque::new(),
            egress_recs: VecDeque::new(),
            in_burst: false,
            last_dns: None,
            cusum: 0.0,
            sched_recs: VecDeque::new(),
            cool: BTreeMap::new(),
            cool_next: u64::MAX,
            last_ts: 0,
        }
    }

    /// True while the learning window is open.
    pub fn is_learning(&self) -> bool {
        matches!(self.phase, Phase::Learning { .. })
    }

    /// The baseline judged against: learned (once established) or the profile given.
    pub fn baseline(&self) -> Option<&Baseline> {
        (!self.is_learning()).then_some(&self.base)
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Feed one record. Non-observation records (`Event::Other`) are ignored.
    pub fn observe(&mut self, r: &Record) -> Vec<Output> {
        let mut out = Vec::new();
        if matches!(r.event, Event::Other) {
            return out;
        }
        self.last_ts = self.last_ts.max(r.ts_ns);
        self.advance(r.ts_ns, &mut out);
        let learning = self.is_learning();
        if learning {
            self.base.records += 1;
            if self.base.agent_id.is_empty() {
                self.base.agent_id = r.agent_id.clone();
            }
        }
        let mut alerts = Vec::new();
        match &r.event {
            Event::Exec(e) => self.on_exec(r, e, learning, &mut alerts),
            Event::Fork(f) => {
                let label = self.ensure_proc(r).label.clone();
                self.proc_seq += 1;
                self.procs.insert(
                    f.child_pid,
                    Proc {
                        ppid: r.pid,
                        label,
                        alive: true,
                        seq: self.proc_seq,
                    },
                );
                self.prune_procs();
            }
            Event::Exit(_) => {
                if let Some(p) = self.procs.get_mut(&r.pid) {
                    p.alive = false;
                }
            }
            Event::FileOpen(f) => self.on_open(r, f, learning, &mut alerts),
            Event::Connect(c) => self.on_egress(r, &c.dest, &c.protocol, learning, &mut alerts),
            Event::Send(s) => self.on_egress(r, &s.dest, &s.protocol, learning, &mut alerts),
            Event::Dns(d) => self.on_dns(r, d, learning, &mut alerts),
            Event::Ptrace(p) => self.on_ptrace(r, p, learning, &mut alerts),
            Event::Sched(s) => self.on_sched(r, s, &mut alerts),
            Event::Lost(l) => self.on_lost(r, l, &mut alerts),
            Event::Other
            | Event::Tls(_)
            | Event::TlsSni(_)
            | Event::TlsBlind(_)
            | Event::LlmRequest(_)
            | Event::LlmResponse(_) => {}
        }
        for (key, a) in alerts {
            if let Some(a) = self.raise(key, a) {
                out.push(Output::Alert(a));
            }
        }
        // Plaintext stays out of certificates' context: it is bulky and may hold what redaction
        // missed; the llm_* summaries carry what a reader needs.
        if !matches!(r.event, Event::Sched(_) | Event::Lost(_) | Event::Tls(_)) {
            self.ring.push_back(r.clone());
            if self.ring.len() > RING {
                self.ring.pop_front();
            }
        }
        out
    }

    /// Let time pass without a record: closes the learning window of an idle agent and sends
    /// the aggregated repeats whose cooldown ended.
    pub fn tick(&mut self, now_ns: u64) -> Vec<Output> {
        let mut out = Vec::new();
        self.last_ts = self.last_ts.max(now_ns);
        self.advance(now_ns, &mut out);
        out
    }

    /// End of the stream: closes a learning window still open (with what was seen) and sends
    /// every pending aggregated repeat.
    pub fn finish(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        if self.is_learning() {
            let end = self.last_ts;
            out.push(self.close_baseline(end));
        }
        self.flush_cool(u64::MAX, &mut out);
        out
    }

    fn advance(&mut self, now: u64, out: &mut Vec<Output>) {
        if let Phase::Learning { start, .. } = &mut self.phase {
            let s = *start.get_or_insert(now);
            if self.base.started_ns == 0 {
                self.base.started_ns = s;
            }
            if now >= s.saturating_add(self.cfg.baseline_ns) {
                let end = s.saturating_add(self.cfg.baseline_ns);
                out.push(self.close_baseline(end));
            }
        }
        self.flush_cool(now, out);
    }

    fn close_baseline(&mut self, end: u64) -> Output {
        let phase = std::mem::replace(&mut self.phase, Phase::Judging);
        let Phase::Learning {
            start,
            sched,
            egress_bins,
        } = phase
        else {
            return Output::BaselineEstablished(self.base.summary());
        };
        let start = start.unwrap_or(end);
        self.base.started_ns = start;
        self.base.duration_ns = end.saturating_sub(start);
        if !sched.is_empty() {
            let mut run = vec![0u64; SCHED_BUCKETS];
            let mut off = vec![0u64; SCHED_BUCKETS];
            for (r, o, _) in &sched {
                for i in 0..SCHED_BUCKETS {
                    run[i] += r[i];
                    off[i] += o[i];
                }
            }
            let rates: Vec<f64> = sched.iter().map(|w| w.2).collect();
            let (rate_mean, _) = mean_sd(&rates);
            let mut profile = SchedProfile {
                run_hist: run,
                off_hist: off,
                windows: sched.len() as u64,
                switches_per_s: rate_mean,
                jsd_mean: 0.0,
                jsd_sd: 0.0,
            };
            let ds: Vec<f64> = sched
                .iter()
                .map(|(r, o, rate)| sched_divergence(r, o, *rate, &profile).0)
                .collect();
            (profile.jsd_mean, profile.jsd_sd) = mean_sd(&ds);
            self.base.sched = Some(profile);
        }
        let seconds = self.base.duration_ns.div_ceil(NS).max(1);
        let counts: Vec<f64> = (0..seconds)
            .map(|s| egress_bins.get(&s).copied().unwrap_or(0) as f64)
            .collect();
        let (mean, sd) = mean_sd(&counts);
        self.base.egress = RateProfile {
            seconds,
            mean,
            sd,
            max: egress_bins.values().copied().max().unwrap_or(0),
        };
        // Repeats seen while learning were never alerts.
        self.cool.clear();
        self.cool_next = u64::MAX;
        Output::BaselineEstablished(self.base.summary())
    }

    /// Cooldown aggregation: the first alert of a key goes out; repeats within the cooldown are
    /// counted and sent as one alert when it ends.
    fn raise(&mut self, key: String, mut a: Alert) -> Option<Alert> {
        let cooldown = self.policy.alerts.cooldown_ns;
        match self.cool.get_mut(&key) {
            Some(c) if a.ts_ns < c.until => {
                c.repeats += 1;
                c.last = Some(a);
                None
            }
            _ => {
                a.count = 1;
                let until = a.ts_ns.saturating_add(cooldown);
                self.cool_next = self.cool_next.min(until);
                self.cool.insert(
                    key,
                    Cool {
                        until,
                        repeats: 0,
                        last: None,
                    },
                );
                Some(a)
            }
        }
    }

    fn flush_cool(&mut self, now: u64, out: &mut Vec<Output>) {
        if now < self.cool_next {
            return;
        }
        let due: Vec<String> = self
            .cool
            .iter()
            .filter(|(_, c)| now >= c.until)
            .map(|(k, _)| k.clone())
            .collect();
        self.cool_next = self
            .cool
            .values()
            .map(|c| c.until)
            .filter(|&u| u > now)
            .min()
            .unwrap_or(u64::MAX);
        for k in due {
            let c = self.cool.remove(&k).expect("key listed above");
            if let Some(mut a) = c.last {
                a.count = c.repeats + 1;
                a.summary = format!("{} (x{} within the cooldown)", a.summary, a.count);
                out.push(Output::Alert(a));
            }
        }
    }

    fn ensure_proc(&mut self, r: &Record) -> &Proc {
        if !self.procs.contains_key(&r.pid) {
            self.proc_seq += 1;
            let p = Proc {
                ppid: r.ppid,
                label: None,
                alive: true,
                seq: self.proc_seq,
            };
            self.procs.insert(r.pid, p);
        }
        &self.procs[&r.pid]
    }

    fn prune_procs(&mut self) {
        if self.procs.len() <= MAX_PROCS {
            return;
        }
        let mut dead: Vec<(u64, u32)> = self
            .procs
            .iter()
            .filter(|(_, p)| !p.alive)
            .map(|(pid, p)| (p.seq, *pid))
            .collect();
        dead.sort_unstable();
        for (_, pid) in dead.iter().take(self.procs.len() - MAX_PROCS / 2) {
            self.procs.remove(pid);
        }
    }

    /// Is `pid` `root` or one of its descendants?
    fn descends_from(&self, mut pid: u32, root: u32) -> bool {
        for _ in 0..128 {
            if pid == root {
                return true;
            }
            match self.procs.get(&pid) {
                Some(p) if p.ppid != pid => pid = p.ppid,
                _ => return false,
            }
        }
        false
    }

    /// The records preceding an alert in the process tree of `pid`: its ancestors, itself and
    /// its descendants; oldest first, at most `trace_len`.
    fn trace_for(&self, pid: u32) -> Vec<Record> {
        let limit = self.policy.alerts.trace_len;
        let mut ancestors = HashSet::new();
        let mut p = pid;
        for _ in 0..128 {
            if !ancestors.insert(p) {
                break;
            }
            match self.procs.get(&p) {
                Some(x) => p = x.ppid,
                None => break,
            }
        }
        // Each pid's membership is decided once: an alert storm must not cost ring x depth walks.
        let mut member: HashMap<u32, bool> = HashMap::new();
        let mut out = Vec::new();
        for r in self.ring.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let inside = *member
                .entry(r.pid)
                .or_insert_with(|| ancestors.contains(&r.pid) || self.descends_from(r.pid, pid));
            if inside {
                out.push(r.clone());
            }
        }
        out.reverse();
        out
    }

    fn alert(
        &self,
        r: &Record,
        channel: &str,
        kind: &str,
        divergence: f64,
        summary: String,
        trigger: Vec<Record>,
    ) -> Alert {
        Alert {
            agent_id: r.agent_id.clone(),
            ts_ns: r.ts_ns,
            channel: channel.into(),
            kind: kind.into(),
            divergence,
            pid: r.pid,
            exec_id: r.exec_id.clone(),
            summary,
            trigger,
            syscall_trace: self.trace_for(r.pid),
            action: "ALERT_EMITTED".into(),
            count: 1,
        }
    }

    fn matches_any(pats: &[BoundPattern], comps: Option<&Components<'_>>) -> Option<String> {
        let comps = comps?;
        pats.iter()
            .find(|p| p.matches_components(comps))
            .map(|p| p.text.clone())
    }

    /// Path with HOME written as `~` (baseline keys survive a different HOME).
    fn tilde(&self, path: &[u8]) -> String {
        if let Some(h) = &self.home {
            if path.starts_with(h) && path.get(h.len()) == Some(&b'/') {
                return format!("~{}", lossy(&path[h.len()..]));
            }
        }
        lossy(path)
    }

    /// The area of a file for L3: $CWD, ~, /tmp, else its first two components.
    fn area(&self, path: &[u8]) -> String {
        let under = |base: &Option<Vec<u8>>| {
            base.as_ref()
                .is_some_and(|b| path.starts_with(b) && path.get(b.len()) == Some(&b'/'))
        };
        if under(&self.cwd) {
            return "$CWD".into();
        }
        if under(&self.home) {
            return "~".into();
        }
        for t in ["/tmp/", "/var/tmp/", "/dev/shm/"] {
            if path.starts_with(t.as_bytes()) {
                return "/tmp".into();
            }
        }
        let comps: Vec<&[u8]> = crate::glob::components(path).collect();
        match comps.len() {
            0 | 1 => "/".into(),
            // A file directly in a top-level directory: that directory.
            2 => format!("/{}", lossy(comps[0])),
            _ => format!("/{}/{}", lossy(comps[0]), lossy(comps[1])),
        }
    }

    fn classify_interpreter(&self, e: &Exec) -> Option<(String, String)> {
        let base = e.filename.basename();
        // `ld-linux-x86-64.so.2 /bin/sh -c ...` runs /bin/sh: the loader maps the program named
        // in its argv, so that program is what was executed.
        if is_dynamic_loader(base) {
            let target = loader_target(&e.argv)?;
            let tb = target.basename();
            return self
                .policy
                .interpreter_names
                .iter()
                .any(|g| glob_match(g, tb))
                .then(|| {
                    let name = lossy(tb);
                    (
                        canonical_interpreter(&name),
                        format!("{name} run through the dynamic loader {}", lossy(base)),
                    )
                });
        }
        if self
            .policy
            .interpreter_names
            .iter()
            .any(|g| glob_match(g, base))
        {
            let name = lossy(base);
            return Some((
                canonical_interpreter(&name),
                format!("resolved path {name}"),
            ));
        }
        self.host.interpreters.get(&(e.dev, e.ino)).map(|name| {
            (
                canonical_interpreter(name),
                format!("device+inode of {name}"),
            )
        })
    }

    /// An exec of a file with no path (a memfd, a deleted file): code that was never on disk
    /// for anyone to inspect. Always an alert, learning or not.
    fn on_fileless(&mut self, r: &Record, e: &Exec, out: &mut Vec<(String, Alert)>) {
        let s = format!(
            "pid {} executed {} from no file on disk ({}): {}",
            r.pid,
            e.filename.escaped(),
            if e.filename.as_bytes().starts_with(b"/") {
                "a deleted file"
            } else {
                "a memory-backed file"
            },
            clip(
                &e.argv
                    .iter()
                    .map(|a| a.escaped())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        );
        let a = self.alert(r, "FILELESS_EXEC", "FILELESS_EXEC", 1.0, s, vec![r.clone()]);
        out.push((format!("FILELESS_EXEC {} {}", e.dev, e.ino), a));
    }

    fn risky_rules(&self, e: &Exec) -> Vec<String> {
        let base = e.filename.basename();
        self.policy
            .risky
            .iter()
            .filter(|rule| glob_match(&rule.name, base))
            .filter(|rule| match &rule.arg {
                None => true,
                Some(g) => e.argv.iter().skip(1).any(|a| glob_match(g, a.as_bytes())),
            })
            .map(|rule| rule.text.clone())
            .collect()
    }

    /// The file written in this run that this exec runs: the binary itself (by device+inode or
    /// path), or a script named in the argv of an interpreter.
    fn written_run_by(&self, e: &Exec, interp: bool) -> Option<Written> {
        if e.ino != 0 {
            if let Some(w) = self.written_ino.get(&(e.dev, e.ino)) {
                return Some(w.clone());
            }
        }
        if let Some(w) = self.written_path.get(e.filename.as_bytes()) {
            return Some(w.clone());
        }
        if !interp {
            return None;
        }
        for a in e.argv.iter().skip(1) {
            let a = a.as_bytes();
            if a.first() == Some(&b'-') || a.is_empty() {
                continue;
            }
            if a.first() == Some(&b'/') {
                if let Some(w) = self.written_path.get(a) {
                    return Some(w.clone());
                }
                continue;
            }
            // A relative script path: the process's cwd is unknown, so match the written path's
            // tail (conservative: a same-named file elsewhere could match).
            let rel = a.strip_prefix(b"./").unwrap_or(a);
            let mut tail = b"/".to_vec();
            tail.extend_from_slice(rel);
            if let Some(w) = self.written_path.values().find(|w| w.path.ends_with(&tail)) {
                return Some(w.clone());
            }
        }
        None
    }

    fn on_exec(&mut self, r: &Record, e: &Exec, learning: bool, out: &mut Vec<(String, Alert)>) {
        if e.fileless {
            self.on_fileless(r, e, out);
        }
        let root_start = !self.procs.contains_key(&r.pid) && !self.procs.contains_key(&r.ppid);
        let prev = self
            .ensure_proc(r)
            .label
            .clone()
            .or_else(|| self.procs.get(&r.ppid).and_then(|p| p.label.clone()));
        let new_label = lossy(e.filename.basename());
        let interp = self.classify_interpreter(e);
        let risky = self.risky_rules(e);
        let edge = format!("spawn {} -> {}", prev.as_deref().unwrap_or("?"), new_label);
        let cycle = self.written_run_by(e, interp.is_some());
        let cycle_key = cycle
            .as_ref()
            .map(|w| format!("{} -> {} -> {}", w.writer, self.area(&w.path), new_label));
        if let Some(p) = self.procs.get_mut(&r.pid) {
            p.label = Some(new_label.clone());
            p.alive = true;
        }
        if learning {
            self.base.binaries.insert(new_label.clone());
            if root_start {
                return;
            }
            if let Some((name, _)) = interp {
                self.base.interpreters.insert(name);
            }
            self.base.risky.extend(risky);
            self.base.edges.insert(edge);
            if let Some(k) = cycle_key {
                self.base.cycles.insert(k);
            }
            return;
        }
        if root_start {
            return;
        }
        let argv = clip(
            &e.argv
                .iter()
                .map(|a| a.escaped())
                .collect::<Vec<_>>()
                .join(" "),
        );
        let who = format!("pid {} ({})", r.pid, prev.as_deref().unwrap_or("?"));
        if let Some((name, how)) = &interp {
            if !self.base.interpreters.contains(name) {
                let s = format!(
                    "{who} ran interpreter {name} ({how}) never spawned in the baseline: {argv}"
                );
                let a = self.alert(r, "L2", "LLM_AGENT_HIJACK", 1.0, s, vec![r.clone()]);
                out.push((format!("L2 {name}"), a));
            }
        }
        let novel: Vec<&String> = risky
            .iter()
            .filter(|r| !self.base.risky.contains(*r))
            .collect();
        if !novel.is_empty() {
            let rules = novel
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let s = format!(
                "{who} ran risky binary {} (rule {rules}): {argv}",
                e.filename.escaped()
            );
            let a = self.alert(r, "RISKY_BINARY", "RISKY_BINARY", 1.0, s, vec![r.clone()]);
            out.push((format!("RISKY {new_label}"), a));
        }
        if self.policy.structural_drift && !self.base.edges.contains(&edge) {
            let s = format!("new process edge `{edge}` (not in the baseline): {argv}");
            let a = self.alert(r, "L3", "STRUCTURAL_DRIFT", 1.0, s, vec![r.clone()]);
            out.push((format!("L3 {edge}"), a));
        }
        if let (Some(w), Some(k)) = (cycle, cycle_key) {
            if self.policy.cycles && !self.base.cycles.contains(&k) {
                let s = format!(
                    "{who} executed {} which {} wrote in this run ({k})",
                    lossy(&w.path),
                    w.writer
                );
                let a = self.alert(
                    r,
                    "L3",
                    "CAUSAL_CYCLE_DETECTED",
                    1.0,
                    s,
                    vec![w.rec.clone(), r.clone()],
                );
                out.push((format!("L3 cycle {}", lossy(&w.path)), a));
            }
        }
    }

    fn on_open(
        &mut self,
        r: &Record,
        f: &FileOpen,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        let refused = f.error.is_some();
        let mut path = f.path.as_bytes().to_vec();
        if refused && path.first() != Some(&b'/') {
            // A refused open carries the caller's path; best effort against the agent's cwd.
            if let Some(c) = &self.cwd {
                let mut p = c.clone();
                p.push(b'/');
                p.extend_from_slice(&path);
                path = p;
            }
        }
        let write_intent = f.access != Access::Read || f.create || f.truncate;
        let comps = Components::of(&path);
        let persist = if write_intent {
            Self::matches_any(&self.persistence, comps.as_ref())
        } else {
            None
        };
        let sensitive = if persist.is_none() {
            Self::matches_any(&self.sensitive, comps.as_ref())
        } else {
            None
        };
        let key_path = self.tilde(&path);
        let label = self
            .ensure_proc(r)
            .label
            .clone()
            .unwrap_or_else(|| "?".into());
        let written = write_intent && !refused;
        let noise = Self::matches_any(&self.noise, comps.as_ref()).is_some();
        let edge = (written && !noise && persist.is_none() && sensitive.is_none())
            .then(|| format!("write {label} -> {}", self.area(&path)));
        if written {
            let w = Written {
                path: path.clone(),
                id: (f.dev, f.ino),
                writer: label.clone(),
                rec: r.clone(),
            };
            if f.ino != 0 {
                self.written_ino.insert((f.dev, f.ino), w.clone());
            }
            if self.written_path.insert(path.clone(), w).is_none() {
                self.written_order.push_back(path.clone());
            }
            while self.written_order.len() > MAX_WRITTEN {
                if let Some(old) = self.written_order.pop_front() {
                    if let Some(w) = self.written_path.remove(&old) {
                        // Only if that inode still names this path (a later write may own it).
                        if self
                            .written_ino
                            .get(&w.id)
                            .is_some_and(|x| x.path == w.path)
                        {
                            self.written_ino.remove(&w.id);
                        }
                    }
                }
            }
        }
        if learning {
            if persist.is_some() {
                self.base.persistence.insert(key_path);
            } else if sensitive.is_some() {
                self.base.sensitive.insert(key_path);
            }
            if let Some(e) = edge {
                self.base.edges.insert(e);
            }
            return;
        }
        let how = if refused {
            format!("tried to open (refused, errno {})", f.error.unwrap_or(0))
        } else {
            "opened".to_string()
        };
        let mode = match f.access {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "read-write",
        };
        let div = if refused { 0.5 } else { 1.0 };
        let who = format!("pid {} ({label})", r.pid);
        if let Some(rule) = persist {
            if !self.base.persistence.contains(&key_path) {
                let s = format!(
                    "{who} {how} {} for {mode} (persistence, `{rule}`)",
                    lossy(&path)
                );
                let a = self.alert(r, "PERSISTENCE", "PERSISTENCE", div, s, vec![r.clone()]);
                out.push((format!("PERSISTENCE {key_path}"), a));
            }
        } else if let Some(rule) = sensitive {
            if !self.base.sensitive.contains(&key_path) {
                let s = format!(
                    "{who} {how} {} for {mode} (sensitive, `{rule}`)",
                    lossy(&path)
                );
                let a = self.alert(
                    r,
                    "SENSITIVE_FILE",
                    "SENSITIVE_FILE",
                    div,
                    s,
                    vec![r.clone()],
                );
                out.push((format!("SENSITIVE {key_path}"), a));
            }
        }
        if let Some(e) = edge {
            if self.policy.structural_drift && !self.base.edges.contains(&e) {
                let s = format!(
                    "new file edge `{e}` (not in the baseline): {}",
                    lossy(&path)
                );
                let a = self.alert(r, "L3", "STRUCTURAL_DRIFT", 1.0, s, vec![r.clone()]);
                out.push((format!("L3 {e}"), a));
            }
        }
    }

    fn is_system_resolver(&self, ip: IpAddr) -> bool {
        self.host
            .resolvers
            .iter()
            .any(|&r| canonical_ip(r) == canonical_ip(ip))
    }

    fn on_egress(
        &mut self,
        r: &Record,
        dest: &SockAddr,
        protocol: &str,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        if !matches!(dest.family, Family::Inet | Family::Inet6) {
            return;
        }
        let Some(ip) = dest.addr.as_deref().and_then(|a| a.parse::<IpAddr>().ok()) else {
            return;
        };
        let ip = canonical_ip(ip);
        let ts = r.ts_ns;
        let label = self
            .ensure_proc(r)
            .label
            .clone()
            .unwrap_or_else(|| "?".into());
        let key = dest_key(ip, dest.port);
        let edge = format!("connect {label} -> {protocol}/{}", scope(ip));
        // Rate: events in the last second.
        self.egress.push_back(ts);
        while self
            .egress
            .front()
            .is_some_and(|&t| t.saturating_add(NS) <= ts)
        {
            self.egress.pop_front();
        }
        self.egress_recs.push_back(r.clone());
        if self.egress_recs.len() > MAX_TRIGGER {
            self.egress_recs.pop_front();
        }
        if let Phase::Learning {
            start: Some(s),
            egress_bins,
            ..
        } = &mut self.phase
        {
            *egress_bins.entry(ts.saturating_sub(*s) / NS).or_default() += 1;
        }
        if learning {
            self.base.destinations.insert(key);
            self.base.edges.insert(edge);
            return;
        }
        let allowed = self
            .policy
            .network
            .allow
            .iter()
            .any(|a| a.allows(ip, dest.port))
            || (dest.port == Some(53) && self.is_system_resolver(ip))
            || self.base.destinations.contains(&key);
        let who = format!("pid {} ({label})", r.pid);
        if !allowed {
            let mut reasons =
                vec!["not allowed by the policy nor seen in the baseline".to_string()];
            let mut div = 1.0;
            if let Some(p) = dest.port {
                if !self.policy.network.standard_ports.contains(&p) {
                    div += 0.5;
                    reasons.push(format!("non-standard port {p}"));
                }
            }
            let resolved_recently = self
                .last_dns
                .is_some_and(|t| ts.saturating_sub(t) <= self.policy.network.resolve_window_ns);
            if scope(ip) == "public" && !resolved_recently {
                div += 0.5;
                reasons.push("raw IP with no DNS query before it".into());
            }
            let s = format!("{who} {protocol} to {key}: {}", reasons.join("; "));
            let a = self.alert(r, "L4", "UNKNOWN_DESTINATION", div, s, vec![r.clone()]);
            out.push((format!("L4 dest {key}"), a));
        }
        let n = &self.policy.network;
        let b = &self.base.egress;
        let threshold = (b.mean + n.burst_sigma * b.sd).max(n.burst_min_per_s as f64);
        let threshold = threshold.min(n.burst_cap_per_s as f64);
        let rate = self.egress.len() as f64;
        if rate > threshold {
            if !self.in_burst {
                self.in_burst = true;
                let s = format!(
                    "{who}: {rate} connects/sends in one second, above {threshold:.1}/s \
                     (baseline {:.1}/s ± {:.1}, cap {}/s)",
                    b.mean, b.sd, n.burst_cap_per_s
                );
                let trig = self.egress_recs.iter().cloned().collect();
                let a = self.alert(r, "L4", "NET_EGRESS_BURST", rate / threshold, s, trig);
                out.push(("L4 burst".into(), a));
            }
        } else {
            self.in_burst = false;
        }
        if self.policy.structural_drift && !self.base.edges.contains(&edge) {
            let s = format!("new network edge `{edge}` (not in the baseline) to {key}");
            let a = self.alert(r, "L3", "STRUCTURAL_DRIFT", 1.0, s, vec![r.clone()]);
            out.push((format!("L3 {edge}"), a));
        }
    }

    fn domain_expected(&self, qname: &str, domain: &str) -> bool {
        let names = self
            .policy
            .dns
            .expected
            .iter()
            .map(|n| (n.as_str(), true))
            .chain(
                self.policy
                    .network
                    .allow
                    .iter()
                    .filter_map(|a| match &a.host {
                        crate::policy::AllowHost::Name { name, suffix } => {
                            Some((name.as_str(), *suffix))
                        }
                        _ => None,
                    }),
            );
        for (name, suffix) in names {
            if qname == name || (suffix && qname.ends_with(&format!(".{name}"))) {
                return true;
            }
        }
        self.base.dns_domains.contains(domain)
    }

    fn on_dns(&mut self, r: &Record, d: &Dns, learning: bool, out: &mut Vec<(String, Alert)>) {
        self.last_dns = Some(r.ts_ns);
        let qname = lossy(d.qname.as_bytes()).to_ascii_lowercase();
        let domain = domain_of(&qname);
        let server = d.server.addr.clone().unwrap_or_else(|| "?".into());
        if learning {
            self.base.dns_domains.insert(domain);
            self.base.dns_servers.insert(server);
            return;
        }
        let p = &self.policy.dns;
        let labels: Vec<&[u8]> = d.qname.as_bytes().split(|&b| b == b'.').collect();
        let max_entropy = labels.iter().map(|l| entropy(l)).fold(0.0, f64::max);
        let longest = labels.iter().map(|l| l.len()).max().unwrap_or(0);
        let mut reasons = Vec::new();
        let mut key = None;
        let tunnel = longest > p.max_label_len
            || d.qname.as_bytes().len() > p.max_name_len
            || labels
                .iter()
                .any(|l| l.len() >= p.entropy_min_len && entropy(l) >= p.entropy_bits);
        if tunnel {
            reasons.push(format!(
                "tunnelling-like name (longest label {longest}, entropy {max_entropy:.2} bits/char)"
            ));
            key = Some(format!("DNS tunnel {domain}"));
        }
        let server_ip = d
            .server
            .addr
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok());
        let known_server = self.host.resolvers.is_empty()
            || server_ip.is_some_and(|ip| self.is_system_resolver(ip))
            || self.base.dns_servers.contains(&server);
        if !known_server {
            reasons.push(format!("resolver {server} is not the system's"));
            key.get_or_insert_with(|| format!("DNS resolver {server}"));
        }
        if !self.domain_expected(&qname, &domain) {
            reasons.push(format!("domain {domain} not expected"));
            key.get_or_insert_with(|| format!("DNS domain {domain}"));
        }
        if let Some(key) = key {
            let s = format!(
                "pid {} queried {} {} via {server}: {}",
                r.pid,
                d.qtype_name,
                d.qname.escaped(),
                reasons.join("; ")
            );
            let a = self.alert(
                r,
                "DNS_ANOMALY",
                "DNS_ANOMALY",
                max_entropy,
                s,
                vec![r.clone()],
            );
            out.push((key, a));
        }
    }

    fn on_ptrace(
        &mut self,
        r: &Record,
        p: &Ptrace,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        if !matches!(p.request.as_str(), "attach" | "seize") {
            return;
        }
        if learning {
            self.base.ptrace += 1;
            return;
        }
        if !self.policy.ptrace {
            return;
        }
        let s = format!(
            "ptrace {} by pid {}{} onto pid {}{}",
            p.request,
            p.tracer_pid,
            if p.tracer_tracked {
                " (tracked)"
            } else {
                " (not tracked)"
            },
            p.target_pid,
            if p.target_tracked {
                " (tracked)"
            } else {
                " (not tracked)"
            },
        );
        let a = self.alert(r, "L5", "PTRACE_ATTACH_DETECTED", 1.0, s, vec![r.clone()]);
        out.push((format!("L5 {}->{}", p.tracer_pid, p.target_pid), a));
    }

    /// Records of the agent's tree the kernel could not deliver (a full ring buffer, or a child
    /// that could not join a full tracked set): the agent may be flooding to hide what it does,
    /// so the loss is an alert of its own, learning or not.
    fn on_lost(&mut self, r: &Record, l: &Lost, out: &mut Vec<(String, Alert)>) {
        const TREE_KINDS: [&str; 11] = [
            "exec",
            "fork",
            "exit",
            "file_open",
            "connect",
            "send",
            "ptrace",
            "decision",
            "track_full",
            "tls",
            "tls_sni",
        ];
        if l.count == 0 || !TREE_KINDS.contains(&l.what.as_str()) {
            return;
        }
        let s = format!(
            "the sensor lost {} {} record(s) of the agent's tree (the kernel could not deliver them; a flood may be hiding actions)",
            l.count, l.what
        );
        let a = self.alert(r, "SENSOR_LOSS", "EVENTS_LOST", 1.0, s, vec![r.clone()]);
        out.push((format!("SENSOR_LOSS {}", l.what), a));
    }

    fn on_sched(&mut self, r: &Record, s: &Sched, out: &mut Vec<(String, Alert)>) {
        if s.run_hist.len() != SCHED_BUCKETS || s.off_hist.len() != SCHED_BUCKETS {
            return;
        }
        let p = &self.policy.sched;
        if s.switches < p.min_switches {
            return;
        }
        self.sched_recs.push_back(r.clone());
        if self.sched_recs.len() > MAX_TRIGGER {
            self.sched_recs.pop_front();
        }
        if let Phase::Learning { sched, .. } = &mut self.phase {
            sched.push((s.run_hist.clone(), s.off_hist.clone(), switches_per_s(s)));
            return;
        }
        if !p.enabled {
            return;
        }
        let Some(b) = &self.base.sched else {
            return;
        };
        let (d, shape, rate) = sched_divergence(&s.run_hist, &s.off_hist, switches_per_s(s), b);
        let reference = b.jsd_mean + p.slack.max(p.slack_sigma * b.jsd_sd);
        self.cusum = (self.cusum + d - reference).max(0.0);
        if self.cusum > p.threshold {
            let score = self.cusum;
            let summary = format!(
                "scheduling behaviour drifted: window divergence {d:.3} (histogram JSD {shape:.3}, \
                 {rate:.0} switches/s vs {:.0}) against the baseline's {:.3} ± {:.3}; \
                 CUSUM {score:.3} > {}",
                b.switches_per_s, b.jsd_mean, b.jsd_sd, p.threshold
            );
            let trig = self.sched_recs.iter().cloned().collect();
            self.cusum = 0.0;
            let a = self.alert(r, "L1", "DRIFT_DETECTED", score, summary, trig);
            out.push(("L1 sched".into(), a));
        }
    }
}

/// The glibc/musl dynamic loader (`ld-linux-x86-64.so.2`, `ld-linux-aarch64.so.1`,
/// `ld-musl-x86_64.so.1`, `ld.so`).
fn is_dynamic_loader(base: &[u8]) -> bool {
    base == b"ld.so" || (base.starts_with(b"ld-") && base.windows(3).any(|w| w == b".so"))
}

/// The program a loader invocation runs: its first argument after the loader's own options
/// (those that take a value skip it too).
fn loader_target(argv: &[Bytes]) -> Option<&Bytes> {
    const WITH_VALUE: [&[u8]; 7] = [
        b"--library-path",
        b"--preload",
        b"--argv0",
        b"--audit",
        b"--inhibit-rpath",
        b"--glibc-hwcaps-prefix",
        b"--glibc-hwcaps-mask",
    ];
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        let b = a.as_bytes();
        if WITH_VALUE.contains(&b) {
            args.next();
        } else if !b.starts_with(b"--") {
            return Some(a);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<Bytes> {
        a.iter().map(|s| Bytes::from(*s)).collect()
    }

    #[test]
    fn the_dynamic_loader_runs_the_program_after_its_options() {
        assert!(is_dynamic_loader(b"ld-linux-x86-64.so.2"));
        assert!(is_dynamic_loader(b"ld-musl-x86_64.so.1"));
        assert!(!is_dynamic_loader(b"ldd") && !is_dynamic_loader(b"ld"));
        let t = |a: &[&str]| loader_target(&argv(a)).map(|b| b.as_bytes().to_vec());
        assert_eq!(
            t(&["ld.so", "/bin/sh", "-c", "id"]),
            Some(b"/bin/sh".to_vec())
        );
        assert_eq!(
            t(&[
                "ld.so",
                "--library-path",
                "/x",
                "--inhibit-cache",
                "/bin/bash"
            ]),
            Some(b"/bin/bash".to_vec())
        );
        assert_eq!(t(&["ld.so", "--list"]), None);
    }
}
