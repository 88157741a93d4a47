//! `proctor approve DIR`: the built-in client of the approval protocol
//! (`proctor_runtime::approval`).

use anyhow::{bail, Context, Result};
use proctor_model::now_ns as wall_ns;
use proctor_runtime::approval::{summary, ClientMsg, ServerMsg, Verdict, SOCKET_FILE};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Answer the approval requests of a running proctor (its `ask` rules).
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("which").args(["id", "all"])))]
pub struct ApproveArgs {
    /// The output directory of the running proctor (its --out): DIR/approval.sock
    pub dir: PathBuf,
    /// Allow without asking (with --id N or --all)
    #[arg(long, conflicts_with = "deny", requires = "which")]
    pub allow: bool,
    /// Deny without asking (with --id N or --all)
    #[arg(long, requires = "which")]
    pub deny: bool,
    /// The request to answer (waits up to --wait for it to appear)
    #[arg(long, value_name = "N")]
    pub id: Option<u64>,
    /// Answer every request pending now
    #[arg(long)]
    pub all: bool,
    /// Reason recorded with the verdict
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Print the protocol's raw JSON lines as they arrive
    #[arg(long)]
    pub json: bool,
    /// How long --id waits for its request
    #[arg(long, default_value = "10s", value_parser = crate::cmd::parse_duration)]
    pub wait: Duration,
}

pub fn approve(a: ApproveArgs) -> Result<std::process::ExitCode> {
    use std::process::ExitCode;
    if (a.id.is_some() || a.all) && !(a.allow || a.deny) {
        bail!("--id and --all go with --allow or --deny");
    }
    let path = a.dir.join(SOCKET_FILE);
    let stream = UnixStream::connect(&path).with_context(|| {
        format!(
            "cannot connect to {} (is a proctor with `ask` rules writing to {}?)",
            path.display(),
            a.dir.display()
        )
    })?;
    let (tx, rx) = std::sync::mpsc::channel::<Option<ServerMsg>>();
    let json = a.json;
    let reader = stream.try_clone()?;
    std::thread::spawn(move || {
        let mut r = BufReader::new(reader);
        loop {
            let mut line = String::new();
            match (&mut r).take(16 * 1024 * 1024).read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if json {
                print!("{line}");
                let _ = std::io::stdout().flush();
            }
            match serde_json::from_str::<ServerMsg>(&line) {
                Ok(m) => {
                    if tx.send(Some(m)).is_err() {
                        return;
                    }
                }
                Err(e) => eprintln!("proctor approve: ignoring a line from proctor: {e}"),
            }
        }
        let _ = tx.send(None);
    });
    let mut out = stream;
    let verdict_of = |v: Verdict, id: u64, digest: &str| ClientMsg::Verdict {
        id,
        digest: digest.to_string(),
        verdict: v,
        reason: a.reason.clone(),
    };
    let write = |out: &mut UnixStream, m: &ClientMsg| -> Result<()> {
        let mut line = serde_json::to_vec(m)?;
        line.push(b'\n');
        out.write_all(&line)
            .context("writing to the approval socket")
    };
    let scripted = match (a.allow, a.deny) {
        (true, _) => Some(Verdict::Allow),
        (_, true) => Some(Verdict::Deny),
        _ => None,
    };
    let Some(v) = scripted else {
        return interactive(&rx, &mut out, &verdict_of, &write);
    };
    // Scripted: collect the pending requests (until `sync`), pick ours, answer, await acks.
    let deadline = Instant::now() + a.wait;
    let mut seen: BTreeMap<u64, String> = BTreeMap::new();
    let mut synced = false;
    let mut answered: Vec<u64> = Vec::new();
    let mut failed = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let targets: Vec<u64> = match a.id {
            Some(id) if seen.contains_key(&id) && !answered.contains(&id) => vec![id],
            Some(_) => Vec::new(),
            None if synced && answered.is_empty() => seen.keys().copied().collect(),
            None => Vec::new(),
        };
        if a.all && synced && targets.is_empty() && answered.is_empty() {
            eprintln!("proctor approve: no pending request");
            return Ok(ExitCode::SUCCESS);
        }
        for id in targets {
            write(&mut out, &verdict_of(v, id, &seen[&id]))?;
            answered.push(id);
        }
        if !answered.is_empty() && answered.iter().all(|id| !seen.contains_key(id)) {
            return Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            });
        }
        let msg = match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(Some(m)) => m,
            Ok(None) => bail!("proctor closed the approval socket"),
            Err(_) if answered.is_empty() => {
                bail!(
                    "request {} did not appear within {:?}",
                    a.id.map_or("?".into(), |i| i.to_string()),
                    a.wait
                )
            }
            Err(_) => bail!("proctor did not acknowledge the verdict"),
        };
        match msg {
            ServerMsg::Request { id, digest, .. } => {
                seen.insert(id, digest);
            }
            ServerMsg::Sync { .. } => synced = true,
            ServerMsg::Ack { id, verdict } => {
                if !a.json {
                    println!("{id}: {}", verdict.as_str());
                }
                seen.remove(&id);
            }
            ServerMsg::Error {
                id: Some(id),
                message,
            } if answered.contains(&id) => {
                eprintln!("proctor approve: request {id}: {message}");
                failed = true;
                seen.remove(&id);
            }
            ServerMsg::Error { id: None, message } => bail!("proctor refused: {message}"),
            ServerMsg::Resolved { id, .. } if !answered.contains(&id) => {
                seen.remove(&id);
            }
            _ => {}
        }
    }
}

