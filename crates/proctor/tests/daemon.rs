//! Real-kernel tests of `proctor daemon`: agents found by the kernel at exec (by executable
//! identity, by build-id, by cgroup), a session directory each with its own evidence, alerts in
//! the session that raised them only, and `proctor ctl list` over the daemon's socket.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::daemon::*;
use proctor_testkit::receivers::http_get;
use proctor_testkit::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A cgroup of our own under the cgroup2 mount, removed at drop.
fn test_cgroup() -> TestCgroup {
    let mnt = proctor_sensor::features::mount_of("cgroup2").expect("a cgroup2 mount");
    TestCgroup::under(
        &mnt,
        &format!("proctor-daemon-test-{}.service", std::process::id()),
    )
}

#[test]
fn two_agents_by_executable_and_by_cgroup_get_their_own_sessions() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = dir.path().join("shell-agent");
    copy_executable("/bin/dash", &agent);
    let cg = test_cgroup();
    let sock = dir.path().join("proctor.sock");
    let config = format!(
        r#"
[daemon]
state_dir = "{}"
socket = "{}"

[[agent]]
name = "shell"
exe = ["{}"]
baseline = "2s"

[[agent]]
name = "unit"
cgroup = ["{}"]
baseline = "2s"
"#,
        state.display(),
        sock.display(),
        agent.display(),
        cg.rel
    );
    let d = Daemon::start(dir.path(), &config, "/usr/bin:/bin");

    // A plain shell starts the agent binary: matched by its executable. After the learning
    // window it spawns a shell it never spawned before: hijack.
    let shell = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "{} -c 'ls / >/dev/null; sleep 4; /bin/sh -c \"cat /etc/hostname\" >/dev/null; sleep 1'",
            agent.display()
        ))
        .spawn()
        .unwrap();
    let mut shell = KillOnDrop::new(shell);
    // A service: its process joins the unit's cgroup and then execs (as systemd starts a unit's
    // ExecStart), matched by the cgroup rule.
    let unit = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec /bin/sh -c 'ls /tmp >/dev/null; sleep 5'",
            cg.path.display()
        ))
        .spawn()
        .unwrap();
    let mut unit = KillOnDrop::new(unit);

    let shell_s = wait_for_session(&state, "shell", 1);
    let unit_s = wait_for_session(&state, "unit", 1);
    // Both sessions at once, listed by the daemon with their processes.
    let list = ctl_list(&sock);
    let agents: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["agent"].as_str().unwrap())
        .collect();
    assert!(
        agents.contains(&"shell") && agents.contains(&"unit"),
        "{list}"
    );
    for s in list["sessions"].as_array().unwrap() {
        assert_eq!(s["mode"], "audit");
        assert!(!s["pids"].as_array().unwrap().is_empty(), "{s}");
    }

    assert!(shell.wait().unwrap().success());
    assert!(unit.wait().unwrap().success());
    wait_ended(&shell_s[0]);
    wait_ended(&unit_s[0]);
    let log = d.stop();

    assert_eq!(sessions(&state, "shell").len(), 1, "{log}");
    assert_eq!(sessions(&state, "unit").len(), 1, "{log}");
    assert!(
        alerts(&shell_s[0]).contains("LLM_AGENT_HIJACK"),
        "the hijack in the shell agent: {}\n{log}",
        alerts(&shell_s[0])
    );
    assert_eq!(
        alerts(&unit_s[0]),
        "",
        "the unit agent did nothing new: {log}"
    );
    // Each session holds its own tree only.
    let shell_recs = read_records(&shell_s[0].join("audit.jsonl"));
    assert!(shell_recs
        .iter()
        .any(|r| r["type"] == "file_open" && r["path"] == "/etc/hostname"));
    assert!(!shell_recs
        .iter()
        .any(|r| r["type"] == "exec" && r["argv"].to_string().contains("ls /tmp")));
    let unit_recs = read_records(&unit_s[0].join("audit.jsonl"));
    assert!(unit_recs.iter().all(|r| r["agent_id"] == "unit"));
    // Reads of files a session recorded already are folded in that session's log, each named
    // by a file_open of that same log: the other session's records name nothing here.
    for (name, recs) in [("shell", &shell_recs), ("unit", &unit_recs)] {
        let recorded: std::collections::HashSet<u64> = recs
            .iter()
            .filter(|r| r["type"] == "file_open")
            .filter_map(|r| r["kseq"].as_u64())
            .collect();
        let folds: Vec<_> = recs
            .iter()
            .filter(|r| r["type"] == "file_open_seen")
            .collect();
        assert!(
            !folds.is_empty(),
            "{name}: a second shell reads what the first did"
        );
        for f in folds {
            for file in f["files"].as_array().unwrap() {
                let k = file["kseq"].as_u64().unwrap();
                assert!(
                    recorded.contains(&k),
                    "{name}: {file} names no file_open of its log"
                );
            }
        }
    }
    assert!(!log.contains("belonged to no session"), "{log}");
    assert!(!unit_recs
        .iter()
        .any(|r| r["type"] == "file_open" && r["path"] == "/etc/hostname"));
    verify_valid(&shell_s[0]);
    verify_valid(&unit_s[0]);
}

