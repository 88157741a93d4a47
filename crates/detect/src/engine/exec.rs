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
    /// Whether a program of this basename is an interpreter by the policy's names.
    pub(super) fn interpreter_name(&self, name: &[u8]) -> bool {
        self.policy
            .interpreter_names
            .iter()
            .any(|g| glob_match(g, name))
    }

    /// Whether the script `run` is a file directly in one of [`SYSTEM_BIN_DIRS`] (all root's to
    /// write) or of `more` directories, named by its absolute path, that is not itself an
    /// interpreter (the dynamic loader's `ld.so /bin/sh -c ...` names the shell it runs where a
    /// script would be).
    fn installed_script(&self, run: &ScriptRun, more: &[&[u8]]) -> bool {
        !run.module
            && !self.interpreter_name(run.name())
            && SYSTEM_BIN_DIRS
                .iter()
                .map(|d| d.as_bytes())
                .chain(more.iter().copied())
                .any(|d| directly_in(run.word, d))
    }

    /// Whether a shell's exec (`family`, running `run`) runs a script of the system's, one of
    /// [`SYSTEM_BIN_DIRS`] ([`installed_script`](Self::installed_script)). Shells only: a
    /// system script that is an interpreter of another language (ipython) would pass code.
    fn system_script(&self, family: &str, e: &Exec, run: &ScriptRun) -> bool {
        family.ends_with("sh")
            && !is_dynamic_loader(e.filename.basename())
            && self.installed_script(run, &[])
    }

    /// The tool an interpreter's exec (`e`) runs (`run`), when it was installed with the
    /// system or with the interpreter: a script directly in one of [`SYSTEM_BIN_DIRS`] or
    /// /usr/local/bin, or directly in the interpreter's own directory (nvm's, pyenv's or a
    /// venv's `bin/`, where npm sits beside node and pip beside python), or a module `python
    /// -m` runs, whose name is in a tool family (`@packages`, `@build`, ...) and is no
    /// interpreter's. The caller checks that the tree did not write it.
    fn system_tool(&self, e: &Exec, run: &ScriptRun) -> Option<String> {
        let interpreter = e.filename.as_bytes();
        let own_dir = parent_dir(interpreter);
        let dirs: &[&[u8]] = if own_dir.is_empty() {
            &[b"/usr/local/bin"]
        } else {
            &[b"/usr/local/bin", own_dir]
        };
        ((run.module && !self.interpreter_name(run.name())) || self.installed_script(run, dirs))
            .then(|| lossy(run.name()))
            .filter(|n| self.node(n).starts_with('@'))
    }

    /// The name an executed file goes by: its own, unless it is a program of the system's
    /// directories (by device+inode) under none of its names there (`ln /bin/cat /tmp/aws`).
    fn program_name<'e>(&'e self, e: &'e Exec) -> &'e [u8] {
        let base = e.filename.basename();
        match self.host.programs.get(&(e.dev, e.ino)) {
            Some(names) if e.ino != 0 && !names.iter().any(|n| n == base) => &names[0],
            _ => base,
        }
    }

    /// Whether a program of this label only runs another (`[graph].launchers`).
    fn launcher(&self, label: &str) -> bool {
        self.policy
            .launchers
            .iter()
            .any(|g| glob_match(g, label.as_bytes()))
    }

    pub(super) fn classify_interpreter(&self, e: &Exec) -> Option<(String, String)> {
        let base = e.filename.basename();
        // `ld-linux-x86-64.so.2 /bin/sh -c ...` runs /bin/sh: the loader maps the program named
        // in its argv, so that program is what was executed.
        if is_dynamic_loader(base) {
            let target = loader_target(&e.argv)?;
            let tb = target.basename();
            return self.interpreter_name(tb).then(|| {
                let name = lossy(tb);
                (
                    canonical_interpreter(&name),
                    format!("{name} run through the dynamic loader {}", lossy(base)),
                )
            });
        }
        if self.interpreter_name(base) {
            let name = lossy(base);
            return Some((
                canonical_interpreter(&name),
                format!("resolved path {name}"),
            ));
        }
        if let Some(name) = self.host.interpreters.get(&(e.dev, e.ino)) {
            return Some((
                canonical_interpreter(name),
                format!("device+inode of {name}"),
            ));
        }
        let id = e.build_id.as_ref()?;
        self.host.interpreter_ids.get(id).map(|name| {
            (
                canonical_interpreter(name),
                format!("the content of {name}: ELF build-id {id}"),
            )
        })
    }

    /// The risky rules an exec matches, by the file's own name or, for a file under another
    /// name, by what it is (device+inode or build-id of a risky binary found at start): a hard
    /// link or copy of curl named `fetch` is curl. An interpreter's exec also matches by the
    /// name of the script it runs (`script`, [`script_run`]), with the script's own
    /// arguments: `ufw`, `twine`, `gcloud` and Debian's `aws` are scripts, and what the kernel
    /// executes for them is python or sh with the script's path as an argument.
    pub(super) fn risky_rules(&self, e: &Exec, script: Option<&ScriptRun>) -> Vec<String> {
        let base = e.filename.basename();
        let known = self.host.risky.get(&(e.dev, e.ino)).or_else(|| {
            e.build_id
                .as_ref()
                .and_then(|id| self.host.risky_ids.get(id))
        });
        self.policy
            .risky
            .iter()
            .filter(|rule| {
                let any =
                    |g: &[u8], from: &[Bytes]| from.iter().any(|a| glob_match(g, a.as_bytes()));
                let args = |from: &[Bytes]| {
                    rule.arg.as_ref().is_none_or(|g| any(g, from))
                        && !rule.not.as_ref().is_some_and(|g| any(g, from))
                };
                let by_file = (glob_match(&rule.name, base)
                    || known.is_some_and(|k| glob_match(&rule.name, k.as_bytes())))
                    && args(e.argv.get(1..).unwrap_or_default());
                by_file
                    || script
                        .is_some_and(|run| glob_match(&rule.name, run.name()) && args(run.args))
            })
            .map(|rule| rule.text.clone())
            .collect()
    }

    /// The file the tree wrote that an interpreter's inline code (`family`'s `-c` text) reads
    /// as code: a shell's `source F`, `. F`, `sh < F`, `cat F | sh`, `eval "$(cat F)"`
    /// ([`graph::sourced_files`]), python's `exec(open(F).read())` or `runpy.run_path(F)`.
    /// Not one the profile says the agent writes for its shells to source (`own_sourced`:
    /// Claude Code's and Codex's shell snapshots, which every tool call sources), nor a
    /// dependency tree's file a program other than a shell wrote (a venv's `bin/activate`,
    /// rustup's `~/.cargo/env`).
    fn sourced_written(&self, family: &str, script: &str) -> Option<Arc<Written>> {
        let files = if family.ends_with("sh") {
            graph::sourced_files(script, |w| self.interpreter_name(w))
        } else {
            loaded_files(family, script)
        };
        self.written_source(&files)
    }

    /// The file the tree wrote that the exec's environment makes the interpreter (`family`)
    /// run besides what its argv names: `BASH_ENV=F` for a shell, `NODE_OPTIONS=--require F`,
    /// a `sitecustomize.py` in a `PYTHONPATH` directory ([`graph::started_with`]; the kernel
    /// reads these variables at the exec, so they count whoever set them: a python
    /// `subprocess.run(.., env=..)` as much as a shell's `BASH_ENV=F bash`). Judged like
    /// what inline code sources ([`sourced_written`](Self::sourced_written)).
    fn env_started_written(&self, family: &str, e: &Exec) -> Option<Arc<Written>> {
        // php's command line sets what its settings do too (`-c`, `-d auto_prepend_file=`),
        // java's what it loads (`-javaagent:`, `-cp`).
        if e.env.is_empty() && !matches!(family, "php" | "java" | "jshell") {
            return None;
        }
        let args: Vec<String> = e.argv.iter().skip(1).map(|a| lossy(a.as_bytes())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let var = |n: &str| e.env_values(n).map(lossy).collect();
        self.written_source(&graph::started_with(family, &args, &var))
    }

    /// The first of `files` (as an interpreter names them: `~/` is the tree's HOME; `D/*.ini`
    /// or `D/*.jar`, any of D's files named so) that the tree wrote and runs as code against the profile's
    /// and the dependency trees' rules.
    fn written_source(&self, files: &[String]) -> Option<Arc<Written>> {
        let allowed = |w: &Arc<Written>| {
            !self.profile_names(&self.base.own_sourced, &w.path)
                && (!self.in_dependency_tree(&w.path)
                    || canonical_interpreter(&w.writer).ends_with("sh"))
        };
        files.iter().find_map(|f| {
            let path = match (f.strip_prefix("~/"), &self.home) {
                (Some(rest), Some(home)) => [&home[..], b"/", rest.as_bytes()].concat(),
                _ => f.as_bytes().to_vec(),
            };
            match graph::dir_pattern(&path) {
                Some((dir, ext)) if dir.starts_with(b"/") => self
                    .written
                    .in_dir(dir)
                    .find(|w| w.path.ends_with(ext) && allowed(w))
                    .cloned(),
                // A directory relative to a working directory not known here: any of that
                // name.
                Some((dir, ext)) => {
                    let dir = dir.strip_prefix(b"./").unwrap_or(dir);
                    self.written
                        .in_dirs_ending(dir)
                        .find(|w| w.path.ends_with(ext) && allowed(w))
                        .cloned()
                }
                None => self.written_code(&path).filter(allowed),
            }
        })
    }

    /// The package transaction a process is in after this exec (`packages`): the one it was in,
    /// tainted when a trusted one runs a file the tree wrote, an interactive shell, a pager or
    /// an editor; a new one
    /// when it starts a package manager with vetted arguments outside any (a package manager
    /// run by another keeps that one's standing, trusted or not); else none.
    ///
    /// The package manager is the system's: a binary directly in [`SYSTEM_BIN_DIRS`] that is
    /// no interpreter (by name, device+inode or build-id: bash hard-linked as `apt-get` is
    /// bash), or a script there its interpreter runs (dnf and yum are python), not written by
    /// the tree.
    fn transaction_at_exec(
        &mut self,
        pid: u32,
        e: &Exec,
        prev: Option<&str>,
        interp: &Option<(String, String)>,
        script: Option<&ScriptRun>,
        written: &Option<Arc<Written>>,
    ) -> u32 {
        let tx = self.procs.get(&pid).map_or(0, |p| p.tx);
        if self.txs.trusted(tx) {
            let terminal = packages::INTERACTIVE_PROGRAMS
                .iter()
                .any(|p| p.as_bytes() == self.program_name(e));
            if written.is_some() || terminal || (interp.is_some() && packages::interactive(&e.argv))
            {
                self.txs.taint(tx);
            }
            return tx;
        }
        let program = match (interp, script) {
            (None, _)
                if SYSTEM_BIN_DIRS
                    .iter()
                    .any(|d| directly_in(e.filename.as_bytes(), d.as_bytes())) =>
            {
                Some((e.filename.basename(), e.argv.get(1..).unwrap_or_default()))
            }
            (Some(_), Some(run)) if self.installed_script(run, &[]) => Some((run.name(), run.args)),
            _ => None,
        };
        let start = tx == 0
            && written.is_none()
            && !prev.is_some_and(|p| self.package_manager(p.as_bytes()))
            && program.is_some_and(|(name, args)| {
                self.package_manager(name) && packages::vetted(name, args)
            });
        if start {
            self.txs.start()
        } else {
            tx
        }
    }

    /// An exec of a file with no path (a memfd, a deleted file): code that was never on disk
    /// for anyone to inspect. Always an alert, learning or not.
    fn on_fileless(&mut self, r: &Record, e: &Exec, out: &mut Vec<(String, Alert)>) {
        let s = format!(
            "pid {} executed {} from no file on disk ({}): {}",
            r.pid,
            e.filename.escaped(),
            if e.filename.as_bytes().starts_with(b"/") {
                "a deleted file"
            } else {
                "a memory-backed file"
            },
            clip(
                &e.argv
                    .iter()
                    .map(|a| a.escaped())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        );
        let a = self.alert(r, "FILELESS_EXEC", "FILELESS_EXEC", 1.0, s, vec![r.clone()]);
        out.push((format!("FILELESS_EXEC {} {}", e.dev, e.ino), a));
    }

    /// Code loaded without an exec: a file mapped executable (`mapped_exec`: a library brought
    /// in by LD_PRELOAD, dlopen or ctypes) that the tree wrote in this run, judged as
    /// write-then-exec is (an L3 cycle `writer -> area -> loader` the baseline did not show),
    /// or one with no name on disk (a memfd: `FILELESS_EXEC`, learned the same way by the
    /// loading program, since some runtimes map their own code so). A library the tree wrote
    /// and preloaded into a baseline program runs as that program: no exec, no new edge.
    pub(super) fn on_mapped_exec(
        &mut self,
        r: &Record,
        f: &FileOpen,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        let loader = self.label_of(r);
        let path = f.path.as_bytes();
        let fileless = path.first() != Some(&b'/');
        let written = if fileless {
            None
        } else {
            match self
                .written
                .by_ino((f.dev, f.ino))
                .or_else(|| self.written.by_path(path))
            {
                Some(w) => Some(w.clone()),
                // The kernel's account of written files outlives ours, or an inode number
                // came back for another file: nothing the tree wrote.
                None => return,
            }
        };
        if written
            .as_ref()
            .is_some_and(|w| self.installed_module(w, &loader, false))
        {
            return;
        }
        let key = match &written {
            Some(w) => format!("{} -> {} -> {loader}", w.writer, self.area(&w.path)),
            None => format!("(memory) -> memfd -> {loader}"),
        };
        if learning {
            self.base.cycles.insert(key);
            return;
        }
        if !self.policy.cycles || self.base.cycles.contains(&key) {
            return;
        }
        let who = format!("pid {} ({loader})", r.pid);
        let (a, akey) = match written {
            Some(w) => {
                let s = format!(
                    "{who} loaded {} as code ({}) which {} wrote in this run \
                     ({key})",
                    f.path.escaped(),
                    crate::incident::MAPPED_EXEC,
                    w.writer
                );
                let recs = vec![Record::clone(&w.rec), r.clone()];
                let a = self.alert(r, "L3", "CAUSAL_CYCLE_DETECTED", 1.0, s, recs);
                (a, format!("L3 cycle {}", lossy(&w.path)))
            }
            None => {
                let s = format!(
                    "{who} loaded {} as code from no file on disk (a memory-backed file, \
                     {})",
                    f.path.escaped(),
                    crate::incident::MAPPED_EXEC
                );
                let a = self.alert(r, "FILELESS_EXEC", "FILELESS_EXEC", 1.0, s, vec![r.clone()]);
                (a, format!("FILELESS_EXEC {} {}", f.dev, f.ino))
            }
        };
        out.push((akey, a));
    }

    /// Whether `runner` running or loading the written file `w` is how packages work: a
    /// module installed or built into a dependency tree (pip's wheels imported by python, the
    /// scripts of a venv's `bin/` or of `node_modules` run by their runtime, npm's prebuilt
    /// addons loaded by node, uv's wheels by python, a proc macro the linker wrote under
    /// `target/` loaded by rustc, a test binary there that cargo runs), written by the runner's
    /// own program, or by a package manager or a build tool when the runner is a runtime (an
    /// interpreter), a build tool or run by one (`by_build`). The same runtime running one it
    /// wrote anywhere else, or any other program loading one (LD_PRELOAD into git), is judged.
    /// A package manager's command in a `bin/` outside any environment (`pip install --user`
    /// into `~/.local/bin`, pip of a pyenv interpreter into its `bin/`, gem into
    /// /usr/local/bin) run by a runtime is one too: the code it runs is the package's, which
    /// the runtime could import from where the same install put it without any alert.
    fn installed_module(&self, w: &Written, runner: &str, by_build: bool) -> bool {
        let tool =
            by_build || self.node(runner) == "@build" || self.interpreter_name(runner.as_bytes());
        let by = self.node(&w.writer);
        (self.in_dependency_tree(&w.path)
            && (*w.writer == *runner || (matches!(by.as_str(), "@packages" | "@build") && tool)))
            || (by == "@packages" && tool && parent_dir_named(&w.path, b"bin"))
    }

    /// Whether `path` lies in a package manager's or a build's dependency tree: a directory
    /// named `site-packages`, `dist-packages`, `node_modules`, `.venv`, `venv`, `target`,
    /// `.cargo`, `.rustup`, `__pycache__`, `.gradle` or `.m2` (Gradle's worker jar, which the
    /// build's JVM writes and the next one runs; Maven's repository), or the `bin/` of a
    /// virtual environment the tree made (it wrote the `pyvenv.cfg` beside it, whatever the
    /// environment is called).
    fn in_dependency_tree(&self, path: &[u8]) -> bool {
        const TREES: [&[u8]; 11] = [
            b"site-packages",
            b"dist-packages",
            b"node_modules",
            b".venv",
            b"venv",
            b"target",
            b".cargo",
            b".rustup",
            b"__pycache__",
            b".gradle",
            b".m2",
        ];
        let dir = parent_dir(path);
        dir.split(|&b| b == b'/').any(|c| TREES.contains(&c))
            || dir.strip_suffix(b"/bin").is_some_and(|env| {
                self.written
                    .by_path(&[env, b"/pyvenv.cfg"].concat())
                    .is_some()
            })
    }

    /// An exec that raised the effective uid (`euid`, the owner of a set-user-ID file) or the
    /// effective gid (`egid`, a set-group-ID file's group): expected of the system's own
    /// set-user-ID and set-group-ID programs in the system's directories
    /// (`[risky_binaries].setuid_expected`), otherwise a way to privilege the agent was not
    /// given (T1548.001).
    fn on_setid_exec(&mut self, r: &Record, e: &Exec, out: &mut Vec<(String, Alert)>) {
        let (id, real, bit, key) = match (e.euid, e.egid) {
            (Some(euid), _) => (
                if euid == 0 {
                    "root".to_string()
                } else {
                    format!("uid {euid}")
                },
                r.identity.map_or(u32::MAX, |i| i.uid),
                crate::incident::SETUID_EXEC,
                "setuid",
            ),
            (None, Some(egid)) => (
                format!("group {egid}"),
                r.identity.map_or(u32::MAX, |i| i.gid),
                crate::incident::SETGID_EXEC,
                "setgid",
            ),
            (None, None) => return,
        };
        let path = e.filename.as_bytes();
        let system = [
            &b"/usr/"[..],
            b"/bin/",
            b"/sbin/",
            b"/lib/",
            b"/lib64/",
            b"/opt/",
        ]
        .iter()
        .any(|d| path.starts_with(d));
        let base = e.filename.basename();
        if system
            && self
                .policy
                .setuid_expected
                .iter()
                .any(|g| crate::glob::glob_match(g, base))
        {
            return;
        }
        let s = format!(
            "pid {} ran {} as {id} {bit} {real}): {}, a way to privilege it was not given",
            r.pid,
            e.filename.escaped(),
            if system {
                "a system file not among the expected set-ID programs"
            } else {
                "a set-ID file outside the system's directories"
            }
        );
        let a = self.alert(
            r,
            "PRIVILEGED_CALL",
            "PRIVILEGED_CALL",
            1.5,
            s,
            vec![r.clone()],
        );
        out.push((format!("PRIVILEGED {key} {} {}", e.dev, e.ino), a));
    }

    pub(super) fn on_exec(
        &mut self,
        r: &Record,
        e: &Exec,
        learning: bool,
        out: &mut Vec<(String, Alert)>,
    ) {
        if e.fileless {
            self.on_fileless(r, e, out);
        }
        self.on_setid_exec(r, e, out);
        let mut root_start = !self.procs.contains_key(&r.pid) && !self.procs.contains_key(&r.ppid);
        let own = self.ensure_proc(r);
        let mut prev = own.label.clone();
        let mut from = own.from.clone();
        if prev.is_none() {
            if let Some(p) = self.procs.get(&r.ppid) {
                (prev, from) = (p.label.clone(), p.from.clone());
            }
        }
        // What a launcher (`env` of a `#!/usr/bin/env bash` line, `timeout`) runs is run by
        // the launcher's own spawner; by the tree itself when the launcher was its root.
        if prev.as_deref().is_some_and(|l| self.launcher(l)) {
            root_start |= from.is_none();
            prev = from;
        }
        let interp = self.classify_interpreter(e);
        // A JVM, no interpreter by the policy's names (a build's `java` is a tool), loads what
        // its options and environment name all the same; the JDK's other tools (javac,
        // keytool) what their environment names.
        let env_family = interp
            .as_ref()
            .map(|(family, _)| family.as_str())
            .or_else(|| jvm_family(e.filename.as_bytes()));
        if let Some(family) = env_family.filter(|_| e.env_unread) {
            self.on_env_unread(r, e, family, out);
        }
        // What the interpreter runs, once: its name judges risky rules, tools and scripts.
        let script = interp
            .as_ref()
            .and_then(|(family, _)| script_run(family, &e.argv));
        let risky = self.risky_rules(e, script.as_ref());
        // How a written file runs when it is not the program or script argv names (`None`:
        // it is): named by the environment or options, or read as code by inline code
        // (`bash -c`, `python3 -c`).
        let (written, how_run) = match self.written_run_by(e, interp.is_some()) {
            Some(w) => (Some(w), None),
            None => env_family
                .and_then(|family| {
                    self.env_started_written(family, e)
                        .map(|w| (w, "ran as code (its environment or options name it: BASH_ENV, NODE_OPTIONS, PYTHONPATH, JAVA_TOOL_OPTIONS, -javaagent and their kin)"))
                        .or_else(|| {
                            let (family, _) = interp.as_ref()?;
                            let w = self.sourced_written(family, &inline_code(family, &e.argv)?)?;
                            Some((w, "ran as code (sourced, or fed to an interpreter)"))
                        })
                })
                .map_or((None, None), |(w, how)| (Some(w), Some(how))),
        };
        let sourced = how_run.is_some();
        // An interpreter running a tool the system installed (`node /usr/bin/npm`,
        // `python3 /usr/bin/pip3`, `python3 -m pytest`) is that tool: its name (a tool family's)
        // is the process's, and it is no interpreter spawn.
        let tool = script
            .as_ref()
            .filter(|_| written.is_none())
            .and_then(|run| self.system_tool(e, run));
        let new_label = tool.clone().unwrap_or_else(|| lossy(self.program_name(e)));
        let tx = self.transaction_at_exec(
            r.pid,
            e,
            prev.as_deref(),
            &interp,
            script.as_ref(),
            &written,
        );
        let parent = prev.as_deref().unwrap_or("?");
        let pnode = self.node(parent);
        let edge = format!("spawn {pnode} -> {}", self.node(&new_label));
        // Profiles saved before tool families name edges by basename.
        let exact = format!("spawn {parent} -> {new_label}");
        // A program re-executing itself (a re-exec under another argv[0], git's own children)
        // is not a new edge.
        let self_exec = parent == new_label;
        // A shell running one of the system's own scripts (`sh /usr/bin/lsb_release -a`, which
        // pip runs at every install) runs that program, not code of the agent's: it is not a
        // new interpreter or shell parent. What the script runs is judged as its children.
        let interp = interp.filter(|(family, _)| {
            written.is_some()
                || (tool.is_none()
                    && !script
                        .as_ref()
                        .is_some_and(|run| self.system_script(family, e, run)))
        });
        let interp_parent = interp.as_ref().map(|(fam, _)| format!("{pnode} -> {fam}"));
        // (What is sourced is judged by `sourced_written`'s own rule for dependency trees.)
        let cycle =
            written.filter(|w| sourced || !self.installed_module(w, &new_label, pnode == "@build"));
        let cycle_key = cycle
            .as_ref()
            .map(|w| format!("{} -> {} -> {}", w.writer, self.area(&w.path), new_label));
        let argv = clip(
            &e.argv
                .iter()
                .map(|a| a.escaped())
                .collect::<Vec<_>>()
                .join(" "),
        );
        if let Some(p) = self.procs.get_mut(&r.pid) {
            p.label = Some(new_label.as_str().into());
            // Unknown ("?", an attached process's child) is not the root.
            p.from = (!root_start).then(|| prev.clone().unwrap_or_else(|| "?".into()));
            p.exited = None;
            p.argv = Some(argv.clone());
            p.tx = tx;
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
            self.base.interp_parents.extend(interp_parent);
            if let Some(k) = cycle_key {
                self.base.cycles.insert(k);
            }
            return;
        }
        if root_start {
            return;
        }
        let who = format!("pid {} ({})", r.pid, prev.as_deref().unwrap_or("?"));
        self.check_intent(r, e, interp.as_ref().map(|(n, _)| n.as_str()), out);
        let mut hijack = false;
        if let Some((name, how)) = &interp {
            if !self.base.interpreters.contains(name) {
                hijack = true;
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
            // One key per program within the cooldown: the script's, for an interpreter's.
            let program = script
                .as_ref()
                .map_or_else(|| new_label.clone(), |run| lossy(run.name()));
            out.push((format!("RISKY {program}"), a));
        }
        if self.policy.structural_drift
            && !self_exec
            && !self.base.edges.contains(&edge)
            && !self.base.edges.contains(&exact)
        {
            // A shell or interpreter from a parent that ran none of its family is the one new
            // process edge that alerts on its own (unless L2 already did for this exec).
            let new_shell = interp_parent
                .as_ref()
                .filter(|k| !hijack && !self.base.interp_parents.contains(*k));
            // A program never run before, started from scratch space (where a dropped or
            // copied binary lands) by anything but a build tool (test binaries live there).
            let scratch = !self.base.binaries.contains(&new_label)
                && pnode != "@build"
                && self.area(e.filename.as_bytes()) == "/tmp";
            match new_shell {
                None if scratch => {
                    let s = format!(
                        "new process edge `{edge}`: a program never run in the baseline, from \
                         scratch space {}: {argv}",
                        e.filename.escaped()
                    );
                    let mut a = self.alert(r, "L3", "STRUCTURAL_DRIFT", 1.0, s, vec![r.clone()]);
                    a.rule_id = "L3.STRUCTURAL_DRIFT.scratch-exec".into();
                    out.push((format!("L3 {edge}"), a));
                }
                Some(k) => {
                    let s = format!(
                        "new process edge `{edge}`: {pnode} ran no {} in the baseline: {argv}",
                        k.rsplit(" -> ").next().unwrap_or("interpreter")
                    );
                    let mut a = self.alert(r, "L3", "STRUCTURAL_DRIFT", 1.0, s, vec![r.clone()]);
                    a.rule_id = "L3.STRUCTURAL_DRIFT.new-shell-parent".into();
                    out.push((format!("L3 {edge}"), a));
                }
                None => {
                    let s = format!("new process edge `{edge}` (not in the baseline): {argv}");
                    let a = self.alert(r, "L3", "STRUCTURAL_DRIFT", 0.5, s, vec![r.clone()]);
                    self.evidence(format!("L3 {edge}"), a);
                }
            }
        }
        if let (Some(w), Some(k)) = (cycle, cycle_key) {
            if self.policy.cycles && !self.base.cycles.contains(&k) {
                let s = format!(
                    "{who} {} {} which {} wrote in this run ({k})",
                    how_run.unwrap_or("executed"),
                    lossy(&w.path),
                    w.writer
                );
                let a = self.alert(
                    r,
                    "L3",
                    "CAUSAL_CYCLE_DETECTED",
                    1.0,
                    s,
                    vec![Record::clone(&w.rec), r.clone()],
                );
                out.push((format!("L3 cycle {}", lossy(&w.path)), a));
            }
        }
    }
}

/// What an interpreter's argv runs ([`script_run`]).
pub(super) struct ScriptRun<'a> {
    /// The script as the argv names it, or the module's name (`python -m`).
    pub word: &'a [u8],
    pub module: bool,
    /// The program's own arguments.
    pub args: &'a [Bytes],
}

impl ScriptRun<'_> {
    /// The program's name: the script's file name, or the module's top package.
    pub fn name(&self) -> &[u8] {
        if self.module {
            self.word.split(|&c| c == b'.').next().unwrap_or(self.word)
        } else {
            file_name(self.word)
        }
    }
}

