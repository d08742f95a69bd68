//! An in-process OpenID provider for tests, demos and your own test suites (feature `testing`).
//!
//! [`TestProvider`] listens on `127.0.0.1` on a free port and serves discovery, authorize (auto
//! approval or a small login form), token (code and refresh, with optional rotation), keys and
//! end-session, laid out like Scalekit (`/oauth/authorize`, `/oauth/token`, `/keys`,
//! `/oidc/logout`). Tokens are RS256 JWTs. Knobs let tests change TTLs, rotate keys, make the
//! token endpoint fail or stall, and count the grants served.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tower_oidc_auth::testing::{TestProvider, TestUser};
//! let provider = TestProvider::builder()
//!     .user(TestUser::new("usr_1").email("ada@example.com"))
//!     .start()
//!     .await;
//! let auth = provider.layer_builder("http://127.0.0.1:3000/auth/callback").build().await.unwrap();
//! // A signed-in Cookie header, without the login dance:
//! let cookie = provider.session_cookie(&auth, &TestUser::new("usr_2"));
//! assert!(cookie.contains('='));
//! # }
//! ```

mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::AuthConfig;
use crate::provider::Provider;
use crate::AuthLayer;

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

    /// Adds any claim.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }
}

/// What a Scalekit IdP-initiated login token says: the organization, connection and user a
/// login started at the identity provider is for, and where the app should land afterwards.
/// [`TestProvider::idp_initiated_login_url`] mints one.
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

/// How the token endpoint (or the JWKS endpoint) misbehaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Failure {
    /// Answer with this HTTP status and an OAuth `server_error` body.
    Status(u16),
    /// Answer `400 {"error": ...}` with this OAuth error code.
    OAuthError(String),
    /// Wait this long before answering normally.
    Delay(Duration),
    /// Answer 200 with a body that is not JSON.
    NotJson,
    /// Answer 200 with a JSON body of this many bytes.
    Oversized(usize),
    /// Answer 200 with JSON cut off in the middle.
    Truncated,
}

/// Counters of what the provider served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Authorization codes exchanged.
    pub code_grants: u64,
    /// Refresh grants served (successful ones).
    pub refresh_grants: u64,
    /// Refresh grants refused.
    pub refresh_failures: u64,
    /// JWKS fetches.
    pub jwks_fetches: u64,
    /// Discovery fetches.
    pub discovery_fetches: u64,
    /// End-session visits.
    pub logouts: u64,
    /// Requests that reached the token endpoint (counted on arrival, before any failure).
    pub token_requests: u64,
    /// Back-channel logout tokens delivered (answered 2xx).
    pub backchannel_deliveries: u64,
    /// Back-channel logout deliveries that failed.
    pub backchannel_failures: u64,
    /// Requests that reached the revocation endpoint (RFC 7009; counted on arrival).
    pub revocation_requests: u64,
    /// Refresh tokens revoked there (by an authenticated client, for a token of that client).
    pub refresh_tokens_revoked: u64,
}

pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pair: KeyPair,
    pub(crate) jwk: Value,
}

impl SigningKey {
    fn generate(kid: String) -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e});
        Self { kid, pair, jwk }
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .expect("RSA signing");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

pub(crate) struct CodeGrant {
    pub(crate) client: String,
    pub(crate) user: TestUser,
    pub(crate) redirect_uri: String,
    pub(crate) nonce: Option<String>,
    pub(crate) challenge: String,
    pub(crate) scope: String,
    pub(crate) sid: String,
    pub(crate) created: i64,
}

#[derive(Clone)]
pub(crate) struct RefreshGrant {
    pub(crate) client: String,
    pub(crate) user: TestUser,
    pub(crate) scope: String,
    pub(crate) sid: String,
    /// Grant family: a replayed rotated token revokes the whole family.
    pub(crate) family: String,
    pub(crate) active: bool,
}

/// A registered client.
#[derive(Clone)]
pub(crate) struct ClientReg {
    pub(crate) secret: String,
    pub(crate) backchannel_logout_uri: Option<String>,
}

/// A signed-in browser at the provider (single sign-on across clients).
pub(crate) struct SsoSession {
    pub(crate) user: TestUser,
    pub(crate) sid: String,
    pub(crate) clients: std::collections::BTreeSet<String>,
}

/// The provider's own cookie; prefixed so it is never mistaken for an app's (cookies ignore
/// ports, so the provider and apps on 127.0.0.1 share a browser's jar).
pub(crate) const SSO_COOKIE: &str = "testprovider_sso";

