//! `proctor` as the tests run it: the binary cargo built, `proctor run` on a command with its
//! records read back, the trigger-then-expect harness (start proctor on a trigger process, then
//! expect the event for that pid, asserted on typed [`Record`]s), and the privilege helpers.
//! Real-kernel tests need root and fail loudly without it: a sensor test that skips would hide
//! a broken sensor.

use proctor_model::{Event, Record};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The proctor binary cargo built for this test run. Cargo builds a package's binaries before
/// its integration tests and puts them one level above the test executable
/// (`target/<profile>/deps/TEST` -> `target/<profile>/proctor`).
pub fn bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps")
        .join("proctor");
    assert!(
        bin.exists(),
        "no proctor binary at {} (run the tests of the proctor crate: cargo builds it for them)",
        bin.display()
    );
    bin
}

/// `proctor` with no arguments yet.
pub fn proctor() -> Command {
    Command::new(bin())
}

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "real-kernel tests load eBPF programs and must run as root (CI does); run `make test` as root"
    );
}

/// The feature named `name` in `proctor doctor --json` (doctor loads proctor's programs for
/// real, so this is what this kernel runs); panics naming doctor's output when it has none.
pub fn doctor_feature(name: &str) -> Value {
    let out = proctor().args(["doctor", "--json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "proctor doctor --json: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v["features"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("doctor names no feature {name:?}: {v}"))
}

/// Whether this test runs as root (tests of the unprivileged path adapt: as root they drop to
/// nobody with [`as_nobody`], as a normal user they already are unprivileged).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Copies an executable for a test to run, without the `Text file busy` race: a file written
/// by this (multi-threaded) test process can be held open for writing by a child another test
/// thread forks at that moment, and `execve` of it fails with ETXTBSY until that child execs.
/// `cp` writes it in its own process instead, which has exited before anyone runs the copy.
pub fn copy_executable(src: impl AsRef<Path>, dst: impl AsRef<Path>) {
    let (src, dst) = (src.as_ref(), dst.as_ref());
    let status = Command::new("cp")
        .arg("--")
        .arg(src)
        .arg(dst)
        .status()
        .expect("running cp");
    assert!(
        status.success(),
        "cp {} {} failed: {status}",
        src.display(),
        dst.display()
    );
}

/// The lock the tests that run apt-get, and the VM tier's set-up (tests/vm/run.sh), hold around
/// it: `make test` runs them side by side, and apt-get fails when it finds dpkg locked. Held
/// until the returned file is dropped.
pub fn apt_lock() -> std::fs::File {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/proctor-tests-apt.lock")
        .expect("open the apt lock");
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    f
}

/// A copy of the proctor binary that any user can run (the build tree may sit in a directory
/// only root can enter, e.g. a `mktemp -d` clone), and the `setpriv` command that runs it as
/// nobody with no capabilities. Keep the returned directory alive while the command runs.
pub fn as_nobody() -> (Command, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod tempdir");
    let copy = dir.path().join("proctor");
    copy_executable(bin(), &copy);
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .expect("chmod the copy");
    let mut cmd = Command::new("/usr/bin/setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(copy);
    (cmd, dir)
}

pub struct Run {
    pub out: Output,
    pub dir: tempfile::TempDir,
    pub records: Vec<Value>,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    pub fn of_type(&self, ty: &str) -> Vec<&Value> {
        self.records.iter().filter(|r| r["type"] == ty).collect()
    }

    /// The run's `decision` records (kernel enforcement: blocked, would block).
    pub fn decisions(&self) -> Vec<&Value> {
        self.of_type("decision")
    }

    /// What the agent printed, line by line.
    pub fn stdout_lines(&self) -> Vec<String> {
        text(&self.out.stdout).lines().map(String::from).collect()
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// The alerts of the run (DIR/alerts.jsonl), none if it has none.
    pub fn alerts(&self) -> Vec<Value> {
        let p = self.dir.path().join("alerts.jsonl");
        if p.exists() {
            read_records(&p)
        } else {
            Vec::new()
        }
    }
}

impl Run {
    /// The run's observations as typed records, in log order. Other record types
    /// (sensor_start, decision, alert, chain bookkeeping) are skipped; a line of an observation
    /// type that does not parse as one fails the test.
    pub fn observations(&self) -> Vec<Record> {
        self.records
            .iter()
            .filter_map(|v| match serde_json::from_value::<Record>(v.clone()) {
                Ok(r) if r.event != Event::Other => Some(r),
                Ok(_) => None,
                Err(e) => match serde_json::from_value::<Event>(v.clone()) {
                    Ok(Event::Other) => None,
                    _ => panic!(
                        "a {} record that is not a valid observation ({e}): {v}",
                        v["type"]
                    ),
                },
            })
            .collect()
    }

    /// The pid of the process `proctor run` started (the trigger): the first exec's.
    pub fn agent_pid(&self) -> u32 {
        self.observations()
            .iter()
            .find(|r| matches!(r.event, Event::Exec(_)))
            .unwrap_or_else(|| panic!("no exec recorded; stderr: {}", self.stderr()))
            .pid
    }

    /// Every observation of process `pid`.
    pub fn events_from_pid(&self, pid: u32) -> Vec<Record> {
        self.observations()
            .into_iter()
            .filter(|r| r.pid == pid)
            .collect()
    }

    /// Expect an event from `pid`: the first of its observations that `want` accepts. Fails
    /// the test naming `what` and listing what that pid did instead.
    pub fn expect_event_from_pid(
        &self,
        pid: u32,
        what: &str,
        want: impl Fn(&Event) -> bool,
    ) -> Record {
        self.expect_from_pid(pid, what, |r| want(&r.event).then(|| r.clone()))
    }

    /// Like [`Run::expect_event_from_pid`], handing back what `pick` takes from the record
    /// (typically the event's own struct: `|r| match &r.event { Event::Connect(c) => Some(c.clone()), _ => None }`).
    pub fn expect_from_pid<T>(
        &self,
        pid: u32,
        what: &str,
        pick: impl Fn(&Record) -> Option<T>,
    ) -> T {
        let mine = self.events_from_pid(pid);
        mine.iter().find_map(&pick).unwrap_or_else(|| {
            let seen: Vec<String> = mine.iter().map(|r| format!("{:?}", r.event)).collect();
            panic!(
                "expected {what} from pid {pid}; it did:\n  {}\nstderr: {}",
                seen.join("\n  "),
                self.stderr()
            )
        })
    }
}

/// Start proctor on a trigger command (`proctor run -- CMD`) and wait for it to end: then
/// expect events with [`Run::expect_event_from_pid`], the trigger's own pid being
/// [`Run::agent_pid`].
pub fn trigger(cmd: &[&str]) -> Run {
    run_under(&[], cmd)
}

/// The stderr of a command that failed with an error message, after checking it did not panic.
pub fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "panic: {err}");
    err
}

/// How long a test waits for something a running proctor or agent is expected to do (start,
/// write a record, print a line) before it fails. Generous on purpose: on a loaded machine (the
/// suite runs several test binaries at once, on two cores shared with other work) starting
/// proctor alone can take seconds, and a wait is a condition polled, never a fixed delay, so
/// the deadline costs nothing when things are quick.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(90);

/// Poll `probe` every 50 ms until it gives a value; fail naming `what` after [`PATIENCE`].
pub fn wait_for_some<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {} s",
            PATIENCE.as_secs()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Poll `cond` every 50 ms until it holds; fail naming `what` after [`PATIENCE`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    wait_for_some(what, || cond().then_some(()))
}

/// Wait until `path` exists (a running proctor's pid file, a marker).
pub fn wait_for(path: &Path, what: &str) {
    wait_until(
        &format!("{what}: {} never appeared", path.display()),
        || path.exists(),
    )
}

/// Wait until the audit log at `path` (live, perhaps not created yet) holds a record `want`
/// accepts, and return it.
pub fn wait_for_record(path: &Path, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    wait_for_some(&format!("{what} in {}", path.display()), || {
        if !path.exists() {
            return None;
        }
        read_records(path).into_iter().find(|r| want(r))
    })
}

/// The lines a child writes to its stdout, read as they come (a thread reads the pipe), so a
/// test can wait for the agent to say it reached a point instead of sleeping.
pub struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
}

impl Lines {
    /// Take `child`'s piped stdout.
    pub fn of(child: &mut std::process::Child) -> Lines {
        Lines::new(
            child
                .stdout
                .take()
                .expect("the child's stdout is piped and not taken yet"),
        )
    }

    /// The lines of any pipe (a child's stderr).
    pub fn new(out: impl std::io::Read + Send + 'static) -> Lines {
        use std::io::BufRead;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    /// The next line; fails naming `what` if none comes within [`PATIENCE`] or stdout closes.
    pub fn next(&self, what: &str) -> String {
        match self.rx.recv_timeout(PATIENCE) {
            Ok(l) => l,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("{what}: no line within {} s", PATIENCE.as_secs())
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!("{what}: stdout closed first")
            }
        }
    }

    /// Read lines until one contains `what`; return them all, that one last.
    pub fn until(&self, what: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let l = self.next(&format!("a line with {what:?} after {seen:?}"));
            let found = l.contains(what);
            seen.push(l);
            if found {
                return seen;
            }
        }
    }

    /// Every line still to come, until stdout closes (call once the child has exited).
    pub fn rest(self) -> Vec<String> {
        self.rx.iter().collect()
    }
}

