//! The load generator: drives `VerificationService.CheckCoverage` over real gRPC connections.
//!
//! - Closed loop: a set number of callers, each sending its next request when the last one is
//!   answered. Measures the most the server sustains; latency is per call.
//! - Open loop: requests leave at a set rate whatever the server does, and each one's latency is
//!   counted from the moment it was *meant* to leave, so a stalled server (or a stalled
//!   generator) shows as latency instead of silently lowering the offered load (no coordinated
//!   omission).
//!
//! Only calls begun after the warm-up are counted. Every call has a deadline, so a run always
//! ends: `duration` plus at most the deadline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bhyt_proto::v1::verification_service_client::VerificationServiceClient;
use bhyt_proto::v1::{CacheStatus, CheckCoverageRequest, CheckCoverageResponse, ResultCode};
use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::mix::Mix;
use crate::procfs;

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Closed { concurrency: usize },
    Open { rate: f64 },
}

pub struct Plan {
    /// `https://localhost:port` (mutual TLS, with `tls`) or `http://host:port` (plain text).
    pub target: String,
    /// The client's certificate and the CA it trusts, for mutual TLS.
    pub tls: Option<ClientTls>,
    /// HTTP/2 connections the calls are spread over, like several desks' clients.
    pub connections: usize,
    pub mode: Mode,
    pub warmup: Duration,
    pub duration: Duration,
    /// Each call's deadline.
    pub timeout: Duration,
    pub seed: u64,
    /// Processes whose CPU and peak memory are reported: (name, pid).
    pub watch: Vec<(String, u32)>,
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// A watched process's use of the machine during the measured window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProcessUse {
    pub name: String,
    /// Percent of one core (the process and its children).
    pub cpu_percent: f64,
    /// Peak resident memory over the process's life (VmHWM), MiB.
    pub peak_rss_mib: f64,
}

/// What a run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    pub mode: Mode,
    pub connections: usize,
    pub seconds: f64,
    /// Calls answered (with any status) in the measured window.
    pub completed: u64,
    /// `completed` per second.
    pub throughput: f64,
    pub latency_ms: Latency,
    /// Calls by gRPC status code (`Ok`, `InvalidArgument`, ...).
    pub grpc_codes: BTreeMap<String, u64>,
    /// Answered checks by result code.
    pub results: BTreeMap<String, u64>,
    /// Answered checks by cache status.
    pub cache: BTreeMap<String, u64>,
    pub processes: Vec<ProcessUse>,
}

impl Outcome {
    /// Calls refused for a reason other than the bad input the mix sends on purpose.
    pub fn unexpected_errors(&self) -> u64 {
        self.grpc_codes
            .iter()
            .filter(|(code, _)| !matches!(code.as_str(), "Ok" | "InvalidArgument"))
            .map(|(_, n)| n)
            .sum()
    }

    /// Share of answered checks served from Redis.
    pub fn cache_hit_share(&self) -> f64 {
        let answered: u64 = self.cache.values().sum();
        let hits = self.cache.get("CACHE_STATUS_HIT").copied().unwrap_or(0);
        if answered == 0 {
            0.0
        } else {
            hits as f64 / answered as f64
        }
    }
}

