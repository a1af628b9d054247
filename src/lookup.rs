//! Looking a subject up: the cache first, then the source; concurrent misses for one subject
//! make a single source query (coalescing), so a burst of checks for a cold citizen, or a cache
//! entry expiring under load, does not stampede the registry or the gateway.
//!
//! Only facts are cached and shared. A source's verdict on one request (the gateway's "wrong
//! name", say) answers that request alone: it ends the shared query like a failure would, so
//! each waiter then asks with its own name and date of birth.
//!
//! When the source cannot answer (down, timed out, its circuit breaker open), an entry past its
//! freshness but within the stale allowance answers instead, marked stale ([`Provenance::Stale`]).
//! A fresh entry near the end of its freshness is renewed in the background (refresh ahead), so
//! a citizen checked often never waits for the source; the renewal joins the same coalesced
//! query as misses, so it is made once.
//!
//! Across replicas sharing Redis, [`crate::source_lock`] lets one of them make the query and
//! the others wait for its cached answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::cache::{CacheHit, CacheTier, CachedCoverage, CoverageCache};
use crate::coverage::{BirthDate, Subject};
use bhyt_proto::v1::ResultCode;

use crate::metrics::Metrics;
use crate::source::{CoverageSource, SourceAnswer, SourceError, SourceQuery};
use crate::source_lock::{Claim, SourceLock};

/// Where an answer's facts came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance {
    Source,
    Cache(CacheTier),
    /// A cache entry past its freshness, used because the source could not answer.
    Stale(CacheTier),
}

/// What a look-up found. One per check, moved, never stored: boxing the facts would buy nothing.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Found {
    /// Facts to judge, from the cache or the source.
    Facts(CachedCoverage, Provenance),
    /// The source's own verdict on this request (see [`SourceAnswer::Verdict`]).
    Verdict {
        result: ResultCode,
        source_code: String,
    },
}

/// Why a fetch gave no facts: the source failed, or it answered with a verdict for one request.
enum NoFacts {
    Failed(SourceError),
    Verdict(ResultCode, String),
}

type Flight = Arc<OnceCell<CachedCoverage>>;

pub struct Lookup {
    shared: Arc<Shared>,
}

/// What a background refresh needs after the request that started it has been answered.
struct Shared {
    cache: Arc<CoverageCache>,
    source: Arc<dyn CoverageSource>,
    metrics: Arc<Metrics>,
    coalesce: bool,
    refresh_ahead_percent: u8,
    in_flight: Mutex<HashMap<String, Flight>>,
    /// One query per key across replicas (`None`: off).
    replica_lock: Option<SourceLock>,
}

impl Lookup {
    pub fn new(
        cache: Arc<CoverageCache>,
        source: Arc<dyn CoverageSource>,
        metrics: Arc<Metrics>,
        coalesce: bool,
        refresh_ahead_percent: u8,
        replica_lock: Option<SourceLock>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                cache,
                source,
                metrics,
                coalesce,
                refresh_ahead_percent: refresh_ahead_percent.min(100),
                in_flight: Mutex::new(HashMap::new()),
                replica_lock,
            }),
        }
    }

    pub fn source_name(&self) -> &'static str {
        self.shared.source.name()
    }

    pub fn cache(&self) -> &Arc<CoverageCache> {
        &self.shared.cache
    }

    /// The facts about `query.subject`, and where they came from, or the source's verdict on
    /// this very request.
    pub async fn find(&self, query: &SourceQuery<'_>) -> Result<Found, SourceError> {
        let shared = &self.shared;
        let key = shared.cache.key(query.subject);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        match shared.cache.get(&key, now).await {
            Some(hit) if hit.is_fresh(now) => {
                shared.metrics.cache_lookup(Some(hit.tier));
                if shared.near_expiry(&hit, now) {
                    self.refresh_in_background(query, key);
                }
                Ok(Found::Facts(hit.value, Provenance::Cache(hit.tier)))
            }
            Some(stale) => {
                shared.metrics.cache_lookup_stale();
                match shared.query(query, &key).await {
                    Err(NoFacts::Failed(error)) => {
                        tracing::debug!(%error, "source failed: answering from a stale entry");
                        shared.metrics.stale_answer();
                        Ok(Found::Facts(stale.value, Provenance::Stale(stale.tier)))
                    }
                    answered => found(answered),
                }
            }
            None => {
                shared.metrics.cache_lookup(None);
                found(shared.query(query, &key).await)
            }
        }
    }

    /// Starts renewing `key` from the source unless a query for it is already under way (a
    /// miss, a stale look-up or another refresh): then that one renews it.
    fn refresh_in_background(&self, query: &SourceQuery<'_>, key: String) {
        let flight = {
            let mut in_flight = self.shared.in_flight.lock().expect("in-flight map lock");
            if in_flight.contains_key(&key) {
                return;
            }
            let flight = Flight::default();
            in_flight.insert(key.clone(), flight.clone());
            flight
        };
        let owned = OwnedQuery::from(query);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let refreshed = shared.fly(&flight, &owned.as_query(), &key).await.is_ok();
            shared.metrics.refresh_ahead(refreshed);
        });
    }
}

