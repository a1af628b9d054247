//! `bhyt-verify`: the verification backend's command line.

use std::path::PathBuf;

use anyhow::Context;
use bhyt_verify::audit::integrity::{self, Verification};
use bhyt_verify::config::Config;
use bhyt_verify::db::{self, Schema};
use bhyt_verify::keys::CheckpointVerifier;
use bhyt_verify::server::App;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

mod demo;

#[derive(Parser)]
#[command(version, about = "BHYT coverage verification backend")]
struct Cli {
    /// Configuration file (TOML); `BHYT_*` environment variables override it.
    #[arg(long, short, global = true, env = "BHYT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API (and /metrics, /health on the operator port).
    Serve,
    /// Seed a synthetic registry if the data directory has none, serve, and show real calls.
    Demo(demo::DemoArgs),
    /// Load a registry CSV file (format: docs/registry-csv.md) into the registry database.
    Import {
        file: PathBuf,
        /// Load the good rows of a file with bad rows (by default nothing is loaded).
        #[arg(long)]
        skip_bad_rows: bool,
    },
    /// Write a synthetic registry as CSV in the import format.
    Generate {
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Audit log commands.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The private CA: issue and revoke the certificates of stations, HIS, auditors, admins and the server.
    Pki(bhyt_verify::pki::cli::PkiArgs),
    /// Proof-of-check tokens.
    #[command(subcommand)]
    Proof(ProofCommand),
    /// The backend's own keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum ProofCommand {
    /// Check a token's signature offline and print what it states; exit status 1 if it fails.
    Verify {
        token: String,
        /// Directory of trusted public keys (default: the data directory's keys/proof-keys).
        #[arg(long)]
        keys: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new pseudonym key, data key and proof-signing key, and make them current; old keys
    /// stay for reading what they sealed, hashed or signed. Restart the backend afterwards.
    Rotate,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Re-compute every chain and check the signed checkpoints; exit status 1 if tampered.
    Verify {
        /// Public keys that may have signed checkpoints (default: the data directory's).
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
    },
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into())
        // The gateway's card-check URL carries its token, and reqwest's own log lines have
        // carried full URLs in some versions: capped here, whatever RUST_LOG asks for.
        .add_directive("reqwest=info".parse().expect("a valid directive"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref()).context("reading the configuration")?;
    init_logs(config.log_json);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Demo(args) => demo::run(config, args).await,
        Command::Import {
            file,
            skip_bad_rows,
        } => import(config, file, skip_bad_rows).await,
        Command::Generate { count, seed, out } => generate(count, seed, out),
        Command::Audit(AuditCommand::Verify { keys }) => audit_verify(config, keys).await,
        Command::Pki(args) => Ok(bhyt_verify::pki::cli::run(&config, args)?),
        Command::Proof(ProofCommand::Verify { token, keys }) => proof_verify(&config, &token, keys),
        Command::Keys(KeysCommand::Rotate) => {
            bhyt_verify::keys::Keys::rotate(&config.keys_dir())?;
            bhyt_verify::keys::Keys::load_or_create(&config.keys_dir())?;
            println!(
                "keys rotated in {}; restart the backend to use them",
                config.keys_dir().display()
            );
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let grpc = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let http = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("binding {}", config.http_listen))?;
    let app = App::start(config).await?;
    tracing::info!(grpc = %grpc.local_addr()?, http = %http.local_addr()?, "serving");
    app.serve(grpc, http, shutdown_signal()).await?;
    Ok(())
}

/// Ctrl-C or SIGTERM (systemd's stop).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

fn generate(count: u64, seed: u64, out: PathBuf) -> anyhow::Result<()> {
    use bhyt_verify::registry::generate::{Generator, write_csv};
    let today = bhyt_verify::coverage::vietnam_date(time::OffsetDateTime::now_utc());
    let file =
        std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
    let cards = Generator::new(seed, today).take(count as usize);
    let written = write_csv(std::io::BufWriter::new(file), cards)?;
    println!("wrote {written} cards to {}", out.display());
    Ok(())
}

async fn import(config: Config, file: PathBuf, skip_bad_rows: bool) -> anyhow::Result<()> {
    use bhyt_verify::registry::import::{ImportOptions, import_file};
    let pool = db::connect(&config.registry_url(), 4, Schema::Registry).await?;
    let report = import_file(&pool, &file, ImportOptions { skip_bad_rows })
        .await
        .with_context(|| format!("importing {}", file.display()))?;
    for bad in &report.bad_rows {
        eprintln!("line {}: {}: {}", bad.line, bad.field, bad.reason);
    }
    let invalidated = bhyt_verify::cache::invalidate_after_import(&config, report.touched).await?;
    println!(
        "{} rows read, {} loaded, {} bad; {invalidated} cache entries invalidated",
        report.rows_read, report.rows_loaded, report.bad_row_count
    );
    if report.rows_loaded == 0 && report.bad_row_count > 0 {
        anyhow::bail!("nothing was loaded: fix the rows above, or pass --skip-bad-rows");
    }
    Ok(())
}

fn proof_verify(config: &Config, token: &str, keys: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = keys.unwrap_or_else(|| config.keys_dir().join("proof-keys"));
    let verifier = bhyt_verify::proof::ProofVerifier::load(&dir)?;
    match verifier.verify(token) {
        Ok(claims) => {
            println!(
                "valid proof of check\n{}",
                serde_json::to_string_pretty(&claims)?
            );
            Ok(())
        }
        Err(error) => {
            println!("INVALID proof of check: {error}");
            std::process::exit(1);
        }
    }
}

async fn audit_verify(config: Config, key_files: Vec<PathBuf>) -> anyhow::Result<()> {
    let key_files = if key_files.is_empty() {
        vec![config.keys_dir().join("audit-signing.pub")]
    } else {
        key_files
    };
    let keys = key_files
        .iter()
        .map(|path| CheckpointVerifier::load(path))
        .collect::<Result<Vec<_>, _>>()?;
    let pool = db::connect(&config.audit_url(), 2, Schema::Audit).await?;
    let now = bhyt_verify::audit::writer::now_micros();
    let quiet_after = i64::try_from(config.audit.checkpoint_interval_secs)
        .unwrap_or(i64::MAX / 4_000_000)
        * 3_000_000;
    let report = integrity::verify(
        &pool,
        &Verification {
            keys: &keys,
            range: None,
            now,
            quiet_after,
        },
    )
    .await?;
    pool.close().await;
    println!(
        "{} records in {} chains checked, {} checkpoints verified",
        report.records_checked, report.writers_checked, report.checkpoints_verified
    );
    for p in &report.problems {
        println!(
            "PROBLEM {} seq {}: {}: {}",
            p.writer_id, p.seq, p.kind, p.detail
        );
    }
    if report.intact() {
        println!("audit log intact");
        Ok(())
    } else {
        println!(
            "audit log TAMPERED or incomplete: {} problems",
            report.problems.len()
        );
        std::process::exit(1);
    }
}
