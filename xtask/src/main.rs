//! Release chores, run as `cargo xtask …` (the alias is in .cargo/config.toml):
//!
//! - `cargo xtask dist [DIR]`: man pages and bash/zsh/fish completions of hop, hopd, hoptrace
//!   and hopbed, generated from the `clap::Command` each binary parses (its crate's
//!   `*_command()`), so they list exactly the flags the binaries take; DIR defaults to
//!   `dist/` at the top of the workspace, where the Debian package takes them from.
//! - `cargo xtask deb`: `dist`, then `cargo deb` (which builds the four binaries) with a
//!   version carrying the git revision (docs/packaging.md).

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use clap_complete::Shell;

#[derive(Parser)]
#[command(name = "xtask", about = "hopstack's release chores")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Generate the man pages (DIR/man) and shell completions (DIR/completions/{bash,zsh,fish}).
    Dist {
        /// Where to write them [default: dist/ at the top of the workspace].
        dir: Option<PathBuf>,
    },
    /// Build the Debian package: `dist`, then `cargo deb`, which builds the four binaries
    /// (needs cargo-deb).
    Deb {
        /// Cargo profile of the packaged binaries. `dev` packages the debug binaries, for the
        /// package test (cargo-deb warns that it is not for releases).
        #[arg(long, default_value = "release")]
        profile: String,
        /// Package the binaries already built with --profile instead of building them.
        #[arg(long)]
        no_build: bool,
        /// Passed on to `cargo deb` (e.g. `--output DIR`, `--fast`, `--dbgsym`).
        #[arg(last = true)]
        cargo_deb_args: Vec<String>,
    },
}

/// One binary the package ships, with its command line and the manual section of its pages.
pub struct Binary {
    pub name: &'static str,
    pub command: fn() -> clap::Command,
    /// 1: user commands; 8: daemons and system administration (hopd).
    pub section: &'static str,
}

pub const BINARIES: &[Binary] = &[
    Binary {
        name: "hop",
        command: hopstack_client::hop_command,
        section: "1",
    },
    Binary {
        name: "hopd",
        command: hopstack_forwarder::hopd_command,
        section: "8",
    },
    Binary {
        // Unprivileged, like traceroute and tracepath.
        name: "hoptrace",
        command: hopstack_trace::hoptrace_command,
        section: "1",
    },
    Binary {
        name: "hopbed",
        command: hopstack_testbed::hopbed_command,
        section: "1",
    },
];

/// The crate whose Cargo.toml has `[package.metadata.deb]`: the package is built around hopd,
/// its units and its sysctls. Its assets name the other crates' binaries, which cargo deb
/// builds along (`cargo build --workspace --bin hop --bin hopd …`).
const DEB_CRATE: &str = "hopstack-forwarder";

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Dist { dir } => {
            let dir = dir.unwrap_or_else(default_dist_dir);
            let files = write_dist(&dir)?;
            println!("{} files in {}", files.len(), dir.display());
        }
        Task::Deb {
            profile,
            no_build,
            cargo_deb_args,
        } => deb(&profile, no_build, &cargo_deb_args)?,
    }
    Ok(())
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Where the package's assets name the generated files (forwarder/Cargo.toml). Not under
/// `target/`: cargo-deb takes only `target/release/…` for the target directory and warns
/// about any other path through it.
fn default_dist_dir() -> PathBuf {
    workspace_root().join("dist")
}

