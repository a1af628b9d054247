//! The processes a benchmark starts: private redis-server and PostgreSQL (free ports, temporary
//! directories, never the machine's own services), the backend and the bare baseline server,
//! each pinned to a core with `taskset`.
//!
//! Every process is ended when its handle drops, and also when the driver is killed: a small
//! shell per process waits for the end of a pipe only the driver holds (as the test harness in
//! tests/backend/support does).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::load::ClientTls;
use crate::mix::FACILITY;

/// A port the OS says is free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `program` run on the given CPU core (a `taskset` list such as "0"), or unpinned when `core`
/// is None or taskset is missing.
pub fn pinned(core: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match core {
        Some(core) if taskset_available() => {
            let mut c = Command::new("taskset");
            c.args(["-c", core]).arg(program);
            c
        }
        _ => Command::new(program),
    }
}

pub fn taskset_available() -> bool {
    Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a shell action when the driver process ends however it ends, or when fired.
pub struct ExitGuard {
    shell: Child,
    pipe: Option<ChildStdin>,
}

impl ExitGuard {
    pub fn spawn(mut sh: Command, action: &str) -> Self {
        let script =
            format!("trap '' INT HUP; read -r word; [ \"$word\" = cancel ] || {{ {action}; }}");
        let mut shell = sh
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh starts");
        let pipe = shell.stdin.take();
        Self { shell, pipe }
    }

    /// Runs the action now and waits for it.
    pub fn fire(mut self) {
        drop(self.pipe.take());
        let _ = self.shell.wait();
    }

    /// Never runs the action.
    pub fn cancel(mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(b"cancel\n");
        }
        let _ = self.shell.wait();
    }
}

/// A child process killed on drop (or when the driver dies).
pub struct Process {
    pub name: String,
    child: Child,
    guard: Option<ExitGuard>,
}

impl Process {
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log)?;
        let child = command
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let guard = ExitGuard::spawn(Command::new("sh"), &format!("kill -9 {}", child.id()));
        Ok(Self {
            name: name.into(),
            child,
            guard: Some(guard),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status})", self.name);
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.cancel();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts TCP connections on `port`, while `process` lives.
pub fn wait_for_port(process: &mut Process, port: u16, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        process.check_alive()?;
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} did not listen on {port} in {within:?}", process.name);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private redis-server: no persistence, its own port and directory.
pub struct Redis {
    pub port: u16,
    pub process: Process,
    _dir: tempfile::TempDir,
}

impl Redis {
    pub fn start(core: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("bhyt-bench-redis")
            .tempdir()?;
        let port = free_port();
        let mut command = pinned(core, "redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path());
        let mut process = Process::spawn("redis-server", command, &dir.path().join("log"))?;
        wait_for_port(&mut process, port, Duration::from_secs(20))?;
        let redis = Self {
            port,
            process,
            _dir: dir,
        };
        redis.command("PING")?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends one inline command and returns the first line of the reply.
    pub fn command(&self, command: &str) -> anyhow::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(format!("{command}\r\n").as_bytes())?;
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned())
    }
}

/// A private PostgreSQL cluster. `initdb` and `postgres` refuse root: as root, they run as
/// `nobody` in a directory it owns. Binaries from the newest /usr/lib/postgresql/<v>/bin.
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    guard: Option<ExitGuard>,
}

impl Postgres {
    pub fn start(core: Option<&str>) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("bhyt-bench-pg")
            .tempdir()?
            .keep();
        if is_root() {
            let ok = Command::new("chown").arg("nobody").arg(&dir).status()?;
            anyhow::ensure!(ok.success(), "chown nobody {}", dir.display());
        }
        let data = dir.join("data");
        let guard = ExitGuard::spawn(
            unprivileged(None, "sh"),
            &format!(
                "{pg_ctl} -D '{data}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{dir}'",
                pg_ctl = bin.join("pg_ctl").display(),
                data = data.display(),
                dir = dir.display(),
            ),
        );
        let init = unprivileged(None, bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()?;
        anyhow::ensure!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = free_port();
        // The registry is only read during a run; fsync=off makes seeding fast.
        let options = format!(
            "-p {port} -k '{sock}' -c listen_addresses=127.0.0.1 -c fsync=off \
             -c max_connections=200 -c shared_buffers=256MB",
            sock = dir.display(),
        );
        let status = unprivileged(core, bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("postgres.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        anyhow::ensure!(
            status.success(),
            "postgres did not start: {}",
            std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default()
        );
        Ok(Self {
            port,
            dir,
            bin,
            guard: Some(guard),
        })
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The postmaster's pid (first line of postmaster.pid).
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.fire();
        }
    }
}

fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (scripts/test.sh installs it)")?
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
        .map(|v| v.1)
        .context("no initdb under /usr/lib/postgresql/<version>/bin")
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `program` as `nobody` when we are root, pinned to `core` if given.
fn unprivileged(core: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    if is_root() {
        let mut c = pinned(core, "runuser");
        c.args(["-u", "nobody", "--"]).arg(program);
        c
    } else {
        pinned(core, program)
    }
}

