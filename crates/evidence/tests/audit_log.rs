//! The hash-chained audit log: writing, segments, tampering, crashes (including a real SIGKILL
//! of a writer process) and resuming.

use proctor_evidence::{verify_paths, AuditLog, AuditOptions, Signer, Status};
use proctor_testkit::evidence::{describe, problems, record, signer};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn opts(every: u64) -> AuditOptions {
    AuditOptions {
        checkpoint_every: every,
        checkpoint_interval: Duration::from_secs(3600),
    }
}

/// A closed log with `n` records, checkpoints every 4.
fn closed_log(n: u32) -> (tempfile::TempDir, PathBuf, Arc<Signer>) {
    let tmp = tempfile::tempdir().unwrap();
    let s = signer();
    let mut log = AuditLog::open_with(tmp.path(), s.clone(), "agent-7", opts(4)).unwrap();
    for i in 0..n {
        log.append(&record(100 + i, 1_795_422_529_000_000_000 + u64::from(i)))
            .unwrap();
    }
    log.close().unwrap();
    let path = tmp.path().join("audit.jsonl");
    (tmp, path, s)
}

fn lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    std::fs::write(path, lines.concat()).unwrap();
}

fn check(path: &Path, s: &Signer) -> proctor_evidence::Report {
    verify_paths(&[path.to_path_buf()], Some(s.verifier()))
}

/// The finding's location ends with `:line`.
fn at_line(r: &proctor_evidence::Report, problem: &str, line: usize) -> bool {
    r.items
        .iter()
        .flat_map(|i| &i.findings)
        .any(|f| f.problem == problem && f.location.ends_with(&format!(":{line}")))
}

#[test]
fn a_closed_log_verifies_and_has_the_chain_members() {
    let (_t, path, s) = closed_log(10);
    let r = check(&path, &s);
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    let ls = lines(&path);
    // segment_start, checkpoint, 10 records with checkpoints after every 4, final checkpoint.
    let first: Value = serde_json::from_slice(&ls[0]).unwrap();
    assert_eq!(first["type"], "segment_start");
    assert_eq!(first["seq"], 1);
    assert_eq!(first["hash_prev"], "0".repeat(64));
    assert_eq!(first["prev"], Value::Null);
    let mut prev = String::new();
    for (i, l) in ls.iter().enumerate() {
        let v: Value = serde_json::from_slice(l).unwrap();
        assert_eq!(v["seq"], i as u64 + 1, "line {}", i + 1);
        if i > 0 {
            assert_eq!(v["hash_prev"], prev.as_str(), "line {}", i + 1);
        }
        prev = v["hash_self"].as_str().unwrap().to_string();
    }
    let last: Value = serde_json::from_slice(ls.last().unwrap()).unwrap();
    assert_eq!(last["type"], "checkpoint");
    assert_eq!(last["final"], true);
    // The observation records still replay as model Records.
    let exec: proctor_model::Record = serde_json::from_slice(&ls[2]).unwrap();
    assert_eq!(exec.pid, 100);
    assert_eq!(exec.ts_ns, 1_795_422_529_000_000_000);
}

#[test]
fn hash_self_is_sha256_of_the_canonical_record_without_it() {
    let (_t, path, _s) = closed_log(1);
    for l in lines(&path) {
        let mut v: Value = serde_json::from_slice(&l).unwrap();
        let h = v.as_object_mut().unwrap().remove("hash_self").unwrap();
        let want = proctor_evidence::sha256_hex(&proctor_evidence::canonical_json(&v));
        assert_eq!(h, want.as_str());
    }
}

#[test]
fn editing_a_record_names_its_line() {
    let (_t, path, s) = closed_log(10);
    let mut ls = lines(&path);
    let text = String::from_utf8(ls[4].clone()).unwrap();
    ls[4] = text.replacen("\"pid\":102", "\"pid\":666", 1).into_bytes();
    assert_ne!(ls[4], text.as_bytes(), "the edit applied");
    write_lines(&path, &ls);
    let r = check(&path, &s);
    assert_eq!(r.status, Status::Invalid);
    assert!(at_line(&r, "hash", 5), "edited line 5: {}", describe(&r));
}

