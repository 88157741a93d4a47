//! The TLS-terminating proxy of interception mode (`--tls-intercept`), for agents whose TLS no
//! uprobe reaches (rustls in Codex, BoringSSL in Claude Code's Bun executable).
//!
//! The kernel redirects the agent's TCP connects to the intercepted ports to this proxy (the
//! cgroup connect programs, so the agent cannot go around it); the proxy asks the caller where
//! each accepted connection was going ([`Lookup`]), terminates the agent's TLS with a leaf
//! certificate for the name it asked for, signed by a per-run CA ([`Ca`]) that the agent was
//! told to trust, opens its own TLS connection to the real destination (verified against the
//! system's roots and `SSL_CERT_FILE`), and copies the plaintext both ways, handing each piece
//! to the caller ([`Captured`]) as it passes.
//!
//! Fails closed: a client that does not accept the CA gets no connection at all (nothing it
//! sends reaches the destination, since nothing is sent before its handshake completes), and an
//! upstream that fails verification gets no byte from the client. Both are reported
//! ([`Captured::Refused`]).
//!
//! ALPN: the proxy offers HTTP/1.1 only, to the client and upstream, so what it copies is
//! HTTP/1.1 whatever the client would have preferred (HTTP/2 clients fall back to it).
//!
//! One thread per connection, blocking sockets and `poll(2)`: agents open a handful of
//! long-lived connections to their API, not thousands.

use proctor_model::TlsDirection;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the proxy waits for the destination's TCP connect and for either handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum InterceptError {
    #[error("generating the interception CA")]
    Ca(#[source] rcgen::Error),
    #[error("generating a certificate for {name}")]
    Leaf {
        name: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("TLS configuration")]
    Tls(#[source] rustls::Error),
    #[error("listening on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading CA certificates from {path}")]
    Roots {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no CA certificate to verify destinations with (system bundle or SSL_CERT_FILE)")]
    NoRoots,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The per-run certificate authority: created in memory at start, its key never written.
pub struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    /// Server configurations by name (host name or address), each with its leaf certificate.
    leaves: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl Ca {
    pub fn new() -> Result<Ca, InterceptError> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
        let key = rcgen::KeyPair::generate().map_err(InterceptError::Ca)?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(InterceptError::Ca)?;
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.distinguished_name.push(
            DnType::CommonName,
            "proctor TLS interception (this run only)",
        );
        let cert = p.self_signed(&key).map_err(InterceptError::Ca)?;
        Ok(Ca {
            cert,
            key,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate, PEM: what the agent is told to trust.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server configuration presenting a leaf certificate for `name` (a DNS name or an IP
    /// address), made once per name.
    fn server_config(&self, name: &str) -> Result<Arc<ServerConfig>, InterceptError> {
        let mut leaves = self.leaves.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = leaves.get(name) {
            return Ok(c.clone());
        }
        let leaf_err = |source| InterceptError::Leaf {
            name: name.to_string(),
            source,
        };
        let key = rcgen::KeyPair::generate().map_err(leaf_err)?;
        // An address becomes an IP SAN, a name a DNS SAN.
        let mut p = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(leaf_err)?;
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &self.cert, &self.key).map_err(leaf_err)?;
        let chain = vec![cert.der().clone(), self.cert.der().clone()];
        let der = PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| InterceptError::Tls(rustls::Error::General(e.to_string())))?;
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(InterceptError::Tls)?
            .with_no_client_auth()
            .with_single_cert(chain, der)
            .map_err(InterceptError::Tls)?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        leaves.insert(name.to_string(), cfg.clone());
        Ok(cfg)
    }
}

/// The roots the proxy verifies destinations with: the system bundle and `extra` (the
/// operator's `SSL_CERT_FILE` and `NODE_EXTRA_CA_CERTS`, e.g. a private CA of a local model
/// server).
pub fn roots(extra: &[&Path]) -> Result<RootCertStore, InterceptError> {
    use rustls_pki_types::pem::PemObject;
    let mut store = RootCertStore::empty();
    let system = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ];
    let files = system
        .iter()
        .map(Path::new)
        .filter(|p| p.exists())
        .take(1)
        .chain(extra.iter().copied());
    for path in files {
        let err = |source| InterceptError::Roots {
            path: path.display().to_string(),
            source,
        };
        let pem = std::fs::read(path).map_err(err)?;
        for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
            // A certificate rustls cannot use as a root is skipped, as OpenSSL would.
            let _ = store.add(cert);
        }
    }
    if store.is_empty() {
        return Err(InterceptError::NoRoots);
    }
    Ok(store)
}

/// Where an intercepted connection was going, from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original {
    /// The process that connected.
    pub pid: u32,
    pub dest: SocketAddr,
}

/// Finds the original destination of an accepted connection from its peer (the agent's
/// socket). Returns None when the kernel kept none (the connection did not come through the
/// redirect, or its entry was lost): the proxy then closes it.
pub type Lookup = Arc<dyn Fn(SocketAddr) -> Option<Original> + Send + Sync>;

/// What the proxy hands to the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Captured {
    /// Plaintext that passed: `Send` from the agent to the destination, `Recv` back.
    Data {
        /// When it passed: wall-clock UTC nanoseconds since the Unix epoch.
        ts_ns: u64,
        pid: u32,
        /// Unique per proxied connection within the run.
        conn: u64,
        dest: SocketAddr,
        direction: TlsDirection,
        /// Bytes that passed in this piece.
        len: u64,
        /// The first `max_bytes` of them.
        data: Vec<u8>,
    },
    /// A connection the proxy did not complete, and why (nothing of it reached the other side).
    Refused {
        ts_ns: u64,
        pid: u32,
        dest: Option<SocketAddr>,
        reason: String,
    },
}

