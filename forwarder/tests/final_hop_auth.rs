//! Who connected, with the real `hop` and `hopd` on loopback in a private network namespace:
//! the SRH HMAC a client signs with `--hmac-key-file` is verified by the final hop and passed
//! on (hand-off metadata, PROXY v2 TLV 0xE0, for TCP and UDP); a forged one is refused per
//! layer, as is an unsigned request to a `require_hmac` service; a client certificate's
//! subject (mTLS, `tls = "terminate"`) reaches the service in PROXY v2's `PP2_TYPE_SSL`, and a
//! client without one is refused at the tls layer where `client_auth = "required"`.
//!
//! The kernel checks an SRH HMAC on local delivery too (`seg6_hmac_validate_skb`): with
//! `seg6_require_hmac = 0` (the default) it drops a signed packet whose key it does not hold,
//! before hopd could refuse it with a report. The tests set `-1` on `lo`, as a final host
//! that leaves the check to hopd must on its ingress interfaces (docs/services.md). The
//! kernel test installs the key in the kernel instead (`ip sr hmac set`, real root only) and
//! lets the kernel sign: hopd must accept what the kernel computed.

mod final_hop_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use final_hop_support::*;
use hopstack_forwarder::service::{Authenticated, Listener};

const SECRET: &str = "hopstack-auth-test";

fn hop_exe() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_hopd")).with_file_name("hop");
    if !p.is_file() {
        hopstack_testbed::harness::skip(
            "no `hop` binary next to hopd; cargo build -p hopstack-client --bin hop",
        );
    }
    p
}

