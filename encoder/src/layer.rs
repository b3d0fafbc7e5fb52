//! Layer words of a stack address and their one-octet wire codes.
//!
//! The wire codes are used by the layer descriptor TLV and by stack reports. They are stable:
//! a code, once given, is never reused for another layer.

use core::fmt;
use core::str::FromStr;

/// One table of the layers: their wire codes (stable, see above) and their words in stack
/// addresses, from which the enum, [`Layer::ALL`] and [`Layer::as_str`] are made so that they
/// cannot disagree.
macro_rules! layers {
    ($( $variant:ident = $code:literal, $word:literal; )*) => {
        /// A protocol layer that may appear before the service name in a stack address.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Layer {
            $( $variant = $code, )*
        }

        impl Layer {
            /// Every layer, in wire-code order.
            pub const ALL: [Layer; [$( $word ),*].len()] = [$( Layer::$variant, )*];

            /// The word used in stack addresses (lower case).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Layer::$variant => $word, )*
                }
            }
        }
    };
}

layers! {
    Tcp = 1, "tcp";
    Udp = 2, "udp";
    Tls = 3, "tls";
    Dtls = 4, "dtls";
    Quic = 5, "quic";
    Http = 6, "http";
    H2 = 7, "h2";
    H3 = 8, "h3";
    Ws = 9, "ws";
    Coap = 10, "coap";
    Mqtt = 11, "mqtt";
    Dns = 12, "dns";
    Raw = 13, "raw";
}

impl Layer {
    /// The one-octet code carried on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The layer for a wire code, if the code is known.
    pub fn from_code(code: u8) -> Option<Layer> {
        Layer::ALL.iter().copied().find(|l| l.code() == code)
    }

    /// Whether this layer is a transport (exactly one per stack address, and it comes first).
    pub const fn is_transport(self) -> bool {
        matches!(self, Layer::Tcp | Layer::Udp)
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The word is not a known layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLayer;

impl FromStr for Layer {
    type Err = UnknownLayer;

    /// Layer words are matched case-insensitively, like DNS names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Layer::ALL
            .iter()
            .copied()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or(UnknownLayer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        for l in Layer::ALL {
            assert_eq!(Layer::from_code(l.code()), Some(l));
            assert_eq!(l.as_str().parse::<Layer>(), Ok(l));
        }
        assert_eq!(Layer::from_code(0), None);
        assert_eq!(Layer::from_code(14), None);
        assert_eq!("TLS".parse::<Layer>(), Ok(Layer::Tls));
        assert_eq!("smtp".parse::<Layer>(), Err(UnknownLayer));
    }
}