/// Counts of one caller (or of the whole run, once merged).
struct Tally {
    latency: Histogram<u64>,
    grpc_codes: BTreeMap<String, u64>,
    results: BTreeMap<String, u64>,
    cache: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            // Microseconds, 1 µs to 10 minutes, 3 significant digits.
            latency: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
            grpc_codes: BTreeMap::new(),
            results: BTreeMap::new(),
            cache: BTreeMap::new(),
        }
    }

    fn record(&mut self, latency: Duration, answer: &Result<CheckCoverageResponse, tonic::Status>) {
        self.latency.saturating_record(
            u64::try_from(latency.as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
        );
        let code = match answer {
            Ok(response) => {
                let result =
                    ResultCode::try_from(response.result).map_or("UNKNOWN", |r| r.as_str_name());
                *self.results.entry(result.into()).or_default() += 1;
                let cache = response
                    .cache
                    .as_ref()
                    .and_then(|c| CacheStatus::try_from(c.status).ok())
                    .map_or("CACHE_STATUS_NONE", |c| c.as_str_name());
                *self.cache.entry(cache.into()).or_default() += 1;
                tonic::Code::Ok
            }
            Err(status) => status.code(),
        };
        *self.grpc_codes.entry(format!("{code:?}")).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.latency.add(&other.latency).expect("same bounds");
        for (mine, theirs) in [
            (&mut self.grpc_codes, other.grpc_codes),
            (&mut self.results, other.results),
            (&mut self.cache, other.cache),
        ] {
            for (k, v) in theirs {
                *mine.entry(k).or_default() += v;
            }
        }
    }
}

/// A client identity for mutual TLS: PEM files, as `bhyt-verify pki` writes them.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// The CA the server's certificate must chain to.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ClientTls {
    /// tonic's rustls client (ring), TLS 1.3 as the server insists; the server's certificate
    /// names `localhost`.
    fn config(&self) -> anyhow::Result<ClientTlsConfig> {
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        };
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&self.ca)?))
            .identity(Identity::from_pem(read(&self.cert)?, read(&self.key)?))
            .domain_name("localhost"))
    }
}

/// One HTTP/2 connection to the service, over mutual TLS when `tls` is given.
pub async fn connect(
    target: &str,
    tls: Option<&ClientTls>,
) -> anyhow::Result<VerificationServiceClient<Channel>> {
    let mut endpoint = Endpoint::from_shared(target.to_owned())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.config()?)?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {target}"))?;
    Ok(VerificationServiceClient::new(channel))
}

async fn call(
    client: &mut VerificationServiceClient<Channel>,
    request: CheckCoverageRequest,
    timeout: Duration,
) -> Result<CheckCoverageResponse, tonic::Status> {
    let mut request = tonic::Request::new(request);
    request.set_timeout(timeout);
    client
        .check_coverage(request)
        .await
        .map(tonic::Response::into_inner)
}

/// Sends one check for each hot person (16 at a time), so a cached run starts with every hot
/// answer in the cache. Returns how many were answered.
pub async fn prime(plan: &Plan, mix: &Mix) -> anyhow::Result<usize> {
    let client = connect(&plan.target, plan.tls.as_ref()).await?;
    let people: Vec<_> = mix.hot().to_vec();
    let chunks: Vec<Vec<_>> = people
        .chunks(people.len().div_ceil(16).max(1))
        .map(<[_]>::to_vec)
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, chunk) in chunks.into_iter().enumerate() {
        let mut client = client.clone();
        let timeout = plan.timeout;
        tasks.spawn(async move {
            let mut answered = 0;
            for (i, person) in chunk.iter().enumerate() {
                let req = crate::mix::request(person, &format!("prime-{c}-{i}"), i as u32 % 200);
                answered += usize::from(call(&mut client, req, timeout).await.is_ok());
            }
            answered
        });
    }
    Ok(tasks.join_all().await.into_iter().sum())
}