/// The running proxy: its listening ports (the kernel redirects to them).
pub struct Proxy {
    pub port4: u16,
    /// None where the host has no IPv6 loopback.
    pub port6: Option<u16>,
}

struct Shared {
    ca: Ca,
    client: Arc<ClientConfig>,
    lookup: Lookup,
    tx: Mutex<Sender<Captured>>,
    max_bytes: usize,
    next_conn: AtomicU64,
}

impl Shared {
    fn send(&self, c: Captured) {
        // The monitor is gone only when proctor is exiting.
        let _ = self.tx.lock().unwrap_or_else(|e| e.into_inner()).send(c);
    }
}

impl Proxy {
    /// Listen on 127.0.0.1 and ::1 (ephemeral ports) and serve in background threads.
    /// `max_bytes` bounds the plaintext kept per piece, as `--tls-max-bytes` does per call.
    pub fn start(
        ca: Ca,
        roots: RootCertStore,
        lookup: Lookup,
        tx: Sender<Captured>,
        max_bytes: usize,
    ) -> Result<Proxy, InterceptError> {
        let mut client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(InterceptError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let shared = Arc::new(Shared {
            ca,
            client: Arc::new(client),
            lookup,
            tx: Mutex::new(tx),
            max_bytes,
            next_conn: AtomicU64::new(1),
        });
        let listen = |addr: &str| {
            TcpListener::bind(addr).map_err(|source| InterceptError::Listen {
                addr: addr.to_string(),
                source,
            })
        };
        let l4 = listen("127.0.0.1:0")?;
        let port4 = l4.local_addr().map_or(0, |a| a.port());
        let l6 = listen("[::1]:0").ok();
        let port6 = l6
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port());
        for l in std::iter::once(l4).chain(l6) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("tls-intercept".into())
                .spawn(move || accept_loop(l, shared))
                .map_err(|source| InterceptError::Listen {
                    addr: "accept thread".into(),
                    source,
                })?;
        }
        Ok(Proxy { port4, port6 })
    }
}

