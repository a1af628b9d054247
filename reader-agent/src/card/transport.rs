//! emrtd's [`Transport`] over a connected PC/SC card.
//!
//! A reader that cannot carry extended-length APDUs refuses them before the card sees them;
//! emrtd's reader answers a [`TransportError::Rejected`] by going to short APDUs at once. The
//! refusal is remembered per reader name for the life of the agent, so the next card on that
//! reader is read short from the start, without a refused command first.

use std::collections::HashSet;
use std::ffi::CString;
use std::sync::{Arc, Mutex};

use emrtd::transport::{Transport, TransportError};

/// Readers known to refuse extended-length APDUs, shared by every card read on them.
#[derive(Debug, Clone, Default)]
pub struct ExtendedApduMemory {
    short_only: Arc<Mutex<HashSet<String>>>,
}

impl ExtendedApduMemory {
    /// Whether `reader` was seen refusing an extended APDU.
    pub fn is_short_only(&self, reader: &str) -> bool {
        self.short_only
            .lock()
            .map(|set| set.contains(reader))
            .unwrap_or(false)
    }

    fn remember_short_only(&self, reader: &str) {
        if let Ok(mut set) = self.short_only.lock() {
            set.insert(reader.to_owned());
        }
    }
}

/// The platform's handle on one connected card, reduced to what the transport needs.
pub trait CardLink {
    /// Sends a command APDU and returns the response APDU.
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, pcsc::Error>;
    /// Whether the card is still in the reader and powered (asked after an ambiguous failure).
    fn card_present(&mut self) -> bool;
}

/// An APDU transport over a [`CardLink`], stepping down from extended APDUs as its reader needs.
pub struct PcscCard<L: CardLink = ConnectedCard> {
    link: L,
    reader: String,
    memory: ExtendedApduMemory,
}

impl<L: CardLink> PcscCard<L> {
    /// A transport over `link`, to the card in `reader`.
    pub fn over(link: L, reader: &str, memory: ExtendedApduMemory) -> Self {
        PcscCard {
            link,
            reader: reader.to_owned(),
            memory,
        }
    }

    /// The reader's name.
    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// The link, e.g. to disconnect it.
    pub fn into_link(self) -> L {
        self.link
    }
}

impl<L: CardLink> Transport for PcscCard<L> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let extended = is_extended(command);
        if extended && self.memory.is_short_only(&self.reader) {
            // Known not to pass: refused here, as the reader would, without a round trip.
            return Err(TransportError::Rejected);
        }
        match self.link.transmit(command) {
            Ok(response) if response.len() >= 2 => Ok(response),
            // pcsc-lite passes an empty answer when the card left mid-command (seen with vpcd);
            // the reader's state says so only after its next presence poll.
            Ok(_) if card_leaving(&mut self.link) => Err(TransportError::CardRemoved),
            Ok(_) => Err(TransportError::Other(
                "response shorter than a status word".into(),
            )),
            Err(error) => {
                let classified = classify(error, extended, || self.link.card_present());
                if classified == TransportError::Rejected {
                    self.memory.remember_short_only(&self.reader);
                }
                Err(classified)
            }
        }
    }
}

