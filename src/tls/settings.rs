//! The `[tls]` configuration section, and the settings resolved from it.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::TlsError;
use crate::config::Config;
use crate::pki::Layout;

/// `[tls]` in the configuration file; `BHYT_TLS__<KEY>` in the environment.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Mutual TLS on the gRPC listener. Turning it off also needs `dev_plaintext = true`.
    pub enabled: bool,
    /// Development only: serve gRPC in plain text, with a warning in the log. Needs
    /// `enabled = false`: plain text is never the result of one mistyped key.
    pub dev_plaintext: bool,
    /// The private CA's certificate, the only root client certificates may chain to.
    /// Empty: `<data_dir>/pki/ca.pem`.
    pub ca_cert: PathBuf,
    /// The server's certificate chain (PEM). Empty: `<data_dir>/pki/issued/server.pem`.
    pub server_cert: PathBuf,
    /// The server's private key (PEM). Empty: `<data_dir>/pki/issued/server.key`.
    pub server_key: PathBuf,
    /// The CA's CRLs (`*.pem`, `*.crl`, `*.der`). Empty: `<data_dir>/pki/crl`.
    pub crl_dir: PathBuf,
    /// Also accept TLS 1.2 clients (TLS 1.3 only by default).
    pub allow_tls12: bool,
    /// How often the CRL directory is checked for changes.
    pub crl_reload_secs: u64,
    /// A client that has not finished its handshake by then is dropped (and reported).
    pub handshake_timeout_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dev_plaintext: false,
            ca_cert: PathBuf::new(),
            server_cert: PathBuf::new(),
            server_key: PathBuf::new(),
            crl_dir: PathBuf::new(),
            allow_tls12: false,
            crl_reload_secs: 5,
            handshake_timeout_ms: 10_000,
        }
    }
}

/// Resolved paths and limits for [`super::ServerTls`].
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub crl_dir: PathBuf,
    pub allow_tls12: bool,
    pub crl_reload: Duration,
    pub handshake_timeout: Duration,
}

impl TlsSettings {
    /// The settings for mutual TLS, or `None` when plain text was explicitly asked for
    /// (`enabled = false` and `dev_plaintext = true`; logged as a warning). Any other way of
    /// turning TLS off is refused.
    pub fn from_config(config: &Config) -> Result<Option<Self>, TlsError> {
        let tls = &config.tls;
        match (tls.enabled, tls.dev_plaintext) {
            (true, false) => {}
            (false, true) => {
                tracing::warn!(
                    "[tls] dev_plaintext: gRPC is served WITHOUT TLS and WITHOUT client \
                     certificates; any process that reaches the port can act as any station. \
                     Development only."
                );
                return Ok(None);
            }
            (false, false) => {
                return Err(TlsError::Config(
                    "enabled = false needs dev_plaintext = true (development only)".into(),
                ));
            }
            (true, true) => {
                return Err(TlsError::Config(
                    "dev_plaintext = true contradicts enabled = true".into(),
                ));
            }
        }
        let layout = Layout::new(config.data_dir.join("pki"));
        let or = |configured: &PathBuf, default: PathBuf| {
            if configured.as_os_str().is_empty() {
                default
            } else {
                configured.clone()
            }
        };
        Ok(Some(TlsSettings {
            ca_cert: or(&tls.ca_cert, layout.ca_cert()),
            server_cert: or(&tls.server_cert, layout.issued_cert("server")),
            server_key: or(&tls.server_key, layout.issued_key("server")),
            crl_dir: or(&tls.crl_dir, layout.crl_dir()),
            allow_tls12: tls.allow_tls12,
            crl_reload: Duration::from_secs(tls.crl_reload_secs.max(1)),
            handshake_timeout: Duration::from_millis(tls.handshake_timeout_ms.max(1)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_default_under_the_data_dir_and_plain_text_needs_two_keys() {
        let mut config = Config {
            data_dir: PathBuf::from("/srv/bhyt"),
            ..Config::default()
        };
        let settings = TlsSettings::from_config(&config).unwrap().unwrap();
        assert_eq!(settings.ca_cert, PathBuf::from("/srv/bhyt/pki/ca.pem"));
        assert_eq!(
            settings.server_key,
            PathBuf::from("/srv/bhyt/pki/issued/server.key")
        );
        assert_eq!(settings.crl_dir, PathBuf::from("/srv/bhyt/pki/crl"));
        assert!(!settings.allow_tls12);

        config.tls.enabled = false;
        assert!(TlsSettings::from_config(&config).is_err());
        config.tls.dev_plaintext = true;
        assert!(TlsSettings::from_config(&config).unwrap().is_none());
        config.tls.enabled = true;
        assert!(TlsSettings::from_config(&config).is_err());
    }
}
