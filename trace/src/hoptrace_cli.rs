// `hoptrace`'s command line, included twice: by the binary (src/main.rs), which parses it,
// and by the library (`hopstack_trace::hoptrace_command`), from which the man page and shell
// completions are generated (`cargo xtask dist`), so they cannot drift from the flags. Names
// used here resolve in both places: a new import goes into main.rs and into the
// `hoptrace_cli` module of lib.rs.

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
    /// When the first probe meets only silence (the path may drop routing headers), do not
    /// probe again with the packets carried in UDP to the first hop's udp_ingress port.
    #[arg(long)]
    no_udp_fallback: bool,
    /// The first hop's udp_ingress port, for that fallback.
    #[arg(long, value_name = "PORT", default_value_t = 7444)]
    udp_ingress_port: u16,
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
