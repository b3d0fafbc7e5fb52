//! hopstack's service SDK: the service side of hopd's hand-off mode, and the control protocol
//! both sides speak.
//!
//! It needs only `nix`, `serde` and the wire core (for [`Layer`]); the tokio listener is the
//! cargo feature `tokio` (on by default). hopd re-exports this crate as
//! `hopstack_forwarder::service`.
//!
//! A service process registers its name with the local `hopd` over a Unix control socket and
//! from then on receives every connection addressed to that name as an already-accepted TCP
//! socket (the descriptor is passed with `SCM_RIGHTS`), together with [`Metadata`]: who the
//! client is, which path the connection came by and which layers it asked for. After the
//! hand-off `hopd` holds no copy of the socket: the bytes flow between the client and the
//! service only, and the service keeps serving if `hopd` stops.
//!
//! ```no_run
//! use hopstack_service::Listener;
//! use std::io::Write;
//!
//! let listener = Listener::register("restapiv3")?;
//! loop {
//!     let (mut stream, meta) = listener.accept()?;
//!     eprintln!("{} via {:?} asking {:?}", meta.client, meta.path, meta.layers);
//!     stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")?;
//! }
//! # Ok::<(), hopstack_service::Error>(())
//! ```
//!
//! # Control protocol
//!
//! The socket is `SOCK_SEQPACKET`, so every message keeps its boundaries. All messages are
//! UTF-8 JSON objects.
//!
//! ```text
//!   service                                   hopd
//!      |  {"register":"restapiv3","version":1}   |   hopd checks SO_PEERCRED uid
//!      |---------------------------------------->|   against the service's allowed_uids
//!      |  {"ok":true}  or  {"ok":false,"error"}  |
//!      |<----------------------------------------|
//!      |  Metadata JSON  + SCM_RIGHTS [tcp fd]   |   one message per connection
//!      |<----------------------------------------|
//!      |                 ...                     |
//! ```
//!
//! Closing the control socket unregisters. While no process is registered, connections to
//! the name fail with `service-down` (layer `service`).

use std::io;
use std::io::IoSliceMut;
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use hopstack_encoder::Layer;
use nix::sys::socket::{
    self, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
};
use serde::{Deserialize, Serialize};

/// Environment variable that overrides the control socket path for [`Listener::register`].
pub const CONTROL_SOCKET_ENV: &str = "HOPD_CONTROL_SOCKET";

/// Where hopd listens for registrations unless its `[final_hop] control_socket` says
/// otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/hopd/control.sock";

/// Version of the control protocol spoken by this crate.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest control message (metadata of one connection). Metadata is small: at most 128
/// segments of path plus a few names.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// What hopd tells the service about a handed-off connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The service name the client asked for.
    pub service: String,
    /// The client's address and port (the IPv6 source of the connection).
    pub client: SocketAddr,
    /// The local address and port the connection was accepted on.
    pub local: SocketAddr,
    /// The layer stack from the layer descriptor, outermost first (e.g. `["tcp","tls","http"]`).
    #[serde(with = "layer_words")]
    pub layers: Vec<Layer>,
    /// The hops the connection came by, in travel order; the last one is this host. Taken from
    /// the SYN's Segment Routing Header (reversed Segment List).
    pub path: Vec<Ipv6Addr>,
    /// This hop's name, as configured in hopd.
    pub hop_name: String,
    /// `"passthrough"`: TLS, if any, is still on the stream for the service to terminate.
    pub tls: String,
    /// Set when the connection's SYN carried an SRH HMAC that hopd verified with one of its
    /// `[[final_hop.hmac_keys]]` over the connection's real source address: the sender holds
    /// that key. `None` (absent in the JSON): the SRH was not signed. Everything else here
    /// (path, layers) is what the client claimed. Added within protocol version 1: a service
    /// built before it ignores the field, one built after reads its absence as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated: Option<Authenticated>,
}

