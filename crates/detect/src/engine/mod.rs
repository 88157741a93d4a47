//! The detection engine: learns a [`Baseline`] during the first `baseline_ns` of the stream, then
//! judges every record against it and the [`Policy`], and aggregates repeats within a cooldown.
//!
//! Time comes only from record timestamps and [`Engine::tick`] arguments, so a replayed log gives
//! the same alerts as the live run. The only host I/O is at construction ([`HostFacts::discover`]:
//! stat the interpreters, read /etc/resolv.conf); [`Engine::with_host`] takes them as data.

use crate::baseline::{Baseline, BaselineSummary, RateProfile, SchedProfile};
use crate::cooldown::Cooldown;
use crate::glob::{glob_match, BoundPattern, PathRules, PatternSet};
use crate::incident::{alert_severity, Correlator};
use crate::policy::{canonical_ip, Policy, Resolver};
use crate::stats::{entropy, jsd, mean_sd};
use proctor_model::{
    Access, Alert, Bytes, Dns, Event, Exec, Family, FileOpen, Incident, IoUringSetup, Lost,
    Privileged, Ptrace, Record, Sched, SockAddr, SCHED_BUCKETS,
};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

mod exec;
mod files;
mod graph;
mod intent;
mod loss;
mod net;
mod packages;
mod privileged;
mod ptrace;
mod sched;
mod uring;
mod written;

pub use exec::canonical_interpreter;
pub(crate) use graph::area_of;
use graph::file_name;
pub(crate) use privileged::TIMESTOMP;
pub(crate) use sched::sched_divergence;
use written::WrittenFiles;

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
    /// An incident opened or grew (it follows the alert that changed it); the last one of an
    /// id is its current state.
    Incident(Incident),
    /// A low-severity finding (a new structural edge on its own): kept, attached to an
    /// incident of the same tool call, never an alert by itself.
    Evidence(Alert),
}

/// Facts about this host the engine needs, gathered once at start.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// (st_dev, st_ino) of interpreter binaries found in the policy's directories -> file name.
    pub interpreters: HashMap<(u64, u64), String>,
    /// ELF build-id of those interpreter binaries -> file name: a copy under another name, in
    /// another place or in memory is still the same program.
    pub interpreter_ids: HashMap<String, String>,
    /// The resolvers DNS queries are expected to go to ("system" expanded).
    pub resolvers: Vec<IpAddr>,
    /// (st_dev, st_ino) and ELF build-id of the risky binaries found in the same directories
    /// -> file name, so a hard link or copy under another name is still that binary. A file
    /// that is several risky names at once (a multi-call binary) is left out.
    pub risky: HashMap<(u64, u64), String>,
    pub risky_ids: HashMap<String, String>,
    /// The file names in the system's program directories ([`SYSTEM_BIN_DIRS`]): a file of one
    /// of these names put in a directory searched before them shadows that program.
    pub system_commands: HashSet<Vec<u8>>,
    /// (st_dev, st_ino) of the regular files of those directories and /usr/local/bin -> their
    /// names there: a hard link of `cat` named `aws` is cat (a program's own configuration
    /// reads, its tool family and its package manager trust go by the name).
    pub programs: HashMap<(u64, u64), Vec<Vec<u8>>>,
    /// (st_dev, st_ino) of the sockets `[ptrace].service_sockets` names that exist now -> their
    /// path: a hard link to the system bus is still the system bus.
    pub service_sockets: HashMap<(u64, u64), Vec<u8>>,
}

/// Where the system's own programs live, searched after `[files].path_ahead` on users' PATH.
pub const SYSTEM_BIN_DIRS: [&str; 4] = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"];

