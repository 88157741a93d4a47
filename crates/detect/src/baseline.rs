//! The learned behavioural fingerprint of an agent ([`Baseline`]), saved as `DIR/baseline.json`
//! and reusable as a profile, and the one-line summary printed when it is established.

use proctor_model::SCHED_BUCKETS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Format version of `baseline.json`.
pub const BASELINE_VERSION: u32 = 1;

/// L1: the baseline scheduling distributions and how far its own windows strayed from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedProfile {
    /// Summed on-CPU histogram of the baseline windows ([`SCHED_BUCKETS`] log2-ns buckets).
    pub run_hist: Vec<u64>,
    /// Summed off-CPU histogram.
    pub off_hist: Vec<u64>,
    /// Windows used.
    pub windows: u64,
    /// Mean context switches per second of those windows.
    pub switches_per_s: f64,
    /// Mean and standard deviation of each baseline window's divergence from the sums.
    pub jsd_mean: f64,
    pub jsd_sd: f64,
}

/// L4: connects+sends per second during the baseline (idle seconds count as 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateProfile {
    pub seconds: u64,
    pub mean: f64,
    pub sd: f64,
    pub max: u64,
}

/// What an agent did while it was learned. Sets are sorted, so the JSON is stable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub version: u32,
    pub agent_id: String,
    /// Timestamp of the first record learned and the length of the window.
    pub started_ns: u64,
    pub duration_ns: u64,
    /// Observation records learned.
    pub records: u64,
    /// L1; absent when the window held no usable `sched` summary.
    pub sched: Option<SchedProfile>,
    /// L2: canonical names of the interpreters the agent spawned (e.g. "bash", "python").
    pub interpreters: BTreeSet<String>,
    /// Basenames of every binary executed.
    pub binaries: BTreeSet<String>,
    /// RISKY_BINARY rules (their policy text) that matched.
    pub risky: BTreeSet<String>,
    /// L3 edge kinds, e.g. "spawn python3.11 -> git", "write python3.11 -> /tmp",
    /// "connect python3.11 -> tcp/loopback".
    pub edges: BTreeSet<String>,
    /// L3 write-then-exec cycles, as "writer -> area -> executor".
    pub cycles: BTreeSet<String>,
    /// L4 destinations as `addr:port` (`[v6]:port` for IPv6).
    pub destinations: BTreeSet<String>,
    pub egress: RateProfile,
    /// DNS: domains (last two labels) queried and resolvers used.
    pub dns_domains: BTreeSet<String>,
    pub dns_servers: BTreeSet<String>,
    /// Sensitive and persistence paths touched (HOME written as `~`).
    pub sensitive: BTreeSet<String>,
    pub persistence: BTreeSet<String>,
    /// L5: ptrace attach/seize requests seen (they alert anyway after the window).
    pub ptrace: u64,
    /// L3: which (generalised) parents spawned which interpreter family, as "parent -> family".
    #[serde(default)]
    pub interp_parents: BTreeSet<String>,
    /// L4: loopback destinations on ephemeral ports, per process: "PROCESS@ADDR:PORT"; two
    /// ports of one process and address make every ephemeral port there known.
    #[serde(default)]
    pub ephemeral: BTreeSet<String>,
    /// Host names the agent is known to talk to (built-in profiles: its vendor's API).
    #[serde(default)]
    pub hosts: BTreeSet<String>,
    /// The agent's own shell scripts (built-in profiles): `-c` scripts it runs for itself, not
    /// for a tool call, which the intent check does not judge. A shape is a glob (`*`, `?`,
    /// `[...]`) over the whole script.
    #[serde(default)]
    pub own_scripts: BTreeSet<String>,
    /// Binaries (process labels, or globs over them) that create io_uring instances of their
    /// own: Node.js 24's libuv makes one per event loop, for its `epoll_ctl` batches. Their
    /// rings raise no `IO_URING_SETUP` once learned (the window itself still alerts: a ring is
    /// judged from the first record, as a credential read is).
    #[serde(default)]
    pub io_uring: BTreeSet<String>,
    /// Session servers outside the tree (`[ptrace] session_servers`) the agent reached in its
    /// window, by executable: `git push` over the user's ssh-agent; and the message buses
    /// (`[ptrace] service_sockets`) it reached, as `bus PATH`. Judged from the first record all
    /// the same (L5 `SESSION_HIJACK`), then quiet once learned.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub session_servers: BTreeSet<String>,
    /// Listeners of the tree a host other than this one connected to in the window, as
    /// `LABEL:PORT` (`python3:8000`): judged from the first record all the same (L4
    /// `INBOUND_CONNECTION`), then quiet once learned.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub inbound: BTreeSet<String>,
    /// Credential files the agent itself reads (built-in profiles: its own login, such as
    /// `~/.codex/auth.json`), globs over the path as alerts name it (`~/` for its home). A
    /// read by the agent's own processes raises no `SENSITIVE_FILE` and is not learned; a read
    /// inside a tool call, or a write, is judged as any other.
    #[serde(default)]
    pub own_files: BTreeSet<String>,
    /// Files the agent writes for its tool calls' shells to source (built-in profiles: Claude
    /// Code's and Codex's shell snapshots), globs over the path as alerts name it: sourcing
    /// one is no write-then-exec cycle.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub own_sourced: BTreeSet<String>,
}

