//! Looking a subject up: the cache first, then the source; concurrent misses for one subject
//! make a single source query (coalescing), so a burst of checks for a cold citizen, or a cache
//! entry expiring under load, does not stampede the registry or the gateway.
//!
//! Only facts are cached and shared. A source's verdict on one request (the gateway's "wrong
//! name", say) answers that request alone: it ends the shared query like a failure would, so
//! each waiter then asks with its own name and date of birth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::cache::{CacheTier, CachedCoverage, CoverageCache};
use bhyt_proto::v1::ResultCode;

use crate::metrics::Metrics;
use crate::source::{CoverageSource, SourceAnswer, SourceError, SourceQuery};

/// Where an answer's facts came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance {
    Source,
    Cache(CacheTier),
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
    cache: Arc<CoverageCache>,
    source: Arc<dyn CoverageSource>,
    metrics: Arc<Metrics>,
    coalesce: bool,
    in_flight: Mutex<HashMap<String, Flight>>,
}

impl Lookup {
    pub fn new(
        cache: Arc<CoverageCache>,
        source: Arc<dyn CoverageSource>,
        metrics: Arc<Metrics>,
        coalesce: bool,
    ) -> Self {
        Self {
            cache,
            source,
            metrics,
            coalesce,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    pub fn source_name(&self) -> &'static str {
        self.source.name()
    }

    pub fn cache(&self) -> &Arc<CoverageCache> {
        &self.cache
    }

    /// The facts about `query.subject`, and where they came from, or the source's verdict on
    /// this very request.
    pub async fn find(&self, query: &SourceQuery<'_>) -> Result<Found, SourceError> {
        let subject = query.subject;
        let key = self.cache.key(subject);
        if let Some((cached, tier)) = self.cache.get(&key).await {
            self.metrics.cache_lookup(Some(tier));
            return Ok(Found::Facts(cached, Provenance::Cache(tier)));
        }
        self.metrics.cache_lookup(None);
        if !self.coalesce {
            return found(self.fetch(query, &key).await);
        }
        let (flight, joined) = {
            let mut in_flight = self.in_flight.lock().expect("in-flight map lock");
            let joined = in_flight.contains_key(&key);
            (in_flight.entry(key.clone()).or_default().clone(), joined)
        };
        // The first caller runs the query; the others wait for its answer. A failed query, or
        // a verdict for the first caller's request alone, leaves the cell empty, and the next
        // waiter asks again with its own request.
        let _waiting = joined.then(|| self.metrics.coalesced_wait());
        let result = flight
            .get_or_try_init(|| self.fetch(query, &key))
            .await
            .cloned();
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight map lock");
            if in_flight.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                in_flight.remove(&key);
            }
        }
        found(result)
    }

    async fn fetch(&self, query: &SourceQuery<'_>, key: &str) -> Result<CachedCoverage, NoFacts> {
        let started = Instant::now();
        let answer = self.source.check(query).await;
        self.metrics
            .source_query(self.source.name(), started.elapsed(), answer.is_ok());
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