impl HostFacts {
    /// Stat every file in the policy's interpreter directories whose name matches an interpreter
    /// glob, and read the nameservers of /etc/resolv.conf if the policy says "system".
    ///
    /// Device+inode identifies the file, not its name: a hard link (or a rename) of bash keeps
    /// them and is still classified as bash. A byte copy gets a new inode but keeps the ELF
    /// build-id, which identifies it too (exec records carry the build-id of what ran).
    pub fn discover(policy: &Policy) -> HostFacts {
        use std::os::unix::fs::MetadataExt;
        let mut interpreters = HashMap::new();
        let mut interpreter_ids = HashMap::new();
        let mut links = Vec::new();
        let mut risky: HashMap<(u64, u64), Option<String>> = HashMap::new();
        let mut risky_ids: HashMap<String, Option<String>> = HashMap::new();
        // Every file of the binary directories is tried against both name lists: the names
        // without a glob character are one set lookup, not a glob match each (a thousand files
        // by ~90 names was a millisecond of every start).
        let risky_names = NameSet::new(policy.risky.iter().map(|r| r.name.as_slice()));
        let interp_names = NameSet::new(policy.interpreter_names.iter().map(Vec::as_slice));
        for dir in distinct_dirs(policy.interpreter_dirs.iter().map(String::as_str)) {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut entries: Vec<_> = rd.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let name = e.file_name();
                let nb = name.as_encoded_bytes();
                if risky_names.matches(nb) {
                    if let Some(m) = std::fs::symlink_metadata(e.path())
                        .ok()
                        .filter(|m| m.is_file())
                    {
                        let name = name.to_string_lossy().into_owned();
                        let one = |slot: &mut Option<String>| {
                            if slot.as_deref() != Some(name.as_str()) {
                                *slot = None;
                            }
                        };
                        one(risky
                            .entry((m.dev(), m.ino()))
                            .or_insert(Some(name.clone())));
                        if let Some(id) = crate::identity::build_id_of(&e.path()) {
                            one(risky_ids.entry(id).or_insert(Some(name.clone())));
                        }
                    }
                }
                if !interp_names.matches(nb) {
                    continue;
                }
                let name = name.to_string_lossy().into_owned();
                match std::fs::symlink_metadata(e.path()) {
                    Ok(m) if m.file_type().is_symlink() => links.push((e.path(), name)),
                    Ok(m) if m.is_file() => {
                        if let Some(id) = crate::identity::build_id_of(&e.path()) {
                            interpreter_ids.entry(id).or_insert_with(|| name.clone());
                        }
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
        let mut system_commands = HashSet::new();
        let mut programs: HashMap<(u64, u64), Vec<Vec<u8>>> = HashMap::new();
        // /bin and /sbin are /usr/bin and /usr/sbin on a merged-/usr system (Debian 12): each
        // directory is listed and its files stat-ed once (a stat of each of ~2,000 files twice
        // was ~10 ms of every start and every replay).
        let system_dirs = distinct_dirs(SYSTEM_BIN_DIRS.iter().copied());
        for dir in distinct_dirs(
            SYSTEM_BIN_DIRS
                .iter()
                .chain(["/usr/local/bin"].iter())
                .copied(),
        ) {
            let system = system_dirs.contains(&dir);
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().into_encoded_bytes();
                if let Some(m) = e.metadata().ok().filter(|m| m.is_file()) {
                    let names = programs.entry((m.dev(), m.ino())).or_default();
                    if !names.contains(&name) {
                        names.push(name.clone());
                    }
                }
                if system {
                    system_commands.insert(name);
                }
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
            interpreter_ids,
            resolvers,
            risky: risky
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect(),
            risky_ids: risky_ids
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect(),
            system_commands,
            programs,
            service_sockets: service_sockets(&policy.service_sockets),
        }
    }
}

/// The sockets that path globs name now (abstract names have no file), by identity. A wildcard
/// is expanded one directory level at a time (`/run/user/*/bus`: the entries of /run/user),
/// never by walking a tree.
fn service_sockets(globs: &[Vec<u8>]) -> HashMap<(u64, u64), Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = HashMap::new();
    for g in globs.iter().filter(|g| g.first() == Some(&b'/')) {
        let mut paths = vec![std::path::PathBuf::from("/")];
        for part in g.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            let wild = part.iter().any(|b| matches!(b, b'*' | b'?' | b'['));
            let mut next = Vec::new();
            for dir in &paths {
                if !wild {
                    next.push(dir.join(std::ffi::OsStr::from_bytes(part)));
                    continue;
                }
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                next.extend(
                    rd.flatten()
                        .filter(|e| glob_match(part, e.file_name().as_bytes()))
                        .map(|e| e.path()),
                );
            }
            paths = next;
            paths.truncate(1024);
        }
        for p in paths {
            if let Some(m) = std::fs::metadata(&p)
                .ok()
                .filter(|m| m.file_type().is_socket())
            {
                out.entry((m.dev(), m.ino()))
                    .or_insert_with(|| p.as_os_str().as_bytes().to_vec());
            }
        }
    }
    out
}

/// `dirs` with symlinks resolved, each directory once, in order (missing ones left out).
fn distinct_dirs<'a>(dirs: impl Iterator<Item = &'a str>) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = Vec::new();
    for d in dirs {
        if let Ok(c) = std::fs::canonicalize(d) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
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
    /// Shared: every fork copies its parent's, and the egress and exec detectors take one per
    /// record.
    label: Option<Arc<str>>,
    /// The label its current image was judged as spawned by (a launcher's own spawner for
    /// what the launcher runs); None for the tree's root.
    from: Option<Arc<str>>,
    /// When it exited; None while alive.
    exited: Option<u64>,
    seq: u64,
    /// The argv of its current image (clipped), for incidents' root.
    argv: Option<String>,
    /// The system package transaction it belongs to (copied at fork), 0 for none.
    tx: u32,
}

