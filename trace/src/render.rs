//! Turning a [`TraceReport`] into text: an mtr-like table of hops, the layer rows under it, a
//! timing bar per row (the waterfall) when asked, and the first failure in words.
//!
//! Pure functions of the report and the options, so the tests pin the output byte for byte.

use std::fmt::Write as _;

use crate::model::{HopRow, LayerRow, Rtt, Status, TraceReport, Via};

/// How to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// ANSI colour for statuses and the failure line (on a terminal).
    pub color: bool,
    /// Width in columns of the timing bars; `None` leaves the waterfall out.
    pub waterfall: Option<usize>,
    /// Columns the table rows must fit in (the terminal's width): DETAIL and RESOLVED BY
    /// give up width first, then NAME, then ADDRESS, their cells cut with `…`, and the
    /// timing bars narrow down to [`MIN_BAR`] or go. `None` (a pipe, `--wide`): no limit.
    /// The title and the failure lines are never cut: a terminal wraps them.
    pub width: Option<usize>,
    /// Addresses only (`-n`): no NAME column, and hops called by number and address.
    pub numeric: bool,
    /// Rounds done, while a live view redraws the table during the run: the title says
    /// "round K of N".
    pub progress: Option<u32>,
}

impl RenderOptions {
    pub const PLAIN: RenderOptions = RenderOptions {
        color: false,
        waterfall: None,
        width: None,
        numeric: false,
        progress: None,
    };
}

/// The narrowest timing bar worth drawing; on a terminal too narrow for it, none is drawn.
pub const MIN_BAR: usize = 10;

/// The narrowest a shrinking column gets (its title is cut too, if need be).
const MIN_SHRUNK: usize = 6;

const RED: &str = "\x1b[1;31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// The report as JSON (one document, pretty-printed, newline at the end).
pub fn json(report: &TraceReport) -> String {
    // Serialising plain data with string keys cannot fail.
    let mut s = serde_json::to_string_pretty(report).expect("report serialises");
    s.push('\n');
    s
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v < 10.0 => format!("{v:.2}"),
        Some(v) if v < 1000.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.0}"),
        None => "-".into(),
    }
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

fn status_cell(s: Status, color: bool) -> (String, usize) {
    let text = s.as_str();
    if !color {
        return (text.into(), text.len());
    }
    let c = match s {
        Status::Ok => GREEN,
        Status::Failed => RED,
        Status::NoReply | Status::Skipped => YELLOW,
    };
    (format!("{c}{text}{RESET}"), text.len())
}

/// A column: its title, whether it is right-aligned, and whether it may shrink (its cells
/// cut) to fit the terminal, and in which turn.
#[derive(Clone, Copy)]
struct Column {
    title: &'static str,
    right: bool,
    shrinks: Option<Turn>,
}

/// Which shrinking columns give up width first: texts a reader can do without, then names,
/// and addresses last (a cut address names nothing).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Turn {
    Details,
    Names,
    Addresses,
}

const fn col(title: &'static str, right: bool) -> Column {
    Column {
        title,
        right,
        shrinks: None,
    }
}

/// A left-aligned column whose long texts may be cut to fit, in its `turn`.
const fn shrinking(title: &'static str, turn: Turn) -> Column {
    Column {
        title,
        right: false,
        shrinks: Some(turn),
    }
}

/// One table: header + rows of cells.
struct Table {
    columns: Vec<Column>,
    /// (cell text, visible width) per cell; width differs from text length for coloured cells.
    rows: Vec<Vec<(String, usize)>>,
}

/// Two spaces between columns.
const GAP: usize = 2;

impl Table {
    fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    fn push(&mut self, cells: Vec<(String, usize)>) {
        self.rows.push(cells);
    }

