//! Verified claims, handed to handlers through request extensions.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// The verified claims of the current user.
///
/// Built from the access token (verified on each request, cached) and, for cookie sessions, the
/// identity claims of the ID token verified at login. Cloning is a pointer copy. The standard and
/// Scalekit claims are typed fields (through `Deref` to [`StandardClaims`]); anything else is
/// available through [`Claims::get`].
///
/// ```
/// # use tower_oidc_auth::Claims;
/// fn greet(claims: &Claims) -> String {
///     let org: Option<String> = claims.get("org_name");
///     format!("{} ({})", claims.email.as_deref().unwrap_or(&claims.sub), org.unwrap_or_default())
/// }
/// ```
#[derive(Clone)]
pub struct Claims(Arc<Inner>);

struct Inner {
    standard: StandardClaims,
    /// The whole claim set as compact JSON: claims live in caches for as long as their session,
    /// and a parsed map costs several times its text.
    json: Box<str>,
    /// The claim set parsed, on the first call that needs it ([`Claims::raw`], [`Claims::get`],
    /// serialization).
    raw: std::sync::OnceLock<Map<String, Value>>,
    /// [`Claims::is_machine`], decided when built.
    machine: bool,
    /// The layer that verified these claims ([`LayerId`]): its guards accept only its own.
    layer: LayerId,
    /// What came with the claims: the access token they were verified from, and the session's
    /// app data. Never printed, never serialized.
    extras: Extras,
}

/// What a request's claims carry besides the claims: where their access token is, and the
/// session's app data ([`LoginDecision::AllowWith`](crate::hooks::LoginDecision)).
#[derive(Clone, Default)]
pub(crate) struct Extras {
    pub(crate) token: TokenSource,
    /// The app data as JSON text, sealed in the session.
    pub(crate) app_data: Option<Arc<str>>,
    /// In store mode, the id of the session's record (for "your sessions").
    pub(crate) stored: Option<crate::session_store::SessionId>,
    /// Verified by a trusted issuer ([`Claims::from_trusted_issuer`]).
    pub(crate) foreign_issuer: bool,
}

/// Where the access token of a request's claims is. Claims of a session are remembered for as
/// long as the session is used, so they do not keep a copy of its token (about a kilobyte):
/// the [`AccessToken`](crate::AccessToken) extractor reads it from the request when asked.
#[derive(Clone, Default)]
pub(crate) enum TokenSource {
    /// None (claims made without a token: tests, fuzzing, the logout hook).
    #[default]
    None,
    /// The token itself: a session refreshed by this very request, whose cookie has the old
    /// one.
    Inline(crate::access_token::AccessToken),
    /// In the request's session cookie, sealed with this codec's keys.
    Session(Arc<crate::cookies::CookieCodec>),
    /// In the request's `Authorization: Bearer` header.
    Bearer,
}

/// Identifies one built [`AuthLayer`](crate::AuthLayer) within the process. Claims carry the id
/// of the layer that verified them, so a layer (its guards, its rejections) never acts on claims
/// another layer attached to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct LayerId(u64);

impl LayerId {
    /// A new id, distinct from every other in this process.
    pub(crate) fn next() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }

    /// For claims that belong to no layer (fuzz targets, unit tests).
    #[cfg(any(test, feature = "__private"))]
    pub(crate) const NONE: Self = Self(0);
}

/// The typed claims: registered JWT claims, OpenID Connect identity claims, and Scalekit's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StandardClaims {
    /// Subject: the user's stable identifier at the provider.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audiences (a single `aud` string becomes one entry).
    pub aud: Vec<String>,
    /// Expiry of the access token, seconds since the epoch.
    pub exp: i64,
    /// Issued-at, seconds since the epoch.
    pub iat: Option<i64>,
    /// The provider session id.
    pub sid: Option<String>,
    /// Scalekit: organization id.
    pub oid: Option<String>,
    /// Roles (Scalekit `roles`).
    pub roles: Vec<String>,
    /// Permissions (Scalekit `permissions`).
    pub permissions: Vec<String>,
    /// Space-separated scopes granted to the access token, as the token says them.
    pub scope: Option<String>,
    /// Every scope granted to the access token: the `scopes` array (Scalekit's M2M tokens put
    /// their scopes there) followed by the space-separated `scope` string, blank entries
    /// skipped. [`Claims::has_scope`] and the `require_scope` guards read this.
    pub scopes: Vec<String>,
    /// The client the token was issued to.
    pub client_id: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Whether the provider verified the e-mail address.
    pub email_verified: Option<bool>,
    /// Full name.
    pub name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Preferred username.
    pub preferred_username: Option<String>,
    /// Scalekit: external organization id.
    pub xoid: Option<String>,
    /// Scalekit: external user id.
    pub xuid: Option<String>,
}

