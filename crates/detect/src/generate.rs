//! Proposing an enforce policy from what an agent did (`proctor policy generate`).
//!
//! A [`Generator`] reads recorded runs (their `audit.jsonl`) and profiles, and renders a commented
//! policy overlay (the format of [`crate::Policy::overlay`]) that a person reviews before using it:
//! the destinations reached (by TLS server name where one was seen, a loopback server on an
//! ephemeral port as the address alone), the DNS names queried, the areas written (generalised
//! like L3's graph nodes), the binaries run (a default-deny `allow_exec` list), and `[enforce]`
//! set to block what the runs did not need. Refusals recorded in the runs (`decision` and
//! `approval` records: shadow mode's `would_block`, enforce mode's `blocked`, denied asks) become
//! commented proposals next to the list they would go in, like audit2allow: a human uncomments
//! them or leaves them refused. Output is deterministic: sorted sets, no timestamps.
//!
//! [`diff`] compares the keys a generated policy sets between two effective policies.

use crate::baseline::Baseline;
use crate::engine::{area_of, lossy};
use crate::glob::BoundPattern;
use crate::policy::Policy;
use crate::replay::{AuditReader, Line};
use proctor_model::{Access, Bytes, Event, Family, SockAddr};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::BufRead;
use std::net::IpAddr;

/// Where the generator could not read its input.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot read {origin}: {source}")]
    Read {
        origin: String,
        source: std::io::Error,
    },
    #[error("{origin}: no records (not a proctor audit log)")]
    Empty { origin: String },
}

/// One input and what it contributed, for the header.
struct Source {
    origin: String,
    records: u64,
    malformed: u64,
}

/// A refusal recorded in a run, as a proposal: where it would go and how often it happened.
#[derive(Default)]
struct Proposal {
    count: u64,
    origins: BTreeSet<String>,
    /// blocked, would_block, deny, would_ask ...
    verdicts: BTreeSet<String>,
}

