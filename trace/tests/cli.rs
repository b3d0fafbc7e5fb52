//! hoptrace's command line without a testbed: exit codes from the table every tool shares
//! (docs/client.md, "Errors and exit codes").

use std::process::Command;

fn hoptrace(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hoptrace"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn an_address_that_does_not_parse_is_exit_3_as_in_hop() {
    // Until 2026-12-05 hoptrace said 64 where hop said 3.
    let o = hoptrace(&["github.com>>yc:tcp+http+web"]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("empty hop at byte 11"), "{err}");
    assert!(err.contains('^'), "a caret under the offending part: {err}");
}

#[test]
fn a_bad_option_is_exit_2_and_help_prints_the_table() {
    assert_eq!(hoptrace(&["--no-such-option"]).status.code(), Some(2));
    let help = hoptrace(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("3 the address does not parse"), "{text}");
}

// The options an mtr or traceroute user expects, run on this host only: one literal hop,
// `::1`, where nothing answers a probe that carries an SRH (the loopback does not accept
// segment routing), so every run is quick and sends nothing off the machine.

/// A one-hop address whose hop has a name (given with --resolve) and a short wait.
const LOCAL: [&str; 8] = [
    "--method",
    "trace",
    "--no-layers",
    "--timeout",
    "0.05",
    "--resolve",
    "here.example=::1",
    "here.example:udp+echo",
];

fn local(extra: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hoptrace"));
    c.args(extra)
        .args(LOCAL)
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (o.status.code(), String::from_utf8(o.stdout).unwrap())
}

