//! Incidents from alerts: pure correlation, no I/O.
//!
//! An alert joins the open incident of its tool call (its chain: the child of the agent's root
//! process that started it), or, failing that, the incident of the same agent that was last
//! active within `window_ns` (an attack often spans two tool calls: read a key, then send it).
//! Otherwise it opens a new one. Evidence (low-severity findings that are not alerts) is kept
//! per chain and attached when an incident of that chain opens or grows.
//!
//! Severity is the highest of the alerts', raised by combinations: a credential read together
//! with egress to an unknown destination (or a DNS tunnel, or a burst) is an exfiltration chain;
//! a shell together with an unknown destination is a reverse shell; persistence or a
//! write-then-exec together with another high alert is critical too.

use proctor_model::{
    severity_rank, Alert, Incident, IncidentEvent, INCIDENT_CLOSED, INCIDENT_OPEN,
};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Timeline entries kept per incident.
const MAX_TIMELINE: usize = 64;
/// Evidence kept per chain until an incident needs it.
const MAX_EVIDENCE: usize = 16;

/// The severity of one alert, from its kind (and, for DNS, whether it looks like tunnelling).
pub fn alert_severity(a: &Alert) -> &'static str {
    match a.kind.as_str() {
        "DRIFT_DETECTED" => "low",
        "STRUCTURAL_DRIFT" if a.divergence < 1.0 => "low",
        "UNKNOWN_DESTINATION" if a.summary.contains(METADATA_SERVICE) => "high",
        "STRUCTURAL_DRIFT" | "UNKNOWN_DESTINATION" | "NET_EGRESS_BURST" | "RISKY_BINARY" => {
            "medium"
        }
        "DNS_ANOMALY" if a.summary.contains("tunnelling") => "high",
        "DNS_ANOMALY" | "INTENT_MISMATCH" | "IO_URING_SETUP" => "medium",
        "OUTSIDE_SIGNAL" if !a.summary.contains("a security or logging service") => "medium",
        _ => "high",
    }
}

/// What an `UNKNOWN_DESTINATION` summary says of a cloud instance metadata service.
pub const METADATA_SERVICE: &str = "a cloud instance metadata service";

/// What a `PRIVILEGED_CALL` summary of an exec that raised the effective uid says before the
/// real uid.
pub const SETUID_EXEC: &str = "(set-user-ID; real uid";
/// What a `PRIVILEGED_CALL` summary of a set-group-ID exec says ([`SETUID_EXEC`]'s kin).
pub const SETGID_EXEC: &str = "(set-group-ID; real gid";

/// What a `CAUSAL_CYCLE_DETECTED` or `FILELESS_EXEC` summary of code loaded without an exec (a
/// file mapped executable: a library preloaded or opened with dlopen) says.
pub const MAPPED_EXEC: &str = "mapped executable, no exec";

/// What a `PERSISTENCE` summary of a program of the system shadowed on PATH says.
pub const SHADOWING: &str = "shadowing the system's";

/// Whether the summary `s` mentions any of `marks`.
fn mentions(s: &str, marks: &[&str]) -> bool {
    marks.iter().any(|m| s.contains(m))
}