impl Shared {
    /// Whether a fresh entry is in the last `refresh_ahead_percent` of its freshness.
    fn near_expiry(&self, hit: &CacheHit, now: i64) -> bool {
        if self.refresh_ahead_percent == 0 || hit.fresh_until == i64::MAX {
            return false;
        }
        let fresh_for = i128::from(hit.fresh_until) - i128::from(hit.value.fetched_at);
        let left = i128::from(hit.fresh_until) - i128::from(now);
        left * 100 <= fresh_for * i128::from(self.refresh_ahead_percent)
    }

    /// Asks the source, joining a query already under way for the same key (coalescing).
    async fn query(&self, query: &SourceQuery<'_>, key: &str) -> Result<CachedCoverage, NoFacts> {
        if !self.coalesce {
            return self.fetch(query, key).await;
        }
        let (flight, joined) = {
            let mut in_flight = self.in_flight.lock().expect("in-flight map lock");
            let joined = in_flight.contains_key(key);
            (in_flight.entry(key.to_owned()).or_default().clone(), joined)
        };
        let _waiting = joined.then(|| self.metrics.coalesced_wait());
        self.fly(&flight, query, key).await
    }

    /// Runs or joins `flight`, then forgets it. The first caller runs the query; the others
    /// wait for its answer. A failed query, or a verdict for the first caller's request alone,
    /// leaves the cell empty, and the next waiter asks again with its own request.
    async fn fly(
        &self,
        flight: &Flight,
        query: &SourceQuery<'_>,
        key: &str,
    ) -> Result<CachedCoverage, NoFacts> {
        let result = flight
            .get_or_try_init(|| self.fetch(query, key))
            .await
            .cloned();
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight map lock");
            if in_flight.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
                in_flight.remove(key);
            }
        }
        result
    }

    /// Asks the source for this process, unless another replica is asking for the same key:
    /// then its answer, once cached.
    async fn fetch(&self, query: &SourceQuery<'_>, key: &str) -> Result<CachedCoverage, NoFacts> {
        let Some(lock) = &self.replica_lock else {
            return self.ask_source(query, key).await;
        };
        match lock.claim(&self.cache, key, &self.metrics).await {
            Claim::AnsweredElsewhere(cached) => Ok(cached),
            Claim::Unshared(_) => self.ask_source(query, key).await,
            Claim::Held(held) => {
                // Released after the answer is cached, so a waiter finds it there.
                let answer = self.ask_source(query, key).await;
                lock.release(held).await;
                answer
            }
        }
    }

    async fn ask_source(
        &self,
        query: &SourceQuery<'_>,
        key: &str,
    ) -> Result<CachedCoverage, NoFacts> {
        let started = Instant::now();
        let answer = self.source.check(query).await;
        if !matches!(answer, Err(SourceError::CircuitOpen { .. })) {
            self.metrics
                .source_query(self.source.name(), started.elapsed(), answer.is_ok());
        }
        let card = match answer.map_err(NoFacts::Failed)? {
            SourceAnswer::Facts(card) => card,
            SourceAnswer::Verdict {
                result,
                source_code,
            } => return Err(NoFacts::Verdict(result, source_code)),
        };
        let now = OffsetDateTime::now_utc();
        let cached = CachedCoverage {
            card,
            fetched_at: now.unix_timestamp(),
        };
        self.cache.put(key, &cached, now).await;
        Ok(cached)
    }
}

/// A [`SourceQuery`] owned by a background refresh. Personal data: held in memory only, for
/// the one query.
struct OwnedQuery {
    subject: Subject,
    full_name: String,
    birth: BirthDate,
    operator_name: String,
    operator_id: String,
}

impl OwnedQuery {
    fn from(query: &SourceQuery<'_>) -> Self {
        Self {
            subject: query.subject.clone(),
            full_name: query.full_name.to_owned(),
            birth: query.birth,
            operator_name: query.operator_name.to_owned(),
            operator_id: query.operator_id.to_owned(),
        }
    }

    fn as_query(&self) -> SourceQuery<'_> {
        SourceQuery {
            subject: &self.subject,
            full_name: &self.full_name,
            birth: self.birth,
            operator_name: &self.operator_name,
            operator_id: &self.operator_id,
        }
    }
}

fn found(fetched: Result<CachedCoverage, NoFacts>) -> Result<Found, SourceError> {
    match fetched {
        Ok(cached) => Ok(Found::Facts(cached, Provenance::Source)),
        Err(NoFacts::Verdict(result, source_code)) => Ok(Found::Verdict {
            result,
            source_code,
        }),
        Err(NoFacts::Failed(error)) => Err(error),
    }
}
