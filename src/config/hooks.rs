//! The builder's hooks: what the app runs at sign-in, refresh and logout
//! ([`crate::hooks`]).

use std::future::Future;
use std::time::Duration;

use super::AuthLayerBuilder;
use crate::hooks::{Hook, HookError, LoginContext, LoginDecision, LogoutContext, RefreshContext};

impl AuthLayerBuilder {
    /// Runs `hook` at every sign-in, after the ID token is verified and before any cookie is
    /// set. It decides: [`LoginDecision::Allow`], [`LoginDecision::AllowWith`] (keeping a small
    /// value in the session, read with [`AppData`](crate::extract::AppData)) or
    /// [`LoginDecision::Deny`] (a 403 page naming the reason; no session). An error, a panic or
    /// the [`hook_timeout`](Self::hook_timeout) gives the sign-in error page and no session.
    /// See [`hooks`](crate::hooks) for an example.
    pub fn on_login<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(LoginContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<LoginDecision, HookError>> + Send + 'static,
    {
        self.hooks.login = Some(Hook::new(hook));
        self
    }

    /// Runs `hook` when a session's tokens have been refreshed and verified, before the new
    /// session cookie is written. [`LoginDecision::Deny`] ends the session (the user is signed
    /// out); [`LoginDecision::AllowWith`] replaces the session's app data. An error or the
    /// timeout keeps the old session for now: the next request that needs the refresh runs the
    /// hook again. It runs in each request that applies the refreshed tokens: normally one,
    /// more when a browser's requests race the refresh.
    ///
    /// ```
    /// use tower_oidc_auth::hooks::{LoginDecision, RefreshContext};
    /// # fn f(b: tower_oidc_auth::AuthLayerBuilder) -> tower_oidc_auth::AuthLayerBuilder {
    /// b.on_refresh(|ctx: RefreshContext| async move {
    ///     // Sign out users whose organization lost access since they signed in.
    ///     Ok(if ctx.claims.oid.as_deref() == Some("org_suspended") {
    ///         LoginDecision::deny("Your organization's access has ended.")
    ///     } else {
    ///         LoginDecision::Allow
    ///     })
    /// })
    /// # }
    /// ```
    pub fn on_refresh<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(RefreshContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<LoginDecision, HookError>> + Send + 'static,
    {
        self.hooks.refresh = Some(Hook::new(hook));
        self
    }

    /// Runs `hook` when a user signs out at the logout route with a session, before the
    /// browser leaves for the provider: a notification (clear the app's caches of the user,
    /// write an audit entry). Its error or timeout is logged; the logout goes on.
    ///
    /// ```
    /// use tower_oidc_auth::hooks::LogoutContext;
    /// # fn f(b: tower_oidc_auth::AuthLayerBuilder) -> tower_oidc_auth::AuthLayerBuilder {
    /// b.on_logout(|ctx: LogoutContext| async move {
    ///     tracing::info!(sub = %ctx.claims.sub, "audit: signed out");
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub fn on_logout<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(LogoutContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HookError>> + Send + 'static,
    {
        self.hooks.logout = Some(Hook::new(hook));
        self
    }

    /// How long a hook may run (default 10 s). A sign-in whose hook runs longer gets the
    /// sign-in error page.
    pub fn hook_timeout(mut self, timeout: Duration) -> Self {
        self.hooks.timeout = timeout;
        self
    }
}
