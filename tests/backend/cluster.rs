//! The cache on a real Redis Cluster (`[cache] redis_cluster_nodes`): three nodes started by
//! `support::RedisCluster`. Checks are cached on the cluster and served from it, an import's
//! invalidation deletes keys spread over several hash slots, a presence challenge used at one
//! replica is refused at another, and a dead node sends the desk to the in-process fallback
//! without an error.

use bhyt_proto::v1::{
    CacheStatus, CheckCoverageRequest, IdentityEvidence, IdentityMethod,
    IssuePresenceChallengeRequest, PresenceProof, ResultCode,
};
use bhyt_verify::config::Config;
use bhyt_verify::registry::generate::{Kind, SyntheticCard};
use tonic::Code;

use crate::app::{self, TestBackend};
use crate::fixtures::{self, FACILITY, by_citizen, first};
use crate::support::{RedisCluster, eventually};

struct OnCluster {
    cluster: RedisCluster,
    dir: tempfile::TempDir,
    config: Config,
    cards: Vec<SyntheticCard>,
    backend: TestBackend,
}

/// A backend with a seeded SQLite registry caching on a fresh cluster, once it uses it.
async fn on_cluster() -> OnCluster {
    let cluster = RedisCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    config.cache.redis_cluster_nodes = cluster.urls();
    let cards = fixtures::seed(&config, 300).await;
    let backend = TestBackend::start(config.clone()).await;
    wait_for_cluster(&backend).await;
    OnCluster {
        cluster,
        dir,
        config,
        cards,
        backend,
    }
}

async fn wait_for_cluster(backend: &TestBackend) {
    eventually("the backend to use the redis cluster", async || {
        backend
            .http_get("/health")
            .await
            .1
            .contains("\"cache\":\"redis cluster\"")
    })
    .await;
}

fn status_of(answer: &bhyt_proto::v1::CheckCoverageResponse) -> CacheStatus {
    answer.cache.as_ref().expect("cache info").status()
}

#[tokio::test]
async fn checks_are_cached_on_the_cluster_served_from_it_and_invalidated_by_an_import() {
    let OnCluster {
        cluster,
        dir,
        config,
        cards,
        backend,
    } = on_cluster().await;
    let mut client = backend.verification().await;
    let valid = first(&cards, Kind::Valid);

    let answer = client
        .check_coverage(by_citizen("c1", valid))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status_of(&answer), CacheStatus::Miss);
    let source_queries = backend.metric("bhyt_source_queries_total", &[]).await;
    let hits = cluster.info_stat("keyspace_hits");
    let again = client
        .check_coverage(by_citizen("c2", valid))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ResultCode::try_from(again.result),
        Ok(ResultCode::CardValid)
    );
    assert_eq!(status_of(&again), CacheStatus::Hit);
    // The cluster's own counters moved, the source's did not: served from the cluster (the
    // in-process fallback is neither read nor written while Redis works).
    assert_eq!(cluster.info_stat("keyspace_hits"), hits + 1);
    assert_eq!(
        backend.metric("bhyt_source_queries_total", &[]).await,
        source_queries
    );
    assert_eq!(
        backend
            .metric("bhyt_cache_lookups_total", &["outcome=\"redis_hit\""])
            .await,
        1.0
    );

    // More people until their entries sit on at least two nodes: the keys spread over the hash
    // slots (no hash tag pins them to one), so the import below deletes across slots.
    let people: Vec<_> = cards
        .iter()
        .filter(|c| c.record.citizen_id.is_some() && c.record.birth.day.is_some())
        .take(30)
        .collect();
    for (i, person) in people.iter().enumerate() {
        let nodes_with_keys = cluster
            .keys_by_node()
            .iter()
            .filter(|keys| !keys.is_empty())
            .count();
        if nodes_with_keys >= 2 {
            break;
        }
        client
            .check_coverage(by_citizen(&format!("spread-{i}"), &person.record))
            .await
            .unwrap();
    }
    let keys_by_node = cluster.keys_by_node();
    assert!(
        keys_by_node.iter().filter(|k| !k.is_empty()).count() >= 2,
        "{keys_by_node:?}"
    );
    // Keyed hashes only: no citizen ID or card number in clear.
    for key in keys_by_node.iter().flatten() {
        assert!(key.starts_with("bhyt:cov:v1:"), "{key}");
        assert!(
            people.iter().all(|p| {
                !key.contains(p.record.citizen_id.as_deref().unwrap())
                    && !key.contains(&p.record.card_number)
            }),
            "{key}"
        );
    }

    // The social-security office revokes every one of those cards; the CLI imports the file,
    // finding the cluster through the environment. Each card has several keys (by citizen ID,
    // by each form of its number), in different slots: one DEL across slots, which the cluster
    // refuses (CROSSSLOT) unless the client splits it by slot.
    let mut revoked: Vec<SyntheticCard> = Vec::new();
    for record in std::iter::once(valid).chain(people.iter().map(|p| &p.record)) {
        if revoked
            .iter()
            .any(|c| c.record.card_number == record.card_number)
        {
            continue;
        }
        let mut card = cards
            .iter()
            .find(|c| c.record.card_number == record.card_number)
            .unwrap()
            .clone();
        card.record.status = bhyt_verify::coverage::CardStatus::Revoked;
        revoked.push(card);
    }
    let csv = dir.path().join("revocations.csv");
    bhyt_verify::registry::generate::write_csv(std::fs::File::create(&csv).unwrap(), revoked)
        .unwrap();
    let nodes = serde_json::to_string(&config.cache.redis_cluster_nodes).unwrap();
    let import = std::process::Command::new(env!("CARGO_BIN_EXE_bhyt-verify"))
        .arg("import")
        .arg(&csv)
        .env("BHYT_DATA_DIR", dir.path())
        .env("BHYT_CACHE__REDIS_CLUSTER_NODES", nodes)
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
        status_of(&after),
        CacheStatus::Miss,
        "the entry was removed"
    );
    let left: usize = cluster.keys_by_node().iter().map(Vec::len).sum();
    assert_eq!(left, 1, "only the entry the last check wrote is left");
    backend.stop().await;
}

