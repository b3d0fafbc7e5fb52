//! The descriptors hopd may hold. A final hop needs several per connection (the client's
//! socket, the service's, a splice pipe pair: six for a proxied one) and one per UDP
//! session, far past the soft limit of 1024 most systems start a process with; the hard
//! limit is usually much higher. hopd raises its soft limit to the hard one at start, and
//! `hopd check` compares the result with what the configuration may need.

/// Descriptors one proxied TCP connection holds at most: client and service sockets and
/// a splice pipe pair each way.
pub const PER_PROXIED_CONNECTION: u64 = 6;

/// Descriptors hopd keeps besides its connections and sessions (listeners, TUN queues,
/// the control socket, logs, the runtime), with room to spare.
pub const BASE: u64 = 64;

/// The open-files limit as (soft, hard).
pub fn open_files() -> std::io::Result<(u64, u64)> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((l.rlim_cur, l.rlim_max))
}

/// Raises the soft open-files limit to the hard one; returns the limit now in force.
pub fn raise_open_files() -> std::io::Result<u64> {
    let (soft, hard) = open_files()?;
    if soft < hard {
        let l = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads one rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(open_files()?.0)
}

/// Descriptors a configuration may need at its limits: every TCP connection proxied, every
/// UDP session open.
pub fn budget(cfg: &crate::config::Config) -> u64 {
    let final_hop = cfg.final_hop.as_ref().map_or(0, |f| {
        f.max_connections as u64 * PER_PROXIED_CONNECTION + f.max_udp_sessions as u64
    });
    BASE + final_hop
}

/// Capabilities hopd needs only while it starts: binding a listen port below 1024. Dropped
/// from every set once every role serves, so that a flaw found later cannot use them;
/// CAP_NET_ADMIN (routes and the in-kernel End on reload), CAP_BPF and CAP_NET_RAW stay.
pub const START_UP_ONLY_CAPABILITIES: [caps::Capability; 1] =
    [caps::Capability::CAP_NET_BIND_SERVICE];

/// Drops [`START_UP_ONLY_CAPABILITIES`] from this process (ambient and inheritable first, so
/// programs hopd runs, like `ip`, do not get them either). Returns what it dropped.
pub fn drop_start_up_capabilities() -> Result<Vec<caps::Capability>, caps::errors::CapsError> {
    use caps::CapSet;
    let mut dropped = Vec::new();
    for cap in START_UP_ONLY_CAPABILITIES {
        if !caps::has_cap(None, CapSet::Permitted, cap)? {
            continue;
        }
        for set in [
            CapSet::Ambient,
            CapSet::Inheritable,
            CapSet::Effective,
            CapSet::Permitted,
        ] {
            caps::drop(None, set, cap)?;
        }
        dropped.push(cap);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let (_, hard) = open_files().unwrap();
        assert_eq!(raise_open_files().unwrap(), hard);
        assert_eq!(open_files().unwrap(), (hard, hard));
    }

    #[test]
    fn the_budget_counts_connections_and_sessions() {
        let cfg = crate::config::Config::from_toml(
            "[final_hop]\nmax_connections = 100\nmax_udp_sessions = 50\n",
        )
        .unwrap();
        assert_eq!(budget(&cfg), BASE + 100 * PER_PROXIED_CONNECTION + 50);
    }
}
