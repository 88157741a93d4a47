//! proctor's Prometheus endpoint (`--metrics ADDR`): `/metrics` in the OpenMetrics text format
//! and `/healthz`, served by a small HTTP server on its own thread.
//!
//! - [`Metrics`]: the registry and its metric families, shared by the run loop and the server.
//!   Everything the loop updates is an atomic counter or gauge, so a scrape never waits for the
//!   loop and the loop never waits for a scrape.
//! - [`Recorder`]: the run loop's handle; it caches a counter per record kind so the per-record
//!   cost is a hash lookup and an atomic add.
//! - [`Health`]: what `/healthz` judges (sensor attached, loop still draining).
//! - Sources ([`Metrics::set_programs`], [`Metrics::set_process`], [`Metrics::add_outputs`]):
//!   values read at scrape time on the server's thread (per-program kernel stats, proctor's own
//!   CPU and memory, output queues), so their cost falls on the scraper, not the loop.
//! - [`Server`]: the HTTP thread; dropping it stops the thread and closes the socket.
//!
//! Kernel-free by design: the run loop wires the sources to the sensor, and everything here
//! is tested without root.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The `[metrics]` section of a configuration file, and what `--metrics ADDR` builds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to serve `/metrics` and `/healthz` on, e.g. `127.0.0.1:9464` (port 0: any free
    /// port, printed at start).
    pub listen: SocketAddr,
    /// Serve on an address other than loopback. Off by default: the endpoint has no
    /// authentication, and its series name what the agent does (record and alert kinds).
    #[serde(default)]
    pub allow_remote: bool,
}

