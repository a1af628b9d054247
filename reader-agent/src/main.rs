//! reader-agent: the program at the reception desk.
//!
//! `reader-agent check --id 001099012345 --config agent.toml` (or `--qr TEXT`): waits for the
//! card on the reader, reads and proves it, asks the backend, prints the answer for the desk.
//! Exit status: 0 answered, 1 the chip could not be read or the backend refused, 2 usage or
//! configuration, 3 backend unreachable (use the official fallback; the check is kept in the
//! spool when one is configured).
//!
//! `reader-agent spool send --config agent.toml` sends the kept checks now; `spool list` counts
//! them.
//!
//! `reader-agent demo` (feature `demo`, Linux with pcscd and vsmartcard-vpcd): the whole flow on
//! virtual cards through a private pcscd, with timings and APDU counts.
//!
//! `reader-agent run --config agent.toml`: the desk program, checking each key typed or scanned
//! on standard input until Ctrl-C, SIGTERM or the end of input; the HIS port when configured.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use reader_agent::backend::Backend;
use reader_agent::desk::{self, FileConfig, Lang, Outcome};
use reader_agent::read::DeskKey;
use reader_agent::spool::{Replayed, Spool, replay_once, text};
use reader_agent::station::Station;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "reader-agent",
    about = "CCCD chip reader and BHYT coverage check for the desk"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One check: the card on the reader, the backend's answer.
    Check {
        /// The citizen ID typed at the desk (12 digits).
        #[arg(long, conflicts_with = "qr", required_unless_present = "qr")]
        id: Option<String>,
        /// The text the QR scanner typed.
        #[arg(long)]
        qr: Option<String>,
        /// The agent's configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The desk's language.
        #[arg(long, value_enum, default_value = "vi")]
        lang: LangArg,
    },
    /// The desk program: a check for each key on standard input, events for the HIS.
    Run {
        /// The agent's configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The desk's language.
        #[arg(long, value_enum, default_value = "vi")]
        lang: LangArg,
        /// No one types at this PC: keys come only from the HIS (`POST /v1/checks`), and the
        /// program runs until stopped (as under systemd).
        #[arg(long)]
        no_console: bool,
        /// Started by the Windows Service Control Manager (implies --no-console).
        #[cfg(windows)]
        #[arg(long, hide = true)]
        service: bool,
    },
    /// The offline spool: checks kept while the backend was unreachable.
    Spool {
        #[command(subcommand)]
        action: SpoolAction,
    },
    /// The whole desk flow on virtual cards through a private pcscd and vpcd, against a backend
    /// in this process: answers, time per phase, APDU counts.
    Demo {
        /// Genuine-card checks to time (medians are reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The desk's language.
        #[arg(long, value_enum, default_value = "vi")]
        lang: LangArg,
    },
    /// Registers or removes the Windows service (in an administrator's shell).
    #[cfg(windows)]
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
}

#[cfg(windows)]
#[derive(Subcommand)]
enum ServiceAction {
    /// Registers the service: started automatically, it runs `run --service --config FILE`.
    Install {
        /// The agent's configuration (TOML), an absolute path.
        #[arg(long)]
        config: PathBuf,
    },
    /// Stops and removes the service.
    Uninstall,
}

/// The offline spool's commands.
#[derive(Subcommand)]
enum SpoolAction {
    /// Sends the kept checks now, oldest first; prints what became of each.
    Send {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "vi")]
        lang: LangArg,
    },
    /// Counts the kept, refused and unreadable checks (no personal data).
    List {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "vi")]
        lang: LangArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LangArg {
    Vi,
    En,
}

