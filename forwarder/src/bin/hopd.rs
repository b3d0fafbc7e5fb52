use clap::Parser;

/// hopd: the hopstack forwarder daemon.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    eprintln!("hopd: the forwarder is not implemented yet (see issues 4 and 5)");
    std::process::ExitCode::from(2)
}
