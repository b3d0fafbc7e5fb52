//! Who sent an arrival: the SRH HMAC (RFC 8754 §2.1.2, in the Linux kernel's layout and
//! computation, `hopstack_encoder::wire::hmac`) checked with the final hop's own key table
//! (`[[final_hop.hmac_keys]]`, the ids and algorithms of `ip sr hmac set`).
//!
//! The decision is a pure function of the Routing header's octets, the packet's real source
//! address (the kernel's, for TCP the accepted socket's peer: the HMAC covers it, so a
//! signature replayed from another address does not verify) and the keys:
//!
//! | the SRH carries                         | result                                  |
//! |-----------------------------------------|-----------------------------------------|
//! | no H flag and no HMAC TLV (type 5)      | unauthenticated (`Ok(None)`)            |
//! | an HMAC that verifies under a known key | `Ok(Some(Authenticated { key_id, name }))` |
//! | an unknown key id, a wrong HMAC, an H flag without the TLV or a TLV without the flag | refused (`hmac-invalid`) |
//!
//! A signature that does not verify is never treated as "unsigned": whoever forged or
//! mangled it is refused whether or not the service requires a signature. Then
//! [`admit`] applies the service's `require_hmac`.

use std::net::Ipv6Addr;

use hopstack_encoder::wire::hmac;
use hopstack_encoder::wire::srh::Packet;
use hopstack_encoder::wire::tlv::TYPE_HMAC;

use super::Reason;
use crate::border::policy::HmacKey;
use crate::service::Authenticated;

/// Why an arrival's signature is refused (reason `hmac-invalid`): a sentence for the client.
pub type Invalid = String;

/// The signer of the SRH `rthdr` sent from `src`, under `keys`; see the module table.
pub fn authenticate(
    rthdr: &[u8],
    src: &Ipv6Addr,
    keys: &[HmacKey],
) -> Result<Option<Authenticated>, Invalid> {
    let view = Packet::new_checked(rthdr).map_err(|e| format!("SRH: {e}"))?;
    let has_tlv = view.find_tlv(TYPE_HMAC).is_some();
    if !view.hmac_flag() && !has_tlv {
        return Ok(None);
    }
    if !view.hmac_flag() {
        // The kernel would not look at it; a verifier that did would disagree with every
        // kernel on the path about whether the packet is signed.
        return Err("an HMAC TLV without the SRH's H flag (0x08)".to_owned());
    }
    let key_id = hmac::key_id(&view).map_err(|e| e.to_string())?;
    let Some(key) = keys.iter().find(|k| k.id == key_id) else {
        return Err(format!("HMAC key id {key_id} is not one this hop knows"));
    };
    hmac::verify(
        key.wire_algorithm(),
        key.secret.as_bytes(),
        key_id,
        src,
        &view,
    )
    .map_err(|e| format!("{e} for source {src}"))?;
    Ok(Some(Authenticated {
        key_id,
        name: key.name.clone().unwrap_or_default(),
    }))
}

/// Applies a service's `require_hmac` to [`authenticate`]'s result: what the service is told,
/// or the reason and sentence the request is refused with (layer `route`: the SRH is what
/// failed).
pub fn admit(
    signed: Result<Option<Authenticated>, Invalid>,
    require_hmac: bool,
    service: &str,
) -> Result<Option<Authenticated>, (Reason, String)> {
    match signed {
        Err(why) => Err((Reason::HmacInvalid, why)),
        Ok(None) if require_hmac => Err((
            Reason::HmacRequired,
            format!("service `{service}` accepts only requests with a valid SRH HMAC"),
        )),
        Ok(a) => Ok(a),
    }
}

