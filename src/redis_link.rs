//! The link to the Redis the replicas share: one server (`[cache] redis_url`) or a Redis
//! Cluster (`[cache] redis_cluster_nodes`), behind one connection type so that the cache and
//! the presence challenges' single-use claims do not care which.
//!
//! Every command this service sends names one key, except the invalidation after an import
//! (`DEL` of many keys). On a cluster the client splits that `DEL` by hash slot and sums the
//! answers, so no key needs a hash tag: each cache entry and each claim stands alone, and
//! spreading them over the slots is what spreads the load over the nodes.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use crate::config::CacheConfig;

/// Where the shared Redis is, from the configuration.
#[derive(Clone)]
pub enum RedisTarget {
    Server(redis::Client),
    Cluster(ClusterClient),
}

impl RedisTarget {
    /// The configured Redis, `None` when neither a server nor a cluster is configured.
    /// `timeout` bounds each connection attempt and each answer.
    pub fn from_config(config: &CacheConfig, timeout: Duration) -> RedisResult<Option<Self>> {
        match (
            config.redis_url.is_empty(),
            config.redis_cluster_nodes.is_empty(),
        ) {
            (true, true) => Ok(None),
            (false, true) => Ok(Some(Self::Server(redis::Client::open(
                config.redis_url.as_str(),
            )?))),
            (true, false) => {
                let client = ClusterClientBuilder::new(config.redis_cluster_nodes.iter().cloned())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    // Retries follow MOVED/ASK during a resharding and reconnect a dropped
                    // node; the default (16, with waits of up to minutes) would hold a check
                    // long after the cache's own timeout gave up on it.
                    .retries(2)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()?;
                Ok(Some(Self::Cluster(client)))
            }
            (false, false) => Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "set either [cache] redis_url (one server) or redis_cluster_nodes (a cluster), not both",
            ))),
        }
    }

    /// What kind of Redis this is, for `/health` and the logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Server(_) => "redis",
            Self::Cluster(_) => "redis cluster",
        }
    }

    /// One attempt at connecting. A server's link reconnects by itself after a drop; so does a
    /// cluster's, to each node and after topology changes.
    pub async fn connect(&self, timeout: Duration) -> RedisResult<RedisLink> {
        match self {
            Self::Server(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                ConnectionManager::new_with_config(client.clone(), config)
                    .await
                    .map(RedisLink::Server)
            }
            Self::Cluster(client) => client.get_async_connection().await.map(RedisLink::Cluster),
        }
    }
}

/// A connection to the shared Redis, cheap to clone (each clone multiplexes over the same
/// sockets: no mutex, no pool).
#[derive(Clone)]
pub enum RedisLink {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(url: &str, nodes: &[&str]) -> CacheConfig {
        CacheConfig {
            redis_url: url.into(),
            redis_cluster_nodes: nodes.iter().map(|n| n.to_string()).collect(),
            ..CacheConfig::default()
        }
    }

    #[test]
    fn a_server_or_a_cluster_or_neither_but_not_both() {
        let t = Duration::from_millis(250);
        assert!(
            RedisTarget::from_config(&cache("", &[]), t)
                .unwrap()
                .is_none()
        );
        let server = RedisTarget::from_config(&cache("redis://127.0.0.1:6379/", &[]), t);
        assert_eq!(server.unwrap().unwrap().kind(), "redis");
        let nodes = ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"];
        let cluster = RedisTarget::from_config(&cache("", &nodes), t);
        assert_eq!(cluster.unwrap().unwrap().kind(), "redis cluster");
        let both = RedisTarget::from_config(&cache("redis://127.0.0.1:6379/", &nodes), t);
        let error = both.err().expect("refused").to_string();
        assert!(error.contains("not both"), "{error}");
        // A malformed node address is refused when the configuration is read, not later.
        assert!(RedisTarget::from_config(&cache("", &["not a url"]), t).is_err());
    }
}