#[test]
fn interval_and_timeout_take_seconds_and_refuse_old_millisecond_values() {
    for (args, hint) in [
        (&["-i", "200"][..], "for milliseconds use --interval-ms 200"),
        (
            &["--timeout", "700"][..],
            "for milliseconds use --timeout-ms 700",
        ),
    ] {
        let mut all = args.to_vec();
        all.push("x:udp+echo");
        let o = hoptrace(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(hint), "{err}");
    }
    let both = hoptrace(&["-i", "0.1", "--interval-ms", "100", "x:udp+echo"]);
    assert_eq!(both.status.code(), Some(2), "one unit at a time");
    let both = hoptrace(&["--timeout", "1", "--timeout-ms", "100", "x:udp+echo"]);
    assert_eq!(both.status.code(), Some(2));
    // Fractions of a second, and the millisecond spellings, run.
    let (code, text) = local(&["-c", "2", "-i", "0.01"], &[]);
    assert_eq!(code, Some(1), "nothing answers on ::1: {text}");
    assert!(text.contains("(2 rounds, trace)"), "{text}");
    let o = hoptrace(&[
        "-c",
        "2",
        "--interval-ms",
        "10",
        "--timeout-ms",
        "50",
        "--method",
        "trace",
        "[::1]:udp+echo",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("(2 rounds, trace)"), "{text}");
}

#[test]
fn numeric_drops_the_name_column() {
    let (_, named) = local(&[], &[]);
    assert!(
        named.contains("NAME") && named.contains("here.example  ::1"),
        "{named}"
    );
    let (_, numeric) = local(&["-n"], &[]);
    assert!(!numeric.contains("NAME"), "{numeric}");
    assert!(
        numeric.contains("HOP  TTL  ADDRESS  RESOLVED BY"),
        "{numeric}"
    );
    assert!(numeric.contains("FAILED at hop 1 (::1)"), "{numeric}");
}

#[test]
fn report_mode_runs_ten_rounds_and_prints_one_plain_table() {
    let (code, text) = local(&["-r", "-i", "0"], &[]);
    assert_eq!(code, Some(1));
    assert_eq!(text.matches("hoptrace to").count(), 1, "{text}");
    assert!(
        text.contains("(10 rounds, trace)"),
        "mtr's default count: {text}"
    );
    assert!(text.contains("LOSS  SNT"), "{text}");
    assert!(!text.contains('\x1b'), "{text:?}");
    let (_, text) = local(&["-r", "-c", "2", "-i", "0"], &[]);
    assert!(text.contains("(2 rounds, trace)"), "{text}");
}

/// Lines of the hop and layer tables (not the title, the note or the verdict).
fn table_rows(text: &str) -> Vec<&str> {
    let verdict = text.rfind("\n\n").unwrap_or(text.len());
    text[..verdict]
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn columns_narrows_the_table_on_a_terminal_but_never_in_a_pipe_and_wide_does_not() {
    let (_, natural) = local(&[], &[]);
    let widest = table_rows(&natural)
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap();
    assert!(widest > 60, "{natural}");
    let (_, piped) = local(&[], &[("COLUMNS", "60")]);
    assert_eq!(piped, natural, "a pipe is never cut");
    let (_, narrow) = on_terminal(&["--color", "never"], 100, &[("COLUMNS", "60")]);
    for row in table_rows(&narrow) {
        assert!(row.chars().count() <= 60, "{row:?} in\n{narrow}");
    }
    assert!(narrow.contains('…'), "{narrow}");
    let (_, wide) = on_terminal(&["-w", "-c", "1"], 100, &[("COLUMNS", "60")]);
    assert!(!wide.contains('…'), "{wide}");
    assert!(wide.contains("here.example  ::1"), "{wide}");
}

/// Runs hoptrace with its stdout on a pseudo-terminal of `columns` x 24, as a user's
/// terminal would be; returns the exit code and everything it wrote there.
fn on_terminal(extra: &[&str], columns: u16, env: &[(&str, &str)]) -> (Option<i32>, String) {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    // SAFETY: plain libc calls on a pseudo-terminal this test opens and owns; every return
    // value is checked.
    let (master, slave) = unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(m >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let ws = libc::winsize {
            ws_row: 24,
            ws_col: columns,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        assert_eq!(libc::ioctl(m, libc::TIOCSWINSZ, &ws), 0);
        let s = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
        assert!(s >= 0, "open the pty's slave");
        (std::fs::File::from_raw_fd(m), std::fs::File::from_raw_fd(s))
    };
    let mut c = Command::new(env!("CARGO_BIN_EXE_hoptrace"));
    c.args(extra)
        .args(LOCAL)
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .stdout(slave.try_clone().unwrap());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    drop(slave);
    drop(c);
    // Read while it runs (a full pty buffer would block it); the read ends with EIO once
    // the last writer is gone.
    let reader = std::thread::spawn(move || {
        let mut master = master;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    let status = child.wait().unwrap();
    let out = reader.join().unwrap();
    // The terminal turns each \n into \r\n.
    (
        status.code(),
        String::from_utf8(out).unwrap().replace("\r\n", "\n"),
    )
}

#[test]
fn a_terminal_gets_the_live_view_and_colour_a_pipe_gets_neither() {
    let (code, text) = on_terminal(&["-c", "3", "-i", "0.01"], 100, &[]);
    assert_eq!(code, Some(1), "{text:?}");
    // Rounds 1 and 2 drawn as they finish, each replacing the frame before it; then the
    // final table in place of the last frame.
    assert!(text.contains("(round 1 of 3, trace)"), "{text:?}");
    assert!(text.contains("(round 2 of 3, trace)"), "{text:?}");
    let last = text
        .rfind("\x1b[J")
        .expect("frames erase what was drawn before");
    assert!(text[last..].contains("(3 rounds, trace)"), "{text:?}");
    assert!(
        text.contains("A\r\x1b[J"),
        "cursor up over the last frame: {text:?}"
    );
    assert!(
        text.contains("\x1b[33mno-reply\x1b[0m"),
        "colour on a terminal: {text:?}"
    );

    let (_, piped) = local(&["-c", "3", "-i", "0.01"], &[]);
    assert!(!piped.contains('\x1b'), "{piped:?}");
    assert_eq!(piped.matches("hoptrace to").count(), 1, "{piped}");

    // Report mode on a terminal: one table, no redrawing.
    let (_, report) = on_terminal(&["-r", "-c", "2", "-i", "0"], 100, &[]);
    assert!(!report.contains("\x1b[J"), "{report:?}");
    assert_eq!(report.matches("hoptrace to").count(), 1, "{report}");
}

#[test]
fn no_color_turns_colour_off_unless_asked_for() {
    let (_, text) = on_terminal(&[], 100, &[("NO_COLOR", "1")]);
    assert!(
        text.contains("no-reply") && !text.contains("\x1b[33m"),
        "{text:?}"
    );
    let (_, text) = on_terminal(&[], 100, &[("NO_COLOR", "")]);
    assert!(
        text.contains("\x1b[33mno-reply"),
        "an empty NO_COLOR is unset: {text:?}"
    );
    let (_, text) = on_terminal(&["--color", "always"], 100, &[("NO_COLOR", "1")]);
    assert!(text.contains("\x1b[33mno-reply"), "{text:?}");
}

#[test]
fn the_table_fits_the_terminals_width() {
    let (_, text) = on_terminal(&["--color", "never"], 60, &[]);
    for row in table_rows(&text) {
        assert!(row.chars().count() <= 60, "{row:?} in\n{text}");
    }
    assert!(text.contains('…'), "{text}");
}
