//! Watches PC/SC on a dedicated thread: readers plugged in and out, cards inserted and removed,
//! the PC/SC service going away and coming back.
//!
//! The thread owns its context; every PC/SC call on it blocks, so shutdown cancels the context
//! from the caller's thread (SCardCancel), and each wait is also bounded so a cancel that lands
//! between two calls costs at most one poll interval. When the service stops (pcscd restarted,
//! Windows' SCardSvr stopped) every reader is reported gone and a fresh context is established
//! as soon as the service answers again.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Something that happened on the readers. Reader names are the platform's (model and slot), not
/// personal data.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardEvent {
    /// A reader is present (at start, or plugged in).
    ReaderAdded { reader: String },
    /// A reader is gone (unplugged, or the service stopped).
    ReaderRemoved { reader: String },
    /// A card was put on the reader; `atr` is its answer to reset.
    CardInserted { reader: String, atr: Vec<u8> },
    /// The card left the reader.
    CardRemoved { reader: String },
    /// The PC/SC service is not answering; readers are reported removed and the watcher retries.
    ServiceLost,
    /// The service answers again with a fresh context; readers follow as `ReaderAdded`.
    ServiceRestored,
}

/// Timing of the watcher.
#[derive(Debug, Clone, Copy)]
pub struct WatcherConfig {
    /// Longest single wait for a change; bounds how late a missed cancel is noticed.
    pub poll: Duration,
    /// Pause between attempts to reach a stopped service.
    pub retry: Duration,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        WatcherConfig {
            poll: Duration::from_millis(1000),
            retry: Duration::from_millis(500),
        }
    }
}

struct Shared {
    stop: AtomicBool,
    /// The context in use, for cancelling from another thread.
    context: Mutex<Option<pcsc::Context>>,
}

/// The running watcher. Dropping it stops the thread.
pub struct Watcher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    events: Receiver<CardEvent>,
}

