//! The Management API client against a fake Scalekit Management API on 127.0.0.1.
//!
//! Every Scalekit shape here comes from Scalekit's OpenAPI specification, copied verbatim to
//! `tests/fixtures/scalekit-openapi.yaml` (origin in `tests/fixtures/README.md`), and is named
//! beside the fixture by schema or `operationId`. The contract tests at the end read that file at
//! test time: request bodies are validated against its request schemas, and the example of every
//! response of every endpoint the client calls is parsed through the client.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use tower_oidc_auth::management::{
    ClientCredentials, ManagementClient, ManagementError, MembershipRequest, Sleeper, API_VERSION,
};

/// A status to answer with, and its `Retry-After`.
type Queued = (u16, Option<u64>);

/// One request as the fake API received it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: Option<String>,
    api_version: Option<String>,
    body: String,
}

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
    /// Every request received, token endpoint included, in order.
    requests: Mutex<Vec<Recorded>>,
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

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
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
            // The error envelope of the spec's "Error handling" section (info.description).
            return Some(api_error(StatusCode::UNAUTHORIZED, 16, "unauthenticated"));
        }
        let next = {
            let mut q = self.queued.lock().unwrap();
            q.get_mut(path)
                .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
        };
        next.map(|(status, retry_after)| {
            let mut resp = api_error(StatusCode::from_u16(status).unwrap(), 8, "slow down");
            if let Some(s) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", s.to_string().parse().unwrap());
            }
            resp
        })
    }
}

type S = State<Arc<Fake>>;

