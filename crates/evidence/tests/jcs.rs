//! RFC 8785 (JSON Canonicalization Scheme) test vectors for `canonical_json`.

use proctor_evidence::canonical_json;
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
