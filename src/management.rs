//! A typed client for Scalekit's Management API (feature `management`).
//!
//! Web apps call the Management API from the backend with the app's own client id and secret,
//! once "Allow Scalekit Management API Access" is enabled for the client in the Scalekit
//! dashboard. [`ClientCredentials`] gets and caches the token (`client_credentials` grant);
//! [`ManagementClient`] calls `<ENV_URL>/api/v1/...` with timeouts, bounded response sizes,
//! retries for idempotent GETs on 429/5xx (honouring `Retry-After`), and typed errors.
//!
//! Requests follow Scalekit's OpenAPI specification (`openapi/scalekit.yaml` of
//! `scalekit-inc/developer-docs`; a copy lives in this crate's `tests/fixtures/`, where contract
//! tests check request bodies against its schemas and parse every response example it gives for
//! the endpoints called here). Before any request, the client refuses what the API must not see:
//! an id that is not exactly one URL path segment ([`ManagementError::InvalidId`]), a `page_size`
//! outside the endpoint's bounds ([`ManagementError::InvalidPageSize`]), and a signed-in subject
//! that is not a Scalekit user ([`ManagementError::NotAScalekitUser`]).
//!
//! ```no_run
//! # async fn run(claims: tower_oidc_auth::Claims) -> Result<(), tower_oidc_auth::management::ManagementError> {
//! use tower_oidc_auth::management::{ClientCredentials, ManagementClient};
//! let env = "https://yourenv.scalekit.com";
//! let client = ManagementClient::new(env, ClientCredentials::scalekit(env, "skc_...", "secret"));
//! let user = client.current_user(&claims).await?;
//! for membership in client.user_organizations(&claims).await? {
//!     println!("{} as {:?}", membership.organization_id, membership.role_names());
//! }
//! # let _ = user; Ok(()) }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, Stream};
use http::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::claims::Claims;
use crate::secret::Secret;

/// The `x-api-version` header sent with every Management API call: the API version (a date,
/// `YYYYMMDD`) Scalekit's own SDKs send. Taken from `apiVersion` in `src/core.ts` of
/// `scalekit-inc/scalekit-sdk-node` v2.10.0 (commit `d1340116`, 2026-07-17; set by its commit
/// `efd7293` "chore: set x-api-version to 20260716"), the newest of the official SDKs;
/// `scalekit-sdk-go` v2.6.0 (`core.go`) sends the older `20260312`.
pub const API_VERSION: &str = "20260716";

/// What went wrong calling the Management API.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ManagementError {
    /// The API answered with an error (`{code, message, details[{error_code}]}`).
    #[error("management API returned {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The gRPC-style status code in the body, if any.
        code: Option<i64>,
        /// The message in the body (or the HTTP reason).
        message: String,
        /// The first `details[].error_code`, such as `USER_NOT_FOUND`.
        error_code: Option<String>,
    },
    /// The token endpoint refused or failed.
    #[error("management API token: {0}")]
    Token(String),
    /// The API could not be reached.
    #[error("management API unreachable: {0}")]
    Unreachable(String),
    /// No answer within the timeout.
    #[error("management API timed out")]
    Timeout,
    /// The response was larger than allowed.
    #[error("management API response larger than {0} bytes")]
    TooLarge(usize),
    /// The response was not the JSON expected.
    #[error("malformed management API response: {0}")]
    Malformed(String),
    /// An id that goes into a URL path is not one path segment: it is empty, or has a character
    /// outside `A-Z a-z 0-9 _ -` (such as `.`, `/`, `%`, `?`, `;`). `..` would otherwise climb to
    /// another endpoint: `list_organization_users("..")` would list every user of the
    /// environment. Refused before any request.
    #[error(
        "invalid {name} {}: an id in a Management API path is one or more of A-Z a-z 0-9 _ -",
        Shown(id)
    )]
    InvalidId {
        /// Which parameter: `organization_id`, `user_id`, `session_id`.
        name: &'static str,
        /// The id as given.
        id: String,
    },
    /// A `page_size` outside the bounds Scalekit's specification gives for the endpoint (10 to
    /// 100 for users and organizations, 1 to 100 for an organization's users). Refused before
    /// any request.
    #[error(
        "page_size {page_size} is out of range for {operation}: it must be {}",
        Bounds(*min, *max)
    )]
    InvalidPageSize {
        /// The operation, as the specification names it (`UserService_ListUsers`).
        operation: &'static str,
        /// The page size asked for.
        page_size: u32,
        /// The smallest page size allowed.
        min: u32,
        /// The largest, if the specification states one.
        max: Option<u32>,
    },
    /// The signed-in subject is not a Scalekit user id (`usr_...`), so the Management API has no
    /// user for it. Under modular SSO (Scalekit SSO without its user management) the `sub` is
    /// `<connection id>;<IdP user id>`, such as
    /// `conn_70087756662964366;dcc62570-6a5a-4819-b11b-d33d110c7716`; a machine-to-machine
    /// token's is its client (`m2morg_...`). Returned by [`ManagementClient::current_user`] and
    /// [`ManagementClient::user_organizations`] without a request.
    #[error(
        "the signed-in subject {} is not a Scalekit user id (usr_...): modular SSO subjects \
         (<connection id>;<IdP user id>) and machine clients have no Management API user",
        Shown(sub)
    )]
    NotAScalekitUser {
        /// The token's `sub`.
        sub: String,
    },
}

