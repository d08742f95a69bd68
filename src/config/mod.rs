//! Configuration: the builder ([`AuthConfig`]) and its secure defaults. Loading from the
//! environment is in `env`, the errors in `error`, the checks that turn a builder into the
//! layer's settings in `resolve`.

mod checks;
mod env;
mod error;
mod resolve;
#[cfg(test)]
mod tests;

pub(crate) use checks::{is_loopback_http, normalize_path};
pub use error::ConfigError;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::clock::{Clock, SharedClock, SystemClock};
use crate::provider::Provider;
use crate::refresh::RefreshCoordinator;
use crate::revocation::RevocationStore;
use crate::secret::Secret;

/// The login parameters a caller may pass through `/auth/login?...` to the provider. A
/// `domain_hint` is also sent as `domain` (as Scalekit's SDKs do); `domain` is not accepted on
/// its own.
/// Default capacity of the verified-session cache (see [`AuthConfig::session_cache_capacity`]).
const DEFAULT_SESSION_CACHE: usize = 100_000;

pub(crate) const PASS_THROUGH: &[&str] = &[
    "prompt",
    "login_hint",
    "organization_id",
    "connection_id",
    "domain_hint",
    "provider",
];

/// The ID-token claims a session keeps unless [`AuthConfig::session_claims`] says otherwise
/// (`sub`, `iss` and `sid` are always kept): the standard profile claims of OpenID Connect
/// Core 5.1 and Scalekit's organization, roles and permissions. Anything else the provider puts
/// in the ID token (group lists, custom attributes) is left out, so the session stays small.
pub const DEFAULT_SESSION_CLAIMS: &[&str] = &[
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "picture",
    "locale",
    "zoneinfo",
    "auth_time",
    "acr",
    "amr",
    "oid",
    "roles",
    "permissions",
    "xoid",
    "xuid",
];

/// Everything the layer needs, with secure defaults. Made by [`AuthLayer::builder`] or
/// [`AuthConfig::from_env`], finished by [`AuthConfig::build`].
///
/// [`AuthLayer::builder`]: crate::AuthLayer::builder
///
/// ```no_run
/// # async fn run() -> Result<(), tower_oidc_auth::ConfigError> {
/// use tower_oidc_auth::{AuthLayer, Provider};
/// let auth = AuthLayer::builder()
///     .provider(Provider::scalekit("https://yourenv.scalekit.com"))
///     .client_id("skc_123")
///     .client_secret("secret")
///     .redirect_url("https://app.example.com/auth/callback")
///     .cookie_key([7u8; 64])
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct AuthConfig {
    pub(crate) provider: Option<Provider>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret: Option<Secret>,
    pub(crate) redirect_url: Option<String>,
    pub(crate) cookie_keys: Vec<Vec<u8>>,
    pub(crate) base_path: String,
    pub(crate) session_path: String,
    pub(crate) post_logout_redirect_url: Option<String>,
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) authorize_params: Vec<(String, String)>,
    pub(crate) leeway: Duration,
    pub(crate) id_token_max_age: Duration,
    pub(crate) cookie_name: Option<String>,
    pub(crate) http_timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) jwks_refetch_interval: Duration,
    pub(crate) cache_capacity: usize,
    pub(crate) session_cache_capacity: usize,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) audiences: Vec<String>,
    pub(crate) m2m_clients: Option<M2mClients>,
    pub(crate) max_login_attempts: usize,
    pub(crate) login_timeout: Duration,
    pub(crate) session_max_age: Duration,
    pub(crate) session_idle_timeout: Option<Duration>,
    pub(crate) token_revocation_timeout: Duration,
    pub(crate) refresh_margin: Duration,
    pub(crate) refresh_grace: Duration,
    pub(crate) refresh_timeout: Duration,
    pub(crate) refresh_coordinator: Option<Arc<dyn RefreshCoordinator>>,
    pub(crate) revocation_store: Option<Arc<dyn RevocationStore>>,
    pub(crate) revocation_ttl: Duration,
    pub(crate) backchannel_path: Option<String>,
    pub(crate) logout_token_max_age: Duration,
    pub(crate) webhook_secret: Option<Secret>,
    pub(crate) webhook_handlers: Vec<crate::webhook::WebhookHandler>,
    pub(crate) bearer: bool,
    pub(crate) access_token_typ: Option<String>,
    pub(crate) approve_param: Option<ApproveParam>,
    pub(crate) clock: SharedClock,
    pub(crate) session_claims: Vec<String>,
}

