//! Rootless network-namespace testbed.
