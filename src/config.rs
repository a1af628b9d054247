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
    /// Where coverage facts come from (`[source]`): the registry (default) or the gateway.
    pub source: SourceConfig,
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

/// Which coverage source answers checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SourceKind {
    /// The registry database (`[registry] url`).
    #[default]
    Registry,
    /// The national gateway (`[source] url`, `username`, `password`).
    Gateway,
}

/// A secret from the configuration: shown as `[redacted]` by `Debug`, so printing a
/// configuration never prints it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// `registry` (default) or `gateway`.
    pub kind: SourceKind,
    /// The gateway's base URL, e.g. `https://gateway.example/`; `http://` only with
    /// `dev_plain_http`.
    pub url: String,
    /// Development only: accept a plain `http://` gateway URL (the local simulator), with a
    /// warning in the log. Off, such a URL stops the start-up.
    pub dev_plain_http: bool,
    /// The facility account's user name.
    pub username: String,
    /// The facility account's password; set it through `BHYT_SOURCE__PASSWORD`.
    pub password: Secret,
    /// Extra trusted CA certificates (PEM) for the gateway's TLS; empty: public roots only.
    pub ca_cert: String,
    /// Longest wait for a TCP (and TLS) connection to the gateway.
    pub connect_timeout_ms: u64,
    /// Longest wait for one gateway call (log-in or card check), answer included.
    pub request_timeout_ms: u64,
    /// Longest one check may spend on the gateway, retries and back-off included; keep it
    /// below `[limits] request_timeout_ms` so the desk gets an answer, not a deadline.
    pub total_timeout_ms: u64,
    /// Retries of transient failures after the first try.
    pub retries: u32,
    /// First back-off ceiling; doubled for each further retry up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// A token is renewed this long before the gateway says it expires.
    pub token_refresh_margin_secs: u64,
    /// Consecutive source failures (unreachable, timed out) that open the circuit breaker;
    /// 0: no breaker.
    pub breaker_failure_threshold: u32,
    /// How long an open breaker answers without asking the source before one trial call.
    pub breaker_cool_down_ms: u64,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            kind: SourceKind::Registry,
            url: String::new(),
            dev_plain_http: false,
            username: String::new(),
            password: Secret::default(),
            ca_cert: String::new(),
            connect_timeout_ms: 2_000,
            request_timeout_ms: 3_000,
            total_timeout_ms: 8_000,
            retries: 2,
            backoff_base_ms: 100,
            backoff_max_ms: 2_000,
            token_refresh_margin_secs: 60,
            breaker_failure_threshold: 5,
            breaker_cool_down_ms: 15_000,
        }
    }
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
    /// Largest size of the local spool (`<data_dir>/audit-spool/<writer>.spool`) that holds records while
    /// the store cannot commit; past it checks are refused. 0: no spool, a dead store refuses
    /// checks.
    pub spool_max_bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Off: every check asks the source, and neither Redis nor the in-process cache is read or
    /// written (benchmarks measure the source's own cost this way; coalescing still applies).
    pub enabled: bool,
    /// One Redis server, `redis://host:port/db`; empty: none (see `redis_cluster_nodes`).
    pub redis_url: String,
    /// Or a Redis Cluster: some of its nodes, `["redis://host1:7000", "redis://host2:7000"]`
    /// (the others are found from them). Set this or `redis_url`, not both; neither:
    /// in-process cache only. By environment: `BHYT_CACHE__REDIS_CLUSTER_NODES='["redis://…",…]'`.
    pub redis_cluster_nodes: Vec<String>,
    /// How long a found card's entry is fresh, answered without asking the source (never past
    /// the card's end of validity).
    pub ttl_secs: u64,
    /// How long past its freshness a found card's entry is still kept, to answer (marked stale,
    /// with its age) when the source cannot; never past the card's end of validity. 0: never.
    pub max_stale_secs: u64,
    /// A fresh entry asked for in the last this-percent of its freshness is renewed in the
    /// background while the cached answer is given at once. 0: off.
    pub refresh_ahead_percent: u8,
    /// Lifetime of a "no such card" entry: short, so new registrations show up quickly.
    pub not_found_ttl_secs: u64,
    /// Concurrent misses for one key make one source query.
    pub coalesce: bool,
    /// Across replicas sharing Redis: the replica asking the source for a key holds a Redis
    /// lock on it (SET NX PX) for at most this long, and another replica's miss for the same
    /// key waits that long at most for the entry instead of asking too. 0: off (each replica
    /// asks for itself). Unused without Redis, or while it is unreachable.
    pub source_lock_ms: u64,
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
    /// Calls served at once on one HTTP/2 connection, whatever the service; beyond it that
    /// connection's further calls are refused at once with RESOURCE_EXHAUSTED. A backstop
    /// against one client: checks are bounded process-wide by `max_checks_in_flight`.
    pub max_concurrent_requests: usize,
    /// Coverage checks this process runs at once (each batch item counts as one); beyond it a
    /// check waits up to `slot_wait_ms` for a slot, then is shed with RESOURCE_EXHAUSTED.
    /// Health checks, metrics and audit queries are not counted. 0: no bound.
    pub max_checks_in_flight: usize,
    /// Checks that may wait for a slot at once; more are shed without waiting.
    pub max_checks_waiting: usize,
    /// Longest a check waits for a slot before it is shed.
    pub slot_wait_ms: u64,
    /// Longest a single check may take end to end.
    pub request_timeout_ms: u64,
    /// The largest registry upload `AdminService.ImportRegistry` accepts (larger files: the CLI).
    pub max_import_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            listen: ([127, 0, 0, 1], 50051).into(),
            http_listen: ([127, 0, 0, 1], 9464).into(),
            log_json: false,
            registry: RegistryConfig::default(),
            source: SourceConfig::default(),
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
            spool_max_bytes: 256 << 20,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            redis_url: String::new(),
            redis_cluster_nodes: Vec::new(),
            ttl_secs: 6 * 3600,
            max_stale_secs: 4 * 3600,
            refresh_ahead_percent: 10,
            not_found_ttl_secs: 60,
            coalesce: true,
            source_lock_ms: 3000,
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
            max_checks_in_flight: 256,
            max_checks_waiting: 512,
            slot_wait_ms: 250,
            request_timeout_ms: 10_000,
            max_import_bytes: 256 << 20,
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

    /// The local audit spools' directory (one file per writer).
    pub fn audit_spool_dir(&self) -> PathBuf {
        self.data_dir.join("audit-spool")
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
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment::Error
    fn the_gateway_password_comes_from_the_environment_and_is_never_printed() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bhyt.toml",
                "[source]\nkind = \"gateway\"\nurl = \"https://gw.test/\"\nusername = \"bv01821\"\n",
            )?;
            jail.set_env("BHYT_SOURCE__PASSWORD", "s3cret-from-env");
            jail.set_env("BHYT_SOURCE__RETRIES", "4");
            let config = Config::load(Some(Path::new("bhyt.toml")))?;
            assert_eq!(config.source.kind, SourceKind::Gateway);
            assert_eq!(config.source.password.expose(), "s3cret-from-env");
            assert_eq!(config.source.retries, 4);
            // Debug output of the whole configuration (what a careless log line would print)
            // does not carry it.
            let printed = format!("{config:?}");
            assert!(!printed.contains("s3cret"), "{printed}");
            assert!(printed.contains("[redacted]"));
            Ok(())
        });
        assert_eq!(Config::default().source.kind, SourceKind::Registry);
    }

    #[test]
    fn cluster_nodes_come_from_the_file_or_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bhyt.toml",
                "[cache]\nredis_cluster_nodes = [\"redis://h1:7000\", \"redis://h2:7000\"]\n",
            )?;
            let config = Config::load(Some(Path::new("bhyt.toml")))?;
            assert_eq!(
                config.cache.redis_cluster_nodes,
                ["redis://h1:7000", "redis://h2:7000"]
            );
            jail.set_env(
                "BHYT_CACHE__REDIS_CLUSTER_NODES",
                r#"["redis://a:7000","redis://b:7001","redis://c:7002"]"#,
            );
            let config = Config::load(Some(Path::new("bhyt.toml")))?;
            assert_eq!(config.cache.redis_cluster_nodes.len(), 3);
            assert_eq!(config.cache.redis_cluster_nodes[2], "redis://c:7002");
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
