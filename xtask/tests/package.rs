//! The Debian package, built as `cargo xtask deb` builds it, unpacked into a scratch root with
//! `dpkg-deb -x` and checked file by file: the four binaries (the unpacked `hop --version`
//! names the git revision), hopd's units and sysctls, a man page per command that `man -l`
//! renders, the completions of three shells, the example configurations.
//!
//! Packaging release binaries would mean a full optimised build (minutes on a small machine),
//! so the test packages the debug binaries the test command has built (`cargo build
//! --workspace --bins`): what is checked here is the package, not the code in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BINARIES: [&str; 4] = ["hop", "hopd", "hoptrace", "hopbed"];

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The target directory's debug profile: this test runs as target/debug/deps/package-….
fn debug_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_owned()
}

fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// cargo-deb deletes every earlier `hopstack_*.deb` in target/debian when it builds one, even
/// one written elsewhere: the packages a developer built there are moved aside while the test
/// builds its own, and back afterwards, also when the test fails.
struct KeepEarlierPackages {
    moved: Vec<(PathBuf, PathBuf)>,
}

impl KeepEarlierPackages {
    fn aside(debian: &Path, keep: &Path) -> KeepEarlierPackages {
        let mut moved = Vec::new();
        for e in std::fs::read_dir(debian).into_iter().flatten() {
            let from = e.unwrap().path();
            let name = from.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("hopstack") && (name.ends_with(".deb") || name.ends_with(".ddeb")) {
                std::fs::create_dir_all(keep).unwrap();
                let to = keep.join(&name);
                std::fs::rename(&from, &to).unwrap();
                moved.push((to, from));
            }
        }
        KeepEarlierPackages { moved }
    }
}

impl Drop for KeepEarlierPackages {
    fn drop(&mut self) {
        for (kept, original) in &self.moved {
            let _ = std::fs::rename(kept, original);
        }
    }
}

