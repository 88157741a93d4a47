//! OTLP logs over HTTP (`POST .../v1/logs`, `Content-Type: application/x-protobuf`), the
//! protocol an OpenTelemetry collector takes on port 4318. One request per alert or incident:
//! a LogRecord whose body is the item's JSON (the run's format), with the identifying fields as
//! attributes and the host, run and version on the resource. Retries as the webhook does.
//!
//! The messages are the subset of opentelemetry-proto's `logs/v1`, `common/v1` and
//! `resource/v1` that proctor fills, with the upstream field numbers (fields proctor never
//! sets are left out; protobuf readers skip nothing they expect and default the rest).

use crate::queue::{Counters, Deliver};
use crate::webhook::{agent, check_http_url, post};
use crate::{render, AlertFormat, Item, Source};
use prost::Message;
use std::sync::Arc;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportLogsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_logs: Vec<ResourceLogs>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceLogs {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_logs: Vec<ScopeLogs>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeLogs {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub log_records: Vec<LogRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LogRecord {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(int32, tag = "2")]
    pub severity_number: i32,
    #[prost(string, tag = "3")]
    pub severity_text: String,
    #[prost(message, optional, tag = "5")]
    pub body: Option<AnyValue>,
    #[prost(message, repeated, tag = "6")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "11")]
    pub observed_time_unix_nano: u64,
    #[prost(string, tag = "12")]
    pub event_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 3")]
    pub value: Option<any_value::Value>,
}

pub mod any_value {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "1")]
        StringValue(String),
        #[prost(int64, tag = "3")]
        IntValue(i64),
    }
}

fn kv_str(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
    }
}

fn kv_int(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
    }
}

/// OpenTelemetry SeverityNumber of a proctor severity: INFO 9, INFO2 10 (low), WARN 13
/// (medium and unrated), ERROR 17 (high), FATAL 21 (critical).
pub fn severity_number(s: &str) -> i32 {
    match s {
        "info" => 9,
        "low" => 10,
        "high" => 17,
        "critical" => 21,
        _ => 13,
    }
}

/// Who acted (an alert's or an incident's), in OpenTelemetry's semantic conventions for users,
/// containers and Kubernetes.
fn identity_attrs(who: &proctor_model::Actor, v: &mut Vec<KeyValue>) {
    if let Some(uid) = who.uid {
        v.push(kv_int("user.id", i64::from(uid)));
    }
    if !who.user.is_empty() {
        v.push(kv_str("user.name", &who.user));
    }
    if let Some(c) = &who.container {
        v.push(kv_str("container.id", &c.id()));
        v.push(kv_str("container.runtime", c.runtime.as_str()));
        if let Some(p) = c.pod_uid() {
            v.push(kv_str("k8s.pod.uid", &p));
        }
    }
}

/// The export request for one item.
pub fn request(item: &Item, format: AlertFormat, source: &Source) -> ExportLogsServiceRequest {
    let (ts, severity, event, mut attrs) = match item {
        Item::Alert(a) => {
            let mut v = vec![
                kv_str("proctor.alert.id", &a.id),
                kv_str("proctor.alert.kind", &a.kind),
                kv_str("proctor.alert.channel", &a.channel),
                kv_str("proctor.alert.rule_id", &a.rule_id),
                kv_str("proctor.alert.action", &a.action),
                kv_int("process.pid", i64::from(a.pid)),
                kv_str("proctor.exec_id", &a.exec_id),
                kv_str("proctor.agent_id", &a.agent_id),
            ];
            if let Some(i) = &a.incident {
                v.push(kv_str("proctor.incident.id", i));
            }
            identity_attrs(&a.actor, &mut v);
            (a.ts_ns, a.severity.as_str(), "proctor.alert", v)
        }
        Item::Incident(i) => {
            let mut v = vec![
                kv_str("proctor.incident.id", &i.id),
                kv_str("proctor.incident.techniques", &i.techniques.join(",")),
                kv_int("process.pid", i64::from(i.root_pid)),
                kv_str("proctor.agent_id", &i.agent_id),
            ];
            identity_attrs(&i.actor, &mut v);
            (i.updated_ns, i.severity.as_str(), "proctor.incident", v)
        }
    };
    attrs.retain(|kv| {
        !matches!(&kv.value, Some(AnyValue { value: Some(any_value::Value::StringValue(s)) }) if s.is_empty())
    });
    let record = LogRecord {
        time_unix_nano: ts,
        observed_time_unix_nano: proctor_model::now_ns(),
        severity_number: severity_number(severity),
        severity_text: if severity.is_empty() {
            "medium"
        } else {
            severity
        }
        .into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(
                render(item, format, source, false).to_string(),
            )),
        }),
        attributes: attrs,
        event_name: event.into(),
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv_str("service.name", "proctor"),
                    kv_str("service.version", &source.version),
                    kv_str("host.name", &source.host),
                    kv_str("proctor.run_id", &source.run_id),
                ],
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "proctor".into(),
                    version: source.version.clone(),
                }),
                log_records: vec![record],
            }],
        }],
    }
}

/// A checked OTLP/HTTP logs endpoint (the full URL, e.g. `http://127.0.0.1:4318/v1/logs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpTarget(pub String);

impl std::str::FromStr for OtlpTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        check_http_url(s)?;
        Ok(OtlpTarget(s.to_string()))
    }
}

pub(crate) struct Otlp {
    target: OtlpTarget,
    attempts: u32,
    format: AlertFormat,
    source: Arc<Source>,
    agent: ureq::Agent,
}

impl Otlp {
    pub fn new(
        target: OtlpTarget,
        attempts: u32,
        format: AlertFormat,
        source: Arc<Source>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        Otlp {
            agent: agent(&source.version, tls),
            target,
            attempts,
            format,
            source,
        }
    }
}

impl Deliver<Item> for Otlp {
    fn deliver(&mut self, item: &Item, counters: &Counters) -> Result<(), String> {
        let body = request(item, self.format, &self.source).encode_to_vec();
        post(
            &self.agent,
            &self.target.0,
            "application/x-protobuf",
            &body,
            self.attempts,
            counters,
        )
    }
}
