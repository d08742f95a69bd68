//! The users the provider signs in, and Scalekit IdP-initiated logins.

use serde_json::{Map, Value};

/// A user the provider signs in.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct TestUser {
    /// Subject.
    pub sub: String,
    /// E-mail.
    pub email: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Scalekit-style roles (in the access token).
    pub roles: Vec<String>,
    /// Scalekit-style permissions (in the access token).
    pub permissions: Vec<String>,
    /// Organization id (`oid`).
    pub organization_id: Option<String>,
    /// Extra claims for both tokens.
    pub extra: Map<String, Value>,
}

impl TestUser {
    /// A user with this subject.
    pub fn new(sub: impl Into<String>) -> Self {
        Self {
            sub: sub.into(),
            ..Self::default()
        }
    }

    /// Sets the e-mail.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a role.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Adds a permission.
    pub fn permission(mut self, permission: impl Into<String>) -> Self {
        self.permissions.push(permission.into());
        self
    }

    /// Sets the organization id.
    pub fn organization(mut self, oid: impl Into<String>) -> Self {
        self.organization_id = Some(oid.into());
        self
    }

    /// Adds any claim. In ID tokens, `auth_time` and `acr` given here replace what the
    /// provider records of the authentication, and `Value::Null` leaves them out (to play a
    /// provider that answers a step-up wrongly).
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }
}

/// What a Scalekit IdP-initiated login token says: the organization, connection and user a
/// login started at the identity provider is for, and where the app should land afterwards.
/// [`TestProvider::idp_initiated_login_url`](super::TestProvider::idp_initiated_login_url) mints one.
///
/// The claims are the ones Scalekit documents (developer-docs
/// `src/content/docs/sso/guides/idp-init-sso.mdx`, "JWT token structure": `organization_id`,
/// `connection_id`, `login_hint`, `iat`, `nbf`, `exp`, `iss`) and the SDKs read
/// (scalekit-sdk-node `src/types/auth.ts` `IdpInitiatedLoginClaims`, scalekit-sdk-go
/// `scalekit.go` `IdpInitiatedLoginClaims`: the same three plus an optional `relay_state`).
///
/// ```
/// use tower_oidc_auth::testing::IdpInitiatedLogin;
/// let login = IdpInitiatedLogin::new()
///     .organization_id("org_1")
///     .connection_id("conn_1")
///     .login_hint("ada@example.com")
///     .relay_state("/dashboard");
/// assert_eq!(login.organization_id.as_deref(), Some("org_1"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct IdpInitiatedLogin {
    /// `organization_id`: the organization whose identity provider started the login.
    pub organization_id: Option<String>,
    /// `connection_id`: the SSO connection it came through.
    pub connection_id: Option<String>,
    /// `login_hint`: the user's e-mail or login name.
    pub login_hint: Option<String>,
    /// `relay_state`: where the identity provider asks the app to go after sign-in.
    pub relay_state: Option<String>,
}

impl IdpInitiatedLogin {
    /// No claims yet (a token needs at least one of organization, connection or login hint).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `organization_id`.
    pub fn organization_id(mut self, id: impl Into<String>) -> Self {
        self.organization_id = Some(id.into());
        self
    }

    /// Sets `connection_id`.
    pub fn connection_id(mut self, id: impl Into<String>) -> Self {
        self.connection_id = Some(id.into());
        self
    }

    /// Sets `login_hint`.
    pub fn login_hint(mut self, hint: impl Into<String>) -> Self {
        self.login_hint = Some(hint.into());
        self
    }

    /// Sets `relay_state`.
    pub fn relay_state(mut self, target: impl Into<String>) -> Self {
        self.relay_state = Some(target.into());
        self
    }
}
