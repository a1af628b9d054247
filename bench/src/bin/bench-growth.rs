//! How cost grows with size: uncached checks (cache off, every answer from the registry) against
//! registries of increasing size, and audit-log queries against logs of increasing size.
//!
//! Slower than `bench-compare` (seeding 10 million people takes minutes), so a command of its
//! own. Sizes are chosen on the command line; each registry and log is removed after its run.
//! gRPC is plain text here: what is compared is one size with another, over the same transport.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bhyt_bench::driver::{LoadArgs, closed, open, run_loadgen, seed_registry};
use bhyt_bench::load::Outcome;
use bhyt_bench::report::{self, markdown, ms, ratio};
use bhyt_bench::services::{Server, taskset_available};
use bhyt_proto::v1::audit_service_client::AuditServiceClient;
use bhyt_proto::v1::{QueryLookupsRequest, ResultCode, query_lookups_request};
use bhyt_verify::audit::chain::{self, AuditEntry, ChainedRecord, Evidence};
use bhyt_verify::audit::store;
use bhyt_verify::db::{self, Schema};
use bhyt_verify::keys::Keys;
use bhyt_verify::registry::generate::unregistered_citizen_ids;
use clap::Parser;
use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Parser)]
#[command(about = "Uncached check cost by registry size, audit query cost by log size")]
struct Args {
    /// Registry sizes (people), comma-separated; `--sizes` alone skips them.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "10000,1000000,10000000")]
    sizes: Vec<u64>,
    /// Audit log sizes (records), comma-separated; `--audit-sizes` alone skips them.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "1000000,10000000")]
    audit_sizes: Vec<u64>,
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Callers in closed loop.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Open-loop rate (per second) at which latency is compared across sizes.
    #[arg(long, default_value_t = 300.0)]
    rate: f64,
    #[arg(long, default_value = "0")]
    server_core: String,
    #[arg(long, default_value = "1")]
    load_core: String,
    #[arg(long)]
    no_pin: bool,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Queries per kind of audit query.
    #[arg(long, default_value_t = 30)]
    queries: usize,
    /// Where the growth table and JSON go; the databases go to a temporary directory under it
    /// (large: about 0.5 GB per million people or records).
    #[arg(long, default_value = "target/bench")]
    out_dir: PathBuf,
}

#[derive(Serialize)]
struct RegistryPoint {
    people: u64,
    seed_seconds: f64,
    closed: Outcome,
    open: Outcome,
}

#[derive(Serialize)]
struct AuditPoint {
    records: u64,
    seed_seconds: f64,
    /// Kind of query → latency percentiles (ms) of one page of up to 100 records.
    queries: Vec<(String, f64, f64, f64)>,
}

