//! hopstack encoder: the stack-address grammar, the SRv6 Segment Routing Header wire format
//! (RFC 8754) with hopstack's TLVs, the stack report message, and a packet builder.
//!
//! Everything in this crate is sans-IO: functions take bytes (and `now` where time matters)
//! and return values or decisions. Sockets, DNS and clocks live in `hopstack-client` (the
//! `hop` client, shared with `hoptrace`), in the forwarder and in the binaries; this crate
//! depends on nothing but the HMAC and hash crates.

pub mod address;
pub mod encode;
pub mod hop;
pub mod layer;
pub mod pcap;
pub mod probe;
pub mod wire;

pub use address::StackAddress;
pub use layer::Layer;
