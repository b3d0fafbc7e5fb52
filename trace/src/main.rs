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

include!("hoptrace_cli.rs");

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
                client_cert: None,
            },
            ..Default::default()
        },
        no_layers: cli.no_layers,
        interval: cli.interval_ms.unwrap_or(cli.interval),
        udp_ingress_port: (!cli.no_udp_fallback).then_some(cli.udp_ingress_port),
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
