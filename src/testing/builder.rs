//! [`TestProviderBuilder`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::provider::TestProvider;
use super::state::{ClientReg, SigningKey, State};
use super::user::TestUser;
use crate::clock::{Clock, SharedClock, SystemClock};

/// Builder for [`TestProvider`].
#[must_use]
pub struct TestProviderBuilder {
    client_id: String,
    client_secret: String,
    user: Option<TestUser>,
    access_ttl: Duration,
    id_ttl: Duration,
    rotation: bool,
    iss_param: bool,
    auth_methods: Option<Vec<String>>,
    client_jwks: Vec<serde_json::Value>,
    par: bool,
    par_required: bool,
    opaque_access: bool,
    trailing_slash: bool,
    extra_clients: Vec<(String, String, Option<String>)>,
    backchannel_uri: Option<String>,
    clock: SharedClock,
    port: u16,
    key_file: Option<std::path::PathBuf>,
    revocation_endpoint: bool,
}

impl std::fmt::Debug for TestProviderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestProviderBuilder")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl TestProvider {
    /// A builder with defaults: client `test-client` / `test-secret`, login form, 5-minute
    /// access tokens, refresh rotation on.
    pub fn builder() -> TestProviderBuilder {
        TestProviderBuilder::new()
    }
}

impl TestProviderBuilder {
    /// The defaults (see [`TestProvider::builder`]).
    pub(super) fn new() -> Self {
        Self {
            client_id: "test-client".into(),
            client_secret: "test-secret".into(),
            user: None,
            access_ttl: Duration::from_secs(300),
            id_ttl: Duration::from_secs(3600),
            rotation: true,
            iss_param: true,
            auth_methods: None,
            client_jwks: Vec::new(),
            par: false,
            par_required: false,
            opaque_access: false,
            trailing_slash: false,
            extra_clients: Vec::new(),
            backchannel_uri: None,
            clock: Arc::new(SystemClock),
            port: 0,
            revocation_endpoint: true,
            key_file: None,
        }
    }

