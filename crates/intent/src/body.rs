//! Bounded body collection for the messages worth parsing (LLM requests and responses).
//!
//! [`Body`] counts every byte as received and passes them, gunzipped when the message says
//! `Content-Encoding: gzip`, to either a bounded buffer (a JSON body, parsed when complete) or an
//! incremental server-sent-events splitter (a streamed response, parsed event by event so a long
//! stream needs no more memory than its longest event). Other content codings (br, zstd, deflate)
//! are not decoded: the message is reported with sizes only.

use flate2::write::GzDecoder;
use std::io::Write;

/// Most bytes of one body (after decoding) kept for parsing.
pub const MAX_BODY: usize = 1024 * 1024;

/// Collects and decodes one message body.
pub struct Body {
    /// Bytes as received (after de-chunking, before decoding).
    pub received: u64,
    decoder: Decoder,
    pub sink: Sink,
    json: JsonScan,
}

/// Tracks the nesting of a JSON text as it arrives, to tell when the top-level value is closed
/// without parsing it again at every call (bodies delimited by the end of the connection).
#[derive(Default)]
struct JsonScan {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// A top-level object or array was opened and closed again.
    closed: bool,
    /// Not JSON we can follow (a scalar at top level, text after the end, too deep).
    lost: bool,
}

impl JsonScan {
    fn push(&mut self, data: &[u8]) {
        for &b in data {
            if self.lost {
                return;
            }
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                _ if b.is_ascii_whitespace() => {}
                _ if self.closed => self.lost = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    self.lost = self.depth > 4096;
                }
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    self.closed = self.depth == 0;
                }
                b'"' if self.depth > 0 => self.in_string = true,
                _ if self.depth == 0 => self.lost = true,
                _ => {}
            }
        }
    }
}

enum Decoder {
    Identity,
    Gzip(Box<GzDecoder<Collect>>),
    /// A coding we do not decode, or a gzip stream that failed: keep counting only.
    Opaque,
}

/// Where decoded bytes go.
pub enum Sink {
    /// A whole body, up to [`MAX_BODY`]; `overflow` when more came.
    Buffer { data: Vec<u8>, overflow: bool },
    /// Server-sent events, split into complete events as bytes arrive.
    Sse(SseSplitter),
}

/// Writer the gzip decoder writes into: keeps at most [`MAX_BODY`] bytes between two drains, so a
/// compression bomb costs CPU (bounded by the input size times deflate's ratio), never memory.
struct Collect {
    out: Vec<u8>,
    overflow: bool,
}

impl Write for Collect {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = MAX_BODY.saturating_sub(self.out.len());
        if buf.len() > room {
            self.overflow = true;
        }
        self.out.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Body {
    /// `encoding` is the Content-Encoding value (lower case); `sse` says the content is an event
    /// stream.
    pub fn new(encoding: &str, sse: bool) -> Self {
        let decoder = match encoding {
            "" | "identity" => Decoder::Identity,
            "gzip" | "x-gzip" => Decoder::Gzip(Box::new(GzDecoder::new(Collect {
                out: Vec::new(),
                overflow: false,
            }))),
            _ => Decoder::Opaque,
        };
        let sink = if sse {
            Sink::Sse(SseSplitter::default())
        } else {
            Sink::Buffer {
                data: Vec::new(),
                overflow: false,
            }
        };
        Body {
            received: 0,
            decoder,
            sink,
            json: JsonScan::default(),
        }
    }

    /// A JSON body's top-level value is complete (it was opened and closed, and nothing else
    /// came).
    pub fn json_complete(&self) -> bool {
        self.json.closed && !self.json.lost
    }

    /// True when the content cannot be parsed (unknown coding, corrupt gzip).
    pub fn opaque(&self) -> bool {
        matches!(self.decoder, Decoder::Opaque)
    }

    /// Bytes held (for memory accounting).
    pub fn buffered(&self) -> usize {
        let sink = match &self.sink {
            Sink::Buffer { data, .. } => data.capacity(),
            Sink::Sse(s) => s.buffered(),
        };
        // The gzip decoder holds a 32 KiB window and buffer besides its output.
        sink + if matches!(self.decoder, Decoder::Gzip(_)) {
            64 * 1024
        } else {
            0
        }
    }

    /// Adds received body bytes; complete SSE events (if any) go to `on_event`.
    pub fn push(&mut self, data: &[u8], on_event: &mut dyn FnMut(&[u8])) {
        self.received += data.len() as u64;
        match &mut self.decoder {
            Decoder::Identity => {
                if matches!(self.sink, Sink::Buffer { .. }) {
                    self.json.push(data);
                }
                self.sink.push(data, on_event)
            }
            Decoder::Opaque => {}
            Decoder::Gzip(dec) => {
                let ok = dec.write_all(data).and_then(|()| dec.flush()).is_ok();
                let c = dec.get_mut();
                let out = std::mem::take(&mut c.out);
                let overflow = c.overflow;
                if matches!(self.sink, Sink::Buffer { .. }) {
                    self.json.push(&out);
                }
                self.sink.push(&out, on_event);
                if overflow {
                    self.sink.overflowed();
                }
                if !ok {
                    self.decoder = Decoder::Opaque;
                }
            }
        }
    }

    /// The body is complete: flushes the decoder and a final unterminated event.
    pub fn finish(&mut self, on_event: &mut dyn FnMut(&[u8])) {
        if let Decoder::Gzip(dec) = &mut self.decoder {
            let ok = dec.try_finish().is_ok();
            let out = std::mem::take(&mut dec.get_mut().out);
            self.sink.push(&out, on_event);
            if !ok {
                self.decoder = Decoder::Opaque;
            }
        }
        if let Sink::Sse(s) = &mut self.sink {
            s.finish(on_event);
        }
    }
}

impl Sink {
    fn push(&mut self, data: &[u8], on_event: &mut dyn FnMut(&[u8])) {
        match self {
            Sink::Buffer {
                data: buf,
                overflow,
            } => {
                let room = MAX_BODY.saturating_sub(buf.len());
                if data.len() > room {
                    *overflow = true;
                }
                buf.extend_from_slice(&data[..data.len().min(room)]);
            }
            Sink::Sse(s) => s.push(data, on_event),
        }
    }

