//! The `gymapi` command line: `serve` (default), `migrate`, `token`, `seed-demo`,
//! `backup`.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use infra::config::Settings;

use crate::app;
use crate::auth::{TokenClaims, sign_hs256};
use crate::telemetry;

/// GymAPI: multi-tenant gym management HTTP API.
#[derive(Debug, Parser)]
#[command(name = "gymapi", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations, then serve HTTP (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Print a JWT signed with the configured HS256 secret.
    Token {
        /// Subject (`sub`).
        #[arg(long)]
        sub: String,
        /// E-mail claim.
        #[arg(long)]
        email: Option<String>,
        /// Name claim.
        #[arg(long)]
        name: Option<String>,
        /// Space-separated scopes.
        #[arg(long, default_value = "resource:read resource:write")]
        scope: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Create a demo gym and print tokens and QR codes to try it.
    SeedDemo,
    /// Write a consistent copy of the SQLite database to PATH (a new file) while the
    /// service runs; restore by serving from a copy of it. PostgreSQL: use pg_dump.
    Backup {
        /// Where to write the copy; must not exist.
        path: std::path::PathBuf,
    },
}

/// Exit code of configuration errors.
const CONFIG_ERROR: u8 = 2;

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("gymapi: {msg}");
    ExitCode::from(code)
}

/// Runs the command line.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => return fail(CONFIG_ERROR, e),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => match connect_and_migrate(&settings).await {
            Ok(_) => {
                println!("migrations applied");
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, e),
        },
        Command::Token { sub, email, name, scope, ttl } => {
            let Some(secret) = &settings.auth_jwt_secret else {
                return fail(CONFIG_ERROR, "AUTH_JWT_SECRET is not set (tokens are only signed with HS256)");
            };
            let exp = time::OffsetDateTime::now_utc().unix_timestamp().unsigned_abs() + ttl;
            let claims = TokenClaims { sub, exp, email, name, scope: Some(scope), permissions: None };
            match sign_hs256(secret.expose(), &claims) {
                Ok(t) => {
                    println!("{t}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(1, e),
            }
        }
        Command::Backup { path } => backup(&settings, &path).await,
        Command::SeedDemo => match connect_and_migrate(&settings).await {
            Ok(db) => match crate::demo::seed(&settings, db).await {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(1, e),
            },
            Err(e) => fail(1, e),
        },
    }
}

/// SIGTERM (or Ctrl-C): `/ready` turns 503 at once while requests are still served
/// for `grace`, so a load balancer stops routing here before anything is refused;
/// then actix stops accepting and drains in-flight requests (bounded by its 20 s
/// shutdown timeout). A second signal skips the rest of the grace period.
async fn shut_down_on_signal(
    mut term: tokio::signal::unix::Signal,
    state: app::State,
    server: actix_web::dev::ServerHandle,
    grace: std::time::Duration,
) {
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    state.lifecycle.start_draining();
    tracing::info!(grace_s = grace.as_secs(), "shutdown: /ready answers 503, serving through the grace period");
    tokio::select! {
        () = tokio::time::sleep(grace) => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown: draining in-flight requests");
    server.stop(true).await;
}

async fn backup(settings: &Settings, path: &std::path::Path) -> ExitCode {
    if path.exists() {
        return fail(1, format!("{} exists: a backup never overwrites", path.display()));
    }
    let Some(target) = path.to_str() else {
        return fail(1, format!("{} is not a UTF-8 path", path.display()));
    };
    if !settings.is_sqlite() {
        return fail(1, infra::db::DbError::BackupNotSqlite);
    }
    let db = match infra::db::connect(settings).await {
        Ok(db) => db,
        Err(e) => return fail(1, e),
    };
    let done = db.backup_to(target).await;
    db.close().await;
    match done {
        Ok(()) => {
            println!("backup written to {target}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, e),
    }
}

async fn connect_and_migrate(settings: &Settings) -> Result<infra::db::Db, infra::db::DbError> {
    let db = infra::db::connect(settings).await?;
    db.migrate().await?;
    Ok(db)
}

async fn serve(settings: Settings) -> ExitCode {
    telemetry::init_tracing(settings.log_format);
    let db = match connect_and_migrate(&settings).await {
        Ok(db) => db,
        Err(e) => return fail(1, e),
    };
    let clock: std::sync::Arc<dyn domain::clock::Clock> = std::sync::Arc::new(domain::clock::SystemClock);
    let state = match app::build_state(&settings, db.clone(), clock) {
        Ok(s) => actix_web::web::Data::new(s),
        Err(e) => return fail(CONFIG_ERROR, e),
    };
    let listener = match TcpListener::bind(settings.bind_addr) {
        Ok(l) => l,
        Err(e) => return fail(1, format!("cannot listen on {} (BIND_ADDR): {e}", settings.bind_addr)),
    };
    // The bound address, not the configured one: BIND_ADDR may ask for port 0.
    let addr = listener.local_addr().map_or_else(|_| settings.bind_addr.to_string(), |a| a.to_string());
    tracing::info!(addr = %addr, workers = settings.workers, sqlite = settings.is_sqlite(), "gymapi serving");
    let server = match app::server(state.clone(), listener, settings.workers, false) {
        Ok(s) => s,
        Err(e) => return fail(1, e),
    };
    // Listen before serving, so a SIGTERM at start-up is a graceful stop too.
    let term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => return fail(1, format!("cannot listen for SIGTERM: {e}")),
    };
    tokio::spawn(shut_down_on_signal(term, state, server.handle(), settings.shutdown_grace));
    let result = server.await;
    db.close().await;
    match result {
        Ok(()) => {
            tracing::info!("gymapi stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, e),
    }
}
