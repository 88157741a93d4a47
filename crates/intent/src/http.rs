//! Incremental HTTP/1.1 message framing for one direction of one connection.
//!
//! [`Parser`] takes the plaintext of successive TLS calls (split anywhere) and tells a [`Handler`]
//! where each message's head ends, hands it the body bytes (de-chunked) and says when the message
//! is complete. It knows Content-Length, chunked transfer coding (sizes, extensions, trailers) and,
//! for responses, bodies delimited by the end of the connection.
//!
//! When bytes are missing (a call cut by the per-call capture bound) or the input is not HTTP, the
//! message in progress is reported broken and the parser resynchronises: it skips to the next thing
//! that looks like a request line (or status line) and tries again. Memory is bounded: a head may
//! be at most [`MAX_HEAD`] bytes, a chunk-size or trailer line [`MAX_LINE`].

/// Largest message head kept while waiting for its end.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest chunk-size or trailer line.
pub const MAX_LINE: usize = 4096;
/// Most header fields in one head (httparse needs a fixed array).
const MAX_HEADERS: usize = 128;
/// Bytes kept at the end of skipped data while resynchronising, so a request line split across two
/// calls is still found ("OPTIONS " is the longest method plus its space).
const RESYNC_TAIL: usize = 16;
/// Partial heads up to this size are parsed at every call (see `Parser::process`).
const EARLY_PARSE: usize = 1024;
/// The client connection preface of HTTP/2 (RFC 9113 section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// The parts of a message head the layers above use.
#[derive(Debug, Clone, Default)]
pub struct Head {
    /// Request method (requests only).
    pub method: String,
    /// Request target (requests only).
    pub path: String,
    /// Status code (responses only).
    pub status: u16,
    pub host: Option<String>,
    /// Content-Type, lower-cased.
    pub content_type: String,
    /// Content-Encoding, lower-cased ("" when absent).
    pub content_encoding: String,
}

/// What the layer above wants done with the body of the message whose head it was just given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// Frame the body from the headers (Content-Length, chunked, or until close for responses).
    Framed,
    /// The message has no body whatever the headers say (response to HEAD, 1xx, 204, 304).
    None,
    /// The connection stops being HTTP (101 Switching Protocols): ignore everything after.
    Upgrade,
}

/// What a break in the stream cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// Bytes that are not an HTTP message start were skipped (nothing known was lost).
    Garbage,
    /// The data was cut at or inside a head: a message started whose head never arrived whole.
    Head,
    /// The data was cut or malformed inside the body of the message whose head was delivered.
    Body,
}

/// Receives what a [`Parser`] finds.
pub trait Handler {
    /// A complete head. `raw` is its bytes.
    fn head(&mut self, head: &Head) -> BodyRule;
    /// Body bytes of the current message, de-chunked. For a body delimited by the end of the
    /// connection, returning true says the content is complete (ends the message).
    fn body(&mut self, data: &[u8]) -> bool;
    /// The current message is complete.
    fn end(&mut self);
    /// Bytes are missing or the data is not HTTP; see [`Lost`].
    fn broken(&mut self, what: Lost);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// After chunk data: the CRLF (how many of its bytes are still expected).
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    /// Skipping to the next message start.
    Resync,
    /// Upgraded to another protocol: nothing more to parse.
    Dead,
}

/// Framing state of one direction of one connection.
#[derive(Debug)]
pub struct Parser {
    requests: bool,
    state: State,
    /// Unconsumed bytes: a partial head, a partial chunk-size/trailer line, or a resync tail.
    buf: Vec<u8>,
    /// Bytes at the start of a partial head already known to hold no end of head.
    head_checked: usize,
}

impl Parser {
    /// A parser for the requests a client sends (`requests`) or the responses it receives.
    pub fn new(requests: bool) -> Self {
        Parser {
            requests,
            state: State::Head,
            buf: Vec::new(),
            head_checked: 0,
        }
    }

    /// Stops parsing this direction for good (the connection is not HTTP/1.x).
    pub fn stop(&mut self) {
        self.state = State::Dead;
        self.buf = Vec::new();
    }

