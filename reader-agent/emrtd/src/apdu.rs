//! ISO/IEC 7816-4 command and response APDUs, and status words as typed errors.
//!
//! Commands choose short or extended encoding by themselves: short whenever Lc <= 255 and
//! Le <= 256, extended otherwise, so a caller only says how many bytes it sends and expects.

use std::fmt;

/// Largest Le a short APDU can carry (encoded as 00).
pub const SHORT_LE_MAX: usize = 256;
/// Largest Le an extended APDU can carry (encoded as 00 00).
pub const EXTENDED_LE_MAX: usize = 65_536;
/// Largest Lc a short APDU can carry.
pub const SHORT_LC_MAX: usize = 255;
/// Largest Lc an extended APDU can carry.
pub const EXTENDED_LC_MAX: usize = 65_535;

/// A command APDU before encoding. `le` is the number of response bytes expected (1..=65536),
/// `None` when no response data is expected (cases 1 and 3).
#[derive(Clone, PartialEq, Eq)]
pub struct CommandApdu {
    /// Class byte.
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (Lc bytes).
    pub data: Vec<u8>,
    /// Expected response length.
    pub le: Option<usize>,
}

/// Command data may hold keys or personal data: Debug shows the header and lengths only.
impl fmt::Debug for CommandApdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CommandApdu({:02X} {:02X} {:02X} {:02X}, Lc={}, Le={:?})",
            self.cla,
            self.ins,
            self.p1,
            self.p2,
            self.data.len(),
            self.le
        )
    }
}

/// An APDU that cannot be encoded.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApduError {
    /// More than 65 535 data bytes.
    #[error("command data too long for an APDU")]
    DataTooLong,
    /// Le of 0 or above 65 536.
    #[error("Le out of range")]
    LeOutOfRange,
    /// A response shorter than its two status bytes.
    #[error("response shorter than a status word")]
    ResponseTooShort,
}

impl CommandApdu {
    /// A command with no data and no expected response (case 1).
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        CommandApdu {
            cla,
            ins,
            p1,
            p2,
            data: Vec::new(),
            le: None,
        }
    }

    /// Adds command data (case 3, or case 4 with [`CommandApdu::with_le`]).
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }

    /// Sets the expected response length (case 2, or case 4 with data).
    pub fn with_le(mut self, le: usize) -> Self {
        self.le = Some(le);
        self
    }

    /// Whether [`CommandApdu::to_bytes`] uses extended length fields.
    pub fn is_extended(&self) -> bool {
        self.data.len() > SHORT_LC_MAX || self.le.is_some_and(|le| le > SHORT_LE_MAX)
    }

    /// Encodes the command, short where possible, extended otherwise (ISO/IEC 7816-4, 5.1).
    pub fn to_bytes(&self) -> Result<Vec<u8>, ApduError> {
        if self.data.len() > EXTENDED_LC_MAX {
            return Err(ApduError::DataTooLong);
        }
        if let Some(le) = self.le
            && !(1..=EXTENDED_LE_MAX).contains(&le)
        {
            return Err(ApduError::LeOutOfRange);
        }
        let mut out = Vec::with_capacity(4 + 3 + self.data.len() + 3);
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        let extended = self.is_extended();
        if !self.data.is_empty() {
            if extended {
                out.push(0);
                out.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
            } else {
                out.push(self.data.len() as u8);
            }
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            if extended {
                if self.data.is_empty() {
                    out.push(0);
                }
                // 65 536 is encoded as 00 00.
                out.extend_from_slice(&((le % EXTENDED_LE_MAX) as u16).to_be_bytes());
            } else {
                out.push((le % SHORT_LE_MAX) as u8);
            }
        }
        Ok(out)
    }
}

/// A response APDU: data field and status word.
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseApdu {
    /// Response data field.
    pub data: Vec<u8>,
    /// Status word SW1 SW2.
    pub sw: StatusWord,
}

/// Response data may be personal data: Debug shows its length only.
impl fmt::Debug for ResponseApdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseApdu({} bytes, {})", self.data.len(), self.sw)
    }
}

impl ResponseApdu {
    /// Splits a raw response into data and status word.
    pub fn parse(raw: &[u8]) -> Result<Self, ApduError> {
        let split = raw
            .len()
            .checked_sub(2)
            .ok_or(ApduError::ResponseTooShort)?;
        Ok(ResponseApdu {
            data: raw[..split].to_vec(),
            sw: StatusWord(u16::from_be_bytes([raw[split], raw[split + 1]])),
        })
    }

    /// The data when the status is 9000, the status as a typed error otherwise.
    pub fn into_success(self) -> Result<Vec<u8>, StatusError> {
        self.sw.check().map(|()| self.data)
    }
}