impl Watcher {
    /// Starts watching on a new thread.
    pub fn start(config: WatcherConfig) -> std::io::Result<Watcher> {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            context: Mutex::new(None),
        });
        let (tx, events) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("pcsc-watcher".into())
            .spawn(move || run(&thread_shared, &tx, config))?;
        Ok(Watcher {
            shared,
            thread: Some(thread),
            events,
        })
    }

    /// The events, in order.
    pub fn events(&self) -> &Receiver<CardEvent> {
        &self.events
    }

    /// Stops the thread: sets the flag, cancels the blocking call, waits for the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Ok(context) = self.shared.context.lock()
            && let Some(context) = context.as_ref()
        {
            let _ = context.cancel();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Whether the error means the service (or our handle on it) is gone rather than a passing state.
fn service_gone(error: pcsc::Error) -> bool {
    use pcsc::Error as E;
    matches!(
        error,
        E::NoService | E::ServiceStopped | E::InvalidHandle | E::CommError | E::InternalError
    )
}

fn run(shared: &Shared, tx: &Sender<CardEvent>, config: WatcherConfig) {
    let mut lost = false;
    while !shared.stop.load(Ordering::SeqCst) {
        let context = match pcsc::Context::establish(pcsc::Scope::User) {
            Ok(context) => context,
            Err(_) => {
                if !lost {
                    lost = true;
                    let _ = tx.send(CardEvent::ServiceLost);
                }
                std::thread::sleep(config.retry);
                continue;
            }
        };
        if let Ok(mut slot) = shared.context.lock() {
            *slot = Some(context.clone());
        }
        if lost {
            lost = false;
            let _ = tx.send(CardEvent::ServiceRestored);
        }
        let ended = watch(&context, shared, tx, config);
        if let Ok(mut slot) = shared.context.lock() {
            *slot = None;
        }
        if ended == Ended::ServiceGone {
            lost = true;
            std::thread::sleep(config.retry);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Stopped,
    ServiceGone,
}

/// One reader as last seen: whether a card was present.
struct Seen {
    state: pcsc::ReaderState,
    card: bool,
}

fn watch(
    context: &pcsc::Context,
    shared: &Shared,
    tx: &Sender<CardEvent>,
    config: WatcherConfig,
) -> Ended {
    let mut readers: BTreeMap<CString, Seen> = BTreeMap::new();
    let mut pnp = pcsc::ReaderState::new(pcsc::PNP_NOTIFICATION(), pcsc::State::UNAWARE);
    let ended = loop {
        if shared.stop.load(Ordering::SeqCst) {
            break Ended::Stopped;
        }
        match context.list_readers_owned() {
            Ok(names) => sync_readers(&mut readers, names, tx),
            Err(e) if service_gone(e) => break Ended::ServiceGone,
            Err(_) => {}
        }
        let mut states: Vec<pcsc::ReaderState> = Vec::with_capacity(readers.len() + 1);
        states.push(pcsc::ReaderState::new(pnp.name(), pnp.current_state()));
        for seen in readers.values() {
            states.push(pcsc::ReaderState::new(
                seen.state.name(),
                seen.state.current_state(),
            ));
        }
        match context.get_status_change(config.poll, &mut states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout | pcsc::Error::Cancelled) => continue,
            // A reader vanished between the listing and the wait: list again.
            Err(pcsc::Error::UnknownReader) => continue,
            Err(e) if service_gone(e) => break Ended::ServiceGone,
            Err(_) => {
                std::thread::sleep(config.retry);
                continue;
            }
        }
        let mut states = states.into_iter();
        if let Some(mut notified) = states.next() {
            notified.sync_current_state();
            pnp = notified;
        }
        for mut state in states {
            let Some(seen) = readers.get_mut(state.name()) else {
                continue;
            };
            let event = state.event_state();
            if event.intersects(pcsc::State::UNKNOWN | pcsc::State::UNAVAILABLE) {
                // Gone; the next listing reports it.
                continue;
            }
            let card = event.contains(pcsc::State::PRESENT) && !event.contains(pcsc::State::MUTE);
            if card != seen.card {
                let reader = name_of(state.name());
                let _ = tx.send(if card {
                    CardEvent::CardInserted {
                        reader,
                        atr: state.atr().to_vec(),
                    }
                } else {
                    CardEvent::CardRemoved { reader }
                });
                seen.card = card;
            }
            state.sync_current_state();
            seen.state = state;
        }
    };
    // Whatever was there is gone with the service: said first, then each reader.
    if ended == Ended::ServiceGone {
        let _ = tx.send(CardEvent::ServiceLost);
    }
    for (name, seen) in std::mem::take(&mut readers) {
        if ended == Ended::ServiceGone {
            let reader = name_of(&name);
            if seen.card {
                let _ = tx.send(CardEvent::CardRemoved {
                    reader: reader.clone(),
                });
            }
            let _ = tx.send(CardEvent::ReaderRemoved { reader });
        }
    }
    ended
}

/// Applies a fresh reader listing: new readers start unaware (their first wait reports the card
/// state), vanished ones are reported with their card.
fn sync_readers(
    readers: &mut BTreeMap<CString, Seen>,
    names: Vec<CString>,
    tx: &Sender<CardEvent>,
) {
    let gone: Vec<CString> = readers
        .keys()
        .filter(|known| !names.contains(known))
        .cloned()
        .collect();
    for name in gone {
        if let Some(seen) = readers.remove(&name) {
            let reader = name_of(&name);
            if seen.card {
                let _ = tx.send(CardEvent::CardRemoved {
                    reader: reader.clone(),
                });
            }
            let _ = tx.send(CardEvent::ReaderRemoved { reader });
        }
    }
    for name in names {
        if readers.contains_key(&name) {
            continue;
        }
        let _ = tx.send(CardEvent::ReaderAdded {
            reader: name_of(&name),
        });
        let state = pcsc::ReaderState::new(name.clone(), pcsc::State::UNAWARE);
        readers.insert(name, Seen { state, card: false });
    }
}

fn name_of(name: &CStr) -> String {
    name.to_string_lossy().into_owned()
}
