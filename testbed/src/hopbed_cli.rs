// `hopbed`'s command line, included twice: by the binary (src/bin/hopbed.rs), which parses it,
// and by the library (`hopstack_testbed::hopbed_command`), from which the man page and shell
// completions are generated (`cargo xtask dist`), so they cannot drift from the flags. Names
// used here resolve in both places: a new import goes into hopbed.rs and into the
// `hopbed_cli` module of lib.rs.

/// Rootless network-namespace topologies with per-network DNS.
#[derive(Parser, Debug)]
#[command(name = "hopbed", version = hopstack_version::VERSION, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build the topology in FILE and leave it running in the background.
    Up {
        /// Topology file (TOML).
        file: PathBuf,
    },
    /// Run a command on a node of a running testbed (`hopbed exec client -- ping -6 org`).
    Exec {
        /// Testbed name (default: the only one running).
        #[arg(long)]
        name: Option<String>,
        /// Node.
        node: String,
        /// Command and arguments (default: $SHELL).
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Tear a running testbed down (default: the only one running).
    Down {
        /// Testbed name.
        name: Option<String>,
    },
    /// List running testbeds and their nodes.
    Status,
    /// Make a DNS name fail in one network's view: nxdomain, servfail, timeout, or clear.
    DnsFault {
        /// Testbed name (default: the only one running).
        #[arg(long)]
        name: Option<String>,
        /// Network (DNS view).
        network: String,
        /// The DNS name.
        dns_name: String,
        /// nxdomain | servfail | timeout | clear
        fault: String,
    },
    /// Take the link between two nodes down or up.
    Link {
        /// Testbed name (default: the only one running).
        #[arg(long)]
        name: Option<String>,
        /// One end.
        a: String,
        /// The other end.
        b: String,
        /// up | down
        state: String,
    },
    /// Which kernel SRv6 features this machine has (tried in a throw-away namespace), with
    /// HOPSTACK_KERNEL_FEATURES applied. Exit 0 when every feature is there, 1 otherwise.
    Features {
        /// One `name=yes|no` line per feature, for scripts.
        #[arg(long)]
        short: bool,
    },
    /// Start three-hop.toml, run `hop get` and `hoptrace` on github.com>org>yc from the client,
    /// then tear down.
    Demo {
        /// Topology (default: the shipped three-hop.toml).
        file: Option<PathBuf>,
    },
}
