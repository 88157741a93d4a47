//! Secret redaction for captured plaintext.
//!
//! One compiled [`regex::bytes::Regex`] (an alternation of every rule below, so one pass over the
//! data) finds secrets in arbitrary bytes. Every rule has exactly one capture group: the secret
//! value. The bytes around it (a header name, `Bearer `, a key's well-known prefix such as
//! `sk-ant-api03-`) stay, so a redacted record still says what was there; the value becomes
//! [`MARKER`].
//!
//! Cost: one forward pass of the lazy DFA over the data when nothing matches. Each match also
//! costs a reverse scan to find where it starts (the reversed alternation runs back until every
//! rule's value class is exhausted, at most to the previous match), so data full of secrets costs
//! up to twice as much; measured with `examples/throughput.rs`.
//!
//! Captured calls are cut at a per-call bound, so a secret may end exactly where the data ends:
//! every token rule also accepts a shorter value when it runs up to the end of the data (`\z`),
//! and rules whose value runs to the end of the line simply take what is there.
//!
//! The other end: when a call starts inside a token (a header split across two `SSL_write`s), a
//! run of 20 or more token characters at the very start of the data, ending a line or a JSON
//! string, is taken as the tail of a secret. Shorter tails, or tails that run on into ordinary
//! text, are not recognisable without the previous call (the redactor is stateless by design).

use regex::bytes::{Regex, RegexBuilder};
use regex_automata::{meta, util::syntax, Anchored, Input};
use std::sync::OnceLock;

/// What a secret value is replaced with.
pub const MARKER: &[u8] = b"[REDACTED]";

/// The rules, in priority order (at one position the first that matches wins; an earlier
/// position always wins). Each has exactly one capturing group, the value to replace; every other
/// group is `(?:...)`. Compiled with Unicode off, so classes are ASCII and `.` is any byte.
const RULES: &[(&str, &str)] = &[
    // HTTP headers, at the start of a line: the whole value goes (keeping an auth scheme word).
    (
        "authorization-header",
        r"(?im:^(?:proxy-)?authorization[ \t]*:[ \t]*(?:[a-z][a-z0-9_-]*[ \t]+)?([^\r\n]+))",
    ),
    (
        "cookie-header",
        r"(?im:^(?:set-)?cookie[ \t]*:[ \t]*([^\r\n]+))",
    ),
    (
        // x-api-key, api-key, x-goog-api-key, x-auth-token, x-client-secret, ... (rate-limit
        // headers that merely mention tokens are let through in code, see `Redactor::redact`).
        "secret-header",
        r"(?im:^[a-z0-9_-]*(?:api[-_]?key|token|secret|password|passwd|credential|session-?id)[a-z0-9_-]*[ \t]*:[ \t]*([^\r\n]+))",
    ),
    // PEM private keys: keep the BEGIN/END lines, drop the body (to the end of data if cut).
    (
        "private-key",
        r"(?:-----BEGIN[A-Z ]*PRIVATE KEY-----((?s:.)+?)(?:-----END[A-Z ]*PRIVATE KEY-----|\z))",
    ),
    // JSON string fields with a secret-sounding name, also inside an escaped JSON string
    // (tool-call arguments are JSON text inside JSON).
    (
        "json-field",
        r#"(?i:\\?"[a-z0-9_.-]*(?:password|passwd|secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|refresh[_-]?token|id[_-]?token|private[_-]?key|credentials?|token|authorization|cookie)\\?"[ \t]*:[ \t]*\\?"((?:[^"\\]|\\[^"])+))"#,
    ),
    // Bearer tokens anywhere (curl -H arguments, logs, ...).
    (
        "bearer",
        r"(?i:\bbearer[ \t]+([a-z0-9._~+/=-]{8,}|[a-z0-9._~+/=-]+\z))",
    ),
    // user:password@ in URLs (at the end of the data the `@` may be cut off: a host:port there
    // loses its port, a price worth paying).
    (
        "url-password",
        r"(?i:\b[a-z][a-z0-9+.-]*://[^/\s:@]+:([^/\s:@]+)(?:@|\z))",
    ),
    // Well-known key formats; the type prefix stays.
    (
        "anthropic-openai-key",
        r"\bsk-(?:ant-(?:api|admin|oat)[0-9]*-|proj-|svcacct-|admin-|None-)?([A-Za-z0-9_-]{16,}|[A-Za-z0-9_-]+\z)",
    ),
    (
        "aws-access-key-id",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)([A-Z0-9]{16}\b|[A-Z0-9]+\z)",
    ),
    (
        "github-token",
        r"\b(?:gh[pousr]_|github_pat_)([A-Za-z0-9_]{20,}|[A-Za-z0-9_]+\z)",
    ),
    (
        "slack-token",
        r"\bxox[abprs]-([A-Za-z0-9-]{8,}|[A-Za-z0-9-]+\z)",
    ),
    (
        "google-api-key",
        r"\bAIza([0-9A-Za-z_-]{30,}|[0-9A-Za-z_-]+\z)",
    ),
    (
        "stripe-key",
        r"\b[rs]k_(?:live|test)_([A-Za-z0-9]{10,}|[A-Za-z0-9]+\z)",
    ),
    (
        "huggingface-token",
        r"\bhf_([A-Za-z0-9]{30,}|[A-Za-z0-9]+\z)",
    ),
    (
        "jwt",
        r"\b(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|eyJ[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){0,2}\z)",
    ),
    // KEY=value / key: value in env files, INI (aws_secret_access_key = ...), query strings
    // (`token=` only as the whole last word, so `max_tokens=100` stays).
    (
        "key-value",
        r#"(?i:\b[a-z0-9_.-]*(?:(?:password|passwd|secret|api[_-]?key|apikey|private[_-]?key)[a-z0-9_]*|token)["']?[ \t]*[=:][ \t]*["']?([^\s"'&,;<>]+))"#,
    ),
    // The tail of a token whose start was in the previous call: a long token-like run at the very
    // start of the data that ends a header line or a JSON string.
    // Last, so that a rule that names what it found wins at the same position.
    (
        "leading-fragment",
        r#"\A([A-Za-z0-9_+/.-]{20,}={0,2})(?:\r?\n|"|\z)"#,
    ),
];

