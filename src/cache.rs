//! The coverage cache: Redis (one server or a cluster, see [`crate::redis_link`]), shared by all
//! replicas, in front of the source; an in-process cache (moka) stands in only while Redis is
//! absent or unreachable.
//!
//! The in-process cache is a fallback, not a near cache in front of Redis: replicas could not
//! invalidate each other's copies, so while Redis works it is neither read nor written, and it is
//! emptied when Redis comes back.
//!
//! Keys are keyed hashes of the subject (`bhyt:cov:v1:<hmac>`) and values are sealed (AES-GCM,
//! see [`crate::seal`]): nothing in Redis names or describes a person in clear.
//!
//! An entry is *fresh* for `ttl_secs` (answered without asking the source) and then kept, stale,
//! for up to `max_stale_secs` more, so that while the source cannot answer the desk still gets
//! the last known facts, marked stale with their age. Redis's own TTL is therefore the fresh
//! lifetime plus the stale allowance; the end of freshness travels inside the sealed value.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, Time};
use tokio::sync::OnceCell;

use crate::config::CacheConfig;
use crate::coverage::{CardRecord, CardStatus, Subject, VIETNAM};
use crate::keys::Pseudonymizer;
use crate::redis_link::{RedisLink, RedisTarget};
use crate::seal::Sealer;

/// Associated data of sealed Redis values.
const REDIS_VALUE: &str = "redis-coverage";

/// What the cache holds for a subject: the source's facts (or their absence) and when they were
/// fetched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedCoverage {
    pub card: Option<CardRecord>,
    /// Unix seconds.
    pub fetched_at: i64,
}

/// What the cache found for a key: the facts, where, and until when they are fresh.
#[derive(Clone, Debug)]
pub struct CacheHit {
    pub value: CachedCoverage,
    pub tier: CacheTier,
    /// Unix seconds; entries written before freshness was recorded count as fresh until their
    /// (then fresh-only) TTL ends.
    pub fresh_until: i64,
}

impl CacheHit {
    pub fn is_fresh(&self, now: i64) -> bool {
        now < self.fresh_until
    }
}

/// The sealed value: the facts and the bounds of their use (unix seconds).
#[derive(Serialize, Deserialize)]
struct Stored<V> {
    #[serde(flatten)]
    value: V,
    #[serde(default = "for_ever")]
    fresh_until: i64,
    #[serde(default = "for_ever")]
    stale_until: i64,
}

fn for_ever() -> i64 {
    i64::MAX
}

/// Where a cached answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheTier {
    Redis,
    Fallback,
}

pub struct CoverageCache {
    /// False when caching is switched off (`cache.enabled = false`): nothing is read or written.
    enabled: bool,
    redis: Arc<OnceCell<RedisLink>>,
    /// What is configured: none, one server or a cluster.
    redis_target: Option<RedisTarget>,
    /// Whether the last Redis command worked; flips are logged once.
    redis_healthy: AtomicBool,
    fallback: moka::future::Cache<String, Arc<FallbackEntry>>,
    keys: Pseudonymizer,
    sealer: Arc<Sealer>,
    ttl: Duration,
    max_stale: Duration,
    not_found_ttl: Duration,
    timeout: Duration,
}

impl CoverageCache {
    /// Starts connecting to Redis in the background (when configured) and returns at once:
    /// a Redis that is down at start-up is picked up when it comes up.
    pub fn new(
        config: &CacheConfig,
        keys: Pseudonymizer,
        sealer: Arc<Sealer>,
    ) -> Result<Arc<Self>, redis::RedisError> {
        let redis = Arc::new(OnceCell::new());
        let timeout = Duration::from_millis(config.redis_timeout_ms);
        let target = RedisTarget::from_config(config, timeout)?.filter(|_| config.enabled);
        if let Some(target) = &target {
            tokio::spawn(connect_until_up(target.clone(), redis.clone(), timeout));
        }
        Ok(Arc::new(Self {
            enabled: config.enabled,
            redis,
            redis_healthy: AtomicBool::new(target.is_some()),
            redis_target: target,
            fallback: moka::future::Cache::builder()
                .max_capacity(config.fallback_capacity)
                .expire_after(EntryLifetime)
                .build(),
            keys,
            sealer,
            ttl: Duration::from_secs(config.ttl_secs),
            max_stale: Duration::from_secs(config.max_stale_secs),
            not_found_ttl: Duration::from_secs(config.not_found_ttl_secs),
            timeout,
        }))
    }

