//! `SENSITIVE_FILE` and `PERSISTENCE` opens, and the file-write side of L3.

use super::*;

impl Engine {
    /// Reads of files the session recorded whole, folded (`file_open_seen`): each is judged
    /// as a read by this process, except those whose recorded open (same file, name, flags)
    /// was judged to raise nothing: the same rules say the same of them.
    pub(super) fn on_folded(
        &mut self,
        r: &Record,
        s: &proctor_model::FileOpenSeen,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        for f in &s.files {
            let Some(path) = &f.path else { continue };
            let judged = self
                .plain_reads
                .get(&(f.kseq, f.dev, f.ino, f.flags))
                .is_some_and(|&h| h == digest(path.as_bytes()));
            if judged {
                continue;
            }
            if let Some(open) = f.open() {
                self.on_open(r, None, &open, learning, out);
            }
        }
    }

    pub(super) fn on_open(
        &mut self,
        r: &Record,
        shared: Option<&Arc<Record>>,
        f: &FileOpen,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        // A counted repeat names the same file, flags and process as an open the kernel
        // recorded before it, which this detector judged then (alert, written file, edge): it
        // can raise nothing new. No detector here counts opens.
        if f.repeats > 0 {
            return;
        }
        self.taint_on_read(r.pid, f);
        if f.mapped_exec {
            self.on_mapped_exec(r, f, learning, out);
            return;
        }
        let refused = f.error.is_some();
        // Borrowed unless it has to be made absolute: most opens raise nothing, and replay
        // pays for every allocation made per open.
        let mut path = std::borrow::Cow::Borrowed(f.path.as_bytes());
        if refused && path.first() != Some(&b'/') {
            // A refused open carries the caller's path; best effort against the agent's cwd.
            if let Some(c) = &self.cwd {
                let mut p = c.clone();
                p.push(b'/');
                p.extend_from_slice(&path);
                path = p.into();
            }
        }
        if path.starts_with(b"/proc/") && self.on_proc_open(r, f, &path, learning, out) {
            return;
        }
        if f.setid && !refused && f.access != Access::Read {
            self.on_setid_open(r, f, &path, out);
        }
        let write_intent = f.access != Access::Read || f.create || f.truncate;
        if f.truncate && !refused && f.access != Access::Read {
            // `> ~/.bash_history`, `: > /var/log/auth.log`: the record emptied where it lies.
            self.indicator_gone(r, &path, "truncated", false, None, out);
        }
        let verdict = self.paths.verdict(&path);
        let persist = if write_intent {
            self.paths
                .persistence(&verdict)
                .filter(|_| !self.package_content(r.pid, &path))
                .map(str::to_string)
                .or_else(|| self.shadowed_command(&path))
        } else {
            None
        };
        let sensitive = if persist.is_none() {
            self.paths
                .sensitive(&verdict)
                .map(|rule| format!("`{rule}`"))
                .or_else(|| {
                    self.sensitive_ids
                        .get(&(f.dev, f.ino))
                        .filter(|_| f.ino != 0)
                        .map(|p| format!("the same file as {}", lossy(p)))
                })
                .or_else(|| {
                    // A disk or the kernel's memory by what the node opens, whatever its name.
                    let d = f.device.as_ref()?;
                    let rule = self
                        .policy
                        .files
                        .sensitive_devices
                        .iter()
                        .find(|p| p.matches(d))?;
                    Some(format!("{} device {d}, `{}`", kind_word(d), rule.text))
                })
        } else {
            None
        };
        // The agent reading its own login (a profile's `own_files`) is its work, not a theft,
        // and is not learned either, so a tool call that reads the file later still alerts.
        let sensitive = sensitive.filter(|_| {
            write_intent || !(self.own_read(r.pid, &path) || self.tool_config_read(r.pid, &path))
        });
        // Only a persistence or sensitive match is keyed by its path.
        let key_path = if persist.is_some() || sensitive.is_some() {
            self.tilde(&path)
        } else {
            String::new()
        };
        let proc_label = &self.ensure_proc(r).label;
        let written = write_intent && !refused;
        // The label is copied only when something below uses it: most opens are reads that
        // match nothing, and replay pays for every allocation made per open.
        if !written && persist.is_none() && sensitive.is_none() {
            if let Some(k) = r.kseq.filter(|_| !refused) {
                if self.plain_reads.len() >= MAX_REMEMBERED {
                    self.plain_reads.clear();
                }
                self.plain_reads
                    .insert((k.kseq, f.dev, f.ino, f.flags), digest(&*path));
            }
            return;
        }
        let label = proc_label.clone().unwrap_or_else(|| "?".into());
        let noise = verdict.noise;
        let edge = (written && !noise && persist.is_none() && sensitive.is_none())
            .then(|| format!("write {} -> {}", self.node(&label), self.area(&path)));
        if written && self.trusted_tx(r.pid).is_some() {
            // A package's content, not the tree's: and no longer what the tree wrote there.
            self.written.under(&path, true);
        } else if written {
            // One copy of the record, shared by both indexes and the ring.
            if f.created {
                self.filled(parent_dir(&path), r.pid);
            }
            let maker = if f.created || f.truncate {
                r.pid
            } else {
                self.written.by_path(&path).map_or(0, |w| w.maker)
            };
            self.remember_written(Arc::new(Written {
                path: path.to_vec(),
                id: (f.dev, f.ino),
                writer: label.clone(),
                rec: share(r, shared),
                maker,
            }));
        }
        let mut edge = edge;
        if learning {
            if let Some(e) = edge.take() {
                self.base.edges.insert(e);
            }
            // Credential and persistence paths are the policy's rules, not behaviour to learn:
            // they are judged from the first record (an agent injected in its first task reads
            // `~/.aws/credentials` inside the learning window), then learned, so the same path
            // raises once.
            if persist.is_none() && sensitive.is_none() {
                return;
            }
        }
        // How the open reads in an alert, written only when there is one.
        let said = || {
            let (how, mode) = how_opened(f);
            (format!("pid {} ({label})", r.pid), how, mode)
        };
        let div = if refused { 0.5 } else { 1.0 };
        if let Some(rule) = &persist {
            if !self.base.persistence.contains(&key_path) {
                let (who, how, mode) = said();
                let s = format!(
                    "{who} {how} {} for {mode} (persistence, `{rule}`)",
                    lossy(&path)
                );
                let a = self.alert(r, "PERSISTENCE", "PERSISTENCE", div, s, vec![r.clone()]);
                out.push((format!("PERSISTENCE {key_path}"), a));
            }
        } else if let Some(rule) = &sensitive {
            if !self.base.sensitive.contains(&key_path) {
                let (who, how, mode) = said();
                let s = format!(
                    "{who} {how} {} for {mode} (sensitive, {rule})",
                    lossy(&path)
                );
                let a = self.alert(
                    r,
                    "SENSITIVE_FILE",
                    "SENSITIVE_FILE",
                    div,
                    s,
                    vec![r.clone()],
                );
                out.push((format!("SENSITIVE {key_path}"), a));
            }
        }
        if learning {
            let set = match persist {
                Some(_) => &mut self.base.persistence,
                None => &mut self.base.sensitive,
            };
            set.insert(key_path);
            return;
        }
        if let Some(e) = edge {
            let exact = format!("write {label} -> {}", self.area(&path));
            if self.policy.structural_drift
                && !self.base.edges.contains(&e)
                && !self.base.edges.contains(&exact)
            {
                let s = format!(
                    "new file edge `{e}` (not in the baseline): {}",
                    lossy(&path)
                );
                // Scratch files and the workspace are where coding work writes.
                if self.quiet_area(&self.area(&path)) {
                    let a = self.alert(r, "L3", "STRUCTURAL_DRIFT", 0.5, s, vec![r.clone()]);
                    self.evidence(format!("L3 {e}"), a);
                } else {
                    let mut a = self.alert(r, "L3", "STRUCTURAL_DRIFT", 1.0, s, vec![r.clone()]);
                    a.rule_id = "L3.STRUCTURAL_DRIFT.write-outside-quiet-areas".into();
                    out.push((format!("L3 {e}"), a));
                }
            }
        }
    }
}