type VerdictOf<'a> = dyn Fn(Verdict, u64, &str) -> ClientMsg + 'a;
type Writer<'a> = dyn Fn(&mut UnixStream, &ClientMsg) -> Result<()> + 'a;

/// Show each request and read `a`/`d` (or `s` to skip) from the terminal.
fn interactive(
    rx: &std::sync::mpsc::Receiver<Option<ServerMsg>>,
    out: &mut UnixStream,
    verdict_of: &VerdictOf,
    write: &Writer,
) -> Result<std::process::ExitCode> {
    let stdin = std::io::stdin();
    eprintln!("proctor approve: waiting for requests (a = allow, d = deny, s = skip; Ctrl-D ends)");
    loop {
        let Ok(Some(msg)) = rx.recv() else {
            eprintln!("proctor approve: proctor closed the approval socket");
            return Ok(std::process::ExitCode::SUCCESS);
        };
        match msg {
            ServerMsg::Request {
                id,
                action,
                digest,
                deadline_ns,
            } => {
                let left = deadline_ns.saturating_sub(wall_ns()) / 1_000_000_000;
                println!("[{id}] {}", summary(&action));
                println!("     digest {digest}; denied in {left}s without an answer");
                let v = loop {
                    print!("     allow, deny or skip? [a/d/s] ");
                    std::io::stdout().flush()?;
                    let mut answer = String::new();
                    if stdin.lock().read_line(&mut answer)? == 0 {
                        return Ok(std::process::ExitCode::SUCCESS);
                    }
                    match answer.trim() {
                        "a" | "allow" => break Some(Verdict::Allow),
                        "d" | "deny" => break Some(Verdict::Deny),
                        "s" | "skip" => break None,
                        _ => continue,
                    }
                };
                if let Some(v) = v {
                    write(out, &verdict_of(v, id, &digest))?;
                }
            }
            ServerMsg::Ack { id, verdict } => println!("[{id}] {}", verdict.as_str()),
            ServerMsg::Error { id, message } => println!(
                "[{}] refused: {message}",
                id.map_or("-".into(), |i| i.to_string())
            ),
            ServerMsg::Resolved {
                id,
                verdict,
                decided_by,
            } if decided_by != "approver" => {
                println!("[{id}] {} ({decided_by})", verdict.as_str())
            }
            _ => {}
        }
    }
}
