//! What hoptrace asks of the terminal: how wide it is, whether colour is wanted (`NO_COLOR`),
//! and a live view that redraws the table in place after each round, as mtr does, with plain
//! ANSI cursor movement instead of curses.
//!
//! The decisions are pure functions of what the environment and the terminal said, so the
//! tests pin them without a terminal; only [`terminal_size`] and [`LiveView::draw`] touch
//! one.

use std::io::Write;
use std::os::fd::AsRawFd;

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub columns: usize,
    pub rows: usize,
}

/// The size of the terminal `fd` is on, from the `TIOCGWINSZ` ioctl; `None` when it is not
/// a terminal (a pipe, a file) or reports no size.
pub fn terminal_size(fd: &impl AsRawFd) -> Option<TermSize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` into the pointer it is given, which is
    // a live local of that type.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(TermSize {
        columns: usize::from(ws.ws_col),
        rows: usize::from(ws.ws_row),
    })
}

/// The width the table must fit in, when stdout is a terminal (`terminal` is its size, `None`
/// otherwise): `COLUMNS` when it is a positive number (the user's word, also for a terminal
/// that reports no size), else the terminal's width. `--wide` lifts the limit, and so does a
/// pipe or a file: what a script or a pager reads is never cut.
pub fn table_width(
    wide: bool,
    columns_env: Option<&str>,
    terminal: Option<TermSize>,
) -> Option<usize> {
    if wide {
        return None;
    }
    let terminal = terminal?;
    match columns_env.and_then(|c| c.trim().parse::<usize>().ok()) {
        Some(c) if c > 0 => Some(c),
        _ => (terminal.columns > 0).then_some(terminal.columns),
    }
}

/// Whether `NO_COLOR` asks for no colour: set to anything but the empty string
/// (<https://no-color.org>). It turns off `--color auto` only: an explicit
/// `--color always` is the user's later word.
pub fn no_color_requested(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

/// Columns `line` takes on a terminal: its characters, less ANSI escape sequences
/// (`ESC [ ... final byte`), which take none.
pub fn visible_width(line: &str) -> usize {
    let mut n = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                // Parameters and intermediates up to the final byte (0x40..=0x7e).
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        n += 1;
    }
    n
}

/// Terminal rows `text` takes: each line at least one, more where it wraps at `columns`.
pub fn screen_rows(text: &str, columns: Option<usize>) -> usize {
    text.lines()
        .map(|l| match columns {
            Some(c) if c > 0 => visible_width(l).div_ceil(c).max(1),
            _ => 1,
        })
        .sum()
}

/// What to write to replace the `previous_rows` rows drawn last with `frame`: the cursor
/// goes up to where the last frame began (`ESC [ n A`, then column 1), everything from there
/// down is erased (`ESC [ J`), and the frame is written. Also the rows `frame` takes.
pub fn redraw(previous_rows: usize, frame: &str, columns: Option<usize>) -> (String, usize) {
    let mut out = String::new();
    if previous_rows > 0 {
        out.push_str(&format!("\x1b[{previous_rows}A"));
    }
    out.push_str("\r\x1b[J");
    out.push_str(frame);
    (out, screen_rows(frame, columns))
}

/// The table redrawn in place on a terminal after every round.
pub struct LiveView<W: Write> {
    out: W,
    size: TermSize,
    drawn_rows: usize,
}

impl<W: Write> LiveView<W> {
    pub fn new(out: W, size: TermSize) -> Self {
        LiveView {
            out,
            size,
            drawn_rows: 0,
        }
    }

    /// Replaces the last frame with `frame`. A frame taller than the terminal is not drawn
    /// (the cursor cannot go back up past the top of the screen, so the next redraw would
    /// leave pieces behind); the final table is printed whole all the same.
    pub fn draw(&mut self, frame: &str) {
        let rows = screen_rows(frame, (self.size.columns > 0).then_some(self.size.columns));
        if self.size.rows > 0 && rows >= self.size.rows {
            return;
        }
        self.replace(frame);
    }

    /// The final table, in place of the last frame, whatever its height.
    pub fn finish(mut self, table: &str) {
        self.replace(table);
    }

    fn replace(&mut self, frame: &str) {
        let columns = (self.size.columns > 0).then_some(self.size.columns);
        let (bytes, rows) = redraw(self.drawn_rows, frame, columns);
        // A terminal that went away mid-run is not worth failing the trace for.
        let _ = self.out.write_all(bytes.as_bytes());
        let _ = self.out.flush();
        self.drawn_rows = rows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERM: TermSize = TermSize {
        columns: 40,
        rows: 10,
    };

    #[test]
    fn width_comes_from_columns_then_the_terminal_and_wide_or_a_pipe_lifts_it() {
        assert_eq!(table_width(false, Some("72"), Some(TERM)), Some(72));
        assert_eq!(table_width(false, None, Some(TERM)), Some(40));
        assert_eq!(table_width(false, Some("0"), Some(TERM)), Some(40));
        assert_eq!(table_width(false, Some("wide"), Some(TERM)), Some(40));
        assert_eq!(table_width(false, None, None), None, "a pipe is never cut");
        assert_eq!(
            table_width(false, Some("72"), None),
            None,
            "not even with COLUMNS"
        );
        let sizeless = TermSize {
            columns: 0,
            rows: 0,
        };
        assert_eq!(table_width(false, None, Some(sizeless)), None);
        assert_eq!(table_width(false, Some("50"), Some(sizeless)), Some(50));
        assert_eq!(table_width(true, Some("72"), Some(TERM)), None);
    }

    #[test]
    fn no_color_means_set_and_not_empty() {
        use std::ffi::OsStr;
        assert!(no_color_requested(Some(OsStr::new("1"))));
        assert!(no_color_requested(Some(OsStr::new("no"))));
        assert!(!no_color_requested(Some(OsStr::new(""))));
        assert!(!no_color_requested(None));
    }

    #[test]
    fn escape_sequences_take_no_columns_and_long_lines_wrap() {
        assert_eq!(visible_width("\x1b[1;31mfailed\x1b[0m ok"), 9);
        assert_eq!(visible_width("…ab"), 3);
        assert_eq!(screen_rows("a\n\nb\n", Some(40)), 3);
        assert_eq!(
            screen_rows(&format!("{}\nx\n", "y".repeat(81)), Some(40)),
            4
        );
        assert_eq!(screen_rows(&"y".repeat(81), None), 1);
    }

    #[test]
    fn redraw_moves_up_over_the_last_frame_and_erases_it() {
        let (first, rows) = redraw(0, "a\nb\n", Some(40));
        assert_eq!(first, "\r\x1b[Ja\nb\n");
        assert_eq!(rows, 2);
        let (second, rows) = redraw(rows, "c\nd\ne\n", Some(40));
        assert_eq!(second, "\x1b[2A\r\x1b[Jc\nd\ne\n");
        assert_eq!(rows, 3);
    }

    #[test]
    fn live_view_skips_frames_taller_than_the_terminal_but_not_the_final_table() {
        let mut v = LiveView::new(Vec::new(), TERM);
        v.draw("1\n2\n");
        v.draw(&"x\n".repeat(10));
        assert_eq!(v.drawn_rows, 2, "the tall frame was not drawn");
        v.draw("3\n");
        let LiveView { out, .. } = &v;
        assert_eq!(
            String::from_utf8_lossy(out),
            "\r\x1b[J1\n2\n\x1b[2A\r\x1b[J3\n"
        );
        let mut out = Vec::new();
        let mut v = LiveView::new(&mut out, TERM);
        v.draw("1\n");
        v.finish(&"x\n".repeat(12));
        assert!(
            String::from_utf8_lossy(&out)
                .ends_with(&format!("\x1b[1A\r\x1b[J{}", "x\n".repeat(12)))
        );
    }
}
