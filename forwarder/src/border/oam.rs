//! The parts of border processing that read hopstack's own TLVs: the trace record a hop fills
//! (type 252), the stack report sent when a name cannot be bound, and HMAC verification
//! (type 5). The TLV layouts are defined by `hopstack_encoder::wire::{tlv, hmac, report}`.

use core::time::Duration;

use super::policy::Policy;
use super::process::DropReason;

/// Fill this hop's record in the trace TLV, in place. Returns whether a record was filled.
pub(crate) fn fill_trace(
    _pkt: &mut [u8],
    _area: (usize, usize),
    _segment: u8,
    _bound: bool,
    _now: Duration,
    _node_id: u32,
) -> bool {
    // Pending the trace TLV view of `hopstack_encoder::wire::tlv`.
    false
}

/// Build a stack report for a failed binding into `out`; returns its length (0: none).
pub(crate) fn build_report(
    _pkt: &[u8],
    _srh: usize,
    _area: (usize, usize),
    _segment: u8,
    _name: (usize, usize),
    _reason: DropReason,
    _out: &mut [u8],
) -> usize {
    // Pending `hopstack_encoder::wire::report`.
    0
}

/// Verify the HMAC TLV of the SRH at `srh` against the policy's keys.
pub(crate) fn verify_hmac(
    _pkt: &[u8],
    _srh: usize,
    _area: (usize, usize),
    _policy: &Policy,
) -> Result<(), DropReason> {
    // Pending `hopstack_encoder::wire::hmac`; until then a required HMAC never verifies.
    Err(DropReason::HmacMissing)
}