    fn overflowed(&mut self) {
        match self {
            Sink::Buffer { overflow, .. } => *overflow = true,
            Sink::Sse(s) => s.overflow = true,
        }
    }
}

/// Splits a server-sent-events stream (<https://html.spec.whatwg.org/multipage/server-sent-events.html>)
/// into the `data` of each event: `data:` lines joined by `\n`, dispatched at a blank line. Other
/// fields (`event:`, `id:`, comments) are ignored: both OpenAI and Anthropic repeat the event type
/// inside the JSON data.
#[derive(Default)]
pub struct SseSplitter {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// A line or event longer than [`MAX_BODY`] was dropped.
    pub overflow: bool,
    /// The line in progress is being dropped (too long).
    skipping: bool,
}

impl SseSplitter {
    fn buffered(&self) -> usize {
        self.line.capacity() + self.data.capacity()
    }

    fn push(&mut self, mut input: &[u8], on_event: &mut dyn FnMut(&[u8])) {
        while !input.is_empty() {
            match input.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    if !self.skipping {
                        self.append_line(&input[..i]);
                        let line = std::mem::take(&mut self.line);
                        self.line_done(&line, on_event);
                        self.line = line;
                        self.line.clear();
                    }
                    self.skipping = false;
                    input = &input[i + 1..];
                }
                None => {
                    if !self.skipping {
                        self.append_line(input);
                    }
                    input = &[];
                }
            }
        }
    }

    fn append_line(&mut self, part: &[u8]) {
        if self.line.len() + part.len() > MAX_BODY {
            self.overflow = true;
            self.skipping = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(part);
        }
    }

    fn line_done(&mut self, line: &[u8], on_event: &mut dyn FnMut(&[u8])) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                on_event(&self.data);
            }
            self.data.clear();
            self.has_data = false;
            return;
        }
        if let Some(v) = line.strip_prefix(b"data:") {
            let v = v.strip_prefix(b" ").unwrap_or(v);
            if self.has_data {
                self.data.push(b'\n');
            }
            if self.data.len() + v.len() > MAX_BODY {
                self.overflow = true;
            } else {
                self.data.extend_from_slice(v);
            }
            self.has_data = true;
        }
    }

    fn finish(&mut self, on_event: &mut dyn FnMut(&[u8])) {
        if !self.line.is_empty() && !self.skipping {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, on_event);
        }
        if self.has_data {
            on_event(&self.data);
            self.data.clear();
            self.has_data = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_split_anywhere() {
        let stream = b"event: x\r\ndata: {\"a\":1}\r\n\r\n: comment\ndata: one\ndata: two\n\ndata: [DONE]\n\n";
        for split in 0..stream.len() {
            let mut b = Body::new("", true);
            let mut got = Vec::new();
            let mut f = |e: &[u8]| got.push(String::from_utf8_lossy(e).into_owned());
            b.push(&stream[..split], &mut f);
            b.push(&stream[split..], &mut f);
            b.finish(&mut f);
            assert_eq!(got, ["{\"a\":1}", "one\ntwo", "[DONE]"], "split {split}");
        }
    }

    #[test]
    fn json_end_is_found_incrementally() {
        let doc = br#" {"a": "}\"]{", "b": [1, {"c": "\\"}]} "#;
        for split in 0..doc.len() {
            let mut b = Body::new("", false);
            b.push(&doc[..split], &mut |_| {});
            let early = b.json_complete();
            b.push(&doc[split..], &mut |_| {});
            assert!(!early || split >= doc.len() - 2, "split {split}");
            assert!(b.json_complete(), "split {split}");
        }
        for not_done in [&br#"{"a": "}"#[..], b"[1, 2", b"42", b"{} {}"] {
            let mut b = Body::new("", false);
            b.push(not_done, &mut |_| {});
            assert!(!b.json_complete(), "{}", String::from_utf8_lossy(not_done));
        }
    }

    #[test]
    fn gzip_bomb_is_bounded() {
        use flate2::write::GzEncoder;
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..8 {
            enc.write_all(&zeros).unwrap();
        }
        let gz = enc.finish().unwrap();
        let mut b = Body::new("gzip", false);
        let mut none = |_: &[u8]| {};
        for part in gz.chunks(16 * 1024) {
            b.push(part, &mut none);
        }
        b.finish(&mut none);
        match &b.sink {
            Sink::Buffer { data, overflow } => {
                assert_eq!(data.len(), MAX_BODY);
                assert!(overflow);
            }
            Sink::Sse(_) => unreachable!(),
        }
        assert_eq!(b.received, gz.len() as u64);
    }
}
