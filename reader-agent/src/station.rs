//! The desk station: `reader-agent run`, the long-running program at the desk.
//!
//! Keys come as lines on its input (the QR scanner, a typed ID, an OCR device's MRZ). For each
//! key it waits for a card (bounded), reads and proves it, asks the backend, prints the answer and
//! publishes events; a bad line is answered and the loop goes on. A thread watches PC/SC for the
//! whole run, publishing readers and cards coming and going, and tells the loop which readers
//! hold a card. The HIS port, when configured, serves the events.
//!
//! Stopping (the caller's shutdown future, or the end of input): a wait for a card ends at once;
//! a read or backend call in progress gets [`GRACE`] to finish, then is abandoned; then the HIS
//! port and the PC/SC thread stop, each bounded.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cccd_authenticity::trust::TrustStore;
use tokio::io::AsyncBufRead;
use tokio::sync::{mpsc, watch};

use crate::backend::{Backend, BackendError};
use crate::card::{CardEvent, Watcher, WatcherConfig};
use crate::desk::{self, FileConfig, Lang, Outcome, Timings};
use crate::events::{self, EventBody, EventLog};
use crate::face;
use crate::his::{HisError, HisPort};
use crate::input::{KeyInput, Line, LineReader};
use crate::read::{self, DeskKey};
use crate::spool::{self, Pacing, Replayed, Spool};

/// How long a read or backend call in progress may go on once the agent is asked to stop: the
/// backend's own timeout (10 s) and a card read fit in it.
pub const GRACE: Duration = Duration::from_secs(15);
/// How long the PC/SC thread and the HIS port get to stop.
const STOP_WAIT: Duration = Duration::from_secs(8);

/// Why the station cannot start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("trust_dir: {0}")]
    Trust(String),
    #[error(transparent)]
    Backend(BackendError),
    #[error(transparent)]
    His(#[from] HisError),
    #[error("cannot start the PC/SC watcher: {0}")]
    Watcher(io::Error),
    #[error("spool: {0}")]
    Spool(String),
}

/// Keys the HIS may have waiting for the desk; one more is refused (503).
const HIS_KEYS_WAITING: usize = 4;

/// The station, configured and bound, not yet running.
pub struct Station {
    config: FileConfig,
    lang: Lang,
    trust: Arc<TrustStore>,
    backend: Backend,
    events: EventLog,
    his: Option<HisPort>,
    /// Where checks wait while the backend is unreachable; `None`: not kept.
    spool: Option<Spool>,
    replay_pacing: Pacing,
}

impl Station {
    /// Loads the trust directory, prepares the backend client (it connects at the first call)
    /// and binds the HIS port when configured. Must run inside a Tokio runtime.
    pub async fn start(config: FileConfig, lang: Lang) -> Result<Station, StartError> {
        let trust = read::load_trust_dir(&config.trust_dir)
            .map_err(|e| StartError::Trust(e.to_string()))?;
        let backend = Backend::new(config.backend()).map_err(StartError::Backend)?;
        let spool = match config.spool().map_err(StartError::Spool)? {
            Some(spool) => Some(Spool::open(&spool).map_err(|e| StartError::Spool(e.to_string()))?),
            None => None,
        };
        let (his, kept) = match &config.his {
            Some(his) => (Some(HisPort::bind(his).await?), his.events_kept),
            None => (None, events::DEFAULT_CAPACITY),
        };
        Ok(Station {
            config,
            lang,
            trust: Arc::new(trust),
            backend,
            events: EventLog::new(kept),
            his,
            spool,
            replay_pacing: Pacing::default(),
        })
    }

    /// How often kept checks are sent (tests shorten it).
    pub fn with_replay_pacing(mut self, pacing: Pacing) -> Station {
        self.replay_pacing = pacing;
        self
    }

    /// The HIS port's address, when configured.
    pub fn his_addr(&self) -> Option<SocketAddr> {
        self.his.as_ref().and_then(|p| p.local_addr().ok())
    }

    /// The station's events (shared).
    pub fn events(&self) -> EventLog {
        self.events.clone()
    }

