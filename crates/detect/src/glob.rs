//! Path and argument patterns of the policy.
//!
//! A path pattern is matched component by component against a kernel-resolved absolute path:
//! `*` matches any bytes inside one component, `?` one byte, `[abc]`/`[a-z]`/`[!x]` one byte of a
//! class, and a component that is exactly `**` matches zero or more whole components. A pattern is
//! anchored at `/` (absolute), `~/` (the agent's HOME), `$CWD/` (the agent's working directory) or
//! `**/` (anywhere). Matching is on raw bytes: paths need not be UTF-8.

/// One component of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// `**`: zero or more components.
    Deep,
    /// A component glob (`*`, `?`, classes).
    Glob(Vec<u8>),
    /// A literal component: from HOME or CWD (never interpreted as a glob), or a pattern
    /// component without glob characters.
    Lit(Vec<u8>),
}

/// Where a pattern is anchored, before HOME and CWD are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Root,
    Home,
    Cwd,
    Anywhere,
}

/// A parsed path pattern, not yet bound to an agent's HOME and CWD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    pub text: String,
    anchor: Anchor,
    segs: Vec<Seg>,
}

impl PathPattern {
    /// Parse `text`; the error says what is wrong (the caller adds the position).
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        let (anchor, rest) = if let Some(r) = text.strip_prefix("~/") {
            (Anchor::Home, r)
        } else if text == "~" {
            (Anchor::Home, "")
        } else if let Some(r) = text.strip_prefix("$CWD/") {
            (Anchor::Cwd, r)
        } else if text == "$CWD" {
            (Anchor::Cwd, "")
        } else if text.starts_with("**/") {
            (Anchor::Anywhere, text)
        } else if let Some(r) = text.strip_prefix('/') {
            (Anchor::Root, r)
        } else {
            return Err(format!(
                "path pattern `{text}` must start with `/`, `~/`, `$CWD/` or `**/`"
            ));
        };
        let mut segs = Vec::new();
        for comp in rest.split('/').filter(|c| !c.is_empty()) {
            if comp == "**" {
                segs.push(Seg::Deep);
            } else if comp.contains("**") {
                return Err(format!(
                    "path pattern `{text}`: `**` must be a whole component"
                ));
            } else if comp == "." || comp == ".." {
                return Err(format!(
                    "path pattern `{text}`: `.` and `..` are not allowed (paths are resolved)"
                ));
            } else {
                check_classes(comp.as_bytes())
                    .map_err(|e| format!("path pattern `{text}`: {e}"))?;
                // A component without `*`, `?` or `[` can only match itself: compare bytes.
                let b = comp.as_bytes().to_vec();
                if b.iter().any(|c| matches!(c, b'*' | b'?' | b'[')) {
                    segs.push(Seg::Glob(b));
                } else {
                    segs.push(Seg::Lit(b));
                }
            }
        }
        Ok(PathPattern {
            text: text.to_string(),
            anchor,
            segs,
        })
    }

    pub fn anchor(&self) -> Anchor {
        self.anchor
    }

    /// Bind HOME and CWD. A pattern anchored at an unknown HOME or CWD matches nothing.
    pub fn bind(&self, home: Option<&[u8]>, cwd: Option<&[u8]>) -> Option<BoundPattern> {
        let base = match self.anchor {
            Anchor::Root | Anchor::Anywhere => &[][..],
            Anchor::Home => home?,
            Anchor::Cwd => cwd?,
        };
        let mut segs: Vec<Seg> = components(base).map(|c| Seg::Lit(c.to_vec())).collect();
        segs.extend(self.segs.iter().cloned());
        let fixed = segs.iter().filter(|s| !matches!(s, Seg::Deep)).count();
        let is_deep = |s: &Seg| matches!(s, Seg::Deep);
        let head = segs.iter().position(is_deep).unwrap_or(segs.len());
        let tail = segs.iter().rev().position(is_deep).unwrap_or(0);
        Some(BoundPattern {
            text: self.text.clone(),
            deep: fixed != segs.len(),
            fixed,
            head,
            tail,
            segs,
        })
    }
}

/// A pattern with HOME and CWD filled in, ready to match paths.
#[derive(Debug, Clone)]
pub struct BoundPattern {
    pub text: String,
    segs: Vec<Seg>,
    /// The pattern holds a `**`.
    deep: bool,
    /// Components that are not `**`: the least a matching path has (exactly that without `**`).
    fixed: usize,
    /// Segments before the first `**` (all of them without one) and after the last one: they
    /// match the path's first and last components in place, so only the part between two `**`
    /// needs a search.
    head: usize,
    tail: usize,
}

