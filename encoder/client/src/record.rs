//! Connect records: a cached request's connection, ready before its SYN.
//!
//! A request whose path is in the path cache (`paths.json`, [`PathCache`]) still has to read
//! that JSON, find its entry, pick the port and build the SRH before it can connect: cold
//! code in a fresh process, ~30 µs, about a tenth of a request's time to first byte on a fast
//! network. So once a request over a cached path has connected, `hop` also keeps that
//! connection as it was made — destination, port, the SRH octets — in a small binary file of
//! its own, and the next request with the same address and options connects from it
//! straight away (one `statx`, one `open`, one `read`). `paths.json` stays the record of
//! truth: `-v`/`--json` read their per-hop lines from it after the response, and every
//! fallback and diagnosis starts from it.
//!
//! A record never outlives the cache file it came from: it carries that file's stamp
//! (device, inode, size, modification time), and one whose stamp is not the file's now is
//! not used. `hop` changes the cache by writing a new file and renaming it in place (a new
//! inode), an edit by hand changes the modification time: either way every record retires.
//! A record whose connection fails is deleted and the request goes on from `paths.json`.
//!
//! One file per record, `<cache file>.records/<FNV-1a 64 of the key, hex>`; the key (the
//! hops, layers and service of the address and the options that change the connection, see
//! [`record_key`]) is stored in it and compared, so a hash collision only misses. Layout,
//! version 1, integers in network byte order:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      'h'      |      'o'      |      'p'      |      'r'      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Version = 1  |    Flags    |D|             Port              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                  Expires (Unix seconds, 64)                   +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +      Cache stamp: device, inode, size, modification time      +
//! |            (nanoseconds since the epoch), 64 bits each        |
//! ~                                                               ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +             Destination (the final hop's address)             +
//! |                          (128 bits)                           |
//! ~                                                               ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Key Length           |          SRH Length           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ~                         Key (UTF-8)                           ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ~     SRH (the routing header as setsockopt(IPV6_RTHDR) takes it) ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! D: Port is the service's direct port (hopd not in the connection); else hopd's port.
//! ```

use std::fmt;
use std::fs::Metadata;
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::path::{Path, PathBuf};

use hopstack_encoder::address::StackAddress;

const MAGIC: &[u8; 4] = b"hopr";
const VERSION: u8 = 1;
const FLAG_DIRECT_PORT: u8 = 0x01;
/// Octets before the key: magic 4, version 1, flags 1, port 2, expires 8, stamp 32,
/// destination 16, key length 2, SRH length 2.
const HEADER_LEN: usize = 68;
/// No record is this long (an SRH is at most 2048 octets, a key a few hundred): a longer
/// one is not stored, and one read is taken as corrupt.
pub const MAX_RECORD_LEN: usize = 4096;

/// Which cache file a record was derived from, as that file is identified on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStamp {
    pub device: u64,
    pub inode: u64,
    pub size: u64,
    /// Modification time, nanoseconds since the epoch (wrapping; only compared).
    pub mtime_ns: u64,
}

impl CacheStamp {
    pub fn of(meta: &Metadata) -> CacheStamp {
        use std::os::unix::fs::MetadataExt;
        CacheStamp {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            mtime_ns: (meta.mtime() as u64)
                .wrapping_mul(1_000_000_000)
                .wrapping_add(meta.mtime_nsec() as u64),
        }
    }
}

/// A connection as a request made it: `connect()` to `dest` with `srh` on the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRecord {
    pub dest: SocketAddrV6,
    /// `dest`'s port is the service's direct port (else hopd's).
    pub direct_port: bool,
    /// Unix seconds; the path's expiry in the cache.
    pub expires: u64,
    pub srh: Vec<u8>,
}

/// A record as [`RecordStore::load`] found it.
#[derive(Debug)]
pub struct LoadedRecord {
    pub record: ConnectRecord,
    /// The cache file it was derived from ([`RecordStore::check`]).
    pub stamp: CacheStamp,
    /// The record's file, open: closed when this is dropped, after the response (a `close`
    /// is a system call the SYN need not wait for).
    _file: std::fs::File,
}

/// Why a record file was not used. Only [`Miss::Absent`] is silent under `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No record for the key (or no cache file).
    Absent,
    /// The cache file changed since the record was made.
    Stale,
    Expired,
    /// Another key with the same file name (an FNV collision).
    OtherKey,
    Corrupt(RecordError),
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::Absent => f.write_str("none"),
            Miss::Stale => f.write_str("the path cache changed since it was made"),
            Miss::Expired => f.write_str("expired"),
            Miss::OtherKey => f.write_str("it is another address's"),
            Miss::Corrupt(e) => write!(f, "corrupt: {e}"),
        }
    }
}

