//! The audit writer: one task per backend process that owns its hash chain and commits records
//! in groups. A check's answer is released only after the transaction holding its record has
//! committed, so "answered" implies "durably recorded"; grouping the records of concurrent checks
//! into one transaction keeps that cheap (one fsync for many records).
//!
//! When the store cannot commit, the group goes to the local [`Spool`] instead (fsync'd before
//! the answers), keeping its place in the chain; every later group queues behind it in the
//! spool until the writer has replayed the spool into the store, in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, AnyPool};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::chain::{self, AuditEntry, ChainedRecord};
use super::idempotency::{AnswerLookup, LookupError};
use super::spool::{Spool, SpoolError, SpooledAnswers, SpooledRecord};
use super::store::{self, Checkpoint, IdempotencyRow, StoredAnswer};
use crate::db::HeldConnection;
use crate::keys::CheckpointSigner;
use crate::metrics::Metrics;

#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("the audit log cannot be written ({0}); the check was not recorded")]
    Unavailable(String),
    #[error("the audit log is shutting down")]
    Closed,
    #[error("cannot record the check: the audit store is down and the local spool is full")]
    SpoolFull,
}

/// The answer to keep for an idempotency key, committed with its record.
pub struct Idempotent {
    pub payload_hash: String,
    /// The encoded (and sealed) answer.
    pub response: Vec<u8>,
}

struct Submission {
    entry: AuditEntry,
    idempotent: Option<Idempotent>,
    reply: oneshot::Sender<Result<(), AuditError>>,
}

enum Message {
    Record(Submission),
    Close(oneshot::Sender<()>),
}

/// Handle to this process's audit writer.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<Message>,
    writer_id: Arc<str>,
    commit_timeout: Duration,
    spooled: SpooledAnswers,
    spool_enabled: bool,
    answers: AnswerLookup,
}

/// The tail of the chain: the last committed record.
struct Head {
    seq: i64,
    hash: String,
}

struct Writer {
    /// The writer's own connection, kept between groups.
    conn: HeldConnection,
    writer_id: String,
    signer: CheckpointSigner,
    key_id: String,
    metrics: Arc<Metrics>,
    head: Head,
    checkpoints: i64,
    max_batch: usize,
    /// None: no spool configured, a store that cannot commit refuses the checks.
    spool: Option<Spool>,
    /// Longest wait for the store before a group goes to the spool: well inside the commit
    /// timeout, so the spooled records are still answered.
    store_timeout: Duration,
    /// The last checkpoint failed (the store refused it or did not answer in time). With a
    /// spool, the next group goes to it at once: trying the store too could keep its checks
    /// waiting for two store timeouts, the whole commit timeout. The spool's replay then finds
    /// out when the store is back.
    checkpoint_failed: bool,
}

pub struct WriterOptions {
    pub max_batch: usize,
    pub checkpoint_interval: Duration,
    pub commit_timeout: Duration,
    /// The spool directory (one file per writer) and a spool's largest size; None: no spool.
    pub spool: Option<(std::path::PathBuf, u64)>,
}

/// The writer's SQLite connection:
/// - keeps a statement's undo journal in memory (a group's INSERTs inside its transaction each
///   keep one) rather than in a temporary file;
/// - checkpoints the write-ahead log every 8192 pages (32 MiB) rather than 1000. A page written
///   by many groups (the end of the time-ordered indexes, the table's last page) is then copied
///   into the database once per checkpoint instead of once per few groups; with 1000 pages the
///   checkpoints took a tenth of the SQLite threads' time in the benchmark.
///
/// Checkpoints stay where SQLite puts them, after the commit that fills the log: moved to a
/// background task (`wal_autocheckpoint=0` here, PASSIVE checkpoints every second elsewhere)
/// they never caught up with a busy writer, and the log grew without bound (226 MB in 10 s of
/// the benchmark), since it restarts only once fully checkpointed.
///
/// The page cache keeps SQLite's default size: the end of every transaction scans the whole
/// cache (`pcache1Truncate`), and a 64 MiB cache made that scan 9% of the SQLite threads' time.
const WRITER_SQLITE_SETUP: &str = "PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=8192;";

/// How often a writer with a non-empty spool tries the store again.
const REPLAY_RETRY: Duration = Duration::from_secs(1);

