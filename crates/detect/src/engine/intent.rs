//! `INTENT_MISMATCH`: when the model's tool calls are captured (`llm_response` records), a
//! tool call the agent starts (a shell or interpreter with a `-c` script, at the top of its
//! chain) must be explained by one the model asked for recently: one of the string values of
//! its arguments (the command) must appear in the script. Agents wrap commands (Claude Code
//! sources a shell snapshot and evals the command shell-quoted), so the test is containment of
//! the command's first line (up to 48 characters), as whole words, in the script or in one of
//! its shell words after unquoting (to a few levels of nesting), not equality. Without captured responses
//! nothing is judged: a missing capture must not look like an agent acting on its own. Two
//! kinds of script are not judged: the agent's own scripts named in its profile
//! (`own_scripts`), and a script the kernel cut at its argv limit (`argv_truncated`), whose
//! end, where wrappers put the command, is not in the record.
//!
//! Agents start a tool while its response is still streaming (Claude Code's streaming tool
//! executor runs a Bash call at the end of its content block, before the message ends), and
//! the response's record, with its tool calls, is written when the response ends. So a script
//! that no tool call explains yet, started while a request of the agent was in flight, is held
//! until those requests are answered (at most [`INTENT_HOLD_NS`]): a tool call among the answers
//! that explains it settles it quietly; otherwise the alert goes out then, with the exec's time.
//!
//! Only the exchanges of the agent's own processes count (not those of a process inside a tool
//! call): code the agent runs could otherwise fake a model's answer asking for its next command.

use super::*;
use proctor_model::{LlmRequest, LlmResponse};

/// Tool calls remembered, and how long one explains what runs after it.
const MAX_TOOL_CALLS: usize = 64;
const INTENT_WINDOW_NS: u64 = 300 * NS;
/// The longest an unexplained script waits for the responses in flight when it started.
pub(super) const INTENT_HOLD_NS: u64 = 120 * NS;
/// Requests remembered as in flight, and scripts held, at most (the oldest go first: a held
/// script pushed out is judged at once).
const MAX_IN_FLIGHT: usize = 64;
const MAX_HELD: usize = 256;

/// An LLM request sent and not yet answered: its process, connection and time. (A connection's
/// number is unique within its process only: with the uprobes it is the TLS library's pointer,
/// which two processes of the same program can share.)
#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    pid: u32,
    conn: u64,
    ts_ns: u64,
}

/// A script no tool call explained when it started, waiting for the responses in flight then.
#[derive(Debug)]
pub(super) struct HeldIntent {
    key: String,
    alert: Alert,
    /// The script and its unquoted words (see `script_texts`).
    texts: Vec<String>,
    /// The requests it waits for.
    waits: Vec<InFlight>,
    /// Judged by then whatever came.
    until_ns: u64,
}
/// How deep quoted words are unquoted again (`bash -c "eval 'sh -c ...'"`).
const UNQUOTE_DEPTH: usize = 3;

/// The string values of a tool call's arguments (a JSON text), or the text itself.
fn argument_strings(arguments: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match serde_json::from_str::<serde_json::Value>(arguments) {
        Ok(v) => walk(&v, &mut out),
        Err(_) => out.push(arguments.to_string()),
    }
    out
}

/// The command string of an interpreter's argv. Python: the argument after `-c`. A shell
/// (bash, sh, dash): with `-c` among the options (alone or in a cluster such as `-lc`), the
/// first argument that is not an option, as the shell itself reads it (`bash -c -l SCRIPT`).
pub(super) fn script_of(interp: &str, argv: &[Bytes]) -> Option<String> {
    // The text as the shell reads it (newlines are newlines: a command on a line of its own is
    // a word of its own), not the escaped form records and summaries show.
    let args: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned())
        .collect();
    if interp.starts_with("python") {
        let i = args.iter().position(|a| a == "-c")?;
        return args.get(i + 1).cloned();
    }
    let mut c = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--" || a == "-" {
            return c.then(|| it.next()).flatten();
        }
        if let Some(long) = a.strip_prefix("--") {
            // The long options of bash that take a file argument.
            if long == "rcfile" || long == "init-file" {
                it.next();
            }
            continue;
        }
        let Some(flags) = a.strip_prefix('-').or_else(|| a.strip_prefix('+')) else {
            return c.then_some(a);
        };
        if flags.is_empty() {
            return c.then_some(a);
        }
        c |= a.starts_with('-') && flags.contains('c');
        // -o OPTION and -O SHOPT take the next argument.
        if flags.contains('o') || flags.contains('O') {
            it.next();
        }
    }
    None
}

/// The texts a command may appear in: the script and its shell words, unquoted again to
/// `UNQUOTE_DEPTH` levels (a word that does not split, e.g. unbalanced quotes, stays as is).
fn script_texts(script: &str) -> Vec<String> {
    let mut all = vec![script.to_string()];
    let mut level = vec![script.to_string()];
    for _ in 0..UNQUOTE_DEPTH {
        let next: Vec<String> = level
            .iter()
            .filter_map(|t| shlex::split(t))
            .flatten()
            .filter(|w| w.contains(char::is_whitespace) && !all.contains(w))
            .collect();
        if next.is_empty() {
            break;
        }
        all.extend(next.iter().cloned());
        level = next;
    }
    all
}

/// A byte that continues a word of a command line (a name, an option, a file name).
fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') || b >= 0x80
}

/// Does `text` hold `head` as whole words: not inside a longer word on either side (`ls` is not
/// in `false` or `lsof`)? A `cut` head (the tool call went on) may end inside a word.
fn contains_words(text: &str, head: &str, cut: bool) -> bool {
    let (t, h) = (text.as_bytes(), head.as_bytes());
    text.match_indices(head).any(|(i, _)| {
        let before = i == 0 || !word_byte(h[0]) || !word_byte(t[i - 1]);
        let end = i + h.len();
        let after = cut || end == t.len() || !word_byte(h[h.len() - 1]) || !word_byte(t[end]);
        before && after
    })
}

