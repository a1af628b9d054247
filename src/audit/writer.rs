//! The audit writer: one task per backend process that owns its hash chain and commits records
//! in groups. A check's answer is released only after the transaction holding its record has
//! committed, so "answered" implies "durably recorded"; grouping the records of concurrent checks
//! into one transaction keeps that cheap (one fsync for many records).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::chain::{self, AuditEntry, ChainedRecord};
use super::store::{self, Checkpoint, IdempotencyRow};
use crate::keys::CheckpointSigner;
use crate::metrics::Metrics;

#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("the audit log cannot be written ({0}); the check was not recorded")]
    Unavailable(String),
    #[error("the audit log is shutting down")]
    Closed,
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
}

/// The tail of the chain: the last committed record.
struct Head {
    seq: i64,
    hash: String,
}

struct Writer {
    pool: AnyPool,
    writer_id: String,
    signer: CheckpointSigner,
    key_id: String,
    metrics: Arc<Metrics>,
    head: Head,
    checkpoints: i64,
    max_batch: usize,
}

pub struct WriterOptions {
    pub max_batch: usize,
    pub checkpoint_interval: Duration,
    pub commit_timeout: Duration,
}

impl AuditLog {
    /// Registers a new writer (a fresh chain) and starts its task.
    pub async fn start(
        pool: AnyPool,
        signer: CheckpointSigner,
        metrics: Arc<Metrics>,
        options: WriterOptions,
    ) -> Result<Self, sqlx::Error> {
        let writer_id = new_writer_id();
        let key_id = signer.verifier().key_id();
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        store::register_writer(&pool, &writer_id, now_micros(), &key_id, &host).await?;
        let mut writer = Writer {
            pool,
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
        };
        // The first checkpoint (at seq 0) says "this chain exists", so deleting all of a
        // writer's records still shows.
        writer.checkpoint(false).await?;
        let (sender, receiver) = mpsc::channel(options.max_batch.max(1) * 4);
        tokio::spawn(writer.run(receiver, options.checkpoint_interval));
        Ok(Self {
            sender,
            writer_id: writer_id.into(),
            commit_timeout: options.commit_timeout,
        })
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
        loop {
            let first = tokio::select! {
                message = receiver.recv() => message,
                _ = tick.tick() => {
                    if let Err(error) = self.checkpoint(false).await {
                        tracing::error!(%error, "audit checkpoint failed");
                    }
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
                if let Err(error) = self.checkpoint(true).await {
                    tracing::error!(%error, "closing audit checkpoint failed");
                }
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
        match store::insert_group(&self.pool, &records, &keys).await {
            Ok(()) => {
                self.head = Head { seq, hash: prev };
                self.metrics
                    .audit_committed(records.len(), started.elapsed());
                for s in group {
                    let _ = s.reply.send(Ok(()));
                }
            }
            Err(error) => {
                self.metrics.audit_failed();
                tracing::error!(%error, records = group.len(), "audit commit failed");
                let reason = AuditError::Unavailable(store_failure(&error));
                for s in group {
                    let _ = s.reply.send(Err(reason.clone()));
                }
                // The commit may have failed after the data reached the disk: continue the chain
                // from what the store holds.
                self.reload_head().await;
            }
        }
    }

    async fn reload_head(&mut self) {
        match store::chain_head(&self.pool, &self.writer_id).await {
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

    async fn checkpoint(&mut self, closing: bool) -> Result<(), sqlx::Error> {
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
        store::insert_checkpoint(&self.pool, &checkpoint).await?;
        self.checkpoints = number;
        Ok(())
    }
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

/// A new audit record id: 128 random bits, so ids reveal nothing and never collide across
/// replicas.
pub fn new_record_id() -> String {
    format!("r-{}", random_hex::<16>())
}

fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("system randomness");
    hex::encode(bytes)
}
