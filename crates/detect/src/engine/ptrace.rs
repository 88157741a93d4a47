//! L5: ptrace attach/seize by or onto the tree (`PTRACE_ATTACH_DETECTED`), and the other ways
//! into another process the kernel grants on the same attach permission: reading or writing
//! its memory (`process_vm_readv`/`writev`, `/proc/PID/mem`) and taking its descriptors
//! (`pidfd_getfd`), `PROCESS_MEMORY_ACCESS`; and the way around them all, a connect to a
//! session server outside the tree that runs what it is told, `SESSION_HIJACK`.
//!
//! Inside the window, a request between two processes of the tree is learned; one that
//! crosses the tree's edge (the agent onto a process outside it, or an outsider onto the
//! agent) alerts from the first record, as a credential read does: dumping another
//! process's memory in the first task is not behaviour to learn.

use super::*;

/// Which L5 alert a recorded request raises, if any.
fn alert_type(request: &str) -> Option<&'static str> {
    match request {
        "attach" | "seize" => Some("PTRACE_ATTACH_DETECTED"),
        "vm_readv" | "vm_writev" | "pidfd_getfd" => Some("PROCESS_MEMORY_ACCESS"),
        _ => None,
    }
}

/// A signal's name (`SIGTERM`), or its number for one with none (a real-time signal).
fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_string())
}

/// `/proc/PID/NAME` or `/proc/PID/task/TID/NAME`: the pid and NAME.
fn proc_file(path: &[u8]) -> Option<(u32, &[u8])> {
    let rest = path.strip_prefix(b"/proc/")?;
    let (pid, rest) = split_pid(rest)?;
    let rest = match rest.strip_prefix(b"task/") {
        Some(t) => split_pid(t)?.1,
        None => rest,
    };
    Some((pid, rest))
}

/// `DIGITS/rest` -> (DIGITS, rest).
fn split_pid(p: &[u8]) -> Option<(u32, &[u8])> {
    let slash = p.iter().position(|&b| b == b'/')?;
    let digits = &p[..slash];
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pid = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((pid, &p[slash + 1..]))
}

/// Whether a listener outside the tree, not the caller itself, took this connect (the kernel
/// names a peer only for a connect that succeeded).
fn answered_outside(r: &Record, c: &proctor_model::Connect) -> bool {
    c.peer_outside && c.peer_pid != 0 && c.peer_pid != r.pid
}

impl Engine {
    pub(super) fn on_ptrace(
        &mut self,
        r: &Record,
        p: &Ptrace,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        if let Some(sig) = p.signal {
            return self.on_signal(r, p, sig, learning, out);
        }
        let Some(kind) = alert_type(&p.request) else {
            return;
        };
        // The process itself, named inside a PID namespace (the kernel drops host-pid ones).
        if p.target_pid == p.tracer_pid && kind == "PROCESS_MEMORY_ACCESS" {
            return;
        }
        let tracked = |t: bool| if t { " (tracked)" } else { " (not tracked)" };
        let what = match p.request.as_str() {
            "vm_readv" => "process_vm_readv".to_string(),
            "vm_writev" => "process_vm_writev".to_string(),
            "pidfd_getfd" => "pidfd_getfd".to_string(),
            other => format!("ptrace {other}"),
        };
        let s = || {
            format!(
                "{what} by pid {}{} onto pid {}{}",
                p.tracer_pid,
                tracked(p.tracer_tracked),
                p.target_pid,
                tracked(p.target_tracked),
            )
        };
        let inside = p.tracer_tracked && p.target_tracked;
        let key = format!("L5 {}->{}", p.tracer_pid, p.target_pid);
        self.l5(r, kind, inside, learning, s, key, out);
    }

