//! Where the API is and who we are: flags, then the environment (`FILES_API_URL`, `FILES_TOKEN`),
//! then the config file, then the local stack's defaults.
//!
//! The config file is TOML, `$FILES_CONFIG` or `<config dir>/files/config.toml`
//! (`~/.config/files/config.toml` on Linux):
//!
//! ```toml
//! api_url = "https://abc123.execute-api.eu-west-1.amazonaws.com"
//! token = "eyJ..."
//! jobs = 8
//! ```

use crate::exit::Failure;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// What `scripts/run` serves.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:3000";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub api_url: Option<String>,
    pub token: Option<String>,
    pub jobs: Option<usize>,
}

pub fn config_path() -> Option<PathBuf> {
    match std::env::var_os("FILES_CONFIG") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => dirs::config_dir().map(|d| d.join("files").join("config.toml")),
    }
}

/// The config file, if there is one.
pub fn load() -> Result<FileConfig, Failure> {
    let Some(path) = config_path() else {
        return Ok(FileConfig::default());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| Failure::usage(format!("{}: {}", path.display(), e.message()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(Failure::local(format!("{}: {e}", path.display()))),
    }
}

/// True when `url` points at this machine: only then may the CLI ask for a development token.
pub fn is_loopback(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_is_loopback() {
        assert!(is_loopback("http://127.0.0.1:3000"));
        assert!(is_loopback("http://localhost:3000/"));
        assert!(is_loopback("http://[::1]:3000"));
        assert!(!is_loopback(
            "https://abc.execute-api.eu-west-1.amazonaws.com"
        ));
        assert!(!is_loopback("http://127.0.0.1.example.com"));
    }
}
