// `hop`'s command line, included twice: by the binary (src/bin/hop.rs), which parses it, and by
// the library (`hopstack_client::hop_command`), from which the man pages and shell completions
// are generated (`cargo xtask dist`), so they cannot drift from the flags. Names used here
// resolve in both places: a new import goes into hop.rs and into the `hop_cli` module of
// lib.rs.

/// hop: reach services by stack address (`hops:layers+service/path`).
#[derive(Parser, Debug)]
#[command(name = "hop", version = hopstack_version::VERSION, after_help = hopstack_client::cli::EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the SRH (and optionally a whole packet as pcap) a stack address encodes to,
    /// without sending anything.
    #[command(after_help = hopstack_client::cli::EXIT_CODES_HELP)]
    Encode(EncodeArgs),
    #[command(flatten)]
    Client(Box<hopstack_client::cli::ClientCommand>),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Link {
    /// LINKTYPE_RAW (101): packets start at the IPv6 header.
    Raw,
    /// LINKTYPE_ETHERNET (1) with a fake Ethernet header.
    Ethernet,
}

#[derive(Args, Debug)]
struct EncodeArgs {
    /// The stack address, e.g. 'github.com>org>yc:tcp+tls+http+restapiv3/users/list'.
    address: String,
    /// Use ADDR for hop NAME instead of leaving it to the previous hop (like curl
    /// --resolve). The first hop must be a literal or given here: `hop encode` does no DNS.
    #[arg(long = "resolve", value_name = "NAME=ADDR")]
    resolve: Vec<String>,
    /// Source address of the packet written with --pcap (and report address of a probe).
    #[arg(long, value_name = "ADDR", default_value = "::")]
    source: Ipv6Addr,
    /// Write a UDP datagram (default: the address's transport).
    #[arg(long, conflicts_with = "tcp")]
    udp: bool,
    /// Write a TCP SYN (default: the address's transport).
    #[arg(long)]
    tcp: bool,
    /// Encode a probe: O-flag, trace TLV (reports go to --source, port --sport), UDP.
    #[arg(long, conflicts_with = "tcp")]
    probe: bool,
    /// Probe nonce (hex, 32 bits); default: derived from the clock.
    #[arg(long, value_name = "HEX", requires = "probe")]
    nonce: Option<String>,
    /// Destination port (the final hop's hopd listener).
    #[arg(long, default_value_t = DEFAULT_SERVICE_PORT)]
    port: u16,
    /// Source port (and report port of a probe).
    #[arg(long, default_value_t = 49152)]
    sport: u16,
    /// Write a one-packet pcap file of the complete packet.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Link type of the pcap file.
    #[arg(long, value_enum, default_value = "raw")]
    link: Link,
    /// Print only the SRH as one line of hex.
    #[arg(long)]
    hex_only: bool,
}
