//! The I/O shell around [`process`]: read packets from the packet device in batches, carry
//! out each [`Action`], resolve names off the packet path, apply reloads.
//!
//! ```text
//!            kernel FIB: SID/128 dev hop0
//!                         |
//!                         v
//!   +---------------- TUN hop0 ----------------+
//!   |  read (batch)                 write back |<------ forward / ICMPv6 / report
//!   v                                          |
//!  process_with(clock, pkt, meta, st, out) ----+
//!   |  NeedResolve{name}
//!   v
//!  pending[name] <- packet (bounded)   spawn lookup ---> hickory (node's resolv.conf)
//!   ^                                                        |
//!   +---- answer: cache.insert(name, binding, ttl); re-run --+
//! ```
//!
//! One worker task per TUN queue (the kernel keeps a flow on one queue, so no packet is
//! reordered), each with a `State` of its own: no lock is shared between workers on the
//! packet path. A worker's state sits behind a mutex only the metrics endpoint and the reload
//! path also take; the worker holds it for one batch at a time and never across an `.await`.
//! Name answers go back to the worker that asked; each worker caches its own (a flow, and so
//! a probe and the connection after it, stays with one worker).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};

use super::lookups::{LookupLimits, SourceKey, source_key};
use super::process::{
    Action, Clock, Counters, DropReason, OUT_BUF_LEN, PacketMeta, Settings, State, process_with,
};
use super::resolve::{Answer, NameResolver, ResolverConfig};
use super::tun::{Offloads, PacketIo, VNET_F_NEEDS_CSUM, VNET_HDR_LEN};
use super::{Config, FastPath};

/// Larger than any frame a TUN device hands us: a 64 KiB packet (or GSO super-packet) and
/// its virtio-net header.
const MAX_FRAME: usize = 65_536 + VNET_HDR_LEN + 64;

/// Monotonic time as `process` and `State` want it: since the first call in this process.
pub fn monotonic() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// Both clocks `process` reads ([`Clock`]).
pub fn clock() -> Clock {
    Clock {
        monotonic: monotonic(),
        wall: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    }
}

/// One packet worker's share: its own state (no lock shared with another worker on the
/// packet path) and what it has waiting for names.
#[derive(Debug)]
pub struct Worker {
    pub state: Mutex<State>,
    /// The names this worker is resolving, as last published (for `hopd show pending`).
    pub pending: Mutex<Vec<PendingName>>,
    pending_names: AtomicUsize,
    queued_packets: AtomicUsize,
    /// How long this worker's lookups took.
    pub resolve_time: crate::histogram::Histogram,
    /// Frames that were GSO super-packets, and frames with a partial checksum.
    gso_frames: AtomicU64,
    partial_csum_frames: AtomicU64,
}

/// A name being resolved, and what waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingName {
    pub name: String,
    /// Packets held for it.
    pub packets: usize,
    /// Since the lookup started.
    pub waiting: Duration,
    /// The /64 the lookup is charged to.
    pub source: std::net::Ipv6Addr,
}

/// What the running border shares with the metrics endpoint and the reload path.
#[derive(Debug)]
pub struct Shared {
    /// One per TUN queue. Each worker decides on its own packets with its own state;
    /// metrics sum them, a reload reconfigures each.
    pub workers: Vec<Worker>,
    /// What became of `kernel_end_sids` (off the packet path: read for metrics only).
    pub fast_path: Mutex<FastPath>,
    /// What the TUN device accepted (set once at start).
    pub offloads: Mutex<Offloads>,
    /// The in-kernel End program while it is attached (it detaches when dropped).
    pub ebpf_end: Mutex<Option<super::bpf::KernelEnd>>,
}

impl Shared {
    /// A border with one worker.
    pub fn new(state: State) -> Arc<Shared> {
        Shared::with_workers(vec![state])
    }

    /// A border with one worker per state.
    pub fn with_workers(states: Vec<State>) -> Arc<Shared> {
        Arc::new(Shared {
            workers: states
                .into_iter()
                .map(|s| Worker {
                    state: Mutex::new(s),
                    pending: Mutex::new(Vec::new()),
                    resolve_time: Default::default(),
                    pending_names: AtomicUsize::new(0),
                    queued_packets: AtomicUsize::new(0),
                    gso_frames: AtomicU64::new(0),
                    partial_csum_frames: AtomicU64::new(0),
                })
                .collect(),
            fast_path: Mutex::new(FastPath::NotConfigured),
            offloads: Mutex::new(Offloads::default()),
            ebpf_end: Mutex::new(None),
        })
    }

