//! `hop get` over `udp+quic+h3`: one request on a QUIC connection the library makes
//! ([`Connector::open_quic`]: the path, the direct UDP port, the fallbacks), HTTP/3 over it.
//! The redirects, `-w`, `-o` and the rest are `get.rs`'s, as for TCP.

use crate::connect::Connector;
use crate::error::{ClientError, ClientReason, ErrorLayer, HopRef};
use crate::http::{HttpRequest, Response};
use crate::quic::{self, H3Client};
use crate::timing::Timings;
use crate::tls::TlsOptions;

use super::get::Transfer;

/// One request at a `udp+quic+h3` stack address, up to the response head; a failure that
/// says nothing about why (no response, the connection lost) is handed to a probe. Returns
/// the final hop to put later failures on.
pub(super) async fn send(
    ctx: &mut Connector,
    topts: &TlsOptions,
    req: &HttpRequest,
    want_hops: bool,
    t: &mut Timings,
    st: &mut Transfer,
) -> Result<(Response, HopRef), ClientError> {
    let cfg = quic::client_config(topts)?;
    let sni = topts.sni.clone().unwrap_or_default();
    let conn = ctx.open_quic(&cfg, &sni, t).await?;
    // QUIC's handshake is TLS's: curl's time_appconnect is its end, as time_connect.
    t.tls = t.connect;
    st.connects += 1;
    st.remote = Some(conn.connection.remote_address());
    st.local = conn.local_addr().ok();
    let final_hop = ctx.final_hop(&conn.via);
    let res = match H3Client::new(&conn.connection).await {
        Ok(mut h3) => h3.send(req, t).await,
        Err(e) => Err(e),
    };
    let res = match res {
        Ok(r) => Ok(r),
        Err(e) if e.reason == ClientReason::NoResponse || e.layer == ErrorLayer::Quic => {
            Err(ctx.explain(&conn.via, e.placed_at(final_hop.clone())).await)
        }
        Err(e) => Err(e.placed_at(final_hop.clone())),
    };
    ctx.remember(&conn.via, t.http_status.is_some());
    if matches!(conn.via, crate::connect::Via::Path(_)) || want_hops {
        t.hops = ctx.hop_timings(&conn.via);
    }
    res.map(|r| (r, final_hop))
}
