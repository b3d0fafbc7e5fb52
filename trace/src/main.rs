use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use hopstack_client::tls::TlsOptions;
use hopstack_encoder::probe;
use hopstack_trace::run::{self, Method};
use hopstack_trace::{RenderOptions, TraceReport, hoplimit, layers, render, seconds, stack, term};

/// hoptrace: per-hop, per-layer diagnostics for a stack address.
///
/// Sends a stack-aware probe (O-flag + trace TLV) along the address's hops, falls back to
/// hop-limit probing (ICMPv6 Time Exceeded, unprivileged) where hops do not fill trace
/// records, then checks the final hop's service mapping and each layer (tcp connect, tls
/// handshake, http request) with its timing.
#[derive(Parser, Debug)]
#[command(name = "hoptrace", version = hopstack_version::VERSION, about, after_help = EXIT_HELP)]
struct Cli {
    /// Stack address, e.g. 'github.com>org>yc:tcp+tls+http+restapiv3/users/list'.
    address: String,
    /// Rounds to run: loss and min/avg/max per row [default: 1; 10 with --report]. On a
    /// terminal the table is redrawn after every round; Ctrl-C ends the run after the round
    /// in progress, with the table of the rounds done.
    #[arg(short = 'c', long = "count", value_parser = clap::value_parser!(u32).range(1..=1000))]
    count: Option<u32>,
    /// Report mode, as mtr -r: run the rounds, then print one table (no live view, no
    /// timing bars unless --waterfall always).
    #[arg(short = 'r', long)]
    report: bool,
    /// Wide report, as mtr -w: report mode with no cell cut to the terminal's width.
    #[arg(short = 'w', long)]
    wide: bool,
    /// Addresses only: no NAME column, hops called by number and address (hoptrace does no
    /// reverse lookups; the first hop's name is still resolved, it is where the probe goes).
    #[arg(short = 'n', long)]
    numeric: bool,
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
    /// Seconds to wait for each probe's answer, fractions allowed [default: hop-limit probes
    /// 1.5; the stack-aware probe 1.5 plus 2 (hopd's resolver timeout) for every hop name the
    /// hops resolve on the way, so that a hop whose DNS times out is named rather than the
    /// silence blamed on the first hop].
    #[arg(long, value_name = "SECONDS", value_parser = timeout_seconds)]
    timeout: Option<Duration>,
    /// --timeout in milliseconds.
    #[arg(long, value_name = "MS", conflicts_with = "timeout", value_parser = timeout_millis)]
    timeout_ms: Option<Duration>,
    /// Seconds between rounds, fractions allowed (as mtr's and ping's -i).
    #[arg(short = 'i', long, value_name = "SECONDS", default_value = "0.2", value_parser = interval_seconds)]
    interval: Duration,
    /// --interval in milliseconds (its unit before it took seconds).
    #[arg(long, value_name = "MS", conflicts_with = "interval", value_parser = interval_millis)]
    interval_ms: Option<Duration>,
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
    /// Timing bars: `auto` draws them on a terminal, except in report mode.
    #[arg(long, value_enum, default_value_t = When::Auto)]
    waterfall: When,
    /// Colour: `auto` on a terminal, unless NO_COLOR is set (to anything but "").
    #[arg(long, value_enum, default_value_t = When::Auto)]
    color: When,
}

/// Rounds of report mode (-r, -w) without -c: mtr's.
const REPORT_ROUNDS: u32 = 10;

fn interval_seconds(text: &str) -> Result<Duration, String> {
    seconds::parse_seconds(text, true, "--interval-ms")
}

fn interval_millis(text: &str) -> Result<Duration, String> {
    seconds::parse_millis(text, true)
}

fn timeout_seconds(text: &str) -> Result<Duration, String> {
    seconds::parse_seconds(text, false, "--timeout-ms")
}

fn timeout_millis(text: &str) -> Result<Duration, String> {
    seconds::parse_millis(text, false)
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
    let report_mode = cli.report || cli.wide;
    let rounds = cli
        .count
        .unwrap_or(if report_mode { REPORT_ROUNDS } else { 1 });
    let asked_timeout = cli.timeout.or(cli.timeout_ms);
    let timeout = asked_timeout.unwrap_or_else(|| {
        let en_route =
            probe::names_en_route(&addr, |n| overrides.contains_key(&n.to_ascii_lowercase()));
        probe::default_wait(en_route)
    });
    let opts = run::Options {
        rounds,
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
            timeout: asked_timeout.unwrap_or(probe::BASE_WAIT),
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
        interval: cli.interval_ms.unwrap_or(cli.interval),
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
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    // A terminal that reports no size is still one: COLUMNS may say how wide it is.
    let size = tty.then(|| {
        term::terminal_size(&stdout).unwrap_or(term::TermSize {
            columns: 0,
            rows: 0,
        })
    });
    let on = |w: When, auto: bool| match w {
        When::Auto => auto,
        When::Always => true,
        When::Never => false,
    };
    let no_color = term::no_color_requested(std::env::var_os("NO_COLOR").as_deref());
    let o = RenderOptions {
        color: on(cli.color, tty && !no_color),
        waterfall: on(cli.waterfall, tty && !report_mode).then_some(30),
        width: term::table_width(cli.wide, std::env::var("COLUMNS").ok().as_deref(), size),
        numeric: cli.numeric,
        progress: None,
    };
    // mtr's live view: the table redrawn after every round, on a terminal only.
    let mut live = match size {
        Some(size) if !cli.json && !report_mode && rounds > 1 => {
            Some(term::LiveView::new(std::io::stdout(), size))
        }
        _ => None,
    };
    // Ctrl-C during a run of several rounds ends it after the round in progress, with the
    // table of the rounds done; a second one quits at once.
    let stop = Arc::new(AtomicBool::new(false));
    if rounds > 1 {
        let stop = stop.clone();
        rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
    }
    let mut after_round = |so_far: &TraceReport, done: u32| {
        if let Some(view) = live.as_mut() {
            let progress = RenderOptions {
                progress: Some(done),
                ..o
            };
            view.draw(&render::table(so_far, &progress));
        }
        !stop.load(Ordering::Relaxed)
    };
    let report = rt.block_on(run::run_with_progress(
        &cli.address,
        &addr,
        &opts,
        &mut after_round,
    ));
    if cli.json {
        print!("{}", render::json(&report));
    } else {
        let table = render::table(&report, &o);
        match live {
            Some(view) => view.finish(&table),
            None => print!("{table}"),
        }
    }
    ExitCode::from(report.exit_code())
}
