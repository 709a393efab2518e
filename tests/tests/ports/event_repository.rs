//! [`EventRepository`]: a gym's events, stored, listed by start, changed and deleted.

use domain::events::{EventRepository, NewEvent};
use domain::{EventId, Page};

use super::*;

fn new_event(title: &str, start: OffsetDateTime, by: domain::UserId) -> NewEvent {
    NewEvent {
        title: title.to_owned(),
        description: Some("Bring water".into()),
        start_time: ts(start),
        end_time: ts(start + Duration::hours(2)),
        location: Some("Hall".into()),
        max_participants: Some(30),
        created_by: by,
    }
}

contract!(an_event_is_stored_as_asked_and_read_only_from_its_gym, |db| {
    let (g, owner) = gym(&db).await;
    let (other, _) = gym(&db).await;
    let start = now() + Duration::days(3);
    let created_at = now() - Duration::minutes(1);
    let e = in_tx!(db, |tx| db.create(tx, g.id, &new_event("Open day", start, owner.id), created_at)).expect("create");
    assert_eq!((e.gym_id, e.title.as_str(), e.start_time.get()), (g.id, "Open day", start));
    assert_eq!((e.created_by, e.created_at, e.max_participants), (Some(owner.id), created_at, Some(30)));
    assert_eq!(db.get(g.id, e.id).await, Ok(Some(e.clone())));
    assert_eq!(db.get(other.id, e.id).await, Ok(None));
    assert_eq!(db.get(g.id, EventId(i64::MAX)).await, Ok(None));
});

contract!(events_are_listed_by_start_then_id_in_an_inclusive_range, |db| {
    let (g, owner) = gym(&db).await;
    let (other, _) = gym(&db).await;
    let t = now() + Duration::days(1);
    let later = in_tx!(db, |tx| db.create(tx, g.id, &new_event("Later", t + Duration::days(1), owner.id), now()))
        .expect("create");
    let first = in_tx!(db, |tx| db.create(tx, g.id, &new_event("First", t, owner.id), now())).expect("create");
    let second = in_tx!(db, |tx| db.create(tx, g.id, &new_event("Second", t, owner.id), now())).expect("create");
    let page = Page::new(0, 100).expect("page");
    let got = db.between(g.id, t, t + Duration::days(1) - Duration::seconds(1), page).await.expect("list");
    assert_eq!(got, [first.clone(), second.clone()], "a second before `later`");
    let got = db.between(g.id, t + Duration::seconds(1), t + Duration::days(1), page).await.expect("list");
    assert_eq!(got, std::slice::from_ref(&later), "`through` is included, `from` bounds below");
    let got = db.between(g.id, t, t + Duration::days(2), page).await.expect("list");
    assert_eq!(got, [first, second.clone(), later]);
    let got = db.between(g.id, t, t + Duration::days(2), Page::new(1, 1).expect("page")).await;
    assert_eq!(got, Ok(vec![second]));
    assert_eq!(db.between(other.id, t, t + Duration::days(2), page).await, Ok(vec![]));
});

contract!(an_event_is_replaced_and_deleted_only_in_its_gym, |db| {
    let (g, owner) = gym(&db).await;
    let (other, _) = gym(&db).await;
    let e = in_tx!(db, |tx| db.create(tx, g.id, &new_event("Race", now() + Duration::days(1), owner.id), now()))
        .expect("create");
    let mut changed = e.clone();
    changed.title = "Charity race".into();
    changed.location = None;
    changed.max_participants = None;
    changed.end_time = ts(e.end_time.get() + Duration::hours(1));
    assert_eq!(in_tx!(db, |tx| db.update(tx, other.id, &changed)), Ok(None), "not from another gym");
    assert_eq!(db.get(g.id, e.id).await, Ok(Some(e.clone())));
    assert_eq!(in_tx!(db, |tx| db.update(tx, g.id, &changed)), Ok(Some(changed.clone())));
    assert_eq!(db.get(g.id, e.id).await, Ok(Some(changed)));
    assert_eq!(in_tx!(db, |tx| db.delete(tx, other.id, e.id)), Ok(false));
    assert_eq!(in_tx!(db, |tx| db.lock(tx, other.id, e.id)), Ok(None), "not locked from another gym");
    assert_eq!(in_tx!(db, |tx| db.delete(tx, g.id, e.id)), Ok(true));
    assert_eq!(in_tx!(db, |tx| db.delete(tx, g.id, e.id)), Ok(false));
    assert_eq!(in_tx!(db, |tx| db.lock(tx, g.id, e.id)), Ok(None), "gone");
    assert_eq!(db.get(g.id, e.id).await, Ok(None));
});
