//! The probe: install one route (or key) of each kind in a network namespace made for it.
//!
//! iproute2 does the talking for everything hopstack itself installs with iproute2, so the
//! probe fails exactly where hopd and the testbed would. End.BPF needs a loaded eBPF program,
//! which iproute2 only takes from an ELF object file; it is tried with `bpf(2)` and one
//! rtnetlink message instead, on a thread that has a network namespace of its own.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::{Feature, Features, Status};

/// Addresses from fc00:ffff::/32 inside the throw-away namespace; nothing outside sees them.
/// `try` keeps the kernel's message on one line.
const SCRIPT: &str = r#"
try() { tag=$1; shift; if out=$("$@" 2>&1 </dev/null); then echo "$tag ok"; else echo "$tag no" $out; fi; }
if ! out=$("$IP" link set lo up 2>&1); then echo "lo no" $out; exit 0; fi
try seg6-inline "$IP" -6 route add fc00:ffff:1::/64 encap seg6 mode inline segs fc00:ffff::1 dev lo
try seg6-encap "$IP" -6 route add fc00:ffff:2::/64 encap seg6 mode encap segs fc00:ffff::1 dev lo
try seg6local-end "$IP" -6 route add fc00:ffff:3::1/128 encap seg6local action End dev lo
try seg6local-end-dx6 "$IP" -6 route add fc00:ffff:3::2/128 encap seg6local action End.DX6 nh6 fc00:ffff::2 dev lo
# `ip sr hmac set` reads the secret with getpass(3): from stdin, as there is no terminal (setsid).
if out=$(printf 'hopstack-probe\n' | "$IP" sr hmac set 1 sha256 2>&1); then echo "seg6-hmac ok"; else echo "seg6-hmac no" $out; fi
"#;

pub(crate) fn run() -> Features {
    let mut features = match iproute2_probe() {
        Ok(f) => f,
        Err(why) => Features::all(Status::Untested { why }),
    };
    features.set(Feature::Seg6LocalEndBpf, end_bpf_probe());
    // End.BPF is a seg6local action: without seg6local, say that rather than a BPF error.
    if let Status::Absent { said } = features.status(Feature::Seg6LocalEnd).clone() {
        features.set(Feature::Seg6LocalEndBpf, Status::Absent { said });
    }
    features
}

fn find_ip() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join("ip"))
        .find(|p| p.is_file())
}