    /// The client id the provider accepts (default `test-client`).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// The client secret the provider accepts (default `test-secret`).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = secret.into();
        self
    }

    /// The back-channel logout URI of the main client: when a browser's provider session ends
    /// (end-session), the provider POSTs a logout token there.
    pub fn backchannel_logout_uri(mut self, uri: impl Into<String>) -> Self {
        self.backchannel_uri = Some(uri.into());
        self
    }

    /// Registers another client (for several apps sharing the provider's single sign-on),
    /// with an optional back-channel logout URI.
    pub fn client(
        mut self,
        id: impl Into<String>,
        secret: impl Into<String>,
        backchannel_logout_uri: Option<String>,
    ) -> Self {
        self.extra_clients
            .push((id.into(), secret.into(), backchannel_logout_uri));
        self
    }

    /// Approve every authorization request as this user, without a form. Without it, authorize
    /// shows a login form (fields `login` and `password`).
    pub fn user(mut self, user: TestUser) -> Self {
        self.user = Some(user);
        self
    }

    /// Access token lifetime (default 5 minutes, as at Scalekit).
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// ID token lifetime (default 1 hour).
    pub fn id_token_ttl(mut self, ttl: Duration) -> Self {
        self.id_ttl = ttl;
        self
    }

    /// Rotate refresh tokens: each use returns a new one and a replay revokes the grant
    /// (default on, as at Scalekit).
    pub fn refresh_rotation(mut self, on: bool) -> Self {
        self.rotation = on;
        self
    }

    /// Send the RFC 9207 `iss` parameter on authorization responses (default on).
    pub fn iss_parameter(mut self, on: bool) -> Self {
        self.iss_param = on;
        self
    }

    /// The client authentication methods the token endpoint accepts and discovery lists
    /// (default both `client_secret_post` and `client_secret_basic`, and `private_key_jwt`
    /// when a [`client_jwk`](Self::client_jwk) is registered).
    pub fn token_auth_methods<I, T>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.auth_methods = Some(methods.into_iter().map(Into::into).collect());
        self
    }

    /// Registers a public key (a JWK, such as
    /// [`ClientKey::public_jwk`](crate::ClientKey::public_jwk)) of the main client for
    /// `private_key_jwt` (RFC 7523, OpenID Connect Core 9): the token, revocation and PAR
    /// endpoints then accept assertions signed by it (RS256 or ES256), with `iss` = `sub` =
    /// the client id, `aud` the token endpoint, the PAR endpoint or the issuer, `exp` not
    /// passed and at most 5 minutes ahead, and a `jti` not seen before. Discovery lists
    /// `private_key_jwt` and the algorithms. Call it again to register several keys.
    pub fn client_jwk(mut self, jwk: serde_json::Value) -> Self {
        self.client_jwks.push(jwk);
        self
    }

    /// Serves and lists a pushed authorization request endpoint (RFC 9126) at `/oauth/par`
    /// (default off): a pushed request is kept 60 s under a one-time
    /// `urn:ietf:params:oauth:request_uri:...`, which the authorize endpoint resolves.
    pub fn pushed_authorization_requests(mut self, on: bool) -> Self {
        self.par = on;
        self
    }

    /// Requires pushed authorization requests (RFC 9126 section 5): discovery says
    /// `require_pushed_authorization_requests: true` and authorize refuses requests without
    /// a `request_uri`. Implies [`pushed_authorization_requests`](Self::pushed_authorization_requests).
    pub fn require_pushed_authorization_requests(mut self, on: bool) -> Self {
        self.par_required = on;
        self
    }

    /// Publishes the issuer with a trailing slash (`http://127.0.0.1:port/`), as Auth0 and
    /// others do; discovery stays at `<issuer without the slash>/.well-known/...` (Discovery 1.0,
    /// section 4) and tokens carry the issuer exactly (default off).
    pub fn issuer_trailing_slash(mut self, on: bool) -> Self {
        self.trailing_slash = on;
        self
    }

    /// Whether discovery lists a `revocation_endpoint` (RFC 7009, served at `/oauth/revoke`;
    /// default `true`). The endpoint is served either way.
    pub fn revocation_endpoint(mut self, on: bool) -> Self {
        self.revocation_endpoint = on;
        self
    }

    /// Issue opaque (non-JWT) access tokens, as some providers do (default off).
    pub fn opaque_access_tokens(mut self, on: bool) -> Self {
        self.opaque_access = on;
        self
    }

    /// The clock used for token times (default the system clock). Share it with the layer.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Listen on this port of 127.0.0.1 (default: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Keeps the signing key in this file: read from it when it exists, written to it (PKCS#8,
    /// owner-only where the platform allows) when not. With a fixed [`port`](Self::port), the
    /// provider is the same issuer with the same key after a restart, so a demo's sessions and
    /// tokens stay valid across restarts (`cargo watch` loops). For demos and tests only.
    pub fn key_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    /// Binds 127.0.0.1 and starts serving.
    ///
    /// # Panics
    /// If the port cannot be bound, or the key file cannot be read or written; see
    /// [`try_start`](Self::try_start).
    pub async fn start(self) -> TestProvider {
        self.try_start()
            .await
            .expect("start the TestProvider on 127.0.0.1")
    }

    /// Binds 127.0.0.1 and starts serving; an error if the port is taken or the key file
    /// cannot be read or written.
    pub async fn try_start(self) -> std::io::Result<TestProvider> {
        let key = match &self.key_file {
            Some(path) => SigningKey::load_or_create("key-1".into(), path)?,
            None => SigningKey::generate("key-1".into()),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await?;
        let addr = listener.local_addr()?;
        let mut clients = HashMap::new();
        clients.insert(
            self.client_id.clone(),
            ClientReg {
                secret: self.client_secret.clone(),
                backchannel_logout_uri: self.backchannel_uri,
                jwks: self.client_jwks.clone(),
            },
        );
        for (id, secret, uri) in self.extra_clients {
            clients.insert(
                id,
                ClientReg {
                    secret,
                    backchannel_logout_uri: uri,
                    jwks: Vec::new(),
                },
            );
        }
        let state = Arc::new(State {
            issuer: if self.trailing_slash {
                format!("http://{addr}/")
            } else {
                format!("http://{addr}")
            },
            base: format!("http://{addr}"),
            client_id: self.client_id,
            client_secret: self.client_secret,
            clients: Mutex::new(clients),
            sso: Mutex::new(HashMap::new()),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            backchannel_deliveries: AtomicU64::new(0),
            backchannel_failures: AtomicU64::new(0),
            clock: self.clock,
            keys: Mutex::new(vec![Arc::new(key)]),
            user: Mutex::new(self.user),
            codes: Mutex::default(),
            refresh: Mutex::default(),
            access_ttl: AtomicI64::new(self.access_ttl.as_secs() as i64),
            id_ttl: AtomicI64::new(self.id_ttl.as_secs() as i64),
            id_at_hash: AtomicBool::new(true),
            rotation: AtomicBool::new(self.rotation),
            iss_param: self.iss_param,
            auth_methods: self.auth_methods.unwrap_or_else(|| {
                let mut methods = vec!["client_secret_post".into(), "client_secret_basic".into()];
                if !self.client_jwks.is_empty() {
                    methods.push("private_key_jwt".into());
                }
                methods
            }),
            opaque_access: self.opaque_access,
            refresh_user: Mutex::new(None),
            token_failure: Mutex::new(None),
            id_token_defect: Mutex::new(None),
            access_token_defect: Mutex::new(None),
            access_audience: Mutex::new(None),
            expires_in: Mutex::new(None),
            issued: Mutex::new(Vec::new()),
            jwks_max_age: Mutex::new(None),
            jwks_failure: Mutex::new(None),
            jwks_document: Mutex::new(None),
            code_grants: AtomicU64::new(0),
            refresh_grants: AtomicU64::new(0),
            refresh_failures: AtomicU64::new(0),
            jwks_fetches: AtomicU64::new(0),
            jwks_fetched: tokio::sync::Notify::new(),
            key_ids: AtomicBool::new(true),
            discovery_fetches: AtomicU64::new(0),
            logouts: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            revocation_listed: self.revocation_endpoint,
            revocation_failure: Mutex::new(None),
            revocation_requests: AtomicU64::new(0),
            refresh_tokens_revoked: AtomicU64::new(0),
            next_kid: AtomicU64::new(2),
            seen_jtis: Mutex::default(),
            client_assertions: AtomicU64::new(0),
            client_credentials_grants: AtomicU64::new(0),
            par_listed: self.par || self.par_required,
            par_required: self.par_required,
            pushed: Mutex::default(),
            par_failure: Mutex::new(None),
            par_requests: AtomicU64::new(0),
            pushed_used: AtomicU64::new(0),
        });
        let router = super::server::router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(TestProvider { state, addr, task })
    }
}
