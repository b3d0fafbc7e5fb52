//! The pure renderers against golden outputs, and every rendered JSON document against the
//! published schema (`trace/schema/hoptrace.schema.json`).
//!
//! Regenerate the golden files after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p hopstack-trace --test render`, then read the diff.

use std::path::{Path, PathBuf};

use hopstack_trace::model::{HttpInfo, ServiceInfo, TlsInfo};
use hopstack_trace::{
    HopRow, LayerRow, Problem, RenderOptions, Rtt, Status, TraceReport, Via, json, table,
};

fn rtt(samples: &[Option<f64>]) -> Rtt {
    let mut r = Rtt::default();
    for s in samples {
        r.add(*s);
    }
    r
}

#[allow(clippy::too_many_arguments)]
fn hop(
    i: u32,
    name: &str,
    addr: &str,
    by: &str,
    via: Via,
    samples: &[Option<f64>],
    offset: Option<f64>,
    status: Status,
) -> HopRow {
    HopRow {
        hop: Some(i),
        ttl: None,
        name: Some(name.into()),
        address: (!addr.is_empty()).then(|| addr.into()),
        resolved_by: (!by.is_empty()).then(|| by.into()),
        via,
        rtt: rtt(samples),
        offset_ms: offset,
        status,
        problem: None,
    }
}

fn layer(
    name: &str,
    status: Status,
    start: f64,
    samples: &[Option<f64>],
    detail: &str,
) -> LayerRow {
    LayerRow {
        layer: name.into(),
        status,
        rtt: rtt(samples),
        start_ms: Some(start),
        detail: detail.into(),
        problem: None,
        tls: None,
        http: None,
        service: None,
        mqtt: None,
        coap: None,
    }
}

const ADDR: &str = "github.com>org>yc:tcp+tls+http+restapiv3/users/list";

fn healthy(rounds: u32) -> TraceReport {
    let s =
        |v: f64| -> Vec<Option<f64>> { (0..rounds).map(|k| Some(v + k as f64 * 0.1)).collect() };
    let hops = vec![
        hop(
            1,
            "github.com",
            "fd00:1::2",
            "client DNS",
            Via::Trace,
            &s(0.12),
            Some(0.12),
            Status::Ok,
        ),
        hop(
            2,
            "org",
            "fd00:2::2",
            "hop 1 (github.com)",
            Via::Trace,
            &s(0.31),
            Some(0.31),
            Status::Ok,
        ),
        hop(
            3,
            "yc",
            "fd00:3::2",
            "hop 2 (org)",
            Via::Answer,
            &s(0.9),
            None,
            Status::Ok,
        ),
    ];
    let mut svc = layer(
        "service",
        Status::Ok,
        0.0,
        &s(0.9),
        "restapiv3: exists, proxy-tcp (proxy to tcp:[::1]:8080)",
    );
    svc.service = Some(ServiceInfo {
        status: "exists".into(),
        mode: Some("proxy-tcp".into()),
        target: "proxy to tcp:[::1]:8080".into(),
    });
    let tcp = layer(
        "tcp",
        Status::Ok,
        0.0,
        &s(0.4),
        "connected to [fd00:3::2]:7443",
    );
    let mut tls = layer(
        "tls",
        Status::Ok,
        0.5,
        &s(3.2),
        "TLSv1.3 TLS13_AES_256_GCM_SHA384, CN=yc, verified",
    );
    tls.tls = Some(TlsInfo {
        version: Some("TLSv1.3".into()),
        cipher: Some("TLS13_AES_256_GCM_SHA384".into()),
        subject: Some("CN=yc".into()),
        verified: true,
        verify_error: None,
        alpn: None,
    });
    let mut http = layer(
        "http",
        Status::Ok,
        3.8,
        &s(1.5),
        "GET /users/list -> 200 OK, first byte after 1.50 ms",
    );
    http.http = Some(HttpInfo {
        status: Some(200),
        reason: Some("OK".into()),
    });
    TraceReport::new(
        ADDR.into(),
        rounds,
        "trace",
        hops,
        vec![svc, tcp, tls, http],
    )
}

