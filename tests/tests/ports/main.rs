//! Contract tests of the repository ports: each suite holds the SQL adapter to what
//! its port's documentation promises — every method, and the concurrency guarantees —
//! on PostgreSQL and on SQLite. The domain's unit tests mock these ports; these tests
//! are why the mocks may be trusted. The migration runner is held here too.

use std::sync::Arc;

use domain::attendance::{AttendanceService, QrSecret};
use domain::clock::SystemClock;
use domain::facts::Dispatcher;
use domain::gyms::{Gym, GymRepository, GymService, NewGym};
use domain::schedule::{Class, NewClass, ScheduleRepository, ScheduleService, Session, SessionDraft};
use domain::tx::UnitOfWork;
use domain::users::{Claims, User, UserRepository};
use domain::values::{Actor, Capacity, DurationMinutes};
use domain::{GymId, Role, Timestamp, UserId};
use gymapi_tests::{Backend, Store};
use infra::db::Db;
use time::{Duration, OffsetDateTime};

mod attendance_repository;
mod catalog;
mod event_repository;
mod gym_repository;
mod idempotency;
mod migrations;
mod outbox;
mod pass_repository;
mod schedule_repository;
mod user_repository;

/// One repository write in a transaction of its own, committed when it succeeds:
/// `in_tx!(db, |tx| db.method(tx, …))`.
macro_rules! in_tx {
    ($db:expr, |$tx:ident| $call:expr) => {{
        let mut begun = domain::tx::Database::begin(&*$db).await.expect("begin");
        let out = {
            let $tx = &mut begun;
            $call.await
        };
        if out.is_ok() {
            domain::tx::Database::commit(&*$db, begun).await.expect("commit");
        }
        out
    }};
}
pub(crate) use in_tx;

/// Declares one test per database: `mod name { postgres(), sqlite() }`, each given
/// `$db: Arc<Db>` on a fresh, migrated database.
macro_rules! contract {
    ($(#[$meta:meta])* $name:ident, |$db:ident| $body:block) => {
        gymapi_tests::per_backend!($(#[$meta])* $name, 4, |backend| {
            let store = $crate::open(backend).await;
            let $db = store.1.clone();
            $body
        });
    };
}
pub(crate) use contract;

/// The store (kept alive for the test) and the adapter, shared by racing tasks.
async fn open(backend: Backend) -> (Store, Arc<Db>) {
    let store = Store::open(backend).await;
    let db = Arc::new(store.db.clone());
    (store, db)
}

/// Now, in whole seconds (what the adapters store).
fn now() -> OffsetDateTime {
    gymapi_tests::now()
}

fn ts(t: OffsetDateTime) -> Timestamp {
    Timestamp::new(t).expect("a storable time")
}

async fn user(db: &Db, sub: &str) -> User {
    let claims = Claims { sub: sub.to_owned(), email: Some(format!("{sub}@example.com")), name: None };
    in_tx!(db, |tx| db.provision(tx, &claims, &QrSecret::random(), now())).expect("provision")
}

/// A gym and its owner.
async fn gym(db: &Db) -> (Gym, User) {
    let owner = user(db, &format!("owner-{}", rand::random::<u64>())).await;
    let new = NewGym { name: "Central".into(), timezone: "UTC".into(), address: None };
    (in_tx!(db, |tx| db.create_with_owner(tx, &new, owner.id, now())).expect("create gym"), owner)
}

/// A new user who is a member of the gym with the role.
async fn member(db: &Db, gym: GymId, role: Role) -> User {
    let u = user(db, &format!("member-{}", rand::random::<u64>())).await;
    in_tx!(db, |tx| db.add_member(tx, gym, u.id, role, now())).expect("add member");
    u
}

async fn class(db: &Db, gym: GymId, capacity: i32) -> Class {
    let new = NewClass {
        name: "Spinning".into(),
        description: None,
        duration_minutes: DurationMinutes::new(45).expect("duration"),
        max_capacity: Capacity::new(capacity).expect("capacity"),
        category: None,
        instructor_id: None,
    };
    in_tx!(db, |tx| db.create_class(tx, gym, &new, now())).expect("create class")
}

/// A session of the class starting at `start`, an hour long.
async fn session(db: &Db, gym: GymId, class: &Class, start: OffsetDateTime) -> Session {
    let draft = SessionDraft {
        class_id: class.id,
        start_time: ts(start),
        end_time: ts(start + Duration::hours(1)),
        trainer_id: None,
        room: None,
        capacity: class.max_capacity,
        recurrence: None,
    };
    in_tx!(db, |tx| db.create_session(tx, gym, &draft, now())).expect("create session")
}

/// The domain's services over this adapter (facts go to the outbox, heard by no one):
/// the rules that hold under concurrency are the services' decisions under the
/// adapter's locks, so they are raced through both.
struct Services {
    gyms: GymService,
    schedule: ScheduleService,
    attendance: AttendanceService,
}

fn services(db: &Arc<Db>) -> Services {
    let uow = UnitOfWork::new(db.clone(), Dispatcher::new().with_outbox(db.clone()));
    let clock = Arc::new(SystemClock);
    let credits = domain::credits::Credits::new(db.clone());
    Services {
        gyms: GymService::new(db.clone(), db.clone(), db.clone(), credits.clone(), uow.clone(), clock.clone()),
        schedule: ScheduleService::new(db.clone(), db.clone(), credits.clone(), uow.clone(), clock.clone()),
        attendance: AttendanceService::new(
            db.clone(),
            db.clone(),
            db.clone(),
            credits,
            uow,
            clock,
            Duration::minutes(30),
        ),
    }
}

/// Who acts in a gym with a role.
fn actor(user: UserId, gym: GymId, role: Role) -> Actor {
    Actor { user_id: user, gym_id: gym, role }
}

/// Runs `n` copies of a task at once and collects their results.
async fn race<T, F, Fut>(n: usize, task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (start, work) = (start.clone(), task(i));
            tokio::spawn(async move {
                start.wait().await;
                work.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await.expect("racer panicked"));
    }
    out
}