#[test]
fn a_renamed_or_linked_agent_binary_is_still_matched_and_a_copy_by_build_id() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bin = dir.path().join("bin");
    let search = dir.path().join("search");
    std::fs::create_dir(&bin).unwrap();
    std::fs::create_dir(&search).unwrap();
    let agent = bin.join("agent");
    copy_executable("/bin/dash", &agent);
    let id = proctor_detect::identity::build_id(&std::fs::File::open("/bin/dash").unwrap())
        .expect("dash has a build-id");
    let config = format!(
        r#"
[daemon]
state_dir = "{}"
socket = "{}"

[[agent]]
name = "byinode"
exe = ["{}"]

[[agent]]
name = "byid"
build_id = ["{id}"]
search = ["{}"]
"#,
        state.display(),
        dir.path().join("proctor.sock").display(),
        agent.display(),
        search.display()
    );
    // PATH without the system's dash: only the search directory is scanned for the build-id.
    let d = Daemon::start(dir.path(), &config, "/nonexistent");
    // The attacker renames the agent binary and links it under another name.
    let renamed = bin.join("innocent");
    std::fs::rename(&agent, &renamed).unwrap();
    let linked = dir.path().join("also-innocent");
    std::fs::hard_link(&renamed, &linked).unwrap();
    for exe in [&renamed, &linked] {
        let st = Command::new(exe).args(["-c", "true"]).status().unwrap();
        assert!(st.success());
    }
    let s = wait_for_session(&state, "byinode", 2);
    for x in &s {
        wait_ended(x);
    }
    // A copy is another file: matched by its content's build-id once it appears where the rule
    // searches (resolved again within a few seconds).
    let copy = search.join("copy");
    copy_executable("/bin/dash", &copy);
    let t = Instant::now();
    while sessions(&state, "byid").is_empty() {
        assert!(t.elapsed() < PATIENCE, "copy never matched: {}", d.log());
        let st = Command::new(&copy).args(["-c", "true"]).status().unwrap();
        assert!(st.success());
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = d.stop();
    assert_eq!(sessions(&state, "byinode").len(), 2, "{log}");
    for x in sessions(&state, "byinode")
        .iter()
        .chain(&sessions(&state, "byid"))
    {
        wait_ended(x);
        verify_valid(x);
    }
}

/// A daemon watching one agent, `a`: a copy of dash at DIR/agent. Returns the daemon, its state
/// directory, the agent and the control socket.
fn one_agent_daemon(dir: &Path) -> (Daemon, PathBuf, PathBuf, PathBuf) {
    let state = dir.join("state");
    let agent = dir.join("agent");
    copy_executable("/bin/dash", &agent);
    let sock = dir.join("proctor.sock");
    let config = format!(
        "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n[[agent]]\nname = \"a\"\nexe = [\"{}\"]\n",
        state.display(),
        sock.display(),
        agent.display()
    );
    (
        Daemon::start(dir, &config, "/usr/bin:/bin"),
        state,
        agent,
        sock,
    )
}