/// MITRE ATT&CK techniques an alert points at.
pub fn techniques(a: &Alert) -> Vec<&'static str> {
    let s = a.summary.as_str();
    match a.kind.as_str() {
        "LLM_AGENT_HIJACK" if s.contains("python") => vec!["T1059.006"],
        "LLM_AGENT_HIJACK" => vec!["T1059.004"],
        "STRUCTURAL_DRIFT" if s.contains("ran no ") => vec!["T1059.004"],
        // A library the tree wrote, loaded: the dynamic linker hijacked (LD_PRELOAD) or a
        // module of its own loaded into a program.
        "CAUSAL_CYCLE_DETECTED" if s.contains(MAPPED_EXEC) => vec!["T1574.006", "T1129"],
        "CAUSAL_CYCLE_DETECTED" => vec!["T1105", "T1059"],
        "FILELESS_EXEC" => vec!["T1620"],
        "SENSITIVE_FILE" if s.contains("sensitive socket") => vec!["T1610", "T1611"],
        "SENSITIVE_FILE" if s.contains("the disk device") && s.contains(" for read (") => {
            vec!["T1006"]
        }
        "SENSITIVE_FILE" if s.contains("the disk device") => vec!["T1006", "T1561.002"],
        "SENSITIVE_FILE" if s.contains("a keyboard's or mouse's input device") => {
            vec!["T1056.001"]
        }
        // Keystrokes made up and typed into the user's session: its shell runs them.
        "SENSITIVE_FILE" if s.contains("the synthetic input (uinput) device") => vec!["T1059"],
        "SENSITIVE_FILE" if s.contains("a console's screen device") => vec!["T1113"],
        "SENSITIVE_FILE"
            if mentions(
                s,
                &[
                    "the kernel's memory",
                    "/proc/kcore",
                    "/dev/mem",
                    "/dev/kmem",
                    "/dev/port",
                ],
            ) =>
        {
            vec!["T1003"]
        }
        "SENSITIVE_FILE" if s.contains("ookies") => vec!["T1539"],
        "SENSITIVE_FILE" if s.contains("Login Data") || s.contains("logins.json") => {
            vec!["T1555.003"]
        }
        "SENSITIVE_FILE" | "FILE_BLOCKED" => vec!["T1552.001"],
        "INDICATOR_REMOVAL" if s.contains(crate::engine::TIMESTOMP) => vec!["T1070.006"],
        "INDICATOR_REMOVAL" if s.contains("/var/log/") || s.contains("utmp") => {
            vec!["T1070.002"]
        }
        "INDICATOR_REMOVAL" => vec!["T1070.003"],
        "DATA_DESTRUCTION" => vec!["T1485"],
        "PERSISTENCE" if s.contains(SHADOWING) => vec!["T1574.007"],
        "PERSISTENCE" if s.contains("authorized_keys") => vec!["T1098.004"],
        "PERSISTENCE" if s.contains("cron") => vec!["T1053.003"],
        // What the kernel runs as root on an event: a crash, a module load, a device, an exec.
        "PERSISTENCE" if mentions(s, &["/proc/sys/", "/sys/kernel/", "binfmt", "sysctl"]) => {
            vec!["T1546"]
        }
        "PERSISTENCE" if s.contains("systemd") => vec!["T1543.002"],
        "PERSISTENCE" if mentions(s, &["/etc/rc", "/etc/init", "rc.local"]) => {
            vec!["T1037.004"]
        }
        "PERSISTENCE" if s.contains("grub") => vec!["T1542"],
        "PERSISTENCE" if s.contains("autostart") => vec!["T1547.013"],
        "PERSISTENCE" if s.contains("logrotate") => vec!["T1053"],
        "PERSISTENCE"
            if mentions(
                s,
                &[
                    "apt.conf",
                    "dpkg.cfg",
                    "/etc/network/if-",
                    "dhclient-",
                    "dispatcher.d",
                ],
            ) =>
        {
            vec!["T1546"]
        }
        "PERSISTENCE" if mentions(s, &["sitecustomize", "usercustomize", ".pth`"]) => {
            vec!["T1546.018"]
        }
        "PERSISTENCE"
            if mentions(
                s,
                &[
                    "sources.list",
                    "keyrings",
                    "trusted.gpg",
                    "yum.repos.d",
                    "/etc/apk/",
                ],
            ) =>
        {
            vec!["T1195.002"]
        }
        "PERSISTENCE" => vec!["T1546.004"],
        "UNKNOWN_DESTINATION" if s.contains(METADATA_SERVICE) => vec!["T1552.005"],
        "UNKNOWN_DESTINATION" | "EGRESS_BLOCKED" => vec!["T1071"],
        "NET_SCAN" => vec!["T1046"],
        "RAW_PACKET_SOCKET" => vec!["T1048", "T1095"],
        "NET_EGRESS_BURST" => vec!["T1030"],
        "DNS_ANOMALY" if s.contains("tunnelling") => vec!["T1071.004", "T1048"],
        "DNS_ANOMALY" => vec!["T1071.004"],
        "PTRACE_ATTACH_DETECTED" | "PTRACE_BLOCKED" => vec!["T1055.008"],
        "PROCESS_MEMORY_ACCESS" if s.contains("writev") || s.contains("for write") => {
            vec!["T1055"]
        }
        "PROCESS_MEMORY_ACCESS" => vec!["T1003.007"],
        "SESSION_HIJACK" if s.contains("message bus or service manager") => {
            vec!["T1569", "T1543.002"]
        }
        // A browser's debugging port: its logged-in sessions and cookies.
        "SESSION_HIJACK" if mentions(s, &["chrom", "msedge", "brave", "firefox"]) => {
            vec!["T1185"]
        }
        "SESSION_HIJACK" if mentions(s, &["ssh", "gpg-agent"]) => {
            vec!["T1563.001"]
        }
        "SESSION_HIJACK" => vec!["T1563", "T1059"],
        "OUTSIDE_SIGNAL" if s.contains("a security or logging service") => vec!["T1562.001"],
        "OUTSIDE_SIGNAL" => vec!["T1489"],
        "PRIVILEGED_CALL" => match privileged_call(s) {
            "delete_module" => vec!["T1562.001"],
            "init_module" | "finit_module" => vec!["T1547.006"],
            "kexec_load" | "kexec_file_load" => vec!["T1014"],
            "reboot" => vec!["T1529"],
            "settimeofday" | "clock_settime" | "adjtimex" | "clock_adjtime" => vec!["T1070.006"],
            "bpf" => vec!["T1014", "T1562.001"],
            "chmod" | "fchmod" | "fchmodat" | "fchmodat2" | "open" => vec!["T1548.001"],
            _ if s.contains(SETUID_EXEC) || s.contains(SETGID_EXEC) => vec!["T1548.001"],
            "setxattr" | "lsetxattr" | "fsetxattr" | "setxattrat" => vec!["T1548"],
            _ => vec!["T1564"],
        },
        "RISKY_BINARY"
            if [" -i* !-*c*`", " -[!-]*i* !-*c*`", "/dev/[tu][cd]p/*`"]
                .iter()
                .any(|r| s.contains(r)) =>
        {
            vec!["T1059.004"]
        }
        "RISKY_BINARY" if s.contains("history -c*`") => vec!["T1070.003"],
        "RISKY_BINARY"
            if s.contains("HISTFILE") || s.contains("HISTSIZE") || s.contains("history*`") =>
        {
            vec!["T1562.003"]
        }
        "RISKY_BINARY"
            if ["chmod *+*s*", "chmod *=*s*", "chmod [2467]"]
                .iter()
                .any(|r| s.contains(r)) =>
        {
            vec!["T1548.001"]
        }
        "RISKY_BINARY" if s.contains("chmod") || s.contains("`chattr`") => vec!["T1222.002"],
        "RISKY_BINARY"
            if [
                "`shutdown`",
                "`reboot`",
                "`halt`",
                "`poweroff`",
                "`telinit`",
            ]
            .iter()
            .any(|r| s.contains(r)) =>
        {
            vec!["T1529"]
        }
        "RISKY_BINARY"
            if ["iptables", "`nft`", "`ufw`", "`firewall-cmd`"]
                .iter()
                .any(|r| s.contains(r)) =>
        {
            vec!["T1562.004"]
        }
        "RISKY_BINARY" if s.contains("`auditctl`") || s.contains("`setenforce`") => {
            vec!["T1562.001"]
        }
        "RISKY_BINARY" if s.contains("`shred`") || s.contains("`wipe`") => vec!["T1485"],
        "RISKY_BINARY" if s.contains("`mknod`") || s.contains("`debugfs`") => vec!["T1006"],
        "RISKY_BINARY" if s.contains("`xclip`") || s.contains("`xsel`") => vec!["T1115"],
        "RISKY_BINARY" if s.contains("`openssl ") => vec!["T1486"],
        "RISKY_BINARY" if s.contains("`pkexec`") => vec!["T1548"],
        "RISKY_BINARY"
            if ["`gh token`", "`gcloud ", "`az "]
                .iter()
                .any(|r| s.contains(r)) =>
        {
            vec!["T1528"]
        }
        "RISKY_BINARY"
            if [" publish`", "`twine upload`", "`gem push`"]
                .iter()
                .any(|r| s.contains(r)) =>
        {
            vec!["T1567"]
        }
        "RISKY_BINARY"
            if ["`op ", "`lpass ", "`pass`", "`bw "]
                .iter()
                .any(|r| s.contains(r)) =>
        {
            vec!["T1555.005"]
        }
        "RISKY_BINARY"
            if ["`aws get-secret-value`", "`aws --with-decryption`"]
                .iter()
                .any(|r| s.contains(r)) =>
        {
            vec!["T1555.006"]
        }
        "RISKY_BINARY" if s.contains("`aws ") => vec!["T1552.001"],
        "RISKY_BINARY"
            if [
                "`secret-tool ",
                "`keyctl ",
                "`vault ",
                "`git fill`",
                "`docker-credential-",
            ]
            .iter()
            .any(|r| s.contains(r)) =>
        {
            vec!["T1555"]
        }
        "RISKY_BINARY" if s.contains("crontab") => vec!["T1053.003"],
        "RISKY_BINARY" if s.contains("base64") || s.contains("xxd") => vec!["T1140"],
        "RISKY_BINARY" if s.contains("nmap") => vec!["T1046"],
        "RISKY_BINARY" if s.contains("sudo") || s.contains(" su ") => vec!["T1548.003"],
        "RISKY_BINARY" => vec!["T1105"],
        _ => vec![],
    }
}

