//! Configuration: one TOML file, overridable by environment variables `BHYT_<KEY>` (nested keys
//! joined by `__`, e.g. `BHYT_CACHE__REDIS_URL`). Every key has a default that runs on one machine
//! with nothing else installed: SQLite under the data directory and no Redis.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the embedded databases and keys live.
    pub data_dir: PathBuf,
    /// The gRPC listener.
    pub listen: SocketAddr,
    /// Plain HTTP for operators: `/metrics` (Prometheus) and `/health`.
    pub http_listen: SocketAddr,
    /// Logs as JSON lines instead of human-readable text.
    pub log_json: bool,
    pub registry: RegistryConfig,
    pub audit: AuditConfig,
    pub cache: CacheConfig,
    pub limits: Limits,
    pub abuse: crate::abuse::AbuseConfig,
    /// Mutual TLS on the gRPC listener (`[tls]`, see `crate::tls::TlsConfig`).
    pub tls: crate::tls::TlsConfig,
    /// Verifying presence proofs from the card's chip (`[chip]`).
    pub chip: ChipConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChipConfig {
    /// CSCA certificates (DER/PEM), ICAO master lists (`.ml`) and CRLs (`.crl`) that presence
    /// proofs are verified against, read at start-up; empty: `<data_dir>/trust`.
    pub trust_dir: PathBuf,
    /// Accept SHA-1 in EF.SOD and certificate signatures (some older documents); reported.
    pub allow_sha1: bool,
    /// Require a current CRL from the Document Signer's CSCA: without one, revocation is
    /// unknown and the proof is not verified.
    pub require_crl: bool,
}

impl Default for ChipConfig {
    fn default() -> Self {
        Self {
            trust_dir: PathBuf::new(),
            allow_sha1: false,
            require_crl: true,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// `postgres://...` or `sqlite://...`; empty: `sqlite://<data_dir>/registry.sqlite`.
    pub url: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// `postgres://...` or `sqlite://...`; empty: `sqlite://<data_dir>/audit.sqlite`.
    pub url: String,
    /// Most records committed in one transaction (group commit).
    pub max_batch: usize,
    /// How often each writer signs a checkpoint of its chain, even when idle.
    pub checkpoint_interval_secs: u64,
    /// How long a check may wait for its audit record to be committed before it is refused.
    pub commit_timeout_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Off: every check asks the source, and neither Redis nor the in-process cache is read or
    /// written (benchmarks measure the source's own cost this way; coalescing still applies).
    pub enabled: bool,
    /// `redis://host:port/db`; empty: in-process cache only.
    pub redis_url: String,
    /// Lifetime of a found card's entry (never past the card's end of validity).
    pub ttl_secs: u64,
    /// Lifetime of a "no such card" entry: short, so new registrations show up quickly.
    pub not_found_ttl_secs: u64,
    /// Concurrent misses for one key make one source query.
    pub coalesce: bool,
    /// Entries held by the in-process fallback cache.
    pub fallback_capacity: u64,
    /// Longest wait for one Redis command before the fallback answers.
    pub redis_timeout_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Requests served at once; more wait, then are refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// Longest a single check may take end to end.
    pub request_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            listen: ([127, 0, 0, 1], 50051).into(),
            http_listen: ([127, 0, 0, 1], 9464).into(),
            log_json: false,
            registry: RegistryConfig::default(),
            audit: AuditConfig::default(),
            cache: CacheConfig::default(),
            limits: Limits::default(),
            abuse: crate::abuse::AbuseConfig::default(),
            tls: crate::tls::TlsConfig::default(),
            chip: ChipConfig::default(),
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_batch: 512,
            checkpoint_interval_secs: 10,
            commit_timeout_ms: 5000,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            redis_url: String::new(),
            ttl_secs: 6 * 3600,
            not_found_ttl_secs: 60,
            coalesce: true,
            fallback_capacity: 100_000,
            redis_timeout_ms: 250,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            max_concurrent_requests: 512,
            request_timeout_ms: 10_000,
        }
    }
}

impl Config {
    /// Defaults, then the file (if given), then `BHYT_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, figment::Error> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment.merge(Env::prefixed("BHYT_").split("__")).extract()
    }

    pub fn registry_url(&self) -> String {
        self.database_url(&self.registry.url, "registry.sqlite")
    }

    pub fn audit_url(&self) -> String {
        self.database_url(&self.audit.url, "audit.sqlite")
    }

    fn database_url(&self, configured: &str, file: &str) -> String {
        if configured.is_empty() {
            format!("sqlite://{}", self.data_dir.join(file).display())
        } else {
            configured.to_owned()
        }
    }

    pub fn trust_dir(&self) -> PathBuf {
        if self.chip.trust_dir.as_os_str().is_empty() {
            self.data_dir.join("trust")
        } else {
            self.chip.trust_dir.clone()
        }
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bhyt.toml",
                "data_dir = \"/srv/bhyt\"\n[cache]\nttl_secs = 60\nredis_url = \"redis://cache:6379\"\n",
            )?;
            jail.set_env("BHYT_CACHE__TTL_SECS", "30");
            jail.set_env("BHYT_REGISTRY__URL", "postgres://db/registry");
            let config = Config::load(Some(Path::new("bhyt.toml")))?;
            assert_eq!(config.data_dir, PathBuf::from("/srv/bhyt"));
            assert_eq!(
                config.cache.ttl_secs, 30,
                "the environment overrides the file"
            );
            assert_eq!(config.cache.redis_url, "redis://cache:6379");
            assert_eq!(config.registry_url(), "postgres://db/registry");
            assert_eq!(config.audit_url(), "sqlite:///srv/bhyt/audit.sqlite");
            assert_eq!(
                config.limits.max_message_bytes,
                Limits::default().max_message_bytes
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bhyt.toml", "[cache]\nttl = 60\n")?;
            assert!(Config::load(Some(Path::new("bhyt.toml"))).is_err());
            Ok(())
        });
    }
}