#[test]
fn recomputing_the_chain_without_the_key_fails_at_the_next_checkpoint() {
    let (_t, path, s) = closed_log(10);
    let ls = lines(&path);
    // Edit line 4 and recompute every hash after it, as someone without the key could.
    let mut out = Vec::new();
    let mut head = String::new();
    for (i, l) in ls.iter().enumerate() {
        let mut v: Value = serde_json::from_slice(l).unwrap();
        let m = v.as_object_mut().unwrap();
        if i == 3 {
            m.insert("pid".into(), Value::from(31337));
        }
        if i >= 3 {
            m.insert("hash_prev".into(), Value::from(head.as_str()));
            m.remove("hash_self");
            let h = proctor_evidence::sha256_hex(&proctor_evidence::canonical_json(&v));
            v["hash_self"] = Value::from(h);
        }
        head = v["hash_self"].as_str().unwrap().to_string();
        let mut b = proctor_evidence::canonical_json(&v);
        b.push(b'\n');
        out.push(b);
    }
    write_lines(&path, &out);
    let r = check(&path, &s);
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    let f = r.items[0]
        .findings
        .iter()
        .find(|f| f.problem == "signature")
        .unwrap_or_else(|| panic!("a checkpoint signature must fail: {}", describe(&r)));
    let v: Value = serde_json::from_slice(&out[6]).unwrap();
    assert_eq!(
        v["type"], "checkpoint",
        "line 7 is the first checkpoint after the edit"
    );
    assert!(f.location.ends_with(":7"), "{}", describe(&r));
}

#[test]
fn deleting_duplicating_and_reordering_lines_are_named() {
    let (_t, path, s) = closed_log(10);
    let orig = lines(&path);
    let edit = |f: &dyn Fn(&mut Vec<Vec<u8>>)| {
        let mut ls = orig.clone();
        f(&mut ls);
        ls
    };
    let forged = String::from_utf8(orig[2].clone())
        .expect("UTF-8 line")
        .replace("agent-7", "agent-8")
        .into_bytes();
    assert_ne!(forged, orig[2], "fixture changed");
    let reencoded = String::from_utf8(orig[3].clone())
        .expect("UTF-8 line")
        .replacen(',', ", ", 1)
        .into_bytes();
    let moved = |from: usize, to: usize| {
        edit(&|ls| {
            let m = ls.remove(from);
            ls.insert(to, m)
        })
    };
    // (what was done, the lines, problem, line it is reported at, words the report must have)
    let cases = [
        (
            "deletion",
            edit(&|ls| drop(ls.remove(5))),
            "seq",
            6,
            "records with seq 6..6 are missing: deleted",
        ),
        (
            "duplicate",
            edit(&|ls| ls.insert(6, orig[5].clone())),
            "seq",
            7,
            "seq 6: a copy of line 6: the record was duplicated (expected seq 7)",
        ),
        (
            "forged record reusing a seq",
            edit(&|ls| ls.insert(6, forged.clone())),
            "seq",
            7,
            "seq 3: a different record with the seq of line 3: inserted or moved",
        ),
        (
            "swap",
            edit(&|ls| ls.swap(4, 5)),
            "seq",
            5,
            "expected seq 5, which comes later (seq 5 is at line 6): the records were reordered",
        ),
        (
            "moved down",
            moved(2, 8),
            "seq",
            3,
            "(seq 3 is at line 9): the records were reordered",
        ),
        (
            "moved up",
            moved(7, 3),
            "seq",
            4,
            "expected seq 4, which comes later",
        ),
        (
            "re-encoded",
            edit(&|ls| ls[3] = reencoded.clone()),
            "non_canonical",
            4,
            "not in canonical (RFC 8785) form",
        ),
    ];
    for (what, ls, problem, line, words) in cases {
        write_lines(&path, &ls);
        let r = check(&path, &s);
        assert!(
            at_line(&r, problem, line),
            "{what}: want `{problem}` at line {line}: {}",
            describe(&r)
        );
        assert!(
            r.render().contains(words),
            "{what}: want {words:?} in:\n{}",
            r.render()
        );
    }
}