    /// Runs until `shutdown` resolves or `input` ends. The desk's text goes to `output`.
    pub async fn run<R, W>(
        mut self,
        input: R,
        mut output: W,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError>
    where
        R: AsyncBufRead + Unpin + Send,
        W: Write + Send,
    {
        let (stop_tx, mut stop) = watch::channel(false);
        let stop_on_signal = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        // The HIS port stops after the loop, so its clients get the last events.
        let (his_stop, his_stopped) = watch::channel(false);
        // Keys the HIS submits join those typed at the desk.
        let (his_keys_tx, mut his_keys) = mpsc::channel::<String>(HIS_KEYS_WAITING);
        let his = self.his.take().map(|port| {
            let port = port.with_keys(his_keys_tx);
            tokio::spawn(port.serve(self.events.clone(), his_stopped))
        });
        let cards = CardWatch::start(self.events.clone()).map_err(StartError::Watcher)?;
        // The replay stops with the desk, whether a signal or the end of input ended it.
        let (replay_stop, replay_stopped) = watch::channel(false);
        let replay = match &self.spool {
            Some(spool) => Some(self.start_replay(spool.clone(), replay_stopped)?),
            None => None,
        };
        let mut present = cards.present.clone();

        say(
            &mut output,
            self.t(
                "Sẵn sàng. Quét mã QR trên thẻ CCCD hoặc nhập số CCCD 12 chữ số, rồi Enter.",
                "Ready. Scan the CCCD's QR code or type the 12-digit ID, then Enter.",
            ),
        );
        let mut lines = LineReader::new(input);
        let mut keys = KeyInput::new();
        let mut checks = 0u64;
        'desk: loop {
            // A key the HIS submits may be three MRZ lines: each goes in as the desk's would.
            let received: Vec<Line> = tokio::select! {
                biased;
                () = stopped(&mut stop) => break,
                Some(key) = his_keys.recv() => {
                    key.lines().map(|line| Line::Text(line.to_owned())).collect()
                }
                line = lines.next() => match line {
                    Ok(Some(line)) => vec![line],
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "the desk's input failed; stopping");
                        break;
                    }
                },
            };
            for line in received {
                for key in keys.push(line) {
                    match key {
                        Err(error) => {
                            say(&mut output, &error.text(self.lang));
                            self.events.publish(EventBody::InputRejected {
                                reason: error.code().into(),
                                message: events::Text {
                                    vi: error.text(Lang::Vi),
                                    en: error.text(Lang::En),
                                },
                            });
                        }
                        Ok(key) => {
                            checks += 1;
                            let go_on = self
                                .check(checks, &key, &mut present, &mut stop, &mut output)
                                .await;
                            if !go_on {
                                break 'desk;
                            }
                        }
                    }
                }
            }
        }

        say(&mut output, self.t("Đang dừng.", "Stopping."));
        stop_on_signal.abort();
        // The replay before the HIS port, so its last events still reach the HIS. Dropping a
        // round mid-way is safe: what was not removed is sent next time.
        let _ = replay_stop.send(true);
        if let Some(mut replay) = replay
            && tokio::time::timeout(STOP_WAIT, &mut replay).await.is_err()
        {
            replay.abort();
        }
        let _ = his_stop.send(true);
        if let Some(his) = his {
            let _ = tokio::time::timeout(STOP_WAIT, his).await;
        }
        cards.stop().await;
        Ok(())
    }

    /// Sends the kept checks in the background while the desk works (its own backend client,
    /// so a slow replay never holds a check at the desk), and publishes what becomes of each.
    fn start_replay(
        &self,
        spool: Spool,
        mut stop: watch::Receiver<bool>,
    ) -> Result<tokio::task::JoinHandle<()>, StartError> {
        let backend = Backend::new(self.config.backend()).map_err(StartError::Backend)?;
        let (tx, mut rx) = mpsc::channel(16);
        let events = self.events.clone();
        let pacing = self.replay_pacing;
        Ok(tokio::spawn(async move {
            let replaying = spool::replay_loop(spool, backend, pacing, tx, async move {
                stopped(&mut stop).await;
            });
            let publishing = async {
                while let Some(replayed) = rx.recv().await {
                    match replayed {
                        Replayed::Delivered {
                            request_id, answer, ..
                        } => {
                            let answer = events::Answer::from_response(&answer);
                            events.publish(EventBody::SpooledCheckAnswered { request_id, answer });
                        }
                        Replayed::Refused {
                            request_id, code, ..
                        } => {
                            tracing::warn!(%request_id, ?code, "a kept check was refused; set aside")
                        }
                        Replayed::Unreadable { file, reason } => {
                            tracing::warn!(%file, %reason, "a kept check is unreadable; set aside")
                        }
                    }
                }
            };
            tokio::join!(replaying, publishing);
        }))
    }

    fn t<'a>(&self, vi: &'a str, en: &'a str) -> &'a str {
        match self.lang {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }

    /// One check; false when the station is stopping.
    async fn check<W: Write + Send>(
        &mut self,
        check: u64,
        key: &DeskKey,
        present: &mut watch::Receiver<BTreeSet<String>>,
        stop: &mut watch::Receiver<bool>,
        output: &mut W,
    ) -> bool {
        self.events.publish(EventBody::check_started(check, key));
        say(
            output,
            self.t(
                "Đặt thẻ CCCD lên đầu đọc...",
                "Put the CCCD on the reader...",
            ),
        );
        let mut timings = Timings::default();
        let started = Instant::now();
        let wanted = self.config.reader.clone();
        let reader = tokio::select! {
            waited = tokio::time::timeout(
                self.config.card_wait(),
                present.wait_for(|readers| pick(readers, wanted.as_deref()).is_some()),
            ) => match waited {
                // The set's guard ends here, before any other await.
                Ok(Ok(readers)) => pick(&readers, wanted.as_deref()),
                _ => None,
            },
            () = stopped(stop) => {
                self.events.publish(EventBody::CheckCancelled { check });
                return false;
            }
        };
        timings.wait_for_card = started.elapsed();

        let mut stopping = false;
        let display_face = self.config.display_face;
        let (outcome, open) = match reader {
            None => (Outcome::NoCard, None),
            Some(reader) => {
                let work = desk::check_card_keeping(
                    &mut self.backend,
                    &self.trust,
                    key,
                    reader,
                    &mut timings,
                    display_face,
                );
                tokio::pin!(work);
                tokio::select! {
                    outcome = &mut work => outcome,
                    () = stopped(stop) => {
                        // Stopping mid-read: the card and the backend get a bounded moment to
                        // finish, so an answer already on its way still reaches the desk.
                        stopping = true;
                        match tokio::time::timeout(GRACE, &mut work).await {
                            Ok(outcome) => outcome,
                            Err(_) => {
                                self.events.publish(EventBody::CheckCancelled { check });
                                return false;
                            }
                        }
                    }
                }
            }
        };
        say(output, &desk::render(&outcome, self.lang));
        self.events
            .publish(EventBody::from_outcome(check, &outcome));
        if let Outcome::Unreachable { pending, .. } = &outcome {
            let kept = self.spool.as_ref().map(|spool| spool.put(pending));
            say(
                output,
                &spool::text::kept(kept.as_ref(), &pending.request_id, self.lang),
            );
            if let Some(Ok(())) = kept {
                self.events.publish(EventBody::CheckSpooled {
                    request_id: pending.request_id.clone(),
                });
            }
        }
        // The face only now, after the answer is out, over the session the read kept open; not
        // when stopping (the session just ends).
        if let (Some(open), Some(request_id), false) = (open, request_id_of(&outcome), stopping) {
            let face = desk::read_face(open).await;
            say(output, &face::render(&face, self.lang));
            tracing::info!(
                check,
                face_ms = face.elapsed.as_millis(),
                face_apdus = face.apdus.apdus,
                shown = face.result.is_ok(),
                "face read"
            );
            self.events
                .publish(EventBody::from_face(check, request_id, &face));
        }
        tracing::info!(
            check,
            card_ms = timings.wait_for_card.as_millis(),
            challenge_ms = timings.challenge.as_millis(),
            read_ms = timings.read.as_millis(),
            backend_ms = timings.check.as_millis(),
            "check done"
        );
        !stopping
    }
}

