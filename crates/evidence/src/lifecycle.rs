//! Key lifecycle: rotation announcements and signed revocation lists.
//!
//! - Rotation ([`rotate_key`]): a new key pair replaces the one in a key directory, and an
//!   *announcement* signed by the old key names the new one. Announcements are kept, one per
//!   line, in `KEYDIR/proctor.keys.jsonl` ([`KEYCHAIN_FILE`]); [`crate::Signer::load`] reads
//!   them, [`crate::AuditLog`] writes them into the chain (a `key_rotation` record right after
//!   each `segment_start`) and copies them next to the data. A verifier that pins the first key
//!   accepts a later key only through an unbroken series of announcements from it, each signed
//!   by the key before: an announcement signed by any other key is reported as forged.
//! - Revocation ([`revoke_key`]): a list of `{fingerprint, revoked_at_ns, reason}` signed by a
//!   key the verifier trusts, carrying the announcements that lead to that key so the list can
//!   be checked on its own. A signature by a revoked key on a record dated at or after the
//!   revocation time is invalid, with the reason. A record's date is the host's clock unless a
//!   trusted timestamp vouches for it, so a holder of a stolen key can backdate what it signs:
//!   revocation stops honest-looking new evidence, not a forger who lies about the time.
//!
//! Announcement (one canonical JSON object; `signature` is by the old key over the object
//! without `signature`):
//! `{"format":"proctor-key-rotation/1","new_fingerprint":..,"new_public_key":"PEM",
//!   "old_fingerprint":..,"signature":..,"ts_ns":..}`
//!
//! Revocation list (`signature` by the issuer over the object without `signature`):
//! `{"format":"proctor-revocations/1","issuer_fingerprint":..,"key_chain":[announcements],
//!   "revoked":[{"fingerprint":..,"reason":..,"revoked_at_ns":..}],"signature":..,"ts_ns":..}`

use crate::keys::{write_new, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE};
use crate::{canonical_json, now_ns, Error, Signer, Verifier};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Rotation announcements in a key directory and next to the data.
pub const KEYCHAIN_FILE: &str = "proctor.keys.jsonl";
/// Default revocation list file name in a key directory.
pub const REVOCATIONS_FILE: &str = "proctor.revoked.json";
pub const ROTATION_FORMAT: &str = "proctor-key-rotation/1";
pub const REVOCATION_FORMAT: &str = "proctor-revocations/1";
/// Largest key chain or revocation list read.
const MAX_LIST_BYTES: u64 = 4 * 1024 * 1024;

fn b64(sig: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sig)
}

/// Sign `obj` (without `signature`) and add the `signature` member.
fn sign_object(signer: &Signer, mut obj: Map<String, Value>) -> Value {
    let sig = signer.sign(&canonical_json(&Value::Object(obj.clone())));
    obj.insert("signature".into(), Value::from(b64(&sig)));
    Value::Object(obj)
}

/// The canonical bytes signed and the decoded signature of a signed object.
fn signed_parts(obj: &Map<String, Value>) -> Result<(Vec<u8>, Vec<u8>), String> {
    let sig = obj
        .get("signature")
        .and_then(Value::as_str)
        .ok_or("no `signature`")?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .ok()
        .filter(|s| s.len() == 64)
        .ok_or("`signature` is not base64 of 64 bytes")?;
    let mut without = obj.clone();
    without.remove("signature");
    Ok((canonical_json(&Value::Object(without)), sig))
}

/// A parsed rotation announcement (its signature not yet checked).
#[derive(Debug, Clone)]
pub struct Announcement {
    pub old_fingerprint: String,
    pub new_key: Verifier,
    pub ts_ns: u64,
    /// The announcement as written.
    pub value: Value,
    signed: Vec<u8>,
    signature: Vec<u8>,
}

