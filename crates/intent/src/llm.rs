//! What an LLM API exchange says: which API an HTTP request targets ([`classify`]), the summary
//! of a request body ([`summarize_request`]), and the summary of a response, plain JSON or
//! server-sent events ([`ResponseAcc`]).
//!
//! Four API shapes are known:
//! - `openai-chat`: `POST .../chat/completions` (OpenAI, Azure OpenAI, most gateways and local
//!   servers that copy it). Tool calls in `choices[].message.tool_calls[]`, or streamed as
//!   `choices[].delta.tool_calls[]` fragments keyed by `index`.
//! - `openai-responses`: `POST .../v1/responses`. Tool calls are `output[]` items of type
//!   `function_call`, or streamed as `response.output_item.added` + `response.function_call_arguments.delta`.
//! - `anthropic-messages`: `POST .../v1/messages`. Tool calls are `content[]` blocks of type
//!   `tool_use`, or streamed as `content_block_start` + `input_json_delta` fragments.
//! - `gemini-generate`: `POST .../models/MODEL:generateContent` and `:streamGenerateContent`
//!   (Gemini API and Vertex AI; the model and streaming are in the path). Tool calls are
//!   `candidates[].content.parts[].functionCall` parts, whole in each streamed chunk (SSE).
//!
//! Everything here is best effort over hostile input: missing or mistyped fields give `None` or
//! zero, never an error, and every accumulation is bounded.

use crate::Redactor;
use proctor_model::ToolCall;
use serde_json::Value;

/// Most bytes of a tool call's arguments kept (then redacted).
pub const MAX_ARGS: usize = 4096;
/// Most tool calls kept per response.
pub const MAX_TOOL_CALLS: usize = 64;
/// Most tool names kept per request.
pub const MAX_TOOLS: usize = 256;
/// Longest model or tool name kept.
const MAX_NAME: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAiChat,
    OpenAiResponses,
    AnthropicMessages,
    GeminiGenerate,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::OpenAiChat => "openai-chat",
            Api::OpenAiResponses => "openai-responses",
            Api::AnthropicMessages => "anthropic-messages",
            Api::GeminiGenerate => "gemini-generate",
        }
    }
}

/// The API a request targets, from its method and target (path suffixes, so gateway prefixes
/// such as `/proxy/openai/v1/chat/completions` still match; the query string is ignored).
pub fn classify(method: &str, target: &str) -> Option<Api> {
    if method != "POST" {
        return None;
    }
    // An absolute-form target (through a proxy) has a scheme and host first.
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let path = path.trim_end_matches('/');
    if path.ends_with("/chat/completions") {
        Some(Api::OpenAiChat)
    } else if path.ends_with("/v1/responses") || path.ends_with("/openai/responses") {
        Some(Api::OpenAiResponses)
    } else if path.ends_with("/v1/messages") {
        Some(Api::AnthropicMessages)
    } else if path.ends_with(":generateContent") || path.ends_with(":streamGenerateContent") {
        Some(Api::GeminiGenerate)
    } else {
        None
    }
}

/// What the request target says that the body does not (Gemini: the model, `models/M:method`,
/// and whether the answer is streamed): (model, streamed).
fn from_target(api: Api, target: &str) -> (Option<String>, bool) {
    if api != Api::GeminiGenerate {
        return (None, false);
    }
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let (model, method) = last.split_once(':').unwrap_or((last, ""));
    let model = (!model.is_empty()).then(|| bounded_name(model));
    (model, method == "streamGenerateContent")
}

/// Fields of an LLM request body.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RequestSummary {
    pub model: Option<String>,
    pub stream: bool,
    pub messages: u32,
    pub tools: Vec<String>,
}

