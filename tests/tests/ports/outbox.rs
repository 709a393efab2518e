//! The unit of work and the outbox: facts committed with their change or not at all,
//! claimed by one relay at a time under a lease, numbered per gym after the commit,
//! marked delivered, purged after their retention.

use domain::facts::{DomainEvent, Fact, FactId, Outbox};
use domain::tx::Database;
use sea_orm::{ConnectionTrait, Database as Connect, Statement};

use super::*;

/// `(gym_id, id, gym_seq, delivered)` of every fact, by id.
async fn rows(url: &str) -> Vec<(i64, i64, Option<i64>, bool)> {
    let conn = Connect::connect(url).await.expect("connect");
    let sql = "SELECT gym_id, id, gym_seq, delivered_at IS NOT NULL AS delivered FROM outbox ORDER BY id";
    let rows = conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql)).await.expect("read");
    let _ = conn.close().await;
    rows.iter()
        .map(|r| {
            let delivered: bool = r
                .try_get("", "delivered")
                .unwrap_or_else(|_| r.try_get::<i32>("", "delivered").map(|n| n != 0).expect("delivered"));
            (
                r.try_get("", "gym_id").expect("gym"),
                r.try_get("", "id").expect("id"),
                r.try_get("", "gym_seq").expect("seq"),
                delivered,
            )
        })
        .collect()
}

async fn commit_facts(db: &Db, facts: &[DomainEvent]) -> Vec<Fact> {
    let mut tx = db.begin().await.expect("begin");
    for f in facts {
        tx.record(f.clone());
    }
    db.commit(tx).await.expect("commit")
}

gymapi_tests::per_backend!(facts_are_committed_with_their_change_or_not_at_all, 2, |backend| {
    let (store, db) = open(backend).await;
    let (g, owner) = gym(&db).await;
    let before = rows(&store.file.url).await.len();
    // Rolled back: neither the change nor its fact.
    let u = user(&db, "auth0|outbox").await;
    let mut tx = db.begin().await.expect("begin");
    db.add_member(&mut tx, g.id, u.id, Role::Member, now()).await.expect("add");
    tx.record(DomainEvent::MembershipChanged { gym: g.id, user: u.id });
    drop(tx);
    assert_eq!(rows(&store.file.url).await.len(), before, "no fact without its change");
    // Committed: both, the fact with its gym and a stable id.
    let mut tx = db.begin().await.expect("begin");
    db.add_member(&mut tx, g.id, u.id, Role::Member, now()).await.expect("add");
    tx.record(DomainEvent::MembershipChanged { gym: g.id, user: u.id });
    tx.record(DomainEvent::ProfileChanged { user: owner.id });
    let facts = db.commit(tx).await.expect("commit");
    assert_eq!(facts.len(), 2);
    assert_eq!(facts[0].id.gym, g.id.0);
    assert_eq!(facts[1].id.gym, 0, "a fact of a user alone is kept under gym 0");
    assert!(facts[0].id.id < facts[1].id.id);
    let stored = rows(&store.file.url).await;
    assert_eq!(stored.len(), before + 2);
    assert!(stored.iter().any(|r| (r.0, r.1) == (g.id.0, facts[0].id.id)));
    assert!(db.membership(u.id, g.id).await.expect("read").is_some());
});

gymapi_tests::per_backend!(a_claim_is_leased_to_one_relay_then_released_and_delivered_facts_are_purged, 2, |backend| {
    let (store, db) = open(backend).await;
    let (g, owner) = gym(&db).await;
    let facts = commit_facts(&db, &[DomainEvent::ProfileChanged { user: owner.id }]).await;
    let mine = facts[0].id;
    let t = now();
    let young = db.claim(t, t - Duration::seconds(10), t + Duration::seconds(30), 100).await.expect("claim");
    assert!(young.iter().all(|f| f.id != mine), "a fact younger than the grace is left to its request");
    let later = t + Duration::seconds(5);
    let claimed = db.claim(later, later, later + Duration::seconds(30), 100).await.expect("claim");
    assert!(claimed.iter().any(|f| f.id == mine && f.event == DomainEvent::ProfileChanged { user: owner.id }));
    let again = db.claim(later, later, later + Duration::seconds(30), 100).await.expect("claim");
    assert!(again.iter().all(|f| f.id != mine), "leased to the first relay");
    // The first relay died: after its lease another takes the fact over.
    let after_lease = later + Duration::seconds(31);
    let taken = db.claim(after_lease, after_lease, after_lease + Duration::seconds(30), 100).await.expect("claim");
    assert!(taken.iter().any(|f| f.id == mine));
    db.delivered(&[mine]).await.expect("mark");
    // Marks are written in batches, a moment later.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let far = after_lease + Duration::hours(1);
    let none = db.claim(far, far, far + Duration::seconds(30), 100).await.expect("claim");
    assert!(none.iter().all(|f| f.id != mine), "a delivered fact is never claimed");
    assert!(rows(&store.file.url).await.iter().any(|r| (r.0, r.1, r.3) == (mine.gym, mine.id, true)));
    assert_eq!(db.purge(t - Duration::days(1)).await, Ok(0), "kept for its retention");
    assert!(db.purge(far).await.expect("purge") >= 1);
    assert!(rows(&store.file.url).await.iter().all(|r| r.1 != mine.id), "purged");
    let _ = g;
});

gymapi_tests::per_backend!(facts_are_numbered_per_gym_in_the_order_of_their_ids, 2, |backend| {
    let (store, db) = open(backend).await;
    let (a, owner) = gym(&db).await;
    let (b, _) = gym(&db).await;
    let mut ids: Vec<FactId> = Vec::new();
    for gym in [a.id, b.id, a.id, a.id, b.id] {
        let facts = commit_facts(&db, &[DomainEvent::ClassChanged { gym, class: domain::ClassId(1) }]).await;
        ids.push(facts[0].id);
    }
    commit_facts(&db, &[DomainEvent::QrRotated { user: owner.id }]).await;
    let mut heads: Vec<(domain::GymId, i64)> = Vec::new();
    loop {
        let run = db.sequence(2).await.expect("sequence");
        assert!(!run.busy, "no other sequencer runs here");
        if run.facts == 0 {
            break;
        }
        heads.extend(run.heads);
    }
    let stored = rows(&store.file.url).await;
    let seqs = |gym: i64| -> Vec<i64> {
        stored.iter().filter(|r| r.0 == gym).map(|r| r.2.expect("numbered")).collect::<Vec<_>>()
    };
    // Gym creation and membership facts were written before: each gym counts from 1.
    for gym in [a.id.0, b.id.0, 0] {
        let s = seqs(gym);
        assert_eq!(s, (1..=s.len() as i64).collect::<Vec<_>>(), "gym {gym}: gapless, in id order");
    }
    assert!(ids.windows(2).all(|w| w[0].id < w[1].id));
    // What a run numbered is announced as each gym's last number.
    for gym in [a.id, b.id] {
        let last = heads.iter().filter(|h| h.0 == gym).map(|h| h.1).max();
        assert_eq!(last, Some(seqs(gym.0).len() as i64), "gym {}: its head", gym.0);
    }
});
