//! An in-process CCCD for tests: the card's side of the protocol, written apart from the
//! terminal's logic (it shares only the `crypto` primitives, which published vectors validate), so
//! that a test where both sides agree proves something.
//!
//! It behaves like the cards seen in the field: a master-file SELECT answers 6D00, EF.CardAccess is
//! selected by file id 011C (or read by short file id 1C), the eMRTD application by its AID, and the
//! LDS files are readable only over secure messaging after BAC or PACE. Faults and length limits
//! are configurable so every error path of the reader can be driven.
//!
//! PACE's card side lives in `virtual_card::pace` (owned by the PACE work) and plugs in through
//! [`CardPace`].

pub mod aa;
pub mod bac;
pub mod ca;
pub mod files;
pub mod pace;
pub mod sm;

use crate::crypto::SessionKeys;
use crate::transport::{Transport, TransportError};
use aa::VirtualAa;
use bac::{BacAnswer, CardBac};
use ca::VirtualCa;
pub use files::FileSystem;
use sm::CardSession;

/// The application files the card was asked for (selected, or read by short file id, whether
/// or not they exist), in order:
/// what tests inspect to show a file was or was not read. Clones share one log, so a test
/// keeps one while the card it was given to serves a reader elsewhere.
#[derive(Clone, Debug, Default)]
pub struct FileLog(std::sync::Arc<std::sync::Mutex<Vec<u16>>>);

impl FileLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The file ids asked for so far.
    pub fn files(&self) -> Vec<u16> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether data group `n` was asked for.
    pub fn touched_data_group(&self, n: u8) -> bool {
        self.files().contains(&(0x0100 | u16::from(n)))
    }

    fn record(&self, fid: u16) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(fid);
    }
}

/// The eMRTD application identifier.
const EMRTD_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01];

/// A command as the card sees it after parsing (and after removing secure messaging).
#[derive(Debug, Clone, Copy)]
pub struct PlainCommand<'a> {
    /// Class byte as received (SM bits included when it came protected).
    pub cla: u8,
    /// Instruction.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Plain command data.
    pub data: &'a [u8],
    /// Expected response length.
    pub le: Option<usize>,
}

/// The card's answer to a PACE command.
pub struct PaceOutcome {
    /// Response data.
    pub data: Vec<u8>,
    /// Status word.
    pub sw: u16,
    /// Session keys once the last GENERAL AUTHENTICATE succeeded: the card then opens secure
    /// messaging with a zero counter of the cipher's block size.
    pub session: Option<SessionKeys>,
}

/// The card's side of PACE, plugged into the virtual card. The card hands it MSE:Set AT
/// (INS 22) and GENERAL AUTHENTICATE (INS 86) commands received outside secure messaging.
pub trait CardPace {
    /// Processes one PACE command.
    fn process(&mut self, command: &PlainCommand<'_>) -> PaceOutcome;
}

/// Length limits of the card and the reader in front of it, to exercise every step-down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whether the reader passes extended APDUs (false: the transport answers `Rejected`).
    pub reader_extended: bool,
    /// Whether the card accepts extended APDUs (false: 67 00).
    pub card_extended: bool,
    /// Most plain bytes one READ BINARY returns in a short APDU.
    pub max_short_read: usize,
    /// Most plain bytes one READ BINARY returns in an extended APDU.
    pub max_extended_read: usize,
    /// Answer a too-large Le with 6C xx (the exact length) instead of 67 00, where xx can say it.
    pub exact_length_hint: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            reader_extended: true,
            card_extended: true,
            max_short_read: 256,
            max_extended_read: 65_536,
            exact_length_hint: false,
        }
    }
}

/// Faults to inject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Answer MSE:Set AT with 69 82, as one CCCD was seen to.
    pub refuse_pace: bool,
    /// Corrupt the MAC of the protected response to the command with this number (1-based count
    /// of commands that reached the card).
    pub corrupt_mac_at_command: Option<u64>,
    /// The card leaves the field after this many commands.
    pub remove_after_commands: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Df {
    Master,
    Application,
}