/// Summarises a request to `target` (its path) with this body (`body` may be cut at
/// [`crate::body::MAX_BODY`]; then only the model and stream flag are looked for, textually).
pub fn summarize_request(api: Api, target: &str, body: &[u8]) -> RequestSummary {
    let (path_model, path_stream) = from_target(api, target);
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return RequestSummary {
            model: scan_string_field(body, b"\"model\"").or(path_model),
            stream: path_stream || scan_true_field(body, b"\"stream\""),
            ..Default::default()
        };
    };
    let mut s = RequestSummary {
        model: v
            .get("model")
            .and_then(Value::as_str)
            .map(bounded_name)
            .or(path_model),
        stream: path_stream || v.get("stream").and_then(Value::as_bool).unwrap_or(false),
        ..Default::default()
    };
    let count = |x: Option<&Value>| match x {
        Some(Value::Array(a)) => a.len() as u32,
        Some(Value::String(_)) | Some(Value::Object(_)) => 1,
        _ => 0,
    };
    s.messages = match api {
        Api::OpenAiResponses => count(v.get("input")),
        Api::GeminiGenerate => count(v.get("contents")),
        _ => count(v.get("messages")),
    };
    if api == Api::GeminiGenerate {
        gemini_tools(&v, &mut s.tools);
        return s;
    }
    let tools = v
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for t in tools.take(MAX_TOOLS) {
        // OpenAI chat: {"type":"function","function":{"name":..}}; Responses and Anthropic:
        // {"name":..}; built-in tools: only a type ("web_search", "computer_20250124", ...).
        let name = t
            .get("function")
            .and_then(|f| f.get("name"))
            .or_else(|| t.get("name"))
            .or_else(|| t.get("type"))
            .and_then(Value::as_str);
        if let Some(n) = name {
            s.tools.push(bounded_name(n));
        }
    }
    // The deprecated OpenAI `functions` list.
    let functions = v
        .get("functions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for f in functions.take(MAX_TOOLS.saturating_sub(s.tools.len())) {
        if let Some(n) = f.get("name").and_then(Value::as_str) {
            s.tools.push(bounded_name(n));
        }
    }
    s
}

/// Gemini's `tools`: each entry a `functionDeclarations` list or one built-in tool, named by its
/// key (`googleSearch`, `codeExecution`, ...).
fn gemini_tools(v: &Value, out: &mut Vec<String>) {
    for t in arr(v.get("tools")) {
        let Some(t) = t.as_object() else { continue };
        for (key, val) in t {
            if key == "functionDeclarations" {
                for f in arr(Some(val)) {
                    if let Some(n) = f.get("name").and_then(Value::as_str) {
                        if out.len() < MAX_TOOLS {
                            out.push(bounded_name(n));
                        }
                    }
                }
            } else if out.len() < MAX_TOOLS {
                out.push(bounded_name(key));
            }
        }
    }
}