fn nxdomain() -> TraceReport {
    let mut hops = vec![
        hop(
            1,
            "github.com",
            "fd00:1::2",
            "client DNS",
            Via::Trace,
            &[Some(0.2)],
            Some(0.2),
            Status::Ok,
        ),
        hop(
            2,
            "org",
            "",
            "hop 1 (github.com)",
            Via::Report,
            &[],
            None,
            Status::Failed,
        ),
        hop(3, "yc", "", "", Via::Address, &[], None, Status::Skipped),
    ];
    hops[1].problem = Some(Problem {
        layer: "route".into(),
        reason: "nxdomain".into(),
        text: "the name does not exist in this hop's DNS view: asked [fd00:53:2::53] (reported by fd00:1::2)".into(),
    });
    let layers = ["service", "tcp", "tls", "http"]
        .iter()
        .map(|l| LayerRow {
            layer: (*l).into(),
            status: Status::Skipped,
            rtt: Rtt::default(),
            start_ms: None,
            detail: "not tried: the path is broken".into(),
            problem: None,
            tls: None,
            http: None,
            service: None,
            mqtt: None,
            coap: None,
        })
        .collect();
    TraceReport::new(ADDR.into(), 1, "trace", hops, layers)
}

fn mixed() -> TraceReport {
    let mut hops = Vec::new();
    for (i, (h, a)) in [
        (Some(1), "fd00:10::2"),
        (None, "fd00:11::2"),
        (Some(2), "fd00:12::2"),
        (Some(3), "fd00:13::2"),
    ]
    .iter()
    .enumerate()
    {
        hops.push(HopRow {
            hop: *h,
            ttl: Some(i as u8 + 1),
            name: None,
            address: Some((*a).into()),
            resolved_by: h.map(|_| "literal".into()),
            via: Via::HopLimit,
            rtt: rtt(&[Some(0.05 * (i + 1) as f64)]),
            offset_ms: None,
            status: Status::Ok,
            problem: None,
        });
    }
    let mut svc = layer(
        "service",
        Status::Failed,
        0.0,
        &[],
        "fd00:13::2 answered Port Unreachable to the probe",
    );
    svc.start_ms = None;
    svc.problem = Some(Problem {
        layer: "service".into(),
        reason: "no-hopd".into(),
        text: "the final hop (fd00:13::2) does not run hopd: nothing listens on its port".into(),
    });
    TraceReport::new(
        "[fc00:1::e]>[fc00:3::e]>[fd00:13::2]:udp+echo".into(),
        1,
        "trace+hop-limit",
        hops,
        vec![svc],
    )
}

fn golden(name: &str, got: &str) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(got, want, "golden {name} differs; got:\n{got}");
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/hoptrace.schema.json"),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&v).expect("the schema itself is valid")
}

fn assert_valid(doc: &str) {
    let v: serde_json::Value = serde_json::from_str(doc).unwrap();
    let errors: Vec<String> = schema()
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc}");
}

#[test]
fn healthy_table() {
    let r = healthy(1);
    assert!(r.ok);
    assert_eq!(r.exit_code(), 0);
    golden("healthy.txt", &table(&r, &RenderOptions::PLAIN));
}

#[test]
fn healthy_waterfall_draws_one_bar_per_row_on_one_scale() {
    let r = healthy(1);
    let o = RenderOptions {
        waterfall: Some(20),
        ..RenderOptions::PLAIN
    };
    let t = table(&r, &o);
    golden("healthy-waterfall.txt", &t);
    let bars: Vec<&str> = t.lines().filter(|l| l.ends_with('|')).collect();
    assert_eq!(bars.len(), 7, "3 hops + 4 layers:\n{t}");
}

