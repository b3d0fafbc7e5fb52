//! Signing the SRH: `--hmac-key-file FILE` adds the RFC 8754 HMAC TLV, computed as the Linux
//! kernel computes it (`hopstack_encoder::wire::hmac`), over the source address the kernel
//! will send from and the segment list. The final hop's hopd verifies it with the same key
//! (`[[final_hop.hmac_keys]]`) and tells the service who signed; a border with
//! `require_hmac` checks it too.
//!
//! The key file holds one key in the shape of hopd's key tables (`[[border.policy.hmac_keys]]`,
//! `[[final_hop.hmac_keys]]`), the id and algorithm `ip sr hmac set ID ALG` takes:
//!
//! ```toml
//! id = 7
//! algorithm = "sha256"   # sha1 | sha256
//! secret = "..."
//! ```
//!
//! The secret never goes on the command line (where `ps` shows it); the file must not be
//! readable by group or others, as ssh asks of a private key.

use std::fmt;
use std::net::Ipv6Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hopstack_encoder::wire::hmac::{self, Algorithm};
use hopstack_encoder::wire::srh::{Packet, SrhRepr};
use hopstack_encoder::wire::tlv::TlvRepr;

use crate::error::ClientError;

/// A key to sign with.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub id: u32,
    pub algorithm: Algorithm,
    secret: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    // The secret must not end up in logs or `-v` output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    id: u32,
    algorithm: String,
    secret: String,
    /// Allowed so that an entry of hopd's table can be copied as it is; not used here.
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
}

/// Most octets a key file may have.
const MAX_KEY_FILE: u64 = 64 * 1024;

impl SigningKey {
    pub fn new(id: u32, algorithm: Algorithm, secret: &[u8]) -> SigningKey {
        SigningKey {
            id,
            algorithm,
            secret: secret.to_vec(),
        }
    }

    /// Reads `--hmac-key-file FILE`; errors are usage errors naming the file.
    pub fn load(path: &Path) -> Result<SigningKey, ClientError> {
        let bad =
            |why: String| ClientError::usage(format!("--hmac-key-file {}: {why}", path.display()));
        let (bytes, file) =
            crate::private_file::read(path, MAX_KEY_FILE).map_err(|e| bad(e.to_string()))?;
        let mode = file
            .metadata()
            .map_err(|e| bad(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "mode {:o} lets others read the secret; chmod 600 it",
                mode & 0o777
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".to_owned()))?;
        SigningKey::parse(&text).map_err(bad)
    }

    /// The key in `text` (the file format above).
    pub fn parse(text: &str) -> Result<SigningKey, String> {
        let k: KeyFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let algorithm = match k.algorithm.as_str() {
            "sha1" => Algorithm::Sha1,
            "sha256" => Algorithm::Sha256,
            other => {
                return Err(format!(
                    "algorithm `{other}` is not one of sha1, sha256 (as `ip sr hmac set` takes)"
                ));
            }
        };
        if k.secret.is_empty() {
            return Err("the secret is empty".to_owned());
        }
        Ok(SigningKey::new(k.id, algorithm, k.secret.as_bytes()))
    }
}

/// The address the kernel sends `srh` to first (`Segment List[Segments Left]`), whose route
/// decides the source address.
pub fn first_hop(srh: &[u8]) -> Option<Ipv6Addr> {
    let p = Packet::new_checked(srh).ok()?;
    p.segment(usize::from(p.segments_left()))
}

/// `srh` with an HMAC TLV signed by `key` for packets from `src`; `None` when it lists
/// segments still to be bound by a hop (hop-names TLV): those hops rewrite the segments the
/// HMAC covers, so no signature made here could verify.
pub fn sign(srh: &[u8], key: &SigningKey, src: Ipv6Addr) -> Result<Option<Vec<u8>>, String> {
    let view = Packet::new_checked(srh).map_err(|e| format!("SRH: {e}"))?;
    let mut repr = SrhRepr::parse(&view).map_err(|e| format!("SRH: {e}"))?;
    if repr
        .tlvs
        .iter()
        .any(|t| matches!(t, TlvRepr::HopNames(h) if !h.entries.is_empty()))
    {
        return Ok(None);
    }
    // One signature: drop one the header may carry already.
    repr.tlvs.retain(|t| !matches!(t, TlvRepr::Hmac(_)));
    repr.add_hmac_placeholder(key.id);
    let mut bytes = repr.to_bytes().map_err(|e| format!("SRH: {e}"))?;
    hmac::sign(
        key.algorithm,
        &key.secret,
        &src,
        &mut Packet::new_unchecked(&mut bytes[..]),
    )
    .map_err(|e| e.to_string())?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hopstack_encoder::Layer;
    use hopstack_encoder::wire::tlv::{HopName, HopNames, LayerDescriptor};

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x10);
    const FINAL: Ipv6Addr = Ipv6Addr::new(0xfd00, 3, 0, 0, 0, 0, 0, 2);
    const FIRST: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);

