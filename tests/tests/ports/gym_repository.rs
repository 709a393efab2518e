//! [`GymRepository`]: gyms, memberships, and the last-owner rule under concurrency.

use domain::schedule::{Booking, SessionStatus};
use domain::{DomainError, Page, UserId};

use super::*;

contract!(create_with_owner_makes_the_creator_its_owner, |db| {
    let (g, owner) = gym(&db).await;
    assert_eq!(GymRepository::by_id(&*db, g.id).await, Ok(Some(g.clone())));
    assert_eq!(GymRepository::by_id(&*db, GymId(i64::MAX)).await, Ok(None));
    let m = db.membership(owner.id, g.id).await.expect("read").expect("a membership");
    assert_eq!((m.user_id, m.gym_id, m.role), (owner.id, g.id, Role::Owner));
    let (h, _) = gym(&db).await;
    db.add_member(h.id, owner.id, Role::Trainer, now()).await.expect("join another gym");
    let mut expected = vec![(g.id, Role::Owner), (h.id, Role::Trainer)];
    expected.sort();
    assert_eq!(db.roles_of(owner.id).await, Ok(expected.clone()));
    let gyms = db.gyms_of(owner.id).await.expect("gyms");
    assert_eq!(gyms.iter().map(|(g, r)| (g.id, *r)).collect::<Vec<_>>(), expected);
    assert_eq!(db.membership(owner.id, GymId(i64::MAX)).await, Ok(None));
});

contract!(add_member_refuses_unknown_users_and_existing_members, |db| {
    let (g, _) = gym(&db).await;
    let u = user(&db, "auth0|dani").await;
    let m = db.add_member(g.id, u.id, Role::Member, now()).await.expect("add");
    assert_eq!((m.user_id, m.role), (u.id, Role::Member));
    assert_eq!(db.add_member(g.id, u.id, Role::Admin, now()).await, Err(DomainError::AlreadyMember));
    assert_eq!(db.membership(u.id, g.id).await.map(|m| m.map(|m| m.role)), Ok(Some(Role::Member)), "unchanged");
    assert_eq!(db.add_member(g.id, UserId(5), Role::Member, now()).await, Err(DomainError::UserNotFound));
});

contract!(members_are_listed_by_user_id_filtered_by_role_and_paged, |db| {
    let (g, owner) = gym(&db).await;
    let mut members = vec![owner.id];
    for _ in 0..3 {
        members.push(member(&db, g.id, Role::Member).await.id);
    }
    let trainer = member(&db, g.id, Role::Trainer).await;
    members.push(trainer.id);
    members.sort();
    let all = db.members(g.id, None, Page::new(0, 100).expect("page")).await.expect("list");
    assert_eq!(all.iter().map(|e| e.user.id).collect::<Vec<_>>(), members);
    let trainers = db.members(g.id, Some(Role::Trainer), Page::new(0, 100).expect("page")).await.expect("list");
    assert_eq!(trainers.iter().map(|e| (e.user.id, e.role)).collect::<Vec<_>>(), [(trainer.id, Role::Trainer)]);
    let page = db.members(g.id, None, Page::new(1, 2).expect("page")).await.expect("list");
    assert_eq!(page.iter().map(|e| e.user.id).collect::<Vec<_>>(), members[1..3]);
    let (other, _) = gym(&db).await;
    assert_eq!(db.members(other.id, Some(Role::Trainer), Page::new(0, 10).expect("page")).await, Ok(vec![]));
});

contract!(set_role_changes_members_and_keeps_an_owner, |db| {
    let (g, owner) = gym(&db).await;
    let u = member(&db, g.id, Role::Member).await;
    let m = db.set_role(g.id, u.id, Role::Admin).await.expect("set").expect("a member");
    assert_eq!(m.role, Role::Admin);
    assert_eq!(db.set_role(g.id, UserId(5), Role::Admin).await, Ok(None), "not a member");
    assert_eq!(db.set_role(g.id, owner.id, Role::Admin).await, Err(DomainError::LastOwner));
    db.set_role(g.id, u.id, Role::Owner).await.expect("second owner");
    let m = db.set_role(g.id, owner.id, Role::Member).await.expect("set").expect("a member");
    assert_eq!(m.role, Role::Member, "with another owner the first may step down");
});

contract!(racing_owners_leave_the_gym_exactly_one_owner, |db| {
    let (g, first) = gym(&db).await;
    let mut owners = vec![first.id];
    for _ in 0..9 {
        owners.push(member(&db, g.id, Role::Owner).await.id);
    }
    // Half step down, half leave, all at once: only a lock on the gym decides.
    let results = race(owners.len(), |i| {
        let (db, user, gym) = (db.clone(), owners[i], g.id);
        async move {
            if i % 2 == 0 {
                db.set_role(gym, user, Role::Member).await.map(|_| ())
            } else {
                db.remove_member(gym, user, now()).await.map(|_| ())
            }
        }
    })
    .await;
    let refused = results.iter().filter(|r| **r == Err(DomainError::LastOwner)).count();
    assert_eq!(refused, 1, "exactly one racer is the last owner: {results:?}");
    assert!(results.iter().all(|r| r.is_ok() || *r == Err(DomainError::LastOwner)), "{results:?}");
    let left = db.members(g.id, Some(Role::Owner), Page::new(0, 100).expect("page")).await.expect("list");
    assert_eq!(left.len(), 1, "the gym keeps one owner");
});

contract!(remove_member_frees_the_places_ahead_and_refuses_the_last_owner, |db| {
    let (g, owner) = gym(&db).await;
    let c = class(&db, g.id, 5).await;
    let ahead = session(&db, g.id, &c, now() + Duration::days(1)).await;
    let behind = session(&db, g.id, &c, now() + Duration::hours(2)).await;
    let u = member(&db, g.id, Role::Member).await;
    for s in [&ahead, &behind] {
        assert!(matches!(db.book(g.id, s.id, u.id, now()).await, Ok(Booking::Booked(_))));
    }
    // "Now" between the two sessions' starts: only the later place is ahead.
    let when = now() + Duration::hours(3);
    assert_eq!(db.remove_member(g.id, u.id, when).await, Ok(Some(vec![ahead.id])));
    let freed = db.session(g.id, ahead.id).await.expect("read").expect("session");
    assert_eq!((freed.registered_count, freed.status), (0, SessionStatus::Scheduled));
    let kept = db.session(g.id, behind.id).await.expect("read").expect("session");
    assert_eq!(kept.registered_count, 1, "a place in a started session is history");
    assert_eq!(db.membership(u.id, g.id).await, Ok(None));
    assert_eq!(db.remove_member(g.id, u.id, when).await, Ok(None), "not a member any more");
    assert_eq!(db.remove_member(g.id, owner.id, when).await, Err(DomainError::LastOwner));
    assert!(db.membership(owner.id, g.id).await.expect("read").is_some(), "the refused removal changed nothing");
});
