//! The intent layer: what captured TLS plaintext says, without I/O, kernel or root.
//!
//! - [`redact`]: [`Redactor`] replaces secrets (auth headers, bearer tokens, cookies, well-known
//!   key formats, secret-named JSON fields, PEM private keys) in arbitrary bytes. The sensor runs it
//!   on every `tls` record before it is written.
//! - [`http`]: incremental HTTP/1.1 framing of one direction of one connection (Content-Length,
//!   chunked, until-close), resynchronising after missing bytes.
//! - [`body`]: bounded body collection, gzip decoding, server-sent-event splitting.
//! - [`llm`]: which LLM API a request targets and what its request and response bodies say.
//! - [`LlmTracker`] (this file): one HTTP stream pair per (pid, connection), requests paired
//!   with responses first-in first-out, turning LLM exchanges into `llm_request` /
//!   `llm_response` events.
//!
//! ```
//! use proctor_intent::LlmTracker;
//! use proctor_model::{Event, TlsDirection};
//! let mut t = LlmTracker::new();
//! let req = b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Length: 27\r\n\r\n{\"model\":\"m\",\"messages\":[]}";
//! let ev = t.feed(42, 0x5555, TlsDirection::Send, req, false);
//! assert!(matches!(&ev[..], [Event::LlmRequest(r)] if r.model.as_deref() == Some("m")));
//! ```
//!
//! Memory is bounded: at most [`MAX_CONNS`] connections (the least recently used is dropped),
//! [`body::MAX_BODY`] of body per message kept for parsing (only for LLM exchanges; other
//! exchanges are framed and forgotten), and [`MAX_TOTAL`] bytes buffered over all connections.
//! Work is linear in the input, whatever its shape.
//!
//! Not covered, on purpose or for now: HTTP/2 connections (recognised by their preface and left
//! alone; OpenAI's and Anthropic's Python and TypeScript SDKs speak HTTP/1.1), WebSocket APIs
//! (after a 101 the connection is not parsed), a tracked process acting as the server, content
//! codings other than gzip (reported with sizes only), other API shapes (Bedrock), and
//! exchanges with missing bytes: a truncated call drops the exchange in progress (counted in
//! [`Stats::llm_broken`]) rather than guessing.

pub mod body;
pub mod http;
pub mod llm;
pub mod redact;

pub use redact::Redactor;

use body::{Body, Sink};
use http::{BodyRule, Handler, Head, Lost, Parser};
use llm::{Api, ResponseAcc};
use proctor_model::{Event, LlmRequest, LlmResponse, TlsDirection};
use std::collections::{HashMap, VecDeque};

/// Most connections tracked at once.
pub const MAX_CONNS: usize = 256;
/// Most bytes buffered over all connections; past it the least recently used are dropped.
pub const MAX_TOTAL: usize = 64 * 1024 * 1024;
/// Most requests waiting for their response on one connection (pipelining is rare; a peer that
/// never answers must not grow the queue).
const MAX_PENDING: usize = 64;

/// Counters of what the tracker saw and dropped (for the sensor's `lost`-style accounting): the
/// model's type, since `sensor_stop` records them as they are.
pub use proctor_model::TlsParserStats as Stats;

/// Reassembles HTTP/1.1 exchanges from the plaintext of TLS calls and reports LLM API calls.
pub struct LlmTracker {
    conns: HashMap<(u32, u64), Conn>,
    redactor: Redactor,
    clock: u64,
    total: usize,
    stats: Stats,
}

impl Default for LlmTracker {
    fn default() -> Self {
        Self::new()
    }
}

/// A request sent and not yet answered.
struct Pending {
    /// Set when the request was to an LLM API: (api, endpoint).
    llm: Option<(Api, String)>,
    /// HEAD: the response has no body.
    head: bool,
}

struct ReqBuild {
    api: Api,
    endpoint: String,
    host: Option<String>,
    body: Body,
}

struct RespBuild {
    api: Api,
    endpoint: String,
    status: u16,
    streamed: bool,
    body: Body,
    acc: ResponseAcc,
}

struct Conn {
    send: Parser,
    recv: Parser,
    pending: VecDeque<Pending>,
    req: Option<ReqBuild>,
    resp: Option<RespBuild>,
    last_used: u64,
}

impl Conn {
    fn new() -> Self {
        Conn {
            send: Parser::new(true),
            recv: Parser::new(false),
            pending: VecDeque::new(),
            req: None,
            resp: None,
            last_used: 0,
        }
    }

    fn buffered(&self) -> usize {
        self.send.buffered()
            + self.recv.buffered()
            + self.req.as_ref().map_or(0, |r| r.body.buffered())
            + self.resp.as_ref().map_or(0, |r| r.body.buffered())
    }
}

