//! Idempotency look-ups: whether a station's request id has been answered already, and with
//! what. Every check asks before anything else, so the look-ups of concurrent checks go to the
//! store together, one query per batch, the way the writer commits records in groups. A query
//! per check cost more than the rest of a cached check: for SQLite each query is a round trip
//! to its connection's worker thread, besides the pool and the statement.
//!
//! The store stays the only authority (nothing is remembered here), so a request answered by
//! another replica, or before a restart, is found. A batch waits for nothing but the query
//! before it: at low load a look-up is one query, as before.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::store::{self, AnswerKey, StoredAnswer};
use crate::db::HeldConnection;

/// Why a look-up has no answer: the store failed, or did not answer in time.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LookupError {
    #[error("the audit store failed: {0}")]
    Store(Arc<sqlx::Error>),
    #[error("the audit store did not answer in time")]
    TimedOut,
    #[error("the idempotency look-up has stopped")]
    Closed,
}

type Reply = oneshot::Sender<Result<Option<StoredAnswer>, LookupError>>;

/// Handle to this process's look-up task.
#[derive(Clone)]
pub struct AnswerLookup {
    sender: mpsc::Sender<(AnswerKey, Reply)>,
}

impl AnswerLookup {
    /// Starts the task; batches hold at most `max_batch` keys, and one batch's query is given
    /// up after `timeout` (its callers have given up by then too).
    pub fn start(pool: AnyPool, max_batch: usize, timeout: Duration) -> Self {
        let max_batch = max_batch.max(1);
        let (sender, receiver) = mpsc::channel(max_batch * 4);
        tokio::spawn(serve(pool, receiver, max_batch, timeout));
        Self { sender }
    }

    /// The answer stored for a key, if any.
    pub async fn find(
        &self,
        facility_code: &str,
        station_id: &str,
        request_id: &str,
    ) -> Result<Option<StoredAnswer>, LookupError> {
        let key = (
            facility_code.to_owned(),
            station_id.to_owned(),
            request_id.to_owned(),
        );
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((key, reply))
            .await
            .map_err(|_| LookupError::Closed)?;
        answer.await.map_err(|_| LookupError::Closed)?
    }
}

async fn serve(
    pool: AnyPool,
    mut receiver: mpsc::Receiver<(AnswerKey, Reply)>,
    max_batch: usize,
    timeout: Duration,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut held = HeldConnection::new(pool);
    loop {
        // Whatever queued while the last query ran is the next batch.
        let received = tokio::select! {
            received = receiver.recv_many(&mut batch, max_batch) => received,
            () = held.released_on_close() => continue,
        };
        if received == 0 {
            return;
        }
        let keys: Vec<&AnswerKey> = batch.iter().map(|(key, _)| key).collect();
        let query = async |conn: &mut _| store::stored_answers(conn, &keys).await;
        let found = match held.run(timeout, query).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(error)) => Err(LookupError::Store(Arc::new(error))),
            Err(_) => Err(LookupError::TimedOut),
        };
        reply_all(&mut batch, found);
    }
}

fn reply_all(
    batch: &mut Vec<(AnswerKey, Reply)>,
    found: Result<HashMap<AnswerKey, StoredAnswer>, LookupError>,
) {
    for (key, reply) in batch.drain(..) {
        // A caller that stopped waiting has dropped its receiver: nothing to do.
        let _ = reply.send(match &found {
            Ok(answers) => Ok(answers.get(&key).cloned()),
            Err(error) => Err(error.clone()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::store::IdempotencyRow;
    use crate::db;

    fn row(station: &str, request: &str) -> IdempotencyRow {
        IdempotencyRow {
            facility_code: "01821".into(),
            station_id: station.into(),
            request_id: request.into(),
            payload_hash: format!("h-{station}-{request}"),
            record_id: format!("r-{station}-{request}"),
            response: request.as_bytes().to_vec(),
            created_at: 1,
        }
    }

    /// Concurrent look-ups share batches, and each gets its own key's answer: a batch that
    /// answered every caller with one row, or matched a key on request id alone, fails here.
    #[tokio::test]
    async fn concurrent_look_ups_get_their_own_answers() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.sqlite").display());
        let pool = db::connect(&url, 2, db::Schema::Audit).await.unwrap();
        let rows: Vec<_> = (0..40)
            .map(|i| row(&format!("s{}", i % 3), &format!("q{i}")))
            .collect();
        let mut conn = pool.acquire().await.unwrap();
        store::insert_group(&mut conn, &[], &rows).await.unwrap();
        drop(conn);
        let lookup = AnswerLookup::start(pool, 16, Duration::from_secs(5));
        let asks = (0..60).map(|i| {
            let lookup = lookup.clone();
            async move {
                // Keys 40..60 do not exist; q1 under the wrong station does not either.
                let station = if i == 1 {
                    "s2".to_owned()
                } else {
                    format!("s{}", i % 3)
                };
                let found = lookup.find("01821", &station, &format!("q{i}")).await;
                (i, found.unwrap())
            }
        });
        for (i, found) in futures::future::join_all(asks).await {
            match found {
                Some(answer) => {
                    assert!(i < 40 && i != 1, "q{i} must not be found");
                    assert_eq!(answer.record_id, format!("r-s{}-q{i}", i % 3));
                    assert_eq!(answer.response, format!("q{i}").into_bytes());
                }
                None => assert!(i >= 40 || i == 1, "q{i} must be found"),
            }
        }
    }

    #[tokio::test]
    async fn a_failing_store_is_an_error_not_a_new_request() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.sqlite").display());
        let pool = db::connect(&url, 1, db::Schema::Audit).await.unwrap();
        let lookup = AnswerLookup::start(pool.clone(), 16, Duration::from_secs(5));
        pool.close().await;
        let found = lookup.find("01821", "s", "q").await;
        assert!(matches!(found, Err(LookupError::Store(_))), "{found:?}");
    }
}
