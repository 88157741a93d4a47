//! Throughput of redaction and of LLM exchange parsing, on 64 KiB bodies.
//!
//! `cargo run --release -p proctor-intent --example throughput`
//!
//! Times are this thread's CPU time, so other load on the machine shows less (caches still
//! suffer); run it a few times.

use proctor_intent::{LlmTracker, Redactor};
use proctor_model::TlsDirection;
use std::hint::black_box;

/// CPU time of this thread: the machine is shared, and wall time would count other work.
#[derive(Clone, Copy)]
struct Instant(f64);

impl Instant {
    fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through a valid pointer.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime");
        Instant(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    fn elapsed(&self) -> Elapsed {
        Elapsed(Instant::now().0 - self.0)
    }
}

struct Elapsed(f64);

impl Elapsed {
    fn as_secs_f64(&self) -> f64 {
        self.0
    }
}

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
    for (label, dir, data) in [
        ("64 KiB JSON request", TlsDirection::Send, &req),
        ("64 KiB SSE response", TlsDirection::Recv, &resp),
    ] {
        if dir == TlsDirection::Recv {
            // Each response needs its request.
            let start = Instant::now();
            let mut events = 0;
            for _ in 0..iters {
                t.feed(1, 1, TlsDirection::Send, &req, false);
                for c in data.chunks(16 * 1024) {
                    events += t.feed(1, 1, dir, c, false).len();
                }
            }
            assert_eq!(events, iters);
            let s = start.elapsed().as_secs_f64();
            println!(
                "parse {label} (+ its request), 16 KiB calls: {:.0} MB/s",
                mbps((req.len() + data.len()) * iters, s)
            );
        } else {
            let start = Instant::now();
            let mut events = 0;
            for _ in 0..iters {
                for c in data.chunks(16 * 1024) {
                    events += t.feed(1, 1, dir, c, false).len();
                }
            }
            assert_eq!(events, iters);
            println!(
                "parse {label}, 16 KiB calls: {:.0} MB/s",
                mbps(data.len() * iters, start.elapsed().as_secs_f64())
            );
        }
    }

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
