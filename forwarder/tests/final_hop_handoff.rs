//! Hand-off mode with the real `hopd`: a service process registers over the control socket,
//! receives the accepted socket by SCM_RIGHTS and serves it with hopd out of the byte path.

mod final_hop_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv6Addr;
use std::time::Duration;

use final_hop_support::*;
use hopstack_encoder::Layer;
use hopstack_forwarder::service::{Error as SvcError, Listener};

const LO: Ipv6Addr = Ipv6Addr::LOCALHOST;
const BODY: usize = 64 << 20;

/// Deterministic body: octet i is a function of i (so loss, duplication or reordering shows).
fn body_byte(i: usize) -> u8 {
    (i.wrapping_mul(2654435761) >> 13) as u8
}

const CONFIG: &str = r#"
[final_hop.services.restapiv3]
mode = "handoff"
layers = ["tcp+http"]
[final_hop.services.guarded]
mode = "handoff"
layers = ["tcp+http"]
allowed_uids = [4242]
[final_hop.services.proxied]
mode = "proxy"
target = "tcp:[::1]:1"
layers = ["tcp+http"]
"#;

fn handed_off_connection_survives_hopd() {
    if !enter_netns() {
        return;
    }
    let mut hopd = Hopd::start(PORT, CONFIG);

    // Before any process registers: service-down, in HTTP.
    let mut s = tcp_connect(hopd.addr, &srh(&[LO], "tcp+http", "restapiv3", None)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_all(&mut s);
    assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
    assert!(
        r.contains("Hopstack-Error: hop=1; name=yc; layer=service; reason=service-down"),
        "{r}"
    );
    assert!(
        r.contains("no process is registered for `restapiv3`"),
        "{r}"
    );

    // Registration is checked: unknown names, wrong mode, wrong uid.
    let e = Listener::register_at(&hopd.control, "nosuch").unwrap_err();
    assert!(
        matches!(&e, SvcError::Refused { reason, .. } if reason.contains("no service `nosuch`")),
        "{e}"
    );
    let e = Listener::register_at(&hopd.control, "proxied").unwrap_err();
    assert!(e.to_string().contains("proxy mode, not handoff"), "{e}");
    let e = Listener::register_at(&hopd.control, "guarded").unwrap_err();
    // Who may register is hopd's configuration, not told to whoever asks (until 2026-12-05
    // the refusal listed the allowed uids).
    assert!(
        e.to_string().contains("uid 0") && !e.to_string().contains("4242"),
        "{e}"
    );

    let listener = Listener::register_at(&hopd.control, "restapiv3").unwrap();
    let service = std::thread::spawn(move || {
        let (stream, meta) = listener.accept().expect("a handed-off connection");
        let mut r = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" || h.is_empty() {
                break;
            }
        }
        let mut w = stream;
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut chunk = vec![0u8; 256 * 1024];
        let mut i = 0;
        while i < BODY {
            for (k, b) in chunk.iter_mut().enumerate() {
                *b = body_byte(i + k);
            }
            w.write_all(&chunk).unwrap();
            i += chunk.len();
        }
        (line, meta, listener)
    });

    let mut s = tcp_connect(hopd.addr, &srh(&[LO], "tcp+http", "restapiv3", None)).unwrap();
    let client_port = s.local_addr().unwrap().port();
    s.write_all(b"GET /users/list HTTP/1.1\r\nHost: restapiv3\r\n\r\n")
        .unwrap();
    let mut r = BufReader::with_capacity(1 << 16, s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK\r\n");
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
    }
    // Read a little, then kill hopd: if it were in the byte path the transfer would break.
    let mut got = vec![0u8; 1 << 20];
    r.read_exact(&mut got).unwrap();
    hopd.kill();
    assert!(
        std::net::TcpStream::connect(hopd.addr).is_err(),
        "hopd is dead: nothing listens on the final-hop port any more"
    );
    let mut rest = Vec::with_capacity(BODY);
    r.read_to_end(&mut rest).unwrap();
    got.extend_from_slice(&rest);
    assert_eq!(got.len(), BODY, "the whole body arrived after hopd died");
    let bad = got.iter().enumerate().position(|(i, &b)| b != body_byte(i));
    assert_eq!(bad, None, "body differs at offset {bad:?}");

    let (line, meta, _listener) = service.join().unwrap();
    assert_eq!(line, "GET /users/list HTTP/1.1\r\n");
    assert_eq!(meta.service, "restapiv3");
    assert_eq!(meta.layers, vec![Layer::Tcp, Layer::Http]);
    assert_eq!(meta.path, vec![LO]);
    assert_eq!(meta.client.port(), client_port);
    assert_eq!(meta.hop_name, "yc");
    assert_eq!(meta.local.port(), PORT);
}