/// The records of an audit log, which may be live: a last line proctor is still writing (no
/// newline yet) is not read.
pub fn read_records(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    complete
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("{} line {}: invalid JSON ({e}): {l}", path.display(), i + 1)
            })
        })
        .collect()
}

/// `proctor run --out DIR [extra] -- cmd...`, not started yet (a test adds its environment,
/// pipes or process group).
pub fn run_command(dir: &Path, extra: &[&str], cmd: &[&str]) -> Command {
    let mut c = proctor();
    c.arg("run")
        .arg("--out")
        .arg(dir)
        .args(extra)
        .arg("--")
        .args(cmd);
    c
}

impl Run {
    /// A finished run: its output and whatever DIR/audit.jsonl holds.
    pub fn finished(out: Output, dir: tempfile::TempDir) -> Run {
        let audit = dir.path().join("audit.jsonl");
        let records = if audit.exists() {
            read_records(&audit)
        } else {
            Vec::new()
        };
        Run { out, dir, records }
    }
}

/// `proctor run --out <tmp> [extra] -- cmd...`
pub fn run_under(extra: &[&str], cmd: &[&str]) -> Run {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_command(dir.path(), extra, cmd)
        .output()
        .expect("start proctor");
    Run::finished(out, dir)
}

/// Run a Python 3 script as the agent.
pub fn run_py(script: &str) -> Run {
    run_under(&[], &["/usr/bin/python3", "-c", script])
}

