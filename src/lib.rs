//! OpenID Connect login for tower services: axum, tonic, plain hyper.
//!
//! An [`AuthLayer`] wraps an application. It serves the login, callback and logout routes
//! itself (Authorization Code flow with a confidential client, PKCE S256, state and nonce), keeps
//! the tokens in encrypted, HttpOnly cookies scoped to the narrowest path that works, verifies
//! every access token against the provider's published keys (with a bounded cache so a repeat
//! request costs no cryptography), and hands verified [`Claims`] to handlers as a request
//! extension and an axum extractor. Browsers get redirects, APIs get 401, gRPC gets
//! `UNAUTHENTICATED`. [Scalekit](Provider::scalekit) is a first-class preset; any OpenID provider
//! works through [discovery](Provider::discover).
//!
//! # Example
//!
//! ```
//! use axum::{routing::get, Json, Router};
//! use tower_oidc_auth::{AuthLayer, Claims, Provider};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = AuthLayer::builder()
//!     .provider(Provider::scalekit("https://yourenv.scalekit.com"))
//!     .client_id("skc_...")
//!     .client_secret("...")
//!     .redirect_url("https://app.example.com/auth/callback")
//!     // AUTH_COOKIE_KEY: 64 random bytes in base64 (`openssl rand -base64 64`), the same on
//!     // every instance
//!     .cookie_keys_from_env()?
//!     .build()
//!     .await?; // discovery and the first JWKS fetch: a clear error if unreachable
//!
//! let app: Router = Router::new()
//!     .route("/me", get(|claims: Claims| async move { Json(claims) }))
//!     .route_layer(auth.require()) // no session: redirect / 401 / gRPC UNAUTHENTICATED
//!     .route("/", get(|claims: Option<Claims>| async move {
//!         claims.map(|c| c.sub.clone()).unwrap_or_default()
//!     }))
//!     .layer(auth); // serves /auth/login, /auth/callback, /auth/logout
//! # let _ = app; Ok(()) }
//! ```
//!
//! Driving it in a test, with the in-process provider from the `testing` feature:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{body::Body, routing::get, Router};
//! use http::{header, Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_oidc_auth::testing::{TestProvider, TestUser};
//! use tower_oidc_auth::Claims;
//!
//! let provider = TestProvider::start().await;
//! let auth = provider
//!     .layer_builder("http://127.0.0.1:3000/auth/callback")
//!     .build()
//!     .await
//!     .unwrap();
//! let app = Router::new()
//!     .route("/me", get(|c: Claims| async move { c.sub.clone() }))
//!     .layer(auth.clone());
//!
//! let anonymous = Request::get("/me").body(Body::empty()).unwrap();
//! let resp = app.clone().oneshot(anonymous).await.unwrap();
//! assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
//!
//! let cookie = provider.session_cookie(&auth, &TestUser::new("usr_1"));
//! let signed_in = Request::get("/me").header(header::COOKIE, cookie).body(Body::empty()).unwrap();
//! assert_eq!(app.oneshot(signed_in).await.unwrap().status(), StatusCode::OK);
//! # }
//! ```
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `axum` | yes | `Claims` and `Option<Claims>` extractors, and the guards of [`extract`] |
//! | `redis` | no | [`redis`]: one refresh per session, logouts and server-side sessions, across instances |
//! | `testing` | no | [`testing::TestProvider`], an OpenID provider on 127.0.0.1 for tests and demos |
//! | `management` | no | [`management::ManagementClient`], a typed client for Scalekit's Management API |
//! | `tonic` | no | [`ClaimsExt`] and [`AccessTokenExt`] for `tonic::Request` (`request.claims()`, `request.access_token()`) |
//! | `full` | no | all of the above |
//!
//! # Routes
//!
//! | route | what it does |
//! | --- | --- |
//! | `GET /auth/login` | starts a login: state, nonce, PKCE; keeps `return_to`; passes `prompt`, `login_hint`, `organization_id`, `connection_id`, `domain_hint` (also as `domain`), `provider`, `max_age`, `acr_values` to the provider only on same-origin requests, or from any site when sealed in `options` by [`AuthLayer::login_url`]. It is also Scalekit's Initiate Login URL: a verified `idp_initiated_login` token starts a login with its organization, connection and login hint from any site, landing on its `relay_state`; `error` gets an error page |
//! | `GET <redirect_url path>` | the callback: checks state and RFC 9207 `iss`, exchanges the code, verifies the ID token, sets the session |
//! | `GET, POST /auth/logout` | from the app itself (same-origin POST, or the app's own link): clears every cookie, then RP-initiated logout with `id_token_hint`; from anywhere else: a confirmation page whose button POSTs |
//! | `POST /auth/backchannel-logout` | OpenID Connect Back-Channel Logout: a verified logout token (form field `logout_token`) ends the sessions of its `sid` or `sub` on every request after, through the [`revocation`] store ([`AuthLayerBuilder::backchannel_logout_path`] moves it) |
//! | `POST /auth/webhook` | only with [`AuthLayerBuilder::webhook_secret`]: Scalekit's signed webhooks; `user.logout` ends that user's sessions, and [`AuthLayerBuilder::on_webhook`] handlers see every event ([`webhook`]) |
//!
//! Every other request passes to the app: with a valid session or bearer token it carries
//! [`Claims`]; without, it passes anonymous, and [`AuthLayer::require`] or the extractors decide.
//! On public pages, [`AuthLayer::attempt_silent_login`] signs in a browser the provider already
//! knows (single sign-on) without a click, once per visit ([`silent`]).
//! Other methods on the layer's routes get 405 with `Allow`. `/auth` is
//! [`AuthLayerBuilder::base_path`]; the callback is the path of the redirect URL.
//!
//! # Modules
//!
//! The root holds the layer, its builder, the claims and the provider. The rest is grouped as
//! in tower-http, one module per concern: [`require`] (guards on routes), [`silent`] (silent
//! login), [`extract`] (axum extractors and their rejection), [`hooks`] (the access token, and
//! what runs at sign-in, refresh and logout), [`refresh`] (one refresh per session),
//! [`revocation`] (logouts remembered), [`webhook`] (Scalekit's webhooks), [`clock`] (time,
//! injectable in tests), and behind features [`redis`], [`testing`] and [`management`].
//!
//! # Security model
//!
//! - Every cookie is sealed with AES-256-GCM (the `cookie` crate's private jar) under its own
//!   name, so values cannot be read, altered or moved between cookies or apps. A cookie that
//!   does not open counts as absent and is cleared; it never causes an error page.
//! - Cookies are `HttpOnly`, `SameSite=Lax` and `Secure` with `__Host-`/`__Secure-` prefixes;
//!   plain http is accepted only on loopback hosts, for development. The session cookie lives on
//!   the app's path, the ID token on the auth routes' path, each login attempt's transaction
//!   cookie on `/` as a `__Host-` cookie (a sibling subdomain cannot toss one in). Names carry a
//!   part derived from the client id, so two apps on one host (cookies ignore ports) never
//!   clobber each other.
//! - Claims belong to the layer that verified them: a layer removes claims another layer
//!   attached, and its guards accept only its own.
//! - Cross-site requests cannot log the user out (they get a confirmation page) nor choose the
//!   tenant of a login (pass-through parameters need a same-origin request). The exceptions are
//!   Scalekit's IdP-initiated login token, signed by the provider's keys and valid for minutes,
//!   and the options of a link made by [`AuthLayer::login_url`], sealed with the app's cookie
//!   keys (no expiry: they carry only the sign-in the app chose): a forged, expired, altered or
//!   malformed one gets 400 and no redirect. A login that asks for `max_age` or `acr_values`
//!   is refused at the callback unless the ID token's `auth_time` (then required) and `acr`
//!   meet them. A response to which
//!   the layer adds `Set-Cookie` is `Cache-Control: private, no-store` with `Vary: Cookie`.
//! - Tokens are verified with `jsonwebtoken`: the algorithm must be allowed both by the
//!   configuration (default RS256, ES256) and by the JWK's key type; `none` and HMAC never are.
//!   `iss`, `aud`, `exp`, `nbf` and `iat` are checked with a leeway (default 60 s), the ID token's
//!   `nonce` and `azp` at login. An ID token is never accepted as an access token, a JWT-shaped
//!   access token must verify at login (only non-JWT tokens are opaque), and a JOSE `crit`
//!   header is refused. An unknown `kid` refetches the JWKS at most once per interval
//!   (default 10 s); a failed fetch keeps the cached keys.
//! - A bearer token must name this client or a configured audience; machine-to-machine tokens
//!   without `aud` are accepted only from clients the app lists with
//!   [`AuthLayerBuilder::accept_m2m_clients`], and a machine token is never a cookie session.
//! - The verified-token cache is keyed by the whole token, never a short hash, and an entry is
//!   never served after its `exp` or after its key left the JWKS.
//! - `return_to` must be a same-origin path: `//host`, `/\host`, their encoded forms, control
//!   characters and anything over 2 KB fall back to `/`.
//! - Provider failures at login give an error page with a retry link (502, or 504 on timeout),
//!   never a 500; every provider call has a timeout and a response-size limit (1 MiB).
//!
//! # Deployment
//!
//! - Give every instance the same cookie keys (`AUTH_COOKIE_KEY`); rotate by putting a new key
//!   first and keeping the old one until old sessions have expired.
//! - Serve over HTTPS. Behind a reverse proxy, register the public URL as the redirect URL; the
//!   layer only compares request paths, never the Host header.
//! - Register `<app>/auth/callback` as a redirect URL and `<app>/` as a post-logout redirect URL
//!   at the provider.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod access_token;
mod bearer;
mod body;
mod claims;
pub mod clock;
mod config;
mod cookies;
mod error;
#[cfg(feature = "axum")]
pub mod extract;
mod future;
pub mod hooks;
mod layer;
#[cfg(feature = "management")]
pub mod management;
mod provider;
#[cfg(feature = "redis")]
mod redis_store;
pub mod refresh;
pub mod refusal;
pub mod require;
mod resource;
pub mod responses;
mod return_to;
pub mod revocation;
mod routes;
mod same_origin;
mod secret;
mod service;
mod session;
mod session_cache;
pub mod session_store;
pub mod silent;
mod state;
mod step_up;
mod telemetry;
mod token;
mod verify;
pub mod webhook;

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "__private")]
#[doc(hidden)]
pub mod __private;

