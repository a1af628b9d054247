//! The offline spool: checks the desk could not send because the backend was unreachable, kept
//! on the clinic PC until it is back, then sent once (`replay`).
//!
//! One file per check in `spool_dir`, named `<spooled at, µs, hex>-<request id>.entry` so a
//! listing is oldest first without opening anything. Each file holds the CheckCoverageRequest
//! (prost), when it was kept and how many sends failed, sealed with ChaCha20-Poly1305 under the
//! spool key (`sealed`): the request names the patient, and the PC is shared. Writes are
//! atomic and durable (`files`). A file that does not open (altered, cut short, renamed) is
//! renamed `.bad` and reported, never sent and never deleted. A check the backend refuses for
//! good moves to `refused/`, still sealed, with the refusal. `key.check`, sealed at the first
//! start, tells a wrong key from damaged files: with the wrong key the spool does not open at
//! all, and nothing is marked bad.
//!
//! What a kept check carries is decided by the desk (`desk::ask`): no presence proof when the
//! backend was never reached, the request as sent otherwise.

mod files;
pub mod replay;
pub mod sealed;
pub mod text;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bhyt_proto::v1::CheckCoverageRequest;
use prost::Message;

use self::files::{TMP_PREFIX, clear_temporaries, create_private_dir, sync_dir, write_durably};
use self::sealed::{SealError, SpoolKey};

pub use self::replay::{Pacing, Replayed, Round, Stop, replay_loop, replay_once};

/// How many checks a spool keeps unless configured.
pub const DEFAULT_MAX_ENTRIES: usize = 500;

const ENTRY_SUFFIX: &str = ".entry";
const BAD_SUFFIX: &str = ".bad";
const REFUSED_DIR: &str = "refused";
const KEY_CHECK: &str = "key.check";
const REPLAY_LOCK: &str = "replay.lock";

/// Where the spool is and how much it holds.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub key_file: PathBuf,
    pub max_entries: usize,
}

/// Why the spool could not do what was asked. Messages name files and request ids only, never
/// what a check holds.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The bound is reached: this check is not kept (older ones never make room).
    #[error("the spool is full ({max} checks waiting to be sent): this check was NOT kept")]
    Full { max: usize },
    #[error("spool {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("spool key {path}: {problem}")]
    Key { path: String, problem: String },
    /// The key opens nothing this spool sealed; no entry was touched.
    #[error(
        "the spool key does not match the one that sealed {dir}: restore that key, or move the directory aside"
    )]
    WrongKey { dir: String },
    /// A file that does not open or decode, now kept aside as `<file>.bad`.
    #[error("spool entry {file} is unreadable ({reason}); kept aside as {file}.bad")]
    Unreadable { file: String, reason: String },
    #[error("a check with request id {0} is already in the spool")]
    Duplicate(String),
    #[error("request id unusable in the spool: 1 to 64 of A-Z a-z 0-9 - _")]
    RequestId,
    #[error("spool: cannot seal the check: {0}")]
    Seal(#[from] SealError),
    #[error("random number generator unavailable")]
    Random,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A kept check.
pub struct Entry {
    name: String,
    pub request: CheckCoverageRequest,
    pub spooled_at: SystemTime,
    /// Sends that found the backend unreachable.
    pub attempts: u32,
    /// For an entry in `refused/`: the backend's gRPC code and message.
    pub refusal: Option<(tonic::Code, String)>,
}

impl Entry {
    /// The entry's file name (no personal data: a time and the request id).
    pub fn file_name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for Entry {
    // The request names the patient: only its id.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("request_id", &self.request.request_id)
            .field("attempts", &self.attempts)
            .field("refusal", &self.refusal)
            .finish_non_exhaustive()
    }
}

/// The plaintext of an entry's file.
#[derive(Clone, PartialEq, prost::Message)]
struct Sealed {
    #[prost(message, optional, tag = "1")]
    request: Option<CheckCoverageRequest>,
    #[prost(uint64, tag = "2")]
    spooled_at_micros: u64,
    #[prost(uint32, tag = "3")]
    attempts: u32,
    #[prost(int32, tag = "4")]
    refused_code: i32,
    #[prost(string, tag = "5")]
    refused_message: String,
}

/// What the spool holds, for `reader-agent spool list` (counts and times only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Waiting to be sent.
    pub pending: usize,
    /// When the oldest waiting check was kept.
    pub oldest: Option<SystemTime>,
    /// Refused by the backend for good, in `refused/`.
    pub refused: usize,
    /// Kept aside as `.bad`, here and in `refused/`.
    pub unreadable: usize,
}