/// The virtual card. It is the [`Transport`] itself: a command goes in, the card's response (or a
/// reader-level error) comes out.
pub struct VirtualCard {
    files: FileSystem,
    bac: Option<CardBac>,
    pace: Option<Box<dyn CardPace>>,
    aa: Option<VirtualAa>,
    ca: Option<VirtualCa>,
    /// Keys agreed by Chip Authentication, in force after the answer that agreed them.
    next_session: Option<CardSession>,
    limits: Limits,
    faults: Faults,
    df: Df,
    current_ef: Option<u16>,
    session: Option<CardSession>,
    commands: u64,
    log: Option<FileLog>,
}

impl VirtualCard {
    /// A card holding `files`, with neither BAC nor PACE until configured.
    pub fn new(files: FileSystem) -> Self {
        VirtualCard {
            files,
            bac: None,
            pace: None,
            aa: None,
            ca: None,
            next_session: None,
            limits: Limits::default(),
            faults: Faults::default(),
            df: Df::Master,
            current_ef: None,
            session: None,
            commands: 0,
            log: None,
        }
    }

    /// Records every application file asked for in `log`.
    pub fn with_file_log(mut self, log: FileLog) -> Self {
        self.log = Some(log);
        self
    }

    fn log_file(&self, fid: u16) {
        if self.df == Df::Application
            && let Some(log) = &self.log
        {
            log.record(fid);
        }
    }

    /// Enables BAC with the MRZ information printed on the card (document number, birth date and
    /// expiry date, each with its check digit).
    pub fn with_bac(mut self, mrz_information: &str) -> Self {
        self.bac = Some(CardBac::new(mrz_information));
        self
    }

    /// Enables PACE with the given card side.
    pub fn with_pace(mut self, pace: Box<dyn CardPace>) -> Self {
        self.pace = Some(pace);
        self
    }

    /// Enables Active Authentication (INTERNAL AUTHENTICATE) with this key. Its DG15 and DG14
    /// are not added to the files: tests decide what the card serves.
    pub fn with_active_authentication(mut self, aa: VirtualAa) -> Self {
        self.aa = Some(aa);
        self
    }

    /// Enables Chip Authentication with this static key. Its DG14 is not added to the files.
    pub fn with_chip_authentication(mut self, ca: VirtualCa) -> Self {
        self.ca = Some(ca);
        self
    }

    /// Sets reader and card length limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets faults.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Commands that reached the card so far.
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// Whether a secure-messaging session is open on the card's side.
    pub fn secure_session(&self) -> bool {
        self.session.is_some()
    }

    fn respond(&mut self, apdu: &[u8]) -> Vec<u8> {
        let Some(parsed) = parse(apdu) else {
            return sw(0x6700);
        };
        if parsed.extended && !self.limits.card_extended {
            return sw(0x6700);
        }
        let header = [parsed.cla, parsed.ins, parsed.p1, parsed.p2];
        let protected = parsed.cla & 0x0C == 0x0C;
        if !protected {
            // A plain command ends any secure-messaging session.
            self.session = None;
            let cmd = PlainCommand {
                cla: parsed.cla,
                ins: parsed.ins,
                p1: parsed.p1,
                p2: parsed.p2,
                data: parsed.data,
                le: parsed.le,
            };
            let (data, status) = self.execute(&cmd, parsed.extended);
            let mut out = data;
            out.extend_from_slice(&status.to_be_bytes());
            return out;
        }
        let Some(session) = self.session.as_mut() else {
            return sw(0x6987);
        };
        let Ok(unwrapped) = session.unwrap_command(header, parsed.data) else {
            self.session = None;
            return sw(0x6988);
        };
        let cmd = PlainCommand {
            cla: parsed.cla,
            ins: parsed.ins,
            p1: parsed.p1,
            p2: parsed.p2,
            data: &unwrapped.data,
            le: unwrapped.le,
        };
        let (data, status) = self.execute(&cmd, parsed.extended);
        let corrupt = self.faults.corrupt_mac_at_command == Some(self.commands);
        let odd = parsed.ins & 1 == 1;
        let Some(session) = self.session.as_mut() else {
            // The command itself ended the session (cannot happen today; stay safe).
            return sw(status);
        };
        // The protected response must fit the Le the APDU could carry.
        let limit = if parsed.extended { 65_536 } else { 256 };
        let (data, status) = if session.wrapped_len(data.len(), odd) > limit {
            (Vec::new(), 0x6700)
        } else {
            (data, status)
        };
        let mut out = session.wrap_response(&data, status, odd, corrupt);
        out.extend_from_slice(&status.to_be_bytes());
        // Keys agreed by this command apply from the next one, and only if it succeeded.
        if let Some(next) = self.next_session.take()
            && status == 0x9000
        {
            self.session = Some(next);
        }
        out
    }

