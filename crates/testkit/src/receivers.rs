//! Real receivers for the output and metrics tests: rsyslogd with a private configuration, an
//! HTTP(S) server, an OTLP receiver, a Prometheus server that scrapes proctor, and waiting for what
//! they got.

use crate::KillOnDrop;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// A free loopback port (bound, then released for rsyslogd).
pub fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

/// A running rsyslogd with a private configuration; killed when dropped.
pub struct Rsyslogd {
    _child: KillOnDrop,
    /// What its RFC 5424 parser read, one line per message:
    /// `input|facility|severity|host|app|procid|msgid|structured-data|msg`.
    pub out: PathBuf,
    pub tcp: u16,
    pub udp: u16,
    /// Its Unix datagram socket (like `/dev/log`).
    pub unix: PathBuf,
}

/// Start rsyslogd in `dir` (config, work directory, pid file, socket and output all there),
/// listening on loopback TCP and UDP and on a Unix socket; None, saying why, when rsyslogd is
/// not installed.
pub fn rsyslogd(dir: &Path) -> Option<Rsyslogd> {
    if !Path::new(RSYSLOGD).exists() {
        eprintln!("skipped: {RSYSLOGD} is not installed (make deps installs rsyslog)");
        return None;
    }
    let (tcp, udp) = (free_port(false), free_port(true));
    let out = dir.join("received.log");
    let unix = dir.join("log.sock");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    // The template prints what the parser took from each header field and the structured
    // data, so the assertions check rsyslogd's reading of the message, not our own.
    let conf = format!(
        r#"global(workDirectory="{work}")
module(load="imuxsock" SysSock.Use="off")
module(load="imudp")
module(load="imtcp")
input(type="imuxsock" Socket="{unix}" UseSpecialParser="off" ParseHostname="on")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="fields" type="string" string="%inputname%|%syslogfacility-text%|%syslogseverity-text%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
*.* action(type="omfile" file="{out}" template="fields")
"#,
        work = work.display(),
        unix = unix.display(),
        out = out.display(),
    );
    let conf_path = dir.join("rsyslog.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let check = Command::new(RSYSLOGD)
        .args(["-N1", "-f"])
        .arg(&conf_path)
        .output()
        .expect("rsyslogd -N1");
    assert!(
        check.status.success(),
        "rsyslogd rejects the test configuration: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new(RSYSLOGD)
        .arg("-n")
        .arg("-f")
        .arg(&conf_path)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting rsyslogd");
    let child = KillOnDrop::new(child);
    // Ready when the TCP input accepts and the Unix socket exists.
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err() || !unix.exists() {
        assert!(Instant::now() < end, "rsyslogd did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Rsyslogd {
        _child: child,
        out,
        tcp,
        udp,
        unix,
    })
}

const RECEIVER: &str = r#"
import http.server, sys, time
fail_first, out, delay = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
seen = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        seen += 1
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(delay)
        if seen <= fail_first:
            self.send_response(503); self.end_headers(); return
        assert self.headers["Content-Type"] == "application/json"
        with open(out, "ab") as f:
            f.write(body + b"\n")
        self.send_response(200); self.end_headers()
"#;

/// Start an HTTP receiver (Python's http.server): it answers 503 to the first `fail_first`
/// POSTs, takes `delay_s` per request, and appends each accepted body as a line to `out`.
/// Returns it and its port.
pub fn http_receiver(fail_first: u32, out: &Path, delay_s: f64) -> (KillOnDrop, u16) {
    let (fail, delay) = (fail_first.to_string(), delay_s.to_string());
    serve(
        Path::new("python3"),
        RECEIVER,
        &[fail.as_ref(), out.as_os_str(), delay.as_ref()],
    )
}

/// The end of every receiver script: quiet, on an ephemeral loopback port it prints first;
/// with `RECEIVER_TLS=CERT:KEY` in its environment it speaks https with that certificate.
const SERVE: &str = r#"
    def log_message(self, *a):
        pass
import os, ssl
s = http.server.HTTPServer(("127.0.0.1", 0), H)
if os.environ.get("RECEIVER_TLS"):
    cert, key = os.environ["RECEIVER_TLS"].split(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// A CA made for one test and a server certificate it signed, as PEM files in a directory.
pub struct TestPki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Make a CA in `dir` and a server certificate for `names` (an address becomes an IP SAN).
pub fn test_pki(dir: &Path, names: &[&str]) -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca = p.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let pki = TestPki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&pki.ca, ca.pem()).unwrap();
    std::fs::write(&pki.cert, leaf.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    pki
}

/// [`http_receiver`] speaking https with `pki`'s server certificate.
pub fn https_receiver(pki: &TestPki, out: &Path) -> (KillOnDrop, u16) {
    let tls = format!("{}:{}", pki.cert.display(), pki.key.display());
    serve_env(
        Path::new("python3"),
        RECEIVER,
        &["0".as_ref(), out.as_os_str(), "0".as_ref()],
        &[("RECEIVER_TLS", tls.as_str())],
    )
}

/// Run the receiver `script` (a handler class `H`) with `python` and `args`; returns it and
/// the port it listens on.
fn serve(python: &Path, script: &str, args: &[&std::ffi::OsStr]) -> (KillOnDrop, u16) {
    serve_env(python, script, args, &[])
}

fn serve_env(
    python: &Path,
    script: &str,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> (KillOnDrop, u16) {
    let mut cmd = Command::new(python);
    cmd.arg("-c")
        .arg(format!("{script}{SERVE}"))
        .args(args)
        .envs(env.iter().copied());
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("receiver port");
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the receiver did not start: {line:?}"));
    (KillOnDrop::new(child), port)
}

/// The file's lines once it has at least `n` (panics after `timeout`).
pub fn wait_lines(path: &Path, n: usize, timeout: Duration) -> Vec<String> {
    let end = Instant::now() + timeout;
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < end,
            "{} has {} line(s), expected {n}: {lines:?}",
            path.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const OTLP_RECEIVER: &str = r#"
import http.server, sys
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
out = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.path == "/v1/logs", self.path
        assert self.headers["Content-Type"] == "application/x-protobuf"
        req = logs_service_pb2.ExportLogsServiceRequest()
        req.ParseFromString(body)
        with open(out, "a") as f:
            f.write(MessageToJson(req, indent=None) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()
        self.wfile.write(logs_service_pb2.ExportLogsServiceResponse().SerializeToString())
"#;

/// The Python of the venv `make otlp-venv` makes (opentelemetry-proto from PyPI), or None,
/// saying why.
pub fn otlp_python() -> Option<PathBuf> {
    let p = match std::env::var_os("PROCTOR_OTLP_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/otlp-venv/bin/python"),
    };
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "skipped: {} is missing (make otlp-venv installs opentelemetry-proto there)",
            p.display()
        );
        None
    }
}

/// An OTLP/HTTP logs receiver that decodes each request with the opentelemetry-proto package
/// (run by `python`) and appends it as one line of protobuf JSON to `out`. Returns it and its
/// port (the endpoint is `http://127.0.0.1:PORT/v1/logs`).
pub fn otlp_receiver(python: &Path, out: &Path) -> (KillOnDrop, u16) {
    serve(python, OTLP_RECEIVER, &[out.as_os_str()])
}

/// GET `url` with curl (what an operator would type), with `query` URL-encoded as the `query`
/// parameter when given: the status (0 when nothing answered) and the body.
pub fn http_get(url: &str, query: Option<&str>) -> (u16, String) {
    let mut c = Command::new("/usr/bin/curl");
    c.args(["-s", "-m", "10", "-w", "\n%{http_code}"]);
    if let Some(q) = query {
        c.args(["-G", "--data-urlencode"]).arg(format!("query={q}"));
    }
    let out = c.arg(url).output().expect("curl (make deps installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A running Prometheus server (Debian's `prometheus`) scraping one target every second;
/// killed when dropped.
pub struct Prometheus {
    _child: KillOnDrop,
    /// Its `HOST:PORT` (the query API is `http://ADDR/api/v1/query`).
    pub addr: String,
}

/// Start Prometheus in `dir` (configuration, data and log there) scraping `target`
/// (`HOST:PORT`, path `/metrics`) every second, and wait until it is ready.
pub fn prometheus(dir: &Path, target: &str) -> Prometheus {
    let addr = format!("127.0.0.1:{}", free_port(false));
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: proctor\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("/usr/bin/prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prometheus-data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prometheus (apt-get install prometheus; `make deps` does)");
    let child = KillOnDrop::new(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(&format!("http://{addr}/-/ready"), None).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "Prometheus not ready in 60 s: {}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Prometheus {
        _child: child,
        addr,
    }
}

impl Prometheus {
    /// The value of an instant query's first sample, if it has one.
    pub fn query(&self, q: &str) -> Option<f64> {
        let (status, body) = http_get(&format!("http://{}/api/v1/query", self.addr), Some(q));
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        assert_eq!(v["status"], "success", "{q}: {body}");
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Wait until `q` returns a value that satisfies `ok` and return it, failing after `secs`.
    pub fn wait_query(&self, q: &str, secs: u64, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.query(q);
            if let Some(v) = v.filter(|v| ok(*v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus query `{q}` never satisfied the test within {secs}s (last: {v:?})"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