fn hop(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut c = Command::new(hop_exe())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = c.stdin.take().unwrap();
    if let Some(b) = stdin {
        input.write_all(b).unwrap();
    }
    drop(input);
    let out = c.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A key file as `hop --hmac-key-file` reads it (mode 600).
fn key_file(dir: &Path, name: &str, id: u32, secret: &str) -> String {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("id = {id}\nalgorithm = \"sha256\"\nsecret = \"{secret}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

/// hopd's key table: key 7 (sha256, [`SECRET`]) held by "alice".
const KEYS: &str = "[[final_hop.hmac_keys]]\nid = 7\nalgorithm = \"sha256\"\nsecret = \"hopstack-auth-test\"\nname = \"alice\"\n";

/// Leave the HMAC check on `lo` to hopd (see the module comment).
fn kernel_leaves_hmac_to_hopd() {
    sh("sysctl -qw net.ipv6.conf.lo.seg6_require_hmac=-1");
}

/// A hand-off service that answers each request with what hopd told it about the signer,
/// and sends that on `tx` too.
fn who_service(listener: Listener, tx: mpsc::Sender<Option<Authenticated>>) {
    std::thread::spawn(move || {
        for conn in &listener {
            let Ok((stream, meta)) = conn else { return };
            let mut r = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let body = match &meta.authenticated {
                Some(a) => format!("signed by key {} ({})\n", a.key_id, a.name),
                None => "unsigned\n".to_owned(),
            };
            let _ = tx.send(meta.authenticated.clone());
            let mut w = stream;
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

fn handoff_service_learns_who_signed_and_forgeries_are_refused() {
    let _ = hop_exe();
    if !enter_netns() {
        return;
    }
    kernel_leaves_hmac_to_hopd();
    let services = format!(
        "{KEYS}\n[final_hop.services.who]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\n\
         [final_hop.services.guarded]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\nrequire_hmac = true\n"
    );
    let hopd = Hopd::start(PORT, &services);
    let (tx, rx) = mpsc::channel();
    who_service(
        Listener::register_at(&hopd.control, "who").unwrap(),
        tx.clone(),
    );
    who_service(Listener::register_at(&hopd.control, "guarded").unwrap(), tx);
    let keys = tempfile::tempdir().unwrap();
    let good = key_file(keys.path(), "alice.toml", 7, SECRET);
    let forged = key_file(keys.path(), "forged.toml", 7, "a guess");
    let unknown = key_file(keys.path(), "unknown.toml", 8, SECRET);

    // Signed: the service is told key 7, alice.
    let (code, out, err) = hop(
        &[
            "get",
            "--no-cache",
            "--hmac-key-file",
            &good,
            "[::1]:tcp+http+who/",
        ],
        None,
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "signed by key 7 (alice)\n"),
        "{err}"
    );
    let told = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        told,
        Some(Authenticated {
            key_id: 7,
            name: "alice".into()
        })
    );

    // Unsigned: nothing.
    let (code, out, err) = hop(&["get", "--no-cache", "[::1]:tcp+http+who/"], None);
    assert_eq!((code, out.as_str()), (0, "unsigned\n"), "{err}");
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), None);

    // Forged (wrong secret) and unknown key: refused at the route layer (exit 4), never
    // served as unsigned.
    for (file, says) in [(&forged, "does not match"), (&unknown, "key id 8")] {
        let (code, out, err) = hop(
            &[
                "get",
                "--no-cache",
                "--hmac-key-file",
                file,
                "[::1]:tcp+http+who/",
            ],
            None,
        );
        assert_eq!(code, 4, "{out} {err}");
        assert!(
            err.contains("'yc'") && err.contains("layer route: hmac-invalid") && err.contains(says),
            "{err}"
        );
    }
    // require_hmac: unsigned refused, signed served.
    let (code, out, err) = hop(&["get", "--no-cache", "[::1]:tcp+http+guarded/"], None);
    assert_eq!(code, 4, "{out} {err}");
    assert!(err.contains("layer route: hmac-required"), "{err}");
    let (code, out, err) = hop(
        &[
            "get",
            "--no-cache",
            "--hmac-key-file",
            &good,
            "[::1]:tcp+http+guarded/",
        ],
        None,
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "signed by key 7 (alice)\n"),
        "{err}"
    );
    // Exactly the two signed and the one unsigned request reached a service.
    let mut reached = vec![rx.recv_timeout(Duration::from_secs(5)).unwrap()];
    reached.extend(rx.try_iter());
    assert_eq!(reached.len(), 1, "{reached:?}");
    let log = hopd.log_text();
    assert!(
        log.contains("hmac-invalid") && log.contains("hmac-required"),
        "{log}"
    );
}

/// Reads a PROXY v2 header from `s` and returns it whole; `None` when the stream ends first
/// (hopd connects before the TLS handshake and closes without a header when it fails).
fn read_proxy_header(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut head = vec![0u8; 16];
    s.read_exact(&mut head).ok()?;
    let len = u16::from_be_bytes([head[14], head[15]]) as usize;
    let mut rest = vec![0u8; len];
    s.read_exact(&mut rest).ok()?;
    head.extend_from_slice(&rest);
    Some(head)
}

/// What a PROXY v2 header's TLVs say: the signer (0xE0) and the TLS client (0x20: client
/// flags, verify, common name).
fn describe_tlvs(header: &[u8]) -> String {
    let h = ppp::v2::Header::try_from(header).expect("a PROXY v2 header");
    let mut out = Vec::new();
    for t in h.tlvs() {
        let t = t.expect("a well-formed TLV");
        match t.kind {
            0xE0 => {
                let id = u32::from_be_bytes(t.value[..4].try_into().unwrap());
                out.push(format!(
                    "hmac={id}/{}",
                    String::from_utf8_lossy(&t.value[4..])
                ));
            }
            0x20 => {
                let (client, verify) = (t.value[0], &t.value[1..5]);
                out.push(format!(
                    "ssl-client={client} verify={}",
                    u32::from_be_bytes(verify.try_into().unwrap())
                ));
                let mut sub = &t.value[5..];
                while sub.len() >= 3 {
                    let len = u16::from_be_bytes([sub[1], sub[2]]) as usize;
                    let v = String::from_utf8_lossy(&sub[3..3 + len]);
                    match sub[0] {
                        0x21 => out.push(format!("version={v}")),
                        0x22 => out.push(format!("cn={v}")),
                        k => out.push(format!("sub{k:#x}")),
                    }
                    sub = &sub[3 + len..];
                }
            }
            k => out.push(format!("tlv{k:#x}")),
        }
    }
    if out.is_empty() {
        "no tlvs".to_owned()
    } else {
        out.join(" ")
    }
}

/// A TCP service behind hopd's proxy with PROXY v2: answers each request with what the
/// header's TLVs say.
fn pp2_http_service(listener: TcpListener) {
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let Some(header) = read_proxy_header(&mut s) else {
                    return;
                };
                let body = describe_tlvs(&header) + "\n";
                let mut r = BufReader::new(s.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
}

/// A client certificate with common name `cn`, signed by a fresh CA: (ca.pem, cert, key).
fn client_ca_and_cert(dir: &Path, ca: &str, cn: &str) -> (PathBuf, PathBuf, PathBuf) {
    let c = hopstack_testbed::fixture::write_test_ca(dir, ca, "client", &[cn]);
    (c.ca, c.cert, c.key)
}

fn mtls_subject_and_signer_reach_the_service_in_proxy_v2() {
    let _ = hop_exe();
    if !enter_netns() {
        return;
    }
    kernel_leaves_hmac_to_hopd();
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("server");
    let client_dir = dir.path().join("client");
    std::fs::create_dir_all(&server_dir).unwrap();
    std::fs::create_dir_all(&client_dir).unwrap();
    let server = hopstack_testbed::fixture::write_test_ca(
        &server_dir,
        "hopstack test CA",
        "billing",
        &["billing.yc"],
    );
    let (client_ca, cert, key) =
        client_ca_and_cert(&client_dir, "hopstack test client CA", "client-1");
    pp2_http_service(TcpListener::bind("[::1]:9090").unwrap());
    pp2_http_service(TcpListener::bind("[::1]:9091").unwrap());
    let services = format!(
        "{KEYS}\n[final_hop.services.billing]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:9090\"\n\
         layers = [\"tcp+tls+http\"]\ntls = \"terminate\"\ncert = \"{0}\"\nkey = \"{1}\"\n\
         proxy_protocol = \"v2\"\nclient_ca = \"{2}\"\nclient_auth = \"required\"\n\
         [final_hop.services.plain]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:9091\"\n\
         layers = [\"tcp+http\"]\nproxy_protocol = \"v2\"\n\
         [final_hop.services.lenient]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:9090\"\n\
         layers = [\"tcp+tls+http\"]\ntls = \"terminate\"\ncert = \"{0}\"\nkey = \"{1}\"\n\
         proxy_protocol = \"v2\"\nclient_ca = \"{2}\"\n",
        server.cert.display(),
        server.key.display(),
        client_ca.display()
    );
    let hopd = Hopd::start(PORT, &services);
    let good = key_file(dir.path(), "alice.toml", 7, SECRET);
    let ca = server.ca.display().to_string();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let tls = ["--cacert", &ca, "--sni", "billing.yc"];

    // The certificate's subject and the signer, in the header's TLVs.
    let mut args = vec![
        "get",
        "--no-cache",
        "-E",
        &cert,
        "--key",
        &key,
        "--hmac-key-file",
        &good,
    ];
    args.extend(tls);
    args.push("[::1]:tcp+tls+http+billing/");
    let (code, out, err) = hop(&args, None);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "hmac=7/alice ssl-client=3 verify=0 version=TLSv1.3 cn=client-1\n"
        ),
        "{err}"
    );
    // Unsigned with a certificate: only the TLS TLV.
    let mut args = vec!["get", "--no-cache", "--cert", &cert, "--key", &key];
    args.extend(tls);
    args.push("[::1]:tcp+tls+http+billing/");
    let (code, out, err) = hop(&args, None);
    assert_eq!(
        (code, out.as_str()),
        (0, "ssl-client=3 verify=0 version=TLSv1.3 cn=client-1\n"),
        "{err}"
    );
    // No certificate where one is required: refused in the handshake, layer tls (exit 6).
    let mut args = vec!["get", "--no-cache"];
    args.extend(tls);
    args.push("[::1]:tcp+tls+http+billing/");
    let (code, out, err) = hop(&args, None);
    assert_eq!(code, 6, "{out} {err}");
    assert!(
        err.contains("layer tls") && err.contains("requires a client certificate"),
        "{err}"
    );
    assert!(
        hopd.log_text().contains("tls-failure"),
        "{}",
        hopd.log_text()
    );

    // A certificate from another CA: refused in the handshake whatever client_auth says.
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let (_, other_cert, other_key) = client_ca_and_cert(&other_dir, "another CA", "mallory");
    let (other_cert, other_key) = (
        other_cert.display().to_string(),
        other_key.display().to_string(),
    );
    for service in ["billing", "lenient"] {
        let address = format!("[::1]:tcp+tls+http+{service}/");
        let mut args = vec!["get", "--no-cache", "-E", &other_cert, "--key", &other_key];
        args.extend(tls);
        args.push(&address);
        let (code, out, err) = hop(&args, None);
        assert_eq!(code, 6, "{service}: {out} {err}");
        assert!(
            err.contains("layer tls") && err.contains("refused the client certificate"),
            "{service}: {err}"
        );
    }
    // client_auth = "optional": without a certificate the service is reached, told that none
    // was verified and no name; with one, its subject.
    let mut args = vec!["get", "--no-cache"];
    args.extend(tls);
    args.push("[::1]:tcp+tls+http+lenient/");
    let (code, out, err) = hop(&args, None);
    assert_eq!(
        (code, out.as_str()),
        (0, "ssl-client=1 verify=1 version=TLSv1.3\n"),
        "{err}"
    );
    let mut args = vec!["get", "--no-cache", "-E", &cert, "--key", &key];
    args.extend(tls);
    args.push("[::1]:tcp+tls+http+lenient/");
    let (code, out, err) = hop(&args, None);
    assert_eq!(
        (code, out.as_str()),
        (0, "ssl-client=3 verify=0 version=TLSv1.3 cn=client-1\n"),
        "{err}"
    );

    // Without TLS termination, a signed request's header carries the signer only; an
    // unsigned one no TLV at all.
    let (code, out, err) = hop(
        &[
            "get",
            "--no-cache",
            "--hmac-key-file",
            &good,
            "[::1]:tcp+http+plain/",
        ],
        None,
    );
    assert_eq!((code, out.as_str()), (0, "hmac=7/alice\n"), "{err}");
    let (code, out, err) = hop(&["get", "--no-cache", "[::1]:tcp+http+plain/"], None);
    assert_eq!((code, out.as_str()), (0, "no tlvs\n"), "{err}");
}

fn udp_relay_passes_the_signer_on() {
    let _ = hop_exe();
    if !enter_netns() {
        return;
    }
    kernel_leaves_hmac_to_hopd();
    // A UDP service that answers each datagram with what its PROXY header's TLVs say.
    let svc = UdpSocket::bind("[::1]:5353").unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = svc.recv_from(&mut buf) {
            let mut d = &buf[..n];
            let header = read_proxy_header(&mut d).expect("a PROXY header on every datagram");
            let _ = svc.send_to(format!("{}\n", describe_tlvs(&header)).as_bytes(), from);
        }
    });
    let services = format!(
        "{KEYS}\n[final_hop.services.dgram]\nmode = \"udp\"\ntarget = \"[::1]:5353\"\n\
         layers = [\"udp+dns\"]\nproxy_protocol = \"v2\"\n\
         [final_hop.services.guarded]\nmode = \"udp\"\ntarget = \"[::1]:5353\"\n\
         layers = [\"udp+dns\"]\nrequire_hmac = true\n"
    );
    let hopd = Hopd::start(PORT, &services);
    let dir = tempfile::tempdir().unwrap();
    let good = key_file(dir.path(), "alice.toml", 7, SECRET);
    let forged = key_file(dir.path(), "forged.toml", 7, "a guess");
    let (code, out, err) = hop(
        &[
            "cat",
            "--no-cache",
            "--hmac-key-file",
            &good,
            "[::1]:udp+dns+dgram",
        ],
        Some(b"hello\n"),
    );
    assert_eq!((code, out.as_str()), (0, "hmac=7/alice\n"), "{err}");
    let (code, out, err) = hop(
        &["cat", "--no-cache", "[::1]:udp+dns+dgram"],
        Some(b"hello\n"),
    );
    assert_eq!((code, out.as_str()), (0, "no tlvs\n"), "{err}");
    // Refused: nothing reaches the service, and `hop` names hop and layer (exit 4, route),
    // from the probe it sends when no answer comes: a signed probe is checked like the
    // request, and an unsigned one over a path with no names to bind is held to
    // require_hmac.
    let (code, out, err) = hop(
        &[
            "cat",
            "--no-cache",
            "--hmac-key-file",
            &forged,
            "[::1]:udp+dns+dgram",
        ],
        Some(b"hello\n"),
    );
    assert_eq!(
        (code, out.as_str()),
        (4, ""),
        "forged datagram relayed? {err}"
    );
    assert!(
        err.contains("'yc'") && err.contains("layer route: hmac-invalid"),
        "{err}"
    );
    let (code, out, err) = hop(
        &["cat", "--no-cache", "[::1]:udp+dns+guarded"],
        Some(b"hello\n"),
    );
    assert_eq!(
        (code, out.as_str()),
        (4, ""),
        "unsigned datagram to require_hmac relayed? {err}"
    );
    assert!(err.contains("layer route: hmac-required"), "{err}");
    let log = hopd.log_text();
    assert!(
        log.contains("layer route, hmac-invalid") && log.contains("layer route, hmac-required"),
        "{log}"
    );
}