/// A check carrying a presence proof for `challenge`: the proof itself is empty (not verified),
/// but its challenge is redeemed before the proof is looked at.
fn with_challenge(
    request_id: &str,
    card: &bhyt_verify::coverage::CardRecord,
    challenge: &[u8],
) -> CheckCoverageRequest {
    CheckCoverageRequest {
        evidence: Some(IdentityEvidence {
            method: IdentityMethod::Chip as i32,
            ..Default::default()
        }),
        presence_proof: Some(PresenceProof {
            challenge: challenge.to_vec(),
            ..Default::default()
        }),
        ..by_citizen(request_id, card)
    }
}

#[tokio::test]
async fn a_challenge_used_at_one_replica_is_refused_at_another() {
    let OnCluster {
        cluster,
        dir,
        mut config,
        cards,
        backend: a,
    } = on_cluster().await;
    // A second replica: the same keys (data directory) and cluster, its own audit database.
    config.audit.url = format!("sqlite://{}", dir.path().join("audit-b.sqlite").display());
    let b = TestBackend::start(config).await;
    wait_for_cluster(&b).await;
    let person = first(&cards, Kind::Valid);

    let issued = a
        .verification()
        .await
        .issue_presence_challenge(IssuePresenceChallengeRequest {
            facility_code: FACILITY.into(),
            station_id: by_citizen("x", person).station_id,
        })
        .await
        .unwrap()
        .into_inner();
    let used = a
        .verification()
        .await
        .check_coverage(with_challenge("ch-1", person, &issued.challenge))
        .await
        .expect("the first use is accepted");
    assert_eq!(used.into_inner().result(), ResultCode::CardValid);

    // Replica B has never seen this challenge in process: only the claim in the cluster
    // (SET NX on a keyed-hash key) can make it refuse. Without that claim this would pass.
    let replay = b
        .verification()
        .await
        .check_coverage(with_challenge("ch-2", person, &issued.challenge))
        .await
        .expect_err("a replay at another replica is refused");
    assert_eq!(replay.code(), Code::FailedPrecondition, "{replay:?}");
    assert!(replay.message().contains("already used"), "{replay:?}");
    let claims: Vec<String> = cluster
        .keys_by_node()
        .into_iter()
        .flatten()
        .filter(|k| k.starts_with("bhyt:presence:"))
        .collect();
    assert_eq!(claims.len(), 1, "{claims:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_dead_node_sends_the_desk_to_the_fallback_without_errors() {
    let OnCluster {
        mut cluster,
        cards,
        backend,
        ..
    } = on_cluster().await;
    let mut client = backend.verification().await;
    let (valid, expired) = (first(&cards, Kind::Valid), first(&cards, Kind::Expired));
    client
        .check_coverage(by_citizen("n1", valid))
        .await
        .unwrap();

    // One master dies; with its slots uncovered the others refuse every key (CLUSTERDOWN).
    cluster.kill(1);
    cluster.wait_until_failed_without(1);
    // Every check is answered: from the source, then from the in-process fallback.
    for (i, person) in [valid, expired, valid, expired].into_iter().enumerate() {
        let answer = client
            .check_coverage(by_citizen(&format!("down-{i}"), person))
            .await
            .expect("no error reaches the desk")
            .into_inner();
        let expected = if i % 2 == 0 {
            ResultCode::CardValid
        } else {
            ResultCode::CardExpired
        };
        assert_eq!(ResultCode::try_from(answer.result), Ok(expected));
        if i >= 2 {
            assert_eq!(status_of(&answer), CacheStatus::Fallback, "{i}");
        }
    }
    let (status, health) = backend.http_get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert!(
        health.contains("\"cache\":\"in-process fallback\""),
        "{health}"
    );
    assert!(
        backend
            .metric("bhyt_cache_lookups_total", &["outcome=\"fallback_hit\""])
            .await
            >= 2.0
    );
    backend.stop().await;
}