    /// A connect to the unix socket of a session server outside the tree (`[ptrace]
    /// session_servers`, by the listener's executable, which the kernel's peer credentials
    /// name), or to its loopback TCP port (a browser's remote debugging port drives the user's
    /// logged-in browser; proctor names the listening socket's holder): `tmux send-keys` into
    /// the user's own shell, a command over the user's open ssh master, a signature from the
    /// user's ssh-agent, the user's cookies from the browser. What the server then does runs
    /// outside the tree, so this connect is the last record of it: L5 `SESSION_HIJACK`, from
    /// the first record, as any request across the tree's edge; a server reached in the
    /// learning window (by executable) is learned, as a credential read is.
    pub(super) fn on_session_server(
        &mut self,
        r: &Record,
        c: &proctor_model::Connect,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        if !answered_outside(r, c) {
            return;
        }
        let Some(exe) = &c.peer_exe else { return };
        // A binary replaced since it started reads "/usr/bin/tmux (deleted)".
        let exe_path = exe.as_bytes();
        let exe_path = exe_path.strip_suffix(b" (deleted)").unwrap_or(exe_path);
        let base = file_name(exe_path);
        if !self
            .policy
            .session_servers
            .iter()
            .any(|g| glob_match(g, base))
        {
            return;
        }
        let label = self.label_of(r);
        let path = c.dest.path.as_ref().map_or(&[][..], |p| p.as_bytes());
        let reached = match path.first() {
            None => match (&c.dest.addr, c.dest.port) {
                (Some(a), Some(p)) if a.contains(':') => format!(" at [{a}]:{p}"),
                (Some(a), Some(p)) => format!(" at {a}:{p}"),
                _ => String::new(),
            },
            Some(0) => format!(" at @{}", lossy(&path[1..])),
            Some(_) => format!(" at {}", lossy(path)),
        };
        let peer = c.peer_pid;
        let s = || {
            format!(
                "pid {} ({label}) connected to {} (pid {peer}, outside the agent's tree){reached}: \
                 what it is told to run, type or sign, it does outside proctor's view",
                r.pid,
                lossy(exe.as_bytes()),
            )
        };
        // Learned as a credential read is: alerted in the window, quiet after once learned.
        let server = lossy(exe_path);
        if self.base.session_servers.contains(&server) {
            return;
        }
        if learning {
            self.base.session_servers.insert(server.clone());
        }
        let key = format!("L5 session {server}");
        self.l5(r, "SESSION_HIJACK", false, learning, s, key, out);
    }

    /// A connect to a message bus's or service manager's socket (`[ptrace].service_sockets`, by
    /// the path the caller passed or by the socket file's identity) that a listener outside the
    /// tree answered: the bus runs what it is asked (a transient unit: `systemd-run` without the
    /// program) as its own user, outside the tree. L5 `SESSION_HIJACK`, from the first record,
    /// then learned by socket. Not by the listener's executable: a socket-activated bus was
    /// bound by systemd, which binds the journal's and every other activated service's too.
    pub(super) fn on_service_socket(
        &mut self,
        r: &Record,
        c: &proctor_model::Connect,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        // No peer: the connect failed (no bus there), or the tree answered itself.
        if !answered_outside(r, c) {
            return;
        }
        // An abstract name as the policy writes it, `@NAME`.
        let mut name = self.unix_dest(c);
        if name.first() == Some(&0) {
            name[0] = b'@';
        }
        let by_name = self
            .policy
            .service_sockets
            .iter()
            .any(|g| glob_match(g, &name));
        let socket = if by_name {
            name.clone()
        } else {
            match (c.peer_ino != 0)
                .then(|| self.host.service_sockets.get(&(c.peer_dev, c.peer_ino)))
                .flatten()
            {
                Some(real) => real.clone(),
                None => return,
            }
        };
        let key = format!("bus {}", lossy(&socket));
        if self.base.session_servers.contains(&key) {
            return;
        }
        if learning {
            self.base.session_servers.insert(key.clone());
        }
        let label = self.label_of(r);
        let peer = match &c.peer_exe {
            Some(e) => format!("pid {}, {}", c.peer_pid, lossy(e.as_bytes())),
            None => format!("pid {}", c.peer_pid),
        };
        let through = if by_name {
            String::new()
        } else {
            format!(" through {}", lossy(&name))
        };
        let s = || {
            format!(
                "pid {} ({label}) connected to the message bus or service manager at {}{through} \
                 ({peer}, outside the agent's tree): it runs what it is asked, as its own user \
                 (a transient unit is `systemd-run` without the program), where no record of \
                 the tree shows it",
                r.pid,
                lossy(&socket),
            )
        };
        self.l5(
            r,
            "SESSION_HIJACK",
            false,
            learning,
            s,
            format!("L5 {key}"),
            out,
        );
    }

    /// How long after a process of the tree exited a signal to its pid is still to it.
    const RECENT_EXIT_NS: u64 = 2_000_000_000;