/// The system call a `PRIVILEGED_CALL` summary names ("pid N (x) called CALL ..." or "tried
/// CALL (refused ...").
fn privileged_call(s: &str) -> &str {
    s.split_once(") called ")
        .or_else(|| s.split_once(") tried "))
        .and_then(|(_, rest)| rest.split([' ', ':']).next())
        .unwrap_or("")
}

struct Open {
    inc: Incident,
    chains: HashSet<u32>,
    kinds: BTreeSet<String>,
}

/// Correlates the alerts of one agent into incidents.
pub struct Correlator {
    window_ns: u64,
    open: Vec<Open>,
    evidence: HashMap<u32, Vec<IncidentEvent>>,
    next: u64,
    closed: Vec<Incident>,
}

impl Correlator {
    pub fn new(window_ns: u64) -> Correlator {
        Correlator {
            window_ns,
            open: Vec::new(),
            evidence: HashMap::new(),
            next: 0,
            closed: Vec::new(),
        }
    }

    /// Keep a piece of evidence of `chain` for the incident it may join.
    pub fn evidence(&mut self, chain: u32, a: &Alert) {
        let ev = event(a, None);
        if let Some(o) = self.open.iter_mut().find(|o| o.chains.contains(&chain)) {
            push(&mut o.inc, ev);
            return;
        }
        let v = self.evidence.entry(chain).or_default();
        if v.len() < MAX_EVIDENCE {
            v.push(ev);
        }
    }

