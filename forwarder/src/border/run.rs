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
//!  process(now, pkt, &mut State, out) ---------+
//!   |  NeedResolve{name}
//!   v
//!  pending[name] <- packet (bounded)   spawn lookup ---> hickory (node's resolv.conf)
//!   ^                                                        |
//!   +---- answer: cache.insert(name, binding, ttl); re-run --+
//! ```
//!
//! The state sits behind a mutex shared with the metrics endpoint and the reload path; the
//! packet task holds it for one batch at a time and never across an `.await`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::process::{Action, DropReason, OUT_BUF_LEN, State, process};
use super::resolve::{Answer, NameResolver};
use super::tun::PacketIo;
use super::{Config, FastPath};

/// Packets handled per wake-up before yielding to the other branches of the loop.
const BATCH: usize = 64;
/// Larger than any packet a TUN device with a 64 KiB MTU can hand us.
const MAX_PACKET: usize = 65_536;

/// The wall clock as `process` wants it. Trace timestamps use it; the token bucket
/// tolerates steps.
pub fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// What the running border shares with the metrics endpoint and the reload path.
#[derive(Debug)]
pub struct Shared {
    pub state: Mutex<State>,
    pub pending_names: AtomicUsize,
    pub queued_packets: AtomicUsize,
    /// What became of `kernel_end_sids` (off the packet path: read for metrics only).
    pub fast_path: Mutex<FastPath>,
}

impl Shared {
    pub fn new(state: State) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(state),
            pending_names: AtomicUsize::new(0),
            queued_packets: AtomicUsize::new(0),
            fast_path: Mutex::new(FastPath::NotConfigured),
        })
    }

    /// Prometheus text for the border.
    pub fn render_metrics(&self) -> String {
        let fast_path = self
            .fast_path
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        super::metrics::render(
            &st,
            self.pending_names.load(Ordering::Relaxed),
            self.queued_packets.load(Ordering::Relaxed),
            &fast_path,
        )
    }
}

struct Pending {
    queues: HashMap<String, Vec<Vec<u8>>>,
    queued: usize,
}

struct Shell<'a, P: PacketIo> {
    io: &'a P,
    shared: &'a Shared,
    resolver: NameResolver,
    answers: mpsc::UnboundedSender<(String, Answer)>,
    pending: Pending,
    cfg: Config,
    out: Vec<u8>,
}

impl<P: PacketIo> Shell<'_, P> {
    fn send(&self, st: &mut State, pkt: &[u8]) {
        if let Err(e) = self.io.send(pkt) {
            st.counters.count_drop(DropReason::WriteFailed);
            tracing::debug!(%e, len = pkt.len(), "write to {} failed", self.io.name());
        }
    }

    fn handle(&mut self, st: &mut State, pkt: &mut [u8]) {
        match process(now(), pkt, st, &mut self.out) {
            Action::Forward { len } => self.send(st, &pkt[..len]),
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
                let out = std::mem::take(&mut self.out);
                if icmp_len > 0 {
                    self.send(st, &out[..icmp_len]);
                }
                if report_len > 0 {
                    self.send(st, &out[icmp_len..icmp_len + report_len]);
                }
                self.out = out;
            }
            Action::NeedResolve { name, segment } => self.queue(st, name, segment, pkt),
        }
    }

    fn queue(&mut self, st: &mut State, name: String, segment: u8, pkt: &[u8]) {
        let rc = &self.cfg.resolver;
        if let Some(q) = self.pending.queues.get_mut(&name) {
            if q.len() < rc.queue_per_name {
                q.push(pkt.to_vec());
                self.pending.queued += 1;
            } else {
                st.counters.count_drop(DropReason::ResolveQueueFull);
            }
        } else if self.pending.queues.len() >= rc.max_pending_names {
            st.counters.count_drop(DropReason::ResolveQueueFull);
        } else {
            tracing::debug!(%name, segment, "resolving");
            self.pending.queues.insert(name.clone(), vec![pkt.to_vec()]);
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
        tracing::info!(%name, detail = %ans.detail, ttl_s = ans.ttl.as_secs(), "hop name answered");
        let queued = self.pending.queues.remove(&name).unwrap_or_default();
        self.pending.queued -= queued.len();
        let shared = self.shared;
        let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.cache
            .insert_with_detail(name.as_bytes(), ans.binding, ans.ttl, now(), &ans.detail);
        for mut pkt in queued {
            self.handle(&mut st, &mut pkt);
        }
        drop(st);
        self.publish();
    }

    fn publish(&self) {
        self.shared
            .pending_names
            .store(self.pending.queues.len(), Ordering::Relaxed);
        self.shared
            .queued_packets
            .store(self.pending.queued, Ordering::Relaxed);
    }
}

/// Run the border on `io` until `shutdown` completes. New configurations arriving on
/// `reload` replace SIDs, policy and limits without losing counters, cached names or
/// queued packets.
pub async fn run_with<P: PacketIo>(
    io: P,
    cfg: Config,
    shared: Arc<Shared>,
    mut reload: mpsc::UnboundedReceiver<Config>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let resolver = NameResolver::new(&cfg.resolver).map_err(io::Error::other)?;
    // SAFETY: `PacketIo` implementors own their descriptor (Tun holds an OwnedFd) and
    // return the same one from `as_raw_fd` for as long as they live; the AsyncFd owns `io`.
    let afd = unsafe { AsyncFd::register_with_interest(io, Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut shell = Shell {
        io: afd.get_ref(),
        shared: &shared,
        resolver,
        answers: tx,
        pending: Pending {
            queues: HashMap::new(),
            queued: 0,
        },
        cfg,
        out: vec![0u8; OUT_BUF_LEN],
    };
    let mut buf = vec![0u8; MAX_PACKET];
    tokio::pin!(shutdown);
    tracing::info!(dev = shell.io.name(), "border running");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(new) = reload.recv() => {
                match NameResolver::new(&new.resolver) {
                    Ok(r) => shell.resolver = r,
                    Err(e) => tracing::warn!(%e, "keeping the previous resolver"),
                }
                shell.cfg = new;
            }
            Some((name, ans)) = rx.recv() => shell.answer(name, ans),
            guard = afd.readable() => {
                let mut guard = guard?;
                let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                for _ in 0..BATCH {
                    match guard.try_io(|fd| fd.get_ref().recv(&mut buf)) {
                        Ok(Ok(n)) => shell.handle(&mut st, &mut buf[..n]),
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
    tracing::info!("border stopped");
    Ok(())
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
        let shared = Shared::new(State::new(cfg.settings("test"), now()));
        let (_reload_tx, reload_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_with(
            Pair(theirs),
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

        let st = shared.state.lock().unwrap();
        assert_eq!(st.counters.dropped(DropReason::ResolveQueueFull), 6);
        let failed: u64 = [
            DropReason::Nxdomain,
            DropReason::Servfail,
            DropReason::DnsTimeout,
            DropReason::NoAaaa,
        ]
        .iter()
        .map(|r| st.counters.dropped(*r))
        .sum();
        assert_eq!(failed, 4, "{:?}", st.counters);
        assert_eq!(
            st.counters.resolve_requests, 10,
            "every packet found the name uncached"
        );
        assert_eq!(st.cache.len(), 1, "the failure is cached");
        assert_eq!(shared.queued_packets.load(Ordering::Relaxed), 0);
    }
}