/// How far back deletions count towards `[files].destruction_burst`.
const DESTRUCTION_WINDOW_NS: u64 = 10_000_000_000;

impl Engine {
    fn remember_written(&mut self, w: Arc<Written>) {
        self.written.remember(w);
    }

    /// `pid` made directory `dir` or made an entry directly in it, and so put something below
    /// each of `dir`'s ancestors (`filled_dirs`): tar stamps every directory of its archive once
    /// it is done, also one it only passed through (`usr/lib/python3/` of an archive unpacked
    /// at `/`, when all it made is deeper). A directory already marked for `pid` had its
    /// ancestors marked then; another process may have taken one of them since, which can only
    /// get a later stamp judged, never one let through.
    fn filled(&mut self, dir: &[u8], pid: u32) {
        if self.filled_dirs.get(dir) == Some(&pid) {
            return;
        }
        let mut d = dir;
        while !d.is_empty() {
            if self.filled_dirs.get(d) != Some(&pid) {
                if self.filled_dirs.len() >= MAX_REMEMBERED {
                    self.filled_dirs.clear();
                }
                self.filled_dirs.insert(d.to_vec(), pid);
            }
            d = parent_dir(d);
        }
    }

    /// Files the tree wrote keep being files it wrote under their new names: a script written
    /// as notes.txt and renamed (or linked, or symlinked) to run.sh, then run by an interpreter
    /// by that name, is still write-then-exec (an exec by inode needed no help).
    fn rename_written(&mut self, from: &[u8], to: &[u8], take: bool) -> Vec<Arc<Written>> {
        self.written
            .under(from, take)
            .into_iter()
            .map(|w| {
                let mut path = to.to_vec();
                path.extend_from_slice(&w.path[from.len()..]);
                Arc::new(Written {
                    path,
                    id: w.id,
                    writer: w.writer.clone(),
                    rec: w.rec.clone(),
                    maker: w.maker,
                })
            })
            .collect()
    }

