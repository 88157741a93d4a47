//! Who listens on a loopback TCP port: the process behind a tree's TCP connect to loopback.
//!
//! A unix stream socket names its listener through the kernel's peer credentials; TCP has none.
//! A browser started with a remote debugging port, an sshd, a user's notebook server listen on
//! loopback and do what a client asks outside the agent's tree, so a connect there says little
//! until the listener is named. The listening socket is found in the connecting process's
//! network namespace (the kernel's socket diagnostics, or else `/proc/PID/net/tcp` and `tcp6`;
//! state LISTEN, the most specific local address), and its holder by the socket's inode among
//! every process's descriptors. A holder
//! is remembered by (namespace, address, port) and trusted while that descriptor still holds
//! that socket: a listening socket keeps its port until closed, and another listener cannot
//! take the port while it is open (SO_REUSEPORT listeners of the same user apart).

use std::collections::HashMap;
use std::net::IpAddr;

/// Answers kept before the cache starts over.
const KEPT: usize = 4096;

/// A listening socket's holder: a process and the descriptor it holds the socket at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Holder {
    ino: u64,
    pid: u32,
    fd: u32,
}

#[derive(Default)]
pub struct TcpListeners {
    /// (network namespace inode, address, port) -> the holder found last.
    known: HashMap<(u64, IpAddr, u16), Holder>,
    /// Socket inode -> holder, from the last scan of every process's descriptors.
    holders: HashMap<u64, (u32, u32)>,
    /// When the last scan was, and how long it took.
    last_scan: Option<(std::time::Instant, std::time::Duration)>,
    /// proctor's own network namespace (its inode number), once read.
    own_netns: Option<u64>,
}

/// The inode number of `pid`'s network namespace.
fn netns_of(pid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?.ino())
}

/// 127.0.0.0/8 and ::1, and v4 loopback written as an IPv4-mapped IPv6 address.
pub fn loopback(ip: IpAddr) -> Option<IpAddr> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    ip.is_loopback().then_some(ip)
}

impl TcpListeners {
    pub fn new() -> TcpListeners {
        TcpListeners::default()
    }

    /// The pid of a process holding the listening TCP socket that a connect to the loopback
    /// address `ip`:`port` reached, in network namespace `netns` (the socket's, from the
    /// kernel), else (0) in that of the first of `pids` still alive (the caller, then whom
    /// proctor files its records under once it is gone). None when no listener is found (it
    /// closed, or the connect was refused), its holder is gone, or it is new and the last walk
    /// of the descriptors was too recent (see the loop).
    pub fn holder(&mut self, netns: u32, pids: &[u32], ip: IpAddr, port: u16) -> Option<u32> {
        let ip = loopback(ip)?;
        // Who can be asked about that namespace: a pid in it, found only on a miss.
        let (mut pid, netns) = match netns {
            0 => {
                let (p, ns) = pids.iter().find_map(|&p| Some((p, netns_of(p)?)))?;
                (Some(p), ns)
            }
            ns => (None, u64::from(ns)),
        };
        let key = (netns, ip, port);
        if let Some(h) = self.known.get(&key) {
            if holds(h.pid, h.fd, h.ino) {
                return Some(h.pid);
            }
            self.known.remove(&key);
        }
        if pid.is_none() {
            let own = *self
                .own_netns
                .get_or_insert_with(|| netns_of(std::process::id()).unwrap_or(0));
            pid = if own == netns {
                Some(std::process::id())
            } else {
                pids.iter().copied().find(|&p| netns_of(p) == Some(netns))
            };
        }
        let rows = listening(pid?)?;
        let ino = listening_inode(&rows, ip, port)?;
        let (pid, fd) = match self.holders.get(&ino) {
            Some(&(pid, fd)) if holds(pid, fd, ino) => (pid, fd),
            _ => {
                // A walk of every process's descriptors costs what the host holds (an agent
                // can open thousands): at most a tenth of the time goes to walks.
                if self
                    .last_scan
                    .is_some_and(|(at, took)| at.elapsed() < took * 10)
                {
                    return None;
                }
                // One walk names the holders of every listener in the table, so the next new
                // port is usually known already.
                let wanted: std::collections::HashSet<u64> = rows.iter().map(|r| r.2).collect();
                let t = std::time::Instant::now();
                self.holders = scan_holders(&wanted);
                self.last_scan = Some((t, t.elapsed()));
                *self.holders.get(&ino)?
            }
        };
        if self.known.len() >= KEPT {
            self.known.clear();
        }
        self.known.insert(key, Holder { ino, pid, fd });
        Some(pid)
    }
}

