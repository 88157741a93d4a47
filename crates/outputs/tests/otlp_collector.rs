//! The OTLP logs output against a receiver that decodes with the opentelemetry-proto package
//! from PyPI (`make otlp-venv`); skipped, saying why, without that venv.

mod common;

use common::{alert, incident, source};
use proctor_outputs::{AlertFormat, Outputs, OutputsConfig};
use proctor_testkit::receivers::{otlp_python, otlp_receiver, wait_lines};
use serde_json::Value;
use std::time::Duration;

fn attr<'a>(attrs: &'a Value, key: &str) -> &'a Value {
    attrs
        .as_array()
        .unwrap()
        .iter()
        .find(|kv| kv["key"] == key)
        .map_or(&Value::Null, |kv| &kv["value"])
}

#[test]
fn an_opentelemetry_receiver_decodes_alerts_and_incidents() {
    let Some(python) = otlp_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("otlp.jsonl");
    let (_rx, port) = otlp_receiver(&python, &out);
    let cfg = OutputsConfig {
        otlp: Some(format!("http://127.0.0.1:{port}/v1/logs")),
        format: AlertFormat::Native,
        ..OutputsConfig::default()
    };
    let mut o = Outputs::start(&cfg, source()).unwrap();
    o.alert(&alert(1));
    o.incident(&incident());
    let lines = wait_lines(&out, 2, Duration::from_secs(20));
    let stats = o.close(Duration::from_secs(5));
    assert_eq!(
        (stats[0].name.as_str(), stats[0].sent, stats[0].lost()),
        ("otlp", 2, 0)
    );

    let req: Value = serde_json::from_str(&lines[0]).unwrap();
    let rl = &req["resourceLogs"][0];
    let res = &rl["resource"]["attributes"];
    assert_eq!(attr(res, "service.name")["stringValue"], "proctor");
    assert_eq!(attr(res, "host.name")["stringValue"], "testhost");
    assert_eq!(
        attr(res, "proctor.run_id")["stringValue"],
        "20260101T000000Z-0badcafe"
    );
    let rec = &rl["scopeLogs"][0]["logRecords"][0];
    // protobuf JSON writes 64-bit integers as strings.
    assert_eq!(rec["timeUnixNano"], "1795422529123456790");
    assert_eq!(rec["severityNumber"], "SEVERITY_NUMBER_ERROR");
    assert_eq!(rec["severityText"], "high");
    assert_eq!(rec["eventName"], "proctor.alert");
    let a = &rec["attributes"];
    assert_eq!(attr(a, "proctor.alert.id")["stringValue"], "a-1");
    assert_eq!(
        attr(a, "proctor.alert.kind")["stringValue"],
        "LLM_AGENT_HIJACK"
    );
    assert_eq!(attr(a, "process.pid")["intValue"], "4243");
    assert_eq!(attr(a, "user.name")["stringValue"], "dev");
    let body: Value = serde_json::from_str(rec["body"]["stringValue"].as_str().unwrap()).unwrap();
    assert_eq!(body["id"], "a-1");

    let req: Value = serde_json::from_str(&lines[1]).unwrap();
    let rec = &req["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    assert_eq!(rec["severityNumber"], "SEVERITY_NUMBER_FATAL");
    assert_eq!(rec["eventName"], "proctor.incident");
    assert_eq!(
        attr(&rec["attributes"], "proctor.incident.techniques")["stringValue"],
        "T1041,T1552.001"
    );
}
