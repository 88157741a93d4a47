#![cfg(feature = "kernel-tests")]
//! DNS answers seen in the kernel, end to end: inside its own network namespace, the agent's
//! tree gives loopback the address of the host's resolver (the first `nameserver` of
//! /etc/resolv.conf) and runs a small DNS server there (mounting another resolv.conf is refused
//! to the agent: proctor's Landlock self-protection forbids mounts), then
//! resolves two names with glibc's getaddrinfo and connects to each address. The kernel's
//! receive-side records give `dns_answer` records with the addresses, and detection judges the
//! connects by the names: the one resolved from the allowed name is allowed, the other's alert
//! names the name it came from.

use proctor_testkit::run_under;

/// Answers A queries for the two names, NXDOMAIN otherwise; stops after `n` answers.
const SERVER: &str = r#"
import socket, struct, sys
names = {b"api.models.test": "127.0.0.9", b"drop.evil.test": "127.0.0.10"}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[2], 53))
open(sys.argv[1], "w").close()
while True:
    q, peer = s.recvfrom(512)
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]]); i += 1 + q[i]
    name, qtype = b".".join(labels).lower(), struct.unpack(">H", q[i + 1:i + 3])[0]
    question = q[12:i + 5]
    ip = names.get(name)
    if ip and qtype == 1:
        ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
        hdr = q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0)
    else:
        ans = b""
        hdr = q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 0, 0, 0)
    s.sendto(hdr + question + ans, peer)
"#;

/// getaddrinfo (glibc's resolver) then a connect to the address, for each name.
const AGENT: &str = r#"
import socket, time
time.sleep(1.5)
for name in ("api.models.test", "drop.evil.test"):
    ip = socket.getaddrinfo(name, 4444, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    print(name, ip, flush=True)
    c = socket.socket()
    c.settimeout(2)
    try:
        c.connect((ip, 4444))
    except OSError:
        pass
    c.close()
"#;

#[test]
fn answers_name_the_addresses_and_allowed_names_allow_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let resolv = std::fs::read_to_string("/etc/resolv.conf").expect("/etc/resolv.conf");
    let ns = resolv
        .lines()
        .find_map(|l| l.strip_prefix("nameserver"))
        .map(str::trim)
        .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .expect("an IPv4 nameserver in /etc/resolv.conf (the test serves DNS at its address)")
        .to_string();
    std::fs::write(d.join("server.py"), SERVER).unwrap();
    std::fs::write(d.join("agent.py"), AGENT).unwrap();
    std::fs::write(
        d.join("policy.toml"),
        "[network]\nallow = [\"api.models.test:4444\"]\n",
    )
    .unwrap();
    let script = format!(
        "ip link set lo up && (ip addr add {ns}/32 dev lo 2>/dev/null || true) && \
         {{ /usr/bin/python3 {d}/server.py {d}/ready {ns} & srv=$!; }} && \
         for i in $(seq 50); do [ -e {d}/ready ] && break; sleep 0.1; done && \
         /usr/bin/python3 {d}/agent.py; rc=$?; kill $srv; exit $rc",
        d = d.display()
    );
    let policy = d.join("policy.toml");
    let run = run_under(
        &["--baseline", "1s", "--policy", policy.to_str().unwrap()],
        &["unshare", "--net", "/bin/sh", "-c", &script],
    );
    let stdout = String::from_utf8_lossy(&run.out.stdout);
    assert!(
        stdout.contains("drop.evil.test 127.0.0.10"),
        "the agent resolved through the test's server: {stdout} {}",
        run.stderr()
    );
    let answers = run.of_type("dns_answer");
    let answer = |name: &str| {
        answers
            .iter()
            .find(|a| a["qname"] == name)
            .unwrap_or_else(|| panic!("no dns_answer for {name}: {answers:?}"))
    };
    let a = answer("api.models.test");
    assert_eq!(a["addrs"], serde_json::json!(["127.0.0.9"]), "{a}");
    assert_eq!(a["server"]["addr"], ns.as_str(), "{a}");
    assert_eq!(a["rcode"], 0, "{a}");
    assert_eq!(answer("drop.evil.test")["addrs"][0], "127.0.0.10");
    let unknown: Vec<String> = run
        .of_type("alert")
        .iter()
        .filter(|a| a["kind"] == "UNKNOWN_DESTINATION")
        .map(|a| a["summary"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        unknown
            .iter()
            .any(|s| s.contains("127.0.0.10:4444 (drop.evil.test)")),
        "the connect to the other name's address is named by it: {unknown:?}"
    );
    assert!(
        !unknown.iter().any(|s| s.contains("127.0.0.9:")),
        "the allowed name's address is allowed: {unknown:?}"
    );
}