fn package_builds_installs_and_its_man_pages_render() {
    for b in BINARIES {
        let p = debug_dir().join(b);
        assert!(
            p.is_file(),
            "{} is missing: build the binaries first (`cargo build --workspace --bins`, as .ci/test does)",
            p.display()
        );
    }
    // cargo-deb takes the generated files from dist/ and works in the target directory: a
    // user who cannot write there (.ci/rootless runs the tests as nobody) cannot build it.
    let dist = workspace_root().join("dist");
    let target = debug_dir().parent().unwrap().to_owned();
    let writable = std::fs::create_dir_all(&dist).is_ok()
        && tempfile::tempfile_in(&dist).is_ok()
        && tempfile::tempfile_in(&target).is_ok();
    if !writable {
        hopstack_testbed::harness::skip(format!(
            "needs to write {} and {}, which this user cannot",
            dist.display(),
            target.display()
        ));
    }

    let scratch = tempfile::tempdir().unwrap();
    let out_dir = scratch.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let _kept = KeepEarlierPackages::aside(&target.join("debian"), &scratch.path().join("kept"));

    // The package, as `cargo xtask deb` makes it (stripped), from the debug binaries; lightly
    // compressed, which is quicker.
    let started = std::time::Instant::now();
    let built = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["deb", "--profile", "dev", "--no-build", "--", "--fast"])
        .arg("--output")
        .arg(&out_dir)
        .current_dir(workspace_root())
        .output()
        .unwrap();
    ok("cargo xtask deb --profile dev --no-build", built);
    let debs: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    let [deb] = &debs[..] else {
        panic!("expected one .deb in {}: {debs:?}", out_dir.display());
    };
    println!(
        "built {} ({} KiB) in {:.1} s",
        deb.display(),
        std::fs::metadata(deb).unwrap().len() / 1024,
        started.elapsed().as_secs_f64()
    );

    // Its control fields: the package's name and a version with the revision in it.
    let fields = ok(
        "dpkg-deb --field",
        Command::new("dpkg-deb")
            .arg("--field")
            .arg(deb)
            .args(["Package", "Version", "Depends"])
            .output()
            .unwrap(),
    );
    assert!(fields.contains("Package: hopstack\n"), "{fields}");
    let revision = hopstack_version::GIT_REVISION;
    if revision != "unknown" {
        assert!(
            fields.contains(&format!(".{revision}-1\n")),
            "the version names the revision {revision}: {fields}"
        );
    }
    assert!(
        fields.contains("libc6"),
        "Depends found from the binaries: {fields}"
    );

    // Unpacked into a throw-away root.
    let root = scratch.path().join("root");
    ok(
        "dpkg-deb -x",
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb)
            .arg(&root)
            .output()
            .unwrap(),
    );
    let files = files_under(&root);
    let has = |f: &str| {
        assert!(
            files.iter().any(|x| x == f),
            "{f} is not in the package:\n{}",
            files.join("\n")
        )
    };

    for b in BINARIES {
        let exe = root.join("usr/bin").join(b);
        has(&format!("usr/bin/{b}"));
        let version = ok(
            &format!("{b} --version"),
            Command::new(&exe).arg("--version").output().unwrap(),
        );
        // The binary's name (not its crate's) and the revision it was built from.
        assert_eq!(
            version.trim(),
            format!("{b} {}", hopstack_version::VERSION),
            "{b} --version: is target/debug/{b} older than this checkout? \
             (`cargo build --workspace --bins`)"
        );
    }
    let hop_version = ok(
        "hop --version",
        Command::new(root.join("usr/bin/hop"))
            .arg("--version")
            .output()
            .unwrap(),
    );
    assert!(
        hop_version.contains(&format!("(git {revision}")),
        "{hop_version}"
    );

    for unit in ["hopd.service", "hopd@.service"] {
        has(&format!("lib/systemd/system/{unit}"));
        assert_eq!(
            std::fs::read(root.join("lib/systemd/system").join(unit)).unwrap(),
            std::fs::read(workspace_root().join("forwarder/systemd").join(unit)).unwrap(),
            "{unit} as shipped in forwarder/systemd/"
        );
    }

    has("usr/lib/sysctl.d/60-hopd.conf");
    let sysctl = std::fs::read_to_string(root.join("usr/lib/sysctl.d/60-hopd.conf")).unwrap();
    let settings: Vec<&str> = sysctl
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    for want in [
        "net.ipv6.conf.all.forwarding = 1",
        "net.ipv6.conf.all.seg6_enabled = 1",
    ] {
        assert!(settings.contains(&want), "{want} not in {settings:?}");
    }

    for b in BINARIES {
        has(&format!("usr/share/bash-completion/completions/{b}"));
        has(&format!("usr/share/zsh/vendor-completions/_{b}"));
        has(&format!("usr/share/fish/vendor_completions.d/{b}.fish"));
    }
    for example in ["hopd-github.toml", "hopd-org.toml", "hopd-yc.toml"] {
        has(&format!("usr/share/doc/hopstack/examples/{example}"));
    }
    has("usr/share/doc/hopstack/copyright");

    // A page per command and subcommand, gzipped; `man -l` renders each.
    let pages: Vec<&String> = files
        .iter()
        .filter(|f| f.starts_with("usr/share/man/"))
        .collect();
    for page in [
        "man1/hop.1.gz",
        "man1/hop-get.1.gz",
        "man1/hop-encode.1.gz",
        "man8/hopd.8.gz",
        "man8/hopd-check.8.gz",
        "man1/hoptrace.1.gz",
        "man1/hopbed.1.gz",
        "man1/hopbed-up.1.gz",
    ] {
        has(&format!("usr/share/man/{page}"));
    }
    for page in &pages {
        let rendered = Command::new("man")
            .arg("-l")
            .arg(root.join(page))
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&rendered.stderr).into_owned();
        let text = ok(&format!("man -l {page}"), rendered);
        assert!(stderr.trim().is_empty(), "man -l {page} warns:\n{stderr}");
        assert!(text.contains("NAME"), "man -l {page}:\n{text}");
        assert!(text.contains("SYNOPSIS"), "man -l {page}:\n{text}");
    }
    println!("{} man pages render", pages.len());
}

hopstack_testbed::tests! {
    package_builds_installs_and_its_man_pages_render
        needs [Program("cargo-deb"), Program("dpkg-deb"), Program("man")],
}
