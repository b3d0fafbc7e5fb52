//! hoptrace: per-hop, per-layer diagnostics for a stack address.
//!
//! - [`model`]: what a trace found (the `--json` document);
//! - [`render`]: the mtr-like table, the waterfall and the JSON text, as pure functions;
//! - [`hoplimit`]: hop-limit probing along the SRH path for legacy SRv6 hops, read from the
//!   socket error queue (`IPV6_RECVERR`, unprivileged, like tracepath);
//! - [`stack`]: the stack-aware probe (O-flag + trace TLV) and its reports;
//! - [`layers`]: tcp / tls / http checks at the final hop over an SRH-carrying socket;
//! - [`run`]: a whole trace from the command-line options;
//! - [`term`]: the terminal's width, `NO_COLOR`, and the live view redrawn after each round;
//! - [`seconds`]: the time options' values (seconds, fractions allowed).

pub mod hoplimit;
pub mod layers;
pub mod model;
pub mod render;
pub mod run;
pub mod seconds;
pub mod sock;
pub mod stack;
pub mod term;

pub use model::{HopRow, LayerRow, Problem, Rtt, Status, TraceReport, Via};
pub use render::{RenderOptions, json, table};

/// `hoptrace`'s command line as the binary parses it (the definitions in `hoptrace_cli.rs`):
/// the man page and shell completions are generated from it (`cargo xtask dist`).
pub fn hoptrace_command() -> clap::Command {
    hoptrace_cli::command()
}

// Only the definitions matter here; the binary is what reads the parsed values.
#[allow(dead_code)]
mod hoptrace_cli {
    use std::net::IpAddr;
    use std::path::PathBuf;
    use std::time::Duration;

    use clap::{Parser, ValueEnum};

    use crate::seconds;

    include!("hoptrace_cli.rs");

    // Here, where the private definitions are visible.
    pub(super) fn command() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
    }
}
