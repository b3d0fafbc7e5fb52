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
//! transport STREAM (0x21) for a TCP connection or DGRAM (0x22) for a relayed datagram. No
//! TLVs: the client's address and port are what a service's limits and logs need, and each
//! TLV is one more thing every consumer must parse. The encoding is the `ppp` crate's.

use std::io;
use std::net::SocketAddrV6;

use ppp::v2::{Builder, Command, IPv6, Protocol, Version};

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
    let protocol = match transport {
        Transport::Stream => Protocol::Stream,
        Transport::Datagram => Protocol::Datagram,
    };
    let addresses = IPv6::new(*client.ip(), *local.ip(), client.port(), local.port());
    Builder::with_addresses(Version::Two | Command::Proxy, protocol, addresses).build()
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
}
