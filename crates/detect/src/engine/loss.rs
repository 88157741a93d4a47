//! `EVENTS_LOST`: records of the agent's tree the kernel could not deliver.

use super::*;

/// Loss kinds that are records of the agent's tree (not proctor's own output).
const TREE_KINDS: [&str; 14] = [
    // Kernel record numbers missing beyond what the loss counters say (runtime's kseq).
    "kseq_unaccounted",
    // An agent exec matched while every session slot was in use: tracked, unnumbered.
    "session_full",
    "exec",
    "fork",
    "exit",
    "file_open",
    "connect",
    "send",
    "ptrace",
    "decision",
    "track_full",
    "tls",
    "tls_sni",
    "io_uring_setup",
];

impl Engine {
    /// Records of the agent's tree the kernel could not deliver (a full ring buffer, or a child
    /// that could not join a full tracked set): the agent may be flooding to hide what it does,
    /// so the loss is an alert of its own, learning or not.
    pub(super) fn on_lost(&mut self, r: &Record, l: &Lost, out: &mut Vec<(String, Alert)>) {
        if l.count == 0 || !TREE_KINDS.contains(&l.what.as_str()) {
            return;
        }
        let s = format!(
            "the sensor lost {} {} record(s) of the agent's tree (the kernel could not deliver them; a flood may be hiding actions)",
            l.count, l.what
        );
        let a = self.alert(r, "SENSOR_LOSS", "EVENTS_LOST", 1.0, s, vec![r.clone()]);
        out.push((format!("SENSOR_LOSS {}", l.what), a));
    }
}
