//! 50 start/stop cycles of three-hop.toml: each under 2 s, nothing left behind. In its own
//! test binary so that no other test's processes are running while it counts ours.

mod common;

use std::time::{Duration, Instant};

#[test]
fn fifty_start_stop_cycles_leave_nothing_behind_and_each_takes_under_two_seconds() {
    let links = common::host_links();
    let netns = common::host_netns();
    let mut worst = Duration::ZERO;
    let mut total = Duration::ZERO;
    for i in 0..50 {
        let t0 = Instant::now();
        let tb = common::start("three-hop");
        let pids = tb.pids();
        assert_eq!(
            pids.len(),
            1 + 4 + 3,
            "supervisor, 4 holders, 3 DNS servers"
        );
        let run_dir = tb.run_dir().to_owned();
        if i == 0 {
            // It is a real network, not just processes.
            tb.ping("client", "fd00:2::2").unwrap();
        }
        drop(tb);
        let dt = t0.elapsed();
        worst = worst.max(dt);
        total += dt;
        for p in &pids {
            assert!(!common::alive(*p), "cycle {i}: pid {p} survived teardown");
        }
        assert!(!run_dir.exists(), "cycle {i}: run dir left behind");
    }
    // Other programs on the machine may add and remove interfaces and named namespaces
    // meanwhile, so look only at what appeared that could be ours: the testbed's interface
    // names, or a netns named after a node or the topology. (It never names a netns; its
    // namespaces live only as long as their holder processes, checked above.)
    let topo = hopstack_testbed::Topology::load(common::topology("three-hop")).unwrap();
    let ours: Vec<String> = topo
        .links
        .iter()
        .flat_map(|l| [l.a.ifname.clone().unwrap(), l.b.ifname.clone().unwrap()])
        .chain(topo.nodes.iter().map(|n| n.name.clone()))
        .chain([topo.name.clone()])
        .collect();
    let new_links: Vec<String> = common::host_links()
        .into_iter()
        .filter(|l| !links.contains(l) && ours.iter().any(|o| l.split('@').next() == Some(o)))
        .collect();
    assert!(
        new_links.is_empty(),
        "host interfaces left behind: {new_links:?}"
    );
    let new_ns: Vec<String> = common::host_netns()
        .lines()
        .filter(|l| !netns.contains(*l) && ours.iter().any(|o| l.contains(o.as_str())))
        .map(str::to_owned)
        .collect();
    assert!(new_ns.is_empty(), "named netns left behind: {new_ns:?}");
    let left = common::live_descendants();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    eprintln!(
        "three-hop start+stop: mean {:?}, worst {:?} over 50 cycles",
        total / 50,
        worst
    );
    assert!(worst < Duration::from_secs(2), "worst start+stop {worst:?}");
}
