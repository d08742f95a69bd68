use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;

const HOUR: Duration = Duration::from_secs(3600);

fn record(sub: &str, sid: Option<&str>, created: i64) -> SessionRecord {
    SessionRecord::new(
        format!("sealed-{sub}-{created}"),
        format!("iss|{sub}"),
        sid.map(|s| format!("iss|{s}")),
        SessionMeta::new(created),
    )
}

fn store() -> (MemorySessionStore, ManualClock) {
    let clock = ManualClock::starting_now();
    (
        MemorySessionStore::with_clock(Arc::new(clock.clone())),
        clock,
    )
}

#[tokio::test]
async fn save_load_replace_delete() {
    let (s, _) = store();
    let id = SessionId::random();
    assert_eq!(s.load(&id).await.unwrap(), None);
    s.save(&id, record("ada", Some("ses_1"), 1), HOUR)
        .await
        .unwrap();
    assert_eq!(
        s.load(&id).await.unwrap(),
        Some(record("ada", Some("ses_1"), 1))
    );
    // Replaced, indexes too: the old sid no longer finds it.
    s.save(&id, record("ada", Some("ses_2"), 1), HOUR)
        .await
        .unwrap();
    assert_eq!(s.delete_by_sid("iss|ses_1").await.unwrap(), 0);
    assert!(s.load(&id).await.unwrap().is_some());
    assert!(s.delete(&id).await.unwrap());
    assert!(!s.delete(&id).await.unwrap());
    assert_eq!(s.load(&id).await.unwrap(), None);
    assert!(s.is_empty());
}

#[tokio::test]
async fn records_expire_with_their_ttl() {
    let (s, clock) = store();
    let id = SessionId::random();
    s.save(&id, record("ada", None, 1), Duration::from_secs(60))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(59));
    assert!(s.load(&id).await.unwrap().is_some());
    clock.advance(Duration::from_secs(1));
    assert_eq!(s.load(&id).await.unwrap(), None, "expired");
    assert!(s.list_by_sub("iss|ada").await.unwrap().is_empty());
    assert!(
        !s.delete(&id).await.unwrap(),
        "an expired record is no session"
    );
    // A zero TTL stores nothing.
    s.save(&id, record("ada", None, 1), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(s.load(&id).await.unwrap(), None);
}

#[tokio::test]
async fn delete_by_sid_and_by_sub_end_only_those_sessions() {
    let (s, _) = store();
    let (a1, a2, b) = (
        SessionId::random(),
        SessionId::random(),
        SessionId::random(),
    );
    s.save(&a1, record("ada", Some("ses_1"), 1), HOUR)
        .await
        .unwrap();
    s.save(&a2, record("ada", Some("ses_2"), 2), HOUR)
        .await
        .unwrap();
    s.save(&b, record("bob", Some("ses_3"), 3), HOUR)
        .await
        .unwrap();
    assert_eq!(s.delete_by_sid("iss|ses_1").await.unwrap(), 1);
    assert_eq!(s.load(&a1).await.unwrap(), None);
    assert!(s.load(&a2).await.unwrap().is_some());
    assert_eq!(s.delete_by_sub("iss|ada").await.unwrap(), 1);
    assert_eq!(s.load(&a2).await.unwrap(), None);
    assert!(
        s.load(&b).await.unwrap().is_some(),
        "another user's session stays"
    );
    assert_eq!(s.delete_by_sub("iss|nobody").await.unwrap(), 0);
    // Another issuer's user of the same name is another key.
    assert_eq!(s.delete_by_sub("other|bob").await.unwrap(), 0);
    assert!(s.load(&b).await.unwrap().is_some());
}

#[tokio::test]
async fn list_by_sub_is_the_users_live_sessions_oldest_first() {
    let (s, clock) = store();
    let (old, new, short) = (
        SessionId::random(),
        SessionId::random(),
        SessionId::random(),
    );
    s.save(&new, record("ada", None, 20), HOUR).await.unwrap();
    s.save(&old, record("ada", None, 10), HOUR).await.unwrap();
    s.save(&short, record("ada", None, 30), Duration::from_secs(5))
        .await
        .unwrap();
    s.save(&SessionId::random(), record("bob", None, 5), HOUR)
        .await
        .unwrap();
    let listed = s.list_by_sub("iss|ada").await.unwrap();
    let created: Vec<i64> = listed.iter().map(|(_, m)| m.created).collect();
    assert_eq!(created, [10, 20, 30]);
    assert_eq!(listed[0].0, old);
    clock.advance(Duration::from_secs(5));
    assert_eq!(s.list_by_sub("iss|ada").await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_full_store_drops_the_record_closest_to_expiry_and_never_returns_deleted_ones() {
    let clock = ManualClock::starting_now();
    let s = MemorySessionStore::with_clock(Arc::new(clock.clone())).capacity(2);
    let (soon, later, third) = (
        SessionId::random(),
        SessionId::random(),
        SessionId::random(),
    );
    s.save(&soon, record("a", None, 1), Duration::from_secs(10))
        .await
        .unwrap();
    s.save(&later, record("b", None, 2), HOUR).await.unwrap();
    s.save(&third, record("c", None, 3), HOUR).await.unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s.load(&soon).await.unwrap(), None, "dropped to make room");
    assert!(s.load(&later).await.unwrap().is_some());
    assert!(s.load(&third).await.unwrap().is_some());
    assert!(s.list_by_sub("iss|a").await.unwrap().is_empty());
    // Expired records make room before live ones are dropped.
    clock.advance(HOUR);
    s.save(&soon, record("a", None, 4), HOUR).await.unwrap();
    assert_eq!(s.len(), 1);
}

#[test]
fn session_ids_are_random_and_checked_when_rebuilt() {
    let a = SessionId::random();
    assert_ne!(a, SessionId::random());
    assert_eq!(a.as_str().len(), 43);
    assert_eq!(SessionId::from_stored(a.as_str()), Some(a.clone()));
    for bad in [
        "",
        "short",
        &"a".repeat(44),
        &format!("{}=", &a.as_str()[..42]),
    ] {
        assert_eq!(SessionId::from_stored(bad), None, "{bad:?}");
    }
    let shown = format!("{a:?}");
    assert!(!shown.contains(a.as_str()), "{shown}");
}

#[test]
fn record_debug_hides_the_sealed_session() {
    let r = record("ada", None, 1);
    let shown = format!("{r:?}");
    assert!(!shown.contains("sealed-ada"), "{shown}");
    assert!(shown.contains("iss|ada"), "{shown}");
}