    /// Apply new settings to every worker (each gets its share of the ICMPv6 rate).
    pub fn reconfigure(&self, settings: &Settings, now: Duration) {
        let n = self.workers.len();
        for w in &self.workers {
            lock(&w.state).reconfigure(settings.for_worker_of(n), now);
        }
    }

    /// Every worker's counters, summed.
    pub fn counters(&self) -> Counters {
        let mut sum = Counters::default();
        for w in &self.workers {
            sum.add(&lock(&w.state).counters);
        }
        sum
    }

    /// Entries in every worker's name cache.
    pub fn cache_entries(&self) -> usize {
        self.workers
            .iter()
            .map(|w| lock(&w.state).cache.len())
            .sum()
    }

    /// Prometheus text for the border.
    pub fn render_metrics(&self) -> String {
        let fast_path = lock(&self.fast_path).clone();
        let offloads = *lock(&self.offloads);
        let ebpf_end = lock(&self.ebpf_end).as_ref().map(|k| k.counters());
        let guards: Vec<_> = self.workers.iter().map(|w| lock(&w.state)).collect();
        let states: Vec<&State> = guards.iter().map(|g| &**g).collect();
        let sum = |f: fn(&Worker) -> &AtomicUsize| -> usize {
            self.workers
                .iter()
                .map(|w| f(w).load(Ordering::Relaxed))
                .sum()
        };
        let sum64 = |f: fn(&Worker) -> &AtomicU64| -> u64 {
            self.workers
                .iter()
                .map(|w| f(w).load(Ordering::Relaxed))
                .sum()
        };
        super::metrics::render(&super::metrics::View {
            workers: &states,
            pending_names: sum(|w| &w.pending_names),
            queued_packets: sum(|w| &w.queued_packets),
            fast_path: &fast_path,
            offloads,
            gso_frames: sum64(|w| &w.gso_frames),
            partial_csum_frames: sum64(|w| &w.partial_csum_frames),
            ebpf_end,
            resolve_time: &self
                .workers
                .iter()
                .map(|w| &w.resolve_time)
                .collect::<Vec<_>>(),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug)]
struct Pending {
    /// Name → the packets waiting for it, each with its offload metadata in front.
    queues: HashMap<String, Waiting>,
    queued: usize,
    /// Lookups per source; a name's lookup is charged to the source of its first packet.
    limits: LookupLimits,
}

#[derive(Debug)]
struct Waiting {
    charged_to: SourceKey,
    packets: Vec<Vec<u8>>,
    since: Instant,
}

impl Pending {
    fn new(cfg: &ResolverConfig) -> Pending {
        Pending {
            queues: HashMap::new(),
            queued: 0,
            limits: LookupLimits::new(
                cfg.max_pending_names_per_source,
                cfg.lookups_per_second_per_source,
                cfg.lookup_burst_per_source,
            ),
        }
    }
}

struct Shell<'a, P: PacketIo> {
    io: &'a P,
    worker: &'a Worker,
    resolver: NameResolver,
    answers: mpsc::UnboundedSender<(String, Answer)>,
    pending: Pending,
    cfg: Config,
    out: Vec<u8>,
    /// A virtio-net header of zeros and then an error packet, when the device takes headers.
    err: Vec<u8>,
}

impl<P: PacketIo> Shell<'_, P> {
    fn send(&self, st: &mut State, frame: &[u8]) {
        if let Err(e) = self.io.send(frame) {
            st.counters.count_drop(DropReason::WriteFailed);
            tracing::debug!(%e, len = frame.len(), "write to {} failed", self.io.name());
        }
    }

    /// Send a packet `process` built (an ICMPv6 error, a stack report): no offloads.
    fn send_built(&mut self, st: &mut State, pkt_at: std::ops::Range<usize>) {
        let meta = self.io.meta_len();
        if meta == 0 {
            let out = std::mem::take(&mut self.out);
            self.send(st, &out[pkt_at]);
            self.out = out;
            return;
        }
        let mut err = std::mem::take(&mut self.err);
        err.clear();
        err.resize(meta, 0);
        err.extend_from_slice(&self.out[pkt_at]);
        self.send(st, &err);
        self.err = err;
    }