impl Announcement {
    /// Sign an announcement of `new` by `old`.
    pub fn create(old: &Signer, new: &Verifier, ts_ns: u64) -> Value {
        let mut obj = Map::new();
        obj.insert("format".into(), Value::from(ROTATION_FORMAT));
        obj.insert("old_fingerprint".into(), Value::from(old.fingerprint()));
        obj.insert("new_fingerprint".into(), Value::from(new.fingerprint()));
        obj.insert("new_public_key".into(), Value::from(new.to_pem()));
        obj.insert("ts_ns".into(), Value::from(ts_ns));
        sign_object(old, obj)
    }

    /// Check the form (not the signature): format, members, and that the new key's PEM has the
    /// fingerprint it is announced with.
    pub fn parse(v: &Value) -> Result<Announcement, String> {
        let obj = v.as_object().ok_or("not a JSON object")?;
        if obj.get("format").and_then(Value::as_str) != Some(ROTATION_FORMAT) {
            return Err(format!("`format` is not \"{ROTATION_FORMAT}\""));
        }
        let s = |k: &str| {
            obj.get(k)
                .and_then(Value::as_str)
                .ok_or(format!("no string `{k}`"))
        };
        let new_key = Verifier::from_pem(s("new_public_key")?)?;
        if new_key.fingerprint() != s("new_fingerprint")? {
            return Err("`new_fingerprint` is not the fingerprint of `new_public_key`".into());
        }
        let ts_ns = obj
            .get("ts_ns")
            .and_then(Value::as_u64)
            .ok_or("no integer `ts_ns`")?;
        let (signed, signature) = signed_parts(obj)?;
        Ok(Announcement {
            old_fingerprint: s("old_fingerprint")?.to_string(),
            new_key,
            ts_ns,
            value: v.clone(),
            signed,
            signature,
        })
    }

    /// Whether `old` (which must have the announced old fingerprint) signed it.
    pub fn signed_by(&self, old: &Verifier) -> bool {
        old.fingerprint() == self.old_fingerprint && old.verify(&self.signed, &self.signature)
    }
}

/// Keys reached from trusted roots through announcements, and announcements that failed.
#[derive(Debug, Default, Clone)]
pub struct KeyChain {
    /// Fingerprint -> (key, fingerprint of the key that announced it).
    pub accepted: BTreeMap<String, (Verifier, String)>,
    pending: Vec<(Announcement, String)>,
    seen: std::collections::HashSet<Vec<u8>>,
}

/// An announcement whose announcing key is trusted but did not sign it.
#[derive(Debug, Clone)]
pub struct Forged {
    pub source: String,
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    /// Set when the signature is good but the old key was revoked when it announced: the
    /// revocation's reason. A thief of a key must not escape its revocation by rotating.
    pub revoked: Option<String>,
}

impl KeyChain {
    /// Queue an announcement found at `source`.
    pub fn add(&mut self, a: Announcement, source: String) {
        if self.seen.insert(a.signed.clone()) {
            self.pending.push((a, source));
        }
    }

    /// Accept every queued announcement whose old key `trusted` returns (repeatedly, so chains
    /// of several rotations resolve in any order). Returns the forged ones (removed from the
    /// queue) and the fingerprints newly accepted.
    pub fn resolve(
        &mut self,
        trusted: impl Fn(&str) -> Option<Verifier>,
    ) -> (Vec<Forged>, Vec<String>) {
        self.resolve_with(trusted, |_, _| None)
    }

