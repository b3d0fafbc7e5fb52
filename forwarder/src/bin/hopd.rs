//! `hopd`: the hopstack forwarder daemon. Runs whichever roles the configuration has tables
//! for (`[border]`, `[final_hop]`), plus the metrics endpoint.
//!
//! - `hopd --config FILE` runs (FILE defaults to `/etc/hopd/hopd.toml`); SIGHUP reloads FILE
//!   (border SIDs, policy, limits) without dropping forwarded packets; SIGTERM/SIGINT stop
//!   cleanly. Under systemd (`Type=notify`) it says READY=1 once every role serves, RELOADING=1
//!   and READY=1 around a reload, a STATUS= line, and WATCHDOG=1 while its packet loops turn.
//! - `hopd check --config FILE` validates FILE and this host and says what to fix.
//! - `hopd stats --config FILE` prints the counters of the running hopd.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hopstack_forwarder::border::{Border, Reloader};
use hopstack_forwarder::config::{self, Config};
use hopstack_forwarder::service_manager::ServiceManager;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

include!("../hopd_cli.rs");

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli.config.as_path();
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hopd: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Check) => check(&cfg, path),
        Some(Command::Stats { nonzero }) => stats(&cfg, nonzero),
        Some(Command::Show { what, json }) => show(&cfg, what, json),
        None => run(cfg, path.to_path_buf()),
    }
}