#[test]
fn truncation_is_reported_as_incomplete() {
    let (_t, path, s) = closed_log(10);
    let orig = lines(&path);
    // Whole lines cut off the end: the final checkpoint is gone.
    write_lines(&path, &orig[..orig.len() - 3]);
    let r = check(&path, &s);
    assert_eq!(r.status, Status::Incomplete, "{}", describe(&r));
    assert_eq!(r.exit_code(), 1);
    assert!(problems(&r).contains(&"not_closed"), "{}", describe(&r));
    assert!(r.render().contains("unsigned"), "{}", r.render());
    // A line cut in the middle.
    let mut cut = orig[..orig.len() - 1].concat();
    cut.extend_from_slice(&orig[orig.len() - 1][..20]);
    std::fs::write(&path, cut).unwrap();
    let r = check(&path, &s);
    assert_eq!(r.status, Status::Incomplete, "{}", describe(&r));
    assert!(at_line(&r, "truncated", orig.len()), "{}", describe(&r));
    // An empty file.
    std::fs::write(&path, b"").unwrap();
    assert_eq!(check(&path, &s).status, Status::Incomplete);
}

#[test]
fn appending_after_close_or_injecting_garbage_is_invalid() {
    let (_t, path, s) = closed_log(3);
    let orig = lines(&path);
    let mut ls = orig.clone();
    ls.push(b"{\"type\":\"exec\"}\n".to_vec());
    write_lines(&path, &ls);
    let r = check(&path, &s);
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    assert!(at_line(&r, "malformed", orig.len() + 1), "{}", describe(&r));

    let mut ls = orig.clone();
    ls.insert(2, b"not json\n".to_vec());
    write_lines(&path, &ls);
    let r = check(&path, &s);
    assert!(at_line(&r, "malformed", 3), "{}", describe(&r));
}

#[test]
fn reopening_continues_in_a_linked_segment() {
    let (t, path, s) = closed_log(3);
    let before = std::fs::read(&path).unwrap();
    let n_before = lines(&path).len();
    let mut log = AuditLog::open_with(t.path(), s.clone(), "agent-7", opts(4)).unwrap();
    log.append(&record(7, 1)).unwrap();
    log.close().unwrap();
    let after = std::fs::read(&path).unwrap();
    assert!(
        after.starts_with(&before),
        "the first segment is never rewritten"
    );
    let r = check(&path, &s);
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert!(
        r.items[0].summary.contains("2 segment(s)"),
        "{}",
        describe(&r)
    );
    let ls = lines(&path);
    let last_before: Value = serde_json::from_slice(&ls[n_before - 1]).unwrap();
    let start: Value = serde_json::from_slice(&ls[n_before]).unwrap();
    assert_eq!(start["type"], "segment_start");
    assert_eq!(start["prev"]["seq"], last_before["seq"]);
    assert_eq!(start["prev"]["hash"], last_before["hash_self"]);
    assert_eq!(start["prev_closed"], true);
    assert_eq!(start["torn"], Value::Null);
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let s = signer();
    let _first = AuditLog::open(tmp.path(), s.clone(), "a").unwrap();
    let err = AuditLog::open(tmp.path(), s, "a")
        .err()
        .expect("a second writer must be refused");
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn reserved_members_and_types_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(tmp.path(), signer(), "a").unwrap();
    for bad in [
        serde_json::json!({"type": "x", "seq": 1}),
        serde_json::json!({"type": "x", "hash_self": "00"}),
        serde_json::json!({"type": "checkpoint"}),
        serde_json::json!({"type": "segment_start"}),
        serde_json::json!({"no_type": 1}),
        serde_json::json!({"type": 5}),
        serde_json::json!([1, 2]),
    ] {
        assert!(log.append(&bad).is_err(), "{bad} must be refused");
    }
    log.close().unwrap();
}

