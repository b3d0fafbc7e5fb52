//! The per-network DNS server (`hopbed __dns ZONEFILE ADDRESS`), run inside the node named by
//! the network's `dns.node`.
//!
//! It is a small authoritative server over UDP and TCP port 53 built on hickory-proto's message
//! codec: it answers AAAA/A from the view's records, NXDOMAIN for names it does not hold, and
//! obeys per-name faults (`*.example` for every name below `example`). The zone file is re-read (when its mtime changes) before each
//! answer, so `Testbed::dns_fault` and `Testbed::dns_set` take effect on the next query without
//! restarting anything.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a faulty name answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsFault {
    /// RCODE 3: the name does not exist (even if the view has records for it).
    Nxdomain,
    /// RCODE 2: the server failed.
    Servfail,
    /// No answer at all; the client times out.
    Timeout,
}

impl std::str::FromStr for DnsFault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "nxdomain" => Ok(Self::Nxdomain),
            "servfail" => Ok(Self::Servfail),
            "timeout" => Ok(Self::Timeout),
            _ => Err(format!(
                "`{s}` is not a DNS fault: nxdomain, servfail or timeout"
            )),
        }
    }
}

/// The state of one view, as stored in the run directory (`dns/<network>.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Zone {
    /// TTL of answers.
    pub ttl: u32,
    /// Lower-case name without the final dot → addresses.
    pub records: BTreeMap<String, Vec<IpAddr>>,
    /// Lower-case name → fault.
    #[serde(default)]
    pub faults: BTreeMap<String, DnsFault>,
}

/// Canonical form of a name as stored in a [`Zone`].
pub fn canonical(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    /// Read a zone file.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let data = std::fs::read(path)?;
        serde_json::from_slice(&data)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Write a zone file atomically.
    pub fn store(&self, path: &Path) -> std::io::Result<()> {
        let data = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::ns::write_atomic(path, &data)
    }

    /// The fault for `name`: its own, else that of the nearest `*.SUFFIX` entry above it (a
    /// whole silent domain, for names nobody can list in advance).
    fn fault_of(&self, name: &str) -> Option<&DnsFault> {
        if let Some(f) = self.faults.get(name) {
            return Some(f);
        }
        name.match_indices('.')
            .find_map(|(i, _)| self.faults.get(&format!("*{}", &name[i..])))
    }

    /// The answer to one query: `None` means stay silent (timeout fault).
    pub fn answer(&self, query: &Message) -> Option<Message> {
        let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
        resp.metadata.recursion_desired = query.metadata.recursion_desired;
        resp.metadata.authoritative = true;
        resp.queries = query.queries.clone();
        if query.metadata.op_code != OpCode::Query || query.queries.len() != 1 {
            resp.metadata.response_code = ResponseCode::NotImp;
            return Some(resp);
        }
        let q = &query.queries[0];
        let key = canonical(&q.name().to_ascii());
        match self.fault_of(&key) {
            Some(DnsFault::Timeout) => return None,
            Some(DnsFault::Servfail) => {
                resp.metadata.response_code = ResponseCode::ServFail;
                return Some(resp);
            }
            Some(DnsFault::Nxdomain) => {
                resp.metadata.response_code = ResponseCode::NXDomain;
                return Some(resp);
            }
            None => {}
        }
        let Some(addrs) = self.records.get(&key) else {
            resp.metadata.response_code = ResponseCode::NXDomain;
            return Some(resp);
        };
        // A name that exists but has no address of the asked family gets NOERROR with an
        // empty answer (NODATA), which resolvers must not treat as NXDOMAIN.
        for a in addrs {
            let rdata = match (a, q.query_type()) {
                (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(*v6)),
                (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(*v4)),
                _ => continue,
            };
            resp.answers
                .push(Record::from_rdata(q.name().clone(), self.ttl, rdata));
        }
        Some(resp)
    }
}

/// Cache of the zone keyed by the file's mtime, so a burst of queries reads the file once.
struct ZoneCache {
    path: PathBuf,
    loaded: Mutex<(Option<SystemTime>, Arc<Zone>)>,
}

impl ZoneCache {
    fn get(&self) -> Arc<Zone> {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut g = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if mtime.is_some() && g.0 != mtime {
            match Zone::load(&self.path) {
                Ok(z) => *g = (mtime, Arc::new(z)),
                Err(e) => eprintln!("hopbed dns: cannot reload {}: {e}", self.path.display()),
            }
        }
        g.1.clone()
    }
}

fn respond(cache: &ZoneCache, peer: SocketAddr, req: &[u8]) -> Option<Vec<u8>> {
    let query = match Message::from_vec(req) {
        Ok(m) if m.metadata.message_type == MessageType::Query => m,
        Ok(_) => return None,
        Err(e) => {
            eprintln!("hopbed dns: malformed query from {peer}: {e}");
            if req.len() >= 2 {
                let id = u16::from_be_bytes([req[0], req[1]]);
                let m = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
                return m.to_vec().ok();
            }
            return None;
        }
    };
    let zone = cache.get();
    let resp = zone.answer(&query);
    let q = query
        .queries
        .first()
        .map(|q| format!("{} {}", q.name(), q.query_type()))
        .unwrap_or_default();
    match &resp {
        Some(r) => eprintln!(
            "hopbed dns: {peer} {q} -> {} ({} answers)",
            r.metadata.response_code,
            r.answers.len()
        ),
        None => eprintln!("hopbed dns: {peer} {q} -> (no answer: timeout fault)"),
    }
    resp.and_then(|r| r.to_vec().ok())
}

