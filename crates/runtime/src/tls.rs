//! TLS in the monitoring loop:
//! - with `--capture-tls`, which library files get uprobes: the system's libssl.so.3 and
//!   libgnutls.so.30 at start, then any other copy a tracked process maps (found in
//!   /proc/PID/maps shortly after its exec and whenever it sends a ClientHello), once per file;
//! - `tls_blind` records, once per binary: an executable that carries its own TLS (ELF
//!   inspection at exec), or a ClientHello a tracked thread sent from outside every hooked call;
//! - the plaintext pipeline of each `tls` record: raw data to the LLM tracker, then redaction
//!   (unless `--tls-raw`) before anything is written.

use anyhow::{Context, Result};
use proctor_intent::{LlmTracker, Redactor};
use proctor_intercept::Captured;
use proctor_model::{Bytes, Event, Record, TlsBlind};
use proctor_sensor::tls::{
    mapped_libraries, static_tls, system_libraries, ExeTls, InterceptMap, StaticTlsCache, TlsLib,
};
use proctor_sensor::Sensor;
use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

/// `--capture-tls` and its options (run, attach, calibrate).
#[derive(Clone, Debug, Default)]
pub struct TlsOpts {
    /// Record the plaintext of tracked processes' TLS calls; off by default. Secrets are
    /// redacted before anything is written unless `tls_raw`
    pub capture_tls: bool,
    /// Write plaintext as captured, secrets included
    pub tls_raw: bool,
    /// Plaintext bytes kept per TLS call (1 to TLS_MAX_BYTES_LIMIT; default 65536)
    pub tls_max_bytes: Option<u32>,
    /// With --capture-tls (run only): interception mode, for agents whose TLS cannot be hooked
    /// (rustls, static BoringSSL). The agent's TCP connects to port 443 (and --tls-intercept-port)
    /// are redirected in the kernel to a TLS-terminating proxy inside proctor with a CA made
    /// for this run, which the agent is told to trust (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE,
    /// REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, CODEX_CA_CERTIFICATE); the proxy verifies the real
    /// destination against the system's roots and SSL_CERT_FILE
    pub tls_intercept: bool,
    /// With --tls-intercept: another destination port to intercept (repeatable; 443 always is)
    pub tls_intercept_port: Vec<u16>,
}

impl TlsOpts {
    /// What the sensor keeps per call: None when capture is off.
    pub fn max_bytes(&self) -> Option<u32> {
        self.capture_tls.then(|| {
            self.tls_max_bytes
                .unwrap_or(proctor_sensor::TLS_DEFAULT_MAX_BYTES)
        })
    }

    pub fn redaction(&self) -> &'static str {
        if self.tls_raw {
            "raw"
        } else {
            "redacted"
        }
    }

    /// The start-up banner's line.
    pub fn banner(&self, hooked: &[String]) -> String {
        if !self.capture_tls {
            return "proctor: TLS plaintext capture off (--capture-tls turns it on); TLS server names (SNI) are recorded".into();
        }
        format!(
            "proctor: TLS plaintext capture ON, up to {} bytes per call, secrets {} ; hooked: {}",
            self.max_bytes().unwrap_or_default(),
            if self.tls_raw {
                "NOT redacted (--tls-raw)"
            } else {
                "redacted"
            },
            if hooked.is_empty() {
                "no system TLS library yet (copies are hooked as tracked processes map them)"
                    .to_string()
            } else {
                hooked.join(", ")
            }
        )
    }
}

/// The interception proxy of a run, and what the agent was told.
struct Intercept {
    rx: std::sync::mpsc::Receiver<Captured>,
}

/// Exited processes remembered for the proxy's late reports.
const GONE_KEPT: usize = 256;

/// The CA certificate file the agent trusts, and the bundle of it and the usual roots.
const CA_FILE: &str = "tls-intercept-ca.pem";
const BUNDLE_FILE: &str = "tls-intercept-bundle.pem";

/// When to look at a new process's mappings after its exec: libraries load after exec (a
/// dynamic linker, or a later dlopen such as Python's `import ssl`).
const SCANS_AFTER_EXEC: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(10),
];
/// At most one scan per process for a burst of ClientHellos.
const SNI_RESCAN: Duration = Duration::from_secs(1);

