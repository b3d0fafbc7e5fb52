//! `hop proxy --http-connect ADDR:PORT`: an HTTP/1.1 CONNECT proxy (RFC 9110, section 9.3.6)
//! whose request target's host is the stack address: `CONNECT ADDRESS:PORT HTTP/1.1`. The
//! port is ignored (a stack address names its service; the path says which port reaches
//! it). On success `200 Connection established` and then only the bytes both ways; on
//! failure an HTTP status (`target::http_status`), the `Hopstack-Error` header hopd's
//! in-band answers carry, and the one line naming hop and layer as the body.
//!
//! Hand-written rather than hyper's server: hyper parses the request target with the `http`
//! crate, whose URI grammar has no `>` (nor a host in brackets that is no IPv6 literal, as
//! Python writes a tunnel host with a `:`), so every stack address would be refused with a
//! 400 before this code saw it. A CONNECT request is one line and headers to skip.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use hopstack_encoder::wire::report::printable;

use super::{Dialer, target};

/// A request head larger than this is no CONNECT request.
const MAX_HEAD: usize = 8 * 1024;
/// A client that sends no complete head in this time is dropped.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one client: its CONNECT request, then the connection to the stack address and the
/// bytes both ways, or an error answer and one log line naming hop and layer.
pub(super) async fn serve(dialer: &Dialer, mut client: TcpStream, peer: SocketAddr) {
    let (head, early) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
        Ok(Ok(h)) => h,
        Ok(Err(why)) => {
            let _ = client
                .write_all(&answer(400, "Bad Request", None, &why))
                .await;
            eprintln!("hop: proxy: http-connect {peer}: {why}");
            return;
        }
        Err(_) => {
            eprintln!("hop: proxy: http-connect {peer}: no request head within {HEAD_TIMEOUT:?}");
            return;
        }
    };
    let host = match connect_host(&head) {
        Ok(h) => h,
        Err(Refusal {
            status,
            phrase,
            why,
        }) => {
            let _ = client.write_all(&answer(status, phrase, None, &why)).await;
            eprintln!("hop: proxy: http-connect {peer}: {why}");
            return;
        }
    };
    let requested = target::stack_address(host);
    // The log names the address as parsed (decoded), or what came when it does not parse.
    let shown = match &requested {
        Ok(addr) => addr.to_string(),
        Err(_) => printable(&String::from_utf8_lossy(host)),
    };
    let dialed = match requested {
        Ok(addr) => dialer.dial(addr).await,
        Err(e) => Err(e),
    };
    match dialed {
        Ok(mut d) => {
            dialer.note(|| {
                format!(
                    "http-connect {peer} -> {shown}: {} ({})",
                    d.destination, d.how
                )
            });
            let up = b"HTTP/1.1 200 Connection established\r\n\r\n";
            // Octets the client sent after its head without waiting for the answer are the
            // first the service gets.
            let sent = async {
                client.write_all(up).await?;
                if !early.is_empty() {
                    d.stream.write_all(&early).await?;
                }
                Ok::<_, std::io::Error>(())
            };
            match sent.await {
                Ok(()) => super::relay(client, d.stream).await,
                Err(e) => eprintln!("hop: proxy: http-connect {peer} -> {shown}: {e}"),
            }
        }
        Err(e) => {
            // Logged before the answer: whoever sees the answer finds the reason logged.
            eprintln!("hop: proxy: http-connect {peer} -> {shown}: {e}");
            let (status, phrase) = target::http_status(&e);
            let header = target::error_header(&e);
            let _ = client
                .write_all(&answer(status, phrase, Some(&header), &e.to_string()))
                .await;
        }
    }
}

