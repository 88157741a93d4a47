//! File confinement for an agent started by `run`: Landlock keeps it out of the policy's
//! sensitive files (`[enforce] files = "block"`).
//!
//! Landlock rules only grant access, so a denied file is carved out by granting everything around
//! it: for every directory on the path from `/` to a denied file, each entry that is neither
//! denied nor itself on such a path is granted full access beneath it, and the on-path directories
//! themselves may only be listed. Consequences, stated honestly:
//! - what is denied is the set of sensitive files that exist when the agent starts (patterns are
//!   expanded under its HOME, /root and its working directory, and absolute patterns as written);
//!   a sensitive file created later is not confined, but detection still alerts on it;
//! - new files cannot be created directly in a directory on the path to a denied file (e.g. in
//!   `~` itself when `~/.aws/credentials` is denied); its other subdirectories are unaffected;
//! - symlinks among the granted entries are not granted (a grant through a symlink would grant its
//!   target); access through them resolves to their targets' own rules.

use anyhow::{Context, Result};
use landlock::{
    Access, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, ABI,
};
use proctor_detect::{Anchor, Policy};
use std::collections::{BTreeSet, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Entries visited while expanding one pattern: a bound on start-up time.
const MAX_VISIT: usize = 20_000;

/// The existing files and directories the sensitive patterns name for this agent at fixed
/// places (denied by Landlock, and by the BPF LSM where it loads): found like
/// [`sensitive_files_direct`], without walking whole trees, and a trailing `/**` keeps its
/// directory whole (Landlock denies a directory with everything beneath it). Walking HOME,
/// /root and the working directory for every `**/` pattern cost seconds at start (about 6 s
/// with a toolchain under /root); these are a few stats and directory listings. A credential
/// deeper in the working directory (`$CWD/sub/.env`) is not refused; detection still alerts
/// on it (the background walk of [`sensitive_files`] finds it).
pub fn sensitive_paths(policy: &Policy, home: Option<&Path>, cwd: Option<&Path>) -> Vec<PathBuf> {
    fixed_paths(&policy.files.sensitive, home, cwd)
}

/// The device nodes in /dev (and /dev/mapper, /dev/input) that `[files].sensitive_devices`
/// names (disks, the kernel's memory, input devices, the consoles' screens), denied in enforce
/// mode with `files = "block"` like the sensitive files.
/// Symlinks are not followed (udev's /dev/disk/by-* links lead to these same nodes); a node the
/// agent makes itself is refused at mknod (see [`ruleset`]).
pub fn device_paths(policy: &Policy) -> Vec<PathBuf> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let patterns = &policy.files.sensitive_devices;
    let mut out = Vec::new();
    for dir in ["/dev", "/dev/mapper", "/dev/input"] {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let kind = if ft.is_block_device() {
                proctor_model::DeviceKind::Block
            } else if ft.is_char_device() {
                proctor_model::DeviceKind::Char
            } else {
                continue;
            };
            let Ok(m) = e.metadata() else { continue };
            let rdev = m.rdev();
            let node = proctor_model::DeviceNode {
                kind,
                major: libc::major(rdev),
                minor: libc::minor(rdev),
            };
            if patterns.iter().any(|p| p.matches(&node)) {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The existing files and directories the persistence patterns name for this agent at fixed
/// places (kept read-only in enforce mode with `files = "block"`), found like
/// [`sensitive_paths`]. A `.bashrc` deeper in the working directory is not covered; detection
/// still alerts on writes to it.
pub fn persistence_paths(policy: &Policy, home: Option<&Path>, cwd: Option<&Path>) -> Vec<PathBuf> {
    fixed_paths(&policy.files.persistence, home, cwd)
}

/// What `patterns` name at fixed places, canonical and without duplicates, a trailing `/**`
/// giving its directory. Only regular files and directories outside /proc are kept: connecting
/// to a socket is no file access Landlock or the file_open hook decides (detection alerts on
/// the connect), and Landlock grants around a denied file, so a device in /dev or /proc/kcore
/// would leave the agent without the /proc entries of the processes it starts later
/// (detection still alerts on their opens).
fn fixed_paths(
    patterns: &[proctor_detect::PathPattern],
    home: Option<&Path>,
    cwd: Option<&Path>,
) -> Vec<PathBuf> {
    let found: BTreeSet<PathBuf> = direct_paths(patterns, home, cwd, true)
        .into_iter()
        .filter_map(|p| p.canonicalize().ok())
        .filter(|p| {
            !p.starts_with("/proc") && std::fs::metadata(p).is_ok_and(|m| m.is_file() || m.is_dir())
        })
        .collect();
    found.into_iter().collect()
}

/// The existing files and directories `patterns` name for this agent. Each place is walked
/// once for all the patterns that look there (HOME, /root and the working directory for every
/// `**/` pattern, `/etc` for the absolute ones under it), not once per pattern: with ~80
/// patterns the walks per pattern were a quarter of proctor's start-up CPU.
fn pattern_paths(
    patterns: &[proctor_detect::PathPattern],
    home: Option<&Path>,
    cwd: Option<&Path>,
) -> Vec<PathBuf> {
    let hb = home.map(|h| h.as_os_str().as_bytes().to_vec());
    let cb = cwd.map(|c| c.as_os_str().as_bytes().to_vec());
    let mut by_root: Vec<(PathBuf, Vec<proctor_detect::BoundPattern>)> = Vec::new();
    for pat in patterns {
        let Some(bound) = pat.bind(hb.as_deref(), cb.as_deref()) else {
            continue;
        };
        let roots: Vec<PathBuf> = match pat.anchor() {
            Anchor::Root => vec![literal_prefix(&pat.text)],
            Anchor::Home => home.map(Path::to_path_buf).into_iter().collect(),
            Anchor::Cwd => cwd.map(Path::to_path_buf).into_iter().collect(),
            // `**/x` anywhere: look where an agent's credentials live.
            Anchor::Anywhere => [home, Some(Path::new("/root")), cwd]
                .into_iter()
                .flatten()
                .map(Path::to_path_buf)
                .collect(),
        };
        for root in roots {
            match by_root.iter_mut().find(|(r, _)| *r == root) {
                Some((_, b)) => b.push(bound.clone()),
                None => by_root.push((root, vec![bound.clone()])),
            }
        }
    }
    let mut out = BTreeSet::new();
    for (root, bound) in by_root {
        // Indexed by literal component: the path's components are split once, not once per
        // pattern (a start-up walk of up to MAX_VISIT files against ~50 patterns).
        let set = proctor_detect::PatternSet::new(bound);
        let mut visited = 0;
        walk(&root, 0, &mut visited, &mut |p| {
            let b = p.as_os_str().as_bytes();
            if set.matches(b) {
                if let Ok(real) = p.canonicalize() {
                    out.insert(real);
                }
                return false; // denied as a whole: no need to look inside
            }
            true
        });
    }
    out.into_iter().collect()
}

/// The sensitive files that exist now, found by walking HOME, /root and the working directory
/// (seconds on a large tree: run it off the start-up path), each with what lies beneath it.
pub fn sensitive_files(policy: &Policy, home: Option<&Path>, cwd: Option<&Path>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for d in &pattern_paths(&policy.files.sensitive, home, cwd) {
        files_beneath(d, &mut files);
    }
    files
}

/// The sensitive files a pattern names at fixed places, found without walking: `**/x/y` under
/// HOME, /root and the working directory, `~/x`, absolute paths, and a wildcard in the last
/// component only (one directory listed) or a trailing `/**`. A fast first pass of
/// [`sensitive_files`] (which walks, and so also finds `x/y` deeper down).
pub fn sensitive_files_direct(
    policy: &Policy,
    home: Option<&Path>,
    cwd: Option<&Path>,
) -> Vec<PathBuf> {
    direct_paths(&policy.files.sensitive, home, cwd, false)
}

/// What `patterns` name at fixed places (see [`sensitive_files_direct`]); with `keep_dirs`, a
/// trailing `/**` gives its directory (the ones matching, for a wildcard last component) instead
/// of the files beneath it.
fn direct_paths(
    patterns: &[proctor_detect::PathPattern],
    home: Option<&Path>,
    cwd: Option<&Path>,
    keep_dirs: bool,
) -> Vec<PathBuf> {
    let hb = home.map(|h| h.as_os_str().as_bytes().to_vec());
    let cb = cwd.map(|c| c.as_os_str().as_bytes().to_vec());
    let wild = |s: &str| s.contains(['*', '?', '[']);
    let mut out = Vec::new();
    for pat in patterns {
        let Some(bound) = pat.bind(hb.as_deref(), cb.as_deref()) else {
            continue;
        };
        let t = pat.text.as_str();
        let (roots, rest): (Vec<&Path>, &str) = if let Some(r) = t.strip_prefix("**/") {
            (
                [home, Some(Path::new("/root")), cwd]
                    .into_iter()
                    .flatten()
                    .collect(),
                r,
            )
        } else if let Some(r) = t.strip_prefix("~/") {
            (home.into_iter().collect(), r)
        } else if let Some(r) = t.strip_prefix('/') {
            (vec![Path::new("/")], r)
        } else {
            (cwd.into_iter().collect(), t)
        };
        let rest = match rest.strip_suffix("/**") {
            Some(d) if keep_dirs => d,
            _ => rest,
        };
        for root in roots {
            if let Some(dir) = rest.strip_suffix("/**").filter(|d| !wild(d)) {
                files_beneath(&root.join(dir), &mut out);
            } else if !wild(rest) {
                out.push(root.join(rest));
            } else if let Some(dir) = match rest.rsplit_once('/') {
                Some((d, _)) => (!wild(d)).then_some(d),
                // A wildcard in the only component (`**/.env.*`): the root's own entries.
                None => Some(""),
            } {
                let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
                    continue;
                };
                out.extend(
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| bound.matches(p.as_os_str().as_bytes())),
                );
            }
        }
    }
    out
}

/// Files the BPF LSM file_open hook must refuse for one denied path: the path itself and, for a
/// directory, everything beneath it (by identity, so bounded like the pattern walk).
pub fn files_beneath(path: &Path, out: &mut Vec<PathBuf>) {
    out.push(path.to_path_buf());
    if path.is_dir() {
        let mut visited = 0;
        walk(path, 1, &mut visited, &mut |p| {
            out.push(p.to_path_buf());
            true
        });
    }
}

/// The directory part of an absolute pattern before its first wildcard.
fn literal_prefix(text: &str) -> PathBuf {
    let mut p = PathBuf::from("/");
    for seg in text.split('/').filter(|s| !s.is_empty()) {
        if seg.contains(['*', '?', '[']) {
            break;
        }
        p.push(seg);
    }
    if p.is_dir() {
        p
    } else {
        p.parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
    }
}

/// Visit `dir` itself and then its entries depth-first (not following symlinked directories),
/// up to 6 levels; `visit` returns whether to descend.
fn walk(dir: &Path, depth: usize, visited: &mut usize, visit: &mut dyn FnMut(&Path) -> bool) {
    if depth == 0 && !visit(dir) {
        return;
    }
    if depth >= 6 || *visited >= MAX_VISIT {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        *visited += 1;
        if *visited >= MAX_VISIT {
            return;
        }
        let p = e.path();
        let descend = visit(&p);
        if descend && e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, depth + 1, visited, visit);
        }
    }
}

