//! Host checks for the final-hop role (used by `hopd check`).
//!
//! The one that matters most: Linux drops every packet carrying an SRH — even with Segments
//! Left 0, even addressed to a local socket — unless `seg6_enabled` is 1 on *both* `all` and
//! the interface the packet arrived on (`ipv6_srh_rcv` in net/ipv6/exthdrs.c takes the minimum
//! of the two). Nothing is logged; connections simply never arrive.

use std::path::Path;

use super::config::{Config, Mode, TlsMode};

pub use crate::check::{Finding, Severity};

/// Checks the host against `cfg` by reading `/proc/sys` and, for direct ports, the listening
/// sockets in `/proc/net/tcp6` and `/proc/net/tcp` (this network namespace).
pub fn check_host(cfg: &Config) -> Vec<Finding> {
    let mut out = check_host_at(cfg, Path::new("/proc/sys/net/ipv6/conf"));
    let read = |paths: [&str; 2]| -> Vec<String> {
        paths
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    };
    let tcp = read(["/proc/net/tcp6", "/proc/net/tcp"]);
    let udp = read(["/proc/net/udp6", "/proc/net/udp"]);
    out.extend(direct_port_findings(cfg, &tcp, &udp));
    out
}

/// Ports with a socket in state LISTEN (`0A`) in `/proc/net/tcp{,6}` text.
fn listening_ports(tables: &[String]) -> Vec<u16> {
    local_ports(tables, Some("0A"))
}

/// Local ports of the sockets in `/proc/net/{tcp,udp}{,6}` text, of every state or only of
/// `state` (two hex digits: `0A` is a TCP listener).
pub(crate) fn local_ports(tables: &[String], state: Option<&str>) -> Vec<u16> {
    let mut ports = Vec::new();
    for t in tables {
        // "  sl  local_address rem_address   st ...": skip the header line.
        for line in t.lines().skip(1) {
            let w: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(st)) = (w.get(1), w.get(3)) else {
                continue;
            };
            if state.is_some_and(|want| *st != want) {
                continue;
            }
            if let Some(port) = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports
}

/// Whether a UDP socket in this network namespace is bound to `port` (`/proc/net/udp{,6}`);
/// `None` when neither table can be read.
pub(crate) fn udp_port_bound(port: u16) -> Option<bool> {
    let tables: Vec<String> = ["/proc/net/udp6", "/proc/net/udp"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    (!tables.is_empty()).then(|| local_ports(&tables, None).contains(&port))
}

/// A direct port nothing listens on is a warning, not an error: the service may start after
/// hopd, and clients fall back to hopd's port. But the fallback costs each client one failed
/// connect per probe, so say it.
/// A UDP service's direct port is looked for among the bound UDP sockets (`udp_tables`).
pub fn direct_port_findings(
    cfg: &Config,
    tcp_tables: &[String],
    udp_tables: &[String],
) -> Vec<Finding> {
    let listening = listening_ports(tcp_tables);
    let bound = local_ports(udp_tables, None);
    cfg.services
        .iter()
        .filter_map(|(name, s)| s.direct_port.map(|p| (name, s.mode == Mode::Udp, p)))
        .map(|(name, udp, port)| {
            let there = if udp { &bound } else { &listening };
            if there.contains(&port) {
                Finding::new(Severity::Ok, format!(
                        "service `{name}`: something listens on its direct port {port} (hopd advertises it; clients bypass hopd there)"
                    ), None)
            } else {
                let (proto, after) = if udp {
                    ("UDP", "a handshake that gets no answer")
                } else {
                    ("TCP", "a refused connect")
                };
                Finding::new(Severity::Warning, format!(
                        "service `{name}`: nothing listens on its direct port {port}; clients that try it fall back to hopd's port after {after}"
                    ), Some(format!(
                        "have the service also listen on [::]:{port} ({proto}), or remove direct_port"
                    )))
            }
        })
        .collect()
}

/// As [`check_host`], with the sysctl tree rooted elsewhere (tests).
pub fn check_host_at(cfg: &Config, conf: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Err(e) = cfg.validate() {
        out.push(Finding::new(
            Severity::Error,
            format!("final_hop configuration: {e}"),
            None,
        ));
    }
    let mut ifaces: Vec<String> = vec!["all".to_owned()];
    if cfg.ingress.is_empty() {
        out.push(Finding::new(
            Severity::Warning,
            "final_hop.ingress lists no interfaces; only `all` is checked for seg6_enabled"
                .to_owned(),
            Some("list the interfaces SRv6 traffic arrives on: ingress = [\"eth0\"]".to_owned()),
        ));
    }
    ifaces.extend(cfg.ingress.iter().cloned());
    for i in &ifaces {
        let p = conf.join(i).join("seg6_enabled");
        match std::fs::read_to_string(&p) {
            Ok(v) if v.trim() == "1" => out.push(Finding::new(Severity::Ok, format!("net.ipv6.conf.{i}.seg6_enabled = 1"), None)),
            Ok(v) => out.push(Finding::new(Severity::Error, format!(
                    "net.ipv6.conf.{i}.seg6_enabled = {}: the kernel silently drops every packet with an SRH arriving {}",
                    v.trim(),
                    if i == "all" { "on any interface" } else { "on this interface" }
                ), Some(format!(
                    "sysctl -w net.ipv6.conf.{i}.seg6_enabled=1 (persist it in /etc/sysctl.d/)"
                )))),
            Err(e) => out.push(Finding::new(Severity::Error, format!("cannot read {}: {e}", p.display()), Some(if i == "all" {
                    "the kernel lacks IPv6 segment routing (CONFIG_IPV6_SEG6_LWTUNNEL)".to_owned()
                } else {
                    format!("interface `{i}` does not exist or has IPv6 disabled; fix final_hop.ingress")
                }))),
        }
    }
    if !cfg.hmac_keys.is_empty() {
        out.extend(
            cfg.ingress
                .iter()
                .filter_map(|i| kernel_hmac_finding(i, conf)),
        );
    }
    for (name, s) in &cfg.services {
        if s.tls == TlsMode::Terminate {
            for (what, p) in [("cert", &s.cert), ("key", &s.key)] {
                if let Some(p) = p {
                    if let Err(e) = std::fs::metadata(p) {
                        out.push(Finding::new(
                            Severity::Error,
                            format!("service `{name}`: {what} {}: {e}", p.display()),
                            None,
                        ));
                    }
                }
            }
        }
        if s.mode == Mode::Proxy {
            if let Ok(super::Target::Unix(p)) = s.proxy_target(name) {
                if !p.exists() {
                    out.push(Finding::new(Severity::Warning, format!("service `{name}`: unix socket {} does not exist (yet); clients get service-down", p.display()), None));
                }
            }
        }
    }
    if let Some(dir) = cfg.control_socket.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            out.push(Finding::new(
                Severity::Warning,
                format!(
                    "control socket directory {} does not exist; hopd will create it",
                    dir.display()
                ),
                None,
            ));
        }
    }
    out
}

