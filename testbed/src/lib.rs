//! Rootless network-namespace testbed: topologies of nodes joined by veth pairs, each network
//! with its own DNS view, real binaries running on the nodes.
//!
//! ```no_run
//! use hopstack_testbed::Testbed;
//! let tb = Testbed::start("testbed/topologies/three-hop.toml").unwrap();
//! let out = tb.exec_ok("client", ["ping", "-6", "-c1", "fd00:1::2"]).unwrap();
//! assert_eq!(tb.resolve("github.com", "org").unwrap(), vec!["fc00:2::e".parse::<std::net::IpAddr>().unwrap()]);
//! drop(tb); // tears everything down
//! # let _ = out;
//! ```
//!
//! How it works (see `supervisor` for the process tree): `Testbed::start` runs
//! `hopbed __supervise` which becomes root in a new user namespace and creates one holder
//! process per node; `exec`/`spawn` fork a child that `setns`es into the node's user, mount,
//! network and UTS namespaces and then executes the real program. Works as root and as an
//! unprivileged user. The format of topology files is in `docs/testbed.md`.

pub mod dns;
pub mod fixture;
pub mod h3_server;
pub mod harness;
mod launch;
mod network;
pub mod ns;
pub mod probe;
mod process;
#[doc(hidden)]
pub mod supervisor;
pub mod topology;
pub mod userns;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use dns::DnsFault;
/// The kernel feature probe ([`kernel::Features::get`]), shared with hopd.
pub use hopstack_kernel as kernel;
pub use launch::{Builder, default_bin_dir, hopbed_exe, run_base};
pub use supervisor::State;
pub use topology::{Topology, TopologyError};

use process::{Proc, Spawner};
use supervisor::Plan;

/// Everything that can go wrong driving a testbed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The topology file is wrong.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A local file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The supervisor could not build the topology.
    #[error("testbed start failed: {message}\n(supervisor log: {log})")]
    Start {
        /// The supervisor's explanation.
        message: String,
        /// Its log file.
        log: PathBuf,
    },
    /// No node with that name.
    #[error("no node named `{0}` in this testbed")]
    UnknownNode(String),
    /// No network with that name.
    #[error("no network named `{0}` in this testbed")]
    UnknownNetwork(String),
    /// No process with that name on that node.
    #[error("no process `{name}` on node `{node}`")]
    UnknownProcess {
        /// Node.
        node: String,
        /// Process name.
        name: String,
    },
    /// No link between those nodes.
    #[error("no link between `{0}` and `{1}`")]
    UnknownLink(String, String),
    /// A program to run does not exist.
    #[error("{context}: program `{program}` not found (built? `cargo build --workspace --bins`)")]
    MissingProgram {
        /// Which process/command wanted it.
        context: String,
        /// The path or name looked for.
        program: String,
    },
    /// A command ran and failed.
    #[error("on node `{node}`: {argv:?} failed ({status}):\n{stderr}{stdout}")]
    Command {
        /// Node.
        node: String,
        /// argv.
        argv: Vec<String>,
        /// Exit status.
        status: ExitStatus,
        /// Captured stdout.
        stdout: String,
        /// Captured stderr.
        stderr: String,
    },
    /// The kernel or machine lacks a feature.
    #[error("{what} is not available here: {why}")]
    Unsupported {
        /// The feature.
        what: String,
        /// Why not.
        why: String,
    },
    /// Resolution failed on a node.
    #[error("resolving `{name}` on node `{node}`: {message}")]
    Resolve {
        /// Node.
        node: String,
        /// Name.
        name: String,
        /// The resolver's error.
        message: String,
    },
}

fn io<T>(what: impl Into<String>, r: std::io::Result<T>) -> Result<T, Error> {
    r.map_err(|source| Error::Io {
        what: what.into(),
        source,
    })
}

/// A running testbed. Dropping it tears everything down (processes, nodes, links, DNS).
pub struct Testbed {
    topo: Topology,
    topo_dir: PathBuf,
    run_dir: PathBuf,
    bin_dir: PathBuf,
    hopbed: PathBuf,
    state: State,
    supervisor: Option<Child>,
    sup_stdin: Option<ChildStdin>,
    procs: Mutex<BTreeMap<(String, String), Proc>>,
    /// Created on first use: `hopbed exec` execs in place and must stay single-threaded.
    spawner: std::sync::OnceLock<Spawner>,
    skipped: Vec<String>,
    owned: bool,
    keep_run_dir: bool,
    setup: Duration,
}

impl Testbed {
    /// Start the topology in `file` with default options.
    pub fn start(file: impl AsRef<Path>) -> Result<Self, Error> {
        Self::builder(file).start()
    }

    /// Options: whether to start processes, where binaries are, where the run dir goes.
    pub fn builder(file: impl AsRef<Path>) -> Builder {
        Builder::new(file.as_ref())
    }

    /// Attach to a testbed started with `hopbed up` (by topology name). Dropping the handle
    /// leaves it running; [`Testbed::down`] stops it.
    pub fn attach(name: &str) -> Result<Self, Error> {
        Self::attach_dir(&run_base().join(name))
    }