/// Collects what recorded runs and profiles show; [`Generator::render`] writes the overlay.
pub struct Generator {
    base: Policy,
    sources: Vec<Source>,
    /// Kernel-resolved paths of every binary run.
    execs: BTreeSet<String>,
    /// Generalised areas written, with the number of write opens.
    writes: BTreeMap<String, u64>,
    /// Generalised areas read.
    reads: BTreeMap<String, u64>,
    /// Areas of writes that are graph edges (not under `[files].noise`).
    edge_writes: BTreeSet<String>,
    /// Allow entries (`name:port`, `addr:port`, `addr`) with the observations behind them.
    dests: BTreeMap<String, BTreeSet<String>>,
    dns: BTreeSet<String>,
    /// Sensitive and persistence patterns (their text) the runs touched, with the paths.
    sensitive: BTreeMap<String, BTreeSet<String>>,
    persistence: BTreeMap<String, BTreeSet<String>>,
    ptrace: u64,
    /// Proposals by the list they belong to ("network.allow", "allow_exec", ...) and entry.
    proposals: BTreeMap<(&'static str, String), Proposal>,
    /// Paths of refused binaries, by identity, from the exec records of the runs.
    exec_paths: BTreeMap<(u64, u64), String>,
}

/// State of one audit log while it is read: the agent's HOME and CWD (from `sensor_start`) and
/// the server names seen per destination.
struct RunCtx {
    home: Option<Vec<u8>>,
    cwd: Option<Vec<u8>>,
    sensitive: Vec<BoundPattern>,
    persistence: Vec<BoundPattern>,
    noise: Vec<BoundPattern>,
    /// addr:port -> TLS server names.
    sni: BTreeMap<(IpAddr, u16), BTreeSet<String>>,
    /// inet destinations reached: (addr, port).
    reached: BTreeSet<(IpAddr, u16)>,
    /// Resolvers the runs' DNS queries went to (port 53 is always allowed).
    resolvers: BTreeSet<IpAddr>,
    /// Binaries run: (dev, ino) -> path.
    execs: BTreeMap<(u64, u64), String>,
    /// What a `decision` refused (or would have): never allowed without a person's word, even
    /// though a shadow run (or a tracepoint kill) leaves an exec or connect record of it too.
    refused_dests: BTreeSet<(IpAddr, u16)>,
    refused_execs: BTreeSet<(u64, u64)>,
}

fn inet(d: &SockAddr) -> Option<(IpAddr, u16)> {
    if !matches!(d.family, Family::Inet | Family::Inet6) {
        return None;
    }
    let ip: IpAddr = d.addr.as_deref()?.parse().ok()?;
    Some((crate::policy::canonical_ip(ip), d.port?))
}

/// An allow entry for an address and port (`[v6]:port` for IPv6).
fn addr_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// A TOML string literal (basic string, escaped).
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Generator {
    /// A generator whose proposals are judged against `base` (the built-in policy, or the
    /// current one): its patterns classify files, its lists say what needs no entry.
    pub fn new(base: Policy) -> Generator {
        Generator {
            base,
            sources: Vec::new(),
            execs: BTreeSet::new(),
            writes: BTreeMap::new(),
            reads: BTreeMap::new(),
            edge_writes: BTreeSet::new(),
            dests: BTreeMap::new(),
            dns: BTreeSet::new(),
            sensitive: BTreeMap::new(),
            persistence: BTreeMap::new(),
            ptrace: 0,
            proposals: BTreeMap::new(),
            exec_paths: BTreeMap::new(),
        }
    }

    /// Read one recorded run's audit log. Malformed lines are counted and named in the header.
    pub fn add_audit(&mut self, reader: impl BufRead, origin: &str) -> Result<(), GenerateError> {
        let mut cx = RunCtx {
            home: None,
            cwd: None,
            sensitive: Vec::new(),
            persistence: Vec::new(),
            noise: Vec::new(),
            sni: BTreeMap::new(),
            reached: BTreeSet::new(),
            resolvers: BTreeSet::new(),
            execs: BTreeMap::new(),
            refused_dests: BTreeSet::new(),
            refused_execs: BTreeSet::new(),
        };
        let mut src = Source {
            origin: origin.to_string(),
            records: 0,
            malformed: 0,
        };
        let mut opens = Vec::new();
        for item in AuditReader::new(reader) {
            let (_, line) = item.map_err(|source| GenerateError::Read {
                origin: origin.to_string(),
                source,
            })?;
            match line {
                Line::Blank => continue,
                Line::Malformed { .. } => src.malformed += 1,
                Line::Other { ty, value } => {
                    src.records += 1;
                    self.other(&mut cx, &ty, &value, origin);
                }
                Line::Record(r) => {
                    src.records += 1;
                    match &r.event {
                        Event::Exec(e) if !e.fileless => {
                            if let Some(p) = e.filename.as_str() {
                                cx.execs.insert((e.dev, e.ino), p.to_string());
                            }
                        }
                        // Judged once HOME and CWD are known (sensor_start comes first, but a
                        // log cut at its head must not misfile them).
                        Event::FileOpen(f) if f.error.is_none() && !f.path_truncated => {
                            opens.push(f.clone())
                        }
                        Event::FileOpenSeen(s) => opens.extend(s.opens()),
                        Event::Connect(c) => {
                            if let Some(d) = inet(&c.dest) {
                                cx.reached.insert(d);
                            }
                        }
                        Event::Send(s) => {
                            if let Some(d) = inet(&s.dest) {
                                cx.reached.insert(d);
                            }
                        }
                        Event::Dns(d) => {
                            if let Some((ip, _)) = inet(&d.server) {
                                cx.resolvers.insert(ip);
                            }
                            if let Some(q) = d.qname.as_str() {
                                self.dns
                                    .insert(q.trim_end_matches('.').to_ascii_lowercase());
                            }
                        }
                        Event::TlsSni(t) => {
                            if let (Some(d), Some(name)) = (inet(&t.dest), t.sni.as_str()) {
                                cx.sni
                                    .entry(d)
                                    .or_default()
                                    .insert(name.to_ascii_lowercase());
                            }
                        }
                        Event::Ptrace(p) if p.request != "traceme" => self.ptrace += 1,
                        _ => {}
                    }
                }
            }
        }
        if src.records == 0 {
            return Err(GenerateError::Empty {
                origin: origin.to_string(),
            });
        }
        for f in &opens {
            self.open(&cx, f);
        }
        for (id, path) in &cx.execs {
            if !cx.refused_execs.contains(id) {
                self.execs.insert(path.clone());
            }
        }
        // A refused exec is named by identity; the exec record of a would-be block (or of a
        // process killed at the tracepoint) names its path.
        let ids: Vec<((u64, u64), String)> = cx
            .refused_execs
            .iter()
            .filter_map(|id| cx.execs.get(id).map(|p| (*id, p.clone())))
            .collect();
        for (id, path) in ids {
            self.exec_paths.insert(id, path);
        }
        self.destinations(&cx);
        self.sources.push(src);
        Ok(())
    }

    /// Records other than observations: the run's HOME and CWD, and its refusals.
    fn other(&mut self, cx: &mut RunCtx, ty: &str, v: &serde_json::Value, origin: &str) {
        let bytes = |k: &str| -> Option<Bytes> { serde_json::from_value(v.get(k)?.clone()).ok() };
        match ty {
            "sensor_start" => {
                cx.home = bytes("home").map(|b| b.0);
                cx.cwd = bytes("cwd").map(|b| b.0);
                let bind = |ps: &[crate::glob::PathPattern]| {
                    ps.iter()
                        .filter_map(|p| p.bind(cx.home.as_deref(), cx.cwd.as_deref()))
                        .collect()
                };
                cx.sensitive = bind(&self.base.files.sensitive);
                cx.persistence = bind(&self.base.files.persistence);
                cx.noise = bind(&self.base.files.noise);
            }
            "decision" => {
                let verdict = v["verdict"].as_str().unwrap_or("?").to_string();
                let dest = v
                    .get("dest")
                    .and_then(|d| serde_json::from_value::<SockAddr>(d.clone()).ok());
                let entry = match v["what"].as_str() {
                    Some("connect" | "sendmsg") => dest.as_ref().and_then(inet).map(|d| {
                        cx.refused_dests.insert(d);
                        ("network.allow", addr_port(d.0, d.1))
                    }),
                    Some("exec") => {
                        // The decision names the binary by identity; the run's exec record
                        // of it names the path, when there is one (see `exec_paths`).
                        let id = (
                            v["dev"].as_u64().unwrap_or(0),
                            v["ino"].as_u64().unwrap_or(0),
                        );
                        cx.refused_execs.insert(id);
                        let comm = bytes("comm").map(|c| lossy(&c.0)).unwrap_or_default();
                        Some(("allow_exec", format!("dev {} ino {} ({comm})", id.0, id.1)))
                    }
                    Some("open") => bytes("path").map(|p| ("files", lossy(&p.0))),
                    Some("ptrace") => Some(("ptrace", format!("target pid {}", v["target_pid"]))),
                    _ => None,
                };
                if let Some((list, e)) = entry {
                    self.propose(list, e, &verdict, origin);
                }
            }
            "approval" => {
                let verdict = v["verdict"].as_str().unwrap_or("?");
                if verdict == "allow" {
                    return;
                }
                let a = &v["action"];
                let entry = match a["kind"].as_str() {
                    Some("connect") => a["addr"]
                        .as_str()
                        .and_then(|s| s.parse::<IpAddr>().ok())
                        .zip(a["port"].as_u64().and_then(|p| u16::try_from(p).ok()))
                        .map(|(ip, port)| ("network.allow", addr_port(ip, port))),
                    Some("exec") => serde_json::from_value::<Bytes>(a["resolved"].clone())
                        .ok()
                        .map(|p| ("allow_exec", lossy(&p.0))),
                    _ => None,
                };
                if let Some((list, e)) = entry {
                    self.propose(list, e, &format!("ask {verdict}"), origin);
                }
            }
            _ => {}
        }
    }

    fn propose(&mut self, list: &'static str, entry: String, verdict: &str, origin: &str) {
        let p = self.proposals.entry((list, entry)).or_default();
        p.count += 1;
        p.origins.insert(origin.to_string());
        p.verdicts.insert(verdict.to_string());
    }

    fn open(&mut self, cx: &RunCtx, f: &proctor_model::FileOpen) {
        let path = f.path.as_bytes();
        let write = f.access != Access::Read || f.create || f.truncate;
        let area = area_of(path, cx.home.as_deref(), cx.cwd.as_deref());
        if write && !cx.noise.iter().any(|p| p.matches(path)) {
            self.edge_writes.insert(area.clone());
        }
        *if write {
            &mut self.writes
        } else {
            &mut self.reads
        }
        .entry(area)
        .or_default() += 1;
        let shown = self.shown_path(cx, path);
        if let Some(p) = cx.sensitive.iter().find(|p| p.matches(path)) {
            self.sensitive
                .entry(p.text.clone())
                .or_default()
                .insert(shown.clone());
        }
        if write {
            if let Some(p) = cx.persistence.iter().find(|p| p.matches(path)) {
                self.persistence
                    .entry(p.text.clone())
                    .or_default()
                    .insert(shown);
            }
        }
    }

    /// A path with the run's HOME and CWD written `~` and `$CWD`, so runs in other places agree.
    fn shown_path(&self, cx: &RunCtx, path: &[u8]) -> String {
        for (base, name) in [(&cx.cwd, "$CWD"), (&cx.home, "~")] {
            if let Some(b) = base {
                if let Some(rest) = path.strip_prefix(b.as_slice()) {
                    if rest.first() == Some(&b'/') {
                        return format!("{name}{}", lossy(rest));
                    }
                }
            }
        }
        lossy(path)
    }

    /// Destinations of one run as allow entries: a TLS server name with the port when the
    /// connection sent one; a loopback address alone when its port is ephemeral (a local server
    /// on a random port: the next run gets another); else the exact address and port.
    fn destinations(&mut self, cx: &RunCtx) {
        let eph = self.base.network.ephemeral_from;
        for &(ip, port) in &cx.reached {
            if cx.refused_dests.contains(&(ip, port)) {
                continue; // a proposal, not an entry
            }
            if port == 53 && cx.resolvers.contains(&ip) {
                continue; // the resolvers are always allowed
            }
            let seen = addr_port(ip, port);
            if let Some(names) = cx.sni.get(&(ip, port)) {
                for n in names {
                    self.dests
                        .entry(format!("{n}:{port}"))
                        .or_default()
                        .insert(format!("{seen} (TLS server name)"));
                }
            } else if ip.is_loopback() && port >= eph {
                self.dests
                    .entry(ip.to_string())
                    .or_default()
                    .insert(format!("port {port} (ephemeral: any port)"));
            } else {
                self.dests.entry(seen).or_default();
            }
        }
    }

    /// Add a profile: its host names (by their TLS port), its destinations and DNS domains.
    /// Its binaries are basenames; the caller resolves them ([`Generator::add_exec`]).
    pub fn add_profile(&mut self, b: &Baseline, origin: &str) {
        for h in &b.hosts {
            self.dests
                .entry(format!("{h}:443"))
                .or_default()
                .insert(format!("host of profile {origin}"));
        }
        let eph = self.base.network.ephemeral_from;
        for d in &b.destinations {
            let Some((addr, port)) = d.rsplit_once(':') else {
                continue;
            };
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            let (Ok(ip), Ok(port)) = (addr.parse::<IpAddr>(), port.parse::<u16>()) else {
                continue;
            };
            let ip = crate::policy::canonical_ip(ip);
            if ip.is_loopback() && port >= eph {
                self.dests
                    .entry(ip.to_string())
                    .or_default()
                    .insert(format!("port {port} (ephemeral: any port)"));
            } else if port != 53 {
                self.dests.entry(addr_port(ip, port)).or_default();
            }
        }
        self.dns.extend(b.dns_domains.iter().cloned());
        self.sources.push(Source {
            origin: format!("profile {origin}"),
            records: b.records,
            malformed: 0,
        });
    }

    /// A binary the agent runs (an absolute path), e.g. a profile's binary found on this host.
    pub fn add_exec(&mut self, path: &str) {
        self.execs.insert(path.to_string());
    }

    /// The commented overlay.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let w = &mut o;
        let _ = writeln!(
            w,
            "# proctor policy proposed by `proctor policy generate` from:"
        );
        for s in &self.sources {
            let _ = write!(w, "#   {} ({} records", s.origin, s.records);
            if s.malformed > 0 {
                let _ = write!(w, ", {} malformed line(s) skipped", s.malformed);
            }
            let _ = writeln!(w, ")");
        }
        let _ = writeln!(
            w,
            "# An overlay on the built-in policy: review every list, then `proctor policy check FILE`
# and `proctor policy show --effective FILE`. A list replaces the built-in one unless written
# `key = {{ extend = [...] }}`. Commented entries are refusals recorded in the runs (would_block,
# blocked, denied asks): uncomment one to allow it, or leave it refused.
version = 1
"
        );
        self.render_network(w);
        self.render_files(w);
        self.render_enforce(w);
        o
    }

