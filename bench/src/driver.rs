//! What the drivers (`bench-compare`, `bench-growth`) share: seeding a registry while sampling
//! the people a run asks about, and running the load generator as a pinned child process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::Context;
use bhyt_verify::db::{self, Schema};
use bhyt_verify::registry::generate::{self, Generator};

use crate::load::{ClientTls, Outcome};
use crate::mix::{Population, Sampler};
use crate::services::{pinned, sibling};

/// Seeds the registry at `url` with `people` generated from `seed` and returns the sample of
/// them a run draws from (`hot` people, about `cold` spread over the rest, and as many
/// unregistered IDs as `cold`).
pub async fn seed_registry(
    url: &str,
    seed: u64,
    people: u64,
    hot: usize,
    cold: usize,
) -> anyhow::Result<Population> {
    let started = Instant::now();
    let pool = db::connect(url, 4, Schema::Registry)
        .await
        .with_context(|| format!("opening the registry {}", redact(url)))?;
    let today = bhyt_verify::coverage::vietnam_date(time::OffsetDateTime::now_utc());
    let mut sampler = Sampler::new(seed, people, hot, cold);
    // Inserted in slices so a registry of millions needs neither one huge transaction nor
    // the whole population in memory.
    let mut cards = Generator::new(seed, today).take(people as usize).peekable();
    while cards.peek().is_some() {
        let slice: Vec<_> = cards.by_ref().take(100_000).collect();
        for card in &slice {
            sampler.observe(card);
        }
        generate::insert(&pool, slice).await?;
    }
    pool.close().await;
    eprintln!(
        "seeded {people} people into {} in {:.1} s",
        redact(url),
        started.elapsed().as_secs_f64()
    );
    Ok(sampler.finish(cold.max(100)))
}

fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// How to run the load generator for one scenario.
pub struct LoadArgs<'a> {
    pub target: String,
    /// The load generator's identity, for a server on mutual TLS.
    pub tls: Option<ClientTls>,
    pub mix_file: &'a Path,
    pub weights: &'a str,
    /// `["--mode", "closed", "--concurrency", "64"]` and the like.
    pub mode: Vec<String>,
    pub connections: usize,
    pub warmup: f64,
    pub duration: f64,
    pub prime: bool,
    pub watch: Vec<(String, u32)>,
    pub out: PathBuf,
}

/// Runs `loadgen` pinned to `core` and reads its outcome.
pub fn run_loadgen(core: Option<&str>, a: &LoadArgs<'_>) -> anyhow::Result<Outcome> {
    let mut command = pinned(core, sibling("loadgen")?);
    command
        .args(["--target", &a.target])
        .arg("--mix-file")
        .arg(a.mix_file)
        .args(["--weights", a.weights])
        .args(&a.mode)
        .args(["--connections", &a.connections.to_string()])
        .args(["--warmup", &a.warmup.to_string()])
        .args(["--duration", &a.duration.to_string()])
        .arg("--json-out")
        .arg(&a.out)
        .stdout(Stdio::null());
    if a.prime {
        command.arg("--prime");
    }
    if let Some(tls) = &a.tls {
        command
            .arg("--ca")
            .arg(&tls.ca)
            .arg("--cert")
            .arg(&tls.cert)
            .arg("--key")
            .arg(&tls.key);
    }
    for (name, pid) in &a.watch {
        command.args(["--watch", &format!("{name}={pid}")]);
    }
    let status = command.status().context("running loadgen")?;
    anyhow::ensure!(status.success(), "loadgen failed ({status})");
    Ok(serde_json::from_slice(&std::fs::read(&a.out)?)?)
}

/// `closed` mode arguments.
pub fn closed(concurrency: usize) -> Vec<String> {
    vec![
        "--mode".into(),
        "closed".into(),
        "--concurrency".into(),
        concurrency.to_string(),
    ]
}

/// `open` mode arguments.
pub fn open(rate: f64) -> Vec<String> {
    vec![
        "--mode".into(),
        "open".into(),
        "--rate".into(),
        format!("{rate:.0}"),
    ]
}
