//! Abuse limits per station: a rate limit (token bucket), and an enumeration detector that
//! notices one station asking about far more distinct people than a reception desk sees, as
//! someone harvesting the registry would.
//!
//! State is per process and bounded: stations idle for an hour are forgotten, and a station's
//! set of recent subjects never grows past the threshold.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AbuseConfig {
    /// Sustained checks per second one station may make.
    pub station_rate_per_sec: f64,
    /// Checks a station may make at once above the sustained rate.
    pub station_burst: f64,
    /// Distinct people one station may check within `window_secs` before new ones are refused.
    pub distinct_subjects_per_window: usize,
    pub window_secs: u64,
}

impl Default for AbuseConfig {
    fn default() -> Self {
        // A busy desk checks a patient every 20-30 seconds; a hospital system's bulk run goes
        // through one station but is also bounded by these (raise them for such stations).
        Self {
            station_rate_per_sec: 50.0,
            station_burst: 200.0,
            distinct_subjects_per_window: 2000,
            window_secs: 600,
        }
    }
}

/// Why a check was held back.
#[derive(Clone, Debug, PartialEq)]
pub enum Limit {
    /// Over the rate limit: retry after this long.
    Rate { retry_after: Duration },
    /// Too many distinct people in the window: a suspected enumeration.
    Enumeration { distinct: usize },
}

struct StationState {
    tokens: f64,
    refilled: Instant,
    window_start: Instant,
    subjects: HashSet<String>,
    /// Whether this window's enumeration was already reported (one audit event per window).
    reported: bool,
}

pub struct AbuseLimits {
    config: AbuseConfig,
    stations: moka::sync::Cache<String, Arc<Mutex<StationState>>>,
}

/// What the caller must do about a limit: refuse, and record it if `first` (once per window).
pub struct Verdict {
    pub limit: Limit,
    pub first: bool,
}

impl AbuseLimits {
    pub fn new(config: AbuseConfig) -> Self {
        let stations = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_idle(Duration::from_secs(3600))
            .build();
        Self { config, stations }
    }

    /// Accounts one check by `station` about `subject_hash` at `now`; `Err` when it must be
    /// refused.
    pub fn admit(&self, station: &str, subject_hash: &str, now: Instant) -> Result<(), Verdict> {
        let state = self.stations.get_with(station.to_owned(), || {
            Arc::new(Mutex::new(StationState {
                tokens: self.config.station_burst,
                refilled: now,
                window_start: now,
                subjects: HashSet::new(),
                reported: false,
            }))
        });
        let mut s = state.lock().expect("station state lock");
        let rate = self.config.station_rate_per_sec.max(f64::MIN_POSITIVE);
        let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
        s.tokens = (s.tokens + elapsed * rate).min(self.config.station_burst);
        s.refilled = now;
        if s.tokens < 1.0 {
            let retry_after = Duration::from_secs_f64((1.0 - s.tokens) / rate);
            return Err(Verdict {
                limit: Limit::Rate { retry_after },
                first: false,
            });
        }
        if now.saturating_duration_since(s.window_start)
            >= Duration::from_secs(self.config.window_secs)
        {
            s.window_start = now;
            s.subjects.clear();
            s.reported = false;
        }
        let known = s.subjects.contains(subject_hash);
        if !known && s.subjects.len() >= self.config.distinct_subjects_per_window {
            let first = !std::mem::replace(&mut s.reported, true);
            let distinct = s.subjects.len() + 1;
            return Err(Verdict {
                limit: Limit::Enumeration { distinct },
                first,
            });
        }
        s.tokens -= 1.0;
        if !known {
            s.subjects.insert(subject_hash.to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: f64, burst: f64, distinct: usize) -> AbuseLimits {
        AbuseLimits::new(AbuseConfig {
            station_rate_per_sec: rate,
            station_burst: burst,
            distinct_subjects_per_window: distinct,
            window_secs: 600,
        })
    }

    #[test]
    fn rate_limit_refills() {
        let l = limits(2.0, 3.0, 1000);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.admit("a", "s", t).is_ok());
        }
        let refused = l.admit("a", "s", t).unwrap_err();
        assert!(matches!(refused.limit, Limit::Rate { .. }));
        assert!(l.admit("b", "s", t).is_ok(), "stations are limited apart");
        assert!(l.admit("a", "s", t + Duration::from_millis(600)).is_ok());
    }

    #[test]
    fn enumeration_is_noticed_once_per_window_and_known_subjects_pass() {
        let l = limits(1000.0, 1000.0, 3);
        let t = Instant::now();
        for s in ["1", "2", "3"] {
            assert!(l.admit("a", s, t).is_ok());
        }
        let first = l.admit("a", "4", t).unwrap_err();
        assert!(first.first && matches!(first.limit, Limit::Enumeration { distinct: 4 }));
        assert!(
            !l.admit("a", "5", t).unwrap_err().first,
            "reported once per window"
        );
        assert!(
            l.admit("a", "2", t).is_ok(),
            "people already seen can still be checked"
        );
        assert!(
            l.admit("a", "5", t + Duration::from_secs(601)).is_ok(),
            "a new window starts afresh"
        );
    }
}