impl LlmTracker {
    pub fn new() -> Self {
        LlmTracker {
            conns: HashMap::new(),
            redactor: Redactor::new(),
            clock: 0,
            total: 0,
            stats: Stats::default(),
        }
    }

    /// What the tracker has seen and dropped so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Connections currently tracked.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The raw (unredacted) plaintext of one TLS library call on connection `conn` of process
    /// `pid`; returns the `llm_request` / `llm_response` events this chunk completed.
    /// `truncated` means the call moved more bytes than `data` holds: the exchange in progress is
    /// dropped and parsing resumes at the next message start.
    pub fn feed(
        &mut self,
        pid: u32,
        conn: u64,
        dir: TlsDirection,
        data: &[u8],
        truncated: bool,
    ) -> Vec<Event> {
        self.clock += 1;
        let key = (pid, conn);
        if !self.conns.contains_key(&key) {
            while self.conns.len() >= MAX_CONNS {
                self.evict_oldest(None);
            }
            self.conns.insert(key, Conn::new());
        }
        let Some(c) = self.conns.get_mut(&key) else {
            return Vec::new();
        };
        c.last_used = self.clock;
        let before = c.buffered();
        let mut out = Vec::new();
        let mut h = ConnHandler {
            conn,
            pending: &mut c.pending,
            req: &mut c.req,
            resp: &mut c.resp,
            out: &mut out,
            stats: &mut self.stats,
            redactor: &self.redactor,
        };
        match dir {
            TlsDirection::Send => c.send.feed(data, truncated, &mut h.send()),
            TlsDirection::Recv => c.recv.feed(data, truncated, &mut h.recv()),
        }
        if c.send.stopped() != c.recv.stopped() {
            // One side upgraded (101) or spoke HTTP/2: the other is not HTTP/1.x any more either.
            c.send.stop();
            c.recv.stop();
            c.pending.clear();
            c.req = None;
            c.resp = None;
        }
        let after = c.buffered();
        self.total = (self.total + after).saturating_sub(before);
        while self.total > MAX_TOTAL && self.conns.len() > 1 {
            self.evict_oldest(Some(key));
        }
        out
    }

    /// Forgets every connection of `pid` (it exited). Exchanges in progress are not reported.
    pub fn close_pid(&mut self, pid: u32) {
        let total = &mut self.total;
        self.conns.retain(|&(p, _), c| {
            if p == pid {
                *total = total.saturating_sub(c.buffered());
            }
            p != pid
        });
    }

    fn evict_oldest(&mut self, keep: Option<(u32, u64)>) {
        let oldest = self
            .conns
            .iter()
            .filter(|(k, _)| Some(**k) != keep)
            .min_by_key(|(_, c)| c.last_used)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            if let Some(c) = self.conns.remove(&k) {
                self.total = self.total.saturating_sub(c.buffered());
                self.stats.evicted += 1;
            }
        }
    }
}

/// The connection's state, borrowed for one call, seen by one direction's parser.
struct ConnHandler<'a> {
    conn: u64,
    pending: &'a mut VecDeque<Pending>,
    req: &'a mut Option<ReqBuild>,
    resp: &'a mut Option<RespBuild>,
    out: &'a mut Vec<Event>,
    stats: &'a mut Stats,
    redactor: &'a Redactor,
}

impl<'a> ConnHandler<'a> {
    fn send(&mut self) -> SendSide<'_, 'a> {
        SendSide(self)
    }
    fn recv(&mut self) -> RecvSide<'_, 'a> {
        RecvSide(self)
    }

    fn push_pending(&mut self, p: Pending) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(p);
    }
}

struct SendSide<'h, 'a>(&'h mut ConnHandler<'a>);
struct RecvSide<'h, 'a>(&'h mut ConnHandler<'a>);

impl Handler for SendSide<'_, '_> {
    fn head(&mut self, head: &Head) -> BodyRule {
        let h = &mut *self.0;
        h.stats.messages += 1;
        let api = llm::classify(&head.method, &head.path);
        *h.req = api.map(|api| ReqBuild {
            api,
            endpoint: head.path.clone(),
            host: head.host.clone(),
            body: Body::new(&head.content_encoding, false),
        });
        h.push_pending(Pending {
            llm: api.map(|a| (a, head.path.clone())),
            head: head.method == "HEAD",
        });
        BodyRule::Framed
    }

    fn body(&mut self, data: &[u8]) -> bool {
        if let Some(r) = self.0.req.as_mut() {
            r.body.push(data, &mut |_| {});
        }
        false
    }