/// A torn last line (the writer died mid-write): the next open keeps its bytes, records them in
/// the new segment start, and the whole file verifies.
#[test]
fn a_torn_tail_is_recorded_by_the_next_segment() {
    let (t, path, s) = closed_log(5);
    let orig = lines(&path);
    // Simulate a crash: drop the final checkpoint, leave half of the line before it.
    let n = orig.len();
    let mut bytes = orig[..n - 2].concat();
    let torn = &orig[n - 2][..orig[n - 2].len() / 2];
    bytes.extend_from_slice(torn);
    std::fs::write(&path, &bytes).unwrap();
    let r = check(&path, &s);
    assert_eq!(r.status, Status::Incomplete, "{}", describe(&r));
    assert!(at_line(&r, "truncated", n - 1), "{}", describe(&r));

    let mut log = AuditLog::open_with(t.path(), s.clone(), "agent-7", opts(4)).unwrap();
    log.append(&record(9, 9)).unwrap();
    log.close().unwrap();
    let after = std::fs::read(&path).unwrap();
    assert!(after.starts_with(&bytes), "the torn bytes are kept");
    let r = check(&path, &s);
    // The killed segment's unsigned records are not vouched for by the next one: the whole
    // file verifies link by link, but not as VALID.
    assert_eq!(r.status, Status::Incomplete, "{}", describe(&r));
    let notes: Vec<&str> = r.items[0].findings.iter().map(|f| f.problem).collect();
    assert!(notes.contains(&"torn_recorded"), "{}", describe(&r));
    // Every complete record was signed before the kill; only the torn bytes were not.
    assert!(notes.contains(&"crash_recorded"), "{}", describe(&r));
    assert!(
        !r.items[0]
            .findings
            .iter()
            .any(|f| f.severity == proctor_evidence::Severity::Invalid),
        "{}",
        describe(&r)
    );
    let ls = lines(&path);
    let start: Value = serde_json::from_slice(&ls[n - 1]).unwrap();
    assert_eq!(start["torn"]["length"], torn.len());
    assert_eq!(start["torn"]["terminated"], true);
    assert_eq!(start["prev_closed"], false);

    // Changing the kept torn bytes afterwards is detected.
    let mut tampered = after.clone();
    let off = bytes.len() - 3;
    tampered[off] ^= 0x01;
    std::fs::write(&path, &tampered).unwrap();
    let r = check(&path, &s);
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    assert!(at_line(&r, "malformed", n - 1), "{}", describe(&r));
}

/// A crash during recovery (the terminating newline and half a segment start written) leaves
/// two unreadable lines; the next open records both, and the log verifies.
#[test]
fn a_crash_during_recovery_is_recorded_too() {
    let (t, path, s) = closed_log(2);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"type\":\"exec\",\"pi");
    bytes.extend_from_slice(b"\n{\"type\":\"segment_st");
    std::fs::write(&path, &bytes).unwrap();
    let log = AuditLog::open(t.path(), s.clone(), "agent-7").unwrap();
    log.close().unwrap();
    let r = check(&path, &s);
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    let torn = r.items[0]
        .findings
        .iter()
        .find(|f| f.problem == "torn_recorded")
        .unwrap_or_else(|| panic!("{}", describe(&r)));
    assert!(torn.message.contains("lines 6..7"), "{}", describe(&r));
}

/// A write cut exactly before its newline leaves a complete record: it stays in the chain, the
/// next open only adds the newline.
#[test]
fn a_record_missing_only_its_newline_stays_in_the_chain() {
    let (t, path, s) = closed_log(2);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.pop();
    std::fs::write(&path, &bytes).unwrap();
    let r = check(&path, &s);
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert!(problems(&r).is_empty());
    assert!(r.render().contains("lacks its newline"), "{}", r.render());
    let log = AuditLog::open(t.path(), s.clone(), "agent-7").unwrap();
    log.close().unwrap();
    let r = check(&path, &s);
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert!(!r.render().contains("interrupted write"), "{}", r.render());
}

/// Killed between a segment start and its checkpoint: the next segment start follows directly.
#[test]
fn a_crash_right_after_a_segment_start_is_accepted() {
    let (t, path, s) = closed_log(2);
    let n = lines(&path).len();
    let log = AuditLog::open(t.path(), s.clone(), "agent-7").unwrap();
    log.close().unwrap();
    // Keep the second segment's start only.
    write_lines(&path, &lines(&path)[..n + 1]);
    let r = check(&path, &s);
    assert_eq!(r.status, Status::Incomplete, "{}", describe(&r));
    let log = AuditLog::open(t.path(), s.clone(), "agent-7").unwrap();
    log.close().unwrap();
    let r = check(&path, &s);
    // The killed segment wrote only its start, which it never signed: a segment that ended
    // without its final checkpoint is never VALID.
    assert_eq!(r.status, Status::Incomplete, "{}", describe(&r));
    assert!(
        r.items[0].summary.contains("3 segment(s)"),
        "{}",
        describe(&r)
    );
    assert_eq!(problems(&r), ["unsigned_tail"], "{}", describe(&r));
    assert!(
        r.render().contains("without a final checkpoint"),
        "{}",
        r.render()
    );
}

