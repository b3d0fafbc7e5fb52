//! Border role: RFC 8754 End processing in userspace, with hop-local name binding.
//!
//! The packet path is a pure decision function ([`process::process`]) wrapped in a thin I/O
//! shell: a TUN device the SIDs are routed into, a resolver task for late binding, metrics.

pub mod icmp;
mod oam;
pub mod policy;
pub mod process;

pub use policy::{Policy, Prefix};
pub use process::{Action, DropReason, State, process};

#[cfg(test)]
mod tests;