    fn repr() -> SrhRepr {
        SrhRepr {
            next_header: 6,
            segments_left: 1,
            flags: 0,
            tag: 0,
            segments: vec![FINAL, FIRST],
            tlvs: vec![TlvRepr::LayerDescriptor(LayerDescriptor {
                layers: vec![Layer::Tcp, Layer::Http],
                service: "who".into(),
            })],
        }
    }

    #[test]
    fn signed_headers_verify_for_their_source_only() {
        let key = SigningKey::new(7, Algorithm::Sha256, b"s3cret");
        let bytes = repr().to_bytes().unwrap();
        assert_eq!(first_hop(&bytes), Some(FIRST));
        let signed = sign(&bytes, &key, SRC).unwrap().unwrap();
        let view = Packet::new_checked(&signed[..]).unwrap();
        assert_eq!(hmac::key_id(&view), Ok(7));
        hmac::verify(Algorithm::Sha256, b"s3cret", 7, &SRC, &view).unwrap();
        assert!(hmac::verify(Algorithm::Sha256, b"s3cret", 7, &FIRST, &view).is_err());
        assert!(hmac::verify(Algorithm::Sha256, b"guess", 7, &SRC, &view).is_err());
        // The rest of the header is what it was.
        let back = SrhRepr::parse(&view).unwrap();
        assert_eq!(back.segments, repr().segments);
        assert_eq!(back.layer_descriptor(), repr().layer_descriptor());
        // Signing a signed header replaces the signature.
        let again = sign(&signed, &SigningKey::new(9, Algorithm::Sha1, b"x"), SRC)
            .unwrap()
            .unwrap();
        assert_eq!(again.len(), signed.len());
        let view = Packet::new_checked(&again[..]).unwrap();
        hmac::verify(Algorithm::Sha1, b"x", 9, &SRC, &view).unwrap();
    }

    #[test]
    fn names_still_to_bind_are_not_signed() {
        let mut r = repr();
        r.tlvs.push(TlvRepr::HopNames(HopNames {
            entries: vec![HopName {
                index: 0,
                name: "yc".into(),
            }],
        }));
        let key = SigningKey::new(7, Algorithm::Sha256, b"s3cret");
        assert_eq!(sign(&r.to_bytes().unwrap(), &key, SRC), Ok(None));
    }

    #[test]
    fn key_files_say_what_is_wrong() {
        let k = SigningKey::parse("id = 7\nalgorithm = \"sha256\"\nsecret = \"s\"\n").unwrap();
        assert_eq!((k.id, k.algorithm), (7, Algorithm::Sha256));
        assert!(!format!("{k:?}").contains("\"s\""));
        let e = SigningKey::parse("id = 7\nalgorithm = \"md5\"\nsecret = \"s\"\n").unwrap_err();
        assert!(e.contains("`md5`"), "{e}");
        let e = SigningKey::parse("id = 7\nalgorithm = \"sha1\"\n").unwrap_err();
        assert!(e.contains("secret"), "{e}");
        let e = SigningKey::parse("id = 7\nalgorithm = \"sha1\"\nsecret = \"\"\n").unwrap_err();
        assert!(e.contains("empty"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key.toml");
        std::fs::write(&f, "id = 7\nalgorithm = \"sha1\"\nsecret = \"s\"\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SigningKey::load(&f).unwrap_err();
        assert!(
            e.message.contains("chmod 600") && e.message.contains("key.toml"),
            "{e}"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(SigningKey::load(&f).unwrap().id, 7);
    }
}
