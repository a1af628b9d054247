//! Load shedding: a bound on coverage checks in flight in this process, a short bounded wait
//! for a slot, and a quick RESOURCE_EXHAUSTED beyond it.
//!
//! Without a bound, a slow source (the gateway at peak hours) lets checks pile up: each one
//! holds memory, a database connection and its caller's patience, latency grows without bound
//! and the desk waits for a deadline instead of being told to retry. With it, the checks
//! admitted finish at the speed the source allows, the rest are refused at once, and what is
//! not a check (gRPC health, the operator port's `/health` and `/metrics`, audit queries) is
//! never queued behind them.
//!
//! A shed check has done nothing: no look-up, no source query, no record. It is not audited one
//! by one (a record per refusal would add audit load exactly when the service is saturated, and
//! would say nothing about a person); the first shed check after a quiet spell writes one
//! `throttled` record for the episode, and `bhyt_shed_total{reason}` counts every one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;
use crate::metrics::Metrics;

/// Shedding that resumes after this long without a shed check is a new episode, with a new
/// audit record.
pub const EPISODE_QUIET: Duration = Duration::from_secs(60);

/// Why a check was shed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shed {
    /// No slot came free within the wait.
    NoSlotInTime,
    /// So many checks were already waiting that this one would not get a slot in time anyway.
    QueueFull,
}

impl Shed {
    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Shed::NoSlotInTime => "no_slot_in_time",
            Shed::QueueFull => "queue_full",
        }
    }
}

/// Permission to run one check; the slot is given back when it drops.
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
}

/// The checks this process runs at once.
pub struct CheckSlots {
    /// `None`: no bound (`limits.max_checks_in_flight = 0`).
    slots: Option<Arc<Semaphore>>,
    limit: usize,
    max_waiting: usize,
    waiting: AtomicUsize,
    wait: Duration,
    last_shed: Mutex<Option<Instant>>,
    metrics: Arc<Metrics>,
}

impl CheckSlots {
    pub fn new(limits: &Limits, metrics: Arc<Metrics>) -> Self {
        let limit = limits.max_checks_in_flight;
        Self {
            slots: (limit > 0).then(|| Arc::new(Semaphore::new(limit))),
            limit,
            max_waiting: limits.max_checks_waiting,
            waiting: AtomicUsize::new(0),
            wait: Duration::from_millis(limits.slot_wait_ms),
            last_shed: Mutex::new(None),
            metrics,
        }
    }