/// A status word SW1 SW2.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl StatusWord {
    /// 90 00: normal processing.
    pub const SUCCESS: StatusWord = StatusWord(0x9000);

    /// SW1.
    pub const fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// SW2.
    pub const fn sw2(self) -> u8 {
        self.0 as u8
    }

    /// Whether this is 90 00.
    pub const fn is_success(self) -> bool {
        self.0 == 0x9000
    }

    /// `Ok` for 90 00, the typed error otherwise.
    pub fn check(self) -> Result<(), StatusError> {
        match self.error() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// The typed meaning of anything but 90 00.
    pub fn error(self) -> Option<StatusError> {
        Some(match (self.sw1(), self.sw2()) {
            (0x90, 0x00) => return None,
            (0x62, 0x82) => StatusError::EndOfFile,
            (0x63, 0x00) => StatusError::AuthenticationFailed,
            (0x63, x) if x & 0xF0 == 0xC0 => StatusError::VerificationFailed {
                retries_left: x & 0x0F,
            },
            (0x67, 0x00) => StatusError::WrongLength,
            (0x69, 0x82) => StatusError::SecurityStatusNotSatisfied,
            (0x69, 0x83) => StatusError::AuthenticationBlocked,
            (0x69, 0x85) => StatusError::ConditionsNotSatisfied,
            (0x69, 0x86) => StatusError::CommandNotAllowed,
            (0x69, 0x87) => StatusError::SmDataObjectsMissing,
            (0x69, 0x88) => StatusError::SmDataObjectsIncorrect,
            (0x6A, 0x80) => StatusError::WrongData,
            (0x6A, 0x81) => StatusError::FunctionNotSupported,
            (0x6A, 0x82) => StatusError::FileNotFound,
            (0x6A, 0x86) => StatusError::IncorrectP1P2,
            (0x6A, 0x88) => StatusError::ReferencedDataNotFound,
            (0x6B, 0x00) => StatusError::WrongOffset,
            (0x6C, x) => StatusError::WrongLe {
                exact: if x == 0 { 256 } else { x as usize },
            },
            (0x6D, 0x00) => StatusError::InsNotSupported,
            (0x6E, 0x00) => StatusError::ClaNotSupported,
            _ => StatusError::Other(self),
        })
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusWord({:04X})", self.0)
    }
}