/// An outside value in an error message: quoted and escaped, cut to a length that keeps the
/// message readable.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX_CHARS: usize = 64;
        match self.0.char_indices().nth(MAX_CHARS) {
            Some((cut, _)) => write!(f, "{:?}...", &self.0[..cut]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// `min to max`, or `at least min`.
struct Bounds(u32, Option<u32>);

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(max) => write!(f, "{} to {max}", self.0),
            None => write!(f, "at least {}", self.0),
        }
    }
}

impl ManagementError {
    /// The HTTP status of an API error.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Waits between retries. Injectable so tests can check delays without waiting.
pub trait Sleeper: Send + Sync + 'static {
    /// Waits `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// The real sleeper (tokio's timer).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

struct Cached {
    token: Secret,
    expires_at: tokio::time::Instant,
}

/// OAuth 2.0 client credentials: `grant_type=client_credentials` at a token endpoint, with the
/// token cached until shortly before `expires_in` and one fetch shared by all waiting tasks.
/// Generic: it can serve any OAuth2-protected API.
#[derive(Clone)]
pub struct ClientCredentials {
    inner: Arc<CredentialsInner>,
}

struct CredentialsInner {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    scope: Option<String>,
    cached: tokio::sync::Mutex<Option<Cached>>,
    grants: AtomicU64,
    timeout: Duration,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.inner.token_url)
            .field("client_id", &self.inner.client_id)
            .field("client_secret", &self.inner.client_secret)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Credentials for `token_url`.
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Self {
        Self::with_scope(token_url, client_id, client_secret, None)
    }

    /// Credentials for `token_url`, asking for `scope`.
    pub fn with_scope(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        scope: Option<String>,
    ) -> Self {
        let timeout = Duration::from_secs(10);
        Self {
            inner: Arc::new(CredentialsInner {
                http: reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(timeout)
                    .build()
                    .unwrap_or_else(|_| reqwest::Client::new()),
                token_url: token_url.into(),
                client_id: client_id.into(),
                client_secret: client_secret.into(),
                scope,
                cached: tokio::sync::Mutex::new(None),
                grants: AtomicU64::new(0),
                timeout,
            }),
        }
    }

    /// Scalekit's token endpoint: `<env_url>/oauth/token`.
    pub fn scalekit(
        env_url: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Self {
        Self::new(
            format!("{}/oauth/token", env_url.trim_end_matches('/')),
            client_id,
            client_secret,
        )
    }

    /// Token grants made so far (for tests and metrics).
    #[must_use]
    pub fn grants(&self) -> u64 {
        self.inner.grants.load(Ordering::Relaxed)
    }

    /// A valid access token: the cached one, or a new one. Concurrent callers share one fetch.
    pub async fn token(&self) -> Result<Secret, ManagementError> {
        // Held across the fetch on purpose: this is the single flight (not a hot path).
        let mut cached = self.inner.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if tokio::time::Instant::now() < c.expires_at {
                return Ok(c.token.clone());
            }
        }
        let (token, expires_in) = self.fetch().await?;
        *cached = Some(Cached {
            token: token.clone(),
            expires_at: token_expiry(tokio::time::Instant::now(), expires_in),
        });
        Ok(token)
    }

    /// Forgets `token` if it is the cached one (after the API refused it).
    pub async fn invalidate(&self, token: &Secret) {
        let mut cached = self.inner.cached.lock().await;
        if cached.as_ref().is_some_and(|c| &c.token == token) {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<(Secret, u64), ManagementError> {
        let inner = &self.inner;
        inner.grants.fetch_add(1, Ordering::Relaxed);
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &inner.client_id)
                .append_pair("client_secret", inner.client_secret.expose());
            if let Some(scope) = &inner.scope {
                form.append_pair("scope", scope);
            }
            form.finish()
        };
        let request = inner
            .http
            .post(&inner.token_url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .timeout(inner.timeout)
            .body(form);
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                ManagementError::Timeout
            } else {
                ManagementError::Token(e.to_string())
            }
        })?;
        let status = response.status();
        let body = read_limited(response, 64 * 1024).await?;
        token_answer(status, &body)
    }
}

/// The token endpoint's answer: the token and its lifetime in seconds. No I/O (the fuzz targets
/// call it too).
pub(crate) fn token_answer(
    status: http::StatusCode,
    body: &[u8],
) -> Result<(Secret, u64), ManagementError> {
    #[derive(Deserialize)]
    struct TokenResponse {
        access_token: String,
        #[serde(default)]
        expires_in: Option<Value>,
    }
    if !status.is_success() {
        let error = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        return Err(ManagementError::Token(error));
    }
    let parsed: TokenResponse =
        serde_json::from_slice(body).map_err(|e| ManagementError::Token(e.to_string()))?;
    let expires_in = match parsed.expires_in {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(300),
        Some(Value::String(s)) => s.parse().unwrap_or(300),
        _ => 300,
    };
    Ok((Secret::new(parsed.access_token), expires_in))
}