pub(crate) struct State {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) clients: Mutex<HashMap<String, ClientReg>>,
    pub(crate) sso: Mutex<HashMap<String, SsoSession>>,
    pub(crate) http: reqwest::Client,
    pub(crate) backchannel_deliveries: AtomicU64,
    pub(crate) backchannel_failures: AtomicU64,
    pub(crate) clock: SharedClock,
    pub(crate) keys: Mutex<Vec<Arc<SigningKey>>>,
    pub(crate) user: Mutex<Option<TestUser>>,
    pub(crate) codes: Mutex<HashMap<String, CodeGrant>>,
    pub(crate) refresh: Mutex<HashMap<String, RefreshGrant>>,
    pub(crate) access_ttl: AtomicI64,
    pub(crate) id_ttl: AtomicI64,
    /// Whether ID tokens carry `at_hash` (OPTIONAL in the code flow; many providers omit it).
    pub(crate) id_at_hash: AtomicBool,
    pub(crate) rotation: AtomicBool,
    pub(crate) iss_param: bool,
    pub(crate) auth_methods: Vec<String>,
    pub(crate) opaque_access: bool,
    /// Refresh grants answer with tokens for this user instead of the grant's.
    pub(crate) refresh_user: Mutex<Option<TestUser>>,
    /// Where discovery and the endpoints live (the issuer without a trailing slash).
    pub(crate) base: String,
    pub(crate) token_failure: Mutex<Option<Failure>>,
    pub(crate) id_token_defect: Mutex<Option<IdTokenDefect>>,
    pub(crate) access_token_defect: Mutex<Option<AccessTokenDefect>>,
    /// The `aud` of access tokens instead of the client id (an API audience), when set.
    pub(crate) access_audience: Mutex<Option<Vec<String>>>,
    pub(crate) expires_in: Mutex<Option<Value>>,
    pub(crate) issued: Mutex<Vec<String>>,
    pub(crate) jwks_max_age: Mutex<Option<u64>>,
    pub(crate) jwks_failure: Mutex<Option<Failure>>,
    /// Served as the JWKS document instead of the published keys, when set.
    pub(crate) jwks_document: Mutex<Option<Value>>,
    pub(crate) code_grants: AtomicU64,
    pub(crate) refresh_grants: AtomicU64,
    pub(crate) refresh_failures: AtomicU64,
    pub(crate) jwks_fetches: AtomicU64,
    /// Told of every JWKS request, for tests that wait for a background refresh.
    pub(crate) jwks_fetched: tokio::sync::Notify,
    /// Publish keys with `kid` and name it in token headers (default); off: neither.
    pub(crate) key_ids: AtomicBool,
    pub(crate) discovery_fetches: AtomicU64,
    pub(crate) logouts: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    /// Whether discovery lists the revocation endpoint.
    pub(crate) revocation_listed: bool,
    pub(crate) revocation_failure: Mutex<Option<Failure>>,
    pub(crate) revocation_requests: AtomicU64,
    pub(crate) refresh_tokens_revoked: AtomicU64,
    next_kid: AtomicU64,
}

impl State {
    /// `expires_in` for token responses: the override, or the access-token lifetime.
    pub(crate) fn expires_in(&self) -> Value {
        match &*self.expires_in.lock().expect("expires_in lock") {
            Some(v) => v.clone(),
            None => self.access_ttl.load(Ordering::Relaxed).into(),
        }
    }

    pub(crate) fn current_key(&self) -> Arc<SigningKey> {
        self.keys
            .lock()
            .expect("keys lock")
            .last()
            .cloned()
            .expect("at least one key")
    }

    pub(crate) fn sign(&self, claims: &Value) -> String {
        let key = self.current_key();
        key.sign(&self.header(&key, "JWT"), claims)
    }

    /// A JOSE header for `key`, naming its `kid` unless key ids are switched off.
    fn header(&self, key: &SigningKey, typ: &str) -> Value {
        let mut header = json!({"alg": "RS256", "typ": typ, "kid": key.kid});
        if let (false, Some(h)) = (self.key_ids.load(Ordering::Relaxed), header.as_object_mut()) {
            h.remove("kid");
        }
        header
    }

    /// The JWKS document's keys, as published now.
    pub(crate) fn published_keys(&self) -> Vec<Value> {
        let with_kid = self.key_ids.load(Ordering::Relaxed);
        self.keys
            .lock()
            .expect("keys lock")
            .iter()
            .map(|k| {
                let mut jwk = k.jwk.clone();
                if let (false, Some(j)) = (with_kid, jwk.as_object_mut()) {
                    j.remove("kid");
                }
                jwk
            })
            .collect()
    }

    pub(crate) fn access_token(
        &self,
        client: &str,
        user: &TestUser,
        scope: &str,
        sid: &str,
    ) -> String {
        if self.opaque_access {
            return format!("opaque.{}", crate::token::random_token());
        }
        let now = self.clock.now();
        let mut claims = Map::new();
        for (k, v) in &user.extra {
            claims.insert(k.clone(), v.clone());
        }
        let base = json!({
            "iss": self.issuer, "sub": user.sub, "aud": [client], "client_id": client,
            "iat": now, "nbf": now, "exp": now + self.access_ttl.load(Ordering::Relaxed),
            "jti": crate::token::random_token(), "sid": sid, "scope": scope,
            "roles": user.roles, "permissions": user.permissions,
        });
        if let Value::Object(base) = base {
            claims.extend(base);
        }
        if let Some(oid) = &user.organization_id {
            claims.insert("oid".into(), oid.clone().into());
        }
        if let Some(aud) = &*self.access_audience.lock().expect("audience lock") {
            // developer-docs `authenticate/fsa/session-token-claims.mdx`, "Default access token
            // claims": `"aud": ["https://api.your-app.com"]`, and no `client_id`.
            claims.insert("aud".into(), json!(aud));
            claims.remove("client_id");
        }
        let defect = *self.access_token_defect.lock().expect("defect lock");
        match defect {
            None => self.sign(&Value::Object(claims)),
            Some(AccessTokenDefect::AlgNone) => {
                let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
                format!(
                    "{}.{}.",
                    b64(&json!({"alg": "none", "typ": "JWT"})),
                    b64(&Value::Object(claims))
                )
            }
            Some(AccessTokenDefect::WrongAudience) => {
                claims.insert("aud".into(), json!(["https://api.other.example"]));
                claims.remove("client_id");
                self.sign(&Value::Object(claims))
            }
            Some(AccessTokenDefect::NoAudience) => {
                claims.remove("aud");
                claims.remove("client_id");
                self.sign(&Value::Object(claims))
            }
            Some(AccessTokenDefect::UnknownKey) => {
                let stranger = SigningKey::generate("unpublished".into());
                stranger.sign(
                    &json!({"alg": "RS256", "typ": "JWT", "kid": "unpublished"}),
                    &Value::Object(claims),
                )
            }
        }
    }

