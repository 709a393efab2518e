//! Settings: built-in defaults, then `config/default.toml`, then
//! `config/$GYMAPI_ENV.toml`, then environment variables (contract §1).
//!
//! Every setting is read as text from those layers and parsed here, so a bad value
//! is reported in one line naming its environment variable, whichever layer set it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The secret used in `development` when none is configured. Production refuses it.
pub const DEVELOPMENT_SECRET: &str = "gymapi-development-secret-not-for-production-use";

/// A one-line, user-facing configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Which deployment the process runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// A laptop: development secret allowed.
    Development,
    /// Automated tests.
    Test,
    /// Real users: strict secret rules.
    Production,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// A value that must never be printed (`Debug` shows `[redacted]`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Every setting of the service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `GYMAPI_ENV`.
    pub env: Environment,
    /// `BIND_ADDR`.
    pub bind_addr: SocketAddr,
    /// `WORKERS`.
    pub workers: usize,
    /// `DATABASE_URL` (may hold a password: redacted in `Debug`).
    pub database_url: Secret,
    /// `DATABASE_READ_URL`: a PostgreSQL streaming replica for the reads that
    /// tolerate lag (see `infra::db::replica`); redacted in `Debug`.
    pub database_read_url: Option<Secret>,
    /// `DATABASE_PGBOUNCER`: PostgreSQL is reached through a transaction-pooling
    /// PgBouncer (no statement cache; every statement inside a transaction).
    pub database_pgbouncer: bool,
    /// `DATABASE_MAX_CONNECTIONS`.
    pub database_max_connections: u32,
    /// `DATABASE_ACQUIRE_TIMEOUT_SECONDS`.
    pub database_acquire_timeout: Duration,
    /// `DATABASE_STATEMENT_TIMEOUT_SECONDS`: longest one statement may run
    /// (PostgreSQL's `statement_timeout`; SQLite's busy timeout).
    pub database_statement_timeout: Duration,
    /// `SHUTDOWN_GRACE_SECONDS`: after SIGTERM, how long `/ready` answers 503 while
    /// requests are still served, before the server drains and stops.
    pub shutdown_grace: Duration,
    /// `REDIS_URL`; `None` selects the in-process cache.
    pub redis_url: Option<Secret>,
    /// `REDIS_POOL_MAX_CONNECTIONS`: multiplexed Redis connections to keep.
    pub redis_pool_max_connections: usize,
    /// `CACHE_TTL_SECONDS`.
    pub cache_ttl: Duration,
    /// `CACHE_KEY_PREFIX`: prepended to every Redis key, so that deployments (or
    /// test runs) sharing one Redis never read each other's entries.
    pub cache_key_prefix: String,
    /// `AUTH_JWT_SECRET`.
    pub auth_jwt_secret: Option<Secret>,
    /// `AUTH_JWKS_URL`.
    pub auth_jwks_url: Option<String>,
    /// `AUTH_ISSUER`.
    pub auth_issuer: Option<String>,
    /// `AUTH_AUDIENCE`.
    pub auth_audience: Option<String>,
    /// `CHECKIN_WINDOW_MINUTES`.
    pub checkin_window_minutes: i64,
    /// `OUTBOX_RETENTION_HOURS`: how long delivered facts stay in the outbox.
    pub outbox_retention_hours: i64,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
}

/// The settings, by environment variable name, with their built-in defaults.
const KEYS: &[(&str, Option<&str>)] = &[
    ("GYMAPI_ENV", Some("development")),
    ("BIND_ADDR", Some("127.0.0.1:8000")),
    ("WORKERS", None),
    ("DATABASE_URL", Some("sqlite://gymapi.db?mode=rwc")),
    ("DATABASE_READ_URL", None),
    ("DATABASE_PGBOUNCER", Some("false")),
    ("DATABASE_MAX_CONNECTIONS", Some("20")),
    ("DATABASE_ACQUIRE_TIMEOUT_SECONDS", Some("5")),
    ("DATABASE_STATEMENT_TIMEOUT_SECONDS", Some("10")),
    ("SHUTDOWN_GRACE_SECONDS", Some("5")),
    ("REDIS_URL", None),
    ("REDIS_POOL_MAX_CONNECTIONS", Some("64")),
    ("CACHE_TTL_SECONDS", Some("300")),
    ("CACHE_KEY_PREFIX", None),
    ("AUTH_JWT_SECRET", None),
    ("AUTH_JWKS_URL", None),
    ("AUTH_ISSUER", None),
    ("AUTH_AUDIENCE", None),
    ("CHECKIN_WINDOW_MINUTES", Some("30")),
    ("OUTBOX_RETENTION_HOURS", Some("168")),
    ("LOG_FORMAT", Some("text")),
];