    fn attach_dir(run_dir: &Path) -> Result<Self, Error> {
        let plan: Plan = read_json(run_dir, "plan.json")?;
        let state: State = read_json(run_dir, "state.json")?;
        let hopbed = hopbed_exe().unwrap_or_else(|| PathBuf::from("hopbed"));
        Ok(Testbed {
            topo: plan.topology,
            topo_dir: plan.topology_dir,
            run_dir: run_dir.to_owned(),
            bin_dir: plan.bin_dir,
            hopbed,
            skipped: state.skipped.clone(),
            state,
            supervisor: None,
            sup_stdin: None,
            procs: Mutex::new(BTreeMap::new()),
            spawner: std::sync::OnceLock::new(),
            owned: false,
            keep_run_dir: true,
            setup: Duration::ZERO,
        })
    }

    /// Stop a testbed started with `hopbed up` (or this one) and remove its run directory.
    pub fn down(mut self) -> Result<(), Error> {
        if self.supervisor.is_some() {
            self.owned = true;
            self.keep_run_dir = false;
            drop(self);
            return Ok(());
        }
        let pid = self.state.supervisor;
        // SAFETY: signalling the supervisor by pid (it runs as our uid).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while ns::alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if ns::alive(pid) {
            // SAFETY: as above.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
        self.keep_run_dir = true;
        Ok(())
    }

    /// The topology this testbed was built from.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// The run directory (per-node logs under `nodes/<node>/`).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Wall time `start` took, and the supervisor's own share of it.
    pub fn setup_time(&self) -> (Duration, Duration) {
        (self.setup, Duration::from_millis(self.state.setup_ms))
    }

    /// Optional processes that were not started, and why.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The holder pid of a node (its namespaces are `/proc/PID/ns/*`).
    pub fn node_pid(&self, node: &str) -> Result<u32, Error> {
        self.state
            .nodes
            .get(node)
            .copied()
            .ok_or_else(|| Error::UnknownNode(node.to_owned()))
    }

    /// Every pid this testbed owns: supervisor, holders, DNS servers, node processes.
    pub fn pids(&self) -> Vec<u32> {
        let mut v = vec![self.state.supervisor];
        v.extend(self.state.nodes.values());
        v.extend(self.state.dns.values());
        v.extend(self.state.processes.values());
        let procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        v.extend(procs.values().map(|p| p.child.id()));
        v
    }

    /// The name of `node`'s interface that has the IPv6 address `addr` (asked of the node's
    /// kernel: interface names are chosen there).
    pub fn interface_with(&self, node: &str, addr: &str) -> Result<String, Error> {
        let out = self.exec_ok(
            node,
            [
                "ip",
                "-o",
                "-6",
                "addr",
                "show",
                "to",
                &format!("{addr}/128"),
            ],
        )?;
        out.split_whitespace()
            .nth(1)
            .and_then(|i| i.split('@').next())
            .map(str::to_owned)
            .ok_or_else(|| Error::Io {
                what: format!("interface with {addr} on node `{node}`"),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no interface has it: {out:?}"),
                ),
            })
    }

    /// The address of a node's interface facing `peer` (first address of that link end).
    pub fn address_towards(&self, node: &str, peer: &str) -> Option<String> {
        self.topo
            .interfaces(node)
            .into_iter()
            .find(|(_, _, p)| p == peer)
            .and_then(|(_, addrs, _)| {
                addrs
                    .first()
                    .map(|a| a.split('/').next().unwrap_or("").to_owned())
            })
    }

    /// The `hopbed` executable this testbed uses (for its hidden helper modes).
    pub fn hopbed(&self) -> &Path {
        &self.hopbed
    }

    fn teardown(&mut self) {
        let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        for p in procs.values_mut() {
            let _ = p.child.kill();
        }
        for p in procs.values_mut() {
            let _ = p.child.wait();
        }
        drop(procs);
        // Closing stdin tells the supervisor to kill and reap every holder, then exit.
        drop(self.sup_stdin.take());
        if let Some(mut s) = self.supervisor.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match s.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = s.kill();
                        let _ = s.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "hopbed: test panicked; logs of testbed `{}` ({}):",
                self.topo.name,
                self.run_dir.display()
            );
            self.print_logs();
        }
        self.teardown();
        if !self.keep_run_dir {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }
}

/// `run_dir/file` of a testbed that is up, parsed.
fn read_json<T: serde::de::DeserializeOwned>(run_dir: &Path, file: &str) -> Result<T, Error> {
    let bytes = io(
        format!("read {}/{file} (is it up?)", run_dir.display()),
        std::fs::read(run_dir.join(file)),
    )?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Io {
        what: format!("parse {file}"),
        source: std::io::Error::other(e),
    })
}

#[cfg(test)]
mod tests {
    /// Tests share one testbed between threads (e.g. in a `OnceLock`), so it must be both.
    #[test]
    fn testbed_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Testbed>();
    }
}

/// `hopbed`'s command line as the binary parses it (the definitions in `hopbed_cli.rs`): the
/// man page and shell completions are generated from it (`cargo xtask dist`).
pub fn hopbed_command() -> clap::Command {
    hopbed_cli::command()
}

// Only the definitions matter here; the binary is what reads the parsed values.
#[allow(dead_code)]
mod hopbed_cli {
    use std::path::PathBuf;

    use clap::{Parser, Subcommand};

    include!("hopbed_cli.rs");

    // Here, where the private definitions are visible.
    pub(super) fn command() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
    }
}
