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
use std::ops::Range;

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
    write_string_bytes(s.as_bytes(), out);
}

/// [`write_string`] of UTF-8 held as bytes (member names kept in scratch): escaping works on
/// bytes, and bytes of multi-byte characters are never escaped.
pub(crate) fn write_string_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let (mut start, mut i) = (0, 0);
    loop {
        // Eight plain bytes at a time; it stops at non-ASCII bytes too, which are kept.
        i += proctor_model::json_ascii_run(&bytes[i..]);
        let Some(&b) = bytes.get(i) else { break };
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether `body` is, byte for byte, what [`canonical_json`] writes for the JSON object it
/// encodes, decided in one pass over the bytes without building a `Value`. Calls `member` with
/// each top-level member's name and the byte ranges of the whole member (name to end of value)
/// and of its value.
///
/// Conservative: `true` is a proof; `false` only means "not shown here" (the object may be
/// non-canonical, invalid, or use a form this scanner does not prove: non-ASCII or escaped member
/// names, numbers that are not integers of `u64`/`i64`, nesting deeper than serde_json parses),
/// and the caller must decide through the `Value` path.
pub fn scan_canonical_object(
    body: &[u8],
    mut member: impl FnMut(&[u8], Range<usize>, Range<usize>),
) -> bool {
    // The line's quotes, found before the walk: without a backslash in the line each string
    // ends at the next quote.
    proctor_model::with_quote_map(body, |map| {
        if map.control {
            // Canonical JSON escapes every control byte, and JSON allows none outside strings.
            return false;
        }
        let mut s = Scan {
            b: body,
            i: 0,
            non_ascii: map.non_ascii,
            quotes: (!map.backslash).then_some(map),
        };
        // Bytes outside strings are structural ASCII (anything else fails the walk), so the
        // line is UTF-8 when its strings are: checked here only when the line has a
        // non-ASCII byte, rather than for every line.
        s.object(0, &mut member)
            && s.i == body.len()
            && (!s.non_ascii || std::str::from_utf8(body).is_ok())
    })
}

/// serde_json refuses nesting deeper than 128; stay below it so `true` implies it parses.
const MAX_DEPTH: usize = 100;

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    /// The line (or, without the map, a string) had a byte above 0x7f: the line's UTF-8 is
    /// checked at the end.
    non_ascii: bool,
    /// Where the line's quotes are, when it has no backslash (so each one ends a string).
    quotes: Option<&'a proctor_model::QuoteMap<'a>>,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// A branch, not a flag added to the position: in canonical lines the outcome is
    /// predictable, and with the flag every next load waited for this compare (the walk's
    /// loads then form one dependency chain: 30% of verify was in `eat`'s compare).
    #[inline(always)]
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            return true;
        }
        false
    }

    /// Generic over the member callback, so the top level's is inlined (a `dyn` call per member
    /// showed in the profile).
    fn object<F: FnMut(&[u8], Range<usize>, Range<usize>)>(
        &mut self,
        depth: usize,
        member: &mut F,
    ) -> bool {
        if depth > MAX_DEPTH || !self.eat(b'{') {
            return false;
        }
        if self.eat(b'}') {
            return true;
        }
        // The previous name, and its first eight bytes as a word (see `name_word`).
        let mut prev: Option<(Range<usize>, Option<u64>)> = None;
        loop {
            let start = self.i;
            // Names: ASCII without escapes only, so that byte order is the UTF-16 order of
            // RFC 8785 and strictly increasing names also rule out duplicates. The run stops
            // at a non-ASCII byte or an escape, and the closing quote must follow it.
            if !self.eat(b'"') {
                return false;
            }
            let name = self.i;
            match self.quotes {
                Some(q) => {
                    self.i = q.next_quote(self.i).unwrap_or(self.b.len());
                    if self.non_ascii && !self.b[name..self.i].is_ascii() {
                        return false;
                    }
                }
                None => self.i += proctor_model::json_ascii_run(&self.b[self.i..]),
            }
            let name = name..self.i;
            if !self.eat(b'"') || !self.eat(b':') {
                return false;
            }
            let word = self.name_word(&name);
            if let Some((p, p_word)) = &prev {
                // Most names differ in their first eight bytes; names equal there are compared
                // whole, unless both are shorter than a word (then they are equal).
                let before = match (p_word, word) {
                    (Some(a), Some(b)) if *a != b => *a < b,
                    (Some(_), Some(_)) if p.len() < 8 && name.len() < 8 => false,
                    _ => self.b[p.clone()] < self.b[name.clone()],
                };
                if !before {
                    return false;
                }
            }
            let value = self.i;
            // Strings and integers, most values, without the call and dispatch of `value`.
            let ok = match self.peek() {
                Some(b'"') => self.string(),
                Some(b'0'..=b'9') => self.integer(),
                _ => self.value(depth + 1),
            };
            if !ok {
                return false;
            }
            if depth == 0 {
                member(&self.b[name.clone()], start..self.i, value..self.i);
            }
            prev = Some((name, word));
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    /// The first eight bytes of a name as a big-endian word, bytes past its end zeroed, so
    /// that words order as the names do where they differ (names have no NUL, so the zero
    /// padding of a shorter name sorts it first, as a prefix does). `None` near the end of
    /// the line, where eight bytes are not there to read. A `memcmp` call per member was 5% of
    /// verify; each name's word is made once and kept for the next member's comparison.
    fn name_word(&self, r: &Range<usize>) -> Option<u64> {
        let bytes = self.b.get(r.start..r.start + 8)?;
        let mut x = [0u8; 8];
        x.copy_from_slice(bytes);
        let keep = u64::MAX.checked_shl(8 * (8 - r.len().min(8)) as u32);
        Some(u64::from_be_bytes(x) & keep.unwrap_or(0))
    }

    fn value(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'{') => self.object(depth, &mut |_, _, _| {}),
            Some(b'[') => {
                if depth > MAX_DEPTH {
                    return false;
                }
                self.i += 1;
                if self.eat(b']') {
                    return true;
                }
                loop {
                    if !self.value(depth + 1) {
                        return false;
                    }
                    if self.eat(b']') {
                        return true;
                    }
                    if !self.eat(b',') {
                        return false;
                    }
                }
            }
            Some(b'"') => self.string(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            _ => false,
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let ok = self.b[self.i..].starts_with(word);
        self.i += if ok { word.len() } else { 0 };
        ok
    }

    /// A string exactly as [`write_string`] writes it (the input is valid UTF-8 already).
    #[inline(always)]
    fn string(&mut self) -> bool {
        self.i += 1;
        if let Some(q) = self.quotes {
            // No backslash and no control byte in the line: the next quote ends the string,
            // and a non-ASCII byte in it was noted with the line's.
            return match q.next_quote(self.i) {
                Some(end) => {
                    self.i = end + 1;
                    true
                }
                None => false,
            };
        }
        loop {
            // Plain runs in bulk: to the next quote or backslash, then no control byte before it.
            self.i += proctor_model::json_ascii_run(&self.b[self.i..]);
            let Some(c) = self.peek() else { return false };
            self.i += 1;
            match c {
                b'"' => return true,
                0x00..=0x1f => return false,
                0x80..=0xff => self.non_ascii = true,
                b'\\' => {
                    let Some(e) = self.peek() else { return false };
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r' => {}
                        b'u' => {
                            // Only the controls without a short form, as 4 lowercase hex digits.
                            let Some(h) = self.b.get(self.i..self.i + 4) else {
                                return false;
                            };
                            let lower_hex =
                                |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
                            if h[0] != b'0' || h[1] != b'0' || !h[2..].iter().all(|&c| lower_hex(c))
                            {
                                return false;
                            }
                            let v = (h[2] as char).to_digit(16).unwrap_or(0xf) * 16
                                + (h[3] as char).to_digit(16).unwrap_or(0xf);
                            if v >= 0x20 || matches!(v, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return false;
                            }
                            self.i += 4;
                        }
                        _ => return false,
                    }
                }
                _ => {}
            }
        }
    }

    /// An integer serde_json holds as `u64` or `i64`, in the digits [`write_number`] writes.
    #[inline(always)]
    fn integer(&mut self) -> bool {
        let start = self.i;
        self.eat(b'-');
        let digits = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let text = &self.b[start..self.i];
        let d = &self.b[digits..self.i];
        if d.is_empty() || (d[0] == b'0' && (d.len() > 1 || text[0] == b'-')) {
            return false;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return false;
        }
        // Up to 19 digits fit a u64 and 18 an i64: no parse for those (every integer of a
        // record but a rare one).
        if d.len() <= if text[0] == b'-' { 18 } else { 19 } {
            return true;
        }
        // The text is ASCII digits with an optional sign, so from_utf8 cannot fail here.
        let text = std::str::from_utf8(text).unwrap_or("x");
        if text.starts_with('-') {
            text.parse::<i64>().is_ok()
        } else {
            text.parse::<u64>().is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time string writer escapes exactly what serde_json escapes (the same set
    /// and spelling as RFC 8785), whatever character sits at whatever position.
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let chars = (0u32..0x100)
            .chain([0x2028, 0xe000, 0xffff, 0x1f600])
            .filter_map(char::from_u32);
        for c in chars {
            for len in 0..20 {
                for at in 0..=len {
                    let mut s: String = "abcdefghijklmnopqrstu".chars().take(len).collect();
                    s.insert(at, c);
                    let mut out = Vec::new();
                    write_string(&s, &mut out);
                    assert_eq!(out, serde_json::to_vec(&s).unwrap(), "{s:?}");
                }
            }
        }
    }

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

    /// `true` from the scan must be a proof: the bytes are what the `Value` path writes.
    fn agrees(bytes: &[u8]) -> bool {
        let proved = scan_canonical_object(bytes, |_, _, _| {});
        let canonical = serde_json::from_slice::<Value>(bytes)
            .is_ok_and(|v| v.is_object() && canonical_json(&v) == bytes);
        !proved || canonical
    }

    #[test]
    fn the_scan_proves_only_canonical_objects() {
        let lines = [
            r#"{"a":[1,-2,true,false,null,{"b":"x\"\\\b\t\n\f\r\u0001\u001f/é😀"}],"c":{},"d":[],"e":18446744073709551615,"f":-9223372036854775808}"#,
            r#"{"agent_id":"a","argv":["bash","-c"],"hash_self":"00","seq":3,"type":"exec"}"#,
        ];
        for line in lines {
            assert!(
                scan_canonical_object(line.as_bytes(), |_, _, _| {}),
                "{line}"
            );
            assert!(agrees(line.as_bytes()), "{line}");
            // Every single-byte change, insertion and deletion.
            let b = line.as_bytes();
            for i in 0..b.len() {
                for c in [
                    b' ', b'"', b'\\', b'0', b'1', b'-', b'.', b'e', b'u', b'A', b'{', b',', b'}',
                    0x1f, 0x80,
                ] {
                    let mut m = b.to_vec();
                    m[i] = c;
                    assert!(agrees(&m), "{}", String::from_utf8_lossy(&m));
                    let mut m = b.to_vec();
                    m.insert(i, c);
                    assert!(agrees(&m), "{}", String::from_utf8_lossy(&m));
                }
                let mut m = b.to_vec();
                m.remove(i);
                assert!(agrees(&m), "{}", String::from_utf8_lossy(&m));
            }
        }
        for not in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":1}"#,
            r#"{"a":1.0}"#,
            r#"{"a":-0}"#,
            r#"{"a":"\u0041"}"#,
            r#"{"a":"\u000A"}"#,
            r#"{"a":"\/"}"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":1} "#,
            r#"[1]"#,
        ] {
            assert!(
                !scan_canonical_object(not.as_bytes(), |_, _, _| {}),
                "{not}"
            );
        }
        // UTF-8 is checked only for lines with a non-ASCII byte in a string: that check must
        // still refuse a broken sequence in a value, and a non-ASCII name is never proved.
        assert!(scan_canonical_object(
            "{\"a\":\"é😀\"}".as_bytes(),
            |_, _, _| {}
        ));
        for not in [
            &b"{\"a\":\"\xff\"}"[..],
            b"{\"a\":\"\xc3\"}",
            b"{\"a\":\"\xed\xa0\x80\"}",
            "{\"é\":1}".as_bytes(),
            b"{\"a\":1,\xc3\xa9}",
        ] {
            assert!(!scan_canonical_object(not, |_, _, _| {}), "{not:?}");
        }
    }

    /// Strings and names longer than the 8-byte words `json_ascii_run` tests at once: a quote,
    /// backslash, control or non-ASCII byte at any offset, in a name or a value, is seen.
    #[test]
    fn the_block_scan_sees_every_special_byte_in_long_strings() {
        let long = "a".repeat(100);
        for line in [
            format!(r#"{{"{long}":1,"hash_self":"{long}"}}"#),
            format!(r#"{{"hash_self":"{long}","z":["{long}"]}}"#),
        ] {
            assert!(
                scan_canonical_object(line.as_bytes(), |_, _, _| {}),
                "{line}"
            );
            let b = line.as_bytes();
            for i in 0..b.len() {
                for c in [b'"', b'\\', 0x00, 0x1f, 0x7f, 0x80, 0xff] {
                    let mut m = b.to_vec();
                    m[i] = c;
                    assert!(agrees(&m), "{}", String::from_utf8_lossy(&m));
                }
                let mut m = b.to_vec();
                m.splice(i..i, "é".bytes());
                assert!(agrees(&m), "{}", String::from_utf8_lossy(&m));
            }
        }
        assert_eq!(proctor_model::json_ascii_run(&[b'a'; 64]), 64);
        for at in 0..70 {
            let mut b = vec![b'a'; 70];
            b[at] = if at % 2 == 0 { b'\n' } else { 0xc3 };
            assert_eq!(proctor_model::json_ascii_run(&b), at);
        }
    }

    /// The word-at-a-time name order agrees with byte order, for names shorter and longer
    /// than a word, sharing prefixes, and near the end of the line (fewer than eight bytes).
    #[test]
    fn member_names_must_increase_in_byte_order() {
        let names = [
            "",
            "A",
            "_",
            "a",
            "ab",
            "abc",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefgi",
            "abcdefgh_",
            "b",
            "hash_prev",
            "hash_self",
            "kseq",
            "kslot",
            "z",
        ];
        for x in names {
            for y in names {
                for tail in ["1", r#""a long enough value""#] {
                    let line = format!(r#"{{"{x}":1,"{y}":{tail}}}"#);
                    let proved = scan_canonical_object(line.as_bytes(), |_, _, _| {});
                    assert_eq!(proved, x < y, "{line}");
                }
            }
        }
    }

    #[test]
    fn the_scan_names_top_level_members_only() {
        let line = br#"{"a":{"hash_self":"x"},"hash_self":"y","z":[{"q":1}]}"#;
        let mut seen = Vec::new();
        assert!(scan_canonical_object(line, |name, member, value| {
            seen.push((name.to_vec(), line[member].to_vec(), line[value].to_vec()));
        }));
        let names: Vec<&[u8]> = seen.iter().map(|s| s.0.as_slice()).collect();
        assert_eq!(names, [&b"a"[..], b"hash_self", b"z"]);
        assert_eq!(seen[1].1, br#""hash_self":"y""#);
        assert_eq!(seen[1].2, br#""y""#);
    }
}
