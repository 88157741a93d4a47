//! The tracker on synthetic exchanges: every split point, keep-alive, chunked, streamed SSE for
//! both API families, truncation, and hostile input.

use proctor_intent::LlmTracker;
use proctor_model::{Event, LlmRequest, LlmResponse, TlsDirection};

const SECRET: &str = "sk-proj-AAAABBBBCCCCDDDDEEEEFFFFGGGGHHHH";

fn openai_request(stream: bool) -> Vec<u8> {
    let body = format!(
        r#"{{"model":"gpt-4o","stream":{stream},"messages":[{{"role":"user","content":"list files"}}],"tools":[{{"type":"function","function":{{"name":"run_shell","parameters":{{}}}}}}]}}"#
    );
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nAuthorization: Bearer {SECRET}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn openai_response() -> Vec<u8> {
    let body = r#"{"id":"c1","model":"gpt-4o-2024","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"run_shell","arguments":"{\"command\": \"cat ~/.aws/credentials\"}"}}]}}]}"#;
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn chunked(head: &str, body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = head.as_bytes().to_vec();
    for c in body.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn openai_sse_response() -> Vec<u8> {
    let events = [
        r#"{"model":"gpt-4o-2024","choices":[{"index":0,"delta":{"role":"assistant","content":"Sure. "}}]}"#,
        r#"{"model":"gpt-4o-2024","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"run_shell","arguments":""}}]}}]}"#,
        r#"{"model":"gpt-4o-2024","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"command\": \"cat "}}]}}]}"#,
        r#"{"model":"gpt-4o-2024","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"~/.aws/credentials\"}"}}]}}]}"#,
        r#"{"model":"gpt-4o-2024","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        "[DONE]",
    ];
    let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    chunked(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        body.as_bytes(),
        37,
    )
}

fn anthropic_request(stream: bool) -> Vec<u8> {
    let body = format!(
        r#"{{"model":"claude-sonnet-4","max_tokens":1024,"stream":{stream},"messages":[{{"role":"user","content":"hi"}},{{"role":"assistant","content":"yo"}},{{"role":"user","content":"go"}}],"tools":[{{"name":"bash","input_schema":{{}}}},{{"name":"read"}}]}}"#
    );
    format!(
        "POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\nx-api-key: sk-ant-api03-ZZZZYYYYXXXXWWWWVVVVUUUU\r\nanthropic-version: 2023-06-01\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn anthropic_sse_response() -> Vec<u8> {
    let events = [
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"m1","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Running it."}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"tu1","name":"bash","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"command\": \"cat ~/.aws/cre"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"dentials\"}"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":20}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ];
    let body: String = events
        .iter()
        .map(|(t, e)| format!("event: {t}\r\ndata: {e}\r\n\r\n"))
        .collect();
    chunked(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n",
        body.as_bytes(),
        100,
    )
}

fn split_feed(t: &mut LlmTracker, dir: TlsDirection, data: &[u8], at: usize) -> Vec<Event> {
    let at = at.min(data.len());
    let mut ev = t.feed(1, 7, dir, &data[..at], false);
    ev.extend(t.feed(1, 7, dir, &data[at..], false));
    ev
}

fn req(ev: &[Event]) -> &LlmRequest {
    match ev {
        [Event::LlmRequest(r)] => r,
        other => panic!("expected one llm_request, got {other:?}"),
    }
}

fn resp(ev: &[Event]) -> &LlmResponse {
    match ev {
        [Event::LlmResponse(r)] => r,
        other => panic!("expected one llm_response, got {other:?}"),
    }
}

#[test]
fn openai_non_streamed_split_everywhere() {
    let q = openai_request(false);
    let a = openai_response();
    for at in 0..=q.len().max(a.len()) {
        let mut t = LlmTracker::new();
        let ev = split_feed(&mut t, TlsDirection::Send, &q, at);
        let r = req(&ev);
        assert_eq!(r.api, "openai-chat", "split {at}");
        assert_eq!(r.host.as_deref(), Some("api.openai.com"));
        assert_eq!(r.model.as_deref(), Some("gpt-4o"));
        assert_eq!(r.tools, ["run_shell"]);
        assert_eq!(r.messages, 1);
        assert!(!r.stream);
        let ev = split_feed(&mut t, TlsDirection::Recv, &a, at);
        let r = resp(&ev);
        assert_eq!(r.status, 200);
        assert_eq!(r.model.as_deref(), Some("gpt-4o-2024"));
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(r.tool_calls.len(), 1, "split {at}");
        assert_eq!(r.tool_calls[0].name, "run_shell");
        assert_eq!(
            r.tool_calls[0].arguments,
            r#"{"command": "cat ~/.aws/credentials"}"#
        );
        assert!(!r.streamed);
    }
}

#[test]
fn openai_streamed_split_everywhere() {
    let q = openai_request(true);
    let a = openai_sse_response();
    for at in 0..=a.len() {
        let mut t = LlmTracker::new();
        assert!(req(&t.feed(1, 7, TlsDirection::Send, &q, false)).stream);
        let ev = split_feed(&mut t, TlsDirection::Recv, &a, at);
        let r = resp(&ev);
        assert!(r.streamed);
        assert_eq!(r.text_bytes, 6);
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(r.tool_calls.len(), 1, "split {at}");
        assert_eq!(r.tool_calls[0].name, "run_shell");
        assert_eq!(
            r.tool_calls[0].arguments,
            r#"{"command": "cat ~/.aws/credentials"}"#
        );
    }
}

#[test]
fn anthropic_streamed_split_everywhere() {
    let q = anthropic_request(true);
    let a = anthropic_sse_response();
    for at in 0..=a.len() {
        let mut t = LlmTracker::new();
        let ev = t.feed(1, 7, TlsDirection::Send, &q, false);
        let r = req(&ev);
        assert_eq!(r.api, "anthropic-messages");
        assert_eq!(r.messages, 3);
        assert_eq!(r.tools, ["bash", "read"]);
        let ev = split_feed(&mut t, TlsDirection::Recv, &a, at);
        let r = resp(&ev);
        assert_eq!(r.model.as_deref(), Some("claude-sonnet-4-20250514"));
        assert_eq!(r.finish_reason.as_deref(), Some("tool_use"));
        assert_eq!(r.text_bytes, 11);
        assert_eq!(r.tool_calls.len(), 1, "split {at}");
        assert_eq!(r.tool_calls[0].name, "bash");
        assert_eq!(
            r.tool_calls[0].arguments,
            r#"{"command":"cat ~/.aws/credentials"}"#
        );
    }
}

/// A client acts on a stream's last event and may close before the transfer ends (Codex closes
/// at `response.completed`): the response is reported at that event, once, and the same
/// connection's next exchange is still read.
#[test]
fn a_stream_is_reported_at_its_last_event_before_the_transfer_ends() {
    for (q, a) in [
        (openai_request(true), openai_sse_response()),
        (anthropic_request(true), anthropic_sse_response()),
    ] {
        let end = a.len() - b"0\r\n\r\n".len();
        // Every split of the body up to its terminal chunk: the response comes with the
        // piece that holds the last event.
        for at in 0..end {
            let mut t = LlmTracker::new();
            req(&t.feed(1, 7, TlsDirection::Send, &q, false));
            let mut ev = t.feed(1, 7, TlsDirection::Recv, &a[..at], false);
            ev.extend(t.feed(1, 7, TlsDirection::Recv, &a[at..end], false));
            let r = resp(&ev);
            assert_eq!(r.tool_calls.len(), 1, "split {at}");
            assert!(r.tool_calls[0].arguments.contains("credentials"));
            // The transfer's end adds nothing; the next exchange is paired as before.
            assert!(t
                .feed(1, 7, TlsDirection::Recv, &a[end..], false)
                .is_empty());
            req(&t.feed(1, 7, TlsDirection::Send, &q, false));
            assert_eq!(
                resp(&t.feed(1, 7, TlsDirection::Recv, &a, false))
                    .tool_calls
                    .len(),
                1
            );
        }
    }
}

#[test]
fn keep_alive_pairs_fifo_and_skips_non_llm() {
    let mut t = LlmTracker::new();
    let other = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let other_resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let mut send = other.to_vec();
    send.extend(openai_request(false));
    send.extend(anthropic_request(false));
    let ev = t.feed(1, 7, TlsDirection::Send, &send, false);
    assert_eq!(ev.len(), 2, "{ev:?}");
    let mut recv = other_resp.to_vec();
    recv.extend(openai_response());
    let ab = r#"{"model":"claude-x","stop_reason":"tool_use","content":[{"type":"text","text":"ok"},{"type":"tool_use","id":"a","name":"bash","input":{"command":"id"}}]}"#;
    recv.extend(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{ab}",
            ab.len()
        )
        .as_bytes(),
    );
    let ev = t.feed(1, 7, TlsDirection::Recv, &recv, false);
    assert_eq!(ev.len(), 2, "{ev:?}");
    match (&ev[0], &ev[1]) {
        (Event::LlmResponse(a), Event::LlmResponse(b)) => {
            assert_eq!(a.api, "openai-chat");
            assert_eq!(b.api, "anthropic-messages");
            assert_eq!(b.tool_calls[0].name, "bash");
            assert_eq!(b.tool_calls[0].arguments, r#"{"command":"id"}"#);
            assert_eq!(b.text_bytes, 2);
        }
        other => panic!("{other:?}"),
    }
}

fn one_response(t: &mut LlmTracker, data: &[u8]) -> LlmResponse {
    let ev = t.feed(1, 7, TlsDirection::Recv, data, false);
    resp(&ev).clone()
}

fn sent(t: &mut LlmTracker, path: &str, body: &str) {
    let q = format!(
        "POST {path} HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(
        t.feed(1, 7, TlsDirection::Send, q.as_bytes(), false).len(),
        1
    );
}

#[test]
fn openai_responses_streamed() {
    let mut t = LlmTracker::new();
    sent(
        &mut t,
        "/v1/responses",
        r#"{"model":"gpt-4.1","stream":true,"input":"hi","tools":[{"type":"function","name":"run_shell"},{"type":"web_search"}]}"#,
    );
    let events = [
        r#"{"type":"response.created","response":{"id":"r","model":"gpt-4.1-2025","status":"in_progress"}}"#,
        r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"message"}}"#,
        r#"{"type":"response.output_text.delta","output_index":0,"delta":"Hi!"}"#,
        r#"{"type":"response.output_item.added","output_index":1,"item":{"type":"function_call","name":"run_shell","arguments":""}}"#,
        r#"{"type":"response.function_call_arguments.delta","output_index":1,"delta":"{\"command\":"}"#,
        r#"{"type":"response.function_call_arguments.delta","output_index":1,"delta":"\"id\"}"}"#,
        r#"{"type":"response.completed","response":{"model":"gpt-4.1-2025","status":"completed"}}"#,
    ];
    let body: String = events
        .iter()
        .map(|e| format!("event: x\ndata: {e}\n\n"))
        .collect();
    let r = one_response(&mut t, &chunked("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n", body.as_bytes(), 50));
    assert_eq!(r.api, "openai-responses");
    assert_eq!(r.model.as_deref(), Some("gpt-4.1-2025"));
    assert_eq!(r.finish_reason.as_deref(), Some("completed"));
    assert_eq!(r.text_bytes, 3);
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(r.tool_calls[0].name, "run_shell");
    assert_eq!(r.tool_calls[0].arguments, r#"{"command":"id"}"#);
}

#[test]
fn body_until_close_ends_when_complete() {
    let mut t = LlmTracker::new();
    sent(
        &mut t,
        "/v1/chat/completions",
        r#"{"model":"m","messages":[]}"#,
    );
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
    assert!(t.feed(1, 7, TlsDirection::Recv, head, false).is_empty());
    assert!(t
        .feed(
            1,
            7,
            TlsDirection::Recv,
            br#"{"model":"m","choices":[{"finish_reason":"stop","message":{"content":"hello"}}]"#,
            false
        )
        .is_empty());
    let r = one_response(&mut t, b"}");
    assert_eq!(r.text_bytes, 5);
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    // The same for an event stream without length: it ends at [DONE].
    sent(
        &mut t,
        "/v1/chat/completions",
        r#"{"model":"m","messages":[],"stream":true}"#,
    );
    let r = one_response(&mut t, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"abc\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    assert!(r.streamed);
    assert_eq!(r.text_bytes, 3);
}

#[test]
fn continue_head_and_gzip_stream() {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let mut t = LlmTracker::new();
    // A chunked request body, answered after a 100 Continue.
    let body = r#"{"model":"claude","stream":true,"messages":[{"role":"user","content":"x"}]}"#;
    let q = chunked(
        "POST /v1/messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
        body.as_bytes(),
        10,
    );
    let r = req(&t.feed(1, 7, TlsDirection::Send, &q, false)).clone();
    assert_eq!(r.model.as_deref(), Some("claude"));
    assert_eq!(r.bytes, body.len() as u64);
    let sse = "data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\"}}\n\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"name\":\"bash\",\"input\":{}}}\n\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\ndata: {\"type\":\"message_stop\"}\n\n";
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(sse.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    let mut a = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    a.extend(chunked("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", &gz, 16));
    for at in 0..a.len() {
        let mut t2 = LlmTracker::new();
        t2.feed(1, 7, TlsDirection::Send, &q, false);
        let ev = split_feed(&mut t2, TlsDirection::Recv, &a, at);
        let r = resp(&ev);
        assert_eq!(r.model.as_deref(), Some("claude-x"), "split {at}");
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].name, "bash");
        // No input at all is reported as the empty object, as the non-streamed form would be.
        assert_eq!(r.tool_calls[0].arguments, "{}");
        // Reported at the stream's last event: the gzip trailer may come after it.
        assert!(
            r.bytes + 16 >= gz.len() as u64 && r.bytes <= gz.len() as u64,
            "split {at}: {} of {}",
            r.bytes,
            gz.len()
        );
    }
    // HEAD is answered without a body even with a Content-Length; a 101 ends HTTP parsing.
    let mut t = LlmTracker::new();
    t.feed(1, 7, TlsDirection::Send, b"HEAD /x HTTP/1.1\r\n\r\n", false);
    sent(
        &mut t,
        "/v1/chat/completions",
        r#"{"model":"m","messages":[]}"#,
    );
    let mut a = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
    a.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
    let r = one_response(&mut t, &a);
    assert_eq!(r.status, 200);
    t.feed(
        1,
        7,
        TlsDirection::Send,
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
        false,
    );
    assert!(t
        .feed(
            1,
            7,
            TlsDirection::Recv,
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x05hello",
            false
        )
        .is_empty());
    // After the upgrade neither direction is HTTP: what looks like an exchange is not parsed.
    let q = b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
    assert!(t.feed(1, 7, TlsDirection::Send, q, false).is_empty());
    let a = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    assert!(t.feed(1, 7, TlsDirection::Recv, a, false).is_empty());
}

#[test]
fn http2_connections_are_left_alone() {
    let mut t = LlmTracker::new();
    let mut q = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00".to_vec();
    q.extend_from_slice(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
    assert!(t.feed(1, 7, TlsDirection::Send, &q, false).is_empty());
    let frames = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00";
    assert!(t.feed(1, 7, TlsDirection::Recv, frames, false).is_empty());
    assert_eq!(t.stats().skipped, 0);
}

#[test]
fn long_head_fed_byte_by_byte_is_linear() {
    // 60 KiB of headers one byte per call: quadratic re-parsing would take minutes in debug.
    let mut q = b"POST /v1/chat/completions HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        q.extend_from_slice(format!("x-pad-{i:05}: {}\r\n", "v".repeat(580)).as_bytes());
    }
    q.extend_from_slice(b"Content-Length: 27\r\n\r\n{\"model\":\"m\",\"messages\":[]}");
    let mut t = LlmTracker::new();
    let start = std::time::Instant::now();
    let mut ev = Vec::new();
    for b in q.chunks(1) {
        ev.extend(t.feed(1, 7, TlsDirection::Send, b, false));
    }
    assert_eq!(req(&ev).model.as_deref(), Some("m"));
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}

#[test]
fn tool_arguments_are_bounded_and_redacted() {
    let mut t = LlmTracker::new();
    sent(
        &mut t,
        "/v1/chat/completions",
        r#"{"model":"m","messages":[]}"#,
    );
    let long = "A".repeat(10_000);
    let args = format!(
        r#"{{"command": "curl -H 'Authorization: Bearer sk-abcdefghijklmnopqrstuvwxyz0123' x", "pad": "{long}"}}"#
    );
    let body = serde_json::json!({"choices":[{"message":{"tool_calls":[{"function":{"name":"run_shell","arguments":args}}]}}]}).to_string();
    let a = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = one_response(&mut t, a.as_bytes());
    let got = &r.tool_calls[0].arguments;
    assert!(got.len() <= 4096 + 16, "{}", got.len());
    assert!(!got.contains("sk-abcdefghij"), "{got}");
    assert!(got.contains("Bearer [REDACTED]"), "{got}");
}
