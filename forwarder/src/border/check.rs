//! `hopd check` for the border role: is the configuration coherent, and can this host run it?
//! Every problem comes with the command that fixes it.

use std::path::Path;

use hopstack_kernel::{Feature, Features};

use super::Config;
use super::tun::PacketIo as _;

pub use crate::check::{Finding, Severity};

/// The border's findings say whose they are: `ok: border: …`.
const SCOPE: &str = "border";

fn ok(what: impl Into<String>) -> Finding {
    Finding::ok(what).of(SCOPE)
}

fn bad(severity: Severity, what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding::bad(severity, what, fix).of(SCOPE)
}

/// Configuration checks that need no host access.
pub fn check_config(cfg: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    match cfg.validate() {
        Ok(()) => {
            out.push(ok(format!(
                "configuration: {} SID(s) on TUN {}",
                cfg.sids.len(),
                cfg.tun
            )));
            out.push(next_hop_policy(cfg));
            if !cfg.kernel_end_sids.is_empty() {
                let list: Vec<String> = cfg.kernel_end_sids.iter().map(|k| k.to_string()).collect();
                out.push(ok(format!(
                    "kernel fast path: {} (seg6local End on {}{}); packets sent there bypass \
                     hopd: no late binding, no trace, and policy.max_segments = {} is not \
                     enforced there",
                    list.join(", "),
                    cfg.tun,
                    if cfg.install_routes {
                        ""
                    } else {
                        ", install_routes = false: install the routes yourself"
                    },
                    cfg.policy.max_segments
                )));
            }
        }
        Err(e) => out.push(bad(
            Severity::Error,
            format!("configuration: {e}"),
            "edit the [border] table of the configuration file",
        )),
    }
    match std::fs::read(&cfg.resolver.resolv_conf) {
        Err(e) => out.push(bad(
            Severity::Error,
            format!(
                "resolver: cannot read {}: {e}",
                cfg.resolver.resolv_conf.display()
            ),
            "point [border.resolver] resolv_conf at this node's resolv.conf",
        )),
        Ok(text) => match hickory_resolver::system_conf::parse_resolv_conf(text) {
            Ok((conf, _)) => out.push(ok(format!(
                "resolver: {} name server(s) from {}",
                conf.name_servers().len(),
                cfg.resolver.resolv_conf.display()
            ))),
            Err(e) => out.push(bad(
                Severity::Error,
                format!("resolver: {}: {e}", cfg.resolver.resolv_conf.display()),
                "add a `nameserver ADDRESS` line",
            )),
        },
    }
    out
}

/// Where this border forwards to, and a warning when that is anywhere.
fn next_hop_policy(cfg: &Config) -> Finding {
    let policy = &cfg.policy;
    if policy.is_open_relay() {
        let why = if cfg.kernel_end_sids.is_empty() {
            ""
        } else {
            " (kernel_end_sids need it: the kernel's End forwards anywhere)"
        };
        return bad(
            Severity::Warning,
            format!(
                "next hops: policy.allowed_next_hops has ::/0: anyone may send packets through \
                 this border to any address behind it{why}"
            ),
            "list only the prefixes behind this border, e.g. allowed_next_hops = \
             [\"fd00:2::/48\"] (and drop kernel_end_sids)",
        );
    }
    if policy.allowed_next_hops.is_empty() {
        return ok(
            "next hops: only addresses hop names resolve to here; segments written as \
             addresses (clients' cached paths, kernel headends) are refused until their \
             prefixes are in policy.allowed_next_hops",
        );
    }
    let list: Vec<String> = policy
        .allowed_next_hops
        .iter()
        .map(|p| p.to_string())
        .collect();
    ok(format!(
        "next hops: only inside {} (names and written addresses alike)",
        list.join(", ")
    ))
}

