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
    pub(super) fn written_code(&self, a: &[u8]) -> Option<Arc<Written>> {
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
    pub(super) fn written_arg(&self, a: &[u8]) -> Option<Arc<Written>> {
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

/// `DIR/*.EXT`, a directory's files of one extension as a program names them (php's
/// `PHP_INI_SCAN_DIR` is read as `DIR/*.ini`, java's class path entry `DIR/*` as `DIR/*.jar`):
/// `DIR` and `.EXT`.
pub(super) fn dir_pattern(f: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = f.windows(3).rposition(|w| w == b"/*.")?;
    let ext = &f[i + 2..];
    (ext.len() > 1 && !ext.iter().any(|c| b"/*?[".contains(c))).then(|| (&f[..i], ext))
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

/// The files a shell's `-c` script reads as code without executing them, by name as written:
/// `source F` and `. F`, an interpreter fed one on its standard input (`bash < F`,
/// `cat F | sh`), and `eval`'d or sourced command substitutions of one (`eval "$(cat F)"`,
/// `source <(cat F)`). A variable the script assigned before (`F=/tmp/x; . "$F"`, `export
/// D=/tmp`, `${D}/x`) is expanded, and `$HOME` is `~`; a word with any other expansion (`$1`,
/// a glob) names no file known here. `interp` says whether a command word (a basename) is an
/// interpreter's.
pub(super) fn sourced_files(script: &str, interp: impl Fn(&[u8]) -> bool) -> Vec<String> {
    let mut files = Vec::new();
    sourced_in(script, &interp, EVAL_DEPTH, &mut Vars::new(), &mut files);
    // A pattern is no file, but for a directory's files of one extension ([`dir_pattern`]).
    let plain = |f: &[u8]| !f.iter().any(|c| b"$*?[".contains(c));
    files.retain(|f| {
        !f.is_empty()
            && f != "-"
            && !f.starts_with("/dev/")
            && (plain(f.as_bytes()) || dir_pattern(f.as_bytes()).is_some_and(|(d, _)| plain(d)))
    });
    files.sort();
    files.dedup();
    files
}

/// How deep `eval`'s arguments are read as scripts again (`eval 'eval ". x"'`).
const EVAL_DEPTH: usize = 3;

/// Shell variables a script has assigned so far, by name.
type Vars = std::collections::HashMap<String, String>;

/// Commands whose `NAME=VALUE` arguments assign shell variables.
const ASSIGNERS: [&str; 5] = ["export", "readonly", "declare", "local", "typeset"];

/// Whether `n` is a shell variable's name.
fn var_name(n: &str) -> bool {
    n.bytes()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `word` with `$NAME` and `${NAME}` of the variables in `vars` replaced by their values, and
/// `$HOME` (unless assigned) by `~`; any other expansion is left as it is.
fn expand(word: &str, vars: &Vars) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(b) => match b.find('}') {
                Some(j) => (&b[..j], j + 2),
                None => ("", 0),
            },
            None => {
                let n = after
                    .bytes()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    .count();
                (&after[..n], n)
            }
        };
        let value = vars
            .get(name)
            .map(String::as_str)
            .or((name == "HOME").then_some("~"));
        match value.filter(|_| var_name(name)) {
            Some(v) => {
                out.push_str(v);
                rest = &after[len..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// What the environment makes an interpreter run besides its own code, by the variables the
/// script set (as the command's prefix, `BASH_ENV=F bash -c ...`, or before it), or the
/// kernel read from an exec's environment: bash's `BASH_ENV`, another shell's `ENV`, zsh's
/// `$ZDOTDIR/.zshenv`; node's
/// `NODE_OPTIONS` `--require F`, `-r F`, `--import F` and `--loader F`; python's
/// `sitecustomize` and `usercustomize` (imported at every start) from a `PYTHONPATH`
/// directory, and for `-c CODE` or `-m MOD` a module it imports from one (`D/NAME.py`,
/// `D/NAME/__init__.py`); perl's `PERL5OPT` `-MMOD` and `-mMOD` from a `PERL5LIB` or `PERLLIB`
/// directory or one its `-I` names (`D/Mod/Sub.pm`); ruby's `RUBYOPT` `-rLIB` by its path
/// or from a `RUBYLIB` directory (`D/lib.rb`); php's settings, which can name a file to run
/// before every script (`auto_prepend_file`): the `php.ini` that `PHPRC` or `-c` names (a file,
/// or one in that directory), every `*.ini` of a `PHP_INI_SCAN_DIR` directory (`D/*.ini`, a
/// pattern [`written_source`](super::Engine) expands), and the file `-d
/// auto_prepend_file=F` or `auto_append_file` names. `family` is the interpreter's
/// ([`canonical_interpreter`](super::exec::canonical_interpreter)), `args` its arguments;
/// `var` gives a variable's values (an exec's environment may hold a name twice).
pub(super) fn started_with(
    family: &str,
    args: &[&str],
    var: &dyn Fn(&str) -> Vec<String>,
) -> Vec<String> {
    let var = |n: &str| {
        let mut v = var(n);
        v.retain(|s| !s.is_empty());
        v
    };
    let dirs = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .flat_map(|n| var(n))
            .flat_map(|v| {
                v.split(':')
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    // `--flag V`, `--flag=V`, `-fV` (with `short`) in an options variable's words, split as
    // the program splits them (`quotes`: node takes double quotes, perl and ruby none).
    let flag_values = |opts: &str, quotes: &[char], long: &[&str], short: &[&str]| -> Vec<String> {
        let mut out = Vec::new();
        let mut words = option_words(opts, quotes).into_iter();
        while let Some(w) = words.next() {
            let (flag, value) = match w.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (w.as_str(), None),
            };
            if long.contains(&flag) {
                out.extend(value.or_else(|| words.next()));
            } else if let Some(v) = short.iter().find_map(|s| w.strip_prefix(s)) {
                if v.is_empty() {
                    out.extend(words.next());
                } else {
                    out.push(v.to_string());
                }
            }
        }
        out
    };
    let mut out = Vec::new();
    match family {
        f if f.ends_with("sh") => {
            // bash sources BASH_ENV when it runs a script or `-c`; dash and the other POSIX
            // shells never read it (their ENV is for interactive shells, counted anyway: `-i`
            // makes any shell one).
            if f == "bash" {
                out.extend(var("BASH_ENV"));
            } else {
                out.extend(var("ENV"));
            }
            if f == "zsh" {
                // zsh sources `$ZDOTDIR/.zshenv` at every start, scripts and `-c` included.
                out.extend(
                    var("ZDOTDIR")
                        .iter()
                        .map(|d| super::exec::in_dir(d, ".zshenv")),
                );
            }
        }
        "node" => {
            for opts in var("NODE_OPTIONS") {
                out.extend(flag_values(
                    &opts,
                    &['"'],
                    &[
                        "--require",
                        "-r",
                        "--import",
                        "--loader",
                        "--experimental-loader",
                    ],
                    &[],
                ));
            }
        }
        "python" => {
            let path = dirs(&["PYTHONPATH"]);
            if !path.is_empty() {
                let mut names = vec!["sitecustomize".to_string(), "usercustomize".to_string()];
                match args.iter().position(|a| *a == "-c" || *a == "-m") {
                    Some(i) if args[i] == "-c" => names.extend(
                        args.get(i + 1)
                            .map_or_else(Vec::new, |c| super::exec::python_imports(c)),
                    ),
                    Some(i) => names.extend(
                        args.get(i + 1)
                            .and_then(|m| m.split('.').next())
                            .map(str::to_string),
                    ),
                    None => {}
                }
                for dir in &path {
                    for n in &names {
                        out.extend(super::exec::module_files(dir, n));
                    }
                }
            }
        }
        "perl" => {
            let opts = var("PERL5OPT");
            let mut lib = dirs(&["PERL5LIB", "PERLLIB"]);
            lib.extend(opts.iter().flat_map(|o| flag_values(o, &[], &[], &["-I"])));
            for module in opts
                .iter()
                .flat_map(|o| flag_values(o, &[], &[], &["-M", "-m"]))
            {
                // `-MMod::Sub=args`, `-M-Mod` (no import): the module's file.
                let name = module.trim_start_matches('-');
                let name = name.split(['=', ' ']).next().unwrap_or_default();
                if name.is_empty() {
                    continue;
                }
                let rel = format!("{}.pm", name.replace("::", "/"));
                out.extend(lib.iter().map(|d| super::exec::in_dir(d, &rel)));
            }
        }
        "php" => {
            let words = args.join(" ");
            let mut ini: Vec<String> = var("PHPRC");
            ini.extend(flag_values(&words, &[], &[], &["-c"]));
            for i in ini {
                out.push(super::exec::in_dir(&i, "php.ini"));
                out.push(i);
            }
            out.extend(
                dirs(&["PHP_INI_SCAN_DIR"])
                    .iter()
                    .map(|d| super::exec::in_dir(d, "*.ini")),
            );
            for set in flag_values(&words, &[], &[], &["-d"]) {
                if let Some((k, f)) = set.split_once('=') {
                    if matches!(k.trim(), "auto_prepend_file" | "auto_append_file") {
                        out.push(f.trim().trim_matches(['"', '\'']).to_string());
                    }
                }
            }
        }
        "ruby" => {
            let lib = dirs(&["RUBYLIB"]);
            for opts in var("RUBYOPT") {
                for r in flag_values(&opts, &[], &["--require"], &["-r"]) {
                    let file = if r.ends_with(".rb") {
                        r
                    } else {
                        format!("{r}.rb")
                    };
                    if file.starts_with('/') || file.starts_with('.') {
                        out.push(file);
                    } else {
                        out.extend(lib.iter().map(|d| super::exec::in_dir(d, &file)));
                    }
                }
            }
        }
        "java" | "jshell" | JVM => out.extend(jvm_loads(family, args, &var)),
        _ => {}
    }
    out
}

/// The family of a JVM tool that is no interpreter (`javac`, `jar`, `keytool`): the JVM it
/// starts reads `JAVA_TOOL_OPTIONS` and `_JAVA_OPTIONS` all the same.
pub(super) const JVM: &str = "jvm";

/// The `java` launcher's options that take the next word as their value.
pub(super) const JAVA_WITH_VALUE: [&str; 15] = [
    "-cp",
    "-classpath",
    "--class-path",
    "-p",
    "--module-path",
    "--upgrade-module-path",
    "--add-modules",
    "--limit-modules",
    "--add-reads",
    "--add-exports",
    "--add-opens",
    "--patch-module",
    "--source",
    "--enable-native-access",
    "-d",
];

/// What a JVM loads as code besides the JDK's own (`family`: the `java` launcher, `jshell`, or
/// another [`JVM`] tool; `args` its arguments, `var` the environment's values): the agents
/// that `-javaagent:JAR[=OPTS]` and `-agentpath:LIB[=OPTS]` name, on the command line or in
/// `JAVA_TOOL_OPTIONS` and `_JAVA_OPTIONS` (every JVM) or `JDK_JAVA_OPTIONS` (the launcher);
/// the launcher's argument files (`@FILE`: its options); and what it runs: `-jar JAR`, a
/// source file (`java Evil.java`), the main class from the class path (`-cp`, `-classpath`,
/// `--class-path`, else `CLASSPATH`): a jar or zip on it, each `*.jar` of a `DIR/*` entry
/// (`DIR/*.jar`), and `DIR/NAME.class` (`a.b.Main` is `a/b/Main.class`) of a directory.
fn jvm_loads(family: &str, args: &[&str], var: &dyn Fn(&str) -> Vec<String>) -> Vec<String> {
    let launcher = family != JVM;
    let mut words: Vec<String> = ["JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS"]
        .iter()
        .chain(if family == "java" {
            &["JDK_JAVA_OPTIONS"][..]
        } else {
            &[]
        })
        .flat_map(|n| var(n))
        .flat_map(|v| option_words(&v, &['"', '\'']))
        .collect();
    let env_words = words.len();
    if launcher {
        words.extend(args.iter().map(|a| a.to_string()));
    }
    let mut out = Vec::new();
    let mut class_path: Option<String> = None;
    let mut main: Option<String> = None;
    let mut i = 0;
    while let Some(w) = words.get(i) {
        i += 1;
        let on_command_line = i > env_words;
        if let Some(agent) = w
            .strip_prefix("-javaagent:")
            .or_else(|| w.strip_prefix("-agentpath:"))
        {
            out.extend(agent.split('=').next().map(str::to_string));
        } else if let Some(f) = w.strip_prefix('@').filter(|_| launcher) {
            out.push(f.to_string());
        } else if ["-cp", "-classpath", "--class-path"].contains(&w.as_str()) {
            class_path = words.get(i).cloned();
            i += 1;
        } else if let Some(cp) = w.strip_prefix("--class-path=") {
            class_path = Some(cp.to_string());
        } else if w == "-jar" && on_command_line {
            out.extend(words.get(i).cloned());
            break;
        } else if (w == "-m" || w == "--module") && on_command_line {
            break;
        } else if JAVA_WITH_VALUE.contains(&w.as_str()) {
            i += 1;
        } else if !w.starts_with('-') && on_command_line && family == "java" {
            // The main class, or a source file: what follows is the program's.
            main = Some(w.clone());
            break;
        }
    }
    match main {
        Some(m) if m.ends_with(".java") => out.push(m),
        Some(m) => {
            let class_path = class_path
                .or_else(|| var("CLASSPATH").pop())
                .unwrap_or_else(|| ".".to_string());
            let class = format!("{}.class", m.replace('.', "/"));
            for entry in class_path.split(':') {
                let entry = if entry.is_empty() { "." } else { entry };
                let lower = entry.to_ascii_lowercase();
                if entry == "*" || entry.ends_with("/*") {
                    let dir = entry.trim_end_matches('*').trim_end_matches('/');
                    out.push(format!("{}/*.jar", if dir.is_empty() { "." } else { dir }));
                } else if lower.ends_with(".jar") || lower.ends_with(".zip") {
                    out.push(entry.to_string());
                } else {
                    out.push(super::exec::in_dir(entry, &class));
                }
            }
        }
        None => {}
    }
    out
}

/// The words of a program's options variable as it splits them: whitespace separates them,
/// and a span quoted with one of `quotes` anywhere in a word keeps its spaces and loses its
/// quotes. A JVM takes single and double quotes (`-javaagent:"/tmp/a b.jar"=x` is one word,
/// `-javaagent:/tmp/a b.jar=x`), node double quotes (`--require "/tmp/a b.js"`).
fn option_words(v: &str, quotes: &[char]) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut quoted = false;
    for c in v.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if quotes.contains(&c) => (quote, quoted) = (Some(c), true),
            None if c.is_whitespace() => {
                if !word.is_empty() || quoted {
                    out.push(std::mem::take(&mut word));
                }
                quoted = false;
            }
            None => word.push(c),
        }
    }
    if !word.is_empty() || quoted {
        out.push(word);
    }
    out
}

/// Record the assignment `word` (`NAME=VALUE`) in `vars`; false when it is none.
fn assign(word: &str, vars: &mut Vars) -> bool {
    match word.split_once('=') {
        Some((n, v)) if var_name(n) => {
            let v = expand(v, vars);
            vars.insert(n.to_string(), v);
            true
        }
        _ => false,
    }
}

fn sourced_in(
    script: &str,
    interp: &dyn Fn(&[u8]) -> bool,
    depth: usize,
    vars: &mut Vars,
    files: &mut Vec<String>,
) {
    let commands = shell_commands(script);
    let mut prev: Vec<String> = Vec::new();
    for (raw, piped) in &commands {
        let mut words: Vec<String> = Vec::new();
        for w in raw {
            if words.is_empty() && (SHELL_PREFIXES.contains(&w.as_str()) || assign(w, vars)) {
                continue;
            }
            words.push(expand(w, vars));
        }
        if words
            .first()
            .is_some_and(|c| ASSIGNERS.contains(&c.as_str()))
        {
            for w in &raw[raw.len() + 1 - words.len()..] {
                assign(w, vars);
            }
        }
        let owned = words;
        let words: Vec<&str> = owned.iter().map(String::as_str).collect();
        if let Some(&cmd) = words.first() {
            if interp(file_name(cmd.as_bytes())) {
                let family = super::exec::canonical_interpreter(&lossy(file_name(cmd.as_bytes())));
                let var = |n: &str| vars.get(n).cloned().into_iter().collect();
                files.extend(started_with(&family, &words[1..], &var));
            }
            // The arguments, without input redirections and their targets.
            let mut args = words
                .iter()
                .enumerate()
                .skip(1)
                .filter(|&(i, w)| *w != "<" && words[i - 1] != "<" && !w.starts_with('-'))
                .map(|(_, w)| *w);
            if cmd == "eval" && depth > 0 {
                // Its arguments are a script (Claude Code runs each command as `eval 'CMD'`).
                // (Up to eval's own redirections.)
                let text: Vec<&str> = words[1..]
                    .iter()
                    .copied()
                    .take_while(|w| *w != "<")
                    .collect();
                sourced_in(&text.join(" "), interp, depth - 1, vars, files);
            } else if cmd == "source" || cmd == "." {
                files.extend(args.next().map(str::to_string));
            } else if interp(file_name(cmd.as_bytes())) && args.next().is_none() {
                // No script: its code is its standard input, a redirection or a pipe from
                // `cat FILE`.
                let redirected = words.windows(2).filter(|w| w[0] == "<");
                files.extend(redirected.clone().map(|w| w[1].to_string()));
                if *piped && redirected.count() == 0 && prev.first().is_some_and(|c| c == "cat") {
                    files.extend(
                        prev[1..]
                            .iter()
                            .filter(|w| !w.starts_with('-'))
                            .map(|w| w.to_string()),
                    );
                }
            }
        }
        prev = owned;
    }
    // `eval "$(cat F)"`, `source <(cat F)`, `. <(< F)`: a substitution's text run as code.
    if script.contains("eval") || script.contains("source <(") || script.contains(". <(") {
        for open in ["$(cat ", "$(< ", "$(<", "<(cat ", "<(< ", "`cat "] {
            let mut rest = script;
            while let Some(i) = rest.find(open) {
                rest = &rest[i + open.len()..];
                let word: String = rest
                    .trim_start()
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !")`\"';|&".contains(*c))
                    .collect();
                files.push(expand(&word, vars));
            }
        }
    }
}

/// Words that start a command without being it (`then source F`, `builtin . F`, `exec sh < F`).
const SHELL_PREFIXES: [&str; 14] = [
    "if", "then", "else", "elif", "do", "while", "until", "!", "{", "time", "builtin", "command",
    "exec", "nohup",
];

/// A word of [`shell_commands`] ends: kept, or dropped as a redirection's target.
fn end_word(word: &mut String, quoted: &mut bool, words: &mut Vec<String>, skip: &mut bool) {
    if word.is_empty() && !*quoted {
        return;
    }
    let w = std::mem::take(word);
    *quoted = false;
    if std::mem::take(skip) {
        return;
    }
    words.push(w);
}

/// A shell script cut into simple commands, each its words (quotes removed, an input
/// redirection's `<` a word of its own) and whether a pipe led into it. Separators: `;`, `&`,
/// `|`, `(`, `)`, `}`, newlines, backquotes and `$(`; output redirections, here-documents and
/// `<&` are dropped with their target.
fn shell_commands(script: &str) -> Vec<(Vec<String>, bool)> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut skip, mut piped) = (false, false, false);
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                word.extend(chars.by_ref().take_while(|&c| c != '\''));
                quoted = true;
            }
            '"' => {
                quoted = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\\' => word.extend(chars.next().filter(|&c| c != '\n')),
            ' ' | '\t' => end_word(&mut word, &mut quoted, &mut words, &mut skip),
            '<' | '>' => {
                // `2>`: the descriptor's digits are no word.
                if !quoted && !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
                    word.clear();
                }
                end_word(&mut word, &mut quoted, &mut words, &mut skip);
                match chars.next_if(|&n| matches!(n, '<' | '>' | '&' | '|' | '(')) {
                    None if c == '<' => words.push("<".into()),
                    // A process substitution: its own command.
                    Some('(') => out.push((std::mem::take(&mut words), std::mem::take(&mut piped))),
                    _ => {
                        chars.next_if(|&n| matches!(n, '<' | '-'));
                        skip = true;
                    }
                }
            }
            ';' | '&' | '|' | '(' | ')' | '\n' | '`' | '}' => {
                end_word(&mut word, &mut quoted, &mut words, &mut skip);
                let pipe = c == '|' && chars.next_if_eq(&'|').is_none();
                if c == '&' {
                    chars.next_if_eq(&'&');
                }
                out.push((std::mem::take(&mut words), std::mem::take(&mut piped)));
                piped = pipe;
                skip = false;
            }
            // `${NAME}` is one word, not a group's closing brace.
            '$' if chars.peek() == Some(&'{') => {
                word.push('$');
                for c in chars.by_ref() {
                    word.push(c);
                    if c == '}' {
                        break;
                    }
                }
            }
            '$' if chars.peek() == Some(&'(') => {
                chars.next();
                end_word(&mut word, &mut quoted, &mut words, &mut skip);
                out.push((std::mem::take(&mut words), std::mem::take(&mut piped)));
            }
            c => word.push(c),
        }
    }
    end_word(&mut word, &mut quoted, &mut words, &mut skip);
    out.push((words, piped));
    out
}

