//! The card side of vsmartcard's vpcd driver: serves a chip (anything that answers APDUs, such as
//! emrtd's virtual CCCD) to a real pcscd, so tests and the demo go through the same PC/SC path as
//! a physical reader.
//!
//! Protocol facts (vsmartcard's "vicc" link): the vpcd driver inside pcscd listens on a TCP port
//! and the card connects to it; connecting is inserting the card, closing is removing it. Every
//! message either way is a 2-byte big-endian length and that many bytes. A 1-byte message from
//! the driver is a control code (0 power off, 1 power on, 2 reset, 4 "send your ATR"); only the
//! ATR request is answered. Any longer message is a command APDU, answered with the response
//! APDU. The driver polls presence by asking for the ATR, so an idle card still gets traffic.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use emrtd::transport::Transport;

/// An ATR for a contactless ISO/IEC 14443-4 card without historical bytes, as PC/SC part 3
/// readers report it (a real CCCD reports its own).
pub const CONTACTLESS_ATR: [u8; 5] = [0x3B, 0x80, 0x80, 0x01, 0x01];

const CTRL_POWER_OFF: u8 = 0;
const CTRL_POWER_ON: u8 = 1;
const CTRL_RESET: u8 = 2;
const CTRL_ATR: u8 = 4;

/// Why a card could not be inserted or served.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The vpcd port did not accept a connection in time (pcscd not running, wrong port).
    #[error("vpcd at {addr} did not accept the card within {waited:?}")]
    NotListening { addr: SocketAddr, waited: Duration },
    /// The socket failed.
    #[error("vpcd link: {0}")]
    Io(#[from] io::Error),
}

/// What the driver asked of the card so far, for tests that check how the agent leaves a card.
#[derive(Debug, Default)]
pub struct LinkCounters {
    apdus: AtomicU64,
    resets: AtomicU64,
    power_offs: AtomicU64,
}

impl LinkCounters {
    /// Command APDUs answered.
    pub fn apdus(&self) -> u64 {
        self.apdus.load(Ordering::SeqCst)
    }

    /// Warm resets (control code 2): what a PC/SC disconnect with a reset disposition causes.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::SeqCst)
    }

    /// Power-offs (control code 0).
    pub fn power_offs(&self) -> u64 {
        self.power_offs.load(Ordering::SeqCst)
    }
}

/// How a card behaves on the reader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// The card leaves the field (the connection drops) when this many APDUs have been answered:
    /// the patient pulls it mid-read.
    pub pull_after_apdus: Option<u64>,
    /// The card stops answering (stays in the field, says nothing) when this many APDUs have
    /// been answered: an unresponsive card or reader.
    pub stall_after_apdus: Option<u64>,
}

/// One vpcd slot of a private pcscd, addressed by its port.
#[derive(Debug, Clone, Copy)]
pub struct VirtualReader {
    addr: SocketAddr,
}

