//! Trusted time: RFC 3161 timestamp tokens from a timestamp authority (TSA).
//!
//! A token says "a TSA saw this SHA-256 digest at genTime" and is signed by the TSA, so it bounds
//! the time of a record by a clock the monitored host does not control. proctor stamps:
//! - each certificate `alerts/X.cal`: the digest of the whole file, token in `alerts/X.cal.tsr`;
//! - each checkpoint of `audit.jsonl`: the digest of its line (without the newline), token in
//!   `timestamps/checkpoint-<seq>.tsr`. A checkpoint signs the chain head, so its token dates
//!   every record before it.
//!
//! Tokens are stored as the DER `TimeStampToken` (a CMS ContentInfo), the form
//! `openssl ts -verify -token_in` reads. [`request`] talks plain HTTP (`http://` URLs: TSAs sign
//! their answers, so transport security adds nothing to the token's proof). [`verify_token`]
//! checks offline: the message imprint is the digest of what was stamped, the signed attributes
//! carry the digest of the TSTInfo, the signature verifies with the signer certificate, and that
//! certificate is the TSA certificate given or is issued by it (through certificates in the
//! token), and was valid at genTime.

use crate::sha256_hex;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{Any, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Tagged};
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use x509_cert::Certificate;

const OID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const OID_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const OID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const OID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const OID_RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// Directory (in an output directory) of the checkpoints' tokens.
pub const TIMESTAMPS_DIR: &str = "timestamps";
/// Largest TSA answer read.
const MAX_RESPONSE: u64 = 1024 * 1024;

/// Where the token of the checkpoint with `seq` is kept.
pub fn checkpoint_token_path(out_dir: &Path, seq: u64) -> PathBuf {
    out_dir
        .join(TIMESTAMPS_DIR)
        .join(format!("checkpoint-{seq}.tsr"))
}

/// Where the token of a certificate file is kept.
pub fn cert_token_path(cert: &Path) -> PathBuf {
    let mut s = cert.as_os_str().to_owned();
    s.push(".tsr");
    PathBuf::from(s)
}

/// A DER TimeStampReq for a SHA-256 digest, with a nonce and asking for the TSA's certificate.
pub fn build_request(digest: &[u8; 32], nonce: u64) -> Vec<u8> {
    let mut imprint = vec![
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    imprint.extend_from_slice(digest);
    // DER wants the minimal positive encoding: top bit clear (not negative) and the first
    // byte non-zero (no padding), so the nonce always takes exactly 8 bytes.
    let nonce = (nonce | 0x4000_0000_0000_0000) & 0x7fff_ffff_ffff_ffff;
    let mut nonce_der = vec![0x02, 0x08];
    nonce_der.extend_from_slice(&nonce.to_be_bytes());
    let mut body = vec![0x02, 0x01, 0x01];
    body.extend_from_slice(&imprint);
    body.extend_from_slice(&nonce_der);
    body.extend_from_slice(&[0x01, 0x01, 0xff]);
    let mut req = vec![0x30, body.len() as u8];
    req.extend_from_slice(&body);
    req
}

/// Ask the TSA at `url` (`http://host[:port]/path`) to stamp `digest`; returns the token (DER).
/// The answer is checked for status, nonce and imprint (not yet for its signature: that is
/// [`verify_token`]'s job, with the TSA certificate).
pub fn request(url: &str, digest: &[u8; 32], timeout: Duration) -> Result<Vec<u8>, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// TSA URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
    let nonce = (u64::from_be_bytes(nonce) | 0x4000_0000_0000_0000) & 0x7fff_ffff_ffff_ffff;
    let req = build_request(digest, nonce);
    use std::net::ToSocketAddrs;
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut s =
        std::net::TcpStream::connect_timeout(&sock, timeout).map_err(|e| format!("{url}: {e}"))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/timestamp-query\r\nAccept: application/timestamp-reply\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        req.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(&req))
        .map_err(|e| format!("{url}: {e}"))?;
    let mut resp = Vec::new();
    s.take(MAX_RESPONSE)
        .read_to_end(&mut resp)
        .map_err(|e| format!("{url}: {e}"))?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{url}: not an HTTP answer"))?;
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status_ok = head
        .lines()
        .next()
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("200"));
    if !status_ok {
        return Err(format!(
            "{url}: {}",
            head.lines().next().unwrap_or("no status line")
        ));
    }
    let mut body = &resp[split + 4..];
    if let Some(len) = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    }) {
        body = &body[..len.min(body.len())];
    }
    let token = token_from_response(body)?;
    let info = tst_info(&token)?;
    if info.nonce.as_deref().map(strip_zeros) != Some(strip_zeros(&nonce.to_be_bytes())) {
        return Err(format!("{url}: the answer's nonce is not ours"));
    }
    if info.imprint != digest[..] {
        return Err(format!("{url}: the answer stamps another digest"));
    }
    Ok(token)
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

