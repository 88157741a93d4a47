//! Real exchanges recorded from demo/llm_stub.py (tests/data/stub/README.md), fed split at every
//! boundary, truncated, and redacted.

use proctor_intent::{LlmTracker, Redactor};
use proctor_model::{Event, TlsDirection};
use std::path::Path;

const OPENAI_KEY: &str = "sk-proj-stubSECRETstubSECRETstubSECRET0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-api03-stubSECRETstubSECRETstubSECRET-0123456789";
const ARGS: &str = r#"{"command": "cat ~/.aws/credentials"}"#;

fn load(name: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stub");
    let read = |ext: &str| {
        let p = dir.join(format!("{name}.{ext}"));
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    (read("send"), read("recv"))
}

/// Feeds one connection's streams as a client would produce them (request, then its response),
/// splitting each message's bytes at `at` and feeding the rest of the stream in `step`-byte calls.
fn replay(send: &[u8], recv: &[u8], at: usize, step: usize) -> Vec<Event> {
    let mut t = LlmTracker::new();
    let mut out = Vec::new();
    for (dir, data) in [(TlsDirection::Send, send), (TlsDirection::Recv, recv)] {
        let at = at.min(data.len());
        out.extend(t.feed(9, 0xabc, dir, &data[..at], false));
        for c in data[at..].chunks(step.max(1)) {
            out.extend(t.feed(9, 0xabc, dir, c, false));
        }
    }
    out
}

fn check(name: &str, api: &str, exchanges: usize, streamed: bool, expect_args: &str) {
    let (send, recv) = load(name);
    let longest = send.len().max(recv.len());
    for at in 0..=longest {
        // Every split point with the rest in one call; the small-call variants are slow in debug
        // builds, so they are sampled.
        for step in [usize::MAX, 1, 7, 500] {
            let sample = match step {
                1 => 97,
                7 | 500 => 11,
                _ => 1,
            };
            if at % sample != 0 {
                continue;
            }
            let ev = replay(&send, &recv, at, step);
            let reqs: Vec<_> = ev
                .iter()
                .filter_map(|e| match e {
                    Event::LlmRequest(r) => Some(r),
                    _ => None,
                })
                .collect();
            let resps: Vec<_> = ev
                .iter()
                .filter_map(|e| match e {
                    Event::LlmResponse(r) => Some(r),
                    _ => None,
                })
                .collect();
            let ctx = format!("{name} at {at} step {step}");
            assert_eq!(reqs.len(), exchanges, "{ctx}: {ev:?}");
            assert_eq!(resps.len(), exchanges, "{ctx}: {ev:?}");
            for r in &reqs {
                assert_eq!(r.api, api, "{ctx}");
                assert_eq!(r.conn, 0xabc);
                assert_eq!(
                    r.host.as_deref().map(|h| h.starts_with("127.0.0.1")),
                    Some(true),
                    "{ctx}"
                );
                assert_eq!(r.tools, ["run_shell"], "{ctx}");
                assert_eq!(r.messages, 1, "{ctx}");
                assert_eq!(r.stream, streamed, "{ctx}");
                assert!(r.model.is_some(), "{ctx}");
            }
            for r in &resps {
                assert_eq!(r.api, api, "{ctx}");
                assert_eq!(r.status, 200, "{ctx}");
                assert_eq!(r.streamed, streamed, "{ctx}");
                assert_eq!(r.tool_calls.len(), 1, "{ctx}: {r:?}");
                assert_eq!(r.tool_calls[0].name, "run_shell", "{ctx}");
                assert_eq!(r.tool_calls[0].arguments, expect_args, "{ctx}");
                assert_eq!(r.text_bytes, 36, "{ctx}");
                assert!(r.finish_reason.is_some(), "{ctx}");
                assert!(r.bytes > 0);
            }
        }
    }
}

#[test]
fn openai_keepalive() {
    check("openai-keepalive", "openai-chat", 2, false, ARGS);
}

#[test]
fn openai_stream() {
    check("openai-stream", "openai-chat", 1, true, ARGS);
}

#[test]
fn anthropic_keepalive() {
    check(
        "anthropic-keepalive",
        "anthropic-messages",
        2,
        false,
        r#"{"command":"cat ~/.aws/credentials"}"#,
    );
}

#[test]
fn anthropic_stream() {
    check(
        "anthropic-stream",
        "anthropic-messages",
        1,
        true,
        r#"{"command":"cat ~/.aws/credentials"}"#,
    );
}

#[test]
fn responses_keepalive() {
    check("responses-keepalive", "openai-responses", 2, false, ARGS);
}

#[test]
fn gzip_response() {
    check("openai-gzip", "openai-chat", 1, false, ARGS);
}

#[test]
fn redacted_streams_hold_no_key() {
    let r = Redactor::new();
    for name in [
        "openai-keepalive",
        "openai-stream",
        "anthropic-keepalive",
        "anthropic-stream",
        "responses-keepalive",
        "openai-gzip",
    ] {
        let (send, _) = load(name);
        let key = if name.starts_with("anthropic") {
            ANTHROPIC_KEY
        } else {
            OPENAI_KEY
        };
        assert!(String::from_utf8_lossy(&send).contains(key));
        // As captured: one call per message part, cut anywhere.
        for at in 0..send.len() {
            for part in [&send[..at], &send[at..]] {
                let (out, _) = r.redact(part);
                let s = String::from_utf8_lossy(&out);
                assert!(
                    !s.contains(&key[key.len() - 20..]),
                    "{name} split at {at}: {s}"
                );
            }
        }
        let (out, n) = r.redact(&send);
        let exchanges = if name.ends_with("keepalive") { 2 } else { 1 };
        assert_eq!(n, exchanges, "{name}: {}", String::from_utf8_lossy(&out));
    }
}

#[test]
fn truncated_call_drops_that_exchange_only() {
    let (send, recv) = load("openai-keepalive");
    // Second response starts after the first "HTTP/1.1" at index > 0.
    let second = recv.windows(8).rposition(|w| w == b"HTTP/1.1").unwrap();
    let mut t = LlmTracker::new();
    let mut ev = t.feed(1, 1, TlsDirection::Send, &send, false);
    assert_eq!(ev.len(), 2);
    // The first response is cut 40 bytes into its body; the rest of it arrives in a later call.
    let cut = second - 40;
    ev = t.feed(1, 1, TlsDirection::Recv, &recv[..cut], true);
    assert!(ev.is_empty(), "{ev:?}");
    ev = t.feed(1, 1, TlsDirection::Recv, &recv[cut + 10..second], false);
    assert!(ev.is_empty(), "{ev:?}");
    ev = t.feed(1, 1, TlsDirection::Recv, &recv[second..], false);
    match &ev[..] {
        [Event::LlmResponse(r)] => assert_eq!(r.tool_calls[0].name, "run_shell"),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.stats().llm_broken, 1);
}