    /// The Redis key for a subject.
    pub fn key(&self, subject: &Subject) -> String {
        cache_key(&self.keys, subject)
    }

    /// Whether answers currently come from Redis (false: none configured, or unreachable).
    pub fn redis_in_use(&self) -> bool {
        // Connected at least once (the first connection is made in the background), and the
        // last command worked.
        self.redis.get().is_some() && self.redis_healthy.load(Ordering::Relaxed)
    }

    /// Where answers come from now: `redis`, `redis cluster` or `in-process fallback`.
    pub fn tier_in_use(&self) -> &'static str {
        match &self.redis_target {
            Some(target) if self.redis_in_use() => target.kind(),
            _ => "in-process fallback",
        }
    }

    /// The entry for `key`, fresh or stale, unless it is past its stale allowance at `now`
    /// (unix seconds).
    pub async fn get(&self, key: &str, now: i64) -> Option<CacheHit> {
        if !self.enabled {
            return None;
        }
        let found = self.get_stored(key).await?;
        let (stored, tier) = found;
        // Bounded by the allowance configured now, too, should it have been lowered.
        let max_stale = i64::try_from(self.max_stale.as_secs()).unwrap_or(i64::MAX);
        let stale_until = stored
            .stale_until
            .min(stored.fresh_until.saturating_add(max_stale));
        (now < stale_until.max(stored.fresh_until)).then_some(CacheHit {
            value: stored.value,
            tier,
            fresh_until: stored.fresh_until,
        })
    }

    async fn get_stored(&self, key: &str) -> Option<(Stored<CachedCoverage>, CacheTier)> {
        if let Some(mut conn) = self.connection() {
            let got: Result<Option<Vec<u8>>, _> = self.bounded(conn.get(key)).await;
            if let Ok(value) = got {
                self.mark_redis(true);
                return value
                    .and_then(|bytes| self.sealer.open(REDIS_VALUE, &bytes).ok())
                    .and_then(|plain| serde_json::from_slice(&plain).ok())
                    .map(|v| (v, CacheTier::Redis));
            }
            self.mark_redis(false);
        }
        self.fallback.get(key).await.map(|e| {
            let stored = Stored {
                value: e.value.clone(),
                fresh_until: e.fresh_until,
                stale_until: e.stale_until,
            };
            (stored, CacheTier::Fallback)
        })
    }

    pub async fn put(&self, key: &str, value: &CachedCoverage, now: OffsetDateTime) {
        if !self.enabled {
            return;
        }
        let (fresh, kept) = self.lifetimes(value, now);
        let at = |lifetime: Duration| {
            now.unix_timestamp()
                .saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX))
        };
        let (fresh_until, stale_until) = (at(fresh), at(kept));
        if let Some(mut conn) = self.connection() {
            let stored = Stored {
                value,
                fresh_until,
                stale_until,
            };
            let plain = serde_json::to_vec(&stored).expect("cache entries serialise");
            let bytes = self.sealer.seal(REDIS_VALUE, &plain);
            let set: Result<(), _> = self
                .bounded(conn.set_ex(key, bytes, kept.as_secs().max(1)))
                .await;
            if set.is_ok() {
                self.mark_redis(true);
                return;
            }
            self.mark_redis(false);
        }
        let entry = FallbackEntry {
            value: value.clone(),
            fresh_until,
            stale_until,
            ttl: kept,
        };
        self.fallback.insert(key.to_owned(), Arc::new(entry)).await;
    }

    /// How long an entry is fresh, and how long it is kept in all (fresh, then stale).
    ///
    /// A found card is fresh for the configured TTL and kept `max_stale` longer, but neither
    /// past the end of its validity in Vietnam (after which the verdict changes, and a stale
    /// "expired" could hide a renewal). "Not found", and a card the source calls expired
    /// whatever its dates, live briefly and are never used stale: a person registered or
    /// renewed since must not be turned away on old data.
    fn lifetimes(&self, value: &CachedCoverage, now: OffsetDateTime) -> (Duration, Duration) {
        let short = (self.not_found_ttl, self.not_found_ttl);
        let Some(card) = value
            .card
            .as_ref()
            .filter(|c| c.status != CardStatus::Expired)
        else {
            return short;
        };
        let until_expiry = end_of_day(card.valid_to) - now;
        match u64::try_from(until_expiry.whole_seconds()) {
            Ok(secs) if secs > 0 => {
                let until_expiry = Duration::from_secs(secs);
                (
                    self.ttl.min(until_expiry),
                    self.ttl.saturating_add(self.max_stale).min(until_expiry),
                )
            }
            _ => short,
        }
    }

    /// The Redis connection once made, for other single-use records that replicas must share
    /// (redeemed presence challenges).
    pub fn connection(&self) -> Option<RedisLink> {
        self.redis.get().cloned()
    }

    async fn bounded<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> redis::RedisResult<T> {
        match tokio::time::timeout(self.timeout, command).await {
            Ok(result) => result,
            Err(_) => Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out"))),
        }
    }

    fn mark_redis(&self, healthy: bool) {
        if self.redis_healthy.swap(healthy, Ordering::Relaxed) != healthy {
            if healthy {
                tracing::info!("redis is reachable again: cache answers come from Redis");
                // Entries written during the outage may since have been invalidated in Redis.
                self.fallback.invalidate_all();
            } else {
                tracing::warn!("redis is unreachable: falling back to the in-process cache");
            }
        }
    }
}