/// The TimeStampToken of a TimeStampResp, if the status is granted (0) or granted with
/// modifications (1).
pub fn token_from_response(resp: &[u8]) -> Result<Vec<u8>, String> {
    let parts: Vec<Any> =
        Vec::<Any>::from_der(resp).map_err(|e| format!("not a TimeStampResp ({e})"))?;
    let status: Vec<Any> = parts
        .first()
        .ok_or("empty TimeStampResp")?
        .decode_as()
        .map_err(|e| format!("bad PKIStatusInfo ({e})"))?;
    let code: u8 = status
        .first()
        .ok_or("no status")?
        .decode_as()
        .map_err(|e| format!("bad status ({e})"))?;
    if code > 1 {
        return Err(format!("the TSA refused (status {code})"));
    }
    let token = parts.get(1).ok_or("granted, but no token")?;
    token.to_der().map_err(|e| e.to_string())
}

/// What a token's TSTInfo says.
#[derive(Debug, Clone)]
pub struct TstInfo {
    /// The stamped digest (SHA-256 only is accepted).
    pub imprint: Vec<u8>,
    pub gen_time_ns: u64,
    pub nonce: Option<Vec<u8>>,
    pub serial: Vec<u8>,
    /// The TSTInfo DER (what the signed attributes' message digest covers).
    der: Vec<u8>,
}

fn signed_data(token: &[u8]) -> Result<SignedData, String> {
    let ci = ContentInfo::from_der(token).map_err(|e| format!("not a CMS ContentInfo ({e})"))?;
    if ci.content_type != OID_SIGNED_DATA {
        return Err("not CMS SignedData".into());
    }
    ci.content
        .decode_as::<SignedData>()
        .map_err(|e| format!("bad SignedData ({e})"))
}

/// Parse the TSTInfo of a token (without checking its signature).
pub fn tst_info(token: &[u8]) -> Result<TstInfo, String> {
    let sd = signed_data(token)?;
    if sd.encap_content_info.econtent_type != OID_TST_INFO {
        return Err("the signed content is not a TSTInfo".into());
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or("no signed content")?;
    let der = econtent
        .decode_as::<OctetString>()
        .map_err(|e| format!("bad eContent ({e})"))?
        .as_bytes()
        .to_vec();
    let fields: Vec<Any> = Vec::<Any>::from_der(&der).map_err(|e| format!("bad TSTInfo ({e})"))?;
    let imprint: Vec<Any> = fields
        .get(2)
        .ok_or("TSTInfo without messageImprint")?
        .decode_as()
        .map_err(|e| format!("bad messageImprint ({e})"))?;
    let alg: Vec<Any> = imprint
        .first()
        .ok_or("no hash algorithm")?
        .decode_as()
        .map_err(|e| format!("bad hash algorithm ({e})"))?;
    let oid: ObjectIdentifier = alg
        .first()
        .ok_or("no hash algorithm")?
        .decode_as()
        .map_err(|e| format!("bad hash algorithm ({e})"))?;
    if oid != OID_SHA256 {
        return Err(format!("the token stamps a {oid} digest, not SHA-256"));
    }
    let hashed: OctetString = imprint
        .get(1)
        .ok_or("no hashed message")?
        .decode_as()
        .map_err(|e| format!("bad hashed message ({e})"))?;
    let serial = fields
        .get(3)
        .map(|a| a.value().to_vec())
        .unwrap_or_default();
    let gen: GeneralizedTime = fields
        .get(4)
        .ok_or("TSTInfo without genTime")?
        .decode_as()
        .map_err(|e| format!("bad genTime ({e})"))?;
    // The nonce is the first INTEGER after genTime (accuracy is a SEQUENCE, ordering a
    // BOOLEAN).
    let nonce = fields
        .iter()
        .skip(5)
        .find(|a| a.tag() == der::Tag::Integer)
        .map(|a| a.value().to_vec());
    Ok(TstInfo {
        imprint: hashed.as_bytes().to_vec(),
        gen_time_ns: gen.to_unix_duration().as_nanos() as u64,
        nonce,
        serial,
        der,
    })
}

/// Read a TSA certificate, PEM or DER.
pub fn load_cert(path: &Path) -> Result<Certificate, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cert = if bytes.starts_with(b"-----") {
        use der::DecodePem;
        Certificate::from_pem(&bytes)
    } else {
        Certificate::from_der(&bytes)
    };
    cert.map_err(|e| format!("{}: not an X.509 certificate ({e})", path.display()))
}

