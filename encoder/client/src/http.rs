//! The `http` and `h2` layers, client side, with hyper, over whatever the lower layers made
//! (plain TCP or TLS on the SRH-carrying socket).
//!
//! The final hop may answer in-band instead of the service when it cannot reach it (HTTP 502
//! or 503 with a `Hopstack-Error: hop=3; name=yc; layer=service; reason=unknown-service`
//! header, see `hopstack_forwarder::final_hop::failure`); that becomes the matching
//! [`ClientError`] rather than an HTTP error.

use std::io::Write;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use hopstack_encoder::wire::report::{Reason, ReportLayer};

use super::error::{ClientError, ClientReason, ErrorLayer, HopRef};
use super::progress::Meter;
use super::timing::Timings;

/// Name of the header the final hop puts on in-band errors.
pub const ERROR_HEADER: &str = "hopstack-error";

/// One HTTP request.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    /// Path and query, with the leading `/`.
    pub path: String,
    /// `Host` header (HTTP/1.1) or `:authority` (h2).
    pub host: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Speak HTTP/2 (the `h2` layer) instead of HTTP/1.1.
    pub h2: bool,
}

/// What happened, for the exit code and `-v`.
#[derive(Debug, Clone)]
pub struct HttpOutcome {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub bytes: u64,
}

fn http_err(reason: ClientReason, message: String) -> ClientError {
    ClientError::new(ErrorLayer::Http, reason, message)
}

/// Parses a `Hopstack-Error` header value (`hop=3; name=yc; layer=service; reason=...`;
/// `hop` is the hop number, counted from 1 as people count hops).
pub fn parse_error_header(v: &str, message: &str) -> Option<ClientError> {
    let mut hop = None;
    let mut name = String::new();
    let mut layer = None;
    let mut reason = None;
    for part in v.split(';') {
        let (k, val) = part.trim().split_once('=')?;
        match k {
            "hop" => hop = val.parse::<usize>().ok().and_then(|n| n.checked_sub(1)),
            "name" => name = val.to_owned(),
            "layer" => layer = Some(val.to_owned()),
            "reason" => reason = Some(val.to_owned()),
            _ => {}
        }
    }
    let layer_s = layer?;
    let reason_s = reason?;
    let layer = match layer_s.as_str() {
        "route" => ErrorLayer::Route,
        "service" => ErrorLayer::Service,
        other => match other.parse() {
            Ok(l) => ErrorLayer::from_report(ReportLayer::Layer(l)),
            Err(_) => ErrorLayer::Service,
        },
    };
    let sentence = Reason::from_name(&reason_s)
        .map(|r| format!(" ({})", r.sentence()))
        .unwrap_or_default();
    let extra = if message.is_empty() {
        String::new()
    } else {
        format!(" [{message}]")
    };
    let mut e = ClientError::new(
        layer,
        ClientReason::from_name(&reason_s),
        format!("{reason_s}{sentence}{extra}"),
    );
    if let Some(index) = hop {
        e = e.at(HopRef {
            index,
            name,
            address: None,
        });
    }
    Some(e)
}

/// A response whose head has arrived; the body follows with [`Response::chunk`].
pub struct Response {
    pub status: u16,
    /// The status's usual reason phrase (error lines say it, whatever the server wrote).
    pub reason: String,
    /// The reason phrase the server sent (HTTP/1), else the usual one: `-i` shows it.
    pub phrase: String,
    /// `1.1`, `2` or `3` (as curl's `%{http_version}` writes it).
    pub version: &'static str,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// Content-Length, when the response has one.
    pub content_length: Option<u64>,
    body: Body,
}

/// Where a response's body comes from: hyper's connection (HTTP/1.1, h2), or the task that
/// reads an HTTP/3 request stream (`crate::quic`), which hands its chunks over a channel.
enum Body {
    Hyper(hyper::body::Incoming),
    Chunks(tokio::sync::mpsc::Receiver<Result<Bytes, ClientError>>),
}

