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
    assert_eq!(common::host_links(), links, "host interfaces changed");
    assert_eq!(common::host_netns(), netns, "named netns changed");
    let left = common::live_descendants();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    eprintln!(
        "three-hop start+stop: mean {:?}, worst {:?} over 50 cycles",
        total / 50,
        worst
    );
    assert!(worst < Duration::from_secs(2), "worst start+stop {worst:?}");
}
