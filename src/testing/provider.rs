//! [`TestProvider`]: the running provider and its knobs.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::faults::{AccessTokenDefect, Counts, Failure, IdTokenDefect};
use super::state::{ClientReg, SigningKey, State};
use super::user::TestUser;
use super::ClockRef;
use crate::config::AuthLayerBuilder;
use crate::provider::Provider;

/// An OpenID provider running in this process on 127.0.0.1. Stops when dropped.
pub struct TestProvider {
    pub(super) state: Arc<State>,
    pub(super) addr: SocketAddr,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TestProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestProvider")
            .field("issuer", &self.state.issuer)
            .finish_non_exhaustive()
    }
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestProvider {
    /// Starts a provider with the defaults, auto-approving `TestUser::new("test-user")`.
    pub async fn start() -> Self {
        Self::builder()
            .user(
                TestUser::new("test-user")
                    .email("test-user@example.com")
                    .name("Test User"),
            )
            .start()
            .await
    }

    /// The issuer URL, `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The client id it accepts.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.state.client_id
    }

    /// The client secret it accepts.
    #[must_use]
    pub fn client_secret(&self) -> &str {
        &self.state.client_secret
    }

    /// An [`AuthLayerBuilder`] pointed at this provider (Scalekit layout), with this client's
    /// credentials, a random cookie key, and the given redirect URL.
    pub fn layer_builder(&self, redirect_url: impl Into<String>) -> AuthLayerBuilder {
        let mut key = [0u8; 64];
        getrandom::fill(&mut key).expect("random cookie key");
        AuthLayerBuilder::new()
            .provider(Provider::scalekit(self.issuer()))
            .client_id(self.client_id())
            .client_secret(self.client_secret())
            .redirect_url(redirect_url)
            .cookie_key(key)
            .clock(ClockRef(self.state.clock.clone()))
    }

    /// Sets (or, with `None`, removes) the auto-approved user. Without one, authorize shows
    /// the login form.
    pub fn set_user(&self, user: Option<TestUser>) {
        *self.state.user.lock().expect("user lock") = user;
    }

    /// Changes the access token lifetime for tokens issued from now on.
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        self.state
            .access_ttl
            .store(ttl.as_secs() as i64, Ordering::Relaxed);
    }

    /// Turns refresh-token rotation on or off.
    pub fn set_refresh_rotation(&self, on: bool) {
        self.state.rotation.store(on, Ordering::Relaxed);
    }

    /// Makes the token endpoint misbehave (or, with `None`, behave).
    pub fn set_token_failure(&self, failure: Option<Failure>) {
        *self.state.token_failure.lock().expect("failure lock") = failure;
    }

    /// Makes the revocation endpoint misbehave (or, with `None`, behave).
    pub fn set_revocation_failure(&self, failure: Option<Failure>) {
        *self.state.revocation_failure.lock().expect("failure lock") = failure;
    }

    /// Puts this defect into every ID token issued from now on (or, with `None`, none).
    pub fn set_id_token_defect(&self, defect: Option<IdTokenDefect>) {
        *self.state.id_token_defect.lock().expect("defect lock") = defect;
    }

    /// Puts this defect into every access token issued from now on (`None`: well-formed).
    pub fn set_access_token_defect(&self, defect: Option<AccessTokenDefect>) {
        *self.state.access_token_defect.lock().expect("defect lock") = defect;
    }

    /// Issues access tokens for these API audiences instead of the client id (or, with `None`,
    /// for the client again), as Scalekit does when an API audience is configured: `aud` names
    /// the API and there is no `client_id` (developer-docs
    /// `authenticate/fsa/session-token-claims.mdx`, "Default access token claims"). A layer
    /// accepts them only with [`AuthLayerBuilder::audience`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let provider = tower_oidc_auth::testing::TestProvider::start().await;
    /// provider.set_access_token_audience(Some(vec!["https://api.example.com".into()]));
    /// # }
    /// ```
    pub fn set_access_token_audience(&self, audiences: Option<Vec<String>>) {
        *self.state.access_audience.lock().expect("audience lock") = audiences;
    }

    /// Whether ID tokens carry `at_hash` (default on; it is optional in the code flow, and
    /// some providers leave it out, notably in ID tokens issued at a refresh).
    pub fn set_id_token_at_hash(&self, on: bool) {
        self.state.id_at_hash.store(on, Ordering::Relaxed);
    }

    /// Answers refresh grants with tokens for this user instead of the one who signed in (a
    /// broken or hostile provider), or, with `None`, for the grant's user again.
    pub fn set_refresh_user(&self, user: Option<TestUser>) {
        *self.state.refresh_user.lock().expect("refresh user lock") = user;
    }

    /// Sends this `expires_in` in token responses instead of the access-token lifetime
    /// (`None`: the lifetime). Any JSON value, so tests can send huge or odd ones.
    pub fn set_expires_in(&self, value: Option<Value>) {
        *self.state.expires_in.lock().expect("expires_in lock") = value;
    }

    /// Sends `Cache-Control: max-age=N` with the JWKS (or, with `None`, no Cache-Control).
    pub fn set_jwks_max_age(&self, max_age: Option<u64>) {
        *self.state.jwks_max_age.lock().expect("max-age lock") = max_age;
    }

    /// Makes the JWKS endpoint misbehave (or, with `None`, behave).
    pub fn set_jwks_failure(&self, failure: Option<Failure>) {
        *self.state.jwks_failure.lock().expect("failure lock") = failure;
    }

    /// Serves this JSON as the JWKS document instead of the published keys (or, with `None`,
    /// the published keys again): for testing key sets a provider should not publish (empty,
    /// duplicate kids, odd members). Signing is unchanged.
    pub fn set_jwks_document(&self, document: Option<Value>) {
        *self.state.jwks_document.lock().expect("document lock") = document;
    }

    /// The JWKS document as the provider would serve it now (published keys).
    #[must_use]
    pub fn jwks_document(&self) -> Value {
        json!({ "keys": self.state.published_keys() })
    }

    /// Adds a new signing key and signs with it from now on. With `retire_old`, older keys are
    /// no longer published.
    pub fn rotate_keys(&self, retire_old: bool) -> String {
        let n = self.state.next_kid.fetch_add(1, Ordering::Relaxed);
        let key = Arc::new(SigningKey::generate(format!("key-{n}")));
        let kid = key.kid.clone();
        let mut keys = self.state.keys.lock().expect("keys lock");
        if retire_old {
            keys.clear();
        }
        keys.push(key);
        kid
    }

    /// Replaces the current signing key by a new key pair published under the same `kid`, as a
    /// provider that reuses key ids would. Signs with the new key from now on.
    pub fn replace_key_material(&self) {
        let mut keys = self.state.keys.lock().expect("keys lock");
        if let Some(last) = keys.last_mut() {
            *last = Arc::new(SigningKey::generate(last.kid.clone()));
        }
    }

    /// With `false`, the JWKS is published without `kid`s and tokens carry no `kid` in their
    /// header (allowed when exactly one key fits); `true` (the default) restores both.
    pub fn set_key_ids(&self, on: bool) {
        self.state.key_ids.store(on, Ordering::Relaxed);
    }

    /// Waits until the JWKS endpoint has been asked at least `n` times in all (counted on
    /// arrival, like [`Counts::jwks_fetches`]): for tests of background refreshes.
    pub async fn wait_for_jwks_fetches(&self, n: u64) {
        loop {
            // Created before the check, so a fetch between the check and the await still wakes.
            let fetched = self.state.jwks_fetched.notified();
            if self.state.jwks_fetches.load(Ordering::Relaxed) >= n {
                return;
            }
            fetched.await;
        }
    }

    /// What the provider has served so far.
    #[must_use]
    pub fn counts(&self) -> Counts {
        let s = &self.state;
        Counts {
            code_grants: s.code_grants.load(Ordering::Relaxed),
            refresh_grants: s.refresh_grants.load(Ordering::Relaxed),
            refresh_failures: s.refresh_failures.load(Ordering::Relaxed),
            jwks_fetches: s.jwks_fetches.load(Ordering::Relaxed),
            discovery_fetches: s.discovery_fetches.load(Ordering::Relaxed),
            logouts: s.logouts.load(Ordering::Relaxed),
            token_requests: s.token_requests.load(Ordering::Relaxed),
            backchannel_deliveries: s.backchannel_deliveries.load(Ordering::Relaxed),
            backchannel_failures: s.backchannel_failures.load(Ordering::Relaxed),
            revocation_requests: s.revocation_requests.load(Ordering::Relaxed),
            refresh_tokens_revoked: s.refresh_tokens_revoked.load(Ordering::Relaxed),
            client_assertions: s.client_assertions.load(Ordering::Relaxed),
            client_credentials_grants: s.client_credentials_grants.load(Ordering::Relaxed),
            par_requests: s.par_requests.load(Ordering::Relaxed),
            pushed_requests_used: s.pushed_used.load(Ordering::Relaxed),
        }
    }

    /// Every token and code the provider has handed out so far (access, ID and refresh tokens,
    /// authorization codes): for tests that check none of them leaks.
    #[must_use]
    pub fn issued_secrets(&self) -> Vec<String> {
        self.state.issued.lock().expect("issued lock").clone()
    }

    /// Makes the pushed authorization request endpoint (RFC 9126) fail (or stall), or, with
    /// `None`, work again.
    pub fn set_par_failure(&self, failure: Option<Failure>) {
        *self.state.par_failure.lock().expect("lock") = failure;
    }

    /// The token endpoint URL (the default `aud` of client assertions).
    #[must_use]
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth/token", self.state.base)
    }

    /// Registers another client while running (see [`TestProviderBuilder::client`](super::TestProviderBuilder::client)).
    pub fn add_client(
        &self,
        id: impl Into<String>,
        secret: impl Into<String>,
        backchannel_logout_uri: Option<String>,
    ) {
        self.state.clients.lock().expect("clients lock").insert(
            id.into(),
            ClientReg {
                secret: secret.into(),
                backchannel_logout_uri,
                jwks: Vec::new(),
            },
        );
    }
}
