//! The approval ("ask") flow's verdict service and its built-in client.
//!
//! A held action (see `seccomp.rs`) becomes a pending request in the [`Hub`]: its canonical
//! action (RFC 8785 JSON) and that text's SHA-256 digest. The hub serves `DIR/approval.sock`
//! (mode 0600), a JSON-lines protocol:
//!
//! - server → client: `{"type":"request","id":N,"action":{..},"digest":"sha256:<hex>",
//!   "deadline_ns":T}` for each pending request (every pending one when a client connects,
//!   followed by `{"type":"sync","pending":K}`), `{"type":"resolved","id":N,"verdict":..,
//!   "decided_by":..}` when one is settled, `{"type":"ack","id":N,"verdict":..}` and
//!   `{"type":"error","id":N,"message":..}` in answer to a verdict.
//! - client → server: `{"type":"verdict","id":N,"digest":"sha256:<hex>","verdict":"allow"|
//!   "deny","reason":".."}`.
//!
//! A verdict binds to the digest of the pending action: a digest that does not match is
//! refused, so a verdict cannot be replayed for another action. No verdict before the deadline
//! means deny (fail closed). The approver's pid/uid/gid come from the socket (SO_PEERCRED),
//! never from what it says; a client inside the agent is refused.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SOCKET_FILE: &str = "approval.sock";

/// The longest line a client may send (a verdict is a few hundred bytes).
const MAX_LINE: u64 = 64 * 1024;

/// The canonical form (RFC 8785) of an action and its digest, `sha256:<hex>`.
pub fn digest_of(action: &Value) -> String {
    let canon = proctor_evidence::canonical_json(action);
    format!("sha256:{}", proctor_model::sha256_hex(&canon))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

/// Who answered, from the kernel (SO_PEERCRED), not from the client's words.
pub use proctor_model::Peer;

/// The peer of a connected socket.
pub fn peer_of(s: &UnixStream) -> std::io::Result<Peer> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which is that large.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Peer {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// How a request was settled.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub verdict: Verdict,
    pub reason: String,
    /// "approver", "timeout" or "shutdown".
    pub decided_by: &'static str,
    pub approver: Option<Peer>,
}

/// A pending request; `payload` is what the holder needs to carry out the verdict.
pub struct Held<P> {
    pub id: u64,
    pub action: Value,
    pub digest: String,
    pub deadline_ns: u64,
    pub deadline: Instant,
    pub created: Instant,
    pub payload: P,
}

/// Server → client lines.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Request {
        id: u64,
        action: Value,
        digest: String,
        deadline_ns: u64,
    },
    Sync {
        pending: usize,
    },
    Resolved {
        id: u64,
        verdict: Verdict,
        decided_by: String,
    },
    Ack {
        id: u64,
        verdict: Verdict,
    },
    Error {
        id: Option<u64>,
        message: String,
    },
}

/// Client → server lines.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    Verdict {
        id: u64,
        digest: String,
        verdict: Verdict,
        #[serde(default)]
        reason: String,
    },
}

type Resolver<P> = Box<dyn Fn(Held<P>, Resolution) + Send + Sync>;

struct State<P> {
    pending: BTreeMap<u64, Held<P>>,
    next_id: u64,
    clients: Vec<(u64, UnixStream)>,
    next_client: u64,
}

/// The pending requests and the clients that may answer them.
pub struct Hub<P> {
    state: Mutex<State<P>>,
    resolver: Resolver<P>,
    timeout: Duration,
}