impl Settings {
    /// Loads from `config/` under the working directory and the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad setting.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(Path::new("config"), |k| std::env::var(k).ok())
    }

    /// Loads from a config directory and an environment lookup (tests pass their own).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad setting.
    pub fn load_from(dir: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut raw: BTreeMap<&str, String> = KEYS.iter().filter_map(|(k, d)| d.map(|d| (*k, d.to_owned()))).collect();
        let env_name = env("GYMAPI_ENV").unwrap_or_else(|| "development".to_owned());
        for file in ["default".to_owned(), env_name] {
            merge_file(&mut raw, &dir.join(format!("{file}.toml")))?;
        }
        for (key, _) in KEYS {
            if let Some(v) = env(key) {
                raw.insert(key, v);
            }
        }
        // An empty variable means "unset", as shells often export them that way.
        raw.retain(|_, v| !v.trim().is_empty());
        Self::parse(&raw)
    }

    fn parse(raw: &BTreeMap<&str, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| raw.get(k).map(|s| s.trim().to_owned());
        let env = match get("GYMAPI_ENV").as_deref() {
            Some("development") | None => Environment::Development,
            Some("test") => Environment::Test,
            Some("production") => Environment::Production,
            Some(other) => return Err(bad("GYMAPI_ENV", other, "development, test or production")),
        };
        let log_format = match get("LOG_FORMAT").as_deref() {
            Some("text") | None => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(bad("LOG_FORMAT", other, "text or json")),
        };
        let database_url = get("DATABASE_URL").unwrap_or_default();
        if !["sqlite:", "postgres:", "postgresql:"].iter().any(|p| database_url.starts_with(p)) {
            return Err(bad("DATABASE_URL", "(hidden)", "a sqlite://… or postgres://… URL"));
        }
        let database_read_url = get("DATABASE_READ_URL");
        if let Some(u) = &database_read_url
            && !(["postgres:", "postgresql:"].iter().any(|p| u.starts_with(p))
                && ["postgres:", "postgresql:"].iter().any(|p| database_url.starts_with(p)))
        {
            return Err(bad("DATABASE_READ_URL", "(hidden)", "a postgres://… URL, with a postgres:// DATABASE_URL"));
        }
        let database_pgbouncer = match get("DATABASE_PGBOUNCER").as_deref() {
            Some("false") | None => false,
            Some("true") if database_url.starts_with("postgres") => true,
            Some(other) => {
                return Err(bad("DATABASE_PGBOUNCER", other, "true (with a postgres:// DATABASE_URL) or false"));
            }
        };
        let redis_url = get("REDIS_URL");
        if let Some(u) = &redis_url
            && !(u.starts_with("redis://")
                || u.starts_with("rediss://")
                || u.starts_with("unix://")
                || cluster_nodes(u).is_some())
        {
            return Err(bad("REDIS_URL", "(hidden)", "a redis://host:port/db or redis+cluster://host:port,… URL"));
        }
        let workers = match get("WORKERS") {
            Some(v) => number(&v, "WORKERS", 1, 1024)?,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        let s = Self {
            env,
            bind_addr: get("BIND_ADDR").unwrap_or_default().parse().map_err(|_| {
                bad("BIND_ADDR", raw.get("BIND_ADDR").map_or("", |s| s), "host:port, e.g. 127.0.0.1:8000")
            })?,
            workers,
            database_url: Secret(database_url),
            database_read_url: database_read_url.map(Secret),
            database_pgbouncer,
            database_max_connections: setting(get, "DATABASE_MAX_CONNECTIONS", 1, 10_000)?,
            database_acquire_timeout: Duration::from_secs(setting(get, "DATABASE_ACQUIRE_TIMEOUT_SECONDS", 1, 600)?),
            database_statement_timeout: Duration::from_secs(setting(
                get,
                "DATABASE_STATEMENT_TIMEOUT_SECONDS",
                1,
                3600,
            )?),
            shutdown_grace: Duration::from_secs(setting(get, "SHUTDOWN_GRACE_SECONDS", 0, 600)?),
            redis_url: redis_url.map(Secret),
            redis_pool_max_connections: setting(get, "REDIS_POOL_MAX_CONNECTIONS", 1, 10_000)?,
            cache_ttl: Duration::from_secs(setting(get, "CACHE_TTL_SECONDS", 1, 86_400 * 30)?),
            cache_key_prefix: get("CACHE_KEY_PREFIX").unwrap_or_default(),
            auth_jwt_secret: get("AUTH_JWT_SECRET").map(Secret),
            auth_jwks_url: get("AUTH_JWKS_URL"),
            auth_issuer: get("AUTH_ISSUER"),
            auth_audience: get("AUTH_AUDIENCE"),
            checkin_window_minutes: setting(get, "CHECKIN_WINDOW_MINUTES", 1, 24 * 60)?,
            outbox_retention_hours: setting(get, "OUTBOX_RETENTION_HOURS", 1, 24 * 3660)?,
            log_format,
        };
        s.with_secret_rules()
    }

    /// Applies the secret rules: production refuses the development secret, a secret
    /// under 32 bytes, or neither secret nor JWKS URL; development falls back to the
    /// development secret.
    fn with_secret_rules(mut self) -> Result<Self, ConfigError> {
        match self.env {
            Environment::Production => match &self.auth_jwt_secret {
                Some(s) if s.expose() == DEVELOPMENT_SECRET => {
                    return Err(ConfigError("AUTH_JWT_SECRET: the development secret is refused in production".into()));
                }
                Some(s) if s.expose().len() < 32 => {
                    return Err(ConfigError("AUTH_JWT_SECRET: must be at least 32 bytes in production".into()));
                }
                None if self.auth_jwks_url.is_none() => {
                    return Err(ConfigError("AUTH_JWT_SECRET or AUTH_JWKS_URL must be set in production".into()));
                }
                // Without both, an Auth0 access token minted for another API of the
                // same tenant (same keys) would be accepted here.
                _ if self.auth_jwks_url.is_some() && (self.auth_audience.is_none() || self.auth_issuer.is_none()) => {
                    return Err(ConfigError(
                        "AUTH_AUDIENCE and AUTH_ISSUER must be set in production when AUTH_JWKS_URL is".into(),
                    ));
                }
                _ => {}
            },
            Environment::Development => {
                if self.auth_jwt_secret.is_none() {
                    self.auth_jwt_secret = Some(Secret(DEVELOPMENT_SECRET.to_owned()));
                }
            }
            Environment::Test => {
                if self.auth_jwt_secret.is_none() && self.auth_jwks_url.is_none() {
                    return Err(ConfigError("AUTH_JWT_SECRET or AUTH_JWKS_URL must be set".into()));
                }
            }
        }
        Ok(self)
    }

    /// Whether the database is SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose().starts_with("sqlite:")
    }
}

