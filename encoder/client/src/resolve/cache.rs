//! The resolved-path cache file, `paths.json`: read lazily, one entry at a time, and
//! replaced whole by rename.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use hopstack_encoder::address::StackAddress;

use super::PathHop;
use crate::record::{CacheStamp, RecordStore};

/// The cache key of an address: its hops part, as written (`github.com>org>[fd00::1]`).
pub fn cache_key(addr: &StackAddress) -> String {
    addr.hops()
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(">")
}

/// The default cache file: `$XDG_CACHE_HOME/hopstack/paths.json`, else
/// `$HOME/.cache/hopstack/paths.json`; `None` when neither variable is set.
pub fn default_cache_file() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(base.join("hopstack").join("paths.json"))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CacheEntry {
    pub(super) hops: Vec<PathHop>,
    pub(super) expires: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct CacheFile {
    version: u32,
    pub(super) paths: BTreeMap<String, CacheEntry>,
}

/// The resolved-path cache file. Unreadable or corrupt files count as empty (the cache only
/// saves time); writes go to a temporary file renamed over the old one, so a concurrent
/// reader never sees half a file.
///
/// The file is read on first use, not on `open`: a request that connects from its connect
/// record ([`crate::record`]) reads it only after the response, for `-v`/`--json`. A request
/// reads one entry, before it can connect: so the first use only reads the bytes and
/// [`PathCache::get`] deserialises that one entry, skipping the others without building
/// them (with 51 cached paths that took the pre-connect time of a cached `hop get` from
/// ~280 µs to ~100 µs). The whole file is parsed only to change it (`put`, `remove`).
#[derive(Debug)]
pub struct PathCache {
    file: PathBuf,
    loaded: std::sync::OnceLock<Loaded>,
    data: Option<CacheFile>,
    /// The stamp of the file this process last wrote.
    written: Option<CacheStamp>,
}

/// The cache file as read.
#[derive(Debug)]
struct Loaded {
    /// `None` once parsed into [`PathCache::data`] (or if it could not be read).
    raw: Option<Vec<u8>>,
    /// The open file, closed when the cache is dropped (after the request): see
    /// [`read_small`]. Also what [`PathCache::stamp`] asks for the file's identity.
    handle: Option<std::fs::File>,
}

impl PathCache {
    pub fn open(file: impl Into<PathBuf>) -> PathCache {
        PathCache {
            file: file.into(),
            loaded: std::sync::OnceLock::new(),
            data: None,
            written: None,
        }
    }

    fn loaded(&self) -> &Loaded {
        self.loaded.get_or_init(|| {
            let (raw, handle) = read_small(&self.file).ok().unzip();
            Loaded { raw, handle }
        })
    }

    /// Which file the paths this cache handed out came from: the one this process wrote
    /// last, else the one it read (`None` if it read none). A connect record carries it.
    pub fn stamp(&self) -> Option<CacheStamp> {
        self.written.or_else(|| {
            let handle = self.loaded.get()?.handle.as_ref()?;
            handle.metadata().ok().map(|m| CacheStamp::of(&m))
        })
    }

    /// Whether this process wrote the file (so it holds the paths it put).
    pub fn written(&self) -> bool {
        self.written.is_some()
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The cached path for `key` if it has not expired at `now` (Unix seconds).
    pub fn get(&self, key: &str, now: u64) -> Option<(Vec<PathHop>, u64)> {
        let entry = match (&self.data, &self.loaded().raw) {
            (Some(d), _) => d.paths.get(key).cloned(),
            (None, Some(raw)) => one_entry(raw, key),
            (None, None) => None,
        };
        entry
            .filter(|e| e.expires > now)
            .map(|e| (e.hops, e.expires))
    }

    fn data(&mut self) -> &mut CacheFile {
        self.loaded();
        let raw = self.loaded.get_mut().and_then(|l| l.raw.take());
        self.data.get_or_insert_with(|| {
            raw.and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok())
                .filter(|d| d.version == 1)
                .unwrap_or_default()
        })
    }

    /// Stores a path and drops expired entries; then writes the file.
    pub fn put(
        &mut self,
        key: &str,
        hops: &[PathHop],
        expires: u64,
        now: u64,
    ) -> std::io::Result<()> {
        let data = self.data();
        data.paths.retain(|_, e| e.expires > now);
        data.paths.insert(
            key.to_owned(),
            CacheEntry {
                hops: hops.to_vec(),
                expires,
            },
        );
        self.save()
    }

    /// The `udp_ingress` port an unexpired path through `first_hop` goes round at, if one
    /// does: the choice is the first hop's, whatever the address ([`crate::encap`]).
    pub fn udp_ingress(&mut self, first_hop: Ipv6Addr, now: u64) -> Option<u16> {
        self.data()
            .paths
            .values()
            .filter(|e| e.expires > now)
            .filter_map(|e| e.hops.first())
            .find(|h| h.address == first_hop && h.udp_ingress.is_some())
            .and_then(|h| h.udp_ingress)
    }

    /// Forgets `key` (e.g. after a connection over the cached path failed).
    pub fn remove(&mut self, key: &str) -> std::io::Result<()> {
        if self.data().paths.remove(key).is_some() {
            self.save()?;
        }
        Ok(())
    }

    fn save(&mut self) -> std::io::Result<()> {
        let data = self.data();
        data.version = 1;
        // Compact: the next request scans it before connecting.
        let bytes = serde_json::to_vec(data)?;
        let f = crate::private_file::replace(&self.file, &bytes)?;
        // Renaming keeps the inode and the modification time: this is the new file's stamp.
        let stamp = CacheStamp::of(&f.metadata()?);
        self.written = Some(stamp);
        RecordStore::for_cache(&self.file).clear();
        Ok(())
    }
}

/// The largest cache file read (a few thousand paths); a larger one is not hop's.
const MAX_CACHE_FILE: u64 = 8 << 20;

/// Reads the cache file ([`crate::private_file::read`]: a regular file, at most
/// [`MAX_CACHE_FILE`]) and hands it back to be closed later, off the request's way.
pub(super) fn read_small(file: &Path) -> std::io::Result<(Vec<u8>, std::fs::File)> {
    crate::private_file::read(file, MAX_CACHE_FILE)
}

/// `key`'s entry of a cache file, the other entries skipped (`IgnoredAny`: scanned, never
/// built). `None` for a file of another version, or one that does not parse.
pub(super) fn one_entry(raw: &[u8], key: &str) -> Option<CacheEntry> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
    use std::fmt;

    struct File<'k>(&'k str);
    struct Paths<'k>(&'k str);

    impl<'de> Visitor<'de> for File<'_> {
        type Value = Option<CacheEntry>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a hopstack path cache")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let (mut version, mut entry) = (None::<u32>, None);
            while let Some(k) = m.next_key::<String>()? {
                match k.as_str() {
                    "version" => version = Some(m.next_value()?),
                    "paths" => entry = m.next_value_seed(Paths(self.0))?,
                    _ => {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(entry.filter(|_| version == Some(1)))
        }
    }

    impl<'de> DeserializeSeed<'de> for Paths<'_> {
        type Value = Option<CacheEntry>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Paths<'_> {
        type Value = Option<CacheEntry>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of cached paths")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(k) = m.next_key::<String>()? {
                if k == self.0 {
                    found = Some(m.next_value::<CacheEntry>()?);
                } else {
                    m.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }

    let mut de = serde_json::Deserializer::from_slice(raw);
    let entry = de.deserialize_map(File(key)).ok()?;
    de.end().ok()?;
    entry
}
