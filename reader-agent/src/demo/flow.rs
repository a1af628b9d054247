//! The demo's walk through the desk: the private pcscd, the backend in process, the timed
//! genuine checks and the refusals, written for a person to read.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use bhyt_proto::v1::PresenceStatus;
use cccd_authenticity::test_pki::TestIssuer;
use emrtd::stats::minimum_apdus;

use super::backend::{BackendSetupError, InProcessBackend};
use super::cards::{self, CardKind};
use super::wait_until_empty;
use crate::desk::{self, FileConfig, Lang, Outcome, Timings};
use crate::face;
use crate::pcscd::{PcscdError, PrivatePcscd, exclusive};
use crate::read::{ChipRead, DeskKey};
use crate::vpcd::{Behaviour, BridgeError};

/// The demo reader's name as pcscd lists it.
const READER_NAME: &str = "BHYT Demo PCD";
/// Longest wait for pcscd, the card, and one check.
const WAIT: Duration = Duration::from_secs(20);
/// How long the desk waits before the card is put on the reader (it is waiting when it comes).
const BEFORE_INSERTION: Duration = Duration::from_millis(300);

/// What the demo runs.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// Genuine-card checks to time (the figures are their medians).
    pub runs: usize,
    /// The desk's language.
    pub lang: Lang,
}

/// Why the demo stopped.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// pcscd or the vpcd driver is missing, or the private pcscd did not start.
    #[error("{0}")]
    Pcscd(#[from] PcscdError),
    /// The in-process backend did not start or answer.
    #[error("{0}")]
    Backend(#[from] BackendSetupError),
    /// The virtual card could not be put on the reader.
    #[error("the virtual card: {0}")]
    Card(#[from] BridgeError),
    /// The runtime, or writing the demo's output.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A check did not end as a desk's check of that card must.
    #[error("{0}")]
    Unexpected(String),
}

/// One genuine check's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    /// From the card's insertion to the desk's answer.
    pub insertion_to_answer: Duration,
    /// From the insertion until the desk's watcher saw the card.
    pub card_seen: Duration,
    pub challenge: Duration,
    /// Connecting to the card over PC/SC (the read's time outside its own steps).
    pub connect: Duration,
    /// EF.CardAccess, PACE, the application.
    pub open: Duration,
    pub files: Duration,
    pub active_authentication: Duration,
    pub chip_authentication: Duration,
    pub passive_authentication: Duration,
    pub backend_check: Duration,
    pub apdus: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The protocol minimum for the files read, with extended-length reads.
    pub minimum_apdus: u32,
}

impl Measured {
    fn of(
        read: &ChipRead,
        timings: &Timings,
        inserted_after: Duration,
        answered: Duration,
    ) -> Self {
        let steps = read.timings;
        let total = read.stats.total();
        let mut sizes: Vec<usize> = vec![read.sod.len()];
        sizes.extend(read.data_groups.values().map(Vec::len));
        Measured {
            insertion_to_answer: answered,
            card_seen: timings.wait_for_card.saturating_sub(inserted_after),
            challenge: timings.challenge,
            connect: timings.read.saturating_sub(
                steps.open
                    + steps.files
                    + steps.active_authentication
                    + steps.chip_authentication
                    + steps.passive_authentication,
            ),
            open: steps.open,
            files: steps.files,
            active_authentication: steps.active_authentication,
            chip_authentication: steps.chip_authentication,
            passive_authentication: steps.passive_authentication,
            backend_check: timings.check,
            apdus: total.apdus,
            bytes_sent: total.bytes_sent,
            bytes_received: total.bytes_received,
            minimum_apdus: minimum_apdus(&sizes, None),
        }
    }
}

/// What the demo showed.
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    /// Each genuine check, in order.
    pub runs: Vec<Measured>,
    /// Whether every genuine card was chip-verified and its audit record says so.
    pub genuine_verified: bool,
    /// Whether the clone and the altered card were both answered without "chip verified".
    pub bad_cards_refused: bool,
    /// The photo read after a genuine check's answer (`display_face`), when it was shown.
    pub face: Option<FaceCost>,
}

/// What the photo costs on top of the check: it is read after the answer, so it delays no
/// answer, only the photo's own display.
#[derive(Debug, Clone, Copy)]
pub struct FaceCost {
    /// The photo's bytes.
    pub bytes: usize,
    /// READ BINARY commands of DG2.
    pub apdus: u32,
    /// Bytes received for them (secure messaging included).
    pub bytes_received: u64,
    /// From the request for DG2 to the checked image.
    pub elapsed: Duration,
}

/// Runs the demo, writing what the desk shows and the figures to `out`. Takes the private-pcscd
/// lock (waits while tests use theirs).
pub fn run(options: DemoOptions, out: &mut dyn Write) -> Result<DemoSummary, DemoError> {
    let _lock = exclusive()?;
    let (pcscd, port) = PrivatePcscd::start(READER_NAME)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(flow(options, port, out));
    if result.is_err() {
        let _ = writeln!(out, "pcscd log:\n{}", pcscd.log());
    }
    result
}

