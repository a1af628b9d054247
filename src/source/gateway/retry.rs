//! How often and how late a failed gateway call is tried again: a bounded number of retries,
//! exponential back-off, and jitter so that many backends that lost the gateway together do
//! not come back to it in step.

use std::time::Duration;

use rand::Rng;

/// Retries of transient failures only (a timeout, a refused connection, HTTP 5xx, the
/// gateway's code 500); an answer, even an unwelcome one, is never retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries after the first; 0 disables retrying.
    pub retries: u32,
    /// The ceiling of the first back-off.
    pub base: Duration,
    /// No back-off is longer than this.
    pub max: Duration,
}

impl RetryPolicy {
    /// The back-off before retry number `retry` (0 for the first): a ceiling of `base * 2^retry`
    /// (at most `max`), and a delay drawn uniformly from its upper half. Half the ceiling is
    /// kept fixed so a retry never comes back at once; the other half spreads the clients out.
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(retry.min(30)))
            .min(self.max);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let floor_ms = ceiling_ms / 2;
        Duration::from_millis(rng.random_range(floor_ms..=ceiling_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const POLICY: RetryPolicy = RetryPolicy {
        retries: 6,
        base: Duration::from_millis(100),
        max: Duration::from_millis(1000),
    };

    fn schedule(seed: u64) -> Vec<Duration> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..POLICY.retries)
            .map(|r| POLICY.delay(r, &mut rng))
            .collect()
    }

    #[test]
    fn back_off_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let delays = schedule(42);
        let ceilings = [100u64, 200, 400, 800, 1000, 1000];
        for (delay, ceiling) in delays.iter().zip(ceilings) {
            let ms = delay.as_millis() as u64;
            assert!(
                (ceiling / 2..=ceiling).contains(&ms),
                "{ms} ms outside [{}, {ceiling}]",
                ceiling / 2
            );
        }
        // The same seed gives the same schedule (tests can rely on it); without jitter every
        // seed would give the same one too, which the next assertion rules out.
        assert_eq!(schedule(42), delays);
        assert_ne!(schedule(43), delays, "jitter varies with the seed");
        // Far retries neither overflow nor pass the cap.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(POLICY.delay(u32::MAX, &mut rng) <= POLICY.max);
    }

    #[test]
    fn jitter_spreads_clients_out() {
        // Many clients failing together draw different delays for the same retry: with a
        // fixed delay (no jitter) this set would have one element.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let distinct: std::collections::HashSet<_> =
            (0..50).map(|_| POLICY.delay(3, &mut rng)).collect();
        assert!(distinct.len() > 10, "{} distinct delays", distinct.len());
    }
}