    /// A name the tree removed, moved or made (`path_change`): a new name in a persistence
    /// location is what a write there is (a file written in /tmp and moved or linked into
    /// ~/.bashrc or /etc/cron.d, `sed -i`'s rename over ~/.bashrc); a history or log removed,
    /// moved away or replaced by a symlink is INDICATOR_REMOVAL; many deletions outside the
    /// workspace are DATA_DESTRUCTION. Judged from the first record, as credentials are.
    pub(super) fn on_path_change(
        &mut self,
        r: &Record,
        c: &proctor_model::PathChange,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        let old = c.path.as_bytes();
        let new = c.new_path.as_ref().map(|p| p.as_bytes());
        let package = self.trusted_tx(r.pid).is_some();
        if let Some(n) = new.filter(|_| package) {
            // A package's file put in place (dpkg's `jq.dpkg-new` renamed to `jq`) replaces
            // what the tree wrote at that name.
            self.written.under(n, true);
        }
        if let Some(n) = new {
            let moved = match c.op.as_str() {
                "rename" if c.exchange() => {
                    let mut m = self.rename_written(old, n, true);
                    m.extend(self.rename_written(n, old, true));
                    m
                }
                "rename" => self.rename_written(old, n, true),
                "link" => self.rename_written(old, n, false),
                // A symlink's target as written: absolute, or relative to the link's directory.
                "symlink" => {
                    let target = if old.starts_with(b"/") {
                        old.to_vec()
                    } else {
                        let dir = parent_dir(n);
                        [dir, b"/", old].concat()
                    };
                    self.rename_written(&target, n, false)
                }
                _ => Vec::new(),
            };
            for w in moved {
                self.remember_written(w);
            }
        }
        // Names that now stand for a file they did not before.
        let mut placed: Vec<(&[u8], &[u8])> = new.map(|n| (n, old)).into_iter().collect();
        if c.exchange() {
            placed.extend(new.map(|n| (old, n)));
        }
        for (name, from) in placed {
            let v = self.paths.verdict(name);
            let Some(rule) = self
                .paths
                .persistence(&v)
                .filter(|_| !self.package_content(r.pid, name))
                .map(str::to_string)
                .or_else(|| self.shadowed_command(name))
            else {
                continue;
            };
            let key_path = self.tilde(name);
            if !self.base.persistence.contains(&key_path) {
                let how = match c.op.as_str() {
                    "rename" if c.exchange() => format!("swapped {} with", lossy(from)),
                    "rename" => format!("moved {} to", lossy(from)),
                    "link" => format!("hard-linked {} as", lossy(from)),
                    _ => format!("made a symlink to {} at", lossy(from)),
                };
                let who = self.who(r);
                let s = format!("{who} {how} {} (persistence, `{rule}`)", lossy(name));
                let a = self.alert(r, "PERSISTENCE", "PERSISTENCE", 1.0, s, vec![r.clone()]);
                out.push((format!("PERSISTENCE {key_path}"), a));
            }
            if learning {
                self.base.persistence.insert(key_path);
            }
        }
        // Records of what happened that are gone from their place (the flag: a log's too, not
        // only a history's).
        let mut gone: Vec<(&[u8], &str, bool)> = Vec::new();
        match c.op.as_str() {
            "unlink" | "rmdir" => gone.push((old, "deleted", true)),
            "rename" if c.exchange() => {
                gone.push((old, "swapped away", true));
                gone.extend(new.map(|n| (n, "swapped away", true)));
            }
            "rename" => {
                // A log renamed within the logs (a package's temporary file put in place, a
                // rotation) is still there: only out of them is it gone.
                let within = new.is_some_and(|n| self.logs.matches(n));
                gone.push((old, "moved away", !within));
                gone.extend(new.map(|n| (n, "replaced (a rename over it)", false)));
            }
            "link" => gone.extend(new.map(|n| (n, "replaced (a hard link over it)", false))),
            "symlink" => gone.extend(new.map(|n| (n, "replaced with a symlink", true))),
            // truncate(2) or ftruncate(2) to length 0: judged as an open with O_TRUNC is.
            "truncate" => gone.push((old, "emptied", false)),
            _ => {}
        }
        let target = (c.op == "symlink").then_some(old);
        for (name, how, logs) in gone {
            self.indicator_gone(r, name, how, logs, target, out);
        }
        match c.op.as_str() {
            "mkdir" => {
                self.filled(old, r.pid);
            }
            "rmdir" => {
                self.filled_dirs.remove(old);
            }
            _ => {}
        }
        if matches!(c.op.as_str(), "unlink" | "rmdir") && !package {
            self.count_deletion(r, old, out);
        }
    }