/// The program an interpreter's argv runs, by name, and that program's own arguments: the
/// script (its file name: `python3 /usr/sbin/ufw disable` runs `ufw`), or the module of
/// `python -m MOD` (its top package: `python3 -m twine upload` runs `twine`). `family` is the
/// interpreter's ([`canonical_interpreter`]). None for code given inline (a shell's or
/// python's `-c`, also in a cluster such as `-ec`; `-e`, `--eval`, `-p` of the others), and
/// when no word is left. Options that take the next word as their value skip it (python's
/// `-W`/`-X`, node's `-r`/`--import`, a shell's `-o`/`-O`); any other option is a flag, so the
/// word after it is the script.
fn script_run<'a>(family: &str, argv: &'a [Bytes]) -> Option<ScriptRun<'a>> {
    const WITH_VALUE: [&[u8]; 14] = [
        b"-W",
        b"-X",
        b"-r",
        b"--require",
        b"--import",
        b"--loader",
        b"--experimental-loader",
        b"-C",
        b"--conditions",
        b"-o",
        b"+o",
        b"-O",
        b"+O",
        b"--rcfile",
    ];
    let python = family == "python";
    // Short options cluster in shells and python (`bash -ec`, `python3 -uc`).
    let clusters = python || family.ends_with("sh");
    let tail = |from: usize| argv.get(from..).unwrap_or_default();
    let mut i = 1;
    while let Some(a) = argv.get(i) {
        let b = a.as_bytes();
        if b == b"--" {
            return argv.get(i + 1).map(|s| ScriptRun {
                word: s.as_bytes(),
                module: false,
                args: tail(i + 2),
            });
        }
        let short = b.len() > 1 && b[0] == b'-' && b[1] != b'-';
        let inline = if family == "java" {
            false
        } else if clusters {
            // Up to the first letter whose value is the rest of the word (`-Wignore::...`).
            short
                && b[1..]
                    .iter()
                    .take_while(|c| !b"WXmoO".contains(c))
                    .any(|&c| c == b'c')
        } else {
            [&b"-c"[..], b"-e", b"-E", b"--eval", b"-p", b"--print"].contains(&b)
                || b.starts_with(b"--eval=")
                || b.starts_with(b"--print=")
        };
        if inline {
            return None;
        }
        if let Some(m) = b.strip_prefix(b"-m").filter(|_| python) {
            // `-m MOD` or `-mMOD`: the module is the program, what follows its arguments.
            let (word, args) = if m.is_empty() {
                (argv.get(i + 1)?.as_bytes(), tail(i + 2))
            } else {
                (m, tail(i + 1))
            };
            return Some(ScriptRun {
                word,
                module: true,
                args,
            });
        }
        if family == "java" && b == b"-jar" {
            // `java -jar JAR ARGS`: the jar is the program.
            return argv.get(i + 1).map(|s| ScriptRun {
                word: s.as_bytes(),
                module: false,
                args: tail(i + 2),
            });
        }
        if b.len() > 1 && (b[0] == b'-' || b[0] == b'+') {
            // (The java launcher's: `-p` is node's `--print` elsewhere.)
            let java_value =
                family == "java" && graph::JAVA_WITH_VALUE.iter().any(|o| o.as_bytes() == b);
            i += if WITH_VALUE.contains(&b) || java_value {
                2
            } else {
                1
            };
            continue;
        }
        return Some(ScriptRun {
            word: b,
            module: false,
            args: tail(i + 1),
        });
    }
    None
}

