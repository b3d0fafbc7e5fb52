// `hopd`'s command line, included twice: by the binary (src/bin/hopd.rs), which parses it,
// and by the library (`hopstack_forwarder::hopd_command`), from which the man page and shell
// completions are generated (`cargo xtask dist`), so they cannot drift from the flags. Names
// used here resolve in both places: a new import goes into hopd.rs and into the `hopd_cli`
// module of lib.rs.

/// hopd: the hopstack forwarder daemon.
#[derive(Parser, Debug)]
#[command(name = "hopd", version = hopstack_version::VERSION, about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate the configuration and this host (sysctls, TUN, resolver) and say what to fix.
    Check,
    /// Print the counters of the running hopd (from its [metrics] endpoint).
    Stats {
        /// Only the samples that are not zero.
        #[arg(long)]
        nonzero: bool,
    },
    /// Show the live state of the running hopd (from its [metrics] endpoint): the name
    /// cache, names being resolved, services, UDP sessions or SIDs.
    Show {
        what: hopstack_forwarder::show::What,
        /// The JSON the running hopd serves, instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Where hopd looks for its configuration without `--config`.
const DEFAULT_CONFIG: &str = "/etc/hopd/hopd.toml";
