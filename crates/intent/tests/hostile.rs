//! Hostile and broken input: random bytes, mutated real exchanges, truncation at every point,
//! huge bodies and many connections. Nothing may panic and memory stays bounded.

use proctor_intent::{LlmTracker, Redactor, MAX_CONNS};
use proctor_model::{Event, TlsDirection};
use std::path::Path;

/// xorshift64*: deterministic, so a failure is reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn load(name: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stub");
    let read = |ext: &str| std::fs::read(dir.join(format!("{name}.{ext}"))).unwrap();
    (read("send"), read("recv"))
}

const NAMES: [&str; 6] = [
    "openai-keepalive",
    "openai-stream",
    "anthropic-keepalive",
    "anthropic-stream",
    "responses-keepalive",
    "openai-gzip",
];

const NASTY: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"Content-Length: 18446744073709551615\r\n",
    b"Content-Length: -1\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"ffffffffffffffff\r\n",
    b"0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"POST /v1/messages HTTP/1.1\r\n",
    b"data: {\"type\":\"content_block_start\",\"index\":99999999999,\"content_block\":{\"type\":\"tool_use\",\"name\":\"x\"}}\n\n",
    b"Content-Encoding: gzip\r\n",
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
    b"Content-Type: text/event-stream\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
];

fn mutate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(d.len() + 1);
        match rng.below(5) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 => {
                let n = NASTY[rng.below(NASTY.len())];
                d.splice(at..at, n.iter().copied());
            }
            2 => {
                let end = (at + rng.below(64)).min(d.len());
                d.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(256)).min(d.len());
                let copy = d[at..end].to_vec();
                let to = rng.below(d.len() + 1);
                d.splice(to..to, copy);
            }
            _ => {
                let n = rng.below(32);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                d.splice(at..at, junk);
            }
        }
    }
    d
}

fn feed_randomly(
    t: &mut LlmTracker,
    rng: &mut Rng,
    conn: u64,
    dir: TlsDirection,
    data: &[u8],
) -> Vec<Event> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(3000));
        let truncated = rng.below(20) == 0;
        out.extend(t.feed(1, conn, dir, &rest[..n], truncated));
        rest = &rest[n..];
    }
    out
}