impl Claims {
    /// Builds claims from a claim set verified by `layer`. `sub` must be a string.
    #[cfg(any(test, feature = "__private"))]
    pub(crate) fn from_map(raw: Map<String, Value>, layer: LayerId) -> Option<Self> {
        Self::from_map_with(raw, layer, Extras::default())
    }

    /// [`from_map`](Self::from_map), with the access token and app data that come with them.
    pub(crate) fn from_map_with(
        raw: Map<String, Value>,
        layer: LayerId,
        extras: Extras,
    ) -> Option<Self> {
        let s = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_owned);
        let i = |k: &str| raw.get(k).and_then(Value::as_i64);
        let list = |k: &str| -> Vec<String> {
            match raw.get(k) {
                Some(Value::String(v)) => vec![v.clone()],
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let standard = StandardClaims {
            sub: s("sub")?,
            iss: s("iss").unwrap_or_default(),
            aud: list("aud"),
            exp: i("exp").unwrap_or_default(),
            iat: i("iat"),
            sid: s("sid"),
            oid: s("oid"),
            roles: list("roles"),
            permissions: list("permissions"),
            scope: s("scope"),
            scopes: scopes(&raw),
            client_id: s("client_id"),
            email: s("email"),
            email_verified: raw.get("email_verified").and_then(Value::as_bool),
            name: s("name"),
            given_name: s("given_name"),
            family_name: s("family_name"),
            preferred_username: s("preferred_username"),
            xoid: s("xoid"),
            xuid: s("xuid"),
        };
        let machine = is_machine_token(&raw);
        // Serializing a map of JSON values cannot fail.
        let json = serde_json::to_string(&raw)
            .unwrap_or_default()
            .into_boxed_str();
        Some(Self(Arc::new(Inner {
            standard,
            json,
            raw: std::sync::OnceLock::new(),
            machine,
            layer,
            extras,
        })))
    }

    /// Where the access token of these claims is.
    pub(crate) fn token_source(&self) -> &TokenSource {
        &self.0.extras.token
    }

    /// In store mode, the id of the record of the session these claims come from.
    pub(crate) fn stored_session(&self) -> Option<&crate::session_store::SessionId> {
        self.0.extras.stored.as_ref()
    }

    /// The app data the login hook kept in the session
    /// ([`LoginDecision::AllowWith`](crate::hooks::LoginDecision::AllowWith)), deserialized
    /// into `T`; `None` when there is none or it has another shape (and for bearer requests).
    #[must_use]
    pub fn app_data<T: DeserializeOwned>(&self) -> Option<T> {
        let json = self.0.extras.app_data.as_deref()?;
        serde_json::from_str(json).ok()
    }

    /// The layer that verified these claims.
    pub(crate) fn layer(&self) -> LayerId {
        self.0.layer
    }

    /// Any claim, deserialized into `T`; `None` when absent or of another shape.
    #[must_use]
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.raw().get(name).and_then(|v| T::deserialize(v).ok())
    }

    /// All claims as JSON. Parsed on the first call (and by [`get`](Self::get)), then kept
    /// with the claims.
    #[must_use]
    pub fn raw(&self) -> &Map<String, Value> {
        self.0
            .raw
            .get_or_init(|| serde_json::from_str(&self.0.json).unwrap_or_default())
    }

