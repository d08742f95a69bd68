//! The HTTP client for provider calls: timeouts, size limits, and errors that say what failed.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Deserialize;

pub(crate) use crate::telemetry::Endpoint;

/// What went wrong talking to the provider.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider could not be reached (connection refused, DNS, TLS). What failed is the
    /// error's `source()`.
    #[error("cannot reach the provider")]
    Unreachable {
        /// The underlying failure (the HTTP client's error, with its own sources).
        #[source]
        source: std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The provider did not answer in time.
    #[error("provider timed out after {0:?}")]
    Timeout(Duration),
    /// The provider answered with an OAuth error (RFC 6749 section 5.2).
    #[error("provider returned {status} {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    OAuth {
        /// HTTP status.
        status: u16,
        /// The `error` code, such as `invalid_grant`.
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The provider answered with an unexpected HTTP status.
    #[error("provider returned HTTP {0}")]
    Status(u16),
    /// The response was not what the protocol requires.
    #[error("malformed provider response: {0}")]
    Malformed(String),
    /// The response was larger than the configured limit.
    #[error("provider response larger than {0} bytes")]
    TooLarge(usize),
}

impl ProviderError {
    /// True when the provider said the grant is invalid (expired, revoked or reused).
    #[must_use]
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::OAuth { error, .. } if error == "invalid_grant")
    }

    /// True for failures that say nothing about the request: the provider is down, slow or broken.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. }
            | Self::Timeout(_)
            | Self::Malformed(_)
            | Self::TooLarge(_) => true,
            Self::Status(s) => *s >= 500 || *s == 429,
            Self::OAuth { status, error, .. } => {
                *status >= 500 || error == "temporarily_unavailable" || error == "server_error"
            }
        }
    }
}

impl ProviderError {
    /// What kind of failure, as a closed set of names (a span field; never the message, which
    /// may quote the provider's answer).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::Timeout(_) => "timeout",
            Self::OAuth { .. } => "oauth_error",
            Self::Status(_) => "http_status",
            Self::Malformed(_) => "malformed",
            Self::TooLarge(_) => "too_large",
        }
    }
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    error_description: Option<String>,
}

/// An HTTP client with one timeout for each whole call and a cap on response size.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    timeout: Duration,
    max_body: usize,
}

impl HttpClient {
    pub(crate) fn new(timeout: Duration, max_body: usize) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .user_agent(concat!("tower-oidc-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            client,
            timeout,
            max_body,
        }
    }

    /// GET a JSON document.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        url: &str,
    ) -> Result<(T, Option<u64>), ProviderError> {
        let req = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json");
        let (status, headers, body) = self.send(endpoint, req).await?;
        if !status.is_success() {
            return Err(ProviderError::Status(status.as_u16()));
        }
        let max_age = headers
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
        Ok((json_answer(url, &body)?, max_age))
    }

    /// POST a form and read a JSON answer, mapping OAuth error bodies.
    pub(crate) async fn post_form<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        url: &str,
        form: &[(&str, &str)],
        basic_auth: Option<(&str, &str)>,
    ) -> Result<T, ProviderError> {
        let (status, _, body) = self
            .send(endpoint, self.form_request(url, form, basic_auth))
            .await?;
        form_answer(status, &body)
    }

    /// POST a form whose answer has no content to read (RFC 7009 revocation): success is any
    /// 2xx status; an error status is mapped like [`form_answer`]'s.
    pub(crate) async fn post_form_status(
        &self,
        endpoint: Endpoint,
        url: &str,
        form: &[(&str, &str)],
        basic_auth: Option<(&str, &str)>,
    ) -> Result<(), ProviderError> {
        let (status, _, body) = self
            .send(endpoint, self.form_request(url, form, basic_auth))
            .await?;
        if status.is_success() {
            return Ok(());
        }
        form_answer::<serde::de::IgnoredAny>(status, &body).map(|_| ())
    }

    fn form_request(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic_auth: Option<(&str, &str)>,
    ) -> reqwest::RequestBuilder {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .client
            .post(url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(body);
        if let Some((user, pass)) = basic_auth {
            // RFC 6749 section 2.3.1: both parts are form-urlencoded before base64.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(user), Some(enc(pass)));
        }
        req
    }

    /// Sends a request to the provider's `endpoint`, in a span of its own, and records how long
    /// it took (`oidc_provider_request_seconds`), whatever the outcome.
    async fn send(
        &self,
        endpoint: Endpoint,
        req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Bytes), ProviderError> {
        use tracing::Instrument;
        let span = tracing::debug_span!(
            "oidc.provider_request",
            endpoint = endpoint.label(),
            status = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let answer = self.send_timed(req).instrument(span.clone()).await;
        crate::telemetry::provider_request(endpoint, started.elapsed());
        match &answer {
            Ok((status, ..)) => span.record("status", status.as_u16()),
            Err(error) => span.record("status", error.kind()),
        };
        answer
    }

    async fn send_timed(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Bytes), ProviderError> {
        let timeout = self.timeout;
        let max = self.max_body;
        let fut = async move {
            let mut resp = req.send().await.map_err(|e| map_reqwest(e, timeout))?;
            let status = resp.status();
            let headers = std::mem::take(resp.headers_mut());
            if resp.content_length().is_some_and(|len| len > max as u64) {
                return Err(ProviderError::TooLarge(max));
            }
            let mut body = BytesMut::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| map_reqwest(e, timeout))? {
                if body.len() + chunk.len() > max {
                    return Err(ProviderError::TooLarge(max));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, headers, body.freeze()))
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::Timeout(timeout)),
        }
    }
}

