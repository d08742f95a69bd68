//! The layer's state: its resolved settings and the components every request uses, shared by
//! all clones of the layer and its services behind one `Arc`.

use std::fmt;
use std::sync::Arc;

use crate::clock::SharedClock;
use crate::cookies::CookieCodec;
use crate::provider::{ProviderMetadata, TokenClient};
use crate::refresh::RefreshCoordinator;
use crate::revocation::RevocationStore;
use crate::verify::Verifier;

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
    /// Whether refusals carry their reason (`x-auth-refusal`, and a sentence in the body).
    pub(crate) explain_refusals: bool,
    /// The app's origin (from the redirect URL), for judging where requests come from.
    pub(crate) origin: String,
    /// The app's approval of pass-through authorization parameters.
    pub(crate) approve_param: Option<ApproveParam>,
    /// How the app reads a client's IP address for "your sessions" (`None`: not recorded).
    pub(crate) client_ip: Option<ClientIp>,
    /// The ID-token claims the session keeps (besides `sub`, `iss`, `sid`).
    pub(crate) session_claims: Vec<String>,
    /// The app's login, refresh and logout hooks.
    pub(crate) hooks: crate::hooks::Hooks,
}

impl Settings {
    /// How long to remember a revocation that ends sessions which began no later than `begun`:
    /// until the last of them reaches its absolute lifetime (`begun + session_max_age`, plus a
    /// margin for clock skew), so a revoked session never outlives its record; and at least the
    /// configured `revocation_ttl`.
    pub(crate) fn revocation_lifetime(&self, begun: i64, now: i64) -> std::time::Duration {
        crate::revocation::lifetime(begun, now, self.session_max_age, self.revocation_ttl)
    }
}

impl Shared {
    /// Sets the gauges of the layer's caches and revocations (a few atomic loads): after the
    /// events that change them on the slow path (a sign-in, a refresh), never per request.
    pub(crate) fn record_gauges(&self) {
        if !cfg!(feature = "metrics") {
            return;
        }
        use crate::telemetry::cache_entries;
        cache_entries("verified_tokens", self.verifier.cache_len());
        cache_entries("sessions", self.sessions.len());
        cache_entries("logout_token_ids", self.seen_jti.len());
        cache_entries("signature_memo", self.verifier.memo_len());
        if let Some(records) = self.revocations.len_hint() {
            crate::telemetry::revocations(records);
        }
    }

    /// The verifier for a bearer token: by its `iss`, read before any signature work, among the
    /// layer's issuer and the trusted ones. Without trusted issuers, the layer's own (which
    /// checks `iss` itself). A token of no known issuer is refused here, without a network
    /// call.
    pub(crate) fn bearer_verifier(
        &self,
        token: &str,
    ) -> Result<&Verifier, crate::verify::VerifyError> {
        if self.trusted.is_empty() {
            return Ok(&self.verifier);
        }
        // A token one of them verified before is in that one's cache (only the verifier that
        // checked its `iss` puts it there): no need to read the token again.
        if let Some(verifier) = std::iter::once(&self.verifier)
            .chain(&self.trusted)
            .find(|v| v.has_verified(token))
        {
            return Ok(verifier);
        }
        let iss = crate::verify::unverified_issuer(token)?;
        let iss = iss.ok_or(crate::verify::VerifyError::Issuer)?;
        std::iter::once(&self.verifier)
            .chain(&self.trusted)
            .find(|v| v.issuer() == iss)
            .ok_or(crate::verify::VerifyError::Issuer)
    }

    /// What the webhook route needs of the layer.
    pub(crate) fn webhook_context(&self) -> crate::webhook::WebhookContext<'_> {
        crate::webhook::WebhookContext {
            stored: self
                .store
                .is_some()
                .then_some(self as &dyn crate::webhook::EndStored),
            hooks: self.settings.webhooks.as_ref(),
            revocations: self.revocations.as_ref(),
            issuer: &self.meta.issuer,
            now: self.clock.now(),
            session_max_age: self.settings.session_max_age,
            revocation_ttl: self.settings.revocation_ttl,
        }
    }
}

/// Everything shared by clones of the layer and its services.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) meta: ProviderMetadata,
    pub(crate) token: TokenClient,
    pub(crate) verifier: Verifier,
    /// The verifiers of the other issuers whose bearer tokens are accepted
    /// ([`trust_issuer`](crate::AuthLayerBuilder::trust_issuer)).
    pub(crate) trusted: Vec<Verifier>,
    /// Protected-resource mode, when configured.
    pub(crate) resource: Option<Arc<crate::resource::ResourceSettings>>,
    /// Shared with the claims of signed-in requests, which open the session cookie for the
    /// [`AccessToken`](crate::AccessToken) extractor.
    pub(crate) cookies: Arc<CookieCodec>,
    pub(crate) coordinator: Arc<dyn RefreshCoordinator>,
    pub(crate) revocations: Arc<dyn RevocationStore>,
    /// Where sessions live in store mode (`None`: in cookies).
    pub(crate) store: Option<Arc<dyn crate::session_store::SessionStore>>,
    /// Whether stored sessions may be remembered between requests: only when logouts reach
    /// this instance through a shared revocation store.
    pub(crate) remember_stored: bool,
    /// Refreshed stored sessions the store failed to save, by id: saved by the next request
    /// that finds the record still holding the refresh token they replaced (see
    /// `session_store::Unsaved`).
    pub(crate) unsaved: quick_cache::sync::Cache<
        crate::session_store::SessionId,
        std::sync::Arc<crate::session_store::Unsaved>,
    >,
    /// Logout-token `jti`s seen, with when: replays are refused.
    pub(crate) seen_jti: quick_cache::sync::Cache<String, i64>,
    /// Verified sessions, by a digest of their sealed cookie (see `session_cache`).
    pub(crate) sessions: crate::session_cache::SessionCache,
    pub(crate) clock: SharedClock,
    /// Renders the answers the layer makes itself ([`crate::responses`]).
    pub(crate) responses: Arc<dyn crate::responses::Responses>,
    /// Whether the app set its own `responses`: the guard extractors then need the layer's
    /// state beside the claims to reach it.
    pub(crate) custom_responses: bool,
    /// Whether the app made a silent-login layer ([`crate::silent`]): logging out then marks
    /// the silent attempt as tried.
    pub(crate) silent_login: std::sync::atomic::AtomicBool,
}

/// A configured duration in whole seconds, saturating instead of wrapping.
pub(crate) fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The app's reading of a client's IP address from a sign-in request, for "your sessions".
#[derive(Clone)]
pub(crate) struct ClientIp(pub(crate) Arc<ClientIpFn>);

type ClientIpFn = dyn Fn(&http::request::Parts) -> Option<std::net::IpAddr> + Send + Sync;

impl fmt::Debug for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientIp(..)")
    }
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
