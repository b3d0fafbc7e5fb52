//! `hopd`: the hopstack forwarder daemon.
//!
//! Border role (RFC 8754 End processing, hop-local name binding) and final-hop role
//! (unfold the layers, map the service name to a local socket). Decisions live in pure
//! functions; packet and socket I/O live in thin shells around them.

pub mod border;
pub mod check;
pub mod config;
pub mod final_hop;
pub mod histogram;
pub mod limits;
pub mod liveness;
pub mod ratelimit;
pub mod service_manager;
pub mod show;
/// The service SDK (crate `hopstack-service`): the service side of hand-off mode and the
/// control protocol hopd speaks.
pub use hopstack_service as service;
