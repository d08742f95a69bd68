//! The OpenID provider: where its endpoints are, its keys, and calls to its token endpoint.

mod client_auth;
pub(crate) mod http;
mod jwks;
mod par;

pub(crate) use self::client_auth::Assertions;
pub use self::client_auth::{AssertionAudience, ClientAuth, ClientKey, JWT_BEARER_ASSERTION_TYPE};
pub use self::par::Par;
pub(crate) use self::par::PushedRequest;

pub(crate) use self::http::HttpClient;
pub use self::http::ProviderError;
#[cfg(any(test, feature = "__private"))]
pub(crate) use self::http::{form_answer, json_answer, parse_max_age};
pub(crate) use self::jwks::{Jwks, KeyEntry, KeyLookup};

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;
use crate::secret::Secret;

/// Which provider to use and how to find its endpoints.
///
/// ```
/// use tower_oidc_auth::Provider;
/// let scalekit = Provider::scalekit("https://yourenv.scalekit.com");
/// let other = Provider::discover("https://accounts.example.com");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Provider {
    kind: ProviderKind,
}

#[derive(Debug, Clone)]
enum ProviderKind {
    Discover { issuer: String },
    Scalekit { env_url: String },
}

impl Provider {
    /// Any OpenID provider: reads `<issuer>/.well-known/openid-configuration` at build time.
    pub fn discover(issuer: impl Into<String>) -> Self {
        Self {
            kind: ProviderKind::Discover {
                issuer: issuer.into(),
            },
        }
    }

    /// Scalekit, by its environment URL (for example `https://yourenv.scalekit.com`).
    ///
    /// Reads the discovery document Scalekit publishes at the environment URL and applies
    /// Scalekit's defaults on top: `client_secret_post`, the `offline_access` scope, and the
    /// endpoint layout `/oauth/authorize`, `/oauth/token`, `/keys`, `/oidc/logout` for anything
    /// the document leaves out. The issuer must be the environment URL without a trailing slash.
    pub fn scalekit(env_url: impl Into<String>) -> Self {
        Self {
            kind: ProviderKind::Scalekit {
                env_url: env_url.into(),
            },
        }
    }

    /// The issuer as configured: the environment URL for Scalekit. (The issuer the provider
    /// publishes must match it; the build checks.)
    #[must_use]
    pub fn issuer(&self) -> &str {
        match &self.kind {
            ProviderKind::Discover { issuer } => issuer,
            ProviderKind::Scalekit { env_url } => env_url,
        }
    }

    /// Whether this is [`Provider::scalekit`].
    #[must_use]
    pub fn is_scalekit(&self) -> bool {
        matches!(self.kind, ProviderKind::Scalekit { .. })
    }

    /// Checks the configured issuer without I/O: an absolute https URL (http only on loopback).
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let (what, issuer) = self.what_and_issuer();
        check_url(what, issuer)
    }

    fn what_and_issuer(&self) -> (&'static str, &str) {
        match &self.kind {
            ProviderKind::Discover { issuer } => ("issuer", issuer.trim_end_matches('/')),
            ProviderKind::Scalekit { env_url } => {
                ("Scalekit environment URL", env_url.trim_end_matches('/'))
            }
        }
    }

    /// Fetches and validates the provider's metadata.
    pub(crate) async fn resolve(&self, http: &HttpClient) -> Result<ProviderMetadata, ConfigError> {
        self.check()?;
        let meta = fetch_discovery(http, self.what_and_issuer().1).await?;
        self.accept(meta)
    }

    /// Checks a fetched discovery document against this provider, filling Scalekit's defaults.
    /// No I/O (the fuzz targets call it too).
    pub(crate) fn accept(
        &self,
        mut meta: ProviderMetadata,
    ) -> Result<ProviderMetadata, ConfigError> {
        // Optional, and only ever used best effort: an unusable one is dropped, not fatal.
        meta.pushed_authorization_request_endpoint = meta
            .pushed_authorization_request_endpoint
            .take()
            .filter(|e| !e.is_empty());
        meta.revocation_endpoint = meta.revocation_endpoint.take().filter(|e| {
            let usable = check_url("revocation_endpoint", e).is_ok();
            if !usable {
                tracing::warn!(endpoint = %e, "ignoring the provider's revocation_endpoint: not https");
            }
            usable
        });
        match &self.kind {
            ProviderKind::Discover { issuer } => {
                // Exactly as configured, trailing slash and all (Discovery 1.0, section 4.3):
                // tokens carry the issuer as discovery publishes it (Auth0's ends in `/`).
                if meta.issuer != *issuer {
                    return Err(ConfigError::IssuerMismatch {
                        expected: issuer.clone(),
                        found: meta.issuer,
                    });
                }
                meta.validate()?;
                Ok(meta)
            }
            ProviderKind::Scalekit { env_url } => {
                let issuer = env_url.trim_end_matches('/').to_owned();
                // The environment URL is a base URL, with or without a slash: compared without
                // it on both sides. Tokens are checked against the issuer discovery publishes.
                if meta.issuer.trim_end_matches('/') != issuer {
                    return Err(ConfigError::IssuerMismatch {
                        expected: issuer,
                        found: meta.issuer,
                    });
                }
                let fill = |field: &mut String, path: &str| {
                    if field.is_empty() {
                        *field = format!("{issuer}{path}");
                    }
                };
                fill(&mut meta.authorization_endpoint, "/oauth/authorize");
                fill(&mut meta.token_endpoint, "/oauth/token");
                fill(&mut meta.jwks_uri, "/keys");
                if meta.end_session_endpoint.is_none() {
                    meta.end_session_endpoint = Some(format!("{issuer}/oidc/logout"));
                }
                meta.validate()?;
                Ok(meta)
            }
        }
    }
}

