//! System package transactions on recorded streams: a benign `apt-get install` under a built-in
//! profile raises nothing, and each way an agent could choose the code a transaction runs (its
//! arguments, a configuration or file it wrote, an interactive shell, a package manager run by
//! an untrusted one) leaves the transaction judged as any other work.

mod common;

use common::*;
use proctor_detect::{Baseline, Engine};
use proctor_model::{Access, Alert, Event, Record};

/// The agent's Bash tool (pid 300) runs `cmd`; then `apt-get ARGS` (pid 301).
fn apt_get(args: &[&str]) -> Vec<Record> {
    let mut argv = vec!["apt-get"];
    argv.extend_from_slice(args);
    let mut recs = claude_tool_shell(&argv.join(" "));
    recs.extend([
        fork(S + 3, 300, 301),
        exec(S + 4, 301, 300, "/usr/bin/apt-get", &argv, (5, 40)),
    ]);
    recs
}

/// What apt-get and dpkg do for an install, as the kernel reported it for
/// `apt-get install -y --reinstall jq` on Debian 12 (reduced): its download method fetching
/// from a mirror, dpkg unpacking into /usr and its state, a maintainer script run by sh that
/// runs tar and perl (which reads /etc/shadow), apt removing its own log, and the method ended
/// by a signal after it exited.
fn install_work(at: u64) -> Vec<Record> {
    let mut sig = ptrace(at + 40, 301, "kill", 302);
    if let Event::Ptrace(p) = &mut sig.event {
        p.target_tracked = false;
        p.signal = Some(2);
    }
    vec![
        open(
            at,
            301,
            "/var/lib/dpkg/lock-frontend",
            Access::Write,
            true,
            (5, 50),
        ),
        fork(at + 1, 301, 302),
        exec(
            at + 2,
            302,
            301,
            "/usr/lib/apt/methods/http",
            &["/usr/lib/apt/methods/http"],
            (5, 51),
        ),
        dns(at + 3, 302, "deb.debian.org", "127.0.0.53"),
        connect(at + 4, 302, "151.101.2.132", 80),
        open(
            at + 5,
            302,
            "/var/cache/apt/archives/partial/jq_1.6_amd64.deb",
            Access::Write,
            true,
            (5, 52),
        ),
        exit(at + 6, 302, 301),
        fork(at + 7, 301, 303),
        exec(
            at + 8,
            303,
            301,
            "/usr/bin/dpkg",
            &[
                "/usr/bin/dpkg",
                "--status-fd",
                "27",
                "--unpack",
                "/tmp/apt-dpkg-install-x",
            ],
            (5, 53),
        ),
        open(
            at + 9,
            303,
            "/usr/bin/jq.dpkg-new",
            Access::Write,
            true,
            (5, 54),
        ),
        path_change(
            at + 10,
            303,
            "rename",
            "/usr/bin/jq.dpkg-new",
            Some("/usr/bin/jq"),
            0,
        ),
        open(
            at + 11,
            303,
            "/var/lib/dpkg/info/jq.postinst",
            Access::Write,
            true,
            (5, 55),
        ),
        open(
            at + 12,
            303,
            "/var/lib/dpkg/status-new",
            Access::Write,
            true,
            (5, 56),
        ),
        fork(at + 13, 303, 304),
        exec(
            at + 14,
            304,
            303,
            "/usr/bin/dash",
            &["/bin/sh", "/var/lib/dpkg/info/jq.postinst", "configure"],
            (5, 57),
        ),
        fork(at + 15, 304, 305),
        exec(
            at + 16,
            305,
            304,
            "/usr/bin/tar",
            &["tar", "-x", "-f", "-"],
            (5, 58),
        ),
        fork(at + 17, 304, 306),
        exec(
            at + 18,
            306,
            304,
            "/usr/bin/perl",
            &[
                "/usr/bin/perl",
                "-w",
                "/usr/sbin/dpkg-preconfigure",
                "--apt",
            ],
            (5, 59),
        ),
        open(at + 19, 306, "/etc/shadow", Access::Read, false, (5, 60)),
        path_change(at + 20, 301, "unlink", "/var/log/apt/eipp.log.xz", None, 0),
        sig,
    ]
}

fn judged(recs: &[Record]) -> (Engine, Vec<Alert>) {
    let mut e = engine_judging(Baseline::builtin("claude-code").unwrap());
    let outs = feed(&mut e, recs);
    let a = alerts(&outs).into_iter().cloned().collect();
    (e, a)
}

