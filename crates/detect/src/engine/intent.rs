//! `INTENT_MISMATCH`: when the model's tool calls are captured (`llm_response` records), a
//! tool call the agent starts (a shell or interpreter with a `-c` script, at the top of its
//! chain) must be explained by one the model asked for recently: one of the string values of
//! its arguments (the command) must appear in the script. Agents wrap commands (Claude Code
//! sources a shell snapshot and evals the command), so the test is containment of the command's
//! first line (up to 48 characters), not equality. Without captured responses nothing is
//! judged: a missing capture must not look like an agent acting on its own.

use super::*;
use proctor_model::LlmResponse;

/// Tool calls remembered, and how long one explains what runs after it.
const MAX_TOOL_CALLS: usize = 64;
const INTENT_WINDOW_NS: u64 = 300 * NS;

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

impl Engine {
    pub(super) fn on_llm_response(&mut self, r: &Record, l: &LlmResponse) {
        for c in &l.tool_calls {
            self.tool_calls
                .push_back((r.ts_ns, argument_strings(&c.arguments)));
            if self.tool_calls.len() > MAX_TOOL_CALLS {
                self.tool_calls.pop_front();
            }
        }
    }

    /// A shell started at the top of a tool call whose script no recent tool call explains.
    pub(super) fn check_intent(
        &self,
        r: &Record,
        e: &Exec,
        interp: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        if !interp || self.chain_root(r.pid) != r.pid {
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
        let Some(i) = e.argv.iter().position(|a| a.as_bytes() == b"-c") else {
            return;
        };
        let Some(script) = e.argv.get(i + 1).map(|s| lossy(s.as_bytes())) else {
            return;
        };
        let explained = recent.iter().flat_map(|v| v.iter()).any(|v| {
            let line = v.lines().next().unwrap_or("").trim();
            let head: String = line.chars().take(48).collect();
            head.chars().count() >= 2 && script.contains(&head)
        });
        if explained {
            return;
        }
        let s = format!(
            "pid {} ran a tool call that none of the model's {} recent tool calls explains: {}",
            r.pid,
            recent.len(),
            clip(&script)
        );
        let a = self.alert(r, "INTENT", "INTENT_MISMATCH", 1.0, s, vec![r.clone()]);
        out.push((format!("INTENT {}", clip(&script)), a));
    }
}
