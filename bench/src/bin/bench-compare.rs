//! The comparison: the backend against the limits of its own stack, measured in one run by one
//! load generator, each figure also given as a ratio to the bare tonic server.
//!
//! Scenarios, each against a freshly started server (so its peak memory is its own):
//! bare tonic server (constant answer); the backend with every answer from Redis; the same with
//! the audit log in SQLite memory mode (no durability: what durability costs); every answer
//! from the source (cache off) on SQLite and on PostgreSQL; the realistic mix; then open loop at
//! half the cached throughput for the bare server and the backend; and `redis-benchmark` GET.
//!
//! The server side (server, Redis, PostgreSQL) runs on `--server-core`, the load generator on
//! `--load-core`.

use std::path::PathBuf;

use anyhow::Context;
use bhyt_bench::driver::{LoadArgs, closed, open, run_loadgen, seed_registry};
use bhyt_bench::load::Outcome;
use bhyt_bench::report::{self, Row, markdown, ms, ratio};
use bhyt_bench::services::{Pki, Postgres, Redis, Server, pinned, taskset_available};
use clap::Parser;
use serde::Serialize;

#[derive(Parser)]
#[command(
    about = "Compare the backend with a bare tonic server, Redis and its sources, in one run"
)]
struct Args {
    /// Seconds measured per scenario (after the warm-up).
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// People in the generated registry.
    #[arg(long, default_value_t = 20_000)]
    people: u64,
    /// People in the hot set (primed into the cache for cached runs).
    #[arg(long, default_value_t = 1000)]
    hot: usize,
    /// Callers in closed loop.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    #[arg(long, default_value = "0")]
    server_core: String,
    #[arg(long, default_value = "1")]
    load_core: String,
    /// Do not pin anything (e.g. on a one-core machine).
    #[arg(long)]
    no_pin: bool,
    #[arg(long)]
    skip_postgres: bool,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Where the table, the JSON and the runs' logs go.
    #[arg(long, default_value = "target/bench")]
    out_dir: PathBuf,
    /// Criterion's output, to add the micro-benchmarks' means to the report (if present).
    #[arg(long, default_value = "target/criterion")]
    criterion_dir: PathBuf,
    /// Run only these scenarios (comma-separated names from the table, e.g.
    /// `bare,cached,cached-audit-in-memory`), without redis-benchmark or the chip read: for
    /// comparing one change quickly. The open-loop rows need `cached` for their rate.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Plain-text gRPC for the bare server and the backend, instead of mutual TLS (the
    /// comparison as it was before the backend required client certificates).
    #[arg(long)]
    plaintext: bool,
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    rows: Vec<Row>,
    redis_benchmark: Option<RedisBenchmark>,
    targets: Vec<Target>,
    micro_ns: Vec<(String, f64)>,
    chip_reads: Vec<bhyt_bench::chip::ChipRead>,
}

#[derive(Serialize)]
struct Machine {
    cores: usize,
    pinned: bool,
    /// "mutual TLS 1.3" or "plain text": how the load generator reached every server.
    transport: String,
    server_core: String,
    load_core: String,
    people: u64,
    duration_s: f64,
}

#[derive(Serialize)]
struct RedisBenchmark {
    clients: u32,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Serialize)]
struct Target {
    target: String,
    measured: String,
    met: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let everything = args.only.is_empty();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = !args.no_pin && cores >= 2 && taskset_available();
    let server_core = pin.then_some(args.server_core.as_str());
    let load_core = pin.then_some(args.load_core.as_str());
    std::fs::create_dir_all(&args.out_dir)?;
    let work = tempfile::Builder::new().prefix("bhyt-bench").tempdir()?;
    let runtime = tokio::runtime::Runtime::new()?;

    let registry = format!("sqlite://{}", work.path().join("registry.sqlite").display());
    let population = runtime.block_on(seed_registry(
        &registry,
        args.seed,
        args.people,
        args.hot,
        5_000,
    ))?;
    let mix_file = work.path().join("mix.json");
    population.save(&mix_file)?;
    let redis = Redis::start(server_core)?;
    // Every server is reached as clinics reach the backend: mutual TLS, one private CA.
    let pki = (!args.plaintext)
        .then(|| Pki::create(&work.path().join("pki")))
        .transpose()?;
    let client_tls = pki.as_ref().map(Pki::client);