    /// The rule a file at `path` breaks by shadowing a program of the system: it lies in a
    /// directory searched before the system's on PATH (`[files].path_ahead`: `~/.local/bin`,
    /// `/usr/local/bin`) and has the name of a program in the system's directories, so the
    /// user's next `sudo` or `git` runs it instead (T1574.007; a fake `sudo` asks for the
    /// password). A package manager's own name is not judged (pip upgrading itself into
    /// `~/.local/bin`, npm into `/usr/local/bin`).
    /// Whether `pid` writing `path` is a package manager (`@packages`: pip, uv) putting a
    /// package's own start-up hook in place: a `.pth` file, which python runs at every start
    /// (editable installs and setuptools ship them). Anything else writing one is persistence.
    fn package_content(&self, pid: u32, path: &[u8]) -> bool {
        path.ends_with(b".pth")
            && self
                .procs
                .get(&pid)
                .and_then(|p| p.label.as_deref())
                .is_some_and(|l| self.node(l) == "@packages")
    }

    fn shadowed_command(&self, path: &[u8]) -> Option<String> {
        let rule = self.path_ahead.first(path)?;
        let name = file_name(path);
        if !self.host.system_commands.contains(name) || self.node(&lossy(name)) == "@packages" {
            return None;
        }
        // Read inside the alert's backquotes: "`~/.local/bin/*` shadowing the system's `sudo`".
        Some(format!(
            "{}` {} `{}",
            rule.text,
            crate::incident::SHADOWING,
            lossy(name)
        ))
    }

