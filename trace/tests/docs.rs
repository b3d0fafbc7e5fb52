//! The docs run: every fenced command in README.md and docs/*.md is run here and, where the
//! docs show its output, the output is checked. Commands of `hop`, `hoptrace` and `hopbed`
//! with a stack address run on the shipped three-hop testbed's client (its CA as `./ca.pem`);
//! the rest on this host, in a scratch directory, with the workspace's binaries first on
//! `PATH`. The few commands that are not meant to run here are listed in [`NOT_RUN`] with why.
//!
//! Output is compared line by line after folding what changes from run to run: decimal
//! numbers (times), counts before `ms`, and runs of spaces (column widths follow the numbers).
//! Every line the docs show must come out, in that order; the docs may leave lines out.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use hopstack_testbed::Testbed;
use support::sibling;

/// Commands the docs show that this test does not run, by a prefix of the command, and why.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "cargo install cargo-fuzz",
        "installs a tool (once, from crates.io) for the fuzzing walkthrough",
    ),
    (
        "bash .ci/test",
        "the test command itself: it runs this test",
    ),
    (
        "HOPSTACK_KERNEL_FEATURES=none bash .ci/test",
        "the test command itself",
    ),
    (
        "bash .ci/demo",
        "the main job; the demo test (hopbed demo) runs the same",
    ),
    (
        "bash .ci/rootless",
        "runs the whole suite again as another user",
    ),
    (
        "cargo ",
        "builds and tests the workspace: what runs this test",
    ),
    (
        "encoder/fuzz/run.sh",
        "fuzzing for minutes (docs/fuzzing.md gives the counts)",
    ),
    (
        "cd encoder/fuzz",
        "the fuzzing walkthrough (nightly cargo-fuzz)",
    ),
    ("python3 make_seeds.py", "the fuzzing walkthrough"),
    ("RUSTC_BOOTSTRAP=1 cargo fuzz", "the fuzzing walkthrough"),
    (
        "hopd --config /etc/hopd/hopd.toml",
        "a daemon that runs until stopped; the testbed runs hopd itself",
    ),
    (
        "hopd stats --config /etc/hopd/hopd.toml",
        "reads a running hopd's metrics endpoint",
    ),
    (
        "hopd show cache --config /etc/hopd/hopd.toml",
        "reads a running hopd's metrics endpoint (border_late_binding runs it on the testbed)",
    ),
    (
        "ip link set dev hop0 up",
        "a router's manual set-up (hopd does it)",
    ),
    (
        "ip -6 route replace fd00:22::1/128",
        "a router's manual set-up (hopd does it)",
    ),
    (
        "target/debug/hopbed exec github.com",
        "an interactive shell",
    ),
    (
        "hop get -o big.iso 'mirror>files",
        "an illustration: no such path in the testbed",
    ),
    (
        "hop get 'http://[fd00:3::2]",
        "a plain URL: runs on the dataplane topology (docs/client.md says so)",
    ),
    (
        "hop get -v 'http://[fd00:3::2]",
        "a plain URL: runs on the dataplane topology",
    ),
    (
        "hop get -X POST",
        "the shipped web service answers GET only (405 to a POST); client_e2e sends bodies",
    ),
    (
        "hop proxy -L",
        "a server that runs until stopped (client_e2e tests hop proxy)",
    ),
    (
        "curl http://127.0.0.1:8080/users/list",
        "needs the `hop proxy` above",
    ),
];

/// One command from the docs and the output shown after it.
#[derive(Debug)]
struct Example {
    at: String,
    command: String,
    output: Vec<String>,
    /// What the comment before the block says (`<!-- docs test: … -->`): `not run: WHY`,
    /// `after hopbed FAULT…` (a fault injected before the block's commands and undone after),
    /// `on mixed` (the mixed topology instead of three-hop).
    directive: Option<String>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The commands of every fenced block: `$ `-lines with the lines after them in console and
/// text blocks; every line of a shell block (no output shown).
fn examples() -> Vec<Example> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.strip_prefix(repo()).unwrap().display().to_string();
        let mut lang: Option<String> = None;
        let mut current: Option<Example> = None;
        let mut directive: Option<String> = None;
        let mut previous = "";
        let mut lines = text.lines().enumerate().peekable();
        while let Some((i, line)) = lines.next() {
            if let Some(fence) = line.trim_start().strip_prefix("```") {
                if lang.is_some() {
                    out.extend(current.take());
                    lang = None;
                } else {
                    lang = Some(fence.trim().to_owned());
                    directive = previous
                        .trim()
                        .strip_prefix("<!-- docs test:")
                        .and_then(|d| d.strip_suffix("-->"))
                        .map(|d| d.trim().to_owned());
                }
                previous = line;
                continue;
            }
            previous = line;
            let Some(l) = &lang else { continue };
            let shell = matches!(l.as_str(), "sh" | "bash" | "shell");
            let console = matches!(l.as_str(), "console" | "text");
            let command = if shell {
                let t = line.trim();
                (!t.is_empty() && !t.starts_with('#')).then(|| t.to_owned())
            } else if console {
                line.strip_prefix("$ ").map(str::to_owned)
            } else {
                None
            };
            match command {
                Some(mut c) => {
                    out.extend(current.take());
                    while c.ends_with('\\') {
                        c.pop();
                        if let Some((_, next)) = lines.next() {
                            c.push(' ');
                            c.push_str(next.trim());
                        }
                    }
                    current = Some(Example {
                        at: format!("{name}:{}", i + 1),
                        command: strip_comment(&c),
                        output: Vec::new(),
                        directive: directive.clone(),
                    });
                }
                None if console => {
                    if let Some(e) = &mut current {
                        e.output.push(line.to_owned());
                    }
                }
                None => {}
            }
        }
    }
    out
}

