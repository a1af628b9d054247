//! The test harness itself: the services it starts are private, really stop, restart and
//! vanish, and clean-up survives a killed test process. The other tests' claims rest on this.

use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::support::{self, ExitGuard, Postgres, RedisServer, wait_for};

fn redis(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn refused(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn redis_servers_are_private_and_count_hits() {
    let started = Instant::now();
    let (a, b) = (RedisServer::start(), RedisServer::start());
    eprintln!("two redis-servers started in {:?}", started.elapsed());
    assert_ne!(a.port(), b.port());
    assert!(![a.port(), b.port()].contains(&6379));

    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .exec(&mut redis(&a))
        .unwrap();
    let in_b: Option<String> = redis::cmd("GET").arg("k").query(&mut redis(&b)).unwrap();
    assert_eq!(
        in_b, None,
        "a key set in one server is visible in the other"
    );

    // A hit moves keyspace_hits by one, a miss does not (so the counter read is the right one).
    let hits = a.info_stat("keyspace_hits");
    let _: Option<String> = redis::cmd("GET").arg("k").query(&mut redis(&a)).unwrap();
    assert_eq!(a.info_stat("keyspace_hits"), hits + 1);
    let _: Option<String> = redis::cmd("GET").arg("none").query(&mut redis(&a)).unwrap();
    assert_eq!(a.info_stat("keyspace_hits"), hits + 1);
    assert_eq!(a.keys(), ["k"]);
}

#[test]
fn redis_is_killed_restarted_on_its_port_and_gone_after_drop() {
    let mut server = RedisServer::start();
    let port = server.port();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .exec(&mut redis(&server))
        .unwrap();
    server.kill();
    assert!(refused(port), "a killed Redis still answers");
    server.restart();
    assert_eq!(server.port(), port);
    assert!(server.keys().is_empty(), "a restarted Redis kept data");
    drop(server);
    assert!(refused(port), "a dropped Redis still answers");
}

/// A taken port is detected even when another Redis answers PING on it: without the check that
/// the answering process is ours, `start_on` would return a handle to `a`.
#[test]
fn redis_on_a_taken_port_is_refused() {
    let a = RedisServer::start();
    assert!(RedisServer::start_on(a.port()).is_none());
}

#[tokio::test]
async fn shared_postgres_is_private_unprivileged_and_has_fresh_databases() {
    let started = Instant::now();
    let pg = support::postgres().await;
    eprintln!("shared PostgreSQL ready after {:?}", started.elapsed());
    assert_ne!(pg.port(), 5432);

    let (a, b) = (pg.fresh_database().await, pg.fresh_database().await);
    assert_ne!(a, b);
    let mut a = sqlx::PgConnection::connect(&a).await.unwrap();
    sqlx::query("CREATE TABLE t (x int)")
        .execute(&mut a)
        .await
        .unwrap();
    let mut b = sqlx::PgConnection::connect(&b).await.unwrap();
    assert!(
        sqlx::query("SELECT x FROM t")
            .execute(&mut b)
            .await
            .is_err()
    );

    // The server that answers is the harness's own cluster, not the machine's.
    let (port, data, fsync): (i32, String, String) = sqlx::query_as(
        "SELECT inet_server_port(), current_setting('data_directory'), current_setting('fsync')",
    )
    .fetch_one(&mut a)
    .await
    .unwrap();
    assert_eq!(port, i32::from(pg.port()));
    assert!(data.starts_with(pg.dir().to_str().unwrap()), "{data}");
    assert_eq!(fsync, "off");
    let owner = std::fs::metadata(&data).unwrap().uid();
    assert_ne!(owner, 0, "the cluster belongs to root");
}

#[tokio::test]
async fn own_postgres_stops_restarts_and_is_removed_on_drop() {
    let started = Instant::now();
    let mut pg = Postgres::start();
    eprintln!("own PostgreSQL cluster started in {:?}", started.elapsed());
    let url = pg.database("kept").await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE t AS SELECT 1 AS x")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    let port = pg.port();
    pg.stop();
    assert!(refused(port), "a stopped cluster still answers");
    pg.restart();
    assert_eq!(pg.port(), port);
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let (x,): (i32,) = sqlx::query_as("SELECT x FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(x, 1, "an immediate stop lost committed data");
    drop(conn);

    let dir = pg.dir().to_owned();
    drop(pg);
    assert!(refused(port), "a dropped cluster still answers");
    assert!(!dir.exists(), "a dropped cluster left {}", dir.display());
}

#[test]
fn exit_guard_fires_on_drop_not_on_cancel() {
    let dir = support::temp_dir();
    let mark = |name: &str| {
        let path = dir.path().join(name);
        let guard = ExitGuard::spawn(Command::new("sh"), &format!("touch '{}'", path.display()));
        (guard, path)
    };
    let (guard, fired) = mark("fired");
    assert!(!fired.exists(), "the guard acted before its owner ended");
    drop(guard);
    assert!(fired.exists());
    let (guard, cancelled) = mark("cancelled");
    guard.cancel();
    assert!(!cancelled.exists());
}

/// The guard acts when its owner dies without running Drop: the owner is this test binary run
/// again as a child, with only `guard_owner` selected. If anything else held the guard's pipe
/// open, or the guard depended on Drop, the mark would never appear and `wait_for` would fail.
#[test]
fn exit_guard_fires_when_its_process_is_killed() {
    let dir = support::temp_dir();
    let mut owner = guard_owner_process(dir.path(), "mark");
    let fired = dir.path().join("fired");
    assert!(!fired.exists(), "the guard acted while its owner lived");
    owner.kill().unwrap();
    owner.wait().unwrap();
    wait_for("the guard's action", || fired.exists());
}

/// As `timeout` or Ctrl-C do, SIGTERM reaches the owner's whole process group, the guards and
/// `setpriv`-run PostgreSQL programs included; a guard that did not ignore it, or one cut short
/// by a supervising `runuser`, would leave the cluster running and its directory behind.
#[test]
fn a_terminated_test_process_leaves_no_postgres_behind() {
    let dir = support::temp_dir();
    let mut owner = guard_owner_process(dir.path(), "postgres");
    let armed = std::fs::read_to_string(dir.path().join("armed")).unwrap();
    let (port, cluster) = armed.split_once(' ').unwrap();
    let (port, cluster): (u16, &std::path::Path) = (port.parse().unwrap(), cluster.as_ref());
    assert!(!refused(port) && cluster.exists());
    let group = format!("-{}", owner.id());
    let kill = Command::new("kill").args(["-TERM", "--", &group]).status();
    assert!(kill.unwrap().success());
    owner.wait().unwrap();
    wait_for("the cluster to be stopped and removed", || {
        refused(port) && !cluster.exists()
    });
}

/// Runs `guard_owner` in a process group of its own and waits until it is armed.
fn guard_owner_process(dir: &std::path::Path, kind: &str) -> std::process::Child {
    let owner = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "harness_selftest::guard_owner", "--ignored"])
        .env("BHYT_GUARD_DIR", dir)
        .env("BHYT_GUARD_KIND", kind)
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the guard owner", || dir.join("armed").exists());
    owner
}

/// Only run by `guard_owner_process` (does nothing otherwise): holds a guard that marks a file,
/// or a PostgreSQL cluster, until it is killed.
#[test]
#[ignore = "the child process of the tests above"]
fn guard_owner() {
    let Some(dir) = std::env::var_os("BHYT_GUARD_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let armed = dir.join("armed");
    let _held: Box<dyn std::any::Any> = match std::env::var("BHYT_GUARD_KIND").as_deref() {
        Ok("postgres") => {
            let pg = Postgres::start();
            let info = format!("{} {}", pg.port(), pg.dir().display());
            std::fs::write(dir.join("armed.tmp"), info).unwrap();
            std::fs::rename(dir.join("armed.tmp"), &armed).unwrap();
            Box::new(pg)
        }
        _ => {
            let guard = ExitGuard::spawn(
                Command::new("sh"),
                &format!("touch '{}'", dir.join("fired").display()),
            );
            std::fs::write(&armed, "").unwrap();
            Box::new(guard)
        }
    };
    std::thread::sleep(Duration::from_secs(60));
}
