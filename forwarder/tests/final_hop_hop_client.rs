//! The real client against the real final hop: `hop get` / `hop cat` (encoder crate) talking to
//! `hopd` over kernel sockets with the SRH, on loopback inside a private network namespace.
//! `hop` is taken from the same target directory as `hopd`; the test skips loudly if it has
//! not been built (`cargo build -p hopstack-client --bin hop`).

mod final_hop_support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use final_hop_support::*;

fn hop_exe() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_hopd")).with_file_name("hop");
    p.is_file().then_some(p)
}

fn hop(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut c = Command::new(hop_exe().unwrap())
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

fn hop_get_and_cat_reach_services_through_hopd() {
    if hop_exe().is_none() {
        hopstack_testbed::harness::skip(
            "no `hop` binary next to hopd; cargo build -p hopstack-client --bin hop",
        );
    }
    if !enter_netns() {
        return;
    }
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("list"), "alice\nbob\n").unwrap();
    let mut py = Command::new("python3")
        .args(["-m", "http.server", "--bind", "::1", "8080"])
        .current_dir(www.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    udp_echo_service("[::1]:5353");
    let ck = rcgen::generate_simple_self_signed(vec!["restapiv3.yc".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("k.pem"), ck.signing_key.serialize_pem()).unwrap();
    let ca = dir.path().join("c.pem").display().to_string();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let services = services_toml(&[
        ServiceToml::proxy("restapiv3", "tcp:[::1]:8080", &["tcp+http", "tcp+tls+http"])
            .terminating(&cert, &key),
        ServiceToml::udp("resolver", "[::1]:5353", &["udp+dns"]),
    ]);
    let hopd = Hopd::start_in(dir, PORT, &services);
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("::1", 8080)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }

    let (code, out, err) = hop(
        &["get", "--no-cache", "[::1]:tcp+http+restapiv3/list"],
        None,
    );
    assert_eq!((code, out.as_str()), (0, "alice\nbob\n"), "{err}");

    let (code, out, err) = hop(
        &[
            "get",
            "--no-cache",
            "--cacert",
            &ca,
            "--sni",
            "restapiv3.yc",
            "[::1]:tcp+tls+http+restapiv3/list",
        ],
        None,
    );
    assert_eq!((code, out.as_str()), (0, "alice\nbob\n"), "{err}");

    // The client prints the final hop's in-band error (exit code 8 = service).
    let (code, _, err) = hop(&["get", "--no-cache", "[::1]:tcp+http+nosuch/list"], None);
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains("layer service: unknown-service")
            && err.contains("no service `nosuch` on this host"),
        "{err}"
    );
    let (code, _, err) = hop(&["get", "--no-cache", "[::1]:tcp+h2+restapiv3/list"], None);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("layer-mismatch"), "{err}");

    let (code, out, err) = hop(
        &["cat", "--no-cache", "[::1]:udp+dns+resolver"],
        Some(b"hello\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("echo:hello"), "{out:?} {err}");
    drop(hopd);
    let _ = py.kill();
    let _ = py.wait();
}

hopstack_testbed::tests! {
    hop_get_and_cat_reach_services_through_hopd,
}
