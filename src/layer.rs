//! `AuthLayer`: configuration and shared state behind one `Arc`.

use std::fmt;
use std::sync::Arc;

use cookie::Key;
use tower_layer::Layer;

use crate::clock::SharedClock;
use crate::config::{normalize_path, AuthConfig, ConfigError};
use crate::cookies::{app_part, CookieCodec};
use crate::provider::{ClientAuthMethod, HttpClient, Jwks, ProviderMetadata, TokenClient};
use crate::refresh::{LocalRefreshCoordinator, RefreshCoordinator};
use crate::require::{Guard, RequireAuthLayer};
use crate::revocation::{MemoryRevocationStore, RevocationStore};
use crate::service::AuthService;
use crate::verify::{Expectations, Verifier};

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

/// Resolved settings.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) client_id: String,
    pub(crate) redirect_url: String,
    pub(crate) login_path: String,
    pub(crate) callback_path: String,
    pub(crate) logout_path: String,
    pub(crate) post_logout_url: String,
    pub(crate) scope: String,
    pub(crate) authorize_params: Vec<(String, String)>,
    pub(crate) max_login_attempts: usize,
    pub(crate) login_timeout: i64,
    pub(crate) session_max_age: i64,
    /// Seconds without a request after which a session ends (`None`: off).
    pub(crate) session_idle_timeout: Option<i64>,
    /// How long logout waits for the provider's token revocation.
    pub(crate) token_revocation_timeout: std::time::Duration,
    /// The path browsers return to by default after login.
    pub(crate) default_return: String,
    pub(crate) refresh_margin: i64,
    pub(crate) backchannel_path: String,
    pub(crate) revocation_ttl: std::time::Duration,
    pub(crate) logout_token_max_age: i64,
    pub(crate) refresh_timeout: std::time::Duration,
    pub(crate) webhook_path: String,
    /// The webhook route's state, when a webhook secret is configured.
    pub(crate) webhooks: Option<crate::webhook::Webhooks>,
    pub(crate) bearer: bool,
    /// The app's origin (from the redirect URL), for judging where requests come from.
    pub(crate) origin: String,
    /// The app's approval of pass-through authorization parameters.
    pub(crate) approve_param: Option<crate::config::ApproveParam>,
    /// The ID-token claims the session keeps (besides `sub`, `iss`, `sid`).
    pub(crate) session_claims: Vec<String>,
}

impl Settings {
    /// How long to remember a revocation that ends sessions which began no later than `begun`:
    /// until the last of them reaches its absolute lifetime (`begun + session_max_age`, plus a
    /// margin for clock skew), so a revoked session never outlives its record; and at least the
    /// configured `revocation_ttl`.
    pub(crate) fn revocation_lifetime(&self, begun: i64, now: i64) -> std::time::Duration {
        /// Seconds beyond the session's end, for clocks that disagree by a little.
        const MARGIN: i64 = 300;
        let remaining = begun
            .saturating_add(self.session_max_age)
            .saturating_add(MARGIN)
            .saturating_sub(now);
        let seconds = remaining.max(secs(self.revocation_ttl)).max(1);
        std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(u64::MAX))
    }
}

/// Everything shared by clones of the layer and its services.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) meta: ProviderMetadata,
    pub(crate) token: TokenClient,
    pub(crate) verifier: Verifier,
    pub(crate) cookies: CookieCodec,
    pub(crate) coordinator: Arc<dyn RefreshCoordinator>,
    pub(crate) revocations: Arc<dyn RevocationStore>,
    /// Logout-token `jti`s seen, with when: replays are refused.
    pub(crate) seen_jti: quick_cache::sync::Cache<String, i64>,
    /// Verified sessions, by a digest of their sealed cookie (see `session_cache`).
    pub(crate) sessions: crate::session_cache::SessionCache,
    pub(crate) clock: SharedClock,
}