impl AuditLog {
    /// Registers a new writer (a fresh chain) and starts its task.
    pub async fn start(
        pool: AnyPool,
        signer: CheckpointSigner,
        metrics: Arc<Metrics>,
        options: WriterOptions,
    ) -> Result<Self, sqlx::Error> {
        // A spool left by an earlier process (stopped while the store was down) goes into the
        // store first: its chains are older than the one this writer starts.
        let writer_id = new_writer_id();
        let spool = match &options.spool {
            Some((dir, max_bytes)) => {
                replay_left_over(&pool, dir).await?;
                Some(
                    Spool::open(&dir.join(format!("{writer_id}.spool")), *max_bytes)
                        .map_err(sqlx::Error::Io)?,
                )
            }
            None => None,
        };
        let spooled = spool.as_ref().map(Spool::answers).unwrap_or_default();
        let spool_enabled = spool.is_some();
        let key_id = signer.verifier().key_id();
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        store::register_writer(&pool, &writer_id, now_micros(), &key_id, &host).await?;
        let mut writer = Writer {
            conn: HeldConnection::with_sqlite_setup(pool, WRITER_SQLITE_SETUP),
            head: Head {
                seq: 0,
                hash: chain::genesis_hash(&writer_id),
            },
            writer_id: writer_id.clone(),
            signer,
            key_id,
            metrics,
            checkpoints: 0,
            max_batch: options.max_batch.max(1),
            spool,
            store_timeout: options.commit_timeout / 2,
            checkpoint_failed: false,
        };
        writer.report_spool();
        // The first checkpoint (at seq 0) says "this chain exists", so deleting all of a
        // writer's records still shows.
        writer.checkpoint(false).await?;
        let answers = AnswerLookup::start(
            writer.pool().clone(),
            writer.max_batch,
            writer.store_timeout,
        );
        let (sender, receiver) = mpsc::channel(options.max_batch.max(1) * 4);
        tokio::spawn(writer.run(receiver, options.checkpoint_interval));
        Ok(Self {
            sender,
            writer_id: writer_id.into(),
            commit_timeout: options.commit_timeout,
            spooled,
            spool_enabled,
            answers,
        })
    }

    /// Whether a store that cannot commit sends records to the spool (rather than refusing).
    pub fn spool_enabled(&self) -> bool {
        self.spool_enabled
    }

    /// How long to wait for the store before treating it as unreachable.
    pub fn store_timeout(&self) -> Duration {
        self.commit_timeout / 2
    }

    /// The answer already given for an idempotency key: from the spool's index (records the
    /// store does not have yet), else from the store, waiting for it at most
    /// [`store_timeout`](Self::store_timeout).
    pub async fn stored_answer(
        &self,
        facility_code: &str,
        station_id: &str,
        request_id: &str,
    ) -> Result<Option<StoredAnswer>, LookupError> {
        if let Some(answer) = self.spooled.get(facility_code, station_id, request_id) {
            return Ok(Some(answer));
        }
        let found = self.answers.find(facility_code, station_id, request_id);
        tokio::time::timeout(self.store_timeout(), found)
            .await
            .unwrap_or(Err(LookupError::TimedOut))
    }

    pub fn writer_id(&self) -> &str {
        &self.writer_id
    }

    /// Appends `entry` and waits until it is durable. Never waits longer than the commit
    /// timeout.
    pub async fn append(
        &self,
        entry: AuditEntry,
        idempotent: Option<Idempotent>,
    ) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        let submission = Message::Record(Submission {
            entry,
            idempotent,
            reply,
        });
        let wait = async {
            self.sender
                .send(submission)
                .await
                .map_err(|_| AuditError::Closed)?;
            answer.await.map_err(|_| AuditError::Closed)?
        };
        tokio::time::timeout(self.commit_timeout, wait)
            .await
            .unwrap_or_else(|_| Err(AuditError::Unavailable("commit timed out".into())))
    }

    /// Commits what is queued, writes the closing checkpoint and stops the writer.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.sender.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

