//! `hop proxy -L ADDR:PORT ADDRESS`: every connection to the local listener is forwarded to
//! one stack address.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio::sync::Mutex;

use hopstack_encoder::layer::Layer;

use super::super::args::CommonArgs;
use super::super::connect::connector;
use crate::connect::Connector;
use crate::error::ClientError;
use crate::resolve::{self, ResolvedPath};
use crate::timing::Timings;

/// The one address's connector and its path, shared by the connections (one connects at a
/// time: a fallback changes the path for the next).
pub(super) struct Forward {
    listen: SocketAddr,
    /// ADDRESS as given, for the line that announces the proxy.
    address: String,
    connector: Connector,
    path: ResolvedPath,
}

impl Forward {
    /// Probes the path once up front, cached path or not, so that a missing service or hopd,
    /// or a broken hop, shows before anyone connects rather than on every connection.
    pub(super) async fn start(
        c: &CommonArgs,
        listen: SocketAddr,
        t: &mut Timings,
    ) -> Result<Forward, ClientError> {
        let mut connector = connector(c, false)?;
        if connector.address().transport() != Layer::Tcp {
            return Err(ClientError::usage(
                "hop proxy -L forwards TCP; add --udp for a udp address",
            ));
        }
        let path = Box::pin(connector.path(true, t)).await?;
        Ok(Forward {
            listen,
            address: c.address.clone(),
            connector,
            path,
        })
    }

    /// The line that says the proxy is up, and where it forwards to.
    pub(super) fn announce(&self) {
        let opts = self.connector.options();
        let (port, direct) = self
            .path
            .connect_port(opts.hopd_port(), opts.port.is_some());
        eprintln!(
            "hop: proxy {} -> {} (final hop {} port {port}{})",
            self.listen,
            self.address,
            self.path.final_address(),
            if direct {
                ", the service's direct port"
            } else {
                ""
            }
        );
    }

    /// A connection over the path, probed again first once it has expired.
    async fn connect(&mut self) -> Result<TcpStream, ClientError> {
        let mut t = Timings::start();
        if resolve::unix_now() >= self.path.expires {
            self.path = self.connector.path(false, &mut t).await?;
        }
        self.connector.connect_over(&mut self.path, &mut t).await
    }
}

/// Forwards `client` to the address; a connection that fails is logged on stderr as one
/// error line and closed.
pub(super) async fn serve(forward: &Mutex<Forward>, client: TcpStream, peer: SocketAddr) {
    let service = forward.lock().await.connect().await;
    match service {
        Ok(service) => super::relay(client, service).await,
        Err(e) => eprintln!("hop: proxy: {peer}: {e}"),
    }
}