/// Sharing refresh coordination, revocations and server-side sessions between instances through
/// Redis (feature `redis`).
///
/// Behind a load balancer, a refresh token must still be used once, and a logout on one
/// instance must end the session on all of them. Both stores talk to Redis through one
/// connection manager each; revocations are mirrored in memory, so the request path never
/// waits for Redis.
///
/// [`RedisSessionStore`](crate::redis::RedisSessionStore) is a
/// [`SessionStore`](crate::session_store::SessionStore) shared by every instance (the layer
/// does not use session stores yet).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_oidc_auth::redis::{RedisRefreshCoordinator, RedisRevocationStore};
/// use tower_oidc_auth::{AuthLayer, Provider};
///
/// let url = "redis://127.0.0.1:6379";
/// let auth = AuthLayer::builder()
///     .provider(Provider::scalekit("https://yourenv.scalekit.com"))
///     .client_id("skc_...")
///     .client_secret("...")
///     .redirect_url("https://app.example.com/auth/callback")
///     .cookie_keys_from_env()?
///     .refresh_coordinator(RedisRefreshCoordinator::connect(url).await?)
///     .revocation_store(RedisRevocationStore::connect(url).await?)
///     .build()
///     .await?;
/// # let _ = auth; Ok(()) }
/// ```
#[cfg(feature = "redis")]
pub mod redis {
    pub use crate::redis_store::{
        RedisRefreshCoordinator, RedisRevocationStore, RedisSessionStore,
    };
}

