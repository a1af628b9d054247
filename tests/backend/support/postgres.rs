//! A private PostgreSQL cluster.
//!
//! `initdb` and `postgres` refuse to run as root, and CI runs as root: as root the cluster runs
//! as `nobody` (via `runuser`). The binaries are found under /usr/lib/postgresql/<version>/bin.
//! fsync is off: these clusters hold throw-away test data, and durability across a power cut is
//! not what the tests examine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sqlx::Connection;

use super::{free_port, wait_for};

pub struct Postgres {
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    running: bool,
}

/// The cluster shared by this test binary's tests; each test creates its own databases.
pub async fn postgres() -> &'static Postgres {
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    SHARED.get_or_init(Postgres::start)
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/test.sh installs it)")
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs a PostgreSQL program, as `nobody` when we are root.
fn command(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

impl Postgres {
    /// A new cluster of its own (stopped and removed on drop).
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("bhyt-pg")
            .tempdir()
            .unwrap();
        if is_root() {
            let status = Command::new("chown")
                .arg("-R")
                .arg("nobody")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown of the cluster directory");
        }
        let data = dir.path().join("data");
        let status = command(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .stdout(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb failed");
        let mut pg = Self {
            port: free_port(),
            dir,
            bin,
            running: false,
        };
        pg.launch();
        pg
    }

    fn launch(&mut self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("postgres.log");
        // The watchdog stops the cluster when this test process ends, even if it is killed. (It
        // runs as `nobody`, which may not signal us: it watches /proc instead.)
        let script = format!(
            "{postgres} -D {data} -p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c max_connections=200 >{log} 2>&1 & pg=$!; \
             while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 1; done; kill -INT $pg",
            postgres = self.bin.join("postgres").display(),
            data = data.display(),
            port = self.port,
            sock = self.dir.path().display(),
            log = log.display(),
            parent = std::process::id(),
        );
        let mut sh = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--", "sh", "-c", &script]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", &script]);
            c
        };
        sh.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        let addr = format!("127.0.0.1:{}", self.port);
        wait_for("postgres", || std::net::TcpStream::connect(&addr).is_ok());
        self.running = true;
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub async fn database(&self, name: &str) -> String {
        let mut conn = connect_retrying(&self.admin_url()).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the cluster at once (immediate mode: like a crash).
    pub fn stop(&mut self) {
        if self.running {
            let _ = command(&self.bin, "pg_ctl")
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.running = false;
        }
    }

    /// Starts a stopped cluster again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

/// The server may accept TCP before it accepts logins.
async fn connect_retrying(url: &str) -> sqlx::PgConnection {
    for _ in 0..200 {
        if let Ok(conn) = sqlx::PgConnection::connect(url).await {
            return conn;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("cannot log in to the test cluster");
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