    fn end(&mut self) {
        let h = &mut *self.0;
        let Some(mut r) = h.req.take() else { return };
        r.body.finish(&mut |_| {});
        let (data, overflow) = match &r.body.sink {
            Sink::Buffer { data, overflow } => (&data[..], *overflow),
            Sink::Sse(_) => (&[][..], false),
        };
        if overflow {
            h.stats.overflowed += 1;
        }
        let s = if r.body.opaque() {
            // An undecodable body: what the path says (Gemini's model) still counts.
            llm::summarize_request(r.api, &r.endpoint, &[])
        } else {
            llm::summarize_request(r.api, &r.endpoint, data)
        };
        h.stats.llm_requests += 1;
        h.out.push(Event::LlmRequest(LlmRequest {
            conn: h.conn,
            api: r.api.name().to_string(),
            host: r.host,
            endpoint: r.endpoint,
            model: s.model,
            stream: s.stream,
            messages: s.messages,
            tools: s.tools,
            bytes: r.body.received,
        }));
    }

    fn broken(&mut self, what: Lost) {
        let h = &mut *self.0;
        match what {
            Lost::Garbage => h.stats.skipped += 1,
            // A request started whose head was lost: its response will still come.
            Lost::Head => h.push_pending(Pending {
                llm: None,
                head: false,
            }),
            Lost::Body => {
                if h.req.take().is_some() {
                    h.stats.llm_broken += 1;
                }
            }
        }
    }
}

impl Handler for RecvSide<'_, '_> {
    fn head(&mut self, head: &Head) -> BodyRule {
        let h = &mut *self.0;
        h.stats.messages += 1;
        // 1xx (but 101) are interim: the real response follows and answers the same request.
        if (100..200).contains(&head.status) && head.status != 101 {
            return BodyRule::None;
        }
        let p = h.pending.pop_front();
        if head.status == 101 {
            return BodyRule::Upgrade;
        }
        let (llm, is_head) = match p {
            Some(p) => (p.llm, p.head),
            None => (None, false),
        };
        *h.resp = llm.map(|(api, endpoint)| {
            let streamed = head.content_type.starts_with("text/event-stream");
            RespBuild {
                api,
                endpoint,
                status: head.status,
                streamed,
                body: Body::new(&head.content_encoding, streamed),
                acc: ResponseAcc::default(),
            }
        });
        if is_head || head.status == 204 || head.status == 304 {
            BodyRule::None
        } else {
            BodyRule::Framed
        }
    }

    fn body(&mut self, data: &[u8]) -> bool {
        let Some(r) = self.0.resp.as_mut() else {
            return false;
        };
        let (api, acc) = (r.api, &mut r.acc);
        r.body.push(data, &mut |ev| acc.sse_event(api, ev));
        if r.streamed {
            // A stream that said it is over is reported now, not at the end of the transfer:
            // clients act on the last event (and may close the connection before the
            // transfer's end comes); the rest of the body is framing.
            if r.acc.done {
                self.end();
                return true;
            }
            false
        } else {
            // Only consulted for bodies delimited by the end of the connection, which we never
            // see: a JSON document that parses is complete.
            r.body.json_complete()
        }
    }

    fn end(&mut self) {
        let h = &mut *self.0;
        let Some(mut r) = h.resp.take() else { return };
        let (api, acc) = (r.api, &mut r.acc);
        if !acc.done {
            r.body.finish(&mut |ev| acc.sse_event(api, ev));
        }
        if let Sink::Buffer { data, overflow } = &r.body.sink {
            if *overflow {
                h.stats.overflowed += 1;
            }
            if !r.body.opaque() {
                r.acc.json_body(r.api, data);
            }
        }
        h.stats.llm_responses += 1;
        h.out.push(Event::LlmResponse(LlmResponse {
            conn: h.conn,
            api: r.api.name().to_string(),
            endpoint: r.endpoint,
            status: r.status,
            model: r.acc.model.take(),
            streamed: r.streamed,
            tool_calls: r.acc.tool_calls(h.redactor),
            finish_reason: r.acc.finish_reason.take(),
            text_bytes: r.acc.text_bytes,
            bytes: r.body.received,
        }));
    }

    fn broken(&mut self, what: Lost) {
        let h = &mut *self.0;
        match what {
            Lost::Garbage => h.stats.skipped += 1,
            // A response started whose head was lost: it answered the oldest request.
            Lost::Head => {
                if h.pending.pop_front().is_some_and(|p| p.llm.is_some()) {
                    h.stats.llm_broken += 1;
                }
            }
            Lost::Body => {
                if h.resp.take().is_some() {
                    h.stats.llm_broken += 1;
                }
            }
        }
    }
}
