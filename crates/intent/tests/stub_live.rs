//! demo/llm_stub.py and demo/llm_client.py still talk real TLS to each other, and what the stub
//! records is understood by the tracker. Needs python3 and the openssl CLI (no root); says so and
//! skips when they are missing.

use proctor_intent::{LlmTracker, Redactor};
use proctor_model::{Event, TlsDirection};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Ends the stub with SIGTERM (so it removes its temporary certificate directory), then SIGKILL
/// if it is still there after a few seconds.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..30 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn stub_and_client_exchange_is_understood() {
    if !have("python3", "--version") || !have("openssl", "version") {
        eprintln!("skipped: python3 and the openssl CLI are needed to run demo/llm_stub.py");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rec = std::env::temp_dir().join(format!("proctor-intent-stub-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&rec);
    let mut stub = KillOnDrop(
        Command::new("python3")
            .arg(root.join("demo/llm_stub.py"))
            .args(["--port", "0", "--record"])
            .arg(&rec)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start demo/llm_stub.py"),
    );
    let mut out = BufReader::new(stub.0.stdout.take().expect("stub stdout"));
    let mut port = String::new();
    let mut cert = String::new();
    out.read_line(&mut port).expect("stub prints its port");
    out.read_line(&mut cert)
        .expect("stub prints its certificate");
    let (port, cert) = (port.trim().to_string(), PathBuf::from(cert.trim()));
    assert!(port.parse::<u16>().is_ok(), "port line: {port:?}");

    let runs: [&[&str]; 3] = [
        &["--api", "openai", "--stream"],
        &["--api", "anthropic", "--stream"],
        &["--api", "anthropic", "--count", "2"],
    ];
    for args in runs {
        let o = Command::new("python3")
            .arg(root.join("demo/llm_client.py"))
            .args(["--port", &port, "--cafile"])
            .arg(&cert)
            .args(args)
            .output()
            .expect("run demo/llm_client.py");
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "client {args:?}: {stdout} {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            stdout.contains("cat ~/.aws/credentials"),
            "client {args:?}: {stdout}"
        );
    }
    drop(stub);

    let r = Redactor::new();
    let mut responses = 0;
    for n in 1..=runs.len() {
        let send = std::fs::read(rec.join(format!("conn-{n}.send"))).expect("recorded send");
        let recv = std::fs::read(rec.join(format!("conn-{n}.recv"))).expect("recorded recv");
        let mut t = LlmTracker::new();
        let mut ev = t.feed(1, n as u64, TlsDirection::Send, &send, false);
        ev.extend(t.feed(1, n as u64, TlsDirection::Recv, &recv, false));
        for e in &ev {
            if let Event::LlmResponse(resp) = e {
                responses += 1;
                assert_eq!(resp.tool_calls[0].name, "run_shell");
                assert!(resp.tool_calls[0]
                    .arguments
                    .contains("cat ~/.aws/credentials"));
            }
        }
        let (red, n) = r.redact(&send);
        assert!(n >= 1);
        assert!(!String::from_utf8_lossy(&red).contains("stubSECRET"));
    }
    assert_eq!(responses, 4);
    let _ = std::fs::remove_dir_all(&rec);
}