/// The request head up to its blank line, and the octets after it that came with it.
async fn read_head(client: &mut TcpStream) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(format!("a request head over {MAX_HEAD} octets"));
        }
        let n = client
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the request: {e}"))?;
        if n == 0 {
            return Err("the client closed before its request head ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Why a request is no CONNECT this proxy can serve.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    status: u16,
    phrase: &'static str,
    why: String,
}

/// The host of a `CONNECT host:port HTTP/1.x` head (the port, if any, cut off at the last
/// `:`, since a stack address has colons of its own).
fn connect_host(head: &[u8]) -> Result<&[u8], Refusal> {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let bad = |why: &str| Refusal {
        status: 400,
        phrase: "Bad Request",
        why: why.to_owned(),
    };
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(authority), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the request line is not METHOD TARGET VERSION"));
    };
    if !version.starts_with(b"HTTP/1.") {
        return Err(bad("not an HTTP/1.x request"));
    }
    if method != b"CONNECT" {
        return Err(Refusal {
            status: 405,
            phrase: "Method Not Allowed",
            why: format!(
                "{} request: this proxy only tunnels (CONNECT ADDRESS:PORT)",
                printable(&String::from_utf8_lossy(method))
            ),
        });
    }
    if authority.is_empty() {
        return Err(bad("CONNECT without a target"));
    }
    Ok(match authority.iter().rposition(|&b| b == b':') {
        Some(colon)
            if colon + 1 < authority.len()
                && authority[colon + 1..].iter().all(u8::is_ascii_digit) =>
        {
            &authority[..colon]
        }
        _ => authority,
    })
}

/// An error answer: the status, the `Hopstack-Error` header when there is a failure to name,
/// and `line` (one line) as a text body; the connection closes after it.
fn answer(status: u16, phrase: &str, error_header: Option<&str>, line: &str) -> Vec<u8> {
    let body = format!("{line}\n");
    let mut head = format!("HTTP/1.1 {status} {phrase}\r\n");
    if let Some(h) = error_header {
        // Spelt as hopd's in-band answers spell it (`crate::http::ERROR_HEADER` is the
        // lower-case name hyper looks headers up by).
        head.push_str(&format!("Hopstack-Error: {h}\r\n"));
    }
    if status == 405 {
        head.push_str("Allow: CONNECT\r\n");
    }
    head.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// For the tests of the answer (no network): the error answer for `e`.
#[cfg(test)]
fn failure_answer(e: &crate::error::ClientError) -> Vec<u8> {
    let (status, phrase) = target::http_status(e);
    answer(
        status,
        phrase,
        Some(&target::error_header(e)),
        &e.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_the_authority_without_its_port() {
        let host = |head: &str| {
            connect_host(head.as_bytes()).map(|h| String::from_utf8(h.to_vec()).unwrap())
        };
        // curl -p -x, with --connect-to '::github.com>org>yc%3Atcp+http+web:'
        assert_eq!(
            host("CONNECT github.com>org>yc%3Atcp+http+web:80 HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap(),
            "github.com>org>yc%3Atcp+http+web"
        );
        // Python's set_tunnel
        assert_eq!(
            host("CONNECT [github.com>org>yc:tcp+http+web]:80 HTTP/1.1\r\n\r\n").unwrap(),
            "[github.com>org>yc:tcp+http+web]"
        );
        // By hand, no port: the last ':' is the address's own.
        assert_eq!(
            host("CONNECT github.com>org>yc:tcp+http+web HTTP/1.1\r\n\r\n").unwrap(),
            "github.com>org>yc:tcp+http+web"
        );
        let r = host("GET http://example.com/ HTTP/1.1\r\n\r\n").unwrap_err();
        assert_eq!(r.status, 405);
        assert_eq!(host("CONNECT\r\n\r\n").unwrap_err().status, 400);
        assert_eq!(host("CONNECT a:1 SPDY/3\r\n\r\n").unwrap_err().status, 400);
    }

    #[test]
    fn a_failure_answers_with_status_header_and_the_one_line() {
        use crate::error::{ClientError, ErrorLayer, HopRef};
        use hopstack_encoder::wire::report::Reason;
        let e = ClientError::new(
            ErrorLayer::Service,
            Reason::UnknownService,
            "service 'nosuch' over tcp+http: unknown-service",
        )
        .at(HopRef {
            index: 2,
            name: "yc".into(),
            address: Some("fd00:3::2".parse().unwrap()),
        });
        let a = String::from_utf8(failure_answer(&e)).unwrap();
        let line = e.to_string();
        assert!(a.starts_with("HTTP/1.1 404 Not Found\r\n"), "{a}");
        assert!(
            a.contains(
                "\r\nHopstack-Error: hop=3; name=yc; layer=service; reason=unknown-service\r\n"
            ),
            "{a}"
        );
        assert!(
            a.contains(&format!("\r\nContent-Length: {}\r\n", line.len() + 1)),
            "{a}"
        );
        assert!(a.ends_with(&format!("\r\n\r\n{line}\n")), "{a}");
    }
}
