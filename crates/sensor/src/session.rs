//! Session slots and kernel record numbers. Every tracked task carries its session's slot
//! (`pr_task.session`, inherited at fork); every record of a session gets that session's next
//! number before the kernel reserves ring space, so a record the ring could not take is a hole in
//! the numbers. `run`/`attach` use slot [`RUN_SLOT`]; `proctor daemon` sessions get a slot in the
//! kernel when an exec matches an agent rule (their exec record names it) and give it back here
//! when they end. A session can carry its own enforcement mode (`pr_session.mode`), which the
//! kernel's decisions use instead of the sensor's.

use crate::{as_bytes, Sensor, SensorError};
use libbpf_rs::{MapCore, MapFlags};
use proctor_model::kseq::{coalesce, Gap, GapReason};
use proctor_model::{Kseq, Mode};
use proctor_probes::wire::{
    pr_hdr, pr_session, pr_smode_PR_SMODE_AUDIT, pr_smode_PR_SMODE_ENFORCE,
    pr_smode_PR_SMODE_GLOBAL, pr_smode_PR_SMODE_SHADOW, pr_task, PR_SESSIONS, PR_SESSION_RUN,
};

/// The slot of `run`'s and `attach`'s one session.
pub const RUN_SLOT: u32 = PR_SESSION_RUN;

/// The tracked-set value of a task of the run/attach session.
pub(crate) fn run_task() -> pr_task {
    pr_task {
        session: PR_SESSION_RUN,
        ..pr_task::default()
    }
}

/// The record number to write, for a record of a session.
pub(crate) fn numbered(k: Kseq) -> Option<Kseq> {
    (k.kslot != 0 && k.kseq != 0).then_some(k)
}

/// How many records both rings can hold at once (the main ring and the priority ring, a quarter
/// of it or more): a record cannot arrive later than that many numbers after a newer one.
pub(crate) fn horizon(ringbuf_bytes: u32) -> u64 {
    let rings = u64::from(ringbuf_bytes) + (u64::from(ringbuf_bytes) / 4).max(1 << 20);
    rings / size_of::<pr_hdr>() as u64 + 1
}

impl Sensor {
    /// Kernel record numbers no record will carry, judged now: holes nothing can fill any more
    /// (both rings empty after a read, see [`proctor_model::kseq::Tracker::judge`]), and
    /// numbers folded into other records.
    pub fn take_kseq_gaps(&mut self) -> Vec<Gap> {
        let quiet = self.ring_fill().iter().all(|&(_, used, _)| used == 0);
        let mut gaps = self.kseq.judge(quiet);
        gaps.extend(self.take_merged(None));
        gaps
    }

    /// The end of session `kslot`, after the last drain: every number up to `taken` that no
    /// record carried. `taken` is [`Sensor::session_taken`] read before that drain began: a
    /// number handed out later (a process still running) may be in a ring nobody reads any more,
    /// so it is not declared lost.
    pub fn finish_kseq(&mut self, kslot: u32, taken: u64) -> Vec<Gap> {
        let mut gaps = self.kseq.finish(kslot, taken);
        gaps.extend(self.take_merged(Some(kslot)));
        gaps
    }

    /// Numbers that arrived after they were declared lost.
    pub fn kseq_late(&self) -> u64 {
        self.kseq.late
    }

    fn take_merged(&mut self, only: Option<u32>) -> Vec<Gap> {
        let mut by_slot: std::collections::BTreeMap<u32, Vec<u64>> = Default::default();
        let mut keep = Vec::new();
        for k in std::mem::take(&mut self.kseq_merged) {
            if only.is_some_and(|s| s != k.kslot) {
                keep.push(k);
            } else if numbered(k).is_some() {
                by_slot.entry(k.kslot).or_default().push(k.kseq);
            }
        }
        self.kseq_merged = keep;
        by_slot
            .into_iter()
            .flat_map(|(s, n)| coalesce(s, n, GapReason::Merged))
            .collect()
    }

    /// How many numbers the kernel handed out in `kslot` (its last number).
    pub fn session_taken(&self, kslot: u32) -> u64 {
        self.skel
            .maps
            .session_seq
            .lookup(&kslot.to_ne_bytes(), MapFlags::ANY)
            .ok()
            .flatten()
            .and_then(|b| {
                b.get(..8)
                    .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
            })
            .unwrap_or(0)
    }

    fn session_entry(&self, kslot: u32) -> Result<pr_session, SensorError> {
        let b = self
            .skel
            .maps
            .sessions
            .lookup(&kslot.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| SensorError::Map {
                map: "sessions",
                source,
            })?
            .unwrap_or_default();
        Ok(crate::from_bytes(&b).unwrap_or_default())
    }

    fn set_session_entry(&self, kslot: u32, v: &pr_session) -> Result<(), SensorError> {
        if kslot == 0 || kslot >= PR_SESSIONS {
            return Err(SensorError::SessionSlot(kslot));
        }
        self.skel
            .maps
            .sessions
            .update(&kslot.to_ne_bytes(), as_bytes(v), MapFlags::ANY)
            .map_err(|source| SensorError::Map {
                map: "sessions",
                source,
            })
    }

    /// Give session `kslot` its own enforcement mode (`None`: the sensor's again). Takes effect
    /// at the next decision of any of its tasks.
    pub fn set_session_mode(&self, kslot: u32, mode: Option<Mode>) -> Result<(), SensorError> {
        let mut v = self.session_entry(kslot)?;
        v.mode = match mode {
            None => pr_smode_PR_SMODE_GLOBAL,
            Some(Mode::Audit) => pr_smode_PR_SMODE_AUDIT,
            Some(Mode::Shadow) => pr_smode_PR_SMODE_SHADOW,
            Some(Mode::Enforce) => pr_smode_PR_SMODE_ENFORCE,
        };
        self.set_session_entry(kslot, &v)
    }

    /// The agent rule (1-based) whose exec opened session `kslot` in the kernel; 0 for none.
    pub fn session_rule(&self, kslot: u32) -> u32 {
        self.session_entry(kslot).map_or(0, |v| v.rule)
    }

    /// Refuse executing this file (`stat().st_dev` and inode) in the sessions opened by the
    /// agent rules of `rules` (bit n-1 for rule n); run/attach sessions are bound by any entry.
    pub fn deny_exec_rules(&self, dev: u64, ino: u64, rules: u32) -> Result<(), SensorError> {
        let key = proctor_probes::wire::pr_file_key {
            dev: crate::enforce::kernel_dev(dev),
            ino,
        };
        self.skel
            .maps
            .deny_exec
            .update(as_bytes(&key), &rules.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| SensorError::Map {
                map: "deny_exec",
                source,
            })
    }

    /// Give a daemon session's slot back: a later matched exec may take it. The reads it
    /// recorded name nothing for the next one (bpf/lib/openseen.h): their entries go first.
    pub fn free_session(&mut self, kslot: u32) -> Result<(), SensorError> {
        let map = &self.skel.maps.open_seen;
        let ours: Vec<Vec<u8>> = map
            .keys()
            .filter(|k| k.get(..4) == Some(&kslot.to_ne_bytes()[..]))
            .collect();
        for k in ours {
            let _ = map.delete(&k);
        }
        self.folds.forget_slot(kslot);
        self.set_session_entry(kslot, &pr_session::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_horizon_covers_both_rings_of_the_smallest_records() {
        // 16 MiB main ring + 4 MiB priority ring of 96-byte headers.
        assert_eq!(horizon(16 << 20), (20 << 20) / 96 + 1);
        assert_eq!(horizon(4096), (4096 + (1 << 20)) / 96 + 1);
    }
}
