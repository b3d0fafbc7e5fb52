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
pub mod harness;
pub mod ns;
pub mod probe;
#[doc(hidden)]
pub mod supervisor;
pub mod topology;
pub mod userns;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use dns::DnsFault;
/// The kernel feature probe ([`kernel::Features::get`]), shared with hopd.
pub use hopstack_kernel as kernel;
pub use supervisor::State;
pub use topology::{Topology, TopologyError};

use supervisor::{Plan, expand, find_program, node_dir, zone_file};

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

/// Options for [`Testbed::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    file: PathBuf,
    start_processes: bool,
    hopbed: Option<PathBuf>,
    bin_dir: Option<PathBuf>,
    run_base: Option<PathBuf>,
    keep_run_dir: bool,
}

/// A thread that lives as long as the testbed and does every long-lived spawn, so that
/// PR_SET_PDEATHSIG (which follows the spawning *thread*) kills node processes when the
/// testbed goes away or the process dies, not when some short-lived test thread ends.
struct Spawner {
    tx: Option<std::sync::mpsc::Sender<(Command, std::sync::mpsc::Sender<std::io::Result<Child>>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spawner {
    fn new() -> Self {
        let (tx, rx) =
            std::sync::mpsc::channel::<(Command, std::sync::mpsc::Sender<std::io::Result<Child>>)>(
            );
        let thread = std::thread::Builder::new()
            .name("hopbed-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .ok();
        Spawner {
            tx: Some(tx),
            thread,
        }
    }

    fn spawn(&self, cmd: Command) -> std::io::Result<Child> {
        let (rtx, rrx) = std::sync::mpsc::channel();
        self.tx
            .as_ref()
            .and_then(|tx| tx.send((cmd, rtx)).ok())
            .ok_or_else(|| std::io::Error::other("spawner thread is gone"))?;
        rrx.recv()
            .map_err(|_| std::io::Error::other("spawner thread is gone"))?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Proc {
    child: Child,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    privileged: bool,
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

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Base of run directories: `$HOPBED_RUN_DIR`, else `$XDG_RUNTIME_DIR/hopbed`, else
/// `/tmp/hopbed-<uid>`.
pub fn run_base() -> PathBuf {
    if let Some(d) = std::env::var_os("HOPBED_RUN_DIR") {
        return d.into();
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR")
        && Path::new(&d).is_dir()
    {
        return Path::new(&d).join("hopbed");
    }
    // SAFETY: getuid cannot fail.
    PathBuf::from(format!("/tmp/hopbed-{}", unsafe { libc::getuid() }))
}

/// The `hopbed` executable: `$HOPBED_EXE`, else next to the current executable or one level
/// up (test binaries live in `target/<profile>/deps/`).
pub fn hopbed_exe() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HOPBED_EXE") {
        return Some(p.into());
    }
    let me = std::env::current_exe().ok()?;
    let dir = me.parent()?;
    [dir.join("hopbed"), dir.parent()?.join("hopbed")]
        .into_iter()
        .find(|p| p.is_file())
}

/// Where `{bin:NAME}` is looked up: `$HOPBED_BIN_DIR`, else the directory of `hopbed`.
pub fn default_bin_dir(hopbed: &Path) -> PathBuf {
    std::env::var_os("HOPBED_BIN_DIR")
        .map(PathBuf::from)
        .or_else(|| hopbed.parent().map(Path::to_owned))
        .unwrap_or_default()
}

impl Builder {
    /// Do not start the topology's `[[nodes.process]]` entries (start them with
    /// [`Testbed::start_process`] when the test wants).
    pub fn start_processes(mut self, yes: bool) -> Self {
        self.start_processes = yes;
        self
    }
    /// Path of the `hopbed` binary (in its own tests: `env!("CARGO_BIN_EXE_hopbed")`).
    pub fn hopbed_exe(mut self, p: impl Into<PathBuf>) -> Self {
        self.hopbed = Some(p.into());
        self
    }
    /// Directory holding `{bin:NAME}` binaries.
    pub fn bin_dir(mut self, p: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(p.into());
        self
    }
    /// Base directory for the run directory.
    pub fn run_base(mut self, p: impl Into<PathBuf>) -> Self {
        self.run_base = Some(p.into());
        self
    }
    /// Keep the run directory (logs) after teardown.
    pub fn keep_run_dir(mut self, yes: bool) -> Self {
        self.keep_run_dir = yes;
        self
    }

    /// Build the topology; returns once every node, link, route and DNS server is up and
    /// the autostart processes have been spawned.
    pub fn start(self) -> Result<Testbed, Error> {
        let t0 = Instant::now();
        let topo = Topology::load(&self.file)?;
        let base = self.run_base.clone().unwrap_or_else(run_base);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let run_dir = base.join(format!("{}-{}-{n}", topo.name, std::process::id()));
        let mut tb = launch(&self, topo, run_dir, false)?;
        tb.keep_run_dir = self.keep_run_dir;
        if self.start_processes {
            let autostart: Vec<(String, String)> = tb
                .topo
                .nodes
                .iter()
                .flat_map(|n| {
                    n.process
                        .iter()
                        .filter(|p| p.autostart)
                        .map(|p| (n.name.clone(), p.name.clone()))
                })
                .collect();
            for (node, name) in autostart {
                match tb.start_process(&node, &name) {
                    Ok(_) => {}
                    Err(Error::MissingProgram { context, program })
                        if tb.process_spec(&node, &name).is_some_and(|p| p.optional) =>
                    {
                        tb.skipped
                            .push(format!("{context}: `{program}` does not exist"));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        tb.setup = t0.elapsed();
        Ok(tb)
    }

    /// Start in the background (`hopbed up`): the testbed outlives this process until
    /// [`Testbed::down`]. Its run directory is `<base>/<topology name>`.
    pub fn start_daemon(self) -> Result<Testbed, Error> {
        let topo = Topology::load(&self.file)?;
        let base = self.run_base.clone().unwrap_or_else(run_base);
        let run_dir = base.join(&topo.name);
        if run_dir.join("state.json").exists() {
            if let Ok(tb) = Testbed::attach_dir(&run_dir)
                && ns::alive(tb.state.supervisor)
            {
                return Err(Error::Io {
                    what: format!("hopbed up {}", topo.name),
                    source: std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!(
                            "testbed `{}` is already up (supervisor pid {}); `hopbed down {}` first",
                            topo.name, tb.state.supervisor, topo.name
                        ),
                    ),
                });
            }
            let _ = std::fs::remove_dir_all(&run_dir);
        }
        let mut tb = launch(&self, topo, run_dir, true)?;
        tb.owned = false;
        Ok(tb)
    }
}

/// Write the run directory, spawn the supervisor and wait for `ready`.
fn launch(b: &Builder, topo: Topology, run_dir: PathBuf, daemon: bool) -> Result<Testbed, Error> {
    let hopbed = b
        .hopbed
        .clone()
        .or_else(hopbed_exe)
        .ok_or_else(|| Error::MissingProgram {
            context: "starting the testbed supervisor".into(),
            program: "hopbed (set HOPBED_EXE or build it: cargo build -p hopstack-testbed)".into(),
        })?;
    let bin_dir = b
        .bin_dir
        .clone()
        .unwrap_or_else(|| default_bin_dir(&hopbed));
    let topo_dir = std::fs::canonicalize(&b.file)
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned))
        .unwrap_or_default();
    if let Some(parent) = run_dir.parent() {
        io("create run base", std::fs::create_dir_all(parent))?;
    }
    io(
        format!("create {}", run_dir.display()),
        std::fs::create_dir_all(run_dir.join("dns")),
    )?;
    for n in &topo.nodes {
        let d = node_dir(&run_dir, &n.name);
        io(
            format!("create {}", d.display()),
            std::fs::create_dir_all(&d),
        )?;
        let resolv = match n.network.as_deref().and_then(|net| topo.network(net)) {
            // One attempt with a short timeout: tests of the timeout fault should not wait long,
            // and the server is one veth away. `search .`: without a search line glibc
            // appends the hostname's domain (`org.com` on node `github.com`) before trying
            // the name itself. (hickory-resolver still does; it ignores `.`.)
            Some(net) => format!(
                "# hopbed: DNS view `{}`\nnameserver {}\nsearch .\noptions timeout:1 attempts:1\n",
                net.name, net.dns.address
            ),
            None => "# hopbed: this node has no DNS view\n".to_owned(),
        };
        io(
            "write resolv.conf",
            std::fs::write(d.join("resolv.conf"), resolv),
        )?;
        // Deliberately without the node's own name: it must resolve through the node's DNS
        // view like every other name, not to loopback.
        let hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n";
        io("write hosts", std::fs::write(d.join("hosts"), hosts))?;
    }
    for net in &topo.networks {
        let zone = dns::Zone {
            ttl: net.ttl,
            records: net
                .records
                .iter()
                .map(|(k, v)| (dns::canonical(k), v.clone()))
                .collect(),
            faults: BTreeMap::new(),
        };
        io("write zone", zone.store(&zone_file(&run_dir, &net.name)))?;
    }
    let plan = Plan {
        topology: topo.clone(),
        run_dir: run_dir.clone(),
        topology_dir: topo_dir.clone(),
        bin_dir: bin_dir.clone(),
        daemon,
        keep_run_dir: b.keep_run_dir,
        // Only root of the initial user namespace may write a full identity map; root of
        // another one (a test re-run by `userns::rerun_in_userns`) maps itself like any user.
        identity_map: userns::initial_root(),
    };
    let plan_file = run_dir.join("plan.json");
    io(
        "write plan",
        std::fs::write(
            &plan_file,
            serde_json::to_vec_pretty(&plan)
                .map_err(std::io::Error::other)
                .unwrap_or_default(),
        ),
    )?;
    let log_path = run_dir.join("supervisor.log");
    let log = io("create supervisor.log", std::fs::File::create(&log_path))?;
    let mut cmd = Command::new(&hopbed);
    cmd.arg("__supervise")
        .arg(&plan_file)
        .stdout(Stdio::piped())
        .stderr(log);
    // stdin: the id-map handshake, then (library mode) held open until teardown.
    cmd.stdin(Stdio::piped());
    if daemon {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe; it detaches the daemon from our terminal so
        // closing the shell does not SIGHUP it.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    } else {
        // The supervisor tears down when this pipe reaches EOF: when the Testbed is dropped,
        // or when this process dies in any way (the kernel closes the write end). Not
        // PR_SET_PDEATHSIG: that fires when the *thread* that spawned it exits, which would
        // kill a testbed shared between test threads.
    }
    let mut child = io(format!("spawn {}", hopbed.display()), cmd.spawn())?;
    let mut line = String::new();
    let mut reader = child.stdout.take().map(BufReader::new);
    if let Some(r) = reader.as_mut() {
        let _ = r.read_line(&mut line);
        if line.trim_end() == "map" {
            let pid = child.id();
            let full = "0 0 4294967295\n";
            let mapped = std::fs::write(format!("/proc/{pid}/uid_map"), full)
                .and_then(|_| std::fs::write(format!("/proc/{pid}/gid_map"), full));
            if let (Ok(()), Some(stdin)) = (mapped, child.stdin.as_mut()) {
                use std::io::Write as _;
                let _ = stdin.write_all(b"mapped\n").and_then(|_| stdin.flush());
            }
            line.clear();
            let _ = r.read_line(&mut line);
        }
    }
    let line = line.trim_end();
    if line != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        let message = match line.strip_prefix("error ") {
            Some(m) => m.replace("\\n", "\n"),
            None => format!(
                "supervisor exited without a word: {}",
                std::fs::read_to_string(&log_path)
                    .unwrap_or_default()
                    .trim()
            ),
        };
        if !b.keep_run_dir && !daemon {
            let _ = std::fs::remove_dir_all(&run_dir);
        }
        return Err(Error::Start {
            message,
            log: log_path,
        });
    }
    let state: State = serde_json::from_slice(&io(
        "read state.json",
        std::fs::read(run_dir.join("state.json")),
    )?)
    .map_err(|e| Error::Io {
        what: "parse state.json".into(),
        source: std::io::Error::other(e),
    })?;
    let skipped = state.skipped.clone();
    // A daemon outlives us: its stdin must not report our exit as a teardown request.
    let sup_stdin = if daemon { None } else { child.stdin.take() };
    Ok(Testbed {
        topo,
        topo_dir,
        run_dir,
        bin_dir,
        hopbed,
        state,
        supervisor: (!daemon).then_some(child),
        sup_stdin,
        procs: Mutex::new(BTreeMap::new()),
        spawner: std::sync::OnceLock::new(),
        skipped,
        owned: true,
        keep_run_dir: false,
        setup: Duration::ZERO,
    })
}

impl Testbed {
    /// Start the topology in `file` with default options.
    pub fn start(file: impl AsRef<Path>) -> Result<Self, Error> {
        Self::builder(file).start()
    }

    /// Options: whether to start processes, where binaries are, where the run dir goes.
    pub fn builder(file: impl AsRef<Path>) -> Builder {
        Builder {
            file: file.as_ref().to_owned(),
            start_processes: true,
            hopbed: None,
            bin_dir: None,
            run_base: None,
            keep_run_dir: false,
        }
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

    /// A `Command` that runs `program` on `node` (configure it further, then spawn/output).
    /// The child gets PR_SET_PDEATHSIG(SIGKILL): it dies with the *thread* that spawns it.
    /// [`Testbed::spawn`] therefore spawns from a thread owned by the testbed.
    pub fn command(&self, node: &str, program: impl AsRef<str>) -> Result<Command, Error> {
        self.command_in(node, program, None, true)
    }

    /// As [`Testbed::command`], keeping the caller's privileges when it is root of the initial
    /// user namespace (see [`Testbed::spawn_privileged`]).
    pub fn command_privileged(
        &self,
        node: &str,
        program: impl AsRef<str>,
    ) -> Result<Command, Error> {
        self.command_in(node, program, None, !userns::initial_root())
    }

    fn command_in(
        &self,
        node: &str,
        program: impl AsRef<str>,
        cwd: Option<&Path>,
        join_user: bool,
    ) -> Result<Command, Error> {
        let holder = self.node_pid(node)?;
        let prog = program.as_ref();
        let expanded = expand(
            prog,
            &self.bin_dir,
            &self.topo_dir,
            &node_dir(&self.run_dir, node),
        );
        let path = find_program(&expanded).ok_or_else(|| Error::MissingProgram {
            context: format!("on node `{node}`"),
            program: expanded.clone(),
        })?;
        let mut cmd = Command::new(path);
        io(
            format!("enter node `{node}`"),
            ns::enter_in(&mut cmd, holder, join_user, cwd),
        )?;
        Ok(cmd)
    }

    /// Run `argv` on `node`, capture its output. Not an error if it exits non-zero.
    pub fn exec<I, S>(&self, node: &str, argv: I) -> Result<Output, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let argv: Vec<String> = argv.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let Some((prog, args)) = argv.split_first() else {
            return Err(Error::MissingProgram {
                context: format!("exec on `{node}`"),
                program: "(empty argv)".into(),
            });
        };
        let mut cmd = self.command(node, prog)?;
        let dir = node_dir(&self.run_dir, node);
        cmd.args(
            args.iter()
                .map(|a| expand(a, &self.bin_dir, &self.topo_dir, &dir)),
        )
        .stdin(Stdio::null());
        io(format!("run {argv:?} on `{node}`"), cmd.output())
    }

    /// Run `argv` on `node`; error (with its output) unless it exits 0. Returns stdout.
    pub fn exec_ok<I, S>(&self, node: &str, argv: I) -> Result<String, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let argv: Vec<String> = argv.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let out = self.exec(node, &argv)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(Error::Command {
                node: node.to_owned(),
                argv,
                status: out.status,
                stdout,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(stdout)
    }

    /// Start a long-running process on `node` under `name`; stdout+stderr go to
    /// `nodes/<node>/<name>.log` (printed if the test panics). Returns its pid.
    pub fn spawn<I, S>(&self, node: &str, name: &str, argv: I) -> Result<u32, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let argv: Vec<String> = argv.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self.spawn_full(node, name, argv, BTreeMap::new(), None, false)
    }

    /// As [`Testbed::spawn`], but when this process is root of the initial user namespace the
    /// child keeps that root: it joins the node's network, mount and UTS namespaces and not
    /// its user namespace. For what no user namespace grants (loading an eBPF program, the
    /// kernel's SRH HMAC keys). Anyone else gets [`Testbed::spawn`].
    pub fn spawn_privileged<I, S>(&self, node: &str, name: &str, argv: I) -> Result<u32, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let argv: Vec<String> = argv.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let privileged = userns::initial_root();
        self.spawn_full(node, name, argv, BTreeMap::new(), None, privileged)
    }

    fn spawn_full(
        &self,
        node: &str,
        name: &str,
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
        privileged: bool,
    ) -> Result<u32, Error> {
        let dir = node_dir(&self.run_dir, node);
        let argv: Vec<String> = argv
            .iter()
            .map(|a| expand(a, &self.bin_dir, &self.topo_dir, &dir))
            .collect();
        let Some((prog, args)) = argv.split_first() else {
            return Err(Error::MissingProgram {
                context: format!("spawn `{name}` on `{node}`"),
                program: "(empty argv)".into(),
            });
        };
        let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = procs.get_mut(&(node.to_owned(), name.to_owned()))
            && matches!(p.child.try_wait(), Ok(None))
        {
            return Err(Error::Io {
                what: format!("spawn `{name}` on `{node}`"),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("already running as pid {}", p.child.id()),
                ),
            });
        }
        let mut cmd = self
            .command_in(node, prog, cwd.as_deref(), !privileged)
            .map_err(|e| match e {
                Error::MissingProgram { program, .. } => Error::MissingProgram {
                    context: format!("process `{name}` on node `{node}`"),
                    program,
                },
                e => e,
            })?;
        let log = io(
            "open log",
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(dir.join(format!("{name}.log"))),
        )?;
        let log2 = io("dup log", log.try_clone())?;
        cmd.args(args)
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = io(
            format!("spawn {argv:?} on `{node}`"),
            self.spawner.get_or_init(Spawner::new).spawn(cmd),
        )?;
        let pid = child.id();
        procs.insert(
            (node.to_owned(), name.to_owned()),
            Proc {
                child,
                argv,
                env,
                cwd,
                privileged,
            },
        );
        Ok(pid)
    }

    fn process_spec(&self, node: &str, name: &str) -> Option<&topology::Process> {
        self.topo
            .node(node)?
            .process
            .iter()
            .find(|p| p.name == name)
    }

    /// Start the topology's `[[nodes.process]]` entry `name` on `node` (templates written,
    /// working directory as configured).
    pub fn start_process(&self, node: &str, name: &str) -> Result<u32, Error> {
        let p = self
            .process_spec(node, name)
            .ok_or_else(|| Error::UnknownProcess {
                node: node.to_owned(),
                name: name.to_owned(),
            })?;
        let dir = node_dir(&self.run_dir, node);
        io(
            format!("process `{name}` on node `{node}`"),
            supervisor::write_templates(p, &self.bin_dir, &self.topo_dir, &dir),
        )?;
        let ex = |a: &str| expand(a, &self.bin_dir, &self.topo_dir, &dir);
        let env = p.env.iter().map(|(k, v)| (k.clone(), ex(v))).collect();
        let cwd = PathBuf::from(
            p.cwd
                .as_deref()
                .map(ex)
                .unwrap_or_else(|| dir.to_string_lossy().into_owned()),
        );
        self.spawn_full(node, name, p.cmd.clone(), env, Some(cwd), false)
    }

    /// Kill (SIGKILL) the process `name` on `node` and reap it.
    pub fn kill(&self, node: &str, name: &str) -> Result<(), Error> {
        self.signal(node, name, libc::SIGKILL)?;
        let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = procs.get_mut(&(node.to_owned(), name.to_owned())) {
            let _ = p.child.wait();
        }
        Ok(())
    }

    /// Send a signal (e.g. `libc::SIGTERM`, `libc::SIGHUP`) to the process `name` on `node`.
    pub fn signal(&self, node: &str, name: &str, sig: libc::c_int) -> Result<(), Error> {
        let procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        let p = procs
            .get(&(node.to_owned(), name.to_owned()))
            .ok_or_else(|| Error::UnknownProcess {
                node: node.to_owned(),
                name: name.to_owned(),
            })?;
        // SAFETY: signalling our own child (not yet reaped, so the pid is still ours).
        unsafe { libc::kill(p.child.id() as libc::pid_t, sig) };
        Ok(())
    }

    /// Kill the process `name` on `node` and start it again with the same argv and env
    /// (its log is appended to). Returns the new pid.
    pub fn restart(&self, node: &str, name: &str) -> Result<u32, Error> {
        self.kill(node, name)?;
        let (argv, env, cwd, privileged) = {
            let procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
            let p = &procs[&(node.to_owned(), name.to_owned())];
            (p.argv.clone(), p.env.clone(), p.cwd.clone(), p.privileged)
        };
        self.spawn_full(node, name, argv, env, cwd, privileged)
    }

    /// Has the process `name` on `node` exited? Returns its status if so.
    pub fn exited(&self, node: &str, name: &str) -> Result<Option<ExitStatus>, Error> {
        let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        let p = procs
            .get_mut(&(node.to_owned(), name.to_owned()))
            .ok_or_else(|| Error::UnknownProcess {
                node: node.to_owned(),
                name: name.to_owned(),
            })?;
        io("try_wait", p.child.try_wait())
    }

    /// The log of process `name` on `node` so far.
    pub fn logs(&self, node: &str, name: &str) -> String {
        std::fs::read_to_string(node_dir(&self.run_dir, node).join(format!("{name}.log")))
            .unwrap_or_default()
    }

    /// Print every log of the testbed (processes, DNS servers, supervisor) to stderr; this is
    /// what a panicking test shows when its testbed is dropped.
    pub fn print_logs(&self) {
        // eprint! rather than a raw stderr handle: the test harness captures it, so the logs
        // appear exactly when the test fails.
        eprint!("{}", self.log_report());
    }

    /// Every log of the testbed, each headed by its path and cut to its last 8 KiB.
    pub fn log_report(&self) -> String {
        let mut files: Vec<PathBuf> = vec![self.run_dir.join("supervisor.log")];
        for n in &self.topo.nodes {
            if let Ok(rd) = std::fs::read_dir(node_dir(&self.run_dir, &n.name)) {
                let mut v: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "log"))
                    .collect();
                v.sort();
                files.extend(v);
            }
        }
        for net in &self.topo.networks {
            files.push(self.run_dir.join("dns").join(format!("{}.log", net.name)));
        }
        let mut all = String::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            // Only the tail: a chatty daemon should not bury the assertion message.
            let cut = text.len().saturating_sub(8192);
            let cut = (cut..text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            all.push_str(&format!("----- {} -----\n{}\n", f.display(), &text[cut..]));
        }
        all
    }

    fn link_ends(&self, a: &str, b: &str) -> Result<Vec<(String, String)>, Error> {
        for l in &self.topo.links {
            if (l.a.node == a && l.b.node == b) || (l.a.node == b && l.b.node == a) {
                return Ok([&l.a, &l.b]
                    .iter()
                    .map(|e| (e.node.clone(), e.ifname.clone().unwrap_or_default()))
                    .collect());
            }
        }
        Err(Error::UnknownLink(a.to_owned(), b.to_owned()))
    }

    /// Take the link between `a` and `b` down (both ends administratively down).
    pub fn link_down(&self, a: &str, b: &str) -> Result<(), Error> {
        for (node, ifname) in self.link_ends(a, b)? {
            self.exec_ok(&node, ["ip", "link", "set", "dev", &ifname, "down"])?;
        }
        Ok(())
    }

    /// Bring the link between `a` and `b` back up and re-install both nodes' routes (the
    /// kernel removes routes through an interface that goes down; addresses are kept by
    /// `keep_addr_on_down`).
    pub fn link_up(&self, a: &str, b: &str) -> Result<(), Error> {
        let ends = self.link_ends(a, b)?;
        for (node, ifname) in &ends {
            self.exec_ok(node, ["ip", "link", "set", "dev", ifname, "up"])?;
        }
        for (node, _) in &ends {
            let f = node_dir(&self.run_dir, node).join("routes.ip");
            if let Ok(text) = std::fs::read_to_string(&f) {
                for line in text.lines() {
                    let Some(args) = line.strip_prefix("route add ") else {
                        continue;
                    };
                    let mut argv = vec!["ip", "-6", "route", "replace"];
                    argv.extend(args.split_whitespace());
                    self.exec_ok(node, argv)?;
                }
            }
        }
        Ok(())
    }

    /// Add delay/loss on `node`'s interface `ifname` with tc netem (`spec` as for
    /// `tc qdisc ... netem`, e.g. `"delay 20ms loss 5%"`). Errors with
    /// [`Error::Unsupported`] when the kernel has no sch_netem.
    pub fn netem(&self, node: &str, ifname: &str, spec: &str) -> Result<(), Error> {
        let mut argv = vec!["tc", "qdisc", "replace", "dev", ifname, "root", "netem"];
        argv.extend(spec.split_whitespace());
        match self.exec_ok(node, &argv) {
            Ok(_) => Ok(()),
            Err(Error::Command { stderr, .. })
                if stderr.contains("nknown") || stderr.contains("No such file") =>
            {
                Err(Error::Unsupported {
                    what: "tc netem (delay/loss)".into(),
                    why: format!(
                        "the kernel has no sch_netem (CONFIG_NET_SCH_NETEM): {}",
                        stderr.trim()
                    ),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Remove a netem qdisc added by [`Testbed::netem`].
    pub fn clear_netem(&self, node: &str, ifname: &str) -> Result<(), Error> {
        self.exec_ok(node, ["tc", "qdisc", "del", "dev", ifname, "root"])
            .map(|_| ())
    }

    fn edit_zone(&self, network: &str, f: impl FnOnce(&mut dns::Zone)) -> Result<(), Error> {
        if self.topo.network(network).is_none() {
            return Err(Error::UnknownNetwork(network.to_owned()));
        }
        let path = zone_file(&self.run_dir, network);
        let mut zone = io("read zone", dns::Zone::load(&path))?;
        f(&mut zone);
        // The server reloads on mtime change; a change within the same mtime tick would be
        // missed, so wait for the clock to move on.
        let before = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        loop {
            io("write zone", zone.store(&path))?;
            let after = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if after != before {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Make `name` in the view `network` answer with a fault (or normally again: `None`).
    pub fn dns_fault(
        &self,
        network: &str,
        name: &str,
        fault: Option<DnsFault>,
    ) -> Result<(), Error> {
        self.edit_zone(network, |z| match fault {
            Some(f) => {
                z.faults.insert(dns::canonical(name), f);
            }
            None => {
                z.faults.remove(&dns::canonical(name));
            }
        })
    }

    /// Set (or with an empty list, remove) the addresses of `name` in the view `network`.
    pub fn dns_set(&self, network: &str, name: &str, addrs: &[IpAddr]) -> Result<(), Error> {
        self.edit_zone(network, |z| {
            if addrs.is_empty() {
                z.records.remove(&dns::canonical(name));
            } else {
                z.records.insert(dns::canonical(name), addrs.to_vec());
            }
        })
    }

    /// Resolve `name` on `node` through the node's own resolver configuration, with
    /// hickory-resolver (the library `hop` and `hopd` use), by running `hopbed __resolve`.
    pub fn resolve(&self, node: &str, name: &str) -> Result<Vec<IpAddr>, Error> {
        let hopbed = self.hopbed.to_string_lossy().into_owned();
        let out = self.exec(node, [hopbed.as_str(), "__resolve", name])?;
        if !out.status.success() {
            return Err(Error::Resolve {
                node: node.to_owned(),
                name: name.to_owned(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    /// ICMPv6 echo from `node` to `addr` (runs `hopbed __ping6` on the node; no `ping`
    /// binary needed). Returns the round-trip time.
    pub fn ping(&self, node: &str, addr: &str) -> Result<Duration, Error> {
        let hopbed = self.hopbed.to_string_lossy().into_owned();
        let out = self.exec_ok(node, [hopbed.as_str(), "__ping6", addr])?;
        let us: u64 = out.trim().trim_end_matches("us").parse().unwrap_or(0);
        Ok(Duration::from_micros(us))
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
