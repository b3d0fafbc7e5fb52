//! Which of the Linux kernel's SRv6 features the running kernel has.
//!
//! Kernels differ: SRH reception (`seg6_enabled`), `IPV6_RTHDR` type 4, TUN and network
//! namespaces are everywhere, but the SRv6 *routes* (`encap seg6`, `encap seg6local`) exist
//! only with `CONFIG_IPV6_SEG6_LWTUNNEL`, the SRH HMAC key table only with
//! `CONFIG_IPV6_SEG6_HMAC`, End.BPF only with `CONFIG_IPV6_SEG6_BPF`. Reading the kernel
//! configuration is unreliable (`/proc/config.gz` is often absent, containers share a host
//! kernel), so [`Features::probe`] asks the kernel itself: it installs one route of each kind
//! in a throw-away network namespace (a user namespace too when not root) and notes what the
//! kernel refused. [`Features::get`] does that once per process.
//!
//! `HOPSTACK_KERNEL_FEATURES` forces features to read as absent, so the path taken on a
//! kernel without them can be run on one that has them (it never makes a missing feature
//! present):
//!
//! | value | effect |
//! |---|---|
//! | unset, empty, `probe` | what the probe found |
//! | `none` | every feature reads as absent |
//! | `-seg6local-end,-seg6-hmac` | those read as absent, the rest as probed |
//! | `seg6-inline,seg6-encap` | only those may read as present |
//!
//! Used by hopd (degrade instead of dying), by the testbed (leave out routes the kernel cannot
//! take) and by the tests (skip what is about a missing feature, loudly).

mod probe;
pub mod sockopt;
pub mod tun;

use std::fmt;
use std::sync::OnceLock;

/// The environment variable that forces features to read as absent (module documentation).
pub const ENV: &str = "HOPSTACK_KERNEL_FEATURES";

/// One kernel SRv6 feature hopstack uses or tests against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// Headend `ip -6 route … encap seg6 mode inline`: the kernel inserts an SRH.
    Seg6Inline,
    /// Headend `ip -6 route … encap seg6 mode encap`: outer IPv6 header plus SRH.
    Seg6Encap,
    /// `ip -6 route … encap seg6local action End`: the kernel as an End node.
    Seg6LocalEnd,
    /// `seg6local action End.DX6`: decapsulate and forward to an IPv6 next hop.
    Seg6LocalEndDx6,
    /// `ip sr hmac set`: the kernel's SRH HMAC key table (checked with `seg6_require_hmac`).
    Seg6Hmac,
    /// `seg6local action End.BPF`: an eBPF program as the End behaviour.
    Seg6LocalEndBpf,
}

impl Feature {
    /// Every feature, in the order reports list them.
    pub const ALL: [Feature; 6] = [
        Feature::Seg6Inline,
        Feature::Seg6Encap,
        Feature::Seg6LocalEnd,
        Feature::Seg6LocalEndDx6,
        Feature::Seg6Hmac,
        Feature::Seg6LocalEndBpf,
    ];

    /// The name used in `HOPSTACK_KERNEL_FEATURES` and in machine-readable output.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Seg6Inline => "seg6-inline",
            Feature::Seg6Encap => "seg6-encap",
            Feature::Seg6LocalEnd => "seg6local-end",
            Feature::Seg6LocalEndDx6 => "seg6local-end-dx6",
            Feature::Seg6Hmac => "seg6-hmac",
            Feature::Seg6LocalEndBpf => "seg6local-end-bpf",
        }
    }

    /// What it is, in iproute2's words.
    pub fn describe(self) -> &'static str {
        match self {
            Feature::Seg6Inline => "seg6 encap (mode inline)",
            Feature::Seg6Encap => "seg6 encap (mode encap)",
            Feature::Seg6LocalEnd => "seg6local End",
            Feature::Seg6LocalEndDx6 => "seg6local End.DX6",
            Feature::Seg6Hmac => "seg6 HMAC (ip sr hmac)",
            Feature::Seg6LocalEndBpf => "seg6local End.BPF",
        }
    }

    /// The kernel build option that provides it.
    pub fn kernel_option(self) -> &'static str {
        match self {
            Feature::Seg6Inline
            | Feature::Seg6Encap
            | Feature::Seg6LocalEnd
            | Feature::Seg6LocalEndDx6 => "CONFIG_IPV6_SEG6_LWTUNNEL",
            Feature::Seg6Hmac => "CONFIG_IPV6_SEG6_HMAC",
            Feature::Seg6LocalEndBpf => "CONFIG_IPV6_SEG6_BPF",
        }
    }

    /// The feature named `name` ([`Feature::name`]).
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// What is known of one feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The kernel took the route (or key) in the throw-away namespace.
    Present,
    /// The kernel (or iproute2) refused it; what it said.
    Absent { said: String },
    /// Read as absent because `HOPSTACK_KERNEL_FEATURES` says so.
    Disabled { setting: String },
    /// Could not be tried here (e.g. it needs privileges this process lacks); why.
    Untested { why: String },
}

/// What the running kernel has; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    status: [Status; 6],
}

