//! Cooldown aggregation of alerts by key: the first alert of a key goes out; repeats within the
//! window are counted, and the last of them goes out once, with the count, when the window ends
//! (or at [`Cooldown::drain`]). The engine uses it for its alerts; the run loop uses it for the
//! certificates of blocked calls, so that an agent cannot make proctor sign a file per refusal.

use proctor_model::Alert;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
struct Entry {
    until: u64,
    repeats: u64,
    last: Option<Alert>,
}

/// Alerts aggregated by key within `window_ns`.
#[derive(Debug, Clone)]
pub struct Cooldown {
    window_ns: u64,
    keys: BTreeMap<String, Entry>,
    /// Earliest window end among `keys` (u64::MAX when none): most calls skip the scan.
    next: u64,
}

impl Cooldown {
    pub fn new(window_ns: u64) -> Cooldown {
        Cooldown {
            window_ns,
            keys: BTreeMap::new(),
            next: u64::MAX,
        }
    }

    /// The alert to send now (with `count` 1), or None when it is a repeat being counted.
    pub fn offer(&mut self, key: String, mut a: Alert) -> Option<Alert> {
        match self.keys.get_mut(&key) {
            Some(c) if a.ts_ns < c.until => {
                c.repeats += 1;
                c.last = Some(a);
                None
            }
            _ => {
                a.count = 1;
                let until = a.ts_ns.saturating_add(self.window_ns);
                self.next = self.next.min(until);
                self.keys.insert(
                    key,
                    Entry {
                        until,
                        repeats: 0,
                        last: None,
                    },
                );
                Some(a)
            }
        }
    }

    /// The follow-ups of the windows that ended by `now` (u64::MAX: all of them), each the last
    /// repeat with `count` = repeats + 1 and the count in its summary.
    pub fn due(&mut self, now: u64) -> Vec<Alert> {
        if now < self.next {
            return Vec::new();
        }
        let due: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, c)| now >= c.until)
            .map(|(k, _)| k.clone())
            .collect();
        self.next = self
            .keys
            .values()
            .map(|c| c.until)
            .filter(|&u| u > now)
            .min()
            .unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for k in due {
            let Some(c) = self.keys.remove(&k) else {
                continue;
            };
            if let Some(mut a) = c.last {
                a.count = c.repeats + 1;
                a.summary = format!("{} (x{} within the cooldown)", a.summary, a.count);
                out.push(a);
            }
        }
        out
    }

    /// Every pending follow-up, whatever the time (end of a run).
    pub fn drain(&mut self) -> Vec<Alert> {
        self.due(u64::MAX)
    }

    /// Forget every key (repeats seen while learning were never alerts).
    pub fn clear(&mut self) {
        self.keys.clear();
        self.next = u64::MAX;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(ts: u64) -> Alert {
        Alert::new(
            "a",
            ts,
            "L4",
            "EGRESS_BLOCKED",
            1,
            String::new(),
            "connect to 10.0.0.1:443",
        )
        .with_action("BLOCKED")
    }

    #[test]
    fn a_flood_of_one_key_is_one_alert_and_one_counted_follow_up() {
        let mut c = Cooldown::new(60);
        let sent: Vec<Alert> = (0..287)
            .filter_map(|t| c.offer("k".into(), alert(t / 10)))
            .collect();
        assert_eq!(sent.len(), 1);
        assert!(c.due(59).is_empty());
        let f = c.due(60);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].count, 287);
        assert!(f[0].summary.ends_with("(x287 within the cooldown)"));
        // A new window starts afresh; other keys are independent.
        assert!(c.offer("k".into(), alert(61)).is_some());
        assert!(c.offer("j".into(), alert(61)).is_some());
        assert!(c.drain().is_empty(), "no repeats, no follow-up");
    }
}
