//! Detection inside a live run: the engine sees every record as it is written to the audit log;
//! its alerts go to the audit log, `DIR/alerts.jsonl` and stderr, and the learned baseline to
//! `DIR/baseline.json`.

use anyhow::{Context, Result};
use proctor_detect::{Baseline, Engine, EngineConfig, Output, Policy};
use proctor_model::{Alert, Record};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Detection options shared by `run`, `attach` and `calibrate`.
#[derive(Clone, Debug)]
pub struct DetectOpts {
    /// Length of the learning window before alerts are raised
    pub baseline: Duration,
    /// A saved baseline (from `proctor calibrate` or DIR/baseline.json), or a built-in profile
    /// (`builtin:claude-code`, `builtin:codex`, `builtin:gemini-cli`, `builtin:node-agent`): judge from the start
    pub profile: Option<PathBuf>,
    /// Policy file (default: the built-in policy, `proctor policy show`)
    pub policy: Option<PathBuf>,
}

/// Load the policy and profile named on the command line: errors are usage errors, reported
/// before anything starts.
pub fn load_policy(path: Option<&Path>) -> Result<Policy> {
    match path {
        None => Ok(Policy::builtin()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read policy {}", p.display()))?;
            Ok(Policy::from_toml_str(&text, &p.display().to_string())?)
        }
    }
}

pub fn load_profile(path: Option<&Path>) -> Result<Option<Baseline>> {
    path.map(|p| Baseline::load_spec(&p.to_string_lossy()).map_err(anyhow::Error::from))
        .transpose()
}

/// The policy and profile named on the command line, read and validated before anything starts.
pub struct Loaded {
    pub policy: Policy,
    pub profile: Option<Baseline>,
}

impl Loaded {
    pub fn from_opts(opts: &DetectOpts) -> Result<Loaded> {
        Ok(Loaded {
            policy: load_policy(opts.policy.as_deref())?,
            profile: load_profile(opts.profile.as_deref())?,
        })
    }
}

/// What happened to an alert after the engine raised it.
pub trait AlertSink {
    fn alert(&mut self, alert: &Alert) -> Result<()>;
    fn baseline(&mut self, baseline: &Baseline, sha256: &str) -> Result<()>;
    /// An incident opened or grew: a record in the audit chain (signed by its checkpoints).
    fn incident(&mut self, _incident: &proctor_model::Incident) -> Result<()> {
        Ok(())
    }
}

pub struct Detection {
    engine: Engine,
    alerts: File,
    incidents: File,
    baseline_path: PathBuf,
    /// Where `calibrate` saves the profile, besides DIR/baseline.json.
    profile_out: Option<PathBuf>,
    /// False for `calibrate`: learn only, never alert.
    judging: bool,
    pub alert_count: u64,
    pub baseline_sha256: Option<String>,
}

impl Detection {
    /// `loaded` is `opts` read and validated up front ([`Loaded::from_opts`]).
    pub fn new(
        out: &Path,
        opts: &DetectOpts,
        loaded: Loaded,
        home: Option<PathBuf>,
        cwd: Option<PathBuf>,
        profile_out: Option<PathBuf>,
    ) -> Result<Detection> {
        Detection::with_host(out, opts, loaded, home, cwd, profile_out, None)
    }

    /// As [`Detection::new`], with the host facts already discovered for this policy (the
    /// daemon discovers them once per agent rule, not once per session: discovery reads the
    /// build-id of every interpreter on the host).
    pub fn with_host(
        out: &Path,
        opts: &DetectOpts,
        loaded: Loaded,
        home: Option<PathBuf>,
        cwd: Option<PathBuf>,
        profile_out: Option<PathBuf>,
        host: Option<proctor_detect::HostFacts>,
    ) -> Result<Detection> {
        let Loaded { policy, profile } = loaded;
        let baseline_sha256 = profile.as_ref().map(Baseline::sha256_hex);
        let cfg = EngineConfig {
            baseline_ns: opts.baseline.as_nanos() as u64,
            home,
            cwd,
            profile,
        };
        let engine = match host {
            Some(h) => Engine::with_host(policy, cfg, h),
            None => Engine::new(policy, cfg),
        };
        proctor_evidence::create_private_dir(out)
            .with_context(|| format!("cannot create output directory {}", out.display()))?;
        let path = out.join("alerts.jsonl");
        let alerts = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(proctor_evidence::PRIVATE_FILE_MODE)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let path = out.join("incidents.jsonl");
        let incidents = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(proctor_evidence::PRIVATE_FILE_MODE)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        if baseline_sha256.is_some() {
            eprintln!(
                "proctor: judging against profile {} (no learning window)",
                opts.profile.as_deref().unwrap_or(Path::new("")).display()
            );
        }
        Ok(Detection {
            engine,
            alerts,
            incidents,
            baseline_path: out.join("baseline.json"),
            judging: profile_out.is_none(),
            profile_out,
            alert_count: 0,
            baseline_sha256,
        })
    }