/// Where the benchmark's sibling binaries (and `bhyt-verify`) are: next to the running one.
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .context("the executable has a directory")?
        .join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build with `cargo build --release -p bhyt-bench -p bhyt-verify`",
        path.display()
    );
    Ok(path)
}

/// A private CA for one run, made with `bhyt-verify pki`: the servers' certificate (for
/// `localhost`) and the load generator's. The load generator holds an HIS certificate of the
/// mix's hospital, since an HIS may check for any of its stations and the mix spreads its
/// requests over 200 of them.
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        let bin = sibling("bhyt-verify")?;
        let pki = |args: &[&str]| -> anyhow::Result<()> {
            let status = Command::new(&bin)
                .arg("pki")
                .arg("--dir")
                .arg(dir)
                .args(args)
                .stdout(Stdio::null())
                .status()
                .context("running bhyt-verify pki")?;
            anyhow::ensure!(
                status.success(),
                "bhyt-verify pki {args:?} failed ({status})"
            );
            Ok(())
        };
        pki(&["init"])?;
        pki(&["issue-server", "--dns", "localhost", "--ip", "127.0.0.1"])?;
        pki(&[
            "issue",
            "--role",
            "his",
            "--facility",
            FACILITY,
            "--name",
            "loadgen",
        ])?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    pub fn client(&self) -> ClientTls {
        ClientTls {
            ca: self.dir.join("ca.pem"),
            cert: self.dir.join("issued/loadgen.pem"),
            key: self.dir.join("issued/loadgen.key"),
        }
    }

    /// The CA, the server's certificate and key, and the CRL directory.
    fn server_files(&self) -> [PathBuf; 4] {
        [
            self.dir.join("ca.pem"),
            self.dir.join("issued/server.pem"),
            self.dir.join("issued/server.key"),
            self.dir.join("crl"),
        ]
    }
}

/// A gRPC server under test: the backend (`bhyt-verify serve`) or the bare baseline.
pub struct Server {
    pub port: u16,
    pub process: Process,
    tls: bool,
}

impl Server {
    /// `bhyt-verify serve` with `BHYT_*` settings (data directory, ports and `env`), over
    /// mutual TLS with `pki`'s certificates, or in plain text without.
    pub fn backend(
        core: Option<&str>,
        data_dir: &Path,
        env: &[(&str, String)],
        pki: Option<&Pki>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let port = free_port();
        let mut command = pinned(core, sibling("bhyt-verify")?);
        command
            .arg("serve")
            .env("BHYT_DATA_DIR", data_dir)
            .env("BHYT_LISTEN", format!("127.0.0.1:{port}"))
            .env("BHYT_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("RUST_LOG", "warn");
        match pki {
            Some(pki) => {
                let [ca, cert, key, crl] = pki.server_files();
                command
                    .env("BHYT_TLS__CA_CERT", ca)
                    .env("BHYT_TLS__SERVER_CERT", cert)
                    .env("BHYT_TLS__SERVER_KEY", key)
                    .env("BHYT_TLS__CRL_DIR", crl);
            }
            None => {
                command
                    .env("BHYT_TLS__ENABLED", "false")
                    .env("BHYT_TLS__DEV_PLAINTEXT", "true");
            }
        }
        // The per-station limits are lifted so the load is measured, not refused.
        command
            .env("BHYT_ABUSE__STATION_RATE_PER_SEC", "1000000")
            .env("BHYT_ABUSE__STATION_BURST", "1000000")
            .env("BHYT_ABUSE__DISTINCT_SUBJECTS_PER_WINDOW", "100000000");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut process = Process::spawn("bhyt-verify", command, &data_dir.join("server.log"))?;
        wait_for_port(&mut process, port, Duration::from_secs(60))?;
        Ok(Self {
            port,
            process,
            tls: pki.is_some(),
        })
    }

    /// The bare tonic server with a constant answer, on the same TLS as the backend's.
    pub fn bare(core: Option<&str>, log_dir: &Path, pki: Option<&Pki>) -> anyhow::Result<Self> {
        let port = free_port();
        let mut command = pinned(core, sibling("bare-server")?);
        command.args(["--listen", &format!("127.0.0.1:{port}")]);
        if let Some(pki) = pki {
            let [ca, cert, key, crl] = pki.server_files();
            command
                .arg("--ca")
                .arg(ca)
                .arg("--cert")
                .arg(cert)
                .arg("--key")
                .arg(key)
                .arg("--crl-dir")
                .arg(crl);
        }
        let mut process = Process::spawn("bare-server", command, &log_dir.join("bare.log"))?;
        wait_for_port(&mut process, port, Duration::from_secs(20))?;
        Ok(Self {
            port,
            process,
            tls: pki.is_some(),
        })
    }

    /// The address the load generator calls: `localhost` is the name in the server's
    /// certificate.
    pub fn target(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.port)
        } else {
            format!("http://127.0.0.1:{}", self.port)
        }
    }
}