/// The spool. Cheap to clone: replay moves file work onto blocking threads.
#[derive(Clone)]
pub struct Spool(Arc<Inner>);

struct Inner {
    dir: PathBuf,
    refused: PathBuf,
    key: SpoolKey,
    max_entries: usize,
}

impl Spool {
    /// Opens the spool, creating its directories, key and key check at the first start.
    pub fn open(config: &SpoolConfig) -> Result<Self, SpoolError> {
        let dir = config.dir.clone();
        let refused = dir.join(REFUSED_DIR);
        for d in [&dir, &refused] {
            create_private_dir(d).map_err(io_error(d))?;
            clear_temporaries(d).map_err(io_error(d))?;
        }
        let check_path = dir.join(KEY_CHECK);
        let check = match fs::read(&check_path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(&check_path)(e)),
        };
        // Without a key check nothing was sealed here yet, so a new key may be made.
        let key = files::load_or_create_key(&config.key_file, check.is_none())?;
        let spool = Spool(Arc::new(Inner {
            dir: dir.clone(),
            refused,
            key,
            max_entries: config.max_entries,
        }));
        match check {
            Some(bytes) => {
                if spool.0.key.open(KEY_CHECK, &bytes).is_err() {
                    return Err(SpoolError::WrongKey {
                        dir: dir.display().to_string(),
                    });
                }
            }
            None => {
                let counts = spool.counts()?;
                if counts.pending + counts.refused > 0 {
                    return Err(SpoolError::Key {
                        path: check_path.display().to_string(),
                        problem: "missing while the spool holds entries: restore it with the key, or move the directory aside".into(),
                    });
                }
                let sealed = spool.0.key.seal(KEY_CHECK, b"")?;
                write_durably(&dir, KEY_CHECK, &sealed).map_err(io_error(&check_path))?;
            }
        }
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// Keeps `request` until it is sent. Refused when the spool is full or already holds this
    /// request id. Durable when this returns.
    pub fn put(&self, request: &CheckCoverageRequest) -> Result<(), SpoolError> {
        let id = &request.request_id;
        let usable = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !usable {
            return Err(SpoolError::RequestId);
        }
        let pending = self.pending()?;
        if pending.iter().any(|name| request_id_of(name) == Some(id)) {
            return Err(SpoolError::Duplicate(id.clone()));
        }
        if pending.len() >= self.0.max_entries {
            return Err(SpoolError::Full {
                max: self.0.max_entries,
            });
        }
        let now = micros(SystemTime::now());
        let entry = Entry {
            name: format!("{now:016x}-{id}{ENTRY_SUFFIX}"),
            request: request.clone(),
            spooled_at: UNIX_EPOCH
                .checked_add(Duration::from_micros(now))
                .unwrap_or(UNIX_EPOCH),
            attempts: 0,
            refusal: None,
        };
        self.write(&self.0.dir, &entry)
    }

    /// The number of checks waiting to be sent.
    pub fn len(&self) -> Result<usize, SpoolError> {
        Ok(self.pending()?.len())
    }

    pub fn is_empty(&self) -> Result<bool, SpoolError> {
        Ok(self.len()? == 0)
    }

    /// The waiting entries' file names, oldest first.
    pub fn pending(&self) -> Result<Vec<String>, SpoolError> {
        entry_names(&self.0.dir)
    }

    pub fn counts(&self) -> Result<Counts, SpoolError> {
        let pending = self.pending()?;
        let oldest = pending.first().and_then(|name| spooled_at_of(name));
        let refused = entry_names(&self.0.refused)?.len();
        let unreadable = [&self.0.dir, &self.0.refused]
            .into_iter()
            .map(|d| names_ending(d, BAD_SUFFIX).map(|n| n.len()))
            .sum::<Result<usize, _>>()?;
        Ok(Counts {
            pending: pending.len(),
            oldest,
            refused,
            unreadable,
        })
    }

    /// Opens the waiting entry `name`. One that does not open or decode is renamed `.bad`
    /// (SpoolError::Unreadable says so); a file that cannot be read at all stays as it is.
    pub fn load(&self, name: &str) -> Result<Entry, SpoolError> {
        self.load_from(&self.0.dir, name)
    }

    /// The entries refused for good, oldest first; unreadable ones are renamed `.bad`.
    pub fn refused(&self) -> Result<Vec<Result<Entry, SpoolError>>, SpoolError> {
        Ok(entry_names(&self.0.refused)?
            .iter()
            .map(|name| self.load_from(&self.0.refused, name))
            .collect())
    }

