//! An overload burst against the real binary: the national gateway (the real simulator) slowed
//! down so that checks hold their slots, a burst of concurrent callers far above the bound on
//! checks in flight, and health probes throughout. The service sheds quickly, stays responsive
//! to health checks, and recovers.
//!
//! Bounded in time and stopping by itself: the burst lasts a fixed time, every call and probe
//! has a deadline, the processes die with their handles. Figures are printed (`--nocapture`);
//! the only timing asserted is that each probe was answered within its own deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bhyt_verify::registry::generate::Kind;
use sqlx::Row;
use tokio::sync::Mutex;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::app;
use crate::fixtures::{self, by_citizen};
use crate::support::{self, BackendProcess, GATEWAY_USERNAME, GatewaySim, metric_in};

const PASSWORD: &str = "ovl-Pass-5e0a";
const SLOTS: usize = 8;
const GATEWAY_LATENCY_MS: u64 = 400;
const CALLERS: usize = 48;
const BURST: Duration = Duration::from_secs(4);
/// Each call's and each probe's own deadline: the bound that proves "responsive".
const DEADLINE: Duration = Duration::from_secs(5);

#[derive(Default, Debug)]
struct Tally {
    sent: u64,
    by_code: BTreeMap<String, u64>,
    shed: u64,
    /// Audit record ids of answered checks.
    answered: Vec<String>,
    worst_answer: Duration,
    worst_shed: Duration,
}

#[derive(Default, Debug)]
struct Probes {
    grpc_health: u64,
    http_health: u64,
    metrics: u64,
    failed: Vec<String>,
    worst: Duration,
    /// The most checks in flight any /metrics probe saw.
    peak_in_flight: f64,
}

