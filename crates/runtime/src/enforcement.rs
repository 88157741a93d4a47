//! Enforcement for a monitored agent: turns the policy's `[enforce]` section into kernel state
//! (see `proctor_sensor::enforce` for the layers), says which layers are active, and turns the
//! kernel's decisions into audit records and alerts.

use anyhow::{bail, Context, Result};
use proctor_detect::{AllowHost, Policy, Resolver};
use proctor_model::{Alert, Decision, DecisionLayer, DecisionVerdict, DecisionWhat};
use proctor_sensor::enforce::{AgentCgroup, DecisionRecord, EnforceConfig, Mode};
use proctor_sensor::Sensor;
use std::net::{IpAddr, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

/// One kernel allowlist entry: address, prefix length, port (None: any port).
type NetEntry = (IpAddr, u8, Option<u16>);

/// How often host names in the allowlist are resolved again, so the allowed address set follows
/// what the names resolve to.
const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// Which agent the layers are for: `run` starts it (and can put it in a cgroup before it
/// execs); `attach` finds it running.
pub enum Target<'a> {
    Run,
    Attach(&'a [u32]),
}

pub struct Enforcement {
    pub mode: Mode,
    cfg: EnforceConfig,
    /// The agent's own cgroup (network layer, containment); None without cgroup v2.
    pub cgroup: Option<AgentCgroup>,
    hosts: Vec<(String, Option<u16>)>,
    last_resolve: Instant,
    /// Addresses resolved since detection last took them ([`Enforcement::take_resolved`]): the
    /// same names allow the same addresses in detection as in the kernel allowlist.
    resolved: Vec<(IpAddr, Option<u16>)>,
    /// Targets of blocked PTRACE_ATTACHes to resume (their SIGSTOP may land after the decision).
    resume: Vec<(u32, Instant)>,
    pub layers: Vec<String>,
    /// Paths Landlock denies the agent (absolute, canonical).
    denied_files: Vec<std::path::PathBuf>,
    /// Persistence locations Landlock keeps read-only for the agent (absolute, canonical).
    read_only_files: Vec<std::path::PathBuf>,
    /// The BPF LSM hooks are attached and decide exec, ptrace, connect (with cgroup-bpf) and
    /// opens of sensitive files.
    pub lsm: bool,
    /// Files the BPF LSM file_open hook refuses: (kernel dev, ino) -> path, for the records.
    lsm_files: std::collections::HashMap<(u64, u64), proctor_model::Bytes>,
    /// Signing keys the agent's Landlock domain denies (canonical paths).
    guard_keys: Vec<std::path::PathBuf>,
    /// The cgroup2 mount the agent's Landlock domain keeps read-only.
    guard_cgroup: Vec<std::path::PathBuf>,
    /// proctor's output directory (canonical): the agent writing, removing or renaming there is
    /// an attempt on the evidence.
    guard_evidence: Option<std::path::PathBuf>,
    /// What the policy leaves to detection (alerts, no block), for the banner.
    alert_only: Vec<&'static str>,
    /// The policy in force: the one given at start, then each reloaded one.
    current: Policy,
    /// Every allowlist entry the policy in force put in the kernel (its addresses, resolved
    /// host names, the DNS resolvers): a reload deletes the ones the new policy no longer makes.
    net_entries: std::collections::HashSet<NetEntry>,
    /// The agent's HOME and working directory, which bind `~` and `$CWD` in file patterns.
    home: Option<std::path::PathBuf>,
    cwd: Option<std::path::PathBuf>,
    /// `[enforce].exec` paths refused, with the identity each had when refused.
    exec_ids: std::collections::HashMap<String, (u64, u64)>,
    /// Identities refused by `allow_exec`'s default-deny (never lifted by a reload).
    default_deny: std::collections::HashSet<(u64, u64)>,
    /// The agent runs in a Landlock domain (`run` on a kernel with Landlock): it cannot attach
    /// to a process outside its own tree, whatever the mode.
    landlock: bool,
    /// The root and working directory of each tracked process as last seen alive (at its exec
    /// or fork), while Landlock denies files: a refusal read after its process exited is still
    /// resolved from them ([`Enforcement::landlock_refusal`]). Bounded by [`MAX_TASKS`].
    tasks: std::collections::HashMap<u32, proctor_sensor::procfs::TaskFs>,
}

/// Processes whose root and working directory are remembered at once (each entry leaves at its
/// process's exit; a bound for exits never seen).
const MAX_TASKS: usize = 65_536;

impl Enforcement {
    /// Put the policy's enforcement into the kernel. Layers are set up whatever the starting
    /// mode, so `proctor mode` can switch to enforce later; a layer the policy asks for that this
    /// kernel cannot provide is an error in shadow and enforce modes, never a silent downgrade.
    pub fn setup(
        sensor: &mut Sensor,
        policy: &Policy,
        mode: Mode,
        name: &str,
        target: Target,
    ) -> Result<Enforcement> {
        let e = &policy.enforce;
        let mut layers = Vec::new();
        let mut denied = 0;
        // BPF LSM where the kernel allows it and a blocking layer is asked for: EPERM before the
        // action instead of SIGKILL after it, and per task (so for `attach` too). Elsewhere the
        // tracepoint and cgroup layers below stand alone, and the banner says so.
        let mut lsm = false;
        let wants_blocking =
            !e.exec.is_empty() || !e.allow_exec.is_empty() || e.ptrace || e.network || e.files;
        if wants_blocking && proctor_sensor::features::bpf_lsm_available() {
            match sensor.attach_lsm() {
                Ok(()) => lsm = true,
                Err(err) => tracing::warn!(
                    "BPF LSM is active but proctor's LSM programs did not load ({:#}); using the tracepoint layers",
                    anyhow::Error::from(err)
                ),
            }
        }
        let [exec_how, ptrace_how, ..] = proctor_sensor::features::blocking_layers(lsm);
        let mut exec_ids = std::collections::HashMap::new();
        for path in &e.exec {
            use std::os::unix::fs::MetadataExt;
            match std::fs::metadata(path) {
                Ok(m) => {
                    sensor.deny_exec(m.dev(), m.ino())?;
                    exec_ids.insert(path.clone(), (m.dev(), m.ino()));
                    denied += 1;
                }
                Err(err) => tracing::warn!("[enforce].exec names {path}: {err}; not enforced"),
            }
        }
        if denied > 0 {
            layers.push(format!(
                "{exec_how} for {denied} binar{} (by device+inode)",
                if denied == 1 { "y" } else { "ies" }
            ));
        }
        let mut default_deny = std::collections::HashSet::new();
        if !e.allow_exec.is_empty() {
            let allowed;
            (default_deny, allowed) = default_deny_exec(sensor, policy)?;
            let refused = default_deny.len();
            layers.push(format!(
                "{exec_how} for {refused} binaries in {} outside allow_exec ({allowed} allowed; default-deny by device+inode; binaries elsewhere, e.g. written by the agent, are not refused, only alerted)",
                policy.interpreter_dirs.join(",")
            ));
        }
        if e.ptrace {
            layers.push(format!("{ptrace_how} for attaches by or onto the agent"));
        }
        let mut en = Enforcement {
            mode,
            cfg: EnforceConfig {
                mode,
                block_ptrace: e.ptrace,
                block_net: false,
                isolate: false,
                lsm,
            },
            cgroup: None,
            hosts: Vec::new(),
            last_resolve: Instant::now(),
            resolved: Vec::new(),
            resume: Vec::new(),
            layers,
            denied_files: Vec::new(),
            read_only_files: Vec::new(),
            lsm,
            lsm_files: std::collections::HashMap::new(),
            guard_keys: Vec::new(),
            guard_cgroup: Vec::new(),
            guard_evidence: None,
            current: policy.clone(),
            landlock: false,
            net_entries: std::collections::HashSet::new(),
            exec_ids,
            default_deny,
            home: None,
            cwd: None,
            tasks: std::collections::HashMap::new(),
            alert_only: [
                (!e.network, "network"),
                (e.exec.is_empty() && e.allow_exec.is_empty(), "exec"),
                (!e.ptrace, "ptrace"),
                (!e.files, "sensitive files"),
                // Landlock keeps existing persistence locations read-only (`run`, files = block).
                (!e.files, "persistence writes"),
                (!e.io_uring, "io_uring"),
            ]
            .into_iter()
            .filter_map(|(alert, what)| alert.then_some(what))
            .collect(),
        };
        // The agent always gets its own cgroup when the kernel has cgroup v2: the network layer
        // and operator containment (`proctor contain`) act on it.
        match AgentCgroup::create(name) {
            Ok(cg) => {
                if let Target::Attach(pids) = target {
                    for &pid in pids {
                        // A process may exit while we move it; the rest still count.
                        if let Err(err) = cg.add(pid) {
                            tracing::debug!("moving {pid} into {}: {err}", cg.path.display());
                        }
                    }
                }
                sensor.attach_cgroup(&cg)?;
                if e.network {
                    let n = en.allow(sensor, policy)?;
                    en.layers.push(format!(
                        "network: egress outside {n} allowed destination(s) refused with EPERM (cgroup-bpf on {}{})",
                        cg.path.display(),
                        if lsm { "; BPF LSM socket_connect per task" } else { "" }
                    ));
                    en.cfg.block_net = true;
                }
                en.cgroup = Some(cg);
            }
            Err(err) if !e.network || mode == Mode::Audit => {
                tracing::warn!(
                    "no agent cgroup (network enforcement and containment unavailable): {err:#}"
                );
            }
            Err(err) => {
                return Err(err).context("the policy blocks network egress");
            }
        }
        sensor.set_enforcement(&en.cfg)?;
        Ok(en)
    }

    /// Fill the allow maps: the policy's allowlist and the DNS resolvers. Returns the count.
    fn allow(&mut self, sensor: &Sensor, policy: &Policy) -> Result<usize> {
        let mut n = 0;
        for a in &policy.network.allow {
            match &a.host {
                AllowHost::Any => {
                    self.allow_entry(sensor, (IpAddr::from([0u8; 4]), 0, a.port))?;
                    self.allow_entry(sensor, (IpAddr::from([0u16; 8]), 0, a.port))?;
                }
                AllowHost::Net { addr, prefix } => {
                    self.allow_entry(sensor, (*addr, *prefix, a.port))?
                }
                AllowHost::Name {
                    name,
                    suffix: false,
                } => {
                    self.hosts.push((name.clone(), a.port));
                }
                AllowHost::Name { name, suffix: true } => {
                    tracing::warn!(
                        "allow entry `*.{name}` cannot be enforced in the kernel (a suffix names no addresses); it still counts for detection"
                    );
                    continue;
                }
            }
            n += 1;
        }
        let mut resolvers = Vec::new();
        for r in &policy.dns.resolvers {
            match r {
                Resolver::Addr(a) => resolvers.push(*a),
                Resolver::System => resolvers.extend(proctor_detect::parse_resolv_conf(
                    &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
                )),
            }
        }
        for ip in resolvers {
            self.allow_entry(sensor, (ip, if ip.is_ipv4() { 32 } else { 128 }, Some(53)))?;
            n += 1;
        }
        self.resolve(sensor);
        Ok(n)
    }

    /// Put one entry in the kernel allowlist and remember that the policy made it.
    fn allow_entry(&mut self, sensor: &Sensor, entry: NetEntry) -> Result<()> {
        sensor.allow_net(entry.0, entry.1, entry.2)?;
        self.net_entries.insert(entry);
        Ok(())
    }

    /// Allow what the allowlisted host names resolve to now. Old addresses stay allowed for the
    /// rest of the run: connections to them may still be in use.
    fn resolve(&mut self, sensor: &Sensor) {
        self.last_resolve = Instant::now();
        for (name, port) in &self.hosts {
            match (name.as_str(), port.unwrap_or(0)).to_socket_addrs() {
                Ok(addrs) => {
                    for a in addrs {
                        let ip = a.ip();
                        self.resolved.push((ip, *port));
                        let bits = if ip.is_ipv4() { 32 } else { 128 };
                        match sensor.allow_net(ip, bits, *port) {
                            Ok(()) => {
                                self.net_entries.insert((ip, bits, *port));
                            }
                            Err(err) => tracing::warn!("allowing {ip} for {name}: {err:#}"),
                        }
                    }
                }
                Err(err) => tracing::warn!("cannot resolve allowed host {name}: {err}"),
            }
        }
    }

    /// The Landlock domain of an agent started by `run`, for the child to apply before it execs.
    /// In every mode (self-protection): proctor's signing key(s) `keys` are denied, the cgroup2
    /// mount is read-only (no moving out of the agent cgroup, no rewriting its controls), and
    /// the agent's signals stay inside its own tree. In enforce mode with `files = "block"`,
    /// the sensitive files that exist now are denied too.
    pub fn confine_files(
        &mut self,
        policy: &Policy,
        home: Option<&std::path::Path>,
        cwd: Option<&std::path::Path>,
        keys: &[std::path::PathBuf],
    ) -> Result<Option<landlock::RulesetCreated>> {
        let files = policy.enforce.files;
        let mut deny = if files {
            let mut d = crate::confine::sensitive_paths(policy, home, cwd);
            d.extend(crate::confine::device_paths(policy));
            d
        } else {
            Vec::new()
        };
        if files && self.mode != Mode::Enforce {
            self.layers.push(format!(
                "files: Landlock would deny {} sensitive path(s), applied only when started in enforce mode",
                deny.len()
            ));
            deny.clear();
        }
        let abi = proctor_sensor::features::landlock_abi();
        let Some(abi) = abi else {
            if files && self.mode == Mode::Enforce {
                bail!("the policy confines files but this kernel has no Landlock");
            }
            self.layers.push(
                "self-protection files and signals: UNAVAILABLE (no Landlock on this kernel): the agent can read the signing key and write cgroup files; attempts are still alerted"
                    .into(),
            );
            return Ok(None);
        };
        let sensitive = deny.len();
        if files && self.mode == Mode::Enforce && sensitive == 0 {
            self.layers
                .push("files: no sensitive file exists to deny".into());
        }
        for d in &deny {
            tracing::info!("Landlock denies {}", d.display());
        }
        self.denied_files = deny.clone();
        self.guard_keys = keys.iter().filter_map(|k| k.canonicalize().ok()).collect();
        deny.extend(self.guard_keys.iter().cloned());
        let mut read_only: Vec<std::path::PathBuf> = proctor_sensor::features::mount_of("cgroup2")
            .map(std::path::PathBuf::from)
            .into_iter()
            .collect();
        self.guard_cgroup = read_only.clone();
        // Persistence writes: the persistence locations that exist now are read-only (a write,
        // create or truncate there is EACCES; reading them stays allowed).
        let persistence = if files && self.mode == Mode::Enforce {
            crate::confine::persistence_paths(policy, home, cwd)
        } else {
            Vec::new()
        };
        for p in &persistence {
            tracing::info!("Landlock keeps {} read-only", p.display());
        }
        self.read_only_files = persistence.clone();
        read_only.extend(persistence.iter().cloned());
        // Scoping signals also stops the agent signalling processes outside its tree that it
        // may legitimately manage (a dev server the user started): only when started in
        // enforce mode. Elsewhere the seccomp guard alone refuses signals aimed at proctor.
        let scope = abi >= 6 && self.mode == Mode::Enforce;
        let devices =
            files && self.mode == Mode::Enforce && !policy.files.sensitive_devices.is_empty();
        let (rs, rules) = crate::confine::ruleset(&deny, &read_only, scope, devices)?;
        if sensitive > 0 {
            self.layers.push(format!(
                "files: Landlock ABI v{abi} denies {sensitive} sensitive path(s) ({rules} grant rules; EACCES)"
            ));
        }
        if devices {
            self.layers.push(
                "devices: Landlock denies the disks and memory devices in /dev that [files].sensitive_devices names, and refuses making device nodes (mknod: EACCES)"
                    .into(),
            );
        }
        if !persistence.is_empty() {
            self.layers.push(format!(
                "persistence: Landlock keeps {} existing persistence path(s) read-only (EACCES on write; ones created later are only alerted)",
                persistence.len()
            ));
        }
        self.layers.push(format!(
            "self-protection: Landlock ABI v{abi} denies the signing key, keeps {} read-only{} (all modes)",
            read_only
                .first()
                .map_or_else(|| "no cgroup2 mount".to_string(), |p| p.display().to_string()),
            if scope {
                " and keeps the agent's signals inside its own tree (a kill or SIGIO owner aimed outside is refused)"
            } else if abi >= 6 {
                "; signals are scoped to the agent's tree only when started in enforce mode"
            } else {
                "; signal scoping needs Landlock ABI 6"
            }
        ));
        self.landlock = true;
        self.layers.push(
            "ptrace: Landlock refuses the agent's attaches onto processes outside its tree (EPERM, all modes)"
                .into(),
        );
        if let Some(p) = self.alert_only.iter_mut().find(|w| **w == "ptrace") {
            *p = "ptrace inside the agent's tree";
        }
        Ok(Some(rs))
    }

    /// Watch proctor's output directory `out` for the agent's writes, removals and renames
    /// (`guard_violation`).
    pub fn guard_evidence(&mut self, out: &std::path::Path) {
        self.guard_evidence = out.canonicalize().ok();
    }

    /// An observation that is an attempt on proctor's own files: an open of the signing key
    /// (whatever its result), a refused write-open under the cgroup2 mount, or a write-open,
    /// removal or rename in proctor's output directory (the audit log, alerts and
    /// certificates; nothing refuses these, so they are alerted: an agent deleting the log
    /// leaves this alert in the outputs that ship it). Returns the tamper kind (`signing_key`,
    /// `cgroup`, `evidence`) and what was tried.
    pub fn guard_violation(&self, r: &proctor_model::Record) -> Option<(&'static str, String)> {
        if let Some(hit) = self
            .guard_evidence
            .as_deref()
            .and_then(|o| evidence_violation(o, r))
        {
            return Some(("evidence", hit));
        }
        let proctor_model::Event::FileOpen(f) = &r.event else {
            return None;
        };
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(f.path.as_bytes()));
        // The last names first (parsed from the end, cheap): a whole-path compare parses every
        // component of both, and this runs for every open.
        let name = path.file_name();
        if self
            .guard_keys
            .iter()
            .any(|k| k.file_name() == name && k == path)
        {
            return Some((
                "signing_key",
                format!(
                    "open of proctor's signing key {} ({})",
                    f.path.escaped(),
                    match f.error {
                        Some(e) => format!("refused: errno {e}"),
                        None => "SUCCEEDED".into(),
                    }
                ),
            ));
        }
        let write = f.flags & (libc::O_WRONLY | libc::O_RDWR) as u32 != 0;
        if write
            && matches!(
                f.error,
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
            )
            && self.guard_cgroup.iter().any(|m| path.starts_with(m))
        {
            return Some((
                "cgroup",
                format!(
                    "write-open of {} under the cgroup2 mount refused",
                    f.path.escaped()
                ),
            ));
        }
        None
    }

    /// The addresses allowed host names resolved to since the last call.
    pub fn take_resolved(&mut self) -> Vec<(IpAddr, Option<u16>)> {
        std::mem::take(&mut self.resolved)
    }

    /// Periodic work: re-resolve host names, resume stopped ptrace targets.
    pub fn tick(&mut self, sensor: &Sensor) {
        if !self.hosts.is_empty() && self.last_resolve.elapsed() >= RESOLVE_EVERY {
            self.resolve(sensor);
        }
        let now = Instant::now();
        self.resume.retain(|(pid, until)| {
            proctor_sensor::enforce::resume_if_stopped(*pid);
            now < *until
        });
    }

    /// Switch the mode of the running agent.
    pub fn set_mode(&mut self, sensor: &Sensor, mode: Mode) -> Result<()> {
        let cfg = EnforceConfig { mode, ..self.cfg };
        sensor.set_enforcement(&cfg)?;
        self.cfg = cfg;
        self.mode = mode;
        Ok(())
    }

    /// Apply a reloaded policy `new` (replacing the one in force) where the layer allows it: the
    /// kernel allowlist becomes the new one (entries the new policy no longer makes are deleted
    /// from the maps, host names are resolved from now on), the network and ptrace blocks follow
    /// the new values, new `exec` entries are refused and dropped ones run again, and with BPF
    /// LSM the `file_open` deny list follows the new sensitive patterns. Returns what took
    /// effect and what cannot change in a running proctor: Landlock, which only narrows and is
    /// fixed at start (a loosened `files` is refused and said so, never pretended); the
    /// default-deny list; seccomp ask rules.
    pub fn reload(&mut self, sensor: &Sensor, new: &Policy) -> Result<(Vec<String>, Vec<String>)> {
        use std::os::unix::fs::MetadataExt;
        let old = self.current.clone();
        let (o, e) = (&old.enforce, &new.enforce);
        let mut applied = Vec::new();
        let mut not = Vec::new();
        if self.cgroup.is_some() {
            let before = std::mem::take(&mut self.net_entries);
            self.hosts.clear();
            let n = self.allow(sensor, new)?;
            let mut gone = 0;
            for &(ip, prefix, port) in before.difference(&self.net_entries) {
                sensor.disallow_net(ip, prefix, port)?;
                gone += 1;
            }
            applied.push(format!(
                "network: {n} allowed destination(s) in the kernel allowlist, {gone} entr{} removed",
                if gone == 1 { "y" } else { "ies" }
            ));
            self.cfg.block_net = e.network;
        } else if e.network {
            not.push("network: no agent cgroup, egress cannot be blocked".into());
        }
        self.cfg.block_ptrace = e.ptrace;
        sensor.set_enforcement(&self.cfg)?;
        applied.push(format!(
            "network {}, ptrace {}",
            if e.network { "block" } else { "alert" },
            if e.ptrace { "block" } else { "alert" }
        ));
        let added: Vec<&String> = e
            .exec
            .iter()
            .filter(|p| !self.exec_ids.contains_key(*p))
            .collect();
        for path in added {
            match std::fs::metadata(path) {
                Ok(m) => {
                    sensor.deny_exec(m.dev(), m.ino())?;
                    self.exec_ids.insert(path.clone(), (m.dev(), m.ino()));
                    applied.push(format!("exec: {path} refused"));
                }
                Err(err) => not.push(format!("exec: {path}: {err}")),
            }
        }
        let dropped: Vec<String> = self
            .exec_ids
            .keys()
            .filter(|p| !e.exec.contains(p))
            .cloned()
            .collect();
        for path in dropped {
            let id = self.exec_ids.remove(&path).unwrap_or_default();
            // The same binary may stay refused under another name or by the default-deny.
            if self.default_deny.contains(&id) || self.exec_ids.values().any(|v| *v == id) {
                not.push(format!(
                    "exec: {path} stays refused (the same binary is refused otherwise)"
                ));
                continue;
            }
            sensor.undeny_exec(id.0, id.1)?;
            applied.push(format!("exec: {path} no longer refused"));
        }
        if self.lsm && (o.files || e.files) {
            applied.push(self.reload_lsm_files(sensor, new)?);
        }
        let loosened = (o.files && !e.files)
            || old
                .files
                .sensitive
                .iter()
                .chain(&old.files.persistence)
                .any(|p| !new.files.sensitive.contains(p) && !new.files.persistence.contains(p));
        if !self.denied_files.is_empty() || !self.read_only_files.is_empty() {
            if loosened {
                not.push(format!(
                    "files: refused to widen Landlock (a Landlock domain can only narrow): the {} path(s) denied and {} kept read-only at start stay so until the agent restarts",
                    self.denied_files.len(),
                    self.read_only_files.len()
                ));
            } else if e.files != o.files || new.files.sensitive != old.files.sensitive {
                not.push("files: Landlock is fixed at start (new paths are not added)".into());
            }
        }
        if o.allow_exec != e.allow_exec {
            not.push("allow_exec: the default-deny list is fixed at start".into());
        }
        if o.ask_network != e.ask_network || o.ask_exec != e.ask_exec || o.io_uring != e.io_uring {
            not.push("ask rules and io_uring: the seccomp filter is fixed at start".into());
        }
        self.current = new.clone();
        Ok((applied, not))
    }

    /// The BPF LSM `file_open` deny list for a reloaded policy: the sensitive files it names
    /// now are refused, those it no longer names are opened again.
    fn reload_lsm_files(&mut self, sensor: &Sensor, new: &Policy) -> Result<String> {
        let want = if new.enforce.files {
            lsm_file_ids(new, self.home.as_deref(), self.cwd.as_deref())
        } else {
            std::collections::HashMap::new()
        };
        let mut lifted = 0;
        for id in self.lsm_files.keys().filter(|k| !want.contains_key(k)) {
            sensor.undeny_open(id.0, id.1)?;
            lifted += 1;
        }
        for id in want.keys().filter(|k| !self.lsm_files.contains_key(k)) {
            sensor.deny_open(id.0, id.1)?;
        }
        self.lsm_files = want;
        Ok(format!(
            "files: BPF LSM file_open refuses {} sensitive file(s), {lifted} no longer",
            self.lsm_files.len()
        ))
    }

    /// Operator-initiated containment of the agent's cgroup. Returns what was done.
    pub fn contain(&mut self, sensor: &Sensor, action: ContainAction) -> Result<&'static str> {
        let cg = self
            .cgroup
            .as_ref()
            .context("the agent has no cgroup of its own (no cgroup v2): cannot contain it")?;
        match action {
            ContainAction::Freeze => cg.freeze(true).context("writing cgroup.freeze")?,
            ContainAction::Thaw => cg.freeze(false).context("writing cgroup.freeze")?,
            ContainAction::Kill => cg.kill_all().context("writing cgroup.kill")?,
            ContainAction::IsolateNet | ContainAction::RestoreNet => {
                let cfg = EnforceConfig {
                    isolate: action == ContainAction::IsolateNet,
                    ..self.cfg
                };
                sensor.set_enforcement(&cfg)?;
                self.cfg = cfg;
            }
        }
        Ok(action.as_str())
    }

    /// One line for the start-up banner.
    pub fn banner(&self) -> String {
        let lsm = if self.lsm {
            "BPF LSM active (exec, ptrace, connect and file blocks are EPERM before the action)"
        } else if proctor_sensor::features::bpf_lsm_available() {
            "BPF LSM available but not used (the policy blocks nothing, or proctor's LSM programs did not load)"
        } else {
            "BPF LSM not available on this kernel (exec/ptrace blocks are SIGKILL from tracepoints)"
        };
        let alerted = format!("alerted only, not blocked: {}", self.alert_only.join(", "));
        if self.layers.is_empty() {
            format!(
                "proctor: mode {}; the policy blocks nothing ({lsm}); {alerted}",
                self.mode.as_str()
            )
        } else {
            format!(
                "proctor: mode {}; enforcement layers: {}; {lsm}; {alerted}",
                self.mode.as_str(),
                self.layers.join("; ")
            )
        }
    }

    /// The file layer by BPF LSM, for `run` and `attach` alike: the `file_open` hook refuses the
    /// sensitive files that exist now (the same resolution Landlock uses; a denied directory
    /// counts with the files beneath it, up to a bound). Unlike Landlock it follows the mode
    /// while the agent runs. Nothing to do without BPF LSM or when the policy does not block files.
    pub fn lsm_files(
        &mut self,
        sensor: &Sensor,
        policy: &Policy,
        home: Option<&std::path::Path>,
        cwd: Option<&std::path::Path>,
    ) -> Result<()> {
        self.home = home.map(std::path::Path::to_path_buf);
        self.cwd = cwd.map(std::path::Path::to_path_buf);
        if !policy.enforce.files || !self.lsm {
            return Ok(());
        }
        self.lsm_files = lsm_file_ids(policy, home, cwd);
        for &(dev, ino) in self.lsm_files.keys() {
            sensor.deny_open(dev, ino)?;
        }
        self.layers.push(format!(
            "files: BPF LSM file_open -> EPERM for {} sensitive file(s)",
            self.lsm_files.len(),
        ));
        Ok(())
    }

    /// Fill in what the kernel record cannot carry: the path of a file the LSM refused.
    pub fn annotate(&self, d: &mut DecisionRecord) {
        if d.decision.what == DecisionWhat::Open && d.decision.path.is_none() {
            if let (Some(dev), Some(ino)) = (d.decision.dev, d.decision.ino) {
                d.decision.path = self.lsm_files.get(&(dev, ino)).cloned();
            }
        }
    }

    /// Follow the processes whose refusals may need resolving after they exit: at an exec or a
    /// fork, remember where the process resolves paths from (a child already gone inherits its
    /// parent's, as it did at fork); at an exit, forget it. Only while Landlock denies files.
    pub fn observe_task(&mut self, r: &proctor_model::Record) {
        use proctor_model::Event;
        use proctor_sensor::procfs::task_fs;
        if self.denied_files.is_empty() && self.read_only_files.is_empty() {
            return;
        }
        let (pid, fs) = match &r.event {
            Event::Exec(_) => (
                r.pid,
                task_fs(r.pid)
                    .or_else(|| self.tasks.get(&r.pid).cloned().or_else(|| self.first_fs(r))),
            ),
            Event::Fork(f) => (
                f.child_pid,
                task_fs(f.child_pid)
                    .or_else(|| self.tasks.get(&r.pid).cloned().or_else(|| self.first_fs(r))),
            ),
            Event::Exit(_) => {
                self.tasks.remove(&r.pid);
                return;
            }
            _ => return,
        };
        match fs {
            Some(fs) if self.tasks.len() < MAX_TASKS || self.tasks.contains_key(&pid) => {
                self.tasks.insert(pid, fs);
            }
            _ => {}
        }
    }

    /// Where the agent's first process resolves paths from, if `r` is one of its records: `run`
    /// starts it with proctor's root and the agent's working directory.
    fn first_fs(&self, r: &proctor_model::Record) -> Option<proctor_sensor::procfs::TaskFs> {
        if r.ppid != std::process::id() {
            return None;
        }
        Some(proctor_sensor::procfs::TaskFs {
            root: std::fs::read_link("/proc/self/root").unwrap_or_else(|_| "/".into()),
            cwd: self.cwd.clone()?,
        })
    }

    /// A refused open of a path Landlock denies: the kernel said EACCES because of us. The
    /// record's path is the agent's spelling (a refused open resolves no file in the kernel), so
    /// it is resolved here as the agent's process would resolve it (its working directory, links,
    /// `/proc/self/root`, `/proc/self/fd/N`): the decision names the file Landlock refused, and
    /// keeps the spelling as `requested`. A link the agent changed or removed after the open is
    /// judged by what it names now. A process that exited before this record was read is
    /// resolved from the root and working directory remembered for it (`resolution:
    /// "remembered"`); what only it held (`/proc/self/fd/N`) cannot be, and the decision says so
    /// (`"unresolved"`, no `path`) rather than being dropped.
    pub fn landlock_refusal(&self, r: &proctor_model::Record) -> Option<DecisionRecord> {
        use proctor_model::Resolution;
        use proctor_sensor::procfs::{resolve_in, task_fs};
        if let proctor_model::Event::Ptrace(p) = &r.event {
            return self.landlock_ptrace(r, p);
        }
        let proctor_model::Event::FileOpen(f) = &r.event else {
            return None;
        };
        if f.error != Some(libc::EACCES)
            || (self.denied_files.is_empty() && self.read_only_files.is_empty())
        {
            return None;
        }
        // The walk looks at each component of the agent's path, on file systems it may serve:
        // off the loop (see `proctor_sensor::offloop`). No answer in time: unresolved, and the
        // refusal is still recorded.
        let resolve = |fs: proctor_sensor::procfs::TaskFs, live: bool| {
            let (pid, spelling) = (r.pid, f.path.as_bytes().to_vec());
            proctor_sensor::offloop::within(move || resolve_in(pid, &fs, live, &spelling))
        };
        let (resolved, resolution) = match task_fs(r.pid) {
            Some(fs) => match resolve(fs, true) {
                Some(p) => (p, None),
                None => (None, Some(Resolution::Unresolved)),
            },
            None => {
                let fs = self.tasks.get(&r.pid).cloned().or_else(|| self.first_fs(r));
                match fs.and_then(|fs| resolve(fs, false).flatten()) {
                    Some(p) => (Some(p), Some(Resolution::Remembered)),
                    None => (None, Some(Resolution::Unresolved)),
                }
            }
        };
        let write = f.access != proctor_model::Access::Read || f.create || f.truncate;
        if let Some(path) = &resolved {
            let denied = self.denied_files.iter().any(|d| path.starts_with(d));
            let read_only = write && self.read_only_files.iter().any(|d| path.starts_with(d));
            if !denied && !read_only {
                return None;
            }
        } else if resolution.is_none() {
            // The live process names no file with it (a link loop, a missing directory): the
            // kernel failed the open before Landlock was asked.
            return None;
        }
        let path = resolved.map(|p| proctor_model::Bytes::from(p.as_os_str().as_bytes().to_vec()));
        let requested = (path.as_ref() != Some(&f.path)).then(|| f.path.clone());
        Some(DecisionRecord {
            decision: Decision {
                what: DecisionWhat::Open,
                verdict: DecisionVerdict::Blocked,
                layer: DecisionLayer::Landlock,
                dev: None,
                ino: None,
                target_pid: None,
                dest: None,
                path,
                requested,
                resolution,
            },
            common: record_common(r),
            kseq: None,
        })
    }

    /// An attach by the agent onto a process outside its tree, which its Landlock domain refuses
    /// (EPERM; the tracer lives on): the kernel hook sees the attempt at syscall entry, and the
    /// refusal follows from the domains, so it is recorded here. Not for a signal (the same
    /// record kind), not when a kernel layer decides
    /// the same attach (`ptrace = "block"` records its own decision), nor for an attach on
    /// proctor itself (the seccomp guard refuses that and writes a `tamper` record), nor for a
    /// target that does not exist (ESRCH, nothing was refused).
    fn landlock_ptrace(
        &self,
        r: &proctor_model::Record,
        p: &proctor_model::Ptrace,
    ) -> Option<DecisionRecord> {
        // Only the attach-mode requests Landlock's domain refuses onto processes outside it.
        // A signal is no ptrace access (scoped signals, in enforce mode, fail on their own);
        // its target is untracked also when it is the agent's own child that exited and is
        // not yet reaped, which Landlock never refused (apt-get interrupting its methods).
        if !self.landlock
            || !p.attach_mode()
            || (self.cfg.block_ptrace && self.mode != Mode::Audit)
            || !p.tracer_tracked
            || p.target_tracked
            || std::path::Path::new(&format!("/proc/self/task/{}", p.target_pid)).exists()
            || !std::path::Path::new(&format!("/proc/{}", p.target_pid)).exists()
        {
            return None;
        }
        Some(DecisionRecord {
            decision: Decision {
                what: DecisionWhat::Ptrace,
                verdict: DecisionVerdict::Blocked,
                layer: DecisionLayer::Landlock,
                dev: None,
                ino: None,
                target_pid: Some(p.target_pid),
                dest: None,
                path: None,
                requested: None,
                resolution: None,
            },
            common: record_common(r),
            kseq: None,
        })
    }

    /// The alert for a kernel decision (a block, or a would-be block in shadow mode); a
    /// blocked PTRACE_ATTACH's target is resumed shortly after.
    pub fn alert_for(&mut self, d: &DecisionRecord) -> Alert {
        let dc = &d.decision;
        if dc.what == DecisionWhat::Ptrace
            && dc.verdict == DecisionVerdict::Blocked
            && dc.layer == DecisionLayer::Tracepoint
        {
            // Give the SIGSTOP of PTRACE_ATTACH time to land, then resume the target.
            // (A BPF LSM refusal happens before the attach: nothing to resume.)
            self.resume.push((
                dc.target_pid.unwrap_or(0),
                Instant::now() + Duration::from_secs(1),
            ));
        }
        decision_alert(d)
    }
}