/// One generated file: its path under the dist directory and its contents.
pub struct Generated {
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

/// The man pages of `binary`: one for the command and one per subcommand, named like git's
/// (`hop-get.1`), each with the options of its own command.
pub fn man_pages(binary: &Binary) -> Result<Vec<Generated>> {
    let mut command = (binary.command)().disable_help_subcommand(true);
    // Building propagates global options (hopd's --config) and names the subcommands
    // `hop-get`, as their pages are called.
    command.build();
    let mut pages = Vec::new();
    collect_pages(&command, binary.section, &mut pages)?;
    Ok(pages)
}

fn collect_pages(command: &clap::Command, section: &str, out: &mut Vec<Generated>) -> Result<()> {
    let name = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_owned();
    let mut page = command.clone();
    // The NAME line already says `hopd \-`: drop a leading "hopd: " from the about text
    // there, and keep the whole sentence for DESCRIPTION (which prefers the long about).
    if let Some(about) = page.get_about().map(|a| a.to_string())
        && let Some(rest) = about.strip_prefix(&format!("{name}: "))
    {
        let long_about = page
            .get_long_about()
            .map_or(about.clone(), |l| l.to_string());
        page = page.about(rest.to_owned()).long_about(long_about);
    }
    // The footer: the revision is in the VERSION section; with it here too the footer's
    // three fields overlap at 80 columns.
    let mut man = clap_mangen::Man::new(page)
        .section(section)
        .manual("hopstack")
        .source(format!("hopstack {}", hopstack_version::PACKAGE_VERSION));
    // The revision's date, not today's: the same revision generates the same pages.
    if hopstack_version::GIT_DATE != "unknown" {
        man = man.date(hopstack_version::GIT_DATE);
    }
    let mut contents = Vec::new();
    man.render(&mut contents)?;
    out.push(Generated {
        path: PathBuf::from("man").join(format!("{name}.{section}")),
        contents,
    });
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect_pages(sub, section, out)?;
    }
    Ok(())
}

/// The completion scripts of `binary`, named as each shell looks them up:
/// `completions/bash/hop`, `completions/zsh/_hop`, `completions/fish/hop.fish`.
pub fn completions(binary: &Binary) -> Vec<Generated> {
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            let mut command = (binary.command)();
            let mut contents = Vec::new();
            clap_complete::generate(shell, &mut command, binary.name, &mut contents);
            let file = match shell {
                Shell::Zsh => format!("_{}", binary.name),
                Shell::Fish => format!("{}.fish", binary.name),
                _ => binary.name.to_owned(),
            };
            Generated {
                path: Path::new("completions").join(shell.to_string()).join(file),
                contents,
            }
        })
        .collect()
}

