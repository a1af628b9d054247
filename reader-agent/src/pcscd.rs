//! A private pcscd: its own reader configuration (a vpcd slot on free ports), its own client
//! socket, never the machine's service. The tests and the demo put virtual cards on its vpcd
//! reader, so the agent reads them through the same PC/SC path as a physical reader.
//!
//! How, on pcsc-lite 1.9.9 (Debian 12): `pcscd -c DIR` reads reader configuration from DIR, but
//! the daemon ignores `PCSCLITE_CSOCK_NAME` and always binds /run/pcscd/pcscd.comm, which a normal
//! user cannot create and which would collide with the machine's pcscd. The daemon does accept a
//! listening socket handed over the systemd way (`LISTEN_FDS=1`, `LISTEN_PID` = its pid, the
//! socket on fd 3: "Started by systemd" in its log), and the client library does honour
//! `PCSCLITE_CSOCK_NAME`. So this binds the socket in a temp dir, starts pcscd through
//! `sh -c 'export LISTEN_PID=$$ ...; exec pcscd'` with the socket on fd 3, and points this
//! process's client library at it. Works as root and as a normal user (who only gets a harmless
//! "cannot create /run/pcscd/pcscd.pid" in the log).
//!
//! pcscd's pid file path is still fixed (root's instance writes /run/pcscd/pcscd.pid and removes
//! it on exit; a file the machine's pcscd had there is put back), and the client library reads
//! `PCSCLITE_CSOCK_NAME` once per process, so users of a private pcscd take [`exclusive`]: a
//! process-wide mutex plus a file lock across processes (test binaries, a demo).

use std::fs::{self, File};
use std::io;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// The vpcd driver of Debian's vsmartcard-vpcd package.
pub const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";

/// What to install when a part is missing.
const INSTALL: &str = "apt-get install pcscd vsmartcard-vpcd";

/// Why a private pcscd could not run.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PcscdError {
    /// No pcscd program on PATH or in /usr/sbin.
    #[error("pcscd is not installed (install it: {INSTALL})")]
    NoPcscd,
    /// No vpcd driver where Debian puts it.
    #[error(
        "the vpcd virtual reader driver is not installed, {VPCD_DRIVER} is missing (install it: {INSTALL})"
    )]
    NoVpcd,
    /// No two free TCP ports in a row for the vpcd slot.
    #[error("no two free TCP ports in a row for the vpcd reader")]
    NoPorts,
    /// The lock, the socket, the configuration or the process failed.
    #[error("private pcscd: {0}")]
    Io(#[from] io::Error),
}

/// Held while a private pcscd is in use: this process's mutex, then a lock file shared by all
/// processes.
pub struct Exclusive {
    _file: File,
    _guard: MutexGuard<'static, ()>,
}

/// Takes the private-pcscd lock (blocks until other users are done).
pub fn exclusive() -> Result<Exclusive, PcscdError> {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let guard = IN_PROCESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = std::env::temp_dir().join("bhyt-verify-pcscd-tests.lock");
    // Another user's lock file (root's run, then a normal user's) is locked read-only: flock
    // needs no write access.
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .or_else(|_| File::open(&path))?;
    file.lock()?;
    Ok(Exclusive {
        _file: file,
        _guard: guard,
    })
}

/// This process's client socket path, fixed on first use: the client library reads the variable
/// once.
fn client_socket() -> io::Result<&'static Path> {
    static SOCKET: OnceLock<PathBuf> = OnceLock::new();
    if let Some(socket) = SOCKET.get() {
        return Ok(socket);
    }
    let dir = std::env::temp_dir().join(format!("bhyt-pcscd-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    Ok(SOCKET.get_or_init(|| {
        let socket = dir.join("pcscd.comm");
        // SAFETY: set once, before this process makes any PC/SC call, under the pcscd lock;
        // nothing else in the process reads or writes this variable.
        unsafe { std::env::set_var("PCSCLITE_CSOCK_NAME", &socket) };
        socket
    }))
}