    /// A slot for one check: at once if one is free, else after waiting at most
    /// `slot_wait_ms` in line (first come, first served) behind at most `max_checks_waiting`
    /// others.
    pub async fn admit(&self) -> Result<Slot, Shed> {
        let Some(slots) = &self.slots else {
            return Ok(Slot { _permit: None });
        };
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return Ok(Slot {
                _permit: Some(permit),
            });
        }
        let result = if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            Err(Shed::QueueFull)
        } else {
            let _waiting = self.metrics.waiting_for_slot();
            match tokio::time::timeout(self.wait, slots.clone().acquire_owned()).await {
                Ok(Ok(permit)) => Ok(Slot {
                    _permit: Some(permit),
                }),
                // The semaphore is never closed; a timeout is the only way here.
                _ => Err(Shed::NoSlotInTime),
            }
        };
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Err(shed) = result {
            self.metrics.shed(shed.reason());
        }
        result
    }

    /// Whether a shed at `now` begins an episode (none in the last [`EPISODE_QUIET`]); every
    /// shed check calls it, so an overload that lasts keeps its one episode.
    pub fn begins_episode(&self, now: Instant) -> bool {
        let mut last = self.last_shed.lock().expect("last shed lock");
        let begins = last.is_none_or(|t| now.saturating_duration_since(t) >= EPISODE_QUIET);
        *last = Some(now);
        begins
    }

    /// What the caller is told: precise enough to act on, with the bound in force.
    pub fn message(&self, shed: Shed) -> String {
        let why = match shed {
            Shed::NoSlotInTime => format!(
                "all {} check slots stayed busy for {} ms",
                self.limit,
                self.wait.as_millis()
            ),
            Shed::QueueFull => format!(
                "all {} check slots are busy and {} checks are already waiting",
                self.limit, self.max_waiting
            ),
        };
        format!(
            "overloaded: {why}; this check was not started (nothing looked up or recorded): \
             retry it with the same request_id after the pause in grpc-retry-pushback-ms"
        )
    }

    /// How long a shed caller should pause before retrying: the wait it just had, spread by up
    /// to as much again so the callers shed together do not all come back together.
    pub fn pushback(&self) -> Duration {
        let base = self.wait.max(Duration::from_millis(50));
        base + base.mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(limit: usize, max_waiting: usize, wait_ms: u64) -> CheckSlots {
        let limits = Limits {
            max_checks_in_flight: limit,
            max_checks_waiting: max_waiting,
            slot_wait_ms: wait_ms,
            ..Limits::default()
        };
        CheckSlots::new(&limits, Arc::new(Metrics::new()))
    }

    #[tokio::test]
    async fn a_full_service_waits_briefly_then_sheds() {
        let slots = Arc::new(slots(2, 10, 50));
        let (a, _b) = (slots.admit().await.unwrap(), slots.admit().await.unwrap());
        // Full: the third waits its 50 ms and is shed.
        assert_eq!(slots.admit().await.err(), Some(Shed::NoSlotInTime));
        // A slot freed during a (longer) wait is taken.
        let patient = Arc::new(self::slots(2, 10, 10_000));
        let held = patient.admit().await.unwrap();
        let _other = patient.admit().await.unwrap();
        let waiter = tokio::spawn({
            let patient = patient.clone();
            async move { patient.admit().await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        let waited = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert_eq!(waited.expect("not the full wait").unwrap(), Ok(()));
        drop(a);
        let metrics = slots.metrics.render();
        assert!(
            metrics.contains("bhyt_shed_total{reason=\"no_slot_in_time\"} 1"),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn beyond_the_waiting_bound_a_check_is_shed_at_once() {
        // A 10 s wait: the second caller waits in line, the third is refused without waiting
        // (the 5 s bound below would fail it otherwise).
        let slots = Arc::new(slots(1, 1, 10_000));
        let _held = slots.admit().await.unwrap();
        let in_line = tokio::spawn({
            let slots = slots.clone();
            async move { slots.admit().await.map(|_| ()) }
        });
        while slots.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        let refused = tokio::time::timeout(Duration::from_secs(5), slots.admit()).await;
        assert_eq!(refused.expect("at once").err(), Some(Shed::QueueFull));
        in_line.abort();
    }

    #[tokio::test]
    async fn no_bound_when_the_limit_is_zero() {
        let slots = slots(0, 0, 0);
        let held: Vec<_> = futures::future::join_all((0..1000).map(|_| slots.admit())).await;
        assert!(held.iter().all(Result::is_ok));
    }

    #[test]
    fn one_audit_record_per_episode() {
        let slots = slots(1, 1, 1);
        let t = Instant::now();
        assert!(slots.begins_episode(t));
        assert!(!slots.begins_episode(t + Duration::from_secs(30)));
        // 59 s after the last shed: still the same episode, though 89 s after its start.
        assert!(!slots.begins_episode(t + Duration::from_secs(89)));
        assert!(slots.begins_episode(t + Duration::from_secs(89) + EPISODE_QUIET));
    }

    #[test]
    fn the_message_names_the_bound_and_says_what_to_do() {
        let message = slots(256, 512, 250).message(Shed::NoSlotInTime);
        assert!(message.starts_with("overloaded: all 256 check slots stayed busy for 250 ms"));
        assert!(message.contains("same request_id"));
        let pushback = slots(256, 512, 250).pushback();
        assert!((250..=500).contains(&pushback.as_millis()), "{pushback:?}");
    }
}