/// The JVM family of an executable (`graph::started_with`): `java` by its resolved name, or
/// one of a JDK's or JRE's other tools, each of which starts a JVM: a file in a `bin` directory
/// of an installation whose path says so (`/usr/lib/jvm/*/bin/javac`,
/// `/opt/java/openjdk/bin/keytool`, `~/.sdkman/candidates/java/21-tem/bin/jar`). A JDK tool
/// copied elsewhere under another name is not one by this.
fn jvm_family(path: &[u8]) -> Option<&'static str> {
    if graph::file_name(path) == b"java" {
        return Some("java");
    }
    let i = path.windows(5).rposition(|w| w == b"/bin/")?;
    let home = path[..i].to_ascii_lowercase();
    (!path[i + 5..].contains(&b'/')
        && [&b"/jvm/"[..], b"/java/", b"jdk", b"jre"]
            .iter()
            .any(|k| home.windows(k.len()).any(|w| w == *k)))
    .then_some(graph::JVM)
}

/// Whether `path` names a file directly in `dir` (no further `/`, no `.` or `..`).
fn directly_in(path: &[u8], dir: &[u8]) -> bool {
    path.strip_prefix(dir)
        .and_then(|rest| rest.strip_prefix(b"/"))
        .is_some_and(|f| !f.is_empty() && !f.contains(&b'/') && f != b"." && f != b"..")
}