impl<P: Send + 'static> Hub<P> {
    /// `resolver` carries out a verdict (answers the held syscall); it runs outside the lock.
    pub fn new(timeout: Duration, resolver: Resolver<P>) -> Arc<Hub<P>> {
        Arc::new(Hub {
            state: Mutex::new(State {
                pending: BTreeMap::new(),
                next_id: 1,
                clients: Vec::new(),
                next_client: 0,
            }),
            resolver,
            timeout,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<P>> {
        // A panicking client thread must not take the approval flow down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hold a new action: it gets an id and a deadline, and every client is told.
    pub fn submit(&self, action: Value, payload: P) -> (u64, String) {
        let digest = digest_of(&action);
        let now = Instant::now();
        let deadline_ns = proctor_model::now_ns() + self.timeout.as_nanos() as u64;
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        let msg = ServerMsg::Request {
            id,
            action: action.clone(),
            digest: digest.clone(),
            deadline_ns,
        };
        st.pending.insert(
            id,
            Held {
                id,
                action,
                digest: digest.clone(),
                deadline_ns,
                deadline: now + self.timeout,
                created: now,
                payload,
            },
        );
        broadcast(&mut st.clients, &msg);
        (id, digest)
    }

    /// A client's verdict: settles the request if the digest is the pending action's.
    pub fn verdict(
        &self,
        id: u64,
        digest: &str,
        verdict: Verdict,
        reason: String,
        peer: Peer,
    ) -> Result<(), String> {
        let held = {
            let mut st = self.lock();
            match st.pending.get(&id) {
                None => return Err(format!("no pending request {id}")),
                Some(h) if h.digest != digest => {
                    return Err(format!(
                        "digest {} does not match request {id} (its action's digest is {}): verdict refused",
                        clip(digest),
                        h.digest
                    ))
                }
                Some(_) => {}
            }
            st.pending.remove(&id).expect("present under the lock")
        };
        self.settle(
            held,
            Resolution {
                verdict,
                reason,
                decided_by: "approver",
                approver: Some(peer),
            },
        );
        Ok(())
    }

    fn settle(&self, held: Held<P>, r: Resolution) {
        let msg = ServerMsg::Resolved {
            id: held.id,
            verdict: r.verdict,
            decided_by: r.decided_by.to_string(),
        };
        (self.resolver)(held, r);
        broadcast(&mut self.lock().clients, &msg);
    }

    /// Deny every request past its deadline (fail closed). Returns the next deadline.
    pub fn expire(&self, now: Instant) -> Option<Instant> {
        let expired: Vec<Held<P>> = {
            let mut st = self.lock();
            let ids: Vec<u64> = st
                .pending
                .values()
                .filter(|h| h.deadline <= now)
                .map(|h| h.id)
                .collect();
            ids.iter().filter_map(|id| st.pending.remove(id)).collect()
        };
        for h in expired {
            let reason = format!("no verdict within {:?}", self.timeout);
            self.settle(
                h,
                Resolution {
                    verdict: Verdict::Deny,
                    reason,
                    decided_by: "timeout",
                    approver: None,
                },
            );
        }
        self.lock().pending.values().map(|h| h.deadline).min()
    }

    /// Deny everything still pending (proctor is stopping).
    pub fn shutdown(&self) {
        let all: Vec<Held<P>> = std::mem::take(&mut self.lock().pending)
            .into_values()
            .collect();
        for h in all {
            self.settle(
                h,
                Resolution {
                    verdict: Verdict::Deny,
                    reason: "proctor is stopping".into(),
                    decided_by: "shutdown",
                    approver: None,
                },
            );
        }
    }

    #[cfg(test)]
    pub fn pending_count(&self) -> usize {
        self.lock().pending.len()
    }

    /// A new client: it gets every pending request, then `sync`.
    fn attach(&self, mut s: UnixStream) -> u64 {
        let mut st = self.lock();
        let msgs: Vec<ServerMsg> = st
            .pending
            .values()
            .map(|h| ServerMsg::Request {
                id: h.id,
                action: h.action.clone(),
                digest: h.digest.clone(),
                deadline_ns: h.deadline_ns,
            })
            .chain([ServerMsg::Sync {
                pending: st.pending.len(),
            }])
            .collect();
        let ok = msgs.iter().all(|m| send(&mut s, m).is_ok());
        let id = st.next_client;
        st.next_client += 1;
        if ok {
            st.clients.push((id, s));
        }
        id
    }

    fn detach(&self, client: u64) {
        self.lock().clients.retain(|(id, _)| *id != client);
    }
}

fn clip(s: &str) -> String {
    s.chars()
        .take(80)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

fn send(s: &mut UnixStream, m: &ServerMsg) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(m).map_err(std::io::Error::other)?;
    line.push(b'\n');
    s.write_all(&line)
}

/// Send to every client; one that cannot take it within its write timeout is dropped.
fn broadcast(clients: &mut Vec<(u64, UnixStream)>, m: &ServerMsg) {
    clients.retain_mut(|(_, s)| send(s, m).is_ok());
}

/// The verdict socket of a run: accepts clients until dropped.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serve `hub` on `DIR/approval.sock` (mode 0600). `in_agent` says whether a peer pid is
    /// part of the monitored agent (such a client is refused: the agent cannot approve itself).
    pub fn start<P: Send + 'static>(
        dir: &Path,
        hub: Arc<Hub<P>>,
        in_agent: Arc<dyn Fn(i32) -> bool + Send + Sync>,
    ) -> Result<Server> {
        let (listener, path) = bind_private(dir, SOCKET_FILE)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("approval".into())
            .spawn(move || accept_loop(listener, hub, in_agent, stop2))
            .context("starting the approval thread")?;
        Ok(Server {
            path,
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A listening Unix socket `DIR/NAME` of mode 0600, non-blocking. Bound under a temporary name,
/// restricted, then moved into place: no moment where the socket exists with the umask's
/// wider mode.
pub fn bind_private(dir: &Path, name: &str) -> Result<(UnixListener, PathBuf)> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).with_context(|| format!("binding {}", tmp.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("creating {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok((listener, path))
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

fn accept_loop<P: Send + 'static>(
    listener: UnixListener,
    hub: Arc<Hub<P>>,
    in_agent: Arc<dyn Fn(i32) -> bool + Send + Sync>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 200) };
        let Ok((s, _)) = listener.accept() else {
            continue;
        };
        let _ = s.set_nonblocking(false);
        let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
        let peer = match peer_of(&s) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("approval client without peer credentials: {e}");
                continue;
            }
        };
        if in_agent(peer.pid) {
            let mut s = s;
            let _ = send(
                &mut s,
                &ServerMsg::Error {
                    id: None,
                    message: "a process of the monitored agent cannot answer approval requests"
                        .into(),
                },
            );
            tracing::warn!(
                "refused an approval client inside the agent (pid {})",
                peer.pid
            );
            continue;
        }
        let Ok(writer) = s.try_clone() else { continue };
        let hub = hub.clone();
        let _ = std::thread::Builder::new()
            .name("approval-client".into())
            .spawn(move || {
                let client = hub.attach(writer);
                serve_client(&hub, s, peer);
                hub.detach(client);
            });
    }
}

/// Read verdicts from one client until it hangs up or sends garbage past the line bound.
fn serve_client<P: Send + 'static>(hub: &Hub<P>, s: UnixStream, peer: Peer) {
    let Ok(mut out) = s.try_clone() else { return };
    let mut reader = BufReader::new(s);
    loop {
        let mut line = Vec::new();
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') && line.len() as u64 >= MAX_LINE {
            let _ = send(
                &mut out,
                &ServerMsg::Error {
                    id: None,
                    message: format!("line longer than {MAX_LINE} bytes; closing"),
                },
            );
            return;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply = match serde_json::from_slice::<ClientMsg>(&line) {
            Err(e) => ServerMsg::Error {
                id: None,
                message: format!("not a verdict line: {e}"),
            },
            Ok(ClientMsg::Verdict {
                id,
                digest,
                verdict,
                reason,
            }) => {
                let reason: String = reason.chars().take(1024).collect();
                match hub.verdict(id, &digest, verdict, reason, peer) {
                    Ok(()) => ServerMsg::Ack { id, verdict },
                    Err(message) => ServerMsg::Error {
                        id: Some(id),
                        message,
                    },
                }
            }
        };
        if send(&mut out, &reply).is_err() {
            return;
        }
    }
}