/// The common fields of a decision about what observation `r` shows.
fn record_common(r: &proctor_model::Record) -> proctor_model::Common {
    proctor_model::Common {
        ts_ns: r.ts_ns,
        agent_id: r.agent_id.clone(),
        pid: r.pid,
        ppid: r.ppid,
        comm: r.comm.clone(),
        exec_id: r.exec_id.clone(),
    }
}

/// The alert for a kernel decision: which channel and kind, and one line saying what was (or
/// would have been) blocked.
pub fn decision_alert(d: &DecisionRecord) -> Alert {
    let dc = &d.decision;
    let blocked = dc.verdict == DecisionVerdict::Blocked;
    let (channel, kind, what) = match dc.what {
        DecisionWhat::Exec => (
            "L2",
            "EXEC_BLOCKED",
            format!(
                "exec of dev {} ino {}",
                dc.dev.unwrap_or(0),
                dc.ino.unwrap_or(0)
            ),
        ),
        DecisionWhat::Ptrace => {
            let target = dc.target_pid.unwrap_or(0);
            (
                "L5",
                "PTRACE_BLOCKED",
                // Attach-mode access: an attach, or its memory or descriptors (the ptrace
                // record beside the decision names the call).
                format!("ptrace access onto pid {target}"),
            )
        }
        DecisionWhat::Open => (
            "SENSITIVE_FILE",
            "FILE_BLOCKED",
            format!(
                "open of {}",
                match (&dc.path, &dc.requested) {
                    (Some(p), _) => p.escaped(),
                    // A refusal whose process exited before it could be resolved.
                    (None, Some(q)) => format!("{} (target unresolved)", q.escaped()),
                    (None, None) => {
                        format!("dev {} ino {}", dc.dev.unwrap_or(0), dc.ino.unwrap_or(0))
                    }
                }
            ),
        ),
        other @ (DecisionWhat::Connect | DecisionWhat::Sendmsg) => {
            let dest = dc.dest.as_ref();
            (
                "L4",
                "EGRESS_BLOCKED",
                format!(
                    "{} to {}:{}",
                    other.as_str(),
                    dest.and_then(|x| x.addr.clone()).unwrap_or_default(),
                    dest.and_then(|x| x.port).unwrap_or(0)
                ),
            )
        }
    };
    let c = &d.common;
    Alert::new(
        c.agent_id.clone(),
        c.ts_ns,
        channel,
        kind,
        c.pid,
        c.exec_id.clone(),
        format!(
            "pid {} ({}): {what} {}",
            c.pid,
            c.comm.escaped(),
            if blocked {
                "blocked"
            } else {
                "would be blocked (shadow mode)"
            }
        ),
    )
    .with_action(if blocked { "BLOCKED" } else { "WOULD_BLOCK" })
}