/// A profile that could not be loaded; names the file and, for JSON, line and column.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot read profile {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write profile {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: not a proctor profile: {message}")]
    Json {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl Baseline {
    pub fn empty(agent_id: &str, started_ns: u64) -> Baseline {
        Baseline {
            version: BASELINE_VERSION,
            agent_id: agent_id.to_string(),
            started_ns,
            duration_ns: 0,
            records: 0,
            sched: None,
            interpreters: BTreeSet::new(),
            binaries: BTreeSet::new(),
            risky: BTreeSet::new(),
            edges: BTreeSet::new(),
            cycles: BTreeSet::new(),
            destinations: BTreeSet::new(),
            egress: RateProfile::default(),
            dns_domains: BTreeSet::new(),
            dns_servers: BTreeSet::new(),
            sensitive: BTreeSet::new(),
            persistence: BTreeSet::new(),
            ptrace: 0,
            interp_parents: BTreeSet::new(),
            ephemeral: BTreeSet::new(),
            hosts: BTreeSet::new(),
            own_scripts: BTreeSet::new(),
            io_uring: BTreeSet::new(),
            session_servers: BTreeSet::new(),
            inbound: BTreeSet::new(),
            own_files: BTreeSet::new(),
            own_sourced: BTreeSet::new(),
        }
    }

    /// Fold another profile of the same agent into this one, so that profiles accumulate over
    /// sessions: every set is the union; L1 sums the histograms and keeps the wider of the two
    /// spreads; the egress rate keeps the higher mean, spread and maximum (a merged profile
    /// must not make a session that was normal alone look abnormal).
    pub fn merge(&mut self, other: &Baseline) {
        if self.agent_id.is_empty() {
            self.agent_id = other.agent_id.clone();
        }
        if self.started_ns == 0 || (other.started_ns != 0 && other.started_ns < self.started_ns) {
            self.started_ns = other.started_ns;
        }
        self.duration_ns = self.duration_ns.saturating_add(other.duration_ns);
        self.records = self.records.saturating_add(other.records);
        self.sched = match (self.sched.take(), &other.sched) {
            (None, o) => o.clone(),
            (Some(s), None) => Some(s),
            (Some(a), Some(b)) => {
                let w = (a.windows + b.windows).max(1) as f64;
                Some(SchedProfile {
                    run_hist: a
                        .run_hist
                        .iter()
                        .zip(&b.run_hist)
                        .map(|(x, y)| x + y)
                        .collect(),
                    off_hist: a
                        .off_hist
                        .iter()
                        .zip(&b.off_hist)
                        .map(|(x, y)| x + y)
                        .collect(),
                    windows: a.windows + b.windows,
                    switches_per_s: (a.switches_per_s * a.windows as f64
                        + b.switches_per_s * b.windows as f64)
                        / w,
                    jsd_mean: a.jsd_mean.max(b.jsd_mean),
                    jsd_sd: a.jsd_sd.max(b.jsd_sd),
                })
            }
        };
        for (mine, theirs) in [
            (&mut self.interpreters, &other.interpreters),
            (&mut self.binaries, &other.binaries),
            (&mut self.risky, &other.risky),
            (&mut self.edges, &other.edges),
            (&mut self.cycles, &other.cycles),
            (&mut self.destinations, &other.destinations),
            (&mut self.dns_domains, &other.dns_domains),
            (&mut self.dns_servers, &other.dns_servers),
            (&mut self.sensitive, &other.sensitive),
            (&mut self.persistence, &other.persistence),
            (&mut self.interp_parents, &other.interp_parents),
            (&mut self.ephemeral, &other.ephemeral),
            (&mut self.hosts, &other.hosts),
            (&mut self.own_scripts, &other.own_scripts),
            (&mut self.io_uring, &other.io_uring),
            (&mut self.session_servers, &other.session_servers),
            (&mut self.inbound, &other.inbound),
            (&mut self.own_files, &other.own_files),
            (&mut self.own_sourced, &other.own_sourced),
        ] {
            mine.extend(theirs.iter().cloned());
        }
        let (a, b) = (&self.egress, &other.egress);
        self.egress = RateProfile {
            seconds: a.seconds + b.seconds,
            mean: a.mean.max(b.mean),
            sd: a.sd.max(b.sd),
            max: a.max.max(b.max),
        };
        self.ptrace = self.ptrace.saturating_add(other.ptrace);
    }

    /// `calibrate` into a profile file that exists already: that profile with this session
    /// merged in; otherwise this session alone.
    pub fn merged_into_file(session: Baseline, path: &Path) -> Result<Baseline, BaselineError> {
        if !path.exists() {
            return Ok(session);
        }
        let mut b = Baseline::load(path)?;
        b.merge(&session);
        Ok(b)
    }

    /// A profile named on the command line: `builtin:NAME` (see [`BUILTIN_PROFILES`]) or a file.
    pub fn load_spec(spec: &str) -> Result<Baseline, BaselineError> {
        match spec.strip_prefix("builtin:") {
            Some(name) => Baseline::builtin(name),
            None => Baseline::load(Path::new(spec)),
        }
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Result<Baseline, BaselineError> {
        let (_, text) = BUILTIN_PROFILES
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| BaselineError::Invalid {
                origin: format!("builtin:{name}"),
                message: format!(
                    "no such built-in profile (there are: {})",
                    BUILTIN_PROFILES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        Baseline::from_seed_toml(text, &format!("builtin:{name}"))
    }

    /// A profile written by hand as TOML (the built-in ones are): the sets of a baseline, with
    /// nothing learned about timing (L1 stays off; the egress rate uses the policy's floor).
    pub fn from_seed_toml(text: &str, origin: &str) -> Result<Baseline, BaselineError> {
        let seed: Seed = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |s| crate::policy::line_col(text, s.start));
            BaselineError::Json {
                origin: origin.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        let mut b = Baseline::empty(&seed.agent, 0);
        b.interpreters = seed.interpreters;
        b.binaries = seed.binaries;
        b.edges = seed.edges;
        b.interp_parents = seed.interp_parents;
        b.destinations = seed.destinations;
        b.ephemeral = seed.ephemeral;
        b.dns_domains = seed.dns_domains;
        b.hosts = seed.hosts;
        b.own_scripts = seed.own_scripts;
        b.io_uring = seed.io_uring;
        b.own_files = seed.own_files;
        b.own_sourced = seed.own_sourced;
        Ok(b)
    }

    /// The exact bytes of `baseline.json`: pretty JSON and a final newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a baseline always serialises");
        v.push(b'\n');
        v
    }

    /// SHA-256 (lowercase hex) of [`Baseline::to_json_bytes`], i.e. of the file [`Baseline::save`]
    /// writes.
    pub fn sha256_hex(&self) -> String {
        sha256_hex(&self.to_json_bytes())
    }

    /// Write the profile to `path`; returns the SHA-256 of the bytes written.
    pub fn save(&self, path: &Path) -> Result<String, BaselineError> {
        let bytes = self.to_json_bytes();
        // Owner-only, as every output file: the profile lists the agent's paths and peers.
        let write = |bytes: &[u8]| {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)?
                .write_all(bytes)
        };
        write(&bytes).map_err(|source| BaselineError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(sha256_hex(&bytes))
    }

    /// Read and validate a profile file.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Baseline::from_json_str(&text, &path.display().to_string())
    }

    /// Parse and validate a profile; `origin` names it in errors.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Baseline, BaselineError> {
        let b: Baseline = serde_json::from_str(text).map_err(|e| BaselineError::Json {
            origin: origin.to_string(),
            line: e.line(),
            // serde_json reports column 0 at the end of input; columns here start at 1.
            column: e.column().max(1),
            message: strip_position(&e.to_string()),
        })?;
        let invalid = |message: String| BaselineError::Invalid {
            origin: origin.to_string(),
            message,
        };
        if b.version != BASELINE_VERSION {
            return Err(invalid(format!(
                "profile version {} is not supported (this proctor reads version {BASELINE_VERSION})",
                b.version
            )));
        }
        if let Some(s) = &b.sched {
            for (name, h) in [
                ("sched.run_hist", &s.run_hist),
                ("sched.off_hist", &s.off_hist),
            ] {
                if h.len() != SCHED_BUCKETS {
                    return Err(invalid(format!(
                        "{name} has {} buckets, expected {SCHED_BUCKETS}",
                        h.len()
                    )));
                }
            }
            for (name, x) in [("sched.jsd_mean", s.jsd_mean), ("sched.jsd_sd", s.jsd_sd)] {
                if !x.is_finite() || !(0.0..=1.0).contains(&x) {
                    return Err(invalid(format!("{name} must be between 0 and 1, not {x}")));
                }
            }
        }
        let rate = b.sched.as_ref().map_or(0.0, |s| s.switches_per_s);
        for (name, x) in [
            ("egress.mean", b.egress.mean),
            ("egress.sd", b.egress.sd),
            ("sched.switches_per_s", rate),
        ] {
            if !x.is_finite() || x < 0.0 {
                return Err(invalid(format!(
                    "{name} must be a non-negative number, not {x}"
                )));
            }
        }
        Ok(b)
    }

    /// Counts per channel, for the "baseline established" line.
    pub fn summary(&self) -> BaselineSummary {
        BaselineSummary {
            agent_id: self.agent_id.clone(),
            duration_ns: self.duration_ns,
            records: self.records,
            sched_windows: self.sched.as_ref().map_or(0, |s| s.windows),
            interpreters: self.interpreters.iter().cloned().collect(),
            binaries: self.binaries.len(),
            edges: self.edges.len(),
            destinations: self.destinations.len(),
            egress_mean_per_s: self.egress.mean,
            egress_max_per_s: self.egress.max,
            dns_domains: self.dns_domains.len(),
            sensitive: self.sensitive.len() + self.persistence.len(),
            ptrace: self.ptrace,
        }
    }
}

/// Built-in profiles, `--profile builtin:NAME`: (name, TOML text).
pub const BUILTIN_PROFILES: &[(&str, &str)] = &[
    ("claude-code", include_str!("../profiles/claude-code.toml")),
    ("codex", include_str!("../profiles/codex.toml")),
    ("gemini-cli", include_str!("../profiles/gemini-cli.toml")),
    ("node-agent", include_str!("../profiles/node-agent.toml")),
    ("openclaw", include_str!("../profiles/openclaw.toml")),
];

/// The built-in profile of the agent CLI a command runs, if it is one proctor knows: by the
/// names of the program (`claude`, `codex`, `gemini`, `openclaw`) and of the npm package it was
/// installed from, in any of `paths` (the command as given, the file it resolves to, and for
/// a runtime, a shell or python the script). `None` for anything else.
pub fn builtin_profile_for(paths: &[&[u8]]) -> Option<&'static str> {
    const BY_PACKAGE: [(&[u8], &str); 5] = [
        (b"/@anthropic-ai/claude-code/", "claude-code"),
        (b"/@openai/codex/", "codex"),
        (b"/@google/gemini-cli/", "gemini-cli"),
        (b"/openclaw/", "openclaw"),
        (b"/@mariozechner/pi-coding-agent/", "node-agent"),
    ];
    const BY_NAME: [(&[u8], &str); 6] = [
        (b"claude", "claude-code"),
        (b"claude.exe", "claude-code"),
        (b"codex", "codex"),
        (b"gemini", "gemini-cli"),
        (b"openclaw", "openclaw"),
        (b"openclaw.mjs", "openclaw"),
    ];
    paths.iter().find_map(|p| {
        let name = p.rsplit(|&c| c == b'/').next().unwrap_or(p);
        BY_NAME
            .iter()
            .find(|(n, _)| *n == name)
            .or_else(|| {
                BY_PACKAGE
                    .iter()
                    .find(|(dir, _)| p.windows(dir.len()).any(|w| w == *dir))
            })
            .map(|(_, profile)| *profile)
    })
}

