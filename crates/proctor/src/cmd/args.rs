//! Option groups shared by the monitoring commands, and their mapping to the runtime's
//! configurations (no clap type crosses into `proctor_runtime`).

use crate::cmd::parse_duration;
use proctor_model::Mode;
use proctor_runtime::detection::DetectOpts;
use proctor_runtime::monitor::{EvidenceOpts, MonitorOpts};
use proctor_runtime::tls::TlsOpts;
use std::path::PathBuf;
use std::time::Duration;

/// Options common to every monitoring command.
#[derive(clap::Args, Clone, Debug)]
pub struct MonitorArgs {
    /// Output directory: audit.jsonl, alerts/, baseline.json
    #[arg(long, default_value = "proctor-out")]
    pub out: PathBuf,
    /// Name of the agent in every record (default: the command's or process's name)
    #[arg(long)]
    pub agent_id: Option<String>,
    /// Period of the in-kernel scheduler summaries (`sched` records)
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub sched_interval: Duration,
    /// Ring buffer size in bytes (power of two, at least 4096); smaller loses events sooner
    #[arg(long, default_value_t = proctor_sensor::DEFAULT_RINGBUF_BYTES, hide = true)]
    pub ringbuf_size: u32,
    #[command(flatten)]
    pub evidence: EvidenceArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

impl MonitorArgs {
    pub fn opts(&self) -> MonitorOpts {
        MonitorOpts {
            out: self.out.clone(),
            agent_id: self.agent_id.clone(),
            sched_interval: self.sched_interval,
            ringbuf_size: self.ringbuf_size,
            evidence: EvidenceOpts {
                key: self.evidence.key.clone(),
                alert_socket: self.evidence.alert_socket.clone(),
                outputs: self.evidence.outputs.config(),
            },
            tls: TlsOpts {
                capture_tls: self.tls.capture_tls,
                tls_raw: self.tls.tls_raw,
                tls_max_bytes: self.tls.tls_max_bytes,
                tls_intercept: self.tls.tls_intercept,
                tls_intercept_port: self.tls.tls_intercept_port.clone(),
            },
            metrics: self.metrics.opts(),
        }
    }
}

/// `--metrics` and its option (docs/metrics.md).
#[derive(clap::Args, Clone, Debug)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics (/metrics) and a health check (/healthz) on ADDR, e.g.
    /// 127.0.0.1:9464 (port 0: any free port, printed at start). Loopback only unless
    /// --metrics-allow-remote
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Let --metrics listen on a non-loopback address (the endpoint has no authentication)
    #[arg(long, requires = "metrics")]
    pub metrics_allow_remote: bool,
}

impl MetricsArgs {
    pub fn opts(&self) -> Option<proctor_runtime::metrics::MetricsOpts> {
        self.metrics
            .map(|listen| proctor_runtime::metrics::MetricsOpts {
                config: proctor_metrics::MetricsConfig {
                    listen,
                    allow_remote: self.metrics_allow_remote,
                },
                version: crate::VERSION.to_string(),
            })
    }
}

