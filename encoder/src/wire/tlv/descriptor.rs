//! The layer descriptor TLV (type 124): the layers the final hop unfolds and the service name.

use super::{MAX_VALUE_LEN, TYPE_LAYER_DESCRIPTOR, check_ascii_name, check_ascii_name_emit};
use crate::layer::Layer;
use crate::wire::srh::Error;

/// What the final hop must unfold: the layers (outermost first) and the service name.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Type = 124   |    Length     |  Version = 1  |  Flags = 0    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Layer Count  |  Layer codes (Layer Count octets, outermost  ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ... first)      | Service Len   |  Service name (ASCII, 1..63) ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Layer codes are [`Layer::code`]. Length must equal `4 + count + service len` exactly.
/// Flags: none defined; sent as 0, ignored on receipt (so a future flag does not make old
/// final hops refuse the request). An unknown version or layer code is an error: the final
/// hop cannot honour a stack it does not understand and says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDescriptor {
    pub layers: Vec<Layer>,
    pub service: String,
}

impl LayerDescriptor {
    pub const VERSION: u8 = 1;
    /// Longest service name, as in a DNS label.
    pub const MAX_SERVICE_LEN: usize = 63;

    pub(super) fn value_len(&self) -> usize {
        4 + self.layers.len() + self.service.len()
    }

    /// `v0` is the SRH offset of the first value octet, for error positions.
    pub(super) fn parse(v: &[u8], v0: usize) -> Result<LayerDescriptor, Error> {
        const T: u8 = TYPE_LAYER_DESCRIPTOR;
        if v.len() < 3 {
            return Err(Error::Truncated {
                what: "layer descriptor version, flags and layer count",
                needed: 3,
                got: v.len(),
                at: v0,
            });
        }
        if v[0] != Self::VERSION {
            return Err(Error::UnsupportedTlvVersion {
                tlv_type: T,
                at: v0,
                found: v[0],
            });
        }
        let count = v[2] as usize;
        let svc_len_at = 3 + count;
        if v.len() < svc_len_at + 1 {
            return Err(Error::Truncated {
                what: "layer descriptor layer codes and service length",
                needed: count + 1,
                got: v.len() - 3,
                at: v0 + 3,
            });
        }
        let mut layers = Vec::with_capacity(count);
        for (i, &code) in v[3..svc_len_at].iter().enumerate() {
            let layer = Layer::from_code(code).ok_or(Error::UnknownLayerCode {
                code,
                at: v0 + 3 + i,
            })?;
            layers.push(layer);
        }
        let svc_len = v[svc_len_at] as usize;
        let svc = &v[svc_len_at + 1..];
        if svc.len() != svc_len {
            return Err(Error::BadTlvField {
                tlv_type: T,
                at: v0 + svc_len_at,
                what: "service length",
                reason: "does not match the octets left in the TLV",
            });
        }
        check_ascii_name(
            svc,
            Self::MAX_SERVICE_LEN,
            T,
            "service name",
            v0 + svc_len_at + 1,
        )?;
        Ok(LayerDescriptor {
            layers,
            // check_ascii_name admitted ASCII only.
            service: svc.iter().map(|&b| b as char).collect(),
        })
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        check_ascii_name_emit(
            &self.service,
            Self::MAX_SERVICE_LEN,
            TYPE_LAYER_DESCRIPTOR,
            "service name",
        )?;
        if self.layers.len() > MAX_VALUE_LEN {
            return Err(Error::InvalidTlvField {
                tlv_type: TYPE_LAYER_DESCRIPTOR,
                what: "layer count",
                reason: "exceeds 255",
            });
        }
        Ok(())
    }

    pub(super) fn emit_value(&self, v: &mut [u8]) {
        v[0] = Self::VERSION;
        v[1] = 0;
        v[2] = self.layers.len() as u8;
        for (o, l) in v[3..].iter_mut().zip(&self.layers) {
            *o = l.code();
        }
        let at = 3 + self.layers.len();
        v[at] = self.service.len() as u8;
        v[at + 1..].copy_from_slice(self.service.as_bytes());
    }
}