/// Operator-initiated containment actions (`proctor contain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContainAction {
    Freeze,
    Thaw,
    Kill,
    IsolateNet,
    RestoreNet,
}

impl ContainAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainAction::Freeze => "freeze",
            ContainAction::Thaw => "thaw",
            ContainAction::Kill => "kill",
            ContainAction::IsolateNet => "isolate-net",
            ContainAction::RestoreNet => "restore-net",
        }
    }
}

/// Opens of the sensitive files that exist now go to the sensor's priority ring, in every mode:
/// an agent flooding the ring with ordinary opens cannot hide a credential read among them.
/// Finding them walks HOME, /root and the working directory (seconds on a large HOME), so it
/// runs on a thread while the agent starts (the files at the usual places are watched before it
/// starts); [`SensitiveWatch::apply`] hands the result over.
pub struct SensitiveWatch {
    walk: Option<std::sync::mpsc::Receiver<Vec<SensitiveFile>>>,
    /// Found and watched, not yet handed to detection.
    found: Vec<SensitiveFile>,
}

/// A sensitive file that exists: (device, inode) and its path.
/// The literal names in the policy's sensitive and persistence patterns that an opened file's
/// own name or its directory's can be compared with in the kernel: each pattern's last
/// component if it has no wildcard, else the one before it if that has none (`/etc/shadow`
/// gives `shadow`, `**/.ssh/id_*` gives `.ssh`, `/etc/cron.*/**` gives nothing). When both are
/// literal and the directory is a hidden one, the directory's name: the pattern needs both, and
/// `.kube` names a credentials store where `config` names every git repository's config too
/// (each such open was recorded urgently, never counted nor folded). A name that also names
/// unrelated files costs a wake-up and a whole record, never a missed one.
pub fn watched_names(policy: &Policy) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    for p in policy
        .files
        .sensitive
        .iter()
        .chain(&policy.files.persistence)
    {
        if let Some(n) = watched_name(&p.text) {
            if !names.iter().any(|x| x == n.as_bytes()) {
                names.push(n.as_bytes().to_vec());
            }
        }
    }
    names
}

