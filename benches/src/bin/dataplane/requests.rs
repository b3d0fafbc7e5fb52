//! The request rows (time to first byte, time to connect), measured in rounds in shuffled order.

use anyhow::{Result, anyhow, bail};

use crate::bench::{Bench, ms_field};
use crate::report::Row;
use crate::{
    DIRECT, DIRECT_NAME, FAST_SIDS, HANDOFF_ADDR, KernelLacks, PROXY_ADDR, VIA_HOPD, VIA_KERNEL,
};

// Rows 0..4 are `hop get` of a cached path, each sample checked for what it went by.
pub const FAST_DIRECT: usize = 0;
const FAST_HANDOFF: usize = 1;
const FAST_PROXY: usize = 2;
pub const HOPD_HANDOFF: usize = 3;
pub const PLAIN_DIRECT: usize = 4;
pub const CURL_DIRECT: usize = 5;
const CURL_HOPD: usize = 6;
const CURL_KERNEL: usize = 7;
pub const PLAIN_DNS: usize = 8;
const CURL_DNS: usize = 9;
/// Where the connect rows start: `CONNECT + row` is the connect row of TTFB row `row`.
const CONNECT: usize = 10;

/// Requests per round: the four `hop get` rows, the direct client, curl direct / via hopd /
/// via kernel End, the direct client and curl by name.
const JOBS: usize = 10;

/// The cached `hop get` rows: (row, address, extra arguments, kernel End SIDs expected,
/// direct port expected).
const HOP_ROWS: [(usize, &str, &[&str], bool, bool); 4] = [
    (FAST_DIRECT, HANDOFF_ADDR, &[], true, true),
    (FAST_HANDOFF, HANDOFF_ADDR, &["--port", "7443"], true, false),
    (FAST_PROXY, PROXY_ADDR, &[], true, false),
    (
        HOPD_HANDOFF,
        HANDOFF_ADDR,
        &["--no-fast-path"],
        false,
        false,
    ),
];

/// The request rows, measured: the TTFB rows, then the connect rows; and what left samples out.
pub struct Requests {
    pub rows: Vec<Row>,
    pub fallbacks: Vec<String>,
    /// Cached samples whose connection was not made from the address's connect record (the
    /// first of each row, and the first after a fallback's new probe, write it).
    pub without_record: usize,
}

/// `--requests` rounds, each round every request row once.
pub fn measure(b: &Bench<'_>, lacks: &KernelLacks) -> Result<Requests> {
    let mut r = Requests {
        rows: rows(lacks, b.o.requests()),
        fallbacks: Vec::new(),
        without_record: 0,
    };
    // Each round runs every row once, in an order shuffled afresh: a fixed order made each row
    // always follow the same other row (and its processes, caches and daemons), which moved
    // the rows against each other by more than the effects measured.
    let mut rng = b.o.seed();
    // Jobs whose row cannot be measured here are left out of the rounds.
    let mut order: Vec<usize> = (0..JOBS)
        .filter(|&job| match job {
            0..=2 => lacks.fast_path.is_none(),
            6 => lacks.headend_hopd.is_none(),
            7 => lacks.headend_kernel.is_none(),
            _ => true,
        })
        .collect();
    for _ in 0..b.o.requests() {
        shuffle(&mut order, &mut rng);
        for &job in &order {
            r.take_sample(b, job)?;
        }
    }
    Ok(r)
}

/// The rows, empty, each with why it cannot be measured here (if it cannot).
fn rows(lacks: &KernelLacks, requests: usize) -> Vec<Row> {
    let fast = || lacks.fast_path.clone();
    [
        (
            "ttfb",
            "hop get, cached: kernel End SIDs + the service's direct port",
            fast(),
        ),
        (
            "ttfb",
            "hop get, cached: kernel End SIDs + hopd hand-off (--port 7443)",
            fast(),
        ),
        (
            "ttfb",
            "hop get, cached: kernel End SIDs + hopd proxy",
            fast(),
        ),
        (
            "ttfb",
            "hop get, cached, --no-fast-path: hopd borders + hand-off",
            None,
        ),
        (
            "ttfb",
            "hop get http://[addr]:8080/..., direct (no SRH, no hopd)",
            None,
        ),
        ("ttfb", "curl, direct (no SRH, no hopd)", None),
        (
            "ttfb",
            "curl, kernel-inserted SRH via 2 hopd borders",
            lacks.headend_hopd.clone(),
        ),
        (
            "ttfb",
            "curl, kernel-inserted SRH via 2 kernel End",
            lacks.headend_kernel.clone(),
        ),
        (
            "ttfb",
            "hop get http://name:8080/..., direct by name (client's DNS, AAAA)",
            None,
        ),
        ("ttfb", "curl, direct by name (client's DNS)", None),
        (
            "connect",
            "hop get, cached: kernel End SIDs + direct port",
            fast(),
        ),
        (
            "connect",
            "hop get, cached: kernel End SIDs + hand-off",
            fast(),
        ),
        (
            "connect",
            "hop get, cached: kernel End SIDs + proxy",
            fast(),
        ),
        (
            "connect",
            "hop get, cached, --no-fast-path + hand-off",
            None,
        ),
        ("connect", "hop get http://[addr]:8080/..., direct", None),
        ("connect", "curl, direct", None),
    ]
    .into_iter()
    .map(|(group, name, na)| Row {
        group,
        name,
        samples: Vec::with_capacity(requests),
        na,
    })
    .collect()
}