/// What is wrong with a record's octets, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at octet {}", self.what, self.offset)
    }
}

impl ConnectRecord {
    /// The record's file contents for `key`, derived from the cache file `stamp` names.
    pub fn to_bytes(&self, key: &str, stamp: CacheStamp) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + key.len() + self.srh.len());
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        b.push(if self.direct_port {
            FLAG_DIRECT_PORT
        } else {
            0
        });
        b.extend_from_slice(&self.dest.port().to_be_bytes());
        b.extend_from_slice(&self.expires.to_be_bytes());
        for v in [stamp.device, stamp.inode, stamp.size, stamp.mtime_ns] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(&self.dest.ip().octets());
        b.extend_from_slice(&(key.len() as u16).to_be_bytes());
        b.extend_from_slice(&(self.srh.len() as u16).to_be_bytes());
        b.extend_from_slice(key.as_bytes());
        b.extend_from_slice(&self.srh);
        b
    }

    /// Reads a record's octets. The key is returned, not checked (see [`RecordStore::load`]).
    /// The SRH is checked as far as its own length says (type 4, Hdr Ext Len consistent); the
    /// kernel validates the rest when the socket takes it.
    pub fn parse(b: &[u8]) -> Result<(ConnectRecord, &[u8], CacheStamp), RecordError> {
        let err = |offset, what| RecordError { offset, what };
        if b.len() < HEADER_LEN {
            return Err(err(b.len(), "truncated header (68 octets)"));
        }
        if &b[0..4] != MAGIC {
            return Err(err(0, "not a hopstack connect record (magic 'hopr')"));
        }
        if b[4] != VERSION {
            return Err(err(4, "unknown version"));
        }
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let port = u16_at(6);
        let expires = u64_at(8);
        let stamp = CacheStamp {
            device: u64_at(16),
            inode: u64_at(24),
            size: u64_at(32),
            mtime_ns: u64_at(40),
        };
        let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&b[48..64]).unwrap_or_default());
        let key_len = usize::from(u16_at(64));
        let srh_len = usize::from(u16_at(66));
        if b.len() != HEADER_LEN + key_len + srh_len {
            return Err(err(
                64,
                "key and SRH lengths do not add up to the record's length",
            ));
        }
        let key = &b[HEADER_LEN..HEADER_LEN + key_len];
        let srh = &b[HEADER_LEN + key_len..];
        let at = HEADER_LEN + key_len;
        if srh.len() < 8 || srh[2] != 4 || (usize::from(srh[1]) + 1) * 8 != srh.len() {
            return Err(err(at, "not a segment routing header of its stated length"));
        }
        Ok((
            ConnectRecord {
                dest: SocketAddrV6::new(ip, port, 0, 0),
                direct_port: b[5] & FLAG_DIRECT_PORT != 0,
                expires,
                srh: srh.to_vec(),
            },
            key,
            stamp,
        ))
    }
}

/// The key of an address's record: everything that decides the connection — the hops (as the
/// path cache keys them), the layers and the service (the SRH's layer descriptor, the
/// direct port), `--port` and `--no-fast-path`. Not the resource path: every request to
/// the service shares the record.
pub fn record_key(addr: &StackAddress, port: Option<u16>, fast_path: bool) -> String {
    use fmt::Write as _;
    // `cache_key` and `direct_port_key` joined, written straight into one string: a cached
    // request builds it before its SYN.
    let mut k = String::with_capacity(96);
    for (i, h) in addr.hops().iter().enumerate() {
        if i > 0 {
            k.push('>');
        }
        let _ = write!(k, "{h}");
    }
    k.push(':');
    for (i, l) in addr.layers().iter().enumerate() {
        if i > 0 {
            k.push('+');
        }
        k.push_str(l.as_str());
    }
    k.push('/');
    k.push_str(addr.service().as_str());
    match port {
        Some(p) => {
            let _ = write!(k, " port={p}");
        }
        None => k.push_str(" port=-"),
    }
    k.push_str(if fast_path {
        " fast-path=on"
    } else {
        " fast-path=off"
    });
    k
}

/// FNV-1a, 64 bits: a short, stable file name for a key.
fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The records of one cache file.
#[derive(Debug, Clone)]
pub struct RecordStore {
    cache_file: PathBuf,
    dir: PathBuf,
}