    fn natural_widths(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.columns.iter().map(|c| c.title.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.1);
            }
        }
        w
    }

    fn min_widths(&self) -> Vec<usize> {
        self.natural_widths()
            .iter()
            .zip(&self.columns)
            .map(|(&w, c)| match c.shrinks {
                Some(_) => w.min(MIN_SHRUNK),
                None => w,
            })
            .collect()
    }

    fn line_width(widths: &[usize]) -> usize {
        widths.iter().sum::<usize>() + GAP * widths.len().saturating_sub(1)
    }

    /// Column widths for rows of at most `limit` columns with `tail` more after the last
    /// cell: in [`Turn`] order, the widest shrinking column of the turn gives up one column
    /// at a time (so texts of a turn share the cut) down to [`MIN_SHRUNK`]; a table that
    /// cannot shrink enough stays at its minimum, and the terminal wraps it.
    fn widths_within(&self, limit: Option<usize>, tail: usize) -> Vec<usize> {
        let mut w = self.natural_widths();
        let Some(limit) = limit else { return w };
        let min = self.min_widths();
        while Self::line_width(&w) + tail > limit {
            let next = (0..w.len())
                .filter(|&i| w[i] > min[i])
                .filter_map(|i| self.columns[i].shrinks.map(|turn| (turn, i)))
                .min_by_key(|&(turn, i)| (turn, std::cmp::Reverse((w[i], i))));
            match next {
                Some((_, i)) => w[i] -= 1,
                None => break,
            }
        }
        w
    }

    /// Lines without trailing spaces; `extra[i]` is appended to row i (the bar).
    fn render(&self, out: &mut String, extra: &[String], w: &[usize]) {
        let line = |out: &mut String, cells: &[(String, usize)], tail: &str| {
            let mut s = String::new();
            for (i, (text, vis)) in cells.iter().enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                let (text, vis) = if *vis > w[i] {
                    (cut(text, w[i]), w[i])
                } else {
                    (text.clone(), *vis)
                };
                let pad = " ".repeat(w[i] - vis);
                if self.columns[i].right {
                    s.push_str(&pad);
                    s.push_str(&text);
                } else {
                    s.push_str(&text);
                    if i + 1 < cells.len() || !tail.is_empty() {
                        s.push_str(&pad);
                    }
                }
            }
            if !tail.is_empty() {
                s.push_str("  ");
                s.push_str(tail);
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        // Titles are cut like cells where a column shrank below its title.
        let head: Vec<(String, usize)> = self.columns.iter().map(|c| plain(c.title)).collect();
        line(out, &head, "");
        for (i, r) in self.rows.iter().enumerate() {
            line(out, r, extra.get(i).map(String::as_str).unwrap_or(""));
        }
    }
}

/// `text` cut to `width` characters, the last one `…` to say so. Only plain cells are cut
/// (the coloured status column never shrinks), so characters are columns here.
fn cut(text: &str, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('…');
    s
}

fn plain(s: impl Into<String>) -> (String, usize) {
    let s = s.into();
    let n = s.chars().count();
    (s, n)
}

/// `|   ====      |`: a bar from `start` to `start + len` on a scale of `total` ms.
fn bar(start: f64, len: f64, total: f64, width: usize) -> String {
    if width == 0 || total <= 0.0 {
        return String::new();
    }
    let scale = width as f64 / total;
    let a = ((start * scale).floor() as usize).min(width.saturating_sub(1));
    let b = (((start + len) * scale).ceil() as usize).clamp(a + 1, width);
    format!(
        "|{}{}{}|",
        " ".repeat(a),
        "=".repeat(b - a),
        " ".repeat(width - b)
    )
}

fn hop_cells(h: &HopRow, hops: &[HopRow], repeat: bool, o: &RenderOptions) -> Vec<(String, usize)> {
    let mut c = vec![
        plain(h.hop.map_or("-".into(), |i| i.to_string())),
        plain(h.ttl.map_or("-".into(), |t| t.to_string())),
    ];
    if !o.numeric {
        c.push(plain(opt(&h.name)));
    }
    c.push(plain(opt(&h.address)));
    c.push(match (&h.resolved_by, o.numeric) {
        (Some(by), true) => plain(numeric_resolved_by(by, hops)),
        (by, _) => plain(opt(by)),
    });
    c.push(plain(h.via.as_str()));
    c.extend(rtt_cells(&h.rtt, repeat));
    c.push(status_cell(h.status, o.color));
    c
}