    /// [`KeyChain::resolve`], refusing announcements made by a key `revoked` says was revoked
    /// at the announcement's time (returning the reason).
    pub fn resolve_with(
        &mut self,
        trusted: impl Fn(&str) -> Option<Verifier>,
        revoked: impl Fn(&str, u64) -> Option<String>,
    ) -> (Vec<Forged>, Vec<String>) {
        let mut forged = Vec::new();
        let mut new = Vec::new();
        loop {
            let mut progress = false;
            let mut rest = Vec::new();
            for (a, source) in std::mem::take(&mut self.pending) {
                let old = trusted(&a.old_fingerprint).or_else(|| {
                    self.accepted
                        .get(&a.old_fingerprint)
                        .map(|(k, _)| k.clone())
                });
                let refused = old
                    .as_ref()
                    .filter(|o| a.signed_by(o))
                    .and_then(|_| revoked(&a.old_fingerprint, a.ts_ns));
                match old {
                    Some(_) if refused.is_some() => forged.push(Forged {
                        source,
                        old_fingerprint: a.old_fingerprint.clone(),
                        new_fingerprint: a.new_key.fingerprint().to_string(),
                        revoked: refused,
                    }),
                    Some(old) if a.signed_by(&old) => {
                        let fp = a.new_key.fingerprint().to_string();
                        if !self.accepted.contains_key(&fp) {
                            self.accepted
                                .insert(fp.clone(), (a.new_key.clone(), a.old_fingerprint.clone()));
                            new.push(fp);
                            progress = true;
                        }
                    }
                    Some(_) => forged.push(Forged {
                        source,
                        old_fingerprint: a.old_fingerprint.clone(),
                        new_fingerprint: a.new_key.fingerprint().to_string(),
                        revoked: None,
                    }),
                    None => rest.push((a, source)),
                }
            }
            self.pending = rest;
            if !progress {
                return (forged, new);
            }
        }
    }
}

/// Parse the announcements of a key chain file (one per line). The error names the line.
pub fn read_keychain(path: &Path) -> Result<Vec<Announcement>, Error> {
    let text = read_bounded(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| Error::BadList {
            path: path.to_path_buf(),
            reason: format!("line {}: not JSON ({e})", i + 1),
        })?;
        out.push(Announcement::parse(&v).map_err(|reason| Error::BadList {
            path: path.to_path_buf(),
            reason: format!("line {}: {reason}", i + 1),
        })?);
    }
    Ok(out)
}

fn read_bounded(path: &Path) -> Result<String, Error> {
    use std::io::Read;
    let io = |error| Error::Io {
        path: path.to_path_buf(),
        error,
    };
    let f = crate::open_regular(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(MAX_LIST_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > MAX_LIST_BYTES {
        return Err(Error::BadList {
            path: path.to_path_buf(),
            reason: "too large".into(),
        });
    }
    String::from_utf8(buf).map_err(|_| Error::BadList {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })
}

/// What [`rotate_key`] did.
#[derive(Debug)]
pub struct Rotated {
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    /// Where the old private key was moved (mode 0600).
    pub retired: PathBuf,
    pub keychain: PathBuf,
}

/// Replace the key pair in `dir` by a new one announced by the old one. The old private key is
/// kept as `dir/retired/proctor-<fp16>.key` (0600; delete it once nothing needs to sign with
/// it), the announcement appended to `dir/proctor.keys.jsonl` (0600).
pub fn rotate_key(dir: &Path) -> Result<Rotated, Error> {
    let private = dir.join(PRIVATE_KEY_FILE);
    let old = Signer::load(&private)?;
    let new = Signer::generate()?;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |error| Error::Io { path: p, error }
    };
    // Order for a crash at any step: the announcement first (harmless alone), then the new key
    // beside the old, then the swap by renames.
    let line = canonical_json(&Announcement::create(&old, new.verifier(), now_ns()));
    let keychain = dir.join(KEYCHAIN_FILE);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&keychain)
        .map_err(io(&keychain))?;
    f.write_all(&[line.as_slice(), b"\n"].concat())
        .map_err(io(&keychain))?;
    f.sync_all().map_err(io(&keychain))?;
    let staged = dir.join(format!("{PRIVATE_KEY_FILE}.new"));
    let _ = std::fs::remove_file(&staged);
    write_new(&staged, new.to_pkcs8_pem().as_bytes(), 0o600)?;
    let retired_dir = dir.join("retired");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&retired_dir)
        .map_err(io(&retired_dir))?;
    let retired = retired_dir.join(format!("proctor-{}.key", &old.fingerprint()[..16]));
    std::fs::rename(&private, &retired).map_err(io(&retired))?;
    std::fs::rename(&staged, &private).map_err(io(&private))?;
    let public = dir.join(PUBLIC_KEY_FILE);
    let staged_pub = dir.join(format!("{PUBLIC_KEY_FILE}.new"));
    let _ = std::fs::remove_file(&staged_pub);
    write_new(&staged_pub, new.verifier().to_pem().as_bytes(), 0o600)?;
    std::fs::rename(&staged_pub, &public).map_err(io(&public))?;
    Ok(Rotated {
        old_fingerprint: old.fingerprint().to_string(),
        new_fingerprint: new.fingerprint().to_string(),
        retired,
        keychain,
    })
}