fn summaries(a: &[Alert]) -> Vec<String> {
    a.iter()
        .map(|a| format!("{} {}", a.kind, a.summary))
        .collect()
}

/// Whether the package work was judged: its shell, tar, the credential read, its fetch.
fn all_judged(a: &[Alert]) {
    let s = summaries(a).join("\n");
    for what in [
        "dpkg -> dash",
        "/usr/bin/tar",
        "/etc/shadow",
        "deb.debian.org",
    ] {
        assert!(s.contains(what), "{what} not judged:\n{s}");
    }
}

#[test]
fn a_benign_install_by_name_raises_nothing_and_what_it_installed_runs_unjudged() {
    for args in [
        &["install", "-y", "--reinstall", "jq"][..],
        &["-qq", "update"],
        &["-yq", "install", "--no-install-recommends", "jq=1.6-2.1"],
    ] {
        let mut recs = apt_get(args);
        recs.extend(install_work(2 * S));
        // The agent runs what it installed: no write-then-exec cycle.
        recs.push(fork(3 * S, 300, 310));
        recs.push(exec(
            3 * S + 1,
            310,
            300,
            "/usr/bin/jq",
            &["jq", "."],
            (5, 54),
        ));
        let (_, a) = judged(&recs);
        assert!(a.is_empty(), "{args:?}: {:#?}", summaries(&a));
    }
}

#[test]
fn arguments_that_choose_the_code_leave_the_work_judged() {
    for args in [
        &["-o", "APT::Update::Pre-Invoke::=sh", "update"][..],
        &["install", "-y", "./jq.deb"],
        &["-c", "/tmp/apt.conf", "install", "jq"],
        &["changelog", "jq"],
    ] {
        let mut recs = apt_get(args);
        recs.extend(install_work(2 * S));
        let (_, a) = judged(&recs);
        all_judged(&a);
    }
}

#[test]
fn a_transaction_that_reads_or_runs_what_the_tree_wrote_is_judged_from_then() {
    // APT_CONFIG naming a configuration the agent wrote (its hooks run as apt's).
    let mut recs = apt_get(&["update"]);
    recs.insert(
        3,
        open(S + 2, 300, "/tmp/evil.conf", Access::Write, true, (5, 70)),
    );
    recs.push(open(
        S + 5,
        301,
        "/tmp/evil.conf",
        Access::Read,
        false,
        (5, 70),
    ));
    recs.extend(install_work(2 * S));
    let (_, a) = judged(&recs);
    all_judged(&a);

    // A library the agent wrote, preloaded into apt-get.
    let mut recs = apt_get(&["install", "-y", "jq"]);
    recs.insert(
        3,
        open(S + 2, 300, "/tmp/hook.so", Access::Write, true, (5, 71)),
    );
    recs.push(mapped(S + 5, 301, "/tmp/hook.so", (5, 71)));
    recs.extend(install_work(2 * S));
    let (_, a) = judged(&recs);
    all_judged(&a);

    // A program the agent replaced, run by the transaction: a cycle, and judged from then.
    let mut recs = apt_get(&["install", "-y", "jq"]);
    recs.insert(
        3,
        open(
            S + 2,
            300,
            "/usr/local/bin/gzip",
            Access::Write,
            true,
            (5, 72),
        ),
    );
    recs.push(fork(S + 5, 301, 320));
    recs.push(exec(
        S + 6,
        320,
        301,
        "/usr/local/bin/gzip",
        &["gzip", "-d"],
        (5, 72),
    ));
    recs.extend(install_work(2 * S));
    let (_, a) = judged(&recs);
    assert!(
        a.iter().any(|a| a.kind == "CAUSAL_CYCLE_DETECTED"),
        "{:#?}",
        summaries(&a)
    );
    all_judged(&a);
}

#[test]
fn an_interactive_shell_in_a_transaction_ends_its_trust() {
    // dpkg's "start a shell to examine the situation" at a conffile prompt.
    let mut recs = apt_get(&["install", "-y", "jq"]);
    recs.push(fork(S + 5, 301, 330));
    recs.push(exec(
        S + 6,
        330,
        301,
        "/usr/bin/bash",
        &["bash", "-i"],
        BASH_ID,
    ));
    recs.extend(install_work(2 * S));
    let (_, a) = judged(&recs);
    let s = summaries(&a).join("\n");
    assert!(s.contains("bash -i"), "{s}");
    all_judged(&a);
    // A pager (apt-listchanges', or one an escape reaches): its `!cmd` runs `sh -c cmd`.
    let mut recs = apt_get(&["install", "-y", "jq"]);
    recs.push(fork(S + 5, 301, 331));
    recs.push(exec(S + 6, 331, 301, "/usr/bin/less", &["less"], (5, 44)));
    recs.extend(install_work(2 * S));
    all_judged(&judged(&recs).1);
}