    /// True once the connection was found not to be HTTP/1.x (upgrade, HTTP/2).
    pub fn stopped(&self) -> bool {
        self.state == State::Dead
    }

    /// Bytes held (for memory accounting).
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// Feeds the plaintext of one call. `truncated` means bytes after `data` are missing.
    pub fn feed(&mut self, data: &[u8], truncated: bool, h: &mut impl Handler) {
        if self.state != State::Dead {
            if self.buf.is_empty() {
                let n = self.process(data, h);
                self.buf.extend_from_slice(&data[n..]);
            } else {
                let mut buf = std::mem::take(&mut self.buf);
                buf.extend_from_slice(data);
                let n = self.process(&buf, h);
                buf.drain(..n);
                self.buf = buf;
            }
            self.bound(h);
        }
        if truncated {
            self.cut(h);
        }
        if self.buf.is_empty() && self.buf.capacity() > MAX_LINE {
            self.buf = Vec::new();
        }
    }

    /// Bytes are missing from here on: whatever was in progress cannot be completed.
    fn cut(&mut self, h: &mut impl Handler) {
        match self.state {
            State::Dead => return,
            State::Resync => {}
            State::Head => h.broken(Lost::Head),
            _ => h.broken(Lost::Body),
        }
        self.state = State::Resync;
        self.buf.clear();
        self.head_checked = 0;
    }

    fn bound(&mut self, h: &mut impl Handler) {
        let limit = match self.state {
            State::Head => MAX_HEAD,
            State::Chunked(_) => MAX_LINE,
            State::Resync => RESYNC_TAIL,
            _ => usize::MAX,
        };
        if self.buf.len() > limit {
            if self.state == State::Resync {
                self.buf.drain(..self.buf.len() - RESYNC_TAIL);
            } else {
                self.fail(h);
                self.buf.clear();
            }
        }
    }

    fn fail(&mut self, h: &mut impl Handler) {
        self.head_checked = 0;
        h.broken(if self.state == State::Head {
            Lost::Garbage
        } else {
            Lost::Body
        });
        self.state = State::Resync;
    }

