//! A private PostgreSQL primary and its streaming replica, made for one test with
//! `initdb` and `pg_basebackup -R` on loopback ports of their own, and removed when
//! dropped. As root, the servers run as the `postgres` user (PostgreSQL refuses
//! root).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};

/// A primary and a replica of it.
pub struct Replicated {
    /// Where both data directories, their sockets and logs live.
    base: PathBuf,
    bin: PathBuf,
    /// The primary's port.
    pub primary_port: u16,
    /// The replica's port.
    pub replica_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// PostgreSQL's server programs: the newest `/usr/lib/postgresql/*/bin`, else `PATH`.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path().join("bin"))).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    versions.sort_by_key(|p| {
        p.parent().and_then(Path::file_name).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0)
    });
    versions.pop().unwrap_or_default()
}

impl Replicated {
    /// Makes the primary, then the replica from its base backup, and starts both.
    ///
    /// # Panics
    /// When PostgreSQL's server programs are missing (saying how to install them) or
    /// a server does not start (with its log).
    pub fn start() -> Self {
        let bin = bin_dir();
        assert!(
            bin.join("initdb").exists() || Command::new("initdb").arg("--version").output().is_ok(),
            "initdb and pg_basebackup are needed to make a replica: install them with \
             `apt-get install postgresql` (scripts/test-services.sh does)"
        );
        let base =
            std::env::temp_dir().join(format!("gymapi_repl_{}_{:08x}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&base).expect("the cluster's directory");
        let cluster = Self { base, bin, primary_port: free_port(), replica_port: free_port() };
        cluster.run("chmod", &["0777".into(), cluster.base.display().to_string()], false);
        let primary = cluster.dir("primary");
        cluster.pg("initdb", &["-D", &primary, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        cluster.start_server("primary", cluster.primary_port);
        let port = cluster.primary_port.to_string();
        let replica = cluster.dir("replica");
        cluster.pg(
            "pg_basebackup",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-D", &replica, "-R", "-X", "stream", "-c", "fast"],
        );
        cluster.start_replica();
        cluster
    }

    fn dir(&self, name: &str) -> String {
        self.base.join(name).display().to_string()
    }

    /// Runs a program, as `postgres` when root; panics with its output on failure.
    fn run(&self, program: &str, args: &[String], as_postgres: bool) {
        let mut cmd = if as_postgres && is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        };
        let out = cmd.args(args).current_dir(&self.base).output().unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let program = if path.exists() { path.display().to_string() } else { program.to_owned() };
        self.run(&program, &args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(), true);
    }

    fn start_server(&self, name: &str, port: u16) {
        let options = format!(
            "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
             -c max_connections=100 -c shared_buffers=32MB",
            self.base.display()
        );
        let log = self.dir(&format!("{name}.log"));
        let dir = self.dir(name);
        self.pg("pg_ctl", &["-D", &dir, "-o", &options, "-l", &log, "-w", "-t", "60", "start"]);
    }

    /// Starts the replica (again).
    pub fn start_replica(&self) {
        self.start_server("replica", self.replica_port);
    }

    /// Stops the replica at once, as a crash would.
    pub fn stop_replica(&self) {
        let dir = self.dir("replica");
        self.pg("pg_ctl", &["-D", &dir, "-m", "immediate", "-w", "stop"]);
    }

    /// The admin URL of the primary.
    pub fn primary_admin(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.primary_port)
    }

    /// The URL of database `name` on the replica.
    pub fn replica_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.replica_port)
    }

    /// Runs one statement on the replica (pausing or resuming its replay).
    ///
    /// # Panics
    /// When the replica refuses it.
    pub async fn on_replica(&self, sql: &str) {
        let conn = Database::connect(self.replica_url("postgres")).await.expect("connect to the replica");
        conn.execute_unprepared(sql).await.expect("a statement on the replica");
        let _ = conn.close().await;
    }

    /// Waits until database `name` exists on the replica.
    ///
    /// # Panics
    /// When it does not appear within 30 s.
    pub async fn replicated(&self, name: &str) {
        for _ in 0..300 {
            if let Ok(c) = Database::connect(self.replica_url(name)).await {
                let _ = c.close().await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("database {name} never reached the replica");
    }
}

impl Drop for Replicated {
    fn drop(&mut self) {
        for name in ["replica", "primary"] {
            let dir = self.dir(name);
            let ctl = self.bin.join("pg_ctl");
            let args = ["-D", dir.as_str(), "-m", "immediate", "-w", "stop"];
            let _ = if is_root() {
                Command::new("runuser").args(["-u", "postgres", "--"]).arg(&ctl).args(args).output()
            } else {
                Command::new(&ctl).args(args).output()
            };
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