#[derive(Debug, Clone)]
struct Written {
    path: Vec<u8>,
    /// (st_dev, st_ino) of the file written; (0, 0) when unknown.
    id: (u64, u64),
    writer: Arc<str>,
    rec: Arc<Record>,
    /// The pid whose open created or truncated the file (the latest such), 0 if none of the
    /// tree's did: a process that sets the times of what it made is extracting or copying.
    maker: u32,
}

enum Phase {
    Learning {
        start: Option<u64>,
        sched: Vec<(Vec<u64>, Vec<u64>, f64)>,
        egress_bins: BTreeMap<u64, u64>,
    },
    Judging,
}

/// The directory part of `path`: everything before its last `/` (empty for a name without
/// one, and for a name directly under the root).
fn parent_dir(path: &[u8]) -> &[u8] {
    &path[..path.iter().rposition(|&b| b == b'/').unwrap_or(0)]
}

/// How many facts the engine remembers only to skip repeated work (`plain_reads`,
/// `learned_egress`): past it they are forgotten and the work is done in full again.
const MAX_REMEMBERED: usize = 1 << 16;

/// A 64-bit digest of `v` (the same within a run), for those sets: a collision can only
/// skip work whose result is already known for what collided. Keyed with this process's random
/// SipHash keys (as std's maps are), so the agent, which controls much of what is digested,
/// cannot aim for collisions, in it or in the sets that hold it (`Digests`).
fn digest<T: std::hash::Hash + ?Sized>(v: &T) -> u64 {
    use std::hash::BuildHasher;
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(Default::default).hash_one(v)
}

/// A set of [`digest`]s: a digest is already a keyed hash, so the set's own hash is Fx's one
/// multiply rather than a second SipHash.
type Digests = rustc_hash::FxHashSet<u64>;
/// Maps keyed by numbers the kernel gives (pids, inodes, record numbers): Fx, not SipHash
/// (SipHash on the process map was 1.7% of replay). Paths and names stay on SipHash.
type FxHashMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// File-name globs split into exact names (a set) and the patterns with a glob character.
struct NameSet<'a> {
    exact: HashSet<&'a [u8]>,
    globs: Vec<&'a [u8]>,
}

impl<'a> NameSet<'a> {
    fn new(names: impl Iterator<Item = &'a [u8]>) -> Self {
        let (globs, exact): (Vec<_>, Vec<_>) =
            names.partition(|n| n.iter().any(|c| matches!(c, b'*' | b'?' | b'[')));
        NameSet {
            exact: exact.into_iter().collect(),
            globs,
        }
    }

    fn matches(&self, name: &[u8]) -> bool {
        self.exact.contains(name) || self.globs.iter().any(|g| glob_match(g, name))
    }
}

