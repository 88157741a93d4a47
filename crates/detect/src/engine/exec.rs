//! L2 (`LLM_AGENT_HIJACK`: a new interpreter family) and `RISKY_BINARY` at exec, plus the exec
//! side of L3 (new process edges, write-then-exec cycles).

use super::*;

/// "python3.11" -> "python", "ksh93" -> "ksh": interpreters are compared by family.
pub fn canonical_interpreter(name: &str) -> String {
    let t = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-' || c == '_');
    if t.is_empty() {
        name.to_string()
    } else {
        t.to_string()
    }
}

impl Engine {
    pub(super) fn classify_interpreter(&self, e: &Exec) -> Option<(String, String)> {
        let base = e.filename.basename();
        if self
            .policy
            .interpreter_names
            .iter()
            .any(|g| glob_match(g, base))
        {
            let name = lossy(base);
            return Some((
                canonical_interpreter(&name),
                format!("resolved path {name}"),
            ));
        }
        self.host.interpreters.get(&(e.dev, e.ino)).map(|name| {
            (
                canonical_interpreter(name),
                format!("device+inode of {name}"),
            )
        })
    }

    pub(super) fn risky_rules(&self, e: &Exec) -> Vec<String> {
        let base = e.filename.basename();
        self.policy
            .risky
            .iter()
            .filter(|rule| glob_match(&rule.name, base))
            .filter(|rule| match &rule.arg {
                None => true,
                Some(g) => e.argv.iter().skip(1).any(|a| glob_match(g, a.as_bytes())),
            })
            .map(|rule| rule.text.clone())
            .collect()
    }

    pub(super) fn on_exec(
        &mut self,
        r: &Record,
        e: &Exec,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        let root_start = !self.procs.contains_key(&r.pid) && !self.procs.contains_key(&r.ppid);
        let prev = self
            .ensure_proc(r)
            .label
            .clone()
            .or_else(|| self.procs.get(&r.ppid).and_then(|p| p.label.clone()));
        let new_label = lossy(e.filename.basename());
        let interp = self.classify_interpreter(e);
        let risky = self.risky_rules(e);
        let edge = format!("spawn {} -> {}", prev.as_deref().unwrap_or("?"), new_label);
        let cycle = self.written_run_by(e, interp.is_some());
        let cycle_key = cycle
            .as_ref()
            .map(|w| format!("{} -> {} -> {}", w.writer, self.area(&w.path), new_label));
        if let Some(p) = self.procs.get_mut(&r.pid) {
            p.label = Some(new_label.clone());
            p.alive = true;
        }
        if learning {
            self.base.binaries.insert(new_label.clone());
            if root_start {
                return;
            }
            if let Some((name, _)) = interp {
                self.base.interpreters.insert(name);
            }
            self.base.risky.extend(risky);
            self.base.edges.insert(edge);
            if let Some(k) = cycle_key {
                self.base.cycles.insert(k);
            }
            return;
        }
        if root_start {
            return;
        }
        let argv = clip(
            &e.argv
                .iter()
                .map(|a| a.escaped())
                .collect::<Vec<_>>()
                .join(" "),
        );
        let who = format!("pid {} ({})", r.pid, prev.as_deref().unwrap_or("?"));
        if let Some((name, how)) = &interp {
            if !self.base.interpreters.contains(name) {
                let s = format!(
                    "{who} ran interpreter {name} ({how}) never spawned in the baseline: {argv}"
                );
                let a = self.alert(r, "L2", "LLM_AGENT_HIJACK", 1.0, s, vec![r.clone()]);
                out.push((format!("L2 {name}"), a));
            }
        }
        let novel: Vec<&String> = risky
            .iter()
            .filter(|r| !self.base.risky.contains(*r))
            .collect();
        if !novel.is_empty() {
            let rules = novel
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let s = format!(
                "{who} ran risky binary {} (rule {rules}): {argv}",
                e.filename.escaped()
            );
            let a = self.alert(r, "RISKY_BINARY", "RISKY_BINARY", 1.0, s, vec![r.clone()]);
            out.push((format!("RISKY {new_label}"), a));
        }
        if self.policy.structural_drift && !self.base.edges.contains(&edge) {
            let s = format!("new process edge `{edge}` (not in the baseline): {argv}");
            let a = self.alert(r, "L3", "STRUCTURAL_DRIFT", 1.0, s, vec![r.clone()]);
            out.push((format!("L3 {edge}"), a));
        }
        if let (Some(w), Some(k)) = (cycle, cycle_key) {
            if self.policy.cycles && !self.base.cycles.contains(&k) {
                let s = format!(
                    "{who} executed {} which {} wrote in this run ({k})",
                    lossy(&w.path),
                    w.writer
                );
                let a = self.alert(
                    r,
                    "L3",
                    "CAUSAL_CYCLE_DETECTED",
                    1.0,
                    s,
                    vec![w.rec.clone(), r.clone()],
                );
                out.push((format!("L3 cycle {}", lossy(&w.path)), a));
            }
        }
    }
}
