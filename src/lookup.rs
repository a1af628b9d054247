//! Looking a subject up: the cache first, then the source; concurrent misses for one subject
//! make a single source query (coalescing), so a burst of checks for a cold citizen, or a cache
//! entry expiring under load, does not stampede the registry or the gateway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::cache::{CacheTier, CachedCoverage, CoverageCache};
use crate::coverage::Subject;
use crate::metrics::Metrics;
use crate::source::{CoverageSource, SourceError};

/// Where an answer's facts came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance {
    Source,
    Cache(CacheTier),
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

    /// The facts about `subject`, and where they came from.
    pub async fn find(
        &self,
        subject: &Subject,
    ) -> Result<(CachedCoverage, Provenance), SourceError> {
        let key = self.cache.key(subject);
        if let Some((cached, tier)) = self.cache.get(&key).await {
            self.metrics.cache_lookup(Some(tier));
            return Ok((cached, Provenance::Cache(tier)));
        }
        self.metrics.cache_lookup(None);
        if !self.coalesce {
            return Ok((self.fetch(subject, &key).await?, Provenance::Source));
        }
        let (flight, joined) = {
            let mut in_flight = self.in_flight.lock().expect("in-flight map lock");
            let joined = in_flight.contains_key(&key);
            (in_flight.entry(key.clone()).or_default().clone(), joined)
        };
        // The first caller runs the query; the others wait for its answer. A failed query
        // leaves the cell empty, and the next waiter tries again.
        let _waiting = joined.then(|| self.metrics.coalesced_wait());
        let result = flight
            .get_or_try_init(|| self.fetch(subject, &key))
            .await
            .cloned();
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight map lock");
            if in_flight.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                in_flight.remove(&key);
            }
        }
        Ok((result?, Provenance::Source))
    }

    async fn fetch(&self, subject: &Subject, key: &str) -> Result<CachedCoverage, SourceError> {
        let started = Instant::now();
        let found = self.source.lookup(subject).await;
        self.metrics
            .source_query(self.source.name(), started.elapsed(), found.is_ok());
        let now = OffsetDateTime::now_utc();
        let cached = CachedCoverage {
            card: found?,
            fetched_at: now.unix_timestamp(),
        };
        self.cache.put(key, &cached, now).await;
        Ok(cached)
    }
}