/// One revoked key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub fingerprint: String,
    pub revoked_at_ns: u64,
    pub reason: String,
}

/// A revocation list whose signature was checked.
#[derive(Debug, Clone, Default)]
pub struct RevocationList {
    pub issuer: String,
    pub entries: BTreeMap<String, Revocation>,
}

impl RevocationList {
    /// The revocation of `fingerprint` if it applies at `ts_ns`.
    pub fn applies(&self, fingerprint: &str, ts_ns: u64) -> Option<&Revocation> {
        self.entries
            .get(fingerprint)
            .filter(|r| ts_ns >= r.revoked_at_ns)
    }
}

/// Read a revocation list and check its signature: the issuer must be a key `trusted` returns,
/// or one reached from such a key through the announcements the list carries.
pub fn load_revocations(
    path: &Path,
    trusted: impl Fn(&str) -> Option<Verifier>,
) -> Result<RevocationList, Error> {
    let bad = |reason: String| Error::BadList {
        path: path.to_path_buf(),
        reason,
    };
    let text = read_bounded(path)?;
    let v: Value =
        serde_json::from_str(text.trim_end()).map_err(|e| bad(format!("not JSON ({e})")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("not a JSON object".into()))?;
    if obj.get("format").and_then(Value::as_str) != Some(REVOCATION_FORMAT) {
        return Err(bad(format!("`format` is not \"{REVOCATION_FORMAT}\"")));
    }
    let issuer = obj
        .get("issuer_fingerprint")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no `issuer_fingerprint`".into()))?;
    let mut chain = KeyChain::default();
    for a in obj
        .get("key_chain")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        chain.add(
            Announcement::parse(a).map_err(|e| bad(format!("key_chain: {e}")))?,
            path.display().to_string(),
        );
    }
    let (forged, _) = chain.resolve(&trusted);
    if let Some(f) = forged.first() {
        return Err(bad(format!(
            "its key_chain announces key {} as the successor of {}, but that key did not sign the announcement: forged",
            f.new_fingerprint, f.old_fingerprint
        )));
    }
    let key = trusted(issuer)
        .or_else(|| chain.accepted.get(issuer).map(|(k, _)| k.clone()))
        .ok_or_else(|| {
            bad(format!(
                "signed by key {issuer}, which is not a trusted key nor reached from one by rotation"
            ))
        })?;
    let (signed, sig) = signed_parts(obj).map_err(bad)?;
    if !key.verify(&signed, &sig) {
        return Err(bad(format!(
            "its signature does not verify with key {issuer}: changed after signing, or forged"
        )));
    }
    let mut entries = BTreeMap::new();
    for e in obj
        .get("revoked")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `revoked` list".into()))?
    {
        let r = (|| {
            Some(Revocation {
                fingerprint: e.get("fingerprint")?.as_str()?.to_string(),
                revoked_at_ns: e.get("revoked_at_ns")?.as_u64()?,
                reason: e.get("reason")?.as_str()?.to_string(),
            })
        })()
        .ok_or_else(|| {
            bad("a `revoked` entry lacks fingerprint, revoked_at_ns or reason".into())
        })?;
        entries.insert(r.fingerprint.clone(), r);
    }
    Ok(RevocationList {
        issuer: issuer.to_string(),
        entries,
    })
}

