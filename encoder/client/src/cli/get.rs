//! `hop get`: an HTTP request over the address's layers (tcp[+tls]+http|h2, udp+quic+h3:
//! `get_quic.rs`), the body on
//! stdout or in a file; or, given a plain URL, the same request without hopstack. The
//! command line is curl's where curl has the flag (docs/client.md has the table): `-d`
//! posts, `-L` follows redirects (within the address's service), `-f` exits 22, `-m` bounds
//! each try and exits 28, `--retry` retries what curl calls transient, `-w` writes curl's
//! variables and hopstack's.

use std::future::Future;
use std::io::IsTerminal;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::PathBuf;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use hopstack_encoder::address::StackAddress;
use hopstack_encoder::layer::Layer;

use super::args::{GetArgs, sock_opts, tls_opts};
use super::connect::connector;
use super::get_output::{Dest, Sink};
use super::plain_url::PlainUrl;
use super::write_out::{self, Report, Stream};
use crate::connect::{Connection, Connector, Via};
use crate::error::{ClientError, ClientReason, EXIT_FAIL, ErrorLayer, HopRef};
use crate::http::{self, HttpRequest, Response};
use crate::progress::Meter;
use crate::resolve::DnsResolver;
use crate::socket;
use crate::timing::{PathSource, Timings};
use crate::tls::{self, TlsOptions};

/// What happened in one `hop get` (the last try; `retries` counts the ones before), for
/// `-w` and the retry rules.
#[derive(Debug, Default)]
pub(super) struct Transfer {
    /// The address or URL as given.
    pub(super) url: String,
    /// The one the last request went to (after redirects).
    pub(super) url_effective: String,
    pub(super) method: String,
    pub(super) scheme: &'static str,
    /// `1.1`, `2` or `3`.
    pub(super) version: Option<&'static str>,
    /// The last response's headers.
    pub(super) headers: Vec<(String, String)>,
    /// Octets of the response heads (status lines and headers), as `-i` prints them.
    pub(super) header_bytes: u64,
    /// Octets of the request heads and bodies sent.
    pub(super) request_bytes: u64,
    /// Request body octets sent.
    pub(super) upload_bytes: u64,
    pub(super) redirects: u32,
    /// Where a redirect that was not followed points.
    pub(super) redirect_url: Option<String>,
    /// When the last request began, after the redirects before it.
    pub(super) redirect_time: Option<Duration>,
    pub(super) retries: u32,
    pub(super) connects: u32,
    pub(super) remote: Option<SocketAddr>,
    pub(super) local: Option<SocketAddr>,
    /// `-o`'s or `-O`'s file.
    pub(super) filename: Option<PathBuf>,
    /// The last response's Retry-After, in seconds.
    pub(super) retry_after: Option<u64>,
}

