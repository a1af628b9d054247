//! A private Redis Cluster: three `redis-server --cluster-enabled yes` nodes on free ports in
//! their own directories, joined by `redis-cli --cluster create` (Debian's redis-tools), no
//! replicas. Every wait is bounded; the nodes are killed with the test.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::RedisServer;
use super::redis::field;

pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Three masters sharing the 16384 hash slots, once every node says the cluster is ok.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_cluster_node()).collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        let mut child = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("redis-cli is installed (redis-tools; scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-cli --cluster create did not finish within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = child.wait_with_output().unwrap();
        assert!(
            status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { nodes };
        super::wait_for("the redis cluster to be ok on every node", || {
            (0..cluster.nodes.len()).all(|i| {
                let info = cluster.cluster_info(i);
                info.as_deref()
                    .and_then(|i| field::<String>(i, "cluster_state"))
                    == Some("ok".into())
                    && info.as_deref().and_then(|i| field(i, "cluster_slots_ok")) == Some(16384u32)
            })
        });
        cluster
    }

    /// The nodes' URLs, for `[cache] redis_cluster_nodes`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// `CLUSTER INFO` from node `i`, `None` if it does not answer.
    pub fn cluster_info(&self, i: usize) -> Option<String> {
        let client = redis::Client::open(self.nodes[i].url()).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        redis::cmd("CLUSTER").arg("INFO").query(&mut conn).ok()
    }

    /// SIGKILL one node: its hash slots are lost, as in a crash.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Waits (bounded) until every node but `dead` has marked the cluster failed.
    pub fn wait_until_failed_without(&self, dead: usize) {
        super::wait_for("the surviving nodes to see the cluster fail", || {
            (0..self.nodes.len()).filter(|i| *i != dead).all(|i| {
                self.cluster_info(i)
                    .as_deref()
                    .and_then(|info| field::<String>(info, "cluster_state"))
                    == Some("fail".into())
            })
        });
    }

    /// The keys each node holds (a node holds only the keys of its own hash slots).
    pub fn keys_by_node(&self) -> Vec<Vec<String>> {
        self.nodes.iter().map(RedisServer::keys).collect()
    }

    /// A counter from `INFO stats`, summed over the nodes.
    pub fn info_stat(&self, name: &str) -> u64 {
        self.nodes.iter().map(|n| n.info_stat(name)).sum()
    }
}
