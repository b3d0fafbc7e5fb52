//! Border policy: what a border forwarder agrees to do with a packet beyond plain RFC 8754
//! End processing. A border sits between networks, so without a policy it is an open relay
//! into the inside: anyone could list an inside address as the next segment.

use core::fmt;
use core::str::FromStr;
use std::net::Ipv6Addr;

/// An IPv6 prefix such as `fd00:2::/48`; a bare address means `/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: Ipv6Addr,
    len: u8,
}

impl Prefix {
    /// The prefix `addr/len`; host bits of `addr` are cleared so that equal prefixes compare
    /// equal. Returns `None` when `len > 128`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Prefix> {
        if len > 128 {
            return None;
        }
        let bits = u128::from(addr) & Self::mask(len);
        Some(Prefix {
            addr: Ipv6Addr::from(bits),
            len,
        })
    }

    fn mask(len: u8) -> u128 {
        if len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(len))
        }
    }

    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `addr` lies inside this prefix.
    pub fn contains(&self, addr: &Ipv6Addr) -> bool {
        u128::from(*addr) & Self::mask(self.len) == u128::from(self.addr)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Why a prefix string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefixError {
    /// The part before `/` is not an IPv6 address.
    BadAddress { text: String },
    /// The part after `/` is not a number in `0..=128`.
    BadLength { text: String },
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::BadAddress { text } => {
                write!(
                    f,
                    "`{text}` is not an IPv6 address (expected e.g. fd00:1::/64)"
                )
            }
            PrefixError::BadLength { text } => {
                write!(f, "prefix length `{text}` is not a number from 0 to 128")
            }
        }
    }
}

impl std::error::Error for PrefixError {}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: Ipv6Addr = a.trim().parse().map_err(|_| PrefixError::BadAddress {
            text: a.to_string(),
        })?;
        let len = match l {
            None => 128,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= 128)
                .ok_or_else(|| PrefixError::BadLength {
                    text: l.to_string(),
                })?,
        };
        Ok(Prefix::new(addr, len).expect("length checked above"))
    }
}

impl serde::Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// HMAC algorithms, numbered like `ip sr hmac set KEYID sha1|sha256` (the kernel's
/// `SEG6_HMAC_ALGO_SHA1 = 1`, `SEG6_HMAC_ALGO_SHA256 = 2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha1,
    Sha256,
}

/// One HMAC key, as `ip sr hmac set ID ALG` would hold it. The same shape serves the
/// border (`[[border.policy.hmac_keys]]`), the final hop (`[[final_hop.hmac_keys]]`) and the
/// client's `hop --hmac-key-file`.
#[derive(Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HmacKey {
    pub id: u32,
    pub algorithm: HmacAlgorithm,
    /// The shared secret, as typed into `ip sr hmac set` (used as raw bytes).
    pub secret: String,
    /// Who holds the key, as the final hop tells its services (`authenticated.name`). The
    /// final hop requires it; a border does not use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl HmacKey {
    /// The wire core's algorithm for this key.
    pub fn wire_algorithm(&self) -> hopstack_encoder::wire::hmac::Algorithm {
        match self.algorithm {
            HmacAlgorithm::Sha1 => hopstack_encoder::wire::hmac::Algorithm::Sha1,
            HmacAlgorithm::Sha256 => hopstack_encoder::wire::hmac::Algorithm::Sha256,
        }
    }
}

/// The first key id listed twice in `keys`, if any (a key table maps one id to one key).
pub fn duplicate_key_id(keys: &[HmacKey]) -> Option<u32> {
    let mut ids: Vec<u32> = keys.iter().map(|k| k.id).collect();
    ids.sort_unstable();
    ids.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

impl fmt::Debug for HmacKey {
    // Secrets must not end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacKey")
            .field("id", &self.id)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .field("name", &self.name)
            .finish()
    }
}

/// Policy knobs. The defaults make a border that is not an open relay: it forwards to the
/// addresses hop names resolve to in its own view, and to addresses written in the Segment
/// List only inside `allowed_next_hops`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Packets whose SRH lists more segments than this are dropped (`too-many-segments`).
    pub max_segments: u8,
    /// Where packets may go on to. Empty (the default): only to an address a hop name
    /// resolved to here; a segment written as an address is refused. Otherwise the next
    /// segment, bound or written, and every later written one must fall in one of these
    /// prefixes. A refused packet is dropped (`next-hop-denied`) and the source gets ICMPv6
    /// Destination Unreachable code 1 (administratively prohibited). `::/0` makes the border
    /// an open relay; `hopd check` warns about it.
    pub allowed_next_hops: Vec<Prefix>,
    /// Require a valid HMAC TLV (RFC 8754 §2.1.2) on every SRH with Segments Left > 0.
    pub require_hmac: bool,
    /// Keys for HMAC verification, by key id.
    pub hmac_keys: Vec<HmacKey>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_segments: 16,
            allowed_next_hops: Vec::new(),
            require_hmac: false,
            hmac_keys: Vec::new(),
        }
    }
}

