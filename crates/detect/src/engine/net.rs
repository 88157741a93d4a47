//! L4 egress (`UNKNOWN_DESTINATION`, `NET_EGRESS_BURST`), the network side of L3, and
//! `DNS_ANOMALY`.

use super::*;
use crate::policy::AllowHost;
use proctor_model::{DnsAnswer, TlsSni};
use std::collections::BTreeSet;

/// Queries remembered while their answers may come.
const MAX_QUERIES: usize = 1024;
/// Addresses remembered with the name they were resolved from.
const MAX_NAMES: usize = 8192;
/// How long a query waits for its answer (resolvers retry within a few seconds).
const QUERY_WAIT_NS: u64 = 30 * NS;

/// The names the tree resolved, from its own DNS traffic as the kernel saw it. An answer counts
/// only when it answers a query the tree sent: same transaction id and name, from the server
/// the query went to, once per query (an answer nobody asked for, e.g. one the agent sent to
/// itself from a socket bound to port 53, names nothing). The newest answer for an address wins.
#[derive(Debug, Default)]
pub(super) struct ResolvedNames {
    /// (txid, lowercase name, server) -> when asked.
    queries: HashMap<(u16, String, String), u64>,
    query_order: VecDeque<(u16, String, String)>,
    by_ip: HashMap<IpAddr, String>,
    ip_order: VecDeque<IpAddr>,
}

fn server_key(a: &SockAddr) -> String {
    let ip = a.addr.as_deref().and_then(|s| s.parse::<IpAddr>().ok());
    match ip {
        Some(ip) => dest_key(canonical_ip(ip), a.port),
        None => format!(
            "{}:{}",
            a.addr.as_deref().unwrap_or("?"),
            a.port.unwrap_or(0)
        ),
    }
}

impl ResolvedNames {
    pub(super) fn query(&mut self, d: &Dns, ts: u64) {
        let key = (
            d.txid,
            lossy(d.qname.as_bytes()).to_ascii_lowercase(),
            server_key(&d.server),
        );
        if self.queries.insert(key.clone(), ts).is_none() {
            self.query_order.push_back(key);
        }
        while self.query_order.len() > MAX_QUERIES {
            if let Some(k) = self.query_order.pop_front() {
                self.queries.remove(&k);
            }
        }
    }

    pub(super) fn answer(&mut self, d: &DnsAnswer, ts: u64) {
        let name = lossy(d.qname.as_bytes()).to_ascii_lowercase();
        let key = (d.txid, name.clone(), server_key(&d.server));
        // A query takes one answer: a second one (a forgery racing the resolver, or replayed
        // later) names nothing.
        let asked = self
            .queries
            .remove(&key)
            .is_some_and(|t| t <= ts && ts.saturating_sub(t) <= QUERY_WAIT_NS);
        if !asked {
            return;
        }
        for a in &d.addrs {
            let Ok(ip) = a.parse::<IpAddr>() else {
                continue;
            };
            let ip = canonical_ip(ip);
            if self.by_ip.insert(ip, name.clone()).is_none() {
                self.ip_order.push_back(ip);
            }
        }
        while self.ip_order.len() > MAX_NAMES {
            if let Some(ip) = self.ip_order.pop_front() {
                self.by_ip.remove(&ip);
            }
        }
    }

