//! OCSF Detection Finding (class_uid 2004, schema 1.1) for alerts and incidents. The mapping
//! is documented in docs/outputs.md; fields OCSF has no place for go under `unmapped`, so
//! nothing of the native alert is lost.

use crate::Source;
use proctor_model::{Actor, Alert, Incident};
use serde_json::{json, Map, Value};

pub const SCHEMA_VERSION: &str = "1.1.0";
const CLASS_UID: u64 = 2004;
/// Findings.
const CATEGORY_UID: u64 = 2;
const ACTIVITY_CREATE: u64 = 1;
const ACTIVITY_UPDATE: u64 = 2;

/// OCSF severity_id from proctor's severity names; unrated alerts are Medium (an alert is
/// worth a look by default).
fn severity_id(s: &str) -> (u64, &'static str) {
    match s {
        "info" => (1, "Informational"),
        "low" => (2, "Low"),
        "medium" | "" => (3, "Medium"),
        "high" => (4, "High"),
        "critical" => (5, "Critical"),
        _ => (99, "Other"),
    }
}

fn metadata(source: &Source, uid: &str) -> Value {
    json!({
        "version": SCHEMA_VERSION,
        "uid": uid,
        "product": {
            "name": "proctor",
            "vendor_name": "proctor",
            "version": source.version,
        },
        "log_name": "alerts",
        // The run: every finding of one sensor run shares it.
        "correlation_uid": source.run_id,
    })
}

fn device(source: &Source) -> Value {
    // type_id 0: Unknown (proctor does not know whether it runs on a server or a desktop).
    json!({ "hostname": source.host, "type_id": 0 })
}

fn base(
    activity: u64,
    time_ns: u64,
    severity: &str,
    source: &Source,
    uid: &str,
) -> Map<String, Value> {
    let (sev, sev_name) = severity_id(severity);
    let mut m = Map::new();
    m.insert("class_uid".into(), json!(CLASS_UID));
    m.insert("class_name".into(), json!("Detection Finding"));
    m.insert("category_uid".into(), json!(CATEGORY_UID));
    m.insert("category_name".into(), json!("Findings"));
    m.insert("activity_id".into(), json!(activity));
    m.insert(
        "activity_name".into(),
        json!(if activity == ACTIVITY_CREATE {
            "Create"
        } else {
            "Update"
        }),
    );
    m.insert("type_uid".into(), json!(CLASS_UID * 100 + activity));
    m.insert("severity_id".into(), json!(sev));
    m.insert("severity".into(), json!(sev_name));
    // OCSF time is milliseconds since the epoch.
    m.insert("time".into(), json!(time_ns / 1_000_000));
    // status_id 1: New.
    m.insert("status_id".into(), json!(1));
    m.insert("metadata".into(), metadata(source, uid));
    m.insert("device".into(), device(source));
    m
}

/// Who acted, into a finding: `uid` (and the name of `who`) as the actor's and its process's
/// user, `who`'s container as OCSF's Container object (`orchestrator` and `pod_uuid` only under
/// Kubernetes). Alerts and incidents alike.
fn put_identity(m: &mut Map<String, Value>, actor: &mut Value, uid: Option<u32>, who: &Actor) {
    if let Some(uid) = uid {
        let mut user = json!({ "uid": uid.to_string() });
        if !who.user.is_empty() {
            user["name"] = json!(who.user);
        }
        actor["process"]["user"] = user.clone();
        actor["user"] = user;
    }
    m.insert("actor".into(), actor.take());
    if let Some(c) = &who.container {
        let mut o = json!({ "uid": c.id(), "runtime": c.runtime.as_str() });
        if let Some(p) = c.pod_uid() {
            o["pod_uuid"] = json!(p);
            o["orchestrator"] = json!("Kubernetes");
        }
        m.insert("container".into(), o);
    }
}

