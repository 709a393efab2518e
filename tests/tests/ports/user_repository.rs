//! [`UserRepository`]: provisioning once per subject, reads, profile changes.

use domain::users::ProfilePatch;
use domain::{DomainError, UserId};

use super::*;

contract!(provision_creates_a_user_once_and_by_id_reads_it, |db| {
    let first = user(&db, "auth0|ana").await;
    let again = user(&db, "auth0|ana").await;
    assert_eq!(again, first, "a second provision of the subject returns the same user");
    assert!((1..UserId::LIMIT).contains(&first.id.0), "ids are below 2^53: {}", first.id);
    assert_eq!(first.email.as_deref(), Some("auth0|ana@example.com"));
    let other = user(&db, "auth0|bea").await;
    assert_ne!(other.id, first.id);
    assert_eq!(UserRepository::by_id(&*db, first.id).await, Ok(Some(first)));
    assert_eq!(UserRepository::by_id(&*db, UserId(UserId::LIMIT - 1)).await, Ok(None));
});

contract!(concurrent_first_provisions_of_one_subject_yield_one_user, |db| {
    let ids = race(20, |_| {
        let db = db.clone();
        async move { user(&db, "auth0|racer").await.id }
    })
    .await;
    assert!(ids.iter().all(|id| *id == ids[0]), "one user for one subject: {ids:?}");
});

contract!(member_of_sees_a_user_only_from_gyms_they_belong_to, |db| {
    let (a, owner) = gym(&db).await;
    let (b, _) = gym(&db).await;
    assert_eq!(db.member_of(a.id, owner.id).await, Ok(Some(owner.clone())));
    assert_eq!(db.member_of(b.id, owner.id).await, Ok(None), "another gym's member is invisible");
    assert_eq!(db.member_of(GymId(i64::MAX), owner.id).await, Ok(None));
});

contract!(update_profile_changes_only_what_is_given, |db| {
    let u = user(&db, "auth0|carla").await;
    let later = now() + Duration::minutes(5);
    let patch = ProfilePatch { name: Some("Carla".into()), phone: None };
    let named = in_tx!(db, |tx| db.update_profile(tx, u.id, &patch, later)).expect("update");
    assert_eq!((named.name.as_deref(), named.phone.as_deref()), (Some("Carla"), None));
    assert_eq!(named.updated_at, later);
    let patch = ProfilePatch { name: None, phone: Some("+34 600 000 000".into()) };
    let phoned = in_tx!(db, |tx| db.update_profile(tx, u.id, &patch, later)).expect("update");
    assert_eq!((phoned.name.as_deref(), phoned.phone.as_deref()), (Some("Carla"), Some("+34 600 000 000")));
    assert_eq!(UserRepository::by_id(&*db, u.id).await, Ok(Some(phoned)), "what is returned is what is stored");
    let missing = in_tx!(db, |tx| db.update_profile(tx, UserId(7), &ProfilePatch::default(), later));
    assert_eq!(missing, Err(DomainError::UserNotFound));
});