/// Run the server until killed. Prints `ready` on stdout once both sockets are bound.
pub fn serve(zone_file: &Path, addr: Ipv6Addr) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let cache = Arc::new(ZoneCache {
            path: zone_file.to_owned(),
            loaded: Mutex::new((None, Arc::new(Zone::load(zone_file)?))),
        });
        let sa = SocketAddr::from((addr, 53));
        let udp = tokio::net::UdpSocket::bind(sa).await?;
        let tcp = tokio::net::TcpListener::bind(sa).await?;
        println!("ready");
        use std::io::Write;
        std::io::stdout().flush()?;
        let c2 = cache.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, peer)) = tcp.accept().await else {
                    continue;
                };
                let c = c2.clone();
                tokio::spawn(async move {
                    // RFC 1035 4.2.2: each message is preceded by a two-octet length.
                    loop {
                        let mut len = [0u8; 2];
                        if s.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
                        if s.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        if let Some(out) = respond(&c, peer, &buf) {
                            let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                            framed.extend_from_slice(&out);
                            if s.write_all(&framed).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let mut buf = vec![0u8; 65535];
        loop {
            let (n, peer) = udp.recv_from(&mut buf).await?;
            if let Some(out) = respond(&cache, peer, &buf[..n]) {
                let _ = udp.send_to(&out, peer).await;
            }
        }
    })
}

/// Resolve `name` with hickory-resolver using the system configuration (`/etc/resolv.conf`
/// of the node this runs on). Returns the addresses, or the resolver's error text.
pub fn resolve_system(name: &str) -> anyhow::Result<Vec<IpAddr>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let resolver = hickory_resolver::TokioResolver::builder_tokio()?.build()?;
        let lookup = resolver.lookup_ip(name).await?;
        Ok(lookup.iter().collect())
    })
}

/// One AAAA query over TCP (RFC 1035 4.2.2 framing) to `server`: returns the response code
/// and the addresses. `hopbed __dns-tcp SERVER NAME` runs it on a node; tests use it to check
/// the server's TCP side, which stub resolvers rarely exercise.
pub fn query_tcp(server: SocketAddr, name: &str) -> anyhow::Result<(ResponseCode, Vec<IpAddr>)> {
    use std::io::{Read, Write};
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii(name)?,
        RecordType::AAAA,
    ));
    let bytes = q.to_vec()?;
    let mut s = std::net::TcpStream::connect_timeout(&server, std::time::Duration::from_secs(2))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    s.write_all(&framed)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf)?;
    let r = Message::from_vec(&buf)?;
    if r.metadata.id != q.metadata.id {
        anyhow::bail!(
            "response id {} does not match query id {}",
            r.metadata.id,
            q.metadata.id
        );
    }
    let addrs = r
        .answers
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Ok((r.metadata.response_code, addrs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m
    }

    fn zone() -> Zone {
        let mut z = Zone {
            ttl: 7,
            ..Default::default()
        };
        z.records
            .insert("org".into(), vec!["fd00:2::2".parse().unwrap()]);
        z
    }

    #[test]
    fn answers_aaaa_nodata_and_nxdomain() {
        let z = zone();
        let r = z.answer(&query("ORG.", RecordType::AAAA)).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.metadata.authoritative);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].ttl, 7);
        assert_eq!(
            r.answers[0].data,
            RData::AAAA(AAAA("fd00:2::2".parse().unwrap()))
        );
        let r = z.answer(&query("org.", RecordType::A)).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        let r = z.answer(&query("yc.", RecordType::AAAA)).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn faults_override_records() {
        let mut z = zone();
        z.faults.insert("org".into(), DnsFault::Nxdomain);
        let q = query("org.", RecordType::AAAA);
        assert_eq!(
            z.answer(&q).unwrap().metadata.response_code,
            ResponseCode::NXDomain
        );
        z.faults.insert("org".into(), DnsFault::Servfail);
        assert_eq!(
            z.answer(&q).unwrap().metadata.response_code,
            ResponseCode::ServFail
        );
        z.faults.insert("org".into(), DnsFault::Timeout);
        assert!(z.answer(&q).is_none());
    }

    #[test]
    fn a_wildcard_fault_covers_every_name_below_it() {
        let mut z = zone();
        z.faults.insert("*.junk".into(), DnsFault::Timeout);
        assert!(z.answer(&query("n1.junk.", RecordType::AAAA)).is_none());
        assert!(z.answer(&query("a.b.junk.", RecordType::AAAA)).is_none());
        // Not the domain itself, nor names elsewhere.
        assert!(z.answer(&query("junk.", RecordType::AAAA)).is_some());
        assert!(z.answer(&query("org.", RecordType::AAAA)).is_some());
    }
}
