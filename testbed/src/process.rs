//! Programs on the nodes: commands run in a node's namespaces, spawned processes, their
//! signals and logs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

use crate::supervisor::{self, expand, find_program, node_dir};
use crate::{Error, Testbed, io, ns, topology, userns};

/// A thread that lives as long as the testbed and does every long-lived spawn, so that
/// PR_SET_PDEATHSIG (which follows the spawning *thread*) kills node processes when the
/// testbed goes away or the process dies, not when some short-lived test thread ends.
pub(crate) struct Spawner {
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

pub(crate) struct Proc {
    pub(crate) child: Child,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    privileged: bool,
}

impl Testbed {
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

    pub(crate) fn process_spec(&self, node: &str, name: &str) -> Option<&topology::Process> {
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
            .ok_or_else(|| unknown_process(node, name))?;
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

    /// `f` on the process `name` that runs (or ran) on `node`, the table locked.
    fn with_process<T>(
        &self,
        node: &str,
        name: &str,
        f: impl FnOnce(&mut Proc) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        let p = procs
            .get_mut(&(node.to_owned(), name.to_owned()))
            .ok_or_else(|| unknown_process(node, name))?;
        f(p)
    }

    /// Send a signal (e.g. `libc::SIGTERM`, `libc::SIGHUP`) to the process `name` on `node`.
    pub fn signal(&self, node: &str, name: &str, sig: libc::c_int) -> Result<(), Error> {
        self.with_process(node, name, |p| {
            // SAFETY: signalling our own child (not yet reaped, so the pid is still ours).
            unsafe { libc::kill(p.child.id() as libc::pid_t, sig) };
            Ok(())
        })
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
        self.with_process(node, name, |p| io("try_wait", p.child.try_wait()))
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
}

fn unknown_process(node: &str, name: &str) -> Error {
    Error::UnknownProcess {
        node: node.to_owned(),
        name: name.to_owned(),
    }
}
