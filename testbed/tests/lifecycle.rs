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

fn a_panicking_test_tears_down_and_shows_logs() {
    let mut pids = Vec::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let tb = common::start("three-hop");
        pids = tb.pids();
        tb.spawn(
            "yc",
            "talker",
            ["sh", "-c", "echo said-before-the-panic; sleep 30"],
        )
        .unwrap();
        let t0 = Instant::now();
        while !tb.logs("yc", "talker").contains("said-before") && t0.elapsed().as_secs() < 5 {
            std::thread::sleep(Duration::from_millis(5));
        }
        // What the drop below prints (through the harness's capture) for a failing test.
        let report = tb.log_report();
        assert!(
            report.contains("nodes/yc/talker.log -----\nsaid-before-the-panic"),
            "{report}"
        );
        assert!(report.contains("dns/org.log -----"), "{report}");
        assert!(report.contains("supervisor.log -----"), "{report}");
        pids.push(tb.pids().len() as u32);
        panic!("deliberate");
    }));
    let err = r.expect_err("the closure panics");
    assert_eq!(
        err.downcast_ref::<&str>(),
        Some(&"deliberate"),
        "it got to the end"
    );
    assert_eq!(pids.pop(), Some(9), "8 testbed processes and the talker");
    assert_eq!(pids.len(), 8);
    wait_gone(&pids);
}

/// Helper run in a child copy of this test binary: start a testbed, print its pids, wait
/// to be killed.
fn helper_start_and_hang() {
    if std::env::var_os("HOPBED_HELPER").is_none() {
        return;
    }
    let tb = common::start("three-hop");
    tb.spawn("yc", "sleeper", ["sleep", "60"]).unwrap();
    println!("run {}", tb.run_dir().display());
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

/// Start `helper_start_and_hang` in a child copy of this binary (its own process group),
/// return it with the pids it reported and its run directory.
fn start_helper() -> (std::process::Child, Vec<u32>, std::path::PathBuf) {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_start_and_hang",
            "--ignored",
            "--nocapture",
        ])
        .env("HOPBED_HELPER", "1")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut pids = Vec::new();
    let mut run_dir = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(d) = line.strip_prefix("run ") {
            run_dir = Some(std::path::PathBuf::from(d));
        }
        if let Some(p) = line.strip_prefix("pids ") {
            pids = p.split(' ').map(|s| s.parse::<u32>().unwrap()).collect();
            break;
        }
    }
    assert_eq!(
        pids.len(),
        9,
        "helper did not report its testbed and its node process"
    );
    assert!(pids.iter().all(|&p| common::alive(p)));
    let run_dir = run_dir.expect("helper reported its run dir");
    assert!(run_dir.exists());
    (child, pids, run_dir)
}

fn assert_all_gone(pids: &[u32], run_dir: &std::path::Path) {
    wait_gone(pids);
    let t0 = Instant::now();
    while run_dir.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{} left behind",
            run_dir.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn the_test_process_dying_takes_the_testbed_with_it() {
    let (mut child, pids, run_dir) = start_helper();
    // SIGKILL: no destructor runs, no signal handler; only the kernel's bookkeeping.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_all_gone(&pids, &run_dir);
}

fn ctrl_c_takes_the_testbed_with_it() {
    let (mut child, pids, run_dir) = start_helper();
    // What a terminal's Ctrl-C does: SIGINT to every process of the foreground group (the
    // test, its supervisor, holders, DNS servers and node processes alike).
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    child.wait().unwrap();
    assert_all_gone(&pids, &run_dir);
}

fn hopbed(args: &[&str], run_base: &std::path::Path) -> std::process::Output {
    Command::new(common::hopbed())
        .args(args)
        .env("HOPBED_RUN_DIR", run_base)
        .output()
        .unwrap()
}

/// `hopbed exec github.com -- hopbed __resolve org`: org as github.com's DNS view has it.
fn resolve_org_on_github(run_base: &std::path::Path) -> std::process::Output {
    let resolve = [env!("CARGO_BIN_EXE_hopbed"), "__resolve", "org"];
    hopbed(
        &[&["exec", "github.com", "--"][..], &resolve].concat(),
        run_base,
    )
}

fn cli_up_exec_down() {
    let base = std::env::temp_dir().join(format!("hopbed-cli-{}", std::process::id()));
    // A failing assertion must not leave the background testbed running.
    struct Down<'a>(&'a std::path::Path);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let _ = hopbed(&["down"], self.0);
            }
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _down = Down(&base);
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
    let out = resolve_org_on_github(&base);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "fc00:2::e");
    let out = hopbed(&["dns-fault", "github", "org", "nxdomain"], &base);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = resolve_org_on_github(&base);
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
}

