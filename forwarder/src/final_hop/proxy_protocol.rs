//! The PROXY protocol version 2 header (HAProxy, `doc/proxy-protocol.txt`) that tells a
//! proxied service who the client is: without it the service sees hopd's socket as its peer,
//! and its own source-based limits and logs see one client.
//!
//! hopd writes the smallest form the specification allows for a relayed IPv6 client:
//!
//! ```text
//!  0                   12    13    14      16                32                48  50  52
//!  +---------------------+-----+-----+-------+-----------------+-----------------+---+---+
//!  | 0D 0A 0D 0A 00 0D 0A | 0x21 | 0x21 |  36  |  source address |  dest. address  |sp |dp |
//!  | 51 55 49 54 0A       | v2   |INET6 |(BE16)|  (the client)   | (hopd's address |   |   |
//!  |    (signature)       |PROXY |STREAM|      |                 |  it was sent to)|   |   |
//!  +---------------------+-----+-----+-------+-----------------+-----------------+---+---+
//! ```
//!
//! The command is always PROXY (0x21: the connection was relayed for a client; LOCAL is for
//! a proxy's own health checks, which hopd does not make). The family is AF_INET6 and the
//! transport STREAM (0x21) for a TCP connection or DGRAM (0x22) for a relayed datagram.
//!
//! TLVs follow only when there is something authenticated to tell (each TLV is one more
//! thing every consumer must parse):
//!
//! * `0xE0` (`PP2_TYPE_HOPSTACK_HMAC`, in the specification's custom range 0xE0-0xEF): the
//!   SRH carried an HMAC hopd verified. Value: the key id (4 octets, big endian) then the
//!   key's configured name (UTF-8, the rest of the value).
//! * `0x20` (`PP2_TYPE_SSL`, standard) when hopd terminated TLS: `client` (1 octet:
//!   `PP2_CLIENT_SSL` 0x01, plus `PP2_CLIENT_CERT_CONN` 0x02 when the client sent a
//!   certificate), `verify` (4 octets, 0 when a client certificate was sent and verified,
//!   1 otherwise), then sub-TLVs `PP2_SUBTYPE_SSL_VERSION` (0x21, e.g. `TLSv1.3`) and, for a
//!   verified certificate, `PP2_SUBTYPE_SSL_CN` (0x22, the subject's common name).
//!
//! The encoding is the `ppp` crate's.

use std::io;
use std::net::SocketAddrV6;

use ppp::v2::{Builder, Command, IPv6, Protocol, Version};

use super::tls::TlsClient;
use crate::service::Authenticated;

/// The custom TLV type that carries the verified SRH HMAC's key id and name.
pub const PP2_TYPE_HOPSTACK_HMAC: u8 = 0xE0;
/// The standard TLS TLV and the sub-types hopd writes (`doc/proxy-protocol.txt`, 2.2.5).
pub const PP2_TYPE_SSL: u8 = 0x20;
pub const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
pub const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
pub const PP2_CLIENT_SSL: u8 = 0x01;
pub const PP2_CLIENT_CERT_CONN: u8 = 0x02;

/// What the header says beyond the addresses (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    pub authenticated: Option<&'a Authenticated>,
    pub tls: Option<&'a TlsClient>,
}

/// The value of the `PP2_TYPE_HOPSTACK_HMAC` TLV.
pub fn hmac_tlv_value(a: &Authenticated) -> Vec<u8> {
    let mut v = a.key_id.to_be_bytes().to_vec();
    v.extend_from_slice(a.name.as_bytes());
    v
}

/// The value of the `PP2_TYPE_SSL` TLV, sub-TLVs included.
pub fn ssl_tlv_value(t: &TlsClient) -> Vec<u8> {
    let mut client = PP2_CLIENT_SSL;
    if t.cert_verified {
        client |= PP2_CLIENT_CERT_CONN;
    }
    let verify: u32 = if t.cert_verified { 0 } else { 1 };
    let mut v = vec![client];
    v.extend_from_slice(&verify.to_be_bytes());
    let mut sub = |kind: u8, value: &[u8]| {
        // Values here are short (a version name, a common name of at most 64 octets).
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        v.push(kind);
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&value[..usize::from(len)]);
    };
    sub(PP2_SUBTYPE_SSL_VERSION, t.version.as_bytes());
    if let (true, Some(cn)) = (t.cert_verified, &t.subject_cn) {
        sub(PP2_SUBTYPE_SSL_CN, cn.as_bytes());
    }
    v
}

/// [`header_v2`] with the TLVs `extras` calls for.
pub fn header_v2_with(
    client: SocketAddrV6,
    local: SocketAddrV6,
    transport: Transport,
    extras: Extras<'_>,
) -> io::Result<Vec<u8>> {
    let protocol = match transport {
        Transport::Stream => Protocol::Stream,
        Transport::Datagram => Protocol::Datagram,
    };
    let addresses = IPv6::new(*client.ip(), *local.ip(), client.port(), local.port());
    let mut b = Builder::with_addresses(Version::Two | Command::Proxy, protocol, addresses);
    if let Some(a) = extras.authenticated {
        b = b.write_tlv(PP2_TYPE_HOPSTACK_HMAC, &hmac_tlv_value(a))?;
    }
    if let Some(t) = extras.tls {
        b = b.write_tlv(PP2_TYPE_SSL, &ssl_tlv_value(t))?;
    }
    b.build()
}