    /// Consumes what it can of `input`; returns how many bytes it consumed. Stops only when it
    /// needs more data than `input` holds.
    fn process(&mut self, input: &[u8], h: &mut impl Handler) -> usize {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::Dead => return input.len(),
                State::Resync => match find_message_start(rest, self.requests) {
                    Some(i) => {
                        pos += i;
                        self.state = State::Head;
                    }
                    None => return input.len().saturating_sub(RESYNC_TAIL).max(pos),
                },
                State::Head => {
                    if rest.is_empty() {
                        return pos;
                    }
                    if rest.starts_with(H2_PREFACE) {
                        // HTTP/2 with prior knowledge or after ALPN: binary frames from here on,
                        // which this parser does not read.
                        self.state = State::Dead;
                        return input.len();
                    }
                    // A long head arriving in small calls is parsed again only once its end may
                    // be there, so feeding it byte by byte costs O(n), not O(n^2). Short heads
                    // are parsed at every call so that garbage is noticed early.
                    if rest.len() > EARLY_PARSE {
                        let from = self.head_checked.saturating_sub(3).min(rest.len());
                        if !rest[from..]
                            .windows(2)
                            .any(|w| w == b"\n\n" || w == b"\n\r")
                        {
                            self.head_checked = rest.len();
                            return pos;
                        }
                    }
                    self.head_checked = 0;
                    match self.parse_head(rest) {
                        HeadParse::Partial => {
                            self.head_checked = rest.len();
                            return pos;
                        }
                        HeadParse::Invalid => {
                            self.fail(h);
                            // Skip at least one byte so the resync cannot find the same start.
                            pos += 1;
                        }
                        HeadParse::Done(n, head, framing) => {
                            pos += n;
                            match h.head(&head) {
                                BodyRule::Upgrade => {
                                    self.state = State::Dead;
                                    return input.len();
                                }
                                BodyRule::None => h.end(),
                                BodyRule::Framed => match framing {
                                    Framing::Length(0) => h.end(),
                                    Framing::Length(n) => self.state = State::Length(n),
                                    Framing::Chunked => self.state = State::Chunked(Chunk::Size),
                                    Framing::UntilClose => self.state = State::UntilClose,
                                    Framing::Invalid => {
                                        self.state = State::Length(0);
                                        self.fail(h);
                                    }
                                },
                            }
                        }
                    }
                }
                State::Length(left) => {
                    if rest.is_empty() {
                        return pos;
                    }
                    let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    h.body(&rest[..take]);
                    pos += take;
                    let left = left - take as u64;
                    if left == 0 {
                        self.state = State::Head;
                        h.end();
                    } else {
                        self.state = State::Length(left);
                    }
                }
                State::UntilClose => {
                    if rest.is_empty() {
                        return pos;
                    }
                    if h.body(rest) {
                        self.state = State::Head;
                        h.end();
                    }
                    return input.len();
                }
                State::Chunked(c) => {
                    if rest.is_empty() {
                        return pos;
                    }
                    match c {
                        Chunk::Size => {
                            let Some(eol) = memchr(b'\n', rest) else {
                                return pos;
                            };
                            match parse_chunk_size(&rest[..eol]) {
                                Some(0) => self.state = State::Chunked(Chunk::Trailer),
                                Some(n) => self.state = State::Chunked(Chunk::Data(n)),
                                None => {
                                    self.fail(h);
                                    continue;
                                }
                            }
                            pos += eol + 1;
                        }
                        Chunk::Data(left) => {
                            let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                            h.body(&rest[..take]);
                            pos += take;
                            let left = left - take as u64;
                            self.state = State::Chunked(if left == 0 {
                                Chunk::DataEnd
                            } else {
                                Chunk::Data(left)
                            });
                        }
                        Chunk::DataEnd => {
                            // CRLF after the data (a bare LF is tolerated).
                            let Some(eol) = memchr(b'\n', rest) else {
                                if rest.len() > 1 || rest[0] != b'\r' {
                                    self.fail(h);
                                    continue;
                                }
                                return pos;
                            };
                            if eol > 1 || (eol == 1 && rest[0] != b'\r') {
                                self.fail(h);
                                continue;
                            }
                            pos += eol + 1;
                            self.state = State::Chunked(Chunk::Size);
                        }
                        Chunk::Trailer => {
                            let Some(eol) = memchr(b'\n', rest) else {
                                return pos;
                            };
                            let line = &rest[..eol];
                            pos += eol + 1;
                            if line.is_empty() || line == b"\r" {
                                self.state = State::Head;
                                h.end();
                            }
                        }
                    }
                }
            }
        }
    }

    fn parse_head(&self, data: &[u8]) -> HeadParse {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = Head::default();
        let (n, hdrs): (usize, &[httparse::Header]) = if self.requests {
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(data) {
                Ok(httparse::Status::Complete(n)) => {
                    head.method = req.method.unwrap_or_default().to_string();
                    head.path = req.path.unwrap_or_default().to_string();
                    (n, req.headers)
                }
                Ok(httparse::Status::Partial) => return HeadParse::Partial,
                Err(_) => return HeadParse::Invalid,
            }
        } else {
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(data) {
                Ok(httparse::Status::Complete(n)) => {
                    head.status = resp.code.unwrap_or_default();
                    (n, resp.headers)
                }
                Ok(httparse::Status::Partial) => return HeadParse::Partial,
                Err(_) => return HeadParse::Invalid,
            }
        };
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut invalid = false;
        for hd in hdrs {
            let v = hd.value;
            if hd.name.eq_ignore_ascii_case("content-length") {
                match parse_decimal(v) {
                    Some(l) if length.is_none() || length == Some(l) => length = Some(l),
                    _ => invalid = true,
                }
            } else if hd.name.eq_ignore_ascii_case("transfer-encoding") {
                // Chunked must be the last coding; anything else cannot be framed.
                let last = v.rsplit(|&b| b == b',').next().unwrap_or_default();
                if trim(last).eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else {
                    invalid = true;
                }
            } else if hd.name.eq_ignore_ascii_case("host") {
                head.host = Some(String::from_utf8_lossy(trim(v)).into_owned());
            } else if hd.name.eq_ignore_ascii_case("content-type") {
                head.content_type = String::from_utf8_lossy(trim(v)).to_ascii_lowercase();
            } else if hd.name.eq_ignore_ascii_case("content-encoding") {
                head.content_encoding = String::from_utf8_lossy(trim(v)).to_ascii_lowercase();
            }
        }
        let framing = if invalid {
            Framing::Invalid
        } else if chunked {
            Framing::Chunked
        } else if let Some(l) = length {
            Framing::Length(l)
        } else if self.requests {
            Framing::Length(0)
        } else {
            Framing::UntilClose
        };
        HeadParse::Done(n, head, framing)
    }
}

enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
    Invalid,
}

enum HeadParse {
    Partial,
    Invalid,
    Done(usize, Head, Framing),
}

fn memchr(b: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == b)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// `1a;ext=1\r` -> 26. Hex digits, optional extensions after `;`, at most 15 digits.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = trim(digits);
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

const METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"PUT ",
    b"PATCH ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
];

/// Where the next request line (`METHOD /`, `METHOD http`, `OPTIONS *`) or status line
/// (`HTTP/1.x`) starts. Anywhere, not only after a line feed: after a lost body the next message
/// follows the body's last byte directly. A false start (the text inside a body) fails to parse
/// as a head and the search goes on one byte later.
fn find_message_start(data: &[u8], requests: bool) -> Option<usize> {
    (0..data.len()).find(|&i| {
        let rest = &data[i..];
        if requests {
            METHODS.iter().any(|m| {
                rest.starts_with(m) && matches!(rest.get(m.len()), Some(b'/' | b'h' | b'*'))
            })
        } else {
            rest.starts_with(b"HTTP/1.")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug)]
    struct Rec {
        log: Vec<String>,
        body: Vec<u8>,
    }

    impl Handler for Rec {
        fn head(&mut self, head: &Head) -> BodyRule {
            self.log.push(format!(
                "head {} {} {}",
                head.method, head.path, head.status
            ));
            BodyRule::Framed
        }
        fn body(&mut self, data: &[u8]) -> bool {
            self.body.extend_from_slice(data);
            false
        }
        fn end(&mut self) {
            let b = String::from_utf8_lossy(&self.body).into_owned();
            self.log.push(format!("end {b}"));
            self.body.clear();
        }
        fn broken(&mut self, what: Lost) {
            self.log.push(format!("broken {what:?}"));
            self.body.clear();
        }
    }

    fn run(requests: bool, parts: &[&[u8]]) -> Vec<String> {
        let mut p = Parser::new(requests);
        let mut r = Rec::default();
        for part in parts {
            p.feed(part, false, &mut r);
        }
        r.log
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let msg: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
        for split in 0..msg.len() {
            let log = run(false, &[&msg[..split], &msg[split..]]);
            assert_eq!(
                log,
                ["head   200", "end hello world", "head   204", "end "],
                "split at {split}"
            );
        }
    }

    #[test]
    fn resync_after_garbage() {
        let log = run(
            true,
            &[b"garbage\r\nmore\nPOST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"],
        );
        assert_eq!(log, ["broken Garbage", "head POST /x 0", "end hi"]);
    }

    #[test]
    fn truncation_breaks_and_resyncs() {
        let mut p = Parser::new(true);
        let mut r = Rec::default();
        p.feed(
            b"POST /a HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc",
            true,
            &mut r,
        );
        p.feed(b"rest of the lost body\r\n", false, &mut r);
        p.feed(b"GET /b HTTP/1.1\r\n\r\n", false, &mut r);
        assert_eq!(
            r.log,
            ["head POST /a 0", "broken Body", "head GET /b 0", "end "]
        );
    }
}
