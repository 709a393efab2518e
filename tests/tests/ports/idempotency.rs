//! The SQL adapter's idempotency keys (`infra::db::idempotency`): a transaction begun
//! inside a hold claims its keys first, its commit waits in the hold, and
//! `Db::settle` commits the work with the answers; a hold let go rolls the work
//! back with its claim; keys expire after a day and are purged.

use std::sync::Arc;

use domain::facts::DomainEvent;
use domain::tx::Database;
use gymapi_tests::TestClock;
use infra::db::idempotency::{Answer, Claim, Hold, KEEP};
use sea_orm::{ConnectionTrait, Database as Connect, Statement};

use super::*;

fn claim(user: UserId, key: &str, fingerprint: &str) -> Claim {
    Claim { user, key: key.to_owned(), fingerprint: fingerprint.to_owned() }
}

fn answer(body: &str) -> Answer {
    Answer { status: 201, content_type: Some("application/json".into()), body: body.to_owned() }
}

/// Begins, records a fact, commits, all inside the hold: the commit parks.
async fn work(db: &Db, hold: &Arc<Hold>, user: UserId) -> domain::Result<Vec<domain::facts::Fact>> {
    hold.run(async {
        let mut tx = db.begin().await?;
        tx.record(DomainEvent::ProfileChanged { user });
        db.commit(tx).await
    })
    .await
}

/// How many facts the outbox holds.
async fn facts(url: &str) -> i64 {
    let conn = Connect::connect(url).await.expect("connect");
    let sql = "SELECT COUNT(*) FROM outbox";
    let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql)).await.expect("read");
    let _ = conn.close().await;
    row.expect("a row").try_get_by_index::<i64>(0).expect("a count")
}

gymapi_tests::per_backend!(work_and_answer_commit_together_or_not_at_all, 2, |backend| {
    let (store, db) = open(backend).await;
    let clock = Arc::new(TestClock::default());
    let db = Arc::new((*db).clone().with_clock(clock.clone()));
    let u = user(&db, &format!("idem-{}", rand::random::<u64>())).await;
    let url = store.file.url.clone();
    let outbox = |_: Arc<Db>| facts(&url);
    let before = outbox(db.clone()).await;

    // Let go: the claim and the work are rolled back together.
    let hold = Hold::new(vec![claim(u.id, "a", "f1")]);
    assert_eq!(work(&db, &hold, u.id).await.expect("parked"), vec![], "a parked commit hands out no facts yet");
    assert!(hold.is_parked());
    hold.abandon();
    assert_eq!(db.kept(u.id, "a").await.expect("read"), None);
    assert_eq!(outbox(db.clone()).await, before, "the work rolled back with its claim");

    // Settled: both committed; the facts come out of the settle.
    let hold = Hold::new(vec![claim(u.id, "a", "f1")]);
    work(&db, &hold, u.id).await.expect("parked");
    let facts = db.settle(&hold, &[Some(answer("{\"id\":1}"))]).await.expect("settle");
    assert_eq!(facts.len(), 1, "the work's fact, to deliver now");
    let kept = db.kept(u.id, "a").await.expect("read").expect("kept");
    assert_eq!((kept.fingerprint.as_str(), kept.answer), ("f1", answer("{\"id\":1}")));
    assert_eq!(outbox(db.clone()).await, before + 1);

    // A kept key is not claimed again: the work is refused before it starts.
    let hold = Hold::new(vec![claim(u.id, "a", "f2")]);
    assert_eq!(work(&db, &hold, u.id).await, Err(domain::DomainError::IdempotencyKeyInProgress));
    assert!(!hold.is_parked());
    assert_eq!(outbox(db.clone()).await, before + 1);

    // Several keys, one refused request among them: its claim is released.
    let hold = Hold::new(vec![claim(u.id, "c", "f"), claim(u.id, "b", "f")]);
    assert_eq!(hold.claims()[0].key, "b", "claimed in ascending order");
    work(&db, &hold, u.id).await.expect("parked");
    db.settle(&hold, &[Some(answer("b")), None]).await.expect("settle");
    assert_eq!(db.kept(u.id, "b").await.expect("read").map(|k| k.answer.body), Some("b".to_owned()));
    assert_eq!(db.kept(u.id, "c").await.expect("read"), None, "the refused one's key stays free");

    // Nothing parked (a success that changed nothing): the answer alone is kept.
    let hold = Hold::new(vec![claim(u.id, "d", "f")]);
    db.settle(&hold, &[Some(answer("noop"))]).await.expect("settle");
    assert_eq!(db.kept(u.id, "d").await.expect("read").map(|k| k.answer.body), Some("noop".to_owned()));

    // A day later the keys are gone from reads, taken over by a new claim, and purged.
    clock.set(now() + KEEP + Duration::seconds(1));
    assert_eq!(db.kept(u.id, "a").await.expect("read"), None);
    let hold = Hold::new(vec![claim(u.id, "a", "f3")]);
    work(&db, &hold, u.id).await.expect("an expired key is claimed again");
    db.settle(&hold, &[Some(answer("new"))]).await.expect("settle");
    assert_eq!(db.purge_idempotency_keys().await.expect("purge"), 2, "b and d expired; a is new");
    assert_eq!(db.kept(u.id, "a").await.expect("read").map(|k| k.fingerprint), Some("f3".to_owned()));
});
