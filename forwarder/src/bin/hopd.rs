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
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOPD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let Some(path) = cli.config else {
        eprintln!("hopd: --config FILE is required");
        return std::process::ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("hopd: cannot read {}: {e}", path.display());
            return std::process::ExitCode::from(2);
        }
    };
    let cfg = match hopstack_forwarder::config::Config::from_toml(&text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hopd: {}: {e}", path.display());
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hopd: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let Some(fh) = cfg.final_hop else {
        eprintln!("hopd: the configuration enables no role (add a [final_hop] table)");
        return std::process::ExitCode::from(2);
    };
    let result = rt.block_on(hopstack_forwarder::final_hop::run(fh, shutdown_signal()));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hopd: final hop: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
