//! Hostile and disordered input never panics the engine: random records of every type with
//! invalid UTF-8, odd sizes, zero intervals, time going backwards and pid reuse.

mod common;

use common::*;
use proctor_detect::Output;
use proctor_model::*;

/// A small deterministic generator (xorshift), so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self) -> Bytes {
        let pool: [&[u8]; 8] = [
            b"/home/ann/.aws/credentials",
            b"/tmp/x",
            b"relative/path",
            b"",
            b"/",
            &[0xff, 0xfe, b'/', 0],
            b"/work/proj/.env",
            b"/usr/bin/dash",
        ];
        let mut v = pool[self.below(8) as usize].to_vec();
        for _ in 0..self.below(3) {
            v.push(self.next() as u8);
        }
        Bytes(v)
    }
}

fn random_record(g: &mut Rng, ts: u64) -> Record {
    let pid = 100 + g.below(20) as u32;
    let ppid = 100 + g.below(20) as u32;
    let addr = [
        "127.0.0.1",
        "::1",
        "not-an-ip",
        "8.8.8.8",
        "::ffff:10.0.0.1",
    ][g.below(5) as usize];
    let dest = SockAddr {
        family: [Family::Inet, Family::Inet6, Family::Unix, Family::Other][g.below(4) as usize],
        addr: (g.below(4) != 0).then(|| addr.to_string()),
        port: (g.below(4) != 0).then(|| g.below(65536) as u16),
        path: None,
    };
    let hist = |g: &mut Rng| -> Vec<u64> {
        let n = if g.below(10) == 0 {
            g.below(40) as usize
        } else {
            SCHED_BUCKETS
        };
        (0..n).map(|_| g.below(1000)).collect()
    };
    let event = match g.below(10) {
        0 => Event::Exec(Exec {
            filename: g.bytes(),
            argv: (0..g.below(4)).map(|_| g.bytes()).collect(),
            argv_truncated: g.below(2) == 0,
            dev: g.below(3),
            ino: g.below(3),
            fileless: false,
            build_id: None,
            euid: None,
            egid: None,
            env: Vec::new(),
            env_truncated: false,
            env_unread: false,
            at_exec: None,
        }),
        1 => Event::Fork(Fork {
            child_pid: 100 + g.below(20) as u32,
        }),
        2 => Event::Exit(Exit {
            exit_code: Some(0),
            signal: None,
        }),
        3 => Event::FileOpen(FileOpen {
            path: g.bytes(),
            flags: 0,
            access: [Access::Read, Access::Write, Access::ReadWrite][g.below(3) as usize],
            create: g.below(2) == 0,
            created: g.below(2) == 0,
            truncate: g.below(2) == 0,
            dev: g.below(3),
            ino: g.below(3),
            error: (g.below(3) == 0).then_some(13),
            path_truncated: false,
            repeats: 0,
            last_ts_ns: 0,
            device: None,
            setid: false,
            mapped_exec: false,
        }),
        4 => Event::Connect(Connect {
            dest,
            protocol: "tcp".into(),
            repeats: 0,
            last_ts_ns: 0,
            peer_dev: 0,
            peer_ino: 0,
            peer_pid: 0,
            peer_outside: false,
            peer_exe: None,
            netns: 0,
        }),
        5 => Event::Send(Send {
            dest,
            protocol: "udp".into(),
            bytes: g.below(100),
            syscall: "sendto".into(),
        }),
        6 => Event::Dns(Dns {
            qname: g.bytes(),
            qtype: 1,
            qtype_name: "A".into(),
            server: dest,
            protocol: "udp".into(),
            txid: 1,
        }),
        7 => Event::Ptrace(Ptrace {
            request: ["attach", "seize", "traceme", "peek"][g.below(4) as usize].into(),
            request_code: 16,
            tracer_pid: pid,
            target_pid: ppid,
            tracer_tracked: true,
            target_tracked: false,
            signal: None,
            target_comm: None,
        }),
        8 => Event::Sched(Sched {
            interval_ns: g.below(3) * S,
            switches: g.below(5000),
            voluntary: 0,
            involuntary: 0,
            run_ns: 0,
            off_ns: 0,
            run_hist: hist(g),
            off_hist: hist(g),
        }),
        _ => Event::Lost(Lost {
            what: "exec".into(),
            count: 3,
        }),
    };
    rec(ts, pid, ppid, event)
}

#[test]
fn random_streams_never_panic_and_alerts_are_complete() {
    for seed in 1..=4u64 {
        let mut g = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut e = engine();
        let mut ts = 0u64;
        let mut outs: Vec<Output> = Vec::new();
        for _ in 0..3000 {
            // Mostly forward, sometimes backwards in time.
            ts = if g.below(20) == 0 {
                ts.saturating_sub(g.below(S / 20))
            } else {
                ts + g.below(S / 50)
            };
            outs.extend(e.observe(&random_record(&mut g, ts)));
            if g.below(100) == 0 {
                outs.extend(e.tick(ts + g.below(2 * S)));
            }
        }
        outs.extend(e.finish());
        assert!(!e.is_learning(), "seed {seed}: the window closed");
        for a in alerts(&outs) {
            assert!(a.divergence.is_finite(), "seed {seed}: {a:?}");
            assert!(!a.channel.is_empty() && !a.kind.is_empty() && a.count >= 1);
            assert!(!a.trigger.is_empty(), "seed {seed}: {a:?}");
            assert!(a.syscall_trace.len() <= 32);
            assert!(!a.summary.contains('\n'), "one line: {}", a.summary);
        }
        assert!(
            !alerts(&outs).is_empty(),
            "seed {seed}: random input this hostile alerts"
        );
    }
}