pub(crate) fn check_url(what: &'static str, value: &str) -> Result<(), ConfigError> {
    let url = url::Url::parse(value).map_err(|e| ConfigError::InvalidUrl {
        what,
        value: value.to_owned(),
        reason: match e {
            url::ParseError::RelativeUrlWithoutBase => {
                format!("it has no scheme; write it as https://{value}")
            }
            e => e.to_string(),
        },
    })?;
    if url.scheme() != "https" && !crate::config::checks::is_loopback_http(&url) {
        return Err(ConfigError::InvalidUrl {
            what,
            value: value.to_owned(),
            reason: "must be https (http only on loopback hosts)".into(),
        });
    }
    Ok(())
}

async fn fetch_discovery(http: &HttpClient, issuer: &str) -> Result<ProviderMetadata, ConfigError> {
    // Discovery 1.0, section 4: a terminating `/` is removed before appending the well-known path.
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    http.get_json::<ProviderMetadata>(http::Endpoint::Discovery, &url)
        .await
        .map(|(m, _)| m)
        .map_err(|source| ConfigError::Discovery { url, source })
}

/// The provider's metadata (OpenID Connect Discovery 1.0), as far as this crate uses it.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// The issuer identifier; must equal the `iss` of every token.
    pub issuer: String,
    /// Where browsers are sent to log in.
    #[serde(default)]
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    #[serde(default)]
    pub token_endpoint: String,
    /// The provider's signing keys.
    #[serde(default)]
    pub jwks_uri: String,
    /// RP-initiated logout endpoint, if the provider has one.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// OAuth 2.0 token revocation endpoint (RFC 7009), if the provider has one: logout revokes
    /// the session's refresh token there. An endpoint that is not https (http only on loopback
    /// hosts) is ignored, with a warning, rather than sent a refresh token.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// Supported client authentication methods at the token endpoint.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 9207: the provider sends `iss` on authorization responses.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// Supported PKCE methods.
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Algorithms the token endpoint accepts for `private_key_jwt` assertions.
    #[serde(default)]
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// Client authentication methods the revocation endpoint accepts (RFC 8414 section 2).
    #[serde(default)]
    pub revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// Algorithms the revocation endpoint accepts for `private_key_jwt` assertions.
    #[serde(default)]
    pub revocation_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 9126: where authorization requests are pushed before the browser is redirected.
    /// Checked where it is used (https, http only on loopback hosts).
    #[serde(default)]
    pub pushed_authorization_request_endpoint: Option<String>,
    /// RFC 9126 section 5: the provider accepts authorization requests only through PAR.
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
}

impl ProviderMetadata {
    fn validate(&self) -> Result<(), ConfigError> {
        for (what, value) in [
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
            ("jwks_uri", &self.jwks_uri),
        ] {
            if value.is_empty() {
                return Err(ConfigError::Metadata(format!("{what} is missing")));
            }
            check_url(what, value)?;
        }
        if let Some(end) = &self.end_session_endpoint {
            check_url("end_session_endpoint", end)?;
        }
        if let Some(methods) = &self.code_challenge_methods_supported {
            if !methods.iter().any(|m| m == "S256") {
                return Err(ConfigError::Metadata(
                    "the provider does not support PKCE S256".into(),
                ));
            }
        }
        Ok(())
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// HTTP Basic authentication.
    ClientSecretBasic,
}

impl ClientAuthMethod {
    /// Post when the provider supports it, Basic when it lists only Basic or lists nothing
    /// (the spec's default).
    pub(crate) fn choose(meta: &ProviderMetadata, scalekit: bool) -> Self {
        if scalekit {
            return Self::ClientSecretPost;
        }
        match &meta.token_endpoint_auth_methods_supported {
            Some(methods) if methods.iter().any(|m| m == "client_secret_post") => {
                Self::ClientSecretPost
            }
            _ => Self::ClientSecretBasic,
        }
    }
}

/// A token endpoint response (RFC 6749 section 5.1, OpenID Connect Core 3.1.3.3).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) token_type: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    #[serde(default)]
    pub(crate) id_token: Option<String>,
}

impl TokenResponse {
    /// Refuses a response that parsed but is unusable: a token type other than Bearer, or an
    /// empty access token.
    pub(crate) fn checked(self) -> Result<Self, ProviderError> {
        if let Some(tt) = &self.token_type {
            if !tt.eq_ignore_ascii_case("bearer") {
                return Err(ProviderError::Malformed(format!(
                    "unsupported token_type {tt:?}"
                )));
            }
        }
        if self.access_token.is_empty() {
            return Err(ProviderError::Malformed("empty access_token".into()));
        }
        Ok(self)
    }