impl Requests {
    /// One request of job `job` (`0..JOBS`), its times added to its rows.
    fn take_sample(&mut self, b: &Bench<'_>, job: usize) -> Result<()> {
        let rows = &mut self.rows;
        match job {
            0..=3 => self.cached_hop_get(b, job)?,
            4 => {
                let (c, f) = b.plain_get(&format!("[{DIRECT}]"))?;
                rows[PLAIN_DIRECT].samples.push(f);
                rows[CONNECT + PLAIN_DIRECT].samples.push(c);
            }
            5 => {
                let (c, f) = b.curl(DIRECT)?;
                rows[CURL_DIRECT].samples.push(f);
                rows[CONNECT + CURL_DIRECT].samples.push(c);
            }
            6 => rows[CURL_HOPD].samples.push(b.curl(VIA_HOPD)?.1),
            7 => rows[CURL_KERNEL].samples.push(b.curl(VIA_KERNEL)?.1),
            8 => rows[PLAIN_DNS].samples.push(b.plain_get(DIRECT_NAME)?.1),
            _ => rows[CURL_DNS].samples.push(b.curl(DIRECT_NAME)?.1),
        }
        Ok(())
    }

    /// `hop get` of a cached path ([`HOP_ROWS`]`[job]`), checked to have gone the way its row
    /// is named; a request that fell back is counted, not taken as a sample.
    fn cached_hop_get(&mut self, b: &Bench<'_>, job: usize) -> Result<()> {
        let (row, addr, extra, fast, direct) = HOP_ROWS[job];
        let (j, verbose) = b.hop_get_verbose(addr, extra)?;
        // The acceptance item: a repeated request neither probes nor asks DNS; and each
        // row really went the way it is named.
        if j["probed"] != false || j["path_source"] != "cache" || !j["dns"].is_null() {
            bail!("a cached request probed or asked DNS: {j}");
        }
        let went = check_segments(&j, fast).and_then(|()| {
            if j["direct_port"] != direct {
                bail!("direct port expected: {direct}: {j}");
            }
            Ok(())
        });
        if let Err(e) = went {
            // The client fell back (to hopd's SIDs or port) and re-cached the path without
            // the fast path: not a sample of its row. Count it with the client's reason
            // (`-v`), probe again so the cache has the fast path back, and go on.
            let why = verbose
                .lines()
                .find(|l| l.contains("failed ("))
                .map_or_else(|| e.to_string(), str::to_owned);
            self.fallbacks.push(format!("{extra:?} {addr}: {why}"));
            if self.fallbacks.len() > b.o.requests() / 10 + 1 {
                bail!("too many fallbacks: {:#?}", self.fallbacks);
            }
            let _ = std::fs::remove_dir_all(&b.cache);
            for a in [HANDOFF_ADDR, PROXY_ADDR] {
                b.hop_get(a, &[])?;
            }
            return Ok(());
        }
        if j["connect_record"] != true {
            self.without_record += 1;
        }
        self.rows[row].samples.push(ms_field(&j, "first_byte")?);
        self.rows[CONNECT + row]
            .samples
            .push(ms_field(&j, "connect")?);
        Ok(())
    }
}

/// The segments a request's `--json` timings say each border hop was reached at: the kernel
/// End SIDs on the fast path, hopd's own SIDs otherwise.
fn check_segments(j: &serde_json::Value, fast: bool) -> Result<()> {
    let hops = j["hops"]
        .as_array()
        .ok_or_else(|| anyhow!("no hops in {j}"))?;
    for (h, fast_sid) in hops.iter().zip(FAST_SIDS) {
        let seg = h["segment"].as_str().unwrap_or_default();
        if (seg == fast_sid) != fast {
            bail!(
                "hop {} went by segment {seg:?}, fast path expected: {fast}: {j}",
                h["hop"]
            );
        }
    }
    Ok(())
}

/// xorshift64: the round order needs no statistical quality, only no fixed pattern, and a
/// seed that reproduces it (`--seed`).
fn next_random(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Fisher-Yates.
fn shuffle(v: &mut [usize], rng: &mut u64) {
    for i in (1..v.len()).rev() {
        let j = (next_random(rng) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}
