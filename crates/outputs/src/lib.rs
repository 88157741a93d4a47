//! Alert and incident shipping, off the hot path. Each configured output (syslog, webhook,
//! OTLP logs, an OCSF file) has a bounded queue and a worker thread ([`queue`]); [`Outputs::alert`] and
//! [`Outputs::incident`] only clone the item into each queue and never block. A full queue
//! drops the item and counts it; the worker counts what it could not deliver after its retries.
//! The runtime writes those counts into the run's records ([`Outputs::stats`]), and a metrics
//! endpoint can export them.
//!
//! The item's format ([`AlertFormat`]: proctor's own JSON or OCSF Detection Finding) is chosen
//! once per run and applies to every output and to the alert socket ([`render_alert`]).

mod file;
mod ocsf;
mod ocsf_file;
mod otlp;
mod queue;
mod syslog;
mod webhook;

pub use file::{FileTarget, DEFAULT_KEEP, DEFAULT_MAX_BYTES};
pub use otlp::OtlpTarget;
pub use syslog::{Facility, SyslogTarget};
pub use webhook::{read_ca_file, WebhookTarget};

use proctor_model::{Alert, Incident};
use queue::Queue;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Items a queue holds before it drops new ones (per output).
pub const DEFAULT_QUEUE: usize = 1024;
/// Attempts per item before the webhook gives it up.
pub const DEFAULT_WEBHOOK_ATTEMPTS: u32 = 5;

/// Format of alerts and incidents on the outputs and the alert socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertFormat {
    /// proctor's own JSON (the `alert` and `incident` records' fields).
    #[default]
    Native,
    /// OCSF Detection Finding (class_uid 2004), see docs/outputs.md.
    Ocsf,
}

impl std::str::FromStr for AlertFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" => Ok(AlertFormat::Native),
            "ocsf" => Ok(AlertFormat::Ocsf),
            _ => Err(format!("`{s}` is not an alert format (native or ocsf)")),
        }
    }
}

/// The `[outputs]` section of a configuration file; `run` and `attach` build it from flags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputsConfig {
    /// `unix:/dev/log`, `udp://HOST:PORT` or `tcp://HOST:PORT`.
    #[serde(default)]
    pub syslog: Option<String>,
    /// Syslog facility name (default `local0`).
    #[serde(default)]
    pub syslog_facility: Option<String>,
    /// `http://HOST[:PORT]/PATH`: each alert and incident is POSTed as JSON.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Attempts per item before the webhook (and OTLP) gives it up (default 5).
    #[serde(default)]
    pub webhook_attempts: Option<u32>,
    /// OTLP/HTTP logs endpoint, e.g. `http://127.0.0.1:4318/v1/logs` (protobuf).
    #[serde(default)]
    pub otlp: Option<String>,
    /// PEM CA certificates trusted for https webhook and OTLP receivers, besides the system's.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// A file that alerts and incidents are appended to as OCSF JSON lines (whatever `format`).
    #[serde(default)]
    pub ocsf_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub format: AlertFormat,
    /// Queue capacity per output (default 1024).
    #[serde(default)]
    pub queue: Option<usize>,
    /// Alerts and incidents as JSON lines in this file (0600), rotated by size.
    #[serde(default)]
    pub file: Option<std::path::PathBuf>,
    /// Size at which the file is rotated (default 64 MiB).
    #[serde(default)]
    pub file_max_bytes: Option<u64>,
    /// Rotated files kept (`FILE.1` newest .. `FILE.N`; default 5).
    #[serde(default)]
    pub file_keep: Option<u32>,
}

impl OutputsConfig {
    pub fn is_empty(&self) -> bool {
        self.syslog.is_none()
            && self.webhook.is_none()
            && self.otlp.is_none()
            && self.file.is_none()
            && self.ocsf_file.is_none()
    }
}

/// Errors of a configuration that names an output wrongly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("syslog target `{target}`: {why}")]
    Syslog { target: String, why: String },
    #[error("webhook `{url}`: {why}")]
    Webhook { url: String, why: String },
    #[error("OTLP endpoint `{url}`: {why}")]
    Otlp { url: String, why: String },
    #[error("TLS for the https outputs: {why}")]
    Tls { why: String },
    #[error("alerts file `{path}`: {why}")]
    File { path: String, why: String },
    #[error("OCSF file {}: {source}", path.display())]
    OcsfFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the {name} output: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
}