/// An alert as a Detection Finding.
pub fn alert(a: &Alert, source: &Source) -> Value {
    let mut m = base(ACTIVITY_CREATE, a.ts_ns, &a.severity, source, &a.id);
    let first = a.trigger.first();
    let mut process = json!({
        "pid": a.pid,
        "uid": a.exec_id,
    });
    if let Some(r) = first {
        process["name"] = json!(r.comm.escaped());
        if r.ppid != 0 {
            process["parent_process"] = json!({ "pid": r.ppid });
        }
    }
    let mut actor = json!({ "process": process, "app_name": a.agent_id });
    // The alert's own uid (filled when written), else its trigger record's.
    let uid = a
        .actor
        .uid
        .or_else(|| first.and_then(|r| r.identity.as_ref()).map(|i| i.uid));
    put_identity(&mut m, &mut actor, uid, &a.actor);
    let title = if a.summary.is_empty() {
        a.kind.clone()
    } else {
        a.summary.clone()
    };
    let mut fi = json!({
        "uid": if a.id.is_empty() { format!("{}-{}", a.agent_id, a.ts_ns) } else { a.id.clone() },
        "title": title,
        "desc": a.summary,
        "types": [a.kind],
        "analytic": {
            "name": a.kind,
            "uid": if a.rule_id.is_empty() { a.kind.clone() } else { a.rule_id.clone() },
            "category": a.channel,
            // type_id 1: Rule.
            "type_id": 1,
            "type": "Rule",
        },
        "product_uid": "proctor",
    });
    if let Some(inc) = &a.incident {
        fi["related_events"] = json!([{ "uid": inc, "type": "incident" }]);
    }
    m.insert("finding_info".into(), fi);
    // disposition: 2 Blocked when enforcement stopped the action, else 1 Allowed... but the
    // action of an alert-only finding was not allowed by anyone; OCSF's 15 "Detected" fits it.
    let (disp, disp_name) = if a.action == "BLOCKED" {
        (2, "Blocked")
    } else {
        (15, "Detected")
    };
    m.insert("disposition_id".into(), json!(disp));
    m.insert("disposition".into(), json!(disp_name));
    m.insert("message".into(), json!(a.summary));
    m.insert(
        "unmapped".into(),
        json!({
            "agent_id": a.agent_id,
            "channel": a.channel,
            "kind": a.kind,
            "divergence": a.divergence,
            "exec_id": a.exec_id,
            "action": a.action,
            "count": a.count,
            "incident": a.incident,
            "ts_ns": a.ts_ns,
            "gid": a.actor.gid,
            "certificate": a.certificate,
        }),
    );
    Value::Object(m)
}

/// An incident (opened or grown) as a Detection Finding: the first version is a Create, later
/// ones an Update of the same `finding_info.uid`.
pub fn incident(i: &Incident, source: &Source) -> Value {
    let activity = if i.updated_ns > i.opened_ns && i.alert_ids.len() > 1 {
        ACTIVITY_UPDATE
    } else {
        ACTIVITY_CREATE
    };
    let mut m = base(activity, i.updated_ns, &i.severity, source, &i.id);
    let mut actor = json!({
        "process": { "pid": i.root_pid, "cmd_line": i.root_argv },
        "app_name": i.agent_id,
    });
    put_identity(&mut m, &mut actor, i.actor.uid, &i.actor);
    let attacks: Vec<Value> = i
        .techniques
        .iter()
        .map(|t| json!({ "technique": { "uid": t } }))
        .collect();
    let related: Vec<Value> = i
        .alert_ids
        .iter()
        .map(|id| json!({ "uid": id, "type": "alert" }))
        .collect();
    m.insert(
        "finding_info".into(),
        json!({
            "uid": i.id,
            "title": i.title,
            "types": ["incident"],
            "attacks": attacks,
            "related_events": related,
            "first_seen_time": i.opened_ns / 1_000_000,
            "last_seen_time": i.updated_ns / 1_000_000,
            "product_uid": "proctor",
        }),
    );
    m.insert("message".into(), json!(i.title));
    m.insert(
        "unmapped".into(),
        json!({
            "agent_id": i.agent_id,
            "opened_ns": i.opened_ns,
            "updated_ns": i.updated_ns,
            "timeline_len": i.timeline.len(),
            "timeline_dropped": i.timeline_dropped,
        }),
    );
    Value::Object(m)
}