    /// The name `ip` was resolved from, if the tree resolved it.
    pub(super) fn name_of(&self, ip: IpAddr) -> Option<&str> {
        self.by_ip.get(&canonical_ip(ip)).map(String::as_str)
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

/// The address and port of a destination key (`addr:port`, `[v6]:port`).
fn split_key(k: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = k.rsplit_once(':')?;
    let a = a.trim_start_matches('[').trim_end_matches(']');
    Some((a.parse().ok()?, p.parse().ok()?))
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

/// How long an unknown TCP destination waits for its ClientHello's server name.
const SNI_WAIT_NS: u64 = 2 * NS;

/// An unknown destination held for its TLS server name.
#[derive(Debug)]
pub(super) struct PendingSni {
    deadline: u64,
    ip: IpAddr,
    port: Option<u16>,
    key: String,
    rec: Record,
    alert: Alert,
}

/// Hellos kept for a connect not read yet, at most.
const EARLY_SNI_MAX: usize = 1024;

/// A ClientHello read before the connect it belongs to, kept [`SNI_WAIT_NS`] for it.
#[derive(Debug)]
pub(super) struct EarlySni {
    key: String,
    name: String,
    rec: Record,
}

/// Unknown destinations of one tool call (chain root), for NET_SCAN.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Distinct unknown destinations in the window before a scan is declared: (ts, key).
    recent: VecDeque<(u64, String)>,
    /// The scan under way, once declared.
    active: Option<ScanAgg>,
}

#[derive(Debug)]
pub(super) struct ScanAgg {
    first_ns: u64,
    last_ns: u64,
    dests: HashSet<String>,
    ports: BTreeSet<u16>,
    lo: IpAddr,
    hi: IpAddr,
    /// The record that declared it, and the last one seen.
    first: Record,
    last: Record,
}

impl ScanAgg {
    fn describe(&self) -> String {
        let ports: Vec<String> = self.ports.iter().take(12).map(|p| p.to_string()).collect();
        let more = self.ports.len().saturating_sub(12);
        format!(
            "{} destinations, {} ports ({}{}), addresses {}..{}, over {:.1}s",
            self.dests.len(),
            self.ports.len(),
            ports.join(","),
            if more > 0 {
                format!(",... +{more}")
            } else {
                String::new()
            },
            self.lo,
            self.hi,
            self.last_ns.saturating_sub(self.first_ns) as f64 / NS as f64
        )
    }
}

/// A connect or send as egress: where to, and how many connects it stands for (a counted
/// repeat, docs/kernel.md "Repeated connects": `count` of them, the last at `last_ts`).
pub(super) struct Egress<'a> {
    pub dest: &'a SockAddr,
    pub protocol: &'a str,
    pub count: u64,
    pub last_ts: u64,
}

impl Engine {
    /// Close the scans idle for a whole window (all of them with `now` = u64::MAX): one alert
    /// each with the totals.
    pub(super) fn close_scans(&mut self, now: u64, out: &mut Vec<(String, Alert)>) {
        let window = self.policy.network.scan_window_ns;
        let done: Vec<u32> = self
            .scans
            .iter()
            .filter(|(_, s)| {
                s.active
                    .as_ref()
                    .is_some_and(|a| now == u64::MAX || a.last_ns.saturating_add(window) <= now)
            })
            .map(|(k, _)| *k)
            .collect();
        for root in done {
            let Some(agg) = self.scans.get_mut(&root).and_then(|s| s.active.take()) else {
                continue;
            };
            let s = format!(
                "scan by the tool call of pid {root} ended: {}",
                agg.describe()
            );
            let mut a = self.alert(
                &agg.last,
                "L4",
                "NET_SCAN",
                agg.dests.len() as f64,
                s,
                vec![agg.first.clone(), agg.last.clone()],
            );
            a.count = agg.dests.len() as u64;
            out.push((format!("L4 scan end {root} {}", agg.first_ns), a));
        }
    }