/// Until when a token that lives `expires_in` seconds is served from the cache: 30 s before
/// it expires, or a tenth of a short lifetime. `expires_in` is the token endpoint's number
/// (`now + lifetime` panicked on a huge one): a lifetime beyond a day is taken as a day.
pub(crate) fn token_expiry(now: tokio::time::Instant, expires_in: u64) -> tokio::time::Instant {
    let expires_in = expires_in.min(MAX_TOKEN_LIFETIME_SECS);
    let margin = (expires_in / 10).min(30);
    let lifetime = Duration::from_secs(expires_in.saturating_sub(margin).max(1));
    now.checked_add(lifetime).unwrap_or(now)
}

async fn read_limited(
    mut response: reqwest::Response,
    max: usize,
) -> Result<bytes::Bytes, ManagementError> {
    if response.content_length().is_some_and(|l| l > max as u64) {
        return Err(ManagementError::TooLarge(max));
    }
    let mut body = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(ManagementError::TooLarge(max));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) if e.is_timeout() => return Err(ManagementError::Timeout),
            Err(e) => return Err(ManagementError::Unreachable(e.to_string())),
        }
    }
}

/// The longest an access token of the Management API is cached, whatever `expires_in` says.
const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

/// A Scalekit user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// `usr_...`.
    #[serde(default)]
    pub id: String,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Your system's id for the user.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Organization memberships, with roles and permissions.
    #[serde(default)]
    pub memberships: Vec<Membership>,
    /// Profile (names, phone, ...).
    #[serde(default)]
    pub user_profile: Option<UserProfile>,
    /// Custom metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Any other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A user's profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserProfile {
    /// Full name.
    #[serde(default)]
    pub name: Option<String>,
    /// Given name.
    #[serde(default)]
    pub given_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub family_name: Option<String>,
    /// Whether the e-mail is verified.
    #[serde(default)]
    pub email_verified: Option<bool>,
    /// Any other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A user's membership in an organization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Membership {
    /// `org_...`.
    #[serde(default)]
    pub organization_id: String,
    /// Organization name.
    #[serde(default)]
    pub name: Option<String>,
    /// Organization display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `ACTIVE`, `INACTIVE`, `PENDING_INVITE`, `INVITE_EXPIRED`.
    #[serde(default)]
    pub membership_status: Option<String>,
    /// Roles in the organization.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Effective permissions in the organization.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Any other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Membership {
    /// The role names.
    #[must_use]
    pub fn role_names(&self) -> Vec<&str> {
        self.roles.iter().map(|r| r.name.as_str()).collect()
    }
}

/// A role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Role {
    /// Role id.
    #[serde(default)]
    pub id: Option<String>,
    /// Machine name, such as `admin`.
    #[serde(default)]
    pub name: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Any other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An organization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Organization {
    /// `org_...`.
    #[serde(default)]
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Your system's id for the organization.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Custom metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Any other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A user session at Scalekit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// `ses_...`.
    #[serde(default)]
    pub session_id: String,
    /// `usr_...`.
    #[serde(default)]
    pub user_id: String,
    /// `active`, `expired`, `revoked` or `logout`.
    #[serde(default)]
    pub status: Option<String>,
    /// The organization currently active in the session.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// Any other field (device, timestamps, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Roles and metadata to give a user in an organization, for creating or updating a membership.
///
/// [`ManagementClient::create_membership`] sends it as the specification's
/// `v1usersCreateMembership` (`roles`, `metadata`, `inviter_email`);
/// [`ManagementClient::update_membership`] as `v1usersUpdateMembership` (`roles` and
/// `metadata` only).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct MembershipRequest {
    /// Role names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleRef>,
    /// Custom metadata: strings only (the specification's `metadata` is a map of strings;
    /// keys of 3 to 25 characters, values of 1 to 256).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Who invited the user. Sent when creating a membership only: the update has no such
    /// field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inviter_email: Option<String>,
}

/// The body of `UserService_UpdateMembership` (`v1usersUpdateMembership`).
#[derive(Serialize)]
struct UpdateMembershipBody<'a> {
    #[serde(skip_serializing_if = "<[RoleRef]>::is_empty")]
    roles: &'a [RoleRef],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: &'a BTreeMap<String, String>,
}

impl MembershipRequest {
    /// A request giving these roles.
    #[must_use]
    pub fn with_roles<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> Self {
        Self {
            roles: roles
                .into_iter()
                .map(|name| RoleRef { name: name.into() })
                .collect(),
            ..Self::default()
        }
    }
}

/// A role by name.
#[derive(Debug, Clone, Serialize)]
pub struct RoleRef {
    /// Role name.
    pub name: String,
}

/// A Management API path: literal parts written in this file and ids that passed [`checked_id`].
/// The only way a path reaches [`ManagementClient::call`], so no id goes into a URL unchecked.
#[derive(Debug, Clone)]
struct ApiPath(String);

impl ApiPath {
    /// A path starting with a literal, such as `/users`.
    fn new(literal: &'static str) -> Self {
        Self(literal.to_owned())
    }

    /// Appends `/<id>`, if `id` is a valid path segment (`name` is for the error).
    fn id(mut self, name: &'static str, id: &str) -> Result<Self, ManagementError> {
        self.0.push('/');
        self.0.push_str(checked_id(name, id)?);
        Ok(self)
    }

    /// Appends a literal, such as `/sessions/revoke`.
    fn then(mut self, literal: &'static str) -> Self {
        self.0.push_str(literal);
        self
    }
}