/// The scheme of a Redis Cluster's `REDIS_URL`.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// The nodes of a `redis+cluster://a:1,b:2` URL, as `redis://` URLs (credentials
/// before the first host apply to every node); `None` for any other URL or one
/// that names no node.
pub fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let rest = url.strip_prefix(CLUSTER_SCHEME)?;
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let hosts = hosts.trim_end_matches('/');
    let nodes: Vec<String> =
        hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(|h| format!("redis://{auth}{h}")).collect();
    (!nodes.is_empty()).then_some(nodes)
}

fn bad(key: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError(format!("{key}: invalid value {value:?}, expected {expected}"))
}

/// A whole-number setting as `get` reads it (empty when unset, which the defaults
/// layer never leaves it), within `min..=max`.
fn setting<T: std::str::FromStr + PartialOrd + fmt::Display + Copy>(
    get: impl Fn(&str) -> Option<String>,
    key: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    number(&get(key).unwrap_or_default(), key, min, max)
}

fn number<T: std::str::FromStr + PartialOrd + fmt::Display + Copy>(
    v: &str,
    key: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    match v.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(bad(key, v, &format!("a whole number from {min} to {max}"))),
    }
}

/// Overlays a TOML file's keys (lower-case variable names) onto `raw`; a missing
/// file is fine, an unknown key or an unreadable file is an error.
fn merge_file(raw: &mut BTreeMap<&str, String>, path: &Path) -> Result<(), ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ConfigError(format!("{}: {e}", path.display()))),
    };
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| ConfigError(format!("{}: {}", path.display(), e.message())))?;
    for (k, v) in table {
        let upper = k.to_ascii_uppercase();
        let Some((key, _)) = KEYS.iter().find(|(name, _)| *name == upper) else {
            return Err(ConfigError(format!("{}: unknown setting {k:?}", path.display())));
        };
        let value = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => return Err(bad(key, other.type_str(), "a string or a number")),
        };
        raw.insert(key, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::load_from(Path::new("/nonexistent"), move |k| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_run_on_a_laptop() {
        let s = load(&[]).expect("defaults load");
        assert_eq!(s.bind_addr.to_string(), "127.0.0.1:8000");
        assert!(s.is_sqlite());
        assert!(s.redis_url.is_none());
        assert_eq!(s.auth_jwt_secret.as_ref().map(Secret::expose), Some(DEVELOPMENT_SECRET));
        assert_eq!(s.checkin_window_minutes, 30);
    }

    #[test]
    fn a_bad_value_is_named_by_its_variable() {
        let e = load(&[("WORKERS", "abc")]).expect_err("bad workers");
        assert!(e.to_string().contains("WORKERS"), "{e}");
        let e = load(&[("BIND_ADDR", "nowhere")]).expect_err("bad addr");
        assert!(e.to_string().contains("BIND_ADDR"), "{e}");
        let e = load(&[("LOG_FORMAT", "xml")]).expect_err("bad format");
        assert!(e.to_string().contains("LOG_FORMAT"), "{e}");
    }

    #[test]
    fn production_refuses_weak_or_missing_secrets() {
        assert!(load(&[("GYMAPI_ENV", "production")]).is_err());
        assert!(load(&[("GYMAPI_ENV", "production"), ("AUTH_JWT_SECRET", DEVELOPMENT_SECRET)]).is_err());
        assert!(load(&[("GYMAPI_ENV", "production"), ("AUTH_JWT_SECRET", "short")]).is_err());
        let ok = load(&[("GYMAPI_ENV", "production"), ("AUTH_JWT_SECRET", &"k".repeat(32))]);
        assert!(ok.is_ok());
        let jwks = ("AUTH_JWKS_URL", "https://x/.well-known/jwks.json");
        let (aud, iss) = (("AUTH_AUDIENCE", "https://gymapi/"), ("AUTH_ISSUER", "https://x/"));
        assert!(load(&[("GYMAPI_ENV", "production"), jwks, aud, iss]).is_ok());
        for partial in [vec![jwks], vec![jwks, aud], vec![jwks, iss]] {
            let mut vars = vec![("GYMAPI_ENV", "production")];
            vars.extend(partial);
            let e = load(&vars).expect_err("JWKS without audience and issuer");
            assert!(e.to_string().contains("AUTH_AUDIENCE") && e.to_string().contains("AUTH_ISSUER"), "{e}");
        }
    }

    #[test]
    fn a_read_replica_is_postgresql_behind_a_postgresql_primary() {
        let pg = ("DATABASE_URL", "postgres://u:pw@db/gymapi");
        let replica = ("DATABASE_READ_URL", "postgres://u:replica-pw@replica/gymapi");
        let s = load(&[pg, replica]).expect("a replica of PostgreSQL");
        assert_eq!(s.database_read_url.as_ref().map(Secret::expose), Some(replica.1));
        assert!(!format!("{s:?}").contains("replica-pw"));
        assert!(load(&[pg]).expect("no replica").database_read_url.is_none());
        let e = load(&[replica]).expect_err("a replica behind SQLite");
        assert!(e.to_string().contains("DATABASE_READ_URL") && !e.to_string().contains("replica-pw"), "{e}");
        assert!(load(&[pg, ("DATABASE_READ_URL", "mysql://replica/gymapi")]).is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = load(&[("AUTH_JWT_SECRET", "super-secret-value-1234567890")]).expect("loads");
        assert!(!format!("{s:?}").contains("super-secret"));
    }
}