/// Who signed a connection's Segment Routing Header (see [`Metadata::authenticated`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authenticated {
    /// The HMAC key id (the SRH's HMAC TLV; `ip sr hmac` numbering).
    pub key_id: u32,
    /// The key's `name` in hopd's configuration.
    pub name: String,
}

mod layer_words {
    use hopstack_encoder::Layer;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &[Layer], s: S) -> Result<S::Ok, S::Error> {
        let words: Vec<&str> = v.iter().map(|l| l.as_str()).collect();
        words.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Layer>, D::Error> {
        let words = Vec::<String>::deserialize(d)?;
        words
            .iter()
            .map(|w| {
                w.parse::<Layer>()
                    .map_err(|_| D::Error::custom(format!("`{w}` is not a layer")))
            })
            .collect()
    }
}

/// Registration request (service -> hopd).
#[derive(Debug, Serialize, Deserialize)]
pub struct Register {
    pub register: String,
    pub version: u32,
}

/// Registration answer (hopd -> service).
#[derive(Debug, Serialize, Deserialize)]
pub struct RegisterReply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Errors of the service-side API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach hopd's control socket {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("hopd refused to register `{service}`: {reason}")]
    Refused { service: String, reason: String },
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
    #[error("hopd closed the control socket")]
    Closed,
    #[error("malformed control message ({len} octets): {why}")]
    Malformed { len: usize, why: String },
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::Io(e.into())
    }
}

/// A registration with hopd; dropping it unregisters.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    service: String,
}

