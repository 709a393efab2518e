//! A private Redis Cluster for one test: six `redis-server --cluster-enabled yes`
//! on loopback ports of their own (three masters, three replicas) joined by
//! `redis-cli --cluster create`, stopped and removed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The cluster's servers.
pub struct RedisCluster {
    dir: PathBuf,
    /// The ports, masters first as created.
    pub ports: Vec<u16>,
    servers: Vec<Option<Child>>,
}

fn free_port() -> u16 {
    // A cluster node also listens on its port + 10000: keep both free.
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let port = port.expect("a free port");
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

impl RedisCluster {
    /// Starts six nodes and makes them a cluster with one replica per master; waits
    /// until every slot is served.
    ///
    /// # Panics
    /// When `redis-server` or `redis-cli` is missing (saying how to install them) or
    /// the cluster does not form.
    pub fn start() -> Self {
        assert!(
            Command::new("redis-server").arg("--version").output().is_ok()
                && Command::new("redis-cli").arg("--version").output().is_ok(),
            "redis-server and redis-cli are needed for the Redis Cluster test: `apt-get install redis-server`"
        );
        let dir = std::env::temp_dir().join(format!("gymapi_rc_{}_{:08x}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).expect("the cluster's directory");
        let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
        let servers = ports
            .iter()
            .map(|port| {
                let child = Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                    .args(["--cluster-config-file", &format!("nodes-{port}.conf"), "--cluster-node-timeout", "1000"])
                    // A replica of an idle master may take over however long ago it last heard from it.
                    .args(["--cluster-replica-validity-factor", "0"])
                    .args(["--save", "", "--appendonly", "no", "--dir", &dir.display().to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-server");
                Some(child)
            })
            .collect();
        let cluster = Self { dir, ports, servers };
        for port in &cluster.ports {
            cluster.wait_for(|| cli(*port, &["ping"]).trim() == "PONG", "a node to answer");
        }
        let nodes: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stdout));
        for port in &cluster.ports {
            cluster.wait_for(|| cli(*port, &["cluster", "info"]).contains("cluster_state:ok"), "the cluster to form");
        }
        cluster
    }

    fn wait_for(&self, ok: impl Fn() -> bool, what: &str) {
        let start = Instant::now();
        while !ok() {
            assert!(start.elapsed() < Duration::from_secs(30), "waited 30 s for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `REDIS_URL` of the cluster, naming every node.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The port of the master now serving `key`'s slot.
    ///
    /// # Panics
    /// When no live node knows.
    pub fn master_of(&self, key: &str) -> u16 {
        self.serving(key).expect("a master serving the key's slot")
    }

    fn serving(&self, key: &str) -> Option<u16> {
        let alive: Vec<u16> =
            self.ports.iter().zip(&self.servers).filter(|(_, s)| s.is_some()).map(|(p, _)| *p).collect();
        let slot: u32 = cli(*alive.first()?, &["cluster", "keyslot", key]).trim().parse().ok()?;
        let nodes = cli(alive[0], &["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|r| match r.split_once('-') {
                Some((a, b)) => a.parse::<u32>().is_ok_and(|a| a <= slot) && b.parse::<u32>().is_ok_and(|b| slot <= b),
                None => r.parse::<u32>() == Ok(slot),
            });
            if serves {
                let addr = fields[1].split('@').next().unwrap_or_default();
                return addr.rsplit(':').next().and_then(|p| p.parse().ok());
            }
        }
        None
    }

    /// Kills the node on `port` at once (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        if let Some(i) = self.ports.iter().position(|p| *p == port)
            && let Some(mut child) = self.servers[i].take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until another node serves the slot of `key` that `dead` served.
    pub fn failed_over(&self, key: &str, dead: u16) {
        self.wait_for(|| self.serving(key).is_some_and(|p| p != dead), "a replica to take over");
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.servers.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
