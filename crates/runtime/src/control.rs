//! The control channel of a running proctor (`proctor mode`, `proctor contain`): a Unix socket
//! `DIR/control.sock` of mode 0600. The requester is known from the kernel (SO_PEERCRED: pid,
//! uid, gid; its executable from /proc), never from what it says; the monitoring loop refuses a
//! requester inside the monitored agent, records the attempt and alerts on it. Nothing the agent
//! can write (a file in the output directory) is ever read as a request.
//!
//! Protocol: one JSON line each way. Request: a [`Control`]; reply: `{"ok": true, "message"}` or
//! `{"ok": false, "error"}`.

use crate::approval::Peer;
use crate::enforcement::ContainAction;
use anyhow::{bail, Context, Result};
use proctor_model::Mode;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

pub const SOCKET_FILE: &str = "control.sock";

/// A request to the proctor monitoring into DIR, carried out and recorded there (so it lands in
/// that run's audit log), never by the requesting command itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Control {
    Mode {
        mode: Mode,
    },
    Contain {
        action: ContainAction,
    },
    /// `proctor ctl list`: the daemon's agents and sessions (the answer's message is JSON).
    List,
    /// `proctor ctl contain SESSION`: containment of one of the daemon's sessions.
    SessionContain {
        session: String,
        action: ContainAction,
    },
    /// `proctor ctl mode SESSION MODE`: the mode of one of the daemon's sessions.
    SessionMode {
        session: String,
        mode: Mode,
    },
    /// A new policy (the overlay file's text) for the running proctor.
    Policy {
        origin: String,
        text: String,
    },
}

/// Longest request line read (a policy reload carries the policy file's text).
const MAX_LINE: u64 = 1 << 20;

/// A well-formed request and who sent it; answer it with [`Request::reply`].
pub struct Request {
    pub control: Control,
    pub peer: Peer,
    /// The requester's executable, as the kernel names it.
    pub exe: Option<String>,
    stream: UnixStream,
}

impl Request {
    /// Who asked, for the record.
    pub fn requester(&self) -> proctor_model::Requester {
        proctor_model::Requester {
            pid: self.peer.pid,
            uid: self.peer.uid,
            gid: self.peer.gid,
            exe: self.exe.clone(),
        }
    }

    pub fn reply(mut self, result: std::result::Result<String, String>) {
        let line = match result {
            Ok(message) => json!({ "ok": true, "message": message }),
            Err(error) => json!({ "ok": false, "error": error }),
        };
        let _ = writeln!(self.stream, "{line}");
    }
}

/// The listening socket and its accept thread; requests arrive on `requests`.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub requests: Receiver<Request>,
}

impl Server {
    pub fn start(dir: &Path) -> Result<Server> {
        Server::start_at(dir, SOCKET_FILE)
    }

    /// A control socket named `name` in `dir` (the daemon's socket).
    pub fn start_at(dir: &Path, name: &str) -> Result<Server> {
        let (listener, path) = crate::approval::bind_private(dir, name)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || accept_loop(&listener, &tx, &stop2))
            .context("starting the control thread")?;
        Ok(Server {
            path,
            stop,
            thread: Some(thread),
            requests: rx,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &UnixListener, tx: &Sender<Request>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
            continue;
        }
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        if let Some(req) = read_request(stream) {
            let _ = tx.send(req);
        }
    }
}

/// Read one request; a malformed one is answered here and goes no further.
fn read_request(stream: UnixStream) -> Option<Request> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let peer = crate::approval::peer_of(&stream).ok()?;
    let exe = std::fs::read_link(format!("/proc/{}/exe", peer.pid))
        .ok()
        .map(|p| p.display().to_string());
    let mut line = String::new();
    let read = BufReader::new((&stream).take(MAX_LINE)).read_line(&mut line);
    let parsed = read
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str::<Control>(line.trim()).map_err(|e| e.to_string()));
    match parsed {
        Ok(control) => Some(Request {
            control,
            peer,
            exe,
            stream,
        }),
        Err(e) => {
            let mut s = stream;
            let _ = writeln!(
                s,
                "{}",
                json!({ "ok": false, "error": format!("malformed request: {e}") })
            );
            None
        }
    }
}

/// Hand `req` to the proctor monitoring into `dir` and wait for its answer.
pub fn send(dir: &Path, req: &Control) -> Result<String> {
    send_to(&dir.join(SOCKET_FILE), dir, req)
}

/// Hand `req` to the proctor serving the socket `path` (for `dir`, named in errors).
pub fn send_to(path: &Path, dir: &Path, req: &Control) -> Result<String> {
    let path = path.to_path_buf();
    if !path.exists() {
        bail!(
            "no running proctor writes to {} ({} is missing)",
            dir.display(),
            path.display()
        );
    }
    let mut s =
        UnixStream::connect(&path).with_context(|| format!("connecting to {}", path.display()))?;
    // The output directory is writable by a root agent: it could put its own socket in place
    // and answer "done". A real proctor never runs inside an agent's cgroup (proctor/NAME),
    // which the agent cannot leave.
    let server = crate::approval::peer_of(&s).context("who serves the control socket")?;
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", server.pid)).unwrap_or_default();
    if cg
        .lines()
        .any(|l| l.starts_with("0::") && l.contains("/proctor/"))
    {
        bail!(
            "{} is served by pid {}, a process inside a monitored agent, not by proctor: refusing to talk to it",
            path.display(),
            server.pid
        );
    }
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    writeln!(s, "{}", serde_json::to_string(req)?)?;
    let mut line = String::new();
    BufReader::new((&s).take(MAX_LINE))
        .read_line(&mut line)
        .context("waiting for proctor's answer")?;
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("proctor answered something unreadable: {}", line.trim()))?;
    match v["ok"].as_bool() {
        Some(true) => Ok(v["message"].as_str().unwrap_or("").to_string()),
        _ => bail!(
            "proctor refused: {}",
            v["error"].as_str().unwrap_or("no reason given")
        ),
    }
}