/// A JSON document fetched from `url`. No I/O (the fuzz targets call it too).
pub(crate) fn json_answer<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|e| ProviderError::Malformed(format!("{url}: {e}")))
}

/// The answer to a form POST: JSON on success, an OAuth error body (RFC 6749 section 5.2) or a
/// bare status otherwise. No I/O (the fuzz targets call it too).
pub(crate) fn form_answer<T: DeserializeOwned>(
    status: reqwest::StatusCode,
    body: &[u8],
) -> Result<T, ProviderError> {
    if !status.is_success() {
        if let Ok(err) = serde_json::from_slice::<OAuthErrorBody>(body) {
            return Err(ProviderError::OAuth {
                status: status.as_u16(),
                error: err.error,
                description: err.error_description,
            });
        }
        return Err(ProviderError::Status(status.as_u16()));
    }
    serde_json::from_slice(body).map_err(|e| ProviderError::Malformed(e.to_string()))
}

fn map_reqwest(e: reqwest::Error, timeout: Duration) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout(timeout)
    } else if e.is_body() || e.is_decode() {
        ProviderError::Malformed(e.to_string())
    } else {
        ProviderError::Unreachable {
            source: crate::error::cause(e),
        }
    }
}

/// `max-age` from a Cache-Control value, unless `no-store` / `no-cache` say not to cache.
pub(crate) fn parse_max_age(value: &str) -> Option<u64> {
    let mut max_age = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return Some(0);
        }
        if let Some((name, v)) = directive.split_once('=') {
            if name.trim().eq_ignore_ascii_case("max-age") {
                max_age = v.trim().trim_matches('"').parse().ok();
            }
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The HTTP client's failure is kept as the error's source, with its own chain down to the
    /// operating system's answer; it used to be flattened into a string that dropped the chain.
    #[tokio::test]
    async fn unreachable_keeps_the_cause_chain() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = HttpClient::new(Duration::from_secs(5), 1024);
        let error = client
            .get_json::<serde_json::Value>(
                Endpoint::Discovery,
                &format!("http://127.0.0.1:{port}/"),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProviderError::Unreachable { .. }),
            "{error:?}"
        );
        let chain = crate::error::Chain(&error).to_string();
        assert!(chain.starts_with("cannot reach the provider: "), "{chain}");
        assert!(chain.to_ascii_lowercase().contains("refused"), "{chain}");
        assert!(error.is_transient());
    }

    #[test]
    fn max_age_parsing() {
        assert_eq!(parse_max_age("public, max-age=3600"), Some(3600));
        assert_eq!(parse_max_age("max-age=\"60\""), Some(60));
        assert_eq!(parse_max_age("no-store"), Some(0));
        assert_eq!(parse_max_age("max-age=abc"), None);
        assert_eq!(parse_max_age("public"), None);
    }

    #[test]
    fn invalid_grant_is_not_transient() {
        let e = ProviderError::OAuth {
            status: 400,
            error: "invalid_grant".into(),
            description: None,
        };
        assert!(e.is_invalid_grant());
        assert!(!e.is_transient());
        assert!(ProviderError::Status(503).is_transient());
        assert!(ProviderError::Timeout(Duration::from_secs(1)).is_transient());
    }
}
