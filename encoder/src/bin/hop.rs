use clap::Parser;

/// hop: send requests to stack addresses.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    address: String,
}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    eprintln!("hop: not implemented yet (see issue 2)");
    std::process::ExitCode::from(2)
}