/// `id` if it is one URL path segment made of `A-Z a-z 0-9 _ -`: never empty, never `.` or `..`
/// (which a URL parser resolves, climbing to another endpoint), never a separator, a
/// percent-escape, a query or a fragment. Every Scalekit id (`usr_...`, `org_...`, `ses_...`)
/// is of this form.
fn checked_id<'a>(name: &'static str, id: &'a str) -> Result<&'a str, ManagementError> {
    let valid = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(id)
    } else {
        Err(ManagementError::InvalidId {
            name,
            id: id.to_owned(),
        })
    }
}

/// A list endpoint: its operation in the specification, the field holding its items, and the
/// `page_size` bounds the specification states for it (in the parameter's description).
struct ListEndpoint {
    operation: &'static str,
    field: &'static str,
    min_page_size: u32,
    max_page_size: Option<u32>,
}

impl ListEndpoint {
    fn check(&self, page_size: u32) -> Result<(), ManagementError> {
        let in_range = page_size >= self.min_page_size
            && self.max_page_size.is_none_or(|max| page_size <= max);
        if in_range {
            Ok(())
        } else {
            Err(ManagementError::InvalidPageSize {
                operation: self.operation,
                page_size,
                min: self.min_page_size,
                max: self.max_page_size,
            })
        }
    }
}

/// `GET /users`: "Must be between 10 and 100".
const LIST_USERS: ListEndpoint = ListEndpoint {
    operation: "UserService_ListUsers",
    field: "users",
    min_page_size: 10,
    max_page_size: Some(100),
};

/// `GET /organizations`: "Must be between 10 and 100".
const LIST_ORGANIZATIONS: ListEndpoint = ListEndpoint {
    operation: "OrganizationService_ListOrganization",
    field: "organizations",
    min_page_size: 10,
    max_page_size: Some(100),
};

/// `GET /organizations/{organization_id}/users`: "Valid range: 1-100".
const LIST_ORGANIZATION_USERS: ListEndpoint = ListEndpoint {
    operation: "UserService_ListOrganizationUsers",
    field: "users",
    min_page_size: 1,
    max_page_size: Some(100),
};

/// `GET /users/{user_id}/sessions`: no bound stated ("defaults to a server-defined limit"). 0 is
/// refused: it would silently mean that default.
const LIST_USER_SESSIONS: ListEndpoint = ListEndpoint {
    operation: "SessionService_GetUserSessions",
    field: "sessions",
    min_page_size: 1,
    max_page_size: None,
};

/// Scalekit's Management API. `Clone` is a pointer copy: share it through axum state.
#[derive(Clone)]
pub struct ManagementClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    http: reqwest::Client,
    base: String,
    credentials: ClientCredentials,
    timeout: Duration,
    max_body: usize,
    max_retries: u32,
    max_retry_delay: Duration,
    sleeper: Arc<dyn Sleeper>,
}

impl fmt::Debug for ManagementClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementClient")
            .field("base", &self.inner.base)
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Vec<Value>,
}

impl ManagementClient {
    /// A client for the environment at `env_url` (calls go to `<env_url>/api/v1`).
    pub fn new(env_url: &str, credentials: ClientCredentials) -> Self {
        Self::builder(env_url, credentials).build()
    }

    /// A client using the layer's provider and client credentials: the app's own client id and
    /// secret, which need "Allow Scalekit Management API Access" enabled.
    #[must_use]
    pub fn from_layer(auth: &crate::AuthLayer) -> Self {
        let shared = &auth.shared;
        let credentials = ClientCredentials::new(
            shared.meta.token_endpoint.clone(),
            shared.token.client_id.clone(),
            shared.token.client_secret.clone(),
        );
        Self::new(&shared.meta.issuer, credentials)
    }

    /// A builder, to change timeouts, limits and retries.
    pub fn builder(env_url: &str, credentials: ClientCredentials) -> ManagementClientBuilder {
        ManagementClientBuilder {
            base: format!("{}/api/v1", env_url.trim_end_matches('/')),
            credentials,
            timeout: Duration::from_secs(10),
            max_body: 4 * 1024 * 1024,
            max_retries: 3,
            max_retry_delay: Duration::from_secs(30),
            sleeper: Arc::new(TokioSleeper),
        }
    }

    /// The credentials (for their counters, or to share them).
    #[must_use]
    pub fn credentials(&self) -> &ClientCredentials {
        &self.inner.credentials
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &ApiPath,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<T, ManagementError> {
        let inner = &self.inner;
        let mut url = format!("{}{}", inner.base, path.0);
        if !query.is_empty() {
            let q = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            url = format!("{url}?{q}");
        }
        let mut attempt = 0u32;
        let mut reauthenticated = false;
        loop {
            let token = inner.credentials.token().await?;
            let mut request = inner
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.expose())
                .header(http::header::ACCEPT, "application/json")
                .header("x-api-version", API_VERSION)
                .timeout(inner.timeout);
            if let Some(body) = body {
                request = request
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) if e.is_timeout() => return Err(ManagementError::Timeout),
                Err(e) => return Err(ManagementError::Unreachable(e.to_string())),
            };
            let status = response.status();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let bytes = read_limited(response, inner.max_body).await?;
            let unauthenticated = is_unauthenticated(status, &bytes);
            if unauthenticated && !reauthenticated {
                // The token may have been revoked or expired early: one fresh token, one retry.
                reauthenticated = true;
                inner.credentials.invalidate(&token).await;
                continue;
            }
            let retryable =
                status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if retryable && method == Method::GET && attempt < inner.max_retries {
                let backoff = Duration::from_millis(
                    2u64.checked_pow(attempt)
                        .and_then(|p| p.checked_mul(200))
                        .unwrap_or(u64::MAX),
                );
                let delay = retry_after
                    .map(Duration::from_secs)
                    .unwrap_or(backoff)
                    .min(inner.max_retry_delay);
                attempt += 1;
                tracing::debug!(%status, ?delay, attempt, "management API: retrying GET");
                inner.sleeper.sleep(delay).await;
                continue;
            }
            return api_answer(status, &bytes);
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &ApiPath) -> Result<T, ManagementError> {
        self.call(Method::GET, path, &[], None).await
    }