/// A response's header fields as `Response::headers` keeps them: names in lower case (as the
/// `http` crate has them), values as text, in the order received.
pub(crate) fn header_list(h: &hyper::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

impl Response {
    /// A response whose body arrives as chunks on `body` (ended by the sender's drop): the
    /// HTTP/3 client's (`crate::quic`).
    pub(crate) fn from_chunks(
        status: u16,
        version: &'static str,
        headers: Vec<(String, String)>,
        body: tokio::sync::mpsc::Receiver<Result<Bytes, ClientError>>,
    ) -> Response {
        let reason = hyper::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
            .to_owned();
        let content_length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok());
        Response {
            status,
            phrase: reason.clone(),
            reason,
            version,
            headers,
            content_length,
            body: Body::Chunks(body),
        }
    }
}

impl Response {
    /// A header's value (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the final hop answered in the service's place (a `Hopstack-Error` header):
    /// then [`Response::hop_error`] says what it reported.
    pub fn is_hop_error(&self) -> bool {
        self.header(ERROR_HEADER).is_some()
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        let body = match &mut self.body {
            Body::Hyper(b) => b,
            Body::Chunks(rx) => return rx.recv().await.transpose(),
        };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                http_err(
                    ClientReason::Body,
                    format!("reading the response body: {e}"),
                )
            })?;
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }

    /// The final hop's in-band report as the client's error (its message from the first
    /// 4 KiB of the JSON body); an HTTP error when the header does not parse.
    pub async fn hop_error(mut self) -> ClientError {
        let header = self.header(ERROR_HEADER).unwrap_or_default().to_owned();
        let mut body = Vec::new();
        while body.len() < 4096 {
            match self.chunk().await {
                Ok(Some(d)) => body.extend_from_slice(&d[..d.len().min(4096)]),
                _ => break,
            }
        }
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        parse_error_header(&header, &msg).unwrap_or_else(|| {
            http_err(
                ClientReason::HttpStatus(self.status),
                format!(
                    "HTTP {} {} with a {ERROR_HEADER} header that does not parse: {header:?}",
                    self.status, self.reason
                ),
            )
        })
    }
}

/// Sends `req` over `io` and returns the response head; sets `timings.first_byte` and
/// `timings.http_status` when it arrives.
pub async fn send<IO>(
    io: IO,
    req: &HttpRequest,
    timings: &mut Timings,
) -> Result<Response, ClientError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut b = Request::builder().method(req.method.as_str());
    if req.h2 {
        b = b.uri(format!("https://{}{}", req.host, req.path));
    } else {
        b = b.uri(req.path.as_str()).header("host", req.host.as_str());
    }
    b = b.header("user-agent", concat!("hop/", env!("CARGO_PKG_VERSION")));
    for (k, v) in &req.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let hreq = b
        .body(Full::new(Bytes::from(req.body.clone())))
        .map_err(|e| ClientError::usage(format!("bad request: {e}")))?;
    let io = TokioIo::new(io);
    let resp = if req.h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| http_err(ClientReason::H2Handshake, format!("HTTP/2 handshake: {e}")))?;
        tokio::spawn(conn);
        sender.send_request(hreq).await
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| http_err(ClientReason::HttpHandshake, format!("HTTP/1.1: {e}")))?;
        tokio::spawn(conn);
        sender.send_request(hreq).await
    }
    .map_err(|e| {
        if let Some(alert) = crate::tls::alert_received(&e) {
            return crate::tls::alert_error(alert);
        }
        http_err(
            ClientReason::NoResponse,
            format!("no HTTP response: {e} (the connection closed before a response)"),
        )
    })?;
    timings.first_byte = Some(timings.mark());
    let status = resp.status();
    timings.http_status = Some(status.as_u16());
    let headers = header_list(resp.headers());
    let content_length = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let reason = status.canonical_reason().unwrap_or("").to_owned();
    let phrase = resp
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map_or_else(
            || reason.clone(),
            |r| String::from_utf8_lossy(r.as_bytes()).into_owned(),
        );
    let version = if resp.version() == hyper::Version::HTTP_2 {
        "2"
    } else if resp.version() == hyper::Version::HTTP_10 {
        "1.0"
    } else {
        "1.1"
    };
    Ok(Response {
        status: status.as_u16(),
        reason,
        phrase,
        version,
        headers,
        content_length,
        body: Body::Hyper(resp.into_body()),
    })
}