/// A Landlock ruleset denying `deny` (absolute, canonical paths), allowing only reads beneath
/// `read_only`, granting everything else, and with `scope_signals` (ABI 6 and later) keeping
/// the agent's signals inside its own domain: a kill, or a file owner's SIGIO, aimed at
/// proctor or any other process outside the agent's tree is refused by the kernel when it is
/// sent. With `no_device_nodes` no grant includes making block or character device nodes.
/// Returns the ruleset, ready for `restrict_self` in the agent before it execs, and the number
/// of grant rules.
pub fn ruleset(
    deny: &[PathBuf],
    read_only: &[PathBuf],
    scope_signals: bool,
    no_device_nodes: bool,
) -> Result<(RulesetCreated, usize)> {
    let abi = ABI::V5;
    // With `no_device_nodes` no grant includes making block or character devices: mknod(2) of
    // one fails with EACCES anywhere (a node of the agent's own for /dev/vda would open the
    // disk around the denied /dev/vda).
    let all = if no_device_nodes {
        AccessFs::from_all(abi) & !(AccessFs::MakeBlock | AccessFs::MakeChar)
    } else {
        AccessFs::from_all(abi)
    };
    let read = AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::Execute;
    let denied: HashSet<&Path> = deny.iter().chain(read_only).map(PathBuf::as_path).collect();
    let mut on_path: BTreeSet<PathBuf> = BTreeSet::new();
    for d in deny.iter().chain(read_only) {
        let mut a = d.parent();
        while let Some(p) = a {
            on_path.insert(p.to_path_buf());
            a = p.parent();
        }
    }
    let mut rs = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .context("Landlock: handling file access")?;
    if scope_signals {
        rs = rs
            .scope(landlock::Scope::Signal)
            .context("Landlock: scoping signals")?;
    }
    let mut rs = rs.create().context("Landlock: creating the ruleset")?;
    let mut rules = 0;
    for r in read_only {
        let Ok(fd) = PathFd::new(r) else { continue };
        rs = rs
            .add_rule(PathBeneath::new(fd, read))
            .with_context(|| format!("Landlock rule for {}", r.display()))?;
        rules += 1;
    }
    for dir in &on_path {
        // The on-path directory itself may be listed, nothing more.
        rs = rs
            .add_rule(PathBeneath::new(PathFd::new(dir)?, AccessFs::ReadDir))
            .with_context(|| format!("Landlock rule for {}", dir.display()))?;
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if denied.contains(p.as_path()) || on_path.contains(&p) {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_symlink() {
                continue;
            }
            let access = if ft.is_dir() {
                all
            } else {
                all & AccessFs::from_file(abi)
            };
            let Ok(fd) = PathFd::new(&p) else { continue };
            rs = rs
                .add_rule(PathBeneath::new(fd, access))
                .with_context(|| format!("Landlock rule for {}", p.display()))?;
            rules += 1;
        }
    }
    Ok((rs, rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistence_locations_are_found_at_fixed_places_and_directories_kept_whole() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        for d in [".ssh", ".config/systemd/user", "proj/sub"] {
            std::fs::create_dir_all(h.join(d)).unwrap();
        }
        for f in [
            ".bashrc",
            ".ssh/authorized_keys",
            "proj/sub/.bashrc",
            "notes",
        ] {
            std::fs::write(h.join(f), "x").unwrap();
        }
        let found = persistence_paths(&Policy::builtin(), Some(h), Some(&h.join("proj")));
        let h = h.canonicalize().unwrap();
        assert!(found.contains(&h.join(".bashrc")), "{found:?}");
        assert!(found.contains(&h.join(".ssh/authorized_keys")));
        assert!(
            found.contains(&h.join(".config/systemd/user")),
            "the directory, whole"
        );
        assert!(!found.iter().any(|p| p.starts_with(h.join("notes"))));
        assert!(found.iter().all(|p| p.exists()));
    }

    #[test]
    fn sensitive_files_under_home_are_found_and_others_are_not() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".aws")).unwrap();
        std::fs::write(home.path().join(".aws/credentials"), "x").unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".ssh/id_ed25519"), "k").unwrap();
        std::fs::write(home.path().join(".ssh/known_hosts"), "h").unwrap();
        std::fs::write(home.path().join("notes.txt"), "n").unwrap();
        let found = sensitive_paths(&Policy::builtin(), Some(home.path()), None);
        let real = home.path().canonicalize().unwrap();
        assert!(found.contains(&real.join(".aws/credentials")), "{found:?}");
        assert!(found.contains(&real.join(".ssh/id_ed25519")), "{found:?}");
        assert!(!found
            .iter()
            .any(|p| p.ends_with("known_hosts") || p.ends_with("notes.txt")));
    }

    #[test]
    fn sensitive_paths_are_found_at_fixed_places_without_walking() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let cwd = h.join("proj");
        for d in [".ssh", ".gnupg/private", "proj/deep/er"] {
            std::fs::create_dir_all(h.join(d)).unwrap();
        }
        for f in [
            ".ssh/id_ed25519",
            ".ssh/known_hosts",
            ".gnupg/private/k",
            "proj/.env.local",
            "proj/deep/er/.env",
        ] {
            std::fs::write(h.join(f), "x").unwrap();
        }
        let found = sensitive_paths(&Policy::builtin(), Some(h), Some(&cwd));
        let h = h.canonicalize().unwrap();
        assert!(found.contains(&h.join(".ssh/id_ed25519")), "{found:?}");
        assert!(
            found.contains(&h.join(".gnupg")),
            "a directory, whole: {found:?}"
        );
        assert!(
            found.contains(&h.join("proj/.env.local")),
            "a wildcard in the only component: {found:?}"
        );
        assert!(!found.iter().any(|p| p.ends_with("known_hosts")));
        assert!(
            !found.iter().any(|p| p.starts_with(h.join("proj/deep"))),
            "no walk down the working directory: {found:?}"
        );
    }

    #[test]
    fn literal_prefix_stops_at_the_first_wildcard() {
        // A file's prefix is its directory; a missing path falls back to its parent.
        assert_eq!(literal_prefix("/etc/hostname"), PathBuf::from("/etc"));
        assert_eq!(literal_prefix("/etc/*.conf"), PathBuf::from("/etc"));
        assert_eq!(
            literal_prefix("/no-such-dir-proctor/x*"),
            PathBuf::from("/")
        );
    }

    #[test]
    fn direct_candidates_find_the_usual_credentials_without_walking() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".aws")).unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".aws/credentials"), "x").unwrap();
        std::fs::write(home.path().join(".ssh/id_ed25519"), "x").unwrap();
        std::fs::write(home.path().join(".ssh/known_hosts"), "x").unwrap();
        let found = sensitive_files_direct(&Policy::builtin(), Some(home.path()), None);
        assert!(
            found.contains(&home.path().join(".aws/credentials")),
            "{found:?}"
        );
        assert!(
            found.contains(&home.path().join(".ssh/id_ed25519")),
            "{found:?}"
        );
        assert!(
            !found.contains(&home.path().join(".ssh/known_hosts")),
            "{found:?}"
        );
    }
}