/// Writes every man page and completion into `dir`, replacing what an earlier run left there
/// (a page of a subcommand that is gone must not end up in the package).
fn write_dist(dir: &Path) -> Result<Vec<PathBuf>> {
    for sub in ["man", "completions"] {
        let old = dir.join(sub);
        if old.exists() {
            std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        }
    }
    let mut written = Vec::new();
    for binary in BINARIES {
        for file in man_pages(binary)?.into_iter().chain(completions(binary)) {
            let path = dir.join(&file.path);
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::write(&path, &file.contents)
                .with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The Debian version: the workspace version, then `+git` with the commit time (so that
/// every later commit sorts higher for apt, which a hash alone would not) and the revision,
/// then the Debian revision: `0.1.0+git20261205093000.1a2b3c4-1`. Outside git: `0.1.0-1`.
pub fn deb_version() -> String {
    let base = hopstack_version::PACKAGE_VERSION;
    match (
        hopstack_version::GIT_COMMIT_TIME,
        hopstack_version::GIT_REVISION,
    ) {
        ("unknown", _) | (_, "unknown") => format!("{base}-1"),
        (time, revision) => format!("{base}+git{time}.{revision}-1"),
    }
}

fn deb(profile: &str, no_build: bool, cargo_deb_args: &[String]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Before a release build of several minutes, not after it.
    let cargo_deb = Process::new(&cargo).args(["deb", "--version"]).output();
    if !cargo_deb.is_ok_and(|o| o.status.success()) {
        bail!("cargo-deb is not installed: cargo install cargo-deb --locked");
    }

    let dist = default_dist_dir();
    let files = write_dist(&dist)?;
    eprintln!(
        "xtask: {} man pages and completions in {}",
        files.len(),
        dist.display()
    );

    let version = deb_version();
    let mut args = vec![
        "deb",
        "--package",
        DEB_CRATE,
        "--profile",
        profile,
        "--deb-version",
        &version,
    ];
    if no_build {
        args.push("--no-build");
    }
    // The release profile keeps line tables (the workspace Cargo.toml) and cargo-deb would
    // pack them: stripped, the package is a fifth of the size. `-- --dbgsym` makes a separate
    // debug-symbol package instead, `-- --no-strip` keeps them in.
    let keeps_debug_info = cargo_deb_args.iter().any(|a| {
        matches!(
            a.as_str(),
            "--strip" | "--no-strip" | "--dbgsym" | "--separate-debug-symbols"
        )
    });
    if !keeps_debug_info {
        args.push("--strip");
    }
    args.extend(cargo_deb_args.iter().map(String::as_str));
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Process::new(&cargo)
        .args(&args)
        .current_dir(workspace_root())
        .status()
        .context("running cargo deb")?;
    if !status.success() {
        bail!("cargo deb failed: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command of `command`'s tree with its display name (`hop-get`), as built.
    fn tree(command: &clap::Command) -> Vec<clap::Command> {
        let mut out = vec![command.clone()];
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            out.extend(tree(sub));
        }
        out
    }

    /// The man pages cannot drift from the flags: each page names every long option of its
    /// command (hidden ones aside), and every command has its page.
    #[test]
    fn every_man_page_mentions_every_long_flag_of_its_command() {
        for binary in BINARIES {
            let pages = man_pages(binary).unwrap();
            let mut command = (binary.command)().disable_help_subcommand(true);
            command.build();
            for cmd in tree(&command) {
                let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_owned();
                let file = PathBuf::from("man").join(format!("{name}.{}", binary.section));
                let page = pages
                    .iter()
                    .find(|p| p.path == file)
                    .unwrap_or_else(|| panic!("no man page {} for `{name}`", file.display()));
                // roff writes a hyphen as `\-`.
                let text = String::from_utf8_lossy(&page.contents).replace("\\-", "-");
                let longs: Vec<&str> = cmd
                    .get_arguments()
                    .filter(|a| !a.is_hide_set())
                    .filter_map(|a| a.get_long())
                    .collect();
                assert!(
                    longs.contains(&"help"),
                    "{name}: the command was not built (no --help): {longs:?}"
                );
                for long in longs {
                    assert!(
                        text.contains(&format!("--{long}")),
                        "{}: --{long} of `{name}` is missing",
                        file.display()
                    );
                }
            }
        }
    }

    /// What `--version` prints, from the definitions the binaries parse: the binary's name
    /// (not its crate's, `hopstack-forwarder`) and the revision.
    #[test]
    fn version_names_the_binary_and_the_revision() {
        for binary in BINARIES {
            assert_eq!(
                (binary.command)().render_version(),
                format!("{} {}\n", binary.name, hopstack_version::VERSION)
            );
        }
        assert!(
            hopstack_version::VERSION.contains(&format!("(git {}", hopstack_version::GIT_REVISION)),
            "{}",
            hopstack_version::VERSION
        );
    }

    #[test]
    fn every_binary_has_completions_for_three_shells_naming_its_flags() {
        for binary in BINARIES {
            let files = completions(binary);
            let names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
            let b = binary.name;
            assert_eq!(
                names,
                [
                    format!("completions/bash/{b}"),
                    format!("completions/zsh/_{b}"),
                    format!("completions/fish/{b}.fish"),
                ]
            );
            for f in &files {
                let text = String::from_utf8_lossy(&f.contents);
                assert!(text.contains("help"), "{}: {text}", f.path.display());
            }
        }
    }

    #[test]
    fn pages_are_named_after_the_binary_and_its_subcommands() {
        let hop = man_pages(&BINARIES[0]).unwrap();
        let names: Vec<String> = hop.iter().map(|p| p.path.display().to_string()).collect();
        for want in ["man/hop.1", "man/hop-get.1", "man/hop-encode.1"] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let hopd = man_pages(&BINARIES[1]).unwrap();
        let page = String::from_utf8_lossy(&hopd[0].contents).into_owned();
        assert_eq!(hopd[0].path, Path::new("man/hopd.8"));
        // The binary's name and the git revision, not the crate's name.
        assert!(page.contains(".TH hopd 8"), "{page}");
        assert!(page.contains(hopstack_version::GIT_REVISION), "{page}");
        assert!(!page.contains("hopstack-forwarder"), "{page}");
        // "hopd: the hopstack forwarder daemon." without the repeated name.
        assert!(
            page.contains("hopd \\- the hopstack forwarder daemon"),
            "{page}"
        );
    }

    #[test]
    fn the_deb_version_carries_the_revision_and_sorts_by_commit_time() {
        let v = deb_version();
        assert!(v.starts_with(hopstack_version::PACKAGE_VERSION), "{v}");
        assert!(v.ends_with("-1"), "{v}");
        if hopstack_version::GIT_REVISION != "unknown" {
            assert!(
                v.contains(&format!(".{}-1", hopstack_version::GIT_REVISION)),
                "{v}"
            );
            assert!(v.contains("+git20"), "{v}");
        }
    }
}