fn check(cfg: &Config, path: &Path) -> ExitCode {
    println!("ok: {} parses and validates", path.display());
    let report = config::check(cfg);
    for l in &report.lines {
        println!("{l}");
    }
    println!("{} error(s), {} warning(s)", report.errors, report.warnings);
    if report.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn stats(cfg: &Config, nonzero: bool) -> ExitCode {
    let Some(m) = &cfg.metrics else {
        eprintln!("hopd: the configuration has no [metrics] listen address to read counters from");
        return ExitCode::from(2);
    };
    match hopstack_forwarder::border::metrics::fetch(m.listen) {
        Ok(text) => {
            use std::io::Write as _;
            // A closed pipe (`hopd stats | head`) is not an error worth a panic.
            let mut out = std::io::stdout().lock();
            for l in text.lines() {
                if l.starts_with('#') || (nonzero && l.ends_with(" 0")) {
                    continue;
                }
                if writeln!(out, "{l}").is_err() {
                    break;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "hopd: cannot read counters from http://{}/metrics: {e} (is hopd running?)",
                m.listen
            );
            ExitCode::from(1)
        }
    }
}

fn show(cfg: &Config, what: hopstack_forwarder::show::What, json: bool) -> ExitCode {
    let Some(m) = &cfg.metrics else {
        eprintln!("hopd: the configuration has no [metrics] listen address to read the state from");
        return ExitCode::from(2);
    };
    let path = format!("/show/{}", what.as_str());
    let text = match hopstack_forwarder::border::metrics::fetch_path(m.listen, &path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "hopd: cannot read http://{}{path}: {e} (is hopd running?)",
                m.listen
            );
            return ExitCode::from(1);
        }
    };
    if json {
        println!("{text}");
        return ExitCode::SUCCESS;
    }
    match serde_json::from_str(&text) {
        Ok(v) => {
            print!("{}", hopstack_forwarder::show::table(what, &v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hopd: the running hopd answered {path} with something else than JSON: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOPD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|e| {
            eprintln!(
                "hopd: [log] level = {:?}: {e}; using \"info\"",
                cfg.log.level
            );
            tracing_subscriber::EnvFilter::new("info")
        });
    use tracing_subscriber::prelude::*;
    if journal_is_stderr() {
        // Under systemd with stderr to the journal: native fields (PRIORITY from the level,
        // the event's fields as their own journal fields) instead of a text line.
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter)
                .with(journald.with_syslog_identifier("hopd".into()))
                .init();
            return;
        }
    }
    // Colour only on a terminal, and never with NO_COLOR (https://no-color.org).
    use std::io::IsTerminal as _;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
}

/// Whether stderr is the journal's stream: `JOURNAL_STREAM` (set by systemd) names the
/// device and inode of the stream it connected, and stderr is still that stream (not
/// redirected by a wrapper).
fn journal_is_stderr() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

fn run(cfg: Config, path: PathBuf) -> ExitCode {
    init_logging(&cfg);
    // Before anything opens a descriptor: a final hop needs far more than the usual 1024.
    match hopstack_forwarder::limits::raise_open_files() {
        Ok(n) => tracing::info!(open_files = n, "descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hopd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(serve(cfg, path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hopd: {e}");
            ExitCode::from(1)
        }
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

async fn serve(cfg: Config, path: PathBuf) -> Result<(), String> {
    let node_name = cfg.node_name();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    let mut reloader: Option<Reloader> = None;
    let mut shared = None;
    if let Some(b) = cfg.border.clone() {
        let border = Border::start(b, &node_name).map_err(|e| format!("border: {e}"))?;
        reloader = Some(border.reloader());
        shared = Some(border.shared());
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move { border.run(stop).await.map_err(|e| format!("border: {e}")) });
    }
    let mut final_hop_counters = None;
    let mut final_hop_reloader = None;
    let mut final_hop_view = None;
    if let Some(fh) = cfg.final_hop.clone() {
        let final_hop = hopstack_forwarder::final_hop::FinalHop::bind(fh)
            .map_err(|e| format!("final hop: {e}"))?;
        final_hop_counters = Some(final_hop.counters());
        final_hop_reloader = Some(final_hop.reloader());
        final_hop_view = Some(final_hop.view());
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move {
            final_hop.serve(stop).await;
            Ok(())
        });
    }
    if let Some(m) = &cfg.metrics {
        let listener = tokio::net::TcpListener::bind(m.listen)
            .await
            .map_err(|e| format!("metrics: cannot listen on {}: {e}", m.listen))?;
        let render = {
            let shared = shared.clone();
            let view = final_hop_view.clone();
            move |path: &str| -> hopstack_forwarder::border::metrics::Page {
                use hopstack_forwarder::border::metrics::METRICS_TYPE;
                use hopstack_forwarder::show::{What, snapshot};
                if path == "/metrics" || path == "/" {
                    let mut text = String::new();
                    hopstack_forwarder::histogram::build_info(&mut text);
                    if let Some(s) = &shared {
                        text.push_str(&s.render_metrics());
                    }
                    if let Some(v) = &view {
                        text.push_str(&v.render_metrics());
                    }
                    return Some((METRICS_TYPE, text));
                }
                let what = What::from_path(path)?;
                let v = snapshot(what, shared.as_deref(), view.as_ref());
                Some(("application/json", v.to_string()))
            }
        };
        let stop = stopped(stop_rx.clone());
        tracing::info!(listen = %m.listen, "metrics at /metrics");
        tasks.spawn(async move {
            hopstack_forwarder::border::metrics::serve(listener, render, stop)
                .await
                .map_err(|e| format!("metrics: {e}"))
        });
    }

    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    // Debug builds: SIGUSR2 makes every packet loop hang, for the watchdog's tests.
    let mut stall = signal(SignalKind::user_defined2()).map_err(|e| e.to_string())?;
    tracing::info!(node = %node_name, "hopd running");
    // Every role is up: the border's TUN and routes (Border::start), the final hop's and the
    // metrics listeners (bound above).
    let manager = ServiceManager::from_env();
    let status = {
        let shared = shared.clone();
        let final_hop = final_hop_counters.clone();
        move || status_line(shared.as_deref(), final_hop.as_deref())
    };
    match hopstack_forwarder::limits::drop_start_up_capabilities() {
        Ok(d) if !d.is_empty() => tracing::info!(dropped = ?d, "start-up capabilities dropped"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot drop start-up capabilities"),
    }
    manager.ready(&status());
    let mut status_every = tokio::time::interval(STATUS_EVERY);
    let mut watchdog_every = tokio::time::interval(
        manager
            .watchdog_every()
            .unwrap_or(Duration::from_secs(3600)),
    );
    let mut failure = None;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => {
                manager.reloading();
                reload(&path, reloader.as_ref(), final_hop_reloader.as_ref());
                manager.ready(&status());
            }
            _ = stall.recv() => {
                if cfg!(debug_assertions) {
                    tracing::warn!("SIGUSR2 (debug build): every packet loop hangs now");
                    hopstack_forwarder::liveness::global().stall_all();
                }
            }
            _ = status_every.tick() => manager.status(&status()),
            _ = watchdog_every.tick(), if manager.watchdog_every().is_some() => {
                if let Err(stale) = manager.watchdog_if_alive() {
                    tracing::error!(?stale, "packet loops stopped turning: no WATCHDOG=1");
                }
            }
            done = tasks.join_next() => {
                match done {
                    Some(Ok(Ok(()))) => continue,
                    Some(Ok(Err(e))) => { failure = Some(e); break; }
                    Some(Err(e)) => { failure = Some(format!("task failed: {e}")); break; }
                    None => break,
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            failure.get_or_insert(e);
        }
    }
    match failure {
        Some(e) => Err(e),
        None => {
            tracing::info!("hopd stopped");
            Ok(())
        }
    }
}

/// How often the STATUS= line is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// One line of counters for `systemctl status`.
fn status_line(
    border: Option<&hopstack_forwarder::border::Shared>,
    final_hop: Option<&hopstack_forwarder::final_hop::counters::Counters>,
) -> String {
    let mut parts = Vec::new();
    if let Some(b) = border {
        let c = b.counters();
        let dropped: u64 = c.dropped.iter().sum();
        parts.push(format!(
            "border: {} forwarded, {dropped} dropped, {} names bound",
            c.forwarded, c.names_bound
        ));
    }
    if let Some(f) = final_hop {
        parts.push(format!("final hop: {}", f.summary()));
    }
    if parts.is_empty() {
        return "serving metrics only".into();
    }
    parts.join("; ")
}

/// SIGHUP: re-read the file; a bad file keeps the running configuration.
fn reload(
    path: &Path,
    reloader: Option<&Reloader>,
    final_hop: Option<&hopstack_forwarder::final_hop::Reloader>,
) {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(%e, "SIGHUP: keeping the running configuration");
            return;
        }
    };
    match (reloader, cfg.border) {
        (Some(r), Some(b)) => match r.apply(b) {
            Ok(()) => {
                tracing::info!(file = %path.display(), "SIGHUP: border configuration reloaded")
            }
            Err(e) => tracing::error!(%e, "SIGHUP: keeping the running border configuration"),
        },
        (None, Some(_)) => {
            tracing::warn!("SIGHUP: [border] was added; restart hopd to start the border role")
        }
        (Some(_), None) => {
            tracing::warn!("SIGHUP: [border] was removed; restart hopd to stop the border role")
        }
        (None, None) => {}
    }
    match (final_hop, cfg.final_hop) {
        (Some(r), Some(f)) => match r.apply(f) {
            Ok(d) => tracing::info!(
                added = ?d.added,
                changed = ?d.changed,
                removed = ?d.removed,
                "SIGHUP: final hop services reloaded"
            ),
            Err(e) => tracing::error!(%e, "SIGHUP: keeping the running final hop configuration"),
        },
        (None, Some(_)) => {
            tracing::warn!("SIGHUP: [final_hop] was added; restart hopd to start the final hop")
        }
        (Some(_), None) => {
            tracing::warn!("SIGHUP: [final_hop] was removed; restart hopd to stop the final hop")
        }
        (None, None) => {}
    }
}