impl AuthLayer {
    /// A configuration builder with secure defaults; finish it with
    /// [`build().await`](AuthConfig::build).
    pub fn builder() -> AuthConfig {
        AuthConfig::new()
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

    /// The login route (default `/auth/login`).
    #[must_use]
    pub fn login_path(&self) -> &str {
        &self.shared.settings.login_path
    }

    /// A link to the login route with these options: the `/auth/login?...` path (under the
    /// configured base path), form-urlencoded, for an `<a href>` on the app's own pages.
    ///
    /// The route honours the options only when the link is followed from the app itself
    /// (same-origin), so a link on another site cannot choose the organization or connection.
    ///
    /// ```no_run
    /// # fn f(auth: tower_oidc_auth::AuthLayer) {
    /// use tower_oidc_auth::LoginOptions;
    /// // Sign in through an organization's SSO connection, then land on /settings.
    /// let sso = auth.login_url(LoginOptions::new().organization_id("org_123").return_to("/settings"));
    /// assert_eq!(sso, "/auth/login?organization_id=org_123&return_to=%2Fsettings");
    /// // Organization switching: the provider lets the user pick another organization.
    /// let switch = auth.login_url(LoginOptions::new().prompt("select_account"));
    /// assert_eq!(switch, "/auth/login?prompt=select_account");
    /// # }
    /// ```
    #[must_use]
    pub fn login_url(&self, options: crate::LoginOptions) -> String {
        options.to_path(&self.shared.settings.login_path)
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

pub(crate) async fn build(cfg: AuthConfig) -> Result<AuthLayer, ConfigError> {
    let provider = cfg
        .provider
        .clone()
        .ok_or(ConfigError::Missing("provider"))?;
    let client_id = cfg
        .client_id
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or(ConfigError::Missing("client_id"))?;
    let client_secret = cfg
        .client_secret
        .clone()
        .filter(|s| !s.expose().is_empty())
        .ok_or(ConfigError::Missing("client_secret"))?;
    let redirect_raw = cfg
        .redirect_url
        .clone()
        .ok_or(ConfigError::Missing("redirect_url"))?;
    let redirect = url::Url::parse(&redirect_raw).map_err(|e| ConfigError::InvalidUrl {
        what: "redirect_url",
        value: redirect_raw.clone(),
        reason: e.to_string(),
    })?;
    let loopback_http = crate::config::is_loopback_http(&redirect);
    if redirect.scheme() != "https" && !loopback_http {
        return Err(ConfigError::InvalidUrl {
            what: "redirect_url",
            value: redirect_raw,
            reason: "must be https (http is accepted only for 127.0.0.1, localhost and [::1])"
                .into(),
        });
    }
    if redirect.fragment().is_some() || redirect.query().is_some() {
        return Err(ConfigError::InvalidUrl {
            what: "redirect_url",
            value: redirect_raw,
            reason: "must not have a query or fragment".into(),
        });
    }
    if loopback_http {
        tracing::warn!(
            redirect_url = %redirect,
            "plain http on loopback: cookies are set without Secure and without __Host- prefixes; \
             use https everywhere else"
        );
    }
    if cfg.cookie_keys.is_empty() {
        return Err(ConfigError::Missing("cookie_key"));
    }
    let mut keys = Vec::with_capacity(cfg.cookie_keys.len());
    for (i, k) in cfg.cookie_keys.iter().enumerate() {
        let key = Key::try_from(k.as_slice()).map_err(|_| {
            ConfigError::CookieKey(format!(
                "key {} has {} bytes; at least 64 random bytes are needed",
                i + 1,
                k.len()
            ))
        })?;
        keys.push(key);
    }
    let webhooks = match (&cfg.webhook_secret, cfg.webhook_handlers.is_empty()) {
        (Some(secret), _) => Some(crate::webhook::Webhooks::new(
            crate::webhook::WebhookSecret::parse(secret.expose()).map_err(|_| {
                ConfigError::Invalid {
                    what: "webhook_secret",
                    reason: "expected whsec_ followed by the base64 of at least 16 bytes, as the \
                             Scalekit dashboard shows it (SCALEKIT_WEBHOOK_SECRET)"
                        .into(),
                }
            })?,
            cfg.webhook_handlers.clone(),
        )),
        (None, true) => None,
        (None, false) => {
            return Err(ConfigError::Invalid {
                what: "webhook_secret",
                reason: "on_webhook needs a webhook secret to verify deliveries".into(),
            })
        }
    };
    let base_path = normalize_path("base_path", &cfg.base_path)?;
    let session_path = normalize_path("session_path", &cfg.session_path)?;
    let callback_path = normalize_path("redirect_url path", redirect.path())?;
    let join = |p: &str| {
        if base_path == "/" {
            format!("/{p}")
        } else {
            format!("{base_path}/{p}")
        }
    };
    let login_path = join("login");
    let logout_path = join("logout");
    let backchannel_path = match &cfg.backchannel_path {
        Some(p) => normalize_path("backchannel_logout_path", p)?,
        None => join("backchannel-logout"),
    };
    let under = |path: &str| {
        session_path == "/" || path == session_path || path.starts_with(&format!("{session_path}/"))
    };
    if !under(&base_path) || !under(&callback_path) {
        return Err(ConfigError::Invalid {
            what: "session_path",
            reason: format!(
                "the auth routes ({base_path}) and callback ({callback_path}) must be under the \
                 session path {session_path}, so logout and refresh can see the session"
            ),
        });
    }
    let app_part = match &cfg.cookie_name {
        Some(name) => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ConfigError::Invalid {
                    what: "cookie_name",
                    reason: format!("{name:?}: use letters, digits, '_' and '-'"),
                });
            }
            name.clone()
        }
        None => app_part(&client_id),
    };
    let origin = redirect.origin().ascii_serialization();
    let post_logout_url = match &cfg.post_logout_redirect_url {
        Some(u) => {
            url::Url::parse(u).map_err(|e| ConfigError::InvalidUrl {
                what: "post_logout_redirect_url",
                value: u.clone(),
                reason: e.to_string(),
            })?;
            u.clone()
        }
        None => format!(
            "{origin}{}",
            if session_path == "/" {
                "/"
            } else {
                &session_path
            }
        ),
    };
    let mut scopes = cfg.scopes.clone().unwrap_or_else(|| {
        ["openid", "profile", "email", "offline_access"]
            .map(String::from)
            .to_vec()
    });
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    if cfg.algorithms.is_empty() {
        return Err(ConfigError::Invalid {
            what: "algorithms",
            reason: "at least one algorithm is needed".into(),
        });
    }
    if let Some(clients) = &cfg.m2m_clients {
        clients.validate()?;
    }
    if cfg.session_max_age.as_secs() == 0 {
        return Err(ConfigError::Invalid {
            what: "session_max_age",
            reason: "must be at least one second".into(),
        });
    }
    if cfg.session_idle_timeout.is_some_and(|d| d.as_secs() == 0) {
        return Err(ConfigError::Invalid {
            what: "session_idle_timeout",
            reason: "must be at least one second".into(),
        });
    }
    if cfg.max_login_attempts == 0 {
        return Err(ConfigError::Invalid {
            what: "max_login_attempts",
            reason: "must be at least 1".into(),
        });
    }

