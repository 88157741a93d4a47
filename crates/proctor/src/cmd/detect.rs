//! `replay` and `policy`: the detectors offline and the policy file. `calibrate` needs
//! the live sensor and lives with `run` in `cmd::sensor`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use proctor_detect::replay::{AuditReader, Line};
use proctor_detect::{Engine, EngineConfig, Output, Policy};
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct ReplayArgs {
    /// Recorded audit log (DIR/audit.jsonl)
    pub log: PathBuf,
    /// Judge against this saved profile from the first record (no learning window)
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Policy file (default: the built-in policy, see `proctor policy show`)
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Length of the learning window when no profile is given
    #[arg(long, default_value = "30s", value_parser = crate::cmd::parse_duration)]
    pub baseline: Duration,
    /// The agent's HOME for `~` in path patterns (default: from the log's sensor_start record)
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// The agent's working directory for `$CWD` (default: from the log's sensor_start record)
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Also write the learned baseline to this file
    #[arg(long)]
    pub save_baseline: Option<PathBuf>,
    /// Write the incidents here, as a live run writes DIR/incidents.jsonl
    #[arg(long, value_name = "FILE")]
    pub incidents: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the built-in policy (a commented TOML file to copy and edit), or with --effective
    /// FILE the policy FILE makes of it (FILE holds only what it changes)
    Show {
        /// The overlay file to layer on the built-in policy
        #[arg(long, value_name = "FILE")]
        effective: Option<PathBuf>,
    },
    /// Check a policy file: prints ok (with a note on stderr for each pattern whose only
    /// literal name is too common for the kernel to watch), or the error with line and column
    /// and exits 1
    Check { file: PathBuf },
    /// Propose a commented enforce policy from recorded runs and profiles (review it, then use
    /// it with `run --mode enforce --policy FILE`); `--diff OLD` shows what it changes
    Generate(crate::cmd::policy_gen::GenerateArgs),
    /// Give the proctor writing to DIR a new policy file (over DIR/control.sock): it is checked
    /// first (FILE:LINE:COL, exit 1), applied where the layer allows it and recorded
    Reload {
        /// The running proctor's --out directory
        dir: PathBuf,
        file: PathBuf,
    },
}

/// Malformed lines named one by one on stderr, up to this many.
const MALFORMED_SHOWN: usize = 10;