    /// An unknown destination: part of a scan (true: no alert of its own), or not.
    fn scan_step(
        &mut self,
        r: &Record,
        ip: IpAddr,
        port: Option<u16>,
        key: &str,
        out: &mut Vec<(String, Alert)>,
    ) -> bool {
        let root = self.chain_root(r.pid);
        let window = self.policy.network.scan_window_ns;
        let min = self.policy.network.scan_min_destinations;
        let ts = r.ts_ns;
        let scan = self.scans.entry(root).or_default();
        if let Some(agg) = &mut scan.active {
            agg.last_ns = ts;
            agg.dests.insert(key.to_string());
            agg.ports.extend(port);
            agg.lo = agg.lo.min(ip);
            agg.hi = agg.hi.max(ip);
            agg.last = r.clone();
            return true;
        }
        while scan
            .recent
            .front()
            .is_some_and(|(t, _)| t.saturating_add(window) <= ts)
        {
            scan.recent.pop_front();
        }
        if !scan.recent.iter().any(|(_, k)| k == key) {
            scan.recent.push_back((ts, key.to_string()));
        }
        if scan.recent.len() < min {
            return false;
        }
        let first_ns = scan.recent.front().map_or(ts, |x| x.0);
        let mut agg = ScanAgg {
            first_ns,
            last_ns: ts,
            dests: HashSet::new(),
            ports: BTreeSet::new(),
            lo: ip,
            hi: ip,
            first: r.clone(),
            last: r.clone(),
        };
        for (_, k) in scan.recent.drain(..) {
            if let Some((a, p)) = split_key(&k) {
                agg.lo = agg.lo.min(a);
                agg.hi = agg.hi.max(a);
                agg.ports.insert(p);
            }
            agg.dests.insert(k);
        }
        let s = format!(
            "pid {} and its tool call (pid {root}) reached {} unknown destinations within {:.0}s:              a scan ({}); its further destinations are counted here, not alerted one by one",
            r.pid,
            agg.dests.len(),
            window as f64 / NS as f64,
            agg.describe()
        );
        let div = agg.dests.len() as f64;
        let a = self.alert(r, "L4", "NET_SCAN", div, s, vec![r.clone()]);
        out.push((format!("L4 scan {root} {first_ns}"), a));
        if let Some(scan) = self.scans.get_mut(&root) {
            scan.active = Some(agg);
        }
        true
    }

    pub(super) fn is_system_resolver(&self, ip: IpAddr) -> bool {
        self.host
            .resolvers
            .iter()
            .any(|&r| canonical_ip(r) == canonical_ip(ip))
    }

    /// A packet socket (AF_PACKET) of the tree: the frames it sends pass below every
    /// network hook, so the socket (recorded when created) or a send on it is the alert, once
    /// per process, learning or not: no destination can be judged.
    pub(super) fn on_packet_socket(
        &mut self,
        r: &Record,
        s: &proctor_model::Send,
        out: &mut Vec<(String, Alert)>,
    ) {
        let label = self.label_of(r);
        let what = if s.syscall == "socket" {
            "created a packet socket".to_string()
        } else {
            format!("sent {} bytes on a packet socket ({})", s.bytes, s.syscall)
        };
        let summary = format!(
            "pid {} ({label}) {what}, {}: link-layer frames leave below every network hook, \
             to no destination proctor can judge",
            r.pid, s.protocol
        );
        let a = self.alert(r, "L4", "RAW_PACKET_SOCKET", 1.0, summary, vec![r.clone()]);
        out.push((format!("L4 packet {}", r.pid), a));
    }

    /// A connect in an address family that is neither IP nor unix (a vsock to the VM's host or
    /// another VM, TIPC, RDS, Bluetooth, ...): no `[network]` rule names such a destination,
    /// and no cgroup hook sees it, so it is L4 `UNKNOWN_DESTINATION` from the first record, then
    /// learned by protocol and address (a sandbox's own channel to its host, reached in the
    /// window, is quiet after).
    pub(super) fn on_other_family(
        &mut self,
        r: &Record,
        c: &proctor_model::Connect,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        let to = c
            .dest
            .addr
            .as_deref()
            .unwrap_or("an address proctor does not parse");
        let key = format!("{} {to}", c.protocol);
        if self.base.destinations.contains(&key) {
            return;
        }
        if learning {
            self.base.destinations.insert(key.clone());
        }
        let label = self.label_of(r);
        let what = if c.protocol.starts_with("vsock") {
            " (a virtual machine's socket: context 2 is its host, others are VMs)"
        } else {
            ""
        };
        let s = format!(
            "pid {} ({label}) connected over {} to {to}{what}: not an IP destination, where no \
             [network] rule or egress hook reaches",
            r.pid, c.protocol
        );
        let a = self.alert(r, "L4", "UNKNOWN_DESTINATION", 1.0, s, vec![r.clone()]);
        out.push((format!("L4 {key}"), a));
    }