struct Proc {
    binary: Bytes,
    /// Of its latest record: what records the proxy makes for it carry.
    exec_id: String,
    comm: Bytes,
    ppid: u32,
    dev: u64,
    ino: u64,
    last_scan: Option<Instant>,
    /// A scan found a hooked TLS library mapped in the process.
    maps_hooked: bool,
    /// A `tls` record of this process was captured: its TLS is hooked, whatever else we saw.
    captured: bool,
    /// A hello sent from outside every hooked call while the process's maps could no longer be
    /// read (it had exited by the time we looked): decided at its exit record, by whether any
    /// of its calls were captured meanwhile.
    suspect: Option<Record>,
}

/// TLS state of one monitoring run with `--capture-tls`.
pub struct TlsWatch {
    raw: bool,
    procs: HashMap<u32, Proc>,
    /// Binaries (dev, ino) already reported blind.
    blind: HashSet<(u64, u64)>,
    /// What each executable run carries of its own TLS, read once per file content.
    exe_tls: StaticTlsCache,
    due: Vec<(Instant, u32)>,
    /// Library files that could not be hooked (dev, ino), so they are tried once.
    failed: HashSet<(u64, u64)>,
    tracker: LlmTracker,
    redactor: Redactor,
    intercept: Option<Intercept>,
    /// Interception mode: processes that exited lately, newest last.
    gone: std::collections::VecDeque<(u32, Proc)>,
    max_bytes: usize,
}

impl TlsWatch {
    /// Hook the system's TLS libraries. Returns the watch and what was hooked. A system library
    /// that exists and cannot be hooked is an error: capture was asked for and would be blind.
    pub fn start(sensor: &mut Sensor, opts: &TlsOpts) -> Result<(TlsWatch, Vec<String>)> {
        let mut hooked = Vec::new();
        for path in system_libraries() {
            let Some(lib) = TlsLib::of_path(&path) else {
                continue;
            };
            sensor
                .hook_library(&path, lib)
                .with_context(|| format!("--capture-tls: hooking {}", path.display()))?;
            hooked.push(format!("{} ({})", path.display(), lib.as_str()));
        }
        // Runtimes that export their linked-in TLS library (Node.js) are hooked now too, not
        // at their exec: a short script's first request would be on its way before the hook.
        for path in exported_runtimes() {
            if let Some(ExeTls::Exported(lib)) = static_tls(&path, None) {
                match sensor.hook_executable(&path, lib) {
                    Ok(true) => {
                        hooked.push(format!("{} ({}, exported)", path.display(), lib.as_str()))
                    }
                    Ok(false) => {}
                    // Tried again at its exec, where a failure becomes a tls_blind record.
                    Err(e) => eprintln!(
                        "proctor: TLS capture: cannot hook {}: {:#}",
                        path.display(),
                        anyhow::Error::new(e)
                    ),
                }
            }
        }
        Ok((
            TlsWatch::new(opts.tls_raw, opts.max_bytes().unwrap_or_default() as usize),
            hooked,
        ))
    }

    /// A watch with nothing hooked: the plaintext pipeline alone (`raw`: no redaction;
    /// `max_bytes`: what the interception proxy keeps per record).
    pub fn new(raw: bool, max_bytes: usize) -> TlsWatch {
        TlsWatch {
            raw,
            procs: HashMap::new(),
            blind: HashSet::new(),
            exe_tls: StaticTlsCache::new(),
            due: Vec::new(),
            failed: HashSet::new(),
            tracker: LlmTracker::new(),
            redactor: Redactor::new(),
            intercept: None,
            gone: std::collections::VecDeque::new(),
            max_bytes,
        }
    }

