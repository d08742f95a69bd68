//! A typed client for Scalekit's Management API (feature `management`).
//!
//! Web apps call the Management API from the backend with the app's own client id and secret,
//! once "Allow Scalekit Management API Access" is enabled for the client in the Scalekit
//! dashboard. [`ClientCredentials`] gets and caches the token (`client_credentials` grant);
//! [`ManagementClient`] calls `<ENV_URL>/api/v1/...` with timeouts, bounded response sizes,
//! retries for idempotent GETs on 429/5xx (honouring `Retry-After`), and typed errors.
//!
//! Requests follow Scalekit's OpenAPI specification (`openapi/scalekit.yaml` of
//! `scalekit-inc/developer-docs`; a copy lives in this crate's `tests/fixtures/`, where contract
//! tests check request bodies against its schemas and parse every response example it gives for
//! the endpoints called here). Before any request, the client refuses what the API must not see:
//! an id that is not exactly one URL path segment ([`ManagementError::InvalidId`]), a `page_size`
//! outside the endpoint's bounds ([`ManagementError::InvalidPageSize`]), and a signed-in subject
//! that is not a Scalekit user ([`ManagementError::NotAScalekitUser`]).
//!
//! ```no_run
//! # async fn run(claims: tower_oidc_auth::Claims) -> Result<(), tower_oidc_auth::management::ManagementError> {
//! use tower_oidc_auth::management::{ClientCredentials, ManagementClient};
//! let env = "https://yourenv.scalekit.com";
//! let client = ManagementClient::new(env, ClientCredentials::scalekit(env, "skc_...", "secret"));
//! let user = client.current_user(&claims).await?;
//! for membership in client.user_organizations(&claims).await? {
//!     println!("{} as {:?}", membership.organization_id, membership.role_names());
//! }
//! # let _ = user; Ok(()) }
//! ```

mod api;
mod builder;
mod client;
mod credentials;
mod error;
mod model;
#[cfg(test)]
mod tests;

#[cfg(feature = "__private")]
pub(crate) use api::{api_answer, field, is_unauthenticated, page_items};
pub use builder::ManagementClientBuilder;
pub use client::ManagementClient;
#[cfg(feature = "__private")]
pub(crate) use credentials::{token_answer, token_expiry};
pub use credentials::{ClientCredentials, Sleeper, TokioSleeper};
pub use error::ManagementError;
pub use model::*;

/// The `x-api-version` header sent with every Management API call: the API version (a date,
/// `YYYYMMDD`) Scalekit's own SDKs send. Taken from `apiVersion` in `src/core.ts` of
/// `scalekit-inc/scalekit-sdk-node` v2.10.0 (commit `d1340116`, 2026-07-17; set by its commit
/// `efd7293` "chore: set x-api-version to 20260716"), the newest of the official SDKs;
/// `scalekit-sdk-go` v2.6.0 (`core.go`) sends the older `20260312`.
pub const API_VERSION: &str = "20260716";
