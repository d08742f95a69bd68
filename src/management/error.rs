//! Errors of the Management API client.

use std::fmt;

/// What went wrong calling the Management API.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ManagementError {
    /// The API answered with an error (`{code, message, details[{error_code}]}`).
    #[error("management API returned {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The gRPC-style status code in the body, if any.
        code: Option<i64>,
        /// The message in the body (or the HTTP reason).
        message: String,
        /// The first `details[].error_code`, such as `USER_NOT_FOUND`.
        error_code: Option<String>,
    },
    /// The token endpoint refused or failed.
    #[error("management API token: {0}")]
    Token(String),
    /// The API could not be reached. What failed is the error's `source()`.
    #[error("cannot reach the management API")]
    Unreachable {
        /// The underlying failure (the HTTP client's error, with its own sources).
        #[source]
        source: std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// No answer within the timeout.
    #[error("management API timed out")]
    Timeout,
    /// The response was larger than allowed.
    #[error("management API response larger than {0} bytes")]
    TooLarge(usize),
    /// The response was not the JSON expected.
    #[error("malformed management API response: {0}")]
    Malformed(String),
    /// An id that goes into a URL path is not one path segment: it is empty, or has a character
    /// outside `A-Z a-z 0-9 _ -` (such as `.`, `/`, `%`, `?`, `;`). `..` would otherwise climb to
    /// another endpoint: `list_organization_users("..")` would list every user of the
    /// environment. Refused before any request.
    #[error(
        "invalid {name} {}: an id in a Management API path is one or more of A-Z a-z 0-9 _ -",
        Shown(id)
    )]
    InvalidId {
        /// Which parameter: `organization_id`, `user_id`, `session_id`.
        name: &'static str,
        /// The id as given.
        id: String,
    },
    /// A `page_size` outside the bounds Scalekit's specification gives for the endpoint (10 to
    /// 100 for users and organizations, 1 to 100 for an organization's users). Refused before
    /// any request.
    #[error(
        "page_size {page_size} is out of range for {operation}: it must be {}",
        Bounds(*min, *max)
    )]
    InvalidPageSize {
        /// The operation, as the specification names it (`UserService_ListUsers`).
        operation: &'static str,
        /// The page size asked for.
        page_size: u32,
        /// The smallest page size allowed.
        min: u32,
        /// The largest, if the specification states one.
        max: Option<u32>,
    },
    /// The signed-in subject is not a Scalekit user id (`usr_...`), so the Management API has no
    /// user for it. Under modular SSO (Scalekit SSO without its user management) the `sub` is
    /// `<connection id>;<IdP user id>`, such as
    /// `conn_70087756662964366;dcc62570-6a5a-4819-b11b-d33d110c7716`; a machine-to-machine
    /// token's is its client (`m2morg_...`). Returned by [`ManagementClient::current_user`](super::ManagementClient::current_user) and
    /// [`ManagementClient::user_organizations`](super::ManagementClient::user_organizations) without a request.
    #[error(
        "the signed-in subject {} is not a Scalekit user id (usr_...): modular SSO subjects \
         (<connection id>;<IdP user id>) and machine clients have no Management API user",
        Shown(sub)
    )]
    NotAScalekitUser {
        /// The token's `sub`.
        sub: String,
    },
    /// The claims' issuer is not this client's environment (such as a
    /// [trusted issuer](crate::AuthLayerBuilder::trust_issuer), or another layer's provider):
    /// their `sub` is that issuer's, and the same id in this environment may be another user.
    /// Returned by [`ManagementClient::current_user`](super::ManagementClient::current_user)
    /// without a request, unless the issuer is this environment under another name (its
    /// custom domain), named with
    /// [`ManagementClientBuilder::same_environment_issuer`](super::ManagementClientBuilder::same_environment_issuer).
    #[error(
        "the claims were issued by {}, not this environment: their subject is not this \
         environment's user",
        Shown(issuer)
    )]
    ForeignIssuer {
        /// The claims' issuer.
        issuer: String,
    },
}

/// An outside value in an error message: quoted and escaped, cut to a length that keeps the
/// message readable.
pub(super) struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX_CHARS: usize = 64;
        match self.0.char_indices().nth(MAX_CHARS) {
            Some((cut, _)) => write!(f, "{:?}...", &self.0[..cut]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// `min to max`, or `at least min`.
pub(super) struct Bounds(u32, Option<u32>);

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(max) => write!(f, "{} to {max}", self.0),
            None => write!(f, "at least {}", self.0),
        }
    }
}

impl ManagementError {
    /// The HTTP status of an API error.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}
