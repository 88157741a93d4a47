//! Syslog, RFC 5424 messages over a local datagram socket (`/dev/log`), UDP (RFC 5426) or TCP
//! with octet-counting framing (RFC 6587 section 3.4.1). The structured data element
//! `proctor@32473` names the alert (id, kind, channel, severity, pid, exec_id, incident, rule,
//! run); MSG is the alert's JSON in the run's format, without its trigger and trace records
//! (they stay in the certificate and the audit log) so a message fits a syslog receiver's
//! size limit. Facility and severity mapping: docs/outputs.md.

use crate::queue::{Counters, Deliver};
use crate::{render, AlertFormat, Item, Source};
use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The SD-ID's enterprise number: 32473 is the one RFC 5612 reserves for documentation and
/// examples; proctor has no registered number of its own.
pub const SD_ID: &str = "proctor@32473";
const ATTEMPTS: u32 = 4;
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Where syslog messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTarget {
    Unix(PathBuf),
    Udp(String),
    Tcp(String),
}

impl std::str::FromStr for SyslogTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hostport = |rest: &str| -> Result<String, String> {
            let (h, p) = rest
                .rsplit_once(':')
                .ok_or_else(|| "expected HOST:PORT after the scheme".to_string())?;
            if h.is_empty() {
                return Err("no host".into());
            }
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("`{p}` is not a port"))?;
            Ok(rest.to_string())
        };
        if let Some(p) = s.strip_prefix("unix:") {
            if !p.starts_with('/') {
                return Err("a unix socket path must be absolute".into());
            }
            Ok(SyslogTarget::Unix(PathBuf::from(p)))
        } else if let Some(r) = s.strip_prefix("udp://") {
            Ok(SyslogTarget::Udp(hostport(r)?))
        } else if let Some(r) = s.strip_prefix("tcp://") {
            Ok(SyslogTarget::Tcp(hostport(r)?))
        } else {
            Err("expected unix:/PATH, udp://HOST:PORT or tcp://HOST:PORT".into())
        }
    }
}

/// Syslog facility (RFC 5424 section 6.2.1); default `local0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(pub u8);

impl Default for Facility {
    fn default() -> Self {
        Facility(16)
    }
}

impl std::str::FromStr for Facility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let n = match s {
            "user" => 1,
            "daemon" => 3,
            "auth" => 4,
            "authpriv" => 10,
            "security" | "audit" => 13,
            _ => match s.strip_prefix("local").and_then(|d| d.parse::<u8>().ok()) {
                Some(d) if d <= 7 => 16 + d,
                _ => {
                    return Err(format!(
                    "`{s}` is not a facility (user, daemon, auth, authpriv, audit, local0..local7)"
                ))
                }
            },
        };
        Ok(Facility(n))
    }
}

/// Syslog severity (RFC 5424 section 6.2.1) of a proctor severity name.
pub fn severity_code(s: &str) -> u8 {
    match s {
        "critical" => 2,
        "high" => 3,
        "medium" | "" => 4,
        "low" => 5,
        "info" => 6,
        _ => 4,
    }
}

