//! L3 causal-graph helpers: the area a written file belongs to, and which written file an
//! exec runs (write-then-exec cycles).

use super::*;

impl Engine {
    /// The graph node of a process: its tool family (`@text`, ...) or its basename.
    pub(super) fn node(&self, label: &str) -> String {
        const MEMO_MAX: usize = 4096;
        if let Some(n) = self.node_memo.borrow().get(label) {
            return n.clone();
        }
        let b = label.as_bytes();
        let node = self
            .policy
            .families
            .iter()
            .find(|(_, globs)| globs.iter().any(|g| glob_match(g, b)))
            .map_or_else(|| label.to_string(), |(family, _)| format!("@{family}"));
        let mut memo = self.node_memo.borrow_mut();
        if memo.len() >= MEMO_MAX {
            memo.clear();
        }
        memo.insert(label.to_string(), node.clone());
        node
    }

    /// New write edges into these areas are evidence, not alerts.
    pub(super) fn quiet_area(&self, area: &str) -> bool {
        self.policy.quiet_write_areas.iter().any(|a| a == area)
    }

    /// Keep a low-severity finding (once per key): it is handed out as [`Output::Evidence`].
    pub(super) fn evidence(&mut self, key: String, a: Alert) {
        if self.seen_evidence.insert(key) {
            self.evidence_out.push(a);
        }
    }

    /// The area of a file for L3 ([`area_of`] with this agent's HOME and CWD).
    pub(super) fn area(&self, path: &[u8]) -> String {
        area_of(path, self.home.as_deref(), self.cwd.as_deref())
    }

    /// The file written in this run that this exec runs: the binary itself (by device+inode or
    /// path), or a script named in the argv of an interpreter.
    pub(super) fn written_run_by(&self, e: &Exec, interp: bool) -> Option<Arc<Written>> {
        if e.ino != 0 {
            if let Some(w) = self.written.by_ino((e.dev, e.ino)) {
                return Some(w.clone());
            }
        }
        if let Some(w) = self.written.by_path(e.filename.as_bytes()) {
            return Some(w.clone());
        }
        if !interp {
            return None;
        }
        // What the interpreter runs: the values of its options (`-r MODULE`, `-c CMD`; any
        // option without `=` may take the next word) and its script, the first word that is
        // no option's value. The words after the script are the script's own arguments (data
        // files it reads, which it may well have written itself), not code the interpreter runs.
        let mut value = false;
        let mut module = false;
        for a in e.argv.iter().skip(1) {
            let a = a.as_bytes();
            if a.first() == Some(&b'-') {
                value = !a.contains(&b'=') && a.len() > 1;
                // Python's `-m MOD` (or `-mMOD`) runs a module by its name, not its file.
                module = a == b"-m";
                // (Perl's `-mMODULE` is an option before the script: keep looking.)
                if let Some(w) = a.strip_prefix(b"-m").and_then(|m| self.written_module(m)) {
                    return Some(w);
                }
                continue;
            }
            let script = !std::mem::take(&mut value);
            if let Some(w) = self.written_code(a) {
                return Some(w);
            }
            // The module is the script: what follows are its arguments.
            if std::mem::take(&mut module) {
                return self.written_module(a);
            }
            if script {
                break;
            }
        }
        None
    }

    /// The file written in this run that `python -m MOD` runs: `MOD.py`, or the package's
    /// `__main__.py` (`a.b` is `a/b`), found as a relative script path is.
    fn written_module(&self, m: &[u8]) -> Option<Arc<Written>> {
        if m.is_empty() || m.contains(&b'/') {
            return None;
        }
        let rel: Vec<u8> = m
            .iter()
            .map(|&c| if c == b'.' { b'/' } else { c })
            .collect();
        [&b".py"[..], b"/__main__.py"].iter().find_map(|tail| {
            let mut p = rel.clone();
            p.extend_from_slice(tail);
            self.written_arg(&p)
        })
    }

    /// The file written in this run that an interpreter runs for its argument `a`: the file of
    /// that name, or for a name with no extension the file Node resolves it to (`node evil` and
    /// `node -r ./evil` run `evil.js`, `.mjs`, `.cjs` or `evil/index.js`).
    fn written_code(&self, a: &[u8]) -> Option<Arc<Written>> {
        self.written_arg(a).or_else(|| {
            if a.is_empty() || file_name(a).contains(&b'.') {
                return None;
            }
            [&b".js"[..], b".mjs", b".cjs", b"/index.js"]
                .iter()
                .find_map(|ext| self.written_arg(&[a, ext].concat()))
        })
    }

    /// The file written in this run that an interpreter's argument `a` names.
    fn written_arg(&self, a: &[u8]) -> Option<Arc<Written>> {
        if a.is_empty() {
            return None;
        }
        if a.first() == Some(&b'/') {
            return self.written.by_path(a).cloned();
        }
        // A relative script path: the process's cwd is unknown, so match the written path's
        // tail (conservative: a same-named file elsewhere could match). A path ending in `/REL`
        // has REL's file name: only the written files of that name are looked at, the latest
        // first (every `bash -c CMD` of an agent comes here with CMD).
        let rel = a.strip_prefix(b"./").unwrap_or(a);
        let mut tail = b"/".to_vec();
        tail.extend_from_slice(rel);
        let p = self
            .written
            .named(file_name(rel))
            .rev()
            .find(|p| p.ends_with(&tail))?;
        self.written.by_path(p).cloned()
    }
}

/// The last component of a path (all of it without a `/`; empty after a trailing `/`).
pub(super) fn file_name(path: &[u8]) -> &[u8] {
    path.rsplit(|&c| c == b'/').next().unwrap_or(path)
}

/// The area of a file: `$CWD`, `~`, `/tmp` (also /var/tmp and /dev/shm), else its first two
/// components. L3 graph nodes and generated policies generalise written files the same way.
pub(crate) fn area_of(path: &[u8], home: Option<&[u8]>, cwd: Option<&[u8]>) -> String {
    let under = |base: Option<&[u8]>| {
        base.is_some_and(|b| path.starts_with(b) && path.get(b.len()) == Some(&b'/'))
    };
    if under(cwd) {
        return "$CWD".into();
    }
    if under(home) {
        return "~".into();
    }
    for t in ["/tmp/", "/var/tmp/", "/dev/shm/"] {
        if path.starts_with(t.as_bytes()) {
            return "/tmp".into();
        }
    }
    let comps: Vec<&[u8]> = crate::glob::components(path).collect();
    match comps.len() {
        0 | 1 => "/".into(),
        // A file directly in a top-level directory: that directory.
        2 => format!("/{}", lossy(comps[0])),
        _ => format!("/{}/{}", lossy(comps[0]), lossy(comps[1])),
    }
}