    /// INDICATOR_REMOVAL when `name` is a history (`[files].histories`), or with `logs` a log.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn indicator_gone(
        &mut self,
        r: &Record,
        name: &[u8],
        how: &str,
        logs: bool,
        symlink_to: Option<&[u8]>,
        out: &mut Vec<(String, Alert)>,
    ) {
        let rule = self.histories.first(name);
        let Some(rule) = rule.or_else(|| logs.then(|| self.logs.first(name)).flatten()) else {
            return;
        };
        let text = rule.text.clone();
        let who = self.who(r);
        let mut s = format!("{who} {how} {} (indicator, `{text}`)", lossy(name));
        if let Some(t) = symlink_to {
            s.push_str(&format!(" -> {}", lossy(t)));
        }
        let key = format!("INDICATOR {}", self.tilde(name));
        self.indicator_removal(r, key, s, out);
    }

    /// An `INDICATOR_REMOVAL` alert on record `r`, deduplicated by `key`.
    pub(super) fn indicator_removal(
        &mut self,
        r: &Record,
        key: String,
        s: String,
        out: &mut Vec<(String, Alert)>,
    ) {
        let kind = "INDICATOR_REMOVAL";
        let a = self.alert(r, kind, kind, 1.0, s, vec![r.clone()]);
        out.push((key, a));
    }

    /// One more deletion: outside `[files].destruction_quiet` and the noise places, it counts
    /// towards DATA_DESTRUCTION.
    fn count_deletion(&mut self, r: &Record, path: &[u8], out: &mut Vec<(String, Alert)>) {
        if !path.starts_with(b"/")
            || self.paths.verdict(path).noise
            || self.destruction_quiet.matches(path)
        {
            return;
        }
        let now = r.ts_ns;
        while self
            .deletions
            .front()
            .is_some_and(|&t| t + DESTRUCTION_WINDOW_NS < now)
        {
            self.deletions.pop_front();
        }
        self.deletions.push_back(now);
        let burst = self.policy.files.destruction_burst as usize;
        if self.deletions.len() < burst || now < self.destruction_until {
            return;
        }
        self.destruction_until = now + DESTRUCTION_WINDOW_NS;
        let who = self.who(r);
        let s = format!(
            "{who} and its tree deleted {} files or directories outside the workspace within \
             10 s (`destruction_burst` {burst}), the latest {}",
            self.deletions.len(),
            lossy(path)
        );
        let a = self.alert(
            r,
            "DATA_DESTRUCTION",
            "DATA_DESTRUCTION",
            1.0,
            s,
            vec![r.clone()],
        );
        out.push(("DATA_DESTRUCTION".to_string(), a));
    }
}

/// How an open reads in an alert: `opened` or `tried to open (refused, errno N)`, and its mode.
pub(super) fn how_opened(f: &FileOpen) -> (String, &'static str) {
    let how = match f.error {
        Some(e) => format!("tried to open (refused, errno {e})"),
        None => "opened".to_string(),
    };
    let mode = match f.access {
        Access::Read => "read",
        Access::Write => "write",
        Access::ReadWrite => "read-write",
    };
    (how, mode)
}

/// What a sensitive device node is, for an alert's text.
fn kind_word(d: &proctor_model::DeviceNode) -> &'static str {
    match (d.kind, d.major) {
        (proctor_model::DeviceKind::Block, _) => "the disk",
        (proctor_model::DeviceKind::Char, 1) => "the kernel's memory",
        (proctor_model::DeviceKind::Char, 13) => "a keyboard's or mouse's input",
        (proctor_model::DeviceKind::Char, 10) if d.minor == 223 => "the synthetic input (uinput)",
        (proctor_model::DeviceKind::Char, 7) => "a console's screen",
        (proctor_model::DeviceKind::Char, _) => "the",
    }
}