/// Add (or replace) the revocation of `fingerprint` in the list at `out` (created if missing),
/// signed by the key in `dir`, which carries its announcements so the list checks on its own.
/// An existing list must verify with that key or one it rotated from.
pub fn revoke_key(dir: &Path, out: &Path, revocation: Revocation) -> Result<RevocationList, Error> {
    let signer = Signer::load(&dir.join(PRIVATE_KEY_FILE))?;
    let chain: Vec<Value> = signer
        .announcements()
        .iter()
        .map(|a| a.value.clone())
        .collect();
    let mut entries = match std::fs::symlink_metadata(out) {
        Ok(_) => {
            // The existing list must be by this key or one it announced (a list by an older key
            // is refused rather than silently re-signed: start a new one with another --out).
            let mut known: BTreeMap<String, Verifier> = BTreeMap::new();
            known.insert(signer.fingerprint().into(), signer.verifier().clone());
            for a in signer.announcements() {
                known.insert(a.new_key.fingerprint().into(), a.new_key.clone());
            }
            let old = load_revocations(out, |fp| known.get(fp).cloned())?;
            old.entries
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(error) => {
            return Err(Error::Io {
                path: out.to_path_buf(),
                error,
            })
        }
    };
    entries.insert(revocation.fingerprint.clone(), revocation);
    let revoked: Vec<Value> = entries
        .values()
        .map(|r| {
            json!({"fingerprint": r.fingerprint, "revoked_at_ns": r.revoked_at_ns, "reason": r.reason})
        })
        .collect();
    let mut obj = Map::new();
    obj.insert("format".into(), Value::from(REVOCATION_FORMAT));
    obj.insert(
        "issuer_fingerprint".into(),
        Value::from(signer.fingerprint()),
    );
    obj.insert("key_chain".into(), Value::Array(chain));
    obj.insert("revoked".into(), Value::Array(revoked));
    obj.insert("ts_ns".into(), Value::from(now_ns()));
    let mut bytes = canonical_json(&sign_object(&signer, obj));
    bytes.push(b'\n');
    crate::cert::write_atomic_mode(
        out.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
        &out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        &bytes,
        0o600,
    )?;
    Ok(RevocationList {
        issuer: signer.fingerprint().to_string(),
        entries,
    })
}

/// Copy the announcements of `signer` into `dir/proctor.keys.jsonl` (0600) so a verifier finds
/// them next to the data; lines already there are kept.
pub fn publish_keychain(dir: &Path, signer: &Signer) -> Result<(), Error> {
    if signer.announcements().is_empty() {
        return Ok(());
    }
    let path = dir.join(KEYCHAIN_FILE);
    let existing = std::fs::read(&path).unwrap_or_default();
    let mut add = Vec::new();
    for a in signer.announcements() {
        let line = canonical_json(&a.value);
        if !existing
            .split(|&b| b == b'\n')
            .any(|l| l == line.as_slice())
        {
            add.extend_from_slice(&line);
            add.push(b'\n');
        }
    }
    if add.is_empty() {
        return Ok(());
    }
    let io = |error| Error::Io {
        path: path.clone(),
        error,
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    f.write_all(&add).map_err(io)
}

/// Parse `2026-12-02T20:00:00Z` (UTC, seconds) or a number of seconds since the epoch into
/// nanoseconds.
pub fn parse_utc(s: &str) -> Result<u64, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return secs
            .checked_mul(1_000_000_000)
            .ok_or_else(|| format!("{s}: too large"));
    }
    let bad =
        || format!("{s}: not a UTC time like 2026-12-02T20:00:00Z or seconds since the epoch");
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().map_err(|_| bad());
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .map(|s| s * 1_000_000_000)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_utc_round_trips_with_the_compact_form() {
        let ns = parse_utc("2026-11-23T08:28:49Z").unwrap();
        assert_eq!(crate::utc_compact(ns), "20261123T082849Z");
        assert_eq!(parse_utc("0").unwrap(), 0);
        assert!(parse_utc("2026-13-01T00:00:00Z").is_err());
        assert!(parse_utc("yesterday").is_err());
    }
}
