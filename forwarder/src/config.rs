//! `hopd` configuration (TOML). The top level is shared by both roles; each role owns its
//! table and runs only when that table is present.
//!
//! ```toml
//! node_name = "org"                  # trace records and logs; default: the hostname
//!
//! [log]
//! level = "info"                     # tracing filter directives; HOPD_LOG overrides
//!
//! [metrics]
//! listen = "[::1]:9469"              # Prometheus text at GET /metrics; `hopd stats` reads it
//!
//! [border]                           # see hopstack_forwarder::border::Config
//! sids = ["fd00:1::1"]
//!
//! [final_hop]                        # see hopstack_forwarder::final_hop::Config
//! ```
//!
//! Unknown keys are errors, so a typo is reported with its line instead of silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole hopd configuration file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How this node names itself in trace records (`tlv::node_id_from_name`) and logs.
    #[serde(default)]
    pub node_name: Option<String>,
    #[serde(default)]
    pub log: LogConfig,
    /// Absent: no metrics endpoint (and `hopd stats` has nothing to read).
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// `[border]`: see [`crate::border::Config`].
    #[serde(default)]
    pub border: Option<crate::border::Config>,
    /// `[final_hop]`: see [`crate::final_hop::Config`].
    #[serde(default)]
    pub final_hop: Option<crate::final_hop::Config>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing_subscriber::EnvFilter` directives, e.g. `"info,hopstack_forwarder::border=debug"`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    // toml's message already shows the line, column and a caret.
    #[error("{}: {error}", path.display())]
    Parse {
        path: PathBuf,
        error: toml::de::Error,
    },
    #[error("{}: {error}", path.display())]
    Invalid { path: PathBuf, error: ConfigError },
}

/// A configuration that parses but cannot work: which table, and what is wrong there.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no role configured: add a [border] and/or a [final_hop] table")]
    NoRole,
    #[error("[border]: {0}")]
    Border(#[from] crate::border::BorderConfigError),
    #[error("[final_hop]: {0}")]
    FinalHop(#[from] crate::final_hop::FinalHopConfigError),
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Read, parse and validate `path`.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|error| LoadError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let cfg = Config::from_toml(&text).map_err(|error| LoadError::Parse {
            path: path.to_path_buf(),
            error,
        })?;
        cfg.validate().map_err(|error| LoadError::Invalid {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(cfg)
    }

    /// Whole-file checks; each role validates its own table.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.border.is_none() && self.final_hop.is_none() {
            return Err(ConfigError::NoRole);
        }
        if let Some(b) = &self.border {
            b.validate()?;
        }
        if let Some(f) = &self.final_hop {
            f.validate()?;
        }
        Ok(())
    }

    /// `node_name`, else the hostname, else "hopd".
    pub fn node_name(&self) -> String {
        self.node_name.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "hopd".into())
        })
    }
}

/// The outcome of `hopd check`: printable lines and whether anything is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub lines: Vec<String>,
    pub errors: usize,
    pub warnings: usize,
}

/// Check a configuration and this host for every configured role.
pub fn check(cfg: &Config) -> CheckReport {
    use crate::check::Severity;
    let mut r = CheckReport {
        lines: Vec::new(),
        errors: 0,
        warnings: 0,
    };
    let border = cfg.border.iter().flat_map(crate::border::check::check);
    let final_hop = cfg.final_hop.iter().flat_map(crate::final_hop::check_host);
    for f in border.chain(final_hop) {
        match f.severity {
            Severity::Error => r.errors += 1,
            Severity::Warning => r.warnings += 1,
            Severity::Ok => {}
        }
        r.lines.push(f.to_string());
    }
    // What hopd raises its descriptor limit to at start (the hard limit), against what the
    // configuration may need at its connection and session limits.
    let budget = crate::limits::budget(cfg);
    match crate::limits::open_files() {
        Ok((_, hard)) if hard >= budget => r.lines.push(format!(
            "ok: descriptors: hopd raises its limit to {hard}; the configuration needs at most {budget}"
        )),
        Ok((_, hard)) => {
            r.warnings += 1;
            r.lines.push(format!(
                "warning: descriptors: the hard limit is {hard}, the configuration may need \
                 {budget} (max_connections x {} + max_udp_sessions + {})\n  fix: raise it \
                 (LimitNOFILE= in the systemd unit, or ulimit -Hn), or lower max_connections",
                crate::limits::PER_PROXIED_CONNECTION,
                crate::limits::BASE
            ));
        }
        Err(e) => {
            r.warnings += 1;
            r.lines.push(format!("warning: descriptors: cannot read the limit: {e}"));
        }
    }
    if let Some(m) = &cfg.metrics {
        match std::net::TcpListener::bind(m.listen) {
            Ok(_) => r
                .lines
                .push(format!("ok: metrics address {} is free", m.listen)),
            Err(e) => {
                r.errors += 1;
                r.lines.push(format!(
                    "error: metrics address {} cannot be bound: {e}\n  fix: choose a free \
                     address in [metrics] listen, or stop what is using it",
                    m.listen
                ));
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_example_parses() {
        let cfg = Config::from_toml(
            r#"
            node_name = "org"
            [log]
            level = "debug"
            [metrics]
            listen = "[::1]:9469"
            [border]
            tun = "hop7"
            sids = ["fd00:1::1", "fd00:1:0:1::/64"]
            icmp_rate = 10
            [border.resolver]
            timeout_ms = 500
            [border.policy]
            max_segments = 8
            allowed_next_hops = ["fd00::/8"]
            require_hmac = true
            [[border.policy.hmac_keys]]
            id = 7
            algorithm = "sha256"
            secret = "s3cret"
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        let b = cfg.border.as_ref().unwrap();
        assert_eq!(b.tun, "hop7");
        assert_eq!(b.sids[1].to_string(), "fd00:1:0:1::/64");
        assert_eq!(b.resolver.timeout_ms, 500);
        assert_eq!(b.resolver.queue_per_name, 32, "defaults fill the rest");
        assert_eq!(b.policy.hmac_keys[0].id, 7);
        assert_eq!(cfg.node_name(), "org");
        assert_eq!(cfg.metrics.unwrap().listen.port(), 9469);
    }

    #[test]
    fn typos_and_bad_values_name_the_place() {
        let e = Config::from_toml("[border]\nsid = [\"fd00::1\"]\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("unknown field `sid`"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");

        let e = Config::from_toml("[border]\nsids = [\"fd00::1/200\"]\n").unwrap_err();
        assert!(e.to_string().contains("prefix length `200`"), "{e}");

        // What validation says of a file that parses.
        let invalid = |text: &str| {
            let cfg = Config::from_toml(text).unwrap();
            cfg.validate().unwrap_err().to_string()
        };
        assert!(invalid("[border]\n").contains("[border]: no SIDs"));
        assert!(invalid("").contains("no role configured"));
        assert!(
            invalid("[border]\nsids=[\"fd00::1\"]\n[border.policy]\nrequire_hmac = true\n")
                .contains("no [[border.policy.hmac_keys]]")
        );
    }
}
