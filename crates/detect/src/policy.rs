//! The policy: every list and threshold the detectors use, as data (`policy.default.toml`).
//!
//! [`Policy::builtin`] is the shipped file itself, so the defaults and the documentation cannot
//! disagree. Every other policy file is an overlay on it ([`Policy::from_toml_str`],
//! [`Policy::overlay`]): it holds the keys it changes; lists replace, or extend the base list when
//! written `{ extend = [...] }`; tables merge. Every error names the overlay file, line and column
//! (`origin:line:column: what is wrong`), and [`Policy::to_toml`] gives the effective policy.

use crate::glob::{check_classes, PathPattern};
use serde::Deserialize;
use std::net::IpAddr;
use std::ops::Range;
use toml::Spanned;

/// The shipped, commented default policy; [`Policy::builtin`] parses exactly this text.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../policy.default.toml");

/// A policy file that could not be used. Display is one line: `origin:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct PolicyError {
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl PolicyError {
    /// An error at byte range `span` of `text` (read from `origin`), line and column from its
    /// start; without a span, at the start of the file. Every TOML file proctor reads (policy,
    /// daemon config) reports its errors this way.
    pub fn at(
        text: &str,
        origin: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> PolicyError {
        let (line, column) = span.map_or((1, 1), |s| line_col(text, s.start));
        PolicyError {
            origin: origin.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Line and column (1-based, column in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary_compat(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// Alert delivery: cooldown aggregation and trace length.
#[derive(Debug, Clone)]
pub struct AlertsPolicy {
    pub cooldown_ns: u64,
    /// Alerts of other tool calls within this long of an incident's last alert join it.
    pub incident_window_ns: u64,
    pub trace_len: usize,
}

/// L1 thresholds.
#[derive(Debug, Clone)]
pub struct SchedPolicy {
    pub enabled: bool,
    pub min_switches: u64,
    pub slack: f64,
    pub slack_sigma: f64,
    pub threshold: f64,
}

/// A risky binary: a basename glob, optionally requiring one argument to match a glob.
#[derive(Debug, Clone)]
pub struct RiskyRule {
    pub text: String,
    pub name: Vec<u8>,
    pub arg: Option<Vec<u8>>,
    /// `NAME ARGGLOB !NOTGLOB`: and no argument matches this glob.
    pub not: Option<Vec<u8>>,
}

/// One allowlist entry for destinations.
#[derive(Debug, Clone, PartialEq)]
pub enum AllowHost {
    Any,
    Net {
        addr: IpAddr,
        prefix: u8,
    },
    /// A host name, or a suffix when written `*.domain` (stored without the `*.`).
    Name {
        name: String,
        suffix: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct AllowEntry {
    pub text: String,
    pub host: AllowHost,
    pub port: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct NetworkPolicy {
    pub allow: Vec<AllowEntry>,
    pub standard_ports: Vec<u16>,
    pub resolve_window_ns: u64,
    pub burst_sigma: f64,
    pub burst_min_per_s: u64,
    pub burst_cap_per_s: u64,
    /// NET_SCAN: distinct unknown destinations of one process within `scan_window_ns`.
    pub scan_min_destinations: usize,
    pub scan_window_ns: u64,
    /// Loopback ports from this one up are learned per process as "ephemeral".
    pub ephemeral_from: u16,
    /// Cloud instance metadata services (they hand out the machine's role credentials): a
    /// connect or send to one alerts from the first, is never learned, and only `allow` permits
    /// it.
    pub metadata_services: Vec<AllowEntry>,
}

/// Where DNS queries are expected to go.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolver {
    /// The nameservers of /etc/resolv.conf at start.
    System,
    Addr(IpAddr),
}

#[derive(Debug, Clone)]
pub struct DnsPolicy {
    pub expected: Vec<String>,
    pub resolvers: Vec<Resolver>,
    pub max_label_len: usize,
    pub max_name_len: usize,
    pub entropy_min_len: usize,
    pub entropy_bits: f64,
}

#[derive(Debug, Clone)]
pub struct FilesPolicy {
    pub sensitive: Vec<PathPattern>,
    /// Device nodes whose open is a `SENSITIVE_FILE` whatever the node is called.
    pub sensitive_devices: Vec<DevicePattern>,
    pub persistence: Vec<PathPattern>,
    pub noise: Vec<PathPattern>,
    /// Shell and REPL histories: removing, moving away, replacing or truncating one is
    /// `INDICATOR_REMOVAL`.
    pub histories: Vec<PathPattern>,
    /// System logs: removing, moving away or replacing one with a symlink is.
    pub logs: Vec<PathPattern>,
    /// Where deleting many files is ordinary work (with `noise`); elsewhere
    /// `destruction_burst` deletions within 10 s are `DATA_DESTRUCTION`.
    pub destruction_quiet: Vec<PathPattern>,
    pub destruction_burst: u32,
    /// Files in the directories searched before the system's on users' PATH: one placed there
    /// under the name of a program of the system's directories runs instead of it
    /// (`PERSISTENCE`, T1574.007).
    pub path_ahead: Vec<PathPattern>,
    /// (program basename glob, path glob): a read of its own configuration by the tool it
    /// belongs to (npm reading `.npmrc`) is not a `SENSITIVE_FILE`.
    pub tool_config: Vec<(Vec<u8>, Vec<u8>)>,
}

/// `[files].sensitive_devices` entry: `block` or `char`, then optionally a major number and a
/// minor one (`block`, `block 254`, `char 1:1`).
#[derive(Debug, Clone, PartialEq)]
pub struct DevicePattern {
    pub text: String,
    pub kind: proctor_model::DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
}

impl DevicePattern {
    pub fn parse(s: &str) -> Result<DevicePattern, String> {
        use proctor_model::DeviceKind;
        let bad = || {
            format!(
                "`{s}` is not a device pattern (`block` or `char`, then optionally MAJOR or \
                 MAJOR:MINOR, e.g. `char 1:1`)"
            )
        };
        let mut words = s.split_whitespace();
        let kind = match words.next() {
            Some("block") => DeviceKind::Block,
            Some("char") => DeviceKind::Char,
            _ => return Err(bad()),
        };
        let (mut major, mut minor) = (None, None);
        if let Some(n) = words.next() {
            let (ma, mi) = match n.split_once(':') {
                Some((a, b)) => (a, Some(b)),
                None => (n, None),
            };
            major = Some(
                ma.parse::<u32>()
                    .ok()
                    .filter(|&m| m < 1 << 12)
                    .ok_or_else(bad)?,
            );
            if let Some(mi) = mi {
                minor = Some(
                    mi.parse::<u32>()
                        .ok()
                        .filter(|&m| m < 1 << 20)
                        .ok_or_else(bad)?,
                );
            }
        }
        if words.next().is_some() {
            return Err(bad());
        }
        Ok(DevicePattern {
            text: s.to_string(),
            kind,
            major,
            minor,
        })
    }

    pub fn matches(&self, d: &proctor_model::DeviceNode) -> bool {
        self.kind == d.kind
            && self.major.is_none_or(|m| m == d.major)
            && self.minor.is_none_or(|m| m == d.minor)
    }
}

/// What enforce mode blocks; shadow mode records `would_block` for the same; audit mode blocks
/// nothing. Detection alerts on all of it in every mode.
#[derive(Debug, Clone, PartialEq)]
pub struct EnforcePolicy {
    /// Refuse connects and sends to inet destinations outside `[network].allow` (plus the DNS
    /// resolvers): `network = "block"`, and also `network = "ask"` (the kernel layer refuses
    /// what no approver allowed).
    pub network: bool,
    /// `network = "ask"`: an agent started by `run` has each connect to an inet destination
    /// outside the allowlist held until an approver allows or denies it.
    pub ask_network: bool,
    /// Binaries whose exec by an agent started by `run` is held for approval (absolute paths,
    /// identified by device+inode at start).
    pub ask_exec: Vec<String>,
    /// How long a held action waits for a verdict before it is denied (fail closed).
    pub ask_timeout_ns: u64,
    /// Binaries refused by identity (device+inode of these absolute paths, taken at start).
    pub exec: Vec<String>,
    /// Default-deny for the system's binaries: when not empty, every executable in
    /// `[interpreters].dirs` that is not one of these (by device+inode) is refused like `exec`.
    pub allow_exec: Vec<String>,
    /// Stop ptrace attach/seize by or onto the agent: `ptrace = "block"`.
    pub ptrace: bool,
    /// Keep an agent started by `run` out of the sensitive files (Landlock): `files = "block"`.
    pub files: bool,
    /// Refuse io_uring to an agent started by `run` in enforce mode (its operations bypass the
    /// syscall hooks): `io_uring = "block"`.
    pub io_uring: bool,
}

/// Default `[enforce].ask_timeout`.
pub const DEFAULT_ASK_TIMEOUT_NS: u64 = 30_000_000_000;

impl Default for EnforcePolicy {
    fn default() -> Self {
        EnforcePolicy {
            network: false,
            ask_network: false,
            ask_exec: Vec::new(),
            ask_timeout_ns: DEFAULT_ASK_TIMEOUT_NS,
            exec: Vec::new(),
            allow_exec: Vec::new(),
            ptrace: false,
            files: false,
            io_uring: false,
        }
    }
}

impl EnforcePolicy {
    /// Does the policy hold anything for approval?
    pub fn asks(&self) -> bool {
        self.ask_network || !self.ask_exec.is_empty()
    }
}

/// A tool family for L3 node names: its name and the basename globs of its members.
pub type Family = (String, Vec<Vec<u8>>);

/// A validated policy. Build it with [`Policy::builtin`] or [`Policy::from_toml_str`].
#[derive(Debug, Clone)]
pub struct Policy {
    pub alerts: AlertsPolicy,
    pub sched: SchedPolicy,
    /// Basename globs of shells and interpreters.
    pub interpreter_names: Vec<Vec<u8>>,
    /// Directories searched at start for interpreters (device+inode identification).
    pub interpreter_dirs: Vec<String>,
    pub risky: Vec<RiskyRule>,
    pub structural_drift: bool,
    pub cycles: bool,
    /// L3 file areas whose new write edges are evidence, not alerts ("$CWD", "~", "/tmp", ...).
    pub quiet_write_areas: Vec<String>,
    /// Basename globs of programs that only run another one (`env`, `nice`, `timeout`): what
    /// they run is judged as spawned by whoever ran them.
    pub launchers: Vec<Vec<u8>>,
    /// Basename globs of the system's package managers: what one does for a vetted request is
    /// the distribution's code (see the engine's `packages`).
    pub package_managers: Vec<Vec<u8>>,
    /// Tool families for L3 node names.
    pub families: Vec<Family>,
    pub network: NetworkPolicy,
    pub dns: DnsPolicy,
    pub files: FilesPolicy,
    pub ptrace: bool,
    /// Basename globs of the system's set-user-ID and set-group-ID programs: an exec that
    /// raises the effective uid or gid through another file, or through one of these outside
    /// the system's directories, is `PRIVILEGED_CALL`.
    pub setuid_expected: Vec<Vec<u8>>,
    /// Basename globs of programs that run what a client tells them (terminal multiplexers, an
    /// ssh master or agent): a tree's connect to one outside the tree is L5 `SESSION_HIJACK`.
    pub session_servers: Vec<Vec<u8>>,
    /// Globs of unix socket paths (`@` for an abstract name) of message buses and service
    /// managers: a tree's connect to one, answered outside the tree, is L5 `SESSION_HIJACK`.
    pub service_sockets: Vec<Vec<u8>>,
    /// Command-name globs of security and logging services: a signal from the tree to one is
    /// an `OUTSIDE_SIGNAL` that impairs defences (T1562.001), not only one that stops work.
    pub protected_processes: Vec<Vec<u8>>,
    pub enforce: EnforcePolicy,
    /// Where this policy came from ("built-in" or a file name).
    pub origin: String,
    source: String,
}

// The file's shape. Every key is optional: a file is an overlay on a base policy (the built-in
// one), and a key it leaves out keeps the base value. Spanned values are the ones validated
// beyond their type, so that errors point at them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    version: Option<Spanned<i64>>,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    scheduling: RawSched,
    #[serde(default)]
    interpreters: RawInterp,
    #[serde(default)]
    risky_binaries: RawRisky,
    #[serde(default)]
    graph: RawGraph,
    #[serde(default)]
    network: RawNet,
    #[serde(default)]
    dns: RawDns,
    #[serde(default)]
    files: RawFiles,
    #[serde(default)]
    ptrace: RawPtrace,
    #[serde(default)]
    enforce: RawEnforce,
}

/// A list value of an overlay: `key = [...]` replaces the base list; `key = { extend = [...] }`
/// (or the dotted `key.extend = [...]`) appends to it.
enum ListOv<T> {
    Replace(Vec<T>),
    Extend(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ListOv<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = ListOv<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list, or `{ extend = [...] }` to add to the built-in list")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = s.next_element()? {
                    out.push(x);
                }
                Ok(ListOv::Replace(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = None;
                while let Some(k) = m.next_key::<String>()? {
                    if k != "extend" || out.is_some() {
                        return Err(serde::de::Error::unknown_field(&k, &["extend"]));
                    }
                    out = Some(m.next_value()?);
                }
                out.map(ListOv::Extend)
                    .ok_or_else(|| serde::de::Error::missing_field("extend"))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

type Strings = Option<ListOv<Spanned<String>>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    cooldown: Option<Spanned<String>>,
    trace_len: Option<Spanned<i64>>,
    incident_window: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSched {
    enabled: Option<bool>,
    min_switches: Option<Spanned<i64>>,
    slack: Option<Spanned<f64>>,
    slack_sigma: Option<Spanned<f64>>,
    threshold: Option<Spanned<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawInterp {
    names: Strings,
    dirs: Strings,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRisky {
    names: Strings,
    setuid_expected: Strings,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGraph {
    structural_drift: Option<bool>,
    cycles: Option<bool>,
    quiet_write_areas: Strings,
    launchers: Strings,
    package_managers: Strings,
    families: Option<std::collections::BTreeMap<String, ListOv<Spanned<String>>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNet {
    allow: Strings,
    standard_ports: Option<ListOv<Spanned<i64>>>,
    resolve_window: Option<Spanned<String>>,
    burst_sigma: Option<Spanned<f64>>,
    burst_min_per_s: Option<Spanned<i64>>,
    burst_cap_per_s: Option<Spanned<i64>>,
    scan_min_destinations: Option<Spanned<i64>>,
    scan_window: Option<Spanned<String>>,
    ephemeral_from: Option<Spanned<i64>>,
    metadata_services: Strings,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDns {
    expected: Strings,
    resolvers: Strings,
    max_label_len: Option<Spanned<i64>>,
    max_name_len: Option<Spanned<i64>>,
    entropy_min_len: Option<Spanned<i64>>,
    entropy_bits: Option<Spanned<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    sensitive: Strings,
    sensitive_devices: Strings,
    persistence: Strings,
    noise: Strings,
    histories: Strings,
    logs: Strings,
    destruction_quiet: Strings,
    destruction_burst: Option<Spanned<i64>>,
    path_ahead: Strings,
    tool_config: Strings,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPtrace {
    enabled: Option<bool>,
    session_servers: Strings,
    service_sockets: Strings,
    protected_processes: Strings,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEnforce {
    network: Option<Spanned<String>>,
    exec: Strings,
    allow_exec: Strings,
    ptrace: Option<Spanned<String>>,
    files: Option<Spanned<String>>,
    io_uring: Option<Spanned<String>>,
    ask_exec: Strings,
    ask_timeout: Option<Spanned<String>>,
}
/// Builds errors at a span of the text being parsed.
struct Ctx<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Option<Range<usize>>, message: impl Into<String>) -> PolicyError {
        PolicyError::at(self.text, self.origin, span, message)
    }

    fn int<T: TryFrom<i64>>(
        &self,
        v: &Spanned<i64>,
        what: &str,
        min: i64,
    ) -> Result<T, PolicyError> {
        let n = *v.get_ref();
        if n < min {
            return Err(self.err(
                Some(v.span()),
                format!("{what} must be at least {min}, not {n}"),
            ));
        }
        T::try_from(n).map_err(|_| self.err(Some(v.span()), format!("{what}: {n} is too large")))
    }

    fn float(&self, v: &Spanned<f64>, what: &str, min: f64, max: f64) -> Result<f64, PolicyError> {
        let x = *v.get_ref();
        if !x.is_finite() || x < min || x > max {
            return Err(self.err(
                Some(v.span()),
                format!("{what} must be between {min} and {max}, not {x}"),
            ));
        }
        Ok(x)
    }

    fn duration(&self, v: &Spanned<String>, what: &str) -> Result<u64, PolicyError> {
        parse_duration_ns(v.get_ref()).map_err(|e| self.err(Some(v.span()), format!("{what}: {e}")))
    }

    fn pattern(&self, s: &Spanned<String>) -> Result<PathPattern, PolicyError> {
        PathPattern::parse(s.get_ref()).map_err(|e| self.err(Some(s.span()), e))
    }

    /// One key: the overlay's value validated, else the base's. Only the built-in policy has no
    /// base, so a key missing there is a defect of the shipped file (a test parses it).
    fn pick<R, T: Clone>(
        &self,
        over: Option<&R>,
        base: Option<&T>,
        key: &str,
        f: impl FnOnce(&R) -> Result<T, PolicyError>,
    ) -> Result<T, PolicyError> {
        match (over, base) {
            (Some(v), _) => f(v),
            (None, Some(b)) => Ok(b.clone()),
            (None, None) => Err(self.err(None, format!("missing field `{key}`"))),
        }
    }

    /// One list key: replaced by the overlay's list, or the base list extended with it.
    fn list<R, T: Clone>(
        &self,
        over: Option<&ListOv<R>>,
        base: Option<&Vec<T>>,
        key: &str,
        f: impl FnMut(&R) -> Result<T, PolicyError>,
    ) -> Result<Vec<T>, PolicyError> {
        let (mut out, new) = match (over, base) {
            (Some(ListOv::Replace(v)), _) => (Vec::new(), v),
            (Some(ListOv::Extend(v)), b) => (b.cloned().unwrap_or_default(), v),
            (None, Some(b)) => return Ok(b.clone()),
            (None, None) => return Err(self.err(None, format!("missing field `{key}`"))),
        };
        out.extend(new.iter().map(f).collect::<Result<Vec<_>, _>>()?);
        Ok(out)
    }
}

/// Parse a duration in humantime's syntax ("500ms", "30s", "2m", "1h", "1d", "1h 30m"); a bare
/// number is seconds. Out of range is an error, never a panic: this is the one duration parser
/// of the policy and the command line.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return t
            .parse::<f64>()
            .ok()
            .and_then(|n| std::time::Duration::try_from_secs_f64(n).ok())
            .ok_or_else(|| format!("`{s}` is not a valid duration"));
    }
    humantime::parse_duration(t).map_err(|e| format!("`{s}` is not a valid duration: {e}"))
}

/// [`parse_duration`] in nanoseconds, which must fit in a u64 (about 584 years).
pub fn parse_duration_ns(s: &str) -> Result<u64, String> {
    let d = parse_duration(s)?;
    u64::try_from(d.as_nanos()).map_err(|_| format!("`{s}` is out of range"))
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// Parse one allowlist entry (see the `[network]` comments of the default policy).
fn parse_allow(text: &str) -> Result<AllowEntry, String> {
    let bad = |why: &str| format!("allow entry `{text}`: {why}");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("missing `]` after a bracketed IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("expected `:port` after `]`"))?,
            ),
        };
        (h, port)
    } else if text.matches(':').count() == 1 {
        let (h, p) = text.split_once(':').expect("one colon");
        (h, Some(p))
    } else {
        (text, None)
    };
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
        ),
    };
    let host = if host == "*" {
        if port.is_none() {
            return Err(bad("`*` alone would allow everything; write `*:PORT`"));
        }
        AllowHost::Any
    } else if let Some((a, p)) = host.split_once('/') {
        let addr = parse_ip(a).ok_or_else(|| bad("not an IP address before `/`"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| bad(&format!("the prefix length must be 0..={max}")))?;
        AllowHost::Net { addr, prefix }
    } else if let Some(addr) = parse_ip(host) {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        AllowHost::Net { addr, prefix }
    } else {
        let (name, suffix) = match host.strip_prefix("*.") {
            Some(n) => (n, true),
            None => (host, false),
        };
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(bad("not an IP, CIDR or host name"));
        }
        AllowHost::Name {
            name: name.to_ascii_lowercase(),
            suffix,
        }
    };
    Ok(AllowEntry {
        text: text.to_string(),
        host,
        port,
    })
}

impl AllowEntry {
    /// Does this entry allow the destination `ip:port`? Host names never match an IP.
    pub fn allows(&self, ip: IpAddr, port: Option<u16>) -> bool {
        if self.port.is_some() && self.port != port {
            return false;
        }
        match &self.host {
            AllowHost::Any => true,
            AllowHost::Net { addr, prefix } => in_net(ip, *addr, *prefix),
            AllowHost::Name { .. } => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses are compared as IPv4.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (canonical_ip(ip), canonical_ip(net)) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix.min(32))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix.min(128))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn parse_risky(text: &str) -> Result<RiskyRule, String> {
    // "NAME [ARGGLOB] [!NOTGLOB]": an argument glob may hold spaces; " !" starts the glob no
    // argument may match.
    let (head, not) = match text.split_once(" !") {
        Some((h, n)) => (h, Some(n.trim())),
        None => (text, None),
    };
    let mut parts = head.splitn(2, ' ');
    let name = parts.next().unwrap_or_default();
    let arg = parts.next().map(str::trim).filter(|a| !a.is_empty());
    if name.is_empty() || name.contains('/') || not.is_some_and(str::is_empty) {
        return Err(format!(
            "risky binary `{text}`: expected a basename, optionally followed by one argument \
             glob and by `!` and a glob no argument may match"
        ));
    }
    for g in [Some(name), arg, not].into_iter().flatten() {
        check_classes(g.as_bytes()).map_err(|e| format!("risky binary `{text}`: {e}"))?;
    }
    Ok(RiskyRule {
        text: text.to_string(),
        name: name.as_bytes().to_vec(),
        arg: arg.map(|a| a.as_bytes().to_vec()),
        not: not.map(|a| a.as_bytes().to_vec()),
    })
}

/// Tool families: the base's, each one named in the overlay replaced or extended, new ones added.
fn parse_families(
    m: Option<&std::collections::BTreeMap<String, ListOv<Spanned<String>>>>,
    base: Option<&Vec<Family>>,
    cx: &Ctx<'_>,
) -> Result<Vec<Family>, PolicyError> {
    let mut out = base.cloned().unwrap_or_default();
    let Some(m) = m else {
        return match base {
            Some(_) => Ok(out),
            None => Err(cx.err(None, "missing table `graph.families`")),
        };
    };
    for (name, globs) in m {
        let at = out.iter().position(|(n, _)| n == name);
        let list = cx.list(Some(globs), at.map(|i| &out[i].1), name, |g| {
            let t = g.get_ref();
            if t.is_empty() || t.contains('/') {
                return Err(cx.err(
                    Some(g.span()),
                    format!("family {name}: `{t}` must be a basename glob"),
                ));
            }
            check_classes(t.as_bytes())
                .map_err(|e| cx.err(Some(g.span()), format!("family {name}: `{t}`: {e}")))?;
            Ok(t.as_bytes().to_vec())
        })?;
        match at {
            Some(i) => out[i].1 = list,
            None => out.push((name.clone(), list)),
        }
    }
    Ok(out)
}

/// Merge an overlay's TOML table into its base's (the effective policy as TOML): tables merge
/// key by key, a `{ extend = [...] }` value appends to the base list, anything else replaces.
pub fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Array(b)), toml::Value::Table(mut o)) => {
                if let Some(toml::Value::Array(add)) = o.remove("extend") {
                    b.extend(add);
                }
            }
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The policy's `[enforce]` verdicts: (block, ask).
type Action = (bool, bool);

impl Policy {
    /// The built-in policy: the shipped `policy.default.toml`.
    pub fn builtin() -> Policy {
        Policy::parse(None, DEFAULT_POLICY_TOML, "built-in")
            .expect("the shipped policy.default.toml is valid (checked by a test)")
    }

    /// Parse and validate a policy file layered on the built-in policy. `origin` names it in
    /// errors (a file name). The file holds only what it changes; a complete copy of the
    /// built-in file works as well.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        Policy::builtin().overlay(text, origin)
    }

    /// This policy with the overlay `text` layered on it: the keys the overlay sets replace
    /// these (lists too, unless written `key = { extend = [...] }`), tables merge key by key.
    pub fn overlay(&self, text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let mut p = Policy::parse(Some(self), text, origin)?;
        let mut table: toml::Table =
            toml::from_str(&self.source).expect("a parsed policy's source is valid TOML");
        let over: toml::Table = toml::from_str(text).expect("the overlay parsed above");
        merge_tables(&mut table, over);
        p.source = format!(
            "# effective policy: {} with {origin} layered on it\n{}",
            self.origin,
            toml::to_string(&table).expect("a TOML table serializes")
        );
        Ok(p)
    }

    fn parse(base: Option<&Policy>, text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let cx = Ctx { text, origin };
        let raw: Raw = toml::from_str(text).map_err(|e| cx.err(e.span(), e.message().trim()))?;
        if let Some(v) = &raw.version {
            if *v.get_ref() != 1 {
                return Err(cx.err(
                    Some(v.span()),
                    format!(
                        "unsupported policy version {} (this proctor reads version 1)",
                        v.get_ref()
                    ),
                ));
            }
        }
        let b = base;
        let a = &raw.alerts;
        let alerts = AlertsPolicy {
            cooldown_ns: cx.pick(
                a.cooldown.as_ref(),
                b.map(|p| &p.alerts.cooldown_ns),
                "cooldown",
                |v| cx.duration(v, "cooldown"),
            )?,
            incident_window_ns: cx.pick(
                a.incident_window.as_ref(),
                b.map(|p| &p.alerts.incident_window_ns),
                "incident_window",
                |v| cx.duration(v, "incident_window"),
            )?,
            trace_len: cx.pick(
                a.trace_len.as_ref(),
                b.map(|p| &p.alerts.trace_len),
                "trace_len",
                |v| cx.int(v, "trace_len", 0),
            )?,
        };
        let s = &raw.scheduling;
        let bs = b.map(|p| &p.sched);
        let sched = SchedPolicy {
            enabled: cx.pick(s.enabled.as_ref(), bs.map(|s| &s.enabled), "enabled", |v| {
                Ok(*v)
            })?,
            min_switches: cx.pick(
                s.min_switches.as_ref(),
                bs.map(|s| &s.min_switches),
                "min_switches",
                |v| cx.int(v, "min_switches", 0),
            )?,
            slack: cx.pick(s.slack.as_ref(), bs.map(|s| &s.slack), "slack", |v| {
                cx.float(v, "slack", 0.0, 1.0)
            })?,
            slack_sigma: cx.pick(
                s.slack_sigma.as_ref(),
                bs.map(|s| &s.slack_sigma),
                "slack_sigma",
                |v| cx.float(v, "slack_sigma", 0.0, 100.0),
            )?,
            threshold: cx.pick(
                s.threshold.as_ref(),
                bs.map(|s| &s.threshold),
                "threshold",
                |v| cx.float(v, "threshold", 0.0, 1000.0),
            )?,
        };
        // A list of basename globs (no `/`, valid classes), each entry named in its error.
        let cxr = &cx;
        let basename_globs = |what: &'static str| {
            move |n: &Spanned<String>| {
                let t = n.get_ref();
                if t.is_empty() || t.contains('/') {
                    return Err(cxr.err(
                        Some(n.span()),
                        format!("{what} `{t}` must be a basename glob"),
                    ));
                }
                check_classes(t.as_bytes())
                    .map_err(|e| cxr.err(Some(n.span()), format!("`{t}`: {e}")))?;
                Ok(t.as_bytes().to_vec())
            }
        };
        let interpreter_names = cx.list(
            raw.interpreters.names.as_ref(),
            b.map(|p| &p.interpreter_names),
            "interpreters.names",
            basename_globs("interpreter name"),
        )?;
        let setuid_expected = cx.list(
            raw.risky_binaries.setuid_expected.as_ref(),
            b.map(|p| &p.setuid_expected),
            "risky_binaries.setuid_expected",
            basename_globs("set-user-ID program"),
        )?;
        let session_servers = cx.list(
            raw.ptrace.session_servers.as_ref(),
            b.map(|p| &p.session_servers),
            "ptrace.session_servers",
            basename_globs("session server"),
        )?;
        let service_sockets = cx.list(
            raw.ptrace.service_sockets.as_ref(),
            b.map(|p| &p.service_sockets),
            "ptrace.service_sockets",
            |n: &Spanned<String>| {
                let t = n.get_ref();
                if !(t.starts_with('/') || t.len() > 1 && t.starts_with('@')) {
                    return Err(cxr.err(
                        Some(n.span()),
                        format!(
                            "service socket `{t}` must be an absolute path or `@` and an \
                             abstract name"
                        ),
                    ));
                }
                check_classes(t.as_bytes())
                    .map_err(|e| cxr.err(Some(n.span()), format!("`{t}`: {e}")))?;
                Ok(t.as_bytes().to_vec())
            },
        )?;
        let protected_processes = cx.list(
            raw.ptrace.protected_processes.as_ref(),
            b.map(|p| &p.protected_processes),
            "ptrace.protected_processes",
            basename_globs("protected process"),
        )?;
        let abs = |x: &Spanned<String>, what: &str| {
            if x.get_ref().starts_with('/') {
                Ok(x.get_ref().clone())
            } else {
                Err(cx.err(
                    Some(x.span()),
                    format!("{what} `{}` must be an absolute path", x.get_ref()),
                ))
            }
        };
        let interpreter_dirs = cx.list(
            raw.interpreters.dirs.as_ref(),
            b.map(|p| &p.interpreter_dirs),
            "interpreters.dirs",
            |d| abs(d, "directory"),
        )?;
        let risky = cx.list(
            raw.risky_binaries.names.as_ref(),
            b.map(|p| &p.risky),
            "risky_binaries.names",
            |r| parse_risky(r.get_ref()).map_err(|e| cx.err(Some(r.span()), e)),
        )?;
        let n = &raw.network;
        let bn = b.map(|p| &p.network);
        let network = NetworkPolicy {
            allow: cx.list(n.allow.as_ref(), bn.map(|n| &n.allow), "allow", |a| {
                parse_allow(a.get_ref()).map_err(|e| cx.err(Some(a.span()), e))
            })?,
            standard_ports: cx.list(
                n.standard_ports.as_ref(),
                bn.map(|n| &n.standard_ports),
                "standard_ports",
                |p| cx.int::<u16>(p, "a port", 1),
            )?,
            resolve_window_ns: cx.pick(
                n.resolve_window.as_ref(),
                bn.map(|n| &n.resolve_window_ns),
                "resolve_window",
                |v| cx.duration(v, "resolve_window"),
            )?,
            burst_sigma: cx.pick(
                n.burst_sigma.as_ref(),
                bn.map(|n| &n.burst_sigma),
                "burst_sigma",
                |v| cx.float(v, "burst_sigma", 0.0, 1000.0),
            )?,
            burst_min_per_s: cx.pick(
                n.burst_min_per_s.as_ref(),
                bn.map(|n| &n.burst_min_per_s),
                "burst_min_per_s",
                |v| cx.int(v, "burst_min_per_s", 1),
            )?,
            burst_cap_per_s: cx.pick(
                n.burst_cap_per_s.as_ref(),
                bn.map(|n| &n.burst_cap_per_s),
                "burst_cap_per_s",
                |v| cx.int(v, "burst_cap_per_s", 1),
            )?,
            scan_min_destinations: cx.pick(
                n.scan_min_destinations.as_ref(),
                bn.map(|n| &n.scan_min_destinations),
                "scan_min_destinations",
                |v| cx.int(v, "scan_min_destinations", 2),
            )?,
            scan_window_ns: cx.pick(
                n.scan_window.as_ref(),
                bn.map(|n| &n.scan_window_ns),
                "scan_window",
                |v| cx.duration(v, "scan_window"),
            )?,
            ephemeral_from: cx.pick(
                n.ephemeral_from.as_ref(),
                bn.map(|n| &n.ephemeral_from),
                "ephemeral_from",
                |v| cx.int(v, "ephemeral_from", 1),
            )?,
            metadata_services: cx.list(
                n.metadata_services.as_ref(),
                bn.map(|n| &n.metadata_services),
                "metadata_services",
                |a| match parse_allow(a.get_ref()) {
                    Ok(e) if matches!(e.host, AllowHost::Net { .. }) => Ok(e),
                    Ok(_) => Err(cx.err(
                        Some(a.span()),
                        format!(
                            "metadata_services: `{}` must be an IP or a CIDR (with an optional \
                             :port)",
                            a.get_ref()
                        ),
                    )),
                    Err(e) => Err(cx.err(Some(a.span()), e)),
                },
            )?,
        };
        let g = &raw.graph;
        let quiet_write_areas = cx.list(
            g.quiet_write_areas.as_ref(),
            b.map(|p| &p.quiet_write_areas),
            "quiet_write_areas",
            |a| {
                let t = a.get_ref();
                if t == "$CWD" || t == "~" || t.starts_with('/') {
                    Ok(t.clone())
                } else {
                    Err(cx.err(
                        Some(a.span()),
                        format!("write area `{t}` must be $CWD, ~ or an absolute area"),
                    ))
                }
            },
        )?;
        let launchers = cx.list(
            g.launchers.as_ref(),
            b.map(|p| &p.launchers),
            "graph.launchers",
            basename_globs("launcher"),
        )?;
        let package_managers = cx.list(
            g.package_managers.as_ref(),
            b.map(|p| &p.package_managers),
            "graph.package_managers",
            basename_globs("package manager"),
        )?;
        let families = parse_families(g.families.as_ref(), b.map(|p| &p.families), &cx)?;
        let d = &raw.dns;
        let bd = b.map(|p| &p.dns);
        let expected = cx.list(
            d.expected.as_ref(),
            bd.map(|d| &d.expected),
            "expected",
            |e| match parse_allow(e.get_ref()) {
                Ok(AllowEntry {
                    host: AllowHost::Name { name, .. },
                    port: None,
                    ..
                }) => Ok(name),
                _ => Err(cx.err(
                    Some(e.span()),
                    format!(
                        "expected domain `{}` must be a host name or `*.domain`",
                        e.get_ref()
                    ),
                )),
            },
        )?;
        let resolvers = cx.list(
            d.resolvers.as_ref(),
            bd.map(|d| &d.resolvers),
            "resolvers",
            |r| match r.get_ref().as_str() {
                "system" => Ok(Resolver::System),
                t => parse_ip(t).map(Resolver::Addr).ok_or_else(|| {
                    cx.err(
                        Some(r.span()),
                        format!("resolver `{t}` must be `system` or an IP address"),
                    )
                }),
            },
        )?;
        let dns = DnsPolicy {
            expected,
            resolvers,
            max_label_len: cx.pick(
                d.max_label_len.as_ref(),
                bd.map(|d| &d.max_label_len),
                "max_label_len",
                |v| cx.int(v, "max_label_len", 1),
            )?,
            max_name_len: cx.pick(
                d.max_name_len.as_ref(),
                bd.map(|d| &d.max_name_len),
                "max_name_len",
                |v| cx.int(v, "max_name_len", 1),
            )?,
            entropy_min_len: cx.pick(
                d.entropy_min_len.as_ref(),
                bd.map(|d| &d.entropy_min_len),
                "entropy_min_len",
                |v| cx.int(v, "entropy_min_len", 1),
            )?,
            entropy_bits: cx.pick(
                d.entropy_bits.as_ref(),
                bd.map(|d| &d.entropy_bits),
                "entropy_bits",
                |v| cx.float(v, "entropy_bits", 0.0, 8.0),
            )?,
        };
        let f = &raw.files;
        let bf = b.map(|p| &p.files);
        let files = FilesPolicy {
            sensitive: cx.list(
                f.sensitive.as_ref(),
                bf.map(|f| &f.sensitive),
                "sensitive",
                |s| cx.pattern(s),
            )?,
            sensitive_devices: cx.list(
                f.sensitive_devices.as_ref(),
                bf.map(|f| &f.sensitive_devices),
                "sensitive_devices",
                |s| DevicePattern::parse(s.get_ref()).map_err(|e| cx.err(Some(s.span()), e)),
            )?,
            persistence: cx.list(
                f.persistence.as_ref(),
                bf.map(|f| &f.persistence),
                "persistence",
                |s| cx.pattern(s),
            )?,
            noise: cx.list(f.noise.as_ref(), bf.map(|f| &f.noise), "noise", |s| {
                cx.pattern(s)
            })?,
            histories: cx.list(
                f.histories.as_ref(),
                bf.map(|f| &f.histories),
                "histories",
                |s| cx.pattern(s),
            )?,
            logs: cx.list(f.logs.as_ref(), bf.map(|f| &f.logs), "logs", |s| {
                cx.pattern(s)
            })?,
            destruction_quiet: cx.list(
                f.destruction_quiet.as_ref(),
                bf.map(|f| &f.destruction_quiet),
                "destruction_quiet",
                |s| cx.pattern(s),
            )?,
            path_ahead: cx.list(
                f.path_ahead.as_ref(),
                bf.map(|f| &f.path_ahead),
                "path_ahead",
                |s| cx.pattern(s),
            )?,
            tool_config: cx.list(
                f.tool_config.as_ref(),
                bf.map(|f| &f.tool_config),
                "tool_config",
                |s| {
                    let t = s.get_ref();
                    match t.split_once(' ').map(|(prog, path)| (prog, path.trim())) {
                        Some((prog, path))
                            if !prog.is_empty()
                                && !prog.contains('/')
                                && path.starts_with(['/', '*']) =>
                        {
                            for g in [prog, path] {
                                check_classes(g.as_bytes()).map_err(|e| {
                                    cx.err(Some(s.span()), format!("tool_config `{t}`: {e}"))
                                })?;
                            }
                            Ok((prog.as_bytes().to_vec(), path.as_bytes().to_vec()))
                        }
                        _ => Err(cx.err(
                            Some(s.span()),
                            format!(
                                "tool_config `{t}`: expected a program's basename glob and a \
                                 path glob (`/...` or `*/...`)"
                            ),
                        )),
                    }
                },
            )?,
            destruction_burst: cx.pick(
                f.destruction_burst.as_ref(),
                bf.map(|f| &f.destruction_burst),
                "destruction_burst",
                |v| cx.int(v, "destruction_burst", 1),
            )?,
        };
        let e = &raw.enforce;
        // `[enforce]` may be absent even from the built-in file: everything then alerts.
        let default_enforce = EnforcePolicy::default();
        let be = b.map_or(&default_enforce, |p| &p.enforce);
        // "ask" exists for network (held connects) only; ptrace and files have no approval flow.
        let action = |v: &Spanned<String>, what: &str, ask_ok: bool| -> Result<Action, _> {
            match v.get_ref().as_str() {
                "alert" => Ok((false, false)),
                "block" => Ok((true, false)),
                "ask" if ask_ok => Ok((true, true)),
                "ask" => Err(cx.err(
                    Some(v.span()),
                    format!("{what} = \"ask\" is not supported: the approval flow holds connects (network = \"ask\") and execs (ask_exec = [...]); use \"alert\" or \"block\""),
                )),
                other => Err(cx.err(
                    Some(v.span()),
                    format!(
                        "{what} must be \"alert\"{} or \"block\", not `{other}`",
                        if ask_ok { ", \"ask\"" } else { "" }
                    ),
                )),
            }
        };
        let exec = cx.list(e.exec.as_ref(), Some(&be.exec), "exec", |x| {
            abs(x, "exec entry")
        })?;
        let allow_exec = cx.list(
            e.allow_exec.as_ref(),
            Some(&be.allow_exec),
            "allow_exec",
            |x| abs(x, "allow_exec entry"),
        )?;
        let ask_exec = cx.list(e.ask_exec.as_ref(), Some(&be.ask_exec), "ask_exec", |x| {
            abs(x, "ask_exec entry")
        })?;
        let ask_timeout_ns = cx.pick(
            e.ask_timeout.as_ref(),
            Some(&be.ask_timeout_ns),
            "ask_timeout",
            |t| {
                let ns = cx.duration(t, "ask_timeout")?;
                if !(1_000_000..=3_600_000_000_000).contains(&ns) {
                    return Err(cx.err(
                        Some(t.span()),
                        format!(
                            "ask_timeout must be between 1ms and 1h, not `{}`",
                            t.get_ref()
                        ),
                    ));
                }
                Ok(ns)
            },
        )?;
        let (net_block, ask_network) = cx.pick(
            e.network.as_ref(),
            Some(&(be.network, be.ask_network)),
            "network",
            |v| action(v, "network", true),
        )?;
        let enforce = EnforcePolicy {
            network: net_block,
            ask_network,
            ask_exec,
            ask_timeout_ns,
            exec,
            allow_exec,
            ptrace: cx.pick(e.ptrace.as_ref(), Some(&be.ptrace), "ptrace", |v| {
                Ok(action(v, "ptrace", false)?.0)
            })?,
            files: cx.pick(e.files.as_ref(), Some(&be.files), "files", |v| {
                Ok(action(v, "files", false)?.0)
            })?,
            io_uring: cx.pick(e.io_uring.as_ref(), Some(&be.io_uring), "io_uring", |v| {
                Ok(action(v, "io_uring", false)?.0)
            })?,
        };
        let bg = |f: fn(&Policy) -> &bool| b.map(f);
        Ok(Policy {
            enforce,
            alerts,
            sched,
            interpreter_names,
            interpreter_dirs,
            risky,
            structural_drift: cx.pick(
                g.structural_drift.as_ref(),
                bg(|p| &p.structural_drift),
                "structural_drift",
                |v| Ok(*v),
            )?,
            cycles: cx.pick(g.cycles.as_ref(), bg(|p| &p.cycles), "cycles", |v| Ok(*v))?,
            quiet_write_areas,
            launchers,
            package_managers,
            families,
            network,
            dns,
            files,
            ptrace: cx.pick(
                raw.ptrace.enabled.as_ref(),
                bg(|p| &p.ptrace),
                "ptrace.enabled",
                |v| Ok(*v),
            )?,
            setuid_expected,
            session_servers,
            service_sockets,
            protected_processes,
            origin: origin.to_string(),
            source: text.to_string(),
        })
    }

    /// The policy as TOML (for `policy show`): the built-in policy is its commented file; a
    /// layered one is the complete effective policy (comments dropped), which parses back to it.
    pub fn to_toml(&self) -> &str {
        &self.source
    }

    /// The shipped default policy text.
    pub fn default_toml() -> &'static str {
        DEFAULT_POLICY_TOML
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(text: &str) -> PolicyError {
        Policy::from_toml_str(text, "p.toml").expect_err("the policy should be refused")
    }

    /// The default text with one line replaced.
    fn edited(from: &str, to: &str) -> String {
        assert!(
            DEFAULT_POLICY_TOML.contains(from),
            "default policy has `{from}`"
        );
        DEFAULT_POLICY_TOML.replacen(from, to, 1)
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .expect("needle present")
            + 1
    }

    #[test]
    fn a_risky_rule_may_name_a_glob_no_argument_matches() {
        let r = parse_risky("sh -i* !-*c*").unwrap();
        assert_eq!(
            (r.name, r.arg, r.not),
            (
                b"sh".to_vec(),
                Some(b"-i*".to_vec()),
                Some(b"-*c*".to_vec())
            )
        );
        // Spaces stay in the argument glob; `[!x]` is a class, not the separator.
        let r = parse_risky("*sh *unset HISTFILE*").unwrap();
        assert_eq!(r.arg, Some(b"*unset HISTFILE*".to_vec()));
        assert_eq!(r.not, None);
        assert!(parse_risky("sh -[!-]*i*").unwrap().not.is_none());
        let e = parse_risky("sh -i !").unwrap_err();
        assert!(e.contains("no argument may match"), "{e}");
    }

    #[test]
    fn builtin_is_the_shipped_file() {
        let p = Policy::builtin();
        assert_eq!(p.to_toml(), DEFAULT_POLICY_TOML);
        assert_eq!(p.alerts.cooldown_ns, 60_000_000_000);
        assert!(p.files.sensitive.iter().any(|s| s.text == "/etc/shadow"));
        assert!(p.interpreter_names.iter().any(|n| n == b"bash"));
        assert!(p.risky.iter().any(|r| r.name == b"curl"));
        // `--mode enforce` with no policy file refuses credential reads and persistence
        // writes; the network stays open (the agent's API host is not known here).
        assert!(p.enforce.files && !p.enforce.network && p.enforce.exec.is_empty());
    }

    #[test]
    fn ask_rules_parse_and_are_validated() {
        let p = Policy::builtin();
        assert!(!p.enforce.asks(), "the default policy holds nothing");
        assert_eq!(p.enforce.ask_timeout_ns, DEFAULT_ASK_TIMEOUT_NS);
        let text = edited("network = \"alert\"", "network = \"ask\"")
            .replacen("ask_exec = []", "ask_exec = [\"/usr/bin/curl\"]", 1)
            .replacen("ask_timeout = \"30s\"", "ask_timeout = \"500ms\"", 1);
        let p = Policy::from_toml_str(&text, "p.toml").unwrap();
        assert!(p.enforce.network && p.enforce.ask_network && p.enforce.asks());
        assert_eq!(p.enforce.ask_exec, vec!["/usr/bin/curl".to_string()]);
        assert_eq!(p.enforce.ask_timeout_ns, 500_000_000);
        let block = Policy::from_toml_str(
            &edited("network = \"alert\"", "network = \"block\""),
            "p.toml",
        )
        .unwrap();
        assert!(block.enforce.network && !block.enforce.ask_network);

        for (from, to, needle, says) in [
            (
                "ptrace = \"alert\"",
                "ptrace = \"ask\"",
                "ptrace = ",
                "not supported",
            ),
            (
                "files = \"block\"",
                "files = \"ask\"",
                "files = \"ask",
                "not supported",
            ),
            (
                "ask_exec = []",
                "ask_exec = [\"curl\"]",
                "ask_exec = [",
                "absolute path",
            ),
            (
                "ask_timeout = \"30s\"",
                "ask_timeout = \"0s\"",
                "ask_timeout = \"0",
                "between 1ms and 1h",
            ),
            (
                "ask_timeout = \"30s\"",
                "ask_timeout = \"soon\"",
                "ask_timeout = \"soon",
                "ask_timeout",
            ),
            (
                "network = \"alert\"",
                "network = \"maybe\"",
                "network = \"maybe",
                "\"ask\"",
            ),
        ] {
            let text = edited(from, to);
            let e = err_of(&text);
            assert_eq!(e.line, line_of(&text, needle), "{e}");
            assert!(e.message.contains(says), "{to}: {e}");
        }
    }

    /// A policy's content without its name and text, for comparing two of them.
    fn content(p: &Policy) -> String {
        let mut p = p.clone();
        p.origin.clear();
        p.source.clear();
        format!("{p:?}")
    }

    #[test]
    fn a_three_line_overlay_checks_and_changes_only_its_key() {
        let b = Policy::builtin();
        let p = Policy::from_toml_str("[network]\nallow = [\"api.anthropic.com\"]\n", "o.toml")
            .unwrap();
        assert_eq!(p.network.allow.len(), 1);
        assert_eq!(p.network.allow[0].text, "api.anthropic.com");
        assert_eq!(p.network.standard_ports, b.network.standard_ports);
        assert_eq!(p.files.sensitive, b.files.sensitive);
        assert_eq!(p.families, b.families);
        // An empty file is the built-in policy.
        assert_eq!(
            content(&Policy::from_toml_str("", "e.toml").unwrap()),
            content(&b)
        );
    }

    #[test]
    fn lists_replace_or_extend_and_tables_merge() {
        let b = Policy::builtin();
        let text = "[files]\nsensitive = { extend = [\"**/secret.txt\"] }\n\
                    persistence.extend = [\"/opt/hooks/**\"]\nnoise = []\n\
                    [graph.families]\nvcs = { extend = [\"jj\"] }\nmine = [\"tool\"]\n\
                    [enforce]\nfiles = \"block\"\n";
        let p = Policy::from_toml_str(text, "o.toml").unwrap();
        assert_eq!(p.files.sensitive.len(), b.files.sensitive.len() + 1);
        assert_eq!(p.files.sensitive.last().unwrap().text, "**/secret.txt");
        assert_eq!(p.files.persistence.len(), b.files.persistence.len() + 1);
        assert!(p.files.noise.is_empty());
        let vcs = &p.families.iter().find(|(n, _)| n == "vcs").unwrap().1;
        assert_eq!(vcs.last().unwrap(), b"jj");
        assert!(p
            .families
            .iter()
            .any(|(n, l)| n == "mine" && l == &[b"tool".to_vec()]));
        assert!(p.families.iter().any(|(n, _)| n == "build"), "others kept");
        assert!(p.enforce.files && !p.enforce.network);

        // `show --effective` prints a complete policy that means exactly the same.
        let effective = p.to_toml();
        assert!(effective.starts_with("# effective policy: built-in with o.toml"));
        let again = Policy::from_toml_str(effective, "effective.toml").unwrap();
        assert_eq!(content(&again), content(&p));
        // And layering on a layered policy keeps going.
        let q = p
            .overlay("[enforce]\nexec = [\"/usr/bin/nc\"]\n", "q.toml")
            .unwrap();
        assert!(q.enforce.files && q.enforce.exec == ["/usr/bin/nc"]);
        let again = Policy::from_toml_str(q.to_toml(), "effective.toml").unwrap();
        assert_eq!(content(&again), content(&q));
    }

    #[test]
    fn overlay_errors_point_into_the_overlay() {
        let e = err_of("[network]\nallow = [\"10.0.0.0/33\"]\n");
        assert_eq!((e.line, e.column), (2, 10), "{e}");
        assert!(e.message.contains("prefix length"), "{e}");
        let e = err_of("# x\n[files]\nsensitive = { extend = [\"etc/x\"] }\n");
        assert_eq!((e.line, e.column), (3, 25), "{e}");
        assert!(e.to_string().starts_with("p.toml:3:25: "), "{e}");
        // A tool_config entry with no path glob, and a launcher that is a path.
        let e = err_of("[files]\ntool_config = { extend = [\"npm\"] }\n");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("tool_config `npm`"), "{e}");
        let e = err_of("[graph]\nlaunchers = [\"/usr/bin/env\"]\n");
        assert_eq!(e.line, 2, "{e}");
        let e = err_of("[graph]\npackage_managers = { extend = [\"/usr/bin/apt\"] }\n");
        assert_eq!(e.line, 2, "{e}");
        let e = err_of("[files]\nsensitive = { add = [\"/x\"] }\n");
        assert_eq!(e.line, 2, "{e}");
        assert!(
            e.message.contains("add") && e.message.contains("extend"),
            "{e}"
        );
        let e = err_of("[network]\nalow = []\n");
        assert_eq!((e.line, e.column), (2, 1), "{e}");
        let e = err_of("[netwrk]\nallow = []\n");
        assert_eq!(e.line, 1, "{e}");
        let e = err_of("[network]\nstandard_ports = { extend = [70000] }\n");
        assert!(e.message.contains("too large"), "{e}");
        assert_eq!((e.line, e.column), (2, 30), "{e}");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let text = "version = 1\n[alerts\n";
        let e = err_of(text);
        assert_eq!((e.origin.as_str(), e.line), ("p.toml", 2), "{e}");
        assert!(e.to_string().starts_with("p.toml:2:"), "{e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }

    #[test]
    fn unknown_keys_are_errors_at_their_position() {
        let text = edited("trace_len = 32", "trace_len = 32\ncooldwn = \"5s\"");
        let e = err_of(&text);
        assert_eq!(e.line, line_of(&text, "cooldwn"), "{e}");
        assert_eq!(e.column, 1, "{e}");
        assert!(e.message.contains("cooldwn"), "{e}");
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let text = edited("cooldown = \"60s\"", "cooldown = \"60 parsecs\"");
        let e = err_of(&text);
        assert_eq!((e.line, e.column), (line_of(&text, "parsecs"), 12), "{e}");
        assert!(e.message.contains("unknown time unit"), "{e}");

        let text = edited("\"/etc/shadow\",", "\"etc/shadow\",");
        let e = err_of(&text);
        assert_eq!(e.line, line_of(&text, "\"etc/shadow\""), "{e}");
        assert!(e.message.contains("must start with"), "{e}");

        let text = edited("allow = [", "allow = [\"10.0.0.0/33\",");
        let e = err_of(&text);
        assert!(e.message.contains("prefix length"), "{e}");
        assert_eq!(e.column, 10, "{e}");

        let text = edited("threshold = 1.0", "threshold = -1.0");
        assert!(err_of(&text).message.contains("between"));

        let text = edited(
            "standard_ports = [53, 80, 443]",
            "standard_ports = [53, 80, 70000]",
        );
        let e = err_of(&text);
        assert!(e.message.contains("too large"), "{e}");
        assert_eq!(e.column, 27, "{e}");
    }

    #[test]
    fn policies_written_before_families_and_scans_still_load_with_the_defaults() {
        // The keys this version added, cut out as a policy file copied earlier lacks them.
        let start = DEFAULT_POLICY_TOML.find("quiet_write_areas").unwrap();
        let end = DEFAULT_POLICY_TOML.find("[network]").unwrap();
        let mut old = DEFAULT_POLICY_TOML[..start].to_string();
        old.push_str(&DEFAULT_POLICY_TOML[end..]);
        for key in [
            "scan_min_destinations",
            "scan_window",
            "ephemeral_from",
            "incident_window",
        ] {
            old = old
                .lines()
                .filter(|l| !l.starts_with(key))
                .collect::<Vec<_>>()
                .join("\n");
        }
        let p = Policy::from_toml_str(&old, "old.toml").unwrap();
        let b = Policy::builtin();
        assert_eq!(p.families, b.families);
        assert_eq!(p.quiet_write_areas, b.quiet_write_areas);
        assert_eq!(p.network.scan_min_destinations, 8);
        assert!(!b.families.is_empty());
    }

    #[test]
    fn family_globs_are_checked_where_they_are_written() {
        let text = edited("vcs = [\"git\",", "vcs = [\"gi/t\",");
        let e = err_of(&text);
        assert_eq!(e.line, line_of(&text, "gi/t"), "{e}");
        assert!(e.message.contains("family vcs"), "{e}");
        let text = edited("quiet_write_areas = [", "quiet_write_areas = [\"tmp\", ");
        assert!(err_of(&text).message.contains("write area `tmp`"));
    }

    #[test]
    fn missing_sections_and_wrong_versions_are_refused() {
        let text = DEFAULT_POLICY_TOML.replace("[ptrace]", "[ptrace_]");
        assert!(err_of(&text).message.contains("ptrace"));
        let e = err_of(&edited("version = 1", "version = 2"));
        assert!(e.message.contains("unsupported policy version 2"), "{e}");
    }

    #[test]
    fn allow_entries_cover_ips_cidrs_names_and_ports() {
        let a = parse_allow("10.0.0.0/8:443").unwrap();
        assert!(a.allows("10.1.2.3".parse().unwrap(), Some(443)));
        assert!(!a.allows("10.1.2.3".parse().unwrap(), Some(80)));
        assert!(!a.allows("11.0.0.1".parse().unwrap(), Some(443)));
        let a = parse_allow("[::1]:8080").unwrap();
        assert!(a.allows("::1".parse().unwrap(), Some(8080)));
        let a = parse_allow("127.0.0.1").unwrap();
        assert!(a.allows("::ffff:127.0.0.1".parse().unwrap(), Some(1)));
        let a = parse_allow("*:443").unwrap();
        assert!(a.allows("8.8.8.8".parse().unwrap(), Some(443)));
        assert!(parse_allow("*").is_err());
        assert!(matches!(
            parse_allow("*.example.com").unwrap().host,
            AllowHost::Name { suffix: true, .. }
        ));
        assert!(parse_allow("bad host!").is_err());
        assert!(parse_allow("1.2.3.4:0").is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration_ns("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration_ns("2m").unwrap(), 120_000_000_000);
        assert_eq!(parse_duration_ns("3").unwrap(), 3_000_000_000);
        assert!(parse_duration_ns("x").is_err());
        assert!(parse_duration_ns("1y").is_ok());
        assert!(parse_duration_ns("1fortnight").is_err());
        assert_eq!(parse_duration("1d").unwrap().as_secs(), 86_400);
        assert_eq!(parse_duration("0.5").unwrap().as_millis(), 500);
        assert!(parse_duration("99999999999999999999999h").is_err());
        assert!(parse_duration("1e400").is_err());
        assert!(parse_duration_ns("999999y").is_err());
    }
}
