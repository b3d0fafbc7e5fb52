//! `hop proxy`: a local listener whose connections are forwarded to a stack address.

use tokio::net::TcpListener;

use hopstack_encoder::layer::Layer;

use super::args::ProxyArgs;
use super::connect::connector;
use crate::error::ClientError;
use crate::resolve;
use crate::timing::Timings;

pub(super) async fn proxy(a: &ProxyArgs, t: &mut Timings) -> Result<(), ClientError> {
    let c = &a.common;
    let mut ctx = connector(c, false)?;
    if ctx.address().transport() != Layer::Tcp {
        return Err(ClientError::usage(
            "hop proxy forwards TCP; use hop cat for udp",
        ));
    }
    // Probe once up front, cached path or not, so that a missing service or hopd, or a
    // broken hop, shows before anyone connects rather than on every connection.
    let mut path = Box::pin(ctx.path(true, t)).await?;
    let listener = TcpListener::bind(a.listen)
        .await
        .map_err(|e| ClientError::local(format!("cannot listen on {}: {e}", a.listen)))?;
    let (port, direct) = path.connect_port(c.hopd_port(), c.port.is_some());
    eprintln!(
        "hop: proxy {} -> {} (final hop {} port {port}{})",
        a.listen,
        c.address,
        path.final_address(),
        if direct {
            ", the service's direct port"
        } else {
            ""
        }
    );
    let mut served = 0u64;
    let mut tasks = Vec::new();
    loop {
        if a.max_connections.is_some_and(|m| served >= m) {
            // Let the last connections finish: returning drops the runtime and its tasks.
            for t in tasks {
                let _ = t.await;
            }
            return Ok(());
        }
        let (mut local, peer) = listener
            .accept()
            .await
            .map_err(|e| ClientError::local(format!("accept on {}: {e}", a.listen)))?;
        served += 1;
        if resolve::unix_now() >= path.expires {
            let mut t2 = Timings::start();
            match ctx.path(false, &mut t2).await {
                Ok(p) => path = p,
                Err(e) => {
                    eprintln!("hop: proxy: {peer}: {e}");
                    continue;
                }
            }
        }
        let mut t2 = Timings::start();
        match ctx.connect_over(&mut path, &mut t2).await {
            Ok(mut remote) => {
                t2.hops = path.hop_timings();
                let task = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                });
                if a.max_connections.is_some() {
                    tasks.push(task);
                }
            }
            Err(e) => eprintln!("hop: proxy: {peer}: {e}"),
        }
    }
}
