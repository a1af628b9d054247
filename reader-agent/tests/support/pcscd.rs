//! A private pcscd for tests: its own reader configuration (vpcd slots on free ports), its own
//! client socket, never the machine's service.
//!
//! How, on pcsc-lite 1.9.9 (Debian 12): `pcscd -c DIR` reads reader configuration from DIR, but
//! the daemon ignores `PCSCLITE_CSOCK_NAME` and always binds /run/pcscd/pcscd.comm, which a normal
//! user cannot create and which would collide with the machine's pcscd. The daemon does accept a
//! listening socket handed over the systemd way (`LISTEN_FDS=1`, `LISTEN_PID` = its pid, the
//! socket on fd 3: "Started by systemd" in its log), and the client library does honour
//! `PCSCLITE_CSOCK_NAME`. So the harness binds the socket in a temp dir, starts pcscd through
//! `sh -c 'export LISTEN_PID=$$ ...; exec pcscd'` with the socket on fd 3, and points this
//! process's client library at it. Works as root and as a normal user (who only gets a harmless
//! "cannot create /run/pcscd/pcscd.pid" in the log).
//!
//! pcscd's pid file path is still fixed (root's instance writes /run/pcscd/pcscd.pid and removes
//! it on exit; the harness puts back a file the machine's pcscd had there), and the
//! client library reads `PCSCLITE_CSOCK_NAME` once per process, so tests that use pcscd take
//! [`exclusive`]: a process-wide mutex plus a file lock across test binaries.

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

/// Serialises pcscd tests: this process's mutex, then a lock file shared by all test binaries.
pub struct Exclusive {
    _file: File,
    _guard: MutexGuard<'static, ()>,
}

/// Takes the pcscd lock (blocks until other pcscd tests are done).
pub fn exclusive() -> Exclusive {
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
        .or_else(|_| File::open(&path))
        .expect("open the pcscd test lock file");
    file.lock().expect("lock the pcscd test lock file");
    Exclusive {
        _file: file,
        _guard: guard,
    }
}

/// This process's client socket path, fixed on first use: the client library reads the variable
/// once.
fn client_socket() -> &'static Path {
    static SOCKET: OnceLock<PathBuf> = OnceLock::new();
    SOCKET.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bhyt-pcscd-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("create the pcscd socket dir");
        let socket = dir.join("pcscd.comm");
        // SAFETY: set once, before this process makes any PC/SC call, under the pcscd lock;
        // nothing else in the test process reads or writes this variable.
        unsafe { std::env::set_var("PCSCLITE_CSOCK_NAME", &socket) };
        socket
    })
}

/// Two free TCP ports in a row (a vpcd line opens two slots: its port and the next).
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let first = TcpListener::bind(("0.0.0.0", 0)).expect("bind a free port");
        let port = first.local_addr().expect("local addr").port();
        if port < u16::MAX && TcpListener::bind(("0.0.0.0", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two free ports in a row");
}

/// pcscd's fixed pid file.
const PID_FILE: &str = "/run/pcscd/pcscd.pid";

/// A running private pcscd.
pub struct PrivatePcscd {
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
    pub fn start(name: &str) -> (PrivatePcscd, u16) {
        let (mut pcscd, port) = PrivatePcscd::prepare(name);
        pcscd.launch().expect("start pcscd");
        (pcscd, port)
    }

    /// Like [`PrivatePcscd::start`] but not started yet: the configuration is written and this
    /// process's client points at the private socket, which nothing serves until
    /// [`PrivatePcscd::restart`].
    pub fn prepare(name: &str) -> (PrivatePcscd, u16) {
        client_socket();
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("reader.conf.d");
        fs::create_dir(&conf).expect("conf dir");
        let log = dir.path().join("pcscd.log");
        let pcscd = PrivatePcscd {
            machine_pid_file: fs::read(PID_FILE).ok(),
            _dir: dir,
            conf,
            log,
            child: None,
        };
        let port = pcscd.add_vpcd("vpcd-0", name);
        (pcscd, port)
    }

    /// Writes a vpcd line (`file` in the conf dir) on free ports; returns the first slot's port.
    /// A running pcscd sees it after a restart (pcsc-lite 1.9.9's SIGUSR1 does not re-read
    /// reader.conf for serial drivers). vpcd serves one line per pcscd (a second line's slots
    /// share the first's state in the driver): replace the line rather than add one.
    pub fn add_vpcd(&self, file: &str, name: &str) -> u16 {
        let port = free_port_pair();
        let text = format!(
            "FRIENDLYNAME \"{name}\"\nDEVICENAME /dev/null:0x{port:04X}\nLIBPATH {VPCD_DRIVER}\nCHANNELID 0x{port:04X}\n"
        );
        fs::write(self.conf.join(file), text).expect("write reader conf");
        port
    }

    /// Removes a vpcd line from the configuration.
    pub fn remove_vpcd(&self, file: &str) {
        fs::remove_file(self.conf.join(file)).expect("remove reader conf");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -{signal} failed");
        }
    }

    fn launch(&mut self) -> io::Result<()> {
        let socket = client_socket();
        // A socket file nobody serves (left by a killed pcscd) refuses clients: gone first.
        match fs::remove_file(socket) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener: OwnedFd = UnixListener::bind(socket)?.into();
        let log = File::create(&self.log)?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(
                "LISTEN_PID=$$; LISTEN_FDS=1; export LISTEN_PID LISTEN_FDS; \
                 exec pcscd -f -c \"$0\" 3<&0 </dev/null",
            )
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
    pub fn restart(&mut self) {
        self.kill();
        self.launch().expect("restart pcscd");
    }

    /// pcscd's own log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops pcscd cleanly (SIGTERM) and waits, at most a few seconds, then kills it.
    fn stop(&mut self) {
        self.signal("TERM");
        if let Some(mut child) = self.child.take() {
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
}

impl Drop for PrivatePcscd {
    fn drop(&mut self) {
        self.stop();
        if let Some(content) = &self.machine_pid_file {
            let _ = fs::write(PID_FILE, content);
        }
    }
}
