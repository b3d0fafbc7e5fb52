//! Acceptance tests on `three-hop.toml`: per-network DNS views, traffic along the links,
//! fault injection (DNS, links, processes).

mod common;

use std::time::{Duration, Instant};

use hopstack_testbed::{DnsFault, Error};

#[test]
fn each_node_resolves_the_names_of_its_own_network_only() {
    common::check_dns_views(&common::start("three-hop"));
}

#[test]
fn ipv6_traffic_flows_along_the_links() {
    common::check_traffic(&common::start("three-hop"));
}

#[test]
fn dns_faults_nxdomain_servfail_timeout_and_new_records() {
    let tb = common::start("three-hop");
    assert_eq!(
        tb.resolve("github.com", "org").unwrap(),
        vec![common::ip("fc00:2::e")]
    );

    tb.dns_fault("github", "org", Some(DnsFault::Nxdomain))
        .unwrap();
    let e = tb.resolve("github.com", "org").unwrap_err().to_string();
    assert!(e.contains("no records found"), "{e}");

    tb.dns_fault("github", "org", Some(DnsFault::Servfail))
        .unwrap();
    let e = tb.resolve("github.com", "org").unwrap_err().to_string();
    assert!(
        !e.contains("no records found"),
        "SERVFAIL is not NXDOMAIN: {e}"
    );
    let log = std::fs::read_to_string(tb.run_dir().join("dns/github.log")).unwrap();
    assert!(log.contains("org. AAAA -> Server Failure"), "{log}");

    tb.dns_fault("github", "org", Some(DnsFault::Timeout))
        .unwrap();
    let t0 = Instant::now();
    let e = tb.resolve("github.com", "org").unwrap_err().to_string();
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "a timeout takes the resolver's timeout: {e}"
    );
    assert!(e.contains("timed out"), "{e}");

    tb.dns_fault("github", "org", None).unwrap();
    // The server's TCP side (RFC 1035 framing) answers like its UDP side.
    let tcp = tb
        .exec_ok(
            "github.com",
            ["{bin:hopbed}", "__dns-tcp", "[fd00:53:2::53]:53", "org"],
        )
        .unwrap();
    assert_eq!(tcp, "No Error\nfc00:2::e\n");
    let tcp = tb
        .exec_ok(
            "github.com",
            ["{bin:hopbed}", "__dns-tcp", "[fd00:53:2::53]:53", "yc"],
        )
        .unwrap();
    assert_eq!(tcp, "Non-Existent Domain\n");
    assert_eq!(
        tb.resolve("github.com", "org").unwrap(),
        vec![common::ip("fc00:2::e")]
    );

    // Records can change at run time too; other views are untouched.
    tb.dns_set("github", "org", &[common::ip("fd00:2::99")])
        .unwrap();
    assert_eq!(
        tb.resolve("github.com", "org").unwrap(),
        vec![common::ip("fd00:2::99")]
    );
    assert_eq!(
        tb.resolve("org", "org").unwrap(),
        vec![common::ip("fd00:3::1")]
    );

    assert!(matches!(
        tb.dns_fault("nope", "org", None),
        Err(Error::UnknownNetwork(n)) if n == "nope"
    ));
}

#[test]
fn link_and_process_faults() {
    let tb = common::start("three-hop");
    tb.ping("client", "fd00:2::2").unwrap();
    tb.link_down("github.com", "client").unwrap();
    let e = tb.ping("client", "fd00:1::2").unwrap_err().to_string();
    assert!(
        e.contains("unreachable") || e.contains("no echo reply"),
        "{e}"
    );
    tb.link_up("client", "github.com").unwrap();
    // Routes are re-installed: the forwarded path works again, not just the link (within a
    // few seconds: neighbour discovery on the fresh link, more on a loaded machine).
    common::retry(|| tb.ping("client", "fd00:2::2").map(|rtt| format!("{rtt:?}")));
    assert!(matches!(
        tb.link_down("client", "yc"),
        Err(Error::UnknownLink(..))
    ));

    // Kill and restart a process on a node.
    let pid = tb
        .spawn("yc", "echo", ["{bin:hopbed}", "__udp-echo", "[::]:7000"])
        .unwrap();
    let send = || {
        tb.exec_ok(
            "org",
            ["{bin:hopbed}", "__udp-send", "[fd00:3::2]:7000", "x"],
        )
    };
    assert_eq!(common::retry(send).trim(), "x");
    tb.kill("yc", "echo").unwrap();
    assert!(!common::alive(pid));
    assert!(tb.exited("yc", "echo").unwrap().is_some());
    assert!(send().is_err(), "nobody listens after the kill");
    let pid2 = tb.restart("yc", "echo").unwrap();
    assert_ne!(pid, pid2);
    assert_eq!(common::retry(send).trim(), "x");
    // Both lives are in the one log.
    assert_eq!(tb.logs("yc", "echo").matches("listening on").count(), 2);

    // Delay/loss: tc netem where the kernel has it, a clear "unsupported" otherwise.
    match tb.netem("client", "eth0", "delay 30ms") {
        Ok(()) => {
            let rtt = tb.ping("client", "fd00:1::2").unwrap();
            assert!(rtt >= Duration::from_millis(30), "{rtt:?}");
            tb.clear_netem("client", "eth0").unwrap();
        }
        Err(Error::Unsupported { why, .. }) => assert!(why.contains("sch_netem"), "{why}"),
        Err(e) => panic!("netem: {e}"),
    }
}

