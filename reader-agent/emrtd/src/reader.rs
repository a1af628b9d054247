//! The terminal's flow over a [`Transport`]: the CCCD's selection sequence, opening a secure
//! channel, and reading files in the largest chunk the reader and card accept.
//!
//! Chunking: the reader starts with extended-length reads and steps down on 67 00 (wrong length),
//! on a transport `Rejected` (the reader cannot send extended APDUs: go short at once), and takes
//! the length a 6C xx names. The size that worked is kept for the rest of the session, so the
//! price of finding it is paid once per card, not once per file. Offsets above 0x7FFF use the
//! odd-instruction READ BINARY (B1) with the offset in DO54.

use crate::apdu::{ApduError, CommandApdu, ResponseApdu, StatusError};
use crate::bac::{self, BacError, BacKey};
use crate::sm::{SecureChannel, SmError};
use crate::stats::{Phase, ReadStats};
use crate::transport::{Transport, TransportError};

/// The eMRTD application identifier (ICAO 9303-10).
pub const EMRTD_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01];

/// File id of EF.CardAccess.
pub const CARD_ACCESS_FID: u16 = 0x011C;

/// Largest file the reader accepts. The largest CCCD file is DG2 (a JPEG face, tens of KB);
/// 256 KiB leaves room for large images while bounding what a hostile length field can make the
/// reader fetch and hold.
pub const MAX_FILE_LEN: usize = 256 * 1024;

/// Extended-length chunk sizes tried in order (plain bytes per READ BINARY).
const EXTENDED_CHUNKS: [usize; 4] = [0xFF00, 0x4000, 0x1000, 0x0400];
/// Short chunk sizes below the channel's largest short read.
const SHORT_CHUNKS: [usize; 7] = [160, 128, 64, 32, 16, 8, 1];

/// Highest offset a plain READ BINARY (B0) can address.
const MAX_EVEN_OFFSET: usize = 0x7FFF;

