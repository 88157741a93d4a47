//! RFC 8785 (JSON Canonicalization Scheme) test vectors for `canonical_json`.

use proctor_evidence::canonical_json;
use proctor_testkit::evidence::Rng;
use serde_json::Value;

fn canon(text: &str) -> String {
    let v: Value = serde_json::from_str(text).expect("test input is JSON");
    String::from_utf8(canonical_json(&v)).expect("canonical JSON is UTF-8")
}

fn canon_f64(bits: u64) -> String {
    let v = Value::from(f64::from_bits(bits));
    assert!(v.is_number(), "{bits:016x} is not a finite double");
    String::from_utf8(canonical_json(&v)).expect("UTF-8")
}

/// RFC 8785 Appendix B: IEEE 754 double (as bits) and its canonical text.
#[test]
fn rfc8785_appendix_b_numbers() {
    let vectors: &[(u64, &str)] = &[
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];
    for &(bits, want) in vectors {
        assert_eq!(canon_f64(bits), want, "double {bits:016x}");
    }
}

#[test]
fn numbers_parsed_from_text() {
    assert_eq!(canon("1e21"), "1e+21");
    assert_eq!(canon("1E21"), "1e+21");
    assert_eq!(canon("1e20"), "100000000000000000000");
    assert_eq!(canon("-0"), "0");
    assert_eq!(canon("-0.0"), "0");
    assert_eq!(canon("5e-324"), "5e-324");
    assert_eq!(canon("4.50"), "4.5");
    assert_eq!(canon("2e-3"), "0.002");
    assert_eq!(canon("1e-7"), "1e-7");
    assert_eq!(canon("100000000000000000000000"), "1e+23");
    assert_eq!(canon("[1.0, -1.5, 3]"), "[1,-1.5,3]");
}

/// Documented deviation: integers above 2^53 keep their exact digits (nanosecond timestamps).
#[test]
fn large_integers_keep_exact_digits() {
    assert_eq!(canon("1795422529123456789"), "1795422529123456789");
    assert_eq!(canon("18446744073709551615"), "18446744073709551615");
    assert_eq!(canon("-9223372036854775808"), "-9223372036854775808");
    // Up to 2^53 the exact digits are what RFC 8785 writes too.
    assert_eq!(canon("9007199254740991"), "9007199254740991");
}

/// RFC 8785 §3.2.2 example.
#[test]
fn rfc8785_main_example() {
    let input = r#"{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }"#;
    let want = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
    assert_eq!(canon(input), want);
}

/// RFC 8785 §3.2.3: keys sort by UTF-16 code units (the emoji, a surrogate pair starting
/// 0xD83D, sorts before U+FB33 although its code point is larger).
#[test]
fn rfc8785_key_ordering_by_utf16() {
    let input = r#"{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    let want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
    assert_eq!(canon(input), want);
}