/// Two free TCP ports in a row (a vpcd line opens two slots: its port and the next).
fn free_port_pair() -> Result<u16, PcscdError> {
    for _ in 0..200 {
        let first = TcpListener::bind(("0.0.0.0", 0))?;
        let port = first.local_addr()?.port();
        if port < u16::MAX && TcpListener::bind(("0.0.0.0", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(PcscdError::NoPorts)
}

/// The pcscd program: on PATH, or where Debian installs it (not on a normal user's PATH).
fn pcscd_program() -> Result<PathBuf, PcscdError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("pcscd"))
        .find(|candidate| candidate.is_file())
        .ok_or(PcscdError::NoPcscd)
}

/// pcscd's fixed pid file.
const PID_FILE: &str = "/run/pcscd/pcscd.pid";

/// A running private pcscd. Dropping it stops the daemon.
pub struct PrivatePcscd {
    program: PathBuf,
    /// The machine's pcscd pid file as found, restored when done.
    machine_pid_file: Option<Vec<u8>>,
    _dir: tempfile::TempDir,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl PrivatePcscd {
    /// Starts pcscd with one vpcd line (`name` 00 00 and `name` 00 01) on free ports; returns it
    /// and the first slot's port. Call under [`exclusive`].
    pub fn start(name: &str) -> Result<(PrivatePcscd, u16), PcscdError> {
        let (mut pcscd, port) = PrivatePcscd::prepare(name)?;
        pcscd.launch()?;
        Ok((pcscd, port))
    }

    /// Like [`PrivatePcscd::start`] but not started yet: the configuration is written and this
    /// process's client points at the private socket, which nothing serves until
    /// [`PrivatePcscd::restart`].
    pub fn prepare(name: &str) -> Result<(PrivatePcscd, u16), PcscdError> {
        let program = pcscd_program()?;
        if !Path::new(VPCD_DRIVER).is_file() {
            return Err(PcscdError::NoVpcd);
        }
        client_socket()?;
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("reader.conf.d");
        fs::create_dir(&conf)?;
        let log = dir.path().join("pcscd.log");
        let pcscd = PrivatePcscd {
            program,
            machine_pid_file: fs::read(PID_FILE).ok(),
            _dir: dir,
            conf,
            log,
            child: None,
        };
        let port = pcscd.add_vpcd("vpcd-0", name)?;
        Ok((pcscd, port))
    }

    /// Writes a vpcd line (`file` in the conf dir) on free ports; returns the first slot's port.
    /// A running pcscd sees it after a restart (pcsc-lite 1.9.9's SIGUSR1 does not re-read
    /// reader.conf for serial drivers). vpcd serves one line per pcscd (a second line's slots
    /// share the first's state in the driver): replace the line rather than add one.
    pub fn add_vpcd(&self, file: &str, name: &str) -> Result<u16, PcscdError> {
        let port = free_port_pair()?;
        let text = format!(
            "FRIENDLYNAME \"{name}\"\nDEVICENAME /dev/null:0x{port:04X}\nLIBPATH {VPCD_DRIVER}\nCHANNELID 0x{port:04X}\n"
        );
        fs::write(self.conf.join(file), text)?;
        Ok(port)
    }

    /// Removes a vpcd line from the configuration.
    pub fn remove_vpcd(&self, file: &str) -> Result<(), PcscdError> {
        Ok(fs::remove_file(self.conf.join(file))?)
    }

    fn launch(&mut self) -> Result<(), PcscdError> {
        let socket = client_socket()?;
        // A socket file nobody serves (left by a killed pcscd) refuses clients: gone first.
        match fs::remove_file(socket) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let listener: OwnedFd = UnixListener::bind(socket)?.into();
        let log = File::create(&self.log)?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(
                "LISTEN_PID=$$; LISTEN_FDS=1; export LISTEN_PID LISTEN_FDS; \
                 exec \"$0\" -f -c \"$1\" 3<&0 </dev/null",
            )
            .arg(&self.program)
            .arg(&self.conf)
            .stdin(Stdio::from(listener))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills pcscd outright (SIGKILL: a crash, no clean-up) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts pcscd again with the same configuration and socket path.
    pub fn restart(&mut self) -> Result<(), PcscdError> {
        self.kill();
        self.launch()
    }

    /// pcscd's own log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops pcscd cleanly (SIGTERM) and waits, at most a few seconds, then kills it.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for PrivatePcscd {
    fn drop(&mut self) {
        self.stop();
        if let Some(content) = &self.machine_pid_file {
            let _ = fs::write(PID_FILE, content);
        }
    }
}