    /// Walks every page of a list endpoint. An invalid path or page size is the stream's only
    /// item, before any request.
    fn pages<T: DeserializeOwned + Send + 'static>(
        &self,
        path: Result<ApiPath, ManagementError>,
        endpoint: &'static ListEndpoint,
        page_size: u32,
    ) -> impl Stream<Item = Result<T, ManagementError>> + Send + 'static {
        let (path, refused) = match path.and_then(|p| endpoint.check(page_size).map(|()| p)) {
            Ok(path) => (Some(path), None),
            Err(e) => (None, Some(e)),
        };
        // The next page's token: `Some("")` for the first page, `None` when done.
        let token = path.as_ref().map(|_| String::new());
        let state = (self.clone(), refused, token, VecDeque::<T>::new());
        stream::unfold(state, move |(client, refused, mut token, mut buffer)| {
            let path = path.clone();
            async move {
                if let Some(e) = refused {
                    return Some((Err(e), (client, None, None, buffer)));
                }
                let path = path?;
                loop {
                    if let Some(item) = buffer.pop_front() {
                        return Some((Ok(item), (client, None, token, buffer)));
                    }
                    let page_token = token.take()?;
                    let mut query = vec![("page_size", page_size.to_string())];
                    if !page_token.is_empty() {
                        query.push(("page_token", page_token));
                    }
                    let page: Value = match client.call(Method::GET, &path, &query, None).await {
                        Ok(v) => v,
                        Err(e) => return Some((Err(e), (client, None, None, buffer))),
                    };
                    match page_items::<T>(&page, endpoint.field) {
                        Ok((items, next)) => {
                            buffer.extend(items);
                            token = next;
                        }
                        Err(e) => return Some((Err(e), (client, None, None, buffer))),
                    }
                }
            }
        })
    }

    // ---- users ----

    /// `GET /users/{id}` (`UserService_GetUser`).
    pub async fn get_user(&self, id: &str) -> Result<User, ManagementError> {
        let v: Value = self.get(&ApiPath::new("/users").id("user_id", id)?).await?;
        field(v, "user")
    }

    /// `GET /users` (`UserService_ListUsers`), every page. `page_size` is 10 to 100; outside
    /// that the stream's only item is [`ManagementError::InvalidPageSize`].
    pub fn list_users(
        &self,
        page_size: u32,
    ) -> impl Stream<Item = Result<User, ManagementError>> + Send + 'static {
        self.pages(Ok(ApiPath::new("/users")), &LIST_USERS, page_size)
    }

    // ---- organizations ----

    /// `GET /organizations/{id}` (`OrganizationService_GetOrganization`).
    pub async fn get_organization(&self, id: &str) -> Result<Organization, ManagementError> {
        let v: Value = self
            .get(&ApiPath::new("/organizations").id("organization_id", id)?)
            .await?;
        field(v, "organization")
    }

    /// `GET /organizations` (`OrganizationService_ListOrganization`), every page. `page_size`
    /// is 10 to 100; outside that the stream's only item is
    /// [`ManagementError::InvalidPageSize`].
    pub fn list_organizations(
        &self,
        page_size: u32,
    ) -> impl Stream<Item = Result<Organization, ManagementError>> + Send + 'static {
        self.pages(
            Ok(ApiPath::new("/organizations")),
            &LIST_ORGANIZATIONS,
            page_size,
        )
    }

    /// `GET /organizations/{id}/users` (`UserService_ListOrganizationUsers`), every page.
    /// `page_size` is 1 to 100. An invalid id or page size is the stream's only item.
    pub fn list_organization_users(
        &self,
        organization_id: &str,
        page_size: u32,
    ) -> impl Stream<Item = Result<User, ManagementError>> + Send + 'static {
        let path = ApiPath::new("/organizations")
            .id("organization_id", organization_id)
            .map(|p| p.then("/users"));
        self.pages(path, &LIST_ORGANIZATION_USERS, page_size)
    }

    // ---- memberships ----

    fn membership_path(organization_id: &str, user_id: &str) -> Result<ApiPath, ManagementError> {
        ApiPath::new("/memberships/organizations")
            .id("organization_id", organization_id)?
            .then("/users")
            .id("user_id", user_id)
    }

    /// `POST /memberships/organizations/{org}/users/{user}` (`UserService_CreateMembership`):
    /// adds an existing user to an organization. Not retried.
    ///
    /// `send_invitation_email` says whether Scalekit e-mails the user an invitation. The API
    /// sends one unless told otherwise (the parameter "defaults to true"); this client always
    /// says which.
    pub async fn create_membership(
        &self,
        organization_id: &str,
        user_id: &str,
        request: &MembershipRequest,
        send_invitation_email: bool,
    ) -> Result<User, ManagementError> {
        let path = Self::membership_path(organization_id, user_id)?;
        let body =
            serde_json::to_value(request).map_err(|e| ManagementError::Malformed(e.to_string()))?;
        let query = [("send_invitation_email", send_invitation_email.to_string())];
        let v: Value = self.call(Method::POST, &path, &query, Some(&body)).await?;
        field(v, "user")
    }

    /// `PATCH /memberships/organizations/{org}/users/{user}` (`UserService_UpdateMembership`):
    /// changes roles or metadata. `request.inviter_email` is not sent (the update has no such
    /// field).
    pub async fn update_membership(
        &self,
        organization_id: &str,
        user_id: &str,
        request: &MembershipRequest,
    ) -> Result<User, ManagementError> {
        let path = Self::membership_path(organization_id, user_id)?;
        let body = serde_json::to_value(UpdateMembershipBody {
            roles: &request.roles,
            metadata: &request.metadata,
        })
        .map_err(|e| ManagementError::Malformed(e.to_string()))?;
        let v: Value = self.call(Method::PATCH, &path, &[], Some(&body)).await?;
        field(v, "user")
    }

    /// `DELETE /memberships/organizations/{org}/users/{user}` (`UserService_DeleteMembership`):
    /// removes a user from an organization.
    pub async fn delete_membership(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<(), ManagementError> {
        let path = Self::membership_path(organization_id, user_id)?;
        let _: Value = self.call(Method::DELETE, &path, &[], None).await?;
        Ok(())
    }

    // ---- roles ----

    /// The user's roles and permissions in one organization (from the user's memberships).
    pub async fn user_roles(
        &self,
        user_id: &str,
        organization_id: &str,
    ) -> Result<(Vec<Role>, Vec<String>), ManagementError> {
        checked_id("organization_id", organization_id)?;
        let user = self.get_user(user_id).await?;
        Ok(user
            .memberships
            .into_iter()
            .find(|m| m.organization_id == organization_id)
            .map(|m| (m.roles, m.permissions))
            .unwrap_or_default())
    }

    /// `GET /organizations/{id}/roles` (`RolesService_ListOrganizationRoles`): the roles
    /// available in an organization.
    pub async fn list_organization_roles(
        &self,
        organization_id: &str,
    ) -> Result<Vec<Role>, ManagementError> {
        let path = ApiPath::new("/organizations")
            .id("organization_id", organization_id)?
            .then("/roles");
        let v: Value = self.get(&path).await?;
        field(v, "roles")
    }

    /// `GET /roles` (`RolesService_ListRoles`): every role of the environment.
    pub async fn list_roles(&self) -> Result<Vec<Role>, ManagementError> {
        let v: Value = self.get(&ApiPath::new("/roles")).await?;
        field(v, "roles")
    }

    // ---- sessions ----

    /// `GET /sessions/{id}` (`SessionService_GetSession`).
    pub async fn get_session(&self, session_id: &str) -> Result<Session, ManagementError> {
        self.get(&ApiPath::new("/sessions").id("session_id", session_id)?)
            .await
    }

    /// `POST /sessions/{id}/revoke` (`SessionService_RevokeSession`).
    pub async fn revoke_session(&self, session_id: &str) -> Result<(), ManagementError> {
        let path = ApiPath::new("/sessions")
            .id("session_id", session_id)?
            .then("/revoke");
        let _: Value = self.call(Method::POST, &path, &[], None).await?;
        Ok(())
    }

    /// `GET /users/{id}/sessions` (`SessionService_GetUserSessions`), every page. The
    /// specification states no bound for `page_size` beyond a server-defined default; 0 is
    /// refused. An invalid id or page size is the stream's only item.
    pub fn list_user_sessions(
        &self,
        user_id: &str,
        page_size: u32,
    ) -> impl Stream<Item = Result<Session, ManagementError>> + Send + 'static {
        let path = ApiPath::new("/users")
            .id("user_id", user_id)
            .map(|p| p.then("/sessions"));
        self.pages(path, &LIST_USER_SESSIONS, page_size)
    }

    /// `POST /users/{id}/sessions/revoke` (`SessionService_RevokeAllUserSessions`): ends every
    /// session of the user. Returns how many.
    pub async fn revoke_user_sessions(&self, user_id: &str) -> Result<u64, ManagementError> {
        let path = ApiPath::new("/users")
            .id("user_id", user_id)?
            .then("/sessions/revoke");
        let v: Value = self.call(Method::POST, &path, &[], None).await?;
        Ok(v.get("total_revoked").and_then(Value::as_u64).unwrap_or(0))
    }

    // ---- fit with the layer ----

    /// The signed-in user: `GET /users/{sub}`.
    ///
    /// The `sub` must be a Scalekit user id (`usr_...`, as with Scalekit's user management,
    /// "Full-Stack Auth"); otherwise [`ManagementError::NotAScalekitUser`], without a request.
    /// Under modular SSO the `sub` is `<connection id>;<IdP user id>` and there is no user to
    /// fetch: use the token's own claims (`email`, `oid`) instead.
    pub async fn current_user(&self, claims: &Claims) -> Result<User, ManagementError> {
        self.get_user(scalekit_user_id(&claims.sub)?).await
    }

    /// The signed-in user's organizations, with their roles and permissions. The same
    /// requirement on the `sub` as [`current_user`](Self::current_user).
    pub async fn user_organizations(
        &self,
        claims: &Claims,
    ) -> Result<Vec<Membership>, ManagementError> {
        Ok(self.current_user(claims).await?.memberships)
    }
}