    /// A door the tree opened to the network, or someone coming through it (`inbound`
    /// records). A TCP listen on an address that is not loopback is a new edge of the causal
    /// graph, `listen LABEL -> tcp/any` (the wildcard) or `tcp/SCOPE`, learned in the window and
    /// otherwise L3 drift evidence, as a new kind of connect is. A connection accepted from a
    /// peer that is not loopback (the kernel leaves loopback out) is `INBOUND_CONNECTION`: a
    /// host elsewhere reached a port the agent's tree listens on, which is how a bind shell or
    /// a file server the agent was told to start (`python3 -m http.server` binds every
    /// address) hands the host to whoever connects, with no egress to judge. Judged from the
    /// first record, as a session server is, then quiet for that program and port once learned
    /// in the window (a dev server the developer opens from another machine).
    pub(super) fn on_inbound(
        &mut self,
        r: &Record,
        i: &proctor_model::Inbound,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        let addr = |a: &SockAddr| a.addr.as_deref().and_then(|a| a.parse::<IpAddr>().ok());
        let Some(local) = addr(&i.local).map(canonical_ip) else {
            return;
        };
        let port = i.local.port.unwrap_or(0);
        let label = self.label_of(r);
        let Some(peer) = &i.peer else {
            let to = if local.is_unspecified() {
                "any"
            } else {
                scope(local)
            };
            let edge = format!("listen {} -> {}/{to}", self.node(&label), i.protocol);
            if learning {
                self.base.edges.insert(edge);
            } else if self.policy.structural_drift && !self.base.edges.contains(&edge) {
                let s = format!(
                    "new network edge `{edge}` (not in the baseline): pid {} ({label}) listens \
                     on {}",
                    r.pid,
                    dest_key(local, Some(port))
                );
                let a = self.alert(r, "L3", "STRUCTURAL_DRIFT", 0.5, s, vec![r.clone()]);
                self.evidence(format!("L3 {edge}"), a);
            }
            return;
        };
        let Some(from) = addr(peer).map(canonical_ip) else {
            return;
        };
        // The kernel leaves loopback peers out; a log written by another tool may not.
        if from.is_loopback() {
            return;
        }
        let learned = format!("{label}:{port}");
        if self.base.inbound.contains(&learned) {
            return;
        }
        if learning {
            self.base.inbound.insert(learned.clone());
        }
        let s = format!(
            "pid {} ({label}) accepted a {} connection from {} on {}: a host other than this \
             one reached a port the agent's tree listens on, and what it sends in or takes out \
             passes no egress check",
            r.pid,
            i.protocol,
            dest_key(from, peer.port),
            dest_key(local, Some(port)),
        );
        let a = self.alert(r, "L4", "INBOUND_CONNECTION", 1.5, s, vec![r.clone()]);
        out.push((format!("L4 inbound {learned}"), a));
    }