/// The request id the check's events carry: the answer's, or the one kept for later.
fn request_id_of(outcome: &Outcome) -> Option<&str> {
    match outcome {
        Outcome::Answered { answer, .. } => Some(&answer.request_id),
        Outcome::Unreachable { pending, .. } => Some(&pending.request_id),
        _ => None,
    }
}

/// The reader to read: the configured one when it holds a card, else the first with a card.
fn pick(readers: &BTreeSet<String>, wanted: Option<&str>) -> Option<String> {
    match wanted {
        Some(name) => readers.get(name).cloned(),
        None => readers.first().cloned(),
    }
}

fn say<W: Write>(output: &mut W, text: &str) {
    // The console is for people: a closed one must not stop the desk.
    let _ = writeln!(output, "{}", text.trim_end());
    let _ = output.flush();
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The PC/SC watcher for the whole run, on its own thread: it publishes readers and cards
/// coming and going, and keeps the set of readers holding a card.
struct CardWatch {
    present: watch::Receiver<BTreeSet<String>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl CardWatch {
    fn start(events: EventLog) -> io::Result<CardWatch> {
        let watcher = Watcher::start(WatcherConfig {
            poll: Duration::from_millis(300),
            retry: Duration::from_millis(300),
        })?;
        let (present_tx, present) = watch::channel(BTreeSet::new());
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("desk-cards".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::SeqCst) {
                    let event = match watcher.events().recv_timeout(Duration::from_millis(200)) {
                        Ok(event) => event,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    // The set first, so a check woken by the event finds the card.
                    let body = match event {
                        CardEvent::CardInserted { reader, atr } => {
                            present_tx.send_modify(|set| {
                                set.insert(reader.clone());
                            });
                            EventBody::CardInserted {
                                reader,
                                atr: hex::encode_upper(atr),
                            }
                        }
                        CardEvent::CardRemoved { reader } => {
                            present_tx.send_modify(|set| {
                                set.remove(&reader);
                            });
                            EventBody::CardRemoved { reader }
                        }
                        CardEvent::ReaderAdded { reader } => EventBody::ReaderAdded { reader },
                        CardEvent::ReaderRemoved { reader } => EventBody::ReaderRemoved { reader },
                        // The readers' removal and return follow as their own events.
                        _ => continue,
                    };
                    events.publish(body);
                }
                watcher.stop();
            })?;
        Ok(CardWatch {
            present,
            stop,
            thread,
        })
    }

    /// Stops the thread (it notices within 200 ms, then cancels PC/SC), bounded.
    async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread;
        let joined = tokio::time::timeout(
            STOP_WAIT,
            tokio::task::spawn_blocking(move || thread.join()),
        )
        .await;
        if joined.is_err() {
            tracing::warn!("the PC/SC watcher did not stop in time");
        }
    }
}
