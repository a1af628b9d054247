//! Degraded modes of the coverage source, against the real gateway simulator (`gateway-sim`)
//! and its run-time faults: the circuit breaker, stale cache answers up to the maximum
//! staleness, refresh ahead of expiry, and an outage in the middle of a concurrent load.
//!
//! Every test is bounded in time and stops by itself (the simulator dies with its handle).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bhyt_proto::v1::{CacheStatus, CheckCoverageRequest, CheckCoverageResponse, ResultCode};
use bhyt_verify::config::{Config, Secret, SourceKind};
use bhyt_verify::coverage::{self, CardRecord, Claim};
use bhyt_verify::registry::generate::SyntheticCard;
use time::OffsetDateTime;

use crate::app::{self, TestBackend};
use crate::fixtures::{self, by_citizen};
use crate::support::{self, GATEWAY_USERNAME, GatewaySim};

const PASSWORD: &str = "deg-Pass-81c2";

struct Setup {
    sim: GatewaySim,
    cards: Vec<SyntheticCard>,
    backend: TestBackend,
    _dir: tempfile::TempDir,
}

/// A backend on the simulator with short timeouts, no retries, the in-process cache and no
/// station limits in the way; `tune` adjusts the rest.
async fn setup(tune: impl FnOnce(&mut Config)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    let cards = fixtures::seed(&config, 300).await;
    let sim = GatewaySim::start(&config.registry_url(), PASSWORD, &[]);
    config.source.kind = SourceKind::Gateway;
    config.source.url = sim.url.clone();
    config.source.dev_plain_http = true;
    config.source.username = GATEWAY_USERNAME.to_owned();
    config.source.password = Secret::new(PASSWORD);
    config.source.connect_timeout_ms = 500;
    config.source.request_timeout_ms = 500;
    config.source.total_timeout_ms = 1_500;
    config.source.retries = 0;
    config.abuse.station_rate_per_sec = 100_000.0;
    config.abuse.station_burst = 100_000.0;
    tune(&mut config);
    let backend = TestBackend::start(config).await;
    Setup {
        sim,
        cards,
        backend,
        _dir: dir,
    }
}

/// Cards with a citizen ID and a full date of birth, as the desk would type them, still valid
/// tomorrow (an expired card's entry lives briefly and is never stale), one per citizen (a
/// re-issued card shares its holder's ID with the old one).
fn people(cards: &[SyntheticCard]) -> Vec<&CardRecord> {
    let tomorrow = coverage::vietnam_date(OffsetDateTime::now_utc())
        .next_day()
        .unwrap();
    let mut per_citizen: BTreeMap<&str, usize> = BTreeMap::new();
    for id in cards.iter().filter_map(|c| c.record.citizen_id.as_deref()) {
        *per_citizen.entry(id).or_default() += 1;
    }
    cards
        .iter()
        .map(|c| &c.record)
        .filter(|r| r.birth.day.is_some() && r.valid_to > tomorrow)
        .filter(|r| {
            r.citizen_id
                .as_deref()
                .is_some_and(|id| per_citizen[id] == 1)
        })
        .collect()
}

async fn check(backend: &TestBackend, request: CheckCoverageRequest) -> CheckCoverageResponse {
    backend
        .verification()
        .await
        .check_coverage(request)
        .await
        .expect("an answer")
        .into_inner()
}

fn result(response: &CheckCoverageResponse) -> ResultCode {
    ResultCode::try_from(response.result).expect("a known result code")
}

fn cache_of(response: &CheckCoverageResponse) -> (CacheStatus, bool, u32) {
    let cache = response.cache.expect("cache info");
    (
        CacheStatus::try_from(cache.status).expect("a known cache status"),
        cache.stale,
        cache.age_seconds,
    )
}

/// What the backend's own judge says of `card` for a request that matches it.
fn expected(card: &CardRecord) -> ResultCode {
    let claim = Claim {
        full_name: card.full_name.clone(),
        birth: card.birth,
        facility_code: fixtures::FACILITY.into(),
    };
    coverage::judge(
        Some(card),
        &claim,
        coverage::vietnam_date(OffsetDateTime::now_utc()),
    )
    .result
}

fn assert_cannot_verify(response: &CheckCoverageResponse) {
    assert_eq!(
        result(response),
        ResultCode::CannotVerifyNow,
        "{response:?}"
    );
    assert!(!response.usable);
    let message = response.message.as_ref().expect("a message");
    assert!(message.en.contains("photo ID"), "the fallback: {message:?}");
    assert!(message.vi.contains("giấy tờ tùy thân có ảnh"));
}