    let http = HttpClient::new(cfg.http_timeout, cfg.max_response_bytes);
    let meta = provider.resolve(&http).await?;
    let jwks = Jwks::new(
        http.clone(),
        meta.jwks_uri.clone(),
        cfg.algorithms.clone(),
        cfg.clock.clone(),
        // At least a second: the rate limit counts whole seconds, and 0 would turn it off.
        secs(cfg.jwks_refetch_interval).max(1),
    );
    jwks.fetch_now().await.map_err(|source| ConfigError::Jwks {
        url: meta.jwks_uri.clone(),
        source,
    })?;
    let verifier = Verifier::new(
        jwks,
        Expectations {
            issuer: meta.issuer.clone(),
            client_id: client_id.clone(),
            audiences: cfg.audiences.clone(),
            leeway: secs(cfg.leeway),
            id_token_max_age: secs(cfg.id_token_max_age),
        },
        cfg.clock.clone(),
        cfg.cache_capacity,
    )
    .with_access_typ(cfg.access_token_typ.as_deref())
    .with_m2m_clients(cfg.m2m_clients.clone());
    let token = TokenClient {
        http,
        endpoint: meta.token_endpoint.clone(),
        client_id: client_id.clone(),
        client_secret,
        method: ClientAuthMethod::choose(&meta, provider.is_scalekit()),
    };
    let cookies = CookieCodec::new(keys, !loopback_http, &app_part, &session_path, &base_path);
    let settings = Settings {
        client_id,
        redirect_url: redirect.to_string(),
        login_path,
        callback_path,
        logout_path,
        post_logout_url,
        scope: scopes.join(" "),
        authorize_params: cfg.authorize_params.clone(),
        max_login_attempts: cfg.max_login_attempts,
        login_timeout: secs(cfg.login_timeout),
        session_max_age: secs(cfg.session_max_age),
        session_idle_timeout: cfg.session_idle_timeout.map(secs),
        token_revocation_timeout: cfg.token_revocation_timeout,
        default_return: session_path.clone(),
        refresh_margin: secs(cfg.refresh_margin),
        backchannel_path,
        revocation_ttl: cfg.revocation_ttl,
        logout_token_max_age: secs(cfg.logout_token_max_age),
        webhook_path: join("webhook"),
        webhooks,
        bearer: cfg.bearer,
        refresh_timeout: cfg.refresh_timeout,
        origin: origin.clone(),
        approve_param: cfg.approve_param.clone(),
        session_claims: cfg.session_claims.clone(),
    };
    let coordinator = match cfg.refresh_coordinator {
        Some(c) => c,
        None => Arc::new(LocalRefreshCoordinator::with_clock(
            cfg.refresh_grace,
            cfg.cache_capacity,
            cfg.clock.clone(),
        )),
    };
    tracing::debug!(issuer = %meta.issuer, "OpenID provider ready");
    Ok(AuthLayer {
        shared: Arc::new(Shared {
            settings,
            meta,
            token,
            verifier,
            cookies,
            coordinator,
            revocations: match cfg.revocation_store {
                Some(store) => store,
                None => Arc::new(MemoryRevocationStore::with_clock(cfg.clock.clone())),
            },
            seen_jti: quick_cache::sync::Cache::new(10_000),
            sessions: crate::session_cache::SessionCache::new(cfg.session_cache_capacity),
            clock: cfg.clock,
        }),
    })
}

/// A configured duration in whole seconds, saturating instead of wrapping.
fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