/// Does one of these argument strings (a tool call's) explain a script with these texts?
fn explains<'a>(args: impl IntoIterator<Item = &'a String>, texts: &[String]) -> bool {
    args.into_iter().any(|v| {
        let line = v.lines().next().unwrap_or("").trim();
        let head: String = line.chars().take(48).collect();
        let cut = head.len() < line.len();
        head.chars().count() >= 2 && texts.iter().any(|t| contains_words(t, &head, cut))
    })
}

impl Engine {
    pub(super) fn on_llm_request(&mut self, r: &Record, l: &LlmRequest) {
        if self.in_tool_call(r.pid) {
            return;
        }
        let horizon = r.ts_ns.saturating_sub(INTENT_HOLD_NS);
        self.llm_in_flight.retain(|f| f.ts_ns >= horizon);
        if self.llm_in_flight.len() >= MAX_IN_FLIGHT {
            self.llm_in_flight.pop_front();
        }
        self.llm_in_flight.push_back(InFlight {
            pid: r.pid,
            conn: l.conn,
            ts_ns: r.ts_ns,
        });
    }

    pub(super) fn on_llm_response(
        &mut self,
        r: &Record,
        l: &LlmResponse,
        out: &mut Vec<(String, Alert)>,
    ) {
        // Only the agent's own exchanges are the model's word: a process inside a tool call
        // can talk to any server that answers like an LLM API (and name any Host), and would
        // then explain its own next commands.
        if self.in_tool_call(r.pid) {
            return;
        }
        let calls: Vec<Vec<String>> = l
            .tool_calls
            .iter()
            .map(|c| argument_strings(&c.arguments))
            .collect();
        // A connection carries one request at a time (HTTP/1.1 as the tracker reads it): the
        // response answers what was sent on it before, including a request whose own response
        // was lost.
        let answered = |f: &InFlight| f.pid == r.pid && f.conn == l.conn && f.ts_ns <= r.ts_ns;
        self.llm_in_flight.retain(|f| !answered(f));
        if !self.held_intent.is_empty() {
            let mut still = Vec::new();
            for mut h in std::mem::take(&mut self.held_intent) {
                if explains(calls.iter().flatten(), &h.texts) {
                    continue;
                }
                h.waits.retain(|w| !answered(w));
                if h.waits.is_empty() {
                    out.push((h.key, h.alert));
                } else {
                    still.push(h);
                }
            }
            self.held_intent = still;
        }
        for c in calls {
            self.tool_calls.push_back((r.ts_ns, c));
            if self.tool_calls.len() > MAX_TOOL_CALLS {
                self.tool_calls.pop_front();
            }
        }
    }

    /// The held scripts whose time is up at `now` (all of them at the end of the stream). Runs
    /// at every record while a script is held: nothing is moved until one is due.
    pub(super) fn expire_intent(&mut self, now: u64, out: &mut Vec<(String, Alert)>) {
        if !self.held_intent.iter().any(|h| h.until_ns <= now) {
            return;
        }
        let (due, keep): (Vec<HeldIntent>, Vec<HeldIntent>) = std::mem::take(&mut self.held_intent)
            .into_iter()
            .partition(|h| h.until_ns <= now);
        self.held_intent = keep;
        out.extend(due.into_iter().map(|h| (h.key, h.alert)));
    }

    /// A shell started at the top of a tool call whose script no recent tool call explains.
    pub(super) fn check_intent(
        &mut self,
        r: &Record,
        e: &Exec,
        interp: Option<&str>,
        out: &mut Vec<(String, Alert)>,
    ) {
        let Some(interp) = interp else {
            return;
        };
        if self.chain_root(r.pid) != r.pid {
            return;
        }
        let recent: Vec<&Vec<String>> = self
            .tool_calls
            .iter()
            .filter(|(t, _)| r.ts_ns.saturating_sub(*t) <= INTENT_WINDOW_NS)
            .map(|(_, v)| v)
            .collect();
        if recent.is_empty() {
            return;
        }
        let Some(script) = script_of(interp, &e.argv) else {
            return;
        };
        if self
            .base
            .own_scripts
            .iter()
            .any(|s| glob_match(s.as_bytes(), script.as_bytes()))
        {
            return;
        }
        let texts = script_texts(&script);
        // A cut script: the command may be in the part the kernel did not copy.
        if e.argv_truncated || explains(recent.iter().flat_map(|v| v.iter()), &texts) {
            return;
        }
        let shown = clip(&lossy(script.as_bytes()));
        let s = format!(
            "pid {} ran a tool call that none of the model's {} recent tool calls explains: {shown}",
            r.pid,
            recent.len(),
        );
        let a = self.alert(r, "INTENT", "INTENT_MISMATCH", 1.0, s, vec![r.clone()]);
        let key = format!("INTENT {shown}");
        let waits: Vec<InFlight> = self
            .llm_in_flight
            .iter()
            .filter(|f| f.ts_ns <= r.ts_ns && r.ts_ns - f.ts_ns <= INTENT_HOLD_NS)
            .copied()
            .collect();
        if waits.is_empty() {
            out.push((key, a));
            return;
        }
        if self.held_intent.len() >= MAX_HELD {
            let h = self.held_intent.remove(0);
            out.push((h.key, h.alert));
        }
        self.held_intent.push(HeldIntent {
            key,
            alert: a,
            texts,
            waits,
            until_ns: r.ts_ns.saturating_add(INTENT_HOLD_NS),
        });
    }
}