    pub(super) fn on_egress(
        &mut self,
        r: &Record,
        shared: Option<&Arc<Record>>,
        e: Egress<'_>,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        let Egress {
            dest,
            protocol,
            count,
            last_ts,
        } = e;
        if !matches!(dest.family, Family::Inet | Family::Inet6) {
            return;
        }
        let Some(ip) = dest.addr.as_deref().and_then(|a| a.parse::<IpAddr>().ok()) else {
            return;
        };
        let ip = canonical_ip(ip);
        let ts = r.ts_ns;
        let label = self.label_of(r);
        // The machine's credentials, a connect away: judged before anything is learned.
        let n = &self.policy.network;
        if n.metadata_services.iter().any(|m| m.allows(ip, dest.port))
            && !n.allow.iter().any(|a| a.allows(ip, dest.port))
        {
            let key = dest_key(ip, dest.port);
            let s = format!(
                "pid {} ({label}) {protocol} to {key}: {}, which hands out the machine's role \
                 credentials (never learned; only [network].allow permits it)",
                r.pid,
                crate::incident::METADATA_SERVICE
            );
            let a = self.alert(r, "L4", "UNKNOWN_DESTINATION", 2.0, s, vec![r.clone()]);
            out.push((format!("L4 metadata {key}"), a));
            return;
        }
        // A trusted package transaction fetching from the distribution's mirrors.
        if !learning && self.trusted_tx(r.pid).is_some() {
            return;
        }
        // A loopback server on a port picked at random (a test server, an API stub restarted
        // per session) is learned per process and address: once the profile saw the process
        // reach two such ports there, any ephemeral port there is known. One port is not enough:
        // an agent's own connect to a sink on another random port must stay unknown.
        // Built only where it is used: learning, and a destination nothing else allows.
        let ephemeral = || {
            (scope(ip) == "loopback"
                && dest.port.unwrap_or(0) >= self.policy.network.ephemeral_from)
                .then(|| {
                    let prefix = format!("{label}@{}:", dest_key(ip, None).trim_end_matches(":0"));
                    (format!("{prefix}{}", dest.port.unwrap_or(0)), prefix)
                })
        };
        // Rate: events in the last second. A counted record (the kernel's repeats of one
        // connect, docs/kernel.md "Repeated connects") stands for `count` connects, the last at
        // `last_ts`; its reports are at most about a second apart, so all are taken as recent.
        let at = last_ts.max(ts);
        self.egress.push_back((at, count));
        self.egress_n += count;
        while let Some(&(t, n)) = self.egress.front() {
            if t.saturating_add(NS) > at {
                break;
            }
            self.egress_n -= n;
            self.egress.pop_front();
        }
        self.egress_recs.push_back(share(r, shared));
        if self.egress_recs.len() > MAX_TRIGGER {
            self.egress_recs.pop_front();
        }
        if let Phase::Learning {
            start: Some(s),
            egress_bins,
            ..
        } = &mut self.phase
        {
            *egress_bins.entry(at.saturating_sub(*s) / NS).or_default() += count;
        }
        if learning {
            // What this learns depends on the process label, destination and protocol only: a
            // storm to one server is learned once, not formatted again for every record.
            let seen = {
                if self.learned_egress.len() >= MAX_REMEMBERED {
                    self.learned_egress.clear();
                }
                !self
                    .learned_egress
                    .insert(digest(&(&*label, ip, dest.port, protocol)))
            };
            if !seen {
                self.base.destinations.insert(dest_key(ip, dest.port));
                let eph = ephemeral().map(|(k, _)| k);
                self.base.ephemeral.extend(eph);
                let edge = format!("connect {} -> {protocol}/{}", self.node(&label), scope(ip));
                self.base.edges.insert(edge);
            }
            return;
        }
        let key = dest_key(ip, dest.port);
        let edge = format!("connect {} -> {protocol}/{}", self.node(&label), scope(ip));
        let allowed = self
            .policy
            .network
            .allow
            .iter()
            .any(|a| a.allows(ip, dest.port))
            || self.is_resolved_allowed(ip, dest.port)
            || self
                .names
                .name_of(ip)
                .is_some_and(|n| self.host_name_allowed(n, dest.port))
            || (dest.port == Some(53) && self.is_system_resolver(ip))
            || self.base.destinations.contains(&key)
            || ephemeral().is_some_and(|(_, prefix)| {
                self.base
                    .ephemeral
                    .iter()
                    .filter(|k| k.starts_with(prefix.as_str()))
                    .nth(1)
                    .is_some()
            });
        // Written only into an alert: most egress raises none.
        let who = || format!("pid {} ({label})", r.pid);
        if !allowed {
            let a = self.unknown_destination(r, ip, dest.port, protocol, &key, &who());
            // A TLS connection may name an allowed host in its ClientHello, which comes after
            // the connect: wait for it a moment before alerting.
            if self.awaits_sni(r, dest.port) {
                let p = PendingSni {
                    deadline: ts.saturating_add(SNI_WAIT_NS),
                    ip,
                    port: dest.port,
                    key: key.clone(),
                    rec: r.clone(),
                    alert: a,
                };
                match self.take_early_sni(r.pid, &key, r.ts_ns) {
                    Some(e) => self.settle_sni(p, &e.name, e.rec, out),
                    None => self.pending_sni.push(p),
                }
            } else if !self.scan_step(r, ip, dest.port, &key, out) {
                out.push((format!("L4 dest {key}"), a));
            }
        }
        let n = &self.policy.network;
        let b = &self.base.egress;
        let threshold = (b.mean + n.burst_sigma * b.sd).max(n.burst_min_per_s as f64);
        let threshold = threshold.min(n.burst_cap_per_s as f64);
        let rate = self.egress_n as f64;
        if rate > threshold {
            if !self.in_burst {
                self.in_burst = true;
                let s = format!(
                    "{}: {rate} connects/sends in one second, above {threshold:.1}/s \
                     (baseline {:.1}/s ± {:.1}, cap {}/s)",
                    who(),
                    b.mean,
                    b.sd,
                    n.burst_cap_per_s
                );
                let trig = self.egress_recs.iter().map(|r| Record::clone(r)).collect();
                let a = self.alert(r, "L4", "NET_EGRESS_BURST", rate / threshold, s, trig);
                out.push(("L4 burst".into(), a));
            }
        } else {
            self.in_burst = false;
        }
        if self.policy.structural_drift
            && !self.base.edges.contains(&edge)
            && !self
                .base
                .edges
                .contains(&format!("connect {label} -> {protocol}/{}", scope(ip)))
        {
            // A new destination alerts on L4; a known one reached by another process is not
            // new egress.
            let s = format!("new network edge `{edge}` (not in the baseline) to {key}");
            let a = self.alert(r, "L3", "STRUCTURAL_DRIFT", 0.5, s, vec![r.clone()]);
            self.evidence(format!("L3 {edge}"), a);
        }
    }