/// `proctor run --mode enforce --policy POLICY --out <tmp> -- cmd...`: an agent under a policy
/// whose blocks the kernel enforces.
pub fn run_enforced(policy: &str, cmd: &[&str]) -> Run {
    run_under(&["--mode", "enforce", "--policy", policy], cmd)
}

/// A throw-away HOME (`TMP/home`) holding the agent's project directory (`work`), where a test
/// plants the sensitive files enforcement must keep the agent out of: proctor resolves `~` in
/// the policy from the agent's HOME. TMP itself holds policy files and outputs.
pub struct AgentHome {
    tmp: tempfile::TempDir,
}

impl AgentHome {
    pub fn new() -> AgentHome {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("home/work")).expect("creating HOME/work");
        AgentHome { tmp }
    }

    /// The directory that holds HOME (for policy files and outputs).
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    pub fn home(&self) -> PathBuf {
        self.tmp.path().join("home")
    }

    /// The agent's working directory, HOME/work.
    pub fn work(&self) -> PathBuf {
        self.home().join("work")
    }

    /// Write `text` to HOME/`rel`, creating its directories; the file's path.
    pub fn file(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.home().join(rel);
        std::fs::create_dir_all(p.parent().expect("a file under HOME")).expect("mkdir -p");
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    }

    /// `proctor run --mode enforce [--policy FILE] --out <tmp> -- python3 -c SCRIPT` as an agent
    /// living here (HOME, and HOME/work as its working directory). No policy: the built-in one.
    pub fn enforce_py(&self, policy: Option<&str>, script: &str) -> Run {
        require_root();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = proctor();
        c.args(["run", "--mode", "enforce"]);
        if let Some(p) = policy {
            c.args(["--policy", p]);
        }
        let out = c
            .arg("--out")
            .arg(dir.path())
            .args(["--", "/usr/bin/python3", "-c", script])
            .env("HOME", self.home())
            .current_dir(self.work())
            .output()
            .expect("start proctor");
        Run::finished(out, dir)
    }
}