    /// File an alert (its `id` and `severity` set): sets `a.incident` and returns the incident
    /// as it is now. `root` is the chain's root pid and argv.
    pub fn alert(&mut self, a: &mut Alert, chain: u32, root: (u32, String)) -> Incident {
        let ts = a.ts_ns;
        let idx = self
            .open
            .iter()
            .position(|o| o.chains.contains(&chain))
            .or_else(|| {
                self.open
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| ts.saturating_sub(o.inc.updated_ns) <= self.window_ns)
                    .max_by_key(|(_, o)| o.inc.updated_ns)
                    .map(|(i, _)| i)
            });
        let idx = match idx {
            Some(i) => i,
            None => {
                self.next += 1;
                self.open.push(Open {
                    inc: Incident {
                        id: format!("inc-{:x}-{}", ts, self.next),
                        agent_id: a.agent_id.clone(),
                        opened_ns: ts,
                        updated_ns: ts,
                        severity: "info".into(),
                        title: String::new(),
                        techniques: Vec::new(),
                        root_pid: root.0,
                        root_argv: root.1,
                        alert_ids: Vec::new(),
                        timeline: Vec::new(),
                        timeline_dropped: 0,
                        status: INCIDENT_OPEN.into(),
                        ..Incident::default()
                    },
                    chains: HashSet::new(),
                    kinds: BTreeSet::new(),
                });
                self.open.len() - 1
            }
        };
        let o = &mut self.open[idx];
        if o.chains.insert(chain) {
            for ev in self.evidence.remove(&chain).unwrap_or_default() {
                push(&mut o.inc, ev);
            }
        }
        a.incident = Some(o.inc.id.clone());
        o.inc.updated_ns = o.inc.updated_ns.max(ts);
        o.inc.alert_ids.push(a.id.clone());
        push(&mut o.inc, event(a, Some(a.id.clone())));
        let mut tech: BTreeSet<String> = o.inc.techniques.iter().cloned().collect();
        tech.extend(techniques(a).into_iter().map(String::from));
        o.inc.techniques = tech.into_iter().collect();
        o.kinds.insert(a.kind.clone());
        if severity_rank(&a.severity) > severity_rank(&o.inc.severity) {
            o.inc.severity = a.severity.clone();
        }
        let (sev, title) = rate(&o.kinds, &o.inc);
        if severity_rank(sev) > severity_rank(&o.inc.severity) {
            o.inc.severity = sev.into();
        }
        o.inc.title = title;
        let keep_id = o.inc.id.clone();
        let snapshot = o.inc.clone();
        self.close_idle(ts, Some(&keep_id));
        snapshot
    }

    /// Close the incidents idle for ten windows at `now` (except `keep`): later alerts open new
    /// ones. They are returned by [`Correlator::take_closed`].
    pub fn close_idle(&mut self, now: u64, keep: Option<&str>) {
        let horizon = self.window_ns.saturating_mul(10);
        let idle = |o: &Open| {
            keep != Some(o.inc.id.as_str()) && now.saturating_sub(o.inc.updated_ns) > horizon
        };
        // Called for every record: most find nothing to close, and a partition into two new
        // vectors each time was 3% of replay's time while an incident stayed open.
        if !self.open.iter().any(idle) {
            return;
        }
        let (gone, open): (Vec<Open>, Vec<Open>) =
            std::mem::take(&mut self.open).into_iter().partition(idle);
        self.open = open;
        self.closed.extend(gone.into_iter().map(close));
    }

    /// Close every open incident (the end of the stream).
    pub fn close_all(&mut self) {
        let all = std::mem::take(&mut self.open);
        self.closed.extend(all.into_iter().map(close));
    }

    /// Incidents closed since the last call, each in its final state (`status` closed).
    pub fn take_closed(&mut self) -> Vec<Incident> {
        std::mem::take(&mut self.closed)
    }
}

