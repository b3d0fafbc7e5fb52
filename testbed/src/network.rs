//! Faults and queries on the network: links up and down, netem, the DNS views, and name
//! resolution and ping from a node.

use std::net::IpAddr;
use std::time::Duration;

use crate::supervisor::{node_dir, zone_file};
use crate::{DnsFault, Error, Testbed, dns, io};

impl Testbed {
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
}
