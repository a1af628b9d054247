//! A circuit breaker around any coverage source: when the source keeps failing (a gateway that
//! is down or hanging, a registry database that is gone), checks stop waiting for its timeouts.
//! After `failure_threshold` consecutive failures the circuit opens: for `cool_down` every check
//! is refused at once ([`SourceError::CircuitOpen`]) without calling the source, so the desk gets
//! a stale cached answer or "cannot verify now" immediately, and a struggling gateway is not
//! buried under retries. Then one trial call goes through (half-open): success closes the
//! circuit, failure opens it for another cool-down.
//!
//! Only [`SourceError::Unavailable`] counts as a failure (timeouts become that too): an answer
//! the source gave, even an unreadable one, shows the source is up.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{CoverageSource, SourceAnswer, SourceError, SourceQuery};
use crate::metrics::Metrics;

/// Where the breaker stands; also the value of the `source_breaker_state` gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

/// The time as the breaker sees it; tests substitute a clock they move by hand.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// When to open and for how long.
#[derive(Clone, Copy, Debug)]
pub struct BreakerSettings {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long it stays open before one trial call is let through.
    pub cool_down: Duration,
}

enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial call is in flight; everyone else is refused until it ends.
    HalfOpen,
}

impl State {
    fn public(&self) -> BreakerState {
        match self {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

pub struct CircuitBreaker {
    inner: Arc<dyn CoverageSource>,
    settings: BreakerSettings,
    state: Mutex<State>,
    clock: Clock,
    metrics: Arc<Metrics>,
}

/// What a caller may do now.
enum Permit {
    Call,
    /// The one trial call of the half-open state.
    Trial,
    Refused(Duration),
}

impl CircuitBreaker {
    pub fn new(
        inner: Arc<dyn CoverageSource>,
        settings: BreakerSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::with_clock(inner, settings, metrics, Arc::new(Instant::now))
    }

    pub fn with_clock(
        inner: Arc<dyn CoverageSource>,
        settings: BreakerSettings,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Self {
        metrics.breaker_state(BreakerState::Closed);
        Self {
            inner,
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
            clock,
            metrics,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state.lock().expect("breaker state").public()
    }

    fn permit(&self) -> Permit {
        let now = (self.clock)();
        let mut state = self.state.lock().expect("breaker state");
        match *state {
            State::Closed { .. } => Permit::Call,
            State::Open { until } if now >= until => {
                self.change(&mut state, State::HalfOpen);
                Permit::Trial
            }
            State::Open { until } => Permit::Refused(until - now),
            State::HalfOpen => Permit::Refused(Duration::ZERO),
        }
    }

    /// Records how a call ended (`trial`: it was the half-open trial).
    fn record(&self, trial: bool, failed: bool) {
        let now = (self.clock)();
        let mut state = self.state.lock().expect("breaker state");
        let next = match (&*state, failed) {
            (State::Closed { failures }, true) => {
                let failures = failures + 1;
                if failures >= self.settings.failure_threshold {
                    State::Open {
                        until: now + self.settings.cool_down,
                    }
                } else {
                    State::Closed { failures }
                }
            }
            (State::Closed { .. }, false) => State::Closed { failures: 0 },
            (State::HalfOpen, true) if trial => State::Open {
                until: now + self.settings.cool_down,
            },
            (State::HalfOpen, false) if trial => State::Closed { failures: 0 },
            // A call let through before the circuit opened, ending after: the trial decides.
            _ => return,
        };
        self.change(&mut state, next);
    }

    /// Moves to `next`, logging and exporting a change of state once.
    fn change(&self, state: &mut State, next: State) {
        let (before, after) = (state.public(), next.public());
        *state = next;
        if before == after {
            return;
        }
        self.metrics.breaker_state(after);
        match after {
            BreakerState::Open => tracing::warn!(
                source = self.inner.name(),
                cool_down_ms = self.settings.cool_down.as_millis() as u64,
                "coverage source failing: circuit open, checks answered without it"
            ),
            BreakerState::HalfOpen => {
                tracing::info!(
                    source = self.inner.name(),
                    "circuit half-open: one trial call"
                )
            }
            _ => tracing::info!(
                source = self.inner.name(),
                "coverage source answering again: circuit closed"
            ),
        }
    }
}

/// Ends a call for the breaker even when the caller gives up on it (a request deadline drops the
/// future): a trial abandoned half-way counts as a failure, so the circuit never stays half-open.
struct Outcome<'a> {
    breaker: &'a CircuitBreaker,
    trial: bool,
    failed: Option<bool>,
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        match self.failed {
            Some(failed) => self.breaker.record(self.trial, failed),
            None if self.trial => self.breaker.record(true, true),
            None => {}
        }
    }
}

#[async_trait]
impl CoverageSource for CircuitBreaker {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn check(&self, query: &SourceQuery<'_>) -> Result<SourceAnswer, SourceError> {
        let trial = match self.permit() {
            Permit::Call => false,
            Permit::Trial => true,
            Permit::Refused(retry_in) => {
                self.metrics.breaker_refused();
                return Err(SourceError::CircuitOpen { retry_in });
            }
        };
        let mut outcome = Outcome {
            breaker: self,
            trial,
            failed: None,
        };
        let answer = self.inner.check(query).await;
        outcome.failed = Some(matches!(answer, Err(SourceError::Unavailable(_))));
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::coverage::{BirthDate, Subject};
    use emrtd::cccd::id_number::CitizenId;

    /// A source that fails while `down` is set and counts the calls that reach it.
    #[derive(Default)]
    struct Flaky {
        down: std::sync::atomic::AtomicBool,
        malformed: std::sync::atomic::AtomicBool,
        calls: AtomicU32,
    }

    #[async_trait]
    impl CoverageSource for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        async fn check(&self, _query: &SourceQuery<'_>) -> Result<SourceAnswer, SourceError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.malformed.load(Ordering::SeqCst) {
                Err(SourceError::Malformed("garbled".into()))
            } else if self.down.load(Ordering::SeqCst) {
                Err(SourceError::Unavailable("down".into()))
            } else {
                Ok(SourceAnswer::Facts(None))
            }
        }
    }

    struct Fixture {
        source: Arc<Flaky>,
        breaker: CircuitBreaker,
        now: Arc<Mutex<Instant>>,
        metrics: Arc<Metrics>,
        subject: Subject,
    }

    const COOL_DOWN: Duration = Duration::from_secs(10);

    fn fixture() -> Fixture {
        let source = Arc::new(Flaky::default());
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock_now = now.clone();
        let metrics = Arc::new(Metrics::new());
        let breaker = CircuitBreaker::with_clock(
            source.clone(),
            BreakerSettings {
                failure_threshold: 3,
                cool_down: COOL_DOWN,
            },
            metrics.clone(),
            Arc::new(move || *clock_now.lock().unwrap()),
        );
        let subject = Subject::Citizen(CitizenId::parse("001099012345").expect("a valid CCCD"));
        Fixture {
            source,
            breaker,
            now,
            metrics,
            subject,
        }
    }

    impl Fixture {
        async fn call(&self) -> Result<SourceAnswer, SourceError> {
            let query = SourceQuery {
                subject: &self.subject,
                full_name: "",
                birth: BirthDate::new(1999, None, None).expect("a year"),
                operator_name: "",
                operator_id: "",
            };
            self.breaker.check(&query).await
        }
        fn advance(&self, by: Duration) {
            *self.now.lock().unwrap() += by;
        }
        fn calls(&self) -> u32 {
            self.source.calls.load(Ordering::SeqCst)
        }
        fn down(&self, down: bool) {
            self.source.down.store(down, Ordering::SeqCst);
        }
    }

    // Without the breaker (threshold never reached) every call would reach the source: the
    // assertions on `calls()` below fail.
    #[tokio::test]
    async fn opens_after_consecutive_failures_and_refuses_without_calling() {
        let f = fixture();
        f.down(true);
        for _ in 0..3 {
            assert!(matches!(f.call().await, Err(SourceError::Unavailable(_))));
        }
        assert_eq!(f.breaker.state(), BreakerState::Open);
        for _ in 0..5 {
            assert!(matches!(
                f.call().await,
                Err(SourceError::CircuitOpen { .. })
            ));
        }
        assert_eq!(f.calls(), 3, "refused calls never reach the source");
        let metrics = f.metrics.render();
        assert!(metrics.contains("bhyt_source_breaker_state 2"), "{metrics}");
        assert!(
            metrics.contains("bhyt_source_breaker_refused_total 5"),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn a_success_resets_the_count_of_failures() {
        let f = fixture();
        for _ in 0..3 {
            f.down(true);
            f.call().await.unwrap_err();
            f.call().await.unwrap_err();
            f.down(false);
            f.call().await.unwrap();
        }
        assert_eq!(f.breaker.state(), BreakerState::Closed, "never 3 in a row");
        assert_eq!(f.calls(), 9);
    }

    #[tokio::test]
    async fn an_unreadable_answer_is_not_an_outage() {
        let f = fixture();
        f.source.malformed.store(true, Ordering::SeqCst);
        for _ in 0..5 {
            assert!(matches!(f.call().await, Err(SourceError::Malformed(_))));
        }
        assert_eq!(f.breaker.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn after_the_cool_down_one_trial_decides() {
        let f = fixture();
        f.down(true);
        for _ in 0..3 {
            f.call().await.unwrap_err();
        }
        // Still down after the cool-down: the trial fails and the circuit opens again.
        f.advance(COOL_DOWN);
        assert!(matches!(f.call().await, Err(SourceError::Unavailable(_))));
        assert_eq!(f.calls(), 4, "exactly one trial call");
        assert_eq!(f.breaker.state(), BreakerState::Open);
        f.advance(COOL_DOWN / 2);
        assert!(matches!(
            f.call().await,
            Err(SourceError::CircuitOpen { .. })
        ));
        assert_eq!(
            f.calls(),
            4,
            "a new cool-down started with the failed trial"
        );
        // Back up: the next trial succeeds and closes the circuit.
        f.down(false);
        f.advance(COOL_DOWN / 2);
        f.call().await.unwrap();
        assert_eq!(f.breaker.state(), BreakerState::Closed);
        f.call().await.unwrap();
        assert_eq!(f.calls(), 6);
        assert!(
            f.metrics.render().contains("bhyt_source_breaker_state 0"),
            "the gauge follows the state"
        );
    }

    #[tokio::test]
    async fn half_open_lets_one_call_through_and_an_abandoned_trial_reopens() {
        let f = fixture();
        f.down(true);
        for _ in 0..3 {
            f.call().await.unwrap_err();
        }
        f.advance(COOL_DOWN);
        // The trial is taken; while it is in flight everyone else is refused.
        assert!(matches!(f.breaker.permit(), Permit::Trial));
        assert_eq!(f.breaker.state(), BreakerState::HalfOpen);
        assert!(matches!(
            f.call().await,
            Err(SourceError::CircuitOpen { .. })
        ));
        assert_eq!(f.calls(), 3);
        // The trial's caller gives up (its request deadline dropped the call): counted as a
        // failure, so the circuit does not stay half-open refusing everyone for ever.
        drop(Outcome {
            breaker: &f.breaker,
            trial: true,
            failed: None,
        });
        assert_eq!(f.breaker.state(), BreakerState::Open);
    }
}