/// Whether the card turns out absent within a short bound (pcscd polls presence about every
/// 400 ms), after an answer that only a vanished card gives.
fn card_leaving(link: &mut impl CardLink) -> bool {
    for _ in 0..15 {
        if !link.card_present() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// Whether a command APDU uses extended length fields (ISO/IEC 7816-4: a body starting with a
/// zero byte and longer than one byte).
fn is_extended(command: &[u8]) -> bool {
    matches!(command, [_, _, _, _, 0, _, _, ..])
}

/// Maps a PC/SC failure to what emrtd's reader acts on. The ambiguous ones (a driver error that
/// is either a refused extended APDU or a card that left mid-command) are settled by asking
/// whether the card is still there.
fn classify(
    error: pcsc::Error,
    extended: bool,
    card_present: impl FnOnce() -> bool,
) -> TransportError {
    use pcsc::Error as E;
    match error {
        E::RemovedCard | E::ResetCard | E::NoSmartcard | E::UnpoweredCard => {
            TransportError::CardRemoved
        }
        // pcscd gone or restarted, reader unplugged: the card is lost to this session too.
        E::NoService | E::ServiceStopped | E::ReaderUnavailable | E::UnknownReader => {
            TransportError::CardRemoved
        }
        E::Timeout | E::UnresponsiveCard => TransportError::Timeout,
        E::NotTransacted | E::InvalidParameter | E::InsufficientBuffer | E::InvalidValue
            if extended =>
        {
            if card_present() {
                TransportError::Rejected
            } else {
                TransportError::CardRemoved
            }
        }
        E::NotTransacted | E::CommError => {
            if card_present() {
                TransportError::Other(error.to_string())
            } else {
                TransportError::CardRemoved
            }
        }
        other => TransportError::Other(other.to_string()),
    }
}

/// Why a card could not be connected.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The smart card service is not running.
    #[error("smart card service not running")]
    NoService,
    /// The reader is gone.
    #[error("reader not available")]
    NoReader,
    /// No card, or it left before the connection.
    #[error("no card in the reader")]
    NoCard,
    /// The reader name cannot be passed to PC/SC.
    #[error("reader name contains a NUL byte")]
    BadReaderName,
    /// Anything else PC/SC reported.
    #[error("PC/SC: {0}")]
    Pcsc(pcsc::Error),
}

impl From<pcsc::Error> for ConnectError {
    fn from(error: pcsc::Error) -> Self {
        use pcsc::Error as E;
        match error {
            E::NoService | E::ServiceStopped => ConnectError::NoService,
            E::UnknownReader | E::ReaderUnavailable => ConnectError::NoReader,
            E::NoSmartcard | E::RemovedCard | E::UnpoweredCard | E::UnresponsiveCard => {
                ConnectError::NoCard
            }
            other => ConnectError::Pcsc(other),
        }
    }
}

/// A card connected over PC/SC (shared mode, T=1 or T=0), with its own context so reads run on
/// any thread while the watcher keeps its own. Disconnects with "leave card": no reset, so the
/// chip is not power-cycled under the patient's hand, and another program's session survives.
pub struct ConnectedCard {
    card: Option<pcsc::Card>,
    buffer: Vec<u8>,
}

impl ConnectedCard {
    /// Connects to the card in `reader`.
    pub fn connect(reader: &str) -> Result<Self, ConnectError> {
        let name = CString::new(reader).map_err(|_| ConnectError::BadReaderName)?;
        let context = pcsc::Context::establish(pcsc::Scope::User)?;
        let card = context.connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)?;
        Ok(ConnectedCard {
            card: Some(card),
            buffer: vec![0; pcsc::MAX_BUFFER_SIZE_EXTENDED],
        })
    }

    /// Ends the connection, leaving the card as it is.
    pub fn disconnect(mut self) -> Result<(), pcsc::Error> {
        self.leave()
    }

    fn leave(&mut self) -> Result<(), pcsc::Error> {
        match self.card.take() {
            Some(card) => card
                .disconnect(pcsc::Disposition::LeaveCard)
                .map_err(|(card, error)| {
                    // The crate's own drop would reset the card; the handle is stale anyway.
                    std::mem::forget(card);
                    error
                }),
            None => Ok(()),
        }
    }
}

impl Drop for ConnectedCard {
    fn drop(&mut self) {
        let _ = self.leave();
    }
}

impl CardLink for ConnectedCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, pcsc::Error> {
        let card = self.card.as_ref().ok_or(pcsc::Error::InvalidHandle)?;
        card.transmit(command, &mut self.buffer).map(<[u8]>::to_vec)
    }

    fn card_present(&mut self) -> bool {
        self.card.as_ref().is_some_and(|card| {
            card.status2_owned().is_ok_and(|s| {
                s.status()
                    .contains(pcsc::Status::PRESENT | pcsc::Status::POWERED)
            })
        })
    }
}

impl PcscCard<ConnectedCard> {
    /// Connects to the card in `reader` and wraps it as a transport.
    pub fn connect(reader: &str, memory: ExtendedApduMemory) -> Result<Self, ConnectError> {
        Ok(PcscCard::over(
            ConnectedCard::connect(reader)?,
            reader,
            memory,
        ))
    }

    /// Ends the read, leaving the card as it is (no reset).
    pub fn finish(self) -> Result<(), pcsc::Error> {
        self.link.disconnect()
    }
}

#[cfg(test)]
mod tests {
    //! The reader-refusal logic needs a reader that refuses extended APDUs, which neither vpcd nor
    //! pcscd can be made to be; these tests give the link that behaviour and check the rest
    //! against emrtd's real reader and virtual card.
    use super::*;
    use emrtd::virtual_card::{FileSystem, VirtualCard};

    /// A link to emrtd's virtual card through a reader that refuses extended APDUs the way a
    /// pcsc-lite driver does.
    struct ShortOnlyReader {
        card: VirtualCard,
        extended_seen: u32,
        present: bool,
    }

    impl CardLink for ShortOnlyReader {
        fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, pcsc::Error> {
            if !self.present {
                return Err(pcsc::Error::NotTransacted);
            }
            if is_extended(command) {
                self.extended_seen += 1;
                return Err(pcsc::Error::NotTransacted);
            }
            self.card
                .transmit(command)
                .map_err(|_| pcsc::Error::NotTransacted)
        }
        fn card_present(&mut self) -> bool {
            self.present
        }
    }

    fn link() -> ShortOnlyReader {
        let files = FileSystem::new().with_data_group(1, {
            let mut dg1 = vec![0x61, 0x82, 0x04, 0x00];
            dg1.extend((0..1024u32).map(|i| i as u8));
            dg1
        });
        ShortOnlyReader {
            card: VirtualCard::new(files).with_bac("L898902C<369080619406236"),
            extended_seen: 0,
            present: true,
        }
    }