impl BoundPattern {
    /// True when the absolute `path` matches. Relative paths never match.
    pub fn matches(&self, path: &[u8]) -> bool {
        match Components::of(path) {
            Some(c) => self.matches_components(&c),
            None => false,
        }
    }

    /// Match a path already split with [`Components::of`]; the engine splits each path once and
    /// tries every pattern on it (a per-pattern split was a third of replay's time).
    pub fn matches_components(&self, comps: &Components<'_>) -> bool {
        let c = &comps.0[..];
        if c.len() < self.fixed || (!self.deep && c.len() != self.fixed) {
            return false;
        }
        // Most patterns differ from most paths in the leaf: try the fixed tail first (from the
        // leaf up), then the fixed head, and search only what lies between the outer `**`s.
        let (segs, n) = (&self.segs[..], c.len());
        let tail_ok = (0..self.tail).all(|i| seg_match(&segs[segs.len() - 1 - i], c[n - 1 - i]));
        if !tail_ok || !(0..self.head).all(|i| seg_match(&segs[i], c[i])) {
            return false;
        }
        !self.deep
            || match_segs(
                &segs[self.head..segs.len() - self.tail],
                &c[self.head..n - self.tail],
            )
    }
}

/// A list of bound patterns, indexed so that a path is matched only against the patterns that
/// can match it. Every literal component of a pattern must equal some component of a matching
/// path, so each pattern with one is filed under its last literal (`.bashrc`, `credentials`,
/// `log`): a path looks up its own components and tries what they name, plus the few patterns
/// with no literal at all. The answer is the one a scan in list order gives (the first
/// matching pattern), at a handful of hash lookups instead of ~160 matches for the built-in
/// policy's lists (the agent workload's new paths: git's objects and lock files).
#[derive(Debug, Clone, Default)]
pub struct PatternSet {
    pats: Vec<BoundPattern>,
    by_literal: rustc_hash::FxHashMap<Box<[u8]>, Vec<u32>>,
    /// Patterns without a literal component, in list order.
    rest: Vec<u32>,
}

impl PatternSet {
    pub fn new(pats: Vec<BoundPattern>) -> PatternSet {
        let mut set = PatternSet {
            by_literal: Default::default(),
            rest: Vec::new(),
            pats: Vec::new(),
        };
        for (i, p) in pats.iter().enumerate() {
            let lit = p.segs.iter().rev().find_map(|s| match s {
                Seg::Lit(l) => Some(l),
                _ => None,
            });
            match lit {
                Some(l) => set
                    .by_literal
                    .entry(l.as_slice().into())
                    .or_default()
                    .push(i as u32),
                None => set.rest.push(i as u32),
            }
        }
        set.pats = pats;
        set
    }

    /// The index of the first pattern in list order that matches.
    pub fn first_index(&self, comps: &Components<'_>) -> Option<usize> {
        let mut best = u32::MAX;
        // Each candidate list is in list order: its first match is its best; a list's
        // candidates past the best so far cannot win.
        let mut try_list = |list: &[u32]| {
            for &i in list {
                if i >= best {
                    break;
                }
                if self.pats[i as usize].matches_components(comps) {
                    best = i;
                    break;
                }
            }
        };
        for c in &comps.0 {
            if let Some(list) = self.by_literal.get(*c) {
                try_list(list);
            }
        }
        try_list(&self.rest);
        (best != u32::MAX).then_some(best as usize)
    }

    /// The first pattern in list order that matches the absolute `path`.
    pub fn first(&self, path: &[u8]) -> Option<&BoundPattern> {
        let comps = Components::of(path)?;
        self.first_index(&comps).map(|i| &self.pats[i])
    }

    pub fn matches(&self, path: &[u8]) -> bool {
        self.first(path).is_some()
    }
}

/// The policy's three path-pattern lists of the file channels, with what they said about each
/// path remembered. Detection matches every open against all of them (about 70 patterns with the
/// built-in policy: a third of replay's instructions), and a run opens the same files over and
/// over (libraries, headers, a workspace), so a path is matched once and then looked up. The
/// memo is bounded: when it holds [`PathRules::MAX_PATHS`] paths it starts again empty.
pub struct PathRules {
    persistence: PatternSet,
    sensitive: PatternSet,
    noise: PatternSet,
    memo: rustc_hash::FxHashMap<Box<[u8]>, PathVerdict>,
}