/// Runs the plan and reports what it measured.
pub async fn run(plan: &Plan, mix: Arc<Mix>) -> anyhow::Result<Outcome> {
    let mut clients = Vec::new();
    for _ in 0..plan.connections.max(1) {
        clients.push(connect(&plan.target, plan.tls.as_ref()).await?);
    }
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    // CPU is sampled when the measured window opens and closes; the generator's own use shows
    // whether it, rather than the server, was the limit.
    let mut watch = plan.watch.clone();
    watch.push(("loadgen".to_owned(), std::process::id()));
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let before: Vec<u64> = watch
            .iter()
            .map(|(_, pid)| procfs::tree_cpu_ticks(*pid))
            .collect();
        let opened = Instant::now();
        tokio::time::sleep_until(end.into()).await;
        let seconds = opened.elapsed().as_secs_f64();
        let ticks = procfs::clock_ticks() as f64;
        watch
            .iter()
            .zip(before)
            .map(|((name, pid), before)| ProcessUse {
                name: name.clone(),
                cpu_percent: (procfs::tree_cpu_ticks(*pid).saturating_sub(before)) as f64
                    / ticks
                    / seconds
                    * 100.0,
                peak_rss_mib: procfs::peak_rss_kib(*pid).unwrap_or(0) as f64 / 1024.0,
            })
            .collect::<Vec<_>>()
    });
    let tally = match plan.mode {
        Mode::Closed { concurrency } => {
            closed(plan, &clients, mix, concurrency, measure_from, end).await
        }
        Mode::Open { rate } => open(plan, &clients, mix, rate, measure_from, end).await,
    };
    let processes = sampler.await?;
    let seconds = plan.duration.as_secs_f64();
    let completed = tally.latency.len();
    let h = &tally.latency;
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(Outcome {
        mode: plan.mode,
        connections: clients.len(),
        seconds,
        completed,
        throughput: completed as f64 / seconds,
        latency_ms: Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        },
        grpc_codes: tally.grpc_codes,
        results: tally.results,
        cache: tally.cache,
        processes,
    })
}

async fn closed(
    plan: &Plan,
    clients: &[VerificationServiceClient<Channel>],
    mix: Arc<Mix>,
    concurrency: usize,
    measure_from: Instant,
    end: Instant,
) -> Tally {
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..concurrency.max(1) {
        let mut client = clients[caller % clients.len()].clone();
        let mix = mix.clone();
        let timeout = plan.timeout;
        let mut rng = ChaCha8Rng::seed_from_u64(plan.seed ^ (caller as u64) << 32);
        callers.spawn(async move {
            let mut tally = Tally::new();
            let mut n = 0u64;
            while Instant::now() < end {
                let req = mix.draw(&mut rng, &format!("c{caller}-{n}"));
                n += 1;
                let sent = Instant::now();
                let answer = call(&mut client, req, timeout).await;
                if sent >= measure_from {
                    tally.record(sent.elapsed(), &answer);
                }
            }
            tally
        });
    }
    let mut total = Tally::new();
    for tally in callers.join_all().await {
        total.merge(tally);
    }
    total
}

async fn open(
    plan: &Plan,
    clients: &[VerificationServiceClient<Channel>],
    mix: Arc<Mix>,
    rate: f64,
    measure_from: Instant,
    end: Instant,
) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::new()));
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let start = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for n in 0u64.. {
        let intended = start + interval.mul_f64(n as f64);
        if intended >= end {
            break;
        }
        // Timers are only millisecond-precise: sleep most of the way, then yield until the
        // intended instant, so an early request does not look faster than it was.
        if let Some(ahead) = intended.checked_duration_since(Instant::now()) {
            if ahead > Duration::from_millis(2) {
                tokio::time::sleep_until((intended - Duration::from_millis(1)).into()).await;
            }
            while Instant::now() < intended {
                tokio::task::yield_now().await;
            }
        }
        let mut client = clients[n as usize % clients.len()].clone();
        let req = mix.draw(&mut rng, &format!("o-{n}"));
        let tally = tally.clone();
        let timeout = plan.timeout;
        calls.spawn(async move {
            let answer = call(&mut client, req, timeout).await;
            if intended >= measure_from {
                // From the intended send time: lateness of the sender counts as latency.
                let latency = intended.elapsed();
                tally.lock().expect("tally").record(latency, &answer);
            }
        });
        // Reap finished calls as we go so the set stays small.
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
    Arc::into_inner(tally)
        .expect("all calls finished")
        .into_inner()
        .expect("tally")
}
