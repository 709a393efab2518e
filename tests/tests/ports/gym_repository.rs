//! [`GymRepository`]: gyms, memberships, the locks of the gym and of a member, and the
//! last-owner rule under concurrency (decided by the service under those locks).

use domain::schedule::{ParticipationStatus, SessionStatus};
use domain::{DomainError, Page, SessionId};

use domain::members::MemberLock;

use super::*;

contract!(create_with_owner_makes_the_creator_its_owner, |db| {
    let (g, owner) = gym(&db).await;
    assert_eq!(GymRepository::by_id(&*db, g.id).await, Ok(Some(g.clone())));
    assert_eq!(GymRepository::by_id(&*db, GymId(i64::MAX)).await, Ok(None));
    let m = db.membership(owner.id, g.id).await.expect("read").expect("a membership");
    assert_eq!((m.user_id, m.gym_id, m.role), (owner.id, g.id, Role::Owner));
    let (h, _) = gym(&db).await;
    in_tx!(db, |tx| db.add_member(tx, h.id, owner.id, Role::Trainer, now())).expect("join another gym");
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
    let m = in_tx!(db, |tx| db.add_member(tx, g.id, u.id, Role::Member, now())).expect("add");
    assert_eq!((m.user_id, m.role), (u.id, Role::Member));
    let again = in_tx!(db, |tx| db.add_member(tx, g.id, u.id, Role::Admin, now()));
    assert_eq!(again, Err(DomainError::AlreadyMember));
    assert_eq!(db.membership(u.id, g.id).await.map(|m| m.map(|m| m.role)), Ok(Some(Role::Member)), "unchanged");
    let unknown = in_tx!(db, |tx| db.add_member(tx, g.id, UserId(5), Role::Member, now()));
    assert_eq!(unknown, Err(DomainError::UserNotFound));
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

contract!(a_member_is_locked_read_changed_counted_and_deleted_only_in_their_gym, |db| {
    let (g, owner) = gym(&db).await;
    let (other, _) = gym(&db).await;
    let u = member(&db, g.id, Role::Member).await;
    let locked = in_tx!(db, |tx| db.lock_member(tx, g.id, u.id)).expect("lock");
    assert_eq!(locked.map(|m| (m.user_id, m.role)), Some((u.id, Role::Member)));
    assert_eq!(in_tx!(db, |tx| db.lock_member(tx, other.id, u.id)), Ok(None), "not a member there");
    assert_eq!(in_tx!(db, |tx| db.owners(tx, g.id)), Ok(1));
    let m = in_tx!(db, |tx| db.set_role(tx, g.id, u.id, Role::Owner)).expect("set").expect("a member");
    assert_eq!(m.role, Role::Owner);
    assert_eq!(in_tx!(db, |tx| db.owners(tx, g.id)), Ok(2));
    assert_eq!(in_tx!(db, |tx| db.set_role(tx, other.id, owner.id, Role::Admin)), Ok(None));
    assert_eq!(in_tx!(db, |tx| db.delete_member(tx, other.id, u.id)), Ok(false), "not from another gym");
    assert_eq!(in_tx!(db, |tx| db.delete_member(tx, g.id, u.id)), Ok(true));
    assert_eq!(in_tx!(db, |tx| db.delete_member(tx, g.id, u.id)), Ok(false));
    assert_eq!(db.membership(u.id, g.id).await, Ok(None));
    in_tx!(db, |tx| db.lock_gym(tx, g.id)).expect("the gym's row locks");
});

contract!(a_rolled_back_transaction_leaves_nothing, |db| {
    let (g, _) = gym(&db).await;
    let u = user(&db, "auth0|undone").await;
    let mut tx = domain::tx::Database::begin(&*db).await.expect("begin");
    db.add_member(&mut tx, g.id, u.id, Role::Member, now()).await.expect("add");
    drop(tx);
    assert_eq!(db.membership(u.id, g.id).await, Ok(None), "dropping the transaction rolled it back");
});

contract!(racing_owners_leave_the_gym_exactly_one_owner, |db| {
    let (g, first) = gym(&db).await;
    let mut owners = vec![first.id];
    for _ in 0..9 {
        owners.push(member(&db, g.id, Role::Owner).await.id);
    }
    let svc = services(&db);
    // Half step down, half leave, all at once: only the gym's lock decides.
    let results = race(owners.len(), |i| {
        let (gyms, user, gym) = (svc.gyms.clone(), owners[i], g.id);
        async move {
            let me = actor(user, gym, Role::Owner);
            if i % 2 == 0 {
                gyms.set_role(&me, user, Role::Member).await.map(|_| ())
            } else {
                gyms.remove_member(&me, user).await
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

contract!(a_removal_frees_the_places_ahead_and_refuses_the_last_owner, |db| {
    let (g, owner) = gym(&db).await;
    let c = class(&db, g.id, 5).await;
    let svc = services(&db);
    let ahead = session(&db, g.id, &c, now() + Duration::days(1)).await;
    let u = member(&db, g.id, Role::Member).await;
    svc.schedule.register(&actor(u.id, g.id, Role::Member), ahead.id, Default::default()).await.expect("book");
    // A place in a session that started is history: booked before its start.
    let behind = session(&db, g.id, &c, now() + Duration::hours(2)).await;
    svc.schedule.register(&actor(u.id, g.id, Role::Member), behind.id, Default::default()).await.expect("book");
    let started = now() + Duration::hours(3);
    in_tx!(db, |tx| db.places_after(tx, g.id, u.id, started)).map(|p| assert_eq!(p, vec![ahead.id])).expect("read");
    let mut places = in_tx!(db, |tx| db.places_after(tx, g.id, u.id, now())).expect("read");
    places.sort();
    let mut both = vec![ahead.id, behind.id];
    both.sort();
    assert_eq!(places, both);
    svc.gyms.remove_member(&actor(owner.id, g.id, Role::Owner), u.id).await.expect("remove");
    for s in [ahead.id, behind.id] {
        let freed = db.session(g.id, s).await.expect("read").expect("session");
        assert_eq!((freed.registered_count, freed.status), (0, SessionStatus::Scheduled));
    }
    assert_eq!(db.membership(u.id, g.id).await, Ok(None));
    let rows = db.participants(g.id, ahead.id, Page::new(0, 10).expect("page")).await.expect("rows");
    assert_eq!(rows.iter().map(|p| p.status).collect::<Vec<_>>(), [ParticipationStatus::Cancelled]);
    let gone = svc.gyms.remove_member(&actor(owner.id, g.id, Role::Owner), u.id).await;
    assert_eq!(gone, Err(DomainError::UserNotFound), "not a member any more");
    let last = svc.gyms.remove_member(&actor(owner.id, g.id, Role::Owner), owner.id).await;
    assert_eq!(last, Err(DomainError::LastOwner));
    assert!(db.membership(owner.id, g.id).await.expect("read").is_some(), "the refused removal changed nothing");
    assert!(db.session(g.id, SessionId(i64::MAX)).await.expect("read").is_none());
});

contract!(a_booking_raced_against_the_members_removal_never_keeps_a_place, |db| {
    let (g, owner) = gym(&db).await;
    let c = class(&db, g.id, 100).await;
    let svc = services(&db);
    for _ in 0..10 {
        let s = session(&db, g.id, &c, now() + Duration::days(1)).await;
        let u = member(&db, g.id, Role::Member).await;
        let (me, admin) = (actor(u.id, g.id, Role::Member), actor(owner.id, g.id, Role::Owner));
        let (booked, removed) =
            tokio::join!(svc.schedule.register(&me, s.id, Default::default()), svc.gyms.remove_member(&admin, u.id));
        assert_eq!(removed, Ok(()));
        assert!(booked.is_ok() || booked == Err(DomainError::NotAMember), "{booked:?}");
        let after = db.session(g.id, s.id).await.expect("read").expect("session");
        assert_eq!(after.registered_count, 0, "a booking that landed first was given back");
    }
});

contract!(a_gyms_settings_are_stored_read_back_and_kept_in_range, |db| {
    use domain::credits::CreditRules;
    use domain::schedule::{BookingRules, BookingWindow, ScheduleRepository, WaitlistRules};
    let (g, _) = gym(&db).await;
    let (other, _) = gym(&db).await;
    assert_eq!((g.booking, g.waitlist), (BookingWindow::default(), WaitlistRules::default()), "a new gym's defaults");
    let defaults = BookingRules {
        credits: CreditRules::new(false, 0, g.timezone.as_str()).expect("valid"),
        ..BookingRules::default()
    };
    let theirs = BookingRules {
        credits: CreditRules::new(false, 0, other.timezone.as_str()).expect("valid"),
        ..defaults.clone()
    };
    assert_eq!(ScheduleRepository::booking_rules(&*db, g.id).await, Ok(Some(defaults)));
    let window = BookingWindow::new(Some(48), 30).expect("valid");
    let waitlist = WaitlistRules::new(15, 2).expect("valid");
    let changed = domain::gyms::Gym {
        name: "Renamed".into(),
        timezone: "Europe/Madrid".into(),
        address: Some("Calle 2".into()),
        booking: window,
        waitlist,
        booking_requires_pass: true,
        cancel_cutoff_minutes: 120,
        ..g.clone()
    };
    let locked = in_tx!(db, |tx| db.locked_gym(tx, g.id)).expect("lock");
    assert_eq!(locked, Some(g.clone()));
    assert_eq!(in_tx!(db, |tx| db.locked_gym(tx, GymId(i64::MAX))), Ok(None));
    assert_eq!(in_tx!(db, |tx| db.update_gym(tx, &changed)), Ok(changed.clone()));
    assert_eq!(GymRepository::by_id(&*db, g.id).await, Ok(Some(changed.clone())));
    let credits = CreditRules::new(true, 120, "Europe/Madrid").expect("valid");
    assert_eq!(
        ScheduleRepository::booking_rules(&*db, g.id).await,
        Ok(Some(BookingRules { window, waitlist, credits }))
    );
    assert_eq!(ScheduleRepository::booking_rules(&*db, other.id).await, Ok(Some(theirs)), "its own");
    assert_eq!(ScheduleRepository::booking_rules(&*db, GymId(i64::MAX)).await, Ok(None));
});