fn rtt_cells(r: &Rtt, repeat: bool) -> Vec<(String, usize)> {
    if repeat {
        vec![
            plain(format!("{:.1}%", r.loss_pct())),
            plain(r.sent.to_string()),
            plain(ms(r.last_ms)),
            plain(ms(r.avg_ms)),
            plain(ms(r.min_ms)),
            plain(ms(r.max_ms)),
        ]
    } else {
        vec![plain(ms(r.last_ms))]
    }
}

/// `hop N (name)` as `hop N (address)` (`-n`): the address of hop N's row, when known.
fn numeric_resolved_by(by: &str, hops: &[HopRow]) -> String {
    let Some((n, _)) = by
        .strip_prefix("hop ")
        .and_then(|rest| rest.split_once(' '))
    else {
        return by.to_owned();
    };
    let Ok(n) = n.parse::<u32>() else {
        return by.to_owned();
    };
    match hops
        .iter()
        .find(|h| h.hop == Some(n))
        .and_then(|h| h.address.as_deref())
    {
        Some(a) => format!("hop {n} ({a})"),
        None => format!("hop {n}"),
    }
}

fn rtt_columns(repeat: bool) -> Vec<Column> {
    if repeat {
        vec![
            col("LOSS", true),
            col("SNT", true),
            col("LAST", true),
            col("AVG", true),
            col("BEST", true),
            col("WRST", true),
        ]
    } else {
        vec![col("RTT ms", true)]
    }
}

fn layer_cells(l: &LayerRow, repeat: bool, color: bool) -> Vec<(String, usize)> {
    let mut c = vec![plain(l.layer.clone())];
    c.push(status_cell(l.status, color));
    c.extend(rtt_cells(&l.rtt, repeat));
    c.push(plain(l.detail.clone()));
    c
}

/// The width of the timing bars on a terminal of `limit` columns: as asked where the widest
/// table leaves room, else what room there is down to [`MIN_BAR`] (the tables' shrinking
/// columns giving up width for it), else `None`: no bars.
fn fit_bar(want: usize, limit: Option<usize>, tables: &[&Table]) -> Option<usize> {
    let Some(limit) = limit else {
        return Some(want);
    };
    let natural = tables
        .iter()
        .map(|t| Table::line_width(&t.natural_widths()))
        .max()
        .unwrap_or(0);
    let narrowest = tables
        .iter()
        .map(|t| Table::line_width(&t.min_widths()))
        .max()
        .unwrap_or(0);
    let room = |table_width: usize| limit.saturating_sub(table_width + GAP + 2);
    if room(natural) >= MIN_BAR {
        Some(want.min(room(natural)))
    } else if room(narrowest) >= MIN_BAR {
        Some(MIN_BAR.min(want))
    } else {
        None
    }
}

