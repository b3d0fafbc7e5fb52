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
use std::ffi::CString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::ns;
use crate::topology::{Topology, srv6_route_args};

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

fn check(rc: libc::c_int, what: &str) -> anyhow::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error()).context(what.to_owned())
    }
}

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().parse().ok()))
                .flatten()
        })
        .unwrap_or(0)
}

/// Enter a fresh user namespace in which we are root, with private mounts and a staging netns.
fn become_root_in_userns(identity_map: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let uid = unsafe_getuid();
    let gid = unsafe_getgid();
    let n = threads();
    if n != 1 {
        bail!("supervisor has {n} threads; unshare(CLONE_NEWUSER) needs exactly one");
    }
    // SAFETY: plain system call on a single-threaded process.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWNET) };
    check(
        rc,
        "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWNET) (are user namespaces enabled? see /proc/sys/user/max_user_namespaces)",
    )?;
    if identity_map {
        // A root starter maps every id to itself from outside (only a writer with
        // CAP_SETUID in the parent namespace may, and we have none there any more), so
        // files keep their owners and setgroups stays allowed: tools that switch users,
        // such as tcpdump, work inside the nodes.
        writeln!(out, "map")?;
        out.flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if line.trim() != "mapped" {
            bail!(
                "the starter did not write our uid/gid maps (said {:?})",
                line.trim()
            );
        }
    } else {
        // An unprivileged process may map exactly its own uid/gid, and only after denying
        // setgroups (CVE-2014-8989). Mapping the caller to 0 gives the capabilities, within
        // the namespace, that creating veths, routes and mounts need.
        std::fs::write("/proc/self/setgroups", "deny").context("write /proc/self/setgroups")?;
        std::fs::write("/proc/self/uid_map", format!("0 {uid} 1\n")).context("write uid_map")?;
        std::fs::write("/proc/self/gid_map", format!("0 {gid} 1\n")).context("write gid_map")?;
    }
    // Node bind mounts (resolv.conf, hosts) must never propagate back to the host.
    let root = CString::new("/").unwrap_or_default();
    // SAFETY: valid NUL-terminated strings; null source/fstype/data are allowed for MS_PRIVATE.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    check(rc, "make / rprivate")?;
    Ok(())
}

fn unsafe_getuid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

fn unsafe_getgid() -> u32 {
    // SAFETY: getgid cannot fail.
    unsafe { libc::getgid() }
}

/// Per-node files under `run_dir/nodes/<name>/`.
pub fn node_dir(run_dir: &Path, node: &str) -> PathBuf {
    run_dir.join("nodes").join(node)
}

/// Zone file of a network.
pub fn zone_file(run_dir: &Path, network: &str) -> PathBuf {
    run_dir.join("dns").join(format!("{network}.json"))
}

/// Default sysctls every node gets before its interfaces exist, so new interfaces inherit the
/// `default` values: routers forward, accept SRH packets (the kernel drops them otherwise),
/// and addresses are usable at once (DAD would cost ~1 s per address).
const NODE_SYSCTLS: &[(&str, &str)] = &[
    ("net/ipv6/conf/all/forwarding", "1"),
    ("net/ipv6/conf/default/forwarding", "1"),
    ("net/ipv6/conf/all/seg6_enabled", "1"),
    ("net/ipv6/conf/default/seg6_enabled", "1"),
    ("net/ipv6/conf/lo/seg6_enabled", "1"),
    ("net/ipv6/conf/all/accept_dad", "0"),
    ("net/ipv6/conf/default/accept_dad", "0"),
    ("net/ipv6/conf/all/keep_addr_on_down", "1"),
    ("net/ipv6/conf/default/keep_addr_on_down", "1"),
    // RA/autoconf on veths would add addresses and routes the topology did not ask for.
    ("net/ipv6/conf/default/accept_ra", "0"),
    ("net/ipv6/conf/default/autoconf", "0"),
];

