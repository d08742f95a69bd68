//! `AuthLayer`: configuration and shared state behind one `Arc`.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::config::AuthLayerBuilder;
use crate::provider::ProviderMetadata;
use crate::require::{Guard, RequireAuthLayer};
use crate::revocation::RevocationStore;
use crate::service::AuthService;
use crate::state::Shared;

/// The OpenID Connect layer. Serves the auth routes, reads sessions on every other request and
/// attaches [`Claims`](crate::Claims) to the request extensions.
///
/// Cloning is a pointer copy. See the [crate docs](crate) for wiring.
#[derive(Clone)]
pub struct AuthLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("issuer", &self.shared.meta.issuer)
            .field("client_id", &self.shared.settings.client_id)
            .field("login_path", &self.shared.settings.login_path)
            .finish_non_exhaustive()
    }
}

/// Sizes of the layer's caches; each is bounded by its capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Verified bearer access tokens (capacity: `verified_cache_capacity`; a cookie session is
    /// remembered in the verified-session cache instead).
    pub verified_tokens: usize,
    /// Verified sessions (capacity: `session_cache_capacity`).
    pub sessions: usize,
    /// Logout-token `jti`s remembered against replay (capacity 10,000).
    pub logout_token_ids: usize,
    /// Access tokens whose signature check is memoized (a 16-byte digest and the verifying
    /// key's thumbprint each; capacity: ten times `verified_cache_capacity`).
    pub signature_memo: usize,
}

impl AuthLayer {
    /// A configuration builder with secure defaults; finish it with
    /// [`build().await`](AuthLayerBuilder::build).
    pub fn builder() -> AuthLayerBuilder {
        AuthLayerBuilder::new()
    }

    /// A layer that refuses requests without a session: browsers are redirected to login,
    /// gRPC calls get `UNAUTHENTICATED`, other requests get 401. Put it inside this layer
    /// (for axum: `.route_layer(auth.require())` before `.layer(auth)`).
    #[must_use]
    pub fn require(&self) -> RequireAuthLayer {
        RequireAuthLayer::new(self.shared.clone(), None)
    }

    /// Like [`require`](Self::require), and the user must have this role (Scalekit `roles`).
    /// Failing gives 403 JSON, a small 403 page for browser navigations, or gRPC
    /// `PERMISSION_DENIED`.
    ///
    /// ```no_run
    /// # async fn f(auth: tower_oidc_auth::AuthLayer) {
    /// use axum::{routing::get, Router};
    /// let admin: Router = Router::new()
    ///     .route("/admin", get(|| async { "secret" }))
    ///     .route_layer(auth.require_role("admin"))
    ///     .layer(auth);
    /// # }
    /// ```
    #[must_use]
    pub fn require_role(&self, role: impl Into<String>) -> RequireAuthLayer {
        let role = role.into();
        let what = format!("role {role}");
        self.require_claims_named(what, move |c| c.has_role(&role))
    }

    /// Like [`require`](Self::require), and the user must have this permission (Scalekit
    /// `permissions`).
    #[must_use]
    pub fn require_permission(&self, permission: impl Into<String>) -> RequireAuthLayer {
        let permission = permission.into();
        let what = format!("permission {permission}");
        self.require_claims_named(what, move |c| c.has_permission(&permission))
    }

    /// Like [`require`](Self::require), and the access token must carry this scope (the
    /// space-separated `scope` claim, or a `scopes` array).
    #[must_use]
    pub fn require_scope(&self, scope: impl Into<String>) -> RequireAuthLayer {
        let scope = scope.into();
        let what = format!("scope {scope}");
        self.require_claims_named(what, move |c| c.has_scope(&scope))
    }

    /// Like [`require`](Self::require), with any predicate over the claims.
    ///
    /// ```no_run
    /// # fn f(auth: tower_oidc_auth::AuthLayer) {
    /// let layer = auth.require_claims(|c| c.oid.as_deref() == Some("org_123"));
    /// # }
    /// ```
    #[must_use]
    pub fn require_claims(
        &self,
        check: impl Fn(&crate::Claims) -> bool + Send + Sync + 'static,
    ) -> RequireAuthLayer {
        self.require_claims_named("access to this resource", check)
    }

