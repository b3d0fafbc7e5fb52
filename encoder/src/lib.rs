//! hopstack encoder: the stack-address grammar, the SRv6 Segment Routing Header wire format
//! (RFC 8754) with hopstack's TLVs, the stack report message, and a packet builder.
//!
//! Everything in this crate's library is sans-IO: functions take bytes (and `now` where time
//! matters) and return values or decisions. Sockets, DNS and clocks live in the binaries and in
//! the forwarder. The exception is the `client` module (cargo feature `client`, on by default):
//! the `hop` client's DNS, sockets, TLS and HTTP, shared with `hoptrace`; build with
//! `--no-default-features` for the sans-IO core alone.

pub mod address;
#[cfg(feature = "client")]
pub mod client;
pub mod encode;
pub mod layer;
pub mod pcap;
pub mod probe;
pub mod wire;

pub use address::StackAddress;
pub use layer::Layer;