impl Features {
    /// The features of the running kernel with `HOPSTACK_KERNEL_FEATURES` applied, probed once
    /// per process. A malformed variable is reported on stderr once and its unknown entries
    /// are ignored.
    pub fn get() -> &'static Features {
        static FEATURES: OnceLock<Features> = OnceLock::new();
        FEATURES.get_or_init(|| {
            let mut f = Features::probe();
            if let Ok(v) = std::env::var(ENV) {
                match forced_absent(&v) {
                    Ok(off) => f.disable(&off, &v),
                    Err(e) => {
                        eprintln!("{ENV}={v}: {e}; ignoring it");
                    }
                }
            }
            f
        })
    }

    /// Probe the running kernel now (no environment applied). Takes a few milliseconds: one
    /// short-lived process in a new network namespace, plus a thread for End.BPF as root.
    pub fn probe() -> Features {
        probe::run()
    }

    /// A set where every feature has `status`; for tests and for callers that know better.
    pub fn all(status: Status) -> Features {
        Features {
            status: std::array::from_fn(|_| status.clone()),
        }
    }

    /// Whether `feature` can be used.
    pub fn has(&self, feature: Feature) -> bool {
        self.status[feature.index()] == Status::Present
    }

    /// What is known of `feature`.
    pub fn status(&self, feature: Feature) -> &Status {
        &self.status[feature.index()]
    }

    /// Set what is known of `feature`.
    pub fn set(&mut self, feature: Feature, status: Status) {
        self.status[feature.index()] = status;
    }

    /// Why `feature` cannot be used, in one line that starts with `kernel lacks <feature>`
    /// (or `cannot use <feature> here` when it could not be tried); `None` when it can.
    pub fn missing(&self, feature: Feature) -> Option<String> {
        let (d, opt) = (feature.describe(), feature.kernel_option());
        match self.status(feature) {
            Status::Present => None,
            Status::Absent { said } => Some(format!("kernel lacks {d} ({opt}; {said})")),
            Status::Disabled { setting } => {
                Some(format!("kernel lacks {d} (forced: {ENV}={setting})"))
            }
            Status::Untested { why } => Some(format!("cannot use {d} here ({why})")),
        }
    }

    /// Mark `features` as disabled by the setting `setting`.
    pub fn disable(&mut self, features: &[Feature], setting: &str) {
        for f in features {
            if self.has(*f) || matches!(self.status(*f), Status::Untested { .. }) {
                self.set(
                    *f,
                    Status::Disabled {
                        setting: setting.to_owned(),
                    },
                );
            }
        }
    }
}

impl fmt::Display for Features {
    /// One line per feature: name, yes/no, and why not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for feature in Feature::ALL {
            let line = match self.missing(feature) {
                None => "yes".to_string(),
                Some(why) => format!("no: {why}"),
            };
            writeln!(f, "{:<19} {line}", feature.name())?;
        }
        Ok(())
    }
}

/// The features `value` of `HOPSTACK_KERNEL_FEATURES` forces to read as absent.
pub fn forced_absent(value: &str) -> Result<Vec<Feature>, String> {
    let value = value.trim();
    if value.is_empty() || value == "probe" || value == "all" {
        return Ok(Vec::new());
    }
    if value == "none" {
        return Ok(Feature::ALL.to_vec());
    }
    let mut off = Vec::new();
    let mut only = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (minus, name) = match item.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, item),
        };
        let Some(feature) = Feature::from_name(name) else {
            let known: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
            return Err(format!(
                "unknown feature `{name}` (known: none, {})",
                known.join(", ")
            ));
        };
        if minus { &mut off } else { &mut only }.push(feature);
    }
    if !only.is_empty() {
        off.extend(Feature::ALL.into_iter().filter(|f| !only.contains(f)));
    }
    off.sort();
    off.dedup();
    Ok(off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_only_ever_removes_features() {
        assert_eq!(forced_absent(""), Ok(vec![]));
        assert_eq!(forced_absent("probe"), Ok(vec![]));
        assert_eq!(forced_absent("none"), Ok(Feature::ALL.to_vec()));
        assert_eq!(
            forced_absent("-seg6-hmac, -seg6local-end"),
            Ok(vec![Feature::Seg6LocalEnd, Feature::Seg6Hmac])
        );
        assert_eq!(
            forced_absent("seg6-inline,seg6-encap"),
            Ok(vec![
                Feature::Seg6LocalEnd,
                Feature::Seg6LocalEndDx6,
                Feature::Seg6Hmac,
                Feature::Seg6LocalEndBpf
            ])
        );
        let e = forced_absent("seg6local").unwrap_err();
        assert!(e.contains("unknown feature `seg6local`"), "{e}");
        assert!(e.contains("seg6local-end"), "{e}");
    }

    #[test]
    fn a_disabled_feature_says_so_and_an_absent_one_names_its_kernel_option() {
        let mut f = Features::all(Status::Present);
        f.set(
            Feature::Seg6Encap,
            Status::Absent {
                said: "Error: lwt encapsulation type not supported.".into(),
            },
        );
        f.disable(&[Feature::Seg6LocalEnd], "none");
        assert!(f.has(Feature::Seg6Inline));
        assert!(!f.has(Feature::Seg6LocalEnd));
        assert_eq!(
            f.missing(Feature::Seg6LocalEnd).unwrap(),
            "kernel lacks seg6local End (forced: HOPSTACK_KERNEL_FEATURES=none)"
        );
        assert_eq!(
            f.missing(Feature::Seg6Encap).unwrap(),
            "kernel lacks seg6 encap (mode encap) (CONFIG_IPV6_SEG6_LWTUNNEL; Error: lwt \
             encapsulation type not supported.)"
        );
        // Disabling what is already absent keeps the kernel's own word.
        f.disable(&[Feature::Seg6Encap], "none");
        assert!(matches!(
            f.status(Feature::Seg6Encap),
            Status::Absent { .. }
        ));
        let table = f.to_string();
        assert!(table.contains("seg6-inline         yes\n"), "{table}");
        assert!(
            table.contains("seg6local-end       no: kernel lacks"),
            "{table}"
        );
    }
}
