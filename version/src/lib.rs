//! The version every hopstack binary prints with `--version`, after its own name:
//!
//! ```text
//! hop 0.1.0 (git 1a2b3c4, 2026-12-05)
//! ```
//!
//! The workspace version, the git revision the binary was built from and that revision's
//! commit date (`build.rs` reads them; "unknown" outside a git checkout). A crate of its own
//! so that git is asked once per build, not once per binary crate.

/// `0.1.0 (git 1a2b3c4, 2026-12-05)`, or `0.1.0 (git unknown)` when built outside git.
pub const VERSION: &str = env!("HOPSTACK_VERSION");

/// The workspace version, `0.1.0`.
pub const PACKAGE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The abbreviated git revision, `1a2b3c4`, or `unknown`.
pub const GIT_REVISION: &str = env!("HOPSTACK_GIT_REVISION");

/// The revision's commit date (UTC), `2026-12-05`, or `unknown`.
pub const GIT_DATE: &str = env!("HOPSTACK_GIT_DATE");

/// The revision's commit time (UTC), `20261205093000`, or `unknown`: orders package versions.
pub const GIT_COMMIT_TIME: &str = env!("HOPSTACK_GIT_COMMIT_TIME");