    /// Start interception mode for the agent's cgroup (its directory open as `cgroup_fd`):
    /// the proxy, the CA files in `out`, the kernel redirect. Returns the environment the agent
    /// must get to trust the CA, and the banner line.
    pub fn intercept(
        &mut self,
        sensor: &mut Sensor,
        cgroup_fd: std::os::fd::RawFd,
        opts: &TlsOpts,
        out: &std::path::Path,
    ) -> Result<(Vec<(&'static str, std::path::PathBuf)>, String)> {
        let ca = proctor_intercept::Ca::new()?;
        let env_file = |v| std::env::var_os(v).map(std::path::PathBuf::from);
        let (ssl_file, node_extra) = (env_file("SSL_CERT_FILE"), env_file("NODE_EXTRA_CA_CERTS"));
        let extra: Vec<&std::path::Path> = ssl_file
            .iter()
            .chain(&node_extra)
            .map(|p| p.as_path())
            .collect();
        let roots = proctor_intercept::roots(&extra)?;
        let ca_file = out.join(CA_FILE);
        let bundle_file = out.join(BUNDLE_FILE);
        // The bundle: the CA, then what the agent trusted before (its SSL_CERT_FILE, else the
        // system's, and its NODE_EXTRA_CA_CERTS), so its connections that are not intercepted
        // still verify. Every variable points at it (each names one file).
        let mut bundle = ca.pem().into_bytes();
        let system = std::path::PathBuf::from("/etc/ssl/certs/ca-certificates.crt");
        let before = ssl_file
            .clone()
            .or_else(|| system.exists().then_some(system));
        for p in before.iter().chain(&node_extra) {
            bundle.push(b'\n');
            bundle.extend(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?);
        }
        std::fs::write(&ca_file, ca.pem())
            .with_context(|| format!("writing {}", ca_file.display()))?;
        std::fs::write(&bundle_file, bundle)
            .with_context(|| format!("writing {}", bundle_file.display()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let map = std::sync::Arc::new(std::sync::Mutex::new(None::<InterceptMap>));
        let lookup_map = map.clone();
        let lookup: proctor_intercept::Lookup = std::sync::Arc::new(move |peer| {
            let m = lookup_map.lock().unwrap_or_else(|e| e.into_inner());
            m.as_ref()?
                .take(peer)
                .map(|(pid, dest)| proctor_intercept::Original { pid, dest })
        });
        let proxy = proctor_intercept::Proxy::start(ca, roots, lookup, tx, self.max_bytes)?;
        let mut ports = vec![443];
        ports.extend(
            opts.tls_intercept_port
                .iter()
                .copied()
                .filter(|&p| p != 443),
        );
        let handle = sensor
            .intercept(cgroup_fd, proxy.port4, proxy.port6, &ports)
            .context("--tls-intercept: redirecting the agent's connects")?;
        *map.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        self.intercept = Some(Intercept { rx });
        let env = vec![
            ("NODE_EXTRA_CA_CERTS", bundle_file.clone()),
            ("SSL_CERT_FILE", bundle_file.clone()),
            ("REQUESTS_CA_BUNDLE", bundle_file.clone()),
            ("CURL_CA_BUNDLE", bundle_file.clone()),
            ("CODEX_CA_CERTIFICATE", bundle_file.clone()),
        ];
        let banner = format!(
            "proctor: TLS INTERCEPTION ON: the agent's TCP connects to port{} {} go to proctor's TLS proxy (127.0.0.1:{}{}), which verifies the real destination; the agent trusts this run's CA {} through NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, CODEX_CA_CERTIFICATE; a client that refuses it fails closed",
            if ports.len() > 1 { "s" } else { "" },
            ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
            proxy.port4,
            proxy.port6.map(|p| format!(", [::1]:{p}")).unwrap_or_default(),
            ca_file.display(),
        );
        Ok((env, banner))
    }

    /// What the interception proxy reported since the last call. Read the ring buffer after
    /// taking it, for the kernel's records that [`TlsWatch::intercepted`] attributes it by:
    /// everything the client did before the proxy saw it (its exec, its connect) is in the
    /// ring by then.
    pub fn take_captured(&mut self) -> Vec<Captured> {
        match &self.intercept {
            Some(i) => i.rx.try_iter().collect(),
            None => Vec::new(),
        }
    }

    /// Records of what the interception proxy saw (`tls` records, before their pipeline in
    /// [`TlsWatch::process`]; `tls_blind` for refused connections), each attributed to its
    /// process as it was then: by the latest of `recent` (kernel records not yet followed, in
    /// order) from that process up to the report's time, else by what this watch followed.
    /// Without the first, a client's report that came with its own exec record in one poll
    /// would carry the name of the shell that forked it.
    pub fn intercepted(
        &mut self,
        agent_id: &str,
        root: &Record,
        captured: Vec<Captured>,
        recent: &[Record],
    ) -> Vec<Record> {
        let mut out = Vec::new();
        for c in captured {
            let (pid, ts_ns) = match &c {
                Captured::Data { pid, ts_ns, .. } | Captured::Refused { pid, ts_ns, .. } => {
                    (*pid, *ts_ns)
                }
            };
            let p = self.procs.get(&pid).or_else(|| {
                self.gone
                    .iter()
                    .rev()
                    .find(|(g, _)| *g == pid)
                    .map(|(_, p)| p)
            });
            let mut mine = recent
                .iter()
                .rev()
                .filter(|r| r.pid == pid && r.ts_ns <= ts_ns);
            let seen = mine.next();
            // The executable, when that process's exec is among them too.
            let binary = seen.into_iter().chain(mine).find_map(|r| match &r.event {
                Event::Exec(e) => Some(e.filename.clone()),
                _ => None,
            });
            let (ppid, comm, exec_id) = match (seen, p) {
                (Some(r), _) => (r.ppid, r.comm.clone(), r.exec_id.clone()),
                (None, Some(p)) => (p.ppid, p.comm.clone(), p.exec_id.clone()),
                (None, None) => (root.ppid, root.comm.clone(), root.exec_id.clone()),
            };
            let mut r = Record {
                event: Event::Lost(proctor_model::Lost {
                    what: String::new(),
                    count: 0,
                }),
                ts_ns,
                agent_id: agent_id.to_string(),
                pid: if seen.is_some() || p.is_some() {
                    pid
                } else {
                    root.pid
                },
                ppid,
                comm,
                exec_id,
                identity: None,
                kseq: None,
            };
            r.event = match c {
                Captured::Data {
                    conn,
                    dest,
                    direction,
                    len,
                    data,
                    ..
                } => Event::Tls(proctor_model::Tls {
                    direction,
                    lib: "intercept".into(),
                    conn,
                    peer: Some(proctor_model::SockAddr {
                        family: if dest.is_ipv4() {
                            proctor_model::Family::Inet
                        } else {
                            proctor_model::Family::Inet6
                        },
                        addr: Some(dest.ip().to_string()),
                        port: Some(dest.port()),
                        path: None,
                    }),
                    truncated: (data.len() as u64) < len,
                    len,
                    data: Bytes(data),
                    redacted: 0,
                }),
                Captured::Refused { dest, reason, .. } => Event::TlsBlind(TlsBlind {
                    binary: binary
                        .unwrap_or_else(|| p.map_or_else(Bytes::default, |p| p.binary.clone())),
                    reason: match dest {
                        Some(d) => format!("intercept-refused {d}: {reason}"),
                        None => format!("intercept-refused: {reason}"),
                    },
                }),
            };
            out.push(r);
        }
        out
    }

    /// Follow one record; returns records to write right after it (`tls_blind`).
    pub fn observe(&mut self, sensor: &mut Sensor, r: &Record) -> Vec<Record> {
        let mut out = Vec::new();
        if let Some(p) = self.procs.get_mut(&r.pid) {
            if p.exec_id != r.exec_id {
                p.exec_id.clone_from(&r.exec_id);
                p.comm = r.comm.clone();
                p.ppid = r.ppid;
            }
        }
        match &r.event {
            Event::Exec(e) => {
                self.procs.insert(
                    r.pid,
                    Proc {
                        binary: e.filename.clone(),
                        exec_id: r.exec_id.clone(),
                        comm: r.comm.clone(),
                        ppid: r.ppid,
                        dev: e.dev,
                        ino: e.ino,
                        last_scan: None,
                        maps_hooked: false,
                        captured: false,
                        suspect: None,
                    },
                );
                let now = Instant::now();
                self.due
                    .extend(SCANS_AFTER_EXEC.iter().map(|d| (now + *d, r.pid)));
                // What ran, not what its inode held when it was last seen: an agent may
                // overwrite a hooked or blind binary in place (the same device and inode) with
                // another. The answers are kept by the file's stamp, the kernel's at the exec,
                // so this reads a file once per content.
                let paths = proctor_sensor::stamp::executed(r.pid, &e.filename.0);
                match self.exe_tls.first(&paths, Some((e.dev, e.ino)), e.at_exec) {
                    // Reported once per binary.
                    Some(ExeTls::Blind(reason)) if self.blind.insert((e.dev, e.ino)) => {
                        out.push(blind_record(r, e.filename.clone(), reason));
                    }
                    Some(ExeTls::Exported(lib)) if !sensor.is_hooked(e.dev, e.ino) => {
                        self.hook_exe(sensor, r, &paths, lib, &mut out)
                    }
                    Some(ExeTls::Exported(_)) | None if sensor.is_hooked(e.dev, e.ino) => {
                        self.mark_hooked(r.pid)
                    }
                    _ => {}
                }
            }
            Event::TlsSni(_) => {
                self.ensure_proc(r.pid);
                let recent = self
                    .procs
                    .get(&r.pid)
                    .and_then(|p| p.last_scan)
                    .is_some_and(|t| t.elapsed() < SNI_RESCAN);
                let mut readable = true;
                if !recent {
                    readable = self.scan(sensor, r.pid);
                }
                // A hello sent from outside every hooked call is blind TLS only if no hooked
                // library is mapped either: asyncio, for one, drives OpenSSL through memory
                // BIOs and sends the bytes itself, yet its SSL_write_ex calls are captured.
                let outside = sensor.hello_outside_hooks(r.pid, r.ts_ns);
                let mapped = |w: &Self| w.procs.get(&r.pid).is_some_and(|p| p.maps_hooked);
                if outside && !mapped(self) && recent {
                    // the library may have loaded since that scan
                    readable = self.scan(sensor, r.pid);
                }
                let captured = self.procs.get(&r.pid).is_some_and(|p| p.captured);
                if outside && !mapped(self) && !captured {
                    if !readable {
                        // Gone before we looked: its exit record says more (see `suspect`).
                        if let Some(p) = self.procs.get_mut(&r.pid) {
                            p.suspect.get_or_insert_with(|| r.clone());
                        }
                    } else if let Some(p) = self.procs.get(&r.pid) {
                        if self.blind.insert((p.dev, p.ino)) {
                            out.push(blind_record(r, p.binary.clone(), "no-hookable-library"));
                        }
                    }
                }
            }
            Event::Tls(_) => {
                if let Some(p) = self.procs.get_mut(&r.pid) {
                    p.captured = true;
                    p.suspect = None;
                }
            }
            Event::Exit(_) => {
                if let Some(mut p) = self.procs.remove(&r.pid) {
                    if let Some(hello) = p.suspect.take() {
                        if !p.captured && !p.maps_hooked && self.blind.insert((p.dev, p.ino)) {
                            out.push(blind_record(
                                &hello,
                                p.binary.clone(),
                                "no-hookable-library",
                            ));
                        }
                    }
                    // The proxy may still report on its connections (a refusal comes after
                    // the client gave up): it is named by who it was.
                    if self.intercept.is_some() {
                        if self.gone.len() >= GONE_KEPT {
                            self.gone.pop_front();
                        }
                        self.gone.push_back((r.pid, p));
                    }
                }
                self.tracker.close_pid(r.pid);
            }
            _ => {}
        }
        out
    }

    /// Hook an executable that exports its linked-in TLS library's calls (Node.js), through the
    /// first of `paths` that still is the exec'd file (/proc/PID/exe is gone once the process
    /// is). Fails into a `tls_blind` record: capture was asked for and this binary would
    /// otherwise be silently unseen.
    fn hook_exe(
        &mut self,
        sensor: &mut Sensor,
        r: &Record,
        paths: &[std::path::PathBuf],
        lib: TlsLib,
        out: &mut Vec<Record>,
    ) {
        use std::os::unix::fs::MetadataExt;
        let Event::Exec(e) = &r.event else { return };
        let (list, id) = (paths.to_vec(), (e.dev, e.ino));
        // The agent's paths: looked at off the loop (see `proctor_sensor::offloop`).
        let found = proctor_sensor::offloop::within(move || {
            list.into_iter()
                .find(|p| std::fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == id))
        });
        let Some(Some(path)) = found else {
            return; // neither is the exec'd file any more (its processes are gone), or no answer
        };
        let path = &path;
        match sensor.hook_executable(path, lib) {
            Ok(new) => {
                self.mark_hooked(r.pid);
                if new {
                    eprintln!(
                        "proctor: TLS capture: hooked {} ({}, exported by the executable)",
                        String::from_utf8_lossy(&e.filename.0),
                        lib.as_str()
                    );
                }
            }
            Err(err) => {
                eprintln!(
                    "proctor: TLS capture: cannot hook {}: {:#}",
                    String::from_utf8_lossy(&e.filename.0),
                    anyhow::Error::new(err)
                );
                if self.blind.insert((e.dev, e.ino)) {
                    out.push(blind_record(r, e.filename.clone(), "exported-unhookable"));
                }
            }
        }
    }

    /// Know a tracked process's executable: from its exec record, else (a process that was
    /// running before `attach`) from /proc.
    fn ensure_proc(&mut self, pid: u32) {
        use std::os::unix::fs::MetadataExt;
        if self.procs.contains_key(&pid) {
            return;
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
        let meta = std::fs::metadata(format!("/proc/{pid}/exe"));
        if let (Ok(exe), Ok(meta)) = (exe, meta) {
            self.procs.insert(
                pid,
                Proc {
                    binary: Bytes(exe.as_os_str().as_bytes().to_vec()),
                    exec_id: String::new(),
                    comm: Bytes(
                        std::fs::read(format!("/proc/{pid}/comm"))
                            .map(|mut c| {
                                c.pop();
                                c
                            })
                            .unwrap_or_default(),
                    ),
                    ppid: 0,
                    dev: meta.dev(),
                    ino: meta.ino(),
                    last_scan: None,
                    maps_hooked: false,
                    captured: false,
                    suspect: None,
                },
            );
        }
    }

    /// A process that was running before `attach`: hook the TLS libraries it maps now. (Its
    /// executable is not inspected for static TLS: that happens at exec; a ClientHello it sends
    /// from outside any hooked call still makes it `tls_blind`.)
    pub fn adopt(&mut self, sensor: &mut Sensor, pid: u32) {
        self.ensure_proc(pid);
        self.scan(sensor, pid);
    }

    /// Periodic work: the scans that are due.
    pub fn tick(&mut self, sensor: &mut Sensor) {
        if self.due.is_empty() {
            return;
        }
        let now = Instant::now();
        let (ready, later): (Vec<_>, Vec<_>) = self.due.drain(..).partition(|(t, _)| *t <= now);
        self.due = later;
        let pids: HashSet<u32> = ready.into_iter().map(|(_, p)| p).collect();
        for pid in pids {
            if self.procs.contains_key(&pid) {
                self.scan(sensor, pid);
            }
        }
    }

    /// Hook every TLS library `pid` maps that is not hooked yet. False when its maps could
    /// not be read (it is gone).
    fn scan(&mut self, sensor: &mut Sensor, pid: u32) -> bool {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.last_scan = Some(Instant::now());
        }
        let Ok(libs) = mapped_libraries(pid) else {
            return false; // gone already
        };
        for m in libs {
            if sensor.is_hooked(m.dev, m.ino) {
                self.mark_hooked(pid);
                continue;
            }
            if self.failed.contains(&(m.dev, m.ino)) {
                continue;
            }
            match sensor.hook_library(&m.path, m.lib) {
                Ok(_) => {
                    self.mark_hooked(pid);
                    eprintln!(
                        "proctor: TLS capture: hooked {} ({}, mapped by pid {pid})",
                        m.path.display(),
                        m.lib.as_str()
                    )
                }
                Err(e) => {
                    self.failed.insert((m.dev, m.ino));
                    eprintln!(
                        "proctor: TLS capture: cannot hook {} mapped by pid {pid}: {e:#}",
                        m.path.display()
                    );
                }
            }
        }
        true
    }

    fn mark_hooked(&mut self, pid: u32) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.maps_hooked = true;
        }
    }