    /// Executes a plain command; returns response data and status word.
    fn execute(&mut self, cmd: &PlainCommand<'_>, extended: bool) -> (Vec<u8>, u16) {
        match cmd.ins {
            0xA4 => (Vec::new(), self.select(cmd)),
            0xB0 | 0xB1 => self.read_binary(cmd, extended),
            0x84 => self.get_challenge(cmd),
            0x82 => self.external_authenticate(cmd),
            // Under secure messaging these are Chip Authentication's; in plain, PACE's.
            0x22 | 0x86 if self.ca.is_some() && self.session.is_some() => {
                self.chip_authentication(cmd)
            }
            0x22 | 0x86 => self.pace(cmd),
            0x88 => self.internal_authenticate(cmd),
            _ => (Vec::new(), 0x6D00),
        }
    }

    fn select(&mut self, cmd: &PlainCommand<'_>) -> u16 {
        match cmd.p1 {
            // Master file by id, or no data: this card does not know the instruction that way.
            0x00 => 0x6D00,
            0x04 => {
                if cmd.data == EMRTD_AID {
                    self.df = Df::Application;
                    self.current_ef = None;
                    0x9000
                } else {
                    0x6A82
                }
            }
            0x02 => {
                let [a, b] = cmd.data else {
                    return 0x6A80;
                };
                let fid = u16::from_be_bytes([*a, *b]);
                self.log_file(fid);
                let exists = match self.df {
                    Df::Master => self.files.master_file(fid).is_some(),
                    Df::Application => self.files.application_file(fid).is_some(),
                };
                if !exists {
                    return 0x6A82;
                }
                if self.df == Df::Application && self.session.is_none() {
                    return 0x6982;
                }
                self.current_ef = Some(fid);
                0x9000
            }
            _ => 0x6A86,
        }
    }

    fn file(&self, fid: u16) -> Option<&[u8]> {
        match self.df {
            Df::Master => self.files.master_file(fid),
            Df::Application => self.files.application_file(fid),
        }
    }

