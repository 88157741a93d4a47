//! `keygen`, `verify`, `sinkhole`: the evidence commands. The logic lives in
//! `proctor-evidence`; this is argument parsing and output.

use anyhow::{bail, Context, Result};
use clap::Args;
use proctor_evidence::{default_state_dir, generate_keypair, Verifier};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};

#[derive(Args)]
pub struct KeygenArgs {
    /// Directory for proctor.key (mode 0600) and proctor.pub.pem [default: $PROCTOR_STATE_DIR,
    /// /var/lib/proctor for root, else ~/.local/state/proctor]
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Certificates (.cal), directories (proctor-out/, alerts/) and audit logs
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Public key to trust (SubjectPublicKeyInfo PEM); without it, the key proctor wrote next to
    /// the data is used and the report says so
    #[arg(long, value_name = "PUB.pem")]
    pub key: Option<PathBuf>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Signed revocation list (`proctor key revoke`): signatures by a revoked key on records
    /// dated at or after its revocation are invalid
    #[arg(long, value_name = "FILE")]
    pub revoked: Option<PathBuf>,
    /// Certificate (PEM) of the timestamp authority whose RFC 3161 tokens to check
    #[arg(long, value_name = "FILE")]
    pub tsa_cert: Option<PathBuf>,
}

#[derive(Args)]
pub struct SinkholeArgs {
    /// Unix socket to listen on (proctor's alert socket)
    #[arg(long)]
    pub listen: PathBuf,
    /// Run this command (with `sh -c`) once per alert, the alert's JSON line on its stdin; one
    /// at a time, in order (a hook that hangs holds up delivery, and proctor counts what it
    /// then has to drop)
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// Append each alert's JSON line to this file
    #[arg(long, value_name = "FILE")]
    pub append: Option<PathBuf>,
}

pub fn keygen(a: KeygenArgs) -> Result<ExitCode> {
    let dir = a.dir.unwrap_or_else(default_state_dir);
    let (private, public) = generate_keypair(&dir)?;
    let v = Verifier::load(&public)?;
    println!(
        "private key: {} (mode 0600, keep it secret)",
        private.display()
    );
    println!("public key:  {}", public.display());
    println!("fingerprint: {}", v.fingerprint());
    Ok(ExitCode::SUCCESS)
}

pub fn verify(a: VerifyArgs) -> Result<ExitCode> {
    let key = a
        .key
        .as_deref()
        .map(Verifier::load)
        .transpose()
        .context("--key")?;
    let report = proctor_evidence::verify_paths_with(
        &a.paths,
        &proctor_evidence::VerifyOptions {
            key,
            revoked: a.revoked.clone(),
            tsa_cert: a.tsa_cert.clone(),
        },
    );
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        v["exit_code"] = report.exit_code().into();
        if let (Some(p), Some(keys)) = (&a.key, v["keys"].as_array_mut()) {
            for k in keys {
                k["source"] = p.display().to_string().into();
            }
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let mut text = report.render();
        if let Some(p) = &a.key {
            text = text.replace(
                "given with --key",
                &format!("given with --key {}", p.display()),
            );
        }
        print!("{text}");
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// Where received alerts go.
struct Outputs {
    append: Option<std::fs::File>,
    exec: Option<String>,
    print: bool,
}

impl Outputs {
    fn deliver(&mut self, line: &[u8]) {
        if self.print {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line).and_then(|_| out.write_all(b"\n"));
            let _ = out.flush();
        }
        if let Some(f) = &mut self.append {
            let mut buf = line.to_vec();
            buf.push(b'\n');
            if let Err(e) = f.write_all(&buf) {
                eprintln!("proctor sinkhole: cannot append: {e}");
            }
        }
        if let Some(cmd) = &self.exec {
            let child = Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stdin(Stdio::piped())
                .spawn();
            match child {
                Ok(mut c) => {
                    if let Some(mut stdin) = c.stdin.take() {
                        let _ = stdin.write_all(line).and_then(|_| stdin.write_all(b"\n"));
                    }
                    match c.wait() {
                        Ok(s) if !s.success() => {
                            eprintln!("proctor sinkhole: `{cmd}` exited with {s}")
                        }
                        Err(e) => eprintln!("proctor sinkhole: `{cmd}`: {e}"),
                        Ok(_) => {}
                    }
                }
                Err(e) => eprintln!("proctor sinkhole: cannot run `{cmd}`: {e}"),
            }
        }
    }
}

/// Largest alert line accepted from a sender.
const MAX_ALERT_LINE: u64 = 16 * 1024 * 1024;

pub fn sinkhole(a: SinkholeArgs) -> Result<ExitCode> {
    // A socket file left by a dead listener is replaced; a live one or any other file is not.
    if let Ok(meta) = std::fs::symlink_metadata(&a.listen) {
        if !meta.file_type().is_socket() {
            bail!("{} exists and is not a socket", a.listen.display());
        }
        if UnixStream::connect(&a.listen).is_ok() {
            bail!("{}: another receiver is listening", a.listen.display());
        }
        std::fs::remove_file(&a.listen)
            .with_context(|| format!("removing stale socket {}", a.listen.display()))?;
    }
    // Owner-only socket (root, which proctor runs as, connects anyway): whoever can connect
    // can inject alerts into the hook. The umask covers the window between bind and any chmod;
    // nothing else runs in this process yet.
    // SAFETY: umask has no preconditions and cannot fail.
    let old_umask = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(&a.listen);
    // SAFETY: as above.
    unsafe { libc::umask(old_umask) };
    let listener = bound.with_context(|| format!("cannot listen on {}", a.listen.display()))?;
    let append = a
        .append
        .as_ref()
        .map(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot append to {}", p.display()))
        })
        .transpose()?;
    let outputs = Arc::new(Mutex::new(Outputs {
        print: append.is_none() && a.exec.is_none(),
        append,
        exec: a.exec,
    }));
    eprintln!("proctor sinkhole: listening on {}", a.listen.display());
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                eprintln!("proctor sinkhole: accept: {e}");
                continue;
            }
        };
        let outputs = outputs.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(conn);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match (&mut reader)
                    .take(MAX_ALERT_LINE)
                    .read_until(b'\n', &mut buf)
                {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                // A line cut by a sender that went away, or too long: not an alert.
                let Some(line) = buf.strip_suffix(b"\n") else {
                    eprintln!(
                        "proctor sinkhole: dropped an incomplete line ({} bytes)",
                        buf.len()
                    );
                    return;
                };
                if !serde_json::from_slice::<serde_json::Value>(line).is_ok_and(|v| v.is_object()) {
                    eprintln!("proctor sinkhole: ignored a line that is not a JSON object");
                    continue;
                }
                outputs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .deliver(line);
            }
        });
    }
    Ok(ExitCode::SUCCESS)
}
