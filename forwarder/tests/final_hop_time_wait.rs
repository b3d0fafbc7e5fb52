//! A client that reuses its source port while hopd's side of the previous connection is
//! still in TIME_WAIT: the kernel accepts that SYN without keeping its options, so the SRH is
//! not there when hopd accepts; hopd takes it from the first data segment instead.

mod final_hop_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use final_hop_support::*;

const LO: Ipv6Addr = Ipv6Addr::LOCALHOST;
const CLIENT_PORT: u16 = 45000;
const UPSTREAM_PORT: u16 = 8081;

/// Whether hopd's end of the connection from CLIENT_PORT is in TIME_WAIT (state 06 in the
/// namespace's tcp6 table, ports in hex).
fn hopd_side_in_time_wait() -> bool {
    // thread-self: only this thread is in the test's namespace (`/proc/net` is the process's).
    let table = std::fs::read_to_string("/proc/thread-self/net/tcp6").unwrap();
    let local = format!(":{PORT:04X}");
    let remote = format!(":{CLIENT_PORT:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&local) && f[2].ends_with(&remote) && f[3] == "06"
    })
}

fn srh_is_taken_from_the_first_segment_when_the_syn_reused_a_time_wait_tuple() {
    if !enter_netns() {
        return;
    }
    // The service answers each request and closes; hopd's proxy then closes towards the
    // client first, so hopd's side of every connection ends in TIME_WAIT.
    let upstream = std::net::TcpListener::bind(("::1", UPSTREAM_PORT)).unwrap();
    std::thread::spawn(move || {
        for (n, c) in upstream.incoming().enumerate() {
            let Ok(mut c) = c else { continue };
            let mut head = BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            while head.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let body = format!("answer {n}\n");
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let hopd = Hopd::proxy(
        PORT,
        "web",
        &format!("tcp:[::1]:{UPSTREAM_PORT}"),
        "tcp+http",
    );
    let srh = srh(&[LO], "tcp+http", "web", None);
    let mut reused = 0;
    for i in 0..6 {
        let was_time_wait = hopd_side_in_time_wait();
        let from = SocketAddrV6::new(LO, CLIENT_PORT, 0, 0);
        let mut s = tcp_connect_from(Some(from), hopd.addr, &srh)
            .unwrap_or_else(|e| panic!("connect {i}: {e}"));
        s.write_all(b"GET / HTTP/1.1\r\nhost: yc\r\n\r\n").unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r)
            .unwrap_or_else(|e| panic!("request {i} (TIME_WAIT reused: {was_time_wait}): {e}"));
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "request {i}: {r}");
        assert!(r.contains("\r\n\r\nanswer "), "request {i}: {r}");
        drop(s);
        reused += usize::from(was_time_wait);
        // Until the client's socket is gone (hopd closed first: a moment for the last ACK).
        std::thread::sleep(Duration::from_millis(30));
    }
    // The case under test did happen (every connection after the first, normally).
    assert!(reused >= 3, "only {reused} SYNs met a TIME_WAIT connection");
    assert!(!hopd.log_text().contains("without a Segment Routing Header"));
}

hopstack_testbed::tests! {
    srh_is_taken_from_the_first_segment_when_the_syn_reused_a_time_wait_tuple,
}