/// The acceptance checks, run by `rootless_as_nobody` as uid 65534.
fn helper_rootless_acceptance() {
    let Some(part) = std::env::var_os("HOPBED_HELPER") else {
        return;
    };
    assert!(!nix_is_root(), "this helper must run unprivileged");
    if part == "mixed" {
        common::check_srh_through_end(&common::start("mixed"));
    } else {
        let tb = common::start("three-hop");
        common::check_dns_views(&tb);
        common::check_traffic(&tb);
    }
    println!("rootless acceptance passed");
}

/// As root, run the acceptance checks again as an unprivileged user (uid 65534, no
/// capabilities on the host) to show the testbed needs no privilege. This binary, `hopbed`
/// and the topologies are copied to a world-readable directory first, since the checkout may
/// sit under a private home. Run as a non-root user, every test here is rootless already and
/// this one has nothing to add.
fn rootless_as_nobody() {
    as_nobody("three-hop");
}

/// The same for kernel SRv6 inside a rootless testbed (the mixed topology's headend and End
/// nodes), where the kernel has it.
fn rootless_kernel_srv6_as_nobody() {
    as_nobody("mixed");
}

fn as_nobody(part: &str) {
    if !nix_is_root() {
        // Every other test here already runs as this unprivileged user.
        hopstack_testbed::harness::skip(
            "not root: nothing to drop to (the other tests run rootless as they are)",
        );
    }
    let Some(setpriv) = hopstack_testbed::supervisor::find_program("setpriv") else {
        panic!("setpriv (util-linux) is needed to run the rootless check as root");
    };
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("hopbed-nobody-{part}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("topologies")).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::set_permissions(dir.join("run"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::copy(common::hopbed(), dir.join("hopbed")).unwrap();
    std::fs::copy(std::env::current_exe().unwrap(), dir.join("lifecycle")).unwrap();
    for e in std::fs::read_dir(common::topology("x").parent().unwrap())
        .unwrap()
        .flatten()
    {
        if e.path().is_file() {
            std::fs::copy(e.path(), dir.join("topologies").join(e.file_name())).unwrap();
        }
    }
    let out = Command::new(&setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(dir.join("lifecycle"))
        .args([
            "--exact",
            "helper_rootless_acceptance",
            "--ignored",
            "--nocapture",
        ])
        .env("HOPBED_HELPER", part)
        .env("HOPBED_EXE", dir.join("hopbed"))
        .env("HOPBED_TEST_TOPOLOGIES", dir.join("topologies"))
        .env("HOPBED_RUN_DIR", dir.join("run"))
        .env_remove("XDG_RUNTIME_DIR")
        .current_dir("/")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("rootless acceptance passed"),
        "as uid 65534:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `hopbed demo` builds three-hop, shows the DNS views, runs `hop get` and `hoptrace` and tears
/// down; the body and every hoptrace row must be there.
fn demo_shows_the_dns_views_and_tears_down() {
    let base = std::env::temp_dir().join(format!("hopbed-demo-{}", std::process::id()));
    let out = hopbed(&["demo"], &base);
    let text = String::from_utf8_lossy(&out.stdout);
    let code = out.status.code();
    // hopd's border role needs /dev/net/tun, which some hosts keep for root only: without it the
    // demo cannot cross the borders and says so (exit 3). Where the TUN device opens, the whole
    // demo must work (the README's test command builds hop, hopd and hoptrace first).
    let tun_usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .is_ok();
    if tun_usable {
        assert_eq!(
            code,
            Some(0),
            "the demo must succeed where TUN works\n{text}"
        );
    } else {
        assert!(matches!(code, Some(0) | Some(3)), "exit {code:?}\n{text}");
    }
    for row in [
        "  client      github.com=fc00:1::e   org=NXDOMAIN    yc=NXDOMAIN",
        "  github.com  github.com=fd00:2::1   org=fc00:2::e   yc=NXDOMAIN",
        "  org         github.com=NXDOMAIN    org=fd00:3::1   yc=fd00:3::2",
    ] {
        assert!(text.contains(row), "missing {row:?} in\n{text}");
    }
    assert!(
        text.contains("== hop get 'github.com>org>yc:tcp+tls+http+restapiv3/users/list' on client")
    );
    assert!(text.contains("== torn down in"), "{text}");
    if code == Some(0) {
        assert!(
            text.contains(r#"[{"id":1,"name":"ada"},{"id":2,"name":"grace"}]"#),
            "{text}"
        );
        assert!(text.contains("OK: every hop and layer answered"), "{text}");
        assert!(text.contains("demo complete"), "{text}");
    } else {
        assert!(text.contains("demo INCOMPLETE, missing pieces:"), "{text}");
    }
    // Its run directory went with it.
    let left: Vec<_> = std::fs::read_dir(&base)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&base);
}

/// `hopbed up` with a process that dies at once: non-zero and the process's last log lines,
/// or, for an optional one, up with the reason it was skipped.
fn up_fails_when_a_process_dies_during_start_up() {
    let base = std::env::temp_dir().join(format!("hopbed-dies-{}", std::process::id()));
    // Whatever fails below, no testbed stays up.
    struct Down(std::path::PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = hopbed(&["down", "dies"], &self.0);
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _down = Down(base.clone());
    let dir = tempfile::tempdir().unwrap();
    let topo = |optional: bool| {
        let f = dir.path().join(format!("dies-{optional}.toml"));
        std::fs::write(
            &f,
            format!(
                r#"name = "dies"
[[nodes]]
name = "solo"
[[nodes.process]]
name = "sleeper"
cmd = ["sleep", "30"]
[[nodes.process]]
name = "daemon"
cmd = ["sh", "-c", "echo cannot open /dev/net/tun: Permission denied >&2; exit 3"]
optional = {optional}
"#
            ),
        )
        .unwrap();
        f
    };
    let out = hopbed(&["up", topo(false).to_str().unwrap()], &base);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a dead daemon is not up:\n{err}");
    assert!(
        err.contains("solo/daemon") && err.contains("exit status 3"),
        "{err}"
    );
    assert!(err.contains("cannot open /dev/net/tun"), "its log: {err}");
    assert!(
        !base.join("dies/state.json").exists(),
        "a failed `up` leaves nothing behind"
    );

    let out = hopbed(&["up", topo(true).to_str().unwrap()], &base);
    let text = String::from_utf8_lossy(&out.stdout);
    let down = hopbed(&["down", "dies"], &base);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("skipped: solo/daemon exited during start-up (exit status 3)")
            && text.contains("Permission denied"),
        "{text}"
    );
    assert!(down.status.success());
}

hopstack_testbed::tests! {
    a_panicking_test_tears_down_and_shows_logs,
    helper_start_and_hang ignored = "helper: run by the_test_process_dying_takes_the_testbed_with_it",
    the_test_process_dying_takes_the_testbed_with_it,
    ctrl_c_takes_the_testbed_with_it,
    cli_up_exec_down,
    up_fails_when_a_process_dies_during_start_up,
    helper_rootless_acceptance ignored = "helper: run by rootless_as_nobody as an unprivileged user",
    rootless_as_nobody,
    rootless_kernel_srv6_as_nobody needs [Kernel(Seg6Inline), Kernel(Seg6LocalEnd)],
    demo_shows_the_dns_views_and_tears_down,
}