/// The kernel as the signer: with the key in its table (`ip sr hmac set 7 sha256`), the
/// kernel computes the HMAC of a socket's SRH on output (`ipv6_push_rthdr4` ->
/// `seg6_push_hmac`, over the packet's real source) and checks it on input; hopd must agree
/// with it. The client here sends the H flag and a zeroed HMAC field only.
fn hopd_accepts_what_the_kernel_signed() {
    if !hopstack_testbed::userns::initial_root() {
        hopstack_testbed::harness::skip(
            "`ip sr hmac set` needs CAP_NET_ADMIN in the initial user namespace (SEG6 genl \
             GENL_ADMIN_PERM); run as real root",
        );
    }
    if !enter_netns() {
        return;
    }
    let mut child = Command::new("ip")
        .args(["sr", "hmac", "set", "7", "sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{SECRET}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ip sr hmac set: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let services =
        format!("{KEYS}\n[final_hop.services.who]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\n");
    let hopd = Hopd::start(PORT, &services);
    let (tx, rx) = mpsc::channel();
    who_service(Listener::register_at(&hopd.control, "who").unwrap(), tx);

    use hopstack_encoder::wire::srh::SrhRepr;
    let bytes = srh(&[std::net::Ipv6Addr::LOCALHOST], "tcp+http", "who", None);
    let view = hopstack_encoder::wire::srh::Packet::new_checked(&bytes[..]).unwrap();
    let mut r = SrhRepr::parse(&view).unwrap();
    r.add_hmac_placeholder(7);
    let unsigned_placeholder = r.to_bytes().unwrap();
    let mut s: TcpStream = tcp_connect(hopd.addr, &unsigned_placeholder).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let resp = read_all(&mut s);
    assert!(resp.ends_with("signed by key 7 (alice)\n"), "{resp}");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Some(Authenticated {
            key_id: 7,
            name: "alice".into()
        })
    );
    // And a request `hop` signs goes through a kernel that holds the key and checks every
    // HMAC on the way in (seg6_require_hmac is 0 here). (Holding the key, the kernel also
    // recomputes the HMAC on output; a kernel without the key, as in the other tests, sends
    // `hop`'s own.)
    let dir = tempfile::tempdir().unwrap();
    let good = key_file(dir.path(), "alice.toml", 7, SECRET);
    let (code, out, err) = hop(
        &[
            "get",
            "--no-cache",
            "--hmac-key-file",
            &good,
            "[::1]:tcp+http+who/",
        ],
        None,
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "signed by key 7 (alice)\n"),
        "{err}"
    );
}

hopstack_testbed::tests! {
    handoff_service_learns_who_signed_and_forgeries_are_refused,
    mtls_subject_and_signer_reach_the_service_in_proxy_v2,
    udp_relay_passes_the_signer_on,
    hopd_accepts_what_the_kernel_signed needs [Kernel(Seg6Hmac)],
}
