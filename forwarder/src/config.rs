//! `hopd` configuration (TOML). The top level is shared by both roles; each role owns its section.
//! (Being written: issues 4 and 5.)

/// The whole hopd configuration file. Each role is configured by its own table and runs only
/// when that table is present.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Config {
    /// `[final_hop]`: see [`crate::final_hop::Config`].
    #[serde(default)]
    pub final_hop: Option<crate::final_hop::Config>,
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }
}