/// The name of [`watched_names`] that the pattern `text` gives, if any: none when its literal
/// name is a common one ([`common_name`]), which would make every open of every such file or
/// directory on the host urgent and recorded whole (a build's or a package install's
/// thousands). Such a pattern's files that exist at start are still watched by identity; one
/// made during the run reaches detection with the next batch (within 20 ms), not at once.
pub fn watched_name(text: &str) -> Option<&str> {
    pattern_name(text).filter(|n| !common_name(n))
}

/// The literal file or directory name a pattern's files can be recognised by in the kernel.
fn pattern_name(text: &str) -> Option<&str> {
    let literal = |c: &str| {
        !c.is_empty() && c != "~" && !c.starts_with('$') && !c.contains(['*', '?', '[', '{'])
    };
    let mut comps = text.rsplit('/');
    let last = comps.next().unwrap_or("");
    let dir = comps.next().filter(|c| literal(c));
    let name = if literal(last) {
        match dir {
            Some(d) if d.len() > 1 && d.starts_with('.') => Some(d),
            _ => Some(last),
        }
    } else {
        dir
    };
    name.filter(|n| n.len() <= proctor_sensor::WATCH_NAME_MAX)
}

/// Names too common to watch (see [`watched_name`]), besides any of one or two bytes.
const COMMON_NAMES: &[&str] = &[
    "tmp",
    "bin",
    "sbin",
    "lib",
    "lib64",
    "src",
    "etc",
    "usr",
    "var",
    "opt",
    "home",
    "root",
    "run",
    "share",
    "include",
    "build",
    "dist",
    "out",
    "target",
    "node_modules",
    "vendor",
    "cache",
    ".cache",
    "config",
    ".config",
    ".local",
    "local",
    "log",
    "logs",
    "data",
    "test",
    "tests",
    "docs",
    "doc",
    "man",
    "site-packages",
    "dist-packages",
    "__pycache__",
    ".git",
    "objects",
    "refs",
    "index",
    "HEAD",
    "config.json",
    "config.yaml",
    "config.yml",
    "config.toml",
    "settings.json",
    "package.json",
    "package-lock.json",
    "index.js",
    "README.md",
    "Makefile",
    "Cargo.toml",
    "setup.py",
    "pyproject.toml",
    "LICENSE",
];