    pub(crate) fn id_token(
        &self,
        client: &str,
        user: &TestUser,
        nonce: Option<&str>,
        sid: &str,
        at: &str,
    ) -> String {
        let now = self.clock.now();
        let mut claims = Map::new();
        for (k, v) in &user.extra {
            claims.insert(k.clone(), v.clone());
        }
        // at_hash: left half of SHA-256 of the access token (Core 3.1.3.6).
        use sha2::Digest;
        let digest = sha2::Sha256::digest(at.as_bytes());
        let base = json!({
            "iss": self.issuer, "sub": user.sub, "aud": client, "iat": now,
            "exp": now + self.id_ttl.load(Ordering::Relaxed), "sid": sid,
            "at_hash": URL_SAFE_NO_PAD.encode(&digest[..16]),
        });
        if let Value::Object(base) = base {
            claims.extend(base);
        }
        if !self.id_at_hash.load(Ordering::Relaxed) {
            claims.remove("at_hash");
        }
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), nonce.into());
        }
        if let Some(email) = &user.email {
            claims.insert("email".into(), email.clone().into());
            claims.insert("email_verified".into(), true.into());
        }
        if let Some(name) = &user.name {
            claims.insert("name".into(), name.clone().into());
        }
        if let Some(oid) = &user.organization_id {
            claims.insert("oid".into(), oid.clone().into());
        }
        let defect = *self.id_token_defect.lock().expect("defect lock");
        match defect {
            None => self.sign(&Value::Object(claims)),
            Some(defect) => self.defective(client, defect, claims),
        }
    }

    /// A back-channel logout token for `client` (Back-Channel Logout 1.0, 2.4).
    pub(crate) fn logout_token(&self, client: &str, sub: &str, sid: &str) -> String {
        let key = self.current_key();
        key.sign(
            &self.header(&key, "logout+jwt"),
            &json!({
                "iss": self.issuer, "aud": client, "iat": self.clock.now(),
                "jti": crate::token::random_token(), "sub": sub, "sid": sid,
                "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
            }),
        )
    }

    /// Ends a single sign-on session and tells every client in it, through their back-channel
    /// logout URIs. Returns when all deliveries are done.
    pub(crate) async fn end_sso(&self, sso: SsoSession) {
        let clients = self.clients.lock().expect("clients lock").clone();
        for client in &sso.clients {
            let Some(uri) = clients
                .get(client)
                .and_then(|c| c.backchannel_logout_uri.clone())
            else {
                continue;
            };
            let token = self.logout_token(client, &sso.user.sub, &sso.sid);
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("logout_token", &token)
                .finish();
            let sent = self
                .http
                .post(&uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    self.backchannel_deliveries.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    self.backchannel_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// An ID token with one defect, for the adversarial tests.
    fn defective(
        &self,
        client: &str,
        defect: IdTokenDefect,
        mut claims: Map<String, Value>,
    ) -> String {
        let now = self.clock.now();
        let key = self.current_key();
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let rs256 = json!({"alg": "RS256", "typ": "JWT", "kid": key.kid});
        match defect {
            IdTokenDefect::AlgNone => {
                return format!(
                    "{}.{}.",
                    b64(&json!({"alg": "none"})),
                    b64(&Value::Object(claims))
                );
            }
            IdTokenDefect::Hs256WithPublicKey => {
                // The classic confusion attack: HMAC keyed with the published public key.
                let header = json!({"alg": "HS256", "typ": "JWT", "kid": key.kid});
                let input = format!("{}.{}", b64(&header), b64(&Value::Object(claims)));
                let secret = key.jwk.to_string();
                let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
                let tag = aws_lc_rs::hmac::sign(&k, input.as_bytes());
                return format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
            }
            IdTokenDefect::UnknownKey => {
                let stranger = SigningKey::generate("unpublished".into());
                return stranger.sign(
                    &json!({"alg": "RS256", "typ": "JWT", "kid": "unpublished"}),
                    &Value::Object(claims),
                );
            }
            IdTokenDefect::NoKid => {
                return key.sign(
                    &json!({"alg": "RS256", "typ": "JWT"}),
                    &Value::Object(claims),
                );
            }
            IdTokenDefect::WrongIssuer => {
                claims.insert("iss".into(), "https://evil.example".into());
            }
            IdTokenDefect::WrongAudience => {
                claims.insert("aud".into(), "another-client".into());
            }
            IdTokenDefect::SeveralAudiencesWithoutAzp => {
                claims.insert("aud".into(), json!([client, "another-client"]));
            }
            IdTokenDefect::AzpMismatch => {
                claims.insert("aud".into(), json!([client, "another-client"]));
                claims.insert("azp".into(), "another-client".into());
            }
            IdTokenDefect::Expired => {
                claims.insert("exp".into(), (now - 3600).into());
                claims.insert("iat".into(), (now - 7200).into());
            }
            IdTokenDefect::IssuedLongAgo => {
                claims.insert("iat".into(), (now - 7 * 24 * 3600).into());
            }
            IdTokenDefect::IssuedInFuture => {
                claims.insert("iat".into(), (now + 3600).into());
            }
            IdTokenDefect::MissingNonce => {
                claims.remove("nonce");
            }
            IdTokenDefect::WrongNonce => {
                claims.insert("nonce".into(), "not-the-nonce".into());
            }
            IdTokenDefect::AtHashMismatch => {
                claims.insert("at_hash".into(), URL_SAFE_NO_PAD.encode([0u8; 16]).into());
            }
            IdTokenDefect::MissingSub => {
                claims.remove("sub");
            }
            IdTokenDefect::CriticalHeader => {
                let header = json!({"alg": "RS256", "typ": "JWT", "kid": key.kid,
                                    "crit": ["https://example.com/must-understand"],
                                    "https://example.com/must-understand": "yes"});
                return key.sign(&header, &Value::Object(claims));
            }
        }
        key.sign(&rs256, &Value::Object(claims))
    }
}

/// One defect the provider puts into the ID tokens it issues (for adversarial tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdTokenDefect {
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256, keyed with the published public key.
    Hs256WithPublicKey,
    /// Signed by a key that is not published.
    UnknownKey,
    /// No `kid` in the header (refused when several keys are published).
    NoKid,
    /// Another `iss`.
    WrongIssuer,
    /// Another `aud`.
    WrongAudience,
    /// Several audiences and no `azp`.
    SeveralAudiencesWithoutAzp,
    /// `azp` names another client.
    AzpMismatch,
    /// Expired an hour ago.
    Expired,
    /// Issued a week ago (but not expired).
    IssuedLongAgo,
    /// Issued an hour from now.
    IssuedInFuture,
    /// No `nonce`.
    MissingNonce,
    /// Another `nonce`.
    WrongNonce,
    /// `at_hash` of another access token.
    AtHashMismatch,
    /// No `sub`.
    MissingSub,
    /// A JOSE `crit` header naming an extension (RFC 7515, section 4.1.11).
    CriticalHeader,
}

/// One defect the provider puts into the access tokens it issues (for adversarial tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessTokenDefect {
    /// A JWT with `alg: none` and no signature.
    AlgNone,
    /// Signed, with an `aud` that is neither the client id nor a configured audience.
    WrongAudience,
    /// Signed, with neither `aud` nor `client_id` (as oauth2-mock-server issues them).
    NoAudience,
    /// Signed by a key that is not published.
    UnknownKey,
}

