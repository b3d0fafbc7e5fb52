//! The pieces the end-to-end tests of the three-hop path share: a throw-away CA with a
//! server certificate, hopd's border and final-hop configurations, and the host's Python for
//! small test services. Each test support module (client, hoptrace, final hop) builds its bed
//! from these instead of its own copy.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The border SIDs of the three-hop topologies: github.com, then org.
pub const BORDER_SIDS: [(&str, &str); 2] = [("github", "fc00:1::e"), ("org", "fc00:2::e")];

/// PEM files of a test CA and one server certificate it signed.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// `ca.pem`: what a client trusts (`--cacert`).
    pub ca: PathBuf,
    /// `<stem>.pem` and `<stem>.key`: the server's certificate and key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA named `ca_name` and a certificate for `names` (the first also its common name),
/// written into `dir` as `ca.pem`, `<stem>.pem` and `<stem>.key`.
pub fn write_test_ca(dir: &Path, ca_name: &str, stem: &str, names: &[&str]) -> TestCerts {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("server key");
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("server params");
    if let Some(cn) = names.first() {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, *cn);
    }
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let out = TestCerts {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
    };
    std::fs::write(&out.ca, ca.pem()).expect("write ca.pem");
    std::fs::write(&out.cert, cert.pem()).expect("write certificate");
    std::fs::write(&out.key, key.serialize_pem()).expect("write key");
    out
}

/// hopd's configuration for a border node: `node_name`, TUN `hop0`, one SID, and `extra`
/// lines for the `[border]` table.
pub fn border_toml(node: &str, sid: &str, extra: &str) -> String {
    format!("node_name = \"{node}\"\n[border]\ntun = \"hop0\"\nsids = [\"{sid}\"]\n{extra}")
}

/// `policy.allowed_next_hops` of the borders of [`BORDER_SIDS`], as the shipped three-hop
/// topology has them: the prefixes behind each border (a cached path writes their addresses).
pub const BORDER_ALLOWED_NEXT_HOPS: [&str; 2] = [
    r#"["fc00:2::/64", "fd00:2::/64", "fd00:3::/64"]"#,
    r#"["fd00:3::/64"]"#,
];

/// Writes `hopd-github.toml` and `hopd-org.toml` into `dir` ([`BORDER_SIDS`]), each with
/// `extra(node)` in its `[border]` table and, unless `extra` has its own `[border.policy]`,
/// the shipped topology's [`BORDER_ALLOWED_NEXT_HOPS`].
pub fn write_border_configs(dir: &Path, extra: impl Fn(usize) -> String) {
    for (i, (node, sid)) in BORDER_SIDS.into_iter().enumerate() {
        let mut extra = extra(i);
        if !extra.contains("[border.policy]") {
            extra.push_str(&format!(
                "[border.policy]\nallowed_next_hops = {}\n",
                BORDER_ALLOWED_NEXT_HOPS[i]
            ));
        }
        std::fs::write(
            dir.join(format!("hopd-{node}.toml")),
            border_toml(node, sid, &extra),
        )
        .expect("write border configuration");
    }
}

/// One `[final_hop.services.NAME]` table.
#[derive(Debug, Clone, Default)]
pub struct ServiceToml<'a> {
    pub name: &'a str,
    /// `proxy`, `handoff` or `udp`.
    pub mode: &'a str,
    /// `tcp:[::1]:8080`, `unix:/path`, `[::1]:53`; none in hand-off mode.
    pub target: Option<&'a str>,
    /// Accepted layer stacks, e.g. `["tcp+tls+http"]`.
    pub layers: &'a [&'a str],
    /// `tls = "terminate"` with these certificate and key files.
    pub terminate: Option<(&'a Path, &'a Path)>,
    /// `direct_port`: the port clients may connect to the service on directly.
    pub direct_port: Option<u16>,
}

impl<'a> ServiceToml<'a> {
    /// A proxy-mode service.
    pub fn proxy(name: &'a str, target: &'a str, layers: &'a [&'a str]) -> Self {
        ServiceToml {
            name,
            mode: "proxy",
            target: Some(target),
            layers,
            terminate: None,
            direct_port: None,
        }
    }

    /// A hand-off service (its process registers on hopd's control socket).
    pub fn handoff(name: &'a str, layers: &'a [&'a str]) -> Self {
        ServiceToml {
            name,
            mode: "handoff",
            layers,
            ..Default::default()
        }
    }

    /// A UDP relay service.
    pub fn udp(name: &'a str, target: &'a str, layers: &'a [&'a str]) -> Self {
        ServiceToml {
            mode: "udp",
            ..Self::proxy(name, target, layers)
        }
    }

    /// The same, with TLS terminated by hopd.
    pub fn terminating(self, cert: &'a Path, key: &'a Path) -> Self {
        ServiceToml {
            terminate: Some((cert, key)),
            ..self
        }
    }

    /// The same, with a direct port.
    pub fn direct_port(self, port: u16) -> Self {
        ServiceToml {
            direct_port: Some(port),
            ..self
        }
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "\n[final_hop.services.{}]", self.name);
        let _ = writeln!(out, "mode = \"{}\"", self.mode);
        if let Some(t) = self.target {
            let _ = writeln!(out, "target = \"{t}\"");
        }
        let layers: Vec<String> = self.layers.iter().map(|l| format!("\"{l}\"")).collect();
        let _ = writeln!(out, "layers = [{}]", layers.join(", "));
        if let Some((cert, key)) = self.terminate {
            let _ = writeln!(out, "tls = \"terminate\"");
            let _ = writeln!(out, "cert = \"{}\"", cert.display());
            let _ = writeln!(out, "key = \"{}\"", key.display());
        }
        if let Some(port) = self.direct_port {
            let _ = writeln!(out, "direct_port = {port}");
        }
    }
}