    /// Rewrites a waiting entry (its attempts, or its request without a proof).
    pub fn update(&self, entry: &Entry) -> Result<(), SpoolError> {
        self.write(&self.0.dir, entry)
    }

    /// Removes a sent entry. Already gone (another replayer sent it) is fine.
    pub fn remove(&self, entry: &Entry) -> Result<(), SpoolError> {
        let path = self.0.dir.join(&entry.name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_error(&path)(e)),
            _ => {}
        }
        sync_dir(&self.0.dir).map_err(io_error(&self.0.dir))
    }

    /// Moves an entry the backend refused for good to `refused/`, sealed with the refusal.
    pub fn refuse(
        &self,
        mut entry: Entry,
        code: tonic::Code,
        message: String,
    ) -> Result<Entry, SpoolError> {
        entry.refusal = Some((code, message));
        self.write(&self.0.refused, &entry)?;
        self.remove(&entry)?;
        Ok(entry)
    }

    /// Held by one replayer at a time (the desk's loop and `spool send` may both run): `None`
    /// when another holds it. Released when dropped.
    pub fn lock_replay(&self) -> Result<Option<fs::File>, SpoolError> {
        let path = self.0.dir.join(REPLAY_LOCK);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(io_error(&path)(e)),
        }
    }

    fn write(&self, dir: &Path, entry: &Entry) -> Result<(), SpoolError> {
        let (refused_code, refused_message) = match &entry.refusal {
            Some((code, message)) => (*code as i32, message.clone()),
            None => (0, String::new()),
        };
        let plaintext = Sealed {
            request: Some(entry.request.clone()),
            spooled_at_micros: micros(entry.spooled_at),
            attempts: entry.attempts,
            refused_code,
            refused_message,
        }
        .encode_to_vec();
        let sealed = self.0.key.seal(&entry.name, &plaintext)?;
        write_durably(dir, &entry.name, &sealed).map_err(io_error(&dir.join(&entry.name)))
    }

    fn load_from(&self, dir: &Path, name: &str) -> Result<Entry, SpoolError> {
        let path = dir.join(name);
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let opened = self
            .0
            .key
            .open(name, &bytes)
            .map_err(|broken| broken.reason().to_owned())
            .and_then(|plaintext| decode(name, &plaintext));
        match opened {
            Ok(entry) => Ok(entry),
            Err(reason) => {
                let bad = dir.join(format!("{name}{BAD_SUFFIX}"));
                fs::rename(&path, &bad).map_err(io_error(&path))?;
                sync_dir(dir).map_err(io_error(dir))?;
                Err(SpoolError::Unreadable {
                    file: name.to_owned(),
                    reason,
                })
            }
        }
    }
}

/// An entry from its opened file; the request id inside must be the one in the name.
fn decode(name: &str, plaintext: &[u8]) -> Result<Entry, String> {
    let sealed = Sealed::decode(plaintext).map_err(|_| "does not decode".to_owned())?;
    let request = sealed.request.ok_or("holds no request")?;
    if request_id_of(name) != Some(request.request_id.as_str()) {
        return Err("its request id is not the one in its name".into());
    }
    let refusal = (sealed.refused_code != 0).then(|| {
        (
            tonic::Code::from(sealed.refused_code),
            sealed.refused_message,
        )
    });
    Ok(Entry {
        name: name.to_owned(),
        request,
        spooled_at: UNIX_EPOCH
            .checked_add(Duration::from_micros(sealed.spooled_at_micros))
            .ok_or("its time is out of range")?,
        attempts: sealed.attempts,
        refusal,
    })
}

