//! `hopbed`: bring testbed topologies up and down, run commands on their nodes, inject faults,
//! and run the end-to-end demo.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hopstack_testbed::{DnsFault, Testbed, run_base};

include!("../hopbed_cli.rs");

fn main() -> ExitCode {
    // The hidden modes come before clap and before anything that could start a thread: the
    // supervisor must be single-threaded when it unshares its user namespace.
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("__supervise") if args.len() == 3 => {
            return ExitCode::from(
                hopstack_testbed::supervisor::supervise(Path::new(&args[2])) as u8
            );
        }
        Some("__dns") if args.len() == 4 => {
            let addr = match args[3].parse() {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("hopbed __dns: bad address {}: {e}", args[3]);
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = hopstack_testbed::dns::serve(Path::new(&args[2]), addr) {
                eprintln!("hopbed __dns: {e:#}");
                return ExitCode::from(1);
            }
            return ExitCode::SUCCESS;
        }
        Some("__resolve") if args.len() == 3 => {
            let r = hopstack_testbed::dns::resolve_system(&args[2]).map(|addrs| (None, addrs));
            return print_answer(r);
        }
        Some("__ping6") if args.len() == 3 => {
            let r = args[2]
                .parse()
                .map_err(anyhow::Error::from)
                .and_then(|a| hopstack_testbed::probe::ping6(a, std::time::Duration::from_secs(2)));
            return match r {
                Ok(rtt) => {
                    println!("{}us", rtt.as_micros());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e:#}");
                    ExitCode::from(1)
                }
            };
        }
        Some(mode @ ("__tcp-echo" | "__udp-echo")) if args.len() == 3 => {
            let serve = match mode {
                "__tcp-echo" => hopstack_testbed::probe::tcp_echo,
                _ => hopstack_testbed::probe::udp_echo,
            };
            let r = args[2].parse().map_err(anyhow::Error::from).and_then(serve);
            eprintln!(
                "{}: {:#}",
                mode.trim_start_matches('_'),
                r.err().map(|e| e.to_string()).unwrap_or_default()
            );
            return ExitCode::from(1);
        }
        Some("__dns-tcp") if args.len() == 4 => {
            let r = args[2]
                .parse()
                .map_err(anyhow::Error::from)
                .and_then(|a| hopstack_testbed::dns::query_tcp(a, &args[3]));
            return print_answer(r.map(|(rcode, addrs)| (Some(rcode.to_string()), addrs)));
        }
        Some("__http") if args.len() == 4 => {
            let r = args[2]
                .parse()
                .map_err(anyhow::Error::from)
                .and_then(|a| hopstack_testbed::probe::http_serve(a, Path::new(&args[3])));
            eprintln!(
                "http: {:#}",
                r.err().map(|e| e.to_string()).unwrap_or_default()
            );
            return ExitCode::from(1);
        }
        Some("__h3") if args.len() == 6 => {
            let r = args[2].parse().map_err(anyhow::Error::from).and_then(|a| {
                hopstack_testbed::h3_server::serve(
                    a,
                    Path::new(&args[3]),
                    Path::new(&args[4]),
                    Path::new(&args[5]),
                )
            });
            eprintln!(
                "h3: {:#}",
                r.err().map(|e| e.to_string()).unwrap_or_default()
            );
            return ExitCode::from(1);
        }
        Some("__udp-send") if args.len() == 4 => {
            let r = args[2].parse().map_err(anyhow::Error::from).and_then(|a| {
                hopstack_testbed::probe::udp_send(a, &args[3], std::time::Duration::from_secs(2))
            });
            return match r {
                Ok(reply) => {
                    println!("{reply}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e:#}");
                    ExitCode::from(1)
                }
            };
        }
        _ => {}
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hopbed: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The single running testbed, or the named one.
fn pick(name: Option<String>) -> anyhow::Result<Testbed> {
    if let Some(n) = name {
        return Ok(Testbed::attach(&n)?);
    }
    let running = running();
    match running.as_slice() {
        [one] => Ok(Testbed::attach(one)?),
        [] => anyhow::bail!(
            "no testbed is up (in {}); `hopbed up FILE` first",
            run_base().display()
        ),
        many => anyhow::bail!(
            "several testbeds are up ({}); say which with --name",
            many.join(", ")
        ),
    }
}

fn running() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(run_base())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("state.json").exists() && e.path().join("plan.json").exists())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let tb = Testbed::attach(&name).ok()?;
            // Only daemons: library-mode run dirs belong to tests in progress.
            let daemon = std::fs::read_to_string(e.path().join("plan.json"))
                .is_ok_and(|p| p.contains("\"daemon\": true"));
            (daemon
                && hopstack_testbed::ns::alive(
                    tb.node_pid(&tb.topology().nodes.first()?.name).ok()?,
                ))
            .then_some(name)
        })
        .collect();
    v.sort();
    v
}

