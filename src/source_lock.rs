//! One source query per cache miss across replicas. Coalescing in [`crate::lookup`] makes the
//! misses of one process share a query; replicas sharing Redis would still each ask the source
//! (the gateway, slow and rate-limited at peak hours) for the same cold citizen. So the replica
//! about to ask takes a short Redis lock on the key (`SET NX PX`), and another replica's miss
//! for it polls the cache for the answer instead of asking too.
//!
//! Safety over exactness: the lock is only ever an optimisation. It expires by itself (a
//! replica that dies holding it costs the others one wait, never a deadlock); a waiter gives up
//! after the lock's lifetime and asks itself; any Redis error or timeout, or Redis unreachable,
//! means asking without waiting. A waiter that finds the lock gone but no entry (the holder
//! failed, or got a verdict for its own request only) takes the lock and asks itself, as a
//! coalesced waiter in one process does.
//!
//! The lock key is the cache key (a keyed hash) with a suffix; its value a random token, so
//! only its holder releases it.

use std::time::{Duration, Instant};

use crate::redis_link::RedisLink;
use time::OffsetDateTime;

use crate::cache::{CacheTier, CachedCoverage, CoverageCache};
use crate::metrics::Metrics;

/// How often a waiting replica looks for the holder's answer.
const POLL: Duration = Duration::from_millis(20);

/// Deletes the lock only if it still holds this holder's token (it may have expired and been
/// taken by another replica meanwhile).
const RELEASE: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#;

const REDIS_UNAVAILABLE: &str = "redis_unavailable";

/// The Redis lock key guarding the source query for cache key `cache_key`.
pub fn lock_key(cache_key: &str) -> String {
    format!("{cache_key}:source-lock")
}

pub struct SourceLock {
    /// The lock's lifetime, and the longest a waiter waits.
    ttl: Duration,
    redis_timeout: Duration,
}

/// The outcome of claiming a key's source query.
pub enum Claim {
    /// This replica holds the lock: ask the source, cache the answer, then release.
    Held(Held),
    /// Another replica asked while this one waited: its cached answer.
    AnsweredElsewhere(CachedCoverage),
    /// No lock: ask the source anyway. The reason is the metric's label.
    Unshared(&'static str),
}

impl SourceLock {
    /// `None` when `ttl` is zero (off).
    pub fn new(ttl: Duration, redis_timeout: Duration) -> Option<Self> {
        (!ttl.is_zero()).then_some(Self { ttl, redis_timeout })
    }

    /// Claims the source query for `key`, waiting for another replica's answer while it holds
    /// the lock.
    pub async fn claim(&self, cache: &CoverageCache, key: &str, metrics: &Metrics) -> Claim {
        let claim = self.try_claim(cache, key).await;
        metrics.source_lock(match &claim {
            Claim::Held(_) => "acquired",
            Claim::AnsweredElsewhere(_) => "answered_elsewhere",
            Claim::Unshared(reason) => reason,
        });
        claim
    }

    async fn try_claim(&self, cache: &CoverageCache, key: &str) -> Claim {
        let Some(mut conn) = cache.connection().filter(|_| cache.redis_in_use()) else {
            return Claim::Unshared(REDIS_UNAVAILABLE);
        };
        let lock = lock_key(key);
        let token = format!("{:032x}", rand::random::<u128>());
        // An answer fetched in this second or later is one this check did not see missing.
        let since = OffsetDateTime::now_utc().unix_timestamp();
        let give_up = Instant::now() + self.ttl;
        let mut waited = false;
        loop {
            match self.try_lock(&mut conn, &lock, &token).await {
                Some(true) => {
                    // The holder before us may have cached its answer just before releasing.
                    if waited && let Some(answer) = fresh_since(cache, key, since).await {
                        let _ = self.release_lock(&mut conn, &lock, &token).await;
                        return Claim::AnsweredElsewhere(answer);
                    }
                    return Claim::Held(Held { conn, lock, token });
                }
                Some(false) => {}
                None => return Claim::Unshared(REDIS_UNAVAILABLE),
            }
            if Instant::now() >= give_up {
                tracing::debug!("another replica's source query outlived its lock: asking");
                return Claim::Unshared("wait_expired");
            }
            tokio::time::sleep(POLL).await;
            waited = true;
            if let Some(answer) = fresh_since(cache, key, since).await {
                return Claim::AnsweredElsewhere(answer);
            }
            if !cache.redis_in_use() {
                return Claim::Unshared(REDIS_UNAVAILABLE);
            }
        }
    }

    /// `SET lock token NX PX ttl`: Some(true) taken, Some(false) held by another, None Redis
    /// failed.
    async fn try_lock(&self, conn: &mut RedisLink, lock: &str, token: &str) -> Option<bool> {
        let mut set = redis::cmd("SET");
        set.arg(lock)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX));
        let command = set.query_async::<Option<String>>(conn);
        match tokio::time::timeout(self.redis_timeout, command).await {
            Ok(Ok(set)) => Some(set.is_some()),
            Ok(Err(error)) => {
                tracing::debug!(%error, "redis: source lock not taken, asking without it");
                None
            }
            Err(_) => None,
        }
    }

    async fn release_lock(&self, conn: &mut RedisLink, lock: &str, token: &str) -> Option<()> {
        // Plain EVAL (the script is short): the redis crate's script cache is a feature this
        // build does not need.
        let mut eval = redis::cmd("EVAL");
        eval.arg(RELEASE).arg(1).arg(lock).arg(token);
        let command = eval.query_async::<i64>(conn);
        // Not released (Redis gone): it expires by itself.
        tokio::time::timeout(self.redis_timeout, command)
            .await
            .ok()?
            .ok()
            .map(drop)
    }

    /// Gives the lock back once the holder's answer is cached (or it has none).
    pub async fn release(&self, mut held: Held) {
        let _ = self
            .release_lock(&mut held.conn, &held.lock, &held.token)
            .await;
    }
}

/// A held lock. Dropped without [`SourceLock::release`] (the check was cancelled), it lapses
/// after its lifetime.
pub struct Held {
    conn: RedisLink,
    lock: String,
    token: String,
}

/// A fresh Redis entry for `key` fetched at or after `since` (unix seconds).
async fn fresh_since(cache: &CoverageCache, key: &str, since: i64) -> Option<CachedCoverage> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    cache
        .get(key, now)
        .await
        .filter(|hit| hit.tier == CacheTier::Redis && hit.is_fresh(now))
        .filter(|hit| hit.value.fetched_at >= since)
        .map(|hit| hit.value)
}