/// A name too common for the kernel to watch.
pub fn common_name(n: &str) -> bool {
    n.len() <= 2 || COMMON_NAMES.contains(&n)
}

/// The sensitive and persistence patterns of `policy` that are not the built-in policy's and
/// whose only literal name is too common to watch, with that name: what `policy check` tells
/// an operator (their files made during the run are not urgent).
pub fn common_watched(policy: &Policy) -> Vec<(String, String)> {
    let builtin = Policy::builtin();
    let known: std::collections::HashSet<&str> = builtin
        .files
        .sensitive
        .iter()
        .chain(&builtin.files.persistence)
        .map(|p| p.text.as_str())
        .collect();
    policy
        .files
        .sensitive
        .iter()
        .chain(&policy.files.persistence)
        .filter(|p| !known.contains(p.text.as_str()))
        .filter_map(|p| {
            let n = pattern_name(&p.text).filter(|n| common_name(n))?;
            Some((p.text.clone(), n.to_string()))
        })
        .collect()
}

pub type SensitiveFile = ((u64, u64), Vec<u8>);

/// The identities of `files` that exist.
fn identities(files: &[std::path::PathBuf]) -> Vec<SensitiveFile> {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .filter_map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some(((m.dev(), m.ino()), f.as_os_str().as_bytes().to_vec()))
        })
        .collect()
}