fn close(o: Open) -> Incident {
    let mut inc = o.inc;
    inc.status = INCIDENT_CLOSED.into();
    inc
}

fn event(a: &Alert, alert_id: Option<String>) -> IncidentEvent {
    IncidentEvent {
        ts_ns: a.ts_ns,
        pid: a.pid,
        kind: a.kind.clone(),
        severity: if a.severity.is_empty() {
            alert_severity(a).to_string()
        } else {
            a.severity.clone()
        },
        summary: a.summary.clone(),
        alert_id,
    }
}

fn push(inc: &mut Incident, ev: IncidentEvent) {
    if inc.timeline.len() >= MAX_TIMELINE {
        inc.timeline_dropped += 1;
        return;
    }
    let at = inc.timeline.partition_point(|e| e.ts_ns <= ev.ts_ns);
    inc.timeline.insert(at, ev);
}

/// Severity from combinations, and the title.
fn rate(kinds: &BTreeSet<String>, inc: &Incident) -> (&'static str, String) {
    let has = |k: &str| kinds.contains(k);
    let egress = has("UNKNOWN_DESTINATION")
        || has("RAW_PACKET_SOCKET")
        || has("NET_EGRESS_BURST")
        || has("EGRESS_BLOCKED")
        || (has("DNS_ANOMALY") && inc.techniques.iter().any(|t| t == "T1048"));
    let shell = has("LLM_AGENT_HIJACK")
        || inc.techniques.iter().any(|t| t == "T1059.004")
        || has("CAUSAL_CYCLE_DETECTED");
    let credential = has("SENSITIVE_FILE") || has("FILE_BLOCKED") || has("PROCESS_MEMORY_ACCESS");
    if credential && egress {
        return (
            "critical",
            "exfiltration chain: credential read, then egress to an unknown destination".into(),
        );
    }
    if shell && egress {
        return (
            "critical",
            "reverse shell: a shell or dropped program with egress to an unknown destination"
                .into(),
        );
    }
    // The mirror of egress: a host elsewhere came in through a port the tree listens on.
    let inbound = has("INBOUND_CONNECTION");
    if credential && inbound {
        return (
            "critical",
            "exfiltration chain: credential read, and a host elsewhere connected in".into(),
        );
    }
    if shell && inbound {
        return (
            "critical",
            "bind shell: a shell or dropped program, and a host elsewhere connected in".into(),
        );
    }
    let highs = kinds
        .iter()
        .filter(|k| !matches!(k.as_str(), "STRUCTURAL_DRIFT" | "DRIFT_DETECTED"))
        .count();
    if (has("PERSISTENCE") || has("CAUSAL_CYCLE_DETECTED")) && highs >= 2 {
        return (
            "critical",
            format!("persistence or dropped program with {}", list(kinds)),
        );
    }
    let title = match () {
        _ if has("NET_SCAN") => "network scan".to_string(),
        _ if inbound => "a host elsewhere connected in".to_string(),
        _ if has("PERSISTENCE") => "persistence write".to_string(),
        _ if has("PROCESS_MEMORY_ACCESS") => "another process's memory".to_string(),
        _ if has("SESSION_HIJACK") => "a session outside the agent driven by it".to_string(),
        _ if has("PRIVILEGED_CALL") => "the kernel, the clock or the host's mounts".to_string(),
        _ if has("DATA_DESTRUCTION") => "data destruction".to_string(),
        _ if has("INDICATOR_REMOVAL") => {
            "indicator removal (history, logs or file times)".to_string()
        }
        _ if credential => "credential access".to_string(),
        _ if has("PTRACE_ATTACH_DETECTED") => "process injection (ptrace)".to_string(),
        _ if shell => "unexpected shell or program".to_string(),
        _ => list(kinds),
    };
    ("info", title)
}

fn list(kinds: &BTreeSet<String>) -> String {
    kinds.iter().cloned().collect::<Vec<_>>().join(", ")
}
