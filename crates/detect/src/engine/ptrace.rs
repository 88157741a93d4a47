//! L5: ptrace attach/seize by or onto the tree (`PTRACE_ATTACH_DETECTED`).

use super::*;

impl Engine {
    pub(super) fn on_ptrace(
        &mut self,
        r: &Record,
        p: &Ptrace,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        if !matches!(p.request.as_str(), "attach" | "seize") {
            return;
        }
        if learning {
            self.base.ptrace += 1;
            return;
        }
        if !self.policy.ptrace {
            return;
        }
        let s = format!(
            "ptrace {} by pid {}{} onto pid {}{}",
            p.request,
            p.tracer_pid,
            if p.tracer_tracked {
                " (tracked)"
            } else {
                " (not tracked)"
            },
            p.target_pid,
            if p.target_tracked {
                " (tracked)"
            } else {
                " (not tracked)"
            },
        );
        let a = self.alert(r, "L5", "PTRACE_ATTACH_DETECTED", 1.0, s, vec![r.clone()]);
        out.push((format!("L5 {}->{}", p.tracer_pid, p.target_pid), a));
    }
}
