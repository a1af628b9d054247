//! Checking the audit log: every chain re-computed from its genesis, every checkpoint's
//! signature verified and compared with the record it names.
//!
//! What each kind of tampering breaks:
//! - a changed field: that record's hash no longer matches (`hash_mismatch`);
//! - a changed record with every later hash recomputed: the chain is consistent again, but a
//!   signed checkpoint names the old hash (`checkpoint_mismatch`);
//! - a deleted or inserted record in the middle: the sequence numbers or the links break
//!   (`gap`, `chain_break`);
//! - deleted newest records: a checkpoint names a record that is gone (`tail_missing`); deleting
//!   that checkpoint too leaves a chain with no closing checkpoint whose writer has gone quiet
//!   (`unclosed`), or a hole in the checkpoint numbers (`checkpoint_missing`).
//!
//! Records appended after a running writer's latest checkpoint (at most one checkpoint interval)
//! are covered only once the next checkpoint is signed.

use std::collections::HashMap;

use sqlx::AnyPool;

use super::chain;
use super::store;
use crate::keys::CheckpointVerifier;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub writer_id: String,
    pub seq: i64,
    pub kind: &'static str,
    pub detail: String,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub records_checked: u64,
    pub writers_checked: u64,
    pub checkpoints_verified: u64,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What the check needs besides the database.
pub struct Verification<'a> {
    /// Public keys that may have signed checkpoints, by key id.
    pub keys: &'a [CheckpointVerifier],
    /// Only chains with records in [from, to) (Unix microseconds); `None`: every chain.
    pub range: Option<(i64, i64)>,
    /// Now, and how long a live writer may go without a checkpoint, in microseconds.
    pub now: i64,
    pub quiet_after: i64,
}

const PAGE: i64 = 10_000;

pub async fn verify(pool: &AnyPool, v: &Verification<'_>) -> Result<Report, sqlx::Error> {
    let keys: HashMap<String, &CheckpointVerifier> =
        v.keys.iter().map(|k| (k.key_id(), k)).collect();
    let mut report = Report::default();
    for writer_id in store::writers(pool).await? {
        if let Some((from, to)) = v.range {
            if store::seq_range(pool, &writer_id, from, to)
                .await?
                .is_none()
            {
                continue;
            }
        }
        report.writers_checked += 1;
        check_writer(pool, &writer_id, &keys, v, &mut report).await?;
    }
    Ok(report)
}

async fn check_writer(
    pool: &AnyPool,
    writer_id: &str,
    keys: &HashMap<String, &CheckpointVerifier>,
    v: &Verification<'_>,
    report: &mut Report,
) -> Result<(), sqlx::Error> {
    let mut problem = |seq: i64, kind: &'static str, detail: String| {
        report.problems.push(Problem {
            writer_id: writer_id.to_owned(),
            seq,
            kind,
            detail,
        });
    };

    // Checkpoints first: only those with a good signature are evidence.
    let checkpoints = store::checkpoints(pool, writer_id).await?;
    let mut named: HashMap<i64, Vec<String>> = HashMap::new();
    let mut verified = 0;
    for (i, c) in checkpoints.iter().enumerate() {
        if c.number != i as i64 + 1 {
            problem(
                c.seq,
                "checkpoint_missing",
                format!("checkpoint {} follows {}", c.number, i),
            );
        }
        let message = chain::checkpoint_message(
            writer_id,
            c.number,
            c.seq,
            &c.record_hash,
            c.signed_at,
            c.closing,
        );
        let signed = keys
            .get(&c.key_id)
            .is_some_and(|k| hex::decode(&c.signature).is_ok_and(|sig| k.verify(&message, &sig)));
        if !signed {
            problem(
                c.seq,
                "bad_signature",
                format!("checkpoint {} is not signed by a trusted key", c.number),
            );
            continue;
        }
        verified += 1;
        if c.seq > 0 {
            named.entry(c.seq).or_default().push(c.record_hash.clone());
        }
    }
    match checkpoints.last() {
        None => problem(
            0,
            "checkpoint_missing",
            "the chain has no checkpoint".into(),
        ),
        Some(last) if !last.closing && v.now - last.signed_at > v.quiet_after => problem(
            last.seq,
            "unclosed",
            "the chain ends without a closing checkpoint and its writer is silent: \
             the newest records may have been deleted, or the writer stopped abruptly"
                .into(),
        ),
        _ => {}
    }

    // Then the chain itself, from its genesis.
    let mut expected_seq = 1;
    let mut prev_hash = chain::genesis_hash(writer_id);
    loop {
        let page = store::chain_segment(pool, writer_id, expected_seq, PAGE).await?;
        let Some(last) = page.last() else { break };
        let next_from = last.seq + 1;
        for r in &page {
            report.records_checked += 1;
            if r.seq != expected_seq {
                problem(
                    r.seq,
                    "gap",
                    format!("records {expected_seq}..{} are missing", r.seq - 1),
                );
            }
            if r.prev_hash != prev_hash {
                problem(
                    r.seq,
                    "chain_break",
                    "does not link to the record before it".into(),
                );
            }
            if chain::record_hash(writer_id, r.seq, &r.prev_hash, &r.entry) != r.record_hash {
                problem(
                    r.seq,
                    "hash_mismatch",
                    "the record's contents do not match its hash".into(),
                );
            }
            if let Some(hashes) = named.remove(&r.seq) {
                if hashes.iter().any(|h| *h != r.record_hash) {
                    problem(
                        r.seq,
                        "checkpoint_mismatch",
                        "a signed checkpoint names another hash".into(),
                    );
                }
            }
            prev_hash = r.record_hash.clone();
            expected_seq = r.seq + 1;
        }
        expected_seq = expected_seq.max(next_from);
    }
    // Checkpointed records inside the chain that are gone were reported as gaps already.
    let mut missing: Vec<i64> = named
        .into_keys()
        .filter(|seq| *seq >= expected_seq)
        .collect();
    missing.sort_unstable();
    for seq in missing {
        problem(
            seq,
            "tail_missing",
            format!("a signed checkpoint names record {seq}, which is gone"),
        );
    }
    report.checkpoints_verified += verified;
    Ok(())
}