/// Scalekit's error body: `{code, message, details}`, from the "Error handling" section of the
/// spec's `info.description` (`code` is the gRPC status code: 3 invalid argument, 5 not found,
/// 8 resource exhausted, 16 unauthenticated).
fn api_error(status: StatusCode, code: i64, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

/// Records every request (method, path, query, `x-api-version`, body) before it is routed.
async fn record(State(f): S, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    f.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        api_version: parts
            .headers
            .get("x-api-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `page_size` bounds as the spec states them in the parameter's description (see
/// `page_size_bounds_are_the_specs`): `None` when the spec gives none.
fn page_size_bounds(operation_id: &str) -> Option<(u64, u64)> {
    match operation_id {
        "UserService_ListUsers" | "OrganizationService_ListOrganization" => Some((10, 100)),
        "UserService_ListOrganizationUsers" => Some((1, 100)),
        _ => None,
    }
}

/// The fake enforces the spec's `page_size` bounds, answering 400 like the real API would.
fn check_page_size(operation_id: &str, q: &HashMap<String, String>) -> Option<Response> {
    let (min, max) = page_size_bounds(operation_id)?;
    let size = q.get("page_size")?;
    match size.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => None,
        _ => Some(api_error(
            StatusCode::BAD_REQUEST,
            3,
            &format!("page_size must be between {min} and {max}"),
        )),
    }
}

/// A user as `GET /users/{id}` returns it: fields of `usersUser`, `commonsOrganizationMembership`,
/// `commonsRole` and `commonsUserProfile` (checked by `the_fakes_own_fixtures_follow_the_spec`),
/// plus `some_new_field`, deliberately not in the spec: unknown fields must be kept.
fn user_json(id: &str) -> Value {
    json!({
        "id": id, "email": "ada@example.com",
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

/// `UserService_GetUser`: `usersGetUserResponse`.
async fn get_user(State(f): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = f.gate("/users/{id}", &headers) {
        return r;
    }
    match id.as_str() {
        "usr_missing" => (
            StatusCode::NOT_FOUND,
            // The envelope of the spec's "Error handling" section; the `error_code` value is
            // ours (the spec's only example is `UNAUTHENTICATED`).
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

/// `UserService_ListUsers`: every user of the environment (`usersListUsersResponse`). A request
/// that lands here by accident leaks them all.
async fn list_users(
    State(f): S,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = f.gate("/users", &headers) {
        return r;
    }
    if let Some(r) = check_page_size("UserService_ListUsers", &q) {
        return r;
    }
    Json(json!({"users": [user_json("usr_1"), user_json("usr_2")], "next_page_token": "", "total_size": 2}))
        .into_response()
}

/// `OrganizationService_ListOrganization`: `organizationsListOrganizationsResponse`, 25
/// organizations.
async fn list_orgs(
    State(f): S,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = f.gate("/organizations", &headers) {
        return r;
    }
    if let Some(r) = check_page_size("OrganizationService_ListOrganization", &q) {
        return r;
    }
    // `organizationsOrganization` requires `create_time` (the value is the spec's example).
    let all: Vec<Value> = (1..=25)
        .map(|i| {
            json!({"id": format!("org_{i}"), "display_name": format!("Org {i}"),
                        "create_time": "2025-02-15T06:23:44.560000+00:00"})
        })
        .collect();
    let size: usize = q
        .get("page_size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
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

/// `UserService_CreateMembership` / `UserService_UpdateMembership`: the body is checked against
/// the spec's request schema, as the real API checks it; `usersCreateMembershipResponse`.
async fn membership(
    State(f): S,
    headers: HeaderMap,
    method: axum::http::Method,
    Path((org, user)): Path<(String, String)>,
    body: String,
) -> Response {
    if let Some(r) = f.gate("/memberships", &headers) {
        return r;
    }
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let schema = if method == axum::http::Method::POST {
        "v1usersCreateMembership"
    } else {
        "v1usersUpdateMembership"
    };
    if let Err(errors) = spec::validate_request(schema, &req) {
        return api_error(StatusCode::BAD_REQUEST, 3, &errors);
    }
    let mut u = user_json(&user);
    u["memberships"] = json!([{"organization_id": org, "roles": req["roles"]}]);
    let status = if method == axum::http::Method::POST {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(json!({"user": u}))).into_response()
}

/// `SessionService_RevokeAllUserSessions`: `sessionsRevokeAllUserSessionsResponse`.
async fn revoke_all(State(f): S, headers: HeaderMap, Path(_user): Path<String>) -> Response {
    if let Some(r) = f.gate("/users/{id}/sessions/revoke", &headers) {
        return r;
    }
    Json(revoke_all_json()).into_response()
}

fn revoke_all_json() -> Value {
    json!({"revoked_sessions": [{"session_id": "ses_1"}, {"session_id": "ses_2"}], "total_revoked": 2})
}

/// Anything else: recorded (by `record`), then 404 with Scalekit's error body.
async fn not_found() -> Response {
    api_error(StatusCode::NOT_FOUND, 5, "not found")
}

async fn serve(router: Router<Arc<Fake>>) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let router = router
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(fake.clone(), record))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, fake)
}

async fn start() -> (String, Arc<Fake>) {
    serve(
        Router::new()
            .route("/oauth/token", post(token))
            .route("/api/v1/users", get(list_users))
            .route("/api/v1/users/{id}", get(get_user))
            .route("/api/v1/organizations", get(list_orgs))
            .route(
                "/api/v1/memberships/organizations/{org}/users/{user}",
                post(membership).patch(membership),
            )
            .route("/api/v1/users/{id}/sessions/revoke", post(revoke_all)),
    )
    .await
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
    let orgs: Vec<_> = c.list_organizations(10).try_collect().await.unwrap();
    let ids: Vec<String> = orgs.iter().map(|o| o.id.clone()).collect();
    let expected: Vec<String> = (1..=25).map(|i| format!("org_{i}")).collect();
    assert_eq!(ids, expected);
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
        .create_membership(
            "org_9",
            "usr_1",
            &MembershipRequest::with_roles(["admin"]),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(fake.hits("/memberships"), 1);
    assert!(sleeper.0.lock().unwrap().is_empty());
    // And it works when the API does.
    let user = c
        .create_membership(
            "org_9",
            "usr_1",
            &MembershipRequest::with_roles(["admin"]),
            false,
        )
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

/// Serves `/me/organizations` through the layer for a session of `sub`, calling
/// `current_user` and `user_organizations`; answers their results as JSON (or the errors).
/// The client is of the fake API at `url`, whose users are the provider's: the provider's
/// issuer is named as the environment's other name.
async fn me_organizations(url: &str, sub: &str) -> Value {
    let provider = tower_oidc_auth::testing::TestProvider::start().await;
    let c = ManagementClient::builder(url, ClientCredentials::scalekit(url, "skc_app", "s3cret"))
        .sleeper(RecordingSleeper::default())
        .max_response_bytes(64 * 1024)
        .same_environment_issuer(provider.issuer())
        .build();
    let auth = provider
        .layer_builder("http://127.0.0.1:1/auth/callback")
        .build()
        .await
        .unwrap();
    let cookie = provider.session_cookie(&auth, &tower_oidc_auth::testing::TestUser::new(sub));
    let app = Router::new()
        .route(
            "/me/organizations",
            get(move |claims: tower_oidc_auth::Claims| {
                let c = c.clone();
                async move {
                    let user = c.current_user(&claims).await;
                    let orgs = c.user_organizations(&claims).await;
                    Json(match (user, orgs) {
                        (Ok(user), Ok(orgs)) => json!({"id": user.id, "orgs": orgs.iter().map(|m| m.organization_id.clone()).collect::<Vec<_>>()}),
                        (user, orgs) => json!({"errors": [
                            user.err().map(|e| format!("{e:?}")),
                            orgs.err().map(|e| format!("{e:?}")),
                        ]}),
                    })
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
    serde_json::from_slice(&body).unwrap()
}

/// Claims of an issuer that is not this client's environment (nor named as its other name) are
/// refused without a request: their `sub` may be someone else here.
#[tokio::test]
async fn current_user_refuses_claims_of_another_environment() {
    let (url, fake) = start().await;
    let provider = tower_oidc_auth::testing::TestProvider::start().await;
    let auth = provider
        .layer_builder("http://127.0.0.1:1/auth/callback")
        .build()
        .await
        .unwrap();
    let c = client(&url, RecordingSleeper::default());
    let cookie = provider.session_cookie(&auth, &tower_oidc_auth::testing::TestUser::new("usr_77"));
    let app = Router::new()
        .route(
            "/me",
            get(move |claims: tower_oidc_auth::Claims| {
                let c = c.clone();
                async move { format!("{:?}", c.current_user(&claims).await.err()) }
            }),
        )
        .layer(auth);
    let req = http::Request::get("/me")
        .header("cookie", cookie)
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(app, req).await.unwrap();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("ForeignIssuer"), "{body}");
    assert_eq!(fake.requests().len(), 0, "no request");
}

#[tokio::test]
async fn current_user_and_organizations_from_claims() {
    let (url, _fake) = start().await;
    let v = me_organizations(&url, "usr_77").await;
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

// ---- issue 13: ids in paths ----

/// Issue 13: `list_organization_users("..")` became `GET /api/v1/users` (every user of the
/// environment) and `revoke_user_sessions("..")` became `POST /api/v1/sessions/revoke`. Both are
/// refused before any request, the token request included.
#[tokio::test]
async fn dot_dot_ids_never_reach_the_api() {
    let (url, fake) = start().await;
    let c = client(&url, RecordingSleeper::default());
    let listed: Result<Vec<_>, _> = c.list_organization_users("..", 10).try_collect().await;
    let error = listed.expect_err("`..` as an organization id must be refused");
    assert!(
        matches!(&error, ManagementError::InvalidId { name: "organization_id", id } if id == ".."),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        r#"invalid organization_id "..": an id in a Management API path is one or more of A-Z a-z 0-9 _ -"#
    );
    let error = c
        .revoke_user_sessions("..")
        .await
        .expect_err("`..` as a user id must be refused");
    assert!(
        matches!(&error, ManagementError::InvalidId { name: "user_id", id } if id == ".."),
        "{error:?}"
    );
    assert!(
        fake.requests().is_empty(),
        "no request may be sent: {:#?}",
        fake.requests()
    );
}

/// Ids that are not one path segment of `[A-Za-z0-9_-]`: empty, dot segments, separators,
/// percent-encoding, query and fragment characters, spaces, `;` (a modular SSO subject), and
/// non-ASCII.
const BAD_IDS: &[&str] = &[
    "",
    ".",
    "..",
    "../users",
    "org_1/../..",
    "org_1/users",
    "%2e%2e",
    "org_1%2Fx",
    "org_1?page_size=100",
    "org_1#x",
    "org 1",
    "org_1\n",
    "conn_70087756662964366;dcc62570",
    "org_1.json",
    "usr_\u{0131}",
];

/// Every method that puts an id into a path refuses a bad one before any request, with a typed
/// error (not an API error), never a panic; the lists yield that error and end.
#[tokio::test]
async fn bad_ids_are_refused_before_any_request_by_every_method() {
    let (url, fake) = start().await;
    let c = client(&url, RecordingSleeper::default());
    let request = MembershipRequest::with_roles(["admin"]);
    for &bad in BAD_IDS {
        let mut errors: Vec<(&str, ManagementError)> = Vec::new();
        let mut push = |name: &'static str, r: Result<(), ManagementError>| match r {
            Ok(()) => panic!("{name}({bad:?}) succeeded"),
            Err(e) => errors.push((name, e)),
        };
        push("get_user", c.get_user(bad).await.map(drop));
        push("get_organization", c.get_organization(bad).await.map(drop));
        push(
            "create_membership(org)",
            c.create_membership(bad, "usr_1", &request, false)
                .await
                .map(drop),
        );
        push(
            "create_membership(user)",
            c.create_membership("org_1", bad, &request, false)
                .await
                .map(drop),
        );
        push(
            "update_membership(org)",
            c.update_membership(bad, "usr_1", &request).await.map(drop),
        );
        push(
            "update_membership(user)",
            c.update_membership("org_1", bad, &request).await.map(drop),
        );
        push(
            "delete_membership(org)",
            c.delete_membership(bad, "usr_1").await,
        );
        push(
            "delete_membership(user)",
            c.delete_membership("org_1", bad).await,
        );
        push("user_roles", c.user_roles(bad, "org_1").await.map(drop));
        push(
            "list_organization_roles",
            c.list_organization_roles(bad).await.map(drop),
        );
        push("get_session", c.get_session(bad).await.map(drop));
        push("revoke_session", c.revoke_session(bad).await);
        push(
            "revoke_user_sessions",
            c.revoke_user_sessions(bad).await.map(drop),
        );
        let items: Vec<_> = c.list_organization_users(bad, 10).collect().await;
        assert_eq!(items.len(), 1, "one error, then the end: {items:?}");
        push("list_organization_users", items[0].clone().map(drop));
        let items: Vec<_> = c.list_user_sessions(bad, 10).collect().await;
        assert_eq!(items.len(), 1, "one error, then the end: {items:?}");
        push("list_user_sessions", items[0].clone().map(drop));
        for (name, error) in errors {
            assert!(
                matches!(&error, ManagementError::InvalidId { id, .. } if id == bad),
                "{name}({bad:?}): {error:?}"
            );
        }
        assert!(
            fake.requests().is_empty(),
            "{bad:?} sent requests: {:#?}",
            fake.requests()
        );
    }
    // Ids made of the allowed characters still work.
    assert_eq!(c.get_user("usr_1-A_z9").await.unwrap().id, "usr_1-A_z9");
}

// ---- issue 13: page sizes ----

/// `page_size` outside the spec's bounds is refused before any request: 10–100 for
/// `UserService_ListUsers` and `OrganizationService_ListOrganization`, 1–100 for
/// `UserService_ListOrganizationUsers`; `SessionService_GetUserSessions` states no bound, so
/// only 0 (which would silently mean "the server's default") is refused.
#[tokio::test]
async fn page_sizes_outside_the_spec_bounds_are_refused_before_any_request() {
    let (url, fake) = start().await;
    let c = client(&url, RecordingSleeper::default());
    let mut results: Vec<(String, Vec<Result<(), ManagementError>>)> = Vec::new();
    for size in [0, 1, 9, 101, u32::MAX] {
        results.push((
            format!("list_users({size})"),
            c.list_users(size).map_ok(drop).collect().await,
        ));
        results.push((
            format!("list_organizations({size})"),
            c.list_organizations(size).map_ok(drop).collect().await,
        ));
    }
    for size in [0, 101, u32::MAX] {
        results.push((
            format!("list_organization_users({size})"),
            c.list_organization_users("org_1", size)
                .map_ok(drop)
                .collect()
                .await,
        ));
    }
    results.push((
        "list_user_sessions(0)".into(),
        c.list_user_sessions("usr_1", 0)
            .map_ok(drop)
            .collect()
            .await,
    ));
    for (call, items) in results {
        assert_eq!(items.len(), 1, "{call}: one error, then the end: {items:?}");
        let error = items[0].clone().unwrap_err();
        assert!(
            matches!(error, ManagementError::InvalidPageSize { .. }),
            "{call}: refused locally: {error:?}"
        );
    }
    let error = Box::pin(c.list_users(9)).next().await.unwrap().unwrap_err();
    assert!(matches!(
        error,
        ManagementError::InvalidPageSize {
            operation: "UserService_ListUsers",
            page_size: 9,
            min: 10,
            max: Some(100)
        }
    ));
    assert_eq!(
        error.to_string(),
        "page_size 9 is out of range for UserService_ListUsers: it must be 10 to 100"
    );
    assert!(
        fake.requests().is_empty(),
        "no request may be sent: {:#?}",
        fake.requests()
    );
    // The bounds themselves are accepted (and the fake, enforcing them too, agrees).
    assert_eq!(
        c.list_users(10)
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        c.list_users(100)
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        c.list_organizations(100)
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len(),
        25
    );
}

/// The fake API refuses what the real one refuses, so the client's own checks are not the only
/// thing standing between a bad `page_size` and a passing test.
#[tokio::test]
async fn the_fake_enforces_the_spec_page_size_bounds_too() {
    let (url, _fake) = start().await;
    let http = reqwest::Client::new();
    for (size, status) in [(9, 400), (10, 200), (100, 200), (101, 400)] {
        let resp = http
            .get(format!("{url}/api/v1/organizations?page_size={size}"))
            .bearer_auth("tok-1")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "page_size={size}");
    }
}

// ---- issue 13: headers and request bodies ----

/// Every Management API call carries `x-api-version`, the date the official SDKs send
/// (`apiVersion` in scalekit-sdk-node `src/core.ts`).
#[tokio::test]
async fn every_api_call_sends_x_api_version() {
    let (url, fake) = start().await;
    let c = client(&url, RecordingSleeper::default());
    c.get_user("usr_1").await.unwrap();
    c.list_organizations(10)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    c.create_membership(
        "org_1",
        "usr_1",
        &MembershipRequest::with_roles(["admin"]),
        false,
    )
    .await
    .unwrap();
    c.revoke_user_sessions("usr_1").await.unwrap();
    let api: Vec<Recorded> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v1/"))
        .collect();
    assert_eq!(api.len(), 6);
    for r in api {
        assert_eq!(r.api_version.as_deref(), Some(API_VERSION), "{r:?}");
    }
    // The value of `apiVersion` in scalekit-sdk-node `src/core.ts` at v2.10.0.
    assert_eq!(API_VERSION, "20260716");
    // The token endpoint is plain OAuth 2.0: no Scalekit header there.
    let token = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/oauth/token")
        .unwrap();
    assert_eq!(token.api_version, None);
}

/// `UserService_CreateMembership` takes `send_invitation_email` as a query parameter that
/// "defaults to true": a call that does not say otherwise e-mails an invitation. The client
/// always states it.
#[tokio::test]
async fn create_membership_states_send_invitation_email() {
    let (url, fake) = start().await;
    let c = client(&url, RecordingSleeper::default());
    let request = MembershipRequest::with_roles(["admin"]);
    c.create_membership("org_1", "usr_1", &request, false)
        .await
        .unwrap();
    c.create_membership("org_1", "usr_1", &request, true)
        .await
        .unwrap();
    let posts: Vec<Recorded> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.starts_with("/api/v1/memberships/"))
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[0].query.as_deref(),
        Some("send_invitation_email=false")
    );
    assert_eq!(
        posts[1].query.as_deref(),
        Some("send_invitation_email=true")
    );
    // A query parameter, not a body field (the body is `v1usersCreateMembership`).
    assert_eq!(posts[0].body, r#"{"roles":[{"name":"admin"}]}"#);
}

/// `v1usersUpdateMembership` has `roles` and `metadata` only: `inviter_email` (a field of
/// `v1usersCreateMembership`) is not sent on PATCH. The fake validates both bodies against the
/// spec's schemas.
#[tokio::test]
async fn membership_bodies_follow_the_spec() {
    let (url, fake) = start().await;
    let c = client(&url, RecordingSleeper::default());
    let mut request = MembershipRequest::with_roles(["admin"]);
    // Example values of `v1usersCreateMembership` (`inviter_email`, `metadata`).
    request.inviter_email = Some("john.doe@example.com".into());
    request
        .metadata
        .insert("department".into(), "engineering".into());
    request
        .metadata
        .insert("location".into(), "nyc-office".into());
    c.create_membership("org_1", "usr_1", &request, true)
        .await
        .unwrap();
    c.update_membership("org_1", "usr_1", &request)
        .await
        .unwrap();
    let bodies: Vec<(String, Value)> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v1/memberships/"))
        .map(|r| (r.method, serde_json::from_str(&r.body).unwrap()))
        .collect();
    assert_eq!(bodies.len(), 2);
    let (post, patch) = (&bodies[0].1, &bodies[1].1);
    assert_eq!(bodies[0].0, "POST");
    assert_eq!(post["inviter_email"], "john.doe@example.com");
    assert_eq!(
        post["metadata"],
        json!({"department": "engineering", "location": "nyc-office"})
    );
    assert_eq!(post["roles"], json!([{"name": "admin"}]));
    assert_eq!(bodies[1].0, "PATCH");
    assert_eq!(patch.get("inviter_email"), None, "{patch}");
    assert_eq!(patch["metadata"], post["metadata"]);
    assert_eq!(patch["roles"], post["roles"]);
}

// ---- issue 13: modular SSO ----

/// Under modular SSO the `sub` is `<connection id>;<IdP user id>`, not a Scalekit user id
/// (developer-docs `src/content/docs/authenticate/sso/add-modular-sso.mdx`, the decoded access
/// token: `"sub": "conn_70087756662964366;dcc62570-6a5a-4819-b11b-d33d110c7716"`;
/// `src/content/docs/guides/idtoken-claims.mdx`:
/// `"conn_17576372041941092;google-oauth2|104630259163176101050"`). `current_user` and
/// `user_organizations` say so, without asking the API.
#[tokio::test]
async fn current_user_under_modular_sso_is_a_clear_error() {
    for sub in [
        "conn_70087756662964366;dcc62570-6a5a-4819-b11b-d33d110c7716",
        "conn_17576372041941092;google-oauth2|104630259163176101050",
    ] {
        let (url, fake) = start().await;
        let v = me_organizations(&url, sub).await;
        let errors = v["errors"].as_array().unwrap_or_else(|| panic!("{v}"));
        assert_eq!(errors.len(), 2, "{v}");
        for e in errors {
            let e = e.as_str().unwrap_or_else(|| panic!("{v}"));
            assert!(e.starts_with("NotAScalekitUser"), "{e}");
            assert!(e.contains(sub), "{e}");
        }
        assert!(
            fake.requests().is_empty(),
            "no request may be sent: {:#?}",
            fake.requests()
        );
    }
}

// ---- issue 13: contract tests against the spec ----

/// Scalekit's OpenAPI specification, read at test time from `tests/fixtures/`.
mod spec {
    use std::sync::LazyLock;

    use serde_json::{Map, Value};

    /// The whole specification as JSON.
    pub(crate) static SPEC: LazyLock<Value> = LazyLock::new(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/scalekit-openapi.yaml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_norway::from_str(&text).expect("the spec is YAML")
    });

    /// The operation at `path` (as written in the spec) and `method`.
    pub(crate) fn operation(path: &str, method: &str) -> &'static Value {
        let op = &SPEC["paths"][path][method];
        assert!(op.is_object(), "no {method} {path} in the spec");
        op
    }

    /// `#/components/schemas/<name>`.
    pub(crate) fn schema(name: &str) -> &'static Value {
        let s = &SPEC["components"]["schemas"][name];
        assert!(s.is_object(), "no schema {name} in the spec");
        s
    }

    fn resolve(s: &'static Value) -> &'static Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => schema(
                r.strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("unexpected $ref {r}")),
            ),
            None => s,
        }
    }

    /// The example the spec gives for a schema: its own first `examples` entry where it has
    /// one, else one assembled from its properties' examples (properties without any are left
    /// out), an array of its items' example, or an enum's first value.
    pub(crate) fn example(s: &'static Value) -> Option<Value> {
        example_at(s, 0)
    }

    fn example_at(s: &'static Value, depth: usize) -> Option<Value> {
        assert!(depth < 16, "example nesting too deep");
        if let Some(e) = s.get("examples").and_then(|e| e.get(0)) {
            return Some(e.clone());
        }
        if s.get("$ref").is_some() {
            return example_at(resolve(s), depth + 1);
        }
        if let Some(v) = s.get("enum").and_then(|e| e.get(0)) {
            return Some(v.clone());
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            let object: Map<String, Value> = props
                .iter()
                .filter_map(|(k, p)| example_at(p, depth + 1).map(|e| (k.clone(), e)))
                .collect();
            return Some(Value::Object(object));
        }
        if let Some(items) = s.get("items") {
            return example_at(items, depth + 1).map(|e| Value::Array(vec![e]));
        }
        None
    }

    /// The success status of an operation and the example of its response.
    pub(crate) fn response_example(path: &str, method: &str) -> (u16, Value) {
        let responses = operation(path, method)["responses"]
            .as_object()
            .expect("responses");
        let (status, response) = responses
            .iter()
            .find(|(s, _)| s.starts_with('2'))
            .expect("a 2xx response");
        let s = &response["content"]["application/json"]["schema"];
        (
            status.parse().unwrap(),
            example(s).unwrap_or(Value::Object(Map::new())),
        )
    }

    /// A strict copy of the spec's schemas: an object schema that lists its `properties` and
    /// says nothing about others accepts no others. The spec leaves them open, but what we send
    /// must be what it declares (an `inviter_email` on PATCH is not).
    fn strict(v: &mut Value) {
        match v {
            Value::Object(o) => {
                if o.contains_key("properties") && !o.contains_key("additionalProperties") {
                    o.insert("additionalProperties".into(), Value::Bool(false));
                }
                o.values_mut().for_each(strict);
            }
            Value::Array(a) => a.iter_mut().for_each(strict),
            _ => {}
        }
    }

    static STRICT_COMPONENTS: LazyLock<Value> = LazyLock::new(|| {
        let mut components = SPEC["components"].clone();
        strict(&mut components);
        components
    });

    /// Validates `instance` against `#/components/schemas/<name>`, strictly (see [`strict`]).
    pub(crate) fn validate_strict(name: &str, instance: &Value) -> Result<(), String> {
        schema(name);
        let document = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": format!("#/components/schemas/{name}"),
            "components": &*STRICT_COMPONENTS,
        });
        let validator = jsonschema::validator_for(&document).expect("the spec's schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Validates a request body against the schema the spec gives for it.
    ///
    /// The spec's `requestBody` of `UserService_CreateMembership` is
    /// `{required: [membership], $ref: v1usersCreateMembership}`: the body *is* the membership
    /// (the RPC's `google.api.http` rule has `body: "membership"`, in the descriptor of
    /// scalekit-sdk-go `pkg/grpc/scalekit/v1/users/users.pb.go`), and the `required` beside the
    /// `$ref` is a generator artefact naming the RPC field. So bodies are validated against the
    /// referenced schema.
    pub(crate) fn validate_request(name: &str, body: &Value) -> Result<(), String> {
        validate_strict(name, body)
    }
}

/// The spec states the `page_size` bounds the client and the fake enforce, in the parameter's
/// description of each list operation the client calls.
#[test]
fn page_size_bounds_are_the_specs() {
    for (path, operation_id, says) in [
        (
            "/api/v1/users",
            "UserService_ListUsers",
            "Must be between 10 and 100",
        ),
        (
            "/api/v1/organizations",
            "OrganizationService_ListOrganization",
            "Must be between 10 and 100",
        ),
        (
            "/api/v1/organizations/{organization_id}/users",
            "UserService_ListOrganizationUsers",
            "Valid range: 1-100",
        ),
        (
            "/api/v1/users/{user_id}/sessions",
            "SessionService_GetUserSessions",
            "defaults to a server-defined limit",
        ),
    ] {
        let op = spec::operation(path, "get");
        assert_eq!(op["operationId"], operation_id);
        let page_size = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "page_size")
            .unwrap();
        let description = page_size["description"].as_str().unwrap();
        assert!(description.contains(says), "{operation_id}: {description}");
        let bounded = !says.starts_with("defaults");
        assert_eq!(page_size_bounds(operation_id).is_some(), bounded);
    }
}

/// The fake's own answers are shapes of the spec (strictly: no undeclared field but the one
/// deliberately unknown).
#[test]
fn the_fakes_own_fixtures_follow_the_spec() {
    let mut user = user_json("usr_1");
    user.as_object_mut().unwrap().remove("some_new_field");
    spec::validate_strict("usersGetUserResponse", &json!({ "user": user })).unwrap();
    spec::validate_strict(
        "usersListUsersResponse",
        &json!({"users": [user], "next_page_token": "", "total_size": 2}),
    )
    .unwrap();
    spec::validate_strict(
        "organizationsListOrganizationsResponse",
        &json!({"organizations": [{"id": "org_1", "display_name": "Org 1",
                                   "create_time": "2025-02-15T06:23:44.560000+00:00"}],
                "next_page_token": "p10", "total_size": 25}),
    )
    .unwrap();
    spec::validate_strict("sessionsRevokeAllUserSessionsResponse", &revoke_all_json()).unwrap();
    // And the strict check does refuse an undeclared field.
    assert!(spec::validate_strict(
        "v1usersUpdateMembership",
        &json!({"roles": [{"name": "admin"}], "inviter_email": "john.doe@example.com"})
    )
    .is_err());
    // ... and metadata that is not a string map.
    assert!(spec::validate_strict(
        "v1usersCreateMembership",
        &json!({"metadata": {"seats": 3}})
    )
    .is_err());
}

/// Nulls, empty objects and empty arrays removed, recursively: what is left is what a value
/// says.
fn pruned(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), pruned(v)))
                .filter(|(_, v)| match v {
                    Value::Null => false,
                    Value::Object(o) => !o.is_empty(),
                    Value::Array(a) => !a.is_empty(),
                    _ => true,
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(pruned).collect()),
        other => other.clone(),
    }
}

/// A fake API answering every operation the client calls with the spec's example of its
/// response (and its success status). The lists answer two pages: the example, whose
/// `next_page_token` is not empty, then the example again with an empty one ("Empty if there
/// are no more pages").
async fn start_spec_fake() -> (String, Arc<Fake>) {
    fn answer(path: &'static str, method: &'static str) -> Response {
        let (status, body) = spec::response_example(path, method);
        (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
    }
    fn page(
        path: &'static str,
        operation_id: &'static str,
        q: &HashMap<String, String>,
    ) -> Response {
        if let Some(r) = check_page_size(operation_id, q) {
            return r;
        }
        let (status, mut body) = spec::response_example(path, "get");
        let next = body["next_page_token"].clone();
        assert!(next.as_str().is_some_and(|t| !t.is_empty()), "{body}");
        if q.get("page_token").map(|t| json!(t)) == Some(next) {
            body["next_page_token"] = json!("");
        }
        (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
    }
    type Q = Query<HashMap<String, String>>;
    serve(
        Router::new()
            .route("/oauth/token", post(token))
            .route(
                "/api/v1/users",
                get(
                    |Query(q): Q| async move { page("/api/v1/users", "UserService_ListUsers", &q) },
                ),
            )
            .route(
                "/api/v1/users/{id}",
                get(|| async { answer("/api/v1/users/{id}", "get") }),
            )
            .route(
                "/api/v1/organizations",
                get(|Query(q): Q| async move {
                    page(
                        "/api/v1/organizations",
                        "OrganizationService_ListOrganization",
                        &q,
                    )
                }),
            )
            .route(
                "/api/v1/organizations/{id}",
                get(|| async { answer("/api/v1/organizations/{id}", "get") }),
            )
            .route(
                "/api/v1/organizations/{id}/users",
                get(|Query(q): Q| async move {
                    page(
                        "/api/v1/organizations/{organization_id}/users",
                        "UserService_ListOrganizationUsers",
                        &q,
                    )
                }),
            )
            .route(
                "/api/v1/organizations/{id}/roles",
                get(|| async { answer("/api/v1/organizations/{org_id}/roles", "get") }),
            )
            .route(
                "/api/v1/roles",
                get(|| async { answer("/api/v1/roles", "get") }),
            )
            .route(
                "/api/v1/memberships/organizations/{org}/users/{user}",
                post(|body: String| async move {
                    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    match spec::validate_request("v1usersCreateMembership", &body) {
                        Ok(()) => answer(
                            "/api/v1/memberships/organizations/{organization_id}/users/{id}",
                            "post",
                        ),
                        Err(e) => api_error(StatusCode::BAD_REQUEST, 3, &e),
                    }
                })
                .patch(|body: String| async move {
                    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    match spec::validate_request("v1usersUpdateMembership", &body) {
                        Ok(()) => answer(
                            "/api/v1/memberships/organizations/{organization_id}/users/{id}",
                            "patch",
                        ),
                        Err(e) => api_error(StatusCode::BAD_REQUEST, 3, &e),
                    }
                })
                .delete(|| async {
                    answer(
                        "/api/v1/memberships/organizations/{organization_id}/users/{id}",
                        "delete",
                    )
                }),
            )
            .route(
                "/api/v1/sessions/{id}",
                get(|| async { answer("/api/v1/sessions/{session_id}", "get") }),
            )
            .route(
                "/api/v1/sessions/{id}/revoke",
                post(|| async { answer("/api/v1/sessions/{session_id}/revoke", "post") }),
            )
            .route(
                "/api/v1/users/{id}/sessions",
                get(|Query(q): Q| async move {
                    page(
                        "/api/v1/users/{user_id}/sessions",
                        "SessionService_GetUserSessions",
                        &q,
                    )
                }),
            )
            .route(
                "/api/v1/users/{id}/sessions/revoke",
                post(|| async { answer("/api/v1/users/{user_id}/sessions/revoke", "post") }),
            ),
    )
    .await
}

/// Every endpoint the client calls, answered with the spec's example of its response: each
/// parses into the client's types, and nothing in it is lost (typed fields and `extra` together
/// serialize back to the example). Every request body sent on the way is valid for the spec's
/// request schema (the fake checks), and the example ids fit the client's id rule.
#[tokio::test]
async fn every_response_example_in_the_spec_parses() {
    let (url, fake) = start_spec_fake().await;
    let c = client(&url, RecordingSleeper::default());
    let ex = |path: &str, method: &str| spec::response_example(path, method).1;
    let same = |ours: Value, example: &Value, what: &str| {
        assert_eq!(pruned(&ours), pruned(example), "{what}");
    };

    // UserService_GetUser: usersGetUserResponse.
    let example = ex("/api/v1/users/{id}", "get");
    let user = c
        .get_user(example["user"]["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(user.id, example["user"]["id"]);
    same(
        serde_json::to_value(&user).unwrap(),
        &example["user"],
        "GetUser",
    );
    assert_eq!(
        user.memberships[0].organization_id,
        example["user"]["memberships"][0]["organization_id"]
    );

    // UserService_ListUsers and UserService_ListOrganizationUsers: two pages of usersUser.
    for (users, example) in [
        (
            c.list_users(10).try_collect::<Vec<_>>().await.unwrap(),
            ex("/api/v1/users", "get"),
        ),
        (
            c.list_organization_users("org_1234abcd5678efgh", 10)
                .try_collect::<Vec<_>>()
                .await
                .unwrap(),
            ex("/api/v1/organizations/{organization_id}/users", "get"),
        ),
    ] {
        let per_page = example["users"].as_array().unwrap().len();
        assert_eq!(users.len(), 2 * per_page);
        for (i, user) in users.iter().enumerate() {
            same(
                serde_json::to_value(user).unwrap(),
                &example["users"][i % per_page],
                "ListUsers",
            );
        }
    }

    // OrganizationService_GetOrganization and OrganizationService_ListOrganization.
    let example = ex("/api/v1/organizations/{id}", "get");
    let org = c
        .get_organization(example["organization"]["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(org.id, example["organization"]["id"]);
    same(
        serde_json::to_value(&org).unwrap(),
        &example["organization"],
        "GetOrganization",
    );
    let example = ex("/api/v1/organizations", "get");
    let orgs: Vec<_> = c.list_organizations(10).try_collect().await.unwrap();
    assert_eq!(
        orgs.len(),
        2 * example["organizations"].as_array().unwrap().len()
    );
    same(
        serde_json::to_value(&orgs[0]).unwrap(),
        &example["organizations"][0],
        "ListOrganization",
    );

    // RolesService_ListOrganizationRoles and RolesService_ListRoles (whose example is the
    // spec's own two-role list).
    let example = ex("/api/v1/organizations/{org_id}/roles", "get");
    let roles = c
        .list_organization_roles("org_1234abcd5678efgh")
        .await
        .unwrap();
    same(
        serde_json::to_value(&roles).unwrap(),
        &example["roles"],
        "ListOrganizationRoles",
    );
    let example = ex("/api/v1/roles", "get");
    let roles = c.list_roles().await.unwrap();
    assert_eq!(roles.len(), 2);
    assert_eq!(roles[0].name, "admin");
    same(
        serde_json::to_value(&roles).unwrap(),
        &example["roles"],
        "ListRoles",
    );

    // user_roles: the user's memberships, from GetUser's example.
    let example = ex("/api/v1/users/{id}", "get");
    let membership = &example["user"]["memberships"][0];
    let (roles, permissions) = c
        .user_roles(
            "usr_1234abcd5678efgh",
            membership["organization_id"].as_str().unwrap(),
        )
        .await
        .unwrap();
    same(
        serde_json::to_value(&roles).unwrap(),
        &membership["roles"],
        "user_roles",
    );
    assert_eq!(json!(permissions), membership["permissions"]);

    // UserService_CreateMembership (201) / UpdateMembership / DeleteMembership, with the request
    // schemas' example values; the fake validates the bodies.
    let mut request = MembershipRequest::with_roles(["admin"]);
    request.inviter_email = Some("john.doe@example.com".into());
    request
        .metadata
        .insert("department".into(), "engineering".into());
    request
        .metadata
        .insert("location".into(), "nyc-office".into());
    let example = ex(
        "/api/v1/memberships/organizations/{organization_id}/users/{id}",
        "post",
    );
    let user = c
        .create_membership(
            "org_1234abcd5678efgh",
            "usr_1234abcd5678efgh",
            &request,
            false,
        )
        .await
        .unwrap();
    same(
        serde_json::to_value(&user).unwrap(),
        &example["user"],
        "CreateMembership",
    );
    let example = ex(
        "/api/v1/memberships/organizations/{organization_id}/users/{id}",
        "patch",
    );
    let user = c
        .update_membership("org_1234abcd5678efgh", "usr_1234abcd5678efgh", &request)
        .await
        .unwrap();
    same(
        serde_json::to_value(&user).unwrap(),
        &example["user"],
        "UpdateMembership",
    );
    c.delete_membership("org_1234abcd5678efgh", "usr_1234abcd5678efgh")
        .await
        .unwrap();

    // SessionService_GetSession (sessionsSessionDetails, unwrapped), RevokeSession,
    // GetUserSessions (two pages), RevokeAllUserSessions.
    let example = ex("/api/v1/sessions/{session_id}", "get");
    let session = c
        .get_session(example["session_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(session.session_id, example["session_id"]);
    same(
        serde_json::to_value(&session).unwrap(),
        &example,
        "GetSession",
    );
    c.revoke_session("ses_1234567890123456").await.unwrap();
    let example = ex("/api/v1/users/{user_id}/sessions", "get");
    let sessions: Vec<_> = c
        .list_user_sessions("usr_1234567890123456", 10)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        sessions.len(),
        2 * example["sessions"].as_array().unwrap().len()
    );
    same(
        serde_json::to_value(&sessions[0]).unwrap(),
        &example["sessions"][0],
        "GetUserSessions",
    );
    let example = ex("/api/v1/users/{user_id}/sessions/revoke", "post");
    assert_eq!(
        json!(c
            .revoke_user_sessions("usr_1234567890123456")
            .await
            .unwrap()),
        example["total_revoked"]
    );

    // Every operation was reached: four lists of two pages, eleven single calls.
    let api = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v1/"))
        .count();
    assert_eq!(api, 4 * 2 + 11);
}
