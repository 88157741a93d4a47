//! Kernel sequence numbers (`kslot`, `kseq` on observation records; docs/records.md). The kernel
//! numbers every record of a session 1, 2, 3, ... before it reserves ring space, so a record the
//! ring could not take leaves a hole in the numbers. Records of two rings and many CPUs arrive out
//! of order, so a hole is judged only once nothing can still fill it.
//!
//! - [`RangeSet`]: a set of numbers kept as disjoint ranges (small while numbers come nearly in
//!   order, whatever their count).
//! - [`Tracker`]: what the sensor received, per slot; says which numbers are missing for good.
//! - [`Audit`]: what an audit log holds and declares, per slot; says which numbers no record
//!   carries or declares (`proctor verify`).

use std::collections::{BTreeMap, HashMap};

/// The record kinds the kernel numbers and, when a ring cannot take one, counts by kind: the
/// `what` of the `lost` records of those counters (the sensor's lost-counter names, less the two
/// slots that count a child or a session it could not track, `track_full` and `session_full`).
pub const NUMBERED_KINDS: [&str; 15] = [
    "exec",
    "fork",
    "exit",
    "file_open",
    "connect",
    "send",
    "ptrace",
    "decision",
    "tls",
    "tls_sni",
    "io_uring_setup",
    "dns_answer",
    "path_change",
    "privileged",
    "inbound",
];

/// A set of u64 as disjoint, non-adjacent ranges: start -> end (inclusive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet(BTreeMap<u64, u64>);

impl RangeSet {
    /// Add `first..=last`, merging with the ranges it overlaps or touches.
    pub fn insert(&mut self, mut first: u64, mut last: u64) {
        if first > last {
            return;
        }
        while let Some((&s, &e)) = self.0.range(..=last.saturating_add(1)).next_back() {
            if e.saturating_add(1) < first {
                break;
            }
            self.0.remove(&s);
            first = first.min(s);
            last = last.max(e);
        }
        self.0.insert(first, last);
    }

    /// The numbers of `lo..=hi` not in the set, as ranges in ascending order.
    pub fn holes(&self, lo: u64, hi: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if lo > hi {
            return out;
        }
        let mut next = lo;
        // The range that may cover `lo` starts at or before it.
        let from = self.0.range(..=lo).next_back().map_or(lo, |(&s, _)| s);
        for (&s, &e) in self.0.range(from..) {
            if s > hi {
                break;
            }
            if s > next {
                out.push((next, s - 1));
            }
            if e >= next {
                next = e.saturating_add(1);
            }
            if e >= hi {
                return out;
            }
        }
        if next <= hi {
            out.push((next, hi));
        }
        out
    }

    /// Forget every number below `x`.
    pub fn remove_below(&mut self, x: u64) {
        let keep = self.0.split_off(&x);
        let straddling = self.0.range(..x).next_back().map(|(_, &e)| e);
        self.0 = keep;
        if let Some(e) = straddling.filter(|&e| e >= x) {
            self.insert(x, e);
        }
    }

    /// The largest number in the set.
    pub fn max(&self) -> Option<u64> {
        self.0.values().next_back().copied()
    }

    /// How many ranges the set holds.
    pub fn ranges(&self) -> usize {
        self.0.len()
    }
}

/// Why numbers of a session have no record of their own in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The record never reached proctor: the ring buffer was full (the kernel's loss counters
    /// count it), or it was lost in a way nothing counted.
    Lost,
    /// The record arrived and was folded into another: the chunks of one TLS call become one
    /// `tls` record (which carries the first chunk's number), a duplicate exit report is dropped.
    Merged,
}

/// Numbers of one slot no record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub kslot: u32,
    pub first: u64,
    pub last: u64,
    pub reason: GapReason,
}

impl Gap {
    pub fn count(&self) -> u64 {
        self.last - self.first + 1
    }
}

#[derive(Debug, Default)]
struct Slot {
    present: RangeSet,
    /// Every number up to here is accounted for (arrived or declared).
    judged: u64,
    /// The largest number at the previous quiescent point: numbers below it that have not
    /// arrived by the next quiescent point never will.
    mark: u64,
    max: u64,
}