/// The hand-written form of a profile (see `profiles/*.toml`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    agent: String,
    #[serde(default)]
    interpreters: BTreeSet<String>,
    #[serde(default)]
    binaries: BTreeSet<String>,
    #[serde(default)]
    edges: BTreeSet<String>,
    #[serde(default)]
    interp_parents: BTreeSet<String>,
    #[serde(default)]
    destinations: BTreeSet<String>,
    #[serde(default)]
    ephemeral: BTreeSet<String>,
    #[serde(default)]
    dns_domains: BTreeSet<String>,
    #[serde(default)]
    hosts: BTreeSet<String>,
    #[serde(default)]
    own_scripts: BTreeSet<String>,
    #[serde(default)]
    io_uring: BTreeSet<String>,
    #[serde(default)]
    own_files: BTreeSet<String>,
    #[serde(default)]
    own_sourced: BTreeSet<String>,
}

/// serde_json appends " at line L column C"; the position is reported in its own fields.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

pub(crate) use proctor_model::sha256_hex;

/// What was learned, per channel. Display is one line for humans.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineSummary {
    pub agent_id: String,
    pub duration_ns: u64,
    pub records: u64,
    /// L1 scheduler windows (0: L1 has nothing to compare with and stays silent).
    pub sched_windows: u64,
    /// L2 interpreters the agent spawned.
    pub interpreters: Vec<String>,
    pub binaries: usize,
    /// L3 edge kinds.
    pub edges: usize,
    /// L4 destinations and egress rate.
    pub destinations: usize,
    pub egress_mean_per_s: f64,
    pub egress_max_per_s: u64,
    pub dns_domains: usize,
    pub sensitive: usize,
    pub ptrace: u64,
}