    fn read_dg1(transport: PcscCard<ShortOnlyReader>) -> (Vec<u8>, ShortOnlyReader) {
        let mut reader = emrtd::reader::Reader::new(transport);
        reader.select_application().unwrap();
        reader
            .establish_bac(&emrtd::bac::BacKey::new("L898902C", "690806", "940623").unwrap())
            .unwrap();
        let dg1 = reader.read_file(0x01).unwrap();
        (dg1, reader.into_transport().into_link())
    }

    #[test]
    fn a_refusing_reader_is_stepped_down_once_and_remembered_by_name() {
        let memory = ExtendedApduMemory::default();
        let (dg1, first) = read_dg1(PcscCard::over(link(), "Desk reader 00", memory.clone()));
        assert_eq!(dg1.len(), 1028);
        // One extended READ BINARY refused by the reader, then short ones.
        assert_eq!(first.extended_seen, 1);
        assert!(memory.is_short_only("Desk reader 00"));
        // The next card on the same reader never tries extended: without the memory this is 1.
        let (_, second) = read_dg1(PcscCard::over(link(), "Desk reader 00", memory.clone()));
        assert_eq!(second.extended_seen, 0);
        // Another reader is not tarred with the same brush.
        assert!(!memory.is_short_only("Desk reader 01"));
    }

    #[test]
    fn a_failure_with_the_card_gone_is_removal_not_refusal() {
        let memory = ExtendedApduMemory::default();
        let mut gone = link();
        gone.present = false;
        let mut transport = PcscCard::over(gone, "Desk reader 00", memory.clone());
        let extended_read = [0x00, 0xB0, 0x81, 0x00, 0x00, 0x04, 0x00];
        assert_eq!(
            transport.transmit(&extended_read),
            Err(TransportError::CardRemoved)
        );
        // A pulled card must not make the reader short-only for good.
        assert!(!memory.is_short_only("Desk reader 00"));
    }

    /// A link whose transmit succeeds with an empty answer, as pcsc-lite reports a card that
    /// left mid-command; the card is seen gone after `absent_after` presence checks.
    struct EmptyAnswer {
        checks: u32,
        absent_after: Option<u32>,
    }

    impl CardLink for EmptyAnswer {
        fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, pcsc::Error> {
            Ok(Vec::new())
        }
        fn card_present(&mut self) -> bool {
            self.checks += 1;
            self.absent_after.is_none_or(|n| self.checks <= n)
        }
    }

    #[test]
    fn an_empty_answer_is_removal_once_the_reader_sees_the_card_gone() {
        let select = [0x00, 0xA4, 0x04, 0x0C, 0x01, 0xA0];
        // The reader notices on its third presence check.
        let link = EmptyAnswer {
            checks: 0,
            absent_after: Some(2),
        };
        let mut transport = PcscCard::over(link, "Desk reader 00", ExtendedApduMemory::default());
        assert_eq!(
            transport.transmit(&select),
            Err(TransportError::CardRemoved)
        );
        // A card that stays yet answers nothing is a fault, not a removal, and the wait for the
        // reader to notice is bounded.
        let link = EmptyAnswer {
            checks: 0,
            absent_after: None,
        };
        let mut transport = PcscCard::over(link, "Desk reader 00", ExtendedApduMemory::default());
        assert!(matches!(
            transport.transmit(&select),
            Err(TransportError::Other(_))
        ));
        assert_eq!(transport.into_link().checks, 15);
    }

    #[test]
    fn pcsc_errors_map_to_what_the_reader_acts_on() {
        assert_eq!(
            classify(pcsc::Error::RemovedCard, false, || true),
            TransportError::CardRemoved
        );
        assert_eq!(
            classify(pcsc::Error::NoService, false, || true),
            TransportError::CardRemoved
        );
        assert_eq!(
            classify(pcsc::Error::Timeout, true, || true),
            TransportError::Timeout
        );
        assert_eq!(
            classify(pcsc::Error::NotTransacted, true, || true),
            TransportError::Rejected
        );
        // A short command the driver could not deliver to a present card is not a refusal of
        // extended length.
        assert!(matches!(
            classify(pcsc::Error::NotTransacted, false, || true),
            TransportError::Other(_)
        ));
    }

    #[test]
    fn extended_length_is_recognised_from_the_apdu_shape() {
        assert!(is_extended(&[0x00, 0xB0, 0x00, 0x00, 0x00, 0x10, 0x00]));
        assert!(!is_extended(&[0x00, 0xB0, 0x00, 0x00, 0xDF]));
        assert!(!is_extended(&[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x01, 0x1E]));
        // A short case 3 whose data starts with a zero byte is still short (Lc is not zero).
        assert!(!is_extended(&[0x00, 0xD6, 0x00, 0x00, 0x02, 0x00, 0x01]));
        assert!(!is_extended(&[0x00, 0x84, 0x00]));
    }
}
