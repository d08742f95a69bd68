//! [`ManagementClientBuilder`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::client::{ClientInner, ManagementClient};
use super::credentials::{ClientCredentials, Sleeper, TokioSleeper};

/// Builder for [`ManagementClient`].
#[must_use]
pub struct ManagementClientBuilder {
    base: String,
    credentials: ClientCredentials,
    timeout: Duration,
    max_body: usize,
    max_retries: u32,
    max_retry_delay: Duration,
    sleeper: Arc<dyn Sleeper>,
    environment: String,
    same_environment: Vec<String>,
}

impl fmt::Debug for ManagementClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementClientBuilder")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ManagementClient {
    /// A builder, to change timeouts, limits and retries.
    pub fn builder(env_url: &str, credentials: ClientCredentials) -> ManagementClientBuilder {
        ManagementClientBuilder::new(env_url, credentials)
    }
}

impl ManagementClientBuilder {
    /// The defaults, for the environment at `env_url` (calls go to `<env_url>/api/v1`).
    pub(super) fn new(env_url: &str, credentials: ClientCredentials) -> Self {
        Self {
            base: format!("{}/api/v1", env_url.trim_end_matches('/')),
            credentials,
            timeout: Duration::from_secs(10),
            max_body: 4 * 1024 * 1024,
            max_retries: 3,
            max_retry_delay: Duration::from_secs(30),
            sleeper: Arc::new(TokioSleeper),
            environment: env_url.to_owned(),
            same_environment: Vec::new(),
        }
    }

    /// Timeout of each call (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest response read (default 4 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Retries of a GET on 429 or 5xx (default 3).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Longest wait between retries, whatever `Retry-After` says (default 30 s).
    pub fn max_retry_delay(mut self, delay: Duration) -> Self {
        self.max_retry_delay = delay;
        self
    }

    /// How to wait between retries (default tokio's timer; tests inject their own).
    pub fn sleeper(mut self, sleeper: impl Sleeper) -> Self {
        self.sleeper = Arc::new(sleeper);
        self
    }

    /// An issuer that is this environment under another name (its custom domain, repeatable),
    /// such as a [trusted issuer](crate::AuthLayerBuilder::trust_issuer): its claims' `sub`
    /// are this environment's users, so [`current_user`](ManagementClient::current_user)
    /// accepts them. Claims of any other issuer than the environment URL are refused.
    pub fn same_environment_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.same_environment.push(issuer.into());
        self
    }

    /// The client.
    pub fn build(self) -> ManagementClient {
        ManagementClient::from_inner(ClientInner {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(self.timeout)
                .user_agent(concat!("tower-oidc-auth/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
            base: self.base,
            credentials: self.credentials,
            timeout: self.timeout,
            max_body: self.max_body,
            max_retries: self.max_retries,
            max_retry_delay: self.max_retry_delay,
            sleeper: self.sleeper,
            environment: self.environment,
            same_environment: self.same_environment,
        })
    }
}