/// One line of human summary for an action.
pub fn summary(action: &Value) -> String {
    let s = |k: &str| match &action[k] {
        Value::String(s) => s.escape_debug().to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match action["kind"].as_str() {
        Some("connect") => format!(
            "pid {} ({}) wants to connect to {}:{} ({})",
            s("pid"),
            s("comm"),
            s("addr"),
            s("port"),
            s("family")
        ),
        Some("exec") => {
            let argv: Vec<String> = action["argv"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| match v {
                            Value::String(x) => x.escape_debug().to_string(),
                            o => o.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "pid {} ({}) wants to exec {} [{}]",
                s("pid"),
                s("comm"),
                s("resolved"),
                argv.join(" ")
            )
        }
        _ => format!("unknown action {}", action),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn hub(timeout: Duration) -> (Arc<Hub<u32>>, mpsc::Receiver<(u32, Resolution)>) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let h = Hub::new(
            timeout,
            Box::new(move |held: Held<u32>, r| {
                tx.lock().unwrap().send((held.payload, r)).unwrap();
            }),
        );
        (h, rx)
    }

    const PEER: Peer = Peer {
        pid: 42,
        uid: 0,
        gid: 0,
    };

    #[test]
    fn digest_is_sha256_of_the_canonical_form() {
        let a = serde_json::json!({"port": 443, "kind": "connect", "addr": "10.0.0.1"});
        let b = serde_json::json!({"addr": "10.0.0.1", "kind": "connect", "port": 443});
        assert_eq!(digest_of(&a), digest_of(&b), "key order does not matter");
        let canon = br#"{"addr":"10.0.0.1","kind":"connect","port":443}"#;
        assert_eq!(
            digest_of(&a),
            format!("sha256:{}", proctor_model::sha256_hex(canon))
        );
        let c = serde_json::json!({"addr": "10.0.0.2", "kind": "connect", "port": 443});
        assert_ne!(digest_of(&a), digest_of(&c));
    }

    #[test]
    fn a_verdict_binds_to_its_actions_digest() {
        let (h, rx) = hub(Duration::from_secs(60));
        let (id1, d1) = h.submit(serde_json::json!({"kind": "connect", "port": 1}), 1);
        let (id2, d2) = h.submit(serde_json::json!({"kind": "connect", "port": 2}), 2);
        // Replaying request 1's verdict (digest) for request 2 is refused; nothing is settled.
        let err = h
            .verdict(id2, &d1, Verdict::Allow, String::new(), PEER)
            .unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        assert!(rx.try_recv().is_err());
        assert_eq!(h.pending_count(), 2);
        h.verdict(id2, &d2, Verdict::Allow, "ok".into(), PEER)
            .unwrap();
        let (payload, r) = rx.try_recv().unwrap();
        assert_eq!(
            (payload, r.verdict, r.decided_by),
            (2, Verdict::Allow, "approver")
        );
        assert_eq!(r.approver, Some(PEER));
        // Settled once: a second verdict for the same id finds nothing.
        assert!(h
            .verdict(id2, &d2, Verdict::Deny, String::new(), PEER)
            .unwrap_err()
            .contains("no pending request"));
        assert!(h
            .verdict(id1, &d1, Verdict::Deny, String::new(), PEER)
            .is_ok());
        assert_eq!(rx.try_recv().unwrap().1.verdict, Verdict::Deny);
    }

    #[test]
    fn no_verdict_before_the_deadline_is_a_deny() {
        let (h, rx) = hub(Duration::from_millis(20));
        h.submit(serde_json::json!({"kind": "exec"}), 7);
        assert!(h.expire(Instant::now()).is_some(), "not expired yet");
        assert!(rx.try_recv().is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(h.expire(Instant::now()), None);
        let (payload, r) = rx.try_recv().unwrap();
        assert_eq!(
            (payload, r.verdict, r.decided_by),
            (7, Verdict::Deny, "timeout")
        );
        assert!(r.approver.is_none());
    }

    #[test]
    fn shutdown_denies_everything_pending() {
        let (h, rx) = hub(Duration::from_secs(60));
        h.submit(serde_json::json!({"n": 1}), 1);
        h.submit(serde_json::json!({"n": 2}), 2);
        h.shutdown();
        let got: Vec<_> = rx.try_iter().map(|(p, r)| (p, r.verdict)).collect();
        assert_eq!(got, vec![(1, Verdict::Deny), (2, Verdict::Deny)]);
    }

    #[test]
    fn the_socket_serves_pending_requests_and_refuses_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (h, rx) = hub(Duration::from_secs(60));
        let (id, digest) = h.submit(serde_json::json!({"kind": "connect", "port": 9}), 9);
        let server = Server::start(dir.path(), h.clone(), Arc::new(|_| false)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(server.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let s = UnixStream::connect(server.path()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let mut next = || {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            serde_json::from_str::<ServerMsg>(&l).unwrap()
        };
        assert!(matches!(next(), ServerMsg::Request { id: i, .. } if i == id));
        assert_eq!(next(), ServerMsg::Sync { pending: 1 });
        w.write_all(b"{\"type\":\"verdict\",\"id\":1}\n").unwrap();
        assert!(matches!(next(), ServerMsg::Error { id: None, .. }));
        w.write_all(b"not json\n").unwrap();
        assert!(matches!(next(), ServerMsg::Error { id: None, .. }));
        let bad = format!(
            "{{\"type\":\"verdict\",\"id\":{id},\"digest\":\"sha256:00\",\"verdict\":\"allow\"}}\n"
        );
        w.write_all(bad.as_bytes()).unwrap();
        assert!(matches!(next(), ServerMsg::Error { id: Some(i), .. } if i == id));
        let good = serde_json::to_string(&ClientMsg::Verdict {
            id,
            digest,
            verdict: Verdict::Deny,
            reason: "no".into(),
        })
        .unwrap();
        w.write_all(format!("{good}\n").as_bytes()).unwrap();
        let mut got = [next(), next()];
        got.sort_by_key(|m| matches!(m, ServerMsg::Ack { .. }));
        assert!(
            matches!(got[0], ServerMsg::Resolved { id: i, verdict: Verdict::Deny, .. } if i == id)
        );
        assert_eq!(
            got[1],
            ServerMsg::Ack {
                id,
                verdict: Verdict::Deny
            }
        );
        let (_, res) = rx.try_recv().unwrap();
        assert_eq!(res.reason, "no");
        assert_eq!(res.approver.unwrap().pid as u32, std::process::id());
        drop(server);
        assert!(!dir.path().join(SOCKET_FILE).exists());
    }

    #[test]
    fn agent_clients_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (h, _rx) = hub(Duration::from_secs(60));
        let server = Server::start(dir.path(), h, Arc::new(|_| true)).unwrap();
        let s = UnixStream::connect(server.path()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut l = String::new();
        BufReader::new(s).read_line(&mut l).unwrap();
        assert!(l.contains("cannot answer"), "{l}");
    }
}
