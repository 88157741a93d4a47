use super::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// Samples by (name, sorted labels).
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

/// A strict reader of the exposition: every line is a `# HELP`/`# TYPE`/`# UNIT` comment or a
/// sample `name{k="v",...} value`, the text ends with `# EOF`, and every sample belongs to the
/// family typed before it. Returns (name, sorted labels) -> value.
fn parse(text: &str) -> Samples {
    let mut out = BTreeMap::new();
    let mut family: Option<String> = None;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"# EOF"),
        "exposition ends with # EOF:\n{text}"
    );
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut f = rest.splitn(3, ' ');
            let (what, name) = (f.next().unwrap(), f.next().unwrap_or(""));
            assert!(["HELP", "TYPE", "UNIT"].contains(&what), "comment: {line}");
            assert!(name_ok(name), "family name: {line}");
            if what == "TYPE" {
                let t = f.next().unwrap_or("");
                assert!(
                    ["counter", "gauge", "info", "histogram", "unknown"].contains(&t),
                    "type: {line}"
                );
                family = Some(name.to_string());
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                let l = l
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("labels: {line}"));
                let mut labels: Vec<(String, String)> = l
                    .split("\",")
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv
                            .split_once("=\"")
                            .unwrap_or_else(|| panic!("label: {line}"));
                        assert!(name_ok(k), "label name: {line}");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                labels.sort();
                (n, labels)
            }
            None => (series, Vec::new()),
        };
        assert!(name_ok(name), "sample name: {line}");
        let fam = family
            .as_deref()
            .unwrap_or_else(|| panic!("sample before TYPE: {line}"));
        assert!(name.starts_with(fam), "{name} outside its family {fam}");
        out.insert((name.to_string(), labels), value);
    }
    out
}

fn get(m: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    m.get(&(name.to_string(), l)).copied()
}