#[test]
fn repeat_mode_has_loss_and_min_avg_max() {
    let mut r = healthy(3);
    // One lost round at hop 2.
    r.hops[1].rtt = rtt(&[Some(0.3), None, Some(0.5)]);
    golden("healthy-c3.txt", &table(&r, &RenderOptions::PLAIN));
    let line = table(&r, &RenderOptions::PLAIN)
        .lines()
        .find(|l| l.contains(" org "))
        .unwrap()
        .to_owned();
    assert!(line.contains("33.3%"), "{line}");
    assert!(line.contains("0.40"), "avg of 0.3 and 0.5: {line}");
}

#[test]
fn nxdomain_is_pinned_to_hop_2_with_its_reason_in_words() {
    let r = nxdomain();
    assert!(!r.ok);
    assert_eq!(r.exit_code(), 1);
    let f = r.first_failure.as_ref().unwrap();
    assert_eq!((f.row.as_str(), f.hop), ("hop", Some(2)));
    golden("nxdomain.txt", &table(&r, &RenderOptions::PLAIN));
}

#[test]
fn colour_highlights_the_failure() {
    let t = table(
        &nxdomain(),
        &RenderOptions {
            color: true,
            ..RenderOptions::PLAIN
        },
    );
    assert!(
        t.contains("\x1b[1;31mFAILED at hop 2 (org), layer route: nxdomain\x1b[0m"),
        "{t}"
    );
    assert!(t.contains("\x1b[1;31mfailed\x1b[0m"), "{t}");
}

#[test]
fn mixed_path_table() {
    let r = mixed();
    golden("mixed.txt", &table(&r, &RenderOptions::PLAIN));
}

#[test]
fn json_documents_follow_the_schema() {
    for r in [healthy(1), healthy(3), nxdomain(), mixed()] {
        let doc = json(&r);
        assert_valid(&doc);
        // And they read back to the same report.
        let back: TraceReport = serde_json::from_str(&doc).unwrap();
        assert_eq!(back, r);
    }
    golden("healthy.json", &json(&healthy(1)));
}

#[test]
fn schema_rejects_what_it_should() {
    let s = schema();
    let good: serde_json::Value = serde_json::from_str(&json(&nxdomain())).unwrap();
    assert!(s.is_valid(&good));
    let mutate = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        f(&mut v);
        s.is_valid(&v)
    };
    assert!(
        !mutate(&|v| v["hops"][0]["status"] = "fine".into()),
        "unknown status"
    );
    assert!(
        !mutate(&|v| v["hops"][1]["problem"] = serde_json::Value::Null),
        "failed row without a problem"
    );
    assert!(
        !mutate(&|v| v["hops"][0]["hop"] = 0.into()),
        "hops count from 1"
    );
    assert!(
        !mutate(&|v| v["first_failure"]["problem"]["reason"] = "No Such Name".into()),
        "reason names are kebab-case"
    );
    assert!(
        !mutate(&|v| {
            v.as_object_mut().unwrap().remove("ok");
        }),
        "ok is required"
    );
    assert!(
        !mutate(&|v| v["surprise"] = 1.into()),
        "no unknown top-level fields"
    );
}

#[test]
fn a_silent_router_between_hops_does_not_fail_the_run_but_a_silent_end_does() {
    let mut r = mixed();
    r.layers.clear();
    r.hops[1].status = Status::NoReply;
    r.hops[1].address = None;
    r.hops[1].rtt = rtt(&[None]);
    r.settle();
    assert!(r.ok, "{:?}", r.first_failure);
    r.hops[3].status = Status::NoReply;
    r.settle();
    assert!(!r.ok);
    assert_eq!(r.first_failure.unwrap().problem.reason, "no-reply");
}

/// The rows of both tables (headers included): what must fit a terminal's width. The title,
/// the note under the hop rows and the verdict may wrap instead.
fn table_rows(t: &str) -> Vec<&str> {
    let verdict = t.rfind("\n\n").unwrap_or(t.len());
    t[..verdict]
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty() && !l.starts_with("(trace rows"))
        .collect()
}

fn at_width(width: usize) -> RenderOptions {
    RenderOptions {
        width: Some(width),
        ..RenderOptions::PLAIN
    }
}