fn read_sysctl(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Host checks, with `/proc/sys/net/ipv6` rooted at `sysctl_root` (tests point it elsewhere).
pub fn check_host_at(cfg: &Config, sysctl_root: &Path, if_inet6: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    match read_sysctl(sysctl_root, "conf/all/forwarding").as_deref() {
        Some("1") => out.push(ok("net.ipv6.conf.all.forwarding = 1")),
        Some(v) => out.push(bad(
            Severity::Error,
            format!(
                "net.ipv6.conf.all.forwarding = {v}: the kernel will not forward what hopd \
                 writes back to {}",
                cfg.tun
            ),
            "sysctl -w net.ipv6.conf.all.forwarding=1 (persist it in /etc/sysctl.d/)",
        )),
        None => out.push(bad(
            Severity::Error,
            "IPv6 is not available (no net.ipv6.conf.all.forwarding)",
            "enable IPv6 in the kernel / network namespace",
        )),
    }
    if read_sysctl(sysctl_root, "conf/all/disable_ipv6").as_deref() == Some("1") {
        out.push(bad(
            Severity::Error,
            "net.ipv6.conf.all.disable_ipv6 = 1",
            "sysctl -w net.ipv6.conf.all.disable_ipv6=0",
        ));
    }
    // Transit SRH packets are forwarded, never delivered, so seg6_enabled does not apply to
    // them. It does apply when the same node is also a final hop or a kernel SRv6 endpoint.
    match read_sysctl(sysctl_root, "conf/all/seg6_enabled").as_deref() {
        Some("1") => out.push(ok("net.ipv6.conf.all.seg6_enabled = 1")),
        // Fine for the border, so not a warning; the fix is for a node that is more.
        Some(v) => out.push(bad(
            Severity::Ok,
            format!(
                "net.ipv6.conf.all.seg6_enabled = {v}: fine for the border (SIDs are routed \
                 into the TUN, the kernel only forwards), but SRH packets addressed to this \
                 host itself are dropped"
            ),
            "if this node is also a final hop: sysctl -w net.ipv6.conf.all.seg6_enabled=1 \
             and the same for each ingress interface",
        )),
        None => {}
    }
    // A SID that is also a local address is delivered locally instead of reaching the TUN.
    let local = std::fs::read_to_string(if_inet6).unwrap_or_default();
    for sid in &cfg.sids {
        let clash = local
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .find(|hex| {
                u128::from_str_radix(hex, 16)
                    .map(|v| sid.contains(&std::net::Ipv6Addr::from(v)))
                    .unwrap_or(false)
            });
        if let Some(hex) = clash {
            out.push(bad(
                Severity::Error,
                format!("SID {sid} covers the local address {hex}: the kernel delivers it locally instead of routing it into {}", cfg.tun),
                "remove the address (ip -6 addr del ...) or serve a different SID".to_string(),
            ));
        }
    }
    // The local table is looked up before main: a kernel End SID that is a local address
    // is delivered to this host and never reaches its seg6local route.
    for k in &cfg.kernel_end_sids {
        let clash = local
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .any(|hex| u128::from_str_radix(hex, 16).is_ok_and(|v| v == u128::from(k.addr())));
        if clash {
            out.push(bad(
                Severity::Error,
                format!(
                    "kernel End SID {k} is a local address: the kernel delivers it locally \
                     instead of doing End there"
                ),
                "remove the address (ip -6 addr del ...) or pick another kernel_end_sids entry",
            ));
        }
    }
    out
}

/// Kernel features the configuration would use, against what `features` says this kernel has.
/// A missing one is a warning, not an error: hopd then starts without what needs it.
pub fn check_kernel(cfg: &Config, features: &Features) -> Vec<Finding> {
    let mut out = Vec::new();
    if cfg.kernel_end_sids.is_empty() {
        return out;
    }
    let list: Vec<String> = cfg.kernel_end_sids.iter().map(|k| k.to_string()).collect();
    match features.missing(Feature::Seg6LocalEnd) {
        None => out.push(ok(
            "kernel fast path: this kernel has seg6local End (tried in a scratch namespace)",
        )),
        Some(why) => out.push(bad(
            Severity::Warning,
            format!(
                "kernel fast path unavailable: {why}. hopd starts without it: kernel_end_sids \
                 ({}) are not installed, trace records advertise End Function 0, and clients \
                 keep using hopd's SIDs (hopd_border_kernel_fast_path_active 0)",
                list.join(", ")
            ),
            format!(
                "run hopd on a kernel built with {}=y (most distribution kernels are), or \
                 remove kernel_end_sids from [border]",
                Feature::Seg6LocalEnd.kernel_option()
            ),
        )),
    }
    out
}

/// The in-kernel End: can this host load its program (the kernel's verifier runs here; the
/// program is not attached)?
pub fn check_ebpf_end(cfg: &Config) -> Vec<Finding> {
    if !cfg.ebpf_end || cfg.validate().is_err() {
        return Vec::new();
    }
    if let Some(why) = super::bpf::KernelEnd::unsupported_by(cfg) {
        return vec![ok(format!(
            "in-kernel End off ({why}): every packet to the SIDs goes through hopd"
        ))];
    }
    match super::bpf::Program::load(cfg) {
        Ok(_) => vec![ok(
            "in-kernel End: the kernel verified the eBPF program; hopd attaches it at the \
             ingress of every Ethernet interface (TCX, kernel 6.6 and later)",
        )],
        Err(e) => vec![bad(
            Severity::Warning,
            format!(
                "in-kernel End unavailable ({e}): every packet to the SIDs goes through the TUN, \
                 a fraction of the speed"
            ),
            "run hopd as root of the host (CAP_BPF, CAP_NET_ADMIN; a user namespace cannot load \
             eBPF) on a kernel with CONFIG_BPF_SYSCALL and TCX (6.6), or set ebpf_end = false",
        )],
    }
}

/// All border checks against this host: configuration, sysctls, kernel features, TUN.
pub fn check(cfg: &Config) -> Vec<Finding> {
    let mut out = check_config(cfg);
    out.extend(check_kernel(cfg, Features::get()));
    out.extend(check_ebpf_end(cfg));
    out.extend(check_host_at(
        cfg,
        Path::new("/proc/sys/net/ipv6"),
        Path::new("/proc/net/if_inet6"),
    ));
    if !Path::new("/dev/net/tun").exists() {
        out.push(bad(
            Severity::Error,
            "/dev/net/tun does not exist",
            "modprobe tun (and in a container: pass --device /dev/net/tun)",
        ));
    } else {
        // Opening a scratch device shows both that the driver works and that we may use it,
        // and which queues and offloads the kernel grants the real one.
        let workers = cfg.worker_count();
        match super::tun::Tun::open_queues("hopdchk0", workers, cfg.offload) {
            Ok((t, off)) => {
                out.push(ok(format!(
                    "TUN devices can be created ({}): {} queue(s) for {workers} worker(s), \
                     offloads {}",
                    t[0].name(),
                    off.queues,
                    off.describe()
                )));
                if off.queues < workers {
                    out.push(bad(
                        Severity::Warning,
                        format!(
                            "the kernel gave the TUN {} queue(s) for {workers} workers: one \
                             worker per queue runs",
                            off.queues
                        ),
                        "a kernel with IFF_MULTI_QUEUE (3.8 and later), or set workers",
                    ));
                }
                if cfg.offload && !off.tso {
                    out.push(bad(
                        Severity::Warning,
                        "the kernel refused TUN segmentation offload: every packet of a TCP \
                         stream crosses hopd on its own (hopd_border_tun_offload_info)",
                        "a kernel with TUNSETOFFLOAD TSO6 (2.6.27 and later)",
                    ));
                }
            }
            Err(e) => out.push(bad(
                Severity::Error,
                format!("cannot create a TUN device: {e}"),
                "run hopd as root or give it CAP_NET_ADMIN (AmbientCapabilities=CAP_NET_ADMIN)",
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hopstack_kernel::Status;

    fn tree(forwarding: &str, seg6: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("conf/all")).unwrap();
        std::fs::write(d.path().join("conf/all/forwarding"), forwarding).unwrap();
        std::fs::write(d.path().join("conf/all/seg6_enabled"), seg6).unwrap();
        std::fs::write(d.path().join("conf/all/disable_ipv6"), "0\n").unwrap();
        d
    }

    fn cfg() -> Config {
        Config {
            sids: vec!["fd00:1::1".parse().unwrap()],
            ..Config::default()
        }
    }

    #[test]
    fn an_open_relay_is_a_warning_and_the_default_is_not() {
        let policy_finding = |c: &Config| {
            check_config(c)
                .into_iter()
                .find(|f| f.what.starts_with("next hops:"))
                .expect("a next-hop finding")
        };
        let default = policy_finding(&cfg());
        assert_eq!(default.severity, Severity::Ok, "{default}");
        assert!(default.what.contains("only addresses hop names resolve to"));
        let mut open = cfg();
        open.policy.allowed_next_hops = vec!["::/0".parse().unwrap()];
        let warning = policy_finding(&open);
        assert_eq!(warning.severity, Severity::Warning, "{warning}");
        assert!(warning.what.contains("any address"), "{warning}");
        let mut listed = cfg();
        listed.policy.allowed_next_hops = vec!["fd00:2::/48".parse().unwrap()];
        let fine = policy_finding(&listed);
        assert_eq!(fine.severity, Severity::Ok);
        assert!(fine.what.contains("fd00:2::/48"), "{fine}");
    }

    #[test]
    fn forwarding_off_is_an_error_with_the_fix() {
        let d = tree("0\n", "1\n");
        let f = check_host_at(&cfg(), d.path(), Path::new("/nonexistent"));
        let e = f
            .iter()
            .find(|f| f.severity == Severity::Error)
            .expect("an error");
        assert!(e.what.contains("forwarding = 0"), "{e}");
        assert_eq!(
            e.fix.as_deref(),
            Some("sysctl -w net.ipv6.conf.all.forwarding=1 (persist it in /etc/sysctl.d/)")
        );
        let d = tree("1\n", "0\n");
        let f = check_host_at(&cfg(), d.path(), Path::new("/nonexistent"));
        assert!(f.iter().all(|f| f.severity == Severity::Ok), "{f:?}");
    }

    #[test]
    fn a_sid_that_is_a_local_address_is_an_error() {
        let d = tree("1\n", "1\n");
        let inet6 = d.path().join("if_inet6");
        std::fs::write(
            &inet6,
            "fd000001000000000000000000000001 02 80 00 80   eth0\n\
             00000000000000000000000000000001 01 80 10 80       lo\n",
        )
        .unwrap();
        let f = check_host_at(&cfg(), d.path(), &inet6);
        assert!(
            f.iter()
                .any(|f| f.severity == Severity::Error && f.what.contains("SID fd00:1::1/128")),
            "{f:?}"
        );
        // A kernel End SID that is a local address never reaches its seg6local route.
        std::fs::write(
            &inet6,
            "fd0000010000000000000000000000ee 02 80 00 80   eth0\n",
        )
        .unwrap();
        let mut c = cfg();
        c.kernel_end_sids = vec!["fd00:1::ee".parse().unwrap()];
        let f = check_host_at(&c, d.path(), &inet6);
        let errors: Vec<_> = f.iter().filter(|f| f.severity == Severity::Error).collect();
        assert_eq!(errors.len(), 1, "{f:?}");
        assert!(
            errors[0]
                .what
                .starts_with("kernel End SID fd00:1::ee/128 is a local address"),
            "{f:?}"
        );
    }

    #[test]
    fn a_kernel_without_seg6local_is_a_warning_with_the_kernel_option() {
        let mut c = cfg();
        assert!(check_kernel(&c, &Features::all(Status::Present)).is_empty());
        c.kernel_end_sids = vec!["fd00:1::ee".parse().unwrap()];
        let f = check_kernel(&c, &Features::all(Status::Present));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Ok);
        let lacking = Features::all(Status::Absent {
            said: "Error: lwt encapsulation type not supported.".into(),
        });
        let f = check_kernel(&c, &lacking);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning, "{f:?}");
        let text = f[0].to_string();
        assert!(
            text.starts_with(
                "warning: border: kernel fast path unavailable: kernel lacks seg6local End \
                 (CONFIG_IPV6_SEG6_LWTUNNEL; Error: lwt encapsulation type not supported.)."
            ),
            "{text}"
        );
        assert!(text.contains("End Function 0"), "{text}");
        assert!(
            text.contains("\n  fix: run hopd on a kernel built with CONFIG_IPV6_SEG6_LWTUNNEL=y"),
            "{text}"
        );
    }

    #[test]
    fn a_config_without_sids_is_rejected() {
        let f = check_config(&Config::default());
        assert!(
            f.iter()
                .any(|f| f.severity == Severity::Error && f.what.contains("no SIDs")),
            "{f:?}"
        );
    }
}