#[test]
fn a_hostile_last_seq_is_refused_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v = serde_json::json!({"type": "exec", "seq": u64::MAX, "hash_prev": "0".repeat(64)});
    let h = proctor_evidence::sha256_hex(&proctor_evidence::canonical_json(&v));
    v["hash_self"] = Value::from(h);
    let mut line = proctor_evidence::canonical_json(&v);
    line.push(b'\n');
    std::fs::write(tmp.path().join("audit.jsonl"), line).unwrap();
    let err = AuditLog::open(tmp.path(), signer(), "a")
        .err()
        .expect("must be refused");
    assert!(err.to_string().contains("largest possible"), "{err}");
}

#[test]
fn a_file_that_is_not_a_chain_is_not_appended_to() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.jsonl");
    let junk: String = (0..100)
        .map(|i| format!("{{\"type\":\"exec\",\"n\":{i}}}\n"))
        .collect();
    std::fs::write(&path, &junk).unwrap();
    let err = AuditLog::open(tmp.path(), signer(), "a")
        .err()
        .expect("an unchained file must not be adopted");
    assert!(err.to_string().contains("refusing to append"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        junk,
        "left untouched"
    );
}

/// A new key for a later run (key rotation): both public keys are kept next to the log, and
/// pinning one makes the other's checkpoints invalid, by name.
#[test]
fn segments_signed_by_different_keys() {
    let (t, path, a) = closed_log(2);
    let b = signer();
    let log = AuditLog::open(t.path(), b.clone(), "agent-7").unwrap();
    log.close().unwrap();
    assert!(t.path().join("proctor.pub.pem").exists());
    let second = t
        .path()
        .join(format!("proctor-{}.pub.pem", &b.fingerprint()[..16]));
    assert!(
        second.exists(),
        "the second key is published beside the first"
    );
    let r = verify_paths(std::slice::from_ref(&path), None);
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert_eq!(r.keys.len(), 2, "{}", describe(&r));
    let change = format!(
        "signed by key {}, while this log's first checkpoint was signed by key {}",
        b.fingerprint(),
        a.fingerprint()
    );
    assert!(
        r.render().contains(&change),
        "a key change is pointed out: {}",
        r.render()
    );
    assert_eq!(
        r.render().matches(&change).count(),
        1,
        "once per key: {}",
        r.render()
    );
    let r = check(&path, &a);
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    assert!(problems(&r).contains(&"key"), "{}", describe(&r));
    assert!(r.render().contains(b.fingerprint()), "{}", r.render());
}

const CHILD_ENV: &str = "PROCTOR_EVIDENCE_TEST_WRITER_DIR";

/// Not a test on its own: the body of the writer process that `kill_9_mid_run_then_verify_and_
/// resume` starts and kills. It appends records as fast as it can until killed.
#[test]
#[ignore = "helper process for kill_9_mid_run_then_verify_and_resume"]
fn writer_child() {
    let dir = PathBuf::from(std::env::var_os(CHILD_ENV).expect("run by the kill -9 test"));
    let key = Signer::load(&dir.join("keys/proctor.key")).expect("key");
    let mut log = AuditLog::open_with(
        &dir.join("out"),
        Arc::new(key),
        "agent-7",
        AuditOptions {
            checkpoint_every: 50,
            checkpoint_interval: Duration::from_millis(20),
        },
    )
    .expect("open");
    std::fs::write(dir.join("started"), b"").unwrap();
    let mut i = 0u64;
    loop {
        // Large records make a kill in the middle of a write likely.
        let mut r = record((i % 60000) as u32, i);
        r.comm = proctor_model::Bytes::from("x".repeat((i % 7) as usize * 3000).as_str());
        log.append(&r).expect("append");
        i += 1;
    }
}