/// Builder for [`TestProvider`].
#[must_use]
pub struct TestProviderBuilder {
    client_id: String,
    client_secret: String,
    user: Option<TestUser>,
    access_ttl: Duration,
    id_ttl: Duration,
    rotation: bool,
    iss_param: bool,
    auth_methods: Vec<String>,
    opaque_access: bool,
    trailing_slash: bool,
    extra_clients: Vec<(String, String, Option<String>)>,
    backchannel_uri: Option<String>,
    clock: SharedClock,
    port: u16,
    revocation_endpoint: bool,
}

impl std::fmt::Debug for TestProviderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestProviderBuilder")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl TestProviderBuilder {
    /// The client id the provider accepts (default `test-client`).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// The client secret the provider accepts (default `test-secret`).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = secret.into();
        self
    }

    /// The back-channel logout URI of the main client: when a browser's provider session ends
    /// (end-session), the provider POSTs a logout token there.
    pub fn backchannel_logout_uri(mut self, uri: impl Into<String>) -> Self {
        self.backchannel_uri = Some(uri.into());
        self
    }

    /// Registers another client (for several apps sharing the provider's single sign-on),
    /// with an optional back-channel logout URI.
    pub fn client(
        mut self,
        id: impl Into<String>,
        secret: impl Into<String>,
        backchannel_logout_uri: Option<String>,
    ) -> Self {
        self.extra_clients
            .push((id.into(), secret.into(), backchannel_logout_uri));
        self
    }

    /// Approve every authorization request as this user, without a form. Without it, authorize
    /// shows a login form (fields `login` and `password`).
    pub fn user(mut self, user: TestUser) -> Self {
        self.user = Some(user);
        self
    }

    /// Access token lifetime (default 5 minutes, as at Scalekit).
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// ID token lifetime (default 1 hour).
    pub fn id_token_ttl(mut self, ttl: Duration) -> Self {
        self.id_ttl = ttl;
        self
    }

    /// Rotate refresh tokens: each use returns a new one and a replay revokes the grant
    /// (default on, as at Scalekit).
    pub fn refresh_rotation(mut self, on: bool) -> Self {
        self.rotation = on;
        self
    }

    /// Send the RFC 9207 `iss` parameter on authorization responses (default on).
    pub fn iss_parameter(mut self, on: bool) -> Self {
        self.iss_param = on;
        self
    }

    /// The client authentication methods the token endpoint accepts and discovery lists
    /// (default both `client_secret_post` and `client_secret_basic`).
    pub fn token_auth_methods<I, T>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.auth_methods = methods.into_iter().map(Into::into).collect();
        self
    }

    /// Publishes the issuer with a trailing slash (`http://127.0.0.1:port/`), as Auth0 and
    /// others do; discovery stays at `<issuer without the slash>/.well-known/...` (Discovery 1.0,
    /// section 4) and tokens carry the issuer exactly (default off).
    pub fn issuer_trailing_slash(mut self, on: bool) -> Self {
        self.trailing_slash = on;
        self
    }

    /// Whether discovery lists a `revocation_endpoint` (RFC 7009, served at `/oauth/revoke`;
    /// default `true`). The endpoint is served either way.
    pub fn revocation_endpoint(mut self, on: bool) -> Self {
        self.revocation_endpoint = on;
        self
    }

    /// Issue opaque (non-JWT) access tokens, as some providers do (default off).
    pub fn opaque_access_tokens(mut self, on: bool) -> Self {
        self.opaque_access = on;
        self
    }

    /// The clock used for token times (default the system clock). Share it with the layer.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Listen on this port of 127.0.0.1 (default: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Binds 127.0.0.1 and starts serving.
    ///
    /// # Panics
    /// If the port cannot be bound.
    pub async fn start(self) -> TestProvider {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind 127.0.0.1 for TestProvider");
        let addr = listener.local_addr().expect("local addr");
        let mut clients = HashMap::new();
        clients.insert(
            self.client_id.clone(),
            ClientReg {
                secret: self.client_secret.clone(),
                backchannel_logout_uri: self.backchannel_uri,
            },
        );
        for (id, secret, uri) in self.extra_clients {
            clients.insert(
                id,
                ClientReg {
                    secret,
                    backchannel_logout_uri: uri,
                },
            );
        }
        let state = Arc::new(State {
            issuer: if self.trailing_slash {
                format!("http://{addr}/")
            } else {
                format!("http://{addr}")
            },
            base: format!("http://{addr}"),
            client_id: self.client_id,
            client_secret: self.client_secret,
            clients: Mutex::new(clients),
            sso: Mutex::new(HashMap::new()),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            backchannel_deliveries: AtomicU64::new(0),
            backchannel_failures: AtomicU64::new(0),
            clock: self.clock,
            keys: Mutex::new(vec![Arc::new(SigningKey::generate("key-1".into()))]),
            user: Mutex::new(self.user),
            codes: Mutex::default(),
            refresh: Mutex::default(),
            access_ttl: AtomicI64::new(self.access_ttl.as_secs() as i64),
            id_ttl: AtomicI64::new(self.id_ttl.as_secs() as i64),
            id_at_hash: AtomicBool::new(true),
            rotation: AtomicBool::new(self.rotation),
            iss_param: self.iss_param,
            auth_methods: self.auth_methods,
            opaque_access: self.opaque_access,
            refresh_user: Mutex::new(None),
            token_failure: Mutex::new(None),
            id_token_defect: Mutex::new(None),
            access_token_defect: Mutex::new(None),
            access_audience: Mutex::new(None),
            expires_in: Mutex::new(None),
            issued: Mutex::new(Vec::new()),
            jwks_max_age: Mutex::new(None),
            jwks_failure: Mutex::new(None),
            jwks_document: Mutex::new(None),
            code_grants: AtomicU64::new(0),
            refresh_grants: AtomicU64::new(0),
            refresh_failures: AtomicU64::new(0),
            jwks_fetches: AtomicU64::new(0),
            jwks_fetched: tokio::sync::Notify::new(),
            key_ids: AtomicBool::new(true),
            discovery_fetches: AtomicU64::new(0),
            logouts: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            revocation_listed: self.revocation_endpoint,
            revocation_failure: Mutex::new(None),
            revocation_requests: AtomicU64::new(0),
            refresh_tokens_revoked: AtomicU64::new(0),
            next_kid: AtomicU64::new(2),
        });
        let router = server::router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        TestProvider { state, addr, task }
    }
}