    /// `expires_in` as seconds; some providers send it as a string.
    pub(crate) fn expires_in(&self) -> Option<i64> {
        match &self.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
    }
}

/// How [`TokenClient`] authenticates: a secret (post or basic), or signed assertions.
#[derive(Debug, Clone)]
pub(crate) enum TokenAuth {
    Secret {
        secret: Secret,
        method: ClientAuthMethod,
    },
    PrivateKeyJwt(Assertions),
}

/// The client's credentials, ready for one request: form fields, or HTTP Basic.
struct Credentials<'a> {
    form: Vec<(&'static str, std::borrow::Cow<'a, str>)>,
    basic: Option<(&'a str, &'a str)>,
}

/// The token endpoint, with the client's credentials.
pub(crate) struct TokenClient {
    pub(crate) http: HttpClient,
    pub(crate) endpoint: String,
    pub(crate) client_id: String,
    pub(crate) auth: TokenAuth,
    /// The layer's clock: `iat` and `exp` of client assertions.
    pub(crate) clock: crate::clock::SharedClock,
    /// RFC 9126: the pushed authorization request endpoint, when the layer uses PAR.
    pub(crate) par_endpoint: Option<String>,
}

impl std::fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenClient")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("par_endpoint", &self.par_endpoint)
            .finish_non_exhaustive()
    }
}

impl TokenClient {
    pub(crate) async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, ProviderError> {
        self.call(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect_uri),
        ])
        .await
    }

    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
    ) -> Result<TokenResponse, ProviderError> {
        self.call(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    /// Revokes a refresh token at the provider's revocation endpoint (RFC 7009), with the same
    /// client authentication as the token endpoint.
    pub(crate) async fn revoke_refresh_token(
        &self,
        endpoint: &str,
        refresh_token: &str,
    ) -> Result<(), ProviderError> {
        let creds = self.authenticate()?;
        let mut form = vec![
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
        ];
        form.extend(creds.form.iter().map(|(k, v)| (*k, v.as_ref())));
        self.http
            .post_form_status(http::Endpoint::Revocation, endpoint, &form, creds.basic)
            .await
    }

    /// RFC 9126 section 2: pushes the authorization request's parameters to `endpoint`, with
    /// the same client authentication as the token endpoint, and reads its `request_uri`.
    pub(crate) async fn push_authorization(
        &self,
        endpoint: &str,
        params: &[(&str, &str)],
    ) -> Result<PushedRequest, ProviderError> {
        let creds = self.authenticate()?;
        let mut form: Vec<(&str, &str)> = params.to_vec();
        // Secret-based methods put `client_id` in the form (post) or the header (basic); the
        // authorization request's own `client_id` is among `params` either way.
        form.extend(
            creds
                .form
                .iter()
                .filter(|(k, _)| *k != "client_id")
                .map(|(k, v)| (*k, v.as_ref())),
        );
        let pushed: PushedRequest = self
            .http
            .post_form(http::Endpoint::Par, endpoint, &form, creds.basic)
            .await?;
        pushed.checked()
    }

    /// The client's credentials for one request: `client_id` and `client_secret` in the form
    /// (`client_secret_post`), HTTP Basic, or `client_id` with a fresh signed assertion
    /// (`private_key_jwt`).
    fn authenticate(&self) -> Result<Credentials<'_>, ProviderError> {
        use std::borrow::Cow;
        Ok(match &self.auth {
            TokenAuth::Secret {
                secret,
                method: ClientAuthMethod::ClientSecretPost,
            } => Credentials {
                form: vec![
                    ("client_id", Cow::Borrowed(self.client_id.as_str())),
                    ("client_secret", Cow::Borrowed(secret.expose())),
                ],
                basic: None,
            },
            TokenAuth::Secret { secret, .. } => Credentials {
                form: Vec::new(),
                basic: Some((self.client_id.as_str(), secret.expose())),
            },
            TokenAuth::PrivateKeyJwt(assertions) => Credentials {
                form: vec![
                    ("client_id", Cow::Borrowed(self.client_id.as_str())),
                    (
                        "client_assertion_type",
                        Cow::Borrowed(JWT_BEARER_ASSERTION_TYPE),
                    ),
                    (
                        "client_assertion",
                        Cow::Owned(assertions.sign(self.clock.now())?),
                    ),
                ],
                basic: None,
            },
        })
    }

    async fn call(&self, params: &[(&str, &str)]) -> Result<TokenResponse, ProviderError> {
        let creds = self.authenticate()?;
        let mut form: Vec<(&str, &str)> = params.to_vec();
        form.extend(creds.form.iter().map(|(k, v)| (*k, v.as_ref())));
        let resp: TokenResponse = self
            .http
            .post_form(http::Endpoint::Token, &self.endpoint, &form, creds.basic)
            .await?;
        resp.checked()
    }
}
