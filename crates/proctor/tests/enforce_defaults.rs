//! Real-kernel tests of what `--mode enforce` refuses with no policy file (the built-in
//! policy): a credential read, a persistence write and a ptrace attach onto a process outside
//! the agent's tree, each refused in the kernel and recorded as a `decision`, while the agent's
//! ordinary work (reading and writing its project, tracing its own child) goes on.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_testkit::*;
use std::process::Command;

#[test]
fn default_enforce_refuses_credentials_persistence_and_outside_ptrace() {
    require_root();
    let agent = AgentHome::new();
    let home = agent.home();
    agent.file(".ssh/id_ed25519", "PRIVATE KEY");
    agent.file(".bashrc", "# rc\n");
    agent.file("work/notes.txt", "fine");
    // A process outside the agent, as a user's editor or another agent would be.
    let outside = KillOnDrop::new(Command::new("/bin/sleep").arg("60").spawn().unwrap());
    let target = outside.id();
    let script = format!(
        r#"
import ctypes, errno, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
def rd(p):
    try:
        open(p).read(); return 'read'
    except PermissionError:
        return 'EACCES'
def wr(p):
    try:
        open(p, 'a').write('evil\n'); return 'wrote'
    except PermissionError:
        return 'EACCES'
def attach(pid):
    if libc.ptrace(16, pid, None, None) != 0:
        return errno.errorcode[ctypes.get_errno()]
    os.waitpid(pid, 0)
    libc.ptrace(17, pid, None, None)
    return 'attached'
print(rd('{h}/.ssh/id_ed25519'), wr('{h}/.bashrc'), attach({target}), flush=True)
child = subprocess.Popen(['/bin/sleep', '30'])
print(rd('{h}/work/notes.txt'), wr('{h}/work/new.txt'), attach(child.pid), flush=True)
child.kill()
"#,
        h = home.display()
    );
    let r = agent.enforce_py(None, &script);
    let stderr = r.stderr();
    assert!(r.out.status.success(), "{stderr}");
    assert_eq!(
        r.stdout_lines(),
        vec!["EACCES EACCES EPERM", "read wrote attached"],
        "the key, the rc file and the outside process are refused; the project and the agent's own child are not\n{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(home.join(".bashrc")).unwrap(),
        "# rc\n"
    );
    let d = r.decisions();
    assert!(d.iter().all(|x| x["verdict"] == "blocked"), "{d:#?}");
    let opened = |suffix: &str| {
        d.iter().any(|x| {
            x["what"] == "open"
                && x["layer"] == "landlock"
                && x["path"].as_str().is_some_and(|p| p.ends_with(suffix))
        })
    };
    assert!(opened("/.ssh/id_ed25519"), "{d:#?}");
    assert!(opened("/.bashrc"), "{d:#?}");
    assert!(
        d.iter().any(|x| x["what"] == "ptrace"
            && x["layer"] == "landlock"
            && x["target_pid"] == target),
        "{d:#?}"
    );
    assert_eq!(d.len(), 3, "nothing else was refused: {d:#?}");
    assert!(
        stderr.contains("files: Landlock ABI") && stderr.contains("ptrace: Landlock refuses"),
        "the banner names the layers: {stderr}"
    );
    // Outside the agent, the key is readable as ever.
    assert_eq!(
        std::fs::read_to_string(home.join(".ssh/id_ed25519")).unwrap(),
        "PRIVATE KEY"
    );
}
