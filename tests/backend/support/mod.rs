//! Private instances of the real services the backend's tests use, on free ports in temporary
//! directories, so tests neither depend on nor disturb services already on the machine (the
//! machine's own PostgreSQL on 5432 and Redis on 6379 are never contacted).

mod backend_process;
mod exit_guard;
mod gateway_sim;
pub mod personal_data;
mod postgres;
mod redis;
mod redis_cluster;

pub use backend_process::{BackendProcess, metric_in};
pub use exit_guard::ExitGuard;
pub use gateway_sim::{Counts, GatewaySim, USERNAME as GATEWAY_USERNAME};
pub use postgres::{Postgres, postgres};
pub use redis::RedisServer;
pub use redis_cluster::RedisCluster;

/// How many times each record id occurs in the audit log at `audit_url` (PostgreSQL): what
/// the fault tests compare the answers they received with (lost: absent; doubled: above 1).
pub async fn audit_record_counts(audit_url: &str) -> std::collections::HashMap<String, i64> {
    use sqlx::Row;
    let pool = sqlx::PgPool::connect(audit_url)
        .await
        .expect("the audit store");
    let rows = sqlx::query("SELECT record_id, COUNT(*) FROM audit_records GROUP BY record_id")
        .fetch_all(&pool)
        .await
        .expect("audit records");
    pool.close().await;
    rows.iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect()
}

/// A port the OS says is free now. Another process may take it before we bind it again: the
/// servers above check that what answers on it is their own process, and retry on another port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory for a test's data (removed on drop).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("bhyt-test")
        .tempdir()
        .expect("a temporary directory")
}

/// Waits up to 30 s for `ready`, polling; panics naming `what` (a bound against hangs).
pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..600 {
        if ready() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{what} did not become ready");
}

/// Polls `condition` every 20 ms for up to 20 s (a bound against hangs, not a timing claim).
pub async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut condition: F) {
    for _ in 0..1000 {
        if condition().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Whether this process runs as root (CI does), without a libc binding: /proc/self is owned by
/// the process's effective user.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