fn micros(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// `<16 hex digits>-<request id>.entry` split into its parts.
fn parse_name(name: &str) -> Option<(u64, &str)> {
    let stem = name.strip_suffix(ENTRY_SUFFIX)?;
    let (time, id) = stem.split_once('-')?;
    if time.len() != 16 || id.is_empty() {
        return None;
    }
    Some((u64::from_str_radix(time, 16).ok()?, id))
}

fn request_id_of(name: &str) -> Option<&str> {
    parse_name(name).map(|(_, id)| id)
}

fn spooled_at_of(name: &str) -> Option<SystemTime> {
    parse_name(name).and_then(|(t, _)| UNIX_EPOCH.checked_add(Duration::from_micros(t)))
}

/// The entries in `dir`, oldest first (the fixed-width time leads the name).
fn entry_names(dir: &Path) -> Result<Vec<String>, SpoolError> {
    let mut names = names_ending(dir, ENTRY_SUFFIX)?;
    names.retain(|n| parse_name(n).is_some());
    names.sort();
    Ok(names)
}

fn names_ending(dir: &Path, suffix: &str) -> Result<Vec<String>, SpoolError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        // Entry names are ASCII; anything else is not ours.
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.ends_with(suffix) && !name.starts_with(TMP_PREFIX) {
            names.push(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bhyt_proto::v1::check_coverage_request::Subject;

    const CITIZEN: &str = "001099012345";
    const NAME: &str = "Nguyễn Văn An";

    fn request(id: &str) -> CheckCoverageRequest {
        CheckCoverageRequest {
            request_id: id.into(),
            subject: Some(Subject::CitizenId(CITIZEN.into())),
            full_name: NAME.into(),
            ..Default::default()
        }
    }

    fn config(dir: &Path, key: &str, max_entries: usize) -> SpoolConfig {
        SpoolConfig {
            dir: dir.join("spool"),
            key_file: dir.join(key),
            max_entries,
        }
    }

    /// A spool in a new temporary directory, holding checks with `ids` in that order.
    fn spool_with(max_entries: usize, ids: &[&str]) -> (tempfile::TempDir, Spool) {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&config(dir.path(), "spool.key", max_entries)).unwrap();
        for id in ids {
            spool.put(&request(id)).unwrap();
        }
        (dir, spool)
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn kept_checks_come_back_oldest_first_sealed_on_disk() {
        let (dir, spool) = spool_with(10, &["b-first", "a-second", "c-third"]);
        let pending = spool.pending().unwrap();
        let ids: Vec<_> = pending
            .iter()
            .map(|n| spool.load(n).unwrap().request.request_id)
            .collect();
        // In the order kept, not by request id.
        assert_eq!(ids, ["b-first", "a-second", "c-third"]);
        assert_eq!(spool.load(&pending[0]).unwrap().request, request("b-first"));
        for name in &pending {
            let bytes = fs::read(spool.dir().join(name)).unwrap();
            assert!(
                !bytes
                    .windows(CITIZEN.len())
                    .any(|w| w == CITIZEN.as_bytes())
            );
            assert!(!bytes.windows(3).any(|w| w == "Văn".as_bytes()));
        }
        // A second start with the same key reads them.
        let again = Spool::open(&config(dir.path(), "spool.key", 10)).unwrap();
        assert_eq!(again.len().unwrap(), 3);
        assert_eq!(
            again.counts().unwrap().oldest,
            Some(spool.load(&pending[0]).unwrap().spooled_at)
        );
    }

    #[test]
    fn a_full_spool_refuses_the_new_check_and_keeps_the_old_ones() {
        let (_dir, spool) = spool_with(2, &["one", "two"]);
        let full = spool.put(&request("three")).unwrap_err();
        assert!(matches!(full, SpoolError::Full { max: 2 }), "{full:?}");
        assert!(full.to_string().contains("NOT kept"), "{full}");
        let ids: Vec<_> = spool
            .pending()
            .unwrap()
            .iter()
            .map(|n| request_id_of(n).unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["one", "two"]);
        // Room again once one is sent.
        let sent = spool.load(&spool.pending().unwrap()[0]).unwrap();
        spool.remove(&sent).unwrap();
        spool.put(&request("three")).unwrap();
    }

    #[test]
    fn a_repeated_or_unusable_request_id_is_refused() {
        let (_dir, spool) = spool_with(10, &["r-1"]);
        assert!(matches!(
            spool.put(&request("r-1")),
            Err(SpoolError::Duplicate(_))
        ));
        for id in ["", "../escape", "a:b", &"x".repeat(65), "tên"] {
            assert!(
                matches!(spool.put(&request(id)), Err(SpoolError::RequestId)),
                "{id:?}"
            );
        }
        assert_eq!(spool.len().unwrap(), 1);
    }

    #[test]
    fn altered_truncated_or_swapped_files_are_kept_aside_as_bad() {
        let (_dir, spool) = spool_with(10, &["altered", "truncated", "swap-a", "swap-b", "intact"]);
        let names = spool.pending().unwrap();
        let path = |i: usize| spool.dir().join(&names[i]);
        let mut bytes = fs::read(path(0)).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x20;
        fs::write(path(0), bytes).unwrap();
        let bytes = fs::read(path(1)).unwrap();
        fs::write(path(1), &bytes[..bytes.len() - 5]).unwrap();
        let (a, b) = (fs::read(path(2)).unwrap(), fs::read(path(3)).unwrap());
        fs::write(path(2), b).unwrap();
        fs::write(path(3), a).unwrap();

        for name in &names[..4] {
            let error = spool.load(name).unwrap_err();
            let SpoolError::Unreadable { file, .. } = &error else {
                panic!("{name}: {error:?}");
            };
            assert_eq!(file, name);
            assert!(error.to_string().contains(".bad"), "{error}");
            assert!(!spool.dir().join(name).exists());
            assert!(spool.dir().join(format!("{name}.bad")).exists());
        }
        assert_eq!(spool.pending().unwrap(), [names[4].clone()]);
        assert_eq!(spool.load(&names[4]).unwrap().request, request("intact"));
        let counts = spool.counts().unwrap();
        assert_eq!((counts.pending, counts.unreadable), (1, 4));
    }

    #[test]
    fn the_wrong_key_opens_nothing_and_marks_nothing_bad() {
        let (dir, _spool) = spool_with(10, &["kept"]);
        let before = files_in(&dir.path().join("spool"));

        // Another spool's key: a valid key, not this spool's.
        Spool::open(&config(&dir.path().join("other"), "../other.key", 10)).unwrap();
        let wrong = Spool::open(&config(dir.path(), "other.key", 10))
            .err()
            .unwrap();
        assert!(matches!(wrong, SpoolError::WrongKey { .. }), "{wrong:?}");
        assert!(wrong.to_string().contains("restore that key"), "{wrong}");
        assert_eq!(files_in(&dir.path().join("spool")), before);

        // The key file gone: refused, and no new key is made in its place.
        fs::rename(dir.path().join("spool.key"), dir.path().join("saved.key")).unwrap();
        let lost = Spool::open(&config(dir.path(), "spool.key", 10))
            .err()
            .unwrap();
        assert!(lost.to_string().contains("restore that key file"), "{lost}");
        assert!(!dir.path().join("spool.key").exists());

        // The right key back: the check is there.
        fs::rename(dir.path().join("saved.key"), dir.path().join("spool.key")).unwrap();
        let spool = Spool::open(&config(dir.path(), "spool.key", 10)).unwrap();
        assert_eq!(spool.len().unwrap(), 1);
    }

    #[test]
    fn refused_entries_move_aside_with_the_refusal_and_updates_persist() {
        let (dir, spool) = spool_with(10, &["refused", "retried"]);
        let names = spool.pending().unwrap();
        let entry = spool.load(&names[0]).unwrap();
        spool
            .refuse(
                entry,
                tonic::Code::InvalidArgument,
                "full_name: required".into(),
            )
            .unwrap();
        let mut retried = spool.load(&names[1]).unwrap();
        retried.attempts = 3;
        spool.update(&retried).unwrap();

        assert_eq!(spool.pending().unwrap(), [names[1].clone()]);
        assert_eq!(spool.load(&names[1]).unwrap().attempts, 3);
        let refused = spool.refused().unwrap();
        assert_eq!(refused.len(), 1);
        let refused = refused.into_iter().next().unwrap().unwrap();
        assert_eq!(refused.request.request_id, "refused");
        assert_eq!(
            refused.refusal,
            Some((tonic::Code::InvalidArgument, "full_name: required".into()))
        );
        let counts = spool.counts().unwrap();
        assert_eq!((counts.pending, counts.refused), (1, 1));
        // A refused entry still counts as sealed here: a new key may not replace this one.
        fs::remove_file(dir.path().join("spool").join(KEY_CHECK)).unwrap();
        let missing = Spool::open(&config(dir.path(), "spool.key", 10))
            .err()
            .unwrap();
        assert!(missing.to_string().contains("key.check"), "{missing}");
    }

    #[test]
    fn a_torn_write_left_by_a_crash_is_cleared_at_open() {
        let (dir, spool) = spool_with(10, &["kept"]);
        let torn = spool
            .dir()
            .join(format!("{TMP_PREFIX}0000000000000001-torn.entry"));
        fs::write(&torn, b"half").unwrap();
        assert_eq!(spool.len().unwrap(), 1);
        let spool = Spool::open(&config(dir.path(), "spool.key", 10)).unwrap();
        assert!(!torn.exists());
        assert_eq!(spool.len().unwrap(), 1);
    }

    #[test]
    fn only_one_replayer_holds_the_spool() {
        let (_dir, spool) = spool_with(10, &[]);
        let held = spool.lock_replay().unwrap().expect("free");
        assert!(spool.lock_replay().unwrap().is_none());
        drop(held);
        assert!(spool.lock_replay().unwrap().is_some());
    }
}
