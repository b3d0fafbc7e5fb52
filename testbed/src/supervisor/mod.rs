//! The supervisor: `hopbed __supervise PLAN.json`, the process that owns a running testbed.
//!
//! Process tree (every arrow is fork, every box dies when its parent dies: PR_SET_PDEATHSIG):
//!
//! ```text
//!  test process / `hopbed up`
//!    └─ supervisor   unshare(USER|NS|NET): root in its own user namespace, private mounts,
//!         │          an empty staging netns (veths are created straight into the nodes)
//!         ├─ holder "client"      unshare(NET|NS|UTS) + pause(): owns the node's namespaces
//!         ├─ holder "github.com"  ...
//!         ├─ hopbed __dns (per network, inside the DNS node's namespaces)
//!         └─ topology processes (only with `hopbed up`; tests start them from the library)
//! ```
//!
//! The supervisor must be single-threaded when it calls `unshare(CLONE_NEWUSER)`, which is why
//! it is a separate executable started fresh (no runtime, no threads) rather than a thread of
//! the test. Namespaces exist only as long as a process is inside them and none is ever bound to
//! a file, so when the supervisor and its holders are gone nothing is left: that is the whole
//! teardown story, also after a panic, SIGKILL or Ctrl-C of the test.
//!
//! Protocol with the starter: the supervisor prints `ready` or `error <text>` as one line on
//! stdout. In library mode it then reads stdin until EOF (the starter closed it or died) and
//! tears down; in daemon mode it waits for SIGTERM/SIGINT/SIGHUP.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

mod nodes;

use crate::ns;
use crate::topology::Topology;
use nodes::{
    add_routes, become_root_in_userns, configure_nodes, create_links, fork_holder,
    run_node_commands,
};

/// What the starter asks the supervisor to build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The validated topology (interface names filled in).
    pub topology: Topology,
    /// Run directory: per-node files and logs, DNS zones, state.
    pub run_dir: PathBuf,
    /// Directory of the topology file (`{dir}`).
    pub topology_dir: PathBuf,
    /// Where `{bin:NAME}` binaries live.
    pub bin_dir: PathBuf,
    /// `hopbed up`: start the topology's processes here and wait for a signal.
    pub daemon: bool,
    /// Library mode: leave the run directory (logs) after teardown. Otherwise the supervisor
    /// removes it, so a test process killed outright leaves no directory either.
    #[serde(default)]
    pub keep_run_dir: bool,
    /// The starter is root and will write an identity uid/gid map for us (`map` / `mapped`
    /// handshake on stdout/stdin) instead of the single-id map an unprivileged user gets.
    #[serde(default)]
    pub identity_map: bool,
}

/// A running testbed, as written to `state.json` in the run directory.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct State {
    /// Supervisor pid.
    pub supervisor: u32,
    /// Node name → holder pid (its `/proc/PID/ns/*` are the node's namespaces).
    pub nodes: BTreeMap<String, u32>,
    /// Network name → DNS server pid.
    pub dns: BTreeMap<String, u32>,
    /// `node/process` → pid, for processes the supervisor started (daemon mode).
    pub processes: BTreeMap<String, u32>,
    /// Optional processes not started, with the reason.
    pub skipped: Vec<String>,
    /// Milliseconds from supervisor start to ready.
    pub setup_ms: u64,
}

/// Where iproute2 lives; PATH of an unprivileged user often lacks the sbin directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.exists().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Per-node files under `run_dir/nodes/<name>/`.
pub fn node_dir(run_dir: &Path, node: &str) -> PathBuf {
    run_dir.join("nodes").join(node)
}

/// Zone file of a network.
pub fn zone_file(run_dir: &Path, network: &str) -> PathBuf {
    run_dir.join("dns").join(format!("{network}.json"))
}

/// Substitute `{bin:NAME}`, `{dir}` and `{run}` in one argument.
pub fn expand(arg: &str, bin_dir: &Path, topo_dir: &Path, node_run: &Path) -> String {
    let mut out = arg
        .replace("{dir}", &topo_dir.to_string_lossy())
        .replace("{run}", &node_run.to_string_lossy());
    while let Some(start) = out.find("{bin:") {
        let Some(len) = out[start..].find('}') else {
            break;
        };
        let name = &out[start + 5..start + len];
        let path = bin_dir.join(name).to_string_lossy().into_owned();
        out.replace_range(start..start + len + 1, &path);
    }
    out
}