pub fn replay(a: ReplayArgs) -> Result<ExitCode> {
    let policy = proctor_runtime::detection::load_policy(a.policy.as_deref())?;
    let profile = proctor_runtime::detection::load_profile(a.profile.as_deref())?;
    let file = std::fs::File::open(&a.log)
        .with_context(|| format!("cannot read audit log {}", a.log.display()))?;
    let log_name = a.log.display().to_string();
    let mut home = a.home.clone();
    let mut cwd = a.cwd.clone();
    let mut engine: Option<Engine> = None;
    let mut policy = Some(policy);
    let mut profile = profile;
    let mut stdout = std::io::stdout().lock();
    let mut records = 0u64;
    let mut other = 0u64;
    let mut malformed: Vec<usize> = Vec::new();
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut incidents_out = match &a.incidents {
        Some(p) => Some(
            std::fs::File::create(p)
                .with_context(|| format!("cannot write incidents {}", p.display()))?,
        ),
        None => None,
    };
    let mut incident_ids = std::collections::BTreeSet::new();
    let mut emit = |outs: Vec<Output>, out: &mut dyn Write| -> Result<()> {
        for o in outs {
            match o {
                Output::Alert(al) => {
                    *by_kind.entry(al.kind.clone()).or_default() += 1;
                    serde_json::to_writer(&mut *out, &al)?;
                    out.write_all(b"\n")?;
                }
                Output::BaselineEstablished(s) => eprintln!("proctor: {s}"),
                // Evidence is not an alert: it reaches an analyst inside an incident.
                Output::Evidence(_) => {}
                Output::Incident(i) => {
                    incident_ids.insert(i.id.clone());
                    if let Some(f) = incidents_out.as_mut() {
                        let mut line = serde_json::to_vec(&i)?;
                        line.push(b'\n');
                        f.write_all(&line)?;
                    }
                }
            }
        }
        Ok(())
    };
    // 1 MiB reads: an 8 KiB buffer made a read(2) per ~20 lines.
    for item in AuditReader::new(BufReader::with_capacity(1 << 20, file)) {
        let (n, line) = item.with_context(|| format!("reading {log_name}"))?;
        match line {
            Line::Blank => {}
            Line::Malformed { error } => {
                if malformed.len() < MALFORMED_SHOWN {
                    eprintln!("proctor: {log_name}:{n}: skipped a malformed line: {error}");
                }
                malformed.push(n);
            }
            Line::Other { ty, value } => {
                other += 1;
                // The sensor may record the agent's HOME and cwd at start.
                if ty == "sensor_start" {
                    let field = |k: &str| value.get(k).and_then(|v| v.as_str()).map(PathBuf::from);
                    home = home.or_else(|| field("home"));
                    cwd = cwd.or_else(|| field("cwd"));
                }
            }
            Line::Record(r) => {
                records += 1;
                let e = engine.get_or_insert_with(|| {
                    Engine::new(
                        policy.take().expect("the engine is built once"),
                        EngineConfig {
                            baseline_ns: a.baseline.as_nanos().min(u64::MAX as u128) as u64,
                            home: home.clone(),
                            cwd: cwd.clone(),
                            profile: profile.take(),
                        },
                    )
                });
                emit(e.observe_shared(r), &mut stdout)?;
            }
        }
    }
    if let Some(e) = engine.as_mut() {
        emit(e.finish(), &mut stdout)?;
        if let Some(path) = &a.save_baseline {
            match e.baseline() {
                Some(b) if a.profile.is_none() => {
                    let sha = b.save(path)?;
                    eprintln!(
                        "proctor: baseline written to {} (sha256 {sha})",
                        path.display()
                    );
                }
                _ => eprintln!("proctor: a profile was given, so no baseline was learned to save"),
            }
        }
    }
    stdout.flush()?;
    let alerts: u64 = by_kind.values().sum();
    let kinds = by_kind
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let bad = if malformed.is_empty() {
        String::new()
    } else {
        let shown: Vec<String> = malformed
            .iter()
            .take(MALFORMED_SHOWN)
            .map(|n| n.to_string())
            .collect();
        let more = if malformed.len() > MALFORMED_SHOWN {
            ", ..."
        } else {
            ""
        };
        format!(
            ", {} malformed (line {}{more})",
            malformed.len(),
            shown.join(", ")
        )
    };
    eprintln!(
        "proctor: replayed {records} records from {log_name} ({other} other{bad}); {alerts} alerts{}; {} incidents",
        if kinds.is_empty() { String::new() } else { format!(": {kinds}") },
        incident_ids.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn policy(c: PolicyCommand) -> Result<ExitCode> {
    match c {
        PolicyCommand::Show { effective: None } => {
            print!("{}", Policy::default_toml());
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Show {
            effective: Some(file),
        } => Ok(match checked(&file)? {
            Some(p) => {
                print!("{}", p.to_toml());
                ExitCode::SUCCESS
            }
            None => ExitCode::from(1),
        }),
        PolicyCommand::Check { file } => Ok(match checked(&file)? {
            Some(p) => {
                // Valid; but a name too common for the kernel to watch gives no urgency.
                for (pattern, name) in proctor_runtime::enforcement::common_watched(&p) {
                    eprintln!(
                        "{}: note: `{pattern}`: `{name}` is too common a name for the kernel \
                         to watch; its files that exist at start are watched, one made later \
                         is judged with the next batch (within 20 ms), not at once \
                         (docs/kernel.md, \"When records reach userspace\")",
                        file.display()
                    );
                }
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            None => ExitCode::from(1),
        }),
        PolicyCommand::Generate(a) => crate::cmd::policy_gen::generate(a),
        PolicyCommand::Reload { dir, file } => {
            if checked(&file)?.is_none() {
                return Ok(ExitCode::from(1));
            }
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read policy {}", file.display()))?;
            let done = proctor_runtime::control::send(
                &dir,
                &proctor_runtime::control::Control::Policy {
                    origin: file.display().to_string(),
                    text,
                },
            )?;
            eprintln!("proctor: {done}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The policy FILE layers on the built-in one; an invalid file is reported (FILE:LINE:COL) on
/// stderr as None, an unreadable one is an error.
fn checked(file: &std::path::Path) -> Result<Option<Policy>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read policy {}", file.display()))?;
    match Policy::from_toml_str(&text, &file.display().to_string()) {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            eprintln!("{e}");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../detect/tests/data")
            .join(name)
    }

    fn scratch(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("proctor-cli-{}-{name}", std::process::id()));
        std::fs::write(&p, text).expect("write scratch file");
        p
    }

    fn replay_args(log: PathBuf) -> ReplayArgs {
        ReplayArgs {
            log,
            profile: None,
            policy: None,
            baseline: Duration::from_secs(10),
            home: None,
            cwd: None,
            save_baseline: None,
            incidents: None,
        }
    }

    #[test]
    fn policy_check_says_ok_or_exits_1_and_unreadable_is_an_error() {
        let good = scratch("good.toml", Policy::default_toml());
        assert_eq!(
            policy(PolicyCommand::Check { file: good.clone() }).unwrap(),
            ExitCode::SUCCESS
        );
        let bad = scratch(
            "bad.toml",
            &Policy::default_toml().replace("version = 1", "version = \"1\""),
        );
        assert_eq!(
            policy(PolicyCommand::Check { file: bad.clone() }).unwrap(),
            ExitCode::from(1)
        );
        // An overlay of three lines checks, and its effective policy is complete.
        let overlay = scratch(
            "overlay.toml",
            "# only the allowlist\n[network]\nallow = [\"api.anthropic.com\"]\n",
        );
        assert_eq!(
            policy(PolicyCommand::Check {
                file: overlay.clone()
            })
            .unwrap(),
            ExitCode::SUCCESS
        );
        assert_eq!(
            policy(PolicyCommand::Show {
                effective: Some(overlay.clone())
            })
            .unwrap(),
            ExitCode::SUCCESS
        );
        assert_eq!(
            policy(PolicyCommand::Show {
                effective: Some(bad.clone())
            })
            .unwrap(),
            ExitCode::from(1)
        );
        let _ = std::fs::remove_file(overlay);
        let missing = PathBuf::from("/nonexistent/policy.toml");
        let e = policy(PolicyCommand::Check { file: missing }).unwrap_err();
        assert!(format!("{e:#}").contains("cannot read policy"), "{e:#}");
        for p in [good, bad] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn replay_survives_malformed_lines_and_refuses_bad_inputs_up_front() {
        assert_eq!(
            replay(replay_args(fixture("malformed.jsonl"))).unwrap(),
            ExitCode::SUCCESS
        );
        let e = replay(replay_args(PathBuf::from("/nonexistent.jsonl"))).unwrap_err();
        assert!(format!("{e:#}").contains("cannot read audit log"), "{e:#}");
        let prof = scratch("profile.json", "{\"version\": 1,\n \"agent_id\": 3}");
        let mut a = replay_args(fixture("benign.jsonl"));
        a.profile = Some(prof.clone());
        let e = replay(a).unwrap_err();
        assert!(
            format!("{e:#}").contains(":2:"),
            "line of the profile error: {e:#}"
        );
        let _ = std::fs::remove_file(prof);
    }

    #[test]
    fn replay_saves_the_learned_baseline() {
        let out = std::env::temp_dir().join(format!("proctor-cli-{}-b.json", std::process::id()));
        let mut a = replay_args(fixture("benign.jsonl"));
        a.save_baseline = Some(out.clone());
        assert_eq!(replay(a).unwrap(), ExitCode::SUCCESS);
        let b = proctor_detect::Baseline::load(&out).expect("a valid profile was written");
        assert_eq!(b.agent_id, "demo-agent");
        assert_eq!(b.duration_ns, 10_000_000_000);
        let _ = std::fs::remove_file(out);
    }
}