/// Length of the header for two IPv6 addresses without TLVs: 16 fixed octets and 36 of
/// addresses and ports.
pub const V2_INET6_LEN: usize = 16 + 36;

/// What the relayed client speaks, which decides the header's transport nibble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP connection: the header comes once, before the client's first byte.
    Stream,
    /// A UDP datagram: every datagram to the service starts with a header.
    Datagram,
}

/// The PROXY v2 header saying that `client` sent to `local` (the address and port of hopd it
/// reached) over `transport`.
pub fn header_v2(
    client: SocketAddrV6,
    local: SocketAddrV6,
    transport: Transport,
) -> io::Result<Vec<u8>> {
    header_v2_with(client, local, transport, Extras::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header byte for byte as the specification lays it out (section 2.2), so the
    /// encoding does not rest on the crate alone.
    #[test]
    fn header_matches_the_specification_layout() {
        let client: SocketAddrV6 = "[fd00:99::1]:40022".parse().unwrap();
        let local: SocketAddrV6 = "[fd00:3::2]:7443".parse().unwrap();
        let mut want = vec![
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54,
            0x0A, // signature
            0x21, // version 2, command PROXY
            0x21, // AF_INET6, STREAM
            0x00, 0x24, // 36 octets follow
        ];
        want.extend_from_slice(&[0xfd, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(&[0xfd, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend_from_slice(&40022u16.to_be_bytes());
        want.extend_from_slice(&7443u16.to_be_bytes());
        let got = header_v2(client, local, Transport::Stream).unwrap();
        assert_eq!(got, want);
        assert_eq!(got.len(), V2_INET6_LEN);

        want[13] = 0x22; // AF_INET6, DGRAM
        assert_eq!(header_v2(client, local, Transport::Datagram).unwrap(), want);
    }

    /// And a parser reads back what was meant.
    #[test]
    fn header_parses_back() {
        let client: SocketAddrV6 = "[2001:db8::7]:1".parse().unwrap();
        let local: SocketAddrV6 = "[::1]:65535".parse().unwrap();
        let bytes = header_v2(client, local, Transport::Datagram).unwrap();
        let h = ppp::v2::Header::try_from(&bytes[..]).unwrap();
        assert_eq!(h.command, Command::Proxy);
        assert_eq!(h.protocol, Protocol::Datagram);
        assert_eq!(
            h.addresses,
            ppp::v2::Addresses::IPv6(IPv6::new(
                *client.ip(),
                *local.ip(),
                client.port(),
                local.port()
            ))
        );
        assert_eq!(h.len(), bytes.len());
    }

    /// The TLVs, octet for octet, and read back by the `ppp` parser.
    #[test]
    fn tlvs_carry_the_signer_and_the_client_certificate() {
        let client: SocketAddrV6 = "[fd00:99::1]:40022".parse().unwrap();
        let local: SocketAddrV6 = "[fd00:3::2]:7443".parse().unwrap();
        let a = Authenticated {
            key_id: 7,
            name: "alice".into(),
        };
        let t = TlsClient {
            version: "TLSv1.3".into(),
            cert_verified: true,
            subject_cn: Some("client-1".into()),
        };
        let extras = Extras {
            authenticated: Some(&a),
            tls: Some(&t),
        };
        let bytes = header_v2_with(client, local, Transport::Stream, extras).unwrap();
        let mut tail = vec![0xE0, 0, 9, 0, 0, 0, 7];
        tail.extend_from_slice(b"alice");
        tail.extend_from_slice(&[0x20, 0, 26, 0x03, 0, 0, 0, 0]);
        tail.extend_from_slice(&[0x21, 0, 7]);
        tail.extend_from_slice(b"TLSv1.3");
        tail.extend_from_slice(&[0x22, 0, 8]);
        tail.extend_from_slice(b"client-1");
        assert_eq!(&bytes[V2_INET6_LEN..], &tail[..]);
        assert_eq!(
            u16::from_be_bytes([bytes[14], bytes[15]]) as usize,
            36 + tail.len()
        );
        let h = ppp::v2::Header::try_from(&bytes[..]).unwrap();
        let kinds: Vec<u8> = h.tlvs().map(|t| t.unwrap().kind).collect();
        assert_eq!(kinds, vec![0xE0, 0x20]);
        // No certificate: verify is non-zero and no common name is claimed.
        let anon = TlsClient {
            cert_verified: false,
            subject_cn: None,
            ..t
        };
        assert_eq!(&ssl_tlv_value(&anon)[..5], &[0x01, 0, 0, 0, 1]);
        assert!(!ssl_tlv_value(&anon).contains(&PP2_SUBTYPE_SSL_CN));
        // Nothing to tell: no TLVs at all.
        let plain = header_v2_with(client, local, Transport::Stream, Extras::default()).unwrap();
        assert_eq!(plain.len(), V2_INET6_LEN);
    }
}