struct Compiled {
    /// All rules as one alternation: finds where each secret is, in one pass.
    all: Regex,
    /// Each rule alone, to find the value inside a match found by `all`. Running the capture
    /// engine of the big alternation costs tens of microseconds per match; an anchored search of
    /// a small one at a known position is cheap.
    rules: Vec<meta::Regex>,
}

fn compiled() -> &'static Compiled {
    static C: OnceLock<Compiled> = OnceLock::new();
    C.get_or_init(|| {
        let pattern = RULES.iter().map(|(_, p)| *p).collect::<Vec<_>>().join("|");
        let all = RegexBuilder::new(&pattern)
            .unicode(false)
            // The alternation is large; the default lazy-DFA cache would thrash on 64 KiB bodies.
            .dfa_size_limit(8 << 20)
            .build()
            .expect("the redaction rules are valid regexes (checked by tests)");
        assert_eq!(all.captures_len(), RULES.len() + 1, "one group per rule");
        let rules = RULES
            .iter()
            .map(|(name, p)| {
                let re = meta::Builder::new()
                    .syntax(syntax::Config::new().unicode(false).utf8(false))
                    .configure(meta::Config::new().utf8_empty(false))
                    .build(p)
                    .unwrap_or_else(|e| panic!("redaction rule {name}: {e}"));
                assert_eq!(re.captures_len(), 2, "rule {name} has one group");
                re
            })
            .collect();
        Compiled { all, rules }
    })
}

/// Replaces secrets in captured plaintext with [`MARKER`]. Cheap to create: the rules are compiled
/// once per process and shared.
#[derive(Clone, Copy)]
pub struct Redactor {
    c: &'static Compiled,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").finish_non_exhaustive()
    }
}

impl Redactor {
    pub fn new() -> Self {
        Redactor { c: compiled() }
    }