impl VirtualReader {
    /// The slot whose driver listens on `port` on this machine.
    pub fn on_port(port: u16) -> Self {
        VirtualReader {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// Puts a card on the reader: connects (retrying until `wait` has passed, since the driver
    /// only accepts while pcscd polls it) and serves it on a thread until removed. `chip` makes
    /// the chip afresh at every power-on or reset, as a real chip forgets its session then.
    pub fn insert<T, F>(
        &self,
        mut chip: F,
        atr: &[u8],
        behaviour: Behaviour,
        wait: Duration,
    ) -> Result<InsertedCard, BridgeError>
    where
        T: Transport,
        F: FnMut() -> T + Send + 'static,
    {
        self.serve_on_thread(
            move || {
                let first = chip();
                (first, move || Some(chip()))
            },
            atr,
            behaviour,
            wait,
        )
    }

    /// Puts one chip on the reader for the whole insertion: `make` builds it on the serving
    /// thread, and power-on and reset keep it (its keys, such as an Active Authentication key
    /// that cannot be copied into a second chip, stay; a new session starts with the next PACE
    /// or BAC). For chips that cannot be moved between threads.
    pub fn insert_one<T, M>(
        &self,
        make: M,
        atr: &[u8],
        behaviour: Behaviour,
        wait: Duration,
    ) -> Result<InsertedCard, BridgeError>
    where
        T: Transport,
        M: FnOnce() -> T + Send + 'static,
    {
        self.serve_on_thread(move || (make(), || None::<T>), atr, behaviour, wait)
    }

    /// Connects, then serves on a thread the chip `start` gives, replaced at power-off and reset
    /// by what its companion factory gives (`None`: kept).
    fn serve_on_thread<T, S, F>(
        &self,
        start: S,
        atr: &[u8],
        behaviour: Behaviour,
        wait: Duration,
    ) -> Result<InsertedCard, BridgeError>
    where
        T: Transport,
        S: FnOnce() -> (T, F) + Send + 'static,
        F: FnMut() -> Option<T>,
    {
        let stream = connect(self.addr, wait)?;
        stream.set_nodelay(true)?;
        let control = stream.try_clone()?;
        let counters = Arc::new(LinkCounters::default());
        let served = Arc::clone(&counters);
        let atr = atr.to_vec();
        let ended = Arc::new(Mutex::new(None));
        let ended_by = Arc::clone(&ended);
        let thread = std::thread::Builder::new()
            .name("vpcd-card".into())
            .spawn(move || {
                let (mut card, mut fresh) = start();
                let outcome = serve(stream, &mut card, &mut fresh, &atr, behaviour, &served);
                if let Ok(mut slot) = ended_by.lock() {
                    *slot = Some(outcome);
                }
            })?;
        Ok(InsertedCard {
            control,
            counters,
            ended,
            thread: Some(thread),
        })
    }
}

fn connect(addr: SocketAddr, wait: Duration) -> Result<TcpStream, BridgeError> {
    let start = Instant::now();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(stream) => return Ok(stream),
            Err(_) if start.elapsed() < wait => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => {
                return Err(BridgeError::NotListening {
                    addr,
                    waited: start.elapsed(),
                });
            }
        }
    }
}

/// How serving a card ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The driver closed the link (pcscd stopped or restarted) or the card was removed.
    Closed,
    /// The card was pulled mid-read as its [`Behaviour`] said.
    Pulled,
    /// The chip's transport failed; the card is gone from the field.
    ChipGone,
    /// The driver sent something that is not the protocol.
    Protocol(String),
}

/// Serves `card` until the link ends; at power-off and reset `fresh` gives the chip that
/// replaces it (`None`: the same chip stays).
fn serve<T: Transport, F: FnMut() -> Option<T>>(
    mut stream: TcpStream,
    card: &mut T,
    fresh: &mut F,
    atr: &[u8],
    behaviour: Behaviour,
    counters: &LinkCounters,
) -> Ending {
    loop {
        let message = match read_frame(&mut stream) {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => return Ending::Closed,
        };
        let reply = match message.as_slice() {
            [] => return Ending::Protocol("empty message".into()),
            [CTRL_ATR] => atr.to_vec(),
            [CTRL_POWER_OFF] => {
                counters.power_offs.fetch_add(1, Ordering::SeqCst);
                if let Some(chip) = fresh() {
                    *card = chip;
                }
                continue;
            }
            [CTRL_RESET] => {
                counters.resets.fetch_add(1, Ordering::SeqCst);
                if let Some(chip) = fresh() {
                    *card = chip;
                }
                continue;
            }
            [CTRL_POWER_ON] => continue,
            [code] => return Ending::Protocol(format!("unknown control code {code}")),
            apdu => {
                if behaviour
                    .pull_after_apdus
                    .is_some_and(|n| counters.apdus() >= n)
                {
                    let _ = stream.shutdown(Shutdown::Both);
                    return Ending::Pulled;
                }
                if behaviour
                    .stall_after_apdus
                    .is_some_and(|n| counters.apdus() >= n)
                {
                    // Silent until removed: the next read ends when the link is shut.
                    let _ = read_frame(&mut stream);
                    return Ending::Closed;
                }
                match card.transmit(apdu) {
                    Ok(response) => {
                        counters.apdus.fetch_add(1, Ordering::SeqCst);
                        response
                    }
                    Err(_) => {
                        let _ = stream.shutdown(Shutdown::Both);
                        return Ending::ChipGone;
                    }
                }
            }
        };
        if write_frame(&mut stream, &reply).is_err() {
            return Ending::Closed;
        }
    }
}