/// Write a process's templates into its node's run directory, expanded.
pub fn write_templates(
    p: &crate::topology::Process,
    bin_dir: &Path,
    topo_dir: &Path,
    node_run: &Path,
) -> std::io::Result<()> {
    for (dest, src) in &p.templates {
        let src = Path::new(&expand(src, bin_dir, topo_dir, node_run)).to_owned();
        let src = if src.is_relative() {
            topo_dir.join(src)
        } else {
            src
        };
        let text = std::fs::read_to_string(&src).map_err(|e| {
            std::io::Error::new(e.kind(), format!("template {}: {e}", src.display()))
        })?;
        std::fs::write(
            node_run.join(dest),
            expand(&text, bin_dir, topo_dir, node_run),
        )?;
    }
    Ok(())
}

/// Build everything, report, wait, tear down. Returns the process exit code.
pub fn supervise(plan_file: &Path) -> i32 {
    let t0 = std::time::Instant::now();
    let mut out = std::io::stdout();
    let mut children: Vec<u32> = Vec::new();
    let mut remove_dir = None;
    let result = (|| -> anyhow::Result<()> {
        let plan: Plan = serde_json::from_slice(
            &std::fs::read(plan_file).with_context(|| format!("read {}", plan_file.display()))?,
        )
        .context("parse plan")?;
        let topo = &plan.topology;
        if !plan.daemon {
            // Ctrl-C reaches the whole foreground process group, us included. Outlive the
            // test process instead: its death closes our stdin, and then we tear down and
            // remove the run directory, which a SIGINT-killed supervisor would leave behind.
            // SAFETY: setting a signal disposition to SIG_IGN.
            unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
        }
        let ip =
            find_program("ip").context("iproute2 `ip` not found (apt-get install iproute2)")?;
        become_root_in_userns(plan.identity_map, &mut out)?;

        let mut state = State {
            // SAFETY: getpid cannot fail.
            supervisor: unsafe { libc::getpid() } as u32,
            ..Default::default()
        };
        for n in &topo.nodes {
            let pid = fork_holder(&n.name, &node_dir(&plan.run_dir, &n.name))?;
            children.push(pid);
            state.nodes.insert(n.name.clone(), pid);
        }

        create_links(&plan, &ip, &state)?;

        configure_nodes(&plan, &ip, &state)?;
        add_routes(&plan, &ip, &mut state)?;
        run_node_commands(&plan, &state)?;

        start_dns_servers(&plan, &mut state, &mut children)?;

        if plan.daemon {
            start_processes(&plan, &mut state, &mut children)?;
            check_started(topo, &plan.run_dir, &mut state)?;
        }

        state.setup_ms = t0.elapsed().as_millis() as u64;
        ns::write_atomic(
            &plan.run_dir.join("state.json"),
            &serde_json::to_vec_pretty(&state)?,
        )?;
        writeln!(out, "ready")?;
        out.flush()?;

        if plan.daemon {
            wait_for_signal();
        } else {
            if !plan.keep_run_dir {
                remove_dir = Some(plan.run_dir.clone());
            }
            // EOF on stdin: the starter closed it (teardown) or died (the kernel closed it).
            let mut sink = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        }
        Ok(())
    })();
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(out, "error {}", format!("{e:#}").replace('\n', "\\n"));
            let _ = out.flush();
            eprintln!("hopbed supervisor: {e:#}");
            1
        }
    };
    teardown(&children);
    if let Some(d) = remove_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    code
}

/// DNS servers, one per view, inside their node; returns once each has said `ready`.
fn start_dns_servers(
    plan: &Plan,
    state: &mut State,
    children: &mut Vec<u32>,
) -> anyhow::Result<()> {
    let topo = &plan.topology;
    let me = std::env::current_exe().context("current_exe")?;
    let mut dns = Vec::new();
    for net in &topo.networks {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(plan.run_dir.join("dns").join(format!("{}.log", net.name)))?;
        let mut c = Command::new(&me);
        c.arg("__dns")
            .arg(zone_file(&plan.run_dir, &net.name))
            .arg(net.dns.address.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        ns::enter(&mut c, state.nodes[&net.dns.node], false)?;
        let child = c.spawn().context("spawn DNS server")?;
        children.push(child.id());
        state.dns.insert(net.name.clone(), child.id());
        dns.push((net, child));
    }
    for (net, mut child) in dns {
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("dns stdout")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            let log =
                std::fs::read_to_string(plan.run_dir.join("dns").join(format!("{}.log", net.name)))
                    .unwrap_or_default();
            bail!(
                "DNS server of network `{}` on [{}]:53 (node `{}`) did not start: {}",
                net.name,
                net.dns.address,
                net.dns.node,
                log.trim()
            );
        }
    }

    Ok(())
}

