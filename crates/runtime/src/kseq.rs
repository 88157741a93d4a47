//! Gaps in the kernel's record numbers, as the run loop declares them: every gap becomes a
//! signed `kseq_gap` record (what `proctor verify` checks the numbers against); numbers lost
//! beyond what the kernel's loss counters explain also become a `lost` record of kind
//! [`UNACCOUNTED`], which detection raises as EVENTS_LOST.

use proctor_model::kseq::{Gap, GapReason, NUMBERED_KINDS};

/// The `lost` kind of numbers missing beyond the kernel's loss counters.
pub const UNACCOUNTED: &str = "kseq_unaccounted";

/// Running totals of one pipeline.
#[derive(Debug, Default)]
pub struct Book {
    /// Records the kernel counted as lost (and records that could not be decoded).
    counted: u64,
    /// Numbers declared lost so far.
    declared: u64,
    /// Of those, already reported as unaccounted.
    reported: u64,
}

impl Book {
    /// A `lost` record of `what`.
    pub fn counted(&mut self, what: &str, count: u64) {
        if what == "malformed" || NUMBERED_KINDS.contains(&what) {
            self.counted += count;
        }
    }

    /// Gaps declared now; returns how many lost numbers no loss counter explains (new ones).
    pub fn declared(&mut self, gaps: &[Gap]) -> u64 {
        self.declared += gaps
            .iter()
            .filter(|g| g.reason == GapReason::Lost)
            .map(Gap::count)
            .sum::<u64>();
        let unexplained = self.declared.saturating_sub(self.counted);
        let new = unexplained.saturating_sub(self.reported);
        self.reported += new;
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost(first: u64, last: u64) -> Gap {
        Gap {
            kslot: 1,
            first,
            last,
            reason: GapReason::Lost,
        }
    }

    #[test]
    fn only_numbers_no_counter_explains_are_unaccounted() {
        let mut b = Book::default();
        b.counted("file_open", 5);
        b.counted("output_syslog", 100);
        assert_eq!(b.declared(&[lost(3, 7)]), 0, "five counted, five missing");
        let merged = Gap {
            reason: GapReason::Merged,
            ..lost(8, 20)
        };
        assert_eq!(b.declared(&[merged]), 0, "merged numbers are not losses");
        assert_eq!(b.declared(&[lost(30, 31)]), 2);
        assert_eq!(b.declared(&[]), 0, "said once");
        b.counted("exec", 1);
        assert_eq!(b.declared(&[lost(40, 41)]), 1);
    }
}