/// Step 1 against the simulator's outage: after `failure_threshold` failed checks the source is
/// no longer asked until the cool-down ends; then one trial closes the circuit. Without the
/// breaker (threshold 0) every check would query the gateway: `source_queries` errors would be
/// 7, and no refusal would be counted.
#[tokio::test]
async fn the_breaker_opens_on_a_gateway_outage_and_closes_when_it_returns() {
    let Setup {
        sim,
        cards,
        backend,
        _dir,
    } = setup(|c| {
        c.cache.enabled = false;
        c.source.breaker_failure_threshold = 2;
        c.source.breaker_cool_down_ms = 4_000;
    })
    .await;
    let person = people(&cards)[0];
    assert_eq!(
        backend.metric("bhyt_source_breaker_state", &[]).await,
        0.0,
        "closed at start"
    );
    sim.set(r#"{"outage": "drop"}"#).await;
    let opened = Instant::now();
    for n in 0..7 {
        assert_cannot_verify(&check(&backend, by_citizen(&format!("b{n}"), person)).await);
    }
    assert!(
        opened.elapsed() < Duration::from_secs(4),
        "the checks ran within the cool-down; the test cannot tell otherwise"
    );
    let errors = backend
        .metric("bhyt_source_queries_total", &["outcome=\"error\""])
        .await;
    assert_eq!(errors, 2.0, "only the first two checks reached the gateway");
    assert_eq!(
        backend
            .metric("bhyt_source_breaker_refused_total", &[])
            .await,
        5.0
    );
    assert_eq!(backend.metric("bhyt_source_breaker_state", &[]).await, 2.0);

    // The gateway is back, but the circuit stays open until the cool-down ends.
    sim.set(r#"{"outage": "none"}"#).await;
    tokio::time::sleep(Duration::from_millis(4_200).saturating_sub(opened.elapsed())).await;
    let response = check(&backend, by_citizen("trial", person)).await;
    assert_eq!(
        result(&response),
        expected(person),
        "the trial call answers"
    );
    assert_eq!(backend.metric("bhyt_source_breaker_state", &[]).await, 0.0);
    let response = check(&backend, by_citizen("after", person)).await;
    assert_eq!(result(&response), expected(person));
    assert_eq!(sim.counts().await.checks, 2, "trial and the next check");
}

/// Step 2, with Redis as the cache: an entry past its freshness answers while the gateway is
/// down, marked stale with its age, until the maximum staleness; after that the desk is told
/// it cannot verify now, with the fallback. Without stale answers the first outage check would
/// be CANNOT_VERIFY_NOW; without the bound the last one would still be answered.
#[tokio::test]
async fn stale_answers_during_an_outage_up_to_the_maximum_staleness() {
    let redis = support::RedisServer::start();
    let Setup {
        sim,
        cards,
        backend,
        _dir,
    } = setup(|c| {
        c.cache.redis_url = redis.url();
        c.cache.ttl_secs = 1;
        c.cache.max_stale_secs = 2;
        c.cache.refresh_ahead_percent = 0;
    })
    .await;
    let (a, b) = (people(&cards)[0], people(&cards)[1]);
    // Wait for the background connection to Redis, so the entry goes there.
    for _ in 0..200 {
        if backend.http_get("/health").await.1.contains("\"redis\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fetched = Instant::now();
    let first = check(&backend, by_citizen("s1", a)).await;
    assert_eq!(cache_of(&first).0, CacheStatus::Miss);
    let keys = redis.keys();
    assert_eq!(keys.len(), 1, "the entry is in Redis: {keys:?}");
    // Redis keeps it for freshness plus the stale allowance: 3 s, not 1.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((2..=3).contains(&ttl), "Redis TTL {ttl}");

    sim.set(r#"{"outage": "drop"}"#).await;
    tokio::time::sleep(Duration::from_millis(1_300).saturating_sub(fetched.elapsed())).await;
    let stale = check(&backend, by_citizen("s2", a)).await;
    assert_eq!(result(&stale), expected(a), "the last known facts answer");
    let (status, is_stale, age) = cache_of(&stale);
    assert_eq!((status, is_stale), (CacheStatus::Hit, true), "{stale:?}");
    assert!(age >= 1, "its age is given: {age}");
    assert!(stale.coverage.is_some());
    // Someone never cached gets the clear answer at once.
    assert_cannot_verify(&check(&backend, by_citizen("s3", b)).await);
    assert_eq!(backend.metric("bhyt_stale_answers_total", &[]).await, 1.0);
    assert_eq!(
        backend
            .metric("bhyt_checks_total", &["cache=\"stale\""])
            .await,
        1.0
    );

    // Past freshness plus the allowance (3 s after it was fetched): no answer from the cache.
    tokio::time::sleep(Duration::from_millis(4_200).saturating_sub(fetched.elapsed())).await;
    let late = check(&backend, by_citizen("s4", a)).await;
    assert_cannot_verify(&late);
    assert!(!cache_of(&late).1, "not marked stale: not from the cache");

    // The gateway back: a fresh answer, no longer stale.
    sim.set(r#"{"outage": "none"}"#).await;
    let back = check(&backend, by_citizen("s5", a)).await;
    assert_eq!(result(&back), expected(a));
    assert_eq!(cache_of(&back).0, CacheStatus::Miss);
    assert!(!cache_of(&back).1);
}

/// Step 3: a hot citizen's entry near the end of its freshness is renewed in the background
/// once while every check keeps being answered from the cache. The gateway is slow (1 s) during
/// the renewal. Without refresh ahead the simulator would count one card check, not two, and
/// the answers' age would not drop back.
#[tokio::test]
async fn a_hot_citizen_is_refreshed_ahead_once_while_answers_come_from_the_cache() {
    let Setup {
        sim,
        cards,
        backend,
        _dir,
    } = setup(|c| {
        c.cache.ttl_secs = 10;
        c.cache.refresh_ahead_percent = 50;
        c.source.request_timeout_ms = 5_000;
        c.source.total_timeout_ms = 8_000;
    })
    .await;
    let hot = people(&cards)[0];
    let fetched = Instant::now();
    let first = check(&backend, by_citizen("h0", hot)).await;
    assert_eq!(cache_of(&first).0, CacheStatus::Miss);
    assert_eq!(sim.counts().await.checks, 1);
    sim.set(r#"{"latency_ms": 1000}"#).await;

    // Fresh for 10 s; the last 5 s are the refresh window. Stay well inside freshness.
    tokio::time::sleep(Duration::from_millis(5_200).saturating_sub(fetched.elapsed())).await;
    let mut ages = Vec::new();
    let mut n = 0;
    while fetched.elapsed() < Duration::from_millis(7_800) {
        n += 1;
        let response = check(&backend, by_citizen(&format!("h{n}"), hot)).await;
        assert_eq!(result(&response), expected(hot));
        let (status, stale, age) = cache_of(&response);
        assert_eq!(
            (status, stale),
            (CacheStatus::Fallback, false),
            "answered from the cache, never waiting for the gateway: {response:?}"
        );
        ages.push(age);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sim.counts().await.checks,
        2,
        "exactly one refresh for {n} checks in the window"
    );
    assert!(ages[0] >= 5, "old before the refresh: {ages:?}");
    assert!(
        *ages.last().unwrap() <= 3,
        "renewed by the refresh: {ages:?}"
    );
    assert_eq!(
        backend
            .metric("bhyt_cache_refresh_ahead_total", &["refreshed"])
            .await,
        1.0
    );
}

/// Figures of one class of checks in the outage test.
#[derive(Default, Debug)]
struct Tally {
    sent: u64,
    errors: u64,
    wrong: u64,
    by_outcome: BTreeMap<(String, bool), u64>,
    slowest: Duration,
}

/// Step 4: the gateway hangs in the middle of a concurrent load. Checks for cached citizens
/// (entries already past freshness) are all answered from the cache, marked stale, with no
/// error; uncached citizens get CANNOT_VERIFY_NOW, and once the breaker is open the gateway is
/// not asked for them (without the breaker every one of them would wait for the gateway's
/// timeout and count a source error). When the gateway returns, fresh answers come back without
/// any action.
#[tokio::test]
async fn a_gateway_outage_mid_load_answers_cached_citizens_stale_and_recovers() {
    const WORKERS: usize = 8;
    const LOAD: Duration = Duration::from_secs(5);
    let Setup {
        sim,
        cards,
        backend,
        _dir,
    } = setup(|c| {
        c.cache.ttl_secs = 2;
        c.cache.max_stale_secs = 600;
        c.cache.refresh_ahead_percent = 0;
        c.source.breaker_failure_threshold = 3;
        c.source.breaker_cool_down_ms = 1_000;
    })
    .await;
    let people = people(&cards);
    let (cached, uncached) = (&people[..20], &people[20..40]);
    for (n, person) in cached.iter().enumerate() {
        let response = check(&backend, by_citizen(&format!("warm{n}"), person)).await;
        assert_eq!(result(&response), expected(person));
    }
    let warmed = sim.counts().await.checks;
    // Every entry is past its freshness (2 s): each check needs the gateway or the stale entry.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    sim.set(r#"{"outage": "hang"}"#).await;

    let backend = Arc::new(backend);
    let cached: Arc<Vec<CardRecord>> = Arc::new(cached.iter().map(|c| (*c).clone()).collect());
    let uncached: Arc<Vec<CardRecord>> = Arc::new(uncached.iter().map(|c| (*c).clone()).collect());
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (backend, cached, uncached) = (backend.clone(), cached.clone(), uncached.clone());
        workers.push(tokio::spawn(async move {
            let mut client = backend.verification().await;
            let (mut hits, mut misses) = (Tally::default(), Tally::default());
            let mut n = 0usize;
            while started.elapsed() < LOAD {
                n += 1;
                let is_cached = n % 4 != 0;
                let (people, tally) = if is_cached {
                    (&cached, &mut hits)
                } else {
                    (&uncached, &mut misses)
                };
                let person = &people[(n * 7 + w) % people.len()];
                let mut request = by_citizen(&format!("w{w}-{n}"), person);
                request.station_id = format!("desk-{w}");
                tally.sent += 1;
                let sent = Instant::now();
                let response = match client.check_coverage(request).await {
                    Ok(response) => response.into_inner(),
                    Err(_) => {
                        tally.errors += 1;
                        continue;
                    }
                };
                tally.slowest = tally.slowest.max(sent.elapsed());
                let code = result(&response);
                let (_, stale, age) = cache_of(&response);
                *tally
                    .by_outcome
                    .entry((code.as_str_name().to_owned(), stale))
                    .or_default() += 1;
                let right = if is_cached {
                    code == expected(person) && stale && age >= 2
                } else {
                    code == ResultCode::CannotVerifyNow && !stale
                };
                tally.wrong += u64::from(!right);
            }
            (hits, misses)
        }));
    }
    let (mut hits, mut misses) = (Tally::default(), Tally::default());
    for worker in workers {
        let (h, m) = worker.await.expect("a worker");
        for (total, part) in [(&mut hits, h), (&mut misses, m)] {
            total.sent += part.sent;
            total.errors += part.errors;
            total.wrong += part.wrong;
            total.slowest = total.slowest.max(part.slowest);
            for (k, v) in part.by_outcome {
                *total.by_outcome.entry(k).or_default() += v;
            }
        }
    }
    let source_errors = backend
        .metric("bhyt_source_queries_total", &["outcome=\"error\""])
        .await;
    let refused = backend
        .metric("bhyt_source_breaker_refused_total", &[])
        .await;
    println!(
        "outage: cached {hits:?}\noutage: uncached {misses:?}\n\
         source queries failed {source_errors}, refused by the open breaker {refused}"
    );
    assert!(hits.sent > 0 && misses.sent > 0);
    assert_eq!(hits.errors + misses.errors, 0, "no errors");
    assert_eq!(hits.wrong, 0, "cached citizens: right answer, marked stale");
    assert_eq!(misses.wrong, 0, "uncached citizens: CANNOT_VERIFY_NOW");
    assert!(refused > 0.0, "the breaker opened");
    // Every stale and uncached check needed the gateway; with the breaker, few asked it.
    assert!(
        source_errors < (hits.sent + misses.sent) as f64 / 4.0,
        "{source_errors} of {} checks reached the dead gateway",
        hits.sent + misses.sent
    );

    // Recovery: nothing but the gateway coming back.
    sim.set(r#"{"outage": "none"}"#).await;
    let recovering = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        let response = check(&backend, by_citizen(&format!("r{tries}"), &uncached[0])).await;
        if result(&response) != ResultCode::CannotVerifyNow {
            assert_eq!(result(&response), expected(&uncached[0]));
            break;
        }
        assert!(
            recovering.elapsed() < Duration::from_secs(20),
            "no recovery"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut fresh = 0;
    for (n, person) in cached.iter().enumerate() {
        let response = check(&backend, by_citizen(&format!("after{n}"), person)).await;
        assert_eq!(result(&response), expected(person));
        let (status, stale, _) = cache_of(&response);
        assert!(!stale, "fresh again: {response:?}");
        fresh += u64::from(status == CacheStatus::Miss);
    }
    assert_eq!(fresh, cached.len() as u64, "each renewed from the gateway");
    assert!(sim.counts().await.checks > warmed);
    println!(
        "recovery: first fresh answer after {:?} ({tries} tries); {fresh} cached citizens renewed",
        recovering.elapsed()
    );
}
