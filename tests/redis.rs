//! Refresh coordination across two instances sharing one Redis, Redis revocations and the Redis
//! session store (`REDIS_URL`, set by `.ci/run`).
//! Without `REDIS_URL` at build time these tests are reported as ignored.
#![cfg(feature = "redis")]

#[path = "it/helpers/mod.rs"]
mod helpers;

use std::time::Duration;

use axum::body::Body;
use helpers::*;
use http::{header, Request, StatusCode};
use tower::ServiceExt;
use tower_oidc_auth::testing::TestProvider;
use tower_oidc_auth::{AuthLayer, ManualClock, Provider, RedisRefreshCoordinator};

async fn instance(provider: &TestProvider, clock: &ManualClock, prefix: &str) -> axum::Router {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    let coordinator = RedisRefreshCoordinator::connect(&url)
        .await
        .expect("connect to Redis")
        .key_prefix(prefix);
    let auth = AuthLayer::builder()
        .provider(Provider::scalekit(provider.issuer()))
        .client_id(provider.client_id())
        .client_secret(provider.client_secret())
        .redirect_url(REDIRECT)
        .cookie_key(tower_oidc_auth::testing::cookie_key(5))
        .clock(clock.clone())
        .refresh_coordinator(coordinator)
        .build()
        .await
        .unwrap();
    app(&auth)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_available),
    ignore = "set REDIS_URL to a Redis server to run"
)]
async fn two_instances_twenty_requests_one_refresh() {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let prefix = format!("test-{}", provider.addr().port());
    let a = instance(&provider, &clock, &prefix).await;
    let b = instance(&provider, &clock, &prefix).await;

    // Log in through instance A.
    let s = Setup {
        auth: provider.layer_builder(REDIRECT).build().await.unwrap(),
        app: a.clone(),
        provider,
        clock: clock.clone(),
    };
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let old = body_string(send(&b, &mut jar.clone(), get_json("/jti")).await).await;
    assert!(!old.is_empty(), "instance B reads A's session");

    clock.advance(Duration::from_secs(301));
    let cookie = jar.header_for("/jti");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        let req = request("/jti", &cookie);
        tasks.push(tokio::spawn(async move { app.oneshot(req).await.unwrap() }));
    }
    let mut jtis = Vec::new();
    for t in tasks {
        let resp = t.await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        jtis.push(body_string(resp).await);
    }
    assert_eq!(
        s.provider.counts().refresh_grants,
        1,
        "exactly one grant across instances"
    );
    assert_eq!(s.provider.counts().refresh_failures, 0);
    assert!(jtis.iter().all(|j| j == &jtis[0] && j != &old));
}

