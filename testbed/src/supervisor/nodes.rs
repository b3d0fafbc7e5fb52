//! Building the nodes: the user namespace the supervisor becomes root in, one holder process
//! per node, and the phases that give them links, addresses, routes and commands.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

use super::{Plan, State, expand, find_program, node_dir};
use crate::ns;
use crate::topology::srv6_route_args;

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
pub(super) fn become_root_in_userns(
    identity_map: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
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

pub(super) fn fork_holder(node: &str, dir: &Path) -> anyhow::Result<u32> {
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

/// Phase 1: veth pairs, created directly inside the two nodes (never in a shared netns,
/// so equal names like eth0 in different nodes do not clash).
pub(super) fn create_links(plan: &Plan, ip: &Path, state: &State) -> anyhow::Result<()> {
    let topo = &plan.topology;
    if topo.links.is_empty() {
        return Ok(());
    }
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
    wait_ok(ip_batch(ip, None, &f)?, "creating veth links", &f)?;
    Ok(())
}

/// Phase 2 (all nodes in parallel): interfaces up, addresses.
pub(super) fn configure_nodes(plan: &Plan, ip: &Path, state: &State) -> anyhow::Result<()> {
    let topo = &plan.topology;
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
        phase2.push((n, f.clone(), ip_batch(ip, Some(state.nodes[&n.name]), &f)?));
    }
    for (n, f, c) in phase2 {
        wait_ok(c, &format!("configuring node `{}`", n.name), &f)?;
    }
    Ok(())
}

/// Phase 3 (all nodes in parallel): sysctls and routes. Routes come after every node's
/// links are up, because a gateway is only accepted once its on-link prefix exists. A route
/// this kernel cannot install is left out and listed in `state.skipped`.
pub(super) fn add_routes(plan: &Plan, ip: &Path, state: &mut State) -> anyhow::Result<()> {
    let topo = &plan.topology;
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
        phase3.push((n, f.clone(), ip_batch(ip, Some(holder), &f)?));
    }
    for (n, f, c) in phase3 {
        wait_ok(c, &format!("adding routes on node `{}`", n.name), &f)?;
    }
    Ok(())
}

/// Each node's `commands`, in order; the first that fails fails the testbed.
pub(super) fn run_node_commands(plan: &Plan, state: &State) -> anyhow::Result<()> {
    let topo = &plan.topology;
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

    Ok(())
}