    /// One frame as read from the device: offload metadata, then the packet.
    fn handle(&mut self, st: &mut State, now: Clock, frame: &mut [u8]) {
        let meta_len = self.io.meta_len();
        if frame.len() < meta_len {
            st.counters.count_drop(DropReason::Malformed);
            return;
        }
        let meta = PacketMeta {
            checksum_partial: meta_len > 0 && frame[0] & VNET_F_NEEDS_CSUM != 0,
            gso: meta_len > 0 && frame[1] != 0,
        };
        if meta_len > 0 {
            if frame[1] != 0 {
                self.worker.gso_frames.fetch_add(1, Ordering::Relaxed);
            }
            if meta.checksum_partial {
                self.worker
                    .partial_csum_frames
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        let (offload, pkt) = frame.split_at_mut(meta_len);
        let unwrapped = st.counters.udp_ingress;
        let action = process_with(now, pkt, meta, st, &mut self.out);
        if st.counters.udp_ingress != unwrapped {
            // The metadata described the UDP datagram; the inner packet now in its place
            // (forwarded, or queued for a name) is no super-packet and has whole checksums.
            offload.fill(0);
        }
        match action {
            Action::Forward { len } => self.send(st, &frame[..meta_len + len]),
            Action::Drop {
                reason,
                icmp_len,
                report_len,
            } => {
                if tracing::enabled!(tracing::Level::DEBUG) && pkt.len() >= 40 {
                    // A dropped packet is never modified, so these are the received addresses.
                    let src = super::icmp::addr_at(pkt, 8);
                    let dst = super::icmp::addr_at(pkt, 24);
                    tracing::debug!(%reason, %src, %dst, icmp_len, report_len, "drop");
                }
                if icmp_len > 0 {
                    self.send_built(st, 0..icmp_len);
                }
                if report_len > 0 {
                    self.send_built(st, icmp_len..icmp_len + report_len);
                }
            }
            Action::NeedResolve { name, segment } => self.queue(st, now, name, segment, frame),
        }
    }

    fn queue(&mut self, st: &mut State, now: Clock, name: String, segment: u8, frame: &[u8]) {
        let rc = &self.cfg.resolver;
        if let Some(q) = self.pending.queues.get_mut(&name) {
            if q.packets.len() < rc.queue_per_name {
                q.packets.push(frame.to_vec());
                self.pending.queued += 1;
                let held = q.packets.len();
                if let Some(p) = lock(&self.worker.pending)
                    .iter_mut()
                    .find(|p| p.name == name)
                {
                    p.packets = held;
                }
                self.publish_counts();
            } else {
                st.counters.count_drop(DropReason::ResolveQueueFull);
            }
            return;
        } else if self.pending.queues.len() >= rc.max_pending_names {
            st.counters.count_drop(DropReason::ResolveQueueFull);
            return;
        } else {
            // `process` asked for a lookup, so the packet is whole past its IPv6 header.
            let src = super::icmp::addr_at(&frame[self.io.meta_len()..], 8);
            let source = source_key(&src);
            if let Err(why) = self.pending.limits.start(source, now.monotonic) {
                // Trace, not debug: a flood would write a line per packet.
                tracing::trace!(%name, %src, ?why, "lookup refused");
                st.counters.count_drop(DropReason::LookupLimited);
                return;
            }
            tracing::debug!(%name, segment, "resolving");
            self.pending.queues.insert(
                name.clone(),
                Waiting {
                    charged_to: source,
                    packets: vec![frame.to_vec()],
                    since: Instant::now(),
                },
            );
            self.pending.queued += 1;
            let resolver = self.resolver.clone();
            let tx = self.answers.clone();
            tokio::spawn(async move {
                let ans = resolver.resolve(&name).await;
                let _ = tx.send((name, ans));
            });
        }
        self.publish();
    }

    fn answer(&mut self, name: String, ans: Answer) {
        if let Some(w) = self.pending.queues.get(&name) {
            self.worker.resolve_time.observe(w.since.elapsed());
        }
        tracing::info!(%name, detail = %ans.detail, ttl_s = ans.ttl.as_secs(), "hop name answered");
        let Some(Waiting {
            charged_to,
            packets: queued,
            ..
        }) = self.pending.queues.remove(&name)
        else {
            return;
        };
        self.pending.limits.finish(charged_to);
        self.pending.queued -= queued.len();
        let worker = self.worker;
        let mut st = lock(&worker.state);
        let t = clock();
        st.cache.insert_with_detail(
            name.as_bytes(),
            ans.binding,
            ans.ttl,
            t.monotonic,
            ans.report_text(),
        );
        for mut frame in queued {
            self.handle(&mut st, t, &mut frame);
        }
        drop(st);
        self.publish();
    }

    /// The names pending, for `hopd show pending`: rebuilt when a name comes or goes (a
    /// queued packet only updates its name's count), never per dropped packet.
    fn publish(&self) {
        let list = self
            .pending
            .queues
            .iter()
            .map(|(name, w)| PendingName {
                name: name.clone(),
                packets: w.packets.len(),
                waiting: w.since.elapsed(),
                source: std::net::Ipv6Addr::from(u128::from(w.charged_to) << 64),
            })
            .collect();
        *lock(&self.worker.pending) = list;
        self.publish_counts();
    }

    fn publish_counts(&self) {
        self.worker
            .pending_names
            .store(self.pending.queues.len(), Ordering::Relaxed);
        self.worker
            .queued_packets
            .store(self.pending.queued, Ordering::Relaxed);
    }
}

/// Run the border on `queues` (one worker task each, `shared.workers[i]` for queue `i`)
/// until `shutdown` completes. New configurations arriving on `reload` replace resolver
/// settings and limits; SIDs, policy and rates are applied to the workers' states by the
/// reload path ([`Shared::reconfigure`]) without losing counters, cached names or queued
/// packets.
pub async fn run_with<P: PacketIo + 'static>(
    queues: Vec<P>,
    cfg: Config,
    shared: Arc<Shared>,
    reload: watch::Receiver<Config>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    assert_eq!(queues.len(), shared.workers.len(), "one worker per queue");
    let mut tasks = tokio::task::JoinSet::new();
    let name = queues
        .first()
        .map(|q| q.name().to_owned())
        .unwrap_or_default();
    for (i, io) in queues.into_iter().enumerate() {
        tasks.spawn(worker(io, i, cfg.clone(), shared.clone(), reload.clone()));
    }
    tracing::info!(dev = %name, workers = shared.workers.len(), "border running");
    tokio::pin!(shutdown);
    let result = tokio::select! {
        _ = &mut shutdown => Ok(()),
        Some(done) = tasks.join_next() => match done {
            Ok(r) => r,
            Err(e) => Err(io::Error::other(format!("a packet worker failed: {e}"))),
        },
    };
    // Workers hold no lock across an await: stopping them there loses nothing but the
    // packets still waiting for a name.
    tasks.shutdown().await;
    tracing::info!("border stopped");
    result
}

/// Packets handled per wake-up at most, before giving the other tasks a turn; a worker
/// otherwise drains its queue until it would block.
const BATCH: usize = 256;

async fn worker<P: PacketIo>(
    io: P,
    index: usize,
    cfg: Config,
    shared: Arc<Shared>,
    mut reload: watch::Receiver<Config>,
) -> io::Result<()> {
    let resolver = NameResolver::new(&cfg.resolver).map_err(io::Error::other)?;
    // SAFETY: `PacketIo` implementors own their descriptor (Tun holds an OwnedFd) and
    // return the same one from `as_raw_fd` for as long as they live; the AsyncFd owns `io`.
    let afd = unsafe { AsyncFd::register_with_interest(io, Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let worker = &shared.workers[index];
    let mut shell = Shell {
        io: afd.get_ref(),
        worker,
        resolver,
        answers: tx,
        pending: Pending::new(&cfg.resolver),
        cfg,
        out: vec![0u8; OUT_BUF_LEN],
        err: Vec::with_capacity(VNET_HDR_LEN + OUT_BUF_LEN),
    };
    let mut buf = vec![0u8; MAX_FRAME];
    let heartbeat = crate::liveness::global().register(format!("border worker {index}"));
    let mut beat = tokio::time::interval(crate::liveness::BEAT_EVERY);
    loop {
        if heartbeat.told_to_stall() {
            crate::liveness::hang().await;
        }
        tokio::select! {
            _ = beat.tick() => heartbeat.beat(),
            changed = reload.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let new = reload.borrow_and_update().clone();
                match NameResolver::new(&new.resolver) {
                    Ok(r) => shell.resolver = r,
                    Err(e) => tracing::warn!(%e, "keeping the previous resolver"),
                }
                let r = &new.resolver;
                shell.pending.limits.set_limits(
                    r.max_pending_names_per_source,
                    r.lookups_per_second_per_source,
                    r.lookup_burst_per_source,
                );
                shell.cfg = new;
            }
            Some((name, ans)) = rx.recv() => shell.answer(name, ans),
            guard = afd.readable() => {
                let mut guard = guard?;
                let mut st = lock(&worker.state);
                // One clock read per batch: a batch takes microseconds, TTLs are seconds.
                let t = clock();
                for _ in 0..BATCH {
                    match guard.try_io(|fd| fd.get_ref().recv(&mut buf)) {
                        Ok(Ok(n)) => shell.handle(&mut st, t, &mut buf[..n]),
                        Ok(Err(e)) => {
                            tracing::warn!(%e, "read from {} failed", shell.io.name());
                            break;
                        }
                        Err(_would_block) => break,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The shell driven through a second `PacketIo` backend (a datagram socket pair), which
    //! also shows that a backend other than the TUN slots in.
    use super::*;
    use hopstack_encoder::wire::packet::{Ipv6Fields, Upper, build};
    use hopstack_encoder::wire::srh::{Packet, SrhRepr};
    use hopstack_encoder::wire::tlv::{self, HopName, HopNames};
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::unix::net::UnixDatagram;

    struct Pair(UnixDatagram);

    impl AsRawFd for Pair {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_raw_fd()
        }
    }

    impl PacketIo for Pair {
        fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.recv(buf)
        }
        fn send(&self, pkt: &[u8]) -> io::Result<usize> {
            self.0.send(pkt)
        }
        fn name(&self) -> &str {
            "pair"
        }
    }

    fn late_bound_packet(name: &str) -> Vec<u8> {
        let repr = SrhRepr {
            next_header: 17,
            segments_left: 1,
            flags: 0,
            tag: 0,
            segments: vec![tlv::placeholder(0), "fd00:1::1".parse().unwrap()],
            tlvs: HopNames::split(&[HopName {
                index: 0,
                name: name.into(),
            }]),
        };
        let mut srh = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut srh[..])).unwrap();
        let mut buf = vec![0u8; 1500];
        let n = build(
            &mut buf,
            &Ipv6Fields::new("2001:db8::100".parse().unwrap()),
            &srh,
            &Upper::Udp {
                src_port: 1,
                dst_port: 2,
                payload: b"x",
            },
        )
        .unwrap();
        buf.truncate(n);
        buf
    }

    #[tokio::test]
    async fn failed_lookups_drain_the_bounded_queue_with_errors() {
        let dir = tempfile::tempdir().unwrap();
        let resolv = dir.path().join("resolv.conf");
        std::fs::write(&resolv, "nameserver ::1\n").unwrap();
        let mut cfg = Config {
            sids: vec!["fd00:1::1".parse().unwrap()],
            ..Config::default()
        };
        cfg.resolver.resolv_conf = resolv;
        cfg.resolver.timeout_ms = 300;
        cfg.resolver.queue_per_name = 4;
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        theirs.set_nonblocking(true).unwrap();
        ours.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let shared = Shared::new(State::new(cfg.settings("test"), monotonic()));
        let (_reload_tx, reload_rx) = watch::channel(cfg.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_with(
            vec![Pair(theirs)],
            cfg,
            shared.clone(),
            reload_rx,
            async {
                let _ = stop_rx.await;
            },
        ));

        let pkt = late_bound_packet("nosuch.invalid");
        for _ in 0..10 {
            ours.send(&pkt).unwrap();
        }
        // Four packets waited for the name; when the lookup failed each got an ICMPv6
        // Destination Unreachable (address unreachable) from the SID.
        let errors = tokio::task::spawn_blocking(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            while got.len() < 4 {
                let n = ours.recv(&mut buf).expect("an ICMPv6 error within 5 s");
                got.push(buf[..n].to_vec());
            }
            got
        })
        .await
        .unwrap();
        for e in &errors {
            assert_eq!(e[6], 58, "ICMPv6");
            assert_eq!((e[40], e[41]), (1, 3), "Destination Unreachable, code 3");
            assert_eq!(&e[48..48 + pkt.len()], &pkt[..], "quotes the queued packet");
        }
        let _ = stop_tx.send(());
        task.await.unwrap().unwrap();

        let counters = shared.counters();
        assert_eq!(counters.dropped(DropReason::ResolveQueueFull), 6);
        let failed: u64 = [
            DropReason::Nxdomain,
            DropReason::Servfail,
            DropReason::DnsTimeout,
            DropReason::NoAaaa,
        ]
        .iter()
        .map(|r| counters.dropped(*r))
        .sum();
        assert_eq!(failed, 4, "{counters:?}");
        assert_eq!(
            counters.resolve_requests, 10,
            "every packet found the name uncached"
        );
        assert_eq!(shared.cache_entries(), 1, "the failure is cached");
        assert_eq!(shared.workers[0].queued_packets.load(Ordering::Relaxed), 0);
    }
}
