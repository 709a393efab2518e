//! The pass expiry job over the SQL adapter: passes past their expiry lose the
//! credits they still hold, once, however many instances run the job at once.

use std::sync::Arc;

use domain::clock::{Clock, FixedClock};
use domain::facts::Dispatcher;
use domain::passes::{EntryKind, PassService};
use domain::plans::{NewPlan, PlanKind, PlanService};
use domain::tx::UnitOfWork;
use domain::{Page, Role};
use infra::db::Db;
use time::Duration;

use crate::{actor, gym, member, now, open};

fn passes_at(db: &Arc<Db>, clock: Arc<dyn Clock>) -> PassService {
    let uow = UnitOfWork::new(db.clone(), Dispatcher::new().with_outbox(db.clone()));
    PassService::new(db.clone(), db.clone(), uow, clock)
}

gymapi_tests::per_backend!(two_instances_running_the_expiry_job_at_once_expire_each_pass_once, 4, |backend| {
    let (store, db) = open(backend).await;
    let (g, owner) = gym(&db).await;
    let admin = actor(owner.id, g.id, Role::Owner);
    let uow = UnitOfWork::new(db.clone(), Dispatcher::new().with_outbox(db.clone()));
    let plans = PlanService::new(db.clone(), uow, Arc::new(FixedClock(now())));
    let ask = |credits| NewPlan {
        name: "Pack".into(),
        kind: PlanKind::Pack,
        credits: Some(credits),
        valid_days: 30,
        weekly_limit: None,
        categories: None,
    };
    let (three, five) =
        (plans.create(&admin, ask(3)).await.expect("plan"), plans.create(&admin, ask(5)).await.expect("plan"));
    // Sold forty days ago: expired ten days ago. One more sold today is still valid.
    let then = passes_at(&db, Arc::new(FixedClock(now() - Duration::days(40))));
    let today = passes_at(&db, Arc::new(FixedClock(now())));
    let mut expired = Vec::new();
    for _ in 0..6 {
        let m = member(&db, g.id, Role::Member).await;
        expired.push((m.id, then.sell(&admin, m.id, three.id, None).await.expect("sold")));
    }
    let keeper = member(&db, g.id, Role::Member).await;
    let kept = today.sell(&admin, keeper.id, five.id, None).await.expect("sold");
    // One expired pass was used up by hand first: it has nothing left to expire.
    let (spent_member, spent) = &expired[0];
    then.adjust(&admin, *spent_member, spent.id, -3, "used up").await.expect("adjusted");

    let other = Arc::new(store.another_instance().await);
    let (a, b) = (passes_at(&db, Arc::new(FixedClock(now()))), passes_at(&other, Arc::new(FixedClock(now()))));
    let runs = futures_util::future::join_all((0..6).map(|i| {
        let job = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { job.expire_passes().await.expect("the job") }
    }))
    .await;
    assert_eq!(runs.iter().sum::<usize>(), expired.len() - 1, "each pass with credits once: {runs:?}");
    assert_eq!(a.expire_passes().await, Ok(0), "nothing left: the job is idempotent");

    for (m, p) in &expired {
        let owner_view = actor(owner.id, g.id, Role::Owner);
        let ledger = a.ledger(&owner_view, *m, Page::default()).await.expect("ledger");
        let expires: Vec<_> = ledger.iter().filter(|e| e.movement.kind == EntryKind::Expire).collect();
        let passes = a.passes(&owner_view, *m, Page::default()).await.expect("passes");
        assert_eq!(passes[0].credits_left, Some(0), "pass {}: nothing left", p.id);
        if p.id == spent.id {
            assert!(expires.is_empty(), "a pass with nothing left gets no entry");
        } else {
            assert_eq!(expires.len(), 1, "pass {}: one expire entry", p.id);
            assert_eq!(expires[0].movement.credits, -3);
        }
    }
    let keeper_view =
        a.passes(&actor(keeper.id, g.id, Role::Member), keeper.id, Page::default()).await.expect("passes");
    assert_eq!((keeper_view[0].id, keeper_view[0].credits_left), (kept.id, Some(5)), "a valid pass keeps its credits");
});