/// What the kernel does with an SRH HMAC arriving on `iface` before hopd sees it
/// (`seg6_hmac_validate_skb` with the interface's `seg6_require_hmac`), for a final hop that
/// verifies HMACs itself. `None` when the interface cannot be read (reported above).
fn kernel_hmac_finding(iface: &str, conf: &Path) -> Option<Finding> {
    if !conf.join(iface).exists() {
        return None;
    }
    let p = conf.join(iface).join("seg6_require_hmac");
    let fix = Some(format!(
        "sysctl -w net.ipv6.conf.{iface}.seg6_require_hmac=-1 (persist it in /etc/sysctl.d/), or give the kernel the same keys (ip sr hmac set ID ALG)"
    ));
    let f = match std::fs::read_to_string(&p).map(|v| v.trim().to_owned()) {
        Err(_) => Finding::new(
            Severity::Ok,
            format!(
                "the kernel has no SRH HMAC check ({} missing): hopd verifies alone",
                p.display()
            ),
            None,
        ),
        Ok(v) if v == "-1" => Finding::new(
            Severity::Ok,
            format!(
                "net.ipv6.conf.{iface}.seg6_require_hmac = -1: hopd verifies SRH HMACs arriving here"
            ),
            None,
        ),
        Ok(v) if v == "0" => Finding::new(
            Severity::Warning,
            format!(
                "net.ipv6.conf.{iface}.seg6_require_hmac = 0: the kernel silently drops signed packets whose key it does not hold (ip sr hmac) before hopd can verify or report them"
            ),
            fix,
        ),
        Ok(v) => Finding::new(
            Severity::Warning,
            format!(
                "net.ipv6.conf.{iface}.seg6_require_hmac = {v}: the kernel silently drops unsigned packets, and signed ones whose key it does not hold, before hopd sees them"
            ),
            fix,
        ),
    };
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_own_hmac_check_is_reported_where_hopd_has_keys() {
        let d = tempfile::tempdir().unwrap();
        for (i, v) in [
            ("all", "0\n"),
            ("eth0", "0\n"),
            ("eth1", "-1\n"),
            ("eth2", "1\n"),
        ] {
            std::fs::create_dir_all(d.path().join(i)).unwrap();
            std::fs::write(d.path().join(i).join("seg6_enabled"), "1\n").unwrap();
            std::fs::write(d.path().join(i).join("seg6_require_hmac"), v).unwrap();
        }
        let keys = "[[hmac_keys]]\nid = 7\nalgorithm = \"sha1\"\nsecret = \"s\"\nname = \"a\"\n";
        let text = format!(
            "ingress = [\"eth0\", \"eth1\", \"eth2\"]\ncontrol_socket = \"/tmp/hopd-check-test/c.sock\"\n{keys}"
        );
        let f = check_host_at(&Config::from_toml(&text).unwrap(), d.path());
        let about = |i: &str| {
            f.iter()
                .find(|f| f.what.contains(&format!("{i}.seg6_require_hmac")))
                .unwrap_or_else(|| panic!("nothing about {i}: {f:#?}"))
        };
        assert_eq!(about("eth0").severity, Severity::Warning);
        assert!(
            about("eth0")
                .fix
                .as_deref()
                .unwrap()
                .contains("eth0.seg6_require_hmac=-1")
        );
        assert_eq!(about("eth1").severity, Severity::Ok);
        assert_eq!(about("eth2").severity, Severity::Warning);
        assert!(about("eth2").what.contains("unsigned"));
        // Without keys hopd verifies nothing: no finding.
        let plain = text.replace(keys, "");
        let f = check_host_at(&Config::from_toml(&plain).unwrap(), d.path());
        assert!(
            !f.iter().any(|f| f.what.contains("seg6_require_hmac")),
            "{f:#?}"
        );
    }

    #[test]
    fn a_bound_udp_port_is_found_and_a_closed_one_is_not() {
        let s = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let port = s.local_addr().unwrap().port();
        assert_eq!(udp_port_bound(port), Some(true));
        drop(s);
        assert_eq!(udp_port_bound(port), Some(false));
    }

    #[test]
    fn direct_port_without_a_listener_is_a_warning() {
        let cfg = Config::from_toml(
            "[services.a]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\ndirect_port = 8080\n\
             [services.b]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\ndirect_port = 8081\n\
             [services.c]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\n",
        )
        .unwrap();
        // /proc/net/tcp6 format: 8080 (0x1F90) listening, 8081 (0x1F91) only as an
        // established connection's local port.
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F91 0000000000000000FFFF00000100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
";
        let f = direct_port_findings(&cfg, &[tcp6.to_owned()], &[]);
        assert_eq!(f.len(), 2, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Ok, "{f:#?}");
        assert!(f[0].what.contains("`a`") && f[0].what.contains("8080"));
        assert_eq!(f[1].severity, Severity::Warning, "{f:#?}");
        assert!(
            f[1].what
                .contains("nothing listens on its direct port 8081")
        );
        assert!(f[1].fix.as_deref().unwrap().contains("[::]:8081"));
        // A real listener in this namespace is found in the real tables.
        let l = std::net::TcpListener::bind("[::1]:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let tables: Vec<String> = ["/proc/net/tcp6", "/proc/net/tcp"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect();
        assert!(listening_ports(&tables).contains(&port));
    }

    /// `hopd check` names the service and why a PROXY header cannot go to a hand-off
    /// service.
    #[test]
    fn proxy_protocol_on_a_handoff_service_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("all")).unwrap();
        std::fs::write(d.path().join("all/seg6_enabled"), "1\n").unwrap();
        let cfg = Config::from_toml(
            "control_socket = \"/tmp/hopd-check-test/c.sock\"\n\
             [services.api]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\nproxy_protocol = \"v2\"\n",
        )
        .unwrap();
        let f = check_host_at(&cfg, d.path());
        let errs: Vec<_> = f.iter().filter(|f| f.severity == Severity::Error).collect();
        assert_eq!(errs.len(), 1, "{f:#?}");
        assert!(
            errs[0]
                .what
                .contains("service `api`: proxy_protocol works only in proxy and udp modes"),
            "{f:#?}"
        );
    }

    #[test]
    fn seg6_disabled_is_an_error_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        for (i, v) in [("all", "1\n"), ("eth0", "0\n")] {
            std::fs::create_dir_all(d.path().join(i)).unwrap();
            std::fs::write(d.path().join(i).join("seg6_enabled"), v).unwrap();
        }
        let cfg = Config::from_toml(
            "ingress = [\"eth0\", \"eth9\"]\ncontrol_socket = \"/tmp/hopd-check-test/c.sock\"",
        )
        .unwrap();
        let f = check_host_at(&cfg, d.path());
        let errs: Vec<_> = f.iter().filter(|f| f.severity == Severity::Error).collect();
        assert_eq!(errs.len(), 2, "{f:#?}");
        assert!(errs[0].what.contains("net.ipv6.conf.eth0.seg6_enabled = 0"));
        assert_eq!(
            errs[0].fix.as_deref(),
            Some("sysctl -w net.ipv6.conf.eth0.seg6_enabled=1 (persist it in /etc/sysctl.d/)")
        );
        assert!(
            errs[1]
                .fix
                .as_deref()
                .unwrap()
                .contains("`eth9` does not exist")
        );
        assert!(
            f.iter()
                .any(|f| f.severity == Severity::Ok
                    && f.what == "net.ipv6.conf.all.seg6_enabled = 1")
        );
    }
}
