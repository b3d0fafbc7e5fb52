//! Stack-address grammar: `hops ":" layers ["/" path]`.
//!
//! (Being written: see issue 2.)

/// A parsed stack address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackAddress {}

/// A stack-address syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError {}

impl AddressError {
    /// The error with the input and a caret under the offending byte.
    pub fn render(&self, input: &str) -> String {
        format!("invalid stack address: {input}")
    }
}

impl StackAddress {
    pub fn parse(_input: &str) -> Result<StackAddress, AddressError> {
        Err(AddressError {})
    }
}