fn digest(alg: &ObjectIdentifier, msg: &[u8]) -> Option<Vec<u8>> {
    Some(match *alg {
        OID_SHA256 => Sha256::digest(msg).to_vec(),
        OID_SHA384 => Sha384::digest(msg).to_vec(),
        OID_SHA512 => Sha512::digest(msg).to_vec(),
        _ => return None,
    })
}

/// Check `sig` over `msg` with the key of `cert`: RSA PKCS#1 v1.5 (SHA-256/384/512) or ECDSA
/// P-256 with SHA-256. `sig_alg` is the signature algorithm; for CMS's bare rsaEncryption the
/// digest algorithm says which hash.
fn verify_sig(
    cert: &Certificate,
    sig_alg: &ObjectIdentifier,
    digest_alg: Option<&ObjectIdentifier>,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier as _;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let spki_der = spki.to_der().map_err(|e| e.to_string())?;
    let key_alg = spki.algorithm.oid;
    let hash = match *sig_alg {
        OID_RSA_SHA256 | OID_ECDSA_SHA256 => OID_SHA256,
        OID_RSA_SHA384 => OID_SHA384,
        OID_RSA_SHA512 => OID_SHA512,
        OID_RSA => *digest_alg.ok_or("rsaEncryption without a digest algorithm")?,
        other => return Err(format!("unsupported signature algorithm {other}")),
    };
    if key_alg == OID_RSA {
        let pk = rsa::RsaPublicKey::from_public_key_der(&spki_der)
            .map_err(|e| format!("bad RSA key ({e})"))?;
        let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| e.to_string())?;
        let ok = match hash {
            OID_SHA256 => rsa::pkcs1v15::VerifyingKey::<Sha256>::new(pk).verify(msg, &s),
            OID_SHA384 => rsa::pkcs1v15::VerifyingKey::<Sha384>::new(pk).verify(msg, &s),
            OID_SHA512 => rsa::pkcs1v15::VerifyingKey::<Sha512>::new(pk).verify(msg, &s),
            other => return Err(format!("unsupported digest {other}")),
        };
        ok.map_err(|_| "the signature does not verify".to_string())
    } else if key_alg == OID_EC_PUBLIC_KEY && hash == OID_SHA256 {
        let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der)
            .map_err(|e| format!("bad P-256 key ({e})"))?;
        let s = p256::ecdsa::DerSignature::try_from(sig).map_err(|e| e.to_string())?;
        vk.verify(msg, &s)
            .map_err(|_| "the signature does not verify".to_string())
    } else {
        Err(format!("unsupported key algorithm {key_alg}"))
    }
}

/// Whether `cert` was signed by `issuer`'s key.
fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    let Ok(tbs) = cert.tbs_certificate.to_der() else {
        return false;
    };
    let Some(sig) = cert.signature.as_bytes() else {
        return false;
    };
    cert.tbs_certificate.issuer == issuer.tbs_certificate.subject
        && verify_sig(issuer, &cert.signature_algorithm.oid, None, &tbs, sig).is_ok()
}

fn valid_at(cert: &Certificate, ns: u64) -> bool {
    let v = &cert.tbs_certificate.validity;
    let t = Duration::from_nanos(ns);
    v.not_before.to_unix_duration() <= t && t <= v.not_after.to_unix_duration()
}