#[cfg(test)]
mod sourced_tests {
    use super::*;

    fn files(script: &str) -> Vec<String> {
        sourced_files(script, |w| {
            matches!(
                w,
                b"sh"
                    | b"bash"
                    | b"dash"
                    | b"zsh"
                    | b"python3"
                    | b"node"
                    | b"perl"
                    | b"ruby"
                    | b"php"
                    // (A policy may name it; the default does not.)
                    | b"java"
            )
        })
    }

    /// What a JVM loads as code, from its options and its environment.
    #[test]
    fn what_a_jvm_is_made_to_load() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                pairs
                    .iter()
                    .filter(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
                    .collect::<Vec<_>>()
            }
        };
        let none = env(&[]);
        let java = |args: &str, var: &dyn Fn(&str) -> Vec<String>| {
            let args: Vec<&str> = args.split_whitespace().collect();
            started_with("java", &args, var)
        };
        // Agents, from every variable a JVM reads and from the command line.
        let tool = env(&[
            ("JAVA_TOOL_OPTIONS", "-Xmx1g -javaagent:/tmp/a.jar=opt=1"),
            ("_JAVA_OPTIONS", "-agentpath:/tmp/n.so"),
            ("JDK_JAVA_OPTIONS", "-javaagent:/tmp/l.jar"),
        ]);
        assert_eq!(
            java("-version", &tool),
            ["/tmp/a.jar", "/tmp/n.so", "/tmp/l.jar"]
        );
        // Quoted as the JVM reads them: a path with a space.
        let quoted = env(&[(
            "JAVA_TOOL_OPTIONS",
            "-Xmx1g  -javaagent:\"/tmp/a b.jar\"=x '-agentpath:/tmp/c d.so' -javaagent:'/e f.jar'",
        )]);
        assert_eq!(
            java("-version", &quoted),
            ["/tmp/a b.jar", "/tmp/c d.so", "/e f.jar"]
        );
        // JDK_JAVA_OPTIONS is the launcher's alone; other tools read the other two.
        assert_eq!(
            started_with(JVM, &["-version"], &tool),
            ["/tmp/a.jar", "/tmp/n.so"]
        );
        assert_eq!(
            started_with("jshell", &["-q"], &tool),
            ["/tmp/a.jar", "/tmp/n.so"]
        );
        // A JVM tool's arguments are its own (javac's -cp is what it compiles against).
        assert_eq!(
            started_with(JVM, &["-cp", "/tmp/x.jar", "-javaagent:/q.jar"], &none),
            Vec::<String>::new()
        );
        assert_eq!(java("-javaagent:/tmp/b.jar Main", &none)[0], "/tmp/b.jar");
        // What it runs: a jar, a source file, the main class from the class path.
        assert_eq!(
            java("-Dx=1 -jar /tmp/app.jar -cp /y", &none),
            ["/tmp/app.jar"]
        );
        assert_eq!(java("/tmp/Evil.java arg", &none), ["/tmp/Evil.java"]);
        assert_eq!(
            java(
                "-cp /tmp/c:/tmp/l.jar:/opt/lib/*:x.ZIP a.b.Main -cp /z",
                &none
            ),
            [
                "/tmp/c/a/b/Main.class",
                "/tmp/l.jar",
                "/opt/lib/*.jar",
                "x.ZIP"
            ]
        );
        assert_eq!(java("--class-path=lib/* Main", &none), ["lib/*.jar"]);
        let cp = env(&[("CLASSPATH", "/tmp/e.jar:")]);
        assert_eq!(java("Main", &cp), ["/tmp/e.jar", "./Main.class"]);
        assert_eq!(java("Main", &none), ["./Main.class"]);
        // The command line's class path, not the variable's.
        assert_eq!(java("-classpath /w Main", &cp), ["/w/Main.class"]);
        // Options that take a value, an argument file, a module: no class from the class path.
        assert_eq!(
            java("--add-modules x.y -p /m @/tmp/args -m mod/Main", &none),
            ["/tmp/args"]
        );
        assert_eq!(java("-version", &none), Vec::<String>::new());
        // From a shell script: the variable set on the command, and the options.
        assert_eq!(
            files("JAVA_TOOL_OPTIONS=-javaagent:/tmp/a.jar java -cp 'lib/*' App"),
            ["/tmp/a.jar", "lib/*.jar"]
        );
    }

    #[test]
    fn what_a_shell_script_sources_or_feeds_an_interpreter_by_name() {
        assert_eq!(files(". ./x.sh"), ["./x.sh"]);
        assert_eq!(files("cd /w && source 'a b.sh' arg"), ["a b.sh"]);
        assert_eq!(files("if true; then . /tmp/p; fi"), ["/tmp/p"]);
        assert_eq!(
            files("X=1 builtin source -- /tmp/q 2>/dev/null || true"),
            ["/tmp/q"]
        );
        assert_eq!(files("bash < /tmp/s"), ["/tmp/s"]);
        assert_eq!(files("/bin/sh -s </tmp/s"), ["/tmp/s"]);
        assert_eq!(files("cat /tmp/a /tmp/b | sh"), ["/tmp/a", "/tmp/b"]);
        assert_eq!(files("cat -v /tmp/a|python3 -"), ["/tmp/a"]);
        assert_eq!(files("eval \"$(cat /tmp/e)\""), ["/tmp/e"]);
        assert_eq!(files("eval `cat /tmp/e`"), ["/tmp/e"]);
        assert_eq!(files("source <(cat /tmp/e)"), ["/tmp/e"]);
        assert_eq!(files("x=$(< /tmp/e); eval \"$x\""), ["/tmp/e"]);
        assert_eq!(
            files("source /s.sh && eval '. ./p.sh' < /dev/null"),
            ["./p.sh", "/s.sh"]
        );
        assert_eq!(files("eval \"eval 'bash < q'\""), ["q"]);
        // Through the script's own variables, and $HOME as ~.
        assert_eq!(files("F=/tmp/p.sh; . \"$F\""), ["/tmp/p.sh"]);
        assert_eq!(files("export D=/tmp && source ${D}/p.sh"), ["/tmp/p.sh"]);
        assert_eq!(files("D=/tmp; F=$D/p; bash < $F"), ["/tmp/p"]);
        assert_eq!(files("F=/tmp/a; cat $F | sh"), ["/tmp/a"]);
        assert_eq!(files("F=/tmp/e; eval \"$(cat $F)\""), ["/tmp/e"]);
        assert_eq!(files("F=/tmp/e; eval \". $F\""), ["/tmp/e"]);
        assert_eq!(files("declare -x F=/tmp/q; . $F"), ["/tmp/q"]);
        assert_eq!(files("source $HOME/.cargo/env"), ["~/.cargo/env"]);
        assert_eq!(files(". \"${HOME}/p\""), ["~/p"]);
        // What the environment has an interpreter run first.
        assert_eq!(files("BASH_ENV=/tmp/i.sh bash -c true"), ["/tmp/i.sh"]);
        assert_eq!(files("export ENV=/tmp/i.sh; sh -c 'ls'"), ["/tmp/i.sh"]);
        assert_eq!(files("ZDOTDIR=/tmp/z/ zsh -c ls"), ["/tmp/z/.zshenv"]);
        // dash never reads BASH_ENV.
        assert_eq!(files("BASH_ENV=/tmp/i.sh dash -c ls"), Vec::<String>::new());
        assert_eq!(
            files("NODE_OPTIONS='--require /tmp/j.js' node -e 1"),
            ["/tmp/j.js"]
        );
        assert_eq!(
            files("NODE_OPTIONS=--import=/tmp/k.mjs node app.js"),
            ["/tmp/k.mjs"]
        );
        // Node takes double quotes in NODE_OPTIONS (a path with a space); perl takes none.
        assert_eq!(
            files("NODE_OPTIONS='--require \"/tmp/a b.js\"' node -e 1"),
            ["/tmp/a b.js"]
        );
        // Python imports `sitecustomize` and `usercustomize` from its path at every start.
        let custom = [
            "/tmp/lib/sitecustomize.py",
            "/tmp/lib/sitecustomize/__init__.py",
            "/tmp/lib/usercustomize.py",
            "/tmp/lib/usercustomize/__init__.py",
        ];
        let with_custom = |v: Vec<&'static str>| {
            let mut v: Vec<&'static str> = v.into_iter().chain(custom).collect();
            v.sort();
            v
        };
        assert_eq!(
            files("PYTHONPATH=/tmp/lib python3 -c 'import h'"),
            with_custom(vec!["/tmp/lib/h.py", "/tmp/lib/h/__init__.py"])
        );
        assert_eq!(
            files("PYTHONPATH=/tmp/lib python3 -m h.main"),
            with_custom(vec!["/tmp/lib/h.py", "/tmp/lib/h/__init__.py"])
        );
        assert_eq!(
            files("PYTHONPATH=/tmp/lib: python3 app.py"),
            with_custom(vec![])
        );
        assert_eq!(
            files("PERL5LIB=/tmp/p PERL5OPT='-MEvil::Mod=x -mQuiet' perl -e 1"),
            ["/tmp/p/Evil/Mod.pm", "/tmp/p/Quiet.pm"]
        );
        assert_eq!(
            files("PERL5OPT='-I/tmp/q -MHook' perl x.pl"),
            ["/tmp/q/Hook.pm"]
        );
        assert_eq!(files("RUBYOPT=-r/tmp/h ruby -e 1"), ["/tmp/h.rb"]);
        assert_eq!(
            files("RUBYLIB=/tmp/r RUBYOPT='-rhook -w' ruby x.rb"),
            ["/tmp/r/hook.rb"]
        );
        assert_eq!(
            files("PHPRC=/tmp/c PHP_INI_SCAN_DIR=/etc/php:/tmp/d php -r 1"),
            ["/etc/php/*.ini", "/tmp/c", "/tmp/c/php.ini", "/tmp/d/*.ini"]
        );
        assert_eq!(
            files("php -c /tmp/x.ini -d 'auto_prepend_file=/tmp/p.php' -d memory_limit=1G a.php"),
            ["/tmp/p.php", "/tmp/x.ini", "/tmp/x.ini/php.ini"]
        );
        assert_eq!(files("BASH_ENV=/tmp/i.sh ssh host"), Vec::<String>::new());
        // Unknown or positional: no file.
        assert_eq!(files(". $G; . $1; . ${F:-x}"), Vec::<String>::new());
        // Data, not code.
        for s in [
            "cat /tmp/a | grep x",
            "cat /tmp/a | sh run.sh",
            "sh run.sh < /tmp/input",
            "wc -l < /tmp/a",
            "echo . > /tmp/x",
            "bash <<EOF\nls\nEOF",
            "python3 - <<< 'print(1)'",
            "cat /tmp/a > /tmp/b; sh",
            "echo source /tmp/x",
            "F=/tmp/a; cat $F | grep x",
            "F=/tmp/p.sh; echo . $F",
            "sh -c 'ls' 2>&1 | tee /tmp/log",
        ] {
            assert_eq!(files(s), Vec::<String>::new(), "{s}");
        }
    }
}