impl Engine {
    /// A connect to a unix socket a sensitive rule names, by the path the caller passed or by
    /// the listener's socket file (device and inode, so a hard link or bind mount of
    /// `/run/docker.sock` is still that socket): a container runtime's API runs containers as
    /// root. Judged from the first record, then learned, as a credential read is.
    pub(super) fn on_unix_connect(
        &mut self,
        r: &Record,
        c: &proctor_model::Connect,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        let path = self.unix_dest(c);
        let rule = if path.first() == Some(&b'/') {
            let v = self.paths.verdict(&path);
            self.paths.sensitive(&v).map(str::to_string)
        } else {
            None
        };
        let by_id = (c.peer_ino != 0)
            .then(|| self.sensitive_ids.get(&(c.peer_dev, c.peer_ino)))
            .flatten()
            .cloned();
        let (key_path, why) = match (rule, by_id) {
            (Some(rule), _) => (self.tilde(&path), format!("`{rule}`")),
            (None, Some(real)) => (
                self.tilde(&real),
                format!("the same socket as {}", lossy(&real)),
            ),
            (None, None) => return,
        };
        if !self.base.sensitive.contains(&key_path) {
            let label = self.label_of(r);
            let s = format!(
                "pid {} ({label}) connected to {} (sensitive socket, {why}): the service \
                 behind it acts with its own rights (a container runtime's: root on the host)",
                r.pid,
                lossy(&path),
            );
            let a = self.alert(
                r,
                "SENSITIVE_FILE",
                "SENSITIVE_FILE",
                1.0,
                s,
                vec![r.clone()],
            );
            out.push((format!("SENSITIVE {key_path}"), a));
        }
        if learning {
            self.base.sensitive.insert(key_path);
        }
    }

    /// The socket a unix connect named: the path passed, a relative one joined to the agent's
    /// working directory; an abstract name as passed (its leading NUL kept).
    pub(super) fn unix_dest(&self, c: &proctor_model::Connect) -> Vec<u8> {
        let passed = c.dest.path.as_ref().map_or(&[][..], |p| p.as_bytes());
        match (passed.first(), &self.cwd) {
            (Some(&b), Some(cwd)) if b != b'/' && b != 0 => [cwd.as_slice(), b"/", passed].concat(),
            _ => passed.to_vec(),
        }
    }

    /// Is this a read of `path` by the tool whose configuration it is (`[files].tool_config`)?
    fn tool_config_read(&self, pid: u32, path: &[u8]) -> bool {
        let Some(label) = self.procs.get(&pid).and_then(|p| p.label.as_deref()) else {
            return false;
        };
        self.policy
            .files
            .tool_config
            .iter()
            .any(|(prog, glob)| glob_match(prog, label.as_bytes()) && glob_match(glob, path))
    }

    /// Is this read of `path` the agent's own, of a file its profile says it reads itself?
    fn own_read(&self, pid: u32, path: &[u8]) -> bool {
        self.profile_names(&self.base.own_files, path) && !self.in_tool_call(pid)
    }

    /// Whether one of a profile's path globs (`own_files`, `own_sourced`: over the path as
    /// alerts name it, `~/` for the agent's home) matches `path`.
    pub(super) fn profile_names(
        &self,
        globs: &std::collections::BTreeSet<String>,
        path: &[u8],
    ) -> bool {
        if globs.is_empty() {
            return false;
        }
        let shown = self.tilde(path);
        globs
            .iter()
            .any(|g| glob_match(g.as_bytes(), shown.as_bytes()))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proctor_model::{Bytes, FileOpen};

    /// A write-open of `path` (inode `ino`) by pid 10 at `ts`.
    pub(in crate::engine) fn write(ts: u64, path: &str, ino: u64) -> Record {
        Record {
            event: Event::FileOpen(FileOpen {
                path: Bytes::from(path),
                flags: 0o101,
                access: Access::Write,
                create: true,
                created: true,
                truncate: false,
                dev: 5,
                ino,
                error: None,
                path_truncated: false,
                repeats: 0,
                last_ts_ns: 0,
                device: None,
                setid: false,
                mapped_exec: false,
            }),
            ts_ns: ts,
            agent_id: "a".into(),
            pid: 10,
            ppid: 1,
            comm: Bytes::from("sh"),
            exec_id: "10-1-1".into(),
            identity: None,
            kseq: None,
        }
    }

    #[test]
    fn the_index_by_file_name_holds_exactly_the_written_files_remembered() {
        let mut e = Engine::new(Policy::builtin(), EngineConfig::default());
        // More than MAX_WRITTEN writes, many sharing a file name, some paths written twice.
        for i in 0..MAX_WRITTEN as u64 + 3_000 {
            let j = if i % 10 == 9 { i - 5 } else { i };
            let path = format!("/w/d{}/f{}.txt", j % 7, j % 5_000 + (j / 17_000) * 100_000);
            e.observe(&write(1_000 + i, &path, 1 + i));
        }
        assert_eq!(e.written.check_indexes(), MAX_WRITTEN);
    }
}