/// A listening socket: its local address, port and inode.
type Row = (IpAddr, u16, u64);

/// The listening TCP sockets of `pid`'s network namespace: asked of the kernel's socket
/// diagnostics (netlink), which walks only the listening sockets, or else read from the
/// `/proc/PID/net` tables, which walk every bucket of the established table too (7 ms of CPU
/// on a host of 23 GB, most of what a tree's first connect to a loopback port cost).
fn listening(pid: u32) -> Option<Vec<Row>> {
    diag::listening(pid).or_else(|| read_tables(pid).map(|t| listen_rows(&t).collect()))
}

/// Socket diagnostics (`sock_diag(7)`) in a process's network namespace.
mod diag {
    use super::Row;
    use netlink_packet_core::{
        NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
    };
    use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
    use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
    use netlink_packet_sock_diag::SockDiagMessage;
    use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    /// None when the namespace cannot be entered or the kernel has no TCP diagnostics: the
    /// caller reads the tables instead.
    pub(super) fn listening(pid: u32) -> Option<Vec<Row>> {
        let socket = socket_in(pid)?;
        let mut rows = dump(&socket, AF_INET)?;
        // A kernel without IPv6 has no v6 listeners to name.
        rows.extend(dump(&socket, AF_INET6).unwrap_or_default());
        Some(rows)
    }

    /// A diagnostics socket in `pid`'s network namespace: made there by a thread that enters
    /// it (a socket keeps the namespace it was made in), unless it is proctor's own.
    fn socket_in(pid: u32) -> Option<Socket> {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).ok()?;
        let own = std::fs::metadata("/proc/self/ns/net").ok()?;
        if ns.metadata().ok()?.ino() == own.ino() {
            return Socket::new(NETLINK_SOCK_DIAG).ok();
        }
        std::thread::spawn(move || {
            // SAFETY: setns on a descriptor this thread owns; it changes this thread's network
            // namespace only, and the thread ends here.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return None;
            }
            Socket::new(NETLINK_SOCK_DIAG).ok()
        })
        .join()
        .ok()?
    }

    /// The listening sockets of one address family.
    fn dump(socket: &Socket, family: u8) -> Option<Vec<Row>> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let socket_id = if family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        };
        let mut packet = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::empty(),
                // LISTEN alone: the kernel then skips the established table.
                states: StateFlags::LISTEN,
                socket_id,
            })
            .into(),
        );
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        socket.send_to(&buf, &SocketAddr::new(0, 0), 0).ok()?;
        let mut rows = Vec::new();
        let mut rx = vec![0u8; 64 * 1024];
        loop {
            let n = socket.recv(&mut &mut rx[..], 0).ok()?;
            let mut at = 0;
            while at < n {
                let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&rx[at..n]).ok()?;
                let len = msg.header.length as usize;
                match msg.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        let id = &r.header.socket_id;
                        rows.push((id.source_address, id.source_port, u64::from(r.header.inode)));
                    }
                    NetlinkPayload::Done(_) => return Some(rows),
                    NetlinkPayload::Noop => {}
                    // An error (no TCP diagnostics in this kernel, no such family) or overrun.
                    _ => return None,
                }
                if len == 0 {
                    return None;
                }
                at += len;
            }
        }
    }
}