/// The glibc/musl dynamic loader (`ld-linux-x86-64.so.2`, `ld-linux-aarch64.so.1`,
/// `ld-musl-x86_64.so.1`, `ld.so`).
fn is_dynamic_loader(base: &[u8]) -> bool {
    base == b"ld.so" || (base.starts_with(b"ld-") && base.windows(3).any(|w| w == b".so"))
}

/// The program a loader invocation runs: its first argument after the loader's own options
/// (those that take a value skip it too).
fn loader_target(argv: &[Bytes]) -> Option<&Bytes> {
    const WITH_VALUE: [&[u8]; 7] = [
        b"--library-path",
        b"--preload",
        b"--argv0",
        b"--audit",
        b"--inhibit-rpath",
        b"--glibc-hwcaps-prefix",
        b"--glibc-hwcaps-mask",
    ];
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        let b = a.as_bytes();
        if WITH_VALUE.contains(&b) {
            args.next();
        } else if !b.starts_with(b"--") {
            return Some(a);
        }
    }
    None
}

/// An interpreter's inline code: a shell's or python's `-c` script ([`intent::script_of`]),
/// the value of node's, perl's or ruby's `-e` (`--eval`, `-p`, `--print`, `-E`).
fn inline_code(family: &str, argv: &[Bytes]) -> Option<String> {
    if family.ends_with("sh") || family == "python" {
        return intent::script_of(family, argv);
    }
    let mut args = argv.iter().skip(1).map(|a| a.as_bytes());
    while let Some(a) = args.next() {
        if let Some(v) = a
            .strip_prefix(b"--eval=")
            .or_else(|| a.strip_prefix(b"--print="))
        {
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        if [&b"-e"[..], b"-E", b"--eval", b"-p", b"--print"].contains(&a) {
            return args.next().map(|v| String::from_utf8_lossy(v).into_owned());
        }
    }
    None
}

/// The files an interpreter's inline code (`family`'s) runs as code, by the literal path it
/// names: python's `exec(open(F).read())` (an `open` in code that calls `exec` or `compile`)
/// and `runpy.run_path(F)`; node's `require(F)` and `import(F)`; perl's `do F` and
/// `require F`; ruby's `load F` and `require_relative F`; php's `include` and `require`.
/// Code that runs text or a file it names by any expression (python's builtin `exec`, `eval`
/// or `compile`, importlib's `spec_from_file_location` and `SourceFileLoader`, `imp.load_source`;
/// node's `eval`, `vm.runIn*Context`, `new Function`; ruby's `eval` of `File.read`) may pass the
/// path through a variable (`f = '/tmp/x'; exec(open(f).read())`): every string literal in it
/// is a candidate, and so is `D/NAME.py` (or `D/NAME/__init__.py`) for python code that puts a
/// literal directory `D` on `sys.path` and imports `NAME`. A module python code imports by name
/// (`import NAME`, `from NAME import x`, `__import__('NAME')`, `import_module('NAME')`) is
/// `./NAME.py` or `./NAME/__init__.py`: `-c` code imports from the working directory first.
/// Candidates the tree did not write are nothing.
fn loaded_files(family: &str, code: &str) -> Vec<String> {
    let quoted = |rest: &str| -> Option<String> {
        let rest = rest.trim_start().trim_start_matches('(').trim_start();
        let q = rest.chars().next().filter(|c| "'\"`".contains(*c))?;
        let body = &rest[1..];
        body.find(q).map(|end| body[..end].to_string())
    };
    // Python's builtins that run text: their `open(F)` is code.
    let py_runs = family == "python"
        && ["exec", "eval", "compile"]
            .iter()
            .any(|f| builtin_call(code, f));
    let calls: &[&str] = match family {
        "python" if py_runs => &["run_path(", "open("],
        "python" => &["run_path("],
        "node" | "deno" | "bun" => &["require(", "import("],
        "perl" => &["do ", "do(", "require "],
        "ruby" | "irb" => &["load ", "load(", "require_relative "],
        "php" => &["include ", "include_once ", "require ", "require_once "],
        _ => &[],
    };
    let mut files = Vec::new();
    for call in calls {
        let mut rest = code;
        while let Some(i) = rest.find(call) {
            rest = &rest[i + call.len()..];
            files.extend(quoted(rest));
        }
    }
    let runs_text = match family {
        "python" => {
            py_runs
                || [
                    "spec_from_file_location(",
                    "SourceFileLoader(",
                    "load_source(",
                ]
                .iter()
                .any(|c| code.contains(c))
        }
        "node" | "deno" | "bun" => {
            builtin_call(code, "eval")
                || builtin_call(code, "Function")
                || code.contains("runInThisContext(")
                || code.contains("runInNewContext(")
                || code.contains("runInContext(")
        }
        "ruby" | "irb" => code.contains("eval") && code.contains(".read"),
        _ => false,
    };
    let literals = string_literals(code);
    if family == "python" {
        let mut names = python_imports(code);
        // `__import__('m')`, `importlib.import_module('m')`: a module named by a literal.
        for call in ["__import__(", "import_module("] {
            let mut rest = code;
            while let Some(i) = rest.find(call) {
                rest = &rest[i + call.len()..];
                names.extend(quoted(rest).and_then(|m| m.split('.').next().map(str::to_string)));
            }
        }
        names.retain(|n| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_'));
        for name in &names {
            // `-c` code imports from the working directory first, as `-m NAME` runs from it:
            // a module the tree wrote there is its code (`cd /tmp/x && python3 -c 'import
            // evil'`), matched by its file name as a relative script path is.
            files.extend(module_files(".", name));
            if code.contains("sys.path") {
                for dir in &literals {
                    files.extend(module_files(dir, name));
                }
            }
        }
    }
    if runs_text {
        files.extend(literals);
    }
    files.sort();
    files.dedup();
    files
}

/// Whether `code` calls the global function `name` (`exec(` or `exec (`, not `re.compile(`,
/// `os.execv(` or `my_exec(`).
fn builtin_call(code: &str, name: &str) -> bool {
    let mut from = 0;
    while let Some(i) = code[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before = code[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
            && code[from..].trim_start().starts_with('(')
        {
            return true;
        }
    }
    false
}

/// The string literals of inline code (between matching `'`, `"` or `` ` ``; a backslash
/// escapes the next character), in order.
fn string_literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        if !matches!(c, '\'' | '"' | '`') {
            continue;
        }
        let mut lit = String::new();
        while let Some(d) = chars.next() {
            match d {
                '\\' => lit.extend(chars.next()),
                d if d == c => break,
                d => lit.push(d),
            }
        }
        if !lit.is_empty() {
            out.push(lit);
        }
    }
    out
}

/// The top-level module names python code imports (`import a, b.c`, `from a import x`).
pub(super) fn python_imports(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for stmt in code.split(['\n', ';']) {
        let stmt = stmt.trim();
        let list = if let Some(r) = stmt.strip_prefix("import ") {
            r
        } else if let Some(r) = stmt.strip_prefix("from ") {
            r.split(" import").next().unwrap_or_default()
        } else {
            continue;
        };
        for m in list.split(',') {
            let m = m.split_whitespace().next().unwrap_or_default();
            let top = m.split('.').next().unwrap_or_default();
            if !top.is_empty() && top.chars().all(|c| c.is_alphanumeric() || c == '_') {
                names.push(top.to_string());
            }
        }
    }
    names
}

/// The files python imports module `name` from in directory `dir`: `dir/name.py` and
/// `dir/name/__init__.py`.
pub(super) fn module_files(dir: &str, name: &str) -> [String; 2] {
    [
        in_dir(dir, &format!("{name}.py")),
        in_dir(dir, &format!("{name}/__init__.py")),
    ]
}

/// `rel` in directory `dir` (`dir/rel`, one slash between them whether `dir` ends in one).
pub(super) fn in_dir(dir: &str, rel: &str) -> String {
    format!("{}/{rel}", dir.trim_end_matches('/'))
}

/// Whether the directory `path` is directly in is called `name`.
fn parent_dir_named(path: &[u8], name: &[u8]) -> bool {
    let dir = parent_dir(path);
    dir.rsplit(|&b| b == b'/').next() == Some(name)
}

#[cfg(test)]
mod loader_tests {
    use super::*;

    #[test]
    fn jvms_by_name_or_installation() {
        let f = |p: &str| jvm_family(p.as_bytes());
        assert_eq!(
            f("/usr/lib/jvm/java-17-openjdk-amd64/bin/java"),
            Some("java")
        );
        assert_eq!(f("/tmp/x/java"), Some("java"));
        for tool in [
            "/usr/lib/jvm/java-17-openjdk-amd64/bin/javac",
            "/opt/java/openjdk/bin/keytool",
            "/root/.sdkman/candidates/java/21.0.2-tem/bin/jar",
            "/opt/JDK-21/bin/jshell",
            "/usr/lib/jvm/temurin-25-jdk-amd64/bin/jcmd",
        ] {
            assert_eq!(f(tool), Some(graph::JVM), "{tool}");
        }
        for other in [
            "/usr/bin/javac-wrapper",
            "/usr/bin/git",
            "/usr/lib/jvm/java-17-openjdk-amd64/lib/jexec",
            "/home/u/jdk/bin/sub/x",
            "java-in-name/x",
        ] {
            assert_eq!(f(other), None, "{other}");
        }
    }

    #[test]
    fn inline_code_that_runs_a_file_names_it() {
        let f = loaded_files;
        assert_eq!(f("python", "exec(open('/tmp/x.py').read())"), ["/tmp/x.py"]);
        assert_eq!(
            f("python", "import runpy; runpy.run_path(\"p.py\")"),
            ["./runpy.py", "./runpy/__init__.py", "p.py"]
        );
        // Modules imported by name come from the working directory first.
        assert_eq!(
            f("python", "from calc import add; print(add(1, 2))"),
            ["./calc.py", "./calc/__init__.py"]
        );
        assert_eq!(
            f(
                "python",
                "m = __import__('ev.sub'); import importlib as i; i.import_module(\"h\")"
            ),
            [
                "./ev.py",
                "./ev/__init__.py",
                "./h.py",
                "./h/__init__.py",
                "./importlib.py",
                "./importlib/__init__.py"
            ]
        );
        assert!(f("python", "print(open('/tmp/x').read())").is_empty());
        assert_eq!(f("node", "require('/tmp/x.js')"), ["/tmp/x.js"]);
        assert_eq!(f("node", "import(\"./m.mjs\").then(x => x)"), ["./m.mjs"]);
        assert_eq!(f("perl", "do '/tmp/x.pl'; 1"), ["/tmp/x.pl"]);
        assert_eq!(f("ruby", "load \"/tmp/x.rb\""), ["/tmp/x.rb"]);
        assert!(f("node", "console.log(1)").is_empty());
        // The path through a variable, to code that runs text or loads a file.
        let has = |v: Vec<String>, p: &str| v.iter().any(|x| x == p);
        assert!(has(
            f("python", "f = '/tmp/x.py'; exec(open(f).read())"),
            "/tmp/x.py"
        ));
        assert!(has(
            f("python", "exec (open('/tmp/x.py').read())"),
            "/tmp/x.py"
        ));
        assert!(has(
            f("python", "f = '/tmp/x.py'; eval(open(f).read())"),
            "/tmp/x.py"
        ));
        assert!(has(
            f(
                "python",
                "import importlib.util as u; p=\"/tmp/m.py\"; s=u.spec_from_file_location('m', p)"
            ),
            "/tmp/m.py"
        ));
        assert!(has(
            f(
                "python",
                "import sys; sys.path.insert(0, '/tmp/lib'); import evil"
            ),
            "/tmp/lib/evil.py"
        ));
        assert!(has(
            f(
                "python",
                "import sys\nsys.path.append('/tmp/lib/')\nfrom pkg.sub import x"
            ),
            "/tmp/lib/pkg/__init__.py"
        ));
        assert!(has(
            f(
                "node",
                "const f='/tmp/x.js'; eval(require('fs').readFileSync(f, 'utf8'))"
            ),
            "/tmp/x.js"
        ));
        assert!(has(
            f(
                "node",
                "new Function(fs.readFileSync(`/tmp/y.js`, 'utf8'))()"
            ),
            "/tmp/y.js"
        ));
        assert!(has(
            f("ruby", "f = '/tmp/x.rb'; eval(File.read(f))"),
            "/tmp/x.rb"
        ));
        // Data read by code that runs none: no candidate.
        for (fam, code) in [
            (
                "python",
                "import re; p = re.compile('x'); print(p.findall(open('/tmp/o').read()))",
            ),
            (
                "python",
                "import json, os; os.execv('/bin/ls', ['ls']); json.load(open('/tmp/o'))",
            ),
            (
                "python",
                "def my_exec(x): pass\nmy_exec (open('/tmp/o').read())",
            ),
            (
                "node",
                "const d = require('fs').readFileSync('/tmp/o'); /x/.exec(d)",
            ),
            (
                "python",
                "import sys; print(sys.path, open('/tmp/o').read())",
            ),
        ] {
            assert!(!has(f(fam, code), "/tmp/o"), "{code}: {:?}", f(fam, code));
        }
        let argv = |a: &[&str]| a.iter().map(|s| Bytes::from(*s)).collect::<Vec<_>>();
        assert_eq!(
            inline_code("node", &argv(&["node", "--eval=require('x')"])).as_deref(),
            Some("require('x')")
        );
        assert_eq!(
            inline_code("perl", &argv(&["perl", "-w", "-e", "do 'x'"])).as_deref(),
            Some("do 'x'")
        );
        assert_eq!(inline_code("node", &argv(&["node", "app.js"])), None);
    }

    fn argv(a: &[&str]) -> Vec<Bytes> {
        a.iter().map(|s| Bytes::from(*s)).collect()
    }

    #[test]
    fn the_dynamic_loader_runs_the_program_after_its_options() {
        assert!(is_dynamic_loader(b"ld-linux-x86-64.so.2"));
        assert!(is_dynamic_loader(b"ld-musl-x86_64.so.1"));
        assert!(!is_dynamic_loader(b"ldd") && !is_dynamic_loader(b"ld"));
        let t = |a: &[&str]| loader_target(&argv(a)).map(|b| b.as_bytes().to_vec());
        assert_eq!(
            t(&["ld.so", "/bin/sh", "-c", "id"]),
            Some(b"/bin/sh".to_vec())
        );
        assert_eq!(
            t(&[
                "ld.so",
                "--library-path",
                "/x",
                "--inhibit-cache",
                "/bin/bash"
            ]),
            Some(b"/bin/bash".to_vec())
        );
        assert_eq!(t(&["ld.so", "--list"]), None);
    }
}