/// Sends `req` over `io` and streams the response body into `out`. With `fail`, a status of
/// 400 or more is an error (exit 7) and the body is not written, as `curl --fail` does. With
/// `progress`, curl's meter on stderr. Sets `timings.first_byte` when the response head
/// arrives.
pub async fn request<IO, W>(
    io: IO,
    req: &HttpRequest,
    out: &mut W,
    fail: bool,
    progress: bool,
    timings: &mut Timings,
) -> Result<HttpOutcome, ClientError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    W: Write,
{
    let mut resp = send(io, req, timings).await?;
    if resp.is_hop_error() {
        return Err(resp.hop_error().await);
    }
    let status = resp.status;
    if fail && status >= 400 {
        return Err(http_err(
            ClientReason::HttpStatus(status),
            format!(
                "HTTP {status} {} for {} {}",
                resp.reason, req.method, req.path
            ),
        ));
    }
    let meter = if progress {
        Meter::start(timings.start)
    } else {
        Meter::off()
    };
    meter.update(|m| m.expected = resp.content_length);
    let mut bytes = 0u64;
    let result = async {
        while let Some(data) = resp.chunk().await? {
            bytes += data.len() as u64;
            out.write_all(&data)
                .map_err(|e| ClientError::local(format!("writing the body: {e}")))?;
            meter.update(|m| m.received = bytes);
        }
        out.flush()
            .map_err(|e| ClientError::local(format!("writing the body: {e}")))
    }
    .await;
    meter.finish();
    timings.bytes = bytes;
    result?;
    Ok(HttpOutcome {
        status,
        reason: resp.reason.clone(),
        headers: resp.headers.clone(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GET of `path` from host `yc` over `io`, as `--fail` without progress sends it: what
    /// [`request`] returned, the body it wrote, and its timings.
    async fn get_from_yc<IO>(
        io: IO,
        path: &str,
        headers: Vec<(String, String)>,
        h2: bool,
    ) -> (Result<HttpOutcome, ClientError>, Vec<u8>, Timings)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let req = HttpRequest {
            method: "GET".into(),
            path: path.into(),
            host: "yc".into(),
            headers,
            body: vec![],
            h2,
        };
        let mut out = Vec::new();
        let mut t = Timings::start();
        let result = request(io, &req, &mut out, true, false, &mut t).await;
        (result, out, t)
    }

    #[test]
    fn error_header_becomes_a_service_error() {
        let e = parse_error_header(
            "hop=3; name=yc; layer=service; reason=unknown-service",
            "no service `nope`",
        )
        .unwrap();
        assert_eq!(e.exit_code(), 8);
        assert_eq!(
            e.to_string(),
            "hop 3 'yc': layer service: unknown-service (no service of that name is \
             registered at the final hop) [no service `nope`]"
        );
        assert!(parse_error_header("garbage", "").is_none());
    }

    #[tokio::test]
    async fn status_404_fails_with_exit_7_and_writes_no_body() {
        let (client, mut server) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 1024];
            let n = server.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /users/list HTTP/1.1\r\n"));
            server
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\n\r\nnope")
                .await
                .unwrap();
        });
        let (result, out, t) = get_from_yc(client, "/users/list", vec![], false).await;
        let e = result.unwrap_err();
        assert_eq!(e.exit_code(), 7);
        assert_eq!(e.reason, "http-404");
        assert!(out.is_empty());
        assert_eq!(t.http_status, Some(404));
    }

    #[tokio::test]
    async fn h2_request_reaches_a_hyper_server_with_authority_and_path() {
        use hyper::service::service_fn;
        let (client, server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                let text = format!("{} {} {:?}", req.method(), req.uri(), req.version());
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(
                    text,
                ))))
            });
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(server), svc)
                .await
                .unwrap();
        });
        let accept = vec![("accept".into(), "application/json".into())];
        let (result, out, t) = get_from_yc(client, "/users/list?x=1", accept, true).await;
        let o = result.unwrap();
        assert_eq!(o.status, 200);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET https://yc/users/list?x=1 HTTP/2.0"
        );
        assert!(t.first_byte.is_some());
    }
}
