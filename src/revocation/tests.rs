use super::memory::BUCKET;
use super::*;
use crate::ManualClock;

#[tokio::test]
async fn records_expire_and_keep_the_latest_time() {
    let clock = ManualClock::new(1000);
    let store = MemoryRevocationStore::new().clock(clock.clone());
    assert!(RevocationStore::is_empty(&store));
    let key = RevocationKey::session("https://iss", "sid-1");
    store
        .revoke(key.clone(), 1000, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(!RevocationStore::is_empty(&store));
    assert_eq!(store.revoked_at(&key), Some(1000));
    assert_eq!(
        store.revoked_at(&RevocationKey::session("https://other", "sid-1")),
        None
    );
    store.insert(&key, 900, Duration::from_secs(10));
    assert_eq!(
        store.revoked_at(&key),
        Some(1000),
        "an older revocation does not win"
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(store.revoked_at(&key), None, "expired");
}

/// A revocation recorded late (a webhook retried minutes after the event, with the event's
/// own time) is remembered for its whole TTL from when it is recorded, as Redis's `EX`
/// does; counting from `at` forgot a session ended long ago at once.
#[tokio::test]
async fn remembered_for_the_ttl_from_when_it_is_recorded() {
    let clock = ManualClock::new(1_000_000);
    let store = MemoryRevocationStore::new().clock(clock.clone());
    let key = RevocationKey::session("https://iss", "sid-1");
    store
        .revoke(key.clone(), 1_000, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(store.revoked_at(&key), Some(1_000));
    clock.advance(Duration::from_secs(3599));
    assert_eq!(store.revoked_at(&key), Some(1_000));
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        store.revoked_at(&key),
        None,
        "expired an hour after it was recorded"
    );
}

#[test]
fn a_record_extended_is_not_swept_with_its_old_bucket() {
    let clock = ManualClock::new(1_000);
    let store = MemoryRevocationStore::new().clock(clock.clone());
    let key = RevocationKey::subject("i", "u");
    store.insert(&key, 1_000, Duration::from_secs(60));
    store.insert(&key, 1_000, Duration::from_secs(3600));
    clock.advance(Duration::from_secs(600));
    store.sweep();
    assert_eq!(store.revoked_at(&key), Some(1_000));
    assert_eq!(store.len(), 1);
    clock.advance(Duration::from_secs(3000));
    assert_eq!(store.revoked_at(&key), None, "expired");
    // Swept once its expiry bucket (a minute wide) has passed.
    clock.advance(Duration::from_secs(BUCKET as u64));
    store.sweep();
    assert_eq!(store.len(), 0);
    assert!(RevocationStore::is_empty(&store));
}

#[test]
fn keys_do_not_collide_across_kinds() {
    assert_ne!(
        RevocationKey::session("i", "x"),
        RevocationKey::subject("i", "x")
    );
    assert_ne!(
        RevocationKey::local("x").as_str(),
        RevocationKey::session("local", "x").as_str()
    );
}
