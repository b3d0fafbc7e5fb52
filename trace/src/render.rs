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
}

impl RenderOptions {
    pub const PLAIN: RenderOptions = RenderOptions {
        color: false,
        waterfall: None,
    };
}

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

/// One table: header + rows of cells, left-aligned except the columns in `right`.
struct Table {
    header: Vec<&'static str>,
    right: Vec<bool>,
    /// (cell text, visible width) per cell; width differs from text length for coloured cells.
    rows: Vec<Vec<(String, usize)>>,
}

impl Table {
    fn new(cols: &[(&'static str, bool)]) -> Table {
        Table {
            header: cols.iter().map(|c| c.0).collect(),
            right: cols.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, cells: Vec<(String, usize)>) {
        self.rows.push(cells);
    }

    fn widths(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.1);
            }
        }
        w
    }

    /// Lines without trailing spaces; `extra[i]` is appended to row i (the bar).
    fn render(&self, out: &mut String, extra: &[String]) {
        let w = self.widths();
        let line = |out: &mut String, cells: &[(String, usize)], tail: &str| {
            let mut s = String::new();
            for (i, (text, vis)) in cells.iter().enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                let pad = " ".repeat(w[i] - vis);
                if self.right[i] {
                    s.push_str(&pad);
                    s.push_str(text);
                } else {
                    s.push_str(text);
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
        let head: Vec<(String, usize)> = self
            .header
            .iter()
            .map(|h| ((*h).to_owned(), h.len()))
            .collect();
        line(out, &head, "");
        for (i, r) in self.rows.iter().enumerate() {
            line(out, r, extra.get(i).map(String::as_str).unwrap_or(""));
        }
    }
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

fn hop_cells(h: &HopRow, repeat: bool, color: bool) -> Vec<(String, usize)> {
    let mut c = vec![
        plain(h.hop.map_or("-".into(), |i| i.to_string())),
        plain(h.ttl.map_or("-".into(), |t| t.to_string())),
        plain(opt(&h.name)),
        plain(opt(&h.address)),
        plain(opt(&h.resolved_by)),
        plain(h.via.as_str()),
    ];
    c.extend(rtt_cells(&h.rtt, repeat));
    c.push(status_cell(h.status, color));
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

fn rtt_columns(repeat: bool) -> Vec<(&'static str, bool)> {
    if repeat {
        vec![
            ("LOSS", true),
            ("SNT", true),
            ("LAST", true),
            ("AVG", true),
            ("BEST", true),
            ("WRST", true),
        ]
    } else {
        vec![("RTT ms", true)]
    }
}

fn layer_cells(l: &LayerRow, repeat: bool, color: bool) -> Vec<(String, usize)> {
    let mut c = vec![plain(l.layer.clone())];
    c.push(status_cell(l.status, color));
    c.extend(rtt_cells(&l.rtt, repeat));
    c.push(plain(l.detail.clone()));
    c
}

/// The human table.
pub fn table(report: &TraceReport, o: &RenderOptions) -> String {
    let repeat = report.rounds > 1;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "hoptrace to {} ({} round{}, {})",
        report.address,
        report.rounds,
        if report.rounds == 1 { "" } else { "s" },
        report.method
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

    let mut cols = vec![
        ("HOP", true),
        ("TTL", true),
        ("NAME", false),
        ("ADDRESS", false),
        ("RESOLVED BY", false),
        ("VIA", false),
    ];
    cols.extend(rtt_columns(repeat));
    cols.push(("STATUS", false));
    let mut t = Table::new(&cols);
    let mut bars = Vec::new();
    for h in &report.hops {
        t.push(hop_cells(h, repeat, o.color));
        if let Some(w) = o.waterfall {
            bars.push(match (h.offset_ms, h.rtt.last_ms) {
                (Some(off), _) => bar(0.0, off, total, w),
                (None, Some(rtt)) => bar(0.0, rtt, total, w),
                (None, None) => String::new(),
            });
        }
    }
    t.render(&mut out, &bars);
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

    if !report.layers.is_empty() {
        out.push('\n');
        let mut cols = vec![("LAYER", false), ("STATUS", false)];
        cols.extend(rtt_columns(repeat));
        cols.push(("DETAIL", false));
        let mut t = Table::new(&cols);
        let mut bars = Vec::new();
        for l in &report.layers {
            t.push(layer_cells(l, repeat, o.color));
            if let Some(w) = o.waterfall {
                bars.push(match (l.start_ms, l.rtt.last_ms) {
                    (Some(s), Some(d)) => bar(path_ms + s, d, total, w),
                    _ => String::new(),
                });
            }
        }
        t.render(&mut out, &bars);
    }

    out.push('\n');
    match &report.first_failure {
        None => {
            let _ = writeln!(out, "OK: every hop and layer answered");
        }
        Some(f) => {
            let where_ = match (f.row.as_str(), f.hop) {
                ("hop", Some(i)) => {
                    let h = &report.hops[f.index];
                    match (&h.name, &h.address) {
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
                    Some(h) => match (&h.name, &h.address) {
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