    let mut rows: Vec<Row> = Vec::new();
    let mut n = 0;
    // One scenario: a server started by `start`, loaded by the generator, then stopped.
    let mut scenario = |name: &str,
                        what: &str,
                        server: &mut Server,
                        weights: &str,
                        mode: Vec<String>,
                        prime: bool,
                        extra_watch: Vec<(String, u32)>|
     -> anyhow::Result<Outcome> {
        n += 1;
        eprintln!("[{n}] {name}: {what}");
        let mut watch = vec![("server".to_owned(), server.process.pid())];
        watch.extend(extra_watch);
        let outcome = run_loadgen(
            load_core,
            &LoadArgs {
                target: server.target(),
                tls: client_tls.clone(),
                mix_file: &mix_file,
                weights,
                mode,
                connections: args.connections,
                warmup: args.warmup,
                duration: args.duration,
                prime,
                watch,
                out: work.path().join(format!("{name}.json")),
            },
        )?;
        server
            .process
            .check_alive()
            .with_context(|| format!("the server died during {name}"))?;
        eprintln!(
            "    {:.0}/s, p50 {} ms, p99 {} ms, errors {}",
            outcome.throughput,
            ms(outcome.latency_ms.p50),
            ms(outcome.latency_ms.p99),
            outcome.unexpected_errors()
        );
        rows.push(Row {
            scenario: name.into(),
            what: what.into(),
            outcome: outcome.clone(),
            load_average: report::load_average(),
        });
        Ok(outcome)
    };
    let backend = |label: &str, env: Vec<(&str, String)>| -> anyhow::Result<Server> {
        let _ = redis.command("FLUSHALL");
        Server::backend(server_core, &work.path().join(label), &env, pki.as_ref())
    };
    let redis_watch = vec![("redis".to_owned(), redis.process.pid())];
    let cached_env = || {
        vec![
            ("BHYT_REGISTRY__URL", registry.clone()),
            ("BHYT_CACHE__REDIS_URL", redis.url()),
        ]
    };
    let uncached_env = |url: String| {
        vec![
            ("BHYT_REGISTRY__URL", url),
            ("BHYT_CACHE__ENABLED", "false".to_owned()),
        ]
    };
    let c = closed(args.concurrency);

    let mut bare_closed = None;
    if wanted("bare") {
        let mut bare = Server::bare(server_core, work.path(), pki.as_ref())?;
        bare_closed = Some(scenario(
            "bare",
            "bare tonic server, constant answer",
            &mut bare,
            "hot",
            c.clone(),
            false,
            vec![],
        )?);
    }

    let mut cached = None;
    if wanted("cached") {
        let mut server = backend("cached", cached_env())?;
        cached = Some(scenario(
            "cached",
            "every answer from Redis, durable audit (SQLite, synchronous=FULL)",
            &mut server,
            "hot",
            c.clone(),
            true,
            redis_watch.clone(),
        )?);
    }

    // Through sqlx's Any driver only this form names one in-memory database shared by the
    // pool's connections (`sqlite://file:…` is read as host and port, `sqlite::memory:` gives
    // each connection a database of its own).
    let memory_audit_url = "sqlite:file:bench-audit?mode=memory&cache=shared";
    let mut memory_audit = None;
    if wanted("cached-audit-in-memory") {
        let mut env = cached_env();
        env.push(("BHYT_AUDIT__URL", memory_audit_url.to_owned()));
        let mut server = backend("memory-audit", env)?;
        memory_audit = Some(scenario(
            "cached-audit-in-memory",
            "every answer from Redis, audit in SQLite memory mode",
            &mut server,
            "hot",
            c.clone(),
            true,
            redis_watch.clone(),
        )?);
    }

    if wanted("source-sqlite") {
        let mut server = backend("source-sqlite", uncached_env(registry.clone()))?;
        scenario(
            "source-sqlite",
            "cache off: every answer from the SQLite registry",
            &mut server,
            "cold",
            c.clone(),
            false,
            vec![],
        )?;
    }