fn iproute2_probe() -> Result<Features, String> {
    let ip = find_ip().ok_or("iproute2 `ip` not found")?;
    // SAFETY: these three calls have no preconditions.
    let (uid, gid, euid) = unsafe { (libc::getuid(), libc::getgid(), libc::geteuid()) };
    // Root (of whatever user namespace) may make a network namespace; anyone else first
    // becomes root of a new user namespace that maps only their own ids.
    let own_userns = euid != 0;
    let files = [
        ("/proc/self/setgroups", "deny".to_string()),
        ("/proc/self/uid_map", format!("0 {uid} 1")),
        ("/proc/self/gid_map", format!("0 {gid} 1")),
    ]
    .map(|(p, v)| (CString::new(p).expect("no NUL"), v.into_bytes()));
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(SCRIPT)
        .env("IP", &ip)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs between fork and exec and only makes system calls on data
    // prepared before the fork (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            // No controlling terminal: getpass(3) then reads stdin instead of prompting.
            libc::setsid();
            let flags = libc::CLONE_NEWNET | if own_userns { libc::CLONE_NEWUSER } else { 0 };
            if libc::unshare(flags) != 0 {
                return Err(io::Error::last_os_error());
            }
            if own_userns {
                for (path, value) in &files {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    let n = libc::write(fd, value.as_ptr().cast(), value.len());
                    libc::close(fd);
                    if n < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        });
    }
    let out = cmd.output().map_err(|e| {
        let how = if own_userns {
            "a user and network namespace"
        } else {
            "a network namespace"
        };
        format!("cannot make {how} to try the features in: {e}")
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if let Some(said) = stdout.lines().find_map(|l| l.strip_prefix("lo no")) {
        return Err(format!(
            "`ip link set lo up` failed in the probe namespace:{said}"
        ));
    }
    let mut features = Features::all(Status::Untested {
        why: format!(
            "the probe printed no verdict (stderr: {})",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    });
    for line in stdout.lines() {
        let Some((tag, verdict)) = line.split_once(' ') else {
            continue;
        };
        let Some(feature) = Feature::from_name(tag) else {
            continue;
        };
        let status = match verdict.strip_prefix("no") {
            None => Status::Present,
            // What getpass(3) prompted is not what the kernel said.
            Some(said) => verdict_of(
                feature,
                said.rsplit("(blank to delete): ")
                    .next()
                    .unwrap_or(said)
                    .trim(),
            ),
        };
        features.set(feature, status);
    }
    Ok(features)
}

/// What a refusal means: a missing feature, or only a missing privilege.
fn verdict_of(feature: Feature, said: &str) -> Status {
    if said.contains("Operation not permitted") {
        let why = if feature == Feature::Seg6Hmac {
            "`ip sr hmac set` needs CAP_NET_ADMIN in the initial user namespace (real root)"
        } else {
            "not permitted in the probe's namespace"
        };
        return Status::Untested {
            why: format!("{why}: {said}"),
        };
    }
    let said = if said.is_empty() {
        "refused without a message"
    } else {
        said
    };
    Status::Absent {
        said: said.to_owned(),
    }
}

/// End.BPF: load the smallest LWT_SEG6LOCAL program (`return BPF_OK`) and route a SID to it.
fn end_bpf_probe() -> Status {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Status::Untested {
            why: "loading an eBPF program needs root (CAP_BPF)".into(),
        };
    }
    // unshare(CLONE_NEWNET) moves only the calling thread; this one ends with the probe.
    std::thread::spawn(|| {
        // SAFETY: unshare has no memory preconditions.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Status::Untested {
                why: format!(
                    "cannot make a network namespace: {}",
                    io::Error::last_os_error()
                ),
            };
        }
        match bpf::try_end_bpf() {
            Ok(()) => Status::Present,
            Err(bpf::Failure::NotPermitted(why)) => Status::Untested { why },
            Err(bpf::Failure::Refused(said)) => Status::Absent { said },
        }
    })
    .join()
    .unwrap_or_else(|_| Status::Untested {
        why: "the End.BPF probe thread panicked".into(),
    })
}

mod bpf {
    use std::io;
    use std::mem::size_of;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    pub enum Failure {
        NotPermitted(String),
        Refused(String),
    }

    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_LWT_SEG6LOCAL: u32 = 19;
    const RTA_DST: u16 = 1;
    const RTA_OIF: u16 = 4;
    const RTA_ENCAP_TYPE: u16 = 21;
    const RTA_ENCAP: u16 = 22;
    const LWTUNNEL_ENCAP_SEG6_LOCAL: u16 = 7;
    const SEG6_LOCAL_ACTION: u16 = 1;
    const SEG6_LOCAL_BPF: u16 = 8;
    const SEG6_LOCAL_ACTION_END_BPF: u32 = 15;
    const SEG6_LOCAL_BPF_PROG: u16 = 1;
    const SEG6_LOCAL_BPF_PROG_NAME: u16 = 2;
    const NLA_F_NESTED: u16 = 0x8000;

