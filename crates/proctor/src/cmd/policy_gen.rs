//! `proctor policy generate`: a commented enforce policy proposed from recorded runs and
//! profiles (see `proctor_detect::generate`), and `--diff` against a current policy.

use anyhow::{Context, Result};
use clap::Args;
use proctor_detect::generate::{diff, Generator};
use proctor_detect::{Baseline, Policy};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct GenerateArgs {
    /// Recorded runs: a run's output directory (its audit.jsonl) or an audit log itself
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Also take a profile (from `proctor calibrate`, DIR/baseline.json or `builtin:NAME`):
    /// its host names, destinations, DNS domains and binaries (repeatable)
    #[arg(long, value_name = "P")]
    pub profile: Vec<PathBuf>,
    /// Write the policy here (mode 0600) instead of standard output
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print what the proposal changes against this policy file (`+ key: value`, `- key: value`)
    #[arg(long, value_name = "OLD")]
    pub diff: Option<PathBuf>,
}

fn audit_log(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("audit.jsonl")
    } else {
        p.to_path_buf()
    }
}

pub fn generate(a: GenerateArgs) -> Result<ExitCode> {
    let base = Policy::builtin();
    let dirs = base.interpreter_dirs.clone();
    let mut g = Generator::new(base);
    for run in &a.runs {
        let log = audit_log(run);
        let f = std::fs::File::open(&log)
            .with_context(|| format!("cannot read recorded run {}", log.display()))?;
        g.add_audit(BufReader::new(f), &run.display().to_string())?;
    }
    for p in &a.profile {
        let spec = p.to_string_lossy();
        let b = Baseline::load_spec(&spec)?;
        g.add_profile(&b, &spec);
        // A profile names binaries by basename: the ones found in the system directories
        // here are the ones the default-deny list can name.
        for name in &b.binaries {
            for d in &dirs {
                let path = Path::new(d).join(name);
                if let Ok(real) = path.canonicalize() {
                    if real.is_file() {
                        g.add_exec(&real.to_string_lossy());
                    }
                }
            }
        }
    }
    let text = g.render();
    // The proposal must be a policy this proctor reads; a defect here is a bug, said plainly.
    let new = Policy::from_toml_str(&text, "generated policy")
        .context("the generated policy does not parse (a proctor bug)")?;
    match &a.out {
        Some(out) => {
            proctor_evidence::replace_private_file(out, text.as_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!("proctor: policy proposed in {}", out.display());
        }
        None if a.diff.is_none() => print!("{text}"),
        None => {}
    }
    if let Some(old) = &a.diff {
        let otext = std::fs::read_to_string(old)
            .with_context(|| format!("cannot read policy {}", old.display()))?;
        let oldp = Policy::from_toml_str(&otext, &old.display().to_string())?;
        let lines = diff(&oldp, &new);
        if lines.is_empty() {
            println!("no change against {}", old.display());
        }
        for l in lines {
            println!("{l}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