#[test]
fn mutated_exchanges_never_panic() {
    let r = Redactor::new();
    // INTENT_FUZZ_SEEDS=100000 for a longer run (release build advised).
    let seeds = std::env::var("INTENT_FUZZ_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300u64);
    for seed in 1..=seeds {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (send, recv) = load(NAMES[rng.below(NAMES.len())]);
        let send = mutate(&mut rng, &send);
        let recv = mutate(&mut rng, &recv);
        let mut t = LlmTracker::new();
        // Interleave the directions as a real client would, but with random call sizes.
        let mut ev = feed_randomly(&mut t, &mut rng, seed, TlsDirection::Send, &send);
        ev.extend(feed_randomly(
            &mut t,
            &mut rng,
            seed,
            TlsDirection::Recv,
            &recv,
        ));
        for e in &ev {
            if let Event::LlmResponse(resp) = e {
                assert!(resp.tool_calls.len() <= 64, "seed {seed}");
                for c in &resp.tool_calls {
                    assert!(c.arguments.len() <= 4096 + 64, "seed {seed}");
                }
            }
        }
        let _ = r.redact(&send);
        let _ = r.redact(&recv);
    }
}

#[test]
fn random_bytes_never_panic() {
    let r = Redactor::new();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut t = LlmTracker::new();
    for i in 0..2000u64 {
        let n = rng.below(2048);
        // Bias towards HTTP-ish bytes so the parser gets past the first line sometimes.
        let alphabet =
            b"POST /v1/messages HTTP/1.1\r\n:0123456789abcdefContent-Length chunked{}\"data: ";
        let data: Vec<u8> = (0..n)
            .map(|_| {
                if rng.below(3) == 0 {
                    rng.next() as u8
                } else {
                    alphabet[rng.below(alphabet.len())]
                }
            })
            .collect();
        let dir = if rng.below(2) == 0 {
            TlsDirection::Send
        } else {
            TlsDirection::Recv
        };
        let _ = t.feed((i % 5) as u32, i % 7, dir, &data, rng.below(10) == 0);
        let _ = r.redact(&data);
        if i % 500 == 0 {
            t.close_pid((i % 5) as u32);
        }
    }
}

#[test]
fn truncation_at_every_point_resynchronises() {
    for name in [
        "openai-keepalive",
        "anthropic-keepalive",
        "responses-keepalive",
    ] {
        let (send, recv) = load(name);
        let second = recv.windows(9).rposition(|w| w == b"HTTP/1.1 ").unwrap();
        for cut in 0..second {
            let mut t = LlmTracker::new();
            assert_eq!(t.feed(1, 1, TlsDirection::Send, &send, false).len(), 2);
            // The first response is captured up to `cut` only (its call was truncated); the next
            // call carries the second response.
            let ev = t.feed(1, 1, TlsDirection::Recv, &recv[..cut], true);
            assert!(ev.is_empty(), "{name} cut {cut}: {ev:?}");
            let ev = t.feed(1, 1, TlsDirection::Recv, &recv[second..], false);
            assert_eq!(ev.len(), 1, "{name} cut {cut}: {ev:?}");
        }
        // The same on the request side: the first request cut, the second still understood and
        // its response paired with it. The first response is matched to the lost request: it is
        // reported when that request's head (hence its endpoint) had been seen whole.
        let req2 = send.windows(5).rposition(|w| w == b"POST ").unwrap();
        let head1 = send.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        for cut in 0..req2 {
            let mut t = LlmTracker::new();
            let ev = t.feed(1, 1, TlsDirection::Send, &send[..cut], true);
            assert!(ev.is_empty(), "{name} cut {cut}");
            let ev = t.feed(1, 1, TlsDirection::Send, &send[req2..], false);
            assert_eq!(ev.len(), 1, "{name} cut {cut}: {ev:?}");
            let ev = t.feed(1, 1, TlsDirection::Recv, &recv, false);
            let expect = if cut >= head1 { 2 } else { 1 };
            assert_eq!(ev.len(), expect, "{name} request cut {cut}: {ev:?}");
        }
    }
}

#[test]
fn many_connections_are_bounded() {
    let mut t = LlmTracker::new();
    let head = b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100000\r\n\r\n{\"model\":";
    for conn in 0..(MAX_CONNS as u64 * 4) {
        t.feed(conn as u32 % 3, conn, TlsDirection::Send, head, false);
    }
    assert!(t.connections() <= MAX_CONNS);
    assert_eq!(t.stats().evicted, MAX_CONNS as u64 * 3);
    t.close_pid(0);
    t.close_pid(1);
    t.close_pid(2);
    assert_eq!(t.connections(), 0);
}

#[test]
fn huge_body_is_summarised_from_its_start() {
    let mut t = LlmTracker::new();
    let filler = "x".repeat(64 * 1024);
    let mut body =
        String::from(r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":""#);
    for _ in 0..48 {
        body.push_str(&filler);
    }
    body.push_str(r#""}]}"#);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut ev = t.feed(1, 1, TlsDirection::Send, head.as_bytes(), false);
    for c in body.as_bytes().chunks(16 * 1024) {
        ev.extend(t.feed(1, 1, TlsDirection::Send, c, false));
    }
    match &ev[..] {
        [Event::LlmRequest(r)] => {
            assert_eq!(r.model.as_deref(), Some("gpt-4o"));
            assert!(r.stream);
            assert_eq!(r.bytes, body.len() as u64);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t.stats().overflowed, 1);
}

#[test]
fn not_llm_traffic_yields_nothing() {
    let mut t = LlmTracker::new();
    let req = b"POST /v1/embeddings HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /v1/models HTTP/1.1\r\n\r\n";
    assert!(t.feed(1, 1, TlsDirection::Send, req, false).is_empty());
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    assert!(t.feed(1, 1, TlsDirection::Recv, resp, false).is_empty());
    assert_eq!(t.stats().messages, 4);
}