impl Policy {
    /// Whether the policy lets a packet go on to `next`: an address a hop name resolved to
    /// in this border's view (`resolved`), or one written in the Segment List.
    pub fn next_hop_allowed(&self, next: &Ipv6Addr, resolved: bool) -> bool {
        if self.allowed_next_hops.is_empty() {
            return resolved;
        }
        self.allowed_next_hops.iter().any(|p| p.contains(next))
    }

    /// Whether anyone may send packets through this border to any address (`::/0` in
    /// `allowed_next_hops`).
    pub fn is_open_relay(&self) -> bool {
        self.allowed_next_hops.iter().any(|p| p.prefix_len() == 0)
    }

    pub fn hmac_key(&self, id: u32) -> Option<&HmacKey> {
        self.hmac_keys.iter().find(|k| k.id == id)
    }
}

/// Addresses no packet is sent on to, whatever the policy, literal or resolved: loopback,
/// unspecified, multicast, link-local (no zone to pick) and IPv4-mapped. hopd drops them
/// (`next-hop-denied`); the in-kernel End leaves them to hopd.
pub const NEVER_NEXT_HOPS: [(u128, u8); 5] = [
    (1, 128),            // ::1
    (0, 128),            // ::
    (0xff00 << 112, 8),  // ff00::/8
    (0xfe80 << 112, 10), // fe80::/10
    (0xffff << 32, 96),  // ::ffff:0:0/96
];

/// Whether `a` is one of [`NEVER_NEXT_HOPS`].
#[inline]
pub fn never_a_next_hop(a: u128) -> bool {
    // Nearly every next hop is global unicast (2000::/3) or unique local (fc00::/7), none of
    // which is special: one comparison on the packet path.
    let top = (a >> 120) as u8;
    if top & 0xe0 == 0x20 || top & 0xfe == 0xfc {
        return false;
    }
    in_never_next_hops(a)
}

#[cold]
fn in_never_next_hops(a: u128) -> bool {
    NEVER_NEXT_HOPS
        .iter()
        .any(|&(p, len)| (a ^ p) >> (128 - u32::from(len)) == 0)
}

/// [`NEVER_NEXT_HOPS`] as prefixes.
pub fn never_next_hop_prefixes() -> Vec<Prefix> {
    NEVER_NEXT_HOPS
        .iter()
        .map(|&(p, len)| Prefix::new(Ipv6Addr::from(p), len).expect("valid prefix"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_parse_and_contains() {
        let p: Prefix = "fd00:2::1/48".parse().unwrap();
        assert_eq!(p.to_string(), "fd00:2::/48");
        assert!(p.contains(&"fd00:2:0:ffff::9".parse().unwrap()));
        assert!(!p.contains(&"fd00:3::1".parse().unwrap()));
        let host: Prefix = "fd00::5".parse().unwrap();
        assert_eq!(host.prefix_len(), 128);
        assert!(host.contains(&"fd00::5".parse().unwrap()));
        assert!(!host.contains(&"fd00::6".parse().unwrap()));
        let all: Prefix = "::/0".parse().unwrap();
        assert!(all.contains(&"2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn prefix_errors_say_what_was_wrong() {
        assert_eq!(
            "fd00::/129".parse::<Prefix>(),
            Err(PrefixError::BadLength { text: "129".into() })
        );
        assert_eq!(
            "10.0.0.0/8".parse::<Prefix>(),
            Err(PrefixError::BadAddress {
                text: "10.0.0.0".into()
            })
        );
    }

    #[test]
    fn empty_allow_list_allows_only_resolved_names() {
        let mut p = Policy::default();
        let outside = "2001:db8::1".parse().unwrap();
        assert!(p.next_hop_allowed(&outside, true));
        assert!(!p.next_hop_allowed(&outside, false));
        assert!(!p.is_open_relay());
        p.allowed_next_hops.push("fd00::/8".parse().unwrap());
        assert!(!p.next_hop_allowed(&outside, false));
        assert!(!p.next_hop_allowed(&outside, true));
        assert!(p.next_hop_allowed(&"fd12::1".parse().unwrap(), false));
        p.allowed_next_hops.push("::/0".parse().unwrap());
        assert!(p.is_open_relay());
        assert!(p.next_hop_allowed(&outside, false));
    }
}