/// The topology's autostart processes (`hopbed up`); a missing optional program is skipped.
fn start_processes(plan: &Plan, state: &mut State, children: &mut Vec<u32>) -> anyhow::Result<()> {
    let topo = &plan.topology;
    for n in &topo.nodes {
        let dir = node_dir(&plan.run_dir, &n.name);
        for p in n.process.iter().filter(|p| p.autostart) {
            let argv: Vec<String> = p
                .cmd
                .iter()
                .map(|a| expand(a, &plan.bin_dir, &plan.topology_dir, &dir))
                .collect();
            let Some(prog) = find_program(&argv[0]) else {
                let why = format!("{}/{}: `{}` does not exist", n.name, p.name, argv[0]);
                if p.optional {
                    state.skipped.push(why);
                    continue;
                }
                bail!("{why}");
            };
            write_templates(p, &plan.bin_dir, &plan.topology_dir, &dir)?;
            let log = std::fs::File::options()
                .create(true)
                .append(true)
                .open(dir.join(format!("{}.log", p.name)))?;
            let ex = |a: &str| expand(a, &plan.bin_dir, &plan.topology_dir, &dir);
            let mut c = Command::new(prog);
            c.args(&argv[1..])
                .envs(p.env.iter().map(|(k, v)| (k, ex(v))))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            let cwd = p.cwd.as_deref().map(|c| PathBuf::from(ex(c)));
            ns::enter_in(
                &mut c,
                state.nodes[&n.name],
                false,
                Some(cwd.as_deref().unwrap_or(&dir)),
            )?;
            let child = c.spawn().with_context(|| format!("start {argv:?}"))?;
            children.push(child.id());
            state
                .processes
                .insert(format!("{}/{}", n.name, p.name), child.id());
        }
    }
    Ok(())
}

/// How long `hopbed up` watches the autostart processes before it says the testbed is up:
/// long enough for a daemon that cannot open its device or bind its port to have died.
const STARTUP_GRACE: Duration = Duration::from_millis(500);

/// Fails `hopbed up` when an autostart process exited during start-up, with its exit status
/// and the last lines of its log; an optional one is listed as skipped instead, and why.
fn check_started(topo: &Topology, run_dir: &Path, state: &mut State) -> anyhow::Result<()> {
    if state.processes.is_empty() {
        return Ok(());
    }
    std::thread::sleep(STARTUP_GRACE);
    let mut exited = Vec::new();
    for (key, &pid) in &state.processes {
        let mut status = 0;
        // SAFETY: polling our own child without blocking.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if r == pid as libc::pid_t {
            exited.push((key.clone(), status));
        }
    }
    for (key, status) in exited {
        state.processes.remove(&key);
        let (node, name) = key.split_once('/').unwrap_or((&key, ""));
        let log = std::fs::read_to_string(node_dir(run_dir, node).join(format!("{name}.log")))
            .unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let how = if libc::WIFEXITED(status) {
            format!("exit status {}", libc::WEXITSTATUS(status))
        } else {
            format!("signal {}", libc::WTERMSIG(status))
        };
        let optional = topo
            .nodes
            .iter()
            .find(|n| n.name == node)
            .and_then(|n| n.process.iter().find(|p| p.name == name))
            .is_some_and(|p| p.optional);
        let last = tail.last().copied().unwrap_or("(no output)");
        if optional {
            state
                .skipped
                .push(format!("{key} exited during start-up ({how}): {last}"));
            continue;
        }
        bail!(
            "process `{key}` exited during start-up ({how}); the last lines of its log:\n  {}",
            if tail.is_empty() {
                "(no output)".to_owned()
            } else {
                tail.join("\n  ")
            }
        );
    }
    Ok(())
}

fn wait_for_signal() {
    // SAFETY: standard sigset manipulation on a local set; sigwait returns the signal.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}

/// Kill and reap every child, so that when we exit no process holds a namespace.
fn teardown(children: &[u32]) {
    for &pid in children {
        // SAFETY: signalling our own children.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    for &pid in children {
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
    }
}
