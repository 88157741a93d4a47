//! Evidence an attacker shaped: a deleted log, a log that lost records to a full disk, and an
//! unsigned tail edited after a SIGKILL of proctor and then chained over by the next run. None
//! may verify VALID (exit 0); each must say why.

use proctor_evidence::{verify_paths, AuditLog, AuditOptions, CertWriter, Status};
use proctor_testkit::evidence::{cals, describe, record, signer};

use std::time::Duration;

fn opts() -> AuditOptions {
    AuditOptions {
        checkpoint_every: 4,
        checkpoint_interval: Duration::from_secs(3600),
    }
}

fn problems(r: &proctor_evidence::Report) -> Vec<&'static str> {
    r.items
        .iter()
        .flat_map(|i| &i.findings)
        .map(|f| f.problem)
        .collect()
}

/// A run directory (log, alerts/, public key) whose audit.jsonl was deleted.
#[test]
fn a_run_directory_without_its_log_does_not_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let s = signer();
    let mut log = AuditLog::open_with(tmp.path(), s.clone(), "agent-7", opts()).unwrap();
    let mut certs = CertWriter::new(&tmp.path().join("alerts"), s.clone(), "host", None).unwrap();
    let w = certs.write(&proctor_testkit::evidence::alert(1)).unwrap();
    log.record_certificate(&w).unwrap();
    log.close().unwrap();
    assert_eq!(cals(&tmp.path().join("alerts")).len(), 1);
    let r = verify_paths(&[tmp.path().to_path_buf()], Some(s.verifier()));
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));

    std::fs::remove_file(tmp.path().join("audit.jsonl")).unwrap();
    let r = verify_paths(&[tmp.path().to_path_buf()], Some(s.verifier()));
    assert_ne!(r.exit_code(), 0, "{}", describe(&r));
    assert!(problems(&r).contains(&"log_missing"), "{}", describe(&r));
}

/// Records the writer could not write (ENOSPC, EIO): the log must not end as if closed cleanly.
#[test]
fn a_log_whose_writes_failed_is_not_closed_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let s = signer();
    let mut log = AuditLog::open_with(tmp.path(), s.clone(), "agent-7", opts()).unwrap();
    log.append(&record(1, 1)).unwrap();
    // What the monitor does when an append fails: it stops and the log is dropped, not closed.
    log.flush().unwrap();
    drop(log);
    let r = verify_paths(&[tmp.path().join("audit.jsonl")], Some(s.verifier()));
    assert_ne!(
        r.exit_code(),
        0,
        "a log dropped without close: {}",
        describe(&r)
    );
    assert!(problems(&r).contains(&"not_closed"), "{}", describe(&r));
}

/// After a SIGKILL (no final checkpoint), the records after the last signed checkpoint are
/// edited and re-hashed; the next run opens the log and signs its own segment. The edited
/// records must not verify as vouched for.
#[test]
fn the_next_segment_does_not_vouch_for_an_unsigned_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let s = signer();
    let path = tmp.path().join("audit.jsonl");
    {
        let mut log = AuditLog::open_with(tmp.path(), s.clone(), "agent-7", opts()).unwrap();
        for i in 0..6 {
            log.append(&record(100 + i, 1_000 + u64::from(i))).unwrap();
        }
        log.flush().unwrap();
        // A SIGKILL: no Drop, no final checkpoint.
        std::mem::forget(log);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The last line is an unsigned record (6 records, checkpoint after the 4th).
    let last: serde_json::Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    assert_eq!(last["type"], "exec", "{text}");
    // Rewrite it (pid 105 -> 666) and recompute its hash, as anyone can without the key.
    let mut obj = last.as_object().unwrap().clone();
    obj.insert("pid".into(), 666.into());
    obj.remove("hash_self");
    let canon = proctor_evidence::canonical_json(&serde_json::Value::Object(obj.clone()));
    obj.insert(
        "hash_self".into(),
        proctor_evidence::sha256_hex(&canon).into(),
    );
    let forged = proctor_evidence::canonical_json(&serde_json::Value::Object(obj));
    let mut out = lines[..lines.len() - 1].join("\n");
    out.push('\n');
    out.push_str(std::str::from_utf8(&forged).unwrap());
    out.push('\n');
    // A new inode, as after the killed writer's exit (its leaked lock stays on the old one).
    let tmpf = tmp.path().join("audit.jsonl.new");
    std::fs::write(&tmpf, out).unwrap();
    std::fs::rename(&tmpf, &path).unwrap();
    // The next run of proctor appends a segment and closes it properly.
    let mut log = AuditLog::open_with(tmp.path(), s.clone(), "agent-7", opts()).unwrap();
    log.append(&record(7, 7)).unwrap();
    log.close().unwrap();
    let r = verify_paths(std::slice::from_ref(&path), Some(s.verifier()));
    assert_ne!(
        r.exit_code(),
        0,
        "an edited unsigned tail must not verify VALID under the pinned key: {}",
        describe(&r)
    );
    assert!(problems(&r).contains(&"unsigned_tail"), "{}", describe(&r));
    // The new segment start says what it does not vouch for.
    let starts: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "segment_start")
        .collect();
    assert_eq!(starts.len(), 2);
    assert!(
        starts[1]["unsigned_tail"]["from_seq"].as_u64().is_some(),
        "{}",
        starts[1]
    );
}
