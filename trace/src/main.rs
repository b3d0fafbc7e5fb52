use clap::Parser;

/// hoptrace: per-hop, per-layer diagnostics for a stack address.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Stack address, e.g. 'github.com>org>yc:tcp+tls+http+restapiv3/users/list'.
    address: String,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match hopstack_encoder::address::StackAddress::parse(&cli.address) {
        Ok(_) => {
            eprintln!("hoptrace: tracing is not implemented yet (see issue 7)");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("{}", e.render(&cli.address));
            std::process::ExitCode::from(64)
        }
    }
}
