//! Alert delivery to a Unix socket: never blocks the caller, counts drops, reconnects.

use proctor_evidence::AlertSink;
use proctor_testkit::evidence::alert;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

fn read_lines(listener: &UnixListener, n: usize) -> Vec<serde_json::Value> {
    let (conn, _) = listener.accept().expect("the sink connects");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut r = BufReader::new(conn);
    let mut out = Vec::new();
    for _ in 0..n {
        let mut line = String::new();
        r.read_line(&mut line).expect("reading an alert line");
        assert!(line.ends_with('\n'), "whole lines: {line:?}");
        out.push(serde_json::from_str(&line).expect("each line is JSON"));
    }
    out
}

#[test]
fn without_a_receiver_sends_do_not_block_and_drops_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("alerts.sock");
    let sink = AlertSink::spawn(&sock, 4).unwrap();
    let t0 = Instant::now();
    let mut accepted = 0;
    for i in 0..100 {
        if sink.send(&alert(i)) {
            accepted += 1;
        }
    }
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "send blocked: {:?}",
        t0.elapsed()
    );
    // The queue holds 4, the thread holds at most 1 it is retrying.
    assert!(accepted <= 5, "accepted {accepted}");
    assert_eq!(
        sink.dropped(),
        100 - accepted,
        "every refused send is counted"
    );
    let (sent, dropped) = sink.close(Duration::from_millis(100));
    assert_eq!(sent, 0);
    assert_eq!(dropped, 100, "undelivered lines count as dropped at close");
}

#[test]
fn delivers_in_order_and_reconnects_after_the_receiver_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("alerts.sock");
    let sink = AlertSink::spawn(&sock, 64).unwrap();
    // The receiver comes up after the first alerts were queued.
    assert!(sink.send(&alert(0)));
    std::thread::sleep(Duration::from_millis(100));
    let listener = UnixListener::bind(&sock).unwrap();
    assert!(sink.send(&alert(1)));
    let got = read_lines(&listener, 2);
    assert_eq!(got[0]["summary"], alert(0).summary);
    assert_eq!(got[1]["summary"], alert(1).summary);

    // The receiver goes away and comes back.
    drop(listener);
    std::fs::remove_file(&sock).unwrap();
    let listener = UnixListener::bind(&sock).unwrap();
    let t0 = Instant::now();
    let mut delivered = Vec::new();
    // The first write after the restart may go to the dead connection; keep sending until the
    // new receiver sees alerts (the lost line is re-sent on the new connection).
    let handle = { std::thread::spawn(move || read_lines(&listener, 1)) };
    for i in 2..50 {
        sink.send(&alert(i));
        std::thread::sleep(Duration::from_millis(20));
        if handle.is_finished() {
            break;
        }
    }
    delivered.extend(handle.join().expect("receiver thread"));
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(
        delivered[0]["summary"].as_str().unwrap().contains('#'),
        "{:?}",
        delivered
    );
    assert!(sink.sent() >= 3, "sent {}", sink.sent());
}

#[test]
fn close_delivers_what_is_queued_to_a_live_receiver() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("alerts.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let reader = std::thread::spawn(move || read_lines(&listener, 20));
    let sink = AlertSink::spawn(&sock, 32).unwrap();
    for i in 0..20 {
        assert!(sink.send(&alert(i)), "queue of 32 holds 20");
    }
    let (sent, dropped) = sink.close(Duration::from_secs(5));
    assert_eq!((sent, dropped), (20, 0));
    let got = reader.join().expect("receiver");
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v["summary"], alert(i as u64).summary, "in order");
    }
}
