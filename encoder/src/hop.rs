//! Which hop of a stack address something is about: the one type the client's errors, the
//! final hop's failures and their reports name a hop with.

use core::fmt;
use std::net::Ipv6Addr;

/// A hop by position, name and (when known) address.
///
/// `index` counts from 0 as the wire does (stack reports); people count from 1
/// ([`HopRef::number`]), and `Display` prints that: `hop 3 'yc' (fd00:3::2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopRef {
    /// Position in the stack address, 0 = first hop.
    pub index: usize,
    /// The name from the stack address; empty for a literal.
    pub name: String,
    /// The address, when known.
    pub address: Option<Ipv6Addr>,
}

impl HopRef {
    /// The hop's number as people count it: 1 for the first hop of the stack address.
    pub fn number(&self) -> usize {
        self.index + 1
    }

    /// The index as a stack report carries it (one octet).
    pub fn wire_index(&self) -> u8 {
        u8::try_from(self.index).unwrap_or(u8::MAX)
    }
}

impl fmt::Display for HopRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hop {}", self.number())?;
        if !self.name.is_empty() {
            write!(f, " '{}'", self.name)?;
        }
        if let Some(a) = self.address {
            write!(f, " ({a})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_are_numbered_from_one_for_people() {
        let h = HopRef {
            index: 2,
            name: "yc".into(),
            address: Some("fd00:3::2".parse().unwrap()),
        };
        assert_eq!((h.number(), h.wire_index()), (3, 2));
        assert_eq!(h.to_string(), "hop 3 'yc' (fd00:3::2)");
        let literal = HopRef {
            index: 0,
            name: String::new(),
            address: None,
        };
        assert_eq!(literal.to_string(), "hop 1");
    }
}
