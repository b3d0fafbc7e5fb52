//! Reads the git revision of the checkout being built and its commit time, for
//! `hopstack_version`. Outside a git checkout (a source tarball) or without git they are
//! "unknown", and the build goes on.
//!
//! Cargo re-runs this script when the checkout's `HEAD` moves: `HEAD` itself changes on a
//! checkout, but a commit only moves the branch `HEAD` names, so the branch's ref file (and
//! `packed-refs`, where git packs refs) is watched too.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(&manifest_dir)
            // The commit time in UTC, whatever the zone of the machine that builds.
            .env("TZ", "UTC")
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
    };

    // The committer's date and time, not the build's: the same revision always prints the
    // same version, whenever and wherever it is built. `%h` abbreviates like
    // `git rev-parse --short HEAD`.
    let commit = git(&[
        "log",
        "-1",
        "--format=%h %cd",
        "--date=format-local:%Y-%m-%d %Y%m%d%H%M%S",
        "HEAD",
    ]);
    let fields: Vec<&str> = commit.as_deref().unwrap_or("").split(' ').collect();
    let (revision, date, time) = match fields[..] {
        [revision, date, time] => (revision, date, time),
        _ => ("unknown", "unknown", "unknown"),
    };
    let package_version = std::env::var("CARGO_PKG_VERSION").unwrap();
    let version = if revision == "unknown" {
        format!("{package_version} (git unknown)")
    } else {
        format!("{package_version} (git {revision}, {date})")
    };
    println!("cargo:rustc-env=HOPSTACK_GIT_REVISION={revision}");
    println!("cargo:rustc-env=HOPSTACK_GIT_DATE={date}");
    println!("cargo:rustc-env=HOPSTACK_GIT_COMMIT_TIME={time}");
    println!("cargo:rustc-env=HOPSTACK_VERSION={version}");

    // What to watch; paths from `git rev-parse --git-path` also work in a linked worktree,
    // whose HEAD is in the worktree's git directory and whose refs are in the shared one.
    let mut watch = vec![manifest_dir.join("build.rs")];
    let mut git_path = |name: &str| {
        if let Some(p) = git(&["rev-parse", "--git-path", name]) {
            watch.push(manifest_dir.join(p));
        }
    };
    git_path("HEAD");
    git_path("packed-refs");
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        git_path(&branch);
    }
    for p in watch {
        // A watched path that does not exist would make cargo run this script every build.
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}