    /// The issuer that verified these claims: the layer's provider, or for a bearer token one
    /// of the [trusted issuers](crate::AuthLayerBuilder::trust_issuer). (The token's `iss`,
    /// which verification requires to be exactly that issuer.)
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.iss
    }

    /// Whether a [trusted issuer](crate::AuthLayerBuilder::trust_issuer) verified these claims
    /// rather than the layer's own provider. Their `sub` names a subject of that issuer: the
    /// layer's stored sessions ("your sessions") and
    /// [`ManagementClient::current_user`](crate::management::ManagementClient::current_user)
    /// refuse such claims, since the same `sub` at the provider may be someone else.
    #[must_use]
    pub fn from_trusted_issuer(&self) -> bool {
        self.0.extras.foreign_issuer
    }

    /// Whether the user has this role.
    #[must_use]
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the user has this permission.
    #[must_use]
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// Whether the caller is a machine rather than a user: the token was issued to a client
    /// acting on its own behalf (OAuth client credentials), so its subject is that client,
    /// `sub` = `client_id`. Scalekit's M2M tokens look so (`sub` and `client_id` both
    /// `m2morg_...`); a user's token names the user in `sub` (`usr_...`) and the app in
    /// `client_id`. RFC 9068, section 5, says the same of JWT access tokens in general.
    ///
    /// Machine tokens are accepted only as bearer tokens: for one without `aud`, see
    /// [`AuthLayerBuilder::accept_m2m_clients`](crate::AuthLayerBuilder::accept_m2m_clients). A
    /// cookie
    /// session is always a user's, so this is `false` there.
    ///
    /// ```
    /// # use tower_oidc_auth::Claims;
    /// async fn handler(claims: Claims) -> String {
    ///     if claims.is_machine() {
    ///         format!("API client {} of {:?}", claims.sub, claims.oid)
    ///     } else {
    ///         format!("user {}", claims.sub)
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn is_machine(&self) -> bool {
        self.0.machine
    }

    /// Whether the access token carries this scope (in the `scopes` array or the `scope`
    /// string; see [`StandardClaims::scopes`]).
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|x| x == scope)
    }
}

/// Whether a claim set is a machine's: `sub` is the `client_id` the token was issued to (client
/// credentials). See [`Claims::is_machine`]; the verifier decides with the same rule.
pub(crate) fn is_machine_token(claims: &Map<String, Value>) -> bool {
    match (claims.get("sub"), claims.get("client_id")) {
        (Some(Value::String(sub)), Some(Value::String(client))) => !sub.is_empty() && sub == client,
        _ => false,
    }
}

/// The scopes of a claim set: the `scopes` array's strings, then the space-separated `scope`
/// string's, blank ones skipped (as the Scalekit SDKs' `extractScopesFromPayload` does).
fn scopes(raw: &Map<String, Value>) -> Vec<String> {
    let array = match raw.get("scopes") {
        Some(Value::Array(items)) => items.as_slice(),
        _ => &[],
    };
    let string = raw.get("scope").and_then(Value::as_str).unwrap_or_default();
    array
        .iter()
        .filter_map(Value::as_str)
        .chain(string.split(' '))
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// A failed guard check in a handler: answers 403 with a JSON body.
///
/// ```
/// # use tower_oidc_auth::{Claims, Forbidden};
/// async fn delete_workspace(claims: Claims) -> Result<&'static str, Forbidden> {
///     claims.require_permission("workspace:delete")?;
///     Ok("deleted")
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} required")]
pub struct Forbidden(pub String);

impl Claims {
    /// `Ok` if the user has this role, else [`Forbidden`].
    pub fn require_role(&self, role: &str) -> Result<(), Forbidden> {
        self.has_role(role)
            .then_some(())
            .ok_or_else(|| Forbidden(format!("role {role}")))
    }

    /// `Ok` if the user has this permission, else [`Forbidden`].
    pub fn require_permission(&self, permission: &str) -> Result<(), Forbidden> {
        self.has_permission(permission)
            .then_some(())
            .ok_or_else(|| Forbidden(format!("permission {permission}")))
    }

    /// `Ok` if the access token carries this scope, else [`Forbidden`].
    pub fn require_scope(&self, scope: &str) -> Result<(), Forbidden> {
        self.has_scope(scope)
            .then_some(())
            .ok_or_else(|| Forbidden(format!("scope {scope}")))
    }
}

impl Deref for Claims {
    type Target = StandardClaims;
    fn deref(&self) -> &StandardClaims {
        &self.0.standard
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("sub", &self.sub)
            .field("iss", &self.iss)
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}

impl Serialize for Claims {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // From the parsed map when something has parsed it already, else from a temporary one:
        // serializing does not make the claims keep a parsed copy.
        match self.0.raw.get() {
            Some(raw) => raw.serialize(serializer),
            None => serde_json::from_str::<Map<String, Value>>(&self.0.json)
                .unwrap_or_default()
                .serialize(serializer),
        }
    }
}

/// Reads the verified [`Claims`] from a request: `request.claims()`.
///
/// Implemented for `http::Request`, `http::Extensions` and, with the `tonic` feature,
/// `tonic::Request`, so a tonic service method can write:
///
/// ```ignore
/// async fn say_hello(&self, request: tonic::Request<HelloRequest>) -> Result<..., Status> {
///     let claims = request.claims().ok_or_else(|| Status::unauthenticated("sign in"))?;
///     ...
/// }
/// ```
pub trait ClaimsExt {
    /// The claims the layer attached, if the request is authenticated.
    fn claims(&self) -> Option<&Claims>;
}

