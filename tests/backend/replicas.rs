//! Replicas behaving as one service: real `bhyt-verify serve` processes sharing one Redis and
//! one PostgreSQL (registry and audit), each with its own data directory (spool) and a copy of
//! one key ring, as the deployment documentation describes.
//!
//! Bounded in time and stopping by itself: fixed amounts of work, every call with a deadline,
//! the processes die with their handles. Figures are printed (`--nocapture`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bhyt_proto::v1::{CacheStatus, CheckCoverageRequest, ResultCode};
use bhyt_verify::coverage::CardRecord;
use bhyt_verify::registry::generate::{Kind, SyntheticCard};
use sqlx::Row;
use tokio::sync::{Barrier, Mutex};

use crate::app;
use crate::fixtures::{self, by_citizen};
use crate::support::{self, BackendProcess, GATEWAY_USERNAME, GatewaySim, RedisServer};

const DEADLINE: Duration = Duration::from_secs(15);

/// Copies `from`'s key ring (pseudonym, data, signing keys) to `to`: replicas must share it.
fn share_keys(from: &Path, to: &Path) {
    let (from, to) = (from.join("keys"), to.join("keys"));
    bhyt_verify::keys::Keys::load_or_create(&from).expect("a key ring");
    copy_dir(&from, &to);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn with_timeout(request: CheckCoverageRequest) -> tonic::Request<CheckCoverageRequest> {
    let mut request = tonic::Request::new(request);
    request.set_timeout(DEADLINE);
    request
}

/// Valid cards of citizens holding only that card (a re-issued card shares its holder's ID).
fn valid_people(cards: &[SyntheticCard]) -> Vec<CardRecord> {
    let mut per_citizen: HashMap<&str, usize> = HashMap::new();
    for id in cards.iter().filter_map(|c| c.record.citizen_id.as_deref()) {
        *per_citizen.entry(id).or_default() += 1;
    }
    cards
        .iter()
        .filter(|c| c.kind == Kind::Valid)
        .filter(|c| {
            c.record
                .citizen_id
                .as_deref()
                .is_some_and(|id| per_citizen[id] == 1)
        })
        .map(|c| c.record.clone())
        .collect()
}

/// What the backend's own judge says of `card` for a request that matches it.
fn expected(card: &CardRecord) -> ResultCode {
    let claim = bhyt_verify::coverage::Claim {
        full_name: card.full_name.clone(),
        birth: card.birth,
        facility_code: fixtures::FACILITY.into(),
    };
    let today = bhyt_verify::coverage::vietnam_date(time::OffsetDateTime::now_utc());
    bhyt_verify::coverage::judge(Some(card), &claim, today).result
}

#[derive(Default)]
struct Tally {
    sent: u64,
    by_code: BTreeMap<String, u64>,
    /// Audit record id of each answered check (a retry's answer is not counted again).
    answered: Vec<String>,
    retries: u64,
    cache_hits: u64,
}

/// Two replicas under a mixed load (valid, expired and unregistered people, malformed requests,
/// retries of a request id at the other replica), then the shared audit log: every answered
/// check has exactly one record, none is duplicated, both writers' chains verify with
/// `bhyt-verify audit verify`. Fails if a replica's retry were answered anew (two records for
/// one request id: `doubled` or the retry's record id differing), if records were lost, or if
/// the replicas shared one chain (the chains would fork and not verify).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_redis_and_one_postgres_behave_as_one_service() {
    let pg = support::postgres().await;
    let (registry_url, audit_url) = (pg.fresh_database().await, pg.fresh_database().await);
    let redis = RedisServer::start();
    let (dir_a, dir_b) = (support::temp_dir(), support::temp_dir());
    let mut config = app::config(dir_a.path());
    config.registry.url = registry_url.clone();
    let cards = fixtures::seed(&config, 300).await;
    share_keys(dir_a.path(), dir_b.path());
    let redis_url = redis.url();
    let env = [
        ("BHYT_REGISTRY__URL", registry_url.as_str()),
        ("BHYT_AUDIT__URL", audit_url.as_str()),
        ("BHYT_CACHE__REDIS_URL", redis_url.as_str()),
    ];
    let replicas = [
        Arc::new(BackendProcess::start(dir_a.path(), &env)),
        Arc::new(BackendProcess::start(dir_b.path(), &env)),
    ];
    // Both use Redis before the load starts (they connect in the background).
    wait_for_redis(replicas.iter().map(|r| &**r)).await;

    let hot: Vec<CardRecord> = valid_people(&cards).into_iter().take(12).collect();
    let expired = fixtures::first(&cards, Kind::Expired).clone();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut workers = Vec::new();
    for worker in 0..6usize {
        let mut clients = [
            replicas[0].verification().await,
            replicas[1].verification().await,
        ];
        let (tally, hot, expired) = (tally.clone(), hot.clone(), expired.clone());
        workers.push(tokio::spawn(async move {
            for n in 0..40usize {
                let request_id = format!("mix-{worker}-{n}");
                let request = match n % 10 {
                    7 => by_citizen(&request_id, &expired),
                    8 => fixtures::unregistered(&request_id, "Trần Thị Hoa"),
                    9 => {
                        let mut bad = by_citizen(&request_id, &hot[0]);
                        bad.subject =
                            Some(bhyt_proto::v1::check_coverage_request::Subject::CitizenId(
                                "0031".into(),
                            ));
                        bad
                    }
                    _ => by_citizen(&request_id, &hot[(worker + n) % hot.len()]),
                };
                // Alternate replicas, as a round-robin load balancer would.
                let at = (worker + n) % 2;
                let outcome = clients[at]
                    .check_coverage(with_timeout(request.clone()))
                    .await;
                let mut t = tally.lock().await;
                t.sent += 1;
                let code = match &outcome {
                    Ok(_) => "Ok".to_owned(),
                    Err(status) => format!("{:?}", status.code()),
                };
                *t.by_code.entry(code).or_default() += 1;
                let Ok(answer) = outcome else { continue };
                let answer = answer.into_inner();
                if answer.cache.is_some_and(|c| c.status() == CacheStatus::Hit) {
                    t.cache_hits += 1;
                }
                t.answered.push(answer.audit_record_id.clone());
                drop(t);
                // Every fifth answered check is retried at the other replica (a client that
                // lost the answer, sent elsewhere by the load balancer): the same answer, no
                // second record.
                if n % 5 == 0 {
                    let retry = clients[1 - at]
                        .check_coverage(with_timeout(request))
                        .await
                        .expect("a retry is answered")
                        .into_inner();
                    assert_eq!(
                        retry.audit_record_id, answer.audit_record_id,
                        "the other replica gives the first answer"
                    );
                    let mut t = tally.lock().await;
                    t.sent += 1;
                    t.retries += 1;
                    *t.by_code.entry("Ok".into()).or_default() += 1;
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let mut hits_per_replica = Vec::new();
    let mut writers = Vec::new();
    for replica in &replicas {
        hits_per_replica.push(
            replica
                .metric("bhyt_cache_lookups_total", &["outcome=\"redis_hit\""])
                .await,
        );
        let (_, health) = replica.http_get("/health").await.unwrap();
        let health: serde_json::Value = serde_json::from_str(&health).unwrap();
        writers.push(health["audit_writer"].as_str().unwrap().to_owned());
    }
    for replica in replicas {
        Arc::into_inner(replica).expect("workers done").stop().await;
    }

    let found = support::audit_record_counts(&audit_url).await;
    let pool = sqlx::PgPool::connect(&audit_url).await.unwrap();
    let rows = sqlx::query("SELECT writer_id, kind, COUNT(*) FROM audit_records GROUP BY 1, 2")
        .fetch_all(&pool)
        .await
        .unwrap();
    let by_writer: BTreeMap<(String, String), i64> = rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get::<i64, _>(2)))
        .collect();
    pool.close().await;

    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_bhyt-verify"))
        .args(["audit", "verify"])
        .env("BHYT_DATA_DIR", dir_a.path())
        .env("BHYT_AUDIT__URL", &audit_url)
        .env("BHYT_AUDIT__CHECKPOINT_INTERVAL_SECS", "1")
        .output()
        .expect("the CLI runs");
    let verify_out = String::from_utf8_lossy(&verify.stdout).into_owned();

    let t = tally.lock().await;
    let answered: HashSet<&String> = t.answered.iter().collect();
    let lost = answered
        .iter()
        .filter(|id| !found.contains_key(**id))
        .count();
    let doubled = found.values().filter(|n| **n > 1).count();
    eprintln!(
        "two replicas: sent {} ({} retries at the other replica), by code {:?}, answered {} \
         ({} from Redis), redis hits per replica {hits_per_replica:?}, records {} by writer and kind \
         {by_writer:?}, lost {lost}, doubled {doubled}; audit verify: {}",
        t.sent,
        t.retries,
        t.by_code,
        t.answered.len(),
        t.cache_hits,
        found.len(),
        verify_out.trim()
    );
    assert_eq!(answered.len(), t.answered.len(), "no record id given twice");
    assert_eq!(lost, 0, "every answered check has its record");
    assert_eq!(doubled, 0, "no record twice");
    assert!(t.retries > 0);
    assert_eq!(
        t.by_code.keys().cloned().collect::<Vec<_>>(),
        ["InvalidArgument", "Ok"],
        "answers, and the malformed requests refused"
    );
    assert!(
        hits_per_replica.iter().all(|h| *h > 0.0),
        "both replicas answer from the shared cache: {hits_per_replica:?}"
    );
    assert_ne!(writers[0], writers[1], "each replica writes its own chain");
    for writer in &writers {
        assert!(
            by_writer.contains_key(&(writer.clone(), "check".to_owned())),
            "{writer} recorded checks: {by_writer:?}"
        );
    }
    assert!(verify.status.success(), "audit verify: {verify_out}");
    assert!(verify_out.contains("in 2 chains"), "{verify_out}");
}

/// Concurrent checks of one cold citizen, half at each replica, against the real gateway
/// simulator (slowed so the queries overlap): how many card checks reach the gateway. Without
/// the Redis lock each replica asks once (its own misses coalesce): 2, measured first with the
/// lock off. With it: 1. Then a lock left behind by a dead replica costs one wait, not a hang,
/// and with Redis killed every check is still answered (each replica asks for itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_across_replicas_make_one_gateway_query() {
    const PASSWORD: &str = "rep-Pass-0d4f";
    const PER_REPLICA: usize = 8;
    let mut redis = RedisServer::start();
    let dir = support::temp_dir();
    let config = app::config(dir.path());
    let cards = fixtures::seed(&config, 300).await;
    let people = valid_people(&cards);
    let sim = GatewaySim::start(&config.registry_url(), PASSWORD, &[]);
    // Slow enough that both replicas miss before either has cached the answer.
    sim.set(r#"{"latency_ms": 600}"#).await;
    let redis_url = redis.url();
    let start_pair = |lock_ms: &'static str| {
        let (a, b) = (support::temp_dir(), support::temp_dir());
        share_keys(a.path(), b.path());
        let env = [
            ("BHYT_SOURCE__KIND", "gateway"),
            ("BHYT_SOURCE__URL", sim.url.as_str()),
            ("BHYT_SOURCE__DEV_PLAIN_HTTP", "true"),
            ("BHYT_SOURCE__USERNAME", GATEWAY_USERNAME),
            ("BHYT_SOURCE__PASSWORD", PASSWORD),
            ("BHYT_CACHE__REDIS_URL", redis_url.as_str()),
            ("BHYT_CACHE__SOURCE_LOCK_MS", lock_ms),
        ];
        let pair = [
            BackendProcess::start(a.path(), &env),
            BackendProcess::start(b.path(), &env),
        ];
        (pair, [a, b])
    };
    // N concurrent checks of `person`, half at each replica, released together; the gateway's
    // card checks they caused.
    let burst = async |pair: &[BackendProcess; 2], person: &CardRecord, tag: &str| {
        let before = sim.counts().await.checks;
        let barrier = Arc::new(Barrier::new(2 * PER_REPLICA));
        let mut calls = Vec::new();
        for n in 0..2 * PER_REPLICA {
            let mut client = pair[n % 2].verification().await;
            let (barrier, request) = (barrier.clone(), by_citizen(&format!("{tag}-{n}"), person));
            calls.push(tokio::spawn(async move {
                barrier.wait().await;
                client.check_coverage(with_timeout(request)).await
            }));
        }
        let mut results = Vec::new();
        for call in calls {
            let answer = call
                .await
                .unwrap()
                .expect("every check is answered")
                .into_inner();
            results.push(ResultCode::try_from(answer.result).unwrap());
        }
        assert!(
            results.iter().all(|r| *r == expected(person)),
            "{tag}: {results:?}"
        );
        sim.counts().await.checks - before
    };

    let (pair, _dirs) = start_pair("0");
    wait_for_redis(&pair).await;
    let without_lock = burst(&pair, &people[0], "off").await;
    drop(pair);

    let (pair, _dirs) = start_pair("2000");
    wait_for_redis(&pair).await;
    let with_lock = burst(&pair, &people[1], "on").await;
    let lock_outcomes = lock_metrics(&pair).await;

    // A lock left behind (its holder died): the next miss waits out the lock's lifetime, then
    // asks. The citizen's entry is cached once, removed, and a lock planted on its key.
    let person = &people[2];
    let mut client = pair[0].verification().await;
    client
        .check_coverage(with_timeout(by_citizen("plant-0", person)))
        .await
        .unwrap();
    let cache_keys: Vec<String> = redis
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("bhyt:cov:"))
        .collect();
    let mut conn = redis::Client::open(redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for key in &cache_keys {
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg(bhyt_verify::source_lock::lock_key(key))
            .arg("a-dead-replica")
            .arg("PX")
            .arg(60_000)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let before = sim.counts().await.checks;
    let mut other = pair[1].verification().await;
    let answer = other
        .check_coverage(with_timeout(by_citizen("plant-1", person)))
        .await
        .expect("answered despite the orphaned lock")
        .into_inner();
    assert_eq!(ResultCode::try_from(answer.result), Ok(expected(person)));
    let after_orphan = sim.counts().await.checks - before;
    let expired_waits = pair[1]
        .metric("bhyt_source_lock_total", &["outcome=\"wait_expired\""])
        .await;

    // Redis killed: no lock to take; every check answered, each replica asking for itself.
    redis.kill();
    let without_redis = burst(&pair, &people[3], "dead").await;
    let unavailable = lock_metrics(&pair).await;

    eprintln!(
        "{} concurrent misses for one citizen across 2 replicas: gateway card checks without the \
         lock {without_lock}, with it {with_lock} (lock outcomes {lock_outcomes:?}); an orphaned \
         lock: {after_orphan} check after {expired_waits} expired wait; Redis killed: \
         {without_redis} checks (lock outcomes {unavailable:?})",
        2 * PER_REPLICA
    );
    assert!(without_lock >= 2, "each replica asks without the lock");
    assert_eq!(with_lock, 1, "one gateway query across replicas with it");
    assert_eq!(after_orphan, 1);
    assert_eq!(expired_waits, 1.0);
    assert!(unavailable["redis_unavailable"] >= 1.0, "{unavailable:?}");
}

async fn wait_for_redis<'a>(replicas: impl IntoIterator<Item = &'a BackendProcess>) {
    for replica in replicas {
        support::eventually("the replica's Redis connection", || async {
            replica
                .http_get("/health")
                .await
                .is_ok_and(|(_, body)| body.contains("\"cache\":\"redis\""))
        })
        .await;
    }
}

async fn lock_metrics(pair: &[BackendProcess; 2]) -> BTreeMap<&'static str, f64> {
    let mut outcomes = BTreeMap::new();
    for outcome in [
        "acquired",
        "answered_elsewhere",
        "wait_expired",
        "redis_unavailable",
    ] {
        let label = format!("outcome=\"{outcome}\"");
        let mut sum = 0.0;
        for replica in pair {
            sum += replica.metric("bhyt_source_lock_total", &[&label]).await;
        }
        outcomes.insert(outcome, sum);
    }
    outcomes
}