/// Fails when shedding is off (`BHYT_LIMITS__MAX_CHECKS_IN_FLIGHT=0`): nothing is shed, the
/// checks queue behind the slow gateway, and the in-flight peak passes the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overload_burst_sheds_stays_responsive_to_health_checks_and_recovers() {
    let dir = support::temp_dir();
    let config = app::config(dir.path());
    let cards = fixtures::seed(&config, 300).await;
    let people: Vec<_> = cards
        .iter()
        .filter(|c| c.kind == Kind::Valid && c.record.citizen_id.is_some())
        .map(|c| c.record.clone())
        .collect();
    let sim = GatewaySim::start(&config.registry_url(), PASSWORD, &[]);
    sim.set(&format!(r#"{{"latency_ms": {GATEWAY_LATENCY_MS}}}"#))
        .await;
    let slots = SLOTS.to_string();
    let backend = Arc::new(BackendProcess::start(
        dir.path(),
        &[
            ("BHYT_SOURCE__KIND", "gateway"),
            ("BHYT_SOURCE__URL", &sim.url),
            ("BHYT_SOURCE__DEV_PLAIN_HTTP", "true"),
            ("BHYT_SOURCE__USERNAME", GATEWAY_USERNAME),
            ("BHYT_SOURCE__PASSWORD", PASSWORD),
            ("BHYT_SOURCE__RETRIES", "0"),
            // Every check asks the slow gateway: nothing is answered from a cache.
            ("BHYT_CACHE__ENABLED", "false"),
            ("BHYT_LIMITS__MAX_CHECKS_IN_FLIGHT", &slots),
            ("BHYT_LIMITS__MAX_CHECKS_WAITING", "16"),
            ("BHYT_LIMITS__SLOT_WAIT_MS", "100"),
        ],
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    // Six HTTP/2 connections shared by the callers, as several clinic systems would open.
    let mut connections = Vec::new();
    for _ in 0..6 {
        connections.push(backend.verification().await);
    }
    let mut callers = Vec::new();
    for caller in 0..CALLERS {
        let mut client = connections[caller % connections.len()].clone();
        let (stop, tally, people) = (stop.clone(), tally.clone(), people.clone());
        callers.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let person = &people[(caller * 7 + n) % people.len()];
                let mut request =
                    tonic::Request::new(by_citizen(&format!("burst-{caller}-{n}"), person));
                request.set_timeout(DEADLINE);
                let sent = Instant::now();
                let outcome = client.check_coverage(request).await;
                let took = sent.elapsed();
                let mut t = tally.lock().await;
                t.sent += 1;
                match outcome {
                    Ok(answer) => {
                        *t.by_code.entry("Ok".into()).or_default() += 1;
                        t.answered.push(answer.into_inner().audit_record_id);
                        t.worst_answer = t.worst_answer.max(took);
                    }
                    Err(status) => {
                        *t.by_code.entry(format!("{:?}", status.code())).or_default() += 1;
                        if status.code() == Code::ResourceExhausted
                            && status.message().starts_with("overloaded:")
                        {
                            assert!(
                                status.metadata().get("grpc-retry-pushback-ms").is_some(),
                                "a shed call says when to retry"
                            );
                            t.shed += 1;
                            t.worst_shed = t.worst_shed.max(took);
                        }
                    }
                }
                drop(t);
                // A short pause between calls, as a client honouring back-off would make.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    // Health probes throughout the burst, each on its own connection as a load balancer's.
    let probes = Arc::new(Mutex::new(Probes::default()));
    let prober = {
        let (backend, stop, probes) = (backend.clone(), stop.clone(), probes.clone());
        let mut health = HealthClient::new(backend.channel().await);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let mut request = tonic::Request::new(HealthCheckRequest {
                    service: "bhyt.verify.v1.VerificationService".into(),
                });
                request.set_timeout(DEADLINE);
                let grpc = health.check(request).await;
                let grpc_took = started.elapsed();
                let started = Instant::now();
                let http = tokio::time::timeout(DEADLINE, backend.http_get("/health")).await;
                let http_took = started.elapsed();
                let started = Instant::now();
                let metrics = tokio::time::timeout(DEADLINE, backend.http_get("/metrics")).await;
                let metrics_took = started.elapsed();
                let mut p = probes.lock().await;
                match grpc {
                    Ok(r) if r.get_ref().status() == ServingStatus::Serving => p.grpc_health += 1,
                    other => p.failed.push(format!("grpc health: {other:?}")),
                }
                match http {
                    Ok(Ok((200, _))) => p.http_health += 1,
                    other => p.failed.push(format!("/health: {other:?}")),
                }
                match metrics {
                    Ok(Ok((200, body))) => {
                        p.metrics += 1;
                        let in_flight = metric_in(&body, "bhyt_checks_in_flight", &[]);
                        p.peak_in_flight = p.peak_in_flight.max(in_flight);
                    }
                    other => p.failed.push(format!("/metrics: {other:?}")),
                }
                p.worst = p.worst.max(grpc_took).max(http_took).max(metrics_took);
                drop(p);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    tokio::time::sleep(BURST).await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    prober.await.unwrap();

    // Recovery: once the burst's admitted checks have finished, checks are answered again.
    let drained = Instant::now();
    while backend.metric("bhyt_checks_in_flight", &[]).await > 0.0 {
        assert!(
            drained.elapsed() < Duration::from_secs(20),
            "the admitted checks finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = backend.verification().await;
    let mut recovered = 0;
    for (n, person) in people.iter().take(5).enumerate() {
        let mut request = tonic::Request::new(by_citizen(&format!("after-{n}"), person));
        request.set_timeout(DEADLINE);
        let answer = client
            .check_coverage(request)
            .await
            .expect("answered after the burst");
        tally
            .lock()
            .await
            .answered
            .push(answer.into_inner().audit_record_id);
        recovered += 1;
    }

    let shed_metric = backend.metric("bhyt_shed_total", &[]).await;
    let gateway_checks = sim.counts().await.checks;
    let backend = Arc::into_inner(backend).expect("the prober is done");
    backend.stop().await;

    // The audit trail: each answered check once; shed checks not one by one, one `throttled`
    // record for the episode.
    let audit = bhyt_verify::db::connect(&config.audit_url(), 1, bhyt_verify::db::Schema::Audit)
        .await
        .unwrap();
    let rows = sqlx::query("SELECT kind, COUNT(*) FROM audit_records GROUP BY kind")
        .fetch_all(&audit)
        .await
        .unwrap();
    let kinds: BTreeMap<String, i64> = rows
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect();
    let ids = sqlx::query("SELECT record_id FROM audit_records WHERE kind = 'check'")
        .fetch_all(&audit)
        .await
        .unwrap();
    let recorded: std::collections::HashSet<String> =
        ids.iter().map(|r| r.get::<String, _>(0)).collect();
    audit.close().await;

    let t = tally.lock().await;
    let p = probes.lock().await;
    let lost = t
        .answered
        .iter()
        .filter(|id| !recorded.contains(*id))
        .count();
    eprintln!(
        "overload burst: {CALLERS} callers for {BURST:?}, {SLOTS} slots, gateway {GATEWAY_LATENCY_MS} ms: \
         sent {}, by code {:?}, shed {} (metric {shed_metric}), worst answered {:?}, worst shed {:?}; \
         gateway card checks {gateway_checks}; peak in flight {}; probes: grpc health {}, /health {}, \
         /metrics {}, failed {}, worst {:?}; recovered {recovered}/5; audit records by kind {kinds:?}, \
         answered without a record {lost}",
        t.sent,
        t.by_code,
        t.shed,
        t.worst_answer,
        t.worst_shed,
        p.peak_in_flight,
        p.grpc_health,
        p.http_health,
        p.metrics,
        p.failed.len(),
        p.worst,
    );
    assert!(t.shed > 0, "the service sheds: {:?}", t.by_code);
    assert_eq!(
        shed_metric, t.shed as f64,
        "bhyt_shed_total counts every shed check"
    );
    assert!(
        t.by_code.get("Ok").is_some_and(|n| *n > 0),
        "and answers what it admits"
    );
    let others: Vec<_> = t
        .by_code
        .keys()
        .filter(|c| *c != "Ok" && *c != "ResourceExhausted")
        .collect();
    assert!(
        others.is_empty(),
        "only answers and sheds, no deadline passed: {:?}",
        t.by_code
    );
    assert_eq!(
        t.by_code["ResourceExhausted"], t.shed,
        "every RESOURCE_EXHAUSTED was a shed (no station limit in the way)"
    );
    assert!(
        p.failed.is_empty(),
        "every probe answered within its deadline: {:?}",
        p.failed
    );
    assert!(p.grpc_health > 0 && p.http_health > 0 && p.metrics > 0);
    assert!(
        p.peak_in_flight <= SLOTS as f64,
        "never more checks in flight than slots: {}",
        p.peak_in_flight
    );
    assert!(
        gateway_checks <= t.answered.len() as u64,
        "a shed check never reached the source: {gateway_checks} gateway checks for {} answers",
        t.answered.len()
    );
    assert_eq!(lost, 0, "every answered check has its record");
    assert_eq!(
        kinds.get("check").copied().unwrap_or(0),
        t.answered.len() as i64
    );
    assert_eq!(
        kinds.get("throttled"),
        Some(&1),
        "one record for the overload episode"
    );
    assert_eq!(
        kinds.get("refusal"),
        None,
        "shed checks are not recorded one by one"
    );
}
