//! What the view shows, built from records alone: sessions, alerts, incidents, per-kind rates
//! and losses. Pure (time is a parameter), so it is tested without a terminal or a kernel.
//!
//! Records are read loosely as JSON rather than as the model's types: the view must keep working
//! on logs written by older and newer proctor versions, and a field it does not know is ignored.

use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

/// The rate window: records per second are averaged over this many seconds.
pub const RATE_WINDOW_S: u64 = 10;
/// Alerts kept for the view (newest); the count of all alerts is kept apart.
const MAX_ALERTS: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct Session {
    pub agent_id: String,
    pub host: String,
    pub command: String,
    pub mode: String,
    pub started_ns: u64,
    pub last_ns: u64,
    /// Why monitoring ended, once `sensor_stop` is read.
    pub stopped: Option<String>,
    pub records: u64,
    pub alerts: u64,
    /// `lost` records: count per `what`.
    pub lost: BTreeMap<String, u64>,
    /// Per-second buckets (second, count), newest last, for this session's record rate.
    rate: VecDeque<(u64, u64)>,
}

impl Session {
    pub fn lost_total(&self) -> u64 {
        self.lost.values().sum()
    }

    pub fn rate(&self, now_ns: u64) -> f64 {
        window_sum(&self.rate, now_ns) as f64 / RATE_WINDOW_S as f64
    }
}

#[derive(Debug, Clone)]
pub struct AlertRow {
    pub session: String,
    pub ts_ns: u64,
    pub agent_id: String,
    pub channel: String,
    pub kind: String,
    pub severity: String,
    pub action: String,
    pub summary: String,
}

#[derive(Debug, Clone)]
pub struct IncidentRow {
    pub session: String,
    pub id: String,
    pub updated_ns: u64,
    pub severity: String,
    pub title: String,
    pub alerts: usize,
}

#[derive(Debug, Clone)]
pub struct KindStats {
    pub total: u64,
    buckets: VecDeque<(u64, u64)>,
}

impl KindStats {
    pub fn rate(&self, now_ns: u64) -> f64 {
        window_sum(&self.buckets, now_ns) as f64 / RATE_WINDOW_S as f64
    }
}

#[derive(Debug, Default)]
pub struct State {
    /// By session name (the run directory, relative to the one given).
    pub sessions: BTreeMap<String, Session>,
    /// Newest first.
    pub alerts: VecDeque<AlertRow>,
    pub alerts_total: u64,
    /// By (session, incident id): the latest version of each.
    pub incidents: BTreeMap<(String, String), IncidentRow>,
    /// Records per `type`, over all sessions.
    pub kinds: BTreeMap<String, KindStats>,
    /// Lines that were not a JSON record (counted, never dropped silently).
    pub unparsed: u64,
}

fn bump(buckets: &mut VecDeque<(u64, u64)>, ts_ns: u64) {
    let sec = ts_ns / 1_000_000_000;
    match buckets.iter_mut().rev().find(|(s, _)| *s == sec) {
        Some((_, n)) => *n += 1,
        None => {
            // Keep buckets ordered; a record older than every kept bucket only counts in totals.
            let pos = buckets.iter().position(|(s, _)| *s > sec);
            match pos {
                Some(0) if buckets.len() as u64 > RATE_WINDOW_S => {}
                Some(i) => buckets.insert(i, (sec, 1)),
                None => buckets.push_back((sec, 1)),
            }
        }
    }
    while buckets.len() as u64 > RATE_WINDOW_S + 1 {
        buckets.pop_front();
    }
}

/// Records in the whole seconds (now - window, now].
fn window_sum(buckets: &VecDeque<(u64, u64)>, now_ns: u64) -> u64 {
    let now = now_ns / 1_000_000_000;
    buckets
        .iter()
        .filter(|(s, _)| *s <= now && *s + RATE_WINDOW_S > now)
        .map(|(_, n)| n)
        .sum()
}

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        // Byte strings that are not UTF-8 are {"b64": ...}: show that they are there.
        other => other.to_string(),
    }
}

