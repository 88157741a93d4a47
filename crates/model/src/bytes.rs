//! A lossless JSON representation for byte strings the agent controls (paths, argv, comm, DNS names).
//!
//! The kernel hands us raw bytes: they may be invalid UTF-8, contain newlines, NULs or terminal
//! escape sequences. In JSON a [`Bytes`] value is
//! - a plain string when the bytes are valid UTF-8 (JSON escaping makes control characters such as
//!   `\n` or ESC harmless: `"\u001b[31m"`), or
//! - an object `{"b64": "<standard base64 with padding>"}` when they are not.
//!
//! Both forms decode back to exactly the original bytes; nothing is replaced or dropped.

use base64::Engine as _;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Raw bytes with a lossless JSON form (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as text when they are valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Human-readable form for diagnostics only: invalid bytes and control characters are
    /// escaped (`\xNN`, `\n`, `\u{1b}`), so printing it to a terminal is safe. Never use this
    /// form for matching or evidence.
    pub fn escaped(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() {
                    out.extend(c.escape_default());
                } else {
                    out.push(c);
                }
            }
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
        out
    }

    /// The last path component (after the final `/`).
    pub fn basename(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.escaped())
    }
}

impl From<&str> for Bytes {
    fn from(s: &str) -> Self {
        Bytes(s.as_bytes().to_vec())
    }
}

impl From<&[u8]> for Bytes {
    fn from(s: &[u8]) -> Self {
        Bytes(s.to_vec())
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(
                    "b64",
                    &base64::engine::general_purpose::STANDARD.encode(&self.0),
                )?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an object {\"b64\": ...}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                Ok(Bytes(v.as_bytes().to_vec()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Bytes, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "b64" {
                        return Err(de::Error::unknown_field(&key, &["b64"]));
                    }
                    let text: String = map.next_value()?;
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(text.as_bytes())
                        .map_err(|e| de::Error::custom(format!("bad b64: {e}")))?;
                    // The b64 form is reserved for invalid UTF-8, so every value has exactly one
                    // spelling (canonical JSON and signatures rely on that).
                    if std::str::from_utf8(&raw).is_ok() {
                        return Err(de::Error::custom("b64 used for valid UTF-8"));
                    }
                    out = Some(Bytes(raw));
                }
                out.ok_or_else(|| de::Error::missing_field("b64"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_a_plain_string_and_control_chars_are_escaped() {
        let b = Bytes::from("a\nb\u{1b}[31m");
        let j = serde_json::to_string(&b).unwrap();
        assert_eq!(j, r#""a\nb\u001b[31m""#);
        assert_eq!(serde_json::from_str::<Bytes>(&j).unwrap(), b);
    }

    #[test]
    fn invalid_utf8_round_trips_through_b64() {
        let b = Bytes(vec![b'/', b't', 0xff, 0xfe, 0, b'\n']);
        let j = serde_json::to_string(&b).unwrap();
        assert_eq!(j, r#"{"b64":"L3T//gAK"}"#);
        assert_eq!(serde_json::from_str::<Bytes>(&j).unwrap(), b);
    }

    #[test]
    fn b64_for_valid_utf8_is_rejected() {
        assert!(serde_json::from_str::<Bytes>(r#"{"b64":"YWJj"}"#).is_err());
    }

    #[test]
    fn escaped_is_terminal_safe() {
        let b = Bytes(vec![b'x', 0x1b, b'[', 0xff]);
        assert_eq!(b.escaped(), "x\\u{1b}[\\xff");
        assert_eq!(Bytes::from("/usr/bin/python3").basename(), b"python3");
    }
}