#[test]
fn ctl_is_refused_from_inside_a_monitored_agent() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (d, state, agent, sock) = one_agent_daemon(dir.path());
    let out = Command::new(&agent)
        .arg("-c")
        .arg(format!(
            "{} ctl --socket {} list",
            bin().display(),
            sock.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("part of a monitored agent"), "{err}");
    let s = wait_for_session(&state, "a", 1);
    wait_ended(&s[0]);
    let log = d.stop();
    assert!(alerts(&s[0]).contains("PROCTOR_TAMPER"), "{log}");
    let recs = read_records(&s[0].join("audit.jsonl"));
    assert!(
        recs.iter()
            .any(|r| r["type"] == "tamper" && r["syscall"] == "control"),
        "a tamper record of the refused request"
    );
    verify_valid(&s[0]);
}

#[test]
fn the_socket_group_may_list_others_may_not_and_sighup_reloads_the_rules() {
    require_root();
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    let sock = dir.path().join("proctor.sock");
    let first = dir.path().join("first");
    let late = dir.path().join("late");
    copy_executable("/bin/dash", &first);
    copy_executable("/bin/dash", &late);
    let head = format!(
        "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\nsocket_group = \"nogroup\"\n[[agent]]\nname = \"first\"\nexe = [\"{}\"]\n",
        state.display(),
        sock.display(),
        first.display()
    );
    let d = Daemon::start(dir.path(), &head, "/usr/bin:/bin");
    // nobody is in the socket group (its gid is nogroup's): allowed.
    let (mut nobody, _keep) = as_nobody();
    let out = nobody
        .args(["ctl", "--socket"])
        .arg(&sock)
        .arg("list")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("agents: first"));
    // A user outside the group cannot even connect (0660, root:nogroup).
    let out = Command::new("/usr/bin/setpriv")
        .args([
            "--reuid=65534",
            "--regid=1000",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(_keep.path().join("proctor"))
        .args(["ctl", "--socket"])
        .arg(&sock)
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    // SIGHUP: a rule added to the file is matched without a restart.
    std::fs::write(
        dir.path().join("proctor.toml"),
        format!(
            "{head}[[agent]]\nname = \"late\"\nexe = [\"{}\"]\n",
            late.display()
        ),
    )
    .unwrap();
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    unsafe { libc::kill(d.child.id() as i32, libc::SIGHUP) };
    d.wait_log("configuration reloaded: 2 agent rule(s)");
    let t = Instant::now();
    while sessions(&state, "late").is_empty() {
        assert!(t.elapsed() < PATIENCE, "{}", d.log());
        assert!(Command::new(&late)
            .args(["-c", "true"])
            .status()
            .unwrap()
            .success());
        std::thread::sleep(Duration::from_millis(200));
    }
    // A broken file on reload is refused; the running rules stay.
    std::fs::write(dir.path().join("proctor.toml"), "[[agent]]\nname = 1\n").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(d.child.id() as i32, libc::SIGHUP) };
    d.wait_log("reload refused");
    assert!(d.log().contains("proctor.toml:2:8:"), "{}", d.log());
    let log = d.stop();
    for x in sessions(&state, "late") {
        wait_ended(&x);
        verify_valid(&x);
    }
    assert!(!log.contains("panicked"), "{log}");
}

