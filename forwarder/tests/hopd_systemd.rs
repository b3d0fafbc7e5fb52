//! hopd under systemd: the sd_notify datagram protocol seen from a real notify socket (a Unix
//! datagram socket named by `NOTIFY_SOCKET`, as systemd creates for `Type=notify`), and the
//! shipped unit files as `systemd-analyze verify` reads them.
//!
//! The notify test runs hopd's border role on the four-namespace line of `border_support`
//! (needs network namespaces and `/dev/net/tun`).

mod border_support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use border_support::*;

/// What hopd sent to the notify socket within `wait`, one datagram per entry.
fn messages_within(sock: &UnixDatagram, wait: Duration) -> Vec<String> {
    let end = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return out;
        }
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => return out,
        }
    }
}

/// Waits for a datagram with `line` in it, returning those before it and that one.
fn until_line(sock: &UnixDatagram, line: &str, wait: Duration) -> Vec<String> {
    let end = Instant::now() + wait;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = m.lines().any(|l| l == line);
            seen.push(m);
            if done {
                return seen;
            }
        }
    }
    panic!("no {line} within {wait:?}; got {seen:?}");
}

fn count(messages: &[String], line: &str) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == line))
        .count()
}

fn ready_reload_status_and_a_watchdog_fed_only_while_the_packet_loop_turns() {
    if !can_run() {
        return;
    }
    let mut line = Line::new("sd");
    line.write_config("");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    // WATCHDOG_USEC of 600 ms: hopd feeds it every 300 ms.
    line.spawn_hopd_with_env(&[
        ("NOTIFY_SOCKET", path.to_str().unwrap()),
        ("WATCHDOG_USEC", "600000"),
    ]);

    // READY=1, and at that moment the TUN, its route and the metrics listener are up.
    let before_ready = until_line(&sock, "READY=1", Duration::from_secs(15));
    let (_, routes) = line.exec("r1", &["ip", "-6", "route", "show", SID]);
    assert!(
        routes.contains("dev hop0"),
        "READY=1 before the SID route: {routes:?}\n{}",
        line.hopd_log()
    );
    let (up, link) = line.exec("r1", &["ip", "link", "show", "hop0"]);
    assert!(
        up && link.contains("UP"),
        "READY=1 before the TUN is up: {link}"
    );
    assert!(
        line.stats().contains("hopd_border_packets_forwarded_total"),
        "READY=1 before the metrics listener"
    );
    // What only start-up needs is gone from every set (bit 10: CAP_NET_BIND_SERVICE).
    let status = std::fs::read_to_string(format!("/proc/{}/status", line.hopd_pid())).unwrap();
    for set in ["CapPrm:", "CapEff:", "CapInh:", "CapAmb:"] {
        let bits = status
            .lines()
            .find_map(|l| l.strip_prefix(set))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        assert_eq!(
            bits & (1 << 10),
            0,
            "{set} {bits:x} still has CAP_NET_BIND_SERVICE"
        );
    }
    let ready = before_ready.last().unwrap();
    assert!(
        ready.lines().any(|l| l.starts_with("STATUS=border: ")),
        "{ready}"
    );

    // Fed while healthy.
    let healthy = messages_within(&sock, Duration::from_millis(1500));
    assert!(
        count(&healthy, "WATCHDOG=1") >= 3,
        "WATCHDOG=1 every 300 ms: {healthy:?}"
    );

    // SIGHUP: RELOADING=1 (with the monotonic time systemd 253 asks for), then READY=1.
    // SAFETY: signalling the hopd this test started.
    unsafe { libc::kill(line.hopd_pid() as i32, libc::SIGHUP) };
    let reload = until_line(&sock, "READY=1", Duration::from_secs(5));
    let reloading = reload
        .iter()
        .position(|m| m.lines().any(|l| l == "RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1 before READY=1: {reload:?}"));
    assert!(
        reload[reloading]
            .lines()
            .any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reload:?}"
    );

    // A stuck packet loop (debug builds hang every loop on SIGUSR2): no more WATCHDOG=1.
    // SAFETY: as above.
    unsafe { libc::kill(line.hopd_pid() as i32, libc::SIGUSR2) };
    // The loops beat once a second and count as stuck after two without a beat.
    let _ = messages_within(&sock, Duration::from_millis(3000));
    let stuck = messages_within(&sock, Duration::from_millis(2000));
    assert_eq!(
        count(&stuck, "WATCHDOG=1"),
        0,
        "WATCHDOG=1 while the packet loop hangs: {stuck:?}\n{}",
        line.hopd_log()
    );
    assert!(line.hopd_alive(), "hopd itself keeps running");
    // Its stderr is a file here, not a terminal: plain text, no colour escapes.
    assert!(!line.hopd_log().contains('\x1b'), "{}", line.hopd_log());
    assert!(
        line.hopd_log().contains("packet loops stopped turning"),
        "{}",
        line.hopd_log()
    );
}

/// The shipped units, with ExecStart pointing at the built hopd (verify checks that the
/// binary exists), accepted without a single warning.
fn shipped_unit_files_pass_systemd_analyze_verify() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let dir = tempfile::tempdir().unwrap();
    let hopd = env!("CARGO_BIN_EXE_hopd");
    for (shipped, as_name) in [
        ("hopd.service", "hopd.service"),
        ("hopd@.service", "hopd@border.service"),
    ] {
        let text = std::fs::read_to_string(units.join(shipped)).unwrap();
        assert!(text.contains("Type=notify") && text.contains("RuntimeDirectory=hopd"));
        let unit = dir.path().join(as_name);
        std::fs::write(&unit, text.replace("/usr/bin/hopd", hopd)).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{as_name}: {stderr}"
        );
    }
}

hopstack_testbed::tests! {
    ready_reload_status_and_a_watchdog_fed_only_while_the_packet_loop_turns,
    shipped_unit_files_pass_systemd_analyze_verify needs [Program("systemd-analyze")],
}