/// The app's approval of a pass-through authorization parameter: `(name, value) -> allowed`.
#[derive(Clone)]
pub(crate) struct ApproveParam(pub(crate) Arc<ApproveFn>);

type ApproveFn = dyn Fn(&str, &str) -> bool + Send + Sync;

impl fmt::Debug for ApproveParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApproveParam(..)")
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("redirect_url", &self.redirect_url)
            .field(
                "cookie_keys",
                &format_args!("[REDACTED; {}]", self.cookie_keys.len()),
            )
            .field("base_path", &self.base_path)
            .field("session_path", &self.session_path)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthConfig {
    /// A configuration with the secure defaults: PKCE S256, nonce, HttpOnly + Secure +
    /// SameSite=Lax cookies, routes under `/auth`, 60 s clock leeway, RS256 and ES256 accepted.
    pub fn new() -> Self {
        Self {
            provider: None,
            client_id: None,
            client_secret: None,
            redirect_url: None,
            cookie_keys: Vec::new(),
            base_path: "/auth".into(),
            session_path: "/".into(),
            post_logout_redirect_url: None,
            scopes: None,
            authorize_params: Vec::new(),
            leeway: Duration::from_secs(60),
            id_token_max_age: Duration::from_secs(600),
            cookie_name: None,
            http_timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
            jwks_refetch_interval: Duration::from_secs(10),
            cache_capacity: 10_000,
            session_cache_capacity: DEFAULT_SESSION_CACHE,
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
            audiences: Vec::new(),
            m2m_clients: None,
            max_login_attempts: 5,
            login_timeout: Duration::from_secs(600),
            session_max_age: Duration::from_secs(7 * 24 * 3600),
            session_idle_timeout: None,
            token_revocation_timeout: Duration::from_secs(2),
            refresh_margin: Duration::from_secs(30),
            refresh_grace: Duration::from_secs(60),
            refresh_timeout: Duration::from_secs(10),
            refresh_coordinator: None,
            revocation_store: None,
            revocation_ttl: Duration::from_secs(30 * 24 * 3600),
            backchannel_path: None,
            logout_token_max_age: Duration::from_secs(300),
            webhook_secret: None,
            webhook_handlers: Vec::new(),
            bearer: true,
            access_token_typ: None,
            approve_param: None,
            clock: Arc::new(SystemClock),
            session_claims: DEFAULT_SESSION_CLAIMS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
        }
    }

    /// The provider.
    pub fn provider(mut self, provider: Provider) -> Self {
        self.provider = Some(provider);
        self
    }

    /// The OAuth client id.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// The OAuth client secret.
    pub fn client_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// The callback URL registered at the provider. Its path is where the layer serves the
    /// callback. `http://` is accepted only for loopback hosts (development), and then cookies
    /// lose the `Secure` flag.
    pub fn redirect_url(mut self, url: impl Into<String>) -> Self {
        self.redirect_url = Some(url.into());
        self
    }

    /// Adds a cookie key: at least 64 random bytes. The first key encrypts; every key decrypts,
    /// so adding a new key first and keeping the old one rotates keys without logging anyone out.
    pub fn cookie_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.cookie_keys.push(key.as_ref().to_vec());
        self
    }

    /// Where the layer serves `login`, `logout` (default `/auth`).
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        self.base_path = path.into();
        self
    }

    /// The path the session cookie is scoped to: the protected app's base path (default `/`).
    pub fn session_path(mut self, path: impl Into<String>) -> Self {
        self.session_path = path.into();
        self
    }

    /// Where the provider sends the browser after logout (default: the app's `/`).
    pub fn post_logout_redirect_url(mut self, url: impl Into<String>) -> Self {
        self.post_logout_redirect_url = Some(url.into());
        self
    }

    /// The scopes to request (default `openid profile email offline_access`). `openid` is
    /// always included.
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// A fixed extra parameter for every authorization request.
    pub fn authorize_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.authorize_params.push((name.into(), value.into()));
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Oldest ID token accepted at login or refresh, by its `iat` (default 10 minutes, plus the
    /// leeway): a provider issues it at the code exchange, so an old one is a replay.
    pub fn id_token_max_age(mut self, age: Duration) -> Self {
        self.id_token_max_age = age;
        self
    }

    /// The app-specific part of cookie names (default derived from the client id). Letters,
    /// digits, `_` and `-` only.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = Some(name.into());
        self
    }

    /// Timeout for each call to the provider (default 10 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Largest provider response read (default 1 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Least time between two JWKS refetches caused by unknown key ids (default 10 s).
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = interval;
        self
    }

    /// Entries in the verified-token cache of bearer tokens (default 10,000, a few KB each). The
    /// signature memo holds ten times as many tokens, at about 50 bytes each, so bearer tokens
    /// beyond this cache cost no signature check when seen again.
    pub fn verified_cache_capacity(mut self, entries: usize) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// Entries in the verified-session cache (default 100,000): signed-in sessions whose next
    /// request costs a digest of the cookie and a lookup instead of opening the cookie and
    /// verifying its token. An entry holds the session's claims and a few times, never a token:
    /// about 1.7 KB for a session with typical claims (more with many roles or permissions), so
    /// the default bounds it near 170 MB; the memory is used only as sessions arrive, and a
    /// session has one entry at most. Every hit
    /// still checks expiry, revocation, the session's lifetime and the verifying key.
    pub fn session_cache_capacity(mut self, entries: usize) -> Self {
        self.session_cache_capacity = entries;
        self
    }

    /// Signature algorithms accepted (default RS256 and ES256). `none` and HMAC are never
    /// accepted, whatever this says.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs.into_iter().collect();
        self
    }

    /// An extra audience accepted in access tokens, besides the client id (repeatable).
    ///
    /// Scalekit's access tokens may name an API audience in `aud` instead of the client id
    /// (`"aud": ["https://api.example.com"]`). A login whose
    /// access token names an audience not accepted here fails with an error page that names it
    /// and this call. [`from_env`](Self::from_env) reads `SCALEKIT_API_AUDIENCE`.
    ///
    /// ```
    /// let config = tower_oidc_auth::AuthConfig::new().audience("https://api.example.com");
    /// # let _ = config;
    /// ```
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// Accepts machine-to-machine (M2M) tokens that name no audience as bearer tokens: tokens
    /// an API client got from this provider with the client-credentials grant (`sub` =
    /// `client_id`, see [`Claims::is_machine`](crate::Claims::is_machine)), from
    /// [`M2mClients::Any`] client of the environment or [`M2mClients::only`] the listed ones.
    /// Default: none.
    ///
    /// Scalekit issues M2M tokens without `aud` unless the API client was registered with an
    /// audience, so no layer can tell on its own that such a token was meant for it: every
    /// client of the environment can get one. This setting says which clients may call.
    ///
    /// - Everything else is still checked: signature by the provider's keys, algorithm, `iss`,
    ///   `exp`/`nbf`/`iat`, no ID-token or logout-token markers.
    /// - An M2M token that does name an audience must name the client id or one configured with
    ///   [`audience`](Self::audience), like any token; this setting does not change that, and
    ///   accepts such a token without it.
    /// - An M2M token is never a user session: the layer refuses it at the callback and in a
    ///   session cookie, whatever this says.
    /// - Authorize each call as usual: `require_scope` reads Scalekit's `scopes` array, and
    ///   `claims.sub` / `claims.client_id` name the client.
    ///
    /// ```
    /// use tower_oidc_auth::{AuthConfig, M2mClients};
    /// let config = AuthConfig::new()
    ///     .accept_m2m_clients(M2mClients::only(["m2morg_68315758685323697"]));
    /// # let _ = config;
    /// ```
    pub fn accept_m2m_clients(mut self, clients: M2mClients) -> Self {
        self.m2m_clients = Some(clients);
        self
    }

    /// Requires access tokens to carry this JOSE header `typ`, for providers that type their
    /// access tokens (RFC 9068: `at+jwt`; `application/at+jwt` matches too). Off by default:
    /// Scalekit's access tokens say `typ: JWT`.
    ///
    /// ```
    /// let config = tower_oidc_auth::AuthConfig::new().access_token_typ("at+jwt");
    /// # let _ = config;
    /// ```
    pub fn access_token_typ(mut self, typ: impl Into<String>) -> Self {
        self.access_token_typ = Some(typ.into());
        self
    }

    /// Approves each pass-through authorization parameter (`organization_id`, `connection_id`,
    /// `domain_hint`, `provider`, `login_hint`, `prompt`) before it is sent to the provider:
    /// `false` drops it, and the login goes ahead without it. Pass-through parameters are
    /// honoured only on same-origin requests in any case (see the crate's security section);
    /// this lets the app also limit which organizations or connections a login may name. It
    /// also judges the `organization_id`, `connection_id` and `login_hint` of a Scalekit
    /// IdP-initiated login token; `domain` follows the decision on `domain_hint`.
    ///
    /// ```
    /// let config = tower_oidc_auth::AuthConfig::new().approve_authorize_param(|name, value| {
    ///     name != "organization_id" || value == "org_123"
    /// });
    /// # let _ = config;
    /// ```
    pub fn approve_authorize_param(
        mut self,
        approve: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.approve_param = Some(ApproveParam(Arc::new(approve)));
        self
    }

    /// The ID-token claims the session keeps, besides `sub`, `iss` and `sid` (always kept):
    /// they fill the gaps of the access token's claims in [`Claims`](crate::Claims), and are
    /// all there is when the access token is opaque. Replaces the default,
    /// [`DEFAULT_SESSION_CLAIMS`] (the standard profile claims and Scalekit's organization,
    /// roles and permissions).
    ///
    /// The session lives in cookies, which browsers limit: keep only what the app reads. A
    /// session that would still exceed what the layer reads back (8 cookies of about 3.8 KB)
    /// is refused at login with an error page and a log line naming its size.
    ///
    /// ```
    /// let config = tower_oidc_auth::AuthConfig::new()
    ///     .session_claims(["email", "name", "department"]);
    /// # let _ = config;
    /// ```
    pub fn session_claims<I, T>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.session_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// Most login attempts kept in flight per browser (default 5; the oldest is dropped).
    pub fn max_login_attempts(mut self, n: usize) -> Self {
        self.max_login_attempts = n;
        self
    }

    /// How long a started login may take (default 10 minutes).
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        self.login_timeout = timeout;
        self
    }

    /// The absolute lifetime of a session, counted from login (default 7 days).
    ///
    /// The server enforces it: the login time sealed in the session is checked on every request
    /// and before every refresh, and past it the session is unauthenticated, its cookies are
    /// cleared and no refresh is attempted. Refreshes do not extend it: re-issued cookies carry
    /// the remaining lifetime as `Max-Age`, which is only a hint to the browser. At least one
    /// second; `from_env` reads `AUTH_SESSION_MAX_AGE`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = tower_oidc_auth::AuthLayer::builder()
    ///     .session_max_age(Duration::from_secs(8 * 3600));
    /// # let _ = config;
    /// ```
    pub fn session_max_age(mut self, age: Duration) -> Self {
        self.session_max_age = age;
        self
    }

    /// Ends a session that has not been used for this long (default: off).
    ///
    /// The time of the last request is sealed in the session cookie. To keep `Set-Cookie`
    /// churn bounded it is rewritten at most once per tenth of the timeout (at most every
    /// 5 minutes), so a session may end up to that much earlier than the timeout after its last
    /// request. Past it, the session is unauthenticated, its cookies are cleared and no refresh
    /// is attempted. At least one second; `from_env` reads `AUTH_SESSION_IDLE_TIMEOUT`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = tower_oidc_auth::AuthLayer::builder()
    ///     .session_idle_timeout(Duration::from_secs(30 * 60));
    /// # let _ = config;
    /// ```
    pub fn session_idle_timeout(mut self, timeout: Duration) -> Self {
        self.session_idle_timeout = Some(timeout);
        self
    }

    /// How long logout waits for the provider to revoke the refresh token (RFC 7009), when its
    /// discovery document lists a `revocation_endpoint` (default 2 s). The revocation is best
    /// effort: a failure or timeout is logged, and the logout redirect is never delayed by more
    /// than this.
    pub fn token_revocation_timeout(mut self, timeout: Duration) -> Self {
        self.token_revocation_timeout = timeout;
        self
    }

    /// Refresh this long before the access token expires (default 30 s; never more than half
    /// the token's lifetime).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// How long a refresh result is kept for requests that still present the old refresh token
    /// (default 60 s).
    pub fn refresh_grace(mut self, grace: Duration) -> Self {
        self.refresh_grace = grace;
        self
    }

    /// Time bound for a whole refresh, token call and verification included (default 10 s).
    pub fn refresh_timeout(mut self, timeout: Duration) -> Self {
        self.refresh_timeout = timeout;
        self
    }

    /// Coordinates refreshes across instances (default: within this process, a
    /// [`LocalRefreshCoordinator`](crate::LocalRefreshCoordinator) with the grace window above).
    pub fn refresh_coordinator(mut self, coordinator: impl RefreshCoordinator) -> Self {
        self.refresh_coordinator = Some(Arc::new(coordinator));
        self
    }

    /// Where revoked sessions are remembered (default: in memory, a
    /// [`MemoryRevocationStore`](crate::MemoryRevocationStore)). Several instances need a
    /// shared store such as `RedisRevocationStore`.
    pub fn revocation_store(mut self, store: impl RevocationStore) -> Self {
        self.revocation_store = Some(Arc::new(store));
        self
    }

    /// The least time a revocation is remembered (default 30 days).
    ///
    /// A revocation is remembered until every session it ends has reached its absolute
    /// lifetime (the session's login time plus [`session_max_age`](Self::session_max_age), and
    /// a few minutes' margin for clock skew), so a revoked session never outlives its record;
    /// and at least this long. Keep it at least the refresh token's lifetime.
    pub fn revocation_ttl(mut self, ttl: Duration) -> Self {
        self.revocation_ttl = ttl;
        self
    }

    /// The back-channel logout route (default `<base_path>/backchannel-logout`).
    pub fn backchannel_logout_path(mut self, path: impl Into<String>) -> Self {
        self.backchannel_path = Some(path.into());
        self
    }

    /// Oldest logout token accepted, by its `iat` (default 5 minutes, plus the leeway); `jti`s
    /// are remembered this long to refuse replays.
    pub fn logout_token_max_age(mut self, age: Duration) -> Self {
        self.logout_token_max_age = age;
        self
    }

    /// Enables `POST <base_path>/webhook` for Scalekit's webhooks, verified with this
    /// Standard Webhooks secret (`whsec_...`, from the Scalekit dashboard's webhook endpoint;
    /// `from_env` reads `SCALEKIT_WEBHOOK_SECRET`). A malformed secret fails
    /// [`build`](Self::build).
    ///
    /// The route checks the signature, the timestamp (±5 minutes) and deduplicates deliveries by
    /// `webhook-id`. A `user.logout` event ends the one session it names
    /// (`data.user_session.session_id`, the `sid` of that session's tokens), on this instance and,
    /// with a shared revocation store, on every instance. Other events go to the handlers of
    /// [`on_webhook`](Self::on_webhook), and are acknowledged either way.
    pub fn webhook_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.webhook_secret = Some(secret.into());
        self
    }

    /// Runs `handler` for every verified webhook event (after the layer's own handling of
    /// `user.logout`). It gets signature checks, the timestamp window, deduplication by
    /// `webhook-id` and the body limit for free; it needs [`webhook_secret`](Self::webhook_secret).
    ///
    /// The handler returns `()` or `Result<(), E>`. An error (or a panic) answers 500, so that
    /// Scalekit retries the delivery (for about 22 minutes), and the delivery is not remembered
    /// as done. Scalekit expects an answer within 10 seconds: hand long work to a queue. Several
    /// handlers run in the order they were added.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), tower_oidc_auth::ConfigError> {
    /// use tower_oidc_auth::{AuthLayer, WebhookEvent};
    /// let auth = AuthLayer::builder()
    ///     // .provider(..).client_id(..) and the rest
    ///     .webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    ///     .on_webhook(|event: WebhookEvent| async move {
    ///         if event.kind == "organization.created" {
    ///             println!("new organization {:?}", event.organization_id);
    ///         }
    ///     })
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn on_webhook<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(crate::WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future + Send + 'static,
        Fut::Output: crate::WebhookOutcome,
    {
        self.webhook_handlers
            .push(crate::webhook::WebhookHandler::new(handler));
        self
    }

    /// Accept `Authorization: Bearer <jwt>` on any request, validated like the cookie access
    /// token (default on). A bearer request never redirects, refreshes or sets cookies; an
    /// invalid token gets 401 `invalid_token` (gRPC: UNAUTHENTICATED).
    pub fn bearer(mut self, on: bool) -> Self {
        self.bearer = on;
        self
    }

    /// The clock (default the system clock). Tests inject a [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Validates the configuration, fetches discovery (if used) and the provider's keys.
    pub async fn build(self) -> Result<crate::AuthLayer, ConfigError> {
        resolve::build(self).await
    }
}

