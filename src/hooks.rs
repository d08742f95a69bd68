//! What the app does after login: the user's access token for calling APIs, and hooks that run
//! at sign-in, refresh and logout.
//!
//! - [`AccessToken`]: the access token of the request's session (refreshed when it was due) or
//!   the bearer token presented. An axum extractor, and `request.access_token()` through
//!   [`AccessTokenExt`] for tonic and plain tower services.
//! - [`AuthLayerBuilder::on_login`](crate::AuthLayerBuilder::on_login): runs after the ID token
//!   is verified and before any cookie is set. It may refuse the sign-in (a disabled account,
//!   the wrong organization) or keep a small value in the session, read back with
//!   [`AppData`](crate::extract::AppData) or [`Claims::app_data`](crate::Claims::app_data).
//! - [`on_refresh`](crate::AuthLayerBuilder::on_refresh) (may end the session) and
//!   [`on_logout`](crate::AuthLayerBuilder::on_logout) (a notification).
//!
//! A hook has a time limit ([`hook_timeout`](crate::AuthLayerBuilder::hook_timeout), 10 s by
//! default). An error, a panic or the time limit at sign-in gives the sign-in error page, never
//! a 500, and no session.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tower_oidc_auth::hooks::{LoginContext, LoginDecision};
//! use tower_oidc_auth::testing::TestProvider;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Account {
//!     id: u64,
//! }
//!
//! let provider = TestProvider::start().await;
//! let auth = provider
//!     .layer_builder("http://127.0.0.1:3000/auth/callback")
//!     .on_login(|ctx: LoginContext| async move {
//!         if ctx.claims.email.as_deref() == Some("mallory@example.com") {
//!             return Ok(LoginDecision::deny("This account is disabled."));
//!         }
//!         // Provision the user's row here, then keep its id in the session.
//!         LoginDecision::allow_with(&Account { id: 42 })
//!     })
//!     .build()
//!     .await
//!     .unwrap();
//! # let _ = auth;
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

pub use crate::access_token::{AccessToken, AccessTokenExt};

use crate::claims::Claims;

/// The error a hook may return: anything that converts into a boxed error (`?` works on most
/// errors). It is logged, never shown.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// The largest app data a session keeps, in bytes of JSON. It lives in the session cookie, so
/// keep it to ids and flags; look up the rest in the app's own store.
pub const APP_DATA_MAX_BYTES: usize = 1024;

/// What [`on_login`](crate::AuthLayerBuilder::on_login) is told about a sign-in whose tokens
/// have been verified.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoginContext {
    /// The verified claims: the ID token's, with the access token's over them (as a request's
    /// claims are), including claims the session does not keep.
    pub claims: Claims,
    /// Where the browser goes after sign-in: a same-origin path.
    pub return_to: String,
    /// The access token the provider issued.
    pub access_token: AccessToken,
}

/// What [`on_refresh`](crate::AuthLayerBuilder::on_refresh) is told about a refreshed session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RefreshContext {
    /// The session's claims with the new tokens.
    pub claims: Claims,
    /// The new access token.
    pub access_token: AccessToken,
}

/// What [`on_logout`](crate::AuthLayerBuilder::on_logout) is told: the session that the user
/// ended at the logout route.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LogoutContext {
    /// The ended session's identity claims (those the session keeps: `sub`, `iss`, `sid` and
    /// [`session_claims`](crate::AuthLayerBuilder::session_claims)).
    pub claims: Claims,
}

/// A login or refresh hook's decision.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LoginDecision {
    /// Sign the user in (or keep the refreshed session), keeping the app data the session has.
    Allow,
    /// Sign the user in and keep `app_data` in the session (at most [`APP_DATA_MAX_BYTES`] of
    /// JSON), replacing what it had. See [`LoginDecision::allow_with`].
    AllowWith {
        /// The value kept, read back with [`AppData`](crate::extract::AppData).
        app_data: serde_json::Value,
    },
    /// Refuse: no session is created (at a refresh, the session ends). `reason` is shown to
    /// the user on a 403 page (escaped), so word it for them.
    Deny {
        /// What the user is told.
        reason: String,
    },
}