impl State {
    /// Apply one line of a session's audit log.
    pub fn apply(&mut self, session: &str, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let v: Value = match serde_json::from_slice(line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                self.unparsed += 1;
                return;
            }
        };
        let kind = v["type"].as_str().unwrap_or("(no type)").to_string();
        let ts = v["ts_ns"].as_u64().unwrap_or(0);
        let s = self.sessions.entry(session.to_string()).or_default();
        s.records += 1;
        s.last_ns = s.last_ns.max(ts);
        if s.agent_id.is_empty() {
            s.agent_id = text(&v, "agent_id");
        }
        bump(&mut s.rate, ts);
        let k = self.kinds.entry(kind.clone()).or_insert(KindStats {
            total: 0,
            buckets: VecDeque::new(),
        });
        k.total += 1;
        bump(&mut k.buckets, ts);
        match kind.as_str() {
            "sensor_start" => {
                s.host = text(&v, "host");
                s.command = text(&v, "command");
                s.mode = text(&v, "mode");
                s.started_ns = ts;
                s.stopped = None;
            }
            "sensor_stop" => s.stopped = Some(text(&v, "reason")),
            "mode_change" => s.mode = text(&v, "to"),
            "lost" => {
                let n = v["count"].as_u64().unwrap_or(0);
                *s.lost.entry(text(&v, "what")).or_default() += n;
            }
            "alert" => {
                s.alerts += 1;
                self.alerts_total += 1;
                self.alerts.push_front(AlertRow {
                    session: session.to_string(),
                    ts_ns: ts,
                    agent_id: text(&v, "agent_id"),
                    channel: text(&v, "channel"),
                    kind: text(&v, "kind"),
                    severity: text(&v, "severity"),
                    action: text(&v, "action"),
                    summary: text(&v, "summary"),
                });
                self.alerts.truncate(MAX_ALERTS);
            }
            "incident" => {
                let id = text(&v, "id");
                let row = IncidentRow {
                    session: session.to_string(),
                    id: id.clone(),
                    updated_ns: v["updated_ns"].as_u64().unwrap_or(ts),
                    severity: text(&v, "severity"),
                    title: text(&v, "title"),
                    alerts: v["alert_ids"].as_array().map_or(0, Vec::len),
                };
                self.incidents.insert((session.to_string(), id), row);
            }
            _ => {}
        }
    }

    /// Incidents, most recently updated first.
    pub fn incidents_newest_first(&self) -> Vec<&IncidentRow> {
        let mut v: Vec<_> = self.incidents.values().collect();
        v.sort_by_key(|i| std::cmp::Reverse(i.updated_ns));
        v
    }

    pub fn lost_total(&self) -> u64 {
        self.sessions.values().map(Session::lost_total).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_795_000_000_000_000_000;

    fn rec(t: &str, ts: u64, extra: &str) -> Vec<u8> {
        format!(r#"{{"type":"{t}","ts_ns":{ts},"agent_id":"a"{extra}}}"#).into_bytes()
    }

    #[test]
    fn rates_are_per_kind_over_the_window() {
        let mut st = State::default();
        for i in 0..20 {
            st.apply("s", &rec("exec", T0 + i * 500_000_000, ""));
        }
        st.apply("s", &rec("file_open", T0, ""));
        let now = T0 + 9_900_000_000;
        assert_eq!(st.kinds["exec"].total, 20);
        assert!((st.kinds["exec"].rate(now) - 2.0).abs() < 1e-9);
        assert!((st.kinds["file_open"].rate(now) - 0.1).abs() < 1e-9);
        // Ten seconds later the window is empty; totals stay.
        assert_eq!(st.kinds["exec"].rate(now + 20_000_000_000), 0.0);
        assert!((st.sessions["s"].rate(now) - 2.1).abs() < 1e-9);
    }

    #[test]
    fn sessions_alerts_incidents_losses() {
        let mut st = State::default();
        st.apply(
            "s",
            &rec(
                "sensor_start",
                T0,
                r#","host":"h","mode":"audit","command":"run""#,
            ),
        );
        st.apply("s", &rec("lost", T0 + 1, r#","what":"exec","count":3"#));
        st.apply("s", &rec("lost", T0 + 2, r#","what":"exec","count":2"#));
        st.apply(
            "s",
            &rec("alert", T0 + 3, r#","kind":"K1","severity":"high""#),
        );
        st.apply(
            "s",
            &rec("alert", T0 + 4, r#","kind":"K2","severity":"low""#),
        );
        st.apply(
            "s",
            &rec("incident", T0 + 5, r#","id":"i1","alert_ids":["x"]"#),
        );
        st.apply(
            "s",
            &rec(
                "incident",
                T0 + 6,
                r#","id":"i1","alert_ids":["x","y"],"severity":"critical""#,
            ),
        );
        st.apply("s", &rec("mode_change", T0 + 7, r#","to":"enforce""#));
        st.apply("s", b"{not json");
        st.apply("s", b"");
        st.apply(
            "s",
            &rec("sensor_stop", T0 + 8, r#","reason":"agent_exited""#),
        );
        let s = &st.sessions["s"];
        assert_eq!((s.host.as_str(), s.mode.as_str()), ("h", "enforce"));
        assert_eq!(s.lost["exec"], 5);
        assert_eq!(s.stopped.as_deref(), Some("agent_exited"));
        assert_eq!(st.alerts[0].kind, "K2", "newest first");
        assert_eq!(st.incidents.len(), 1);
        let inc = st.incidents_newest_first()[0];
        assert_eq!((inc.alerts, inc.severity.as_str()), (2, "critical"));
        assert_eq!(st.unparsed, 1);
        assert_eq!(st.lost_total(), 5);
    }
}
