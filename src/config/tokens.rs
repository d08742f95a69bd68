//! Settings of token verification: algorithms, audiences, M2M clients, the session's claims.

use std::sync::Arc;

use crate::state::ApproveParam;

use super::m2m::M2mClients;
use super::AuthLayerBuilder;

/// A signature algorithm tokens may be signed with. Only public-key algorithms exist here:
/// `none` and HMAC (`HS256`, ...) cannot be named, so they can never be accepted.
///
/// ```
/// use tower_oidc_auth::{Algorithm, AuthLayer};
/// let builder = AuthLayer::builder().algorithms([Algorithm::RS256, Algorithm::PS256]);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA (Ed25519).
    EdDSA,
}

impl Algorithm {
    pub(crate) fn jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match self {
            Self::RS256 => J::RS256,
            Self::RS384 => J::RS384,
            Self::RS512 => J::RS512,
            Self::PS256 => J::PS256,
            Self::PS384 => J::PS384,
            Self::PS512 => J::PS512,
            Self::ES256 => J::ES256,
            Self::ES384 => J::ES384,
            Self::EdDSA => J::EdDSA,
        }
    }
}

impl AuthLayerBuilder {
    /// Signature algorithms accepted (default RS256 and ES256). `none` and HMAC are never
    /// accepted: [`Algorithm`] has no such variant.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs.into_iter().map(Algorithm::jwt).collect();
        self
    }

    /// An extra audience accepted in access tokens, besides the client id (repeatable).
    ///
    /// Scalekit's access tokens may name an API audience in `aud` instead of the client id
    /// (`"aud": ["https://api.example.com"]`). A login whose
    /// access token names an audience not accepted here fails with an error page that names it
    /// and this call. [`from_env`](Self::from_env) reads `SCALEKIT_API_AUDIENCE`.
    ///
    /// ```
    /// let config = tower_oidc_auth::AuthLayerBuilder::new().audience("https://api.example.com");
    /// # let _ = config;
    /// ```
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// Accepts machine-to-machine (M2M) tokens that name no audience as bearer tokens: tokens
    /// an API client got from this provider with the client-credentials grant (`sub` =
    /// `client_id`, see [`Claims::is_machine`](crate::Claims::is_machine)), from
    /// [`M2mClients::Any`] client of the environment or [`M2mClients::only`] the listed ones.
    /// Default: none.
    ///
    /// Scalekit issues M2M tokens without `aud` unless the API client was registered with an
    /// audience, so no layer can tell on its own that such a token was meant for it: every
    /// client of the environment can get one. This setting says which clients may call.
    ///
    /// - Everything else is still checked: signature by the provider's keys, algorithm, `iss`,
    ///   `exp`/`nbf`/`iat`, no ID-token or logout-token markers.
    /// - An M2M token that does name an audience must name the client id or one configured with
    ///   [`audience`](Self::audience), like any token; this setting does not change that, and
    ///   accepts such a token without it.
    /// - An M2M token is never a user session: the layer refuses it at the callback and in a
    ///   session cookie, whatever this says.
    /// - Authorize each call as usual: `require_scope` reads Scalekit's `scopes` array, and
    ///   `claims.sub` / `claims.client_id` name the client.
    ///
    /// ```
    /// use tower_oidc_auth::{AuthLayerBuilder, M2mClients};
    /// let config = AuthLayerBuilder::new()
    ///     .accept_m2m_clients(M2mClients::only(["m2morg_68315758685323697"]));
    /// # let _ = config;
    /// ```
    pub fn accept_m2m_clients(mut self, clients: M2mClients) -> Self {
        self.m2m_clients = Some(clients);
        self
    }

    /// Requires access tokens to carry this JOSE header `typ`, for providers that type their
    /// access tokens (RFC 9068: `at+jwt`; `application/at+jwt` matches too). Off by default:
    /// Scalekit's access tokens say `typ: JWT`.
    ///
    /// ```
    /// let config = tower_oidc_auth::AuthLayerBuilder::new().access_token_typ("at+jwt");
    /// # let _ = config;
    /// ```
    pub fn access_token_typ(mut self, typ: impl Into<String>) -> Self {
        self.access_token_typ = Some(typ.into());
        self
    }

    /// Approves each pass-through authorization parameter (`organization_id`, `connection_id`,
    /// `domain_hint`, `provider`, `login_hint`, `prompt`) before it is sent to the provider:
    /// `false` drops it, and the login goes ahead without it. Pass-through parameters are
    /// honoured only on same-origin requests in any case (see the crate's security section);
    /// this lets the app also limit which organizations or connections a login may name. It
    /// also judges the `organization_id`, `connection_id` and `login_hint` of a Scalekit
    /// IdP-initiated login token; `domain` follows the decision on `domain_hint`.
    ///
    /// ```
    /// use tower_oidc_auth::AuthLayerBuilder;
    /// let config = AuthLayerBuilder::new().approve_authorize_param(|name, value| {
    ///     name != "organization_id" || value == "org_123"
    /// });
    /// # let _ = config;
    /// ```
    pub fn approve_authorize_param(
        mut self,
        approve: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.approve_param = Some(ApproveParam(Arc::new(approve)));
        self
    }

    /// The ID-token claims the session keeps, besides `sub`, `iss`, `sid`, `auth_time` and
    /// `acr` (always kept; the step-up guards read the last two): they fill the gaps of the
    /// access token's claims in [`Claims`](crate::Claims), and are all there is when the
    /// access token is opaque. Replaces the default,
    /// [`DEFAULT_SESSION_CLAIMS`](super::DEFAULT_SESSION_CLAIMS) (the standard profile claims
    /// and Scalekit's organization, roles and permissions).
    ///
    /// The session lives in cookies, which browsers limit: keep only what the app reads. A
    /// session that would still exceed what the layer reads back (8 cookies of about 3.8 KB)
    /// is refused at login with an error page and a log line naming its size.
    ///
    /// ```
    /// let config = tower_oidc_auth::AuthLayerBuilder::new()
    ///     .session_claims(["email", "name", "department"]);
    /// # let _ = config;
    /// ```
    pub fn session_claims<I, T>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.session_claims = claims.into_iter().map(Into::into).collect();
        self
    }
}