fn describe(tb: &Testbed) {
    let t = tb.topology();
    println!(
        "testbed `{}` is up (run dir {})",
        t.name,
        tb.run_dir().display()
    );
    for n in &t.nodes {
        let view = n.network.as_deref().unwrap_or("-");
        println!(
            "  node {:<12} dns view {:<10} pid {}",
            n.name,
            view,
            tb.node_pid(&n.name).unwrap_or(0)
        );
        for (ifname, addrs, peer) in t.interfaces(&n.name) {
            println!("      {ifname:<6} -> {peer:<12} {}", addrs.join(" "));
        }
        for a in &n.addresses {
            println!("      lo                  {a}");
        }
    }
    for net in &t.networks {
        let recs: Vec<String> = net
            .records
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            })
            .collect();
        println!(
            "  dns view {:<10} server [{}]:53 on {}: {}",
            net.name,
            net.dns.address,
            net.dns.node,
            recs.join(" ")
        );
    }
    for s in tb.skipped() {
        println!("  skipped: {s}");
    }
    println!(
        "run a command on a node:  hopbed exec {} -- ip -6 route",
        t.nodes.first().map(|n| n.name.as_str()).unwrap_or("NODE")
    );
    println!("tear down:                hopbed down {}", t.name);
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Up { file } => {
            let t0 = std::time::Instant::now();
            let tb = Testbed::builder(&file).start_daemon()?;
            describe(&tb);
            println!("(up in {} ms)", t0.elapsed().as_millis());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Exec { name, node, cmd } => {
            let tb = pick(name)?;
            let cmd = if cmd.is_empty() {
                vec![std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into())]
            } else {
                cmd
            };
            let mut c = tb.command(&node, &cmd[0])?;
            c.args(&cmd[1..]);
            // exec only returns on failure.
            let e = c.exec();
            anyhow::bail!("exec {:?} on `{node}`: {e}", cmd)
        }
        Cmd::Down { name } => {
            let tb = pick(name)?;
            let n = tb.topology().name.clone();
            tb.down()?;
            println!("testbed `{n}` is down");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Features { short } => {
            use hopstack_testbed::kernel::{Feature, Features};
            let f = Features::get();
            if short {
                for feature in Feature::ALL {
                    let yes = if f.has(feature) { "yes" } else { "no" };
                    println!("{}={yes}", feature.name());
                }
            } else {
                print!("{f}");
            }
            if Feature::ALL.into_iter().all(|x| f.has(x)) {
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::from(1))
            }
        }
        Cmd::Status => {
            let r = running();
            if r.is_empty() {
                println!("no testbed is up");
            }
            for n in r {
                describe(&Testbed::attach(&n)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::DnsFault {
            name,
            network,
            dns_name,
            fault,
        } => {
            let tb = pick(name)?;
            let f = if fault == "clear" {
                None
            } else {
                Some(fault.parse::<DnsFault>().map_err(anyhow::Error::msg)?)
            };
            tb.dns_fault(&network, &dns_name, f)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Link { name, a, b, state } => {
            let tb = pick(name)?;
            match state.as_str() {
                "up" => tb.link_up(&a, &b)?,
                "down" => tb.link_down(&a, &b)?,
                s => anyhow::bail!("link state `{s}`: up or down"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Demo { file } => demo(file),
    }
}

const ADDRESS: &str = "github.com>org>yc:tcp+tls+http+restapiv3/users/list";

fn demo(file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let file = file
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/three-hop.toml"));
    let topo_dir = file.parent().unwrap_or(Path::new(".")).to_owned();
    let t0 = std::time::Instant::now();
    let tb = Testbed::start(&file)?;
    println!("== testbed up in {} ms", t0.elapsed().as_millis());
    describe(&tb);
    println!("\n== each node resolves the names of its own network only");
    for node in ["client", "github.com", "org", "yc"] {
        let mut row = Vec::new();
        for name in ["github.com", "org", "yc"] {
            let r = match tb.resolve(node, name) {
                Ok(a) => a
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                Err(_) => "NXDOMAIN".to_owned(),
            };
            row.push(format!("{name}={r:<10}"));
        }
        println!("  {node:<11} {}", row.join("  "));
    }
    let mut missing: Vec<String> = tb
        .skipped()
        .iter()
        .map(|s| format!("skipped process {s}"))
        .collect();
    // Processes that died at start (a missing config, no /dev/net/tun, ...) are the usual
    // reason for a broken path: say so with their last words.
    std::thread::sleep(std::time::Duration::from_millis(200));
    for n in &tb.topology().nodes {
        for p in &n.process {
            if let Ok(Some(status)) = tb.exited(&n.name, &p.name) {
                let log = tb.logs(&n.name, &p.name);
                let last = log.lines().rev().take(3).collect::<Vec<_>>();
                let last: Vec<&str> = last.into_iter().rev().collect();
                println!(
                    "  {}/{} exited ({status}): {}",
                    n.name,
                    p.name,
                    last.join(" | ")
                );
                missing.push(format!(
                    "{}/{} exited: {}",
                    n.name,
                    p.name,
                    last.join(" | ")
                ));
            }
        }
    }
    let bin_dir =
        hopstack_testbed::default_bin_dir(&hopstack_testbed::hopbed_exe().unwrap_or_default());
    let cacert = topo_dir
        .join("three-hop/ca.pem")
        .to_string_lossy()
        .into_owned();
    let steps: [(&str, &str, Vec<&str>); 2] = [
        (
            "hop get",
            "hop",
            vec!["get", "--no-cache", "--cacert", &cacert, ADDRESS],
        ),
        ("hoptrace", "hoptrace", vec!["--cacert", &cacert, ADDRESS]),
    ];
    for (step, prog, args) in steps {
        println!("\n== {step} '{ADDRESS}' on client");
        let p = bin_dir.join(prog);
        if !p.is_file() {
            println!(
                "  MISSING: {} is not built (cargo build --workspace --bins)",
                p.display()
            );
            missing.push(format!("{prog} not built"));
            continue;
        }
        let mut argv = vec![p.to_string_lossy().into_owned()];
        argv.extend(args.iter().map(|s| s.to_string()));
        // hopd installs its TUN and routes a moment after it starts: retry briefly.
        let t = std::time::Instant::now();
        let out = loop {
            let out = tb.exec("client", &argv)?;
            if out.status.success() || t.elapsed() > std::time::Duration::from_secs(5) {
                break out;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        };
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            println!("  FAILED: {step} exited with {}", out.status);
            missing.push(format!("{step} failed ({})", out.status));
        }
    }
    let t1 = std::time::Instant::now();
    if !missing.is_empty() {
        tb.print_logs();
    }
    drop(tb);
    println!("\n== torn down in {} ms", t1.elapsed().as_millis());
    if missing.is_empty() {
        println!("demo complete: the request crossed github.com and org by name and came back");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("demo INCOMPLETE, missing pieces:");
        for m in &missing {
            println!("  - {m}");
        }
        Ok(ExitCode::from(3))
    }
}

/// A DNS helper mode's answer on stdout (the response code first, when there is one, then one
/// address a line), or its error on stderr.
fn print_answer<A: std::fmt::Display>(r: anyhow::Result<(Option<String>, Vec<A>)>) -> ExitCode {
    match r {
        Ok((rcode, addrs)) => {
            if let Some(rcode) = rcode {
                println!("{rcode}");
            }
            for a in addrs {
                println!("{a}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(1)
        }
    }
}