    fn require_claims_named(
        &self,
        what: impl Into<String>,
        check: impl Fn(&crate::Claims) -> bool + Send + Sync + 'static,
    ) -> RequireAuthLayer {
        RequireAuthLayer::new(self.shared.clone(), Some(Guard::new(what, check)))
    }

    /// A layer for public pages that signs in, without a click, a browser the provider already
    /// knows: a browser navigation (`GET`) without a session is redirected once to the login
    /// route with `prompt=none`, returning to the same page. With a single sign-on session at
    /// the provider (the user signed in to another app of it) the page comes back signed in;
    /// otherwise (`login_required` and the like) it comes back anonymous, with no error page,
    /// and a short "tried" cookie keeps it from asking again. XHR, API, bearer, gRPC and
    /// non-GET requests are never redirected. Put it inside this layer. Details in
    /// [`silent`](crate::silent).
    ///
    /// ```no_run
    /// # async fn f(auth: tower_oidc_auth::AuthLayer) {
    /// use axum::{routing::get, Router};
    /// use tower_oidc_auth::Claims;
    /// let app: Router = Router::new()
    ///     .route("/", get(|c: Option<Claims>| async move {
    ///         match c {
    ///             Some(c) => format!("Hello, {}", c.sub),
    ///             None => "Hello, guest".to_owned(),
    ///         }
    ///     }))
    ///     .route_layer(auth.attempt_silent_login())
    ///     .layer(auth);
    /// # }
    /// ```
    #[must_use]
    pub fn attempt_silent_login(&self) -> crate::silent::SilentLoginLayer {
        self.shared
            .silent_login
            .store(true, std::sync::atomic::Ordering::Relaxed);
        crate::silent::SilentLoginLayer::new(self.shared.clone())
    }

    /// The login route (default `/auth/login`).
    #[must_use]
    pub fn login_path(&self) -> &str {
        &self.shared.settings.login_path
    }

    /// A link to the login route with these options: `/auth/login?options=<sealed>` (under
    /// the configured base path), for an `<a href>` on the app's pages, in an e-mail, or in
    /// another app. Without options, the bare login path.
    ///
    /// The options are sealed (encrypted and authenticated with the app's cookie keys), so the
    /// login route honours them whichever site the link is followed from: they are the app's
    /// own choice. A hand-made link with plain parameters (`?organization_id=...`) is honoured
    /// only from the app's own pages, and a link whose sealed options were altered, or sealed
    /// by another app, gets a 400 error page. Sealed links do not expire (a link in an e-mail
    /// keeps working): they carry no identity or permission, only the sign-in the app asks
    /// for, which the user still completes at the provider. They stop working when the cookie
    /// key that sealed them is removed from the configured keys.
    ///
    /// ```no_run
    /// # fn f(auth: tower_oidc_auth::AuthLayer) {
    /// use std::time::Duration;
    /// use tower_oidc_auth::LoginOptions;
    /// // Sign in through an organization's SSO connection, then land on /settings.
    /// let sso = auth.login_url(LoginOptions::new().organization_id("org_123").return_to("/settings"));
    /// assert!(sso.starts_with("/auth/login?options="));
    /// // Before a sensitive action: a sign-in no older than five minutes.
    /// let fresh = auth.login_url(LoginOptions::new().max_age(Duration::from_secs(300)));
    /// assert_eq!(auth.login_url(LoginOptions::new()), "/auth/login");
    /// # let _ = fresh;
    /// # }
    /// ```
    ///
    /// # Organization switching
    ///
    /// A user who belongs to several organizations switches with
    /// `login_url(LoginOptions::new().prompt("select_account"))`: Scalekit shows the list of
    /// the user's organizations, even if they are already signed in, and signs them in to the
    /// one they pick. With `organization_id` as well, Scalekit skips the list and signs the
    /// user in to that organization (authenticating them first if needed); Scalekit notes that
    /// `organization_id` has this effect only together with `prompt=select_account`. Source:
    /// Scalekit developer-docs,
    /// `src/content/docs/authenticate/manage-users-orgs/organization-switching.mdx`
    /// ("Display organization switcher", "Switch users directly to a specific organization").
    ///
    /// ```no_run
    /// # fn f(auth: tower_oidc_auth::AuthLayer) {
    /// use tower_oidc_auth::LoginOptions;
    /// let pick = auth.login_url(LoginOptions::new().prompt("select_account"));
    /// let acme = auth.login_url(
    ///     LoginOptions::new().prompt("select_account").organization_id("org_1233434"),
    /// );
    /// # let _ = (pick, acme);
    /// # }
    /// ```
    #[must_use]
    pub fn login_url(&self, options: crate::LoginOptions) -> String {
        options.to_sealed_path(&self.shared.cookies, &self.shared.settings.login_path)
    }

