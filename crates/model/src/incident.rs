//! Incidents: alerts of one agent correlated by causal chain (the process subtree of one tool
//! call, what it wrote, executed and connected to) and time, with a severity from what they
//! contain. An incident is written again each time it grows; the last line of an id is its
//! current state.

use serde::{Deserialize, Serialize};

/// Severities, lowest first (alerts and incidents).
pub const SEVERITIES: &[&str] = &["info", "low", "medium", "high", "critical"];

/// Rank of a severity in [`SEVERITIES`] (0 for an unknown word).
pub fn severity_rank(s: &str) -> usize {
    SEVERITIES.iter().position(|x| *x == s).unwrap_or(0)
}

/// One step of an incident's timeline: an alert, or evidence (a low-severity finding of the
/// same tool call that was not an alert by itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentEvent {
    pub ts_ns: u64,
    pub pid: u32,
    pub kind: String,
    pub severity: String,
    pub summary: String,
    /// The alert's id; None for evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
}

/// A correlated incident (`DIR/incidents.jsonl`, one line per change).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub agent_id: String,
    pub opened_ns: u64,
    pub updated_ns: u64,
    /// info, low, medium, high or critical, from what it contains.
    pub severity: String,
    /// One line for humans, e.g. "exfiltration chain: credential read, then egress to an
    /// unknown destination".
    pub title: String,
    /// MITRE ATT&CK technique ids, sorted.
    pub techniques: Vec<String>,
    /// The tool call: the child of the agent's root process that started the chain.
    pub root_pid: u32,
    pub root_argv: String,
    pub alert_ids: Vec<String>,
    /// Oldest first; bounded (`timeline_dropped` counts what did not fit).
    pub timeline: Vec<IncidentEvent>,
    #[serde(default)]
    pub timeline_dropped: u64,
    /// `open`, or `closed` once it was idle for ten correlation windows or the run ended (its
    /// last line then; later alerts open a new incident). Absent in logs older than this field.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Who and where, as on alerts (the process that triggered its first alert with a kernel
    /// record, its container included): set by the run that writes the incident's record, the
    /// outputs and its certificate (not by detection, so a replay's incidents lack them).
    #[serde(flatten)]
    pub actor: crate::Actor,
    /// The sensor run (the certificates' `run_id`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    /// The file name, in `DIR/incidents/`, of its latest signed certificate (one is written
    /// when it opens, when its severity rises and when it closes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub certificate: String,
}

/// `Incident::status` of an incident that still takes alerts.
pub const INCIDENT_OPEN: &str = "open";
/// `Incident::status` of an incident that takes no more alerts.
pub const INCIDENT_CLOSED: &str = "closed";
