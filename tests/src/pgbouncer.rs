//! A private PgBouncer in transaction-pooling mode in front of the tests'
//! PostgreSQL, on a loopback port of its own, stopped when dropped. As root it runs
//! as the `postgres` user (PgBouncer refuses root).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The running bouncer.
pub struct PgBouncer {
    dir: PathBuf,
    child: Child,
    /// Its port.
    pub port: u16,
}

impl PgBouncer {
    /// Starts PgBouncer before the PostgreSQL at `127.0.0.1:5432` with `pool_size`
    /// server connections per database, so clients share them.
    ///
    /// # Panics
    /// When `pgbouncer` is missing (saying how to install it) or does not start.
    pub fn start(pool_size: u32) -> Self {
        assert!(
            Command::new("pgbouncer").arg("--version").output().is_ok(),
            "pgbouncer is needed for the PgBouncer test: `apt-get install pgbouncer` \
             (scripts/test-services.sh installs it)"
        );
        let dir = std::env::temp_dir().join(format!("gymapi_pgb_{}_{:08x}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).expect("the bouncer's directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let port = port.expect("a free port");
        // What an operator sets before GymAPI (docs/scaling.md): transaction pooling,
        // every server connection cleared of prepared statements when a transaction
        // ends, sqlx's extra_float_digits passed over, the statement timeout set
        // where the pooler connects.
        let ini = format!(
            "[databases]\n* = host=127.0.0.1 port=5432 user=postgres connect_query='SET statement_timeout = 10000'\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = any\npool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n\
             server_reset_query = DEALLOCATE ALL\nserver_reset_query_always = 1\n\
             ignore_startup_parameters = extra_float_digits\nlogfile = {log}\npidfile = {pid}\n",
            log = dir.join("pgbouncer.log").display(),
            pid = dir.join("pgbouncer.pid").display(),
        );
        let path = dir.join("pgbouncer.ini");
        std::fs::write(&path, ini).expect("the bouncer's configuration");
        let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        if root {
            let _ = Command::new("chmod").args(["-R", "0777"]).arg(&dir).output();
        }
        let mut cmd = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pgbouncer"]);
            c
        } else {
            Command::new("pgbouncer")
        };
        let child = cmd.arg(&path).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("pgbouncer");
        let bouncer = Self { dir, child, port };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "pgbouncer did not start: {}", bouncer.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        bouncer
    }

    /// The URL of database `name` through the bouncer.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // runuser passes the signal on to pgbouncer.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg("-9").arg(pid.trim()).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
