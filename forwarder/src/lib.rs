//! `hopd`: the hopstack forwarder daemon.
//!
//! Border role (RFC 8754 End processing, hop-local name binding) and final-hop role
//! (unfold the layers, map the service name to a local socket). Decisions live in pure
//! functions; packet and socket I/O live in thin shells around them.

// `hopd`'s command-line definitions name this crate by its path, `hopstack_forwarder::…`, as
// the binary must; this makes the same path resolve when the library includes them.
extern crate self as hopstack_forwarder;

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

/// `hopd`'s command line as the binary parses it (the definitions in `hopd_cli.rs`): the man
/// page and shell completions are generated from it (`cargo xtask dist`).
pub fn hopd_command() -> clap::Command {
    hopd_cli::command()
}

// Only the definitions matter here; the binary is what reads the parsed values.
#[allow(dead_code)]
mod hopd_cli {
    use std::path::PathBuf;

    use clap::{Parser, Subcommand};

    include!("hopd_cli.rs");

    // Here, where the private definitions are visible.
    pub(super) fn command() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
    }
}
