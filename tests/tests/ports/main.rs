//! Contract tests of the repository ports: each suite holds the SQL adapter to what
//! its port's documentation promises — every method, and the concurrency guarantees —
//! on PostgreSQL and on SQLite. The domain's unit tests mock these ports; these tests
//! are why the mocks may be trusted. The migration runner is held here too.

use std::sync::Arc;

use domain::attendance::QrSecret;
use domain::gyms::{Gym, GymRepository, NewGym};
use domain::schedule::{Class, NewClass, ScheduleRepository, Session, SessionDraft};
use domain::users::{Claims, User, UserRepository};
use domain::values::{Capacity, DurationMinutes};
use domain::{GymId, Role, Timestamp};
use gymapi_tests::{Backend, Store};
use infra::db::Db;
use time::{Duration, OffsetDateTime};

mod attendance_repository;
mod event_repository;
mod gym_repository;
mod migrations;
mod schedule_repository;
mod user_repository;

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
    db.provision(&claims, &QrSecret::random(), now()).await.expect("provision")
}

/// A gym and its owner.
async fn gym(db: &Db) -> (Gym, User) {
    let owner = user(db, &format!("owner-{}", rand::random::<u64>())).await;
    let new = NewGym { name: "Central".into(), timezone: "UTC".into(), address: None };
    (db.create_with_owner(&new, owner.id, now()).await.expect("create gym"), owner)
}

/// A new user who is a member of the gym with the role.
async fn member(db: &Db, gym: GymId, role: Role) -> User {
    let u = user(db, &format!("member-{}", rand::random::<u64>())).await;
    db.add_member(gym, u.id, role, now()).await.expect("add member");
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
    db.create_class(gym, &new, now()).await.expect("create class")
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
    };
    db.create_session(gym, &draft, now()).await.expect("create session")
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
