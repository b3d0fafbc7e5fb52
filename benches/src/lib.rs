//! Shared inputs for the criterion benches and the dataplane harness.