/// Reads one frame; `None` when the peer closed between frames.
fn read_frame(stream: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut body = vec![0; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body)?;
    Ok(Some(body))
}

fn write_frame(stream: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u16::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 65535 bytes"))?;
    let mut frame = Vec::with_capacity(body.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame)
}

/// A card on a vpcd reader. Dropping it removes the card.
pub struct InsertedCard {
    control: TcpStream,
    counters: Arc<LinkCounters>,
    ended: Arc<Mutex<Option<Ending>>>,
    thread: Option<JoinHandle<()>>,
}

impl InsertedCard {
    /// What the driver asked of the card so far.
    pub fn counters(&self) -> &LinkCounters {
        &self.counters
    }

    /// How serving ended, if it has.
    pub fn ending(&self) -> Option<Ending> {
        self.ended.lock().ok().and_then(|e| e.clone())
    }

    /// Takes the card off the reader and waits for the serving thread.
    pub fn remove(mut self) -> Option<Ending> {
        self.take_off()
    }

    fn take_off(&mut self) -> Option<Ending> {
        let _ = self.control.shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.ending()
    }
}

impl Drop for InsertedCard {
    fn drop(&mut self) {
        self.take_off();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_length_prefixed_big_endian() {
        let mut out = Vec::new();
        write_frame(&mut out, &[0x00, 0xA4, 0x04, 0x0C]).unwrap();
        assert_eq!(out, [0x00, 0x04, 0x00, 0xA4, 0x04, 0x0C]);
        let mut input = &out[..];
        assert_eq!(
            read_frame(&mut input).unwrap(),
            Some(vec![0x00, 0xA4, 0x04, 0x0C])
        );
        assert_eq!(read_frame(&mut input).unwrap(), None);
    }

    #[test]
    fn a_truncated_frame_is_an_error_not_a_short_message() {
        // Declares 4 bytes, carries 2: a reader that took the prefix alone would answer garbage.
        let mut input: &[u8] = &[0x00, 0x04, 0x00, 0xA4];
        assert!(read_frame(&mut input).is_err());
        // A length prefix cut in half is a closed link.
        let mut input: &[u8] = &[0x00];
        assert_eq!(read_frame(&mut input).unwrap(), None);
    }

    /// The driver's side of the link, played by the test over a real socket.
    fn driver() -> (std::net::TcpListener, VirtualReader) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, VirtualReader::on_port(port))
    }

    /// A chip that answers every APDU with 90 00 and counts how many it has seen.
    struct Echo(u32);

    impl Transport for Echo {
        fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, emrtd::transport::TransportError> {
            self.0 += 1;
            Ok(vec![0x90, 0x00, self.0 as u8])
        }
    }

    fn wait_for_ending(card: &InsertedCard) -> Option<Ending> {
        for _ in 0..100 {
            if let Some(ending) = card.ending() {
                return Some(ending);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    #[test]
    fn answers_atr_requests_and_apdus_and_a_reset_gives_a_fresh_chip() {
        let (listener, reader) = driver();
        let card = reader
            .insert(
                || Echo(0),
                &CONTACTLESS_ATR,
                Behaviour::default(),
                Duration::from_secs(5),
            )
            .unwrap();
        let (mut link, _) = listener.accept().unwrap();
        write_frame(&mut link, &[CTRL_ATR]).unwrap();
        assert_eq!(read_frame(&mut link).unwrap().unwrap(), CONTACTLESS_ATR);
        write_frame(&mut link, &[CTRL_POWER_ON]).unwrap();
        for n in 1..=2u8 {
            write_frame(&mut link, &[0x00, 0x84, 0x00, 0x00, 0x08]).unwrap();
            assert_eq!(read_frame(&mut link).unwrap().unwrap(), [0x90, 0x00, n]);
        }
        // Control codes other than the ATR request get no answer; after the reset the chip
        // starts over (a chip kept across the reset would answer 3).
        write_frame(&mut link, &[CTRL_RESET]).unwrap();
        write_frame(&mut link, &[0x00, 0x84, 0x00, 0x00, 0x08]).unwrap();
        assert_eq!(read_frame(&mut link).unwrap().unwrap(), [0x90, 0x00, 1]);
        assert_eq!(card.counters().resets(), 1);
        assert_eq!(card.counters().apdus(), 3);
        // Removing the card closes the link.
        assert_eq!(card.remove(), Some(Ending::Closed));
        assert_eq!(read_frame(&mut link).unwrap(), None);
    }

    #[test]
    fn one_chip_for_the_insertion_survives_resets_and_power_offs() {
        let (listener, reader) = driver();
        let card = reader
            .insert_one(
                || Echo(0),
                &CONTACTLESS_ATR,
                Behaviour::default(),
                Duration::from_secs(5),
            )
            .unwrap();
        let (mut link, _) = listener.accept().unwrap();
        write_frame(&mut link, &[0x00, 0x84, 0x00, 0x00, 0x08]).unwrap();
        assert_eq!(read_frame(&mut link).unwrap().unwrap(), [0x90, 0x00, 1]);
        // The same chip after both: a rebuilt one would answer 1 again.
        write_frame(&mut link, &[CTRL_RESET]).unwrap();
        write_frame(&mut link, &[CTRL_POWER_OFF]).unwrap();
        write_frame(&mut link, &[CTRL_POWER_ON]).unwrap();
        write_frame(&mut link, &[0x00, 0x84, 0x00, 0x00, 0x08]).unwrap();
        assert_eq!(read_frame(&mut link).unwrap().unwrap(), [0x90, 0x00, 2]);
        assert_eq!(card.counters().resets(), 1);
        assert_eq!(card.counters().power_offs(), 1);
    }

    #[test]
    fn pulled_after_n_apdus_drops_the_link_without_answering() {
        let (listener, reader) = driver();
        let behaviour = Behaviour {
            pull_after_apdus: Some(1),
            ..Behaviour::default()
        };
        let card = reader
            .insert(
                || Echo(0),
                &CONTACTLESS_ATR,
                behaviour,
                Duration::from_secs(5),
            )
            .unwrap();
        let (mut link, _) = listener.accept().unwrap();
        write_frame(&mut link, &[0x00, 0x84, 0x00, 0x00, 0x08]).unwrap();
        assert!(read_frame(&mut link).unwrap().is_some());
        write_frame(&mut link, &[0x00, 0x84, 0x00, 0x00, 0x08]).unwrap();
        assert!(matches!(read_frame(&mut link), Ok(None) | Err(_)));
        assert_eq!(wait_for_ending(&card), Some(Ending::Pulled));
    }

    #[test]
    fn unknown_control_codes_and_empty_messages_end_the_link_as_protocol_errors() {
        for bad in [&[0x07][..], &[][..]] {
            let (listener, reader) = driver();
            let card = reader
                .insert(
                    || Echo(0),
                    &CONTACTLESS_ATR,
                    Behaviour::default(),
                    Duration::from_secs(5),
                )
                .unwrap();
            let (mut link, _) = listener.accept().unwrap();
            write_frame(&mut link, bad).unwrap();
            assert!(matches!(wait_for_ending(&card), Some(Ending::Protocol(_))));
        }
    }

    #[test]
    fn no_driver_listening_is_a_clear_error_in_bounded_time() {
        let (listener, reader) = driver();
        drop(listener);
        let started = Instant::now();
        let result = reader.insert(
            || Echo(0),
            &CONTACTLESS_ATR,
            Behaviour::default(),
            Duration::from_millis(300),
        );
        assert!(matches!(result, Err(BridgeError::NotListening { .. })));
        // A hang check (the retry loop ends), not a performance figure.
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn an_oversized_answer_is_refused_rather_than_truncated() {
        let mut out = Vec::new();
        assert!(write_frame(&mut out, &vec![0; 65_536]).is_err());
        assert!(out.is_empty());
    }
}
