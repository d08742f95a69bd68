//! The `client_credentials` grant: getting and caching the Management API token.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

use super::error::ManagementError;
use crate::secret::Secret;

/// Waits between retries. Injectable so tests can check delays without waiting.
pub trait Sleeper: Send + Sync + 'static {
    /// Waits `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// The real sleeper (tokio's timer).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

pub(super) struct Cached {
    token: Secret,
    expires_at: tokio::time::Instant,
}

/// OAuth 2.0 client credentials: `grant_type=client_credentials` at a token endpoint, with the
/// token cached until shortly before `expires_in` and one fetch shared by all waiting tasks.
/// Generic: it can serve any OAuth2-protected API.
#[derive(Clone)]
pub struct ClientCredentials {
    inner: Arc<CredentialsInner>,
}

pub(super) struct CredentialsInner {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    auth: CredentialsAuth,
    scope: Option<String>,
    cached: tokio::sync::Mutex<Option<Cached>>,
    grants: AtomicU64,
    timeout: Duration,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone)]
pub(crate) enum CredentialsAuth {
    /// `client_secret_post`.
    Secret(Secret),
    /// `private_key_jwt`: assertions signed on this clock (the system's, or the layer's for
    /// [`ManagementClient::from_layer`](super::ManagementClient::from_layer)).
    PrivateKeyJwt(crate::provider::Assertions, ClockRef),
}

/// The clock assertions are dated by.
#[derive(Clone)]
pub(crate) struct ClockRef(pub(crate) crate::clock::SharedClock);

impl fmt::Debug for ClockRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.inner.token_url)
            .field("client_id", &self.inner.client_id)
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Credentials for `token_url`.
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Self {
        Self::with_scope(token_url, client_id, client_secret, None)
    }

    /// Credentials for `token_url`, asking for `scope`.
    pub fn with_scope(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        scope: Option<String>,
    ) -> Self {
        Self::with_auth(
            token_url.into(),
            client_id.into(),
            CredentialsAuth::Secret(client_secret.into()),
            scope,
        )
    }

    /// Credentials for `token_url` that authenticate with a private key (`private_key_jwt`,
    /// RFC 7523 section 2.2): each grant carries an assertion signed with `key` (RS256 for an
    /// RSA key, ES256 for P-256), `kid` in its header, `aud` the token URL and `exp` a minute
    /// after the system clock.
    ///
    /// ```
    /// use tower_oidc_auth::management::ClientCredentials;
    /// use tower_oidc_auth::{Algorithm, ClientKey};
    /// # let pem = tower_oidc_auth::testing::client_key_pem(Algorithm::RS256);
    /// let key = ClientKey::from_pem(&pem).unwrap();
    /// let credentials = ClientCredentials::private_key_jwt(
    ///     "https://yourenv.scalekit.com/oauth/token",
    ///     "skc_123",
    ///     &key,
    ///     Some("key-1".into()),
    /// );
    /// # let _ = credentials;
    /// ```
    pub fn private_key_jwt(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        key: &crate::ClientKey,
        kid: Option<String>,
    ) -> Self {
        let token_url = token_url.into();
        let client_id = client_id.into();
        // The key's own algorithm: cannot disagree with it.
        let assertions = crate::provider::Assertions::new(
            key,
            key.algorithm(),
            kid,
            client_id.clone(),
            token_url.clone(),
        )
        .expect("the key's own algorithm fits it");
        Self::with_auth(
            token_url,
            client_id,
            CredentialsAuth::PrivateKeyJwt(
                assertions,
                ClockRef(std::sync::Arc::new(crate::clock::SystemClock)),
            ),
            None,
        )
    }

    pub(crate) fn with_auth(
        token_url: String,
        client_id: String,
        auth: CredentialsAuth,
        scope: Option<String>,
    ) -> Self {
        let timeout = Duration::from_secs(10);
        Self {
            inner: Arc::new(CredentialsInner {
                http: reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(timeout)
                    .build()
                    .unwrap_or_else(|_| reqwest::Client::new()),
                token_url,
                client_id,
                auth,
                scope,
                cached: tokio::sync::Mutex::new(None),
                grants: AtomicU64::new(0),
                timeout,
            }),
        }
    }

    /// Scalekit's token endpoint: `<env_url>/oauth/token`.
    pub fn scalekit(
        env_url: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Self {
        Self::new(
            format!("{}/oauth/token", env_url.trim_end_matches('/')),
            client_id,
            client_secret,
        )
    }

    /// Token grants made so far (for tests and metrics).
    #[must_use]
    pub fn grants(&self) -> u64 {
        self.inner.grants.load(Ordering::Relaxed)
    }

    /// A valid access token: the cached one, or a new one. Concurrent callers share one fetch.
    pub async fn token(&self) -> Result<Secret, ManagementError> {
        // Held across the fetch on purpose: this is the single flight (not a hot path).
        let mut cached = self.inner.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if tokio::time::Instant::now() < c.expires_at {
                return Ok(c.token.clone());
            }
        }
        let (token, expires_in) = self.fetch().await?;
        *cached = Some(Cached {
            token: token.clone(),
            expires_at: token_expiry(tokio::time::Instant::now(), expires_in),
        });
        Ok(token)
    }

    /// Forgets `token` if it is the cached one (after the API refused it).
    pub async fn invalidate(&self, token: &Secret) {
        let mut cached = self.inner.cached.lock().await;
        if cached.as_ref().is_some_and(|c| &c.token == token) {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<(Secret, u64), ManagementError> {
        let inner = &self.inner;
        inner.grants.fetch_add(1, Ordering::Relaxed);
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &inner.client_id);
            match &inner.auth {
                CredentialsAuth::Secret(secret) => {
                    form.append_pair("client_secret", secret.expose());
                }
                CredentialsAuth::PrivateKeyJwt(assertions, clock) => {
                    let now = clock.0.now();
                    let assertion = assertions
                        .sign(now)
                        .map_err(|e| ManagementError::Token(e.to_string()))?;
                    form.append_pair(
                        "client_assertion_type",
                        crate::provider::JWT_BEARER_ASSERTION_TYPE,
                    )
                    .append_pair("client_assertion", &assertion);
                }
            }
            if let Some(scope) = &inner.scope {
                form.append_pair("scope", scope);
            }
            form.finish()
        };
        let request = inner
            .http
            .post(&inner.token_url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .timeout(inner.timeout)
            .body(form);
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                ManagementError::Timeout
            } else {
                ManagementError::Token(e.to_string())
            }
        })?;
        let status = response.status();
        let body = read_limited(response, 64 * 1024).await?;
        token_answer(status, &body)
    }
}

