//! Canonical JSON after RFC 8785 (JSON Canonicalization Scheme, "JCS").
//!
//! - Objects: members sorted by the UTF-16 code units of their names, no whitespace.
//! - Strings: only `"`, `\` and U+0000..U+001F are escaped (`\b \t \n \f \r`, else `\u00xx` in
//!   lowercase hex); everything else is written as UTF-8, unchanged.
//! - Numbers: a non-integer (`f64`) is written as ECMAScript `Number.prototype.toString` writes it
//!   (via `ryu-js`), e.g. `1e+21`, `5e-324`, `0` for `-0`.
//!
//! One deliberate difference: a JSON number that `serde_json` holds as an integer (`u64`/`i64`)
//! is written with its exact decimal digits. Up to 2^53 this is byte-for-byte what RFC 8785
//! produces; above it, RFC 8785 would round through a double and change the low digits, and
//! nanosecond timestamps (`ts_ns` ≈ 1.8e18) would then not be covered by the signature exactly.
//! The reference Python implementation of JCS writes integers the same exact way.

use serde_json::{Map, Number, Value};

/// The RFC 8785 canonical form of `value` (see the module docs for integers above 2^53).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

/// Members in RFC 8785 §3.2.3 order: by UTF-16 code units, not by UTF-8 bytes or code points
/// (they differ for characters above U+FFFF against U+E000..U+FFFF).
fn sorted_entries(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    // For ASCII names, byte order is UTF-16 order: a map that iterates in order (serde_json's
    // default BTreeMap does) needs no sort. This is the common case on the hot path.
    let in_order = entries
        .windows(2)
        .all(|w| w[0].0.is_ascii() && w[1].0.is_ascii() && w[0].0 < w[1].0);
    if !in_order {
        entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    }
    entries
}

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    let entries = sorted_entries(map);
    out.push(b'{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(k, out);
        out.push(b':');
        write_value(v, out);
    }
    out.push(b'}');
}

fn write_number(n: &Number, out: &mut Vec<u8>) {
    if let Some(u) = n.as_u64() {
        out.extend_from_slice(u.to_string().as_bytes());
    } else if let Some(i) = n.as_i64() {
        out.extend_from_slice(i.to_string().as_bytes());
    } else {
        // serde_json never holds NaN or infinities in a Number.
        write_f64(n.as_f64().unwrap_or(0.0), out);
    }
}

/// A finite double as ECMAScript writes it.
pub(crate) fn write_f64(f: f64, out: &mut Vec<u8>) {
    if f == 0.0 {
        // ECMAScript writes -0 as "0".
        out.push(b'0');
    } else {
        let mut buf = ryu_js::Buffer::new();
        out.extend_from_slice(buf.format_finite(f).as_bytes());
    }
}

pub(crate) fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        let v: Value = serde_json::from_str(text).expect("test input is JSON");
        String::from_utf8(canonical_json(&v)).expect("canonical JSON is UTF-8")
    }

    #[test]
    fn escapes_only_what_rfc8785_escapes() {
        assert_eq!(
            canon(r#""\u0000\u0008\t\n\u000b\f\r\u001f\"\\/\u007f\u2028""#),
            "\"\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f\\\"\\\\/\u{7f}\u{2028}\""
        );
    }
}