    fn unknown_destination(
        &self,
        r: &Record,
        ip: IpAddr,
        port: Option<u16>,
        protocol: &str,
        key: &str,
        who: &str,
    ) -> Alert {
        let mut reasons = vec!["not allowed by the policy nor seen in the baseline".to_string()];
        let mut div = 1.0;
        if let Some(p) = port {
            if !self.policy.network.standard_ports.contains(&p) {
                div += 0.5;
                reasons.push(format!("non-standard port {p}"));
            }
        }
        let name = self.names.name_of(ip);
        let resolved_recently = self
            .last_dns
            .is_some_and(|t| r.ts_ns.saturating_sub(t) <= self.policy.network.resolve_window_ns);
        if scope(ip) == "public" && !resolved_recently && name.is_none() {
            div += 0.5;
            reasons.push("raw IP with no DNS query before it".into());
        }
        // The name the tree resolved this address from, as its own DNS answer said.
        let dest = match name {
            Some(n) => format!("{key} ({n})"),
            None => key.to_string(),
        };
        let s = format!("{who} {protocol} to {dest}: {}", reasons.join("; "));
        self.alert(r, "L4", "UNKNOWN_DESTINATION", div, s, vec![r.clone()])
    }

    /// Is there a host name an SNI could match (allowlist names, the profile's hosts) and is
    /// this a TCP connect that may carry TLS?
    fn awaits_sni(&self, r: &Record, port: Option<u16>) -> bool {
        matches!(r.event, Event::Connect(_))
            && port.is_some()
            && (!self.base.hosts.is_empty()
                || self
                    .policy
                    .network
                    .allow
                    .iter()
                    .any(|a| matches!(a.host, AllowHost::Name { .. })))
    }

    /// Did an allowed host name (on this port) resolve to `ip`?
    fn is_resolved_allowed(&self, ip: IpAddr, port: Option<u16>) -> bool {
        let ip = crate::policy::canonical_ip(ip);
        self.resolved.contains(&(ip, None)) || self.resolved.contains(&(ip, port))
    }

    /// Does a TLS server name match `[network].allow` (with its port) or the profile's hosts?
    fn host_allowed(&self, name: &str, port: Option<u16>) -> bool {
        self.base.hosts.contains(name) || self.host_name_allowed(name, port)
    }

    /// Does a host name match a host-name entry of `[network].allow` (with its port)?
    fn host_name_allowed(&self, name: &str, port: Option<u16>) -> bool {
        self.policy.network.allow.iter().any(|a| match &a.host {
            AllowHost::Name { name: n, suffix } => {
                (a.port.is_none() || a.port == port)
                    && (name == n || (*suffix && name.ends_with(&format!(".{n}"))))
            }
            _ => false,
        })
    }