/// The detection engine. See the crate docs for the channels and their scores.
pub struct Engine {
    policy: Policy,
    cfg: EngineConfig,
    host: HostFacts,
    /// The `[files]` persistence, sensitive and noise patterns, bound to HOME and CWD.
    paths: PathRules,
    /// `[files].histories`, `logs` and `destruction_quiet`, bound the same way.
    histories: PatternSet,
    /// `[files].path_ahead`, bound the same way.
    path_ahead: PatternSet,
    logs: PatternSet,
    destruction_quiet: PatternSet,
    /// Times of the deletions outside those places within the last 10 s (files.rs), and the
    /// time until which a DATA_DESTRUCTION alert covers them.
    deletions: VecDeque<u64>,
    destruction_until: u64,
    home: Option<Vec<u8>>,
    cwd: Option<Vec<u8>>,
    phase: Phase,
    base: Baseline,
    procs: FxHashMap<u32, Proc>,
    proc_seq: u64,
    ring: VecDeque<Arc<Record>>,
    /// The files the tree wrote (written.rs).
    written: WrittenFiles,
    /// Directories the tree made something in or below in this run (`mkdir` records, opens
    /// that created a file; each directory made or filled, and its ancestors) -> the last pid
    /// that did: a process that sets the times of a directory it made something in or below
    /// is extracting or copying (tar, `cp -a src/. /etc/app`, `rsync -a`), not timestomping.
    /// Forgotten whole past [`MAX_REMEMBERED`].
    filled_dirs: HashMap<Vec<u8>, u32>,
    /// Device+inode of the sensitive files that exist -> their path: a hard link or a bind
    /// mount reaches the same file under a path no rule names.
    sensitive_ids: FxHashMap<(u64, u64), Vec<u8>>,
    /// Recorded reads judged to raise nothing, (kseq, dev, ino, flags) -> a hash of the path:
    /// a folded read of the same file, name and flags (`file_open_seen`) is judged the same
    /// and skipped (files.rs). Emptied when the rules' view of the files changes.
    plain_reads: FxHashMap<(u64, u64, u64, u32), u64>,
    /// Hashes of (process label, address, port, protocol) whose egress the learning window
    /// has learned (net.rs): the same again learns nothing new.
    learned_egress: Digests,
    /// Connects and sends of the last second: (time, how many; a counted repeat stands for
    /// many), and their sum.
    egress: VecDeque<(u64, u64)>,
    egress_n: u64,
    egress_recs: VecDeque<Arc<Record>>,
    in_burst: bool,
    last_dns: Option<u64>,
    cusum: f64,
    sched_recs: VecDeque<Record>,
    cool: Cooldown,
    last_ts: u64,
    evidence_out: Vec<Alert>,
    seen_evidence: HashSet<String>,
    /// Graph node of each process label seen (see `node`): matching a label against every tool
    /// family glob, for every exec, open written and connect, was a tenth of replay's time on a
    /// connect storm. Bounded: it starts over when full.
    node_memo: std::cell::RefCell<HashMap<String, String>>,
    /// NET_SCAN state per tool call (chain root pid).
    scans: FxHashMap<u32, net::Scan>,
    correlator: Correlator,
    alert_seq: u64,
    pending_sni: Vec<net::PendingSni>,
    /// ClientHellos read before their connect (see `on_sni`).
    early_sni: VecDeque<net::EarlySni>,
    /// The model's recent tool calls (time, string values of their arguments).
    tool_calls: VecDeque<(u64, Vec<String>)>,
    /// LLM requests not answered yet, and the scripts that wait for them (see `intent`).
    llm_in_flight: VecDeque<intent::InFlight>,
    held_intent: Vec<intent::HeldIntent>,
    /// System package transactions and whether each is still trusted (`packages`).
    txs: packages::Transactions,
    /// Addresses the host names of `[network].allow` resolved to (with the entry's port), so
    /// that a name allows its addresses as in the kernel allowlist.
    resolved: HashSet<(std::net::IpAddr, Option<u16>)>,
    /// DNS queries the tree sent and answers it received: which name each address came from.
    names: net::ResolvedNames,
}

pub(crate) fn lossy(b: &[u8]) -> String {
    Bytes(b.to_vec()).escaped()
}

fn path_bytes(p: &std::path::Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}

pub use proctor_model::rfc3339;

/// `r` as an `Arc`: the shared copy when there is one, else a new one.
fn share(r: &Record, shared: Option<&Arc<Record>>) -> Arc<Record> {
    shared.cloned().unwrap_or_else(|| Arc::new(r.clone()))
}

/// The installed package a script belongs to: its path up to the package's directory under
/// the last `node_modules/` (`.../node_modules/NAME/` or `.../node_modules/@SCOPE/NAME/`).
fn package_of(script: &str) -> Option<&str> {
    let at = script.rfind("/node_modules/")? + "/node_modules/".len();
    let rest = &script[at..];
    let parts = if rest.starts_with('@') { 2 } else { 1 };
    let mut end = at;
    for _ in 0..parts {
        end += script[end..].find('/')? + 1;
    }
    Some(&script[..end])
}

