//! `IO_URING_SETUP`: a process of the agent's tree created an io_uring instance.

use super::*;

impl Engine {
    /// What the agent submits to a ring runs without the syscalls the sensor hooks: opens,
    /// connects and sends are recorded at completion, but a request that posts no completion, or
    /// an operation the sensor has no hook for, is not seen. The ring's creation is the last
    /// point a syscall shows, so it is an alert of its own, learning or not (one per binary, the
    /// cooldown aggregating repeats), unless the binary is one the profile names as making
    /// rings of its own (`io_uring`: Node.js 24 makes one per event loop). What the window sees
    /// is learned into that list, as a sensitive path read in the window is.
    pub(super) fn on_uring_setup(
        &mut self,
        r: &Record,
        u: &IoUringSetup,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        let label = self
            .ensure_proc(r)
            .label
            .clone()
            .unwrap_or_else(|| r.comm.escaped().into());
        if self
            .base
            .io_uring
            .iter()
            .any(|g| glob_match(g.as_bytes(), label.as_bytes()))
        {
            return;
        }
        if learning {
            self.base.io_uring.insert(label.to_string());
        }
        let flags = if u.flag_names.is_empty() {
            String::new()
        } else {
            format!(", flags {}", u.flag_names.join("|"))
        };
        let s = format!(
            "pid {} ({}) created an io_uring instance (fd {}, {} submission entries{flags}): operations submitted to it bypass the syscall hooks",
            r.pid,
            r.comm.escaped(),
            u.fd,
            u.sq_entries,
        );
        let a = self.alert(r, "IO_URING", "IO_URING_SETUP", 1.0, s, vec![r.clone()]);
        out.push((format!("IO_URING_SETUP {label}"), a));
    }
}
