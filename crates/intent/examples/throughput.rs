//! Throughput of redaction and of LLM exchange parsing, on 64 KiB bodies.
//!
//! `cargo run --release -p proctor-intent --example throughput`

use proctor_intent::{LlmTracker, Redactor};
use proctor_model::TlsDirection;
use std::hint::black_box;
use std::time::Instant;

/// A chat request body of about `size` bytes: prose in messages, a few secrets, a tool list.
fn body(size: usize, secrets: bool) -> Vec<u8> {
    let sentence = "The agent reads the repository, runs the tests and reports what failed; \
                    then it proposes a patch with a short explanation of the root cause. ";
    let mut messages = Vec::new();
    let mut n = 0;
    while n < size {
        let mut content = sentence.repeat(8);
        if secrets && messages.len() % 7 == 3 {
            content.push_str("export OPENAI_API_KEY=sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 ");
        }
        n += content.len() + 40;
        messages.push(serde_json::json!({"role": "user", "content": content}));
    }
    serde_json::to_vec(&serde_json::json!({
        "model": "gpt-4o", "stream": false, "messages": messages,
        "tools": [{"type": "function", "function": {"name": "run_shell", "parameters": {}}}],
    }))
    .unwrap()
}

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn main() {
    let r = Redactor::new();
    for (label, b) in [
        ("clean", body(64 * 1024, false)),
        ("with secrets", body(64 * 1024, true)),
    ] {
        let iters = 400;
        let t = Instant::now();
        let mut n = 0;
        for _ in 0..iters {
            n += black_box(r.redact(black_box(&b))).1;
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "redact {label}: {} bytes x {iters}: {:.0} MB/s ({} replacements per body)",
            b.len(),
            mbps(b.len() * iters, s),
            n / iters as u32
        );
    }

    // Parsing: an LLM request of 64 KiB and its streamed response, fed as 16 KiB TLS records.
    let b = body(64 * 1024, false);
    let mut req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Length: {}\r\n\r\n",
        b.len()
    )
    .into_bytes();
    req.extend_from_slice(&b);
    let mut sse = String::new();
    while sse.len() < 64 * 1024 {
        sse.push_str(r#"data: {"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello there, "}}]}"#);
        sse.push_str("\n\n");
    }
    sse.push_str("data: [DONE]\n\n");
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n",
        sse.len()
    )
    .into_bytes();
    resp.extend_from_slice(sse.as_bytes());
    let mut t = LlmTracker::new();
    let iters = 200;
    let start = Instant::now();
    let mut events = 0;
    for _ in 0..iters {
        for c in req.chunks(16 * 1024) {
            events += t.feed(1, 1, TlsDirection::Send, c, false).len();
        }
        for c in resp.chunks(16 * 1024) {
            events += t.feed(1, 1, TlsDirection::Recv, c, false).len();
        }
    }
    let s = start.elapsed().as_secs_f64();
    assert_eq!(events, 2 * iters);
    println!(
        "parse LLM exchange (64 KiB JSON request + 64 KiB SSE response, 16 KiB calls): {:.0} MB/s",
        mbps((req.len() + resp.len()) * iters, s)
    );

    // Non-LLM traffic is only framed.
    let mut other = format!(
        "POST /upload HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        b.len()
    )
    .into_bytes();
    other.extend_from_slice(&b);
    let start = Instant::now();
    for _ in 0..iters * 10 {
        for c in other.chunks(16 * 1024) {
            black_box(t.feed(1, 2, TlsDirection::Send, c, false));
        }
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "frame non-LLM HTTP (64 KiB body, 16 KiB calls): {:.0} MB/s",
        mbps(other.len() * iters * 10, s)
    );
}
