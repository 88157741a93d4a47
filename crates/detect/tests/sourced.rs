//! Write-then-run without an exec of the file: a shell sourcing a script the tree wrote, an
//! interpreter fed it on standard input, `eval` of its text, python's `exec(open(F).read())`.
//! Each is a causal cycle as `bash F` is; the agent's own shell snapshot and a virtual
//! environment's `activate` are not.

mod common;

use common::*;
use proctor_detect::Baseline;
use proctor_model::{Access, Record};

const SNAP: &str = "/home/ann/.claude/shell-snapshots/snapshot-bash-1-abc.sh";

/// A Claude Code session: its own script writes the snapshot, one tool call (pid 300) writes
/// `file`, a second (pid 301) runs `cmd` as Claude Code runs tool calls.
fn session(file: &str, cmd: &str, interp: (&str, &str)) -> Vec<Record> {
    let mut recs = claude_tool_shell("SNAPSHOT_FILE=/home/ann/.claude/shell-snapshots/x");
    recs.push(open(S + 3, 300, SNAP, Access::Write, true, (5, 60)));
    recs.push(open(S + 4, 300, file, Access::Write, true, (5, 61)));
    recs.push(fork(S + 5, AGENT, 301));
    let wrapped = format!("source {SNAP} 2>/dev/null || true && eval '{cmd}' < /dev/null");
    let argv: Vec<&str> = match interp.0 {
        "bash" => vec!["/bin/bash", "-c", &wrapped],
        "node" => vec![interp.1, "-e", cmd],
        _ => vec![interp.1, "-c", cmd],
    };
    let id = if interp.0 == "bash" { BASH_ID } else { (5, 11) };
    recs.push(exec(S + 6, 301, AGENT, interp.1, &argv, id));
    recs
}

fn cycles(recs: &[Record]) -> Vec<String> {
    let mut e = engine_judging(Baseline::builtin("claude-code").unwrap());
    let outs = feed(&mut e, recs);
    alerts(&outs)
        .into_iter()
        .filter(|a| a.kind == "CAUSAL_CYCLE_DETECTED")
        .map(|a| a.summary.clone())
        .collect()
}

#[test]
fn a_written_script_sourced_fed_or_evaluated_is_a_cycle() {
    let bash = ("bash", "/usr/bin/bash");
    for (file, cmd) in [
        ("/tmp/p.sh", ". /tmp/p.sh"),
        ("/work/proj/p.sh", "source ./p.sh arg"),
        ("/tmp/p.sh", "bash < /tmp/p.sh"),
        ("/tmp/p.sh", "cat /tmp/p.sh | sh"),
        ("/tmp/p.sh", "eval \"$(cat /tmp/p.sh)\""),
        ("/tmp/p.sh", "source <(cat /tmp/p.sh)"),
        ("/home/ann/p.sh", "cd /x && . ~/p.sh"),
        // Through a variable the script set, or $HOME.
        ("/tmp/p.sh", "F=/tmp/p.sh; . \"$F\""),
        ("/tmp/p.sh", "export D=/tmp && source ${D}/p.sh"),
        ("/tmp/p.sh", "P=/tmp/p.sh; cat $P | bash"),
        ("/home/ann/p.sh", "source \"$HOME/p.sh\""),
        // The environment has the shell run it first.
        ("/tmp/p.sh", "BASH_ENV=/tmp/p.sh bash -c true"),
    ] {
        let c = cycles(&session(file, cmd, bash));
        assert_eq!(c.len(), 1, "{cmd}: {c:?}");
        assert!(c[0].contains(file) && c[0].contains("ran as code"), "{c:?}");
    }
    let py = ("python", "/usr/bin/python3.11");
    for (file, code) in [
        ("/tmp/p.py", "exec(open('/tmp/p.py').read())"),
        // The path through a variable; a written directory put on sys.path and imported.
        (
            "/tmp/p.py",
            "f = '/tmp/p.py'; exec(compile(open(f).read(), f, 'exec'))",
        ),
        (
            "/tmp/lib/evil.py",
            "import sys; sys.path.insert(0, '/tmp/lib'); import evil",
        ),
    ] {
        let c = cycles(&session(file, code, py));
        assert_eq!(c.len(), 1, "{code}: {c:?}");
    }
    // Data a one-liner reads is no code.
    let c = cycles(&session(
        "/tmp/o.json",
        "import json, re; print(re.compile('x'), json.load(open('/tmp/o.json')))",
        py,
    ));
    assert!(c.is_empty(), "{c:?}");
    // node -e "require('./p')": the written p.js, as node resolves it.
    let node = ("node", "/usr/bin/node");
    let c = cycles(&session("/work/proj/p.js", "require('./p')", node));
    assert_eq!(c.len(), 1, "{c:?}");
    let c = cycles(&session(
        "/tmp/x.js",
        "const f = '/tmp/x.js'; eval(require('fs').readFileSync(f, 'utf8'))",
        node,
    ));
    assert_eq!(c.len(), 1, "{c:?}");
}

#[test]
fn the_agents_snapshot_an_activate_script_and_data_are_not_cycles() {
    let bash = ("bash", "/usr/bin/bash");
    // Only the snapshot, sourced by every tool call; a file read as data.
    for (file, cmd) in [
        ("/tmp/notes.txt", "ls"),
        ("/tmp/in.txt", "sh ./run.sh < /tmp/in.txt"),
        ("/tmp/in.txt", "cat /tmp/in.txt | grep x"),
        ("/tmp/in.txt", "echo source /tmp/in.txt"),
    ] {
        let c = cycles(&session(file, cmd, bash));
        assert!(c.is_empty(), "{cmd}: {c:?}");
    }
    // A virtual environment python made, activated by the next tool call.
    let mut recs = claude_tool_shell("python3 -m venv .venv");
    recs.push(fork(S + 3, 300, 310));
    recs.push(exec(
        S + 4,
        310,
        300,
        "/usr/bin/python3.11",
        &["python3", "-m", "venv", ".venv"],
        (5, 11),
    ));
    recs.push(open(
        S + 5,
        310,
        "/work/proj/.venv/bin/activate",
        Access::Write,
        true,
        (5, 62),
    ));
    recs.push(fork(S + 6, AGENT, 311));
    recs.push(exec(
        S + 7,
        311,
        AGENT,
        "/usr/bin/bash",
        &["/bin/bash", "-c", "source .venv/bin/activate && pytest"],
        BASH_ID,
    ));
    assert!(cycles(&recs).is_empty());
    // The same file written by a shell (a payload put where activate scripts live) is one.
    let c = cycles(&session(
        "/work/proj/.venv/bin/activate",
        "source .venv/bin/activate",
        bash,
    ));
    assert_eq!(c.len(), 1, "{c:?}");
}
