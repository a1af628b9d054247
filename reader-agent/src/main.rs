//! reader-agent: the program at the reception desk.
//!
//! `reader-agent check --id 001099012345 --config agent.toml` (or `--qr TEXT`): waits for the
//! card on the reader, reads and proves it, asks the backend, prints the answer for the desk.
//! Exit status: 0 answered, 1 the chip could not be read or the backend refused, 2 usage or
//! configuration, 3 backend unreachable (use the official fallback).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use reader_agent::desk::{self, FileConfig, Lang, Outcome};
use reader_agent::read::DeskKey;

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
}

#[derive(Clone, Copy, ValueEnum)]
enum LangArg {
    Vi,
    En,
}

fn main() -> ExitCode {
    let Cli {
        command:
            Command::Check {
                id,
                qr,
                config,
                lang,
            },
    } = Cli::parse();
    let lang = match lang {
        LangArg::Vi => Lang::Vi,
        LangArg::En => Lang::En,
    };
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
    let config = match FileConfig::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let (outcome, timings) = runtime.block_on(desk::check(&config, &key));
    print!("{}", desk::render(&outcome, lang));
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