impl fmt::Display for BaselineSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let interp = if self.interpreters.is_empty() {
            "none".to_string()
        } else {
            self.interpreters.join(",")
        };
        write!(
            f,
            "baseline established for {} after {:.1}s from {} records: L1 {} sched windows{}; \
             L2 interpreters {}; {} binaries; L3 {} edge kinds; L4 {} destinations, egress {:.1}/s \
             (max {}/s); DNS {} domains; {} sensitive/persistence paths; L5 {} ptrace",
            self.agent_id,
            self.duration_ns as f64 / 1e9,
            self.records,
            self.sched_windows,
            if self.sched_windows == 0 {
                " (L1 off)"
            } else {
                ""
            },
            interp,
            self.binaries,
            self.edges,
            self.destinations,
            self.egress_mean_per_s,
            self.egress_max_per_s,
            self.dns_domains,
            self.sensitive,
            self.ptrace,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_cli_is_known_by_its_name_or_its_npm_package() {
        let of = |paths: &[&str]| {
            builtin_profile_for(&paths.iter().map(|p| p.as_bytes()).collect::<Vec<_>>())
        };
        assert_eq!(of(&["claude"]), Some("claude-code"));
        // The native installer's link names a version.
        assert_eq!(
            of(&[
                "/root/.local/bin/claude",
                "/root/.local/share/claude/versions/2.0.1"
            ]),
            Some("claude-code")
        );
        assert_eq!(
            of(&["codex", "/x/node_modules/@openai/codex/bin/codex.js"]),
            Some("codex")
        );
        assert_eq!(
            of(&[
                "gemini",
                "/x/node_modules/@google/gemini-cli/bundle/gemini.js"
            ]),
            Some("gemini-cli")
        );
        assert_eq!(
            of(&[
                "node",
                "/usr/bin/node",
                "/x/node_modules/openclaw/openclaw.mjs"
            ]),
            Some("openclaw")
        );
        assert_eq!(
            of(&[
                "pi",
                "/x/node_modules/@mariozechner/pi-coding-agent/dist/cli.js"
            ]),
            Some("node-agent")
        );
        // Anything else learns its baseline.
        assert_eq!(of(&["python3", "/usr/bin/python3.11", "agent.py"]), None);
        assert_eq!(of(&["/opt/claudette/run"]), None);
        // Each name maps to a profile that exists.
        for p in [
            "claude-code",
            "codex",
            "gemini-cli",
            "openclaw",
            "node-agent",
        ] {
            assert!(BUILTIN_PROFILES.iter().any(|(n, _)| *n == p), "{p}");
        }
    }

    #[test]
    fn json_round_trips_and_hash_covers_the_written_bytes() {
        let mut b = Baseline::empty("agent", 5);
        b.interpreters.insert("bash".into());
        let text = String::from_utf8(b.to_json_bytes()).unwrap();
        let back = Baseline::from_json_str(&text, "p.json").unwrap();
        assert_eq!(back, b);
        assert_eq!(b.sha256_hex(), sha256_hex(text.as_bytes()));
        assert_eq!(b.sha256_hex().len(), 64);
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_profiles_get_precise_errors() {
        let e = Baseline::from_json_str("{\n  \"version\": 1,\n  \"agent_id\": 7\n}", "p.json")
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("p.json:3:"), "{msg}");
        assert!(msg.contains("invalid type"), "{msg}");

        let mut b = Baseline::empty("a", 0);
        b.version = 9;
        let e = Baseline::from_json_str(&String::from_utf8(b.to_json_bytes()).unwrap(), "p.json")
            .unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");

        let mut b = Baseline::empty("a", 0);
        b.sched = Some(SchedProfile {
            run_hist: vec![1; 3],
            off_hist: vec![1; SCHED_BUCKETS],
            windows: 1,
            switches_per_s: 10.0,
            jsd_mean: 0.0,
            jsd_sd: 0.0,
        });
        let e = Baseline::from_json_str(&String::from_utf8(b.to_json_bytes()).unwrap(), "p.json")
            .unwrap_err();
        assert!(e.to_string().contains("run_hist has 3 buckets"), "{e}");

        let e = Baseline::from_json_str("{\"version\":1,\"bogus\":1}", "p.json").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn calibrating_into_an_existing_profile_merges_the_session_into_it() {
        let dir = std::env::temp_dir().join(format!("proctor-merge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.json");
        let mut first = Baseline::empty("agent", 5);
        first.edges.insert("spawn bash -> @text".into());
        // No file yet: the session alone.
        let b = Baseline::merged_into_file(first.clone(), &path).unwrap();
        assert_eq!(b, first);
        b.save(&path).unwrap();
        let mut second = Baseline::empty("agent", 9);
        second.edges.insert("spawn bash -> @vcs".into());
        second.records = 3;
        let m = Baseline::merged_into_file(second, &path).unwrap();
        assert_eq!(m.edges.len(), 2);
        assert_eq!((m.started_ns, m.records), (5, 3));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn summary_is_one_line() {
        let s = Baseline::empty("agent", 0).summary().to_string();
        assert!(s.starts_with("baseline established for agent"), "{s}");
        assert!(!s.contains('\n'), "{s}");
        assert!(s.contains("L1 off"), "{s}");
    }
}
