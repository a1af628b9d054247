//! The local audit spool: where the writer puts chained records while the audit store cannot
//! commit, so checks keep being answered without ever being answered unrecorded.
//!
//! One append-only file under the data directory. Each record (with its idempotency row) is one
//! frame: its length (4 bytes, big-endian), the SHA-256 of its body (32 bytes), then the body
//! (JSON). A group is written with one `write` and made durable with one `fsync` before any of
//! its checks is answered, like a group commit. A crash can leave only the last frame torn; it
//! was never acknowledged, so opening the spool drops it (and anything after it).
//!
//! The records are the ones the store would hold: keyed hashes and sealed fields, no personal
//! data in the clear. The file is locked, so two processes never share one spool.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use super::chain::ChainedRecord;
use super::store::{AnswerKey, IdempotencyRow, StoredAnswer};

/// Length and checksum before each body.
const HEADER: usize = 4 + 32;
/// No record comes near this; a larger length is a torn or damaged header.
const MAX_FRAME: u32 = 16 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    #[error("the audit spool is full ({bytes} of {max} bytes)")]
    Full { bytes: u64, max: u64 },
    #[error("the audit spool cannot be written: {0}")]
    Io(#[from] io::Error),
    #[error("an audit spool record cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One spooled record and the idempotency row committed with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpooledRecord {
    pub record: ChainedRecord,
    pub key: Option<IdempotencyRow>,
}

/// The stored answers of the spooled records, for the idempotency check while the store does
/// not have them yet. Shared between the writer and the checks.
#[derive(Clone, Default)]
pub struct SpooledAnswers(Arc<Mutex<HashMap<AnswerKey, StoredAnswer>>>);

impl SpooledAnswers {
    pub fn get(&self, facility: &str, station: &str, request_id: &str) -> Option<StoredAnswer> {
        let key = (
            facility.to_owned(),
            station.to_owned(),
            request_id.to_owned(),
        );
        self.lock().get(&key).cloned()
    }

    fn insert(&self, row: &IdempotencyRow) {
        self.lock().insert(
            (
                row.facility_code.clone(),
                row.station_id.clone(),
                row.request_id.clone(),
            ),
            StoredAnswer {
                payload_hash: row.payload_hash.clone(),
                record_id: row.record_id.clone(),
                response: row.response.clone(),
            },
        );
    }

    fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AnswerKey, StoredAnswer>> {
        // The map holds plain data: a panic elsewhere cannot leave it half-updated.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct Spool {
    path: PathBuf,
    /// Opened for appending and locked for this process.
    file: File,
    bytes: u64,
    records: u64,
    /// Where the first record not yet in the store starts.
    replayed: u64,
    max_bytes: u64,
    answers: SpooledAnswers,
}

impl Spool {
    /// Opens (or creates) the spool at `path`, dropping a torn tail, and indexes its stored
    /// answers.
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        file.try_lock().map_err(|e| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another process ({e})", path.display()),
            )
        })?;
        if created {
            // The file's name must survive a crash as well as its contents.
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        let answers = SpooledAnswers::default();
        let mut records = 0;
        let (frames, good) = read_frames(&mut file, 0, usize::MAX)?;
        for f in &frames {
            records += 1;
            if let Some(key) = &f.key {
                answers.insert(key);
            }
        }
        if good < file.metadata()?.len() {
            tracing::warn!(
                kept = records,
                "audit spool: a torn last write (never acknowledged) was dropped"
            );
            file.set_len(good)?;
            file.sync_all()?;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            bytes: good,
            records,
            replayed: 0,
            max_bytes,
            answers,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn answers(&self) -> SpooledAnswers {
        self.answers.clone()
    }

    /// Appends a group and makes it durable (one fsync). All or nothing: on an error the file is
    /// cut back to where it was.
    pub fn append(&mut self, group: &[SpooledRecord]) -> Result<(), SpoolError> {
        let mut buffer = Vec::new();
        for record in group {
            encode_frame(&mut buffer, record)?;
        }
        let new_size = self.bytes + buffer.len() as u64;
        if new_size > self.max_bytes {
            return Err(SpoolError::Full {
                bytes: self.bytes,
                max: self.max_bytes,
            });
        }
        let written = self
            .file
            .write_all(&buffer)
            .and_then(|()| self.file.sync_data());
        if let Err(error) = written {
            // Nothing of this group was acknowledged; do not leave half of it behind.
            let _ = self.file.set_len(self.bytes);
            return Err(error.into());
        }
        self.bytes = new_size;
        self.records += group.len() as u64;
        for key in group.iter().filter_map(|r| r.key.as_ref()) {
            self.answers.insert(key);
        }
        Ok(())
    }

    /// Up to `max` records not yet replayed, in order, and where the next one starts.
    pub fn unreplayed(&self, max: usize) -> io::Result<(Vec<SpooledRecord>, u64)> {
        let mut reader = File::open(&self.path)?;
        let (frames, end) = read_frames(&mut reader, self.replayed, max)?;
        // Only what this process wrote and fsync'd, or checked on open, is there.
        Ok((frames, end.min(self.bytes)))
    }

    /// The records before `offset` are in the store.
    pub fn replayed_up_to(&mut self, offset: u64) {
        self.replayed = offset;
    }

    /// Whether every spooled record is in the store.
    pub fn fully_replayed(&self) -> bool {
        self.replayed >= self.bytes
    }

    /// Empties the spool once the store holds every record in it.
    pub fn truncate(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.bytes = 0;
        self.records = 0;
        self.replayed = 0;
        self.answers.clear();
        Ok(())
    }
}

fn encode_frame(out: &mut Vec<u8>, record: &SpooledRecord) -> Result<(), SpoolError> {
    let body = serde_json::to_vec(record)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|l| *l <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "audit record too large"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(digest(&SHA256, &body).as_ref());
    out.extend_from_slice(&body);
    Ok(())
}

/// Reads whole, intact frames from `offset` on, at most `max`; returns them and the offset just
/// past the last good one. A short, oversized, mismatched or undecodable frame ends the read.
fn read_frames(file: &mut File, offset: u64, max: usize) -> io::Result<(Vec<SpooledRecord>, u64)> {
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = io::BufReader::new(file);
    let mut frames = Vec::new();
    let mut at = offset;
    let mut header = [0u8; HEADER];
    let mut body = Vec::new();
    while frames.len() < max {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&header[..4]);
        let len = u32::from_be_bytes(len);
        if len > MAX_FRAME {
            break;
        }
        body.resize(len as usize, 0);
        match reader.read_exact(&mut body) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        if digest(&SHA256, &body).as_ref() != &header[4..] {
            break;
        }
        let Ok(record) = serde_json::from_slice::<SpooledRecord>(&body) else {
            break;
        };
        frames.push(record);
        at += (HEADER + body.len()) as u64;
    }
    Ok((frames, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{self, AuditEntry};

    fn record(seq: i64, with_key: bool) -> SpooledRecord {
        let entry = AuditEntry {
            record_id: format!("r-{seq}"),
            request_id: format!("q-{seq}"),
            facility_code: "01821".into(),
            station_id: "s1".into(),
            subject_hash: "ab".repeat(32),
            ..Default::default()
        };
        let prev = chain::genesis_hash("w-test");
        let key = with_key.then(|| IdempotencyRow {
            facility_code: "01821".into(),
            station_id: "s1".into(),
            request_id: format!("q-{seq}"),
            payload_hash: "p".into(),
            record_id: format!("r-{seq}"),
            response: vec![0, 1, 2, 255],
            created_at: seq,
        });
        SpooledRecord {
            record: ChainedRecord {
                writer_id: "w-test".into(),
                seq,
                record_hash: chain::record_hash("w-test", seq, &prev, &entry),
                prev_hash: prev,
                entry,
            },
            key,
        }
    }

    fn seqs(records: &[SpooledRecord]) -> Vec<i64> {
        records.iter().map(|r| r.record.seq).collect()
    }

    /// Fails if an append is lost, reordered or changed between writing and reading.
    #[test]
    fn appended_groups_come_back_in_order_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let mut spool = Spool::open(&path, 1 << 20).unwrap();
        assert!(spool.is_empty());
        spool.append(&[record(1, true), record(2, false)]).unwrap();
        spool.append(&[record(3, true)]).unwrap();
        assert_eq!(spool.records(), 3);
        assert_eq!(spool.bytes(), std::fs::metadata(&path).unwrap().len());
        let (all, end) = spool.unreplayed(usize::MAX).unwrap();
        assert_eq!(
            all,
            vec![record(1, true), record(2, false), record(3, true)]
        );
        assert_eq!(end, spool.bytes());
        drop(spool);

        let reopened = Spool::open(&path, 1 << 20).unwrap();
        assert_eq!(reopened.records(), 3);
        assert_eq!(seqs(&reopened.unreplayed(usize::MAX).unwrap().0), [1, 2, 3]);
        let answer = reopened.answers().get("01821", "s1", "q-3").unwrap();
        assert_eq!(answer.record_id, "r-3");
        assert_eq!(answer.response, [0, 1, 2, 255]);
        assert!(reopened.answers().get("01821", "s1", "q-2").is_none());
    }

    /// A crash in the middle of a write leaves a partial frame: without the length and checksum
    /// checks it would be decoded (or fail the whole spool) instead of being dropped.
    #[test]
    fn a_torn_last_write_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let mut spool = Spool::open(&path, 1 << 20).unwrap();
        spool.append(&[record(1, true), record(2, true)]).unwrap();
        let good = spool.bytes();
        spool.append(&[record(3, true)]).unwrap();
        let full = spool.bytes();
        drop(spool);
        // Every cut inside the last frame: it is dropped, the first two stay.
        for cut in [good + 1, good + 4, good + 20, good + 36, full - 1] {
            let bytes = std::fs::read(&path).unwrap();
            let torn = dir.path().join(format!("torn-{cut}"));
            std::fs::write(&torn, &bytes[..cut as usize]).unwrap();
            let spool = Spool::open(&torn, 1 << 20).unwrap();
            assert_eq!(spool.records(), 2, "cut at {cut}");
            assert_eq!(spool.bytes(), good);
            assert_eq!(std::fs::metadata(&torn).unwrap().len(), good, "cut off");
            assert!(spool.answers().get("01821", "s1", "q-3").is_none());
        }
        // A flipped byte in the last body: the checksum catches it.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let spool = Spool::open(&path, 1 << 20).unwrap();
        assert_eq!(seqs(&spool.unreplayed(usize::MAX).unwrap().0), [1, 2]);
        // An absurd length in a header: not trusted.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend_from_slice(&[0; 40]);
        drop(spool);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Spool::open(&path, 1 << 20).unwrap().records(), 2);
    }

    /// Replay reads in order in chunks, and truncation empties file and index; fails if the
    /// replay offset is ignored (records replayed twice) or truncation leaves anything.
    #[test]
    fn replay_proceeds_in_order_and_truncation_empties_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let mut spool = Spool::open(&path, 1 << 20).unwrap();
        for seq in 1..=5 {
            spool.append(&[record(seq, true)]).unwrap();
        }
        let (first, next) = spool.unreplayed(2).unwrap();
        assert_eq!(seqs(&first), [1, 2]);
        spool.replayed_up_to(next);
        assert!(!spool.fully_replayed());
        // A record spooled during the replay queues behind the rest.
        spool.append(&[record(6, false)]).unwrap();
        let (rest, end) = spool.unreplayed(usize::MAX).unwrap();
        assert_eq!(seqs(&rest), [3, 4, 5, 6]);
        spool.replayed_up_to(end);
        assert!(spool.fully_replayed());
        spool.truncate().unwrap();
        assert!(spool.is_empty());
        assert_eq!(spool.records(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert!(spool.answers().get("01821", "s1", "q-1").is_none());
        assert!(spool.unreplayed(usize::MAX).unwrap().0.is_empty());
        // And it takes new records from the start.
        spool.append(&[record(7, true)]).unwrap();
        assert_eq!(seqs(&spool.unreplayed(usize::MAX).unwrap().0), [7]);
    }

    /// Fails if the bound is not enforced or a refused group leaves bytes behind.
    #[test]
    fn past_its_bound_the_spool_refuses_and_stays_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let mut probe = Vec::new();
        encode_frame(&mut probe, &record(1, true)).unwrap();
        let mut spool = Spool::open(&path, probe.len() as u64 * 2 + 10).unwrap();
        spool.append(&[record(1, true), record(2, true)]).unwrap();
        let before = spool.bytes();
        let refused = spool.append(&[record(3, true)]);
        assert!(
            matches!(refused, Err(SpoolError::Full { .. })),
            "{refused:?}"
        );
        assert_eq!(spool.bytes(), before);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
        assert_eq!(spool.records(), 2);
    }

    /// Two processes appending to one file would interleave chains; the lock refuses the second.
    #[test]
    fn a_second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let _first = Spool::open(&path, 1 << 20).unwrap();
        let second = Spool::open(&path, 1 << 20);
        assert!(second.is_err());
    }
}