/// What the sensor received, per session slot.
#[derive(Debug, Default)]
pub struct Tracker {
    slots: HashMap<u32, Slot>,
    /// Numbers that arrived after they were declared lost (a record held up for longer than a
    /// judging interval): the declaration over-reports by that many.
    pub late: u64,
    /// How far behind the newest number a record can still arrive: what both rings can hold.
    horizon: u64,
}

impl Tracker {
    /// `horizon`: the most records the rings can hold at once; a hole more than that far
    /// behind the newest number of its slot cannot be filled any more.
    pub fn new(horizon: u64) -> Tracker {
        Tracker {
            horizon,
            ..Tracker::default()
        }
    }

    /// A record with this slot and number arrived (slot 0 or number 0: no session).
    pub fn saw(&mut self, kslot: u32, kseq: u64) {
        if kslot == 0 || kseq == 0 {
            return;
        }
        let s = self.slots.entry(kslot).or_default();
        if kseq <= s.judged {
            self.late += 1;
            return;
        }
        s.present.insert(kseq, kseq);
        s.max = s.max.max(kseq);
    }

    /// Holes that can no longer be filled. `quiescent`: both rings were empty after everything
    /// in them was read, so a number at or below the previous quiescent point's newest that has
    /// not arrived is lost (a record takes its number just before it is written to the ring).
    /// Whatever `quiescent`, holes beyond the horizon are final.
    pub fn judge(&mut self, quiescent: bool) -> Vec<Gap> {
        let mut out = Vec::new();
        let mut slots: Vec<u32> = self.slots.keys().copied().collect();
        slots.sort_unstable();
        for k in slots {
            let s = self.slots.get_mut(&k).expect("listed above");
            let mut upto = s.max.saturating_sub(self.horizon);
            if quiescent {
                upto = upto.max(s.mark);
                s.mark = s.max;
            }
            out.extend(judge_slot(k, s, upto));
        }
        out
    }

    /// The end of a slot's session, after the rings were read empty: `taken` is how many
    /// numbers the kernel had handed out when that last read began (its counter), so numbers up
    /// to it, or up to the last arrival, that did not arrive are lost. Forgets the slot.
    pub fn finish(&mut self, kslot: u32, taken: u64) -> Vec<Gap> {
        let Some(mut s) = self.slots.remove(&kslot) else {
            return (taken > 0)
                .then_some(Gap {
                    kslot,
                    first: 1,
                    last: taken,
                    reason: GapReason::Lost,
                })
                .into_iter()
                .collect();
        };
        let upto = taken.max(s.max);
        judge_slot(kslot, &mut s, upto)
    }