#[tokio::test]
#[cfg_attr(
    not(redis_available),
    ignore = "set REDIS_URL to a Redis server to run"
)]
async fn invalid_grant_is_shared_too() {
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let prefix = format!("test-ig-{}", provider.addr().port());
    let a = instance(&provider, &clock, &prefix).await;
    let b = instance(&provider, &clock, &prefix).await;
    let s = Setup {
        auth: provider.layer_builder(REDIRECT).build().await.unwrap(),
        app: a.clone(),
        provider,
        clock: clock.clone(),
    };
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    s.provider
        .set_token_failure(Some(tower_oidc_auth::testing::Failure::OAuthError(
            "invalid_grant".into(),
        )));
    clock.advance(Duration::from_secs(301));
    let mut ja = jar.clone();
    assert_eq!(
        send(&a, &mut ja, get_json("/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mut jb = jar.clone();
    assert_eq!(
        send(&b, &mut jb, get_json("/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.provider.counts().refresh_failures,
        1,
        "B took A's answer from Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_available),
    ignore = "set REDIS_URL to a Redis server to run"
)]
async fn back_channel_logout_on_one_instance_ends_the_session_on_the_other() {
    use tower_oidc_auth::RedisRevocationStore;
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let prefix = format!("test-rev-{}", provider.addr().port());
    let store_a = RedisRevocationStore::connect_with_prefix(&url, &prefix)
        .await
        .unwrap();
    let store_b = RedisRevocationStore::connect_with_prefix(&url, &prefix)
        .await
        .unwrap();
    let (issuer, id, secret) = (
        provider.issuer().to_owned(),
        provider.client_id().to_owned(),
        provider.client_secret().to_owned(),
    );
    let layer = |store: RedisRevocationStore| {
        AuthLayer::builder()
            .provider(Provider::scalekit(issuer.clone()))
            .client_id(id.clone())
            .client_secret(secret.clone())
            .redirect_url(REDIRECT)
            .cookie_key(tower_oidc_auth::testing::cookie_key(6))
            .clock(clock.clone())
            .revocation_store(store)
            .build()
    };
    let a = app(&layer(store_a).await.unwrap());
    let mut changes_b = store_b.changes();
    let b = app(&layer(store_b).await.unwrap());
    let s = Setup {
        auth: provider.layer_builder(REDIRECT).build().await.unwrap(),
        app: a.clone(),
        provider,
        clock: clock.clone(),
    };
    let mut jar = Jar::default();
    login(&s, &mut jar, "/auth/login").await;
    let me: serde_json::Value =
        serde_json::from_str(&body_string(send(&b, &mut jar.clone(), get_json("/me")).await).await)
            .unwrap();
    let sid = me["sid"].as_str().unwrap().to_owned();

    // The provider tells instance A.
    let token = s.provider.logout_token("test-client", "usr_42", &sid);
    let body = format!(
        "logout_token={}",
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    );
    let req = Request::post("/auth/backchannel-logout")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(
        a.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&a, &mut jar.clone(), get_json("/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Instance B hears it through Redis (bounded wait on the change notification, no sleep).
    tokio::time::timeout(Duration::from_secs(5), changes_b.changed())
        .await
        .expect("B received the revocation")
        .unwrap();
    assert_eq!(
        send(&b, &mut jar.clone(), get_json("/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A third instance started later loads it at connect.
    let store_c = RedisRevocationStore::connect_with_prefix(&url, &prefix)
        .await
        .unwrap();
    let c = app(&layer(store_c).await.unwrap());
    assert_eq!(
        send(&c, &mut jar.clone(), get_json("/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// A refresh result is sealed for its own refresh key: a result copied in Redis to another
/// session's key (a shared Redis written by someone else, a mixed-up key) never signs that
/// session in as the first one's user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_available),
    ignore = "set REDIS_URL to a Redis server to run"
)]
async fn a_result_moved_to_another_refresh_key_is_refused() {
    use sha2::{Digest, Sha256};
    let clock = ManualClock::starting_now();
    let provider = TestProvider::builder()
        .user(user())
        .clock(clock.clone())
        .start()
        .await;
    let prefix = format!("test-aad-{}", provider.addr().port());
    let a = instance(&provider, &clock, &prefix).await;
    let s = Setup {
        auth: provider.layer_builder(REDIRECT).build().await.unwrap(),
        app: a.clone(),
        provider,
        clock: clock.clone(),
    };
    // Ada signs in, then Mallory.
    let mut ada = Jar::default();
    assert_eq!(
        login(&s, &mut ada, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let issued_before = s.provider.issued_secrets().len();
    s.provider.set_user(Some(
        tower_oidc_auth::testing::TestUser::new("usr_mallory").email("m@example.com"),
    ));
    let mut mallory = Jar::default();
    assert_eq!(
        login(&s, &mut mallory, "/auth/login").await.status(),
        StatusCode::FOUND
    );
    let mallory_secrets: Vec<String> = s.provider.issued_secrets()[issued_before..].to_vec();

    // Ada's session refreshes through Redis.
    clock.advance(Duration::from_secs(301));
    let resp = send(&a, &mut ada.clone(), get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let url = std::env::var("REDIS_URL").unwrap();
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:refresh:result:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ada_result: String = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    // Copy it under every key Mallory's refresh token could have.
    for secret in &mallory_secrets {
        let hex: String = Sha256::digest(secret.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let _: () = redis::cmd("SET")
            .arg(format!("{prefix}:refresh:result:{hex}"))
            .arg(&ada_result)
            .arg("PX")
            .arg(60_000)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // Mallory's session refreshes: it must not become Ada's.
    let resp = send(&a, &mut mallory, get_json("/me")).await;
    let status = resp.status();
    let body = body_string(resp).await;
    assert!(!body.contains("usr_42"), "{status}: {body}");
    assert!(!body.contains("ada@example.com"), "{status}: {body}");
}

fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test-{name}-{}-{nanos}", std::process::id())
}

/// `SET ... EX` overwrote a record: a later write with an older time or a shorter TTL (a
/// delayed webhook retry, a second instance's logout) moved the revocation time back and
/// shortened its life. Writes merge: the later time and the longer lifetime win.
#[tokio::test]
#[cfg_attr(
    not(redis_available),
    ignore = "set REDIS_URL to a Redis server to run"
)]
async fn a_write_never_shortens_a_record_or_moves_its_time_back() {
    use tower_oidc_auth::{RedisRevocationStore, RevocationKey, RevocationStore};
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    let prefix = unique_prefix("merge");
    let a = RedisRevocationStore::connect_with_prefix(&url, &prefix)
        .await
        .unwrap();
    let key = RevocationKey::session("https://iss", "ses_merge");
    a.revoke(key.clone(), 2_000, Duration::from_secs(3600))
        .await
        .unwrap();
    a.revoke(key.clone(), 1_000, Duration::from_secs(10))
        .await
        .unwrap();
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let redis_key = format!("{prefix}:revoked:{}", key.as_str());
    let at: i64 = redis::cmd("GET")
        .arg(&redis_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&redis_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(at, 2_000, "the revocation time never moves back");
    assert!(
        ttl_ms > 3_500_000,
        "the record was shortened to {ttl_ms} ms"
    );
    // An instance started later loads the merged record.
    let b = RedisRevocationStore::connect_with_prefix(&url, &prefix)
        .await
        .unwrap();
    assert_eq!(b.revoked_at(&key), Some(2_000));
}

/// A lost announcement (a failed `PUBLISH`, a half-open subscription) must not leave an
/// instance without the revocation: every instance reloads the whole set periodically.
#[tokio::test]
#[cfg_attr(
    not(redis_available),
    ignore = "set REDIS_URL to a Redis server to run"
)]
async fn a_revocation_never_announced_is_loaded_by_the_periodic_reload() {
    use tower_oidc_auth::{RedisRevocationStore, RevocationKey, RevocationStore};
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    let prefix = unique_prefix("reload");
    let b = RedisRevocationStore::connect_with_prefix(&url, &prefix)
        .await
        .unwrap()
        .reload_interval(Duration::from_millis(100));
    let mut changes = b.changes();
    let key = RevocationKey::session("https://iss", "ses_unannounced");
    // Stored as another instance would, but never published.
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:revoked:{}", key.as_str()))
        .arg(1_234)
        .arg("EX")
        .arg(3600)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Bounded wait on the change notification (no sleep); the next reload is at most 100 ms
    // plus the pending keepalive away.
    tokio::time::timeout(Duration::from_secs(40), async {
        while b.revoked_at(&key).is_none() {
            changes.changed().await.unwrap();
        }
    })
    .await
    .expect("the periodic reload picked up the record");
    assert_eq!(b.revoked_at(&key), Some(1_234));
}

/// `RedisSessionStore`: the contract of the memory store (`src/session_store/tests.rs`), against
/// Redis, plus what only a shared server can get wrong (key layout, TTLs, prefixes, values
/// written by someone else, concurrent writers).
mod session_store {
    use std::time::Duration;

    use redis::aio::MultiplexedConnection;
    use tower_oidc_auth::redis::RedisSessionStore;
    use tower_oidc_auth::session_store::{SessionId, SessionMeta, SessionRecord, SessionStore};

    use super::unique_prefix;

    const HOUR: Duration = Duration::from_secs(3600);

    fn record(sub: &str, sid: Option<&str>, created: i64) -> SessionRecord {
        SessionRecord::new(
            format!("sealed-{sub}-{created}"),
            format!("iss|{sub}"),
            sid.map(|s| format!("iss|{s}")),
            SessionMeta::new(created),
        )
    }

    /// A store on its own prefix, and a plain connection to look behind it.
    async fn store(name: &str) -> (RedisSessionStore, Redis) {
        let url = std::env::var("REDIS_URL").expect("REDIS_URL");
        let prefix = unique_prefix(&format!("sessions-{name}"));
        let store = RedisSessionStore::connect(&url)
            .await
            .expect("connect to Redis")
            .key_prefix(prefix.clone());
        let conn = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        (store, Redis { conn, prefix })
    }

    struct Redis {
        conn: MultiplexedConnection,
        prefix: String,
    }

    impl Redis {
        fn record_key(&self, id: &SessionId) -> String {
            format!("{}:s:{}", self.prefix, id.as_str())
        }
        fn sid_key(&self, sid: &str) -> String {
            format!("{}:sid:iss|{sid}", self.prefix)
        }
        fn sub_key(&self, sub: &str) -> String {
            format!("{}:sub:iss|{sub}", self.prefix)
        }
        async fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
            cmd.query_async(&mut self.conn.clone()).await.unwrap()
        }
        async fn exists(&self, key: &str) -> bool {
            self.query::<i64>(redis::cmd("EXISTS").arg(key)).await == 1
        }
        async fn is_member(&self, set: &str, id: &SessionId) -> bool {
            self.query::<i64>(redis::cmd("SISMEMBER").arg(set).arg(id.as_str()))
                .await
                == 1
        }
        async fn pttl(&self, key: &str) -> i64 {
            self.query(redis::cmd("PTTL").arg(key)).await
        }
        /// Asserts that `index` expires no sooner than `record`. The index is read first: both
        /// counts fall as time passes, so a later read of the record can only be lower.
        async fn assert_outlives(&self, index: &str, record: &str) {
            let index_ttl = self.pttl(index).await;
            let record_ttl = self.pttl(record).await;
            assert!(record_ttl > 0, "{record}: PTTL {record_ttl}");
            assert!(
                index_ttl >= record_ttl,
                "{index}: PTTL {index_ttl} < {record_ttl} of {record}"
            );
        }
    }

    #[tokio::test]
    #[cfg_attr(
        not(redis_available),
        ignore = "set REDIS_URL to a Redis server to run"
    )]
    async fn save_load_replace_delete() {
        let (s, r) = store("crud").await;
        let id = SessionId::random();
        assert_eq!(s.load(&id).await.unwrap(), None);
        s.save(&id, record("ada", Some("ses_1"), 1), HOUR)
            .await
            .unwrap();
        assert_eq!(
            s.load(&id).await.unwrap(),
            Some(record("ada", Some("ses_1"), 1))
        );
        // Stored as JSON under the documented keys.
        let raw: String = r.query(redis::cmd("GET").arg(r.record_key(&id))).await;
        let stored: SessionRecord = serde_json::from_str(&raw).unwrap();
        assert_eq!(stored, record("ada", Some("ses_1"), 1));
        assert!(r.is_member(&r.sid_key("ses_1"), &id).await);
        assert!(r.is_member(&r.sub_key("ada"), &id).await);

        // Replaced, indexes too: the old sid and sub no longer find it.
        s.save(&id, record("bob", Some("ses_2"), 1), HOUR)
            .await
            .unwrap();
        assert!(!r.exists(&r.sid_key("ses_1")).await, "old sid index left");
        assert!(!r.exists(&r.sub_key("ada")).await, "old sub index left");
        assert!(s.list_by_sub("iss|ada").await.unwrap().is_empty());
        assert_eq!(s.delete_by_sid("iss|ses_1").await.unwrap(), 0);
        assert_eq!(
            s.load(&id).await.unwrap(),
            Some(record("bob", Some("ses_2"), 1))
        );
        // A replacement without a sid leaves the sid index.
        s.save(&id, record("bob", None, 1), HOUR).await.unwrap();
        assert!(!r.exists(&r.sid_key("ses_2")).await);
        assert_eq!(s.list_by_sub("iss|bob").await.unwrap().len(), 1);

        assert!(s.delete(&id).await.unwrap());
        assert!(!s.delete(&id).await.unwrap());
        assert_eq!(s.load(&id).await.unwrap(), None);
        assert!(!r.exists(&r.record_key(&id)).await);
        assert!(!r.exists(&r.sub_key("bob")).await, "index entry left");
    }

    /// `replace` writes only over the record as it was loaded: not over a changed one, not
    /// over a deleted one (a logout), and it moves the indexes like `save`. `list_by_sid` lists
    /// a provider session's records.
    #[tokio::test]
    #[cfg_attr(
        not(redis_available),
        ignore = "set REDIS_URL to a Redis server to run"
    )]
    async fn replace_is_a_compare_and_set_and_sid_lists() {
        use std::sync::Arc;
        let (s, r) = store("replace").await;
        let s = Arc::new(s);
        let id = SessionId::random();
        let first = record("ada", Some("ses_1"), 1);
        s.save(&id, first.clone(), HOUR).await.unwrap();
        let listed = s.list_by_sid("iss|ses_1").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, id);
        // Over the record as loaded: written, indexes moved.
        let second = record("ada", Some("ses_2"), 2);
        assert!(s
            .clone()
            .replace(id.clone(), first.clone(), second.clone(), HOUR)
            .await
            .unwrap());
        assert_eq!(s.load(&id).await.unwrap(), Some(second.clone()));
        assert!(!r.exists(&r.sid_key("ses_1")).await);
        assert!(s.list_by_sid("iss|ses_1").await.unwrap().is_empty());
        // Over a record that changed since: refused, the newer one stays.
        assert!(!s
            .clone()
            .replace(id.clone(), first.clone(), record("ada", None, 3), HOUR)
            .await
            .unwrap());
        assert_eq!(s.load(&id).await.unwrap(), Some(second.clone()));
        // Over a deleted record: refused, nothing comes back.
        assert!(s.delete(&id).await.unwrap());
        assert!(!s
            .clone()
            .replace(id.clone(), second, record("ada", Some("ses_2"), 4), HOUR)
            .await
            .unwrap());
        assert_eq!(s.load(&id).await.unwrap(), None);
        assert!(!r.exists(&r.record_key(&id)).await);
    }

    #[tokio::test]
    #[cfg_attr(
        not(redis_available),
        ignore = "set REDIS_URL to a Redis server to run"
    )]
    async fn delete_by_sid_and_by_sub_end_only_those_sessions() {
        let (s, r) = store("by-index").await;
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
        assert!(!r.exists(&r.sid_key("ses_1")).await, "the sid set is gone");
        assert!(
            !r.is_member(&r.sub_key("ada"), &a1).await,
            "the ended session left its other index"
        );
        assert!(s.load(&a2).await.unwrap().is_some());
        assert_eq!(s.delete_by_sub("iss|ada").await.unwrap(), 1);
        assert_eq!(s.load(&a2).await.unwrap(), None);
        assert!(!r.exists(&r.sub_key("ada")).await, "the sub set is gone");
        assert!(!r.exists(&r.sid_key("ses_2")).await);
        assert!(
            s.load(&b).await.unwrap().is_some(),
            "another user's session stays"
        );
        assert_eq!(s.delete_by_sub("iss|nobody").await.unwrap(), 0);
        assert_eq!(s.delete_by_sid("iss|nothing").await.unwrap(), 0);
        // Another issuer's user of the same name is another key.
        assert_eq!(s.delete_by_sub("other|bob").await.unwrap(), 0);
        assert_eq!(s.delete_by_sid("other|ses_3").await.unwrap(), 0);
        assert!(s.load(&b).await.unwrap().is_some());
        // Deleting twice counts once.
        assert_eq!(s.delete_by_sid("iss|ses_3").await.unwrap(), 1);
        assert_eq!(s.delete_by_sid("iss|ses_3").await.unwrap(), 0);
    }

    /// An index entry that does not match its record (written by an older version, by hand, or
    /// left by a record re-created after it expired) never ends a session of another user or
    /// provider session.
    #[tokio::test]
    #[cfg_attr(
        not(redis_available),
        ignore = "set REDIS_URL to a Redis server to run"
    )]
    async fn a_stale_index_entry_never_ends_a_session_it_does_not_index() {
        let (s, r) = store("stale").await;
        let id = SessionId::random();
        s.save(&id, record("ada", Some("ses_1"), 1), HOUR)
            .await
            .unwrap();
        let _: i64 = r
            .query(redis::cmd("SADD").arg(r.sid_key("ses_9")).arg(id.as_str()))
            .await;
        let _: i64 = r
            .query(redis::cmd("SADD").arg(r.sub_key("eve")).arg(id.as_str()))
            .await;
        assert_eq!(s.delete_by_sid("iss|ses_9").await.unwrap(), 0);
        assert!(s.list_by_sub("iss|eve").await.unwrap().is_empty());
        assert_eq!(s.delete_by_sub("iss|eve").await.unwrap(), 0);
        assert_eq!(
            s.load(&id).await.unwrap(),
            Some(record("ada", Some("ses_1"), 1))
        );
        // The stale entries were pruned; the true ones stay.
        assert!(!r.exists(&r.sid_key("ses_9")).await);
        assert!(!r.exists(&r.sub_key("eve")).await);
        assert!(r.is_member(&r.sid_key("ses_1"), &id).await);
        assert!(r.is_member(&r.sub_key("ada"), &id).await);
    }

    #[tokio::test]
    #[cfg_attr(
        not(redis_available),
        ignore = "set REDIS_URL to a Redis server to run"
    )]
    async fn list_by_sub_is_the_users_live_sessions_oldest_first() {
        let (s, r) = store("list").await;
        let (old, new, gone) = (
            SessionId::random(),
            SessionId::random(),
            SessionId::random(),
        );
        let (tie_a, tie_b) = (SessionId::random(), SessionId::random());
        s.save(&new, record("ada", None, 20), HOUR).await.unwrap();
        s.save(&tie_a, record("ada", None, 15), HOUR).await.unwrap();
        s.save(&old, record("ada", None, 10), HOUR).await.unwrap();
        s.save(&tie_b, record("ada", None, 15), HOUR).await.unwrap();
        s.save(&gone, record("ada", None, 30), HOUR).await.unwrap();
        s.save(&SessionId::random(), record("bob", None, 5), HOUR)
            .await
            .unwrap();
        let listed = s.list_by_sub("iss|ada").await.unwrap();
        let created: Vec<i64> = listed.iter().map(|(_, m)| m.created).collect();
        assert_eq!(created, [10, 15, 15, 20, 30]);
        assert_eq!(listed[0].0, old);
        let ties = [tie_a.clone(), tie_b.clone()];
        let (first, second) = if tie_a < tie_b {
            (&tie_a, &tie_b)
        } else {
            (&tie_b, &tie_a)
        };
        assert_eq!([&listed[1].0, &listed[2].0], [first, second], "{ties:?}");
        assert_eq!(listed[4].1, SessionMeta::new(30));

        // A record that expired (gone from Redis) is not listed, and its id is pruned.
        let _: i64 = r.query(redis::cmd("DEL").arg(r.record_key(&gone))).await;
        assert!(r.is_member(&r.sub_key("ada"), &gone).await);
        let listed = s.list_by_sub("iss|ada").await.unwrap();
        assert_eq!(listed.len(), 4);
        assert!(listed.iter().all(|(id, _)| id != &gone));
        assert!(!r.is_member(&r.sub_key("ada"), &gone).await, "not pruned");
        assert!(s.list_by_sub("iss|nobody").await.unwrap().is_empty());
    }

    /// The TTL is Redis's: set on the record, and on its index sets at least as long (checked
    /// with PTTL, no waiting).
    #[tokio::test]
    #[cfg_attr(
        not(redis_available),
        ignore = "set REDIS_URL to a Redis server to run"
    )]
    async fn the_ttl_is_set_on_the_record_and_indexes_never_expire_first() {
        let (s, r) = store("ttl").await;
        let (short, long, later) = (
            SessionId::random(),
            SessionId::random(),
            SessionId::random(),
        );
        s.save(
            &short,
            record("ada", Some("ses_1"), 1),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let ttl = r.pttl(&r.record_key(&short)).await;
        assert!((55_000..=60_000).contains(&ttl), "record PTTL {ttl}");
        r.assert_outlives(&r.sub_key("ada"), &r.record_key(&short))
            .await;
        r.assert_outlives(&r.sid_key("ses_1"), &r.record_key(&short))
            .await;
        let sub_ttl = r.pttl(&r.sub_key("ada")).await;
        assert!(
            sub_ttl <= 60_000,
            "sub index {sub_ttl}: longer than any record"
        );

        // A longer-lived record extends the index; a shorter one never shortens it.
        s.save(&long, record("ada", Some("ses_1"), 2), HOUR)
            .await
            .unwrap();
        s.save(
            &later,
            record("ada", Some("ses_1"), 3),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let long_ttl = r.pttl(&r.record_key(&long)).await;
        assert!(long_ttl > 3_500_000, "record PTTL {long_ttl}");
        for key in [r.sub_key("ada"), r.sid_key("ses_1")] {
            r.assert_outlives(&key, &r.record_key(&long)).await;
        }
        let later_ttl = r.pttl(&r.record_key(&later)).await;
        assert!((5_000..=10_000).contains(&later_ttl), "PTTL {later_ttl}");

        // Saving again sets the new TTL (a refresh may shorten what is left).
        s.save(
            &long,
            record("ada", Some("ses_1"), 2),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        let ttl = r.pttl(&r.record_key(&long)).await;
        assert!((25_000..=30_000).contains(&ttl), "record PTTL {ttl}");

        // A zero TTL stores nothing, and ends the record it replaces.
        s.save(&short, record("ada", Some("ses_1"), 1), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(s.load(&short).await.unwrap(), None);
        assert!(!r.is_member(&r.sub_key("ada"), &short).await);
        let fresh = SessionId::random();
        s.save(&fresh, record("ada", None, 4), Duration::ZERO)
            .await
            .unwrap();
        assert!(!r.exists(&r.record_key(&fresh)).await);
        assert_eq!(s.list_by_sub("iss|ada").await.unwrap().len(), 2);
    }

    #[tokio::test]
    #[cfg_attr(
        not(redis_available),
        ignore = "set REDIS_URL to a Redis server to run"
    )]
    async fn two_apps_with_different_prefixes_do_not_see_each_other() {
        let (a, ra) = store("app-a").await;
        let (b, rb) = store("app-b").await;
        let id = SessionId::random();
        a.save(&id, record("ada", Some("ses_1"), 1), HOUR)
            .await
            .unwrap();
        assert_eq!(b.load(&id).await.unwrap(), None);
        assert!(b.list_by_sub("iss|ada").await.unwrap().is_empty());
        assert_eq!(b.delete_by_sid("iss|ses_1").await.unwrap(), 0);
        assert_eq!(b.delete_by_sub("iss|ada").await.unwrap(), 0);
        assert!(!b.delete(&id).await.unwrap());
        b.save(&id, record("bob", None, 2), HOUR).await.unwrap();
        assert_eq!(
            a.load(&id).await.unwrap(),
            Some(record("ada", Some("ses_1"), 1)),
            "app B's write reached app A"
        );
        assert_eq!(b.load(&id).await.unwrap(), Some(record("bob", None, 2)));
        assert!(rb.exists(&rb.record_key(&id)).await);
        assert!(!rb.exists(&rb.sub_key("ada")).await);
        assert!(b.delete(&id).await.unwrap());
        assert!(a.load(&id).await.unwrap().is_some());
        assert!(ra.exists(&ra.sub_key("ada")).await);
        // Every key app A wrote is under its prefix.
        let keys: Vec<String> = ra
            .query(redis::cmd("KEYS").arg(format!("{}:*", ra.prefix)))
            .await;
        let mut keys = keys;
        keys.sort();
        let mut expected = vec![ra.record_key(&id), ra.sid_key("ses_1"), ra.sub_key("ada")];
        expected.sort();
        assert_eq!(keys, expected);
    }

    /// A value under a record key that is not a record (another program, a corrupted write)
    /// reads as absent, never panics, and can be overwritten by a save.
    #[tokio::test]
    #[cfg_attr(
        not(redis_available),
        ignore = "set REDIS_URL to a Redis server to run"
    )]
    async fn a_malformed_value_reads_as_absent() {
        let (s, r) = store("malformed").await;
        let values: [&[u8]; 4] = [
            b"not json {sealed",
            b"{\"sealed\":1}",
            b"\xff\xfe\x00 binary",
            b"",
        ];
        for value in values {
            let id = SessionId::random();
            let _: () = r
                .query(redis::cmd("SET").arg(r.record_key(&id)).arg(value))
                .await;
            let _: i64 = r
                .query(redis::cmd("SADD").arg(r.sub_key("ada")).arg(id.as_str()))
                .await;
            let _: i64 = r
                .query(redis::cmd("SADD").arg(r.sid_key("ses_1")).arg(id.as_str()))
                .await;
            assert_eq!(s.load(&id).await.unwrap(), None, "{value:?}");
            assert!(s.list_by_sub("iss|ada").await.unwrap().is_empty());
            assert!(!r.is_member(&r.sub_key("ada"), &id).await, "pruned");
            assert_eq!(s.delete_by_sid("iss|ses_1").await.unwrap(), 0);
            assert!(!s.delete(&id).await.unwrap(), "{value:?}");
            // A save replaces it.
            s.save(&id, record("ada", Some("ses_1"), 1), HOUR)
                .await
                .unwrap();
            assert_eq!(
                s.load(&id).await.unwrap(),
                Some(record("ada", Some("ses_1"), 1))
            );
            assert!(s.delete(&id).await.unwrap());
        }
        // Members of an index that are no session id are dropped.
        let _: i64 = r
            .query(redis::cmd("SADD").arg(r.sub_key("ada")).arg("not-an-id"))
            .await;
        assert!(s.list_by_sub("iss|ada").await.unwrap().is_empty());
        assert!(!r.exists(&r.sub_key("ada")).await);
    }

    /// Writers racing on one session (two instances refreshing it) leave it in exactly the
    /// indexes of the record that won.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(redis_available),
        ignore = "set REDIS_URL to a Redis server to run"
    )]
    async fn racing_saves_leave_the_session_only_in_the_winners_indexes() {
        let (s, r) = store("race").await;
        let id = SessionId::random();
        let sids: Vec<String> = (0..16).map(|i| format!("ses_{i}")).collect();
        let mut tasks = Vec::new();
        for (i, sid) in sids.iter().enumerate() {
            let (s, id, sid) = (s.clone(), id.clone(), sid.clone());
            let user = if i % 2 == 0 { "ada" } else { "bob" };
            tasks.push(tokio::spawn(async move {
                s.save(&id, record(user, Some(&sid), 1), HOUR).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let winner = s.load(&id).await.unwrap().unwrap();
        for sid in &sids {
            let holds = winner.sid.as_deref() == Some(&format!("iss|{sid}"));
            assert_eq!(r.is_member(&r.sid_key(sid), &id).await, holds, "{sid}");
        }
        for user in ["ada", "bob"] {
            let holds = winner.sub == format!("iss|{user}");
            assert_eq!(r.is_member(&r.sub_key(user), &id).await, holds, "{user}");
        }
    }
}

/// Store mode on Redis across two instances: a session made on A is served by B (one load,
/// then from B's memory), a refresh on one is seen by the other without a second grant, and a
/// logout on A ends it on B (through the revocation mirror) and on an instance started later.
mod store_mode {
    use super::*;
    use tower_oidc_auth::redis::RedisSessionStore;
    use tower_oidc_auth::RedisRevocationStore;

    async fn layer(provider: &TestProvider, clock: &ManualClock, prefix: &str) -> AuthLayer {
        let url = std::env::var("REDIS_URL").expect("REDIS_URL");
        let client = redis::Client::open(url.as_str()).unwrap();
        let manager = client.get_connection_manager().await.unwrap();
        AuthLayer::builder()
            .provider(Provider::scalekit(provider.issuer()))
            .client_id(provider.client_id())
            .client_secret(provider.client_secret())
            .redirect_url(REDIRECT)
            .cookie_key(tower_oidc_auth::testing::cookie_key(7))
            .clock(clock.clone())
            .session_store(RedisSessionStore::new(manager.clone()).key_prefix(prefix))
            .refresh_coordinator(RedisRefreshCoordinator::new(manager).key_prefix(prefix))
            .revocation_store(
                RedisRevocationStore::connect_with_prefix(&url, prefix)
                    .await
                    .unwrap(),
            )
            .build()
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(redis_available),
        ignore = "set REDIS_URL to a Redis server to run"
    )]
    async fn two_instances_share_sessions_refreshes_and_logouts() {
        let clock = ManualClock::starting_now();
        let provider = TestProvider::builder()
            .user(user())
            .clock(clock.clone())
            .start()
            .await;
        let prefix = super::unique_prefix("store-mode");
        let a = layer(&provider, &clock, &prefix).await;
        let b = layer(&provider, &clock, &prefix).await;
        let (app_a, app_b) = (app(&a), app(&b));
        let s = Setup {
            auth: a.clone(),
            app: app_a.clone(),
            provider,
            clock: clock.clone(),
        };
        let mut jar = Jar::default();
        login(&s, &mut jar, "/auth/login").await;
        let cookie = jar.header_for("/me");
        assert!(cookie.len() < 200, "{} bytes", cookie.len());
        assert_eq!(status(&app_b, &cookie).await, StatusCode::OK);
        assert_eq!(status(&app_b, &cookie).await, StatusCode::OK);

        // The token expires: B refreshes, A finds the new tokens in Redis.
        let refreshes = s.provider.counts().refresh_grants;
        clock.advance(Duration::from_secs(3600));
        assert_eq!(status(&app_b, &cookie).await, StatusCode::OK);
        assert_eq!(status(&app_a, &cookie).await, StatusCode::OK);
        assert_eq!(s.provider.counts().refresh_grants - refreshes, 1);

        // Logout on A.
        let resp = send(&app_a, &mut jar.clone(), logout_post()).await;
        assert!(resp.status().is_redirection());
        assert_eq!(status(&app_a, &cookie).await, StatusCode::UNAUTHORIZED);
        // B may still have it in memory until the revocation arrives; it never outlives it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while status(&app_b, &cookie).await != StatusCode::UNAUTHORIZED {
            assert!(tokio::time::Instant::now() < deadline, "B still serves it");
            tokio::task::yield_now().await;
        }
        let c = layer(&s.provider, &clock, &prefix).await;
        assert_eq!(status(&app(&c), &cookie).await, StatusCode::UNAUTHORIZED);
    }
}