    /// Like [`require`](Self::require), and the user must have signed in at most `max_age`
    /// ago (the `auth_time` claim, on the layer's clock, with its leeway). A session without
    /// `auth_time` counts as not recent. Bearer requests are judged by the access token's
    /// `auth_time`.
    ///
    /// Failing, a browser navigation is redirected to a login that asks the provider for
    /// `max_age` and returns to the same page (the callback then refuses a sign-in whose
    /// `auth_time` is older or missing); an API gets 401 with
    /// `WWW-Authenticate: Bearer error="insufficient_user_authentication", error_description="...", max_age=N`
    /// (RFC 9470); gRPC gets `UNAUTHENTICATED`. Without a session it answers as `require()`.
    ///
    /// The step-up login sends `max_age` and no `prompt`: a provider whose own sign-in is older
    /// than `max_age` must authenticate the user again (OpenID Connect Core 3.1.2.1), and one
    /// whose sign-in is recent need not ask twice. A provider that ignores `max_age` gets its
    /// sign-in refused at the callback (an error page, not a loop).
    ///
    /// ```no_run
    /// # fn f(auth: tower_oidc_auth::AuthLayer) {
    /// use std::time::Duration;
    /// use axum::{routing::post, Router};
    /// let billing: Router = Router::new()
    ///     .route("/billing/card", post(|| async { "updated" }))
    ///     .route_layer(auth.require_recent_login(Duration::from_secs(300)))
    ///     .layer(auth);
    /// # }
    /// ```
    #[must_use]
    pub fn require_recent_login(&self, max_age: std::time::Duration) -> RequireAuthLayer {
        RequireAuthLayer::step_up(
            self.shared.clone(),
            crate::routes::StepUp {
                max_age: Some(max_age.as_secs()),
                acr_values: None,
            },
        )
    }

    /// Like [`require`](Self::require), and the sign-in's `acr` claim must be one of
    /// `acr_values` (space-separated, as the provider names its authentication context
    /// classes). Bearer requests are judged by the access token's `acr`.
    ///
    /// Failing, a browser navigation is redirected to a login that asks the provider for these
    /// `acr_values` and returns to the same page (the callback then refuses a sign-in whose
    /// `acr` is not among them); an API gets 401 with
    /// `WWW-Authenticate: Bearer error="insufficient_user_authentication", error_description="...", acr_values="..."`
    /// (RFC 9470); gRPC gets `UNAUTHENTICATED`. Without a session it answers as `require()`.
    ///
    /// ```no_run
    /// # fn f(auth: tower_oidc_auth::AuthLayer) {
    /// use axum::{routing::get, Router};
    /// let keys: Router = Router::new()
    ///     .route("/api-keys", get(|| async { "keys" }))
    ///     .route_layer(auth.require_acr("mfa"))
    ///     .layer(auth);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `acr_values` is blank, longer than 512 bytes or has control characters: the login
    /// could not ask for it, and the guard would send the user to sign in again and again.
    #[must_use]
    pub fn require_acr(&self, acr_values: impl Into<String>) -> RequireAuthLayer {
        let acr_values = acr_values.into().trim().to_owned();
        assert!(
            !acr_values.is_empty()
                && acr_values.len() <= 512
                && !acr_values.chars().any(char::is_control),
            "require_acr: acr_values must be non-blank, at most 512 bytes, without control \
             characters"
        );
        RequireAuthLayer::step_up(
            self.shared.clone(),
            crate::routes::StepUp {
                max_age: None,
                acr_values: Some(acr_values),
            },
        )
    }