    /// The first fields of `union bpf_attr` for BPF_PROG_LOAD; the rest stays zero.
    #[repr(C)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        rest: [u8; 96],
    }

    fn last(what: &str) -> (io::Error, String) {
        let e = io::Error::last_os_error();
        let s = format!("{what}: {e}");
        (e, s)
    }

    pub fn try_end_bpf() -> Result<(), Failure> {
        lo_up().map_err(|(_, s)| Failure::NotPermitted(s))?;
        let prog = load_program().map_err(|(e, s)| match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Failure::NotPermitted(s),
            _ => Failure::Refused(s),
        })?;
        add_route(prog.as_raw_fd()).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) => Failure::NotPermitted(format!("RTM_NEWROUTE End.BPF: {e}")),
            _ => Failure::Refused(format!("RTM_NEWROUTE End.BPF: {e}")),
        })
    }

    fn lo_up() -> Result<(), (io::Error, String)> {
        // SAFETY: plain socket call; the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(last("socket"));
        }
        // SAFETY: fd is fresh and owned only here.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ifreq is plain data; all-zero is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *s as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq passed.
        unsafe {
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
                return Err(last("SIOCGIFFLAGS lo"));
            }
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
                return Err(last("SIOCSIFFLAGS lo up"));
            }
        }
        Ok(())
    }

    fn load_program() -> Result<OwnedFd, (io::Error, String)> {
        // r0 = 0 (BPF_OK); exit
        let insns: [u64; 2] = [
            u64::from_le_bytes([0xb7, 0, 0, 0, 0, 0, 0, 0]),
            u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
        ];
        let license = b"GPL\0";
        let attr = ProgLoad {
            prog_type: BPF_PROG_TYPE_LWT_SEG6LOCAL,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: 0,
            log_size: 0,
            log_buf: 0,
            kern_version: 0,
            prog_flags: 0,
            rest: [0; 96],
        };
        // SAFETY: attr points at a valid bpf_attr prefix of the size given; the kernel reads
        // insns and license through the pointers, which outlive the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_LOAD,
                &attr as *const ProgLoad,
                size_of::<ProgLoad>() as u32,
            )
        };
        if fd < 0 {
            return Err(last("BPF_PROG_LOAD (lwt_seg6local)"));
        }
        // SAFETY: the kernel returned a fresh program fd.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
    }

    fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        buf.extend_from_slice(&(len as u16).to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(payload);
        buf.resize(buf.len().next_multiple_of(4), 0);
    }

    fn nested(buf: &mut Vec<u8>, kind: u16, inner: impl FnOnce(&mut Vec<u8>)) {
        let mut body = Vec::new();
        inner(&mut body);
        attr(buf, kind | NLA_F_NESTED, &body);
    }

    /// RTM_NEWROUTE fc00:ffff:4::1/128 dev lo encap seg6local action End.BPF (program `fd`).
    fn add_route(fd: libc::c_int) -> io::Result<()> {
        let mut msg = vec![0u8; 16]; // nlmsghdr, filled last
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
        msg.extend_from_slice(&[libc::AF_INET6 as u8, 128, 0, 0, 254, 3, 0, 1]);
        msg.extend_from_slice(&0u32.to_ne_bytes());
        let dst: std::net::Ipv6Addr = "fc00:ffff:4::1".parse().expect("valid");
        attr(&mut msg, RTA_DST, &dst.octets());
        attr(&mut msg, RTA_OIF, &1u32.to_ne_bytes()); // lo is ifindex 1 in a new namespace
        attr(
            &mut msg,
            RTA_ENCAP_TYPE,
            &LWTUNNEL_ENCAP_SEG6_LOCAL.to_ne_bytes(),
        );
        nested(&mut msg, RTA_ENCAP, |b| {
            attr(
                b,
                SEG6_LOCAL_ACTION,
                &SEG6_LOCAL_ACTION_END_BPF.to_ne_bytes(),
            );
            nested(b, SEG6_LOCAL_BPF, |b| {
                attr(b, SEG6_LOCAL_BPF_PROG, &(fd as u32).to_ne_bytes());
                attr(b, SEG6_LOCAL_BPF_PROG_NAME, b"hopstack-probe\0");
            });
        });
        let len = msg.len() as u32;
        let flags =
            (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
        msg[0..4].copy_from_slice(&len.to_ne_bytes());
        msg[4..6].copy_from_slice(&libc::RTM_NEWROUTE.to_ne_bytes());
        msg[6..8].copy_from_slice(&flags.to_ne_bytes());
        msg[8..12].copy_from_slice(&1u32.to_ne_bytes()); // sequence

        // SAFETY: plain socket call; the fd is owned below.
        let s = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: s is fresh and owned only here.
        let sock = unsafe { OwnedFd::from_raw_fd(s) };
        // SAFETY: msg is valid for its length; the kernel is the peer (no address needed
        // on an unbound netlink socket: it binds on send and talks to pid 0).
        let sent = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut reply = [0u8; 4096];
        // SAFETY: reading into a valid buffer of the given length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        // An ack is an NLMSG_ERROR whose error field (after the 16-octet header) is 0.
        let kind = u16::from_ne_bytes([reply[4], reply[5]]);
        if n < 20 || kind != libc::NLMSG_ERROR as u16 {
            return Err(io::Error::other(format!(
                "unexpected netlink reply (type {kind}, {n} octets)"
            )));
        }
        let err = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        if err == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(-err))
        }
    }
}
