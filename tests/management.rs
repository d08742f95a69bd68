//! The Management API client against a fake Scalekit Management API on 127.0.0.1, shaped like
//! Scalekit's public API reference.
#![cfg(feature = "management")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use futures_util::future::BoxFuture;
use futures_util::TryStreamExt;
use serde_json::{json, Value};
use tower_oidc_auth::management::{
    ClientCredentials, ManagementClient, ManagementError, MembershipRequest, Sleeper,
};

/// A status to answer with, and its `Retry-After`.
type Queued = (u16, Option<u64>);

#[derive(Default)]
struct Fake {
    grants: AtomicU64,
    /// Tokens the API refuses (as if revoked).
    refused: Mutex<Vec<String>>,
    /// Requests per path.
    hits: Mutex<HashMap<String, u64>>,
    /// Answers to give first for a path, before the normal one.
    queued: Mutex<HashMap<String, Vec<Queued>>>,
    /// `expires_in` to send instead of 3600.
    expires_in: Mutex<Option<Value>>,
}

impl Fake {
    fn hit(&self, path: &str) -> u64 {
        let mut hits = self.hits.lock().unwrap();
        let n = hits.entry(path.to_owned()).or_default();
        *n += 1;
        *n
    }

    fn hits(&self, path: &str) -> u64 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn queue(&self, path: &str, status: u16, retry_after: Option<u64>) {
        self.queued
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default()
            .push((status, retry_after));
    }

    /// Auth check and queued failures; `None` means answer normally.
    fn gate(&self, path: &str, headers: &HeaderMap) -> Option<Response> {
        self.hit(path);
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !token.starts_with("tok-") || self.refused.lock().unwrap().iter().any(|t| t == token) {
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"code": 16, "message": "unauthenticated"})),
                )
                    .into_response(),
            );
        }
        let next = {
            let mut q = self.queued.lock().unwrap();
            q.get_mut(path)
                .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
        };
        next.map(|(status, retry_after)| {
            let mut resp = (
                StatusCode::from_u16(status).unwrap(),
                Json(json!({"code": 8, "message": "slow down"})),
            )
                .into_response();
            if let Some(s) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", s.to_string().parse().unwrap());
            }
            resp
        })
    }
}

type S = State<Arc<Fake>>;

fn user_json(id: &str) -> Value {
    json!({
        "id": id, "email": "ada@example.com", "external_id": null,
        "memberships": [
            {"organization_id": "org_1", "name": "acme", "display_name": "Acme",
             "membership_status": "ACTIVE", "roles": [{"id": "role_1", "name": "admin", "display_name": "Admin"}],
             "permissions": ["workspace_data:write"], "join_time": "2025-01-01T00:00:00Z"},
            {"organization_id": "org_2", "name": "globex", "roles": [{"name": "member"}], "permissions": []}
        ],
        "user_profile": {"given_name": "Ada", "family_name": "Lovelace", "custom_attributes": {"team": "core"}},
        "metadata": {}, "create_time": "2025-01-01T00:00:00Z", "some_new_field": {"nested": true}
    })
}

async fn token(State(f): S, Form(p): Form<HashMap<String, String>>) -> Response {
    if p.get("grant_type").map(String::as_str) != Some("client_credentials")
        || p.get("client_id").map(String::as_str) != Some("skc_app")
        || p.get("client_secret").map(String::as_str) != Some("s3cret")
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let n = f.grants.fetch_add(1, Ordering::SeqCst) + 1;
    let expires_in = f.expires_in.lock().unwrap().clone().unwrap_or(json!(3600));
    Json(json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": expires_in}))
        .into_response()
}

async fn get_user(State(f): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = f.gate("/users/{id}", &headers) {
        return r;
    }
    match id.as_str() {
        "usr_missing" => (
            StatusCode::NOT_FOUND,
            Json(json!({"code": 5, "message": "user not found",
                        "details": [{"@type": "type.googleapis.com/scalekit.v1.errdetails.ErrorInfo",
                                     "error_code": "USER_NOT_FOUND"}]})),
        )
            .into_response(),
        "usr_huge" => {
            let mut u = user_json("usr_huge");
            u["metadata"] = json!({"blob": "x".repeat(200 * 1024)});
            Json(json!({"user": u})).into_response()
        }
        _ => Json(json!({"user": user_json(&id)})).into_response(),
    }
}

async fn list_orgs(
    State(f): S,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = f.gate("/organizations", &headers) {
        return r;
    }
    let all: Vec<Value> = (1..=5)
        .map(|i| json!({"id": format!("org_{i}"), "display_name": format!("Org {i}")}))
        .collect();
    let size: usize = q.get("page_size").and_then(|s| s.parse().ok()).unwrap_or(2);
    let start: usize = q
        .get("page_token")
        .and_then(|t| t.strip_prefix("p"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let end = (start + size).min(all.len());
    let next = if end < all.len() {
        format!("p{end}")
    } else {
        String::new()
    };
    Json(
        json!({"organizations": all[start..end], "next_page_token": next, "total_size": all.len()}),
    )
    .into_response()
}

async fn membership(
    State(f): S,
    headers: HeaderMap,
    Path((org, user)): Path<(String, String)>,
    body: String,
) -> Response {
    if let Some(r) = f.gate("/memberships", &headers) {
        return r;
    }
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut u = user_json(&user);
    u["memberships"] = json!([{"organization_id": org, "roles": req["roles"]}]);
    (StatusCode::CREATED, Json(json!({"user": u}))).into_response()
}

async fn revoke_all(State(f): S, headers: HeaderMap, Path(_user): Path<String>) -> Response {
    if let Some(r) = f.gate("/users/{id}/sessions/revoke", &headers) {
        return r;
    }
    Json(json!({"revoked_sessions": [{"session_id": "ses_1"}, {"session_id": "ses_2"}], "total_revoked": 2}))
        .into_response()
}

async fn start() -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let router = Router::new()
        .route("/oauth/token", post(token))
        .route("/api/v1/users/{id}", get(get_user))
        .route("/api/v1/organizations", get(list_orgs))
        .route(
            "/api/v1/memberships/organizations/{org}/users/{user}",
            post(membership).patch(membership),
        )
        .route("/api/v1/users/{id}/sessions/revoke", post(revoke_all))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, fake)
}

/// Records the delays asked for, without waiting.
#[derive(Clone, Default)]
struct RecordingSleeper(Arc<Mutex<Vec<Duration>>>);

impl Sleeper for RecordingSleeper {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        self.0.lock().unwrap().push(d);
        Box::pin(async {})
    }
}