/// The TCP tables of `pid`'s network namespace, v4 then v6 (either may be absent: a kernel
/// without IPv6).
fn read_tables(pid: u32) -> Option<[String; 2]> {
    let v4 = std::fs::read_to_string(format!("/proc/{pid}/net/tcp"));
    let v6 = std::fs::read_to_string(format!("/proc/{pid}/net/tcp6"));
    if v4.is_err() && v6.is_err() {
        return None;
    }
    Some([v4.unwrap_or_default(), v6.unwrap_or_default()])
}

/// A row of a TCP table in LISTEN state: its local address, port and socket inode.
fn listen_rows(tables: &[String; 2]) -> impl Iterator<Item = Row> + '_ {
    tables
        .iter()
        .flat_map(|t| t.lines().skip(1))
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let local = f.nth(1)?;
            let state = f.nth(1)?;
            if state != "0A" {
                return None;
            }
            let ino = f.nth(5)?.parse().ok()?;
            let (addr, port) = local.split_once(':')?;
            Some((parse_addr(addr)?, u16::from_str_radix(port, 16).ok()?, ino))
        })
}

/// A table's address: the kernel prints each 32-bit word of the network-order address as a
/// native-endian number in hex.
fn parse_addr(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    match hex.len() {
        8 => Some(IpAddr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::from(b))
        }
        _ => None,
    }
}

/// The inode of the socket listening for `ip`:`port`: one bound to that address first, then a
/// wildcard (`0.0.0.0`, or `::` which takes v4 too unless it is v6-only), as the kernel
/// prefers them.
fn listening_inode(rows: &[Row], ip: IpAddr, port: u16) -> Option<u64> {
    let same = |a: IpAddr| match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4) == ip,
        _ => a == ip,
    };
    let rows = || rows.iter().filter(|r| r.1 == port);
    rows()
        .find(|r| same(r.0))
        .or_else(|| {
            rows().find(|r| match (r.0, ip) {
                (IpAddr::V4(a), IpAddr::V4(_)) => a.is_unspecified(),
                (IpAddr::V6(a), _) => a.is_unspecified(),
                _ => false,
            })
        })
        .map(|r| r.2)
}

/// Whether descriptor `fd` of `pid` is socket `ino`.
fn holds(pid: u32, fd: u32, ino: u64) -> bool {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .is_ok_and(|l| socket_inode(l.as_os_str().as_encoded_bytes()) == Some(ino))
}

/// `socket:[INODE]`, the link text of a socket descriptor.
fn socket_inode(link: &[u8]) -> Option<u64> {
    let n = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(n).ok()?.parse().ok()
}

