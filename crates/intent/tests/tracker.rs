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
