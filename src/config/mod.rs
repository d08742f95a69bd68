//! Configuration: the builder ([`AuthLayerBuilder`]) and its secure defaults. Loading from the
//! environment is in `env`, the errors in `error`, the checks that turn a builder into the
//! layer's settings in `resolve`.

pub(crate) mod checks;
mod client_env;
mod env;
pub(crate) mod error;
mod hooks;
mod lifetime;
pub(crate) mod m2m;
mod reach;
mod resolve;
#[cfg(test)]
mod tests;
mod tokens;

pub(crate) use checks::{is_loopback_http, normalize_path};
pub use error::ConfigError;
pub use m2m::M2mClients;
pub use tokens::Algorithm;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm as JwtAlgorithm;

use crate::clock::{SharedClock, SystemClock};
use crate::provider::Provider;
use crate::refresh::RefreshCoordinator;
use crate::revocation::RevocationStore;
use crate::secret::Secret;
use crate::state::ApproveParam;

/// Default capacity of the verified-session cache (see
/// [`AuthLayerBuilder::session_cache_capacity`]).
const DEFAULT_SESSION_CACHE: usize = 100_000;

/// The ID-token claims a session keeps unless [`AuthLayerBuilder::session_claims`] says otherwise
/// (`sub`, `iss`, `sid`, `auth_time` and `acr` are always kept): the standard profile claims of
/// OpenID Connect Core 5.1 and Scalekit's organization, roles and permissions. Anything else the
/// provider puts in the ID token (group lists, custom attributes) is left out, so the session
/// stays small.
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
/// [`AuthLayerBuilder::from_env`], finished by [`AuthLayerBuilder::build`].
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
///     .cookie_keys_from_env()? // AUTH_COOKIE_KEY: `openssl rand -base64 64`
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct AuthLayerBuilder {
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
    pub(crate) algorithms: Vec<JwtAlgorithm>,
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
    pub(crate) session_store: Option<Arc<dyn crate::session_store::SessionStore>>,
    /// A Redis URL from `AUTH_SESSION_STORE`, connected at build.
    pub(crate) session_store_url: Option<crate::Secret>,
    pub(crate) revocation_ttl: Duration,
    pub(crate) backchannel_path: Option<String>,
    pub(crate) logout_token_max_age: Duration,
    pub(crate) webhook_secret: Option<Secret>,
    pub(crate) webhook_handlers: Vec<crate::webhook::WebhookHandler>,
    pub(crate) bearer: bool,
    pub(crate) explain_refusals: bool,
    pub(crate) access_token_typ: Option<String>,
    pub(crate) approve_param: Option<ApproveParam>,
    pub(crate) client_ip: Option<crate::state::ClientIp>,
    pub(crate) clock: SharedClock,
    pub(crate) session_claims: Vec<String>,
    pub(crate) responses: Option<Arc<dyn crate::responses::Responses>>,
    pub(crate) hooks: crate::hooks::Hooks,
    /// Protected-resource mode (RFC 9728), when set.
    pub(crate) resource_server: Option<crate::resource::ResourceServer>,
    /// Other issuers whose bearer tokens are accepted, each with its audiences.
    pub(crate) trusted_issuers: Vec<(Provider, Vec<String>)>,
    pub(crate) client_auth: crate::provider::ClientAuth,
    pub(crate) assertion_audience: crate::provider::AssertionAudience,
    pub(crate) par: crate::provider::Par,
}

impl fmt::Debug for AuthLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayerBuilder")
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