#[test]
fn exposition_parses_back_with_every_series() {
    let m = Arc::new(Metrics::new("9.9.9 (abc)"));
    let mut r = Recorder::new(m.clone());
    for _ in 0..3 {
        r.record("exec");
    }
    r.record("file_open");
    r.alert("LLM_AGENT_HIJACK", "L2", "high");
    r.alert("LLM_AGENT_HIJACK", "L2", "high");
    r.incident("inc-1", "high");
    r.incident("inc-1", "critical"); // grew: one incident, two records
    r.lost("exec", 5);
    r.lost("track_full", 2);
    m.ring("events", 100, 4096);
    m.set_agents(1, 1);
    m.set_programs(|| {
        vec![ProgStat {
            name: "pr_exec".into(),
            run_time_ns: 1_500_000_000,
            run_cnt: 42,
        }]
    });
    m.set_process(|| {
        Some(ProcessStat {
            cpu_seconds: 0.25,
            resident_bytes: 1 << 20,
        })
    });
    m.add_outputs(|| {
        vec![OutputStat {
            name: "syslog".into(),
            sent: 7,
            dropped: 1,
            failed: 2,
        }]
    });
    let text = m.encode();
    let p = parse(&text);
    assert_eq!(
        get(&p, "proctor_records_total", &[("kind", "exec")]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        get(&p, "proctor_records_total", &[("kind", "file_open")]),
        Some(1.0)
    );
    assert_eq!(
        get(
            &p,
            "proctor_alerts_total",
            &[
                ("kind", "LLM_AGENT_HIJACK"),
                ("channel", "L2"),
                ("severity", "high")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        get(&p, "proctor_incidents_total", &[("severity", "high")]),
        Some(1.0)
    );
    assert_eq!(get(&p, "proctor_incident_updates_total", &[]), Some(2.0));
    assert_eq!(
        get(
            &p,
            "proctor_lost_events_total",
            &[("kind", "exec"), ("reason", "ringbuf_full")]
        ),
        Some(5.0)
    );
    assert_eq!(
        get(
            &p,
            "proctor_lost_events_total",
            &[("kind", "fork"), ("reason", "tracked_set_full")]
        ),
        Some(2.0)
    );
    assert_eq!(
        get(&p, "proctor_ringbuf_used_bytes", &[("ring", "events")]),
        Some(100.0)
    );
    assert_eq!(
        get(&p, "proctor_ringbuf_size_bytes", &[("ring", "events")]),
        Some(4096.0)
    );
    assert_eq!(get(&p, "proctor_agents", &[]), Some(1.0));
    assert_eq!(get(&p, "proctor_sessions", &[]), Some(1.0));
    assert_eq!(
        get(&p, "proctor_build_info", &[("version", "9.9.9 (abc)")]),
        Some(1.0)
    );
    assert_eq!(
        get(
            &p,
            "proctor_bpf_program_run_time_seconds_total",
            &[("program", "pr_exec")]
        ),
        Some(1.5)
    );
    assert_eq!(
        get(
            &p,
            "proctor_bpf_program_runs_total",
            &[("program", "pr_exec")]
        ),
        Some(42.0)
    );
    assert_eq!(
        get(&p, "proctor_process_cpu_seconds_total", &[]),
        Some(0.25)
    );
    assert_eq!(
        get(&p, "proctor_process_resident_memory_bytes", &[]),
        Some(1048576.0)
    );
    for (name, v) in [("sent", 7.0), ("dropped", 1.0), ("failed", 2.0)] {
        assert_eq!(
            get(
                &p,
                &format!("proctor_output_{name}_total"),
                &[("output", "syslog")]
            ),
            Some(v)
        );
    }
    // Every series name the docs list is in the exposition, and none the docs do not list.
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/metrics.md"
    ))
    .expect("docs/metrics.md");
    let names: HashSet<&str> = p.keys().map(|(n, _)| n.as_str()).collect();
    for n in &names {
        assert!(
            docs.contains(&format!("`{n}`")),
            "docs/metrics.md does not list {n}"
        );
    }
    let listed = docs
        .split('`')
        .filter(|w| {
            w.starts_with("proctor_") && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .filter(|w| !names.contains(w))
        .collect::<Vec<_>>();
    assert!(
        listed.is_empty(),
        "docs/metrics.md lists series not exposed: {listed:?}"
    );
}

#[test]
fn sources_not_set_leave_their_series_out() {
    let m = Metrics::new("1");
    let text = m.encode();
    let p = parse(&text);
    assert!(
        !text.contains("bpf_program"),
        "no program source, no program series:\n{text}"
    );
    assert!(!text.contains("output_"), "{text}");
    assert_eq!(get(&p, "proctor_agents", &[]), Some(0.0));
}

#[test]
fn health_says_why_it_is_not_healthy() {
    let h = Health::new(Duration::from_millis(200));
    assert!(h.check().unwrap_err().contains("not attached"));
    h.attached();
    assert_eq!(h.check(), Ok(()));
    std::thread::sleep(Duration::from_millis(300));
    let e = h.check().unwrap_err();
    assert!(e.starts_with("pipeline stalled"), "{e}");
    h.beat();
    assert_eq!(h.check(), Ok(()));
    h.ended();
    assert!(h.check().unwrap_err().contains("session ended"));
}

#[test]
fn config_section_deserializes_strictly_and_refuses_remote_by_default() {
    let c: MetricsConfig = toml::from_str("listen = \"127.0.0.1:9464\"").unwrap();
    assert_eq!(c.listen, "127.0.0.1:9464".parse().unwrap());
    assert!(!c.allow_remote);
    c.check().unwrap();
    let e = toml::from_str::<MetricsConfig>("listen = \"127.0.0.1:9464\"\nport = 1").unwrap_err();
    assert!(e.to_string().contains("unknown field `port`"), "{e}");
    let remote: MetricsConfig = toml::from_str("listen = \"0.0.0.0:9464\"").unwrap();
    let e = remote.check().unwrap_err().to_string();
    assert!(e.contains("0.0.0.0:9464 is not loopback"), "{e}");
    let allowed: MetricsConfig =
        toml::from_str("listen = \"0.0.0.0:9464\"\nallow_remote = true").unwrap();
    allowed.check().unwrap();
    let v6: MetricsConfig = toml::from_str("listen = \"[::1]:9464\"").unwrap();
    v6.check().unwrap();
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).unwrap().parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (status, body)
}

#[test]
fn server_serves_metrics_and_health_and_stops_on_drop() {
    let m = Arc::new(Metrics::new("1"));
    let cfg = MetricsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        allow_remote: false,
    };
    let server = Server::start(&cfg, m.clone()).unwrap();
    let addr = server.addr();
    assert_ne!(addr.port(), 0);
    let (status, body) = http_get(addr, "/healthz");
    assert_eq!((status, body.as_str()), (503, "sensor not attached yet\n"));
    m.health.attached();
    assert_eq!(http_get(addr, "/healthz"), (200, "ok\n".into()));
    Recorder::new(m.clone()).record("exec");
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        get(&parse(&body), "proctor_records_total", &[("kind", "exec")]),
        Some(1.0)
    );
    assert_eq!(http_get(addr, "/nope").0, 404);
    drop(server);
    // tiny_http's acceptor thread closes the listener when it next wakes (a connection wakes
    // it), so the socket is gone shortly after the drop, not necessarily at once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the socket closes with the server"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_busy_port_is_one_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = MetricsConfig {
        listen: taken.local_addr().unwrap(),
        allow_remote: false,
    };
    let e = Server::start(&cfg, Arc::new(Metrics::new("1")))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with(&format!("cannot serve metrics on {}", cfg.listen)),
        "{e}"
    );
}