/// A command without its trailing `# comment` (outside quotes).
fn strip_comment(c: &str) -> String {
    let mut quote = None;
    for (i, ch) in c.char_indices() {
        match (quote, ch) {
            (None, '\'' | '"') => quote = Some(ch),
            (Some(q), _) if ch == q => quote = None,
            (None, '#') if i > 0 && c[..i].ends_with(' ') => return c[..i].trim_end().to_owned(),
            _ => {}
        }
    }
    c.trim_end().to_owned()
}

/// Output folded for comparison (see the module documentation): decimal numbers, counts
/// of milliseconds and seconds, and timing bars (`|==  |`) become `#`; runs of spaces one.
fn fold(line: &str) -> String {
    let mut line = line.trim_end().to_owned();
    if let (Some(a), Some(b)) = (line.find('|'), line.rfind('|'))
        && a < b
        && line[a + 1..b].chars().all(|c| c == '=' || c == ' ')
    {
        line.replace_range(a..=b, "#");
    }
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut n = String::from(c);
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() || d == '.' {
                    n.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            let rest: String = chars.clone().take(4).collect();
            let decimal = n.contains('.') && n.ends_with(|d: char| d.is_ascii_digit());
            let time = rest.starts_with(" ms") || rest == " s" || rest.starts_with(" s ");
            if decimal || time {
                out.push('#');
            } else {
                out.push_str(&n);
            }
        } else if c == ' ' {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether every shown line comes out, in order.
fn shows(actual: &str, shown: &[String]) -> Result<(), String> {
    let actual: Vec<String> = actual.lines().map(fold).collect();
    let mut at = 0;
    // Blank lines and `...` (lines left out) are not compared.
    for want in shown
        .iter()
        .map(|l| fold(l))
        .filter(|l| !l.trim().is_empty() && l.trim() != "...")
    {
        match actual[at..].iter().position(|a| *a == want) {
            Some(i) => at += i + 1,
            None => return Err(format!("missing line {want:?}")),
        }
    }
    Ok(())
}

/// Where a command runs: a node of the testbed, or this host (`None`).
fn place(command: &str) -> Option<&'static str> {
    let on_path = ["github.com>", "'[fc00:", "nosuch.example>"];
    let tool = ["hop get", "hop cat", "hop resolve", "hoptrace"];
    let piped = command.contains("| hop cat");
    if (tool.iter().any(|t| command.starts_with(t)) || piped)
        && on_path.iter().any(|p| command.contains(p))
    {
        Some("client")
    } else if command.starts_with("hopd check") {
        // A router's check: a node that forwards and runs no hopd with metrics of its own.
        Some("yc")
    } else {
        None
    }
}

/// A fault a block's directive injects (`after hopbed …`), and how to undo it.
fn inject(tb: &Testbed, words: &[&str], undo: bool) {
    match words {
        ["dns-fault", network, name, fault] => {
            let fault = (!undo).then(|| fault.parse().expect("a DNS fault"));
            tb.dns_fault(network, name, fault).unwrap();
        }
        ["link", a, b, "down"] if undo => tb.link_up(a, b).unwrap(),
        ["link", a, b, "down"] => tb.link_down(a, b).unwrap(),
        other => panic!("unknown fault in a docs test directive: {other:?}"),
    }
    // hopd keeps answers (and failures) for the views' TTL, 1 s.
    std::thread::sleep(std::time::Duration::from_millis(1500));
}

/// The docs' `/etc/hopd/hopd.toml`: the full configuration docs/forwarder.md shows first.
fn forwarder_example_config(into: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("docs/forwarder.md")).unwrap();
    let start = text.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + text[start..].find("```").unwrap();
    let file = into.join("hopd.toml");
    std::fs::write(&file, &text[start..end]).unwrap();
    file
}

