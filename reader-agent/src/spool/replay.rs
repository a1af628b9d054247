//! Sending the kept checks once the backend is back: oldest first, each with its own request id,
//! so the backend's idempotency makes a repeat harmless (the same request id and payload get
//! the first answer back, with no second audit record).
//!
//! An entry is removed only after its answer arrived. A crash between the answer and the
//! removal sends it again at the next round and reports it again, with the same answer: the
//! request id tells the HIS it is the same check. A definitive refusal moves the entry to
//! `refused/`. An unreachable backend, or one asking to retry later (overloaded, rate
//! limited), ends the round; `replay_loop` tries again with back-off.
//!
//! A kept request with a presence proof (the backend went away during the call) is sent as it
//! was first: should the backend have recorded it, that is how its answer comes back. If it
//! did not, the challenge inside is likely stale by now (two minutes, single use) and the
//! backend refuses it with FAILED_PRECONDITION; the proof is then dropped (the entry rewritten
//! first) and the check sent again without it, under the same request id (a refusal binds no
//! request id). Its answer then carries no presence verdict: not chip-verified by the backend.

use std::future::Future;
use std::time::{Duration, SystemTime};

use bhyt_proto::v1::CheckCoverageResponse;
use tokio::sync::mpsc;
use tonic::Code;

use super::{Entry, Spool, SpoolError};
use crate::backend::{Backend, BackendError};

/// What happened to one kept check in a round.
#[non_exhaustive]
#[derive(Debug)]
pub enum Replayed {
    /// The backend answered; the entry is gone.
    Delivered {
        request_id: String,
        spooled_at: SystemTime,
        answer: Box<CheckCoverageResponse>,
    },
    /// The backend refused it for good; the entry is in `refused/`.
    Refused {
        request_id: String,
        spooled_at: SystemTime,
        code: Code,
        message: String,
    },
    /// Its file does not open; kept aside as `.bad`, not sent.
    Unreadable { file: String, reason: String },
}

/// Why a round ended before the spool was empty.
#[non_exhaustive]
#[derive(Debug)]
pub enum Stop {
    /// The backend cannot be asked now, or asked to retry later.
    Backend(BackendError),
    /// Another replayer holds the spool.
    Busy,
    /// The spool's directory could not be read or written.
    Spool(SpoolError),
}

/// One round's reports, and why it stopped early (`None`: every entry was dealt with).
#[derive(Debug, Default)]
pub struct Round {
    pub replayed: Vec<Replayed>,
    pub stopped: Option<Stop>,
}

/// Sends every waiting entry once, oldest first, until the backend stops answering.
pub async fn replay_once(spool: &Spool, backend: &mut Backend) -> Round {
    let mut round = Round::default();
    if let Err(stop) = replay_into(spool, backend, &mut round).await {
        round.stopped = Some(stop);
    }
    round
}

async fn replay_into(spool: &Spool, backend: &mut Backend, round: &mut Round) -> Result<(), Stop> {
    let Some(_lock) = blocking(spool, |s| s.lock_replay()).await? else {
        return Err(Stop::Busy);
    };
    for name in blocking(spool, |s| s.pending()).await? {
        let mut entry = match blocking(spool, move |s| s.load(&name)).await {
            Ok(entry) => entry,
            Err(Stop::Spool(SpoolError::Unreadable { file, reason })) => {
                round.replayed.push(Replayed::Unreadable { file, reason });
                continue;
            }
            Err(stop) => return Err(stop),
        };
        loop {
            match backend.send(entry.request.clone()).await {
                Ok(answer) => {
                    let (request_id, spooled_at) =
                        (entry.request.request_id.clone(), entry.spooled_at);
                    blocking(spool, move |s| s.remove(&entry)).await?;
                    round.replayed.push(Replayed::Delivered {
                        request_id,
                        spooled_at,
                        answer: Box::new(answer),
                    });
                    break;
                }
                Err(BackendError::Refused {
                    code: Code::FailedPrecondition,
                    ..
                }) if entry.request.presence_proof.is_some() => {
                    entry.request.presence_proof = None;
                    entry = rewrite(spool, entry).await?;
                }
                Err(BackendError::Refused { code, message }) if !retry_later(code) => {
                    let entry = blocking(spool, move |s| s.refuse(entry, code, message)).await?;
                    round.replayed.push(Replayed::Refused {
                        request_id: entry.request.request_id.clone(),
                        spooled_at: entry.spooled_at,
                        code,
                        message: entry.refusal.map(|(_, m)| m).unwrap_or_default(),
                    });
                    break;
                }
                Err(error) => {
                    entry.attempts = entry.attempts.saturating_add(1);
                    rewrite(spool, entry).await?;
                    return Err(Stop::Backend(error));
                }
            }
        }
    }
    Ok(())
}

/// Codes that say "not now" rather than "never": the same request may succeed later.
fn retry_later(code: Code) -> bool {
    matches!(
        code,
        Code::ResourceExhausted
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Internal
            | Code::Unknown
            | Code::Unavailable
    )
}

async fn rewrite(spool: &Spool, entry: Entry) -> Result<Entry, Stop> {
    blocking(spool, move |s| s.update(&entry).map(|()| entry)).await
}

/// Runs spool file work off the async workers (each step fsyncs).
async fn blocking<T: Send + 'static>(
    spool: &Spool,
    work: impl FnOnce(&Spool) -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, Stop> {
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || work(&spool))
        .await
        .unwrap_or_else(|e| {
            Err(SpoolError::Io {
                path: "(spool task)".into(),
                source: std::io::Error::other(e.to_string()),
            })
        })
        .map_err(Stop::Spool)
}

/// How often `replay_loop` looks.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Between rounds while all goes well (new entries are picked up this often).
    pub idle: Duration,
    /// The wait after the first failed round; doubled after each further one.
    pub first_retry: Duration,
    /// The longest wait between failed rounds.
    pub max_retry: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            idle: Duration::from_secs(30),
            first_retry: Duration::from_secs(5),
            max_retry: Duration::from_secs(300),
        }
    }
}

/// Replays rounds until `shutdown`, reporting each delivered, refused or unreadable entry on
/// `tx`. Stops too when `tx`'s receiver is gone. Dropping a round mid-way (shutdown) is safe:
/// whatever was not removed is sent again next time.
pub async fn replay_loop(
    spool: Spool,
    mut backend: Backend,
    pacing: Pacing,
    tx: mpsc::Sender<Replayed>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut wait = Duration::ZERO;
    let mut retry = pacing.first_retry;
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(wait) => {}
        }
        let round = tokio::select! {
            () = &mut shutdown => return,
            round = replay_once(&spool, &mut backend) => round,
        };
        for replayed in round.replayed {
            if tx.send(replayed).await.is_err() {
                return;
            }
        }
        wait = match round.stopped {
            None => {
                retry = pacing.first_retry;
                pacing.idle
            }
            Some(_) => {
                let now = retry;
                retry = (retry * 2).min(pacing.max_retry);
                now
            }
        };
    }
}
