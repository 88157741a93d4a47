//! Real-kernel tests of `proctor daemon`: agents found by the kernel at exec (by executable
//! identity, by build-id, by cgroup), a session directory each with its own evidence, alerts in
//! the session that raised them only, and `proctor ctl list` over the daemon's socket.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon on `config`, stopped (SIGTERM) and reaped at drop.
struct Daemon {
    child: KillOnDrop,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, config: &str, path_env: &str) -> Daemon {
        let cfg = dir.join("proctor.toml");
        std::fs::write(&cfg, config).unwrap();
        let log = dir.join("daemon.log");
        let child = proctor()
            .args(["daemon", "--config"])
            .arg(&cfg)
            .env("PATH", path_env)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start proctor daemon");
        let d = Daemon {
            child: KillOnDrop::new(child),
            log,
        };
        d.wait_log("matched in the kernel");
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, what: &str) {
        let t = Instant::now();
        while !self.log().contains(what) {
            assert!(
                t.elapsed() < PATIENCE,
                "daemon never said {what:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) -> String {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "daemon exit {status:?}: {}", self.log());
        self.log()
    }
}

/// The session directories of `agent` under the state directory.
fn sessions(state: &Path, agent: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(state.join("runs").join(agent))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn alerts(session: &Path) -> String {
    std::fs::read_to_string(session.join("alerts.jsonl")).unwrap_or_default()
}

fn verify_valid(session: &Path) {
    let out = proctor().arg("verify").arg(session).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify {}: {text}",
        session.display()
    );
    assert!(text.contains("result: VALID"), "{text}");
}

/// A cgroup of our own under the cgroup2 mount, removed at drop.
struct TestCgroup {
    path: PathBuf,
    rel: String,
}

impl TestCgroup {
    fn new() -> TestCgroup {
        let mnt = proctor_sensor::features::mount_of("cgroup2").expect("a cgroup2 mount");
        let rel = format!("/proctor-daemon-test-{}.service", std::process::id());
        let path = Path::new(&mnt).join(rel.trim_start_matches('/'));
        std::fs::create_dir(&path).expect("create a test cgroup");
        TestCgroup { path, rel }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn wait_for_session(state: &Path, agent: &str, n: usize) -> Vec<PathBuf> {
    let t = Instant::now();
    loop {
        let s = sessions(state, agent);
        if s.len() >= n {
            return s;
        }
        assert!(t.elapsed() < PATIENCE, "no session of {agent}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Until the session's `sensor_stop` is written.
fn wait_ended(session: &Path) {
    let t = Instant::now();
    while !std::fs::read_to_string(session.join("audit.jsonl"))
        .unwrap_or_default()
        .contains("\"type\":\"sensor_stop\"")
    {
        assert!(
            t.elapsed() < PATIENCE,
            "session {} never ended",
            session.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_agents_by_executable_and_by_cgroup_get_their_own_sessions() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = dir.path().join("shell-agent");
    std::fs::copy("/bin/dash", &agent).unwrap();
    let cg = TestCgroup::new();
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
    let out = proctor()
        .args(["ctl", "--socket"])
        .arg(&sock)
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    std::fs::copy("/bin/dash", &agent).unwrap();
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
    std::fs::copy("/bin/dash", &copy).unwrap();
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

#[test]
fn ctl_is_refused_from_inside_a_monitored_agent() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = dir.path().join("agent");
    std::fs::copy("/bin/dash", &agent).unwrap();
    let sock = dir.path().join("proctor.sock");
    let config = format!(
        "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n[[agent]]\nname = \"a\"\nexe = [\"{}\"]\n",
        state.display(),
        sock.display(),
        agent.display()
    );
    let d = Daemon::start(dir.path(), &config, "/usr/bin:/bin");
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
    std::fs::copy("/bin/dash", &first).unwrap();
    std::fs::copy("/bin/dash", &late).unwrap();
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

#[test]
fn ctl_contain_kill_ends_one_session_tree_and_is_recorded() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sock = dir.path().join("proctor.sock");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    std::fs::copy("/bin/dash", &a).unwrap();
    std::fs::copy("/bin/dash", &b).unwrap();
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

/// GET with curl: status and body.
fn http_get(url: &str) -> (u16, String) {
    let out = Command::new("/usr/bin/curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl (make deps installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
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
    std::fs::copy("/bin/dash", &agent).unwrap();
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
    let (status, body) = http_get(&metrics);
    assert_eq!(status, 200, "{body}");
    assert_eq!(sample(&body, "proctor_sessions"), Some(0.0), "{body}");
    let (status, health) = http_get(&format!("http://127.0.0.1:{port}/healthz"));
    assert_eq!(status, 200, "{health}");

    // After its learning window the agent spawns a shell it never spawned: hijack.
    let run = Command::new(&agent)
        .arg("-c")
        .arg("ls / >/dev/null; sleep 4; /bin/sh -c 'cat /etc/hostname' >/dev/null; sleep 2")
        .spawn()
        .unwrap();
    let mut run = KillOnDrop::new(run);
    let s = wait_for_session(&state, "shell", 1);
    let (_, body) = http_get(&metrics);
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
    let (_, body) = http_get(&metrics);
    assert_eq!(sample(&body, "proctor_sessions"), Some(0.0), "{body}");
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