/// [`admit`] for a probe: `Ok` means answer it. A probe whose path still had names to bind
/// (`names_bound_on_the_way`) cannot carry a valid signature (the borders rewrote segments
/// the HMAC covers), so `require_hmac` holds it only when it had none; a signature that does
/// not verify is refused either way.
pub fn admit_probe(
    signed: Result<Option<Authenticated>, Invalid>,
    require_hmac: bool,
    names_bound_on_the_way: bool,
    service: &str,
) -> Result<(), (Reason, String)> {
    admit(signed, require_hmac && !names_bound_on_the_way, service).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::border::policy::HmacAlgorithm;
    use hopstack_encoder::Layer;
    use hopstack_encoder::wire::srh::{FLAG_H, SrhRepr};
    use hopstack_encoder::wire::tlv::{HmacTlv, LayerDescriptor, TlvRepr};

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x10);
    const FINAL: Ipv6Addr = Ipv6Addr::new(0xfd00, 3, 0, 0, 0, 0, 0, 2);
    const FIRST: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);

    fn keys() -> Vec<HmacKey> {
        vec![
            HmacKey {
                id: 7,
                algorithm: HmacAlgorithm::Sha256,
                secret: "s3cret".into(),
                name: Some("alice".into()),
            },
            HmacKey {
                id: 9,
                algorithm: HmacAlgorithm::Sha1,
                secret: "other".into(),
                name: Some("bob".into()),
            },
        ]
    }

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

    /// `repr()` signed with `secret` under `key_id`, sent from `src`.
    fn signed(key_id: u32, alg: hmac::Algorithm, secret: &str, src: Ipv6Addr) -> Vec<u8> {
        let mut r = repr();
        r.add_hmac_placeholder(key_id);
        let mut b = r.to_bytes().unwrap();
        hmac::sign(
            alg,
            secret.as_bytes(),
            &src,
            &mut Packet::new_unchecked(&mut b[..]),
        )
        .unwrap();
        b
    }

    #[test]
    fn unsigned_is_unauthenticated_and_required_refuses_it() {
        let b = repr().to_bytes().unwrap();
        assert_eq!(authenticate(&b, &SRC, &keys()), Ok(None));
        assert_eq!(admit(Ok(None), false, "who"), Ok(None));
        let (reason, why) = admit(Ok(None), true, "who").unwrap_err();
        assert_eq!(reason, Reason::HmacRequired);
        assert!(why.contains("`who`"), "{why}");
    }

    #[test]
    fn probes_are_held_to_require_hmac_only_when_they_could_be_signed() {
        assert_eq!(admit_probe(Ok(None), true, true, "who"), Ok(()));
        assert_eq!(
            admit_probe(Ok(None), true, false, "who").unwrap_err().0,
            Reason::HmacRequired
        );
        assert_eq!(admit_probe(Ok(None), false, false, "who"), Ok(()));
        for names in [false, true] {
            let r = admit_probe(Err("forged".into()), false, names, "who");
            assert_eq!(r.unwrap_err().0, Reason::HmacInvalid);
        }
    }

    #[test]
    fn a_known_key_authenticates_with_its_id_and_name() {
        let b = signed(7, hmac::Algorithm::Sha256, "s3cret", SRC);
        let want = Authenticated {
            key_id: 7,
            name: "alice".into(),
        };
        assert_eq!(authenticate(&b, &SRC, &keys()), Ok(Some(want.clone())));
        assert_eq!(
            admit(authenticate(&b, &SRC, &keys()), true, "who"),
            Ok(Some(want))
        );
        let b = signed(9, hmac::Algorithm::Sha1, "other", SRC);
        assert_eq!(
            authenticate(&b, &SRC, &keys()).unwrap().unwrap().name,
            "bob"
        );
    }

    #[test]
    fn forged_unknown_or_replayed_signatures_are_refused_required_or_not() {
        let cases = [
            // Wrong secret.
            (
                signed(7, hmac::Algorithm::Sha256, "guess", SRC),
                SRC,
                "does not match",
            ),
            // Right secret, wrong algorithm.
            (
                signed(7, hmac::Algorithm::Sha1, "s3cret", SRC),
                SRC,
                "does not match",
            ),
            // A key id this hop does not hold.
            (
                signed(8, hmac::Algorithm::Sha256, "s3cret", SRC),
                SRC,
                "key id 8",
            ),
            // Signed for another source address, sent from this one.
            (
                signed(7, hmac::Algorithm::Sha256, "s3cret", FIRST),
                SRC,
                "does not match",
            ),
        ];
        for (b, src, says) in cases {
            let r = authenticate(&b, &src, &keys());
            let why = r.clone().unwrap_err();
            assert!(why.contains(says), "{why}");
            for required in [false, true] {
                let (reason, _) = admit(r.clone(), required, "who").unwrap_err();
                assert_eq!(reason, Reason::HmacInvalid);
            }
        }
        // No keys at all: every signature is one this hop cannot check.
        let b = signed(7, hmac::Algorithm::Sha256, "s3cret", SRC);
        assert!(authenticate(&b, &SRC, &[]).is_err());
    }

    #[test]
    fn half_signed_headers_are_refused() {
        // H flag without the TLV.
        let mut r = repr();
        r.flags |= FLAG_H;
        let b = r.to_bytes().unwrap();
        assert!(
            authenticate(&b, &SRC, &keys())
                .unwrap_err()
                .contains("HMAC TLV")
        );
        // The TLV without the H flag.
        let mut r = repr();
        r.tlvs.push(TlvRepr::Hmac(HmacTlv::placeholder(7)));
        let b = r.to_bytes().unwrap();
        assert!(
            authenticate(&b, &SRC, &keys())
                .unwrap_err()
                .contains("H flag")
        );
    }

    /// A golden value: HMAC-SHA256 over the kernel's input (source, Last Entry, flags, key
    /// id, segments), computed here by hand from the layout in `seg6_hmac.c` rather than with
    /// the wire core, so a change in either shows. (The kernel itself signs in
    /// `tests/final_hop_auth.rs` where it holds the key.)
    #[test]
    fn golden_hmac_matches_the_kernel_layout() {
        use ::hmac::{Hmac, Mac};
        let b = signed(7, hmac::Algorithm::Sha256, "s3cret", SRC);
        let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(b"s3cret").unwrap();
        m.update(&SRC.octets());
        m.update(&[1, FLAG_H]); // Last Entry 1, flags: H
        m.update(&7u32.to_be_bytes());
        m.update(&FINAL.octets());
        m.update(&FIRST.octets());
        let want = m.finalize().into_bytes();
        assert_eq!(&b[b.len() - 32..], &want[..]);
    }
}