/// The human table.
pub fn table(report: &TraceReport, o: &RenderOptions) -> String {
    let repeat = report.rounds > 1;
    let mut out = String::new();
    let rounds = match o.progress {
        Some(done) => format!("round {done} of {}", report.rounds),
        None => format!(
            "{} round{}",
            report.rounds,
            if report.rounds == 1 { "" } else { "s" }
        ),
    };
    let _ = writeln!(
        out,
        "hoptrace to {} ({rounds}, {})",
        report.address, report.method
    );

    // One time scale for both tables: hop bars end at their RTT (or start at their
    // one-way offset), layer bars are placed after the path's RTT.
    let path_ms = report
        .hops
        .iter()
        .filter_map(|h| h.rtt.last_ms)
        .fold(0.0_f64, f64::max);
    let layer_end = report
        .layers
        .iter()
        .filter_map(|l| Some(l.start_ms? + l.rtt.last_ms.unwrap_or(0.0)))
        .fold(0.0_f64, f64::max);
    let total = path_ms + layer_end;

    let mut cols = vec![col("HOP", true), col("TTL", true)];
    if !o.numeric {
        cols.push(shrinking("NAME", Turn::Names));
    }
    cols.extend([
        shrinking("ADDRESS", Turn::Addresses),
        shrinking("RESOLVED BY", Turn::Details),
        col("VIA", false),
    ]);
    cols.extend(rtt_columns(repeat));
    cols.push(col("STATUS", false));
    let mut hop_table = Table::new(cols);
    for h in &report.hops {
        hop_table.push(hop_cells(h, &report.hops, repeat, o));
    }
    let mut layer_table = None;
    if !report.layers.is_empty() {
        let mut cols = vec![col("LAYER", false), col("STATUS", false)];
        cols.extend(rtt_columns(repeat));
        cols.push(shrinking("DETAIL", Turn::Details));
        let mut t = Table::new(cols);
        for l in &report.layers {
            t.push(layer_cells(l, repeat, o.color));
        }
        layer_table = Some(t);
    }
    let tables: Vec<&Table> = std::iter::once(&hop_table).chain(&layer_table).collect();
    let bar_width = o.waterfall.and_then(|want| fit_bar(want, o.width, &tables));
    // A bar is `|` + width + `|`, after the gap.
    let tail = bar_width.map_or(0, |b| GAP + b + 2);

    let mut bars = Vec::new();
    for h in &report.hops {
        if let Some(w) = bar_width {
            bars.push(match (h.offset_ms, h.rtt.last_ms) {
                (Some(off), _) => bar(0.0, off, total, w),
                (None, Some(rtt)) => bar(0.0, rtt, total, w),
                (None, None) => String::new(),
            });
        }
    }
    hop_table.render(&mut out, &bars, &hop_table.widths_within(o.width, tail));
    if report
        .hops
        .iter()
        .any(|h| h.via == Via::Trace && h.rtt.received > 0)
    {
        let _ = writeln!(
            out,
            "(trace rows: one-way time from the probe's send to the hop's trace record)"
        );
    }

    if let Some(t) = &layer_table {
        out.push('\n');
        let mut bars = Vec::new();
        for l in &report.layers {
            if let Some(w) = bar_width {
                bars.push(match (l.start_ms, l.rtt.last_ms) {
                    (Some(s), Some(d)) => bar(path_ms + s, d, total, w),
                    _ => String::new(),
                });
            }
        }
        t.render(&mut out, &bars, &t.widths_within(o.width, tail));
    }

    out.push('\n');
    if let Some(port) = report.udp_ingress {
        let _ = writeln!(
            out,
            "NOTE: the path to hop 1 drops routing headers: bare probes met only silence, so the \
             probes and checks went in UDP to its udp_ingress port {port}"
        );
    }
    match &report.first_failure {
        None => {
            let _ = writeln!(out, "OK: every hop and layer answered");
        }
        Some(f) => {
            let where_ = match (f.row.as_str(), f.hop) {
                ("hop", Some(i)) => {
                    let h = &report.hops[f.index];
                    let name = if o.numeric { &None } else { &h.name };
                    match (name, &h.address) {
                        (Some(n), Some(a)) => format!("hop {i} ({n}, {a})"),
                        (Some(n), None) => format!("hop {i} ({n})"),
                        (None, Some(a)) => format!("hop {i} ({a})"),
                        (None, None) => format!("hop {i}"),
                    }
                }
                ("hop", None) => {
                    let h = &report.hops[f.index];
                    format!(
                        "router at hop limit {} ({})",
                        h.ttl.map_or("-".into(), |t| t.to_string()),
                        opt(&h.address)
                    )
                }
                _ => match report.hops.iter().rev().find(|h| h.hop.is_some()) {
                    Some(h) => match (if o.numeric { &None } else { &h.name }, &h.address) {
                        (Some(n), Some(a)) => format!("the final hop ({n}, {a})"),
                        (Some(x), None) | (None, Some(x)) => format!("the final hop ({x})"),
                        (None, None) => "the final hop".to_owned(),
                    },
                    None => "the final hop".to_owned(),
                },
            };
            let (a, b) = if o.color { (RED, RESET) } else { ("", "") };
            let _ = writeln!(
                out,
                "{a}FAILED at {where_}, layer {}: {}{b}",
                f.problem.layer, f.problem.reason
            );
            let _ = writeln!(out, "  {}", f.problem.text);
        }
    }
    out
}