impl Default for AuthLayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthLayerBuilder {
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
            algorithms: vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256],
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
            session_store: None,
            session_store_url: None,
            revocation_ttl: Duration::from_secs(30 * 24 * 3600),
            backchannel_path: None,
            logout_token_max_age: Duration::from_secs(300),
            webhook_secret: None,
            webhook_handlers: Vec::new(),
            bearer: true,
            explain_refusals: false,
            access_token_typ: None,
            approve_param: None,
            client_ip: None,
            clock: Arc::new(SystemClock),
            session_claims: DEFAULT_SESSION_CLAIMS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            responses: None,
            hooks: crate::hooks::Hooks {
                timeout: crate::hooks::DEFAULT_HOOK_TIMEOUT,
                ..Default::default()
            },
            resource_server: None,
            trusted_issuers: Vec::new(),
            client_auth: crate::provider::ClientAuth::ClientSecret,
            assertion_audience: crate::provider::AssertionAudience::TokenEndpoint,
            par: crate::provider::Par::Auto,
        }
    }

    /// How the app authenticates to the provider (default [`ClientAuth::ClientSecret`]).
    /// [`ClientAuth::PrivateKeyJwt`] signs a short-lived assertion with the app's private key
    /// for the code exchange, refresh, revocation and pushed authorization requests; no client
    /// secret is needed then. The build fails when discovery lists
    /// `token_endpoint_auth_methods_supported` without `private_key_jwt`, or
    /// `token_endpoint_auth_signing_alg_values_supported` without the algorithm.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), tower_oidc_auth::ConfigError> {
    /// use tower_oidc_auth::{AuthLayer, ClientAuth, ClientKey, Provider};
    /// let key = ClientKey::from_pem(std::fs::read("client-key.pem").unwrap())?;
    /// let auth = AuthLayer::builder()
    ///     .provider(Provider::discover("https://accounts.example.com"))
    ///     .client_id("my-app")
    ///     .client_auth(ClientAuth::private_key_jwt(key))
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .cookie_keys_from_env()?
    ///     .build()
    ///     .await?;
    /// # let _ = auth; Ok(()) }
    /// ```
    ///
    /// [`ClientAuth::ClientSecret`]: crate::ClientAuth::ClientSecret
    /// [`ClientAuth::PrivateKeyJwt`]: crate::ClientAuth::PrivateKeyJwt
    pub fn client_auth(mut self, auth: crate::provider::ClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// The `aud` of `private_key_jwt` assertions (default the token endpoint; some providers
    /// want the issuer).
    pub fn client_assertion_audience(mut self, aud: crate::provider::AssertionAudience) -> Self {
        self.assertion_audience = aud;
        self
    }

    /// Pushed authorization requests (RFC 9126; default [`Par::Auto`]: used when discovery
    /// lists a `pushed_authorization_request_endpoint`). With PAR the login route posts the
    /// authorization parameters to the provider, authenticated like the token endpoint, and
    /// sends the browser only `client_id` and `request_uri`.
    ///
    /// ```
    /// use tower_oidc_auth::{AuthLayer, Par};
    /// let builder = AuthLayer::builder().pushed_authorization_requests(Par::Required);
    /// # let _ = builder;
    /// ```
    ///
    /// [`Par::Auto`]: crate::Par::Auto
    pub fn pushed_authorization_requests(mut self, par: crate::provider::Par) -> Self {
        self.par = par;
        self
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
    /// digits, `_` and `-` only. The layer adds the prefixes (`__Host-`, ...) and suffixes.
    pub fn cookie_name_prefix(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = Some(name.into());
        self
    }

    /// The former name of [`cookie_name_prefix`](Self::cookie_name_prefix).
    #[deprecated(note = "renamed to `cookie_name_prefix`: it sets only a part of each name")]
    pub fn cookie_name(self, name: impl Into<String>) -> Self {
        self.cookie_name_prefix(name)
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

    /// Checks every setting without contacting the provider: what [`build`](Self::build) does
    /// first. An app can call it at start-up, or in a unit test of its configuration.
    ///
    /// ```
    /// use tower_oidc_auth::{AuthLayer, ConfigError, Provider};
    /// let builder = AuthLayer::builder()
    ///     .provider(Provider::scalekit("https://yourenv.scalekit.com"))
    ///     .client_id("skc_123")
    ///     .client_secret("secret")
    ///     .redirect_url("http://app.example.com/auth/callback") // http, not loopback
    ///     .cookie_key(tower_oidc_auth::testing::cookie_key(1)); // in tests only
    /// let error = builder.validate().unwrap_err();
    /// assert!(matches!(error, ConfigError::InvalidUrl { what: "redirect_url", .. }));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        resolve::validate(self.clone()).map(drop)
    }

    /// Checks every setting ([`validate`](Self::validate)), then fetches discovery (if used)
    /// and the provider's keys.
    pub async fn build(self) -> Result<crate::AuthLayer, ConfigError> {
        resolve::build(self).await
    }

    /// Renders the answers the layer makes itself (the unauthenticated and forbidden answers,
    /// the sign-in error pages, the unavailable answer, the invalid-token answer and the
    /// confirmation pages), to restyle or translate them. Default:
    /// [`DefaultResponses`](crate::responses::DefaultResponses). Whatever the hook returns, the
    /// layer keeps its cookies, `no-store` and the other rules listed on
    /// [`Responses`](crate::responses::Responses); see [`responses`](crate::responses) for an
    /// example.
    pub fn responses(mut self, responses: impl crate::responses::Responses) -> Self {
        self.responses = Some(Arc::new(responses));
        self
    }
}