/// Check a token offline: it stamps `data_sha256`, its signature verifies, and its signer is
/// `tsa` or chains to it through the token's certificates. Returns genTime (ns since the epoch).
pub fn verify_token(token: &[u8], data_sha256: &[u8], tsa: &Certificate) -> Result<u64, String> {
    let info = tst_info(token)?;
    if info.imprint != data_sha256 {
        return Err(format!(
            "the token stamps digest {}, not {} (the digest of what it is stored beside): it belongs to other data",
            hex::encode(&info.imprint),
            hex::encode(data_sha256)
        ));
    }
    let sd = signed_data(token)?;
    let si = sd.signer_infos.0.iter().next().ok_or("no signer")?;
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or("no signed attributes (RFC 3161 requires them)")?;
    let attr = |oid: ObjectIdentifier| {
        attrs
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.iter().next())
    };
    let ct: ObjectIdentifier = attr(OID_CONTENT_TYPE)
        .ok_or("no content-type attribute")?
        .decode_as()
        .map_err(|e| e.to_string())?;
    if ct != OID_TST_INFO {
        return Err("the content-type attribute is not TSTInfo".into());
    }
    let md: OctetString = attr(OID_MESSAGE_DIGEST)
        .ok_or("no message-digest attribute")?
        .decode_as()
        .map_err(|e| e.to_string())?;
    let dalg = si.digest_alg.oid;
    let d = digest(&dalg, &info.der).ok_or_else(|| format!("unsupported digest {dalg}"))?;
    if md.as_bytes() != d.as_slice() {
        return Err("the signed message digest is not that of the TSTInfo: edited".into());
    }
    let signed = attrs.to_der().map_err(|e| e.to_string())?;
    let sig = si.signature.as_bytes();
    let embedded: Vec<Certificate> = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            cms::cert::CertificateChoices::Certificate(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    // The signer: the given certificate itself, or the embedded one the signer id names.
    let mut candidates = vec![tsa.clone()];
    candidates.extend(
        embedded
            .iter()
            .filter(|c| match &si.sid {
                SignerIdentifier::IssuerAndSerialNumber(i) => {
                    i.serial_number == c.tbs_certificate.serial_number
                        && i.issuer == c.tbs_certificate.issuer
                }
                SignerIdentifier::SubjectKeyIdentifier(_) => true,
            })
            .cloned(),
    );
    let signer = candidates
        .into_iter()
        .find(|c| verify_sig(c, &si.signature_algorithm.oid, Some(&dalg), &signed, sig).is_ok())
        .ok_or("the token's signature does not verify with the TSA certificate nor a certificate it carries")?;
    // Chain: signer == tsa, or signer issued by tsa through at most 4 embedded certificates.
    let tsa_der = tsa.to_der().map_err(|e| e.to_string())?;
    let mut cur = signer.clone();
    let mut chained = false;
    for _ in 0..5 {
        if cur.to_der().map_err(|e| e.to_string())? == tsa_der {
            chained = true;
            break;
        }
        if issued_by(&cur, tsa) {
            chained = true;
            break;
        }
        match embedded.iter().find(|c| issued_by(&cur, c)) {
            Some(next) if next.to_der().ok() != cur.to_der().ok() => cur = next.clone(),
            _ => break,
        }
    }
    if !chained {
        return Err(
            "the token is signed by a certificate that does not chain to the TSA certificate given"
                .into(),
        );
    }
    if !valid_at(&signer, info.gen_time_ns) {
        return Err("the TSA's signing certificate was not valid at genTime".into());
    }
    Ok(info.gen_time_ns)
}

/// Stamps digests on a background thread so that a slow or absent TSA never holds up the
/// monitor; each token is written beside its record (mode 0600). Dropping it waits for the
/// queue.
pub struct Stamper {
    tx: Option<std::sync::mpsc::Sender<([u8; 32], PathBuf)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Environment variable naming the TSA for the writers of a run (`http://host:port/path`).
pub const TSA_URL_ENV: &str = "PROCTOR_TSA_URL";

impl Stamper {
    /// A stamper for the TSA named by [`TSA_URL_ENV`], if set.
    pub fn from_env() -> Option<Stamper> {
        let url = std::env::var(TSA_URL_ENV).ok().filter(|u| !u.is_empty())?;
        Some(Stamper::new(url))
    }