impl SensitiveWatch {
    /// Watch at once the files [`crate::confine::sensitive_files_direct`] finds (a few stats,
    /// before the agent starts), and start the full walk.
    /// Opens of files the patterns name by a literal file or directory name are urgent in the
    /// kernel too (see [`watched_names`]), so they wake the run loop whether they exist yet or not.
    pub fn start(
        sensor: &mut Sensor,
        policy: &Policy,
        home: Option<std::path::PathBuf>,
        cwd: Option<std::path::PathBuf>,
    ) -> Result<SensitiveWatch> {
        sensor.watch_names(&watched_names(policy))?;
        let found = identities(&crate::confine::sensitive_files_direct(
            policy,
            home.as_deref(),
            cwd.as_deref(),
        ));
        for ((dev, ino), _) in &found {
            sensor.watch_open(*dev, *ino)?;
        }
        let policy = policy.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Background work: leave the CPU to the agent and the run loop (Linux applies a
            // thread id's priority to that thread only).
            // SAFETY: gettid and setpriority have no memory-safety preconditions.
            unsafe {
                let tid = libc::gettid() as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 19);
            }
            let files = crate::confine::sensitive_files(&policy, home.as_deref(), cwd.as_deref());
            let _ = tx.send(identities(&files));
        });
        Ok(SensitiveWatch {
            walk: Some(rx),
            found,
        })
    }

    /// Put the files found into the sensor once the walk is done (call from the run loop), and
    /// return those detection has not been told of yet (it matches them by identity too).
    pub fn apply(&mut self, sensor: &Sensor) -> Result<Vec<SensitiveFile>> {
        if let Some(rx) = &self.walk {
            match rx.try_recv() {
                Ok(files) => {
                    for ((dev, ino), _) in &files {
                        sensor.watch_open(*dev, *ino)?;
                    }
                    self.found.extend(files);
                    self.walk = None;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
                Err(std::sync::mpsc::TryRecvError::Disconnected) => self.walk = None,
            }
        }
        Ok(std::mem::take(&mut self.found))
    }
}

