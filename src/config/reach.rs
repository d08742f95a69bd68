//! Who the layer serves beyond its own login: protected-resource mode, and bearer tokens of
//! other issuers.

use super::AuthLayerBuilder;
use crate::provider::Provider;
use crate::resource::ResourceServer;

impl AuthLayerBuilder {
    /// Makes the layer a protected resource (RFC 9728) for API and MCP servers: it accepts only
    /// bearer tokens whose `aud` contains the resource identifier (plus any
    /// [`audience`](Self::audience)), serves the metadata document at
    /// `/.well-known/oauth-protected-resource` (before the resource's path, RFC 9728 section
    /// 3.1, and at the bare path), answers every 401 with
    /// `WWW-Authenticate: Bearer realm="OAuth", resource_metadata="<metadata URL>"` (and
    /// `error="invalid_token"` for a refused token), and a missing scope
    /// ([`require_scope`](crate::AuthLayer::require_scope)) with 403
    /// `error="insufficient_scope", scope="..."` (RFC 6750 section 3.1).
    ///
    /// In this mode there are no login, callback or logout routes, no cookies are read or set,
    /// and browsers are answered like any API client (401, never a redirect). A client id,
    /// client secret, redirect URL and cookie key are not needed. See
    /// [`ResourceServer::cors`] for cross-origin clients.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_oidc_auth::ConfigError> {
    /// use tower_oidc_auth::{AuthLayer, Provider, ResourceServer};
    /// let auth = AuthLayer::builder()
    ///     .provider(Provider::scalekit("https://yourenv.scalekit.com"))
    ///     .resource_server(
    ///         ResourceServer::new("https://mcp.example.com/mcp")
    ///             .scopes_supported(["todo:read", "todo:write"])
    ///             // Scalekit's authorization server for this MCP server:
    ///             .authorization_servers(["https://yourenv.scalekit.com/resources/res_123"]),
    ///     )
    ///     .build()
    ///     .await?;
    /// # let _ = auth; Ok(()) }
    /// ```
    pub fn resource_server(mut self, resource: ResourceServer) -> Self {
        self.resource_server = Some(resource);
        self
    }

    /// Also accepts bearer tokens of another issuer, for these audiences (repeatable): a
    /// Scalekit environment reached through its custom domain as well as its default one, APIs
    /// that accept tokens of several environments or tenants, a migration between providers.
    ///
    /// A bearer token is routed by its `iss` before any signature work, to that issuer's own
    /// keys (its own JWKS cache and refetch limit); a token of an issuer neither the layer's
    /// provider nor trusted here is refused without a network call. The issuer's tokens must
    /// name one of `audiences` in `aud` (a token without `aud` is refused); the layer's client
    /// id is not one of them unless listed. [`Claims::issuer`](crate::Claims::issuer) says
    /// which issuer verified a request. Sign-in with cookies stays with the layer's own
    /// provider. The issuer's discovery document and keys are fetched at build.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_oidc_auth::ConfigError> {
    /// use tower_oidc_auth::{AuthLayer, Provider};
    /// let auth = AuthLayer::builder()
    ///     .provider(Provider::scalekit("https://yourenv.scalekit.com"))
    ///     .trust_issuer(Provider::scalekit("https://auth.example.com"), ["api://orders"])
    ///     // ... client, redirect URL, cookie key
    ///     # .client_id("id").client_secret("secret")
    ///     # .redirect_url("https://app.example.com/auth/callback")
    ///     .build()
    ///     .await?;
    /// # let _ = auth; Ok(()) }
    /// ```
    pub fn trust_issuer<I, T>(mut self, provider: Provider, audiences: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.trusted_issuers
            .push((provider, audiences.into_iter().map(Into::into).collect()));
        self
    }
}