/// Body of a holder: runs in the forked child, never returns.
fn holder(node: &str, dir: &Path, parent: libc::pid_t, ready: OwnedFd) -> ! {
    let mut ready = std::fs::File::from(ready);
    let result = (|| -> anyhow::Result<()> {
        // `ps` shows which node a holder is; the kernel keeps at most 15 octets of it.
        let comm = CString::new(format!("hb:{node}").chars().take(15).collect::<String>())?;
        // SAFETY: prctl/getppid/unshare/sethostname are plain system calls on valid buffers.
        unsafe {
            libc::prctl(libc::PR_SET_NAME, comm.as_ptr());
            check(
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong),
                "prctl(PR_SET_PDEATHSIG)",
            )?;
            if libc::getppid() != parent {
                bail!("supervisor died during start-up");
            }
            check(
                libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS | libc::CLONE_NEWUTS),
                "unshare(CLONE_NEWNET|CLONE_NEWNS|CLONE_NEWUTS)",
            )?;
            check(
                libc::sethostname(node.as_ptr().cast(), node.len()),
                "sethostname",
            )?;
        }
        for (file, target) in [("resolv.conf", "/etc/resolv.conf"), ("hosts", "/etc/hosts")] {
            let src = CString::new(dir.join(file).as_os_str().as_encoded_bytes())?;
            let dst = CString::new(target)?;
            // SAFETY: valid C strings; bind mount takes no fstype/data.
            let rc = unsafe {
                libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            };
            check(
                rc,
                &format!("bind-mount {} on {target}", dir.join(file).display()),
            )?;
        }
        for (key, value) in NODE_SYSCTLS {
            std::fs::write(format!("/proc/sys/{key}"), value)
                .with_context(|| format!("sysctl {key}={value}"))?;
        }
        Ok(())
    })();
    let code = match result {
        Ok(()) => {
            let _ = ready.write_all(b"+");
            drop(ready);
            loop {
                // SAFETY: pause just sleeps until a signal; SIGKILL ends us.
                unsafe { libc::pause() };
            }
        }
        Err(e) => {
            let _ = write!(ready, "-node `{node}`: {e:#}");
            1
        }
    };
    // SAFETY: leaving the forked child without running the parent's atexit handlers.
    unsafe { libc::_exit(code) }
}

fn fork_holder(node: &str, dir: &Path) -> anyhow::Result<u32> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-element array.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    check(rc, "pipe2")?;
    // SAFETY: the fds were just created and are owned here only.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    // SAFETY: the supervisor is single-threaded, so the child may do anything after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork");
    }
    if pid == 0 {
        drop(rd);
        holder(node, dir, me, wr);
    }
    drop(wr);
    let mut msg = String::new();
    std::fs::File::from(rd).read_to_string(&mut msg)?;
    match msg.as_bytes().first() {
        Some(b'+') => Ok(pid as u32),
        Some(b'-') => bail!("{}", &msg[1..]),
        _ => bail!("holder for node `{node}` died during start-up"),
    }
}

/// Run `ip -6 -batch FILE` inside `holder`.
fn ip_batch(ip: &Path, holder: Option<u32>, file: &Path) -> anyhow::Result<Child> {
    let mut cmd = Command::new(ip);
    cmd.arg("-6").arg("-batch").arg(file);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(h) = holder {
        ns::enter(&mut cmd, h, false)?;
    }
    cmd.spawn()
        .with_context(|| format!("spawn {}", ip.display()))
}