    /// The plaintext pipeline of one `tls` record: returns the record to write and the records
    /// that follow it. Redaction happens here, before anything is written.
    pub fn process(&mut self, mut r: Record) -> (Record, Vec<Record>) {
        let Event::Tls(t) = &mut r.event else {
            return (r, Vec::new());
        };
        // The parser needs the bytes as they were (a redacted header could break framing); it
        // redacts what it reports itself.
        let llm = self
            .tracker
            .feed(r.pid, t.conn, t.direction, &t.data.0, t.truncated);
        if !self.raw {
            let (data, n) = self.redactor.redact(&t.data.0);
            t.data = Bytes(data);
            t.redacted = n;
        }
        let follow = llm
            .into_iter()
            .map(|event| Record {
                event,
                ts_ns: r.ts_ns,
                agent_id: r.agent_id.clone(),
                pid: r.pid,
                ppid: r.ppid,
                comm: r.comm.clone(),
                exec_id: r.exec_id.clone(),
                identity: r.identity,
                kseq: None,
            })
            .collect();
        (r, follow)
    }

    /// What the LLM parser saw and could not report, for the end-of-run record.
    pub fn stats(&self) -> proctor_model::TlsParserStats {
        self.tracker.stats()
    }
}

/// The kernel's records with the proxy's slotted in by time, the kernel's order kept: a
/// process's exit must come after the data the proxy relayed for it, or the LLM exchange in
/// progress is dropped with the process.
pub fn merge_by_time(kernel: Vec<Record>, proxy: Vec<Record>) -> Vec<Record> {
    if proxy.is_empty() {
        return kernel;
    }
    let mut out = Vec::with_capacity(kernel.len() + proxy.len());
    let mut proxy = proxy.into_iter().peekable();
    for r in kernel {
        while let Some(p) = proxy.next_if(|p| p.ts_ns <= r.ts_ns) {
            out.push(p);
        }
        out.push(r);
    }
    out.extend(proxy);
    out
}