/// Evidence options shared by every monitoring command.
#[derive(clap::Args, Clone, Debug)]
pub struct EvidenceArgs {
    /// Ed25519 private key (PKCS#8 PEM, mode 0600) that signs certificates and checkpoints
    /// (default: the state directory's key, created on first use)
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Push every alert as a JSON line to this Unix socket (e.g. `proctor sinkhole --listen`);
    /// never blocks detection: a bounded queue, reconnects, counted drops
    #[arg(long, value_name = "PATH")]
    pub alert_socket: Option<PathBuf>,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

/// Alert and incident outputs (syslog, webhook) and their format; docs/outputs.md.
#[derive(clap::Args, Clone, Debug)]
pub struct OutputArgs {
    /// Send alerts and incidents to syslog as RFC 5424 messages: unix:/dev/log,
    /// udp://HOST:PORT or tcp://HOST:PORT (octet-counted framing); never blocks detection
    #[arg(long, value_name = "TARGET", value_parser = parse_syslog)]
    pub syslog: Option<String>,
    /// Syslog facility: user, daemon, auth, authpriv, audit, local0..local7
    #[arg(long, value_name = "NAME", default_value = "local0", requires = "syslog", value_parser = parse_facility)]
    pub syslog_facility: String,
    /// POST each alert and incident as JSON to this http:// or https:// URL (retried with
    /// backoff; https verified against the system's CAs and --outputs-ca)
    #[arg(long, value_name = "URL", value_parser = parse_webhook)]
    pub webhook: Option<String>,
    /// Attempts per item before the webhook or OTLP output gives it up (counted as lost)
    #[arg(long, value_name = "N", default_value_t = proctor_outputs::DEFAULT_WEBHOOK_ATTEMPTS)]
    pub webhook_attempts: u32,
    /// Send alerts and incidents as OTLP logs (protobuf over HTTP) to this endpoint, e.g.
    /// http://127.0.0.1:4318/v1/logs (an OpenTelemetry collector)
    #[arg(long, value_name = "URL", value_parser = parse_otlp)]
    pub otlp: Option<String>,
    /// PEM CA certificates trusted for https webhook and OTLP receivers, besides the system's
    #[arg(long, value_name = "FILE", value_parser = parse_ca_file)]
    pub outputs_ca: Option<PathBuf>,
    /// Append alerts and incidents as OCSF Detection Finding JSON lines (class 2004) to this
    /// file, created 0600, whatever --alert-format says
    #[arg(long, value_name = "FILE")]
    pub ocsf_file: Option<PathBuf>,
    /// Format of alerts and incidents on the outputs and the alert socket
    #[arg(long, value_enum, default_value = "native")]
    pub alert_format: AlertFormatArg,
    /// Also write alerts and incidents as JSON lines to this file (0600), rotated by size
    #[arg(long, value_name = "FILE", value_parser = parse_alerts_file)]
    pub alerts_file: Option<PathBuf>,
    /// Rotate the alerts file when it would grow past this many bytes (default 64 MiB)
    #[arg(long, value_name = "BYTES", requires = "alerts_file")]
    pub alerts_file_max_bytes: Option<u64>,
    /// Rotated alerts files kept (FILE.1 newest .. FILE.N; default 5)
    #[arg(long, value_name = "N", requires = "alerts_file")]
    pub alerts_file_keep: Option<u32>,
}

/// `--alert-format` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertFormatArg {
    /// proctor's own JSON (the alert record's fields)
    Native,
    /// OCSF Detection Finding (class_uid 2004)
    Ocsf,
}

impl OutputArgs {
    pub fn config(&self) -> proctor_outputs::OutputsConfig {
        proctor_outputs::OutputsConfig {
            syslog: self.syslog.clone(),
            syslog_facility: Some(self.syslog_facility.clone()),
            webhook: self.webhook.clone(),
            webhook_attempts: Some(self.webhook_attempts),
            otlp: self.otlp.clone(),
            ca_file: self.outputs_ca.clone(),
            ocsf_file: self.ocsf_file.clone(),
            format: match self.alert_format {
                AlertFormatArg::Native => proctor_outputs::AlertFormat::Native,
                AlertFormatArg::Ocsf => proctor_outputs::AlertFormat::Ocsf,
            },
            queue: None,
            file: self.alerts_file.clone(),
            file_max_bytes: self.alerts_file_max_bytes,
            file_keep: self.alerts_file_keep,
        }
    }
}

/// A relative alerts file is taken from the current directory (checked again, with the size
/// and count, when the run starts).
fn parse_alerts_file(s: &str) -> Result<PathBuf, String> {
    let p = std::path::absolute(s).map_err(|e| e.to_string())?;
    proctor_outputs::FileTarget::new(&p, None, None)?;
    Ok(p)
}

fn parse_ca_file(s: &str) -> Result<PathBuf, String> {
    proctor_outputs::read_ca_file(s.as_ref())?;
    Ok(PathBuf::from(s))
}

fn parse_syslog(s: &str) -> Result<String, String> {
    s.parse::<proctor_outputs::SyslogTarget>()?;
    Ok(s.to_string())
}

