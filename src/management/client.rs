//! [`ManagementClient`]: the calls.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, Stream};
use http::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::api::{
    api_answer, checked_id, field, is_unauthenticated, page_items, scalekit_user_id, ApiPath,
    ListEndpoint, LIST_ORGANIZATIONS, LIST_ORGANIZATION_USERS, LIST_USERS, LIST_USER_SESSIONS,
};
use super::credentials::{read_limited, ClientCredentials, Sleeper};
use super::error::ManagementError;
use super::model::{
    Membership, MembershipRequest, Organization, Role, UpdateMembershipBody, User, UserSession,
};
use super::API_VERSION;
use crate::claims::Claims;

/// Scalekit's Management API. `Clone` is a pointer copy: share it through axum state.
#[derive(Clone)]
pub struct ManagementClient {
    inner: Arc<ClientInner>,
}

pub(super) struct ClientInner {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    pub(super) credentials: ClientCredentials,
    pub(super) timeout: Duration,
    pub(super) max_body: usize,
    pub(super) max_retries: u32,
    pub(super) max_retry_delay: Duration,
    pub(super) sleeper: Arc<dyn Sleeper>,
    /// The environment's URL, as given: the issuer of its users' claims.
    pub(super) environment: String,
    /// Other issuers that are this environment under another name (custom domains).
    pub(super) same_environment: Vec<String>,
}

impl fmt::Debug for ManagementClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementClient")
            .field("base", &self.inner.base)
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

impl ManagementClient {
    /// A client for the environment at `env_url` (calls go to `<env_url>/api/v1`).
    pub fn new(env_url: &str, credentials: ClientCredentials) -> Self {
        Self::builder(env_url, credentials).build()
    }

    /// A client using the layer's provider and client credentials: the app's own client id and
    /// secret (or its private key, with `private_key_jwt`), which need "Allow Scalekit
    /// Management API Access" enabled.
    #[must_use]
    pub fn from_layer(auth: &crate::AuthLayer) -> Self {
        let shared = &auth.shared;
        // The layer's own client authentication: its secret, or its private key.
        let auth = match &shared.token.auth {
            crate::provider::TokenAuth::Secret { secret, .. } => {
                super::credentials::CredentialsAuth::Secret(secret.clone())
            }
            crate::provider::TokenAuth::PrivateKeyJwt(assertions) => {
                super::credentials::CredentialsAuth::PrivateKeyJwt(
                    assertions.clone(),
                    super::credentials::ClockRef(shared.clock.clone()),
                )
            }
        };
        let credentials = ClientCredentials::with_auth(
            shared.meta.token_endpoint.clone(),
            shared.token.client_id.clone(),
            auth,
            None,
        );
        Self::new(&shared.meta.issuer, credentials)
    }

    /// A client of these settings (see [`ManagementClientBuilder::build`](super::ManagementClientBuilder::build)).
    pub(super) fn from_inner(inner: ClientInner) -> Self {
        Self {
            inner: Arc::new(inner),
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
        let mut url = format!("{}{}", inner.base, path.as_str());
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
                Err(e) => {
                    return Err(ManagementError::Unreachable {
                        source: crate::error::cause(e),
                    })
                }
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
    pub async fn get_session(&self, session_id: &str) -> Result<UserSession, ManagementError> {
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
    ) -> impl Stream<Item = Result<UserSession, ManagementError>> + Send + 'static {
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
    ///
    /// Claims whose issuer is not this environment's URL (a
    /// [trusted issuer](crate::AuthLayerBuilder::trust_issuer)'s, another provider's) are
    /// refused ([`ManagementError::ForeignIssuer`]), unless that issuer is this environment
    /// under another name ([`ManagementClientBuilder::same_environment_issuer`](super::ManagementClientBuilder::same_environment_issuer)).
    pub async fn current_user(&self, claims: &Claims) -> Result<User, ManagementError> {
        let user_id = scalekit_user_id(&claims.sub)?;
        // The `sub` is a user of this environment only if the claims' issuer is this
        // environment (its URL, or another name of it the app gave).
        let issuer = claims.issuer().trim_end_matches('/');
        let ours = std::iter::once(self.inner.environment.as_str())
            .chain(self.inner.same_environment.iter().map(String::as_str))
            .any(|name| name.trim_end_matches('/') == issuer);
        if !ours {
            return Err(ManagementError::ForeignIssuer {
                issuer: claims.issuer().to_owned(),
            });
        }
        self.get_user(user_id).await
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
