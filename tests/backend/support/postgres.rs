//! A private PostgreSQL cluster: its own directory (data, log and unix socket), a free port on
//! 127.0.0.1, trust authentication for the `postgres` role.
//!
//! `initdb` and `postgres` refuse to run as root, and CI runs as root: then every PostgreSQL
//! program runs as `nobody` (via `setpriv`), in a directory `nobody` owns. The binaries live under
//! /usr/lib/postgresql/<version>/bin, not on PATH; the newest version is used.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

use super::{ExitGuard, free_port, is_root};

pub struct Postgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    running: bool,
    /// Stops the cluster and removes its directory when this process ends, however it ends:
    /// Drop never runs for the shared cluster, a static.
    guard: Option<ExitGuard>,
}

/// The cluster shared by this test binary's tests (start-up takes seconds); each test creates
/// its own databases in it.
pub async fn postgres() -> &'static Postgres {
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    SHARED.get_or_init(Postgres::start)
}

impl Postgres {
    /// A new cluster of its own (stopped and removed on drop).
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = directory_for_nobody();
        let data = dir.join("data");
        // A cluster left frozen (see `freeze`) is woken first, or it could not stop.
        let guard = ExitGuard::spawn(
            unprivileged("sh"),
            &format!(
                "pid=$(head -n 1 '{data}/postmaster.pid' 2>/dev/null) && \
                 {{ pkill -CONT -P \"$pid\"; kill -CONT \"$pid\"; }} >/dev/null 2>&1; \
                 {pg_ctl} -D '{data}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{dir}'",
                pg_ctl = bin.join("pg_ctl").display(),
                data = data.display(),
                dir = dir.display(),
            ),
        );
        let copy = unprivileged("cp")
            .arg("-a")
            .arg(template(&bin))
            .arg(&data)
            .status()
            .expect("cp runs");
        assert!(copy.success(), "copying the template cluster failed");
        let mut pg = Self {
            port: 0,
            dir,
            bin,
            running: false,
            guard: Some(guard),
        };
        for _ in 0..5 {
            match pg.launch(free_port()) {
                Ok(()) => return pg,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("postgres did not start:\n{log}"),
            }
        }
        panic!("postgres could not get a free port in five tries");
    }

    /// Starts the server on `port` and waits until it accepts connections (`pg_ctl -w` watches
    /// our own data directory, so a server of someone else on that port is never mistaken for
    /// ours); on failure, the server log.
    fn launch(&mut self, port: u16) -> Result<(), String> {
        let log = self.dir.join("postgres.log");
        // fsync=off: the data is thrown away after the test, and no test can observe durability
        // across a power cut; with fsync on, every commit waits for the disk that several
        // builds share.
        let options = format!(
            "-p {port} -k '{sock}' -c listen_addresses=127.0.0.1 -c fsync=off \
             -c max_connections=200",
            sock = self.dir.display(),
        );
        let status = unprivileged(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        if !status.success() {
            return Err(std::fs::read_to_string(&log).unwrap_or_default());
        }
        self.port = port;
        self.running = true;
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the cluster's data, log and socket.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of database `name` (which `database` creates).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` (lower-case letters, digits, `_`) and returns its URL.
    pub async fn database(&self, name: &str) -> String {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "database name {name:?}"
        );
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .expect("the test cluster accepts logins");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        self.url(name)
    }

    /// Creates a database with a name no other test of this process uses.
    pub async fn fresh_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.database(&format!("fresh_{n}")).await
    }

    /// Stops the cluster at once (immediate mode: like a crash; the data stays).
    pub fn stop(&mut self) {
        if self.running {
            let _ = unprivileged(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.running = false;
        }
    }

    /// Freezes the cluster (SIGSTOP to the server and its backends): connections stay open and
    /// new ones are accepted by the kernel, but nothing is answered, as with a hung store.
    pub fn freeze(&self) {
        self.signal_all("-STOP");
    }

    /// Wakes a frozen cluster.
    pub fn thaw(&self) {
        self.signal_all("-CONT");
    }

    /// Sends `signal` to the backends first, then the server (which would otherwise start new
    /// backends in between).
    fn signal_all(&self, signal: &str) {
        let pid_file = self.dir.join("data/postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).expect("postmaster.pid of a running cluster");
        let pid = text
            .lines()
            .next()
            .expect("the server's pid")
            .trim()
            .to_owned();
        let children = Command::new("pkill")
            .args([signal, "-P", &pid])
            .status()
            .expect("pkill runs");
        assert!(
            children.code().is_some_and(|c| c <= 1),
            "pkill {signal} failed"
        );
        let server = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(server.success(), "kill {signal} {pid} failed");
    }

    /// Starts a stopped cluster again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.launch(self.port) {
            panic!("postgres did not restart:\n{log}");
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.running = false;
        if let Some(guard) = self.guard.take() {
            guard.fire();
        }
    }
}

/// A freshly initialised, never started data directory that clusters copy: `initdb` is most of
/// a cluster's start-up (1 s on an idle machine, several when builds share the cores), so it
/// runs once per test binary. Removed when the process ends.
fn template(bin: &Path) -> &'static Path {
    static TEMPLATE: OnceLock<(PathBuf, ExitGuard)> = OnceLock::new();
    let (data, _) = TEMPLATE.get_or_init(|| {
        let dir = directory_for_nobody();
        let guard = ExitGuard::spawn(unprivileged("sh"), &format!("rm -rf '{}'", dir.display()));
        let data = dir.join("data");
        let init = unprivileged(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            // Nothing here has to survive a power cut: skip the fsyncs.
            .arg("--no-sync")
            .output()
            .expect("initdb runs");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        (data, guard)
    });
    data
}

/// A new temporary directory, owned by `nobody` when we are root.
fn directory_for_nobody() -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("bhyt-pg")
        .tempdir()
        .unwrap()
        .keep();
    if is_root() {
        let status = Command::new("chown")
            .arg("nobody")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "chown nobody {}", dir.display());
    }
    dir
}

/// The newest installed PostgreSQL's bin directory.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/test.sh installs it)")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let version = path.file_name()?.to_str()?.parse().ok()?;
            Some((version, path.join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("an initdb under /usr/lib/postgresql/<version>/bin")
        .1
}

/// A command for `program`, run as `nobody` when we are root (PostgreSQL refuses root).
/// `setpriv` execs the program itself; `runuser` would stay in between and, on SIGTERM, kill it
/// two seconds later, cutting short the exit guard's clean-up.
fn unprivileged(program: impl AsRef<std::ffi::OsStr>) -> Command {
    if is_root() {
        let (uid, gid) = nobody();
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .args(["--clear-groups", "--"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// The user and group ids of `nobody`, from /etc/passwd.
fn nobody() -> (String, String) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"nobody") && fields.len() > 3)
                .then(|| (fields[2].to_owned(), fields[3].to_owned()))
        })
        .expect("a user `nobody` in /etc/passwd")
}