    /// The sessions of the user of `claims`, oldest first: when each began, was last seen, its
    /// browser, and which one is this request's (store mode,
    /// [`session_store`](AuthLayerBuilder::session_store)). For a "your devices" page.
    ///
    /// ```no_run
    /// use axum::{extract::State, Json};
    /// use tower_oidc_auth::{session_store::SessionInfo, AuthLayer, Claims};
    ///
    /// async fn my_sessions(State(auth): State<AuthLayer>, claims: Claims) -> Json<Vec<SessionInfo>> {
    ///     Json(auth.sessions_of(&claims).await.unwrap_or_default())
    /// }
    /// ```
    ///
    /// An error without a store, when the store fails, or for claims another layer verified.
    pub async fn sessions_of(
        &self,
        claims: &crate::Claims,
    ) -> Result<Vec<crate::session_store::SessionInfo>, crate::session_store::SessionStoreError>
    {
        crate::session::stored::sessions_of(&self.shared, claims).await
    }

    /// Ends the session of the user of `claims` that `handle` names
    /// ([`SessionInfo::handle`](crate::session_store::SessionInfo::handle)): "sign out that
    /// device". Only the user's own sessions can be named; whether there was one. The session
    /// ends on every instance sharing the revocation store at once.
    pub async fn end_session(
        &self,
        claims: &crate::Claims,
        handle: &str,
    ) -> Result<bool, crate::session_store::SessionStoreError> {
        crate::session::stored::end_session(&self.shared, claims, handle).await
    }

    /// Ends every session of the user of `claims` except this request's: "sign out of my other
    /// devices". How many were ended.
    pub async fn end_other_sessions(
        &self,
        claims: &crate::Claims,
    ) -> Result<usize, crate::session_store::SessionStoreError> {
        crate::session::stored::end_other_sessions(&self.shared, claims).await
    }

    /// The name of the session cookie (a session too large for one cookie continues in
    /// `<name>.1`, `<name>.2`, ...): for a CSRF or cache middleware that must know it.
    #[must_use]
    pub fn session_cookie_name(&self) -> &str {
        &self.shared.cookies.session.name
    }

    /// The logout route (default `/auth/logout`).
    #[must_use]
    pub fn logout_path(&self) -> &str {
        &self.shared.settings.logout_path
    }

    /// The back-channel logout route (default `/auth/backchannel-logout`): register
    /// `<app origin><this path>` as the client's back-channel logout URI at the provider.
    #[must_use]
    pub fn backchannel_logout_path(&self) -> &str {
        &self.shared.settings.backchannel_path
    }

    /// Entries currently held by the layer's bounded caches (for metrics and soak tests).
    #[must_use]
    pub fn cache_stats(&self) -> CacheStats {
        let s = &self.shared;
        CacheStats {
            verified_tokens: s.verifier.cache_len(),
            sessions: s.sessions.len(),
            logout_token_ids: s.seen_jti.len(),
            signature_memo: s.verifier.memo_len(),
        }
    }

    /// The revocation store in use.
    #[must_use]
    pub fn revocation_store(&self) -> &Arc<dyn RevocationStore> {
        &self.shared.revocations
    }

    /// The callback route: the path of the redirect URL.
    #[must_use]
    pub fn callback_path(&self) -> &str {
        &self.shared.settings.callback_path
    }

    /// The provider's metadata, as discovered.
    #[must_use]
    pub fn provider_metadata(&self) -> &ProviderMetadata {
        &self.shared.meta
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService::new(inner, self.shared.clone())
    }
}
