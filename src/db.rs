//! SQL connections for the registry and the audit log: SQLite (embedded default, a file under
//! the data directory) or PostgreSQL (for scale and for several replicas), through sqlx's `Any`
//! driver so one set of queries serves both. Queries therefore stick to types both share
//! (BIGINT, TEXT, BYTEA-as-blob) and `$n` placeholders.

use std::pin::Pin;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::pool::{CloseEvent, PoolConnection};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor};

/// Which schema a pool serves; both may live in one database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    Registry,
    Audit,
}

/// Opens a pool on `url` (`sqlite://path` or `postgres://...`) and brings its schema up to date.
///
/// SQLite runs in WAL mode with `synchronous=FULL`: a committed audit record must survive a power
/// cut, which is the promise made before an answer is sent.
pub async fn connect(
    url: &str,
    max_connections: u32,
    schema: Schema,
) -> Result<AnyPool, sqlx::Error> {
    install_default_drivers();
    let url = sqlite_create_mode(url);
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                if conn.backend_name() == "SQLite" {
                    conn.execute(
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    let mut migrator: Migrator = match schema {
        Schema::Registry => sqlx::migrate!("./migrations/registry"),
        Schema::Audit => sqlx::migrate!("./migrations/audit"),
    };
    // The other schema's migrations may share this database.
    migrator.set_ignore_missing(true);
    migrator.run(&pool).await?;
    Ok(pool)
}

/// SQLite refuses to open a missing file unless asked to create it, and cannot create its
/// directory.
fn sqlite_create_mode(url: &str) -> String {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p))
        && let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
    {
        // A failure here shows as SQLite's own "unable to open database file".
        let _ = std::fs::create_dir_all(dir);
    }
    if url.starts_with("sqlite:") && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    }
}

/// `count` bind parameters from the `first`, comma-separated.
///
/// PostgreSQL needs them numbered (`$1`). SQLite takes `$1` too, but sqlx binds each named
/// parameter by asking SQLite for its name, which SQLite finds by a linear search: quadratic in
/// the parameters of a statement, and 30 times slower for a 500-row INSERT. So SQLite gets
/// anonymous `?`, bound in order.
pub fn parameters(conn: &AnyConnection, first: usize, count: usize) -> String {
    let numbered = conn.backend_name() != "SQLite";
    let mut list = String::with_capacity(count * 6);
    for n in first..first + count {
        if n > first {
            list.push_str(", ");
        }
        if numbered {
            list.push('$');
            list.push_str(&n.to_string());
        } else {
            list.push('?');
        }
    }
    list
}

/// `(…), (…)`: `rows` groups of `columns` parameters, numbered on from 1.
pub fn value_rows(conn: &AnyConnection, rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", parameters(conn, row * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that the database answers, for health reporting.
pub async fn ping(pool: &AnyPool) -> bool {
    match pool.acquire().await {
        Ok(mut conn) => conn.ping().await.is_ok(),
        Err(_) => false,
    }
}

/// A connection one task keeps between its queries (the audit writer, the idempotency
/// look-ups): taking a connection from the pool and giving it back costs a ping each way, for
/// SQLite two hand-offs to the connection's worker thread, as much as the query itself.
///
/// A connection whose query failed, or was given up on, is closed rather than reused: it may be
/// inside a transaction, or still running one. It is given back when the pool is closing, so
/// closing the pool does not wait for this task.
pub struct HeldConnection {
    pool: AnyPool,
    conn: Option<PoolConnection<Any>>,
    /// Run on each new connection (for SQLite only).
    sqlite_setup: &'static str,
    closing: Pin<Box<CloseEvent>>,
}

impl HeldConnection {
    pub fn new(pool: AnyPool) -> Self {
        Self::with_sqlite_setup(pool, "")
    }

    /// As [`new`](Self::new), running `setup` on each new SQLite connection (a PRAGMA that
    /// holds for this task's use of it).
    pub fn with_sqlite_setup(pool: AnyPool, setup: &'static str) -> Self {
        let closing = Box::pin(pool.close_event());
        Self {
            pool,
            conn: None,
            sqlite_setup: setup,
            closing,
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The held connection, taken from the pool first if there is none.
    pub async fn get(&mut self) -> Result<&mut AnyConnection, sqlx::Error> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let mut conn = self.pool.acquire().await?;
                if !self.sqlite_setup.is_empty() && conn.backend_name() == "SQLite" {
                    conn.execute(self.sqlite_setup).await?;
                }
                conn
            }
        };
        Ok(&mut **self.conn.insert(conn))
    }

    /// Runs `query` on the held connection, bounded by `timeout`. A connection whose query
    /// failed or timed out is closed, never reused.
    pub async fn run<T>(
        &mut self,
        timeout: Duration,
        query: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, sqlx::Error>,
    ) -> Result<Result<T, sqlx::Error>, tokio::time::error::Elapsed> {
        let outcome = tokio::time::timeout(timeout, async { query(self.get().await?).await }).await;
        if !matches!(outcome, Ok(Ok(_))) {
            self.discard();
        }
        outcome
    }

    /// Closes the held connection: its last query failed or was given up on.
    pub fn discard(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
    }

    /// Gives the connection back to the pool.
    pub fn release(&mut self) {
        self.conn = None;
    }

    /// Resolves once the pool is closing while a connection is held, after giving it back;
    /// never otherwise. For the task's `select!` loop.
    pub async fn released_on_close(&mut self) {
        if self.conn.is_none() {
            return std::future::pending().await;
        }
        self.closing.as_mut().await;
        self.release();
    }
}
