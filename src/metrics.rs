//! Prometheus metrics, served at `/metrics` on the operator port. Labels carry outcomes and
//! component names only, never an identifier of a person.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::cache::CacheTier;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    result: &'static str,
    cache: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    code: String,
}

pub struct Metrics {
    registry: Registry,
    checks: Family<CheckLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    cache: Family<OutcomeLabels, Counter>,
    source_queries: Family<SourceLabels, Counter>,
    source_latency: Histogram,
    audit_commit_latency: Histogram,
    audit_batch_size: Histogram,
    audit_failures: Counter,
    audit_spool_bytes: Gauge,
    audit_spool_records: Gauge,
    in_flight: Gauge,
    coalesced: Gauge,
    enumerations: Counter,
    presence: Family<OutcomeLabels, Counter>,
    breaker_state: Gauge,
    breaker_refused: Counter,
    stale_answers: Counter,
    refresh_ahead: Family<OutcomeLabels, Counter>,
    shed: Family<ReasonLabels, Counter>,
    waiting_for_slot: Gauge,
    source_lock: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bhyt");
        let checks = Family::<CheckLabels, Counter>::default();
        registry.register(
            "checks",
            "Answered coverage checks by result code and cache status",
            checks.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "refusals",
            "Checks refused with a gRPC error, by code",
            refusals.clone(),
        );
        let cache = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "cache_lookups",
            "Cache look-ups: redis_hit, fallback_hit, stale (past freshness: the source is asked), miss",
            cache.clone(),
        );
        let source_queries = Family::<SourceLabels, Counter>::default();
        registry.register(
            "source_queries",
            "Queries to the coverage source",
            source_queries.clone(),
        );
        let seconds = || Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        let source_latency = seconds();
        registry.register(
            "source_latency_seconds",
            "Coverage source query latency",
            source_latency.clone(),
        );
        let audit_commit_latency = seconds();
        registry.register(
            "audit_commit_latency_seconds",
            "Time to commit one group of audit records",
            audit_commit_latency.clone(),
        );
        let audit_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register(
            "audit_batch_size",
            "Audit records per group commit",
            audit_batch_size.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_commit_failures",
            "Failed audit commits",
            audit_failures.clone(),
        );
        let audit_spool_bytes = Gauge::default();
        registry.register(
            "audit_spool_bytes",
            "Bytes of audit records in the local spool, waiting for the audit store (0: none)",
            audit_spool_bytes.clone(),
        );
        let audit_spool_records = Gauge::default();
        registry.register(
            "audit_spool_records",
            "Audit records in the local spool, waiting for the audit store",
            audit_spool_records.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "checks_in_flight",
            "Coverage checks being processed now",
            in_flight.clone(),
        );
        let coalesced = Gauge::default();
        registry.register(
            "coalesced_waiting",
            "Checks waiting for another check's source query for the same subject",
            coalesced.clone(),
        );
        let enumerations = Counter::default();
        registry.register(
            "enumeration_suspected",
            "Checks refused because their station asked about too many distinct people",
            enumerations.clone(),
        );
        let presence = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "presence_proofs",
            "Presence proofs from the chip, by outcome: verified, failed (not verified), refused (challenge expired, reused or foreign)",
            presence.clone(),
        );
        let breaker_state = Gauge::default();
        registry.register(
            "source_breaker_state",
            "Circuit breaker around the coverage source: 0 closed, 1 half-open (one trial call), 2 open (source not asked)",
            breaker_state.clone(),
        );
        let breaker_refused = Counter::default();
        registry.register(
            "source_breaker_refused",
            "Source queries refused at once because the circuit breaker was open",
            breaker_refused.clone(),
        );
        let stale_answers = Counter::default();
        registry.register(
            "stale_answers",
            "Checks answered from a cache entry past its freshness because the source could not answer",
            stale_answers.clone(),
        );
        let refresh_ahead = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "cache_refresh_ahead",
            "Background refreshes of cache entries near expiry, by outcome: refreshed, failed",
            refresh_ahead.clone(),
        );
        let shed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "shed",
            "Checks refused with RESOURCE_EXHAUSTED because the service was at its limit of checks in flight, by reason: no_slot_in_time, queue_full",
            shed.clone(),
        );
        let waiting_for_slot = Gauge::default();
        registry.register(
            "checks_waiting_for_slot",
            "Checks waiting for one of the limited check slots",
            waiting_for_slot.clone(),
        );
        let source_lock = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "source_lock",
            "Source queries for a cache miss coordinated across replicas through Redis, by outcome: acquired (this replica asks), answered_elsewhere (another replica's answer used), wait_expired, redis_unavailable (asked without waiting)",
            source_lock.clone(),
        );
        Self {
            shed,
            waiting_for_slot,
            source_lock,
            breaker_state,
            breaker_refused,
            stale_answers,
            refresh_ahead,
            presence,
            enumerations,
            coalesced,
            registry,
            checks,
            refusals,
            cache,
            source_queries,
            source_latency,
            audit_commit_latency,
            audit_batch_size,
            audit_failures,
            audit_spool_bytes,
            audit_spool_records,
            in_flight,
        }
    }

    pub fn check_answered(&self, result: &'static str, cache: &'static str) {
        // Labels borrowed, not built: this runs for every answer.
        self.checks
            .get_or_create(&CheckLabels { result, cache })
            .inc();
    }

    pub fn check_refused(&self, code: tonic::Code) {
        self.refusals
            .get_or_create(&RefusalLabels {
                code: format!("{code:?}"),
            })
            .inc();
    }

    pub fn cache_lookup(&self, hit: Option<CacheTier>) {
        let outcome = match hit {
            Some(CacheTier::Redis) => "redis_hit",
            Some(CacheTier::Fallback) => "fallback_hit",
            None => "miss",
        };
        self.cache.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// A look-up that found only an entry past its freshness.
    pub fn cache_lookup_stale(&self) {
        self.cache
            .get_or_create(&OutcomeLabels { outcome: "stale" })
            .inc();
    }

    pub fn source_query(&self, source: &'static str, took: Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.source_queries
            .get_or_create(&SourceLabels { source, outcome })
            .inc();
        self.source_latency.observe(took.as_secs_f64());
    }

    pub fn audit_committed(&self, records: usize, took: Duration) {
        self.audit_batch_size.observe(records as f64);
        self.audit_commit_latency.observe(took.as_secs_f64());
    }

    pub fn audit_failed(&self) {
        self.audit_failures.inc();
    }

    /// The spool's size now (both zero when the audit store has everything).
    pub fn audit_spool(&self, bytes: u64, records: u64) {
        self.audit_spool_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.audit_spool_records
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    /// Counts a check in flight until the returned guard drops.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    pub fn presence_proof(&self, outcome: &'static str) {
        self.presence
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn enumeration_suspected(&self) {
        self.enumerations.inc();
    }

    /// Counts a check waiting on another's source query until the guard drops.
    pub fn coalesced_wait(&self) -> InFlight<'_> {
        self.coalesced.inc();
        InFlight(&self.coalesced)
    }

    pub fn breaker_state(&self, state: crate::source::breaker::BreakerState) {
        self.breaker_state.set(state as i64);
    }

    pub fn breaker_refused(&self) {
        self.breaker_refused.inc();
    }

    pub fn stale_answer(&self) {
        self.stale_answers.inc();
    }

    pub fn refresh_ahead(&self, refreshed: bool) {
        let outcome = if refreshed { "refreshed" } else { "failed" };
        self.refresh_ahead
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A check shed by the load limit, for `reason`.
    pub fn shed(&self, reason: &'static str) {
        self.shed.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts a check waiting for a slot until the guard drops.
    pub fn waiting_for_slot(&self) -> InFlight<'_> {
        self.waiting_for_slot.inc();
        InFlight(&self.waiting_for_slot)
    }

    pub fn source_lock(&self, outcome: &'static str) {
        self.source_lock
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Decrements its gauge when dropped.
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
