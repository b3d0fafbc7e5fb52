//! Wire formats: the IPv6 header, the SRv6 Segment Routing Header (RFC 8754) and hopstack's
//! TLVs, the stack report message, and an IPv6 packet builder.
//!
//! Views follow smoltcp's style: `Packet<T: AsRef<[u8]>>` with `new_checked`/`check_len`, after
//! which no accessor panics; owned `Repr` types with `parse`/`buffer_len`/`emit`.

pub mod checksum;
pub mod hmac;
pub mod ipv6;
pub mod packet;
pub mod report;
pub mod srh;
pub mod tlv;
