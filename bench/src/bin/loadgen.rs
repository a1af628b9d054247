//! The load generator as a program of its own, so it runs pinned to a core apart from the
//! server's (`taskset -c 1 loadgen ...`). Prints the outcome as JSON (and writes it to
//! `--json-out`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bhyt_bench::load::{self, ClientTls, Mode, Plan};
use bhyt_bench::mix::{Mix, Population, Sampler, Weights};
use bhyt_verify::registry::generate::Generator;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Drive VerificationService.CheckCoverage over gRPC, closed or open loop")]
struct Args {
    /// The server: https://localhost:PORT (mutual TLS: --ca, --cert, --key) or
    /// http://127.0.0.1:PORT (plain text).
    #[arg(long)]
    target: String,
    /// The CA the server's certificate chains to (PEM).
    #[arg(long, requires_all = ["cert", "key"])]
    ca: Option<PathBuf>,
    /// This client's certificate (PEM), e.g. an HIS certificate of the facility checked for.
    #[arg(long, requires = "ca")]
    cert: Option<PathBuf>,
    #[arg(long, requires = "ca")]
    key: Option<PathBuf>,
    /// The people to ask about, as written by bench-compare; without it the sample is drawn
    /// again from the generator (`--seed`, `--people`), as `bhyt-verify demo` seeds it.
    #[arg(long)]
    mix_file: Option<PathBuf>,
    #[arg(long, default_value_t = 20_000)]
    people: u64,
    /// hot, cold, realistic, or hot:cold:not_found:invalid.
    #[arg(long, default_value = "realistic")]
    weights: String,
    /// closed (a set number of callers) or open (a set rate).
    #[arg(long, default_value = "closed")]
    mode: String,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Requests per second in open loop.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Seconds before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured; the run then stops by itself.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Each call's deadline, seconds.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Check every hot person once before the run (fills the cache).
    #[arg(long)]
    prime: bool,
    /// name=pid of a process whose CPU and peak memory to report (repeatable).
    #[arg(long)]
    watch: Vec<String>,
    #[arg(long)]
    json_out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // One core is all a pinned generator has: one thread, no cross-thread hand-offs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let population = match &args.mix_file {
        Some(path) => Population::load(path).context("reading the mix file")?,
        None => {
            let today = bhyt_verify::coverage::vietnam_date(time::OffsetDateTime::now_utc());
            let mut sampler = Sampler::new(args.seed, args.people, 1000, 10_000);
            for card in Generator::new(args.seed, today).take(args.people as usize) {
                sampler.observe(&card);
            }
            sampler.finish(1000)
        }
    };
    let weights = Weights::parse(&args.weights).map_err(anyhow::Error::msg)?;
    let mix = Arc::new(Mix::new(population, weights)?);
    let mode = match args.mode.as_str() {
        "closed" => Mode::Closed {
            concurrency: args.concurrency,
        },
        "open" => Mode::Open { rate: args.rate },
        other => anyhow::bail!("mode {other:?}: closed or open"),
    };
    let watch = args
        .watch
        .iter()
        .map(|w| {
            let (name, pid) = w.split_once('=').context("--watch name=pid")?;
            Ok((name.to_owned(), pid.parse()?))
        })
        .collect::<anyhow::Result<Vec<(String, u32)>>>()?;
    let tls = match (args.ca, args.cert, args.key) {
        (Some(ca), Some(cert), Some(key)) => Some(ClientTls { ca, cert, key }),
        _ => None,
    };
    anyhow::ensure!(
        tls.is_some() == args.target.starts_with("https:"),
        "an https target needs --ca, --cert and --key; an http one takes none"
    );
    let plan = Plan {
        target: args.target,
        tls,
        connections: args.connections,
        mode,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        timeout: Duration::from_secs_f64(args.timeout),
        seed: args.seed,
        watch,
    };
    if args.prime {
        load::prime(&plan, &mix).await?;
    }
    let outcome = load::run(&plan, mix).await?;
    let json = serde_json::to_string_pretty(&outcome)?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, &json)?;
    }
    println!("{json}");
    Ok(())
}