async fn flow(
    options: DemoOptions,
    port: u16,
    out: &mut dyn Write,
) -> Result<DemoSummary, DemoError> {
    let reader = format!("{READER_NAME} 00 00");
    let issuer = TestIssuer::vietnam_like();
    writeln!(
        out,
        "Private pcscd with the vpcd reader \"{reader}\"; backend in process (mutual TLS, \
         synthetic registry, test CSCA trusted)."
    )?;
    let backend = InProcessBackend::start(&issuer).await?;
    let person = backend
        .people
        .first()
        .cloned()
        .ok_or_else(|| DemoError::Unexpected("no covered person in the registry".into()))?;
    let config = backend.agent_config(Some(&reader), WAIT);
    let id = person.citizen_id.clone().unwrap_or_default();
    let key = DeskKey::from_id(&id).map_err(|e| DemoError::Unexpected(e.to_string()))?;
    let mut summary = DemoSummary {
        genuine_verified: true,
        ..DemoSummary::default()
    };

    for run in 1..=options.runs.max(1) {
        let (outcome, measured) = timed_check(&config, &key, port, &issuer, &person).await?;
        let Outcome::Answered { read, answer } = &outcome else {
            writeln!(out, "{}", desk::render(&outcome, options.lang))?;
            return Err(DemoError::Unexpected(format!(
                "the genuine card was not answered: {outcome:?}"
            )));
        };
        let record = backend.audit_record(&answer.audit_record_id).await?;
        let recorded_verified = record.is_some_and(|r| r.presence() == PresenceStatus::Verified);
        summary.genuine_verified &= desk::chip_verified(read, answer) && recorded_verified;
        if run == 1 {
            writeln!(
                out,
                "\n== Genuine card: the desk's answer ==\n{}",
                desk::render(&outcome, options.lang)
            )?;
            writeln!(
                out,
                "Audit record {}: presence {}",
                answer.audit_record_id,
                if recorded_verified {
                    "VERIFIED (chip-verified)"
                } else {
                    "NOT verified"
                }
            )?;
            writeln!(out, "\nAPDUs of the read, by phase:\n{}", read.stats)?;
        }
        writeln!(
            out,
            "run {run}: insertion to answer {}, {} APDUs",
            ms(measured.insertion_to_answer),
            measured.apdus
        )?;
        summary.runs.push(measured);
    }
    print_figures(&summary.runs, out)?;
    summary.face = face_check(&config, &key, port, &issuer, &person, options.lang, out).await?;

    summary.bad_cards_refused = true;
    for (kind, title) in [
        (
            CardKind::Clone,
            "A clone (the genuine files on another chip)",
        ),
        (
            CardKind::TamperedDg13,
            "Altered data (DG13 rewritten after signing)",
        ),
    ] {
        let card = tokio::task::block_in_place(|| {
            cards::insert(port, &issuer, &person, kind, Behaviour::default(), WAIT)
        })?;
        let (outcome, _) = bounded(desk::check(&config, &key)).await?;
        drop(card);
        tokio::task::block_in_place(|| wait_until_empty(&reader, WAIT));
        writeln!(
            out,
            "\n== {title}: the desk's answer ==\n{}",
            desk::render(&outcome, options.lang)
        )?;
        let refused = match &outcome {
            Outcome::Answered { read, answer } => {
                let record = backend.audit_record(&answer.audit_record_id).await?;
                let recorded_failed =
                    record.is_some_and(|r| r.presence() == PresenceStatus::Failed);
                writeln!(
                    out,
                    "Audit record {}: presence {}",
                    answer.audit_record_id,
                    if recorded_failed {
                        "FAILED"
                    } else {
                        "not failed"
                    }
                )?;
                !desk::chip_verified(read, answer) && recorded_failed
            }
            _ => false,
        };
        summary.bad_cards_refused &= refused;
    }
    Ok(summary)
}

/// One check of the genuine card, the card put on the reader once the desk is waiting.
async fn timed_check(
    config: &FileConfig,
    key: &DeskKey,
    port: u16,
    issuer: &TestIssuer,
    person: &bhyt_verify::coverage::CardRecord,
) -> Result<(Outcome, Measured), DemoError> {
    let started = Instant::now();
    let check = async {
        let result = bounded(desk::check(config, key)).await;
        (result, Instant::now())
    };
    let insertion = async {
        tokio::time::sleep(BEFORE_INSERTION).await;
        let at = Instant::now();
        let card = tokio::task::block_in_place(|| {
            cards::insert(
                port,
                issuer,
                person,
                CardKind::Genuine,
                Behaviour::default(),
                WAIT,
            )
        });
        (card, at)
    };
    let ((result, answered_at), (card, inserted_at)) = tokio::join!(check, insertion);
    let card = card?;
    let (outcome, timings) = result?;
    drop(card);
    tokio::task::block_in_place(|| {
        wait_until_empty(config.reader.as_deref().unwrap_or_default(), WAIT)
    });
    let measured = match &outcome {
        Outcome::Answered { read, .. } => Measured::of(
            read,
            &timings,
            inserted_at.saturating_duration_since(started),
            answered_at.saturating_duration_since(inserted_at),
        ),
        _ => Measured::default(),
    };
    Ok((outcome, measured))
}