/// `"model": "x"` found textually in a body too large (or too broken) to parse.
fn scan_string_field(body: &[u8], key: &[u8]) -> Option<String> {
    let i = find(body, key)?;
    let rest = &body[i + key.len()..];
    let rest = skip_ws(rest).strip_prefix(b":")?;
    let rest = skip_ws(rest).strip_prefix(b"\"")?;
    let end = rest.iter().take(MAX_NAME).position(|&b| b == b'"')?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

fn scan_true_field(body: &[u8], key: &[u8]) -> bool {
    find(body, key).is_some_and(|i| {
        let rest = skip_ws(&body[i + key.len()..]);
        rest.strip_prefix(b":")
            .is_some_and(|r| skip_ws(r).starts_with(b"true"))
    })
}

fn skip_ws(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bounded_name(s: &str) -> String {
    truncate(s, MAX_NAME).to_string()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One tool call being assembled.
#[derive(Debug, Default)]
struct ToolAcc {
    /// The index the API keys fragments with (tool call index, content block index, output index).
    key: u64,
    name: String,
    args: String,
    /// Arguments reached [`MAX_ARGS`]: later fragments are dropped.
    full: bool,
    /// Anthropic: `input` arrives as JSON fragments whose concatenation is re-serialised.
    anthropic_stream: bool,
}

/// Accumulates what a response says, from one JSON body or from successive SSE events.
#[derive(Debug, Default)]
pub struct ResponseAcc {
    pub model: Option<String>,
    pub finish_reason: Option<String>,
    pub text_bytes: u64,
    tools: Vec<ToolAcc>,
    /// The stream said it was over (`[DONE]`, `message_stop`, `response.completed`).
    pub done: bool,
}

impl ResponseAcc {
    /// A complete, non-streamed JSON body.
    pub fn json_body(&mut self, api: Api, body: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        self.set_model(v.get("model"));
        match api {
            Api::OpenAiChat => {
                for (ci, c) in arr(v.get("choices")).enumerate() {
                    self.set_finish(c.get("finish_reason"));
                    let Some(m) = c.get("message") else { continue };
                    self.text(m.get("content"));
                    let key = choice_key(c, ci);
                    for (i, tc) in arr(m.get("tool_calls")).enumerate() {
                        let f = tc.get("function");
                        let t = self.tool(key | i as u64);
                        set_name(t, f.and_then(|f| f.get("name")));
                        append_args(t, f.and_then(|f| f.get("arguments")));
                    }
                    // The deprecated single function_call.
                    if let Some(fc) = m.get("function_call") {
                        let t = self.tool(u64::MAX);
                        set_name(t, fc.get("name"));
                        append_args(t, fc.get("arguments"));
                    }
                }
            }
            Api::AnthropicMessages => {
                self.set_finish(v.get("stop_reason"));
                for (i, block) in arr(v.get("content")).enumerate() {
                    match block.get("type").and_then(Value::as_str) {
                        Some("text") => self.text(block.get("text")),
                        Some("tool_use") | Some("server_tool_use") => {
                            let t = self.tool(i as u64);
                            set_name(t, block.get("name"));
                            if let Some(input) = block.get("input") {
                                push_bounded(t, &input.to_string());
                            }
                        }
                        _ => {}
                    }
                }
            }
            Api::OpenAiResponses => {
                self.set_finish(v.get("status"));
                self.responses_output(&v);
            }
            Api::GeminiGenerate => self.gemini_chunk(&v),
        }
    }

    /// A Gemini response, or one streamed chunk of it (the same shape): text and function-call
    /// parts of each candidate; a call comes whole, so each part is a call of its own.
    fn gemini_chunk(&mut self, v: &Value) {
        self.set_model(v.get("modelVersion"));
        for (ci, c) in arr(v.get("candidates")).enumerate() {
            if c.get("finishReason").is_some() {
                self.set_finish(c.get("finishReason"));
                self.done = true;
            }
            let key = choice_key(c, ci);
            let parts = c.get("content").and_then(|x| x.get("parts"));
            for p in arr(parts) {
                self.text(p.get("text"));
                let Some(fc) = p.get("functionCall") else {
                    continue;
                };
                let n = self
                    .tools
                    .iter()
                    .filter(|t| t.key >> 32 == key >> 32)
                    .count();
                let t = self.tool(key | n as u64);
                set_name(t, fc.get("name"));
                if let Some(args) = fc.get("args") {
                    push_bounded(t, &args.to_string());
                }
            }
        }
    }

    fn responses_output(&mut self, v: &Value) {
        for (i, item) in arr(v.get("output")).enumerate() {
            match item.get("type").and_then(Value::as_str) {
                Some("function_call") | Some("custom_tool_call") => {
                    let t = self.tool(i as u64);
                    set_name(t, item.get("name"));
                    if t.args.is_empty() {
                        append_args(t, item.get("arguments").or_else(|| item.get("input")));
                    }
                }
                Some("local_shell_call") => self.local_shell_call(i as u64, item),
                Some("message") => {
                    for c in arr(item.get("content")) {
                        self.text(c.get("text"));
                    }
                }
                _ => {}
            }
        }
    }

    /// A Responses `local_shell_call` item: the call comes whole, its command an argv in
    /// `action` (`{"type":"exec","command":[...],"env":{...}}`). Reported as
    /// `{"command":[...]}`: the argv is what the model asked to run; the action's other strings
    /// (its type, the environment) would read as commands to whoever checks the calls.
    fn local_shell_call(&mut self, key: u64, item: &Value) {
        let t = self.tool(key);
        if t.name.is_empty() {
            t.name = "local_shell".to_string();
        }
        if t.args.is_empty() {
            if let Some(argv) = item.get("action").and_then(|a| a.get("command")) {
                push_bounded(t, &serde_json::json!({ "command": argv }).to_string());
            }
        }
    }

    /// The `data` of one server-sent event.
    pub fn sse_event(&mut self, api: Api, data: &[u8]) {
        if data == b"[DONE]" {
            self.done = true;
            return;
        }
        if api == Api::OpenAiChat && self.openai_chunk_typed(data) {
            return;
        }
        self.sse_event_value(api, data);
    }

    /// [`ResponseAcc::sse_event`] through a generic `serde_json::Value`: every shape.
    fn sse_event_value(&mut self, api: Api, data: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        match api {
            Api::GeminiGenerate => self.gemini_chunk(&v),
            Api::OpenAiChat => {
                self.set_model(v.get("model"));
                for (ci, c) in arr(v.get("choices")).enumerate() {
                    self.set_finish(c.get("finish_reason"));
                    let Some(d) = c.get("delta") else { continue };
                    self.text(d.get("content"));
                    let key = choice_key(c, ci);
                    for (pos, tc) in arr(d.get("tool_calls")).enumerate() {
                        let index = tc.get("index").and_then(Value::as_u64);
                        let key = key | index.unwrap_or(pos as u64).min(0xffff_ffff);
                        let f = tc.get("function");
                        let t = self.tool(key);
                        set_name(t, f.and_then(|f| f.get("name")));
                        append_args(t, f.and_then(|f| f.get("arguments")));
                    }
                    if let Some(fc) = d.get("function_call") {
                        let t = self.tool(u64::MAX);
                        set_name(t, fc.get("name"));
                        append_args(t, fc.get("arguments"));
                    }
                }
            }
            Api::AnthropicMessages => {
                let key = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                match v.get("type").and_then(Value::as_str) {
                    Some("message_start") => {
                        let m = v.get("message");
                        self.set_model(m.and_then(|m| m.get("model")));
                        self.set_finish(m.and_then(|m| m.get("stop_reason")));
                    }
                    Some("content_block_start") => {
                        let b = v.get("content_block");
                        let ty = b.and_then(|b| b.get("type")).and_then(Value::as_str);
                        match ty {
                            Some("tool_use") | Some("server_tool_use") => {
                                let t = self.tool(key);
                                set_name(t, b.and_then(|b| b.get("name")));
                                t.anthropic_stream = true;
                            }
                            Some("text") => self.text(b.and_then(|b| b.get("text"))),
                            _ => {}
                        }
                    }
                    Some("content_block_delta") => {
                        let d = v.get("delta");
                        match d.and_then(|d| d.get("type")).and_then(Value::as_str) {
                            Some("text_delta") => self.text(d.and_then(|d| d.get("text"))),
                            Some("input_json_delta") => {
                                if let Some(t) = self.tools.iter_mut().find(|t| t.key == key) {
                                    append_args(t, d.and_then(|d| d.get("partial_json")));
                                }
                            }
                            _ => {}
                        }
                    }
                    Some("message_delta") => {
                        self.set_finish(v.get("delta").and_then(|d| d.get("stop_reason")));
                    }
                    Some("message_stop") => self.done = true,
                    _ => {}
                }
            }
            Api::OpenAiResponses => {
                let key = v.get("output_index").and_then(Value::as_u64).unwrap_or(0);
                match v.get("type").and_then(Value::as_str) {
                    Some("response.created") | Some("response.in_progress") => {
                        self.set_model(v.get("response").and_then(|r| r.get("model")));
                    }
                    Some("response.output_item.added") | Some("response.output_item.done") => {
                        let Some(item) = v.get("item") else { return };
                        match item.get("type").and_then(Value::as_str) {
                            Some("function_call") | Some("custom_tool_call") => {
                                let done = v.get("type").and_then(Value::as_str)
                                    == Some("response.output_item.done");
                                let t = self.tool(key);
                                set_name(t, item.get("name"));
                                // The whole arguments, for a stream that sent no deltas.
                                if done && t.args.is_empty() {
                                    append_args(
                                        t,
                                        item.get("arguments").or_else(|| item.get("input")),
                                    );
                                }
                            }
                            Some("local_shell_call") => self.local_shell_call(key, item),
                            _ => {}
                        }
                    }
                    Some("response.function_call_arguments.delta")
                    | Some("response.custom_tool_call_input.delta") => {
                        let t = self.tool(key);
                        append_args(t, v.get("delta"));
                    }
                    Some("response.output_text.delta") => self.text(v.get("delta")),
                    Some("response.completed")
                    | Some("response.incomplete")
                    | Some("response.failed") => {
                        let r = v.get("response");
                        self.set_model(r.and_then(|r| r.get("model")));
                        self.set_finish(r.and_then(|r| r.get("status")));
                        self.done = true;
                    }
                    _ => {}
                }
            }
        }
    }

    /// The common OpenAI chunk through typed structs, which skip what they do not name instead
    /// of building a map of every field (about three times faster on content deltas). Returns
    /// false, having changed nothing, when the chunk has another shape (the `Value` path then
    /// takes it, with the same results).
    fn openai_chunk_typed(&mut self, data: &[u8]) -> bool {
        let Ok(c) = serde_json::from_slice::<typed::ChatChunk>(data) else {
            return false;
        };
        if c.choices
            .iter()
            .any(|ch| ch.delta.as_ref().is_some_and(|d| d.function_call.is_some()))
        {
            return false;
        }
        if let Some(m) = c.model.filter(|m| !m.is_empty()) {
            self.model = Some(bounded_name(&m));
        }
        for (ci, ch) in c.choices.into_iter().enumerate() {
            if let Some(f) = ch.finish_reason {
                self.finish_reason = Some(bounded_name(&f));
            }
            let Some(d) = ch.delta else { continue };
            if let Some(t) = d.content {
                self.text_bytes += t.len() as u64;
            }
            let key = ch.index.unwrap_or(ci as u64).min(0xffff) << 32;
            for (pos, tc) in d.tool_calls.into_iter().flatten().enumerate() {
                let key = key | tc.index.unwrap_or(pos as u64).min(0xffff_ffff);
                let t = self.tool(key);
                if let Some(f) = tc.function {
                    if let Some(n) = f.name.filter(|n| !n.is_empty()) {
                        if t.name.is_empty() {
                            t.name = bounded_name(&n);
                        }
                    }
                    if let Some(a) = f.arguments {
                        push_bounded(t, &a);
                    }
                }
            }
        }
        true
    }

    fn set_model(&mut self, m: Option<&Value>) {
        if let Some(m) = m.and_then(Value::as_str) {
            if !m.is_empty() {
                self.model = Some(bounded_name(m));
            }
        }
    }

    fn set_finish(&mut self, f: Option<&Value>) {
        if let Some(f) = f.and_then(Value::as_str) {
            self.finish_reason = Some(bounded_name(f));
        }
    }

    fn text(&mut self, t: Option<&Value>) {
        match t {
            Some(Value::String(s)) => self.text_bytes += s.len() as u64,
            // Content given as parts: [{"type":"text","text":...}].
            Some(Value::Array(parts)) => {
                for p in parts {
                    if let Some(s) = p.get("text").and_then(Value::as_str) {
                        self.text_bytes += s.len() as u64;
                    }
                }
            }
            _ => {}
        }
    }

    /// The tool call with this key, created if new (within [`MAX_TOOL_CALLS`]; past that, a
    /// scratch entry that is never reported).
    fn tool(&mut self, key: u64) -> &mut ToolAcc {
        let at = match self.tools.iter().position(|t| t.key == key) {
            Some(i) => i,
            None => {
                if self.tools.len() > MAX_TOOL_CALLS {
                    self.tools.pop();
                }
                self.tools.push(ToolAcc {
                    key,
                    ..Default::default()
                });
                self.tools.len() - 1
            }
        };
        &mut self.tools[at]
    }

    /// The tool calls, in order, arguments bounded and redacted.
    pub fn tool_calls(&self, redactor: &Redactor) -> Vec<ToolCall> {
        let mut calls: Vec<&ToolAcc> = self.tools.iter().take(MAX_TOOL_CALLS).collect();
        calls.sort_by_key(|t| t.key);
        calls
            .into_iter()
            .filter(|t| !t.name.is_empty() || !t.args.is_empty())
            .map(|t| {
                let mut args = t.args.clone();
                if t.anthropic_stream && !t.full {
                    // Same text as the non-streamed form (`input` serialised).
                    args = match serde_json::from_str::<Value>(&args) {
                        Ok(v) => v.to_string(),
                        Err(_) if args.trim().is_empty() => "{}".to_string(),
                        Err(_) => args,
                    };
                }
                let (red, _) = redactor.redact(truncate(&args, MAX_ARGS).as_bytes());
                ToolCall {
                    name: t.name.clone(),
                    arguments: String::from_utf8_lossy(&red).into_owned(),
                }
            })
            .collect()
    }
}

/// Typed shapes of the hottest events. Every field is optional, so that a missing one is not an
/// error; a field of another type is, and sends the event to the `Value` path.
mod typed {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct ChatChunk {
        pub model: Option<String>,
        #[serde(default)]
        pub choices: Vec<Choice>,
    }

    #[derive(Deserialize)]
    pub struct Choice {
        pub index: Option<u64>,
        pub finish_reason: Option<String>,
        pub delta: Option<Delta>,
    }

    #[derive(Deserialize)]
    pub struct Delta {
        pub content: Option<String>,
        pub tool_calls: Option<Vec<ToolDelta>>,
        pub function_call: Option<serde::de::IgnoredAny>,
    }

    #[derive(Deserialize)]
    pub struct ToolDelta {
        pub index: Option<u64>,
        pub function: Option<FunctionDelta>,
    }

    #[derive(Deserialize)]
    pub struct FunctionDelta {
        pub name: Option<String>,
        pub arguments: Option<String>,
    }
}

/// The high half of a tool-call key: with n > 1 every choice numbers its tool calls from 0.
fn choice_key(choice: &Value, position: usize) -> u64 {
    let index = choice.get("index").and_then(Value::as_u64);
    index.unwrap_or(position as u64).min(0xffff) << 32
}

fn arr(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

fn set_name(t: &mut ToolAcc, n: Option<&Value>) {
    if let Some(n) = n.and_then(Value::as_str) {
        if !n.is_empty() && t.name.is_empty() {
            t.name = bounded_name(n);
        }
    }
}

fn append_args(t: &mut ToolAcc, a: Option<&Value>) {
    match a {
        Some(Value::String(s)) => push_bounded(t, s),
        // Some servers send the arguments as an object rather than JSON text.
        Some(v @ Value::Object(_)) => push_bounded(t, &v.to_string()),
        _ => {}
    }
}

fn push_bounded(t: &mut ToolAcc, s: &str) {
    if t.full {
        return;
    }
    // Keep a little more than MAX_ARGS so a secret straddling the bound is still recognisable
    // when the final text is cut and redacted.
    let room = (MAX_ARGS + 256).saturating_sub(t.args.len());
    if s.len() > room {
        t.args.push_str(truncate(s, room));
        t.full = true;
    } else {
        t.args.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_by_suffix() {
        assert_eq!(
            classify("POST", "/v1/chat/completions"),
            Some(Api::OpenAiChat)
        );
        assert_eq!(
            classify(
                "POST",
                "/openai/deployments/gpt4/chat/completions?api-version=2024-02-01"
            ),
            Some(Api::OpenAiChat)
        );
        assert_eq!(
            classify("POST", "/api/anthropic/v1/messages"),
            Some(Api::AnthropicMessages)
        );
        assert_eq!(
            classify("POST", "https://api.openai.com/v1/responses"),
            Some(Api::OpenAiResponses)
        );
        assert_eq!(classify("GET", "/v1/chat/completions"), None);
        assert_eq!(classify("POST", "/v1/messages/count_tokens"), None);
        assert_eq!(classify("POST", "/v1/embeddings"), None);
    }

    #[test]
    fn typed_and_generic_openai_paths_agree() {
        let events: &[&str] = &[
            r#"{"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}"#,
            r#"{"model":"","choices":[{"index":0,"delta":{"content":null}}]}"#,
            r#"{"choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"run_shell","arguments":"{\"c"}}]}}]}"#,
            r#"{"choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"md\": 1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"name":"x","arguments":{"o":1}}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"abc"}]}}]}"#,
            r#"{"choices":[{"delta":{"function_call":{"name":"legacy","arguments":"{}"}}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"model":7,"choices":"no"}"#,
            r#"not json"#,
        ];
        let mut fast = ResponseAcc::default();
        let mut slow = ResponseAcc::default();
        for e in events {
            fast.sse_event(Api::OpenAiChat, e.as_bytes());
            slow.sse_event_value(Api::OpenAiChat, e.as_bytes());
        }
        let r = Redactor::new();
        assert_eq!(fast.model, slow.model);
        assert_eq!(fast.finish_reason, slow.finish_reason);
        assert_eq!(fast.text_bytes, slow.text_bytes);
        assert_eq!(fast.tool_calls(&r), slow.tool_calls(&r));
        assert_eq!(fast.text_bytes, 5);
        assert_eq!(fast.tool_calls(&r).len(), 3);
    }

    #[test]
    fn responses_local_shell_and_whole_item_calls_are_tool_calls() {
        let r = Redactor::new();
        // Streamed: a local_shell_call comes whole (added, then done); a function call whose
        // stream sent no argument deltas has its arguments in the done item.
        let events: &[&str] = &[
            r#"{"type":"response.created","response":{"model":"gpt-5"}}"#,
            r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"local_shell_call","action":{"type":"exec","command":["bash","-lc","ls -la"],"env":{"X":"exec rm"}}}}"#,
            r#"{"type":"response.output_item.done","output_index":0,"item":{"type":"local_shell_call","action":{"type":"exec","command":["bash","-lc","ls -la"],"env":{}}}}"#,
            r#"{"type":"response.output_item.done","output_index":1,"item":{"type":"function_call","name":"shell","arguments":"{\"command\":\"git status\"}"}}"#,
            r#"{"type":"response.completed","response":{"status":"completed"}}"#,
        ];
        let mut acc = ResponseAcc::default();
        for e in events {
            acc.sse_event(Api::OpenAiResponses, e.as_bytes());
        }
        assert!(acc.done);
        let calls = acc.tool_calls(&r);
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(calls[0].name, "local_shell");
        assert_eq!(calls[0].arguments, r#"{"command":["bash","-lc","ls -la"]}"#);
        assert_eq!(calls[1].name, "shell");
        assert_eq!(calls[1].arguments, r#"{"command":"git status"}"#);
        // Deltas and a done item with the same arguments: counted once.
        let mut acc = ResponseAcc::default();
        for e in [
            r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","name":"shell","arguments":""}}"#,
            r#"{"type":"response.function_call_arguments.delta","output_index":0,"delta":"{\"command\":"}"#,
            r#"{"type":"response.function_call_arguments.delta","output_index":0,"delta":"\"ls\"}"}"#,
            r#"{"type":"response.output_item.done","output_index":0,"item":{"type":"function_call","name":"shell","arguments":"{\"command\":\"ls\"}"}}"#,
        ] {
            acc.sse_event(Api::OpenAiResponses, e.as_bytes());
        }
        assert_eq!(acc.tool_calls(&r)[0].arguments, r#"{"command":"ls"}"#);
        // Not streamed: the same item in `output`.
        let mut acc = ResponseAcc::default();
        acc.json_body(
            Api::OpenAiResponses,
            br#"{"status":"completed","output":[{"type":"local_shell_call","action":{"type":"exec","command":["ls"]}}]}"#,
        );
        assert_eq!(acc.tool_calls(&r)[0].arguments, r#"{"command":["ls"]}"#);
    }

    #[test]
    fn request_summary() {
        let body = br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"},{"role":"system","content":"x"}],"tools":[{"type":"function","function":{"name":"run_shell","parameters":{}}},{"type":"function","function":{"name":"read_file"}}]}"#;
        let s = summarize_request(Api::OpenAiChat, "/v1/chat/completions", body);
        assert_eq!(s.model.as_deref(), Some("gpt-4o"));
        assert!(s.stream);
        assert_eq!(s.messages, 2);
        assert_eq!(s.tools, ["run_shell", "read_file"]);
        // Cut body: textual fallback.
        let s = summarize_request(Api::OpenAiChat, "/v1/chat/completions", &body[..60]);
        assert_eq!(s.model.as_deref(), Some("gpt-4o"));
        assert!(s.stream);
    }

    #[test]
    fn gemini_requests_and_responses() {
        let path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse";
        assert_eq!(classify("POST", path), Some(Api::GeminiGenerate));
        assert_eq!(
            classify(
                "POST",
                "/v1/projects/p/locations/l/publishers/google/models/g:generateContent"
            ),
            Some(Api::GeminiGenerate)
        );
        assert_eq!(classify("POST", "/v1beta/models/g:countTokens"), None);
        let body = br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":[{"name":"run_shell_command"},{"name":"read_file"}]},{"googleSearch":{}}]}"#;
        let s = summarize_request(Api::GeminiGenerate, path, body);
        assert_eq!(s.model.as_deref(), Some("gemini-2.5-pro"));
        assert!(s.stream);
        assert_eq!(s.messages, 1);
        assert_eq!(s.tools, ["run_shell_command", "read_file", "googleSearch"]);
        let cut = summarize_request(
            Api::GeminiGenerate,
            "/v1beta/models/m:generateContent",
            b"{\"con",
        );
        assert_eq!((cut.model.as_deref(), cut.stream), (Some("m"), false));
        // Streamed: text in pieces, then the calls whole (two in one chunk), then the finish.
        let chunks: &[&str] = &[
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Next "}]},"index":0}],"modelVersion":"gemini-2.5-pro"}"#,
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"I run"},{"functionCall":{"name":"run_shell_command","args":{"command":"git status"}}},{"functionCall":{"name":"read_file","args":{"path":"a"}}}]},"finishReason":"STOP","index":0}]}"#,
        ];
        let mut acc = ResponseAcc::default();
        for c in chunks {
            acc.sse_event(Api::GeminiGenerate, c.as_bytes());
        }
        let r = Redactor::new();
        let calls = acc.tool_calls(&r);
        assert_eq!(acc.model.as_deref(), Some("gemini-2.5-pro"));
        assert_eq!(acc.finish_reason.as_deref(), Some("STOP"));
        assert!(acc.done);
        assert_eq!(acc.text_bytes, 10);
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "run_shell_command");
        assert_eq!(calls[0].arguments, r#"{"command":"git status"}"#);
        assert_eq!(calls[1].name, "read_file");
        // The same answer as one JSON body.
        let mut one = ResponseAcc::default();
        one.json_body(Api::GeminiGenerate, chunks[1].as_bytes());
        assert_eq!(one.tool_calls(&r), calls);
    }
}
