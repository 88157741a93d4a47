//! Ed25519 keys: the private key that signs ([`Signer`]) and the public key that verifies
//! ([`Verifier`]).
//!
//! - Private key: PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, the form `openssl genpkey -algorithm
//!   ed25519` writes), created with mode 0600 and refused by [`Signer::load`] when group or others
//!   may read or write it. Its bytes never appear in logs, certificates or error messages.
//! - Public key: SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`, 113 bytes for Ed25519),
//!   usable with `openssl pkeyutl -verify -rawin -pubin` and any crypto library.
//! - Fingerprint: lowercase hex SHA-256 of the public key's DER (SubjectPublicKeyInfo) bytes, the
//!   same as `openssl pkey -pubin -in K.pem -outform DER | sha256sum`.

use crate::{sha256_hex, Error};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// File name of the private key in a key directory.
pub const PRIVATE_KEY_FILE: &str = "proctor.key";
/// File name of the public key in a key directory and next to the data proctor writes.
pub const PUBLIC_KEY_FILE: &str = "proctor.pub.pem";

/// Largest key file read (a PEM key is a few hundred bytes).
const MAX_KEY_FILE: u64 = 16 * 1024;

/// A public key that checks signatures.
#[derive(Clone)]
pub struct Verifier {
    key: VerifyingKey,
    fingerprint: String,
}

impl Verifier {
    fn from_key(key: VerifyingKey) -> Verifier {
        let der = key
            .to_public_key_der()
            .expect("encoding a 32-byte Ed25519 key as DER cannot fail");
        Verifier {
            key,
            fingerprint: sha256_hex(der.as_bytes()),
        }
    }

    /// Parse a SubjectPublicKeyInfo PEM Ed25519 public key. The error says why, without echoing
    /// the input.
    pub fn from_pem(pem: &str) -> Result<Verifier, String> {
        // The two likely mistakes get their own words: the parser's own message for them
        // ("PEM preamble contains invalid data", "unexpected PEM type label") does not help.
        if pem.contains("PRIVATE KEY-----") {
            return Err(format!(
                "this is a private key, not a public key: give the public key ({PUBLIC_KEY_FILE}; \
                 `openssl pkey -in KEY -pubout` derives it) and keep the private key secret"
            ));
        }
        if !pem.contains("-----BEGIN ") {
            return Err(
                "no PEM block in it (an Ed25519 public key starts with -----BEGIN PUBLIC KEY-----)"
                    .into(),
            );
        }
        let key = VerifyingKey::from_public_key_pem(pem.trim_start())
            .map_err(|e| format!("not an Ed25519 SubjectPublicKeyInfo PEM public key ({e})"))?;
        Ok(Verifier::from_key(key))
    }

    /// Read a public key file.
    pub fn load(path: &Path) -> Result<Verifier, Error> {
        let text = read_small(path)?;
        let text = String::from_utf8(text).map_err(|_| Error::BadPublicKey {
            path: path.to_path_buf(),
            reason: "not text (PEM expected)".into(),
        })?;
        Verifier::from_pem(&text).map_err(|reason| Error::BadPublicKey {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn from_raw(bytes: &[u8; 32]) -> Result<Verifier, String> {
        VerifyingKey::from_bytes(bytes)
            .map(Verifier::from_key)
            .map_err(|e| format!("not an Ed25519 public key ({e})"))
    }

    /// Hex SHA-256 of the SubjectPublicKeyInfo DER.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The 113-byte SubjectPublicKeyInfo PEM.
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("encoding a 32-byte Ed25519 key as PEM cannot fail")
    }

    /// Check an Ed25519 signature (RFC 8032, with the strict checks of `verify_strict`: no
    /// small-order keys or malleable signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify_strict(message, &sig).is_ok()
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({})", self.fingerprint)
    }
}

/// A private key that signs. `Debug` shows only the fingerprint; the key is zeroed on drop.
pub struct Signer {
    key: SigningKey,
    public: Verifier,
    /// Rotation announcements found beside the key (see [`crate::lifecycle`]).
    announcements: Vec<crate::lifecycle::Announcement>,
}

impl Signer {
    fn from_key(key: SigningKey) -> Signer {
        let public = Verifier::from_key(key.verifying_key());
        Signer {
            key,
            public,
            announcements: Vec::new(),
        }
    }