/// A status word other than 90 00, by meaning (ISO/IEC 7816-4, 5.6; ICAO 9303-11).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// 62 82: end of file reached before Le bytes (a warning: data is still returned).
    #[error("end of file reached before Le bytes (6282)")]
    EndOfFile,
    /// 63 00: authentication failed (BAC EXTERNAL AUTHENTICATE with a wrong key).
    #[error("authentication failed (6300)")]
    AuthenticationFailed,
    /// 63 Cx: verification failed, x tries left (PACE with a wrong password on some cards).
    #[error("verification failed, {retries_left} tries left (63Cx)")]
    VerificationFailed {
        /// Remaining tries.
        retries_left: u8,
    },
    /// 67 00: wrong length (Lc or Le); the reader steps down.
    #[error("wrong length (6700)")]
    WrongLength,
    /// 69 82: security status not satisfied (a CCCD refusing PACE answers this).
    #[error("security status not satisfied (6982)")]
    SecurityStatusNotSatisfied,
    /// 69 83: authentication method blocked.
    #[error("authentication method blocked (6983)")]
    AuthenticationBlocked,
    /// 69 85: conditions of use not satisfied.
    #[error("conditions of use not satisfied (6985)")]
    ConditionsNotSatisfied,
    /// 69 86: command not allowed (no current EF).
    #[error("command not allowed (6986)")]
    CommandNotAllowed,
    /// 69 87: expected secure-messaging data objects missing.
    #[error("secure messaging data objects missing (6987)")]
    SmDataObjectsMissing,
    /// 69 88: secure-messaging data objects incorrect (wrong MAC or counter on the card's side).
    #[error("secure messaging data objects incorrect (6988)")]
    SmDataObjectsIncorrect,
    /// 6A 80: incorrect data field.
    #[error("incorrect data (6A80)")]
    WrongData,
    /// 6A 81: function not supported.
    #[error("function not supported (6A81)")]
    FunctionNotSupported,
    /// 6A 82: file or application not found.
    #[error("file or application not found (6A82)")]
    FileNotFound,
    /// 6A 86: incorrect P1 P2.
    #[error("incorrect P1 P2 (6A86)")]
    IncorrectP1P2,
    /// 6A 88: referenced data (key, password) not found.
    #[error("referenced data not found (6A88)")]
    ReferencedDataNotFound,
    /// 6B 00: wrong parameters, for READ BINARY an offset outside the file.
    #[error("wrong parameters / offset outside the file (6B00)")]
    WrongOffset,
    /// 6C xx: wrong Le; the card says the exact length to ask for (xx = 00 means 256).
    #[error("wrong Le, exact length is {exact} (6Cxx)")]
    WrongLe {
        /// The length the card will deliver.
        exact: usize,
    },
    /// 6D 00: instruction not supported (a CCCD answers this to a master-file SELECT).
    #[error("instruction not supported (6D00)")]
    InsNotSupported,
    /// 6E 00: class not supported.
    #[error("class not supported (6E00)")]
    ClaNotSupported,
    /// Any other status word.
    #[error("card returned status {0}")]
    Other(StatusWord),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(c: CommandApdu) -> Vec<u8> {
        c.to_bytes().unwrap()
    }

    #[test]
    fn short_cases() {
        assert_eq!(enc(CommandApdu::new(0, 0x70, 0, 0)), [0, 0x70, 0, 0]);
        assert_eq!(
            enc(CommandApdu::new(0, 0x84, 0, 0).with_le(8)),
            [0, 0x84, 0, 0, 8]
        );
        assert_eq!(
            enc(CommandApdu::new(0, 0xB0, 0, 0).with_le(256)),
            [0, 0xB0, 0, 0, 0]
        );
        assert_eq!(
            enc(CommandApdu::new(0, 0xA4, 2, 0x0C).with_data([1, 0x1C])),
            [0, 0xA4, 2, 0x0C, 2, 1, 0x1C]
        );
        assert_eq!(
            enc(CommandApdu::new(0, 0x82, 0, 0)
                .with_data([9; 3])
                .with_le(0x28)),
            [0, 0x82, 0, 0, 3, 9, 9, 9, 0x28]
        );
    }

    #[test]
    fn extended_cases() {
        // 2E: Le > 256.
        assert_eq!(
            enc(CommandApdu::new(0, 0xB0, 0, 0).with_le(0x1000)),
            [0, 0xB0, 0, 0, 0, 0x10, 0]
        );
        assert_eq!(
            enc(CommandApdu::new(0, 0xB0, 0, 0).with_le(65_536)),
            [0, 0xB0, 0, 0, 0, 0, 0]
        );
        // 3E: Lc > 255.
        let c = enc(CommandApdu::new(0, 0xDA, 0, 0).with_data(vec![7; 300]));
        assert_eq!(&c[..7], &[0, 0xDA, 0, 0, 0, 0x01, 0x2C]);
        assert_eq!(c.len(), 7 + 300);
        // 4E: either field extended makes both extended.
        let c = enc(CommandApdu::new(0, 0xB1, 0, 0)
            .with_data([0x54, 1, 0])
            .with_le(1000));
        assert_eq!(c, [0, 0xB1, 0, 0, 0, 0, 3, 0x54, 1, 0, 0x03, 0xE8]);
        assert!(
            CommandApdu::new(0, 0xB1, 0, 0)
                .with_data([1])
                .with_le(257)
                .is_extended()
        );
        assert!(
            !CommandApdu::new(0, 0xB1, 0, 0)
                .with_data([1])
                .with_le(256)
                .is_extended()
        );
    }

    #[test]
    fn out_of_range_is_typed() {
        assert_eq!(
            CommandApdu::new(0, 0, 0, 0).with_le(0).to_bytes(),
            Err(ApduError::LeOutOfRange)
        );
        assert_eq!(
            CommandApdu::new(0, 0, 0, 0).with_le(65_537).to_bytes(),
            Err(ApduError::LeOutOfRange)
        );
        assert_eq!(
            CommandApdu::new(0, 0, 0, 0)
                .with_data(vec![0; 65_536])
                .to_bytes(),
            Err(ApduError::DataTooLong)
        );
    }

    #[test]
    fn response_parsing() {
        let r = ResponseApdu::parse(&[1, 2, 0x90, 0]).unwrap();
        assert_eq!(r.data, [1, 2]);
        assert!(r.sw.is_success());
        assert_eq!(
            ResponseApdu::parse(&[0x6A, 0x82]).unwrap().into_success(),
            Err(StatusError::FileNotFound)
        );
        assert_eq!(
            ResponseApdu::parse(&[0x90]),
            Err(ApduError::ResponseTooShort)
        );
        assert_eq!(ResponseApdu::parse(&[]), Err(ApduError::ResponseTooShort));
    }

    #[test]
    fn status_words_are_typed() {
        use StatusError::*;
        for (sw, e) in [
            (0x6982, SecurityStatusNotSatisfied),
            (0x6A82, FileNotFound),
            (0x6D00, InsNotSupported),
            (0x6700, WrongLength),
            (0x6C10, WrongLe { exact: 16 }),
            (0x6C00, WrongLe { exact: 256 }),
            (0x6B00, WrongOffset),
            (0x63C2, VerificationFailed { retries_left: 2 }),
            (0x6300, AuthenticationFailed),
            (0x6988, SmDataObjectsIncorrect),
            (0x6987, SmDataObjectsMissing),
            (0x6282, EndOfFile),
            (0x6F00, Other(StatusWord(0x6F00))),
        ] {
            assert_eq!(StatusWord(sw).check(), Err(e), "{sw:04X}");
        }
        assert_eq!(StatusWord(0x9000).check(), Ok(()));
        assert_eq!(StatusWord(0x6A82).to_string(), "6A82");
    }
}
