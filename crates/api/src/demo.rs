//! `gymapi seed-demo`: a demo gym with classes, sessions around now, an owner, a
//! trainer and members, printed with their tokens and QR codes.

use std::sync::Arc;

use domain::Role;
use domain::attendance::AttendanceService;
use domain::clock::{Clock, SystemClock};
use domain::facts::Dispatcher;
use domain::gyms::{GymService, NewGym};
use domain::schedule::{NewClass, NewSession, ScheduleService};
use domain::tx::UnitOfWork;
use domain::users::{Claims, UserService};
use domain::values::Actor;
use infra::config::Settings;
use infra::db::Db;
use time::Duration;

use crate::auth::{TokenClaims, sign_hs256};

/// Why the demo data could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Tokens are signed with the HS256 secret.
    #[error("AUTH_JWT_SECRET is not set")]
    NoSecret,
    /// A rule or the database said no.
    #[error(transparent)]
    Domain(#[from] domain::DomainError),
    /// A token could not be signed.
    #[error("signing a token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    /// A time could not be written.
    #[error("writing a time: {0}")]
    Time(String),
}

/// The demo gym's zone: the printed times show its wall clock beside UTC.
const DEMO_ZONE: &str = "Europe/Madrid";

/// Where a client on this machine reaches a server bound to `addr`: the address
/// itself, or loopback for an unspecified one (`0.0.0.0`, `::`).
pub fn reachable(addr: std::net::SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, addr.port()))
}

/// An instant as the API writes it (RFC 3339, UTC), with the gym's wall clock beside it.
fn both_clocks(t: time::OffsetDateTime, zone: &str) -> Result<String, DemoError> {
    let utc = crate::dto::UtcTime::from(t).rfc3339().map_err(|e| DemoError::Time(e.to_string()))?;
    let local = jiff::Timestamp::from_second(t.unix_timestamp())
        .and_then(|ts| jiff::tz::TimeZone::get(zone).map(|z| z.to_datetime(ts)))
        .map_err(|e| DemoError::Time(e.to_string()))?;
    let (y, mo, d, h, mi) = (local.year(), local.month(), local.day(), local.hour(), local.minute());
    Ok(format!("{utc} ({y:04}-{mo:02}-{d:02} {h:02}:{mi:02} in {zone}, the gym's time)"))
}

/// Seeds the demo data and returns what to print.
///
/// # Errors
/// A one-line reason.
pub async fn seed(settings: &Settings, db: Db) -> Result<String, DemoError> {
    let secret = settings.auth_jwt_secret.as_ref().ok_or(DemoError::NoSecret)?.expose().to_owned();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Nothing is cached yet: the facts need no listener here (a server's relay
    // delivers whatever is left in the outbox).
    let repo = Arc::new(db);
    let uow = UnitOfWork::new(repo.clone(), Dispatcher::new());
    let users = UserService::new(repo.clone(), uow.clone(), clock.clone());
    let credits = domain::credits::Credits::new(repo.clone());
    let gyms = GymService::new(repo.clone(), repo.clone(), repo.clone(), credits.clone(), uow.clone(), clock.clone());
    let schedule = ScheduleService::new(repo.clone(), repo.clone(), credits.clone(), uow.clone(), clock.clone());
    let window = Duration::minutes(settings.checkin_window_minutes);
    let attendance = AttendanceService::new(repo.clone(), repo.clone(), repo, credits, uow, clock.clone(), window);

    let stamp = clock.now().unix_timestamp();
    let person = |who: &str| Claims {
        sub: format!("demo|{who}-{stamp}"),
        email: Some(format!("{who}@demo.gymapi.local")),
        name: Some(format!("Demo {who}")),
    };
    let owner = users.provision(&person("owner")).await?;
    let gym = gyms
        .create_gym(
            owner.id,
            NewGym {
                name: "GymAPI Demo Gym".into(),
                timezone: DEMO_ZONE.into(),
                address: Some("1 Demo Street".into()),
            },
        )
        .await?;
    let as_owner = Actor { user_id: owner.id, gym_id: gym.id, role: Role::Owner };
    let trainer = users.provision(&person("trainer")).await?;
    gyms.add_member(&as_owner, trainer.id, Role::Trainer).await?;
    let mut members = Vec::new();
    for i in 1..=3 {
        let m = users.provision(&person(&format!("member{i}"))).await?;
        gyms.add_member(&as_owner, m.id, Role::Member).await?;
        members.push(m);
    }
    let now = clock.now();
    let mut sessions = Vec::new();
    for (name, minutes, offset) in [("Spinning", 45, 5), ("Yoga", 60, 90), ("CrossFit", 50, 24 * 60)] {
        let class = schedule
            .create_class(
                &as_owner,
                NewClass {
                    name: name.into(),
                    description: Some(format!("{name} for everyone")),
                    duration_minutes: domain::values::DurationMinutes::new(minutes)?,
                    max_capacity: domain::values::Capacity::new(20)?,
                    category: Some("demo".into()),
                    instructor_id: Some(trainer.id),
                },
            )
            .await?;
        let s = schedule
            .create_session(
                &as_owner,
                NewSession {
                    class_id: class.id,
                    start_time: domain::Timestamp::new(now + Duration::minutes(offset))?,
                    end_time: None,
                    trainer_id: Some(trainer.id),
                    room: Some("Main room".into()),
                },
            )
            .await?;
        sessions.push(s);
    }
    let exp = now.unix_timestamp().unsigned_abs() + 7 * 24 * 3600;
    let token = |sub: &str| {
        sign_hs256(
            &secret,
            &TokenClaims {
                sub: sub.to_owned(),
                exp,
                email: None,
                name: None,
                scope: Some("resource:read resource:write".into()),
                permissions: None,
            },
        )
    };
    let mut out = format!("Demo gym {} (X-Gym-ID: {})\n\n", gym.name, gym.id.0);
    for (role, u) in [("owner", &owner), ("trainer", &trainer)] {
        out += &format!("{role:8} user {:>4}  token: {}\n", u.id.0, token(&u.auth0_id)?);
    }
    for m in &members {
        let qr = attendance.my_qr(&Actor { user_id: m.id, gym_id: gym.id, role: Role::Member }).await?.code;
        out += &format!("member   user {:>4}  qr: {qr}  token: {}\n", m.id.0, token(&m.auth0_id)?);
    }
    out += "\nSessions:\n";
    for s in &sessions {
        out += &format!("  session {:>4} starts {}\n", s.id, both_clocks(s.start_time, &gym.timezone)?);
    }
    let base = reachable(settings.bind_addr);
    let first_qr = attendance.my_qr(&Actor { user_id: members[0].id, gym_id: gym.id, role: Role::Member }).await?.code;
    out += &format!(
        "\nTry a check-in at the front desk (the trainer scans member 1):\n\
         curl -s -X POST {base}/api/v1/attendance/check-in \\\n  -H 'Authorization: Bearer {}' \\\n  \
         -H 'X-Gym-ID: {}' -H 'Content-Type: application/json' \\\n  -d '{{\"qr_code\": \"{first_qr}\"}}'\n\n\
         Next: the interactive API docs at {base}/docs, and docs/api.md for what GymAPI adds to the contract.\n",
        token(&trainer.auth0_id)?,
        gym.id.0,
    );
    Ok(out)
}