fn parse_facility(s: &str) -> Result<String, String> {
    s.parse::<proctor_outputs::Facility>()?;
    Ok(s.to_string())
}

fn parse_otlp(s: &str) -> Result<String, String> {
    s.parse::<proctor_outputs::OtlpTarget>()?;
    Ok(s.to_string())
}

fn parse_webhook(s: &str) -> Result<String, String> {
    s.parse::<proctor_outputs::WebhookTarget>()?;
    Ok(s.to_string())
}

/// `--capture-tls` and its options (run, attach, calibrate).
#[derive(clap::Args, Clone, Debug)]
pub struct TlsArgs {
    /// Record the plaintext of tracked processes' TLS calls (uprobes on OpenSSL's SSL_read,
    /// SSL_write and their _ex variants, GnuTLS's record send/receive); off by default. Secrets
    /// are redacted before anything is written unless --tls-raw
    #[arg(long)]
    pub capture_tls: bool,
    /// With --capture-tls: write plaintext as captured, secrets included
    #[arg(long, requires = "capture_tls")]
    pub tls_raw: bool,
    /// With --capture-tls: plaintext bytes kept per TLS call (1 to 1048576; default 65536);
    /// longer calls are cut and flagged `truncated`
    #[arg(long, value_name = "N", requires = "capture_tls", value_parser = parse_max_bytes)]
    pub tls_max_bytes: Option<u32>,
    /// With --capture-tls (run only): interception mode, for agents whose TLS cannot be hooked
    /// (rustls, static BoringSSL). The agent's TCP connects to port 443 (and --tls-intercept-port)
    /// are redirected in the kernel to a TLS-terminating proxy inside proctor with a CA made
    /// for this run, which the agent is told to trust (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE,
    /// REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, CODEX_CA_CERTIFICATE); the proxy verifies the real
    /// destination against the system's roots and SSL_CERT_FILE
    #[arg(long, requires = "capture_tls")]
    pub tls_intercept: bool,
    /// With --tls-intercept: another destination port to intercept (repeatable; 443 always is)
    #[arg(long, value_name = "PORT", requires = "tls_intercept")]
    pub tls_intercept_port: Vec<u16>,
}

fn parse_max_bytes(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a byte count"))?;
    if n == 0 || n > proctor_sensor::TLS_MAX_BYTES_LIMIT {
        return Err(format!(
            "{n} is out of range (1 to {})",
            proctor_sensor::TLS_MAX_BYTES_LIMIT
        ));
    }
    Ok(n)
}

/// The learning window when none is given.
pub const DEFAULT_BASELINE: Duration = Duration::from_secs(30);

/// Detection options shared by `run` and `attach`.
#[derive(clap::Args, Clone, Debug)]
pub struct DetectArgs {
    /// Length of the learning window before alerts are raised (default 30s; `run` or `attach`
    /// of an agent CLI proctor has a built-in profile for judges by that profile instead,
    /// unless this is given)
    #[arg(long, value_parser = parse_duration)]
    pub baseline: Option<Duration>,
    /// A saved baseline (from `proctor calibrate` or DIR/baseline.json), or a built-in profile
    /// (`builtin:claude-code`, `builtin:codex`, `builtin:gemini-cli`, `builtin:openclaw`,
    /// `builtin:node-agent`): judge from the start
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Policy file (default: the built-in policy, `proctor policy show`)
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

impl DetectArgs {
    pub fn opts(&self) -> DetectOpts {
        DetectOpts {
            baseline: self.baseline.unwrap_or(DEFAULT_BASELINE),
            profile: self.profile.clone(),
            policy: self.policy.clone(),
        }
    }
}

/// `--mode` on the command line; its doc comments are the help text of each value.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeArg {
    /// Observe and alert
    Audit,
    /// Decide as enforce would and record would_block decisions; block nothing
    Shadow,
    /// Block what the policy's [enforce] section names
    Enforce,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Audit => Mode::Audit,
            ModeArg::Shadow => Mode::Shadow,
            ModeArg::Enforce => Mode::Enforce,
        }
    }
}
