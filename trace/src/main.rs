use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use hopstack_client::tls::TlsOptions;
use hopstack_encoder::probe;
use hopstack_trace::run::{self, Method};
use hopstack_trace::{RenderOptions, hoplimit, layers, render, stack};

/// hoptrace: per-hop, per-layer diagnostics for a stack address.
///
/// Sends a stack-aware probe (O-flag + trace TLV) along the address's hops, falls back to
/// hop-limit probing (ICMPv6 Time Exceeded, unprivileged) where hops do not fill trace
/// records, then checks the final hop's service mapping and each layer (tcp connect, tls
/// handshake, http request) with its timing.
#[derive(Parser, Debug)]
#[command(version, about, after_help = EXIT_HELP)]
struct Cli {
    /// Stack address, e.g. 'github.com>org>yc:tcp+tls+http+restapiv3/users/list'.
    address: String,
    /// Rounds to run (mtr's report mode): loss and min/avg/max per row.
    #[arg(short = 'c', long = "count", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    count: u32,
    /// Print the report as JSON (schema: trace/schema/hoptrace.schema.json).
    #[arg(long)]
    json: bool,
    /// Probing method.
    #[arg(long, value_enum, default_value_t = MethodArg::Auto)]
    method: MethodArg,
    /// Hop limit the stack-aware probe leaves with (default: the system's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    hop_limit: Option<u8>,
    /// Highest hop limit of hop-limit probing.
    #[arg(short = 'm', long, default_value_t = 30, value_parser = clap::value_parser!(u8).range(1..))]
    max_hops: u8,
    /// Milliseconds to wait for each probe's answer [default: hop-limit probes 1500; the
    /// stack-aware probe 1500 plus 2000 (hopd's resolver timeout) for every hop name the hops
    /// resolve on the way, so that a hop whose DNS times out is named rather than the
    /// silence blamed on the first hop].
    #[arg(long, value_name = "MS")]
    timeout: Option<u64>,
    /// Milliseconds between rounds.
    #[arg(short = 'i', long, value_name = "MS", default_value_t = 200)]
    interval: u64,
    /// Resolve NAME to ADDR on the client instead of asking DNS (repeatable).
    #[arg(long, value_name = "NAME=ADDR")]
    resolve: Vec<String>,
    /// The client's DNS server for the first hop (default: /etc/resolv.conf).
    #[arg(long, value_name = "ADDR")]
    dns: Option<IpAddr>,
    /// The final hop's hopd port.
    #[arg(long, default_value_t = hopstack_encoder::encode::DEFAULT_SERVICE_PORT)]
    port: u16,
    /// Trust anchors (PEM) for the TLS check.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Do not require the TLS certificate to verify.
    #[arg(short = 'k', long)]
    insecure: bool,
    /// Server name for TLS and the HTTP Host header (default: the final hop's name).
    #[arg(long)]
    sni: Option<String>,
    /// Only trace the hops; skip the tcp/tls/http checks.
    #[arg(long)]
    no_layers: bool,
    /// Timing bars: `auto` draws them on a terminal.
    #[arg(long, value_enum, default_value_t = When::Auto)]
    waterfall: When,
    /// Colour: `auto` on a terminal.
    #[arg(long, value_enum, default_value_t = When::Auto)]
    color: When,
}

const EXIT_HELP: &str = "Exit status (the same codes as hop's, docs/client.md): 0 every hop and \
layer is fine; 1 something failed (the first failure is printed with its reason); 2 usage or \
local error; 3 the address does not parse.";

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MethodArg {
    /// Stack-aware probe, plus hop-limit probing when some hop stays silent.
    Auto,
    /// Only the stack-aware probe.
    Trace,
    /// Only hop-limit probing (and the layer checks).
    HopLimit,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum When {
    Auto,
    Always,
    Never,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let addr = match hopstack_encoder::StackAddress::parse(&cli.address) {
        Ok(a) => a,
        Err(e) => {
            // The format and code every tool uses (hopstack_client::error).
            let report = hopstack_client::error::address_error_report("hoptrace", &cli.address, &e);
            eprint!("{report}");
            return ExitCode::from(hopstack_client::ErrorLayer::Address.exit_code());
        }
    };
    let mut overrides = HashMap::new();
    for r in &cli.resolve {
        let Some((name, a)) = r.split_once('=') else {
            eprintln!("hoptrace: --resolve {r}: expected NAME=ADDR");
            return ExitCode::from(2);
        };
        let a = a.trim_start_matches('[').trim_end_matches(']');
        match a.parse::<Ipv6Addr>() {
            Ok(a) => overrides.insert(name.to_ascii_lowercase(), a),
            Err(e) => {
                eprintln!("hoptrace: --resolve {r}: `{a}` is not an IPv6 address: {e}");
                return ExitCode::from(2);
            }
        };
    }
    let timeout = cli.timeout.map_or_else(
        || {
            let en_route =
                probe::names_en_route(&addr, |n| overrides.contains_key(&n.to_ascii_lowercase()));
            probe::default_wait(en_route)
        },
        Duration::from_millis,
    );
    let opts = run::Options {
        rounds: cli.count,
        method: match cli.method {
            MethodArg::Auto => Method::Auto,
            MethodArg::Trace => Method::Trace,
            MethodArg::HopLimit => Method::HopLimit,
        },
        overrides,
        dns_server: cli.dns,
        probe: stack::Options {
            port: cli.port,
            timeout,
            hop_limit: cli.hop_limit,
            ..Default::default()
        },
        sweep: hoplimit::Config {
            max_hops: cli.max_hops,
            timeout: cli.timeout.map_or(probe::BASE_WAIT, Duration::from_millis),
            ..Default::default()
        },
        layers: layers::Options {
            port: cli.port,
            tls: TlsOptions {
                cacert: cli.cacert.clone(),
                insecure: cli.insecure,
                sni: cli.sni.clone(),
            },
            ..Default::default()
        },
        no_layers: cli.no_layers,
        interval: Duration::from_millis(cli.interval),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hoptrace: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = rt.block_on(run::run(&cli.address, &addr, &opts));
    if cli.json {
        print!("{}", render::json(&report));
    } else {
        let tty = std::io::stdout().is_terminal();
        let on = |w: When| match w {
            When::Auto => tty,
            When::Always => true,
            When::Never => false,
        };
        let o = RenderOptions {
            color: on(cli.color),
            waterfall: on(cli.waterfall).then_some(30),
        };
        print!("{}", render::table(&report, &o));
    }
    ExitCode::from(report.exit_code())
}