/// Every process's descriptors, for the holders of the sockets in `wanted` (the first holder
/// found of each: a socket shared across a fork is held by all of them).
fn scan_holders(wanted: &std::collections::HashSet<u64>) -> HashMap<u64, (u32, u32)> {
    let mut found = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Some(n) = fd.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if let Some(ino) = socket_inode(link.as_os_str().as_encoded_bytes()) {
                if wanted.contains(&ino) {
                    found.entry(ino).or_insert((pid, n));
                }
            }
        }
        if found.len() == wanted.len() {
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};

    #[test]
    fn table_addresses_parse_as_the_kernel_prints_them() {
        assert_eq!(
            parse_addr("0100007F"),
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(
            parse_addr("00000000000000000000000001000000"),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(parse_addr("0000000000000000FFFF00000100007F"), {
            Some(IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()))
        });
        assert_eq!(parse_addr("zz"), None);
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
    }

    /// Rows as a set, for comparing the two sources.
    fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
        rows.sort();
        rows
    }

    #[test]
    fn socket_diagnostics_name_the_listeners_the_tables_name() {
        let me = std::process::id();
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = TcpListener::bind("[::1]:0").unwrap();
        let ports = [&v4, &v6].map(|l| l.local_addr().unwrap().port());
        // Ours alone: other tests open and close listeners meanwhile.
        let mine =
            |rows: Vec<Row>| sorted(rows.into_iter().filter(|r| ports.contains(&r.1)).collect());
        // Our own namespace needs no privilege: the diagnostics must answer.
        let diag = diag::listening(me).expect("socket diagnostics in our own namespace");
        let tables = read_tables(me).unwrap();
        let diag = mine(diag);
        assert_eq!(diag.len(), 2, "{diag:?}");
        assert_eq!(diag, mine(listen_rows(&tables).collect()));

        // Another namespace (a user namespace makes one without root): entered when proctor
        // may (root), else the tables of the process's own /proc answer.
        let mut child = std::process::Command::new("unshare")
            .args(["-rn", "python3", "-c"])
            .arg(
                "import socket,sys\n\
                 s=socket.socket();s.bind(('127.0.0.1',0));s.listen()\n\
                 print(s.getsockname()[1],flush=True);sys.stdin.read()",
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let port: u16 = line.trim().parse().expect("the child's port");
        let pid = child.id();
        let theirs = sorted(listening(pid).unwrap());
        assert!(theirs.iter().any(|r| r.1 == port), "{theirs:?}");
        // Not ours: the namespace's own loopback, with none of our listeners.
        let ours = sorted(listening(me).unwrap());
        assert!(ours.iter().all(|r| !theirs.contains(r)));
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(diag::listening(pid).map(sorted), Some(theirs));
        }
        let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(TcpListeners::new().holder(0, &[pid], lo4, port), Some(pid));
        // Named by the kernel's namespace: the same, and not in ours.
        let ns = netns_of(pid).unwrap() as u32;
        assert_eq!(TcpListeners::new().holder(ns, &[pid], lo4, port), Some(pid));
        let own = netns_of(me).unwrap() as u32;
        assert_ne!(TcpListeners::new().holder(own, &[me], lo4, port), Some(pid));
        drop(child.stdin.take());
        child.wait().unwrap();
    }

    #[test]
    fn our_own_listeners_are_found_by_address_and_port() {
        let me = std::process::id();
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let any6 = TcpListener::bind("[::]:0").unwrap();
        let mut l = TcpListeners::new();
        let p4 = v4.local_addr().unwrap().port();
        let p6 = any6.local_addr().unwrap().port();
        let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(l.holder(0, &[me], lo4, p4), Some(me));
        // From the cache, while the descriptor holds the socket.
        assert_eq!(l.holder(0, &[me], lo4, p4), Some(me));
        // `::` takes ::1 and (not v6-only by default) 127.0.0.1 too.
        assert_eq!(
            l.holder(0, &[me], IpAddr::V6(Ipv6Addr::LOCALHOST), p6),
            Some(me)
        );
        assert_eq!(l.holder(0, &[me], lo4, p6), Some(me));
        // Not loopback, another loopback address than the one bound, a closed listener.
        assert_eq!(l.holder(0, &[me], "10.0.0.1".parse().unwrap(), p4), None);
        assert_eq!(l.holder(0, &[me], "127.0.0.2".parse().unwrap(), p4), None);
        drop(v4);
        assert_eq!(l.holder(0, &[me], lo4, p4), None);
        // A pid that is gone is skipped for the next.
        assert_eq!(l.holder(0, &[u32::MAX, me], lo4, p6), Some(me));
        // A listener new since the last walk of the descriptors, when that walk took long: not
        // looked for until a tenth of the time has gone to walks.
        let fresh = TcpListener::bind("127.0.0.1:0").unwrap();
        let pf = fresh.local_addr().unwrap().port();
        let hour = std::time::Duration::from_secs(3600);
        l.last_scan = Some((std::time::Instant::now(), hour));
        assert_eq!(l.holder(0, &[me], lo4, pf), None);
        l.last_scan = None;
        assert_eq!(l.holder(0, &[me], lo4, pf), Some(me));
    }
}