/// An agent of the daemon writes, renames and removes files in the daemon's state directory,
/// where every session's evidence lies: nothing refuses it (the agent runs as root), so each is
/// a tamper record and an alert of its session, as `run`'s guard makes of its `--out`.
#[test]
fn an_agent_touching_the_daemons_state_directory_is_a_tamper_record() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (d, state, agent, _) = one_agent_daemon(dir.path());
    let runs = state.join("runs");
    let out = Command::new(&agent)
        .arg("-c")
        .arg(format!(
            "sleep 0.5; echo x > {r}/planted && mv {r}/planted {r}/moved && rm {r}/moved",
            r = runs.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = wait_for_session(&state, "a", 1);
    wait_ended(&s[0]);
    let log = d.stop();
    let recs = read_records(&s[0].join("audit.jsonl"));
    let tampers: Vec<String> = recs
        .iter()
        .filter(|r| r["type"] == "tamper" && r["syscall"] == "evidence")
        .map(|r| r["detail"].as_str().unwrap_or("").to_string())
        .collect();
    for what in ["write-open of", "rename of", "unlink of"] {
        assert!(
            tampers.iter().any(|t| t.starts_with(what)),
            "{what}: {tampers:?} {log}"
        );
    }
    assert!(alerts(&s[0]).contains("PROCTOR_TAMPER"), "{log}");
    verify_valid(&s[0]);
}

#[test]
fn ctl_contain_kill_ends_one_session_tree_and_is_recorded() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sock = dir.path().join("proctor.sock");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    copy_executable("/bin/dash", &a);
    copy_executable("/bin/dash", &b);
    let config = format!(
        "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n[[agent]]\nname = \"a\"\nexe = [\"{}\"]\n[[agent]]\nname = \"b\"\nexe = [\"{}\"]\n",
        state.display(),
        sock.display(),
        a.display(),
        b.display()
    );
    let d = Daemon::start(dir.path(), &config, "/usr/bin:/bin");
    // A tree that keeps forking, and a bystander session that must survive.
    let mut ta = KillOnDrop::new(
        Command::new(&a)
            .args(["-c", "sleep 60 & while true; do sleep 0.2; done"])
            .spawn()
            .unwrap(),
    );
    let mut tb = KillOnDrop::new(Command::new(&b).args(["-c", "sleep 6"]).spawn().unwrap());
    let sa = wait_for_session(&state, "a", 1);
    wait_for_session(&state, "b", 1);
    let id = sa[0].file_name().unwrap().to_string_lossy().into_owned();
    let out = proctor()
        .args(["ctl", "--socket"])
        .arg(&sock)
        .args(["contain", &id, "--kill"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Instant::now();
    let status = loop {
        if let Some(s) = ta.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < PATIENCE, "the tree was not killed");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    wait_ended(&sa[0]);
    assert!(
        tb.try_wait().unwrap().is_none(),
        "the other session's agent was touched"
    );
    let recs = read_records(&sa[0].join("audit.jsonl"));
    let c = recs
        .iter()
        .find(|r| r["type"] == "containment")
        .expect("a containment record");
    assert_eq!(c["action"], "kill");
    assert_eq!(c["requested_by"]["uid"], 0);
    // An unknown session is refused, exit 2.
    let out = proctor()
        .args(["ctl", "--socket"])
        .arg(&sock)
        .args(["contain", "nope", "--kill"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no open session nope"));
    assert!(tb.wait().unwrap().success());
    let log = d.stop();
    verify_valid(&sa[0]);
    assert!(!log.contains("panicked"), "{log}");
}

/// The value of the sample line that starts with `series` (name and labels), if any.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with(' '))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn the_configured_outputs_and_metrics_serve_every_session_of_the_daemon() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = dir.path().join("shell-agent");
    copy_executable("/bin/dash", &agent);
    let syslog = proctor_testkit::receivers::rsyslogd(dir.path())
        .expect("rsyslogd: `make deps` installs rsyslog");
    let port = proctor_testkit::receivers::free_port(false);
    let config = format!(
        r#"
[daemon]
state_dir = "{}"
socket = "{}"

[[agent]]
name = "shell"
exe = ["{}"]
baseline = "2s"

[outputs]
syslog = "tcp://127.0.0.1:{}"

[metrics]
listen = "127.0.0.1:{port}"
"#,
        state.display(),
        dir.path().join("proctor.sock").display(),
        agent.display(),
        syslog.tcp,
    );
    let d = Daemon::start(dir.path(), &config, "/usr/bin:/bin");
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let (status, body) = http_get(&metrics, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(sample(&body, "proctor_sessions"), Some(0.0), "{body}");
    let (status, health) = http_get(&format!("http://127.0.0.1:{port}/healthz"), None);
    assert_eq!(status, 200, "{health}");

    // After its learning window the agent spawns a shell it never spawned: hijack.
    let run = Command::new(&agent)
        .arg("-c")
        .arg("ls / >/dev/null; sleep 4; /bin/sh -c 'cat /etc/hostname' >/dev/null; sleep 2")
        .spawn()
        .unwrap();
    let mut run = KillOnDrop::new(run);
    let s = wait_for_session(&state, "shell", 1);
    // The session's directory exists a moment before the gauges count it.
    wait_until("the daemon's gauges to count the session", || {
        let (_, body) = http_get(&metrics, None);
        sample(&body, "proctor_sessions") == Some(1.0)
    });
    let (_, body) = http_get(&metrics, None);
    assert_eq!(sample(&body, "proctor_sessions"), Some(1.0), "{body}");
    assert_eq!(sample(&body, "proctor_agents"), Some(1.0), "{body}");

    // The alert reaches rsyslogd, parsed as RFC 5424 with proctor's structured data.
    let lines = proctor_testkit::receivers::wait_lines(&syslog.out, 1, Duration::from_secs(60));
    assert!(
        lines.iter().any(|l| l.contains("LLM_AGENT_HIJACK")),
        "syslog got: {lines:?}"
    );
    assert!(run.wait().unwrap().success());
    wait_ended(&s[0]);
    wait_until("the daemon's gauges to drop the ended session", || {
        let (_, body) = http_get(&metrics, None);
        sample(&body, "proctor_sessions") == Some(0.0)
    });
    let (_, body) = http_get(&metrics, None);
    let counted = body
        .lines()
        .filter(|l| l.starts_with("proctor_alerts_total{") && l.contains("LLM_AGENT_HIJACK"))
        .count();
    assert!(counted >= 1, "no hijack alert counted: {body}");
    assert!(
        sample(&body, "proctor_records_total{kind=\"exec\"}").unwrap_or(0.0) >= 2.0,
        "{body}"
    );
    let log = d.stop();
    assert!(alerts(&s[0]).contains("LLM_AGENT_HIJACK"), "{log}");
    verify_valid(&s[0]);
}

/// A root filesystem for a container: the agent (a copy of dash, matched by the daemon by its
/// inode), a second dash for the hijack, busybox for the rest. Static busybox and dash's two
/// libraries make it complete, so podman needs no image.
fn container_rootfs(root: &Path) -> PathBuf {
    for d in [
        "bin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "lib64",
        "lib/x86_64-linux-gnu",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let agent = root.join("bin/agent");
    copy_executable("/bin/dash", &agent);
    copy_executable("/bin/dash", root.join("bin/dash"));
    copy_executable("/usr/bin/busybox", root.join("bin/busybox"));
    for applet in ["sh", "ls", "cat", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::copy(
        "/lib/x86_64-linux-gnu/libc.so.6",
        root.join("lib/x86_64-linux-gnu/libc.so.6"),
    )
    .unwrap();
    std::fs::copy(
        "/lib64/ld-linux-x86-64.so.2",
        root.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    agent
}

fn container_config(dir: &Path, state: &Path, rule: &str) -> String {
    format!(
        "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n\n[[agent]]\nname = \"boxed\"\n{rule}\nbaseline = \"2s\"\n",
        state.display(),
        dir.join("proctor.sock").display(),
    )
}

/// After the learning window the agent spawns a shell it never spawned before: a hijack.
const BOXED_SCRIPT: &str =
    "ls / >/dev/null; sleep 4; /bin/dash -c 'cat /etc/hostname' >/dev/null; sleep 1";

/// The alert and every record of the session name the container's id and runtime.
fn assert_contained(session: &Path, runtime: &str, id: &str, pod: Option<&str>, log: &str) {
    let recs = read_records(&session.join("audit.jsonl"));
    let alert = recs
        .iter()
        .find(|r| r["type"] == "alert" && r["kind"] == "LLM_AGENT_HIJACK")
        .unwrap_or_else(|| panic!("no hijack alert in the container's session: {log}"));
    assert_eq!(alert["container_id"], id, "{alert}");
    assert_eq!(alert["container_runtime"], runtime, "{alert}");
    assert_eq!(alert["pod_uid"].as_str(), pod, "{alert}");
    let line = alerts(session);
    assert!(line.contains(id), "alerts.jsonl: {line}");
    // Its incident's records name the container too.
    let inc = alert["incident"]
        .as_str()
        .expect("the alert joined an incident");
    let incidents: Vec<_> = recs
        .iter()
        .filter(|r| r["type"] == "incident" && r["id"] == inc)
        .collect();
    assert!(!incidents.is_empty(), "no record of incident {inc}: {log}");
    for i in incidents {
        assert_eq!(i["container_id"], id, "{i}");
        assert_eq!(i["container_runtime"], runtime, "{i}");
        assert_eq!(i["pod_uid"].as_str(), pod, "{i}");
    }
    let execs: Vec<_> = recs.iter().filter(|r| r["type"] == "exec").collect();
    assert!(!execs.is_empty());
    for e in execs {
        assert_eq!(e["container_id"], id, "{e}");
    }
    verify_valid(session);
}

/// A real podman container (podman from Debian, on a local root filesystem: no image pull),
/// whose agent the daemon matches by executable: its alert carries the id podman reports.
#[test]
fn an_agent_in_a_podman_container_is_matched_and_its_alert_names_the_container() {
    require_root();
    assert!(
        Command::new("podman").arg("--version").output().is_ok(),
        "podman is needed (make deps installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let root = dir.path().join("rootfs");
    let agent = container_rootfs(&root);
    let rule = format!("exe = [\"{}\"]", agent.display());
    let d = Daemon::start(
        dir.path(),
        &container_config(dir.path(), &state, &rule),
        "/usr/bin:/bin",
    );
    let cidfile = dir.path().join("cid");
    // runc: crun refuses a hybrid cgroup host whose v2 side has a controller (as here).
    // Open files: podman's default is above our hard limit, which root cannot raise without
    // CAP_SYS_RESOURCE; ours is taken.
    let limit = |r| {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid rlimit to fill.
        assert_eq!(unsafe { libc::getrlimit(r, &mut l) }, 0);
        format!("{}:{}", l.rlim_cur, l.rlim_max)
    };
    let out = Command::new("podman")
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .args(["run", "--rm", "--ulimit"])
        .arg(format!("nofile={}", limit(libc::RLIMIT_NOFILE)))
        // Processes: podman's conmon runs the container's init with a lower hard limit than
        // ours; root's processes are exempt from this limit anyway.
        .args(["--ulimit", "nproc=1024:1024"])
        .arg("--cidfile")
        .arg(&cidfile)
        .arg("--rootfs")
        .arg(&root)
        .args(["/bin/agent", "-c", BOXED_SCRIPT])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = std::fs::read_to_string(&cidfile)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let s = wait_for_session(&state, "boxed", 1);
    wait_ended(&s[0]);
    let log = d.stop();
    assert_contained(&s[0], "podman", &id, None, &log);
}

/// A Kubernetes pod's container cgroup as the kubelet's cgroupfs driver names it
/// (`kubepods/burstable/pod<UID>/<ID>`), built here under a cgroup of the test's own with a
/// real process in it: the alert carries the pod uid and the container id, and a sub-cgroup
/// the "container" makes, named like another container, does not change them.
#[test]
fn an_agent_in_a_kubernetes_style_cgroup_carries_pod_and_container() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cg = test_cgroup();
    let pod = "5d8e2f1a-3b4c-4d5e-8f90-a1b2c3d4e5f6";
    let id = "3f1c8e2a9b7d4c6e5f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a";
    let forged = "a".repeat(64);
    let inner = cg
        .path
        .join(format!("kubepods/burstable/pod{pod}/{id}/docker/{forged}"));
    std::fs::create_dir_all(&inner).unwrap();
    let rule = format!("cgroup = [\"{}\"]", cg.rel);
    let d = Daemon::start(
        dir.path(),
        &container_config(dir.path(), &state, &rule),
        "/usr/bin:/bin",
    );
    let agent = dir.path().join("agent");
    copy_executable("/bin/dash", &agent);
    let run = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec {} -c \"{}\"",
            inner.display(),
            agent.display(),
            BOXED_SCRIPT.replace("'", "\\\"")
        ))
        .status()
        .unwrap();
    assert!(run.success());
    let s = wait_for_session(&state, "boxed", 1);
    wait_ended(&s[0]);
    let log = d.stop();
    assert_contained(&s[0], "cri", id, Some(pod), &log);
    // Leave the test cgroup removable: deepest first.
    let mut p = inner.clone();
    while p != cg.path {
        let _ = std::fs::remove_dir(&p);
        p.pop();
    }
}

/// `ctl mode`: an open session is named and answered; a mode the kernel cannot hold for this
/// session (its agent is rule 33: only the first 32 rules have an exec deny list in the kernel)
/// is refused with the reason and the session stays in audit (nothing recorded as if in
/// force); an unknown session is an error naming it.
#[test]
fn ctl_mode_names_the_session_and_refuses_modes_without_a_layer() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = dir.path().join("mode-agent");
    copy_executable("/bin/dash", &agent);
    let sock = dir.path().join("proctor.sock");
    let rule = format!("exe = [\"{}\"]", agent.display());
    // 32 rules for binaries not installed (yet), then the agent's.
    let others: String = (1..=32)
        .map(|i| {
            format!(
                "[[agent]]\nname = \"absent{i}\"\nexe = [\"{}\"]\n",
                dir.path().join(format!("absent{i}")).display()
            )
        })
        .collect();
    let config = container_config(dir.path(), &state, &rule).replacen(
        "[[agent]]\nname = \"boxed\"",
        &format!("{others}[[agent]]\nname = \"boxed\""),
        1,
    );
    let d = Daemon::start(dir.path(), &config, "/usr/bin:/bin");
    let mut child = KillOnDrop::new(
        Command::new(&agent)
            .arg("-c")
            .arg(format!(
                "{} ctl --socket {} mode any-session enforce 2>{}; sleep 6",
                proctor().get_program().to_string_lossy(),
                sock.display(),
                dir.path().join("inside.err").display()
            ))
            .spawn()
            .unwrap(),
    );
    let s = wait_for_session(&state, "boxed", 1);
    let id = s[0].file_name().unwrap().to_string_lossy().into_owned();
    let ctl = |args: &[&str]| {
        proctor()
            .args(["ctl", "--socket"])
            .arg(&sock)
            .args(args)
            .output()
            .unwrap()
    };
    let out = ctl(&["mode", &id, "audit"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("already"));
    for mode in ["enforce", "shadow"] {
        let out = ctl(&["mode", &id, mode]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert!(
            err.contains("stays in audit mode: its agent is rule 33")
                && err.contains("only the first 32 rules have an exec deny list"),
            "{mode}: {err}"
        );
    }
    let out = ctl(&["mode", "no-such-session", "audit"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-session"));
    let list = ctl(&["list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["sessions"][0]["mode"], "audit", "{list}");
    child.kill().ok();
    wait_ended(&s[0]);
    let log = d.stop();
    let recs = read_records(&s[0].join("audit.jsonl"));
    assert!(
        !recs.iter().any(|r| r["type"] == "mode_change"),
        "a refused mode is not recorded as a change: {log}"
    );
    // From inside the agent: refused by peer credentials and recorded as tampering.
    let inside = std::fs::read_to_string(dir.path().join("inside.err")).unwrap();
    assert!(inside.contains("part of a monitored agent"), "{inside}");
    assert!(
        recs.iter().any(|r| r["type"] == "tamper"
            && r["detail"].as_str().unwrap_or("").contains("session_mode")),
        "{log}"
    );
    verify_valid(&s[0]);
}

/// Per-session mode: one daemon, two agents whose policies both refuse one binary. Only the
/// session switched to enforce has its exec of that binary killed before it runs (a `blocked`
/// decision and an EXEC_BLOCKED alert in its own log); the other session's identical exec runs.
/// The answer names what of the policy a daemon session cannot enforce (network egress).
#[test]
fn ctl_mode_enforce_blocks_in_that_session_only() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sock = dir.path().join("proctor.sock");
    let forbidden = dir.path().join("forbidden");
    copy_executable("/usr/bin/id", &forbidden);
    let mut config = format!(
        "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n",
        state.display(),
        sock.display()
    );
    let go = dir.path().join("go");
    let mut children = Vec::new();
    for name in ["a", "b"] {
        let exe = dir.path().join(name);
        copy_executable("/bin/dash", &exe);
        let pdir = dir.path().join(format!("policy-{name}"));
        std::fs::create_dir(&pdir).unwrap();
        let policy = PolicyBuilder::new()
            .block_exec([&forbidden])
            .network(Verdict::Block)
            .write(&pdir);
        config.push_str(&format!(
            "[[agent]]\nname = \"{name}\"\nexe = [\"{}\"]\npolicy = \"{policy}\"\n",
            exe.display()
        ));
        let script = format!(
            "while [ ! -e {go} ]; do sleep 0.1; done; {forbidden} >/dev/null; echo $? > {status}; sleep 1",
            go = go.display(),
            forbidden = forbidden.display(),
            status = dir.path().join(format!("{name}.status")).display()
        );
        children.push((name, exe, script));
    }
    let d = Daemon::start(dir.path(), &config, "/usr/bin:/bin");
    let mut running: Vec<KillOnDrop> = children
        .iter()
        .map(|(_, exe, script)| {
            KillOnDrop::new(Command::new(exe).arg("-c").arg(script).spawn().unwrap())
        })
        .collect();
    let sa = wait_for_session(&state, "a", 1);
    let sb = wait_for_session(&state, "b", 1);
    let id = sa[0].file_name().unwrap().to_string_lossy().into_owned();
    let out = proctor()
        .args(["ctl", "--socket"])
        .arg(&sock)
        .args(["mode", &id, "enforce"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("mode audit -> enforce"), "{said}");
    assert!(
        said.contains("not enforced: network egress"),
        "the answer names the layer a daemon session cannot have: {said}"
    );
    std::fs::write(&go, "").unwrap();
    for c in &mut running {
        assert!(c.wait().unwrap().code().is_some());
    }
    let status = |name: &str| {
        std::fs::read_to_string(dir.path().join(format!("{name}.status")))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(
        status("a"),
        "137",
        "the enforced session's exec was killed (SIGKILL)"
    );
    assert_eq!(status("b"), "0", "the audit session's identical exec ran");
    wait_ended(&sa[0]);
    wait_ended(&sb[0]);
    let log = d.stop();
    let ra = read_records(&sa[0].join("audit.jsonl"));
    let decisions: Vec<_> = ra.iter().filter(|r| r["type"] == "decision").collect();
    assert_eq!(decisions.len(), 1, "{decisions:?} {log}");
    assert_eq!(decisions[0]["verdict"], "blocked");
    assert_eq!(decisions[0]["what"], "exec");
    assert!(decisions[0]["kseq"].as_u64().is_some(), "{}", decisions[0]);
    assert!(ra
        .iter()
        .any(|r| r["type"] == "mode_change" && r["to"] == "enforce"));
    assert!(
        alerts(&sa[0]).contains("EXEC_BLOCKED"),
        "{}",
        alerts(&sa[0])
    );
    let rb = read_records(&sb[0].join("audit.jsonl"));
    assert!(
        !rb.iter().any(|r| r["type"] == "decision"),
        "the other session decided nothing: {log}"
    );
    assert!(!alerts(&sb[0]).contains("EXEC_BLOCKED"));
    verify_valid(&sa[0]);
    verify_valid(&sb[0]);
}

/// A session the daemon cannot open (here its directory cannot be made) still took a kernel
/// session slot at the agent's exec. More such failures than the kernel has slots, then one
/// agent whose session opens: it must still get a slot (its records numbered, nothing counted as
/// `session_full`), so the failed trees gave theirs back when they exited.
#[test]
fn sessions_that_cannot_be_opened_give_their_kernel_slots_back() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = dir.path().join("tiny-agent");
    copy_executable("/bin/true", &agent);
    let config = format!(
        "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n\n[[agent]]\nname = \"tiny\"\nexe = [\"{}\"]\n",
        state.display(),
        dir.path().join("proctor.sock").display(),
        agent.display()
    );
    // A file where the agent's session directories go.
    std::fs::create_dir_all(state.join("runs")).unwrap();
    std::fs::write(state.join("runs/tiny"), "").unwrap();
    let d = Daemon::start(dir.path(), &config, "/usr/bin:/bin");
    // The kernel has 254 session slots.
    let failures = 300;
    for _ in 0..failures {
        assert!(Command::new(&agent).status().unwrap().success());
    }
    let t = Instant::now();
    while d.log().matches("cannot open a session").count() < failures {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the daemon did not try every session: {}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(state.join("runs/tiny")).unwrap();
    // Give the daemon a moment to read the last exits, then an agent whose session opens.
    std::thread::sleep(Duration::from_secs(1));
    assert!(Command::new(&agent).status().unwrap().success());
    let s = wait_for_session(&state, "tiny", 1);
    wait_ended(&s[0]);
    let log = d.stop();
    let recs = read_records(&s[0].join("audit.jsonl"));
    let exec = recs
        .iter()
        .find(|r| r["type"] == "exec")
        .unwrap_or_else(|| panic!("no exec record: {log}"));
    assert!(
        exec["kslot"].as_u64().is_some_and(|k| k >= 2),
        "the agent got no kernel slot: {exec}\n{}",
        log.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    assert!(
        !recs
            .iter()
            .any(|r| r["type"] == "lost" && r["kind"] == "session_full"),
        "slots ran out"
    );
    verify_valid(&s[0]);
}
