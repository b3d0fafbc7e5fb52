//! `hop proxy --socks5 ADDR:PORT`: a SOCKS5 server (RFC 1928: the no-authentication method,
//! the CONNECT command) whose target, a domain name (ATYP 3: any octets, up to 255), is the
//! stack address. The request's port is ignored: a stack address names its service, and
//! the port of the connection to it is hopd's or the service's direct port, which the path
//! says. The protocol is the `fast-socks5` crate's, step by step, so that the reply can wait
//! for the connection to the stack address and say why it failed.

use std::net::SocketAddr;
use std::time::Duration;

use fast_socks5::server::Socks5ServerProtocol;
use fast_socks5::util::target_addr::TargetAddr;
use fast_socks5::{ReplyError, Socks5Command};
use tokio::net::TcpStream;

use hopstack_encoder::wire::report::printable;

use super::{Dialer, target};
use crate::error::ClientError;

/// A client that has not sent its greeting and request in this time is dropped (the crate
/// waits as long as the client does).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one SOCKS5 client: greeting, request, then the connection to the stack address
/// and the bytes both ways, or a reply code and one log line naming hop and layer.
pub(super) async fn serve(dialer: &Dialer, client: TcpStream, peer: SocketAddr) {
    let negotiation = async {
        let protocol = Socks5ServerProtocol::accept_no_auth(client)
            .await
            .map_err(|e| format!("greeting: {e}"))?;
        protocol
            .read_command()
            .await
            .map_err(|e| format!("request: {e}"))
    };
    let (protocol, command, requested) =
        match tokio::time::timeout(REQUEST_TIMEOUT, negotiation).await {
            Ok(Ok(r)) => r,
            Ok(Err(why)) => {
                eprintln!("hop: proxy: socks5 {peer}: {why}");
                return;
            }
            Err(_) => {
                eprintln!("hop: proxy: socks5 {peer}: no request within {REQUEST_TIMEOUT:?}");
                return;
            }
        };
    if command != Socks5Command::TCPConnect {
        let _ = protocol.reply_error(&ReplyError::CommandNotSupported).await;
        eprintln!("hop: proxy: socks5 {peer}: {command:?}: only CONNECT is supported");
        return;
    }
    let host = match requested {
        TargetAddr::Domain(host, _port) => host,
        TargetAddr::Ip(ip) => {
            let _ = protocol
                .reply_error(&ReplyError::AddressTypeNotSupported)
                .await;
            eprintln!(
                "hop: proxy: socks5 {peer} -> {ip}: an IP address is no stack address; let the \
                 proxy resolve the name (socks5h://, curl --socks5-hostname)"
            );
            return;
        }
    };
    let requested = target::stack_address(host.as_bytes());
    // The log names the address as parsed (decoded), or what came when it does not parse.
    let target = match &requested {
        Ok(addr) => addr.to_string(),
        Err(_) => printable(&host),
    };
    let dialed = match requested {
        Ok(addr) => dialer.dial(addr).await,
        Err(e) => Err(e),
    };
    match dialed {
        Ok(d) => {
            let bound = d
                .stream
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0u8; 16], 0)));
            dialer.note(|| format!("socks5 {peer} -> {target}: {} ({})", d.destination, d.how));
            match protocol.reply_success(bound).await {
                Ok(client) => super::relay(client, d.stream).await,
                Err(e) => eprintln!("hop: proxy: socks5 {peer} -> {target}: reply: {e}"),
            }
        }
        Err(e) => {
            // Logged before the reply: whoever sees the reply finds the reason logged.
            eprintln!("hop: proxy: socks5 {peer} -> {target}: {e}");
            let _ = protocol.reply_error(&reply_error(&e)).await;
        }
    }
}

/// [`target::socks_reply`]'s code as the crate's type.
fn reply_error(e: &ClientError) -> ReplyError {
    match target::socks_reply(e) {
        0x02 => ReplyError::ConnectionNotAllowed,
        0x03 => ReplyError::NetworkUnreachable,
        0x04 => ReplyError::HostUnreachable,
        0x05 => ReplyError::ConnectionRefused,
        0x06 => ReplyError::TtlExpired,
        _ => ReplyError::GeneralFailure,
    }
}
