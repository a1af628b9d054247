//! A private `redis-server`: no persistence, its own port and directory, killed with the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ExitGuard, free_port};

pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    /// Started as a Redis Cluster node (see `super::redis_cluster`).
    cluster_node: bool,
    running: Option<Running>,
}

struct Running {
    child: Child,
    /// Kills the server if this process dies without dropping it.
    guard: ExitGuard,
}

impl RedisServer {
    /// A server on a free port (retrying if another process takes the port first).
    pub fn start() -> Self {
        Self::start_free(false)
    }

    /// A node for a Redis Cluster, not yet part of one, on a free port.
    pub fn start_cluster_node() -> Self {
        Self::start_free(true)
    }

    fn start_free(cluster_node: bool) -> Self {
        for _ in 0..5 {
            if let Some(server) = Self::start_as(free_port(), cluster_node) {
                return server;
            }
        }
        panic!("redis-server could not get a free port in five tries");
    }

    /// A server on `port`, or `None` if the port is taken.
    pub fn start_on(port: u16) -> Option<Self> {
        Self::start_as(port, false)
    }

    fn start_as(port: u16, cluster_node: bool) -> Option<Self> {
        let mut server = Self {
            port,
            dir: super::temp_dir(),
            cluster_node,
            running: None,
        };
        server.spawn().then_some(server)
    }

    /// Starts redis-server and waits until it answers; false if it exited first (port taken).
    /// Ready means *our* process answers: on a taken port another server may answer PING.
    fn spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path());
        if self.cluster_node {
            // The node's cluster state file lives in its own directory; a dead peer is
            // declared failed after one second, so a killed node shows quickly.
            command
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "1000"]);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let guard = ExitGuard::spawn(Command::new("sh"), &format!("kill -9 {}", child.id()));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if child.try_wait().unwrap().is_some() {
                guard.cancel();
                return false;
            }
            if self.process_id() == Some(child.id()) {
                self.running = Some(Running { child, guard });
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not become ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL: the server vanishes as in a crash.
    pub fn kill(&mut self) {
        if let Some(Running { mut child, guard }) = self.running.take() {
            // The guard goes first: once the child is reaped its pid may be reused.
            guard.cancel();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "port {} was taken while Redis was down",
            self.port
        );
    }

    /// The pid of whatever redis-server answers on our port, if one does.
    fn process_id(&self) -> Option<u32> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        let info: String = redis::cmd("INFO").arg("server").query(&mut conn).ok()?;
        field(&info, "process_id")
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("the test Redis answers")
    }

    /// A counter from `INFO stats`, e.g. `keyspace_hits`.
    pub fn info_stat(&self, name: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query(&mut self.connection())
            .unwrap();
        field(&info, name).unwrap_or_else(|| panic!("INFO stats has no {name}"))
    }

    /// Writes the whole dataset to the server's RDB file, values uncompressed so a scan can read
    /// them, and returns the file's path.
    pub fn save_uncompressed(&self) -> std::path::PathBuf {
        let mut conn = self.connection();
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("rdbcompression")
            .arg("no")
            .query::<()>(&mut conn)
            .unwrap();
        redis::cmd("SAVE").query::<()>(&mut conn).unwrap();
        let dir: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("dir")
            .query(&mut conn)
            .unwrap();
        std::path::Path::new(&dir[1]).join("dump.rdb")
    }

    /// Every key in the server (tests look for personal data in them).
    pub fn keys(&self) -> Vec<String> {
        redis::cmd("KEYS")
            .arg("*")
            .query(&mut self.connection())
            .unwrap()
    }
}

/// `name:value` from an INFO reply (exact name: `keyspace_hits` is not `keyspace_hits_x`).
pub fn field<T: std::str::FromStr>(info: &str, name: &str) -> Option<T> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