/// The token endpoint's answer: the token and its lifetime in seconds. No I/O (the fuzz targets
/// call it too).
pub(crate) fn token_answer(
    status: http::StatusCode,
    body: &[u8],
) -> Result<(Secret, u64), ManagementError> {
    #[derive(Deserialize)]
    struct TokenResponse {
        access_token: String,
        #[serde(default)]
        expires_in: Option<Value>,
    }
    if !status.is_success() {
        let error = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        return Err(ManagementError::Token(error));
    }
    let parsed: TokenResponse =
        serde_json::from_slice(body).map_err(|e| ManagementError::Token(e.to_string()))?;
    let expires_in = match parsed.expires_in {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(300),
        Some(Value::String(s)) => s.parse().unwrap_or(300),
        _ => 300,
    };
    Ok((Secret::new(parsed.access_token), expires_in))
}

/// Until when a token that lives `expires_in` seconds is served from the cache: 30 s before
/// it expires, or a tenth of a short lifetime. `expires_in` is the token endpoint's number
/// (`now + lifetime` panicked on a huge one): a lifetime beyond a day is taken as a day.
pub(crate) fn token_expiry(now: tokio::time::Instant, expires_in: u64) -> tokio::time::Instant {
    let expires_in = expires_in.min(MAX_TOKEN_LIFETIME_SECS);
    let margin = (expires_in / 10).min(30);
    let lifetime = Duration::from_secs(expires_in.saturating_sub(margin).max(1));
    now.checked_add(lifetime).unwrap_or(now)
}

pub(super) async fn read_limited(
    mut response: reqwest::Response,
    max: usize,
) -> Result<bytes::Bytes, ManagementError> {
    if response.content_length().is_some_and(|l| l > max as u64) {
        return Err(ManagementError::TooLarge(max));
    }
    let mut body = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(ManagementError::TooLarge(max));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) if e.is_timeout() => return Err(ManagementError::Timeout),
            Err(e) => {
                return Err(ManagementError::Unreachable {
                    source: crate::error::cause(e),
                })
            }
        }
    }
}

/// The longest an access token of the Management API is cached, whatever `expires_in` says.
pub(super) const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;