/// Why reading failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The card or reader failed (card removed, timeout).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The card answered with an error status.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// Secure messaging refused a response (a wrong MAC among others); the channel is closed.
    #[error(transparent)]
    Sm(#[from] SmError),
    /// BAC failed.
    #[error(transparent)]
    Bac(#[from] BacError),
    /// A command could not be encoded.
    #[error(transparent)]
    Apdu(#[from] ApduError),
    /// The file's length field is beyond [`MAX_FILE_LEN`].
    #[error("file declares {declared} bytes, more than the {MAX_FILE_LEN} accepted")]
    FileTooLarge {
        /// Length the file's header claims.
        declared: usize,
    },
    /// The file does not start with a valid BER-TLV header, or a response has the wrong shape.
    #[error("malformed file or read response")]
    Malformed,
    /// The card ended the file before the length its header declares.
    #[error("file shorter than its header declares")]
    Truncated,
    /// No chunk size down to one byte was accepted.
    #[error("no read length accepted by card and reader")]
    NoWorkingLength,
    /// A secure channel is needed and none is open (or it was closed after an error).
    #[error("no secure channel open")]
    NoSecureChannel,
}

/// Which file a read targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// By short file id (selects it with the first READ BINARY).
    Sfi(u8),
    /// The currently selected EF.
    Current,
}

/// Reads a CCCD over a transport. It owns the transport, the secure channel once open, the
/// chunk size learnt so far and the per-phase statistics.
pub struct Reader<T: Transport> {
    transport: T,
    channel: Option<SecureChannel>,
    /// Whether extended APDUs still seem possible.
    extended: bool,
    /// Current chunk ceiling (plain bytes), lowered by step-downs.
    chunk: usize,
    stats: ReadStats,
}

impl<T: Transport> Reader<T> {
    /// A reader that will try extended length first.
    pub fn new(transport: T) -> Self {
        Reader {
            transport,
            channel: None,
            extended: true,
            chunk: EXTENDED_CHUNKS[0],
            stats: ReadStats::new(),
        }
    }

    /// Statistics so far.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// Mutable statistics, for protocol steps run outside the reader (e.g. authentication).
    pub fn stats_mut(&mut self) -> &mut ReadStats {
        &mut self.stats
    }

    /// The transport, e.g. to run a protocol step the reader does not know.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Gives the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// The chunk size (plain bytes per READ BINARY) learnt so far, and whether extended
    /// length is still in use.
    pub fn chunk_size(&self) -> (usize, bool) {
        (self.effective_chunk(), self.extended)
    }

    /// Whether a secure channel is open.
    pub fn is_secure(&self) -> bool {
        self.channel.is_some()
    }

    /// Uses a channel opened elsewhere (PACE).
    pub fn set_channel(&mut self, channel: SecureChannel) {
        self.channel = Some(channel);
    }

    /// Drops the secure channel, e.g. after Chip Authentication's keys were not confirmed.
    pub fn close_channel(&mut self) {
        self.channel = None;
    }

    /// Selects EF.CardAccess by file id (no master-file select: a CCCD answers that 6D00) and reads
    /// it in plain. `None` when the card has no such file.
    pub fn read_card_access(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        let select =
            CommandApdu::new(0x00, 0xA4, 0x02, 0x0C).with_data(CARD_ACCESS_FID.to_be_bytes());
        match self.exchange(&select, Phase::Select)?.sw.check() {
            Ok(()) => {}
            Err(StatusError::FileNotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        self.read(Target::Current, Phase::CardAccess).map(Some)
    }

    /// Selects the eMRTD application by its AID (P1=04, P2=0C), protected if a channel is open.
    pub fn select_application(&mut self) -> Result<(), ReadError> {
        let select = CommandApdu::new(0x00, 0xA4, 0x04, 0x0C).with_data(EMRTD_AID);
        Ok(self.exchange(&select, Phase::Select)?.sw.check()?)
    }

    /// Runs BAC (the application must be selected) and keeps the channel.
    pub fn establish_bac(&mut self, key: &BacKey) -> Result<(), ReadError> {
        self.channel = None;
        let channel = bac::establish(&mut self.transport, key, &mut self.stats)?;
        self.channel = Some(channel);
        Ok(())
    }

    /// Opens the secure channel with a protocol run outside the reader and keeps it, e.g. PACE:
    /// `reader.establish_with(|t, stats| pace::establish(t, &password, card_access, stats))`.
    /// The error comes back untouched, so the caller can fall back to BAC on a refusal (6982).
    pub fn establish_with<E>(
        &mut self,
        open: impl FnOnce(&mut T, &mut ReadStats) -> Result<SecureChannel, E>,
    ) -> Result<(), E> {
        self.channel = None;
        let channel = open(&mut self.transport, &mut self.stats)?;
        self.channel = Some(channel);
        Ok(())
    }

    /// Reads a whole file by short file id (0x1E EF.COM, 0x1D EF.SOD, 0x01 DG1, ...) over the
    /// secure channel. Its length comes from its TLV header.
    pub fn read_file(&mut self, sfi: u8) -> Result<Vec<u8>, ReadError> {
        if self.channel.is_none() {
            return Err(ReadError::NoSecureChannel);
        }
        self.read(Target::Sfi(sfi & 0x1F), Phase::File(sfi & 0x1F))
    }

    /// Sends a command (protected when a channel is open) and counts it under `phase`.
    pub fn exchange(
        &mut self,
        command: &CommandApdu,
        phase: Phase,
    ) -> Result<ResponseApdu, ReadError> {
        let Some(channel) = self.channel.as_mut() else {
            let raw = self
                .stats
                .transmit(&mut self.transport, phase, &command.to_bytes()?)?;
            return Ok(ResponseApdu::parse(&raw)?);
        };
        let protected = channel.protect(command)?.to_bytes()?;
        match self.stats.transmit(&mut self.transport, phase, &protected) {
            Ok(raw) => match channel.unprotect(&raw) {
                Ok(response) => Ok(response),
                Err(e) => {
                    // After a forged or broken response nothing more is trusted on this channel.
                    self.channel = None;
                    Err(e.into())
                }
            },
            Err(TransportError::Rejected) => {
                channel.unsent();
                Err(TransportError::Rejected.into())
            }
            Err(e) => {
                self.channel = None;
                Err(e.into())
            }
        }
    }

    fn short_max(&self) -> usize {
        self.channel
            .as_ref()
            .map_or(256, SecureChannel::max_short_le)
    }

    fn effective_chunk(&self) -> usize {
        if self.extended {
            self.chunk
        } else {
            self.chunk.min(self.short_max())
        }
    }

    /// Next smaller chunk after a length error; `false` when none is left.
    fn step_down(&mut self) -> bool {
        let current = self.effective_chunk();
        let short_max = self.short_max();
        let next = EXTENDED_CHUNKS
            .iter()
            .copied()
            .filter(|_| self.extended)
            .chain(std::iter::once(short_max))
            .chain(SHORT_CHUNKS)
            .find(|&c| c < current);
        match next {
            Some(c) => {
                if c <= short_max {
                    self.extended = false;
                }
                self.chunk = c;
                true
            }
            None => false,
        }
    }

    fn read(&mut self, target: Target, phase: Phase) -> Result<Vec<u8>, ReadError> {
        let mut file = Vec::new();
        let mut total: Option<usize> = None;
        loop {
            if let Some(total) = total
                && file.len() >= total
            {
                file.truncate(total);
                return Ok(file);
            }
            let want = match total {
                Some(total) => total - file.len(),
                None => MAX_FILE_LEN,
            };
            let target = if file.is_empty() {
                target
            } else {
                Target::Current
            };
            let (chunk, end_of_file) =
                self.read_chunk(target, file.len(), want, total.is_some(), phase)?;
            if chunk.len() > want {
                return Err(ReadError::Malformed);
            }
            if chunk.is_empty() {
                return Err(ReadError::Truncated);
            }
            file.extend_from_slice(&chunk);
            if total.is_none() {
                total = tlv_total_len(&file)?;
                if let Some(declared) = total
                    && declared > MAX_FILE_LEN
                {
                    return Err(ReadError::FileTooLarge { declared });
                }
            }
            if end_of_file && total.is_none_or(|t| file.len() < t) {
                return Err(ReadError::Truncated);
            }
        }
    }

    /// One READ BINARY of up to `want` bytes at `offset` (`known`: the file's length is known, so
    /// `want` bytes certainly remain), stepping down as needed. Returns the data and whether the
    /// card reported the end of the file.
    fn read_chunk(
        &mut self,
        target: Target,
        offset: usize,
        want: usize,
        known: bool,
        phase: Phase,
    ) -> Result<(Vec<u8>, bool), ReadError> {
        let mut exact: Option<usize> = None;
        for _ in 0..32 {
            let odd = offset > MAX_EVEN_OFFSET;
            let le = exact.unwrap_or_else(|| {
                self.effective_chunk()
                    .min(if odd { want + 4 } else { want })
            });
            let command = read_binary(target, offset, le, odd)?;
            let response = match self.exchange(&command, phase) {
                Ok(response) => response,
                Err(ReadError::Transport(TransportError::Rejected)) if self.extended => {
                    // The reader cannot carry extended APDUs: short from now on.
                    self.extended = false;
                    self.chunk = self.chunk.min(self.short_max());
                    exact = None;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let end_of_file = match response.sw.check() {
                Ok(()) => false,
                Err(StatusError::EndOfFile) => true,
                Err(StatusError::WrongLength) => {
                    exact = None;
                    if !self.step_down() {
                        return Err(ReadError::NoWorkingLength);
                    }
                    continue;
                }
                Err(StatusError::WrongLe { exact: n }) if n < le && exact.is_none() => {
                    // The card names the bytes it will deliver (ISO: those available). Where the
                    // file certainly has more left, it is the card's limit: keep it for the
                    // session; on a first read it may just be a short file.
                    if known && want >= le {
                        self.chunk = n;
                        self.extended = n > self.short_max();
                    }
                    exact = Some(n);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let data = if odd {
                unwrap_do53(&response.data)?
            } else {
                response.data
            };
            return Ok((data, end_of_file));
        }
        Err(ReadError::NoWorkingLength)
    }
}

/// READ BINARY: B0 with a short file id (first read, offset <= 255) or a 15-bit offset in the
/// current EF; B1 with the offset in DO54 beyond 0x7FFF.
fn read_binary(
    target: Target,
    offset: usize,
    le: usize,
    odd: bool,
) -> Result<CommandApdu, ReadError> {
    if odd {
        let bytes = (offset as u32).to_be_bytes();
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(3);
        let mut data = vec![0x54, (4 - start) as u8];
        data.extend_from_slice(&bytes[start..]);
        let p2 = match target {
            Target::Sfi(sfi) => sfi,
            Target::Current => 0,
        };
        return Ok(CommandApdu::new(0x00, 0xB1, 0x00, p2)
            .with_data(data)
            .with_le(le));
    }
    let (p1, p2) = match target {
        Target::Sfi(sfi) if offset <= 0xFF => (0x80 | sfi, offset as u8),
        Target::Sfi(_) => return Err(ReadError::Malformed),
        Target::Current => ((offset >> 8) as u8 & 0x7F, offset as u8),
    };
    Ok(CommandApdu::new(0x00, 0xB0, p1, p2).with_le(le))
}

/// The value of the DO53 an odd READ BINARY answers with.
fn unwrap_do53(data: &[u8]) -> Result<Vec<u8>, ReadError> {
    let (tag_len, value_len, header_len) = match tlv_header(data)? {
        Some(h) => h,
        None => return Err(ReadError::Malformed),
    };
    if data.first() != Some(&0x53) || tag_len != 1 || header_len + value_len != data.len() {
        return Err(ReadError::Malformed);
    }
    Ok(data[header_len..].to_vec())
}

/// Total length (header + value) of the BER-TLV object at the start of `data`; `None` when more
/// bytes are needed to know.
fn tlv_total_len(data: &[u8]) -> Result<Option<usize>, ReadError> {
    Ok(tlv_header(data)?.map(|(_, value, header)| header + value))
}

/// (tag length, value length, header length) of a BER-TLV header; `None` if `data` ends inside it.
fn tlv_header(data: &[u8]) -> Result<Option<(usize, usize, usize)>, ReadError> {
    let Some(&first) = data.first() else {
        return Ok(None);
    };
    if first == 0x00 || first == 0xFF {
        return Err(ReadError::Malformed);
    }
    let mut i = 1;
    if first & 0x1F == 0x1F {
        loop {
            let Some(&b) = data.get(i) else {
                return Ok(None);
            };
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            if i > 3 {
                return Err(ReadError::Malformed);
            }
        }
    }
    let tag_len = i;
    let Some(&l) = data.get(i) else {
        return Ok(None);
    };
    i += 1;
    let value_len = match l {
        0..=0x7F => usize::from(l),
        0x81..=0x83 => {
            let n = usize::from(l & 0x7F);
            let Some(bytes) = data.get(i..i + n) else {
                return Ok(None);
            };
            i += n;
            bytes
                .iter()
                .fold(0usize, |acc, b| acc << 8 | usize::from(*b))
        }
        // Indefinite or longer length forms are not valid in LDS files.
        _ => return Err(ReadError::Malformed),
    };
    Ok(Some((tag_len, value_len, i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_headers() {
        assert_eq!(tlv_total_len(&[0x60, 0x14]).unwrap(), Some(0x16));
        assert_eq!(
            tlv_total_len(&[0x77, 0x82, 0x01, 0x00]).unwrap(),
            Some(0x104)
        );
        assert_eq!(tlv_total_len(&[0x5F, 0x1F, 0x02]).unwrap(), Some(5));
        assert_eq!(tlv_total_len(&[0x77, 0x82, 0x01]).unwrap(), None);
        assert_eq!(tlv_total_len(&[0x5F]).unwrap(), None);
        assert_eq!(tlv_total_len(&[]).unwrap(), None);
        assert_eq!(
            tlv_total_len(&[0x75, 0x83, 0xFF, 0xFF, 0xFF]).unwrap(),
            Some(0xFFFFFF + 5)
        );
        assert_eq!(
            tlv_total_len(&[0x75, 0x84, 1, 2, 3, 4]),
            Err(ReadError::Malformed)
        );
        assert_eq!(tlv_total_len(&[0x75, 0x80]), Err(ReadError::Malformed));
        assert_eq!(tlv_total_len(&[0x00, 0x01]), Err(ReadError::Malformed));
        assert_eq!(
            tlv_total_len(&[0x5F, 0x80, 0x80, 0x80, 0x01]),
            Err(ReadError::Malformed)
        );
    }

    #[test]
    fn read_binary_encodings() {
        let c = read_binary(Target::Sfi(0x1D), 0, 0xDF, false).unwrap();
        assert_eq!(c.to_bytes().unwrap(), [0, 0xB0, 0x9D, 0, 0xDF]);
        let c = read_binary(Target::Current, 0x7FFF, 16, false).unwrap();
        assert_eq!(c.to_bytes().unwrap(), [0, 0xB0, 0x7F, 0xFF, 16]);
        let c = read_binary(Target::Current, 0x8000, 20, true).unwrap();
        assert_eq!(
            c.to_bytes().unwrap(),
            [0, 0xB1, 0, 0, 4, 0x54, 2, 0x80, 0, 20]
        );
        let c = read_binary(Target::Current, 0x1_0000, 20, true).unwrap();
        assert_eq!(
            c.to_bytes().unwrap(),
            [0, 0xB1, 0, 0, 5, 0x54, 3, 1, 0, 0, 20]
        );
        assert_eq!(unwrap_do53(&[0x53, 2, 7, 8]).unwrap(), [7, 8]);
        assert!(unwrap_do53(&[0x53, 3, 7, 8]).is_err());
        assert!(unwrap_do53(&[0x54, 2, 7, 8]).is_err());
    }
}