/// PARAM-VALUE escaping (RFC 5424 section 6.3.3): `"`, `\` and `]` take a backslash.
fn sd_escape(v: &str, out: &mut String) {
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// PRINTUSASCII without spaces, at most `max` characters, `-` when empty (NILVALUE).
fn header_field(v: &str, max: usize) -> String {
    let s: String = v
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// The structured-data parameters naming the container of an alert or incident (empty values,
/// left out, when it has none).
fn container_params(who: &proctor_model::Actor) -> [(&'static str, String); 3] {
    let c = who.container;
    [
        ("container", c.map(|c| c.id()).unwrap_or_default()),
        (
            "runtime",
            c.map(|c| c.runtime.as_str().to_string())
                .unwrap_or_default(),
        ),
        ("pod", c.and_then(|c| c.pod_uid()).unwrap_or_default()),
    ]
}

/// One RFC 5424 message for `item`.
pub fn message(item: &Item, facility: Facility, format: AlertFormat, source: &Source) -> String {
    let (severity, ts_ns, msgid, params): (&str, u64, &str, Vec<(&str, String)>) = match item {
        Item::Alert(a) => (
            &a.severity,
            a.ts_ns,
            &a.kind,
            vec![
                ("id", a.id.clone()),
                ("kind", a.kind.clone()),
                ("channel", a.channel.clone()),
                ("severity", a.severity.clone()),
                ("pid", a.pid.to_string()),
                ("exec_id", a.exec_id.clone()),
                ("incident", a.incident.clone().unwrap_or_default()),
                ("rule", a.rule_id.clone()),
                ("action", a.action.clone()),
                ("agent", a.agent_id.clone()),
                ("run", source.run_id.clone()),
            ]
            .into_iter()
            .chain(container_params(&a.actor))
            .collect(),
        ),
        Item::Incident(i) => (
            &i.severity,
            i.updated_ns,
            "INCIDENT",
            vec![
                ("id", i.id.clone()),
                ("kind", "INCIDENT".into()),
                ("severity", i.severity.clone()),
                ("pid", i.root_pid.to_string()),
                ("techniques", i.techniques.join(",")),
                ("alerts", i.alert_ids.len().to_string()),
                ("agent", i.agent_id.clone()),
                ("run", source.run_id.clone()),
            ]
            .into_iter()
            .chain(container_params(&i.actor))
            .collect(),
        ),
    };
    let pri = u32::from(facility.0) * 8 + u32::from(severity_code(severity));
    let mut sd = format!("[{SD_ID}");
    for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
        sd.push(' ');
        sd.push_str(k);
        sd.push_str("=\"");
        sd_escape(v, &mut sd);
        sd.push('"');
    }
    sd.push(']');
    let body = render(item, format, source, true).to_string();
    // TIMESTAMP: RFC 3339 with at most 6 fraction digits (RFC 5424 section 6.2.3).
    let ts = proctor_model::rfc3339(ts_ns);
    let ts = micro(&ts);
    format!(
        "<{pri}>1 {ts} {host} proctor {pid} {msgid} {sd} {body}",
        host = header_field(&source.host, 255),
        pid = source.pid,
        msgid = header_field(msgid, 32),
    )
}

/// `2026-01-01T00:00:00.123456789Z` -> `2026-01-01T00:00:00.123456Z`.
fn micro(ts: &str) -> String {
    match ts.split_once('.') {
        Some((head, frac)) => {
            let digits: String = frac
                .chars()
                .take_while(char::is_ascii_digit)
                .take(6)
                .collect();
            format!("{head}.{digits}Z")
        }
        None => ts.to_string(),
    }
}

enum Conn {
    Unix(UnixDatagram),
    Udp(UdpSocket, SocketAddr),
    Tcp(TcpStream),
}

pub(crate) struct Syslog {
    target: SyslogTarget,
    facility: Facility,
    format: AlertFormat,
    source: Arc<Source>,
    conn: Option<Conn>,
}

impl Syslog {
    pub fn new(
        target: SyslogTarget,
        facility: Facility,
        format: AlertFormat,
        source: Arc<Source>,
    ) -> Self {
        Syslog {
            target,
            facility,
            format,
            source,
            conn: None,
        }
    }

    fn connect(&self) -> std::io::Result<Conn> {
        let resolve = |hp: &str| -> std::io::Result<SocketAddr> {
            hp.to_socket_addrs()?.next().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("{hp}: no address"))
            })
        };
        Ok(match &self.target {
            SyslogTarget::Unix(p) => {
                let s = UnixDatagram::unbound()?;
                s.connect(p)?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                Conn::Unix(s)
            }
            SyslogTarget::Udp(hp) => {
                let addr = resolve(hp)?;
                let bind: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0".parse().expect("literal")
                } else {
                    "[::]:0".parse().expect("literal")
                };
                Conn::Udp(UdpSocket::bind(bind)?, addr)
            }
            SyslogTarget::Tcp(hp) => {
                let s = TcpStream::connect_timeout(&resolve(hp)?, IO_TIMEOUT)?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
        })
    }

    fn send(&mut self, msg: &[u8]) -> std::io::Result<()> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let r = match self.conn.as_mut().expect("connected above") {
            Conn::Unix(s) => s.send(msg).map(drop),
            Conn::Udp(s, addr) => s.send_to(msg, *addr).map(drop),
            Conn::Tcp(s) => {
                let mut framed = format!("{} ", msg.len()).into_bytes();
                framed.extend_from_slice(msg);
                s.write_all(&framed)
            }
        };
        if r.is_err() {
            self.conn = None;
        }
        r
    }
}

impl Deliver<Item> for Syslog {
    fn deliver(&mut self, item: &Item, counters: &Counters) -> Result<(), String> {
        let msg = message(item, self.facility, self.format, &self.source);
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self.send(msg.as_bytes()) {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= ATTEMPTS || !counters.pause(backoff) => {
                    return Err(format!("{:?}: {e}", self.target));
                }
                Err(_) => {
                    attempt += 1;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_or_say_why() {
        assert_eq!(
            "unix:/dev/log".parse::<SyslogTarget>(),
            Ok(SyslogTarget::Unix("/dev/log".into()))
        );
        assert_eq!(
            "tcp://127.0.0.1:514".parse::<SyslogTarget>(),
            Ok(SyslogTarget::Tcp("127.0.0.1:514".into()))
        );
        assert!("udp://[::1]:514".parse::<SyslogTarget>().is_ok());
        for bad in [
            "/dev/log",
            "unix:dev/log",
            "udp://host",
            "tcp://h:0",
            "tcp://:514",
            "http://x:1",
        ] {
            assert!(bad.parse::<SyslogTarget>().is_err(), "{bad}");
        }
        assert_eq!("local3".parse::<Facility>(), Ok(Facility(19)));
        assert!("local8".parse::<Facility>().is_err());
    }

    #[test]
    fn structured_data_values_are_escaped() {
        let mut s = String::new();
        sd_escape(r#"a"b\c]d"#, &mut s);
        assert_eq!(s, r#"a\"b\\c\]d"#);
        assert_eq!(header_field("A B\u{7f}", 32), "AB");
        assert_eq!(header_field("", 32), "-");
        assert_eq!(
            micro("2026-01-01T00:00:00.123456789Z"),
            "2026-01-01T00:00:00.123456Z"
        );
    }
}