#[test]
fn a_narrow_terminal_cuts_the_widest_cells_so_every_row_fits() {
    let r = healthy(1);
    let narrow = table(&r, &at_width(60));
    golden("healthy-60.txt", &narrow);
    for width in [60, 66, 72] {
        let t = table(&r, &at_width(width));
        for row in table_rows(&t) {
            assert!(row.chars().count() <= width, "{width}: {row:?}\n{t}");
        }
    }
    // The cut is said with an ellipsis; the verdict and the numbers are never cut.
    assert!(
        narrow.contains("restapiv3: exists, proxy-tcp (prox…"),
        "{narrow}"
    );
    // Addresses are cut last: here not at all.
    assert!(narrow.contains("  fd00:1::2  "), "{narrow}");
    assert!(
        narrow.contains("OK: every hop and layer answered"),
        "{narrow}"
    );
    // Wide enough, or no width at all (a pipe, --wide): the table as it always was.
    assert_eq!(table(&r, &at_width(200)), table(&r, &RenderOptions::PLAIN));
}

#[test]
fn columns_stop_shrinking_at_six_and_the_terminal_wraps_the_rest() {
    let t = table(&healthy(1), &at_width(20));
    assert!(
        t.contains("HOP  TTL  NAME    ADDRE…  RESOL…  VIA     RTT ms  STATUS\n"),
        "{t}"
    );
    assert!(
        t.contains("  1    -  githu…  fd00:…  clien…  trace     0.12  ok\n"),
        "{t}"
    );
}

#[test]
fn timing_bars_narrow_to_fit_and_go_when_there_is_no_room() {
    let r = healthy(1);
    let bars_of = |t: &str| -> Vec<usize> {
        t.lines()
            .filter(|l| l.ends_with('|'))
            .map(|l| l.len() - l.find('|').unwrap() - 2)
            .collect()
    };
    let with = |width: Option<usize>| {
        table(
            &r,
            &RenderOptions {
                waterfall: Some(30),
                width,
                ..RenderOptions::PLAIN
            },
        )
    };
    assert_eq!(bars_of(&with(None)), vec![30; 7]);
    // The layer table is 79 wide: room for a 20-column bar (and its `  |` and `|`) in 103.
    let t = with(Some(103));
    assert_eq!(bars_of(&t), vec![20; 7], "{t}");
    // No room beside the whole table: the detail column gives up width for a 10-column bar.
    let t = with(Some(80));
    assert_eq!(bars_of(&t), vec![10; 7], "{t}");
    for row in table_rows(&t) {
        assert!(row.chars().count() <= 80, "{row:?}");
    }
    // Too narrow even then: no bars at all.
    assert!(bars_of(&with(Some(60))).is_empty());
}

#[test]
fn numeric_mode_has_no_name_column_and_names_hops_by_address() {
    let o = RenderOptions {
        numeric: true,
        ..RenderOptions::PLAIN
    };
    let t = table(&nxdomain(), &o);
    golden("nxdomain-numeric.txt", &t);
    assert!(!t.contains("NAME"), "{t}");
    assert!(!t.contains("github.com  "), "{t}");
    assert!(
        t.contains("hop 1 (fd00:1::2)"),
        "RESOLVED BY by address: {t}"
    );
    assert!(t.contains("FAILED at hop 2, layer route: nxdomain"), "{t}");
    let t = table(&healthy(1), &o);
    assert!(
        t.contains("  3    -  fd00:3::2  hop 2 (fd00:2::2)  answer    0.90  ok\n"),
        "{t}"
    );
}

#[test]
fn the_live_view_title_counts_the_rounds_done() {
    let o = RenderOptions {
        progress: Some(2),
        ..RenderOptions::PLAIN
    };
    let t = table(&healthy(5), &o);
    assert!(
        t.starts_with(&format!("hoptrace to {ADDR} (round 2 of 5, trace)\n")),
        "{t}"
    );
    assert!(
        t.contains("LOSS  SNT"),
        "repeat columns from the first frame on: {t}"
    );
}