impl RecordStore {
    /// Records of `cache_file` live in `<cache_file>.records/`.
    pub fn for_cache(cache_file: &Path) -> RecordStore {
        let mut dir = cache_file.as_os_str().to_owned();
        dir.push(".records");
        RecordStore {
            cache_file: cache_file.to_owned(),
            dir: PathBuf::from(dir),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn file(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{:016x}", fnv1a64(key.as_bytes())))
    }

    /// `key`'s record, if there is one that has not expired at `now` (Unix seconds).
    /// Whether the cache file is still the one it was derived from is [`Self::check`]'s to
    /// say: a request asks after its response, so the record is used at most once after the
    /// cache changed (hop's own changes delete every record at once, [`Self::clear`]).
    pub fn load(&self, key: &str, now: u64) -> Result<LoadedRecord, Miss> {
        let (bytes, file) =
            match crate::private_file::read(&self.file(key), MAX_RECORD_LEN as u64 - 1) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err(Miss::Corrupt(RecordError {
                        offset: MAX_RECORD_LEN,
                        what: "not a regular file of a record's size",
                    }));
                }
                Err(_) => return Err(Miss::Absent),
            };
        let bytes = &bytes[..];
        let (rec, rec_key, stamp) = ConnectRecord::parse(bytes).map_err(Miss::Corrupt)?;
        if rec_key != key.as_bytes() {
            return Err(Miss::OtherKey);
        }
        if rec.expires <= now {
            return Err(Miss::Expired);
        }
        Ok(LoadedRecord {
            record: rec,
            stamp,
            _file: file,
        })
    }

    /// Whether the cache file is still the one `stamp` names (one `statx`).
    pub fn check(&self, stamp: CacheStamp) -> Result<(), Miss> {
        match std::fs::metadata(&self.cache_file) {
            Ok(m) if CacheStamp::of(&m) == stamp => Ok(()),
            Ok(_) => Err(Miss::Stale),
            Err(_) => Err(Miss::Absent),
        }
    }