/// The Node.js executables on PATH (the agent inherits proctor's environment under `run`).
fn exported_runtimes() -> Vec<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut seen = HashSet::new();
    std::env::split_paths(&path)
        .flat_map(|d| ["node", "nodejs"].map(|n| d.join(n)))
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .filter(|p| seen.insert(p.clone()))
        .collect()
}

fn blind_record(r: &Record, binary: Bytes, reason: &str) -> Record {
    Record {
        event: Event::TlsBlind(TlsBlind {
            binary,
            reason: reason.to_string(),
        }),
        ..r.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn rec(pid: u32, ts_ns: u64, comm: &str, event: Value) -> Record {
        let mut v = event;
        v["ts_ns"] = json!(ts_ns);
        v["agent_id"] = json!("agent");
        v["pid"] = json!(pid);
        v["ppid"] = json!(1);
        v["comm"] = json!(comm);
        v["exec_id"] = json!(format!("{pid}-{ts_ns}"));
        serde_json::from_value(v).expect("a valid record")
    }

    fn exec(pid: u32, ts_ns: u64, comm: &str, file: &str) -> Record {
        rec(
            pid,
            ts_ns,
            comm,
            json!({"type": "exec", "filename": file, "argv": [comm], "argv_truncated": false,
                   "dev": 1, "ino": 2}),
        )
    }

    /// A client's bytes reach the proxy after its exec is in the ring, and often in the same
    /// poll as it: they are the client's, not the shell's that forked it (seen as a flake of
    /// tests/tls.rs: curl's records named `sh`).
    #[test]
    fn the_proxys_reports_name_the_process_as_the_kernels_records_show_it_then() {
        let mut w = TlsWatch::new(false, 4096);
        let root = rec(
            1,
            1,
            "agent",
            json!({"type": "lost", "what": "", "count": 0}),
        );
        let recent = vec![
            exec(42, 100, "sh", "/bin/sh"),
            exec(42, 200, "curl", "/usr/bin/curl"),
            exec(42, 300, "later", "/usr/bin/later"),
        ];
        let dest: std::net::SocketAddr = "127.0.0.1:443".parse().unwrap();
        let captured = vec![
            Captured::Data {
                ts_ns: 250,
                pid: 42,
                conn: 1,
                dest,
                direction: proctor_model::TlsDirection::Send,
                len: 3,
                data: b"GET".to_vec(),
            },
            Captured::Refused {
                ts_ns: 260,
                pid: 42,
                dest: Some(dest),
                reason: "bad certificate".into(),
            },
            Captured::Refused {
                ts_ns: 270,
                pid: 7,
                dest: None,
                reason: "unknown".into(),
            },
        ];
        let out = w.intercepted("agent", &root, captured, &recent);
        assert_eq!(out.len(), 3);
        for r in &out[..2] {
            assert_eq!(
                (r.pid, r.comm.0.as_slice()),
                (42, b"curl".as_slice()),
                "{r:?}"
            );
            assert_eq!(r.exec_id, "42-200");
        }
        match &out[1].event {
            Event::TlsBlind(b) => assert_eq!(b.binary.0, b"/usr/bin/curl"),
            e => panic!("{e:?}"),
        }
        // Nothing known of the process: the agent's root answers for it.
        assert_eq!(
            (out[2].pid, out[2].comm.0.as_slice()),
            (1, b"agent".as_slice())
        );
    }
}
