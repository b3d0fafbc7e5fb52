//! Start-up time, teardown that leaves nothing behind (also after a panic or the death of
//! the test process), the `hopbed` CLI, and rootless operation.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_gone(pids: &[u32]) {
    let t0 = Instant::now();
    while pids.iter().any(|&p| common::alive(p)) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "still alive: {:?}",
            pids.iter()
                .filter(|&&p| common::alive(p))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_panicking_test_tears_down_and_shows_logs() {
    let mut pids = Vec::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let tb = common::start("three-hop");
        pids = tb.pids();
        panic!("deliberate");
    }));
    assert!(r.is_err());
    assert_eq!(pids.len(), 8);
    wait_gone(&pids);
}

/// Helper run in a child copy of this test binary: start a testbed, print its pids, wait
/// to be killed.
#[test]
#[ignore = "helper: run by the_test_process_dying_takes_the_testbed_with_it"]
fn helper_start_and_hang() {
    if std::env::var_os("HOPBED_HELPER").is_none() {
        return;
    }
    let tb = common::start("three-hop");
    println!(
        "pids {}",
        tb.pids()
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn the_test_process_dying_takes_the_testbed_with_it() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_start_and_hang",
            "--ignored",
            "--nocapture",
        ])
        .env("HOPBED_HELPER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut pids = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("pids ") {
            pids = p.split(' ').map(|s| s.parse::<u32>().unwrap()).collect();
            break;
        }
    }
    assert_eq!(pids.len(), 8, "helper did not report its testbed");
    assert!(pids.iter().all(|&p| common::alive(p)));
    // SIGKILL: no destructor runs, no signal handler; only the kernel's bookkeeping.
    child.kill().unwrap();
    child.wait().unwrap();
    wait_gone(&pids);
}

fn hopbed(args: &[&str], run_base: &std::path::Path) -> std::process::Output {
    Command::new(common::hopbed())
        .args(args)
        .env("HOPBED_RUN_DIR", run_base)
        .output()
        .unwrap()
}

#[test]
fn cli_up_exec_down() {
    let base = std::env::temp_dir().join(format!("hopbed-cli-{}", std::process::id()));
    let topo = common::topology("three-hop");
    let out = hopbed(&["up", topo.to_str().unwrap()], &base);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("node github.com"), "{text}");
    assert!(
        text.contains("eth1   -> org          fd00:2::1/64"),
        "{text}"
    );
    assert!(text.contains("hopbed exec client --"), "{text}");
    // A second `up` of the same testbed is refused while it runs.
    let again = hopbed(&["up", topo.to_str().unwrap()], &base);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already up"));

    let out = hopbed(&["exec", "org", "--", "hostname"], &base);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "org");
    let out = hopbed(
        &[
            "exec",
            "github.com",
            "--",
            env!("CARGO_BIN_EXE_hopbed"),
            "__resolve",
            "org",
        ],
        &base,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "fd00:2::2");
    let out = hopbed(&["dns-fault", "github", "org", "nxdomain"], &base);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hopbed(
        &[
            "exec",
            "github.com",
            "--",
            env!("CARGO_BIN_EXE_hopbed"),
            "__resolve",
            "org",
        ],
        &base,
    );
    assert!(!out.status.success());

    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(base.join("three-hop/state.json")).unwrap()).unwrap();
    let sup = state["supervisor"].as_u64().unwrap() as u32;
    let holders: Vec<u32> = state["nodes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let out = hopbed(&["down"], &base);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all = holders;
    all.push(sup);
    wait_gone(&all);
    assert!(!base.join("three-hop").exists());
    let out = hopbed(&["down"], &base);
    assert!(!out.status.success(), "nothing left to tear down");
    let _ = std::fs::remove_dir_all(&base);
}

/// As root, run the acceptance tests again as an unprivileged user (uid 65534) to show the
/// testbed needs no privilege. The binaries and topologies are copied to a world-readable
/// directory first, since the checkout may sit under a private home. Run directly as a
/// non-root user, every test here is rootless already and this one has nothing to add.
#[test]
fn rootless_as_nobody() {
    if !nix_is_root() {
        return;
    }
    let Some(setpriv) = hopstack_testbed::supervisor::find_program("setpriv") else {
        panic!("setpriv (util-linux) is needed to run the rootless check as root");
    };
    let me = std::env::current_exe().unwrap();
    let deps = me.parent().unwrap();
    let dir = std::env::temp_dir().join(format!("hopbed-nobody-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("topologies")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::set_permissions(dir.join("run"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::copy(common::hopbed(), dir.join("hopbed")).unwrap();
    for e in std::fs::read_dir(common::topology("x").parent().unwrap())
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), dir.join("topologies").join(e.file_name())).unwrap_or_default();
    }
    let mut ran = 0;
    for prefix in ["three_hop-", "mixed_and_chain-"] {
        // The newest build of that test target (stale ones from older builds may linger).
        let newest = std::fs::read_dir(deps)
            .unwrap()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(prefix) && !n.contains('.')
            })
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
            .unwrap_or_else(|| panic!("no {prefix}* test binary next to {}", me.display()));
        let bin = dir.join(newest.file_name());
        std::fs::copy(newest.path(), &bin).unwrap();
        let out = Command::new(&setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["--test-threads=2"])
            .env("HOPBED_EXE", dir.join("hopbed"))
            .env("HOPBED_TEST_TOPOLOGIES", dir.join("topologies"))
            .env("HOPBED_RUN_DIR", dir.join("run"))
            .env_remove("XDG_RUNTIME_DIR")
            .current_dir("/")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{prefix} as uid 65534:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("test result: ok"), "{text}");
        ran += 1;
    }
    assert_eq!(ran, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