fn start(topology: &str, bin: &Path) -> Testbed {
    Testbed::builder(repo().join(format!("testbed/topologies/{topology}.toml")))
        .hopbed_exe(bin.join("hopbed"))
        .bin_dir(bin)
        .start()
        .unwrap_or_else(|e| panic!("starting {topology}: {e}"))
}

fn docs_commands_run_as_shown() {
    let examples = examples();
    let bin = sibling("hop").parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let three_hop = repo().join("testbed/topologies/three-hop");
    for f in ["ca.pem", "other-ca.pem"] {
        std::fs::copy(three_hop.join(f), dir.join(f)).unwrap();
    }
    let hopd_toml = forwarder_example_config(dir);
    let tb = start("three-hop", &bin);
    let mut mixed: Option<Testbed> = None;
    let mut ran = 0;
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    for (n, e) in examples.iter().enumerate() {
        let directive = e.directive.as_deref().unwrap_or("");
        if let Some(why) = directive.strip_prefix("not run:") {
            skipped.push(format!("{} `{}`: {}", e.at, e.command, why.trim()));
            continue;
        }
        if let Some((_, why)) = NOT_RUN.iter().find(|(p, _)| e.command.starts_with(p)) {
            skipped.push(format!("{} `{}`: {why}", e.at, e.command));
            continue;
        }
        if directive == "needs kernel SRv6" {
            let kernel = hopstack_testbed::kernel::Features::get();
            if let Some(f) = hopstack_testbed::kernel::Feature::ALL
                .iter()
                .find(|f| !kernel.has(**f))
            {
                let why = kernel.missing(*f).unwrap_or_default();
                skipped.push(format!(
                    "{} `{}`: SKIP on this kernel: {why}",
                    e.at, e.command
                ));
                continue;
            }
        }
        let on_mixed = directive == "on mixed";
        if on_mixed {
            if let Some(why) = hopstack_testbed::kernel::Features::get()
                .missing(hopstack_testbed::kernel::Feature::Seg6LocalEnd)
            {
                skipped.push(format!(
                    "{} `{}`: SKIP on this kernel: {why}",
                    e.at, e.command
                ));
                continue;
            }
        }
        let fault: Vec<&str> = directive
            .strip_prefix("after hopbed ")
            .map(|f| f.split_whitespace().collect())
            .unwrap_or_default();
        // Paths the docs give from the repository's root, and the docs' hopd.toml.
        let command = e
            .command
            .replace("target/debug/", &format!("{}/", bin.display()))
            .replace(
                "contrib/wireshark/",
                &format!("{}/contrib/wireshark/", repo().display()),
            )
            .replace(
                "testbed/topologies/",
                &format!("{}/testbed/topologies/", repo().display()),
            )
            .replace("/etc/hopd/hopd.toml", &hopd_toml.display().to_string());
        let bed = if on_mixed {
            mixed.get_or_insert_with(|| start("mixed", &bin))
        } else {
            &tb
        };
        if !fault.is_empty() {
            inject(bed, &fault, false);
        }
        let mut c = match place(&command) {
            None => Command::new("sh"),
            Some(node) => bed.command(node, "sh").unwrap(),
        };
        // Each example as a user would type it first: its own empty path cache, in a
        // directory holding the testbed's CA, which the system trusts here.
        c.arg("-c")
            .arg(format!("cd '{}' && {command}", dir.display()))
            .env("PATH", &path)
            .env("XDG_CACHE_HOME", dir.join(format!("cache-{n}")))
            .env("SSL_CERT_FILE", dir.join("ca.pem"));
        let o = c.output().unwrap();
        if !fault.is_empty() {
            inject(bed, &fault, true);
        }
        ran += 1;
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let verdict = if e.output.is_empty() {
            // No output shown: the command must work.
            if o.status.success() {
                Ok(())
            } else {
                Err(format!("exit {:?}", o.status.code()))
            }
        } else {
            shows(&all, &e.output)
        };
        if let Err(why) = verdict {
            failures.push(format!("{} `{}`: {why}\n{all}", e.at, e.command));
        }
    }
    eprintln!("{ran} commands ran, {} not run here:", skipped.len());
    for s in &skipped {
        eprintln!("  {s}");
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

hopstack_testbed::tests! {
    docs_commands_run_as_shown needs [Tun],
}