/// The sensitive files the BPF LSM `file_open` hook refuses for `policy` (the paths Landlock
/// would deny, a directory with the files beneath it, up to a bound), by identity (st_dev
/// encoding, as decision records carry it) with the path for the records.
fn lsm_file_ids(
    policy: &Policy,
    home: Option<&std::path::Path>,
    cwd: Option<&std::path::Path>,
) -> std::collections::HashMap<(u64, u64), proctor_model::Bytes> {
    use std::os::unix::fs::MetadataExt;
    let mut files = Vec::new();
    for d in &crate::confine::sensitive_paths(policy, home, cwd) {
        crate::confine::files_beneath(d, &mut files);
    }
    files
        .iter()
        .filter_map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((
                (m.dev(), m.ino()),
                proctor_model::Bytes::from(f.as_os_str().as_bytes().to_vec()),
            ))
        })
        .collect()
}

/// `[enforce].allow_exec`: refuse every executable in `[interpreters].dirs` that is none of the
/// allowed binaries, by device+inode (so a symlink, hard link or rename of an allowed binary is
/// allowed, and of a refused one refused). Returns the refused identities and the allowed
/// count. The identities are taken now: a binary installed later in those directories is not
/// refused.
fn default_deny_exec(
    sensor: &mut Sensor,
    policy: &Policy,
) -> Result<(std::collections::HashSet<(u64, u64)>, usize)> {
    use std::collections::HashSet;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut allowed = HashSet::new();
    for path in &policy.enforce.allow_exec {
        match std::fs::metadata(path) {
            Ok(m) => {
                allowed.insert((m.dev(), m.ino()));
            }
            // Not on this host: nothing to allow, and nothing it could name is refused wrongly.
            Err(err) => tracing::debug!("[enforce].allow_exec names {path}: {err}"),
        }
    }
    let mut refused = HashSet::new();
    for dir in &policy.interpreter_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(m) = std::fs::metadata(entry.path()) else {
                continue; // a dangling symlink runs nothing
            };
            let id = (m.dev(), m.ino());
            if !m.is_file() || m.permissions().mode() & 0o111 == 0 || allowed.contains(&id) {
                continue;
            }
            if refused.insert(id) {
                sensor.deny_exec(id.0, id.1).with_context(|| {
                    format!(
                        "allow_exec: refusing {} (the kernel's deny list holds 4096 binaries)",
                        entry.path().display()
                    )
                })?;
            }
        }
    }
    Ok((refused, allowed.len()))
}