/// What the pattern lists say about one path: the first matching pattern of each list (by its
/// index), as a scan of the list in order finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathVerdict {
    persistence: Option<u32>,
    sensitive: Option<u32>,
    pub noise: bool,
}

impl PathRules {
    /// Paths remembered at most (about 100 bytes each with their verdict).
    pub const MAX_PATHS: usize = 8192;

    pub fn new(
        persistence: Vec<BoundPattern>,
        sensitive: Vec<BoundPattern>,
        noise: Vec<BoundPattern>,
    ) -> PathRules {
        PathRules {
            persistence: PatternSet::new(persistence),
            sensitive: PatternSet::new(sensitive),
            noise: PatternSet::new(noise),
            memo: Default::default(),
        }
    }

    /// The verdict on `path`, from the memo or by matching it (and remembering it).
    pub fn verdict(&mut self, path: &[u8]) -> PathVerdict {
        if let Some(v) = self.memo.get(path) {
            return *v;
        }
        let v = self.matched(path);
        if self.memo.len() >= Self::MAX_PATHS {
            self.memo.clear();
        }
        self.memo.insert(path.into(), v);
        v
    }

    /// The verdict on `path` by matching every list (no memo).
    pub fn matched(&self, path: &[u8]) -> PathVerdict {
        let Some(comps) = Components::of(path) else {
            return PathVerdict::default();
        };
        let first = |pats: &PatternSet| pats.first_index(&comps).map(|i| i as u32);
        PathVerdict {
            persistence: first(&self.persistence),
            sensitive: first(&self.sensitive),
            noise: first(&self.noise).is_some(),
        }
    }

    /// The text of the persistence pattern a verdict names.
    pub fn persistence(&self, v: &PathVerdict) -> Option<&str> {
        v.persistence
            .map(|i| self.persistence.pats[i as usize].text.as_str())
    }

    /// The text of the sensitive-file pattern a verdict names.
    pub fn sensitive(&self, v: &PathVerdict) -> Option<&str> {
        v.sensitive
            .map(|i| self.sensitive.pats[i as usize].text.as_str())
    }
}

/// An absolute path split into its non-empty components.
pub struct Components<'a>(Vec<&'a [u8]>);

impl<'a> Components<'a> {
    /// `None` for a relative path (no pattern matches one).
    pub fn of(path: &'a [u8]) -> Option<Components<'a>> {
        (path.first() == Some(&b'/')).then(|| Components(components(path).collect()))
    }
}

fn seg_match(seg: &Seg, c: &[u8]) -> bool {
    match seg {
        Seg::Lit(l) => l.as_slice() == c,
        Seg::Glob(g) => glob_match(g, c),
        Seg::Deep => true,
    }
}

/// The non-empty components of a path.
pub fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

fn match_segs(pat: &[Seg], comps: &[&[u8]]) -> bool {
    match pat.split_first() {
        None => comps.is_empty(),
        Some((Seg::Deep, rest)) => (0..=comps.len()).any(|i| match_segs(rest, &comps[i..])),
        Some((seg, rest)) => match comps.split_first() {
            None => false,
            Some((c, crest)) => seg_match(seg, c) && match_segs(rest, crest),
        },
    }
}

/// Validate the `[...]` classes of a glob.
pub fn check_classes(p: &[u8]) -> Result<(), String> {
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'[' {
            match class_end(p, i) {
                Some(end) => i = end,
                None => return Err("unclosed `[` in a character class".into()),
            }
        }
        i += 1;
    }
    Ok(())
}

/// Index of the `]` closing the class that opens at `start`.
fn class_end(p: &[u8], start: usize) -> Option<usize> {
    let mut j = start + 1;
    if p.get(j) == Some(&b'!') {
        j += 1;
    }
    // A `]` right after the opening (or `!`) is a literal member.
    if p.get(j) == Some(&b']') {
        j += 1;
    }
    while j < p.len() {
        if p[j] == b']' {
            return Some(j);
        }
        j += 1;
    }
    None
}