fn unregistering_makes_the_service_down_again() {
    if !enter_netns() {
        return;
    }
    let hopd = Hopd::start(PORT, CONFIG);
    let listener = Listener::register_at(&hopd.control, "restapiv3").unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // Read the request first: closing with unread input would reset the connection.
        let mut req = [0u8; 18];
        s.read_exact(&mut req).unwrap();
        s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .unwrap();
        // `listener` dropped here: the registration ends.
    });
    let mut s = tcp_connect(hopd.addr, &srh(&[LO], "tcp+http", "restapiv3", None)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        read_all(&mut s),
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    );
    t.join().unwrap();
    // hopd notices the closed control socket.
    let t0 = std::time::Instant::now();
    loop {
        let mut s = tcp_connect(hopd.addr, &srh(&[LO], "tcp+http", "restapiv3", None)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let r = read_all(&mut s);
        if r.starts_with("HTTP/1.1 503 ") {
            assert!(r.contains("reason=service-down"), "{r}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "still not down: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The tokio flavour of the service API.
fn async_listener_serves_with_tokio() {
    if !enter_netns() {
        return;
    }
    let hopd = Hopd::start(PORT, CONFIG);
    let control = hopd.control.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(async {
            hopstack_forwarder::service::AsyncListener::register_at(&control, "restapiv3")
        })
        .unwrap();
    let served = std::thread::spawn(move || {
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut s, meta) = listener.accept().await.unwrap();
            let mut req = [0u8; 18];
            s.read_exact(&mut req).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ntokio\n")
                .await
                .unwrap();
            s.shutdown().await.unwrap();
            meta
        })
    });
    let mut s = tcp_connect(hopd.addr, &srh(&[LO], "tcp+http", "restapiv3", None)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(read_all(&mut s).ends_with("\r\n\r\ntokio\n"));
    assert_eq!(served.join().unwrap().service, "restapiv3");
}

/// A registered process that never calls `accept` does not make hopd hang: once its queue is
/// full, further connections are answered `service-down` after a bounded wait.
fn a_process_that_does_not_accept_makes_the_service_down() {
    if !enter_netns() {
        return;
    }
    let hopd = Hopd::start(PORT, CONFIG);
    let _idle = Listener::register_at(&hopd.control, "restapiv3").unwrap(); // never accepts
    let t0 = std::time::Instant::now();
    let clients: Vec<_> = (0..300)
        .map(|_| {
            let addr = hopd.addr;
            std::thread::spawn(move || {
                let mut s = tcp_connect(addr, &srh(&[LO], "tcp+http", "restapiv3", None)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
                s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
                let mut v = Vec::new();
                let _ = s.read_to_end(&mut v);
                String::from_utf8_lossy(&v).into_owned()
            })
        })
        .collect();
    let answers: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let refused = answers
        .iter()
        .filter(|r| r.starts_with("HTTP/1.1 503 ") && r.contains("is not accepting connections"))
        .count();
    let queued = answers.iter().filter(|r| r.is_empty()).count();
    eprintln!("{queued} connections queued for the idle process, {refused} refused");
    assert!(refused > 0, "no connection was refused: {answers:?}");
    assert_eq!(refused + queued, 300, "{answers:?}");
    assert!(t0.elapsed() < Duration::from_secs(15));
}

/// Until 2026-12-05 every connection to the control socket got a task and a 16 KiB buffer
/// for up to 5 s, without a bound: a local process could hold thousands. Past the cap a
/// connection is closed at once, and a service still registers.
fn control_connections_are_capped() {
    if !enter_netns() {
        return;
    }
    let hopd = Hopd::start(PORT, CONFIG);
    let silent: Vec<std::os::unix::net::UnixStream> = (0..300)
        .map(|_| {
            let fd = raw_socket(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::SeqPacket,
            );
            let addr = nix::sys::socket::UnixAddr::new(&hopd.control).unwrap();
            nix::sys::socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).unwrap();
            std::os::unix::net::UnixStream::from(fd)
        })
        .collect();
    // Those past the cap are closed at once; the rest wait (up to the 5 s a silent handshake
    // may take). Looked at without waiting, 300 ms after the last connect.
    std::thread::sleep(Duration::from_millis(300));
    let closed = silent
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            matches!((&mut &**s).read(&mut [0u8; 64]), Ok(0))
        })
        .count();
    eprintln!("{closed} of 300 silent connections closed at once");
    assert!((300 - 256..300).contains(&closed), "{closed} closed");
    drop(silent);
    // Once hopd has seen those close (its tasks end on EOF), a service registers again.
    let t0 = std::time::Instant::now();
    let listener = loop {
        match Listener::register_at(&hopd.control, "restapiv3") {
            Ok(l) => break l,
            Err(e) if t0.elapsed() < Duration::from_secs(3) => {
                eprintln!("not yet: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("no registration after the flood: {e}"),
        }
    };
    drop(listener);
}

/// An HTTP/1.1 server on `[::1]:port` in a thread, answering every request with `body`,
/// written in 64 KiB pieces.
fn http_server(port: u16, body: Vec<u8>) {
    let l = std::net::TcpListener::bind((LO, port)).unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                for piece in body.chunks(64 << 10) {
                    if s.write_all(piece).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// `GET /` through hopd to `service`; the stream after the request is sent.
fn request(hopd: &Hopd, service: &str) -> std::net::TcpStream {
    let mut s = tcp_connect(hopd.addr, &srh(&[LO], "tcp+http", service, None)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s
}

/// The body of a response read to its end (`Connection: close`), after the header.
fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// SIGHUP with services added, changed and removed: a handed-off stream and a proxied one
/// that started before it run to their last byte; a registered process of an unchanged
/// service stays registered; right after READY=1 the new service answers, the changed one
/// goes to its new target, the removed one is unknown.
fn a_reload_changes_services_while_streams_go_on() {
    if !enter_netns() {
        return;
    }
    const STREAM: usize = 32 << 20;
    let big: Vec<u8> = (0..STREAM).map(body_byte).collect();
    http_server(8101, big.clone());
    http_server(8102, b"now at b".to_vec());
    http_server(8103, b"fresh".to_vec());
    let before = r#"
[final_hop.services.stream]
mode = "handoff"
layers = ["tcp+http"]
[final_hop.services.changeme]
mode = "proxy"
target = "tcp:[::1]:8101"
layers = ["tcp+http"]
[final_hop.services.removeme]
mode = "proxy"
target = "tcp:[::1]:8102"
layers = ["tcp+http"]
"#;
    let after = r#"
[final_hop.services.stream]
mode = "handoff"
layers = ["tcp+http"]
[final_hop.services.changeme]
mode = "proxy"
target = "tcp:[::1]:8102"
layers = ["tcp+http"]
[final_hop.services.fresh]
mode = "proxy"
target = "tcp:[::1]:8103"
layers = ["tcp+http"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let hopd_dir = tempfile::tempdir().unwrap();
    let hopd = Hopd::start_in_with_env(
        hopd_dir,
        PORT,
        before,
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    );
    let wait_for = |line: &str| {
        let t0 = std::time::Instant::now();
        let mut buf = [0u8; 4096];
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(n) = notify.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == line)
                {
                    return;
                }
            }
        }
        panic!("no {line} from hopd:\n{}", hopd.log_text());
    };
    wait_for("READY=1");

    // A process serves `stream` by hand-off, each connection on a thread of its own.
    let listener = Listener::register_at(&hopd.control, "stream").unwrap();
    let service = std::thread::spawn(move || {
        for _ in 0..2 {
            let (stream, _) = listener.accept().expect("a handed-off connection");
            std::thread::spawn(move || serve_stream(stream));
        }
        listener
    });
    fn serve_stream(stream: std::net::TcpStream) {
        {
            let mut r = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let mut w = stream;
            write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Length: {STREAM}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            for piece in (0..STREAM).collect::<Vec<_>>().chunks(256 << 10) {
                let bytes: Vec<u8> = piece.iter().map(|&i| body_byte(i)).collect();
                if w.write_all(&bytes).is_err() {
                    break;
                }
            }
        }
    }

    // Both streams started and partly read before the reload.
    let mut handed_off = BufReader::with_capacity(1 << 16, request(&hopd, "stream"));
    let mut proxied = BufReader::with_capacity(1 << 16, request(&hopd, "changeme"));
    let mut first = vec![0u8; 1 << 20];
    for r in [&mut handed_off, &mut proxied] {
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
        }
        r.read_exact(&mut first).unwrap();
    }

    hopd.reload_with(after);
    wait_for("RELOADING=1");
    wait_for("READY=1");
    // Right after READY=1: the new service, the changed one's new target, the removed one.
    let fresh = read_all(&mut request(&hopd, "fresh"));
    assert_eq!(body_of(&fresh), "fresh", "{fresh}");
    let changed = read_all(&mut request(&hopd, "changeme"));
    assert_eq!(body_of(&changed), "now at b", "{changed}");
    let removed = read_all(&mut request(&hopd, "removeme"));
    assert!(
        removed.contains("reason=unknown-service"),
        "{removed}\n{}",
        hopd.log_text()
    );
    // The unchanged hand-off service kept its process.
    let again = read_all(&mut request(&hopd, "stream"));
    assert!(again.starts_with("HTTP/1.1 200 OK"), "{again}");

    // And the two streams from before the reload run to their last byte.
    for (what, mut r) in [("handed-off", handed_off), ("proxied", proxied)] {
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        let mut got = first.clone();
        got.extend_from_slice(&rest);
        assert_eq!(got.len(), STREAM, "{what}: the whole body");
        assert!(got == big, "{what}: the body's bytes");
    }
    let _listener = service.join().unwrap();
    assert!(
        hopd.log_text().contains("final hop services reloaded"),
        "{}",
        hopd.log_text()
    );

    // A file that does not validate (a proxy without a target) keeps the running services.
    hopd.reload_with("[final_hop.services.fresh]\nmode = \"proxy\"\nlayers = [\"tcp+http\"]\n");
    wait_for("RELOADING=1");
    wait_for("READY=1");
    let still = read_all(&mut request(&hopd, "fresh"));
    assert_eq!(body_of(&still), "fresh", "{still}");
    assert!(
        hopd.log_text()
            .contains("SIGHUP: keeping the running configuration"),
        "{}",
        hopd.log_text()
    );
}

hopstack_testbed::tests! {
    a_reload_changes_services_while_streams_go_on,
    control_connections_are_capped,
    handed_off_connection_survives_hopd,
    unregistering_makes_the_service_down_again,
    async_listener_serves_with_tokio,
    a_process_that_does_not_accept_makes_the_service_down,
}