/// Which machine-to-machine clients may call with tokens that name no audience: the argument of
/// [`AuthConfig::accept_m2m_clients`].
///
/// One setting with two shapes, rather than two builder methods, so "any client" and "these
/// clients" cannot be combined into something in between, and the choice reads as one value
/// (for example loaded from configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum M2mClients {
    /// Any client of the provider's environment (tokens of this issuer only).
    Any,
    /// Only these client ids (Scalekit: `m2morg_...`). Build it with [`M2mClients::only`]; an
    /// empty list, or an empty id, is a [`ConfigError`] at `build()`.
    Only(Vec<String>),
}

impl M2mClients {
    /// Only these client ids.
    ///
    /// ```
    /// let clients = tower_oidc_auth::M2mClients::only(["m2morg_68315758685323697"]);
    /// # let _ = clients;
    /// ```
    pub fn only<I, T>(ids: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self::Only(ids.into_iter().map(Into::into).collect())
    }

    /// Whether tokens of this client are accepted.
    pub(crate) fn accepts(&self, client_id: &str) -> bool {
        match self {
            M2mClients::Any => true,
            M2mClients::Only(ids) => ids.iter().any(|id| id == client_id),
        }
    }

    /// A list with no client, or with an empty id, is a mistake (an unset variable, a stray
    /// comma), not a way to say "none".
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match self {
            M2mClients::Only(ids) if ids.is_empty() => Err(ConfigError::Invalid {
                what: "accept_m2m_clients",
                reason: "the list of client ids is empty; leave the setting out to accept no \
                         M2M client"
                    .into(),
            }),
            M2mClients::Only(ids) if ids.iter().any(|id| id.trim().is_empty()) => {
                Err(ConfigError::Invalid {
                    what: "accept_m2m_clients",
                    reason: "a client id is empty".into(),
                })
            }
            _ => Ok(()),
        }
    }
}
