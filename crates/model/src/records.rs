//! Every record proctor writes that is not an observation: enforcement decisions, approvals,
//! tamper attempts, alerts, the baseline, start/stop, mode changes and containment. Each is a
//! typed, serialize-only struct; [`RecordKind`] is the one list of every `type` tag.

use serde::{Deserialize, Serialize};

/// The enforcement mode of a run (`--mode`, `proctor mode`), as written in records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Observe and alert only.
    Audit,
    /// Decide as enforce would and record `would_block`; block nothing.
    Shadow,
    /// Block what the policy forbids.
    Enforce,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Audit, Mode::Shadow, Mode::Enforce];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Audit => "audit",
            Mode::Shadow => "shadow",
            Mode::Enforce => "enforce",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{}` is not a mode (audit, shadow or enforce)",
                    s.escape_debug()
                )
            })
    }
}

/// Wall-clock UTC nanoseconds since the Unix epoch (the `ts_ns` of every record); 0 before 1970.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// SHA-256 of `bytes` as lowercase hex: the form of every digest in proctor's records (chain
/// hashes, baseline, certificates, approval digests, key fingerprints).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