impl Listener {
    /// Registers `service` with hopd at `$HOPD_CONTROL_SOCKET`, or at
    /// [`DEFAULT_CONTROL_SOCKET`].
    pub fn register(service: &str) -> Result<Listener, Error> {
        let path = std::env::var_os(CONTROL_SOCKET_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET));
        Listener::register_at(&path, service)
    }

    /// Registers `service` with the hopd whose control socket is `path`.
    pub fn register_at(path: &Path, service: &str) -> Result<Listener, Error> {
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let addr = UnixAddr::new(path)?;
        socket::connect(fd.as_raw_fd(), &addr).map_err(|e| Error::Connect {
            path: path.to_owned(),
            source: e.into(),
        })?;
        let req = serde_json::to_vec(&Register {
            register: service.to_owned(),
            version: PROTOCOL_VERSION,
        })
        .map_err(io::Error::other)?;
        socket::send(fd.as_raw_fd(), &req, MsgFlags::MSG_NOSIGNAL)?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        if n == 0 {
            return Err(Error::Closed);
        }
        let reply: RegisterReply =
            serde_json::from_slice(&buf[..n]).map_err(|e| Error::Malformed {
                len: n,
                why: e.to_string(),
            })?;
        if !reply.ok {
            return Err(Error::Refused {
                service: service.to_owned(),
                reason: reply.error.unwrap_or_else(|| "no reason given".to_owned()),
            });
        }
        Ok(Listener {
            fd,
            service: service.to_owned(),
        })
    }

    /// The registered name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Waits for the next connection (blocking). The stream is an ordinary connected TCP
    /// socket; `hopd` has already closed its copy.
    pub fn accept(&self) -> Result<(TcpStream, Metadata), Error> {
        loop {
            match recv_conn(self.fd.as_raw_fd(), MsgFlags::empty()) {
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    /// The same registration for a tokio service: [`AsyncListener::accept`] yields
    /// `tokio::net::TcpStream`s. Must be called inside a tokio runtime.
    #[cfg(feature = "tokio")]
    pub fn into_async(self) -> Result<AsyncListener, Error> {
        nix::fcntl::fcntl(
            &self.fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        // SAFETY: an OwnedFd stays open and returns the same descriptor until dropped; the
        // AsyncFd owns it from here on.
        let fd = unsafe { tokio::io::unix::AsyncFd::register(self.fd) }.map_err(io::Error::from)?;
        Ok(AsyncListener {
            fd,
            service: self.service,
        })
    }
}

/// A hand-off registration for tokio services (see [`Listener::into_async`]).
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct AsyncListener {
    fd: tokio::io::unix::AsyncFd<OwnedFd>,
    service: String,
}

#[cfg(feature = "tokio")]
impl AsyncListener {
    /// Registers `service` at the control socket `path` (the registration exchange itself
    /// blocks briefly; it is one local round trip).
    pub fn register_at(path: &Path, service: &str) -> Result<AsyncListener, Error> {
        Listener::register_at(path, service)?.into_async()
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> Result<(tokio::net::TcpStream, Metadata), Error> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(
                |fd| match recv_conn(fd.as_raw_fd(), MsgFlags::MSG_DONTWAIT) {
                    Err(Error::Io(e)) => Err(e),
                    other => Ok(other),
                },
            ) {
                Ok(Ok(r)) => {
                    let (s, meta) = r?;
                    s.set_nonblocking(true)?;
                    return Ok((tokio::net::TcpStream::from_std(s)?, meta));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(Error::Io(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Receives one connection message: metadata plus the descriptor.
fn recv_conn(fd: RawFd, flags: MsgFlags) -> Result<(TcpStream, Metadata), Error> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut cmsg = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = socket::recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut cmsg),
        flags | MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let n = msg.bytes;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for r in raw {
                // SAFETY: the kernel just installed these descriptors in our table for us
                // (SCM_RIGHTS); nothing else owns them.
                fds.push(unsafe { OwnedFd::from_raw_fd(r) });
            }
        }
    }
    let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
    if n == 0 && fds.is_empty() {
        return Err(Error::Closed);
    }
    if truncated {
        return Err(Error::Malformed {
            len: n,
            why: format!("message longer than {MAX_MESSAGE} octets"),
        });
    }
    let meta: Metadata = serde_json::from_slice(&buf[..n]).map_err(|e| Error::Malformed {
        len: n,
        why: e.to_string(),
    })?;
    let mut fds = fds.into_iter();
    let Some(fd) = fds.next() else {
        return Err(Error::Malformed {
            len: n,
            why: "connection metadata without a descriptor".to_owned(),
        });
    };
    Ok((TcpStream::from(fd), meta))
}

impl Iterator for &Listener {
    type Item = Result<(TcpStream, Metadata), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.accept() {
            Err(Error::Closed) => None,
            r => Some(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_json_uses_layer_words() {
        let m = Metadata {
            service: "restapiv3".into(),
            client: "[fd00::1]:40000".parse().unwrap(),
            local: "[fd00::9]:7443".parse().unwrap(),
            layers: vec![Layer::Tcp, Layer::Tls, Layer::Http],
            path: vec!["fd00:1::1".parse().unwrap(), "fd00::9".parse().unwrap()],
            hop_name: "yc".into(),
            tls: "passthrough".into(),
            authenticated: None,
        };
        let j = serde_json::to_string(&m).unwrap();
        // Unsigned: the field is left out, as a service built before it expects.
        assert!(!j.contains("authenticated"), "{j}");
        assert!(j.contains(r#""layers":["tcp","tls","http"]"#), "{j}");
        assert_eq!(serde_json::from_str::<Metadata>(&j).unwrap(), m);
        let bad = j.replace("\"tls\",", "\"tlz\",");
        assert!(
            serde_json::from_str::<Metadata>(&bad)
                .unwrap_err()
                .to_string()
                .contains("`tlz` is not a layer")
        );
        let signed = Metadata {
            authenticated: Some(Authenticated {
                key_id: 7,
                name: "alice".into(),
            }),
            ..m
        };
        let j = serde_json::to_string(&signed).unwrap();
        assert!(
            j.contains(r#""authenticated":{"key_id":7,"name":"alice"}"#),
            "{j}"
        );
        assert_eq!(serde_json::from_str::<Metadata>(&j).unwrap(), signed);
    }
}