fn class_match(class: &[u8], b: u8) -> bool {
    let (neg, body) = match class.split_first() {
        Some((b'!', rest)) => (true, rest),
        _ => (false, class),
    };
    let mut hit = false;
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == b'-' {
            if body[k] <= b && b <= body[k + 2] {
                hit = true;
            }
            k += 3;
        } else {
            if body[k] == b {
                hit = true;
            }
            k += 1;
        }
    }
    hit != neg
}

/// Match one glob (`*`, `?`, `[...]`) against bytes. `*` matches any bytes, `/` included (for
/// path components there are none).
pub fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some(end) = class_end(p, pi) {
                        if class_match(&p[pi + 1..end], s[si]) {
                            pi = end + 1;
                            si += 1;
                            continue;
                        }
                    } else if s[si] == b'[' {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pat: &str, path: &str) -> bool {
        PathPattern::parse(pat)
            .unwrap()
            .bind(Some(b"/home/ann"), Some(b"/work/proj"))
            .unwrap()
            .matches(path.as_bytes())
    }

    /// The head/tail shortcut agrees with the plain recursive walk on every pattern and path
    /// built from a small alphabet of components (all shapes of `**` placement included).
    #[test]
    fn shortcut_matching_agrees_with_the_plain_walk() {
        let parts = ["**", "a", "b", "*", "a*"];
        let comps = ["a", "b", "ab"];
        let mut pats = vec![String::new()];
        for _ in 0..4 {
            let mut next = vec![];
            for p in &pats {
                for x in parts {
                    next.push(format!("{p}/{x}"));
                }
            }
            pats.extend(next);
        }
        let mut paths = vec![String::new()];
        for _ in 0..4 {
            let mut next = vec![];
            for p in &paths {
                for x in comps {
                    next.push(format!("{p}/{x}"));
                }
            }
            paths.extend(next);
        }
        let mut checked = 0;
        for pat in pats.iter().filter(|p| !p.is_empty()) {
            let b = PathPattern::parse(pat).unwrap().bind(None, None).unwrap();
            for path in paths.iter().filter(|p| !p.is_empty()) {
                let c = Components::of(path.as_bytes()).unwrap();
                assert_eq!(
                    b.matches_components(&c),
                    match_segs(&b.segs, &c.0),
                    "{pat} vs {path}"
                );
                checked += 1;
            }
        }
        assert!(checked > 50_000);
    }

    /// The memo answers what matching every list in order answers, for paths seen once, seen
    /// again, and seen again after the memo started over.
    /// Patterns bound to the HOME and CWD of [`corpus`].
    fn bind(v: &[PathPattern]) -> Vec<BoundPattern> {
        v.iter()
            .filter_map(|p| p.bind(Some(b"/home/ann"), Some(b"/work/proj")))
            .collect()
    }

    /// Paths around the built-in policy's patterns, in and out of them.
    fn corpus() -> Vec<String> {
        let dirs = [
            "/",
            "/etc/",
            "/etc/cron.d/",
            "/home/ann/",
            "/home/ann/.ssh/",
            "/home/ann/.aws/",
            "/work/proj/",
            "/work/proj/node_modules/x/",
            "/usr/lib/",
            "/tmp/",
            "/root/.ssh/",
            "/home/bob/.config/systemd/user/",
            "/etc/sudoers.d/",
            "/proc/1/",
            "/var/log/apt/",
            "/home/ann/.git/hooks/",
            "/home/ann/log/log/",
        ];
        let leaves = [
            "shadow",
            "credentials",
            "id_rsa",
            "id_rsa.pub",
            "authorized_keys",
            ".bashrc",
            ".env",
            ".env.local",
            "main.py",
            "config",
            "x.pem",
            "crontab",
            "rc",
            "passwd",
            "",
            "history.log",
            "pre-commit",
            ".bash_history",
        ];
        let mut paths: Vec<String> = vec!["relative/.env".into(), "".into()];
        for d in dirs {
            for l in leaves {
                paths.push(format!("{d}{l}"));
            }
        }
        paths
    }

    #[test]
    fn an_indexed_set_picks_the_pattern_a_scan_in_order_picks() {
        let f = &crate::Policy::builtin().files;
        // Overlaps whose order matters: a pattern with no literal before and after ones filed
        // under a literal, two filed under the same literal, a literal that is a directory.
        let overlap: Vec<PathPattern> = [
            "**/*.log",
            "/var/log/**",
            "**/log/*",
            "**/.ssh/*",
            "**/.ssh/id_*",
            "/**",
            "**/.ssh/config",
        ]
        .iter()
        .map(|t| PathPattern::parse(t).unwrap())
        .collect();
        let lists = [
            &f.persistence[..],
            &f.sensitive,
            &f.noise,
            &f.histories,
            &f.logs,
            &f.destruction_quiet,
            &overlap,
        ];
        let mut paths = corpus();
        paths.extend(
            ["/home/ann/log/x", "/a/log/log/b.log", "/x/.ssh/.ssh/config"].map(String::from),
        );
        let mut hits = 0;
        for list in lists {
            let pats = bind(list);
            let set = PatternSet::new(pats.clone());
            for path in &paths {
                let want = pats.iter().position(|p| p.matches(path.as_bytes()));
                let got = Components::of(path.as_bytes()).and_then(|c| set.first_index(&c));
                assert_eq!(got, want, "{path}");
                assert_eq!(set.matches(path.as_bytes()), want.is_some());
                hits += usize::from(want.is_some());
            }
        }
        assert!(hits > 200, "the corpus reaches the patterns: {hits}");
    }

    #[test]
    fn remembered_verdicts_equal_matching_every_list() {
        let f = &crate::Policy::builtin().files;
        let mut rules = PathRules::new(bind(&f.persistence), bind(&f.sensitive), bind(&f.noise));
        let fresh = PathRules::new(bind(&f.persistence), bind(&f.sensitive), bind(&f.noise));
        let paths = corpus();
        let mut hits = 0;
        for round in 0..3 {
            for (i, path) in paths.iter().enumerate() {
                let want = fresh.matched(path.as_bytes());
                let got = rules.verdict(path.as_bytes());
                assert_eq!(got, want, "round {round}: {path}");
                assert_eq!(rules.sensitive(&got), fresh.sensitive(&want));
                assert_eq!(rules.persistence(&got), fresh.persistence(&want));
                hits += usize::from(want != PathVerdict::default());
                // Start over mid-way once, as a full memo does.
                if round == 1 && i == paths.len() / 2 {
                    rules.memo.clear();
                }
            }
        }
        assert!(hits > 100, "the paths exercise every list ({hits} matches)");
    }

    #[test]
    fn globs_match_within_one_component() {
        assert!(glob_match(b"python*", b"python3.11"));
        assert!(glob_match(b"id_*", b"id_rsa"));
        assert!(!glob_match(b"id_*", b"known_hosts"));
        assert!(glob_match(b"[0-7][1357]?", b"755"));
        assert!(!glob_match(b"[0-7][1357]?", b"644"));
        assert!(glob_match(b"[!a]x", b"bx"));
        assert!(!glob_match(b"[!a]x", b"ax"));
        assert!(glob_match(b"*+*x*", b"u+x"));
        assert!(!glob_match(b"*+*x*", b"fix.sh"));
    }

    #[test]
    fn path_patterns_anchor_at_root_home_cwd_or_anywhere() {
        assert!(m("/etc/shadow", "/etc/shadow"));
        assert!(!m("/etc/shadow", "/etc/shadow-"));
        assert!(m("~/.aws/**", "/home/ann/.aws/credentials"));
        assert!(!m("~/.aws/**", "/home/bob/.aws/credentials"));
        assert!(m("**/.aws/credentials", "/tmp/x/.aws/credentials"));
        assert!(m("**/.env", "/work/proj/.env"));
        assert!(!m("**/.env", "/work/proj/.envrc"));
        assert!(m("$CWD/**", "/work/proj/src/main.py"));
        assert!(!m("$CWD/**", "/work/other/main.py"));
        assert!(m(
            "**/site-packages/**",
            "/usr/lib/python3/site-packages/a/b.py"
        ));
        assert!(
            !m("/etc/shadow", "etc/shadow"),
            "relative paths never match"
        );
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        assert!(PathPattern::parse("etc/shadow")
            .unwrap_err()
            .contains("must start"));
        assert!(PathPattern::parse("/a/b**")
            .unwrap_err()
            .contains("whole component"));
        assert!(PathPattern::parse("/a/[bc")
            .unwrap_err()
            .contains("unclosed"));
        assert!(PathPattern::parse("/a/../b")
            .unwrap_err()
            .contains("not allowed"));
    }

    #[test]
    fn unknown_home_matches_nothing() {
        let p = PathPattern::parse("~/.ssh/**").unwrap();
        assert!(p.bind(None, None).is_none());
    }
}