    /// The names of the rules, in priority order (for documentation and tests).
    pub fn rule_names() -> impl Iterator<Item = &'static str> {
        RULES.iter().map(|(n, _)| *n)
    }

    /// `data` with every secret value replaced by [`MARKER`], and how many were replaced.
    pub fn redact(&self, data: &[u8]) -> (Vec<u8>, u32) {
        let (out, spans) = self.redact_spans(data);
        (out, spans.len() as u32)
    }

    /// Like [`Redactor::redact`], also naming the rule behind each replacement (for tests and
    /// diagnostics).
    pub fn redact_explained(&self, data: &[u8]) -> (Vec<u8>, Vec<&'static str>) {
        self.redact_spans(data)
    }

    fn redact_spans(&self, data: &[u8]) -> (Vec<u8>, Vec<&'static str>) {
        let mut out = Vec::new();
        let mut names = Vec::new();
        let mut last = 0;
        for m in self.c.all.find_iter(data) {
            let Some((i, v)) = self.value_in(data, m.range()) else {
                continue;
            };
            let name = RULES[i].0;
            if name == "secret-header" {
                // x-ratelimit-remaining-tokens and friends are counters, not credentials.
                let header = &data[m.start()..v.start];
                if contains_ignore_case(header, b"ratelimit")
                    || contains_ignore_case(header, b"rate-limit")
                {
                    continue;
                }
            }
            if names.is_empty() {
                out.reserve(data.len() + MARKER.len());
            }
            out.extend_from_slice(&data[last..v.start]);
            out.extend_from_slice(MARKER);
            last = v.end;
            names.push(name);
        }
        if names.is_empty() {
            return (data.to_vec(), names);
        }
        out.extend_from_slice(&data[last..]);
        (out, names)
    }

    /// The rule behind the match `span` of the alternation (the first in priority order that
    /// matches there, as in the alternation) and the span of its value. The search is limited to
    /// `span` (assertions such as `\b` and `\z` still see the whole haystack), so a rule that does
    /// not match costs a few bytes of scanning, not the rest of the data.
    fn value_in(
        &self,
        data: &[u8],
        span: std::ops::Range<usize>,
    ) -> Option<(usize, std::ops::Range<usize>)> {
        let input = Input::new(data).span(span).anchored(Anchored::Yes);
        let (i, re) = self
            .c
            .rules
            .iter()
            .enumerate()
            .find(|(_, re)| re.is_match(input.clone()))?;
        let mut caps = re.create_captures();
        re.search_captures(&input, &mut caps);
        caps.get_group(1).map(|g| (i, g.range()))
    }
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(s: &str) -> (String, Vec<&'static str>) {
        let (o, r) = Redactor::new().redact_explained(s.as_bytes());
        (String::from_utf8(o).unwrap(), r)
    }

    #[test]
    fn rules_compile_with_one_group_each() {
        let _ = Redactor::new();
        assert_eq!(Redactor::rule_names().count(), RULES.len());
    }

    #[test]
    fn headers_keep_their_names() {
        let req = "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nAuthorization: Bearer sk-abcdefghijklmnopqrstuvwxyz123456\r\nx-api-key: sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\nCookie: session=abc123; other=def\r\nx-goog-api-key: AIzaSyA-1234567890abcdefghijklmnopqrstu\r\nX-Auth-Token: opaque-value-1\r\nContent-Length: 2\r\n\r\n{}";
        let (o, rules) = red(req);
        assert!(o.contains("Authorization: Bearer [REDACTED]\r\n"), "{o}");
        assert!(o.contains("x-api-key: [REDACTED]\r\n"), "{o}");
        assert!(
            o.contains("Proxy-Authorization: Basic [REDACTED]\r\n"),
            "{o}"
        );
        assert!(o.contains("Cookie: [REDACTED]\r\n"), "{o}");
        assert!(o.contains("x-goog-api-key: [REDACTED]\r\n"), "{o}");
        assert!(o.contains("X-Auth-Token: [REDACTED]\r\n"), "{o}");
        assert!(
            o.contains("Host: api.openai.com\r\nContent-Length: 2")
                || o.contains("Content-Length: 2\r\n\r\n{}")
        );
        assert_eq!(rules.len(), 6, "{rules:?}");
    }

    #[test]
    fn rate_limit_headers_stay() {
        let (o, r) = red("HTTP/1.1 200 OK\r\nx-ratelimit-remaining-tokens: 149984\r\nanthropic-ratelimit-tokens-limit: 400000\r\n\r\n");
        assert!(r.is_empty(), "{o}");
    }
}