    /// The ClientHello of a held connection: an allowed name clears it (this connection only:
    /// the name is the agent's word, so the address is not trusted for later ones); any other
    /// name makes the alert go out at once, naming it. The hello belongs to the latest held
    /// connect of the process to that destination before it (kernel time); one with none was
    /// read before its connect (the two come on different rings) and waits for it.
    pub(super) fn on_sni(&mut self, r: &Record, s: &TlsSni, out: &mut Vec<(String, Alert)>) {
        let Some(ip) = s
            .dest
            .addr
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok())
        else {
            return;
        };
        let key = dest_key(canonical_ip(ip), s.dest.port);
        let name = lossy(s.sni.as_bytes()).to_ascii_lowercase();
        let held = self
            .pending_sni
            .iter()
            .enumerate()
            .filter(|(_, p)| p.rec.pid == r.pid && p.key == key && p.rec.ts_ns <= r.ts_ns)
            .max_by_key(|(_, p)| p.rec.ts_ns)
            .map(|(i, _)| i);
        match held {
            Some(i) => {
                let p = self.pending_sni.remove(i);
                self.settle_sni(p, &name, r.clone(), out);
            }
            None => {
                let horizon = r.ts_ns.saturating_sub(SNI_WAIT_NS);
                self.early_sni.retain(|e| e.rec.ts_ns >= horizon);
                if self.early_sni.len() >= EARLY_SNI_MAX {
                    self.early_sni.pop_front();
                }
                self.early_sni.push_back(EarlySni {
                    key,
                    name,
                    rec: r.clone(),
                });
            }
        }
    }

    /// The earliest hello of `pid` to `key` sent at or after a connect at `ts`, read before it.
    fn take_early_sni(&mut self, pid: u32, key: &str, ts: u64) -> Option<EarlySni> {
        let i = self
            .early_sni
            .iter()
            .enumerate()
            .filter(|(_, e)| e.rec.pid == pid && e.key == key && e.rec.ts_ns >= ts)
            .min_by_key(|(_, e)| e.rec.ts_ns)
            .map(|(i, _)| i)?;
        self.early_sni.remove(i)
    }

    /// A held connection met its hello (`name`, in record `hello`).
    fn settle_sni(
        &mut self,
        p: PendingSni,
        name: &str,
        hello: Record,
        out: &mut Vec<(String, Alert)>,
    ) {
        if self.host_allowed(name, p.port) {
            return;
        }
        let mut a = p.alert;
        a.summary = format!("{}; TLS server name {name} is not allowed", a.summary);
        a.trigger.push(hello);
        if !self.scan_step(&p.rec, p.ip, p.port, &p.key, out) {
            out.push((format!("L4 dest {}", p.key), a));
        }
    }

    /// Held connections whose ClientHello did not come by `now` (u64::MAX: all) alert.
    pub(super) fn expire_sni(&mut self, now: u64, out: &mut Vec<(String, Alert)>) {
        let (due, keep): (Vec<PendingSni>, Vec<PendingSni>) = std::mem::take(&mut self.pending_sni)
            .into_iter()
            .partition(|p| now == u64::MAX || p.deadline <= now);
        self.pending_sni = keep;
        for p in due {
            if !self.scan_step(&p.rec, p.ip, p.port, &p.key, out) {
                out.push((format!("L4 dest {}", p.key), p.alert));
            }
        }
    }

    pub(super) fn domain_expected(&self, qname: &str, domain: &str) -> bool {
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

    pub(super) fn on_dns(
        &mut self,
        r: &Record,
        d: &Dns,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        self.last_dns = Some(r.ts_ns);
        let qname = lossy(d.qname.as_bytes()).to_ascii_lowercase();
        let domain = domain_of(&qname);
        let server = d.server.addr.clone().unwrap_or_else(|| "?".into());
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
        // The resolver and the domain are behaviour, learned while learning; a name shaped like
        // data (exfiltration in the labels) is judged from the first query.
        if learning && !tunnel {
            self.base.dns_domains.insert(domain);
            self.base.dns_servers.insert(server);
            return;
        }
        if learning {
            self.base.dns_domains.insert(domain.clone());
            self.base.dns_servers.insert(server.clone());
        }
        let server_ip = d
            .server
            .addr
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok());
        let known_server = self.host.resolvers.is_empty()
            || server_ip.is_some_and(|ip| self.is_system_resolver(ip))
            || self.base.dns_servers.contains(&server);
        if !known_server && !learning {
            reasons.push(format!("resolver {server} is not the system's"));
            key.get_or_insert_with(|| format!("DNS resolver {server}"));
        }
        if !learning && !self.domain_expected(&qname, &domain) {
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
}
