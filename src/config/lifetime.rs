//! Settings of logins, session lifetimes, refresh, revocation, logout and webhooks.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::refresh::RefreshCoordinator;
use crate::revocation::RevocationStore;
use crate::secret::Secret;

use super::AuthLayerBuilder;

impl AuthLayerBuilder {
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

    /// Coordinates refreshes across instances (default: the session store's, if it shares
    /// one, see [`SessionStore::refresh_coordinator`](crate::session_store::SessionStore::refresh_coordinator);
    /// else within this process, a
    /// [`LocalRefreshCoordinator`](crate::refresh::LocalRefreshCoordinator) with the grace window above).
    pub fn refresh_coordinator(mut self, coordinator: impl RefreshCoordinator) -> Self {
        self.refresh_coordinator = Some(Arc::new(coordinator));
        self
    }

    /// Where revoked sessions are remembered (default: in memory, a
    /// [`MemoryRevocationStore`](crate::revocation::MemoryRevocationStore)). Several instances need a
    /// shared store such as `RedisRevocationStore`. With a session store that shares a
    /// revocation store of its own, the layer records revocations in both.
    pub fn revocation_store(mut self, store: impl RevocationStore) -> Self {
        self.revocation_store = Some(Arc::new(store));
        self
    }

    /// Keeps sessions on the server, in `store`, instead of in the browser's cookies.
    ///
    /// The session cookie then holds only a sealed random 256-bit id (one small cookie, no
    /// chunks); the tokens live in the store, sealed with the cookie keys, under a TTL that
    /// follows the session's absolute lifetime. Logout and back-channel logout delete the
    /// record, so a session ends on every instance sharing the store. Without a store (the
    /// default), sessions live in sealed cookies.
    ///
    /// A store that fails or does not answer within the refresh timeout gives requests with
    /// a session `503 Service Unavailable` with `Retry-After`, never a sign-out.
    pub fn session_store(mut self, store: impl crate::session_store::SessionStore) -> Self {
        self.session_store = Some(Arc::new(store));
        self
    }

    /// Records the client's IP address with each stored session, for "your sessions"
    /// ([`SessionInfo::ip`](crate::session_store::SessionInfo::ip)); off by default. `read`
    /// takes it from the sign-in request: the connection's address
    /// (`axum::extract::ConnectInfo`), or behind a proxy you trust, the header it sets.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use axum::extract::ConnectInfo;
    ///
    /// let builder = tower_oidc_auth::AuthLayer::builder().session_client_ip(|parts| {
    ///     parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
    /// });
    /// # let _ = builder;
    /// ```
    pub fn session_client_ip(
        mut self,
        read: impl Fn(&http::request::Parts) -> Option<std::net::IpAddr> + Send + Sync + 'static,
    ) -> Self {
        self.client_ip = Some(crate::state::ClientIp(Arc::new(read)));
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
    pub fn accept_bearer_tokens(mut self, on: bool) -> Self {
        self.bearer = on;
        self
    }

    /// Tells clients why they were refused (default off; meant for development): every 401,
    /// 403 and redirect to login that the layer, its guards or its extractors make carries a
    /// header `x-auth-refusal: <reason>`, and the layer's JSON and HTML answers say it in a
    /// sentence. The reason is a [`Refusal`](crate::refusal::Refusal): it names claims and
    /// times, never a value that identifies a user, and never token material. It would also
    /// tell an attacker which check a forged token failed: leave it off in production.
    pub fn explain_refusals(mut self, on: bool) -> Self {
        self.explain_refusals = on;
        self
    }

    /// The former name of [`accept_bearer_tokens`](Self::accept_bearer_tokens).
    #[deprecated(note = "renamed to `accept_bearer_tokens`")]
    pub fn bearer(self, on: bool) -> Self {
        self.accept_bearer_tokens(on)
    }

    /// The clock (default the system clock). Tests inject a [`ManualClock`](crate::clock::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}