    if !args.skip_postgres && wanted("source-postgres") {
        let pg = Postgres::start(server_core)?;
        runtime.block_on(seed_registry(
            &pg.url(),
            args.seed,
            args.people,
            args.hot,
            5_000,
        ))?;
        let mut server = backend("source-postgres", uncached_env(pg.url()))?;
        let pg_watch = pg
            .pid()
            .map(|pid| vec![("postgres".to_owned(), pid)])
            .unwrap_or_default();
        scenario(
            "source-postgres",
            "cache off: every answer from the PostgreSQL registry",
            &mut server,
            "cold",
            c.clone(),
            false,
            pg_watch,
        )?;
        drop(server);
    }

    if wanted("realistic") {
        let mut server = backend("realistic", cached_env())?;
        scenario(
            "realistic",
            "Redis + SQLite: 75% hot, 17% cold, 5% not found, 3% invalid",
            &mut server,
            "realistic",
            c.clone(),
            false,
            redis_watch.clone(),
        )?;
    }

    // The open-loop rows run at half the cached throughput, so they need the cached row.
    let half = cached.as_ref().map(|c| (c.throughput / 2.0).max(10.0));
    let (mut bare_half, mut cached_half) = (None, None);
    if let Some(half) = half {
        if wanted("bare-open-half") {
            let mut bare = Server::bare(server_core, work.path(), pki.as_ref())?;
            bare_half = Some(scenario(
                "bare-open-half",
                "bare server, open loop at half the cached throughput",
                &mut bare,
                "hot",
                open(half),
                false,
                vec![],
            )?);
        }
        if wanted("cached-open-half") {
            let mut server = backend("cached-open", cached_env())?;
            cached_half = Some(scenario(
                "cached-open-half",
                "every answer from Redis, open loop at half its throughput",
                &mut server,
                "hot",
                open(half),
                true,
                redis_watch.clone(),
            )?);
        }
        if wanted("cached-audit-in-memory-open-half") {
            let mut env = cached_env();
            env.push(("BHYT_AUDIT__URL", memory_audit_url.to_owned()));
            let mut server = backend("memory-audit-open", env)?;
            scenario(
                "cached-audit-in-memory-open-half",
                "every answer from Redis, audit in memory, open loop at half the cached throughput",
                &mut server,
                "hot",
                open(half),
                true,
                redis_watch.clone(),
            )?;
        }
    }

    let redis_benchmark = everything
        .then(|| redis_benchmark(&redis, load_core).ok())
        .flatten();
    drop(redis);

    let mut targets = Vec::new();
    if let (Some(cached), Some(bare)) = (&cached, &bare_closed) {
        targets.push(Target {
            target: "cached throughput >= 0.6x bare".into(),
            measured: ratio(cached.throughput, bare.throughput),
            met: cached.throughput >= 0.6 * bare.throughput,
        });
    }
    if let (Some(half), Some(cached_half), Some(bare_half)) = (half, &cached_half, &bare_half) {
        targets.push(Target {
            target: format!("p99 at half load ({half:.0}/s) <= 2x bare p99 at that load"),
            measured: ratio(cached_half.latency_ms.p99, bare_half.latency_ms.p99),
            met: cached_half.latency_ms.p99 <= 2.0 * bare_half.latency_ms.p99,
        });
    }
    if let (Some(cached), Some(memory_audit)) = (&cached, &memory_audit) {
        targets.push(Target {
            target: "durable audit costs <= 25% of cached throughput vs audit in memory".into(),
            measured: format!(
                "{:.0}%",
                (1.0 - cached.throughput / memory_audit.throughput) * 100.0
            ),
            met: cached.throughput >= 0.75 * memory_audit.throughput,
        });
    }
    let report = Report {
        machine: Machine {
            cores,
            pinned: pin,
            transport: if pki.is_some() {
                "mutual TLS 1.3".into()
            } else {
                "plain text".into()
            },
            server_core: args.server_core.clone(),
            load_core: args.load_core.clone(),
            people: args.people,
            duration_s: args.duration,
        },
        rows,
        redis_benchmark,
        targets,
        micro_ns: report::criterion_means(&args.criterion_dir),
        chip_reads: if everything {
            bhyt_bench::chip::chip_reads(20)
        } else {
            Vec::new()
        },
    };
    let text = render(&report, bare_closed.as_ref(), bare_half.as_ref());
    println!("{text}");
    std::fs::write(args.out_dir.join("compare.md"), &text)?;
    report::write_json(&args.out_dir.join("compare.json"), &report)?;
    eprintln!(
        "wrote {} and {}",
        args.out_dir.join("compare.md").display(),
        args.out_dir.join("compare.json").display()
    );
    Ok(())
}