/// Who ships: fields every shipped item carries besides the alert's own.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub host: String,
    /// The run's id (the certificates' `run_id`).
    pub run_id: String,
    /// proctor's version.
    pub version: String,
    /// proctor's pid (syslog PROCID).
    pub pid: u32,
}

/// One item on its way out.
#[derive(Debug, Clone)]
pub enum Item {
    Alert(Arc<Alert>),
    Incident(Arc<Incident>),
}

/// What one output did so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputStats {
    pub name: String,
    pub sent: u64,
    /// Refused because the queue was full.
    pub dropped: u64,
    /// Given up after the output's retries.
    pub failed: u64,
    /// Queued, not yet delivered (after close: never will be).
    pub pending: u64,
}

impl OutputStats {
    /// Items that did not and will not arrive (after close).
    pub fn lost(&self) -> u64 {
        self.dropped + self.failed + self.pending
    }
}

/// The running outputs of one run.
/// Live counters of every output, readable from any thread.
#[derive(Clone)]
pub struct StatsWatcher(Vec<(String, Arc<queue::Counters>)>);

impl StatsWatcher {
    /// Counters per output, in configuration order.
    pub fn stats(&self) -> Vec<OutputStats> {
        self.0
            .iter()
            .map(|(name, c)| {
                let (sent, dropped, failed, pending) = c.counts();
                OutputStats {
                    name: name.clone(),
                    sent,
                    dropped,
                    failed,
                    pending,
                }
            })
            .collect()
    }
}

pub struct Outputs {
    queues: Vec<Queue<Item>>,
    format: AlertFormat,
}

impl Outputs {
    /// Start a worker per configured output. Targets are checked here; nothing is connected
    /// yet (an unreachable receiver is a delivery failure, counted, not a start error).
    pub fn start(cfg: &OutputsConfig, source: Source) -> Result<Outputs, Error> {
        let cap = cfg.queue.unwrap_or(DEFAULT_QUEUE);
        let attempts = cfg
            .webhook_attempts
            .unwrap_or(DEFAULT_WEBHOOK_ATTEMPTS)
            .max(1);
        let source = Arc::new(source);
        // One TLS configuration for the https outputs (the system's CA store is read once); a
        // CA file is checked even when no output uses https yet.
        let https = [&cfg.webhook, &cfg.otlp]
            .iter()
            .any(|u| u.as_deref().is_some_and(webhook::is_https));
        let tls = if https || cfg.ca_file.is_some() {
            Some(webhook::tls_config(cfg.ca_file.as_deref()).map_err(|why| Error::Tls { why })?)
        } else {
            None
        };
        let mut queues = Vec::new();
        if let Some(t) = &cfg.syslog {
            let target: SyslogTarget = t.parse().map_err(|why| Error::Syslog {
                target: t.clone(),
                why,
            })?;
            let facility: Facility = match &cfg.syslog_facility {
                Some(f) => f.parse().map_err(|why| Error::Syslog {
                    target: t.clone(),
                    why,
                })?,
                None => Facility::default(),
            };
            let d = syslog::Syslog::new(target, facility, cfg.format, source.clone());
            queues.push(spawn("syslog", cap, d)?);
        }
        if let Some(u) = &cfg.webhook {
            let target: WebhookTarget = u.parse().map_err(|why| Error::Webhook {
                url: u.clone(),
                why,
            })?;
            let d =
                webhook::Webhook::new(target, attempts, cfg.format, source.clone(), tls.clone());
            queues.push(spawn("webhook", cap, d)?);
        }
        if let Some(u) = &cfg.otlp {
            let target: OtlpTarget = u.parse().map_err(|why| Error::Otlp {
                url: u.clone(),
                why,
            })?;
            let d = otlp::Otlp::new(target, attempts, cfg.format, source.clone(), tls.clone());
            queues.push(spawn("otlp", cap, d)?);
        }
        if let Some(p) = &cfg.file {
            let target = FileTarget::new(p, cfg.file_max_bytes, cfg.file_keep).map_err(|why| {
                Error::File {
                    path: p.display().to_string(),
                    why,
                }
            })?;
            let d = file::FileOut::new(&target, cfg.format, source.clone());
            queues.push(spawn("file", cap, d)?);
        }
        if let Some(path) = &cfg.ocsf_file {
            let d = ocsf_file::OcsfFile::open(path, source.clone()).map_err(|source| {
                Error::OcsfFile {
                    path: path.clone(),
                    source,
                }
            })?;
            queues.push(spawn("ocsf_file", cap, d)?);
        }
        Ok(Outputs {
            queues,
            format: cfg.format,
        })
    }