/// The `[final_hop.services.*]` tables of `services`.
pub fn services_toml(services: &[ServiceToml<'_>]) -> String {
    let mut out = String::new();
    for s in services {
        s.write(&mut out);
    }
    out
}

/// hopd's configuration for the final hop `hop_name`, listening on `[::]:7443`, its control
/// socket in `dir`, with `services`.
pub fn final_hop_toml(hop_name: &str, dir: &Path, services: &[ServiceToml<'_>]) -> String {
    let mut out = format!(
        "node_name = \"{hop_name}\"\n[final_hop]\nlisten = \"[::]:7443\"\nhop_name = \"{hop_name}\"\n\
         control_socket = \"{}/{hop_name}-control.sock\"\n",
        dir.display()
    );
    out.push_str(&services_toml(services));
    out
}

/// yc's configuration in the three-hop beds: the web services on [::1]:8080 (`restapiv3`
/// over end-to-end TLS that hopd terminates with `certs`, `web` over plain HTTP), then
/// `more` — what each bed adds for its own tests — written to `dir/hopd-yc.toml`.
pub fn write_yc_config(dir: &Path, certs: &TestCerts, more: &[ServiceToml<'_>]) {
    let mut services = vec![
        ServiceToml::proxy("restapiv3", "tcp:[::1]:8080", &["tcp+tls+http"])
            .terminating(&certs.cert, &certs.key),
        ServiceToml::proxy("web", "tcp:[::1]:8080", &["tcp+http"]),
    ];
    services.extend_from_slice(more);
    let yc = final_hop_toml("yc", dir, &services);
    std::fs::write(dir.join("hopd-yc.toml"), yc).expect("write hopd-yc.toml");
}

/// On `node` of `tb`, Python's `http.server` serving the directory `root` on `[bind]:port`
/// (process name `http`).
pub fn spawn_http_server(
    tb: &crate::Testbed,
    node: &str,
    bind: &str,
    root: &Path,
    port: u16,
) -> Result<u32, crate::Error> {
    let (py, root, port) = (python(), root.display().to_string(), port.to_string());
    let argv = [py.as_str(), "-m", "http.server", "--bind", bind];
    tb.spawn(
        node,
        "http",
        argv.into_iter().chain(["--directory", &root, &port]),
    )
}

/// The hopds of the three-hop beds on github.com, org and yc, each reading
/// `dir/hopd-<github|org|yc>.toml` ([`write_border_configs`], [`write_yc_config`]).
pub fn spawn_three_hopds(tb: &crate::Testbed, hopd: &Path, dir: &Path) -> Result<(), crate::Error> {
    let hopd = hopd.display().to_string();
    for (node, cfg) in [("github.com", "github"), ("org", "org"), ("yc", "yc")] {
        let config = dir.join(format!("hopd-{cfg}.toml")).display().to_string();
        tb.spawn(node, "hopd", [hopd.as_str(), "--config", &config])?;
    }
    Ok(())
}

/// The host's Python interpreter, for test services run inside the namespaces.
pub fn python() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed for the test services");
    String::from_utf8(out.stdout)
        .expect("a path")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_hop_configuration_parses_as_hopd_reads_it() {
        let dir = Path::new("/run/t");
        let (cert, key) = (Path::new("/run/t/yc.pem"), Path::new("/run/t/yc.key"));
        let text = final_hop_toml(
            "yc",
            dir,
            &[
                ServiceToml::proxy("restapiv3", "tcp:[::1]:8080", &["tcp+tls+http"])
                    .terminating(cert, key),
                ServiceToml::udp("uecho", "[::1]:7", &["udp"]),
            ],
        );
        let v: toml::Value = toml::from_str(&text).unwrap();
        let f = &v["final_hop"];
        assert_eq!(f["control_socket"].as_str(), Some("/run/t/yc-control.sock"));
        let api = &f["services"]["restapiv3"];
        assert_eq!(api["tls"].as_str(), Some("terminate"));
        assert_eq!(api["cert"].as_str(), Some("/run/t/yc.pem"));
        assert_eq!(api["layers"][0].as_str(), Some("tcp+tls+http"));
        assert_eq!(f["services"]["uecho"]["mode"].as_str(), Some("udp"));
        assert!(f["services"]["uecho"].get("tls").is_none());
        for (i, (node, _)) in BORDER_SIDS.into_iter().enumerate() {
            let shipped = std::fs::read_to_string(format!(
                "{}/topologies/three-hop/hopd-{node}.toml",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let shipped: toml::Value = toml::from_str(&shipped).unwrap();
            let ours: toml::Value =
                toml::from_str(&format!("x = {}", BORDER_ALLOWED_NEXT_HOPS[i])).unwrap();
            assert_eq!(
                shipped["border"]["policy"]["allowed_next_hops"], ours["x"],
                "{node}: the tests' borders forward where the shipped ones do"
            );
        }
        let b: toml::Value = toml::from_str(&border_toml("org", "fc00:2::e", "x = 1\n")).unwrap();
        assert_eq!(b["border"]["sids"][0].as_str(), Some("fc00:2::e"));
        assert_eq!(b["border"]["x"].as_integer(), Some(1));
    }
}