fn accept_loop(l: TcpListener, shared: Arc<Shared>) {
    for sock in l.incoming() {
        let Ok(sock) = sock else { continue };
        let shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("tls-intercept-conn".into())
            .spawn(move || serve(sock, &shared));
        if let Err(e) = spawned {
            tracing::warn!("TLS interception: no thread for a connection: {e}");
        }
    }
}

/// One intercepted connection, start to end.
fn serve(client: TcpStream, shared: &Shared) {
    let Ok(peer) = client.peer_addr() else { return };
    let Some(orig) = (shared.lookup)(peer) else {
        shared.send(Captured::Refused {
            ts_ns: now_ns(),
            pid: 0,
            dest: None,
            reason: format!("no original destination kept for the connection from {peer}"),
        });
        return;
    };
    if let Err(reason) = relay(client, orig, shared) {
        shared.send(Captured::Refused {
            ts_ns: now_ns(),
            pid: orig.pid,
            dest: Some(orig.dest),
            reason,
        });
    }
}

/// Terminate the client's TLS, open the verified upstream, copy both ways. An error before any
/// plaintext moved is the reason the connection was refused.
fn relay(mut client: TcpStream, orig: Original, shared: &Shared) -> Result<(), String> {
    client
        .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    // The ClientHello first: the name the agent asked for chooses the leaf certificate and the
    // name verified upstream; without one (an address), the destination's address is both.
    let mut acceptor = rustls::server::Acceptor::default();
    let accepted = loop {
        match acceptor.read_tls(&mut client) {
            Ok(0) => return Err("the client closed before its ClientHello".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading the ClientHello: {e}")),
        }
        match acceptor.accept() {
            Ok(Some(a)) => break a,
            Ok(None) => {}
            Err((e, mut alert)) => {
                let _ = alert.write_all(&mut client);
                return Err(format!("not a TLS ClientHello: {e}"));
            }
        }
    };
    let sni = accepted.client_hello().server_name().map(str::to_owned);
    let name = sni.clone().unwrap_or_else(|| orig.dest.ip().to_string());
    let cfg = shared.ca.server_config(&name).map_err(|e| e.to_string())?;
    let mut down = accepted
        .into_connection(cfg)
        .map_err(|(e, _)| format!("TLS with the client: {e}"))?;
    // The agent's handshake completes before anything goes upstream: a client that refuses the
    // CA never gets to send a byte of plaintext.
    handshake(&mut down, &mut client)
        .map_err(|e| format!("the client refused the interception certificate for {name}: {e}"))?;

    let server_name = ServerName::try_from(name.clone())
        .map_err(|e| format!("{name} is not a server name: {e}"))?;
    let mut upstream = TcpStream::connect_timeout(&orig.dest, HANDSHAKE_TIMEOUT)
        .map_err(|e| format!("connecting to {}: {e}", orig.dest))?;
    upstream
        .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut up = ClientConnection::new(shared.client.clone(), server_name)
        .map_err(|e| format!("TLS to {}: {e}", orig.dest))?;
    handshake(&mut up, &mut upstream).map_err(|e| {
        format!(
            "TLS to {} ({name}) failed verification or handshake: {e}",
            orig.dest
        )
    })?;
    for s in [&client, &upstream] {
        s.set_read_timeout(None).map_err(|e| e.to_string())?;
        // Each piece is forwarded as it arrives: Nagle's algorithm would hold a small one
        // until the peer's delayed ACK (40 ms per exchange on Linux).
        s.set_nodelay(true).map_err(|e| e.to_string())?;
    }
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    pump(
        &mut client,
        &mut down,
        &mut upstream,
        &mut up,
        |dir, data| {
            let keep = data.len().min(shared.max_bytes);
            shared.send(Captured::Data {
                ts_ns: now_ns(),
                pid: orig.pid,
                conn,
                dest: orig.dest,
                direction: dir,
                len: data.len() as u64,
                data: data[..keep].to_vec(),
            })
        },
    );
    Ok(())
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Drive a handshake to its end on a blocking socket.
fn handshake<S>(
    conn: &mut rustls::ConnectionCommon<S>,
    sock: &mut TcpStream,
) -> Result<(), String> {
    while conn.is_handshaking() {
        match conn.complete_io(sock) {
            Ok((0, 0)) if conn.is_handshaking() => return Err("connection closed".into()),
            Ok(_) => {}
            Err(e) => {
                // Whatever is queued (an alert) goes out before the socket closes.
                let _ = conn.write_tls(sock);
                return Err(e.to_string());
            }
        }
    }
    Ok(())
}

/// Copy plaintext between the two TLS connections until either side ends, reporting each
/// piece (`Send`: client to upstream).
fn pump<S1, S2>(
    cs: &mut TcpStream,
    cc: &mut rustls::ConnectionCommon<S1>,
    us: &mut TcpStream,
    uc: &mut rustls::ConnectionCommon<S2>,
    mut report: impl FnMut(TlsDirection, &[u8]),
) {
    let mut buf = vec![0u8; 64 * 1024];
    // The handshakes may have read application data along with their last messages (a client
    // sends its request right behind its Finished): pass it on before waiting for more.
    if !step(cs, cc, us, uc, &mut buf, false, &mut |d| {
        report(TlsDirection::Send, d)
    }) || !step(us, uc, cs, cc, &mut buf, false, &mut |d| {
        report(TlsDirection::Recv, d)
    }) {
        return;
    }
    loop {
        let mut fds = [
            libc::pollfd {
                fd: cs.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: us.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfd structs owned by this frame.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let ready =
            |f: &libc::pollfd| f.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
        if ready(&fds[0])
            && !step(cs, cc, us, uc, &mut buf, true, &mut |d| {
                report(TlsDirection::Send, d)
            })
        {
            return;
        }
        if ready(&fds[1])
            && !step(us, uc, cs, cc, &mut buf, true, &mut |d| {
                report(TlsDirection::Recv, d)
            })
        {
            return;
        }
    }
}

/// Read what arrived on one side (when `read`; else only what its connection holds already)
/// and pass its plaintext to the other. False when the side
/// ended (closed, or a TLS error): the relay then ends, after flushing what the other side has
/// queued.
fn step<S1, S2>(
    from_s: &mut TcpStream,
    from_c: &mut rustls::ConnectionCommon<S1>,
    to_s: &mut TcpStream,
    to_c: &mut rustls::ConnectionCommon<S2>,
    buf: &mut [u8],
    read: bool,
    report: &mut dyn FnMut(&[u8]),
) -> bool {
    let open = !read
        || match from_c.read_tls(from_s) {
            Ok(0) => false,
            Ok(_) => from_c.process_new_packets().is_ok(),
            Err(e) => e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted,
        };
    let mut peer_closed = false;
    loop {
        match from_c.reader().read(buf) {
            Ok(0) => {
                peer_closed = true;
                break;
            }
            Ok(n) => {
                report(&buf[..n]);
                if to_c.writer().write_all(&buf[..n]).is_err() {
                    return false;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => {
                peer_closed = true;
                break;
            }
        }
    }
    // Both connections may owe their peer records: the plaintext just written, or handshake
    // messages (key updates, tickets) the read produced.
    if flush(to_c, to_s).is_err() || flush(from_c, from_s).is_err() {
        return false;
    }
    if peer_closed || !open {
        to_c.send_close_notify();
        let _ = to_c.write_tls(to_s);
        return false;
    }
    true
}

/// Write a connection's queued TLS records.
fn flush<S>(c: &mut rustls::ConnectionCommon<S>, s: &mut TcpStream) -> std::io::Result<()> {
    while c.wants_write() {
        c.write_tls(s)?;
    }
    Ok(())
}
