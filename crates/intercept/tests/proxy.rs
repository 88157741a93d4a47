//! The proxy alone, without root or kernel: a real rustls upstream on loopback, clients
//! connecting to the proxy directly (the lookup stands in for the kernel's redirect).

use proctor_intercept::{Ca, Captured, Original, Proxy};
use proctor_model::TlsDirection;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// An upstream HTTPS-ish server: answers each line it reads with "echo: LINE". Returns its
/// address and the PEM of the CA that signed its certificate.
fn upstream() -> (SocketAddr, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut t = rustls::StreamOwned::new(conn, s);
                let mut buf = [0u8; 1024];
                while let Ok(n) = t.read(&mut buf) {
                    if n == 0 || t.write_all(b"echo: ").is_err() || t.write_all(&buf[..n]).is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    (addr, ca.pem())
}

fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

fn start(up: SocketAddr, up_ca: &str) -> (Proxy, String, mpsc::Receiver<Captured>) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("up-ca.pem");
    std::fs::write(&f, up_ca).unwrap();
    let roots = proctor_intercept::roots(&[f.as_path()]).unwrap();
    let ca = Ca::new().unwrap();
    let ca_pem = ca.pem();
    let (tx, rx) = mpsc::channel();
    let lookup = Arc::new(move |_peer| Some(Original { pid: 42, dest: up }));
    let proxy = Proxy::start(ca, roots, lookup, tx, 8).unwrap();
    (proxy, ca_pem, rx)
}

#[test]
fn relays_and_reports_both_directions() {
    let (up, up_ca) = upstream();
    let (proxy, ca_pem, rx) = start(up, &up_ca);
    let sock = TcpStream::connect(("127.0.0.1", proxy.port4)).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(client_config(&ca_pem), name).unwrap();
    let mut t = rustls::StreamOwned::new(conn, sock);
    t.write_all(b"hello upstream\n").unwrap();
    // The upstream's two writes may arrive as one piece or two.
    let mut got = Vec::new();
    while !got.ends_with(b"\n") {
        let mut b = [0u8; 64];
        let n = t.read(&mut b).unwrap();
        assert!(n > 0, "closed early: {got:?}");
        got.extend_from_slice(&b[..n]);
    }
    assert_eq!(got, b"echo: hello upstream\n");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(rx.recv_timeout(Duration::from_secs(10)).expect("a report"));
    }
    match &seen[0] {
        Captured::Data {
            pid: 42,
            dest,
            direction: TlsDirection::Send,
            len: 15,
            data,
            ..
        } => {
            assert_eq!(*dest, up);
            assert_eq!(data, b"hello up", "cut at max_bytes");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &seen[1],
        Captured::Data {
            direction: TlsDirection::Recv,
            ..
        }
    ));
}

#[test]
fn a_client_that_refuses_the_ca_gets_nothing_through() {
    let (up, up_ca) = upstream();
    let (proxy, _ca_pem, rx) = start(up, &up_ca);
    let sock = TcpStream::connect(("127.0.0.1", proxy.port4)).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    // Trusts only the real server's CA.
    let conn = rustls::ClientConnection::new(client_config(&up_ca), name).unwrap();
    let mut t = rustls::StreamOwned::new(conn, sock);
    assert!(
        t.write_all(b"secret\n").and_then(|_| t.flush()).is_err() || {
            let mut b = [0u8; 8];
            t.read(&mut b).is_err()
        }
    );
    match rx.recv_timeout(Duration::from_secs(10)).expect("a report") {
        Captured::Refused {
            pid: 42, reason, ..
        } => {
            assert!(
                reason.contains("refused the interception certificate"),
                "{reason}"
            )
        }
        other => panic!("plaintext passed: {other:?}"),
    }
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
}

#[test]
fn an_upstream_that_fails_verification_is_refused() {
    let (up, _up_ca) = upstream();
    let (_other, other_ca) = upstream();
    let (proxy, ca_pem, rx) = start(up, &other_ca);
    let sock = TcpStream::connect(("127.0.0.1", proxy.port4)).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(client_config(&ca_pem), name).unwrap();
    let mut t = rustls::StreamOwned::new(conn, sock);
    let _ = t.write_all(b"secret\n");
    let mut b = [0u8; 8];
    assert!(!matches!(t.read(&mut b), Ok(n) if n > 0));
    match rx.recv_timeout(Duration::from_secs(10)).expect("a report") {
        Captured::Refused { reason, .. } => assert!(reason.contains("verification"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