/// Summaries stay one readable line: argv is cut (the trigger record has all of it).
fn clip(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
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
        let paths = PathRules::new(
            bind(&policy.files.persistence),
            bind(&policy.files.sensitive),
            bind(&policy.files.noise),
        );
        let histories = PatternSet::new(bind(&policy.files.histories));
        let logs = PatternSet::new(bind(&policy.files.logs));
        let destruction_quiet = PatternSet::new(bind(&policy.files.destruction_quiet));
        let path_ahead = PatternSet::new(bind(&policy.files.path_ahead));
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
        let policy_window = policy.alerts.incident_window_ns;
        let cooldown_ns = policy.alerts.cooldown_ns;
        let mut engine = Engine {
            policy,
            cfg,
            host,
            paths,
            histories,
            logs,
            destruction_quiet,
            path_ahead,
            deletions: VecDeque::new(),
            destruction_until: 0,
            home,
            cwd,
            phase,
            base,
            procs: FxHashMap::default(),
            proc_seq: 0,
            ring: VecDeque::new(),
            written: WrittenFiles::default(),
            filled_dirs: HashMap::new(),
            sensitive_ids: FxHashMap::default(),
            plain_reads: FxHashMap::default(),
            learned_egress: Digests::default(),
            egress: VecDeque::new(),
            egress_n: 0,
            egress_recs: VecDeque::new(),
            in_burst: false,
            last_dns: None,
            cusum: 0.0,
            sched_recs: VecDeque::new(),
            cool: Cooldown::new(cooldown_ns),
            last_ts: 0,
            evidence_out: Vec::new(),
            seen_evidence: HashSet::new(),
            node_memo: Default::default(),
            scans: FxHashMap::default(),
            correlator: Correlator::new(policy_window),
            alert_seq: 0,
            pending_sni: Vec::new(),
            early_sni: VecDeque::new(),
            resolved: HashSet::new(),
            names: net::ResolvedNames::default(),
            tool_calls: VecDeque::new(),
            llm_in_flight: VecDeque::new(),
            held_intent: Vec::new(),
            txs: Default::default(),
        };
        engine.derive_interp_parents();
        engine
    }

    /// A profile saved before `interp_parents` existed: which parents ran which interpreter
    /// family, from its edges (else every interpreter edge would look new).
    fn derive_interp_parents(&mut self) {
        if !self.base.interp_parents.is_empty() || self.base.interpreters.is_empty() {
            return;
        }
        let derived: Vec<String> = self
            .base
            .edges
            .iter()
            .filter_map(|e| e.strip_prefix("spawn ")?.split_once(" -> "))
            .filter_map(|(parent, child)| {
                let fam = canonical_interpreter(child);
                self.base
                    .interpreters
                    .contains(&fam)
                    .then(|| format!("{} -> {fam}", self.node(parent)))
            })
            .collect();
        self.base.interp_parents.extend(derived);
    }

    /// True while the learning window is open.
    /// A reloaded policy's `[network].allow`: judged from the next record on (the list is read
    /// at each judgment; addresses names resolved to stay allowed).
    pub fn set_network_allow(&mut self, allow: Vec<crate::policy::AllowEntry>) {
        self.policy.network.allow = allow;
    }

    /// An allowed host name resolved to `ip`: allow `ip` (on the entry's `port`, or any port when
    /// None) as the name. The caller resolves (at start and periodically); old addresses stay
    /// allowed, as connections to them may still be in use.
    pub fn allow_resolved(&mut self, ip: std::net::IpAddr, port: Option<u16>) {
        self.resolved
            .insert((crate::policy::canonical_ip(ip), port));
    }

    pub fn is_learning(&self) -> bool {
        matches!(self.phase, Phase::Learning { .. })
    }

    /// While learning, when the window closes (its first record's time plus the baseline,
    /// record time): a [`Engine::tick`] at or after it closes the window even if no record
    /// comes.
    pub fn learning_ends_ns(&self) -> Option<u64> {
        match &self.phase {
            Phase::Learning { start: Some(s), .. } => Some(s.saturating_add(self.cfg.baseline_ns)),
            _ => None,
        }
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
        // Copied only when kept (the ring holds it).
        if Self::kept(r) {
            self.observe_owned(r.clone())
        } else {
            self.judge(r, None)
        }
    }

    /// [`Engine::observe`] for a caller that is done with the record (replay): it is kept for
    /// context without a copy.
    pub fn observe_owned(&mut self, r: Record) -> Vec<Output> {
        if !Self::kept(&r) {
            return self.judge(&r, None);
        }
        self.observe_shared(Arc::new(r))
    }

    /// [`Engine::observe_owned`] for a record that is already shared (replay decodes into an
    /// `Arc`): a kept record joins the ring as it is.
    pub fn observe_shared(&mut self, r: Arc<Record>) -> Vec<Output> {
        if !Self::kept(&r) {
            return self.judge(&r, None);
        }
        let out = self.judge(&r, Some(&r));
        self.remember(r);
        out
    }

    /// Whether a record joins the ring of recent records that gives alerts their context.
    /// Plaintext stays out of certificates' context: it is bulky and may hold what redaction
    /// missed; the llm_* summaries carry what a reader needs.
    fn kept(r: &Record) -> bool {
        !matches!(
            r.event,
            Event::Other | Event::Sched(_) | Event::Lost(_) | Event::Tls(_)
        )
    }

    fn remember(&mut self, r: Arc<Record>) {
        self.ring.push_back(r);
        if self.ring.len() > RING {
            self.ring.pop_front();
        }
    }

    /// `shared`: the record as the ring keeps it (kept records), so that the detectors that
    /// hold on to a record (the written files, the egress burst's trigger) share that one copy
    /// instead of cloning it again (a clone is an allocation per string of the record).
    fn judge(&mut self, r: &Record, shared: Option<&Arc<Record>>) -> Vec<Output> {
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
        let tx_before = self.trusted_tx(r.pid).is_some();
        match &r.event {
            Event::Exec(e) => self.on_exec(r, e, learning, &mut alerts),
            Event::Fork(f) => {
                let p = self.ensure_proc(r);
                let (label, from, tx) = (p.label.clone(), p.from.clone(), p.tx);
                self.proc_seq += 1;
                self.procs.insert(
                    f.child_pid,
                    Proc {
                        ppid: r.pid,
                        label,
                        from,
                        exited: None,
                        seq: self.proc_seq,
                        argv: None,
                        tx,
                    },
                );
                self.prune_procs();
            }
            Event::Exit(_) => {
                if let Some(p) = self.procs.get_mut(&r.pid) {
                    p.exited = Some(r.ts_ns);
                }
            }
            Event::FileOpen(f) => self.on_open(r, shared, f, learning, &mut alerts),
            // Reads of files the session recorded whole: judged again as this process's reads
            // (the kernel folds only what it does not watch; the rules here are the authority).
            Event::FileOpenSeen(s) => self.on_folded(r, s, learning, &mut alerts),
            Event::PathChange(c) => self.on_path_change(r, c, learning, &mut alerts),
            Event::Privileged(p) => self.on_privileged(r, p, &mut alerts),
            Event::Connect(c) if c.dest.family == Family::Unix => {
                self.on_unix_connect(r, c, learning, &mut alerts);
                self.on_session_server(r, c, learning, &mut alerts);
                self.on_service_socket(r, c, learning, &mut alerts);
            }
            // By the socket's family (its protocol's name), not the address passed: an IP socket
            // connected to AF_UNSPEC is a disconnect (getaddrinfo sorting its answers does it).
            Event::Connect(c)
                if c.protocol.starts_with("vsock") || c.protocol.starts_with("family:") =>
            {
                self.on_other_family(r, c, learning, &mut alerts);
            }
            Event::Connect(c) => {
                // A loopback TCP listener outside the tree (proctor names its holder).
                self.on_session_server(r, c, learning, &mut alerts);
                let e = net::Egress {
                    dest: &c.dest,
                    protocol: &c.protocol,
                    count: c.count(),
                    last_ts: c.last_ts_ns,
                };
                self.on_egress(r, shared, e, learning, &mut alerts)
            }
            Event::Inbound(i) => self.on_inbound(r, i, learning, &mut alerts),
            Event::Send(s) if s.protocol.starts_with("packet") => {
                self.on_packet_socket(r, s, &mut alerts)
            }
            Event::Send(s) => {
                let e = net::Egress {
                    dest: &s.dest,
                    protocol: &s.protocol,
                    count: 1,
                    last_ts: 0,
                };
                self.on_egress(r, shared, e, learning, &mut alerts)
            }
            Event::Dns(d) => {
                self.names.query(d, r.ts_ns);
                self.on_dns(r, d, learning, &mut alerts)
            }
            Event::DnsAnswer(d) => self.names.answer(d, r.ts_ns),
            Event::Ptrace(p) => self.on_ptrace(r, p, learning, &mut alerts),
            Event::Sched(s) => self.on_sched(r, s, &mut alerts),
            Event::TlsSni(s) if !learning => self.on_sni(r, s, &mut alerts),
            Event::TlsSni(_) => {}
            Event::LlmRequest(l) => self.on_llm_request(r, l),
            Event::LlmResponse(l) => self.on_llm_response(r, l, &mut alerts),
            Event::Lost(l) => self.on_lost(r, l, &mut alerts),
            Event::IoUringSetup(u) => self.on_uring_setup(r, u, learning, &mut alerts),
            Event::Other | Event::Tls(_) | Event::TlsBlind(_) => {}
        }
        // A trusted package transaction's work (and a record that left it trusted) is the
        // distribution's code: see `packages`.
        if tx_before && self.trusted_tx(r.pid).is_some() {
            alerts.retain(|(k, a)| !packages::package_work(k, a));
            self.evidence_out.retain(|a| !packages::package_work("", a));
        }
        for (key, a) in alerts {
            if let Some(a) = self.raise(key, a) {
                self.emit(a, &mut out);
            }
        }
        for mut a in std::mem::take(&mut self.evidence_out) {
            a.severity = alert_severity(&a).into();
            let chain = self.chain_root(a.pid);
            self.correlator.evidence(chain, &a);
            out.push(Output::Evidence(a));
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
        self.end_scans(u64::MAX, &mut out);
        self.flush_cool(u64::MAX, &mut out);
        self.correlator.close_all();
        self.closed_incidents(&mut out);
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
        self.end_scans(now, out);
        self.flush_cool(now, out);
        self.correlator.close_idle(now, None);
        self.closed_incidents(out);
    }

    fn end_scans(&mut self, now: u64, out: &mut Vec<Output>) {
        if self.scans.is_empty() && self.pending_sni.is_empty() && self.held_intent.is_empty() {
            return;
        }
        let mut ended = Vec::new();
        self.expire_sni(now, &mut ended);
        self.expire_intent(now, &mut ended);
        self.close_scans(now, &mut ended);
        for (key, a) in ended {
            if let Some(a) = self.raise(key, a) {
                self.emit(a, out);
            }
        }
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
        Output::BaselineEstablished(self.base.summary())
    }

    /// Cooldown aggregation (see [`Cooldown`]).
    fn raise(&mut self, key: String, a: Alert) -> Option<Alert> {
        self.cool.offer(key, a)
    }

    fn flush_cool(&mut self, now: u64, out: &mut Vec<Output>) {
        for a in self.cool.due(now) {
            self.emit(a, out);
        }
    }

    /// The label of the record's process for an alert's text ("?" before its exec is known).
    /// "pid N (label)", as alerts name the process that acted.
    fn who(&mut self, r: &Record) -> String {
        format!("pid {} ({})", r.pid, self.label_of(r))
    }

    fn label_of(&mut self, r: &Record) -> Arc<str> {
        self.ensure_proc(r)
            .label
            .clone()
            .unwrap_or_else(|| "?".into())
    }

    fn ensure_proc(&mut self, r: &Record) -> &Proc {
        if !self.procs.contains_key(&r.pid) {
            self.proc_seq += 1;
            let p = Proc {
                ppid: r.ppid,
                label: None,
                from: None,
                exited: None,
                seq: self.proc_seq,
                argv: None,
                tx: 0,
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
            .filter(|(_, p)| p.exited.is_some())
            .map(|(pid, p)| (p.seq, *pid))
            .collect();
        dead.sort_unstable();
        for (_, pid) in dead.iter().take(self.procs.len() - MAX_PROCS / 2) {
            self.procs.remove(pid);
        }
    }

    /// An alert goes out with its id, severity and incident, followed by the incident.
    fn emit(&mut self, mut a: Alert, out: &mut Vec<Output>) {
        self.alert_seq += 1;
        a.id = format!("a-{:x}-{}", a.ts_ns, self.alert_seq);
        a.severity = alert_severity(&a).into();
        if a.rule_id.is_empty() {
            a.rule_id = format!("{}.{}", a.channel, a.kind);
        }
        a.time = rfc3339(a.ts_ns);
        let chain = self.chain_root(a.pid);
        let argv = self
            .procs
            .get(&chain)
            .and_then(|p| {
                p.argv
                    .clone()
                    .or_else(|| p.label.as_deref().map(str::to_owned))
            })
            .unwrap_or_default();
        let inc = self.correlator.alert(&mut a, chain, (chain, argv));
        out.push(Output::Alert(a));
        out.push(Output::Incident(inc));
        self.closed_incidents(out);
    }

    fn closed_incidents(&mut self, out: &mut Vec<Output>) {
        out.extend(
            self.correlator
                .take_closed()
                .into_iter()
                .map(Output::Incident),
        );
    }

    /// The tool call `pid` belongs to: on its path from the agent's root (the topmost process
    /// known), the first process that is a shell, an interpreter or a tool-family member (an
    /// agent may run its own helpers first: Codex's launcher runs the native codex, which runs
    /// bash per tool call), else the root's child on that path, else the root.
    pub(super) fn chain_root(&self, pid: u32) -> u32 {
        let (tool, top) = self.chain(pid);
        tool.unwrap_or(top)
    }

    /// Is `pid` inside a tool call: a shell, an interpreter or a tool-family member on its path
    /// below the agent's root, or one of their descendants? (The agent's own processes, its
    /// root and the helpers it starts itself, are not.)
    pub(super) fn in_tool_call(&self, pid: u32) -> bool {
        self.chain(pid).0.is_some()
    }

    /// `chain_root`'s parts: the first shell, interpreter or tool on `pid`'s path below the
    /// root, and the root's child on that path (or the root).
    fn chain(&self, pid: u32) -> (Option<u32>, u32) {
        let mut path = vec![pid];
        let mut cur = pid;
        for _ in 0..128 {
            match self.procs.get(&cur) {
                Some(p) if p.ppid != cur && self.procs.contains_key(&p.ppid) => {
                    cur = p.ppid;
                    path.push(cur);
                }
                _ => break,
            }
        }
        // path: pid ... root; below the root, from the top down. A process that runs the
        // root's binary on the root's script, or on another script of the installed package the
        // root's script belongs to, is the agent itself, not a tool: Gemini CLI and OpenClaw
        // start themselves again, and OpenClaw runs each command through node supervisors of
        // its package (`node_modules/openclaw/dist/process/supervisor/`).
        let below_root = &path[..path.len() - 1];
        let root = self.program_of(*path.last().unwrap_or(&pid));
        let tool = below_root.iter().rev().find(|p| {
            if let (Some((label, own)), Some((l, script))) = (root, self.program_of(**p)) {
                if l == label
                    && (script == own || package_of(own).is_some_and(|d| script.starts_with(d)))
                {
                    return false;
                }
            }
            self.procs
                .get(p)
                .and_then(|x| x.label.as_deref())
                .is_some_and(|l| {
                    self.node(l).starts_with('@') || self.interpreter_name(l.as_bytes())
                })
        });
        (tool.copied(), below_root.last().copied().unwrap_or(pid))
    }

    /// A process's binary (label) and script: the first argument of its argv that is no
    /// option.
    fn program_of(&self, pid: u32) -> Option<(&str, &str)> {
        let p = self.procs.get(&pid)?;
        let script = p
            .argv
            .as_deref()?
            .split_whitespace()
            .skip(1)
            .find(|w| !w.starts_with('-'))?;
        Some((p.label.as_deref()?, script))
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
                out.push(Record::clone(r));
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
        Alert::new(
            r.agent_id.clone(),
            r.ts_ns,
            channel,
            kind,
            r.pid,
            r.exec_id.clone(),
            summary,
        )
        .with_divergence(divergence)
        .with_records(trigger, self.trace_for(r.pid))
    }

    /// The files a sensitive-path rule names, by identity (what the live run found on disk).
    pub fn add_sensitive_files(&mut self, files: impl IntoIterator<Item = ((u64, u64), Vec<u8>)>) {
        self.sensitive_ids
            .extend(files.into_iter().filter(|((_, ino), _)| *ino != 0));
        // A file judged plain may be one of these.
        self.plain_reads.clear();
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
}

#[cfg(test)]
mod package_tests {
    use super::package_of;

    #[test]
    fn a_scripts_package_is_its_directory_under_the_last_node_modules() {
        let oc = "/usr/lib/node_modules/openclaw/dist/process/relay.js";
        assert_eq!(package_of(oc), Some("/usr/lib/node_modules/openclaw/"));
        let g = "/x/node_modules/@google/gemini-cli/bundle/gemini.js";
        assert_eq!(package_of(g), Some("/x/node_modules/@google/gemini-cli/"));
        let nested = "/a/node_modules/b/node_modules/c/index.js";
        assert_eq!(
            package_of(nested),
            Some("/a/node_modules/b/node_modules/c/")
        );
        // Not an installed package: a home-grown agent's scripts are tool calls when it runs
        // them, and a bare package directory names no script.
        assert_eq!(package_of("/home/ann/agent/main.js"), None);
        assert_eq!(package_of("/x/node_modules/@scope"), None);
        assert_eq!(package_of("/x/node_modules/pkg"), None);
    }
}

#[cfg(test)]
mod name_set_tests {
    use super::*;

    #[test]
    fn a_name_set_matches_what_its_globs_match_one_by_one() {
        let p = Policy::builtin();
        let risky: Vec<&[u8]> = p.risky.iter().map(|r| r.name.as_slice()).collect();
        let interp: Vec<&[u8]> = p.interpreter_names.iter().map(Vec::as_slice).collect();
        let mut names: Vec<Vec<u8>> = ["/usr/bin", "/bin", "/usr/sbin"]
            .iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .map(|e| e.file_name().into_encoded_bytes())
            .collect();
        names.extend(["python3.11", "php8", "lua5.4", "tclsh8.6", "nc", "[", ""].map(|n| n.into()));
        for list in [&risky, &interp] {
            let set = NameSet::new(list.iter().copied());
            assert!(!set.exact.is_empty());
            for n in &names {
                let want = list.iter().any(|g| glob_match(g, n));
                assert_eq!(set.matches(n), want, "{}", String::from_utf8_lossy(n));
            }
        }
        assert!(!NameSet::new(interp.iter().copied()).globs.is_empty());
    }
}