    /// An allowed host name resolved to `ip` (see `Engine::allow_resolved`).
    pub fn allow_resolved(&mut self, ip: std::net::IpAddr, port: Option<u16>) {
        self.engine.allow_resolved(ip, port);
    }

    /// A reloaded policy's allowlist (see `Engine::set_network_allow`).
    pub fn set_network_allow(&mut self, allow: Vec<proctor_detect::AllowEntry>) {
        self.engine.set_network_allow(allow);
    }

    pub fn observe(&mut self, r: &Record, sink: &mut dyn AlertSink) -> Result<()> {
        let outs = self.engine.observe(r);
        self.handle(outs, sink)
    }

    /// [`Detection::observe`] for a caller done with the record: kept for context uncopied.
    pub fn observe_owned(&mut self, r: Record, sink: &mut dyn AlertSink) -> Result<()> {
        let outs = self.engine.observe_owned(r);
        self.handle(outs, sink)
    }

    /// The sensitive files found on disk, by device+inode (see [`Engine::add_sensitive_files`]).
    pub fn add_sensitive_files(&mut self, files: Vec<((u64, u64), Vec<u8>)>) {
        self.engine.add_sensitive_files(files);
    }

    /// While learning, when the baseline window closes (wall-clock ns).
    pub fn learning_ends_ns(&self) -> Option<u64> {
        self.engine.learning_ends_ns()
    }

    pub fn tick(&mut self, now_ns: u64, sink: &mut dyn AlertSink) -> Result<()> {
        let outs = self.engine.tick(now_ns);
        self.handle(outs, sink)
    }

    pub fn finish(&mut self, sink: &mut dyn AlertSink) -> Result<()> {
        let outs = self.engine.finish();
        self.handle(outs, sink)
    }

    fn handle(&mut self, outs: Vec<Output>, sink: &mut dyn AlertSink) -> Result<()> {
        for o in outs {
            match o {
                Output::BaselineEstablished(summary) => {
                    let b = self
                        .engine
                        .baseline()
                        .context("baseline established but not available")?
                        .clone();
                    let sha = b
                        .save(&self.baseline_path)
                        .with_context(|| format!("saving {}", self.baseline_path.display()))?;
                    if let Some(p) = &self.profile_out {
                        // Profiles accumulate: an existing profile absorbs this session.
                        let b = Baseline::merged_into_file(b.clone(), p)?;
                        b.save(p)
                            .with_context(|| format!("saving profile {}", p.display()))?;
                        eprintln!("proctor: profile written to {} (sha256 {sha})", p.display());
                    }
                    eprintln!("proctor: {summary}");
                    self.baseline_sha256 = Some(sha.clone());
                    sink.baseline(&b, &sha)?;
                }
                Output::Alert(a) if self.judging => self.emit(&a, sink)?,
                Output::Incident(i) if self.judging => self.emit_incident(&i, sink)?,
                Output::Alert(_) | Output::Evidence(_) | Output::Incident(_) => {}
            }
        }
        Ok(())
    }
}

impl Detection {
    /// An incident opened, grew or closed: one line in incidents.jsonl (the last line of an id
    /// is its state) and one on stderr.
    fn emit_incident(
        &mut self,
        i: &proctor_model::Incident,
        sink: &mut dyn AlertSink,
    ) -> Result<()> {
        let mut line = serde_json::to_vec(i)?;
        line.push(b'\n');
        self.incidents.write_all(&line)?;
        let closed = if i.status == proctor_model::INCIDENT_CLOSED {
            " closed"
        } else {
            ""
        };
        let techniques = if i.techniques.is_empty() {
            String::new()
        } else {
            format!(", {}", i.techniques.join(","))
        };
        say(format!(
            "proctor: INCIDENT {}{closed} {} {} ({} alerts{techniques})\n",
            i.id,
            i.severity,
            i.title,
            i.alert_ids.len(),
        ));
        sink.incident(i)
    }

    /// Write an alert to alerts.jsonl and stderr, then hand it to the sink (audit log,
    /// certificate, socket). Also used for alerts raised outside the engine (enforcement).
    pub fn emit(&mut self, a: &Alert, sink: &mut dyn AlertSink) -> Result<()> {
        self.alert_count += 1;
        // One write per line: the file is unbuffered, and serde_json writes token by token
        // (thousands of write(2)s for an alert with its trace: they were most of the alert
        // latency). A single O_APPEND write also keeps concurrent readers from seeing half a
        // line.
        let mut line = serde_json::to_vec(a)?;
        line.push(b'\n');
        self.alerts.write_all(&line)?;
        // The summary itself says how many repeats a follow-up alert stands for.
        let action = if a.action == "ALERT_EMITTED" {
            "ALERT"
        } else {
            a.action.as_str()
        };
        say(format!(
            "proctor: {action} {} {} pid {}: {}\n",
            a.channel, a.kind, a.pid, a.summary
        ));
        sink.alert(a)
    }
}

/// One line to stderr in one write: `eprintln!` writes each piece of its format with a
/// write(2) of its own (stderr is unbuffered), a dozen per alert on the alert's path.
fn say(line: String) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(line.as_bytes());
}