    /// Slots seen so far.
    pub fn slots(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.slots.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

fn judge_slot(kslot: u32, s: &mut Slot, upto: u64) -> Vec<Gap> {
    if upto <= s.judged {
        return Vec::new();
    }
    let gaps = s
        .present
        .holes(s.judged + 1, upto)
        .into_iter()
        .map(|(first, last)| Gap {
            kslot,
            first,
            last,
            reason: GapReason::Lost,
        })
        .collect();
    s.judged = upto;
    s.present.remove_below(upto + 1);
    gaps
}

/// Ranges of consecutive numbers of one slot, for declaring `merged` numbers compactly.
pub fn coalesce(kslot: u32, mut nums: Vec<u64>, reason: GapReason) -> Vec<Gap> {
    nums.sort_unstable();
    nums.dedup();
    let mut out: Vec<Gap> = Vec::new();
    for n in nums {
        match out.last_mut() {
            Some(g) if g.last + 1 == n => g.last = n,
            _ => out.push(Gap {
                kslot,
                first: n,
                last: n,
                reason,
            }),
        }
    }
    out
}

/// What one segment of an audit log holds: per slot, the numbers records carry and the numbers
/// `kseq_gap` records declare.
#[derive(Debug, Default)]
pub struct Audit {
    slots: BTreeMap<u32, (RangeSet, RangeSet)>,
}

impl Audit {
    /// A record carrying `kslot`/`kseq`.
    pub fn carried(&mut self, kslot: u32, kseq: u64) {
        if kslot != 0 && kseq != 0 {
            self.slots.entry(kslot).or_default().0.insert(kseq, kseq);
        }
    }

    /// A `kseq_gap` record declaring `first..=last` of `kslot`.
    pub fn declared(&mut self, kslot: u32, first: u64, last: u64) {
        if kslot != 0 && first != 0 {
            self.slots.entry(kslot).or_default().1.insert(first, last);
        }
    }

    /// Numbers from 1 to the largest carried or declared one that no record carries or
    /// declares: (slot, first, last).
    pub fn undeclared(&self) -> Vec<(u32, u64, u64)> {
        let mut out = Vec::new();
        for (&k, (carried, declared)) in &self.slots {
            let mut all = carried.clone();
            for (&s, &e) in &declared.0 {
                all.insert(s, e);
            }
            let Some(max) = all.max() else { continue };
            out.extend(all.holes(1, max).into_iter().map(|(a, b)| (k, a, b)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set_merges_and_finds_holes() {
        let mut r = RangeSet::default();
        for n in [1, 2, 3, 7, 5, 6, 10] {
            r.insert(n, n);
        }
        assert_eq!(r.ranges(), 3);
        assert_eq!(r.holes(1, 12), vec![(4, 4), (8, 9), (11, 12)]);
        assert_eq!(r.holes(5, 7), vec![]);
        assert_eq!(r.holes(6, 9), vec![(8, 9)]);
        r.insert(4, 9);
        assert_eq!(r.holes(1, 10), vec![]);
        r.remove_below(5);
        assert_eq!(r.holes(1, 10), vec![(1, 4)]);
        assert_eq!(r.max(), Some(10));
    }

    fn lost(kslot: u32, first: u64, last: u64) -> Gap {
        Gap {
            kslot,
            first,
            last,
            reason: GapReason::Lost,
        }
    }

    #[test]
    fn reordered_records_are_no_gap_and_a_hole_is_judged_only_when_final() {
        let mut t = Tracker::new(1000);
        // Two rings: 3 and 4 (urgent) arrive before 1 and 2 (bulk); 5 never arrives.
        for n in [3, 4, 6] {
            t.saw(1, n);
        }
        assert_eq!(t.judge(false), vec![], "busy: nothing is final yet");
        assert_eq!(
            t.judge(true),
            vec![],
            "the first quiescent point only marks 6"
        );
        t.saw(1, 1);
        t.saw(1, 2);
        assert_eq!(t.judge(true), vec![lost(1, 5, 5)]);
        t.saw(1, 7);
        assert_eq!(t.finish(1, 9), vec![lost(1, 8, 9)], "the kernel took 9");
        assert_eq!(t.late, 0);
    }

    #[test]
    fn a_record_late_after_its_declaration_is_counted() {
        let mut t = Tracker::new(1000);
        t.saw(2, 2);
        t.judge(true);
        assert_eq!(t.judge(true), vec![lost(2, 1, 1)]);
        t.saw(2, 1);
        assert_eq!(t.late, 1);
    }

    #[test]
    fn holes_beyond_the_horizon_are_final_without_quiet() {
        let mut t = Tracker::new(10);
        t.saw(1, 1);
        t.saw(1, 30);
        assert_eq!(t.judge(false), vec![lost(1, 2, 20)]);
        assert_eq!(t.finish(1, 30), vec![lost(1, 21, 29)]);
        assert_eq!(t.finish(3, 2), vec![lost(3, 1, 2)], "nothing arrived");
    }

    #[test]
    fn merged_numbers_coalesce() {
        let g = coalesce(1, vec![9, 4, 5, 6, 9], GapReason::Merged);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].first, g[0].last, g[1].first, g[1].last), (4, 6, 9, 9));
    }

    #[test]
    fn the_audit_reports_what_nothing_declares() {
        let mut a = Audit::default();
        for n in [1, 2, 5, 9] {
            a.carried(1, n);
        }
        a.declared(1, 3, 4);
        a.carried(2, 2);
        a.carried(0, 7);
        assert_eq!(a.undeclared(), vec![(1, 6, 8), (2, 1, 1)]);
        a.declared(1, 6, 8);
        a.declared(2, 1, 1);
        assert_eq!(a.undeclared(), vec![]);
    }
}