#[test]
fn nested_objects_are_sorted_and_whitespace_removed() {
    assert_eq!(
        canon(r#" { "b" : [ { "z":1, "a" : {"y":null,"x":[]} } ], "a" : "" } "#),
        r#"{"a":"","b":[{"a":{"x":[],"y":null},"z":1}]}"#
    );
}

#[test]
fn strings_escape_only_controls_quote_and_backslash() {
    assert_eq!(
        canon(r#""\u0000\u0008\t\n\u000b\f\r\u001f\"\\\/\u007f\u2028\u00e9""#),
        "\"\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f\\\"\\\\/\u{7f}\u{2028}\u{e9}\""
    );
}

/// Canonicalisation is idempotent: the canonical text parses back to the same canonical text.
#[test]
fn canonical_form_is_a_fixed_point() {
    for text in [
        r#"{"n":[0.1,1e300,-2.5e-8,123456789012345678,3.0],"s":"\u0001é😀"}"#,
        r#"[[],{},"",false]"#,
    ] {
        let once = canon(text);
        assert_eq!(canon(&once), once, "input {text}");
    }
}

/// An independent implementation of RFC 8785 in ECMAScript, the language the RFC defines its
/// number and string rules by: `JSON.stringify` of a number is `Number.prototype.toString`, of a
/// string is the RFC's escaping, and `Array.prototype.sort` compares UTF-16 code units.
const NODE_JCS: &str = r#"
const canon = (v) => {
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']';
  if (v !== null && typeof v === 'object')
    return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canon(v[k])).join(',') + '}';
  return JSON.stringify(v);
};
const lines = require('fs').readFileSync(0, 'utf8').split('\n').filter((l) => l.length > 0);
process.stdout.write(lines.map((l) => canon(JSON.parse(l)) + '\n').join(''));
"#;

/// A finite double: random bits (every exponent, subnormals), or a short decimal.
fn random_f64(rng: &mut Rng) -> f64 {
    loop {
        let f = match rng.below(3) {
            0 => f64::from_bits(rng.next()),
            1 => (rng.below(2_000_000) as f64 - 1_000_000.0) / 10f64.powi(rng.below(12) as i32),
            _ => 10f64.powi(rng.below(640) as i32 - 330) * (1.0 + rng.below(9) as f64),
        };
        if f.is_finite() {
            return f;
        }
    }
}

fn random_string(rng: &mut Rng) -> String {
    // Controls, the escapes, ASCII, the BMP above the surrogates (U+E000..U+FFFF sorts after
    // non-BMP in UTF-16 but before it in UTF-8), U+2028, and characters above U+FFFF.
    const PICKS: &[(u32, u32)] = &[
        (0x00, 0x20),
        (0x20, 0x7f),
        (0x7f, 0x100),
        (0x2028, 0x202a),
        (0xe000, 0x10000),
        (0x1_0000, 0x11_0000),
    ];
    (0..rng.below(6))
        .filter_map(|_| {
            let (lo, hi) = PICKS[rng.below(PICKS.len())];
            char::from_u32(lo + rng.below((hi - lo) as usize) as u32)
        })
        .collect()
}

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    let kinds = if depth >= 4 { 5 } else { 7 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 1),
        2 => Value::from(random_f64(rng)),
        // Integers within ±2^53, where ECMAScript and the exact-digit rule agree.
        3 => Value::from((rng.next() % (1 << 54)) as i64 - (1 << 53)),
        4 => Value::from(random_string(rng)),
        5 => Value::Array(
            (0..rng.below(5))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(6))
                .map(|_| (random_string(rng), random_value(rng, depth + 1)))
                .collect(),
        ),
    }
}

#[test]
fn agrees_with_an_ecmascript_implementation_on_random_values() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let values: Vec<Value> = (0..5000).map(|_| random_value(&mut rng, 0)).collect();
    let mut input = Vec::new();
    for v in &values {
        // serde_json writes doubles in shortest round-trip form, so node reads the same double.
        serde_json::to_writer(&mut input, v).expect("serialising a test value");
        input.push(b'\n');
    }
    let mut child = Command::new("node")
        .args(["-e", NODE_JCS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run node (Debian: apt-get install nodejs), the independent JCS: {e}")
        });
    let mut stdin = child.stdin.take().expect("node stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("waiting for node");
    writer
        .join()
        .expect("writer thread")
        .expect("writing to node");
    assert!(out.status.success(), "node failed: {:?}", out.status);
    let theirs = String::from_utf8(out.stdout).expect("node writes UTF-8");
    let theirs: Vec<&str> = theirs.split_terminator('\n').collect();
    assert_eq!(
        theirs.len(),
        values.len(),
        "node answered a different count"
    );
    for (i, (v, t)) in values.iter().zip(theirs).enumerate() {
        let ours = String::from_utf8(canonical_json(v)).expect("canonical JSON is UTF-8");
        assert_eq!(ours, t, "case {i} differs from ECMAScript; value {v}");
    }
}
