//! APDU and byte counts per phase of a card read, so the agent can report what a read cost and
//! compare it with the protocol's minimum.

use std::fmt;

use crate::transport::{Transport, TransportError};

/// A phase of reading a card.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// SELECT commands (application, files by file id).
    Select,
    /// Reading EF.CardAccess.
    CardAccess,
    /// PACE (MSE:Set AT and the GENERAL AUTHENTICATE chain).
    Pace,
    /// BAC (GET CHALLENGE, EXTERNAL AUTHENTICATE).
    Bac,
    /// Reading the file with this short file identifier (0x1D EF.SOD, 0x01 DG1, 0x0D DG13, ...).
    File(u8),
    /// Chip or Active Authentication.
    Authentication,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Phase::Select => "select".to_owned(),
            Phase::CardAccess => "card-access".to_owned(),
            Phase::Pace => "pace".to_owned(),
            Phase::Bac => "bac".to_owned(),
            Phase::File(0x1D) => "EF.SOD".to_owned(),
            Phase::File(0x1E) => "EF.COM".to_owned(),
            Phase::File(sfi) => format!("DG{sfi}"),
            Phase::Authentication => "authentication".to_owned(),
        };
        // `pad` honours width and alignment, so tables line up.
        f.pad(&name)
    }
}

/// Counts of one phase. Bytes are whole APDUs as they crossed the transport (headers, SM objects
/// and status words included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseStats {
    /// Command APDUs sent (including ones the reader refused).
    pub apdus: u32,
    /// Command bytes sent.
    pub bytes_sent: u64,
    /// Response bytes received.
    pub bytes_received: u64,
}

/// Per-phase counts, in the order the phases first occurred.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    phases: Vec<(Phase, PhaseStats)>,
}

impl ReadStats {
    /// Empty counts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one exchange to `phase`.
    pub fn record(&mut self, phase: Phase, sent: usize, received: usize) {
        let index = match self.phases.iter().position(|(p, _)| *p == phase) {
            Some(index) => index,
            None => {
                self.phases.push((phase, PhaseStats::default()));
                self.phases.len() - 1
            }
        };
        let entry = &mut self.phases[index].1;
        entry.apdus += 1;
        entry.bytes_sent += sent as u64;
        entry.bytes_received += received as u64;
    }

    /// Sends `command` over `transport` and counts it under `phase` (a refused or failed command
    /// counts as sent with nothing received).
    pub fn transmit<T: Transport + ?Sized>(
        &mut self,
        transport: &mut T,
        phase: Phase,
        command: &[u8],
    ) -> Result<Vec<u8>, TransportError> {
        let result = transport.transmit(command);
        let received = result.as_ref().map_or(0, Vec::len);
        self.record(phase, command.len(), received);
        result
    }

    /// Counts of one phase (zero if it never occurred).
    pub fn phase(&self, phase: Phase) -> PhaseStats {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, s)| *s)
            .unwrap_or_default()
    }

    /// All phases in order of first occurrence.
    pub fn phases(&self) -> &[(Phase, PhaseStats)] {
        &self.phases
    }

    /// Sum over all phases.
    pub fn total(&self) -> PhaseStats {
        self.phases
            .iter()
            .fold(PhaseStats::default(), |acc, (_, s)| PhaseStats {
                apdus: acc.apdus + s.apdus,
                bytes_sent: acc.bytes_sent + s.bytes_sent,
                bytes_received: acc.bytes_received + s.bytes_received,
            })
    }
}

impl fmt::Display for ReadStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (phase, s) in &self.phases {
            writeln!(
                f,
                "{phase:>14}: {:3} APDUs, {:6} B sent, {:6} B received",
                s.apdus, s.bytes_sent, s.bytes_received
            )?;
        }
        let t = self.total();
        write!(
            f,
            "{:>14}: {:3} APDUs, {:6} B sent, {:6} B received",
            "total", t.apdus, t.bytes_sent, t.bytes_received
        )
    }
}

/// The largest READ BINARY a short APDU carries under secure messaging (what emrtd's reader asks
/// for); extended-length reads take a whole CCCD file at once.
pub const SHORT_SM_READ: usize = 231;

/// The fewest command APDUs a desk's read of a CCCD takes, the yardstick a read's count is
/// compared with: SELECT of the application, PACE (MSE:Set AT and four GENERAL AUTHENTICATE),
/// one READ BINARY per `chunk` plain bytes of each file read (`None`: extended-length reads, one
/// per file), one INTERNAL AUTHENTICATE.
pub fn minimum_apdus(file_sizes: &[usize], chunk: Option<usize>) -> u32 {
    let chunk = chunk.unwrap_or(usize::MAX).max(1);
    let reads: usize = file_sizes.iter().map(|&n| n.div_ceil(chunk)).sum();
    u32::try_from(1 + 5 + 1 + reads).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_phase_and_total() {
        let mut s = ReadStats::new();
        s.record(Phase::Select, 7, 2);
        s.record(Phase::File(1), 20, 100);
        s.record(Phase::Select, 12, 2);
        assert_eq!(
            s.phase(Phase::Select),
            PhaseStats {
                apdus: 2,
                bytes_sent: 19,
                bytes_received: 4
            }
        );
        assert_eq!(s.phase(Phase::Pace), PhaseStats::default());
        assert_eq!(
            s.total(),
            PhaseStats {
                apdus: 3,
                bytes_sent: 39,
                bytes_received: 104
            }
        );
        assert_eq!(s.phases()[1].0, Phase::File(1));
        assert!(s.to_string().contains("DG1"));
    }

    #[test]
    fn the_minimum_is_one_read_per_file_or_per_short_chunk() {
        // Select, five PACE commands, INTERNAL AUTHENTICATE: 7, plus the reads.
        assert_eq!(minimum_apdus(&[1500, 90, 500], None), 10);
        // 1500 bytes in 231-byte chunks: 7 reads; 90: 1; 500: 3.
        assert_eq!(minimum_apdus(&[1500, 90, 500], Some(SHORT_SM_READ)), 18);
        assert_eq!(minimum_apdus(&[], None), 7);
    }
}