impl Writer {
    async fn run(mut self, mut receiver: mpsc::Receiver<Message>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let retry = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(retry);
        loop {
            let first = tokio::select! {
                message = receiver.recv() => message,
                () = self.conn.released_on_close() => continue,
                _ = tick.tick() => {
                    // A checkpoint names the chain's head, which must be in the store. After a
                    // failed one, records waiting go first (to the spool): another attempt on a
                    // hung store would keep them a second store timeout.
                    let records_first = self.checkpoint_failed && !receiver.is_empty();
                    if !self.spooling()
                        && !records_first
                        && let Err(error) = self.checkpoint(false).await
                    {
                        tracing::error!(%error, "audit checkpoint failed");
                    }
                    continue;
                }
                () = &mut retry, if self.spooling() => {
                    let delay = self.replay().await;
                    retry.as_mut().reset(tokio::time::Instant::now() + delay);
                    continue;
                }
            };
            let mut group = Vec::new();
            let mut closing = None;
            match first {
                Some(Message::Record(s)) => group.push(s),
                Some(Message::Close(done)) => closing = Some(done),
                None => return,
            }
            while closing.is_none() && group.len() < self.max_batch {
                match receiver.try_recv() {
                    Ok(Message::Record(s)) => group.push(s),
                    Ok(Message::Close(done)) => closing = Some(done),
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.commit(group).await;
            }
            if let Some(done) = closing {
                receiver.close();
                while let Some(message) = receiver.recv().await {
                    if let Message::Record(s) = message {
                        let _ = s.reply.send(Err(AuditError::Closed));
                    }
                }
                while self.spooling() {
                    if self.replay().await > Duration::ZERO {
                        break;
                    }
                }
                if self.spooling() {
                    tracing::warn!(
                        "audit store still down: the spool is kept and replayed at the next start"
                    );
                } else if let Err(error) = self.checkpoint(true).await {
                    tracing::error!(%error, "closing audit checkpoint failed");
                }
                self.conn.release();
                let _ = done.send(());
                return;
            }
        }
    }

    async fn commit(&mut self, group: Vec<Submission>) {
        let started = Instant::now();
        let mut records = Vec::with_capacity(group.len());
        let mut keys = Vec::new();
        let (mut seq, mut prev) = (self.head.seq, self.head.hash.clone());
        for s in &group {
            seq += 1;
            let record_hash = chain::record_hash(&self.writer_id, seq, &prev, &s.entry);
            let record = ChainedRecord {
                writer_id: self.writer_id.clone(),
                seq,
                entry: s.entry.clone(),
                prev_hash: std::mem::replace(&mut prev, record_hash.clone()),
                record_hash,
            };
            if let Some(i) = &s.idempotent {
                keys.push(IdempotencyRow {
                    facility_code: s.entry.facility_code.clone(),
                    station_id: s.entry.station_id.clone(),
                    request_id: s.entry.request_id.clone(),
                    payload_hash: i.payload_hash.clone(),
                    record_id: s.entry.record_id.clone(),
                    response: i.response.clone(),
                    created_at: s.entry.recorded_at,
                });
            }
            records.push(record);
        }
        let spooling = self.spooling();
        let failure = if spooling {
            None
        } else if self.checkpoint_failed && self.spool.is_some() {
            Some("audit store unreachable".to_owned())
        } else {
            let insert = async |conn: &mut _| store::insert_group(conn, &records, &keys).await;
            match self.conn.run(self.store_timeout, insert).await {
                Ok(Ok(())) => {
                    self.head = Head { seq, hash: prev };
                    self.metrics
                        .audit_committed(records.len(), started.elapsed());
                    for s in group {
                        let _ = s.reply.send(Ok(()));
                    }
                    return;
                }
                Ok(Err(error)) => {
                    tracing::error!(%error, records = group.len(), "audit commit failed");
                    Some(store_failure(&error))
                }
                Err(_) => {
                    tracing::error!(records = group.len(), "audit commit timed out");
                    Some("audit store unreachable".to_owned())
                }
            }
        };
        if failure.is_some() {
            self.metrics.audit_failed();
        }
        let spooled = match &mut self.spool {
            Some(spool) => {
                let mut keys = keys.into_iter();
                let batch: Vec<SpooledRecord> = records
                    .into_iter()
                    .zip(&group)
                    .map(|(record, s)| SpooledRecord {
                        record,
                        key: if s.idempotent.is_some() {
                            keys.next()
                        } else {
                            None
                        },
                    })
                    .collect();
                spool.append(&batch)
            }
            None => Err(SpoolError::Full { bytes: 0, max: 0 }),
        };
        match spooled {
            Ok(()) => {
                if !spooling {
                    // The alarm: operators must bring the store back before the spool fills.
                    tracing::error!(
                        "AUDIT STORE DOWN: audit records are being spooled locally until it returns"
                    );
                }
                self.head = Head { seq, hash: prev };
                self.report_spool();
                for s in group {
                    let _ = s.reply.send(Ok(()));
                }
            }
            Err(error) => {
                let reason = match (&self.spool, &error) {
                    (None, _) => AuditError::Unavailable(
                        failure.unwrap_or_else(|| "audit store unreachable".into()),
                    ),
                    (Some(_), SpoolError::Full { .. }) => {
                        tracing::error!(%error, records = group.len(), "audit spool full: checks refused");
                        AuditError::SpoolFull
                    }
                    (Some(_), _) => {
                        tracing::error!(%error, records = group.len(), "audit spool write failed");
                        AuditError::Unavailable("audit store and spool unwritable".into())
                    }
                };
                for s in group {
                    let _ = s.reply.send(Err(reason.clone()));
                }
                if !spooling {
                    // The commit may have failed after the data reached the disk: continue the
                    // chain from what the store holds.
                    self.reload_head().await;
                }
            }
        }
    }

    fn pool(&self) -> &AnyPool {
        self.conn.pool()
    }

    fn spooling(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| !s.is_empty())
    }