    pub fn format(&self) -> AlertFormat {
        self.format
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Queue an alert on every output; never blocks.
    pub fn alert(&self, a: &Alert) {
        if !self.queues.is_empty() {
            self.push(Item::Alert(Arc::new(a.clone())));
        }
    }

    /// Queue an incident (opened or grown) on every output; never blocks.
    pub fn incident(&self, i: &Incident) {
        if !self.queues.is_empty() {
            self.push(Item::Incident(Arc::new(i.clone())));
        }
    }

    fn push(&self, item: Item) {
        for q in &self.queues {
            q.push(item.clone());
        }
    }

    /// Counters per output, in configuration order.
    pub fn stats(&self) -> Vec<OutputStats> {
        self.watcher().stats()
    }

    /// A handle that reads the counters from another thread (a metrics endpoint's scrape).
    pub fn watcher(&self) -> StatsWatcher {
        StatsWatcher(
            self.queues
                .iter()
                .map(|q| (q.name().to_string(), q.counters()))
                .collect(),
        )
    }

    /// Deliver what is queued for up to `timeout` per output, stop the workers, and return
    /// the final counters.
    pub fn close(&mut self, timeout: Duration) -> Vec<OutputStats> {
        for q in &mut self.queues {
            q.close(timeout);
        }
        self.stats()
    }
}

fn spawn<D: queue::Deliver<Item>>(name: &str, cap: usize, d: D) -> Result<Queue<Item>, Error> {
    Queue::spawn(name, cap, d).map_err(|source| Error::Spawn {
        name: name.to_string(),
        source,
    })
}

/// An alert as `format` renders it (also the alert socket's line).
pub fn render_alert(a: &Alert, format: AlertFormat, source: &Source) -> Value {
    match format {
        AlertFormat::Native => serde_json::to_value(a).unwrap_or(Value::Null),
        AlertFormat::Ocsf => ocsf::alert(a, source),
    }
}

/// An incident as `format` renders it.
pub fn render_incident(i: &Incident, format: AlertFormat, source: &Source) -> Value {
    match format {
        AlertFormat::Native => serde_json::to_value(i).unwrap_or(Value::Null),
        AlertFormat::Ocsf => ocsf::incident(i, source),
    }
}

/// An item as `format` renders it; `compact` leaves out the alert's `trigger` and
/// `syscall_trace` (kept in the certificate and the audit log), for size-limited transports.
pub(crate) fn render(item: &Item, format: AlertFormat, source: &Source, compact: bool) -> Value {
    match item {
        Item::Alert(a) if compact && !(a.trigger.is_empty() && a.syscall_trace.is_empty()) => {
            let mut small = Alert::clone(a);
            small.trigger.clear();
            small.syscall_trace.clear();
            render_alert(&small, format, source)
        }
        Item::Alert(a) => render_alert(a, format, source),
        Item::Incident(i) => render_incident(i, format, source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        outputs: OutputsConfig,
    }

    #[test]
    fn the_outputs_section_of_a_config_file_deserializes_and_refuses_unknown_keys() {
        let f: File = toml::from_str(
            "[outputs]\nsyslog = \"tcp://127.0.0.1:514\"\nsyslog_facility = \"auth\"\n\
             webhook = \"http://h/x\"\nwebhook_attempts = 3\n\
             otlp = \"http://h:4318/v1/logs\"\nformat = \"ocsf\"\nqueue = 16\n\
             ocsf_file = \"/var/log/proctor/findings.jsonl\"\n",
        )
        .unwrap();
        let o = f.outputs;
        assert_eq!(o.format, AlertFormat::Ocsf);
        assert_eq!((o.queue, o.webhook_attempts), (Some(16), Some(3)));
        assert_eq!(
            o.ocsf_file.as_deref(),
            Some(std::path::Path::new("/var/log/proctor/findings.jsonl"))
        );
        assert!(!o.is_empty());
        let e = toml::from_str::<File>("[outputs]\nsyslgo = \"x\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("syslgo"), "{e}");
        let e = toml::from_str::<File>("[outputs]\nformat = \"cef\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cef"), "{e}");
    }

    #[test]
    fn an_alert_names_its_container_in_every_format() {
        let id = "ab".repeat(32);
        let pod = "5d8e2f1a-3b4c-4d5e-8f90-a1b2c3d4e5f6";
        let mut a = Alert::new("a", 1, "L2", "LLM_AGENT_HIJACK", 7, "x", "s");
        a.actor.container = proctor_model::Container::from_fields("containerd", &id, Some(pod));
        let n = render_alert(&a, AlertFormat::Native, &Source::default());
        assert_eq!(
            (&n["container_id"], &n["container_runtime"], &n["pod_uid"]),
            (&json_str(&id), &json_str("containerd"), &json_str(pod))
        );
        let o = render_alert(&a, AlertFormat::Ocsf, &Source::default());
        assert_eq!(o["container"]["uid"], json_str(&id));
        assert_eq!(o["container"]["runtime"], "containerd");
        assert_eq!(o["container"]["pod_uuid"], pod);
        a.actor.container = None;
        let o = render_alert(&a, AlertFormat::Ocsf, &Source::default());
        assert!(o.get("container").is_none());
        let n = render_alert(&a, AlertFormat::Native, &Source::default());
        assert!(n.get("container_id").is_none());
    }

    /// An incident of a containerised agent names the container wherever it goes, as its
    /// alerts do: native JSON, OCSF, syslog structured data and OTLP attributes.
    #[test]
    fn an_incident_names_its_container_in_every_format() {
        let id = "cd".repeat(32);
        let pod = "5d8e2f1a-3b4c-4d5e-8f90-a1b2c3d4e5f6";
        let mut i = Incident {
            id: "inc-1".into(),
            severity: "high".into(),
            ..Incident::default()
        };
        i.actor.uid = Some(1000);
        i.actor.user = "dev".into();
        i.actor.container = proctor_model::Container::from_fields("cri-o", &id, Some(pod));
        let src = Source::default();
        let n = render_incident(&i, AlertFormat::Native, &src);
        assert_eq!(
            (&n["container_id"], &n["container_runtime"], &n["pod_uid"]),
            (&json_str(&id), &json_str("cri-o"), &json_str(pod))
        );
        let o = render_incident(&i, AlertFormat::Ocsf, &src);
        assert_eq!(o["container"]["uid"], json_str(&id));
        assert_eq!(o["container"]["pod_uuid"], pod);
        assert_eq!(o["actor"]["user"]["name"], "dev");
        let item = Item::Incident(Arc::new(i.clone()));
        let line = syslog::message(
            &item,
            syslog::Facility::default(),
            AlertFormat::Native,
            &src,
        );
        assert!(
            line.contains(&format!("container=\"{id}\"")) && line.contains("runtime=\"cri-o\""),
            "{line}"
        );
        assert!(line.contains(&format!("pod=\"{pod}\"")), "{line}");
        let req = otlp::request(&item, AlertFormat::Native, &src);
        let attrs = &req.resource_logs[0].scope_logs[0].log_records[0].attributes;
        let keys: Vec<&str> = attrs.iter().map(|kv| kv.key.as_str()).collect();
        for k in [
            "container.id",
            "container.runtime",
            "k8s.pod.uid",
            "user.id",
            "user.name",
        ] {
            assert!(keys.contains(&k), "{k} missing: {keys:?}");
        }
        // Without a container: none of those members.
        i.actor.container = None;
        let n = render_incident(&i, AlertFormat::Native, &src);
        assert!(n.get("container_id").is_none());
        let line = syslog::message(
            &Item::Incident(Arc::new(i)),
            syslog::Facility::default(),
            AlertFormat::Native,
            &src,
        );
        assert!(!line.contains("container="), "{line}");
    }

    fn json_str(s: &str) -> Value {
        Value::String(s.into())
    }

    #[test]
    fn a_wrong_target_is_an_error_naming_it() {
        let cfg = OutputsConfig {
            syslog: Some("udp://nohost".into()),
            ..OutputsConfig::default()
        };
        let e = Outputs::start(&cfg, Source::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("udp://nohost"), "{e}");
        let cfg = OutputsConfig {
            otlp: Some("ftp://collector/v1/logs".into()),
            ..OutputsConfig::default()
        };
        let e = Outputs::start(&cfg, Source::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("ftp://collector"), "{e}");
        // A CA file that is not one is named, even with no https output yet.
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "not a certificate\n").unwrap();
        for ca in [not_pem, dir.path().join("missing.pem")] {
            let cfg = OutputsConfig {
                ca_file: Some(ca.clone()),
                ..OutputsConfig::default()
            };
            let e = Outputs::start(&cfg, Source::default())
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&ca.display().to_string()), "{e}");
        }
    }
}