impl Transfer {
    /// A response header of the last response (names are case-insensitive).
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How an HTTP status >= 400 ends `hop get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    /// hop's default: layer http, exit 7, no body.
    Hop,
    /// `-f/--fail`: curl's exit 22, no body.
    Curl,
    /// `--no-fail`: the body, exit 0 (curl without `-f`).
    Never,
}

#[derive(Debug, Clone)]
enum Target {
    /// A stack address (parsed again by the connection's [`Connector`]).
    Stack(StackAddress),
    Plain(PlainUrl),
}

/// What the command line asks for, checked before anything is sent.
struct Plan {
    target: Target,
    method: String,
    /// `-X` given: the method is kept across redirects, as curl keeps it.
    method_given: bool,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// `-d` without a Content-Type of -H's: curl's form type goes with the body.
    form: bool,
    dest: Dest,
    fail: Fail,
    follow: bool,
    max_redirs: Option<u32>,
    /// `-i` or `-I`: the status line and headers go before the body.
    show_headers: bool,
    write_out: Option<String>,
    retry: u32,
    retry_delay: Option<Duration>,
    retry_max_time: Option<Duration>,
    max_time: Option<Duration>,
    meter: bool,
    /// `-s`: no meter, no warnings.
    quiet: bool,
    /// No `-s`, or `-s -S`: the error line.
    show_error: bool,
}

/// `hop get`'s whole run; returns the exit code.
pub(super) async fn run(a: &GetArgs) -> u8 {
    let mut st = Transfer {
        url: a.common.address.clone(),
        ..Transfer::default()
    };
    let plan = match Plan::new(a, &mut st) {
        Ok(p) => p,
        Err(e) => {
            let mut t = Timings::start();
            t.finish();
            return conclude(a, None, &t, &st, Err(e));
        }
    };
    let began = Instant::now();
    loop {
        let mut t = Timings::start();
        let mut sink = Sink::new(plan.dest.clone());
        // Retrying needs a try left and time for it; a transient answer is then not
        // written, so that stdout does not get a body and then another.
        let may_retry =
            st.retries < plan.retry && plan.retry_max_time.is_none_or(|m| began.elapsed() < m);
        let meter = if plan.meter {
            Meter::start(t.start)
        } else {
            Meter::off()
        };
        let res = {
            let one = attempt(a, &plan, may_retry, &mut t, &mut st, &mut sink, &meter);
            match plan.max_time {
                Some(limit) => match tokio::time::timeout(limit, one).await {
                    Ok(r) => r,
                    Err(_) => Err(max_time_error(limit, &t)),
                },
                None => one.await,
            }
        };
        meter.finish();
        let stdout_written = sink.to_stdout() && sink.written > 0;
        // Only a success names the file: a failure drops the temporary one.
        let res = res.and_then(|()| sink.commit());
        t.finish();
        if let Err(e) = &res
            && may_retry
            && !stdout_written
            && transient(e, &t)
        {
            let delay = retry_delay(&plan, st.retries, st.retry_after);
            if plan
                .retry_max_time
                .is_none_or(|m| began.elapsed() + delay <= m)
            {
                if !plan.quiet {
                    eprintln!(
                        "hop: warning: {}: transient; retrying in {:.1} s, {} {} left",
                        what_failed(e, &t),
                        delay.as_secs_f64(),
                        plan.retry - st.retries,
                        if plan.retry - st.retries == 1 {
                            "retry"
                        } else {
                            "retries"
                        }
                    );
                }
                tokio::time::sleep(delay).await;
                st = Transfer {
                    url: st.url.clone(),
                    retries: st.retries + 1,
                    filename: st.filename.clone(),
                    ..Transfer::default()
                };
                continue;
            }
        }
        return conclude(a, Some(&plan), &t, &st, res);
    }
}

/// -w, -v, --json and the error line; the exit code.
fn conclude(
    a: &GetArgs,
    plan: Option<&Plan>,
    t: &Timings,
    st: &Transfer,
    res: Result<(), ClientError>,
) -> u8 {
    let c = &a.common;
    let code = match &res {
        Ok(()) => 0,
        Err(e) if matches!(e.reason, ClientReason::HttpStatus(_)) && a.fail => EXIT_FAIL,
        Err(e) => e.exit_code(),
    };
    let quiet = plan.is_some_and(|p| p.quiet);
    if let Some(format) = plan.and_then(|p| p.write_out.as_deref()) {
        let r = Report {
            t,
            st,
            error: res.as_ref().err(),
            exit_code: code,
        };
        let mut warn = |w: String| {
            if !quiet {
                eprintln!("hop: warning: {w}");
            }
        };
        for (stream, text) in write_out::render(format, &r, &mut warn) {
            use std::io::Write;
            let _ = match stream {
                Stream::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
                Stream::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
            };
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    let show_error = plan.is_none_or(|p| p.show_error);
    super::report(c, t, &res, code, show_error);
    code
}

impl Plan {
    fn new(a: &GetArgs, st: &mut Transfer) -> Result<Plan, ClientError> {
        let c = &a.common;
        let target = match PlainUrl::parse(&c.address)? {
            Some(url) => {
                if c.port.is_some() {
                    return Err(ClientError::usage(
                        "--port is hopd's port at a stack address's final hop; a URL carries \
                         its own port",
                    ));
                }
                if a.http2 && !url.tls {
                    return Err(ClientError::usage(
                        "--http2 over http:// needs the h2c upgrade, which hop does not do; \
                         use https:// (HTTP/2 by ALPN)",
                    ));
                }
                Target::Plain(url)
            }
            None => {
                // Checked before the meter shows: a bad address or option is reported alone.
                let addr = StackAddress::parse(&c.address).map_err(|e| {
                    ClientError::new(
                        ErrorLayer::Address,
                        ClientReason::AddressSyntax,
                        e.to_string(),
                    )
                })?;
                super::args::parse_overrides(&c.resolve)?;
                let layers = addr.upper_layers();
                let h2 = layers.contains(&Layer::H2);
                let tcp_http =
                    addr.transport() == Layer::Tcp && (layers.contains(&Layer::Http) || h2);
                let quic_h3 = addr.transport() == Layer::Udp && layers == [Layer::Quic, Layer::H3];
                if !(tcp_http || quic_h3) {
                    return Err(ClientError::usage(format!(
                        "hop get speaks tcp[+tls]+http|h2 and udp+quic+h3; '{}' has layers {} \
                         (use hop cat for raw services)",
                        c.address,
                        crate::layer_list(&addr)
                    )));
                }
                if a.http2 && !h2 {
                    return Err(ClientError::usage(format!(
                        "--http2: the address's layers ({}) say HTTP/1.1, and they travel in \
                         the SRH for the final hop to check; write h2 for http in the address \
                         to speak HTTP/2",
                        crate::layer_list(&addr)
                    )));
                }
                Target::Stack(addr)
            }
        };
        let has_data = !(a.data.is_empty() && a.data_binary.is_empty() && a.data_raw.is_empty());
        let method = match (&a.method, a.head, has_data) {
            (Some(m), _, _) => m.clone(),
            (None, true, _) => "HEAD".to_owned(),
            (None, false, true) => "POST".to_owned(),
            (None, false, false) => "GET".to_owned(),
        };
        let headers = parse_headers(&a.headers)?;
        let form = has_data
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        let dest = match (&a.output, a.remote_name) {
            (_, true) => Dest::File(remote_name(&target)?),
            (Some(p), false) if p.as_os_str() == "-" => Dest::Stdout,
            (Some(p), false) => Dest::File(p.clone()),
            (None, false) => Dest::Stdout,
        };
        if let Dest::File(p) = &dest {
            st.filename = Some(p.clone());
        }
        let fail = match (a.fail, a.no_fail) {
            (true, _) => Fail::Curl,
            (false, true) => Fail::Never,
            (false, false) => Fail::Hop,
        };
        // curl's rule: the meter shows when the body does not go to a terminal.
        let meter = !a.silent && (dest != Dest::Stdout || !std::io::stdout().is_terminal());
        Ok(Plan {
            target,
            method_given: a.method.is_some(),
            method,
            headers,
            form,
            body: request_body(a)?,
            dest,
            fail,
            follow: a.location,
            max_redirs: u32::try_from(a.max_redirs).ok(),
            show_headers: a.include || a.head,
            write_out: a
                .write_out
                .as_deref()
                .map(write_out::format_of)
                .transpose()?,
            retry: a.retry,
            retry_delay: seconds(a.retry_delay, "--retry-delay")?,
            retry_max_time: seconds(a.retry_max_time, "--retry-max-time")?,
            max_time: seconds(a.max_time, "--max-time")?,
            meter,
            quiet: a.silent,
            show_error: !a.silent || a.show_error,
        })
    }
}

/// A duration in seconds from the command line (fractions allowed); 0 means none, as in curl.
fn seconds(v: Option<f64>, flag: &str) -> Result<Option<Duration>, ClientError> {
    match v {
        None => Ok(None),
        Some(0.0) => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s)
            .map(Some)
            .map_err(|_| ClientError::usage(format!("{flag} {s}: expected seconds, 0 or more"))),
    }
}

/// `-O`: the last segment of the address's (or URL's) path, in the current directory.
fn remote_name(target: &Target) -> Result<PathBuf, ClientError> {
    let path = match target {
        Target::Plain(url) => url.path.clone(),
        Target::Stack(addr) => addr.path().unwrap_or("").to_owned(),
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    match path.rsplit('/').next() {
        Some(name) if !name.is_empty() && name != "." && name != ".." => Ok(PathBuf::from(name)),
        _ => Err(ClientError::usage(format!(
            "-O: the path {path:?} has no file name to save to (use -o FILE)"
        ))),
    }
}

/// Why a try failed, in a few words, for the retry warning.
fn what_failed(e: &ClientError, t: &Timings) -> String {
    match t.http_status {
        Some(s) if s >= 400 => format!("HTTP {s}"),
        _ => format!("{} ({})", e.reason, e.layer),
    }
}

/// curl's transient failures (`--retry`): a timeout (a QUIC handshake that got no answer
/// too, though its layer is quic), or HTTP 408, 429, 500, 502, 503, 504 (an in-band report
/// of the final hop, a 502/503, included).
fn transient(e: &ClientError, t: &Timings) -> bool {
    matches!(t.http_status, Some(408 | 429 | 500 | 502 | 503 | 504))
        || e.layer == ErrorLayer::Timeout
        || e.reason == ClientReason::QuicTimeout
}

/// curl's wait before retry `n` (0-based): `--retry-delay`, else the server's Retry-After,
/// else one second doubling each time, at most ten minutes.
fn retry_delay(plan: &Plan, n: u32, retry_after: Option<u64>) -> Duration {
    if let Some(d) = plan.retry_delay {
        return d;
    }
    if let Some(s) = retry_after {
        return Duration::from_secs(s);
    }
    Duration::from_secs(1u64.checked_shl(n).unwrap_or(u64::MAX).min(600))
}

/// `-m`'s failure, saying how far the try got.
fn max_time_error(limit: Duration, t: &Timings) -> ClientError {
    let when = if t.first_byte.is_some() {
        format!("receiving the body ({} octets so far)", t.bytes)
    } else if t.connect.is_some() {
        "connected, no response yet".to_owned()
    } else {
        "not connected yet (resolving the path or connecting)".to_owned()
    };
    ClientError::new(
        ErrorLayer::Timeout,
        ClientReason::MaxTime,
        format!(
            "operation timed out after {} s (-m/--max-time): {when}",
            limit.as_secs_f64()
        ),
    )
}

/// One try: the request and the redirects it leads to.
async fn attempt(
    a: &GetArgs,
    plan: &Plan,
    may_retry: bool,
    t: &mut Timings,
    st: &mut Transfer,
    sink: &mut Sink,
    meter: &Meter,
) -> Result<(), ClientError> {
    st.url_effective = st.url.clone();
    st.method = plan.method.clone();
    match &plan.target {
        Target::Stack(_) => stack_attempt(a, plan, may_retry, t, st, sink, meter).await,
        Target::Plain(url) => {
            plain_attempt(a, plan, url.clone(), may_retry, t, st, sink, meter).await
        }
    }
}

/// What a response led to.
enum Received {
    /// The last response, its body written.
    Done,
    /// A redirect `-L` follows: where to (an address or URL of the same form), and the status.
    Follow(String, u16),
}

/// The request: the method, -H's headers, and the body with curl's form type for -d.
fn request(
    plan: &Plan,
    method: &str,
    path: &str,
    host: &str,
    body: &[u8],
    h2: bool,
) -> HttpRequest {
    let mut headers = plan.headers.clone();
    if plan.form && (!body.is_empty() || method != "GET") {
        // curl's default for -d, which is meant for forms.
        headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
    }
    HttpRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        host: host.to_owned(),
        headers,
        body: body.to_vec(),
        h2,
    }
}

/// The request after a redirect with `status`: curl's rules (303 turns anything but HEAD
/// into a GET without body, 301 and 302 a POST; `-X` keeps its method and the body).
fn after_redirect(plan: &Plan, status: u16, method: &mut String, body: &mut Vec<u8>) {
    if plan.method_given {
        return;
    }
    let to_get = match status {
        303 => method != "HEAD",
        301 | 302 => method == "POST",
        _ => false,
    };
    if to_get {
        *method = "GET".into();
        body.clear();
    }
}

/// Counts a redirect about to be followed: more than `--max-redirs` is curl's exit 47.
fn count_redirect(plan: &Plan, st: &mut Transfer, t: &mut Timings) -> Result<(), ClientError> {
    if plan.max_redirs.is_some_and(|m| st.redirects >= m) {
        return Err(ClientError::new(
            ErrorLayer::Http,
            ClientReason::TooManyRedirects,
            format!(
                "more than {} redirects (--max-redirs); the last went to {}",
                st.redirects, st.url_effective
            ),
        ));
    }
    st.redirects += 1;
    // The next request's phases are its own; `total` and `time_redirect` count from the
    // start of the whole operation.
    *t = Timings {
        start: t.start,
        printed: t.printed,
        ..Timings::start()
    };
    st.redirect_time = Some(t.mark());
    Ok(())
}

/// The response head's text as `-i` writes it (curl's: the status line and headers,
/// CRLF, a blank line).
fn head_text(r: &Response) -> String {
    let mut s = if r.version == "2" || r.version == "3" {
        format!("HTTP/{} {}\r\n", r.version, r.status)
    } else {
        format!("HTTP/{} {} {}\r\n", r.version, r.status, r.phrase)
    };
    for (k, v) in &r.headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s
}

/// Takes a response: records it, follows a redirect (`follow` says where to, or why not),
/// fails on a status as asked, else writes it (headers with -i/-I, then the body).
#[allow(clippy::too_many_arguments)]
async fn receive(
    mut resp: Response,
    request: &str,
    plan: &Plan,
    may_retry: bool,
    follow: &dyn Fn(&str) -> Result<String, String>,
    t: &mut Timings,
    st: &mut Transfer,
    sink: &mut Sink,
    meter: &Meter,
) -> Result<Received, ClientError> {
    let status = resp.status;
    let head = head_text(&resp);
    st.version = Some(resp.version);
    st.headers = resp.headers.clone();
    st.header_bytes += head.len() as u64;
    st.retry_after = resp
        .header("retry-after")
        .and_then(|v| v.trim().parse().ok());
    let expected = resp.content_length;
    meter.update(|m| {
        m.sent = m.to_send;
        m.expected = expected;
    });
    if resp.is_hop_error() {
        // The final hop answered for the service (in-band): its report, not "HTTP 502".
        return Err(resp.hop_error().await);
    }
    if matches!(status, 301 | 302 | 303 | 307 | 308)
        && let Some(location) = resp.header("location").map(str::to_owned)
    {
        match follow(&location) {
            Ok(next) if plan.follow => {
                if plan.show_headers {
                    sink.write(head.as_bytes())?;
                }
                return Ok(Received::Follow(next, status));
            }
            Ok(next) => st.redirect_url = Some(next),
            Err(why) => {
                if plan.follow && !plan.quiet {
                    eprintln!("hop: warning: -L: not following {location:?}: {why}");
                }
                st.redirect_url = Some(location);
            }
        }
    }
    let transient_status = matches!(status, 408 | 429 | 500 | 502 | 503 | 504);
    if status >= 400 && (plan.fail != Fail::Never || (transient_status && may_retry)) {
        return Err(ClientError::new(
            ErrorLayer::Http,
            ClientReason::HttpStatus(status),
            format!("HTTP {status} {} for {request}", resp.reason),
        ));
    }
    if plan.show_headers {
        sink.write(head.as_bytes())?;
    }
    while let Some(data) = resp.chunk().await? {
        t.bytes += data.len() as u64;
        sink.write(&data)?;
        let received = t.bytes;
        meter.update(|m| m.received = received);
    }
    Ok(Received::Done)
}

/// Puts a failure met over the connection on the final hop, unless it is local (writing the
/// output) or names a hop already.
fn at_final_hop(e: ClientError, hop: &HopRef) -> ClientError {
    if e.layer == ErrorLayer::Local {
        e
    } else {
        e.placed_at(hop.clone())
    }
}

/// Notes the request about to be sent.
fn sending(req: &HttpRequest, st: &mut Transfer, meter: &Meter) {
    st.method = req.method.clone();
    st.request_bytes += req.path.len() as u64 + req.body.len() as u64;
    st.upload_bytes = req.body.len() as u64;
    let n = st.upload_bytes;
    meter.update(|m| {
        m.to_send = n;
        m.sent = 0;
        m.received = 0;
        m.expected = None;
    });
}

/// A try at a stack address.
#[allow(clippy::too_many_arguments)]
async fn stack_attempt(
    a: &GetArgs,
    plan: &Plan,
    may_retry: bool,
    t: &mut Timings,
    st: &mut Transfer,
    sink: &mut Sink,
    meter: &Meter,
) -> Result<(), ClientError> {
    let c = &a.common;
    let mut ctx = connector(c, true)?;
    let layers = ctx.address().upper_layers().to_vec();
    // QUIC carries TLS 1.3 itself: an https service, the same trust and SNI.
    let quic = layers.contains(&Layer::Quic);
    let use_tls = layers.contains(&Layer::Tls) || quic;
    let h2 = layers.contains(&Layer::H2);
    let topts = tls_opts(&a.tls, || tls::default_sni(ctx.address()));
    if use_tls && !plan.quiet {
        super::args::warn_if_insecure(&a.tls);
    }
    st.scheme = if use_tls { "https" } else { "http" };
    let tls_alpn: Option<&[&[u8]]> = match (use_tls && !quic, h2) {
        (false, _) => None,
        (true, true) => Some(&[b"h2"]),
        (true, false) => Some(&[b"http/1.1"]),
    };
    let want_hops = c.verbose || c.json || plan.write_out.is_some();
    let path_len = ctx.address().path().map_or(0, str::len);
    // The address up to its path: a redirect changes only the path.
    let prefix = c.address[..c.address.len() - path_len].to_owned();
    let host = topts.sni.clone().unwrap_or_default();
    let mut path = ctx.address().path().unwrap_or("/").to_owned();
    let (mut method, mut body) = (plan.method.clone(), plan.body.clone());
    loop {
        let req = request(plan, &method, &path, &host, &body, h2);
        sending(&req, st, meter);
        let (resp, final_hop) = if quic {
            super::get_quic::send(&mut ctx, &topts, &req, want_hops, t, st).await?
        } else {
            stack_send(&mut ctx, &topts, tls_alpn, &req, want_hops, t, st).await?
        };
        let follow =
            |loc: &str| same_service(loc, &host, use_tls, &path).map(|p| format!("{prefix}{p}"));
        let request = format!("{} {}", req.method, req.path);
        let got = receive(resp, &request, plan, may_retry, &follow, t, st, sink, meter)
            .await
            .map_err(|e| at_final_hop(e, &final_hop))?;
        match got {
            Received::Done => return Ok(()),
            Received::Follow(next, status) => {
                count_redirect(plan, st, t)?;
                path = next[prefix.len()..].to_owned();
                st.url_effective = next;
                after_redirect(plan, status, &mut method, &mut body);
            }
        }
    }
}

/// Where a redirect of a stack address's service leads: a path of the same service. A
/// Location that is a path (absolute or relative), or a URL naming the same host (the
/// request's Host, the final hop's name by default) with the scheme of the address's layers;
/// anything else would be another service, which this address does not name.
fn same_service(loc: &str, host: &str, tls: bool, base: &str) -> Result<String, String> {
    if let Some((scheme, rest)) = loc.split_once("://") {
        let want = if tls { "https" } else { "http" };
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let name = authority
            .rsplit_once(':')
            .filter(|(h, p)| !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()))
            .map_or(authority, |(h, _)| h);
        if !scheme.eq_ignore_ascii_case(want) || !name.eq_ignore_ascii_case(host) {
            return Err(format!(
                "another server than {want}://{host} (-L follows redirects within the stack \
                 address's service)"
            ));
        }
        return Ok(if path.is_empty() {
            "/".into()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.into()
        });
    }
    if loc.starts_with("//") {
        return same_service(
            &format!("{}:{loc}", if tls { "https" } else { "http" }),
            host,
            tls,
            base,
        );
    }
    Ok(relative_path(base, loc))
}

/// `loc` (a path, a relative path or a query) against the path `base`, dot segments
/// resolved (RFC 3986, section 5.2).
pub(super) fn relative_path(base: &str, loc: &str) -> String {
    if loc.starts_with('/') {
        return loc.to_owned();
    }
    let base = base.split(['?', '#']).next().unwrap_or("/");
    if loc.starts_with('?') {
        return format!("{base}{loc}");
    }
    let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
    let mut out: Vec<&str> = Vec::new();
    let joined = format!("{dir}{loc}");
    let (p, query) = joined.split_at(joined.find('?').unwrap_or(joined.len()));
    let segments: Vec<&str> = p.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {}
            ".." if out.len() > 1 => {
                out.pop();
            }
            ".." => {}
            s if i == 0 || !s.is_empty() || i == segments.len() - 1 => out.push(s),
            _ => {}
        }
    }
    let mut path = out.join("/");
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    if matches!(segments.last(), Some(&".") | Some(&"..")) && !path.ends_with('/') {
        path.push('/');
    }
    format!("{path}{query}")
}

/// One request at the stack address: the connection (from the connect record or the path),
/// TLS, the request; the response head, or the failure a probe explains. Returns the final
/// hop to put later failures on.
#[allow(clippy::too_many_arguments)]
async fn stack_send(
    ctx: &mut Connector,
    topts: &TlsOptions,
    alpn: Option<&[&[u8]]>,
    req: &HttpRequest,
    want_hops: bool,
    t: &mut Timings,
    st: &mut Transfer,
) -> Result<(Response, HopRef), ClientError> {
    let (conn, tls_cfg) = connect_building_tls(ctx, topts, alpn, t).await;
    // A connection made but a bad --cacert: the connection is dropped, nothing to remember.
    let tls_cfg = tls_cfg?;
    let Connection { stream, via, .. } = conn?;
    st.connects += 1;
    st.remote = stream.peer_addr().ok();
    st.local = stream.local_addr().ok();
    let final_hop = ctx.final_hop(&via);
    let res = exchange(ctx, &via, stream, tls_cfg, req, t).await;
    remember_connection(ctx, via, want_hops, t);
    res.map(|r| (r, final_hop))
}

/// Opens the request's connection ([`Connector::open`]) and, with `alpn` (TLS), the TLS
/// configuration. Its root store (--cacert's PEM, or the system's roots, which takes
/// milliseconds) is needed only once TCP is up: it is built while the SYN is out. The
/// first poll sends the SYN (or the DNS query, the probe); a bad --cacert is still
/// reported, just after the path.
async fn connect_building_tls(
    ctx: &mut Connector,
    topts: &TlsOptions,
    alpn: Option<&[&[u8]]>,
    t: &mut Timings,
) -> (
    Result<Connection, ClientError>,
    Result<Option<Arc<ClientConfig>>, ClientError>,
) {
    let mut conn = std::pin::pin!(ctx.open(t));
    let early = std::future::poll_fn(|cx| Poll::Ready(conn.as_mut().poll(cx))).await;
    let cfg = alpn.map(|alpn| tls::client_config(topts, alpn));
    let conn = match early {
        Poll::Ready(r) => r,
        Poll::Pending => conn.await,
    };
    (conn, cfg.transpose())
}

/// The request over the connection `via` made (TLS first with `tls_cfg`) up to the
/// response head; a failure that says nothing about why is handed to a probe
/// ([`Connector::explain`]).
async fn exchange(
    ctx: &mut Connector,
    via: &Via,
    stream: tokio::net::TcpStream,
    tls_cfg: Option<Arc<ClientConfig>>,
    req: &HttpRequest,
    t: &mut Timings,
) -> Result<Response, ClientError> {
    let res = match tls_cfg {
        Some(cfg) => {
            let s = match tls::handshake(stream, &req.host, cfg).await {
                Ok(s) => s,
                Err(e) => {
                    let e = e.at(ctx.final_hop(via));
                    // A handshake cut short (not a certificate verdict) is how the final
                    // hop says "no such service" over TLS it cannot terminate: ask a probe.
                    return Err(if e.reason == ClientReason::TlsHandshake {
                        ctx.explain(via, e).await
                    } else {
                        e
                    });
                }
            };
            t.tls = Some(t.mark());
            http::send(s, req, t).await
        }
        None => http::send(stream, req, t).await,
    };
    match res {
        Ok(r) => Ok(r),
        // The connection closed before an answer: the final hop's refusal of a request it
        // cannot answer in-band. Whether that shows as a failed HTTP/2 handshake or as no
        // response depends only on how soon the reset comes (a race that made this exit 7
        // or 8 from one run to the next): both ask a probe.
        Err(e)
            if matches!(
                e.reason,
                ClientReason::NoResponse | ClientReason::H2Handshake | ClientReason::HttpHandshake
            ) =>
        {
            Err(ctx.explain(via, e).await)
        }
        Err(e) => Err(e.placed_at(ctx.final_hop(via))),
    }
}

/// After the response head: the next request's connect record (when a response came over
/// the connection, whatever its status), and the per-hop lines of -v, --json and -w (a
/// failed connect filled them already).
fn remember_connection(ctx: &Connector, via: Via, want_hops: bool, t: &mut Timings) {
    ctx.remember(&via, t.http_status.is_some());
    if matches!(via, Via::Path(_)) || want_hops {
        t.hops = ctx.hop_timings(&via);
    }
}

/// The request body: `-d` (curl's `--data`: `@FILE` or `@-` read with CR and LF removed),
/// `--data-raw` (no `@`), `--data-binary` (`@FILE` as is); several are joined with `&`, in
/// that order.
fn request_body(a: &GetArgs) -> Result<Vec<u8>, ClientError> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for d in &a.data {
        parts.push(match d.strip_prefix('@') {
            Some(f) => {
                let mut b = read_data_file(f, "--data")?;
                b.retain(|&c| c != b'\r' && c != b'\n');
                b
            }
            None => d.clone().into_bytes(),
        });
    }
    for d in &a.data_raw {
        parts.push(d.clone().into_bytes());
    }
    for d in &a.data_binary {
        parts.push(match d.strip_prefix('@') {
            Some(f) => read_data_file(f, "--data-binary")?,
            None => d.clone().into_bytes(),
        });
    }
    Ok(parts.join(&b'&'))
}

/// `@FILE`'s bytes, `@-` stdin's.
fn read_data_file(f: &str, flag: &str) -> Result<Vec<u8>, ClientError> {
    if f == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
            .map_err(|e| ClientError::usage(format!("{flag} @-: reading stdin: {e}")))?;
        return Ok(b);
    }
    std::fs::read(f).map_err(|e| ClientError::usage(format!("{flag} @{f}: {e}")))
}

/// `--header 'Name: value'`s.
fn parse_headers(list: &[String]) -> Result<Vec<(String, String)>, ClientError> {
    list.iter()
        .map(|h| {
            let (k, v) = h.split_once(':').ok_or_else(|| {
                ClientError::usage(format!("--header {h:?}: expected 'Name: value'"))
            })?;
            Ok((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// A try at a plain URL: the same client straight to the server, redirects to any http(s)
/// URL, as curl.
#[allow(clippy::too_many_arguments)]
async fn plain_attempt(
    a: &GetArgs,
    plan: &Plan,
    mut url: PlainUrl,
    may_retry: bool,
    t: &mut Timings,
    st: &mut Transfer,
    sink: &mut Sink,
    meter: &Meter,
) -> Result<(), ClientError> {
    let (mut method, mut body) = (plan.method.clone(), plan.body.clone());
    loop {
        st.scheme = if url.tls { "https" } else { "http" };
        let req = request(plan, &method, &url.path, &url.authority(), &body, false);
        sending(&req, st, meter);
        let resp = plain_send(a, plan, &url, req.clone(), t, st).await?;
        let follow = |loc: &str| url.join(loc).map(|u| u.to_string());
        let request = format!("{} {}", req.method, req.path);
        match receive(resp, &request, plan, may_retry, &follow, t, st, sink, meter).await? {
            Received::Done => return Ok(()),
            Received::Follow(next, status) => {
                count_redirect(plan, st, t)?;
                url = PlainUrl::parse(&next)?
                    .ok_or_else(|| ClientError::usage(format!("redirect to {next:?}")))?;
                st.url_effective = next;
                after_redirect(plan, status, &mut method, &mut body);
            }
        }
    }
}

/// One request to a plain URL, up to the response head.
async fn plain_send(
    a: &GetArgs,
    plan: &Plan,
    url: &PlainUrl,
    mut req: HttpRequest,
    t: &mut Timings,
    st: &mut Transfer,
) -> Result<Response, ClientError> {
    let c = &a.common;
    t.path_source = Some(PathSource::Direct);
    let ip = match url.host.parse::<Ipv6Addr>() {
        Ok(ip) => ip,
        Err(_) => {
            let dns = DnsResolver::new(c.dns);
            let r = dns.lookup(&url.host).await;
            t.dns = Some(t.mark());
            r.map_err(|f| {
                ClientError::new(
                    ErrorLayer::Route,
                    f.reason,
                    format!("cannot resolve '{}': {}", url.host, f.detail),
                )
            })?
            .0
        }
    };
    let dest = SocketAddrV6::new(ip, url.port, 0, 0);
    t.port = Some(url.port);
    let stream = socket::connect_tcp(dest, &[], &sock_opts(c))
        .await
        .map_err(|e| {
            let err = crate::connect_failure(url.port, &e);
            ClientError {
                message: format!("{dest}: {}", err.message),
                ..err
            }
        })?;
    t.connect = Some(t.mark());
    st.connects += 1;
    st.remote = stream.peer_addr().ok();
    st.local = stream.local_addr().ok();
    if url.tls {
        let topts = tls_opts(&a.tls, || url.host.clone());
        if !plan.quiet {
            super::args::warn_if_insecure(&a.tls);
        }
        // --http2: offered by ALPN, spoken if the server picks it (curl's way).
        let alpn: &[&[u8]] = if a.http2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let s = super::tls_handshake(stream, &topts, alpn, t).await?;
        req.h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
        http::send(s, &req, t).await
    } else {
        http::send(stream, &req, t).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_within_the_service() {
        let ok = |loc: &str| same_service(loc, "yc", false, "/users/list?x=1");
        assert_eq!(ok("/other").unwrap(), "/other");
        assert_eq!(ok("page").unwrap(), "/users/page");
        assert_eq!(ok("../up?q").unwrap(), "/up?q");
        assert_eq!(ok("?y=2").unwrap(), "/users/list?y=2");
        assert_eq!(ok("http://yc/a/b").unwrap(), "/a/b");
        assert_eq!(ok("http://YC:8080").unwrap(), "/");
        assert_eq!(ok("//yc/c").unwrap(), "/c");
        for elsewhere in ["http://example.org/a", "https://yc/a", "//other/x"] {
            let why = ok(elsewhere).unwrap_err();
            assert!(why.contains("another server"), "{elsewhere}: {why}");
        }
    }

    #[test]
    fn retries_wait_as_curl_does() {
        let mut st = Transfer::default();
        let a = test_args(&["get", "x>y:tcp+http+web"]);
        let plan = Plan::new(&a, &mut st).unwrap();
        let waits: Vec<u64> = (0..4)
            .map(|n| retry_delay(&plan, n, None).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8]);
        assert_eq!(retry_delay(&plan, 20, None).as_secs(), 600);
        assert_eq!(retry_delay(&plan, 0, Some(3)).as_secs(), 3);
        let a = test_args(&["get", "--retry-delay", "0.25", "x>y:tcp+http+web"]);
        let plan = Plan::new(&a, &mut st).unwrap();
        assert_eq!(retry_delay(&plan, 3, Some(9)), Duration::from_millis(250));
        let mut t = Timings::start();
        let e = ClientError::new(ErrorLayer::Http, ClientReason::HttpStatus(503), "x");
        t.http_status = Some(503);
        assert!(transient(&e, &t));
        t.http_status = Some(404);
        assert!(!transient(&e, &t));
        let e = ClientError::new(ErrorLayer::Timeout, ClientReason::MaxTime, "x");
        assert!(transient(&e, &t));
        let e = ClientError::new(ErrorLayer::Quic, ClientReason::QuicTimeout, "x");
        assert!(transient(&e, &t));
        let e = ClientError::new(ErrorLayer::Quic, ClientReason::QuicHandshake, "x");
        assert!(!transient(&e, &t));
    }

    #[test]
    fn data_means_post_and_a_form_as_in_curl() {
        let mut st = Transfer::default();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("body");
        std::fs::write(&f, "a=1\r\nb=2\n").unwrap();
        let at = format!("@{}", f.display());
        let a = test_args(&[
            "get",
            "-d",
            "x=y",
            "-d",
            &at,
            "--data-binary",
            &at,
            "p:tcp+http+s",
        ]);
        let plan = Plan::new(&a, &mut st).unwrap();
        assert_eq!(plan.method, "POST");
        assert_eq!(plan.body, b"x=y&a=1b=2&a=1\r\nb=2\n");
        let req = request(&plan, &plan.method, "/", "yc", &plan.body, false);
        assert!(
            req.headers
                .iter()
                .any(|(k, v)| k == "content-type" && v == "application/x-www-form-urlencoded")
        );
        // After a 303, a GET without body: no form type either.
        let (mut method, mut body) = (plan.method.clone(), plan.body.clone());
        after_redirect(&plan, 303, &mut method, &mut body);
        let req = request(&plan, &method, "/", "yc", &body, false);
        assert_eq!(
            (req.method.as_str(), req.body.len(), req.headers.len()),
            ("GET", 0, 0)
        );
        // -X wins, -H's content type wins, -I is HEAD.
        let a = test_args(&[
            "get",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data-raw",
            "@{}",
            "p:tcp+http+s",
        ]);
        let plan = Plan::new(&a, &mut st).unwrap();
        assert_eq!(
            (plan.method.as_str(), plan.body.as_slice()),
            ("PUT", &b"@{}"[..])
        );
        assert_eq!(plan.headers.len(), 1);
        let plan = Plan::new(&test_args(&["get", "-I", "p:tcp+http+s"]), &mut st).unwrap();
        assert_eq!(plan.method, "HEAD");
        assert!(plan.show_headers);
    }

    #[test]
    fn output_flags_as_in_curl() {
        let mut st = Transfer::default();
        let plan = |args: &[&str], st: &mut Transfer| Plan::new(&test_args(args), st);
        let p = plan(&["get", "-o", "-", "p:tcp+http+s/a"], &mut st).unwrap();
        assert_eq!(p.dest, Dest::Stdout);
        let p = plan(&["get", "-O", "p:tcp+http+s/dir/file.iso?x=1"], &mut st).unwrap();
        assert_eq!(p.dest, Dest::File("file.iso".into()));
        // With a file the meter shows, unless -s; -s hides the error line unless -S.
        assert!(p.meter && !p.quiet && p.show_error);
        let p = plan(&["get", "-s", "-o", "f", "p:tcp+http+s/a"], &mut st).unwrap();
        assert!(!p.meter && p.quiet && !p.show_error);
        let p = plan(&["get", "-sS", "p:tcp+http+s/a"], &mut st).unwrap();
        assert!(p.show_error);
        let e = plan(&["get", "-O", "p:tcp+http+s/dir/"], &mut st)
            .err()
            .unwrap();
        assert_eq!(e.exit_code(), 2);
        let e = plan(&["get", "-m", "-1", "p:tcp+http+s/"], &mut st)
            .err()
            .unwrap();
        assert_eq!(e.exit_code(), 2);
        let p = plan(&["get", "-m", "0.5", "p:tcp+http+s/"], &mut st).unwrap();
        assert_eq!(p.max_time, Some(Duration::from_millis(500)));
        let e = plan(&["get", "--http2", "http://[::1]/"], &mut st)
            .err()
            .unwrap();
        assert!(e.message.contains("h2c"), "{e}");
        // Flags curl refuses together.
        for bad in [
            &["get", "-I", "-d", "x", "p:tcp+http+s/"][..],
            &["get", "-o", "f", "-O", "p:tcp+http+s/a"],
            &["get", "-f", "--no-fail", "p:tcp+http+s/a"],
        ] {
            assert!(try_args(bad).is_err(), "{bad:?}");
        }
    }

    fn try_args(args: &[&str]) -> Result<GetArgs, clap::Error> {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            cmd: super::super::ClientCommand,
        }
        let mut all = vec!["hop"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| match c.cmd {
            super::super::ClientCommand::Get(a) => *a,
            other => panic!("not get: {other:?}"),
        })
    }

    fn test_args(args: &[&str]) -> GetArgs {
        try_args(args).unwrap()
    }
}