    fn report_spool(&self) {
        let (bytes, records) = self
            .spool
            .as_ref()
            .map_or((0, 0), |s| (s.bytes(), s.records()));
        self.metrics.audit_spool(bytes, records);
    }

    /// One step of replaying the spool into the store; how long to wait before the next.
    async fn replay(&mut self) -> Duration {
        let Some(spool) = &mut self.spool else {
            return REPLAY_RETRY;
        };
        let chunk = self.max_batch;
        let step = async |conn: &mut _| replay_step(conn, spool, chunk).await;
        match self.conn.run(self.store_timeout, step).await {
            Ok(Ok(())) => {
                self.report_spool();
                if self.spooling() {
                    return Duration::ZERO;
                }
                tracing::warn!("audit store back: the spool is replayed and empty");
                // Sign the replayed records now rather than at the next tick.
                if let Err(error) = self.checkpoint(false).await {
                    tracing::error!(%error, "audit checkpoint failed");
                }
                REPLAY_RETRY
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "audit spool replay: store still unreachable");
                REPLAY_RETRY
            }
            Err(_) => {
                tracing::debug!("audit spool replay: store timed out");
                REPLAY_RETRY
            }
        }
    }

    async fn reload_head(&mut self) {
        let head = tokio::time::timeout(
            self.store_timeout,
            store::chain_head(self.conn.pool(), &self.writer_id),
        )
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        match head {
            Ok(Some((seq, hash))) => self.head = Head { seq, hash },
            Ok(None) => {
                self.head = Head {
                    seq: 0,
                    hash: chain::genesis_hash(&self.writer_id),
                };
            }
            Err(error) => tracing::warn!(%error, "audit store still unreachable"),
        }
    }

    /// Signs the chain's head under the next checkpoint number and stores it. Bounded like a
    /// commit: a store that hangs must not hold the writer, and with it every check.
    async fn checkpoint(&mut self, closing: bool) -> Result<(), sqlx::Error> {
        let mut outcome = self.try_checkpoint(closing).await;
        // The number was taken by an attempt given up on earlier: sign under the next one.
        if matches!(outcome, Ok(false)) {
            outcome = self.try_checkpoint(closing).await;
        }
        self.checkpoint_failed = !matches!(outcome, Ok(true));
        match outcome {
            Ok(true) => Ok(()),
            Ok(false) => Err(sqlx::Error::Protocol(
                "two checkpoint numbers in a row were taken".into(),
            )),
            Err(error) => Err(error),
        }
    }

    /// One checkpoint under the next number; false if that number was already stored (and is
    /// now counted as this writer's).
    async fn try_checkpoint(&mut self, closing: bool) -> Result<bool, sqlx::Error> {
        let number = self.checkpoints + 1;
        let signed_at = now_micros();
        let message = chain::checkpoint_message(
            &self.writer_id,
            number,
            self.head.seq,
            &self.head.hash,
            signed_at,
            closing,
        );
        let checkpoint = Checkpoint {
            writer_id: self.writer_id.clone(),
            number,
            seq: self.head.seq,
            record_hash: self.head.hash.clone(),
            signed_at,
            closing,
            key_id: self.key_id.clone(),
            signature: hex::encode(self.signer.sign(&message)),
        };
        let insert = async |conn: &mut _| store::insert_checkpoint(conn, &checkpoint).await;
        let inserted = match self.conn.run(self.store_timeout, insert).await {
            Ok(inserted) => inserted?,
            Err(_) => {
                return Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the audit store did not answer in time",
                )));
            }
        };
        self.checkpoints = number;
        Ok(inserted)
    }
}