fn client(url: &str, sleeper: RecordingSleeper) -> ManagementClient {
    ManagementClient::builder(url, ClientCredentials::scalekit(url, "skc_app", "s3cret"))
        .sleeper(sleeper)
        .max_response_bytes(64 * 1024)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_grant_for_a_hundred_calls() {
    let (url, fake) = start().await;
    let c = client(&url, RecordingSleeper::default());
    for _ in 0..50 {
        c.get_user("usr_1").await.unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.get_user("usr_1").await.map(|u| u.id)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "usr_1");
    }
    assert_eq!(fake.grants.load(Ordering::SeqCst), 1);
    assert_eq!(c.credentials().grants(), 1);
    assert_eq!(fake.hits("/users/{id}"), 100);
}

#[tokio::test]
async fn refetches_the_token_once_on_401() {
    let (url, fake) = start().await;
    let c = client(&url, RecordingSleeper::default());
    c.get_user("usr_1").await.unwrap();
    fake.refused.lock().unwrap().push("tok-1".into());
    let user = c.get_user("usr_1").await.unwrap();
    assert_eq!(user.id, "usr_1");
    assert_eq!(fake.grants.load(Ordering::SeqCst), 2);
    // Only once: if the new token is refused too, the 401 is the answer.
    fake.refused.lock().unwrap().push("tok-2".into());
    fake.refused.lock().unwrap().push("tok-3".into());
    let err = c.get_user("usr_1").await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(fake.grants.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn pagination_walks_three_pages() {
    let (url, fake) = start().await;
    let c = client(&url, RecordingSleeper::default());
    let orgs: Vec<_> = c.list_organizations(2).try_collect().await.unwrap();
    let ids: Vec<&str> = orgs.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["org_1", "org_2", "org_3", "org_4", "org_5"]);
    assert_eq!(fake.hits("/organizations"), 3);
}

#[tokio::test]
async fn errors_keep_status_code_and_error_code() {
    let (url, _fake) = start().await;
    let c = client(&url, RecordingSleeper::default());
    match c.get_user("usr_missing").await.unwrap_err() {
        ManagementError::Api {
            status,
            code,
            message,
            error_code,
        } => {
            assert_eq!(status, 404);
            assert_eq!(code, Some(5));
            assert_eq!(message, "user not found");
            assert_eq!(error_code.as_deref(), Some("USER_NOT_FOUND"));
        }
        other => panic!("{other:?}"),
    }
    // Bad credentials: a token error, not an API error.
    let bad = ManagementClient::new(&url, ClientCredentials::scalekit(&url, "skc_app", "wrong"));
    assert!(
        matches!(bad.get_user("usr_1").await.unwrap_err(), ManagementError::Token(e) if e == "invalid_client")
    );
}

#[tokio::test]
async fn get_retries_429_honouring_retry_after() {
    let (url, fake) = start().await;
    let sleeper = RecordingSleeper::default();
    let c = client(&url, sleeper.clone());
    fake.queue("/users/{id}", 429, Some(2));
    fake.queue("/users/{id}", 503, None);
    let user = c.get_user("usr_1").await.unwrap();
    assert_eq!(user.id, "usr_1");
    assert_eq!(fake.hits("/users/{id}"), 3);
    let delays = sleeper.0.lock().unwrap().clone();
    assert_eq!(delays[0], Duration::from_secs(2), "Retry-After honoured");
    assert!(
        delays[1] > Duration::ZERO && delays[1] < Duration::from_secs(2),
        "backoff: {delays:?}"
    );
    // Retries are bounded.
    for _ in 0..10 {
        fake.queue("/users/{id}", 503, Some(1));
    }
    let err = c.get_user("usr_1").await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(fake.hits("/users/{id}"), 3 + 4, "one try and three retries");
}

#[tokio::test]
async fn post_is_never_retried() {
    let (url, fake) = start().await;
    let sleeper = RecordingSleeper::default();
    let c = client(&url, sleeper.clone());
    fake.queue("/memberships", 503, Some(1));
    let err = c
        .create_membership("org_9", "usr_1", &MembershipRequest::with_roles(["admin"]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(fake.hits("/memberships"), 1);
    assert!(sleeper.0.lock().unwrap().is_empty());
    // And it works when the API does.
    let user = c
        .create_membership("org_9", "usr_1", &MembershipRequest::with_roles(["admin"]))
        .await
        .unwrap();
    assert_eq!(user.memberships[0].organization_id, "org_9");
    assert_eq!(user.memberships[0].role_names(), ["admin"]);
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let (url, _fake) = start().await;
    let c = client(&url, RecordingSleeper::default());
    assert!(matches!(
        c.get_user("usr_huge").await.unwrap_err(),
        ManagementError::TooLarge(65536)
    ));
}

#[tokio::test]
async fn typed_fields_and_unknown_fields_kept() {
    let (url, _fake) = start().await;
    let c = client(&url, RecordingSleeper::default());
    let user = c.get_user("usr_1").await.unwrap();
    assert_eq!(user.email.as_deref(), Some("ada@example.com"));
    assert_eq!(user.memberships.len(), 2);
    assert_eq!(user.memberships[0].permissions, ["workspace_data:write"]);
    assert_eq!(user.extra["some_new_field"], json!({"nested": true}));
    assert_eq!(
        user.memberships[0].extra["join_time"],
        "2025-01-01T00:00:00Z"
    );
    let profile = user.user_profile.unwrap();
    assert_eq!(profile.given_name.as_deref(), Some("Ada"));
    assert_eq!(profile.extra["custom_attributes"]["team"], "core");
    let (roles, perms) = c.user_roles("usr_1", "org_1").await.unwrap();
    assert_eq!(roles[0].name, "admin");
    assert_eq!(perms, ["workspace_data:write"]);
    assert_eq!(c.revoke_user_sessions("usr_1").await.unwrap(), 2);
}

#[tokio::test]
async fn current_user_and_organizations_from_claims() {
    let (url, _fake) = start().await;
    let c = client(&url, RecordingSleeper::default());
    // Claims as the layer would hand them to a handler.
    let provider = tower_oidc_auth::testing::TestProvider::start().await;
    let auth = provider
        .layer_builder("http://127.0.0.1:1/auth/callback")
        .build()
        .await
        .unwrap();
    let cookie = provider.session_cookie(&auth, &tower_oidc_auth::testing::TestUser::new("usr_77"));
    let app = Router::new()
        .route(
            "/me/organizations",
            get(move |claims: tower_oidc_auth::Claims| {
                let c = c.clone();
                async move {
                    let user = c.current_user(&claims).await.unwrap();
                    let orgs = c.user_organizations(&claims).await.unwrap();
                    Json(json!({"id": user.id, "orgs": orgs.iter().map(|m| m.organization_id.clone()).collect::<Vec<_>>()}))
                }
            }),
        )
        .layer(auth);
    let req = http::Request::get("/me/organizations")
        .header("cookie", cookie)
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(app, req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v, json!({"id": "usr_77", "orgs": ["org_1", "org_2"]}));
}

/// Issue 12, finding 10: `Instant::now() + Duration::from_secs(expires_in)` panicked on a token
/// endpoint answering a huge `expires_in`. The lifetime is clamped; the token still works, and
/// a clamped lifetime means the client fetches again after a day at the latest.
#[tokio::test]
async fn huge_expires_in_from_the_token_endpoint_does_not_overflow() {
    let (url, fake) = start().await;
    for huge in [
        json!(u64::MAX),
        json!(i64::MAX),
        json!("18446744073709551615"),
        json!(1e300),
        json!(-1),
    ] {
        *fake.expires_in.lock().unwrap() = Some(huge.clone());
        let c = client(&url, RecordingSleeper::default());
        assert_eq!(c.get_user("usr_1").await.unwrap().id, "usr_1", "{huge}");
    }
}
