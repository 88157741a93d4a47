//! Shared by the output tests: sample items.
#![allow(dead_code, reason = "each test file uses a part")]

use proctor_model::{Actor, Alert, Incident};

pub fn alert(n: u32) -> Alert {
    Alert {
        id: format!("a-{n}"),
        severity: "high".into(),
        incident: Some("inc-1".into()),
        rule_id: "L2.LLM_AGENT_HIJACK.shell".into(),
        actor: Actor {
            uid: Some(1000),
            user: "dev".into(),
            ..Actor::default()
        },
        ..Alert::new(
            "agent-7",
            1_795_422_529_123_456_789 + u64::from(n),
            "L2",
            "LLM_AGENT_HIJACK",
            4242 + n,
            "4242-99-1",
            // Characters RFC 5424 structured data must escape, and a quote for JSON.
            format!("python3 spawned bash -c \"x]y\\z\" #{n}"),
        )
    }
}

pub fn incident() -> Incident {
    serde_json::from_value(serde_json::json!({
        "id": "inc-1", "agent_id": "agent-7", "opened_ns": 1_795_422_529_000_000_000u64,
        "updated_ns": 1_795_422_530_000_000_000u64, "severity": "critical",
        "title": "exfiltration chain: credential read, then egress to an unknown destination",
        "techniques": ["T1041", "T1552.001"], "root_pid": 4242, "root_argv": "bash -c x",
        "alert_ids": ["a-1", "a-2"], "timeline": []
    }))
    .expect("incident")
}

pub fn source() -> proctor_outputs::Source {
    proctor_outputs::Source {
        host: "testhost".into(),
        run_id: "20260101T000000Z-0badcafe".into(),
        version: "0.1.0".into(),
        pid: std::process::id(),
    }
}
