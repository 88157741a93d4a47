//! L1: scheduling-entropy drift (`DRIFT_DETECTED`) from the kernel's `sched` summaries.

use super::*;

/// Context switches per second of a summary.
fn switches_per_s(s: &Sched) -> f64 {
    s.switches as f64 * NS as f64 / s.interval_ns.max(1) as f64
}

/// L1 divergence of one window from the baseline: the larger of the histogram shape divergence
/// (mean JSD of the on-CPU and off-CPU histograms) and the switch-rate divergence
/// (ln(rate ratio) / ln 64, capped at 1: a 64-fold rise counts as fully different). Shapes
/// alone miss an agent that does the same things much more often. The rate term is one-sided:
/// an agent going quiet (waiting on its model between tool calls, which real agents do after a
/// busy warm-up) is not what L1 looks for; floods, scans, mining and exfiltration loops make it
/// busier, and a quieter but different pattern still shows in the shape. Returns (d, shape, rate).
pub(crate) fn sched_divergence(
    run: &[u64],
    off: &[u64],
    rate: f64,
    b: &SchedProfile,
) -> (f64, f64, f64) {
    let shape = (jsd(run, &b.run_hist) + jsd(off, &b.off_hist)) / 2.0;
    let ratio = (rate + 1.0) / (b.switches_per_s + 1.0);
    let rate_div = (ratio.ln().max(0.0) / 64f64.ln()).min(1.0);
    (shape.max(rate_div), shape, rate)
}

impl Engine {
    pub(super) fn on_sched(&mut self, r: &Record, s: &Sched, out: &mut Vec<(String, Alert)>) {
        if s.run_hist.len() != SCHED_BUCKETS || s.off_hist.len() != SCHED_BUCKETS {
            return;
        }
        let p = &self.policy.sched;
        if s.switches < p.min_switches {
            return;
        }
        self.sched_recs.push_back(r.clone());
        if self.sched_recs.len() > MAX_TRIGGER {
            self.sched_recs.pop_front();
        }
        if let Phase::Learning { sched, .. } = &mut self.phase {
            sched.push((s.run_hist.clone(), s.off_hist.clone(), switches_per_s(s)));
            return;
        }
        if !p.enabled {
            return;
        }
        let Some(b) = &self.base.sched else {
            return;
        };
        let (d, shape, rate) = sched_divergence(&s.run_hist, &s.off_hist, switches_per_s(s), b);
        let reference = b.jsd_mean + p.slack.max(p.slack_sigma * b.jsd_sd);
        self.cusum = (self.cusum + d - reference).max(0.0);
        if self.cusum > p.threshold {
            let score = self.cusum;
            let summary = format!(
                "scheduling behaviour drifted: window divergence {d:.3} (histogram JSD {shape:.3}, \
                 {rate:.0} switches/s vs {:.0}) against the baseline's {:.3} ± {:.3}; \
                 CUSUM {score:.3} > {}",
                b.switches_per_s, b.jsd_mean, b.jsd_sd, p.threshold
            );
            let trig = self.sched_recs.iter().cloned().collect();
            self.cusum = 0.0;
            let a = self.alert(r, "L1", "DRIFT_DETECTED", score, summary, trig);
            out.push(("L1 sched".into(), a));
        }
    }
}