fn wait_ok(child: Child, what: &str, file: &Path) -> anyhow::Result<()> {
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let script = std::fs::read_to_string(file).unwrap_or_default();
        bail!(
            "{what} failed ({}): {}\n--- {} ---\n{script}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            file.display()
        );
    }
    Ok(())
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

        // Phase 1: veth pairs, created directly inside the two nodes (never in a shared netns,
        // so equal names like eth0 in different nodes do not clash).
        if !topo.links.is_empty() {
            let mut script = String::new();
            for l in &topo.links {
                let (a, b) = (&l.a, &l.b);
                let mtu = l.mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
                script.push_str(&format!(
                    "link add {} netns {}{mtu} type veth peer name {} netns {}{mtu}\n",
                    a.ifname.as_deref().unwrap_or_default(),
                    state.nodes[&a.node],
                    b.ifname.as_deref().unwrap_or_default(),
                    state.nodes[&b.node],
                ));
            }
            let f = plan.run_dir.join("links.ip");
            std::fs::write(&f, script)?;
            wait_ok(ip_batch(&ip, None, &f)?, "creating veth links", &f)?;
        }

        // Phase 2 (all nodes in parallel): interfaces up, addresses, sysctls.
        // Phase 3 (all nodes in parallel): routes. Routes come after every node's links are up,
        // because a gateway is only accepted once its on-link prefix exists.
        let mut phase2 = Vec::new();
        for n in &topo.nodes {
            let dir = node_dir(&plan.run_dir, &n.name);
            let mut s = String::from("link set lo up\n");
            for a in &n.addresses {
                s.push_str(&format!("addr add {a} dev lo nodad\n"));
            }
            for net in &topo.networks {
                if net.dns.node == n.name {
                    s.push_str(&format!("addr add {}/128 dev lo nodad\n", net.dns.address));
                }
            }
            for (ifname, addrs, _) in topo.interfaces(&n.name) {
                s.push_str(&format!("link set {ifname} up\n"));
                for a in addrs {
                    s.push_str(&format!("addr add {a} dev {ifname} nodad\n"));
                }
            }
            let f = dir.join("setup.ip");
            std::fs::write(&f, s)?;
            phase2.push((n, f.clone(), ip_batch(&ip, Some(state.nodes[&n.name]), &f)?));
        }
        for (n, f, c) in phase2 {
            wait_ok(c, &format!("configuring node `{}`", n.name), &f)?;
        }
        let mut phase3 = Vec::new();
        for n in &topo.nodes {
            let holder = state.nodes[&n.name];
            if !n.sysctls.is_empty() {
                // Written from a child inside the node: /proc/sys/net shows the netns of the
                // process that opens it.
                let mut c = Command::new("/bin/sh");
                let mut script = String::new();
                for (k, v) in &n.sysctls {
                    script.push_str(&format!(
                        "echo '{}' > /proc/sys/{} || exit 1\n",
                        v.replace('\'', ""),
                        k.replace('.', "/")
                    ));
                }
                c.arg("-c").arg(script).stderr(Stdio::piped());
                ns::enter(&mut c, holder, false)?;
                let o = c.output()?;
                if !o.status.success() {
                    bail!(
                        "node `{}`: setting sysctls {:?} failed: {}",
                        n.name,
                        n.sysctls,
                        String::from_utf8_lossy(&o.stderr).trim()
                    );
                }
            }
            let first_if = topo
                .interfaces(&n.name)
                .first()
                .map(|i| i.0.clone())
                .unwrap_or_else(|| "lo".into());
            let mut s = String::new();
            for r in &n.routes {
                s.push_str(&format!("route add {r}\n"));
            }
            for (j, r) in n.srv6.iter().enumerate() {
                let at = format!("{}.srv6[{j}]", n.name);
                let args = srv6_route_args(&at, r, &first_if)?;
                // A kernel without the feature would refuse the route and fail the whole
                // testbed; leave it out and say so (tests about it skip on the same probe).
                if let Some(why) = crate::kernel::Features::get().missing(r.kernel_feature()) {
                    state
                        .skipped
                        .push(format!("{at} `{args}` not installed: {why}"));
                    continue;
                }
                s.push_str(&format!("route add {args}\n"));
            }
            if s.is_empty() {
                continue;
            }
            let f = node_dir(&plan.run_dir, &n.name).join("routes.ip");
            std::fs::write(&f, s)?;
            phase3.push((n, f.clone(), ip_batch(&ip, Some(holder), &f)?));
        }
        for (n, f, c) in phase3 {
            wait_ok(c, &format!("adding routes on node `{}`", n.name), &f)?;
        }
        for n in &topo.nodes {
            for argv in &n.commands {
                let dir = node_dir(&plan.run_dir, &n.name);
                let argv: Vec<String> = argv
                    .iter()
                    .map(|a| expand(a, &plan.bin_dir, &plan.topology_dir, &dir))
                    .collect();
                let prog = find_program(&argv[0]).unwrap_or_else(|| PathBuf::from(&argv[0]));
                let mut c = Command::new(prog);
                c.args(&argv[1..]).stdin(Stdio::null());
                ns::enter(&mut c, state.nodes[&n.name], false)?;
                let o = c
                    .output()
                    .with_context(|| format!("node `{}`: run {argv:?}", n.name))?;
                if !o.status.success() {
                    bail!(
                        "node `{}`: command {argv:?} failed ({}): {}",
                        n.name,
                        o.status,
                        String::from_utf8_lossy(&o.stderr).trim()
                    );
                }
            }
        }

        // DNS servers, one per view, inside their node.
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
                let log = std::fs::read_to_string(
                    plan.run_dir.join("dns").join(format!("{}.log", net.name)),
                )
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

        if plan.daemon {
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
