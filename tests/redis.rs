//! Refresh coordination across two instances sharing one Redis (`REDIS_URL`, set by `.ci/run`).
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
