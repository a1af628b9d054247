//! The one seam between the protocol and a card: send a command APDU, get the response APDU.
//!
//! The agent implements it over PC/SC, tests over the in-process virtual card. Keeping it this small
//! lets every protocol layer above run without I/O of its own.

/// Something that carries command APDUs to a card and brings back its responses.
pub trait Transport {
    /// Sends one command APDU and returns the response APDU, status word SW1 SW2 included.
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        (**self).transmit(command)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        (**self).transmit(command)
    }
}

/// Why a command did not reach the card or no response came back.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The card left the field or was reset (a pulled card, a pcscd restart).
    #[error("card removed or reset")]
    CardRemoved,
    /// No response in time.
    #[error("card did not answer in time")]
    Timeout,
    /// The reader refused the command before sending it, typically an extended-length APDU on a
    /// reader that lacks support (PC/SC 0x80100016). The card never saw it, so a secure channel's
    /// counter must not advance: the reader steps down to short APDUs.
    #[error("reader refused the command (extended length unsupported?)")]
    Rejected,
    /// Any other failure of the reader or driver.
    #[error("transport failure: {0}")]
    Other(String),
}
