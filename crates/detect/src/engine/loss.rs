//! `EVENTS_LOST`: records of the agent's tree the kernel could not deliver.

use super::*;

/// Loss kinds of the agent's tree besides the numbered record kinds
/// ([`proctor_model::kseq::NUMBERED_KINDS`]): a child or a session the kernel could not track,
/// reads folded into `file_open_seen` (unnumbered, counted when the ring refuses them), and
/// numbers missing beyond what the loss counters say (runtime's kseq).
const TREE_SLOTS: [&str; 5] = [
    "track_full",
    "session_full",
    "file_open_seen",
    "kseq_unaccounted",
    "fs_unanswered",
];

/// Whether a loss is of records of the agent's tree (not proctor's own output).
fn of_the_tree(what: &str) -> bool {
    proctor_model::kseq::NUMBERED_KINDS.contains(&what) || TREE_SLOTS.contains(&what)
}

impl Engine {
    /// Records of the agent's tree the kernel could not deliver (a full ring buffer, or a child
    /// that could not join a full tracked set): the agent may be flooding to hide what it does,
    /// so the loss is an alert of its own, learning or not.
    pub(super) fn on_lost(&mut self, r: &Record, l: &Lost, out: &mut Vec<(String, Alert)>) {
        if l.count == 0 || !of_the_tree(&l.what) {
            return;
        }
        let s = if l.what == "fs_unanswered" {
            format!(
                "{} read(s) of the agent's files got no answer (a reader asleep for a second), or found every reader held (a file system the agent serves, such as FUSE, may be holding them): build-ids, TLS libraries or file times of what the agent did may be missing",
                l.count
            )
        } else {
            format!(
                "the sensor lost {} {} record(s) of the agent's tree (the kernel could not deliver them; a flood may be hiding actions)",
                l.count, l.what
            )
        };
        let a = self.alert(r, "SENSOR_LOSS", "EVENTS_LOST", 1.0, s, vec![r.clone()]);
        out.push((format!("SENSOR_LOSS {}", l.what), a));
    }

    /// An interpreter or a JVM started with an environment the sensor could not read to its end
    /// (more variables than the kernel's walk reads, [`proctor_model::Exec::env_unread`]): a
    /// variable that makes it run a file (`BASH_ENV`, `NODE_OPTIONS`, `JAVA_TOOL_OPTIONS`) may
    /// be hidden past them, and no program the agent runs needs thousands of variables.
    pub(super) fn on_env_unread(
        &mut self,
        r: &Record,
        e: &Exec,
        family: &str,
        out: &mut Vec<(String, Alert)>,
    ) {
        let s = format!(
            "pid {} ({family}) started with an environment the sensor could not read to its end ({}): a variable that makes an interpreter or a JVM run a file (BASH_ENV, NODE_OPTIONS, PYTHONPATH, JAVA_TOOL_OPTIONS) may be hidden in it",
            r.pid,
            lossy(e.filename.as_bytes())
        );
        let a = self.alert(r, "SENSOR_LOSS", "EVENTS_LOST", 1.0, s, vec![r.clone()]);
        out.push((format!("SENSOR_LOSS environment {family}"), a));
    }
}