impl CoverageCache {
    /// Forgets the entries of `subjects` after an import changed them: in Redis (shared by the
    /// replicas) and in this process's fallback. Returns how many keys were named. A configured
    /// Redis that cannot be reached is an error: its stale entries would outlive the import.
    pub async fn forget<E>(
        &self,
        subjects: impl Iterator<Item = Result<Subject, E>>,
    ) -> Result<usize, InvalidateError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut redis = self.connection();
        if self.redis_target.is_some() && redis.is_none() {
            return Err(InvalidateError::Redis(redis::RedisError::from((
                redis::ErrorKind::Io,
                "not connected",
            ))));
        }
        let (mut named, mut chunk, mut subjects) = (0, Vec::new(), subjects);
        while next_key_chunk(&self.keys, &mut subjects, &mut chunk)? {
            if let Some(conn) = redis.as_mut() {
                let _: () = self.bounded(conn.del(&chunk)).await?;
            }
            for key in &chunk {
                self.fallback.invalidate(key).await;
            }
            named += chunk.len();
        }
        Ok(named)
    }
}

/// An in-process entry keeps the lifetime it would have had in Redis.
struct FallbackEntry {
    value: CachedCoverage,
    fresh_until: i64,
    stale_until: i64,
    ttl: Duration,
}

struct EntryLifetime;

