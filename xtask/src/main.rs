//! Release chores, run as `cargo xtask …` (the alias is in .cargo/config.toml):
//!
//! - `cargo xtask dist [DIR]`: man pages and bash/zsh/fish completions of hop, hopd, hoptrace
//!   and hopbed, generated from the `clap::Command` each binary parses (its crate's
//!   `*_command()`), so they list exactly the flags the binaries take; DIR defaults to
//!   `dist/` at the top of the workspace.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
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
}

/// One binary, with its command line and the manual section of its pages.
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

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Dist { dir } => {
            let dir = dir.unwrap_or_else(default_dist_dir);
            let files = write_dist(&dir)?;
            println!("{} files in {}", files.len(), dir.display());
        }
    }
    Ok(())
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The generated files' default place.
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
/// (the page of a subcommand that is gone must not stay).
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
}