    fn read_binary(&mut self, cmd: &PlainCommand<'_>, extended: bool) -> (Vec<u8>, u16) {
        let odd = cmd.ins == 0xB1;
        // Which file.
        let sfi = if odd {
            (cmd.p1 == 0 && cmd.p2 & 0xE0 == 0 && cmd.p2 != 0).then_some(cmd.p2 & 0x1F)
        } else {
            (cmd.p1 & 0x80 != 0).then_some(cmd.p1 & 0x1F)
        };
        if let Some(sfi) = sfi {
            if let Some(fid) = files::fid_of_sfi(sfi) {
                self.log_file(fid);
            }
            let Some(fid) = files::fid_of_sfi(sfi).filter(|fid| self.file(*fid).is_some()) else {
                return (Vec::new(), 0x6A82);
            };
            if self.df == Df::Application && self.session.is_none() {
                return (Vec::new(), 0x6982);
            }
            self.current_ef = Some(fid);
        } else if odd && (cmd.p1, cmd.p2) != (0, 0) {
            return (Vec::new(), 0x6A86);
        }
        let Some(fid) = self.current_ef else {
            return (Vec::new(), 0x6986);
        };
        if self.df == Df::Application && self.session.is_none() {
            return (Vec::new(), 0x6982);
        }
        // Where.
        let offset = if odd {
            match sm::split(cmd.data) {
                Some((0x54, v, _, [])) if !v.is_empty() && v.len() <= 3 => {
                    v.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b))
                }
                _ => return (Vec::new(), 0x6A80),
            }
        } else if sfi.is_some() {
            usize::from(cmd.p2)
        } else {
            usize::from(cmd.p1 & 0x7F) << 8 | usize::from(cmd.p2)
        };
        // How much.
        let Some(le) = cmd.le else {
            return (Vec::new(), 0x6700);
        };
        let limit = if extended {
            self.limits.max_extended_read
        } else {
            self.limits.max_short_read
        };
        if le > limit {
            if self.limits.exact_length_hint && limit <= 256 {
                return (Vec::new(), 0x6C00 | (limit % 256) as u16);
            }
            return (Vec::new(), 0x6700);
        }
        let content = self.file(fid).unwrap_or(&[]);
        if offset >= content.len() {
            return (Vec::new(), 0x6B00);
        }
        let available = content.len() - offset;
        if odd {
            // Data comes inside DO53; Le bounds the whole object.
            let room = le.saturating_sub(if le > 0x103 {
                4
            } else if le > 0x82 {
                3
            } else {
                2
            });
            if room == 0 {
                return (Vec::new(), 0x6700);
            }
            let n = room.min(available);
            let mut out = Vec::new();
            sm::put(&mut out, 0x53, &content[offset..offset + n]);
            (out, if n < room { 0x6282 } else { 0x9000 })
        } else {
            let n = le.min(available);
            (
                content[offset..offset + n].to_vec(),
                if n < le { 0x6282 } else { 0x9000 },
            )
        }
    }

    fn get_challenge(&mut self, cmd: &PlainCommand<'_>) -> (Vec<u8>, u16) {
        match (&mut self.bac, self.df, cmd.le) {
            (None, _, _) => (Vec::new(), 0x6D00),
            (Some(_), Df::Master, _) => (Vec::new(), 0x6985),
            (Some(bac), Df::Application, Some(8)) => (bac.challenge().to_vec(), 0x9000),
            (Some(_), Df::Application, _) => (Vec::new(), 0x6700),
        }
    }

    fn external_authenticate(&mut self, cmd: &PlainCommand<'_>) -> (Vec<u8>, u16) {
        let Some(bac) = self.bac.as_mut() else {
            return (Vec::new(), 0x6D00);
        };
        match bac.external_authenticate(cmd.data) {
            BacAnswer::Authenticated {
                response,
                keys,
                ssc,
            } => {
                self.session = Some(CardSession::new(keys, ssc));
                (response, 0x9000)
            }
            BacAnswer::Refused => (Vec::new(), 0x6300),
            BacAnswer::Error(status) => (Vec::new(), status),
        }
    }

    /// INTERNAL AUTHENTICATE: an 8-byte challenge, signed only inside the application and under
    /// secure messaging.
    fn internal_authenticate(&mut self, cmd: &PlainCommand<'_>) -> (Vec<u8>, u16) {
        let Some(aa) = self.aa.as_ref() else {
            return (Vec::new(), 0x6D00);
        };
        if (cmd.p1, cmd.p2) != (0, 0) {
            return (Vec::new(), 0x6A86);
        }
        if self.df != Df::Application || self.session.is_none() {
            return (Vec::new(), 0x6982);
        }
        if cmd.data.len() != 8 {
            return (Vec::new(), 0x6700);
        }
        match aa.sign(cmd.data) {
            Ok(signature) => (signature, 0x9000),
            Err(status) => (Vec::new(), status),
        }
    }

    fn chip_authentication(&mut self, cmd: &PlainCommand<'_>) -> (Vec<u8>, u16) {
        let Some(ca) = self.ca.as_mut() else {
            return (Vec::new(), 0x6D00);
        };
        let (data, status, keys) = ca.process(cmd);
        if let Some(keys) = keys {
            let ssc = vec![0; keys.cipher.block_size()];
            self.next_session = Some(CardSession::new(keys, ssc));
        }
        (data, status)
    }

    fn pace(&mut self, cmd: &PlainCommand<'_>) -> (Vec<u8>, u16) {
        if self.faults.refuse_pace {
            return (Vec::new(), 0x6982);
        }
        let Some(pace) = self.pace.as_mut() else {
            return (Vec::new(), 0x6D00);
        };
        let outcome = pace.process(cmd);
        if let Some(keys) = outcome.session {
            let ssc = vec![0; keys.cipher.block_size()];
            self.session = Some(CardSession::new(keys, ssc));
        }
        (outcome.data, outcome.sw)
    }
}

impl Transport for VirtualCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if !self.limits.reader_extended && parse(command).is_some_and(|p| p.extended) {
            return Err(TransportError::Rejected);
        }
        if self
            .faults
            .remove_after_commands
            .is_some_and(|n| self.commands >= n)
        {
            return Err(TransportError::CardRemoved);
        }
        self.commands += 1;
        Ok(self.respond(command))
    }
}

