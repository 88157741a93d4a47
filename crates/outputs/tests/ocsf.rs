//! OCSF Detection Finding (class 2004, schema 1.1.0): the attributes the schema marks
//! required, with the types and enumerations it gives them, for alerts and incidents.

mod common;

use common::{alert, incident, source};
use proctor_outputs::{render_alert, render_incident, AlertFormat};
use serde_json::Value;

/// Required attributes of a Detection Finding (base event, Findings category and the class),
/// and the required members of the objects among them.
fn assert_detection_finding(v: &Value) {
    for k in [
        "activity_id",
        "category_uid",
        "class_uid",
        "finding_info",
        "metadata",
        "severity_id",
        "time",
        "type_uid",
    ] {
        assert!(!v[k].is_null(), "required `{k}` missing: {v:#}");
    }
    assert_eq!(v["class_uid"], 2004);
    assert_eq!(v["category_uid"], 2);
    let activity = v["activity_id"].as_u64().unwrap();
    assert!(matches!(activity, 1..=3), "activity_id {activity}");
    assert_eq!(v["type_uid"].as_u64().unwrap(), 2004 * 100 + activity);
    let sev = v["severity_id"].as_u64().unwrap();
    assert!(matches!(sev, 0..=6 | 99), "severity_id {sev}");
    // time: a timestamp in milliseconds (2020 to 2100).
    let t = v["time"].as_u64().unwrap();
    assert!(
        (1_577_836_800_000..4_102_444_800_000).contains(&t),
        "time {t} is not ms"
    );
    let fi = &v["finding_info"];
    assert!(fi["uid"].as_str().is_some_and(|s| !s.is_empty()), "{fi}");
    assert!(fi["title"].as_str().is_some_and(|s| !s.is_empty()), "{fi}");
    let md = &v["metadata"];
    assert!(
        md["version"].as_str().is_some_and(|s| s.starts_with("1.")),
        "{md}"
    );
    let product = &md["product"];
    assert!(product["vendor_name"].is_string(), "{md}");
    assert_eq!(product["name"], "proctor");
    assert_eq!(v["device"]["hostname"], "testhost");
    assert!(v["device"]["type_id"].is_u64());
}

#[test]
fn an_alert_is_a_detection_finding() {
    let v = render_alert(&alert(1), AlertFormat::Ocsf, &source());
    assert_detection_finding(&v);
    assert_eq!(v["activity_id"], 1);
    assert_eq!(v["severity_id"], 4, "high is High");
    assert_eq!(v["time"], 1_795_422_529_123u64);
    assert_eq!(v["finding_info"]["uid"], "a-1");
    assert_eq!(
        v["finding_info"]["analytic"]["uid"],
        "L2.LLM_AGENT_HIJACK.shell"
    );
    assert_eq!(v["finding_info"]["related_events"][0]["uid"], "inc-1");
    assert_eq!(v["actor"]["process"]["pid"], 4243);
    assert_eq!(v["actor"]["user"]["name"], "dev");
    assert_eq!(v["actor"]["user"]["uid"], "1000");
    assert_eq!(
        v["metadata"]["correlation_uid"],
        "20260101T000000Z-0badcafe"
    );
    assert_eq!(v["disposition_id"], 15);
    assert_eq!(v["unmapped"]["channel"], "L2");
}

#[test]
fn a_blocked_alert_has_the_blocked_disposition() {
    let v = render_alert(
        &alert(1).with_action("BLOCKED"),
        AlertFormat::Ocsf,
        &source(),
    );
    assert_detection_finding(&v);
    assert_eq!(v["disposition_id"], 2);
}

#[test]
fn an_incident_is_a_detection_finding_with_its_techniques() {
    let v = render_incident(&incident(), AlertFormat::Ocsf, &source());
    assert_detection_finding(&v);
    assert_eq!(v["activity_id"], 2, "an incident that grew is an Update");
    assert_eq!(v["severity_id"], 5);
    let attacks: Vec<&str> = v["finding_info"]["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["technique"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(attacks, ["T1041", "T1552.001"]);
    assert_eq!(v["finding_info"]["related_events"][1]["uid"], "a-2");
    assert_eq!(v["actor"]["process"]["cmd_line"], "bash -c x");
}

#[test]
fn unrated_and_unknown_severities_map_to_ocsf_ids() {
    for (sev, id) in [
        ("", 3),
        ("info", 1),
        ("low", 2),
        ("medium", 3),
        ("critical", 5),
        ("bogus", 99),
    ] {
        let mut a = alert(1);
        a.severity = sev.into();
        let v = render_alert(&a, AlertFormat::Ocsf, &source());
        assert_eq!(v["severity_id"], id, "{sev}");
    }
}