/// An OpenID provider running in this process on 127.0.0.1. Stops when dropped.
pub struct TestProvider {
    state: Arc<State>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TestProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestProvider")
            .field("issuer", &self.state.issuer)
            .finish_non_exhaustive()
    }
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestProvider {
    /// A builder with defaults: client `test-client` / `test-secret`, login form, 5-minute
    /// access tokens, refresh rotation on.
    pub fn builder() -> TestProviderBuilder {
        TestProviderBuilder {
            client_id: "test-client".into(),
            client_secret: "test-secret".into(),
            user: None,
            access_ttl: Duration::from_secs(300),
            id_ttl: Duration::from_secs(3600),
            rotation: true,
            iss_param: true,
            auth_methods: vec!["client_secret_post".into(), "client_secret_basic".into()],
            opaque_access: false,
            trailing_slash: false,
            extra_clients: Vec::new(),
            backchannel_uri: None,
            clock: Arc::new(SystemClock),
            port: 0,
            revocation_endpoint: true,
        }
    }

    /// Starts a provider with the defaults, auto-approving `TestUser::new("test-user")`.
    pub async fn start() -> Self {
        Self::builder()
            .user(
                TestUser::new("test-user")
                    .email("test-user@example.com")
                    .name("Test User"),
            )
            .start()
            .await
    }

    /// The issuer URL, `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The client id it accepts.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.state.client_id
    }

    /// The client secret it accepts.
    #[must_use]
    pub fn client_secret(&self) -> &str {
        &self.state.client_secret
    }

    /// An [`AuthConfig`] pointed at this provider (Scalekit layout), with this client's
    /// credentials, a random cookie key, and the given redirect URL.
    pub fn layer_builder(&self, redirect_url: impl Into<String>) -> AuthConfig {
        let mut key = [0u8; 64];
        getrandom::fill(&mut key).expect("random cookie key");
        AuthConfig::new()
            .provider(Provider::scalekit(self.issuer()))
            .client_id(self.client_id())
            .client_secret(self.client_secret())
            .redirect_url(redirect_url)
            .cookie_key(key)
            .clock(ClockRef(self.state.clock.clone()))
    }

    /// Sets (or, with `None`, removes) the auto-approved user. Without one, authorize shows
    /// the login form.
    pub fn set_user(&self, user: Option<TestUser>) {
        *self.state.user.lock().expect("user lock") = user;
    }

    /// Changes the access token lifetime for tokens issued from now on.
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        self.state
            .access_ttl
            .store(ttl.as_secs() as i64, Ordering::Relaxed);
    }

    /// Turns refresh-token rotation on or off.
    pub fn set_refresh_rotation(&self, on: bool) {
        self.state.rotation.store(on, Ordering::Relaxed);
    }

    /// Makes the token endpoint misbehave (or, with `None`, behave).
    pub fn set_token_failure(&self, failure: Option<Failure>) {
        *self.state.token_failure.lock().expect("failure lock") = failure;
    }

    /// Makes the revocation endpoint misbehave (or, with `None`, behave).
    pub fn set_revocation_failure(&self, failure: Option<Failure>) {
        *self.state.revocation_failure.lock().expect("failure lock") = failure;
    }

    /// Puts this defect into every ID token issued from now on (or, with `None`, none).
    pub fn set_id_token_defect(&self, defect: Option<IdTokenDefect>) {
        *self.state.id_token_defect.lock().expect("defect lock") = defect;
    }

    /// Puts this defect into every access token issued from now on (`None`: well-formed).
    pub fn set_access_token_defect(&self, defect: Option<AccessTokenDefect>) {
        *self.state.access_token_defect.lock().expect("defect lock") = defect;
    }

    /// Issues access tokens for these API audiences instead of the client id (or, with `None`,
    /// for the client again), as Scalekit does when an API audience is configured: `aud` names
    /// the API and there is no `client_id` (developer-docs
    /// `authenticate/fsa/session-token-claims.mdx`, "Default access token claims"). A layer
    /// accepts them only with [`AuthConfig::audience`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let provider = tower_oidc_auth::testing::TestProvider::start().await;
    /// provider.set_access_token_audience(Some(vec!["https://api.example.com".into()]));
    /// # }
    /// ```
    pub fn set_access_token_audience(&self, audiences: Option<Vec<String>>) {
        *self.state.access_audience.lock().expect("audience lock") = audiences;
    }

    /// Whether ID tokens carry `at_hash` (default on; it is optional in the code flow, and
    /// some providers leave it out, notably in ID tokens issued at a refresh).
    pub fn set_id_token_at_hash(&self, on: bool) {
        self.state.id_at_hash.store(on, Ordering::Relaxed);
    }

    /// Answers refresh grants with tokens for this user instead of the one who signed in (a
    /// broken or hostile provider), or, with `None`, for the grant's user again.
    pub fn set_refresh_user(&self, user: Option<TestUser>) {
        *self.state.refresh_user.lock().expect("refresh user lock") = user;
    }

    /// Sends this `expires_in` in token responses instead of the access-token lifetime
    /// (`None`: the lifetime). Any JSON value, so tests can send huge or odd ones.
    pub fn set_expires_in(&self, value: Option<Value>) {
        *self.state.expires_in.lock().expect("expires_in lock") = value;
    }

    /// Sends `Cache-Control: max-age=N` with the JWKS (or, with `None`, no Cache-Control).
    pub fn set_jwks_max_age(&self, max_age: Option<u64>) {
        *self.state.jwks_max_age.lock().expect("max-age lock") = max_age;
    }

    /// Makes the JWKS endpoint misbehave (or, with `None`, behave).
    pub fn set_jwks_failure(&self, failure: Option<Failure>) {
        *self.state.jwks_failure.lock().expect("failure lock") = failure;
    }

    /// Serves this JSON as the JWKS document instead of the published keys (or, with `None`,
    /// the published keys again): for testing key sets a provider should not publish (empty,
    /// duplicate kids, odd members). Signing is unchanged.
    pub fn set_jwks_document(&self, document: Option<Value>) {
        *self.state.jwks_document.lock().expect("document lock") = document;
    }

    /// The JWKS document as the provider would serve it now (published keys).
    #[must_use]
    pub fn jwks_document(&self) -> Value {
        json!({ "keys": self.state.published_keys() })
    }

    /// Adds a new signing key and signs with it from now on. With `retire_old`, older keys are
    /// no longer published.
    pub fn rotate_keys(&self, retire_old: bool) -> String {
        let n = self.state.next_kid.fetch_add(1, Ordering::Relaxed);
        let key = Arc::new(SigningKey::generate(format!("key-{n}")));
        let kid = key.kid.clone();
        let mut keys = self.state.keys.lock().expect("keys lock");
        if retire_old {
            keys.clear();
        }
        keys.push(key);
        kid
    }

    /// Replaces the current signing key by a new key pair published under the same `kid`, as a
    /// provider that reuses key ids would. Signs with the new key from now on.
    pub fn replace_key_material(&self) {
        let mut keys = self.state.keys.lock().expect("keys lock");
        if let Some(last) = keys.last_mut() {
            *last = Arc::new(SigningKey::generate(last.kid.clone()));
        }
    }

    /// With `false`, the JWKS is published without `kid`s and tokens carry no `kid` in their
    /// header (allowed when exactly one key fits); `true` (the default) restores both.
    pub fn set_key_ids(&self, on: bool) {
        self.state.key_ids.store(on, Ordering::Relaxed);
    }

    /// Waits until the JWKS endpoint has been asked at least `n` times in all (counted on
    /// arrival, like [`Counts::jwks_fetches`]): for tests of background refreshes.
    pub async fn wait_for_jwks_fetches(&self, n: u64) {
        loop {
            // Created before the check, so a fetch between the check and the await still wakes.
            let fetched = self.state.jwks_fetched.notified();
            if self.state.jwks_fetches.load(Ordering::Relaxed) >= n {
                return;
            }
            fetched.await;
        }
    }

    /// What the provider has served so far.
    #[must_use]
    pub fn counts(&self) -> Counts {
        let s = &self.state;
        Counts {
            code_grants: s.code_grants.load(Ordering::Relaxed),
            refresh_grants: s.refresh_grants.load(Ordering::Relaxed),
            refresh_failures: s.refresh_failures.load(Ordering::Relaxed),
            jwks_fetches: s.jwks_fetches.load(Ordering::Relaxed),
            discovery_fetches: s.discovery_fetches.load(Ordering::Relaxed),
            logouts: s.logouts.load(Ordering::Relaxed),
            token_requests: s.token_requests.load(Ordering::Relaxed),
            backchannel_deliveries: s.backchannel_deliveries.load(Ordering::Relaxed),
            backchannel_failures: s.backchannel_failures.load(Ordering::Relaxed),
            revocation_requests: s.revocation_requests.load(Ordering::Relaxed),
            refresh_tokens_revoked: s.refresh_tokens_revoked.load(Ordering::Relaxed),
        }
    }

    /// Every token and code the provider has handed out so far (access, ID and refresh tokens,
    /// authorization codes): for tests that check none of them leaks.
    #[must_use]
    pub fn issued_secrets(&self) -> Vec<String> {
        self.state.issued.lock().expect("issued lock").clone()
    }

    /// Registers another client while running (see [`TestProviderBuilder::client`]).
    pub fn add_client(
        &self,
        id: impl Into<String>,
        secret: impl Into<String>,
        backchannel_logout_uri: Option<String>,
    ) {
        self.state.clients.lock().expect("clients lock").insert(
            id.into(),
            ClientReg {
                secret: secret.into(),
                backchannel_logout_uri,
            },
        );
    }

    /// A valid back-channel logout token for `client_id`, naming `sub` and `sid`.
    #[must_use]
    pub fn logout_token(&self, client_id: &str, sub: &str, sid: &str) -> String {
        self.state.logout_token(client_id, sub, sid)
    }

    /// Ends every single sign-on session of `sub` at the provider, as an administrator would,
    /// delivering back-channel logout tokens to the clients involved. Returns when done.
    pub async fn end_sessions_of(&self, sub: &str) {
        let ended: Vec<SsoSession> = {
            let mut sso = self.state.sso.lock().expect("sso lock");
            let keys: Vec<String> = sso
                .iter()
                .filter(|(_, s)| s.user.sub == sub)
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter().filter_map(|k| sso.remove(&k)).collect()
        };
        for session in ended {
            self.state.end_sso(session).await;
        }
    }

    /// The `kid` of the current signing key.
    #[must_use]
    pub fn current_kid(&self) -> String {
        self.state.current_key().kid.clone()
    }

    /// Signs any claims with the current key (RS256, with its `kid`).
    #[must_use]
    pub fn sign(&self, claims: &Value) -> String {
        self.state.sign(claims)
    }

    /// Signs with the current key but the given JOSE header: for testing what the layer
    /// refuses (unknown `kid`, other `alg`, odd `typ`).
    #[must_use]
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        self.state.current_key().sign(header, claims)
    }

    /// The claims of an IdP-initiated login token as Scalekit issues them, at the provider's
    /// clock: `iat` = `nbf` = now and `exp` five minutes later (the docs' example,
    /// developer-docs `sso/guides/idp-init-sso.mdx` "JWT token structure", has
    /// `exp - iat = 300` and `nbf = iat`), `iss` the issuer, and the given claims. For tests
    /// that change a claim and sign the result with [`sign`](Self::sign).
    #[must_use]
    pub fn idp_initiated_login_claims(&self, login: &IdpInitiatedLogin) -> Value {
        let now = self.state.clock.now();
        let mut claims = json!({"iss": self.issuer(), "iat": now, "nbf": now, "exp": now + 300});
        for (name, value) in [
            ("organization_id", &login.organization_id),
            ("connection_id", &login.connection_id),
            ("login_hint", &login.login_hint),
            ("relay_state", &login.relay_state),
        ] {
            if let Some(v) = value {
                claims[name] = v.clone().into();
            }
        }
        claims
    }

    /// An IdP-initiated login token (the value of Scalekit's `idp_initiated_login` parameter),
    /// signed with the current key like every token of the environment.
    #[must_use]
    pub fn idp_initiated_login_token(&self, login: &IdpInitiatedLogin) -> String {
        self.sign(&self.idp_initiated_login_claims(login))
    }

    /// Where Scalekit sends the browser when a login starts at the identity provider (or after
    /// an invitation or a password reset): the app's Initiate Login URL (absolute, or a path
    /// such as `/auth/login`) with `?idp_initiated_login=<signed JWT>` (developer-docs
    /// `sso/guides/idp-init-sso.mdx`, "Endpoint setup").
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower_oidc_auth::testing::{IdpInitiatedLogin, TestProvider};
    /// let provider = TestProvider::start().await;
    /// let url = provider.idp_initiated_login_url(
    ///     "/auth/login",
    ///     &IdpInitiatedLogin::new().organization_id("org_1").relay_state("/welcome"),
    /// );
    /// assert!(url.starts_with("/auth/login?idp_initiated_login=ey"));
    /// # }
    /// ```
    #[must_use]
    pub fn idp_initiated_login_url(
        &self,
        app_login_url: &str,
        login: &IdpInitiatedLogin,
    ) -> String {
        let token = self.idp_initiated_login_token(login);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("idp_initiated_login", &token)
            .finish();
        let separator = if app_login_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{app_login_url}{separator}{query}")
    }

    /// Signs with a freshly generated RSA key that the provider never publishes, under the
    /// given JOSE header (name the current `kid` to impersonate the published key, or any
    /// other): for testing what the layer refuses.
    #[must_use]
    pub fn sign_with_unpublished_key(&self, header: &Value, claims: &Value) -> String {
        SigningKey::generate("unpublished".into()).sign(header, claims)
    }

    /// An access token for `user`, as the token endpoint would issue it.
    #[must_use]
    pub fn access_token(&self, user: &TestUser) -> String {
        self.state.access_token(
            &self.state.client_id,
            user,
            "openid profile email offline_access",
            "sid-test",
        )
    }

    /// A machine-to-machine access token, as Scalekit issues one to an API client of
    /// `organization_id` by the client-credentials grant: no `aud`, `sub` and `client_id` both
    /// `client_id`, the granted scopes in a `scopes` array, a one-hour lifetime (developer-docs
    /// `authenticate/m2m/api-auth-quickstart.mdx`, step 6 "Example decoded access token", and
    /// step 2: `expiry` defaults to 3600 s). Signed with the current key. A layer accepts it as a
    /// bearer token only with [`AuthConfig::accept_m2m_clients`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower_oidc_auth::M2mClients;
    /// let provider = tower_oidc_auth::testing::TestProvider::start().await;
    /// let auth = provider
    ///     .layer_builder("http://127.0.0.1:3000/auth/callback")
    ///     .accept_m2m_clients(M2mClients::only(["m2morg_1"]))
    ///     .build()
    ///     .await
    ///     .unwrap();
    /// let token = provider.m2m_access_token("m2morg_1", "org_1", &["deploy:applications"]);
    /// # let _ = (auth, token);
    /// # }
    /// ```
    #[must_use]
    pub fn m2m_access_token(
        &self,
        client_id: &str,
        organization_id: &str,
        scopes: &[&str],
    ) -> String {
        let now = self.state.clock.now();
        self.state.sign(&json!({
            "client_id": client_id,
            "exp": now + 3600,
            "iat": now,
            "iss": self.state.issuer,
            "jti": format!("tkn_{}", crate::token::random_token()),
            "nbf": now,
            "oid": organization_id,
            "scopes": scopes,
            "sub": client_id,
        }))
    }

    /// An ID token for `user` (with this nonce), as the token endpoint would issue it.
    #[must_use]
    pub fn id_token(&self, user: &TestUser, nonce: Option<&str>) -> String {
        let at = self.access_token(user);
        self.state
            .id_token(&self.state.client_id, user, nonce, "sid-test", &at)
    }

    /// A `Cookie` header value holding a signed-in session of `user` for `auth`, as if they had
    /// logged in: for handler tests that need no login dance. The layer must trust this
    /// provider (built from [`layer_builder`](Self::layer_builder) or pointed at its issuer).
    #[must_use]
    pub fn session_cookie(&self, auth: &AuthLayer, user: &TestUser) -> String {
        let client = auth.shared.settings.client_id.clone();
        let at = self.state.access_token(
            &client,
            user,
            "openid profile email offline_access",
            "sid-test",
        );
        let id = self.state.id_token(&client, user, None, "sid-test", &at);
        let refresh = crate::token::random_token();
        self.state.refresh.lock().expect("refresh lock").insert(
            refresh.clone(),
            RefreshGrant {
                client,
                user: user.clone(),
                scope: "openid profile email offline_access".into(),
                sid: "sid-test".into(),
                family: refresh.clone(),
                active: true,
            },
        );
        crate::session::session_cookie_header(&auth.shared, at, Some(refresh), &id)
    }

    /// A `Cookie` header value holding a session made of exactly these tokens, sealed for
    /// `auth`: for testing what the layer does with tokens it would not get from a real login
    /// (expired, foreign, forged).
    #[must_use]
    pub fn session_cookie_with_tokens(
        &self,
        auth: &AuthLayer,
        access_token: &str,
        refresh_token: Option<&str>,
        id_token: &str,
    ) -> String {
        crate::session::session_cookie_header(
            &auth.shared,
            access_token.to_owned(),
            refresh_token.map(str::to_owned),
            id_token,
        )
    }
}

/// Lets the layer share the provider's clock.
struct ClockRef(SharedClock);

impl Clock for ClockRef {
    fn now(&self) -> i64 {
        self.0.now()
    }
}