struct Parsed<'a> {
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: &'a [u8],
    le: Option<usize>,
    extended: bool,
}

/// The card's own reading of an APDU (ISO/IEC 7816-4 cases 1, 2S/E, 3S/E, 4S/E).
fn parse(apdu: &[u8]) -> Option<Parsed<'_>> {
    let [cla, ins, p1, p2, body @ ..] = apdu else {
        return None;
    };
    let short_le = |b: u8| if b == 0 { 256 } else { usize::from(b) };
    let ext_le = |a: u8, b: u8| match u16::from_be_bytes([a, b]) {
        0 => 65_536,
        n => usize::from(n),
    };
    let (data, le, extended): (&[u8], Option<usize>, bool) = match body {
        [] => (&[], None, false),
        [le] => (&[], Some(short_le(*le)), false),
        [0, a, b] => (&[], Some(ext_le(*a, *b)), true),
        [0, a, b, rest @ ..] => {
            let lc = usize::from(u16::from_be_bytes([*a, *b]));
            if lc == 0 {
                return None;
            }
            match rest.len().checked_sub(lc)? {
                0 => (rest, None, true),
                2 => (&rest[..lc], Some(ext_le(rest[lc], rest[lc + 1])), true),
                _ => return None,
            }
        }
        [lc, rest @ ..] => {
            let lc = usize::from(*lc);
            match rest.len().checked_sub(lc)? {
                0 => (rest, None, false),
                1 => (&rest[..lc], Some(short_le(rest[lc])), false),
                _ => return None,
            }
        }
    };
    Some(Parsed {
        cla: *cla,
        ins: *ins,
        p1: *p1,
        p2: *p2,
        data,
        le,
        extended,
    })
}

fn sw(status: u16) -> Vec<u8> {
    status.to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_parses_every_case() {
        let p = parse(&[0, 0xA4, 2, 0x0C, 2, 1, 0x1C]).unwrap();
        assert_eq!((p.data, p.le, p.extended), (&[1u8, 0x1C][..], None, false));
        let p = parse(&[0, 0xB0, 0, 0, 0]).unwrap();
        assert_eq!((p.le, p.extended), (Some(256), false));
        let p = parse(&[0, 0xB0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!((p.le, p.extended), (Some(65_536), true));
        let p = parse(&[0, 0x82, 0, 0, 0, 0, 1, 9, 0x10, 0]).unwrap();
        assert_eq!((p.data, p.le, p.extended), (&[9u8][..], Some(4096), true));
        assert!(parse(&[0, 0xB0, 0]).is_none());
        assert!(parse(&[0, 0xA4, 2, 0x0C, 3, 1]).is_none());
    }

    #[test]
    fn master_file_select_answers_6d00_and_card_access_is_plain() {
        let mut card = VirtualCard::new(FileSystem::new().with_card_access(vec![0x31, 0x01, 0x00]));
        assert_eq!(
            card.transmit(&[0, 0xA4, 0, 0x0C, 2, 0x3F, 0]).unwrap(),
            [0x6D, 0]
        );
        assert_eq!(card.transmit(&[0, 0xA4, 0, 0x0C]).unwrap(), [0x6D, 0]);
        assert_eq!(
            card.transmit(&[0, 0xA4, 2, 0x0C, 2, 1, 0x1C]).unwrap(),
            [0x90, 0]
        );
        assert_eq!(
            card.transmit(&[0, 0xB0, 0, 0, 0]).unwrap(),
            [0x31, 1, 0, 0x62, 0x82]
        );
        assert_eq!(
            card.transmit(&[0, 0xB0, 0x9C, 1, 2]).unwrap(),
            [1, 0, 0x90, 0]
        );
        // Application files need secure messaging.
        let aid = [0, 0xA4, 4, 0x0C, 7, 0xA0, 0, 0, 2, 0x47, 0x10, 1];
        assert_eq!(card.transmit(&aid).unwrap(), [0x90, 0]);
        assert_eq!(card.transmit(&[0, 0xB0, 0x81, 0, 4]).unwrap(), [0x6A, 0x82]);
    }
}
