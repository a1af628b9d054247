//! The Redis cache through the real interfaces: Redis's own counters, the server's metrics,
//! a Redis killed and restarted, and a source held blocked to show coalescing.

use bhyt_proto::v1::{CacheStatus, ResultCode};
use bhyt_verify::registry::generate::{Kind, SyntheticCard};
use sqlx::Connection;

use crate::app::{self, TestBackend};
use crate::fixtures::{self, by_citizen, first};
use crate::support::{self, eventually};

/// A backend with a seeded SQLite registry behind a private Redis, once it is using Redis.
struct OnRedis {
    redis: support::RedisServer,
    dir: tempfile::TempDir,
    cards: Vec<SyntheticCard>,
    backend: TestBackend,
}

async fn on_redis() -> OnRedis {
    let redis = support::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    config.cache.redis_url = redis.url();
    let cards = fixtures::seed(&config, 300).await;
    let backend = TestBackend::start(config).await;
    eventually("the backend to use redis", async || {
        backend.http_get("/health").await.1.contains("\"redis\"")
    })
    .await;
    OnRedis {
        redis,
        dir,
        cards,
        backend,
    }
}

#[tokio::test]
async fn repeated_checks_are_served_by_redis() {
    let OnRedis {
        redis,
        cards,
        backend,
        ..
    } = on_redis().await;
    let mut client = backend.verification().await;
    let valid = first(&cards, Kind::Valid);

    let answer = client
        .check_coverage(by_citizen("c1", valid))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.cache.unwrap().status(), CacheStatus::Miss);
    let source_queries = backend.metric("bhyt_source_queries_total", &[]).await;
    let hits = redis.info_stat("keyspace_hits");
    for i in 2..6 {
        let answer = client
            .check_coverage(by_citizen(&format!("c{i}"), valid))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            ResultCode::try_from(answer.result),
            Ok(ResultCode::CardValid)
        );
    }
    // Redis's own counter moved, the source's did not.
    assert_eq!(redis.info_stat("keyspace_hits"), hits + 4);
    assert_eq!(
        backend.metric("bhyt_source_queries_total", &[]).await,
        source_queries
    );

    // Keys are keyed hashes: no citizen ID, card number or name in clear.
    let keys = redis.keys();
    assert!(!keys.is_empty());
    let id = valid.citizen_id.as_deref().unwrap();
    assert!(keys.iter().all(|k| k.starts_with("bhyt:cov:v1:")
        && !k.contains(id)
        && !k.contains(&valid.card_number)));
    backend.stop().await;
}

#[tokio::test]
async fn a_dead_redis_falls_back_and_comes_back() {
    let OnRedis {
        mut redis,
        cards,
        backend,
        ..
    } = on_redis().await;
    let mut client = backend.verification().await;
    let (valid, expired) = (first(&cards, Kind::Valid), first(&cards, Kind::Expired));
    client
        .check_coverage(by_citizen("r1", valid))
        .await
        .unwrap();

    redis.kill();
    // Answers keep coming: from the source, then from the in-process fallback.
    let first_answer = client
        .check_coverage(by_citizen("r2", expired))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ResultCode::try_from(first_answer.result),
        Ok(ResultCode::CardExpired)
    );
    let again = client
        .check_coverage(by_citizen("r3", expired))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.cache.unwrap().status(), CacheStatus::Fallback);
    assert!(
        backend
            .http_get("/health")
            .await
            .1
            .contains("in-process fallback")
    );

    redis.restart();
    // The restarted Redis is empty: the first check after reconnecting fills it, the next is
    // a Redis hit.
    let mut n = 0;
    eventually("redis to be used again", async || {
        n += 1;
        let answer = client
            .check_coverage(by_citizen(&format!("back-{n}"), valid))
            .await
            .unwrap()
            .into_inner();
        answer.cache.unwrap().status() == CacheStatus::Hit
    })
    .await;
    assert!(redis.info_stat("keyspace_hits") > 0);
    assert!(backend.http_get("/health").await.1.contains("\"redis\""));
    backend.stop().await;
}

/// N concurrent checks of one uncached citizen while the registry is locked: how many source
/// queries do they make? The lock is released only once every check is provably waiting,
/// either on the database or on another check's query.
async fn concurrent_misses(coalesce: bool) -> f64 {
    const N: usize = 8;
    let pg = support::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    let db = if coalesce {
        "coalesce_on"
    } else {
        "coalesce_off"
    };
    config.registry.url = pg.database(db).await;
    config.cache.coalesce = coalesce;
    let cards = fixtures::seed(&config, 300).await;
    let backend = TestBackend::start(config.clone()).await;
    let valid = first(&cards, Kind::Valid).clone();

    let mut lock = sqlx::PgConnection::connect(&config.registry.url)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE cards IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    let client = backend.verification().await;
    let checks: Vec<_> = (0..N)
        .map(|i| {
            let mut client = client.clone();
            let req = by_citizen(&format!("burst-{i}"), &valid);
            tokio::spawn(async move { client.check_coverage(req).await.unwrap().into_inner() })
        })
        .collect();
    let mut waiting_on_lock = sqlx::PgConnection::connect(&config.registry.url)
        .await
        .unwrap();
    eventually("every check to wait", async || {
        let on_db: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        .fetch_one(&mut waiting_on_lock)
        .await
        .unwrap();
        let on_others = backend.metric("bhyt_coalesced_waiting", &[]).await;
        on_db as f64 + on_others == N as f64
    })
    .await;
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    for check in checks {
        let answer = check.await.unwrap();
        assert_eq!(
            ResultCode::try_from(answer.result),
            Ok(ResultCode::CardValid)
        );
    }
    let queries = backend.metric("bhyt_source_queries_total", &[]).await;
    backend.stop().await;
    queries
}

#[tokio::test]
async fn concurrent_misses_make_one_source_query() {
    assert_eq!(concurrent_misses(true).await, 1.0);
    // The same scenario without coalescing makes one query per check: the assertion above
    // would fail.
    assert_eq!(concurrent_misses(false).await, 8.0);
}

#[tokio::test]
async fn an_import_invalidates_the_cached_answers_it_changes() {
    let OnRedis {
        redis,
        dir,
        cards,
        backend,
    } = on_redis().await;
    let mut client = backend.verification().await;
    let valid = first(&cards, Kind::Valid);
    client
        .check_coverage(by_citizen("before-1", valid))
        .await
        .unwrap();
    let cached = client
        .check_coverage(by_citizen("before-2", valid))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cached.cache.unwrap().status(), CacheStatus::Hit);

    // The social-security office revokes the card; the export is imported by the CLI.
    let synthetic = cards
        .iter()
        .find(|c| c.record.card_number == valid.card_number)
        .unwrap();
    let mut revoked = synthetic.clone();
    revoked.record.status = bhyt_verify::coverage::CardStatus::Revoked;
    let csv = dir.path().join("revocation.csv");
    bhyt_verify::registry::generate::write_csv(std::fs::File::create(&csv).unwrap(), [revoked])
        .unwrap();
    let import = std::process::Command::new(env!("CARGO_BIN_EXE_bhyt-verify"))
        .arg("import")
        .arg(&csv)
        .env("BHYT_DATA_DIR", dir.path())
        .env("BHYT_CACHE__REDIS_URL", redis.url())
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );

    let after = client
        .check_coverage(by_citizen("after", valid))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ResultCode::try_from(after.result),
        Ok(ResultCode::CardRevoked)
    );
    assert_eq!(
        after.cache.unwrap().status(),
        CacheStatus::Miss,
        "the stale entry was removed"
    );
    backend.stop().await;
}