impl moka::Expiry<String, Arc<FallbackEntry>> for EntryLifetime {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &Arc<FallbackEntry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// The first instant after `date` ends in Vietnam.
fn end_of_day(date: Date) -> OffsetDateTime {
    date.next_day()
        .unwrap_or(date)
        .with_time(Time::MIDNIGHT)
        .assume_offset(VIETNAM)
}

async fn connect_until_up(target: RedisTarget, cell: Arc<OnceCell<RedisLink>>, timeout: Duration) {
    let kind = target.kind();
    loop {
        match target.connect(timeout).await {
            Ok(link) => {
                let _ = cell.set(link);
                tracing::info!(kind, "connected to redis");
                return;
            }
            Err(error) => {
                tracing::warn!(kind, %error, "redis not reachable yet; using the in-process cache, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// After an import changed the registry, removes the Redis entries of every subject it touched
/// (by citizen ID and by each form of card number), a chunk at a time. Returns how many keys
/// were named.
///
/// Replicas' in-process fallbacks hold entries only while Redis is unreachable, and are emptied
/// when it comes back.
pub async fn invalidate_after_import<E>(
    config: &crate::config::Config,
    subjects: impl Iterator<Item = Result<Subject, E>>,
) -> Result<usize, InvalidateError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let timeout = Duration::from_millis(config.cache.redis_timeout_ms).max(Duration::from_secs(5));
    let Some(target) = RedisTarget::from_config(&config.cache, timeout)? else {
        return Ok(0);
    };
    let keys = crate::keys::Keys::load_or_create(&config.keys_dir())?;
    let mut conn = target.connect(timeout).await?;
    let (mut named, mut chunk, mut subjects) = (0, Vec::new(), subjects);
    while next_key_chunk(&keys.pseudonymizer, &mut subjects, &mut chunk)? {
        let _: () = conn.del(&chunk).await?;
        named += chunk.len();
    }
    Ok(named)
}

/// Refills `chunk` with the cache keys of up to a thousand more `subjects` (one Redis DEL each
/// chunk, which a cluster splits by hash slot); false when none are left.
fn next_key_chunk<E>(
    keys: &Pseudonymizer,
    subjects: &mut impl Iterator<Item = Result<Subject, E>>,
    chunk: &mut Vec<String>,
) -> Result<bool, InvalidateError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    chunk.clear();
    for subject in subjects.by_ref().take(1000) {
        let subject = subject.map_err(|e| InvalidateError::Subjects(Box::new(e)))?;
        chunk.push(cache_key(keys, &subject));
    }
    Ok(!chunk.is_empty())
}

#[derive(Debug, thiserror::Error)]
pub enum InvalidateError {
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("reading the imported subjects: {0}")]
    Subjects(Box<dyn std::error::Error + Send + Sync>),
}

fn cache_key(keys: &Pseudonymizer, subject: &Subject) -> String {
    format!(
        "bhyt:cov:v1:{}",
        keys.hash("cache", &format!("{}:{}", subject.kind(), subject.value()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::generate::Generator;

    const TTL: u64 = 3600;
    const MAX_STALE: u64 = 7200;

    /// The in-process cache alone (no Redis configured): the lifetimes are the same code.
    fn cache(max_stale_secs: u64) -> Arc<CoverageCache> {
        let config = CacheConfig {
            ttl_secs: TTL,
            max_stale_secs,
            ..CacheConfig::default()
        };
        let sealer = Arc::new(Sealer::new(vec![("cache-01".into(), vec![9; 32])]));
        CoverageCache::new(&config, Pseudonymizer::new(&[7; 32]), sealer).expect("no Redis")
    }

    /// A card valid until `days` from today in Vietnam.
    fn card_valid_for(now: OffsetDateTime, days: i64) -> CachedCoverage {
        let today = crate::coverage::vietnam_date(now);
        let mut card = Generator::new(1, today).next().expect("a card").record;
        card.valid_from = today - time::Duration::days(400);
        card.valid_to = today + time::Duration::days(days);
        CachedCoverage {
            card: Some(card),
            fetched_at: now.unix_timestamp(),
        }
    }

    // Without the stale allowance the entry would be gone at `t + TTL` (the second assertion);
    // without the bound it would still be found at the end.
    #[tokio::test]
    async fn a_card_is_fresh_for_the_ttl_then_kept_stale_up_to_the_maximum() {
        let cache = cache(MAX_STALE);
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        cache.put("k", &card_valid_for(now, 365), now).await;
        let hit = cache.get("k", t + TTL as i64 - 1).await.expect("fresh");
        assert!(hit.is_fresh(t + TTL as i64 - 1));
        assert_eq!(hit.fresh_until, t + TTL as i64);
        let stale = cache.get("k", t + TTL as i64).await.expect("kept, stale");
        assert!(!stale.is_fresh(t + TTL as i64));
        assert!(
            cache
                .get("k", t + (TTL + MAX_STALE) as i64 - 1)
                .await
                .is_some()
        );
        assert!(cache.get("k", t + (TTL + MAX_STALE) as i64).await.is_none());
    }

    #[tokio::test]
    async fn no_card_is_never_answered_stale() {
        let cache = cache(MAX_STALE);
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let nothing = CachedCoverage {
            card: None,
            fetched_at: t,
        };
        cache.put("k", &nothing, now).await;
        let not_found_ttl = CacheConfig::default().not_found_ttl_secs as i64;
        assert!(cache.get("k", t + not_found_ttl - 1).await.is_some());
        assert!(cache.get("k", t + not_found_ttl).await.is_none());
    }

    /// A stale "valid" past the card's last day could hide an expiry; a stale "expired" a
    /// renewal: neither freshness nor staleness outlives the card.
    #[tokio::test]
    async fn staleness_never_outlives_the_card() {
        let cache = cache(MAX_STALE);
        let now = OffsetDateTime::now_utc();
        let value = card_valid_for(now, 0);
        let end = end_of_day(value.card.as_ref().unwrap().valid_to).unix_timestamp();
        cache.put("k", &value, now).await;
        let hit = cache.get("k", now.unix_timestamp()).await.expect("cached");
        assert!(hit.fresh_until <= end);
        assert!(
            cache.get("k", end).await.is_none(),
            "gone when the card ends"
        );
    }

    /// A card the source calls expired (gateway code 010) although its dates run on lives as
    /// briefly as "not found": a renewal shows up at once. With the card's dates it would be
    /// kept for the TTL and then stale.
    #[tokio::test]
    async fn a_card_the_source_calls_expired_is_kept_briefly_and_never_stale() {
        let cache = cache(MAX_STALE);
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let mut value = card_valid_for(now, 365);
        value.card.as_mut().unwrap().status = CardStatus::Expired;
        cache.put("k", &value, now).await;
        let not_found_ttl = CacheConfig::default().not_found_ttl_secs as i64;
        assert!(cache.get("k", t + not_found_ttl - 1).await.is_some());
        assert!(cache.get("k", t + not_found_ttl).await.is_none());
    }

    #[tokio::test]
    async fn a_lowered_allowance_applies_to_entries_already_kept() {
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let generous = cache(MAX_STALE);
        generous.put("k", &card_valid_for(now, 365), now).await;
        // The same entry read under a configuration allowing 60 s of staleness.
        let stored = generous.fallback.get("k").await.expect("stored");
        let strict = cache(60);
        strict.fallback.insert("k".into(), stored).await;
        assert!(strict.get("k", t + TTL as i64 + 59).await.is_some());
        assert!(strict.get("k", t + TTL as i64 + 60).await.is_none());
    }

    /// Values Redis holds from before freshness was recorded (their TTL was the fresh lifetime)
    /// stay readable, and fresh for as long as Redis keeps them.
    #[test]
    fn entries_without_freshness_read_as_fresh() {
        let old = serde_json::json!({ "card": null, "fetched_at": 1_760_000_000 });
        let stored: Stored<CachedCoverage> = serde_json::from_value(old).expect("readable");
        assert_eq!(stored.value.fetched_at, 1_760_000_000);
        assert_eq!(
            (stored.fresh_until, stored.stale_until),
            (i64::MAX, i64::MAX)
        );
        // And the new form round-trips with both bounds.
        let value = CachedCoverage {
            card: None,
            fetched_at: 5,
        };
        let bytes = serde_json::to_vec(&Stored {
            value: &value,
            fresh_until: 10,
            stale_until: 20,
        })
        .unwrap();
        let back: Stored<CachedCoverage> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            (back.value, back.fresh_until, back.stale_until),
            (value, 10, 20)
        );
    }
}
