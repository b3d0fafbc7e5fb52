//! `hop cat`: stdin and stdout piped to a raw tcp (or tcp+tls) or udp service.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use hopstack_encoder::layer::Layer;

use super::args::{CatArgs, tls_opts, warn_if_insecure};
use super::connect::connector;
use crate::connect::{Connector, FAST_PATH_HINT};
use crate::error::{ClientError, ClientReason, ErrorLayer};
use crate::resolve::ResolvedPath;
use crate::timing::Timings;
use crate::tls;

/// Copies stdin to `io` and `io` to stdout until the peer closes; stdin's end half-closes the
/// connection so request/response services still answer.
async fn pipe<IO: AsyncRead + AsyncWrite + Unpin>(
    io: IO,
    t: &mut Timings,
) -> Result<(), ClientError> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let up = async {
        let mut stdin = tokio::io::stdin();
        let r = tokio::io::copy(&mut stdin, &mut wr).await;
        let _ = wr.shutdown().await;
        r
    };
    let down = async {
        let mut stdout = tokio::io::stdout();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        let mut first = None;
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            first.get_or_insert_with(|| t.mark());
            total += n as u64;
            stdout.write_all(&buf[..n]).await?;
            stdout.flush().await?;
        }
        Ok::<_, std::io::Error>((total, first))
    };
    let (u, d) = tokio::join!(up, down);
    let (total, first) = d.map_err(|e| {
        ClientError::new(
            ErrorLayer::Tcp,
            ClientReason::ConnectionReset,
            format!("receiving: {e}"),
        )
    })?;
    t.bytes = total;
    t.first_byte = first;
    u.map_err(|e| {
        // A reset shows on whichever direction meets it first.
        let reason = match e.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                ClientReason::ConnectionReset
            }
            _ => ClientReason::SendFailed,
        };
        ClientError::new(ErrorLayer::Tcp, reason, format!("sending: {e}"))
    })?;
    Ok(())
}

pub(super) async fn cat(a: &CatArgs, t: &mut Timings) -> Result<(), ClientError> {
    let c = &a.common;
    let mut ctx = connector(c, false)?;
    let mut path = ctx.request_path(t).await?;
    if ctx.address().transport() == Layer::Udp {
        return cat_udp(a, &mut ctx, &path, t).await;
    }
    let stream = ctx.connect_over(&mut path, t).await?;
    t.hops = path.hop_timings();
    if ctx.address().upper_layers().contains(&Layer::Tls) {
        let topts = tls_opts(&a.tls, || tls::default_sni(ctx.address()));
        warn_if_insecure(&a.tls);
        let s = super::tls_handshake(stream, &topts, &[], t).await?;
        return pipe(s, t).await;
    }
    let Err(e) = pipe(stream, t).await else {
        return Ok(());
    };
    // Reset before a single byte came back: for raw TCP that is how the final hop says "no
    // such service" (there is no in-band channel), so let a probe say which failure.
    if e.reason == ClientReason::ConnectionReset && t.bytes == 0 {
        if let Some(d) = Box::pin(crate::diagnose(ctx.address(), &path, &ctx.probe_options())).await
        {
            return Err(d);
        }
    }
    Err(e.placed_at(crate::hop_ref(&path, path.hops.len() - 1)))
}

/// UDP: every read from stdin (a line when interactive, up to 64 KiB from a pipe) is one
/// datagram; every reply datagram is written to stdout. After stdin ends, replies are
/// awaited for `--wait` ms since the last one.
async fn cat_udp(
    a: &CatArgs,
    ctx: &mut Connector,
    path: &ResolvedPath,
    t: &mut Timings,
) -> Result<(), ClientError> {
    let c = &a.common;
    // No direct port for UDP: hopd's relay is the only way in (direct ports are TCP only).
    t.port = Some(c.hopd_port());
    let sock = ctx.open_udp(path, c.hopd_port(), t)?;
    t.connect = Some(t.mark());
    t.hops = path.hop_timings();
    let sock = Arc::new(sock);
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let mut inbuf = vec![0u8; 65507];
    let mut outbuf = vec![0u8; 65535];
    let mut stdin_open = true;
    let wait = Duration::from_millis(a.wait);
    let mut deadline = tokio::time::Instant::now() + wait;
    let final_hop = || crate::hop_ref(path, path.hops.len() - 1);
    let udp_err = |e: std::io::Error| {
        ClientError::new(
            ErrorLayer::Udp,
            if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                ClientReason::PortUnreachable
            } else {
                ClientReason::UdpError
            },
            format!("datagram exchange with port {}: {e}", c.hopd_port()),
        )
        .at(final_hop())
    };
    loop {
        tokio::select! {
            r = stdin.read(&mut inbuf), if stdin_open => {
                let n = r.map_err(|e| ClientError::local(format!("reading stdin: {e}")))?;
                if n == 0 {
                    stdin_open = false;
                    deadline = tokio::time::Instant::now() + wait;
                } else {
                    sock.send(&inbuf[..n]).await.map_err(udp_err)?;
                }
            }
            r = sock.recv(&mut outbuf) => {
                let n = r.map_err(udp_err)?;
                t.first_byte.get_or_insert_with(|| t.start.elapsed());
                t.bytes += n as u64;
                stdout.write_all(&outbuf[..n]).await
                    .and(stdout.flush().await)
                    .map_err(|e| ClientError::local(format!("writing stdout: {e}")))?;
                deadline = tokio::time::Instant::now() + wait;
            }
            _ = tokio::time::sleep_until(deadline), if !stdin_open => break,
        }
    }
    if t.bytes == 0 {
        if let Some(e) = crate::diagnose(ctx.address(), path, &ctx.probe_options()).await {
            return Err(e);
        }
        let over = if path.uses_fast_path() {
            // UDP cannot tell a lost datagram from a missing kernel route: forget the path,
            // so the next try probes afresh, and say how to leave the fast path out.
            ctx.forget_path();
            FAST_PATH_HINT
        } else {
            ""
        };
        return Err(ClientError::new(
            ErrorLayer::Timeout,
            ClientReason::NoReply,
            format!("no datagram came back within {} ms{over}", a.wait),
        )
        .at(final_hop()));
    }
    Ok(())
}