#[derive(Serialize)]
struct Growth {
    pinned: bool,
    registry: Vec<RegistryPoint>,
    audit: Vec<AuditPoint>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = !args.no_pin && cores >= 2 && taskset_available();
    let server_core = pin.then_some(args.server_core.as_str());
    let load_core = pin.then_some(args.load_core.as_str());
    std::fs::create_dir_all(&args.out_dir)?;
    let work = tempfile::Builder::new()
        .prefix("growth")
        .tempdir_in(&args.out_dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut growth = Growth {
        pinned: pin,
        registry: Vec::new(),
        audit: Vec::new(),
    };

    for &people in &args.sizes {
        let dir = work.path().join(format!("registry-{people}"));
        std::fs::create_dir_all(&dir)?;
        let url = format!("sqlite://{}", dir.join("registry.sqlite").display());
        let started = Instant::now();
        let population = runtime.block_on(seed_registry(&url, args.seed, people, 0, 20_000))?;
        let seed_seconds = started.elapsed().as_secs_f64();
        let mix_file = dir.join("mix.json");
        population.save(&mix_file)?;
        let env = vec![
            ("BHYT_REGISTRY__URL", url.clone()),
            ("BHYT_CACHE__ENABLED", "false".to_owned()),
        ];
        let run = |label: &str, mode: Vec<String>| -> anyhow::Result<Outcome> {
            let mut server = Server::backend(server_core, &dir.join(label), &env, None)?;
            eprintln!("registry of {people}: {label}");
            let outcome = run_loadgen(
                load_core,
                &LoadArgs {
                    target: server.target(),
                    tls: None,
                    mix_file: &mix_file,
                    weights: "cold",
                    mode,
                    connections: 4,
                    warmup: args.warmup,
                    duration: args.duration,
                    prime: false,
                    watch: vec![("server".into(), server.process.pid())],
                    out: dir.join(format!("{label}.json")),
                },
            )?;
            server.process.check_alive()?;
            eprintln!(
                "    {:.0}/s, p50 {} ms, p99 {} ms",
                outcome.throughput,
                ms(outcome.latency_ms.p50),
                ms(outcome.latency_ms.p99)
            );
            Ok(outcome)
        };
        let closed = run("closed", closed(args.concurrency))?;
        let open = run("open", open(args.rate))?;
        growth.registry.push(RegistryPoint {
            people,
            seed_seconds,
            closed,
            open,
        });
        std::fs::remove_dir_all(&dir)?;
        // Written after every point: a long run that fails later keeps what it measured.
        save(&args.out_dir, &growth)?;
    }

    for &records in &args.audit_sizes {
        let dir = work.path().join(format!("audit-{records}"));
        let point = runtime.block_on(audit_point(&args, server_core, &dir, records))?;
        growth.audit.push(point);
        std::fs::remove_dir_all(&dir)?;
        save(&args.out_dir, &growth)?;
    }
    println!("{}", render(&growth));
    Ok(())
}

fn save(out_dir: &Path, growth: &Growth) -> anyhow::Result<()> {
    std::fs::write(out_dir.join("growth.md"), render(growth))?;
    report::write_json(&out_dir.join("growth.json"), growth)
}

/// Citizens the seeded audit log is about: each has about records / CITIZENS records.
const CITIZENS: usize = 50_000;
const FACILITIES: u64 = 60;
const STATIONS: u64 = 200;
/// The log spans the last 30 days.
const SPAN_MICROS: i64 = 30 * 24 * 3600 * 1_000_000;

async fn audit_point(
    args: &Args,
    server_core: Option<&str>,
    dir: &Path,
    records: u64,
) -> anyhow::Result<AuditPoint> {
    std::fs::create_dir_all(dir)?;
    let url = format!("sqlite://{}", dir.join("audit.sqlite").display());
    // The server will use these keys, so citizen filters find the seeded subject hashes.
    let keys = Keys::load_or_create(&dir.join("data/keys"))?;
    let citizens: Vec<String> = unregistered_citizen_ids(args.seed)
        .take(CITIZENS)
        .map(|id| id.as_str().to_owned())
        .collect();
    let started = Instant::now();
    let end = bhyt_verify::audit::writer::now_micros();
    let first = end - SPAN_MICROS;
    {
        let pool = db::connect(&url, 2, Schema::Audit).await?;
        let writer = "w-0000000000be7c11";
        store::register_writer(&pool, writer, first, "seed", "bench").await?;
        let mut prev = chain::genesis_hash(writer);
        let mut seq = 0i64;
        let hashes: Vec<String> = citizens
            .iter()
            .map(|id| {
                keys.pseudonymizer
                    .hash("audit-subject", &format!("citizen_id:{id}"))
            })
            .collect();
        let operator = keys.pseudonymizer.hash("audit-operator", "079185000123");
        while (seq as u64) < records {
            let n = (records - seq as u64).min(10_000);
            let mut group = Vec::with_capacity(n as usize);
            for _ in 0..n {
                seq += 1;
                let i = seq as u64;
                let mix = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let entry = AuditEntry {
                    record_id: bhyt_verify::audit::writer::new_record_id(),
                    recorded_at: first + (SPAN_MICROS / records as i64).max(1) * seq,
                    request_id: format!("seed-{seq}"),
                    facility_code: format!("{:02}{:03}", 1 + mix % FACILITIES, 821),
                    station_id: format!("desk-{}", (mix >> 8) % STATIONS),
                    operator_hash: operator.clone(),
                    subject_kind: "citizen_id".into(),
                    subject_hash: hashes[((mix >> 20) % CITIZENS as u64) as usize].clone(),
                    result: [1, 1, 1, 1, 2, 10, 90][((mix >> 40) % 7) as usize],
                    source_code: "000".into(),
                    cache_status: 1,
                    evidence: Evidence {
                        method: 1,
                        ..Default::default()
                    },
                    latency_micros: 900,
                    ..Default::default()
                };
                let record_hash = chain::record_hash(writer, seq, &prev, &entry);
                group.push(ChainedRecord {
                    writer_id: writer.into(),
                    seq,
                    entry,
                    prev_hash: std::mem::replace(&mut prev, record_hash.clone()),
                    record_hash,
                });
            }
            store::insert_group(&mut *pool.acquire().await?, &group, &[]).await?;
        }
        pool.close().await;
    }
    let seed_seconds = started.elapsed().as_secs_f64();
    eprintln!("seeded {records} audit records in {seed_seconds:.1} s");

    let env = vec![("BHYT_AUDIT__URL", url.clone())];
    let mut server = Server::backend(server_core, &dir.join("data"), &env, None)?;
    let channel = tonic::transport::Endpoint::from_shared(server.target())?
        .connect()
        .await?;
    let mut client = AuditServiceClient::new(channel);
    let ts = |micros: i64| prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    };
    let whole = (Some(ts(first)), Some(ts(end + 1)));
    let last_hour = (Some(ts(end - 3_600_000_000)), Some(ts(end + 1)));
    let mut queries = Vec::new();
    let kinds: [(&str, Box<dyn Fn(usize) -> QueryLookupsRequest + '_>); 4] = [
        (
            "one citizen, 30 days",
            Box::new(|i| QueryLookupsRequest {
                from: whole.0,
                to: whole.1,
                subject: Some(query_lookups_request::Subject::CitizenId(
                    citizens[i * 7919 % CITIZENS].clone(),
                )),
                page_size: 100,
                max_records: 100,
                ..Default::default()
            }),
        ),
        (
            "one facility, last hour",
            Box::new(|i| QueryLookupsRequest {
                from: last_hour.0,
                to: last_hour.1,
                facility_code: format!("{:02}821", 1 + i as u64 % FACILITIES),
                page_size: 100,
                max_records: 100,
                ..Default::default()
            }),
        ),
        (
            "one station + result, 30 days",
            Box::new(|i| QueryLookupsRequest {
                from: whole.0,
                to: whole.1,
                station_id: format!("desk-{}", i as u64 % STATIONS),
                results: vec![ResultCode::CardRevoked as i32],
                page_size: 100,
                max_records: 100,
                ..Default::default()
            }),
        ),
        (
            "everything, last hour",
            Box::new(|_| QueryLookupsRequest {
                from: last_hour.0,
                to: last_hour.1,
                page_size: 100,
                max_records: 100,
                ..Default::default()
            }),
        ),
    ];
    for (name, make) in &kinds {
        let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
        let mut found = 0;
        for i in 0..args.queries {
            let started = Instant::now();
            let mut stream = client.query_lookups(make(i)).await?.into_inner();
            while let Some(page) = stream.message().await? {
                found += page.records.len();
            }
            h.saturating_record(started.elapsed().as_micros() as u64);
        }
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        eprintln!(
            "    {name}: p50 {} ms, p99 {} ms ({} records per query)",
            ms(q(0.5)),
            ms(q(0.99)),
            found / args.queries.max(1)
        );
        queries.push((name.to_string(), q(0.5), q(0.9), q(0.99)));
    }
    server.process.check_alive()?;
    drop(server);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(AuditPoint {
        records,
        seed_seconds,
        queries,
    })
}

fn render(g: &Growth) -> String {
    let mut out = format!(
        "## bhyt-verify growth\n\nCache off (every answer from the SQLite registry); {}.\n\n",
        if g.pinned {
            "server pinned to one core, load generator to the other"
        } else {
            "NOT pinned"
        }
    );
    let base = g.registry.first();
    let rows: Vec<Vec<String>> = g
        .registry
        .iter()
        .map(|p| {
            let b = base.expect("a first point");
            vec![
                p.people.to_string(),
                format!("{:.0}", p.closed.throughput),
                ratio(p.closed.throughput, b.closed.throughput),
                ms(p.closed.latency_ms.p50),
                ms(p.closed.latency_ms.p99),
                format!("{:.0}/s", p.open.throughput),
                ms(p.open.latency_ms.p50),
                ms(p.open.latency_ms.p99),
                ratio(p.open.latency_ms.p99, b.open.latency_ms.p99),
                format!("{:.0} s", p.seed_seconds),
            ]
        })
        .collect();
    out.push_str(&markdown(
        &[
            "people",
            "closed calls/s",
            "× smallest",
            "p50 ms",
            "p99 ms",
            "open load",
            "p50 ms",
            "p99 ms",
            "p99 × smallest",
            "seeding",
        ],
        &rows,
    ));
    if !g.audit.is_empty() {
        out.push_str("\nAudit queries (one page of up to 100 records over gRPC):\n\n");
        let mut rows = Vec::new();
        for p in &g.audit {
            for (name, p50, p90, p99) in &p.queries {
                rows.push(vec![
                    p.records.to_string(),
                    name.clone(),
                    ms(*p50),
                    ms(*p90),
                    ms(*p99),
                ]);
            }
        }
        out.push_str(&markdown(
            &["records", "query", "p50 ms", "p90 ms", "p99 ms"],
            &rows,
        ));
    }
    out
}