#[test]
fn kill_9_mid_run_then_verify_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let (private, _) = proctor_evidence::generate_keypair(&tmp.path().join("keys")).unwrap();
    let s = Arc::new(Signer::load(&private).unwrap());
    let out = tmp.path().join("out");
    let log_path = out.join("audit.jsonl");
    let exe = std::env::current_exe().unwrap();
    for round in 0..3 {
        let _ = std::fs::remove_file(tmp.path().join("started"));
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "writer_child", "--ignored", "--nocapture"])
            .env(CHILD_ENV, tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        while !tmp.path().join("started").exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "writer did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(150 + 70 * round));
        // SIGKILL: no destructor, no final checkpoint.
        child.kill().unwrap();
        child.wait().unwrap();

        let r = verify_paths(std::slice::from_ref(&log_path), Some(s.verifier()));
        assert_eq!(
            r.status,
            Status::Incomplete,
            "round {round}: a killed run verifies up to its last complete line and says it is incomplete: {}",
            describe(&r)
        );
        let bad: Vec<_> = r.items[0]
            .findings
            .iter()
            .filter(|f| f.severity == proctor_evidence::Severity::Invalid)
            .collect();
        assert!(bad.is_empty(), "round {round}: {}", describe(&r));
    }
    // A clean run afterwards resumes the chain; every link verifies, but the killed runs
    // keep the whole log from verifying as VALID.
    let mut log = AuditLog::open(&out, s.clone(), "agent-7").unwrap();
    log.append(&record(1, 1)).unwrap();
    log.close().unwrap();
    let r = verify_paths(std::slice::from_ref(&out), Some(s.verifier()));
    assert_eq!(r.status, Status::Incomplete, "{}", describe(&r));
    assert!(
        r.items[0].summary.contains("4 segment(s)"),
        "{}",
        describe(&r)
    );
    let crashes = r.items[0]
        .findings
        .iter()
        .filter(|f| f.problem == "crash_recorded" || f.problem == "unsigned_tail")
        .count();
    assert_eq!(crashes, 3, "each kill is recorded: {}", describe(&r));
}

/// Verification hashes an ordinary record's bytes as written once a scan proves them canonical.
/// Every way to re-encode such a line (same JSON value, other bytes) must still be refused as
/// non-canonical, and every change of its content must still break its hash.
#[test]
fn re_encoded_or_altered_ordinary_lines_are_caught() {
    let (_t, path, s) = closed_log(10);
    let original = lines(&path);
    let line5 = String::from_utf8(original[4].clone()).unwrap();
    assert!(line5.contains("\"type\":\"exec\"") && line5.contains("\"pid\":102"));
    let body = line5.trim_end_matches('\n');
    let moved = format!(
        "{},\"agent_id\":\"agent-7\"}}\n",
        body.replacen("\"agent_id\":\"agent-7\",", "", 1)
            .trim_end_matches('}')
    );
    let hash = body.split("\"hash_self\":\"").nth(1).unwrap()[..64].to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "space after a colon",
            line5.replacen("\"pid\":102", "\"pid\": 102", 1),
            "non_canonical",
        ),
        (
            "exponent",
            line5.replacen("\"pid\":102", "\"pid\":1.02e2", 1),
            "non_canonical",
        ),
        (
            "fraction",
            line5.replacen("\"pid\":102", "\"pid\":102.0", 1),
            "non_canonical",
        ),
        (
            "escaped letter",
            line5.replacen("agent-7", "agent\\u002d7", 1),
            "non_canonical",
        ),
        (
            "escaped type",
            line5.replacen("\"exec\"", "\"ex\\u0065c\"", 1),
            "non_canonical",
        ),
        (
            "escaped name",
            line5.replacen("\"ppid\"", "\"p\\u0070id\"", 1),
            "non_canonical",
        ),
        (
            "escaped slash",
            line5.replacen("\"/usr/bin/bash\"", "\"\\/usr/bin/bash\"", 1),
            "non_canonical",
        ),
        ("members reordered", moved, "non_canonical"),
        ("trailing space", format!("{body} \n"), "non_canonical"),
        (
            "duplicate member",
            line5.replacen("\"ppid\":1,", "\"ppid\":1,\"ppid\":1,", 1),
            "non_canonical",
        ),
        (
            "content changed",
            line5.replacen("\"pid\":102", "\"pid\":103", 1),
            "hash",
        ),
        (
            "nested decoy",
            line5.replacen("{", &format!("{{\"a\":{{\"hash_self\":\"{hash}\"}},"), 1),
            "hash",
        ),
        (
            "hash_self uppercased",
            line5.replacen(&hash, &hash.to_uppercase(), 1),
            "malformed",
        ),
    ];
    for (what, edited, problem) in cases {
        assert_ne!(edited, line5, "{what}: the edit applied");
        let mut ls = original.clone();
        ls[4] = edited.into_bytes();
        write_lines(&path, &ls);
        let r = check(&path, &s);
        assert_eq!(r.status, Status::Invalid, "{what}: {}", describe(&r));
        assert!(
            at_line(&r, problem, 5),
            "{what}: want `{problem}` at line 5: {}",
            describe(&r)
        );
    }
}