#[test]
fn a_package_manager_run_by_an_untrusted_one_stays_untrusted() {
    let mut recs = apt_get(&["-o", "Dpkg::Options::=--force-all", "install", "jq"]);
    recs.push(fork(S + 5, 301, 340));
    recs.push(exec(
        S + 6,
        340,
        301,
        "/usr/bin/dpkg",
        &["dpkg", "--configure", "-a"],
        (5, 53),
    ));
    recs.push(fork(S + 7, 340, 341));
    recs.push(exec(
        S + 8,
        341,
        340,
        "/usr/bin/dash",
        &["/bin/sh", "/var/lib/dpkg/info/x.postinst", "configure"],
        (5, 57),
    ));
    let (_, a) = judged(&recs);
    let s = summaries(&a).join("\n");
    assert!(s.contains("dpkg -> dash"), "{s}");
}

#[test]
fn a_trusted_transaction_still_answers_for_metadata_services_and_set_id_execs() {
    let mut recs = apt_get(&["install", "-y", "jq"]);
    recs.push(connect(S + 5, 301, "169.254.169.254", 80));
    let mut setuid = exec(
        S + 6,
        301,
        300,
        "/tmp/rootshell",
        &["/tmp/rootshell"],
        (5, 80),
    );
    if let Event::Exec(e) = &mut setuid.event {
        e.euid = Some(0);
    }
    recs.push(setuid);
    let (_, a) = judged(&recs);
    let kinds: Vec<&str> = a.iter().map(|a| a.kind.as_str()).collect();
    assert!(kinds.contains(&"UNKNOWN_DESTINATION"), "{kinds:?}");
    assert!(kinds.contains(&"PRIVILEGED_CALL"), "{kinds:?}");
}

#[test]
fn a_signal_to_the_trees_own_process_just_gone_is_not_outside_the_tree() {
    let signal = |ts: u64, target: u32| {
        let mut r = ptrace(ts, 300, "kill", target);
        if let Event::Ptrace(p) = &mut r.event {
            p.target_tracked = false;
            p.signal = Some(15);
        }
        r
    };
    let mut recs = apt_get(&["install", "-y", "jq"]);
    recs.truncate(3);
    recs.extend([
        fork(S + 3, 300, 350),
        exec(S + 4, 350, 300, "/usr/bin/sleep", &["sleep", "9"], (5, 90)),
        exit(S + 5, 350, 300),
        signal(S + 6, 350),
    ]);
    let (_, a) = judged(&recs);
    assert!(a.is_empty(), "{:#?}", summaries(&a));
    // Long after it exited its pid may be another process's; one never seen is outside.
    for (at, target) in [(S + 5 + 3 * S, 350), (S + 6, 999)] {
        let mut recs2 = recs.clone();
        recs2.pop();
        recs2.push(signal(at, target));
        let (_, a) = judged(&recs2);
        assert!(
            a.iter().any(|a| a.kind == "OUTSIDE_SIGNAL"),
            "{target}: {:#?}",
            summaries(&a)
        );
    }
}

#[test]
fn only_the_systems_package_manager_starts_a_transaction() {
    let with_apt = |file: &str, id: (u64, u64)| {
        let mut recs = apt_get(&["install", "-y", "jq"]);
        let last = recs.len() - 1;
        recs[last] = exec(
            S + 4,
            301,
            300,
            file,
            &["apt-get", "install", "-y", "jq"],
            id,
        );
        recs.extend(install_work(2 * S));
        judged(&recs).1
    };
    // bash hard-linked as apt-get is bash; an apt-get outside the system's directories is not
    // the system's.
    all_judged(&with_apt("/usr/bin/apt-get", BASH_ID));
    all_judged(&with_apt("/tmp/x/apt-get", (5, 40)));
    assert!(with_apt("/usr/bin/apt-get", (5, 40)).is_empty());
    // dnf is a python script of the system's.
    let mut recs = claude_tool_child(
        "dnf install -y jq",
        301,
        "/usr/bin/python3.11",
        &["/usr/bin/python3", "/usr/bin/dnf", "install", "-y", "jq"],
        (5, 11),
    );
    recs.extend(install_work(2 * S));
    let (_, a) = judged(&recs);
    assert!(a.is_empty(), "{:#?}", summaries(&a));
}
