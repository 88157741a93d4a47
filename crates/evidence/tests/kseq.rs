//! Kernel record numbers in the audit log: `verify` reports every number no record carries and no
//! `kseq_gap` record declares, per segment and slot, whatever order the records came in.

use proctor_evidence::{verify_paths, AuditLog, AuditOptions, Signer, Status};
use proctor_model::kseq::GapReason;
use proctor_model::{Common, Kseq, KseqGap, TypedRecord};
use proctor_testkit::evidence::{describe, problems, record, signer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const TS: u64 = 1_795_422_529_000_000_000;

fn open(dir: &Path, s: &Arc<Signer>) -> AuditLog {
    let opts = AuditOptions {
        checkpoint_every: 3,
        checkpoint_interval: Duration::from_secs(3600),
    };
    AuditLog::open_with(dir, s.clone(), "agent-7", opts).unwrap()
}

/// Records numbered `nums` in slot 1, then the gaps declared, in that order.
fn write(log: &mut AuditLog, nums: &[u64], gaps: &[(u64, u64, GapReason)]) {
    for &n in nums {
        let mut r = record(100, TS + n);
        r.kseq = Some(Kseq { kslot: 1, kseq: n });
        log.append(&r).unwrap();
    }
    for &(first, last, reason) in gaps {
        let g = KseqGap {
            kslot: 1,
            first,
            last,
            count: last - first + 1,
            reason,
            common: Common::proctor(TS, "agent-7"),
        };
        log.append(&g.tagged()).unwrap();
    }
}

fn verify(path: &Path, s: &Signer) -> proctor_evidence::Report {
    verify_paths(&[path.to_path_buf()], Some(s.verifier()))
}

fn closed(
    nums: &[u64],
    gaps: &[(u64, u64, GapReason)],
) -> (tempfile::TempDir, PathBuf, Arc<Signer>) {
    let tmp = tempfile::tempdir().unwrap();
    let s = signer();
    let mut log = open(tmp.path(), &s);
    write(&mut log, nums, gaps);
    log.close().unwrap();
    let path = tmp.path().join("audit.jsonl");
    (tmp, path, s)
}

#[test]
fn reordered_numbers_with_every_gap_declared_verify() {
    // Two rings: the urgent 4 and 5 were read before the bulk 2 and 3; 6 was lost, 7..8 merged.
    let (_t, path, s) = closed(
        &[1, 4, 5, 2, 3, 9],
        &[(6, 6, GapReason::Lost), (7, 8, GapReason::Merged)],
    );
    let r = verify(&path, &s);
    assert_eq!(r.status, Status::Valid, "{}", describe(&r));
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn an_undeclared_gap_in_a_closed_segment_is_invalid_and_named() {
    let (_t, path, s) = closed(&[1, 2, 5, 3, 9], &[(6, 7, GapReason::Lost)]);
    let r = verify(&path, &s);
    assert_eq!(r.status, Status::Invalid, "{}", describe(&r));
    assert_eq!(r.exit_code(), 1);
    let text = describe(&r);
    assert!(
        text.contains("kernel record 4 of session slot 1")
            && text.contains("kernel record 8 of session slot 1"),
        "both holes are named: {text}"
    );
    assert!(text.contains("signed and closed"), "{text}");
    assert_eq!(problems(&r), vec!["kseq_gap", "kseq_gap"]);
}

#[test]
fn a_killed_writer_leaves_an_incomplete_gap_and_a_new_segment_numbers_afresh() {
    let tmp = tempfile::tempdir().unwrap();
    let s = signer();
    let path = tmp.path().join("audit.jsonl");
    {
        let mut log = open(tmp.path(), &s);
        // 3 was still in the ring when proctor was killed: nothing declared it.
        write(&mut log, &[1, 2, 4], &[]);
        log.close().unwrap();
    }
    // A SIGKILL: the final checkpoint was never written.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines.pop().unwrap().contains("\"final\":true"));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let r = verify(&path, &s);
    assert_eq!(r.status, Status::Incomplete, "{}", describe(&r));
    let text = describe(&r);
    assert!(
        text.contains("kernel record 3 of session slot 1") && text.contains("not closed"),
        "{text}"
    );
    // The next run's sensor numbers its own records from 1: no confusion with the first.
    let mut log = open(tmp.path(), &s);
    write(&mut log, &[1, 2], &[]);
    log.close().unwrap();
    let r = verify(&path, &s);
    assert!(
        problems(&r).contains(&"kseq_gap"),
        "the first segment's hole stays reported: {}",
        describe(&r)
    );
    assert_eq!(
        describe(&r).matches("of session slot 1").count(),
        1,
        "{}",
        describe(&r)
    );
}
