//! The provider's state: keys, grants, clients, single sign-on sessions, and the tokens it mints.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::faults::{AccessTokenDefect, Failure, IdTokenDefect};
use super::user::TestUser;
use crate::clock::SharedClock;

pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pair: KeyPair,
    pub(crate) jwk: Value,
}

impl SigningKey {
    pub(crate) fn generate(kid: String) -> Self {
        Self::from_pair(
            kid,
            KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"),
        )
    }

    /// The key kept in `path` (PKCS#8), made and written there first if the file is missing.
    pub(crate) fn load_or_create(kid: String, path: &std::path::Path) -> std::io::Result<Self> {
        use aws_lc_rs::encoding::AsDer;
        let invalid = |e: &dyn std::fmt::Display| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        };
        match std::fs::read(path) {
            Ok(der) => {
                let pair = KeyPair::from_pkcs8(&der).map_err(|e| invalid(&e))?;
                Ok(Self::from_pair(kid, pair))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|e| invalid(&e))?;
                let der = pair.as_der().map_err(|e| invalid(&e))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                std::io::Write::write_all(&mut options.open(path)?, der.as_ref())?;
                Ok(Self::from_pair(kid, pair))
            }
            Err(e) => Err(e),
        }
    }

    fn from_pair(kid: String, pair: KeyPair) -> Self {
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e});
        Self { kid, pair, jwk }
    }

    pub(crate) fn sign(&self, header: &Value, claims: &Value) -> String {
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
    pub(crate) authn: Authn,
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
    /// The authentication the grant came from: refreshed ID tokens keep its `auth_time`.
    pub(crate) authn: Authn,
}

/// A registered client.
#[derive(Clone)]
pub(crate) struct ClientReg {
    pub(crate) secret: String,
    pub(crate) backchannel_logout_uri: Option<String>,
    /// Public keys for `private_key_jwt` (RFC 7523), as JWKs.
    pub(crate) jwks: Vec<Value>,
}

/// An authorization request pushed to the PAR endpoint (RFC 9126), until used or expired.
pub(crate) struct Pushed {
    pub(crate) client: String,
    pub(crate) params: HashMap<String, String>,
    pub(crate) expires: i64,
}

/// A signed-in browser at the provider (single sign-on across clients).
pub(crate) struct SsoSession {
    pub(crate) user: TestUser,
    pub(crate) sid: String,
    pub(crate) clients: std::collections::BTreeSet<String>,
    /// When and how the user last authenticated in this session.
    pub(crate) authn: Authn,
}

/// One authentication of the user: what ID tokens say about it (OIDC Core 2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Authn {
    /// `auth_time`: when the user authenticated (seconds, provider clock).
    pub(crate) auth_time: i64,
    /// `acr`: the first value of the `acr_values` the authentication was asked for, if any.
    pub(crate) acr: Option<String>,
}

impl Authn {
    /// An authentication now, for the first of these space-separated `acr_values`.
    pub(crate) fn now(clock: &SharedClock, acr_values: Option<&str>) -> Self {
        Self {
            auth_time: clock.now(),
            acr: first_acr(acr_values),
        }
    }
}

/// The first value of a space-separated `acr_values` parameter.
pub(crate) fn first_acr(acr_values: Option<&str>) -> Option<String> {
    acr_values?.split_whitespace().next().map(str::to_owned)
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
    pub(crate) next_kid: AtomicU64,
    /// `jti`s of client assertions accepted, until their `exp` (RFC 7523 section 3, item 7).
    pub(crate) seen_jtis: Mutex<HashMap<String, i64>>,
    pub(crate) client_assertions: AtomicU64,
    pub(crate) client_credentials_grants: AtomicU64,
    /// Whether discovery lists the PAR endpoint (RFC 9126), and whether it requires PAR.
    pub(crate) par_listed: bool,
    pub(crate) par_required: bool,
    pub(crate) pushed: Mutex<HashMap<String, Pushed>>,
    pub(crate) par_failure: Mutex<Option<Failure>>,
    pub(crate) par_requests: AtomicU64,
    pub(crate) pushed_used: AtomicU64,
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
        authn: &Authn,
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
            "at_hash": URL_SAFE_NO_PAD.encode(&digest[..16]), "auth_time": authn.auth_time,
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
        if let Some(acr) = &authn.acr {
            claims.insert("acr".into(), acr.clone().into());
        }
        // The user's own `auth_time` / `acr` win over the authentication's, and `null` leaves
        // them out: a provider that answers a step-up wrongly, for adversarial tests.
        for k in ["auth_time", "acr"] {
            match user.extra.get(k) {
                Some(Value::Null) => {
                    claims.remove(k);
                }
                Some(v) => {
                    claims.insert(k.into(), v.clone());
                }
                None => {}
            }
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