/// Server CPU time per call in microseconds: robust to a shared machine, where other work
/// takes some of the pinned core and lowers throughput without making a call any dearer.
fn cpu_per_call(cpu_percent: f64, throughput: f64) -> f64 {
    if throughput > 0.0 {
        cpu_percent / 100.0 * 1e6 / throughput
    } else {
        0.0
    }
}

fn redis_benchmark(redis: &Redis, core: Option<&str>) -> anyhow::Result<RedisBenchmark> {
    let clients = 50;
    let output = pinned(core, "redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &redis.port.to_string()])
        .args([
            "-t",
            "get",
            "-n",
            "200000",
            "-c",
            &clients.to_string(),
            "--csv",
        ])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
    // "p99_latency_ms","max_latency_ms"
    let line = text
        .lines()
        .find(|l| l.starts_with("\"GET\""))
        .context("redis-benchmark printed no GET line")?;
    let f: Vec<f64> = line
        .split(',')
        .skip(1)
        .map(|v| v.trim_matches('"').parse().unwrap_or(0.0))
        .collect();
    Ok(RedisBenchmark {
        clients,
        rps: f[0],
        p50_ms: f.get(3).copied().unwrap_or(0.0),
        p99_ms: f.get(5).copied().unwrap_or(0.0),
    })
}

fn render(report: &Report, bare: Option<&Outcome>, bare_half: Option<&Outcome>) -> String {
    // A row whose baseline was not run gets no ratio.
    let throughput = |o: Option<&Outcome>| o.map_or(0.0, |o| o.throughput);
    let p99 = |o: Option<&Outcome>| o.map_or(0.0, |o| o.latency_ms.p99);
    let m = &report.machine;
    let mut out = format!(
        "## bhyt-verify benchmark\n\n{} cores; {}; gRPC over {} (the bare server and the backend \
         alike); registry of {} generated people; {} s measured per scenario after a warm-up; \
         closed loop = {} callers over {} HTTP/2 connections.\n\n",
        m.cores,
        if m.pinned {
            format!(
                "server side (server, Redis, PostgreSQL) pinned to core {}, load generator to core {} (taskset)",
                m.server_core, m.load_core
            )
        } else {
            "NOT pinned".to_owned()
        },
        m.transport,
        m.people,
        m.duration_s,
        report.rows.first().map_or(0, |r| match r.outcome.mode {
            bhyt_bench::load::Mode::Closed { concurrency } => concurrency,
            _ => 0,
        }),
        report.rows.first().map_or(0, |r| r.outcome.connections),
    );
    let header = [
        "scenario",
        "load",
        "calls/s",
        "× bare",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "p99 × bare",
        "errors",
        "Redis hits",
        "server CPU",
        "CPU µs/call",
        "server peak RSS",
        "other CPU",
        "load avg",
    ];
    let mut rows = Vec::new();
    for row in &report.rows {
        let o = &row.outcome;
        let (load, base) = match o.mode {
            bhyt_bench::load::Mode::Closed { concurrency } => {
                (format!("closed {concurrency}"), bare)
            }
            bhyt_bench::load::Mode::Open { rate } => (format!("open {rate:.0}/s"), bare_half),
        };
        let server = o.processes.iter().find(|p| p.name == "server");
        let deps: Vec<String> = o
            .processes
            .iter()
            .filter(|p| p.name != "server")
            .map(|p| format!("{} {:.0}%", p.name, p.cpu_percent))
            .collect();
        let errors: Vec<String> = o
            .grpc_codes
            .iter()
            .filter(|(c, _)| c.as_str() != "Ok")
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        rows.push(vec![
            row.scenario.clone(),
            load,
            format!("{:.0}", o.throughput),
            ratio(o.throughput, throughput(base)),
            ms(o.latency_ms.p50),
            ms(o.latency_ms.p90),
            ms(o.latency_ms.p99),
            ms(o.latency_ms.p999),
            ratio(o.latency_ms.p99, p99(base)),
            if errors.is_empty() {
                "0".into()
            } else {
                errors.join(", ")
            },
            if o.cache.is_empty() || row.scenario.starts_with("bare") {
                "-".into()
            } else {
                format!("{:.0}%", o.cache_hit_share() * 100.0)
            },
            server.map_or("-".into(), |s| format!("{:.0}%", s.cpu_percent)),
            server.map_or("-".into(), |s| {
                format!("{:.0}", cpu_per_call(s.cpu_percent, o.throughput))
            }),
            server.map_or("-".into(), |s| format!("{:.0} MiB", s.peak_rss_mib)),
            if deps.is_empty() {
                "-".into()
            } else {
                deps.join(", ")
            },
            format!("{:.1}", row.load_average),
        ]);
    }
    if let Some(r) = &report.redis_benchmark {
        rows.push(vec![
            "redis-benchmark GET".into(),
            format!("closed {}", r.clients),
            format!("{:.0}", r.rps),
            ratio(r.rps, throughput(bare)),
            ms(r.p50_ms),
            "-".into(),
            ms(r.p99_ms),
            "-".into(),
            ratio(r.p99_ms, p99(bare)),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            format!("{:.1}", report::load_average()),
        ]);
    }
    out.push_str(&markdown(&header, &rows));
    out.push_str("\n× bare: closed-loop rows against the bare server in closed loop, open-loop rows against the bare server at the same rate.\n\n");
    out.push_str("Results of the answered checks:\n\n");
    for row in &report.rows {
        if !row.outcome.results.is_empty() {
            let results: Vec<String> = row
                .outcome
                .results
                .iter()
                .map(|(r, n)| format!("{} {n}", r.trim_start_matches("RESULT_CODE_")))
                .collect();
            out.push_str(&format!("- {}: {}\n", row.scenario, results.join(", ")));
        }
    }
    if !report.chip_reads.is_empty() {
        out.push_str("\nChip read (virtual CCCD in process: PACE-CAN, EF.SOD, DG1, DG13, DG14, DG15, Active Authentication):\n\n");
        let rows: Vec<Vec<String>> = report
            .chip_reads
            .iter()
            .map(|c| {
                vec![
                    c.reader.to_owned(),
                    format!("{:?}", c.file_bytes),
                    c.apdus.to_string(),
                    c.minimum_apdus.to_string(),
                    ratio(f64::from(c.apdus), f64::from(c.minimum_apdus)),
                    c.bytes_sent.to_string(),
                    c.bytes_received.to_string(),
                    ms(c.median_ms),
                ]
            })
            .collect();
        out.push_str(&markdown(
            &[
                "reader",
                "file bytes (SOD, 1, 13, 14, 15)",
                "APDUs",
                "minimum",
                "× minimum",
                "bytes sent",
                "bytes received",
                "median ms",
            ],
            &rows,
        ));
    }
    out.push_str("\nTargets (issue 7):\n\n");
    for t in &report.targets {
        out.push_str(&format!(
            "- [{}] {}: {}\n",
            if t.met { "met" } else { "MISSED" },
            t.target,
            t.measured
        ));
    }
    if !report.micro_ns.is_empty() {
        out.push_str("\nMicro-benchmarks (criterion, mean):\n\n");
        let rows: Vec<Vec<String>> = report
            .micro_ns
            .iter()
            .map(|(id, ns)| {
                vec![
                    id.clone(),
                    if *ns >= 1000.0 {
                        format!("{:.2} µs", ns / 1000.0)
                    } else {
                        format!("{ns:.0} ns")
                    },
                ]
            })
            .collect();
        out.push_str(&markdown(&["function", "time"], &rows));
    }
    out
}
