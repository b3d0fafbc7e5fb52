//! Shared helpers of the testbed's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use hopstack_testbed::{Builder, Testbed};

/// A shipped topology. `HOPBED_TEST_TOPOLOGIES` overrides the directory (the rootless test
/// runs copies of these binaries from a directory any user can read).
pub fn topology(name: &str) -> PathBuf {
    std::env::var_os("HOPBED_TEST_TOPOLOGIES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("topologies"))
        .join(format!("{name}.toml"))
}

/// The `hopbed` under test: `HOPBED_EXE` if set, else the one cargo built for these tests.
pub fn hopbed() -> PathBuf {
    std::env::var_os("HOPBED_EXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hopbed")))
}

/// A builder that uses this package's freshly built `hopbed` and does not start the
/// topology's processes (hopd/hop come from other crates; these tests are about the testbed).
pub fn builder(name: &str) -> Builder {
    Testbed::builder(topology(name))
        .hopbed_exe(hopbed())
        .start_processes(false)
}

pub fn start(name: &str) -> Testbed {
    builder(name)
        .start()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"))
}

/// Is `pid` alive (not a zombie)?
pub fn alive(pid: u32) -> bool {
    hopstack_testbed::ns::alive(pid)
}

/// Pids of our live (non-zombie) descendants, found by walking /proc.
pub fn live_descendants() -> Vec<u32> {
    let me = std::process::id();
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") {
            continue;
        }
        if let Some(pp) = f.get(1).and_then(|p| p.parse::<u32>().ok()) {
            parent.insert(pid, pp);
        }
    }
    parent
        .keys()
        .copied()
        .filter(|&p| {
            let mut cur = p;
            for _ in 0..64 {
                match parent.get(&cur) {
                    Some(&pp) if pp == me => return true,
                    Some(&pp) if pp > 1 => cur = pp,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

/// Host interfaces (names), as `ip link` shows them from the test's own network namespace.
pub fn host_links() -> Vec<String> {
    let out = std::process::Command::new(ip())
        .args(["-o", "link", "show"])
        .output()
        .expect("run ip link");
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|s| s.trim().to_owned()))
        .collect();
    v.sort();
    v
}

/// Named network namespaces (`ip netns list`).
pub fn host_netns() -> String {
    let out = std::process::Command::new(ip())
        .args(["netns", "list"])
        .output()
        .expect("run ip netns");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ip() -> PathBuf {
    hopstack_testbed::supervisor::find_program("ip").expect("iproute2 `ip`")
}