impl MetricsConfig {
    /// Refuse a non-loopback address unless `allow_remote`.
    pub fn check(&self) -> Result<(), MetricsError> {
        if self.listen.ip().is_loopback() || self.allow_remote {
            Ok(())
        } else {
            Err(MetricsError::Remote(self.listen))
        }
    }
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics address {0} is not loopback: the endpoint has no authentication; use 127.0.0.1 or [::1], or allow it explicitly (--metrics-allow-remote, allow_remote = true)")]
    Remote(SocketAddr),
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Run time and run count of one BPF program, as the kernel keeps them (`bpf_prog_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgStat {
    pub name: String,
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

/// Counters of one output queue (syslog, webhook, OTLP, socket...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputStat {
    pub name: String,
    pub sent: u64,
    pub dropped: u64,
    pub failed: u64,
}

/// proctor's own resource use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStat {
    /// User plus system CPU time since proctor started.
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
}

type Source<T> = Box<dyn Fn() -> T + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    kind: String,
    channel: String,
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabel {
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LossLabels {
    kind: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RingLabel {
    ring: String,
}

/// The kind and reason of a loss, from the `what` of a `lost` record: the kernel's per-kind
/// counters count records a full ring buffer refused; the rest name their own reason.
pub fn loss_labels(what: &str) -> (&str, &'static str) {
    match what {
        "track_full" => ("fork", "tracked_set_full"),
        "session_full" => ("exec", "session_slots_full"),
        "kseq_unaccounted" => ("any", "kseq_unaccounted"),
        "recursion" => ("any", "bpf_recursion"),
        "malformed" => ("any", "malformed"),
        "fs_unanswered" => ("any", "fs_unanswered"),
        "alert_delivery" => ("alert", "alert_socket_queue_full"),
        kind => (kind, "ringbuf_full"),
    }
}

/// Values read at scrape time (see the module docs).
#[derive(Default)]
struct Sources {
    programs: Option<Source<Vec<ProgStat>>>,
    process: Option<Source<Option<ProcessStat>>>,
    outputs: Vec<Source<Vec<OutputStat>>>,
}

/// The scrape-time half of the registry: one collector over every source.
#[derive(Clone, Default)]
struct SourceCollector(Arc<RwLock<Sources>>);

impl std::fmt::Debug for SourceCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceCollector")
    }
}

/// One metric family with labels, encoded from plain values.
fn encode_family<S: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&prometheus_client::registry::Unit>,
    rows: impl IntoIterator<Item = (S, M)>,
) -> Result<(), std::fmt::Error> {
    let mut rows = rows.into_iter().peekable();
    let Some((_, first)) = rows.peek() else {
        return Ok(());
    };
    let mut family = enc.encode_descriptor(name, help, unit, first.metric_type())?;
    for (labels, m) in rows {
        m.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for SourceCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sources = self.0.read().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = &sources.programs {
            let progs = p();
            let label = |s: &ProgStat| [("program", s.name.clone())];
            encode_family(
                &mut enc,
                "bpf_program_run_time_seconds",
                "Time the kernel spent running each of proctor's BPF programs (bpf_prog_info run_time_ns, counted while proctor holds BPF_ENABLE_STATS)",
                None,
                progs
                    .iter()
                    .map(|s| (label(s), ConstCounter::new(s.run_time_ns as f64 / 1e9))),
            )?;
            encode_family(
                &mut enc,
                "bpf_program_runs",
                "Runs of each of proctor's BPF programs (bpf_prog_info run_cnt)",
                None,
                progs
                    .iter()
                    .map(|s| (label(s), ConstCounter::new(s.run_cnt))),
            )?;
        }
        if let Some(stat) = sources.process.as_ref().and_then(|p| p()) {
            let cpu = ConstCounter::new(stat.cpu_seconds);
            cpu.encode(enc.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time proctor used",
                None,
                cpu.metric_type(),
            )?)?;
            let rss = ConstGauge::new(stat.resident_bytes as i64);
            rss.encode(enc.encode_descriptor(
                "process_resident_memory_bytes",
                "proctor's resident set size",
                None,
                rss.metric_type(),
            )?)?;
        }
        let outputs: Vec<OutputStat> = sources.outputs.iter().flat_map(|o| o()).collect();
        let label = |s: &OutputStat| [("output", s.name.clone())];
        for (name, help, value) in [
            (
                "output_sent",
                "Items each output delivered",
                (|s: &OutputStat| s.sent) as fn(&OutputStat) -> u64,
            ),
            (
                "output_dropped",
                "Items each output's bounded queue dropped (also recorded as `lost` in the audit log)",
                |s| s.dropped,
            ),
            (
                "output_failed",
                "Items each output gave up on after its retries",
                |s| s.failed,
            ),
        ] {
            encode_family(
                &mut enc,
                name,
                help,
                None,
                outputs
                    .iter()
                    .map(|s| (label(s), ConstCounter::new(value(s)))),
            )?;
        }
        Ok(())
    }
}

/// Liveness as `/healthz` reports it.
#[derive(Debug)]
pub struct Health {
    /// 0 starting, 1 attached, 2 ended.
    state: AtomicU8,
    /// Milliseconds after `epoch` of the loop's last pass.
    last_beat_ms: AtomicU64,
    epoch: Instant,
    stall_after: Duration,
}

impl Health {
    fn new(stall_after: Duration) -> Health {
        Health {
            state: AtomicU8::new(0),
            last_beat_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            stall_after,
        }
    }

    /// The sensor's programs are attached and the loop runs.
    pub fn attached(&self) {
        self.beat();
        self.state.store(1, Ordering::Relaxed);
    }

    /// The session is over: the sensor is (about to be) detached.
    pub fn ended(&self) {
        self.state.store(2, Ordering::Relaxed);
    }

    /// One pass of the loop (a poll of the ring buffers and the handling of what it returned).
    pub fn beat(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// Healthy, or why not.
    pub fn check(&self) -> Result<(), String> {
        match self.state.load(Ordering::Relaxed) {
            0 => return Err("sensor not attached yet".into()),
            2 => return Err("session ended: sensor detached".into()),
            _ => {}
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        let since =
            Duration::from_millis(now.saturating_sub(self.last_beat_ms.load(Ordering::Relaxed)));
        if since > self.stall_after {
            return Err(format!(
                "pipeline stalled: the run loop has not drained the ring buffers for {:.1}s (limit {}s)",
                since.as_secs_f64(),
                self.stall_after.as_secs()
            ));
        }
        Ok(())
    }
}

/// The registry and every family the run loop updates.
pub struct Metrics {
    registry: Registry,
    records: Family<KindLabel, Counter>,
    alerts: Family<AlertLabels, Counter>,
    incidents: Family<SeverityLabel, Counter>,
    incident_updates: Counter,
    lost: Family<LossLabels, Counter>,
    ring_used: Family<RingLabel, Gauge>,
    ring_size: Family<RingLabel, Gauge>,
    agents: Gauge,
    sessions: Gauge,
    pub health: Health,
    sources: SourceCollector,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// How long the loop may go without a pass before `/healthz` says it stalled. The loop waits
/// at most 50 ms for records; seconds without a pass mean it is stuck, not idle.
pub const STALL_AFTER: Duration = Duration::from_secs(5);

impl Metrics {
    pub fn new(version: &str) -> Metrics {
        let mut registry = Registry::with_prefix("proctor");
        let records = Family::<KindLabel, Counter>::default();
        registry.register(
            "records",
            "Records written to the audit log, by record type",
            records.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "alerts",
            "Alerts emitted (each a signed certificate), by kind, channel and severity",
            alerts.clone(),
        );
        let incidents = Family::<SeverityLabel, Counter>::default();
        registry.register(
            "incidents",
            "Incidents opened, by severity when opened",
            incidents.clone(),
        );
        let incident_updates = Counter::default();
        registry.register(
            "incident_updates",
            "Incident records written (an incident is written again each time it grows)",
            incident_updates.clone(),
        );
        let lost = Family::<LossLabels, Counter>::default();
        registry.register(
            "lost_events",
            "Events lost, by kind and reason (every one is also a `lost` record in the audit log)",
            lost.clone(),
        );
        let ring_used = Family::<RingLabel, Gauge>::default();
        registry.register(
            "ringbuf_used_bytes",
            "Bytes waiting in each BPF ring buffer when last sampled (about once a second)",
            ring_used.clone(),
        );
        let ring_size = Family::<RingLabel, Gauge>::default();
        registry.register(
            "ringbuf_size_bytes",
            "Size of each BPF ring buffer",
            ring_size.clone(),
        );
        let agents = Gauge::default();
        registry.register("agents", "Agents monitored", agents.clone());
        let sessions = Gauge::default();
        registry.register("sessions", "Agent sessions monitored", sessions.clone());
        registry.register(
            "build",
            "proctor's version",
            Info::new(vec![("version", version.to_string())]),
        );
        let sources = SourceCollector::default();
        registry.register_collector(Box::new(sources.clone()));
        Metrics {
            registry,
            records,
            alerts,
            incidents,
            incident_updates,
            lost,
            ring_used,
            ring_size,
            agents,
            sessions,
            health: Health::new(STALL_AFTER),
            sources,
        }
    }

    /// The exposition, as `/metrics` serves it.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a collector.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("metrics encoding failed: {e}");
        }
        out
    }

    /// Agents and sessions monitored now.
    pub fn set_agents(&self, agents: i64, sessions: i64) {
        self.agents.set(agents);
        self.sessions.set(sessions);
    }

    /// The fill of one ring buffer.
    pub fn ring(&self, ring: &str, used: u64, size: u64) {
        let l = RingLabel { ring: ring.into() };
        self.ring_used.get_or_create(&l).set(used as i64);
        self.ring_size.get_or_create(&l).set(size as i64);
    }

    /// Per-program kernel stats, read at each scrape.
    pub fn set_programs(&self, f: impl Fn() -> Vec<ProgStat> + Send + Sync + 'static) {
        self.sources_mut().programs = Some(Box::new(f));
    }

    /// proctor's own CPU and memory, read at each scrape.
    pub fn set_process(&self, f: impl Fn() -> Option<ProcessStat> + Send + Sync + 'static) {
        self.sources_mut().process = Some(Box::new(f));
    }

    /// Output queues (sent, dropped, failed per output), read at each scrape. Any number of
    /// callers may add theirs; all appear under `proctor_output_*` labelled by output name.
    pub fn add_outputs(&self, f: impl Fn() -> Vec<OutputStat> + Send + Sync + 'static) {
        self.sources_mut().outputs.push(Box::new(f));
    }

    fn sources_mut(&self) -> std::sync::RwLockWriteGuard<'_, Sources> {
        self.sources.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The run loop's handle on [`Metrics`]: counts records, alerts, incidents and losses.
pub struct Recorder {
    metrics: Arc<Metrics>,
    records: HashMap<&'static str, Counter>,
    incidents_seen: HashSet<String>,
}

impl Recorder {
    pub fn new(metrics: Arc<Metrics>) -> Recorder {
        Recorder {
            metrics,
            records: HashMap::new(),
            incidents_seen: HashSet::new(),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// One record of type `kind` written to the audit log.
    pub fn record(&mut self, kind: &'static str) {
        let m = &self.metrics;
        self.records
            .entry(kind)
            .or_insert_with(|| {
                m.records
                    .get_or_create(&KindLabel { kind: kind.into() })
                    .clone()
            })
            .inc();
    }

    pub fn alert(&self, kind: &str, channel: &str, severity: &str) {
        self.metrics
            .alerts
            .get_or_create(&AlertLabels {
                kind: kind.into(),
                channel: channel.into(),
                severity: severity.into(),
            })
            .inc();
    }

    /// An incident record: a new id counts as an incident opened.
    pub fn incident(&mut self, id: &str, severity: &str) {
        self.metrics.incident_updates.inc();
        if self.incidents_seen.insert(id.to_string()) {
            self.metrics
                .incidents
                .get_or_create(&SeverityLabel {
                    severity: severity.into(),
                })
                .inc();
        }
    }

    /// `count` events lost, as a `lost` record's `what` names them.
    pub fn lost(&self, what: &str, count: u64) {
        let (kind, reason) = loss_labels(what);
        self.metrics
            .lost
            .get_or_create(&LossLabels {
                kind: kind.into(),
                reason: reason.into(),
            })
            .inc_by(count);
    }
}

/// The HTTP endpoint: `/metrics` and `/healthz` on a thread of its own.
pub struct Server {
    http: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

impl Server {
    /// Bind `cfg.listen` (after [`MetricsConfig::check`]) and serve `metrics` until dropped.
    pub fn start(cfg: &MetricsConfig, metrics: Arc<Metrics>) -> Result<Server, MetricsError> {
        cfg.check()?;
        let http = tiny_http::Server::http(cfg.listen).map_err(|source| MetricsError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let addr = http.server_addr().to_ip().unwrap_or(cfg.listen);
        let http = Arc::new(http);
        let serving = http.clone();
        let thread = std::thread::Builder::new()
            .name("proctor-metrics".into())
            .spawn(move || serve(&serving, &metrics))
            .map_err(|e| MetricsError::Bind {
                addr,
                source: Box::new(e),
            })?;
        Ok(Server {
            http,
            thread: Some(thread),
            addr,
        })
    }

    /// The address bound (the port chosen when the configuration said 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.http.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn serve(http: &tiny_http::Server, metrics: &Metrics) {
    for req in http.incoming_requests() {
        let (status, ctype, body) = respond(req.method(), req.url(), metrics);
        let header = tiny_http::Header::from_bytes("Content-Type", ctype)
            .expect("a constant header is valid");
        let resp = tiny_http::Response::from_string(body)
            .with_status_code(status)
            .with_header(header);
        // A client that went away is its own problem; the next request is served as usual.
        let _ = req.respond(resp);
    }
}

/// Status, content type and body for one request.
fn respond(
    method: &tiny_http::Method,
    url: &str,
    metrics: &Metrics,
) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if !matches!(method, tiny_http::Method::Get | tiny_http::Method::Head) {
        return (405, TEXT, "only GET\n".into());
    }
    match url.split('?').next().unwrap_or("") {
        "/metrics" => (200, OPENMETRICS, metrics.encode()),
        "/healthz" => match metrics.health.check() {
            Ok(()) => (200, TEXT, "ok\n".into()),
            Err(why) => (503, TEXT, format!("{why}\n")),
        },
        _ => (404, TEXT, "not found: try /metrics or /healthz\n".into()),
    }
}

#[cfg(test)]
mod tests;
