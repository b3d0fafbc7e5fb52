//! Rootless re-runs of tests that build their own namespaces with `ip netns` or `unshare`.
//!
//! Such a test needs `CAP_SYS_ADMIN`/`CAP_NET_ADMIN` over a network namespace, which an
//! unprivileged user gets by being root of a fresh user namespace. The test harness cannot
//! enter one itself: `unshare(CLONE_NEWUSER)` requires a single-threaded caller and libtest
//! always runs tests on threads. So [`rerun_in_userns`] starts the current test binary again,
//! filtered to the calling test, under `unshare --user --map-root-user --net --mount`; inside,
//! the test sees euid 0 and runs its ordinary root path.
//!
//! ```text
//!  test binary (uid 1000, libtest thread "my_test")
//!    └─ unshare --user --map-root-user --net --mount      uid 0 in a new user namespace
//!         └─ sh: tmpfs on /run/netns                      `ip netns add` may create files
//!              └─ test binary --exact my_test             geteuid() == 0: the root path
//! ```
//!
//! What stays out of reach as root of a user namespace (checked on kernel 6.18):
//! - `/dev/net/tun` when it is `0600 root` (opening it checks the host uid);
//! - `ip sr hmac set`: the SEG6 generic-netlink family marks its commands `GENL_ADMIN_PERM`,
//!   i.e. `CAP_NET_ADMIN` in the *initial* user namespace (`RTNETLINK answers: Operation not
//!   permitted`); `seg6local` routes and `encap seg6` work;
//! - tcpdump (it switches to user `tcpdump`, which needs `setgroups`); tshark/dumpcap work.

use std::process::Command;

use crate::supervisor::find_program;

/// Set in the re-run's environment; a second re-run from inside would only loop.
const MARK: &str = "HOPSTACK_USERNS_RERUN";

/// `ip netns add` creates `/run/netns/<name>` and bind-mounts the namespace there. The host's
/// directory belongs to the real root, whom the new namespace does not map, so a private
/// tmpfs is mounted over it (or over `/run` when the directory does not exist yet).
const SCRIPT: &str = "if [ -d /run/netns ]; then mount -t tmpfs -o mode=0755 hopstack-netns /run/netns; \
                      else mount -t tmpfs -o mode=0755 hopstack-run /run && mkdir /run/netns; fi \
                      && exec \"$0\" \"$@\"";

/// Whether the caller is (real or namespaced) root, or already inside a re-run.
fn runs_here() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    euid == 0 || std::env::var_os(MARK).is_some()
}

/// Whether this process is root of the initial user namespace (euid 0 and the full
/// identity uid map), as opposed to root of a user namespace that maps only a few ids.
pub fn initial_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    euid == 0 && map.split_whitespace().eq(["0", "0", "4294967295"])
}

/// Runs the calling test again as root of its own user, network and mount namespaces when
/// the process is not root. Returns `true` when it did so and the re-run passed (the caller
/// then returns at once); panics with the re-run's output when it failed. Returns `false`
/// when the test should run right here: as root (CI), inside the re-run itself, or when user
/// namespaces are unavailable (the test's own "needs root" check then skips loudly).
///
/// The test is found by the name of the calling thread, which libtest sets to the test's
/// name; call this first thing in the `#[test]` function itself.
pub fn rerun_in_userns() -> bool {
    if runs_here() {
        return false;
    }
    let Some(test) = crate::harness::current_test()
        .map(str::to_owned)
        .or_else(|| std::thread::current().name().map(str::to_owned))
    else {
        return false;
    };
    if test == "main" {
        // Not a libtest thread (e.g. a custom harness): the name does not identify the test.
        return false;
    }
    let Some(unshare) = find_program("unshare") else {
        eprintln!("userns: `unshare` (util-linux) not found; cannot re-run `{test}` rootless");
        return false;
    };
    let ns = ["--user", "--map-root-user", "--net", "--mount"];
    match Command::new(&unshare)
        .args(ns)
        .args(["--", "/bin/sh", "-c", "exit 0"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "userns: cannot create a user namespace ({}); cannot re-run `{test}` rootless",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return false;
        }
        Err(e) => {
            eprintln!("userns: cannot run {}: {e}", unshare.display());
            return false;
        }
    }
    let exe = std::env::current_exe().expect("current_exe of the test binary");
    let out = Command::new(&unshare)
        .args(ns)
        .args(["--", "/bin/sh", "-c", SCRIPT])
        .arg(&exe)
        .args(["--exact", &test, "--include-ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(MARK, "1")
        .envs(run_dir_env())
        .output()
        .unwrap_or_else(|e| panic!("userns: cannot run {}: {e}", unshare.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Through print!/eprint! so libtest captures them: shown with --nocapture or on failure.
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "userns: `{test}` failed as root of a user namespace ({}); its output is above",
        out.status
    );
    // Skipped in there (e.g. a kernel feature the namespace cannot use): skipped here too.
    if let Some(why) = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("SKIP {test}: ")))
    {
        crate::harness::skip(why.to_owned());
    }
    // A filter that matched nothing would also exit 0.
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "userns: the re-run did not run exactly `{test}`; its output is above"
    );
    true
}

/// Why `hopd`'s border role (which opens `/dev/net/tun`) cannot run for this user, if it
/// cannot. Root of a user namespace gets no further than its owner here: opening the device
/// node checks the host uid against its mode, and it is often `0600 root`.
pub fn tun_unavailable() -> Option<String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
    {
        Ok(_) => None,
        Err(e) => {
            use std::os::unix::fs::MetadataExt;
            let mode = std::fs::metadata("/dev/net/tun")
                .map(|m| format!("mode {:04o}, uid {}", m.mode() & 0o7777, m.uid()))
                .unwrap_or_else(|e| format!("stat: {e}"));
            Some(format!(
                "hopd's border role needs /dev/net/tun: open: {e} ({mode}); run as root \
                 or give this user access to the device"
            ))
        }
    }
}

/// Why this process can neither make network namespaces itself (it is not root) nor re-run a
/// test as root of a user namespace ([`rerun_in_userns`]), if it can do neither.
pub fn netns_unavailable() -> Option<String> {
    if runs_here() {
        return None;
    }
    let Some(unshare) = find_program("unshare") else {
        return Some("not root, and `unshare` (util-linux) is not installed to re-run as root of a user namespace".into());
    };
    match Command::new(&unshare)
        .args(["--user", "--map-root-user", "--net", "--mount"])
        .args(["--", "/bin/sh", "-c", "exit 0"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "not root, and no user namespace to re-run as root in: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!(
            "not root, and {} cannot run: {e}",
            unshare.display()
        )),
    }
}

/// A testbed started inside the re-run would pick `/tmp/hopbed-0` (uid 0 there), which
/// belongs to the real root; keep the run directory this user's own. `$XDG_RUNTIME_DIR`
/// (under `/run`) stays usable unless `/run` itself is covered by [`SCRIPT`], which happens
/// when `/run/netns` does not exist yet.
fn run_dir_env() -> Option<(&'static str, String)> {
    let xdg_usable = std::env::var_os("XDG_RUNTIME_DIR").is_some()
        && std::path::Path::new("/run/netns").is_dir();
    if std::env::var_os("HOPBED_RUN_DIR").is_some() || xdg_usable {
        return None;
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    Some(("HOPBED_RUN_DIR", format!("/tmp/hopbed-{uid}")))
}