impl Default for AgentHome {
    fn default() -> AgentHome {
        AgentHome::new()
    }
}

/// Start `c` (a `proctor run` whose agent waits for the test) with stdout and stderr piped,
/// killed if the test fails before it is waited for.
pub fn spawn_piped(mut c: Command) -> KillOnDrop {
    use std::process::Stdio;
    KillOnDrop::new(
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start proctor"),
    )
}

/// The pid a running proctor wrote to OUT/proctor.pid (waits until it has).
pub fn proctor_pid(out: &Path) -> i32 {
    let path = out.join("proctor.pid");
    wait_for(&path, "proctor's pid file");
    std::fs::read_to_string(&path)
        .expect("reading proctor.pid")
        .trim()
        .parse()
        .expect("a pid in proctor.pid")
}

/// The `policy` records of an audit log (live or finished): the reloads that took effect.
pub fn policy_records(audit: &Path) -> Vec<Value> {
    read_records(audit)
        .into_iter()
        .filter(|r| r["type"] == "policy")
        .collect()
}

/// Lossy UTF-8 of a child's output.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A child process killed when a failing test unwinds, so no orphan keeps the harness waiting.
/// Derefs to the `Child`; `into_inner` hands it back (e.g. for `wait_with_output`).
pub struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    pub fn new(child: std::process::Child) -> KillOnDrop {
        KillOnDrop(Some(child))
    }

    pub fn into_inner(mut self) -> std::process::Child {
        self.0.take().expect("child present until dropped")
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.0.as_ref().expect("child present until dropped")
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("child present until dropped")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Records the evidence layer adds to keep the chain (not observations).
pub const CHAIN_TYPES: [&str; 3] = ["segment_start", "checkpoint", "certificate"];

/// The last record that is not chain bookkeeping (e.g. `sensor_stop` at the end of a run).
pub fn last_observation(recs: &[Value]) -> &Value {
    recs.iter()
        .rev()
        .find(|r| !CHAIN_TYPES.contains(&r["type"].as_str().unwrap_or("")))
        .expect("a record that is not chain bookkeeping")
}

/// Bytes of a lossless JSON byte string: a string, or {"b64": ...}.
pub fn bytes_of(v: &Value) -> Vec<u8> {
    use base64::Engine as _;
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Object(m) => base64::engine::general_purpose::STANDARD
            .decode(m["b64"].as_str().expect("b64 string"))
            .expect("valid base64"),
        other => panic!("not a byte string: {other}"),
    }
}

/// A cgroup of our own at the top of the cgroup2 mount `mnt` (the caller finds it:
/// `proctor_sensor::features::mount_of("cgroup2")`), named `name`, removed at drop.
pub struct TestCgroup {
    pub path: PathBuf,
    /// Its path inside the cgroup2 hierarchy, with the leading slash.
    pub rel: String,
}

impl TestCgroup {
    pub fn under(mnt: &str, name: &str) -> TestCgroup {
        let rel = format!("/{name}");
        let path = Path::new(mnt).join(name);
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
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