    /// Load a PKCS#8 PEM private key, refusing a file that group or others may read or write
    /// (the mode is checked on the opened file, so a swap between check and read cannot fool it).
    pub fn load(path: &Path) -> Result<Signer, Error> {
        let io = |error| Error::Io {
            path: path.to_path_buf(),
            error,
        };
        let mut file = crate::open_regular(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::KeyPermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        if !meta.is_file() || meta.len() > MAX_KEY_FILE {
            return Err(Error::BadPrivateKey {
                path: path.to_path_buf(),
            });
        }
        let mut text = zeroize_string();
        file.read_to_string(&mut text)
            .map_err(|_| Error::BadPrivateKey {
                path: path.to_path_buf(),
            })?;
        let key = SigningKey::from_pkcs8_pem(text.trim_start());
        wipe(&mut text);
        let key = key.map_err(|_| Error::BadPrivateKey {
            path: path.to_path_buf(),
        })?;
        let mut signer = Signer::from_key(key);
        // The history of this key (rotations), written into every audit log it signs.
        let chain = path
            .parent()
            .map(|d| d.join(crate::lifecycle::KEYCHAIN_FILE))
            .filter(|p| p.exists());
        if let Some(chain) = chain {
            signer.announcements = crate::lifecycle::read_keychain(&chain)?;
        }
        Ok(signer)
    }

    /// Load `state_dir/proctor.key`, or create a key pair there (directory mode 0700) when there
    /// is none. Returns the signer and whether it was created.
    pub fn load_or_create(state_dir: &Path) -> Result<(Signer, bool), Error> {
        let path = state_dir.join(PRIVATE_KEY_FILE);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => Ok((Signer::load(&path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match generate_keypair(state_dir)
            {
                Ok((private, _)) => Ok((Signer::load(&private)?, true)),
                // Another proctor starting at the same moment created it first: use that key
                // once its writer has finished (the file appears before its bytes do).
                Err(Error::KeyExists { .. }) => {
                    let mut tries = 0;
                    loop {
                        match Signer::load(&path) {
                            Ok(s) => return Ok((s, false)),
                            Err(Error::BadPrivateKey { .. }) if tries < 40 => {
                                tries += 1;
                                std::thread::sleep(std::time::Duration::from_millis(25));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) => Err(e),
            },
            Err(error) => Err(Error::Io { path, error }),
        }
    }

    /// A fresh key from the operating system's random source (for tests and `generate_keypair`).
    pub fn generate() -> Result<Signer, Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::Io {
            path: PathBuf::from("<getrandom>"),
            error: std::io::Error::other(e.to_string()),
        })?;
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(Signer::from_key(key))
    }

    pub fn verifier(&self) -> &Verifier {
        &self.public
    }

    /// The rotation announcements of this key's history, oldest first.
    pub fn announcements(&self) -> &[crate::lifecycle::Announcement] {
        &self.announcements
    }

    /// Hex SHA-256 of the public key's DER.
    pub fn fingerprint(&self) -> &str {
        self.public.fingerprint()
    }

    /// The Ed25519 signature of `message` (64 bytes).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.key.sign(message).to_bytes()
    }

    /// The private key as PKCS#8 v1 PEM (the form openssl reads and writes).
    pub(crate) fn to_pkcs8_pem(
        &self,
    ) -> ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing<String> {
        let kp = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        kp.to_pkcs8_pem(LineEnding::LF)
            .expect("encoding a 32-byte Ed25519 key as PKCS#8 cannot fail")
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({})", self.fingerprint())
    }
}

fn zeroize_string() -> String {
    String::with_capacity(MAX_KEY_FILE as usize)
}

fn wipe(s: &mut String) {
    use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroize;
    s.zeroize();
}

/// Write a new key pair into `dir` (created with mode 0700 if missing): `dir/proctor.key` (mode
/// 0600 from creation on) and `dir/proctor.pub.pem`. Refuses to overwrite either file.
pub fn generate_keypair(dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| Error::Io {
            path: dir.to_path_buf(),
            error,
        })?;
    let private = dir.join(PRIVATE_KEY_FILE);
    let public = dir.join(PUBLIC_KEY_FILE);
    for p in [&private, &public] {
        if std::fs::symlink_metadata(p).is_ok() {
            return Err(Error::KeyExists { path: p.clone() });
        }
    }
    let signer = Signer::generate()?;
    write_new(&private, signer.to_pkcs8_pem().as_bytes(), 0o600)?;
    write_new(&public, signer.verifier().to_pem().as_bytes(), 0o644)?;
    Ok((private, public))
}

/// Make sure the public key is in `dir` so that `proctor verify` finds it next to the data:
/// `dir/proctor.pub.pem`, or `dir/proctor-<first 16 hex of fingerprint>.pub.pem` when a different
/// key already has that name. Returns the path.
pub fn publish_public_key(dir: &Path, key: &Verifier) -> Result<PathBuf, Error> {
    let pem = key.to_pem();
    let candidates = [
        dir.join(PUBLIC_KEY_FILE),
        dir.join(format!("proctor-{}.pub.pem", &key.fingerprint()[..16])),
    ];
    for path in candidates {
        match std::fs::read(&path) {
            Ok(existing) if existing == pem.as_bytes() => return Ok(path),
            Ok(existing) => {
                if Verifier::from_pem(&String::from_utf8_lossy(&existing))
                    .is_ok_and(|v| v.fingerprint() == key.fingerprint())
                {
                    return Ok(path);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_new(&path, pem.as_bytes(), 0o644)?;
                return Ok(path);
            }
            Err(error) => return Err(Error::Io { path, error }),
        }
    }
    Err(Error::KeyExists {
        path: dir.join(format!("proctor-{}.pub.pem", &key.fingerprint()[..16])),
    })
}

/// Create `path` (never overwriting) with `mode` from the start, write and fsync it.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let io = |error| Error::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

/// Read a file of at most [`MAX_KEY_FILE`] bytes.
fn read_small(path: &Path) -> Result<Vec<u8>, Error> {
    let io = |error| Error::Io {
        path: path.to_path_buf(),
        error,
    };
    let f = crate::open_regular(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(MAX_KEY_FILE + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > MAX_KEY_FILE {
        return Err(Error::BadPublicKey {
            path: path.to_path_buf(),
            reason: "file too large for a key".into(),
        });
    }
    Ok(buf)
}

/// Default directory for a key when none is given: `$PROCTOR_STATE_DIR`, else `/var/lib/proctor`
/// for root, else `$XDG_STATE_HOME/proctor` or `~/.local/state/proctor`.
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PROCTOR_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/proctor");
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("proctor");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/state/proctor")
}