impl ClaimsExt for http::Extensions {
    fn claims(&self) -> Option<&Claims> {
        self.get::<Claims>()
    }
}

impl<B> ClaimsExt for http::Request<B> {
    fn claims(&self) -> Option<&Claims> {
        self.extensions().get::<Claims>()
    }
}

#[cfg(feature = "tonic")]
impl<T> ClaimsExt for tonic::Request<T> {
    fn claims(&self) -> Option<&Claims> {
        self.extensions().get::<Claims>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Option<Claims> {
        Claims::from_map(v.as_object().unwrap().clone(), LayerId::NONE)
    }

    #[test]
    fn typed_fields_and_extras() {
        let c = claims(json!({
            "sub": "usr_1", "aud": "app", "roles": ["admin"], "scope": "openid email",
            "scopes": ["extra"], "org_name": "Acme", "exp": 10
        }))
        .unwrap();
        assert_eq!(c.sub, "usr_1");
        assert_eq!(c.aud, vec!["app".to_owned()]);
        assert!(c.has_role("admin") && !c.has_role("user"));
        assert!(c.has_scope("email") && c.has_scope("extra") && !c.has_scope("mail"));
        assert_eq!(c.get::<String>("org_name").as_deref(), Some("Acme"));
        assert_eq!(c.get::<u32>("org_name"), None);
    }

    /// A machine token: `sub` = `client_id` (Scalekit M2M, developer-docs
    /// `authenticate/m2m/api-auth-quickstart.mdx`, step 6 "Example decoded access token").
    #[test]
    fn machine_or_user() {
        let m2m = claims(json!({
            "client_id": "m2morg_69038819013296423", "exp": 1745305340, "iat": 1745218940,
            "iss": "https://env.scalekit.dev", "jti": "tkn_69041163914445100",
            "nbf": 1745218940, "oid": "org_59615193906282635",
            "scopes": ["deploy:applications", "read:deployments"],
            "sub": "m2morg_69038819013296423"
        }))
        .unwrap();
        assert!(m2m.is_machine());
        // A user's access token (developer-docs `authenticate/fsa/complete-login.mdx`, "Decoded
        // access token"): `sub` is the user, `client_id` the app.
        let user = claims(json!({
            "iss": "https://login.devramp.ai", "aud": ["prd_skc_7848964512134X699"],
            "sub": "usr_8967800122X995270", "oid": "org_89678001X21929734",
            "sid": "ses_90928729571723X24", "client_id": "prd_skc_7848964512134X699",
            "scope": "openid profile email", "exp": 1758265247
        }))
        .unwrap();
        assert!(!user.is_machine());
        // Without `client_id`, nothing says the subject is a client.
        assert!(!claims(json!({"sub": "m2morg_1"})).unwrap().is_machine());
        assert!(!claims(json!({"sub": "", "client_id": ""}))
            .unwrap()
            .is_machine());
        assert!(!claims(json!({"sub": "1", "client_id": 1}))
            .unwrap()
            .is_machine());
    }

    /// Scopes come from the `scopes` array (Scalekit M2M tokens) and the space-separated `scope`
    /// string, read once. Like the SDKs' `extractScopesFromPayload` (scalekit-sdk-node
    /// `src/scalekit.ts`), blank and non-string entries are skipped, not fatal.
    #[test]
    fn scopes_from_both_claims() {
        let c = claims(
            json!({"sub": "s", "scopes": ["deploy:applications", 7, " ", ""],
                              "scope": "openid  email"}),
        )
        .unwrap();
        assert_eq!(c.scopes, vec!["deploy:applications", "openid", "email"]);
        assert!(c.has_scope("deploy:applications") && c.has_scope("email"));
        assert!(!c.has_scope("") && !c.has_scope(" "));
        assert!(c.require_scope("read:deployments").is_err());
    }

    #[test]
    fn odd_shapes_do_not_fail_and_sub_is_required() {
        assert!(claims(json!({"aud": "x"})).is_none());
        assert!(claims(json!({"sub": 5})).is_none());
        let c = claims(json!({"sub": "s", "roles": "one", "permissions": [1, "p"], "exp": "x"}))
            .unwrap();
        assert_eq!(c.roles, vec!["one".to_owned()]);
        assert_eq!(c.permissions, vec!["p".to_owned()]);
        assert_eq!(c.exp, 0);
    }
}