/// `sub` if it is a Scalekit user id: `usr_` and more, a valid path segment. The specification
/// says user ids "must start with 'usr_'" (`UserService_CreateMembership`'s `id` parameter).
fn scalekit_user_id(sub: &str) -> Result<&str, ManagementError> {
    match checked_id("user_id", sub) {
        Ok(id) if id.strip_prefix("usr_").is_some_and(|rest| !rest.is_empty()) => Ok(id),
        _ => Err(ManagementError::NotAScalekitUser {
            sub: sub.to_owned(),
        }),
    }
}

/// Builder for [`ManagementClient`].
#[must_use]
pub struct ManagementClientBuilder {
    base: String,
    credentials: ClientCredentials,
    timeout: Duration,
    max_body: usize,
    max_retries: u32,
    max_retry_delay: Duration,
    sleeper: Arc<dyn Sleeper>,
}

impl fmt::Debug for ManagementClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementClientBuilder")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ManagementClientBuilder {
    /// Timeout of each call (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest response read (default 4 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Retries of a GET on 429 or 5xx (default 3).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Longest wait between retries, whatever `Retry-After` says (default 30 s).
    pub fn max_retry_delay(mut self, delay: Duration) -> Self {
        self.max_retry_delay = delay;
        self
    }

    /// How to wait between retries (default tokio's timer; tests inject their own).
    pub fn sleeper(mut self, sleeper: impl Sleeper) -> Self {
        self.sleeper = Arc::new(sleeper);
        self
    }

    /// The client.
    pub fn build(self) -> ManagementClient {
        ManagementClient {
            inner: Arc::new(ClientInner {
                http: reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(self.timeout)
                    .user_agent(concat!("tower-oidc-auth/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .unwrap_or_else(|_| reqwest::Client::new()),
                base: self.base,
                credentials: self.credentials,
                timeout: self.timeout,
                max_body: self.max_body,
                max_retries: self.max_retries,
                max_retry_delay: self.max_retry_delay,
                sleeper: self.sleeper,
            }),
        }
    }
}

pub(crate) fn field<T: DeserializeOwned>(mut v: Value, name: &str) -> Result<T, ManagementError> {
    let inner = v.get_mut(name).map(Value::take).unwrap_or(Value::Null);
    serde_json::from_value(inner).map_err(|e| ManagementError::Malformed(format!("{name}: {e}")))
}

/// 401, or a body saying UNAUTHENTICATED (gRPC code 16) under another status.
pub(crate) fn is_unauthenticated(status: http::StatusCode, body: &[u8]) -> bool {
    status == http::StatusCode::UNAUTHORIZED
        || (!status.is_success()
            && serde_json::from_slice::<ErrorBody>(body).is_ok_and(|e| e.code == Some(16)))
}

/// A final API answer (no retry left): the JSON on success, a typed error otherwise. No I/O (the
/// fuzz targets call it too).
pub(crate) fn api_answer<T: DeserializeOwned>(
    status: http::StatusCode,
    bytes: &[u8],
) -> Result<T, ManagementError> {
    if !status.is_success() {
        return Err(api_error(status, bytes));
    }
    if bytes.is_empty() || bytes == b"null" {
        return serde_json::from_value(Value::Null)
            .or_else(|_| serde_json::from_value(Value::Object(Map::new())))
            .map_err(|e| ManagementError::Malformed(e.to_string()));
    }
    serde_json::from_slice(bytes).map_err(|e| ManagementError::Malformed(e.to_string()))
}

/// One page of a list endpoint: its items under `field`, and the next page's token.
pub(crate) fn page_items<T: DeserializeOwned>(
    page: &Value,
    field: &str,
) -> Result<(Vec<T>, Option<String>), ManagementError> {
    let items = page.get(field).cloned().unwrap_or(Value::Array(Vec::new()));
    let items = serde_json::from_value::<Vec<T>>(items)
        .map_err(|e| ManagementError::Malformed(e.to_string()))?;
    let next = page
        .get("next_page_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    Ok((items, next))
}

fn api_error(status: http::StatusCode, body: &[u8]) -> ManagementError {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let (code, message, error_code) = match parsed {
        Some(e) => {
            let error_code = e
                .details
                .iter()
                .find_map(|d| d.get("error_code").and_then(Value::as_str))
                .map(str::to_owned);
            (e.code, e.message, error_code)
        }
        None => (None, None, None),
    };
    ManagementError::Api {
        status: status.as_u16(),
        code,
        message: message.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
        error_code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// An id `checked_id` accepts stays exactly one path segment once in a URL: nothing
        /// resolved, decoded or cut off. Anything else is refused.
        #[test]
        fn accepted_ids_stay_one_path_segment(id in "\\PC{0,12}|[A-Za-z0-9_.%/;?#-]{0,12}") {
            let url = format!("https://env.example.com/api/v1/organizations/{id}/users");
            match checked_id("organization_id", &id) {
                Ok(checked) => {
                    prop_assert_eq!(checked, id.as_str());
                    let parsed = url::Url::parse(&url).unwrap();
                    let expected = format!("/api/v1/organizations/{id}/users");
                    prop_assert_eq!(parsed.path(), expected.as_str());
                    prop_assert_eq!(parsed.query(), None);
                    prop_assert_eq!(parsed.fragment(), None);
                }
                Err(ManagementError::InvalidId { name, id: refused }) => {
                    prop_assert_eq!(name, "organization_id");
                    prop_assert_eq!(refused, id);
                }
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }
    }

    #[test]
    fn ids_in_paths() {
        for good in [
            "usr_1",
            "org_59615193906282635",
            "ses_1234567890123456",
            "a",
            "A-z_9",
        ] {
            assert_eq!(checked_id("id", good).unwrap(), good);
        }
        for bad in [
            "", ".", "..", "a/b", "a%2F", "a b", "a;b", "a?b", "a#b", "\u{e9}", "a\0",
        ] {
            assert!(
                matches!(
                    checked_id("id", bad),
                    Err(ManagementError::InvalidId { .. })
                ),
                "{bad:?}"
            );
        }
        let path = ApiPath::new("/users")
            .id("user_id", "usr_1")
            .unwrap()
            .then("/sessions/revoke");
        assert_eq!(path.0, "/users/usr_1/sessions/revoke");
        assert!(ApiPath::new("/users").id("user_id", "..").is_err());
    }

    /// An outside value in an error message is quoted, escaped and cut.
    #[test]
    fn errors_show_outside_values_briefly() {
        let long = "x".repeat(10_000);
        let message = checked_id("user_id", &format!("{long}/"))
            .unwrap_err()
            .to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.starts_with(&format!("invalid user_id \"{}\"...", "x".repeat(64))));
        let message = checked_id("user_id", "a\nb").unwrap_err().to_string();
        assert!(
            message.starts_with(r#"invalid user_id "a\nb":"#),
            "{message}"
        );
    }

    /// `sub`s of Scalekit's docs: Full-Stack Auth users (`usr_...`, developer-docs
    /// `authenticate/fsa/session-token-claims.mdx`), modular SSO (`conn_...;...`,
    /// `authenticate/sso/add-modular-sso.mdx`, `guides/idtoken-claims.mdx`,
    /// `guides/user-auth/modular-social-logins.mdx`), M2M clients (`m2morg_...`,
    /// `authenticate/m2m/api-auth-quickstart.mdx`).
    #[test]
    fn only_scalekit_user_ids_are_current_users() {
        assert_eq!(
            scalekit_user_id("usr_96194455173923084").unwrap(),
            "usr_96194455173923084"
        );
        for sub in [
            "conn_70087756662964366;dcc62570-6a5a-4819-b11b-d33d110c7716",
            "conn_17576372041941092;google-oauth2|104630259163176101050",
            "conn_92847563920187364;alice.smith@example.com",
            "m2morg_68315758685323697",
            "usr_1;x",
            "usr_",
            "",
        ] {
            match scalekit_user_id(sub) {
                Err(ManagementError::NotAScalekitUser { sub: s }) => assert_eq!(s, sub),
                other => panic!("{sub:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn page_size_bounds() {
        for (endpoint, ok, refused) in [
            (
                &LIST_USERS,
                &[10, 55, 100][..],
                &[0, 1, 9, 101, u32::MAX][..],
            ),
            (&LIST_ORGANIZATIONS, &[10, 100], &[0, 9, 101]),
            (&LIST_ORGANIZATION_USERS, &[1, 100], &[0, 101]),
            (&LIST_USER_SESSIONS, &[1, 100, u32::MAX], &[0]),
        ] {
            for &size in ok {
                assert!(
                    endpoint.check(size).is_ok(),
                    "{} {size}",
                    endpoint.operation
                );
            }
            for &size in refused {
                assert!(
                    matches!(
                        endpoint.check(size),
                        Err(ManagementError::InvalidPageSize { page_size, .. }) if page_size == size
                    ),
                    "{} {size}",
                    endpoint.operation
                );
            }
        }
        assert_eq!(
            LIST_USER_SESSIONS.check(0).unwrap_err().to_string(),
            "page_size 0 is out of range for SessionService_GetUserSessions: it must be at least 1"
        );
    }

    /// Found by the `management_json` fuzz target: `"expires_in": 18446744073709551615` in the
    /// token endpoint's answer made `Instant::now() + lifetime` panic.
    #[test]
    fn huge_token_lifetimes_do_not_overflow() {
        let body = br#"{"access_token":"t","expires_in":18446744073709551615}"#;
        let (_, expires_in) = token_answer(http::StatusCode::OK, body).unwrap();
        assert_eq!(expires_in, u64::MAX);
        let now = tokio::time::Instant::now();
        // Clamped to a day, less the 30 s margin.
        assert_eq!(
            token_expiry(now, expires_in),
            now + Duration::from_secs(24 * 3600 - 30)
        );
        assert_eq!(token_expiry(now, 300), now + Duration::from_secs(270));
        assert_eq!(token_expiry(now, 10), now + Duration::from_secs(9));
        assert_eq!(token_expiry(now, 0), now + Duration::from_secs(1));
    }
}