/// A genuine check with `display_face`: the answer, then the photo over the same session, and
/// what the photo cost.
async fn face_check(
    config: &FileConfig,
    key: &DeskKey,
    port: u16,
    issuer: &TestIssuer,
    person: &bhyt_verify::coverage::CardRecord,
    lang: Lang,
    out: &mut dyn Write,
) -> Result<Option<FaceCost>, DemoError> {
    let config = FileConfig {
        display_face: true,
        ..config.clone()
    };
    let card = tokio::task::block_in_place(|| {
        cards::insert(
            port,
            issuer,
            person,
            CardKind::Genuine,
            Behaviour::default(),
            WAIT,
        )
    })?;
    let checked = tokio::time::timeout(WAIT * 2, async {
        let (outcome, _, open) = desk::check_keeping(&config, key, true).await;
        let face = match open {
            Some(open) => Some(desk::read_face(open).await),
            None => None,
        };
        (outcome, face)
    })
    .await
    .map_err(|_| DemoError::Unexpected(format!("a check took over {:?}", WAIT * 2)))?;
    drop(card);
    tokio::task::block_in_place(|| {
        wait_until_empty(config.reader.as_deref().unwrap_or_default(), WAIT)
    });
    let (outcome, face) = checked;
    let (Outcome::Answered { read, .. }, Some(face)) = (&outcome, face) else {
        return Err(DemoError::Unexpected(format!(
            "the genuine card with display_face was not answered: {outcome:?}"
        )));
    };
    writeln!(
        out,
        "\n== The photo (display_face = true), read after the answer ==\n{}",
        face::render(&face, lang)
    )?;
    let Ok(photo) = &face.result else {
        return Ok(None);
    };
    let cost = FaceCost {
        bytes: photo.image.len(),
        apdus: face.apdus.apdus,
        bytes_received: face.apdus.bytes_received,
        elapsed: face.elapsed,
    };
    writeln!(
        out,
        "Photo: {} B in {} APDU(s) ({} B received), {} after the answer; the check itself took \
         {} APDUs and the answer did not wait for the photo",
        cost.bytes,
        cost.apdus,
        cost.bytes_received,
        ms(cost.elapsed),
        read.stats.total().apdus
    )?;
    Ok(Some(cost))
}

/// A check with the demo's bound.
async fn bounded(
    check: impl std::future::Future<Output = (Outcome, Timings)>,
) -> Result<(Outcome, Timings), DemoError> {
    tokio::time::timeout(WAIT * 2, check)
        .await
        .map_err(|_| DemoError::Unexpected(format!("a check took over {:?}", WAIT * 2)))
}

/// Picks one phase's time out of a run's figures.
type PhaseOf = fn(&Measured) -> Duration;

/// The median of each phase over the runs, and the APDU counts.
fn print_figures(runs: &[Measured], out: &mut dyn Write) -> io::Result<()> {
    let median = |f: PhaseOf| {
        let mut values: Vec<Duration> = runs.iter().map(f).collect();
        values.sort();
        values.get(values.len() / 2).copied().unwrap_or_default()
    };
    let rows: [(&str, PhaseOf); 10] = [
        ("card seen after insertion", |m| m.card_seen),
        ("presence challenge", |m| m.challenge),
        ("PC/SC connect", |m| m.connect),
        ("open (PACE-CAN)", |m| m.open),
        ("read files", |m| m.files),
        ("active authentication", |m| m.active_authentication),
        ("chip authentication", |m| m.chip_authentication),
        ("passive authentication", |m| m.passive_authentication),
        ("backend check", |m| m.backend_check),
        ("insertion to answer", |m| m.insertion_to_answer),
    ];
    writeln!(
        out,
        "\nTime per phase, median of {} run(s) (this machine, virtual card through pcscd+vpcd):",
        runs.len()
    )?;
    for (name, f) in rows {
        writeln!(out, "  {name:<28} {:>10}", ms(median(f)))?;
    }
    let mut apdus: Vec<u32> = runs.iter().map(|m| m.apdus).collect();
    apdus.sort_unstable();
    if let (Some(&median_apdus), Some(last)) = (apdus.get(apdus.len() / 2), runs.last()) {
        writeln!(
            out,
            "APDUs: {median_apdus} (median), {} B sent, {} B received; protocol minimum {} \
             (select, PACE 5, one extended READ BINARY per file, INTERNAL AUTHENTICATE)",
            last.bytes_sent, last.bytes_received, last.minimum_apdus
        )?;
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
