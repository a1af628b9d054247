//! SQL connections for the registry and the audit log: SQLite (embedded default, a file under
//! the data directory) or PostgreSQL (for scale and for several replicas), through sqlx's `Any`
//! driver so one set of queries serves both. Queries therefore stick to types both share
//! (BIGINT, TEXT, BYTEA-as-blob) and `$n` placeholders.

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Connection, Executor};

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

/// SQLite refuses to open a missing file unless asked to create it.
fn sqlite_create_mode(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    }
}

/// Checks that the database answers, for health reporting.
pub async fn ping(pool: &AnyPool) -> bool {
    match pool.acquire().await {
        Ok(mut conn) => conn.ping().await.is_ok(),
        Err(_) => false,
    }
}