    /// Keeps `rec` as `key`'s record, derived from the cache file `stamp` names. Written to a
    /// temporary file renamed in place, so a concurrent reader sees the old record or the new.
    pub fn store(&self, key: &str, stamp: CacheStamp, rec: &ConnectRecord) -> io::Result<()> {
        let bytes = rec.to_bytes(key, stamp);
        if bytes.len() >= MAX_RECORD_LEN || key.len() > usize::from(u16::MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "connect record too long",
            ));
        }
        crate::private_file::replace(&self.file(key), &bytes).map(drop)
    }

    /// Deletes `key`'s record (after its connection failed, or its path was forgotten).
    pub fn remove(&self, key: &str) {
        let _ = std::fs::remove_file(self.file(key));
    }

    /// Deletes every record: the cache file changed, so none of them is good any more (they
    /// would be ignored; this keeps the directory from growing).
    pub fn clear(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (ConnectRecord, CacheStamp) {
        // A two-segment SRH (8 + 2 x 16 octets: Hdr Ext Len 4), as the kernel takes it.
        let mut srh = vec![6, 4, 4, 1, 1, 0, 0, 0];
        srh.extend_from_slice(&"fd00:3::2".parse::<Ipv6Addr>().unwrap().octets());
        srh.extend_from_slice(&"fc00:1::ee".parse::<Ipv6Addr>().unwrap().octets());
        (
            ConnectRecord {
                dest: SocketAddrV6::new("fd00:3::2".parse().unwrap(), 8080, 0, 0),
                direct_port: true,
                expires: 0x0102_0304_0506_0708,
                srh,
            },
            CacheStamp {
                device: 0x11,
                inode: 0x22,
                size: 0x33,
                mtime_ns: 0x44,
            },
        )
    }

    #[test]
    fn golden_bytes() {
        let (rec, stamp) = sample();
        let b = rec.to_bytes("k>y:tcp/x", stamp);
        let mut want = Vec::new();
        want.extend_from_slice(b"hopr");
        want.extend_from_slice(&[1, 0x01, 0x1f, 0x90]); // version, flags D, port 8080
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // expires
        for v in [0x11u8, 0x22, 0x33, 0x44] {
            want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, v]);
        }
        want.extend_from_slice(&[0xfd, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend_from_slice(&[0, 9, 0, 40]); // key and SRH lengths
        want.extend_from_slice(b"k>y:tcp/x");
        want.extend_from_slice(&rec.srh);
        assert_eq!(b, want);
        assert_eq!(b.len(), HEADER_LEN + 9 + 40);
    }

    #[test]
    fn parse_reads_back_what_to_bytes_wrote() {
        let (rec, stamp) = sample();
        let b = rec.to_bytes("key", stamp);
        let (r, k, s) = ConnectRecord::parse(&b).unwrap();
        assert_eq!((r, k, s), (rec, &b"key"[..], stamp));
    }

    #[test]
    fn parse_says_what_is_wrong_and_where() {
        let (rec, stamp) = sample();
        let good = rec.to_bytes("key", stamp);
        let offset = |b: &[u8]| ConnectRecord::parse(b).unwrap_err().offset;
        assert_eq!(offset(&good[..10]), 10);
        let mut b = good.clone();
        b[0] = b'x';
        assert_eq!(offset(&b), 0);
        let mut b = good.clone();
        b[4] = 2;
        assert_eq!(offset(&b), 4);
        assert_eq!(offset(&good[..good.len() - 1]), 64);
        let mut b = good.clone();
        b[HEADER_LEN + 3 + 2] = 0; // routing type 0, not 4
        assert_eq!(offset(&b), HEADER_LEN + 3);
        let mut b = good;
        b[HEADER_LEN + 3 + 1] = 5; // Hdr Ext Len says 48 octets, there are 40
        let e = ConnectRecord::parse(&b).unwrap_err();
        assert_eq!(e.offset, HEADER_LEN + 3);
        assert!(e.to_string().contains("segment routing header"), "{e}");
    }

    #[test]
    fn fnv1a64_test_vectors() {
        // From the FNV reference (draft-eastlake-fnv): "" and "a".
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn key_names_what_decides_the_connection() {
        let a = StackAddress::parse("github.com>org>yc:tcp+http+web/users/list").unwrap();
        let b = StackAddress::parse("github.com>org>yc:tcp+http+web/other").unwrap();
        assert_eq!(
            record_key(&a, None, true),
            "github.com>org>yc:tcp+http/web port=- fast-path=on"
        );
        assert_eq!(record_key(&a, None, true), record_key(&b, None, true));
        assert_eq!(
            record_key(&a, Some(7443), false),
            "github.com>org>yc:tcp+http/web port=7443 fast-path=off"
        );
        // The path cache's key and the direct port's, as they are written there.
        let c = StackAddress::parse("[fd00::1]>org:tcp+tls+http+api").unwrap();
        assert_eq!(
            record_key(&c, None, true),
            format!(
                "{}:{} port=- fast-path=on",
                super::super::resolve::cache_key(&c),
                super::super::resolve::direct_port_key(&c)
            )
        );
    }

    fn loaded(store: &RecordStore, key: &str) -> Result<(ConnectRecord, CacheStamp), Miss> {
        store.load(key, 1).map(|l| (l.record, l.stamp))
    }

    #[test]
    fn store_load_and_what_retires_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("paths.json");
        std::fs::write(&cache, b"{}").unwrap();
        let stamp = CacheStamp::of(&std::fs::metadata(&cache).unwrap());
        let store = RecordStore::for_cache(&cache);
        assert_eq!(store.dir(), dir.path().join("paths.json.records"));
        let (rec, _) = sample();
        assert_eq!(loaded(&store, "k"), Err(Miss::Absent));
        store.store("k", stamp, &rec).unwrap();
        assert_eq!(loaded(&store, "k"), Ok((rec.clone(), stamp)));
        assert_eq!(store.check(stamp), Ok(()));
        assert_eq!(store.load("k", rec.expires).unwrap_err(), Miss::Expired);
        // Same file name, another key: written by hand under k's name.
        std::fs::write(store.file("k"), rec.to_bytes("j", stamp)).unwrap();
        assert_eq!(loaded(&store, "k"), Err(Miss::OtherKey));
        std::fs::write(store.file("k"), b"hopr\x01").unwrap();
        assert!(matches!(store.load("k", 1), Err(Miss::Corrupt(_))));
        // The cache file replaced (as PathCache::save does): the record is stale.
        // Longer than the stack buffer (and still a record), and longer than any record.
        let long_key = "k".repeat(600);
        store.store(&long_key, stamp, &rec).unwrap();
        assert_eq!(loaded(&store, &long_key), Ok((rec.clone(), stamp)));
        std::fs::write(store.file("k"), vec![0u8; MAX_RECORD_LEN]).unwrap();
        assert!(matches!(store.load("k", 1), Err(Miss::Corrupt(e)) if e.offset == MAX_RECORD_LEN));
        // The cache file replaced (as PathCache::save does), or gone: not the record's.
        std::fs::write(dir.path().join("new"), b"{}").unwrap();
        std::fs::rename(dir.path().join("new"), &cache).unwrap();
        assert_eq!(store.check(stamp), Err(Miss::Stale));
        std::fs::remove_file(&cache).unwrap();
        assert_eq!(store.check(stamp), Err(Miss::Absent));
        store.store("k", stamp, &rec).unwrap();
        store.remove("k");
        assert_eq!(loaded(&store, "k"), Err(Miss::Absent));
        store.store("k", stamp, &rec).unwrap();
        store.clear();
        assert!(!store.dir().exists());
    }
}
