//! The migration runner: pending migrations once each, in order, recorded in
//! `seaql_migrations`; rolled back newest first.

use gymapi_tests::{Backend, TestDb};
use sea_orm::{ConnectionTrait, Database};

async fn runner_round_trip(backend: Backend) {
    let file = TestDb::empty(backend).await;
    let db = Database::connect(file.url.as_str()).await.expect("connect");
    let names: Vec<String> = migration::all().iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(migration::up(&db).await, Ok(names.len()));
    assert_eq!(migration::applied(&db).await, Ok(names.clone()));
    assert_eq!(migration::up(&db).await, Ok(0), "nothing is applied twice");
    assert_eq!(migration::down(&db, 1).await, Ok(1));
    assert_eq!(migration::applied(&db).await.as_deref(), Ok(&names[..names.len() - 1]), "the newest went first");
    assert_eq!(migration::up(&db).await, Ok(1));
    let tables = match backend {
        Backend::Postgres => "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'participations'",
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'participations'",
    };
    let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), tables)).await;
    let n = row.expect("query").expect("a row").try_get_by_index::<i64>(0).expect("count");
    assert_eq!(n, 1, "the schema is there");
    assert_eq!(migration::down(&db, names.len()).await, Ok(names.len()));
    assert_eq!(migration::applied(&db).await, Ok(vec![]));
    // A database a newer binary migrated is refused, not half-served.
    let future = "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29991231_000001_future', 0)";
    db.execute_unprepared(future).await.expect("record");
    assert!(migration::up(&db).await.is_err(), "an unknown applied migration stops the start");
    let _ = db.close().await;
}

#[tokio::test]
async fn the_runner_applies_each_migration_once_and_rolls_back_newest_first_on_postgres() {
    runner_round_trip(Backend::Postgres).await;
}

#[tokio::test]
async fn the_runner_applies_each_migration_once_and_rolls_back_newest_first_on_sqlite() {
    runner_round_trip(Backend::Sqlite).await;
}

/// Instances that start together on one empty PostgreSQL database all come up: each
/// migration is applied by one of them, the others find it recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_migrating_at_once_apply_each_migration_once_on_postgres() {
    let file = TestDb::empty(Backend::Postgres).await;
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(Database::connect(file.url.as_str()).await.expect("connect"));
    }
    let results = futures_util::future::join_all(conns.iter().map(migration::up)).await;
    let applied: usize = results.iter().map(|r| r.as_ref().copied().expect("every instance migrates")).sum();
    assert_eq!(applied, migration::all().len(), "{results:?}");
    assert_eq!(migration::applied(&conns[0]).await.map(|v| v.len()), Ok(migration::all().len()));
}