    /// A signal the tree sent to a process outside it (the kernel records only those): L5
    /// `OUTSIDE_SIGNAL`, from the first record. Aimed at a security or logging service
    /// (`[ptrace].protected_processes`, by command name) it impairs defences; at anything else
    /// it ends or disturbs work the agent did not start.
    fn on_signal(
        &mut self,
        r: &Record,
        p: &Ptrace,
        sig: i32,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        if p.target_tracked || p.target_pid == r.pid {
            return;
        }
        // One of the tree's own that exited just before (the kernel forgets a process at its
        // exit; its parent may still signal it, as apt-get ends its download methods): the
        // pid is not free for another process until its parent reaps it.
        if self.procs.get(&p.target_pid).is_some_and(|t| {
            t.exited
                .is_some_and(|at| at <= r.ts_ns && r.ts_ns - at < Self::RECENT_EXIT_NS)
        }) {
            return;
        }
        let label = self.label_of(r);
        let comm = p.target_comm.as_ref().map(|c| c.as_bytes());
        let protected = comm.is_some_and(|c| {
            self.policy
                .protected_processes
                .iter()
                .any(|g| glob_match(g, c))
        });
        let name = comm.map_or_else(|| "gone by then".to_string(), lossy);
        let what = if protected {
            ": a security or logging service (its defences impaired)"
        } else {
            ", which the agent did not start"
        };
        let s = format!(
            "pid {} ({label}) sent {} ({}) to pid {} ({name}), outside the agent's tree{what}",
            r.pid,
            signal_name(sig),
            p.request,
            p.target_pid,
        );
        let key = format!("L5 signal {}->{}", r.pid, p.target_pid);
        self.l5(r, "OUTSIDE_SIGNAL", false, learning, || s, key, out);
    }

    /// One L5 request: learned inside the window when it stays inside the tree, else an alert.
    #[allow(clippy::too_many_arguments)]
    fn l5(
        &mut self,
        r: &Record,
        kind: &str,
        inside: bool,
        learning: bool,
        summary: impl FnOnce() -> String,
        key: String,
        out: &mut Vec<(String, Alert)>,
    ) {
        if learning && inside {
            self.base.ptrace += 1;
            return;
        }
        if !self.policy.ptrace {
            return;
        }
        let a = self.alert(r, "L5", kind, 1.0, summary(), vec![r.clone()]);
        out.push((key, a));
    }

    /// An open of another process's `/proc/PID/mem` (L5), or of the environment of a process
    /// outside the tree (`SENSITIVE_FILE`: where API keys live). Returns whether the open was
    /// one of them, so the caller judges it no further.
    pub(super) fn on_proc_open(
        &mut self,
        r: &Record,
        f: &FileOpen,
        path: &[u8],
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) -> bool {
        let how = || {
            let (how, mode) = super::files::how_opened(f);
            format!("{how} for {mode}")
        };
        let Some((target, name)) = proc_file(path) else {
            return false;
        };
        if name == b"mem" {
            if target == r.pid {
                return true;
            }
            let tracked = self.procs.contains_key(&target);
            let s = || {
                format!(
                    "pid {} {} {} (the memory of pid {target}{})",
                    r.pid,
                    how(),
                    lossy(path),
                    if tracked {
                        ", tracked"
                    } else {
                        ", not tracked"
                    }
                )
            };
            let key = format!("L5 {}->{target}", r.pid);
            self.l5(r, "PROCESS_MEMORY_ACCESS", tracked, learning, s, key, out);
            return true;
        }
        if name == b"environ" {
            if target == r.pid || self.procs.contains_key(&target) {
                return false;
            }
            let s = format!(
                "pid {} {} {} (the environment of pid {target}, outside the agent's tree: \
                 the secrets it was given)",
                r.pid,
                how(),
                lossy(path)
            );
            let div = if f.error.is_some() { 0.5 } else { 1.0 };
            let a = self.alert(
                r,
                "SENSITIVE_FILE",
                "SENSITIVE_FILE",
                div,
                s,
                vec![r.clone()],
            );
            // One key per reader: `cat /proc/*/environ` is one alert that counts the rest.
            out.push((format!("SENSITIVE /proc/*/environ by {}", r.pid), a));
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signals_are_named_and_real_time_ones_numbered() {
        assert_eq!(super::signal_name(9), "SIGKILL");
        assert_eq!(super::signal_name(19), "SIGSTOP");
        assert_eq!(super::signal_name(34), "signal 34");
    }
}