impl From<LangArg> for Lang {
    fn from(lang: LangArg) -> Self {
        match lang {
            LangArg::Vi => Lang::Vi,
            LangArg::En => Lang::En,
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check {
            id,
            qr,
            config,
            lang,
        } => check(id, qr, &config, lang.into()),
        Command::Demo { runs, lang } => demo(runs, lang.into()),
        #[cfg(windows)]
        Command::Service { action } => service(action),
        Command::Spool { action } => spool(action),
        #[cfg(windows)]
        Command::Run {
            config,
            lang,
            service: true,
            ..
        } => run_service(config, lang.into()),
        Command::Run {
            config,
            lang,
            no_console,
            ..
        } => run(&config, lang.into(), no_console),
    }
}

#[cfg(windows)]
fn service(action: ServiceAction) -> ExitCode {
    use reader_agent::service;
    let done = match action {
        ServiceAction::Install { config } => {
            let args = [
                "run".as_ref(),
                "--service".as_ref(),
                "--config".as_ref(),
                config.as_os_str(),
            ];
            service::install(&args)
        }
        ServiceAction::Uninstall => service::uninstall(),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(all(feature = "demo", unix))]
fn demo(runs: usize, lang: Lang) -> ExitCode {
    let options = reader_agent::demo::DemoOptions { runs, lang };
    let mut out = std::io::stdout();
    match reader_agent::demo::run(options, &mut out) {
        Ok(summary)
            if summary.genuine_verified && summary.bad_cards_refused && summary.face.is_some() =>
        {
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("demo: a card was not judged as it should be (see above)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(not(all(feature = "demo", unix)))]
fn demo(_runs: usize, _lang: Lang) -> ExitCode {
    eprintln!(
        "demo: this build has no demo mode; on Linux with pcscd and vsmartcard-vpcd installed run \
         `cargo run --release -p reader-agent --features demo -- demo`"
    );
    ExitCode::from(2)
}

fn check(id: Option<String>, qr: Option<String>, config: &Path, lang: Lang) -> ExitCode {
    let key = match (id, qr) {
        (Some(id), _) => DeskKey::from_id(&id),
        // clap requires one of the two; an empty QR text is refused by the parser.
        (None, qr) => DeskKey::from_qr(&qr.unwrap_or_default()),
    };
    let key = match key {
        Ok(key) => key,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let config = match FileConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let spool_config = match config.spool() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    let (outcome, timings, open) =
        runtime.block_on(desk::check_keeping(&config, &key, config.display_face));
    print!("{}", desk::render(&outcome, lang));
    if let Outcome::Unreachable { pending, .. } = &outcome {
        let kept = spool_config.map(|c| Spool::open(&c).and_then(|s| s.put(pending)));
        print!("{}", text::kept(kept.as_ref(), &pending.request_id, lang));
    }
    // The face after the answer, over the same card session; a line, never the image.
    if let Some(open) = open {
        let face = runtime.block_on(desk::read_face(open));
        println!("{}", reader_agent::face::render(&face, lang));
    }
    eprintln!(
        "timings: card {:?}, challenge {:?}, read {:?}, check {:?}",
        timings.wait_for_card, timings.challenge, timings.read, timings.check
    );
    ExitCode::from(match outcome {
        Outcome::Answered { .. } => 0,
        Outcome::Setup(_) => 2,
        Outcome::Unreachable { .. } => 3,
        _ => 1,
    })
}

/// `spool send`: 0 every kept check dealt with, 1 some refused or unreadable, 2 configuration,
/// 3 the backend did not take them all (the rest waits). `spool list`: 0, or 2.
fn spool(action: SpoolAction) -> ExitCode {
    let (SpoolAction::Send { config, lang } | SpoolAction::List { config, lang }) = &action;
    let lang = Lang::from(*lang);
    let opened = FileConfig::load(config).and_then(|file| {
        let spool = file
            .spool()?
            .ok_or_else(|| format!("{}: no spool_dir configured", config.display()))?;
        let spool = Spool::open(&spool).map_err(|e| e.to_string())?;
        Ok((file, spool))
    });
    let (file, spool) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let SpoolAction::List { .. } = action {
        return match spool.counts() {
            Ok(counts) => {
                print!("{}", text::counts(&counts, lang));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    let round = runtime.block_on(async {
        let mut backend = Backend::new(file.backend()).map_err(|e| e.to_string())?;
        Ok::<_, String>(replay_once(&spool, &mut backend).await)
    });
    let round = match round {
        Ok(round) => round,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", text::round(&round, lang));
    let setback = round
        .replayed
        .iter()
        .any(|r| !matches!(r, Replayed::Delivered { .. }));
    ExitCode::from(match (&round.stopped, setback) {
        (Some(_), _) => 3,
        (None, true) => 1,
        (None, false) => 0,
    })
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .inspect_err(|e| eprintln!("cannot start the runtime: {e}"))
        .ok()
}

/// `reader-agent run`: exit status 0 after a clean stop, 2 when it cannot start.
fn run(config: &Path, lang: Lang, no_console: bool) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = match FileConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    let result = runtime.block_on(async {
        let station = Station::start(config, lang).await?;
        if let Some(addr) = station.his_addr() {
            tracing::info!(%addr, "HIS port listening");
        }
        if no_console {
            // An input that never ends: only a signal stops the desk.
            let (_open, input) = tokio::io::duplex(1);
            let input = tokio::io::BufReader::new(input);
            return station
                .run(input, std::io::stdout(), shutdown_signal())
                .await;
        }
        let input = tokio::io::BufReader::new(tokio::io::stdin());
        station
            .run(input, std::io::stdout(), shutdown_signal())
            .await
    });
    // Standard input is read on a blocking thread that only returns with a line: do not wait
    // for it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// `reader-agent run --service`: the desk under the Service Control Manager, keys from the HIS
/// only, stopped by the SCM.
#[cfg(windows)]
fn run_service(config: PathBuf, lang: Lang) -> ExitCode {
    let work: reader_agent::service::Work = Box::new(move |shutdown| {
        let config = FileConfig::load(&config)?;
        let runtime = runtime().ok_or("cannot start the runtime")?;
        runtime.block_on(async {
            let station = Station::start(config, lang)
                .await
                .map_err(|e| e.to_string())?;
            let (_open, input) = tokio::io::duplex(1);
            station
                .run(tokio::io::BufReader::new(input), std::io::sink(), shutdown)
                .await
                .map_err(|e| e.to_string())
        })
    });
    match reader_agent::service::run(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// Ctrl-C, or SIGTERM from the service manager.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
