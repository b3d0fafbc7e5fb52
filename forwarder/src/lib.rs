//! `hopd`: the hopstack forwarder daemon.
//!
//! Border role (RFC 8754 End processing, hop-local name binding) and final-hop role
//! (unfold the layers, map the service name to a local socket).
