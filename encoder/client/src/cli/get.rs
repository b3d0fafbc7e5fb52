//! `hop get`: an HTTP request over the address's layers (tcp[+tls]+http|h2), the body on
//! stdout or in a file; or, given a plain URL, the same request without hopstack.

use std::future::Future;
use std::io::Write;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::Arc;
use std::task::Poll;

use rustls::ClientConfig;

use hopstack_encoder::layer::Layer;

use super::args::{CommonArgs, GetArgs, sock_opts, tls_opts, warn_if_insecure};
use super::connect::connector;
use super::plain_url::PlainUrl;
use crate::connect::{Connection, Connector, Via};
use crate::error::{ClientError, ClientReason, ErrorLayer};
use crate::http::{self, HttpRequest};
use crate::resolve::DnsResolver;
use crate::socket;
use crate::timing::{PathSource, Timings};
use crate::tls::{self, TlsOptions};

pub(super) async fn get(a: &GetArgs, t: &mut Timings) -> Result<(), ClientError> {
    let c = &a.common;
    if let Some(url) = PlainUrl::parse(&c.address)? {
        return get_plain(a, &url, t).await;
    }
    let mut ctx = connector(c, true)?;
    let layers = ctx.address().upper_layers().to_vec();
    let use_tls = layers.contains(&Layer::Tls);
    let h2 = layers.contains(&Layer::H2);
    if ctx.address().transport() != Layer::Tcp || !(layers.contains(&Layer::Http) || h2) {
        return Err(ClientError::usage(format!(
            "hop get speaks tcp[+tls]+http|h2; '{}' has layers {} (use hop cat for raw services)",
            c.address,
            crate::layer_list(ctx.address())
        )));
    }
    let topts = tls_opts(&a.tls, || tls::default_sni(ctx.address()));
    if use_tls {
        warn_if_insecure(&a.tls);
    }
    let req = HttpRequest {
        method: a.method.clone(),
        path: ctx.address().path().unwrap_or("/").to_owned(),
        host: topts.sni.clone().unwrap_or_default(),
        headers: parse_headers(&a.headers)?,
        body: request_body(a)?,
        h2,
    };
    let tls_alpn: Option<&[&[u8]]> = match (use_tls, h2) {
        (false, _) => None,
        (true, true) => Some(&[b"h2"]),
        (true, false) => Some(&[b"http/1.1"]),
    };
    let (conn, tls_cfg) = connect_building_tls(&mut ctx, &topts, tls_alpn, t).await;
    // A connection made but a bad --cacert: the connection is dropped, nothing to remember.
    let tls_cfg = tls_cfg?;
    let Connection { stream, via, .. } = conn?;
    let res = exchange(a, &mut ctx, &via, stream, tls_cfg, &req, t).await;
    remember_connection(&ctx, c, via, t);
    res
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

/// The request and its response over the connection `via` made (TLS first with `tls_cfg`);
/// a failure that says nothing about why is handed to a probe ([`Connector::explain`]).
async fn exchange(
    a: &GetArgs,
    ctx: &mut Connector,
    via: &Via,
    stream: tokio::net::TcpStream,
    tls_cfg: Option<Arc<ClientConfig>>,
    req: &HttpRequest,
    t: &mut Timings,
) -> Result<(), ClientError> {
    let mut out = open_output(a)?;
    let progress = a.output.is_some();
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
            http::request(s, req, &mut out, !a.no_fail, progress, t).await
        }
        None => http::request(stream, req, &mut out, !a.no_fail, progress, t).await,
    };
    match res {
        Ok(o) => {
            if a.include {
                eprintln!("HTTP {} {}", o.status, o.reason);
                for (k, v) in &o.headers {
                    eprintln!("{k}: {v}");
                }
            }
            Ok(())
        }
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
        // An HTTP status, a hopd in-band report: the final hop's, named like every other.
        Err(e) => Err(e.placed_at(ctx.final_hop(via))),
    }
}

/// `-o FILE`, else stdout.
fn open_output(a: &GetArgs) -> Result<Box<dyn Write>, ClientError> {
    Ok(match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| ClientError::local(format!("cannot create {}: {e}", p.display())),
        )?)),
        None => Box::new(std::io::stdout().lock()),
    })
}

/// After the response: the next request's connect record (when a response came over the
/// connection, whatever its status; [`Connector::remember`]), and -v's and --json's per-hop
/// lines (a failed connect filled them already), a record's read from the cache only for
/// them.
fn remember_connection(ctx: &Connector, c: &CommonArgs, via: Via, t: &mut Timings) {
    ctx.remember(&via, t.http_status.is_some());
    if matches!(via, Via::Path(_)) || c.verbose || c.json {
        t.hops = ctx.hop_timings(&via);
    }
}

/// `--data`: the string, or `@FILE`'s bytes.
fn request_body(a: &GetArgs) -> Result<Vec<u8>, ClientError> {
    match &a.data {
        Some(d) => match d.strip_prefix('@') {
            Some(f) => {
                std::fs::read(f).map_err(|e| ClientError::usage(format!("--data @{f}: {e}")))
            }
            None => Ok(d.clone().into_bytes()),
        },
        None => Ok(Vec::new()),
    }
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

/// `hop get` of a [`PlainUrl`].
async fn get_plain(a: &GetArgs, url: &PlainUrl, t: &mut Timings) -> Result<(), ClientError> {
    let c = &a.common;
    if c.port.is_some() {
        return Err(ClientError::usage(
            "--port is hopd's port at a stack address's final hop; a URL carries its own port",
        ));
    }
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
    let req = HttpRequest {
        method: a.method.clone(),
        path: url.path.clone(),
        host: url.host.clone(),
        headers: parse_headers(&a.headers)?,
        body: request_body(a)?,
        h2: false,
    };
    let mut out = std::io::stdout().lock();
    let fail = !a.no_fail;
    if url.tls {
        let topts = tls_opts(&a.tls, || url.host.clone());
        warn_if_insecure(&a.tls);
        let s = super::tls_handshake(stream, &topts, &[b"http/1.1"], t).await?;
        http::request(s, &req, &mut out, fail, false, t).await?;
    } else {
        http::request(stream, &req, &mut out, fail, false, t).await?;
    }
    Ok(())
}