#[test]
fn missing_programs_and_unknown_nodes_are_reported() {
    let tb = common::start("three-hop");
    match tb.exec("nope", ["true"]) {
        Err(Error::UnknownNode(n)) => assert_eq!(n, "nope"),
        other => panic!("{other:?}"),
    }
    match tb.spawn("yc", "x", ["{bin:no-such-binary}"]) {
        Err(Error::MissingProgram { context, program }) => {
            assert!(context.contains("process `x` on node `yc`"), "{context}");
            assert!(program.ends_with("/no-such-binary"), "{program}");
        }
        other => panic!("{other:?}"),
    }
    let e = tb.exec_ok("client", ["false"]).unwrap_err();
    assert!(
        matches!(e, Error::Command { ref node, .. } if node == "client"),
        "{e}"
    );
}

#[test]
fn optional_processes_that_do_not_exist_are_skipped_and_said() {
    let dir = tempdir();
    let file = write_file(
        &dir,
        "t.toml",
        r#"name = "opt"
[[nodes]]
name = "a"
[[nodes.process]]
name = "ghost"
cmd = ["{bin:definitely-not-built}"]
optional = true
[[nodes.process]]
name = "echo"
cmd = ["{bin:hopbed}", "__udp-echo", "[::1]:7"]
"#,
    );
    let tb = start_file(&file).unwrap();
    assert_eq!(tb.skipped().len(), 1);
    assert!(
        tb.skipped()[0].contains("definitely-not-built"),
        "{:?}",
        tb.skipped()
    );
    assert!(
        tb.exited("a", "echo").unwrap().is_none(),
        "the real process runs"
    );
    drop(tb);
    // Not optional: the start fails and says which program.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("optional = true", ""),
    )
    .unwrap();
    let e = start_file(&file).err().expect("start must fail");
    assert!(e.to_string().contains("definitely-not-built"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Starts the topology in `file` with this package's `hopbed`.
fn start_file(file: &std::path::Path) -> Result<hopstack_testbed::Testbed, Error> {
    hopstack_testbed::Testbed::builder(file)
        .hopbed_exe(common::hopbed())
        .start()
}

/// Writes `text` to `dir/name` and returns the path.
fn write_file(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "hopbed-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let d = std::path::PathBuf::from(d.to_string_lossy().replace(['(', ')'], ""));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn processes_outlive_the_thread_that_spawned_them() {
    let tb = common::start("three-hop");
    let pid = std::thread::scope(|s| {
        s.spawn(|| tb.spawn("yc", "sleeper", ["sleep", "30"]).unwrap())
            .join()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        common::alive(pid),
        "a node process died with its spawning thread"
    );
    assert!(tb.exited("yc", "sleeper").unwrap().is_none());
    drop(tb);
    assert!(!common::alive(pid));
}

#[test]
fn a_start_failure_names_the_node_and_what_the_kernel_said() {
    let dir = tempdir();
    let file = write_file(
        &dir,
        "bad.toml",
        r#"name = "bad"
[[nodes]]
name = "a"
routes = ["fd00:9::/64 via fd00:77::1"]
[[nodes]]
name = "b"
[[links]]
a = { node = "a", addrs = ["fd00:1::1/64"] }
b = { node = "b", addrs = ["fd00:1::2/64"] }
"#,
    );
    let links = common::host_links();
    let e = start_file(&file)
        .err()
        .expect("the gateway is not on any link");
    let msg = e.to_string();
    assert!(msg.contains("adding routes on node `a`"), "{msg}");
    assert!(
        msg.contains("route add fd00:9::/64 via fd00:77::1"),
        "{msg}"
    );
    assert!(matches!(e, Error::Start { .. }));
    assert_eq!(common::host_links(), links);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn process_templates_are_expanded_into_the_node_run_dir() {
    let dir = tempdir();
    std::fs::write(
        dir.join("conf.in"),
        "run={run}\ndir={dir}\nbin={bin:hopd}\n",
    )
    .unwrap();
    let file = write_file(
        &dir,
        "t.toml",
        r#"name = "tmpl"
[[nodes]]
name = "a"
[[nodes.process]]
name = "show"
cmd = ["sh", "-c", "cat conf.txt; echo cwd=$(pwd); echo env=$WHERE; sleep 30"]
templates = { "conf.txt" = "conf.in" }
env = { WHERE = "{run}" }
"#,
    );
    let tb = start_file(&file).unwrap();
    let run = tb.run_dir().join("nodes/a");
    let bin = common::hopbed().parent().unwrap().join("hopd");
    let want = format!(
        "run={}\ndir={}\nbin={}\ncwd={}\nenv={}\n",
        run.display(),
        std::fs::canonicalize(&dir).unwrap().display(),
        bin.display(),
        run.display(),
        run.display()
    );
    let t0 = Instant::now();
    while tb.logs("a", "show") != want {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{:?} != {want:?}",
            tb.logs("a", "show")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(tb);
    std::fs::remove_dir_all(dir).unwrap();
}
