//! Starting a testbed: [`Builder`], the supervisor it launches, and where run directories
//! and binaries are found.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::supervisor::{Plan, node_dir, zone_file};
use crate::{Error, State, Testbed, Topology, dns, io, ns, userns};

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
    pub(crate) fn new(file: &Path) -> Builder {
        Builder {
            file: file.to_owned(),
            start_processes: true,
            hopbed: None,
            bin_dir: None,
            run_base: None,
            keep_run_dir: false,
        }
    }

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
