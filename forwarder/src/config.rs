//! `hopd` configuration (TOML). The top level is shared by both roles; each role owns its section.
//! (Being written: issues 4 and 5.)