impl LoginDecision {
    /// [`Allow`](Self::Allow).
    #[must_use]
    pub fn allow() -> Self {
        Self::Allow
    }

    /// [`AllowWith`](Self::AllowWith) a value serialized to JSON.
    ///
    /// # Errors
    /// When `T`'s `Serialize` fails.
    pub fn allow_with<T: serde::Serialize + ?Sized>(app_data: &T) -> Result<Self, HookError> {
        Ok(Self::AllowWith {
            app_data: serde_json::to_value(app_data)?,
        })
    }

    /// [`Deny`](Self::Deny) with what the user is told.
    #[must_use]
    pub fn deny(reason: impl Into<String>) -> Self {
        Self::Deny {
            reason: reason.into(),
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A hook as the layer keeps it.
pub(crate) struct Hook<C, T>(Arc<dyn Fn(C) -> BoxFuture<Result<T, HookError>> + Send + Sync>);

impl<C, T> Clone for Hook<C, T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<C, T> fmt::Debug for Hook<C, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hook(..)")
    }
}

impl<C: 'static, T: 'static> Hook<C, T> {
    pub(crate) fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, HookError>> + Send + 'static,
    {
        Self(Arc::new(move |cx| Box::pin(f(cx))))
    }

    /// Runs the hook within `timeout`; an error, a panic or the timeout is an `Err` naming it
    /// (for the log).
    pub(crate) async fn run(&self, cx: C, timeout: Duration) -> Result<T, String> {
        let fut = AssertUnwindSafe((self.0)(cx)).catch_unwind();
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(format!("the hook failed: {error}")),
            Ok(Err(_)) => Err("the hook panicked".into()),
            Err(_) => Err(format!("the hook did not finish within {timeout:?}")),
        }
    }
}

/// The hooks the app set.
#[derive(Clone, Default, Debug)]
pub(crate) struct Hooks {
    pub(crate) login: Option<Hook<LoginContext, LoginDecision>>,
    pub(crate) refresh: Option<Hook<RefreshContext, LoginDecision>>,
    pub(crate) logout: Option<Hook<LogoutContext, ()>>,
    pub(crate) timeout: Duration,
}

/// The default [`Hooks::timeout`].
pub(crate) const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// App data as the session keeps it: compact JSON within [`APP_DATA_MAX_BYTES`].
pub(crate) fn seal_app_data(
    value: &serde_json::Value,
) -> Result<Box<serde_json::value::RawValue>, String> {
    let json = serde_json::to_string(value).map_err(|e| e.to_string())?;
    if json.len() > APP_DATA_MAX_BYTES {
        return Err(format!(
            "app data of {} bytes is over the limit of {APP_DATA_MAX_BYTES} bytes; keep an id \
             in the session and the rest in the app's own store",
            json.len()
        ));
    }
    serde_json::value::RawValue::from_string(json).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_data_over_the_limit_is_refused() {
        let small = serde_json::json!({"id": 42});
        assert_eq!(seal_app_data(&small).unwrap().get(), r#"{"id":42}"#);
        let big = serde_json::Value::String("x".repeat(APP_DATA_MAX_BYTES));
        assert!(seal_app_data(&big).unwrap_err().contains("over the limit"));
    }

    #[tokio::test]
    async fn a_hook_error_panic_or_timeout_is_an_err() {
        let t = Duration::from_millis(50);
        let failing: Hook<(), ()> = Hook::new(|()| async { Err("db down".into()) });
        assert!(failing.run((), t).await.unwrap_err().contains("db down"));
        let panicking: Hook<(), ()> = Hook::new(|()| async { panic!("boom") });
        assert!(panicking.run((), t).await.unwrap_err().contains("panicked"));
        let stuck: Hook<(), ()> = Hook::new(|()| std::future::pending());
        assert!(stuck.run((), t).await.unwrap_err().contains("within"));
        let fine: Hook<(), u8> = Hook::new(|()| async { Ok(7) });
        assert_eq!(fine.run((), t).await, Ok(7));
    }
}