/// A write-open, removal, rename or link by the agent in proctor's output directory `out` (an
/// absolute path without symlinks): what was tried, for a tamper record. Nothing refuses these,
/// so they are alerted: an agent deleting the log leaves the alert in the outputs that ship it.
/// `run` and `attach` watch their `--out`, the daemon its state directory (every session's).
pub fn evidence_violation(out: &std::path::Path, r: &proctor_model::Record) -> Option<String> {
    let inside = |p: &[u8]| std::path::Path::new(std::ffi::OsStr::from_bytes(p)).starts_with(out);
    match &r.event {
        proctor_model::Event::PathChange(c) => {
            let names = std::iter::once(&c.path).chain(c.new_path.as_ref());
            let hit = names
                .filter(|p| c.op != "symlink" || !std::ptr::eq(*p, &c.path))
                .find(|p| inside(p.as_bytes()))?;
            Some(format!(
                "{} of {} in proctor's output directory",
                c.op,
                hit.escaped()
            ))
        }
        proctor_model::Event::FileOpen(f)
            if f.error.is_none()
                && (f.access != proctor_model::Access::Read || f.truncate)
                && inside(f.path.as_bytes()) =>
        {
            Some(format!(
                "write-open of {} in proctor's output directory{}",
                f.path.escaped(),
                if f.truncate { " (truncating it)" } else { "" }
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod watched_names_tests {
    use super::*;

    #[test]
    fn the_default_policy_names_its_credential_and_persistence_files() {
        let policy = Policy::from_toml_str("", "built-in").expect("the built-in policy");
        let names: Vec<String> = watched_names(&policy)
            .into_iter()
            .map(|n| String::from_utf8(n).unwrap())
            .collect();
        for want in [
            ".aws", ".kube", ".docker", ".ssh", ".gnupg", ".netrc", ".env", "shadow", ".bashrc",
            "crontabs",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
        // A hidden directory is taken before a common file name in it (`**/.kube/config`
        // would otherwise name every repository's `.git/config`).
        for not in [
            "config",
            "config.json",
            "credentials",
            "config.yaml",
            "tmp",
            ".config",
            "cache",
        ] {
            assert!(!names.iter().any(|n| n == not), "{not} in {names:?}");
        }
        // Wildcards and placeholders are never taken for names; each name once.
        for n in &names {
            assert!(
                !n.contains(['*', '?', '/']) && !n.starts_with('$') && n != "~",
                "{n}"
            );
        }
        let mut uniq = names.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), names.len());
        // `proctor policy check` speaks of an operator's patterns only.
        assert_eq!(common_watched(&policy), []);
    }

    #[test]
    fn a_pattern_that_watches_a_common_name_is_named_with_it() {
        let policy = Policy::from_toml_str(
            "[files]\nsensitive = [\"/tmp/x*\", \"**/deploy/config.json\", \"**/.vault/key\"]\n\
             persistence = [\"~/bin/*\", \"/srv/a/b\"]\n",
            "test",
        )
        .expect("a valid policy");
        assert_eq!(
            common_watched(&policy),
            [
                ("/tmp/x*".to_string(), "tmp".to_string()),
                (
                    "**/deploy/config.json".to_string(),
                    "config.json".to_string()
                ),
                ("~/bin/*".to_string(), "bin".to_string()),
                ("/srv/a/b".to_string(), "b".to_string()),
            ]
        );
    }
}