pub use access_token::{AccessToken, AccessTokenExt};
pub use body::AuthBody;
pub use claims::{Claims, ClaimsExt, Forbidden, StandardClaims};
pub use config::{Algorithm, AuthLayerBuilder, ConfigError, M2mClients, DEFAULT_SESSION_CLAIMS};
pub use future::ResponseFuture;
pub use hooks::LoginDecision;
pub use layer::{AuthLayer, CacheStats};
pub use provider::{
    AssertionAudience, ClientAuth, ClientKey, Par, Provider, ProviderError, ProviderMetadata,
    JWT_BEARER_ASSERTION_TYPE,
};
pub use refusal::Refusal;
pub use resource::ResourceServer;
pub use routes::LoginOptions;
pub use secret::Secret;
pub use service::AuthService;

/// The builder's former name.
#[deprecated(note = "renamed to `AuthLayerBuilder` (what `AuthLayer::builder()` returns)")]
pub type AuthConfig = AuthLayerBuilder;

// The crate root's former names, now in their modules: kept so that code written against 0.1
// compiles unchanged.
#[doc(hidden)]
pub use clock::{Clock, ManualClock, SystemClock};
// Nothing public takes or returns it (the method is chosen from the provider's metadata).
#[cfg(feature = "axum")]
#[doc(hidden)]
pub use extract::{ClaimsRejection, PermissionName, RequirePermission, RequireRole, RoleName};
#[doc(hidden)]
pub use provider::ClientAuthMethod;
#[cfg(feature = "redis")]
#[doc(hidden)]
pub use redis_store::{RedisRefreshCoordinator, RedisRevocationStore};
#[doc(hidden)]
pub use refresh::{
    LocalRefreshCoordinator, RefreshCoordinator, RefreshError, RefreshKey, RefreshTask,
    SealedTokens,
};
#[doc(hidden)]
pub use require::{RequireAuth, RequireAuthLayer, RequireFuture};
#[doc(hidden)]
pub use revocation::{MemoryRevocationStore, RevocationError, RevocationKey, RevocationStore};
#[doc(hidden)]
pub use silent::{SilentLogin, SilentLoginFuture, SilentLoginLayer};
#[doc(hidden)]
pub use webhook::{
    sign_webhook, verify_webhook, verify_webhook_at, WebhookError, WebhookEvent,
    WebhookHandlerError, WebhookOutcome, MAX_WEBHOOK_ID, MAX_WEBHOOK_SIGNATURES,
    MAX_WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TOLERANCE_SECS,
};