    fn proposals_for(&self, list: &str, out: &mut String, indent: &str) {
        for ((l, e), p) in &self.proposals {
            if *l != list {
                continue;
            }
            let verdicts: Vec<&str> = p.verdicts.iter().map(String::as_str).collect();
            let origins: Vec<&str> = p.origins.iter().map(String::as_str).collect();
            // A refused exec is named by identity: its path when a run's exec record gave it,
            // else a person finds it.
            let shown = if list == "allow_exec" && !e.starts_with('/') {
                let id = e
                    .split(' ')
                    .filter_map(|t| t.parse::<u64>().ok())
                    .collect::<Vec<_>>();
                match id[..] {
                    [dev, ino, ..] if self.exec_paths.contains_key(&(dev, ino)) => {
                        format!("{}, {e}", quote(&self.exec_paths[&(dev, ino)]))
                    }
                    _ => format!("binary {e}, path unknown"),
                }
            } else {
                quote(e)
            };
            let _ = writeln!(
                out,
                "{indent}# {shown},  # proposed: {} x{} in {}",
                verdicts.join("/"),
                p.count,
                origins.join(", ")
            );
        }
    }

    fn render_network(&self, w: &mut String) {
        let _ = writeln!(
            w,
            "[network]
# Destinations the runs reached. A TLS server name (SNI) replaces the addresses it was sent to
# (proctor resolves allowed names at start and every 30 s); a loopback server on an ephemeral port
# is allowed on any port. The DNS resolvers are always allowed.
allow = ["
        );
        for (entry, why) in &self.dests {
            let mut line = format!("  {},", quote(entry));
            if !why.is_empty() {
                let why: Vec<&str> = why.iter().map(String::as_str).collect();
                line = format!("{line:<40} # {}", why.join(", "));
            }
            let _ = writeln!(w, "{}", line.trim_end());
        }
        let mut props = String::new();
        self.proposals_for("network.allow", &mut props, "  ");
        w.push_str(&props);
        let _ = writeln!(w, "]\n");
        let expected: Vec<&String> = self
            .dns
            .iter()
            .filter(|d| !self.base.dns.expected.contains(d))
            .collect();
        if !expected.is_empty() {
            let _ = writeln!(
                w,
                "[dns]\n# Names the runs queried.\nexpected = {{ extend = ["
            );
            for d in expected {
                let _ = writeln!(w, "  {},", quote(d));
            }
            let _ = writeln!(w, "] }}\n");
        }
    }

    fn render_files(&self, w: &mut String) {
        let areas = |m: &BTreeMap<String, u64>| -> String {
            m.iter()
                .map(|(a, n)| format!("{a} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let new_areas: Vec<&String> = self
            .edge_writes
            .iter()
            .filter(|a| !self.base.quiet_write_areas.contains(a))
            .collect();
        let _ = writeln!(
            w,
            "[graph]
# Areas the runs wrote to (write opens): {}
# Areas they read: {}",
            if self.writes.is_empty() {
                "none".into()
            } else {
                areas(&self.writes)
            },
            if self.reads.is_empty() {
                "none".into()
            } else {
                areas(&self.reads)
            }
        );
        if new_areas.is_empty() {
            let _ = writeln!(
                w,
                "# All of them are quiet write areas or [files].noise already.\n"
            );
        } else {
            let _ = writeln!(
                w,
                "# New write edges into these are evidence, not alerts:\nquiet_write_areas = {{ extend = ["
            );
            for a in new_areas {
                let _ = writeln!(w, "  {},", quote(a));
            }
            let _ = writeln!(w, "] }}\n");
        }
        let _ = writeln!(w, "[files]");
        if self.sensitive.is_empty() {
            let _ = writeln!(
                w,
                "# The runs opened no sensitive file: all of [files].sensitive stays refused (files = \"block\")."
            );
        } else {
            // Enforce would refuse what the benign runs needed: propose the list without those
            // patterns, loudly, for a person to decide.
            let _ = writeln!(
                w,
                "# REVIEW: the runs opened sensitive files; with files = \"block\" enforce would refuse them:"
            );
            for (pat, paths) in &self.sensitive {
                let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
                let _ = writeln!(w, "#   {pat}: {}", paths.join(", "));
            }
            let _ = writeln!(
                w,
                "# so this list is the built-in one without those patterns (put them back to refuse them)."
            );
            let _ = writeln!(w, "sensitive = [");
            for p in &self.base.files.sensitive {
                if !self.sensitive.contains_key(&p.text) {
                    let _ = writeln!(w, "  {},", quote(&p.text));
                }
            }
            let _ = writeln!(w, "]");
        }
        for (pat, paths) in &self.persistence {
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            let _ = writeln!(
                w,
                "# REVIEW: the runs wrote a persistence location ({pat}): {}",
                paths.join(", ")
            );
        }
        let mut props = String::new();
        self.proposals_for("files", &mut props, "");
        if !props.is_empty() {
            let _ = writeln!(
                w,
                "# Opens refused in the runs (remove the matching pattern above to allow one):"
            );
            w.push_str(&props.replace(",  # proposed", "  # proposed"));
        }
        let _ = writeln!(w);
    }

    fn render_enforce(&self, w: &mut String) {
        let _ = writeln!(
            w,
            "[enforce]
# Default-deny: destinations outside [network].allow are refused, ptrace by or onto the agent
# is refused, the sensitive files are kept out of reach, and every binary in
# [interpreters].dirs that is not in allow_exec is refused by device+inode.
network = \"block\""
        );
        if self.ptrace > 0 {
            let _ = writeln!(
                w,
                "# REVIEW: the runs made {} ptrace attach/seize request(s): blocking would break them.
ptrace = \"alert\"",
                self.ptrace
            );
        } else {
            let _ = writeln!(w, "ptrace = \"block\"");
        }
        let mut props = String::new();
        self.proposals_for("ptrace", &mut props, "");
        w.push_str(&props.replace(",  # proposed", "  # proposed"));
        let _ = writeln!(w, "files = \"block\"");
        let dirs = &self.base.interpreter_dirs;
        let in_dirs = |p: &str| {
            dirs.iter().any(|d| {
                p.strip_prefix(d.as_str())
                    .is_some_and(|r| r.starts_with('/'))
            })
        };
        let (listed, elsewhere): (Vec<&String>, Vec<&String>) =
            self.execs.iter().partition(|p| in_dirs(p));
        if !elsewhere.is_empty() {
            let _ = writeln!(
                w,
                "# Binaries the runs ran outside [interpreters].dirs (not covered by allow_exec):"
            );
            for p in elsewhere {
                let _ = writeln!(w, "#   {p}");
            }
        }
        let _ = writeln!(w, "allow_exec = [");
        for p in listed {
            let _ = writeln!(w, "  {},", quote(p));
        }
        let mut props = String::new();
        self.proposals_for("allow_exec", &mut props, "  ");
        w.push_str(&props);
        let _ = writeln!(w, "]");
    }
}

/// The values of the keys a generated policy sets, one string per entry, by key.
fn facets(p: &Policy) -> BTreeMap<&'static str, BTreeSet<String>> {
    let one = |b: bool| BTreeSet::from([if b { "block" } else { "alert" }.to_string()]);
    let texts = |v: &[crate::glob::PathPattern]| v.iter().map(|p| p.text.clone()).collect();
    let e = &p.enforce;
    BTreeMap::from([
        (
            "network.allow",
            p.network.allow.iter().map(|a| a.text.clone()).collect(),
        ),
        ("dns.expected", p.dns.expected.iter().cloned().collect()),
        (
            "graph.quiet_write_areas",
            p.quiet_write_areas.iter().cloned().collect(),
        ),
        ("files.sensitive", texts(&p.files.sensitive)),
        ("files.persistence", texts(&p.files.persistence)),
        (
            "enforce.network",
            BTreeSet::from([match (e.network, e.ask_network) {
                (_, true) => "ask",
                (true, _) => "block",
                _ => "alert",
            }
            .to_string()]),
        ),
        ("enforce.ptrace", one(e.ptrace)),
        ("enforce.files", one(e.files)),
        ("enforce.io_uring", one(e.io_uring)),
        ("enforce.exec", e.exec.iter().cloned().collect()),
        ("enforce.allow_exec", e.allow_exec.iter().cloned().collect()),
        ("enforce.ask_exec", e.ask_exec.iter().cloned().collect()),
    ])
}

/// What changes from `old` to `new` in the keys a generated policy sets: one line per entry,
/// `+ key: value` (added) or `- key: value` (removed), sorted by key then value.
pub fn diff(old: &Policy, new: &Policy) -> Vec<String> {
    let (a, b) = (facets(old), facets(new));
    let mut out = Vec::new();
    for (key, olds) in &a {
        let news = &b[key];
        for v in olds.difference(news) {
            out.push(format!("- {key}: {v}"));
        }
        for v in news.difference(olds) {
            out.push(format!("+ {key}: {v}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ty: &str, pid: u32, fields: serde_json::Value) -> String {
        let mut v = serde_json::json!({
            "type": ty, "ts_ns": 1, "agent_id": "a", "pid": pid, "ppid": 1,
            "comm": "agent", "exec_id": format!("{pid}-1-1"),
        });
        v.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        v.to_string()
    }

    /// A benign run of a toy agent in /home/u/proj, reaching an API over TLS and a local model
    /// server on an ephemeral `port`, and (in shadow mode) refused one connect and one exec.
    fn run(port: u16, tmp: &str) -> String {
        [
            rec(
                "sensor_start",
                10,
                serde_json::json!({"mode": "shadow", "command": "agent", "home": "/home/u", "cwd": "/home/u/proj",
                    "version": "0", "host": "h", "capture_tls": false, "tls_redaction": "on"}),
            ),
            rec(
                "exec",
                10,
                serde_json::json!({"filename": "/usr/bin/python3.11", "argv": ["python3"], "argv_truncated": false,
                    "dev": 1, "ino": 2}),
            ),
            rec(
                "exec",
                11,
                serde_json::json!({"filename": "/usr/bin/git", "argv": ["git"], "argv_truncated": false,
                    "dev": 1, "ino": 3}),
            ),
            rec(
                "exec",
                12,
                serde_json::json!({"filename": "/home/u/proj/build/tool", "argv": ["tool"],
                    "argv_truncated": false, "dev": 1, "ino": 4}),
            ),
            rec(
                "file_open",
                10,
                serde_json::json!({"path": "/home/u/proj/src/main.py", "flags": 0, "access": "read",
                    "create": false, "truncate": false, "dev": 1, "ino": 5}),
            ),
            rec(
                "file_open",
                10,
                serde_json::json!({"path": format!("/tmp/{tmp}/out"), "flags": 577, "access": "write",
                    "create": true, "truncate": true, "dev": 1, "ino": 6}),
            ),
            rec(
                "file_open",
                10,
                serde_json::json!({"path": "/var/lib/agent/state", "flags": 1, "access": "write",
                    "create": false, "truncate": false, "dev": 1, "ino": 7}),
            ),
            rec(
                "file_open",
                10,
                serde_json::json!({"path": "/home/u/.npmrc", "flags": 0, "access": "read",
                    "create": false, "truncate": false, "dev": 1, "ino": 8}),
            ),
            rec(
                "dns",
                10,
                serde_json::json!({"qname": "api.example.com", "qtype": 1, "qtype_name": "A",
                    "server": {"family": "inet", "addr": "10.0.0.53", "port": 53},
                    "protocol": "udp", "txid": 7}),
            ),
            rec(
                "send",
                10,
                serde_json::json!({"family": "inet", "addr": "10.0.0.53", "port": 53, "protocol": "udp",
                    "bytes": 40, "syscall": "sendto"}),
            ),
            rec(
                "connect",
                10,
                serde_json::json!({"family": "inet", "addr": "93.184.216.34", "port": 443, "protocol": "tcp"}),
            ),
            rec(
                "tls_sni",
                10,
                serde_json::json!({"family": "inet", "addr": "93.184.216.34", "port": 443,
                    "sni": "api.example.com"}),
            ),
            rec(
                "connect",
                10,
                serde_json::json!({"family": "inet", "addr": "127.0.0.1", "port": port, "protocol": "tcp"}),
            ),
            rec(
                "connect",
                10,
                serde_json::json!({"family": "inet", "addr": "10.1.2.3", "port": 8080, "protocol": "tcp"}),
            ),
            rec(
                "decision",
                10,
                serde_json::json!({"what": "connect", "verdict": "would_block", "layer": "cgroup_bpf",
                    "dest": {"family": "inet", "addr": "203.0.113.9", "port": 4444}}),
            ),
            // Shadow mode: the refused connect and exec happened, and left their records.
            rec(
                "connect",
                10,
                serde_json::json!({"family": "inet", "addr": "203.0.113.9", "port": 4444, "protocol": "tcp"}),
            ),
            rec(
                "exec",
                13,
                serde_json::json!({"filename": "/usr/bin/nc.openbsd", "argv": ["nc"], "argv_truncated": false,
                    "dev": 1, "ino": 99}),
            ),
            rec(
                "decision",
                13,
                serde_json::json!({"what": "exec", "verdict": "would_block", "layer": "tracepoint",
                    "dev": 1, "ino": 99}),
            ),
            "not json".into(),
        ]
        .join("\n")
    }

    fn generated() -> String {
        let mut g = Generator::new(Policy::builtin());
        g.add_audit(run(40001, "a1b2").as_bytes(), "run-a").unwrap();
        g.add_audit(run(45002, "zz99").as_bytes(), "run-b").unwrap();
        g.render()
    }

    #[test]
    fn two_runs_make_one_deterministic_overlay_that_parses() {
        let text = generated();
        if std::env::var_os("PRINT").is_some() {
            println!("{text}");
        }
        assert_eq!(text, generated(), "same input, same bytes");
        let p = Policy::from_toml_str(&text, "generated.toml")
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let allow: Vec<&str> = p.network.allow.iter().map(|a| a.text.as_str()).collect();
        assert_eq!(
            allow,
            ["10.1.2.3:8080", "127.0.0.1", "api.example.com:443"],
            "SNI names the API, the two ephemeral loopback ports become the address, the \
             resolver is not listed:\n{text}"
        );
        assert!(p.enforce.network && p.enforce.ptrace && p.enforce.files);
        assert_eq!(
            p.enforce.allow_exec,
            ["/usr/bin/git", "/usr/bin/python3.11"]
        );
        assert!(text.contains("#   /home/u/proj/build/tool"), "{text}");
        assert!(p.dns.expected.contains(&"api.example.com".to_string()));
        // Temp names generalise to /tmp (already quiet); /var/lib is new.
        assert!(p.quiet_write_areas.contains(&"/var/lib".to_string()));
        assert!(!text.contains("a1b2"), "no temp names: {text}");
        // The sensitive file the benign runs read is proposed out of the list, loudly.
        assert!(
            text.contains("REVIEW: the runs opened sensitive files"),
            "{text}"
        );
        assert!(text.contains("**/.npmrc: ~/.npmrc"), "{text}");
        assert!(!p.files.sensitive.iter().any(|s| s.text == "**/.npmrc"));
        assert!(p
            .files
            .sensitive
            .iter()
            .any(|s| s.text == "**/.aws/credentials"));
        assert!(
            text.contains("#   run-a (18 records, 1 malformed line(s) skipped)"),
            "{text}"
        );
    }

    #[test]
    fn recorded_refusals_become_commented_proposals() {
        let text = generated();
        let line = text
            .lines()
            .find(|l| l.contains("203.0.113.9:4444"))
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            line.trim(),
            "# \"203.0.113.9:4444\",  # proposed: would_block x2 in run-a, run-b"
        );
        assert!(
            text.contains(
                "# \"/usr/bin/nc.openbsd\", dev 1 ino 99 (agent),  # proposed: would_block x2"
            ),
            "{text}"
        );
        let p = Policy::from_toml_str(&text, "g.toml").unwrap();
        assert!(
            !p.enforce.allow_exec.iter().any(|x| x.contains("nc")),
            "a refused exec is proposed, never allowed, though shadow mode let it run"
        );
        assert!(!p
            .network
            .allow
            .iter()
            .any(|a| a.text.contains("203.0.113.9")));
        // Uncommenting the proposal gives a valid policy that allows it.
        let approved = text.replacen("  # \"203.0.113.9:4444\",", "  \"203.0.113.9:4444\",", 1);
        let p = Policy::from_toml_str(&approved, "approved.toml").unwrap();
        assert!(p.network.allow.iter().any(|a| a.text == "203.0.113.9:4444"));
    }

    #[test]
    fn ptrace_in_the_runs_keeps_ptrace_alerting() {
        let mut g = Generator::new(Policy::builtin());
        let log = [
            rec(
                "sensor_start",
                1,
                serde_json::json!({"mode": "audit", "command": "x",
                "version": "0", "host": "h", "capture_tls": false, "tls_redaction": "on"}),
            ),
            rec(
                "ptrace",
                1,
                serde_json::json!({"request": "attach", "request_code": 16,
                "tracer_pid": 1, "target_pid": 2, "tracer_tracked": true, "target_tracked": true}),
            ),
        ]
        .join("\n");
        g.add_audit(log.as_bytes(), "dbg").unwrap();
        let p = Policy::from_toml_str(&g.render(), "g.toml").unwrap();
        assert!(!p.enforce.ptrace);
        assert!(p.enforce.network);
    }

    #[test]
    fn an_empty_or_foreign_file_is_an_error_naming_it() {
        let mut g = Generator::new(Policy::builtin());
        let e = g.add_audit(&b"\n\n"[..], "x/audit.jsonl").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x/audit.jsonl: no records (not a proctor audit log)"
        );
    }

    #[test]
    fn diff_names_each_added_and_removed_entry() {
        let old = Policy::from_toml_str(
            "[network]\nallow = [\"10.1.2.3:8080\", \"old.example:443\"]\n",
            "old.toml",
        )
        .unwrap();
        let new = Policy::from_toml_str(&generated(), "new.toml").unwrap();
        let d = diff(&old, &new);
        assert!(
            d.contains(&"- network.allow: old.example:443".to_string()),
            "{d:#?}"
        );
        assert!(d.contains(&"+ network.allow: api.example.com:443".to_string()));
        assert!(!d.iter().any(|l| l.contains("10.1.2.3:8080")));
        assert!(d.contains(&"- enforce.network: alert".to_string()));
        assert!(d.contains(&"+ enforce.network: block".to_string()));
        assert!(d.contains(&"+ enforce.allow_exec: /usr/bin/git".to_string()));
        assert!(d.contains(&"- files.sensitive: **/.npmrc".to_string()));
        assert!(diff(&new, &new).is_empty());
        let mut sorted = d.clone();
        sorted.sort_by(|a, b| a[2..].cmp(&b[2..]));
        assert_eq!(d.len(), sorted.len());
    }
}