    pub fn new(url: String) -> Stamper {
        let (tx, rx) = std::sync::mpsc::channel::<([u8; 32], PathBuf)>();
        let thread = std::thread::Builder::new()
            .name("tsa".into())
            .spawn(move || {
                for (digest, out) in rx {
                    match request(&url, &digest, Duration::from_secs(5)) {
                        Ok(token) => {
                            if let Err(e) = write_token(&out, &token) {
                                tracing::warn!("timestamp token {}: {e}", out.display());
                            }
                        }
                        Err(e) => tracing::warn!(
                            "no timestamp for {} ({}): {e}",
                            out.display(),
                            sha256_hex(&digest)
                        ),
                    }
                }
            })
            .ok();
        Stamper {
            tx: Some(tx),
            thread,
        }
    }

    /// Queue the stamping of `data`, the token to go to `out`.
    pub fn stamp(&self, data: &[u8], out: PathBuf) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((Sha256::digest(data).into(), out));
        }
    }
}

impl Drop for Stamper {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Write a token file, 0600, never replacing one.
pub fn write_token(out: &Path, token: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(d) = out.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)?;
    f.write_all(token)?;
    f.sync_all()
}

/// What [`stamp_dir`] did.
#[derive(Debug, Default)]
pub struct Stamped {
    pub certificates: usize,
    pub checkpoints: usize,
    pub already: usize,
}

/// Stamp, now, every certificate and checkpoint of an output directory that has no token yet
/// (a token dates the data no later than now: the earlier it is asked for, the more it proves).
pub fn stamp_dir(dir: &Path, url: &str) -> Result<Stamped, String> {
    if !url.starts_with("http://") {
        return Err(format!("{url}: only http:// TSA URLs are supported"));
    }
    if !dir.join(crate::AUDIT_FILE).is_file() && !dir.join("alerts").is_dir() {
        return Err(format!(
            "{}: no audit.jsonl or alerts/ here (give a proctor output directory)",
            dir.display()
        ));
    }
    let mut done = Stamped::default();
    let timeout = Duration::from_secs(10);
    let stamp = |data: &[u8], out: PathBuf| -> Result<bool, String> {
        if out.exists() {
            return Ok(false);
        }
        let token = request(url, &Sha256::digest(data).into(), timeout)?;
        write_token(&out, &token).map_err(|e| format!("{}: {e}", out.display()))?;
        Ok(true)
    };
    let alerts = dir.join("alerts");
    let mut certs: Vec<PathBuf> = std::fs::read_dir(&alerts)
        .map(|e| {
            e.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "cal"))
                .collect()
        })
        .unwrap_or_default();
    certs.sort();
    for c in certs {
        let bytes = std::fs::read(&c).map_err(|e| format!("{}: {e}", c.display()))?;
        if stamp(&bytes, cert_token_path(&c))? {
            done.certificates += 1;
        } else {
            done.already += 1;
        }
    }
    let log = dir.join(crate::AUDIT_FILE);
    if let Ok(f) = std::fs::File::open(&log) {
        use std::io::BufRead;
        for line in std::io::BufReader::new(f).split(b'\n') {
            let line = line.map_err(|e| format!("{}: {e}", log.display()))?;
            // Cheap filter first: most lines are not checkpoints.
            const PAT: &[u8] = b"\"type\":\"checkpoint\"";
            if !line.windows(PAT.len()).any(|w| w == PAT) {
                continue;
            }
            let Some(seq) = serde_json::from_slice::<serde_json::Value>(&line)
                .ok()
                .filter(|v| v.get("type").and_then(serde_json::Value::as_str) == Some("checkpoint"))
                .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64))
            else {
                continue;
            };
            if stamp(&line, checkpoint_token_path(dir, seq))? {
                done.checkpoints += 1;
            } else {
                done.already += 1;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_der_that_openssl_reads() {
        let req = build_request(&[7u8; 32], 1);
        assert_eq!(req[1] as usize, req.len() - 2, "one short-form length");
        let dir = std::env::temp_dir().join(format!("proctor-tsq-{}", std::process::id()));
        std::fs::write(&dir, &req).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["ts", "-query", "-text", "-in"])
            .arg(&dir)
            .output()
            .expect("openssl");
        let _ = std::fs::remove_file(&dir);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("sha256"), "{text}");
        assert!(text.contains("Certificate required: yes"), "{text}");
    }
}