/// Replays into the store every spool in `dir` that no running process holds (left by a process
/// stopped or killed while its store was down), then deletes it.
async fn replay_left_over(pool: &AnyPool, dir: &std::path::Path) -> Result<(), sqlx::Error> {
    std::fs::create_dir_all(dir)?;
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "spool"))
        .collect();
    paths.sort();
    for path in paths {
        // Locked: a live replica's own spool, not ours to replay.
        let Ok(mut spool) = Spool::open(&path, u64::MAX) else {
            continue;
        };
        if !spool.is_empty() {
            tracing::warn!(
                records = spool.records(),
                bytes = spool.bytes(),
                "audit spool from an earlier run: replaying it into the store"
            );
            let mut conn = pool.acquire().await?;
            while !spool.is_empty() {
                if let Err(error) = replay_step(&mut conn, &mut spool, 256).await {
                    conn.close_on_drop();
                    return Err(error);
                }
            }
            tracing::info!("audit spool replayed");
        }
        std::fs::remove_file(&path)?;
    }
    Ok(())
}

/// Inserts the next chunk of spooled records (idempotently) and moves the replay point past it;
/// truncates the spool once all of it is in the store.
async fn replay_step(
    conn: &mut AnyConnection,
    spool: &mut Spool,
    chunk: usize,
) -> Result<(), sqlx::Error> {
    let (batch, next) = spool.unreplayed(chunk.max(1)).map_err(sqlx::Error::Io)?;
    if !batch.is_empty() {
        let (records, keys): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|s| (s.record, s.key)).unzip();
        let keys: Vec<IdempotencyRow> = keys.into_iter().flatten().collect();
        store::insert_replayed(conn, &records, &keys).await?;
        spool.replayed_up_to(next);
    }
    if spool.fully_replayed() {
        spool.truncate().map_err(sqlx::Error::Io)?;
    }
    Ok(())
}

/// A failure reason safe to return to clients: the kind of error, not the database's text.
fn store_failure(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            "audit store unreachable".into()
        }
        _ => "audit store refused the write".into(),
    }
}

pub fn now_micros() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

fn new_writer_id() -> String {
    format!("w-{}", random_hex::<8>())
}

/// A new audit record id: the time in milliseconds (48 bits), then 80 random bits.
///
/// Ids made later sort later, so the unique index on them grows at its end, like the time
/// index, instead of dirtying a page at a random place for every record: a random id cost the
/// group commit one more written page per record. The time an id shows is in the answer
/// anyway (`checked_at`); 80 random bits a millisecond never collide across replicas.
pub fn new_record_id() -> String {
    let millis = u64::try_from(now_micros() / 1000).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    fill_random(&mut bytes[6..]);
    format!("r-{}", hex::encode(bytes))
}

fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    fill_random(&mut bytes);
    hex::encode(bytes)
}

fn fill_random(bytes: &mut [u8]) {
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), bytes)
        .expect("system randomness");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_sort_by_time_and_differ_within_a_millisecond() {
        let earlier = new_record_id();
        std::thread::sleep(Duration::from_millis(2));
        let burst: Vec<String> = (0..1000).map(|_| new_record_id()).collect();
        assert!(
            burst
                .iter()
                .all(|id| id.len() == 34 && id.starts_with("r-"))
        );
        assert!(
            burst.iter().all(|id| *id > earlier),
            "a later id sorts later"
        );
        let distinct: std::collections::HashSet<&String> = burst.iter().collect();
        assert_eq!(distinct.len(), burst.len());
        // The first 12 hex digits are the time in milliseconds.
        let millis = u64::from_str_radix(&earlier[2..14], 16).unwrap();
        let now = u64::try_from(now_micros() / 1000).unwrap();
        assert!(now >= millis && now - millis < 60_000);
    }
}
